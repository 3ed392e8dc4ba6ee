// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The test pattern and checksum shared by the Rust tests, the VM suite and the guest C tool.
//!
//! Both are defined on byte positions *within the buffer*, so any range of a buffer filled with
//! [`fill`] can be checked on its own. All arithmetic is unsigned 64-bit and wraps (C: `uint64_t`):
//!
//! ```text
//! pattern_byte(seed, i) = (i * 131 + seed * 7 + (i >> 12)) & 0xff
//! fnv1a64(bytes):  h = 0xcbf29ce484222325; for each byte b: h = (h ^ b) * 0x100000001b3
//! ```

/// FNV-1a 64-bit offset basis.
pub const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64-bit prime.
pub const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The pattern byte at buffer offset `i` for `seed`.
pub fn pattern_byte(seed: u32, i: u64) -> u8 {
    (i.wrapping_mul(131)
        .wrapping_add(u64::from(seed).wrapping_mul(7))
        .wrapping_add(i >> 12)
        & 0xff) as u8
}

/// Fill `buf` with the pattern of buffer bytes `offset..offset + buf.len()`.
pub fn fill(seed: u32, offset: u64, buf: &mut [u8]) {
    for (k, b) in buf.iter_mut().enumerate() {
        *b = pattern_byte(seed, offset.wrapping_add(k as u64));
    }
}

/// The pattern of buffer bytes `offset..offset + len`, as a new vector.
pub fn pattern(seed: u32, offset: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    fill(seed, offset, &mut v);
    v
}

/// FNV-1a 64 of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h = Fnv1a64::new();
    h.update(bytes);
    h.finish()
}

/// Incremental FNV-1a 64 (for data that arrives in pieces).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fnv1a64(u64);

impl Default for Fnv1a64 {
    fn default() -> Self {
        Fnv1a64(FNV_OFFSET_BASIS)
    }
}

impl Fnv1a64 {
    /// A hash of nothing yet.
    pub fn new() -> Fnv1a64 {
        Fnv1a64::default()
    }

    /// Hash more bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
    }

    /// The hash of everything so far.
    pub fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_known_values() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        let mut h = Fnv1a64::new();
        h.update(b"foo");
        h.update(b"bar");
        assert_eq!(h.finish(), fnv1a64(b"foobar"));
    }

    #[test]
    fn pattern_is_positional() {
        assert_eq!(pattern_byte(0, 0), 0);
        assert_eq!(pattern_byte(0, 1), 131);
        assert_eq!(pattern_byte(1, 0), 7);
        // The page term changes the byte at each 4 KiB boundary.
        assert_eq!(pattern_byte(0, 4096), ((4096u64 * 131 + 1) & 0xff) as u8);
        assert_eq!(pattern_byte(3, u64::MAX), {
            let i = u64::MAX;
            (i.wrapping_mul(131).wrapping_add(21).wrapping_add(i >> 12) & 0xff) as u8
        });
        let whole = pattern(9, 0, 10000);
        let part = pattern(9, 1234, 100);
        assert_eq!(&whole[1234..1334], &part[..]);
    }
}
