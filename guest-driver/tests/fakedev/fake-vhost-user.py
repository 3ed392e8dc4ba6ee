#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""A fake vhost-user backend of the virtio dma-buf device for probe tests.

It offers the device's feature bits and answers GET_CONFIG with the
configuration space given on the command line, so that the guest driver's
probe can be run against values the real daemon refuses to offer (a zero
limit, a sync_timeout_ms near U32_MAX). It takes the virtqueues but never
answers a request: it is for probe and remove only.

  fake-vhost-user.py --socket /tmp/fake.sock --sync-timeout-ms 4294967295 &
  qemu-scripts/run-vm --socket /tmp/fake.sock --cmd 'insmod ...; dmesg | tail'

One connection, then it exits (QEMU connects once per run).
"""
import argparse
import os
import socket
import struct
import sys

# vhost-user requests (QEMU docs/interop/vhost-user.rst)
GET_FEATURES, SET_FEATURES, SET_OWNER = 1, 2, 3
GET_VRING_BASE = 11
GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES, GET_QUEUE_NUM = 15, 16, 17
GET_CONFIG = 24

F_VERSION_1 = 1 << 32
F_PROTOCOL_FEATURES = 1 << 30
PROTO_MQ, PROTO_CONFIG = 1 << 0, 1 << 9
FLAG_VERSION, FLAG_REPLY, FLAG_NEED_REPLY = 0x1, 0x4, 0x8


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--socket", required=True)
    ap.add_argument("--max-segments", type=int, default=262144)
    ap.add_argument("--max-buffers", type=int, default=4096)
    ap.add_argument("--max-bytes", type=int, default=8 << 30)
    ap.add_argument("--sync-timeout-ms", type=int, default=5000)
    ap.add_argument("--features", type=lambda s: int(s, 0), default=0x1,
                    help="device-specific feature bits (default 0x1: IMPORT)")
    a = ap.parse_args()

    config = struct.pack("<IIQII", a.max_segments, a.max_buffers, a.max_bytes,
                         a.sync_timeout_ms, 0)
    features = F_VERSION_1 | F_PROTOCOL_FEATURES | a.features

    if os.path.exists(a.socket):
        os.unlink(a.socket)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(a.socket)
    srv.listen(1)
    print(f"fake-vhost-user: listening on {a.socket}, config {config.hex()}",
          flush=True)
    conn, _ = srv.accept()

    def reply(req, payload):
        conn.sendall(struct.pack("<III", req, FLAG_VERSION | FLAG_REPLY,
                                 len(payload)) + payload)

    while True:
        msg, ancdata, _, _ = conn.recvmsg(12, socket.CMSG_SPACE(8 * 4 * 8))
        if len(msg) < 12:
            break
        for level, typ, data in ancdata:
            if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                for fd in struct.unpack(f"{len(data) // 4}i",
                                        data[:len(data) // 4 * 4]):
                    os.close(fd)
        req, flags, size = struct.unpack("<III", msg)
        body = b""
        while len(body) < size:
            chunk = conn.recv(size - len(body))
            if not chunk:
                return 0
            body += chunk
        if req == GET_FEATURES:
            reply(req, struct.pack("<Q", features))
        elif req == GET_PROTOCOL_FEATURES:
            reply(req, struct.pack("<Q", PROTO_MQ | PROTO_CONFIG))
        elif req == GET_QUEUE_NUM:
            reply(req, struct.pack("<Q", 2))
        elif req == GET_CONFIG:
            off, sz, cflags = struct.unpack("<III", body[:12])
            data = (config + bytes(256))[off:off + sz]
            reply(req, struct.pack("<III", off, sz, cflags) + data)
        elif req == GET_VRING_BASE:
            index, _ = struct.unpack("<II", body[:8])
            reply(req, struct.pack("<II", index, 0))
        elif flags & FLAG_NEED_REPLY:
            reply(req, struct.pack("<Q", 0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
