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

/// Requests at every spacing around the polling window (none, inside it, just past it, long
/// after): each must be seen, whether the worker was polling, going to sleep or asleep. A
/// notification lost between the end of polling and the sleep would time the request out.
#[test]
fn requests_at_every_spacing_with_and_without_polling() {
    for poll_us in ["0", "32", "1000"] {
        let d = DaemonProcess::spawn(
            Path::new(env!("CARGO_BIN_EXE_vhost-device-dmabuf")),
            &["vm1"],
            &["--poll-max-us", poll_us],
        )
        .unwrap();
        let mut vm = Vm::connect(&d.vm_socket("vm1"), VmOptions::default()).unwrap();
        let b = vm.alloc_buffer(4096, false).unwrap();
        let uuid = vm.create_buffer(&b, 0).unwrap().unwrap();
        let gaps_us = [0u64, 0, 1, 3, 10, 25, 31, 33, 40, 64, 100, 500, 1100, 3000];
        for i in 0..1200 {
            let gap = gaps_us[(i * 5) % gaps_us.len()];
            if gap > 0 {
                std::thread::sleep(std::time::Duration::from_micros(gap));
            }
            let end = if i % 2 == 1 { sf::END } else { 0 };
            assert_eq!(
                vm.sync(&uuid, 0, 4096, sf::READ | end, 0).unwrap(),
                Status::Ok,
                "poll-max-us {poll_us}, request {i} after {gap} us"
            );
        }
        assert_eq!(vm.release(&uuid).unwrap(), Status::Ok);
    }
}

#[test]
fn poll_window_out_of_range_is_refused() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vhost-device-dmabuf"))
        .args(["--socket", "/nonexistent/x.sock", "--poll-max-us", "1001"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--poll-max-us"), "{err}");
}
