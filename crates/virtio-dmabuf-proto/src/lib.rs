// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Wire format of the virtio dma-buf device (virtio ID 37) and of its host control socket.
//!
//! This crate knows bytes and their validation, nothing else: no guest memory, no sockets, no
//! system calls. `docs/device-spec.md` and `docs/control-protocol.md` are normative; this crate
//! follows them.

pub mod control;
pub mod request;
pub mod segments;
pub mod uuid;
pub mod virtio;

pub use request::Direction;
pub use virtio::Status;
