// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! File descriptors as a budget: the `RLIMIT_NOFILE` limits, and receiving one fd over a Unix
//! socket (`SCM_RIGHTS`) such that an fd the kernel could not install — the receiver is at its
//! limit — is reported, not silently lost.
//!
//! When a process at its fd limit receives `SCM_RIGHTS`, the kernel consumes the data bytes,
//! drops the descriptors and sets `MSG_CTRUNC`. A receiver that takes that for "no fd" (or for a
//! broken connection) answers the wrong thing; [`recv_with_fd`] says [`Received::fd_dropped`].

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};

/// The soft and hard `RLIMIT_NOFILE` of this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NofileLimit {
    /// The limit in force: one more than the highest fd number the process may open.
    pub soft: u64,
    /// The most the soft limit may be raised to without privilege.
    pub hard: u64,
}

/// The current `RLIMIT_NOFILE`.
pub fn nofile_limit() -> io::Result<NofileLimit> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` into the local we own; the return value is checked.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(NofileLimit {
        soft: r.rlim_cur,
        hard: r.rlim_max,
    })
}

/// Raise the soft `RLIMIT_NOFILE` to the hard one; returns the limits now in force.
pub fn raise_nofile_to_hard() -> io::Result<NofileLimit> {
    let now = nofile_limit()?;
    if now.soft < now.hard {
        let r = libc::rlimit {
            rlim_cur: now.hard,
            rlim_max: now.hard,
        };
        // SAFETY: setrlimit reads one `rlimit` from the local; the return value is checked.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    nofile_limit()
}

/// Whether `e` says the process (`EMFILE`) or the system (`ENFILE`) is out of file descriptors.
pub fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// What one [`recv_with_fd`] got.
#[derive(Debug)]
pub struct Received {
    /// Data bytes read (0: end of stream).
    pub bytes: usize,
    /// The fd that came with them, close-on-exec.
    pub fd: Option<File>,
    /// The sender attached descriptors that the kernel could not install (`MSG_CTRUNC`: this
    /// process is at its fd limit) or that did not fit: they are closed, the bytes are read.
    pub fd_dropped: bool,
}

/// Room for one `cmsghdr` with up to four fds, aligned for `cmsghdr`.
#[repr(C)]
struct CmsgSpace {
    hdr: libc::cmsghdr,
    fds: [libc::c_int; 4],
}

/// Receive up to `buf.len()` bytes and at most one fd (`MSG_CMSG_CLOEXEC`). Extra descriptors
/// are closed and reported as dropped, like the ones the kernel could not install.
pub fn recv_with_fd(sock: &impl AsRawFd, buf: &mut [u8]) -> io::Result<Received> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: plain data; all-zero is a valid value of both structs.
    let mut space: CmsgSpace = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = (&mut space as *mut CmsgSpace).cast();
    msg.msg_controllen = size_of::<CmsgSpace>() as _;
    let n = loop {
        // SAFETY: `msg` points at the live iovec over `buf` and at `space`, both sized as
        // declared; the kernel writes within them. The return value is checked.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    let mut fds = Vec::new();
    // SAFETY: `msg` was filled by recvmsg; the CMSG macros walk the control buffer within
    // `msg_controllen`, which the kernel set to what it wrote.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !cmsg.is_null() {
        // SAFETY: `cmsg` is a header inside the control buffer (CMSG_FIRSTHDR/NXTHDR checked).
        let (level, kind, len) =
            unsafe { ((*cmsg).cmsg_level, (*cmsg).cmsg_type, (*cmsg).cmsg_len) };
        if level == libc::SOL_SOCKET && kind == libc::SCM_RIGHTS {
            // SAFETY: CMSG_LEN(0) is the header size; no memory is touched.
            let head = unsafe { libc::CMSG_LEN(0) } as usize;
            #[allow(clippy::unnecessary_cast)] // `cmsg_len` is not usize everywhere.
            let count = (len as usize).saturating_sub(head) / size_of::<libc::c_int>();
            // SAFETY: CMSG_DATA points just past the header, inside the control buffer.
            let data = unsafe { libc::CMSG_DATA(cmsg) }.cast::<libc::c_int>();
            for i in 0..count {
                // SAFETY: `i < count`, and `count` ints follow the header within `cmsg_len`
                // (which lies within the buffer); the data need not be aligned for c_int.
                let fd = unsafe { data.add(i).read_unaligned() };
                // SAFETY: the kernel installed this fd for us; nothing else owns it.
                fds.push(unsafe { File::from_raw_fd(fd) });
            }
        }
        // SAFETY: as for CMSG_FIRSTHDR.
        cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
    }
    let truncated = msg.msg_flags & libc::MSG_CTRUNC != 0;
    let mut fds = fds.into_iter();
    let fd = fds.next();
    let extra = fds.len() > 0;
    Ok(Received {
        bytes: n,
        fd,
        fd_dropped: truncated || extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    fn send_with_fds(sock: &UnixStream, data: &[u8], fds: &[i32]) {
        let mut iov = libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        // SAFETY: plain data.
        let mut space: CmsgSpace = unsafe { std::mem::zeroed() };
        // SAFETY: plain data.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = (&mut space as *mut CmsgSpace).cast();
        // SAFETY: CMSG_SPACE computes a size.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE((fds.len() * 4) as u32) } as _;
        // SAFETY: the control buffer is large enough for up to four fds.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN((fds.len() * 4) as u32) as _;
            std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(c).cast(), fds.len());
        }
        // SAFETY: `msg` describes live buffers; the result is checked.
        let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, 0) };
        assert_eq!(n, data.len() as isize);
    }

    #[test]
    fn one_fd_arrives_close_on_exec_and_extra_ones_are_reported() {
        let (a, b) = UnixStream::pair().unwrap();
        let f = crate::memfd::sealed_memfd("t", 4096).unwrap();
        send_with_fds(&a, b"hello", &[f.as_raw_fd()]);
        let mut buf = [0u8; 16];
        let r = recv_with_fd(&b, &mut buf).unwrap();
        assert_eq!((r.bytes, r.fd_dropped), (5, false));
        let got = r.fd.expect("the fd");
        // SAFETY: F_GETFD on an fd we own.
        let flags = unsafe { libc::fcntl(got.as_raw_fd(), libc::F_GETFD) };
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
        assert_eq!(got.metadata().unwrap().len(), 4096);

        send_with_fds(&a, b"two", &[f.as_raw_fd(), f.as_raw_fd()]);
        let r = recv_with_fd(&b, &mut buf).unwrap();
        assert_eq!((r.bytes, r.fd_dropped), (3, true));
        assert!(r.fd.is_some());

        std::io::Write::write_all(&mut &a, b"plain").unwrap();
        let r = recv_with_fd(&b, &mut buf).unwrap();
        assert_eq!((r.bytes, r.fd.is_none(), r.fd_dropped), (5, true, false));
        drop(a);
        assert_eq!(recv_with_fd(&b, &mut buf).unwrap().bytes, 0);
    }

    #[test]
    fn an_fd_over_the_limit_is_reported_dropped() {
        // In a child process, so that lowering the limit touches nothing else.
        let (a, b) = UnixStream::pair().unwrap();
        let f = crate::memfd::sealed_memfd("t", 4096).unwrap();
        send_with_fds(&a, b"x", &[f.as_raw_fd()]);
        let hard = nofile_limit().unwrap().hard;
        // SAFETY: the child calls setrlimit and recvmsg (through `recv_with_fd`, whose only
        // allocation is an empty Vec, which does not allocate) and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // No new fd at all: every number is at or above the limit.
            let lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: hard,
            };
            let code = (|| {
                // SAFETY: setrlimit on a local struct.
                if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
                    return 2;
                }
                let mut buf = [0u8; 4];
                match recv_with_fd(&b, &mut buf) {
                    Ok(r) if r.bytes == 1 && r.fd.is_none() && r.fd_dropped => 0,
                    _ => 1,
                }
            })();
            // SAFETY: leave the child at once.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child status {status:#x}"
        );
    }

    #[test]
    fn limits_read_and_raise() {
        let l = raise_nofile_to_hard().unwrap();
        assert_eq!(l.soft, l.hard);
        assert_eq!(nofile_limit().unwrap(), l);
        assert!(is_fd_exhaustion(&io::Error::from_raw_os_error(
            libc::EMFILE
        )));
        assert!(!is_fd_exhaustion(&io::Error::from_raw_os_error(
            libc::EINVAL
        )));
    }
}
