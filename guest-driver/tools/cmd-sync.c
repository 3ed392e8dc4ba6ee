// SPDX-License-Identifier: GPL-2.0
/*
 * dmabuf-guest: the sync subcommands: raw-sync (ranged SYNC ioctls one by
 * one), wait-byte (a mailbox polled through syncs), bench-read.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_dmabuf.h>

#include "dmabuf-guest.h"

/* ------------------------------------------------------------------ */
/* raw-sync                                                           */
/* ------------------------------------------------------------------ */

#define MAX_OPS 32

/* --expect-op I,STATUS[,MIN_MS[,MAX_MS]] */
struct op_expect {
	bool set;
	int err;
	double min_ms, max_ms;	/* max < 0: none */
};

struct raw_ops {
	const char *spec[MAX_OPS];
	int n;
	struct op_expect expect[MAX_OPS];
};

struct raw_sync_opts {
	struct raw_ops ops;
	double hold;
};

static void add_op(void *field, const char *arg)
{
	struct raw_ops *ops = field;

	if (ops->n == MAX_OPS)
		gd_usage("too many --op");
	ops->spec[ops->n++] = arg;
}

static void add_expect(void *field, const char *arg)
{
	struct raw_ops *ops = field;
	char status[16] = "";
	double lo = 0, hi = -1;
	unsigned int i;
	int n;

	n = sscanf(arg, "%u,%15[^,],%lf,%lf", &i, status, &lo, &hi);
	if (n < 2 || i >= MAX_OPS || gd_errno_from_name(status) < 0)
		gd_usage("--expect-op I,STATUS[,MIN_MS[,MAX_MS]]");
	ops->expect[i].set = true;
	ops->expect[i].err = gd_errno_from_name(status);
	ops->expect[i].min_ms = n >= 3 ? lo : -1;
	ops->expect[i].max_ms = n >= 4 ? hi : -1;
}

static void set_hold(void *field, const char *arg)
{
	*(double *)field = atof(arg);
}

static const struct gd_opt raw_sync_options[] = {
	{ "op", GD_OPT_FN, offsetof(struct raw_sync_opts, ops),
	  "start|end,r|w|rw,OFF,LEN[,TIMEOUT_MS] | sleep,MS",
	  "one ranged SYNC (repeatable, in order)", add_op },
	{ "expect-op", GD_OPT_FN, offsetof(struct raw_sync_opts, ops),
	  "I,STATUS[,MIN_MS[,MAX_MS]]",
	  "check: op I ends with STATUS (OK or an errno) after MIN..MAX ms",
	  add_expect },
	{ "hold", GD_OPT_FN, offsetof(struct raw_sync_opts, hold), "S|-1",
	  "then keep the buffer open, commands on stdin", set_hold },
	{ NULL, 0, 0, NULL, NULL, NULL },
};

/* Parse "start|end,r|w|rw,OFFSET,LEN[,TIMEOUT_MS]" */
static void parse_op(const char *spec, uint32_t *flags, uint64_t *off,
		     uint64_t *len, uint32_t *timeout)
{
	char kind[8], dir[4];
	unsigned long long a, b;
	unsigned int t = 0;

	if (sscanf(spec, "%7[^,],%3[^,],%lli,%lli,%u", kind, dir, &a, &b, &t) < 4)
		gd_usage("--op start|end,r|w|rw,OFFSET,LEN[,TIMEOUT_MS]");
	*flags = 0;
	if (!strcmp(kind, "start"))
		*flags |= VIRTIO_DMABUF_IOC_SYNC_START;
	else if (!strcmp(kind, "end"))
		*flags |= VIRTIO_DMABUF_IOC_SYNC_END;
	else if (strcmp(kind, "none"))
		gd_usage("--op: start, end or none");
	if (strchr(dir, 'r'))
		*flags |= VIRTIO_DMABUF_IOC_SYNC_READ;
	if (strchr(dir, 'w'))
		*flags |= VIRTIO_DMABUF_IOC_SYNC_WRITE;
	*off = a;
	*len = b;
	*timeout = t;
}

int cmd_raw_sync(struct gd *g, int argc, char **argv)
{
	struct raw_sync_opts o = { 0 };
	struct gd_access_opts a;
	struct gd_buf_opts bo;
	struct gd_buf b;
	int i, last = 0, last_op = -1;
	char what[128];

	gd_buf_opts_init(&bo);
	gd_access_opts_init(&a);
	{
		const struct gd_optset sets[] = {
			GD_OPTSET(gd_buf_options, &bo),
			GD_OPTSET(raw_sync_options, &o),
		};

		gd_parse(g, argc, argv, sets, GD_ARRAY_SIZE(sets));
	}
	gd_get_buf(g, &bo, &b);
	for (i = 0; i < o.ops.n; i++) {
		const struct op_expect *e = &o.ops.expect[i];
		uint32_t flags, timeout;
		uint64_t off, len, t0;
		double ms;
		int err;

		if (!strncmp(o.ops.spec[i], "sleep,", 6)) {
			gd_sleep_ms(gd_parse_u64(o.ops.spec[i] + 6, "bad sleep,MS"));
			continue;
		}
		parse_op(o.ops.spec[i], &flags, &off, &len, &timeout);
		/* printed before the ioctl: an observer sees that it was issued */
		gd_out(g, "op%d_issue=%s", i, o.ops.spec[i]);
		t0 = gd_now_ns();
		err = gd_ranged_sync(b.dev, b.fd, flags, off, len, timeout);
		ms = (gd_now_ns() - t0) / 1e6;
		gd_out(g, "op%d=%s", i, o.ops.spec[i]);
		gd_out(g, "op%d_status=%s", i, gd_errno_name(err));
		gd_out(g, "op%d_ms=%.3f", i, ms);
		last = err;
		last_op = i;
		if (e->set) {
			snprintf(what, sizeof(what), "SYNC %s ends with %s", o.ops.spec[i],
				 gd_errno_name(e->err));
			gd_check_str(g, what, gd_errno_name(err), gd_errno_name(e->err));
			if (e->min_ms >= 0) {
				snprintf(what, sizeof(what), "SYNC %s took", o.ops.spec[i]);
				gd_check_ms(g, what, ms, e->min_ms, e->max_ms);
			}
		} else if (err && !(i == o.ops.n - 1 &&
				    g->expect_errno != GD_NO_ERRNO)) {
			snprintf(what, sizeof(what), "SYNC %s", o.ops.spec[i]);
			gd_check_str(g, what, gd_errno_name(err), "OK");
		}
	}
	if (o.hold && !gd_hold(g, &a, &b, o.hold) && !g->failed)
		g->failed++;
	gd_out(g, "status=%s", gd_errno_name(last));
	if (g->expect_errno != GD_NO_ERRNO) {
		/* --expect-errno: the last op's outcome */
		snprintf(what, sizeof(what), "SYNC %s ends with %s",
			 last_op >= 0 ? o.ops.spec[last_op] : "(none)",
			 gd_errno_name(g->expect_errno));
		gd_check_str(g, what, gd_errno_name(last),
			     gd_errno_name(g->expect_errno));
		return g->failed ? 1 : 0;
	}
	/* an op that ended with its expected errno is a success */
	if (last && last_op >= 0 && o.ops.expect[last_op].set)
		last = 0;
	return g->failed || last ? 1 : 0;
}

/* ------------------------------------------------------------------ */
/* wait-byte                                                          */
/* ------------------------------------------------------------------ */

struct wait_byte_opts {
	long value;		/* GD_NO_SEED: none */
	uint64_t offset;
	uint32_t wait_ms;
	uint32_t interval_ms;
	uint32_t timeout_ms;
};

#define WO(f) offsetof(struct wait_byte_opts, f)

static const struct gd_opt wait_byte_options[] = {
	{ "value", GD_OPT_SEED, WO(value), "V", "wait until the byte is V", NULL },
	{ "offset", GD_OPT_U64, WO(offset), "O", "the byte's offset", NULL },
	{ "wait-ms", GD_OPT_U32, WO(wait_ms), "T",
	  "give up after T ms (ETIMEDOUT; default 60000)", NULL },
	{ "interval-ms", GD_OPT_U32, WO(interval_ms), "I",
	  "poll every I ms (default 100)", NULL },
	{ "timeout-ms", GD_OPT_U32, WO(timeout_ms), "T",
	  "bound of each read START", NULL },
	{ NULL, 0, 0, NULL, NULL, NULL },
};

/*
 * A mailbox shared by the host: import it once, then poll, each time with a
 * read sync around the look, until the byte at --offset has --value. The bytes
 * after it, up to a NUL (at most 255), are printed as payload=. Bounded by
 * --wait-ms (ETIMEDOUT).
 */
int cmd_wait_byte(struct gd *g, int argc, char **argv)
{
	struct wait_byte_opts o = {
		.value = GD_NO_SEED, .wait_ms = 60000, .interval_ms = 100,
	};
	uint64_t t0 = gd_now_ns(), len;
	unsigned long polls = 0;
	struct gd_buf_opts bo;
	struct gd_buf b;

	gd_buf_opts_init(&bo);
	{
		const struct gd_optset sets[] = {
			GD_OPTSET(gd_buf_options, &bo),
			GD_OPTSET(wait_byte_options, &o),
		};

		gd_parse(g, argc, argv, sets, GD_ARRAY_SIZE(sets));
	}
	if (o.value == GD_NO_SEED)
		gd_usage("wait-byte needs --value");
	o.value &= 0xff;
	if (!o.interval_ms)
		o.interval_ms = 1;
	gd_get_buf(g, &bo, &b);
	if (o.offset >= b.size)
		gd_fail(g, EINVAL, "--offset %" PRIu64 " outside the buffer", o.offset);
	len = b.size - o.offset < 256 ? b.size - o.offset : 256;
	gd_buf_map(g, &b, false);
	for (;;) {
		char payload[256];
		uint64_t i;
		bool hit;
		int err;

		err = gd_ranged_sync(b.dev, b.fd, VIRTIO_DMABUF_IOC_SYNC_READ |
				     VIRTIO_DMABUF_IOC_SYNC_START, o.offset, len,
				     o.timeout_ms);
		if (err)
			gd_fail(g, err, "sync start read of the mailbox");
		polls++;
		hit = b.map[o.offset] == o.value;
		for (i = 1; hit && i < len && b.map[o.offset + i]; i++) {
			uint8_t c = b.map[o.offset + i];

			payload[i - 1] = c >= 0x20 && c < 0x7f ? c : '?';
		}
		if (hit)
			payload[i - 1] = 0;
		err = gd_ranged_sync(b.dev, b.fd, VIRTIO_DMABUF_IOC_SYNC_READ |
				     VIRTIO_DMABUF_IOC_SYNC_END, o.offset, len, 0);
		if (err)
			gd_fail(g, err, "sync end read of the mailbox");
		if (hit) {
			gd_out(g, "value=%ld", o.value);
			gd_out(g, "payload=%s", payload);
			gd_out(g, "polls=%lu", polls);
			gd_out(g, "waited_ms=%.0f", (gd_now_ns() - t0) / 1e6);
			return gd_finish(g);
		}
		if ((gd_now_ns() - t0) / 1000000 >= o.wait_ms)
			gd_fail(g, ETIMEDOUT, "byte %" PRIu64 " is 0x%02x, not 0x%02lx after %u ms",
				o.offset, b.map[o.offset], o.value, o.wait_ms);
		gd_sleep_ms(o.interval_ms);
	}
}

/* ------------------------------------------------------------------ */
/* bench-read                                                         */
/* ------------------------------------------------------------------ */

struct bench_opts {
	uint32_t rounds;
};

static const struct gd_opt bench_options[] = {
	{ "rounds", GD_OPT_U32, offsetof(struct bench_opts, rounds), "R",
	  "rounds of each (default 9; medians)", NULL },
	{ NULL, 0, 0, NULL, NULL, NULL },
};

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

/* read throughput of the dma-buf (START read, read, END) vs malloc'ed memory */
int cmd_bench_read(struct gd *g, int argc, char **argv)
{
	struct bench_opts o = { .rounds = 9 };
	double *ours, *local, *sync_us, *reads, *ratios;
	struct gd_access_opts a;
	struct gd_buf_opts bo;
	uint64_t sink = 0, len;
	struct gd_buf b;
	unsigned int r;
	uint8_t *mem;

	gd_buf_opts_init(&bo);
	gd_access_opts_init(&a);
	{
		const struct gd_optset sets[] = {
			GD_OPTSET(gd_buf_options, &bo),
			GD_OPTSET(gd_access_options, &a),
			GD_OPTSET(bench_options, &o),
		};

		gd_parse(g, argc, argv, sets, GD_ARRAY_SIZE(sets));
	}
	if (!o.rounds)
		o.rounds = 1;
	gd_get_buf(g, &bo, &b);
	len = b.size & ~7ULL;
	if (!len)
		gd_fail(g, EINVAL, "buffer too small");
	gd_buf_map(g, &b, false);
	mem = malloc(len);
	ours = calloc(o.rounds, sizeof(double));
	local = calloc(o.rounds, sizeof(double));
	sync_us = calloc(o.rounds, sizeof(double));
	reads = calloc(o.rounds, sizeof(double));
	ratios = calloc(o.rounds, sizeof(double));
	if (!mem || !ours || !local || !sync_us || !reads || !ratios)
		gd_fail(g, ENOMEM, "malloc");
	memset(mem, 0x5a, len);

	/* interleave ours and the local floor, one round each at a time */
	for (r = 0; r < o.rounds; r++) {
		uint64_t t0, t1, t2, t3;

		t0 = gd_now_ns();
		gd_access_or_fail(g, &a, &b, false, true, 0, b.size);
		t1 = gd_now_ns();
		sink += read_all(b.map, len);
		t2 = gd_now_ns();
		gd_access_or_fail(g, &a, &b, false, false, 0, b.size);
		t3 = gd_now_ns();
		ours[r] = len / ((t3 - t0) / 1e9) / 1e6;
		reads[r] = len / ((t2 - t1) / 1e9) / 1e6;
		sync_us[r] = (t1 - t0) / 1e3;

		t0 = gd_now_ns();
		sink += read_all(mem, len);
		t1 = gd_now_ns();
		local[r] = len / ((t1 - t0) / 1e9) / 1e6;
		ratios[r] = ours[r] / local[r];
	}
	gd_out(g, "rounds=%u", o.rounds);
	gd_out(g, "bytes=%" PRIu64, len);
	gd_out(g, "dmabuf_read_mbps=%.1f", median(ours, o.rounds));
	gd_out(g, "local_read_mbps=%.1f", median(local, o.rounds));
	gd_out(g, "sync_start_us_median=%.1f", median(sync_us, o.rounds));
	/* the reads alone, without the START and END around them */
	gd_out(g, "dmabuf_read_only_mbps=%.1f", median(reads, o.rounds));
	gd_out(g, "ratio=%.3f", median(ours, o.rounds) / median(local, o.rounds));
	/* each round against the local read right after it: less noisy under load */
	gd_out(g, "round_ratio_median=%.3f", median(ratios, o.rounds));
	gd_out(g, "sink=%" PRIu64, sink & 0xff);
	return gd_finish(g);
}
