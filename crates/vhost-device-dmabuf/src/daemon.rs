// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Serving VM sockets: one listener per VM, one vhost-user connection at a time, for ever.
//!
//! When a front-end disconnects (QEMU exits, is killed, or reconnects), everything that VM held
//! is released and the socket accepts the next connection.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use log::{info, warn};
use thiserror::Error;
use vhost::vhost_user::Listener;
use vhost_user_backend::VhostUserDaemon;
use vm_memory::GuestMemoryAtomic;

use crate::control::{prepare_socket_path, SocketPathError};
use crate::memory::GuestMem;
use crate::ratelimit::RateLimit;
use crate::registry::Registry;
use crate::vhu_dmabuf::{DmabufBackend, VhuError};

/// An error of the vhost-user daemon framework, whose error type does not implement
/// `std::error::Error` (so it can be a source).
#[derive(Debug)]
pub struct FrameworkError(pub vhost_user_backend::Error);

impl fmt::Display for FrameworkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for FrameworkError {}

/// Errors serving a VM socket.
#[derive(Debug, Error)]
pub enum DaemonError {
    /// The socket path is unusable (live socket, not a socket, no permission).
    #[error("unusable vhost-user socket path")]
    Socket(#[source] SocketPathError),
    /// vhost could not listen.
    #[error("cannot listen on the vhost-user socket")]
    Listen(#[source] vhost::vhost_user::Error),
    /// The backend could not be created.
    #[error("cannot create the backend")]
    Backend(#[source] VhuError),
    /// The vhost-user daemon could not be created.
    #[error("cannot create the vhost-user daemon")]
    Daemon(#[source] FrameworkError),
}

/// Bind `path` for VM `name` (replacing a stale socket file, refusing a live one).
pub fn bind_vm_socket(path: &Path) -> Result<Listener, DaemonError> {
    prepare_socket_path(path).map_err(DaemonError::Socket)?;
    Listener::new(path, true).map_err(DaemonError::Listen)
}

/// Serve VM `name` on `listener` until the process ends.
pub fn serve_vm(
    registry: &Arc<Registry>,
    name: &str,
    mut listener: Listener,
) -> Result<(), DaemonError> {
    let accept_failed = RateLimit::new("accepting a front-end failed");
    loop {
        let mem = GuestMemoryAtomic::new(GuestMem::new());
        let backend = DmabufBackend::new(registry.clone(), name, mem.clone())
            .map_err(DaemonError::Backend)?;
        let mut daemon = VhostUserDaemon::new(format!("dmabuf-{name}"), backend.clone(), mem)
            .map_err(|e| DaemonError::Daemon(FrameworkError(e)))?;
        match daemon.start(&mut listener) {
            Ok(()) => {
                info!("{name}: front-end connected");
                match daemon.wait() {
                    Ok(()) => info!("{name}: front-end disconnected"),
                    // A front-end going away mid-message is how QEMU exits: not a warning.
                    Err(e) => info!("{name}: connection ended: {e}"),
                }
            }
            Err(e) => {
                if let Some(n) = accept_failed.admit() {
                    warn!("{name}: accepting a front-end failed: {e}{n}");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        backend.signal_exit();
        backend.disconnect();
    }
}
