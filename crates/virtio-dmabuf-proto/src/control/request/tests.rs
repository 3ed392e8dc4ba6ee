// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The control decoder against `docs/control-protocol.md` sections 3 and 4.

use super::*;
use crate::control::{encode_name, CtlReqHdr};

fn range(uuid: Uuid, offset: u64, len: u64, flags: u32, arg: u32) -> Vec<u8> {
    CtlRange {
        uuid,
        offset: offset.to_le(),
        len: len.to_le(),
        flags: flags.to_le(),
        arg: arg.to_le(),
    }
    .as_slice()
    .to_vec()
}

fn status(op: u32, p: &[u8], fd: bool) -> Status {
    match decode_request(op, p, fd) {
        Ok(r) => panic!("decoded {r:?}"),
        Err(e) => e.status(),
    }
}

#[test]
fn headers() {
    let h = |magic: u32, len: u32, reserved: u32| CtlReqHdr {
        magic: magic.to_le(),
        op: 4u32.to_le(),
        len: len.to_le(),
        reserved,
    };
    assert_eq!(h(MAGIC, 40, 0).decode(), Ok((4, 40)));
    assert_eq!(
        h(MAGIC, MAX_REQUEST_PAYLOAD, 0).decode(),
        Ok((4, MAX_REQUEST_PAYLOAD))
    );
    assert!(h(MAGIC + 1, 40, 0).decode().is_err());
    assert!(h(MAGIC, 40, 1).decode().is_err());
    let e = h(MAGIC, MAX_REQUEST_PAYLOAD + 1, 0).decode().unwrap_err();
    assert_eq!(e.status(), Status::InvalidRequest);
}

#[test]
fn fds_and_unknown_ops() {
    assert_eq!(status(0, &[], false), Status::InvalidRequest);
    assert_eq!(status(14, &[], true), Status::InvalidRequest);
    // SET_TARGET takes an fd and nothing else; READ_TARGET a range and no fd.
    assert_eq!(
        decode_request(op::SET_TARGET, &[], true),
        Ok(CtlRequest::SetTarget)
    );
    assert_eq!(
        decode_request(op::SET_TARGET, &[], false),
        Err(CtlError::FdMissing(12))
    );
    assert_eq!(
        status(op::SET_TARGET, &[0; 4], true),
        Status::InvalidRequest
    );
    let r = range([2; 16], 8, 100, 0, 3);
    let Ok(CtlRequest::ReadTarget { span, fd_offset }) = decode_request(op::READ_TARGET, &r, false)
    else {
        panic!("READ_TARGET not decoded");
    };
    assert_eq!((span.offset, span.len, fd_offset), (8, 100, 3 * 4096));
    assert_eq!(status(op::READ_TARGET, &r, true), Status::InvalidRequest);
    assert_eq!(
        status(op::READ_TARGET, &range([2; 16], 8, 100, 1, 0), false),
        Status::InvalidRequest
    );
    assert_eq!(
        decode_request(op::SHARE, &[0; 16], false),
        Err(CtlError::FdMissing(1))
    );
    assert_eq!(
        decode_request(op::READ_INTO, &range([1; 16], 0, 1, 0, 0), false),
        Err(CtlError::FdMissing(7))
    );
    for o in [
        op::LIST,
        op::INFO,
        op::BEGIN,
        op::END,
        op::READ,
        op::WRITE,
        op::EXPORT,
        op::WAIT_WRITE,
        op::REVOKE,
    ] {
        assert_eq!(
            decode_request(o, &[], true),
            Err(CtlError::FdUnexpected(o)),
            "op {o}"
        );
    }
}

#[test]
fn share_names_and_flags() {
    let mut p = ShareReq {
        size: 4096u64.to_le(),
        flags: 3u32.to_le(),
        nr_allowed: 2u32.to_le(),
    }
    .as_slice()
    .to_vec();
    p.extend_from_slice(&encode_name("vm1").unwrap());
    p.extend_from_slice(&encode_name("vm2").unwrap());
    assert_eq!(
        decode_request(op::SHARE, &p, true),
        Ok(CtlRequest::Share(ShareArgs {
            size: 4096,
            read_only: true,
            host_only: true,
            allowed_vms: vec!["vm1".into(), "vm2".into()],
        }))
    );
    assert_eq!(
        status(op::SHARE, &p[..p.len() - 1], true),
        Status::InvalidRequest
    );
    assert_eq!(status(op::SHARE, &p[..15], true), Status::InvalidRequest);
    let mut bad = p.clone();
    bad[16] = b' ';
    assert_eq!(
        decode_request(op::SHARE, &bad, true),
        Err(CtlError::BadName)
    );
    let mut flags = p.clone();
    flags[8] = 4;
    assert_eq!(
        decode_request(op::SHARE, &flags, true),
        Err(CtlError::ShareFlags(4))
    );
    let mut many = p.clone();
    many[12..16].copy_from_slice(&65u32.to_le_bytes());
    assert_eq!(
        decode_request(op::SHARE, &many, true),
        Err(CtlError::TooManyNames(65))
    );
}

#[test]
fn list_info_export_revoke_wait() {
    assert_eq!(decode_request(op::LIST, &[], false), Ok(CtlRequest::List));
    assert_eq!(status(op::LIST, b"x", false), Status::InvalidRequest);
    let u = [9u8; 16];
    assert_eq!(decode_request(op::INFO, &u, false), Ok(CtlRequest::Info(u)));
    assert_eq!(
        decode_request(op::EXPORT, &u, false),
        Ok(CtlRequest::Export(u))
    );
    assert_eq!(
        decode_request(op::REVOKE, &u, false),
        Ok(CtlRequest::Revoke(u))
    );
    for o in [op::INFO, op::EXPORT, op::REVOKE] {
        assert_eq!(status(o, &u[..15], false), Status::InvalidRequest);
        assert_eq!(status(o, &[0; 17], false), Status::InvalidRequest);
    }
    let w = WaitWriteReq {
        uuid: u,
        after_generation: 7u64.to_le(),
        timeout_ms: 50u32.to_le(),
        reserved: 0,
    };
    assert_eq!(
        decode_request(op::WAIT_WRITE, w.as_slice(), false),
        Ok(CtlRequest::WaitWrite {
            uuid: u,
            after: 7,
            timeout_ms: 50
        })
    );
    assert_eq!(
        status(op::WAIT_WRITE, &w.as_slice()[..31], false),
        Status::InvalidRequest
    );
}

#[test]
fn begin_end_directions_and_bounds() {
    let u = [1u8; 16];
    let s = CtlSpan {
        uuid: u,
        offset: 4,
        len: 8,
    };
    assert_eq!(
        decode_request(op::BEGIN, &range(u, 4, 8, 3, 20), false),
        Ok(CtlRequest::Begin {
            span: s,
            dir: Direction::Write,
            timeout_ms: 20
        })
    );
    assert_eq!(
        decode_request(op::END, &range(u, 4, 8, 1, 0), false),
        Ok(CtlRequest::End {
            span: s,
            dir: Direction::Read
        })
    );
    assert_eq!(
        status(op::BEGIN, &range(u, 4, 8, 0, 0), false),
        Status::InvalidRequest
    );
    assert_eq!(
        status(op::BEGIN, &range(u, 4, 8, 4, 0), false),
        Status::InvalidRequest
    );
    assert_eq!(
        status(op::END, &range(u, 4, 8, 2, 1), false),
        Status::InvalidRequest
    );
    let mut long = range(u, 4, 8, 1, 0);
    long.push(0);
    assert_eq!(status(op::BEGIN, &long, false), Status::InvalidRequest);
    // Zero lengths are the daemon's to refuse (INVALID_SIZE against the buffer).
    assert!(decode_request(op::BEGIN, &range(u, 0, 0, 1, 0), false).is_ok());
}

#[test]
fn read_read_into_write() {
    let u = [2u8; 16];
    assert_eq!(
        decode_request(op::READ, &range(u, 1, 2, 0, 0), false),
        Ok(CtlRequest::Read(CtlSpan {
            uuid: u,
            offset: 1,
            len: 2
        }))
    );
    assert_eq!(
        status(op::READ, &range(u, 1, 2, 1, 0), false),
        Status::InvalidRequest
    );
    assert_eq!(
        status(op::READ, &range(u, 1, 0, 0, 0), false),
        Status::InvalidSize
    );
    let too_long = u64::from(MAX_PAYLOAD) + 1;
    assert_eq!(
        status(op::READ, &range(u, 1, too_long, 0, 0), false),
        Status::InvalidSize
    );
    assert_eq!(
        decode_request(op::READ_INTO, &range(u, 0, 10, 0, 3), true),
        Ok(CtlRequest::ReadInto {
            span: CtlSpan {
                uuid: u,
                offset: 0,
                len: 10
            },
            fd_offset: 3 * 4096
        })
    );
    assert_eq!(
        status(op::READ_INTO, &range(u, 0, 10, 1, 0), true),
        Status::InvalidRequest
    );
    let mut w = range(u, 5, 3, 0, 0);
    w.extend_from_slice(b"abc");
    assert_eq!(
        decode_request(op::WRITE, &w, false),
        Ok(CtlRequest::Write {
            uuid: u,
            offset: 5,
            data: b"abc"
        })
    );
    assert_eq!(
        status(op::WRITE, &w[..w.len() - 1], false),
        Status::InvalidSize
    );
    assert_eq!(
        status(op::WRITE, &range(u, 5, 0, 0, 0), false),
        Status::InvalidSize
    );
    assert_eq!(status(op::WRITE, &w[..39], false), Status::InvalidRequest);
    let mut flagged = range(u, 5, 3, 0, 1);
    flagged.extend_from_slice(b"abc");
    assert_eq!(status(op::WRITE, &flagged, false), Status::InvalidRequest);
}
