// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! First contact: the daemon binary, one harness VM, every request once.

use std::path::Path;

use dmabuf_harness::{DaemonProcess, Vm, VmOptions};
use virtio_dmabuf_proto::virtio::{buf_flags, sync_flags as sf};
use virtio_dmabuf_proto::Status;

fn daemon(vms: &[&str]) -> DaemonProcess {
    DaemonProcess::spawn(
        Path::new(env!("CARGO_BIN_EXE_vhost-device-dmabuf")),
        vms,
        &["--sync-timeout-ms", "3000"],
    )
    .unwrap()
}

#[test]
fn every_request_once() {
    let d = daemon(&["vm1"]);
    let mut vm = Vm::connect(&d.vm_socket("vm1"), VmOptions::default()).unwrap();
    let cfg = vm.config().unwrap();
    assert_eq!(cfg.sync_timeout_ms, 3000);
    assert_eq!(cfg.max_segments, 1 << 18);

    let b = vm.alloc_buffer(3 * 4096, true).unwrap();
    let uuid = vm.create_buffer(&b, 0).unwrap().unwrap();
    assert_eq!(uuid[6] >> 4, 4, "version 4 UUID");
    let (size, flags) = vm.lookup(&uuid).unwrap().unwrap();
    assert_eq!(size, 3 * 4096);
    assert_eq!(flags, buf_flags::OWN);
    assert_eq!(vm.sync(&uuid, 0, 4096, sf::WRITE, 0).unwrap(), Status::Ok);
    assert_eq!(
        vm.sync(&uuid, 0, 4096, sf::WRITE | sf::END, 0).unwrap(),
        Status::Ok
    );
    assert_eq!(
        vm.sync(&uuid, 0, 4096, sf::WRITE | sf::END, 0).unwrap(),
        Status::NotHeld
    );
    let other = vm.alloc_buffer(3 * 4096, false).unwrap();
    assert_eq!(vm.attach(&uuid, &other).unwrap(), Status::AlreadyExists);
    assert_eq!(vm.release(&uuid).unwrap(), Status::Ok);
    assert_eq!(vm.release(&uuid).unwrap(), Status::NotFound);
    assert_eq!(vm.lookup(&uuid).unwrap(), Err(Status::NotFound));
}
