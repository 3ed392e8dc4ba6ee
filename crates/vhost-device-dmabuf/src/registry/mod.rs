// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The buffer registry, shared by every VM and host client of one daemon: which buffers exist,
//! who holds them, who may access which bytes, and the data movement at fence points.
//!
//! Its files follow its locks:
//!
//! | file | lock it takes | what |
//! |------|---------------|------|
//! | `maps.rs` | `Registry::inner` only | buffers by UUID, domains, holdings, visibility, quotas |
//! | `buffer/` | one `Buffer::state` only | origin, imports, begin/end/grant, revoke (`mod.rs`); fence copies, dma-buf brackets, exports (`data.rs`) |
//! | `guest.rs` | none itself | the guest requests (typed, from the protocol crate) |
//! | `mapped.rs` | none itself | MAP, and the unmapping on every way a mapped import ends |
//! | `host.rs` | none itself | host operations on a [`HostRange`], [`HostSession`] |
//! | `timer.rs` | the timer's heap | the bounds of waiting begins |
//! | `fence.rs` | the fence waits' list | requests waiting for a host dma-buf's fences |
//!
//! # Locks
//!
//! * `Registry::inner` guards the maps: buffers by UUID, domains and what each holds, the count
//!   of host shares. It is held for lookups and updates of those only, and never together with
//!   a buffer's `state`: no copy, no ioctl, no event and no completion runs under it.
//! * `Buffer::state` guards one buffer's arbiter, imports, revoked flag and write generation.
//!   The fence copies and the `DMA_BUF_IOCTL_SYNC` of a host dma-buf origin run under it, so an
//!   END's copy-back lands before the waiters it unblocks are granted — but only once the
//!   dma-buf's fences are signalled: until then the request waits in `fence.rs`, with no lock
//!   held, and the ioctl never waits long under the lock (`crate::watchdog` bounds it). No other
//!   registry lock is taken under it (the timer's heap and the fence list are filled after it
//!   is dropped).
//! * Completions (a parked virtqueue request, a host client's reply) and REVOKED events are
//!   collected under those locks and delivered after every registry lock is dropped.
//! * Mappings in a VM's shared memory region (`crate::shm`) are made and removed through the
//!   front-end, which answers only after it updated its own memory; the requests are waited for
//!   with no registry lock held (`mapped.rs`), and a VM's `VmShm` lock is a leaf.
//!
//! An operation that needs both runs them one after the other: the maps first (is the buffer
//! there, may this domain use it), then the buffer. What changes between the two is caught on
//! the buffer's side: a destroyed buffer is marked revoked under its own lock, and a domain that
//! was reset in between has a new epoch (`VmHandle::epoch`), checked under the buffer's lock.

mod buffer;
mod error;
mod fence;
mod guest;
mod host;
mod mapped;
mod maps;
mod timer;

#[cfg(test)]
mod tests;

use std::fmt;
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use self::fence::{FenceWait, Fences};

use log::{debug, warn};
use virtio_dmabuf_proto::uuid;
use virtio_dmabuf_proto::virtio::{self, Event, Uuid};
use vm_memory::GuestMemoryAtomic;

use self::buffer::{Began, Buffer, Requester};
pub use self::error::{chain, Quota, RegistryError};
pub use self::host::{HostRange, HostSession, ShareRequest};
pub use self::mapped::MapInfo;
use self::maps::Departure;
use crate::arbiter::Access;
pub use crate::arbiter::DomainId;
use crate::fds::FdPlan;
use crate::hostfile::{self, UdmabufError};
pub use crate::limits::Limits;
use crate::memory::GuestMem;
use crate::shm::VmShm;

/// Called once with the outcome of a parked begin.
pub type Completion = Box<dyn FnOnce(Result<(), RegistryError>) + Send>;

/// What a guest offers the registry besides its memory: its event queue.
pub trait GuestPort: Send + Sync {
    /// Post an event on the event queue; `false` if it was dropped (the driver offered no
    /// buffer).
    fn post_event(&self, event: &Event) -> bool;
}

/// One VM connection as the registry sees it.
pub struct VmHandle {
    /// Name (from the command line), used by access lists.
    pub name: String,
    /// Its arbitration domain.
    pub domain: DomainId,
    /// Its memory (replaced by the vhost-user layer on SET_MEM_TABLE).
    pub mem: GuestMemoryAtomic<GuestMem>,
    /// Event delivery.
    pub port: Arc<dyn GuestPort>,
    /// Moves on at each reset: parked requests of an older epoch are not answered, and work
    /// begun before a reset is undone if it lands after it.
    pub epoch: AtomicU64,
    /// Its shared memory region (mapped imports, spec section 13).
    pub shm: Arc<VmShm>,
}

impl fmt::Debug for VmHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VmHandle")
            .field("name", &self.name)
            .field("domain", &self.domain)
            .finish()
    }
}

/// Counters for instrumentation (benchmarks read them; nothing depends on them).
#[derive(Debug, Default)]
pub struct Stats {
    /// Bytes the daemon copied between origins, copies, host files and sockets.
    pub copied_bytes: AtomicU64,
    /// Bytes host consumers reached in place (zero-copy views, udmabuf exports).
    pub zero_copy_bytes: AtomicU64,
    /// Events dropped because the event queue had no buffer.
    pub dropped_events: AtomicU64,
}

/// The outcome of a SYNC or a begin that may wait.
#[derive(Debug)]
pub enum SyncOutcome {
    /// Answered now.
    Done(Result<(), RegistryError>),
    /// Parked; the completion will be called exactly once.
    Parked,
}

/// What LOOKUP tells a VM about a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LookupInfo {
    /// Bytes.
    pub size: u64,
    /// This VM may only read it.
    pub read_only: bool,
    /// Its origin is a host file.
    pub host_backed: bool,
    /// This VM created it.
    pub own: bool,
}

/// One buffer as LIST and INFO describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BufferSummary {
    /// The buffer.
    pub uuid: Uuid,
    /// Bytes.
    pub size: u64,
    /// Importers get read access only.
    pub read_only: bool,
    /// No VM may import it.
    pub host_only: bool,
    /// Its origin is a host file.
    pub host_backed: bool,
    /// Revoked (seen only transiently: a revoked buffer leaves the map at once).
    pub revoked: bool,
    /// Write ENDs completed so far.
    pub write_generation: u64,
    /// VMs that imported it.
    pub importers: u32,
    /// Each importing VM, by name.
    pub importer_views: Vec<ImporterView>,
    /// Coalesced segments (guest-backed) or 1 (host-backed).
    pub nr_segs: u32,
    /// The owning VM's name, or `host:<pid>`.
    pub owner: String,
}

/// One VM's import of a buffer, as INFO describes it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ImporterView {
    /// The VM's name.
    pub name: String,
    /// Mapped in place in its shared memory region (else a copy in its own pages).
    pub mapped: bool,
    /// Bytes copied between the origin and this import at its fence points so far.
    pub copied: u64,
}

/// Everything shared.
pub struct Registry {
    limits: Limits,
    inner: Mutex<maps::Inner>,
    next_domain: AtomicU64,
    timer: timer::Timer,
    fences: Arc<Fences>,
    /// `/dev/udmabuf`, opened once (the daemon opens it before its sandbox closes the
    /// filesystem; a library user that did not set it gets it opened at the first EXPORT).
    udmabuf: Mutex<Option<Arc<File>>>,
    /// Why host shares are fewer than `--max-host-buffers`, if the fd limit lowered them.
    fd_plan: Mutex<Option<FdPlan>>,
    /// Instrumentation.
    pub stats: Stats,
}

/// Lock `m`. A panic while holding a lock is a bug elsewhere; keep serving rather than cascade.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Outcomes to deliver once every lock is dropped, and requests to hand to the fence waiter.
#[derive(Default)]
pub(super) struct Fired {
    done: Vec<(Completion, Result<(), RegistryError>)>,
    fences: Vec<FenceWait>,
}

impl Fired {
    fn new() -> Fired {
        Fired::default()
    }

    fn one(done: Completion, r: Result<(), RegistryError>) -> Fired {
        let mut f = Fired::new();
        f.push((done, r));
        f
    }

    fn push(&mut self, outcome: (Completion, Result<(), RegistryError>)) {
        self.done.push(outcome);
    }

    fn extend(
        &mut self,
        outcomes: impl IntoIterator<Item = (Completion, Result<(), RegistryError>)>,
    ) {
        self.done.extend(outcomes);
    }

    fn wait(&mut self, w: FenceWait) {
        self.fences.push(w);
    }

    fn merge(&mut self, other: Fired) {
        self.done.extend(other.done);
        self.fences.extend(other.fences);
    }
}

impl Registry {
    /// A registry with these limits, and its timeout thread.
    pub fn new(limits: Limits) -> Result<Arc<Registry>, RegistryError> {
        let fences = Fences::new().map_err(RegistryError::FenceThread)?;
        let reg = Arc::new(Registry {
            limits,
            inner: Mutex::new(maps::Inner::default()),
            next_domain: AtomicU64::new(1),
            timer: timer::Timer::default(),
            fences: Arc::new(fences),
            udmabuf: Mutex::new(None),
            fd_plan: Mutex::new(None),
            stats: Stats::default(),
        });
        timer::start(&reg).map_err(RegistryError::TimerThread)?;
        fence::start(&reg).map_err(RegistryError::FenceThread)?;
        Ok(reg)
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Use `dev` (`/dev/udmabuf`, opened read-write) for EXPORT.
    pub fn set_udmabuf_device(&self, dev: File) {
        *lock(&self.udmabuf) = Some(Arc::new(dev));
    }

    /// `/dev/udmabuf`: the one set, else opened now (and kept).
    fn udmabuf_device(&self) -> Result<Arc<File>, UdmabufError> {
        let mut dev = lock(&self.udmabuf);
        if let Some(d) = dev.as_ref() {
            return Ok(d.clone());
        }
        let d = Arc::new(hostfile::open_udmabuf_device()?);
        *dev = Some(d.clone());
        Ok(d)
    }

    /// The fd budget the daemon runs with (named in the log line of a share it refuses).
    pub fn set_fd_plan(&self, plan: FdPlan) {
        *lock(&self.fd_plan) = Some(plan);
    }

    fn fd_plan(&self) -> Option<FdPlan> {
        *lock(&self.fd_plan)
    }

    /// A domain was reset (device reset): release everything it held, drop its accesses and
    /// waiters everywhere, and answer the waiters that unblocks. The domain stays.
    pub fn reset_domain(&self, domain: DomainId) {
        self.depart_domain(domain, Departure::Reset);
    }

    /// A domain went away for good (disconnect, closed connection, dropped session).
    pub fn remove_domain(&self, domain: DomainId) {
        self.depart_domain(domain, Departure::Gone);
    }

    fn depart_domain(&self, domain: DomainId, how: Departure) {
        let (departed, vm) = self.depart(domain, how);
        // Other VMs' mappings of this domain's buffers go first (spec 13.5: before the reset
        // completes, the owner's pages are no longer mapped anywhere).
        for buf in &departed.destroyed {
            self.destroy(buf, None);
            self.detach_exports(buf);
        }
        for buf in &departed.revoked_own {
            self.detach_exports(buf);
        }
        let mut fired = Fired::new();
        for buf in &departed.others {
            // The departing domain's own mapped imports: see `unmap_departed`.
            fired.merge(buf.drop_domain(domain, &self.stats).0);
        }
        // Its requests waiting for fences: their accesses were dropped above.
        for w in self.fences.take_domain(domain) {
            fired.push((w.done, Err(RegistryError::Cancelled)));
        }
        self.fire(fired);
        if let Some(vm) = vm {
            self.unmap_departed(&vm, how);
        }
    }

    /// Deliver `f`: hand its fence waits to the fence thread, then call its completions (no
    /// registry lock is held).
    fn fire(&self, f: Fired) {
        for w in f.fences {
            self.fences.add(w);
        }
        for (done, outcome) in f.done {
            done(outcome);
        }
    }

    /// Destroy `buf` (already out of the map): fail its waiters, remove its mappings from the
    /// importers' regions, end its imports, tell the VMs that imported it (and `also`, its owner
    /// on a REVOKE).
    fn destroy(&self, buf: &Buffer, also: Option<Arc<VmHandle>>) {
        let (mut fired, importers) = buf.revoke();
        for w in self.fences.take_buffer(&buf.uuid) {
            fired.push((w.done, Err(RegistryError::Revoked(buf.uuid))));
        }
        self.unmap_revoked(&buf.uuid, &importers);
        let told: Vec<Arc<VmHandle>> = also
            .into_iter()
            .chain(importers.into_iter().map(|(vm, _)| vm))
            .collect();
        self.post_revoked(&buf.uuid, &told);
        self.fire(fired);
    }

    /// The owner let go of `buf`'s pages: detach the exports made over them (a failure is
    /// logged: the pages stay the guest's, and the export keeps seeing them).
    fn detach_exports(&self, buf: &Buffer) {
        match buf.detach_exports() {
            Ok(0) => {}
            Ok(n) => debug!(
                "buffer {}: exports detached ({n} bytes)",
                uuid::format(&buf.uuid)
            ),
            Err(e) => warn!("{}", chain(&e)),
        }
    }

    /// Begin `access` on `buf`; a waiting begin gets its bound on the timer.
    fn begin(
        &self,
        buf: &Buffer,
        who: Requester<'_>,
        access: Access,
        timeout_ms: u32,
        done: Completion,
    ) -> SyncOutcome {
        let deadline = Instant::now() + self.limits.wait_bound(timeout_ms);
        let (began, fired) = buf.begin(who, access, done, deadline, &self.stats);
        self.fire(fired);
        match began {
            Began::Done(r) => SyncOutcome::Done(r),
            Began::Waiting(ticket) => {
                self.timer.add(deadline, buf.uuid, ticket);
                SyncOutcome::Parked
            }
            Began::Fences => SyncOutcome::Parked,
        }
    }

    /// Post REVOKED for `uuid` to each of `vms` (after every lock is dropped).
    fn post_revoked(&self, uuid: &Uuid, vms: &[Arc<VmHandle>]) {
        let event = Event {
            type_: virtio::event::REVOKED.to_le(),
            reserved: 0,
            uuid: *uuid,
        };
        for vm in vms {
            if !vm.port.post_event(&event) {
                debug!("{}: REVOKED event dropped", vm.name);
                self.stats.dropped_events.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
