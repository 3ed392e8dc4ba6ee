// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! `vhost-device-dmabuf`: the virtio dma-buf device as a vhost-user daemon.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use dmabuf_sys_util::fds::{self, NofileLimit};
use log::{error, info, warn};
use thiserror::Error;
use vhost_device_dmabuf::control::{resolve_group, ControlSocket, GroupError, MAX_CLIENTS};
use vhost_device_dmabuf::daemon::{bind_vm_socket, serve_vm};
use vhost_device_dmabuf::fds::{FdBudget, FdPlan};
use vhost_device_dmabuf::hostfile;
use vhost_device_dmabuf::registry::{chain, Limits, Registry};
use vhost_device_dmabuf::sandbox::{self, namespace, FsSandbox, SeccompMode};
use vhost_device_dmabuf::shm;
use virtio_dmabuf_proto::control::encode_name;

mod cli;

use cli::{Args, SandboxArg, SeccompArg};

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
    #[error(
        "--shm-size must be 0 or a power of two from 2M to 64G (the VMM sizes a PCI BAR to it)"
    )]
    BadShmSize,
    #[error("--control-group")]
    BadGroup(#[source] GroupError),
    #[error(
        "--control-group {0}: the namespace sandbox of a daemon that is not root maps only its own \
         uid and gid, so it cannot see which peers are in group {0}; use --sandbox landlock (the \
         default where the kernel has landlock), run as root, or run with {0} as primary group"
    )]
    GroupHidden(u32),
}

/// A validated configuration.
struct Config {
    vms: Vec<(String, PathBuf)>,
    control_socket: Option<PathBuf>,
    control_group: Option<u32>,
    limits: Limits,
    seccomp: SeccompMode,
    sandbox: FsSandbox,
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
        if a.shm_size != 0
            && (!a.shm_size.is_power_of_two()
                || !(shm::MIN_SIZE..=shm::MAX_SIZE).contains(&a.shm_size))
        {
            return Err(ConfigError::BadShmSize);
        }
        let control_group = match &a.control_group {
            Some(g) => Some(resolve_group(g).map_err(ConfigError::BadGroup)?),
            None => None,
        };
        Ok(Config {
            vms,
            control_socket: a.control_socket,
            control_group,
            seccomp: match a.seccomp {
                SeccompArg::Kill => SeccompMode::Kill,
                SeccompArg::Trap => SeccompMode::Trap,
                SeccompArg::Log => SeccompMode::Log,
                SeccompArg::None => SeccompMode::None,
            },
            sandbox: match a.sandbox {
                None => FsSandbox::Auto,
                Some(SandboxArg::Landlock) => FsSandbox::Landlock,
                Some(SandboxArg::Namespace) => FsSandbox::Namespace,
                Some(SandboxArg::None) => FsSandbox::None,
            },
            limits: Limits {
                max_segments: a.max_segments,
                max_buffers: a.max_buffers,
                max_bytes: a.max_bytes,
                max_total_segments: a.max_total_segments,
                sync_timeout: Duration::from_millis(u64::from(a.sync_timeout_ms)),
                cross_vm: !a.no_cross_vm,
                max_host_buffers: a.max_host_buffers,
                poll_max: Duration::from_micros(u64::from(a.poll_max_us)),
                shm_size: a.shm_size,
                ..Limits::default()
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
    let mut config = match Config::try_from(Args::parse()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vhost-device-dmabuf: {}", chain(&e));
            return ExitCode::from(2);
        }
    };
    if let Some(gid) = config.control_group {
        // SAFETY: geteuid/getegid have no preconditions.
        let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
        if sandbox::resolve(config.sandbox) == FsSandbox::Namespace
            && !namespace::peer_group_visible(euid, egid, gid)
        {
            eprintln!("vhost-device-dmabuf: {}", ConfigError::GroupHidden(gid));
            return ExitCode::from(2);
        }
    }
    let signals = block_signals();

    // Everything the daemon needs from the filesystem, before the sandbox closes it: the
    // sockets bound, /dev/udmabuf open.
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
    let control = match &config.control_socket {
        Some(ctl) => match ControlSocket::bind_for_group(ctl, config.control_group) {
            Ok(c) => {
                paths.push(ctl.clone());
                Some(c)
            }
            Err(e) => {
                error!("{}", chain(&e));
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let udmabuf = match hostfile::open_udmabuf_device() {
        Ok(f) => Some(f),
        Err(e) => {
            info!("EXPORT unsupported: {}", chain(&e));
            None
        }
    };

    let plan = fd_plan(&config);
    config.limits.max_host_buffers = u32::try_from(plan.host_shares).unwrap_or(u32::MAX);

    // No thread exists yet: landlock and the namespaces apply to the calling thread and the
    // ones it starts, the seccomp filter to every thread.
    let paths = match sandbox::apply(config.sandbox, config.seccomp, &paths) {
        Ok(applied) => {
            info!("sandbox: {}", applied.summary);
            applied.socket_paths
        }
        Err(e) => {
            error!("cannot set up the sandbox: {}", chain(&e));
            return ExitCode::FAILURE;
        }
    };

    let registry = match Registry::new(config.limits.clone()) {
        Ok(r) => r,
        Err(e) => {
            error!("{}", chain(&e));
            return ExitCode::FAILURE;
        }
    };
    registry.set_fd_plan(plan);
    if let Some(dev) = udmabuf {
        registry.set_udmabuf_device(dev);
    }
    if let Some(ctl) = control {
        if let Err(e) = ctl.serve(registry.clone()) {
            error!("{}", chain(&e));
            return ExitCode::FAILURE;
        }
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

/// Raise the soft `RLIMIT_NOFILE` to the hard one and fit the configuration's fds into it
/// (`docs/security.md`, "The fd budget"); the plan is logged, with a warning when host shares
/// had to be lowered.
fn fd_plan(config: &Config) -> FdPlan {
    let limit = match fds::raise_nofile_to_hard() {
        Ok(l) => l,
        Err(e) => {
            warn!("cannot raise RLIMIT_NOFILE: {e}");
            fds::nofile_limit().unwrap_or(NofileLimit {
                soft: 1024,
                hard: 1024,
            })
        }
    };
    let control = config.control_socket.is_some();
    let budget = FdBudget {
        vms: config.vms.len() as u64,
        control_clients: if control { MAX_CLIENTS as u64 } else { 0 },
        host_shares: if control {
            u64::from(config.limits.max_host_buffers)
        } else {
            0
        },
    };
    let plan = FdPlan::new(limit, budget);
    if plan.capped() {
        warn!("{plan}: raise the hard limit (ulimit -Hn, LimitNOFILE=) for more");
    } else {
        info!("{plan}");
    }
    plan
}
