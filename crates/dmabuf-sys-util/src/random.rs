// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Random bytes from the kernel's CSPRNG with `getrandom(2)`: no file to open (so no fd, and
//! nothing a sandbox must leave reachable), and a failure is an error to report, not a panic.

use std::io;

/// Fill `buf` with random bytes. Blocks only until the kernel's pool is first initialised
/// (early boot); restarted on `EINTR` and after short reads.
pub fn fill(buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: the kernel writes at most `rest.len()` bytes at `rest`, a live, exclusively
        // borrowed buffer; the return value is checked.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        // `0 <= n <= rest.len()`.
        done += n as usize;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_and_differs() {
        let mut a = [0u8; 64];
        let mut b = [0u8; 64];
        fill(&mut a).unwrap();
        fill(&mut b).unwrap();
        assert_ne!(a, b, "two draws of 512 bits were equal");
        fill(&mut []).unwrap();
    }
}
