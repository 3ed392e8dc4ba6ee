// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The bounds of waiting begins: a heap of deadlines and one thread that ends each waiter still
//! waiting at its deadline with TIMEOUT. The heap's lock is never held with another.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread;
use std::time::{Duration, Instant};

use virtio_dmabuf_proto::virtio::Uuid;

use super::{lock, Registry};
use crate::arbiter::Ticket;

/// The longest the thread sleeps before it looks whether the registry still exists.
const IDLE: Duration = Duration::from_millis(500);

/// Deadlines of waiting begins, earliest first.
#[derive(Default)]
pub(super) struct Timer {
    heap: Mutex<BinaryHeap<Reverse<(Instant, Ticket, Uuid)>>>,
    wake: Condvar,
}

impl Timer {
    /// End the waiter `ticket` of buffer `uuid` at `deadline` (if it still waits then).
    pub(super) fn add(&self, deadline: Instant, uuid: Uuid, ticket: Ticket) {
        lock(&self.heap).push(Reverse((deadline, ticket, uuid)));
        self.wake.notify_one();
    }

    /// The next deadline that passed, or `None` after waiting for one (at most [`IDLE`]).
    fn next_due(&self) -> Option<(Ticket, Uuid)> {
        let mut heap = lock(&self.heap);
        let now = Instant::now();
        match heap.peek() {
            Some(Reverse((when, _, _))) if *when <= now => {
                heap.pop().map(|Reverse((_, ticket, uuid))| (ticket, uuid))
            }
            next => {
                let wait = next.map_or(IDLE, |Reverse((when, _, _))| *when - now);
                let _unused = self
                    .wake
                    .wait_timeout(heap, wait.min(IDLE))
                    .unwrap_or_else(|e| e.into_inner());
                None
            }
        }
    }
}

/// Start the thread; it ends when the registry is dropped.
pub(super) fn start(registry: &Arc<Registry>) -> io::Result<()> {
    let weak = Arc::downgrade(registry);
    thread::Builder::new()
        .name("dmabuf-timeouts".into())
        .spawn(move || run(&weak))
        .map(|_| ())
}

fn run(registry: &Weak<Registry>) {
    while let Some(r) = registry.upgrade() {
        if let Some((ticket, uuid)) = r.timer.next_due() {
            r.expire(&uuid, ticket);
        }
    }
}

impl Registry {
    /// A waiting begin's bound passed.
    fn expire(&self, uuid: &Uuid, ticket: Ticket) {
        if let Some(buf) = self.buffer(uuid) {
            self.fire(buf.expire(ticket, &self.stats));
        }
    }
}
