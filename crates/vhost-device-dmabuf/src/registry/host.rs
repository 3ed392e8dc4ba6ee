// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Host operations (`docs/control-protocol.md` section 4): sharing host memory, CPU access to a
//! [`HostRange`] of any buffer, moving its bytes, exports, waits, and [`HostSession`] for
//! consumers in the daemon's process. As in [`super::guest`], the maps are asked first and the
//! buffer second, never under one lock.

use std::fs::File;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use dmabuf_sys_util::dma_buf::CpuAccess;
use virtio_dmabuf_proto::virtio::Uuid;
use virtio_dmabuf_proto::Direction;
use vm_memory::VolatileSlice;

use super::buffer::{BufferParts, Ended, Origin, Owner, Requester, VmAccess};
use super::{BufferSummary, Completion, Registry, RegistryError, SyncOutcome};
use crate::arbiter::{Access, DomainId};
use crate::hostfile::{HostFile, HostFileError};
use crate::memory::copy_slices;

/// A byte range of a buffer and the direction of a host domain's access to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostRange {
    /// The buffer.
    pub uuid: Uuid,
    /// First byte.
    pub offset: u64,
    /// Bytes.
    pub len: u64,
    /// A host access reads or writes (a write may also read).
    pub dir: Direction,
}

impl HostRange {
    /// Read access to `offset..offset+len` of `uuid`.
    pub fn read(uuid: &Uuid, offset: u64, len: u64) -> HostRange {
        HostRange {
            uuid: *uuid,
            offset,
            len,
            dir: Direction::Read,
        }
    }

    /// Write access to `offset..offset+len` of `uuid`.
    pub fn write(uuid: &Uuid, offset: u64, len: u64) -> HostRange {
        HostRange {
            dir: Direction::Write,
            ..HostRange::read(uuid, offset, len)
        }
    }

    fn access(&self, domain: DomainId) -> Access {
        Access {
            domain,
            offset: self.offset,
            len: self.len,
            dir: self.dir,
        }
    }
}

/// A SHARE: host memory to register as a buffer.
#[derive(Debug)]
pub struct ShareRequest {
    /// A memfd sealed against shrinking, or a dma-buf.
    pub file: File,
    /// The buffer is the first `size` bytes.
    pub size: u64,
    /// No domain, the sharer included, may write through the daemon.
    pub read_only: bool,
    /// No VM may import it.
    pub host_only: bool,
    /// The VMs that may import it (empty: every VM).
    pub allowed_vms: Vec<String>,
    /// `host:<pid>`.
    pub owner: String,
}

impl Registry {
    /// Share a host fd as a new host-backed buffer.
    pub fn share(&self, req: ShareRequest) -> Result<Uuid, RegistryError> {
        let hf = HostFile::new(req.file, req.size).map_err(RegistryError::Share)?;
        let access = if req.host_only {
            VmAccess::NoVm
        } else if req.allowed_vms.is_empty() {
            VmAccess::All
        } else {
            VmAccess::Named(req.allowed_vms)
        };
        let parts = BufferParts {
            size: req.size,
            read_only: req.read_only || !hf.writable(),
            host_only: req.host_only,
            owner: Owner::Host,
            owner_name: req.owner,
            origin: Origin::Host(hf),
            access,
        };
        self.register(None, 0, parts)
    }

    /// Revoke any buffer: importers detached and notified, waiters failed, later lookups fail.
    /// A VM that owns it keeps its quota entry until it releases the UUID, and is notified too.
    pub fn revoke(&self, uuid: &Uuid) -> Result<(), RegistryError> {
        let buf = self
            .unregister(uuid)
            .ok_or(RegistryError::NotFound(*uuid))?;
        let owner = match &buf.origin {
            Origin::Guest { vm, .. } => Some(vm.clone()),
            Origin::Host(_) => None,
        };
        self.destroy(&buf, owner);
        Ok(())
    }

    /// Begin CPU access for a host domain, waiting up to the bound.
    pub fn host_begin(
        &self,
        domain: DomainId,
        range: &HostRange,
        timeout_ms: u32,
    ) -> Result<(), RegistryError> {
        self.host_begin_watched(domain, range, timeout_ms, &|| false)
    }

    /// [`Registry::host_begin`] for a remote client: while the begin waits, `gone` is asked every
    /// few milliseconds whether the client went away; if so the domain is released at once, so a
    /// vanished client never keeps a place in the queue.
    pub fn host_begin_watched(
        &self,
        domain: DomainId,
        range: &HostRange,
        timeout_ms: u32,
        gone: &dyn Fn() -> bool,
    ) -> Result<(), RegistryError> {
        let buf = self
            .buffer(&range.uuid)
            .ok_or(RegistryError::NotFound(range.uuid))?;
        let access = range.access(domain);
        buf.check_access(&access)?;
        let (tx, rx) = mpsc::sync_channel(1);
        let done: Completion = Box::new(move |r| {
            let _ = tx.send(r);
        });
        if let SyncOutcome::Done(r) = self.begin(&buf, Requester::host(), access, timeout_ms, done)
        {
            return r;
        }
        // The timeout thread answers at the bound; the extra second only guards against a bug
        // there turning into a hang.
        let deadline = Instant::now() + self.limits.wait_bound(timeout_ms) + Duration::from_secs(1);
        loop {
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(r) => return r,
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(RegistryError::Cancelled),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if gone() {
                self.reset_domain(domain);
                return Err(RegistryError::Cancelled);
            }
            if Instant::now() >= deadline {
                return Err(RegistryError::Timeout);
            }
        }
    }

    /// End CPU access for a host domain.
    pub fn host_end(&self, domain: DomainId, range: &HostRange) -> Result<(), RegistryError> {
        let buf = self
            .buffer(&range.uuid)
            .ok_or(RegistryError::NotFound(range.uuid))?;
        let access = range.access(domain);
        buf.check_access(&access)?;
        // A host domain has no import: its END copies nothing and never waits.
        let (ended, fired) = buf.end(&access, None, &self.stats);
        self.fire(fired);
        match ended {
            Ended::Now(r) => r,
            Ended::Fences => Err(RegistryError::NotHeld),
        }
    }

    /// Run `f` over the origin bytes of a range the host domain holds (for writing, if
    /// `range.dir` writes). This is the in-process, zero-copy path: `f` sees guest pages or the
    /// host file in place. `f` runs under the buffer's lock and must not call the registry.
    pub fn with_held_range<R>(
        &self,
        domain: DomainId,
        range: &HostRange,
        f: impl FnOnce(&[VolatileSlice<'_, ()>]) -> R,
    ) -> Result<R, RegistryError> {
        let buf = self
            .buffer(&range.uuid)
            .ok_or(RegistryError::NotFound(range.uuid))?;
        let deadline = Instant::now() + self.limits.sync_timeout;
        buf.with_held(&range.access(domain), deadline, f)
    }

    fn count_copied(&self, r: Result<u64, RegistryError>) -> Result<(), RegistryError> {
        self.stats.copied_bytes.fetch_add(r?, Ordering::Relaxed);
        Ok(())
    }

    /// Copy a held range out (one copy; the socket path).
    pub fn host_read(
        &self,
        domain: DomainId,
        uuid: &Uuid,
        offset: u64,
        out: &mut [u8],
    ) -> Result<(), RegistryError> {
        let range = HostRange::read(uuid, offset, out.len() as u64);
        let r = self.with_held_range(domain, &range, |slices| {
            let mut pos = 0;
            for s in slices {
                pos += s.copy_to(&mut out[pos..]);
            }
            pos as u64
        });
        self.count_copied(r)
    }

    /// Copy a held range into a host file at `file_offset` (one copy into the client's memfd,
    /// mapped for this call).
    pub fn host_read_into(
        &self,
        domain: DomainId,
        range: &HostRange,
        file: File,
        file_offset: u64,
    ) -> Result<(), RegistryError> {
        let dst = HostFile::new(file, file_offset.saturating_add(range.len))
            .map_err(RegistryError::ReadIntoTarget)?;
        dst.prefault_for_write(file_offset, range.len);
        self.host_read_into_target(domain, range, &dst, file_offset)
    }

    /// Check a READ_TARGET target once, when a client sets it: a sealed memfd or a dma-buf the
    /// daemon can write, mapped whole for as long as the caller keeps it.
    pub fn read_target(&self, file: File) -> Result<HostFile, RegistryError> {
        let dst = HostFile::new_whole(file).map_err(RegistryError::ReadIntoTarget)?;
        if !dst.writable() {
            return Err(RegistryError::ReadIntoReadOnly);
        }
        // Faulted in once, for every read into it.
        dst.prefault_for_write(0, dst.size());
        Ok(dst)
    }

    /// Copy a held range into `dst` at `file_offset`: the one-copy path, into a mapping the
    /// caller keeps across calls (its pages stay faulted in, so a read costs one memcpy).
    pub fn host_read_into_target(
        &self,
        domain: DomainId,
        range: &HostRange,
        dst: &HostFile,
        file_offset: u64,
    ) -> Result<(), RegistryError> {
        if !dst.writable() {
            return Err(RegistryError::ReadIntoReadOnly);
        }
        let target = dst
            .slice(file_offset, range.len)
            .ok_or(RegistryError::ReadIntoTarget(HostFileError::BadSize {
                size: file_offset.saturating_add(range.len),
                file_size: dst.size(),
            }))?;
        // The client's dma-buf: its fences first, with no lock held, at most the bound.
        let deadline = Instant::now() + self.limits.sync_timeout;
        if !dst.wait_fences(CpuAccess::Write, deadline) {
            return Err(RegistryError::ReadIntoSync(HostFileError::FenceTimeout));
        }
        dst.begin_cpu_access(CpuAccess::Write, deadline)
            .map_err(RegistryError::ReadIntoSync)?;
        let r = self.with_held_range(domain, range, |slices| copy_slices(slices, &[target]));
        // The copy's outcome is the answer; a failing end of the bracket changes nothing in it.
        let _ = dst.end_cpu_access(CpuAccess::Write);
        self.count_copied(r)
    }

    /// Write into a range held for writing.
    pub fn host_write(
        &self,
        domain: DomainId,
        uuid: &Uuid,
        offset: u64,
        data: &[u8],
    ) -> Result<(), RegistryError> {
        if let Some(buf) = self.buffer(uuid) {
            if buf.read_only_for(domain) {
                return Err(RegistryError::ReadOnly(*uuid));
            }
            if let Origin::Host(hf) = &buf.origin {
                if !hf.writable() {
                    return Err(RegistryError::NotWritable(*uuid));
                }
            }
        }
        let range = HostRange::write(uuid, offset, data.len() as u64);
        let r = self.with_held_range(domain, &range, |slices| {
            let mut pos = 0;
            for s in slices {
                s.copy_from(&data[pos..pos + s.len()]);
                pos += s.len();
            }
            pos as u64
        });
        self.count_copied(r)
    }

    /// A udmabuf (host dma-buf) over a guest-backed buffer's pages. Its lifetime: until the
    /// owner RELEASEs the buffer (or is reset, or goes away) it maps the guest's pages; from then
    /// on it keeps the pages it had, detached from guest RAM (`docs/device-spec.md` 6.3).
    pub fn export_udmabuf(&self, uuid: &Uuid) -> Result<File, RegistryError> {
        let buf = self.buffer(uuid).ok_or(RegistryError::NotFound(*uuid))?;
        // An exported fd is writable and outside the arbiter: never for read-only buffers.
        if buf.read_only {
            return Err(RegistryError::ExportReadOnly(*uuid));
        }
        if buf.host_backed() {
            return Err(RegistryError::ExportHostBacked(*uuid));
        }
        let dev = self
            .udmabuf_device()
            .map_err(|e| RegistryError::Udmabuf(*uuid, e))?;
        let f = buf.export(&dev)?;
        self.stats
            .zero_copy_bytes
            .fetch_add(buf.size, Ordering::Relaxed);
        Ok(f)
    }

    /// Wait until the buffer's write generation exceeds `after`. Returns the generation.
    pub fn wait_write(
        &self,
        uuid: &Uuid,
        after: u64,
        timeout_ms: u32,
    ) -> Result<u64, RegistryError> {
        let buf = self.buffer(uuid).ok_or(RegistryError::NotFound(*uuid))?;
        buf.wait_write(after, Instant::now() + self.limits.wait_bound(timeout_ms))
    }

    /// One buffer's description.
    pub fn info(&self, uuid: &Uuid) -> Option<BufferSummary> {
        self.buffer(uuid).map(|b| b.summary())
    }

    /// Every live buffer, sorted by UUID.
    pub fn list(&self) -> Vec<BufferSummary> {
        let mut out: Vec<BufferSummary> = self.buffers().iter().map(|b| b.summary()).collect();
        out.sort_by_key(|i| i.uuid);
        out
    }

    /// Bytes of daemon heap the buffer's segment list occupies (for the benchmarks).
    pub fn segment_heap_bytes(&self, uuid: &Uuid) -> Option<usize> {
        self.buffer(uuid).map(|b| b.segment_heap_bytes())
    }
}

/// A host consumer living in the daemon's process (access path (a)): it brackets its CPU access
/// like any other domain and then sees the buffer's origin in place — a guest's own pages or the
/// host file — without a copy. Its accesses are released when it is dropped.
pub struct HostSession {
    registry: Arc<Registry>,
    domain: DomainId,
}

impl HostSession {
    /// A new domain on `registry`.
    pub fn new(registry: &Arc<Registry>) -> HostSession {
        HostSession {
            registry: registry.clone(),
            domain: registry.add_host_domain(),
        }
    }

    /// Its arbitration domain.
    pub fn domain(&self) -> DomainId {
        self.domain
    }

    /// Begin CPU access, waiting at most `timeout_ms` (0: the daemon default).
    pub fn begin(&self, range: &HostRange, timeout_ms: u32) -> Result<(), RegistryError> {
        self.registry.host_begin(self.domain, range, timeout_ms)
    }

    /// End CPU access.
    pub fn end(&self, range: &HostRange) -> Result<(), RegistryError> {
        self.registry.host_end(self.domain, range)
    }

    /// Run `f` over the bytes of a range this session holds, in place (zero copy).
    pub fn with_range<R>(
        &self,
        range: &HostRange,
        f: impl FnOnce(&[VolatileSlice<'_, ()>]) -> R,
    ) -> Result<R, RegistryError> {
        let r = self.registry.with_held_range(self.domain, range, f)?;
        self.registry
            .stats
            .zero_copy_bytes
            .fetch_add(range.len, Ordering::Relaxed);
        Ok(r)
    }
}

impl Drop for HostSession {
    fn drop(&mut self) {
        self.registry.remove_domain(self.domain);
    }
}
