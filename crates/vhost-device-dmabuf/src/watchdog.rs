// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! A bound on system calls that wait in the kernel without one: `DMA_BUF_IOCTL_SYNC` waits for
//! a dma-buf's fences interruptibly but for ever. The daemon polls the fences before it makes
//! the call (so the call normally does not wait at all); should a fence be attached between the
//! poll and the call, this watchdog ends the wait: a thread arms a [`Guard`] with its deadline,
//! and past it the watchdog thread sends that thread `SIGUSR2` (a handler that does nothing,
//! without `SA_RESTART`) every 10 ms until the guard is dropped; the call returns `EINTR`, and
//! the bounded wrapper returns `TimedOut`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The signal that interrupts a wait past its deadline.
pub const SIGNAL: libc::c_int = libc::SIGUSR2;
const RESEND: Duration = Duration::from_millis(10);
const IDLE: Duration = Duration::from_secs(1);

struct Armed {
    id: u64,
    tid: libc::pid_t,
    deadline: Instant,
}

struct Watchdog {
    armed: Mutex<Vec<Armed>>,
    wake: Condvar,
    next: AtomicU64,
    pid: libc::pid_t,
}

/// An armed deadline of the calling thread; disarmed when dropped.
#[must_use = "the deadline is disarmed when the guard is dropped"]
pub struct Guard {
    id: u64,
}

extern "C" fn nothing(_sig: libc::c_int) {}

fn watchdog() -> &'static Watchdog {
    static W: OnceLock<&'static Watchdog> = OnceLock::new();
    W.get_or_init(|| {
        // SAFETY: a zeroed sigaction is valid; the handler has the plain signature and does
        // nothing; no SA_RESTART, so an interrupted wait returns EINTR.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = nothing as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(SIGNAL, &sa, std::ptr::null_mut());
        }
        let w: &'static Watchdog = Box::leak(Box::new(Watchdog {
            armed: Mutex::new(Vec::new()),
            wake: Condvar::new(),
            next: AtomicU64::new(1),
            // SAFETY: getpid has no preconditions.
            pid: unsafe { libc::getpid() },
        }));
        // Without the thread the deadlines are not enforced, but nothing else breaks.
        let _ = std::thread::Builder::new()
            .name("dmabuf-watchdog".into())
            .spawn(move || run(w));
        w
    })
}

fn run(w: &Watchdog) {
    let mut armed = w.armed.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let now = Instant::now();
        let mut next = now + IDLE;
        for a in armed.iter() {
            if a.deadline <= now {
                // SAFETY: tgkill to a thread of this process that armed a guard and has not
                // dropped it (the list is changed under this lock), so it still exists.
                unsafe { libc::syscall(libc::SYS_tgkill, w.pid, a.tid, SIGNAL) };
                next = next.min(now + RESEND);
            } else {
                next = next.min(a.deadline);
            }
        }
        armed = w
            .wake
            .wait_timeout(armed, next.saturating_duration_since(now))
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

/// Arm `deadline` for the calling thread.
pub fn arm(deadline: Instant) -> Guard {
    let w = watchdog();
    let id = w.next.fetch_add(1, Ordering::Relaxed);
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    w.armed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Armed { id, tid, deadline });
    w.wake.notify_one();
    Guard { id }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let w = watchdog();
        w.armed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|a| a.id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_blocking_call_is_interrupted_at_its_deadline() {
        // read(2) of an empty pipe blocks for ever, interruptibly: like the ioctl.
        let (r, _w) = std::io::pipe().unwrap();
        let t0 = Instant::now();
        let guard = arm(t0 + Duration::from_millis(100));
        let mut b = [0u8; 1];
        // SAFETY: read into a local byte.
        let n = unsafe { libc::read(r.as_raw_fd(), b.as_mut_ptr().cast(), 1) };
        let e = std::io::Error::last_os_error();
        drop(guard);
        assert_eq!((n, e.raw_os_error()), (-1, Some(libc::EINTR)));
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(100), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
    }
}
