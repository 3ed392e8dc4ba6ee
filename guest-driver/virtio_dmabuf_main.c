// SPDX-License-Identifier: GPL-2.0
/*
 * Virtio dma-buf sharing device: virtio transport.
 *
 * Probe and remove, configuration and feature negotiation, the request
 * queue (submission, completion, waiting) and the event queue.
 */

#include <linux/idr.h>
#include <linux/jiffies.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/version.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <linux/vmalloc.h>

#include "virtio_dmabuf.h"

static DEFINE_IDA(vdmabuf_ida);

/* ------------------------------------------------------------------ */
/* device reference                                                   */
/* ------------------------------------------------------------------ */

static void vdmabuf_device_release(struct kref *ref)
{
	struct vdmabuf_device *dev = container_of(ref, struct vdmabuf_device,
						  ref);

	kfree(dev);
}

void vdmabuf_device_get(struct vdmabuf_device *dev)
{
	kref_get(&dev->ref);
}

void vdmabuf_device_put(struct vdmabuf_device *dev)
{
	kref_put(&dev->ref, vdmabuf_device_release);
}

bool vdmabuf_device_gone(struct vdmabuf_device *dev)
{
	return READ_ONCE(dev->removed);
}

/* ------------------------------------------------------------------ */
/* status codes                                                       */
/* ------------------------------------------------------------------ */

/* docs/device-spec.md, section 11 */
static const int vdmabuf_errno[] = {
	[VIRTIO_DMABUF_S_OK]			= 0,
	[VIRTIO_DMABUF_S_INVALID_REQUEST]	= -EINVAL,
	[VIRTIO_DMABUF_S_INVALID_ADDRESS]	= -EFAULT,
	[VIRTIO_DMABUF_S_INVALID_SIZE]		= -EINVAL,
	[VIRTIO_DMABUF_S_TOO_MANY_SEGMENTS]	= -E2BIG,
	[VIRTIO_DMABUF_S_NOT_FOUND]		= -ENOENT,
	[VIRTIO_DMABUF_S_ALREADY_EXISTS]	= -EEXIST,
	[VIRTIO_DMABUF_S_PERMISSION_DENIED]	= -EACCES,
	[VIRTIO_DMABUF_S_QUOTA_EXCEEDED]	= -EDQUOT,
	[VIRTIO_DMABUF_S_TIMEOUT]		= -ETIMEDOUT,
	[VIRTIO_DMABUF_S_NOT_HELD]		= -EPERM,
	[VIRTIO_DMABUF_S_REVOKED]		= -ENODEV,
	[VIRTIO_DMABUF_S_CANCELLED]		= -ECANCELED,
	[VIRTIO_DMABUF_S_RESPONSE_TOO_SMALL]	= -EMSGSIZE,
	[VIRTIO_DMABUF_S_IO_ERROR]		= -EIO,
	[VIRTIO_DMABUF_S_UNSUPPORTED]		= -EOPNOTSUPP,
};

int vdmabuf_status_to_errno(u32 status)
{
	if (status >= ARRAY_SIZE(vdmabuf_errno))
		return -EPROTO;
	return vdmabuf_errno[status];
}

/* ------------------------------------------------------------------ */
/* requests                                                           */
/* ------------------------------------------------------------------ */

static void vdmabuf_req_release(struct kref *ref)
{
	struct vdmabuf_req *req = container_of(ref, struct vdmabuf_req, ref);

	kfree(req->data_copy);
	kfree(req);
}

struct vdmabuf_req *vdmabuf_req_alloc(u32 type, size_t body_len,
				      size_t resp_len)
{
	struct vdmabuf_req *req;

	if (WARN_ON(body_len > sizeof(req->in) - sizeof(req->in.hdr) ||
		    resp_len > sizeof(req->out) ||
		    resp_len < sizeof(req->out.hdr)))
		return NULL;

	req = kzalloc(sizeof(*req), GFP_KERNEL);
	if (!req)
		return NULL;
	kref_init(&req->ref);
	init_completion(&req->done);
	atomic_set(&req->state, VDMABUF_REQ_PENDING);
	INIT_LIST_HEAD(&req->orphan);
	req->in.hdr.type = cpu_to_le32(type);
	req->in_len = sizeof(req->in.hdr) + body_len;
	req->out_len = resp_len;
	return req;
}

void vdmabuf_req_put(struct vdmabuf_req *req)
{
	kref_put(&req->ref, vdmabuf_req_release);
}

static bool vdmabuf_req_is_start(const struct vdmabuf_req *req)
{
	return le32_to_cpu(req->in.hdr.type) == VIRTIO_DMABUF_REQ_SYNC &&
	       !(le32_to_cpu(req->in.sync.flags) & VIRTIO_DMABUF_SYNC_END);
}

/*
 * Attach the readable data that follows the request body (a segment list).
 * The device reads all readable descriptors as one byte stream. Physically
 * contiguous memory becomes one sg entry; vmalloc memory one entry per run of
 * physically contiguous pages. A chain must not be longer than the queue
 * (virtio spec, also inside an indirect table), so a vmalloc list that needs
 * more entries is copied into one contiguous allocation (at most 4 MiB for
 * the spec's 262,144 segments), freed by vdmabuf_req_run(). @data must stay
 * valid until the request completed.
 */
int vdmabuf_req_set_data(struct vdmabuf_device *dev, struct vdmabuf_req *req,
			 void *data, size_t len)
{
	unsigned int max = dev->queue_size > 2 ? dev->queue_size - 2 : 1;
	unsigned int nents, i, off;
	struct scatterlist *sgl;
	size_t left = len, chunk;
	u8 *p = data;

	if (!is_vmalloc_addr(data))
		goto contiguous;

	nents = DIV_ROUND_UP(offset_in_page(data) + len, PAGE_SIZE);
	sgl = kvmalloc_array(nents, sizeof(*sgl), GFP_KERNEL);
	if (!sgl)
		return -ENOMEM;
	sg_init_table(sgl, nents);
	for (i = 0; left; p += chunk, left -= chunk) {
		struct page *page = vmalloc_to_page(p);

		off = offset_in_page(p);
		chunk = min_t(size_t, PAGE_SIZE - off, left);
		if (i && page_to_phys(page) + off ==
			 sg_phys(&sgl[i - 1]) + sgl[i - 1].length) {
			sgl[i - 1].length += chunk;
			continue;
		}
		sg_set_page(&sgl[i++], page, chunk, off);
	}
	sg_mark_end(&sgl[i - 1]);
	if (i <= max) {
		pr_debug("%s: %zu bytes of request data in %u sg entries\n",
			 dev->name, len, i);
		req->data_sgl = sgl;
		return 0;
	}
	pr_debug("%s: %zu bytes of request data need %u sg entries: copying\n",
		 dev->name, len, i);

	kvfree(sgl);
	req->data_copy = kmalloc(len, GFP_KERNEL | __GFP_NOWARN);
	if (!req->data_copy)
		return -E2BIG;
	memcpy(req->data_copy, data, len);
	data = req->data_copy;

contiguous:
	sgl = kmalloc(sizeof(*sgl), GFP_KERNEL);
	if (!sgl)
		return -ENOMEM;
	sg_init_one(sgl, data, len);
	req->data_sgl = sgl;
	return 0;
}

/* Hand a request to the device. Waits for ring space if the ring is full. */
static int vdmabuf_req_queue(struct vdmabuf_device *dev,
			     struct vdmabuf_req *req)
{
	unsigned long deadline = jiffies + VDMABUF_STALL_WARN_SECS * HZ;
	struct scatterlist in_sg, out_sg, *sgs[3];
	unsigned int n_out = 0;
	unsigned long flags, gen;
	int ret;

	sg_init_one(&in_sg, &req->in, req->in_len);
	sgs[n_out++] = &in_sg;
	if (req->data_sgl)
		sgs[n_out++] = req->data_sgl;
	sg_init_one(&out_sg, &req->out, req->out_len);
	sgs[n_out] = &out_sg;

	for (;;) {
		spin_lock_irqsave(&dev->req_lock, flags);
		if (dev->removed) {
			spin_unlock_irqrestore(&dev->req_lock, flags);
			ret = -ENODEV;
			break;
		}
		ret = virtqueue_add_sgs(dev->reqq, sgs, n_out, 1, req,
					GFP_ATOMIC);
		if (!ret) {
			kref_get(&req->ref);	/* the queue's reference */
			virtqueue_kick(dev->reqq);
			spin_unlock_irqrestore(&dev->req_lock, flags);
			break;
		}
		gen = dev->space_gen;
		spin_unlock_irqrestore(&dev->req_lock, flags);
		if (ret != -ENOSPC)
			break;
		if (time_after(jiffies, deadline)) {
			ret = -EBUSY;
			break;
		}
		wait_event_timeout(dev->space_wq,
				   READ_ONCE(dev->space_gen) != gen ||
				   READ_ONCE(dev->removed), HZ);
	}

	/* the descriptors hold the addresses now; the sg list is not needed */
	kvfree(req->data_sgl);
	req->data_sgl = NULL;
	return ret;
}

/* The device returned a request (or the device went away: @error). */
static void vdmabuf_req_finish(struct vdmabuf_device *dev,
			       struct vdmabuf_req *req, unsigned int len,
			       int error)
{
	lockdep_assert_held(&dev->req_lock);

	req->used_len = len;
	req->error = error;
	if (req->holds_slot) {
		req->holds_slot = false;
		up(&dev->start_slots);
	}
	if (atomic_xchg(&req->state, VDMABUF_REQ_DONE) ==
	    VDMABUF_REQ_ABANDONED) {
		/*
		 * The waiter gave up. A START the device granted anyway holds
		 * an access nobody will end: end it from process context.
		 */
		if (!error && vdmabuf_req_is_start(req) &&
		    len >= sizeof(req->out.hdr) &&
		    le32_to_cpu(req->out.hdr.status) == VIRTIO_DMABUF_S_OK) {
			list_add_tail(&req->orphan, &dev->orphans);
			schedule_work(&dev->orphan_work);
			return;	/* the list keeps the reference */
		}
	} else {
		complete(&req->done);
	}
	vdmabuf_req_put(req);
}

static void vdmabuf_reqq_done(struct virtqueue *vq)
{
	struct vdmabuf_device *dev = vq->vdev->priv;
	struct vdmabuf_req *req;
	unsigned long flags;
	unsigned int len;

	spin_lock_irqsave(&dev->req_lock, flags);
	do {
		virtqueue_disable_cb(vq);
		while ((req = virtqueue_get_buf(vq, &len)))
			vdmabuf_req_finish(dev, req, len, 0);
		if (unlikely(virtqueue_is_broken(vq)))
			break;
	} while (!virtqueue_enable_cb(vq));
	dev->space_gen++;
	spin_unlock_irqrestore(&dev->req_lock, flags);
	wake_up_all(&dev->space_wq);
}

static int vdmabuf_req_result(const struct vdmabuf_req *req)
{
	int ret;

	if (req->error)
		return req->error;
	if (req->used_len < sizeof(req->out.hdr))
		return -EPROTO;
	ret = vdmabuf_status_to_errno(le32_to_cpu(req->out.hdr.status));
	if (!ret && req->used_len < req->out_len)
		return -EPROTO;
	return ret;
}

/*
 * Submit a request that the device answers without waiting (everything but
 * a SYNC START) and wait for the answer. The wait is not interruptible: the
 * device may be using memory that the caller frees afterwards (the pages of
 * CREATE and ATTACH). It ends when the device answers or goes away.
 */
int vdmabuf_req_run(struct vdmabuf_device *dev, struct vdmabuf_req *req)
{
	unsigned int waited = 0;
	int ret;

	ret = vdmabuf_req_queue(dev, req);
	if (ret) {
		kfree(req->data_copy);
		req->data_copy = NULL;
		return ret;
	}
	while (!wait_for_completion_timeout(&req->done,
					    VDMABUF_STALL_WARN_SECS * HZ)) {
		waited += VDMABUF_STALL_WARN_SECS;
		pr_warn("%s: request %#x not answered for %u s\n", dev->name,
			le32_to_cpu(req->in.hdr.type), waited);
	}
	/* the device is done with the request: drop the data's copy */
	kfree(req->data_copy);
	req->data_copy = NULL;
	return vdmabuf_req_result(req);
}

/*
 * Submit a SYNC START and wait for it interruptibly, at most @bound_ms. At
 * most dev->max_starts STARTs are in the device at once so that ENDs always
 * find room in the ring. If the caller gives up, the request stays with the
 * device; should the device still grant it, the access is ended by
 * vdmabuf_orphan_work().
 */
int vdmabuf_req_run_start(struct vdmabuf_device *dev, struct vdmabuf_req *req,
			  unsigned int bound_ms)
{
	long left;
	int ret;

	if (down_interruptible(&dev->start_slots))
		return -ERESTARTSYS;
	req->holds_slot = true;
	ret = vdmabuf_req_queue(dev, req);
	if (ret) {
		req->holds_slot = false;
		up(&dev->start_slots);
		return ret;
	}

	left = wait_for_completion_interruptible_timeout(&req->done,
					msecs_to_jiffies(bound_ms));
	if (left > 0)
		return vdmabuf_req_result(req);
	if (atomic_cmpxchg(&req->state, VDMABUF_REQ_PENDING,
			   VDMABUF_REQ_ABANDONED) != VDMABUF_REQ_PENDING)
		return vdmabuf_req_result(req);	/* answered meanwhile */
	return left ? -ERESTARTSYS : -ETIMEDOUT;
}

static void vdmabuf_orphan_work(struct work_struct *work)
{
	struct vdmabuf_device *dev = container_of(work, struct vdmabuf_device,
						  orphan_work);
	struct vdmabuf_req *req, *end;
	int ret;

	for (;;) {
		spin_lock_irq(&dev->req_lock);
		req = list_first_entry_or_null(&dev->orphans,
					       struct vdmabuf_req, orphan);
		if (req)
			list_del_init(&req->orphan);
		spin_unlock_irq(&dev->req_lock);
		if (!req)
			break;

		end = vdmabuf_req_alloc(VIRTIO_DMABUF_REQ_SYNC,
					sizeof(end->in.sync),
					sizeof(end->out.hdr));
		if (end) {
			end->in.sync = req->in.sync;
			end->in.sync.flags |=
				cpu_to_le32(VIRTIO_DMABUF_SYNC_END);
			end->in.sync.timeout_ms = 0;
			ret = vdmabuf_req_run(dev, end);
			if (ret && ret != -ENODEV)
				pr_warn("%s: ending an abandoned access: %d\n",
					dev->name, ret);
			vdmabuf_req_put(end);
		}
		vdmabuf_req_put(req);
	}
}

/* ------------------------------------------------------------------ */
/* event queue                                                        */
/* ------------------------------------------------------------------ */

static int vdmabuf_evq_add(struct vdmabuf_device *dev,
			   struct virtio_dmabuf_event *ev)
{
	struct scatterlist sg;

	sg_init_one(&sg, ev, sizeof(*ev));
	return virtqueue_add_inbuf(dev->evq, &sg, 1, ev, GFP_ATOMIC);
}

static void vdmabuf_evq_fill(struct vdmabuf_device *dev)
{
	unsigned int i;

	spin_lock_irq(&dev->evq_lock);
	for (i = 0; i < dev->nr_events; i++)
		if (vdmabuf_evq_add(dev, &dev->events[i]))
			break;
	virtqueue_kick(dev->evq);
	spin_unlock_irq(&dev->evq_lock);
}

static void vdmabuf_handle_event(struct vdmabuf_device *dev,
				 const struct virtio_dmabuf_event *ev)
{
	switch (le32_to_cpu(ev->type)) {
	case VIRTIO_DMABUF_EVENT_REVOKED:
		vdmabuf_buffer_revoke(dev, ev->uuid);
		break;
	default:
		break;		/* unknown events are ignored */
	}
}

static void vdmabuf_event_work(struct work_struct *work)
{
	struct vdmabuf_device *dev = container_of(work, struct vdmabuf_device,
						  event_work);
	struct virtio_dmabuf_event *ev;
	unsigned int len;

	for (;;) {
		spin_lock_irq(&dev->evq_lock);
		ev = virtqueue_get_buf(dev->evq, &len);
		spin_unlock_irq(&dev->evq_lock);
		if (!ev)
			break;
		if (len >= sizeof(*ev))
			vdmabuf_handle_event(dev, ev);

		spin_lock_irq(&dev->evq_lock);
		if (!vdmabuf_device_gone(dev)) {
			memset(ev, 0, sizeof(*ev));
			if (!vdmabuf_evq_add(dev, ev))
				virtqueue_kick(dev->evq);
		}
		spin_unlock_irq(&dev->evq_lock);
	}
}

static void vdmabuf_evq_done(struct virtqueue *vq)
{
	struct vdmabuf_device *dev = vq->vdev->priv;

	schedule_work(&dev->event_work);
}

/* ------------------------------------------------------------------ */
/* probe and remove                                                   */
/* ------------------------------------------------------------------ */

static int vdmabuf_find_vqs(struct vdmabuf_device *dev)
{
	struct virtqueue *vqs[VIRTIO_DMABUF_NUM_VQS];
	int ret;
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 11, 0)
	struct virtqueue_info vqs_info[VIRTIO_DMABUF_NUM_VQS] = {
		[VIRTIO_DMABUF_VQ_REQUEST] = { "request", vdmabuf_reqq_done },
		[VIRTIO_DMABUF_VQ_EVENT] = { "event", vdmabuf_evq_done },
	};

	ret = virtio_find_vqs(dev->vdev, VIRTIO_DMABUF_NUM_VQS, vqs, vqs_info,
			      NULL);
#else
	vq_callback_t *callbacks[VIRTIO_DMABUF_NUM_VQS] = {
		[VIRTIO_DMABUF_VQ_REQUEST] = vdmabuf_reqq_done,
		[VIRTIO_DMABUF_VQ_EVENT] = vdmabuf_evq_done,
	};
	static const char * const names[VIRTIO_DMABUF_NUM_VQS] = {
		[VIRTIO_DMABUF_VQ_REQUEST] = "request",
		[VIRTIO_DMABUF_VQ_EVENT] = "event",
	};

	ret = virtio_find_vqs(dev->vdev, VIRTIO_DMABUF_NUM_VQS, vqs, callbacks,
			      names, NULL);
#endif
	if (ret)
		return ret;
	dev->reqq = vqs[VIRTIO_DMABUF_VQ_REQUEST];
	dev->evq = vqs[VIRTIO_DMABUF_VQ_EVENT];
	return 0;
}

static void vdmabuf_read_config(struct vdmabuf_device *dev)
{
	struct virtio_device *vdev = dev->vdev;

	virtio_cread_le(vdev, struct virtio_dmabuf_config, max_segments,
			&dev->max_segments);
	virtio_cread_le(vdev, struct virtio_dmabuf_config, max_buffers,
			&dev->max_buffers);
	virtio_cread_le(vdev, struct virtio_dmabuf_config, max_bytes,
			&dev->max_bytes);
	virtio_cread_le(vdev, struct virtio_dmabuf_config, sync_timeout_ms,
			&dev->sync_timeout_ms);
}

static int vdmabuf_probe(struct virtio_device *vdev)
{
	struct vdmabuf_device *dev;
	int ret;

	BUILD_BUG_ON(sizeof(struct virtio_dmabuf_config) != 24);
	BUILD_BUG_ON(sizeof(struct virtio_dmabuf_req_hdr) != 8);
	BUILD_BUG_ON(sizeof(struct virtio_dmabuf_resp_hdr) != 8);
	BUILD_BUG_ON(sizeof(struct virtio_dmabuf_seg) != 16);
	BUILD_BUG_ON(sizeof(struct virtio_dmabuf_create) != 16);
	BUILD_BUG_ON(sizeof(struct virtio_dmabuf_create_resp) != 24);
	BUILD_BUG_ON(sizeof(struct virtio_dmabuf_uuid) != 16);
	BUILD_BUG_ON(sizeof(struct virtio_dmabuf_lookup_resp) != 24);
	BUILD_BUG_ON(sizeof(struct virtio_dmabuf_attach) != 24);
	BUILD_BUG_ON(sizeof(struct virtio_dmabuf_sync) != 40);
	BUILD_BUG_ON(sizeof(struct virtio_dmabuf_event) != 24);

	if (!virtio_has_feature(vdev, VIRTIO_F_VERSION_1)) {
		dev_err(&vdev->dev, "VIRTIO_F_VERSION_1 not offered\n");
		return -ENODEV;
	}
	if (!vdev->config->get) {
		dev_err(&vdev->dev, "device has no configuration space\n");
		return -EINVAL;
	}

	dev = kzalloc(sizeof(*dev), GFP_KERNEL);
	if (!dev)
		return -ENOMEM;
	kref_init(&dev->ref);
	dev->vdev = vdev;
	spin_lock_init(&dev->req_lock);
	spin_lock_init(&dev->evq_lock);
	init_waitqueue_head(&dev->space_wq);
	init_waitqueue_head(&dev->table_wq);
	INIT_LIST_HEAD(&dev->orphans);
	INIT_WORK(&dev->orphan_work, vdmabuf_orphan_work);
	INIT_WORK(&dev->event_work, vdmabuf_event_work);
	mutex_init(&dev->lock);
	mutex_init(&dev->import_lock);
	hash_init(dev->buffers);
	vdev->priv = dev;

	ret = ida_alloc(&vdmabuf_ida, GFP_KERNEL);
	if (ret < 0)
		goto err_free;
	dev->index = ret;
	snprintf(dev->name, sizeof(dev->name), VIRTIO_DMABUF_DEV_PREFIX "%d",
		 dev->index);

	vdmabuf_read_config(dev);
	dev->can_import = virtio_has_feature(vdev, VIRTIO_DMABUF_F_IMPORT);
	dev->indirect = virtio_has_feature(vdev, VIRTIO_RING_F_INDIRECT_DESC);

	ret = vdmabuf_find_vqs(dev);
	if (ret)
		goto err_ida;

	/*
	 * Every request is one descriptor with indirect descriptors and at
	 * least two without; keep two requests' worth free for ENDs.
	 */
	dev->queue_size = virtqueue_get_vring_size(dev->reqq);
	dev->max_starts = dev->queue_size / (dev->indirect ? 1 : 2);
	dev->max_starts = dev->max_starts > 3 ? dev->max_starts - 2 : 1;
	sema_init(&dev->start_slots, dev->max_starts);

	dev->nr_events = min_t(unsigned int, VDMABUF_NR_EVENTS,
			       virtqueue_get_vring_size(dev->evq));
	dev->events = kcalloc(dev->nr_events, sizeof(*dev->events),
			      GFP_KERNEL);
	if (!dev->events) {
		ret = -ENOMEM;
		goto err_vqs;
	}

	virtio_device_ready(vdev);
	vdmabuf_evq_fill(dev);

	ret = vdmabuf_chardev_register(dev);
	if (ret)
		goto err_reset;

	dev_info(&vdev->dev,
		 "/dev/%s: max_segments %u max_buffers %u max_bytes %llu sync_timeout_ms %u import %s queue %u%s\n",
		 dev->name, dev->max_segments, dev->max_buffers,
		 dev->max_bytes, dev->sync_timeout_ms,
		 dev->can_import ? "yes" : "no", dev->queue_size,
		 dev->indirect ? " indirect" : "");
	return 0;

err_reset:
	spin_lock_irq(&dev->req_lock);
	dev->removed = true;
	spin_unlock_irq(&dev->req_lock);
	virtio_reset_device(vdev);
	cancel_work_sync(&dev->event_work);
err_vqs:
	vdev->config->del_vqs(vdev);
	kfree(dev->events);
err_ida:
	ida_free(&vdmabuf_ida, dev->index);
err_free:
	vdev->priv = NULL;
	vdmabuf_device_put(dev);
	return ret;
}

/* Complete every request the device still holds; it was reset. */
static void vdmabuf_drain_requests(struct vdmabuf_device *dev)
{
	struct vdmabuf_req *req;
	unsigned int len;

	spin_lock_irq(&dev->req_lock);
	while ((req = virtqueue_get_buf(dev->reqq, &len)))
		vdmabuf_req_finish(dev, req, len, 0);
	while ((req = virtqueue_detach_unused_buf(dev->reqq)))
		vdmabuf_req_finish(dev, req, 0, -ENODEV);
	dev->space_gen++;
	spin_unlock_irq(&dev->req_lock);
	wake_up_all(&dev->space_wq);
}

static void vdmabuf_drop_orphans(struct vdmabuf_device *dev)
{
	struct vdmabuf_req *req, *tmp;
	LIST_HEAD(list);

	spin_lock_irq(&dev->req_lock);
	list_splice_init(&dev->orphans, &list);
	spin_unlock_irq(&dev->req_lock);
	list_for_each_entry_safe(req, tmp, &list, orphan) {
		list_del_init(&req->orphan);
		vdmabuf_req_put(req);
	}
}

static void vdmabuf_remove(struct virtio_device *vdev)
{
	struct vdmabuf_device *dev = vdev->priv;

	spin_lock_irq(&dev->req_lock);
	dev->removed = true;
	spin_unlock_irq(&dev->req_lock);

	vdmabuf_chardev_unregister(dev);

	/*
	 * After the reset the device releases everything this driver held
	 * (spec section 10) and touches no guest memory: pending requests are
	 * completed with -ENODEV and buffers still open free their pages
	 * without RELEASE.
	 */
	virtio_reset_device(vdev);
	cancel_work_sync(&dev->event_work);
	vdmabuf_drain_requests(dev);
	cancel_work_sync(&dev->orphan_work);
	vdmabuf_drop_orphans(dev);
	while (virtqueue_detach_unused_buf(dev->evq))
		;
	vdev->config->del_vqs(vdev);
	kfree(dev->events);
	dev->events = NULL;
	ida_free(&vdmabuf_ida, dev->index);
	dev_info(&vdev->dev, "/dev/%s removed\n", dev->name);
	vdev->priv = NULL;
	vdmabuf_device_put(dev);
}

static const struct virtio_device_id vdmabuf_id_table[] = {
	{ VIRTIO_ID_DMABUF, VIRTIO_DEV_ANY_ID },
	{ 0 },
};
MODULE_DEVICE_TABLE(virtio, vdmabuf_id_table);

static const unsigned int vdmabuf_features[] = {
	VIRTIO_DMABUF_F_IMPORT,
};

static struct virtio_driver vdmabuf_driver = {
	.driver.name = KBUILD_MODNAME,
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 10, 0)
	.driver.owner = THIS_MODULE,
#endif
	.id_table = vdmabuf_id_table,
	.feature_table = vdmabuf_features,
	.feature_table_size = ARRAY_SIZE(vdmabuf_features),
	.probe = vdmabuf_probe,
	.remove = vdmabuf_remove,
};

module_virtio_driver(vdmabuf_driver);

MODULE_DESCRIPTION("Virtio dma-buf sharing device driver");
MODULE_LICENSE("GPL");
MODULE_INFO(import_ns, "DMA_BUF");
