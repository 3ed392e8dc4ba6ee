// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The daemon's command line (clap derive). Its own module so that the packaging tool (`xtask`)
//! generates the man page and the shell completions from this very definition.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Share dma-bufs between VMs and the host: a vhost-user backend for virtio device 37.
#[derive(Parser, Debug)]
#[command(name = "vhost-device-dmabuf", version, long_about = None)]
pub(crate) struct Args {
    /// vhost-user socket of one VM, as PATH or NAME=PATH (repeat for more VMs). The VM's name
    /// defaults to the file name without extension.
    #[arg(long = "socket", value_name = "[NAME=]PATH")]
    pub(crate) sockets: Vec<String>,

    /// Create VM sockets DIR/vm0.sock .. DIR/vm<N-1>.sock (with --vms N), named vm0 .. vm<N-1>.
    #[arg(long, value_name = "DIR")]
    pub(crate) socket_dir: Option<PathBuf>,

    /// Number of VM sockets to create in --socket-dir.
    #[arg(long, default_value_t = 1, requires = "socket_dir")]
    pub(crate) vms: u32,

    /// Host control socket for dmabufctl and the client library (mode 0600: the daemon's uid
    /// and root may use it).
    #[arg(long, value_name = "PATH")]
    pub(crate) control_socket: Option<PathBuf>,

    /// Let members of GROUP (a name or a number) use the control socket too: the socket file
    /// becomes mode 0660 in GROUP, and peers whose primary or supplementary group is GROUP are
    /// served. A daemon that is not root must be a member of GROUP.
    #[arg(long, value_name = "GROUP", requires = "control_socket")]
    pub(crate) control_group: Option<String>,

    /// Most segments in one CREATE or ATTACH request (262,144 = 1 GiB of separate 4 KiB pages,
    /// a 4 MiB list: the most a Linux driver can allocate contiguously).
    #[arg(long, default_value_t = 1 << 18)]
    pub(crate) max_segments: u32,

    /// Most buffers one VM may hold (created plus imported).
    #[arg(long, default_value_t = 4096)]
    pub(crate) max_buffers: u32,

    /// Most bytes one VM may hold, e.g. 512M, 8G, 0x40000000.
    #[arg(long, default_value = "8G", value_parser = dmabuf_sys_util::size::parse)]
    pub(crate) max_bytes: u64,

    /// Most coalesced segments one VM may hold over all its buffers.
    #[arg(long, default_value_t = 4 << 20)]
    pub(crate) max_total_segments: u64,

    /// Default and upper bound of a wait for CPU access, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    pub(crate) sync_timeout_ms: u32,

    /// Forbid VMs to import each other's buffers (host clients still can).
    #[arg(long)]
    pub(crate) no_cross_vm: bool,

    /// Most host-shared buffers, all host clients together.
    #[arg(long, default_value_t = 4096)]
    pub(crate) max_host_buffers: u32,

    /// What a system call outside the daemon's seccomp allowlist does: kill the daemon, trap
    /// (fail with ENOSYS and name it on stderr), log (allowed, logged by the kernel), or none
    /// (no filter).
    #[arg(long, value_enum, default_value_t = SeccompArg::Kill)]
    pub(crate) seccomp: SeccompArg,

    /// How the filesystem is confined once the daemon serves: landlock (default where the
    /// kernel has it), namespace (an empty mount namespace; the default otherwise), or none
    /// (not confined, capabilities kept).
    #[arg(long, value_enum)]
    pub(crate) sandbox: Option<SandboxArg>,

    /// Longest time, in microseconds, a VM's worker keeps polling its request queue for the
    /// next request before it sleeps; adapts between 0 and this to the VM's request rate
    /// (0: never poll, lowest CPU use; see docs/performance.md).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub(crate) poll_max_us: u32,

    /// Bytes of each VM's shared memory region, where imports are mapped in place
    /// (VIRTIO_DMABUF_F_MAP; needs a VMM with vhost-user shared memory, e.g. QEMU >= 11.1). A
    /// power of two from 2M to 64G, e.g. 256M, 1G; 0: no region (imports are copies). The VMM
    /// asks once, when the device is created: a new size needs a new VM.
    #[arg(long, default_value = "256M", value_parser = dmabuf_sys_util::size::parse)]
    pub(crate) shm_size: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum SeccompArg {
    Kill,
    Trap,
    Log,
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum SandboxArg {
    Landlock,
    Namespace,
    None,
}
