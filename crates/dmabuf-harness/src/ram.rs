// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Guest RAM as QEMU lays it out: one memfd, split into regions around a hole.

use std::fs::File;

use dmabuf_sys_util::memfd::sealed_memfd;
use vhost::VhostUserMemoryRegionInfo;
use vm_memory::{Bytes, FileOffset, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

use crate::HarnessError;

/// Start of the legacy hole QEMU leaves in low memory.
pub const HOLE_START: u64 = 0xa0000;
/// End of that hole.
pub const HOLE_END: u64 = 0xc0000;
/// Page size.
pub const PAGE: u64 = 4096;

/// Guest memory shared with the daemon through a memfd.
pub struct GuestRam {
    file: File,
    mem: GuestMemoryMmap<()>,
    size: u64,
}

impl GuestRam {
    /// `size` bytes of guest RAM (at least 2 MiB): regions `0..0xa0000` and `0xc0000..size`.
    pub fn new(size: u64) -> Result<GuestRam, HarnessError> {
        if size < (2 << 20) {
            return Err(HarnessError::Setup("guest RAM below 2 MiB".into()));
        }
        // QEMU seals its RAM memfds against shrinking; do the same so udmabuf would accept them.
        let file = sealed_memfd("dmabuf-harness-ram", size)?;
        let ranges = [(0, HOLE_START), (HOLE_END, size - HOLE_END)];
        let with_files: Vec<(GuestAddress, usize, Option<FileOffset>)> = ranges
            .iter()
            .map(|&(gpa, len)| {
                Ok((
                    GuestAddress(gpa),
                    usize::try_from(len).map_err(|_| HarnessError::Setup("size".into()))?,
                    Some(FileOffset::new(file.try_clone()?, gpa)),
                ))
            })
            .collect::<Result<_, HarnessError>>()?;
        let mem =
            GuestMemoryMmap::from_ranges_with_files(&with_files).map_err(HarnessError::MapRam)?;
        Ok(GuestRam { file, mem, size })
    }

    /// The memfd behind guest RAM (what QEMU's `memory-backend-memfd` would hold).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The harness's own view of guest memory.
    pub fn mem(&self) -> &GuestMemoryMmap<()> {
        &self.mem
    }

    /// Bytes of RAM (including the hole's address range).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The memory table as SET_MEM_TABLE sends it.
    pub fn regions(&self) -> Vec<VhostUserMemoryRegionInfo> {
        self.mem
            .iter()
            .filter_map(|r| VhostUserMemoryRegionInfo::from_guest_region(r).ok())
            .collect()
    }

    /// Write guest memory.
    pub fn write(&self, gpa: u64, data: &[u8]) -> Result<(), HarnessError> {
        self.mem
            .write_slice(data, GuestAddress(gpa))
            .map_err(|e| HarnessError::GuestMemory(gpa, e))
    }

    /// Read guest memory.
    pub fn read(&self, gpa: u64, out: &mut [u8]) -> Result<(), HarnessError> {
        self.mem
            .read_slice(out, GuestAddress(gpa))
            .map_err(|e| HarnessError::GuestMemory(gpa, e))
    }
}

/// Hands out guest pages from the high region: a bump allocator (tests are short-lived).
#[derive(Debug)]
pub struct PageAllocator {
    next: u64,
    end: u64,
}

impl PageAllocator {
    /// Pages from `start` up to `end`.
    pub fn new(start: u64, end: u64) -> Self {
        PageAllocator { next: start, end }
    }

    /// `n` physically contiguous pages; returns the first GPA.
    pub fn contiguous(&mut self, n: u64) -> Result<u64, HarnessError> {
        let len = n.checked_mul(PAGE).ok_or(HarnessError::OutOfGuestMemory)?;
        if self.next + len > self.end {
            return Err(HarnessError::OutOfGuestMemory);
        }
        let at = self.next;
        self.next += len;
        Ok(at)
    }

    /// `n` pages none of which is contiguous with the next (a gap page between each).
    pub fn scattered(&mut self, n: u64) -> Result<Vec<u64>, HarnessError> {
        let start = self.contiguous(n.checked_mul(2).ok_or(HarnessError::OutOfGuestMemory)?)?;
        Ok((0..n).map(|i| start + i * 2 * PAGE).collect())
    }
}
