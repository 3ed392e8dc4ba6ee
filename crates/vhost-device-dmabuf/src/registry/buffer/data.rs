// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! One buffer's bytes, under its `state` lock: the fence copies between the origin and an
//! import, the `DMA_BUF_IOCTL_SYNC` bracket of a host dma-buf origin and the waits for its
//! fences, the in-place access of host consumers, and the udmabuf exports and their detaching.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use dmabuf_sys_util::dma_buf::CpuAccess;
use vm_memory::{GuestAddressSpace, VolatileSlice};

use super::super::fence::{FenceWait, Phase};
use super::super::{lock, Fired, RegistryError, Stats, VmHandle};
use super::{bracket_of, BufState, Buffer, Import, ImportView, Origin, FENCE_GRACE};
use crate::arbiter::Access;
use crate::hostfile::{self, HostFileError};
use crate::memory::{check_range, copy_slices, MemError, SegList};

impl Buffer {
    /// Whether the fence copy of `access` in `phase` must first wait for the fences of a host
    /// dma-buf origin (the domain has an import, and they are not signalled): the dma-buf and
    /// what its fences must allow.
    pub(super) fn fence_wait(
        &self,
        st: &BufState,
        access: &Access,
        phase: Phase,
    ) -> Option<(Arc<std::fs::File>, CpuAccess)> {
        let Origin::Host(hf) = &self.origin else {
            return None;
        };
        let file = hf.dma_buf()?;
        let mapped = match &st.imports.get(&access.domain)?.view {
            ImportView::Copy(_) => false,
            ImportView::Mapped(_) => true,
        };
        let cpu = match phase {
            // A copy reads the origin; a mapped import opens the bracket of its own direction.
            Phase::Start if mapped => bracket_of(access),
            Phase::Start => CpuAccess::Read,
            // A mapped import's END only closes its bracket, which waits for nothing.
            Phase::End if mapped => return None,
            Phase::End => CpuAccess::Write,
        };
        (!hf.fences_signalled(cpu)).then(|| (file.clone(), cpu))
    }

    /// A request waiting for fences is done waiting: `ready` (the fences allow it) or its
    /// deadline passed. A START is brought up to date and granted, or at the deadline answered
    /// `TIMEOUT` with its access let go; a write END copies back and ends, or at the deadline
    /// ends without copying, answered `TIMEOUT`. If the access is gone meanwhile (the domain was
    /// reset, the buffer destroyed, the access ended), the answer says so.
    pub(in crate::registry) fn fence_done(
        &self,
        w: FenceWait,
        ready: bool,
        stats: &Stats,
    ) -> Fired {
        let mut fired = Fired::new();
        let mut st = lock(&self.state);
        let r = if st.revoked {
            Err(RegistryError::Revoked(self.uuid))
        } else if !st.arbiter.has(&w.access) {
            Err(RegistryError::Cancelled)
        } else {
            // The fences are signalled: the bracket's wait is short; the watchdog bounds it.
            let deadline = w.deadline.max(Instant::now() + FENCE_GRACE);
            match (w.phase, ready) {
                (Phase::Start, true) => {
                    let r = self.fence_in(&st, &w.access, deadline, stats);
                    if r.is_err() {
                        let grants = st.arbiter.end(&w.access).unwrap_or_default();
                        self.grant(&mut st, grants, &mut fired, stats);
                    }
                    r
                }
                (Phase::End, true) => {
                    self.end_locked(&mut st, &w.access, deadline, &mut fired, stats)
                }
                (_, false) => {
                    let grants = st.arbiter.end(&w.access).unwrap_or_default();
                    self.grant(&mut st, grants, &mut fired, stats);
                    Err(RegistryError::HostSync(
                        self.uuid,
                        HostFileError::FenceTimeout,
                    ))
                }
            }
        };
        fired.push((w.done, r));
        fired
    }

    // ------------------------------------------------------------------ exports

    /// A udmabuf over a guest-backed origin's pages, made with `dev`. Made under this buffer's
    /// lock, so that a RELEASE, which detaches the exports under it too, either comes first
    /// (the export is refused) or sees it.
    pub(in crate::registry) fn export(
        &self,
        dev: &std::fs::File,
    ) -> Result<std::fs::File, RegistryError> {
        let mut st = lock(&self.state);
        if st.revoked {
            return Err(RegistryError::NotFound(self.uuid));
        }
        match &self.origin {
            Origin::Guest { vm, segs } => {
                let f = hostfile::export_udmabuf(dev, &vm.mem.memory(), segs)
                    .map_err(|e| RegistryError::Udmabuf(self.uuid, e))?;
                st.exported = true;
                Ok(f)
            }
            Origin::Host(_) => Err(RegistryError::ExportHostBacked(self.uuid)),
        }
    }

    /// The owner lets go of the buffer's pages (RELEASE, or its reset or departure): if they
    /// were ever exported, punch them out of guest RAM so that the exports keep the old pages
    /// and the guest gets fresh ones (`docs/device-spec.md` section 6.3). Once: a second call
    /// punches nothing (the guest may have reused the pages by then). Called only after
    /// [`Buffer::revoke`], so no export can follow.
    pub(in crate::registry) fn detach_exports(&self) -> Result<u64, RegistryError> {
        let mut st = lock(&self.state);
        if !st.exported {
            return Ok(0);
        }
        st.exported = false;
        match &self.origin {
            Origin::Guest { vm, segs } => hostfile::detach_guest_pages(&vm.mem.memory(), segs)
                .map_err(|e| RegistryError::DetachExports(self.uuid, e)),
            Origin::Host(_) => Ok(0),
        }
    }

    /// Whether a udmabuf over its pages is outstanding (not detached yet).
    #[cfg(test)]
    pub(in crate::registry) fn exported(&self) -> bool {
        lock(&self.state).exported
    }

    /// Pretend an export was made (unit tests, where there is no /dev/udmabuf).
    #[cfg(test)]
    pub(in crate::registry) fn mark_exported(&self) {
        lock(&self.state).exported = true;
    }

    // ------------------------------------------------------------------ data

    /// At a granted START: copy the origin's range into the domain's import, if it has one.
    /// A mapped import moves nothing: a host dma-buf origin is bracketed for it instead, START
    /// here and END at its END (spec section 13.3).
    pub(super) fn fence_in(
        &self,
        st: &BufState,
        access: &Access,
        deadline: Instant,
        stats: &Stats,
    ) -> Result<(), RegistryError> {
        match st.imports.get(&access.domain) {
            Some(
                i @ Import {
                    view: ImportView::Copy(segs),
                    ..
                },
            ) => {
                let n = self.copy(&i.vm, segs, access, Toward::Import, deadline, stats)?;
                i.copied.fetch_add(n, Ordering::Relaxed);
                Ok(())
            }
            Some(Import {
                view: ImportView::Mapped(_),
                ..
            }) => self.begin_origin_access(bracket_of(access), deadline),
            None => Ok(()),
        }
    }

    /// At an END: a write copies the domain's import back to the origin, if it is a copy; a
    /// mapped import closes the origin's bracket its START opened.
    pub(super) fn fence_out(
        &self,
        st: &BufState,
        access: &Access,
        deadline: Instant,
        stats: &Stats,
    ) -> Result<(), RegistryError> {
        match st.imports.get(&access.domain) {
            Some(
                i @ Import {
                    view: ImportView::Copy(segs),
                    ..
                },
            ) if access.dir.writes() => {
                let n = self.copy(&i.vm, segs, access, Toward::Origin, deadline, stats)?;
                i.copied.fetch_add(n, Ordering::Relaxed);
                Ok(())
            }
            Some(Import {
                view: ImportView::Mapped(_),
                ..
            }) => self.end_origin_access(bracket_of(access)),
            _ => Ok(()),
        }
    }

    /// Copy the range between the origin and an importer's pages, inside the origin's CPU-access
    /// bracket (a host dma-buf's `DMA_BUF_IOCTL_SYNC`); returns the bytes copied.
    pub(super) fn copy(
        &self,
        vm: &VmHandle,
        segs: &SegList,
        access: &Access,
        toward: Toward,
        deadline: Instant,
        stats: &Stats,
    ) -> Result<u64, RegistryError> {
        let bracket = match toward {
            Toward::Origin => CpuAccess::Write,
            Toward::Import => CpuAccess::Read,
        };
        self.begin_origin_access(bracket, deadline)?;
        let mem = vm.mem.memory();
        let copied = segs
            .slices(&mem, access.offset, access.len)
            .map_err(|e| RegistryError::StaleMemory(self.uuid, e))
            .and_then(|theirs| {
                self.with_origin(access.offset, access.len, |origin| match toward {
                    Toward::Origin => copy_slices(&theirs, origin),
                    Toward::Import => copy_slices(origin, &theirs),
                })
            });
        let ended = self.end_origin_access(bracket);
        let n = copied?;
        ended?;
        stats.copied_bytes.fetch_add(n, Ordering::Relaxed);
        Ok(n)
    }

    /// Run `f` over the origin's bytes `offset..offset+len` (checked against the size).
    pub(super) fn with_origin<R>(
        &self,
        offset: u64,
        len: u64,
        f: impl FnOnce(&[VolatileSlice<'_, ()>]) -> R,
    ) -> Result<R, RegistryError> {
        match &self.origin {
            Origin::Guest { vm, segs } => {
                let mem = vm.mem.memory();
                let slices = segs
                    .slices(&mem, offset, len)
                    .map_err(|e| RegistryError::StaleMemory(self.uuid, e))?;
                Ok(f(&slices))
            }
            Origin::Host(hf) => {
                let s =
                    hf.slice(offset, len)
                        .ok_or(RegistryError::Range(MemError::OutOfRange {
                            offset,
                            len,
                            size: self.size,
                        }))?;
                Ok(f(&[s]))
            }
        }
    }

    pub(super) fn begin_origin_access(
        &self,
        access: CpuAccess,
        deadline: Instant,
    ) -> Result<(), RegistryError> {
        match &self.origin {
            Origin::Host(hf) => hf
                .begin_cpu_access(access, deadline)
                .map_err(|e| RegistryError::HostSync(self.uuid, e)),
            Origin::Guest { .. } => Ok(()),
        }
    }

    pub(super) fn end_origin_access(&self, access: CpuAccess) -> Result<(), RegistryError> {
        match &self.origin {
            Origin::Host(hf) => hf
                .end_cpu_access(access)
                .map_err(|e| RegistryError::HostSync(self.uuid, e)),
            Origin::Guest { .. } => Ok(()),
        }
    }

    /// Run `f` over the origin bytes of a range `domain` holds in a direction that allows
    /// `access.dir`, in place. `f` runs under this buffer's lock: it must not call the registry.
    /// A host dma-buf origin's fences are waited for first, with no lock held, at most until
    /// `deadline` (`TIMEOUT` then).
    pub(in crate::registry) fn with_held<R>(
        &self,
        access: &Access,
        deadline: Instant,
        f: impl FnOnce(&[VolatileSlice<'_, ()>]) -> R,
    ) -> Result<R, RegistryError> {
        check_range(self.size, access.offset, access.len).map_err(RegistryError::Range)?;
        let bracket = bracket_of(access);
        if let Origin::Host(hf) = &self.origin {
            if !hf.wait_fences(bracket, deadline) {
                return Err(RegistryError::HostSync(
                    self.uuid,
                    HostFileError::FenceTimeout,
                ));
            }
        }
        let st = lock(&self.state);
        if st.revoked {
            return Err(RegistryError::NotFound(self.uuid));
        }
        if !st
            .arbiter
            .holds(access.domain, access.offset, access.len, access.dir)
        {
            return Err(RegistryError::NotHeld);
        }
        self.begin_origin_access(bracket, deadline.max(Instant::now() + FENCE_GRACE))?;
        let r = self.with_origin(access.offset, access.len, f);
        self.end_origin_access(bracket)?;
        r
    }
}

/// Which way a fence copies.
#[derive(Clone, Copy)]
pub(super) enum Toward {
    /// Import → origin (a write END).
    Origin,
    /// Origin → import (a granted START).
    Import,
}
