// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The daemon as a user runs it: arguments, sockets, signals.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use dmabuf_harness::{DaemonProcess, Vm, VmOptions};

const BIN: &str = env!("CARGO_BIN_EXE_vhost-device-dmabuf");

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dmabuf-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_arguments_are_refused_clearly() {
    let (code, err) = run(&[]);
    assert_eq!(code, 2);
    assert!(err.contains("no VM socket"), "{err}");
    let (code, err) = run(&["--socket", "a=/tmp/x.sock", "--socket", "a=/tmp/y.sock"]);
    assert_eq!(code, 2);
    assert!(err.contains("used twice"), "{err}");
    let (code, err) = run(&["--socket", "bad name=/tmp/x.sock"]);
    assert_eq!(code, 2);
    assert!(err.contains("invalid VM name"), "{err}");
    let (code, err) = run(&["--socket", "/tmp/x.sock", "--sync-timeout-ms", "0"]);
    assert_eq!(code, 2);
    assert!(err.contains("sync-timeout"), "{err}");
    let (code, err) = run(&["--socket", "/tmp/x.sock", "--max-bytes", "lots"]);
    assert_eq!(code, 2);
    assert!(err.contains("not a size"), "{err}");
    let help = Command::new(BIN).arg("--help").output().unwrap();
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    for opt in [
        "--socket",
        "--control-socket",
        "--max-bytes",
        "--sync-timeout-ms",
        "--no-cross-vm",
    ] {
        assert!(text.contains(opt), "--help lacks {opt}");
    }
}

#[test]
fn sigterm_shuts_down_cleanly_and_removes_sockets() {
    let mut d = DaemonProcess::spawn(Path::new(BIN), &["vm1"], &[]).unwrap();
    let (vm_sock, ctl) = (d.vm_socket("vm1"), d.control_socket());
    let vm = Vm::connect(&vm_sock, VmOptions::default()).unwrap();
    assert_eq!(
        std::fs::metadata(&ctl).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(d.signal(libc::SIGTERM, Duration::from_secs(10)), Some(0));
    assert!(!vm_sock.exists() && !ctl.exists());
    drop(vm);
    let mut d = DaemonProcess::spawn(Path::new(BIN), &["vm1"], &[]).unwrap();
    assert_eq!(d.signal(libc::SIGINT, Duration::from_secs(10)), Some(0));
}

#[test]
fn stale_socket_is_replaced_live_one_is_an_error() {
    let dir = tmpdir("stale");
    let sock = dir.join("vm1.sock");
    // A stale socket: bound, then its listener gone.
    drop(UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    let mut child = Command::new(BIN)
        .arg("--socket")
        .arg(&sock)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut vm = None;
    for _ in 0..100 {
        if let Ok(v) = Vm::connect(&sock, VmOptions::default()) {
            vm = Some(v);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut vm = vm.expect("the daemon took over the stale socket");
    assert!(vm.config().is_ok());
    // A second daemon on the same (live) socket refuses to start.
    let (code, err) = run(&["--socket", sock.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("in use"), "{err}");
    // A path that is not a socket is never deleted.
    let file = dir.join("precious.sock");
    std::fs::write(&file, b"data").unwrap();
    let (code, err) = run(&["--socket", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"data");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
