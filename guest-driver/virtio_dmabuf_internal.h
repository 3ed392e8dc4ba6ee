/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Virtio dma-buf sharing device: driver-internal definitions.
 *
 * Lifetimes:
 *  - struct vdmabuf_device is reference counted. probe() holds one reference
 *    (dropped by remove()), every open /dev/virtio-dmabuf<N> file one, every
 *    buffer one. After remove() the structure stays valid but every request
 *    fails with -ENODEV.
 *  - struct vdmabuf_buffer lives exactly as long as its dma_buf: it is freed
 *    from dma_buf_ops.release, after RELEASE was sent. Its memory is guest
 *    pages (own buffers and copies: struct vdmabuf_pages) or a range of the
 *    device's shared memory region (mapped imports: struct vdmabuf_shm).
 *  - struct vdmabuf_shm (the region, mapped with struct pages) is reference
 *    counted: the device holds one reference until remove(), every mapped
 *    import one. The last reference unmaps it, so no mapped import ever
 *    outlives the kernel mapping and the struct pages of its range.
 *  - struct vdmabuf_pages (a buffer's memory) is reference counted: the
 *    buffer holds one reference, and so does every request that lets the
 *    device touch the pages (CREATE, ATTACH, RELEASE). The pages are freed
 *    when the last reference goes: when the buffer is gone and no request the
 *    device may still act on refers to them. Pages the device may use with no
 *    request tracking that (a failed RELEASE) are kept on dev->kept until the
 *    device was reset.
 *  - struct vdmabuf_req is reference counted: the submitter holds one
 *    reference, the request queue another while the device owns the chain.
 *    The queue's reference passes to whoever settles the answer: the waiter,
 *    or, if the waiter gave up (signal, timeout), the orphan worker, which
 *    has the late-answer upcall undo what the late answer did. The request, its data and its pages
 *    therefore stay valid until the device returns the chain or is reset.
 *    The last reference is always put in process context.
 */
#ifndef _VIRTIO_DMABUF_INTERNAL_H
#define _VIRTIO_DMABUF_INTERNAL_H

#include <linux/completion.h>
#include <linux/dma-buf.h>
#include <linux/hashtable.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/memremap.h>
#include <linux/miscdevice.h>
#include <linux/mutex.h>
#include <linux/scatterlist.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/virtio.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#include <linux/virtio_dmabuf.h>	/* include/uapi: wire format, ioctls */

/* Slack added to a START's wait bound before the driver gives up waiting. */
#define VDMABUF_SYNC_SLACK_MS		2000
/*
 * Configuration space values the driver accepts (probe refuses the device
 * otherwise, README.md "Loading"): max_segments, max_buffers and max_bytes
 * at least 1; sync_timeout_ms from 1 ms to 1 hour.
 */
#define VDMABUF_SYNC_TIMEOUT_MAX_MS	3600000
/* request_timeout_ms: default and accepted range */
#define VDMABUF_REQ_TIMEOUT_MS		30000
#define VDMABUF_REQ_TIMEOUT_MIN_MS	100
#define VDMABUF_REQ_TIMEOUT_MAX_MS	3600000
/* Event buffers kept on the event queue (at most the queue size). */
#define VDMABUF_NR_EVENTS		64
/* log2 of the hash table buckets of the per-device buffer table. */
#define VDMABUF_TABLE_BITS		8
/* /sys/kernel/debug/<this>: the test knobs (virtio_dmabuf_pages.c) */
#define VDMABUF_DEBUGFS_DIR		"virtio-dmabuf"

struct dentry;
struct resource;
struct vdmabuf_backing;
struct vdmabuf_device;
struct vdmabuf_req;

/*
 * What the transport reports upwards, registered by virtio_dmabuf_main.c (so
 * that the transport calls no function of the layers above it). Both are
 * called from a worker, in process context.
 */
struct vdmabuf_upcalls {
	/*
	 * The device answered @req after its waiter had left: undo what the
	 * answer did. The caller keeps its reference to @req.
	 */
	void (*late_answer)(struct vdmabuf_device *dev,
			    struct vdmabuf_req *req);
	/* A REVOKED event: the origin of buffer @uuid went away. */
	void (*revoked)(struct vdmabuf_device *dev, const u8 *uuid);
};

struct vdmabuf_device {
	struct kref ref;
	struct virtio_device *vdev;
	const struct vdmabuf_upcalls *upcalls;
	int index;			/* N of /dev/virtio-dmabuf<N> */
	char name[32];
	struct miscdevice misc;

	/* configuration space, read at probe */
	u32 max_segments;
	u32 max_buffers;
	u64 max_bytes;
	u32 sync_timeout_ms;
	bool can_import;		/* VIRTIO_DMABUF_F_IMPORT negotiated */
	bool can_map;			/* VIRTIO_DMABUF_F_MAP negotiated */
	bool indirect;			/* VIRTIO_RING_F_INDIRECT_DESC negotiated */

	/* request queue */
	struct virtqueue *reqq;
	spinlock_t req_lock;		/* reqq, removed, reset, orphans, kept */
	bool removed;			/* remove() started: no new requests */
	bool reset;			/* the device was reset: it uses no memory */
	unsigned int queue_size;
	unsigned int max_starts;
	atomic_t start_slots;		/* STARTs the device may still take */
	wait_queue_head_t space_wq;	/* woken when reqq chains are returned */
	unsigned long space_gen;	/* bumped when reqq chains are returned */
	struct list_head orphans;	/* answered requests whose waiter left */
	struct workqueue_struct *wq;	/* orphan_work, event_work: may sleep long */
	struct work_struct orphan_work;
	struct list_head kept;		/* vdmabuf_pages kept until the reset */

	/* event queue */
	struct virtqueue *evq;
	spinlock_t evq_lock;		/* evq, events */
	struct virtio_dmabuf_event *events;
	unsigned int nr_events;
	struct work_struct event_work;

	/* buffers this driver holds (created or attached), by UUID */
	struct mutex lock;
	DECLARE_HASHTABLE(buffers, VDMABUF_TABLE_BITS);
	unsigned long table_gen;	/* bumped when a buffer leaves the table */
	wait_queue_head_t table_wq;	/* woken when a buffer leaves the table */
	struct mutex import_lock;	/* serializes IMPORT */

	/* shared memory region 0 (mapped imports), see virtio_dmabuf_shm.c */
	struct vdmabuf_shm *shm;	/* a reference; NULL: no mapped imports */
	u32 shm_state;			/* VIRTIO_DMABUF_SHM_* */
	u32 shm_error;			/* _UNUSABLE: why (errno) */
	u64 shm_addr;			/* the region as the device announced it */
	u64 shm_len;
	atomic_t nr_fallbacks;		/* MAPs answered UNSUPPORTED/NO_SPACE */
	atomic_t last_fallback;		/* errno of the latest */
};

/*
 * The device's shared memory region 0, mapped into the kernel with struct
 * pages (MEMORY_DEVICE_GENERIC) so that mapped imports can be handed to
 * importers as ordinary sg_tables and vmapped through the direct map.
 */
struct vdmabuf_shm {
	struct kref ref;
	struct resource *res;		/* request_mem_region() */
	phys_addr_t phys;
	u64 len;
	void *vaddr;			/* the direct map of the region */
	atomic64_t bytes_mapped;	/* by mapped imports now */
	atomic_t nr_mapped;
	char name[48];			/* the resource's name */
	struct dev_pagemap pgmap;	/* last: ends in a flexible array */
};

enum vdmabuf_kind {
	VDMABUF_OWN = VIRTIO_DMABUF_KIND_OWN,
	VDMABUF_IMPORTED = VIRTIO_DMABUF_KIND_IMPORTED,
};

/* bits of vdmabuf_buffer.state */
#define VDMABUF_REVOKED		0

/* The pages of a buffer, shared by the buffer and its requests. */
struct vdmabuf_pages {
	struct kref ref;
	struct list_head node;		/* in dev->kept */
	unsigned long nr;
	struct page *pages[];		/* NULL where allocation failed */
};

struct vdmabuf_buffer {
	struct vdmabuf_device *dev;	/* holds a reference */
	const struct vdmabuf_backing *backing;	/* pages or shared memory */
	struct dma_buf *dmabuf;
	struct hlist_node node;		/* in dev->buffers while hashed */
	bool hashed;
	bool registered;		/* CREATE/ATTACH done, RELEASE not yet */
	enum vdmabuf_kind kind;
	u8 uuid[VIRTIO_DMABUF_UUID_SIZE];
	u64 size;			/* bytes registered with the device */
	u32 flags;			/* LOOKUP-style VIRTIO_DMABUF_BUF_* */
	u32 share_flags;		/* own buffers: CREATE flags */
	unsigned long state;
	unsigned long nr_pages;
	struct vdmabuf_pages *mem;	/* guest pages: a reference, or NULL */
	struct vdmabuf_shm *shm;	/* mapped import: a reference, or NULL */
	u64 shm_offset;			/* mapped import: its range in the region */

	struct mutex lock;		/* mappings; mapped: REVOKED vs faults */
	struct list_head mappings;	/* struct vdmabuf_mapping, live */
};

enum vdmabuf_req_state {
	VDMABUF_REQ_PENDING,
	VDMABUF_REQ_DONE,
	VDMABUF_REQ_ABANDONED,
};

struct vdmabuf_req_in {
	struct virtio_dmabuf_req_hdr hdr;
	union {
		struct virtio_dmabuf_create create;
		struct virtio_dmabuf_uuid uuid;
		struct virtio_dmabuf_attach attach;
		struct virtio_dmabuf_sync sync;
		struct virtio_dmabuf_map map;
	};
};

union vdmabuf_req_out {
	struct virtio_dmabuf_resp_hdr hdr;
	struct virtio_dmabuf_create_resp create;
	struct virtio_dmabuf_lookup_resp lookup;
	struct virtio_dmabuf_map_resp map;
};

struct vdmabuf_req {
	struct kref ref;
	struct completion done;
	atomic_t state;			/* enum vdmabuf_req_state */
	struct list_head orphan;	/* in dev->orphans */
	bool holds_slot;		/* took one of dev->start_slots */
	bool abandoned;			/* the waiter left; the device has it */
	int error;			/* -ENODEV: the device went away */
	unsigned int used_len;
	size_t in_len;
	size_t out_len;
	/* extra readable data after in (segments), freed with the request */
	void *data;			/* kvmalloc'ed or vmalloc'ed */
	void *data_copy;		/* contiguous copy of a long list */
	struct scatterlist *data_sgl;	/* freed once queued */
	/* memory the device may touch while it holds the request */
	struct vdmabuf_pages *pages;	/* a reference, or NULL */
	struct vdmabuf_req_in in;
	union vdmabuf_req_out out;
};

static inline u32 vdmabuf_req_type(const struct vdmabuf_req *req)
{
	return le32_to_cpu(req->in.hdr.type);
}

static inline bool vdmabuf_req_is_start(const struct vdmabuf_req *req)
{
	return vdmabuf_req_type(req) == VIRTIO_DMABUF_REQ_SYNC &&
	       !(le32_to_cpu(req->in.sync.flags) & VIRTIO_DMABUF_SYNC_END);
}

/*
 * The files and what they offer to the ones above them. Calls go one way:
 * main -> chardev -> exporter -> request -> transport -> pages, and shm
 * next to pages (a file may skip layers downwards, never call upwards);
 * tools/callgraph.sh checks it.
 */

/* virtio_dmabuf_shm.c: the shared memory region */
void vdmabuf_shm_setup(struct vdmabuf_device *dev);
struct vdmabuf_shm *vdmabuf_shm_get(struct vdmabuf_shm *shm);
void vdmabuf_shm_put(struct vdmabuf_shm *shm);
bool vdmabuf_shm_range_ok(const struct vdmabuf_shm *shm, u64 offset, u64 len);
unsigned long vdmabuf_shm_pfn(const struct vdmabuf_shm *shm, u64 offset);
void *vdmabuf_shm_vaddr(const struct vdmabuf_shm *shm, u64 offset);
int vdmabuf_shm_sg_table(const struct vdmabuf_shm *shm, u64 offset, u64 len,
			 struct sg_table *sgt);

/* virtio_dmabuf_pages.c: buffer memory */
void vdmabuf_pages_debugfs_init(struct dentry *dir);
struct vdmabuf_pages *vdmabuf_pages_alloc(unsigned long nr, bool contiguous);
struct vdmabuf_pages *vdmabuf_pages_get(struct vdmabuf_pages *mem);
void vdmabuf_pages_put(struct vdmabuf_pages *mem);
struct virtio_dmabuf_seg *vdmabuf_pages_segs(const struct vdmabuf_pages *mem,
					     u64 size, u32 max_segs,
					     u32 *nr_segsp);

/* virtio_dmabuf_transport.c: virtqueues, requests in flight, device reference */
void vdmabuf_device_get(struct vdmabuf_device *dev);
void vdmabuf_device_put(struct vdmabuf_device *dev);
bool vdmabuf_device_gone(struct vdmabuf_device *dev);
struct vdmabuf_req *vdmabuf_req_alloc(u32 type, size_t body_len,
				      size_t resp_len);
void vdmabuf_req_put(struct vdmabuf_req *req);
int vdmabuf_req_set_data(struct vdmabuf_device *dev, struct vdmabuf_req *req,
			 void *data, size_t len);
int vdmabuf_req_run(struct vdmabuf_device *dev, struct vdmabuf_req *req);
int vdmabuf_req_run_start(struct vdmabuf_device *dev, struct vdmabuf_req *req,
			  unsigned int bound_ms);
int vdmabuf_req_status(const struct vdmabuf_req *req);
const char *vdmabuf_req_name(const struct vdmabuf_req *req);
void vdmabuf_device_keep_pages(struct vdmabuf_device *dev,
			       struct vdmabuf_pages *mem);
int vdmabuf_transport_init(struct vdmabuf_device *dev);
void vdmabuf_transport_start(struct vdmabuf_device *dev);
void vdmabuf_transport_shutdown(struct vdmabuf_device *dev);
void vdmabuf_transport_destroy(struct vdmabuf_device *dev);

/* virtio_dmabuf_request.c: the device's requests, late answers */
int vdmabuf_request_create(struct vdmabuf_device *dev,
			   struct vdmabuf_pages *mem, u64 size, u32 flags,
			   u8 *uuid);
int vdmabuf_request_lookup(struct vdmabuf_device *dev, const u8 *uuid,
			   u64 *sizep, u32 *flagsp);
int vdmabuf_request_attach(struct vdmabuf_device *dev,
			   struct vdmabuf_pages *mem, u64 size, const u8 *uuid);
int vdmabuf_request_release(struct vdmabuf_device *dev, const u8 *uuid,
			    struct vdmabuf_pages *mem);
int vdmabuf_request_sync(struct vdmabuf_device *dev, const u8 *uuid,
			 u64 offset, u64 len, u32 flags, u32 timeout_ms);
int vdmabuf_request_map(struct vdmabuf_device *dev, const u8 *uuid,
			u64 *offsetp, u64 *lenp, u32 *flagsp);
void vdmabuf_request_late_answer(struct vdmabuf_device *dev,
				 struct vdmabuf_req *req);

/* virtio_dmabuf_exporter.c: buffers as dma-bufs */
int vdmabuf_buffer_alloc(struct vdmabuf_device *dev, u64 size, u32 flags,
			 u32 alloc_flags, struct dma_buf **dmabufp, u8 *uuid);
int vdmabuf_buffer_import(struct vdmabuf_device *dev, const u8 *uuid,
			  u32 import_flags, struct dma_buf **dmabufp);
struct vdmabuf_buffer *vdmabuf_buffer_from_dmabuf(struct dma_buf *dmabuf);
int vdmabuf_buffer_sync(struct vdmabuf_buffer *buf, u64 offset, u64 len,
			u32 flags, u32 timeout_ms);
void vdmabuf_exporter_revoked(struct vdmabuf_device *dev, const u8 *uuid);
void vdmabuf_exporter_device_gone(struct vdmabuf_device *dev);

/* virtio_dmabuf_chardev.c: /dev/virtio-dmabuf<N> */
int vdmabuf_chardev_register(struct vdmabuf_device *dev);
void vdmabuf_chardev_unregister(struct vdmabuf_device *dev);

#endif /* _VIRTIO_DMABUF_INTERNAL_H */
