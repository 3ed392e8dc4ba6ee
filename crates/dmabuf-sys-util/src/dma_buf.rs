// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Linux's dma-buf CPU-access bracket (`DMA_BUF_IOCTL_SYNC`, include/uapi/linux/dma-buf.h): the
//! daemon brackets its own accesses to host dma-buf shares with it, and clients bracket their
//! accesses to the dma-bufs EXPORT returns.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Instant;

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
    /// The `poll(2)` event that says the dma-buf's fences allow this access: `POLLIN` when the
    /// write fences signalled (safe to read), `POLLOUT` when all did (safe to write).
    pub fn poll_events(self) -> libc::c_short {
        match self {
            CpuAccess::Read => libc::POLLIN,
            CpuAccess::Write | CpuAccess::ReadWrite => libc::POLLOUT,
        }
    }

    fn flags(self) -> u64 {
        match self {
            CpuAccess::Read => DMA_BUF_SYNC_READ,
            CpuAccess::Write => DMA_BUF_SYNC_WRITE,
            CpuAccess::ReadWrite => DMA_BUF_SYNC_READ | DMA_BUF_SYNC_WRITE,
        }
    }
}

/// Tell the exporter of the dma-buf `fd` that the CPU starts accessing it. The kernel waits
/// for the dma-buf's fences first, without a bound: see [`begin_cpu_access_until`].
pub fn begin_cpu_access(fd: BorrowedFd<'_>, access: CpuAccess) -> io::Result<()> {
    sync(fd, access.flags(), None)
}

/// [`begin_cpu_access`], restarted after `EINTR`/`EAGAIN` only until `deadline`: then
/// `ErrorKind::TimedOut`. (The wait in the kernel is interruptible: a signal at the deadline
/// ends it; see the daemon's watchdog.)
pub fn begin_cpu_access_until(
    fd: BorrowedFd<'_>,
    access: CpuAccess,
    deadline: Instant,
) -> io::Result<()> {
    sync(fd, access.flags(), Some(deadline))
}

/// Tell the exporter of the dma-buf `fd` that the CPU access begun with `access` ended.
pub fn end_cpu_access(fd: BorrowedFd<'_>, access: CpuAccess) -> io::Result<()> {
    sync(fd, access.flags() | DMA_BUF_SYNC_END, None)
}

/// [`end_cpu_access`], restarted only until `deadline`.
pub fn end_cpu_access_until(
    fd: BorrowedFd<'_>,
    access: CpuAccess,
    deadline: Instant,
) -> io::Result<()> {
    sync(fd, access.flags() | DMA_BUF_SYNC_END, Some(deadline))
}

/// Whether the fences of the dma-buf `fd` allow `access` now (`poll(2)` with no wait).
pub fn fences_signalled(fd: BorrowedFd<'_>, access: CpuAccess) -> io::Result<bool> {
    wait_fences(fd, access, Instant::now())
}

/// Wait until the fences of the dma-buf `fd` allow `access`, at most until `deadline`: whether
/// they do. Polling a dma-buf waits on its fences without taking any lock the kernel's
/// `DMA_BUF_IOCTL_SYNC` would take, and a timeout ends it.
pub fn wait_fences(fd: BorrowedFd<'_>, access: CpuAccess, deadline: Instant) -> io::Result<bool> {
    let events = access.poll_events();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // Round up, so that a wait of 0.5 ms does not spin with a 0 ms timeout.
        let ms = libc::c_int::try_from(left.as_micros().div_ceil(1000)).unwrap_or(libc::c_int::MAX);
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd; only `revents` is written. The return value is checked.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r > 0 {
            if pfd.revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
                return Err(io::Error::from_raw_os_error(libc::EBADF));
            }
            return Ok(pfd.revents & events != 0);
        }
        if r == 0 {
            if Instant::now() >= deadline {
                return Ok(false);
            }
            continue;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// One `DMA_BUF_IOCTL_SYNC`, restarted when the kernel asks for it (`EINTR`, `EAGAIN`, as the
/// uapi header says) — until `deadline`, if there is one.
fn sync(fd: BorrowedFd<'_>, flags: u64, deadline: Option<Instant>) -> io::Result<()> {
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
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "DMA_BUF_IOCTL_SYNC did not complete within its bound",
            ));
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
        let soon = Instant::now() + std::time::Duration::from_millis(10);
        assert!(begin_cpu_access_until(f.as_fd(), CpuAccess::Write, soon).is_err());
        // A regular file polls ready at once, both ways.
        assert!(fences_signalled(f.as_fd(), CpuAccess::Read).unwrap());
        assert!(wait_fences(f.as_fd(), CpuAccess::Write, soon).unwrap());
    }

    #[test]
    fn a_wait_ends_at_its_deadline() {
        // A pipe with nothing in it is never readable: the stand-in for an unsignalled fence.
        let (r, _w) = std::io::pipe().unwrap();
        let t0 = Instant::now();
        let until = t0 + std::time::Duration::from_millis(50);
        assert!(!wait_fences(r.as_fd(), CpuAccess::Read, until).unwrap());
        let took = t0.elapsed();
        assert!(took >= std::time::Duration::from_millis(50), "{took:?}");
        assert!(took < std::time::Duration::from_secs(5), "{took:?}");
        assert!(!fences_signalled(r.as_fd(), CpuAccess::Read).unwrap());
    }
}
