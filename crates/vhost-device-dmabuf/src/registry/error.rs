// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The registry's one error type. Each variant names what was refused or which step failed; an
//! underlying error is its source, never part of its message. The edges (the vhost-user layer,
//! the control socket) turn it into a wire [`Status`] with [`RegistryError::status`], once each.

use std::io;

use thiserror::Error;
use virtio_dmabuf_proto::uuid;
use virtio_dmabuf_proto::virtio::Uuid;
use virtio_dmabuf_proto::Status;

use crate::hostfile::{HostFileError, UdmabufError};
use crate::memory::MemError;
use crate::shm::channel::ChannelError;
use crate::shm::ShmError;

pub use super::mapped::Unmappable;

/// A quota a domain or the daemon would exceed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quota {
    /// `--max-buffers`.
    Buffers,
    /// `--max-bytes`.
    Bytes,
    /// `--max-total-segments`.
    Segments,
    /// `--max-host-buffers`.
    HostBuffers,
}

/// What the registry refused, or what failed in it.
#[derive(Debug, Error)]
pub enum RegistryError {
    /// No such buffer, or one this domain may not know about.
    #[error("no buffer {} for this domain", uuid::format(.0))]
    NotFound(Uuid),
    /// The buffer this domain held was destroyed or revoked.
    #[error("buffer {} was destroyed or revoked", uuid::format(.0))]
    Revoked(Uuid),
    /// The domain created the buffer, or attached it already.
    #[error("buffer {} is already held by this domain", uuid::format(.0))]
    AlreadyExists(Uuid),
    /// Write access to a buffer this domain may only read.
    #[error("buffer {} is read-only for this domain", uuid::format(.0))]
    ReadOnly(Uuid),
    /// A host-backed buffer whose file the daemon cannot write.
    #[error("the file behind buffer {} is not writable", uuid::format(.0))]
    NotWritable(Uuid),
    /// A quota would be exceeded.
    #[error("{0:?} quota exceeded")]
    Quota(Quota),
    /// A range outside the buffer.
    #[error("invalid range")]
    Range(#[source] MemError),
    /// A segment list refused (size, guest RAM).
    #[error("invalid segment list")]
    Segments(#[source] MemError),
    /// No access of this domain matches (END) or covers (READ, WRITE) the range.
    #[error("no matching access held")]
    NotHeld,
    /// A wait reached its bound.
    #[error("not granted within its bound")]
    Timeout,
    /// The domain was reset, or went away, while the request waited.
    #[error("the domain was reset or went away")]
    Cancelled,
    /// No UUID could be drawn.
    #[error("cannot draw a random UUID")]
    Random(#[source] io::Error),
    /// The thread that ends waits at their bound could not be started.
    #[error("cannot start the timeout thread")]
    TimerThread(#[source] io::Error),
    /// The thread that waits for host dma-buf fences could not be started.
    #[error("cannot start the fence thread")]
    FenceThread(#[source] io::Error),
    /// The memory table changed under a registered buffer: its pages are gone.
    #[error("pages of buffer {} are no longer guest RAM", uuid::format(.0))]
    StaleMemory(Uuid, #[source] MemError),
    /// The CPU-access bracket of a host dma-buf origin failed.
    #[error("cannot bracket the host dma-buf of buffer {}", uuid::format(.0))]
    HostSync(Uuid, #[source] HostFileError),
    /// SHARE flags other than READ_ONLY and HOST_ONLY.
    #[error("undefined share flags {0:#x}")]
    ShareFlags(u32),
    /// The fd to share was refused (kind, seals, size) or could not be mapped.
    #[error("cannot share the fd")]
    Share(#[source] HostFileError),
    /// The READ_INTO target was refused (kind, seals, size) or could not be mapped.
    #[error("cannot use the READ_INTO target")]
    ReadIntoTarget(#[source] HostFileError),
    /// The READ_INTO target is read-only (opened so, or write-sealed).
    #[error("the READ_INTO target is not writable")]
    ReadIntoReadOnly,
    /// The READ_INTO target's bracket failed.
    #[error("cannot bracket the READ_INTO target")]
    ReadIntoSync(#[source] HostFileError),
    /// Host-backed buffers are not exported (the client has their fd already).
    #[error("buffer {} is host-backed", uuid::format(.0))]
    ExportHostBacked(Uuid),
    /// Read-only buffers are not exported (the exported fd would be writable).
    #[error("buffer {} is read-only", uuid::format(.0))]
    ExportReadOnly(Uuid),
    /// MAP: the buffer's origin cannot be mapped (UNSUPPORTED).
    #[error("buffer {} cannot be mapped", uuid::format(.0))]
    Unmappable(Uuid, #[source] Unmappable),
    /// MAP: no region, no room in it, or the front-end failed the mapping.
    #[error("cannot map buffer {}", uuid::format(.0))]
    Mapping(Uuid, #[source] ShmError),
    /// The udmabuf could not be made.
    #[error("cannot export buffer {} as a udmabuf", uuid::format(.0))]
    Udmabuf(Uuid, #[source] UdmabufError),
    /// The exported pages of a released buffer could not be detached from guest RAM.
    #[error("cannot detach the exports of buffer {} from guest RAM", uuid::format(.0))]
    DetachExports(Uuid, #[source] UdmabufError),
    /// A descriptor that came with a control request was dropped: the daemon is at its fd limit.
    #[error("a descriptor sent with the request was dropped: the daemon is at its fd limit (RLIMIT_NOFILE {0})")]
    FdDropped(u64),
}

impl RegistryError {
    /// The status the edges answer (device spec section 9, control protocol section 5).
    pub fn status(&self) -> Status {
        use RegistryError as E;
        match self {
            E::NotFound(_) => Status::NotFound,
            E::Revoked(_) => Status::Revoked,
            E::AlreadyExists(_) => Status::AlreadyExists,
            E::ReadOnly(_) | E::NotWritable(_) | E::ReadIntoReadOnly | E::ExportReadOnly(_) => {
                Status::PermissionDenied
            }
            E::Quota(_) => Status::QuotaExceeded,
            E::Range(e) | E::Segments(e) => e.status(),
            E::NotHeld => Status::NotHeld,
            E::Timeout => Status::Timeout,
            E::Cancelled => Status::Cancelled,
            E::HostSync(_, HostFileError::FenceTimeout) => Status::Timeout,
            E::Random(_)
            | E::TimerThread(_)
            | E::FenceThread(_)
            | E::StaleMemory(..)
            | E::HostSync(..) => Status::IoError,
            E::ShareFlags(_) => Status::InvalidRequest,
            E::Share(e) => match e {
                HostFileError::BadSize { .. } => Status::InvalidSize,
                HostFileError::Syscall(..)
                | HostFileError::Map(_)
                | HostFileError::FenceTimeout => Status::IoError,
                HostFileError::WrongKind | HostFileError::NotSealed => Status::InvalidRequest,
            },
            E::ReadIntoTarget(e) => match e {
                HostFileError::BadSize { .. } => Status::InvalidSize,
                _ => Status::InvalidRequest,
            },
            E::ReadIntoSync(HostFileError::FenceTimeout) => Status::Timeout,
            E::ReadIntoSync(_) => Status::IoError,
            E::Udmabuf(_, e) if e.fd_exhaustion() => Status::QuotaExceeded,
            E::ExportHostBacked(_) | E::Udmabuf(..) | E::Unmappable(..) => Status::Unsupported,
            E::DetachExports(..) => Status::IoError,
            E::FdDropped(_) => Status::QuotaExceeded,
            E::Mapping(_, e) => match e {
                // The driver copies instead: the VMM has no region, or will not map this.
                ShmError::NoRegion
                | ShmError::Channel(ChannelError::Unavailable | ChannelError::Refused(_)) => {
                    Status::Unsupported
                }
                ShmError::NoSpace(_) => Status::NoSpace,
                ShmError::ResetMeanwhile => Status::Cancelled,
                ShmError::Channel(_) | ShmError::File(_) => Status::IoError,
            },
        }
    }

    /// Whether it failed for want of a file descriptor: worth a warning that names the limit.
    pub fn fd_exhaustion(&self) -> bool {
        match self {
            RegistryError::FdDropped(_) => true,
            RegistryError::Udmabuf(_, e) => e.fd_exhaustion(),
            _ => false,
        }
    }
}

/// `error` and its causes, joined by ": " (for logs).
pub use dmabuf_sys_util::report::chain;
