// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Byte sizes as the command lines of the daemon and of `dmabufctl` write them.
//!
//! One rule for both: a decimal or `0x` hexadecimal number, optionally followed by a binary unit
//! `K`, `M`, `G` or `T` (either case: 2^10, 2^20, 2^30, 2^40). Surrounding spaces are ignored; a
//! result that does not fit in 64 bits is an error.

use std::num::ParseIntError;

use thiserror::Error;

/// Why a string is not a size.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SizeError {
    /// The number part does not parse.
    #[error("{0:?} is not a size (a number, decimal or 0x hex, with an optional K, M, G or T)")]
    Number(String, #[source] ParseIntError),
    /// The number times its unit does not fit in 64 bits.
    #[error("{0:?} is too large")]
    Overflow(String),
}

/// Parse a size: `4096`, `0x1000`, `8K`, `512m`, `2G`, `1T`.
pub fn parse(s: &str) -> Result<u64, SizeError> {
    let t = s.trim();
    let (num, shift) = match t.char_indices().last() {
        Some((i, 'K' | 'k')) => (&t[..i], 10),
        Some((i, 'M' | 'm')) => (&t[..i], 20),
        Some((i, 'G' | 'g')) => (&t[..i], 30),
        Some((i, 'T' | 't')) => (&t[..i], 40),
        _ => (t, 0),
    };
    let n = match num.strip_prefix("0x").or_else(|| num.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => num.parse::<u64>(),
    }
    .map_err(|e| SizeError::Number(s.to_owned(), e))?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| SizeError::Overflow(s.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_one_rule() {
        assert_eq!(parse("4096"), Ok(4096));
        assert_eq!(parse(" 4096 "), Ok(4096));
        assert_eq!(parse("8K"), Ok(8192));
        assert_eq!(parse("1m"), Ok(1 << 20));
        assert_eq!(parse("2G"), Ok(2 << 30));
        assert_eq!(parse("8G"), Ok(8 << 30));
        assert_eq!(parse("1T"), Ok(1 << 40));
        assert_eq!(parse("0x1000"), Ok(4096));
        assert_eq!(parse("0X10k"), Ok(16 << 10));
        assert!(matches!(parse("lots"), Err(SizeError::Number(..))));
        assert!(matches!(parse("-1"), Err(SizeError::Number(..))));
        assert!(matches!(parse(""), Err(SizeError::Number(..))));
        assert!(matches!(parse("K"), Err(SizeError::Number(..))));
        assert!(matches!(parse("0x"), Err(SizeError::Number(..))));
        assert!(matches!(
            parse("99999999999999999999G"),
            Err(SizeError::Number(..))
        ));
        assert_eq!(
            parse("16777216T"),
            Err(SizeError::Overflow("16777216T".into()))
        );
        assert!(parse("lots")
            .unwrap_err()
            .to_string()
            .contains("not a size"));
    }
}
