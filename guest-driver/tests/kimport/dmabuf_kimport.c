// SPDX-License-Identifier: GPL-2.0
/*
 * Test-only in-guest kernel importer of dma-bufs.
 *
 * /dev/dmabuf-kimport takes a dma-buf fd (DMABUF_KIMPORT_IOC_RUN, see
 * dmabuf_kimport.h) and accesses the buffer the way an in-kernel importer
 * does: dma_buf_get, dma_buf_begin_cpu_access, dma_buf_vmap, read or write,
 * dma_buf_vunmap, dma_buf_end_cpu_access, dma_buf_put. With
 * DMABUF_KIMPORT_F_ATTACH it also attaches a device of its own, maps the
 * attachment and reads the buffer the way that device would: through the
 * DMA addresses of the sg_table.
 */

#include <linux/dma-buf.h>
#include <linux/dma-direct.h>
#include <linux/dma-mapping.h>
#include <linux/io.h>
#include <linux/iosys-map.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/platform_device.h>
#include <linux/scatterlist.h>
#include <linux/uaccess.h>

#include "dmabuf_kimport.h"
#include "virtio_dmabuf_compat.h"

static struct platform_device *kimport_pdev;

/*
 * Checksum of [offset, offset + len) read through an attachment's sg_table.
 *
 * This is a test importer emulating the DMA read of the device it attached:
 * it uses only what a device gets, the DMA addresses and lengths of the
 * mapped segments, never the pages behind the table (the dma-buf core may
 * hide them: DMABUF_DEBUG). In the test guests there is no IOMMU, so a DMA
 * address translates back to a physical address with dma_to_phys(), which
 * the CPU reads through the direct map. (With swiotlb bouncing this reads
 * the bounce buffer, which is what the device would read, too.)
 */
static int kimport_attach_checksum(struct dma_buf *dmabuf, u64 offset, u64 len,
				   u64 *sum)
{
	struct device *dev = &kimport_pdev->dev;
	struct dma_buf_attachment *attach;
	u64 pos = 0, h = DMABUF_FNV64_BASIS;
	struct scatterlist *sg;
	struct sg_table *sgt;
	unsigned int i;
	int ret = 0;

	attach = dma_buf_attach(dmabuf, dev);
	if (IS_ERR(attach))
		return PTR_ERR(attach);
	sgt = dma_buf_map_attachment_unlocked(attach, DMA_FROM_DEVICE);
	if (IS_ERR(sgt)) {
		ret = PTR_ERR(sgt);
		goto out_detach;
	}

	for_each_sgtable_dma_sg(sgt, sg, i) {
		u64 seg_end = pos + sg_dma_len(sg);
		u64 from = max(pos, offset);
		u64 to = min(seg_end, offset + len);

		if (from < to) {
			phys_addr_t phys = dma_to_phys(dev, sg_dma_address(sg) +
							(from - pos));

			h = dmabuf_fnv64_update(h, phys_to_virt(phys), to - from);
		}
		pos = seg_end;
	}
	if (pos < offset + len)
		ret = -EFAULT;	/* mapped less than the buffer */
	*sum = h;

	dma_buf_unmap_attachment_unlocked(attach, sgt, DMA_FROM_DEVICE);
out_detach:
	dma_buf_detach(dmabuf, attach);
	return ret;
}

static int kimport_run(struct dmabuf_kimport_run *run)
{
	enum dma_data_direction dir;
	struct iosys_map map;
	struct dma_buf *dmabuf;
	u64 i, len;
	int ret, err;
	u8 *p;

	run->mismatch = ~0ULL;
	run->checksum = 0;
	run->attach_checksum = 0;
	run->size = 0;
	run->step = DMABUF_KIMPORT_STEP_GET;
	dmabuf = dma_buf_get(run->fd);
	if (IS_ERR(dmabuf))
		return PTR_ERR(dmabuf);
	run->size = dmabuf->size;

	run->step = DMABUF_KIMPORT_STEP_ARGS;
	len = run->len ? run->len : dmabuf->size - min_t(u64, run->offset,
							  dmabuf->size);
	if (!len || run->offset >= dmabuf->size ||
	    len > dmabuf->size - run->offset) {
		ret = -EINVAL;
		goto out_put;
	}
	dir = run->op == DMABUF_KIMPORT_OP_WRITE ? DMA_TO_DEVICE :
						   DMA_FROM_DEVICE;

	run->step = DMABUF_KIMPORT_STEP_BEGIN;
	ret = dma_buf_begin_cpu_access(dmabuf, dir);
	if (ret)
		goto out_put;

	run->step = DMABUF_KIMPORT_STEP_VMAP;
	ret = vdmabuf_dma_buf_vmap(dmabuf, &map);
	if (ret)
		goto out_end;
	if (map.is_iomem) {
		ret = -EOPNOTSUPP;
		goto out_vunmap;
	}
	p = (u8 *)map.vaddr + run->offset;

	if (run->op == DMABUF_KIMPORT_OP_WRITE)
		for (i = 0; i < len; i++)
			p[i] = dmabuf_pattern_byte(run->offset + i, run->seed);
	run->checksum = dmabuf_fnv64_update(DMABUF_FNV64_BASIS, p, len);
	if (run->op == DMABUF_KIMPORT_OP_VERIFY) {
		for (i = 0; i < len; i++) {
			if (p[i] != dmabuf_pattern_byte(run->offset + i,
							run->seed)) {
				run->mismatch = run->offset + i;
				run->step = DMABUF_KIMPORT_STEP_VERIFY;
				ret = -EILSEQ;
				break;
			}
		}
	}

out_vunmap:
	vdmabuf_dma_buf_vunmap(dmabuf, &map);
out_end:
	err = dma_buf_end_cpu_access(dmabuf, dir);
	if (err && !ret) {
		run->step = DMABUF_KIMPORT_STEP_END;
		ret = err;
	}
	if (!ret && (run->flags & DMABUF_KIMPORT_F_ATTACH)) {
		run->step = DMABUF_KIMPORT_STEP_ATTACH;
		ret = kimport_attach_checksum(dmabuf, run->offset, len,
					      &run->attach_checksum);
	}
out_put:
	dma_buf_put(dmabuf);
	if (!ret)
		run->step = DMABUF_KIMPORT_STEP_NONE;
	return ret;
}

static long kimport_ioctl(struct file *file, unsigned int cmd,
			  unsigned long arg)
{
	struct dmabuf_kimport_run __user *uarg = (void __user *)arg;
	struct dmabuf_kimport_run run;

	if (cmd != DMABUF_KIMPORT_IOC_RUN)
		return -ENOTTY;
	if (copy_from_user(&run, uarg, sizeof(run)))
		return -EFAULT;
	if (run.op > DMABUF_KIMPORT_OP_WRITE ||
	    run.flags & ~DMABUF_KIMPORT_F_ATTACH)
		return -EINVAL;
	run.result = kimport_run(&run);
	if (copy_to_user(uarg, &run, sizeof(run)))
		return -EFAULT;
	return run.result;
}

static const struct file_operations kimport_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = kimport_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

static struct miscdevice kimport_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = DMABUF_KIMPORT_DEV,
	.fops = &kimport_fops,
};

static int __init kimport_init(void)
{
	int ret;

	kimport_pdev = platform_device_register_simple(DMABUF_KIMPORT_DEV, -1,
						       NULL, 0);
	if (IS_ERR(kimport_pdev))
		return PTR_ERR(kimport_pdev);
	ret = dma_coerce_mask_and_coherent(&kimport_pdev->dev,
					   DMA_BIT_MASK(64));
	if (ret)
		goto err_pdev;
	ret = misc_register(&kimport_misc);
	if (ret)
		goto err_pdev;
	return 0;

err_pdev:
	platform_device_unregister(kimport_pdev);
	return ret;
}

static void __exit kimport_exit(void)
{
	misc_deregister(&kimport_misc);
	platform_device_unregister(kimport_pdev);
}

module_init(kimport_init);
module_exit(kimport_exit);

MODULE_DESCRIPTION("Test-only in-kernel dma-buf importer");
MODULE_LICENSE("GPL");
VDMABUF_IMPORT_NS_DMA_BUF();
