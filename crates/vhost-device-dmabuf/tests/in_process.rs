// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Access path (a): a host consumer linked with the daemon library reads a guest's buffer in
//! place. The daemon's own instrumentation must count zero copied bytes.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use dmabuf_harness::ram::PAGE;
use dmabuf_harness::{Vm, VmOptions};
use vhost_device_dmabuf::daemon::{bind_vm_socket, serve_vm};
use vhost_device_dmabuf::registry::{HostRange, HostSession, Limits, Registry};
use virtio_dmabuf_proto::virtio::sync_flags as sf;
use virtio_dmabuf_proto::Status;

#[test]
fn in_process_consumer_sees_guest_pages_without_a_copy() {
    let registry = Registry::new(Limits {
        sync_timeout: Duration::from_secs(3),
        ..Limits::default()
    })
    .unwrap();
    let dir = std::env::temp_dir().join(format!("dmabuf-inproc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("vm1.sock");
    let listener = bind_vm_socket(&sock).unwrap();
    let reg = Arc::clone(&registry);
    std::thread::spawn(move || serve_vm(&reg, "vm1", listener));

    let mut vm = Vm::connect(&sock, VmOptions::default()).unwrap();
    let size = 64 * PAGE;
    let buf = vm.alloc_buffer(size, true).unwrap();
    let data: Vec<u8> = (0..size).map(|i| (i * 7 % 253) as u8).collect();
    vm.write_buffer(&buf, 0, &data).unwrap();
    let uuid = vm.create_buffer(&buf, 0).unwrap().unwrap();

    let session = HostSession::new(&registry);
    // The guest holds write access: the host's read waits and, bounded, times out.
    assert_eq!(vm.sync(&uuid, 0, size, sf::WRITE, 0).unwrap(), Status::Ok);
    let whole = HostRange::read(&uuid, 0, size);
    assert_eq!(
        session.begin(&whole, 100).map_err(|e| e.status()),
        Err(Status::Timeout)
    );
    assert_eq!(
        session.with_range(&whole, |_| ()).map_err(|e| e.status()),
        Err(Status::NotHeld)
    );
    assert_eq!(
        vm.sync(&uuid, 0, size, sf::WRITE | sf::END, 0).unwrap(),
        Status::Ok
    );

    let before = registry.stats.copied_bytes.load(Ordering::Relaxed);
    session.begin(&whole, 0).unwrap();
    let seen = session
        .with_range(&whole, |slices| {
            // 64 scattered pages: one slice per page, each pointing into guest RAM.
            assert_eq!(slices.len(), 64);
            let mut v = vec![0u8; size as usize];
            let mut at = 0;
            for s in slices {
                at += s.copy_to(&mut v[at..]);
            }
            v
        })
        .unwrap();
    session.end(&whole).unwrap();
    assert_eq!(seen, data, "byte for byte");
    assert_eq!(
        registry.stats.copied_bytes.load(Ordering::Relaxed) - before,
        0,
        "zero copies in the daemon"
    );

    // Writing in place is seen by the guest; a write held by the host blocks the guest.
    let hello = HostRange::write(&uuid, 10, 5);
    session.begin(&hello, 0).unwrap();
    let p = vm.sync_async(&uuid, 0, PAGE, sf::READ, 0).unwrap();
    assert!(
        vm.is_parked(&p).unwrap(),
        "the guest's read waits for the host's write"
    );
    session
        .with_range(&hello, |s| s[0].copy_from(b"hello"))
        .unwrap();
    session.end(&hello).unwrap();
    assert_eq!(
        vm.wait_pending(&p, Duration::from_secs(5)).unwrap(),
        Status::Ok
    );
    assert_eq!(vm.read_buffer(&buf, 10, 5).unwrap(), b"hello");
    assert_eq!(
        vm.sync(&uuid, 0, PAGE, sf::READ | sf::END, 0).unwrap(),
        Status::Ok
    );
    // Dropping a session releases what it held.
    session.begin(&HostRange::write(&uuid, 0, 1), 0).unwrap();
    drop(session);
    assert_eq!(vm.sync(&uuid, 0, 1, sf::WRITE, 0).unwrap(), Status::Ok);
    let _ = std::fs::remove_dir_all(&dir);
}
