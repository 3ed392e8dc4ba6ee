// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The mount-namespace sandbox, for kernels without landlock: the daemon moves into new mount,
//! network and IPC namespaces (and a user namespace first when it is not root), puts an empty
//! tmpfs at the root with only the directories of its sockets bound into it (to remove the
//! sockets at exit), and drops the old root. It must run while the process has one thread.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Where the new root is built (hidden by the new tmpfs in this namespace only).
const BUILD_AT: &str = "/tmp";

/// Why the namespace sandbox could not be set up.
#[derive(Debug, Error)]
pub enum NamespaceError {
    /// A step failed.
    #[error("{0} failed")]
    Step(String, #[source] io::Error),
}

fn step(what: impl Into<String>) -> impl FnOnce(io::Error) -> NamespaceError {
    let what = what.into();
    move |e| NamespaceError::Step(what, e)
}

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(io::Error::other)
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn mount(src: &Path, dst: &Path, fstype: Option<&str>, flags: libc::c_ulong) -> io::Result<()> {
    let (s, d) = (cstr(src)?, cstr(dst)?);
    let t = fstype
        .map(CString::new)
        .transpose()
        .map_err(io::Error::other)?;
    let data = CString::new("mode=0700").map_err(io::Error::other)?;
    // SAFETY: valid C strings (or NULL) that outlive the call; checked.
    check(unsafe {
        libc::mount(
            s.as_ptr(),
            d.as_ptr(),
            t.as_ref().map_or(std::ptr::null(), |t| t.as_ptr()),
            flags,
            if fstype.is_some() {
                data.as_ptr().cast()
            } else {
                std::ptr::null()
            },
        )
    })
}

fn write_file(path: &str, text: &str) -> io::Result<()> {
    std::fs::write(path, text)
}

/// Whether a daemon running as `euid`/`egid` still sees its control-socket peers' group `gid`
/// (`SO_PEERCRED`, `SO_PEERGROUPS`) once inside this sandbox. As root it makes no user
/// namespace; otherwise its user namespace maps its own uid and gid only, and the kernel shows
/// every other id of a peer as the overflow id (65534). Root peers become invisible likewise.
pub fn peer_group_visible(euid: u32, egid: u32, gid: u32) -> bool {
    euid == 0 || gid == egid
}

/// Enter the sandbox. `dirs` are the directories of the sockets; returns where each one is
/// inside the new root (`/s0`, `/s1`...).
pub fn enter(dirs: &[PathBuf]) -> Result<Vec<PathBuf>, NamespaceError> {
    // SAFETY: geteuid/getegid have no preconditions.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let mut flags = libc::CLONE_NEWNS | libc::CLONE_NEWNET | libc::CLONE_NEWIPC;
    if uid != 0 {
        flags |= libc::CLONE_NEWUSER;
    }
    // SAFETY: unshare with namespace flags only; checked.
    check(unsafe { libc::unshare(flags) }).map_err(step("unshare"))?;
    if uid != 0 {
        write_file("/proc/self/setgroups", "deny").map_err(step("writing setgroups"))?;
        write_file("/proc/self/uid_map", &format!("{uid} {uid} 1"))
            .map_err(step("writing uid_map"))?;
        write_file("/proc/self/gid_map", &format!("{gid} {gid} 1"))
            .map_err(step("writing gid_map"))?;
    }
    let root = Path::new("/");
    mount(
        Path::new("none"),
        root,
        None,
        libc::MS_REC | libc::MS_PRIVATE,
    )
    .map_err(step("making mounts private"))?;
    // The directories, opened in the new namespace (a mount of the old one cannot be bound)
    // and before the new root covers their paths.
    let mut held = Vec::new();
    for d in dirs {
        let c = cstr(d).map_err(step(format!("naming {}", d.display())))?;
        // SAFETY: a valid C string; O_PATH opens no data; checked.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(step(format!("opening {}", d.display()))(
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: a new fd, owned by nothing else.
        held.push(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    let new_root = Path::new(BUILD_AT);
    mount(
        Path::new("tmpfs"),
        new_root,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
    )
    .map_err(step("mounting the new root"))?;
    let mut inside = Vec::new();
    for (i, fd) in held.iter().enumerate() {
        let name = format!("s{i}");
        let at = new_root.join(&name);
        std::fs::create_dir(&at).map_err(step(format!("creating {}", at.display())))?;
        let src = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        mount(&src, &at, None, libc::MS_BIND | libc::MS_REC)
            .map_err(step(format!("binding {}", dirs[i].display())))?;
        inside.push(Path::new("/").join(name));
    }
    drop(held);
    let old = new_root.join("old");
    std::fs::create_dir(&old).map_err(step("creating the old root's mount point"))?;
    let (n, o) = (
        cstr(new_root).map_err(step("naming the new root"))?,
        cstr(&old).map_err(step("naming the old root"))?,
    );
    // SAFETY: pivot_root with two valid C strings; checked.
    let r = unsafe { libc::syscall(libc::SYS_pivot_root, n.as_ptr(), o.as_ptr()) };
    if r != 0 {
        return Err(step("pivot_root")(io::Error::last_os_error()));
    }
    std::env::set_current_dir("/").map_err(step("chdir /"))?;
    let old_inside = cstr(Path::new("/old")).map_err(step("naming /old"))?;
    // SAFETY: a valid C string; checked.
    check(unsafe { libc::umount2(old_inside.as_ptr(), libc::MNT_DETACH) })
        .map_err(step("unmounting the old root"))?;
    std::fs::remove_dir("/old").map_err(step("removing /old"))?;
    // Nothing more to create: the root becomes read-only.
    mount(
        Path::new("none"),
        root,
        None,
        libc::MS_REMOUNT
            | libc::MS_BIND
            | libc::MS_RDONLY
            | libc::MS_NOSUID
            | libc::MS_NODEV
            | libc::MS_NOEXEC,
    )
    .map_err(step("making the new root read-only"))?;
    Ok(inside)
}

#[cfg(test)]
mod tests {
    use super::peer_group_visible;

    #[test]
    fn only_the_daemons_own_group_survives_its_user_namespace() {
        assert!(peer_group_visible(0, 0, 101)); // root: no user namespace
        assert!(peer_group_visible(1000, 101, 101)); // the daemon's own gid is mapped
        assert!(!peer_group_visible(1000, 102, 101)); // any other is the overflow id
    }
}
