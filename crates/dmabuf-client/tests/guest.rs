// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Host clients and a (simulated) guest on the same daemon: a guest-backed buffer read and
//! written by the host under arbitration, and a host share imported by the guest.

mod common;

use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::process::Command;
use std::time::Duration;

use common::{status_of, Daemon};
use dmabuf_client::dma_buf::{begin_cpu_access, end_cpu_access, CpuAccess};
use dmabuf_client::mapping::ReadMapping;
use dmabuf_client::memfd::sealed_memfd;
use dmabuf_client::pattern::{fnv1a64, pattern};
use dmabuf_client::{format_uuid, Access, ShareFlags, Status};
use dmabuf_harness::{Vm, VmOptions};
use virtio_dmabuf_proto::virtio::{buf_flags, sync_flags as sf};

const PAGE: u64 = 4096;
const SHORT: Option<Duration> = Some(Duration::from_millis(200));

#[test]
fn host_client_reads_and_writes_a_guest_buffer_under_arbitration() {
    let d = Daemon::with_sync_timeout(30_000);
    let mut vm = Vm::connect(&d.path("vm1.sock"), VmOptions::default()).unwrap();
    let size = 5 * PAGE + 100;
    let gb = vm.alloc_buffer(size, true).unwrap();
    let data = pattern(21, 0, size as usize);
    vm.write_buffer(&gb, 0, &data).unwrap();
    let uuid = vm.create_buffer(&gb, 0).unwrap().unwrap();

    let mut c = d.client();
    let info = c.info(&uuid).unwrap();
    assert_eq!(info.owner, "vm1");
    assert_eq!(info.size, size);
    assert!(!info.flags.host_backed);
    assert!(info.segments >= 1);

    // Socket path and READ_INTO path see the guest's bytes.
    assert!(c.read_fenced(&uuid, 0, size, None).unwrap() == data);
    let target = sealed_memfd("into", size).unwrap();
    c.fenced(&uuid, 0, size, Access::Read, None, |c| {
        c.read_into(&uuid, 0, size, &target, 0)
    })
    .unwrap();
    let mut got = vec![0u8; size as usize];
    target.read_exact_at(&mut got, 0).unwrap();
    assert!(got == data);

    // EXPORT: a udmabuf where the host has one, UNSUPPORTED otherwise.
    match c.export_udmabuf(&uuid) {
        Ok(f) => {
            c.begin(&uuid, 0, size, Access::Read, None).unwrap();
            let m = ReadMapping::new(&f, size as usize).unwrap();
            begin_cpu_access(f.as_fd(), CpuAccess::Read).unwrap();
            let mut seen = vec![0u8; size as usize];
            m.read_at(0, &mut seen).unwrap();
            end_cpu_access(f.as_fd(), CpuAccess::Read).unwrap();
            c.end(&uuid, 0, size, Access::Read).unwrap();
            assert!(seen == data);
        }
        Err(e) => assert_eq!(e.status(), Some(Status::Unsupported), "{e}"),
    }

    // The guest holds write: the host waits (and times out with a short bound).
    assert_eq!(vm.sync(&uuid, 0, PAGE, sf::WRITE, 0).unwrap(), Status::Ok);
    assert_eq!(
        status_of(c.begin(&uuid, 10, 10, Access::Read, SHORT)),
        Status::Timeout
    );
    c.begin(&uuid, PAGE, PAGE, Access::Read, SHORT).unwrap();
    c.end(&uuid, PAGE, PAGE, Access::Read).unwrap();
    vm.write_buffer(&gb, 10, b"guest").unwrap();
    let g0 = c.info(&uuid).unwrap().write_generation;
    assert_eq!(
        vm.sync(&uuid, 0, PAGE, sf::WRITE | sf::END, 0).unwrap(),
        Status::Ok
    );
    assert_eq!(c.wait_write(&uuid, g0, SHORT).unwrap(), g0 + 1);
    assert_eq!(c.read_fenced(&uuid, 10, 5, SHORT).unwrap(), b"guest");

    // The host writes the guest's pages in place.
    c.write_fenced(&uuid, PAGE - 2, b"host!", None).unwrap();
    assert_eq!(
        vm.sync(&uuid, 0, 2 * PAGE, sf::READ, 0).unwrap(),
        Status::Ok
    );
    assert_eq!(vm.read_buffer(&gb, PAGE - 2, 5).unwrap(), b"host!");
    assert_eq!(
        vm.sync(&uuid, 0, 2 * PAGE, sf::READ | sf::END, 0).unwrap(),
        Status::Ok
    );

    // dmabufctl takes the best path this host has.
    let o = Command::new(env!("CARGO_BIN_EXE_dmabufctl"))
        .args(["--socket", d.ctl.to_str().unwrap(), "read"])
        .args([&format_uuid(&uuid), "--via", "auto", "--crc"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("path=udmabuf") || err.contains("path=memfd"),
        "{err}"
    );
    let now = c.read_fenced(&uuid, 0, size, None).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("fnv1a64={:016x} len={size}\n", fnv1a64(&now))
    );

    // The guest releases it: the host's next request finds nothing.
    assert_eq!(vm.release(&uuid).unwrap(), Status::Ok);
    assert_eq!(status_of(c.info(&uuid)), Status::NotFound);
}

#[test]
fn guest_imports_host_shares_as_the_share_flags_allow() {
    let d = Daemon::start();
    let mut vm = Vm::connect(&d.path("vm1.sock"), VmOptions::default()).unwrap();
    let mut c = d.client();
    let data = pattern(5, 0, 2 * PAGE as usize);
    let (open, m1) = c.share_bytes(&data, ShareFlags::default(), &[]).unwrap();
    let (named, _m2) = c
        .share_bytes(&data, ShareFlags::default(), &["vm1"])
        .unwrap();
    let (other, _m3) = c
        .share_bytes(&data, ShareFlags::default(), &["vm9"])
        .unwrap();
    let host_only = ShareFlags {
        read_only: false,
        host_only: true,
    };
    let (hidden, _m4) = c.share_bytes(&data, host_only, &[]).unwrap();
    let read_only = ShareFlags {
        read_only: true,
        host_only: false,
    };
    let (ro, _m5) = c.share_bytes(&data, read_only, &[]).unwrap();

    for u in [open, named, ro] {
        let (size, flags) = vm.lookup(&u).unwrap().unwrap();
        assert_eq!(size, 2 * PAGE);
        assert_ne!(flags & buf_flags::HOST_BACKED, 0);
    }
    assert_ne!(vm.lookup(&ro).unwrap().unwrap().1 & buf_flags::READ_ONLY, 0);
    assert_eq!(vm.lookup(&other).unwrap(), Err(Status::NotFound));
    assert_eq!(vm.lookup(&hidden).unwrap(), Err(Status::NotFound));

    // The guest imports one and reads the host's bytes at its fence.
    let copy = vm.alloc_buffer(2 * PAGE, true).unwrap();
    assert_eq!(vm.attach(&open, &copy).unwrap(), Status::Ok);
    assert_eq!(c.info(&open).unwrap().importers, 1);
    c.write_fenced(&open, 0, b"fresh", None).unwrap();
    assert_eq!(vm.sync(&open, 0, PAGE, sf::READ, 0).unwrap(), Status::Ok);
    let mut expect = b"fresh".to_vec();
    expect.push(data[5]);
    assert_eq!(vm.read_buffer(&copy, 0, 6).unwrap(), expect);
    assert_eq!(
        vm.sync(&open, 0, PAGE, sf::READ | sf::END, 0).unwrap(),
        Status::Ok
    );
    // The guest writes its copy back at END; the host sees it in its memfd and over the socket.
    assert_eq!(vm.sync(&open, PAGE, 10, sf::WRITE, 0).unwrap(), Status::Ok);
    vm.write_buffer(&copy, PAGE, b"from guest").unwrap();
    assert_eq!(
        vm.sync(&open, PAGE, 10, sf::WRITE | sf::END, 0).unwrap(),
        Status::Ok
    );
    assert_eq!(c.read_fenced(&open, PAGE, 10, None).unwrap(), b"from guest");
    let mut in_memfd = [0u8; 10];
    m1.read_exact_at(&mut in_memfd, PAGE).unwrap();
    assert_eq!(&in_memfd, b"from guest");

    // Revoking detaches the importer.
    c.revoke(&open).unwrap();
    assert_eq!(vm.sync(&open, 0, 1, sf::READ, 0).unwrap(), Status::Revoked);
}
