// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! UUID text form (`8-4-4-4-12` lowercase hex), shared by the daemon, the client and the CLI.

use crate::virtio::Uuid;

/// Format a UUID as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
pub fn format(u: &Uuid) -> String {
    let mut s = String::with_capacity(36);
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Parse the text form (hyphens optional, either case); `None` if malformed.
pub fn parse(s: &str) -> Option<Uuid> {
    let hex: Vec<u8> = s.bytes().filter(|&b| b != b'-').collect();
    if hex.len() != 32 || s.len() > 36 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let u: Uuid = [
            0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0x4d, 0xef, 0x80, 0x01, 0x02, 0x03, 0x04, 0x05,
            0x06, 0x07,
        ];
        let s = format(&u);
        assert_eq!(s, "12345678-9abc-4def-8001-020304050607");
        assert_eq!(parse(&s), Some(u));
        assert_eq!(parse(&s.to_uppercase()), Some(u));
        assert_eq!(parse(&s.replace('-', "")), Some(u));
        assert_eq!(parse("1234"), None);
        assert_eq!(parse(&s.replace('1', "g")), None);
        assert_eq!(parse("+2345678-9abc-4def-8001-020304050607"), None);
    }
}
