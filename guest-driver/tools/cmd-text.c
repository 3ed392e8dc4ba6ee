// SPDX-License-Identifier: GPL-2.0
/*
 * dmabuf-guest: devinfo, and text in buffers (cat, puts: the demo's).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include <linux/virtio_dmabuf.h>

#include "dmabuf-guest.h"

static const struct gd_opt no_options[] = {
	{ NULL, 0, 0, NULL, NULL, NULL },
};

int cmd_devinfo(struct gd *g, int argc, char **argv)
{
	struct virtio_dmabuf_ioc_device_info di;
	const struct gd_optset sets[] = { GD_OPTSET(no_options, NULL) };
	int dev;

	gd_parse(g, argc, argv, sets, GD_ARRAY_SIZE(sets));
	dev = gd_open_dev(g);
	if (ioctl(dev, VIRTIO_DMABUF_IOC_DEVICE_INFO, &di))
		gd_fail(g, errno, "VIRTIO_DMABUF_IOC_DEVICE_INFO");
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
