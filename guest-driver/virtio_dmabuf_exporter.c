// SPDX-License-Identifier: GPL-2.0
/*
 * Virtio dma-buf sharing device: the dma-buf exporter.
 *
 * A buffer (struct vdmabuf_buffer) is a dma-buf over memory the device knows:
 * ALLOC (pages + CREATE), IMPORT (LOOKUP, then MAP: a range of the device's
 * shared memory region; or pages + ATTACH: a copy; or a new reference to a
 * buffer this guest holds), the per-device table of buffers by UUID, REVOKED,
 * the CPU-access contract (begin/end_cpu_access -> SYNC) and the dma_buf_ops:
 * attachments and their mappings, mmap and vmap.
 *
 * One dma_buf_ops table serves both kinds of memory; what differs (the pages
 * of a table, a CPU fault, vmap) is a small backing (struct vdmabuf_backing):
 * guest pages (own buffers and copies) or the shared memory region (mapped
 * imports).
 */

#include <linux/dma-mapping.h>
#include <linux/fcntl.h>
#include <linux/fs.h>
#include <linux/iosys-map.h>
#include <linux/mm.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/uuid.h>
#include <linux/virtio_dma_buf.h>
#include <linux/vmalloc.h>

#include "virtio_dmabuf_internal.h"
#include "virtio_dmabuf_compat.h"

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

/*
 * What a buffer's memory is. Guest pages: own buffers and imported copies
 * (buf->mem). Shared memory: mapped imports (buf->shm, buf->shm_offset).
 */
struct vdmabuf_backing {
	/* a table of the buffer's pages, not DMA-mapped */
	int (*sg_table)(struct vdmabuf_buffer *buf, struct sg_table *sgt);
	/* mmap: the VMA flags, and a CPU fault at page vmf->pgoff */
	unsigned long vm_flags;
	vm_fault_t (*fault)(struct vdmabuf_buffer *buf, struct vm_fault *vmf);
	/* a kernel mapping of the whole buffer */
	int (*vmap)(struct vdmabuf_buffer *buf, struct iosys_map *map);
	void (*vunmap)(struct vdmabuf_buffer *buf, struct iosys_map *map);
};

static const struct virtio_dma_buf_ops vdmabuf_dmabuf_ops;
static const struct vdmabuf_backing vdmabuf_pages_backing;
static const struct vdmabuf_backing vdmabuf_shm_backing;

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

/*
 * Remove every user-space mapping of a mapped import, after REVOKED or the
 * device's removal was recorded: a fault that saw neither has inserted its
 * page before buf->lock is free (vdmabuf_shm_fault()), later faults get
 * SIGBUS. Kernel users (vmap, importers' DMA mappings) keep the range, which
 * reads zero from now on (spec 13.4), until they let go.
 */
static void vdmabuf_buffer_zap(struct vdmabuf_buffer *buf)
{
	if (buf->backing != &vdmabuf_shm_backing || !buf->dmabuf)
		return;
	mutex_lock(&buf->lock);
	mutex_unlock(&buf->lock);
	unmap_mapping_range(buf->dmabuf->file->f_mapping, 0, 0, 1);
}

/* The origin of an import went away: later syncs fail with ENODEV. */
static void vdmabuf_buffer_mark_revoked(struct vdmabuf_buffer *buf)
{
	if (test_and_set_bit(VDMABUF_REVOKED, &buf->state))
		return;
	vdmabuf_buffer_zap(buf);
}

/* The REVOKED-event upcall (dev->upcalls): the origin of @uuid went away. */
void vdmabuf_exporter_revoked(struct vdmabuf_device *dev, const u8 *uuid)
{
	struct vdmabuf_buffer *buf;

	mutex_lock(&dev->lock);
	buf = vdmabuf_table_find(dev, uuid);
	if (buf && buf->kind == VDMABUF_IMPORTED) {
		vdmabuf_buffer_mark_revoked(buf);
		/* the device decides how often: rate limited */
		pr_info_ratelimited("%s: buffer %pUb revoked\n", dev->name,
				    uuid);
	}
	mutex_unlock(&dev->lock);
}

/*
 * The device is being removed (requests fail from now on): its reset removes
 * the mappings of mapped imports, so their user-space mappings go too.
 */
void vdmabuf_exporter_device_gone(struct vdmabuf_device *dev)
{
	struct vdmabuf_buffer *buf;
	unsigned int bkt;

	mutex_lock(&dev->lock);
	hash_for_each(dev->buffers, bkt, buf, node)
		vdmabuf_buffer_zap(buf);
	mutex_unlock(&dev->lock);
}

/* ------------------------------------------------------------------ */
/* registration and CPU access                                        */
/* ------------------------------------------------------------------ */

/*
 * RELEASE a registered buffer. Cannot fail: the RELEASE request takes a
 * reference to the pages, which it drops once the device is sure not to use
 * them any more (at once, on a late answer, or after the device's reset). A
 * mapped import has no pages of the guest's: the device removes its mapping
 * before it answers, and the range is the device's to reuse afterwards.
 */
static void vdmabuf_buffer_unregister(struct vdmabuf_buffer *buf)
{
	if (!buf->registered)
		return;
	buf->registered = false;
	vdmabuf_request_release(buf->dev, buf->uuid,
				buf->mem ? vdmabuf_pages_get(buf->mem) : NULL);
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
 * Begin (flags without SYNC_END) or end CPU access to a range of @buf (see
 * vdmabuf_request_sync()). A REVOKED answer marks an import revoked.
 */
int vdmabuf_buffer_sync(struct vdmabuf_buffer *buf, u64 offset, u64 len,
			u32 flags, u32 timeout_ms)
{
	struct vdmabuf_device *dev = buf->dev;
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

	ret = vdmabuf_request_sync(dev, buf->uuid, offset, len, flags,
				   timeout_ms);

	/* REVOKED: the origin went away while we waited */
	if (ret == -ENODEV && buf->kind == VDMABUF_IMPORTED &&
	    !vdmabuf_device_gone(dev))
		vdmabuf_buffer_mark_revoked(buf);
	return ret;
}

/* ------------------------------------------------------------------ */
/* the backings: guest pages and the shared memory region             */
/* ------------------------------------------------------------------ */

/* A table of the buffer's pages, coalesced as far as the DMA layer allows. */
static int vdmabuf_pages_sg_table(struct vdmabuf_buffer *buf,
				  struct sg_table *sgt)
{
	return sg_alloc_table_from_pages(sgt, buf->mem->pages, buf->nr_pages, 0,
					 buf->nr_pages << PAGE_SHIFT,
					 GFP_KERNEL);
}

static vm_fault_t vdmabuf_pages_fault(struct vdmabuf_buffer *buf,
				      struct vm_fault *vmf)
{
	vmf->page = buf->mem->pages[vmf->pgoff];
	get_page(vmf->page);
	return 0;
}

static int vdmabuf_pages_vmap(struct vdmabuf_buffer *buf,
			      struct iosys_map *map)
{
	void *vaddr;

	if (buf->nr_pages > UINT_MAX)
		return -E2BIG;
	vaddr = vmap(buf->mem->pages, buf->nr_pages, VM_MAP, PAGE_KERNEL);
	if (!vaddr)
		return -ENOMEM;
	iosys_map_set_vaddr(map, vaddr);
	return 0;
}

static void vdmabuf_pages_vunmap(struct vdmabuf_buffer *buf,
				 struct iosys_map *map)
{
	vunmap(map->vaddr);
}

static const struct vdmabuf_backing vdmabuf_pages_backing = {
	.sg_table = vdmabuf_pages_sg_table,
	.vm_flags = VM_DONTEXPAND | VM_DONTDUMP,
	.fault = vdmabuf_pages_fault,
	.vmap = vdmabuf_pages_vmap,
	.vunmap = vdmabuf_pages_vunmap,
};

static int vdmabuf_shm_buf_sg_table(struct vdmabuf_buffer *buf,
				    struct sg_table *sgt)
{
	return vdmabuf_shm_sg_table(buf->shm, buf->shm_offset,
				    (u64)buf->nr_pages << PAGE_SHIFT, sgt);
}

/*
 * User space maps a mapped import by PFN, never by struct page: no reference
 * to a page of the region can outlive the buffer (get_user_pages() refuses
 * VM_PFNMAP), so nothing in the guest can touch the range once RELEASE let
 * the device reuse it. After REVOKED or the device's removal, faults get
 * SIGBUS; buf->lock orders this against vdmabuf_buffer_zap().
 */
static vm_fault_t vdmabuf_shm_fault(struct vdmabuf_buffer *buf,
				    struct vm_fault *vmf)
{
	vm_fault_t ret;

	mutex_lock(&buf->lock);
	if (test_bit(VDMABUF_REVOKED, &buf->state) ||
	    vdmabuf_device_gone(buf->dev))
		ret = VM_FAULT_SIGBUS;
	else
		ret = vmf_insert_pfn(vmf->vma, vmf->address,
				     vdmabuf_shm_pfn(buf->shm, buf->shm_offset) +
				     vmf->pgoff);
	mutex_unlock(&buf->lock);
	return ret;
}

/* The region is in the direct map: the range needs no mapping of its own. */
static int vdmabuf_shm_vmap(struct vdmabuf_buffer *buf, struct iosys_map *map)
{
	iosys_map_set_vaddr(map, vdmabuf_shm_vaddr(buf->shm, buf->shm_offset));
	return 0;
}

static void vdmabuf_shm_vunmap(struct vdmabuf_buffer *buf,
			       struct iosys_map *map)
{
}

static const struct vdmabuf_backing vdmabuf_shm_backing = {
	.sg_table = vdmabuf_shm_buf_sg_table,
	.vm_flags = VM_PFNMAP | VM_IO | VM_DONTEXPAND | VM_DONTDUMP,
	.fault = vdmabuf_shm_fault,
	.vmap = vdmabuf_shm_vmap,
	.vunmap = vdmabuf_shm_vunmap,
};

/* ------------------------------------------------------------------ */
/* dma_buf_ops                                                        */
/* ------------------------------------------------------------------ */

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

	ret = buf->backing->sg_table(buf, &m->own);
	if (ret)
		goto err_free;
	ret = buf->backing->sg_table(buf, &m->out);
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
	return buf->backing->fault(buf, vmf);
}

static const struct vm_operations_struct vdmabuf_vm_ops = {
	.fault = vdmabuf_vm_fault,
};

static int vdmabuf_mmap(struct dma_buf *dmabuf, struct vm_area_struct *vma)
{
	struct vdmabuf_buffer *buf = dmabuf->priv;

	/* MAP_SHARED only (of a read-only fd: VM_MAYSHARE, not VM_SHARED) */
	if (!(vma->vm_flags & VM_MAYSHARE))
		return -EINVAL;
	vdmabuf_vm_flags_set(vma, buf->backing->vm_flags);
	vma->vm_ops = &vdmabuf_vm_ops;
	vma->vm_private_data = buf;
	return 0;
}

static int vdmabuf_vmap(struct dma_buf *dmabuf, struct iosys_map *map)
{
	struct vdmabuf_buffer *buf = dmabuf->priv;

	return buf->backing->vmap(buf, map);
}

static void vdmabuf_vunmap(struct dma_buf *dmabuf, struct iosys_map *map)
{
	struct vdmabuf_buffer *buf = dmabuf->priv;

	buf->backing->vunmap(buf, map);
}

static int vdmabuf_get_uuid(struct dma_buf *dmabuf, uuid_t *uuid)
{
	struct vdmabuf_buffer *buf = dmabuf->priv;

	memcpy(uuid->b, buf->uuid, sizeof(uuid->b));
	return 0;
}

static void vdmabuf_buffer_destroy(struct vdmabuf_buffer *buf)
{
	vdmabuf_buffer_unregister(buf);
	vdmabuf_table_del(buf);
	if (buf->mem)
		vdmabuf_pages_put(buf->mem);
	if (buf->shm) {
		atomic64_sub((u64)buf->nr_pages << PAGE_SHIFT,
			     &buf->shm->bytes_mapped);
		atomic_dec(&buf->shm->nr_mapped);
		vdmabuf_shm_put(buf->shm);
	}
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

/*
 * A new buffer of @size bytes; with the pages backing, its zeroed pages, one
 * physically contiguous run if @alloc_flags has VIRTIO_DMABUF_ALLOC_CONTIGUOUS
 * (a mapped import gets its range later, from MAP).
 */
static struct vdmabuf_buffer *
vdmabuf_buffer_new(struct vdmabuf_device *dev, enum vdmabuf_kind kind,
		   u64 size, const struct vdmabuf_backing *backing,
		   u32 alloc_flags)
{
	u64 nr_pages = DIV_ROUND_UP_ULL(size, PAGE_SIZE);
	struct vdmabuf_buffer *buf;
	int ret;

	if (!size)
		return ERR_PTR(-EINVAL);
	if (nr_pages > UINT_MAX)
		return ERR_PTR(-ENOMEM);
	/* guest pages must fit into guest RAM; a mapped import need not */
	if (backing == &vdmabuf_pages_backing && nr_pages > totalram_pages())
		return ERR_PTR(-ENOMEM);

	buf = kzalloc(sizeof(*buf), GFP_KERNEL);
	if (!buf)
		return ERR_PTR(-ENOMEM);
	vdmabuf_device_get(dev);
	buf->dev = dev;
	buf->backing = backing;
	buf->kind = kind;
	buf->size = size;
	buf->nr_pages = nr_pages;
	INIT_HLIST_NODE(&buf->node);
	mutex_init(&buf->lock);
	INIT_LIST_HEAD(&buf->mappings);
	if (backing != &vdmabuf_pages_backing)
		return buf;

	buf->mem = vdmabuf_pages_alloc(nr_pages, alloc_flags &
				       VIRTIO_DMABUF_ALLOC_CONTIGUOUS);
	if (IS_ERR(buf->mem)) {
		ret = PTR_ERR(buf->mem);
		buf->mem = NULL;
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
 * ALLOC: allocate zeroed pages (@alloc_flags: VIRTIO_DMABUF_ALLOC_*), register
 * them with CREATE and export them. On success *dmabufp holds the only
 * reference to the new dma-buf.
 */
int vdmabuf_buffer_alloc(struct vdmabuf_device *dev, u64 size, u32 flags,
			 u32 alloc_flags, struct dma_buf **dmabufp, u8 *uuid)
{
	struct vdmabuf_buffer *buf;
	int ret;

	if (!size || flags & ~VIRTIO_DMABUF_BUF_CREATE_MASK ||
	    alloc_flags & ~VIRTIO_DMABUF_ALLOC_MASK)
		return -EINVAL;
	if (vdmabuf_device_gone(dev))
		return -ENODEV;
	if (size > dev->max_bytes)
		return -EDQUOT;

	buf = vdmabuf_buffer_new(dev, VDMABUF_OWN, size, &vdmabuf_pages_backing,
				 alloc_flags);
	if (IS_ERR(buf))
		return PTR_ERR(buf);
	buf->flags = VIRTIO_DMABUF_BUF_OWN;
	buf->share_flags = flags;

	ret = vdmabuf_request_create(dev, buf->mem, buf->size, flags, buf->uuid);
	if (ret)
		goto err;
	buf->registered = true;
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
 * A mapped import of @uuid (@size bytes, LOOKUP @flags): MAP, and a check
 * that the device's range is whole pages inside the region. An error from
 * MAP is returned as it is (the caller falls back to a copy on EOPNOTSUPP,
 * ENOSPC and EINVAL); a range that does not fit is RELEASEd again (-EPROTO).
 */
static struct vdmabuf_buffer *vdmabuf_import_mapped(struct vdmabuf_device *dev,
						    const u8 *uuid, u64 size,
						    u32 flags)
{
	struct vdmabuf_buffer *buf;
	u64 offset, len;
	u32 map_flags;
	int ret;

	buf = vdmabuf_buffer_new(dev, VDMABUF_IMPORTED, size,
				 &vdmabuf_shm_backing, 0);
	if (IS_ERR(buf))
		return buf;
	memcpy(buf->uuid, uuid, VIRTIO_DMABUF_UUID_SIZE);

	ret = vdmabuf_request_map(dev, uuid, &offset, &len, &map_flags);
	if (ret)
		goto err;
	buf->registered = true;
	if (len != (u64)buf->nr_pages << PAGE_SHIFT ||
	    !vdmabuf_shm_range_ok(dev->shm, offset, len)) {
		pr_warn_ratelimited("%s: MAP of %pUb answered %llu bytes at %#llx for a %llu-byte buffer in a %llu-byte region: not used\n",
				    dev->name, uuid, len, offset, size,
				    dev->shm->len);
		ret = -EPROTO;
		goto err;
	}
	buf->flags = (flags | map_flags) & (VIRTIO_DMABUF_BUF_READ_ONLY |
					    VIRTIO_DMABUF_BUF_HOST_BACKED);
	buf->flags |= VIRTIO_DMABUF_BUF_MAPPED;
	buf->shm = vdmabuf_shm_get(dev->shm);
	buf->shm_offset = offset;
	atomic64_add(len, &buf->shm->bytes_mapped);
	atomic_inc(&buf->shm->nr_mapped);
	return buf;

err:
	vdmabuf_buffer_destroy(buf);
	return ERR_PTR(ret);
}

/* An imported copy of @uuid (@size bytes, LOOKUP @flags): pages + ATTACH. */
static struct vdmabuf_buffer *vdmabuf_import_copy(struct vdmabuf_device *dev,
						  const u8 *uuid, u64 size,
						  u32 flags)
{
	struct vdmabuf_buffer *buf;
	int ret;

	buf = vdmabuf_buffer_new(dev, VDMABUF_IMPORTED, size,
				 &vdmabuf_pages_backing, 0);
	if (IS_ERR(buf))
		return buf;
	memcpy(buf->uuid, uuid, VIRTIO_DMABUF_UUID_SIZE);
	buf->flags = flags & (VIRTIO_DMABUF_BUF_READ_ONLY |
			      VIRTIO_DMABUF_BUF_HOST_BACKED);

	ret = vdmabuf_request_attach(dev, buf->mem, buf->size, buf->uuid);
	if (ret) {
		vdmabuf_buffer_destroy(buf);
		return ERR_PTR(ret);
	}
	buf->registered = true;
	return buf;
}

/*
 * IMPORT: a new reference to a buffer this driver holds, or LOOKUP, then MAP
 * (if the region is usable and @import_flags allow it) or, failing that,
 * pages for a copy and ATTACH; then export. On success *dmabufp holds a
 * reference.
 */
int vdmabuf_buffer_import(struct vdmabuf_device *dev, const u8 *uuid,
			  u32 import_flags, struct dma_buf **dmabufp)
{
	struct vdmabuf_buffer *buf = NULL;
	u32 flags;
	u64 size;
	int ret;

	if (import_flags & ~VIRTIO_DMABUF_IMPORT_MASK)
		return -EINVAL;
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
	ret = vdmabuf_request_lookup(dev, uuid, &size, &flags);
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

	if (dev->shm && !(import_flags & VIRTIO_DMABUF_IMPORT_NO_MAP)) {
		buf = vdmabuf_import_mapped(dev, uuid, size, flags);
		if (IS_ERR(buf)) {
			ret = PTR_ERR(buf);
			buf = NULL;
			/*
			 * The device cannot map this one (UNSUPPORTED,
			 * NO_SPACE; INVALID_REQUEST: a device that does not
			 * know MAP although it offers it): a copy then.
			 */
			if (ret != -EOPNOTSUPP && ret != -ENOSPC &&
			    ret != -EINVAL)
				goto out;
			atomic_inc(&dev->nr_fallbacks);
			atomic_set(&dev->last_fallback, -ret);
			pr_debug("%s: MAP of %pUb: %d, importing a copy\n",
				 dev->name, uuid, ret);
		}
	}
	if (!buf) {
		buf = vdmabuf_import_copy(dev, uuid, size, flags);
		if (IS_ERR(buf)) {
			ret = PTR_ERR(buf);
			goto out;
		}
	}

	ret = vdmabuf_buffer_export(buf,
				    buf->flags & VIRTIO_DMABUF_BUF_READ_ONLY ?
				    O_RDONLY : O_RDWR);
	if (ret) {
		vdmabuf_buffer_destroy(buf);
		goto out;
	}
	vdmabuf_table_add(buf);
	*dmabufp = buf->dmabuf;
out:
	mutex_unlock(&dev->import_lock);
	return ret;
}
