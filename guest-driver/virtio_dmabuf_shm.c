// SPDX-License-Identifier: GPL-2.0
/*
 * Virtio dma-buf sharing device: the shared memory region.
 *
 * Mapped imports (docs/device-spec.md, section 13) live in the device's
 * shared memory region 0: the device places each one at an offset of its
 * choosing and the driver exports that range as a dma-buf. The driver maps
 * the whole region once, at probe, with struct pages (memremap_pages(),
 * MEMORY_DEVICE_GENERIC, as device-dax does), so that
 *
 *  - the region is in the kernel's direct map (vmap of a mapped import is an
 *    address in it, and importers that read through the DMA address, like
 *    tests/kimport, find it there),
 *  - importers get ordinary sg_tables of pages, DMA-mapped with
 *    dma_map_sgtable() like guest RAM.
 *
 * MEMORY_DEVICE_FS_DAX would tie the pages to the DAX core's reference rules
 * (from 6.15 their count starts at zero and only fsdax may take it); GENERIC
 * pages have the same rules on every supported kernel: each has a reference
 * of the pagemap's, and nothing else of the mm owns them. User space maps the
 * range by PFN (VM_PFNMAP, see the exporter), never by page, so that no
 * reference to a page of the region can outlive the buffer (get_user_pages
 * refuses VM_PFNMAP): after RELEASE the device may put another buffer there.
 *
 * The mapping is not device-managed: it lives as long as the region object,
 * which the device and every mapped import hold a reference to, so a buffer
 * that outlives remove() (an open fd, an importer's mapping) still points at
 * mapped memory (reading zeros: the device removed its mappings at reset).
 */

#include <linux/io.h>
#include <linux/ioport.h>
#include <linux/memremap.h>
#include <linux/mm.h>
#include <linux/scatterlist.h>
#include <linux/sizes.h>
#include <linux/slab.h>
#include <linux/virtio_config.h>

#include "virtio_dmabuf_internal.h"

/*
 * The region's struct pages (64 bytes per 4 KiB, 1/64 of the region) may take
 * at most this fraction of guest RAM: a 256 MiB region costs 4 MiB; a 512 MiB
 * guest maps regions of up to 2 GiB.
 */
#define VDMABUF_SHM_MEMMAP_RAM_SHARE	16
/* Longest sg entry of a mapped import's table (contiguous struct pages). */
#define VDMABUF_SHM_SG_CHUNK		SZ_1G

/*
 * memremap_pages() needs CONFIG_ZONE_DEVICE (on in every Debian kernel);
 * without it there are no mapped imports and IMPORT copies.
 */
#ifdef CONFIG_ZONE_DEVICE
static void *vdmabuf_shm_memremap(struct vdmabuf_shm *shm, int nid)
{
	shm->pgmap.type = MEMORY_DEVICE_GENERIC;
	shm->pgmap.range.start = shm->phys;
	shm->pgmap.range.end = shm->phys + shm->len - 1;
	shm->pgmap.nr_range = 1;
	return memremap_pages(&shm->pgmap, nid);
}

static void vdmabuf_shm_memunmap(struct vdmabuf_shm *shm)
{
	memunmap_pages(&shm->pgmap);
}
#else
static void *vdmabuf_shm_memremap(struct vdmabuf_shm *shm, int nid)
{
	return ERR_PTR(-EOPNOTSUPP);
}

static void vdmabuf_shm_memunmap(struct vdmabuf_shm *shm)
{
}
#endif

static void vdmabuf_shm_release(struct kref *ref)
{
	struct vdmabuf_shm *shm = container_of(ref, struct vdmabuf_shm, ref);

	vdmabuf_shm_memunmap(shm);
	release_mem_region(shm->phys, shm->len);
	kfree(shm);
}

struct vdmabuf_shm *vdmabuf_shm_get(struct vdmabuf_shm *shm)
{
	kref_get(&shm->ref);
	return shm;
}

/* Process context (memunmap_pages() sleeps). */
void vdmabuf_shm_put(struct vdmabuf_shm *shm)
{
	might_sleep();
	kref_put(&shm->ref, vdmabuf_shm_release);
}

/* Map [phys, phys + len) with struct pages; an ERR_PTR() on failure. */
static struct vdmabuf_shm *vdmabuf_shm_map(struct vdmabuf_device *dev,
					   phys_addr_t phys, u64 len)
{
	u64 memmap = (len >> PAGE_SHIFT) * sizeof(struct page);
	struct vdmabuf_shm *shm;
	void *vaddr;
	int ret;

	/* the device's offsets are in 4096-byte units (section 13.1) */
	if (PAGE_SIZE != SZ_4K)
		return ERR_PTR(-EOPNOTSUPP);
	/* memory hotplug adds whole subsections (2 MiB on x86-64) */
	if (!len || !IS_ALIGNED(phys | len, SZ_2M))
		return ERR_PTR(-EINVAL);
	if (memmap > ((u64)totalram_pages() << PAGE_SHIFT) /
		     VDMABUF_SHM_MEMMAP_RAM_SHARE)
		return ERR_PTR(-E2BIG);

	shm = kzalloc(sizeof(*shm), GFP_KERNEL);
	if (!shm)
		return ERR_PTR(-ENOMEM);
	kref_init(&shm->ref);
	shm->phys = phys;
	shm->len = len;
	snprintf(shm->name, sizeof(shm->name), "%s shm", dev->name);

	shm->res = request_mem_region(phys, len, shm->name);
	if (!shm->res) {
		ret = -EBUSY;
		goto err_free;
	}

	vaddr = vdmabuf_shm_memremap(shm, dev_to_node(&dev->vdev->dev));
	if (IS_ERR(vaddr)) {
		ret = PTR_ERR(vaddr);
		goto err_region;
	}
	shm->vaddr = vaddr;
	return shm;

err_region:
	release_mem_region(phys, len);
err_free:
	kfree(shm);
	return ERR_PTR(ret);
}

/*
 * Find shared memory region 0 and map it, if the device offers MAP. Sets
 * dev->shm (NULL if mapped imports are not possible) and dev->shm_state;
 * never fails: without the region, IMPORT copies.
 */
void vdmabuf_shm_setup(struct vdmabuf_device *dev)
{
	struct virtio_shm_region region;
	struct vdmabuf_shm *shm;

	dev->shm = NULL;
	if (!dev->can_map) {
		dev->shm_state = VIRTIO_DMABUF_SHM_NO_FEATURE;
		return;
	}
	if (!virtio_get_shm_region(dev->vdev, &region, VIRTIO_DMABUF_SHM_MAP)) {
		dev->shm_state = VIRTIO_DMABUF_SHM_NO_REGION;
		dev_info(&dev->vdev->dev,
			 "MAP offered but no shared memory region %u (the VMM has no vhost-user shared memory): imports are copies\n",
			 VIRTIO_DMABUF_SHM_MAP);
		return;
	}
	dev->shm_addr = region.addr;
	dev->shm_len = region.len;

	shm = vdmabuf_shm_map(dev, region.addr, region.len);
	if (IS_ERR(shm)) {
		dev->shm_state = VIRTIO_DMABUF_SHM_UNUSABLE;
		dev->shm_error = -PTR_ERR(shm);
		dev_warn(&dev->vdev->dev,
			 "shared memory region %u (%llu bytes at %#llx) not usable (%ld): imports are copies\n",
			 VIRTIO_DMABUF_SHM_MAP, region.len, region.addr,
			 PTR_ERR(shm));
		return;
	}
	dev->shm = shm;
	dev->shm_state = VIRTIO_DMABUF_SHM_ACTIVE;
	dev_info(&dev->vdev->dev,
		 "shared memory region %u: %llu bytes at %#llx, mapped imports\n",
		 VIRTIO_DMABUF_SHM_MAP, region.len, region.addr);
}

/* [offset, offset + len) is a non-empty, page-aligned range of the region */
bool vdmabuf_shm_range_ok(const struct vdmabuf_shm *shm, u64 offset, u64 len)
{
	return len && PAGE_ALIGNED(offset) && PAGE_ALIGNED(len) &&
	       offset < shm->len && len <= shm->len - offset;
}

unsigned long vdmabuf_shm_pfn(const struct vdmabuf_shm *shm, u64 offset)
{
	return PHYS_PFN(shm->phys + offset);
}

void *vdmabuf_shm_vaddr(const struct vdmabuf_shm *shm, u64 offset)
{
	return shm->vaddr + offset;
}

/*
 * A table of the region's pages in [offset, offset + len) (a range checked
 * with vdmabuf_shm_range_ok()): physically contiguous, so one entry per
 * VDMABUF_SHM_SG_CHUNK.
 */
int vdmabuf_shm_sg_table(const struct vdmabuf_shm *shm, u64 offset, u64 len,
			 struct sg_table *sgt)
{
	u64 nents = DIV_ROUND_UP_ULL(len, VDMABUF_SHM_SG_CHUNK);
	struct scatterlist *sg;
	unsigned int i;
	u64 chunk;
	int ret;

	if (nents > UINT_MAX)
		return -E2BIG;
	ret = sg_alloc_table(sgt, nents, GFP_KERNEL);
	if (ret)
		return ret;
	for_each_sgtable_sg(sgt, sg, i) {
		chunk = min_t(u64, len, VDMABUF_SHM_SG_CHUNK);
		sg_set_page(sg, pfn_to_page(vdmabuf_shm_pfn(shm, offset)),
			    chunk, 0);
		offset += chunk;
		len -= chunk;
	}
	return 0;
}
