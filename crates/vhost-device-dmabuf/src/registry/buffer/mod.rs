// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! One buffer, under its own `state` lock and nothing else: where its bytes live (the origin),
//! who imported it and how, the arbitration of CPU access, the data movement at fence points,
//! and its revocation.
//!
//! Fence points (spec section 6.6): a granted START of a domain with an import brings the range
//! from the origin into the import; a write END takes it back. Both run under this buffer's
//! lock, so the waiters an END unblocks are granted only once its bytes are in the origin.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use dmabuf_sys_util::dma_buf::CpuAccess;
use log::info;
use virtio_dmabuf_proto::uuid;
use virtio_dmabuf_proto::virtio::Uuid;

use super::fence::{FenceWait, Phase};
use super::{lock, BufferSummary, Completion, Fired, ImporterView, RegistryError, Stats, VmHandle};
use crate::arbiter::{Access, Arbiter, Begin, DomainId, Grants, Ticket};
use crate::hostfile::HostFile;
use crate::memory::{check_range, SegList};
use crate::ratelimit::RateLimit;
use crate::shm::MappedRange;

/// What the `DMA_BUF_IOCTL_SYNC` of a host dma-buf whose fences were found signalled may take
/// at least (past the request's own deadline, if that is nearer).
const FENCE_GRACE: Duration = Duration::from_millis(100);

/// Who created a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Owner {
    /// A VM's domain (guest-backed).
    Vm(DomainId),
    /// A host client (host-backed).
    Host,
}

/// Where a buffer's authoritative bytes live.
pub(super) enum Origin {
    /// Pages of the creating VM, resolved against its memory at each access.
    Guest { vm: Arc<VmHandle>, segs: SegList },
    /// A host file (sealed memfd or dma-buf), mapped for the buffer's lifetime.
    Host(HostFile),
}

/// Which VMs may import a buffer (besides its owner).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum VmAccess {
    /// Every VM (guest-backed buffers: unless the daemon forbids cross-VM imports).
    All,
    /// Only the VMs with these names.
    Named(Vec<String>),
    /// No VM: host clients only (`HOST_ONLY`).
    NoVm,
}

impl VmAccess {
    pub(super) fn allows(&self, vm_name: &str) -> bool {
        match self {
            VmAccess::All => true,
            VmAccess::Named(names) => names.iter().any(|n| n == vm_name),
            VmAccess::NoVm => false,
        }
    }
}

/// How a domain that imported a buffer reaches its bytes.
pub(super) enum ImportView {
    /// The importer's pages, filled at START and written back at a write END.
    Copy(SegList),
    /// The origin itself, mapped in the importer's shared memory region at this range (spec
    /// section 13): the fence points only arbitrate (and bracket a host dma-buf origin).
    Mapped(MappedRange),
}

/// A VM's import of a buffer registered elsewhere.
pub(super) struct Import {
    vm: Arc<VmHandle>,
    view: ImportView,
    /// Bytes copied between the origin and this import at its fence points (INFO).
    copied: AtomicU64,
}

/// A VM whose import ended, with the range of its import if it was mapped.
pub(super) type Importer = (Arc<VmHandle>, Option<MappedRange>);

/// What a begin did.
pub(super) enum Began {
    /// Answered: granted (the import up to date) or refused.
    Done(Result<(), RegistryError>),
    /// Waiting; the ticket names it for its timeout.
    Waiting(Ticket),
    /// Granted, but the copy into the import waits for a host dma-buf's fences (`fence.rs`).
    Fences,
}

/// What an end did.
pub(super) enum Ended {
    /// Answered.
    Now(Result<(), RegistryError>),
    /// The copy back waits for a host dma-buf's fences (`fence.rs`); answered then.
    Fences,
}

/// A begin that was not answered at once: its completion and its deadline.
pub(super) struct Parked {
    done: Completion,
    deadline: Instant,
}

/// Who asks, as far as a reset can overtake it: for a VM, the epoch the caller saw when it
/// checked the VM's holdings (work that lands after a reset of that VM is undone); a host
/// domain is only ever released by its own thread.
#[derive(Clone, Copy)]
pub(super) struct Requester<'a> {
    vm_epoch: Option<(&'a VmHandle, u64)>,
}

impl<'a> Requester<'a> {
    /// A host domain.
    pub(super) fn host() -> Requester<'static> {
        Requester { vm_epoch: None }
    }

    /// A VM whose holdings were checked at `epoch`.
    pub(super) fn vm(vm: &'a VmHandle, epoch: u64) -> Requester<'a> {
        Requester {
            vm_epoch: Some((vm, epoch)),
        }
    }

    fn reset_since(&self) -> bool {
        self.vm_epoch
            .is_some_and(|(vm, epoch)| vm.epoch.load(Ordering::SeqCst) != epoch)
    }
}

struct BufState {
    arbiter: Arbiter<Parked>,
    imports: HashMap<DomainId, Import>,
    revoked: bool,
    write_generation: u64,
    /// A udmabuf was made over the origin's pages and they were not detached since.
    exported: bool,
}

/// One registered buffer. Everything but `state` is fixed at registration.
pub(super) struct Buffer {
    pub uuid: Uuid,
    pub size: u64,
    /// `BUF_READ_ONLY`: importers (for a host share: every domain) only read.
    pub read_only: bool,
    /// `BUF_HOST_ONLY`.
    pub host_only: bool,
    pub owner: Owner,
    pub owner_name: String,
    pub origin: Origin,
    pub access: VmAccess,
    state: Mutex<BufState>,
    written: Condvar,
}

/// What a new buffer is made of (everything but its UUID and its state).
pub(super) struct BufferParts {
    pub size: u64,
    pub read_only: bool,
    pub host_only: bool,
    pub owner: Owner,
    pub owner_name: String,
    pub origin: Origin,
    pub access: VmAccess,
}

impl Buffer {
    /// A buffer nobody accesses yet.
    pub(super) fn new(uuid: Uuid, p: BufferParts) -> Buffer {
        Buffer {
            uuid,
            size: p.size,
            read_only: p.read_only,
            host_only: p.host_only,
            owner: p.owner,
            owner_name: p.owner_name,
            origin: p.origin,
            access: p.access,
            state: Mutex::new(BufState {
                arbiter: Arbiter::default(),
                imports: HashMap::new(),
                revoked: false,
                write_generation: 0,
                exported: false,
            }),
            written: Condvar::new(),
        }
    }

    pub(super) fn host_backed(&self) -> bool {
        matches!(self.origin, Origin::Host(_))
    }

    /// Whether `domain` may only read (read-only buffers: everyone but a creating VM).
    pub(super) fn read_only_for(&self, domain: DomainId) -> bool {
        self.read_only && self.owner != Owner::Vm(domain)
    }

    /// Check `offset..offset+len` against the size and `dir` against read-only: what every
    /// begin and end checks first.
    pub(super) fn check_access(&self, access: &Access) -> Result<(), RegistryError> {
        check_range(self.size, access.offset, access.len).map_err(RegistryError::Range)?;
        if access.dir.writes() && self.read_only_for(access.domain) {
            return Err(RegistryError::ReadOnly(self.uuid));
        }
        Ok(())
    }

    fn nr_segs(&self) -> u32 {
        match &self.origin {
            Origin::Guest { segs, .. } => u32::try_from(segs.runs()).unwrap_or(u32::MAX),
            Origin::Host(_) => 1,
        }
    }

    /// Heap bytes of the origin's segment list.
    pub(super) fn segment_heap_bytes(&self) -> usize {
        match &self.origin {
            Origin::Guest { segs, .. } => segs.heap_bytes(),
            Origin::Host(_) => 0,
        }
    }

    // ------------------------------------------------------------------ arbitration

    /// Ask for `access`, waiting at most until `deadline`. Granted at once (the import brought
    /// up to date), refused, waiting for other domains, or granted and waiting for fences.
    pub(super) fn begin(
        &self,
        who: Requester<'_>,
        access: Access,
        done: Completion,
        deadline: Instant,
        stats: &Stats,
    ) -> (Began, Fired) {
        let mut fired = Fired::new();
        let mut st = lock(&self.state);
        // Destroyed between the caller's lookup and this lock: the same answer as for a buffer
        // that was already gone while held (spec section 6.6).
        if st.revoked {
            return (Began::Done(Err(RegistryError::Revoked(self.uuid))), fired);
        }
        let began = match st.arbiter.begin(access, Parked { done, deadline }) {
            Begin::Granted(_parked) if who.reset_since() => {
                let grants = st.arbiter.end(&access).unwrap_or_default();
                self.grant(&mut st, grants, &mut fired, stats);
                Began::Done(Err(RegistryError::Cancelled))
            }
            Begin::Granted(parked) => match self.fence_wait(&st, &access, Phase::Start) {
                Some((file, cpu)) => {
                    fired.wait(FenceWait {
                        uuid: self.uuid,
                        file,
                        cpu,
                        access,
                        phase: Phase::Start,
                        deadline,
                        done: parked.done,
                    });
                    Began::Fences
                }
                None => {
                    let r = self.fence_in(&st, &access, deadline, stats);
                    if r.is_err() {
                        let grants = st.arbiter.end(&access).unwrap_or_default();
                        self.grant(&mut st, grants, &mut fired, stats);
                    }
                    Began::Done(r)
                }
            },
            Begin::Waiting(ticket) if who.reset_since() => {
                if let Some((_parked, grants)) = st.arbiter.cancel(ticket) {
                    self.grant(&mut st, grants, &mut fired, stats);
                }
                Began::Done(Err(RegistryError::Cancelled))
            }
            Begin::Waiting(ticket) => Began::Waiting(ticket),
        };
        (began, fired)
    }

    /// End one access equal to `access`; a write is taken back into the origin first — after
    /// the fences of a host dma-buf origin, which `park` (the END's completion and the bound)
    /// waits for, if they are not signalled. Without `park` (host domains, which have no
    /// import) it never waits.
    pub(super) fn end(
        &self,
        access: &Access,
        park: Option<(Completion, Instant)>,
        stats: &Stats,
    ) -> (Ended, Fired) {
        let mut fired = Fired::new();
        let mut st = lock(&self.state);
        if st.revoked {
            return (Ended::Now(Err(RegistryError::Revoked(self.uuid))), fired);
        }
        // Only an access with exactly this range and direction ends: anything else (a covering
        // access, READ|WRITE ended as WRITE) is NOT_HELD with no effect — no data moves and the
        // write generation stays (found by the request_decode fuzz target).
        if !st.arbiter.has(access) {
            return (Ended::Now(Err(RegistryError::NotHeld)), fired);
        }
        let deadline = park
            .as_ref()
            .map_or_else(|| Instant::now() + FENCE_GRACE, |p| p.1);
        if access.dir.writes() {
            if let (Some((file, cpu)), Some((done, deadline))) =
                (self.fence_wait(&st, access, Phase::End), park)
            {
                fired.wait(FenceWait {
                    uuid: self.uuid,
                    file,
                    cpu,
                    access: *access,
                    phase: Phase::End,
                    deadline,
                    done,
                });
                return (Ended::Fences, fired);
            }
        }
        let r = self.end_locked(&mut st, access, deadline, &mut fired, stats);
        (Ended::Now(r), fired)
    }

    /// End `access` (held), copying a write back first, and grant what that unblocks.
    fn end_locked(
        &self,
        st: &mut BufState,
        access: &Access,
        deadline: Instant,
        fired: &mut Fired,
        stats: &Stats,
    ) -> Result<(), RegistryError> {
        let Ok(grants) = st.arbiter.end(access) else {
            return Err(RegistryError::NotHeld);
        };
        let r = self.fence_out(st, access, deadline, stats);
        if access.dir.writes() {
            st.write_generation += 1;
            self.written.notify_all();
        }
        self.grant(st, grants, fired, stats);
        r
    }

    /// A waiting begin's bound passed: it fails with TIMEOUT (unless granted meanwhile).
    pub(super) fn expire(&self, ticket: Ticket, stats: &Stats) -> Fired {
        let mut fired = Fired::new();
        let mut st = lock(&self.state);
        if let Some((parked, grants)) = st.arbiter.cancel(ticket) {
            fired.push((parked.done, Err(RegistryError::Timeout)));
            self.grant(&mut st, grants, &mut fired, stats);
        }
        fired
    }

    /// A domain left (reset, gone, or released its import): its import goes, its accesses are
    /// dropped without moving data, its waiters are CANCELLED, and what that unblocks is granted.
    /// Returns the range of a mapped import, for the caller to unmap once no lock is held.
    pub(super) fn drop_domain(
        &self,
        domain: DomainId,
        stats: &Stats,
    ) -> (Fired, Option<MappedRange>) {
        let mut fired = Fired::new();
        let mut st = lock(&self.state);
        let mapped = match st.imports.remove(&domain).map(|i| i.view) {
            Some(ImportView::Mapped(range)) => {
                self.end_mapped_accesses(&st, domain);
                Some(range)
            }
            _ => None,
        };
        let (dropped, grants) = st.arbiter.drop_domain(domain);
        fired.extend(
            dropped
                .into_iter()
                .map(|parked| (parked.done, Err(RegistryError::Cancelled))),
        );
        self.grant(&mut st, grants, &mut fired, stats);
        (fired, mapped)
    }

    /// A mapped import of a host dma-buf leaves with accesses still granted: close the
    /// exporter's CPU-access brackets its STARTs opened (13.3).
    fn end_mapped_accesses(&self, st: &BufState, domain: DomainId) {
        if !matches!(&self.origin, Origin::Host(_)) {
            return;
        }
        for access in st.arbiter.granted_of(domain) {
            let _ = self.end_origin_access(bracket_of(&access));
        }
    }

    /// Granted waiters: bring their imports up to date, then answer them (or hand them to the
    /// fence waiter, when the copy must wait for a host dma-buf's fences).
    fn grant(
        &self,
        st: &mut BufState,
        mut grants: Grants<Parked>,
        fired: &mut Fired,
        stats: &Stats,
    ) {
        while let Some((access, parked)) = grants.pop() {
            if let Some((file, cpu)) = self.fence_wait(st, &access, Phase::Start) {
                fired.wait(FenceWait {
                    uuid: self.uuid,
                    file,
                    cpu,
                    access,
                    phase: Phase::Start,
                    deadline: parked.deadline,
                    done: parked.done,
                });
                continue;
            }
            let r = self.fence_in(st, &access, parked.deadline, stats);
            if r.is_err() {
                if let Ok(more) = st.arbiter.end(&access) {
                    grants.extend(more);
                }
            }
            fired.push((parked.done, r));
        }
    }

    // ------------------------------------------------------------------ imports

    /// `vm`'s pages become its copy. Refused if the buffer was destroyed meanwhile, and undone
    /// if the VM was reset since the caller saw `epoch`.
    pub(super) fn add_import(
        &self,
        vm: &Arc<VmHandle>,
        view: ImportView,
        epoch: u64,
    ) -> Result<(), RegistryError> {
        let mut st = lock(&self.state);
        if st.revoked {
            return Err(RegistryError::NotFound(self.uuid));
        }
        let import = Import {
            vm: vm.clone(),
            view,
            copied: AtomicU64::new(0),
        };
        st.imports.insert(vm.domain, import);
        if vm.epoch.load(Ordering::SeqCst) != epoch {
            st.imports.remove(&vm.domain);
            return Err(RegistryError::Cancelled);
        }
        Ok(())
    }

    /// Take `domain`'s import out if it is still there (a MAP that failed); whether it was.
    pub(super) fn remove_import(&self, domain: DomainId) -> bool {
        lock(&self.state).imports.remove(&domain).is_some()
    }

    /// The buffer goes away: every waiter fails with REVOKED, every access and import is
    /// dropped. Returns the completions and the VMs whose imports ended (to be told), with the
    /// range of each mapped import (to be unmapped before the revocation completes).
    pub(super) fn revoke(&self) -> (Fired, Vec<Importer>) {
        let mut st = lock(&self.state);
        st.revoked = true;
        let mut fired = Fired::new();
        fired.extend(
            st.arbiter
                .drain()
                .into_iter()
                .map(|parked| (parked.done, Err(RegistryError::Revoked(self.uuid)))),
        );
        let vms = st
            .imports
            .drain()
            .map(|(_, i)| match i.view {
                ImportView::Mapped(range) => (i.vm, Some(range)),
                ImportView::Copy(_) => (i.vm, None),
            })
            .collect();
        self.written.notify_all();
        static DESTROYED: RateLimit = RateLimit::new("buffer destroyed");
        if let Some(n) = DESTROYED.admit() {
            info!("buffer {} destroyed{n}", uuid::format(&self.uuid));
        }
        (fired, vms)
    }

    // ------------------------------------------------------------------ observation

    /// Wait until the write generation exceeds `after`, at most until `deadline`.
    pub(super) fn wait_write(&self, after: u64, deadline: Instant) -> Result<u64, RegistryError> {
        let mut st = lock(&self.state);
        loop {
            if st.write_generation > after {
                return Ok(st.write_generation);
            }
            if st.revoked {
                return Err(RegistryError::Revoked(self.uuid));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(RegistryError::Timeout);
            }
            st = self
                .written
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The buffer as LIST and INFO describe it.
    pub(super) fn summary(&self) -> BufferSummary {
        let st = lock(&self.state);
        BufferSummary {
            uuid: self.uuid,
            size: self.size,
            read_only: self.read_only,
            host_only: self.host_only,
            host_backed: self.host_backed(),
            revoked: st.revoked,
            write_generation: st.write_generation,
            importers: u32::try_from(st.imports.len()).unwrap_or(u32::MAX),
            importer_views: {
                let mut v: Vec<ImporterView> = st
                    .imports
                    .values()
                    .map(|i| ImporterView {
                        name: i.vm.name.clone(),
                        mapped: matches!(i.view, ImportView::Mapped(_)),
                        copied: i.copied.load(Ordering::Relaxed),
                    })
                    .collect();
                v.sort();
                v
            },
            nr_segs: self.nr_segs(),
            owner: self.owner_name.clone(),
        }
    }

    /// Granted and waiting accesses (for tests: waits are asserted by state, not by time).
    #[cfg(test)]
    pub(super) fn counts(&self) -> (usize, usize) {
        let st = lock(&self.state);
        (st.arbiter.granted_count(), st.arbiter.waiting_count())
    }
}

/// The exporter bracket of a CPU access in `access`'s direction.
fn bracket_of(access: &Access) -> CpuAccess {
    if access.dir.writes() {
        CpuAccess::Write
    } else {
        CpuAccess::Read
    }
}

mod data;
