// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Control requests (`docs/control-protocol.md` sections 3 and 4) decoded from a frame into
//! typed requests, validated as far as their bytes allow: payload sizes, flags, reserved fields,
//! names, whether the op takes the fd that came (or lacks the one it needs), lengths.

use thiserror::Error;
use vm_memory::ByteValued;

use super::{
    buf_flags, decode_name, op, CtlRange, CtlReqHdr, CtlUuid, ShareReq, WaitWriteReq, MAGIC,
    MAX_ALLOWED_VMS, MAX_PAYLOAD, NAME_LEN,
};
use crate::request::Direction;
use crate::virtio::{sync_flags, Status, Uuid};

/// Bytes a request payload may have: a WRITE's range plus [`MAX_PAYLOAD`] data bytes, with room.
pub const MAX_REQUEST_PAYLOAD: u32 = MAX_PAYLOAD + 64;

/// A byte range of a buffer, as the range ops name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtlSpan {
    /// The buffer.
    pub uuid: Uuid,
    /// First byte.
    pub offset: u64,
    /// Bytes.
    pub len: u64,
}

/// SHARE's arguments (the fd comes with the frame).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareArgs {
    /// The buffer is the fd's first `size` bytes.
    pub size: u64,
    /// `BUF_READ_ONLY`.
    pub read_only: bool,
    /// `BUF_HOST_ONLY`.
    pub host_only: bool,
    /// The VMs that may import it (empty: every VM).
    pub allowed_vms: Vec<String>,
}

/// A decoded control request; WRITE's data borrows the frame's payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CtlRequest<'a> {
    /// SHARE (with an fd).
    Share(ShareArgs),
    /// LIST.
    List,
    /// INFO.
    Info(Uuid),
    /// BEGIN: a host access reads, or writes (`SYNC_WRITE`, with or without `SYNC_READ`).
    Begin {
        /// The range.
        span: CtlSpan,
        /// Read or write.
        dir: Direction,
        /// Wait bound (0: the daemon default).
        timeout_ms: u32,
    },
    /// END of an access begun with the same range and direction.
    End {
        /// The range.
        span: CtlSpan,
        /// Read or write.
        dir: Direction,
    },
    /// READ (`len` at most [`MAX_PAYLOAD`]).
    Read(CtlSpan),
    /// READ_INTO the frame's fd at byte `fd_offset`.
    ReadInto {
        /// The range.
        span: CtlSpan,
        /// Byte offset in the fd (a multiple of 4096).
        fd_offset: u64,
    },
    /// SET_TARGET: the frame's fd becomes the connection's READ_TARGET target.
    SetTarget,
    /// READ_TARGET into the connection's target at byte `fd_offset`.
    ReadTarget {
        /// The range.
        span: CtlSpan,
        /// Byte offset in the target (a multiple of 4096).
        fd_offset: u64,
    },
    /// WRITE `data` at `offset`.
    Write {
        /// The buffer.
        uuid: Uuid,
        /// First byte.
        offset: u64,
        /// The bytes (not empty).
        data: &'a [u8],
    },
    /// EXPORT.
    Export(Uuid),
    /// WAIT_WRITE.
    WaitWrite {
        /// The buffer.
        uuid: Uuid,
        /// Return once the write generation exceeds this.
        after: u64,
        /// Bound (0: the daemon default).
        timeout_ms: u32,
    },
    /// REVOKE.
    Revoke(Uuid),
}

/// Why a frame or a request was refused before the daemon looked at any state.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum CtlError {
    /// A header with the wrong magic, a reserved field set, or a payload over the limit: the
    /// stream can no longer be trusted to be in step (the daemon answers, then hangs up).
    #[error("bad frame header (magic {magic:#x}, reserved {reserved:#x}, len {len})")]
    Header {
        /// `magic`.
        magic: u32,
        /// `reserved`.
        reserved: u32,
        /// `len`.
        len: u32,
    },
    /// An op this protocol does not define.
    #[error("unknown op {0}")]
    UnknownOp(u32),
    /// A payload of the wrong size for its op.
    #[error("payload of {got} bytes for op {op}")]
    PayloadSize {
        /// The op.
        op: u32,
        /// Bytes received.
        got: usize,
    },
    /// The op needs an fd and none came.
    #[error("op {0} needs an fd")]
    FdMissing(u32),
    /// An fd came with an op that takes none.
    #[error("op {0} takes no fd")]
    FdUnexpected(u32),
    /// BEGIN/END flags with no direction or another bit.
    #[error("access flags {0:#x}")]
    AccessFlags(u32),
    /// A field that must be zero for this op is not.
    #[error("{0} must be zero for op {1}")]
    NotZero(&'static str, u32),
    /// SHARE flags other than READ_ONLY and HOST_ONLY.
    #[error("share flags {0:#x}")]
    ShareFlags(u32),
    /// More VM names than a SHARE may list.
    #[error("{0} VM names, at most 64")]
    TooManyNames(u32),
    /// A VM name that is not one.
    #[error("invalid VM name")]
    BadName,
    /// READ of zero bytes or more than [`MAX_PAYLOAD`].
    #[error("READ of {0} bytes")]
    ReadLength(u64),
    /// WRITE whose data is not exactly `len` bytes (or is empty).
    #[error("WRITE of {len} bytes with {data} data bytes")]
    WriteLength {
        /// The range's `len`.
        len: u64,
        /// Data bytes that followed.
        data: usize,
    },
    /// READ_TARGET on a connection that set no target (SET_TARGET).
    #[error("READ_TARGET without a target set")]
    NoTarget,
}

impl CtlError {
    /// The status the daemon answers (`docs/control-protocol.md` section 5).
    pub fn status(&self) -> Status {
        match self {
            CtlError::ReadLength(_) | CtlError::WriteLength { .. } => Status::InvalidSize,
            _ => Status::InvalidRequest,
        }
    }
}

impl CtlReqHdr {
    /// The op and the payload length of a valid header.
    pub fn decode(&self) -> Result<(u32, u32), CtlError> {
        let (magic, len) = (u32::from_le(self.magic), u32::from_le(self.len));
        if magic != MAGIC || self.reserved != 0 || len > MAX_REQUEST_PAYLOAD {
            return Err(CtlError::Header {
                magic,
                reserved: u32::from_le(self.reserved),
                len,
            });
        }
        Ok((u32::from_le(self.op), len))
    }
}

/// A wire struct from the start of `bytes`, which must hold at least its size.
fn prefix<T: ByteValued + Default>(op: u32, bytes: &[u8]) -> Result<T, CtlError> {
    let mut v = T::default();
    let n = size_of::<T>();
    let head = bytes.get(..n).ok_or(CtlError::PayloadSize {
        op,
        got: bytes.len(),
    })?;
    v.as_mut_slice().copy_from_slice(head);
    Ok(v)
}

/// A wire struct that is the whole of `bytes`.
fn exact<T: ByteValued + Default>(op: u32, bytes: &[u8]) -> Result<T, CtlError> {
    if bytes.len() != size_of::<T>() {
        return Err(CtlError::PayloadSize {
            op,
            got: bytes.len(),
        });
    }
    prefix(op, bytes)
}

fn span(r: &CtlRange) -> CtlSpan {
    CtlSpan {
        uuid: r.uuid,
        offset: u64::from_le(r.offset),
        len: u64::from_le(r.len),
    }
}

/// BEGIN/END flags: `SYNC_WRITE` (with or without `SYNC_READ`) is a write, `SYNC_READ` a read.
fn access_dir(flags: u32) -> Result<Direction, CtlError> {
    if flags & !(sync_flags::READ | sync_flags::WRITE) != 0 || flags == 0 {
        return Err(CtlError::AccessFlags(flags));
    }
    Ok(if flags & sync_flags::WRITE != 0 {
        Direction::Write
    } else {
        Direction::Read
    })
}

/// Decode the request of a frame whose header carried `op`; `has_fd` tells whether an fd came.
pub fn decode_request(op: u32, p: &[u8], has_fd: bool) -> Result<CtlRequest<'_>, CtlError> {
    let takes_fd = matches!(op, op::SHARE | op::READ_INTO | op::SET_TARGET);
    let known = (op::SHARE..=op::READ_TARGET).contains(&op);
    if !known {
        return Err(CtlError::UnknownOp(op));
    }
    if takes_fd && !has_fd {
        return Err(CtlError::FdMissing(op));
    }
    if !takes_fd && has_fd {
        return Err(CtlError::FdUnexpected(op));
    }
    match op {
        op::SHARE => decode_share(p).map(CtlRequest::Share),
        op::LIST if p.is_empty() => Ok(CtlRequest::List),
        op::LIST => Err(CtlError::PayloadSize { op, got: p.len() }),
        op::INFO => exact::<CtlUuid>(op, p).map(|u| CtlRequest::Info(u.uuid)),
        op::BEGIN | op::END => {
            let r: CtlRange = exact(op, p)?;
            let dir = access_dir(u32::from_le(r.flags))?;
            let timeout_ms = u32::from_le(r.arg);
            if op == op::BEGIN {
                return Ok(CtlRequest::Begin {
                    span: span(&r),
                    dir,
                    timeout_ms,
                });
            }
            if timeout_ms != 0 {
                return Err(CtlError::NotZero("arg", op));
            }
            Ok(CtlRequest::End {
                span: span(&r),
                dir,
            })
        }
        op::READ => {
            let r: CtlRange = exact(op, p)?;
            if r.flags != 0 || r.arg != 0 {
                return Err(CtlError::NotZero("flags and arg", op));
            }
            let s = span(&r);
            if s.len == 0 || s.len > u64::from(MAX_PAYLOAD) {
                return Err(CtlError::ReadLength(s.len));
            }
            Ok(CtlRequest::Read(s))
        }
        op::READ_INTO | op::READ_TARGET => {
            let r: CtlRange = exact(op, p)?;
            if r.flags != 0 {
                return Err(CtlError::NotZero("flags", op));
            }
            let fd_offset = u64::from(u32::from_le(r.arg)) * 4096;
            let span = span(&r);
            Ok(if op == op::READ_INTO {
                CtlRequest::ReadInto { span, fd_offset }
            } else {
                CtlRequest::ReadTarget { span, fd_offset }
            })
        }
        op::SET_TARGET if p.is_empty() => Ok(CtlRequest::SetTarget),
        op::SET_TARGET => Err(CtlError::PayloadSize { op, got: p.len() }),
        op::WRITE => {
            let r: CtlRange = prefix(op, p)?;
            if r.flags != 0 || r.arg != 0 {
                return Err(CtlError::NotZero("flags and arg", op));
            }
            let s = span(&r);
            let data = &p[size_of::<CtlRange>()..];
            if s.len == 0 || data.len() as u64 != s.len {
                return Err(CtlError::WriteLength {
                    len: s.len,
                    data: data.len(),
                });
            }
            Ok(CtlRequest::Write {
                uuid: s.uuid,
                offset: s.offset,
                data,
            })
        }
        op::EXPORT => exact::<CtlUuid>(op, p).map(|u| CtlRequest::Export(u.uuid)),
        op::WAIT_WRITE => {
            let w: WaitWriteReq = exact(op, p)?;
            Ok(CtlRequest::WaitWrite {
                uuid: w.uuid,
                after: u64::from_le(w.after_generation),
                timeout_ms: u32::from_le(w.timeout_ms),
            })
        }
        _ => exact::<CtlUuid>(op, p).map(|u| CtlRequest::Revoke(u.uuid)),
    }
}

fn decode_share(p: &[u8]) -> Result<ShareArgs, CtlError> {
    let r: ShareReq = prefix(op::SHARE, p)?;
    let n = u32::from_le(r.nr_allowed);
    if n > MAX_ALLOWED_VMS {
        return Err(CtlError::TooManyNames(n));
    }
    if p.len() != size_of::<ShareReq>() + n as usize * NAME_LEN {
        return Err(CtlError::PayloadSize {
            op: op::SHARE,
            got: p.len(),
        });
    }
    let mut allowed_vms = Vec::with_capacity(n as usize);
    for raw in p[size_of::<ShareReq>()..].chunks_exact(NAME_LEN) {
        let mut name = [0u8; NAME_LEN];
        name.copy_from_slice(raw);
        allowed_vms.push(decode_name(&name).ok_or(CtlError::BadName)?);
    }
    let flags = u32::from_le(r.flags);
    if flags & !(buf_flags::READ_ONLY | buf_flags::HOST_ONLY) != 0 {
        return Err(CtlError::ShareFlags(flags));
    }
    Ok(ShareArgs {
        size: u64::from_le(r.size),
        read_only: flags & buf_flags::READ_ONLY != 0,
        host_only: flags & buf_flags::HOST_ONLY != 0,
        allowed_vms,
    })
}

#[cfg(test)]
mod tests;
