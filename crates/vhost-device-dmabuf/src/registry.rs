// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The buffer registry: every buffer, every domain, quotas, access control, and the data
//! movement at fence points. Shared by all VMs and host clients of one daemon.
//!
//! Locking: `Registry::inner` (the maps) is taken before a `Buffer::state`, never after.
//! Completions (a parked virtqueue request, a host client's reply) are collected while locked
//! and fired after every lock is dropped.

use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread;
use std::time::{Duration, Instant};

use dmabuf_sys_util::dma_buf::CpuAccess;
use log::{debug, info, warn};
use virtio_dmabuf_proto::control::{self, BufInfo};
use virtio_dmabuf_proto::request::{AttachRequest, CreateRequest, SyncPhase, SyncRequest};
use virtio_dmabuf_proto::virtio::{self, buf_flags, Event, Uuid};
use virtio_dmabuf_proto::Status;
use vm_memory::{GuestAddressSpace, GuestMemoryAtomic, VolatileSlice};

use crate::arbiter::{Access, Arbiter, Begin, DomainId, Grants, Ticket};
use crate::hostfile::{HostFile, HostKind};
use crate::memory::{check_range, copy_slices, GuestMem, MemError, SegList};

/// A begin or end, for any domain (transitional).
struct SyncOp {
    uuid: Uuid,
    offset: u64,
    len: u64,
    read: bool,
    write: bool,
    end: bool,
    timeout_ms: u32,
}

impl From<&SyncRequest> for SyncOp {
    fn from(r: &SyncRequest) -> SyncOp {
        let (end, timeout_ms) = match r.phase {
            SyncPhase::Start { timeout_ms } => (false, timeout_ms),
            SyncPhase::End => (true, 0),
        };
        SyncOp {
            uuid: r.uuid,
            offset: r.offset,
            len: r.len,
            read: r.dir != virtio_dmabuf_proto::Direction::Write,
            write: r.dir.writes(),
            end,
            timeout_ms,
        }
    }
}

/// Called once with the final status of a parked begin.
pub type Completion = Box<dyn FnOnce(Status) + Send>;

/// Limits and policy, per VM (and per daemon for host shares).
#[derive(Clone, Debug)]
pub struct Limits {
    /// Most segments in one CREATE or ATTACH.
    pub max_segments: u32,
    /// Most buffers a VM may hold.
    pub max_buffers: u32,
    /// Most bytes a VM may hold.
    pub max_bytes: u64,
    /// Most coalesced segments a VM may hold over all its buffers.
    pub max_total_segments: u64,
    /// Default and upper bound of a wait.
    pub sync_timeout: Duration,
    /// Whether VMs may import each other's buffers.
    pub cross_vm: bool,
    /// Most host-backed buffers (all host clients together).
    pub max_host_buffers: u32,
    /// Longest a worker busy-polls its request queue for the next request before it sleeps
    /// (zero: never; see [`crate::poll`]).
    pub poll_max: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_segments: 1 << 18,
            max_buffers: 4096,
            max_bytes: 8 << 30,
            max_total_segments: 4 << 20,
            sync_timeout: Duration::from_secs(5),
            cross_vm: true,
            max_host_buffers: 4096,
            poll_max: Duration::from_micros(32),
        }
    }
}

impl Limits {
    /// The config space the device shows the driver.
    pub fn config(&self) -> virtio::Config {
        virtio::Config {
            max_segments: self.max_segments,
            max_buffers: self.max_buffers,
            max_bytes: self.max_bytes,
            sync_timeout_ms: u32::try_from(self.sync_timeout.as_millis()).unwrap_or(u32::MAX),
            reserved: 0,
        }
    }

    fn bound(&self, requested_ms: u32) -> Duration {
        if requested_ms == 0 {
            self.sync_timeout
        } else {
            Duration::from_millis(u64::from(requested_ms)).min(self.sync_timeout)
        }
    }
}

/// What a guest offers the registry: its memory and a way to post events.
pub trait GuestPort: Send + Sync {
    /// Post an event on the event queue; dropped if the driver offered no buffer.
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
    /// Incremented at each reset; parked requests of an older epoch are not answered.
    pub epoch: AtomicU64,
}

impl std::fmt::Debug for VmHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmHandle")
            .field("name", &self.name)
            .field("domain", &self.domain)
            .finish()
    }
}

/// Where a buffer's authoritative bytes live.
enum Origin {
    Guest { vm: Arc<VmHandle>, segs: SegList },
    Host(HostFile),
}

/// Who created a buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Owner {
    Vm(DomainId),
    Host,
}

/// A VM's copy of a buffer registered elsewhere.
struct Copy {
    vm: Arc<VmHandle>,
    segs: SegList,
}

struct BufState {
    arbiter: Arbiter<Completion>,
    copies: HashMap<DomainId, Copy>,
    revoked: bool,
    write_generation: u64,
}

/// One registered buffer.
pub struct Buffer {
    uuid: Uuid,
    size: u64,
    flags: u32,
    owner: Owner,
    owner_name: String,
    origin: Origin,
    allowed_vms: Vec<String>,
    state: Mutex<BufState>,
    written: Condvar,
}

/// How a domain holds a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Own,
    Attached,
    /// Destroyed or revoked, but still counted until the domain releases it.
    Revoked,
}

#[derive(Default)]
struct Holdings {
    held: HashMap<Uuid, (Role, u64, u64)>, // role, bytes, segments
    bytes: u64,
    segments: u64,
}

struct Domain {
    vm: Option<Arc<VmHandle>>,
    holdings: Holdings,
}

struct Inner {
    buffers: HashMap<Uuid, Arc<Buffer>>,
    domains: HashMap<DomainId, Domain>,
    host_buffers: u32,
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

/// Everything shared.
pub struct Registry {
    limits: Limits,
    inner: Mutex<Inner>,
    next_domain: AtomicU64,
    timer: Timer,
    /// Instrumentation.
    pub stats: Stats,
}

/// Result of a begin that may wait.
pub enum BeginResult {
    /// Answered now.
    Done(Status),
    /// Parked; the completion will be called exactly once.
    Parked,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock is a bug elsewhere; keep serving rather than cascade.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn random_uuid() -> Uuid {
    let mut u = [0u8; 16];
    // The OS random source; a daemon that cannot read it must not invent identifiers.
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut u))
        .expect("reading /dev/urandom");
    u[6] = (u[6] & 0x0f) | 0x40; // version 4
    u[8] = (u[8] & 0x3f) | 0x80; // RFC 4122 variant
    u
}

/// Statuses to deliver once locks are dropped.
type Fire = Vec<(Completion, Status)>;

fn fire(list: Fire) {
    for (c, s) in list {
        c(s);
    }
}

impl Buffer {
    /// The buffer's UUID.
    pub fn uuid(&self) -> Uuid {
        self.uuid
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    fn host_backed(&self) -> bool {
        matches!(self.origin, Origin::Host(_))
    }

    /// Whether `domain` (not the owner) may only read.
    fn read_only_for(&self, domain: DomainId) -> bool {
        self.flags & buf_flags::READ_ONLY != 0 && self.owner != Owner::Vm(domain)
    }

    fn nr_segs(&self) -> u32 {
        match &self.origin {
            Origin::Guest { segs, .. } => u32::try_from(segs.runs()).unwrap_or(u32::MAX),
            Origin::Host(_) => 1,
        }
    }

    /// Run `f` over the origin's bytes `offset..offset+len`.
    fn with_origin<R>(
        &self,
        offset: u64,
        len: u64,
        f: impl FnOnce(&[VolatileSlice<'_, ()>]) -> R,
    ) -> Result<R, Status> {
        match &self.origin {
            Origin::Guest { vm, segs } => {
                let mem = vm.mem.memory();
                let slices = segs.slices(&mem, offset, len).map_err(|e| mem_status(&e))?;
                Ok(f(&slices))
            }
            Origin::Host(hf) => {
                let s = hf.slice(offset, len).ok_or(Status::InvalidSize)?;
                Ok(f(&[s]))
            }
        }
    }

    /// Bracket the daemon's access to a host dma-buf origin.
    fn origin_cpu_access(&self, end: bool, write: bool) -> Result<(), Status> {
        if let Origin::Host(hf) = &self.origin {
            if hf.kind() == HostKind::DmaBuf {
                let access = if write {
                    CpuAccess::Write
                } else {
                    CpuAccess::Read
                };
                let r = if end {
                    hf.end_cpu_access(access)
                } else {
                    hf.begin_cpu_access(access)
                };
                r.map_err(|e| {
                    warn!("{}: {e}", control_name(&self.uuid));
                    Status::IoError
                })?;
            }
        }
        Ok(())
    }
}

fn control_name(u: &Uuid) -> String {
    virtio_dmabuf_proto::uuid::format(u)
}

fn mem_status(e: &MemError) -> Status {
    match e {
        // The memory table changed under a registered buffer: the pages are gone.
        MemError::NotRam { .. } => Status::IoError,
        other => other.status(),
    }
}

impl Registry {
    /// A registry with these limits, and its timeout thread.
    pub fn new(limits: Limits) -> Arc<Registry> {
        let reg = Arc::new(Registry {
            limits,
            inner: Mutex::new(Inner {
                buffers: HashMap::new(),
                domains: HashMap::new(),
                host_buffers: 0,
            }),
            next_domain: AtomicU64::new(1),
            timer: Timer::default(),
            stats: Stats::default(),
        });
        let weak = Arc::downgrade(&reg);
        thread::Builder::new()
            .name("dmabuf-timeouts".into())
            .spawn(move || timeout_thread(weak))
            .expect("spawning the timeout thread");
        reg
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Register a VM connection; its domain lives until [`Registry::remove_domain`].
    pub fn add_vm(
        &self,
        name: &str,
        mem: GuestMemoryAtomic<GuestMem>,
        port: Arc<dyn GuestPort>,
    ) -> Arc<VmHandle> {
        let domain = self.next_domain.fetch_add(1, Ordering::Relaxed);
        let vm = Arc::new(VmHandle {
            name: name.to_owned(),
            domain,
            mem,
            port,
            epoch: AtomicU64::new(0),
        });
        lock(&self.inner).domains.insert(
            domain,
            Domain {
                vm: Some(vm.clone()),
                holdings: Holdings::default(),
            },
        );
        vm
    }

    /// Register a host client domain (one per control connection or in-process session).
    pub fn add_host_domain(&self) -> DomainId {
        let domain = self.next_domain.fetch_add(1, Ordering::Relaxed);
        lock(&self.inner).domains.insert(
            domain,
            Domain {
                vm: None,
                holdings: Holdings::default(),
            },
        );
        domain
    }

    fn buffer(&self, uuid: &Uuid) -> Option<Arc<Buffer>> {
        lock(&self.inner).buffers.get(uuid).cloned()
    }

    fn check_quota(&self, h: &Holdings, bytes: u64, segs: u64) -> Result<(), Status> {
        let count = u32::try_from(h.held.len()).unwrap_or(u32::MAX);
        if count >= self.limits.max_buffers
            || h.bytes.saturating_add(bytes) > self.limits.max_bytes
            || h.segments.saturating_add(segs) > self.limits.max_total_segments
        {
            return Err(Status::QuotaExceeded);
        }
        Ok(())
    }

    // ---------------------------------------------------------------- guest requests

    /// CREATE: register guest pages as a new buffer.
    pub fn create(&self, vm: &Arc<VmHandle>, req: CreateRequest) -> Result<Uuid, Status> {
        let (size, flags) = (req.size, req.flags.bits());
        let list = {
            let mem = vm.mem.memory();
            SegList::new(req.segments, size, &mem).map_err(|e| e.status())?
        };
        let mut inner = lock(&self.inner);
        let runs = list.runs() as u64;
        let dom = inner.domains.get_mut(&vm.domain).ok_or(Status::Cancelled)?;
        self.check_quota(&dom.holdings, size, runs)?;
        let uuid = loop {
            let u = random_uuid();
            if !inner.buffers.contains_key(&u) {
                break u;
            }
        };
        let dom = inner.domains.get_mut(&vm.domain).ok_or(Status::Cancelled)?;
        dom.holdings.add(uuid, Role::Own, size, runs);
        inner.buffers.insert(
            uuid,
            Arc::new(Buffer {
                uuid,
                size,
                flags,
                owner: Owner::Vm(vm.domain),
                owner_name: vm.name.clone(),
                origin: Origin::Guest {
                    vm: vm.clone(),
                    segs: list,
                },
                allowed_vms: Vec::new(),
                state: Mutex::new(BufState::new()),
                written: Condvar::new(),
            }),
        );
        debug!(
            "{}: created {} ({size} bytes, {runs} runs)",
            vm.name,
            control_name(&uuid)
        );
        Ok(uuid)
    }

    /// Whether VM `vm` may see `buf` at all.
    fn visible_to_vm(&self, buf: &Buffer, vm: &VmHandle) -> bool {
        match buf.owner {
            Owner::Vm(d) if d == vm.domain => true,
            Owner::Vm(_) => self.limits.cross_vm && buf.flags & buf_flags::HOST_ONLY == 0,
            Owner::Host => buf.allowed_vms.is_empty() || buf.allowed_vms.contains(&vm.name),
        }
    }

    /// LOOKUP: size and flags as this VM sees them.
    pub fn lookup(&self, vm: &VmHandle, uuid: &Uuid) -> Result<(u64, u32), Status> {
        let buf = self.buffer(uuid).ok_or(Status::NotFound)?;
        if !self.visible_to_vm(&buf, vm) {
            return Err(Status::NotFound);
        }
        let mut flags = 0;
        if buf.read_only_for(vm.domain) {
            flags |= buf_flags::READ_ONLY;
        }
        if buf.host_backed() {
            flags |= buf_flags::HOST_BACKED;
        }
        if buf.owner == Owner::Vm(vm.domain) {
            flags |= buf_flags::OWN;
        }
        Ok((buf.size, flags))
    }

    /// ATTACH: this VM's pages become its copy of a buffer registered elsewhere.
    pub fn attach(&self, vm: &Arc<VmHandle>, req: AttachRequest) -> Result<(), Status> {
        let uuid = &req.uuid;
        let buf = self.buffer(uuid).ok_or(Status::NotFound)?;
        if !self.visible_to_vm(&buf, vm) {
            return Err(Status::NotFound);
        }
        if buf.owner == Owner::Vm(vm.domain) {
            return Err(Status::AlreadyExists);
        }
        let list = {
            let mem = vm.mem.memory();
            SegList::new(req.segments, buf.size, &mem).map_err(|e| e.status())?
        };
        let runs = list.runs() as u64;
        let mut inner = lock(&self.inner);
        if !inner.buffers.contains_key(uuid) {
            return Err(Status::NotFound);
        }
        let dom = inner.domains.get_mut(&vm.domain).ok_or(Status::Cancelled)?;
        if dom.holdings.held.contains_key(uuid) {
            return Err(Status::AlreadyExists);
        }
        self.check_quota(&dom.holdings, buf.size, runs)?;
        dom.holdings.add(*uuid, Role::Attached, buf.size, runs);
        lock(&buf.state).copies.insert(
            vm.domain,
            Copy {
                vm: vm.clone(),
                segs: list,
            },
        );
        Ok(())
    }

    /// RELEASE: drop this VM's reference.
    pub fn release(&self, vm: &VmHandle, uuid: &Uuid) -> Status {
        let mut fired = Fire::new();
        let status = {
            let mut inner = lock(&self.inner);
            let Some(dom) = inner.domains.get_mut(&vm.domain) else {
                return Status::Cancelled;
            };
            match dom.holdings.remove(uuid) {
                None => Status::NotFound,
                Some(Role::Revoked) => Status::Ok,
                Some(Role::Own) => {
                    if let Some(buf) = inner.buffers.remove(uuid) {
                        self.destroy_locked(&mut inner, &buf, &mut fired);
                    }
                    Status::Ok
                }
                Some(Role::Attached) => {
                    if let Some(buf) = inner.buffers.get(uuid).cloned() {
                        let mut st = lock(&buf.state);
                        st.copies.remove(&vm.domain);
                        let (dropped, grants) = st.arbiter.drop_domain(vm.domain);
                        fired.extend(dropped.into_iter().map(|c| (c, Status::Cancelled)));
                        self.grant(&buf, &mut st, grants, &mut fired);
                    }
                    Status::Ok
                }
            }
        };
        fire(fired);
        status
    }

    /// SYNC from a VM. START may park: then `done` is called later, exactly once.
    pub fn guest_sync(&self, vm: &VmHandle, req: &SyncRequest, done: Completion) -> BeginResult {
        let op = &SyncOp::from(req);
        let role = lock(&self.inner)
            .domains
            .get(&vm.domain)
            .and_then(|d| d.holdings.held.get(&op.uuid).map(|h| h.0));
        let buf = match (role, self.buffer(&op.uuid)) {
            (Some(Role::Own | Role::Attached), Some(b)) => b,
            // Destroyed or revoked while held: the same answer whether or not the event reached
            // the driver, until it releases the UUID.
            (Some(_), _) => return BeginResult::Done(Status::Revoked),
            (None, _) => return BeginResult::Done(Status::NotFound),
        };
        self.sync(&buf, vm.domain, op, done)
    }

    // ---------------------------------------------------------------- arbitration + data

    /// Begin or end, for any domain. `done` is used only when a begin parks.
    fn sync(
        &self,
        buf: &Arc<Buffer>,
        domain: DomainId,
        op: &SyncOp,
        done: Completion,
    ) -> BeginResult {
        if let Err(e) = check_range(buf.size, op.offset, op.len) {
            return BeginResult::Done(e.status());
        }
        if op.write && buf.read_only_for(domain) {
            return BeginResult::Done(Status::PermissionDenied);
        }
        let access = Access {
            domain,
            offset: op.offset,
            len: op.len,
            read: op.read,
            write: op.write,
        };
        let mut fired = Fire::new();
        let result = {
            let mut st = lock(&buf.state);
            // Destroyed between the caller's lookup and this lock: the same answer as for a
            // buffer that was already gone while held (spec section 6.6).
            if st.revoked {
                return BeginResult::Done(Status::Revoked);
            }
            if op.end {
                BeginResult::Done(self.end_locked(buf, &mut st, &access, &mut fired))
            } else {
                match st.arbiter.begin(access, done) {
                    Begin::Granted(_unused) => {
                        let s = self.fence_in(buf, &st, &access);
                        if s != Status::Ok {
                            let grants = st.arbiter.end(&access).unwrap_or_default();
                            self.grant(buf, &mut st, grants, &mut fired);
                        }
                        BeginResult::Done(s)
                    }
                    Begin::Waiting(ticket) => {
                        let deadline = Instant::now() + self.limits.bound(op.timeout_ms);
                        self.timer.add(deadline, buf.uuid, ticket);
                        BeginResult::Parked
                    }
                }
            }
        };
        fire(fired);
        result
    }

    fn end_locked(
        &self,
        buf: &Buffer,
        st: &mut BufState,
        access: &Access,
        fired: &mut Fire,
    ) -> Status {
        // Only an access with exactly this range and direction ends: anything else (a covering
        // access, READ|WRITE ended as WRITE) is NOT_HELD with no effect — no data moves and the
        // write generation stays (found by the request_decode fuzz target).
        let Ok(grants) = st.arbiter.end(access) else {
            return Status::NotHeld;
        };
        // The waiters this unblocks are answered only below, after the write is back in the
        // origin: the state lock is held throughout.
        let status = if access.write {
            let s = self.fence_out(buf, st, access);
            st.write_generation += 1;
            buf.written.notify_all();
            s
        } else {
            Status::Ok
        };
        self.grant(buf, st, grants, fired);
        status
    }

    /// Granted waiters: bring their copies up to date, then answer them.
    fn grant(
        &self,
        buf: &Buffer,
        st: &mut BufState,
        mut grants: Grants<Completion>,
        fired: &mut Fire,
    ) {
        while let Some((access, done)) = grants.pop() {
            let s = self.fence_in(buf, st, &access);
            if s != Status::Ok {
                if let Ok(more) = st.arbiter.end(&access) {
                    grants.extend(more);
                }
            }
            fired.push((done, s));
        }
    }

    /// At a granted START: copy the origin's range into the domain's copy, if it has one.
    fn fence_in(&self, buf: &Buffer, st: &BufState, access: &Access) -> Status {
        let Some(copy) = st.copies.get(&access.domain) else {
            return Status::Ok;
        };
        self.copy_between(buf, copy, access, false)
    }

    /// At a write END: copy the domain's copy back to the origin, if it has one.
    fn fence_out(&self, buf: &Buffer, st: &BufState, access: &Access) -> Status {
        let Some(copy) = st.copies.get(&access.domain) else {
            return Status::Ok;
        };
        self.copy_between(buf, copy, access, true)
    }

    fn copy_between(&self, buf: &Buffer, copy: &Copy, access: &Access, to_origin: bool) -> Status {
        if let Err(s) = buf.origin_cpu_access(false, to_origin) {
            return s;
        }
        let mem = copy.vm.mem.memory();
        let result = copy
            .segs
            .slices(&mem, access.offset, access.len)
            .map_err(|e| mem_status(&e))
            .and_then(|theirs| {
                buf.with_origin(access.offset, access.len, |origin| {
                    if to_origin {
                        copy_slices(&theirs, origin)
                    } else {
                        copy_slices(origin, &theirs)
                    }
                })
            });
        let end = buf.origin_cpu_access(true, to_origin);
        match (result, end) {
            (Ok(n), Ok(())) => {
                self.stats.copied_bytes.fetch_add(n, Ordering::Relaxed);
                Status::Ok
            }
            (Err(s), _) | (_, Err(s)) => s,
        }
    }

    /// A parked begin's bound expired.
    fn expire(&self, uuid: &Uuid, ticket: Ticket) {
        let Some(buf) = self.buffer(uuid) else {
            return;
        };
        let mut fired = Fire::new();
        {
            let mut st = lock(&buf.state);
            if let Some((done, grants)) = st.arbiter.cancel(ticket) {
                fired.push((done, Status::Timeout));
                self.grant(&buf, &mut st, grants, &mut fired);
            }
        }
        fire(fired);
    }

    /// Destroy `buf` (already removed from the map): fail waiters, notify and detach importers.
    fn destroy_locked(&self, inner: &mut Inner, buf: &Arc<Buffer>, fired: &mut Fire) {
        let mut st = lock(&buf.state);
        st.revoked = true;
        fired.extend(st.arbiter.drain().into_iter().map(|c| (c, Status::Revoked)));
        let event = Event {
            type_: virtio::event::REVOKED.to_le(),
            reserved: 0,
            uuid: buf.uuid,
        };
        for (domain, copy) in st.copies.drain() {
            if let Some(d) = inner.domains.get_mut(&domain) {
                if let Some(h) = d.holdings.held.get_mut(&buf.uuid) {
                    h.0 = Role::Revoked;
                }
            }
            if !copy.vm.port.post_event(&event) {
                self.stats.dropped_events.fetch_add(1, Ordering::Relaxed);
            }
        }
        if buf.owner == Owner::Host {
            inner.host_buffers = inner.host_buffers.saturating_sub(1);
        }
        buf.written.notify_all();
        info!("buffer {} destroyed", control_name(&buf.uuid));
    }

    /// A domain was reset (device reset) or went away (`remove`): release everything it held,
    /// drop its accesses and waiters everywhere, and answer the waiters that unblocks.
    pub fn reset_domain(&self, domain: DomainId) {
        self.release_domain(domain, false);
    }

    /// A domain went away for good.
    pub fn remove_domain(&self, domain: DomainId) {
        self.release_domain(domain, true);
    }

    fn release_domain(&self, domain: DomainId, remove: bool) {
        let mut fired = Fire::new();
        {
            let mut inner = lock(&self.inner);
            let held: Vec<(Uuid, Role)> = match inner.domains.get_mut(&domain) {
                Some(d) => {
                    if let Some(vm) = &d.vm {
                        vm.epoch.fetch_add(1, Ordering::SeqCst);
                    }
                    let h = std::mem::take(&mut d.holdings);
                    h.held.into_iter().map(|(u, (r, _, _))| (u, r)).collect()
                }
                None => Vec::new(),
            };
            for (uuid, role) in held {
                if role == Role::Own {
                    if let Some(buf) = inner.buffers.remove(&uuid) {
                        self.destroy_locked(&mut inner, &buf, &mut fired);
                    }
                }
            }
            let buffers: Vec<Arc<Buffer>> = inner.buffers.values().cloned().collect();
            for buf in buffers {
                let mut st = lock(&buf.state);
                st.copies.remove(&domain);
                let (dropped, grants) = st.arbiter.drop_domain(domain);
                fired.extend(dropped.into_iter().map(|c| (c, Status::Cancelled)));
                self.grant(&buf, &mut st, grants, &mut fired);
            }
            if remove {
                inner.domains.remove(&domain);
            }
        }
        fire(fired);
    }

    // ---------------------------------------------------------------- host side

    /// Share a host fd as a new host-backed buffer.
    pub fn share(
        &self,
        file: File,
        size: u64,
        flags: u32,
        allowed_vms: Vec<String>,
        owner: &str,
    ) -> Result<Uuid, Status> {
        if flags & !(buf_flags::READ_ONLY | buf_flags::HOST_ONLY) != 0 {
            return Err(Status::InvalidRequest);
        }
        let hf = HostFile::new(file, size).map_err(|e| {
            info!("share refused: {e}");
            match e {
                crate::hostfile::HostFileError::BadSize { .. } => Status::InvalidSize,
                crate::hostfile::HostFileError::Syscall(..)
                | crate::hostfile::HostFileError::Map(..) => Status::IoError,
                _ => Status::InvalidRequest,
            }
        })?;
        let mut flags = flags;
        if !hf.writable() {
            flags |= buf_flags::READ_ONLY;
        }
        // HOST_ONLY on a host share means: no VM may import it.
        let allowed = if flags & buf_flags::HOST_ONLY != 0 {
            vec![String::new()]
        } else {
            allowed_vms
        };
        let mut inner = lock(&self.inner);
        if inner.host_buffers >= self.limits.max_host_buffers {
            return Err(Status::QuotaExceeded);
        }
        let uuid = loop {
            let u = random_uuid();
            if !inner.buffers.contains_key(&u) {
                break u;
            }
        };
        inner.host_buffers += 1;
        inner.buffers.insert(
            uuid,
            Arc::new(Buffer {
                uuid,
                size,
                flags,
                owner: Owner::Host,
                owner_name: owner.to_owned(),
                origin: Origin::Host(hf),
                allowed_vms: allowed,
                state: Mutex::new(BufState::new()),
                written: Condvar::new(),
            }),
        );
        Ok(uuid)
    }

    /// Revoke any buffer: importers detached and notified, waiters failed, later lookups fail.
    /// A VM that owns it keeps its quota entry until it releases the UUID.
    pub fn revoke(&self, uuid: &Uuid) -> Status {
        let mut fired = Fire::new();
        {
            let mut inner = lock(&self.inner);
            let Some(buf) = inner.buffers.remove(uuid) else {
                return Status::NotFound;
            };
            if let Owner::Vm(d) = buf.owner {
                if let Some(h) = inner
                    .domains
                    .get_mut(&d)
                    .and_then(|d| d.holdings.held.get_mut(uuid))
                {
                    h.0 = Role::Revoked;
                }
                // The owner learns it like an importer does.
                if let Origin::Guest { vm, .. } = &buf.origin {
                    let delivered = vm.port.post_event(&Event {
                        type_: virtio::event::REVOKED.to_le(),
                        reserved: 0,
                        uuid: *uuid,
                    });
                    if !delivered {
                        self.stats.dropped_events.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            self.destroy_locked(&mut inner, &buf, &mut fired);
        }
        fire(fired);
        Status::Ok
    }

    /// Begin CPU access for a host domain, waiting up to the bound.
    pub fn host_begin(
        &self,
        domain: DomainId,
        uuid: &Uuid,
        offset: u64,
        len: u64,
        write: bool,
        timeout_ms: u32,
    ) -> Status {
        self.host_begin_watched(domain, uuid, offset, len, write, timeout_ms, &|| false)
    }

    /// [`Registry::host_begin`] for a remote client: while the begin waits, `gone` is asked every
    /// few milliseconds whether the client went away; if so the domain is released at once, so a
    /// vanished client never keeps a place in the queue.
    #[allow(clippy::too_many_arguments)]
    pub fn host_begin_watched(
        &self,
        domain: DomainId,
        uuid: &Uuid,
        offset: u64,
        len: u64,
        write: bool,
        timeout_ms: u32,
        gone: &dyn Fn() -> bool,
    ) -> Status {
        let Some(buf) = self.buffer(uuid) else {
            return Status::NotFound;
        };
        let op = host_op(uuid, offset, len, write, false, timeout_ms);
        let (tx, rx) = mpsc::sync_channel::<Status>(1);
        let done: Completion = Box::new(move |s| {
            let _ = tx.send(s);
        });
        if let BeginResult::Done(s) = self.sync(&buf, domain, &op, done) {
            return s;
        }
        // The timeout thread answers at the bound; the extra second only guards against a bug
        // there turning into a hang.
        let deadline = Instant::now() + self.limits.bound(timeout_ms) + Duration::from_secs(1);
        loop {
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(s) => return s,
                Err(mpsc::RecvTimeoutError::Disconnected) => return Status::Cancelled,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if gone() {
                self.reset_domain(domain);
                return Status::Cancelled;
            }
            if Instant::now() >= deadline {
                return Status::Timeout;
            }
        }
    }

    /// End CPU access for a host domain.
    pub fn host_end(
        &self,
        domain: DomainId,
        uuid: &Uuid,
        offset: u64,
        len: u64,
        write: bool,
    ) -> Status {
        let Some(buf) = self.buffer(uuid) else {
            return Status::NotFound;
        };
        let op = host_op(uuid, offset, len, write, true, 0);
        match self.sync(&buf, domain, &op, Box::new(|_| {})) {
            BeginResult::Done(s) => s,
            BeginResult::Parked => Status::InvalidRequest,
        }
    }

    /// Run `f` over the origin bytes of a range the host domain holds (for writing, if `write`).
    /// This is the in-process, zero-copy path: `f` sees guest pages or the host file in place.
    pub fn with_held_range<R>(
        &self,
        domain: DomainId,
        uuid: &Uuid,
        offset: u64,
        len: u64,
        write: bool,
        f: impl FnOnce(&[VolatileSlice<'_, ()>]) -> R,
    ) -> Result<R, Status> {
        let buf = self.buffer(uuid).ok_or(Status::NotFound)?;
        check_range(buf.size, offset, len).map_err(|e| e.status())?;
        let st = lock(&buf.state);
        if st.revoked {
            return Err(Status::NotFound);
        }
        if !st.arbiter.holds(domain, offset, len, write) {
            return Err(Status::NotHeld);
        }
        buf.origin_cpu_access(false, write)?;
        let r = buf.with_origin(offset, len, f);
        buf.origin_cpu_access(true, write)?;
        r
    }

    /// Count the bytes a host data path copied; its status.
    fn count_copied(&self, r: Result<u64, Status>) -> Status {
        match r {
            Ok(n) => {
                self.stats.copied_bytes.fetch_add(n, Ordering::Relaxed);
                Status::Ok
            }
            Err(s) => s,
        }
    }

    /// Copy a held range out (one copy; the socket and memfd paths).
    pub fn host_read(&self, domain: DomainId, uuid: &Uuid, offset: u64, out: &mut [u8]) -> Status {
        let len = out.len() as u64;
        let r = self.with_held_range(domain, uuid, offset, len, false, |slices| {
            let mut pos = 0;
            for s in slices {
                pos += s.copy_to(&mut out[pos..]);
            }
            pos as u64
        });
        self.count_copied(r)
    }

    /// Copy a held range into a host file at `file_offset` (one copy into the client's memfd).
    pub fn host_read_into(
        &self,
        domain: DomainId,
        uuid: &Uuid,
        offset: u64,
        len: u64,
        file: File,
        file_offset: u64,
    ) -> Status {
        let dst = match HostFile::new(file, file_offset.saturating_add(len)) {
            Ok(d) if d.writable() => d,
            Ok(_) => return Status::PermissionDenied,
            Err(e) => {
                info!("read-into target refused: {e}");
                return match e {
                    crate::hostfile::HostFileError::BadSize { .. } => Status::InvalidSize,
                    _ => Status::InvalidRequest,
                };
            }
        };
        let Some(target) = dst.slice(file_offset, len) else {
            return Status::InvalidSize;
        };
        dst.prefault_for_write(file_offset, len);
        if let Err(s) = dst
            .begin_cpu_access(CpuAccess::Write)
            .map_err(|_| Status::IoError)
        {
            return s;
        }
        let r = self.with_held_range(domain, uuid, offset, len, false, |slices| {
            copy_slices(slices, &[target])
        });
        let _ = dst.end_cpu_access(CpuAccess::Write);
        self.count_copied(r)
    }

    /// Write into a range held for writing.
    pub fn host_write(&self, domain: DomainId, uuid: &Uuid, offset: u64, data: &[u8]) -> Status {
        if let Some(buf) = self.buffer(uuid) {
            if buf.read_only_for(domain) {
                return Status::PermissionDenied;
            }
            if let Origin::Host(hf) = &buf.origin {
                if !hf.writable() {
                    return Status::PermissionDenied;
                }
            }
        }
        let r = self.with_held_range(domain, uuid, offset, data.len() as u64, true, |slices| {
            let mut pos = 0;
            for s in slices {
                s.copy_from(&data[pos..pos + s.len()]);
                pos += s.len();
            }
            pos as u64
        });
        self.count_copied(r)
    }

    /// A udmabuf (host dma-buf) over a guest-backed buffer's pages.
    pub fn export_udmabuf(&self, uuid: &Uuid) -> Result<File, Status> {
        let buf = self.buffer(uuid).ok_or(Status::NotFound)?;
        // An exported fd is writable and outside the arbiter: never for read-only buffers.
        if buf.flags & buf_flags::READ_ONLY != 0 {
            return Err(Status::PermissionDenied);
        }
        match &buf.origin {
            Origin::Guest { vm, segs } => {
                let mem = vm.mem.memory();
                let f = crate::hostfile::export_udmabuf(&mem, segs).map_err(|e| {
                    info!("udmabuf export of {}: {e}", control_name(uuid));
                    Status::Unsupported
                })?;
                self.stats
                    .zero_copy_bytes
                    .fetch_add(buf.size, Ordering::Relaxed);
                Ok(f)
            }
            Origin::Host(_) => Err(Status::Unsupported),
        }
    }

    /// Wait until the buffer's write generation exceeds `after`. Returns the generation.
    pub fn wait_write(&self, uuid: &Uuid, after: u64, timeout_ms: u32) -> Result<u64, Status> {
        let buf = self.buffer(uuid).ok_or(Status::NotFound)?;
        let deadline = Instant::now() + self.limits.bound(timeout_ms);
        let mut st = lock(&buf.state);
        loop {
            if st.write_generation > after {
                return Ok(st.write_generation);
            }
            if st.revoked {
                return Err(Status::Revoked);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Status::Timeout);
            }
            st = buf
                .written
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// One buffer's description.
    pub fn info(&self, uuid: &Uuid) -> Option<BufInfo> {
        self.buffer(uuid).map(|b| describe(&b))
    }

    /// Every live buffer, sorted by UUID.
    pub fn list(&self) -> Vec<BufInfo> {
        let bufs: Vec<Arc<Buffer>> = lock(&self.inner).buffers.values().cloned().collect();
        let mut out: Vec<BufInfo> = bufs.iter().map(|b| describe(b)).collect();
        out.sort_by_key(|i| i.uuid);
        out
    }

    /// Bytes of daemon heap the buffer's segment list occupies (for the benchmarks).
    pub fn segment_heap_bytes(&self, uuid: &Uuid) -> Option<usize> {
        match &self.buffer(uuid)?.origin {
            Origin::Guest { segs, .. } => Some(segs.heap_bytes()),
            Origin::Host(_) => Some(0),
        }
    }
}

/// A host domain's begin or end: a host access is either a read or a write.
fn host_op(uuid: &Uuid, offset: u64, len: u64, write: bool, end: bool, timeout_ms: u32) -> SyncOp {
    SyncOp {
        uuid: *uuid,
        offset,
        len,
        read: !write,
        write,
        end,
        timeout_ms,
    }
}

fn describe(b: &Buffer) -> BufInfo {
    let st = lock(&b.state);
    let mut flags = b.flags;
    if b.host_backed() {
        flags |= buf_flags::HOST_BACKED;
    }
    if st.revoked {
        flags |= control::INFO_REVOKED;
    }
    let mut owner = [0u8; control::NAME_LEN];
    let n = b.owner_name.len().min(control::NAME_LEN - 1);
    owner[..n].copy_from_slice(&b.owner_name.as_bytes()[..n]);
    BufInfo {
        uuid: b.uuid,
        size: b.size.to_le(),
        write_generation: st.write_generation.to_le(),
        flags: flags.to_le(),
        importers: u32::try_from(st.copies.len()).unwrap_or(u32::MAX).to_le(),
        nr_segs: b.nr_segs().to_le(),
        reserved: 0,
        owner,
    }
}

impl BufState {
    fn new() -> BufState {
        BufState {
            arbiter: Arbiter::default(),
            copies: HashMap::new(),
            revoked: false,
            write_generation: 0,
        }
    }
}

impl Holdings {
    fn add(&mut self, uuid: Uuid, role: Role, bytes: u64, segs: u64) {
        self.held.insert(uuid, (role, bytes, segs));
        self.bytes += bytes;
        self.segments += segs;
    }

    fn remove(&mut self, uuid: &Uuid) -> Option<Role> {
        let (role, bytes, segs) = self.held.remove(uuid)?;
        self.bytes -= bytes;
        self.segments -= segs;
        Some(role)
    }
}

// -------------------------------------------------------------------- timeouts

#[derive(Default)]
struct Timer {
    heap: Mutex<BinaryHeap<std::cmp::Reverse<(Instant, Ticket, Uuid)>>>,
    wake: Condvar,
}

impl Timer {
    fn add(&self, deadline: Instant, uuid: Uuid, ticket: Ticket) {
        lock(&self.heap).push(std::cmp::Reverse((deadline, ticket, uuid)));
        self.wake.notify_one();
    }
}

fn timeout_thread(reg: Weak<Registry>) {
    loop {
        let Some(r) = reg.upgrade() else {
            return;
        };
        let due = {
            let mut heap = lock(&r.timer.heap);
            let now = Instant::now();
            match heap.peek() {
                Some(std::cmp::Reverse((when, _, _))) if *when <= now => heap.pop().map(|e| e.0),
                next => {
                    let wait = next.map_or(Duration::from_millis(500), |e| e.0 .0 - now);
                    let _unused = r
                        .timer
                        .wake
                        .wait_timeout(heap, wait.min(Duration::from_millis(500)))
                        .unwrap_or_else(|e| e.into_inner());
                    None
                }
            }
        };
        if let Some((_, ticket, uuid)) = due {
            r.expire(&uuid, ticket);
        }
    }
}

// -------------------------------------------------------------------- in-process consumers

/// A host consumer living in the daemon's process (access path (a)): it brackets its CPU access
/// like any other domain and then sees the buffer's origin in place — a guest's own pages or the
/// host file — without a copy. Its accesses are released when it is dropped.
pub struct HostSession {
    registry: Arc<Registry>,
    domain: DomainId,
}

impl HostSession {
    /// A new domain on `registry`.
    pub fn new(registry: &Arc<Registry>) -> HostSession {
        HostSession {
            registry: registry.clone(),
            domain: registry.add_host_domain(),
        }
    }

    /// Begin CPU access, waiting at most `timeout_ms` (0: the daemon default).
    pub fn begin(
        &self,
        uuid: &Uuid,
        offset: u64,
        len: u64,
        write: bool,
        timeout_ms: u32,
    ) -> Result<(), Status> {
        match self
            .registry
            .host_begin(self.domain, uuid, offset, len, write, timeout_ms)
        {
            Status::Ok => Ok(()),
            s => Err(s),
        }
    }

    /// End CPU access.
    pub fn end(&self, uuid: &Uuid, offset: u64, len: u64, write: bool) -> Result<(), Status> {
        match self
            .registry
            .host_end(self.domain, uuid, offset, len, write)
        {
            Status::Ok => Ok(()),
            s => Err(s),
        }
    }

    /// Run `f` over the bytes of a range this session holds, in place (zero copy).
    pub fn with_range<R>(
        &self,
        uuid: &Uuid,
        offset: u64,
        len: u64,
        write: bool,
        f: impl FnOnce(&[VolatileSlice<'_, ()>]) -> R,
    ) -> Result<R, Status> {
        let r = self
            .registry
            .with_held_range(self.domain, uuid, offset, len, write, f)?;
        self.registry
            .stats
            .zero_copy_bytes
            .fetch_add(len, Ordering::Relaxed);
        Ok(r)
    }
}

impl Drop for HostSession {
    fn drop(&mut self) {
        self.registry.remove_domain(self.domain);
    }
}
