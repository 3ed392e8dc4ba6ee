/* SPDX-License-Identifier: ((GPL-2.0 WITH Linux-syscall-note) OR BSD-3-Clause) */
/*
 * Virtio dma-buf sharing device (virtio device ID 37).
 *
 * Part 1 is the wire format of docs/device-spec.md: configuration space,
 * requests, responses, events and status codes. All multi-byte fields are
 * little-endian.
 *
 * Part 2 is the userspace ABI of the guest driver's character devices
 * /dev/virtio-dmabuf<N> (one per device instance, N = 0, 1, ...).
 */
#ifndef _UAPI_LINUX_VIRTIO_DMABUF_H
#define _UAPI_LINUX_VIRTIO_DMABUF_H

#include <linux/types.h>
#include <linux/ioctl.h>

/* ------------------------------------------------------------------ */
/* Part 1: the device (docs/device-spec.md)                           */
/* ------------------------------------------------------------------ */

#ifndef VIRTIO_ID_DMABUF
#define VIRTIO_ID_DMABUF		37
#endif

/* Virtqueues */
#define VIRTIO_DMABUF_VQ_REQUEST	0
#define VIRTIO_DMABUF_VQ_EVENT		1
#define VIRTIO_DMABUF_NUM_VQS		2

/* Feature bits */
#define VIRTIO_DMABUF_F_IMPORT		0	/* LOOKUP and ATTACH available */
#define VIRTIO_DMABUF_F_MAP		1	/* MAP available (section 13) */

/* Shared memory region ids */
#define VIRTIO_DMABUF_SHM_MAP		0	/* where MAP places imports */

/* Configuration space (24 bytes) */
struct virtio_dmabuf_config {
	__le32 max_segments;	/* most segments in one CREATE or ATTACH */
	__le32 max_buffers;	/* most buffers this driver may hold */
	__le64 max_bytes;	/* most bytes this driver may hold */
	__le32 sync_timeout_ms;	/* default and upper bound of a START wait */
	__le32 reserved;
};

/* Request types (virtio_dmabuf_req_hdr.type) */
#define VIRTIO_DMABUF_REQ_CREATE	0x0100
#define VIRTIO_DMABUF_REQ_RELEASE	0x0101
#define VIRTIO_DMABUF_REQ_LOOKUP	0x0102
#define VIRTIO_DMABUF_REQ_ATTACH	0x0103
#define VIRTIO_DMABUF_REQ_SYNC		0x0104
#define VIRTIO_DMABUF_REQ_MAP		0x0105

/* Buffer flags: CREATE (READ_ONLY, HOST_ONLY) and LOOKUP (all four) */
#define VIRTIO_DMABUF_BUF_READ_ONLY	(1U << 0)
#define VIRTIO_DMABUF_BUF_HOST_ONLY	(1U << 1)
#define VIRTIO_DMABUF_BUF_HOST_BACKED	(1U << 8)
#define VIRTIO_DMABUF_BUF_OWN		(1U << 9)
/* not on the wire: IMPORT and INFO results of the driver (part 2) */
#define VIRTIO_DMABUF_BUF_MAPPED	(1U << 10)
#define VIRTIO_DMABUF_BUF_CREATE_MASK	(VIRTIO_DMABUF_BUF_READ_ONLY | \
					 VIRTIO_DMABUF_BUF_HOST_ONLY)

/* SYNC flags (virtio_dmabuf_sync.flags) */
#define VIRTIO_DMABUF_SYNC_READ		(1U << 0)
#define VIRTIO_DMABUF_SYNC_WRITE	(1U << 1)
#define VIRTIO_DMABUF_SYNC_END		(1U << 2)
#define VIRTIO_DMABUF_SYNC_MASK		(VIRTIO_DMABUF_SYNC_READ | \
					 VIRTIO_DMABUF_SYNC_WRITE | \
					 VIRTIO_DMABUF_SYNC_END)

/* Event types (virtio_dmabuf_event.type) */
#define VIRTIO_DMABUF_EVENT_REVOKED	1

/* Status codes (virtio_dmabuf_resp_hdr.status) */
#define VIRTIO_DMABUF_S_OK			0
#define VIRTIO_DMABUF_S_INVALID_REQUEST		1
#define VIRTIO_DMABUF_S_INVALID_ADDRESS		2
#define VIRTIO_DMABUF_S_INVALID_SIZE		3
#define VIRTIO_DMABUF_S_TOO_MANY_SEGMENTS	4
#define VIRTIO_DMABUF_S_NOT_FOUND		5
#define VIRTIO_DMABUF_S_ALREADY_EXISTS		6
#define VIRTIO_DMABUF_S_PERMISSION_DENIED	7
#define VIRTIO_DMABUF_S_QUOTA_EXCEEDED		8
#define VIRTIO_DMABUF_S_TIMEOUT			9
#define VIRTIO_DMABUF_S_NOT_HELD		10
#define VIRTIO_DMABUF_S_REVOKED			11
#define VIRTIO_DMABUF_S_CANCELLED		12
#define VIRTIO_DMABUF_S_RESPONSE_TOO_SMALL	13
#define VIRTIO_DMABUF_S_IO_ERROR		14
#define VIRTIO_DMABUF_S_UNSUPPORTED		15
#define VIRTIO_DMABUF_S_NO_SPACE		16

#define VIRTIO_DMABUF_UUID_SIZE		16

/* Header at offset 0 of every request (8 bytes) */
struct virtio_dmabuf_req_hdr {
	__le32 type;
	__le32 reserved;
};

/* Header at offset 0 of every response (8 bytes) */
struct virtio_dmabuf_resp_hdr {
	__le32 status;
	__le32 reserved;
};

/* One segment of guest-physical memory (16 bytes) */
struct virtio_dmabuf_seg {
	__le64 addr;
	__le64 len;
};

/* CREATE body (16 bytes), followed by nr_segs segments */
struct virtio_dmabuf_create {
	__le64 size;
	__le32 flags;
	__le32 nr_segs;
};

/* CREATE response (24 bytes) */
struct virtio_dmabuf_create_resp {
	struct virtio_dmabuf_resp_hdr hdr;
	__u8 uuid[VIRTIO_DMABUF_UUID_SIZE];
};

/* RELEASE and LOOKUP body (16 bytes) */
struct virtio_dmabuf_uuid {
	__u8 uuid[VIRTIO_DMABUF_UUID_SIZE];
};

/* LOOKUP response (24 bytes) */
struct virtio_dmabuf_lookup_resp {
	struct virtio_dmabuf_resp_hdr hdr;
	__le64 size;
	__le32 flags;
	__le32 reserved;
};

/* ATTACH body (24 bytes), followed by nr_segs segments */
struct virtio_dmabuf_attach {
	__u8 uuid[VIRTIO_DMABUF_UUID_SIZE];
	__le32 nr_segs;
	__le32 reserved;
};

/* SYNC body (40 bytes) */
struct virtio_dmabuf_sync {
	__u8 uuid[VIRTIO_DMABUF_UUID_SIZE];
	__le64 offset;
	__le64 len;
	__le32 flags;
	__le32 timeout_ms;
};

/* MAP body (24 bytes) */
struct virtio_dmabuf_map {
	__u8 uuid[VIRTIO_DMABUF_UUID_SIZE];
	__le32 flags;		/* zero: none defined */
	__le32 reserved;
};

/* MAP response (32 bytes) */
struct virtio_dmabuf_map_resp {
	struct virtio_dmabuf_resp_hdr hdr;
	__le64 offset;		/* where the buffer starts in region 0 */
	__le64 len;		/* bytes mapped: the size rounded up to 4096 */
	__le32 flags;		/* as LOOKUP: BUF_READ_ONLY, BUF_HOST_BACKED */
	__le32 reserved;
};

/* Event queue element (24 bytes) */
struct virtio_dmabuf_event {
	__le32 type;
	__le32 reserved;
	__u8 uuid[VIRTIO_DMABUF_UUID_SIZE];
};

/* ------------------------------------------------------------------ */
/* Part 2: the character device /dev/virtio-dmabuf<N>                 */
/* ------------------------------------------------------------------ */

#define VIRTIO_DMABUF_DEV_PREFIX	"virtio-dmabuf"

/*
 * fd_flags of ALLOC and IMPORT. The new dma-buf fd is close-on-exec unless
 * VIRTIO_DMABUF_FD_NO_CLOEXEC is given.
 */
#define VIRTIO_DMABUF_FD_NO_CLOEXEC	(1U << 0)
#define VIRTIO_DMABUF_FD_MASK		VIRTIO_DMABUF_FD_NO_CLOEXEC

/*
 * alloc_flags of ALLOC: how the guest pages are allocated (the device never
 * sees them). VIRTIO_DMABUF_ALLOC_CONTIGUOUS: one physically contiguous run
 * of pages, so the buffer is one segment and importers that need contiguous
 * DMA memory (vb2-dma-contig, display controllers) accept it; ENOMEM if the
 * guest has no such run free.
 */
#define VIRTIO_DMABUF_ALLOC_CONTIGUOUS	(1U << 0)
#define VIRTIO_DMABUF_ALLOC_MASK	VIRTIO_DMABUF_ALLOC_CONTIGUOUS

/**
 * struct virtio_dmabuf_ioc_alloc - VIRTIO_DMABUF_IOC_ALLOC argument
 * @size:	in: bytes, not zero, at most the device's max_bytes. The
 *		device registers exactly @size bytes; the dma-buf itself
 *		(mmap, lseek) is rounded up to a whole page.
 * @flags:	in: VIRTIO_DMABUF_BUF_READ_ONLY, VIRTIO_DMABUF_BUF_HOST_ONLY
 * @fd_flags:	in: VIRTIO_DMABUF_FD_*
 * @fd:		out: the new dma-buf fd (O_RDWR)
 * @alloc_flags: in: VIRTIO_DMABUF_ALLOC_* (was @reserved; zero: pages from
 *		wherever the allocator finds them, as many segments as needed)
 * @uuid:	out: the buffer's UUID assigned by the device
 *
 * Allocates zeroed guest pages, registers them with CREATE and exports them
 * as a dma-buf.
 */
struct virtio_dmabuf_ioc_alloc {
	__u64 size;
	__u32 flags;
	__u32 fd_flags;
	__s32 fd;
	__u32 alloc_flags;
	__u8 uuid[VIRTIO_DMABUF_UUID_SIZE];
};

/*
 * import_flags of IMPORT. VIRTIO_DMABUF_IMPORT_NO_MAP: do not map the buffer
 * in place even if the device could (always LOOKUP + ATTACH, a copy).
 */
#define VIRTIO_DMABUF_IMPORT_NO_MAP	(1U << 0)
#define VIRTIO_DMABUF_IMPORT_MASK	VIRTIO_DMABUF_IMPORT_NO_MAP

/**
 * struct virtio_dmabuf_ioc_import - VIRTIO_DMABUF_IOC_IMPORT argument
 * @uuid:	in: the buffer to import
 * @fd_flags:	in: VIRTIO_DMABUF_FD_*
 * @fd:		out: the new dma-buf fd (O_RDONLY if @flags has READ_ONLY,
 *		O_RDWR otherwise)
 * @size:	out: the buffer's size in bytes
 * @flags:	out: VIRTIO_DMABUF_BUF_READ_ONLY, _HOST_BACKED, _OWN, _MAPPED
 * @import_flags: in: VIRTIO_DMABUF_IMPORT_* (was @reserved, zero: the
 *		default)
 *
 * A UUID this guest already holds (an earlier import that is still open, or
 * a buffer this guest allocated) is not imported again: the call returns a
 * new fd of the same dma-buf (@import_flags do not matter then; @flags say
 * what it is). Otherwise LOOKUP, then, if the device has a shared memory
 * region and @import_flags allow it, MAP: the buffer is mapped in place
 * (@flags has VIRTIO_DMABUF_BUF_MAPPED). If the device cannot map it
 * (UNSUPPORTED, NO_SPACE, INVALID_REQUEST) or may not, guest pages are
 * allocated as this guest's copy and ATTACHed.
 */
struct virtio_dmabuf_ioc_import {
	__u8 uuid[VIRTIO_DMABUF_UUID_SIZE];
	__u32 fd_flags;
	__s32 fd;
	__u64 size;
	__u32 flags;
	__u32 import_flags;
};

/* flags of VIRTIO_DMABUF_IOC_SYNC: READ and/or WRITE, and START or END */
#define VIRTIO_DMABUF_IOC_SYNC_READ	(1U << 0)
#define VIRTIO_DMABUF_IOC_SYNC_WRITE	(1U << 1)
#define VIRTIO_DMABUF_IOC_SYNC_START	(1U << 2)
#define VIRTIO_DMABUF_IOC_SYNC_END	(1U << 3)
#define VIRTIO_DMABUF_IOC_SYNC_MASK	(VIRTIO_DMABUF_IOC_SYNC_READ | \
					 VIRTIO_DMABUF_IOC_SYNC_WRITE | \
					 VIRTIO_DMABUF_IOC_SYNC_START | \
					 VIRTIO_DMABUF_IOC_SYNC_END)

/**
 * struct virtio_dmabuf_ioc_sync - VIRTIO_DMABUF_IOC_SYNC argument
 * @fd:		in: a dma-buf fd exported by this driver (any instance)
 * @flags:	in: VIRTIO_DMABUF_IOC_SYNC_* (at least one of READ and WRITE,
 *		exactly one of START and END)
 * @offset:	in: first byte of the range
 * @len:	in: bytes, not zero; offset + len at most the buffer's size
 * @timeout_ms:	in: START: wait bound, 0 = the device's sync_timeout_ms
 *		(larger values are reduced to it); END: zero
 * @reserved:	in: zero
 *
 * A ranged DMA_BUF_IOCTL_SYNC: begin (START) or end (END) CPU access to
 * [offset, offset + len). An END must repeat the START's range and
 * direction exactly.
 */
struct virtio_dmabuf_ioc_sync {
	__s32 fd;
	__u32 flags;
	__u64 offset;
	__u64 len;
	__u32 timeout_ms;
	__u32 reserved;
};

#define VIRTIO_DMABUF_KIND_OWN		1	/* allocated in this guest */
#define VIRTIO_DMABUF_KIND_IMPORTED	2	/* import: a copy, or mapped (flags) */

#define VIRTIO_DMABUF_STATE_REVOKED	(1U << 0)	/* REVOKED event seen */
#define VIRTIO_DMABUF_STATE_DEVICE_GONE	(1U << 1)	/* device removed/reset */

/**
 * struct virtio_dmabuf_ioc_info - VIRTIO_DMABUF_IOC_INFO argument
 * @fd:		in: a dma-buf fd exported by this driver (any instance)
 * @kind:	out: VIRTIO_DMABUF_KIND_*
 * @size:	out: size in bytes as registered with the device
 * @uuid:	out: the buffer's UUID
 * @flags:	out: LOOKUP-style flags: _READ_ONLY (this guest may only
 *		read), _HOST_BACKED, _OWN; and _MAPPED (a mapped import)
 * @share_flags: out: own buffers: the ALLOC flags; imports: 0
 * @state:	out: VIRTIO_DMABUF_STATE_*
 * @device:	out: N of the /dev/virtio-dmabuf<N> the buffer belongs to
 */
struct virtio_dmabuf_ioc_info {
	__s32 fd;
	__u32 kind;
	__u64 size;
	__u8 uuid[VIRTIO_DMABUF_UUID_SIZE];
	__u32 flags;
	__u32 share_flags;
	__u32 state;
	__u32 device;
};

/**
 * struct virtio_dmabuf_ioc_device_info - VIRTIO_DMABUF_IOC_DEVICE_INFO
 * @max_segments:	configuration space field
 * @max_buffers:	configuration space field
 * @max_bytes:		configuration space field
 * @sync_timeout_ms:	configuration space field
 * @index:		N of /dev/virtio-dmabuf<N>
 * @features:		device-specific feature bits negotiated (bit 0: IMPORT,
 *			bit 1: MAP)
 * @queue_size:		descriptors of the request queue
 * @max_starts:		STARTs that may wait in the device at once
 */
struct virtio_dmabuf_ioc_device_info {
	__u32 max_segments;
	__u32 max_buffers;
	__u64 max_bytes;
	__u32 sync_timeout_ms;
	__u32 index;
	__u64 features;
	__u32 queue_size;
	__u32 max_starts;
};

/* VIRTIO_DMABUF_IOC_SHM_INFO state: whether IMPORT maps, and if not why */
#define VIRTIO_DMABUF_SHM_ACTIVE	0	/* region mapped: IMPORT uses MAP */
#define VIRTIO_DMABUF_SHM_NO_FEATURE	1	/* VIRTIO_DMABUF_F_MAP not offered */
#define VIRTIO_DMABUF_SHM_NO_REGION	2	/* no shared memory region 0 */
#define VIRTIO_DMABUF_SHM_UNUSABLE	3	/* region there, not mappable: @error */

/**
 * struct virtio_dmabuf_ioc_shm_info - VIRTIO_DMABUF_IOC_SHM_INFO
 * @addr:	guest-physical address of shared memory region 0 (0: none)
 * @size:	its length in bytes (0: none)
 * @bytes_mapped: bytes of the region that mapped imports of this guest hold
 *		now (each rounded up to 4096)
 * @nr_mapped:	mapped imports this guest holds now
 * @state:	VIRTIO_DMABUF_SHM_*
 * @error:	_UNUSABLE: the errno that setting the region up failed with
 * @nr_fallbacks: IMPORTs that asked for MAP and got a copy instead (the
 *		device answered UNSUPPORTED, NO_SPACE or INVALID_REQUEST),
 *		since probe
 * @last_fallback: the errno of the latest such MAP (EOPNOTSUPP, ENOSPC,
 *		EINVAL)
 * @reserved:	zero
 */
struct virtio_dmabuf_ioc_shm_info {
	__u64 addr;
	__u64 size;
	__u64 bytes_mapped;
	__u32 nr_mapped;
	__u32 state;
	__u32 error;
	__u32 nr_fallbacks;
	__u32 last_fallback;
	__u32 reserved;
};

#define VIRTIO_DMABUF_IOC_MAGIC		0xDB

#define VIRTIO_DMABUF_IOC_ALLOC \
	_IOWR(VIRTIO_DMABUF_IOC_MAGIC, 0x00, struct virtio_dmabuf_ioc_alloc)
#define VIRTIO_DMABUF_IOC_IMPORT \
	_IOWR(VIRTIO_DMABUF_IOC_MAGIC, 0x01, struct virtio_dmabuf_ioc_import)
#define VIRTIO_DMABUF_IOC_SYNC \
	_IOW(VIRTIO_DMABUF_IOC_MAGIC, 0x02, struct virtio_dmabuf_ioc_sync)
#define VIRTIO_DMABUF_IOC_INFO \
	_IOWR(VIRTIO_DMABUF_IOC_MAGIC, 0x03, struct virtio_dmabuf_ioc_info)
#define VIRTIO_DMABUF_IOC_DEVICE_INFO \
	_IOR(VIRTIO_DMABUF_IOC_MAGIC, 0x04, struct virtio_dmabuf_ioc_device_info)
#define VIRTIO_DMABUF_IOC_SHM_INFO \
	_IOR(VIRTIO_DMABUF_IOC_MAGIC, 0x05, struct virtio_dmabuf_ioc_shm_info)

#endif /* _UAPI_LINUX_VIRTIO_DMABUF_H */
