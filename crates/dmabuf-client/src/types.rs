// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Decoded, host-byte-order views of what the control socket carries.

use std::fmt;
use std::time::Duration;

use virtio_dmabuf_proto::control::{
    buf_flags, import_kind, BufInfo, ImporterInfo, INFO_REVOKED, NAME_LEN,
};
use virtio_dmabuf_proto::virtio::{sync_flags, Uuid};

/// Flags of a SHARE.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShareFlags {
    /// Nobody, the sharer included, may begin write access through the daemon.
    pub read_only: bool,
    /// No VM may import the buffer; only host clients see it.
    pub host_only: bool,
}

impl ShareFlags {
    /// The wire bits (`buf_flags`).
    pub fn bits(self) -> u32 {
        let mut b = 0;
        if self.read_only {
            b |= buf_flags::READ_ONLY;
        }
        if self.host_only {
            b |= buf_flags::HOST_ONLY;
        }
        b
    }
}

/// Direction of a CPU access (BEGIN/END).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Read: shared with other readers.
    Read,
    /// Write (and read): exclusive against every other domain's overlapping access.
    Write,
}

impl Access {
    /// The wire bits (`sync_flags`).
    pub fn flags(self) -> u32 {
        match self {
            Access::Read => sync_flags::READ,
            Access::Write => sync_flags::WRITE,
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Access::Read => "read",
            Access::Write => "write",
        })
    }
}

/// A wait bound as the wire carries it: `None` is 0 (the daemon's default); anything else is at
/// least 1 ms (the daemon also caps it at its own default).
pub fn timeout_ms(t: Option<Duration>) -> u32 {
    match t {
        None => 0,
        Some(d) => u32::try_from(d.as_millis()).unwrap_or(u32::MAX).max(1),
    }
}

/// Decoded `BufInfo::flags`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BufferFlags {
    /// Importers get read access only (`BUF_READ_ONLY`).
    pub read_only: bool,
    /// Only host clients may import (`BUF_HOST_ONLY`).
    pub host_only: bool,
    /// The origin is a host file (`BUF_HOST_BACKED`).
    pub host_backed: bool,
    /// The buffer was revoked.
    pub revoked: bool,
    /// The raw bits, including any this client does not know.
    pub raw: u32,
}

impl BufferFlags {
    /// Decode wire bits (host byte order).
    pub fn from_bits(raw: u32) -> BufferFlags {
        BufferFlags {
            read_only: raw & buf_flags::READ_ONLY != 0,
            host_only: raw & buf_flags::HOST_ONLY != 0,
            host_backed: raw & buf_flags::HOST_BACKED != 0,
            revoked: raw & INFO_REVOKED != 0,
            raw,
        }
    }
}

impl fmt::Display for BufferFlags {
    /// Comma-separated names (`read-only,host-only,host-backed,revoked`), `-` when none.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let known =
            buf_flags::READ_ONLY | buf_flags::HOST_ONLY | buf_flags::HOST_BACKED | INFO_REVOKED;
        let mut parts: Vec<String> = Vec::new();
        for (set, name) in [
            (self.read_only, "read-only"),
            (self.host_only, "host-only"),
            (self.host_backed, "host-backed"),
            (self.revoked, "revoked"),
        ] {
            if set {
                parts.push(name.to_owned());
            }
        }
        if self.raw & !known != 0 {
            parts.push(format!("{:#x}", self.raw & !known));
        }
        if parts.is_empty() {
            f.write_str("-")
        } else {
            f.write_str(&parts.join(","))
        }
    }
}

/// One buffer, as LIST and INFO describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BufferInfo {
    /// The buffer.
    pub uuid: Uuid,
    /// Size in bytes.
    pub size: u64,
    /// Completed write ENDs (guests and host clients) so far.
    pub write_generation: u64,
    /// Flags.
    pub flags: BufferFlags,
    /// VMs that imported it.
    pub importers: u32,
    /// How many of them have it mapped in place (the others have a copy).
    pub mapped: u32,
    /// INFO only: each importing VM and how it imported (LIST leaves this empty).
    pub importer_list: Vec<Importer>,
    /// Coalesced segments (guest-backed) or 1 (host-backed).
    pub segments: u32,
    /// The owning VM's name, or `host:<pid>` for host shares.
    pub owner: String,
}

/// One VM that imported a buffer, as INFO lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Importer {
    /// The VM's name.
    pub vm: String,
    /// Mapped in place in the VM's shared memory region (else a copy in its own pages).
    pub mapped: bool,
    /// Bytes the daemon copied between the origin and this import at its fence points.
    pub copied: u64,
}

impl From<&ImporterInfo> for Importer {
    fn from(w: &ImporterInfo) -> Importer {
        Importer {
            vm: owner_text(&w.name),
            mapped: u32::from_le(w.kind) == import_kind::MAPPED,
            copied: u64::from_le(w.copied),
        }
    }
}

impl From<&BufInfo> for BufferInfo {
    fn from(w: &BufInfo) -> BufferInfo {
        BufferInfo {
            uuid: w.uuid,
            size: u64::from_le(w.size),
            write_generation: u64::from_le(w.write_generation),
            flags: BufferFlags::from_bits(u32::from_le(w.flags)),
            importers: u32::from_le(w.importers),
            mapped: u32::from_le(w.mapped),
            importer_list: Vec::new(),
            segments: u32::from_le(w.nr_segs),
            owner: owner_text(&w.owner),
        }
    }
}

/// The owner field up to its first NUL, non-printable bytes escaped.
fn owner_text(raw: &[u8; NAME_LEN]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(NAME_LEN);
    raw[..end]
        .iter()
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_wire_info() {
        let mut owner = [0u8; NAME_LEN];
        owner[..8].copy_from_slice(b"host:123");
        let w = BufInfo {
            uuid: [7; 16],
            size: 8192u64.to_le(),
            write_generation: 3u64.to_le(),
            flags: (buf_flags::READ_ONLY | buf_flags::HOST_BACKED | INFO_REVOKED).to_le(),
            importers: 2u32.to_le(),
            nr_segs: 1u32.to_le(),
            mapped: 1u32.to_le(),
            owner,
        };
        let i = BufferInfo::from(&w);
        assert_eq!(i.size, 8192);
        assert_eq!(i.write_generation, 3);
        assert_eq!(i.owner, "host:123");
        assert_eq!((i.importers, i.mapped), (2, 1));
        let mut name = [0u8; NAME_LEN];
        name[..3].copy_from_slice(b"vm1");
        let e = ImporterInfo {
            name,
            kind: import_kind::MAPPED.to_le(),
            reserved: 0,
            copied: 12345u64.to_le(),
        };
        assert_eq!(
            Importer::from(&e),
            Importer {
                vm: "vm1".into(),
                mapped: true,
                copied: 12345,
            }
        );
        assert!(i.flags.read_only && i.flags.host_backed && i.flags.revoked);
        assert!(!i.flags.host_only);
        assert_eq!(i.flags.to_string(), "read-only,host-backed,revoked");
        assert_eq!(BufferFlags::from_bits(0).to_string(), "-");
        assert_eq!(BufferFlags::from_bits(1 << 20).to_string(), "0x100000");
        let mut junk = [0xffu8; NAME_LEN];
        junk[3] = 0;
        assert_eq!(owner_text(&junk), "\\xff\\xff\\xff");
    }

    #[test]
    fn timeouts_on_the_wire() {
        assert_eq!(timeout_ms(None), 0);
        assert_eq!(timeout_ms(Some(Duration::ZERO)), 1);
        assert_eq!(timeout_ms(Some(Duration::from_millis(250))), 250);
        assert_eq!(timeout_ms(Some(Duration::from_secs(u64::MAX))), u32::MAX);
        assert_eq!(ShareFlags::default().bits(), 0);
        assert_eq!(
            ShareFlags {
                read_only: true,
                host_only: true
            }
            .bits(),
            buf_flags::READ_ONLY | buf_flags::HOST_ONLY
        );
    }
}
