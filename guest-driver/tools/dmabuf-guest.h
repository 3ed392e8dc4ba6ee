/* SPDX-License-Identifier: GPL-2.0 */
/*
 * dmabuf-guest: guest-side test tool for the virtio dma-buf driver.
 *
 * What the files offer each other:
 *   gd-out.c       key=value output, TAP checks, errors, errno names, parsing
 *   gd-opts.c      per-subcommand option tables (getopt_long built from them)
 *   gd-pattern.c   the test pattern and FNV-1a 64 (shared with the host)
 *   gd-dev.c       the device: open, ALLOC, IMPORT, INFO, syncs, mmap
 *   gd-access.c    ranged reads/writes of a buffer with syncs, and the
 *                  hold loop (a buffer kept open, driven by commands on stdin)
 *   cmd-*.c        the subcommands, one struct of options each
 *   main.c         the subcommand table
 *
 * No globals: every function gets the run's context (struct gd).
 */
#ifndef DMABUF_GUEST_H
#define DMABUF_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define GD_NO_SEED	(-1L)
#define GD_NO_ERRNO	(-1)

/* ------------------------------------------------------------------ */
/* the run's context: output, the expected outcome, the TAP counts    */
/* ------------------------------------------------------------------ */

struct gd {
	const char *cmd;	/* subcommand name */
	FILE *out;		/* key=value and TAP lines (stderr for cat) */
	const char *dev_path;	/* --dev */
	int expect_errno;	/* --expect-errno: GD_NO_ERRNO, 0 (OK) or an errno */
	unsigned int checks;	/* TAP lines printed */
	unsigned int failed;	/* of them "not ok" */
};

void gd_out(struct gd *g, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * TAP: "ok - <what>" or "not ok - <what>: <got> vs <want>" (the guest
 * scripts of tests/ number them per case). Each returns the check's result.
 */
bool gd_check(struct gd *g, bool ok, const char *what, const char *got,
	      const char *want);
bool gd_check_str(struct gd *g, const char *what, const char *got,
		  const char *want);
bool gd_check_u64(struct gd *g, const char *what, uint64_t got, uint64_t want);
bool gd_check_hex(struct gd *g, const char *what, uint64_t got, uint64_t want);
/* min <= got <= max (ms with 3 decimals); max < 0: no upper bound */
bool gd_check_ms(struct gd *g, const char *what, double got, double min,
		 double max);
void gd_skip(struct gd *g, const char *what, const char *why);

/*
 * A failed step (err: a positive errno): prints status= and error=, decides
 * against --expect-errno (a TAP line either way) and exits: 0 if this was
 * the expected failure, 1 otherwise.
 */
void __attribute__((noreturn, format(printf, 3, 4)))
gd_fail(struct gd *g, int err, const char *fmt, ...);

/*
 * The end of a subcommand that did not fail: status=OK (or EILSEQ if a check
 * failed); with --expect-errno other than OK a "not ok" line. Returns the
 * exit status: 0 only if every check passed.
 */
int gd_finish(struct gd *g);

void __attribute__((noreturn)) gd_usage(const char *msg);

const char *gd_errno_name(int err);
int gd_errno_from_name(const char *name);	/* -1 if unknown */

uint64_t gd_parse_u64(const char *s, const char *what);	/* K/M/G suffixes */
void gd_parse_uuid(const char *s, uint8_t *uuid);
const char *gd_uuid_str(const uint8_t *u, char *buf);	/* buf: 37 bytes */
uint64_t gd_now_ns(void);
void gd_sleep_ms(uint32_t ms);

/* ------------------------------------------------------------------ */
/* options                                                            */
/* ------------------------------------------------------------------ */

enum gd_opt_kind {
	GD_OPT_FLAG,		/* bool = true */
	GD_OPT_U64,		/* uint64_t, K/M/G suffixes */
	GD_OPT_U32,		/* uint32_t */
	GD_OPT_SEED,		/* long, 32-bit value; GD_NO_SEED when absent */
	GD_OPT_STR,		/* const char * */
	GD_OPT_FN,		/* fn(base + off, arg) */
};

struct gd_opt {
	const char *name;
	enum gd_opt_kind kind;
	size_t off;		/* of the field in the options struct */
	const char *arg;	/* metavariable for --help; NULL: no argument */
	const char *help;
	void (*fn)(void *field, const char *arg);	/* GD_OPT_FN */
};

/* one table of options and the struct it fills */
struct gd_optset {
	const struct gd_opt *opts;
	void *base;
};

#define GD_OPTSET(table, ptr) { (table), (ptr) }

/*
 * Parse argv (argv[0] is the subcommand) into the sets; --dev and
 * --expect-errno go into g, --help prints the tables and exits.
 */
void gd_parse(struct gd *g, int argc, char **argv, const struct gd_optset *sets,
	      size_t nr_sets);
void gd_print_opts(FILE *f, const struct gd_opt *opts);

/* ------------------------------------------------------------------ */
/* the test pattern and checksum                                      */
/* ------------------------------------------------------------------ */

void gd_fill_pattern(uint8_t *p, uint64_t off, uint64_t len, uint32_t seed);
/* first offset whose byte differs from the pattern, or UINT64_MAX */
uint64_t gd_check_pattern(const uint8_t *p, uint64_t off, uint64_t len,
			  uint32_t seed);
uint8_t gd_pattern_byte(uint64_t i, uint32_t seed);
uint64_t gd_fnv64(const uint8_t *p, uint64_t len);

/* an expected checksum (--expect-fnv HEX): GD_OPT_FN with gd_parse_fnv */
struct gd_fnv_arg {
	uint64_t value;
	bool set;
};
void gd_parse_fnv(void *field, const char *arg);

/* ------------------------------------------------------------------ */
/* the device and its buffers                                         */
/* ------------------------------------------------------------------ */

enum gd_sync_mode { GD_SYNC_RANGED, GD_SYNC_DMABUF, GD_SYNC_NONE };

/* expected properties of a buffer, asserted when it was got (TAP) */
struct gd_buf_expect {
	uint64_t size;		/* 0: not asserted */
	int cloexec;		/* -1: not asserted */
	int host_backed;
	int read_only;
	int own;
	int mapped;		/* VIRTIO_DMABUF_BUF_MAPPED: mapped in place */
};

/* --uuid U (import) or --size N (allocate) */
struct gd_buf_opts {
	uint8_t uuid[16];
	bool have_uuid;
	uint64_t size;
	bool have_size;
	uint32_t share_flags;	/* --read-only, --host-only */
	uint32_t alloc_flags;	/* --contiguous */
	bool no_cloexec;
	/*
	 * --no-map, or DMABUF_GUEST_NO_MAP=1 in the environment: IMPORT with
	 * VIRTIO_DMABUF_IMPORT_NO_MAP (a copy even where the device could map)
	 */
	bool no_map;
	struct gd_buf_expect expect;
};

extern const struct gd_opt gd_buf_options[];
/* the defaults, and no_map from $DMABUF_GUEST_NO_MAP ("1": set) */
void gd_buf_opts_init(struct gd_buf_opts *o);
/* VIRTIO_DMABUF_IMPORT_* of an IMPORT with these options */
uint32_t gd_import_flags(const struct gd_buf_opts *o);

/* how a range is accessed: the sync around it */
struct gd_access_opts {
	enum gd_sync_mode sync;
	uint32_t timeout_ms;		/* START bound, 0: the device's */
	uint32_t hold_access_ms;	/* keep the access this long */
};

extern const struct gd_opt gd_access_options[];
void gd_access_opts_init(struct gd_access_opts *o);

/* --offset O --len L (0: to the end) */
struct gd_range_opts {
	uint64_t offset;
	uint64_t len;
};

extern const struct gd_opt gd_range_options[];

struct gd_buf {
	int dev;		/* /dev/virtio-dmabuf<N>, -1 once closed */
	int fd;
	uint64_t size;		/* registered size */
	uint64_t map_size;	/* dma-buf size (page multiple) */
	uint8_t uuid[16];
	uint32_t flags;
	uint8_t *map;
	bool map_writable;
};

int gd_open_dev(struct gd *g);
void gd_alloc(struct gd *g, int dev, const struct gd_buf_opts *o,
	      struct gd_buf *b);
void gd_import(struct gd *g, int dev, const uint8_t *uuid, bool no_cloexec,
	       uint32_t import_flags, struct gd_buf *b);
/* open the device, import (--uuid) or allocate (--size), print and assert */
void gd_get_buf(struct gd *g, const struct gd_buf_opts *o, struct gd_buf *b);
void gd_buf_map(struct gd *g, struct gd_buf *b, bool write);
bool gd_same_file(int fd1, int fd2);

/* one ranged SYNC ioctl; 0 or a positive errno */
int gd_ranged_sync(int dev, int fd, uint32_t flags, uint64_t off, uint64_t len,
		   uint32_t timeout_ms);
/* one DMA_BUF_IOCTL_SYNC; 0 or a positive errno */
int gd_dmabuf_sync(int fd, uint64_t flags);
/* begin or end an access in the mode of @a; 0 or a positive errno */
int gd_access(const struct gd_access_opts *a, struct gd_buf *b, bool write,
	      bool start, uint64_t off, uint64_t len);
/* the same; exits through gd_fail on an error */
void gd_access_or_fail(struct gd *g, const struct gd_access_opts *a,
		       struct gd_buf *b, bool write, bool start, uint64_t off,
		       uint64_t len);

/* INFO: prints info_* keys; 0 or a positive errno; *state if not NULL */
int gd_print_info(struct gd *g, struct gd_buf *b, uint32_t *state);

/* VIRTIO_DMABUF_SHM_* as text ("ACTIVE", ...; "?" if unknown) */
const char *gd_shm_state_name(uint32_t state);
int gd_shm_state_from_name(const char *name);	/* -1 if unknown */

/* the range of --offset/--len in the buffer; exits if outside */
void gd_range_of(struct gd *g, const struct gd_range_opts *r,
		 const struct gd_buf *b, uint64_t *off, uint64_t *len);

/* ------------------------------------------------------------------ */
/* accesses with checks                                               */
/* ------------------------------------------------------------------ */

/*
 * Read a range under a read access: print fnv1a64=, verify the pattern of
 * @seed (a TAP check) unless seed is GD_NO_SEED, compare with @want_fnv if
 * it is set (a TAP check). Returns 0, a positive errno of a sync (then
 * nothing was checked), or EILSEQ if a check failed.
 */
int gd_read_range(struct gd *g, const struct gd_access_opts *a,
		  struct gd_buf *b, uint64_t off, uint64_t len, long seed,
		  const struct gd_fnv_arg *want_fnv);
/* write the pattern of @seed over a range under a write access; 0 or errno */
int gd_write_range(struct gd *g, const struct gd_access_opts *a,
		   struct gd_buf *b, uint64_t off, uint64_t len, uint32_t seed);

/*
 * Keep the buffer open for @hold seconds (< 0: until stdin closes) after
 * printing ready=1, running the commands of stdin (gd-access.c). Returns
 * false if a command's check failed.
 */
bool gd_hold(struct gd *g, const struct gd_access_opts *a, struct gd_buf *b,
	     double hold);

/* ------------------------------------------------------------------ */
/* the subcommands                                                    */
/* ------------------------------------------------------------------ */

struct gd_cmd {
	const char *name;
	int (*run)(struct gd *g, int argc, char **argv);
	const char *summary;
};

int cmd_devinfo(struct gd *g, int argc, char **argv);
int cmd_shm_info(struct gd *g, int argc, char **argv);
int cmd_alloc(struct gd *g, int argc, char **argv);
int cmd_import(struct gd *g, int argc, char **argv);
int cmd_info(struct gd *g, int argc, char **argv);
int cmd_raw_sync(struct gd *g, int argc, char **argv);
int cmd_wait_byte(struct gd *g, int argc, char **argv);
int cmd_bench_read(struct gd *g, int argc, char **argv);
int cmd_vgem(struct gd *g, int argc, char **argv);
int cmd_setname(struct gd *g, int argc, char **argv);
int cmd_kimport(struct gd *g, int argc, char **argv);
int cmd_cat(struct gd *g, int argc, char **argv);
int cmd_puts(struct gd *g, int argc, char **argv);

#define GD_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif /* DMABUF_GUEST_H */
