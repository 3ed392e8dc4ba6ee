// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Serving VM sockets: one listener per VM, one vhost-user connection at a time, for ever.
//!
//! When a front-end disconnects (QEMU exits, is killed, or reconnects), everything that VM held
//! is released and the socket accepts the next connection.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use log::{info, warn};
use thiserror::Error;
use vhost::vhost_user::Listener;
use vhost_user_backend::VhostUserDaemon;
use vm_memory::GuestMemoryAtomic;

use crate::control::prepare_socket_path;
use crate::memory::GuestMem;
use crate::registry::Registry;
use crate::vhu_dmabuf::{DmabufBackend, VhuError};

/// Errors serving a VM socket.
#[derive(Debug, Error)]
pub enum DaemonError {
    /// The socket path is unusable (live socket, not a socket, no permission).
    #[error("vhost-user socket: {0}")]
    Socket(#[source] std::io::Error),
    /// vhost could not listen.
    #[error("listening: {0}")]
    Listen(#[source] vhost::vhost_user::Error),
    /// The backend could not be created.
    #[error("backend: {0}")]
    Backend(#[from] VhuError),
    /// The vhost-user daemon could not be created.
    #[error("vhost-user daemon: {0}")]
    Daemon(vhost_user_backend::Error),
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
    loop {
        let mem = GuestMemoryAtomic::new(GuestMem::new());
        let backend = DmabufBackend::new(registry.clone(), name, mem.clone())?;
        let mut daemon = VhostUserDaemon::new(format!("dmabuf-{name}"), backend.clone(), mem)
            .map_err(DaemonError::Daemon)?;
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
                warn!("{name}: accepting a front-end failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        backend.signal_exit();
        backend.disconnect();
    }
}
