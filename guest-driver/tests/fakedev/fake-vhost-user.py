#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""A fake vhost-user backend of the virtio dma-buf device, for driver tests.

It serves the configuration space given on the command line (also values the
real daemon refuses to offer: a zero limit, a sync_timeout_ms near U32_MAX)
and, as a small stand-in for the device, answers requests on a few buffers
of its own, with or without a shared memory region for mapped imports
(docs/device-spec.md, section 13):

  --buffer XX:SIZE:SEED[:ro]   a host buffer with UUID XXXXXXXX-XXXX-...-XX (the
                               byte XX sixteen times) of SIZE bytes, filled with
                               the tests' pattern for SEED (README.md, "Test
                               pattern"; z: zeros); importable by LOOKUP + ATTACH
                               (copied at SYNC START, written back at END) or MAP
  --map-status XX:STATUS       answer MAP of buffer XX with this status
                               (15 UNSUPPORTED, 16 NO_SPACE, ...)
  --shm-size BYTES             offer shared memory region 0 (vhost-user SHMEM,
                               QEMU >= 11.1): MAP maps the buffer's memfd there
                               with SHMEM_MAP, RELEASE unmaps it

A LOOKUP of ffffffff-ffff-ffff-ffff-ffffffffffXX revokes buffer XX (its
mapping is removed at once, a REVOKED event goes to the driver, later SYNCs
answer REVOKED) and answers NOT_FOUND: a guest triggers a revocation with
an IMPORT of that UUID. CREATE, SYNC and RELEASE are accepted without checks;
there is no arbitration. One connection, then it exits.

  fake-vhost-user.py --socket /tmp/fake.sock --sync-timeout-ms 4294967295 &
  fake-vhost-user.py --socket /tmp/fake.sock --features 0x3 --shm-size 64M \\
      --buffer 11:1M:5 --buffer 22:64K:6 --map-status 22:16 &
  qemu-scripts/run-vm --socket /tmp/fake.sock --cmd '...'
"""
import argparse
import mmap
import os
import select
import socket
import struct
import sys

# vhost-user front-end requests (QEMU docs/interop/vhost-user.rst)
GET_FEATURES, SET_FEATURES = 1, 2
SET_MEM_TABLE = 5
SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE, GET_VRING_BASE = 8, 9, 10, 11
SET_VRING_KICK, SET_VRING_CALL = 12, 13
GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES, GET_QUEUE_NUM = 15, 16, 17
SET_VRING_ENABLE, SET_BACKEND_REQ_FD, GET_CONFIG = 18, 21, 24
GET_SHMEM_CONFIG = 44
# back-end requests
BACKEND_SHMEM_MAP, BACKEND_SHMEM_UNMAP = 9, 10

F_VERSION_1 = 1 << 32
F_PROTOCOL_FEATURES = 1 << 30
P_MQ, P_REPLY_ACK, P_BACKEND_REQ, P_CONFIG = 1 << 0, 1 << 3, 1 << 5, 1 << 9
P_BACKEND_SEND_FD, P_SHMEM = 1 << 10, 1 << 22
FLAG_VERSION, FLAG_REPLY, FLAG_NEED_REPLY = 0x1, 0x4, 0x8
VRING_NOFD = 1 << 8
MAP_RW = 1

# the device (docs/device-spec.md)
REQ_CREATE, REQ_RELEASE, REQ_LOOKUP, REQ_ATTACH = 0x100, 0x101, 0x102, 0x103
REQ_SYNC, REQ_MAP = 0x104, 0x105
S_OK, S_INVALID_REQUEST, S_NOT_FOUND, S_REVOKED = 0, 1, 5, 11
S_UNSUPPORTED, S_NO_SPACE = 15, 16
BUF_READ_ONLY, BUF_HOST_BACKED = 1 << 0, 1 << 8
SYNC_READ, SYNC_WRITE, SYNC_END = 1, 2, 4
EVENT_REVOKED = 1
DESC_F_NEXT, DESC_F_WRITE = 1, 2


def log(*a):
    print("fake-vhost-user:", *a, flush=True)


def size_arg(s):
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if s and s[-1].upper() in mult:
        return int(s[:-1], 0) * mult[s[-1].upper()]
    return int(s, 0)


def pattern(n, seed):
    """Bytes [0, n) of the tests' pattern: (i * 131 + seed * 7 + (i >> 12)) & 0xff."""
    # 4096 * 131 is a multiple of 256: page p is the first page shifted by p + seed * 7
    row = bytes((k * 131) & 0xff for k in range(4096))
    rot = [bytes((x + c) & 0xff for x in range(256)) for c in range(256)]
    pages = [row.translate(rot[(p + seed * 7) & 0xff]) for p in range(n // 4096 + 1)]
    return b"".join(pages)[:n]


def uuid_str(u):
    h = u.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Buffer:
    def __init__(self, byte, size, seed, ro):
        self.uuid = bytes([byte]) * 16
        self.size = size
        self.len = (size + 4095) & ~4095
        self.ro = ro
        self.fd = os.memfd_create(f"fake-buf-{byte:02x}")
        os.ftruncate(self.fd, self.len)
        self.mem = mmap.mmap(self.fd, self.len)
        if seed is not None:
            self.mem[:size] = pattern(size, seed)
        self.map_status = S_OK
        self.mapped_at = None      # offset in the region, while mapped
        self.unmapped = False      # revoked: the range is kept, unmapped
        self.revoked = False
        self.segs = None           # ATTACH: [(gpa, len)]


class Fake:
    def __init__(self, a):
        self.a = a
        self.conn = None
        self.backend = None        # the back-end request channel
        self.regions = []          # (gpa, size, uaddr, mmap, mmap_offset)
        self.vqs = [dict(num=0, kick=None, call=None, last=0) for _ in range(2)]
        self.buffers = {}
        self.events = []
        self.shm_used = {}         # offset -> len
        for spec in a.buffer:
            f = spec.split(":")
            b = Buffer(int(f[0], 16), size_arg(f[1]),
                       None if f[2] == "z" else int(f[2], 0),
                       len(f) > 3 and f[3] == "ro")
            self.buffers[b.uuid] = b
        for spec in a.map_status:
            byte, st = spec.split(":")
            self.buffers[bytes([int(byte, 16)]) * 16].map_status = int(st, 0)

    # ---------------------------------------------------- guest memory
    def gpa(self, addr, n):
        for gpa, size, _, mm, off in self.regions:
            if gpa <= addr and addr + n <= gpa + size:
                return mm, off + addr - gpa
        raise ValueError(f"gpa {addr:#x}+{n} outside guest RAM")

    def ua_to_gpa(self, ua):
        for gpa, size, uaddr, _, _ in self.regions:
            if uaddr <= ua < uaddr + size:
                return gpa + ua - uaddr
        raise ValueError(f"user address {ua:#x} unknown")

    def read(self, addr, n):
        mm, o = self.gpa(addr, n)
        return mm[o:o + n]

    def write(self, addr, data):
        mm, o = self.gpa(addr, len(data))
        mm[o:o + len(data)] = data

    # ---------------------------------------------------- virtqueues
    def chains(self, q):
        vq = self.vqs[q]
        if not vq.get("desc"):
            return
        num = vq["num"]
        while True:
            avail_idx = struct.unpack("<H", self.read(vq["avail"] + 2, 2))[0]
            if vq["last"] == avail_idx:
                return
            head = struct.unpack("<H", self.read(
                vq["avail"] + 4 + 2 * (vq["last"] % num), 2))[0]
            vq["last"] = (vq["last"] + 1) & 0xffff
            rd, wr, i = b"", [], head
            while True:
                addr, ln, flags, nxt = struct.unpack(
                    "<QIHH", self.read(vq["desc"] + 16 * i, 16))
                if flags & DESC_F_WRITE:
                    wr.append((addr, ln))
                else:
                    rd += self.read(addr, ln)
                if not flags & DESC_F_NEXT:
                    break
                i = nxt
            yield head, rd, wr

    def used(self, q, head, wr, data):
        vq = self.vqs[q]
        n = 0
        for addr, ln in wr:
            chunk = data[n:n + ln]
            if not chunk:
                break
            self.write(addr, chunk)
            n += len(chunk)
        idx = struct.unpack("<H", self.read(vq["used"] + 2, 2))[0]
        self.write(vq["used"] + 4 + 8 * (idx % vq["num"]),
                   struct.pack("<II", head, n))
        self.write(vq["used"] + 2, struct.pack("<H", (idx + 1) & 0xffff))
        if vq["call"] is not None:
            os.write(vq["call"], struct.pack("<Q", 1))

    def run_requests(self):
        for head, rd, wr in list(self.chains(0)):
            self.used(0, head, wr, self.request(rd))
        self.run_events()

    def run_events(self):
        while self.events:
            got = next(self.chains(1), None)
            if not got:
                return
            head, _, wr = got
            self.used(1, head, wr, self.events.pop(0))

    # ---------------------------------------------------- the device
    def request(self, rd):
        if len(rd) < 8:
            return struct.pack("<II", S_INVALID_REQUEST, 0)
        typ = struct.unpack("<I", rd[:4])[0]
        body = rd[8:]
        st = lambda s: struct.pack("<II", s, 0)
        if typ == REQ_CREATE:
            return st(S_OK) + os.urandom(16)
        uuid = body[:16]
        b = self.buffers.get(uuid)
        if typ == REQ_LOOKUP:
            if uuid[:15] == b"\xff" * 15:
                self.revoke(bytes([uuid[15]]) * 16)
                return st(S_NOT_FOUND) + bytes(16)
            if not b or b.revoked:
                return st(S_NOT_FOUND) + bytes(16)
            return st(S_OK) + struct.pack(
                "<QII", b.size, BUF_HOST_BACKED | (BUF_READ_ONLY if b.ro else 0), 0)
        if typ == REQ_RELEASE:
            if b:
                self.unmap(b)
                b.segs = None
            return st(S_OK)
        if not b or (b.revoked and typ != REQ_SYNC):
            return st(S_NOT_FOUND)
        if typ == REQ_ATTACH:
            nr = struct.unpack("<I", body[16:20])[0]
            b.segs = [struct.unpack("<QQ", body[24 + 16 * i:40 + 16 * i])
                      for i in range(nr)]
            return st(S_OK)
        if typ == REQ_MAP:
            return self.map(b)
        if typ == REQ_SYNC:
            if b.revoked:
                return st(S_REVOKED)
            off, ln, flags = struct.unpack("<QQI", body[16:36])
            if b.segs and not flags & SYNC_END:
                self.copy(b, off, ln, to_guest=True)
            elif b.segs and flags & SYNC_WRITE:
                self.copy(b, off, ln, to_guest=False)
            return st(S_OK)
        return st(S_INVALID_REQUEST)

    def copy(self, b, off, ln, to_guest):
        pos = 0
        for gpa, sl in b.segs:
            lo, hi = max(off, pos), min(off + ln, pos + sl)
            if lo < hi:
                if to_guest:
                    self.write(gpa + lo - pos, b.mem[lo:hi])
                else:
                    b.mem[lo:hi] = self.read(gpa + lo - pos, hi - lo)
            pos += sl

    def map(self, b):
        def resp(s, off=0, ln=0, fl=0):
            return struct.pack("<IIQQII", s, 0, off, ln, fl, 0)
        if b.map_status:
            return resp(b.map_status)
        if not self.a.shm_size or not self.backend:
            return resp(S_UNSUPPORTED)
        off = 0
        for o, ln in sorted(self.shm_used.items()):
            if off + b.len <= o:
                break
            off = max(off, o + ln)
        if off + b.len > self.a.shm_size:
            return resp(S_NO_SPACE)
        msg = struct.pack("<B7xQQQQ", 0, 0, off, b.len, 0 if b.ro else MAP_RW)
        fd = b.fd
        if b.ro and self.a.ro_fd:
            fd = os.open(f"/proc/self/fd/{b.fd}", os.O_RDONLY)
        self.backend.sendmsg(
            [struct.pack("<III", BACKEND_SHMEM_MAP, FLAG_VERSION, len(msg)) + msg],
            [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))])
        if fd != b.fd:
            os.close(fd)
        self.shm_used[off] = b.len
        b.mapped_at = off
        log(f"MAP {uuid_str(b.uuid)}: {b.len} bytes at {off:#x}")
        fl = BUF_HOST_BACKED | (BUF_READ_ONLY if b.ro else 0)
        return resp(S_OK, off, b.len, fl)

    def unmap(self, b, keep_range=False):
        if b.mapped_at is None or not self.backend:
            return
        if not b.unmapped:
            msg = struct.pack("<B7xQQQQ", 0, 0, b.mapped_at, b.len, 0)
            self.backend.sendall(struct.pack("<III", BACKEND_SHMEM_UNMAP,
                                             FLAG_VERSION, len(msg)) + msg)
            log(f"UNMAP {uuid_str(b.uuid)} at {b.mapped_at:#x}")
        b.unmapped = keep_range
        if not keep_range:
            del self.shm_used[b.mapped_at]
            b.mapped_at = None

    def revoke(self, uuid):
        b = self.buffers.get(uuid)
        if not b or b.revoked:
            return
        b.revoked = True
        # the range stays taken until the driver RELEASEs (spec 13.4)
        self.unmap(b, keep_range=True)
        self.events.append(struct.pack("<II", EVENT_REVOKED, 0) + uuid)
        log(f"revoked {uuid_str(uuid)}")

    # ---------------------------------------------------- vhost-user
    def reply(self, req, payload):
        self.conn.sendall(struct.pack("<III", req, FLAG_VERSION | FLAG_REPLY,
                                      len(payload)) + payload)

    def message(self):
        msg, anc, _, _ = self.conn.recvmsg(12, socket.CMSG_SPACE(4 * 8))
        if len(msg) < 12:
            return False
        fds = []
        for level, typ, data in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                fds += struct.unpack(f"{len(data) // 4}i", data[:len(data) // 4 * 4])
        req, flags, size = struct.unpack("<III", msg)
        body = b""
        while len(body) < size:
            chunk = self.conn.recv(size - len(body))
            if not chunk:
                return False
            body += chunk
        replied = self.handle(req, body, fds)
        if flags & FLAG_NEED_REPLY and not replied:
            self.reply(req, struct.pack("<Q", 0))
        return True

    def handle(self, req, body, fds):
        a = self.a
        if req == GET_FEATURES:
            self.reply(req, struct.pack("<Q", F_VERSION_1 | F_PROTOCOL_FEATURES | a.features))
        elif req == GET_PROTOCOL_FEATURES:
            p = P_MQ | P_REPLY_ACK | P_CONFIG
            if a.shm_size:
                p |= P_BACKEND_REQ | P_BACKEND_SEND_FD | P_SHMEM
            self.reply(req, struct.pack("<Q", p))
        elif req == GET_QUEUE_NUM:
            self.reply(req, struct.pack("<Q", 2))
        elif req == GET_CONFIG:
            off, sz, cflags = struct.unpack("<III", body[:12])
            data = (self.config + bytes(256))[off:off + sz]
            self.reply(req, struct.pack("<III", off, sz, cflags) + data)
        elif req == GET_SHMEM_CONFIG:
            self.reply(req, struct.pack("<II", 1, 0) + struct.pack("<Q", a.shm_size)
                       + bytes(8 * 255))
        elif req == SET_BACKEND_REQ_FD:
            self.backend = socket.socket(fileno=fds.pop(0))
        elif req == SET_MEM_TABLE:
            for *_, mm, _ in self.regions:
                mm.close()
            self.regions = []
            n = struct.unpack("<I", body[:4])[0]
            for i in range(n):
                gpa, size, ua, off = struct.unpack("<QQQQ", body[8 + 32 * i:40 + 32 * i])
                mm = mmap.mmap(fds[i], size + off)
                self.regions.append((gpa, size, ua, mm, off))
            fds = fds[n:]
        elif req == SET_VRING_NUM:
            i, num = struct.unpack("<II", body[:8])
            self.vqs[i]["num"] = num
        elif req == SET_VRING_BASE:
            i, base = struct.unpack("<II", body[:8])
            self.vqs[i]["last"] = base
        elif req == SET_VRING_ADDR:
            i, _, desc, used, avail = struct.unpack("<IIQQQ", body[:32])
            vq = self.vqs[i]
            vq["desc"], vq["used"], vq["avail"] = (
                self.ua_to_gpa(desc), self.ua_to_gpa(used), self.ua_to_gpa(avail))
        elif req in (SET_VRING_KICK, SET_VRING_CALL):
            v = struct.unpack("<Q", body[:8])[0]
            key = "kick" if req == SET_VRING_KICK else "call"
            vq = self.vqs[v & 0xff]
            if vq[key] is not None:
                os.close(vq[key])
            vq[key] = None if v & VRING_NOFD else fds.pop(0)
        elif req == GET_VRING_BASE:
            i = struct.unpack("<I", body[:4])[0]
            vq = self.vqs[i]
            self.reply(req, struct.pack("<II", i, vq["last"]))
            vq["desc"] = None
            if i == 0:      # the device stops: a reset drops every mapping
                for b in self.buffers.values():
                    if not self.a.keep_maps_at_stop:
                        self.unmap(b)
                    b.mapped_at, b.unmapped, b.segs = None, False, None
                self.shm_used.clear()
            return True
        else:
            for fd in fds:
                os.close(fd)
            fds = []
        for fd in fds:
            os.close(fd)
        return req in (GET_FEATURES, GET_PROTOCOL_FEATURES, GET_QUEUE_NUM,
                       GET_CONFIG, GET_SHMEM_CONFIG)

    def serve(self):
        a = self.a
        self.config = struct.pack("<IIQII", a.max_segments, a.max_buffers,
                                  a.max_bytes, a.sync_timeout_ms, 0)
        if os.path.exists(a.socket):
            os.unlink(a.socket)
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(a.socket)
        srv.listen(1)
        log(f"listening on {a.socket}, config {self.config.hex()}, "
            f"shm {a.shm_size}, buffers "
            + " ".join(uuid_str(u) for u in self.buffers))
        self.conn, _ = srv.accept()
        while True:
            kicks = {vq["kick"]: i for i, vq in enumerate(self.vqs)
                     if vq["kick"] is not None}
            ready, _, _ = select.select([self.conn] + list(kicks), [], [])
            for r in ready:
                if r is self.conn:
                    if not self.message():
                        return 0
                else:
                    os.read(r, 8)
                    self.run_requests()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--socket", required=True)
    ap.add_argument("--max-segments", type=int, default=262144)
    ap.add_argument("--max-buffers", type=int, default=4096)
    ap.add_argument("--max-bytes", type=size_arg, default=8 << 30)
    ap.add_argument("--sync-timeout-ms", type=int, default=5000)
    ap.add_argument("--features", type=lambda s: int(s, 0), default=0x1,
                    help="device-specific feature bits (default 0x1: IMPORT; 0x3: and MAP)")
    ap.add_argument("--shm-size", type=size_arg, default=0)
    ap.add_argument("--buffer", action="append", default=[])
    ap.add_argument("--map-status", action="append", default=[])
    ap.add_argument("--ro-fd", action="store_true",
                    help="map read-only buffers from an O_RDONLY fd (else the memfd itself)")
    ap.add_argument("--keep-maps-at-stop", action="store_true",
                    help="send no SHMEM_UNMAP when the VMM stops the device")
    return Fake(ap.parse_args()).serve()


if __name__ == "__main__":
    sys.exit(main())
