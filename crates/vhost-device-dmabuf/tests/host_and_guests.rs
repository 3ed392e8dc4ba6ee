// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The fencing matrix across the boundary: host clients (control socket) against guests, a
//! host client that dies holding access, host revocation of a guest's own buffer.

use std::path::Path;
use std::time::Duration;

use dmabuf_client::{Access, Client};
use dmabuf_harness::ram::PAGE;
use dmabuf_harness::{DaemonProcess, Pending, Vm, VmOptions};
use virtio_dmabuf_proto::virtio::{event, sync_flags as sf};
use virtio_dmabuf_proto::Status;

fn daemon() -> DaemonProcess {
    DaemonProcess::spawn(
        Path::new(env!("CARGO_BIN_EXE_vhost-device-dmabuf")),
        &["a", "b"],
        &["--sync-timeout-ms", "4000"],
    )
    .unwrap()
}

fn assert_parked(vm: &mut Vm, p: &Pending) {
    assert!(vm.is_parked(p).unwrap(), "the START should still wait");
}

#[test]
fn host_versus_guests() {
    let d = daemon();
    let mut a = Vm::connect(&d.vm_socket("a"), VmOptions::default()).unwrap();
    let mut b = Vm::connect(&d.vm_socket("b"), VmOptions::default()).unwrap();
    let mut host = Client::connect(d.control_socket()).unwrap();
    let buf = a.alloc_buffer(2 * PAGE, true).unwrap();
    a.write_buffer(&buf, 0, &[7u8; 2 * PAGE as usize]).unwrap();
    let u = a.create_buffer(&buf, 0).unwrap().unwrap();
    let copy = b.alloc_buffer(2 * PAGE, false).unwrap();
    assert_eq!(b.attach(&u, &copy).unwrap(), Status::Ok);

    // Host write vs guest read: the guest waits until the host ends, then sees the host's bytes.
    host.begin(&u, 0, PAGE, Access::Write, None).unwrap();
    let ar = a.sync_async(&u, 100, 1, sf::READ, 0).unwrap();
    let br = b.sync_async(&u, 0, PAGE, sf::READ, 0).unwrap();
    assert_parked(&mut a, &ar);
    assert_parked(&mut b, &br);
    // A disjoint guest range is not held back.
    assert_eq!(b.sync(&u, PAGE, PAGE, sf::WRITE, 0).unwrap(), Status::Ok);
    host.write(&u, 0, b"host bytes").unwrap();
    host.end(&u, 0, PAGE, Access::Write).unwrap();
    assert_eq!(
        a.wait_pending(&ar, Duration::from_secs(5)).unwrap(),
        Status::Ok
    );
    assert_eq!(
        b.wait_pending(&br, Duration::from_secs(5)).unwrap(),
        Status::Ok
    );
    assert_eq!(a.read_buffer(&buf, 0, 10).unwrap(), b"host bytes");
    assert_eq!(b.read_buffer(&copy, 0, 10).unwrap(), b"host bytes");

    // Guest reads share with a host read; a host write waits for them and times out.
    host.begin(&u, 0, 16, Access::Read, None).unwrap();
    assert!(host
        .begin(&u, 0, 16, Access::Write, Some(Duration::from_millis(200)))
        .is_err());
    host.end(&u, 0, 16, Access::Read).unwrap();
    assert_eq!(
        a.sync(&u, 100, 1, sf::READ | sf::END, 0).unwrap(),
        Status::Ok
    );
    assert_eq!(
        b.sync(&u, 0, PAGE, sf::READ | sf::END, 0).unwrap(),
        Status::Ok
    );

    // Guest B's write END reaches the owner's pages; the host waits for it with WAIT_WRITE.
    let gen = host.info(&u).unwrap().write_generation;
    b.write_buffer(&copy, PAGE, b"from b").unwrap();
    assert_eq!(
        b.sync(&u, PAGE, PAGE, sf::WRITE | sf::END, 0).unwrap(),
        Status::Ok
    );
    assert!(
        host.wait_write(&u, gen, Some(Duration::from_secs(5)))
            .unwrap()
            > gen
    );
    assert_eq!(host.read_fenced(&u, PAGE, 6, None).unwrap(), b"from b");

    // A host client dies holding write access: the waiting guest proceeds.
    let mut doomed = Client::connect(d.control_socket()).unwrap();
    doomed.begin(&u, 0, 8, Access::Write, None).unwrap();
    let aw = a.sync_async(&u, 0, 8, sf::READ, 0).unwrap();
    assert_parked(&mut a, &aw);
    drop(doomed);
    assert_eq!(
        a.wait_pending(&aw, Duration::from_secs(5)).unwrap(),
        Status::Ok
    );
    assert_eq!(a.sync(&u, 0, 8, sf::READ | sf::END, 0).unwrap(), Status::Ok);

    // The host revokes the guest's own buffer: owner and importer are told, both get REVOKED
    // until they release the UUID.
    host.revoke(&u).unwrap();
    for vm in [&mut a, &mut b] {
        let ev = vm.wait_events(Duration::from_secs(5)).unwrap();
        assert!(ev
            .iter()
            .any(|e| e.uuid == u && u32::from_le(e.type_) == event::REVOKED));
        assert_eq!(vm.sync(&u, 0, 1, sf::READ, 0).unwrap(), Status::Revoked);
        assert_eq!(vm.release(&u).unwrap(), Status::Ok);
        assert_eq!(vm.sync(&u, 0, 1, sf::READ, 0).unwrap(), Status::NotFound);
    }
    assert!(host.info(&u).is_err());
}

#[test]
fn access_lists_and_read_only_host_shares() {
    let d = daemon();
    let mut a = Vm::connect(&d.vm_socket("a"), VmOptions::default()).unwrap();
    let mut b = Vm::connect(&d.vm_socket("b"), VmOptions::default()).unwrap();
    let mut host = Client::connect(d.control_socket()).unwrap();
    let data: Vec<u8> = (0..PAGE).map(|i| (i % 251) as u8).collect();
    let ro = dmabuf_client::ShareFlags {
        read_only: true,
        host_only: false,
    };
    let (u, _memfd) = host.share_bytes(&data, ro, &["a"]).unwrap();
    assert_eq!(
        b.lookup(&u).unwrap(),
        Err(Status::NotFound),
        "not on the access list"
    );
    let copy = a.alloc_buffer(PAGE, true).unwrap();
    assert_eq!(a.attach(&u, &copy).unwrap(), Status::Ok);
    assert_eq!(
        a.sync(&u, 0, PAGE, sf::WRITE, 0).unwrap(),
        Status::PermissionDenied
    );
    assert_eq!(a.sync(&u, 0, PAGE, sf::READ, 0).unwrap(), Status::Ok);
    assert_eq!(
        a.read_buffer(&copy, 0, PAGE).unwrap(),
        data,
        "byte for byte"
    );
}

/// A physically contiguous guest buffer, as the guest driver allocates it for
/// `VIRTIO_DMABUF_ALLOC_CONTIGUOUS` (an 8 MiB 1920x1080 XRGB frame for a camera or display
/// importer), is one segment on the wire: the daemon accepts it and keeps it as one run, the
/// host reads it byte for byte, another VM's copy (in scattered pages) gets it byte for byte,
/// and a host write lands in the owner's one run.
#[test]
fn a_multi_mib_contiguous_buffer_stays_one_segment() {
    let d = daemon();
    let mut a = Vm::connect(&d.vm_socket("a"), VmOptions::default()).unwrap();
    let mut b = Vm::connect(&d.vm_socket("b"), VmOptions::default()).unwrap();
    let mut host = Client::connect(d.control_socket()).unwrap();
    let size = 1920 * 1080 * 4;
    let buf = a.alloc_buffer(size, false).unwrap();
    assert_eq!(buf.segs.len(), 1, "the harness made one run");
    assert_eq!(buf.segs[0].1, size);
    let data: Vec<u8> = (0..size)
        .map(|i| (i.wrapping_mul(131) ^ (i >> 12)) as u8)
        .collect();
    a.write_buffer(&buf, 0, &data).unwrap();
    let u = a.create_buffer(&buf, 0).unwrap().unwrap();
    let info = host.info(&u).unwrap();
    assert_eq!(info.segments, 1, "one segment on the wire stays one run");
    assert_eq!(info.size, size);
    assert_eq!(host.read_fenced(&u, 0, size, None).unwrap(), data);

    // Another VM imports it into a copy of separate pages: byte for byte at its read START.
    assert_eq!(b.lookup(&u).unwrap(), Ok((size, 0)));
    let copy = b.alloc_buffer(size, true).unwrap();
    assert_eq!(b.attach(&u, &copy).unwrap(), Status::Ok);
    assert_eq!(b.sync(&u, 0, size, sf::READ, 0).unwrap(), Status::Ok);
    assert_eq!(b.read_buffer(&copy, 0, size).unwrap(), data);
    assert_eq!(
        b.sync(&u, 0, size, sf::READ | sf::END, 0).unwrap(),
        Status::Ok
    );

    // The host writes a range that straddles the 4 MiB mark: the owner sees it in its run.
    let (off, text) = ((4 << 20) - 5, b"across the middle");
    host.begin(&u, off, text.len() as u64, Access::Write, None)
        .unwrap();
    host.write(&u, off, text).unwrap();
    host.end(&u, off, text.len() as u64, Access::Write).unwrap();
    assert_eq!(
        a.read_buffer(&buf, off, text.len() as u64).unwrap(),
        text.to_vec()
    );
    assert_eq!(host.info(&u).unwrap().segments, 1);
    assert_eq!(b.release(&u).unwrap(), Status::Ok);
    assert_eq!(a.release(&u).unwrap(), Status::Ok);
    assert!(host.info(&u).is_err());
}
