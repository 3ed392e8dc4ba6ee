// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The sandbox (`docs/security.md`, "The sandbox").
//!
//! The filter and the rulesets are the daemon's own (`vhost_device_dmabuf::sandbox`): each
//! forbidden call is made by a child process — this test binary run again with
//! `SANDBOX_CHILD=<call>` — that first installs exactly what the daemon installs, and the parent
//! checks how the child ended. The daemon itself is checked running: `/proc/<pid>/status` shows
//! the filter, no_new_privs and no capabilities, and it serves guests and host clients.

use std::fs::File;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use dmabuf_client::memfd::sealed_memfd;
use dmabuf_client::{Client, ShareFlags};
use dmabuf_harness::{DaemonProcess, Vm, VmOptions};
use vhost_device_dmabuf::sandbox::{self, landlock, namespace, seccomp, FsSandbox, SeccompMode};
use virtio_dmabuf_proto::virtio::sync_flags as sf;
use virtio_dmabuf_proto::Status;

const BIN: &str = env!("CARGO_BIN_EXE_vhost-device-dmabuf");

/// Run this binary's `child` test with `SANDBOX_CHILD=what`; its status and stderr.
fn run_child(what: &str, arg: Option<&Path>) -> (ExitStatus, String) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env("SANDBOX_CHILD", what)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(a) = arg {
        cmd.env("SANDBOX_ARG", a);
    }
    let out = cmd.output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn install(mode: SeccompMode) {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let f = seccomp::filters(mode, pid).unwrap().unwrap();
    seccomp::install(&f).unwrap();
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// The child side: install, then do one thing. Exit 0 when the outcome is the expected one
/// (for calls that are refused rather than killed), else panic (exit 101).
#[test]
fn child() {
    let Ok(what) = std::env::var("SANDBOX_CHILD") else {
        return; // run as an ordinary test: nothing to do
    };
    let arg = std::env::var_os("SANDBOX_ARG").map(PathBuf::from);
    match what.as_str() {
        // Allowed under the filter: threads, memfds made before, reads, writes, sleeps.
        "allowed" => {
            let f = sealed_memfd("t", 4096).unwrap();
            install(SeccompMode::Kill);
            let t = std::thread::spawn(move || {
                use std::os::unix::fs::FileExt;
                f.write_all_at(b"x", 0).unwrap();
                std::thread::sleep(Duration::from_millis(1));
                7
            });
            assert_eq!(t.join().unwrap(), 7);
            let mut r = [0u8; 8];
            dmabuf_sys_util::random::fill(&mut r).unwrap();
        }
        "execve" => {
            install(SeccompMode::Kill);
            let _ = Command::new("/bin/true").status();
        }
        "ptrace" => {
            install(SeccompMode::Kill);
            // SAFETY: PTRACE_TRACEME with no further arguments.
            unsafe { libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) };
        }
        "socket_inet" => {
            install(SeccompMode::Kill);
            let _ = std::net::TcpStream::connect("127.0.0.1:9");
        }
        "fork" => {
            install(SeccompMode::Kill);
            // SAFETY: the child of a successful fork leaves at once.
            if unsafe { libc::fork() } == 0 {
                // SAFETY: leave the forked child.
                unsafe { libc::_exit(0) };
            }
        }
        "exec_memory" => {
            install(SeccompMode::Kill);
            // SAFETY: an anonymous mapping asked for PROT_EXEC; the result is not used.
            unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    4096,
                    libc::PROT_READ | libc::PROT_EXEC,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
        }
        "raise_limit" => {
            install(SeccompMode::Kill);
            let _ = dmabuf_sys_util::fds::raise_nofile_to_hard();
            let r = libc::rlimit {
                rlim_cur: 64,
                rlim_max: 64,
            };
            // SAFETY: setrlimit with a local struct.
            unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) };
        }
        "other_ioctl" => {
            let f = File::open("/dev/null").unwrap();
            install(SeccompMode::Kill);
            let mut n: libc::c_int = 0;
            // SAFETY: FIONREAD writes one int into `n`.
            unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&f), libc::FIONREAD, &mut n) };
        }
        "trap" => {
            install(SeccompMode::Trap);
            // SAFETY: socket(2) with integer arguments.
            let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
            assert_eq!((fd, errno()), (-1, libc::ENOSYS));
        }
        "landlock" => {
            let dir = arg.unwrap();
            let abi = landlock::abi().unwrap();
            // SAFETY: prctl with integer arguments.
            let r = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
            assert_eq!(r, 0);
            landlock::restrict(abi, std::slice::from_ref(&dir)).unwrap();
            let denied = |r: std::io::Result<File>| {
                let e = r.unwrap_err();
                assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{e}");
            };
            denied(File::open("/etc/passwd"));
            denied(File::open(dir.join("old")));
            denied(File::create(dir.join("new")));
            denied(File::open("/proc/self/status"));
            std::fs::remove_file(dir.join("old")).unwrap();
        }
        "namespace" => {
            let dir = arg.unwrap();
            let inside = namespace::enter(std::slice::from_ref(&dir)).unwrap();
            assert!(File::open("/etc/passwd").is_err());
            assert!(!Path::new("/proc/self").exists());
            assert!(inside[0].join("old").exists());
            assert!(File::create("/new").is_err(), "the root is read-only");
            std::fs::remove_file(inside[0].join("old")).unwrap();
        }
        other => panic!("unknown child {other}"),
    }
}

fn killed_by_sigsys(what: &str) {
    let (status, err) = run_child(what, None);
    assert_eq!(
        status.signal(),
        Some(libc::SIGSYS),
        "{what}: {status:?}\n{err}"
    );
}

#[test]
fn the_daemons_filter_allows_what_it_does_and_kills_the_rest() {
    let (status, err) = run_child("allowed", None);
    assert!(status.success(), "{status:?}\n{err}");
    for what in [
        "execve",
        "ptrace",
        "socket_inet",
        "fork",
        "exec_memory",
        "raise_limit",
        "other_ioctl",
    ] {
        killed_by_sigsys(what);
    }
}

#[test]
fn trap_mode_names_the_call_and_fails_it() {
    let (status, err) = run_child("trap", None);
    assert!(status.success(), "{status:?}\n{err}");
    let nr = libc::SYS_socket;
    assert!(
        err.contains(&format!("seccomp: forbidden system call {nr}")),
        "{err}"
    );
}

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dmabuf-sandbox-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("old"), b"x").unwrap();
    d
}

#[test]
fn landlock_leaves_only_removing_files_in_the_socket_directories() {
    if let Err(e) = landlock::abi() {
        eprintln!("SKIP: this kernel has no landlock: {e}");
        return;
    }
    let d = scratch("landlock");
    let (status, err) = run_child("landlock", Some(&d));
    assert!(status.success(), "{status:?}\n{err}");
    assert!(!d.join("old").exists());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn the_namespace_sandbox_has_nothing_but_the_socket_directories() {
    let d = scratch("ns");
    let (status, err) = run_child("namespace", Some(&d));
    // SAFETY: geteuid has no preconditions.
    if !status.success() && unsafe { libc::geteuid() } != 0 && err.contains("unshare") {
        eprintln!("SKIP: no user namespaces for this user: {err}");
        return;
    }
    assert!(status.success(), "{status:?}\n{err}");
    assert!(
        !d.join("old").exists(),
        "removed through the bound directory"
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// `/proc/<pid>/status` lines of the running daemon.
fn status_of(pid: u32) -> String {
    let mut s = String::new();
    File::open(format!("/proc/{pid}/status"))
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    s
}

fn field<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {name} in\n{status}"))
}

/// A guest and a host client get served.
fn serves(d: &DaemonProcess) {
    let mut vm = Vm::connect(&d.vm_socket("vm1"), VmOptions::default()).unwrap();
    let b = vm.alloc_buffer(3 * 4096, true).unwrap();
    let u = vm.create_buffer(&b, 0).unwrap().unwrap();
    assert_eq!(vm.sync(&u, 0, 4096, sf::WRITE, 0).unwrap(), Status::Ok);
    assert_eq!(
        vm.sync(&u, 0, 4096, sf::WRITE | sf::END, 0).unwrap(),
        Status::Ok
    );
    let mut c = Client::connect(d.control_socket()).unwrap();
    let f = sealed_memfd("s", 8192).unwrap();
    let h = c.share(&f, 8192, ShareFlags::default(), &[]).unwrap();
    assert_eq!(c.list().unwrap().len(), 2);
    let other = vm.alloc_buffer(8192, false).unwrap();
    assert_eq!(vm.attach(&h, &other).unwrap(), Status::Ok);
    assert_eq!(vm.sync(&h, 0, 8192, sf::READ, 0).unwrap(), Status::Ok);
    assert_eq!(vm.release(&u).unwrap(), Status::Ok);
}

fn wait_log(log: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| l.contains(needle)) {
            return l.to_owned();
        }
        assert!(Instant::now() < deadline, "no '{needle}' in\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_running_daemon_shows_its_filter_and_no_privileges() {
    let cases: &[(&[&str], &str)] = &[
        (&[], "Seccomp:\t2"),
        (&["--sandbox", "namespace"], "Seccomp:\t2"),
        (&["--seccomp", "none", "--sandbox", "none"], "Seccomp:\t0"),
    ];
    for (args, seccomp_line) in cases {
        let log = std::env::temp_dir().join(format!("dmabuf-sandbox-{}.log", std::process::id()));
        let mut d =
            DaemonProcess::spawn_logged(Path::new(BIN), &["vm1"], args, Some(&log)).unwrap();
        let line = wait_log(&log, "sandbox: ");
        eprintln!("{args:?}: {line}");
        let pid = d.pid().unwrap();
        let st = status_of(pid);
        assert!(st.contains(seccomp_line), "{args:?}:\n{st}");
        if args.is_empty() || args[1] == "namespace" {
            assert_eq!(field(&st, "NoNewPrivs"), "1");
            assert_eq!(field(&st, "Seccomp_filters"), "2");
            assert_eq!(field(&st, "CapEff"), "0000000000000000");
            assert_eq!(field(&st, "CapPrm"), "0000000000000000");
            assert!(line.contains("seccomp kill (") && line.contains("capabilities: none"));
        }
        if args.is_empty() && landlock::abi().is_ok() {
            assert!(line.contains("landlock ABI"), "{line}");
        }
        serves(&d);
        let (vm_sock, ctl) = (d.vm_socket("vm1"), d.control_socket());
        assert_eq!(d.signal(libc::SIGTERM, Duration::from_secs(10)), Some(0));
        assert!(!vm_sock.exists() && !ctl.exists(), "{args:?}: sockets left");
        let _ = std::fs::remove_file(&log);
    }
    // The library's defaults are the daemon's.
    let _ = (FsSandbox::Auto, sandbox::apply);
}
