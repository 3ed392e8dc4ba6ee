// SPDX-License-Identifier: GPL-2.0
/*
 * dmabuf-guest: guest-side test tool for the virtio dma-buf driver.
 *
 * Every subcommand prints "key=value" lines (first cmd=, last status=) and
 * TAP lines for its checks ("ok - <what>", "not ok - <what>: <got> vs
 * <want>"); it exits 0 only if it did what it was asked and every check
 * passed, 1 otherwise, 2 on bad usage. See guest-driver/README.md.
 */
#include <stdio.h>
#include <string.h>

#include <linux/virtio_dmabuf.h>

#include "dmabuf-guest.h"

static const struct gd_cmd cmds[] = {
	{ "devinfo", cmd_devinfo, "DEVICE_INFO" },
	{ "shm-info", cmd_shm_info, "SHM_INFO: the shared memory region, mapped imports" },
	{ "alloc", cmd_alloc, "ALLOC a buffer, fill it, hold it" },
	{ "import", cmd_import, "IMPORT by UUID, read/verify a range, write it" },
	{ "info", cmd_info, "INFO of an imported or new buffer" },
	{ "raw-sync", cmd_raw_sync, "ranged SYNC ioctls one by one" },
	{ "wait-byte", cmd_wait_byte, "poll a mailbox buffer for a byte" },
	{ "bench-read", cmd_bench_read, "read throughput: dma-buf vs local memory" },
	{ "kimport", cmd_kimport, "run the in-kernel importer (dmabuf_kimport.ko)" },
	{ "vgem", cmd_vgem, "vgem imports (PRIME) and re-exports a dma-buf" },
	{ "setname", cmd_setname, "DMA_BUF_SET_NAME, read back from fdinfo" },
	{ "cat", cmd_cat, "a buffer's text to stdout (key=value on stderr)" },
	{ "puts", cmd_puts, "a file's text into a buffer" },
};

int main(int argc, char **argv)
{
	struct gd g = {
		.out = stdout,
		.dev_path = "/dev/" VIRTIO_DMABUF_DEV_PREFIX "0",
		.expect_errno = GD_NO_ERRNO,
	};
	size_t i;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		printf("usage: dmabuf-guest COMMAND [options]  (dmabuf-guest COMMAND --help)\n");
		for (i = 0; i < GD_ARRAY_SIZE(cmds); i++)
			printf("  %-10s %s\n", cmds[i].name, cmds[i].summary);
		return argc < 2 ? 2 : 0;
	}
	for (i = 0; i < GD_ARRAY_SIZE(cmds); i++) {
		if (strcmp(argv[1], cmds[i].name))
			continue;
		g.cmd = cmds[i].name;
		/* cat's stdout carries the buffer's bytes */
		if (!strcmp(g.cmd, "cat"))
			g.out = stderr;
		gd_out(&g, "cmd=%s", g.cmd);
		return cmds[i].run(&g, argc - 1, argv + 1);
	}
	gd_usage("unknown command");
}
