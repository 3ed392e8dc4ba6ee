// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Plays QEMU and a guest driver against the dma-buf daemon, over a real vhost-user socket.
//!
//! [`Vm`] connects with vhost's `Frontend`, gives the daemon memfd guest RAM with QEMU's two
//! regions and the hole between them, sets up both virtqueues in that RAM, builds descriptor
//! chains, kicks, and waits on the call eventfd. It treats the daemon as a black box: the only
//! shared code is the wire-format crate. Integration tests, benchmarks and fault tests use it.

pub mod daemon;
pub mod queue;
pub mod ram;
mod requests;
pub mod shm;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use thiserror::Error;
use vhost::vhost_user::message::{VhostUserConfigFlags, VhostUserProtocolFeatures};
use vhost::vhost_user::{Frontend, VhostUserFrontend};
use vhost::{VhostBackend, VringConfigData};
use virtio_bindings::bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX;
use virtio_dmabuf_proto::virtio::{self as wire, Event};
use virtio_dmabuf_proto::Status;
use vm_memory::ByteValued;

pub use daemon::DaemonProcess;
use queue::{Buf, SplitQueue};
use ram::{GuestRam, PageAllocator, PAGE};
use shm::{MemUpdates, ShmRegion};

/// Errors of the harness itself (not statuses of the device).
#[derive(Debug, Error)]
pub enum HarnessError {
    /// A system call failed.
    #[error("system call failed")]
    Io(#[from] std::io::Error),
    /// vhost-user messaging failed.
    #[error("vhost-user message failed")]
    VhostUser(#[from] vhost::Error),
    /// The test set-up is impossible.
    #[error("impossible set-up: {0}")]
    Setup(String),
    /// Guest RAM could not be mapped.
    #[error("cannot map guest RAM")]
    MapRam(#[source] vm_memory::mmap::FromRangesError),
    /// Guest memory could not be read or written.
    #[error("cannot access guest memory at {0:#x}")]
    GuestMemory(u64, #[source] vm_memory::GuestMemoryError),
    /// No free descriptors.
    #[error("virtqueue full")]
    QueueFull,
    /// The harness ran out of guest pages.
    #[error("out of guest memory")]
    OutOfGuestMemory,
    /// The device answered something that does not parse.
    #[error("protocol: {0}")]
    Protocol(String),
    /// No answer in time.
    #[error("no response within {0:?}")]
    Timeout(Duration),
}

/// Where things live in guest memory.
const REQ_RING: u64 = 0x10000;
const EVT_RING: u64 = 0x50000;
const SCRATCH: u64 = 0x100000;
const SCRATCH_LEN: u64 = 24 << 20;
const EVENT_BUFS: u16 = 16;

/// How to build the VM.
#[derive(Clone, Debug)]
pub struct VmOptions {
    /// Guest RAM bytes.
    pub ram_size: u64,
    /// Entries per virtqueue.
    pub queue_size: u16,
    /// Device features to refuse (e.g. `1 << VIRTIO_DMABUF_F_IMPORT`).
    pub refuse_features: u64,
    /// How long to wait for a response.
    pub timeout: Duration,
    /// Wait for responses in a blocking read of the call eventfd, with no time limit (as a vCPU
    /// halts until its interrupt). Only for benchmarks against a daemon that cannot vanish.
    pub blocking_wait: bool,
    /// With `blocking_wait`: first look at the used ring for this long before sleeping, as KVM
    /// polls a halted vCPU for an interrupt before it schedules the vCPU thread out
    /// (`halt_poll_ns`, 200 µs by default on x86). Zero: sleep at once.
    pub halt_poll: Duration,
    /// Play a VMM with vhost-user shared memory (QEMU 11.1): negotiate SHMEM with its
    /// back-end channel, ask the region's size and serve the back-end's mappings, updating the
    /// back-end's memory table as given. `None`: a VMM without it (QEMU 10.2).
    pub shm: Option<MemUpdates>,
}

impl Default for VmOptions {
    fn default() -> Self {
        VmOptions {
            ram_size: 64 << 20,
            queue_size: 256,
            refuse_features: 0,
            timeout: Duration::from_secs(15),
            blocking_wait: false,
            halt_poll: Duration::ZERO,
            shm: None,
        }
    }
}

/// A guest buffer: pages the harness allocated, as a segment list.
#[derive(Clone, Debug)]
pub struct GuestBuffer {
    /// `(gpa, len)` in buffer order.
    pub segs: Vec<(u64, u64)>,
    /// Total bytes.
    pub size: u64,
}

/// A request written to guest memory, ready to submit (see [`Vm::stage`]).
#[derive(Debug)]
pub struct Staged {
    bufs: Vec<Buf>,
    table: Option<u64>,
    resp: u64,
    resp_len: u32,
}

/// What MAP answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapInfo {
    /// Offset in the region.
    pub offset: u64,
    /// Bytes mapped.
    pub len: u64,
    /// `buf_flags` (READ_ONLY, HOST_BACKED).
    pub flags: u32,
}

/// A SYNC START left waiting in the device.
#[derive(Debug)]
pub struct Pending {
    head: u16,
    resp: u64,
    /// The driver's avail index once the chain was published.
    avail: u16,
}

/// One simulated guest: QEMU's side of the socket plus the guest driver's side of the rings.
pub struct Vm {
    frontend: Frontend,
    /// Guest RAM.
    pub ram: GuestRam,
    /// Request queue.
    pub req: SplitQueue,
    /// Event queue.
    pub evt: SplitQueue,
    /// Guest pages for buffers.
    pub pages: PageAllocator,
    opts: VmOptions,
    scratch_next: u64,
    outstanding: usize,
    done: HashMap<u16, u32>,
    events: Vec<Event>,
    evt_bufs: HashMap<u16, u64>,
    /// Features acked.
    pub features: u64,
    /// The device's shared memory region, when the VMM has one.
    shm: Option<ShmRegion>,
}

/// Decode a response's status.
pub fn status_of(resp: &[u8]) -> Result<Status, HarnessError> {
    let raw: [u8; 4] = resp
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| HarnessError::Protocol(format!("response of {} bytes", resp.len())))?;
    let v = u32::from_le_bytes(raw);
    Status::from_u32(v).ok_or_else(|| HarnessError::Protocol(format!("status {v}")))
}

impl Vm {
    /// Connect to the daemon's socket (retrying while it starts) and bring the device up.
    pub fn connect(socket: &Path, opts: VmOptions) -> Result<Vm, HarnessError> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let frontend = loop {
            match Frontend::connect(socket, wire::NUM_QUEUES as u64) {
                Ok(f) => break f,
                Err(e) if Instant::now() > deadline => return Err(e.into()),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        let ram = GuestRam::new(opts.ram_size)?;
        let pages = PageAllocator::new(SCRATCH + SCRATCH_LEN, opts.ram_size);
        let req = SplitQueue::new(&ram, REQ_RING, opts.queue_size)?;
        let evt = SplitQueue::new(&ram, EVT_RING, EVENT_BUFS)?;
        let mut vm = Vm {
            frontend,
            ram,
            req,
            evt,
            pages,
            opts,
            scratch_next: SCRATCH,
            outstanding: 0,
            done: HashMap::new(),
            events: Vec::new(),
            evt_bufs: HashMap::new(),
            features: 0,
            shm: None,
        };
        vm.negotiate()?;
        vm.frontend.set_mem_table(&vm.ram.regions())?;
        if let Some(shm) = &vm.shm {
            shm.set_ram(vm.ram.regions());
        }
        vm.start_queues()?;
        Ok(vm)
    }

    fn negotiate(&mut self) -> Result<(), HarnessError> {
        self.frontend.set_owner()?;
        let offered = self.frontend.get_features()?;
        self.features = offered & !self.opts.refuse_features;
        self.frontend.set_features(self.features)?;
        let proto = self.frontend.get_protocol_features()?;
        let mut wanted = VhostUserProtocolFeatures::CONFIG
            | VhostUserProtocolFeatures::MQ
            | VhostUserProtocolFeatures::RESET_DEVICE;
        let shm = VhostUserProtocolFeatures::SHMEM
            | VhostUserProtocolFeatures::BACKEND_REQ
            | VhostUserProtocolFeatures::BACKEND_SEND_FD;
        if self.opts.shm.is_some() {
            wanted |= shm
                | VhostUserProtocolFeatures::REPLY_ACK
                | VhostUserProtocolFeatures::CONFIGURE_MEM_SLOTS;
        }
        let acked = proto & wanted;
        self.frontend.set_protocol_features(acked)?;
        if let Some(updates) = self.opts.shm {
            if acked.contains(shm) {
                // As QEMU at realize: the region's size, then the back-end channel.
                let cfg = self.frontend.get_shmem_config()?;
                let size = cfg.memory_sizes[0];
                if cfg.nregions >= 1 && size > 0 {
                    let slots = acked.contains(VhostUserProtocolFeatures::CONFIGURE_MEM_SLOTS);
                    self.shm = Some(ShmRegion::start(&mut self.frontend, size, updates, slots)?);
                }
            }
        }
        Ok(())
    }

    /// The device's shared memory region (when the VMM negotiated one and the device has it).
    pub fn shm(&self) -> Option<&ShmRegion> {
        self.shm.as_ref()
    }

    fn start_queue(&mut self, index: usize) -> Result<(), HarnessError> {
        let q = if index == 0 { &self.req } else { &self.evt };
        let (desc, avail, used) = q.addrs();
        let host = |gpa: u64| -> Result<u64, HarnessError> {
            use vm_memory::GuestMemoryBackend;
            self.ram
                .mem()
                .get_host_address(vm_memory::GuestAddress(gpa))
                .map(|p| p as u64)
                .map_err(|e| HarnessError::GuestMemory(gpa, e))
        };
        let cfg = VringConfigData {
            queue_max_size: q.size,
            queue_size: q.size,
            flags: 0,
            desc_table_addr: host(desc)?,
            used_ring_addr: host(used)?,
            avail_ring_addr: host(avail)?,
            log_addr: None,
        };
        self.frontend.set_vring_num(index, q.size)?;
        self.frontend.set_vring_addr(index, &cfg)?;
        self.frontend.set_vring_base(index, 0)?;
        self.frontend.set_vring_call(index, &q.call)?;
        self.frontend.set_vring_kick(index, &q.kick)?;
        self.frontend.set_vring_enable(index, true)?;
        Ok(())
    }

    fn start_queues(&mut self) -> Result<(), HarnessError> {
        let event_idx = self.features & (1 << VIRTIO_RING_F_EVENT_IDX) != 0;
        self.req.set_event_idx(event_idx);
        self.evt.set_event_idx(event_idx);
        self.start_queue(0)?;
        self.start_queue(1)?;
        // The ring set-up messages have no reply: a message that has one (handled in order after
        // them) guarantees the back-end has both queues ready before the driver relies on them,
        // e.g. on the event queue holding buffers when an event is posted.
        self.frontend.get_features()?;
        // Keep the event queue filled.
        for i in 0..u64::from(EVENT_BUFS) {
            let gpa = EVT_RING + 0x8000 + i * 64;
            let head = self.evt.add(
                &self.ram,
                &[Buf {
                    addr: gpa,
                    len: 24,
                    write: true,
                }],
            )?;
            self.evt_bufs.insert(head, gpa);
        }
        Ok(())
    }

    /// The device's configuration space.
    pub fn config(&mut self) -> Result<wire::Config, HarnessError> {
        let buf = [0u8; size_of::<wire::Config>()];
        let (_, data) =
            self.frontend
                .get_config(0, buf.len() as u32, VhostUserConfigFlags::empty(), &buf)?;
        let mut cfg = wire::Config::default();
        if data.len() != buf.len() {
            return Err(HarnessError::Protocol(format!(
                "config of {} bytes",
                data.len()
            )));
        }
        cfg.as_mut_slice().copy_from_slice(&data);
        Ok(wire::Config {
            max_segments: u32::from_le(cfg.max_segments),
            max_buffers: u32::from_le(cfg.max_buffers),
            max_bytes: u64::from_le(cfg.max_bytes),
            sync_timeout_ms: u32::from_le(cfg.sync_timeout_ms),
            reserved: cfg.reserved,
        })
    }

    /// Start a new request: scratch space is reused once nothing is outstanding.
    fn rewind_scratch(&mut self) {
        if self.outstanding == 0 {
            self.scratch_next = SCRATCH;
        }
    }

    /// Guest-physical scratch space, valid until no request is outstanding any more.
    pub fn scratch(&mut self, len: u64) -> Result<u64, HarnessError> {
        let at = (self.scratch_next + 63) & !63;
        if at + len > SCRATCH + SCRATCH_LEN {
            return Err(HarnessError::OutOfGuestMemory);
        }
        self.scratch_next = at + len;
        Ok(at)
    }

    /// Submit a chain and return its head (raw access for hostile tests).
    pub fn submit(&mut self, bufs: &[Buf]) -> Result<u16, HarnessError> {
        let head = self.req.add(&self.ram, bufs)?;
        self.outstanding += 1;
        Ok(head)
    }

    /// Change how long a blocking wait polls before it sleeps (see [`VmOptions::halt_poll`]).
    pub fn set_halt_poll(&mut self, halt_poll: Duration) {
        self.opts.halt_poll = halt_poll;
    }

    /// Wait until chain `head` is used; returns the used length.
    pub fn wait_head(&mut self, head: u16, timeout: Duration) -> Result<u32, HarnessError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(len) = self.done.remove(&head) {
                self.outstanding = self.outstanding.saturating_sub(1);
                return Ok(len);
            }
            if self.opts.blocking_wait {
                let (h, len) = self.req.wait_blocking(&self.ram, self.opts.halt_poll)?;
                self.done.insert(h, len);
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(HarnessError::Timeout(timeout));
            }
            if let Some((h, len)) = self.req.wait(&self.ram, left)? {
                self.done.insert(h, len);
            }
        }
    }

    /// Send `request` (split into descriptors of at most `chunk` bytes) with a response area of
    /// `resp_len` bytes; returns the bytes the device wrote.
    pub fn request_chunked(
        &mut self,
        request: &[u8],
        resp_len: u32,
        chunk: usize,
    ) -> Result<Vec<u8>, HarnessError> {
        let staged = self.stage(request, resp_len, chunk)?;
        self.send_staged(&staged)
    }

    /// Write a request and its descriptor list into guest memory without submitting it, so that
    /// a benchmark can time the device alone.
    pub fn stage(
        &mut self,
        request: &[u8],
        resp_len: u32,
        chunk: usize,
    ) -> Result<Staged, HarnessError> {
        self.rewind_scratch();
        let req_gpa = self.scratch(request.len() as u64)?;
        let resp = self.scratch(u64::from(resp_len).max(1))?;
        self.ram.write(req_gpa, request)?;
        let mut bufs: Vec<Buf> = request
            .chunks(chunk.max(1))
            .scan(req_gpa, |at, c| {
                let b = Buf {
                    addr: *at,
                    len: c.len() as u32,
                    write: false,
                };
                *at += c.len() as u64;
                Some(b)
            })
            .collect();
        if resp_len > 0 {
            bufs.push(Buf {
                addr: resp,
                len: resp_len,
                write: true,
            });
        }
        let table = if bufs.len() + 1 > self.req.free_descriptors() {
            Some(self.scratch(bufs.len() as u64 * 16)?)
        } else {
            None
        };
        Ok(Staged {
            bufs,
            table,
            resp,
            resp_len,
        })
    }

    /// Submit a staged request and wait for its response.
    pub fn send_staged(&mut self, s: &Staged) -> Result<Vec<u8>, HarnessError> {
        let head = match s.table {
            Some(table) => {
                let h = self.req.add_indirect(&self.ram, table, &s.bufs)?;
                self.outstanding += 1;
                h
            }
            None => self.submit(&s.bufs)?,
        };
        let len = self.wait_head(head, self.opts.timeout)?;
        let mut out = vec![0u8; len.min(s.resp_len) as usize];
        self.ram.read(s.resp, &mut out)?;
        Ok(out)
    }

    /// Send `request` in one descriptor with a response area of `resp_len` bytes.
    pub fn request(&mut self, request: &[u8], resp_len: u32) -> Result<Vec<u8>, HarnessError> {
        self.request_chunked(request, resp_len, usize::MAX)
    }

    /// Allocate guest pages for a buffer of `size` bytes (rounded up to pages).
    pub fn alloc_buffer(
        &mut self,
        size: u64,
        scattered: bool,
    ) -> Result<GuestBuffer, HarnessError> {
        let n = size.div_ceil(PAGE).max(1);
        let mut segs = Vec::new();
        if scattered {
            for gpa in self.pages.scattered(n)? {
                segs.push((gpa, PAGE));
            }
        } else {
            segs.push((self.pages.contiguous(n)?, n * PAGE));
        }
        // The last page may be partial.
        let total: u64 = n * PAGE;
        if total != size {
            if let Some(last) = segs.last_mut() {
                last.1 -= total - size;
            }
        }
        Ok(GuestBuffer { segs, size })
    }

    /// Write `data` at `offset` of a guest buffer (the guest CPU writing its pages).
    pub fn write_buffer(
        &self,
        b: &GuestBuffer,
        offset: u64,
        data: &[u8],
    ) -> Result<(), HarnessError> {
        self.walk(b, offset, data.len() as u64, |gpa, range| {
            self.ram.write(gpa, &data[range])
        })
    }

    /// Read `len` bytes at `offset` of a guest buffer.
    pub fn read_buffer(
        &self,
        b: &GuestBuffer,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, HarnessError> {
        let mut out = vec![0u8; len as usize];
        let cell = std::cell::RefCell::new(&mut out);
        self.walk(b, offset, len, |gpa, range| {
            self.ram.read(gpa, &mut cell.borrow_mut()[range])
        })?;
        Ok(out)
    }

    fn walk(
        &self,
        b: &GuestBuffer,
        offset: u64,
        len: u64,
        mut f: impl FnMut(u64, std::ops::Range<usize>) -> Result<(), HarnessError>,
    ) -> Result<(), HarnessError> {
        let mut pos = 0u64; // buffer offset of the current segment
        let mut done = 0u64;
        for &(gpa, slen) in &b.segs {
            let (s, e) = (pos, pos + slen);
            pos = e;
            let want_s = offset + done;
            if done == len || want_s >= e {
                continue;
            }
            let take = (e - want_s).min(len - done);
            f(gpa + (want_s - s), done as usize..(done + take) as usize)?;
            done += take;
        }
        if done != len {
            return Err(HarnessError::Setup("range outside buffer".into()));
        }
        Ok(())
    }

    /// Events the device posted so far (the event queue is refilled).
    pub fn events(&mut self) -> Result<Vec<Event>, HarnessError> {
        while let Some((head, len)) = self.evt.poll(&self.ram)? {
            let gpa = self
                .evt_bufs
                .remove(&head)
                .ok_or_else(|| HarnessError::Protocol("unknown event buffer".into()))?;
            if len as usize >= size_of::<Event>() {
                let mut e = Event::default();
                self.ram.read(gpa, e.as_mut_slice())?;
                self.events.push(e);
            }
            let h = self.evt.add(
                &self.ram,
                &[Buf {
                    addr: gpa,
                    len: 24,
                    write: true,
                }],
            )?;
            self.evt_bufs.insert(h, gpa);
        }
        Ok(std::mem::take(&mut self.events))
    }

    /// Wait up to `timeout` for at least one event.
    pub fn wait_events(&mut self, timeout: Duration) -> Result<Vec<Event>, HarnessError> {
        let deadline = Instant::now() + timeout;
        loop {
            let ev = self.events()?;
            if !ev.is_empty() || Instant::now() > deadline {
                return Ok(ev);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// What a guest reset does: the front-end stops both queues (GET_VRING_BASE) and removes
    /// the region's mappings, then the driver sets them up again from scratch.
    pub fn reset(&mut self) -> Result<(), HarnessError> {
        self.frontend.get_vring_base(0)?;
        self.frontend.get_vring_base(1)?;
        // QEMU 11.1 then removes every mapping of the device's region (virtio reset).
        if let Some(shm) = &self.shm {
            shm.reset();
        }
        self.req = SplitQueue::new(&self.ram, REQ_RING, self.opts.queue_size)?;
        self.evt = SplitQueue::new(&self.ram, EVT_RING, EVENT_BUFS)?;
        self.done.clear();
        self.evt_bufs.clear();
        self.outstanding = 0;
        self.start_queues()
    }

    /// Replace guest RAM by a new memfd (as after a hotplug or migration): the rings and the
    /// scratch area are carried over, buffer pages are not. Sends SET_MEM_TABLE.
    pub fn remap_ram(&mut self) -> Result<(), HarnessError> {
        let new = GuestRam::new(self.opts.ram_size)?;
        let mut low = vec![0u8; ram::HOLE_START as usize];
        self.ram.read(0, &mut low)?;
        new.write(0, &low)?;
        let mut scratch = vec![0u8; SCRATCH_LEN as usize];
        self.ram.read(SCRATCH, &mut scratch)?;
        new.write(SCRATCH, &scratch)?;
        self.frontend.set_mem_table(&new.regions())?;
        if let Some(shm) = &self.shm {
            shm.set_ram(new.regions());
        }
        self.ram = new;
        // The copy can miss the device's last writes to the old rings (its avail event, written
        // when it stops polling), so the driver could wait for a kick request the device never
        // sees. Once the back-end has the new table (a message with a reply is handled after
        // it), kick once so that the device looks at the new rings. (A real remap maps the same
        // pages again and loses nothing.)
        self.frontend.get_features()?;
        self.req.kick.write(1)?;
        self.evt.kick.write(1)?;
        Ok(())
    }

    /// Close the connection as a crashing QEMU would.
    pub fn disconnect(self) {
        drop(self);
    }
}
