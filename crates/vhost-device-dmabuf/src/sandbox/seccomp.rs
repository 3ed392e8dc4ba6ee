// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The daemon's seccomp filter: the system calls it makes once it serves (built with rust-vmm's
//! seccompiler). Anything else kills the process (`--seccomp kill`, the default), raises
//! `SIGSYS` (`trap`: the call fails with `ENOSYS` and a line names it), or is only logged by the
//! kernel (`log`).
//!
//! The list was taken from `strace -f` of the whole test suite, the soak and a VM boot, and
//! checked by running them all under `kill`. Arguments are checked where a call could do more
//! than the daemon needs: `ioctl` only with the dma-buf, udmabuf and two harmless terminal and
//! socket requests; `clone` only for threads (and `clone3`, whose flags a filter cannot see,
//! answers `ENOSYS` so that the C library falls back to `clone`); `mmap`/`mprotect` never
//! executable; `prctl` only for thread names; `prlimit64` only to read; `tgkill` only inside
//! this process. No `socket`, `connect`, `bind`, `execve`, `ptrace`, `fork`, `open_by_handle_at`,
//! `mount`, `bpf`, `keyctl`, ... at all.

use std::collections::BTreeMap;
use std::fmt;
use std::io;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};
use thiserror::Error;

/// What happens to a system call outside the list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeccompMode {
    /// Kill the process (`SECCOMP_RET_KILL_PROCESS`).
    Kill,
    /// `SIGSYS`: the daemon's handler names the call on stderr and makes it fail with `ENOSYS`.
    Trap,
    /// Allowed, and logged by the kernel (audit/kernel log).
    Log,
    /// No filter.
    None,
}

impl SeccompMode {
    /// The option's spelling.
    pub fn name(self) -> &'static str {
        match self {
            SeccompMode::Kill => "kill",
            SeccompMode::Trap => "trap",
            SeccompMode::Log => "log",
            SeccompMode::None => "none",
        }
    }

    fn action(self) -> Option<SeccompAction> {
        match self {
            SeccompMode::Kill => Some(SeccompAction::KillProcess),
            SeccompMode::Trap => Some(SeccompAction::Trap),
            SeccompMode::Log => Some(SeccompAction::Log),
            SeccompMode::None => None,
        }
    }
}

/// Why the filter could not be built or installed.
#[derive(Debug, Error)]
pub enum SeccompError {
    /// This architecture has no list.
    #[error("no seccomp allowlist for this architecture")]
    Arch(#[source] seccompiler::BackendError),
    /// A rule or the filter is invalid (a bug in the list).
    #[error("building the seccomp filter")]
    Build(#[source] seccompiler::BackendError),
    /// The kernel refused it.
    #[error("installing the seccomp filter")]
    Install(#[source] seccompiler::Error),
    /// The SIGSYS handler of `trap` could not be installed.
    #[error("installing the SIGSYS handler")]
    Handler(#[source] io::Error),
}

/// The filters the daemon installs (the allowlist, then the one that makes `clone3` fail).
pub struct Filters {
    /// The allowlist.
    pub allow: BpfProgram,
    /// `clone3` → `ENOSYS` (the C library falls back to `clone`, whose flags are checked).
    pub no_clone3: BpfProgram,
    /// System calls in the allowlist.
    pub syscalls: usize,
    /// The mode they were built for.
    pub mode: SeccompMode,
}

impl fmt::Display for Filters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seccomp {} ({} system calls, {} + {} BPF instructions)",
            self.mode.name(),
            self.syscalls,
            self.allow.len(),
            self.no_clone3.len()
        )
    }
}

/// `DMA_BUF_IOCTL_SYNC`.
const DMA_BUF_IOCTL_SYNC: u64 = 0x4008_6200;
/// `UDMABUF_CREATE_LIST`.
const UDMABUF_CREATE_LIST: u64 = 0x4008_7543;

fn cond(arg: u8, len: Len, op: Op, value: u64) -> Result<SeccompCondition, SeccompError> {
    SeccompCondition::new(arg, len, op, value).map_err(SeccompError::Build)
}

fn rule(conds: Vec<SeccompCondition>) -> Result<SeccompRule, SeccompError> {
    SeccompRule::new(conds).map_err(SeccompError::Build)
}

/// Calls allowed whatever their arguments.
fn plain() -> Vec<libc::c_long> {
    use libc::*;
    let mut v = vec![
        // I/O on fds it holds: sockets, memfds, dma-bufs, eventfds, epoll.
        SYS_read,
        SYS_write,
        SYS_readv,
        SYS_writev,
        SYS_pread64,
        SYS_pwrite64,
        SYS_close,
        SYS_lseek,
        SYS_fcntl,
        SYS_fstatfs,
        SYS_newfstatat,
        SYS_statx,
        SYS_fallocate,
        SYS_recvmsg,
        SYS_sendmsg,
        SYS_recvfrom,
        SYS_sendto,
        SYS_accept4,
        SYS_getsockopt,
        SYS_setsockopt,
        SYS_shutdown,
        SYS_epoll_create1,
        SYS_epoll_ctl,
        SYS_epoll_pwait,
        SYS_ppoll,
        SYS_eventfd2,
        // Files by path: landlock or the mount namespace decides what is reachable (the C
        // library reads /sys/devices/system/cpu/online and /proc/sys/vm/overcommit_memory on
        // its own; they are refused and it copes). Unlinking: the sockets at exit.
        SYS_openat,
        SYS_unlinkat,
        // Memory.
        SYS_munmap,
        SYS_mremap,
        SYS_madvise,
        SYS_brk,
        // Threads and time.
        SYS_futex,
        SYS_set_robust_list,
        SYS_rseq,
        SYS_sched_yield,
        SYS_sched_getaffinity,
        SYS_clock_gettime,
        SYS_clock_nanosleep,
        SYS_nanosleep,
        SYS_getpid,
        SYS_gettid,
        SYS_getuid,
        SYS_geteuid,
        SYS_getgid,
        SYS_getegid,
        SYS_getrandom,
        SYS_exit,
        SYS_exit_group,
        SYS_restart_syscall,
        // Signals: the mask, the waiting main thread, alternate stacks of new threads.
        SYS_rt_sigprocmask,
        SYS_rt_sigaction,
        SYS_rt_sigreturn,
        SYS_rt_sigtimedwait,
        SYS_sigaltstack,
        // clone3 is allowed here and made to fail with ENOSYS by the second filter.
        SYS_clone3,
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([
        SYS_fstat,
        SYS_stat,
        SYS_epoll_wait,
        SYS_poll,
        SYS_unlink,
        SYS_arch_prctl,
    ]);
    v
}

/// The allowlist: each call with the rules its arguments must meet (empty: any).
fn allowlist(pid: libc::pid_t) -> Result<BTreeMap<i64, Vec<SeccompRule>>, SeccompError> {
    use libc::*;
    let mut map: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for nr in plain() {
        map.insert(nr, Vec::new());
    }
    let ioctls = [
        DMA_BUF_IOCTL_SYNC,
        UDMABUF_CREATE_LIST,
        // `c_ulong` is u64 here, not everywhere.
        #[allow(clippy::unnecessary_cast)]
        {
            FIONBIO as u64
        },
        #[allow(clippy::unnecessary_cast)]
        {
            TCGETS as u64
        },
    ];
    let ioctl_rules = ioctls
        .iter()
        .map(|&req| rule(vec![cond(1, Len::Dword, Op::Eq, req)?]))
        .collect::<Result<Vec<_>, _>>()?;
    map.insert(SYS_ioctl, ioctl_rules);
    // Threads only: CLONE_THREAD | CLONE_VM must be set (no new process, no fork).
    let thread = (CLONE_THREAD | CLONE_VM) as u64;
    map.insert(
        SYS_clone,
        vec![rule(vec![cond(
            0,
            Len::Qword,
            Op::MaskedEq(thread),
            thread,
        )?])?],
    );
    // Never executable memory.
    let no_exec = || -> Result<Vec<SeccompRule>, SeccompError> {
        Ok(vec![rule(vec![cond(
            2,
            Len::Qword,
            Op::MaskedEq(PROT_EXEC as u64),
            0,
        )?])?])
    };
    map.insert(SYS_mmap, no_exec()?);
    map.insert(SYS_mprotect, no_exec()?);
    // Thread names only.
    map.insert(
        SYS_prctl,
        vec![
            rule(vec![cond(0, Len::Dword, Op::Eq, PR_SET_NAME as u64)?])?,
            rule(vec![cond(0, Len::Dword, Op::Eq, PR_GET_NAME as u64)?])?,
        ],
    );
    // Read limits (getrlimit), never set them.
    map.insert(
        SYS_prlimit64,
        vec![rule(vec![cond(2, Len::Qword, Op::Eq, 0)?])?],
    );
    // Signals only to its own threads (a panic's abort, a timed-out wait's wake-up).
    map.insert(
        SYS_tgkill,
        vec![rule(vec![cond(0, Len::Dword, Op::Eq, pid as u64)?])?],
    );
    Ok(map)
}

fn arch() -> Result<TargetArch, SeccompError> {
    TargetArch::try_from(std::env::consts::ARCH).map_err(SeccompError::Arch)
}

/// The filters for `mode` in a process whose pid is `pid` (`None` for `SeccompMode::None`).
pub fn filters(mode: SeccompMode, pid: libc::pid_t) -> Result<Option<Filters>, SeccompError> {
    let Some(mismatch) = mode.action() else {
        return Ok(None);
    };
    let arch = arch()?;
    let list = allowlist(pid)?;
    let syscalls = list.len();
    let allow = SeccompFilter::new(list, mismatch, SeccompAction::Allow, arch)
        .and_then(BpfProgram::try_from)
        .map_err(SeccompError::Build)?;
    let clone3 = BTreeMap::from([(libc::SYS_clone3, Vec::new())]);
    let no_clone3 = SeccompFilter::new(
        clone3,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .and_then(BpfProgram::try_from)
    .map_err(SeccompError::Build)?;
    Ok(Some(Filters {
        allow,
        no_clone3,
        syscalls,
        mode,
    }))
}

/// Install `f` on every thread of the process (there is one when the daemon does this); sets
/// `no_new_privs`. For `trap`, the SIGSYS handler comes first.
pub fn install(f: &Filters) -> Result<(), SeccompError> {
    if f.mode == SeccompMode::Trap {
        install_sigsys_handler().map_err(SeccompError::Handler)?;
    }
    // The allowlist last: installing a filter is not on it.
    seccompiler::apply_filter_all_threads(&f.no_clone3).map_err(SeccompError::Install)?;
    seccompiler::apply_filter_all_threads(&f.allow).map_err(SeccompError::Install)
}

/// `SIGSYS` under `trap`: write which call was refused (async-signal-safe: one `write` of a
/// stack buffer), and make it fail with `ENOSYS`.
extern "C" fn on_sigsys(_sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // struct siginfo's _sigsys: { void *_call_addr; int _syscall; unsigned _arch; } after
    // si_signo, si_errno, si_code and the padding to 8 bytes.
    // SAFETY: the kernel passes a valid siginfo for SIGSYS; the field is read at its fixed
    // offset in the union, within the struct.
    let nr = unsafe {
        info.cast::<u8>()
            .add(24)
            .cast::<libc::c_int>()
            .read_unaligned()
    };
    const PREFIX: &[u8] = b"vhost-device-dmabuf: seccomp: forbidden system call ";
    let mut msg = [0u8; PREFIX.len() + 12];
    msg[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 10];
    let (mut n, mut k) = (nr.unsigned_abs(), digits.len());
    loop {
        k -= 1;
        digits[k] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 || k == 0 {
            break;
        }
    }
    let len = PREFIX.len() + (digits.len() - k);
    msg[PREFIX.len()..len].copy_from_slice(&digits[k..]);
    msg[len] = b'\n';
    // SAFETY: write(2) of a stack buffer to stderr is async-signal-safe.
    unsafe { libc::write(2, msg.as_ptr().cast(), len + 1) };
    #[cfg(all(target_arch = "x86_64", target_env = "gnu"))]
    {
        let uc = ctx.cast::<libc::ucontext_t>();
        // SAFETY: for an SA_SIGINFO handler the third argument is the interrupted context;
        // setting its RAX is how the refused call returns -ENOSYS.
        unsafe { (*uc).uc_mcontext.gregs[libc::REG_RAX as usize] = -(libc::ENOSYS as i64) };
    }
    #[cfg(not(all(target_arch = "x86_64", target_env = "gnu")))]
    {
        let _ = ctx;
        // SAFETY: leave at once; no return value can be set on this architecture.
        unsafe { libc::_exit(128 + libc::SIGSYS) };
    }
}

fn install_sigsys_handler() -> io::Result<()> {
    // SAFETY: a zeroed sigaction is valid; the handler is an extern "C" fn with the
    // SA_SIGINFO signature; the return value is checked.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigsys as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
