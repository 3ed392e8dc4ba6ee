// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Reading a dma-buf (the udmabuf EXPORT returns) through a read-only mapping.
//!
//! A dma-buf is mapped like a file; CPU reads of it are bracketed with `DMA_BUF_IOCTL_SYNC`
//! ([`crate::dma_buf::begin_cpu_access`], then [`crate::dma_buf::end_cpu_access`]) so the
//! exporter can make the pages coherent. That bracket is the kernel's side; the daemon's
//! BEGIN/END still arbitrate against guests and other clients.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::ptr::NonNull;

/// Size of a dma-buf (or any seekable file) in bytes.
pub fn file_size(file: &File) -> io::Result<u64> {
    let mut f = file;
    let n = f.seek(SeekFrom::End(0))?;
    f.seek(SeekFrom::Start(0))?;
    Ok(n)
}

/// A read-only shared mapping of the first `len` bytes of a file; unmapped on drop.
#[derive(Debug)]
pub struct ReadMapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl ReadMapping {
    /// Map `len` bytes of `file` from offset 0, read-only and shared.
    pub fn new(file: &File, len: usize) -> io::Result<ReadMapping> {
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot map zero bytes",
            ));
        }
        // SAFETY: a fresh mapping chosen by the kernel (null hint), so no existing memory is
        // affected; the result is checked against MAP_FAILED.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        Ok(ReadMapping { ptr, len })
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never: zero-length mappings are refused).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copy mapped bytes `offset..offset + out.len()` into `out`.
    pub fn read_at(&self, offset: usize, out: &mut [u8]) -> io::Result<()> {
        let end = offset
            .checked_add(out.len())
            .filter(|&e| e <= self.len)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "outside the mapping"))?;
        debug_assert!(end <= self.len);
        // SAFETY: `offset..end` lies inside the live mapping of `len` readable bytes (checked
        // above), and `out` is a distinct, writable local buffer of the same length. The mapped
        // bytes are copied, never referenced, so concurrent writers elsewhere cannot alias `out`.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.ptr.as_ptr().add(offset),
                out.as_mut_ptr(),
                out.len(),
            );
        }
        Ok(())
    }
}

impl Drop for ReadMapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe a mapping this struct created and still owns.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_and_reads_a_memfd() {
        let f = crate::memfd::sealed_memfd_with("m", b"0123456789").unwrap();
        assert_eq!(file_size(&f).unwrap(), 10);
        let m = ReadMapping::new(&f, 10).unwrap();
        let mut out = [0u8; 4];
        m.read_at(3, &mut out).unwrap();
        assert_eq!(&out, b"3456");
        assert!(m.read_at(8, &mut out).is_err());
        assert!(m.read_at(usize::MAX, &mut out).is_err());
        assert!(ReadMapping::new(&f, 0).is_err());
    }
}
