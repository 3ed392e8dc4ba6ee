// SPDX-License-Identifier: GPL-2.0
/*
 * Virtio dma-buf sharing device: transport.
 *
 * The virtqueues: submitting a request, waiting for it and completing it
 * (request queue), requests whose waiter left (orphans), pages the device may
 * still use with no request tracking them (kept), and the event queue. What a
 * request means is not known here: virtio_dmabuf_request.c builds them, and
 * the two upcalls the driver registers (dev->upcalls) undo late answers and
 * handle REVOKED events. Also the device's reference count.
 */

#include <linux/jiffies.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/slab.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <linux/vmalloc.h>

#include "virtio_dmabuf_internal.h"
#include "virtio_dmabuf_compat.h"

/*
 * How long a request other than a SYNC START waits for ring space and for
 * the device's answer, in total. Out-of-range values are refused (EINVAL).
 */
static unsigned int request_timeout_ms = VDMABUF_REQ_TIMEOUT_MS;

static int vdmabuf_set_request_timeout(const char *val,
				       const struct kernel_param *kp)
{
	return param_set_uint_minmax(val, kp, VDMABUF_REQ_TIMEOUT_MIN_MS,
				     VDMABUF_REQ_TIMEOUT_MAX_MS);
}

static const struct kernel_param_ops vdmabuf_request_timeout_ops = {
	.set = vdmabuf_set_request_timeout,
	.get = param_get_uint,
};

module_param_cb(request_timeout_ms, &vdmabuf_request_timeout_ops,
		&request_timeout_ms, 0644);
__MODULE_PARM_TYPE(request_timeout_ms, "uint");
MODULE_PARM_DESC(request_timeout_ms,
		 "ms a request other than SYNC START waits for the device before failing with ETIMEDOUT (100-3600000, default 30000)");

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
	[VIRTIO_DMABUF_S_NO_SPACE]		= -ENOSPC,
};

static int vdmabuf_status_to_errno(u32 status)
{
	if (status >= ARRAY_SIZE(vdmabuf_errno))
		return -EPROTO;
	return vdmabuf_errno[status];
}

/* ------------------------------------------------------------------ */
/* requests                                                           */
/* ------------------------------------------------------------------ */

/* The kref release: process context only (kvfree, the pages). */
static void vdmabuf_req_free(struct kref *ref)
{
	struct vdmabuf_req *req = container_of(ref, struct vdmabuf_req, ref);

	kvfree(req->data_sgl);
	kfree(req->data_copy);
	kvfree(req->data);
	if (req->pages)
		vdmabuf_pages_put(req->pages);
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
	might_sleep();
	kref_put(&req->ref, vdmabuf_req_free);
}

const char *vdmabuf_req_name(const struct vdmabuf_req *req)
{
	switch (vdmabuf_req_type(req)) {
	case VIRTIO_DMABUF_REQ_CREATE:
		return "CREATE";
	case VIRTIO_DMABUF_REQ_RELEASE:
		return "RELEASE";
	case VIRTIO_DMABUF_REQ_LOOKUP:
		return "LOOKUP";
	case VIRTIO_DMABUF_REQ_ATTACH:
		return "ATTACH";
	case VIRTIO_DMABUF_REQ_SYNC:
		return vdmabuf_req_is_start(req) ? "SYNC START" : "SYNC END";
	case VIRTIO_DMABUF_REQ_MAP:
		return "MAP";
	default:
		return "unknown";
	}
}

/*
 * Attach the readable data that follows the request body (a segment list).
 * @data (kvmalloc'ed or vmalloc'ed) becomes the request's, also on failure:
 * it is freed with the request, which outlives the device's use of it.
 *
 * The device reads all readable descriptors as one byte stream. Physically
 * contiguous memory becomes one sg entry; vmalloc memory one entry per run of
 * physically contiguous pages. A chain must not be longer than the queue
 * (virtio spec, also inside an indirect table), so a vmalloc list that needs
 * more entries is copied into one contiguous allocation (at most 4 MiB for
 * the spec's 262,144 segments).
 */
int vdmabuf_req_set_data(struct vdmabuf_device *dev, struct vdmabuf_req *req,
			 void *data, size_t len)
{
	unsigned int max = dev->queue_size > 2 ? dev->queue_size - 2 : 1;
	unsigned int nents, i, off;
	struct scatterlist *sgl;
	size_t left = len, chunk;
	u8 *p = data;

	if (WARN_ON(req->data))
		return -EINVAL;
	req->data = data;
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
	kvfree(req->data);
	req->data = NULL;
	data = req->data_copy;

contiguous:
	sgl = kmalloc(sizeof(*sgl), GFP_KERNEL);
	if (!sgl)
		return -ENOMEM;
	sg_init_one(sgl, data, len);
	req->data_sgl = sgl;
	return 0;
}

/* Jiffies left until @deadline, at least 1 (a last look). */
static long vdmabuf_left(unsigned long deadline)
{
	long left = (long)(deadline - jiffies);

	return left > 0 ? left : 1;
}

/*
 * Hand a request to the device. Waits for ring space until @deadline if the
 * ring is full: interruptibly for a START, killably for anything else.
 * Returns -ETIMEDOUT at the deadline, -ERESTARTSYS (START) or -EINTR on a
 * signal; the request then never reached the device.
 */
static int vdmabuf_req_queue(struct vdmabuf_device *dev,
			     struct vdmabuf_req *req, unsigned long deadline)
{
	bool start = vdmabuf_req_is_start(req);
	struct scatterlist in_sg, out_sg, *sgs[3];
	unsigned int n_out = 0;
	unsigned long flags, gen;
	long left;
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
		if (time_after_eq(jiffies, deadline)) {
			ret = -ETIMEDOUT;
			break;
		}
		if (start)
			left = wait_event_interruptible_timeout(dev->space_wq,
					READ_ONCE(dev->space_gen) != gen ||
					READ_ONCE(dev->removed),
					vdmabuf_left(deadline));
		else
			left = wait_event_killable_timeout(dev->space_wq,
					READ_ONCE(dev->space_gen) != gen ||
					READ_ONCE(dev->removed),
					vdmabuf_left(deadline));
		if (left < 0) {
			ret = start ? -ERESTARTSYS : -EINTR;
			break;
		}
	}

	/* the descriptors hold the addresses now; the sg list is not needed */
	kvfree(req->data_sgl);
	req->data_sgl = NULL;
	return ret;
}

/*
 * The device returned a request (or the device went away: @error). The
 * queue's reference goes to the waiter, or to the orphan worker if the
 * waiter left; nothing is freed here (interrupt context).
 */
static void vdmabuf_req_finish(struct vdmabuf_device *dev,
			       struct vdmabuf_req *req, unsigned int len,
			       int error)
{
	lockdep_assert_held(&dev->req_lock);

	req->used_len = len;
	req->error = error;
	if (req->holds_slot) {
		req->holds_slot = false;
		atomic_inc(&dev->start_slots);
	}
	if (atomic_xchg(&req->state, VDMABUF_REQ_DONE) ==
	    VDMABUF_REQ_ABANDONED) {
		list_add_tail(&req->orphan, &dev->orphans);
		queue_work(dev->wq, &dev->orphan_work);
	} else {
		complete(&req->done);
	}
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

/* The device's status, or -EPROTO if it wrote none. */
int vdmabuf_req_status(const struct vdmabuf_req *req)
{
	if (req->error)
		return req->error;
	if (req->used_len < sizeof(req->out.hdr))
		return -EPROTO;
	return vdmabuf_status_to_errno(le32_to_cpu(req->out.hdr.status));
}

static int vdmabuf_req_result(const struct vdmabuf_req *req)
{
	int ret = vdmabuf_req_status(req);

	if (!ret && req->used_len < req->out_len)
		return -EPROTO;
	return ret;
}

/*
 * Wait until the device answers, at most until @deadline: interruptibly for
 * a START, killably for anything else. Returns the answer's result, or
 * -ETIMEDOUT, -ERESTARTSYS (START) or -EINTR (a fatal signal) after leaving
 * the request to the device (req->abandoned): the queue's reference then
 * keeps it, and everything it refers to, until the device returns it.
 */
static int vdmabuf_req_wait(struct vdmabuf_device *dev,
			    struct vdmabuf_req *req, unsigned long deadline,
			    unsigned int timeout_ms)
{
	bool start = vdmabuf_req_is_start(req);
	long left;

	if (start)
		left = wait_for_completion_interruptible_timeout(&req->done,
						vdmabuf_left(deadline));
	else
		left = wait_for_completion_killable_timeout(&req->done,
						vdmabuf_left(deadline));
	if (left <= 0) {
		if (atomic_cmpxchg(&req->state, VDMABUF_REQ_PENDING,
				   VDMABUF_REQ_ABANDONED) ==
		    VDMABUF_REQ_PENDING) {
			/* the queue's reference stays with the chain */
			req->abandoned = true;
			if (!start)
				pr_warn_ratelimited("%s: %s request %s (request_timeout_ms %u): left to the device\n",
						    dev->name,
						    vdmabuf_req_name(req),
						    left ? "interrupted by a fatal signal" :
						    "not answered in time",
						    timeout_ms);
			if (left)
				return start ? -ERESTARTSYS : -EINTR;
			return -ETIMEDOUT;
		}
		/* answered just now: finish() completes in a moment */
		wait_for_completion(&req->done);
	}
	vdmabuf_req_put(req);		/* the queue's reference */
	return vdmabuf_req_result(req);
}

/*
 * Submit a request that the device answers without waiting (everything but
 * a SYNC START) and wait for the answer, killably and at most
 * request_timeout_ms. A request that is not answered in time stays with the
 * device together with everything it lets the device touch (req->data,
 * req->pages); the late-answer upcall settles it when the device answers,
 * vdmabuf_transport_destroy() after a reset.
 */
int vdmabuf_req_run(struct vdmabuf_device *dev, struct vdmabuf_req *req)
{
	unsigned int timeout_ms = READ_ONCE(request_timeout_ms);
	unsigned long deadline = jiffies + msecs_to_jiffies(timeout_ms);
	int ret;

	if (WARN_ON(vdmabuf_req_is_start(req)))
		return -EINVAL;
	ret = vdmabuf_req_queue(dev, req, deadline);
	if (ret)
		return ret;
	return vdmabuf_req_wait(dev, req, deadline, timeout_ms);
}

/* Take one of the START slots, interruptibly, until @deadline. */
static int vdmabuf_start_slot_get(struct vdmabuf_device *dev,
				  unsigned long deadline)
{
	long left;

	for (;;) {
		if (atomic_add_unless(&dev->start_slots, -1, 0))
			return 0;
		if (vdmabuf_device_gone(dev))
			return -ENODEV;
		if (time_after_eq(jiffies, deadline))
			return -ETIMEDOUT;
		left = wait_event_interruptible_timeout(dev->space_wq,
				atomic_read(&dev->start_slots) > 0 ||
				READ_ONCE(dev->removed),
				vdmabuf_left(deadline));
		if (left < 0)
			return -ERESTARTSYS;
	}
}

/*
 * Submit a SYNC START and wait for it interruptibly, at most @bound_ms in
 * all. At most dev->max_starts STARTs are in the device at once so that ENDs
 * always find room in the ring. If the caller gives up, the request stays
 * with the device; should the device still grant it, the late-answer upcall
 * ends the access.
 */
int vdmabuf_req_run_start(struct vdmabuf_device *dev, struct vdmabuf_req *req,
			  unsigned int bound_ms)
{
	unsigned long deadline = jiffies + msecs_to_jiffies(bound_ms);
	int ret;

	if (WARN_ON(!vdmabuf_req_is_start(req)))
		return -EINVAL;
	ret = vdmabuf_start_slot_get(dev, deadline);
	if (ret)
		return ret;
	req->holds_slot = true;
	ret = vdmabuf_req_queue(dev, req, deadline);
	if (ret) {
		req->holds_slot = false;
		atomic_inc(&dev->start_slots);
		wake_up_all(&dev->space_wq);
		return ret;
	}
	return vdmabuf_req_wait(dev, req, deadline, bound_ms);
}

/* ------------------------------------------------------------------ */
/* pages kept for the device                                          */
/* ------------------------------------------------------------------ */

/*
 * The device may use @mem and no request tracks that (a RELEASE that failed
 * or could not be sent): keep the pages until the device was reset. Consumes
 * the reference.
 */
void vdmabuf_device_keep_pages(struct vdmabuf_device *dev,
			       struct vdmabuf_pages *mem)
{
	unsigned long flags;

	if (!mem)
		return;
	spin_lock_irqsave(&dev->req_lock, flags);
	if (!dev->reset && list_empty(&mem->node)) {
		list_add_tail(&mem->node, &dev->kept);
		mem = NULL;	/* the list keeps the reference */
	}
	spin_unlock_irqrestore(&dev->req_lock, flags);
	/* after the reset, or kept already by another reference */
	if (mem)
		vdmabuf_pages_put(mem);
}

static void vdmabuf_put_kept(struct vdmabuf_device *dev)
{
	struct vdmabuf_pages *mem, *tmp;
	LIST_HEAD(list);

	spin_lock_irq(&dev->req_lock);
	list_splice_init(&dev->kept, &list);
	spin_unlock_irq(&dev->req_lock);
	list_for_each_entry_safe(mem, tmp, &list, node) {
		list_del_init(&mem->node);
		vdmabuf_pages_put(mem);
	}
}

/* ------------------------------------------------------------------ */
/* orphans                                                            */
/* ------------------------------------------------------------------ */

static struct vdmabuf_req *vdmabuf_orphan_next(struct vdmabuf_device *dev)
{
	struct vdmabuf_req *req;

	spin_lock_irq(&dev->req_lock);
	req = list_first_entry_or_null(&dev->orphans, struct vdmabuf_req,
				       orphan);
	if (req)
		list_del_init(&req->orphan);
	spin_unlock_irq(&dev->req_lock);
	return req;
}

/*
 * Requests whose waiter left and that the device has answered since: the
 * upcall undoes what the answers did (it may submit requests itself).
 */
static void vdmabuf_orphan_work(struct work_struct *work)
{
	struct vdmabuf_device *dev = container_of(work, struct vdmabuf_device,
						  orphan_work);
	struct vdmabuf_req *req;

	while ((req = vdmabuf_orphan_next(dev))) {
		dev->upcalls->late_answer(dev, req);
		vdmabuf_req_put(req);	/* the queue's reference */
	}
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
		dev->upcalls->revoked(dev, ev->uuid);
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

	queue_work(dev->wq, &dev->event_work);
}

/* ------------------------------------------------------------------ */
/* setup and teardown                                                 */
/* ------------------------------------------------------------------ */

/*
 * The device was reset: it touches no guest memory any more. Complete every
 * request it still held; those whose waiter left go to dev->orphans.
 */
static void vdmabuf_drain_requests(struct vdmabuf_device *dev)
{
	struct vdmabuf_req *req;
	unsigned int len;

	spin_lock_irq(&dev->req_lock);
	dev->reset = true;
	while ((req = virtqueue_get_buf(dev->reqq, &len)))
		vdmabuf_req_finish(dev, req, len, 0);
	while ((req = virtqueue_detach_unused_buf(dev->reqq)))
		vdmabuf_req_finish(dev, req, 0, -ENODEV);
	dev->space_gen++;
	spin_unlock_irq(&dev->req_lock);
	wake_up_all(&dev->space_wq);
}

static int vdmabuf_setup_vqs(struct vdmabuf_device *dev)
{
	static const struct vdmabuf_vq_info info[VIRTIO_DMABUF_NUM_VQS] = {
		[VIRTIO_DMABUF_VQ_REQUEST] = { "request", vdmabuf_reqq_done },
		[VIRTIO_DMABUF_VQ_EVENT] = { "event", vdmabuf_evq_done },
	};
	struct virtqueue *vqs[VIRTIO_DMABUF_NUM_VQS];
	int ret;

	ret = vdmabuf_find_vqs(dev->vdev, VIRTIO_DMABUF_NUM_VQS, vqs, info);
	if (ret)
		return ret;
	dev->reqq = vqs[VIRTIO_DMABUF_VQ_REQUEST];
	dev->evq = vqs[VIRTIO_DMABUF_VQ_EVENT];
	return 0;
}

/*
 * Set up the transport half of @dev: locks, workers, the virtqueues and the
 * event buffers. dev->vdev, dev->name, dev->indirect and dev->upcalls must be
 * set. The device is not ready yet: vdmabuf_transport_start() follows
 * virtio_device_ready().
 */
int vdmabuf_transport_init(struct vdmabuf_device *dev)
{
	int ret;

	spin_lock_init(&dev->req_lock);
	spin_lock_init(&dev->evq_lock);
	init_waitqueue_head(&dev->space_wq);
	INIT_LIST_HEAD(&dev->orphans);
	INIT_LIST_HEAD(&dev->kept);
	INIT_WORK(&dev->orphan_work, vdmabuf_orphan_work);
	INIT_WORK(&dev->event_work, vdmabuf_event_work);

	/*
	 * The workers may wait for the device for up to request_timeout_ms
	 * (an hour at most): not on the system workqueue. Unbound, since they
	 * sleep; no WQ_MEM_RECLAIM: no memory reclaim waits for them (they
	 * allocate with GFP_KERNEL themselves). WQ_SYSFS: the administrator
	 * can see it and set its cpumask in
	 * /sys/devices/virtual/workqueue/<device name>/.
	 */
	dev->wq = alloc_workqueue("%s", WQ_UNBOUND | WQ_SYSFS, 0, dev->name);
	if (!dev->wq)
		return -ENOMEM;

	ret = vdmabuf_setup_vqs(dev);
	if (ret)
		goto err_wq;

	/*
	 * Every request is one descriptor with indirect descriptors and at
	 * least two without; keep two requests' worth free for ENDs.
	 */
	dev->queue_size = virtqueue_get_vring_size(dev->reqq);
	dev->max_starts = dev->queue_size / (dev->indirect ? 1 : 2);
	dev->max_starts = dev->max_starts > 3 ? dev->max_starts - 2 : 1;
	atomic_set(&dev->start_slots, dev->max_starts);

	dev->nr_events = min_t(unsigned int, VDMABUF_NR_EVENTS,
			       virtqueue_get_vring_size(dev->evq));
	dev->events = kcalloc(dev->nr_events, sizeof(*dev->events),
			      GFP_KERNEL);
	if (!dev->events) {
		ret = -ENOMEM;
		goto err_vqs;
	}
	return 0;

err_vqs:
	dev->vdev->config->del_vqs(dev->vdev);
err_wq:
	destroy_workqueue(dev->wq);
	dev->wq = NULL;
	return ret;
}

/* The device is ready (virtio_device_ready()): give it the event buffers. */
void vdmabuf_transport_start(struct vdmabuf_device *dev)
{
	vdmabuf_evq_fill(dev);
}

/* No new requests from now on: they fail with -ENODEV. */
void vdmabuf_transport_shutdown(struct vdmabuf_device *dev)
{
	spin_lock_irq(&dev->req_lock);
	dev->removed = true;
	spin_unlock_irq(&dev->req_lock);
}

/*
 * Reset the device and tear the transport down. After the reset the device
 * releases everything this driver held (spec section 10) and touches no
 * guest memory: pending requests are completed with -ENODEV, abandoned ones
 * (and their data and pages) are freed, pages kept for the device are freed,
 * and buffers still open free their pages without RELEASE.
 */
void vdmabuf_transport_destroy(struct vdmabuf_device *dev)
{
	struct virtio_device *vdev = dev->vdev;

	vdmabuf_transport_shutdown(dev);
	virtio_reset_device(vdev);
	cancel_work_sync(&dev->event_work);
	vdmabuf_drain_requests(dev);
	cancel_work_sync(&dev->orphan_work);
	vdmabuf_drop_orphans(dev);
	vdmabuf_put_kept(dev);
	while (virtqueue_detach_unused_buf(dev->evq))
		;
	vdev->config->del_vqs(vdev);
	kfree(dev->events);
	dev->events = NULL;
	/* nothing queues work any more: the reset stopped the callbacks */
	destroy_workqueue(dev->wq);
	dev->wq = NULL;
}
