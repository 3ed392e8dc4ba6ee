// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! What sharing a buffer costs, next to the floor no implementation can beat, in the same run.
//!
//! The daemon library runs in this process and serves a harness VM over a real vhost-user Unix
//! socket with real eventfds and memfd guest RAM (the same code as the binary; in-process so the
//! daemon's own copy counters can be read). Ours and the floor are measured in interleaved rounds
//! and reported as medians, because shared machines are noisy (docs/performance.md).
//!
//! `BENCH_ROUNDS` (default 15) scales the run; `BENCH_ONLY=rtt` stops after the round trips,
//! `BENCH_ONLY=scale` runs only the many-VM part (`BENCH_SCALE_VMS`, default 32, with
//! `BENCH_SCALE_BUFFERS` buffers each, default 1000); `BENCH_POLL_US` sets the daemon's polling
//! window (default 32 µs, the daemon's default; 0 measures the daemon without polling).

#[path = "common/extra.rs"]
mod extra;

use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dmabuf_harness::ram::PAGE;
use dmabuf_harness::{Vm, VmOptions};
use dmabuf_sys_util::memfd::sealed_memfd;
use vhost_device_dmabuf::daemon::{bind_vm_socket, serve_vm};
use vhost_device_dmabuf::registry::{
    chain, HostRange, HostSession, Limits, Registry, ShareRequest,
};
use virtio_dmabuf_proto::virtio::sync_flags as sf;
use virtio_dmabuf_proto::Status;
use vmm_sys_util::eventfd::EventFd;

/// A number from the environment, or `default`.
fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

fn median(v: &mut [f64]) -> f64 {
    pct(v, 0.5)
}

/// Two threads bouncing a token through two eventfds: one round trip per iteration, in ns.
struct PingPong {
    to: Arc<EventFd>,
    back: Arc<EventFd>,
    responder: libc::pid_t,
}

/// The calling thread's id.
fn gettid() -> libc::pid_t {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::gettid() }
}

/// Spawn `f` on a thread; returns that thread's id once it runs.
fn spawn_responder(f: impl FnOnce() + Send + 'static) -> libc::pid_t {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(gettid());
        f();
    });
    rx.recv().unwrap()
}

impl PingPong {
    /// The responder sleeps in a blocking read (the floor).
    fn new() -> PingPong {
        let to = Arc::new(EventFd::new(0).unwrap());
        let back = Arc::new(EventFd::new(0).unwrap());
        let (t, b) = (to.clone(), back.clone());
        let responder = spawn_responder(move || loop {
            if t.read().is_err() {
                return;
            }
            if b.write(1).is_err() {
                return;
            }
        });
        PingPong {
            to,
            back,
            responder,
        }
    }

    /// The responder sleeps in `epoll_wait` and then reads the eventfd, as every
    /// vhost-user-backend worker thread does with a kick (informational second floor).
    fn new_epoll() -> PingPong {
        use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
        let to = Arc::new(EventFd::new(0).unwrap());
        let back = Arc::new(EventFd::new(0).unwrap());
        let (t, b) = (to.clone(), back.clone());
        let responder = spawn_responder(move || {
            let ep = Epoll::new().unwrap();
            ep.ctl(
                ControlOperation::Add,
                t.as_raw_fd(),
                EpollEvent::new(EventSet::IN, 0),
            )
            .unwrap();
            let mut evs = [EpollEvent::default(); 1];
            loop {
                if ep.wait(-1, &mut evs).is_err() || t.read().is_err() || b.write(1).is_err() {
                    return;
                }
            }
        });
        PingPong {
            to,
            back,
            responder,
        }
    }

    fn rtt(&self, n: usize, out: &mut Vec<f64>) {
        for _ in 0..n {
            let t = Instant::now();
            self.to.write(1).unwrap();
            self.back.read().unwrap();
            out.push(t.elapsed().as_nanos() as f64);
        }
    }
}

/// Bytes per second of one memcpy of `len` bytes (median of a few, pages pre-faulted).
fn memcpy_bps(src: &[u8], dst: &mut [u8], reps: usize) -> f64 {
    let mut v = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        dst.copy_from_slice(src);
        std::hint::black_box(&dst);
        v.push(src.len() as f64 / t.elapsed().as_secs_f64());
    }
    median(&mut v)
}

/// A shared mapping of a fresh memfd, pre-faulted; unmapped at exit (bench only).
struct SharedMap(*mut u8);

fn shared_map(size: u64) -> SharedMap {
    let file = sealed_memfd("bench-floor", size).unwrap();
    // SAFETY: a new shared mapping of `size` bytes of our own memfd; the result is checked.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            file.as_raw_fd(),
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    SharedMap(p.cast())
}

fn start_daemon(tag: &str) -> (Arc<Registry>, std::path::PathBuf) {
    let registry = Registry::new(Limits {
        sync_timeout: Duration::from_secs(10),
        poll_max: Duration::from_micros(env_or("BENCH_POLL_US", 32)),
        ..Limits::default()
    })
    .unwrap();
    let dir = std::env::temp_dir().join(format!("dmabuf-bench-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("vm.sock");
    let listener = bind_vm_socket(&sock).unwrap();
    let reg = registry.clone();
    std::thread::spawn(move || serve_vm(&reg, "bench", listener));
    (registry, sock)
}

/// Where the two parties of a round trip run.
#[derive(Clone, Copy, PartialEq)]
enum Placement {
    /// Requester (the harness VM, the floor's first thread) on CPU 0, responder (the daemon's
    /// queue worker, the floor's second thread) on CPU 1: a vCPU and a device worker on
    /// separate CPUs, as in a VMM, and the same for ours and the floor.
    Pinned,
    /// Wherever the scheduler puts them (on a small machine it often runs both on one CPU).
    Scheduler,
}

impl Placement {
    fn name(self) -> &'static str {
        match self {
            Placement::Pinned => "requester CPU 0, responder CPU 1",
            Placement::Scheduler => "placed by the scheduler",
        }
    }
}

/// Restrict thread `tid` (0: the caller) to `cpus` (empty: every CPU this process may use).
fn set_affinity(tid: libc::pid_t, cpus: &[usize], all: &libc::cpu_set_t) {
    let mut set = *all;
    if !cpus.is_empty() {
        // SAFETY: CPU_ZERO and CPU_SET on a local, initialised set with in-range indices.
        unsafe {
            libc::CPU_ZERO(&mut set);
            for &c in cpus {
                libc::CPU_SET(c, &mut set);
            }
        }
    }
    // SAFETY: a valid set of the size passed; failure (e.g. a CPU not allowed) is reported.
    let r = unsafe { libc::sched_setaffinity(tid, size_of::<libc::cpu_set_t>(), &set) };
    assert_eq!(r, 0, "sched_setaffinity({tid}, {cpus:?})");
}

/// The CPUs this process may use.
fn allowed_cpus() -> (libc::cpu_set_t, Vec<usize>) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above; the size matches the set.
    let r = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
    assert_eq!(r, 0);
    let cpus = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: index below CPU_SETSIZE, set initialised.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect();
    (set, cpus)
}

/// Ids of this process's threads named `name` (the daemon's queue workers: `vring_worker`).
fn threads_named(name: &str) -> Vec<libc::pid_t> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            (comm.trim_end() == name)
                .then(|| e.file_name().to_str()?.parse().ok())
                .flatten()
        })
        .collect()
}

fn ok(s: Status) {
    assert_eq!(s, Status::Ok);
}

/// The many-VM part: prints its summary line.
fn bench_scale(rounds: usize) {
    let nvms: usize = env_or("BENCH_SCALE_VMS", 32);
    let per_vm: usize = env_or("BENCH_SCALE_BUFFERS", 1000);
    let dir = std::env::temp_dir().join(format!("dmabuf-bench-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    println!("one daemon, {nvms} VMs x {per_vm} buffers (scheduler placement)");
    let (ratio, idle) = extra::scale(&dir, nvms, per_vm, rounds.min(10));
    println!(
        "bench-scale: vms={nvms} buffers={} sync_p50_ratio={ratio:.2} idle_cpu_pct={idle:.2}",
        nvms * per_vm
    );
}

fn main() {
    let rounds: usize = env_or("BENCH_ROUNDS", 15);
    if std::env::var("BENCH_ONLY").as_deref() == Ok("scale") {
        bench_scale(rounds);
        return;
    }
    let (registry, sock) = start_daemon("main");
    // The harness waits like a halted vCPU (a blocking read of the call eventfd), as the
    // floor's threads do.
    let opts = VmOptions {
        ram_size: (3 << 30) + (512 << 20),
        blocking_wait: true,
        ..VmOptions::default()
    };
    let mut vm = Vm::connect(&sock, opts).unwrap();
    println!("virtio-dmabuf benchmarks ({rounds} rounds, medians of rounds; ratios: ours / floor)");
    println!();

    // ---------------------------------------------------------------- round trips
    let buf = vm.alloc_buffer(PAGE, false).unwrap();
    let u = vm.create_buffer(&buf, 0).unwrap().unwrap();
    let pp = PingPong::new();
    let pp_epoll = PingPong::new_epoll();
    let (all_cpus, cpus) = allowed_cpus();
    let workers = threads_named("vring_worker");
    assert!(!workers.is_empty(), "no daemon queue worker thread found");
    let placements = if cpus.len() >= 2 {
        vec![Placement::Pinned, Placement::Scheduler]
    } else {
        println!("(one CPU: nothing to pin)");
        vec![Placement::Scheduler]
    };
    let place = |p: Placement| {
        let (req, resp) = match p {
            Placement::Pinned => (vec![cpus[0]], vec![cpus[1]]),
            Placement::Scheduler => (Vec::new(), Vec::new()),
        };
        set_affinity(0, &req, &all_cpus);
        for &t in workers.iter().chain([&pp.responder, &pp_epoll.responder]) {
            set_affinity(t, &resp, &all_cpus);
        }
    };
    println!("round trips (ns)                          p50        p99");
    let mut summary = None;
    for &placement in &placements {
        place(placement);
        let (mut floor, mut floor_epoll) = (Vec::new(), Vec::new());
        let (mut begin, mut end, mut pair) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            pp.rtt(500, &mut floor);
            pp_epoll.rtt(500, &mut floor_epoll);
            for _ in 0..250 {
                let t0 = Instant::now();
                ok(vm.sync(&u, 0, PAGE, sf::READ, 0).unwrap());
                let t1 = Instant::now();
                ok(vm.sync(&u, 0, PAGE, sf::READ | sf::END, 0).unwrap());
                let t2 = Instant::now();
                begin.push((t1 - t0).as_nanos() as f64);
                end.push((t2 - t1).as_nanos() as f64);
                pair.push((t2 - t0).as_nanos() as f64);
            }
        }
        let mut per_req: Vec<f64> = begin.iter().chain(end.iter()).copied().collect();
        let (f50, f99) = (pct(&mut floor, 0.5), pct(&mut floor, 0.99));
        let (e50, e99) = (pct(&mut floor_epoll, 0.5), pct(&mut floor_epoll, 0.99));
        let (r50, r99) = (pct(&mut per_req, 0.5), pct(&mut per_req, 0.99));
        let (p50, p99) = (pct(&mut pair, 0.5), pct(&mut pair, 0.99));
        let tag = if summary.is_none() {
            ""
        } else {
            "   (informational)"
        };
        println!(" {}:{tag}", placement.name());
        println!("  floor: eventfd ping-pong          {f50:>10.0} {f99:>10.0}");
        println!("  same, responder in epoll_wait     {e50:>10.0} {e99:>10.0}");
        println!(
            "  SYNC request (START or END, 4 KiB){r50:>10.0} {r99:>10.0}   ratio p50 {:.2} p99 {:.2}",
            r50 / f50,
            r99 / f99
        );
        println!(
            "  SYNC START+END pair               {p50:>10.0} {p99:>10.0}   vs 2 floors: p50 {:.2} p99 {:.2}",
            p50 / (2.0 * f50),
            p99 / (2.0 * f99)
        );
        summary.get_or_insert((r50 / f50, r99 / f99));
    }
    let (rtt_p50_ratio, rtt_p99_ratio) = summary.unwrap();
    // The rest runs with the first placement.
    place(placements[0]);
    ok(vm.release(&u).unwrap());
    if std::env::var("BENCH_ONLY").as_deref() == Ok("rtt") {
        println!("bench: rtt_p50_ratio={rtt_p50_ratio:.2} rtt_p99_ratio={rtt_p99_ratio:.2}");
        return;
    }

    // ---------------------------------------------------------------- host-backed sync copies
    println!();
    println!(
        "host-backed sync vs memcpy (GB/s)        memcpy   START READ  ratio    END WRITE  ratio"
    );
    // Also (informational): the requester halt-polls before it sleeps, as a KVM vCPU does by
    // default, which shows the device's own share of a sync without the vCPU's wake-up.
    let kvm_halt_poll = Duration::from_micros(200);
    let mut setups: Vec<(Placement, Duration)> =
        placements.iter().map(|&p| (p, Duration::ZERO)).collect();
    setups.push((placements[0], kvm_halt_poll));
    let mut copy_ratio = None;
    for &(placement, halt_poll) in &setups {
        place(placement);
        vm.set_halt_poll(halt_poll);
        let tag = if copy_ratio.is_none() {
            ""
        } else {
            "   (informational)"
        };
        let waits = if halt_poll.is_zero() {
            ""
        } else {
            ", requester polls 200 us before it sleeps (KVM's default halt_poll_ns)"
        };
        println!(" {}{waits}:{tag}", placement.name());
        let mut ratios = [0f64; 3];
        let mut memfd_floor = [0f64; 3];
        let mut heap_floor = [0f64; 3];
        for (i, &size) in [4096u64, 1 << 20, 64 << 20].iter().enumerate() {
            let file = sealed_memfd("bench-host", size).unwrap();
            let host = registry
                .share(ShareRequest {
                    file: file.try_clone().unwrap(),
                    size,
                    read_only: false,
                    host_only: false,
                    allowed_vms: Vec::new(),
                    owner: "host:bench".into(),
                })
                .unwrap();
            let copy = vm.alloc_buffer(size, false).unwrap();
            ok(vm.attach(&host, &copy).unwrap());
            let src = vec![0x5au8; size as usize];
            let mut dst = vec![0u8; size as usize];
            // The floor is the faster of two memcpys: between heap buffers, and between two
            // shared memfd mappings (4 KiB pages, like guest RAM and host shares).
            let (mf_a, mf_b) = (shared_map(size), shared_map(size));
            let reps = if size > (8 << 20) { 3 } else { 50 };
            let (mut mc, mut rd, mut wr, mut mcf) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for _ in 0..rounds {
                mc.push(memcpy_bps(&src, &mut dst, reps));
                // SAFETY: both mappings are `size` bytes, live until the end of this loop's scope,
                // and not aliased by anything else in this process.
                let (a, b) = unsafe {
                    (
                        std::slice::from_raw_parts(mf_a.0, size as usize),
                        std::slice::from_raw_parts_mut(mf_b.0, size as usize),
                    )
                };
                mcf.push(memcpy_bps(a, b, reps));
                let mut r = Vec::new();
                let mut w = Vec::new();
                for _ in 0..reps {
                    let t = Instant::now();
                    ok(vm.sync(&host, 0, size, sf::READ, 0).unwrap());
                    r.push(size as f64 / t.elapsed().as_secs_f64());
                    ok(vm.sync(&host, 0, size, sf::READ | sf::END, 0).unwrap());
                    ok(vm.sync(&host, 0, size, sf::WRITE, 0).unwrap());
                    let t = Instant::now();
                    ok(vm.sync(&host, 0, size, sf::WRITE | sf::END, 0).unwrap());
                    w.push(size as f64 / t.elapsed().as_secs_f64());
                }
                rd.push(median(&mut r));
                wr.push(median(&mut w));
            }
            let (heap, r, w) = (median(&mut mc), median(&mut rd), median(&mut wr));
            memfd_floor[i] = median(&mut mcf);
            heap_floor[i] = heap;
            let m = heap.max(memfd_floor[i]);
            ratios[i] = r / m;
            let label = match size {
                4096 => "4 KiB",
                0x100000 => "1 MiB",
                _ => "64 MiB",
            };
            println!(
                "  {label:<36} {:>8.2} {:>11.2} {:>6.2} {:>12.2} {:>6.2}",
                m / 1e9,
                r / 1e9,
                r / m,
                w / 1e9,
                w / m
            );
            ok(vm.release(&host).unwrap());
            registry.revoke(&host).unwrap();
            drop(file);
        }
        println!(
            "  memcpy floor = the faster of heap to heap {:.2} / {:.2} / {:.2} GB/s and memfd to memfd {:.2} / {:.2} / {:.2} GB/s",
            heap_floor[0] / 1e9,
            heap_floor[1] / 1e9,
            heap_floor[2] / 1e9,
            memfd_floor[0] / 1e9,
            memfd_floor[1] / 1e9,
            memfd_floor[2] / 1e9
        );
        copy_ratio.get_or_insert(ratios);
    }
    let copy_ratio = copy_ratio.unwrap();
    place(placements[0]);
    vm.set_halt_poll(Duration::ZERO);

    // ---------------------------------------------------------------- registration
    println!();
    let n_pages: u64 = 262_144;
    let scattered = vm.alloc_buffer(1 << 30, true).unwrap();
    let base = vm.pages.contiguous(n_pages).unwrap();
    let contiguous: Vec<(u64, u64)> = (0..n_pages).map(|i| (base + i * PAGE, PAGE)).collect();
    let (mut ns_scattered, mut ns_contig) = (Vec::new(), Vec::new());
    let (mut heap_s, mut heap_c) = (0, 0);
    let req_s = Vm::create_request(1 << 30, 0, &scattered.segs);
    let req_c = Vm::create_request(1 << 30, 0, &contiguous);
    let uuid_of = |resp: Vec<u8>| -> [u8; 16] {
        assert_eq!(dmabuf_harness::status_of(&resp).unwrap(), Status::Ok);
        resp[8..24].try_into().unwrap()
    };
    for _ in 0..rounds.min(7) {
        // The 4 MiB list is written to guest memory first: only the device is timed.
        let staged = vm.stage(&req_s, 24, 1 << 20).unwrap();
        let t = Instant::now();
        let a = uuid_of(vm.send_staged(&staged).unwrap());
        ns_scattered.push(t.elapsed().as_nanos() as f64 / n_pages as f64);
        let staged = vm.stage(&req_c, 24, 1 << 20).unwrap();
        let t = Instant::now();
        let b = uuid_of(vm.send_staged(&staged).unwrap());
        ns_contig.push(t.elapsed().as_nanos() as f64 / n_pages as f64);
        heap_s = registry.segment_heap_bytes(&a).unwrap();
        heap_c = registry.segment_heap_bytes(&b).unwrap();
        ok(vm.release(&a).unwrap());
        ok(vm.release(&b).unwrap());
    }
    let ns_per_page = median(&mut ns_scattered);
    println!("registering 1 GiB as 262,144 x 4 KiB pages (CREATE round trip, 4 MiB segment list)");
    println!("  scattered pages:  {ns_per_page:>7.1} ns/page   daemon memory for the list: {heap_s} bytes");
    println!(
        "  contiguous pages: {:>7.1} ns/page   daemon memory for the list: {heap_c} bytes",
        median(&mut ns_contig)
    );

    // ---------------------------------------------------------------- host consumers of guest pages
    println!();
    let size: u64 = 64 << 20;
    let gbuf = vm.alloc_buffer(size, false).unwrap();
    vm.write_buffer(&gbuf, 0, &vec![0x33; size as usize])
        .unwrap();
    let gu = vm.create_buffer(&gbuf, 0).unwrap().unwrap();
    let session = HostSession::new(&registry);
    let whole = HostRange::read(&gu, 0, size);
    let mut sink = vec![0u8; size as usize];
    let before = registry.stats.copied_bytes.load(Ordering::Relaxed);
    let (mut inproc, mut onecopy, mut mc) = (Vec::new(), Vec::new(), Vec::new());
    let target = sealed_memfd("bench-target", size).unwrap();
    let src = vec![0x5au8; size as usize];
    for _ in 0..rounds.min(7) {
        mc.push(memcpy_bps(&src, &mut sink, 3));
        session.begin(&whole, 0).unwrap();
        let t = Instant::now();
        // The consumer reads the guest's pages in place (here: a checksum pass over them).
        let sum = session
            .with_range(&whole, |slices| {
                let mut acc = 0u64;
                for s in slices {
                    let p = s.ptr_guard();
                    let bytes = s.len();
                    // One byte per page: the pages are reached in place, nothing is copied.
                    for off in (0..bytes).step_by(4096) {
                        // SAFETY: `off < bytes`, inside the slice, which stays mapped while `p`
                        // lives; a volatile read of one byte.
                        acc += u64::from(unsafe { std::ptr::read_volatile(p.as_ptr().add(off)) });
                    }
                }
                acc
            })
            .unwrap();
        inproc.push(size as f64 / t.elapsed().as_secs_f64());
        std::hint::black_box(sum);
        session.end(&whole).unwrap();
    }
    let copied_in_process = registry.stats.copied_bytes.load(Ordering::Relaxed) - before;
    // The one-copy fallback: the range copied into a memfd the client supplies, mapped per
    // call (READ_INTO) and kept mapped by the connection (SET_TARGET + READ_TARGET), each
    // round against a memcpy of the same size.
    let ctl_domain = registry.add_host_domain();
    let kept = registry.read_target(target.try_clone().unwrap()).unwrap();
    let (mut kept_bps, mut mc2, mut mcf2) = (Vec::new(), Vec::new(), Vec::new());
    // The floor as for the copies above: the faster of heap to heap and memfd to memfd.
    let (mf_a, mf_b) = (shared_map(size), shared_map(size));
    // SAFETY: both mappings are `size` bytes, live until the end of `main`, and not aliased by
    // anything else in this process.
    let (fa, fb) = unsafe {
        (
            std::slice::from_raw_parts(mf_a.0, size as usize),
            std::slice::from_raw_parts_mut(mf_b.0, size as usize),
        )
    };
    for _ in 0..rounds.min(7) {
        registry.host_begin(ctl_domain, &whole, 0).unwrap();
        let t = Instant::now();
        let s = registry.host_read_into(ctl_domain, &whole, target.try_clone().unwrap(), 0);
        onecopy.push(size as f64 / t.elapsed().as_secs_f64());
        s.unwrap();
        mc2.push(memcpy_bps(&src, &mut sink, 3));
        mcf2.push(memcpy_bps(fa, fb, 3));
        // Three reads per round, like the memcpy floor's three copies, median of them.
        let mut r = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            let s = registry.host_read_into_target(ctl_domain, &whole, &kept, 0);
            r.push(size as f64 / t.elapsed().as_secs_f64());
            s.unwrap();
        }
        kept_bps.push(median(&mut r));
        registry.host_end(ctl_domain, &whole).unwrap();
    }
    let udmabuf = match registry.export_udmabuf(&gu) {
        Ok(f) => format!("available (fd {})", f.as_raw_fd()),
        Err(e) => format!("unavailable here ({}: {})", e.status(), chain(&e)),
    };
    let m = median(&mut mc);
    println!("host consumer of a 64 MiB guest buffer          GB/s   vs memcpy   bytes the daemon copied");
    println!(
        "  (a) in process, in place (page-touch pass) {:>8.2}      —        {copied_in_process}",
        median(&mut inproc) / 1e9
    );
    println!("  (b) udmabuf export                          {udmabuf}");
    let oc = median(&mut onecopy);
    println!(
        "  (c) one copy, memfd mapped per call        {:>8.2}   {:>6.2}       {size} per read",
        oc / 1e9,
        oc / m
    );
    let m2 = median(&mut mc2).max(median(&mut mcf2));
    let kb = median(&mut kept_bps);
    let fallback_ratio = kb / m2;
    println!(
        "  (d) one copy, memfd kept mapped (target) {:>8.2}   {:>6.2}       {size} per read",
        kb / 1e9,
        fallback_ratio
    );
    println!(
        "  floor: memcpy 64 MiB                       {:>8.2}   (for (d): {:.2}, the faster of \
         heap to heap and memfd to memfd in the same rounds)",
        m / 1e9,
        m2 / 1e9
    );
    drop(kept);
    registry.remove_domain(ctl_domain);

    // ---------------------------------------------------------------- mapped import
    println!();
    let dir = std::env::temp_dir().join(format!("dmabuf-bench-mapped-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mapped_copied = extra::mapped_copied_bytes(&registry, &dir);
    println!(
        "mapped import of a 64 MiB host buffer, 3 x (START READ, END, START WRITE, END): the \
         daemon copied {mapped_copied} bytes"
    );
    println!();
    bench_scale(rounds);

    println!();
    println!(
        "bench: rtt_p50_ratio={rtt_p50_ratio:.2} rtt_p99_ratio={rtt_p99_ratio:.2} copy_ratio_4k={:.3} copy_ratio_1m={:.2} copy_ratio_64m={:.2} ns_per_page={ns_per_page:.1} copied_bytes_guest_read={copied_in_process} mapped_copied_bytes={mapped_copied} fallback_copy_ratio_64m={fallback_ratio:.2}",
        copy_ratio[0], copy_ratio[1], copy_ratio[2]
    );
}
