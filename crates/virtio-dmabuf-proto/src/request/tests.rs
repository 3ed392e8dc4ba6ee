// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The decoder against spec sections 6 and 9, error paths first.

use super::*;
use crate::virtio::Segment;

const LIMITS: DecodeLimits = DecodeLimits { max_segments: 8 };

fn hdr(kind: u32) -> Vec<u8> {
    ReqHdr {
        type_: kind.to_le(),
        reserved: 0,
    }
    .as_slice()
    .to_vec()
}

fn with<T: ByteValued>(kind: u32, body: &T, segs: &[(u64, u64)]) -> Vec<u8> {
    let mut v = hdr(kind);
    v.extend_from_slice(body.as_slice());
    for &(a, l) in segs {
        v.extend_from_slice(Segment::new(a, l).as_slice());
    }
    v
}

fn create(size: u64, flags: u32, nr: u32, segs: &[(u64, u64)]) -> Vec<u8> {
    let body = CreateReq {
        size: size.to_le(),
        flags: flags.to_le(),
        nr_segs: nr.to_le(),
    };
    with(req::CREATE, &body, segs)
}

fn attach(uuid: Uuid, nr: u32, reserved: u32, segs: &[(u64, u64)]) -> Vec<u8> {
    let body = AttachReq {
        uuid,
        nr_segs: nr.to_le(),
        reserved,
    };
    with(req::ATTACH, &body, segs)
}

fn sync(offset: u64, len: u64, flags: u32, timeout_ms: u32) -> Vec<u8> {
    let body = SyncReq {
        uuid: [3; 16],
        offset: offset.to_le(),
        len: len.to_le(),
        flags: flags.to_le(),
        timeout_ms: timeout_ms.to_le(),
    };
    with(req::SYNC, &body, &[])
}

fn decode(bytes: &[u8]) -> Result<Request, DecodeError> {
    read_request(&mut &bytes[..], &LIMITS)
}

fn status(bytes: &[u8]) -> Status {
    match decode(bytes) {
        Ok(r) => panic!("decoded {r:?}"),
        Err(e) => e.status(),
    }
}

#[test]
fn header_type_and_reserved_field() {
    assert_eq!(status(&[]), Status::InvalidRequest, "no readable part");
    assert_eq!(status(&hdr(req::SYNC)[..7]), Status::InvalidRequest);
    assert!(matches!(
        read_header(&mut &hdr(0x42)[..]),
        Err(DecodeError::UnknownType(0x42))
    ));
    let mut h = hdr(req::RELEASE);
    h[4] = 1;
    assert!(matches!(
        read_header(&mut &h[..]),
        Err(DecodeError::Reserved("header"))
    ));
    for (v, t) in [
        (req::CREATE, RequestType::Create),
        (req::RELEASE, RequestType::Release),
        (req::LOOKUP, RequestType::Lookup),
        (req::ATTACH, RequestType::Attach),
        (req::SYNC, RequestType::Sync),
    ] {
        assert_eq!(read_header(&mut &hdr(v)[..]).unwrap(), t);
    }
    assert_eq!(RequestType::Create.response_len(), 24);
    assert_eq!(RequestType::Lookup.response_len(), 24);
    assert_eq!(RequestType::Sync.response_len(), 8);
    assert!(RequestType::Attach.needs_import() && RequestType::Lookup.needs_import());
    assert!(!RequestType::Create.needs_import() && !RequestType::Sync.needs_import());
}

#[test]
fn uuid_bodies() {
    let mut r = with(req::RELEASE, &UuidReq { uuid: [7; 16] }, &[]);
    assert_eq!(decode(&r).unwrap(), Request::Release([7; 16]));
    r.truncate(20);
    assert!(matches!(decode(&r), Err(DecodeError::Truncated("body"))));
    let l = with(req::LOOKUP, &UuidReq { uuid: [8; 16] }, &[]);
    assert_eq!(decode(&l).unwrap(), Request::Lookup([8; 16]));
    // Bytes after the body are ignored.
    let mut long = l.clone();
    long.extend_from_slice(&[0xff; 100]);
    assert_eq!(decode(&long).unwrap(), Request::Lookup([8; 16]));
}

#[test]
fn create_is_checked_in_the_order_of_the_spec() {
    let ok = create(
        0x3000,
        1,
        3,
        &[(0x1000, 0x1000), (0x2000, 0x1000), (0x8000, 0x1000)],
    );
    match decode(&ok).unwrap() {
        Request::Create(c) => {
            assert_eq!(c.size, 0x3000);
            assert_eq!(
                c.flags,
                CreateFlags {
                    read_only: true,
                    host_only: false
                }
            );
            assert_eq!(c.segments.count(), 3);
            assert_eq!(c.segments.runs().len(), 2, "coalesced");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        status(&create(0x1000, 0, 1, &[])[..20]),
        Status::InvalidRequest
    );
    assert_eq!(
        status(&create(0, 0, 1, &[(0x1000, 0)])),
        Status::InvalidSize
    );
    assert_eq!(status(&create(0x1000, 0, 0, &[])), Status::InvalidSize);
    // The count is refused before a byte of the list is read.
    assert_eq!(status(&create(0x1000, 0, 9, &[])), Status::TooManySegments);
    assert_eq!(
        status(&create(0x2000, 0, 2, &[(0x1000, 0x1000)])),
        Status::InvalidRequest
    );
    // Segment errors come before the flags, the flags before the sum.
    assert_eq!(
        status(&create(0x1000, 4, 1, &[(0x1000, 0)])),
        Status::InvalidSize
    );
    assert_eq!(
        status(&create(0x1000, 4, 1, &[(u64::MAX, 0x1000)])),
        Status::InvalidAddress
    );
    assert!(matches!(
        decode(&create(0x9999, 4, 1, &[(0x1000, 0x1000)])),
        Err(DecodeError::CreateFlags(4))
    ));
    assert!(matches!(
        decode(&create(0x2000, 0, 1, &[(0x1000, 0x1000)])),
        Err(DecodeError::SizeMismatch {
            expected: 0x2000,
            actual: Some(0x1000)
        })
    ));
    // Lengths that overflow when added never match a size.
    let big = create(u64::MAX, 0, 2, &[(0, u64::MAX), (0, 2)]);
    assert_eq!(status(&big), Status::InvalidSize);
}

#[test]
fn long_lists_are_checked_chunk_by_chunk() {
    let limits = DecodeLimits {
        max_segments: 10_000,
    };
    let mut segs: Vec<(u64, u64)> = (0..5000).map(|i| (i * 0x2000, 0x1000)).collect();
    segs[10].1 = 0;
    // A zero length in the first 4096 segments is reported although the list is cut short
    // in the second chunk, as the device reads it.
    let mut r = create(5000 * 0x1000, 0, 5000, &segs);
    r.truncate(r.len() - 16);
    assert!(matches!(
        read_request(&mut &r[..], &limits),
        Err(DecodeError::Segment(SegmentError::ZeroLength { index: 10 }))
    ));
    segs[10].1 = 0x1000;
    let r = create(5000 * 0x1000, 0, 5000, &segs);
    match read_request(&mut &r[..], &limits).unwrap() {
        Request::Create(c) => assert_eq!(c.segments.runs().len(), 5000),
        other => panic!("{other:?}"),
    }
}

#[test]
fn attach_reserved_count_and_segments() {
    let ok = attach([5; 16], 1, 0, &[(0x1000, 0x1000)]);
    match decode(&ok).unwrap() {
        Request::Attach(a) => {
            assert_eq!(a.uuid, [5; 16]);
            assert_eq!(a.segments.total(), Some(0x1000));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(status(&ok[..20]), Status::InvalidRequest);
    assert_eq!(
        status(&attach([5; 16], 1, 1, &[(0x1000, 0x1000)])),
        Status::InvalidRequest
    );
    assert_eq!(status(&attach([5; 16], 0, 0, &[])), Status::InvalidSize);
    assert_eq!(status(&attach([5; 16], 9, 0, &[])), Status::TooManySegments);
    assert_eq!(
        status(&attach([5; 16], 2, 0, &[(0x1000, 1)])),
        Status::InvalidRequest
    );
    assert_eq!(
        status(&attach([5; 16], 1, 0, &[(0x1000, 0)])),
        Status::InvalidSize
    );
}

#[test]
fn sync_flags_range_and_end_bound() {
    use sync_flags::{END, READ, WRITE};
    match decode(&sync(4, 10, READ | WRITE, 7)).unwrap() {
        Request::Sync(s) => {
            assert_eq!((s.uuid, s.offset, s.len), ([3; 16], 4, 10));
            assert_eq!(s.dir, Direction::ReadWrite);
            assert_eq!(s.phase, SyncPhase::Start { timeout_ms: 7 });
        }
        other => panic!("{other:?}"),
    }
    match decode(&sync(0, 1, WRITE | END, 0)).unwrap() {
        Request::Sync(s) => assert_eq!((s.dir, s.phase), (Direction::Write, SyncPhase::End)),
        other => panic!("{other:?}"),
    }
    assert_eq!(status(&sync(0, 10, 0, 0)), Status::InvalidRequest);
    assert_eq!(status(&sync(0, 10, END, 0)), Status::InvalidRequest);
    assert_eq!(
        status(&sync(0, 10, READ | 1 << 7, 0)),
        Status::InvalidRequest
    );
    assert_eq!(status(&sync(0, 0, WRITE, 0)), Status::InvalidSize);
    assert_eq!(status(&sync(u64::MAX, 2, WRITE, 0)), Status::InvalidSize);
    // The flags are checked before the range, the range before the END's bound.
    assert_eq!(
        status(&sync(u64::MAX, 0, 1 << 9, 5)),
        Status::InvalidRequest
    );
    assert_eq!(status(&sync(0, 0, READ | END, 5)), Status::InvalidSize);
    assert!(matches!(
        decode(&sync(0, 1, READ | END, 5)),
        Err(DecodeError::EndTimeout(5))
    ));
    assert_eq!(status(&sync(0, 1, READ, 0)[..47]), Status::InvalidRequest);
}

#[test]
fn directions_round_trip() {
    for d in [Direction::Read, Direction::Write, Direction::ReadWrite] {
        assert_eq!(Direction::from_flags(d.flags()), Some(d));
        assert_eq!(Direction::from_flags(d.flags() | sync_flags::END), Some(d));
    }
    assert_eq!(Direction::from_flags(sync_flags::END), None);
    assert!(!Direction::Read.writes() && Direction::Write.writes());
    assert!(Direction::ReadWrite.writes());
    assert_eq!(CreateFlags::from_bits(3).unwrap().bits(), 3);
    assert_eq!(CreateFlags::from_bits(1 << 8), None);
}

#[test]
fn read_errors_other_than_the_end_keep_their_cause() {
    struct Broken;
    impl Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::PermissionDenied))
        }
    }
    let e = read_header(&mut Broken).unwrap_err();
    assert_eq!(e.status(), Status::InvalidRequest);
    assert_eq!(e.to_string(), "cannot read the request's header");
    assert!(std::error::Error::source(&e).is_some());
}

#[test]
fn map_flags_reserved_and_truncation() {
    let map = |flags: u32, reserved: u32| {
        let body = MapReq {
            uuid: [9; 16],
            flags: flags.to_le(),
            reserved: reserved.to_le(),
        };
        with(req::MAP, &body, &[])
    };
    assert_eq!(
        read_header(&mut &hdr(req::MAP)[..]).unwrap(),
        RequestType::Map
    );
    assert_eq!(decode(&map(0, 0)).unwrap(), Request::Map([9; 16]));
    assert!(matches!(decode(&map(1, 0)), Err(DecodeError::MapFlags(1))));
    assert_eq!(status(&map(1 << 31, 0)), Status::InvalidRequest);
    assert!(matches!(
        decode(&map(0, 5)),
        Err(DecodeError::Reserved("MAP body"))
    ));
    let mut short = map(0, 0);
    short.truncate(8 + 23);
    assert!(matches!(
        decode(&short),
        Err(DecodeError::Truncated("body"))
    ));
    assert_eq!(RequestType::Map.response_len(), 32);
    assert!(RequestType::Map.needs_import() && RequestType::Map.needs_map());
    assert!(!RequestType::Attach.needs_map() && !RequestType::Sync.needs_map());
}
