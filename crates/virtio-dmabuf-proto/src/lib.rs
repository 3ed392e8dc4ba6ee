// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Wire format of the virtio dma-buf device (virtio ID 37) and of its host control socket.
//!
//! This crate knows bytes and their validation, nothing else: no guest memory, no sockets. The
//! one exception is [`dma_buf::sync`], the kernel's dma-buf access bracket both sides call.
//! `docs/device-spec.md` and `docs/control-protocol.md` are normative; this crate follows them.

pub mod control;
pub mod dma_buf;
pub mod uuid;
pub mod virtio;

pub use virtio::Status;
