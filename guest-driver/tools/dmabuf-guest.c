// SPDX-License-Identifier: GPL-2.0
/*
 * dmabuf-guest: guest-side test tool for the virtio dma-buf driver.
 *
 * Every subcommand prints "key=value" lines on stdout and exits non-zero on
 * failure (after printing "status=<ERRNO NAME>" and "error=<text>"). See
 * guest-driver/README.md for the subcommands, the test pattern and the
 * checksum (FNV-1a 64-bit).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/dma-buf.h>
#include <linux/virtio_dmabuf.h>	/* guest-driver/include/uapi */
#include "dmabuf_kimport.h"		/* guest-driver/tests/kimport */

_Static_assert(sizeof(struct virtio_dmabuf_config) == 24, "config");
_Static_assert(sizeof(struct virtio_dmabuf_req_hdr) == 8, "req_hdr");
_Static_assert(sizeof(struct virtio_dmabuf_resp_hdr) == 8, "resp_hdr");
_Static_assert(sizeof(struct virtio_dmabuf_seg) == 16, "seg");
_Static_assert(sizeof(struct virtio_dmabuf_create) == 16, "create");
_Static_assert(sizeof(struct virtio_dmabuf_create_resp) == 24, "create_resp");
_Static_assert(sizeof(struct virtio_dmabuf_uuid) == 16, "uuid");
_Static_assert(sizeof(struct virtio_dmabuf_lookup_resp) == 24, "lookup_resp");
_Static_assert(sizeof(struct virtio_dmabuf_attach) == 24, "attach");
_Static_assert(sizeof(struct virtio_dmabuf_sync) == 40, "sync");
_Static_assert(sizeof(struct virtio_dmabuf_event) == 24, "event");
_Static_assert(sizeof(struct virtio_dmabuf_ioc_alloc) == 40, "ioc_alloc");
_Static_assert(sizeof(struct virtio_dmabuf_ioc_import) == 40, "ioc_import");
_Static_assert(sizeof(struct virtio_dmabuf_ioc_sync) == 32, "ioc_sync");
_Static_assert(sizeof(struct virtio_dmabuf_ioc_info) == 48, "ioc_info");
_Static_assert(sizeof(struct virtio_dmabuf_ioc_device_info) == 40, "ioc_devinfo");
_Static_assert(sizeof(struct dmabuf_kimport_run) == 72, "kimport_run");

/* The few DRM definitions needed for vgem (include/uapi/drm/drm.h ABI). */
struct gd_drm_prime_handle {
	uint32_t handle;
	uint32_t flags;
	int32_t fd;
};

struct gd_drm_mode_map_dumb {
	uint32_t handle;
	uint32_t pad;
	uint64_t offset;
};

struct gd_drm_gem_close {
	uint32_t handle;
	uint32_t pad;
};

#define GD_DRM_IOCTL_GEM_CLOSE		_IOW('d', 0x09, struct gd_drm_gem_close)
#define GD_DRM_IOCTL_PRIME_HANDLE_TO_FD	_IOWR('d', 0x2d, struct gd_drm_prime_handle)
#define GD_DRM_IOCTL_PRIME_FD_TO_HANDLE	_IOWR('d', 0x2e, struct gd_drm_prime_handle)
#define GD_DRM_IOCTL_MODE_MAP_DUMB	_IOWR('d', 0xB3, struct gd_drm_mode_map_dumb)

/* ------------------------------------------------------------------ */
/* output and errors                                                  */
/* ------------------------------------------------------------------ */

static const struct {
	int err;
	const char *name;
} errno_names[] = {
	{ EPERM, "EPERM" }, { ENOENT, "ENOENT" }, { EINTR, "EINTR" },
	{ EIO, "EIO" }, { E2BIG, "E2BIG" }, { EBADF, "EBADF" },
	{ EAGAIN, "EAGAIN" }, { ENOMEM, "ENOMEM" }, { EACCES, "EACCES" },
	{ EFAULT, "EFAULT" }, { EBUSY, "EBUSY" }, { EEXIST, "EEXIST" },
	{ ENODEV, "ENODEV" }, { EINVAL, "EINVAL" }, { ENOSPC, "ENOSPC" },
	{ ENOTTY, "ENOTTY" }, { ERANGE, "ERANGE" }, { EPROTO, "EPROTO" },
	{ EMSGSIZE, "EMSGSIZE" }, { EOPNOTSUPP, "EOPNOTSUPP" },
	{ ETIMEDOUT, "ETIMEDOUT" }, { ECANCELED, "ECANCELED" },
	{ EDQUOT, "EDQUOT" }, { EILSEQ, "EILSEQ" }, { ENXIO, "ENXIO" },
};

static const char *errno_name(int err)
{
	static char buf[32];
	size_t i;

	if (!err)
		return "OK";
	for (i = 0; i < sizeof(errno_names) / sizeof(errno_names[0]); i++)
		if (errno_names[i].err == err)
			return errno_names[i].name;
	snprintf(buf, sizeof(buf), "E%d", err);
	return buf;
}

static int errno_from_name(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(errno_names) / sizeof(errno_names[0]); i++)
		if (!strcmp(errno_names[i].name, name))
			return errno_names[i].err;
	if (!strcmp(name, "OK"))
		return 0;
	fprintf(stderr, "unknown errno name %s\n", name);
	exit(2);
}

/* --expect-errno: a failure with this errno is the expected outcome */
static int expect_errno = -1;

/* where key=value lines go: stdout, or stderr when stdout carries data (cat) */
static FILE *out_fp;

static void out(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(out_fp, fmt, ap);
	va_end(ap);
	fputc('\n', out_fp);
	fflush(out_fp);
}

/* Report a failed step (err is a positive errno) and exit. */
static void __attribute__((noreturn)) fail(int err, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	out("status=%s", errno_name(err));
	out("error=%s: %s", msg, strerror(err));
	if (expect_errno >= 0) {
		out("expected=%s", errno_name(expect_errno));
		exit(err == expect_errno ? 0 : 1);
	}
	exit(1);
}

static void usage_exit(const char *msg)
{
	fprintf(stderr, "dmabuf-guest: %s (see guest-driver/README.md)\n", msg);
	exit(2);
}

static uint64_t parse_u64(const char *s, const char *what)
{
	char *end;
	uint64_t v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		usage_exit(what);
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	}
	if (*end)
		usage_exit(what);
	return v;
}

static void parse_uuid(const char *s, uint8_t *uuid)
{
	int n = 0;

	for (; *s && n < 32; s++) {
		int v;

		if (*s == '-')
			continue;
		if (*s >= '0' && *s <= '9')
			v = *s - '0';
		else if (*s >= 'a' && *s <= 'f')
			v = *s - 'a' + 10;
		else if (*s >= 'A' && *s <= 'F')
			v = *s - 'A' + 10;
		else
			usage_exit("bad --uuid");
		if (n % 2 == 0)
			uuid[n / 2] = v << 4;
		else
			uuid[n / 2] |= v;
		n++;
	}
	if (n != 32 || *s)
		usage_exit("bad --uuid");
}

static const char *uuid_str(const uint8_t *u)
{
	static char buf[40];

	snprintf(buf, sizeof(buf),
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9],
		 u[10], u[11], u[12], u[13], u[14], u[15]);
	return buf;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* ------------------------------------------------------------------ */
/* options shared by the subcommands                                  */
/* ------------------------------------------------------------------ */

enum sync_mode { SYNC_RANGED, SYNC_DMABUF, SYNC_NONE };

struct opts {
	const char *dev;
	uint64_t size;
	bool have_size;
	uint8_t uuid[16];
	bool have_uuid;
	uint32_t share_flags;
	bool no_cloexec;
	long fill_seed;		/* -1: none */
	long verify_seed;	/* -1: none */
	long write_seed;	/* -1: none */
	bool print_crc;
	uint64_t offset;
	uint64_t len;		/* 0: to the end */
	enum sync_mode sync;
	uint32_t timeout_ms;
	double hold;		/* seconds; <0: until stdin closes; 0: none */
	bool have_hold;
	uint32_t hold_access_ms;
	bool twice;
	const char *card;
	const char *name;
	unsigned int rounds;
	const char *kop;
	bool attach;
	const char *raw_ops[32];
	int nr_raw_ops;
	long value;		/* wait-byte: -1 none */
	uint32_t wait_ms;
	uint32_t interval_ms;
	const char *text_file;
};

enum {
	OPT_DEV = 256, OPT_SIZE, OPT_UUID, OPT_READ_ONLY, OPT_HOST_ONLY,
	OPT_NO_CLOEXEC, OPT_FILL, OPT_VERIFY_SEED, OPT_WRITE_SEED,
	OPT_PRINT_CRC, OPT_OFFSET, OPT_LEN, OPT_SYNC, OPT_TIMEOUT, OPT_HOLD,
	OPT_HOLD_ACCESS, OPT_TWICE, OPT_CARD, OPT_NAME, OPT_ROUNDS, OPT_OP,
	OPT_ATTACH, OPT_EXPECT, OPT_SEED, OPT_VALUE, OPT_WAIT_MS,
	OPT_INTERVAL_MS, OPT_TEXT_FILE,
};

static const struct option long_opts[] = {
	{ "dev", required_argument, NULL, OPT_DEV },
	{ "size", required_argument, NULL, OPT_SIZE },
	{ "uuid", required_argument, NULL, OPT_UUID },
	{ "read-only", no_argument, NULL, OPT_READ_ONLY },
	{ "host-only", no_argument, NULL, OPT_HOST_ONLY },
	{ "no-cloexec", no_argument, NULL, OPT_NO_CLOEXEC },
	{ "fill", required_argument, NULL, OPT_FILL },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "verify-seed", required_argument, NULL, OPT_VERIFY_SEED },
	{ "write-seed", required_argument, NULL, OPT_WRITE_SEED },
	{ "print-crc", no_argument, NULL, OPT_PRINT_CRC },
	{ "offset", required_argument, NULL, OPT_OFFSET },
	{ "len", required_argument, NULL, OPT_LEN },
	{ "sync", required_argument, NULL, OPT_SYNC },
	{ "timeout-ms", required_argument, NULL, OPT_TIMEOUT },
	{ "hold", required_argument, NULL, OPT_HOLD },
	{ "hold-access-ms", required_argument, NULL, OPT_HOLD_ACCESS },
	{ "twice", no_argument, NULL, OPT_TWICE },
	{ "card", required_argument, NULL, OPT_CARD },
	{ "name", required_argument, NULL, OPT_NAME },
	{ "rounds", required_argument, NULL, OPT_ROUNDS },
	{ "op", required_argument, NULL, OPT_OP },
	{ "attach", no_argument, NULL, OPT_ATTACH },
	{ "expect-errno", required_argument, NULL, OPT_EXPECT },
	{ "value", required_argument, NULL, OPT_VALUE },
	{ "wait-ms", required_argument, NULL, OPT_WAIT_MS },
	{ "interval-ms", required_argument, NULL, OPT_INTERVAL_MS },
	{ "text-file", required_argument, NULL, OPT_TEXT_FILE },
	{ NULL, 0, NULL, 0 },
};

static void parse_opts(int argc, char **argv, struct opts *o)
{
	int c;

	memset(o, 0, sizeof(*o));
	o->dev = "/dev/" VIRTIO_DMABUF_DEV_PREFIX "0";
	o->fill_seed = o->verify_seed = o->write_seed = -1;
	o->sync = SYNC_RANGED;
	o->card = "/dev/dri/card0";
	o->rounds = 9;
	o->kop = "checksum";
	o->value = -1;
	o->wait_ms = 60000;
	o->interval_ms = 100;

	while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
		switch (c) {
		case OPT_DEV: o->dev = optarg; break;
		case OPT_SIZE:
			o->size = parse_u64(optarg, "bad --size");
			o->have_size = true;
			break;
		case OPT_UUID:
			parse_uuid(optarg, o->uuid);
			o->have_uuid = true;
			break;
		case OPT_READ_ONLY:
			o->share_flags |= VIRTIO_DMABUF_BUF_READ_ONLY;
			break;
		case OPT_HOST_ONLY:
			o->share_flags |= VIRTIO_DMABUF_BUF_HOST_ONLY;
			break;
		case OPT_NO_CLOEXEC: o->no_cloexec = true; break;
		case OPT_FILL:
		case OPT_SEED:
			o->fill_seed = parse_u64(optarg, "bad seed") & 0xffffffff;
			break;
		case OPT_VERIFY_SEED:
			o->verify_seed = parse_u64(optarg, "bad seed") & 0xffffffff;
			break;
		case OPT_WRITE_SEED:
			o->write_seed = parse_u64(optarg, "bad seed") & 0xffffffff;
			break;
		case OPT_PRINT_CRC: o->print_crc = true; break;
		case OPT_OFFSET: o->offset = parse_u64(optarg, "bad --offset"); break;
		case OPT_LEN: o->len = parse_u64(optarg, "bad --len"); break;
		case OPT_SYNC:
			if (!strcmp(optarg, "ranged"))
				o->sync = SYNC_RANGED;
			else if (!strcmp(optarg, "dmabuf"))
				o->sync = SYNC_DMABUF;
			else if (!strcmp(optarg, "none"))
				o->sync = SYNC_NONE;
			else
				usage_exit("--sync ranged|dmabuf|none");
			break;
		case OPT_TIMEOUT:
			o->timeout_ms = parse_u64(optarg, "bad --timeout-ms");
			break;
		case OPT_HOLD:
			o->hold = atof(optarg);
			o->have_hold = o->hold != 0;
			break;
		case OPT_HOLD_ACCESS:
			o->hold_access_ms = parse_u64(optarg, "bad --hold-access-ms");
			break;
		case OPT_TWICE: o->twice = true; break;
		case OPT_CARD: o->card = optarg; break;
		case OPT_NAME: o->name = optarg; break;
		case OPT_ROUNDS:
			o->rounds = parse_u64(optarg, "bad --rounds");
			if (!o->rounds)
				o->rounds = 1;
			break;
		case OPT_OP:
			if (o->nr_raw_ops == 32)
				usage_exit("too many --op");
			o->raw_ops[o->nr_raw_ops++] = optarg;
			o->kop = optarg;
			break;
		case OPT_ATTACH: o->attach = true; break;
		case OPT_EXPECT: expect_errno = errno_from_name(optarg); break;
		case OPT_VALUE:
			o->value = parse_u64(optarg, "bad --value") & 0xff;
			break;
		case OPT_WAIT_MS:
			o->wait_ms = parse_u64(optarg, "bad --wait-ms");
			break;
		case OPT_TEXT_FILE: o->text_file = optarg; break;
		case OPT_INTERVAL_MS:
			o->interval_ms = parse_u64(optarg, "bad --interval-ms");
			if (!o->interval_ms)
				o->interval_ms = 1;
			break;
		default: usage_exit("bad option");
		}
	}
	if (optind != argc)
		usage_exit("unexpected argument");
}

/* ------------------------------------------------------------------ */
/* driver access                                                      */
/* ------------------------------------------------------------------ */

static int open_dev(const struct opts *o)
{
	int fd = open(o->dev, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		fail(errno, "open %s", o->dev);
	return fd;
}

struct buf {
	int fd;
	uint64_t size;		/* registered size */
	uint64_t map_size;	/* dma-buf size (page multiple) */
	uint8_t uuid[16];
	uint32_t flags;
	uint8_t *map;
	bool map_writable;	/* map was made with PROT_WRITE */
	bool writable;
};

static void buf_finish(struct buf *b)
{
	off_t end = lseek(b->fd, 0, SEEK_END);

	if (end < 0)
		fail(errno, "lseek dma-buf");
	b->map_size = end;
}

static void do_alloc(int dev, const struct opts *o, struct buf *b)
{
	struct virtio_dmabuf_ioc_alloc a = {
		.size = o->size,
		.flags = o->share_flags,
		.fd_flags = o->no_cloexec ? VIRTIO_DMABUF_FD_NO_CLOEXEC : 0,
	};

	if (!o->have_size)
		usage_exit("--size is required");
	if (ioctl(dev, VIRTIO_DMABUF_IOC_ALLOC, &a))
		fail(errno, "VIRTIO_DMABUF_IOC_ALLOC size %" PRIu64, o->size);
	memset(b, 0, sizeof(*b));
	b->fd = a.fd;
	b->size = a.size;
	b->flags = VIRTIO_DMABUF_BUF_OWN;
	b->writable = true;
	memcpy(b->uuid, a.uuid, 16);
	buf_finish(b);
}

static void do_import(int dev, const struct opts *o, struct buf *b)
{
	struct virtio_dmabuf_ioc_import im = {
		.fd_flags = o->no_cloexec ? VIRTIO_DMABUF_FD_NO_CLOEXEC : 0,
	};

	if (!o->have_uuid)
		usage_exit("--uuid is required");
	memcpy(im.uuid, o->uuid, 16);
	if (ioctl(dev, VIRTIO_DMABUF_IOC_IMPORT, &im))
		fail(errno, "VIRTIO_DMABUF_IOC_IMPORT %s", uuid_str(o->uuid));
	memset(b, 0, sizeof(*b));
	b->fd = im.fd;
	b->size = im.size;
	b->flags = im.flags;
	b->writable = !(im.flags & VIRTIO_DMABUF_BUF_READ_ONLY);
	memcpy(b->uuid, im.uuid, 16);
	buf_finish(b);
}

/* --uuid: import; otherwise --size: allocate */
static void get_buf(int dev, const struct opts *o, struct buf *b)
{
	int fdflags;

	if (o->have_uuid)
		do_import(dev, o, b);
	else
		do_alloc(dev, o, b);
	fdflags = fcntl(b->fd, F_GETFD);
	out("uuid=%s", uuid_str(b->uuid));
	out("size=%" PRIu64, b->size);
	out("flags=0x%x", b->flags);
	out("cloexec=%d", fdflags >= 0 && (fdflags & FD_CLOEXEC) ? 1 : 0);
}

static void buf_map(struct buf *b, bool write)
{
	int prot = PROT_READ | (write ? PROT_WRITE : 0);

	if (b->map && (b->map_writable || !write))
		return;
	/* a read-only mapping is replaced when a write needs the buffer */
	if (b->map)
		munmap(b->map, b->map_size);
	b->map = mmap(NULL, b->map_size, prot, MAP_SHARED, b->fd, 0);
	if (b->map == MAP_FAILED) {
		b->map = NULL;
		fail(errno, "mmap dma-buf (%s)", write ? "rw" : "ro");
	}
	b->map_writable = write;
}

/* One ranged sync; returns 0 or a positive errno. */
static int ranged_sync(int dev, int fd, uint32_t flags, uint64_t off,
		       uint64_t len, uint32_t timeout_ms)
{
	struct virtio_dmabuf_ioc_sync s = {
		.fd = fd,
		.flags = flags,
		.offset = off,
		.len = len,
		.timeout_ms = (flags & VIRTIO_DMABUF_IOC_SYNC_END) ? 0 : timeout_ms,
	};

	return ioctl(dev, VIRTIO_DMABUF_IOC_SYNC, &s) ? errno : 0;
}

static int dmabuf_sync(int fd, uint64_t flags)
{
	struct dma_buf_sync s = { .flags = flags };

	return ioctl(fd, DMA_BUF_IOCTL_SYNC, &s) ? errno : 0;
}

/* Begin (start) or end access in the chosen mode; exits on failure. */
static void access_sync(int dev, const struct opts *o, struct buf *b,
			bool write, bool start, uint64_t off, uint64_t len)
{
	const char *what = start ? "start" : "end";
	int err = 0;

	switch (o->sync) {
	case SYNC_RANGED:
		err = ranged_sync(dev, b->fd,
				  (write ? VIRTIO_DMABUF_IOC_SYNC_WRITE :
					   VIRTIO_DMABUF_IOC_SYNC_READ) |
				  (start ? VIRTIO_DMABUF_IOC_SYNC_START :
					   VIRTIO_DMABUF_IOC_SYNC_END),
				  off, len, o->timeout_ms);
		break;
	case SYNC_DMABUF:
		err = dmabuf_sync(b->fd, (write ? DMA_BUF_SYNC_WRITE :
						  DMA_BUF_SYNC_READ) |
					 (start ? DMA_BUF_SYNC_START :
						  DMA_BUF_SYNC_END));
		break;
	case SYNC_NONE:
		break;
	}
	if (err)
		fail(err, "sync %s %s offset %" PRIu64 " len %" PRIu64, what,
		     write ? "write" : "read", off, len);
}

static void range_of(const struct opts *o, const struct buf *b, uint64_t *off,
		     uint64_t *len)
{
	*off = o->offset;
	*len = o->len;
	if (!*len)
		*len = *off < b->size ? b->size - *off : 0;
	if (!*len || *off > b->size || *len > b->size - *off)
		fail(EINVAL, "range %" PRIu64 "+%" PRIu64 " outside the buffer (%"
		     PRIu64 ")", *off, *len, b->size);
}

static void fill_pattern(uint8_t *p, uint64_t off, uint64_t len, uint32_t seed)
{
	uint64_t i;

	for (i = 0; i < len; i++)
		p[i] = dmabuf_pattern_byte(off + i, seed);
}

/* First offset whose byte differs from the pattern, or UINT64_MAX. */
static uint64_t check_pattern(const uint8_t *p, uint64_t off, uint64_t len,
			      uint32_t seed)
{
	uint64_t i;

	for (i = 0; i < len; i++)
		if (p[i] != dmabuf_pattern_byte(off + i, seed))
			return off + i;
	return UINT64_MAX;
}

static uint64_t fnv64(const uint8_t *p, uint64_t len)
{
	return dmabuf_fnv64_update(DMABUF_FNV64_BASIS, p, len);
}

static void sleep_ms(uint32_t ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Write the pattern of @seed over a range with a write sync around it. */
static void write_range(int dev, const struct opts *o, struct buf *b,
			uint64_t off, uint64_t len, uint32_t seed)
{
	uint64_t t0;

	buf_map(b, true);
	t0 = now_ns();
	access_sync(dev, o, b, true, true, off, len);
	out("write_sync_ms=%.3f", (now_ns() - t0) / 1e6);
	fill_pattern(b->map + off, off, len, seed);
	if (o->hold_access_ms)
		sleep_ms(o->hold_access_ms);
	access_sync(dev, o, b, true, false, off, len);
	out("write_fnv1a64=%016" PRIx64, fnv64(b->map + off, len));
}

/*
 * Read a range with a read sync around it: print its checksum, and verify
 * it against the pattern of @seed if seed >= 0.
 */
static bool read_range(int dev, const struct opts *o, struct buf *b,
		       uint64_t off, uint64_t len, long seed)
{
	uint64_t t0, mismatch = UINT64_MAX;
	double ms;

	buf_map(b, false);
	t0 = now_ns();
	access_sync(dev, o, b, false, true, off, len);
	ms = (now_ns() - t0) / 1e6;
	out("fnv1a64=%016" PRIx64, fnv64(b->map + off, len));
	if (seed >= 0)
		mismatch = check_pattern(b->map + off, off, len, seed);
	if (o->hold_access_ms)
		sleep_ms(o->hold_access_ms);
	access_sync(dev, o, b, false, false, off, len);
	out("elapsed_ms=%.3f", ms);
	if (seed < 0)
		return true;
	if (mismatch != UINT64_MAX) {
		out("verify=fail");
		out("mismatch=%" PRIu64, mismatch);
		out("got=0x%02x", b->map[mismatch]);
		out("want=0x%02x", dmabuf_pattern_byte(mismatch, seed));
		return false;
	}
	out("verify=ok");
	return true;
}

static void print_info(int dev, const struct buf *b)
{
	struct virtio_dmabuf_ioc_info info;

	memset(&info, 0, sizeof(info));
	info.fd = b->fd;
	if (ioctl(dev, VIRTIO_DMABUF_IOC_INFO, &info))
		fail(errno, "VIRTIO_DMABUF_IOC_INFO");
	out("info_kind=%s", info.kind == VIRTIO_DMABUF_KIND_OWN ? "own" :
			    info.kind == VIRTIO_DMABUF_KIND_IMPORTED ?
			    "imported" : "?");
	out("info_size=%llu", (unsigned long long)info.size);
	out("info_uuid=%s", uuid_str(info.uuid));
	out("info_flags=0x%x", info.flags);
	out("info_share_flags=0x%x", info.share_flags);
	out("info_state=0x%x", info.state);
	out("info_device=%u", info.device);
}

/*
 * Look at (peek) or write (poke) a range of the mapping with no sync around
 * it: what this guest's pages hold right now, e.g. an imported copy outside
 * the range of the last sync. Returns false if a verify failed or the range
 * is outside the buffer.
 */
static bool peek_poke(struct buf *b, bool poke, uint64_t off, uint64_t len,
		      uint32_t seed)
{
	uint64_t mismatch;

	if (!len || off > b->size || len > b->size - off) {
		out("error=range %" PRIu64 "+%" PRIu64 " outside the buffer",
		    off, len);
		return false;
	}
	buf_map(b, poke);
	if (poke) {
		fill_pattern(b->map + off, off, len, seed);
		out("poke_fnv1a64=%016" PRIx64, fnv64(b->map + off, len));
		return true;
	}
	out("fnv1a64=%016" PRIx64, fnv64(b->map + off, len));
	mismatch = check_pattern(b->map + off, off, len, seed);
	if (mismatch != UINT64_MAX) {
		out("verify=fail");
		out("mismatch=%" PRIu64, mismatch);
		out("got=0x%02x", b->map[mismatch]);
		out("want=0x%02x", dmabuf_pattern_byte(mismatch, seed));
		return false;
	}
	out("verify=ok");
	return true;
}

/*
 * Keep the buffer until @hold seconds passed (hold < 0: forever) or stdin
 * closes. Lines read from stdin meanwhile are commands:
 *   checksum [OFF LEN] | verify SEED [OFF LEN] | write SEED [OFF LEN] |
 *   peek SEED [OFF LEN] | poke SEED [OFF LEN] (no sync: the local pages) |
 *   info | closedev (close /dev/virtio-dmabuf<N>, keep the dma-buf) | quit
 * each answered with key=value lines and "done=<command>".
 */
static bool hold_buffer(int dev, const struct opts *o, struct buf *b)
{
	uint64_t deadline = o->hold > 0 ? now_ns() + (uint64_t)(o->hold * 1e9) : 0;
	bool ok = true, stdin_open = true;
	char line[256];

	out("ready=1");
	for (;;) {
		struct pollfd pfd = { .fd = 0, .events = POLLIN };
		int timeout = -1, n;

		if (deadline) {
			uint64_t now = now_ns();

			if (now >= deadline)
				break;
			timeout = (deadline - now) / 1000000 + 1;
		}
		if (!stdin_open) {
			if (!deadline)
				break;
			sleep_ms(timeout);
			continue;
		}
		n = poll(&pfd, 1, timeout);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			continue;
		if (!fgets(line, sizeof(line), stdin)) {
			stdin_open = false;
			if (o->hold < 0 || !deadline)
				break;
			continue;
		}
		{
			char cmd[32] = "";
			unsigned long long a = 0, c = 0, d = 0;
			int k = sscanf(line, "%31s %lli %lli %lli", cmd, &a, &c, &d);
			uint64_t off = 0, len = b->size;

			if (k <= 0)
				continue;
			if (!strcmp(cmd, "quit"))
				break;
			if (!strcmp(cmd, "info")) {
				print_info(dev, b);
				out("done=info");
				continue;
			}
			if (!strcmp(cmd, "closedev")) {
				/* only the dma-buf fd (and mapping) stay open */
				if (dev >= 0)
					close(dev);
				dev = -1;
				out("dev_closed=1");
				out("done=closedev");
				continue;
			}
			if ((!strcmp(cmd, "peek") || !strcmp(cmd, "poke")) &&
			    k >= 2) {
				if (k >= 4) {
					off = c;
					len = d;
				}
				ok &= peek_poke(b, cmd[1] == 'o', off, len, a);
				out("done=%s", cmd);
				continue;
			}
			if (!strcmp(cmd, "checksum")) {
				if (k >= 3) {
					off = a;
					len = c;
				}
				ok &= read_range(dev, o, b, off, len, -1);
			} else if (!strcmp(cmd, "verify") && k >= 2) {
				if (k >= 4) {
					off = c;
					len = d;
				}
				ok &= read_range(dev, o, b, off, len, (long)a);
			} else if (!strcmp(cmd, "write") && k >= 2) {
				if (k >= 4) {
					off = c;
					len = d;
				}
				write_range(dev, o, b, off, len, a);
			} else {
				out("error=unknown command %s", cmd);
				continue;
			}
			out("done=%s", cmd);
		}
	}
	return ok;
}

/* ------------------------------------------------------------------ */
/* subcommands                                                        */
/* ------------------------------------------------------------------ */

static int cmd_devinfo(const struct opts *o)
{
	struct virtio_dmabuf_ioc_device_info di;
	int dev = open_dev(o);

	if (ioctl(dev, VIRTIO_DMABUF_IOC_DEVICE_INFO, &di))
		fail(errno, "VIRTIO_DMABUF_IOC_DEVICE_INFO");
	out("index=%u", di.index);
	out("max_segments=%u", di.max_segments);
	out("max_buffers=%u", di.max_buffers);
	out("max_bytes=%llu", (unsigned long long)di.max_bytes);
	out("sync_timeout_ms=%u", di.sync_timeout_ms);
	out("features=0x%llx", (unsigned long long)di.features);
	out("queue_size=%u", di.queue_size);
	out("max_starts=%u", di.max_starts);
	out("status=OK");
	return 0;
}

static int cmd_alloc(const struct opts *o)
{
	int dev = open_dev(o);
	struct buf b;
	bool ok = true;

	get_buf(dev, o, &b);
	out("fd=%d", b.fd);
	if (o->fill_seed >= 0) {
		struct opts w = *o;

		/* the owner fills the whole buffer under a whole-buffer sync */
		w.sync = o->sync == SYNC_RANGED ? SYNC_DMABUF : o->sync;
		write_range(dev, &w, &b, 0, b.size, o->fill_seed);
		out("crc_alg=fnv1a64");
		out("fnv1a64=%016" PRIx64, fnv64(b.map, b.size));
	}
	if (o->have_hold)
		ok = hold_buffer(dev, o, &b);
	out("status=%s", ok ? "OK" : "EILSEQ");
	return ok ? 0 : 1;
}

static int cmd_import(const struct opts *o)
{
	int dev = open_dev(o);
	uint64_t off, len;
	struct buf b;
	bool ok = true;

	get_buf(dev, o, &b);
	out("fd=%d", b.fd);
	out("host_backed=%d", !!(b.flags & VIRTIO_DMABUF_BUF_HOST_BACKED));
	out("read_only=%d", !!(b.flags & VIRTIO_DMABUF_BUF_READ_ONLY));
	out("own=%d", !!(b.flags & VIRTIO_DMABUF_BUF_OWN));

	if (o->twice) {
		struct stat s1, s2;
		struct buf b2;

		do_import(dev, o, &b2);
		if (fstat(b.fd, &s1) || fstat(b2.fd, &s2))
			fail(errno, "fstat");
		out("second_fd=%d", b2.fd);
		out("second_same_dmabuf=%d", s1.st_ino == s2.st_ino &&
					     s1.st_dev == s2.st_dev);
		close(b2.fd);
	}

	range_of(o, &b, &off, &len);
	out("offset=%" PRIu64, off);
	out("len=%" PRIu64, len);
	if (o->verify_seed >= 0 || o->print_crc || o->write_seed < 0)
		ok = read_range(dev, o, &b, off, len, o->verify_seed);
	if (o->write_seed >= 0)
		write_range(dev, o, &b, off, len, o->write_seed);
	if (o->have_hold)
		ok &= hold_buffer(dev, o, &b);
	if (!ok) {
		out("status=EILSEQ");
		return 1;
	}
	out("status=OK");
	return expect_errno > 0 ? 1 : 0;
}

static int cmd_info(const struct opts *o)
{
	int dev = open_dev(o);
	struct buf b;

	get_buf(dev, o, &b);
	print_info(dev, &b);
	out("dmabuf_size=%" PRIu64, b.map_size);
	if (o->have_hold && !hold_buffer(dev, o, &b))
		return 1;
	out("status=OK");
	return 0;
}

/* Parse "start|end,r|w|rw,OFFSET,LEN[,TIMEOUT_MS]" */
static void parse_raw_op(const char *spec, uint32_t *flags, uint64_t *off,
			 uint64_t *len, uint32_t *timeout)
{
	char kind[8], dir[4];
	unsigned long long a, b;
	unsigned int t = 0;
	int n;

	n = sscanf(spec, "%7[^,],%3[^,],%lli,%lli,%u", kind, dir, &a, &b, &t);
	if (n < 4)
		usage_exit("--op start|end,r|w|rw,OFFSET,LEN[,TIMEOUT_MS]");
	*flags = 0;
	if (!strcmp(kind, "start"))
		*flags |= VIRTIO_DMABUF_IOC_SYNC_START;
	else if (!strcmp(kind, "end"))
		*flags |= VIRTIO_DMABUF_IOC_SYNC_END;
	else if (strcmp(kind, "none"))
		usage_exit("--op: start, end or none");
	if (strchr(dir, 'r'))
		*flags |= VIRTIO_DMABUF_IOC_SYNC_READ;
	if (strchr(dir, 'w'))
		*flags |= VIRTIO_DMABUF_IOC_SYNC_WRITE;
	*off = a;
	*len = b;
	*timeout = t;
}

static int cmd_raw_sync(const struct opts *o)
{
	int dev = open_dev(o), i, last = 0;
	struct buf b;

	get_buf(dev, o, &b);
	for (i = 0; i < o->nr_raw_ops; i++) {
		uint32_t flags, timeout;
		uint64_t off, len, t0;
		int err;

		if (!strncmp(o->raw_ops[i], "sleep,", 6)) {
			sleep_ms(parse_u64(o->raw_ops[i] + 6, "bad sleep,MS"));
			continue;
		}
		parse_raw_op(o->raw_ops[i], &flags, &off, &len, &timeout);
		/* printed before the ioctl: an observer sees that it was issued */
		out("op%d_issue=%s", i, o->raw_ops[i]);
		t0 = now_ns();
		err = ranged_sync(dev, b.fd, flags, off, len, timeout);
		out("op%d=%s", i, o->raw_ops[i]);
		out("op%d_status=%s", i, errno_name(err));
		out("op%d_ms=%.3f", i, (now_ns() - t0) / 1e6);
		last = err;
	}
	if (o->have_hold)
		hold_buffer(dev, o, &b);
	out("status=%s", errno_name(last));
	if (expect_errno >= 0)
		return last == expect_errno ? 0 : 1;
	return last ? 1 : 0;
}

static int cmd_vgem(const struct opts *o)
{
	struct gd_drm_prime_handle ph = { 0 };
	struct gd_drm_mode_map_dumb md = { 0 };
	struct gd_drm_gem_close gc = { 0 };
	int dev = open_dev(o), card;
	uint64_t want, got;
	struct opts f = *o;
	struct buf b;
	uint8_t *p;

	if (f.fill_seed < 0 && !o->have_uuid)
		f.fill_seed = 1;
	get_buf(dev, &f, &b);
	if (!o->have_uuid) {
		f.sync = SYNC_DMABUF;
		write_range(dev, &f, &b, 0, b.size, f.fill_seed);
	}
	buf_map(&b, false);
	if (dmabuf_sync(b.fd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ))
		fail(errno, "DMA_BUF_IOCTL_SYNC start");
	want = fnv64(b.map, b.size);
	dmabuf_sync(b.fd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ);
	out("fnv1a64=%016" PRIx64, want);

	card = open(o->card, O_RDWR | O_CLOEXEC);
	if (card < 0)
		fail(errno, "open %s (load vgem)", o->card);
	ph.fd = b.fd;
	if (ioctl(card, GD_DRM_IOCTL_PRIME_FD_TO_HANDLE, &ph))
		fail(errno, "DRM_IOCTL_PRIME_FD_TO_HANDLE");
	out("vgem_import=ok");
	out("vgem_handle=%u", ph.handle);

	/* exporting the imported handle again must give back our dma-buf */
	{
		struct gd_drm_prime_handle back = {
			.handle = ph.handle, .flags = O_CLOEXEC | O_RDWR,
		};
		struct stat s1, s2;

		if (ioctl(card, GD_DRM_IOCTL_PRIME_HANDLE_TO_FD, &back)) {
			out("vgem_reexport=%s", errno_name(errno));
		} else {
			fstat(b.fd, &s1);
			fstat(back.fd, &s2);
			out("vgem_reexport_same=%d", s1.st_ino == s2.st_ino);
			close(back.fd);
		}
	}

	md.handle = ph.handle;
	if (ioctl(card, GD_DRM_IOCTL_MODE_MAP_DUMB, &md)) {
		/* DRM refuses mmap offsets for imported objects */
		out("vgem_map=%s", errno_name(errno));
	} else {
		p = mmap(NULL, b.map_size, PROT_READ, MAP_SHARED, card,
			 md.offset);
		if (p == MAP_FAILED)
			fail(errno, "mmap vgem offset 0x%llx",
			     (unsigned long long)md.offset);
		dmabuf_sync(b.fd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ);
		got = fnv64(p, b.size);
		dmabuf_sync(b.fd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ);
		out("vgem_map=ok");
		out("vgem_fnv1a64=%016" PRIx64, got);
		out("vgem_match=%d", got == want);
		munmap(p, b.map_size);
		if (got != want) {
			out("status=EILSEQ");
			return 1;
		}
	}
	gc.handle = ph.handle;
	ioctl(card, GD_DRM_IOCTL_GEM_CLOSE, &gc);
	close(card);
	out("status=OK");
	return 0;
}

static int cmd_setname(const struct opts *o)
{
	const char *name = o->name ? o->name : "dmabuf-guest-test";
	char path[64], line[256], got[256] = "", exp_name[64] = "";
	int dev = open_dev(o);
	struct buf b;
	FILE *f;

	get_buf(dev, o, &b);
	if (ioctl(b.fd, DMA_BUF_SET_NAME_B, name))
		fail(errno, "DMA_BUF_SET_NAME");
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", b.fd);
	f = fopen(path, "r");
	if (!f)
		fail(errno, "open %s", path);
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		if (!strncmp(line, "name:", 5))
			snprintf(got, sizeof(got), "%s", line + 5 + strspn(line + 5, " \t"));
		if (!strncmp(line, "exp_name:", 9))
			snprintf(exp_name, sizeof(exp_name), "%s",
				 line + 9 + strspn(line + 9, " \t"));
	}
	fclose(f);
	out("exp_name=%s", exp_name);
	out("name=%s", got);
	out("name_match=%d", !strcmp(got, name));
	if (strcmp(got, name)) {
		out("status=EILSEQ");
		return 1;
	}
	out("status=OK");
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, unsigned int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static uint64_t read_all(const uint8_t *p, uint64_t len)
{
	const volatile uint64_t *w = (const volatile uint64_t *)p;
	uint64_t i, sum = 0;

	for (i = 0; i < len / 8; i++)
		sum += w[i];
	return sum;
}

static int cmd_bench_read(const struct opts *o)
{
	int dev = open_dev(o);
	double *ours, *local, *sync_us;
	uint64_t sink = 0, len;
	unsigned int r;
	uint8_t *mem;
	struct buf b;

	get_buf(dev, o, &b);
	len = b.size & ~7ULL;
	if (!len)
		fail(EINVAL, "buffer too small");
	buf_map(&b, false);
	mem = malloc(len);
	ours = calloc(o->rounds, sizeof(double));
	local = calloc(o->rounds, sizeof(double));
	sync_us = calloc(o->rounds, sizeof(double));
	if (!mem || !ours || !local || !sync_us)
		fail(ENOMEM, "malloc");
	memset(mem, 0x5a, len);

	/* interleave ours and the local floor, one round each at a time */
	for (r = 0; r < o->rounds; r++) {
		uint64_t t0, t1, t2;

		t0 = now_ns();
		access_sync(dev, o, &b, false, true, 0, b.size);
		t1 = now_ns();
		sink += read_all(b.map, len);
		access_sync(dev, o, &b, false, false, 0, b.size);
		t2 = now_ns();
		ours[r] = len / ((t2 - t0) / 1e9) / 1e6;
		sync_us[r] = (t1 - t0) / 1e3;

		t0 = now_ns();
		sink += read_all(mem, len);
		t1 = now_ns();
		local[r] = len / ((t1 - t0) / 1e9) / 1e6;
	}
	out("rounds=%u", o->rounds);
	out("bytes=%" PRIu64, len);
	out("dmabuf_read_mbps=%.1f", median(ours, o->rounds));
	out("local_read_mbps=%.1f", median(local, o->rounds));
	out("sync_start_us_median=%.1f", median(sync_us, o->rounds));
	out("ratio=%.3f", median(ours, o->rounds) / median(local, o->rounds));
	out("sink=%" PRIu64, sink & 0xff);
	out("status=OK");
	return 0;
}

static int cmd_kimport(const struct opts *o)
{
	struct dmabuf_kimport_run run = { 0 };
	int dev = open_dev(o), k, ret;
	struct opts f = *o;
	uint64_t off, len;
	struct buf b;

	if (!strcmp(o->kop, "checksum"))
		run.op = DMABUF_KIMPORT_OP_CHECKSUM;
	else if (!strcmp(o->kop, "verify"))
		run.op = DMABUF_KIMPORT_OP_VERIFY;
	else if (!strcmp(o->kop, "write"))
		run.op = DMABUF_KIMPORT_OP_WRITE;
	else
		usage_exit("--op checksum|verify|write");

	get_buf(dev, &f, &b);
	if (!o->have_uuid && o->fill_seed >= 0) {
		f.sync = SYNC_DMABUF;
		write_range(dev, &f, &b, 0, b.size, o->fill_seed);
	}
	range_of(o, &b, &off, &len);

	k = open("/dev/" DMABUF_KIMPORT_DEV, O_RDWR | O_CLOEXEC);
	if (k < 0)
		fail(errno, "open /dev/" DMABUF_KIMPORT_DEV " (insmod dmabuf_kimport.ko)");
	run.fd = b.fd;
	run.offset = off;
	run.len = len;
	run.flags = o->attach ? DMABUF_KIMPORT_F_ATTACH : 0;
	if (run.op == DMABUF_KIMPORT_OP_VERIFY)
		run.seed = o->verify_seed >= 0 ? o->verify_seed :
			   o->fill_seed >= 0 ? o->fill_seed : 0;
	else if (run.op == DMABUF_KIMPORT_OP_WRITE)
		run.seed = o->write_seed >= 0 ? o->write_seed : 0;
	ret = ioctl(k, DMABUF_KIMPORT_IOC_RUN, &run);
	out("kimport_result=%s", errno_name(ret ? errno : 0));
	out("kimport_step=%u", run.step);
	out("kimport_size=%llu", (unsigned long long)run.size);
	out("fnv1a64=%016llx", (unsigned long long)run.checksum);
	if (run.mismatch != ~0ULL)
		out("mismatch=%llu", (unsigned long long)run.mismatch);
	if (o->attach) {
		out("attach_fnv1a64=%016llx",
		    (unsigned long long)run.attach_checksum);
		out("attach_match=%d", run.attach_checksum == run.checksum);
	}
	if (ret)
		fail(errno, "DMABUF_KIMPORT_IOC_RUN step %u", run.step);
	if (o->attach && run.attach_checksum != run.checksum) {
		out("status=EILSEQ");
		return 1;
	}
	if (run.op == DMABUF_KIMPORT_OP_WRITE) {
		/* read back what the kernel wrote through our own mapping */
		if (!read_range(dev, o, &b, off, len, run.seed)) {
			out("status=EILSEQ");
			return 1;
		}
	}
	out("status=OK");
	return expect_errno > 0 ? 1 : 0;
}

/*
 * A mailbox shared by the host: import it once, then poll, each time with a
 * read sync around the look, until the byte at --offset has --value. The bytes
 * after it, up to a NUL (at most 255), are printed as payload=. Bounded by
 * --wait-ms (ETIMEDOUT).
 */
static int cmd_wait_byte(const struct opts *o)
{
	int dev = open_dev(o);
	uint64_t t0 = now_ns(), len;
	unsigned long polls = 0;
	struct buf b;

	if (o->value < 0)
		usage_exit("wait-byte needs --value");
	get_buf(dev, o, &b);
	if (o->offset >= b.size)
		fail(EINVAL, "--offset %" PRIu64 " outside the buffer", o->offset);
	len = b.size - o->offset < 256 ? b.size - o->offset : 256;
	buf_map(&b, false);
	for (;;) {
		char payload[256];
		uint64_t i;
		bool hit;
		int err;

		err = ranged_sync(dev, b.fd, VIRTIO_DMABUF_IOC_SYNC_READ |
				  VIRTIO_DMABUF_IOC_SYNC_START, o->offset, len,
				  o->timeout_ms);
		if (err)
			fail(err, "sync start read of the mailbox");
		polls++;
		hit = b.map[o->offset] == o->value;
		for (i = 1; hit && i < len && b.map[o->offset + i]; i++) {
			uint8_t c = b.map[o->offset + i];

			payload[i - 1] = c >= 0x20 && c < 0x7f ? c : '?';
		}
		if (hit)
			payload[i - 1] = 0;
		err = ranged_sync(dev, b.fd, VIRTIO_DMABUF_IOC_SYNC_READ |
				  VIRTIO_DMABUF_IOC_SYNC_END, o->offset, len, 0);
		if (err)
			fail(err, "sync end read of the mailbox");
		if (hit) {
			out("value=%ld", o->value);
			out("payload=%s", payload);
			out("polls=%lu", polls);
			out("waited_ms=%.0f", (now_ns() - t0) / 1e6);
			out("status=OK");
			return 0;
		}
		if ((now_ns() - t0) / 1000000 >= o->wait_ms)
			fail(ETIMEDOUT, "byte %" PRIu64 " is 0x%02x, not 0x%02lx after %u ms",
			     o->offset, b.map[o->offset], o->value, o->wait_ms);
		sleep_ms(o->interval_ms);
	}
}

/*
 * cat: the bytes of a range, up to the first NUL, on stdout, read under a
 * read sync (the key=value lines go to stderr).
 */
static int cmd_cat(const struct opts *o)
{
	int dev = open_dev(o);
	uint64_t off, len, n;
	struct buf b;

	get_buf(dev, o, &b);
	range_of(o, &b, &off, &len);
	buf_map(&b, false);
	access_sync(dev, o, &b, false, true, off, len);
	for (n = 0; n < len && b.map[off + n]; n++)
		;
	if (fwrite(b.map + off, 1, n, stdout) != n || fflush(stdout))
		fail(errno ? errno : EIO, "write to stdout");
	access_sync(dev, o, &b, false, false, off, len);
	out("text_bytes=%" PRIu64, n);
	out("status=OK");
	return 0;
}

/*
 * puts: copy the contents of --text-file into the buffer at --offset, and a
 * NUL after it when there is room, under a write sync over the whole rest of
 * the range (so a shorter text also clears what followed). With --size the
 * buffer is allocated first; --hold keeps it open afterwards.
 */
static int cmd_puts(const struct opts *o)
{
	int dev = open_dev(o);
	uint64_t off, len, n;
	struct buf b;
	bool ok = true;
	FILE *f;

	if (!o->text_file)
		usage_exit("puts needs --text-file FILE");
	f = strcmp(o->text_file, "-") ? fopen(o->text_file, "r") : stdin;
	if (!f)
		fail(errno, "open %s", o->text_file);
	get_buf(dev, o, &b);
	out("fd=%d", b.fd);
	range_of(o, &b, &off, &len);
	buf_map(&b, true);
	access_sync(dev, o, &b, true, true, off, len);
	n = fread(b.map + off, 1, len, f);
	if (ferror(f))
		fail(EIO, "read %s", o->text_file);
	memset(b.map + off + n, 0, len - n);
	out("text_fnv1a64=%016" PRIx64, fnv64(b.map + off, n));
	access_sync(dev, o, &b, true, false, off, len);
	if (f != stdin)
		fclose(f);
	out("text_bytes=%" PRIu64, n);
	if (n == len)
		out("truncated=1");
	if (o->have_hold)
		ok = hold_buffer(dev, o, &b);
	out("status=%s", ok ? "OK" : "EILSEQ");
	return ok ? 0 : 1;
}

static const struct {
	const char *name;
	int (*fn)(const struct opts *o);
	const char *help;
} cmds[] = {
	{ "devinfo", cmd_devinfo, "" },
	{ "alloc", cmd_alloc, "--size N [--fill SEED] [--read-only] [--host-only] [--no-cloexec] [--hold SECONDS|-1]" },
	{ "import", cmd_import, "--uuid U [--offset O --len L] [--verify-seed S | --print-crc] [--write-seed S] [--sync ranged|dmabuf|none] [--timeout-ms T] [--hold-access-ms MS] [--twice] [--hold S]" },
	{ "info", cmd_info, "--uuid U | --size N [alloc options]" },
	{ "raw-sync", cmd_raw_sync, "--uuid U | --size N  --op start|end,r|w|rw,OFF,LEN[,TIMEOUT_MS] | --op sleep,MS ..." },
	{ "vgem", cmd_vgem, "--size N [--fill SEED] | --uuid U  [--card /dev/dri/card0]" },
	{ "setname", cmd_setname, "--size N [--name STR]" },
	{ "bench-read", cmd_bench_read, "--uuid U | --size N  [--rounds R] [--sync ranged|dmabuf|none]" },
	{ "cat", cmd_cat, "--uuid U | --size N  [--offset O --len L]  (bytes up to the first NUL to stdout; key=value to stderr)" },
	{ "puts", cmd_puts, "--uuid U | --size N  --text-file FILE|-  [--offset O --len L] [--hold S]" },
	{ "wait-byte", cmd_wait_byte, "--uuid U --value V [--offset O] [--wait-ms T] [--interval-ms I]" },
	{ "kimport", cmd_kimport, "--uuid U | --size N [--fill SEED]  [--op checksum|verify|write] [--verify-seed S] [--write-seed S] [--offset O --len L] [--attach]" },
};

int main(int argc, char **argv)
{
	struct opts o;
	size_t i;

	out_fp = stdout;
	if (argc >= 2 && !strcmp(argv[1], "cat"))
		out_fp = stderr;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		printf("usage: dmabuf-guest COMMAND [--dev /dev/virtio-dmabuf0] [--expect-errno NAME] OPTIONS\n");
		for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
			printf("  %-10s %s\n", cmds[i].name, cmds[i].help);
		return argc < 2 ? 2 : 0;
	}
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[1], cmds[i].name))
			continue;
		parse_opts(argc - 1, argv + 1, &o);
		out("cmd=%s", cmds[i].name);
		return cmds[i].fn(&o);
	}
	usage_exit("unknown command");
	return 2;
}
