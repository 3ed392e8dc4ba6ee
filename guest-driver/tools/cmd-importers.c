// SPDX-License-Identifier: GPL-2.0
/*
 * dmabuf-guest: other importers of our dma-bufs: the test-only kernel
 * importer (kimport), vgem (PRIME), and the dma-buf core (setname).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/dma-buf.h>

#include "dmabuf-guest.h"
#include "dmabuf_kimport.h"		/* guest-driver/tests/kimport */

_Static_assert(sizeof(struct dmabuf_kimport_run) == 72, "kimport_run");

/* ------------------------------------------------------------------ */
/* kimport                                                            */
/* ------------------------------------------------------------------ */

struct kimport_opts {
	const char *op;
	long fill;
	long verify_seed;
	long write_seed;
	bool attach;
	struct gd_fnv_arg expect_fnv;
};

#define KO(f) offsetof(struct kimport_opts, f)

static const struct gd_opt kimport_options[] = {
	{ "op", GD_OPT_STR, KO(op), "checksum|verify|write",
	  "what the kernel importer does with the range", NULL },
	{ "fill", GD_OPT_SEED, KO(fill), "SEED",
	  "(--size) fill the new buffer with the pattern of SEED first", NULL },
	{ "verify-seed", GD_OPT_SEED, KO(verify_seed), "S",
	  "verify: the pattern (default: --fill's)", NULL },
	{ "write-seed", GD_OPT_SEED, KO(write_seed), "S",
	  "write: the pattern; read back through mmap afterwards", NULL },
	{ "attach", GD_OPT_FLAG, KO(attach), NULL,
	  "also checksum through an attachment's sg_table (check: = vmap's)", NULL },
	{ "expect-fnv", GD_OPT_FN, KO(expect_fnv), "HEX",
	  "check: the kernel's checksum of the range", gd_parse_fnv },
	{ NULL, 0, 0, NULL, NULL, NULL },
};

int cmd_kimport(struct gd *g, int argc, char **argv)
{
	struct kimport_opts o = {
		.op = "checksum", .fill = GD_NO_SEED,
		.verify_seed = GD_NO_SEED, .write_seed = GD_NO_SEED,
	};
	struct dmabuf_kimport_run run = { 0 };
	struct gd_range_opts r = { 0 };
	struct gd_access_opts a;
	struct gd_buf_opts bo;
	char what[160];
	uint64_t off, len;
	struct gd_buf b;
	int k, ret, err;

	gd_buf_opts_init(&bo);
	gd_access_opts_init(&a);
	{
		const struct gd_optset sets[] = {
			GD_OPTSET(gd_buf_options, &bo),
			GD_OPTSET(gd_access_options, &a),
			GD_OPTSET(gd_range_options, &r),
			GD_OPTSET(kimport_options, &o),
		};

		gd_parse(g, argc, argv, sets, GD_ARRAY_SIZE(sets));
	}
	if (!strcmp(o.op, "checksum"))
		run.op = DMABUF_KIMPORT_OP_CHECKSUM;
	else if (!strcmp(o.op, "verify"))
		run.op = DMABUF_KIMPORT_OP_VERIFY;
	else if (!strcmp(o.op, "write"))
		run.op = DMABUF_KIMPORT_OP_WRITE;
	else
		gd_usage("--op checksum|verify|write");

	gd_get_buf(g, &bo, &b);
	if (!bo.have_uuid && o.fill != GD_NO_SEED) {
		struct gd_access_opts w = a;

		w.sync = GD_SYNC_DMABUF;
		err = gd_write_range(g, &w, &b, 0, b.size, o.fill);
		if (err)
			gd_fail(g, err, "fill with pattern %ld", o.fill);
	}
	gd_range_of(g, &r, &b, &off, &len);

	k = open("/dev/" DMABUF_KIMPORT_DEV, O_RDWR | O_CLOEXEC);
	if (k < 0)
		gd_fail(g, errno, "open /dev/" DMABUF_KIMPORT_DEV " (insmod dmabuf_kimport.ko)");
	run.fd = b.fd;
	run.offset = off;
	run.len = len;
	run.flags = o.attach ? DMABUF_KIMPORT_F_ATTACH : 0;
	if (run.op == DMABUF_KIMPORT_OP_VERIFY)
		run.seed = o.verify_seed != GD_NO_SEED ? o.verify_seed :
			   o.fill != GD_NO_SEED ? o.fill : 0;
	else if (run.op == DMABUF_KIMPORT_OP_WRITE)
		run.seed = o.write_seed != GD_NO_SEED ? o.write_seed : 0;
	ret = ioctl(k, DMABUF_KIMPORT_IOC_RUN, &run);
	err = ret ? errno : 0;
	gd_out(g, "kimport_result=%s", gd_errno_name(err));
	gd_out(g, "kimport_step=%u", run.step);
	gd_out(g, "kimport_size=%llu", (unsigned long long)run.size);
	gd_out(g, "fnv1a64=%016llx", (unsigned long long)run.checksum);
	if (run.mismatch != ~0ULL)
		gd_out(g, "mismatch=%llu", (unsigned long long)run.mismatch);
	if (o.attach) {
		gd_out(g, "attach_fnv1a64=%016llx",
		       (unsigned long long)run.attach_checksum);
		gd_out(g, "attach_match=%d", run.attach_checksum == run.checksum);
	}
	if (ret)
		gd_fail(g, err, "kimport %s [%" PRIu64 ",+%" PRIu64 ") step %u",
			o.op, off, len, run.step);
	snprintf(what, sizeof(what), "kimport %s%s [%" PRIu64 ",+%" PRIu64
		 ") (begin_cpu_access + vmap%s)", o.op,
		 run.op == DMABUF_KIMPORT_OP_CHECKSUM ? "" : " of the pattern",
		 off, len, o.attach ? ", attach + map" : "");
	gd_check(g, true, what, "", "");
	if (o.expect_fnv.set)
		gd_check_hex(g, "kimport: the kernel's checksum is the expected one",
			     run.checksum, o.expect_fnv.value);
	if (o.attach)
		gd_check_hex(g, "kimport: the sg_table checksum (DMA addresses) = the vmap checksum",
			     run.attach_checksum, run.checksum);
	if (run.op == DMABUF_KIMPORT_OP_WRITE) {
		/* read back what the kernel wrote through our own mapping */
		err = gd_read_range(g, &a, &b, off, len, run.seed, NULL);
		if (err && err != EILSEQ)
			gd_fail(g, err, "read back the kernel's write");
	}
	return gd_finish(g);
}

/* ------------------------------------------------------------------ */
/* vgem                                                               */
/* ------------------------------------------------------------------ */

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

struct vgem_opts {
	long fill;
	const char *card;
	struct gd_fnv_arg expect_fnv;
};

static const struct gd_opt vgem_options[] = {
	{ "fill", GD_OPT_SEED, offsetof(struct vgem_opts, fill), "SEED",
	  "(--size) the pattern of the new buffer (default 1)", NULL },
	{ "card", GD_OPT_STR, offsetof(struct vgem_opts, card), "PATH",
	  "vgem's node (default /dev/dri/card0)", NULL },
	{ "expect-fnv", GD_OPT_FN, offsetof(struct vgem_opts, expect_fnv), "HEX",
	  "check: the buffer's checksum through our mapping", gd_parse_fnv },
	{ NULL, 0, 0, NULL, NULL, NULL },
};

int cmd_vgem(struct gd *g, int argc, char **argv)
{
	struct vgem_opts o = { .fill = GD_NO_SEED, .card = "/dev/dri/card0" };
	struct gd_drm_prime_handle ph = { 0 }, back = { 0 };
	struct gd_drm_mode_map_dumb md = { 0 };
	struct gd_drm_gem_close gc = { 0 };
	struct gd_access_opts a;
	struct gd_buf_opts bo;
	uint64_t want, got;
	struct gd_buf b;
	int card, err;
	uint8_t *p;

	gd_buf_opts_init(&bo);
	gd_access_opts_init(&a);
	{
		const struct gd_optset sets[] = {
			GD_OPTSET(gd_buf_options, &bo),
			GD_OPTSET(vgem_options, &o),
		};

		gd_parse(g, argc, argv, sets, GD_ARRAY_SIZE(sets));
	}
	gd_get_buf(g, &bo, &b);
	if (!bo.have_uuid) {
		a.sync = GD_SYNC_DMABUF;
		err = gd_write_range(g, &a, &b, 0, b.size,
				     o.fill != GD_NO_SEED ? o.fill : 1);
		if (err)
			gd_fail(g, err, "fill");
	}
	gd_buf_map(g, &b, false);
	err = gd_dmabuf_sync(b.fd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ);
	if (err)
		gd_fail(g, err, "DMA_BUF_IOCTL_SYNC start");
	want = gd_fnv64(b.map, b.size);
	gd_dmabuf_sync(b.fd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ);
	gd_out(g, "fnv1a64=%016" PRIx64, want);
	if (o.expect_fnv.set)
		gd_check_hex(g, "vgem: the buffer's checksum through our mapping is the expected one",
			     want, o.expect_fnv.value);

	card = open(o.card, O_RDWR | O_CLOEXEC);
	if (card < 0)
		gd_fail(g, errno, "open %s (load vgem)", o.card);
	ph.fd = b.fd;
	if (ioctl(card, GD_DRM_IOCTL_PRIME_FD_TO_HANDLE, &ph))
		gd_fail(g, errno, "DRM_IOCTL_PRIME_FD_TO_HANDLE");
	gd_out(g, "vgem_import=ok");
	gd_out(g, "vgem_handle=%u", ph.handle);
	gd_check(g, true, "vgem imports our dma-buf (PRIME_FD_TO_HANDLE: attach + map)",
		 "", "");

	/* exporting the imported handle again must give back our dma-buf */
	back.handle = ph.handle;
	back.flags = O_CLOEXEC | O_RDWR;
	if (ioctl(card, GD_DRM_IOCTL_PRIME_HANDLE_TO_FD, &back)) {
		gd_out(g, "vgem_reexport=%s", gd_errno_name(errno));
		gd_check_str(g, "vgem: PRIME_HANDLE_TO_FD of the import",
			     gd_errno_name(errno), "OK");
	} else {
		gd_out(g, "vgem_reexport_same=%d", gd_same_file(b.fd, back.fd));
		gd_check_u64(g, "vgem: exporting the import again gives back our dma-buf",
			     gd_same_file(b.fd, back.fd), 1);
		close(back.fd);
	}

	md.handle = ph.handle;
	if (ioctl(card, GD_DRM_IOCTL_MODE_MAP_DUMB, &md)) {
		/* DRM refuses mmap offsets for imported objects */
		gd_out(g, "vgem_map=%s", gd_errno_name(errno));
		gd_skip(g, "vgem: bytes through vgem's mapping",
			"DRM refuses MODE_MAP_DUMB of imported objects");
	} else {
		p = mmap(NULL, b.map_size, PROT_READ, MAP_SHARED, card, md.offset);
		if (p == MAP_FAILED)
			gd_fail(g, errno, "mmap vgem offset 0x%llx",
				(unsigned long long)md.offset);
		gd_dmabuf_sync(b.fd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ);
		got = gd_fnv64(p, b.size);
		gd_dmabuf_sync(b.fd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ);
		gd_out(g, "vgem_map=ok");
		gd_out(g, "vgem_fnv1a64=%016" PRIx64, got);
		gd_out(g, "vgem_match=%d", got == want);
		gd_check_hex(g, "vgem: bytes through vgem's mapping = through ours",
			     got, want);
		munmap(p, b.map_size);
	}
	gc.handle = ph.handle;
	ioctl(card, GD_DRM_IOCTL_GEM_CLOSE, &gc);
	close(card);
	return gd_finish(g);
}

/* ------------------------------------------------------------------ */
/* setname                                                            */
/* ------------------------------------------------------------------ */

struct setname_opts {
	const char *name;
};

static const struct gd_opt setname_options[] = {
	{ "name", GD_OPT_STR, offsetof(struct setname_opts, name), "STR",
	  "the name (default dmabuf-guest-test)", NULL },
	{ NULL, 0, 0, NULL, NULL, NULL },
};

/* DMA_BUF_SET_NAME, read back from /proc/self/fdinfo/<fd> */
int cmd_setname(struct gd *g, int argc, char **argv)
{
	struct setname_opts o = { .name = "dmabuf-guest-test" };
	char path[64], line[256], got[256] = "", exp_name[64] = "";
	struct gd_buf_opts bo;
	struct gd_buf b;
	FILE *f;

	gd_buf_opts_init(&bo);
	{
		const struct gd_optset sets[] = {
			GD_OPTSET(gd_buf_options, &bo),
			GD_OPTSET(setname_options, &o),
		};

		gd_parse(g, argc, argv, sets, GD_ARRAY_SIZE(sets));
	}
	gd_get_buf(g, &bo, &b);
	if (ioctl(b.fd, DMA_BUF_SET_NAME_B, o.name))
		gd_fail(g, errno, "DMA_BUF_SET_NAME");
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", b.fd);
	f = fopen(path, "r");
	if (!f)
		gd_fail(g, errno, "open %s", path);
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		if (!strncmp(line, "name:", 5))
			snprintf(got, sizeof(got), "%s", line + 5 + strspn(line + 5, " \t"));
		if (!strncmp(line, "exp_name:", 9))
			snprintf(exp_name, sizeof(exp_name), "%s",
				 line + 9 + strspn(line + 9, " \t"));
	}
	fclose(f);
	gd_out(g, "exp_name=%s", exp_name);
	gd_out(g, "name=%s", got);
	gd_out(g, "name_match=%d", !strcmp(got, o.name));
	gd_check_str(g, "DMA_BUF_SET_NAME: the name in fdinfo", got, o.name);
	return gd_finish(g);
}
