// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Rate limits for log lines that a guest or a host client can trigger again and again (a
//! malformed chain, a failed request, a buffer destroyed, a refused connection): at most
//! [`BURST`] lines of one kind per [`INTERVAL`]; the first line of the next interval says how
//! many were left out. One [`RateLimit`] per kind of line — per VM where a VM triggers it, so
//! that one guest's flood does not hide another's lines. Debug lines (off unless `RUST_LOG`
//! asks for them) are not limited.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines of one kind logged per interval.
pub const BURST: u32 = 10;
/// The interval.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// One kind of log line and how many of it went out lately.
#[derive(Debug)]
pub struct RateLimit {
    what: &'static str,
    window: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    start: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

/// A line may go out; its [`fmt::Display`] is the note to append to it: empty, or how many lines
/// of this kind were left out before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admitted {
    what: &'static str,
    /// Lines of this kind left out since the last one logged.
    pub suppressed: u64,
}

impl fmt::Display for Admitted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.suppressed > 0 {
            write!(
                f,
                " [{} more '{}' lines suppressed]",
                self.suppressed, self.what
            )?;
        }
        Ok(())
    }
}

impl RateLimit {
    /// A limit for the lines `what` names (it appears in the "suppressed" note).
    pub const fn new(what: &'static str) -> RateLimit {
        RateLimit {
            what,
            window: Mutex::new(Window {
                start: None,
                logged: 0,
                suppressed: 0,
            }),
        }
    }

    /// Whether a line may be logged now; `None`: leave it out (it is counted).
    pub fn admit(&self) -> Option<Admitted> {
        self.admit_at(Instant::now())
    }

    /// [`RateLimit::admit`] at `now`.
    pub fn admit_at(&self, now: Instant) -> Option<Admitted> {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let expired = w
            .start
            .is_none_or(|s| now.saturating_duration_since(s) >= INTERVAL);
        if expired {
            w.start = Some(now);
            w.logged = 0;
        }
        if w.logged >= BURST {
            w.suppressed += 1;
            return None;
        }
        w.logged += 1;
        let suppressed = std::mem::take(&mut w.suppressed);
        Some(Admitted {
            what: self.what,
            suppressed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_cut_to_a_burst_per_interval_and_counted() {
        let r = RateLimit::new("malformed chain");
        let t0 = Instant::now();
        let passed = (0..1000)
            .filter_map(|i| r.admit_at(t0 + Duration::from_micros(i)))
            .collect::<Vec<_>>();
        assert_eq!(passed.len(), BURST as usize);
        assert!(passed.iter().all(|a| a.suppressed == 0));
        assert_eq!(passed[0].to_string(), "");
        // The first line of the next interval carries the count.
        let next = r
            .admit_at(t0 + INTERVAL + Duration::from_millis(1))
            .unwrap();
        assert_eq!(next.suppressed, 1000 - u64::from(BURST));
        assert_eq!(
            next.to_string(),
            " [990 more 'malformed chain' lines suppressed]"
        );
        // ... and only it.
        let after = r
            .admit_at(t0 + INTERVAL + Duration::from_millis(2))
            .unwrap();
        assert_eq!(after.suppressed, 0);
        // A quiet source is never limited.
        let q = RateLimit::new("quiet");
        for k in 0..100u64 {
            assert!(q
                .admit_at(t0 + INTERVAL * u32::try_from(k).unwrap())
                .is_some());
        }
        // An older `now` (another thread's) counts in the current window.
        assert!(r.admit_at(t0).is_some());
    }
}
