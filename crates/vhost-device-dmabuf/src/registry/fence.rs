// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Waits for host dma-buf fences, off every VM's worker and under no registry lock.
//!
//! A fence copy into or out of a host dma-buf origin must bracket its access with
//! `DMA_BUF_IOCTL_SYNC`, which waits for the dma-buf's fences without a bound. So the daemon
//! does not make that call until the fences are signalled: the buffer's code polls them (no
//! wait) and, when they are not, hands the request here instead of answering — a guest's START
//! that was granted, or a guest's write END. This thread `poll(2)`s the dma-bufs (`POLLIN`: safe
//! to read, `POLLOUT`: safe to write) until each one's deadline; then the buffer finishes the
//! request under its lock (the ioctl then finds nothing to wait for) or, at the deadline,
//! answers `TIMEOUT` and lets go of the access. The list's lock is never held with another.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, Weak};
use std::thread;
use std::time::{Duration, Instant};

use dmabuf_sys_util::dma_buf::CpuAccess;
use virtio_dmabuf_proto::virtio::Uuid;
use vmm_sys_util::eventfd::{EventFd, EFD_CLOEXEC, EFD_NONBLOCK};

use super::{lock, Completion, Fired, Registry, RegistryError};
use crate::arbiter::{Access, DomainId};

/// The longest the thread sleeps before it looks whether the registry still exists.
const IDLE: Duration = Duration::from_millis(500);

/// Which request waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// A granted START of a domain with an import: the copy into the import waits.
    Start,
    /// A write END of a domain with an import: the copy back waits.
    End,
}

/// A request waiting for a dma-buf's fences.
pub(super) struct FenceWait {
    pub uuid: Uuid,
    pub file: Arc<File>,
    /// What the fences must allow.
    pub cpu: CpuAccess,
    pub access: Access,
    pub phase: Phase,
    pub deadline: Instant,
    pub done: Completion,
}

/// The waiting requests and the thread's wake-up.
pub(super) struct Fences {
    list: Mutex<Vec<FenceWait>>,
    wake: EventFd,
}

impl Fences {
    pub(super) fn new() -> io::Result<Fences> {
        Ok(Fences {
            list: Mutex::new(Vec::new()),
            wake: EventFd::new(EFD_NONBLOCK | EFD_CLOEXEC)?,
        })
    }

    /// Wait for `w`'s fences.
    pub(super) fn add(&self, w: FenceWait) {
        lock(&self.list).push(w);
        let _ = self.wake.write(1);
    }

    /// Take the waits of `domain` (it was reset or went away).
    pub(super) fn take_domain(&self, domain: DomainId) -> Vec<FenceWait> {
        self.take(|w| w.access.domain == domain)
    }

    /// Take the waits on buffer `uuid` (it was destroyed).
    pub(super) fn take_buffer(&self, uuid: &Uuid) -> Vec<FenceWait> {
        self.take(|w| w.uuid == *uuid)
    }

    fn take(&self, pred: impl Fn(&FenceWait) -> bool) -> Vec<FenceWait> {
        let mut list = lock(&self.list);
        let (out, keep) = std::mem::take(&mut *list).into_iter().partition(pred);
        *list = keep;
        out
    }

    /// Wait for a fence or a deadline; the waits that are done, each with whether its fences
    /// allow it (`false`: its deadline passed).
    fn next(&self) -> Vec<(FenceWait, bool)> {
        let (mut pfds, deadline) = {
            let list = lock(&self.list);
            let mut pfds = vec![libc::pollfd {
                fd: self.wake.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            pfds.extend(list.iter().map(|w| libc::pollfd {
                fd: w.file.as_raw_fd(),
                events: w.cpu.poll_events(),
                revents: 0,
            }));
            let deadline = list.iter().map(|w| w.deadline).min();
            (pfds, deadline)
        };
        let now = Instant::now();
        let wait = deadline.map_or(IDLE, |d| d.saturating_duration_since(now).min(IDLE));
        let ms = libc::c_int::try_from(wait.as_micros().div_ceil(1000)).unwrap_or(1000);
        // SAFETY: a valid array of pollfds; only `revents` is written. Errors (EINTR) just
        // make this round see nothing.
        let _ = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
        let _ = self.wake.read();
        let now = Instant::now();
        let mut list = lock(&self.list);
        let mut done = Vec::new();
        let mut keep = Vec::with_capacity(list.len());
        for w in list.drain(..) {
            // The list may have grown since the poll: those have no revents yet.
            let ready = pfds[1..].iter().any(|p| {
                p.fd == w.file.as_raw_fd()
                    && p.revents & (w.cpu.poll_events() | libc::POLLERR | libc::POLLNVAL) != 0
            });
            if ready {
                done.push((w, true));
            } else if w.deadline <= now {
                done.push((w, false));
            } else {
                keep.push(w);
            }
        }
        *list = keep;
        done
    }
}

/// Start the thread; it ends when the registry is dropped.
pub(super) fn start(registry: &Arc<Registry>) -> io::Result<()> {
    let weak = Arc::downgrade(registry);
    let fences = registry.fences.clone();
    thread::Builder::new()
        .name("dmabuf-fences".into())
        .spawn(move || run(&weak, &fences))
        .map(|_| ())
}

fn run(registry: &Weak<Registry>, fences: &Fences) {
    loop {
        let done = fences.next();
        let Some(r) = registry.upgrade() else {
            return;
        };
        for (w, ready) in done {
            r.fence_event(w, ready);
        }
    }
}

impl Registry {
    /// A fence wait ended: the buffer finishes the request, or it is gone (`REVOKED`).
    fn fence_event(&self, w: FenceWait, ready: bool) {
        match self.buffer(&w.uuid) {
            Some(buf) => self.fire(buf.fence_done(w, ready, &self.stats)),
            None => {
                let uuid = w.uuid;
                self.fire(Fired::one(w.done, Err(RegistryError::Revoked(uuid))));
            }
        }
    }
}
