// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! A debugging aid for the shared memory region with a real VMM: serves one VM socket like the
//! daemon (`--shm-size` 2 MiB) and, once the guest driver is up, runs a timed script of
//! mappings through the back-end channel, logging each step and every change of the memory
//! table the VMM sends. A guest reads the BAR meanwhile (e.g. busybox `devmem`) to see what
//! the region shows.
//!
//! ```text
//! shm_probe SOCKET
//! ```
//!
//! Script (seconds after the driver acked its features): 2: map a 64 KiB memfd of 0xa5 at 0;
//! 12: unmap it (after the guest's reset, if it reset the device meanwhile); 14: unmap a range
//! that was never mapped; 16: map a memfd of 0x5a at 0.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dmabuf_sys_util::memfd::sealed_memfd_with;
use vhost::vhost_user::Listener;
use vhost_device_dmabuf::registry::{Limits, Registry};
use vhost_device_dmabuf::shm::channel::ShmOp;
use vhost_device_dmabuf::shm::VmShm;
use vhost_device_dmabuf::vhu_dmabuf::DmabufBackend;
use vhost_user_backend::VhostUserDaemon;
use vm_memory::{GuestAddressSpace, GuestMemoryAtomic, GuestMemoryBackend, GuestMemoryRegion};

fn log(t0: Instant, what: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "shm_probe {:>7.3}s: {what}",
        t0.elapsed().as_secs_f64()
    );
}

fn map(shm: &VmShm, byte: u8) -> Result<(), String> {
    let f = sealed_memfd_with("probe", &[byte; 65536]).map_err(|e| e.to_string())?;
    shm.channel
        .call(vec![ShmOp::Map {
            file: f,
            fd_offset: 0,
            shm_offset: 0,
            len: 65536,
            writable: true,
        }])
        .map_err(|(_, e)| format!("{e:?}"))
}

fn unmap(shm: &VmShm, offset: u64) -> Result<(), String> {
    shm.channel
        .call(vec![ShmOp::Unmap {
            shm_offset: offset,
            len: 65536,
            generation: 0,
        }])
        .map_err(|(_, e)| format!("{e:?}"))
}

fn main() {
    env_logger::init();
    let sock = PathBuf::from(std::env::args().nth(1).expect("SOCKET"));
    let _ = std::fs::remove_file(&sock);
    let limits = Limits {
        shm_size: 2 << 20,
        ..Limits::default()
    };
    let registry = Registry::new(limits).expect("registry");
    let mut listener = Listener::new(&sock, true).expect("listen");
    let mem = GuestMemoryAtomic::new(vhost_device_dmabuf::memory::GuestMem::new());
    let backend = DmabufBackend::new(registry, "probe", mem.clone()).expect("backend");
    let vm = backend.vm().clone();
    let t0 = Instant::now();
    let watch = mem.clone();
    std::thread::spawn(move || {
        let mut last = Vec::new();
        loop {
            let now: Vec<(u64, u64, Option<u64>)> = watch
                .memory()
                .iter()
                .map(|r| {
                    (
                        r.start_addr().0,
                        r.len(),
                        r.file_offset().map(|f| f.start()),
                    )
                })
                .collect();
            if now != last {
                let text: Vec<String> = now
                    .iter()
                    .map(|(g, l, f)| format!("{g:#x}+{l:#x}@{f:?}"))
                    .collect();
                log(t0, &format!("memory table: {}", text.join(" ")));
                last = now;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    std::thread::spawn(move || {
        while !(vm.shm.mappable()
            && vm
                .shm
                .driver_negotiated(virtio_dmabuf_proto::virtio::VIRTIO_DMABUF_F_IMPORT))
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        let t1 = Instant::now();
        log(
            t0,
            "region negotiated, back-end channel attached, driver acked",
        );
        let at = |s: u64| {
            let d = Duration::from_secs(s).saturating_sub(t1.elapsed());
            std::thread::sleep(d);
        };
        at(2);
        log(t0, &format!("map 0xa5 at 0: {:?}", map(&vm.shm, 0xa5)));
        at(12);
        log(
            t0,
            &format!("unmap 0 after the guest's reset: {:?}", unmap(&vm.shm, 0)),
        );
        log(t0, &format!("channel usable: {}", vm.shm.channel.usable()));
        at(14);
        log(
            t0,
            &format!(
                "unmap never-mapped 0x100000: {:?}",
                unmap(&vm.shm, 0x100000)
            ),
        );
        log(t0, &format!("channel usable: {}", vm.shm.channel.usable()));
        at(16);
        log(t0, &format!("map 0x5a at 0: {:?}", map(&vm.shm, 0x5a)));
    });
    let mut daemon = VhostUserDaemon::new("probe".into(), backend.clone(), mem).expect("daemon");
    daemon.start(&mut listener).expect("start");
    log(t0, "front-end connected");
    let r = daemon.wait();
    log(t0, &format!("front-end gone: {r:?}"));
    backend.signal_exit();
    backend.disconnect();
}
