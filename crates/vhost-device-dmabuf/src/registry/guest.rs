// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The guest requests (spec section 6), on the typed requests the protocol crate decodes. Each
//! asks the maps first and the buffer second, never holding both locks (see the module doc of
//! [`super`]); completions and events go out once both are dropped.

use std::sync::Arc;
use std::time::Instant;

use log::debug;
use virtio_dmabuf_proto::request::{AttachRequest, CreateRequest, SyncPhase, SyncRequest};
use virtio_dmabuf_proto::uuid;
use virtio_dmabuf_proto::virtio::Uuid;
use vm_memory::GuestAddressSpace;

use super::buffer::{BufferParts, Ended, ImportView, Origin, Owner, Requester, VmAccess};
use super::maps::Released;
use super::{Completion, LookupInfo, Registry, RegistryError, SyncOutcome, VmHandle};
use crate::arbiter::Access;
use crate::memory::SegList;

impl Registry {
    /// CREATE: register guest pages as a new buffer.
    pub fn create(&self, vm: &Arc<VmHandle>, req: CreateRequest) -> Result<Uuid, RegistryError> {
        let mem = vm.mem.memory();
        let segs = SegList::new(req.segments, req.size, &mem).map_err(RegistryError::Segments)?;
        self.check_not_window(vm, &mem, &segs)?;
        drop(mem);
        let runs = segs.runs() as u64;
        let parts = BufferParts {
            size: req.size,
            read_only: req.flags.read_only,
            host_only: req.flags.host_only,
            owner: Owner::Vm(vm.domain),
            owner_name: vm.name.clone(),
            origin: Origin::Guest {
                vm: vm.clone(),
                segs,
            },
            access: if req.flags.host_only {
                VmAccess::NoVm
            } else {
                VmAccess::All
            },
        };
        let uuid = self.register(Some(vm), runs, parts)?;
        debug!(
            "{}: created {} ({} bytes, {runs} runs)",
            vm.name,
            uuid::format(&uuid),
            req.size
        );
        Ok(uuid)
    }

    /// RELEASE: drop this VM's reference. An own buffer is destroyed; an import is detached.
    pub fn release(&self, vm: &VmHandle, uuid: &Uuid) -> Result<(), RegistryError> {
        match self.take_holding(vm, uuid)? {
            // A revoked mapped import's range was kept out of use until now (13.4).
            Released::Gone => vm.shm.release_quarantine(uuid),
            Released::Destroyed(buf) => {
                self.destroy(&buf, None);
                self.detach_exports(&buf);
            }
            Released::RevokedOwn(buf) => self.detach_exports(&buf),
            Released::Detached(buf) => {
                let (fired, mapped) = buf.drop_domain(vm.domain, &self.stats);
                self.fire(fired);
                if let Some(range) = mapped {
                    self.unmap_released(vm, uuid, &range);
                }
            }
        }
        Ok(())
    }

    /// LOOKUP: size and flags as this VM sees them.
    pub fn lookup(&self, vm: &VmHandle, uuid: &Uuid) -> Result<LookupInfo, RegistryError> {
        let buf = self.visible(vm, uuid)?;
        Ok(LookupInfo {
            size: buf.size,
            read_only: buf.read_only_for(vm.domain),
            host_backed: buf.host_backed(),
            own: buf.owner == Owner::Vm(vm.domain),
        })
    }

    /// ATTACH: this VM's pages become its copy of a buffer registered elsewhere.
    pub fn attach(&self, vm: &Arc<VmHandle>, req: AttachRequest) -> Result<(), RegistryError> {
        let buf = self.visible(vm, &req.uuid)?;
        if buf.owner == Owner::Vm(vm.domain) {
            return Err(RegistryError::AlreadyExists(buf.uuid));
        }
        let mem = vm.mem.memory();
        let segs = SegList::new(req.segments, buf.size, &mem).map_err(RegistryError::Segments)?;
        self.check_not_window(vm, &mem, &segs)?;
        drop(mem);
        let epoch = self.hold_attached(vm, &buf, segs.runs() as u64)?;
        // Destroyed, or the VM reset, since the maps said yes: as if the ATTACH came after.
        if let Err(e) = buf.add_import(vm, ImportView::Copy(segs), epoch) {
            self.unhold(vm.domain, &buf.uuid);
            return Err(e);
        }
        Ok(())
    }

    /// SYNC. A START may park: then `done` is called later, exactly once.
    pub fn guest_sync(&self, vm: &VmHandle, req: &SyncRequest, done: Completion) -> SyncOutcome {
        let (buf, epoch) = match self.held_buffer(vm, &req.uuid) {
            Ok(held) => held,
            Err(e) => return SyncOutcome::Done(Err(e)),
        };
        let access = Access {
            domain: vm.domain,
            offset: req.offset,
            len: req.len,
            dir: req.dir,
        };
        if let Err(e) = buf.check_access(&access) {
            return SyncOutcome::Done(Err(e));
        }
        match req.phase {
            SyncPhase::End => {
                // A write END's copy back into a host dma-buf waits for its fences, at most the
                // daemon's bound (spec section 6.6).
                let deadline = Instant::now() + self.limits.sync_timeout;
                let (ended, fired) = buf.end(&access, Some((done, deadline)), &self.stats);
                self.fire(fired);
                match ended {
                    Ended::Now(r) => SyncOutcome::Done(r),
                    Ended::Fences => SyncOutcome::Parked,
                }
            }
            SyncPhase::Start { timeout_ms } => {
                self.begin(&buf, Requester::vm(vm, epoch), access, timeout_ms, done)
            }
        }
    }
}
