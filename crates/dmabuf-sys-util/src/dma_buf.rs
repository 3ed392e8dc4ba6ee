// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Linux's dma-buf CPU-access bracket (`DMA_BUF_IOCTL_SYNC`, include/uapi/linux/dma-buf.h): the
//! daemon brackets its own accesses to host dma-buf shares with it, and clients bracket their
//! accesses to the dma-bufs EXPORT returns.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `DMA_BUF_IOCTL_SYNC` = `_IOW('b', 0, struct dma_buf_sync)` (one u64 of flags).
const DMA_BUF_IOCTL_SYNC: libc::c_ulong = 0x4008_6200;
const DMA_BUF_SYNC_READ: u64 = 1;
const DMA_BUF_SYNC_WRITE: u64 = 2;
const DMA_BUF_SYNC_END: u64 = 4;

/// The direction of a CPU access, as the kernel's dma-buf exporter is told it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuAccess {
    /// The CPU reads.
    Read,
    /// The CPU writes.
    Write,
    /// The CPU reads and writes.
    ReadWrite,
}

impl CpuAccess {
    fn flags(self) -> u64 {
        match self {
            CpuAccess::Read => DMA_BUF_SYNC_READ,
            CpuAccess::Write => DMA_BUF_SYNC_WRITE,
            CpuAccess::ReadWrite => DMA_BUF_SYNC_READ | DMA_BUF_SYNC_WRITE,
        }
    }
}

/// Tell the exporter of the dma-buf `fd` that the CPU starts accessing it.
pub fn begin_cpu_access(fd: BorrowedFd<'_>, access: CpuAccess) -> io::Result<()> {
    sync(fd, access.flags())
}

/// Tell the exporter of the dma-buf `fd` that the CPU access begun with `access` ended.
pub fn end_cpu_access(fd: BorrowedFd<'_>, access: CpuAccess) -> io::Result<()> {
    sync(fd, access.flags() | DMA_BUF_SYNC_END)
}

/// One `DMA_BUF_IOCTL_SYNC`, restarted when the kernel asks for it (`EINTR`, `EAGAIN`, as the
/// uapi header says).
fn sync(fd: BorrowedFd<'_>, flags: u64) -> io::Result<()> {
    loop {
        // SAFETY: DMA_BUF_IOCTL_SYNC reads one u64 (`struct dma_buf_sync`) from the pointer,
        // which points at a live local; the return value is checked.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), DMA_BUF_IOCTL_SYNC, &flags) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if !matches!(e.raw_os_error(), Some(libc::EINTR | libc::EAGAIN)) {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_memfd_is_not_a_dma_buf() {
        let f = crate::memfd::sealed_memfd("t", 4096).unwrap();
        let e = begin_cpu_access(f.as_fd(), CpuAccess::Read).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTTY));
        assert!(end_cpu_access(f.as_fd(), CpuAccess::ReadWrite).is_err());
    }
}
