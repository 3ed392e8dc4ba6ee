// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The front-end side of vhost-user shared memory, as QEMU 11.1 plays it: the device's region
//! (a reserved range of this process, where the back-end's SHMEM_MAP requests map files), the
//! back-end request channel that carries them, and the memory-table updates QEMU sends the
//! back-end after each map and unmap (the mapped BAR range is guest memory of an fd).
//!
//! As measured with QEMU 11.1.3 and reproduced here: unmapped parts of the region read as zero
//! and ignore writes; SHMEM_MAP and SHMEM_UNMAP are answered (an UNMAP of a range that is not
//! mapped exactly so with an error), then the memory table is updated: with
//! `CONFIGURE_MEM_SLOTS` one ADD_MEM_REG / REM_MEM_REG each, without it a whole SET_MEM_TABLE
//! of guest RAM and every mapping, or nothing when that is more than 8 regions (QEMU prints
//! "Failed preparing vhost-user memory table msg" and the back-end keeps its table:
//! [`ShmEvent::TableTooLarge`]); a device reset removes every mapping; an UNMAP of a mapping
//! removed at a reset makes QEMU crash, which the harness records as a protocol violation
//! ([`ShmEvent::UnmapAfterReset`]).

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vhost::vhost_user::message::{VhostUserMMap, VhostUserMMapFlags};
use vhost::vhost_user::{
    Frontend, FrontendReqHandler, HandlerResult, VhostUserFrontend, VhostUserFrontendReqHandlerMut,
};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo};

use crate::HarnessError;

/// Where the harness puts the region's BAR in guest-physical space (above any harness RAM).
pub const BAR_GPA: u64 = 0x40_0000_0000;

/// The regions one SET_MEM_TABLE can carry (QEMU's VHOST_MEMORY_BASELINE_NREGIONS).
pub const MEM_TABLE_REGIONS: usize = 8;

/// When the front-end tells the back-end about a changed memory table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemUpdates {
    /// Never.
    Off,
    /// After answering the map or unmap, as QEMU 11.1 does.
    AfterReply,
    /// Before answering: a back-end that waits for the answer while holding something its
    /// front-end channel needs deadlocks (within its bound).
    BeforeReply,
}

/// What happened in the region, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShmEvent {
    /// A mapping was made.
    Map {
        /// Offset in the region.
        offset: u64,
        /// Bytes.
        len: u64,
        /// Offset in the file.
        fd_offset: u64,
        /// Read-write.
        writable: bool,
    },
    /// A mapping was removed.
    Unmap {
        /// Offset.
        offset: u64,
        /// Bytes.
        len: u64,
    },
    /// A request refused (bad range, overlap, no such mapping).
    Refused {
        /// Map or unmap.
        what: &'static str,
        /// Offset.
        offset: u64,
        /// Bytes.
        len: u64,
    },
    /// The device was reset: every mapping removed by the front-end.
    Reset,
    /// An UNMAP of a mapping the front-end removed at a reset (QEMU 11.1.3 crashes on it).
    UnmapAfterReset {
        /// Offset.
        offset: u64,
    },
    /// Without CONFIGURE_MEM_SLOTS: guest RAM and the mappings make more regions than one
    /// SET_MEM_TABLE carries, so none was sent (the back-end keeps its previous table).
    TableTooLarge {
        /// Regions the table would have had.
        regions: usize,
    },
}

struct Mapping {
    len: u64,
    writable: bool,
    /// The mapped file (a dup) and its offset, for whole memory tables.
    file: Option<(File, u64)>,
}

/// A memory-table change to send: `(offset, len, Some((file, fd_offset)))` adds, `None` removes.
type Update = (u64, u64, Option<(File, u64)>);

struct State {
    base: usize,
    size: u64,
    maps: BTreeMap<u64, Mapping>,
    removed_at_reset: BTreeMap<u64, u64>,
    events: Vec<ShmEvent>,
    /// Memory-table changes to send.
    pending: Vec<Update>,
    updates: MemUpdates,
    /// CONFIGURE_MEM_SLOTS was negotiated: changes go one region at a time.
    slots: bool,
    /// Guest RAM's regions, the rest of a whole memory table.
    ram: Vec<VhostUserMemoryRegionInfo>,
    /// Maps to refuse from now on, whatever they are (a VMM that will not map).
    refuse_maps: u32,
    frontend: Frontend,
}

impl State {
    fn in_region(&self, offset: u64, len: u64) -> bool {
        len > 0
            && offset.is_multiple_of(4096)
            && len.is_multiple_of(4096)
            && offset.checked_add(len).is_some_and(|e| e <= self.size)
    }

    /// Map anonymous zero pages, read-only, over `offset..offset+len` (what unmapped parts of
    /// the region show).
    fn blank(&self, offset: u64, len: u64) -> std::io::Result<()> {
        // SAFETY: the range lies inside this process's reservation of the region (checked by
        // the callers with `in_region`); MAP_FIXED replaces only pages of that reservation.
        let p = unsafe {
            libc::mmap(
                (self.base + offset as usize) as *mut libc::c_void,
                len as usize,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    fn flush(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        if pending.is_empty() {
            return;
        }
        if !self.slots {
            self.send_whole_table();
            return;
        }
        for (offset, len, add) in pending {
            let r = match &add {
                Some((file, fd_offset)) => self
                    .frontend
                    .add_mem_region(&self.region_info(offset, len, file.as_raw_fd(), *fd_offset))
                    .map(drop),
                None => self
                    .frontend
                    .remove_mem_region(&self.region_info(offset, len, -1, 0))
                    .map(drop),
            };
            if let Err(e) = r {
                eprintln!("harness: memory-table update failed: {e}");
            }
        }
    }

    fn region_info(
        &self,
        offset: u64,
        len: u64,
        fd: i32,
        mmap_offset: u64,
    ) -> VhostUserMemoryRegionInfo {
        VhostUserMemoryRegionInfo {
            guest_phys_addr: BAR_GPA + offset,
            memory_size: len,
            userspace_addr: (self.base + offset as usize) as u64,
            mmap_offset,
            mmap_handle: fd,
        }
    }

    /// Without CONFIGURE_MEM_SLOTS, as QEMU: the whole table (guest RAM and every mapping), or
    /// nothing if it does not fit one message.
    fn send_whole_table(&mut self) {
        let mut table = self.ram.clone();
        for (&offset, m) in &self.maps {
            if let Some((file, fd_offset)) = &m.file {
                table.push(self.region_info(offset, m.len, file.as_raw_fd(), *fd_offset));
            }
        }
        if table.len() > MEM_TABLE_REGIONS {
            self.events.push(ShmEvent::TableTooLarge {
                regions: table.len(),
            });
            return;
        }
        if let Err(e) = self.frontend.set_mem_table(&table) {
            eprintln!("harness: memory-table update failed: {e}");
        }
    }
}

fn refuse(st: &mut State, what: &'static str, offset: u64, len: u64) -> HandlerResult<u64> {
    st.events.push(ShmEvent::Refused { what, offset, len });
    Err(std::io::Error::from_raw_os_error(libc::EINVAL))
}

struct Handler(Arc<Mutex<State>>);

impl VhostUserFrontendReqHandlerMut for Handler {
    fn shmem_map(&mut self, req: &VhostUserMMap, fd: &dyn AsRawFd) -> HandlerResult<u64> {
        let mut st = lock(&self.0);
        let (offset, len, fd_offset, flags) = (req.shm_offset, req.len, req.fd_offset, req.flags);
        let overlaps = st
            .maps
            .range(..offset.saturating_add(len))
            .next_back()
            .is_some_and(|(&o, m)| o + m.len > offset);
        if req.shmid != 0 || !st.in_region(offset, len) || overlaps {
            return refuse(&mut st, "map", offset, len);
        }
        if st.refuse_maps > 0 {
            st.refuse_maps -= 1;
            return refuse(&mut st, "map", offset, len);
        }
        // As QEMU's memory_region_init_ram_from_fd(): the file must hold the whole range.
        // SAFETY: fstat of the fd we were handed into a zeroed struct; the result is checked.
        let file_size = unsafe {
            let mut sb: libc::stat = std::mem::zeroed();
            (libc::fstat(fd.as_raw_fd(), &mut sb) == 0).then_some(sb.st_size as u64)
        };
        let is_memfd_or_file = file_size.is_some_and(|s| s > 0);
        if is_memfd_or_file && file_size.is_some_and(|s| s < fd_offset.saturating_add(len)) {
            return refuse(&mut st, "map", offset, len);
        }
        let writable = flags & VhostUserMMapFlags::WRITABLE.bits() != 0;
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: as in `blank`: inside the reservation; the fd is the back-end's, mapped
        // shared as QEMU maps it (memory_region_init_ram_from_fd).
        let p = unsafe {
            libc::mmap(
                (st.base + offset as usize) as *mut libc::c_void,
                len as usize,
                prot,
                libc::MAP_SHARED | libc::MAP_FIXED,
                fd.as_raw_fd(),
                fd_offset as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return refuse(&mut st, "map", offset, len);
        }
        // SAFETY: dup of the fd we were handed; the result is checked and owned below.
        let dup = unsafe { libc::dup(fd.as_raw_fd()) };
        // SAFETY: `dup` is a new fd nobody else owns.
        let file = (dup >= 0).then(|| unsafe { File::from_raw_fd(dup) });
        let pending = file
            .as_ref()
            .and_then(|f| f.try_clone().ok())
            .map(|f| (f, fd_offset));
        st.maps.insert(
            offset,
            Mapping {
                len,
                writable,
                file: file.map(|f| (f, fd_offset)),
            },
        );
        st.removed_at_reset.remove(&offset);
        st.events.push(ShmEvent::Map {
            offset,
            len,
            fd_offset,
            writable,
        });
        if st.updates != MemUpdates::Off {
            if let Some(p) = pending {
                st.pending.push((offset, len, Some(p)));
            }
        }
        if st.updates == MemUpdates::BeforeReply {
            st.flush();
        }
        Ok(0)
    }

    fn shmem_unmap(&mut self, req: &VhostUserMMap) -> HandlerResult<u64> {
        let mut st = lock(&self.0);
        let (offset, len) = (req.shm_offset, req.len);
        if st.removed_at_reset.get(&offset) == Some(&len) {
            st.events.push(ShmEvent::UnmapAfterReset { offset });
        }
        if st.maps.get(&offset).map(|m| m.len) != Some(len) {
            return refuse(&mut st, "unmap", offset, len);
        }
        if st.blank(offset, len).is_err() {
            return refuse(&mut st, "unmap", offset, len);
        }
        st.maps.remove(&offset);
        st.events.push(ShmEvent::Unmap { offset, len });
        if st.updates != MemUpdates::Off {
            st.pending.push((offset, len, None));
        }
        if st.updates == MemUpdates::BeforeReply {
            st.flush();
        }
        Ok(0)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The device's shared memory region and the thread serving the back-end's requests.
pub struct ShmRegion {
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl ShmRegion {
    /// Reserve a region of `size` bytes, give the back-end its request channel through
    /// `frontend`, and serve it.
    pub fn start(
        frontend: &mut Frontend,
        size: u64,
        updates: MemUpdates,
        slots: bool,
    ) -> Result<ShmRegion, HarnessError> {
        let len = usize::try_from(size).map_err(|_| HarnessError::Setup("region size".into()))?;
        // SAFETY: a fresh private anonymous reservation; nothing else uses its address.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error().into());
        }
        let state = Arc::new(Mutex::new(State {
            base: base as usize,
            size,
            maps: BTreeMap::new(),
            removed_at_reset: BTreeMap::new(),
            events: Vec::new(),
            pending: Vec::new(),
            updates,
            slots,
            ram: Vec::new(),
            refuse_maps: 0,
            frontend: frontend.clone(),
        }));
        let mut server = FrontendReqHandler::new(Arc::new(Mutex::new(Handler(state.clone()))))
            .map_err(|e| HarnessError::VhostUser(vhost::Error::VhostUserProtocol(e)))?;
        server.set_reply_ack_flag(true);
        frontend.set_backend_request_fd(&server.get_tx_raw_fd())?;
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let (st, flag, count) = (state.clone(), stop.clone(), served.clone());
        let thread = std::thread::spawn(move || serve(&mut server, &st, &flag, &count));
        Ok(ShmRegion {
            state,
            stop,
            served,
            thread: Some(thread),
        })
    }

    /// Guest RAM's regions (after each SET_MEM_TABLE of RAM), for whole memory tables.
    pub fn set_ram(&self, ram: Vec<VhostUserMemoryRegionInfo>) {
        lock(&self.state).ram = ram;
    }

    /// Refuse the next `n` SHMEM_MAP requests (answer them with an error, map nothing), as a
    /// VMM that will not map a file does.
    pub fn refuse_maps(&self, n: u32) {
        lock(&self.state).refuse_maps = n;
    }

    /// Bytes of the region.
    pub fn size(&self) -> u64 {
        lock(&self.state).size
    }

    /// Read `out.len()` bytes at `offset` (zeros where nothing is mapped).
    pub fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), HarnessError> {
        let st = lock(&self.state);
        if offset
            .checked_add(out.len() as u64)
            .is_none_or(|e| e > st.size)
        {
            return Err(HarnessError::Setup("read outside the region".into()));
        }
        // SAFETY: the range is inside the reservation, every page of which is mapped readable
        // (a file mapping or blank pages); the lock keeps the mappings from changing meanwhile.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (st.base + offset as usize) as *const u8,
                out.as_mut_ptr(),
                out.len(),
            );
        }
        Ok(())
    }

    /// Write `data` at `offset` as a guest would: ignored (returns `false`) unless every byte
    /// lies in one writable mapping.
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<bool, HarnessError> {
        let st = lock(&self.state);
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| HarnessError::Setup("write overflows".into()))?;
        let ok = st
            .maps
            .range(..=offset)
            .next_back()
            .is_some_and(|(&o, m)| m.writable && o + m.len >= end);
        if ok {
            // SAFETY: inside one writable shared mapping of the reservation (checked above,
            // under the lock).
            unsafe {
                std::ptr::copy_nonoverlapping(
                    data.as_ptr(),
                    (st.base + offset as usize) as *mut u8,
                    data.len(),
                );
            }
        }
        Ok(ok)
    }

    /// The live mappings: `(offset, len, writable)`.
    pub fn mappings(&self) -> Vec<(u64, u64, bool)> {
        lock(&self.state)
            .maps
            .iter()
            .map(|(&o, m)| (o, m.len, m.writable))
            .collect()
    }

    /// Everything that happened so far.
    pub fn events(&self) -> Vec<ShmEvent> {
        lock(&self.state).events.clone()
    }

    /// Back-end requests served so far.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::SeqCst)
    }

    /// Wait until the serving thread is idle with no memory-table update pending.
    pub fn settle(&self, timeout: Duration) -> Result<(), HarnessError> {
        let deadline = Instant::now() + timeout;
        loop {
            if lock(&self.state).pending.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(HarnessError::Timeout(timeout));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The device reset: the front-end removes every mapping (as QEMU 11.1's virtio reset).
    pub fn reset(&self) {
        let mut st = lock(&self.state);
        let maps = std::mem::take(&mut st.maps);
        for (&o, m) in &maps {
            let _ = st.blank(o, m.len);
            st.removed_at_reset.insert(o, m.len);
            if st.updates != MemUpdates::Off {
                st.pending.push((o, m.len, None));
            }
        }
        st.events.push(ShmEvent::Reset);
    }
}

/// Serve the back-end channel until `stop`; memory-table updates go out after each answer.
fn serve<S>(
    server: &mut FrontendReqHandler<S>,
    state: &Mutex<State>,
    stop: &AtomicBool,
    served: &AtomicU64,
) where
    S: vhost::vhost_user::VhostUserFrontendReqHandler,
{
    let fd = server.as_raw_fd();
    while !stop.load(Ordering::SeqCst) {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, 50) };
        if n <= 0 {
            lock(state).flush();
            continue;
        }
        match server.handle_request() {
            // A request the handler refused was answered with an error; the channel goes on,
            // as QEMU's does.
            Ok(_) | Err(vhost::vhost_user::Error::ReqHandlerError(_)) => {}
            Err(_) => return,
        }
        served.fetch_add(1, Ordering::SeqCst);
        lock(state).flush();
    }
}

impl Drop for ShmRegion {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let st = lock(&self.state);
        // SAFETY: the reservation made in `start`, no longer used by anyone (the serving
        // thread has ended).
        unsafe { libc::munmap(st.base as *mut libc::c_void, st.size as usize) };
    }
}
