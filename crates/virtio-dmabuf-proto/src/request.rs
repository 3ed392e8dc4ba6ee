// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Guest requests (spec section 6) decoded from the device-readable part of a chain into typed
//! requests, validated as far as their bytes allow.
//!
//! A device reads a request in two steps, because the spec orders its answers so: the header
//! first ([`read_header`]: an unknown type or a reserved field is `INVALID_REQUEST`), then —
//! once it knows the response fits (`RESPONSE_TOO_SMALL`) and the feature it needs was
//! negotiated (`UNSUPPORTED`) — the body ([`read_body`]). Everything that depends on state
//! (which buffers exist, guest RAM, quotas) is the device's to check.
//!
//! The input is any [`io::Read`] over the request bytes, e.g. virtio-queue's `Reader`.

use std::io::{self, Read};

use thiserror::Error;
use vm_memory::ByteValued;

use crate::segments::{SegmentError, SegmentList, SegmentListBuilder};
use crate::virtio::{
    buf_flags, req, sync_flags, AttachReq, CreateReq, CreateResp, LookupResp, MapReq, MapResp,
    ReqHdr, RespHdr, Status, SyncReq, Uuid, UuidReq,
};

/// Segments are read this many at a time (64 KiB), so a long list is checked as it arrives.
const SEGMENT_CHUNK: usize = 4096;

/// A request type (`virtio_dmabuf_req_hdr.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestType {
    /// `VIRTIO_DMABUF_REQ_CREATE`.
    Create,
    /// `VIRTIO_DMABUF_REQ_RELEASE`.
    Release,
    /// `VIRTIO_DMABUF_REQ_LOOKUP`.
    Lookup,
    /// `VIRTIO_DMABUF_REQ_ATTACH`.
    Attach,
    /// `VIRTIO_DMABUF_REQ_SYNC`.
    Sync,
    /// `VIRTIO_DMABUF_REQ_MAP`.
    Map,
}

impl RequestType {
    /// Decode a wire value.
    pub fn from_u32(v: u32) -> Option<RequestType> {
        match v {
            req::CREATE => Some(RequestType::Create),
            req::RELEASE => Some(RequestType::Release),
            req::LOOKUP => Some(RequestType::Lookup),
            req::ATTACH => Some(RequestType::Attach),
            req::SYNC => Some(RequestType::Sync),
            req::MAP => Some(RequestType::Map),
            _ => None,
        }
    }

    /// Bytes of the full response on success.
    pub fn response_len(self) -> usize {
        match self {
            RequestType::Create => size_of::<CreateResp>(),
            RequestType::Lookup => size_of::<LookupResp>(),
            RequestType::Map => size_of::<MapResp>(),
            _ => size_of::<RespHdr>(),
        }
    }

    /// Whether the request needs `VIRTIO_DMABUF_F_IMPORT` (LOOKUP and ATTACH).
    pub fn needs_import(self) -> bool {
        matches!(
            self,
            RequestType::Lookup | RequestType::Attach | RequestType::Map
        )
    }

    /// Whether the request needs `VIRTIO_DMABUF_F_MAP` (MAP).
    pub fn needs_map(self) -> bool {
        matches!(self, RequestType::Map)
    }
}

/// The direction of a CPU access (`SYNC_READ`, `SYNC_WRITE`, or both).
///
/// Arbitration treats any direction with `SYNC_WRITE` as a write; an END must name exactly the
/// direction of its START, so `ReadWrite` and `Write` are different directions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `SYNC_READ`.
    Read,
    /// `SYNC_WRITE`.
    Write,
    /// `SYNC_READ | SYNC_WRITE`.
    ReadWrite,
}

impl Direction {
    /// Whether the CPU writes (a write access excludes every other domain's overlapping one).
    pub fn writes(self) -> bool {
        !matches!(self, Direction::Read)
    }

    /// The direction of `sync_flags` bits (ignoring `SYNC_END`); `None` without READ or WRITE.
    pub fn from_flags(flags: u32) -> Option<Direction> {
        match flags & (sync_flags::READ | sync_flags::WRITE) {
            sync_flags::READ => Some(Direction::Read),
            sync_flags::WRITE => Some(Direction::Write),
            f if f != 0 => Some(Direction::ReadWrite),
            _ => None,
        }
    }

    /// The `sync_flags` bits.
    pub fn flags(self) -> u32 {
        match self {
            Direction::Read => sync_flags::READ,
            Direction::Write => sync_flags::WRITE,
            Direction::ReadWrite => sync_flags::READ | sync_flags::WRITE,
        }
    }
}

/// The flags of a CREATE.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CreateFlags {
    /// `VIRTIO_DMABUF_BUF_READ_ONLY`: importers are only granted read access.
    pub read_only: bool,
    /// `VIRTIO_DMABUF_BUF_HOST_ONLY`: other VMs may not import.
    pub host_only: bool,
}

impl CreateFlags {
    /// Decode; `None` if a bit outside `CREATE_MASK` is set.
    pub fn from_bits(bits: u32) -> Option<CreateFlags> {
        (bits & !buf_flags::CREATE_MASK == 0).then_some(CreateFlags {
            read_only: bits & buf_flags::READ_ONLY != 0,
            host_only: bits & buf_flags::HOST_ONLY != 0,
        })
    }

    /// The wire bits.
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

/// CREATE: register guest pages as a new buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateRequest {
    /// Bytes (not zero; the segments add up to it).
    pub size: u64,
    /// Flags.
    pub flags: CreateFlags,
    /// The pages, coalesced.
    pub segments: SegmentList,
}

/// ATTACH: import a buffer with the driver's own pages as its copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachRequest {
    /// The buffer.
    pub uuid: Uuid,
    /// The copy's pages, coalesced (the device checks them against the buffer's size).
    pub segments: SegmentList,
}

/// Which fence point a SYNC is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncPhase {
    /// START: wait at most `timeout_ms` (0: the device's default) for the access.
    Start {
        /// The wait bound.
        timeout_ms: u32,
    },
    /// END of an access begun with the same range and direction.
    End,
}

/// SYNC: begin or end CPU access to a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncRequest {
    /// The buffer.
    pub uuid: Uuid,
    /// First byte.
    pub offset: u64,
    /// Bytes (not zero; `offset + len` does not overflow).
    pub len: u64,
    /// Direction.
    pub dir: Direction,
    /// START or END.
    pub phase: SyncPhase,
}

/// A decoded request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// CREATE.
    Create(CreateRequest),
    /// RELEASE of a UUID.
    Release(Uuid),
    /// LOOKUP of a UUID.
    Lookup(Uuid),
    /// ATTACH.
    Attach(AttachRequest),
    /// SYNC.
    Sync(SyncRequest),
    /// MAP of a UUID.
    Map(Uuid),
}

/// Why a request was refused before the device looked at any state.
#[derive(Debug, Error)]
pub enum DecodeError {
    /// The request ended before a field.
    #[error("request truncated in its {0}")]
    Truncated(&'static str),
    /// Reading the request failed.
    #[error("cannot read the request's {0}")]
    Read(&'static str, #[source] io::Error),
    /// The header names no request type.
    #[error("unknown request type {0:#x}")]
    UnknownType(u32),
    /// A reserved field is not zero.
    #[error("reserved field of the {0} not zero")]
    Reserved(&'static str),
    /// CREATE flags outside `CREATE_MASK`.
    #[error("undefined CREATE flags {0:#x}")]
    CreateFlags(u32),
    /// SYNC flags with an undefined bit, or without a direction.
    #[error("invalid SYNC flags {0:#x}")]
    SyncFlags(u32),
    /// MAP flags (none is defined).
    #[error("undefined MAP flags {0:#x}")]
    MapFlags(u32),
    /// A SYNC END with a wait bound.
    #[error("SYNC END with timeout_ms {0}")]
    EndTimeout(u32),
    /// CREATE of zero bytes.
    #[error("CREATE of size zero")]
    ZeroSize,
    /// CREATE or ATTACH without segments.
    #[error("no segments")]
    NoSegments,
    /// More segments than the device takes.
    #[error("{count} segments, at most {max}")]
    TooManySegments {
        /// `nr_segs`.
        count: u32,
        /// `max_segments`.
        max: u32,
    },
    /// A segment refused.
    #[error("invalid segment")]
    Segment(#[source] SegmentError),
    /// CREATE whose segments do not add up to its size.
    #[error("segments add up to {actual:?} bytes (None: more than 2^64), expected {expected}")]
    SizeMismatch {
        /// `size`.
        expected: u64,
        /// The sum of the lengths, `None` if it overflows.
        actual: Option<u64>,
    },
    /// SYNC of zero bytes.
    #[error("SYNC of length zero")]
    ZeroLength,
    /// SYNC whose `offset + len` overflows.
    #[error("SYNC range {offset:#x} + {len:#x} overflows")]
    RangeOverflow {
        /// Offset.
        offset: u64,
        /// Length.
        len: u64,
    },
}

impl DecodeError {
    /// The status the device answers (spec sections 6 and 9).
    pub fn status(&self) -> Status {
        match self {
            DecodeError::Truncated(_)
            | DecodeError::Read(..)
            | DecodeError::UnknownType(_)
            | DecodeError::Reserved(_)
            | DecodeError::CreateFlags(_)
            | DecodeError::SyncFlags(_)
            | DecodeError::MapFlags(_)
            | DecodeError::EndTimeout(_) => Status::InvalidRequest,
            DecodeError::ZeroSize
            | DecodeError::NoSegments
            | DecodeError::SizeMismatch { .. }
            | DecodeError::ZeroLength
            | DecodeError::RangeOverflow { .. }
            | DecodeError::Segment(SegmentError::ZeroLength { .. }) => Status::InvalidSize,
            DecodeError::Segment(SegmentError::Overflow { .. }) => Status::InvalidAddress,
            DecodeError::TooManySegments { .. } => Status::TooManySegments,
        }
    }
}

/// What the decoder checks beyond the bytes themselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Most segments in one CREATE or ATTACH (`max_segments` of the configuration space).
    pub max_segments: u32,
}

fn read_exact(
    input: &mut impl Read,
    buf: &mut [u8],
    what: &'static str,
) -> Result<(), DecodeError> {
    input.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            DecodeError::Truncated(what)
        } else {
            DecodeError::Read(what, e)
        }
    })
}

fn read_obj<T: ByteValued + Default>(
    input: &mut impl Read,
    what: &'static str,
) -> Result<T, DecodeError> {
    let mut v = T::default();
    read_exact(input, v.as_mut_slice(), what)?;
    Ok(v)
}

/// Read and check the header.
pub fn read_header(input: &mut impl Read) -> Result<RequestType, DecodeError> {
    let hdr: ReqHdr = read_obj(input, "header")?;
    if hdr.reserved != 0 {
        return Err(DecodeError::Reserved("header"));
    }
    let kind = u32::from_le(hdr.type_);
    RequestType::from_u32(kind).ok_or(DecodeError::UnknownType(kind))
}

/// Read and check the body of a request of type `kind`.
pub fn read_body(
    kind: RequestType,
    input: &mut impl Read,
    limits: &DecodeLimits,
) -> Result<Request, DecodeError> {
    match kind {
        RequestType::Create => read_create(input, limits).map(Request::Create),
        RequestType::Release => {
            read_obj::<UuidReq>(input, "body").map(|r| Request::Release(r.uuid))
        }
        RequestType::Lookup => read_obj::<UuidReq>(input, "body").map(|r| Request::Lookup(r.uuid)),
        RequestType::Attach => read_attach(input, limits).map(Request::Attach),
        RequestType::Sync => read_obj::<SyncReq>(input, "body")
            .and_then(|b| b.decode())
            .map(Request::Sync),
        RequestType::Map => read_obj::<MapReq>(input, "body")
            .and_then(|b| b.decode())
            .map(Request::Map),
    }
}

/// Read a whole request: header and body (for callers that need no step in between).
pub fn read_request(input: &mut impl Read, limits: &DecodeLimits) -> Result<Request, DecodeError> {
    let kind = read_header(input)?;
    read_body(kind, input, limits)
}

fn read_create(input: &mut impl Read, limits: &DecodeLimits) -> Result<CreateRequest, DecodeError> {
    let body: CreateReq = read_obj(input, "body")?;
    let size = u64::from_le(body.size);
    if size == 0 {
        return Err(DecodeError::ZeroSize);
    }
    let segments = read_segments(input, u32::from_le(body.nr_segs), limits)?;
    let bits = u32::from_le(body.flags);
    let flags = CreateFlags::from_bits(bits).ok_or(DecodeError::CreateFlags(bits))?;
    if !segments.adds_up_to(size) {
        return Err(DecodeError::SizeMismatch {
            expected: size,
            actual: segments.total(),
        });
    }
    Ok(CreateRequest {
        size,
        flags,
        segments,
    })
}

fn read_attach(input: &mut impl Read, limits: &DecodeLimits) -> Result<AttachRequest, DecodeError> {
    let body: AttachReq = read_obj(input, "body")?;
    if body.reserved != 0 {
        return Err(DecodeError::Reserved("ATTACH body"));
    }
    let segments = read_segments(input, u32::from_le(body.nr_segs), limits)?;
    Ok(AttachRequest {
        uuid: body.uuid,
        segments,
    })
}

/// The segment list after a CREATE or ATTACH body: its count is checked against the limit
/// before anything is read; then it is read and checked [`SEGMENT_CHUNK`] segments at a time.
fn read_segments(
    input: &mut impl Read,
    count: u32,
    limits: &DecodeLimits,
) -> Result<SegmentList, DecodeError> {
    if count == 0 {
        return Err(DecodeError::NoSegments);
    }
    if count > limits.max_segments {
        return Err(DecodeError::TooManySegments {
            count,
            max: limits.max_segments,
        });
    }
    let n = count as usize;
    let mut list = SegmentListBuilder::with_capacity(n);
    let mut raw = vec![0u8; SEGMENT_CHUNK.min(n) * 16];
    let mut left = n;
    while left > 0 {
        let k = left.min(SEGMENT_CHUNK);
        read_exact(input, &mut raw[..k * 16], "segment list")?;
        for seg in raw[..k * 16].chunks_exact(16) {
            let (addr, len) = seg.split_at(8);
            let addr = u64::from_le_bytes(addr.try_into().unwrap_or_default());
            let len = u64::from_le_bytes(len.try_into().unwrap_or_default());
            list.push(addr, len).map_err(DecodeError::Segment)?;
        }
        left -= k;
    }
    Ok(list.finish())
}

impl MapReq {
    /// Check the flags and the reserved field; the UUID is the device's to look up.
    pub fn decode(&self) -> Result<Uuid, DecodeError> {
        let flags = u32::from_le(self.flags);
        if flags != 0 {
            return Err(DecodeError::MapFlags(flags));
        }
        if self.reserved != 0 {
            return Err(DecodeError::Reserved("MAP body"));
        }
        Ok(self.uuid)
    }
}

impl SyncReq {
    /// Check flags, range shape and the END's reserved bound (not the range against the
    /// buffer's size).
    pub fn decode(&self) -> Result<SyncRequest, DecodeError> {
        let flags = u32::from_le(self.flags);
        let offset = u64::from_le(self.offset);
        let len = u64::from_le(self.len);
        let timeout_ms = u32::from_le(self.timeout_ms);
        let dir = Direction::from_flags(flags)
            .filter(|_| flags & !sync_flags::MASK == 0)
            .ok_or(DecodeError::SyncFlags(flags))?;
        if len == 0 {
            return Err(DecodeError::ZeroLength);
        }
        if offset.checked_add(len).is_none() {
            return Err(DecodeError::RangeOverflow { offset, len });
        }
        let phase = if flags & sync_flags::END == 0 {
            SyncPhase::Start { timeout_ms }
        } else if timeout_ms == 0 {
            SyncPhase::End
        } else {
            return Err(DecodeError::EndTimeout(timeout_ms));
        };
        Ok(SyncRequest {
            uuid: self.uuid,
            offset,
            len,
            dir,
            phase,
        })
    }
}

#[cfg(test)]
mod tests;
