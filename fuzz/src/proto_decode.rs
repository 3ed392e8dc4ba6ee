// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Fuzz driver: the protocol crate's decoders on their own, without guest memory or sockets —
//! `request::read_request` (virtqueue requests) and `control::decode_request` (control frames).
//!
//! Beyond "no panic":
//! * a request read whole and read in pieces of any size (as virtio-queue's `Reader` hands out
//!   descriptor-sized pieces) decodes to the same request or the same error;
//! * what decodes is what the spec allows and says the same thing as its bytes: a CREATE's runs
//!   are maximal, non-empty, in order, and add up to its size; an ATTACH has 1 to `max_segments`
//!   segments; a SYNC encodes back to the bytes it came from; an error's status is the one the
//!   spec gives that kind of error;
//! * a control request encodes back to its payload (fixed-size ops), a WRITE's data is the tail
//!   of its payload, a READ_INTO's fd offset is in whole pages, and the fd rules hold.
//!
//! Input format:
//! ```text
//! byte 0: bit 0 clear: a virtqueue request; set: a control frame
//! virtqueue: byte 1 piece size (0: whole), byte 2 max_segments, then the request bytes
//! control:   byte 1 op, byte 2 bit 0 an fd came, then the payload
//! ```

use std::io::{self, Read};

use virtio_dmabuf_proto::control::{decode_request, op, CtlError, CtlRequest};
use virtio_dmabuf_proto::request::{read_request, DecodeError, DecodeLimits, Request, SyncPhase};
use virtio_dmabuf_proto::segments::SegmentError;
use virtio_dmabuf_proto::virtio::{sync_flags, SyncReq};
use virtio_dmabuf_proto::Status;
use vm_memory::ByteValued;

/// Hands out `piece` bytes per read at most.
struct Pieces<'a> {
    data: &'a [u8],
    piece: usize,
}

impl Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.piece).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Run one input.
pub fn run(data: &[u8]) {
    match data {
        [mode, a, b, rest @ ..] if mode & 1 == 0 => virtio(*a, *b, rest),
        [_, op, fd, rest @ ..] => control(u32::from(*op), fd & 1 != 0, rest),
        _ => {}
    }
}

fn virtio(piece: u8, max: u8, bytes: &[u8]) {
    let limits = DecodeLimits {
        max_segments: u32::from(max),
    };
    let whole = read_request(&mut &bytes[..], &limits);
    let piece = if piece == 0 {
        usize::MAX
    } else {
        usize::from(piece)
    };
    let pieces = read_request(&mut Pieces { data: bytes, piece }, &limits);
    match (&whole, &pieces) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "whole and in pieces"),
        (Err(a), Err(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}"), "whole and in pieces"),
        _ => panic!("whole: {whole:?}, in pieces: {pieces:?}"),
    }
    match whole {
        Ok(request) => check_request(&request, bytes, &limits),
        Err(e) => check_error(&e),
    }
}

fn check_request(request: &Request, bytes: &[u8], limits: &DecodeLimits) {
    match request {
        Request::Create(c) => {
            assert!(c.size > 0);
            assert!(c.segments.adds_up_to(c.size));
            let n = c.segments.count();
            assert!(n >= 1 && n <= limits.max_segments as usize);
            check_runs(c.segments.runs(), c.size);
        }
        Request::Attach(a) => {
            let n = a.segments.count();
            assert!(n >= 1 && n <= limits.max_segments as usize);
            if let Some(total) = a.segments.total() {
                check_runs(a.segments.runs(), total);
            }
        }
        Request::Sync(s) => {
            assert!(s.len > 0 && s.offset.checked_add(s.len).is_some());
            let (end, timeout_ms) = match s.phase {
                SyncPhase::Start { timeout_ms } => (0, timeout_ms),
                SyncPhase::End => (sync_flags::END, 0),
            };
            let again = SyncReq {
                uuid: s.uuid,
                offset: s.offset.to_le(),
                len: s.len.to_le(),
                flags: (s.dir.flags() | end).to_le(),
                timeout_ms: timeout_ms.to_le(),
            };
            assert_eq!(again.as_slice(), &bytes[8..48], "SYNC re-encoded");
        }
        Request::Release(u) | Request::Lookup(u) => assert_eq!(&u[..], &bytes[8..24]),
        Request::Map(u) => {
            // Only a MAP with no flag and a zero reserved field decodes.
            assert_eq!(&u[..], &bytes[8..24]);
            assert!(
                bytes[24..32].iter().all(|&b| b == 0),
                "MAP flags and reserved"
            );
        }
    }
}

/// Runs in buffer order, non-empty, maximal, adding up to `size`.
fn check_runs(runs: &[virtio_dmabuf_proto::segments::Run], size: u64) {
    let mut offset = 0u64;
    for (i, r) in runs.iter().enumerate() {
        assert!(r.len > 0);
        assert_eq!(r.offset, offset, "run {i} offset");
        assert!(r.gpa.checked_add(r.len).is_some());
        if let Some(prev) = i.checked_sub(1).map(|p| runs[p]) {
            assert_ne!(
                prev.gpa + prev.len,
                r.gpa,
                "runs {} and {i} not coalesced",
                i - 1
            );
        }
        offset += r.len;
    }
    assert_eq!(offset, size);
}

fn check_error(e: &DecodeError) {
    let want = match e {
        DecodeError::Segment(SegmentError::Overflow { .. }) => Status::InvalidAddress,
        DecodeError::Segment(SegmentError::ZeroLength { .. })
        | DecodeError::ZeroSize
        | DecodeError::NoSegments
        | DecodeError::SizeMismatch { .. }
        | DecodeError::ZeroLength
        | DecodeError::RangeOverflow { .. } => Status::InvalidSize,
        DecodeError::TooManySegments { .. } => Status::TooManySegments,
        _ => Status::InvalidRequest,
    };
    assert_eq!(e.status(), want, "{e:?}");
}

fn control(op: u32, has_fd: bool, payload: &[u8]) {
    let decoded = decode_request(op, payload, has_fd);
    let takes_fd = matches!(op, op::SHARE | op::READ_INTO | op::SET_TARGET);
    match &decoded {
        Err(CtlError::UnknownOp(o)) => assert!(*o == op && !(op::SHARE..=op::REVOKE).contains(&op)),
        Err(CtlError::FdMissing(_)) => assert!(takes_fd && !has_fd),
        Err(CtlError::FdUnexpected(_)) => assert!(!takes_fd && has_fd),
        Err(e @ (CtlError::ReadLength(_) | CtlError::WriteLength { .. })) => {
            assert_eq!(e.status(), Status::InvalidSize)
        }
        Err(e) => assert_eq!(e.status(), Status::InvalidRequest, "{e:?}"),
        Ok(_) => assert_eq!(takes_fd, has_fd),
    }
    let Ok(request) = decoded else {
        return;
    };
    match request {
        CtlRequest::List => assert!(payload.is_empty()),
        CtlRequest::Info(u) | CtlRequest::Export(u) | CtlRequest::Revoke(u) => {
            assert_eq!(payload, &u[..]);
        }
        CtlRequest::Begin { span, .. } | CtlRequest::End { span, .. } | CtlRequest::Read(span) => {
            assert_eq!(payload.len(), 40);
            assert_eq!(
                (&payload[..16], le64(payload, 16), le64(payload, 24)),
                (&span.uuid[..], span.offset, span.len)
            );
        }
        CtlRequest::SetTarget => assert!(payload.is_empty()),
        CtlRequest::ReadInto { span, fd_offset } | CtlRequest::ReadTarget { span, fd_offset } => {
            assert_eq!(payload.len(), 40);
            assert_eq!(span.len, le64(payload, 24));
            assert_eq!(fd_offset % 4096, 0);
        }
        CtlRequest::Write { uuid, offset, data } => {
            assert_eq!(&payload[..16], &uuid[..]);
            assert_eq!(offset, le64(payload, 16));
            assert!(!data.is_empty());
            assert_eq!(data, &payload[40..]);
            assert_eq!(data.len() as u64, le64(payload, 24));
        }
        CtlRequest::WaitWrite { after, .. } => {
            assert_eq!(payload.len(), 32);
            assert_eq!(after, le64(payload, 16));
        }
        CtlRequest::Share(s) => {
            assert_eq!(payload.len(), 16 + 32 * s.allowed_vms.len());
            assert!(s.allowed_vms.len() <= 64);
            assert_eq!(s.size, le64(payload, 0));
        }
    }
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
