// SPDX-License-Identifier: GPL-2.0
/*
 * dmabuf-guest: the buffer subcommands: alloc, import, info.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/virtio_dmabuf.h>

#include "dmabuf-guest.h"

static void set_hold(void *field, const char *arg)
{
	*(double *)field = atof(arg);
}

/* --hold S: keep the buffer open (and take commands on stdin) */
#define HOLD_OPTION(type)						\
	{ "hold", GD_OPT_FN, offsetof(type, hold), "S|-1",		\
	  "keep the buffer open S seconds (-1: until stdin closes), commands on stdin", \
	  set_hold }

/* ------------------------------------------------------------------ */
/* alloc                                                              */
/* ------------------------------------------------------------------ */

struct alloc_opts {
	long fill;		/* seed, GD_NO_SEED: not filled */
	double hold;
};

static const struct gd_opt alloc_options[] = {
	{ "fill", GD_OPT_SEED, offsetof(struct alloc_opts, fill), "SEED",
	  "write the pattern of SEED over the buffer (under a whole-buffer sync)",
	  NULL },
	HOLD_OPTION(struct alloc_opts),
	{ NULL, 0, 0, NULL, NULL, NULL },
};

int cmd_alloc(struct gd *g, int argc, char **argv)
{
	struct alloc_opts o = { .fill = GD_NO_SEED };
	struct gd_access_opts a;
	struct gd_buf_opts bo;
	struct gd_buf b;
	bool ok = true;
	int err;

	gd_buf_opts_init(&bo);
	gd_access_opts_init(&a);
	{
		const struct gd_optset sets[] = {
			GD_OPTSET(gd_buf_options, &bo),
			GD_OPTSET(gd_access_options, &a),
			GD_OPTSET(alloc_options, &o),
		};

		gd_parse(g, argc, argv, sets, GD_ARRAY_SIZE(sets));
	}
	if (bo.have_uuid)
		gd_usage("alloc takes --size, not --uuid");
	gd_get_buf(g, &bo, &b);
	if (o.fill != GD_NO_SEED) {
		struct gd_access_opts w = a;

		/* the owner fills the whole buffer under a whole-buffer sync */
		if (w.sync == GD_SYNC_RANGED)
			w.sync = GD_SYNC_DMABUF;
		err = gd_write_range(g, &w, &b, 0, b.size, o.fill);
		if (err)
			gd_fail(g, err, "fill with pattern %ld", o.fill);
		gd_out(g, "crc_alg=fnv1a64");
		gd_out(g, "fnv1a64=%016" PRIx64, gd_fnv64(b.map, b.size));
	}
	if (o.hold)
		ok = gd_hold(g, &a, &b, o.hold);
	if (!ok && !g->failed)
		g->failed++;
	return gd_finish(g);
}

/* ------------------------------------------------------------------ */
/* import                                                             */
/* ------------------------------------------------------------------ */

struct import_opts {
	long verify_seed;
	long write_seed;
	bool print_crc;
	bool twice;
	struct gd_fnv_arg expect_fnv;
	double hold;
};

#define IO(f) offsetof(struct import_opts, f)

static const struct gd_opt import_options[] = {
	{ "verify-seed", GD_OPT_SEED, IO(verify_seed), "S",
	  "check: the range has the pattern of S", NULL },
	{ "expect-fnv", GD_OPT_FN, IO(expect_fnv), "HEX",
	  "check: the range's FNV-1a 64", gd_parse_fnv },
	{ "print-crc", GD_OPT_FLAG, IO(print_crc), NULL,
	  "read the range (also with --write-seed)", NULL },
	{ "write-seed", GD_OPT_SEED, IO(write_seed), "S",
	  "then write the pattern of S over the range", NULL },
	{ "twice", GD_OPT_FLAG, IO(twice), NULL,
	  "check: a second IMPORT gives the same dma-buf", NULL },
	HOLD_OPTION(struct import_opts),
	{ NULL, 0, 0, NULL, NULL, NULL },
};

int cmd_import(struct gd *g, int argc, char **argv)
{
	struct import_opts o = {
		.verify_seed = GD_NO_SEED, .write_seed = GD_NO_SEED,
	};
	struct gd_range_opts r = { 0 };
	struct gd_access_opts a;
	struct gd_buf_opts bo;
	uint64_t off, len;
	struct gd_buf b;
	int err;

	gd_buf_opts_init(&bo);
	gd_access_opts_init(&a);
	{
		const struct gd_optset sets[] = {
			GD_OPTSET(gd_buf_options, &bo),
			GD_OPTSET(gd_access_options, &a),
			GD_OPTSET(gd_range_options, &r),
			GD_OPTSET(import_options, &o),
		};

		gd_parse(g, argc, argv, sets, GD_ARRAY_SIZE(sets));
	}
	if (!bo.have_uuid)
		gd_usage("import needs --uuid");
	gd_get_buf(g, &bo, &b);
	gd_out(g, "host_backed=%d", !!(b.flags & VIRTIO_DMABUF_BUF_HOST_BACKED));
	gd_out(g, "read_only=%d", !!(b.flags & VIRTIO_DMABUF_BUF_READ_ONLY));
	gd_out(g, "own=%d", !!(b.flags & VIRTIO_DMABUF_BUF_OWN));

	if (o.twice) {
		struct gd_buf b2;
		bool same;

		gd_import(g, b.dev, bo.uuid, bo.no_cloexec, gd_import_flags(&bo),
			  &b2);
		same = gd_same_file(b.fd, b2.fd);
		gd_out(g, "second_fd=%d", b2.fd);
		gd_out(g, "second_same_dmabuf=%d", same);
		gd_check_u64(g, "a second IMPORT of the UUID gives the same dma-buf",
			     same, 1);
		close(b2.fd);
	}

	gd_range_of(g, &r, &b, &off, &len);
	gd_out(g, "offset=%" PRIu64, off);
	gd_out(g, "len=%" PRIu64, len);
	if (o.verify_seed != GD_NO_SEED || o.print_crc || o.expect_fnv.set ||
	    o.write_seed == GD_NO_SEED) {
		err = gd_read_range(g, &a, &b, off, len, o.verify_seed,
				    &o.expect_fnv);
		if (err && err != EILSEQ)
			gd_fail(g, err, "read [%" PRIu64 ",+%" PRIu64 ")", off, len);
	}
	if (o.write_seed != GD_NO_SEED) {
		err = gd_write_range(g, &a, &b, off, len, o.write_seed);
		if (err)
			gd_fail(g, err, "write [%" PRIu64 ",+%" PRIu64 ")", off, len);
	}
	if (o.hold && !gd_hold(g, &a, &b, o.hold) && !g->failed)
		g->failed++;
	return gd_finish(g);
}

/* ------------------------------------------------------------------ */
/* info                                                               */
/* ------------------------------------------------------------------ */

struct info_opts {
	double hold;
};

static const struct gd_opt info_options[] = {
	HOLD_OPTION(struct info_opts),
	{ NULL, 0, 0, NULL, NULL, NULL },
};

int cmd_info(struct gd *g, int argc, char **argv)
{
	struct info_opts o = { 0 };
	struct gd_access_opts a;
	struct gd_buf_opts bo;
	struct gd_buf b;
	int err;

	gd_buf_opts_init(&bo);
	gd_access_opts_init(&a);
	{
		const struct gd_optset sets[] = {
			GD_OPTSET(gd_buf_options, &bo),
			GD_OPTSET(gd_access_options, &a),
			GD_OPTSET(info_options, &o),
		};

		gd_parse(g, argc, argv, sets, GD_ARRAY_SIZE(sets));
	}
	gd_get_buf(g, &bo, &b);
	err = gd_print_info(g, &b, NULL);
	if (err)
		gd_fail(g, err, "VIRTIO_DMABUF_IOC_INFO");
	gd_out(g, "dmabuf_size=%" PRIu64, b.map_size);
	if (o.hold && !gd_hold(g, &a, &b, o.hold) && !g->failed)
		g->failed++;
	return gd_finish(g);
}
