// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Landlock (Linux 5.13+): after start-up the daemon needs nothing from the filesystem but to
//! remove its sockets at exit. The ruleset handles every filesystem right the kernel knows, TCP
//! bind and connect (ABI 4+), and scopes abstract Unix sockets and signals to the daemon
//! (ABI 6+); the only rule grants `REMOVE_FILE` beneath the directories of its sockets. Files
//! opened before (the sockets, `/dev/udmabuf`) and fds received later are not affected.
//!
//! Raw system calls through libc: three calls and two structs, fewer lines than a dependency.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use thiserror::Error;

const CREATE_RULESET_VERSION: u32 = 1;
const RULE_PATH_BENEATH: u32 = 1;

#[cfg(test)]
const FS_EXECUTE: u64 = 1 << 0;
const FS_REMOVE_FILE: u64 = 1 << 5;
/// Every filesystem right of ABI 1 (execute ... make_sym).
const FS_ABI1: u64 = (1 << 13) - 1;
const FS_REFER: u64 = 1 << 13;
const FS_TRUNCATE: u64 = 1 << 14;
const FS_IOCTL_DEV: u64 = 1 << 15;
const NET_BIND_TCP: u64 = 1 << 0;
const NET_CONNECT_TCP: u64 = 1 << 1;
const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
const SCOPE_SIGNAL: u64 = 1 << 1;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// Why landlock could not be set up.
#[derive(Debug, Error)]
pub enum LandlockError {
    /// The kernel has no landlock (or it is disabled).
    #[error("landlock is not available")]
    Unavailable(#[source] io::Error),
    /// A step failed.
    #[error("{0} failed")]
    Syscall(&'static str, #[source] io::Error),
    /// A directory to allow cannot be opened.
    #[error("cannot open {} for a landlock rule", .0.display())]
    Dir(PathBuf, #[source] io::Error),
}

/// The landlock ABI version the kernel offers (`Err` when it has none).
pub fn abi() -> Result<u32, LandlockError> {
    // SAFETY: landlock_create_ruleset(NULL, 0, VERSION) only returns the version.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    if r < 0 {
        return Err(LandlockError::Unavailable(io::Error::last_os_error()));
    }
    u32::try_from(r).map_err(|_| LandlockError::Unavailable(io::Error::other("bad version")))
}

/// What a ruleset of `abi` handles.
fn handled(abi: u32) -> RulesetAttr {
    let mut fs = FS_ABI1;
    if abi >= 2 {
        fs |= FS_REFER;
    }
    if abi >= 3 {
        fs |= FS_TRUNCATE;
    }
    if abi >= 5 {
        fs |= FS_IOCTL_DEV;
    }
    RulesetAttr {
        handled_access_fs: fs,
        handled_access_net: if abi >= 4 {
            NET_BIND_TCP | NET_CONNECT_TCP
        } else {
            0
        },
        scoped: if abi >= 6 {
            SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
        } else {
            0
        },
    }
}

/// The part of `RulesetAttr` an ABI knows: `handled_access_net` came with ABI 4, `scoped` with 6.
fn attr_size(abi: u32) -> usize {
    match abi {
        0..=3 => 8,
        4 | 5 => 16,
        _ => size_of::<RulesetAttr>(),
    }
}

/// What the ruleset of `abi` confines, for the start-up line.
pub fn describe(abi: u32, remove_in: &[PathBuf]) -> String {
    let h = handled(abi);
    let dirs: Vec<String> = remove_in.iter().map(|d| d.display().to_string()).collect();
    let mut s = format!(
        "landlock ABI {abi} (files: nothing but removing files in {}",
        if dirs.is_empty() {
            "no directory".to_owned()
        } else {
            dirs.join(", ")
        }
    );
    if h.handled_access_net != 0 {
        s.push_str("; TCP: none");
    }
    if h.scoped != 0 {
        s.push_str("; abstract sockets and signals: own only");
    }
    s.push(')');
    s
}

/// Restrict the calling thread (and the threads it starts later) to removing files beneath
/// `remove_in`; everything else the ruleset of this kernel's ABI handles is denied.
/// `no_new_privs` must be set first (the caller does it).
pub fn restrict(abi: u32, remove_in: &[PathBuf]) -> Result<(), LandlockError> {
    let attr = handled(abi);
    // SAFETY: the attr struct is valid for its size; the return value is checked and owned.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            attr_size(abi),
            0u32,
        )
    };
    if fd < 0 {
        return Err(LandlockError::Syscall(
            "landlock_create_ruleset",
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: a new fd the kernel returned, owned by nothing else.
    let ruleset = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    for dir in remove_in {
        add_remove_rule(&ruleset, dir)?;
    }
    // SAFETY: restricts the calling thread with a valid ruleset fd; checked.
    let r = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), 0u32) };
    if r != 0 {
        return Err(LandlockError::Syscall(
            "landlock_restrict_self",
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

fn add_remove_rule(ruleset: &OwnedFd, dir: &Path) -> Result<(), LandlockError> {
    let c = CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| LandlockError::Dir(dir.to_owned(), io::Error::other(e)))?;
    // SAFETY: a valid C string; O_PATH opens no data; checked.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(LandlockError::Dir(
            dir.to_owned(),
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: a new fd the kernel returned.
    let dirfd = unsafe { OwnedFd::from_raw_fd(fd) };
    let rule = PathBeneathAttr {
        allowed_access: FS_REMOVE_FILE,
        parent_fd: dirfd.as_raw_fd(),
    };
    // SAFETY: the rule struct is valid and packed as the kernel's; checked.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset.as_raw_fd(),
            RULE_PATH_BENEATH,
            &rule as *const PathBeneathAttr,
            0u32,
        )
    };
    if r != 0 {
        return Err(LandlockError::Syscall(
            "landlock_add_rule",
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rulesets_grow_with_the_abi() {
        assert_eq!(handled(1).handled_access_fs, FS_ABI1);
        assert_ne!(handled(1).handled_access_fs & FS_EXECUTE, 0);
        assert_eq!(
            handled(3).handled_access_fs,
            FS_ABI1 | FS_REFER | FS_TRUNCATE
        );
        assert_eq!(handled(3).handled_access_net, 0);
        assert_eq!(
            handled(4).handled_access_net,
            NET_BIND_TCP | NET_CONNECT_TCP
        );
        assert_eq!(handled(5).scoped, 0);
        assert_ne!(handled(7).handled_access_fs & FS_IOCTL_DEV, 0);
        assert_eq!(handled(7).scoped, SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL);
        let d = describe(7, &[PathBuf::from("/run/x")]);
        assert!(
            d.contains("ABI 7") && d.contains("/run/x") && d.contains("TCP"),
            "{d}"
        );
    }
}
