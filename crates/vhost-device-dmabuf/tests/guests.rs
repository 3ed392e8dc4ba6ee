// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Guests sharing buffers through one daemon: data at fence points, byte for byte; the fencing
//! matrix between guests; resets, disconnects, remapped memory; a 1 GiB registration.

use std::path::Path;
use std::time::{Duration, Instant};

use dmabuf_harness::ram::PAGE;
use dmabuf_harness::{DaemonProcess, Vm, VmOptions};
use virtio_dmabuf_proto::virtio::{buf_flags, event, sync_flags as sf};
use virtio_dmabuf_proto::Status;

fn daemon(vms: &[&str], extra: &[&str]) -> DaemonProcess {
    let mut args = vec!["--sync-timeout-ms", "4000"];
    args.extend_from_slice(extra);
    DaemonProcess::spawn(
        Path::new(env!("CARGO_BIN_EXE_vhost-device-dmabuf")),
        vms,
        &args,
    )
    .unwrap()
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

/// The device took the request from the ring and has not answered it: it is parked.
fn assert_parked(vm: &mut Vm, p: &dmabuf_harness::Pending) {
    assert!(vm.is_parked(p).unwrap(), "the START should still wait");
}

#[test]
fn cross_vm_data_moves_only_at_fence_points_and_only_the_range() {
    let d = daemon(&["a", "b"], &[]);
    let mut a = Vm::connect(&d.vm_socket("a"), VmOptions::default()).unwrap();
    let mut b = Vm::connect(&d.vm_socket("b"), VmOptions::default()).unwrap();
    let size = 5 * PAGE + 123;
    let buf = a.alloc_buffer(size, true).unwrap();
    let data = pattern(7, size as usize);
    assert_eq!(
        a.sync(&[0; 16], 0, 1, sf::WRITE, 0).unwrap(),
        Status::NotFound
    );
    let u = a.create_buffer(&buf, 0).unwrap().unwrap();
    assert_eq!(a.sync(&u, 0, size, sf::WRITE, 0).unwrap(), Status::Ok);
    a.write_buffer(&buf, 0, &data).unwrap();
    assert_eq!(
        a.sync(&u, 0, size, sf::WRITE | sf::END, 0).unwrap(),
        Status::Ok
    );

    assert_eq!(b.lookup(&u).unwrap(), Ok((size, 0)));
    let copy = b.alloc_buffer(size, true).unwrap();
    assert_eq!(b.attach(&u, &copy).unwrap(), Status::Ok);
    // Nothing moved yet.
    assert_eq!(
        b.read_buffer(&copy, 0, size).unwrap(),
        vec![0u8; size as usize]
    );

    // START READ of a range straddling pages: exactly that range arrives.
    let (off, len) = (PAGE - 10, 2 * PAGE + 20);
    assert_eq!(b.sync(&u, off, len, sf::READ, 0).unwrap(), Status::Ok);
    let got = b.read_buffer(&copy, 0, size).unwrap();
    assert_eq!(
        &got[off as usize..(off + len) as usize],
        &data[off as usize..(off + len) as usize]
    );
    assert!(
        got[..off as usize].iter().all(|&x| x == 0),
        "bytes before the range untouched"
    );
    assert!(
        got[(off + len) as usize..].iter().all(|&x| x == 0),
        "bytes after the range untouched"
    );
    assert_eq!(
        b.sync(&u, off, len, sf::READ | sf::END, 0).unwrap(),
        Status::Ok
    );

    // B writes part of a range and ends its write: only that range goes back, and the bytes B
    // did not change in it are the origin's (the START brought them in first).
    let (woff, wlen) = (3 * PAGE + 5, 100);
    assert_eq!(b.sync(&u, woff, PAGE, sf::WRITE, 0).unwrap(), Status::Ok);
    let new = pattern(99, wlen as usize);
    b.write_buffer(&copy, woff, &new).unwrap();
    // Scribble outside the synced range in B's copy: must not travel.
    b.write_buffer(&copy, 0, &[0xee; 64]).unwrap();
    assert_eq!(
        b.sync(&u, woff, PAGE, sf::WRITE | sf::END, 0).unwrap(),
        Status::Ok
    );
    let mut expect = data.clone();
    expect[woff as usize..(woff + wlen) as usize].copy_from_slice(&new);
    assert_eq!(
        a.read_buffer(&buf, 0, size).unwrap(),
        expect,
        "byte for byte on the owner"
    );
}

#[test]
fn guest_fencing_matrix() {
    let d = daemon(&["a", "b"], &[]);
    let mut a = Vm::connect(&d.vm_socket("a"), VmOptions::default()).unwrap();
    let mut b = Vm::connect(&d.vm_socket("b"), VmOptions::default()).unwrap();
    let buf = a.alloc_buffer(4 * PAGE, false).unwrap();
    let u = a.create_buffer(&buf, 0).unwrap().unwrap();
    let copy = b.alloc_buffer(4 * PAGE, false).unwrap();
    assert_eq!(b.attach(&u, &copy).unwrap(), Status::Ok);

    // Reads share.
    assert_eq!(a.sync(&u, 0, PAGE, sf::READ, 0).unwrap(), Status::Ok);
    assert_eq!(b.sync(&u, 0, PAGE, sf::READ, 0).unwrap(), Status::Ok);
    // A write waits for the other domain's overlapping read...
    let w = a.sync_async(&u, 100, 10, sf::WRITE, 0).unwrap();
    // (A's own read does not block A's write; B's does.)
    assert_parked(&mut a, &w);
    // ...and is granted when that read ends.
    assert_eq!(
        b.sync(&u, 0, PAGE, sf::READ | sf::END, 0).unwrap(),
        Status::Ok
    );
    assert_eq!(
        a.wait_pending(&w, Duration::from_secs(5)).unwrap(),
        Status::Ok
    );
    // Disjoint ranges do not interact, even write/write.
    assert_eq!(
        b.sync(&u, 2 * PAGE, PAGE, sf::WRITE, 0).unwrap(),
        Status::Ok
    );
    // Overlapping write vs write waits; with a short bound it times out, and holds nothing.
    let t0 = Instant::now();
    assert_eq!(
        b.sync(&u, 0, PAGE, sf::WRITE, 200).unwrap(),
        Status::Timeout
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(190),
        "timed out early: {:?}",
        t0.elapsed()
    );
    assert_eq!(
        b.sync(&u, 0, PAGE, sf::WRITE | sf::END, 0).unwrap(),
        Status::NotHeld
    );
    // A read waits for the other domain's write.
    let r = b.sync_async(&u, 105, 1, sf::READ, 0).unwrap();
    assert_parked(&mut b, &r);
    assert_eq!(
        a.sync(&u, 100, 10, sf::WRITE | sf::END, 0).unwrap(),
        Status::Ok
    );
    assert_eq!(
        b.wait_pending(&r, Duration::from_secs(5)).unwrap(),
        Status::Ok
    );
    assert_eq!(
        a.sync(&u, 0, PAGE, sf::READ | sf::END, 0).unwrap(),
        Status::Ok
    );
    assert_eq!(
        b.sync(&u, 105, 1, sf::READ | sf::END, 0).unwrap(),
        Status::Ok
    );
    assert_eq!(
        b.sync(&u, 2 * PAGE, PAGE, sf::WRITE | sf::END, 0).unwrap(),
        Status::Ok
    );
}

#[test]
fn waiters_are_granted_in_arrival_order_and_writers_not_starved() {
    let d = daemon(&["a", "b", "c"], &[]);
    let mut a = Vm::connect(&d.vm_socket("a"), VmOptions::default()).unwrap();
    let mut b = Vm::connect(&d.vm_socket("b"), VmOptions::default()).unwrap();
    let mut c = Vm::connect(&d.vm_socket("c"), VmOptions::default()).unwrap();
    let buf = a.alloc_buffer(PAGE, false).unwrap();
    let u = a.create_buffer(&buf, 0).unwrap().unwrap();
    for vm in [&mut b, &mut c] {
        let copy = vm.alloc_buffer(PAGE, false).unwrap();
        assert_eq!(vm.attach(&u, &copy).unwrap(), Status::Ok);
    }
    assert_eq!(a.sync(&u, 0, PAGE, sf::READ, 0).unwrap(), Status::Ok);
    let bw = b.sync_async(&u, 0, PAGE, sf::WRITE, 0).unwrap();
    assert_parked(&mut b, &bw);
    // A later reader queues behind the waiting writer although it is compatible with A's read.
    let cr = c.sync_async(&u, 0, 16, sf::READ, 0).unwrap();
    assert_parked(&mut c, &cr);
    assert_eq!(
        a.sync(&u, 0, PAGE, sf::READ | sf::END, 0).unwrap(),
        Status::Ok
    );
    assert_eq!(
        b.wait_pending(&bw, Duration::from_secs(5)).unwrap(),
        Status::Ok
    );
    assert_parked(&mut c, &cr);
    assert_eq!(
        b.sync(&u, 0, PAGE, sf::WRITE | sf::END, 0).unwrap(),
        Status::Ok
    );
    assert_eq!(
        c.wait_pending(&cr, Duration::from_secs(5)).unwrap(),
        Status::Ok
    );
}

#[test]
fn disconnect_releases_accesses_and_fails_nothing_else() {
    let d = daemon(&["a", "b", "c"], &[]);
    let mut a = Vm::connect(&d.vm_socket("a"), VmOptions::default()).unwrap();
    let mut b = Vm::connect(&d.vm_socket("b"), VmOptions::default()).unwrap();
    let mut c = Vm::connect(&d.vm_socket("c"), VmOptions::default()).unwrap();
    let buf = a.alloc_buffer(PAGE, false).unwrap();
    let u = a.create_buffer(&buf, 0).unwrap().unwrap();
    let copy = b.alloc_buffer(PAGE, false).unwrap();
    assert_eq!(b.attach(&u, &copy).unwrap(), Status::Ok);
    // B (an importer) holds write; A waits; B's QEMU dies.
    assert_eq!(b.sync(&u, 0, PAGE, sf::WRITE, 0).unwrap(), Status::Ok);
    let aw = a.sync_async(&u, 0, PAGE, sf::READ, 0).unwrap();
    assert_parked(&mut a, &aw);
    b.disconnect();
    assert_eq!(
        a.wait_pending(&aw, Duration::from_secs(5)).unwrap(),
        Status::Ok
    );
    // The daemon serves the others and accepts B again on the same socket.
    assert_eq!(
        a.sync(&u, 0, PAGE, sf::READ | sf::END, 0).unwrap(),
        Status::Ok
    );
    let mut b = Vm::connect(&d.vm_socket("b"), VmOptions::default()).unwrap();
    let copy = b.alloc_buffer(PAGE, false).unwrap();
    assert_eq!(b.attach(&u, &copy).unwrap(), Status::Ok);
    // C waits on a buffer whose owner goes away: REVOKED, not a hang.
    let copy = c.alloc_buffer(PAGE, false).unwrap();
    assert_eq!(c.attach(&u, &copy).unwrap(), Status::Ok);
    assert_eq!(a.sync(&u, 0, PAGE, sf::WRITE, 0).unwrap(), Status::Ok);
    let cw = c.sync_async(&u, 0, PAGE, sf::READ, 0).unwrap();
    assert_parked(&mut c, &cw);
    a.disconnect();
    assert_eq!(
        c.wait_pending(&cw, Duration::from_secs(5)).unwrap(),
        Status::Revoked
    );
    let ev = c.wait_events(Duration::from_secs(5)).unwrap();
    assert_eq!(ev.len(), 1);
    assert_eq!(u32::from_le(ev[0].type_), event::REVOKED);
    assert_eq!(ev[0].uuid, u);
    assert_eq!(c.sync(&u, 0, PAGE, sf::READ, 0).unwrap(), Status::Revoked);
    assert_eq!(
        c.release(&u).unwrap(),
        Status::Ok,
        "a revoked import is still released"
    );
    assert_eq!(c.release(&u).unwrap(), Status::NotFound);
    assert_eq!(c.sync(&u, 0, PAGE, sf::READ, 0).unwrap(), Status::NotFound);
}

#[test]
fn device_reset_releases_the_guests_buffers() {
    let d = daemon(&["a", "b"], &["--max-buffers", "2"]);
    let mut a = Vm::connect(&d.vm_socket("a"), VmOptions::default()).unwrap();
    let mut b = Vm::connect(&d.vm_socket("b"), VmOptions::default()).unwrap();
    let b1 = a.alloc_buffer(PAGE, false).unwrap();
    let b2 = a.alloc_buffer(PAGE, false).unwrap();
    let u1 = a.create_buffer(&b1, 0).unwrap().unwrap();
    let _u2 = a.create_buffer(&b2, 0).unwrap().unwrap();
    assert_eq!(a.create_buffer(&b2, 0).unwrap(), Err(Status::QuotaExceeded));
    let copy = b.alloc_buffer(PAGE, false).unwrap();
    assert_eq!(b.attach(&u1, &copy).unwrap(), Status::Ok);
    // A parked START of A's, pending across the reset, is dropped with the old rings.
    assert_eq!(b.sync(&u1, 0, 1, sf::WRITE, 0).unwrap(), Status::Ok);
    let _stale = a.sync_async(&u1, 0, 1, sf::READ, 0).unwrap();
    a.reset().unwrap();
    let ev = b.wait_events(Duration::from_secs(5)).unwrap();
    assert_eq!(ev.iter().filter(|e| e.uuid == u1).count(), 1);
    assert_eq!(
        b.sync(&u1, 0, 1, sf::WRITE | sf::END, 0).unwrap(),
        Status::Revoked
    );
    // After the reset A's quota is free again and UUIDs are new.
    let n1 = a.create_buffer(&b1, 0).unwrap().unwrap();
    let n2 = a.create_buffer(&b2, 0).unwrap().unwrap();
    assert!(n1 != u1 && n2 != u1);
    assert_eq!(a.lookup(&u1).unwrap(), Err(Status::NotFound));
}

#[test]
fn remapped_guest_memory_is_never_read_through_a_stale_mapping() {
    let d = daemon(&["a", "b"], &[]);
    let mut a = Vm::connect(&d.vm_socket("a"), VmOptions::default()).unwrap();
    let mut b = Vm::connect(&d.vm_socket("b"), VmOptions::default()).unwrap();
    let buf = a.alloc_buffer(2 * PAGE, true).unwrap();
    let u = a.create_buffer(&buf, 0).unwrap().unwrap();
    a.write_buffer(&buf, 0, &[0xaa; 2 * PAGE as usize]).unwrap();
    a.remap_ram().unwrap();
    // The new RAM holds different bytes at the same guest-physical pages.
    a.write_buffer(&buf, 0, &[0xbb; 2 * PAGE as usize]).unwrap();
    let copy = b.alloc_buffer(2 * PAGE, false).unwrap();
    assert_eq!(b.attach(&u, &copy).unwrap(), Status::Ok);
    assert_eq!(b.sync(&u, 0, 2 * PAGE, sf::READ, 0).unwrap(), Status::Ok);
    assert_eq!(
        b.read_buffer(&copy, 0, 2 * PAGE).unwrap(),
        vec![0xbb; 2 * PAGE as usize]
    );
    // A still works on the new table.
    assert_eq!(a.lookup(&u).unwrap(), Ok((2 * PAGE, buf_flags::OWN)));
}

#[test]
fn one_gib_of_separate_pages_registers() {
    let d = daemon(&["a", "b"], &[]);
    // 262,144 pages with a gap after each: 2 GiB of (sparse) guest RAM.
    let opts = VmOptions {
        ram_size: (2 << 30) + (64 << 20),
        ..VmOptions::default()
    };
    let mut a = Vm::connect(&d.vm_socket("a"), opts.clone()).unwrap();
    let buf = a.alloc_buffer(1 << 30, true).unwrap();
    assert_eq!(buf.segs.len(), 262_144);
    let u = a.create_buffer(&buf, 0).unwrap().unwrap();
    assert_eq!(a.lookup(&u).unwrap(), Ok((1 << 30, buf_flags::OWN)));
    // The last page is reachable: B reads it through a fence.
    a.write_buffer(&buf, (1 << 30) - 8, b"lastpage").unwrap();
    let mut b = Vm::connect(&d.vm_socket("b"), opts).unwrap();
    let copy = b.alloc_buffer(1 << 30, false).unwrap();
    assert_eq!(b.attach(&u, &copy).unwrap(), Status::Ok);
    assert_eq!(
        b.sync(&u, (1 << 30) - PAGE, PAGE, sf::READ, 0).unwrap(),
        Status::Ok
    );
    assert_eq!(b.read_buffer(&copy, (1 << 30) - 8, 8).unwrap(), b"lastpage");
    assert_eq!(a.release(&u).unwrap(), Status::Ok);
}

#[test]
fn no_cross_vm_policy() {
    let d = daemon(&["a", "b"], &["--no-cross-vm"]);
    let mut a = Vm::connect(&d.vm_socket("a"), VmOptions::default()).unwrap();
    let mut b = Vm::connect(&d.vm_socket("b"), VmOptions::default()).unwrap();
    let buf = a.alloc_buffer(PAGE, false).unwrap();
    let u = a.create_buffer(&buf, 0).unwrap().unwrap();
    assert_eq!(b.lookup(&u).unwrap(), Err(Status::NotFound));
}
