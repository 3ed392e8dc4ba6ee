// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! What the fuzz targets (`fuzz/`) found, as tests against the real daemon. Each test names the
//! target and the input kept under `fuzz/regressions/<target>/`; `fuzz_corpus.rs` also replays
//! those inputs through the fuzz drivers themselves.

use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use dmabuf_client::{Access, Client, ClientError};
use dmabuf_harness::ram::PAGE;
use dmabuf_harness::{DaemonProcess, Vm, VmOptions};
use vhost_device_dmabuf::memory::GuestMem;
use vhost_device_dmabuf::registry::{HostRange, HostSession, Limits, Registry};
use vhost_device_dmabuf::vhu_dmabuf::DmabufBackend;
use vhost_user_backend::{VhostUserBackend, VringRwLock, VringT};
use virtio_dmabuf_proto::control::op;
use virtio_dmabuf_proto::request::{CreateFlags, CreateRequest};
use virtio_dmabuf_proto::segments::SegmentList;
use virtio_dmabuf_proto::virtio::{sync_flags as sf, REQUEST_QUEUE};
use virtio_dmabuf_proto::Status;
use virtio_queue::QueueT;
use vm_memory::{Bytes, GuestAddress, GuestMemoryAtomic};
use vmm_sys_util::epoll::EventSet;

fn daemon() -> DaemonProcess {
    DaemonProcess::spawn(
        Path::new(env!("CARGO_BIN_EXE_vhost-device-dmabuf")),
        &["a", "b"],
        &["--sync-timeout-ms", "2000"],
    )
    .unwrap()
}

/// request_decode, `end-with-other-direction-moved-generation`: an END whose direction or range
/// differs from the held access (START READ|WRITE, END WRITE; or END of a sub-range) was answered
/// NOT_HELD — but only after the device had copied the importer's copy back to the origin and
/// counted a write generation. A NOT_HELD END must have no effect at all (spec 6.6).
#[test]
fn end_that_matches_no_access_moves_no_data_and_no_generation() {
    let d = daemon();
    let mut a = Vm::connect(&d.vm_socket("a"), VmOptions::default()).unwrap();
    let mut b = Vm::connect(&d.vm_socket("b"), VmOptions::default()).unwrap();
    let mut host = Client::connect(d.control_socket()).unwrap();

    let origin = a.alloc_buffer(2 * PAGE, true).unwrap();
    a.write_buffer(&origin, 0, &[1u8; 2 * PAGE as usize])
        .unwrap();
    let u = a.create_buffer(&origin, 0).unwrap().unwrap();
    let copy = b.alloc_buffer(2 * PAGE, true).unwrap();
    assert_eq!(b.attach(&u, &copy).unwrap(), Status::Ok);

    let rw = sf::READ | sf::WRITE;
    assert_eq!(b.sync(&u, 0, 2 * PAGE, rw, 0).unwrap(), Status::Ok);
    b.write_buffer(&copy, 0, &[2u8; 2 * PAGE as usize]).unwrap();
    for (offset, len, flags) in [
        (0, 2 * PAGE, sf::WRITE), // another direction
        (0, PAGE, rw),            // a sub-range
        (PAGE, PAGE, sf::WRITE),  // both
        (0, 2 * PAGE, sf::READ),  // a read END of a write access
    ] {
        assert_eq!(
            b.sync(&u, offset, len, flags | sf::END, 0).unwrap(),
            Status::NotHeld,
            "END {offset}+{len} flags {flags:#x}"
        );
        assert_eq!(host.info(&u).unwrap().write_generation, 0, "no write ended");
        assert_eq!(
            a.read_buffer(&origin, 0, 2 * PAGE).unwrap(),
            vec![1u8; 2 * PAGE as usize],
            "nothing copied back to the origin"
        );
    }
    // The access is still held, and its exact END does what an END does.
    assert_eq!(
        b.sync(&u, 0, 2 * PAGE, rw | sf::END, 0).unwrap(),
        Status::Ok
    );
    assert_eq!(host.info(&u).unwrap().write_generation, 1);
    assert_eq!(
        a.read_buffer(&origin, 0, 2 * PAGE).unwrap(),
        vec![2u8; 2 * PAGE as usize]
    );

    // The same on the control socket: a sub-range END of a host write access.
    host.begin(&u, 0, 100, Access::Write, None).unwrap();
    host.write(&u, 0, &[3u8; 100]).unwrap();
    match host.end(&u, 0, 50, Access::Write) {
        Err(ClientError::Status(Status::NotHeld)) => {}
        other => panic!("END of a sub-range: {other:?}"),
    }
    assert_eq!(host.info(&u).unwrap().write_generation, 1, "no write ended");
    host.end(&u, 0, 100, Access::Write).unwrap();
    assert_eq!(host.info(&u).unwrap().write_generation, 2);
}

/// control_protocol, `list-with-payload-answered-ok`: LIST takes an empty payload; one with a
/// payload was answered OK although the protocol answers every payload of the wrong size with
/// INVALID_REQUEST (docs/control-protocol.md section 3). The connection stays usable.
#[test]
fn list_with_a_payload_is_invalid_request() {
    let d = daemon();
    let mut host = Client::connect(d.control_socket()).unwrap();
    let r = host.call(op::LIST, &[b"x"], None).unwrap();
    assert_eq!(r.status, Status::InvalidRequest);
    assert!(r.payload.is_empty());
    let r = host.call(op::LIST, &[&[0u8; 80]], None).unwrap();
    assert_eq!(r.status, Status::InvalidRequest);
    assert!(host.list().unwrap().is_empty(), "still serving");
}

/// request_decode, `parked-answer-after-reset` (timing-dependent there; made deterministic
/// here): a parked START whose bound expired had its answer checked against the device epoch and
/// then written; a reset between the two let the answer land in the rings the driver set up
/// after the reset — a used element for a chain the new driver never submitted. Now the reset
/// waits for an answer in progress, and an answer checks the epoch under the same lock.
///
/// The test parks a START, holds the request queue's lock so that the expiring answer stops
/// right before it marks the chain used, resets the device, and sets up the rings again as a
/// front-end does after a reset. The new used ring must stay empty.
#[test]
fn answer_of_a_parked_start_never_lands_in_rings_set_up_after_a_reset() {
    const QSIZE: u16 = 16;
    const DESC: u64 = 0x1000;
    const AVAIL: u64 = 0x2000;
    const USED: u64 = 0x3000;
    const REQ: u64 = 0x4000;
    const RESP: u64 = 0x5000;
    let registry = Registry::new(Limits {
        sync_timeout: Duration::from_millis(20),
        ..Limits::default()
    })
    .unwrap();
    let mem = GuestMem::from_ranges(&[(GuestAddress(0), 0x100000)]).unwrap();
    let atomic = GuestMemoryAtomic::new(mem.clone());
    let backend = DmabufBackend::new(registry.clone(), "vm", atomic.clone()).unwrap();
    backend.acked_features(backend.features());
    let vrings = vec![
        VringRwLock::new(atomic.clone(), QSIZE).unwrap(),
        VringRwLock::new(atomic, QSIZE).unwrap(),
    ];
    let setup = |v: &VringRwLock| {
        mem.write_slice(&[0u8; 0x4000], GuestAddress(DESC)).unwrap();
        v.get_mut().get_queue_mut().reset();
        v.set_queue_size(QSIZE);
        v.set_queue_info(DESC, AVAIL, USED).unwrap();
        v.set_queue_ready(true);
        v.set_enabled(true);
    };
    setup(&vrings[0]);

    // The VM's buffer; a host session holds its first page for writing, so a START waits.
    let create = CreateRequest {
        size: PAGE,
        flags: CreateFlags::default(),
        segments: SegmentList::from_pairs([(0x10000, PAGE)]).unwrap(),
    };
    let uuid = registry.create(backend.vm(), create).unwrap();
    let host = HostSession::new(&registry);
    host.begin(&HostRange::write(&uuid, 0, PAGE), 0).unwrap();

    // SYNC START (read, bound 20 ms) as one chain: request, then an 8-byte response.
    let mut request = Vec::new();
    request.extend_from_slice(&0x104u32.to_le_bytes());
    request.extend_from_slice(&0u32.to_le_bytes());
    request.extend_from_slice(&uuid);
    for v in [0u64, PAGE] {
        request.extend_from_slice(&v.to_le_bytes());
    }
    request.extend_from_slice(&sf::READ.to_le_bytes());
    request.extend_from_slice(&20u32.to_le_bytes());
    mem.write_slice(&request, GuestAddress(REQ)).unwrap();
    mem.write_slice(&[0xee; 8], GuestAddress(RESP)).unwrap();
    let desc = |addr: u64, len: u32, flags: u16, next: u16| {
        let mut d = Vec::with_capacity(16);
        d.extend_from_slice(&addr.to_le_bytes());
        d.extend_from_slice(&len.to_le_bytes());
        d.extend_from_slice(&flags.to_le_bytes());
        d.extend_from_slice(&next.to_le_bytes());
        d
    };
    mem.write_slice(&desc(REQ, request.len() as u32, 1, 1), GuestAddress(DESC))
        .unwrap();
    mem.write_slice(&desc(RESP, 8, 2, 0), GuestAddress(DESC + 16))
        .unwrap();
    mem.write_slice(&[0, 0, 1, 0, 0, 0], GuestAddress(AVAIL))
        .unwrap();
    backend
        .handle_event(REQUEST_QUEUE, EventSet::IN, &vrings, 0)
        .unwrap();
    let used_idx = || {
        let mut b = [0u8; 2];
        mem.read_slice(&mut b, GuestAddress(USED + 2)).unwrap();
        u16::from_le_bytes(b)
    };
    assert_eq!(used_idx(), 0, "the START waits");

    // Hold the queue: the answer at the bound is written, then waits to mark the chain used.
    let (held_tx, held_rx) = mpsc::channel();
    let (reset_tx, reset_rx) = mpsc::channel::<()>();
    let queue = vrings[0].clone();
    let mem2 = mem.clone();
    let holder = thread::spawn(move || {
        let mut guard = queue.get_mut();
        held_tx.send(()).unwrap();
        // Once the device reset returned, the front-end sets the rings up again (as QEMU does
        // after GET_VRING_BASE) — still holding the lock the answer waits for.
        let reset_returned = reset_rx.recv_timeout(Duration::from_millis(500)).is_ok();
        if reset_returned {
            mem2.write_slice(&[0u8; 0x4000], GuestAddress(DESC))
                .unwrap();
            let q = guard.get_queue_mut();
            q.reset();
            q.set_size(QSIZE);
            q.try_set_desc_table_address(GuestAddress(DESC)).unwrap();
            q.try_set_avail_ring_address(GuestAddress(AVAIL)).unwrap();
            q.try_set_used_ring_address(GuestAddress(USED)).unwrap();
            q.set_ready(true);
        }
        reset_returned
    });
    held_rx.recv().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut b = [0u8; 4];
        mem.read_slice(&mut b, GuestAddress(RESP)).unwrap();
        if u32::from_le_bytes(b) == Status::Timeout as u32 {
            break;
        }
        assert!(Instant::now() < deadline, "the bound never expired");
        thread::sleep(Duration::from_millis(5));
    }

    backend.reset_device();
    let _ = reset_tx.send(());
    let reinitialised = holder.join().unwrap();
    if !reinitialised {
        // The reset waited for the answer to finish in the old rings: set them up now.
        setup(&vrings[0]);
    }
    thread::sleep(Duration::from_millis(100));
    assert_eq!(
        used_idx(),
        0,
        "a used element in rings set up after the reset, for a chain never submitted to them"
    );
    drop(host);
}
