// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
/*
 * vdmabuf-test: libvdmabuf through its public header only.
 *
 *   vdmabuf-test           what needs no device: UUID text, the error
 *                          convention (-errno and errno) on wrong input
 *                          and on fds that are not our device
 *   vdmabuf-test --device  that, then the real driver (a guest with
 *                          /dev/virtio-dmabuf<N>): alloc with each kind of
 *                          flag, info, ranged syncs, import by UUID text,
 *                          the driver's errors as -errno
 *
 * Prints one TAP line per check ("ok - ..." / "not ok - ...: got vs want",
 * as dmabuf-guest does) and "checks=N failed=M"; exits 0 only if none failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vdmabuf.h>

struct t {
	unsigned int checks, failed;
};

static bool check(struct t *t, bool ok, const char *what, long got, long want)
{
	t->checks++;
	if (ok) {
		printf("ok - %s\n", what);
		return true;
	}
	t->failed++;
	printf("not ok - %s: %ld vs %ld\n", what, got, want);
	return false;
}

static bool eq(struct t *t, const char *what, long got, long want)
{
	return check(t, got == want, what, got, want);
}

/* a call that must fail with -err and leave err in errno */
static void fails(struct t *t, const char *what, int ret, int err)
{
	char w[160];

	int got = errno;

	snprintf(w, sizeof(w), "%s: -%s", what, strerrorname_np(err));
	if (check(t, ret == -err && got == err, w, ret, -err) || ret != -err)
		return;
	printf("# errno is %d, not %d\n", got, err);
}

static void offline(struct t *t)
{
	const char *canon = "0123abcd-4567-89ef-0a1b-2c3d4e5f6789";
	uint8_t u[VDMABUF_UUID_SIZE], keep[VDMABUF_UUID_SIZE];
	char s[VDMABUF_UUID_STR_LEN];
	struct vdmabuf_info info;
	struct vdmabuf_buffer b;
	int fd;

	eq(t, "uuid parse: upper case, dashes anywhere", vdmabuf_uuid_parse("0123ABCD4-567-89EF0A1B-2C3D4E5F6789", u), 0);
	check(t, !strcmp(vdmabuf_uuid_format(u, s), canon), "uuid format: lower case 8-4-4-4-12", 0, 0);
	eq(t, "uuid: byte 0 and 15", u[0] << 8 | u[15], 0x0189);
	memcpy(keep, u, sizeof(u));
	fails(t, "uuid parse: 31 digits", vdmabuf_uuid_parse("0123abcd-4567-89ef-0a1b-2c3d4e5f678", u), EINVAL);
	fails(t, "uuid parse: 33 digits", vdmabuf_uuid_parse("0123abcd-4567-89ef-0a1b-2c3d4e5f67890", u), EINVAL);
	fails(t, "uuid parse: not hex", vdmabuf_uuid_parse("0123abcd-4567-89ef-0a1b-2c3d4e5f678g", u), EINVAL);
	fails(t, "uuid parse: empty", vdmabuf_uuid_parse("", u), EINVAL);
	fails(t, "uuid parse: NULL", vdmabuf_uuid_parse(NULL, u), EINVAL);
	check(t, !memcmp(u, keep, sizeof(u)), "uuid parse: a refused text leaves the uuid alone", 0, 0);
	check(t, !strcmp(vdmabuf_version(), "1.0"), "version 1.0", 0, 0);

	fails(t, "open of a path that is not there", vdmabuf_open("/nonexistent/virtio-dmabuf0"), ENOENT);
	fails(t, "open_index of a device that is not there", vdmabuf_open_index(4000000000U), ENOENT);
	fails(t, "close(-1)", vdmabuf_close(-1), EBADF);
	fails(t, "alloc on fd -1", vdmabuf_alloc(-1, 4096, 0, 0, 0, &b), EBADF);
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (!check(t, fd >= 0, "open /dev/null", fd, 0))
		return;
	fails(t, "alloc on a file that is not the device", vdmabuf_alloc(fd, 4096, 0, 0, 0, &b), ENOTTY);
	fails(t, "import on a file that is not the device", vdmabuf_import(fd, u, 0, 0, &b), ENOTTY);
	fails(t, "import of a NULL uuid", vdmabuf_import(fd, NULL, 0, 0, &b), EINVAL);
	fails(t, "info on a file that is not the device", vdmabuf_info(fd, fd, &info), ENOTTY);
	fails(t, "info into NULL", vdmabuf_info(fd, fd, NULL), EINVAL);
	fails(t, "device_info into NULL", vdmabuf_device_info(fd, NULL), EINVAL);
	fails(t, "sync_start without READ or WRITE", vdmabuf_sync_start(fd, fd, 0, 0, 1, 0), EINVAL);
	fails(t, "sync_start with END in access", vdmabuf_sync_start(fd, fd, VDMABUF_SYNC_READ | VDMABUF_SYNC_END, 0, 1, 0), EINVAL);
	fails(t, "sync_end with START in access", vdmabuf_sync_end(fd, fd, VDMABUF_SYNC_WRITE | VDMABUF_SYNC_START, 0, 1), EINVAL);
	fails(t, "sync on a file that is not the device", vdmabuf_sync(fd, fd, VDMABUF_SYNC_READ | VDMABUF_SYNC_START, 0, 1, 0), ENOTTY);
	eq(t, "close /dev/null", vdmabuf_close(fd), 0);
}

static bool cloexec(int fd)
{
	int f = fcntl(fd, F_GETFD);

	return f >= 0 && (f & FD_CLOEXEC);
}

/* the real driver: fixed number of checks (the VM suite plans them) */
static void device(struct t *t)
{
	const size_t size = 8193;	/* not a page multiple */
	struct vdmabuf_device_info di;
	struct vdmabuf_buffer a, b, c;
	struct vdmabuf_info info;
	char s[VDMABUF_UUID_STR_LEN];
	uint8_t *pa, *pb, u[VDMABUF_UUID_SIZE];
	int dev, fd, nul, i, bad = 0;

	dev = vdmabuf_open(NULL);
	if (!check(t, dev >= 0, "open the first device", dev, 0))
		return;
	eq(t, "device_info", vdmabuf_device_info(dev, &di), 0);
	check(t, di.max_bytes > 0 && di.max_buffers > 0 && di.sync_timeout_ms > 0, "device_info: limits set", (long)di.max_bytes, 1);
	fd = vdmabuf_alloc(dev, size, VDMABUF_BUF_READ_ONLY, 0, 0, &a);
	if (!check(t, fd >= 0, "alloc 8193 B READ_ONLY", fd, 0))
		return;
	eq(t, "alloc: the fd returned is out->fd", a.fd, fd);
	eq(t, "alloc: size", (long)a.size, (long)size);
	eq(t, "alloc: flags OWN", a.flags, VDMABUF_BUF_OWN);
	eq(t, "alloc: share_flags READ_ONLY", a.share_flags, VDMABUF_BUF_READ_ONLY);
	eq(t, "alloc: reserved words zero", a.reserved[0] | a.reserved[1] | a.reserved[2], 0);
	eq(t, "alloc: close-on-exec by default", cloexec(fd), 1);
	eq(t, "info", vdmabuf_info(dev, fd, &info), 0);
	eq(t, "info: kind OWN", info.kind, VDMABUF_KIND_OWN);
	eq(t, "info: size", (long)info.size, (long)size);
	eq(t, "info: share_flags READ_ONLY", info.share_flags, VDMABUF_BUF_READ_ONLY);
	eq(t, "info: device is device_info's index", info.device, di.index);
	check(t, !memcmp(info.uuid, a.uuid, VDMABUF_UUID_SIZE), "info: uuid is alloc's", 0, 0);

	pa = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (!check(t, pa != MAP_FAILED, "mmap the allocation", errno, 0))
		return;
	eq(t, "sync_start WRITE [4095, 8193)", vdmabuf_sync_start(dev, fd, VDMABUF_SYNC_WRITE, 4095, size - 4095, 1000), 0);
	for (i = 4095; i < (int)size; i++)
		pa[i] = (uint8_t)(i * 7 + 3);
	eq(t, "sync_end WRITE [4095, 8193)", vdmabuf_sync_end(dev, fd, VDMABUF_SYNC_WRITE, 4095, size - 4095), 0);

	/* import by the UUID's text: a new fd of the same buffer */
	eq(t, "uuid text round trip", vdmabuf_uuid_parse(vdmabuf_uuid_format(a.uuid, s), u), 0);
	fd = vdmabuf_import(dev, u, 0, VDMABUF_FD_NO_CLOEXEC, &b);
	if (!check(t, fd >= 0 && fd != a.fd, "import by uuid: a new fd", fd, 0))
		return;
	eq(t, "import: size", (long)b.size, (long)size);
	eq(t, "import: flags OWN (this guest's own buffer)", b.flags & VDMABUF_BUF_OWN, VDMABUF_BUF_OWN);
	eq(t, "import with NO_CLOEXEC: no close-on-exec", cloexec(fd), 0);
	pb = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (!check(t, pb != MAP_FAILED, "mmap the import", errno, 0))
		return;
	eq(t, "sync_start READ [0, 8193) on the import", vdmabuf_sync_start(dev, fd, VDMABUF_SYNC_READ, 0, size, 0), 0);
	for (i = 0; i < (int)size; i++)
		bad += pb[i] != (i < 4095 ? 0 : (uint8_t)(i * 7 + 3));
	eq(t, "import reads the bytes written (zero before 4095)", bad, 0);
	eq(t, "sync_end READ on the import", vdmabuf_sync_end(dev, fd, VDMABUF_SYNC_READ, 0, size), 0);

	/* the driver's errors, as -errno */
	fails(t, "sync_end without a start", vdmabuf_sync_end(dev, fd, VDMABUF_SYNC_READ, 0, 4096), EPERM);
	fails(t, "sync_start past the end", vdmabuf_sync_start(dev, fd, VDMABUF_SYNC_READ, 4096, size, 0), EINVAL);
	fails(t, "sync with START and END", vdmabuf_sync(dev, fd, VDMABUF_SYNC_READ | VDMABUF_SYNC_START | VDMABUF_SYNC_END, 0, 1, 0), EINVAL);
	fails(t, "import of an unknown uuid", vdmabuf_import(dev, (const uint8_t[VDMABUF_UUID_SIZE]){ 0x42 }, 0, 0, &c), ENOENT);
	fails(t, "alloc of 0 bytes", vdmabuf_alloc(dev, 0, 0, 0, 0, &c), EINVAL);
	fails(t, "alloc with an unknown alloc flag (passed through)", vdmabuf_alloc(dev, 4096, 0, 1U << 31, 0, &c), EINVAL);
	fails(t, "alloc with an unknown fd flag (passed through)", vdmabuf_alloc(dev, 4096, 0, 0, 1U << 31, &c), EINVAL);
	nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
	fails(t, "info of an fd that is not a dma-buf", vdmabuf_info(dev, nul, &info), EINVAL);
	close(nul);
	munmap(pa, size);
	munmap(pb, size);
	close(a.fd);
	close(b.fd);
	fails(t, "info of a closed fd", vdmabuf_info(dev, a.fd, &info), EBADF);
	eq(t, "close the device", vdmabuf_close(dev), 0);
}

int main(int argc, char **argv)
{
	struct t t = { 0, 0 };

	if (argc > 2 || (argc == 2 && strcmp(argv[1], "--device"))) {
		fprintf(stderr, "usage: vdmabuf-test [--device]\n");
		return 2;
	}
	offline(&t);
	if (argc == 2)
		device(&t);
	printf("checks=%u failed=%u\n", t.checks, t.failed);
	return t.failed ? 1 : 0;
}
