// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The guest-facing wire format: everything `docs/device-spec.md` defines, byte for byte.
//!
//! All multi-byte fields are little-endian. The structs are `#[repr(C)]`, contain no padding
//! and implement [`ByteValued`], so they can be read from and written to guest memory directly.
//! On a big-endian host the accessors convert; the fields are never used raw.

use vm_memory::ByteValued;

/// Virtio device ID of the dma-buf device (`VIRTIO_ID_DMABUF`).
pub const VIRTIO_ID_DMABUF: u32 = 37;

/// Index of the request queue (driver → device).
pub const REQUEST_QUEUE: u16 = 0;
/// Index of the event queue (device → driver).
pub const EVENT_QUEUE: u16 = 1;
/// Number of virtqueues.
pub const NUM_QUEUES: usize = 2;

/// Feature bit: the device supports LOOKUP and ATTACH (importing buffers registered elsewhere).
pub const VIRTIO_DMABUF_F_IMPORT: u32 = 0;

/// Feature bit: the device supports MAP (imports mapped in place in its shared memory region,
/// spec section 13). Offered only together with [`VIRTIO_DMABUF_F_IMPORT`].
pub const VIRTIO_DMABUF_F_MAP: u32 = 1;

/// Id of the shared memory region that holds mapped imports (`VIRTIO_DMABUF_SHM_MAP`).
pub const VIRTIO_DMABUF_SHM_MAP: u8 = 0;

/// Size of one page as the spec counts it (segment sizes need not be multiples of it).
pub const PAGE_SIZE: u64 = 4096;

/// Request types (`virtio_dmabuf_req_hdr.type`).
pub mod req {
    /// Register a guest-backed buffer.
    pub const CREATE: u32 = 0x0100;
    /// Drop this driver's reference (destroys an own buffer, detaches an imported one).
    pub const RELEASE: u32 = 0x0101;
    /// Ask size and flags of a buffer by UUID.
    pub const LOOKUP: u32 = 0x0102;
    /// Attach driver pages as this driver's copy of a buffer registered elsewhere.
    pub const ATTACH: u32 = 0x0103;
    /// Begin or end CPU access to a range.
    pub const SYNC: u32 = 0x0104;
    /// Import a buffer mapped in place in the shared memory region (spec section 13.2).
    pub const MAP: u32 = 0x0105;
}

/// `virtio_dmabuf_create.flags` and `virtio_dmabuf_lookup_resp.flags`.
pub mod buf_flags {
    /// Importers may only be granted read access.
    pub const READ_ONLY: u32 = 1 << 0;
    /// Only host clients may import; other VMs get PERMISSION_DENIED (CREATE only).
    pub const HOST_ONLY: u32 = 1 << 1;
    /// LOOKUP: the buffer is backed by a host file (memfd or dma-buf).
    pub const HOST_BACKED: u32 = 1 << 8;
    /// LOOKUP: this driver created the buffer.
    pub const OWN: u32 = 1 << 9;
    /// Flags a driver may set in CREATE.
    pub const CREATE_MASK: u32 = READ_ONLY | HOST_ONLY;
}

/// `virtio_dmabuf_sync.flags`.
pub mod sync_flags {
    /// The CPU reads the range.
    pub const READ: u32 = 1 << 0;
    /// The CPU writes the range.
    pub const WRITE: u32 = 1 << 1;
    /// End of access (clear: start of access).
    pub const END: u32 = 1 << 2;
    /// Every defined bit.
    pub const MASK: u32 = READ | WRITE | END;
}

/// Event types (`virtio_dmabuf_event.type`).
pub mod event {
    /// A buffer this driver attached was released by its owner or revoked by the host.
    pub const REVOKED: u32 = 1;
}

/// Status codes, shared by the virtqueue responses and the host control socket.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// Unknown type, reserved field not zero, undefined flag, truncated request.
    InvalidRequest = 1,
    /// A segment lies outside guest memory, straddles a hole, or its end overflows.
    InvalidAddress = 2,
    /// Zero size or length, lengths not adding up to the size, range outside the buffer.
    InvalidSize = 3,
    /// More segments than `max_segments`.
    TooManySegments = 4,
    /// No buffer has that UUID (or the requester may not know it exists).
    NotFound = 5,
    /// The requester already holds this buffer (own buffer, or attached before).
    AlreadyExists = 6,
    /// Access control refused: read-only share, VM not allowed, host-only buffer.
    PermissionDenied = 7,
    /// A per-VM or per-client quota would be exceeded.
    QuotaExceeded = 8,
    /// A parked START was not granted within its bound.
    Timeout = 9,
    /// END without a matching START (range or direction differ).
    NotHeld = 10,
    /// The buffer was released by its owner or revoked while the request was pending.
    Revoked = 11,
    /// The requester went away or was reset while the request was pending.
    Cancelled = 12,
    /// The device-writable part is too small for the response.
    ResponseTooSmall = 13,
    /// The host failed to move data (I/O on a host file, dma-buf sync).
    IoError = 14,
    /// The request needs a feature that was not negotiated, or the host lacks it.
    Unsupported = 15,
    /// MAP: no free range of the buffer's length in the shared memory region.
    NoSpace = 16,
}

impl Status {
    /// Every status, in numeric order.
    pub const ALL: [Status; 17] = [
        Status::Ok,
        Status::InvalidRequest,
        Status::InvalidAddress,
        Status::InvalidSize,
        Status::TooManySegments,
        Status::NotFound,
        Status::AlreadyExists,
        Status::PermissionDenied,
        Status::QuotaExceeded,
        Status::Timeout,
        Status::NotHeld,
        Status::Revoked,
        Status::Cancelled,
        Status::ResponseTooSmall,
        Status::IoError,
        Status::Unsupported,
        Status::NoSpace,
    ];

    /// Decode a wire value; unknown values are `None`.
    pub fn from_u32(v: u32) -> Option<Status> {
        Self::ALL.get(usize::try_from(v).ok()?).copied()
    }

    /// The spec's name of the status, as printed by tools.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::InvalidRequest => "INVALID_REQUEST",
            Status::InvalidAddress => "INVALID_ADDRESS",
            Status::InvalidSize => "INVALID_SIZE",
            Status::TooManySegments => "TOO_MANY_SEGMENTS",
            Status::NotFound => "NOT_FOUND",
            Status::AlreadyExists => "ALREADY_EXISTS",
            Status::PermissionDenied => "PERMISSION_DENIED",
            Status::QuotaExceeded => "QUOTA_EXCEEDED",
            Status::Timeout => "TIMEOUT",
            Status::NotHeld => "NOT_HELD",
            Status::Revoked => "REVOKED",
            Status::Cancelled => "CANCELLED",
            Status::ResponseTooSmall => "RESPONSE_TOO_SMALL",
            Status::IoError => "IO_ERROR",
            Status::Unsupported => "UNSUPPORTED",
            Status::NoSpace => "NO_SPACE",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Marks a plain-old-data wire struct as [`ByteValued`].
macro_rules! wire_struct {
    ($($t:ty),* $(,)?) => {$(
        // SAFETY: the type is `#[repr(C)]`, built only from integers and byte arrays laid out
        // without padding (checked by the size assertions below), so every bit pattern is valid.
        unsafe impl ByteValued for $t {}
    )*};
}

/// Device configuration space (`struct virtio_dmabuf_config`, 24 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Most segments one CREATE or ATTACH may carry.
    pub max_segments: u32,
    /// Most buffers this driver may hold (created plus attached).
    pub max_buffers: u32,
    /// Most bytes this driver may hold (created plus attached).
    pub max_bytes: u64,
    /// Default and upper bound, in milliseconds, of a parked SYNC START.
    pub sync_timeout_ms: u32,
    /// Zero.
    pub reserved: u32,
}

/// Common request header (8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReqHdr {
    /// One of [`req`].
    pub type_: u32,
    /// Zero.
    pub reserved: u32,
}

/// Common response header (8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RespHdr {
    /// A [`Status`] value.
    pub status: u32,
    /// Zero.
    pub reserved: u32,
}

/// One scatter-gather segment: guest-physical address and length (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// Guest-physical address of the first byte.
    pub addr: u64,
    /// Length in bytes; not zero.
    pub len: u64,
}

/// CREATE body (16 bytes), followed by `nr_segs` [`Segment`]s.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CreateReq {
    /// Buffer size in bytes: the sum of the segment lengths.
    pub size: u64,
    /// [`buf_flags::CREATE_MASK`] bits.
    pub flags: u32,
    /// Number of segments that follow.
    pub nr_segs: u32,
}

/// A buffer UUID on the wire (16 bytes, RFC 4122 byte order).
pub type Uuid = [u8; 16];

/// CREATE response body: the new buffer's UUID.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CreateResp {
    /// Header.
    pub hdr: RespHdr,
    /// Random (version 4) UUID.
    pub uuid: Uuid,
}

/// RELEASE and LOOKUP body (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UuidReq {
    /// The buffer.
    pub uuid: Uuid,
}

/// LOOKUP response (24 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LookupResp {
    /// Header.
    pub hdr: RespHdr,
    /// Buffer size in bytes.
    pub size: u64,
    /// [`buf_flags`] bits.
    pub flags: u32,
    /// Zero.
    pub reserved: u32,
}

/// ATTACH body (24 bytes), followed by `nr_segs` [`Segment`]s.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttachReq {
    /// The buffer to attach to.
    pub uuid: Uuid,
    /// Number of segments that follow.
    pub nr_segs: u32,
    /// Zero.
    pub reserved: u32,
}

/// SYNC body (40 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncReq {
    /// The buffer.
    pub uuid: Uuid,
    /// First byte of the range.
    pub offset: u64,
    /// Length of the range; not zero.
    pub len: u64,
    /// [`sync_flags`] bits.
    pub flags: u32,
    /// START: wait bound in ms (0: the device default); END: zero.
    pub timeout_ms: u32,
}

/// MAP body (24 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapReq {
    /// The buffer to import.
    pub uuid: Uuid,
    /// Zero (no flag is defined).
    pub flags: u32,
    /// Zero.
    pub reserved: u32,
}

/// MAP response (32 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapResp {
    /// Header.
    pub hdr: RespHdr,
    /// Where the buffer starts in the shared memory region (a multiple of 4096).
    pub offset: u64,
    /// Bytes mapped: the size rounded up to 4096.
    pub len: u64,
    /// As LOOKUP: [`buf_flags::READ_ONLY`], [`buf_flags::HOST_BACKED`].
    pub flags: u32,
    /// Zero.
    pub reserved: u32,
}

/// An event-queue element (24 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// One of [`event`].
    pub type_: u32,
    /// Zero.
    pub reserved: u32,
    /// The buffer concerned.
    pub uuid: Uuid,
}

wire_struct!(
    Config, ReqHdr, RespHdr, Segment, CreateReq, CreateResp, UuidReq, LookupResp, AttachReq,
    SyncReq, MapReq, MapResp, Event,
);

const _: () = {
    assert!(size_of::<Config>() == 24);
    assert!(size_of::<ReqHdr>() == 8);
    assert!(size_of::<RespHdr>() == 8);
    assert!(size_of::<Segment>() == 16);
    assert!(size_of::<CreateReq>() == 16);
    assert!(size_of::<CreateResp>() == 24);
    assert!(size_of::<UuidReq>() == 16);
    assert!(size_of::<LookupResp>() == 24);
    assert!(size_of::<AttachReq>() == 24);
    assert!(size_of::<SyncReq>() == 40);
    assert!(size_of::<MapReq>() == 24);
    assert!(size_of::<MapResp>() == 32);
    assert!(size_of::<Event>() == 24);
};

impl Config {
    /// Encode for the config space (little-endian).
    pub fn to_le(self) -> Config {
        Config {
            max_segments: self.max_segments.to_le(),
            max_buffers: self.max_buffers.to_le(),
            max_bytes: self.max_bytes.to_le(),
            sync_timeout_ms: self.sync_timeout_ms.to_le(),
            reserved: 0,
        }
    }
}

impl RespHdr {
    /// A response header carrying `status`, little-endian.
    pub fn new(status: Status) -> RespHdr {
        RespHdr {
            status: (status as u32).to_le(),
            reserved: 0,
        }
    }
}

impl Segment {
    /// Host byte order view.
    pub fn decoded(&self) -> (u64, u64) {
        (u64::from_le(self.addr), u64::from_le(self.len))
    }

    /// A little-endian segment.
    pub fn new(addr: u64, len: u64) -> Segment {
        Segment {
            addr: addr.to_le(),
            len: len.to_le(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips() {
        for (i, s) in Status::ALL.iter().enumerate() {
            assert_eq!(*s as u32, u32::try_from(i).unwrap());
            assert_eq!(Status::from_u32(*s as u32), Some(*s));
        }
        assert_eq!(Status::from_u32(16), Some(Status::NoSpace));
        assert_eq!(Status::from_u32(17), None);
        assert_eq!(Status::from_u32(u32::MAX), None);
    }
}
