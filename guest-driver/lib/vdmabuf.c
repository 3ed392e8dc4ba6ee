// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
/*
 * libvdmabuf: the ioctls of /dev/virtio-dmabuf<N> (see vdmabuf.h).
 *
 * Every function returns a negative errno on failure and sets errno to the
 * positive value; nothing here keeps state between calls.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/virtio_dmabuf.h>	/* guest-driver/include/uapi */

#include "vdmabuf.h"

#define SAME(a, b) _Static_assert((a) == (b), #a " == " #b)

SAME(VDMABUF_BUF_READ_ONLY, VIRTIO_DMABUF_BUF_READ_ONLY);
SAME(VDMABUF_BUF_HOST_ONLY, VIRTIO_DMABUF_BUF_HOST_ONLY);
SAME(VDMABUF_BUF_HOST_BACKED, VIRTIO_DMABUF_BUF_HOST_BACKED);
SAME(VDMABUF_BUF_OWN, VIRTIO_DMABUF_BUF_OWN);
SAME(VDMABUF_BUF_MAPPED, VIRTIO_DMABUF_BUF_MAPPED);
SAME(VDMABUF_ALLOC_CONTIGUOUS, VIRTIO_DMABUF_ALLOC_CONTIGUOUS);
SAME(VDMABUF_FD_NO_CLOEXEC, VIRTIO_DMABUF_FD_NO_CLOEXEC);
SAME(VDMABUF_IMPORT_NO_MAP, VIRTIO_DMABUF_IMPORT_NO_MAP);
SAME(VDMABUF_SYNC_READ, VIRTIO_DMABUF_IOC_SYNC_READ);
SAME(VDMABUF_SYNC_WRITE, VIRTIO_DMABUF_IOC_SYNC_WRITE);
SAME(VDMABUF_SYNC_START, VIRTIO_DMABUF_IOC_SYNC_START);
SAME(VDMABUF_SYNC_END, VIRTIO_DMABUF_IOC_SYNC_END);
SAME(VDMABUF_KIND_OWN, VIRTIO_DMABUF_KIND_OWN);
SAME(VDMABUF_KIND_IMPORTED, VIRTIO_DMABUF_KIND_IMPORTED);
SAME(VDMABUF_STATE_REVOKED, VIRTIO_DMABUF_STATE_REVOKED);
SAME(VDMABUF_STATE_DEVICE_GONE, VIRTIO_DMABUF_STATE_DEVICE_GONE);
SAME(VDMABUF_SHM_ACTIVE, VIRTIO_DMABUF_SHM_ACTIVE);
SAME(VDMABUF_SHM_NO_FEATURE, VIRTIO_DMABUF_SHM_NO_FEATURE);
SAME(VDMABUF_SHM_NO_REGION, VIRTIO_DMABUF_SHM_NO_REGION);
SAME(VDMABUF_SHM_UNUSABLE, VIRTIO_DMABUF_SHM_UNUSABLE);
SAME(VDMABUF_UUID_SIZE, VIRTIO_DMABUF_UUID_SIZE);

/* the ABI of vdmabuf.h: sizes and offsets that never change within .so.1 */
SAME(sizeof(struct vdmabuf_buffer), 48);
SAME(offsetof(struct vdmabuf_buffer, size), 16);
SAME(offsetof(struct vdmabuf_buffer, fd), 24);
SAME(offsetof(struct vdmabuf_buffer, reserved), 36);
SAME(sizeof(struct vdmabuf_info), 64);
SAME(offsetof(struct vdmabuf_info, reserved), 44);
SAME(sizeof(struct vdmabuf_device_info), 64);
SAME(offsetof(struct vdmabuf_device_info, reserved), 40);
SAME(sizeof(struct vdmabuf_shm_info), 64);
SAME(offsetof(struct vdmabuf_shm_info, reserved), 44);

#define VDMABUF_SYNC_ACCESS (VDMABUF_SYNC_READ | VDMABUF_SYNC_WRITE)

static int fail(int err)
{
	errno = err;
	return -err;
}

/* the result of a failed system call: errno as it left it */
static int fail_errno(void)
{
	return fail(errno ? errno : EIO);
}

static int open_path(const char *path)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);

	return fd < 0 ? fail_errno() : fd;
}

/* N of "virtio-dmabuf<N>" (digits only, no leading zero), or -1 */
static long dev_index(const char *name)
{
	const char *p = name + strlen(VIRTIO_DMABUF_DEV_PREFIX);
	long n = 0;

	if (strncmp(name, VIRTIO_DMABUF_DEV_PREFIX,
		    strlen(VIRTIO_DMABUF_DEV_PREFIX)) || !*p ||
	    (p[0] == '0' && p[1]))
		return -1;
	for (; *p; p++) {
		if (*p < '0' || *p > '9' || n > (UINT_MAX - 9) / 10)
			return -1;
		n = n * 10 + (*p - '0');
	}
	return n;
}

int vdmabuf_open(const char *path)
{
	struct dirent *de;
	long best = -1;
	DIR *d;

	if (path)
		return open_path(path);
	d = opendir("/dev");
	if (!d)
		return fail_errno();
	errno = 0;
	while ((de = readdir(d))) {
		long n = dev_index(de->d_name);

		if (n >= 0 && (best < 0 || n < best))
			best = n;
	}
	if (errno && best < 0) {
		int err = errno;

		closedir(d);
		return fail(err);
	}
	closedir(d);
	if (best < 0)
		return fail(ENOENT);
	return vdmabuf_open_index((unsigned int)best);
}

int vdmabuf_open_index(unsigned int index)
{
	char path[64];

	snprintf(path, sizeof(path), "/dev/" VIRTIO_DMABUF_DEV_PREFIX "%u",
		 index);
	return open_path(path);
}

int vdmabuf_close(int dev)
{
	if (close(dev) && errno != EINTR)	/* EINTR: Linux closed it */
		return fail_errno();
	return 0;
}

int vdmabuf_alloc(int dev, uint64_t size, uint32_t buf_flags,
		  uint32_t alloc_flags, uint32_t fd_flags,
		  struct vdmabuf_buffer *out)
{
	struct virtio_dmabuf_ioc_alloc a;

	memset(&a, 0, sizeof(a));
	a.size = size;
	a.flags = buf_flags;
	a.fd_flags = fd_flags;
	a.alloc_flags = alloc_flags;
	if (ioctl(dev, VIRTIO_DMABUF_IOC_ALLOC, &a))
		return fail_errno();
	if (out) {
		memset(out, 0, sizeof(*out));
		memcpy(out->uuid, a.uuid, VDMABUF_UUID_SIZE);
		out->size = a.size;
		out->fd = a.fd;
		out->flags = VDMABUF_BUF_OWN;
		out->share_flags = buf_flags;
	}
	return a.fd;
}

int vdmabuf_import(int dev, const uint8_t uuid[VDMABUF_UUID_SIZE],
		   uint32_t import_flags, uint32_t fd_flags,
		   struct vdmabuf_buffer *out)
{
	struct virtio_dmabuf_ioc_import im;

	if (!uuid)
		return fail(EINVAL);
	memset(&im, 0, sizeof(im));
	memcpy(im.uuid, uuid, VDMABUF_UUID_SIZE);
	im.fd_flags = fd_flags;
	im.import_flags = import_flags;
	if (ioctl(dev, VIRTIO_DMABUF_IOC_IMPORT, &im))
		return fail_errno();
	if (out) {
		memset(out, 0, sizeof(*out));
		memcpy(out->uuid, im.uuid, VDMABUF_UUID_SIZE);
		out->size = im.size;
		out->fd = im.fd;
		out->flags = im.flags;
	}
	return im.fd;
}

int vdmabuf_sync(int dev, int buf_fd, uint32_t flags, uint64_t offset,
		 uint64_t len, uint32_t timeout_ms)
{
	struct virtio_dmabuf_ioc_sync s;

	memset(&s, 0, sizeof(s));
	s.fd = buf_fd;
	s.flags = flags;
	s.offset = offset;
	s.len = len;
	s.timeout_ms = timeout_ms;
	if (ioctl(dev, VIRTIO_DMABUF_IOC_SYNC, &s))
		return fail_errno();
	return 0;
}

int vdmabuf_sync_start(int dev, int buf_fd, uint32_t access, uint64_t offset,
		       uint64_t len, uint32_t timeout_ms)
{
	if (!access || (access & ~VDMABUF_SYNC_ACCESS))
		return fail(EINVAL);
	return vdmabuf_sync(dev, buf_fd, access | VDMABUF_SYNC_START, offset,
			    len, timeout_ms);
}

int vdmabuf_sync_end(int dev, int buf_fd, uint32_t access, uint64_t offset,
		     uint64_t len)
{
	if (!access || (access & ~VDMABUF_SYNC_ACCESS))
		return fail(EINVAL);
	return vdmabuf_sync(dev, buf_fd, access | VDMABUF_SYNC_END, offset,
			    len, 0);
}

int vdmabuf_info(int dev, int buf_fd, struct vdmabuf_info *out)
{
	struct virtio_dmabuf_ioc_info info;

	if (!out)
		return fail(EINVAL);
	memset(&info, 0, sizeof(info));
	info.fd = buf_fd;
	if (ioctl(dev, VIRTIO_DMABUF_IOC_INFO, &info))
		return fail_errno();
	memset(out, 0, sizeof(*out));
	memcpy(out->uuid, info.uuid, VDMABUF_UUID_SIZE);
	out->size = info.size;
	out->kind = info.kind;
	out->flags = info.flags;
	out->share_flags = info.share_flags;
	out->state = info.state;
	out->device = info.device;
	return 0;
}

int vdmabuf_device_info(int dev, struct vdmabuf_device_info *out)
{
	struct virtio_dmabuf_ioc_device_info di;

	if (!out)
		return fail(EINVAL);
	memset(&di, 0, sizeof(di));
	if (ioctl(dev, VIRTIO_DMABUF_IOC_DEVICE_INFO, &di))
		return fail_errno();
	memset(out, 0, sizeof(*out));
	out->max_bytes = di.max_bytes;
	out->features = di.features;
	out->max_segments = di.max_segments;
	out->max_buffers = di.max_buffers;
	out->sync_timeout_ms = di.sync_timeout_ms;
	out->index = di.index;
	out->queue_size = di.queue_size;
	out->max_starts = di.max_starts;
	return 0;
}

int vdmabuf_shm_info(int dev, struct vdmabuf_shm_info *out)
{
	struct virtio_dmabuf_ioc_shm_info si;

	if (!out)
		return fail(EINVAL);
	memset(&si, 0, sizeof(si));
	if (ioctl(dev, VIRTIO_DMABUF_IOC_SHM_INFO, &si))
		return fail_errno();
	memset(out, 0, sizeof(*out));
	out->addr = si.addr;
	out->size = si.size;
	out->bytes_mapped = si.bytes_mapped;
	out->nr_mapped = si.nr_mapped;
	out->state = si.state;
	out->error = si.error;
	out->nr_fallbacks = si.nr_fallbacks;
	out->last_fallback = si.last_fallback;
	return 0;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int vdmabuf_uuid_parse(const char *s, uint8_t uuid[VDMABUF_UUID_SIZE])
{
	uint8_t u[VDMABUF_UUID_SIZE];
	int n = 0;

	if (!s || !uuid)
		return fail(EINVAL);
	for (; *s; s++) {
		int v;

		if (*s == '-')
			continue;
		v = hex_digit(*s);
		if (v < 0 || n == 2 * VDMABUF_UUID_SIZE)
			return fail(EINVAL);
		if (n % 2 == 0)
			u[n / 2] = (uint8_t)(v << 4);
		else
			u[n / 2] |= (uint8_t)v;
		n++;
	}
	if (n != 2 * VDMABUF_UUID_SIZE)
		return fail(EINVAL);
	memcpy(uuid, u, sizeof(u));
	return 0;
}

char *vdmabuf_uuid_format(const uint8_t uuid[VDMABUF_UUID_SIZE],
			  char buf[VDMABUF_UUID_STR_LEN])
{
	char *p = buf;
	int i;

	for (i = 0; i < VDMABUF_UUID_SIZE; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = "0123456789abcdef"[uuid[i] >> 4];
		*p++ = "0123456789abcdef"[uuid[i] & 15];
	}
	*p = '\0';
	return buf;
}

#define STR_(x) #x
#define STR(x) STR_(x)

const char *vdmabuf_version(void)
{
	return STR(VDMABUF_VERSION_MAJOR) "." STR(VDMABUF_VERSION_MINOR);
}
