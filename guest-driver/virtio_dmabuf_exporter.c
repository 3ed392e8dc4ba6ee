// SPDX-License-Identifier: GPL-2.0
/*
 * Virtio dma-buf sharing device: the dma-buf exporter.
 *
 * A buffer (struct vdmabuf_buffer) is a dma-buf over pages registered with
 * the device: ALLOC (pages + CREATE) and IMPORT (LOOKUP + pages + ATTACH, or a
 * new reference to a buffer this guest holds), the per-device table of
 * buffers by UUID, REVOKED, the CPU-access contract (begin/end_cpu_access ->
 * SYNC) and the dma_buf_ops: attachments and their mappings, mmap and vmap.
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

/* The REVOKED-event upcall (dev->upcalls): the origin of @uuid went away. */
void vdmabuf_exporter_revoked(struct vdmabuf_device *dev, const u8 *uuid)
{
	struct vdmabuf_buffer *buf;

	mutex_lock(&dev->lock);
	buf = vdmabuf_table_find(dev, uuid);
	if (buf && buf->kind == VDMABUF_IMPORTED) {
		set_bit(VDMABUF_REVOKED, &buf->state);
		/* the device decides how often: rate limited */
		pr_info_ratelimited("%s: buffer %pUb revoked\n", dev->name,
				    uuid);
	}
	mutex_unlock(&dev->lock);
}

/* ------------------------------------------------------------------ */
/* registration and CPU access                                        */
/* ------------------------------------------------------------------ */

/*
 * RELEASE a registered buffer. Cannot fail: the RELEASE request takes a
 * reference to the pages, which it drops once the device is sure not to use
 * them any more (at once, on a late answer, or after the device's reset).
 */
static void vdmabuf_buffer_unregister(struct vdmabuf_buffer *buf)
{
	if (!buf->registered)
		return;
	buf->registered = false;
	vdmabuf_request_release(buf->dev, buf->uuid,
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
		set_bit(VDMABUF_REVOKED, &buf->state);
	return ret;
}

/* ------------------------------------------------------------------ */
/* dma_buf_ops                                                        */
/* ------------------------------------------------------------------ */

/* A table of the buffer's pages, coalesced as far as the DMA layer allows. */
static int vdmabuf_buffer_sg_table(struct vdmabuf_buffer *buf,
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

	ret = vdmabuf_buffer_sg_table(buf, &m->own);
	if (ret)
		goto err_free;
	ret = vdmabuf_buffer_sg_table(buf, &m->out);
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
	vdmabuf_buffer_unregister(buf);
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

	buf->mem = vdmabuf_pages_alloc(nr_pages);
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

	buf = vdmabuf_buffer_new(dev, VDMABUF_IMPORTED, size);
	if (IS_ERR(buf)) {
		ret = PTR_ERR(buf);
		goto out;
	}
	memcpy(buf->uuid, uuid, VIRTIO_DMABUF_UUID_SIZE);
	buf->flags = flags & (VIRTIO_DMABUF_BUF_READ_ONLY |
			      VIRTIO_DMABUF_BUF_HOST_BACKED);

	ret = vdmabuf_request_attach(dev, buf->mem, buf->size, buf->uuid);
	if (ret)
		goto err;
	buf->registered = true;
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
