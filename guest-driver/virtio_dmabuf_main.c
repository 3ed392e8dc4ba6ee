// SPDX-License-Identifier: GPL-2.0
/*
 * Virtio dma-buf sharing device: the module and the virtio driver.
 *
 * Module init and exit, probe and remove of a device instance, its
 * configuration and features. The layers below (each calls only the ones
 * after it): virtio_dmabuf_chardev.c (/dev/virtio-dmabuf<N>),
 * virtio_dmabuf_exporter.c (buffers as dma-bufs), virtio_dmabuf_request.c
 * (the device's requests), virtio_dmabuf_transport.c (virtqueues) and
 * virtio_dmabuf_pages.c (buffer memory). What the transport reports upwards
 * goes through the upcalls registered here.
 */

#include <linux/debugfs.h>
#include <linux/idr.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "virtio_dmabuf_internal.h"
#include "virtio_dmabuf_compat.h"

static DEFINE_IDA(vdmabuf_ida);
static struct dentry *vdmabuf_debugfs;

static const struct vdmabuf_upcalls vdmabuf_upcalls = {
	.late_answer = vdmabuf_request_late_answer,
	.revoked = vdmabuf_exporter_revoked,
};

/*
 * Read the configuration space and refuse values the driver cannot work
 * with: a zero limit (no request could succeed) or a START bound of 0 or
 * more than VDMABUF_SYNC_TIMEOUT_MAX_MS (the driver waits that long plus
 * VDMABUF_SYNC_SLACK_MS for a START; nothing real needs more than an hour).
 */
static int vdmabuf_read_config(struct vdmabuf_device *dev)
{
	struct virtio_device *vdev = dev->vdev;

	virtio_cread_le(vdev, struct virtio_dmabuf_config, max_segments,
			&dev->max_segments);
	virtio_cread_le(vdev, struct virtio_dmabuf_config, max_buffers,
			&dev->max_buffers);
	virtio_cread_le(vdev, struct virtio_dmabuf_config, max_bytes,
			&dev->max_bytes);
	virtio_cread_le(vdev, struct virtio_dmabuf_config, sync_timeout_ms,
			&dev->sync_timeout_ms);

	if (!dev->max_segments || !dev->max_buffers || !dev->max_bytes) {
		dev_err(&vdev->dev,
			"refusing the device: a zero limit in its configuration (max_segments %u max_buffers %u max_bytes %llu)\n",
			dev->max_segments, dev->max_buffers, dev->max_bytes);
		return -EINVAL;
	}
	if (!dev->sync_timeout_ms ||
	    dev->sync_timeout_ms > VDMABUF_SYNC_TIMEOUT_MAX_MS) {
		dev_err(&vdev->dev,
			"refusing the device: sync_timeout_ms %u outside 1..%u\n",
			dev->sync_timeout_ms, VDMABUF_SYNC_TIMEOUT_MAX_MS);
		return -EINVAL;
	}
	return 0;
}

static int vdmabuf_probe(struct virtio_device *vdev)
{
	struct vdmabuf_device *dev;
	int ret;

	BUILD_BUG_ON(sizeof(struct virtio_dmabuf_config) != 24);
	BUILD_BUG_ON(sizeof(struct virtio_dmabuf_req_hdr) != 8);
	BUILD_BUG_ON(sizeof(struct virtio_dmabuf_resp_hdr) != 8);
	BUILD_BUG_ON(sizeof(struct virtio_dmabuf_seg) != 16);
	BUILD_BUG_ON(sizeof(struct virtio_dmabuf_create) != 16);
	BUILD_BUG_ON(sizeof(struct virtio_dmabuf_create_resp) != 24);
	BUILD_BUG_ON(sizeof(struct virtio_dmabuf_uuid) != 16);
	BUILD_BUG_ON(sizeof(struct virtio_dmabuf_lookup_resp) != 24);
	BUILD_BUG_ON(sizeof(struct virtio_dmabuf_attach) != 24);
	BUILD_BUG_ON(sizeof(struct virtio_dmabuf_sync) != 40);
	BUILD_BUG_ON(sizeof(struct virtio_dmabuf_event) != 24);
	BUILD_BUG_ON(sizeof(struct virtio_dmabuf_map) != 24);
	BUILD_BUG_ON(offsetof(struct virtio_dmabuf_map, flags) != 0x10);
	BUILD_BUG_ON(sizeof(struct virtio_dmabuf_map_resp) != 32);
	BUILD_BUG_ON(offsetof(struct virtio_dmabuf_map_resp, offset) != 0x08);
	BUILD_BUG_ON(offsetof(struct virtio_dmabuf_map_resp, len) != 0x10);
	BUILD_BUG_ON(offsetof(struct virtio_dmabuf_map_resp, flags) != 0x18);
	/* the ioctl ABI: sizes are part of the numbers */
	BUILD_BUG_ON(sizeof(struct virtio_dmabuf_ioc_alloc) != 40);
	BUILD_BUG_ON(sizeof(struct virtio_dmabuf_ioc_import) != 40);
	BUILD_BUG_ON(sizeof(struct virtio_dmabuf_ioc_sync) != 32);
	BUILD_BUG_ON(sizeof(struct virtio_dmabuf_ioc_info) != 48);
	BUILD_BUG_ON(sizeof(struct virtio_dmabuf_ioc_device_info) != 40);
	BUILD_BUG_ON(sizeof(struct virtio_dmabuf_ioc_shm_info) != 48);

	if (!virtio_has_feature(vdev, VIRTIO_F_VERSION_1)) {
		dev_err(&vdev->dev, "VIRTIO_F_VERSION_1 not offered\n");
		return -ENODEV;
	}
	if (!vdev->config->get) {
		dev_err(&vdev->dev, "device has no configuration space\n");
		return -EINVAL;
	}

	dev = kzalloc(sizeof(*dev), GFP_KERNEL);
	if (!dev)
		return -ENOMEM;
	kref_init(&dev->ref);
	dev->vdev = vdev;
	dev->upcalls = &vdmabuf_upcalls;
	init_waitqueue_head(&dev->table_wq);
	mutex_init(&dev->lock);
	mutex_init(&dev->import_lock);
	hash_init(dev->buffers);
	vdev->priv = dev;

	ret = ida_alloc(&vdmabuf_ida, GFP_KERNEL);
	if (ret < 0)
		goto err_free;
	dev->index = ret;
	snprintf(dev->name, sizeof(dev->name), VIRTIO_DMABUF_DEV_PREFIX "%d",
		 dev->index);

	ret = vdmabuf_read_config(dev);
	if (ret)
		goto err_ida;
	dev->can_import = virtio_has_feature(vdev, VIRTIO_DMABUF_F_IMPORT);
	dev->can_map = dev->can_import &&
		       virtio_has_feature(vdev, VIRTIO_DMABUF_F_MAP);
	dev->indirect = virtio_has_feature(vdev, VIRTIO_RING_F_INDIRECT_DESC);
	vdmabuf_shm_setup(dev);

	ret = vdmabuf_transport_init(dev);
	if (ret)
		goto err_shm;

	virtio_device_ready(vdev);
	vdmabuf_transport_start(dev);

	ret = vdmabuf_chardev_register(dev);
	if (ret)
		goto err_transport;

	dev_info(&vdev->dev,
		 "/dev/%s: max_segments %u max_buffers %u max_bytes %llu sync_timeout_ms %u import %s map %s queue %u%s\n",
		 dev->name, dev->max_segments, dev->max_buffers,
		 dev->max_bytes, dev->sync_timeout_ms,
		 dev->can_import ? "yes" : "no",
		 dev->shm ? "yes" : "no", dev->queue_size,
		 dev->indirect ? " indirect" : "");
	return 0;

err_transport:
	vdmabuf_transport_destroy(dev);
err_shm:
	if (dev->shm)
		vdmabuf_shm_put(dev->shm);
	dev->shm = NULL;
err_ida:
	ida_free(&vdmabuf_ida, dev->index);
err_free:
	vdev->priv = NULL;
	vdmabuf_device_put(dev);
	return ret;
}

static void vdmabuf_remove(struct virtio_device *vdev)
{
	struct vdmabuf_device *dev = vdev->priv;

	/* new requests fail with -ENODEV, then the device node goes */
	vdmabuf_transport_shutdown(dev);
	vdmabuf_exporter_device_gone(dev);
	vdmabuf_chardev_unregister(dev);
	vdmabuf_transport_destroy(dev);
	/* mapped imports still open keep the region mapped */
	if (dev->shm)
		vdmabuf_shm_put(dev->shm);
	dev->shm = NULL;
	ida_free(&vdmabuf_ida, dev->index);
	dev_info(&vdev->dev, "/dev/%s removed\n", dev->name);
	vdev->priv = NULL;
	vdmabuf_device_put(dev);
}

static const struct virtio_device_id vdmabuf_id_table[] = {
	{ VIRTIO_ID_DMABUF, VIRTIO_DEV_ANY_ID },
	{ 0 },
};
MODULE_DEVICE_TABLE(virtio, vdmabuf_id_table);

/*
 * VIRTIO_DMABUF_F_MAP also lets other VMs map this guest's buffers in place
 * (spec 13.5): the driver owns every page its segments touch, whole.
 */
static const unsigned int vdmabuf_features[] = {
	VIRTIO_DMABUF_F_IMPORT,
	VIRTIO_DMABUF_F_MAP,
};

static struct virtio_driver vdmabuf_driver = {
	.driver.name = KBUILD_MODNAME,
	.id_table = vdmabuf_id_table,
	.feature_table = vdmabuf_features,
	.feature_table_size = ARRAY_SIZE(vdmabuf_features),
	.probe = vdmabuf_probe,
	.remove = vdmabuf_remove,
};

static int __init vdmabuf_init(void)
{
	int ret;

	/* the test knobs; the driver works without them */
	vdmabuf_debugfs = debugfs_create_dir(VDMABUF_DEBUGFS_DIR, NULL);
	vdmabuf_pages_debugfs_init(vdmabuf_debugfs);

	ret = vdmabuf_register_virtio_driver(&vdmabuf_driver);
	if (ret)
		goto err_debugfs;
	return 0;

err_debugfs:
	debugfs_remove_recursive(vdmabuf_debugfs);
	return ret;
}

static void __exit vdmabuf_exit(void)
{
	unregister_virtio_driver(&vdmabuf_driver);
	debugfs_remove_recursive(vdmabuf_debugfs);
}

module_init(vdmabuf_init);
module_exit(vdmabuf_exit);

MODULE_DESCRIPTION("Virtio dma-buf sharing device driver");
MODULE_LICENSE("GPL");
VDMABUF_IMPORT_NS_DMA_BUF();
