// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Sealed memfds: what the daemon accepts for SHARE and as a READ_INTO target, and what guest RAM
//! is made of in the test harness (as QEMU's `memory-backend-memfd` makes it).
//!
//! The daemon maps a shared fd for as long as the buffer lives. A file that could shrink under
//! that mapping would turn the daemon's next access into SIGBUS, so it accepts only memfds sealed
//! with `F_SEAL_SHRINK` (and dma-bufs, whose size is fixed). The memfds made here are also sealed
//! with `F_SEAL_GROW`, so their size is final; their contents stay writable.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::FileExt;

/// Create an unsealed memfd (`MFD_CLOEXEC | MFD_ALLOW_SEALING`) of `size` zero bytes.
pub fn memfd(name: &str, size: u64) -> io::Result<File> {
    let cname = CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `cname` is a valid NUL-terminated string that outlives the call; the return value
    // is checked.
    let fd =
        unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by the kernel and is owned by nothing else.
    let file = unsafe { File::from_raw_fd(fd) };
    file.set_len(size)?;
    Ok(file)
}

/// Seal `file` (a memfd made with `MFD_ALLOW_SEALING`) against shrinking and growing.
pub fn seal_size(file: &File) -> io::Result<()> {
    // SAFETY: F_ADD_SEALS takes an int argument and touches no memory; the return value is
    // checked.
    let r = unsafe {
        libc::fcntl(
            file.as_raw_fd(),
            libc::F_ADD_SEALS,
            libc::F_SEAL_SHRINK | libc::F_SEAL_GROW,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A memfd of `size` zero bytes, sealed against shrinking and growing.
pub fn sealed_memfd(name: &str, size: u64) -> io::Result<File> {
    let f = memfd(name, size)?;
    seal_size(&f)?;
    Ok(f)
}

/// A sealed memfd holding exactly `data`.
pub fn sealed_memfd_with(name: &str, data: &[u8]) -> io::Result<File> {
    let f = memfd(name, data.len() as u64)?;
    f.write_all_at(data, 0)?;
    seal_size(&f)?;
    Ok(f)
}

/// A sealed memfd holding a copy of everything `src` yields (a file, a pipe, stdin...).
pub fn sealed_memfd_from_reader(name: &str, src: &mut dyn io::Read) -> io::Result<File> {
    let mut f = memfd(name, 0)?;
    io::copy(src, &mut f)?;
    seal_size(&f)?;
    Ok(f)
}

/// The page size the daemon maps shares in (a VMM maps whole 4096-byte pages of a file).
pub const SHARE_PAGE: u64 = 4096;

/// `size` rounded up to whole [`SHARE_PAGE`]s (saturating).
pub fn page_padded(size: u64) -> u64 {
    size.div_ceil(SHARE_PAGE).saturating_mul(SHARE_PAGE)
}

/// A memfd to share: `data`, then zeros to the end of its last page, sealed. Share
/// `data.len()` bytes of it; the padding lets the daemon map the buffer into a guest (a VMM
/// maps whole pages and refuses a mapping past the end of a file), and the guest never sees
/// it as part of the buffer.
pub fn shareable_memfd_with(name: &str, data: &[u8]) -> io::Result<File> {
    let f = memfd(name, page_padded(data.len() as u64))?;
    f.write_all_at(data, 0)?;
    seal_size(&f)?;
    Ok(f)
}

/// The same for `size` zero bytes.
pub fn shareable_memfd(name: &str, size: u64) -> io::Result<File> {
    sealed_memfd(name, page_padded(size))
}

/// The same for everything `src` yields; returns the memfd and the bytes read (the size to
/// share).
pub fn shareable_memfd_from_reader(name: &str, src: &mut dyn io::Read) -> io::Result<(File, u64)> {
    let mut f = memfd(name, 0)?;
    let len = io::copy(src, &mut f)?;
    f.set_len(page_padded(len))?;
    seal_size(&f)?;
    Ok((f, len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom};

    fn seals(f: &File) -> i32 {
        // SAFETY: F_GET_SEALS takes no argument; the result is only compared.
        unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GET_SEALS) }
    }

    #[test]
    fn shareable_memfds_are_padded_to_whole_pages() {
        let f = shareable_memfd_with("t", &[7; 5000]).unwrap();
        assert_eq!(f.metadata().unwrap().len(), 8192);
        let mut out = [1u8; 8192];
        f.read_exact_at(&mut out, 0).unwrap();
        assert_eq!(&out[..5000], &[7; 5000][..]);
        assert_eq!(&out[5000..], &[0; 3192][..]);
        assert!(f.set_len(5000).is_err());
        assert_eq!(
            shareable_memfd("t", 4096)
                .unwrap()
                .metadata()
                .unwrap()
                .len(),
            4096
        );
        let (g, n) = shareable_memfd_from_reader("t", &mut &[3u8; 10][..]).unwrap();
        assert_eq!((n, g.metadata().unwrap().len()), (10, 4096));
        assert_eq!(page_padded(0), 0);
        // Saturates (no memfd can be that large: creating it fails).
        assert_eq!(page_padded(u64::MAX), u64::MAX);
    }

    #[test]
    fn sealed_memfds_keep_their_size() {
        let f = sealed_memfd_with("t", b"hello").unwrap();
        assert_eq!(f.metadata().unwrap().len(), 5);
        assert_ne!(seals(&f) & libc::F_SEAL_SHRINK, 0);
        assert!(f.set_len(1).is_err());
        assert!(f.set_len(10).is_err());
        let mut out = [0u8; 5];
        f.read_exact_at(&mut out, 0).unwrap();
        assert_eq!(&out, b"hello");
        f.write_all_at(b"J", 0).unwrap();

        let mut src: &[u8] = b"from a reader";
        let mut g = sealed_memfd_from_reader("r", &mut src).unwrap();
        assert_eq!(g.seek(SeekFrom::End(0)).unwrap(), 13);
        assert_ne!(seals(&g) & libc::F_SEAL_GROW, 0);

        let u = memfd("u", 4096).unwrap();
        assert_eq!(seals(&u) & (libc::F_SEAL_SHRINK | libc::F_SEAL_GROW), 0);
        assert!(memfd("nul\0inside", 1).is_err());
    }
}
