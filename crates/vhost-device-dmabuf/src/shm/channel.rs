// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The back-end request channel of one VM connection, as far as shared memory goes:
//! `VHOST_USER_BACKEND_SHMEM_MAP` and `_UNMAP`, each answered by the front-end.
//!
//! vhost's [`Backend`] sends a request and then blocks in `recvmsg` until the front-end's reply
//! comes, with no bound. A stalled front-end must not hang the thread that asked (a VM's
//! worker, or another VM's RELEASE), so one thread per connection owns the `Backend` and runs
//! the requests in the order they were posted; askers wait for the outcome at most
//! [`ShmChannel::bound`]. After a transport failure or a missed bound the channel is *broken*:
//! the front-end's state of the region is no longer known, so nothing more is mapped through it
//! (MAP answers UNSUPPORTED and imports fall back to copies). A request the front-end refuses
//! (it answers with an error code) fails alone: QEMU 11.1 refuses an UNMAP of a range it does
//! not map (e.g. after it removed every mapping at a device reset) and stays in step.
//!
//! The thread never takes a lock of the daemon: the front-end may answer a map only after it
//! updated its memory table on the other channel (QEMU commits the new BAR subregion and sends
//! the back-end a memory-table update right after its reply), so the front-end channel's
//! handler must never wait for anything the asker holds. Askers hold no registry or vring lock
//! while they wait (see `registry/mapped.rs`).

use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use log::{debug, warn};
use thiserror::Error;
use vhost::vhost_user::message::{VhostUserMMap, VhostUserMMapFlags};
use vhost::vhost_user::{Backend, VhostUserFrontendReqHandler};
use virtio_dmabuf_proto::virtio::VIRTIO_DMABUF_SHM_MAP;

/// Why a shared-memory request did not complete.
#[derive(Debug, Error)]
pub enum ChannelError {
    /// No back-end channel (the front-end sent no `SET_BACKEND_REQ_FD`), or it broke earlier.
    #[error("no usable back-end request channel")]
    Unavailable,
    /// The front-end answered that it did not do it (it made no mapping, removed none).
    #[error("the front-end refused a shared-memory request")]
    Refused(#[source] io::Error),
    /// The channel failed.
    #[error("the front-end failed a shared-memory request")]
    Failed(#[source] io::Error),
    /// No answer within the bound.
    #[error("no answer from the front-end within {0:?}")]
    Timeout(Duration),
    /// The channel thread could not be started.
    #[error("cannot start the shared-memory channel thread")]
    Thread(#[source] io::Error),
}

/// One request. Its `Debug` (in log lines) names the file by its fd number: `File`'s own
/// `Debug` reads `/proc/self/fd/N`, a `readlink` the sandbox's seccomp filter refuses.
pub enum ShmOp {
    /// Map `len` bytes of `file` from `fd_offset` at `shm_offset` of the region.
    Map {
        /// The file (a duplicate the request owns).
        file: File,
        /// Offset in the file.
        fd_offset: u64,
        /// Offset in the region.
        shm_offset: u64,
        /// Bytes.
        len: u64,
        /// Read-write (else read-only).
        writable: bool,
    },
    /// Remove the mapping made at `shm_offset` with `len` bytes.
    Unmap {
        /// Offset in the region.
        shm_offset: u64,
        /// Bytes.
        len: u64,
        /// The region's generation when the mapping was made: an UNMAP of a mapping made
        /// before the driver's last reset is not sent (see [`ShmChannel::new`]).
        generation: u64,
    },
}

impl fmt::Debug for ShmOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShmOp::Map {
                file,
                fd_offset,
                shm_offset,
                len,
                writable,
            } => write!(
                f,
                "Map {{ fd: {}, fd_offset: {fd_offset:#x}, shm_offset: {shm_offset:#x}, \
                 len: {len:#x}, writable: {writable} }}",
                file.as_raw_fd()
            ),
            ShmOp::Unmap {
                shm_offset,
                len,
                generation,
            } => write!(
                f,
                "Unmap {{ shm_offset: {shm_offset:#x}, len: {len:#x}, generation: {generation} }}"
            ),
        }
    }
}

struct Job {
    op: ShmOp,
    reply: Option<SyncSender<io::Result<()>>>,
}

/// The thread of the current back-end channel: its queue and whether it failed.
struct Current {
    tx: Sender<Job>,
    broken: Arc<AtomicBool>,
}

/// The shared-memory side of one connection's back-end channel.
pub struct ShmChannel {
    current: Mutex<Option<Current>>,
    bound: Duration,
    generation: Arc<AtomicU64>,
}

impl ShmChannel {
    /// A channel with no back-end yet; waits for answers at most `bound`.
    ///
    /// `generation` counts the driver's resets. QEMU 11.1 removes every mapping of a device
    /// when the driver resets it, and an UNMAP of a mapping it removed that way makes it crash
    /// (a segmentation fault, seen with 11.1.3), so an UNMAP whose mapping was made in an
    /// earlier generation is dropped instead of sent, as late as possible: in the channel
    /// thread, just before it would be written.
    pub fn new(bound: Duration, generation: Arc<AtomicU64>) -> ShmChannel {
        ShmChannel {
            current: Mutex::new(None),
            bound,
            generation,
        }
    }

    /// How long an asker waits for the front-end.
    pub fn bound(&self) -> Duration {
        self.bound
    }

    /// The front-end gave us its back-end channel: start its thread (a second channel replaces
    /// the first, whose thread ends once its queue is drained).
    pub fn attach(&self, backend: Backend, name: &str) -> Result<(), ChannelError> {
        // Always ask for the front-end's answer: the ordering guarantees of spec section 13.4
        // rest on knowing that a mapping is gone.
        backend.set_reply_ack_flag(true);
        let (tx, rx) = mpsc::channel();
        let broken = Arc::new(AtomicBool::new(false));
        let flag = broken.clone();
        let generation = self.generation.clone();
        std::thread::Builder::new()
            .name(format!("shm-{name}"))
            .spawn(move || run(&backend, &rx, &flag, &generation))
            .map_err(ChannelError::Thread)?;
        *lock(&self.current) = Some(Current { tx, broken });
        Ok(())
    }

    /// Whether requests can be sent.
    pub fn usable(&self) -> bool {
        lock(&self.current)
            .as_ref()
            .is_some_and(|c| !c.broken.load(Ordering::SeqCst))
    }

    /// Nothing more goes out (the connection ended); the thread ends.
    pub fn detach(&self) {
        *lock(&self.current) = None;
    }

    /// Queue `op`; the flag of the channel it went to, `None` if none is usable.
    fn post_job(
        &self,
        op: ShmOp,
        reply: Option<SyncSender<io::Result<()>>>,
    ) -> Option<Arc<AtomicBool>> {
        let guard = lock(&self.current);
        let c = guard
            .as_ref()
            .filter(|c| !c.broken.load(Ordering::SeqCst))?;
        c.tx.send(Job { op, reply }).ok()?;
        Some(c.broken.clone())
    }

    /// Run `ops` in order, each once the previous one succeeded, waiting for every answer; the
    /// whole is bounded by [`ShmChannel::bound`]. On failure returns how many succeeded.
    pub fn call(&self, ops: Vec<ShmOp>) -> Result<(), (usize, ChannelError)> {
        let deadline = Instant::now() + self.bound;
        for (i, op) in ops.into_iter().enumerate() {
            let (tx, rx) = mpsc::sync_channel(1);
            let Some(broken) = self.post_job(op, Some(tx)) else {
                return Err((i, ChannelError::Unavailable));
            };
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Ok(())) => {}
                Ok(Err(e)) if refused(&e) => return Err((i, ChannelError::Refused(e))),
                Ok(Err(e)) => return Err((i, ChannelError::Failed(e))),
                Err(RecvTimeoutError::Timeout) => {
                    // What the front-end did is unknown from here on.
                    broken.store(true, Ordering::SeqCst);
                    return Err((i, ChannelError::Timeout(self.bound)));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err((i, ChannelError::Unavailable));
                }
            }
        }
        Ok(())
    }

    /// Post `ops` without waiting (they run after everything posted before them).
    pub fn post(&self, ops: Vec<ShmOp>) {
        for op in ops {
            if self.post_job(op, None).is_none() {
                return;
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The channel thread: one request at a time, until the channel is dropped.
fn run(backend: &Backend, rx: &Receiver<Job>, broken: &AtomicBool, generation: &AtomicU64) {
    while let Ok(job) = rx.recv() {
        let stale = matches!(job.op, ShmOp::Unmap { generation: g, .. }
            if g != generation.load(Ordering::SeqCst));
        let r = if broken.load(Ordering::SeqCst) {
            Err(io::Error::other("the back-end channel failed earlier"))
        } else if stale {
            debug!(
                "shared memory: {:?} skipped: the front-end removed it at a reset",
                job.op
            );
            Ok(())
        } else {
            send(backend, &job.op)
        };
        if let Err(e) = &r {
            if refused(e) {
                // The front-end answered "no" (QEMU: an UNMAP of a range it does not map, a map
                // it cannot make); the channel itself is still in step.
                debug!("shared memory: {:?} refused by the front-end", job.op);
            } else if !broken.swap(true, Ordering::SeqCst) {
                warn!(
                    "shared memory: {:?} failed, no more mappings on this connection: {e}",
                    job.op
                );
            }
        } else {
            debug!("shared memory: {:?} done", job.op);
        }
        if let Some(reply) = job.reply {
            let _ = reply.send(r);
        }
    }
}

/// Whether `e` is the front-end's own negative answer (a reply came, with an error code).
fn refused(e: &io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<vhost::vhost_user::Error>())
        .is_some_and(|v| matches!(v, vhost::vhost_user::Error::FrontendInternalError))
}

fn send(backend: &Backend, op: &ShmOp) -> io::Result<()> {
    match op {
        ShmOp::Map {
            file,
            fd_offset,
            shm_offset,
            len,
            writable,
        } => {
            let flags = if *writable {
                VhostUserMMapFlags::WRITABLE
            } else {
                VhostUserMMapFlags::empty()
            };
            let msg = VhostUserMMap {
                shmid: VIRTIO_DMABUF_SHM_MAP,
                padding: [0; 7],
                fd_offset: *fd_offset,
                shm_offset: *shm_offset,
                len: *len,
                flags: flags.bits(),
            };
            backend.shmem_map(&msg, file).map(drop)
        }
        ShmOp::Unmap {
            shm_offset, len, ..
        } => {
            let msg = VhostUserMMap {
                shmid: VIRTIO_DMABUF_SHM_MAP,
                padding: [0; 7],
                fd_offset: 0,
                shm_offset: *shm_offset,
                len: *len,
                flags: 0,
            };
            backend.shmem_unmap(&msg).map(drop)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_is_logged_without_looking_up_its_file() {
        // std's Debug of a File reads /proc/self/fd/N (readlink, refused by the seccomp
        // filter, which kills the daemon): the op names the fd number instead.
        let file = dmabuf_sys_util::memfd::memfd("t", 4096).unwrap();
        let fd = file.as_raw_fd();
        let op = ShmOp::Map {
            file,
            fd_offset: 0,
            shm_offset: 0x2000,
            len: 0x1000,
            writable: true,
        };
        let s = format!("{op:?}");
        assert!(s.contains(&format!("fd: {fd},")), "{s}");
        assert!(!s.contains("memfd:"), "{s}");
    }
}
