// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The daemon's file descriptors (`docs/security.md`, "The fd budget"): host shares up to
//! `--max-host-buffers` under the usual soft limit of 1024, a clear refusal and a log line when
//! the hard limit is too low, and guests served while the daemon is out of fds.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use dmabuf_client::memfd::sealed_memfd;
use dmabuf_client::{Client, ClientError, ShareFlags, Status};
use dmabuf_harness::{Vm, VmOptions};
use virtio_dmabuf_proto::virtio::sync_flags as sf;

const BIN: &str = env!("CARGO_BIN_EXE_vhost-device-dmabuf");
static NEXT: AtomicU32 = AtomicU32::new(0);

/// The daemon started under `RLIMIT_NOFILE` soft/hard, its log in a file.
struct Daemon {
    child: Child,
    dir: PathBuf,
}

impl Daemon {
    fn start(soft: u64, hard: u64, extra: &[&str]) -> Daemon {
        let dir = std::env::temp_dir().join(format!(
            "dmabuf-fd-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let log = File::create(dir.join("daemon.log")).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg("--socket")
            .arg(format!("vm1={}", dir.join("vm1.sock").display()))
            .arg("--control-socket")
            .arg(dir.join("ctl.sock"))
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let lim = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        // SAFETY: setrlimit is async-signal-safe and reads a struct copied into the closure.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut d = Daemon {
            child: cmd.spawn().unwrap(),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Client::connect(d.ctl()).is_err() {
            assert!(d.child.try_wait().unwrap().is_none(), "{}", d.log());
            assert!(Instant::now() < deadline, "no control socket");
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    fn ctl(&self) -> PathBuf {
        self.dir.join("ctl.sock")
    }

    fn vm(&self) -> Vm {
        Vm::connect(&self.dir.join("vm1.sock"), VmOptions::default()).unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    /// The first log line containing every one of `words`, waited for (bounded).
    fn wait_line(&self, words: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let log = self.log();
            if let Some(l) = log.lines().find(|l| words.iter().all(|w| l.contains(w))) {
                return l.to_owned();
            }
            assert!(Instant::now() < deadline, "no line with {words:?}:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn open_fds(&self) -> u64 {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .unwrap()
            .count() as u64
    }

    /// Set the daemon's soft and hard limits from outside (as `prlimit --pid` does).
    fn prlimit(&self, soft: u64, hard: u64) {
        let lim = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: prlimit on our child with a local struct; no old value asked for.
        let r = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &lim, std::ptr::null_mut()) };
        assert_eq!(r, 0, "prlimit: {}", std::io::Error::last_os_error());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn status<T>(r: Result<T, ClientError>) -> Status {
    match r {
        Ok(_) => Status::Ok,
        Err(ClientError::Status(s)) => s,
        Err(e) => panic!("expected a status, got {e}"),
    }
}

fn share_one(c: &mut Client) -> Status {
    let f = sealed_memfd("fd-test", 4096).unwrap();
    status(c.share(&f, 4096, ShareFlags::default(), &[]))
}

/// A guest creates a buffer, writes it and ends, then releases it.
fn guest_works(vm: &mut Vm) {
    let b = vm.alloc_buffer(8192, true).unwrap();
    let uuid = vm
        .create_buffer(&b, 0)
        .unwrap()
        .expect("CREATE while the daemon is out of fds");
    assert_eq!(vm.sync(&uuid, 0, 8192, sf::WRITE, 0).unwrap(), Status::Ok);
    assert_eq!(
        vm.sync(&uuid, 0, 8192, sf::WRITE | sf::END, 0).unwrap(),
        Status::Ok
    );
    assert_eq!(vm.release(&uuid).unwrap(), Status::Ok);
}

#[test]
fn four_thousand_shares_under_a_soft_limit_of_1024() {
    let d = Daemon::start(1024, 8192, &[]);
    let mut c = Client::connect(d.ctl()).unwrap();
    for i in 0..4096 {
        assert_eq!(share_one(&mut c), Status::Ok, "share {i}: {}", d.log());
    }
    // One fd per share, not two.
    let fds = d.open_fds();
    assert!((4096..4096 + 128).contains(&fds), "{fds} fds open");
    // --max-host-buffers (4096) is the limit now, not the fds.
    assert_eq!(share_one(&mut c), Status::QuotaExceeded);
    let mut vm = d.vm();
    guest_works(&mut vm);
    assert_eq!(c.list().unwrap().len(), 4096);
}

#[test]
fn a_hard_limit_of_1024_refuses_a_share_clearly_and_guests_go_on() {
    let d = Daemon::start(1024, 1024, &[]);
    d.wait_line(&[
        "host shares limited to",
        "RLIMIT_NOFILE soft 1024 hard 1024",
    ]);
    let mut vm = d.vm();
    let mut c = Client::connect(d.ctl()).unwrap();
    let mut ok = 0;
    let refused = loop {
        match share_one(&mut c) {
            Status::Ok => ok += 1,
            s => break s,
        }
        assert!(ok <= 1024, "more shares than fds");
    };
    eprintln!("hard limit 1024: {ok} shares, then {refused:?}");
    assert_eq!(refused, Status::QuotaExceeded, "after {ok} shares");
    assert!(ok >= 650, "only {ok} shares fit in 1024 fds");
    let line = d.wait_line(&["host share refused", "RLIMIT_NOFILE"]);
    eprintln!("{line}");
    // The guest and new clients are served; the refusal repeats, clearly.
    guest_works(&mut vm);
    let mut c2 = Client::connect(d.ctl()).unwrap();
    assert_eq!(c2.list().unwrap().len(), ok);
    assert_eq!(share_one(&mut c2), Status::QuotaExceeded);
    guest_works(&mut vm);
}

#[test]
fn out_of_fds_at_run_time_a_share_is_refused_and_guests_create_and_sync() {
    let d = Daemon::start(1024, 8192, &[]);
    let mut vm = d.vm();
    let mut c = Client::connect(d.ctl()).unwrap();
    assert_eq!(share_one(&mut c), Status::Ok);
    // Not one fd more: every open fd number is at or above the new limit.
    let open = d.open_fds();
    d.prlimit(open.saturating_sub(8), 8192);
    // The fd of a SHARE cannot be received: a clear status, and the connection stays usable.
    assert_eq!(share_one(&mut c), Status::QuotaExceeded);
    assert_eq!(c.list().unwrap().len(), 1);
    eprintln!("{}", d.wait_line(&["dropped", "fd limit"]));
    // A guest's CREATE (random UUIDs need no fd) and SYNC work meanwhile.
    for _ in 0..3 {
        guest_works(&mut vm);
    }
    // Room again: a waiting connection is accepted, shares work.
    d.prlimit(8192, 8192);
    let mut c2 = Client::connect(d.ctl()).unwrap();
    assert_eq!(share_one(&mut c2), Status::Ok);
    assert_eq!(share_one(&mut c), Status::Ok);
    guest_works(&mut vm);
}

#[test]
fn a_connected_vm_stays_within_its_fd_budget() {
    use vhost_device_dmabuf::fds::{BASE_FDS, FDS_PER_CONTROL_CLIENT, FDS_PER_VM};
    let d = Daemon::start(1024, 8192, &[]);
    let idle = d.open_fds();
    assert!(idle <= BASE_FDS + 2, "{idle} fds before any connection");
    let mut vm = d.vm();
    guest_works(&mut vm);
    vm.remap_ram().unwrap();
    guest_works(&mut vm);
    let with_vm = d.open_fds();
    eprintln!("fds: {idle} idle, {with_vm} with a VM connected");
    assert!(
        with_vm - idle <= FDS_PER_VM,
        "a VM took {} fds",
        with_vm - idle
    );
    let mut c = Client::connect(d.ctl()).unwrap();
    c.list().unwrap();
    assert!(d.open_fds() - with_vm <= FDS_PER_CONTROL_CLIENT);
    assert!(Path::new(BIN).exists());
}
