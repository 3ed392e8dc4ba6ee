// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! One VM connection's shared memory region (spec section 13.1): its size, the ranges mapped
//! in it ([`alloc`]), the back-end channel that maps and unmaps them ([`channel`]), and the
//! files it maps, so that the resolver never takes a mapping for guest RAM.
//!
//! Lock: `VmShm::state` guards the allocator, the quarantine and the file records. It is a
//! leaf: taken for bookkeeping only, never while a request to the front-end is waited for and
//! never together with a registry lock.

pub mod alloc;
pub mod channel;

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thiserror::Error;
use virtio_dmabuf_proto::virtio::Uuid;
use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};

use self::alloc::{AllocError, RegionAllocator, PAGE};
use self::channel::{ChannelError, ShmChannel, ShmOp};
use crate::memory::GuestMem;

/// Most mappings (SHMEM_MAP requests) live in one VM's region at a time. Each one becomes a
/// memory-table slot of the front-end's (QEMU adds the mapped subregion to the vhost memory
/// table: vhost-user-backend takes 509 slots, guest RAM uses 2 or more).
pub const MAX_MAPPINGS: usize = 256;

/// Smallest and largest region the daemon offers (`--shm-size`).
pub const MIN_SIZE: u64 = 2 << 20;
/// See [`MIN_SIZE`].
pub const MAX_SIZE: u64 = 64 << 30;

/// Why a mapping was refused or failed.
#[derive(Debug, Error)]
pub enum ShmError {
    /// No region (`--shm-size 0`, a front-end without SHMEM, no back-end channel, or one that
    /// broke).
    #[error("no shared memory region on this connection")]
    NoRegion,
    /// No free range, or the most mappings reached.
    #[error("the shared memory region is full")]
    NoSpace(#[source] Option<AllocError>),
    /// The front-end failed a request.
    #[error("mapping through the front-end failed")]
    Channel(#[source] ChannelError),
    /// The driver reset the device while the mapping was made.
    #[error("the driver reset the device meanwhile")]
    ResetMeanwhile,
    /// A file to map could not be inspected or duplicated.
    #[error("cannot prepare a file for mapping")]
    File(#[source] std::io::Error),
}

/// One piece of a mapping: `len` bytes of `file` from `fd_offset`, all multiples of a page.
#[derive(Debug)]
pub struct Piece {
    /// The file (a duplicate the mapping may keep).
    pub file: File,
    /// Offset in the file.
    pub fd_offset: u64,
    /// Bytes.
    pub len: u64,
}

/// A mapped range: where it is and the front-end mappings it is made of (an UNMAP names
/// exactly one mapping, as it was made).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappedRange {
    /// The region's generation (driver resets) when it was reserved.
    pub generation: u64,
    /// Offset in the region.
    pub offset: u64,
    /// Bytes.
    pub len: u64,
    /// `(offset, len)` of each front-end mapping, in order.
    pub pieces: Vec<(u64, u64)>,
}

/// A file range mapped into the region (or still in the front-end's memory table after its
/// unmap): memory-table regions inside it are the region's, not guest RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Window {
    dev: u64,
    ino: u64,
    start: u64,
    end: u64,
    /// Where it is mapped in the region.
    shm_offset: u64,
    /// Still mapped (an unmapped window is forgotten once no memory-table region uses it).
    live: bool,
}

/// Guest-physical `(addr, len)` ranges that are windows, and the memory table they were
/// computed from (each region's address, length and host address).
#[derive(Debug)]
struct Excluded {
    table: Vec<(u64, u64, usize)>,
    ranges: Vec<(u64, u64)>,
}

#[derive(Debug)]
struct State {
    alloc: RegionAllocator,
    mappings: usize,
    /// Ranges of revoked mapped imports, kept until the driver RELEASEs the UUID (13.4).
    quarantine: HashMap<Uuid, MappedRange>,
    windows: Vec<Window>,
    /// The guest-physical ranges of the memory table that are windows, for the table they
    /// were computed from.
    excluded: Option<Excluded>,
}

/// A VM connection's region.
pub struct VmShm {
    size: u64,
    negotiated: AtomicBool,
    /// The virtio features the driver acked.
    driver_features: AtomicU64,
    /// Driver resets so far (see [`ShmChannel::new`]).
    generation: Arc<AtomicU64>,
    /// Its back-end channel.
    pub channel: ShmChannel,
    state: Mutex<State>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl VmShm {
    /// A region of `size` bytes (0: none), whose front-end answers are waited for at most
    /// `bound`.
    pub fn new(size: u64, bound: Duration) -> VmShm {
        let generation = Arc::new(AtomicU64::new(0));
        VmShm {
            size,
            negotiated: AtomicBool::new(false),
            driver_features: AtomicU64::new(0),
            channel: ShmChannel::new(bound, generation.clone()),
            generation,
            state: Mutex::new(State {
                alloc: RegionAllocator::new(size),
                mappings: 0,
                quarantine: HashMap::new(),
                windows: Vec::new(),
                excluded: None,
            }),
        }
    }

    /// The configured size (what GET_SHMEM_CONFIG answers).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The front-end asked GET_SHMEM_CONFIG: it negotiated SHMEM and has the region.
    pub fn set_negotiated(&self) {
        self.negotiated.store(true, Ordering::SeqCst);
    }

    /// The driver acked `features` (device feature bits).
    pub fn set_driver_features(&self, features: u64) {
        self.driver_features.store(features, Ordering::SeqCst);
    }

    /// Whether the driver acked feature bit `bit`.
    pub fn driver_negotiated(&self, bit: u32) -> bool {
        self.driver_features.load(Ordering::SeqCst) & (1 << bit) != 0
    }

    /// Whether a MAP can be tried now.
    pub fn mappable(&self) -> bool {
        self.size > 0 && self.negotiated.load(Ordering::SeqCst) && self.channel.usable()
    }

    /// Mappings and free bytes (for tests and INFO).
    pub fn usage(&self) -> (usize, u64) {
        let st = lock(&self.state);
        (st.mappings, st.alloc.free_bytes())
    }

    /// Reserve a range for `pieces` at consecutive offsets (nothing is mapped yet).
    pub fn reserve(&self, pieces: &[Piece]) -> Result<MappedRange, ShmError> {
        if !self.mappable() {
            return Err(ShmError::NoRegion);
        }
        let total: u64 = pieces.iter().map(|p| p.len).sum();
        let mut windows = Vec::with_capacity(pieces.len());
        for p in pieces {
            let meta = p.file.metadata().map_err(ShmError::File)?;
            windows.push(Window {
                dev: meta.dev(),
                ino: meta.ino(),
                start: p.fd_offset,
                end: p.fd_offset.saturating_add(p.len),
                shm_offset: 0,
                live: true,
            });
        }
        let mut st = lock(&self.state);
        let generation = self.generation.load(Ordering::SeqCst);
        if st.mappings + pieces.len() > MAX_MAPPINGS {
            return Err(ShmError::NoSpace(None));
        }
        let offset = st
            .alloc
            .alloc(total)
            .map_err(|e| ShmError::NoSpace(Some(e)))?;
        st.mappings += pieces.len();
        let mut at = offset;
        let mut made = Vec::with_capacity(pieces.len());
        for (w, p) in windows.iter_mut().zip(pieces) {
            w.shm_offset = at;
            made.push((at, p.len));
            at += p.len;
        }
        // Recorded before the front-end can put the mapping into its memory table.
        st.windows.extend(windows);
        st.excluded = None;
        Ok(MappedRange {
            generation,
            offset,
            len: total,
            pieces: made,
        })
    }

    /// A reserved range that will not be mapped after all.
    pub fn abandon(&self, range: &MappedRange) {
        self.unmapped(range);
        self.free(range);
    }

    /// Map `pieces` into the range [`VmShm::reserve`] gave for them and wait for the front-end.
    /// No lock of the caller may be held (see [`channel`]). On failure what was mapped is
    /// unmapped. If the front-end refused a piece (it answered that it made no mapping), the
    /// range is free again once those unmaps are posted (a later MAP there goes behind them on
    /// the same channel); otherwise it is never given out again (the channel is broken, or
    /// what the front-end holds there is unknown).
    pub fn establish(
        &self,
        range: &MappedRange,
        pieces: Vec<Piece>,
        writable: bool,
    ) -> Result<(), ShmError> {
        let ops: Vec<ShmOp> = pieces
            .into_iter()
            .zip(&range.pieces)
            .map(|(p, &(shm_offset, len))| ShmOp::Map {
                file: p.file,
                fd_offset: p.fd_offset,
                shm_offset,
                len,
                writable,
            })
            .collect();
        if let Err((done, e)) = self.channel.call(ops) {
            self.channel.post(unmaps(range, done));
            if matches!(e, ChannelError::Refused(_)) {
                self.abandon(range);
            }
            return Err(ShmError::Channel(e));
        }
        if range.generation != self.generation.load(Ordering::SeqCst) {
            // The driver reset the device while this was mapped: whether the front-end made the
            // mapping before its reset (and removed it) or after (and still has it) cannot be
            // told, and neither an UNMAP nor a new mapping may touch it. The range stays out of
            // use until the connection ends.
            let mut st = lock(&self.state);
            if st.alloc.reserve_at(range.offset, range.len).is_ok() {
                st.mappings += range.pieces.len();
            }
            return Err(ShmError::ResetMeanwhile);
        }
        Ok(())
    }

    /// Remove a mapping; with `wait`, only once the front-end confirmed (bounded). The range is
    /// free again only after a confirmed (or, without `wait`, a posted) unmap.
    pub fn unmap(&self, range: &MappedRange, wait: bool) -> Result<(), ChannelError> {
        let ops = unmaps(range, range.pieces.len());
        if wait {
            self.channel.call(ops).map_err(|(_, e)| e)?;
        } else {
            self.channel.post(ops);
        }
        self.unmapped(range);
        self.free(range);
        Ok(())
    }

    fn free(&self, range: &MappedRange) {
        let mut st = lock(&self.state);
        if st.alloc.free(range.offset, range.len).is_ok() {
            st.mappings = st.mappings.saturating_sub(range.pieces.len());
        }
    }

    /// The front-end no longer maps `range`: its windows may go once the memory table drops
    /// them.
    fn unmapped(&self, range: &MappedRange) {
        let mut st = lock(&self.state);
        for w in &mut st.windows {
            if range.pieces.iter().any(|&(o, _)| o == w.shm_offset) {
                w.live = false;
            }
        }
    }

    /// Unmap a revoked import's range (wait bounded) and keep it out of use until the driver
    /// releases `uuid`. The range is put in quarantine first: a RELEASE that overtakes this
    /// frees it, and a later MAP there is posted after this UNMAP on the same channel.
    pub fn revoke(&self, uuid: &Uuid, range: MappedRange) -> Result<(), ChannelError> {
        let ops = unmaps(&range, range.pieces.len());
        lock(&self.state).quarantine.insert(*uuid, range.clone());
        // A failed unmap breaks the channel: nothing is mapped there again.
        self.channel.call(ops).map_err(|(_, e)| e)?;
        self.unmapped(&range);
        Ok(())
    }

    /// The driver released `uuid`: a quarantined range becomes free.
    pub fn release_quarantine(&self, uuid: &Uuid) {
        let range = lock(&self.state).quarantine.remove(uuid);
        if let Some(range) = range {
            self.free(&range);
        }
    }

    /// The driver reset the device: the front-end removed every mapping itself (QEMU does on
    /// virtio reset), so the whole region is free.
    pub fn forget_all(&self) {
        let mut st = lock(&self.state);
        self.generation.fetch_add(1, Ordering::SeqCst);
        st.alloc = RegionAllocator::new(self.size);
        st.mappings = 0;
        st.quarantine.clear();
        for w in &mut st.windows {
            w.live = false;
        }
    }

    /// Refuse `runs` (guest-physical `(addr, len)`) that touch a memory-table region backed by
    /// a file this region maps: the region's memory is not guest RAM a buffer may live in.
    /// Returns the first such run.
    pub fn find_window_run(
        &self,
        mem: &GuestMem,
        runs: impl Iterator<Item = (u64, u64)>,
    ) -> Option<(u64, u64)> {
        let excluded = {
            let mut st = lock(&self.state);
            if st.windows.is_empty() {
                return None;
            }
            let key: Vec<(u64, u64, usize)> = mem
                .iter()
                .map(|r| (r.start_addr().0, r.len(), r.as_ptr() as usize))
                .collect();
            match &st.excluded {
                Some(ex) if ex.table == key => ex.ranges.clone(),
                _ => {
                    let ranges = compute_excluded(mem, &mut st.windows);
                    st.excluded = Some(Excluded {
                        table: key,
                        ranges: ranges.clone(),
                    });
                    ranges
                }
            }
        };
        if excluded.is_empty() {
            return None;
        }
        runs.into_iter().find(|&(gpa, len)| {
            let end = gpa.saturating_add(len);
            // The last excluded range starting before `end`.
            let i = excluded.partition_point(|&(s, _)| s < end);
            i > 0 && {
                let (s, l) = excluded[i - 1];
                s + l > gpa
            }
        })
    }
}

/// The guest-physical ranges of `mem` whose backing file range lies inside a window; unmapped
/// windows that no region uses any more are forgotten (the front-end's memory table caught up).
fn compute_excluded(mem: &GuestMem, windows: &mut Vec<Window>) -> Vec<(u64, u64)> {
    let mut used = vec![false; windows.len()];
    let mut out = Vec::new();
    for r in mem.iter() {
        let Some(fo) = r.file_offset() else { continue };
        let Ok(meta) = fo.file().metadata() else {
            continue;
        };
        let (start, end) = (fo.start(), fo.start().saturating_add(r.len()));
        for (i, w) in windows.iter().enumerate() {
            if w.dev == meta.dev() && w.ino == meta.ino() && w.start <= start && end <= w.end {
                used[i] = true;
                out.push((r.start_addr().0, r.len()));
                break;
            }
        }
    }
    let mut i = 0;
    windows.retain(|w| {
        i += 1;
        w.live || used[i - 1]
    });
    out.sort_unstable();
    out
}

/// The UNMAPs of the first `n` front-end mappings of `range`.
fn unmaps(range: &MappedRange, n: usize) -> Vec<ShmOp> {
    range.pieces[..n]
        .iter()
        .map(|&(shm_offset, len)| ShmOp::Unmap {
            shm_offset,
            len,
            generation: range.generation,
        })
        .collect()
}

/// Round `len` up to whole pages of the region.
pub fn page_round(len: u64) -> Option<u64> {
    len.checked_add(PAGE - 1).map(|l| l & !(PAGE - 1))
}
