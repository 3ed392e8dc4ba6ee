/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Virtio dma-buf sharing device: kernel version compatibility.
 *
 * The only place with kernel version checks, for the driver and the
 * test importer (tests/kimport/). Supported: Linux 6.1 through 7.3. Each
 * entry names the kernel release that changed the interface; README.md
 * ("Kernel versions") lists what each one is for.
 */
#ifndef _VIRTIO_DMABUF_COMPAT_H
#define _VIRTIO_DMABUF_COMPAT_H

#include <linux/bug.h>
#include <linux/dma-buf.h>
#include <linux/fs.h>
#include <linux/gfp.h>
#include <linux/iosys-map.h>
#include <linux/memory_hotplug.h>
#include <linux/mm.h>
#include <linux/mmzone.h>
#include <linux/nodemask.h>
#include <linux/pageblock-flags.h>
#include <linux/sched/signal.h>
#include <linux/module.h>
#include <linux/version.h>
#include <linux/virtio.h>
#include <linux/virtio_config.h>

/* True when building against Linux @major.@minor or later. */
#define VDMABUF_KERNEL_SINCE(major, minor) \
	(KERNEL_VERSION(major, minor, 0) <= LINUX_VERSION_CODE)

/*
 * 6.13: MODULE_IMPORT_NS() takes a string literal; before, a bare token
 * that it stringified. Both emit MODULE_INFO(import_ns, "DMA_BUF").
 */
#if VDMABUF_KERNEL_SINCE(6, 13)
#define VDMABUF_IMPORT_NS_DMA_BUF()	MODULE_IMPORT_NS("DMA_BUF")
#else
#define VDMABUF_IMPORT_NS_DMA_BUF()	MODULE_IMPORT_NS(DMA_BUF)
#endif

/* Virtqueues as virtio_find_vqs() wants them, independent of the version. */
struct vdmabuf_vq_info {
	const char *name;
	vq_callback_t *callback;
};

#define VDMABUF_COMPAT_MAX_VQS	2

/*
 * 6.11: virtio_find_vqs() takes one struct virtqueue_info[] instead of
 * separate callbacks[] and names[] arrays.
 */
static inline int vdmabuf_find_vqs(struct virtio_device *vdev,
				   unsigned int nvqs, struct virtqueue *vqs[],
				   const struct vdmabuf_vq_info *info)
{
#if VDMABUF_KERNEL_SINCE(6, 11)
	struct virtqueue_info vqs_info[VDMABUF_COMPAT_MAX_VQS] = {};
	unsigned int i;

	if (WARN_ON(nvqs > VDMABUF_COMPAT_MAX_VQS))
		return -EINVAL;
	for (i = 0; i < nvqs; i++) {
		vqs_info[i].name = info[i].name;
		vqs_info[i].callback = info[i].callback;
	}
	return virtio_find_vqs(vdev, nvqs, vqs, vqs_info, NULL);
#else
	vq_callback_t *callbacks[VDMABUF_COMPAT_MAX_VQS] = {};
	const char *names[VDMABUF_COMPAT_MAX_VQS] = {};
	unsigned int i;

	if (WARN_ON(nvqs > VDMABUF_COMPAT_MAX_VQS))
		return -EINVAL;
	for (i = 0; i < nvqs; i++) {
		callbacks[i] = info[i].callback;
		names[i] = info[i].name;
	}
	return virtio_find_vqs(vdev, nvqs, vqs, callbacks, names, NULL);
#endif
}

/*
 * 6.10: register_virtio_driver() sets driver.owner itself (and a driver
 * must leave it unset); before, the driver set it.
 */
static inline int vdmabuf_register_virtio_driver(struct virtio_driver *drv)
{
#if !VDMABUF_KERNEL_SINCE(6, 10)
	drv->driver.owner = THIS_MODULE;
#endif
	return register_virtio_driver(drv);
}

/* 6.3: vma->vm_flags is read-only; changes go through vm_flags_set(). */
static inline void vdmabuf_vm_flags_set(struct vm_area_struct *vma,
					unsigned long flags)
{
#if VDMABUF_KERNEL_SINCE(6, 3)
	vm_flags_set(vma, flags);
#else
	vma->vm_flags |= flags;
#endif
}

/*
 * A new reference to @file unless its count already dropped to zero (its
 * last fput() is under way), for a file pointer that is not itself part of
 * the reference counting. The caller must keep the struct file from being
 * freed meanwhile (the driver holds its buffer table's lock, which the
 * dma-buf's release needs before the file can be freed).
 *
 * 6.7: struct file is SLAB_TYPESAFE_BY_RCU and get_file_active() is the
 * public helper for exactly this. Before, get_file_rcu() (fs.h) did the
 * increment-unless-zero on f_count.
 */
static inline bool vdmabuf_get_file_active(struct file **filep)
{
#if VDMABUF_KERNEL_SINCE(6, 7)
	return get_file_active(filep);
#else
	return get_file_rcu(*filep);
#endif
}

/*
 * 6.2: dma_buf_vmap() expects the reservation lock held by the caller;
 * importers that do not hold it call dma_buf_vmap_unlocked(). Before,
 * dma_buf_vmap() took what it needed itself. (Used by tests/kimport/.)
 */
static inline int vdmabuf_dma_buf_vmap(struct dma_buf *dmabuf,
				       struct iosys_map *map)
{
#if VDMABUF_KERNEL_SINCE(6, 2)
	return dma_buf_vmap_unlocked(dmabuf, map);
#else
	return dma_buf_vmap(dmabuf, map);
#endif
}

static inline void vdmabuf_dma_buf_vunmap(struct dma_buf *dmabuf,
					  struct iosys_map *map)
{
#if VDMABUF_KERNEL_SINCE(6, 2)
	dma_buf_vunmap_unlocked(dmabuf, map);
#else
	dma_buf_vunmap(dmabuf, map);
#endif
}

/*
 * The largest order the buddy allocator hands out. 6.8 renamed it
 * MAX_PAGE_ORDER; 6.4 made MAX_ORDER inclusive (before, the largest order
 * was MAX_ORDER - 1).
 */
#if VDMABUF_KERNEL_SINCE(6, 8)
#define VDMABUF_MAX_PAGE_ORDER	MAX_PAGE_ORDER
#elif VDMABUF_KERNEL_SINCE(6, 4)
#define VDMABUF_MAX_PAGE_ORDER	MAX_ORDER
#else
#define VDMABUF_MAX_PAGE_ORDER	(MAX_ORDER - 1)
#endif

/*
 * @nr physically contiguous pages beyond what the buddy allocator can hand
 * out (CONFIG_CONTIG_ALLOC: free pages are taken and movable ones migrated
 * away, as for gigantic huge pages), each page with its own reference (free
 * them with put_page() or free_contig_range()), not zeroed; NULL if no such
 * run can be made free. May sleep; gives up early on a fatal signal.
 *
 * 7.2: alloc_contig_pages() is exported (verified in Debian's 7.2 and 7.3;
 * 6.12 does not export it; the releases in between were not checked). It
 * accepts only reclaim and a few action modifiers in @gfp.
 *
 * Before: alloc_contig_range(), exported since it was added (virtio-mem uses
 * it), on the kind of range alloc_contig_pages() itself tries: online pages
 * of one zone, none reserved or a huge page; here at every pageblock (since
 * 5.19 alloc_contig_range() takes ranges at pageblock granularity), where
 * alloc_contig_pages() only tries @nr-aligned runs. 6.16 turned its
 * migratetype argument (MIGRATE_MOVABLE for ordinary requests) into
 * acr_flags_t (ACR_FLAGS_NONE).
 *
 * Without CONFIG_CONTIG_ALLOC (on in Debian's 6.1, 6.12, 7.2 and 7.3) there is
 * none of them: NULL.
 */
#if !IS_ENABLED(CONFIG_CONTIG_ALLOC)
/* a kernel without the contiguous range allocator: the buddy allocator only */
static inline struct page *vdmabuf_alloc_contig_pages(unsigned long nr,
						      gfp_t gfp)
{
	return NULL;
}
#elif VDMABUF_KERNEL_SINCE(7, 2)
static inline struct page *vdmabuf_alloc_contig_pages(unsigned long nr,
						      gfp_t gfp)
{
	return alloc_contig_pages(nr, gfp, numa_node_id(), NULL);
}
#else
static inline int vdmabuf_alloc_contig_range(unsigned long start,
					     unsigned long end, gfp_t gfp)
{
#if VDMABUF_KERNEL_SINCE(6, 16)
	return alloc_contig_range(start, end, ACR_FLAGS_NONE, gfp);
#else
	return alloc_contig_range(start, end, MIGRATE_MOVABLE, gfp);
#endif
}

/*
 * The first pfn of [@start, +@nr) that must not be handed to
 * alloc_contig_range() (offline, another zone, reserved, a huge page), or
 * @start + @nr if there is none.
 */
static inline unsigned long vdmabuf_contig_bad_pfn(struct zone *zone,
						   unsigned long start,
						   unsigned long nr)
{
	unsigned long pfn;
	struct page *page;

	for (pfn = start; pfn < start + nr; pfn++) {
		page = pfn_to_online_page(pfn);
		if (!page || page_zone(page) != zone || PageReserved(page) ||
		    PageHuge(page))
			break;
	}
	return pfn;
}

static inline struct page *vdmabuf_alloc_contig_pages(unsigned long nr,
						      gfp_t gfp)
{
	unsigned long start, bad;
	struct zone *zone;
	int nid, z;

	for_each_online_node(nid) {
		for (z = MAX_NR_ZONES - 1; z >= 0; z--) {
			zone = &NODE_DATA(nid)->node_zones[z];
			if (!populated_zone(zone) || zone_is_zone_device(zone))
				continue;
			start = ALIGN(zone->zone_start_pfn, pageblock_nr_pages);
			while (start + nr <= zone_end_pfn(zone)) {
				if (fatal_signal_pending(current))
					return NULL;
				cond_resched();
				bad = vdmabuf_contig_bad_pfn(zone, start, nr);
				if (bad < start + nr) {
					/* no run through @bad: skip past it */
					start = ALIGN(bad + 1, pageblock_nr_pages);
					continue;
				}
				if (!vdmabuf_alloc_contig_range(start,
								start + nr,
								gfp))
					return pfn_to_page(start);
				start += pageblock_nr_pages;
			}
		}
	}
	return NULL;
}
#endif

#endif /* _VIRTIO_DMABUF_COMPAT_H */
