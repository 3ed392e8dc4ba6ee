// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The real daemon as a child process, for the integration tests.

#![allow(dead_code)]

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use dmabuf_client::{Access, Client, ClientError, Status, Uuid};

/// Generous bound for anything that should happen "promptly" on a loaded machine.
pub const PROMPT: Duration = Duration::from_secs(20);

static NEXT: AtomicU32 = AtomicU32::new(0);
static BUILD: Mutex<()> = Mutex::new(());

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The daemon binary: `$DMABUF_DAEMON_BIN`, or the debug build next to this test's target dir
/// (built on first use if missing).
pub fn daemon_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("DMABUF_DAEMON_BIN") {
        return PathBuf::from(p);
    }
    // target/debug/deps/<test> → target/debug
    let from_exe = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent()?.parent().map(Path::to_path_buf))
        .map(|d| d.join("vhost-device-dmabuf"));
    let fallback = workspace().join("target/debug/vhost-device-dmabuf");
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    for p in from_exe.iter().chain([&fallback]) {
        if p.exists() {
            return p.clone();
        }
    }
    let status = Command::new(env!("CARGO"))
        .args(["build", "-p", "vhost-device-dmabuf"])
        .current_dir(workspace())
        .status()
        .expect("running cargo build -p vhost-device-dmabuf");
    assert!(
        status.success(),
        "cargo build -p vhost-device-dmabuf failed"
    );
    from_exe.filter(|p| p.exists()).unwrap_or(fallback)
}

/// A running `vhost-device-dmabuf` with one (unused) VM socket and a control socket; killed and
/// cleaned up on drop.
pub struct Daemon {
    child: Child,
    dir: PathBuf,
    /// The control socket.
    pub ctl: PathBuf,
}

impl Daemon {
    /// A daemon whose default and maximum wait bound is 2 s.
    pub fn start() -> Daemon {
        Daemon::with_sync_timeout(2000)
    }

    /// A daemon with this `--sync-timeout-ms`.
    pub fn with_sync_timeout(ms: u32) -> Daemon {
        let dir = std::env::temp_dir().join(format!(
            "dmabuf-client-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ctl = dir.join("ctl.sock");
        let mut cmd = Command::new(daemon_bin());
        cmd.arg("--socket")
            .arg(dir.join("vm1.sock"))
            .arg("--control-socket")
            .arg(&ctl)
            .arg("--sync-timeout-ms")
            .arg(ms.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if std::env::var_os("DMABUF_TEST_VERBOSE").is_none() {
            cmd.stderr(Stdio::null()).env("RUST_LOG", "warn");
        }
        let child = cmd.spawn().expect("starting vhost-device-dmabuf");
        let mut d = Daemon { child, dir, ctl };
        let deadline = Instant::now() + PROMPT;
        while UnixStream::connect(&d.ctl).is_err() {
            if let Some(status) = d.child.try_wait().unwrap() {
                panic!("the daemon exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "no control socket after {PROMPT:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
        d
    }

    /// A new connection (a new domain).
    pub fn client(&self) -> Client {
        Client::connect(&self.ctl).expect("connecting to the control socket")
    }

    /// Whether the process still runs.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A scratch path in the daemon's private directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Assert the daemon is alive and serves a new client.
    pub fn assert_serving(&mut self) {
        assert!(self.alive(), "the daemon died");
        self.client().list().expect("a new client is served");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The status of a result, `OK` for success; panics on non-status errors.
pub fn status_of<T>(r: Result<T, ClientError>) -> Status {
    match r {
        Ok(_) => Status::Ok,
        Err(ClientError::Status(s)) => s,
        Err(e) => panic!("expected a status, got {e}"),
    }
}

/// A BEGIN sent from another thread.
pub struct PendingBegin {
    /// Set once the thread is about to send the request.
    pub started: mpsc::Receiver<()>,
    /// The status and when the answer arrived.
    pub done: mpsc::Receiver<(Status, Instant)>,
    /// The thread; returns the client so its accesses stay held until the caller drops it.
    pub thread: thread::JoinHandle<Client>,
}

/// Send BEGIN on `client` from a new thread.
pub fn begin_in_thread(
    mut client: Client,
    uuid: Uuid,
    offset: u64,
    len: u64,
    access: Access,
    timeout: Option<Duration>,
) -> PendingBegin {
    let (stx, started) = mpsc::channel();
    let (dtx, done) = mpsc::channel();
    let thread = thread::spawn(move || {
        let _ = stx.send(());
        let s = status_of(client.begin(&uuid, offset, len, access, timeout));
        let _ = dtx.send((s, Instant::now()));
        client
    });
    PendingBegin {
        started,
        done,
        thread,
    }
}
