// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Fuzz driver: the memory resolver (`vhost_device_dmabuf::memory`) against a reference model.
//!
//! Arbitrary segment lists and ranges meet a guest memory shaped like QEMU's — low RAM, the hole
//! at 0xa0000-0xc0000, two adjacent regions, another hole, a last region — and `SegList::build`,
//! `SegList::slices` and `copy_slices` must agree with a plain byte-level model:
//!
//! * a list builds iff every segment is non-empty, does not overflow, lies in RAM (adjacent
//!   regions count as one) and the lengths add up to the size; otherwise the error is the first
//!   one the spec's order gives, and maps to its documented status (`INVALID_SIZE` for zero
//!   lengths, size mismatches and out-of-buffer ranges, `INVALID_ADDRESS` for overflow and
//!   memory that is not RAM);
//! * a built list's runs are maximal (no two neighbours contiguous), lie in RAM, and spell the
//!   same guest-physical byte sequence as the segments;
//! * `slices(offset, len)` succeeds iff the range is inside the buffer, covers exactly `len`
//!   bytes, and each byte is the host byte of the right guest-physical address; against a smaller
//!   memory (a new memory table) it fails iff some byte of the range left RAM;
//! * `copy_slices` copies `min(src, dst)` bytes and the destination then holds the source bytes.
//!
//! Input format (little-endian):
//! ```text
//! n u8 (segments, n % 17), then n times:
//!   sel u8: bits 0-3 anchor (`ANCHORS`; 14, 15: a raw u64 address follows), else an i16 delta
//!           follows; bits 4-7 length: 0-11 u16, 12-13 u32, 14 zero, 15 raw u64
//! size u8: 0-191 the sum of the lengths, 192-223 the sum plus an i8, 224-255 a raw u64
//! then up to 8 ranges: mode u8 (bits 0-1: 0 u16 offset and length, 1 u32, 2 u64, 3 offset
//!   counted from the end), offset, length, then a u16 destination offset for the copy check
//! ```

use std::sync::OnceLock;

use vhost_device_dmabuf::memory::{check_range, copy_slices, GuestMem, MemError, SegList};
use virtio_dmabuf_proto::segments::SegmentError;
use virtio_dmabuf_proto::Status;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, VolatileSlice};

/// The regions: low RAM, hole, two adjacent regions, hole, a last region.
const REGIONS: [(u64, u64); 4] = [
    (0, 0xa0000),
    (0xc0000, 0x40000),
    (0x100000, 0x40000),
    (0x200000, 0x10000),
];
/// The same as maximal runs of RAM (adjacent regions merged).
const RAM: [(u64, u64); 3] = [(0, 0xa0000), (0xc0000, 0x140000), (0x200000, 0x210000)];
/// A smaller memory table (only low RAM stays) for the stale-mapping check.
const SMALL_RAM: (u64, u64) = (0, 0xa0000);

const ANCHORS: [u64; 14] = [
    0,
    0x9f000,
    0xa0000,
    0xbf000,
    0xc0000,
    0xff000,
    0x100000,
    0x13f000,
    0x140000,
    0x1ff000,
    0x200000,
    0x20f000,
    0x210000,
    u64::MAX - 0xfff,
];

/// Most bytes whose contents are compared after a copy.
const CONTENT_CHECK_MAX: u64 = 256 << 10;

struct Mems {
    /// Source memory, filled with `pattern(gpa)` once and never written.
    src: GuestMem,
    /// Destination memory of the copy check.
    dst: GuestMem,
    /// Only the low region.
    small: GuestMem,
}

fn pattern(gpa: u64) -> u8 {
    (gpa ^ (gpa >> 8) ^ (gpa >> 16) ^ 0x5a) as u8
}

fn mems() -> &'static Mems {
    static MEMS: OnceLock<Mems> = OnceLock::new();
    MEMS.get_or_init(|| {
        let ranges: Vec<(GuestAddress, usize)> = REGIONS
            .iter()
            .map(|&(a, l)| (GuestAddress(a), l as usize))
            .collect();
        let src = GuestMem::from_ranges(&ranges).expect("source memory");
        for &(a, l) in &REGIONS {
            let bytes: Vec<u8> = (a..a + l).map(pattern).collect();
            src.write_slice(&bytes, GuestAddress(a)).expect("fill");
        }
        Mems {
            src,
            dst: GuestMem::from_ranges(&ranges).expect("destination memory"),
            small: GuestMem::from_ranges(&[(GuestAddress(SMALL_RAM.0), SMALL_RAM.1 as usize)])
                .expect("small memory"),
        }
    })
}

/// Reads little-endian values off the input; missing bytes read as zero.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        let n = N.min(self.0.len());
        b[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        b
    }
    fn u8(&mut self) -> u8 {
        self.bytes::<1>()[0]
    }
    fn u16(&mut self) -> u64 {
        u64::from(u16::from_le_bytes(self.bytes()))
    }
    fn u32(&mut self) -> u64 {
        u64::from(u32::from_le_bytes(self.bytes()))
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.bytes())
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn in_ram(ram: &[(u64, u64)], gpa: u64, len: u64) -> bool {
    match gpa.checked_add(len) {
        Some(end) => ram.iter().any(|&(s, e)| s <= gpa && end <= e),
        None => false,
    }
}

/// The guest-physical pieces of `offset..offset+len` of the buffer the segments make.
fn pieces(segs: &[(u64, u64)], offset: u64, len: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let (mut pos, end) = (0u64, offset + len);
    for &(a, l) in segs {
        let (s, e) = (pos, pos + l);
        pos = e;
        if e <= offset || s >= end {
            continue;
        }
        let from = offset.max(s);
        let to = end.min(e);
        out.push((a + (from - s), to - from));
    }
    out
}

/// What `SegList::build` must decide, by the spec's rules applied to bytes.
fn reference(segs: &[(u64, u64)], size: u64) -> Result<(), MemError> {
    for (index, &(addr, len)) in segs.iter().enumerate() {
        if len == 0 {
            return Err(MemError::Segment(SegmentError::ZeroLength { index }));
        }
        if addr.checked_add(len).is_none() {
            return Err(MemError::Segment(SegmentError::Overflow {
                index,
                addr,
                len,
            }));
        }
    }
    // The sum of the lengths, without overflow (None: more than 2^64, which matches no size).
    let total = segs.iter().try_fold(0u64, |t, s| t.checked_add(s.1));
    if total != Some(size) || segs.is_empty() {
        return Err(MemError::SizeMismatch {
            expected: size,
            actual: total,
        });
    }
    match segs.iter().find(|&&(a, l)| !in_ram(&RAM, a, l)) {
        // The device reports the coalesced run; only the kind is compared.
        Some(&(addr, len)) => Err(MemError::NotRam { addr, len }),
        None => Ok(()),
    }
}

fn same_kind(a: &MemError, b: &MemError) -> bool {
    match (a, b) {
        (MemError::NotRam { .. }, MemError::NotRam { .. }) => true,
        _ => a == b,
    }
}

/// Check that `slices` are the host bytes of `expected` (guest-physical pieces), in order.
fn check_mapping(mem: &GuestMem, slices: &[VolatileSlice<'_, ()>], expected: &[(u64, u64)]) {
    let (mut si, mut soff) = (0usize, 0u64);
    for &(gpa, len) in expected {
        let mut done = 0u64;
        while done < len {
            let s = &slices[si];
            assert!(!s.is_empty(), "an empty slice");
            let n = (s.len() as u64 - soff).min(len - done);
            let want = mem
                .get_host_address(GuestAddress(gpa + done))
                .expect("reference piece in RAM");
            let got = s.ptr_guard().as_ptr().wrapping_add(soff as usize);
            assert_eq!(
                got as usize,
                want as usize,
                "host byte of gpa {:#x}",
                gpa + done
            );
            done += n;
            soff += n;
            if soff == s.len() as u64 {
                si += 1;
                soff = 0;
            }
        }
    }
    assert_eq!((si, soff), (slices.len(), 0), "slices beyond the range");
}

fn parse_segments(inp: &mut Input<'_>) -> Vec<(u64, u64)> {
    let n = inp.u8() % 17;
    (0..n)
        .map(|_| {
            let sel = inp.u8();
            let anchor = usize::from(sel & 15);
            let addr = match ANCHORS.get(anchor) {
                Some(&a) => a.wrapping_add(i16::from_le_bytes(inp.bytes()) as u64),
                None => inp.u64(),
            };
            let len = match sel >> 4 {
                0..=11 => inp.u16(),
                12 | 13 => inp.u32(),
                14 => 0,
                _ => inp.u64(),
            };
            (addr, len)
        })
        .collect()
}

/// Run one input.
pub fn run(data: &[u8]) {
    let m = mems();
    let mut inp = Input(data);
    let segs = parse_segments(&mut inp);
    let sum = segs.iter().fold(0u64, |t, s| t.saturating_add(s.1));
    let size = match inp.u8() {
        0..=191 => sum,
        192..=223 => sum.wrapping_add(i8::from_le_bytes(inp.bytes()) as u64),
        _ => inp.u64(),
    };

    let built = SegList::build(segs.iter().copied(), size, &m.src);
    let expected = reference(&segs, size);
    let list = match (built, expected) {
        (Ok(list), Ok(())) => list,
        (Err(got), Err(want)) => {
            assert!(same_kind(&got, &want), "{got:?}, expected {want:?}");
            let status = match want {
                MemError::Segment(SegmentError::ZeroLength { .. })
                | MemError::SizeMismatch { .. }
                | MemError::OutOfRange { .. } => Status::InvalidSize,
                MemError::Segment(SegmentError::Overflow { .. }) | MemError::NotRam { .. } => {
                    Status::InvalidAddress
                }
            };
            assert_eq!(got.status(), status, "{got:?}");
            return;
        }
        (got, want) => panic!("build gave {got:?}, expected {want:?}"),
    };

    // The runs: maximal, in RAM, the same bytes as the segments.
    let runs: Vec<(u64, u64)> = list.iter_runs().collect();
    assert_eq!(list.size(), size);
    assert_eq!(list.runs(), runs.len());
    assert!(runs.len() <= segs.len());
    assert!(list.heap_bytes() >= runs.len() * 24);
    assert_eq!(runs.iter().map(|r| r.1).sum::<u64>(), size);
    for w in runs.windows(2) {
        assert_ne!(w[0].0 + w[0].1, w[1].0, "neighbouring runs not coalesced");
    }
    for &(a, l) in &runs {
        assert!(in_ram(&RAM, a, l), "run {a:#x}+{l:#x} outside RAM");
    }
    assert_eq!(runs, coalesce(&segs), "runs are not the coalesced segments");

    let mut ranges = 0;
    while !inp.is_empty() && ranges < 8 {
        ranges += 1;
        let mode = inp.u8();
        let (offset, len) = match mode & 3 {
            0 => (inp.u16(), inp.u16()),
            1 => (inp.u32(), inp.u32()),
            2 => (inp.u64(), inp.u64()),
            _ => (size.wrapping_sub(inp.u16()), inp.u16()),
        };
        let dst_offset = inp.u16();
        check_range_of(m, &list, &segs, offset, len, dst_offset);
    }
}

fn coalesce(p: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &(a, l) in p {
        match out.last_mut() {
            Some(last) if last.0 + last.1 == a => last.1 += l,
            _ => out.push((a, l)),
        }
    }
    out
}

fn check_range_of(
    m: &Mems,
    list: &SegList,
    segs: &[(u64, u64)],
    offset: u64,
    len: u64,
    dst_offset: u64,
) {
    let size = list.size();
    let inside = len > 0 && offset.checked_add(len).is_some_and(|e| e <= size);
    assert_eq!(check_range(size, offset, len).is_ok(), inside);
    let src = match list.slices(&m.src, offset, len) {
        Ok(s) => s,
        Err(e) => {
            assert!(!inside, "slices({offset}, {len}) of {size}: {e:?}");
            assert_eq!(e, MemError::OutOfRange { offset, len, size });
            assert_eq!(e.status(), Status::InvalidSize);
            return;
        }
    };
    assert!(
        inside,
        "slices({offset}, {len}) of a {size}-byte buffer succeeded"
    );
    let want = pieces(segs, offset, len);
    assert_eq!(src.iter().map(|s| s.len() as u64).sum::<u64>(), len);
    check_mapping(&m.src, &src, &want);

    // The same list against a memory table that lost every region but the first.
    let still_ram = want.iter().all(|&(a, l)| in_ram(&[SMALL_RAM], a, l));
    match list.slices(&m.small, offset, len) {
        Ok(s) => {
            assert!(still_ram, "resolved against memory that lost the range");
            check_mapping(&m.small, &s, &want);
        }
        Err(e) => {
            assert!(!still_ram, "{e:?} although the range is still RAM");
            assert!(matches!(e, MemError::NotRam { .. }), "{e:?}");
        }
    }

    // Copy the range to another place of the same buffer, in the other memory.
    let dst_offset = dst_offset.min(size - len);
    let dst = list
        .slices(&m.dst, dst_offset, len)
        .expect("a range inside the buffer");
    assert_eq!(copy_slices(&src, &dst), len);
    if dst.len() > 1 {
        let short: u64 = dst[..dst.len() - 1].iter().map(|s| s.len() as u64).sum();
        assert_eq!(copy_slices(&src, &dst[..dst.len() - 1]), short);
        // Redo the full copy (the short one changed nothing the full one does not rewrite).
        copy_slices(&src, &dst);
    }
    let dst_pieces = pieces(segs, dst_offset, len);
    if len > CONTENT_CHECK_MAX || overlapping(&dst_pieces) {
        return;
    }
    let mut got = Vec::with_capacity(len as usize);
    for &(a, l) in &dst_pieces {
        let mut b = vec![0u8; l as usize];
        m.dst
            .read_slice(&mut b, GuestAddress(a))
            .expect("destination in RAM");
        got.extend_from_slice(&b);
    }
    let mut expect = Vec::with_capacity(len as usize);
    for &(a, l) in &want {
        expect.extend((a..a + l).map(pattern));
    }
    assert!(got == expect, "copied bytes differ");
}

/// Whether some guest-physical byte appears twice among the pieces.
fn overlapping(p: &[(u64, u64)]) -> bool {
    let mut v = p.to_vec();
    v.sort_unstable();
    v.windows(2).any(|w| w[0].0 + w[0].1 > w[1].0)
}
