// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Host files behind buffers: host-backed buffers (a sealed memfd or a host dma-buf) and the
//! udmabuf export of guest-backed buffers.
//!
//! A host program could truncate a plain file under our mapping and turn every later access into
//! SIGBUS, so only files that cannot shrink are accepted: memfds sealed with `F_SEAL_SHRINK`, and
//! dma-bufs (fixed size by construction).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dmabuf_sys_util::dma_buf::{self, CpuAccess};
use thiserror::Error;
use vm_memory::mmap::{MmapRegionBuilder, MmapRegionError};
use vm_memory::{
    FileOffset, GuestAddress, GuestMemoryBackend, GuestMemoryRegion, MmapRegion, VolatileMemory,
    VolatileSlice,
};

use crate::memory::{GuestMem, SegList};
use crate::watchdog;

/// `statfs.f_type` of dma-buf files.
const DMA_BUF_MAGIC: i64 = 0x444d_4142;
/// `statfs.f_type` of hugetlbfs (memfds made with `MFD_HUGETLB`).
const HUGETLBFS_MAGIC: i64 = 0x9584_58f6;
/// `UDMABUF_CREATE_LIST` = `_IOW('u', 0x43, struct udmabuf_create_list)`.
const UDMABUF_CREATE_LIST: libc::c_ulong = 0x4008_7543;
const UDMABUF_FLAGS_CLOEXEC: u32 = 1;
/// The kernel's default `list_limit` of udmabuf.
const UDMABUF_MAX_ITEMS: usize = 1024;
const HOST_PAGE: u64 = 4096;

/// Why a host fd was refused or an operation on it failed.
#[derive(Debug, Error)]
pub enum HostFileError {
    /// Not a memfd or a dma-buf (a pipe, a directory, a socket, a plain file...).
    #[error("fd is neither a memfd nor a dma-buf")]
    WrongKind,
    /// A memfd without `F_SEAL_SHRINK`: it could be truncated under the mapping.
    #[error("memfd is not sealed against shrinking (F_SEAL_SHRINK)")]
    NotSealed,
    /// The declared size is zero or larger than the file.
    #[error("size {size} invalid for a file of {file_size} bytes")]
    BadSize {
        /// Declared.
        size: u64,
        /// Actual.
        file_size: u64,
    },
    /// The file could not be mapped.
    #[error("cannot map the file")]
    Map(#[source] MmapRegionError),
    /// A system call failed.
    #[error("{0} failed")]
    Syscall(&'static str, #[source] io::Error),
    /// The dma-buf's fences did not signal within the bound.
    #[error("the dma-buf's fences did not signal within the wait bound")]
    FenceTimeout,
}

/// Why a guest-backed buffer cannot be exported as a udmabuf (`UNSUPPORTED` on the socket).
#[derive(Debug, Error)]
pub enum UdmabufError {
    /// No /dev/udmabuf (module not loaded, or no permission).
    #[error("cannot open /dev/udmabuf")]
    Device(#[source] io::Error),
    /// A run is no longer guest RAM (the memory table changed).
    #[error("guest range {0:#x} is no longer RAM")]
    MemoryChanged(u64),
    /// Guest RAM is anonymous memory, not a memfd.
    #[error("guest RAM at {0:#x} has no file (not memfd-backed)")]
    NoFile(u64),
    /// A run that does not start or end on a host page in its memfd.
    #[error("guest range {gpa:#x}+{len:#x} is not page-aligned in its memfd")]
    Unaligned {
        /// Guest-physical address.
        gpa: u64,
        /// Length.
        len: u64,
    },
    /// Guest RAM in huge pages: its pages could not be detached at RELEASE one 4 KiB page at
    /// a time, so they are not exported.
    #[error("guest RAM at {0:#x} is in huge pages")]
    HugePages(u64),
    /// More runs than udmabuf takes in one list.
    #[error("{0} runs exceed udmabuf's list limit of 1024")]
    TooManyRuns(usize),
    /// `UDMABUF_CREATE_LIST` failed.
    #[error("UDMABUF_CREATE_LIST failed")]
    Create(#[source] io::Error),
    /// Punching the buffer's pages out of guest RAM's memfd failed.
    #[error("cannot punch the buffer's pages out of guest RAM (fallocate)")]
    Detach(#[source] io::Error),
}

impl UdmabufError {
    /// Whether it failed for want of a file descriptor (the daemon at its fd limit).
    pub fn fd_exhaustion(&self) -> bool {
        matches!(self, UdmabufError::Create(e) | UdmabufError::Device(e) if dmabuf_sys_util::fds::is_fd_exhaustion(e))
    }
}

/// What the fd is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostKind {
    /// A sealed memfd.
    Memfd,
    /// A host dma-buf; the daemon brackets its own accesses with DMA_BUF_IOCTL_SYNC.
    DmaBuf,
}

/// A host-backed buffer's storage, mapped into the daemon. It holds one fd: the mapping's
/// `FileOffset` and the `DMA_BUF_IOCTL_SYNC` bracket share it.
#[derive(Debug)]
pub struct HostFile {
    file: Arc<File>,
    map: MmapRegion<()>,
    kind: HostKind,
    writable: bool,
    /// Bytes of the file when it was shared (a sealed memfd cannot shrink).
    file_size: u64,
}

fn last_error(what: &'static str) -> HostFileError {
    HostFileError::Syscall(what, io::Error::last_os_error())
}

impl HostFile {
    /// Validate `file` and map its first `size` bytes.
    pub fn new(file: File, size: u64) -> Result<HostFile, HostFileError> {
        HostFile::open(file, Some(size))
    }

    /// Validate `file` and map all of it (a READ_TARGET target).
    pub fn new_whole(file: File) -> Result<HostFile, HostFileError> {
        HostFile::open(file, None)
    }

    fn open(file: File, size: Option<u64>) -> Result<HostFile, HostFileError> {
        let fd = file.as_raw_fd();
        // SAFETY: `fstatfs` writes into the zeroed struct we own; `fd` is open for the call.
        let mut sfs: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: as above; the return value is checked.
        if unsafe { libc::fstatfs(fd, &mut sfs) } != 0 {
            return Err(last_error("fstatfs"));
        }
        let meta = file
            .metadata()
            .map_err(|e| HostFileError::Syscall("fstat", e))?;
        // `f_type`'s integer type differs between architectures.
        #[allow(clippy::useless_conversion)]
        let is_dmabuf = i64::from(sfs.f_type) == DMA_BUF_MAGIC;
        let (kind, file_size) = if is_dmabuf {
            // SAFETY: lseek on an fd we own; the return value is checked.
            let end = unsafe { libc::lseek(fd, 0, libc::SEEK_END) };
            if end < 0 {
                return Err(last_error("lseek"));
            }
            (HostKind::DmaBuf, end as u64)
        } else if meta.file_type().is_file() {
            // SAFETY: F_GET_SEALS takes no argument; the return value is checked.
            let seals = unsafe { libc::fcntl(fd, libc::F_GET_SEALS) };
            if seals < 0 {
                // EINVAL: not a memfd (a plain file can be truncated by anyone who can write it).
                return Err(HostFileError::WrongKind);
            }
            if seals & libc::F_SEAL_SHRINK == 0 {
                return Err(HostFileError::NotSealed);
            }
            (HostKind::Memfd, meta.len())
        } else {
            return Err(HostFileError::WrongKind);
        };
        let size = size.unwrap_or(file_size);
        if size == 0 || size > file_size {
            return Err(HostFileError::BadSize { size, file_size });
        }
        // SAFETY: F_GETFL takes no argument; the return value is checked.
        let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if fl < 0 {
            return Err(last_error("fcntl(F_GETFL)"));
        }
        // SAFETY: as above.
        let seals = unsafe { libc::fcntl(fd, libc::F_GET_SEALS) };
        let write_sealed = kind == HostKind::Memfd
            && seals >= 0
            && seals & (libc::F_SEAL_WRITE | libc::F_SEAL_FUTURE_WRITE) != 0;
        let writable = fl & libc::O_ACCMODE == libc::O_RDWR && !write_sealed;
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        let len = usize::try_from(size).map_err(|_| HostFileError::BadSize { size, file_size })?;
        let file = Arc::new(file);
        let map = MmapRegionBuilder::new(len)
            .with_mmap_prot(prot)
            .with_mmap_flags(libc::MAP_SHARED)
            .with_file_offset(FileOffset::from_arc(file.clone(), 0))
            .build()
            .map_err(HostFileError::Map)?;
        Ok(HostFile {
            file,
            map,
            kind,
            writable,
            file_size,
        })
    }

    /// Bytes of the file (at least [`HostFile::size`]).
    pub fn file_size(&self) -> u64 {
        self.file_size
    }

    /// A duplicate of the file (to hand to the VMM for a mapping).
    pub fn dup_file(&self) -> io::Result<File> {
        self.file.try_clone()
    }

    /// Bytes mapped.
    pub fn size(&self) -> u64 {
        self.map.size() as u64
    }

    /// Memfd or dma-buf.
    pub fn kind(&self) -> HostKind {
        self.kind
    }

    /// Whether the daemon may write it (opened read-write, not write-sealed).
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// Bytes `offset..offset+len` (the caller checked the range against the buffer size).
    pub fn slice(&self, offset: u64, len: u64) -> Option<VolatileSlice<'_, ()>> {
        let off = usize::try_from(offset).ok()?;
        let n = usize::try_from(len).ok()?;
        self.map.get_slice(off, n).ok()
    }

    /// Fault in `offset..offset+len` for writing in one call, before a copy into a mapping made
    /// for that copy: one `madvise` instead of a page fault per 4 KiB page (which cost a
    /// 64 MiB read-into three quarters of its time). Best effort: a kernel or a mapping that
    /// cannot (before Linux 5.14, some dma-bufs) simply takes the faults during the copy.
    pub fn prefault_for_write(&self, offset: u64, len: u64) {
        let Some(slice) = self.slice(offset, len) else {
            return;
        };
        let page = 4096usize;
        let start = slice.ptr_guard().as_ptr() as usize;
        let aligned = start & !(page - 1);
        let end = start.saturating_add(slice.len());
        // SAFETY: the range lies within this object's live shared mapping (rounded down to the
        // page the slice starts in, still inside the mapping, which is page-aligned); populating
        // it changes no contents and no mapping, only which pages are resident.
        let _ = unsafe {
            libc::madvise(
                aligned as *mut libc::c_void,
                end - aligned,
                libc::MADV_POPULATE_WRITE,
            )
        };
    }

    /// The dma-buf, for waiting on its fences (`None` for a memfd, which has none).
    pub fn dma_buf(&self) -> Option<&Arc<File>> {
        (self.kind == HostKind::DmaBuf).then_some(&self.file)
    }

    /// Whether the dma-buf's fences allow `access` now (a memfd: always).
    pub fn fences_signalled(&self, access: CpuAccess) -> bool {
        match self.dma_buf() {
            // An fd that cannot be polled is left to the bounded ioctl to report.
            Some(f) => dma_buf::fences_signalled(f.as_fd(), access).unwrap_or(true),
            None => true,
        }
    }

    /// Wait, at most until `deadline`, until the dma-buf's fences allow `access`; whether they
    /// do (a memfd: at once).
    pub fn wait_fences(&self, access: CpuAccess, deadline: Instant) -> bool {
        match self.dma_buf() {
            Some(f) => dma_buf::wait_fences(f.as_fd(), access, deadline).unwrap_or(true),
            None => true,
        }
    }

    /// Start the daemon's own CPU access to a dma-buf (`DMA_BUF_IOCTL_SYNC`; nothing for a
    /// memfd), ended at `deadline` if the kernel still waits for fences then (the caller
    /// polled them first; see [`crate::watchdog`]).
    pub fn begin_cpu_access(
        &self,
        access: CpuAccess,
        deadline: Instant,
    ) -> Result<(), HostFileError> {
        let Some(f) = self.dma_buf() else {
            return Ok(());
        };
        let _armed = watchdog::arm(deadline);
        dma_buf::begin_cpu_access_until(f.as_fd(), access, deadline).map_err(|e| {
            if e.kind() == io::ErrorKind::TimedOut {
                HostFileError::FenceTimeout
            } else {
                HostFileError::Syscall("DMA_BUF_IOCTL_SYNC (start)", e)
            }
        })
    }

    /// End the daemon's own CPU access to a dma-buf begun with `access` (it does not wait for
    /// fences; bounded all the same).
    pub fn end_cpu_access(&self, access: CpuAccess) -> Result<(), HostFileError> {
        let Some(f) = self.dma_buf() else {
            return Ok(());
        };
        let deadline = Instant::now() + END_BOUND;
        let _armed = watchdog::arm(deadline);
        dma_buf::end_cpu_access_until(f.as_fd(), access, deadline)
            .map_err(|e| HostFileError::Syscall("DMA_BUF_IOCTL_SYNC (end)", e))
    }
}

/// How long the end of a dma-buf bracket may take (it waits for nothing but the exporter).
const END_BOUND: Duration = Duration::from_secs(1);

#[repr(C)]
struct UdmabufItem {
    memfd: u32,
    pad: u32,
    offset: u64,
    size: u64,
}

/// `/dev/udmabuf`, opened read-write (once, before the sandbox closes the filesystem).
pub fn open_udmabuf_device() -> Result<File, UdmabufError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/udmabuf")
        .map_err(UdmabufError::Device)
}

/// `statfs.f_type` of the filesystem `file` is on.
fn fs_magic(file: &File) -> Option<i64> {
    // SAFETY: `fstatfs` writes into the zeroed struct we own; the return value is checked.
    let mut sfs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above; `file` is open for the call.
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut sfs) } != 0 {
        return None;
    }
    // `f_type`'s integer type differs between architectures.
    #[allow(clippy::useless_conversion)]
    Some(i64::from(sfs.f_type))
}

/// One piece of a buffer in guest RAM's memfd: the file, and where in it.
struct FilePiece<'a> {
    file: &'a File,
    offset: u64,
    len: u64,
    gpa: u64,
}

/// The pieces of `segs` in the memfds behind `mem`, in buffer order (a run that crosses a
/// region boundary gives two pieces).
fn file_pieces<'m>(mem: &'m GuestMem, segs: &SegList) -> Result<Vec<FilePiece<'m>>, UdmabufError> {
    let mut out = Vec::new();
    for (gpa, len) in segs.iter_runs() {
        let mut addr = gpa;
        let end = gpa + len;
        while addr < end {
            let region = mem
                .find_region(GuestAddress(addr))
                .ok_or(UdmabufError::MemoryChanged(addr))?;
            let start = region.start_addr().0;
            let take = (start + region.len()).min(end) - addr;
            let fo = region.file_offset().ok_or(UdmabufError::NoFile(addr))?;
            out.push(FilePiece {
                file: fo.file(),
                offset: fo.start() + (addr - start),
                len: take,
                gpa: addr,
            });
            addr += take;
        }
    }
    Ok(out)
}

/// Make a host dma-buf over a guest-backed buffer's pages with `dev` (`/dev/udmabuf`; zero
/// copy).
///
/// Needs guest RAM in memfds (sealed against shrinking, as QEMU's `memory-backend-memfd` makes
/// it), and every run page-aligned in its memfd.
pub fn export_udmabuf(dev: &File, mem: &GuestMem, segs: &SegList) -> Result<File, UdmabufError> {
    let pieces = file_pieces(mem, segs)?;
    let mut items: Vec<UdmabufItem> = Vec::with_capacity(pieces.len());
    for p in &pieces {
        if fs_magic(p.file) == Some(HUGETLBFS_MAGIC) {
            return Err(UdmabufError::HugePages(p.gpa));
        }
        if p.offset % HOST_PAGE != 0 || p.len % HOST_PAGE != 0 {
            return Err(UdmabufError::Unaligned {
                gpa: p.gpa,
                len: p.len,
            });
        }
        items.push(UdmabufItem {
            // A file descriptor is never negative.
            memfd: p.file.as_raw_fd().unsigned_abs(),
            pad: 0,
            offset: p.offset,
            size: p.len,
        });
    }
    if items.len() > UDMABUF_MAX_ITEMS {
        return Err(UdmabufError::TooManyRuns(items.len()));
    }
    // struct udmabuf_create_list { u32 flags; u32 count; struct udmabuf_create_item list[]; }
    let mut raw: Vec<u64> = Vec::with_capacity(1 + items.len() * 3);
    let count = u32::try_from(items.len()).unwrap_or(u32::MAX);
    raw.push(u64::from(UDMABUF_FLAGS_CLOEXEC) | (u64::from(count) << 32));
    for it in &items {
        raw.push(u64::from(it.memfd) | (u64::from(it.pad) << 32));
        raw.push(it.offset);
        raw.push(it.size);
    }
    // SAFETY: the buffer holds the header and `count` items laid out as the kernel's
    // `udmabuf_create_list` on a little-endian 64-bit host; the kernel only reads it. The return
    // value is checked and, on success, is a new fd we take ownership of.
    let fd = unsafe { libc::ioctl(dev.as_raw_fd(), UDMABUF_CREATE_LIST, raw.as_ptr()) };
    if fd < 0 {
        return Err(UdmabufError::Create(io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// Detach a buffer's pages from guest RAM's memfds: punch a hole (`FALLOC_FL_PUNCH_HOLE |
/// FALLOC_FL_KEEP_SIZE`) over every whole host page of `segs`. The guest finds fresh zero pages
/// at those addresses from then on; a udmabuf exported over the old pages keeps them (it pinned
/// them), so nothing the guest writes there later reaches the export and nothing the export
/// writes reaches the guest. Returns the bytes punched. Partial pages at the ends of a run are
/// left alone (they can never have been exported: exports are page-aligned).
pub fn detach_guest_pages(mem: &GuestMem, segs: &SegList) -> Result<u64, UdmabufError> {
    let mut punched = 0;
    for p in file_pieces(mem, segs)? {
        let start = p.offset.next_multiple_of(HOST_PAGE);
        let end = (p.offset + p.len) / HOST_PAGE * HOST_PAGE;
        if end <= start {
            continue;
        }
        let (off, len) = (
            libc::off_t::try_from(start).map_err(|_| UdmabufError::MemoryChanged(p.gpa))?,
            libc::off_t::try_from(end - start).map_err(|_| UdmabufError::MemoryChanged(p.gpa))?,
        );
        // SAFETY: fallocate on an fd the memory table holds; it touches no memory of ours (the
        // mappings of those pages see zero pages afterwards). The return value is checked.
        let r = unsafe {
            libc::fallocate(
                p.file.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                off,
                len,
            )
        };
        if r != 0 {
            return Err(UdmabufError::Detach(io::Error::last_os_error()));
        }
        punched += end - start;
    }
    Ok(punched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dmabuf_sys_util::memfd::{memfd, sealed_memfd};
    use std::io::Write;

    #[test]
    fn accepts_sealed_memfd_and_rejects_others() {
        let f = sealed_memfd("t", 8192).unwrap();
        let hf = HostFile::new(f, 4096).unwrap();
        assert_eq!(hf.kind(), HostKind::Memfd);
        assert!(hf.writable());
        assert!(hf.slice(0, 4096).is_some());

        let f = sealed_memfd("t", 4096).unwrap();
        assert!(matches!(
            HostFile::new(f, 8192),
            Err(HostFileError::BadSize { .. })
        ));
        let f = sealed_memfd("t", 4096).unwrap();
        assert!(matches!(
            HostFile::new(f, 0),
            Err(HostFileError::BadSize { .. })
        ));

        // An unsealed memfd.
        let f = memfd("u", 4096).unwrap();
        assert!(matches!(
            HostFile::new(f, 4096),
            Err(HostFileError::NotSealed)
        ));

        // A pipe, a directory, a plain file.
        let (r, _w) = std::io::pipe().unwrap();
        let f = File::from(std::os::fd::OwnedFd::from(r));
        assert!(matches!(HostFile::new(f, 1), Err(HostFileError::WrongKind)));
        let d = File::open("/").unwrap();
        assert!(matches!(HostFile::new(d, 1), Err(HostFileError::WrongKind)));
        let path = std::env::temp_dir().join(format!("hostfile-test-{}", std::process::id()));
        let mut p = File::create(&path).unwrap();
        p.write_all(&[0u8; 4096]).unwrap();
        let p = File::open(&path).unwrap();
        assert!(matches!(
            HostFile::new(p, 4096),
            Err(HostFileError::WrongKind)
        ));
        std::fs::remove_file(&path).unwrap();
    }
}
