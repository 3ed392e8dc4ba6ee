// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Ranges of one VM's shared memory region: a best-fit allocator over a coalescing free list.
//!
//! Every offset and length is a multiple of [`PAGE`]. Free space is kept as maximal extents:
//! an extent freed next to another free extent is merged with it at once, so two free extents
//! are never adjacent. That gives the bound this allocator promises:
//!
//! * with `k` ranges allocated (quarantined ones included), the free space is split into at
//!   most `k + 1` extents;
//! * so a request of `len` bytes always succeeds while the free space is at least
//!   `len × (k + 1)` (the largest of `k + 1` extents holding `F` bytes has at least
//!   `F / (k + 1)`), and it fails (NO_SPACE) only when no single free extent holds `len`.
//!
//! Best fit (the smallest extent that holds the request, the lowest offset among equals) keeps
//! large extents whole for large requests. Both operations are O(log n).

use std::collections::{BTreeMap, BTreeSet};

/// The unit of the region: offsets and lengths are multiples of it.
pub const PAGE: u64 = 4096;

/// Why a range could not be allocated or freed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// A length of zero, not a multiple of a page, or larger than the region.
    #[error("invalid length {0:#x}")]
    BadLength(u64),
    /// No free extent holds the request.
    #[error("no free range of {0:#x} bytes")]
    NoSpace(u64),
    /// Freeing a range that is not allocated as given.
    #[error("range {offset:#x}+{len:#x} is not allocated")]
    NotAllocated {
        /// Offset.
        offset: u64,
        /// Length.
        len: u64,
    },
}

/// The allocator of one region.
#[derive(Debug)]
pub struct RegionAllocator {
    size: u64,
    /// Free extents by offset → length.
    free: BTreeMap<u64, u64>,
    /// The same extents by (length, offset), for best fit.
    by_len: BTreeSet<(u64, u64)>,
    /// Allocated ranges by offset → length.
    used: BTreeMap<u64, u64>,
}

impl RegionAllocator {
    /// An empty region of `size` bytes (rounded down to whole pages).
    pub fn new(size: u64) -> RegionAllocator {
        let size = size - size % PAGE;
        let mut a = RegionAllocator {
            size,
            free: BTreeMap::new(),
            by_len: BTreeSet::new(),
            used: BTreeMap::new(),
        };
        if size > 0 {
            a.insert_free(0, size);
        }
        a
    }

    /// Bytes of the region.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Allocated ranges.
    pub fn allocated(&self) -> usize {
        self.used.len()
    }

    /// Free bytes.
    pub fn free_bytes(&self) -> u64 {
        self.free.values().sum()
    }

    /// Free extents (for the fragmentation bound: at most `allocated() + 1`).
    pub fn free_extents(&self) -> usize {
        self.free.len()
    }

    /// The largest free extent.
    pub fn largest_free(&self) -> u64 {
        self.by_len.last().map_or(0, |&(len, _)| len)
    }

    fn insert_free(&mut self, offset: u64, len: u64) {
        self.free.insert(offset, len);
        self.by_len.insert((len, offset));
    }

    fn remove_free(&mut self, offset: u64, len: u64) {
        self.free.remove(&offset);
        self.by_len.remove(&(len, offset));
    }

    /// Allocate `len` bytes (a multiple of [`PAGE`]); returns the offset.
    pub fn alloc(&mut self, len: u64) -> Result<u64, AllocError> {
        if len == 0 || !len.is_multiple_of(PAGE) || len > self.size {
            return Err(AllocError::BadLength(len));
        }
        let &(ext_len, ext_off) = self
            .by_len
            .range((len, 0)..)
            .next()
            .ok_or(AllocError::NoSpace(len))?;
        self.remove_free(ext_off, ext_len);
        if ext_len > len {
            self.insert_free(ext_off + len, ext_len - len);
        }
        self.used.insert(ext_off, len);
        Ok(ext_off)
    }

    /// Allocate exactly `offset..offset+len`, if it is free.
    pub fn reserve_at(&mut self, offset: u64, len: u64) -> Result<(), AllocError> {
        let end = offset.checked_add(len).ok_or(AllocError::BadLength(len))?;
        if len == 0 || !len.is_multiple_of(PAGE) || !offset.is_multiple_of(PAGE) {
            return Err(AllocError::BadLength(len));
        }
        let (&ext_off, &ext_len) = self
            .free
            .range(..=offset)
            .next_back()
            .filter(|&(&o, &l)| o + l >= end)
            .ok_or(AllocError::NoSpace(len))?;
        self.remove_free(ext_off, ext_len);
        if ext_off < offset {
            self.insert_free(ext_off, offset - ext_off);
        }
        if end < ext_off + ext_len {
            self.insert_free(end, ext_off + ext_len - end);
        }
        self.used.insert(offset, len);
        Ok(())
    }

    /// Give back a range [`RegionAllocator::alloc`] returned, merging it with free neighbours.
    pub fn free(&mut self, offset: u64, len: u64) -> Result<(), AllocError> {
        if self.used.get(&offset) != Some(&len) {
            return Err(AllocError::NotAllocated { offset, len });
        }
        self.used.remove(&offset);
        let (mut start, mut end) = (offset, offset + len);
        if let Some((&prev_off, &prev_len)) = self.free.range(..offset).next_back() {
            if prev_off + prev_len == offset {
                self.remove_free(prev_off, prev_len);
                start = prev_off;
            }
        }
        if let Some(&next_len) = self.free.get(&end) {
            self.remove_free(end, next_len);
            end += next_len;
        }
        self.insert_free(start, end - start);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// The invariants: extents maximal and disjoint, both indexes agree, every byte is either
    /// free or used exactly once, and the fragmentation bound holds.
    fn check(a: &RegionAllocator) {
        assert_eq!(a.free.len(), a.by_len.len());
        let mut spans: Vec<(u64, u64, bool)> = a
            .free
            .iter()
            .map(|(&o, &l)| (o, l, true))
            .chain(a.used.iter().map(|(&o, &l)| (o, l, false)))
            .collect();
        spans.sort_unstable();
        let mut at = 0;
        let mut prev_free = false;
        for (o, l, is_free) in spans {
            assert_eq!(o, at, "gap or overlap at {o:#x}");
            assert!(l > 0 && l % PAGE == 0);
            assert!(a.by_len.contains(&(l, o)) || !is_free);
            assert!(
                !(prev_free && is_free),
                "two adjacent free extents at {o:#x}"
            );
            prev_free = is_free;
            at = o + l;
        }
        assert_eq!(at, a.size);
        assert!(a.free_extents() <= a.allocated() + 1);
    }

    #[test]
    fn rejects_bad_lengths_and_reports_exhaustion() {
        let mut a = RegionAllocator::new(2 * MIB);
        assert_eq!(a.alloc(0), Err(AllocError::BadLength(0)));
        assert_eq!(a.alloc(100), Err(AllocError::BadLength(100)));
        assert_eq!(a.alloc(4 * MIB), Err(AllocError::BadLength(4 * MIB)));
        assert_eq!(a.alloc(2 * MIB), Ok(0));
        assert_eq!(a.alloc(PAGE), Err(AllocError::NoSpace(PAGE)));
        assert_eq!(a.free_bytes(), 0);
        a.free(0, 2 * MIB).unwrap();
        assert_eq!(a.largest_free(), 2 * MIB);
        check(&a);
    }

    #[test]
    fn free_checks_what_was_allocated() {
        let mut a = RegionAllocator::new(MIB);
        let x = a.alloc(8 * PAGE).unwrap();
        assert!(a.free(x, 4 * PAGE).is_err(), "a part of a range");
        assert!(a.free(x + PAGE, 8 * PAGE).is_err(), "another offset");
        a.free(x, 8 * PAGE).unwrap();
        assert!(a.free(x, 8 * PAGE).is_err(), "twice");
        check(&a);
    }

    #[test]
    fn freed_neighbours_coalesce_back_into_one_extent() {
        let mut a = RegionAllocator::new(MIB);
        let r: Vec<u64> = (0..8).map(|_| a.alloc(4 * PAGE).unwrap()).collect();
        check(&a);
        // Free every other range: four holes, not adjacent to each other.
        for &o in r.iter().step_by(2) {
            a.free(o, 4 * PAGE).unwrap();
            check(&a);
        }
        assert_eq!(a.free_extents(), 5);
        // Free the rest: everything merges back into the whole region.
        for &o in r.iter().skip(1).step_by(2) {
            a.free(o, 4 * PAGE).unwrap();
            check(&a);
        }
        assert_eq!(a.free_extents(), 1);
        assert_eq!(a.largest_free(), MIB);
    }

    #[test]
    fn reserve_at_takes_exactly_a_free_range() {
        let mut a = RegionAllocator::new(MIB);
        a.reserve_at(8 * PAGE, 4 * PAGE).unwrap();
        check(&a);
        assert_eq!(a.free_extents(), 2);
        assert!(
            a.reserve_at(10 * PAGE, PAGE).is_err(),
            "overlaps a used range"
        );
        assert!(a.reserve_at(MIB - PAGE, 2 * PAGE).is_err(), "past the end");
        assert!(a.reserve_at(PAGE / 2, PAGE).is_err(), "unaligned");
        a.free(8 * PAGE, 4 * PAGE).unwrap();
        assert_eq!(a.free_extents(), 1);
        check(&a);
    }

    #[test]
    fn best_fit_keeps_large_extents_whole() {
        let mut a = RegionAllocator::new(MIB);
        let small = a.alloc(PAGE).unwrap();
        let _pin = a.alloc(PAGE).unwrap();
        a.free(small, PAGE).unwrap();
        // A one-page hole at 0 and a large extent after the pin: a page goes into the hole.
        assert_eq!(a.alloc(PAGE).unwrap(), small);
        assert_eq!(a.largest_free(), MIB - 2 * PAGE);
        check(&a);
    }

    /// A deterministic random workload: the bound `free_extents <= allocated + 1` holds after
    /// every step, and a request fails only when no extent holds it, and never when the free
    /// space is at least `len * (allocated + 1)`.
    #[test]
    fn fragmentation_bound_under_random_churn() {
        let mut a = RegionAllocator::new(64 * MIB);
        let mut live: Vec<(u64, u64)> = Vec::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut failures = 0;
        for _ in 0..20_000 {
            if live.is_empty() || next() % 3 != 0 {
                let len = (next() % 512 + 1) * PAGE;
                let enough = a.free_bytes() >= len * (a.allocated() as u64 + 1);
                match a.alloc(len) {
                    Ok(o) => live.push((o, len)),
                    Err(AllocError::NoSpace(_)) => {
                        failures += 1;
                        assert!(a.largest_free() < len);
                        assert!(!enough, "NO_SPACE although the bound promised room");
                    }
                    Err(e) => panic!("{e}"),
                }
            } else {
                let i = (next() % live.len() as u64) as usize;
                let (o, l) = live.swap_remove(i);
                a.free(o, l).unwrap();
            }
            assert!(a.free_extents() <= a.allocated() + 1);
        }
        check(&a);
        assert!(failures > 0, "the workload should reach exhaustion");
        for (o, l) in live {
            a.free(o, l).unwrap();
        }
        assert_eq!((a.free_extents(), a.largest_free()), (1, 64 * MIB));
    }
}
