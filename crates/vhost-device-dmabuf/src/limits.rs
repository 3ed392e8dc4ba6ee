// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The daemon's limits and policy, as the command line sets them: per VM (quotas, segments,
//! cross-VM imports), per daemon (host shares), and the bounds of every wait.

use std::time::Duration;

/// Limits and policy, per VM (and per daemon for host shares).
#[derive(Clone, Debug)]
pub struct Limits {
    /// Most segments in one CREATE or ATTACH.
    pub max_segments: u32,
    /// Most buffers a VM may hold.
    pub max_buffers: u32,
    /// Most bytes a VM may hold.
    pub max_bytes: u64,
    /// Most coalesced segments a VM may hold over all its buffers.
    pub max_total_segments: u64,
    /// Default and upper bound of a wait.
    pub sync_timeout: Duration,
    /// Whether VMs may import each other's buffers.
    pub cross_vm: bool,
    /// Most host-backed buffers (all host clients together).
    pub max_host_buffers: u32,
    /// Longest a worker busy-polls its request queue for the next request before it sleeps
    /// (zero: never; see [`crate::poll`]).
    pub poll_max: Duration,
    /// Bytes of each VM's shared memory region for mapped imports (0: none; spec 13.1).
    pub shm_size: u64,
    /// Longest a mapping request to a VM's front-end is waited for.
    pub shm_reply_bound: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_segments: 1 << 18,
            max_buffers: 4096,
            max_bytes: 8 << 30,
            max_total_segments: 4 << 20,
            sync_timeout: Duration::from_secs(5),
            cross_vm: true,
            max_host_buffers: 4096,
            poll_max: Duration::from_micros(32),
            shm_size: 256 << 20,
            shm_reply_bound: Duration::from_secs(2),
        }
    }
}

impl Limits {
    /// The bound of a wait asked for `requested_ms` (0: the default; never above it).
    pub fn wait_bound(&self, requested_ms: u32) -> Duration {
        if requested_ms == 0 {
            self.sync_timeout
        } else {
            Duration::from_millis(u64::from(requested_ms)).min(self.sync_timeout)
        }
    }

    /// The default bound in whole milliseconds, as the configuration space shows it.
    pub fn sync_timeout_ms(&self) -> u32 {
        u32::try_from(self.sync_timeout.as_millis()).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_bounded_by_the_default() {
        let l = Limits {
            sync_timeout: Duration::from_millis(500),
            ..Limits::default()
        };
        assert_eq!(l.wait_bound(0), Duration::from_millis(500));
        assert_eq!(l.wait_bound(20), Duration::from_millis(20));
        assert_eq!(l.wait_bound(u32::MAX), Duration::from_millis(500));
        assert_eq!(l.sync_timeout_ms(), 500);
        let huge = Limits {
            sync_timeout: Duration::from_secs(u64::MAX),
            ..l
        };
        assert_eq!(huge.sync_timeout_ms(), u32::MAX);
    }
}
