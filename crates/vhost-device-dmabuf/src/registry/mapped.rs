// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Mapped imports (spec section 13): MAP, and the removal of the mapping on every way an import
//! ends — the importer's RELEASE, the revocation of the buffer (its owner's RELEASE, reset or
//! departure, the host's REVOKE), the importer's own reset or departure.
//!
//! Mapping goes through the importer's front-end (`crate::shm`), which answers after it changed
//! the VM's memory, and may update the daemon's memory table on the other channel before it
//! does. So no registry lock (and no vring lock) is held while a map or unmap is waited for:
//! the import is registered in the buffer first (with its range already reserved), then mapped;
//! a revocation that comes in between finds it and posts its unmap behind the map on the same
//! channel, in order.

use std::sync::Arc;

use log::warn;
use virtio_dmabuf_proto::uuid;
use virtio_dmabuf_proto::virtio::{Uuid, VIRTIO_DMABUF_F_MAP};
use vm_memory::{GuestAddress, GuestAddressSpace, GuestMemoryBackend, GuestMemoryRegion};

use super::buffer::{Buffer, ImportView, Importer, Origin, Owner};
use super::maps::Departure;
use super::{chain, Registry, RegistryError, VmHandle};
use crate::memory::{GuestMem, SegList};
use crate::shm::alloc::PAGE;
use crate::shm::{page_round, MappedRange, Piece, ShmError, MAX_MAPPINGS};

/// Why a buffer cannot be mapped (UNSUPPORTED, spec section 13.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unmappable {
    /// The owning VM did not negotiate `VIRTIO_DMABUF_F_MAP` (it may share parts of its pages).
    #[error("its owner did not negotiate VIRTIO_DMABUF_F_MAP")]
    OwnerWithoutMap,
    /// A segment that does not start, or (but for the last) end, on a page.
    #[error("its segments are not whole pages")]
    Unaligned,
    /// Guest RAM without a file (not shared memory), or a file offset not on a page.
    #[error("its pages are not in a mappable file")]
    NoFile,
    /// The buffer is read-only for this VM (or its host file is): a VMM maps every range of the
    /// region writable (QEMU 11.1.3 does not honour the read-only mapping flag, and fails an
    /// `O_RDONLY` fd), so read-only could not be enforced. The driver imports a copy instead.
    #[error("it is read-only for this VM, and the VMM's mappings are always writable")]
    ReadOnly,
    /// A host file that ends inside the buffer's last page: a VMM maps whole pages of a file
    /// and refuses a mapping past its end (QEMU: "backing store size ... is too small").
    #[error("its file ends inside its last page")]
    ShortFile,
    /// More pieces than a region may hold mappings.
    #[error("it needs more than {MAX_MAPPINGS} mappings")]
    TooManyPieces,
}

/// What a successful MAP tells the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapInfo {
    /// Offset in the region.
    pub offset: u64,
    /// Bytes mapped (the size rounded up to a page).
    pub len: u64,
    /// The mapping is read-only.
    pub read_only: bool,
    /// Its origin is a host file.
    pub host_backed: bool,
}

impl Registry {
    /// MAP: import `uuid` mapped in place in `vm`'s shared memory region.
    pub fn map(&self, vm: &Arc<VmHandle>, uuid: &Uuid) -> Result<MapInfo, RegistryError> {
        let buf = self.visible(vm, uuid)?;
        if buf.owner == Owner::Vm(vm.domain) {
            return Err(RegistryError::AlreadyExists(buf.uuid));
        }
        if !vm.shm.mappable() {
            return Err(RegistryError::Mapping(buf.uuid, ShmError::NoRegion));
        }
        if buf.read_only_for(vm.domain) || !origin_writable(&buf) {
            return Err(RegistryError::Unmappable(buf.uuid, Unmappable::ReadOnly));
        }
        let pieces = pieces_of(&buf)?;
        let epoch = self.hold_attached(vm, &buf, pieces.len() as u64)?;
        let lens: Vec<u64> = pieces.iter().map(|p| p.len).collect();
        let range = match vm.shm.reserve(&pieces) {
            Ok(r) => r,
            Err(e) => {
                self.unhold(vm.domain, &buf.uuid);
                return Err(RegistryError::Mapping(buf.uuid, e));
            }
        };
        debug_assert_eq!(range.pieces.iter().map(|p| p.1).collect::<Vec<_>>(), lens);
        // Registered before it is mapped: a revocation from here on unmaps it.
        if let Err(e) = buf.add_import(vm, ImportView::Mapped(range.clone()), epoch) {
            vm.shm.abandon(&range);
            self.unhold(vm.domain, &buf.uuid);
            return Err(e);
        }
        if let Err(e) = vm.shm.establish(&range, pieces, true) {
            buf.remove_import(vm.domain);
            self.unhold(vm.domain, &buf.uuid);
            return Err(RegistryError::Mapping(buf.uuid, e));
        }
        Ok(MapInfo {
            offset: range.offset,
            len: range.len,
            read_only: false,
            host_backed: buf.host_backed(),
        })
    }

    /// CREATE and ATTACH: refuse pages of the VM's own shared memory region (a host file or
    /// another VM's pages mapped there are not this VM's RAM).
    pub(super) fn check_not_window(
        &self,
        vm: &VmHandle,
        mem: &GuestMem,
        segs: &SegList,
    ) -> Result<(), RegistryError> {
        match vm.shm.find_window_run(mem, segs.iter_runs()) {
            Some((addr, len)) => Err(RegistryError::Segments(crate::memory::MemError::NotRam {
                addr,
                len,
            })),
            None => Ok(()),
        }
    }

    /// The importer released a mapped import: the mapping is gone before RELEASE is answered.
    pub(super) fn unmap_released(&self, vm: &VmHandle, uuid: &Uuid, range: &MappedRange) {
        if let Err(e) = vm.shm.unmap(range, true) {
            warn!(
                "{}: unmapping {} on RELEASE: {}",
                vm.name,
                uuid::format(uuid),
                chain(&e)
            );
        }
    }

    /// A buffer was destroyed or revoked: each importer's mapping is removed (waited for) and
    /// its range kept until the importer releases the UUID.
    pub(super) fn unmap_revoked(&self, uuid: &Uuid, importers: &[Importer]) {
        for (vm, range) in importers {
            let Some(range) = range else { continue };
            if let Err(e) = vm.shm.revoke(uuid, range.clone()) {
                warn!(
                    "{}: unmapping revoked {}: {}",
                    vm.name,
                    uuid::format(uuid),
                    chain(&e)
                );
            }
            // Released while this ran: nobody will release the quarantine any more.
            if !self.holds(vm, uuid) {
                vm.shm.release_quarantine(uuid);
            }
        }
    }

    /// The importer itself departed. On a reset the front-end removed every mapping (QEMU 11.1
    /// does in its virtio reset, and crashes on a later UNMAP of one) and the region is empty
    /// again; a departed connection's region is gone with it.
    pub(super) fn unmap_departed(&self, vm: &VmHandle, how: Departure) {
        match how {
            Departure::Reset => vm.shm.forget_all(),
            Departure::Gone => vm.shm.channel.detach(),
        }
    }
}

/// Whether the daemon could write the origin (a read-only host file is mapped read-only).
fn origin_writable(buf: &Buffer) -> bool {
    match &buf.origin {
        Origin::Host(hf) => hf.writable(),
        Origin::Guest { .. } => true,
    }
}

/// The file ranges a mapping of `buf` is made of: the host file, or the owner's guest RAM one
/// piece per contiguous run (split where the run crosses memory regions).
fn pieces_of(buf: &Buffer) -> Result<Vec<Piece>, RegistryError> {
    let unmappable = |why| RegistryError::Unmappable(buf.uuid, why);
    let io = |e| RegistryError::Mapping(buf.uuid, ShmError::File(e));
    let len = page_round(buf.size).ok_or(unmappable(Unmappable::Unaligned))?;
    match &buf.origin {
        Origin::Host(hf) if hf.file_size() < len => Err(unmappable(Unmappable::ShortFile)),
        Origin::Host(hf) => Ok(vec![Piece {
            file: hf.dup_file().map_err(io)?,
            fd_offset: 0,
            len,
        }]),
        Origin::Guest { vm, segs } => {
            if !vm.shm.driver_negotiated(VIRTIO_DMABUF_F_MAP) {
                return Err(unmappable(Unmappable::OwnerWithoutMap));
            }
            let mem = vm.mem.memory();
            let n = segs.runs();
            let mut pieces = Vec::new();
            for (i, (gpa, run_len)) in segs.iter_runs().enumerate() {
                let last = i + 1 == n;
                if gpa % PAGE != 0 || (!last && run_len % PAGE != 0) {
                    return Err(unmappable(Unmappable::Unaligned));
                }
                let run_len = page_round(run_len).ok_or(unmappable(Unmappable::Unaligned))?;
                guest_pieces(&mem, gpa, run_len, &mut pieces)
                    .map_err(|()| unmappable(Unmappable::NoFile))?;
                if pieces.len() > MAX_MAPPINGS {
                    return Err(unmappable(Unmappable::TooManyPieces));
                }
            }
            Ok(pieces)
        }
    }
}

/// The memfd ranges behind `gpa..gpa+len` of `mem`.
fn guest_pieces(mem: &GuestMem, gpa: u64, len: u64, out: &mut Vec<Piece>) -> Result<(), ()> {
    let end = gpa.checked_add(len).ok_or(())?;
    let mut addr = gpa;
    while addr < end {
        let region = mem.find_region(GuestAddress(addr)).ok_or(())?;
        let start = region.start_addr().0;
        let take = (start + region.len()).min(end) - addr;
        let fo = region.file_offset().ok_or(())?;
        let fd_offset = fo.start() + (addr - start);
        if !fd_offset.is_multiple_of(PAGE) || !take.is_multiple_of(PAGE) {
            return Err(());
        }
        let file = fo.file().try_clone().map_err(|_| ())?;
        out.push(Piece {
            file,
            fd_offset,
            len: take,
        });
        addr += take;
    }
    Ok(())
}
