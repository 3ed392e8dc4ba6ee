// SPDX-License-Identifier: GPL-2.0
/*
 * dmabuf-guest: devinfo, shm-info, and text in buffers (cat, puts: the
 * demo's).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include <linux/virtio_dmabuf.h>

#include "dmabuf-guest.h"
#include "vdmabuf.h"

static const struct gd_opt no_options[] = {
	{ NULL, 0, 0, NULL, NULL, NULL },
};

int cmd_devinfo(struct gd *g, int argc, char **argv)
{
	struct vdmabuf_device_info di;
	const struct gd_optset sets[] = { GD_OPTSET(no_options, NULL) };
	int dev, ret;

	gd_parse(g, argc, argv, sets, GD_ARRAY_SIZE(sets));
	dev = gd_open_dev(g);
	ret = vdmabuf_device_info(dev, &di);
	if (ret)
		gd_fail(g, -ret, "VIRTIO_DMABUF_IOC_DEVICE_INFO");
	gd_out(g, "index=%u", di.index);
	gd_out(g, "max_segments=%u", di.max_segments);
	gd_out(g, "max_buffers=%u", di.max_buffers);
	gd_out(g, "max_bytes=%llu", (unsigned long long)di.max_bytes);
	gd_out(g, "sync_timeout_ms=%u", di.sync_timeout_ms);
	gd_out(g, "features=0x%llx", (unsigned long long)di.features);
	gd_out(g, "queue_size=%u", di.queue_size);
	gd_out(g, "max_starts=%u", di.max_starts);
	gd_check(g, true, "DEVICE_INFO", "", "");
	return gd_finish(g);
}

/* ------------------------------------------------------------------ */
/* shm-info                                                           */
/* ------------------------------------------------------------------ */

/* an expected value: GD_OPT_FN with set_expect_u64 */
struct expect_u64 {
	uint64_t value;
	bool set;
};

static void set_expect_u64(void *field, const char *arg)
{
	struct expect_u64 *e = field;

	e->value = gd_parse_u64(arg, "bad --expect-... value");
	e->set = true;
}

static void set_expect_state(void *field, const char *arg)
{
	struct expect_u64 *e = field;
	int s = gd_shm_state_from_name(arg);

	if (s < 0)
		gd_usage("--expect-state ACTIVE|NO_FEATURE|NO_REGION|UNUSABLE");
	e->value = s;
	e->set = true;
}

static void set_expect_errno_name(void *field, const char *arg)
{
	struct expect_u64 *e = field;
	int err = gd_errno_from_name(arg);

	if (err < 0)
		gd_usage("--expect-last-fallback: unknown errno name");
	e->value = err;
	e->set = true;
}

struct shm_info_opts {
	struct expect_u64 state;
	struct expect_u64 nr_mapped;
	struct expect_u64 bytes_mapped;
	struct expect_u64 nr_fallbacks;
	struct expect_u64 last_fallback;
};

#define SO(f) offsetof(struct shm_info_opts, f)

static const struct gd_opt shm_info_options[] = {
	{ "expect-state", GD_OPT_FN, SO(state), "NAME",
	  "check: the state (ACTIVE, NO_FEATURE, NO_REGION, UNUSABLE)",
	  set_expect_state },
	{ "expect-nr-mapped", GD_OPT_FN, SO(nr_mapped), "N",
	  "check: mapped imports this guest holds now", set_expect_u64 },
	{ "expect-bytes-mapped", GD_OPT_FN, SO(bytes_mapped), "N",
	  "check: bytes of the region they hold (each rounded up to 4096)",
	  set_expect_u64 },
	{ "expect-fallbacks", GD_OPT_FN, SO(nr_fallbacks), "N",
	  "check: IMPORTs that asked for MAP and got a copy since probe",
	  set_expect_u64 },
	{ "expect-last-fallback", GD_OPT_FN, SO(last_fallback), "ERRNO",
	  "check: the errno of the latest such MAP (OK: none)", set_expect_errno_name },
	{ NULL, 0, 0, NULL, NULL, NULL },
};

/*
 * VIRTIO_DMABUF_IOC_SHM_INFO: every field, the state and errnos by name. The
 * raw ioctl, not vdmabuf_shm_info(): this prints the uapi's reserved word
 * too, which the library keeps to itself.
 */
int cmd_shm_info(struct gd *g, int argc, char **argv)
{
	struct virtio_dmabuf_ioc_shm_info si;
	struct shm_info_opts o = { 0 };
	const struct gd_optset sets[] = { GD_OPTSET(shm_info_options, &o) };
	int dev;

	gd_parse(g, argc, argv, sets, GD_ARRAY_SIZE(sets));
	dev = gd_open_dev(g);
	memset(&si, 0, sizeof(si));
	if (ioctl(dev, VIRTIO_DMABUF_IOC_SHM_INFO, &si))
		gd_fail(g, errno, "VIRTIO_DMABUF_IOC_SHM_INFO");
	gd_out(g, "shm_addr=0x%llx", (unsigned long long)si.addr);
	gd_out(g, "shm_size=%llu", (unsigned long long)si.size);
	gd_out(g, "shm_bytes_mapped=%llu", (unsigned long long)si.bytes_mapped);
	gd_out(g, "shm_nr_mapped=%u", si.nr_mapped);
	gd_out(g, "shm_state=%s", gd_shm_state_name(si.state));
	gd_out(g, "shm_state_value=%u", si.state);
	gd_out(g, "shm_error=%s", gd_errno_name(si.error));
	gd_out(g, "shm_nr_fallbacks=%u", si.nr_fallbacks);
	gd_out(g, "shm_last_fallback=%s", gd_errno_name(si.last_fallback));
	gd_out(g, "shm_reserved=%u", si.reserved);
	gd_check(g, true, "SHM_INFO", "", "");
	if (o.state.set)
		gd_check_str(g, "SHM_INFO: state", gd_shm_state_name(si.state),
			     gd_shm_state_name(o.state.value));
	if (o.nr_mapped.set)
		gd_check_u64(g, "SHM_INFO: mapped imports held (nr_mapped)",
			     si.nr_mapped, o.nr_mapped.value);
	if (o.bytes_mapped.set)
		gd_check_u64(g, "SHM_INFO: bytes of the region mapped (bytes_mapped)",
			     si.bytes_mapped, o.bytes_mapped.value);
	if (o.nr_fallbacks.set)
		gd_check_u64(g, "SHM_INFO: MAPs that fell back to a copy (nr_fallbacks)",
			     si.nr_fallbacks, o.nr_fallbacks.value);
	if (o.last_fallback.set)
		gd_check_str(g, "SHM_INFO: the errno of the latest fallback (last_fallback)",
			     gd_errno_name(si.last_fallback),
			     gd_errno_name(o.last_fallback.value));
	return gd_finish(g);
}

/*
 * cat: the bytes of a range, up to the first NUL, on stdout, read under a
 * read sync (the key=value lines go to stderr).
 */
int cmd_cat(struct gd *g, int argc, char **argv)
{
	struct gd_range_opts r = { 0 };
	struct gd_access_opts a;
	struct gd_buf_opts bo;
	uint64_t off, len, n;
	struct gd_buf b;

	gd_buf_opts_init(&bo);
	gd_access_opts_init(&a);
	{
		const struct gd_optset sets[] = {
			GD_OPTSET(gd_buf_options, &bo),
			GD_OPTSET(gd_access_options, &a),
			GD_OPTSET(gd_range_options, &r),
		};

		gd_parse(g, argc, argv, sets, GD_ARRAY_SIZE(sets));
	}
	gd_get_buf(g, &bo, &b);
	gd_range_of(g, &r, &b, &off, &len);
	gd_buf_map(g, &b, false);
	gd_access_or_fail(g, &a, &b, false, true, off, len);
	for (n = 0; n < len && b.map[off + n]; n++)
		;
	if (fwrite(b.map + off, 1, n, stdout) != n || fflush(stdout))
		gd_fail(g, errno ? errno : EIO, "write to stdout");
	gd_access_or_fail(g, &a, &b, false, false, off, len);
	gd_out(g, "text_bytes=%" PRIu64, n);
	return gd_finish(g);
}

struct puts_opts {
	const char *text_file;
	double hold;
};

static void set_hold(void *field, const char *arg)
{
	*(double *)field = atof(arg);
}

static const struct gd_opt puts_options[] = {
	{ "text-file", GD_OPT_STR, offsetof(struct puts_opts, text_file),
	  "FILE|-", "the text", NULL },
	{ "hold", GD_OPT_FN, offsetof(struct puts_opts, hold), "S|-1",
	  "then keep the buffer open, commands on stdin", set_hold },
	{ NULL, 0, 0, NULL, NULL, NULL },
};

/*
 * puts: copy the contents of --text-file into the buffer at --offset, and a
 * NUL after it when there is room, under a write sync over the whole rest of
 * the range (so a shorter text also clears what followed). With --size the
 * buffer is allocated first; --hold keeps it open afterwards.
 */
int cmd_puts(struct gd *g, int argc, char **argv)
{
	struct puts_opts o = { 0 };
	struct gd_range_opts r = { 0 };
	struct gd_access_opts a;
	struct gd_buf_opts bo;
	uint64_t off, len, n;
	struct gd_buf b;
	FILE *f;

	gd_buf_opts_init(&bo);
	gd_access_opts_init(&a);
	{
		const struct gd_optset sets[] = {
			GD_OPTSET(gd_buf_options, &bo),
			GD_OPTSET(gd_access_options, &a),
			GD_OPTSET(gd_range_options, &r),
			GD_OPTSET(puts_options, &o),
		};

		gd_parse(g, argc, argv, sets, GD_ARRAY_SIZE(sets));
	}
	if (!o.text_file)
		gd_usage("puts needs --text-file FILE");
	f = strcmp(o.text_file, "-") ? fopen(o.text_file, "r") : stdin;
	if (!f)
		gd_fail(g, errno, "open %s", o.text_file);
	gd_get_buf(g, &bo, &b);
	gd_range_of(g, &r, &b, &off, &len);
	gd_buf_map(g, &b, true);
	gd_access_or_fail(g, &a, &b, true, true, off, len);
	n = fread(b.map + off, 1, len, f);
	if (ferror(f))
		gd_fail(g, EIO, "read %s", o.text_file);
	memset(b.map + off + n, 0, len - n);
	gd_out(g, "text_fnv1a64=%016" PRIx64, gd_fnv64(b.map + off, n));
	gd_access_or_fail(g, &a, &b, true, false, off, len);
	if (f != stdin)
		fclose(f);
	gd_out(g, "text_bytes=%" PRIu64, n);
	if (n == len)
		gd_out(g, "truncated=1");
	if (o.hold && !gd_hold(g, &a, &b, o.hold) && !g->failed)
		g->failed++;
	return gd_finish(g);
}
