// SPDX-License-Identifier: GPL-2.0
/*
 * Virtio dma-buf sharing device: buffer memory.
 *
 * The pages of a buffer (struct vdmabuf_pages): allocation, reference
 * counting and the segment list (guest-physical ranges) that CREATE and
 * ATTACH hand to the device. Two test knobs in debugfs change how the memory
 * is laid out, to exercise long segment lists:
 *
 *   /sys/kernel/debug/virtio-dmabuf/alloc_max_order  largest page order used
 *       (default 9, 2 MiB chunks; 0: page by page; above 10 counts as 10)
 *   /sys/kernel/debug/virtio-dmabuf/scatter  1: no two pages of a buffer
 *       physically adjacent (one segment per page), and segment lists in
 *       vmalloc memory whose pages are not adjacent either
 *
 * They apply to buffers allocated afterwards, on every device instance, but
 * not to contiguous buffers (VIRTIO_DMABUF_ALLOC_CONTIGUOUS), which are one
 * run of pages and so one segment whatever the knobs say.
 */

#include <linux/debugfs.h>
#include <linux/gfp.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/overflow.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>

#include "virtio_dmabuf_compat.h"
#include "virtio_dmabuf_internal.h"

/* Largest chunk tried when allocating buffer pages (9: 2 MiB, 4 KiB pages). */
static u32 vdmabuf_alloc_max_order = 9;
/* Scatter buffer pages and segment list pages (a test knob). */
static bool vdmabuf_scatter;

/* The test knobs, in @dir (the driver's debugfs directory). */
void vdmabuf_pages_debugfs_init(struct dentry *dir)
{
	debugfs_create_u32("alloc_max_order", 0600, dir,
			   &vdmabuf_alloc_max_order);
	debugfs_create_bool("scatter", 0600, dir, &vdmabuf_scatter);
}

/*
 * scatter: fill @pages with order-0 pages, allocating a spare page after
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

/* scatter: @bytes of vmalloc memory in scattered pages */
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
 * Allocate @nr zeroed pages, in chunks as large as possible so that the
 * segment list stays short. Chunks are split into independent order-0 pages,
 * which the mmap fault handler maps one by one.
 */
static int vdmabuf_fill_pages(struct vdmabuf_pages *mem)
{
	unsigned int order = min(READ_ONCE(vdmabuf_alloc_max_order), 10U);
	unsigned long i = 0, j;

	if (READ_ONCE(vdmabuf_scatter))
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
 * VIRTIO_DMABUF_ALLOC_CONTIGUOUS: one physically contiguous run of zeroed
 * pages, each with its own reference like the split chunks above. From the
 * buddy allocator when the run fits into one of its blocks (up to 4 MiB on
 * x86), with reclaim and compaction; beyond that, or when that fails, from
 * the contiguous range allocator, which also migrates movable pages out of
 * the way (CONFIG_CONTIG_ALLOC). No CMA area is needed (Debian's kernels
 * reserve none). -ENOMEM if the guest has no such run, nothing kept.
 */
static int vdmabuf_fill_contig(struct vdmabuf_pages *mem)
{
	const gfp_t gfp = GFP_KERNEL | __GFP_NOWARN;
	struct page *page = NULL;
	unsigned long pfn, i;
	void *addr;

	if (mem->nr <= (1UL << VDMABUF_MAX_PAGE_ORDER)) {
		addr = alloc_pages_exact(mem->nr << PAGE_SHIFT,
					 gfp | __GFP_ZERO | __GFP_RETRY_MAYFAIL);
		if (addr)
			page = virt_to_page(addr);
	}
	if (!page) {
		page = vdmabuf_alloc_contig_pages(mem->nr, gfp);
		if (!page)
			return fatal_signal_pending(current) ? -EINTR : -ENOMEM;
		for (i = 0; i < mem->nr; i++) {
			clear_highpage(pfn_to_page(page_to_pfn(page) + i));
			if (!(i % 512))
				cond_resched();
		}
	}
	pfn = page_to_pfn(page);
	for (i = 0; i < mem->nr; i++)
		mem->pages[i] = pfn_to_page(pfn + i);
	return 0;
}

/*
 * @nr zeroed pages with one reference, or an ERR_PTR(); @contiguous: one
 * physically contiguous run (the debugfs knobs do not apply).
 */
struct vdmabuf_pages *vdmabuf_pages_alloc(unsigned long nr, bool contiguous)
{
	struct vdmabuf_pages *mem;
	int ret;

	mem = kvzalloc(struct_size(mem, pages, nr), GFP_KERNEL);
	if (!mem)
		return ERR_PTR(-ENOMEM);
	kref_init(&mem->ref);
	INIT_LIST_HEAD(&mem->node);
	mem->nr = nr;
	ret = contiguous ? vdmabuf_fill_contig(mem) : vdmabuf_fill_pages(mem);
	if (ret) {
		vdmabuf_pages_put(mem);	/* frees what was allocated */
		return ERR_PTR(ret);
	}
	return mem;
}

/*
 * The segment list of the first @size bytes of @mem: guest-physical ranges,
 * contiguous pages coalesced, the last one cut so that the lengths add up to
 * @size. At most @max_segs segments (else -E2BIG); free it with kvfree().
 */
struct virtio_dmabuf_seg *vdmabuf_pages_segs(const struct vdmabuf_pages *mem,
					     u64 size, u32 max_segs,
					     u32 *nr_segsp)
{
	struct page * const *pages = mem->pages;
	struct virtio_dmabuf_seg *segs;
	unsigned long i, n = 1;
	phys_addr_t start, next;
	u64 len;

	for (i = 1; i < mem->nr; i++)
		if (page_to_phys(pages[i]) !=
		    page_to_phys(pages[i - 1]) + PAGE_SIZE)
			n++;
	if (n > max_segs)
		return ERR_PTR(-E2BIG);

	if (READ_ONCE(vdmabuf_scatter))
		segs = vdmabuf_scatter_vmalloc(array_size(n, sizeof(*segs)));
	else
		segs = kvmalloc_array(n, sizeof(*segs), GFP_KERNEL);
	if (!segs)
		return ERR_PTR(-ENOMEM);

	n = 0;
	start = page_to_phys(pages[0]);
	len = PAGE_SIZE;
	for (i = 1; i <= mem->nr; i++) {
		next = i < mem->nr ? page_to_phys(pages[i]) : 0;
		if (i < mem->nr && next == start + len) {
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
	      (((u64)mem->nr << PAGE_SHIFT) - size);
	segs[n - 1].len = cpu_to_le64(len);
	*nr_segsp = n;
	return segs;
}
