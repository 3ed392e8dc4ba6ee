// SPDX-License-Identifier: GPL-2.0
/*
 * dmabuf-guest: the test pattern and the FNV-1a 64 checksum, defined once in
 * tests/kimport/dmabuf_kimport.h (shared with the kernel importer; the host's
 * Rust code computes the same).
 */
#include <stdlib.h>
#include <string.h>

#include "dmabuf-guest.h"
#include "dmabuf_kimport.h"		/* guest-driver/tests/kimport */

void gd_fill_pattern(uint8_t *p, uint64_t off, uint64_t len, uint32_t seed)
{
	uint64_t i;

	for (i = 0; i < len; i++)
		p[i] = dmabuf_pattern_byte(off + i, seed);
}

uint64_t gd_check_pattern(const uint8_t *p, uint64_t off, uint64_t len,
			  uint32_t seed)
{
	uint64_t i;

	for (i = 0; i < len; i++)
		if (p[i] != dmabuf_pattern_byte(off + i, seed))
			return off + i;
	return UINT64_MAX;
}

uint8_t gd_pattern_byte(uint64_t i, uint32_t seed)
{
	return dmabuf_pattern_byte(i, seed);
}

uint64_t gd_fnv64(const uint8_t *p, uint64_t len)
{
	return dmabuf_fnv64_update(DMABUF_FNV64_BASIS, p, len);
}

void gd_parse_fnv(void *field, const char *arg)
{
	struct gd_fnv_arg *f = field;
	char *end;

	if (strlen(arg) != 16)
		gd_usage("--expect-fnv: 16 hex digits");
	f->value = strtoull(arg, &end, 16);
	if (*end)
		gd_usage("--expect-fnv: 16 hex digits");
	f->set = true;
}
