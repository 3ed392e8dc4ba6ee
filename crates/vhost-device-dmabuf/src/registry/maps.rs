// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The registry's maps, under `Registry::inner` and nothing else: buffers by UUID, the domains
//! and the buffers each VM holds (for RELEASE and the quotas), who may see which buffer, and
//! the registration and removal of buffers and domains. No buffer's `state` is taken here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dmabuf_sys_util::random;
use log::warn;
use virtio_dmabuf_proto::virtio::Uuid;
use vm_memory::GuestMemoryAtomic;

use super::buffer::{Buffer, BufferParts, Owner};
use super::{lock, GuestPort, Quota, Registry, RegistryError, VmHandle};
use crate::arbiter::DomainId;
use crate::memory::GuestMem;
use crate::shm::VmShm;

/// How a domain holds a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    /// It created the buffer.
    Own,
    /// It attached a copy.
    Attached,
    /// Destroyed or revoked, but still counted until the domain releases it.
    Revoked,
}

/// One buffer a VM holds, as its quotas count it.
#[derive(Clone)]
struct Holding {
    role: Role,
    bytes: u64,
    segments: u64,
    /// The VM's own buffer, revoked by the host: kept until the VM releases it, whose pages
    /// the VM still uses until then, and whose exports are detached from them at that point.
    revoked_own: Option<Arc<Buffer>>,
}

/// The buffers a VM holds and their totals.
#[derive(Default)]
struct Holdings {
    held: HashMap<Uuid, Holding>,
    bytes: u64,
    segments: u64,
}

impl Holdings {
    fn check_quota(&self, r: &Registry, bytes: u64, segments: u64) -> Result<(), RegistryError> {
        let l = r.limits();
        if u32::try_from(self.held.len()).unwrap_or(u32::MAX) >= l.max_buffers {
            return Err(RegistryError::Quota(Quota::Buffers));
        }
        if self.bytes.saturating_add(bytes) > l.max_bytes {
            return Err(RegistryError::Quota(Quota::Bytes));
        }
        if self.segments.saturating_add(segments) > l.max_total_segments {
            return Err(RegistryError::Quota(Quota::Segments));
        }
        Ok(())
    }

    fn add(&mut self, uuid: Uuid, h: Holding) {
        self.bytes += h.bytes;
        self.segments += h.segments;
        self.held.insert(uuid, h);
    }

    fn remove(&mut self, uuid: &Uuid) -> Option<Holding> {
        let h = self.held.remove(uuid)?;
        self.bytes -= h.bytes;
        self.segments -= h.segments;
        Some(h)
    }
}

struct Domain {
    vm: Option<Arc<VmHandle>>,
    holdings: Holdings,
}

/// Everything `Registry::inner` guards.
#[derive(Default)]
pub(super) struct Inner {
    buffers: HashMap<Uuid, Arc<Buffer>>,
    domains: HashMap<DomainId, Domain>,
    host_buffers: u32,
}

impl Inner {
    /// Take `uuid` out of the map; every domain holding it now holds a revoked buffer (its
    /// owner, if it still holds it, keeps the buffer itself: see `Holding::revoked_own`).
    fn unregister(&mut self, uuid: &Uuid) -> Option<Arc<Buffer>> {
        let buf = self.buffers.remove(uuid)?;
        for d in self.domains.values_mut() {
            if let Some(h) = d.holdings.held.get_mut(uuid) {
                if h.role == Role::Own {
                    h.revoked_own = Some(buf.clone());
                }
                h.role = Role::Revoked;
            }
        }
        if buf.owner == Owner::Host {
            self.host_buffers = self.host_buffers.saturating_sub(1);
        }
        Some(buf)
    }
}

/// What a RELEASE took from the maps.
pub(super) enum Released {
    /// The VM's own buffer, now out of the map: destroy it.
    Destroyed(Arc<Buffer>),
    /// Its import of this buffer: detach it.
    Detached(Arc<Buffer>),
    /// Its own buffer, revoked earlier: only its exports are left to detach.
    RevokedOwn(Arc<Buffer>),
    /// A buffer already destroyed or revoked: nothing left to do.
    Gone,
}

/// Whether a departing domain comes back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Departure {
    /// A device reset: the domain stays, empty.
    Reset,
    /// The connection is gone: the domain goes too.
    Gone,
}

/// What a departing domain left behind.
pub(super) struct Departed {
    /// Its own buffers, out of the map: destroy them.
    pub destroyed: Vec<Arc<Buffer>>,
    /// Its own buffers revoked earlier: detach their exports.
    pub revoked_own: Vec<Arc<Buffer>>,
    /// Every other buffer: drop the domain's accesses, waiters and imports there.
    pub others: Vec<Arc<Buffer>>,
}

/// A random (version 4, RFC 4122 variant) UUID from the kernel's generator.
fn random_uuid() -> Result<Uuid, RegistryError> {
    uuid_from(random::fill)
}

/// A version 4 UUID from the bytes `fill` draws.
pub(super) fn uuid_from(
    fill: impl FnOnce(&mut [u8]) -> std::io::Result<()>,
) -> Result<Uuid, RegistryError> {
    let mut u = [0u8; 16];
    fill(&mut u).map_err(RegistryError::Random)?;
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    Ok(u)
}

impl Registry {
    /// Register a VM connection with no shared memory region; its domain lives until
    /// [`Registry::remove_domain`].
    pub fn add_vm(
        &self,
        name: &str,
        mem: GuestMemoryAtomic<GuestMem>,
        port: Arc<dyn GuestPort>,
    ) -> Arc<VmHandle> {
        let shm = Arc::new(VmShm::new(0, self.limits.shm_reply_bound));
        self.add_vm_with_shm(name, mem, port, shm)
    }

    /// Register a VM connection and its shared memory region.
    pub fn add_vm_with_shm(
        &self,
        name: &str,
        mem: GuestMemoryAtomic<GuestMem>,
        port: Arc<dyn GuestPort>,
        shm: Arc<VmShm>,
    ) -> Arc<VmHandle> {
        let domain = self.next_domain.fetch_add(1, Ordering::Relaxed);
        let vm = Arc::new(VmHandle {
            name: name.to_owned(),
            domain,
            mem,
            port,
            epoch: AtomicU64::new(0),
            shm,
        });
        let d = Domain {
            vm: Some(vm.clone()),
            holdings: Holdings::default(),
        };
        lock(&self.inner).domains.insert(domain, d);
        vm
    }

    /// Register a host client domain (one per control connection or in-process session).
    pub fn add_host_domain(&self) -> DomainId {
        let domain = self.next_domain.fetch_add(1, Ordering::Relaxed);
        let d = Domain {
            vm: None,
            holdings: Holdings::default(),
        };
        lock(&self.inner).domains.insert(domain, d);
        domain
    }

    pub(super) fn buffer(&self, uuid: &Uuid) -> Option<Arc<Buffer>> {
        lock(&self.inner).buffers.get(uuid).cloned()
    }

    /// Every buffer, in no order.
    pub(super) fn buffers(&self) -> Vec<Arc<Buffer>> {
        lock(&self.inner).buffers.values().cloned().collect()
    }

    /// Whether VM `vm` may see `buf` at all (spec section 12).
    pub(super) fn visible_to_vm(&self, buf: &Buffer, vm: &VmHandle) -> bool {
        match buf.owner {
            Owner::Vm(d) if d == vm.domain => true,
            Owner::Vm(_) => self.limits.cross_vm && buf.access.allows(&vm.name),
            Owner::Host => buf.access.allows(&vm.name),
        }
    }

    /// The buffer `uuid` if `vm` may see it; NOT_FOUND otherwise, whether or not it exists.
    pub(super) fn visible(&self, vm: &VmHandle, uuid: &Uuid) -> Result<Arc<Buffer>, RegistryError> {
        self.buffer(uuid)
            .filter(|b| self.visible_to_vm(b, vm))
            .ok_or(RegistryError::NotFound(*uuid))
    }

    /// The buffer a VM names in a SYNC, with the VM's epoch as of this check: one it created
    /// or attached and that still exists (REVOKED if it held it and it went away).
    pub(super) fn held_buffer(
        &self,
        vm: &VmHandle,
        uuid: &Uuid,
    ) -> Result<(Arc<Buffer>, u64), RegistryError> {
        let inner = lock(&self.inner);
        let role = inner
            .domains
            .get(&vm.domain)
            .and_then(|d| d.holdings.held.get(uuid))
            .map(|h| h.role);
        match (role, inner.buffers.get(uuid)) {
            (Some(Role::Own | Role::Attached), Some(b)) => {
                Ok((b.clone(), vm.epoch.load(Ordering::SeqCst)))
            }
            // Destroyed or revoked while held: the same answer whether or not the event reached
            // the driver, until it releases the UUID.
            (Some(_), _) => Err(RegistryError::Revoked(*uuid)),
            (None, _) => Err(RegistryError::NotFound(*uuid)),
        }
    }

    /// Whether `vm` holds `uuid` (in any role).
    pub(super) fn holds(&self, vm: &VmHandle, uuid: &Uuid) -> bool {
        lock(&self.inner)
            .domains
            .get(&vm.domain)
            .is_some_and(|d| d.holdings.held.contains_key(uuid))
    }

    /// Register a new buffer under a fresh UUID: for a VM (`owner`), within its quotas; for the
    /// host, within the daemon's count of host shares.
    pub(super) fn register(
        &self,
        owner: Option<&VmHandle>,
        segments: u64,
        parts: BufferParts,
    ) -> Result<Uuid, RegistryError> {
        // Drawn before the lock is taken; drawn again on the (astronomically rare) collision.
        let (mut inner, uuid) = loop {
            let uuid = random_uuid()?;
            let inner = lock(&self.inner);
            if !inner.buffers.contains_key(&uuid) {
                break (inner, uuid);
            }
        };
        match owner {
            Some(vm) => {
                let dom = inner
                    .domains
                    .get_mut(&vm.domain)
                    .ok_or(RegistryError::Cancelled)?;
                dom.holdings.check_quota(self, parts.size, segments)?;
                let h = Holding {
                    role: Role::Own,
                    bytes: parts.size,
                    segments,
                    revoked_own: None,
                };
                dom.holdings.add(uuid, h);
            }
            None => {
                if inner.host_buffers >= self.limits.max_host_buffers {
                    if let Some(plan) = self.fd_plan().filter(|p| p.capped()) {
                        warn!(
                            "host share refused: {} host shares, the most the fd limit leaves \
                             room for ({plan})",
                            inner.host_buffers
                        );
                    }
                    return Err(RegistryError::Quota(Quota::HostBuffers));
                }
                inner.host_buffers += 1;
            }
        }
        inner
            .buffers
            .insert(uuid, Arc::new(Buffer::new(uuid, parts)));
        Ok(uuid)
    }

    /// Count `buf` as attached by `vm` (ATTACH), within its quotas. Returns the VM's epoch as of
    /// this check, for the import to be added under the buffer's lock.
    pub(super) fn hold_attached(
        &self,
        vm: &VmHandle,
        buf: &Buffer,
        segments: u64,
    ) -> Result<u64, RegistryError> {
        let mut inner = lock(&self.inner);
        if !inner.buffers.contains_key(&buf.uuid) {
            return Err(RegistryError::NotFound(buf.uuid));
        }
        let dom = inner
            .domains
            .get_mut(&vm.domain)
            .ok_or(RegistryError::Cancelled)?;
        if dom.holdings.held.contains_key(&buf.uuid) {
            return Err(RegistryError::AlreadyExists(buf.uuid));
        }
        dom.holdings.check_quota(self, buf.size, segments)?;
        let h = Holding {
            role: Role::Attached,
            bytes: buf.size,
            segments,
            revoked_own: None,
        };
        dom.holdings.add(buf.uuid, h);
        Ok(vm.epoch.load(Ordering::SeqCst))
    }

    /// Undo [`Registry::hold_attached`] whose import could not be added.
    pub(super) fn unhold(&self, domain: DomainId, uuid: &Uuid) {
        if let Some(d) = lock(&self.inner).domains.get_mut(&domain) {
            d.holdings.remove(uuid);
        }
    }

    /// RELEASE: drop `vm`'s holding of `uuid`; an own buffer leaves the map.
    pub(super) fn take_holding(
        &self,
        vm: &VmHandle,
        uuid: &Uuid,
    ) -> Result<Released, RegistryError> {
        let mut inner = lock(&self.inner);
        let dom = inner
            .domains
            .get_mut(&vm.domain)
            .ok_or(RegistryError::Cancelled)?;
        let Some(held) = dom.holdings.remove(uuid) else {
            return Err(RegistryError::NotFound(*uuid));
        };
        Ok(match held.role {
            Role::Revoked => held
                .revoked_own
                .map_or(Released::Gone, Released::RevokedOwn),
            Role::Own => inner
                .unregister(uuid)
                .map_or(Released::Gone, Released::Destroyed),
            Role::Attached => inner
                .buffers
                .get(uuid)
                .cloned()
                .map_or(Released::Gone, Released::Detached),
        })
    }

    /// REVOKE: take any buffer out of the map (its holders keep their quota entries).
    pub(super) fn unregister(&self, uuid: &Uuid) -> Option<Arc<Buffer>> {
        lock(&self.inner).unregister(uuid)
    }

    /// A domain departs: its holdings are emptied (its epoch moves on first, so work that
    /// checked it before is undone), its own buffers leave the map. Returns its VM, if it is
    /// one.
    pub(super) fn depart(
        &self,
        domain: DomainId,
        how: Departure,
    ) -> (Departed, Option<Arc<VmHandle>>) {
        let mut inner = lock(&self.inner);
        let (holdings, vm) = match inner.domains.get_mut(&domain) {
            Some(d) => {
                if let Some(vm) = &d.vm {
                    vm.epoch.fetch_add(1, Ordering::SeqCst);
                }
                (std::mem::take(&mut d.holdings), d.vm.clone())
            }
            None => (Holdings::default(), None),
        };
        let mut destroyed = Vec::new();
        let mut revoked_own = Vec::new();
        for (uuid, h) in holdings.held {
            match h.role {
                Role::Own => destroyed.extend(inner.unregister(&uuid)),
                Role::Revoked => revoked_own.extend(h.revoked_own),
                Role::Attached => {}
            }
        }
        if how == Departure::Gone {
            inner.domains.remove(&domain);
        }
        let departed = Departed {
            destroyed,
            revoked_own,
            others: inner.buffers.values().cloned().collect(),
        };
        (departed, vm)
    }
}
