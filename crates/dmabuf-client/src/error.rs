// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Errors of the client library. Each message names the step that failed; an underlying error is
//! chained as the source, never printed into the message, so `dmabufctl` and a log that walks
//! `Error::source` show each cause once.

use std::io;
use std::path::PathBuf;

use thiserror::Error;
use virtio_dmabuf_proto::Status;

/// What can go wrong talking to the daemon.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The control socket could not be reached.
    #[error("cannot connect to {}", .0.display())]
    Connect(PathBuf, #[source] io::Error),
    /// The daemon answered with a status other than `OK`.
    #[error("{} ({})", .0.name(), status_hint(*.0))]
    Status(Status),
    /// Setting the socket's timeouts failed.
    #[error("cannot set the socket timeouts")]
    SetTimeout(#[source] io::Error),
    /// Sending a request failed.
    #[error("cannot send the request")]
    Send(#[source] io::Error),
    /// Receiving a response failed (a timeout set with [`crate::Client::set_io_timeout`] too).
    #[error("cannot receive the response")]
    Receive(#[source] io::Error),
    /// The daemon closed the connection before a whole response arrived.
    #[error("the daemon closed the connection in a {0}")]
    Closed(&'static str),
    /// The daemon sent something that is not a valid response frame.
    #[error("invalid response from the daemon")]
    Protocol(#[source] ProtocolError),
    /// A local memfd (to share bytes from) could not be made.
    #[error("cannot make a sealed memfd")]
    Memfd(#[source] io::Error),
    /// An argument cannot be put on the wire.
    #[error("invalid argument")]
    InvalidArgument(#[source] ArgumentError),
}

/// How a response broke the protocol (`docs/control-protocol.md` section 3).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProtocolError {
    /// A fixed-size struct of the wrong size.
    #[error("{what} of {got} bytes, expected {expected}")]
    Size {
        /// What was decoded.
        what: &'static str,
        /// Bytes received.
        got: usize,
        /// Bytes expected.
        expected: usize,
    },
    /// A LIST payload that is not a whole number of entries.
    #[error("LIST payload of {0} bytes is not a multiple of 80")]
    ListLength(usize),
    /// A status value the specification does not define.
    #[error("unknown status {0}")]
    UnknownStatus(u32),
    /// A payload larger than any response can be.
    #[error("response payload of {0} bytes")]
    Oversized(u32),
    /// The header's `has_fd` and the descriptors that came do not agree.
    #[error("has_fd = {announced}, an fd came: {received}")]
    FdMismatch {
        /// The header's field.
        announced: u32,
        /// Whether an fd came with the frame.
        received: bool,
    },
    /// A response that must be empty carried data.
    #[error("{what}: unexpected payload of {len} bytes")]
    UnexpectedPayload {
        /// The request answered.
        what: &'static str,
        /// Payload bytes.
        len: usize,
    },
    /// EXPORT answered OK without an fd.
    #[error("EXPORT answered OK without an fd")]
    MissingFd,
}

/// Why an argument cannot be sent.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ArgumentError {
    /// A VM name that the wire cannot carry.
    #[error("VM name {0:?}: 1-31 printable characters, no ',' or spaces")]
    VmName(String),
    /// More VM names than a SHARE can carry.
    #[error("{0} VM names")]
    TooManyVmNames(usize),
    /// A payload longer than a frame can carry.
    #[error("payload of {0} bytes")]
    Payload(usize),
    /// A length this machine cannot hold in memory.
    #[error("length {0}")]
    Length(u64),
    /// `offset + len` does not fit in 64 bits.
    #[error("offset {offset} + length {len} overflows")]
    Overflow {
        /// Offset.
        offset: u64,
        /// Length.
        len: u64,
    },
}

impl ClientError {
    /// The daemon's status, if that is what this error is.
    pub fn status(&self) -> Option<Status> {
        match self {
            ClientError::Status(s) => Some(*s),
            _ => None,
        }
    }

    /// The socket error, if sending or receiving failed (e.g. a timeout's `WouldBlock`).
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            ClientError::Send(e) | ClientError::Receive(e) => Some(e),
            _ => None,
        }
    }
}

/// A short human explanation of a status as the control socket uses it.
pub fn status_hint(s: Status) -> &'static str {
    match s {
        Status::Ok => "success",
        Status::InvalidRequest => {
            "malformed request, or an fd that is neither a sealed memfd nor a dma-buf"
        }
        Status::InvalidAddress => "an address outside guest memory",
        Status::InvalidSize => "zero length, or a range or size outside the buffer or the fd",
        Status::TooManySegments => "too many segments",
        Status::NotFound => "no buffer with that UUID: never shared, or released or revoked",
        Status::AlreadyExists => "already held",
        Status::PermissionDenied => "refused: read-only buffer or fd, or not allowed",
        Status::QuotaExceeded => "a daemon limit would be exceeded",
        Status::Timeout => "the wait bound passed: access not granted, or no write ended",
        Status::NotHeld => "no held access of this connection covers that range and direction",
        Status::Revoked => "the buffer was revoked or released while waiting",
        Status::Cancelled => "the request was cancelled",
        Status::ResponseTooSmall => "response too small",
        Status::IoError => "the daemon failed to move the data",
        Status::Unsupported => "not available for this buffer or on this host",
        Status::NoSpace => "no room left in the shared memory region",
    }
}

/// `error` and its chain of sources, joined by ": " (how `dmabufctl` prints an error).
pub use dmabuf_sys_util::report::chain;

/// Result of the client library.
pub type Result<T> = std::result::Result<T, ClientError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_chained_once() {
        let e = ClientError::Connect("/x.sock".into(), io::Error::from_raw_os_error(libc::ENOENT));
        let text = chain(&e);
        assert!(text.starts_with("cannot connect to /x.sock: "), "{text}");
        assert_eq!(text.matches("No such file").count(), 1, "{text}");
        let e = ClientError::Protocol(ProtocolError::UnknownStatus(99));
        assert_eq!(
            chain(&e),
            "invalid response from the daemon: unknown status 99"
        );
        assert_eq!(
            chain(&ClientError::Status(Status::NotFound)),
            "NOT_FOUND (no buffer with that UUID: never shared, or released or revoked)"
        );
    }
}
