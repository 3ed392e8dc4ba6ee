// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The daemon's file descriptors as a budget (`docs/security.md`, "The fd budget").
//!
//! At start the soft `RLIMIT_NOFILE` is raised to the hard one, and the fds the configuration
//! can need at once are added up: a fixed base, each VM connection, each control connection and
//! each host share (one fd each: the mapping and the `DMA_BUF_IOCTL_SYNC` use the same one).
//! When the hard limit is below that sum, the number of host shares is lowered to what fits
//! (and said at start), so that a share beyond it is refused with `QUOTA_EXCEEDED` and a log
//! line, and the fds the VMs need are never the ones that run out.

use std::fmt;

use dmabuf_sys_util::fds::NofileLimit;

/// Standard streams, `/dev/udmabuf`, the fence waiter's epoll and eventfd, a transient fd of
/// the sandbox set-up, and slack for the libraries.
pub const BASE_FDS: u64 = 32;
/// One VM connection: its listener and connection, the backend channel, up to 8 memory regions
/// twice over (a new table arrives before the old one is dropped), 2 queues x (kick, call,
/// error), the worker's epoll and exit event (and the framework's clones of it), and slack.
pub const FDS_PER_VM: u64 = 40;
/// One control connection: its stream, the READ_TARGET it keeps, the fd a SHARE, READ_INTO or
/// SET_TARGET brings, an EXPORT's udmabuf on its way out.
pub const FDS_PER_CONTROL_CLIENT: u64 = 4;
/// One host share: the shared fd, kept (mapped, and bracketed with `DMA_BUF_IOCTL_SYNC`).
pub const FDS_PER_HOST_SHARE: u64 = 1;

/// What the configuration can hold open at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdBudget {
    /// VM sockets.
    pub vms: u64,
    /// Control connections served at once (0 without a control socket).
    pub control_clients: u64,
    /// Host shares (`--max-host-buffers`; 0 without a control socket).
    pub host_shares: u64,
}

impl FdBudget {
    /// The fds everything but the host shares needs (the control listener included).
    pub fn fixed(&self) -> u64 {
        let listener = u64::from(self.control_clients > 0);
        BASE_FDS + self.vms * FDS_PER_VM + listener + self.control_clients * FDS_PER_CONTROL_CLIENT
    }

    /// All of it.
    pub fn total(&self) -> u64 {
        self.fixed() + self.host_shares * FDS_PER_HOST_SHARE
    }
}

/// The budget against the limit in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdPlan {
    /// `RLIMIT_NOFILE` after raising the soft limit.
    pub limit: NofileLimit,
    /// What the configuration asks for.
    pub budget: FdBudget,
    /// The host shares that fit: `budget.host_shares`, or fewer when the limit is lower.
    pub host_shares: u64,
}

impl FdPlan {
    /// Fit `budget` into `limit` (the soft limit, raised to the hard one at start).
    pub fn new(limit: NofileLimit, budget: FdBudget) -> FdPlan {
        let room = limit.soft.saturating_sub(budget.fixed()) / FDS_PER_HOST_SHARE;
        FdPlan {
            limit,
            budget,
            host_shares: budget.host_shares.min(room),
        }
    }

    /// Whether host shares were lowered to fit.
    pub fn capped(&self) -> bool {
        self.host_shares < self.budget.host_shares
    }
}

impl fmt::Display for FdPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.budget;
        write!(
            f,
            "fd budget {} = {BASE_FDS} base + {} VM x {FDS_PER_VM} + {} control connections x \
             {FDS_PER_CONTROL_CLIENT} + {} host shares x {FDS_PER_HOST_SHARE}; RLIMIT_NOFILE \
             soft {} hard {}",
            b.total(),
            b.vms,
            b.control_clients,
            b.host_shares,
            self.limit.soft,
            self.limit.hard,
        )?;
        if self.capped() {
            write!(
                f,
                "; host shares limited to {} (of --max-host-buffers {}) to fit",
                self.host_shares, b.host_shares
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: FdBudget = FdBudget {
        vms: 1,
        control_clients: 64,
        host_shares: 4096,
    };

    #[test]
    fn the_budget_fits_or_host_shares_are_lowered() {
        let roomy = NofileLimit {
            soft: 8192,
            hard: 8192,
        };
        let p = FdPlan::new(roomy, DEFAULTS);
        assert_eq!(DEFAULTS.total(), 32 + 40 + 1 + 256 + 4096);
        assert!(!p.capped());
        assert_eq!(p.host_shares, 4096);
        assert!(!p.to_string().contains("limited"), "{p}");

        let tight = NofileLimit {
            soft: 1024,
            hard: 1024,
        };
        let p = FdPlan::new(tight, DEFAULTS);
        assert!(p.capped());
        assert_eq!(p.host_shares, 1024 - (32 + 40 + 1 + 256));
        assert!(p.to_string().contains("host shares limited to 695"), "{p}");

        // Not even the fixed part fits: no host share at all, never an underflow.
        let tiny = NofileLimit { soft: 64, hard: 64 };
        assert_eq!(FdPlan::new(tiny, DEFAULTS).host_shares, 0);

        let no_control = FdBudget {
            vms: 2,
            control_clients: 0,
            host_shares: 0,
        };
        assert_eq!(no_control.total(), 32 + 80);
    }
}
