// SPDX-License-Identifier: GPL-2.0
/*
 * Virtio dma-buf sharing device: requests.
 *
 * Building and running the device's requests: CREATE, LOOKUP, ATTACH,
 * RELEASE and SYNC (docs/device-spec.md), each a function that fills a
 * request, hands it to the transport and reads the answer; and the undo of
 * what the device did for a request whose waiter had left (late answers).
 */

#include <linux/overflow.h>
#include <linux/slab.h>

#include "virtio_dmabuf_internal.h"

/* ------------------------------------------------------------------ */
/* CREATE, LOOKUP, ATTACH, RELEASE, SYNC                              */
/* ------------------------------------------------------------------ */

/*
 * A CREATE or ATTACH request carrying the segment list of @mem (@size bytes).
 * The request holds a reference to the pages: if its waiter gives up, the
 * pages live until the device has answered (and a late registration was
 * RELEASEd) or was reset.
 */
static struct vdmabuf_req *vdmabuf_segs_req(struct vdmabuf_device *dev,
					    struct vdmabuf_pages *mem, u64 size,
					    u32 type, size_t body_len,
					    size_t resp_len, u32 *nr_segsp)
{
	struct virtio_dmabuf_seg *segs;
	struct vdmabuf_req *req;
	int ret;

	segs = vdmabuf_pages_segs(mem, size, dev->max_segments, nr_segsp);
	if (IS_ERR(segs))
		return ERR_CAST(segs);
	req = vdmabuf_req_alloc(type, body_len, resp_len);
	if (!req) {
		kvfree(segs);
		return ERR_PTR(-ENOMEM);
	}
	req->pages = vdmabuf_pages_get(mem);
	/* the request owns segs from here on */
	ret = vdmabuf_req_set_data(dev, req, segs,
				   (size_t)*nr_segsp * sizeof(*segs));
	if (ret) {
		vdmabuf_req_put(req);
		return ERR_PTR(ret);
	}
	return req;
}

/* CREATE: register @size bytes of @mem; the device's UUID for it in @uuid. */
int vdmabuf_request_create(struct vdmabuf_device *dev,
			   struct vdmabuf_pages *mem, u64 size, u32 flags,
			   u8 *uuid)
{
	struct vdmabuf_req *req;
	u32 nr_segs;
	int ret;

	req = vdmabuf_segs_req(dev, mem, size, VIRTIO_DMABUF_REQ_CREATE,
			       sizeof(req->in.create), sizeof(req->out.create),
			       &nr_segs);
	if (IS_ERR(req))
		return PTR_ERR(req);
	req->in.create.size = cpu_to_le64(size);
	req->in.create.flags = cpu_to_le32(flags);
	req->in.create.nr_segs = cpu_to_le32(nr_segs);
	ret = vdmabuf_req_run(dev, req);
	if (!ret)
		memcpy(uuid, req->out.create.uuid, VIRTIO_DMABUF_UUID_SIZE);
	vdmabuf_req_put(req);
	return ret;
}

/* LOOKUP: the size and flags of the buffer @uuid. */
int vdmabuf_request_lookup(struct vdmabuf_device *dev, const u8 *uuid,
			   u64 *sizep, u32 *flagsp)
{
	struct vdmabuf_req *req;
	int ret;

	req = vdmabuf_req_alloc(VIRTIO_DMABUF_REQ_LOOKUP, sizeof(req->in.uuid),
				sizeof(req->out.lookup));
	if (!req)
		return -ENOMEM;
	memcpy(req->in.uuid.uuid, uuid, VIRTIO_DMABUF_UUID_SIZE);
	ret = vdmabuf_req_run(dev, req);
	if (!ret) {
		*sizep = le64_to_cpu(req->out.lookup.size);
		*flagsp = le32_to_cpu(req->out.lookup.flags);
	}
	vdmabuf_req_put(req);
	return ret;
}

/* ATTACH: register @mem (@size bytes) as this guest's copy of @uuid. */
int vdmabuf_request_attach(struct vdmabuf_device *dev,
			   struct vdmabuf_pages *mem, u64 size, const u8 *uuid)
{
	struct vdmabuf_req *req;
	u32 nr_segs;
	int ret;

	req = vdmabuf_segs_req(dev, mem, size, VIRTIO_DMABUF_REQ_ATTACH,
			       sizeof(req->in.attach), sizeof(req->out.hdr),
			       &nr_segs);
	if (IS_ERR(req))
		return PTR_ERR(req);
	memcpy(req->in.attach.uuid, uuid, VIRTIO_DMABUF_UUID_SIZE);
	req->in.attach.nr_segs = cpu_to_le32(nr_segs);
	ret = vdmabuf_req_run(dev, req);
	vdmabuf_req_put(req);
	return ret;
}

/*
 * MAP: import @uuid mapped in place in the shared memory region. On success
 * the buffer is at [*offsetp, *offsetp + *lenp) of the region (as the device
 * says: the caller checks it) with LOOKUP-style *flagsp.
 */
int vdmabuf_request_map(struct vdmabuf_device *dev, const u8 *uuid,
			u64 *offsetp, u64 *lenp, u32 *flagsp)
{
	struct vdmabuf_req *req;
	int ret;

	req = vdmabuf_req_alloc(VIRTIO_DMABUF_REQ_MAP, sizeof(req->in.map),
				sizeof(req->out.map));
	if (!req)
		return -ENOMEM;
	memcpy(req->in.map.uuid, uuid, VIRTIO_DMABUF_UUID_SIZE);
	ret = vdmabuf_req_run(dev, req);
	if (!ret) {
		*offsetp = le64_to_cpu(req->out.map.offset);
		*lenp = le64_to_cpu(req->out.map.len);
		*flagsp = le32_to_cpu(req->out.map.flags);
	}
	vdmabuf_req_put(req);
	return ret;
}

/*
 * RELEASE @uuid. @mem (a reference, consumed; may be NULL) is the memory the
 * device may touch until it has answered: it is freed once that is sure:
 * after a NOT_FOUND or OK answer, a late answer if the wait was given up, or
 * the device's reset otherwise.
 */
int vdmabuf_request_release(struct vdmabuf_device *dev, const u8 *uuid,
			    struct vdmabuf_pages *mem)
{
	struct vdmabuf_req *req;
	int ret;

	req = vdmabuf_req_alloc(VIRTIO_DMABUF_REQ_RELEASE, sizeof(req->in.uuid),
				sizeof(req->out.hdr));
	if (!req) {
		vdmabuf_device_keep_pages(dev, mem);
		return -ENOMEM;
	}
	memcpy(req->in.uuid.uuid, uuid, VIRTIO_DMABUF_UUID_SIZE);
	req->pages = mem;
	ret = vdmabuf_req_run(dev, req);
	if (ret && ret != -ENOENT && !req->abandoned) {
		if (ret != -ENODEV)
			pr_warn_ratelimited("%s: RELEASE of %pUb failed (%d): its pages stay allocated until the device is reset\n",
					    dev->name, uuid, ret);
		vdmabuf_device_keep_pages(dev, req->pages);
		req->pages = NULL;
	}
	vdmabuf_req_put(req);
	return ret;
}

/*
 * How long the driver waits for a START asked with @timeout_ms: the device's
 * bound (@timeout_ms, 0 or above sync_timeout_ms: sync_timeout_ms) plus
 * VDMABUF_SYNC_SLACK_MS. Probe bounds sync_timeout_ms, so the sum fits; it is
 * computed without wrapping all the same.
 */
static unsigned int vdmabuf_start_wait_ms(const struct vdmabuf_device *dev,
					  u32 timeout_ms)
{
	u32 bound = dev->sync_timeout_ms, wait;

	BUILD_BUG_ON(VDMABUF_SYNC_TIMEOUT_MAX_MS >
		     U32_MAX - VDMABUF_SYNC_SLACK_MS);
	if (timeout_ms && timeout_ms < bound)
		bound = timeout_ms;
	if (check_add_overflow(bound, (u32)VDMABUF_SYNC_SLACK_MS, &wait))
		wait = U32_MAX;
	return wait;
}

/*
 * SYNC: begin (@flags without SYNC_END) or end CPU access to a range of
 * @uuid. A START waits interruptibly for the device to grant it, at most a
 * little longer than its bound (@timeout_ms, 0 or above the device's
 * sync_timeout_ms: the device's); an END waits like any other request.
 */
int vdmabuf_request_sync(struct vdmabuf_device *dev, const u8 *uuid,
			 u64 offset, u64 len, u32 flags, u32 timeout_ms)
{
	struct vdmabuf_req *req;
	int ret;

	req = vdmabuf_req_alloc(VIRTIO_DMABUF_REQ_SYNC, sizeof(req->in.sync),
				sizeof(req->out.hdr));
	if (!req)
		return -ENOMEM;
	memcpy(req->in.sync.uuid, uuid, VIRTIO_DMABUF_UUID_SIZE);
	req->in.sync.offset = cpu_to_le64(offset);
	req->in.sync.len = cpu_to_le64(len);
	req->in.sync.flags = cpu_to_le32(flags);
	req->in.sync.timeout_ms = cpu_to_le32(timeout_ms);

	if (flags & VIRTIO_DMABUF_SYNC_END) {
		ret = vdmabuf_req_run(dev, req);
	} else {
		ret = vdmabuf_req_run_start(dev, req,
					    vdmabuf_start_wait_ms(dev,
								  timeout_ms));
	}
	vdmabuf_req_put(req);
	return ret;
}

/* ------------------------------------------------------------------ */
/* late answers                                                       */
/* ------------------------------------------------------------------ */

/* End the access a START that was given up got anyway. */
static void vdmabuf_orphan_end(struct vdmabuf_device *dev,
			       struct vdmabuf_req *start)
{
	struct vdmabuf_req *end;
	int ret;

	end = vdmabuf_req_alloc(VIRTIO_DMABUF_REQ_SYNC, sizeof(end->in.sync),
				sizeof(end->out.hdr));
	if (!end) {
		pr_warn_ratelimited("%s: cannot end an abandoned access: out of memory\n",
				    dev->name);
		return;
	}
	end->in.sync = start->in.sync;
	end->in.sync.flags |= cpu_to_le32(VIRTIO_DMABUF_SYNC_END);
	end->in.sync.timeout_ms = 0;
	ret = vdmabuf_req_run(dev, end);
	if (ret && ret != -ENODEV && !end->abandoned)
		pr_warn_ratelimited("%s: ending an abandoned access: %d\n",
				    dev->name, ret);
	vdmabuf_req_put(end);
}

/*
 * The late-answer upcall (dev->upcalls): the device answered a request whose
 * waiter had left. Undo what the answer did: end a granted START, RELEASE a
 * buffer an abandoned CREATE or ATTACH registered (its pages go with the
 * RELEASE) or an abandoned MAP mapped (nothing of the guest's to free).
 * Answers that left the device holding pages the driver cannot name keep
 * the pages until the reset. The caller keeps its reference.
 */
void vdmabuf_request_late_answer(struct vdmabuf_device *dev,
				 struct vdmabuf_req *req)
{
	int status = vdmabuf_req_status(req);
	bool full = req->used_len >= req->out_len;
	const u8 *uuid;

	pr_debug("%s: late answer to an abandoned %s: %d\n", dev->name,
		 vdmabuf_req_name(req), status);
	switch (vdmabuf_req_type(req)) {
	case VIRTIO_DMABUF_REQ_SYNC:
		if (vdmabuf_req_is_start(req) && !status && full)
			vdmabuf_orphan_end(dev, req);
		break;
	case VIRTIO_DMABUF_REQ_CREATE:
	case VIRTIO_DMABUF_REQ_ATTACH:
		if (!status && full) {
			if (vdmabuf_req_type(req) == VIRTIO_DMABUF_REQ_CREATE)
				uuid = req->out.create.uuid;
			else
				uuid = req->in.attach.uuid;
			vdmabuf_request_release(dev, uuid, req->pages);
			req->pages = NULL;
		} else if (!status || status == -EPROTO) {
			/* maybe registered, under a UUID we cannot name */
			vdmabuf_device_keep_pages(dev, req->pages);
			req->pages = NULL;
		}
		break;
	case VIRTIO_DMABUF_REQ_MAP:
		/* the UUID is known even if the answer was cut short */
		if (!status || status == -EPROTO)
			vdmabuf_request_release(dev, req->in.map.uuid, NULL);
		break;
	case VIRTIO_DMABUF_REQ_RELEASE:
		/* OK, NOT_FOUND and a reset free the pages with the request */
		if (status && status != -ENOENT && !req->error) {
			pr_warn_ratelimited("%s: abandoned RELEASE of %pUb failed (%d): its pages stay allocated until the device is reset\n",
					    dev->name, req->in.uuid.uuid, status);
			vdmabuf_device_keep_pages(dev, req->pages);
			req->pages = NULL;
		}
		break;
	default:
		break;		/* LOOKUP, END: nothing to undo */
	}
}
