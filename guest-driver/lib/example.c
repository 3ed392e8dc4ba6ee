// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
/* libvdmabuf: allocate, write, share by UUID, import, read back (README.md) */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <vdmabuf.h>

int main(void)
{
	struct vdmabuf_buffer a, b;
	char text[VDMABUF_UUID_STR_LEN], *p, *q;
	uint8_t uuid[VDMABUF_UUID_SIZE];
	int dev = vdmabuf_open(NULL);	/* the first /dev/virtio-dmabuf<N> */

	if (dev < 0 || vdmabuf_alloc(dev, 4096, 0, 0, 0, &a) < 0 ||
	    (p = mmap(NULL, a.size, PROT_WRITE, MAP_SHARED, a.fd, 0)) == MAP_FAILED ||
	    vdmabuf_sync_start(dev, a.fd, VDMABUF_SYNC_WRITE, 0, 6, 0) < 0)
		return 1;
	memcpy(p, "hello", 6);		/* CPU access between START and END */
	if (vdmabuf_sync_end(dev, a.fd, VDMABUF_SYNC_WRITE, 0, 6) < 0 ||
	    /* UUIDs travel as text: other guests and the host import by it */
	    vdmabuf_uuid_parse(vdmabuf_uuid_format(a.uuid, text), uuid) < 0 ||
	    vdmabuf_import(dev, uuid, 0, 0, &b) < 0 ||
	    (q = mmap(NULL, b.size, PROT_READ, MAP_SHARED, b.fd, 0)) == MAP_FAILED ||
	    vdmabuf_sync_start(dev, b.fd, VDMABUF_SYNC_READ, 0, 6, 0) < 0)
		return 1;
	printf("uuid=%s\nread=%s\n", text, q);
	return vdmabuf_sync_end(dev, b.fd, VDMABUF_SYNC_READ, 0, 6) < 0 || strcmp(q, "hello");
}
