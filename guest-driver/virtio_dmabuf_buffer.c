// SPDX-License-Identifier: GPL-2.0
/*
 * Virtio dma-buf sharing device: buffers.
 *
 * Page allocation and segment lists, CREATE, LOOKUP + ATTACH, RELEASE and
 * SYNC, and the dma-buf exporter (dma_buf_ops) of the buffers.
 */

#include <linux/dma-mapping.h>
#include <linux/fcntl.h>
#include <linux/fs.h>
#include <linux/gfp.h>
#include <linux/iosys-map.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/uuid.h>
#include <linux/virtio_dma_buf.h>
#include <linux/vmalloc.h>

#include "virtio_dmabuf.h"
#include "virtio_dmabuf_compat.h"

/*
 * Largest chunk tried when allocating buffer pages (order 9: 2 MiB with 4 KiB
 * pages). 0 allocates page by page, which makes long segment lists (a test
 * knob; the default keeps lists short).
 */
static unsigned int max_alloc_order = 9;
module_param(max_alloc_order, uint, 0644);
MODULE_PARM_DESC(max_alloc_order,
		 "largest page order used for buffer memory (0-10, default 9)");

/*
 * Test knob: no two pages of a buffer physically contiguous (one segment per
 * page), and segment lists in vmalloc memory whose pages are not contiguous
 * either (one sg entry per page, or a contiguous copy of a long list).
 */
static bool test_scatter;
module_param(test_scatter, bool, 0644);
MODULE_PARM_DESC(test_scatter,
		 "testing: scatter buffer pages and segment list pages");
/* How long IMPORT waits for a closing dma-buf of the same UUID to go away */
#define VDMABUF_DYING_WAIT_SECS	10

/*
 * One mapping of an attachment (dma_buf_map_attachment(); an importer may map
 * one attachment several times). The importer gets @out: the same pages, with
 * the DMA addresses of @own. @own is the table that is DMA-mapped and synced;
 * it is never handed out. @out is not looked at after it was handed out: the
 * dma-buf core may hide its page links from the importer (DMABUF_DEBUG).
 */
struct vdmabuf_mapping {
	struct list_head node;		/* in buf->mappings */
	struct device *dev;
	enum dma_data_direction dir;
	struct sg_table own;
	struct sg_table out;
};

static const struct virtio_dma_buf_ops vdmabuf_dmabuf_ops;

/* ------------------------------------------------------------------ */
/* the per-device buffer table                                        */
/* ------------------------------------------------------------------ */

static u32 vdmabuf_uuid_key(const u8 *uuid)
{
	u32 key;

	memcpy(&key, uuid, sizeof(key));
	return key;
}

/* Called with dev->lock held. */
static struct vdmabuf_buffer *vdmabuf_table_find(struct vdmabuf_device *dev,
						 const u8 *uuid)
{
	struct vdmabuf_buffer *buf;

	lockdep_assert_held(&dev->lock);
	hash_for_each_possible(dev->buffers, buf, node, vdmabuf_uuid_key(uuid))
		if (!memcmp(buf->uuid, uuid, VIRTIO_DMABUF_UUID_SIZE))
			return buf;
	return NULL;
}

static void vdmabuf_table_add(struct vdmabuf_buffer *buf)
{
	struct vdmabuf_device *dev = buf->dev;

	mutex_lock(&dev->lock);
	hash_add(dev->buffers, &buf->node, vdmabuf_uuid_key(buf->uuid));
	buf->hashed = true;
	mutex_unlock(&dev->lock);
}

static void vdmabuf_table_del(struct vdmabuf_buffer *buf)
{
	struct vdmabuf_device *dev = buf->dev;

	if (!buf->hashed)
		return;
	mutex_lock(&dev->lock);
	hash_del(&buf->node);
	buf->hashed = false;
	dev->table_gen++;
	mutex_unlock(&dev->lock);
	wake_up_all(&dev->table_wq);
}

void vdmabuf_buffer_revoke(struct vdmabuf_device *dev, const u8 *uuid)
{
	struct vdmabuf_buffer *buf;

	mutex_lock(&dev->lock);
	buf = vdmabuf_table_find(dev, uuid);
	if (buf && buf->kind == VDMABUF_IMPORTED) {
		set_bit(VDMABUF_REVOKED, &buf->state);
		pr_info("%s: buffer %pUb revoked\n", dev->name, uuid);
	}
	mutex_unlock(&dev->lock);
}

/* ------------------------------------------------------------------ */
/* pages and segments                                                 */
/* ------------------------------------------------------------------ */

/*
 * test_scatter: fill @pages with order-0 pages, allocating a spare page after
 * each and freeing the spares at the end, so that pages handed out in address
 * order end up two apart.
 */
static int vdmabuf_scatter_pages(struct page **pages, unsigned long n,
				 gfp_t gfp)
{
	struct page *spare, *tmp;
	LIST_HEAD(spares);
	unsigned long i;
	int ret = 0;

	for (i = 0; i < n; i++) {
		pages[i] = alloc_page(gfp);
		spare = alloc_page(gfp);
		if (spare)
			list_add(&spare->lru, &spares);
		if (!pages[i] || !spare) {
			ret = -ENOMEM;
			break;
		}
		cond_resched();
	}
	list_for_each_entry_safe(spare, tmp, &spares, lru) {
		list_del(&spare->lru);
		__free_page(spare);
	}
	return ret;
}

/* test_scatter: @bytes of vmalloc memory in scattered pages */
static void *vdmabuf_scatter_vmalloc(size_t bytes)
{
	unsigned long n = DIV_ROUND_UP(bytes, PAGE_SIZE), i;
	struct page **pages;
	void *p;

	pages = kvmalloc_array(n, sizeof(*pages), GFP_KERNEL | __GFP_ZERO);
	if (!pages)
		return NULL;
	if (!vdmabuf_scatter_pages(pages, n, GFP_KERNEL)) {
		/* vfree() puts the pages and frees the array */
		p = vmap(pages, n, VM_MAP | VM_MAP_PUT_PAGES, PAGE_KERNEL);
		if (p)
			return p;
	}
	for (i = 0; i < n; i++)
		if (pages[i])
			__free_page(pages[i]);
	kvfree(pages);
	return NULL;
}

/*
 * The last reference to a buffer's memory is gone: nobody, the device
 * included, uses the pages any more.
 */
static void vdmabuf_pages_free(struct kref *ref)
{
	struct vdmabuf_pages *mem = container_of(ref, struct vdmabuf_pages,
						 ref);
	unsigned long i;

	for (i = 0; i < mem->nr; i++)
		if (mem->pages[i])
			put_page(mem->pages[i]);
	kvfree(mem);
}

struct vdmabuf_pages *vdmabuf_pages_get(struct vdmabuf_pages *mem)
{
	kref_get(&mem->ref);
	return mem;
}

/* Process context only. */
void vdmabuf_pages_put(struct vdmabuf_pages *mem)
{
	might_sleep();
	kref_put(&mem->ref, vdmabuf_pages_free);
}

/*
 * Allocate zeroed pages, in chunks as large as possible so that the segment
 * list stays short. Chunks are split into independent order-0 pages, which
 * the mmap fault handler maps one by one.
 */
static int vdmabuf_alloc_pages(struct vdmabuf_buffer *buf)
{
	unsigned int order = min(READ_ONCE(max_alloc_order), 10U);
	struct vdmabuf_pages *mem;
	unsigned long i = 0, j;

	mem = kvzalloc(struct_size(mem, pages, buf->nr_pages), GFP_KERNEL);
	if (!mem)
		return -ENOMEM;
	kref_init(&mem->ref);
	INIT_LIST_HEAD(&mem->node);
	mem->nr = buf->nr_pages;
	buf->mem = mem;
	if (READ_ONCE(test_scatter))
		return vdmabuf_scatter_pages(mem->pages, mem->nr,
					     GFP_HIGHUSER | __GFP_ZERO);

	while (i < mem->nr) {
		gfp_t gfp = GFP_HIGHUSER | __GFP_ZERO;
		struct page *page;

		while (order && (1UL << order) > mem->nr - i)
			order--;
		if (order)
			gfp |= __GFP_NOWARN | __GFP_NORETRY;
		page = alloc_pages(gfp, order);
		if (!page) {
			if (!order)
				return -ENOMEM;
			order--;
			continue;
		}
		if (order)
			split_page(page, order);
		for (j = 0; j < (1UL << order); j++)
			mem->pages[i++] = page + j;

		if (fatal_signal_pending(current))
			return -EINTR;
		cond_resched();
	}
	return 0;
}

/*
 * Build the segment list of a buffer: guest-physical ranges, contiguous
 * pages coalesced, the last one cut so that the lengths add up to buf->size.
 */
static struct virtio_dmabuf_seg *vdmabuf_build_segs(struct vdmabuf_buffer *buf,
						    u32 *nr_segsp)
{
	struct page **pages = buf->mem->pages;
	struct virtio_dmabuf_seg *segs;
	unsigned long i, n = 1;
	phys_addr_t start, next;
	u64 len;

	for (i = 1; i < buf->nr_pages; i++)
		if (page_to_phys(pages[i]) !=
		    page_to_phys(pages[i - 1]) + PAGE_SIZE)
			n++;
	if (n > buf->dev->max_segments)
		return ERR_PTR(-E2BIG);

	if (READ_ONCE(test_scatter))
		segs = vdmabuf_scatter_vmalloc(array_size(n, sizeof(*segs)));
	else
		segs = kvmalloc_array(n, sizeof(*segs), GFP_KERNEL);
	if (!segs)
		return ERR_PTR(-ENOMEM);

	n = 0;
	start = page_to_phys(pages[0]);
	len = PAGE_SIZE;
	for (i = 1; i <= buf->nr_pages; i++) {
		next = i < buf->nr_pages ? page_to_phys(pages[i]) : 0;
		if (i < buf->nr_pages && next == start + len) {
			len += PAGE_SIZE;
			continue;
		}
		segs[n].addr = cpu_to_le64(start);
		segs[n].len = cpu_to_le64(len);
		n++;
		start = next;
		len = PAGE_SIZE;
	}
	len = le64_to_cpu(segs[n - 1].len) -
	      (((u64)buf->nr_pages << PAGE_SHIFT) - buf->size);
	segs[n - 1].len = cpu_to_le64(len);
	*nr_segsp = n;
	return segs;
}

/* ------------------------------------------------------------------ */
/* requests                                                           */
/* ------------------------------------------------------------------ */

/*
 * A CREATE or ATTACH request carrying the buffer's segment list. The request
 * holds a reference to the pages: if its waiter gives up, the pages live
 * until the device has answered (and a late registration was RELEASEd) or
 * was reset.
 */
static struct vdmabuf_req *vdmabuf_segs_req(struct vdmabuf_buffer *buf,
					    u32 type, size_t body_len,
					    size_t resp_len, u32 *nr_segsp)
{
	struct virtio_dmabuf_seg *segs;
	struct vdmabuf_req *req;
	int ret;

	segs = vdmabuf_build_segs(buf, nr_segsp);
	if (IS_ERR(segs))
		return ERR_CAST(segs);
	req = vdmabuf_req_alloc(type, body_len, resp_len);
	if (!req) {
		kvfree(segs);
		return ERR_PTR(-ENOMEM);
	}
	req->pages = vdmabuf_pages_get(buf->mem);
	/* the request owns segs from here on */
	ret = vdmabuf_req_set_data(buf->dev, req, segs,
				   (size_t)*nr_segsp * sizeof(*segs));
	if (ret) {
		vdmabuf_req_put(req);
		return ERR_PTR(ret);
	}
	return req;
}

static int vdmabuf_do_create(struct vdmabuf_buffer *buf)
{
	struct vdmabuf_req *req;
	u32 nr_segs;
	int ret;

	req = vdmabuf_segs_req(buf, VIRTIO_DMABUF_REQ_CREATE,
			       sizeof(req->in.create), sizeof(req->out.create),
			       &nr_segs);
	if (IS_ERR(req))
		return PTR_ERR(req);
	req->in.create.size = cpu_to_le64(buf->size);
	req->in.create.flags = cpu_to_le32(buf->share_flags);
	req->in.create.nr_segs = cpu_to_le32(nr_segs);
	ret = vdmabuf_req_run(buf->dev, req);
	if (!ret) {
		memcpy(buf->uuid, req->out.create.uuid, sizeof(buf->uuid));
		buf->registered = true;
	}
	vdmabuf_req_put(req);
	return ret;
}

static int vdmabuf_do_lookup(struct vdmabuf_device *dev, const u8 *uuid,
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

static int vdmabuf_do_attach(struct vdmabuf_buffer *buf)
{
	struct vdmabuf_req *req;
	u32 nr_segs;
	int ret;

	req = vdmabuf_segs_req(buf, VIRTIO_DMABUF_REQ_ATTACH,
			       sizeof(req->in.attach), sizeof(req->out.hdr),
			       &nr_segs);
	if (IS_ERR(req))
		return PTR_ERR(req);
	memcpy(req->in.attach.uuid, buf->uuid, VIRTIO_DMABUF_UUID_SIZE);
	req->in.attach.nr_segs = cpu_to_le32(nr_segs);
	ret = vdmabuf_req_run(buf->dev, req);
	if (!ret)
		buf->registered = true;
	vdmabuf_req_put(req);
	return ret;
}

/*
 * RELEASE a registered buffer. Cannot fail: the RELEASE request takes a
 * reference to the pages, which it drops once the device is sure not to use
 * them any more (at once, on a late answer, or after the device's reset).
 */
static void vdmabuf_do_release(struct vdmabuf_buffer *buf)
{
	if (!buf->registered)
		return;
	buf->registered = false;
	vdmabuf_req_send_release(buf->dev, buf->uuid,
				 vdmabuf_pages_get(buf->mem));
}

static int vdmabuf_sync_flags(enum dma_data_direction dir)
{
	switch (dir) {
	case DMA_FROM_DEVICE:
		return VIRTIO_DMABUF_SYNC_READ;
	case DMA_TO_DEVICE:
		return VIRTIO_DMABUF_SYNC_WRITE;
	case DMA_BIDIRECTIONAL:
		return VIRTIO_DMABUF_SYNC_READ | VIRTIO_DMABUF_SYNC_WRITE;
	default:
		return -EINVAL;
	}
}

/*
 * Begin (flags without SYNC_END) or end CPU access to a range. A START waits
 * interruptibly for the device to grant it, at most a little longer than its
 * bound.
 */
int vdmabuf_buffer_sync(struct vdmabuf_buffer *buf, u64 offset, u64 len,
			u32 flags, u32 timeout_ms)
{
	struct vdmabuf_device *dev = buf->dev;
	struct vdmabuf_req *req;
	u32 bound;
	int ret;

	if (flags & ~VIRTIO_DMABUF_SYNC_MASK ||
	    !(flags & (VIRTIO_DMABUF_SYNC_READ | VIRTIO_DMABUF_SYNC_WRITE)))
		return -EINVAL;
	if (!len || offset >= buf->size || len > buf->size - offset)
		return -EINVAL;
	if ((flags & VIRTIO_DMABUF_SYNC_END) && timeout_ms)
		return -EINVAL;
	if (vdmabuf_device_gone(dev) || test_bit(VDMABUF_REVOKED, &buf->state))
		return -ENODEV;

	req = vdmabuf_req_alloc(VIRTIO_DMABUF_REQ_SYNC, sizeof(req->in.sync),
				sizeof(req->out.hdr));
	if (!req)
		return -ENOMEM;
	memcpy(req->in.sync.uuid, buf->uuid, VIRTIO_DMABUF_UUID_SIZE);
	req->in.sync.offset = cpu_to_le64(offset);
	req->in.sync.len = cpu_to_le64(len);
	req->in.sync.flags = cpu_to_le32(flags);
	req->in.sync.timeout_ms = cpu_to_le32(timeout_ms);

	if (flags & VIRTIO_DMABUF_SYNC_END) {
		ret = vdmabuf_req_run(dev, req);
	} else {
		bound = dev->sync_timeout_ms;
		if (timeout_ms && timeout_ms < bound)
			bound = timeout_ms;
		ret = vdmabuf_req_run_start(dev, req,
					    bound + VDMABUF_SYNC_SLACK_MS);
	}
	vdmabuf_req_put(req);

	/* REVOKED: the origin went away while we waited */
	if (ret == -ENODEV && buf->kind == VDMABUF_IMPORTED &&
	    !vdmabuf_device_gone(dev))
		set_bit(VDMABUF_REVOKED, &buf->state);
	return ret;
}

/* ------------------------------------------------------------------ */
/* dma_buf_ops                                                        */
/* ------------------------------------------------------------------ */

/* A table of the buffer's pages, coalesced as far as the DMA layer allows. */
static int vdmabuf_pages_table(struct vdmabuf_buffer *buf,
			       struct sg_table *sgt)
{
	return sg_alloc_table_from_pages(sgt, buf->mem->pages, buf->nr_pages, 0,
					 buf->nr_pages << PAGE_SHIFT,
					 GFP_KERNEL);
}

static struct sg_table *vdmabuf_map_dma_buf(struct dma_buf_attachment *attach,
					    enum dma_data_direction dir)
{
	struct vdmabuf_buffer *buf = attach->dmabuf->priv;
	struct scatterlist *sg, *out_sg;
	struct vdmabuf_mapping *m;
	unsigned int i;
	int ret;

	if (buf->nr_pages > UINT_MAX)
		return ERR_PTR(-E2BIG);
	m = kzalloc(sizeof(*m), GFP_KERNEL);
	if (!m)
		return ERR_PTR(-ENOMEM);
	INIT_LIST_HEAD(&m->node);
	m->dev = attach->dev;
	m->dir = dir;

	ret = vdmabuf_pages_table(buf, &m->own);
	if (ret)
		goto err_free;
	ret = vdmabuf_pages_table(buf, &m->out);
	if (ret)
		goto err_own;
	ret = dma_map_sgtable(m->dev, &m->own, dir, 0);
	if (ret)
		goto err_out;

	/* same pages, same layout: copy the DMA segments over */
	out_sg = m->out.sgl;
	for_each_sgtable_dma_sg(&m->own, sg, i) {
		sg_dma_address(out_sg) = sg_dma_address(sg);
		sg_dma_len(out_sg) = sg_dma_len(sg);
		out_sg = sg_next(out_sg);
	}
	m->out.nents = m->own.nents;

	mutex_lock(&buf->lock);
	list_add_tail(&m->node, &buf->mappings);
	mutex_unlock(&buf->lock);
	return &m->out;

err_out:
	sg_free_table(&m->out);
err_own:
	sg_free_table(&m->own);
err_free:
	kfree(m);
	return ERR_PTR(ret);
}

static void vdmabuf_unmap_dma_buf(struct dma_buf_attachment *attach,
				  struct sg_table *sgt,
				  enum dma_data_direction dir)
{
	struct vdmabuf_buffer *buf = attach->dmabuf->priv;
	struct vdmabuf_mapping *m = container_of(sgt, struct vdmabuf_mapping,
						 out);

	mutex_lock(&buf->lock);
	list_del(&m->node);
	mutex_unlock(&buf->lock);

	dma_unmap_sgtable(m->dev, &m->own, m->dir, 0);
	sg_free_table(&m->own);
	sg_free_table(&m->out);
	kfree(m);
}

/* Sync every live mapping of every attachment, for the CPU or the devices. */
static void vdmabuf_sync_mappings(struct vdmabuf_buffer *buf, bool for_cpu)
{
	struct vdmabuf_mapping *m;

	mutex_lock(&buf->lock);
	list_for_each_entry(m, &buf->mappings, node) {
		if (for_cpu)
			dma_sync_sgtable_for_cpu(m->dev, &m->own, m->dir);
		else
			dma_sync_sgtable_for_device(m->dev, &m->own, m->dir);
	}
	mutex_unlock(&buf->lock);
}

static int vdmabuf_begin_cpu_access(struct dma_buf *dmabuf,
				    enum dma_data_direction dir)
{
	struct vdmabuf_buffer *buf = dmabuf->priv;
	int flags = vdmabuf_sync_flags(dir);
	int ret;

	if (flags < 0)
		return flags;
	ret = vdmabuf_buffer_sync(buf, 0, buf->size, flags, 0);
	if (ret)
		return ret;
	vdmabuf_sync_mappings(buf, true);
	return 0;
}

static int vdmabuf_end_cpu_access(struct dma_buf *dmabuf,
				  enum dma_data_direction dir)
{
	struct vdmabuf_buffer *buf = dmabuf->priv;
	int flags = vdmabuf_sync_flags(dir);

	if (flags < 0)
		return flags;
	vdmabuf_sync_mappings(buf, false);
	return vdmabuf_buffer_sync(buf, 0, buf->size,
				   flags | VIRTIO_DMABUF_SYNC_END, 0);
}

static vm_fault_t vdmabuf_vm_fault(struct vm_fault *vmf)
{
	struct vdmabuf_buffer *buf = vmf->vma->vm_private_data;

	if (vmf->pgoff >= buf->nr_pages)
		return VM_FAULT_SIGBUS;
	vmf->page = buf->mem->pages[vmf->pgoff];
	get_page(vmf->page);
	return 0;
}

static const struct vm_operations_struct vdmabuf_vm_ops = {
	.fault = vdmabuf_vm_fault,
};

static int vdmabuf_mmap(struct dma_buf *dmabuf, struct vm_area_struct *vma)
{
	/* MAP_SHARED only (of a read-only fd: VM_MAYSHARE, not VM_SHARED) */
	if (!(vma->vm_flags & VM_MAYSHARE))
		return -EINVAL;
	vdmabuf_vm_flags_set(vma, VM_DONTEXPAND | VM_DONTDUMP);
	vma->vm_ops = &vdmabuf_vm_ops;
	vma->vm_private_data = dmabuf->priv;
	return 0;
}

static int vdmabuf_vmap(struct dma_buf *dmabuf, struct iosys_map *map)
{
	struct vdmabuf_buffer *buf = dmabuf->priv;
	void *vaddr;

	if (buf->nr_pages > UINT_MAX)
		return -E2BIG;
	vaddr = vmap(buf->mem->pages, buf->nr_pages, VM_MAP, PAGE_KERNEL);
	if (!vaddr)
		return -ENOMEM;
	iosys_map_set_vaddr(map, vaddr);
	return 0;
}

static void vdmabuf_vunmap(struct dma_buf *dmabuf, struct iosys_map *map)
{
	vunmap(map->vaddr);
}

static int vdmabuf_get_uuid(struct dma_buf *dmabuf, uuid_t *uuid)
{
	struct vdmabuf_buffer *buf = dmabuf->priv;

	memcpy(uuid->b, buf->uuid, sizeof(uuid->b));
	return 0;
}

static void vdmabuf_buffer_destroy(struct vdmabuf_buffer *buf)
{
	vdmabuf_do_release(buf);
	vdmabuf_table_del(buf);
	if (buf->mem)
		vdmabuf_pages_put(buf->mem);
	vdmabuf_device_put(buf->dev);
	mutex_destroy(&buf->lock);
	kfree(buf);
}

static void vdmabuf_release(struct dma_buf *dmabuf)
{
	vdmabuf_buffer_destroy(dmabuf->priv);
}

static const struct virtio_dma_buf_ops vdmabuf_dmabuf_ops = {
	.ops = {
		.attach = virtio_dma_buf_attach,
		.map_dma_buf = vdmabuf_map_dma_buf,
		.unmap_dma_buf = vdmabuf_unmap_dma_buf,
		.release = vdmabuf_release,
		.begin_cpu_access = vdmabuf_begin_cpu_access,
		.end_cpu_access = vdmabuf_end_cpu_access,
		.mmap = vdmabuf_mmap,
		.vmap = vdmabuf_vmap,
		.vunmap = vdmabuf_vunmap,
	},
	.get_uuid = vdmabuf_get_uuid,
};

struct vdmabuf_buffer *vdmabuf_buffer_from_dmabuf(struct dma_buf *dmabuf)
{
	if (dmabuf->ops != &vdmabuf_dmabuf_ops.ops)
		return NULL;
	return dmabuf->priv;
}

/* ------------------------------------------------------------------ */
/* ALLOC and IMPORT                                                   */
/* ------------------------------------------------------------------ */

static struct vdmabuf_buffer *vdmabuf_buffer_new(struct vdmabuf_device *dev,
						 enum vdmabuf_kind kind,
						 u64 size)
{
	u64 nr_pages = DIV_ROUND_UP_ULL(size, PAGE_SIZE);
	struct vdmabuf_buffer *buf;
	int ret;

	if (!size)
		return ERR_PTR(-EINVAL);
	if (nr_pages > totalram_pages() || nr_pages > UINT_MAX)
		return ERR_PTR(-ENOMEM);

	buf = kzalloc(sizeof(*buf), GFP_KERNEL);
	if (!buf)
		return ERR_PTR(-ENOMEM);
	vdmabuf_device_get(dev);
	buf->dev = dev;
	buf->kind = kind;
	buf->size = size;
	buf->nr_pages = nr_pages;
	INIT_HLIST_NODE(&buf->node);
	mutex_init(&buf->lock);
	INIT_LIST_HEAD(&buf->mappings);

	ret = vdmabuf_alloc_pages(buf);
	if (ret) {
		vdmabuf_buffer_destroy(buf);
		return ERR_PTR(ret);
	}
	return buf;
}

static int vdmabuf_buffer_export(struct vdmabuf_buffer *buf, int oflags)
{
	DEFINE_DMA_BUF_EXPORT_INFO(exp);
	struct dma_buf *dmabuf;

	exp.ops = &vdmabuf_dmabuf_ops.ops;
	exp.size = buf->nr_pages << PAGE_SHIFT;
	exp.flags = oflags;
	exp.priv = buf;
	dmabuf = virtio_dma_buf_export(&exp);
	if (IS_ERR(dmabuf))
		return PTR_ERR(dmabuf);
	buf->dmabuf = dmabuf;
	return 0;
}

/*
 * ALLOC: allocate zeroed pages, register them with CREATE and export them.
 * On success *dmabufp holds the only reference to the new dma-buf.
 */
int vdmabuf_buffer_alloc(struct vdmabuf_device *dev, u64 size, u32 flags,
			 struct dma_buf **dmabufp, u8 *uuid)
{
	struct vdmabuf_buffer *buf;
	int ret;

	if (!size || flags & ~VIRTIO_DMABUF_BUF_CREATE_MASK)
		return -EINVAL;
	if (vdmabuf_device_gone(dev))
		return -ENODEV;
	if (size > dev->max_bytes)
		return -EDQUOT;

	buf = vdmabuf_buffer_new(dev, VDMABUF_OWN, size);
	if (IS_ERR(buf))
		return PTR_ERR(buf);
	buf->flags = VIRTIO_DMABUF_BUF_OWN;
	buf->share_flags = flags;

	ret = vdmabuf_do_create(buf);
	if (ret)
		goto err;
	ret = vdmabuf_buffer_export(buf, O_RDWR);
	if (ret)
		goto err;
	vdmabuf_table_add(buf);
	memcpy(uuid, buf->uuid, VIRTIO_DMABUF_UUID_SIZE);
	*dmabufp = buf->dmabuf;
	return 0;

err:
	vdmabuf_buffer_destroy(buf);
	return ret;
}

/*
 * A UUID this driver holds already is imported by taking a new reference on
 * its dma-buf. Returns 1 if the UUID is not held.
 */
static int vdmabuf_import_held(struct vdmabuf_device *dev, const u8 *uuid,
			       struct dma_buf **dmabufp)
{
	struct vdmabuf_buffer *buf;
	unsigned long gen;
	long left;

	for (;;) {
		mutex_lock(&dev->lock);
		buf = vdmabuf_table_find(dev, uuid);
		if (!buf) {
			mutex_unlock(&dev->lock);
			return 1;
		}
		if (test_bit(VDMABUF_REVOKED, &buf->state)) {
			mutex_unlock(&dev->lock);
			return -ENOENT;
		}
		if (vdmabuf_get_file_active(&buf->dmabuf->file)) {
			*dmabufp = buf->dmabuf;
			mutex_unlock(&dev->lock);
			return 0;
		}
		/* its last fd is being closed: wait until RELEASE is done */
		gen = dev->table_gen;
		mutex_unlock(&dev->lock);
		left = wait_event_interruptible_timeout(dev->table_wq,
					READ_ONCE(dev->table_gen) != gen,
					VDMABUF_DYING_WAIT_SECS * HZ);
		if (left < 0)
			return left;
		if (!left)
			return -EBUSY;
	}
}

/*
 * IMPORT: a new reference to a buffer this driver holds, or LOOKUP, pages
 * for the copy, ATTACH and export. On success *dmabufp holds a reference.
 */
int vdmabuf_buffer_import(struct vdmabuf_device *dev, const u8 *uuid,
			  struct dma_buf **dmabufp)
{
	struct vdmabuf_buffer *buf;
	u32 flags;
	u64 size;
	int ret;

	if (vdmabuf_device_gone(dev))
		return -ENODEV;
	if (mutex_lock_interruptible(&dev->import_lock))
		return -ERESTARTSYS;

	ret = vdmabuf_import_held(dev, uuid, dmabufp);
	if (ret <= 0)
		goto out;

	if (!dev->can_import) {
		ret = -EOPNOTSUPP;
		goto out;
	}
	ret = vdmabuf_do_lookup(dev, uuid, &size, &flags);
	if (ret)
		goto out;
	if (flags & VIRTIO_DMABUF_BUF_OWN) {
		/* ours, but no longer in the table: being released */
		ret = -ENOENT;
		goto out;
	}
	if (size > dev->max_bytes) {
		ret = -EDQUOT;
		goto out;
	}

	buf = vdmabuf_buffer_new(dev, VDMABUF_IMPORTED, size);
	if (IS_ERR(buf)) {
		ret = PTR_ERR(buf);
		goto out;
	}
	memcpy(buf->uuid, uuid, VIRTIO_DMABUF_UUID_SIZE);
	buf->flags = flags & (VIRTIO_DMABUF_BUF_READ_ONLY |
			      VIRTIO_DMABUF_BUF_HOST_BACKED);

	ret = vdmabuf_do_attach(buf);
	if (ret)
		goto err;
	ret = vdmabuf_buffer_export(buf,
				    buf->flags & VIRTIO_DMABUF_BUF_READ_ONLY ?
				    O_RDONLY : O_RDWR);
	if (ret)
		goto err;
	vdmabuf_table_add(buf);
	*dmabufp = buf->dmabuf;
	goto out;

err:
	vdmabuf_buffer_destroy(buf);
out:
	mutex_unlock(&dev->import_lock);
	return ret;
}
