// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! `vhost-device-dmabuf`: the virtio dma-buf device as a vhost-user daemon.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use log::{error, info};
use thiserror::Error;
use vhost_device_dmabuf::daemon::{bind_vm_socket, serve_vm};
use vhost_device_dmabuf::registry::{chain, Limits, Registry};
use virtio_dmabuf_proto::control::encode_name;

/// Share dma-bufs between VMs and the host: a vhost-user backend for virtio device 37.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Args {
    /// vhost-user socket of one VM, as PATH or NAME=PATH (repeat for more VMs). The VM's name
    /// defaults to the file name without extension.
    #[arg(long = "socket", value_name = "[NAME=]PATH")]
    sockets: Vec<String>,

    /// Create VM sockets DIR/vm0.sock .. DIR/vm<N-1>.sock (with --vms N), named vm0 .. vm<N-1>.
    #[arg(long, value_name = "DIR")]
    socket_dir: Option<PathBuf>,

    /// Number of VM sockets to create in --socket-dir.
    #[arg(long, default_value_t = 1, requires = "socket_dir")]
    vms: u32,

    /// Host control socket for dmabufctl and the client library (mode 0600).
    #[arg(long, value_name = "PATH")]
    control_socket: Option<PathBuf>,

    /// Most segments in one CREATE or ATTACH request (262,144 = 1 GiB of separate 4 KiB pages,
    /// a 4 MiB list: the most a Linux driver can allocate contiguously).
    #[arg(long, default_value_t = 1 << 18)]
    max_segments: u32,

    /// Most buffers one VM may hold (created plus imported).
    #[arg(long, default_value_t = 4096)]
    max_buffers: u32,

    /// Most bytes one VM may hold, e.g. 512M, 8G, 0x40000000.
    #[arg(long, default_value = "8G", value_parser = dmabuf_sys_util::size::parse)]
    max_bytes: u64,

    /// Most coalesced segments one VM may hold over all its buffers.
    #[arg(long, default_value_t = 4 << 20)]
    max_total_segments: u64,

    /// Default and upper bound of a wait for CPU access, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    sync_timeout_ms: u32,

    /// Forbid VMs to import each other's buffers (host clients still can).
    #[arg(long)]
    no_cross_vm: bool,

    /// Most host-shared buffers, all host clients together.
    #[arg(long, default_value_t = 4096)]
    max_host_buffers: u32,

    /// Longest time, in microseconds, a VM's worker keeps polling its request queue for the
    /// next request before it sleeps; adapts between 0 and this to the VM's request rate
    /// (0: never poll, lowest CPU use; see docs/performance.md).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(0..=1000))]
    poll_max_us: u32,
}

#[derive(Debug, Error)]
enum ConfigError {
    #[error("no VM socket: give --socket PATH or --socket-dir DIR")]
    NoSockets,
    #[error("invalid VM name {0:?}: 1-31 printable characters, no ',' or spaces")]
    BadName(String),
    #[error("VM name {0:?} used twice")]
    DuplicateName(String),
    #[error("--sync-timeout-ms must be between 1 and 600000")]
    BadTimeout,
    #[error("--vms must be between 1 and 64")]
    BadVmCount,
    #[error("limits must not be zero")]
    ZeroLimit,
}

/// A validated configuration.
struct Config {
    vms: Vec<(String, PathBuf)>,
    control_socket: Option<PathBuf>,
    limits: Limits,
}

impl TryFrom<Args> for Config {
    type Error = ConfigError;

    fn try_from(a: Args) -> Result<Config, ConfigError> {
        let mut vms = Vec::new();
        for s in &a.sockets {
            let (name, path) = match s.split_once('=') {
                Some((n, p)) => (n.to_owned(), PathBuf::from(p)),
                None => {
                    let p = PathBuf::from(s);
                    let stem = p.file_stem().map(|x| x.to_string_lossy().into_owned());
                    (stem.unwrap_or_default(), p)
                }
            };
            vms.push((name, path));
        }
        if let Some(dir) = &a.socket_dir {
            if a.vms == 0 || a.vms > 64 {
                return Err(ConfigError::BadVmCount);
            }
            for i in 0..a.vms {
                vms.push((format!("vm{i}"), dir.join(format!("vm{i}.sock"))));
            }
        }
        if vms.is_empty() {
            return Err(ConfigError::NoSockets);
        }
        for (i, (name, _)) in vms.iter().enumerate() {
            if encode_name(name).is_none() {
                return Err(ConfigError::BadName(name.clone()));
            }
            if vms[..i].iter().any(|(n, _)| n == name) {
                return Err(ConfigError::DuplicateName(name.clone()));
            }
        }
        if a.sync_timeout_ms == 0 || a.sync_timeout_ms > 600_000 {
            return Err(ConfigError::BadTimeout);
        }
        if a.max_segments == 0
            || a.max_buffers == 0
            || a.max_bytes == 0
            || a.max_total_segments == 0
        {
            return Err(ConfigError::ZeroLimit);
        }
        Ok(Config {
            vms,
            control_socket: a.control_socket,
            limits: Limits {
                max_segments: a.max_segments,
                max_buffers: a.max_buffers,
                max_bytes: a.max_bytes,
                max_total_segments: a.max_total_segments,
                sync_timeout: Duration::from_millis(u64::from(a.sync_timeout_ms)),
                cross_vm: !a.no_cross_vm,
                max_host_buffers: a.max_host_buffers,
                poll_max: Duration::from_micros(u64::from(a.poll_max_us)),
            },
        })
    }
}

/// Block SIGINT and SIGTERM in every thread (threads inherit the mask), so that only `sigwait`
/// in the main thread sees them.
fn block_signals() -> libc::sigset_t {
    // SAFETY: sigset manipulation on a local set; pthread_sigmask with a valid set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let config = match Config::try_from(Args::parse()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vhost-device-dmabuf: {e}");
            return ExitCode::from(2);
        }
    };
    let signals = block_signals();
    let registry = match Registry::new(config.limits.clone()) {
        Ok(r) => r,
        Err(e) => {
            error!("{}", chain(&e));
            return ExitCode::FAILURE;
        }
    };

    let mut paths = Vec::new();
    let mut listeners = Vec::new();
    for (name, path) in &config.vms {
        match bind_vm_socket(path) {
            Ok(l) => listeners.push((name.clone(), l)),
            Err(e) => {
                error!("{name}: {}: {}", path.display(), chain(&e));
                return ExitCode::FAILURE;
            }
        }
        paths.push(path.clone());
    }
    if let Some(ctl) = &config.control_socket {
        if let Err(e) = vhost_device_dmabuf::control::start(registry.clone(), ctl) {
            error!("{}", chain(&e));
            return ExitCode::FAILURE;
        }
        paths.push(ctl.clone());
    }
    for (name, listener) in listeners {
        let reg = Arc::clone(&registry);
        let spawned = std::thread::Builder::new()
            .name(format!("vm-{name}"))
            .spawn(move || {
                if let Err(e) = serve_vm(&reg, &name, listener) {
                    error!("{name}: {}", chain(&e));
                }
            });
        if let Err(e) = spawned {
            error!("cannot start a VM thread: {e}");
            return ExitCode::FAILURE;
        }
    }
    for (name, path) in &config.vms {
        info!("{name}: waiting for a front-end on {}", path.display());
    }

    let mut sig: libc::c_int = 0;
    // SAFETY: `signals` is a valid set and `sig` a valid out-pointer.
    unsafe { libc::sigwait(&signals, &mut sig) };
    info!("signal {sig}: shutting down");
    for p in paths {
        let _ = std::fs::remove_file(p);
    }
    ExitCode::SUCCESS
}
