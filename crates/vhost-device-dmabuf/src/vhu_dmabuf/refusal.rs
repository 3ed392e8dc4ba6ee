// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Refusals and the log lines a guest can trigger: the one place where this edge turns a registry
//! error into a wire status, and the per-VM rate limits of what it logs (`crate::ratelimit`).

use log::{debug, warn};
use virtio_dmabuf_proto::Status;

use crate::ratelimit::RateLimit;
use crate::registry::{chain, RegistryError};

/// The log lines a guest can trigger again and again, rate limited per VM.
pub(super) struct GuestLogs {
    pub(super) malformed: RateLimit,
    pub(super) failed: RateLimit,
}

impl GuestLogs {
    pub(super) fn new() -> GuestLogs {
        GuestLogs {
            malformed: RateLimit::new("malformed descriptor chain ignored"),
            failed: RateLimit::new("request failed"),
        }
    }
}

/// The status a refused or failed request is answered with: the one place where this edge turns
/// a registry error into a wire status. A failure with a cause (the host failed, not the guest's
/// request) is logged with its chain, within `limit`.
pub(super) fn refusal(vm: &str, e: &RegistryError, limit: &RateLimit) -> Status {
    if std::error::Error::source(e).is_some() {
        if let Some(n) = limit.admit() {
            warn!("{vm}: {}{n}", chain(e));
        }
    } else {
        debug!("{vm}: {e}");
    }
    e.status()
}
