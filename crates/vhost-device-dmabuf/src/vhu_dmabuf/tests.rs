// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Unit tests of the vhost-user layer: real descriptor chains, written with virtio-queue's
//! `MockSplitQueue` into a `GuestMemoryMmap` with QEMU's hole, handed to `handle_event` as the
//! daemon framework does on a kick. Error paths first; a parked START is asserted by the used
//! ring (state), not by time.

use std::fs::File;
use std::sync::Arc;
use std::time::Duration;

use dmabuf_sys_util::memfd::sealed_memfd;
use vhost_user_backend::{VhostUserBackend, VringRwLock, VringT};
use virtio_bindings::bindings::virtio_ring::{
    VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE,
};
use virtio_dmabuf_proto::virtio::{
    req, sync_flags, AttachReq, CreateReq, Event, ReqHdr, Segment, SyncReq, Uuid, UuidReq,
};
use virtio_dmabuf_proto::Status;
use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{ByteValued, Bytes, GuestAddress, GuestMemoryAtomic};
use vmm_sys_util::epoll::EventSet;

use super::*;
use crate::registry::{HostRange, HostSession, Limits, ShareRequest};

const QSIZE: u16 = 16;
const REQ_QUEUE: u64 = 0x1000;
const EVT_QUEUE: u64 = 0x3000;
/// Request bytes and response areas.
const DATA: u64 = 0x10000;
/// Buffer pages.
const PAGES: u64 = 0x100000;
const HOLE: u64 = 0xa0000;
const PAGE: u64 = 4096;

/// One buffer of a chain: address, length, device-writable.
type Buf = (u64, u32, bool);

fn readable(addr: u64, len: usize) -> Buf {
    (addr, len as u32, false)
}

fn writable(addr: u64, len: u32) -> Buf {
    (addr, len, true)
}

fn raw(addr: u64, len: u32, flags: u32, next: u16) -> RawDescriptor {
    RawDescriptor::from(SplitDescriptor::new(addr, len, flags as u16, next))
}

/// A device with one VM and its rings, as the daemon framework sets them up, and the driver's
/// side of the rings. (The memory lives as long as the test process: the mock queues borrow
/// it, and making one again would reset its rings.)
struct Dev {
    mem: &'static GuestMem,
    req: MockSplitQueue<'static, GuestMem>,
    evt: MockSplitQueue<'static, GuestMem>,
    registry: Arc<Registry>,
    backend: DmabufBackend,
    vrings: Vec<VringRwLock>,
    next_desc: u16,
    next_data: u64,
}

impl Dev {
    fn new(limits: Limits) -> Dev {
        let mem: &'static GuestMem = Box::leak(Box::new(
            GuestMem::from_ranges(&[
                (GuestAddress(0), HOLE as usize),
                (GuestAddress(0xc0000), 0x400000 - 0xc0000),
            ])
            .unwrap(),
        ));
        let registry = Registry::new(limits).unwrap();
        let atomic = GuestMemoryAtomic::new(mem.clone());
        let backend = DmabufBackend::new(registry.clone(), "vm", atomic.clone()).unwrap();
        backend.acked_features(backend.features());
        let vrings = vec![
            VringRwLock::new(atomic.clone(), QSIZE).unwrap(),
            VringRwLock::new(atomic, QSIZE).unwrap(),
        ];
        let req = MockSplitQueue::create(mem, GuestAddress(REQ_QUEUE), QSIZE);
        let evt = MockSplitQueue::create(mem, GuestAddress(EVT_QUEUE), QSIZE);
        for (v, q) in vrings.iter().zip([&req, &evt]) {
            v.set_queue_size(QSIZE);
            v.set_queue_info(q.desc_table_addr().0, q.avail_addr().0, q.used_addr().0)
                .unwrap();
            v.set_queue_ready(true);
            v.set_enabled(true);
        }
        Dev {
            mem,
            req,
            evt,
            registry,
            backend,
            vrings,
            next_desc: 0,
            next_data: DATA,
        }
    }

    fn queue(&self, base: u64) -> &MockSplitQueue<'static, GuestMem> {
        if base == REQ_QUEUE {
            &self.req
        } else {
            &self.evt
        }
    }

    /// Guest memory for `bytes` in the data area; its address.
    fn put(&mut self, bytes: &[u8]) -> u64 {
        let at = self.next_data;
        self.mem.write_slice(bytes, GuestAddress(at)).unwrap();
        self.next_data = (at + bytes.len() as u64 + 63) & !63;
        at
    }

    /// A response area of `len` bytes, filled with 0xee.
    fn area(&mut self, len: u32) -> u64 {
        self.put(&vec![0xee; len.max(1) as usize])
    }

    /// Publish a chain of `bufs` (the last one `last_next` if given: a loop); its head.
    fn publish(&mut self, bufs: &[Buf], last_next: Option<u16>) -> u16 {
        let head = self.next_desc;
        let descs: Vec<RawDescriptor> = bufs
            .iter()
            .enumerate()
            .map(|(i, &(addr, len, w))| {
                let idx = head + i as u16;
                let write = if w { VRING_DESC_F_WRITE } else { 0 };
                match (i + 1 == bufs.len(), last_next) {
                    (true, None) => raw(addr, len, write, 0),
                    (true, Some(n)) => raw(addr, len, write | VRING_DESC_F_NEXT, n),
                    (false, _) => raw(addr, len, write | VRING_DESC_F_NEXT, idx + 1),
                }
            })
            .collect();
        self.queue(REQ_QUEUE).add_desc_chains(&descs, head).unwrap();
        self.next_desc += bufs.len() as u16;
        head
    }

    /// Publish `bufs` as an indirect table at `table` (not written if outside RAM).
    fn publish_indirect(&mut self, bufs: &[Buf], table: u64) -> u16 {
        for (i, &(addr, len, w)) in bufs.iter().enumerate() {
            let last = i + 1 == bufs.len();
            let flags =
                if w { VRING_DESC_F_WRITE } else { 0 } | if last { 0 } else { VRING_DESC_F_NEXT };
            let d = raw(addr, len, flags, i as u16 + 1);
            let _ = self.mem.write_obj(d, GuestAddress(table + 16 * i as u64));
        }
        let len = 16 * bufs.len() as u32;
        self.publish(&[(table, len, false)], None);
        let head = self.next_desc - 1;
        let d = raw(table, len, VRING_DESC_F_INDIRECT, 0);
        self.queue(REQ_QUEUE).desc_table().store(head, d).unwrap();
        head
    }

    fn kick(&self) {
        self.backend
            .handle_event(wire::REQUEST_QUEUE, EventSet::IN, &self.vrings, 0)
            .unwrap();
    }

    /// The used ring: (head, length) of every element so far.
    fn used(&self, base: u64) -> Vec<(u16, u32)> {
        let q = self.queue(base);
        let n = q.used().idx().load();
        (0..n)
            .map(|i| {
                let e = q.used().ring().ref_at(usize::from(i)).unwrap().load();
                (e.id() as u16, e.len())
            })
            .collect()
    }

    fn answer(&self, head: u16) -> Option<u32> {
        self.used(REQ_QUEUE)
            .into_iter()
            .find(|&(h, _)| h == head)
            .map(|(_, len)| len)
    }

    fn status_at(&self, addr: u64) -> Status {
        let raw: u32 = self.mem.read_obj(GuestAddress(addr)).unwrap();
        Status::from_u32(u32::from_le(raw)).expect("a status")
    }

    /// Send `request` in one readable descriptor with a response area of `resp` bytes; the
    /// used length and the status (when at least 8 bytes were written).
    fn call(&mut self, request: &[u8], resp: u32) -> (u32, Option<Status>, u64) {
        let r = self.put(request);
        let out = self.area(resp);
        let head = self.publish(&[readable(r, request.len()), writable(out, resp)], None);
        self.kick();
        let len = self.answer(head).expect("answered");
        (len, (len >= 8).then(|| self.status_at(out)), out)
    }

    fn status(&mut self, request: &[u8], resp: u32) -> Status {
        self.call(request, resp).1.expect("a status")
    }

    fn create(&mut self, gpa: u64, size: u64) -> Uuid {
        let (len, status, out) = self.call(&create_request(size, 0, &[(gpa, size)]), 24);
        assert_eq!((len, status), (24, Some(Status::Ok)));
        self.mem
            .read_obj::<[u8; 16]>(GuestAddress(out + 8))
            .unwrap()
    }
}

fn request<T: ByteValued>(kind: u32, body: &T, segs: &[(u64, u64)]) -> Vec<u8> {
    let mut v = ReqHdr {
        type_: kind.to_le(),
        reserved: 0,
    }
    .as_slice()
    .to_vec();
    v.extend_from_slice(body.as_slice());
    for &(a, l) in segs {
        v.extend_from_slice(Segment::new(a, l).as_slice());
    }
    v
}

fn create_request(size: u64, flags: u32, segs: &[(u64, u64)]) -> Vec<u8> {
    let body = CreateReq {
        size: size.to_le(),
        flags: flags.to_le(),
        nr_segs: (segs.len() as u32).to_le(),
    };
    request(req::CREATE, &body, segs)
}

fn sync_request(uuid: &Uuid, offset: u64, len: u64, flags: u32) -> Vec<u8> {
    let body = SyncReq {
        uuid: *uuid,
        offset: offset.to_le(),
        len: len.to_le(),
        flags: flags.to_le(),
        timeout_ms: 0,
    };
    request(req::SYNC, &body, &[])
}

fn uuid_request(kind: u32, uuid: &Uuid) -> Vec<u8> {
    request(kind, &UuidReq { uuid: *uuid }, &[])
}

fn share(dev: &Dev) -> (Uuid, File) {
    let f = sealed_memfd("t", PAGE).unwrap();
    let u = dev
        .registry
        .share(ShareRequest {
            file: f.try_clone().unwrap(),
            size: PAGE,
            read_only: false,
            host_only: false,
            allowed_vms: Vec::new(),
            owner: "host:1".into(),
        })
        .unwrap();
    (u, f)
}

#[test]
fn features_and_config_space() {
    let dev = Dev::new(Limits {
        max_segments: 7,
        max_buffers: 9,
        max_bytes: 1 << 33,
        sync_timeout: Duration::from_millis(1234),
        ..Limits::default()
    });
    let b = &dev.backend;
    assert_eq!(b.num_queues(), 2);
    assert_ne!(b.features() & (1 << VIRTIO_F_VERSION_1), 0);
    assert_ne!(b.features() & (1 << VIRTIO_DMABUF_F_IMPORT), 0);
    assert!(b
        .protocol_features()
        .contains(VhostUserProtocolFeatures::CONFIG));
    let cfg = b.get_config(0, 24);
    assert_eq!(cfg.len(), 24);
    assert_eq!(cfg[0..4], 7u32.to_le_bytes());
    assert_eq!(cfg[4..8], 9u32.to_le_bytes());
    assert_eq!(cfg[8..16], (1u64 << 33).to_le_bytes());
    assert_eq!(cfg[16..20], 1234u32.to_le_bytes());
    assert_eq!(cfg[20..24], [0; 4]);
    assert_eq!(b.get_config(16, 4), 1234u32.to_le_bytes());
    assert_eq!(b.get_config(20, 100).len(), 4, "clipped to the space");
    assert!(b.get_config(24, 4).is_empty());
    assert!(b.get_config(u32::MAX, u32::MAX).is_empty());
    assert!(b
        .handle_event(7, EventSet::IN, &dev.vrings, 0)
        .is_err_and(|e| e.to_string().contains("unexpected device event 7")));
}

#[test]
fn create_lookup_release_round_trip() {
    let mut dev = Dev::new(Limits::default());
    let u = dev.create(PAGES, 2 * PAGE);
    let (len, status, out) = dev.call(&uuid_request(req::LOOKUP, &u), 24);
    assert_eq!((len, status), (24, Some(Status::Ok)));
    let size: u64 = dev.mem.read_obj(GuestAddress(out + 8)).unwrap();
    let flags: u32 = dev.mem.read_obj(GuestAddress(out + 16)).unwrap();
    assert_eq!((size, flags), (2 * PAGE, buf_flags::OWN));
    assert_eq!(dev.status(&uuid_request(req::RELEASE, &u), 8), Status::Ok);
    assert_eq!(
        dev.status(&uuid_request(req::RELEASE, &u), 8),
        Status::NotFound
    );
    assert_eq!(
        dev.status(&uuid_request(req::LOOKUP, &u), 24),
        Status::NotFound
    );
    assert!(dev.registry.list().is_empty());
}

#[test]
fn chains_the_device_cannot_answer_are_used_with_length_zero_and_not_acted_on() {
    let mut dev = Dev::new(Limits::default());
    let create = create_request(PAGE, 0, &[(PAGES, PAGE)]);
    let r = dev.put(&create);
    // Response area under 8 bytes.
    let out = dev.area(7);
    let a = dev.publish(&[readable(r, create.len()), writable(out, 7)], None);
    // A writable descriptor outside guest RAM.
    let b = dev.publish(
        &[readable(r, create.len()), writable(HOLE + 0x1000, 24)],
        None,
    );
    // A loop.
    let out = dev.area(24);
    let c = dev.publish(
        &[readable(r, create.len()), writable(out, 24)],
        Some(dev.next_desc),
    );
    // An indirect table outside guest RAM.
    let d = dev.publish_indirect(&[readable(r, create.len()), writable(out, 24)], 0x500000);
    dev.kick();
    for head in [a, b, c, d] {
        assert_eq!(dev.answer(head), Some(0), "chain {head}");
    }
    assert!(dev.registry.list().is_empty(), "no CREATE acted on");
}

#[test]
fn framing_errors_are_answered_with_a_status() {
    let mut dev = Dev::new(Limits::default());
    let create = create_request(PAGE, 0, &[(PAGES, PAGE)]);
    // A readable descriptor after a writable one.
    let r = dev.put(&create);
    let out = dev.area(24);
    let head = dev.publish(&[writable(out, 24), readable(r, create.len())], None);
    dev.kick();
    assert_eq!(dev.answer(head), Some(8));
    assert_eq!(dev.status_at(out), Status::InvalidRequest);
    // No readable part.
    let out = dev.area(8);
    let head = dev.publish(&[writable(out, 8)], None);
    dev.kick();
    assert_eq!(
        (dev.answer(head), dev.status_at(out)),
        (Some(8), Status::InvalidRequest)
    );
    // A readable descriptor in the hole.
    let out = dev.area(24);
    let head = dev.publish(
        &[readable(r, 8), readable(HOLE, 32), writable(out, 24)],
        None,
    );
    dev.kick();
    assert_eq!(
        (dev.answer(head), dev.status_at(out)),
        (Some(8), Status::InvalidAddress)
    );
    // The response does not fit.
    assert_eq!(dev.status(&create, 23), Status::ResponseTooSmall);
    assert!(dev.registry.list().is_empty());
    // Unknown type, reserved header field.
    assert_eq!(
        dev.status(&uuid_request(0x1ff, &[0; 16]), 8),
        Status::InvalidRequest
    );
    let mut bad = uuid_request(req::RELEASE, &[0; 16]);
    bad[4] = 1;
    assert_eq!(dev.status(&bad, 8), Status::InvalidRequest);
    // The decoder's verdicts come through (a truncated CREATE, too many segments).
    assert_eq!(dev.status(&create[..30], 24), Status::InvalidRequest);
    let many: Vec<(u64, u64)> = (0..3).map(|i| (PAGES + i * 2 * PAGE, PAGE)).collect();
    let mut small = Dev::new(Limits {
        max_segments: 2,
        ..Limits::default()
    });
    assert_eq!(
        small.status(&create_request(3 * PAGE, 0, &many), 24),
        Status::TooManySegments
    );
}

#[test]
fn requests_and_responses_span_descriptors_and_indirect_tables() {
    let mut dev = Dev::new(Limits::default());
    let pages: Vec<(u64, u64)> = (0..8).map(|i| (PAGES + i * 2 * PAGE, PAGE)).collect();
    let create = create_request(8 * PAGE, 0, &pages);
    let r = dev.put(&create);
    // The request in pieces of 5 bytes, the response in two descriptors, all indirect.
    let mut bufs: Vec<Buf> = create
        .chunks(5)
        .enumerate()
        .map(|(i, c)| readable(r + 5 * i as u64, c.len()))
        .collect();
    let out = dev.area(24);
    bufs.push(writable(out, 4));
    bufs.push(writable(out + 4, 20));
    let head = dev.publish_indirect(&bufs, 0x80000);
    dev.kick();
    assert_eq!(dev.answer(head), Some(24));
    assert_eq!(dev.status_at(out), Status::Ok);
    let uuid: Uuid = dev.mem.read_obj(GuestAddress(out + 8)).unwrap();
    assert_eq!(dev.registry.info(&uuid).unwrap().nr_segs, 8);
}

#[test]
fn import_requests_need_the_feature() {
    let mut dev = Dev::new(Limits::default());
    let (u, _f) = share(&dev);
    dev.backend.acked_features(1 << VIRTIO_F_VERSION_1);
    assert_eq!(
        dev.status(&uuid_request(req::LOOKUP, &u), 24),
        Status::Unsupported
    );
    let attach = AttachReq {
        uuid: u,
        nr_segs: 1u32.to_le(),
        reserved: 0,
    };
    let a = request(req::ATTACH, &attach, &[(PAGES, PAGE)]);
    assert_eq!(dev.status(&a, 8), Status::Unsupported);
    dev.backend.acked_features(dev.backend.features());
    assert_eq!(dev.status(&a, 8), Status::Ok);
    assert_eq!(dev.status(&a, 8), Status::AlreadyExists);
}

#[test]
fn a_waiting_start_keeps_its_chain_until_the_end_that_unblocks_it() {
    let mut dev = Dev::new(Limits::default());
    let u = dev.create(PAGES, PAGE);
    let host = HostSession::new(&dev.registry);
    let held = HostRange::write(&u, 0, PAGE);
    host.begin(&held, 0).unwrap();
    let start = sync_request(&u, 0, 16, sync_flags::READ);
    let r = dev.put(&start);
    let out = dev.area(8);
    let head = dev.publish(&[readable(r, start.len()), writable(out, 8)], None);
    dev.kick();
    assert_eq!(dev.answer(head), None, "popped, not used: it waits");
    // Later requests are served meanwhile.
    assert_eq!(dev.status(&uuid_request(req::LOOKUP, &u), 24), Status::Ok);
    host.end(&held).unwrap();
    // The END answered it, through the backend, before returning.
    assert_eq!(dev.answer(head), Some(8));
    assert_eq!(dev.status_at(out), Status::Ok);
    assert_eq!(
        dev.status(
            &sync_request(&u, 0, 16, sync_flags::READ | sync_flags::END),
            8
        ),
        Status::Ok
    );
}

#[test]
fn a_reset_silences_the_answers_of_waiting_starts() {
    let mut dev = Dev::new(Limits::default());
    let u = dev.create(PAGES, PAGE);
    let (theirs, _f) = share(&dev);
    let host = HostSession::new(&dev.registry);
    host.begin(&HostRange::write(&theirs, 0, PAGE), 0).unwrap();
    let attach = AttachReq {
        uuid: theirs,
        nr_segs: 1u32.to_le(),
        reserved: 0,
    };
    assert_eq!(
        dev.status(&request(req::ATTACH, &attach, &[(PAGES + PAGE, PAGE)]), 8),
        Status::Ok
    );
    let start = sync_request(&theirs, 0, 1, sync_flags::READ);
    let r = dev.put(&start);
    let out = dev.area(8);
    let head = dev.publish(&[readable(r, start.len()), writable(out, 8)], None);
    dev.kick();
    assert_eq!(dev.answer(head), None);
    let used_before = dev.used(REQ_QUEUE).len();
    dev.backend.reset_device();
    // The reset cancelled the waiter; its answer went nowhere.
    assert_eq!(dev.used(REQ_QUEUE).len(), used_before);
    let untouched: u32 = dev.mem.read_obj(GuestAddress(out)).unwrap();
    assert_eq!(
        untouched, 0xeeee_eeee,
        "nothing written to the old response area"
    );
    assert!(
        dev.registry.info(&u).is_none(),
        "the VM's own buffer is gone"
    );
    assert_eq!(dev.registry.info(&theirs).unwrap().importers, 0);
}

#[test]
fn revoked_events_go_to_the_event_queue_or_are_counted() {
    let mut dev = Dev::new(Limits::default());
    let (u, _f) = share(&dev);
    let attach = AttachReq {
        uuid: u,
        nr_segs: 1u32.to_le(),
        reserved: 0,
    };
    let a = request(req::ATTACH, &attach, &[(PAGES, PAGE)]);
    assert_eq!(dev.status(&a, 8), Status::Ok);
    // No event buffer yet: dropped and counted.
    dev.registry.revoke(&u).unwrap();
    assert_eq!(dev.registry.stats.dropped_events.load(Ordering::Relaxed), 1);
    assert_eq!(dev.status(&uuid_request(req::RELEASE, &u), 8), Status::Ok);

    let (v, _g) = share(&dev);
    let attach = AttachReq { uuid: v, ..attach };
    assert_eq!(
        dev.status(&request(req::ATTACH, &attach, &[(PAGES, PAGE)]), 8),
        Status::Ok
    );
    let evt = dev.area(24);
    dev.queue(EVT_QUEUE)
        .add_desc_chains(&[raw(evt, 24, VRING_DESC_F_WRITE, 0)], 0)
        .unwrap();
    dev.registry.revoke(&v).unwrap();
    assert_eq!(dev.used(EVT_QUEUE), [(0, 24)]);
    let e: Event = dev.mem.read_obj(GuestAddress(evt)).unwrap();
    assert_eq!((u32::from_le(e.type_), e.uuid), (wire::event::REVOKED, v));
    assert_eq!(dev.registry.stats.dropped_events.load(Ordering::Relaxed), 1);
    assert_eq!(
        dev.status(&sync_request(&v, 0, 1, sync_flags::READ), 8),
        Status::Revoked
    );
}

#[test]
fn chain_shapes() {
    let mut dev = Dev::new(Limits::default());
    let r = dev.put(&[0; 8]);
    let out = dev.area(8);
    let shape_of = |dev: &Dev, head: u16| {
        let mem = dev.backend.0.vm.mem.memory();
        let mut queue = dev
            .queue(REQ_QUEUE)
            .create_queue::<virtio_queue::Queue>()
            .unwrap();
        let mut iter = virtio_queue::QueueOwnedT::iter(&mut queue, mem).unwrap();
        let chain = iter.find(|c| c.head_index() == head).unwrap();
        ChainShape::of(&chain)
    };
    let ok = dev.publish(&[readable(r, 8), writable(out, 8)], None);
    let mis = dev.publish(&[writable(out, 8), readable(r, 8)], None);
    let looped = dev.publish(&[readable(r, 8)], Some(dev.next_desc));
    let shape = |walkable, misordered| ChainShape {
        walkable,
        misordered,
    };
    assert_eq!(shape_of(&dev, ok), shape(true, false));
    assert_eq!(shape_of(&dev, mis), shape(true, true));
    assert!(!shape_of(&dev, looped).walkable);
}
