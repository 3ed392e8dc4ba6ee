// SPDX-License-Identifier: GPL-2.0
/*
 * dmabuf-guest: the device and its buffers: ALLOC, IMPORT, INFO, the two
 * kinds of sync, mmap, and the options that select a buffer and its access.
 * The device's ioctls go through libvdmabuf (lib/vdmabuf.h, linked in
 * statically); its -errno results become the positive errnos used here.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/dma-buf.h>
#include <linux/virtio_dmabuf.h>	/* guest-driver/include/uapi */

#include "dmabuf-guest.h"
#include "vdmabuf.h"			/* guest-driver/lib */

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
_Static_assert(sizeof(struct virtio_dmabuf_ioc_shm_info) == 48, "ioc_shm_info");

/* ------------------------------------------------------------------ */
/* options                                                            */
/* ------------------------------------------------------------------ */

static void set_uuid(void *field, const char *arg)
{
	struct gd_buf_opts *o = field;

	gd_parse_uuid(arg, o->uuid);
	o->have_uuid = true;
}

static void set_size(void *field, const char *arg)
{
	struct gd_buf_opts *o = field;

	o->size = gd_parse_u64(arg, "bad --size");
	o->have_size = true;
}

static void set_read_only(void *field, const char *arg)
{
	(void)arg;
	*(uint32_t *)field |= VIRTIO_DMABUF_BUF_READ_ONLY;
}

static void set_host_only(void *field, const char *arg)
{
	(void)arg;
	*(uint32_t *)field |= VIRTIO_DMABUF_BUF_HOST_ONLY;
}

static void set_contiguous(void *field, const char *arg)
{
	(void)arg;
	*(uint32_t *)field |= VIRTIO_DMABUF_ALLOC_CONTIGUOUS;
}

static void set_01(void *field, const char *arg)
{
	if (strcmp(arg, "0") && strcmp(arg, "1"))
		gd_usage("an --expect-... flag is 0 or 1");
	*(int *)field = arg[0] - '0';
}

#define BO(f) offsetof(struct gd_buf_opts, f)
#define BE(f) (offsetof(struct gd_buf_opts, expect) + offsetof(struct gd_buf_expect, f))

const struct gd_opt gd_buf_options[] = {
	{ "uuid", GD_OPT_FN, 0, "U", "import buffer U", set_uuid },
	{ "size", GD_OPT_FN, 0, "N", "allocate N bytes (K/M/G)", set_size },
	{ "read-only", GD_OPT_FN, BO(share_flags), NULL,
	  "allocate READ_ONLY for importers", set_read_only },
	{ "host-only", GD_OPT_FN, BO(share_flags), NULL,
	  "allocate HOST_ONLY (not importable by VMs)", set_host_only },
	{ "contiguous", GD_OPT_FN, BO(alloc_flags), NULL,
	  "allocate one physically contiguous run (VIRTIO_DMABUF_ALLOC_CONTIGUOUS)",
	  set_contiguous },
	{ "no-cloexec", GD_OPT_FLAG, BO(no_cloexec), NULL,
	  "VIRTIO_DMABUF_FD_NO_CLOEXEC", NULL },
	{ "no-map", GD_OPT_FLAG, BO(no_map), NULL,
	  "IMPORT with VIRTIO_DMABUF_IMPORT_NO_MAP: a copy, never mapped in place (default with DMABUF_GUEST_NO_MAP=1)",
	  NULL },
	{ "expect-size", GD_OPT_U64, BE(size), "N", "check: its size is N", NULL },
	{ "expect-cloexec", GD_OPT_FN, BE(cloexec), "0|1",
	  "check: FD_CLOEXEC of its fd", set_01 },
	{ "expect-host-backed", GD_OPT_FN, BE(host_backed), "0|1",
	  "check: its HOST_BACKED flag", set_01 },
	{ "expect-read-only", GD_OPT_FN, BE(read_only), "0|1",
	  "check: its READ_ONLY flag", set_01 },
	{ "expect-own", GD_OPT_FN, BE(own), "0|1", "check: its OWN flag", set_01 },
	{ "expect-mapped", GD_OPT_FN, BE(mapped), "0|1",
	  "check: its MAPPED flag (mapped in place, not a copy)", set_01 },
	{ NULL, 0, 0, NULL, NULL, NULL },
};

void gd_buf_opts_init(struct gd_buf_opts *o)
{
	const char *env;

	memset(o, 0, sizeof(*o));
	o->expect.cloexec = -1;
	o->expect.host_backed = -1;
	o->expect.read_only = -1;
	o->expect.own = -1;
	o->expect.mapped = -1;
	/* a run-wide default for scripts whose imports must stay copies */
	env = getenv("DMABUF_GUEST_NO_MAP");
	o->no_map = env && !strcmp(env, "1");
}

uint32_t gd_import_flags(const struct gd_buf_opts *o)
{
	return o->no_map ? VIRTIO_DMABUF_IMPORT_NO_MAP : 0;
}

static void set_sync(void *field, const char *arg)
{
	enum gd_sync_mode *m = field;

	if (!strcmp(arg, "ranged"))
		*m = GD_SYNC_RANGED;
	else if (!strcmp(arg, "dmabuf"))
		*m = GD_SYNC_DMABUF;
	else if (!strcmp(arg, "none"))
		*m = GD_SYNC_NONE;
	else
		gd_usage("--sync ranged|dmabuf|none");
}

#define AO(f) offsetof(struct gd_access_opts, f)

const struct gd_opt gd_access_options[] = {
	{ "sync", GD_OPT_FN, AO(sync), "ranged|dmabuf|none",
	  "the sync around accesses (default ranged: VIRTIO_DMABUF_IOC_SYNC)",
	  set_sync },
	{ "timeout-ms", GD_OPT_U32, AO(timeout_ms), "T",
	  "bound of a ranged START (0: the device's)", NULL },
	{ "hold-access-ms", GD_OPT_U32, AO(hold_access_ms), "MS",
	  "keep each access this long before its END", NULL },
	{ NULL, 0, 0, NULL, NULL, NULL },
};

void gd_access_opts_init(struct gd_access_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->sync = GD_SYNC_RANGED;
}

const struct gd_opt gd_range_options[] = {
	{ "offset", GD_OPT_U64, offsetof(struct gd_range_opts, offset), "O",
	  "range start", NULL },
	{ "len", GD_OPT_U64, offsetof(struct gd_range_opts, len), "L",
	  "range length (default: to the end)", NULL },
	{ NULL, 0, 0, NULL, NULL, NULL },
};

/* ------------------------------------------------------------------ */
/* buffers                                                            */
/* ------------------------------------------------------------------ */

int gd_open_dev(struct gd *g)
{
	int fd = vdmabuf_open(g->dev_path);

	if (fd < 0)
		gd_fail(g, -fd, "open %s", g->dev_path);
	return fd;
}

/* a buffer of the library's result */
static void buf_finish(struct gd *g, int dev, const struct vdmabuf_buffer *vb,
		       struct gd_buf *b)
{
	off_t end = lseek(vb->fd, 0, SEEK_END);

	if (end < 0)
		gd_fail(g, errno, "lseek dma-buf");
	memset(b, 0, sizeof(*b));
	b->dev = dev;
	b->fd = vb->fd;
	b->size = vb->size;
	b->flags = vb->flags;
	memcpy(b->uuid, vb->uuid, 16);
	b->map_size = end;
}

void gd_alloc(struct gd *g, int dev, const struct gd_buf_opts *o,
	      struct gd_buf *b)
{
	struct vdmabuf_buffer vb;
	int fd;

	if (!o->have_size)
		gd_usage("--size or --uuid is required");
	fd = vdmabuf_alloc(dev, o->size, o->share_flags, o->alloc_flags,
			   o->no_cloexec ? VIRTIO_DMABUF_FD_NO_CLOEXEC : 0, &vb);
	if (fd < 0)
		gd_fail(g, -fd, "VIRTIO_DMABUF_IOC_ALLOC size %" PRIu64, o->size);
	gd_out(g, "alloc_flags=0x%x", o->alloc_flags);
	buf_finish(g, dev, &vb, b);
}

void gd_import(struct gd *g, int dev, const uint8_t *uuid, bool no_cloexec,
	       uint32_t import_flags, struct gd_buf *b)
{
	struct vdmabuf_buffer vb;
	char us[37];
	int fd;

	fd = vdmabuf_import(dev, uuid, import_flags,
			    no_cloexec ? VIRTIO_DMABUF_FD_NO_CLOEXEC : 0, &vb);
	if (fd < 0)
		gd_fail(g, -fd, "VIRTIO_DMABUF_IOC_IMPORT %s",
			gd_uuid_str(uuid, us));
	buf_finish(g, dev, &vb, b);
}

static void check_flag(struct gd *g, const char *op, const char *name,
		       int want, uint32_t flags, uint32_t bit)
{
	char what[64];

	if (want < 0)
		return;
	snprintf(what, sizeof(what), "%s: %s flag is %d", op, name, want);
	gd_check_u64(g, what, !!(flags & bit), want);
}

void gd_get_buf(struct gd *g, const struct gd_buf_opts *o, struct gd_buf *b)
{
	const char *op = o->have_uuid ? "IMPORT" : "ALLOC";
	int dev = gd_open_dev(g), fdflags, cloexec;
	char us[37], what[128];

	if (o->have_uuid)
		gd_import(g, dev, o->uuid, o->no_cloexec, gd_import_flags(o), b);
	else
		gd_alloc(g, dev, o, b);
	fdflags = fcntl(b->fd, F_GETFD);
	cloexec = fdflags >= 0 && (fdflags & FD_CLOEXEC) ? 1 : 0;
	gd_out(g, "uuid=%s", gd_uuid_str(b->uuid, us));
	gd_out(g, "size=%" PRIu64, b->size);
	gd_out(g, "flags=0x%x", b->flags);
	gd_out(g, "mapped=%d", !!(b->flags & VIRTIO_DMABUF_BUF_MAPPED));
	if (o->have_uuid)
		gd_out(g, "import_flags=0x%x", gd_import_flags(o));
	gd_out(g, "cloexec=%d", cloexec);
	gd_out(g, "fd=%d", b->fd);
	if (o->expect.size) {
		snprintf(what, sizeof(what), "%s: size", op);
		gd_check_u64(g, what, b->size, o->expect.size);
	}
	if (o->expect.cloexec >= 0) {
		snprintf(what, sizeof(what), "%s%s: fd FD_CLOEXEC is %d", op,
			 o->no_cloexec ? " with VIRTIO_DMABUF_FD_NO_CLOEXEC" : "",
			 o->expect.cloexec);
		gd_check_u64(g, what, cloexec, o->expect.cloexec);
	}
	check_flag(g, op, "HOST_BACKED", o->expect.host_backed, b->flags,
		   VIRTIO_DMABUF_BUF_HOST_BACKED);
	check_flag(g, op, "READ_ONLY", o->expect.read_only, b->flags,
		   VIRTIO_DMABUF_BUF_READ_ONLY);
	check_flag(g, op, "OWN", o->expect.own, b->flags, VIRTIO_DMABUF_BUF_OWN);
	check_flag(g, op, "MAPPED", o->expect.mapped, b->flags,
		   VIRTIO_DMABUF_BUF_MAPPED);
}

void gd_buf_map(struct gd *g, struct gd_buf *b, bool write)
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
		gd_fail(g, errno, "mmap dma-buf (%s)", write ? "rw" : "ro");
	}
	b->map_writable = write;
}

bool gd_same_file(int fd1, int fd2)
{
	struct stat s1, s2;

	if (fstat(fd1, &s1) || fstat(fd2, &s2))
		return false;
	return s1.st_ino == s2.st_ino && s1.st_dev == s2.st_dev;
}

/* ------------------------------------------------------------------ */
/* syncs                                                              */
/* ------------------------------------------------------------------ */

int gd_ranged_sync(int dev, int fd, uint32_t flags, uint64_t off, uint64_t len,
		   uint32_t timeout_ms)
{
	/* the flags as they are: raw-sync tests the driver's checks of them */
	return -vdmabuf_sync(dev, fd, flags, off, len,
			     (flags & VIRTIO_DMABUF_IOC_SYNC_END) ? 0 : timeout_ms);
}

int gd_dmabuf_sync(int fd, uint64_t flags)
{
	struct dma_buf_sync s = { .flags = flags };

	return ioctl(fd, DMA_BUF_IOCTL_SYNC, &s) ? errno : 0;
}

int gd_access(const struct gd_access_opts *a, struct gd_buf *b, bool write,
	      bool start, uint64_t off, uint64_t len)
{
	switch (a->sync) {
	case GD_SYNC_RANGED:
		if (b->dev < 0)
			return EBADF;
		return gd_ranged_sync(b->dev, b->fd,
				      (write ? VIRTIO_DMABUF_IOC_SYNC_WRITE :
					       VIRTIO_DMABUF_IOC_SYNC_READ) |
				      (start ? VIRTIO_DMABUF_IOC_SYNC_START :
					       VIRTIO_DMABUF_IOC_SYNC_END),
				      off, len, a->timeout_ms);
	case GD_SYNC_DMABUF:
		return gd_dmabuf_sync(b->fd, (write ? DMA_BUF_SYNC_WRITE :
						      DMA_BUF_SYNC_READ) |
					     (start ? DMA_BUF_SYNC_START :
						      DMA_BUF_SYNC_END));
	case GD_SYNC_NONE:
		break;
	}
	return 0;
}

void gd_access_or_fail(struct gd *g, const struct gd_access_opts *a,
		       struct gd_buf *b, bool write, bool start, uint64_t off,
		       uint64_t len)
{
	int err = gd_access(a, b, write, start, off, len);

	if (err)
		gd_fail(g, err, "sync %s %s offset %" PRIu64 " len %" PRIu64,
			start ? "start" : "end", write ? "write" : "read", off,
			len);
}

/* ------------------------------------------------------------------ */
/* INFO                                                               */
/* ------------------------------------------------------------------ */

int gd_print_info(struct gd *g, struct gd_buf *b, uint32_t *state)
{
	struct vdmabuf_info info;
	char us[37];
	int ret;

	if (b->dev < 0)
		return EBADF;
	ret = vdmabuf_info(b->dev, b->fd, &info);
	if (ret)
		return -ret;
	gd_out(g, "info_kind=%s", info.kind == VIRTIO_DMABUF_KIND_OWN ? "own" :
		  info.kind == VIRTIO_DMABUF_KIND_IMPORTED ? "imported" : "?");
	gd_out(g, "info_size=%llu", (unsigned long long)info.size);
	gd_out(g, "info_uuid=%s", gd_uuid_str(info.uuid, us));
	gd_out(g, "info_flags=0x%x", info.flags);
	gd_out(g, "info_mapped=%d", !!(info.flags & VIRTIO_DMABUF_BUF_MAPPED));
	gd_out(g, "info_share_flags=0x%x", info.share_flags);
	gd_out(g, "info_state=0x%x", info.state);
	gd_out(g, "info_device=%u", info.device);
	if (state)
		*state = info.state;
	return 0;
}

static const char *const shm_states[] = {
	[VIRTIO_DMABUF_SHM_ACTIVE] = "ACTIVE",
	[VIRTIO_DMABUF_SHM_NO_FEATURE] = "NO_FEATURE",
	[VIRTIO_DMABUF_SHM_NO_REGION] = "NO_REGION",
	[VIRTIO_DMABUF_SHM_UNUSABLE] = "UNUSABLE",
};

const char *gd_shm_state_name(uint32_t state)
{
	return state < GD_ARRAY_SIZE(shm_states) ? shm_states[state] : "?";
}

int gd_shm_state_from_name(const char *name)
{
	size_t i;

	for (i = 0; i < GD_ARRAY_SIZE(shm_states); i++)
		if (!strcmp(shm_states[i], name))
			return i;
	return -1;
}

void gd_range_of(struct gd *g, const struct gd_range_opts *r,
		 const struct gd_buf *b, uint64_t *off, uint64_t *len)
{
	*off = r->offset;
	*len = r->len;
	if (!*len)
		*len = *off < b->size ? b->size - *off : 0;
	if (!*len || *off > b->size || *len > b->size - *off)
		gd_fail(g, EINVAL, "range %" PRIu64 "+%" PRIu64
			" outside the buffer (%" PRIu64 ")", *off, *len, b->size);
}
