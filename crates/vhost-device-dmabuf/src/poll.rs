// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Adaptive busy-polling of a request queue before the worker goes to sleep.
//!
//! A request that finds the worker asleep pays two wake-ups (the worker's, then the vCPU's);
//! the worker's is most of a round trip (docs/performance.md). Fence points come in bursts
//! (START, the CPU work, END; one frame after another), so after answering, the worker keeps
//! looking at the avail ring for a short window, with the driver's notifications suppressed,
//! and a request posted inside it is taken without any wake-up on the device side.
//!
//! The window adapts to what the sleeps show, as QEMU's event-loop polling does: a sleep that
//! ended within the longest window means a longer window would have caught that request, so it
//! doubles; a sleep longer than that means polling is wasted on this VM, so it halves, and
//! below the smallest step it stops. A VM that posts one request now and then therefore costs
//! no polling at all, and one in a burst costs at most the window per request.

use std::time::{Duration, Instant};

/// The first non-zero window.
const STEP: Duration = Duration::from_micros(2);

/// The polling window of one request queue.
#[derive(Debug)]
pub struct AdaptivePoll {
    max: Duration,
    window: Duration,
    idle_since: Option<Instant>,
}

impl AdaptivePoll {
    /// A window that may grow up to `max` (zero: never poll).
    pub fn new(max: Duration) -> AdaptivePoll {
        AdaptivePoll {
            max,
            window: Duration::ZERO,
            idle_since: None,
        }
    }

    /// How long to poll now.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// The worker is about to sleep until the next notification.
    pub fn sleeping(&mut self, now: Instant) {
        self.idle_since = Some(now);
    }

    /// The worker woke up for a notification.
    pub fn woke(&mut self, now: Instant) {
        if let Some(since) = self.idle_since.take() {
            self.adapt(now.saturating_duration_since(since));
        }
    }

    /// Adapt the window to a sleep of `slept`.
    fn adapt(&mut self, slept: Duration) {
        if self.max.is_zero() {
            return;
        }
        if slept <= self.max {
            self.window = (self.window * 2).max(STEP).min(self.max);
        } else {
            self.window /= 2;
            if self.window < STEP {
                self.window = Duration::ZERO;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    fn sleep_for(p: &mut AdaptivePoll, d: Duration) {
        let t = Instant::now();
        p.sleeping(t);
        p.woke(t + d);
    }

    #[test]
    fn disabled_never_polls() {
        let mut p = AdaptivePoll::new(Duration::ZERO);
        for _ in 0..10 {
            sleep_for(&mut p, us(1));
        }
        assert_eq!(p.window(), Duration::ZERO);
    }

    #[test]
    fn short_sleeps_grow_the_window_up_to_the_maximum() {
        let mut p = AdaptivePoll::new(us(32));
        assert_eq!(p.window(), Duration::ZERO);
        let mut seen = Vec::new();
        for _ in 0..8 {
            sleep_for(&mut p, us(5));
            seen.push(p.window().as_micros());
        }
        assert_eq!(seen, [2, 4, 8, 16, 32, 32, 32, 32]);
    }

    #[test]
    fn long_sleeps_shrink_it_to_nothing() {
        let mut p = AdaptivePoll::new(us(32));
        for _ in 0..5 {
            sleep_for(&mut p, us(1));
        }
        assert_eq!(p.window(), us(32));
        let mut seen = Vec::new();
        for _ in 0..6 {
            sleep_for(&mut p, Duration::from_millis(1));
            seen.push(p.window().as_micros());
        }
        assert_eq!(seen, [16, 8, 4, 2, 0, 0]);
    }

    #[test]
    fn a_wake_without_a_recorded_sleep_changes_nothing() {
        let mut p = AdaptivePoll::new(us(32));
        p.woke(Instant::now());
        assert_eq!(p.window(), Duration::ZERO);
        sleep_for(&mut p, us(1));
        p.woke(Instant::now() + Duration::from_secs(1));
        assert_eq!(p.window(), us(2));
    }
}
