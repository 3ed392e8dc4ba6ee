// SPDX-License-Identifier: GPL-2.0
/*
 * dmabuf-guest: key=value output, TAP checks, errors and parsing helpers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dmabuf-guest.h"
#include "vdmabuf.h"

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

const char *gd_errno_name(int err)
{
	static char buf[32];
	size_t i;

	if (!err)
		return "OK";
	for (i = 0; i < GD_ARRAY_SIZE(errno_names); i++)
		if (errno_names[i].err == err)
			return errno_names[i].name;
	snprintf(buf, sizeof(buf), "E%d", err);
	return buf;
}

int gd_errno_from_name(const char *name)
{
	size_t i;

	if (!strcmp(name, "OK"))
		return 0;
	for (i = 0; i < GD_ARRAY_SIZE(errno_names); i++)
		if (!strcmp(errno_names[i].name, name))
			return errno_names[i].err;
	return -1;
}

void gd_out(struct gd *g, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(g->out, fmt, ap);
	va_end(ap);
	fputc('\n', g->out);
	fflush(g->out);
}

bool gd_check(struct gd *g, bool ok, const char *what, const char *got,
	      const char *want)
{
	g->checks++;
	if (ok) {
		gd_out(g, "ok - %s", what);
		return true;
	}
	g->failed++;
	gd_out(g, "not ok - %s: %s vs %s", what, got, want);
	return false;
}

bool gd_check_str(struct gd *g, const char *what, const char *got,
		  const char *want)
{
	return gd_check(g, !strcmp(got, want), what, got, want);
}

bool gd_check_u64(struct gd *g, const char *what, uint64_t got, uint64_t want)
{
	char a[24], b[24];

	snprintf(a, sizeof(a), "%" PRIu64, got);
	snprintf(b, sizeof(b), "%" PRIu64, want);
	return gd_check(g, got == want, what, a, b);
}

bool gd_check_hex(struct gd *g, const char *what, uint64_t got, uint64_t want)
{
	char a[24], b[24];

	snprintf(a, sizeof(a), "%016" PRIx64, got);
	snprintf(b, sizeof(b), "%016" PRIx64, want);
	return gd_check(g, got == want, what, a, b);
}

bool gd_check_ms(struct gd *g, const char *what, double got, double min,
		 double max)
{
	char a[32], b[64];

	snprintf(a, sizeof(a), "%.3f ms", got);
	if (max < 0)
		snprintf(b, sizeof(b), ">= %.0f ms", min);
	else
		snprintf(b, sizeof(b), "%.0f..%.0f ms", min, max);
	return gd_check(g, got >= min && (max < 0 || got <= max), what, a, b);
}

void gd_skip(struct gd *g, const char *what, const char *why)
{
	g->checks++;
	gd_out(g, "ok - %s # SKIP %s", what, why);
}

void gd_fail(struct gd *g, int err, const char *fmt, ...)
{
	char msg[256], what[320];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	gd_out(g, "status=%s", gd_errno_name(err));
	gd_out(g, "error=%s: %s", msg, strerror(err));
	if (g->expect_errno == GD_NO_ERRNO || g->expect_errno == 0) {
		snprintf(what, sizeof(what), "%s: %s", g->cmd, msg);
		gd_check(g, false, what, gd_errno_name(err), "OK");
		exit(1);
	}
	gd_out(g, "expected=%s", gd_errno_name(g->expect_errno));
	snprintf(what, sizeof(what), "%s: %s fails with %s", g->cmd, msg,
		 gd_errno_name(g->expect_errno));
	gd_check_str(g, what, gd_errno_name(err),
		     gd_errno_name(g->expect_errno));
	exit(err == g->expect_errno && !g->failed ? 0 : 1);
}

int gd_finish(struct gd *g)
{
	char what[64];

	if (g->expect_errno > 0) {
		snprintf(what, sizeof(what), "%s fails with %s", g->cmd,
			 gd_errno_name(g->expect_errno));
		gd_check(g, false, what, "OK", gd_errno_name(g->expect_errno));
	}
	gd_out(g, "status=%s", g->failed ? "EILSEQ" : "OK");
	return g->failed ? 1 : 0;
}

void gd_usage(const char *msg)
{
	fprintf(stderr, "dmabuf-guest: %s (dmabuf-guest COMMAND --help; guest-driver/README.md)\n",
		msg);
	exit(2);
}

uint64_t gd_parse_u64(const char *s, const char *what)
{
	char *end;
	uint64_t v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		gd_usage(what);
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	}
	if (*end)
		gd_usage(what);
	return v;
}

void gd_parse_uuid(const char *s, uint8_t *uuid)
{
	if (vdmabuf_uuid_parse(s, uuid))
		gd_usage("bad --uuid");
}

const char *gd_uuid_str(const uint8_t *u, char *buf)
{
	return vdmabuf_uuid_format(u, buf);
}

uint64_t gd_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

void gd_sleep_ms(uint32_t ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}
