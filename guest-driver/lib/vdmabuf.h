/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * libvdmabuf: the guest side of the virtio dma-buf device for programs.
 *
 * Buffers are Linux dma-bufs exported by the guest driver (virtio_dmabuf.ko)
 * through /dev/virtio-dmabuf<N>. This library wraps its ioctls; the dma-buf
 * fds it returns are ordinary dma-buf fds (mmap, poll, DMA_BUF_IOCTL_SYNC,
 * pass them to other drivers or processes).
 *
 * Conventions
 *   - The device handle is a file descriptor of /dev/virtio-dmabuf<N>
 *     (vdmabuf_open): close it with vdmabuf_close() or close(2). Dma-buf fds
 *     stay valid after it is closed.
 *   - Errors: every function that can fail returns a negative errno value
 *     (-ENOENT, -EINVAL, ...) and also leaves the positive value in errno.
 *     Success is 0, or a non-negative fd where the function says so.
 *   - No global state, no printing, no exit(): the library is thread-safe;
 *     concurrent calls on one device are as safe as the driver's ioctls are.
 *   - Flags are passed through to the driver, which checks them: unknown bits
 *     fail there with -EINVAL, so newer drivers' flags work with this library.
 *
 * ABI: the structs below are filled by the library (never read from the
 * caller), have fixed sizes without padding holes and end in reserved words
 * that the library sets to zero. A later 1.x may give reserved words a
 * meaning; it never changes a size or an offset. Incompatible changes bump
 * the soname (libvdmabuf.so.1) and VDMABUF_VERSION_MAJOR.
 */
#ifndef VDMABUF_H
#define VDMABUF_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VDMABUF_VERSION_MAJOR	1
#define VDMABUF_VERSION_MINOR	0

#if defined(__GNUC__) && defined(VDMABUF_BUILD)
#define VDMABUF_API __attribute__((visibility("default")))
#else
#define VDMABUF_API
#endif

/* the values of the uapi header <linux/virtio_dmabuf.h> (checked at build) */

/* buffer flags: ALLOC takes READ_ONLY and HOST_ONLY; the others are reported */
#define VDMABUF_BUF_READ_ONLY	(1U << 0)	/* ALLOC: importers may only read;
						   IMPORT/INFO: this guest may only read */
#define VDMABUF_BUF_HOST_ONLY	(1U << 1)	/* ALLOC: only the host may import */
#define VDMABUF_BUF_HOST_BACKED	(1U << 8)	/* the host owns the memory */
#define VDMABUF_BUF_OWN		(1U << 9)	/* allocated by this guest */
#define VDMABUF_BUF_MAPPED	(1U << 10)	/* an import mapped in place */

/* alloc flags: how the guest pages are allocated */
#define VDMABUF_ALLOC_CONTIGUOUS (1U << 0)	/* one physically contiguous run */

/* fd flags of ALLOC and IMPORT: new fds are close-on-exec unless ... */
#define VDMABUF_FD_NO_CLOEXEC	(1U << 0)

/* import flags */
#define VDMABUF_IMPORT_NO_MAP	(1U << 0)	/* always a copy, never mapped */

/* ranged sync: READ and/or WRITE, with START or END (vdmabuf_sync only) */
#define VDMABUF_SYNC_READ	(1U << 0)
#define VDMABUF_SYNC_WRITE	(1U << 1)
#define VDMABUF_SYNC_START	(1U << 2)
#define VDMABUF_SYNC_END	(1U << 3)

/* vdmabuf_info.kind */
#define VDMABUF_KIND_OWN	1
#define VDMABUF_KIND_IMPORTED	2

/* vdmabuf_info.state */
#define VDMABUF_STATE_REVOKED		(1U << 0)	/* the owner revoked it */
#define VDMABUF_STATE_DEVICE_GONE	(1U << 1)	/* device removed/reset */

/* vdmabuf_shm_info.state */
#define VDMABUF_SHM_ACTIVE	0	/* imports are mapped in place */
#define VDMABUF_SHM_NO_FEATURE	1
#define VDMABUF_SHM_NO_REGION	2
#define VDMABUF_SHM_UNUSABLE	3	/* see vdmabuf_shm_info.error */

#define VDMABUF_UUID_SIZE	16
#define VDMABUF_UUID_STR_LEN	37	/* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" + NUL */

/* a buffer got from vdmabuf_alloc() or vdmabuf_import(): 48 bytes */
struct vdmabuf_buffer {
	uint8_t uuid[VDMABUF_UUID_SIZE];
	uint64_t size;		/* bytes registered with the device; the dma-buf
				   itself (mmap, lseek) is a whole number of pages */
	int32_t fd;		/* the dma-buf fd (also the return value) */
	uint32_t flags;		/* VDMABUF_BUF_*: OWN for an allocation; for an
				   import READ_ONLY, HOST_BACKED, OWN, MAPPED */
	uint32_t share_flags;	/* vdmabuf_alloc: its buf_flags; import: 0 */
	uint32_t reserved[3];
};

/* vdmabuf_info(): 64 bytes */
struct vdmabuf_info {
	uint8_t uuid[VDMABUF_UUID_SIZE];
	uint64_t size;		/* bytes registered with the device */
	uint32_t kind;		/* VDMABUF_KIND_* */
	uint32_t flags;		/* VDMABUF_BUF_* as of an import */
	uint32_t share_flags;	/* own buffers: the ALLOC buf_flags; imports: 0 */
	uint32_t state;		/* VDMABUF_STATE_* */
	uint32_t device;	/* N of the /dev/virtio-dmabuf<N> it belongs to */
	uint32_t reserved[5];
};

/* vdmabuf_device_info(): 64 bytes */
struct vdmabuf_device_info {
	uint64_t max_bytes;	/* most bytes this guest may hold */
	uint64_t features;	/* bit 0: import, bit 1: map in place */
	uint32_t max_segments;
	uint32_t max_buffers;	/* most buffers this guest may hold */
	uint32_t sync_timeout_ms; /* default and bound of a START's wait */
	uint32_t index;		/* N of /dev/virtio-dmabuf<N> */
	uint32_t queue_size;
	uint32_t max_starts;	/* STARTs that may wait in the device at once */
	uint32_t reserved[6];
};

/* vdmabuf_shm_info(): 64 bytes */
struct vdmabuf_shm_info {
	uint64_t addr;		/* guest-physical address of the region (0: none) */
	uint64_t size;		/* its length (0: none) */
	uint64_t bytes_mapped;	/* held by mapped imports now */
	uint32_t nr_mapped;	/* mapped imports now */
	uint32_t state;		/* VDMABUF_SHM_* */
	uint32_t error;		/* _UNUSABLE: the (positive) errno of its setup */
	uint32_t nr_fallbacks;	/* imports that asked for a mapping, got a copy */
	uint32_t last_fallback;	/* the (positive) errno of the latest one */
	uint32_t reserved[5];
};

/*
 * Open a device: @path, or with NULL the first one (the lowest N of the
 * /dev/virtio-dmabuf<N> present; -ENOENT if there is none). Returns the
 * device fd (O_RDWR | O_CLOEXEC).
 */
VDMABUF_API int vdmabuf_open(const char *path);
/* open /dev/virtio-dmabuf<index>; returns the device fd */
VDMABUF_API int vdmabuf_open_index(unsigned int index);
/* close a device fd (0 or -errno); dma-buf fds stay valid */
VDMABUF_API int vdmabuf_close(int dev);

/*
 * Allocate @size bytes (zeroed guest memory) and register them with the
 * device, which gives them a UUID other guests and the host import by.
 * @buf_flags: VDMABUF_BUF_READ_ONLY, _HOST_ONLY; @alloc_flags:
 * VDMABUF_ALLOC_*; @fd_flags: VDMABUF_FD_*. Returns the dma-buf fd and, if
 * @out is not NULL, fills it. The buffer lives while an fd of it is open.
 */
VDMABUF_API int vdmabuf_alloc(int dev, uint64_t size, uint32_t buf_flags,
			      uint32_t alloc_flags, uint32_t fd_flags,
			      struct vdmabuf_buffer *out);

/*
 * Import the buffer @uuid (of the host, another VM or this guest: then a new
 * fd of the same dma-buf). @import_flags: VDMABUF_IMPORT_*; @fd_flags:
 * VDMABUF_FD_*. Returns the dma-buf fd (read-only if the buffer is) and, if
 * @out is not NULL, fills it. -ENOENT: no such buffer.
 */
VDMABUF_API int vdmabuf_import(int dev, const uint8_t uuid[VDMABUF_UUID_SIZE],
			       uint32_t import_flags, uint32_t fd_flags,
			       struct vdmabuf_buffer *out);

/*
 * Begin CPU access to [offset, offset + len) of dma-buf @buf_fd (@access:
 * VDMABUF_SYNC_READ and/or _WRITE): waits until no other side writes the
 * range (reads: and brings in its bytes), at most @timeout_ms (0: the
 * device's sync_timeout_ms; -ETIMEDOUT). Returns 0 or -errno; -EINVAL
 * without a call if @access is not READ and/or WRITE.
 */
VDMABUF_API int vdmabuf_sync_start(int dev, int buf_fd, uint32_t access,
				   uint64_t offset, uint64_t len,
				   uint32_t timeout_ms);
/* end it: the same @access and range as the start (writes: publishes them) */
VDMABUF_API int vdmabuf_sync_end(int dev, int buf_fd, uint32_t access,
				 uint64_t offset, uint64_t len);
/*
 * One ranged sync with @flags as they are (VDMABUF_SYNC_*, checked only by
 * the driver): for tests of the driver's own checks.
 */
VDMABUF_API int vdmabuf_sync(int dev, int buf_fd, uint32_t flags,
			     uint64_t offset, uint64_t len,
			     uint32_t timeout_ms);

/* what the driver knows of dma-buf @buf_fd (any device's); 0 or -errno */
VDMABUF_API int vdmabuf_info(int dev, int buf_fd, struct vdmabuf_info *out);
/* the device's limits and features; 0 or -errno */
VDMABUF_API int vdmabuf_device_info(int dev, struct vdmabuf_device_info *out);
/* the device's shared memory region and mapped imports; 0 or -errno */
VDMABUF_API int vdmabuf_shm_info(int dev, struct vdmabuf_shm_info *out);

/*
 * UUIDs as text: 32 hex digits, dashes anywhere ignored on input, lower case
 * 8-4-4-4-12 on output. parse: 0 or -EINVAL (then @uuid is unchanged).
 * format: writes VDMABUF_UUID_STR_LEN bytes to @buf and returns it.
 */
VDMABUF_API int vdmabuf_uuid_parse(const char *s,
				   uint8_t uuid[VDMABUF_UUID_SIZE]);
VDMABUF_API char *vdmabuf_uuid_format(const uint8_t uuid[VDMABUF_UUID_SIZE],
				      char buf[VDMABUF_UUID_STR_LEN]);

/* the library's version, "MAJOR.MINOR" (of the code linked in) */
VDMABUF_API const char *vdmabuf_version(void);

#ifdef __cplusplus
}
#endif

#endif /* VDMABUF_H */
