// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Linux's dma-buf CPU-access bracket (`DMA_BUF_IOCTL_SYNC`, include/uapi/linux/dma-buf.h), as
//! the daemon uses it on host dma-buf shares and clients use it on the dma-bufs EXPORT returns.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `DMA_BUF_IOCTL_SYNC` = `_IOW('b', 0, struct dma_buf_sync)` (one u64 of flags).
const DMA_BUF_IOCTL_SYNC: libc::c_ulong = 0x4008_6200;
const DMA_BUF_SYNC_READ: u64 = 1;
const DMA_BUF_SYNC_WRITE: u64 = 2;
const DMA_BUF_SYNC_END: u64 = 4;

/// Start (`end == false`) or end a CPU access to the dma-buf `fd` for reading and/or writing.
/// Restarted when the kernel asks for it (`EINTR`, `EAGAIN`, as the uapi header says).
pub fn sync(fd: BorrowedFd<'_>, end: bool, read: bool, write: bool) -> io::Result<()> {
    let mut flags = 0u64;
    if read {
        flags |= DMA_BUF_SYNC_READ;
    }
    if write {
        flags |= DMA_BUF_SYNC_WRITE;
    }
    if end {
        flags |= DMA_BUF_SYNC_END;
    }
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
