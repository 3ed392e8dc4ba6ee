#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""Write the seed corpus of the fuzz targets (fuzz/corpus/<target>/), small valid and invalid
inputs in each target's input format (see the module docs in fuzz/src/). Deterministic: running it
again rewrites the same files."""

import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "corpus")

# ----------------------------------------------------------------------------- virtio requests
CREATE, RELEASE, LOOKUP, ATTACH, SYNC, MAP = 0x100, 0x101, 0x102, 0x103, 0x104, 0x105
S_READ, S_WRITE, S_END = 1, 2, 4
# Layouts (ctl bits 0-2) and response sizes (bits 4-6, index into 64, 24, 8, 0, 4, 16, 23, 40).
DIRECT, INDIRECT, MISORDERED, INTO_HOLE, WRITABLE_IN_HOLE, LOOP, BAD_INDIRECT, ADJACENT = range(8)
SUBST = 8
RESP64, RESP24, RESP8, RESP0, RESP4, RESP16, RESP23, RESP40 = (i << 4 for i in range(8))
SPLIT_RESP = 0x80
# Fixture buffers, by the selector byte the harness maps to them; created buffers follow.
F_PLAIN, F_RO, F_HOST_ONLY, F_HOST, F_CONTENDED, CREATED0 = range(6)


def hdr(kind, reserved=0):
    return struct.pack("<II", kind, reserved)


def segs(pairs):
    return b"".join(struct.pack("<QQ", a, l) for a, l in pairs)


def create(size, flags, pairs, nr=None):
    nr = len(pairs) if nr is None else nr
    return hdr(CREATE) + struct.pack("<QII", size, flags, nr) + segs(pairs)


def uuid_sel(sel):
    return bytes([sel]) + b"\0" * 15


def release(sel):
    return hdr(RELEASE) + uuid_sel(sel)


def lookup(sel):
    return hdr(LOOKUP) + uuid_sel(sel)


def map_req(sel, flags=0, reserved=0):
    return hdr(MAP) + uuid_sel(sel) + struct.pack("<II", flags, reserved)


def attach(sel, pairs, reserved=0):
    return hdr(ATTACH) + uuid_sel(sel) + struct.pack("<II", len(pairs), reserved) + segs(pairs)


def sync(sel, off, ln, flags, timeout=0):
    return hdr(SYNC) + uuid_sel(sel) + struct.pack("<QQII", off, ln, flags, timeout)


def chain(body, ctl=DIRECT | RESP64, split=0):
    return struct.pack("<BBH", ctl, split, len(body)) + body


def vq(*chains, glob=0):
    return bytes([glob]) + b"".join(chains)


def request_decode():
    s = SUBST | RESP64
    one = [(0x120000, 4096)]
    return {
        "create_ok": vq(chain(create(8192, 0, [(0x120000, 4096), (0x140000, 4096)]))),
        "create_scattered_split": vq(
            chain(create(3 * 4096, 1, [(0x130000, 4096), (0x132000, 4096), (0x134000, 4096)]),
                  INDIRECT | RESP24, 5)),
        "create_adjacent": vq(chain(create(0x2000, 0, [(0xff000, 0x2000)]), ADJACENT | RESP24)),
        "create_sync_release": vq(
            chain(create(4096, 0, one)),
            chain(sync(CREATED0, 0, 100, S_WRITE), s),
            chain(sync(CREATED0, 0, 100, S_WRITE | S_END), s),
            chain(sync(CREATED0, 0, 50, S_READ | S_WRITE), s),
            chain(sync(CREATED0, 0, 50, S_WRITE | S_END), s),
            chain(lookup(CREATED0), s),
            chain(release(CREATED0), s),
            chain(release(CREATED0), s)),
        "attach_sync": vq(
            chain(attach(F_PLAIN, [(0x150000, 8192)]), s),
            chain(sync(F_PLAIN, 0, 8192, S_READ), s),
            chain(sync(F_PLAIN, 0, 8192, S_READ | S_END), s),
            chain(sync(F_PLAIN, 10, 20, S_WRITE), s),
            chain(sync(F_PLAIN, 10, 20, S_WRITE | S_END), s),
            chain(attach(F_PLAIN, [(0x150000, 8192)]), s),
            chain(release(F_PLAIN), s)),
        "attach_read_only": vq(
            chain(attach(F_RO, [(0x150000, 4096)]), s),
            chain(sync(F_RO, 0, 1, S_WRITE), s),
            chain(sync(F_RO, 0, 4096, S_READ), s)),
        "attach_host_backed": vq(
            chain(attach(F_HOST, [(0x160000, 4096), (0x170000, 4096)]), s),
            chain(sync(F_HOST, 4000, 200, S_READ | S_WRITE), s),
            chain(sync(F_HOST, 4000, 200, S_READ | S_WRITE | S_END), s)),
        "contended_waits": vq(
            chain(attach(F_CONTENDED, [(0x180000, 8192)]), s),
            chain(sync(F_CONTENDED, 0, 10, S_WRITE, 1), s),
            chain(sync(F_CONTENDED, 4096, 100, S_READ), s),
            chain(release(F_CONTENDED), s)),
        "lookups": vq(*(chain(lookup(i), s) for i in range(6))),
        "no_import": vq(chain(lookup(F_PLAIN), s), chain(attach(F_PLAIN, [(0x150000, 8192)]), s),
                        glob=1),
        "bad_segments": vq(
            chain(create(4096, 0, [(0xa0000, 4096)])),
            chain(create(4096, 0, [(0x9f800, 4096)])),
            chain(create(4096, 0, [(0x120000, 0), (0x120000, 4096)])),
            chain(create(8, 0, [(2**64 - 4, 8)])),
            chain(create(4097, 0, one)),
            chain(create(4096, 4, one)),
            chain(create(4096, 0, one * 65)),
            chain(create(4096, 0, one, nr=2))),
        "big_buffer": vq(chain(create(0x100000, 0, [(0x100000, 0x100000)]), RESP24),
                         chain(create(0x200000, 0, [(0x100000, 0x100000)] * 2), RESP24)),
        "malformed": vq(
            chain(b"\x04\x01"),
            chain(hdr(CREATE, 1)),
            chain(hdr(0x7777)),
            chain(create(4096, 0, one), RESP16),
            chain(create(4096, 0, one), RESP4),
            chain(lookup(0), SUBST | RESP8),
            chain(sync(0, 0, 0, S_READ), s),
            chain(sync(0, 0, 1, 0), s)),
        "sync_shapes": vq(
            chain(sync(0, 2**64 - 1, 2, S_READ), s),
            chain(sync(0, 0, 1, S_READ | 8), s),
            chain(sync(0, 0, 1, S_READ | S_END, 5), s),
            chain(hdr(SYNC) + b"\0" * 20, s)),
        "layouts": vq(
            chain(create(4096, 0, one), MISORDERED | RESP64 | SPLIT_RESP),
            chain(create(4096, 0, one), LOOP | RESP64, 8),
            chain(create(4096, 0, one), BAD_INDIRECT | RESP64),
            chain(create(4096, 0, one), INTO_HOLE | RESP64),
            chain(create(4096, 0, one), WRITABLE_IN_HOLE | RESP64),
            chain(b"", RESP64)),
        "quota": vq(*(chain(create(4096, 0, [(0x120000 + i * 0x2000, 4096)]), RESP24)
                      for i in range(8))),
    }


# ----------------------------------------------------------------------------- segment lists
ANCHORS = [0, 0x9f000, 0xa0000, 0xbf000, 0xc0000, 0xff000, 0x100000, 0x13f000, 0x140000,
           0x1ff000, 0x200000, 0x20f000, 0x210000, 2**64 - 0x1000]


def seg(addr, ln):
    """Encode one segment, relative to the nearest anchor at or below it when possible."""
    best = None
    for i, a in enumerate(ANCHORS):
        if -0x8000 <= addr - a < 0x8000:
            best = i
            break
    if ln == 0:
        lc, lb = 14, b""
    elif ln < 0x10000:
        lc, lb = 0, struct.pack("<H", ln)
    elif ln < 2**32:
        lc, lb = 12, struct.pack("<I", ln)
    else:
        lc, lb = 15, struct.pack("<Q", ln)
    if best is None:
        return bytes([15 | lc << 4]) + struct.pack("<Q", addr) + lb
    return bytes([best | lc << 4]) + struct.pack("<h", addr - ANCHORS[best]) + lb


def sg(pairs, size=None, delta=None, ranges=()):
    out = bytes([len(pairs)]) + b"".join(seg(a, l) for a, l in pairs)
    if size is not None:
        out += bytes([224]) + struct.pack("<Q", size)
    elif delta is not None:
        out += bytes([192]) + struct.pack("<b", delta)
    else:
        out += bytes([0])
    for mode, off, ln, dst in ranges:
        fmt = {0: "<HH", 1: "<II", 2: "<QQ", 3: "<HH"}[mode]
        out += bytes([mode]) + struct.pack(fmt, off, ln) + struct.pack("<H", dst)
    return out


def sg_resolver():
    return {
        "one_page": sg([(0xc1000, 0x1000)], ranges=[(0, 0, 0x1000, 0), (0, 10, 100, 500)]),
        "coalesce": sg([(0x120000 + i * 0x1000, 0x1000) for i in range(4)],
                       ranges=[(0, 0xf00, 0x200, 0x3000), (3, 0x100, 0x100, 0)]),
        "adjacent_regions": sg([(0xff000, 0x2000), (0x13f000, 0x1000)],
                               ranges=[(0, 0xff0, 0x20, 0x2800)]),
        "scattered_reverse": sg([(0x200000, 0x1000), (0x1000, 0x1000), (0xc0000, 0x800)],
                                ranges=[(0, 0xffa, 12, 0x1500), (1, 0, 0x2800, 0)]),
        "same_memory_twice": sg([(0x130000, 0x1000), (0x130000, 0x1000), (0x130800, 0x800)],
                                ranges=[(0, 0, 0x2800, 0), (0, 0x800, 0x1000, 0x1000)]),
        "into_hole": sg([(0x9f000, 0x2000)]),
        "pair_into_hole": sg([(0x9f000, 0x1000), (0xa0000, 0x1000)]),
        "past_the_end": sg([(0x20f000, 0x2000)]),
        "zero_length": sg([(0xc0000, 0x1000), (0xc1000, 0)]),
        "overflow": sg([(2**64 - 0x1000, 0x2000)]),
        "size_mismatch": sg([(0xc0000, 0x1000)], delta=1),
        "raw_size": sg([(0xc0000, 0x1000)], size=2**64 - 1),
        "empty": sg([]),
        "out_of_range": sg([(0xc0000, 0x1000)], ranges=[(0, 0x1000, 1, 0), (0, 0, 0, 0),
                                                         (2, 2**64 - 1, 2, 0), (3, 0, 1, 0)]),
        "big_low": sg([(0, 0xa0000), (0xc0000, 0x80000)], ranges=[(1, 0x9ff00, 0x200, 0),
                                                                  (1, 0, 0x120000, 0)]),
    }


# ----------------------------------------------------------------------------- control socket
MAGIC = 0x46554244
SHARE, LIST, INFO, BEGIN, END_, READ, READ_INTO, WRITE, EXPORT, WAIT_WRITE, REVOKE = range(1, 12)
C_READ, C_WRITE = 1, 2
# Fixture selectors of the control driver; buffers shared by the input follow.
G_GUEST, G_HOST, G_RO, G_CONTENDED, SHARED0 = range(5)
# Option byte: fd kind (bits 0-1), fd on every frame (bit 2), write seal (bit 3), size (bits 4-5).
FD_NONE, FD_SEALED, FD_UNSEALED, FD_PIPE = range(4)
FD_EVERY, FD_WSEAL = 4, 8
FD_4K, FD_1B, FD_0B = 0x10, 0x20, 0x30


def frame(opcode, payload=b"", magic=MAGIC, reserved=0, ln=None):
    ln = len(payload) if ln is None else ln
    return struct.pack("<IIII", magic, opcode, ln, reserved) + payload


def cuuid(sel):
    return bytes([sel]) + b"\x5a" * 15


def crange(sel, off, ln, flags=0, arg=0):
    return cuuid(sel) + struct.pack("<QQII", off, ln, flags, arg)


def name(n):
    return n.encode() + b"\0" * (32 - len(n))


def share(size, flags=0, names=()):
    return frame(SHARE, struct.pack("<QII", size, flags, len(names)) + b"".join(map(name, names)))


def ctl(opts, *frames):
    return bytes([opts]) + b"".join(frames)


def control_protocol():
    return {
        "list_info": ctl(FD_NONE, frame(LIST), frame(INFO, cuuid(G_GUEST)),
                         frame(INFO, cuuid(G_HOST)), frame(INFO, b"\xff" * 16)),
        "share_write_read": ctl(
            FD_SEALED, share(16384),
            frame(BEGIN, crange(SHARED0, 0, 100, C_WRITE)),
            frame(WRITE, crange(SHARED0, 0, 100) + bytes(range(100))),
            frame(READ, crange(SHARED0, 0, 100)),
            frame(END_, crange(SHARED0, 0, 100, C_WRITE)),
            frame(WAIT_WRITE, cuuid(SHARED0) + struct.pack("<QII", 0, 1, 0)),
            frame(REVOKE, cuuid(SHARED0)),
            frame(INFO, cuuid(SHARED0))),
        "guest_access": ctl(
            FD_NONE,
            frame(BEGIN, crange(G_GUEST, 0, 0x2000, C_READ | C_WRITE)),
            frame(WRITE, crange(G_GUEST, 0xff0, 0x20) + b"\xab" * 0x20),
            frame(READ, crange(G_GUEST, 0xfe0, 0x40)),
            frame(END_, crange(G_GUEST, 0, 0x2000, C_READ)),
            frame(END_, crange(G_GUEST, 0, 0x1000, C_WRITE)),
            frame(END_, crange(G_GUEST, 0, 0x2000, C_WRITE)),
            frame(READ, crange(G_GUEST, 0, 1))),
        "contended": ctl(
            FD_NONE,
            frame(BEGIN, crange(G_CONTENDED, 0, 10, C_READ, 1)),
            frame(BEGIN, crange(G_CONTENDED, 4096, 10, C_WRITE)),
            frame(WAIT_WRITE, cuuid(G_CONTENDED) + struct.pack("<QII", 0, 1, 0)),
            frame(END_, crange(G_CONTENDED, 4096, 10, C_WRITE)),
            frame(WAIT_WRITE, cuuid(G_CONTENDED) + struct.pack("<QII", 0, 1, 0))),
        "read_only_and_export": ctl(
            FD_SEALED,
            frame(BEGIN, crange(G_RO, 0, 1, C_WRITE)),
            frame(BEGIN, crange(G_RO, 0, 4096, C_READ)),
            frame(READ_INTO, crange(G_RO, 0, 4096)),
            frame(READ_INTO, crange(G_RO, 0, 4096, 0, 3)),
            frame(WRITE, crange(G_RO, 0, 1) + b"x"),
            frame(EXPORT, cuuid(G_GUEST)),
            frame(EXPORT, cuuid(G_RO)),
            frame(EXPORT, cuuid(G_HOST))),
        "bad_magic": ctl(FD_NONE, frame(LIST, magic=0x12345678), frame(LIST)),
        "bad_reserved": ctl(FD_NONE, frame(LIST, reserved=1)),
        "too_long": ctl(FD_NONE, frame(WRITE, ln=(16 << 20) + 65)),
        "cut_short": ctl(FD_NONE, frame(LIST), frame(BEGIN, crange(G_HOST, 0, 1)[:10], ln=40)),
        "stray_tail": ctl(FD_NONE, frame(LIST), b"DBUF\x02\0"),
        "unsealed_fd": ctl(FD_UNSEALED, share(4096)),
        "pipe_fd": ctl(FD_PIPE, share(4096)),
        "fd_everywhere": ctl(FD_SEALED | FD_EVERY, frame(LIST), share(4096), frame(INFO, cuuid(0))),
        "write_sealed": ctl(FD_SEALED | FD_WSEAL | FD_4K, share(4096),
                            frame(BEGIN, crange(SHARED0, 0, 1, C_WRITE)),
                            frame(READ_INTO, crange(G_HOST, 0, 1))),
        "share_names": ctl(FD_SEALED, share(4096, 2, ["vm1", "vm2"]), share(4096, 0, ["bad name"]),
                           share(4096, 4), share(1 << 20), share(0),
                           frame(SHARE, struct.pack("<QII", 4096, 0, 65))),
        "sizes": ctl(FD_NONE, frame(99), frame(LIST, b"x"), frame(INFO, b"\0" * 15),
                     frame(BEGIN, crange(G_HOST, 0, 1, C_READ) + b"x"),
                     frame(BEGIN, crange(G_HOST, 0, 1, 4)),
                     frame(END_, crange(G_HOST, 0, 1, C_READ, 5)),
                     frame(READ, crange(G_HOST, 0, 0)),
                     frame(WRITE, crange(G_HOST, 0, 2) + b"x"),
                     frame(BEGIN, crange(G_HOST, 2**64 - 1, 2, C_READ))),
        "quota": ctl(FD_SEALED | FD_4K, *(share(4096) for _ in range(14))),
    }


# ----------------------------------------------------------------------------- decoders alone
def pv(body, piece=0, max_segs=8):
    """A virtqueue request for proto_decode, read in pieces of `piece` bytes (0: whole)."""
    return bytes([0, piece, max_segs]) + body


def pc(opcode, payload=b"", fd=False):
    """A control request for proto_decode."""
    return bytes([1, opcode, int(fd)]) + payload


def proto_decode():
    pages = [(0x100000 + i * 0x2000, 0x1000) for i in range(4)]
    return {
        "create": pv(create(0x4000, 1, pages), piece=5),
        "create_contiguous": pv(create(0x3000, 0, [(0x100000, 0x1000), (0x101000, 0x2000)])),
        "create_too_many": pv(create(0x9000, 0, pages * 3), max_segs=4),
        "create_zero_len": pv(create(0x1000, 0, [(0x100000, 0), (0x200000, 0x1000)]), piece=3),
        "create_overflow_sum": pv(create(2**64 - 1, 0, [(0, 2**64 - 1), (0, 2**64 - 1)])),
        "create_flags": pv(create(0x1000, 8, [(0x100000, 0x1000)])),
        "create_truncated": pv(create(0x2000, 0, [(0x100000, 0x1000)], nr=2), piece=1),
        "attach": pv(attach(3, pages)),
        "attach_reserved": pv(attach(3, pages, reserved=1)),
        "release": pv(release(1), piece=7),
        "lookup": pv(lookup(2)),
        "map": pv(map_req(2), piece=3),
        "map_flags": pv(map_req(2, flags=1)),
        "map_reserved": pv(map_req(2, reserved=1)),
        "map_truncated": pv(map_req(2)[:30]),
        "sync_start": pv(sync(1, 4, 10, S_READ | S_WRITE, 20)),
        "sync_end": pv(sync(1, 0, 1, S_WRITE | S_END)),
        "sync_end_timeout": pv(sync(1, 0, 1, S_READ | S_END, 5)),
        "sync_flags": pv(sync(1, 0, 1, 0x40)),
        "sync_overflow": pv(sync(1, 2**64 - 1, 2, S_READ)),
        "unknown": pv(hdr(0x1ff)),
        "reserved": pv(hdr(SYNC, 1)),
        "short": pv(b"\x04\x01\0"),
        "ctl_share": pc(SHARE, struct.pack("<QII", 4096, 3, 2) + name("vm1") + name("vm2"), True),
        "ctl_share_no_fd": pc(SHARE, struct.pack("<QII", 4096, 0, 0)),
        "ctl_list": pc(LIST),
        "ctl_info": pc(INFO, cuuid(1)),
        "ctl_begin": pc(BEGIN, crange(1, 0, 10, C_READ | C_WRITE, 30)),
        "ctl_end_arg": pc(END_, crange(1, 0, 10, C_READ, 1)),
        "ctl_read": pc(READ, crange(1, 0, 0)),
        "ctl_read_into": pc(READ_INTO, crange(1, 0, 10, 0, 2), True),
        "ctl_write": pc(WRITE, crange(1, 3, 5) + b"hello"),
        "ctl_write_short": pc(WRITE, crange(1, 3, 5) + b"hell"),
        "ctl_wait": pc(WAIT_WRITE, cuuid(1) + struct.pack("<QII", 7, 100, 0)),
        "ctl_revoke_fd": pc(REVOKE, cuuid(1), True),
        "ctl_unknown": pc(42),
    }


def write(target, seeds):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


def main():
    targets = {"request_decode": request_decode, "sg_resolver": sg_resolver,
               "control_protocol": control_protocol, "proto_decode": proto_decode}
    only = sys.argv[1:] or list(targets)
    for t in only:
        write(t, targets[t]())


if __name__ == "__main__":
    main()
