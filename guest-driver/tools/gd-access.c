// SPDX-License-Identifier: GPL-2.0
/*
 * dmabuf-guest: reading and writing ranges of a buffer with the syncs around
 * them, and the hold loop: a buffer kept open and driven through stdin.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/virtio_dmabuf.h>

#include "dmabuf-guest.h"
#include "vdmabuf.h"

/* a pattern mismatch: keys for the host's log, a TAP line */
static bool check_bytes(struct gd *g, const struct gd_buf *b, uint64_t off,
			uint64_t len, uint32_t seed, const char *how)
{
	uint64_t bad = gd_check_pattern(b->map + off, off, len, seed);
	char what[128], got[64], want[16];

	snprintf(what, sizeof(what), "%s [%" PRIu64 ",+%" PRIu64
		 ") has pattern %u", how, off, len, seed);
	if (bad == UINT64_MAX) {
		gd_out(g, "verify=ok");
		return gd_check(g, true, what, "", "");
	}
	gd_out(g, "verify=fail");
	gd_out(g, "mismatch=%" PRIu64, bad);
	gd_out(g, "got=0x%02x", b->map[bad]);
	gd_out(g, "want=0x%02x", gd_pattern_byte(bad, seed));
	snprintf(got, sizeof(got), "byte %" PRIu64 " is 0x%02x", bad, b->map[bad]);
	snprintf(want, sizeof(want), "0x%02x", gd_pattern_byte(bad, seed));
	return gd_check(g, false, what, got, want);
}

int gd_read_range(struct gd *g, const struct gd_access_opts *a,
		  struct gd_buf *b, uint64_t off, uint64_t len, long seed,
		  const struct gd_fnv_arg *want_fnv)
{
	uint64_t t0, sum;
	bool ok = true;
	char what[96];
	double ms;
	int err;

	gd_buf_map(g, b, false);
	t0 = gd_now_ns();
	err = gd_access(a, b, false, true, off, len);
	ms = (gd_now_ns() - t0) / 1e6;
	if (err)
		return err;
	sum = gd_fnv64(b->map + off, len);
	gd_out(g, "fnv1a64=%016" PRIx64, sum);
	if (seed != GD_NO_SEED)
		ok &= check_bytes(g, b, off, len, seed, "read");
	if (want_fnv && want_fnv->set) {
		snprintf(what, sizeof(what), "read [%" PRIu64 ",+%" PRIu64
			 "): FNV-1a 64 is the expected one", off, len);
		ok &= gd_check_hex(g, what, sum, want_fnv->value);
	}
	if (a->hold_access_ms)
		gd_sleep_ms(a->hold_access_ms);
	err = gd_access(a, b, false, false, off, len);
	gd_out(g, "elapsed_ms=%.3f", ms);
	if (err)
		return err;
	return ok ? 0 : EILSEQ;
}

int gd_write_range(struct gd *g, const struct gd_access_opts *a,
		   struct gd_buf *b, uint64_t off, uint64_t len, uint32_t seed)
{
	uint64_t t0;
	int err;

	gd_buf_map(g, b, true);
	t0 = gd_now_ns();
	err = gd_access(a, b, true, true, off, len);
	if (err)
		return err;
	gd_out(g, "write_sync_ms=%.3f", (gd_now_ns() - t0) / 1e6);
	gd_fill_pattern(b->map + off, off, len, seed);
	if (a->hold_access_ms)
		gd_sleep_ms(a->hold_access_ms);
	err = gd_access(a, b, true, false, off, len);
	if (err)
		return err;
	gd_out(g, "write_fnv1a64=%016" PRIx64, gd_fnv64(b->map + off, len));
	return 0;
}

/* ------------------------------------------------------------------ */
/* the hold loop                                                      */
/* ------------------------------------------------------------------ */

/* a holder command: its words, the buffer, what it did */
struct hold_cmd {
	char *w[8];
	int n;
	bool fails;		/* "fails ERRNO ...": the expected outcome */
	int want;		/* the errno it should end with (0: OK) */
};

static bool parse_u64_word(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 0);
	return !errno && end != s && !*end;
}

/* [OFF LEN] at w[i]: the range, or the whole buffer */
static bool word_range(const struct hold_cmd *c, int i, const struct gd_buf *b,
		       uint64_t *off, uint64_t *len)
{
	*off = 0;
	*len = b->size;
	if (c->n > i && (!parse_u64_word(c->w[i], off) || c->n <= i + 1 ||
			 !parse_u64_word(c->w[i + 1], len)))
		return false;
	return *len && *off <= b->size && *len <= b->size - *off;
}

/* Report a command's errno against what was expected: one TAP line. */
static bool report(struct gd *g, const struct hold_cmd *c, const char *what,
		   int err)
{
	char w[160];

	gd_out(g, "status=%s", gd_errno_name(err));
	if (c->fails) {
		snprintf(w, sizeof(w), "holder: %s fails with %s", what,
			 gd_errno_name(c->want));
		return gd_check_str(g, w, gd_errno_name(err),
				    gd_errno_name(c->want));
	}
	if (err == EILSEQ)	/* the check said it already */
		return false;
	snprintf(w, sizeof(w), "holder: %s", what);
	return gd_check_str(g, w, gd_errno_name(err), "OK");
}

/* ------------------------------------------------------------------ */
/* touch: one byte of the mapping, no sync, under a SIGBUS handler     */
/* ------------------------------------------------------------------ */

/*
 * A revoked mapped import has no pages any more: the driver zapped the user
 * mappings, and the defined result of the next access is SIGBUS (spec 13.4).
 * The handler jumps back to touch_byte(); its jump buffer is the tool's one
 * file-scope variable, since a signal handler gets no context of ours.
 */
static sigjmp_buf touch_env;

static void on_sigbus(int sig)
{
	(void)sig;
	siglongjmp(touch_env, 1);
}

/*
 * Read (or write *byte, then read back) the byte at p. Returns true if the
 * access raised SIGBUS; otherwise *byte is what the byte holds.
 */
static bool touch_byte(volatile uint8_t *p, bool write, uint8_t *byte)
{
	struct sigaction sa, old;
	volatile bool bus = false;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigbus;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &old);
	if (!sigsetjmp(touch_env, 1)) {
		if (write)
			*p = *byte;
		*byte = *p;
	} else {
		bus = true;
	}
	sigaction(SIGBUS, &old, NULL);
	return bus;
}

/*
 * touch OFF [sigbus|0xNN|seed=S], touch-write OFF VALUE [sigbus|ok]: prints
 * touch_off=, sigbus=0|1 and byte= (read, or read back after the write);
 * with an expectation one TAP check, without none. Returns -1 on bad words,
 * else whether the check passed.
 */
static int touch_command(struct gd *g, struct gd_buf *b,
			  const struct hold_cmd *c, bool write)
{
	const char *exp = c->n > (write ? 3 : 2) ? c->w[write ? 3 : 2] : NULL;
	uint64_t off, v = 0, want = 0;
	char what[128], got[32], w[32];
	bool bus, want_bus = false;
	uint8_t byte;

	if (c->n < (write ? 3 : 2) || !parse_u64_word(c->w[1], &off) ||
	    (write && (!parse_u64_word(c->w[2], &v) || v > 0xff)))
		return -1;
	if (exp && !strcmp(exp, "sigbus"))
		want_bus = true;
	else if (exp && write && strcmp(exp, "ok"))
		return -1;
	else if (exp && !write && !strncmp(exp, "seed=", 5)) {
		if (!parse_u64_word(exp + 5, &want))
			return -1;
		want = gd_pattern_byte(off, want & 0xffffffff);
	} else if (exp && !write && !parse_u64_word(exp, &want))
		return -1;
	if (off >= b->map_size)
		return -1;
	/* the mapping the holder has; a first one if it has none */
	gd_buf_map(g, b, write);
	byte = v;
	bus = touch_byte(b->map + off, write, &byte);
	gd_out(g, "touch_off=%" PRIu64, off);
	gd_out(g, "sigbus=%d", bus);
	if (!bus)
		gd_out(g, "byte=0x%02x", byte);
	if (!exp)
		return 1;
	snprintf(what, sizeof(what), "holder: %s byte %" PRIu64
		 " of the mapping, no sync: %s", write ? "write of" : "read of",
		 off, exp);
	if (bus)
		snprintf(got, sizeof(got), "SIGBUS");
	else
		snprintf(got, sizeof(got), "byte 0x%02x", byte);
	if (want_bus)
		return gd_check(g, bus, what, got, "SIGBUS");
	if (write)
		want = v;
	snprintf(w, sizeof(w), "byte 0x%02x", (unsigned int)want);
	return gd_check(g, !bus && byte == want, what, got, w);
}

/* INFO's state, polled without printing; 0 or a positive errno */
static int info_state(const struct gd_buf *b, uint32_t *state)
{
	struct vdmabuf_info info;
	int ret;

	if (b->dev < 0)
		return EBADF;
	ret = vdmabuf_info(b->dev, b->fd, &info);
	if (ret)
		return -ret;
	*state = info.state;
	return 0;
}

static bool sync_words(const char *dir, uint32_t *flags)
{
	*flags = 0;
	if (strchr(dir, 'r'))
		*flags |= VIRTIO_DMABUF_IOC_SYNC_READ;
	if (strchr(dir, 'w'))
		*flags |= VIRTIO_DMABUF_IOC_SYNC_WRITE;
	return *flags && strspn(dir, "rw") == strlen(dir);
}

/* Run one command; false if its check failed. */
static bool hold_command(struct gd *g, const struct gd_access_opts *a,
			 struct gd_buf *b, struct hold_cmd *c)
{
	const char *cmd = c->w[0];
	char what[128];
	uint64_t off, len, seed = 0;
	uint32_t flags, state, tmo = 0;
	int err;

	snprintf(what, sizeof(what), "%s", cmd);
	if (!strcmp(cmd, "info")) {
		uint64_t want = 0, wait_ms = 0, t0 = gd_now_ns();

		if ((c->n >= 2 && !parse_u64_word(c->w[1], &want)) ||
		    (c->n >= 3 && !parse_u64_word(c->w[2], &wait_ms)))
			goto usage;
		/* info STATE WAIT_MS: poll (bounded) until the state is STATE */
		while (c->n >= 3 && !info_state(b, &state) && state != want &&
		       (gd_now_ns() - t0) / 1000000 < wait_ms)
			gd_sleep_ms(20);
		err = gd_print_info(g, b, &state);
		if (c->n >= 3)
			gd_out(g, "info_waited_ms=%.0f", (gd_now_ns() - t0) / 1e6);
		if (!err && c->n >= 2 && !c->fails) {
			snprintf(what, sizeof(what), "holder: INFO state is 0x%" PRIx64,
				 want);
			return gd_check_u64(g, what, state, want);
		}
		return report(g, c, "INFO", err);
	}
	if (!strcmp(cmd, "touch") || !strcmp(cmd, "touch-write")) {
		int r = touch_command(g, b, c, cmd[5] == '-');

		if (r < 0)
			goto usage;
		return r;
	}
	if (!strcmp(cmd, "closedev")) {
		/* only the dma-buf fd (and the mapping) stay open */
		if (b->dev >= 0)
			close(b->dev);
		b->dev = -1;
		gd_out(g, "dev_closed=1");
		return report(g, c, "closed /dev/virtio-dmabuf<N>, kept the dma-buf", 0);
	}
	if (!strcmp(cmd, "start") || !strcmp(cmd, "end")) {
		bool start = cmd[0] == 's';
		uint64_t t0;

		if (c->n < 4 || !sync_words(c->w[1], &flags) ||
		    !word_range(c, 2, b, &off, &len) ||
		    (start && c->n >= 5 && !parse_u64_word(c->w[4], &seed)))
			goto usage;
		tmo = seed;
		flags |= start ? VIRTIO_DMABUF_IOC_SYNC_START :
				 VIRTIO_DMABUF_IOC_SYNC_END;
		t0 = gd_now_ns();
		err = b->dev < 0 ? EBADF :
		      gd_ranged_sync(b->dev, b->fd, flags, off, len, tmo);
		gd_out(g, "ms=%.3f", (gd_now_ns() - t0) / 1e6);
		snprintf(what, sizeof(what), "%s %s [%" PRIu64 ",+%" PRIu64 ")",
			 start ? "START" : "END", c->w[1], off, len);
		return report(g, c, what, err);
	}
	if (!strcmp(cmd, "checksum")) {
		if (!word_range(c, 1, b, &off, &len))
			goto usage;
		err = gd_read_range(g, a, b, off, len, GD_NO_SEED, NULL);
		snprintf(what, sizeof(what), "read [%" PRIu64 ",+%" PRIu64
			 ") under a read access", off, len);
		return report(g, c, what, err);
	}
	if (c->n < 2 || !parse_u64_word(c->w[1], &seed) ||
	    !word_range(c, 2, b, &off, &len))
		goto usage;
	seed &= 0xffffffff;
	if (!strcmp(cmd, "verify")) {
		err = gd_read_range(g, a, b, off, len, seed, NULL);
		/* a good verify printed its ok line */
		if (!err && !c->fails)
			return true;
		return report(g, c, "read under a read access", err);
	}
	if (!strcmp(cmd, "write")) {
		err = gd_write_range(g, a, b, off, len, seed);
		snprintf(what, sizeof(what), "write of pattern %" PRIu64 " over [%"
			 PRIu64 ",+%" PRIu64 ") under a write access", seed, off, len);
		return report(g, c, what, err);
	}
	if (!strcmp(cmd, "peek")) {
		/* what this guest's pages hold now, without a sync */
		gd_buf_map(g, b, false);
		gd_out(g, "fnv1a64=%016" PRIx64, gd_fnv64(b->map + off, len));
		return check_bytes(g, b, off, len, seed, "no sync: this guest's copy of");
	}
	if (!strcmp(cmd, "poke")) {
		gd_buf_map(g, b, true);
		gd_fill_pattern(b->map + off, off, len, seed);
		gd_out(g, "poke_fnv1a64=%016" PRIx64, gd_fnv64(b->map + off, len));
		snprintf(what, sizeof(what), "no sync: wrote pattern %" PRIu64
			 " over this guest's copy of [%" PRIu64 ",+%" PRIu64 ")",
			 seed, off, len);
		return report(g, c, what, 0);
	}
usage:
	gd_out(g, "error=bad holder command: %s", cmd);
	return gd_check(g, false, "holder: a command it knows", cmd,
			"checksum|verify|write|peek|poke|touch|touch-write|info|closedev|start|end");
}

bool gd_hold(struct gd *g, const struct gd_access_opts *a, struct gd_buf *b,
	     double hold)
{
	uint64_t deadline = hold > 0 ? gd_now_ns() + (uint64_t)(hold * 1e9) : 0;
	bool ok = true, stdin_open = true;
	char line[256];

	gd_out(g, "ready=1");
	for (;;) {
		struct pollfd pfd = { .fd = 0, .events = POLLIN };
		struct hold_cmd c = { .n = 0 };
		int timeout = -1, n;
		char *save, *t;

		if (deadline) {
			uint64_t now = gd_now_ns();

			if (now >= deadline)
				break;
			timeout = (deadline - now) / 1000000 + 1;
		}
		if (!stdin_open) {
			if (!deadline)
				break;
			gd_sleep_ms(timeout);
			continue;
		}
		n = poll(&pfd, 1, timeout);
		if (n <= 0)
			continue;
		if (!fgets(line, sizeof(line), stdin)) {
			stdin_open = false;
			if (hold < 0 || !deadline)
				break;
			continue;
		}
		for (t = strtok_r(line, " \t\n", &save); t && c.n < 8;
		     t = strtok_r(NULL, " \t\n", &save))
			c.w[c.n++] = t;
		if (!c.n)
			continue;
		if (!strcmp(c.w[0], "quit"))
			break;
		if (!strcmp(c.w[0], "fails") && c.n >= 3) {
			c.fails = true;
			c.want = gd_errno_from_name(c.w[1]);
			memmove(c.w, c.w + 2, (c.n - 2) * sizeof(c.w[0]));
			c.n -= 2;
		}
		ok &= hold_command(g, a, b, &c);
		gd_out(g, "done=%s", c.w[0]);
	}
	return ok;
}
