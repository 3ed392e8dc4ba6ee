// SPDX-License-Identifier: GPL-2.0
/*
 * Virtio dma-buf sharing device: the character device.
 *
 * One misc device /dev/virtio-dmabuf<N> per device instance. Its ioctls are
 * documented in include/uapi/linux/virtio_dmabuf.h and README.md.
 */

#include <linux/dma-buf.h>
#include <linux/fcntl.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/uaccess.h>

#include "virtio_dmabuf_internal.h"

static int vdmabuf_open(struct inode *inode, struct file *file)
{
	/* misc_open() holds misc_mtx: remove() cannot deregister meanwhile */
	struct vdmabuf_device *dev = container_of(file->private_data,
						  struct vdmabuf_device, misc);

	vdmabuf_device_get(dev);
	file->private_data = dev;
	return 0;
}

static int vdmabuf_release_file(struct inode *inode, struct file *file)
{
	vdmabuf_device_put(file->private_data);
	return 0;
}

/*
 * Give userspace a new fd for @dmabuf, consuming the caller's reference. The
 * fd is installed only after the argument (which holds the fd number at
 * *fdp) was copied to userspace, so a failed copy leaves no fd behind.
 */
static int vdmabuf_publish(struct dma_buf *dmabuf, u32 fd_flags,
			   void __user *uarg, const void *karg, size_t size,
			   __s32 *fdp)
{
	int fd;

	fd = get_unused_fd_flags(fd_flags & VIRTIO_DMABUF_FD_NO_CLOEXEC ?
				 0 : O_CLOEXEC);
	if (fd < 0) {
		dma_buf_put(dmabuf);
		return fd;
	}
	*fdp = fd;
	if (copy_to_user(uarg, karg, size)) {
		put_unused_fd(fd);
		dma_buf_put(dmabuf);
		return -EFAULT;
	}
	fd_install(fd, dmabuf->file);
	return 0;
}

static long vdmabuf_ioctl_alloc(struct vdmabuf_device *dev,
				void __user *uarg)
{
	struct virtio_dmabuf_ioc_alloc arg;
	struct dma_buf *dmabuf;
	int ret;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (arg.fd_flags & ~VIRTIO_DMABUF_FD_MASK)
		return -EINVAL;
	ret = vdmabuf_buffer_alloc(dev, arg.size, arg.flags, arg.alloc_flags,
				   &dmabuf, arg.uuid);
	if (ret)
		return ret;
	return vdmabuf_publish(dmabuf, arg.fd_flags, uarg, &arg, sizeof(arg),
			       &arg.fd);
}

static long vdmabuf_ioctl_import(struct vdmabuf_device *dev,
				 void __user *uarg)
{
	struct virtio_dmabuf_ioc_import arg;
	struct vdmabuf_buffer *buf;
	struct dma_buf *dmabuf;
	int ret;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (arg.fd_flags & ~VIRTIO_DMABUF_FD_MASK ||
	    arg.import_flags & ~VIRTIO_DMABUF_IMPORT_MASK)
		return -EINVAL;
	ret = vdmabuf_buffer_import(dev, arg.uuid, arg.import_flags, &dmabuf);
	if (ret)
		return ret;
	buf = vdmabuf_buffer_from_dmabuf(dmabuf);
	arg.size = buf->size;
	arg.flags = buf->flags;
	return vdmabuf_publish(dmabuf, arg.fd_flags, uarg, &arg, sizeof(arg),
			       &arg.fd);
}

/* A dma-buf fd exported by this driver; put it with dma_buf_put(). */
static struct vdmabuf_buffer *vdmabuf_get_buffer(int fd,
						 struct dma_buf **dmabufp)
{
	struct vdmabuf_buffer *buf;
	struct dma_buf *dmabuf;

	dmabuf = dma_buf_get(fd);
	if (IS_ERR(dmabuf))
		return ERR_CAST(dmabuf);
	buf = vdmabuf_buffer_from_dmabuf(dmabuf);
	if (!buf) {
		dma_buf_put(dmabuf);
		return ERR_PTR(-EINVAL);
	}
	*dmabufp = dmabuf;
	return buf;
}

static long vdmabuf_ioctl_sync(void __user *uarg)
{
	const u32 dir_mask = VIRTIO_DMABUF_IOC_SYNC_READ |
			     VIRTIO_DMABUF_IOC_SYNC_WRITE;
	struct virtio_dmabuf_ioc_sync arg;
	struct vdmabuf_buffer *buf;
	struct dma_buf *dmabuf;
	u32 flags = 0;
	bool start, end;
	int ret;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	start = arg.flags & VIRTIO_DMABUF_IOC_SYNC_START;
	end = arg.flags & VIRTIO_DMABUF_IOC_SYNC_END;
	if (arg.flags & ~VIRTIO_DMABUF_IOC_SYNC_MASK ||
	    !(arg.flags & dir_mask) || start == end || arg.reserved)
		return -EINVAL;
	if (arg.flags & VIRTIO_DMABUF_IOC_SYNC_READ)
		flags |= VIRTIO_DMABUF_SYNC_READ;
	if (arg.flags & VIRTIO_DMABUF_IOC_SYNC_WRITE)
		flags |= VIRTIO_DMABUF_SYNC_WRITE;
	if (end)
		flags |= VIRTIO_DMABUF_SYNC_END;

	buf = vdmabuf_get_buffer(arg.fd, &dmabuf);
	if (IS_ERR(buf))
		return PTR_ERR(buf);
	ret = vdmabuf_buffer_sync(buf, arg.offset, arg.len, flags,
				  arg.timeout_ms);
	dma_buf_put(dmabuf);
	return ret;
}

static long vdmabuf_ioctl_info(void __user *uarg)
{
	struct virtio_dmabuf_ioc_info arg;
	struct vdmabuf_buffer *buf;
	struct dma_buf *dmabuf;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	buf = vdmabuf_get_buffer(arg.fd, &dmabuf);
	if (IS_ERR(buf))
		return PTR_ERR(buf);

	arg.kind = buf->kind;
	arg.size = buf->size;
	memcpy(arg.uuid, buf->uuid, sizeof(arg.uuid));
	arg.flags = buf->flags;
	arg.share_flags = buf->share_flags;
	arg.state = 0;
	if (test_bit(VDMABUF_REVOKED, &buf->state))
		arg.state |= VIRTIO_DMABUF_STATE_REVOKED;
	if (vdmabuf_device_gone(buf->dev))
		arg.state |= VIRTIO_DMABUF_STATE_DEVICE_GONE;
	arg.device = buf->dev->index;
	dma_buf_put(dmabuf);

	if (copy_to_user(uarg, &arg, sizeof(arg)))
		return -EFAULT;
	return 0;
}

static long vdmabuf_ioctl_device_info(struct vdmabuf_device *dev,
				      void __user *uarg)
{
	struct virtio_dmabuf_ioc_device_info arg = {
		.max_segments = dev->max_segments,
		.max_buffers = dev->max_buffers,
		.max_bytes = dev->max_bytes,
		.sync_timeout_ms = dev->sync_timeout_ms,
		.index = dev->index,
		.features = (dev->can_import ?
			     1ULL << VIRTIO_DMABUF_F_IMPORT : 0) |
			    (dev->can_map ? 1ULL << VIRTIO_DMABUF_F_MAP : 0),
		.queue_size = dev->queue_size,
		.max_starts = dev->max_starts,
	};

	if (copy_to_user(uarg, &arg, sizeof(arg)))
		return -EFAULT;
	return 0;
}

static long vdmabuf_ioctl_shm_info(struct vdmabuf_device *dev,
				   void __user *uarg)
{
	struct virtio_dmabuf_ioc_shm_info arg = {
		.addr = dev->shm_addr,
		.size = dev->shm_len,
		.state = dev->shm_state,
		.error = dev->shm_error,
		.nr_fallbacks = atomic_read(&dev->nr_fallbacks),
		.last_fallback = atomic_read(&dev->last_fallback),
	};

	if (dev->shm) {
		arg.bytes_mapped = atomic64_read(&dev->shm->bytes_mapped);
		arg.nr_mapped = atomic_read(&dev->shm->nr_mapped);
	}
	if (copy_to_user(uarg, &arg, sizeof(arg)))
		return -EFAULT;
	return 0;
}

static long vdmabuf_ioctl(struct file *file, unsigned int cmd,
			  unsigned long arg)
{
	struct vdmabuf_device *dev = file->private_data;
	void __user *uarg = (void __user *)arg;

	switch (cmd) {
	case VIRTIO_DMABUF_IOC_ALLOC:
		return vdmabuf_ioctl_alloc(dev, uarg);
	case VIRTIO_DMABUF_IOC_IMPORT:
		return vdmabuf_ioctl_import(dev, uarg);
	case VIRTIO_DMABUF_IOC_SYNC:
		return vdmabuf_ioctl_sync(uarg);
	case VIRTIO_DMABUF_IOC_INFO:
		return vdmabuf_ioctl_info(uarg);
	case VIRTIO_DMABUF_IOC_DEVICE_INFO:
		if (vdmabuf_device_gone(dev))
			return -ENODEV;
		return vdmabuf_ioctl_device_info(dev, uarg);
	case VIRTIO_DMABUF_IOC_SHM_INFO:
		if (vdmabuf_device_gone(dev))
			return -ENODEV;
		return vdmabuf_ioctl_shm_info(dev, uarg);
	default:
		return -ENOTTY;
	}
}

static const struct file_operations vdmabuf_fops = {
	.owner = THIS_MODULE,
	.open = vdmabuf_open,
	.release = vdmabuf_release_file,
	.unlocked_ioctl = vdmabuf_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

int vdmabuf_chardev_register(struct vdmabuf_device *dev)
{
	dev->misc.minor = MISC_DYNAMIC_MINOR;
	dev->misc.name = dev->name;
	dev->misc.fops = &vdmabuf_fops;
	dev->misc.parent = &dev->vdev->dev;
	return misc_register(&dev->misc);
}

void vdmabuf_chardev_unregister(struct vdmabuf_device *dev)
{
	misc_deregister(&dev->misc);
}
