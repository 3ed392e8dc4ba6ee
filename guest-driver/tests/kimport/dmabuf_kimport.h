/* SPDX-License-Identifier: ((GPL-2.0 WITH Linux-syscall-note) OR BSD-3-Clause) */
/*
 * Test-only in-guest kernel importer of dma-bufs: /dev/dmabuf-kimport.
 *
 * Also the test pattern and checksum shared by the guest tools and the host:
 *   pattern byte at buffer offset i for seed s:
 *     (uint8_t)((i * 131 + s * 7 + (i >> 12)) & 0xff)
 *   checksum: FNV-1a 64-bit over the bytes of a range, in order
 *     (offset basis 0xcbf29ce484222325, prime 0x100000001b3).
 */
#ifndef _DMABUF_KIMPORT_H
#define _DMABUF_KIMPORT_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define DMABUF_KIMPORT_DEV		"dmabuf-kimport"

#define DMABUF_FNV64_BASIS		0xcbf29ce484222325ULL
#define DMABUF_FNV64_PRIME		0x100000001b3ULL

static inline __u8 dmabuf_pattern_byte(__u64 i, __u32 seed)
{
	return (__u8)((i * 131 + (__u64)seed * 7 + (i >> 12)) & 0xff);
}

static inline __u64 dmabuf_fnv64_update(__u64 h, const __u8 *p, __u64 n)
{
	while (n--) {
		h ^= *p++;
		h *= DMABUF_FNV64_PRIME;
	}
	return h;
}

/* op */
#define DMABUF_KIMPORT_OP_CHECKSUM	0	/* read the range */
#define DMABUF_KIMPORT_OP_VERIFY	1	/* read, compare with the pattern */
#define DMABUF_KIMPORT_OP_WRITE		2	/* write the pattern */

/* flags; DMABUF_KIMPORT_F_ATTACH: also read through an attachment's sg_table */
#define DMABUF_KIMPORT_F_ATTACH		(1U << 0)

/* step: where a run failed */
#define DMABUF_KIMPORT_STEP_NONE	0
#define DMABUF_KIMPORT_STEP_GET		1	/* dma_buf_get */
#define DMABUF_KIMPORT_STEP_BEGIN	2	/* dma_buf_begin_cpu_access */
#define DMABUF_KIMPORT_STEP_VMAP	3	/* dma_buf_vmap */
#define DMABUF_KIMPORT_STEP_VERIFY	4	/* pattern mismatch */
#define DMABUF_KIMPORT_STEP_END		5	/* dma_buf_end_cpu_access */
#define DMABUF_KIMPORT_STEP_ATTACH	6	/* attach / map / sg_table */
#define DMABUF_KIMPORT_STEP_ARGS	7	/* range outside the buffer */

/**
 * struct dmabuf_kimport_run - DMABUF_KIMPORT_IOC_RUN argument
 * @fd:		in: a dma-buf fd
 * @op:		in: DMABUF_KIMPORT_OP_*
 * @offset:	in: first byte of the range
 * @len:	in: bytes; 0 = up to the end of the dma-buf
 * @seed:	in: pattern seed (VERIFY, WRITE)
 * @flags:	in: DMABUF_KIMPORT_F_*
 * @size:	out: the dma-buf's size
 * @checksum:	out: FNV-1a 64 of the range as read through dma_buf_vmap
 *		(after the write for WRITE)
 * @attach_checksum: out: F_ATTACH: the same through dma_buf_map_attachment
 * @mismatch:	out: VERIFY: offset of the first wrong byte, ~0 if none
 * @result:	out: 0 or the negative errno of the failed step
 * @step:	out: DMABUF_KIMPORT_STEP_*
 *
 * Runs dma_buf_get, dma_buf_begin_cpu_access(FROM_DEVICE for CHECKSUM and
 * VERIFY, TO_DEVICE for WRITE), dma_buf_vmap, the op, dma_buf_vunmap,
 * dma_buf_end_cpu_access and dma_buf_put. The ioctl returns @result and
 * copies the structure back in every case.
 */
struct dmabuf_kimport_run {
	__s32 fd;
	__u32 op;
	__u64 offset;
	__u64 len;
	__u32 seed;
	__u32 flags;
	__u64 size;
	__u64 checksum;
	__u64 attach_checksum;
	__u64 mismatch;
	__s32 result;
	__u32 step;
};

#define DMABUF_KIMPORT_IOC_RUN	_IOWR(0xDC, 0x00, struct dmabuf_kimport_run)

#endif /* _DMABUF_KIMPORT_H */
