// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The memory resolver: scatter-gather lists of guest-physical addresses → host memory.
//!
//! A [`SegList`] keeps only guest-physical runs (contiguous segments coalesced), never host
//! addresses: every access resolves the runs again against the guest memory of that moment, so a
//! new memory table (after a reset or a hotplug) can never leave a stale host mapping behind.
//! All host memory is reached through vm-memory's bounds-checked [`VolatileSlice`]s.

use thiserror::Error;
use virtio_dmabuf_proto::segments::{Run, SegmentError, SegmentList};
use virtio_dmabuf_proto::Status;
use vm_memory::{
    Address, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion, VolatileSlice,
};

/// Guest memory as the vhost-user backend sees it.
pub type GuestMem = GuestMemoryMmap<()>;

/// Why a segment list or a range was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MemError {
    /// A segment refused by itself (zero length, overflowing end).
    #[error("invalid segment")]
    Segment(#[from] SegmentError),
    /// Part of a run is not guest RAM (outside every region, or in a hole).
    #[error("guest range {addr:#x}+{len:#x} is not guest RAM")]
    NotRam {
        /// Guest-physical address.
        addr: u64,
        /// Length.
        len: u64,
    },
    /// The lengths do not add up to the declared size.
    #[error("segments add up to {actual:?} bytes (None: more than 2^64), expected {expected}")]
    SizeMismatch {
        /// Declared size.
        expected: u64,
        /// Sum of the lengths, `None` if it overflows.
        actual: Option<u64>,
    },
    /// A range outside the buffer.
    #[error("range {offset}+{len} outside a buffer of {size} bytes")]
    OutOfRange {
        /// Offset.
        offset: u64,
        /// Length.
        len: u64,
        /// Buffer size.
        size: u64,
    },
}

impl MemError {
    /// The status of a segment list refused for this reason (spec section 6.2).
    pub fn status(&self) -> Status {
        match self {
            MemError::Segment(SegmentError::Overflow { .. }) | MemError::NotRam { .. } => {
                Status::InvalidAddress
            }
            MemError::Segment(SegmentError::ZeroLength { .. })
            | MemError::SizeMismatch { .. }
            | MemError::OutOfRange { .. } => Status::InvalidSize,
        }
    }
}

/// A validated, coalesced scatter-gather list whose runs were guest RAM when it was made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegList {
    runs: Vec<Run>,
    size: u64,
}

impl SegList {
    /// Check a decoded list against the size it must add up to and against `mem`.
    pub fn new(list: SegmentList, size: u64, mem: &GuestMem) -> Result<SegList, MemError> {
        if !list.adds_up_to(size) || list.runs().is_empty() {
            return Err(MemError::SizeMismatch {
                expected: size,
                actual: list.total(),
            });
        }
        for run in list.runs() {
            check_ram(mem, run.gpa, run.len)?;
        }
        let mut runs = list.into_runs();
        if runs.capacity() > runs.len() + runs.len() / 8 {
            runs.shrink_to_fit();
        }
        Ok(SegList { runs, size })
    }

    /// Build a list from `(addr, len)` pairs, coalescing contiguous neighbours, and check it
    /// against `mem`. `size` is the size the lengths must add up to.
    pub fn build<I>(segs: I, size: u64, mem: &GuestMem) -> Result<SegList, MemError>
    where
        I: IntoIterator<Item = (u64, u64)>,
    {
        SegList::new(SegmentList::from_pairs(segs)?, size, mem)
    }

    /// Buffer size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Number of coalesced runs.
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    /// Heap bytes this list occupies (what a registered buffer costs the daemon).
    pub fn heap_bytes(&self) -> usize {
        self.runs.capacity() * size_of::<Run>()
    }

    /// The `(gpa, len)` runs, in buffer order.
    pub fn iter_runs(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.runs.iter().map(|r| (r.gpa, r.len))
    }

    /// Resolve `offset..offset+len` of the buffer to host memory of `mem`, in order.
    ///
    /// Fails if the range is outside the buffer or if guest memory no longer holds a run (the
    /// memory table changed under the buffer).
    pub fn slices<'m>(
        &self,
        mem: &'m GuestMem,
        offset: u64,
        len: u64,
    ) -> Result<Vec<VolatileSlice<'m, ()>>, MemError> {
        check_range(self.size, offset, len)?;
        let mut out = Vec::new();
        // The last run starting at or before `offset`.
        let first = self.runs.partition_point(|r| r.offset <= offset) - 1;
        let mut pos = offset;
        let end = offset + len;
        for run in &self.runs[first..] {
            if pos >= end {
                break;
            }
            let in_run = pos - run.offset;
            let take = (run.len - in_run).min(end - pos);
            push_guest_slices(mem, run.gpa + in_run, take, &mut out)?;
            pos += take;
        }
        Ok(out)
    }
}

/// Check that `offset..offset+len` is a non-empty range inside a buffer of `size` bytes.
pub fn check_range(size: u64, offset: u64, len: u64) -> Result<(), MemError> {
    match offset.checked_add(len) {
        Some(end) if len > 0 && end <= size => Ok(()),
        _ => Err(MemError::OutOfRange { offset, len, size }),
    }
}

/// Check that every byte of `gpa..gpa+len` is guest RAM. Adjacent regions with no gap between
/// them count as one.
fn check_ram(mem: &GuestMem, gpa: u64, len: u64) -> Result<(), MemError> {
    let end = gpa
        .checked_add(len)
        .ok_or(MemError::NotRam { addr: gpa, len })?;
    let mut addr = gpa;
    while addr < end {
        let region = mem
            .find_region(GuestAddress(addr))
            .ok_or(MemError::NotRam { addr: gpa, len })?;
        let region_end = region.start_addr().raw_value() + region.len();
        addr = region_end.min(end);
    }
    Ok(())
}

/// Append the host slices of `gpa..gpa+len`, split at region boundaries.
fn push_guest_slices<'m>(
    mem: &'m GuestMem,
    gpa: u64,
    len: u64,
    out: &mut Vec<VolatileSlice<'m, ()>>,
) -> Result<(), MemError> {
    let not_ram = || MemError::NotRam { addr: gpa, len };
    let mut addr = gpa;
    let end = gpa.checked_add(len).ok_or_else(not_ram)?;
    while addr < end {
        let region = mem.find_region(GuestAddress(addr)).ok_or_else(not_ram)?;
        let region_end = region.start_addr().raw_value() + region.len();
        let take = region_end.min(end) - addr;
        let count = usize::try_from(take).map_err(|_| not_ram())?;
        let slice = mem
            .get_slice(GuestAddress(addr), count)
            .map_err(|_| not_ram())?;
        out.push(slice);
        addr += take;
    }
    Ok(())
}

/// Copy `src` to `dst` (two lists of slices covering the same number of bytes).
/// Returns the number of bytes copied.
pub fn copy_slices(src: &[VolatileSlice<'_, ()>], dst: &[VolatileSlice<'_, ()>]) -> u64 {
    let (mut si, mut di) = (0usize, 0usize);
    let (mut soff, mut doff) = (0usize, 0usize);
    let mut copied = 0u64;
    while si < src.len() && di < dst.len() {
        let s = &src[si];
        let d = &dst[di];
        let n = (s.len() - soff).min(d.len() - doff);
        // Both subslices are in bounds by construction: `soff < s.len()`, `n <= s.len() - soff`.
        if let (Ok(from), Ok(to)) = (s.subslice(soff, n), d.subslice(doff, n)) {
            from.copy_to_volatile_slice(to);
        }
        copied += n as u64;
        soff += n;
        doff += n;
        if soff == s.len() {
            si += 1;
            soff = 0;
        }
        if doff == d.len() {
            di += 1;
            doff = 0;
        }
    }
    copied
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use vm_memory::Bytes;

    /// QEMU's shape: low RAM, a hole at 0xa0000-0xc0000, then the rest.
    pub(crate) fn two_region_mem() -> GuestMem {
        GuestMem::from_ranges(&[
            (GuestAddress(0), 0xa0000),
            (GuestAddress(0xc0000), 0x400000 - 0xc0000),
        ])
        .unwrap()
    }

    #[test]
    fn coalesces_contiguous_pages() {
        let mem = two_region_mem();
        let pages = (0..64).map(|i| (0x100000 + i * 4096, 4096));
        let list = SegList::build(pages, 64 * 4096, &mem).unwrap();
        assert_eq!(list.runs(), 1);
        let scattered = (0..64).map(|i| (0x100000 + i * 8192, 4096));
        let list = SegList::build(scattered, 64 * 4096, &mem).unwrap();
        assert_eq!(list.runs(), 64);
    }

    #[test]
    fn rejects_holes_overflow_and_outside() {
        let mem = two_region_mem();
        let straddle = [(0x9f000, 0x2000)];
        assert!(matches!(
            SegList::build(straddle, 0x2000, &mem),
            Err(MemError::NotRam { .. })
        ));
        assert!(matches!(
            SegList::build([(0xa0000, 0x1000)], 0x1000, &mem),
            Err(MemError::NotRam { .. })
        ));
        assert!(matches!(
            SegList::build([(0x400000, 0x1000)], 0x1000, &mem),
            Err(MemError::NotRam { .. })
        ));
        assert!(matches!(
            SegList::build([(u64::MAX - 10, 0x1000)], 0x1000, &mem),
            Err(MemError::Segment(SegmentError::Overflow { .. }))
        ));
        assert_eq!(
            SegList::build([(0x1000, 0)], 0, &mem),
            Err(MemError::Segment(SegmentError::ZeroLength { index: 0 }))
        );
        assert!(matches!(
            SegList::build([(0x1000, 0x1000)], 0x2000, &mem),
            Err(MemError::SizeMismatch { .. })
        ));
        // Two pages that coalesce across the end of a region into a hole.
        let pair = [(0x9f000, 0x1000), (0xa0000, 0x1000)];
        assert!(SegList::build(pair, 0x2000, &mem).is_err());
    }

    #[test]
    fn adjacent_regions_are_one_run() {
        let mem =
            GuestMem::from_ranges(&[(GuestAddress(0), 0x10000), (GuestAddress(0x10000), 0x10000)])
                .unwrap();
        let list = SegList::build([(0xf000, 0x2000)], 0x2000, &mem).unwrap();
        let slices = list.slices(&mem, 0, 0x2000).unwrap();
        assert_eq!(slices.len(), 2);
    }

    #[test]
    fn slices_follow_buffer_order() {
        let mem = two_region_mem();
        // Buffer: page at 0x200000, then page at 0x1000 (reverse order in memory).
        let list = SegList::build([(0x200000, 4096), (0x1000, 4096)], 8192, &mem).unwrap();
        mem.write_slice(&[7u8; 4096], GuestAddress(0x200000))
            .unwrap();
        mem.write_slice(&[9u8; 4096], GuestAddress(0x1000)).unwrap();
        let s = list.slices(&mem, 4090, 12).unwrap();
        assert_eq!(s.len(), 2);
        let mut buf = [0u8; 12];
        let (a, b) = buf.split_at_mut(6);
        s[0].copy_to(a);
        s[1].copy_to(b);
        assert_eq!(buf, [7, 7, 7, 7, 7, 7, 9, 9, 9, 9, 9, 9]);
        assert!(list.slices(&mem, 8190, 4).is_err());
        assert!(list.slices(&mem, 0, 0).is_err());
        assert!(list.slices(&mem, u64::MAX, 2).is_err());
    }

    #[test]
    fn stale_memory_is_detected_not_used() {
        let mem = two_region_mem();
        let list = SegList::build([(0x300000, 4096)], 4096, &mem).unwrap();
        let smaller = GuestMem::from_ranges(&[(GuestAddress(0), 0x200000)]).unwrap();
        assert!(matches!(
            list.slices(&smaller, 0, 4096),
            Err(MemError::NotRam { .. })
        ));
    }

    #[test]
    fn copy_across_fragmented_lists() {
        let mem = two_region_mem();
        let a = SegList::build([(0x100000, 100), (0x200000, 300)], 400, &mem).unwrap();
        let b = SegList::build([(0x300000, 250), (0x310000, 150)], 400, &mem).unwrap();
        let data: Vec<u8> = (0..400u32).map(|i| (i % 251) as u8).collect();
        mem.write_slice(&data[..100], GuestAddress(0x100000))
            .unwrap();
        mem.write_slice(&data[100..], GuestAddress(0x200000))
            .unwrap();
        let n = copy_slices(
            &a.slices(&mem, 0, 400).unwrap(),
            &b.slices(&mem, 0, 400).unwrap(),
        );
        assert_eq!(n, 400);
        let mut out = vec![0u8; 400];
        mem.read_slice(&mut out[..250], GuestAddress(0x300000))
            .unwrap();
        mem.read_slice(&mut out[250..], GuestAddress(0x310000))
            .unwrap();
        assert_eq!(out, data);
    }
}
