// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Segment lists (`virtio_dmabuf_seg`, spec section 6.2) as bytes allow checking them: no
//! segment of length zero, no segment whose end overflows 64 bits. Contiguous neighbours are
//! coalesced into runs as the list is read, so a long list never exists in memory twice.
//!
//! Whether the runs are guest RAM, and whether they add up to the size the request needs, is for
//! the device to check: it knows the guest's memory and the buffer.

use thiserror::Error;

/// Why a segment was refused.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum SegmentError {
    /// A segment of length zero.
    #[error("segment {index} has length zero")]
    ZeroLength {
        /// Segment index.
        index: usize,
    },
    /// `addr + len` does not fit in 64 bits.
    #[error("segment {index} at {addr:#x} + {len:#x} overflows")]
    Overflow {
        /// Segment index.
        index: usize,
        /// Guest-physical address.
        addr: u64,
        /// Length.
        len: u64,
    },
}

/// One coalesced run of guest-physical memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// Offset of the run's first byte within the buffer.
    pub offset: u64,
    /// Guest-physical address of the run.
    pub gpa: u64,
    /// Length in bytes (not zero; `gpa + len` does not overflow).
    pub len: u64,
}

/// A segment list whose segments are each valid, coalesced into runs in buffer order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentList {
    runs: Vec<Run>,
    /// The sum of the lengths; `None` once it overflowed 64 bits.
    total: Option<u64>,
    count: usize,
}

impl Default for SegmentList {
    fn default() -> Self {
        SegmentList {
            runs: Vec::new(),
            total: Some(0),
            count: 0,
        }
    }
}

impl SegmentList {
    /// Build a list from `(addr, len)` pairs.
    pub fn from_pairs<I>(segs: I) -> Result<SegmentList, SegmentError>
    where
        I: IntoIterator<Item = (u64, u64)>,
    {
        let mut b = SegmentListBuilder::default();
        for (addr, len) in segs {
            b.push(addr, len)?;
        }
        Ok(b.finish())
    }

    /// The sum of the segment lengths, computed without overflow: `None` if it does not fit in
    /// 64 bits (then it matches no size).
    pub fn total(&self) -> Option<u64> {
        self.total
    }

    /// Whether the lengths add up to exactly `size`.
    pub fn adds_up_to(&self, size: u64) -> bool {
        self.total == Some(size)
    }

    /// Number of segments as the driver sent them.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The coalesced runs, in buffer order.
    pub fn runs(&self) -> &[Run] {
        &self.runs
    }

    /// The runs, for a device that keeps them.
    pub fn into_runs(self) -> Vec<Run> {
        self.runs
    }
}

/// Accumulates a segment list as it is read, checking and coalescing as it goes.
#[derive(Debug, Default)]
pub struct SegmentListBuilder {
    list: SegmentList,
}

impl SegmentListBuilder {
    /// A builder expecting about `n` segments (reserves address space, touches nothing).
    pub fn with_capacity(n: usize) -> SegmentListBuilder {
        SegmentListBuilder {
            list: SegmentList {
                runs: Vec::with_capacity(n),
                ..SegmentList::default()
            },
        }
    }

    /// Add the next segment.
    pub fn push(&mut self, addr: u64, len: u64) -> Result<(), SegmentError> {
        let l = &mut self.list;
        let index = l.count;
        l.count += 1;
        if len == 0 {
            return Err(SegmentError::ZeroLength { index });
        }
        // Every segment's end fits in 64 bits, so a coalesced run's end does too.
        addr.checked_add(len)
            .ok_or(SegmentError::Overflow { index, addr, len })?;
        match (l.runs.last_mut(), l.total) {
            (Some(last), _) if last.gpa + last.len == addr => last.len += len,
            // Past an overflowing sum the list is only counted: it matches no size.
            (_, Some(offset)) => l.runs.push(Run {
                offset,
                gpa: addr,
                len,
            }),
            (_, None) => {}
        }
        l.total = l.total.and_then(|t| t.checked_add(len));
        Ok(())
    }

    /// The list so far.
    pub fn finish(self) -> SegmentList {
        self.list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesces_contiguous_segments_in_order() {
        let l =
            SegmentList::from_pairs([(0x1000, 0x1000), (0x2000, 0x800), (0x9000, 0x10)]).unwrap();
        assert_eq!(l.count(), 3);
        assert_eq!(l.total(), Some(0x1810));
        assert_eq!(
            l.runs(),
            [
                Run {
                    offset: 0,
                    gpa: 0x1000,
                    len: 0x1800
                },
                Run {
                    offset: 0x1800,
                    gpa: 0x9000,
                    len: 0x10
                }
            ]
        );
        // Reverse order in memory is not contiguous in the buffer.
        let l = SegmentList::from_pairs([(0x2000, 0x1000), (0x1000, 0x1000)]).unwrap();
        assert_eq!(l.runs().len(), 2);
    }

    #[test]
    fn refuses_zero_lengths_and_overflow() {
        assert_eq!(
            SegmentList::from_pairs([(0x1000, 1), (0x2000, 0)]),
            Err(SegmentError::ZeroLength { index: 1 })
        );
        assert_eq!(
            SegmentList::from_pairs([(u64::MAX - 10, 0x1000)]),
            Err(SegmentError::Overflow {
                index: 0,
                addr: u64::MAX - 10,
                len: 0x1000
            })
        );
        // The last byte of the address space is a valid segment.
        assert!(SegmentList::from_pairs([(u64::MAX - 1, 1)]).is_ok());
        let huge = SegmentList::from_pairs([(0, u64::MAX), (0, u64::MAX)]).unwrap();
        assert_eq!(huge.total(), None, "the sum overflows");
        assert!(!huge.adds_up_to(u64::MAX));
        let exact = SegmentList::from_pairs([(0, u64::MAX - 1), (0, 1)]).unwrap();
        assert!(exact.adds_up_to(u64::MAX));
        assert_eq!(SegmentList::from_pairs([]).unwrap().total(), Some(0));
    }
}
