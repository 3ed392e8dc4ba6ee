// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Errors of the client library.

use std::io;
use std::path::PathBuf;

use thiserror::Error;
use virtio_dmabuf_proto::Status;

/// What can go wrong talking to the daemon.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The control socket could not be reached.
    #[error("cannot connect to {0}: {1}")]
    Connect(PathBuf, #[source] io::Error),
    /// The daemon answered with a status other than `OK`.
    #[error("{} ({})", .0.name(), status_hint(*.0))]
    Status(Status),
    /// Reading or writing the socket (or a local file) failed.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// The daemon sent something that is not a valid response frame.
    #[error("protocol: {0}")]
    Protocol(String),
    /// An argument cannot be put on the wire (e.g. an invalid VM name).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl ClientError {
    /// The daemon's status, if that is what this error is.
    pub fn status(&self) -> Option<Status> {
        match self {
            ClientError::Status(s) => Some(*s),
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
    }
}

/// Result of the client library.
pub type Result<T> = std::result::Result<T, ClientError>;
