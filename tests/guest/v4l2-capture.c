// SPDX-License-Identifier: GPL-2.0
/*
 * v4l2-capture: a real V4L2 importer of our dma-bufs, for the VM suite's case 15
 * (v4l2-import). The vivid test driver captures a deterministic frame (colour
 * bars, no OSD text, no movement) into:
 *
 *   --ref-out FILE   vivid's own buffers (V4L2_MEMORY_MMAP): the reference frame,
 *                    written to FILE
 *   --ref FILE       our dma-bufs (V4L2_MEMORY_DMABUF): a buffer this guest
 *                    allocates (ALLOC, --contiguous: VIRTIO_DMABUF_ALLOC_CONTIGUOUS)
 *                    or imports (--uuid U, --no-map), compared byte for byte with
 *                    the reference frame in FILE; --hold -1 keeps the buffers
 *                    open after "ready=1" until stdin says "quit" (or closes)
 *
 * vivid starts streaming with two buffers queued: the buffer under test and a
 * helper buffer (allocated like --contiguous says); the capture ends when the
 * buffer under test comes back filled. Around it the program holds write access
 * through DMA_BUF_IOCTL_SYNC (V4L2 does not call begin/end_cpu_access), so a
 * copied import is written back to its origin at the END.
 *
 * Output: key=value lines and TAP lines ("ok - ..." / "not ok - ...: got vs
 * want"), as dmabuf-guest prints them (tests/guest/lib.sh numbers them). Exit 0
 * only if every check passed. Our device's calls go through libvdmabuf
 * (guest-driver/lib). Statically linked for the test initramfs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/dma-buf.h>
#include <linux/videodev2.h>

#include "vdmabuf.h"

#define NBUF 2			/* vivid streams with two buffers queued */

static int failed;

static void out(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static void tap(bool ok, const char *what, const char *got, const char *want)
{
	if (ok) {
		out("ok - %s", what);
	} else {
		out("not ok - %s: %s vs %s", what, got, want);
		failed++;
	}
}

/* a step that must work: a not-ok line with its errno name, and exit */
static void die(int err, const char *what)
{
	char got[96];

	snprintf(got, sizeof(got), "%s (%s)", strerrorname_np(err) ?: "?",
		 strerror(err));
	out("error=%s: %s", what, got);
	tap(false, what, got, "OK");
	out("status=%s", strerrorname_np(err) ?: "FAIL");
	exit(1);
}

static uint64_t fnv64(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	while (n--) {
		h ^= *p++;
		h *= 0x100000001b3ULL;
	}
	return h;
}

struct opts {
	const char *dev;
	unsigned int width, height;
	uint32_t fourcc;
	const char *ref_out;	/* MMAP reference */
	const char *ref;	/* DMABUF capture, compared with this file */
	const char *uuid;	/* import this buffer as the one under test */
	bool contiguous;
	bool no_map;
	int expect_qbuf_errno;	/* 0: QBUF must work */
	bool hold;
};

/* ------------------------------------------------------------------ */
/* the V4L2 device                                                    */
/* ------------------------------------------------------------------ */

static int xioctl(int fd, unsigned long req, void *arg)
{
	int r;

	do {
		r = ioctl(fd, req, arg);
	} while (r && errno == EINTR);
	return r;
}

/* the first video capture node of the vivid driver */
static int open_vivid(const char *dev, char *path, size_t len)
{
	struct v4l2_capability cap;
	int i, fd;

	for (i = 0; i < 64; i++) {
		if (dev)
			snprintf(path, len, "%s", dev);
		else
			snprintf(path, len, "/dev/video%d", i);
		fd = open(path, O_RDWR);
		if (fd >= 0) {
			memset(&cap, 0, sizeof(cap));
			if (!xioctl(fd, VIDIOC_QUERYCAP, &cap) &&
			    !strcmp((char *)cap.driver, "vivid") &&
			    (cap.device_caps & V4L2_CAP_VIDEO_CAPTURE) &&
			    (cap.device_caps & V4L2_CAP_STREAMING))
				return fd;
			close(fd);
		}
		if (dev)
			break;
	}
	errno = ENODEV;
	return -1;
}

/* a menu control by its name, set to the item named @item (or index @idx) */
static void set_menu(int fd, const char *name, const char *item, int idx)
{
	struct v4l2_queryctrl q = { .id = V4L2_CTRL_FLAG_NEXT_CTRL };
	struct v4l2_querymenu m;
	struct v4l2_control c;
	char what[128];

	snprintf(what, sizeof(what), "control '%s' = '%s'", name,
		 item ?: "(index)");
	while (!xioctl(fd, VIDIOC_QUERYCTRL, &q)) {
		if (!strcmp((char *)q.name, name))
			break;
		q.id |= V4L2_CTRL_FLAG_NEXT_CTRL;
	}
	if (strcmp((char *)q.name, name))
		die(ENOENT, what);
	c.id = q.id;
	c.value = idx;
	if (item) {
		for (c.value = q.minimum; c.value <= q.maximum; c.value++) {
			memset(&m, 0, sizeof(m));
			m.id = q.id;
			m.index = c.value;
			if (!xioctl(fd, VIDIOC_QUERYMENU, &m) &&
			    !strcmp((char *)m.name, item))
				break;
		}
		if (c.value > q.maximum)
			die(ENOENT, what);
	}
	if (xioctl(fd, VIDIOC_S_CTRL, &c))
		die(errno, what);
	out("ctrl=%s:%d", name, c.value);
}

/* input 0, a fixed format and a frame that does not change */
static struct v4l2_pix_format setup(int fd, const struct opts *o)
{
	struct v4l2_format f = { .type = V4L2_BUF_TYPE_VIDEO_CAPTURE };
	char got[96], want[96];
	int input = 0;

	if (xioctl(fd, VIDIOC_S_INPUT, &input))
		die(errno, "VIDIOC_S_INPUT 0");
	set_menu(fd, "Test Pattern", NULL, 0);	/* 75% colour bars */
	set_menu(fd, "OSD Text Mode", "None", 0);
	set_menu(fd, "Horizontal Movement", "No Movement", 0);
	set_menu(fd, "Vertical Movement", "No Movement", 0);
	f.fmt.pix.width = o->width;
	f.fmt.pix.height = o->height;
	f.fmt.pix.pixelformat = o->fourcc;
	f.fmt.pix.field = V4L2_FIELD_NONE;
	if (xioctl(fd, VIDIOC_S_FMT, &f))
		die(errno, "VIDIOC_S_FMT");
	snprintf(got, sizeof(got), "%ux%u %.4s stride %u size %u",
		 f.fmt.pix.width, f.fmt.pix.height,
		 (char *)&f.fmt.pix.pixelformat, f.fmt.pix.bytesperline,
		 f.fmt.pix.sizeimage);
	snprintf(want, sizeof(want), "%ux%u %.4s", o->width, o->height,
		 (const char *)&o->fourcc);
	tap(f.fmt.pix.width == o->width && f.fmt.pix.height == o->height &&
	    f.fmt.pix.pixelformat == o->fourcc &&
	    f.fmt.pix.sizeimage >= f.fmt.pix.bytesperline * o->height,
	    "VIDIOC_S_FMT: the format asked for", got, want);
	out("format=%s", got);
	return f.fmt.pix;
}

/* wait for a filled buffer and dequeue it (10 s at most) */
static void dqbuf(int fd, struct v4l2_buffer *b, unsigned int memory)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r;

	r = poll(&p, 1, 10000);
	if (r <= 0)
		die(r ? errno : ETIMEDOUT, "poll for a captured frame");
	memset(b, 0, sizeof(*b));
	b->type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
	b->memory = memory;
	if (xioctl(fd, VIDIOC_DQBUF, b))
		die(errno, "VIDIOC_DQBUF");
	if (b->flags & V4L2_BUF_FLAG_ERROR)
		die(EIO, "VIDIOC_DQBUF: a buffer marked V4L2_BUF_FLAG_ERROR");
}

static void reqbufs(int fd, unsigned int memory, unsigned int count)
{
	struct v4l2_requestbuffers rb = {
		.count = count,
		.type = V4L2_BUF_TYPE_VIDEO_CAPTURE,
		.memory = memory,
	};
	char what[64];

	snprintf(what, sizeof(what), "VIDIOC_REQBUFS %u %s", count,
		 memory == V4L2_MEMORY_MMAP ? "MMAP" : "DMABUF");
	if (xioctl(fd, VIDIOC_REQBUFS, &rb))
		die(errno, what);
	if (count && rb.count != count)
		die(ENOMEM, what);
}

static void stream(int fd, bool on)
{
	int type = V4L2_BUF_TYPE_VIDEO_CAPTURE;

	if (xioctl(fd, on ? VIDIOC_STREAMON : VIDIOC_STREAMOFF, &type))
		die(errno, on ? "VIDIOC_STREAMON" : "VIDIOC_STREAMOFF");
}

/* ------------------------------------------------------------------ */
/* --ref-out: vivid's own buffers                                     */
/* ------------------------------------------------------------------ */

/* distinct 32-bit pixel values in the first @width pixels (up to 64) */
static unsigned int distinct_pixels(const void *row, unsigned int width)
{
	const uint32_t *px = row;
	uint32_t seen[64];
	unsigned int i, j, n = 0;

	for (i = 0; i < width && n < 64; i++) {
		for (j = 0; j < n && seen[j] != px[i]; j++)
			;
		if (j == n)
			seen[n++] = px[i];
	}
	return n;
}

static void capture_mmap(int fd, const struct v4l2_pix_format *pix,
			 const char *path)
{
	struct v4l2_buffer b;
	void *map[NBUF];
	size_t len[NBUF];
	unsigned int i, n;
	char got[32];
	int out_fd;

	reqbufs(fd, V4L2_MEMORY_MMAP, NBUF);
	for (i = 0; i < NBUF; i++) {
		memset(&b, 0, sizeof(b));
		b.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
		b.memory = V4L2_MEMORY_MMAP;
		b.index = i;
		if (xioctl(fd, VIDIOC_QUERYBUF, &b))
			die(errno, "VIDIOC_QUERYBUF");
		len[i] = b.length;
		map[i] = mmap(NULL, b.length, PROT_READ, MAP_SHARED, fd,
			      b.m.offset);
		if (map[i] == MAP_FAILED)
			die(errno, "mmap of a vivid buffer");
		if (xioctl(fd, VIDIOC_QBUF, &b))
			die(errno, "VIDIOC_QBUF (MMAP)");
	}
	stream(fd, true);
	dqbuf(fd, &b, V4L2_MEMORY_MMAP);
	stream(fd, false);
	out("ref_bytesused=%u", b.bytesused);
	snprintf(got, sizeof(got), "%u", b.bytesused);
	tap(b.bytesused == pix->sizeimage, "reference frame: bytesused = sizeimage",
	    got, "sizeimage");
	out_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (out_fd < 0 ||
	    write(out_fd, map[b.index], pix->sizeimage) != (ssize_t)pix->sizeimage ||
	    close(out_fd))
		die(errno ?: EIO, "write the reference frame");
	out("fnv1a64=%016" PRIx64, fnv64(map[b.index], pix->sizeimage));
	/* a frame of one colour would make every comparison below trivial */
	n = distinct_pixels(map[b.index], pix->width);
	snprintf(got, sizeof(got), "%u", n);
	out("ref_row0_colours=%u", n);
	tap(n >= 8, "reference frame: its first row has the 8 colour bars (distinct pixel values)",
	    got, ">= 8");
	for (i = 0; i < NBUF; i++)
		munmap(map[i], len[i]);
	reqbufs(fd, V4L2_MEMORY_MMAP, 0);
	tap(true, "reference frame captured into vivid's own (MMAP) buffers", "", "");
}

/* ------------------------------------------------------------------ */
/* --ref: our dma-bufs                                                */
/* ------------------------------------------------------------------ */

struct dbuf {
	int fd;
	uint64_t size;
	uint8_t uuid[VDMABUF_UUID_SIZE];
	uint32_t flags;
};

static void our_alloc(int dev, uint64_t size, bool contiguous, struct dbuf *d)
{
	struct vdmabuf_buffer vb;
	int fd;

	fd = vdmabuf_alloc(dev, size, 0,
			   contiguous ? VDMABUF_ALLOC_CONTIGUOUS : 0, 0, &vb);
	if (fd < 0)
		die(-fd, contiguous ? "VIRTIO_DMABUF_IOC_ALLOC (contiguous)" :
		    "VIRTIO_DMABUF_IOC_ALLOC");
	d->fd = fd;
	d->size = vb.size;
	d->flags = vb.flags;
	memcpy(d->uuid, vb.uuid, 16);
}

static void our_import(int dev, const char *uuid, bool no_map, struct dbuf *d)
{
	struct vdmabuf_buffer vb;
	uint8_t u[VDMABUF_UUID_SIZE];
	int fd;

	if (vdmabuf_uuid_parse(uuid, u))
		die(EINVAL, "parse --uuid");
	fd = vdmabuf_import(dev, u, no_map ? VDMABUF_IMPORT_NO_MAP : 0, 0, &vb);
	if (fd < 0)
		die(-fd, "VIRTIO_DMABUF_IOC_IMPORT");
	d->fd = fd;
	d->size = vb.size;
	d->flags = vb.flags;
	memcpy(d->uuid, vb.uuid, 16);
}

static int dbuf_sync(const struct dbuf *d, uint64_t flags)
{
	struct dma_buf_sync s = { .flags = flags };

	return xioctl(d->fd, DMA_BUF_IOCTL_SYNC, &s) ? errno : 0;
}

static void hold_loop(void)
{
	char line[256];

	out("ready=1");
	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\n")] = 0;
		if (!strcmp(line, "quit"))
			break;
		out("done=%s", line);
	}
}

static void capture_dmabuf(int fd, const struct v4l2_pix_format *pix,
			   const struct opts *o)
{
	struct dbuf d[NBUF];
	struct v4l2_buffer b;
	char s[VDMABUF_UUID_STR_LEN], got[64], what[160];
	const char *kind;
	uint8_t *ref, *p;
	uint64_t off;
	unsigned int i;
	int dev, rfd, err, tries;
	struct stat st;

	rfd = open(o->ref, O_RDONLY);
	if (rfd < 0 || fstat(rfd, &st))
		die(errno, "open the reference frame");
	if ((uint64_t)st.st_size != pix->sizeimage)
		die(EINVAL, "the reference frame's size is not this format's sizeimage");
	ref = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, rfd, 0);
	if (ref == MAP_FAILED)
		die(errno, "mmap the reference frame");

	dev = vdmabuf_open_index(0);
	if (dev < 0)
		die(-dev, "open /dev/virtio-dmabuf0");
	/* d[0]: the buffer under test; d[1]: the helper vivid needs to stream */
	if (o->uuid)
		our_import(dev, o->uuid, o->no_map, &d[0]);
	else
		our_alloc(dev, pix->sizeimage, o->contiguous, &d[0]);
	our_alloc(dev, pix->sizeimage, o->contiguous, &d[1]);
	out("uuid=%s", vdmabuf_uuid_format(d[0].uuid, s));
	out("size=%" PRIu64, d[0].size);
	out("flags=0x%x", d[0].flags);
	out("mapped=%d", !!(d[0].flags & VDMABUF_BUF_MAPPED));
	out("contiguous=%d", o->contiguous && !o->uuid);
	kind = o->uuid ? (d[0].flags & VDMABUF_BUF_MAPPED ?
			  "an imported buffer (mapped in place)" :
			  "an imported buffer (a copy)") :
	       o->contiguous ? "a contiguous guest buffer" : "a guest buffer";
	if (d[0].size < pix->sizeimage)
		die(ENOSPC, "the buffer under test is smaller than a frame");

	for (i = 0; i < NBUF; i++)
		if ((err = dbuf_sync(&d[i], DMA_BUF_SYNC_START | DMA_BUF_SYNC_WRITE)))
			die(err, "DMA_BUF_IOCTL_SYNC START WRITE");
	reqbufs(fd, V4L2_MEMORY_DMABUF, NBUF);
	for (i = 0; i < NBUF; i++) {
		memset(&b, 0, sizeof(b));
		b.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
		b.memory = V4L2_MEMORY_DMABUF;
		b.index = i;
		b.m.fd = d[i].fd;
		if (xioctl(fd, VIDIOC_QBUF, &b)) {
			err = errno;
			snprintf(what, sizeof(what), "VIDIOC_QBUF of %s%s", kind,
				 i ? " (the helper)" : "");
			if (!o->expect_qbuf_errno || i)
				die(err, what);
			snprintf(got, sizeof(got), "%s", strerrorname_np(err) ?: "?");
			tap(err == o->expect_qbuf_errno, what, got,
			    strerrorname_np(o->expect_qbuf_errno));
			out("qbuf_errno=%s", got);
			reqbufs(fd, V4L2_MEMORY_DMABUF, 0);
			out("status=%s", failed ? "FAIL" : "OK");
			exit(failed ? 1 : 0);
		}
		if (!i && o->expect_qbuf_errno) {
			snprintf(what, sizeof(what), "VIDIOC_QBUF of %s", kind);
			tap(false, what, "OK", strerrorname_np(o->expect_qbuf_errno));
		}
	}
	stream(fd, true);
	for (tries = 0;; tries++) {
		dqbuf(fd, &b, V4L2_MEMORY_DMABUF);
		if (b.index == 0)
			break;
		if (tries > 20)
			die(ETIMEDOUT, "the buffer under test never came back");
		if (xioctl(fd, VIDIOC_QBUF, &b))
			die(errno, "VIDIOC_QBUF (the helper again)");
	}
	stream(fd, false);
	reqbufs(fd, V4L2_MEMORY_DMABUF, 0);
	for (i = 0; i < NBUF; i++)
		if ((err = dbuf_sync(&d[i], DMA_BUF_SYNC_END | DMA_BUF_SYNC_WRITE)))
			die(err, "DMA_BUF_IOCTL_SYNC END WRITE");
	out("bytesused=%u", b.bytesused);
	snprintf(got, sizeof(got), "%u", b.bytesused);
	tap(b.bytesused == pix->sizeimage, "frame in our buffer: bytesused = sizeimage",
	    got, "sizeimage");

	/* the frame, read through our own mapping under a read access */
	p = mmap(NULL, d[0].size, PROT_READ, MAP_SHARED, d[0].fd, 0);
	if (p == MAP_FAILED)
		die(errno, "mmap our dma-buf");
	if ((err = dbuf_sync(&d[0], DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ)))
		die(err, "DMA_BUF_IOCTL_SYNC START READ");
	for (off = 0; off < pix->sizeimage && p[off] == ref[off]; off++)
		;
	out("fnv1a64=%016" PRIx64, fnv64(p, pix->sizeimage));
	out("ref_fnv1a64=%016" PRIx64, fnv64(ref, pix->sizeimage));
	if ((err = dbuf_sync(&d[0], DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ)))
		die(err, "DMA_BUF_IOCTL_SYNC END READ");
	snprintf(what, sizeof(what), "frame captured into %s (%u B) = vivid's reference frame, byte for byte",
		 kind, pix->sizeimage);
	snprintf(got, sizeof(got), "first difference at byte %" PRIu64, off);
	tap(off == pix->sizeimage, what, got, "none");
	munmap(p, d[0].size);
	if (o->hold)
		hold_loop();
	for (i = 0; i < NBUF; i++)
		close(d[i].fd);
	close(dev);
	munmap(ref, st.st_size);
	close(rfd);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: v4l2-capture [--dev /dev/videoN] [--width W] [--height H] [--fourcc XR24]\n"
		"         (--ref-out FILE | --ref FILE [--uuid U [--no-map]] [--contiguous]\n"
		"          [--expect-qbuf-errno EFAULT] [--hold -1])\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "dev", required_argument, NULL, 'd' },
		{ "width", required_argument, NULL, 'w' },
		{ "height", required_argument, NULL, 'h' },
		{ "fourcc", required_argument, NULL, 'f' },
		{ "ref-out", required_argument, NULL, 'o' },
		{ "ref", required_argument, NULL, 'r' },
		{ "uuid", required_argument, NULL, 'u' },
		{ "contiguous", no_argument, NULL, 'c' },
		{ "no-map", no_argument, NULL, 'n' },
		{ "expect-qbuf-errno", required_argument, NULL, 'e' },
		{ "hold", required_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { .width = 1920, .height = 1080,
			  .fourcc = V4L2_PIX_FMT_XBGR32 };
	struct v4l2_pix_format pix;
	char path[64];
	int c, fd;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'd': o.dev = optarg; break;
		case 'w': o.width = strtoul(optarg, NULL, 0); break;
		case 'h': o.height = strtoul(optarg, NULL, 0); break;
		case 'f':
			if (strlen(optarg) != 4)
				usage();
			o.fourcc = v4l2_fourcc(optarg[0], optarg[1], optarg[2], optarg[3]);
			break;
		case 'o': o.ref_out = optarg; break;
		case 'r': o.ref = optarg; break;
		case 'u': o.uuid = optarg; break;
		case 'c': o.contiguous = true; break;
		case 'n': o.no_map = true; break;
		case 'e':
			if (strcmp(optarg, "EFAULT"))
				usage();
			o.expect_qbuf_errno = EFAULT;
			break;
		case 'H': o.hold = true; break;
		default: usage();
		}
	}
	if (optind != argc || !o.ref_out == !o.ref || !o.width || !o.height)
		usage();
	out("cmd=v4l2-capture");
	fd = open_vivid(o.dev, path, sizeof(path));
	if (fd < 0)
		die(errno, "open vivid's video capture node");
	out("video=%s", path);
	pix = setup(fd, &o);
	if (o.ref_out)
		capture_mmap(fd, &pix, o.ref_out);
	else
		capture_dmabuf(fd, &pix, &o);
	close(fd);
	out("status=%s", failed ? "FAIL" : "OK");
	return failed ? 1 : 0;
}
