// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The host control socket's wire format (`docs/control-protocol.md`).
//!
//! A stream of frames over a Unix stream socket. Every frame starts with a 16-byte header and is
//! followed by `len` payload bytes. A request may carry one file descriptor (SCM_RIGHTS, sent
//! with the header's first byte); so may a response. All integers are little-endian.

use vm_memory::ByteValued;

use crate::virtio::{Status, Uuid};

pub mod request;

pub use request::{decode_request, CtlError, CtlRequest, CtlSpan, ShareArgs};

/// `"DBUF"` read as a little-endian u32: the first field of every request.
pub const MAGIC: u32 = u32::from_le_bytes(*b"DBUF");
/// Largest payload of one frame (data transfers are split by the client).
pub const MAX_PAYLOAD: u32 = 16 << 20;
/// Bytes of a VM name on the wire (NUL-padded, at most 31 characters).
pub const NAME_LEN: usize = 32;
/// Most VM names a SHARE may list.
pub const MAX_ALLOWED_VMS: u32 = 64;

/// Operation codes (`CtlReqHdr::op`).
pub mod op {
    /// Share an fd (a memfd sealed with F_SEAL_SHRINK, or a dma-buf) → UUID.
    pub const SHARE: u32 = 1;
    /// List every buffer → [`super::BufInfo`] array.
    pub const LIST: u32 = 2;
    /// One buffer's [`super::BufInfo`].
    pub const INFO: u32 = 3;
    /// Begin CPU access (may wait).
    pub const BEGIN: u32 = 4;
    /// End CPU access.
    pub const END: u32 = 5;
    /// Read bytes of a range this client holds, returned in the response payload.
    pub const READ: u32 = 6;
    /// Copy a held range into the attached fd (a memfd the client supplies).
    pub const READ_INTO: u32 = 7;
    /// Write the payload into a range this client holds for writing.
    pub const WRITE: u32 = 8;
    /// Get a host dma-buf fd (udmabuf) of a guest-backed buffer, zero copy.
    pub const EXPORT: u32 = 9;
    /// Wait until some guest ends a write to the buffer.
    pub const WAIT_WRITE: u32 = 10;
    /// Revoke a buffer: importers are detached and notified, later lookups fail.
    pub const REVOKE: u32 = 11;
    /// Keep the attached fd (a memfd or dma-buf of the client's) mapped as this connection's
    /// target for READ_TARGET, until replaced or the connection closes.
    pub const SET_TARGET: u32 = 12;
    /// Copy a held range into the connection's target (READ_INTO without mapping per call).
    pub const READ_TARGET: u32 = 13;
}

/// `ShareReq::flags` and `BufInfo::flags` (same values as the virtio `buf_flags`).
pub use crate::virtio::buf_flags;

/// `BufInfo::flags`: the buffer was revoked.
pub const INFO_REVOKED: u32 = 1 << 16;

/// Request frame header (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtlReqHdr {
    /// [`MAGIC`].
    pub magic: u32,
    /// One of [`op`].
    pub op: u32,
    /// Payload bytes that follow.
    pub len: u32,
    /// Zero.
    pub reserved: u32,
}

/// Response frame header (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtlRespHdr {
    /// A [`Status`] value.
    pub status: u32,
    /// Payload bytes that follow.
    pub len: u32,
    /// 1 when an fd came with this frame.
    pub has_fd: u32,
    /// Zero.
    pub reserved: u32,
}

/// SHARE payload (16 bytes), followed by `nr_allowed` names of [`NAME_LEN`] bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShareReq {
    /// Bytes of the fd to share, from offset 0; not more than the fd holds.
    pub size: u64,
    /// `buf_flags::READ_ONLY` and/or `buf_flags::HOST_ONLY`.
    pub flags: u32,
    /// VMs allowed to import (0: every VM).
    pub nr_allowed: u32,
}

/// INFO, EXPORT and REVOKE payload; SHARE response payload.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtlUuid {
    /// The buffer.
    pub uuid: Uuid,
}

/// BEGIN, END, READ, READ_INTO and WRITE payload (40 bytes; WRITE data follows).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtlRange {
    /// The buffer.
    pub uuid: Uuid,
    /// First byte.
    pub offset: u64,
    /// Length (READ/READ_INTO/BEGIN/END; WRITE: the payload's data length).
    pub len: u64,
    /// BEGIN/END: `sync_flags::READ|WRITE`; READ_INTO: zero.
    pub flags: u32,
    /// BEGIN: wait bound in ms (0: the daemon default); READ_INTO: offset in the fd / 4096.
    pub arg: u32,
}

/// WAIT_WRITE payload (32 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WaitWriteReq {
    /// The buffer.
    pub uuid: Uuid,
    /// Return once the write generation is greater than this.
    pub after_generation: u64,
    /// Bound in ms (0: the daemon default).
    pub timeout_ms: u32,
    /// Zero.
    pub reserved: u32,
}

/// One buffer as LIST and INFO describe it (80 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BufInfo {
    /// The buffer.
    pub uuid: Uuid,
    /// Size in bytes.
    pub size: u64,
    /// Completed guest and host write ENDs so far.
    pub write_generation: u64,
    /// `buf_flags` bits plus [`INFO_REVOKED`].
    pub flags: u32,
    /// Number of domains that imported it.
    pub importers: u32,
    /// Coalesced segments (guest-backed) or 1 (host-backed).
    pub nr_segs: u32,
    /// How many of the importers have it mapped in place (device spec section 13); the others
    /// have a copy.
    pub mapped: u32,
    /// Owner: the VM name, or `host:<pid>` for host shares (NUL-padded).
    pub owner: [u8; NAME_LEN],
}

/// INFO lists each importer after the [`BufInfo`] (48 bytes each).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImporterInfo {
    /// The importing VM's name (NUL-padded).
    pub name: [u8; NAME_LEN],
    /// One of [`import_kind`].
    pub kind: u32,
    /// Zero.
    pub reserved: u32,
    /// Bytes the daemon copied between the origin and this import at its fence points so far
    /// (0 for a mapped import).
    pub copied: u64,
}

/// How a VM imported a buffer (`ImporterInfo::kind`).
pub mod import_kind {
    /// A copy in the VM's own pages, brought up to date at fence points.
    pub const COPIED: u32 = 1;
    /// The origin mapped in place in the VM's shared memory region.
    pub const MAPPED: u32 = 2;
}

/// EXPORT and READ_INTO response payload: how the data was reached.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathResp {
    /// One of [`access_path`].
    pub path: u32,
    /// Zero.
    pub reserved: u32,
    /// Bytes the daemon copied to serve the request.
    pub copied: u64,
}

/// How a host consumer reached a buffer's bytes (`PathResp::path`).
pub mod access_path {
    /// A udmabuf over the guest's pages: zero copy.
    pub const UDMABUF: u32 = 1;
    /// One copy of the range into the client's memfd.
    pub const COPY_INTO_FD: u32 = 2;
    /// One copy of the range over the socket.
    pub const SOCKET: u32 = 3;
}

/// WAIT_WRITE response payload.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Generation {
    /// The buffer's write generation when the wait ended.
    pub generation: u64,
}

macro_rules! wire_struct {
    ($($t:ty),* $(,)?) => {$(
        // SAFETY: the type is `#[repr(C)]`, built only from integers and byte arrays laid out
        // without padding (checked by the size assertions below), so every bit pattern is valid.
        unsafe impl ByteValued for $t {}
    )*};
}

wire_struct!(
    CtlReqHdr,
    CtlRespHdr,
    ShareReq,
    CtlUuid,
    CtlRange,
    WaitWriteReq,
    BufInfo,
    ImporterInfo,
    PathResp,
    Generation
);

const _: () = {
    assert!(size_of::<CtlReqHdr>() == 16);
    assert!(size_of::<CtlRespHdr>() == 16);
    assert!(size_of::<ShareReq>() == 16);
    assert!(size_of::<CtlUuid>() == 16);
    assert!(size_of::<CtlRange>() == 40);
    assert!(size_of::<WaitWriteReq>() == 32);
    assert!(size_of::<BufInfo>() == 80);
    assert!(size_of::<ImporterInfo>() == 48);
    assert!(size_of::<PathResp>() == 16);
    assert!(size_of::<Generation>() == 8);
};

impl CtlRespHdr {
    /// A header for `status` with `len` payload bytes.
    pub fn new(status: Status, len: u32, has_fd: bool) -> CtlRespHdr {
        CtlRespHdr {
            status: (status as u32).to_le(),
            len: len.to_le(),
            has_fd: u32::from(has_fd).to_le(),
            reserved: 0,
        }
    }
}

/// Encode a name into its fixed wire field; `None` if too long or not printable ASCII.
pub fn encode_name(name: &str) -> Option<[u8; NAME_LEN]> {
    if name.is_empty()
        || name.len() >= NAME_LEN
        || !name.bytes().all(|b| b.is_ascii_graphic() && b != b',')
    {
        return None;
    }
    let mut out = [0u8; NAME_LEN];
    out[..name.len()].copy_from_slice(name.as_bytes());
    Some(out)
}

/// Decode a fixed wire name; `None` if it is not a valid name.
pub fn decode_name(raw: &[u8; NAME_LEN]) -> Option<String> {
    let end = raw.iter().position(|&b| b == 0)?;
    if raw[end..].iter().any(|&b| b != 0) {
        return None;
    }
    let s = std::str::from_utf8(&raw[..end]).ok()?;
    encode_name(s).map(|_| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_reject_junk() {
        let n = encode_name("vm1").unwrap();
        assert_eq!(decode_name(&n).as_deref(), Some("vm1"));
        assert!(encode_name("").is_none());
        assert!(encode_name(&"x".repeat(NAME_LEN)).is_none());
        assert!(encode_name("a,b").is_none());
        assert!(encode_name("a b").is_none());
        let mut bad = n;
        bad[10] = b'x';
        assert!(decode_name(&bad).is_none());
        assert!(decode_name(&[b'a'; NAME_LEN]).is_none());
    }
}
