// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The vhost-user glue: virtqueues in, registry calls, responses out (spec sections 6 and 9).
//!
//! One [`DmabufBackend`] serves one VM connection. Requests are decoded from the device-readable
//! part of each chain as one byte stream, whatever the descriptor boundaries; responses go to the
//! device-writable part the same way. A SYNC START that must wait leaves its chain unused; the
//! registry completes it later from whichever thread unblocks it.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use log::{debug, warn};
use thiserror::Error;
use vhost::vhost_user::message::{VhostUserProtocolFeatures, VhostUserVirtioFeatures};
use vhost_user_backend::{VhostUserBackend, VringRwLock, VringT};
use virtio_bindings::bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::bindings::virtio_ring::{
    VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC,
};
use virtio_dmabuf_proto::virtio::{
    self as wire, req, AttachReq, CreateReq, CreateResp, Event, LookupResp, ReqHdr, RespHdr,
    SyncReq, UuidReq, VIRTIO_DMABUF_F_IMPORT,
};
use virtio_dmabuf_proto::Status;
use virtio_queue::{DescriptorChain, QueueT};
use vm_memory::{
    ByteValued, Bytes, GuestAddress, GuestAddressSpace, GuestMemoryAtomic, GuestMemoryLoadGuard,
};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{
    new_event_consumer_and_notifier, EventConsumer, EventFlag, EventNotifier,
};

use crate::memory::{GuestMem, SegListBuilder};
use crate::poll::AdaptivePoll;
use crate::registry::{BeginResult, Completion, GuestPort, Registry, VmHandle};

/// Queue size the backend accepts (QEMU's generic device defaults to 64).
pub const MAX_QUEUE_SIZE: usize = 1024;

/// Errors of the vhost-user layer.
#[derive(Debug, Error)]
pub enum VhuError {
    /// An event for a queue we do not have.
    #[error("unexpected device event {0}")]
    UnknownEvent(u16),
    /// The queue could not be accessed.
    #[error("virtqueue: {0}")]
    Queue(String),
    /// Could not create the exit event.
    #[error("exit event: {0}")]
    ExitEvent(io::Error),
}

impl From<VhuError> for io::Error {
    fn from(e: VhuError) -> io::Error {
        io::Error::other(e)
    }
}

type Mem = GuestMemoryLoadGuard<GuestMem>;

fn queue_err(e: impl std::fmt::Display) -> VhuError {
    VhuError::Queue(e.to_string())
}

/// Enable or disable the driver's notifications, under the ring lock and only while the queue is
/// ready: a queue being reset has no rings, and the flags would land at guest address 0. `None`
/// when the queue is not ready; when enabling, whether chains are already available.
fn set_notification(vring: &VringRwLock, enable: bool) -> Result<Option<bool>, VhuError> {
    let mut state = vring.get_mut();
    if !state.get_queue().ready() {
        return Ok(None);
    }
    if enable {
        state.enable_notification().map(Some).map_err(queue_err)
    } else {
        state
            .disable_notification()
            .map(|()| Some(false))
            .map_err(queue_err)
    }
}

/// The rings of one VM, reachable from other threads (parked completions, events).
#[derive(Default)]
struct Rings {
    vrings: Mutex<Option<Vec<VringRwLock>>>,
}

struct Port {
    rings: Arc<Rings>,
    mem: GuestMemoryAtomic<GuestMem>,
    dropped: AtomicU64,
}

impl GuestPort for Port {
    fn post_event(&self, event: &Event) {
        let Some(vring) = self
            .rings
            .vrings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(|v| v.get(wire::EVENT_QUEUE as usize).cloned())
        else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let mem = self.mem.memory();
        let chain = vring
            .get_mut()
            .get_queue_mut()
            .pop_descriptor_chain(mem.clone());
        let Some(chain) = chain else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            debug!("event queue empty: event dropped");
            return;
        };
        let head = chain.head_index();
        let len = match Walk::new(chain) {
            Some(w) => ResponseWriter::new(&w.writable).write(&mem, event.as_slice()),
            None => 0,
        };
        if vring.add_used(head, len).is_ok() && vring.needs_notification().unwrap_or(true) {
            let _ = vring.signal_used_queue();
        }
    }
}

/// The descriptors of one chain, split into the readable and writable parts.
struct Walk {
    head: u16,
    readable: Vec<(u64, u32)>,
    writable: Vec<(u64, u32)>,
    /// A readable descriptor came after a writable one.
    misordered: bool,
}

impl Walk {
    /// `None` if the chain cannot be walked (loop, too long, unreadable indirect table).
    fn new(chain: DescriptorChain<Mem>) -> Option<Walk> {
        let head = chain.head_index();
        let mut w = Walk {
            head,
            readable: Vec::new(),
            writable: Vec::new(),
            misordered: false,
        };
        let mut last_has_next = false;
        let mut any = false;
        for desc in chain {
            any = true;
            last_has_next = desc.has_next();
            let d = (desc.addr().0, desc.len());
            if desc.is_write_only() {
                w.writable.push(d);
            } else {
                if !w.writable.is_empty() {
                    w.misordered = true;
                }
                w.readable.push(d);
            }
        }
        (any && !last_has_next).then_some(w)
    }
}

/// Reads the readable part as one stream.
struct RequestReader<'a> {
    descs: &'a [(u64, u32)],
    idx: usize,
    off: u32,
}

impl<'a> RequestReader<'a> {
    fn new(descs: &'a [(u64, u32)]) -> Self {
        RequestReader {
            descs,
            idx: 0,
            off: 0,
        }
    }

    /// Fill `buf` exactly; `Err` if the request is shorter or points outside guest memory.
    fn read(&mut self, mem: &GuestMem, buf: &mut [u8]) -> Result<(), Status> {
        let mut pos = 0;
        while pos < buf.len() {
            let &(addr, len) = self.descs.get(self.idx).ok_or(Status::InvalidRequest)?;
            let avail = (len - self.off) as usize;
            if avail == 0 {
                self.idx += 1;
                self.off = 0;
                continue;
            }
            let n = avail.min(buf.len() - pos);
            let a = addr
                .checked_add(u64::from(self.off))
                .ok_or(Status::InvalidAddress)?;
            mem.read_slice(&mut buf[pos..pos + n], GuestAddress(a))
                .map_err(|_| Status::InvalidAddress)?;
            pos += n;
            // `n <= avail <= u32::MAX`.
            self.off += n as u32;
        }
        Ok(())
    }

    fn read_obj<T: ByteValued + Default>(&mut self, mem: &GuestMem) -> Result<T, Status> {
        let mut v = T::default();
        self.read(mem, v.as_mut_slice())?;
        Ok(v)
    }

    /// Read `n` little-endian segments into a builder, 64 KiB at a time.
    fn read_segments(&mut self, mem: &GuestMem, n: usize) -> Result<SegListBuilder, Status> {
        const CHUNK: usize = 4096;
        let mut b = SegListBuilder::with_capacity(n);
        let mut raw = vec![0u8; CHUNK.min(n) * 16];
        let mut left = n;
        while left > 0 {
            let k = left.min(CHUNK);
            self.read(mem, &mut raw[..k * 16])?;
            for c in raw[..k * 16].chunks_exact(16) {
                let (a, l) = c.split_at(8);
                let addr = u64::from_le_bytes(a.try_into().unwrap_or_default());
                let len = u64::from_le_bytes(l.try_into().unwrap_or_default());
                b.push(addr, len).map_err(|e| e.status())?;
            }
            left -= k;
        }
        Ok(b)
    }
}

/// Writes the writable part as one stream.
struct ResponseWriter<'a> {
    descs: &'a [(u64, u32)],
}

impl<'a> ResponseWriter<'a> {
    fn new(descs: &'a [(u64, u32)]) -> Self {
        ResponseWriter { descs }
    }

    fn capacity(&self) -> u64 {
        self.descs.iter().map(|d| u64::from(d.1)).sum()
    }

    /// Write `data` from the start; returns the bytes written (0 if memory is unreachable).
    fn write(&self, mem: &GuestMem, data: &[u8]) -> u32 {
        let mut pos = 0;
        for &(addr, len) in self.descs {
            if pos == data.len() {
                break;
            }
            let n = (len as usize).min(data.len() - pos);
            if mem
                .write_slice(&data[pos..pos + n], GuestAddress(addr))
                .is_err()
            {
                return 0;
            }
            pos += n;
        }
        u32::try_from(pos).unwrap_or(0)
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
        let port = Arc::new(Port {
            rings: rings.clone(),
            mem: mem.clone(),
            dropped: AtomicU64::new(0),
        });
        let vm = registry.add_vm(name, mem, port);
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
        })))
    }

    /// This VM's registry handle.
    pub fn vm(&self) -> &Arc<VmHandle> {
        &self.0.vm
    }

    /// Stop the worker thread (after the connection ended).
    pub fn signal_exit(&self) {
        let _ = self.0.exit.1.notify();
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
        self.0.registry.reset_domain(self.0.vm.domain, true);
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

    fn import_negotiated(&self) -> bool {
        self.acked_features.load(Ordering::Relaxed) & (1 << VIRTIO_DMABUF_F_IMPORT) != 0
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
            if set_notification(vring, false)?.is_none() {
                break;
            }
            let (popped, used_any) = self.drain(vring)?;
            if used_any && vring.needs_notification().unwrap_or(true) {
                vring.signal_used_queue().map_err(queue_err)?;
            }
            if expect_chain && popped == 0 {
                // The avail index moved but no chain can be taken: the driver published an index
                // more than a queue's worth ahead. Nothing is served until it repairs the ring
                // (or resets the device); its next kick brings the worker back.
                debug!("{}: avail index out of range, queue idle", self.vm.name);
                set_notification(vring, true)?;
                break;
            }
            if !window.is_zero() && self.poll_avail(vring, window) {
                expect_chain = true;
                continue;
            }
            // A request posted before notifications were enabled is seen here.
            if set_notification(vring, true)? != Some(true) {
                break;
            }
            expect_chain = true;
        }
        poll.sleeping(Instant::now());
        Ok(())
    }

    /// Pop and answer every available chain: how many were popped, and whether any was marked
    /// used (a parked START is popped but not used yet).
    fn drain(&self, vring: &VringRwLock) -> Result<(usize, bool), VhuError> {
        let (mut popped, mut used_any) = (0, false);
        loop {
            let mem = self.vm.mem.memory();
            let next = vring
                .get_mut()
                .get_queue_mut()
                .pop_descriptor_chain(mem.clone());
            let Some(chain) = next else {
                return Ok((popped, used_any));
            };
            popped += 1;
            let head = chain.head_index();
            match self.process_chain(vring, &mem, chain) {
                Outcome::Used(len) => {
                    vring.add_used(head, len).map_err(queue_err)?;
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

    fn process_chain(
        &self,
        vring: &VringRwLock,
        mem: &Mem,
        chain: DescriptorChain<Mem>,
    ) -> Outcome {
        let Some(walk) = Walk::new(chain) else {
            warn!("{}: malformed descriptor chain ignored", self.vm.name);
            return Outcome::Used(0);
        };
        let out = ResponseWriter::new(&walk.writable);
        if out.capacity() < size_of::<RespHdr>() as u64 {
            debug!("{}: response area under 8 bytes", self.vm.name);
            return Outcome::Used(0);
        }
        let status_only = |s: Status| Outcome::Used(out.write(mem, RespHdr::new(s).as_slice()));
        if walk.misordered {
            return status_only(Status::InvalidRequest);
        }
        let mut input = RequestReader::new(&walk.readable);
        let hdr: ReqHdr = match input.read_obj(mem) {
            Ok(h) => h,
            Err(s) => return status_only(s),
        };
        if hdr.reserved != 0 {
            return status_only(Status::InvalidRequest);
        }
        let kind = u32::from_le(hdr.type_);
        let needed = match kind {
            req::CREATE => size_of::<CreateResp>(),
            req::LOOKUP => size_of::<LookupResp>(),
            _ => size_of::<RespHdr>(),
        };
        if out.capacity() < needed as u64 {
            return status_only(Status::ResponseTooSmall);
        }
        let result = match kind {
            req::CREATE => self.do_create(mem, &mut input, &out),
            req::RELEASE => input
                .read_obj::<UuidReq>(mem)
                .map(|r| self.registry.release(&self.vm, &r.uuid))
                .map(|s| out.write(mem, RespHdr::new(s).as_slice())),
            req::LOOKUP => self.do_lookup(mem, &mut input, &out),
            req::ATTACH => self.do_attach(mem, &mut input, &out),
            req::SYNC => return self.do_sync(vring, mem, &mut input, walk.head, &walk.writable),
            _ => Err(Status::InvalidRequest),
        };
        match result {
            Ok(len) => Outcome::Used(len),
            Err(s) => status_only(s),
        }
    }

    fn do_create(
        &self,
        mem: &Mem,
        input: &mut RequestReader<'_>,
        out: &ResponseWriter<'_>,
    ) -> Result<u32, Status> {
        let body: CreateReq = input.read_obj(mem)?;
        let size = u64::from_le(body.size);
        if size == 0 {
            return Err(Status::InvalidSize);
        }
        let segs = self.read_segment_list(mem, input, body.nr_segs)?;
        let uuid = self
            .registry
            .create(&self.vm, size, u32::from_le(body.flags), segs)?;
        let resp = CreateResp {
            hdr: RespHdr::new(Status::Ok),
            uuid,
        };
        Ok(out.write(mem, resp.as_slice()))
    }

    /// The segment list that follows a CREATE or ATTACH body: its count is checked against
    /// `max_segments` before anything is read.
    fn read_segment_list(
        &self,
        mem: &Mem,
        input: &mut RequestReader<'_>,
        nr_segs_le: u32,
    ) -> Result<SegListBuilder, Status> {
        let nr = u32::from_le(nr_segs_le);
        if nr == 0 {
            return Err(Status::InvalidSize);
        }
        if nr > self.registry.limits().max_segments {
            return Err(Status::TooManySegments);
        }
        input.read_segments(mem, nr as usize)
    }

    fn do_lookup(
        &self,
        mem: &Mem,
        input: &mut RequestReader<'_>,
        out: &ResponseWriter<'_>,
    ) -> Result<u32, Status> {
        if !self.import_negotiated() {
            return Err(Status::Unsupported);
        }
        let r: UuidReq = input.read_obj(mem)?;
        let (size, flags) = self.registry.lookup(&self.vm, &r.uuid)?;
        let resp = LookupResp {
            hdr: RespHdr::new(Status::Ok),
            size: size.to_le(),
            flags: flags.to_le(),
            reserved: 0,
        };
        Ok(out.write(mem, resp.as_slice()))
    }

    fn do_attach(
        &self,
        mem: &Mem,
        input: &mut RequestReader<'_>,
        out: &ResponseWriter<'_>,
    ) -> Result<u32, Status> {
        if !self.import_negotiated() {
            return Err(Status::Unsupported);
        }
        let body: AttachReq = input.read_obj(mem)?;
        if body.reserved != 0 {
            return Err(Status::InvalidRequest);
        }
        let segs = self.read_segment_list(mem, input, body.nr_segs)?;
        self.registry.attach(&self.vm, &body.uuid, segs)?;
        Ok(out.write(mem, RespHdr::new(Status::Ok).as_slice()))
    }

    fn do_sync(
        &self,
        vring: &VringRwLock,
        mem: &Mem,
        input: &mut RequestReader<'_>,
        head: u16,
        writable: &[(u64, u32)],
    ) -> Outcome {
        let out = ResponseWriter::new(writable);
        let status_only = |s: Status| Outcome::Used(out.write(mem, RespHdr::new(s).as_slice()));
        let body: SyncReq = match input.read_obj(mem) {
            Ok(b) => b,
            Err(s) => return status_only(s),
        };
        let op = match body.decode() {
            Ok(op) => op,
            Err(s) => return status_only(s),
        };
        if op.end && op.timeout_ms != 0 {
            return status_only(Status::InvalidRequest);
        }
        let done = self.parked_completion(vring.clone(), head, writable.to_vec());
        match self.registry.guest_sync(&self.vm, &op, done) {
            BeginResult::Done(s) => status_only(s),
            BeginResult::Parked => Outcome::Parked,
        }
    }

    /// Completion of a parked START: write the status, mark the chain used, notify — unless the
    /// device was reset since (then the ring is not ours to touch any more).
    fn parked_completion(
        &self,
        vring: VringRwLock,
        head: u16,
        writable: Vec<(u64, u32)>,
    ) -> Completion {
        let vm = self.vm.clone();
        let epoch = vm.epoch.load(Ordering::SeqCst);
        let gate = self.answer_gate.clone();
        Box::new(move |status| {
            let _gate = gate.lock().unwrap_or_else(|e| e.into_inner());
            if vm.epoch.load(Ordering::SeqCst) != epoch {
                return;
            }
            let mem = vm.mem.memory();
            let len = ResponseWriter::new(&writable).write(&mem, RespHdr::new(status).as_slice());
            if vring.add_used(head, len).is_ok() && vring.needs_notification().unwrap_or(true) {
                let _ = vring.signal_used_queue();
            }
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
        (1 << VIRTIO_F_VERSION_1)
            | (1 << VIRTIO_RING_F_INDIRECT_DESC)
            | (1 << VIRTIO_RING_F_EVENT_IDX)
            | (1 << VIRTIO_DMABUF_F_IMPORT)
            | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits()
    }

    fn acked_features(&self, features: u64) {
        self.0.acked_features.store(features, Ordering::Relaxed);
    }

    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        VhostUserProtocolFeatures::CONFIG
            | VhostUserProtocolFeatures::MQ
            | VhostUserProtocolFeatures::REPLY_ACK
            | VhostUserProtocolFeatures::RESET_DEVICE
    }

    fn reset_device(&self) {
        debug!("{}: device reset", self.0.vm.name);
        self.0.quiesce();
        self.0.registry.reset_domain(self.0.vm.domain, false);
    }

    fn set_event_idx(&self, _enabled: bool) {
        // The framework sets it on the queues, which suppress notifications accordingly.
    }

    fn get_config(&self, offset: u32, size: u32) -> Vec<u8> {
        let cfg = self.0.registry.limits().config().to_le();
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
            self.0.registry.reset_domain(self.0.vm.domain, false);
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
