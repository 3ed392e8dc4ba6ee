// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The parts of the benchmark added with mapped imports: the bytes the daemon copies for a
//! mapped import, and one daemon serving many VMs (SYNC latency against one VM in the same run,
//! and the daemon's CPU while every VM is idle).

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dmabuf_harness::ram::PAGE;
use dmabuf_harness::shm::MemUpdates;
use dmabuf_harness::{Vm, VmOptions};
use dmabuf_sys_util::memfd::sealed_memfd_with;
use vhost_device_dmabuf::daemon::{bind_vm_socket, serve_vm};
use vhost_device_dmabuf::registry::{Limits, Registry, ShareRequest};
use virtio_dmabuf_proto::virtio::sync_flags as sf;
use virtio_dmabuf_proto::Status;

fn ok(s: Status) {
    assert_eq!(s, Status::Ok, "request failed");
}

/// Serve VM `name` of `registry` on a socket in `dir`; returns the socket.
fn serve(registry: &Arc<Registry>, dir: &Path, name: &str) -> std::path::PathBuf {
    let sock = dir.join(format!("{name}.sock"));
    let listener = bind_vm_socket(&sock).unwrap();
    let reg = registry.clone();
    let n = name.to_owned();
    std::thread::spawn(move || serve_vm(&reg, &n, listener));
    sock
}

/// A harness VM (playing QEMU 11.1 with shared memory) maps a 64 MiB host buffer and syncs
/// it for reading and writing, reading and writing the bytes in place; returns the bytes the
/// daemon's copy routines counted meanwhile (the claim: 0).
pub fn mapped_copied_bytes(registry: &Arc<Registry>, dir: &Path) -> u64 {
    let sock = serve(registry, dir, "mapped");
    let opts = VmOptions {
        shm: Some(MemUpdates::AfterReply),
        ..VmOptions::default()
    };
    let mut vm = Vm::connect(&sock, opts).unwrap();
    let size: u64 = 64 << 20;
    let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let file = sealed_memfd_with("bench-mapped", &data).unwrap();
    let uuid = registry
        .share(ShareRequest {
            file,
            size,
            read_only: false,
            host_only: false,
            allowed_vms: Vec::new(),
            owner: "host:bench".into(),
        })
        .unwrap();
    let before = registry.stats.copied_bytes.load(Ordering::Relaxed);
    let m = vm.map(&uuid).unwrap().unwrap();
    let mut probe = vec![0u8; 4096];
    for _ in 0..3 {
        ok(vm.sync(&uuid, 0, size, sf::READ, 0).unwrap());
        vm.shm()
            .unwrap()
            .read(m.offset + size - 4096, &mut probe)
            .unwrap();
        assert_eq!(probe[..], data[(size - 4096) as usize..], "bytes in place");
        ok(vm.sync(&uuid, 0, size, sf::READ | sf::END, 0).unwrap());
        ok(vm.sync(&uuid, 0, size, sf::WRITE, 0).unwrap());
        assert!(vm
            .shm()
            .unwrap()
            .write(m.offset, b"written in place")
            .unwrap());
        ok(vm.sync(&uuid, 0, size, sf::WRITE | sf::END, 0).unwrap());
    }
    let copied = registry.stats.copied_bytes.load(Ordering::Relaxed) - before;
    ok(vm.release(&uuid).unwrap());
    registry.revoke(&uuid).unwrap();
    copied
}

fn p50(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// CPU time (user + system) of this whole process so far.
fn process_cpu() -> Duration {
    let mut ru: libc::rusage = libc::rusage {
        ru_utime: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
        ru_stime: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
        ru_maxrss: 0,
        ru_ixrss: 0,
        ru_idrss: 0,
        ru_isrss: 0,
        ru_minflt: 0,
        ru_majflt: 0,
        ru_nswap: 0,
        ru_inblock: 0,
        ru_oublock: 0,
        ru_msgsnd: 0,
        ru_msgrcv: 0,
        ru_nsignals: 0,
        ru_nvcsw: 0,
        ru_nivcsw: 0,
    };
    // SAFETY: getrusage writes into the struct we own; RUSAGE_SELF covers every thread.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| {
        Duration::from_secs(tv.tv_sec as u64) + Duration::from_micros(tv.tv_usec as u64)
    };
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// SYNC START + END round trips on VM `i % vms.len()`'s buffers in turn; each request's time.
fn syncs(vms: &mut [(Vm, Vec<[u8; 16]>)], n: usize, out: &mut Vec<f64>) {
    let count = vms.len();
    for k in 0..n {
        let (vm, bufs) = &mut vms[k % count];
        let u = bufs[(k / count) % bufs.len()];
        let t0 = Instant::now();
        ok(vm.sync(&u, 0, PAGE, sf::READ, 0).unwrap());
        let t1 = Instant::now();
        ok(vm.sync(&u, 0, PAGE, sf::READ | sf::END, 0).unwrap());
        out.push((t1 - t0).as_nanos() as f64);
        out.push(t1.elapsed().as_nanos() as f64);
    }
}

fn connect(registry: &Arc<Registry>, dir: &Path, i: usize, per_vm: usize) -> (Vm, Vec<[u8; 16]>) {
    let opts = VmOptions {
        ram_size: 32 << 20,
        queue_size: 64,
        ..VmOptions::default()
    };
    let sock = serve(registry, dir, &format!("scale{i}"));
    let mut vm = Vm::connect(&sock, opts).unwrap();
    let mut bufs = Vec::with_capacity(per_vm);
    for _ in 0..per_vm {
        let b = vm.alloc_buffer(PAGE, false).unwrap();
        bufs.push(vm.create_buffer(&b, 0).unwrap().unwrap());
    }
    (vm, bufs)
}

/// One daemon, `nvms` VMs of `per_vm` one-page buffers each. Returns (the SYNC p50 of VM 0
/// while the other VMs are connected with their buffers / its p50 while it is alone, measured
/// before the others connect and again after they left; the daemon's CPU while every VM is
/// idle, in % of one core). Also printed: every VM sending in turn (informational).
pub fn scale(dir: &Path, nvms: usize, per_vm: usize, rounds: usize) -> (f64, f64) {
    let registry = Registry::new(Limits::default()).unwrap();
    let mut vm0 = vec![connect(&registry, dir, 0, per_vm)];
    let (mut alone, mut crowd, mut turns) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        syncs(&mut vm0, 200, &mut alone);
    }
    let mut others: Vec<(Vm, Vec<[u8; 16]>)> = (1..nvms)
        .map(|i| connect(&registry, dir, i, per_vm))
        .collect();
    // Idle: every VM connected with its buffers, nobody sending. The polling windows shrink
    // after the last request; then the daemon should sleep.
    std::thread::sleep(Duration::from_millis(300));
    let (c0, t0) = (process_cpu(), Instant::now());
    std::thread::sleep(Duration::from_secs(3));
    let idle_pct = (process_cpu() - c0).as_secs_f64() / t0.elapsed().as_secs_f64() * 100.0;
    for _ in 0..rounds {
        syncs(&mut vm0, 200, &mut crowd);
    }
    others.insert(0, vm0.remove(0));
    for _ in 0..rounds {
        syncs(&mut others, 200, &mut turns);
    }
    let first = others.remove(0);
    drop(others);
    let mut vm0 = vec![first];
    for _ in 0..rounds {
        syncs(&mut vm0, 200, &mut alone);
    }
    let ratio = p50(&mut crowd) / p50(&mut alone);
    println!(
        "  SYNC request p50 of VM 0: alone {:.1} µs, with {} more VMs of {per_vm} buffers {:.1} \
         µs (ratio {ratio:.2}); every VM in turn {:.1} µs (informational: no VM's next request \
         comes within its polling window)",
        p50(&mut alone) / 1e3,
        nvms - 1,
        p50(&mut crowd) / 1e3,
        p50(&mut turns) / 1e3
    );
    println!("  daemon CPU while all {nvms} VMs are idle: {idle_pct:.2}% of one core");
    (ratio, idle_pct)
}
