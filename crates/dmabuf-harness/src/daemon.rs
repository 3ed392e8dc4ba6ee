// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The daemon under test, as a child process with its sockets in a private directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::HarnessError;

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

/// A running `vhost-device-dmabuf`; killed and cleaned up on drop.
pub struct DaemonProcess {
    child: Option<Child>,
    dir: PathBuf,
}

impl DaemonProcess {
    /// Start `bin` with one socket per VM name and a control socket, plus `extra` arguments.
    /// Returns once every socket exists.
    pub fn spawn(bin: &Path, vms: &[&str], extra: &[&str]) -> Result<DaemonProcess, HarnessError> {
        DaemonProcess::spawn_logged(bin, vms, extra, None)
    }

    /// [`DaemonProcess::spawn`] with the daemon's log (`RUST_LOG=info`) written to `log`.
    pub fn spawn_logged(
        bin: &Path,
        vms: &[&str],
        extra: &[&str],
        log: Option<&Path>,
    ) -> Result<DaemonProcess, HarnessError> {
        let dir = std::env::temp_dir().join(format!(
            "dmabuf-harness-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        let mut cmd = Command::new(bin);
        for vm in vms {
            cmd.arg("--socket")
                .arg(format!("{vm}={}", dir.join(format!("{vm}.sock")).display()));
        }
        cmd.arg("--control-socket").arg(dir.join("control.sock"));
        cmd.args(extra);
        cmd.stdin(Stdio::null());
        if let Some(path) = log {
            cmd.stderr(std::fs::File::create(path)?);
            cmd.env("RUST_LOG", "info");
        } else if std::env::var_os("DMABUF_HARNESS_VERBOSE").is_none() {
            cmd.stderr(Stdio::null());
            cmd.env("RUST_LOG", "warn");
        }
        let child = cmd.spawn()?;
        let mut d = DaemonProcess {
            child: Some(child),
            dir,
        };
        let mut wanted: Vec<PathBuf> = vms.iter().map(|v| d.vm_socket(v)).collect();
        wanted.push(d.control_socket());
        d.wait_for(&wanted, Duration::from_secs(20))?;
        Ok(d)
    }

    fn wait_for(&mut self, paths: &[PathBuf], limit: Duration) -> Result<(), HarnessError> {
        let deadline = Instant::now() + limit;
        while !paths.iter().all(|p| p.exists()) {
            if let Some(c) = self.child.as_mut() {
                if let Some(status) = c.try_wait()? {
                    return Err(HarnessError::Setup(format!(
                        "daemon exited early: {status}"
                    )));
                }
            }
            if Instant::now() > deadline {
                return Err(HarnessError::Setup("daemon sockets did not appear".into()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// The vhost-user socket of VM `name`.
    pub fn vm_socket(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.sock"))
    }

    /// The control socket.
    pub fn control_socket(&self) -> PathBuf {
        self.dir.join("control.sock")
    }

    /// The daemon's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether it is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Send a signal and wait up to `limit` for the exit; returns the exit code if it exited.
    pub fn signal(&mut self, sig: i32, limit: Duration) -> Option<i32> {
        let child = self.child.as_mut()?;
        let pid = i32::try_from(child.id()).ok()?;
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(pid, sig) };
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = child.try_wait() {
                self.child = None;
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
