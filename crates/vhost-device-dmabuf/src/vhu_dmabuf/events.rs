// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The event queue (spec section 8): the registry posts REVOKED events to a VM through its
//! [`EventPort`], from whichever thread destroyed the buffer, once every registry lock is
//! dropped. An event finds the rings through [`Rings`], which the worker fills at its first event
//! and the disconnect empties.

use std::sync::Arc;
use std::sync::Mutex;

use log::debug;
use vhost_user_backend::{VringRwLock, VringT};
use virtio_dmabuf_proto::virtio::{self as wire, Event};
use virtio_queue::{QueueT, Writer};
use vm_memory::{ByteValued, GuestAddressSpace, GuestMemoryAtomic};

use super::{complete, respond, ChainShape};
use crate::memory::GuestMem;
use crate::registry::GuestPort;

/// The rings of one VM, reachable from other threads (parked completions, events).
#[derive(Default)]
pub(super) struct Rings {
    pub(super) vrings: Mutex<Option<Vec<VringRwLock>>>,
}

impl Rings {
    fn get(&self, index: u16) -> Option<VringRwLock> {
        self.vrings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(|v| v.get(usize::from(index)).cloned())
    }
}

/// The event queue of one VM, as the registry posts to it.
pub(super) struct EventPort {
    pub(super) rings: Arc<Rings>,
    pub(super) mem: GuestMemoryAtomic<GuestMem>,
}

impl GuestPort for EventPort {
    fn post_event(&self, event: &Event) -> bool {
        let Some(vring) = self.rings.get(wire::EVENT_QUEUE) else {
            return false;
        };
        let mem = self.mem.memory();
        let chain = vring
            .get_mut()
            .get_queue_mut()
            .pop_descriptor_chain(mem.clone());
        let Some(chain) = chain else {
            debug!("event queue empty: event dropped");
            return false;
        };
        let head = chain.head_index();
        let len = if ChainShape::of(&chain).walkable {
            Writer::new(&*mem, chain).map_or(0, |mut out| respond(&mut out, event.as_slice()))
        } else {
            0
        };
        complete(&vring, head, len);
        true
    }
}
