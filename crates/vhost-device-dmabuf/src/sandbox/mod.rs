// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The daemon's sandbox (`docs/security.md`, "The sandbox"), applied once start-up is done —
//! its sockets bound, `/dev/udmabuf` open, the fd limit raised — and before it starts a thread:
//!
//! 1. the filesystem: landlock where the kernel has it (nothing but removing files in the
//!    sockets' directories), else a mount namespace with an empty root that holds only those
//!    directories ([`FsSandbox`]);
//! 2. `no_new_privs`, and every capability dropped (it uses none);
//! 3. a seccomp allowlist of the system calls it makes ([`seccomp`]), on every thread.
//!
//! `--sandbox none` and `--seccomp none` relax them, as virtiofsd's `--sandbox` and
//! `--seccomp` do.

pub mod caps;
pub mod landlock;
pub mod namespace;
pub mod seccomp;

use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

pub use self::seccomp::SeccompMode;

/// How the filesystem is confined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsSandbox {
    /// Landlock if the kernel has it, else a mount namespace.
    Auto,
    /// Landlock (an error if the kernel has none).
    Landlock,
    /// Mount, network and IPC namespaces with an empty root.
    Namespace,
    /// Not confined (capabilities are kept too).
    None,
}

/// Why the sandbox could not be set up (the daemon then refuses to start).
#[derive(Debug, Error)]
pub enum SandboxError {
    /// The socket's directory cannot be resolved.
    #[error("cannot resolve the directory of socket {}", .0.display())]
    SocketDir(PathBuf, #[source] io::Error),
    /// `--sandbox landlock` on a kernel without it.
    #[error("landlock requested but not available (try --sandbox namespace)")]
    NoLandlock(#[source] landlock::LandlockError),
    /// Landlock failed.
    #[error("landlock")]
    Landlock(#[source] landlock::LandlockError),
    /// The namespaces failed.
    #[error("the namespace sandbox (run as root, or allow unprivileged user namespaces, or use --sandbox none)")]
    Namespace(#[source] namespace::NamespaceError),
    /// `no_new_privs` could not be set.
    #[error("setting no_new_privs")]
    NoNewPrivs(#[source] io::Error),
    /// Capabilities could not be dropped.
    #[error("dropping capabilities")]
    Caps(#[source] caps::CapsError),
    /// The seccomp filter failed.
    #[error("seccomp")]
    Seccomp(#[source] seccomp::SeccompError),
}

/// What the sandbox did.
#[derive(Debug)]
pub struct Applied {
    /// The socket paths as the daemon sees them now (to remove them at exit).
    pub socket_paths: Vec<PathBuf>,
    /// One line for the log: the filter, the filesystem rules, the privileges.
    pub summary: String,
}

/// The directory `socket` is in, absolute.
fn socket_dir(socket: &Path) -> Result<PathBuf, SandboxError> {
    let parent = match socket.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::canonicalize(parent).map_err(|e| SandboxError::SocketDir(socket.to_owned(), e))
}

/// The filesystem sandbox `fs` stands for here: `Auto` is landlock where the kernel has it,
/// else the namespace sandbox.
pub fn resolve(fs: FsSandbox) -> FsSandbox {
    match fs {
        FsSandbox::Auto if landlock::abi().is_ok() => FsSandbox::Landlock,
        FsSandbox::Auto => FsSandbox::Namespace,
        other => other,
    }
}

/// Apply the sandbox to this process, which must have a single thread. `sockets` are the
/// socket files the daemon removes at exit.
pub fn apply(
    fs: FsSandbox,
    mode: SeccompMode,
    sockets: &[PathBuf],
) -> Result<Applied, SandboxError> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut dir_of = Vec::new();
    for s in sockets {
        let d = socket_dir(s)?;
        let i = dirs.iter().position(|x| *x == d).unwrap_or_else(|| {
            dirs.push(d);
            dirs.len() - 1
        });
        dir_of.push(i);
    }
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    // Built before anything is restricted.
    let filters = seccomp::filters(mode, pid).map_err(SandboxError::Seccomp)?;

    let fs = resolve(fs);
    let mut parts = Vec::new();
    let mut socket_paths = sockets.to_vec();
    if fs == FsSandbox::Namespace {
        let inside = namespace::enter(&dirs).map_err(SandboxError::Namespace)?;
        for (path, &i) in socket_paths.iter_mut().zip(&dir_of) {
            if let Some(name) = path.file_name() {
                *path = inside[i].join(name);
            }
        }
        parts.push(format!(
            "mount namespace (root: an empty read-only tmpfs with {} socket director{}), new network and IPC namespaces",
            dirs.len(),
            if dirs.len() == 1 { "y" } else { "ies" }
        ));
    }
    // SAFETY: prctl with integer arguments; checked.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(SandboxError::NoNewPrivs(io::Error::last_os_error()));
    }
    if fs == FsSandbox::Landlock {
        let abi = landlock::abi().map_err(SandboxError::NoLandlock)?;
        landlock::restrict(abi, &dirs).map_err(SandboxError::Landlock)?;
        parts.push(landlock::describe(abi, &dirs));
    }
    if fs == FsSandbox::None {
        parts.push("filesystem not confined (--sandbox none)".into());
    } else {
        caps::drop_all().map_err(SandboxError::Caps)?;
        parts.push("capabilities: none".into());
    }
    parts.push("no_new_privs".into());
    match &filters {
        Some(f) => {
            seccomp::install(f).map_err(SandboxError::Seccomp)?;
            parts.insert(0, f.to_string());
        }
        None => parts.insert(0, "seccomp none".into()),
    }
    Ok(Applied {
        socket_paths,
        summary: parts.join("; "),
    })
}
