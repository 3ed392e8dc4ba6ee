// SPDX-License-Identifier: GPL-2.0
/*
 * dmabuf-guest: per-subcommand option tables. Each subcommand lists the
 * tables it takes (struct gd_optset: a table and the struct it fills); the
 * getopt_long table is built from them. Adding an option to a subcommand is
 * a field in its options struct and one line in its table.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "dmabuf-guest.h"

#define GD_MAX_OPTS 64

static void set_dev(void *field, const char *arg)
{
	*(const char **)field = arg;
}

static void set_expect_errno(void *field, const char *arg)
{
	int e = gd_errno_from_name(arg);

	if (e < 0)
		gd_usage("--expect-errno: unknown errno name");
	*(int *)field = e;
}

/* options of every subcommand; they fill struct gd */
static const struct gd_opt common_options[] = {
	{ "dev", GD_OPT_FN, offsetof(struct gd, dev_path), "PATH",
	  "the device node (default /dev/virtio-dmabuf0)", set_dev },
	{ "expect-errno", GD_OPT_FN, offsetof(struct gd, expect_errno), "NAME",
	  "the run passes only if it fails with this errno (OK: succeeds)",
	  set_expect_errno },
	{ NULL, 0, 0, NULL, NULL, NULL },
};

void gd_print_opts(FILE *f, const struct gd_opt *opts)
{
	char left[64];

	for (; opts->name; opts++) {
		snprintf(left, sizeof(left), "--%s%s%s", opts->name,
			 opts->arg ? " " : "", opts->arg ? opts->arg : "");
		fprintf(f, "    %-26s %s\n", left, opts->help);
	}
}

static void help_exit(struct gd *g, const struct gd_optset *sets,
		      size_t nr_sets)
{
	size_t i;

	printf("usage: dmabuf-guest %s [options]\n", g->cmd);
	for (i = 0; i < nr_sets; i++)
		gd_print_opts(stdout, sets[i].opts);
	gd_print_opts(stdout, common_options);
	exit(0);
}

static void set_opt(const struct gd_opt *o, void *base, const char *arg)
{
	void *field = (char *)base + o->off;
	char what[64];

	snprintf(what, sizeof(what), "bad --%s", o->name);
	switch (o->kind) {
	case GD_OPT_FLAG:
		*(bool *)field = true;
		break;
	case GD_OPT_U64:
		*(uint64_t *)field = gd_parse_u64(arg, what);
		break;
	case GD_OPT_U32: {
		uint64_t v = gd_parse_u64(arg, what);

		if (v > UINT32_MAX)
			gd_usage(what);
		*(uint32_t *)field = v;
		break;
	}
	case GD_OPT_SEED:
		*(long *)field = gd_parse_u64(arg, what) & 0xffffffff;
		break;
	case GD_OPT_STR:
		*(const char **)field = arg;
		break;
	case GD_OPT_FN:
		o->fn(field, arg);
		break;
	}
}

void gd_parse(struct gd *g, int argc, char **argv, const struct gd_optset *sets,
	      size_t nr_sets)
{
	struct gd_optset all[16];
	struct option lo[GD_MAX_OPTS + 2];
	const struct gd_opt *which[GD_MAX_OPTS];
	void *base[GD_MAX_OPTS];
	size_t i, n = 0;
	int c, idx;

	if (nr_sets + 1 > GD_ARRAY_SIZE(all))
		gd_usage("too many option tables");
	memcpy(all, sets, nr_sets * sizeof(*sets));
	all[nr_sets].opts = common_options;
	all[nr_sets].base = g;
	for (i = 0; i <= nr_sets; i++) {
		const struct gd_opt *o;

		for (o = all[i].opts; o->name; o++) {
			if (n == GD_MAX_OPTS)
				gd_usage("too many options");
			lo[n].name = o->name;
			lo[n].has_arg = o->arg ? required_argument : no_argument;
			lo[n].flag = NULL;
			lo[n].val = 0;
			which[n] = o;
			base[n] = all[i].base;
			n++;
		}
	}
	lo[n].name = "help";
	lo[n].has_arg = no_argument;
	lo[n].flag = NULL;
	lo[n].val = 'h';
	memset(&lo[n + 1], 0, sizeof(lo[n + 1]));

	optind = 1;
	while ((c = getopt_long(argc, argv, "", lo, &idx)) != -1) {
		if (c == 'h')
			help_exit(g, sets, nr_sets);
		if (c != 0 || (size_t)idx >= n)
			gd_usage("bad option");
		set_opt(which[idx], base[idx], optarg);
	}
	if (optind != argc)
		gd_usage("unexpected argument");
}
