// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The fence arbiter: who may touch which bytes of one buffer, and who waits (spec section 7).
//!
//! A pure state machine: no I/O, no clocks, no threads. The caller owns the waiters' tokens
//! (a parked virtqueue request, a host client's reply channel) and acts on what the arbiter hands
//! back: tokens to grant, tokens to fail.
//!
//! Rules: a write excludes every other domain's overlapping access; reads share; disjoint ranges do
//! not interact; accesses of one domain never conflict with each other. A begin that conflicts with
//! a granted access *or with an earlier waiter* waits, so waiters are granted in arrival order and a
//! waiting writer is not starved by later readers.

use std::collections::VecDeque;

pub use virtio_dmabuf_proto::Direction;

/// A participant: one VM's driver or one host client connection.
pub type DomainId = u64;

/// Identifies a waiting begin, for its timeout.
pub type Ticket = u64;

/// One access to a byte range of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// Who.
    pub domain: DomainId,
    /// First byte.
    pub offset: u64,
    /// Length (not zero; `offset + len` does not overflow).
    pub len: u64,
    /// Read, write, or both (an end must name the direction of its begin).
    pub dir: Direction,
}

impl Access {
    fn end(&self) -> u64 {
        self.offset + self.len
    }

    fn overlaps(&self, other: &Access) -> bool {
        self.offset < other.end() && other.offset < self.end()
    }

    /// Whether the two accesses may not be held at the same time.
    pub fn conflicts(&self, other: &Access) -> bool {
        self.domain != other.domain
            && (self.dir.writes() || other.dir.writes())
            && self.overlaps(other)
    }

    fn covers(&self, offset: u64, len: u64) -> bool {
        self.offset <= offset && offset + len <= self.end()
    }
}

/// What [`Arbiter::begin`] decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Begin<T> {
    /// Granted now; the token comes back.
    Granted(T),
    /// Parked; the ticket names it for [`Arbiter::cancel`].
    Waiting(Ticket),
}

/// An end that matched no granted access.
#[derive(Debug, PartialEq, Eq)]
pub struct NotHeld;

#[derive(Debug)]
struct Waiter<T> {
    ticket: Ticket,
    access: Access,
    token: T,
}

/// Accesses and waiters of one buffer.
#[derive(Debug)]
pub struct Arbiter<T> {
    granted: Vec<Access>,
    waiting: VecDeque<Waiter<T>>,
    next_ticket: Ticket,
}

impl<T> Default for Arbiter<T> {
    fn default() -> Self {
        Arbiter {
            granted: Vec::new(),
            waiting: VecDeque::new(),
            next_ticket: 1,
        }
    }
}

/// Granted accesses with their tokens, in the order they were granted.
pub type Grants<T> = Vec<(Access, T)>;

impl<T> Arbiter<T> {
    /// Ask for `access`. Granted at once if it conflicts with nothing granted and nothing waiting.
    pub fn begin(&mut self, access: Access, token: T) -> Begin<T> {
        let blocked = self.granted.iter().any(|g| g.conflicts(&access))
            || self.waiting.iter().any(|w| w.access.conflicts(&access));
        if !blocked {
            self.granted.push(access);
            return Begin::Granted(token);
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.waiting.push_back(Waiter {
            ticket,
            access,
            token,
        });
        Begin::Waiting(ticket)
    }

    /// End one granted access equal to `access` (same domain, range and direction).
    /// Returns the waiters this unblocked, now granted.
    pub fn end(&mut self, access: &Access) -> Result<Grants<T>, NotHeld> {
        let pos = self
            .granted
            .iter()
            .position(|g| g == access)
            .ok_or(NotHeld)?;
        self.granted.swap_remove(pos);
        Ok(self.promote())
    }

    /// Withdraw a waiter (its bound expired). Returns its token, if it was still waiting, and the
    /// waiters its departure unblocked.
    pub fn cancel(&mut self, ticket: Ticket) -> Option<(T, Grants<T>)> {
        let pos = self.waiting.iter().position(|w| w.ticket == ticket)?;
        let waiter = self.waiting.remove(pos)?;
        Some((waiter.token, self.promote()))
    }

    /// A domain went away: drop its accesses and waiters. Returns its waiters' tokens and the
    /// other waiters this unblocked.
    pub fn drop_domain(&mut self, domain: DomainId) -> (Vec<T>, Grants<T>) {
        self.granted.retain(|g| g.domain != domain);
        let mut dropped = Vec::new();
        let mut kept = VecDeque::with_capacity(self.waiting.len());
        for w in self.waiting.drain(..) {
            if w.access.domain == domain {
                dropped.push(w.token);
            } else {
                kept.push_back(w);
            }
        }
        self.waiting = kept;
        (dropped, self.promote())
    }

    /// The buffer is going away: every waiter's token, in arrival order; nothing stays granted.
    pub fn drain(&mut self) -> Vec<T> {
        self.granted.clear();
        self.waiting.drain(..).map(|w| w.token).collect()
    }

    /// Whether `domain` holds one access covering `offset..offset+len` that allows `dir` (a
    /// write access allows everything, a read access reading).
    pub fn holds(&self, domain: DomainId, offset: u64, len: u64, dir: Direction) -> bool {
        self.granted.iter().any(|g| {
            g.domain == domain && g.covers(offset, len) && (g.dir.writes() || !dir.writes())
        })
    }

    /// The accesses granted to `domain`.
    pub fn granted_of(&self, domain: DomainId) -> Vec<Access> {
        self.granted
            .iter()
            .filter(|g| g.domain == domain)
            .copied()
            .collect()
    }

    /// Whether an access equal to `access` (same domain, range and direction) is granted.
    pub fn has(&self, access: &Access) -> bool {
        self.granted.iter().any(|g| g == access)
    }

    /// Number of granted accesses.
    pub fn granted_count(&self) -> usize {
        self.granted.len()
    }

    /// Number of waiters.
    pub fn waiting_count(&self) -> usize {
        self.waiting.len()
    }

    /// Grant, in arrival order, each waiter that conflicts with nothing granted and no earlier
    /// remaining waiter.
    fn promote(&mut self) -> Grants<T> {
        let mut grants = Vec::new();
        if self.waiting.is_empty() {
            return grants;
        }
        let mut still: VecDeque<Waiter<T>> = VecDeque::with_capacity(self.waiting.len());
        for w in self.waiting.drain(..) {
            let blocked = self.granted.iter().any(|g| g.conflicts(&w.access))
                || still.iter().any(|s| s.access.conflicts(&w.access));
            if blocked {
                still.push_back(w);
            } else {
                self.granted.push(w.access);
                grants.push((w.access, w.token));
            }
        }
        self.waiting = still;
        grants
    }

    #[cfg(test)]
    fn check_invariants(&self) {
        for (i, a) in self.granted.iter().enumerate() {
            for b in &self.granted[i + 1..] {
                assert!(!a.conflicts(b), "conflicting grants {a:?} {b:?}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(domain: DomainId, offset: u64, len: u64, write: bool) -> Access {
        let dir = if write {
            Direction::Write
        } else {
            Direction::Read
        };
        Access {
            domain,
            offset,
            len,
            dir,
        }
    }

    fn granted<T: std::fmt::Debug>(b: Begin<T>) -> T {
        match b {
            Begin::Granted(t) => t,
            Begin::Waiting(t) => panic!("expected a grant, got waiting {t}"),
        }
    }

    fn waiting<T: std::fmt::Debug>(b: Begin<T>) -> Ticket {
        match b {
            Begin::Waiting(t) => t,
            Begin::Granted(t) => panic!("expected to wait, got granted {t:?}"),
        }
    }

    #[test]
    fn readers_share_writers_exclude() {
        let mut a = Arbiter::default();
        granted(a.begin(acc(1, 0, 100, false), "r1"));
        granted(a.begin(acc(2, 50, 100, false), "r2"));
        waiting(a.begin(acc(3, 60, 10, true), "w3"));
        a.check_invariants();
        assert_eq!(a.end(&acc(1, 0, 100, false)).unwrap(), vec![]);
        let g = a.end(&acc(2, 50, 100, false)).unwrap();
        assert_eq!(g, vec![(acc(3, 60, 10, true), "w3")]);
        a.check_invariants();
    }

    #[test]
    fn disjoint_ranges_do_not_interact() {
        let mut a = Arbiter::default();
        granted(a.begin(acc(1, 0, 4096, true), 1));
        granted(a.begin(acc(2, 4096, 4096, true), 2));
        granted(a.begin(acc(3, 8192, 1, false), 3));
        a.check_invariants();
        assert_eq!(a.granted_count(), 3);
    }

    #[test]
    fn same_domain_never_conflicts() {
        let mut a = Arbiter::default();
        granted(a.begin(acc(1, 0, 10, true), 1));
        granted(a.begin(acc(1, 0, 10, true), 2));
        granted(a.begin(acc(1, 5, 10, false), 3));
        // Two identical accesses: each end removes one.
        a.end(&acc(1, 0, 10, true)).unwrap();
        a.end(&acc(1, 0, 10, true)).unwrap();
        assert_eq!(a.end(&acc(1, 0, 10, true)), Err(NotHeld));
    }

    #[test]
    fn read_write_is_a_write_and_another_direction_than_write() {
        let mut a: Arbiter<()> = Arbiter::default();
        let rw = Access {
            dir: Direction::ReadWrite,
            ..acc(1, 0, 10, true)
        };
        granted(a.begin(rw, ()));
        waiting(a.begin(acc(2, 5, 1, false), ()));
        assert_eq!(a.end(&acc(1, 0, 10, true)), Err(NotHeld));
        assert_eq!(a.end(&rw).unwrap().len(), 1);
    }

    #[test]
    fn end_must_match_exactly() {
        let mut a: Arbiter<()> = Arbiter::default();
        assert_eq!(a.end(&acc(1, 0, 10, false)), Err(NotHeld));
        granted(a.begin(acc(1, 0, 10, false), ()));
        assert_eq!(a.end(&acc(1, 0, 10, true)), Err(NotHeld));
        assert_eq!(a.end(&acc(1, 0, 9, false)), Err(NotHeld));
        assert_eq!(a.end(&acc(2, 0, 10, false)), Err(NotHeld));
        assert!(a.end(&acc(1, 0, 10, false)).is_ok());
    }

    #[test]
    fn waiting_writer_is_not_starved_by_later_readers() {
        let mut a = Arbiter::default();
        granted(a.begin(acc(1, 0, 100, false), "r1"));
        waiting(a.begin(acc(2, 0, 100, true), "w2"));
        // A later reader of an overlapping range queues behind the writer.
        waiting(a.begin(acc(3, 50, 10, false), "r3"));
        // A later reader of a disjoint range is not held back.
        granted(a.begin(acc(3, 200, 10, false), "r3b"));
        let g = a.end(&acc(1, 0, 100, false)).unwrap();
        assert_eq!(g, vec![(acc(2, 0, 100, true), "w2")]);
        let g = a.end(&acc(2, 0, 100, true)).unwrap();
        assert_eq!(g, vec![(acc(3, 50, 10, false), "r3")]);
        a.check_invariants();
    }

    #[test]
    fn grants_in_arrival_order_and_batches_readers() {
        let mut a = Arbiter::default();
        granted(a.begin(acc(1, 0, 10, true), 0));
        for d in 2..6 {
            waiting(a.begin(acc(d, 0, 10, false), d));
        }
        let g = a.end(&acc(1, 0, 10, true)).unwrap();
        let order: Vec<u64> = g.iter().map(|(_, t)| *t).collect();
        assert_eq!(order, vec![2, 3, 4, 5]);
        a.check_invariants();
    }

    #[test]
    fn cancel_unblocks_later_waiters() {
        let mut a = Arbiter::default();
        granted(a.begin(acc(1, 0, 10, false), "r1"));
        let t = waiting(a.begin(acc(2, 0, 10, true), "w2"));
        waiting(a.begin(acc(3, 0, 10, false), "r3"));
        let (tok, g) = a.cancel(t).unwrap();
        assert_eq!(tok, "w2");
        assert_eq!(g, vec![(acc(3, 0, 10, false), "r3")]);
        assert!(a.cancel(t).is_none());
        a.check_invariants();
    }

    #[test]
    fn dropping_a_domain_releases_and_fails_its_waiters() {
        let mut a = Arbiter::default();
        granted(a.begin(acc(1, 0, 10, true), "w1"));
        waiting(a.begin(acc(2, 0, 10, true), "w2"));
        waiting(a.begin(acc(1, 0, 10, false), "r1-behind"));
        waiting(a.begin(acc(3, 5, 1, false), "r3"));
        let (dropped, g) = a.drop_domain(1);
        assert_eq!(dropped, vec!["r1-behind"]);
        assert_eq!(g, vec![(acc(2, 0, 10, true), "w2")]);
        assert_eq!(a.waiting_count(), 1);
        let (dropped, g) = a.drop_domain(2);
        assert!(dropped.is_empty());
        assert_eq!(g, vec![(acc(3, 5, 1, false), "r3")]);
        a.check_invariants();
    }

    #[test]
    fn holds_checks_direction_and_cover() {
        let mut a = Arbiter::default();
        granted(a.begin(acc(1, 100, 100, false), ()));
        assert!(a.holds(1, 100, 100, Direction::Read));
        assert!(a.holds(1, 150, 10, Direction::Read));
        assert!(!a.holds(1, 150, 10, Direction::Write));
        assert!(!a.holds(1, 150, 10, Direction::ReadWrite));
        assert!(!a.holds(1, 50, 100, Direction::Read));
        assert!(!a.holds(2, 150, 10, Direction::Read));
        granted(a.begin(acc(3, 0, 10, true), ()));
        assert!(a.holds(3, 0, 10, Direction::Read));
        assert!(a.holds(3, 2, 2, Direction::ReadWrite));
    }

    #[test]
    fn drain_returns_every_waiter() {
        let mut a = Arbiter::default();
        granted(a.begin(acc(1, 0, 10, true), 1));
        waiting(a.begin(acc(2, 0, 10, true), 2));
        waiting(a.begin(acc(3, 0, 10, true), 3));
        assert_eq!(a.drain(), vec![2, 3]);
        assert_eq!(a.granted_count(), 0);
    }

    /// Randomised check of the invariants against a brute-force model (no external crates:
    /// a small xorshift generator keeps it deterministic).
    #[test]
    fn random_operations_keep_invariants() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut a: Arbiter<u64> = Arbiter::default();
        let mut held: Vec<Access> = Vec::new();
        let mut tickets: Vec<Ticket> = Vec::new();
        for i in 0..5_000u64 {
            let op = next() % 4;
            let x = acc(next() % 4, next() % 64, 1 + next() % 32, next() % 3 == 0);
            match op {
                0 | 1 => match a.begin(x, i) {
                    Begin::Granted(_) => held.push(x),
                    Begin::Waiting(t) => tickets.push(t),
                },
                2 if !held.is_empty() => {
                    let k = usize::try_from(next() % held.len() as u64).unwrap();
                    let h = held.swap_remove(k);
                    let g = a.end(&h).unwrap();
                    held.extend(g.iter().map(|(acc, _)| *acc));
                }
                3 if !tickets.is_empty() => {
                    let k = usize::try_from(next() % tickets.len() as u64).unwrap();
                    let t = tickets.swap_remove(k);
                    if let Some((_, g)) = a.cancel(t) {
                        held.extend(g.iter().map(|(acc, _)| *acc));
                    }
                }
                _ => {}
            }
            a.check_invariants();
            assert_eq!(a.granted_count(), held.len());
            // No waiter could have been granted: each conflicts with a grant or an earlier waiter.
            let ws: Vec<&Waiter<u64>> = a.waiting.iter().collect();
            for (j, w) in ws.iter().enumerate() {
                let blocked = a.granted.iter().any(|g| g.conflicts(&w.access))
                    || ws[..j].iter().any(|e| e.access.conflicts(&w.access));
                assert!(blocked, "waiter {w:?} should have been granted");
            }
        }
    }
}
