// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Who may use the control socket: the peer's credentials as the kernel took them at its
//! `connect` (`SO_PEERCRED`, `SO_PEERGROUPS`), and the `--control-group` whose members are served
//! besides the daemon's uid and root.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use thiserror::Error;

/// Why a `--control-group` argument names no group.
#[derive(Debug, Error)]
pub enum GroupError {
    /// No such group in the group database.
    #[error("no group named {0:?}")]
    Unknown(String),
    /// The name cannot be passed to the C library.
    #[error("invalid group name {0:?}")]
    BadName(String),
    /// The group database could not be read.
    #[error("cannot look up group {0:?}")]
    Lookup(String, #[source] io::Error),
}

/// The gid of `group`: a number is taken as it is, a name is looked up in the group database
/// (`getgrnam_r`, so NSS sources count). Call it before the sandbox closes the filesystem.
pub fn resolve_group(group: &str) -> Result<u32, GroupError> {
    if !group.is_empty() && group.bytes().all(|b| b.is_ascii_digit()) {
        return group
            .parse()
            .map_err(|_| GroupError::Unknown(group.to_owned()));
    }
    let name = std::ffi::CString::new(group).map_err(|_| GroupError::BadName(group.to_owned()))?;
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: `group` is a C struct of integers and pointers; zeroed (null) is valid.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::group = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call: a NUL-terminated name, `grp` and
        // `found` we own, and `buf` of the length passed.
        let r = unsafe {
            libc::getgrnam_r(
                name.as_ptr(),
                &mut grp,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut found,
            )
        };
        match r {
            0 if found.is_null() => return Err(GroupError::Unknown(group.to_owned())),
            0 => return Ok(grp.gr_gid),
            libc::ERANGE if buf.len() < 1 << 20 => buf.resize(buf.len() * 4, 0),
            e => {
                return Err(GroupError::Lookup(
                    group.to_owned(),
                    io::Error::from_raw_os_error(e),
                ))
            }
        }
    }
}

/// The peer's uid, primary gid and pid (`SO_PEERCRED`, taken at its `connect`).
pub(super) fn peer_cred(stream: &UnixStream) -> io::Result<(u32, u32, i32)> {
    // SAFETY: `ucred` is plain data; zeroed is a valid value.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: SO_PEERCRED writes at most `len` bytes into `cred`, which we own; checked below.
    let r = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((cred.uid, cred.gid, cred.pid))
}

/// The peer's supplementary groups (`SO_PEERGROUPS`, Linux 4.13+, taken at its `connect`).
fn peer_groups(stream: &UnixStream) -> io::Result<Vec<libc::gid_t>> {
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut len = (groups.len() * size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: SO_PEERGROUPS writes at most `len` bytes into `groups`, which we own, and
        // sets `len` to what it wrote (or, with ERANGE, to what it needs).
        let r = unsafe {
            libc::getsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let n = len as usize / size_of::<libc::gid_t>();
        if r == 0 {
            groups.truncate(n);
            return Ok(groups);
        }
        let e = io::Error::last_os_error();
        // NGROUPS_MAX is 65536: a larger answer is not a group list.
        if e.raw_os_error() != Some(libc::ERANGE) || n <= groups.len() || n > 65536 {
            return Err(e);
        }
        groups.resize(n, 0);
    }
}

/// Whether a peer may use the control socket: the daemon's uid, root, or (with a control group)
/// a member of the group.
pub(super) fn peer_allowed(stream: &UnixStream, uid: u32, gid: u32, group: Option<u32>) -> bool {
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if uid == me || uid == 0 {
        return true;
    }
    match group {
        Some(g) if gid == g => true,
        Some(g) => peer_groups(stream).is_ok_and(|groups| groups.contains(&g)),
        None => false,
    }
}
