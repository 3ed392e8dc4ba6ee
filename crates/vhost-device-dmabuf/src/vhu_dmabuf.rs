// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The vhost-user glue: virtqueues in, typed requests to the registry, responses out (spec
//! sections 6 and 9).
//!
//! One [`DmabufBackend`] serves one VM connection. A chain's device-readable part is read with
//! virtio-queue's [`Reader`] and decoded by the wire-format crate into a typed
//! [`Request`]; the response goes out through a
//! [`Writer`] over the device-writable part. A SYNC START that must wait leaves its chain unused;
//! the registry completes it later from whichever thread unblocks it.
//!
//! Reader and Writer do not follow the spec's chain rules in two places, so `ChainShape` walks
//! each chain once before they do (a thin layer, nothing else):
//! * `DescriptorChain`'s iterator ends quietly at a loop, after more descriptors than the queue
//!   size, or at an indirect table it cannot read; Reader and Writer would take what came until
//!   then for the whole chain. The spec has such a chain marked used with length 0, not acted on.
//! * `readable()` and `writable()` pick descriptors by direction wherever they are, so a readable
//!   descriptor after a writable one would be read as part of the request; the spec answers it
//!   `INVALID_REQUEST`.
//!
//! And two differences are deliberate: a Writer resolves the whole writable part when it is made,
//! so a writable descriptor outside guest RAM makes the chain unanswerable (used length 0) before
//! the request is acted on, where the device used to act and then fail to answer; and a Reader
//! resolves the whole readable part, so a request with a descriptor outside guest RAM is
//! `INVALID_ADDRESS` even when the bytes the request needs are in RAM (spec section 9 lists "a
//! device-readable descriptor of the request outside guest RAM").
//!
//! A parked START keeps its `DescriptorChain` (and the memory table it was popped with, to read
//! the descriptors again) and is answered through a Writer over the memory of the moment of the
//! answer, so a new memory table in between is honoured.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use log::{debug, warn};
use thiserror::Error;
use vhost::vhost_user::message::{
    VhostUserProtocolFeatures, VhostUserShMemConfig, VhostUserVirtioFeatures,
};
use vhost::vhost_user::Backend;
use vhost_user_backend::{VhostUserBackend, VringRwLock, VringT};
use virtio_bindings::bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::bindings::virtio_ring::{
    VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC,
};
use virtio_dmabuf_proto::request::{read_body, read_header, DecodeLimits, Request, SyncRequest};
use virtio_dmabuf_proto::virtio::{
    self as wire, buf_flags, CreateResp, LookupResp, MapResp, RespHdr, VIRTIO_DMABUF_F_IMPORT,
    VIRTIO_DMABUF_F_MAP,
};
use virtio_dmabuf_proto::Status;
use virtio_queue::{DescriptorChain, QueueT, Reader, Writer};
use vm_memory::{ByteValued, GuestAddressSpace, GuestMemoryAtomic, GuestMemoryLoadGuard};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{
    new_event_consumer_and_notifier, EventConsumer, EventFlag, EventNotifier,
};

use self::chain::{respond, respond_status, ChainShape};
use self::events::{EventPort, Rings};
use self::refusal::{refusal, GuestLogs};
use crate::limits::Limits;
use crate::memory::GuestMem;
use crate::poll::AdaptivePoll;
use crate::registry::{chain, Completion, LookupInfo, MapInfo, Registry, SyncOutcome, VmHandle};
use crate::shm::VmShm;

/// Queue size the backend accepts (QEMU's generic device defaults to 64).
pub const MAX_QUEUE_SIZE: usize = 1024;

/// Errors of the vhost-user layer.
#[derive(Debug, Error)]
pub enum VhuError {
    /// An event for a queue we do not have.
    #[error("unexpected device event {0}")]
    UnknownEvent(u16),
    /// The driver's notifications could not be enabled or disabled.
    #[error("cannot set the request queue's notification suppression")]
    Notification(#[source] virtio_queue::Error),
    /// A chain could not be marked used.
    #[error("cannot mark a descriptor chain used")]
    AddUsed(#[source] virtio_queue::Error),
    /// The driver could not be notified.
    #[error("cannot signal the used queue")]
    Signal(#[source] io::Error),
    /// Could not create the exit event.
    #[error("cannot create the exit event")]
    ExitEvent(#[source] io::Error),
}

impl From<VhuError> for io::Error {
    fn from(e: VhuError) -> io::Error {
        io::Error::other(e)
    }
}

type Mem = GuestMemoryLoadGuard<GuestMem>;

/// The configuration space (spec section 5) of `limits`.
fn config_space(limits: &Limits) -> wire::Config {
    wire::Config {
        max_segments: limits.max_segments,
        max_buffers: limits.max_buffers,
        max_bytes: limits.max_bytes,
        sync_timeout_ms: limits.sync_timeout_ms(),
        reserved: 0,
    }
}

/// LOOKUP's flags (spec section 6.4).
fn lookup_flags(info: &LookupInfo) -> u32 {
    let mut flags = 0;
    if info.read_only {
        flags |= buf_flags::READ_ONLY;
    }
    if info.host_backed {
        flags |= buf_flags::HOST_BACKED;
    }
    if info.own {
        flags |= buf_flags::OWN;
    }
    flags
}

/// MAP's response (spec section 13.2).
fn map_resp(info: &MapInfo) -> MapResp {
    let mut flags = 0;
    if info.read_only {
        flags |= buf_flags::READ_ONLY;
    }
    if info.host_backed {
        flags |= buf_flags::HOST_BACKED;
    }
    MapResp {
        hdr: RespHdr::new(Status::Ok),
        offset: info.offset.to_le(),
        len: info.len.to_le(),
        flags: flags.to_le(),
        reserved: 0,
    }
}

/// Ask the driver to notify again, under the ring lock and only while the queue is ready: a
/// queue being reset has no rings, and the flags would land at guest address 0. `None` when the
/// queue is not ready; otherwise whether chains are already available.
fn enable_notifications(vring: &VringRwLock) -> Result<Option<bool>, VhuError> {
    let mut state = vring.get_mut();
    if !state.get_queue().ready() {
        return Ok(None);
    }
    state
        .enable_notification()
        .map(Some)
        .map_err(VhuError::Notification)
}

/// Ask the driver not to notify (while the worker drains and polls), on the same terms; `None`
/// when the queue is not ready.
fn disable_notifications(vring: &VringRwLock) -> Result<Option<()>, VhuError> {
    let mut state = vring.get_mut();
    if !state.get_queue().ready() {
        return Ok(None);
    }
    state
        .disable_notification()
        .map(Some)
        .map_err(VhuError::Notification)
}

/// What one drain of the request queue did.
struct Drained {
    /// Chains popped.
    popped: usize,
    /// Whether any was marked used (a parked START is popped but not used yet).
    used_any: bool,
}

/// Mark `head` used with `len` bytes and notify the driver if it asks to be (for answers given
/// outside the worker's drain: parked STARTs, events). Failures only log: the ring is the
/// driver's, and a broken one is its problem.
fn complete(vring: &VringRwLock, head: u16, len: u32) {
    if let Err(e) = vring.add_used(head, len) {
        debug!("marking chain {head} used: {e}");
        return;
    }
    if vring.needs_notification().unwrap_or(true) {
        if let Err(e) = vring.signal_used_queue() {
            debug!("signalling the used queue: {e}");
        }
    }
}

/// What processing a chain produced.
enum Outcome {
    /// Mark used with this length now.
    Used(u32),
    /// A parked START; the registry completes it.
    Parked,
}

/// One VM's backend state.
pub struct VmBackend {
    registry: Arc<Registry>,
    vm: Arc<VmHandle>,
    rings: Arc<Rings>,
    acked_features: AtomicU64,
    exit: (EventConsumer, EventNotifier),
    /// Held while a parked START's answer is written, and while a reset moves the epoch on: an
    /// answer either lands before the reset or not at all, never in the rings set up after it.
    answer_gate: Arc<Mutex<()>>,
    /// The request queue's polling window; only the worker thread takes it.
    poll: Mutex<AdaptivePoll>,
    /// Rate limits of the lines this VM can trigger.
    logs: Arc<GuestLogs>,
}

/// The `VhostUserBackend` of one VM connection.
#[derive(Clone)]
pub struct DmabufBackend(Arc<VmBackend>);

impl DmabufBackend {
    /// A backend for VM `name`, registered with `registry`. `mem` is the memory the daemon
    /// framework updates on SET_MEM_TABLE.
    pub fn new(
        registry: Arc<Registry>,
        name: &str,
        mem: GuestMemoryAtomic<GuestMem>,
    ) -> Result<DmabufBackend, VhuError> {
        let rings = Arc::new(Rings::default());
        let port = Arc::new(EventPort {
            rings: rings.clone(),
            mem: mem.clone(),
        });
        let limits = registry.limits();
        let shm = Arc::new(VmShm::new(limits.shm_size, limits.shm_reply_bound));
        let vm = registry.add_vm_with_shm(name, mem, port, shm);
        let exit =
            new_event_consumer_and_notifier(EventFlag::NONBLOCK).map_err(VhuError::ExitEvent)?;
        let poll = Mutex::new(AdaptivePoll::new(registry.limits().poll_max));
        Ok(DmabufBackend(Arc::new(VmBackend {
            registry,
            vm,
            rings,
            acked_features: AtomicU64::new(0),
            exit,
            answer_gate: Arc::new(Mutex::new(())),
            poll,
            logs: Arc::new(GuestLogs::new()),
        })))
    }

    /// This VM's registry handle.
    pub fn vm(&self) -> &Arc<VmHandle> {
        &self.0.vm
    }

    /// Stop the worker thread (after the connection ended).
    pub fn signal_exit(&self) {
        if let Err(e) = self.0.exit.1.notify() {
            warn!("{}: cannot signal the worker to exit: {e}", self.0.vm.name);
        }
    }

    /// The connection is gone: release everything the VM held.
    pub fn disconnect(&self) {
        *self
            .0
            .rings
            .vrings
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
        self.0.quiesce();
        self.0.registry.remove_domain(self.0.vm.domain);
    }
}

impl VmBackend {
    /// No parked START of the current epoch is answered any more: after this returns none is
    /// being written and none will be (found by the request_decode fuzz target: an answer that
    /// had checked the epoch just before a reset landed in the rings set up after it).
    fn quiesce(&self) {
        let _gate = self.answer_gate.lock().unwrap_or_else(|e| e.into_inner());
        self.vm.epoch.fetch_add(1, Ordering::SeqCst);
    }

    fn negotiated(&self, bit: u32) -> bool {
        self.acked_features.load(Ordering::Relaxed) & (1 << bit) != 0
    }

    /// Answer everything on the request queue, then poll it for the adaptive window (with the
    /// driver's notifications suppressed) before notifications are enabled again for the sleep.
    fn process_queue(&self, vring: &VringRwLock) -> Result<(), VhuError> {
        let mut poll = self.poll.lock().unwrap_or_else(|e| e.into_inner());
        poll.woke(Instant::now());
        let window = poll.window();
        // Whether the ring said a chain was available: then draining must take one.
        let mut expect_chain = false;
        loop {
            // With EVENT_IDX the driver stays quiet until notifications are enabled again (the
            // avail event is left behind); without it this sets VRING_USED_F_NO_NOTIFY.
            if disable_notifications(vring)?.is_none() {
                break;
            }
            let Drained { popped, used_any } = self.drain(vring)?;
            if used_any && vring.needs_notification().unwrap_or(true) {
                vring.signal_used_queue().map_err(VhuError::Signal)?;
            }
            if expect_chain && popped == 0 {
                // The avail index moved but no chain can be taken: the driver published an index
                // more than a queue's worth ahead. Nothing is served until it repairs the ring
                // (or resets the device); its next kick brings the worker back.
                debug!("{}: avail index out of range, queue idle", self.vm.name);
                enable_notifications(vring)?;
                break;
            }
            if !window.is_zero() && self.poll_avail(vring, window) {
                expect_chain = true;
                continue;
            }
            // A request posted before notifications were enabled is seen here.
            if enable_notifications(vring)? != Some(true) {
                break;
            }
            expect_chain = true;
        }
        poll.sleeping(Instant::now());
        Ok(())
    }

    /// Pop and answer every available chain.
    fn drain(&self, vring: &VringRwLock) -> Result<Drained, VhuError> {
        let (mut popped, mut used_any) = (0, false);
        loop {
            let mem = self.vm.mem.memory();
            let next = vring
                .get_mut()
                .get_queue_mut()
                .pop_descriptor_chain(mem.clone());
            let Some(chain) = next else {
                return Ok(Drained { popped, used_any });
            };
            popped += 1;
            let head = chain.head_index();
            match self.process_chain(vring, &mem, chain) {
                Outcome::Used(len) => {
                    vring.add_used(head, len).map_err(VhuError::AddUsed)?;
                    used_any = true;
                }
                Outcome::Parked => {}
            }
        }
    }

    /// Spin until the driver makes a chain available or `window` passes; whether one came.
    /// The ring lock is taken per look, so parked completions are never held up by the spin.
    fn poll_avail(&self, vring: &VringRwLock, window: Duration) -> bool {
        let mem = self.vm.mem.memory();
        let deadline = Instant::now() + window;
        loop {
            {
                let state = vring.get_ref();
                let queue = state.get_queue();
                if !queue.ready() {
                    return false;
                }
                match queue.avail_idx(&*mem, Ordering::Acquire) {
                    Ok(idx) if idx.0 != queue.next_avail() => return true,
                    Ok(_) => {}
                    Err(_) => return false,
                }
            }
            if Instant::now() >= deadline {
                return false;
            }
            // Give the CPU to whoever else wants it (on a crowded host, perhaps the very vCPU
            // this waits for); returns at once on an idle CPU.
            std::thread::yield_now();
        }
    }

    /// Frame one chain (spec sections 6.1 and 9), decode its request and serve it.
    fn process_chain(
        &self,
        vring: &VringRwLock,
        mem: &Mem,
        chain: DescriptorChain<Mem>,
    ) -> Outcome {
        let name = &self.vm.name;
        let shape = ChainShape::of(&chain);
        if !shape.walkable {
            if let Some(n) = self.logs.malformed.admit() {
                warn!("{name}: malformed descriptor chain ignored{n}");
            }
            return Outcome::Used(0);
        }
        let mut out = match Writer::new(&**mem, chain.clone()) {
            Ok(w) => w,
            Err(e) => {
                debug!("{name}: response area not in guest RAM: {e}");
                return Outcome::Used(0);
            }
        };
        if out.available_bytes() < size_of::<RespHdr>() {
            debug!("{name}: response area under 8 bytes");
            return Outcome::Used(0);
        }
        let refuse = |out: &mut Writer<'_>, s| Outcome::Used(respond_status(out, s));
        if shape.misordered {
            return refuse(&mut out, Status::InvalidRequest);
        }
        let mut input = match Reader::new(&**mem, chain.clone()) {
            Ok(r) => r,
            Err(e) => {
                debug!("{name}: request not in guest RAM: {e}");
                return refuse(&mut out, Status::InvalidAddress);
            }
        };
        let kind = match read_header(&mut input) {
            Ok(k) => k,
            Err(e) => return self.refuse_decode(&mut out, &e),
        };
        if out.available_bytes() < kind.response_len() {
            return refuse(&mut out, Status::ResponseTooSmall);
        }
        if (kind.needs_import() && !self.negotiated(VIRTIO_DMABUF_F_IMPORT))
            || (kind.needs_map() && !self.negotiated(VIRTIO_DMABUF_F_MAP))
        {
            return refuse(&mut out, Status::Unsupported);
        }
        let limits = DecodeLimits {
            max_segments: self.registry.limits().max_segments,
        };
        match read_body(kind, &mut input, &limits) {
            Ok(request) => self.serve(vring, chain, request, &mut out),
            Err(e) => self.refuse_decode(&mut out, &e),
        }
    }

    fn refuse_decode(
        &self,
        out: &mut Writer<'_>,
        e: &virtio_dmabuf_proto::request::DecodeError,
    ) -> Outcome {
        debug!("{}: {e}", self.vm.name);
        Outcome::Used(respond_status(out, e.status()))
    }

    /// Hand a decoded request to the registry and write its answer. Only a SYNC START may park.
    fn serve(
        &self,
        vring: &VringRwLock,
        chain: DescriptorChain<Mem>,
        request: Request,
        out: &mut Writer<'_>,
    ) -> Outcome {
        let (reg, vm) = (&self.registry, &self.vm);
        let answered = match request {
            Request::Sync(sync) => return self.sync(vring, chain, &sync, out),
            Request::Create(create) => reg.create(vm, create).map(|uuid| {
                let resp = CreateResp {
                    hdr: RespHdr::new(Status::Ok),
                    uuid,
                };
                respond(out, resp.as_slice())
            }),
            Request::Release(uuid) => reg
                .release(vm, &uuid)
                .map(|()| respond_status(out, Status::Ok)),
            Request::Lookup(uuid) => reg.lookup(vm, &uuid).map(|info| {
                let resp = LookupResp {
                    hdr: RespHdr::new(Status::Ok),
                    size: info.size.to_le(),
                    flags: lookup_flags(&info).to_le(),
                    reserved: 0,
                };
                respond(out, resp.as_slice())
            }),
            Request::Attach(attach) => reg
                .attach(vm, attach)
                .map(|()| respond_status(out, Status::Ok)),
            // Waits for the front-end (bounded), holding no lock (see `registry/mapped.rs`).
            Request::Map(uuid) => reg
                .map(vm, &uuid)
                .map(|info| respond(out, map_resp(&info).as_slice())),
        };
        Outcome::Used(
            answered
                .unwrap_or_else(|e| respond_status(out, refusal(&vm.name, &e, &self.logs.failed))),
        )
    }

    /// SYNC: answered at once, or parked until the registry completes it.
    fn sync(
        &self,
        vring: &VringRwLock,
        chain: DescriptorChain<Mem>,
        sync: &SyncRequest,
        out: &mut Writer<'_>,
    ) -> Outcome {
        let done = self.parked_completion(vring.clone(), chain);
        match self.registry.guest_sync(&self.vm, sync, done) {
            SyncOutcome::Done(Ok(())) => Outcome::Used(respond_status(out, Status::Ok)),
            SyncOutcome::Done(Err(e)) => Outcome::Used(respond_status(
                out,
                refusal(&self.vm.name, &e, &self.logs.failed),
            )),
            SyncOutcome::Parked => Outcome::Parked,
        }
    }

    /// Completion of a parked START: write the status, mark the chain used, notify — unless the
    /// device was reset since (then the ring is not ours to touch any more). The response area
    /// is resolved again against the memory of the moment of the answer.
    fn parked_completion(&self, vring: VringRwLock, chain: DescriptorChain<Mem>) -> Completion {
        let vm = self.vm.clone();
        let epoch = vm.epoch.load(Ordering::SeqCst);
        let gate = self.answer_gate.clone();
        let logs = self.logs.clone();
        Box::new(move |outcome| {
            let status = match outcome {
                Ok(()) => Status::Ok,
                Err(e) => refusal(&vm.name, &e, &logs.failed),
            };
            let _gate = gate.lock().unwrap_or_else(|e| e.into_inner());
            if vm.epoch.load(Ordering::SeqCst) != epoch {
                return;
            }
            let head = chain.head_index();
            let mem = vm.mem.memory();
            let len =
                Writer::new(&*mem, chain).map_or(0, |mut out| respond_status(&mut out, status));
            complete(&vring, head, len);
        })
    }
}

impl VhostUserBackend for DmabufBackend {
    type Bitmap = ();
    type Vring = VringRwLock;

    fn num_queues(&self) -> usize {
        wire::NUM_QUEUES
    }

    fn max_queue_size(&self) -> usize {
        MAX_QUEUE_SIZE
    }

    fn features(&self) -> u64 {
        let base = (1 << VIRTIO_F_VERSION_1)
            | (1 << VIRTIO_RING_F_INDIRECT_DESC)
            | (1 << VIRTIO_RING_F_EVENT_IDX)
            | (1 << VIRTIO_DMABUF_F_IMPORT)
            | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits();
        // Offered whenever the daemon has a region to give: the virtio features are read before
        // the front-end says whether it supports shared memory (spec 13.1).
        if self.0.vm.shm.size() > 0 {
            base | (1 << VIRTIO_DMABUF_F_MAP)
        } else {
            base
        }
    }

    fn acked_features(&self, features: u64) {
        debug!(
            "{}: features offered {:#x}, acked {features:#x}",
            self.0.vm.name,
            self.features()
        );
        self.0.acked_features.store(features, Ordering::Relaxed);
        self.0.vm.shm.set_driver_features(features);
    }

    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        let base = VhostUserProtocolFeatures::CONFIG
            | VhostUserProtocolFeatures::MQ
            | VhostUserProtocolFeatures::REPLY_ACK
            | VhostUserProtocolFeatures::RESET_DEVICE;
        if self.0.vm.shm.size() == 0 {
            return base;
        }
        // Shared memory and the channel its requests travel on (with an fd). Not
        // CONFIGURE_MEM_SLOTS: with it, QEMU 11.1.3 crashes (SIGSEGV) when a device that was
        // reset with mappings in place is started again (a guest unbinding and binding the
        // driver, a reboot), apparently on its per-slot copy of the mappings it removed at the
        // reset. Without it, each mapping still becomes a region of QEMU's memory table, sent
        // whole: past 8 regions QEMU cannot send it ("Failed preparing vhost-user memory table
        // msg") and the daemon keeps its previous table, which loses nothing here: the
        // region's mappings are never this VM's RAM (`Registry::check_not_window`).
        base | VhostUserProtocolFeatures::SHMEM
            | VhostUserProtocolFeatures::BACKEND_REQ
            | VhostUserProtocolFeatures::BACKEND_SEND_FD
    }

    fn get_shmem_config(&self) -> io::Result<VhostUserShMemConfig> {
        let shm = &self.0.vm.shm;
        shm.set_negotiated();
        Ok(VhostUserShMemConfig::new(1, &[shm.size()]))
    }

    fn set_backend_req_fd(&self, backend: Backend) {
        if let Err(e) = self.0.vm.shm.channel.attach(backend, &self.0.vm.name) {
            warn!("{}: {}", self.0.vm.name, chain(&e));
        }
    }

    fn reset_device(&self) {
        debug!("{}: device reset", self.0.vm.name);
        self.0.quiesce();
        self.0.registry.reset_domain(self.0.vm.domain);
    }

    fn set_event_idx(&self, _enabled: bool) {
        // The framework sets it on the queues, which suppress notifications accordingly.
    }

    fn get_config(&self, offset: u32, size: u32) -> Vec<u8> {
        let cfg = config_space(self.0.registry.limits()).to_le();
        let bytes = cfg.as_slice();
        let start = (offset as usize).min(bytes.len());
        let end = start.saturating_add(size as usize).min(bytes.len());
        bytes[start..end].to_vec()
    }

    fn update_memory(&self, _mem: GuestMemoryAtomic<GuestMem>) -> io::Result<()> {
        // The daemon framework replaced the contents of the atomic we share with the registry;
        // buffers resolve their guest-physical runs against it at every access.
        Ok(())
    }

    fn exit_event(&self, _thread_index: usize) -> Option<(EventConsumer, EventNotifier)> {
        let c = self.0.exit.0.try_clone().ok()?;
        let n = self.0.exit.1.try_clone().ok()?;
        Some((c, n))
    }

    fn stop_vring(&self, queue_index: u32) -> io::Result<()> {
        if queue_index == u32::from(wire::REQUEST_QUEUE) {
            // The front-end stops the device when the driver resets it or the VM stops: the
            // driver's buffers are gone with it (spec section 10).
            debug!(
                "{}: request queue stopped, releasing the VM's state",
                self.0.vm.name
            );
            self.0.quiesce();
            self.0.registry.reset_domain(self.0.vm.domain);
        }
        Ok(())
    }

    fn handle_event(
        &self,
        device_event: u16,
        evset: EventSet,
        vrings: &[VringRwLock],
        _thread_id: usize,
    ) -> io::Result<()> {
        if evset != EventSet::IN {
            return Ok(());
        }
        {
            let mut r = self
                .0
                .rings
                .vrings
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if r.is_none() {
                *r = Some(vrings.to_vec());
            }
        }
        match device_event {
            wire::REQUEST_QUEUE => self.0.process_queue(&vrings[0])?,
            // New event buffers: nothing to do until there is an event.
            wire::EVENT_QUEUE => {}
            other => return Err(VhuError::UnknownEvent(other).into()),
        }
        Ok(())
    }
}

mod chain;
mod events;
mod refusal;
#[cfg(test)]
mod tests;
