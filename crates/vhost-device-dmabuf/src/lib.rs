// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! vhost-user backend of the virtio dma-buf sharing device (virtio ID 37).
//!
//! Where things are:
//! * [`memory`] — the resolver: guest scatter-gather lists to host memory, per access;
//! * [`arbiter`] — the fence arbiter: a pure state machine per buffer;
//! * [`registry`] — buffers, domains, quotas, access control, data movement at fence points;
//! * [`vhu_dmabuf`] — the vhost-user glue: virtqueues, request decoding, responses;
//! * [`poll`] — adaptive busy-polling of a request queue between requests;
//! * [`control`] — the host control socket server;
//! * [`hostfile`] — host-backed buffers (memfd, dma-buf) and the udmabuf export.

pub mod arbiter;
pub mod control;
pub mod daemon;
pub mod hostfile;
pub mod limits;
pub mod memory;
pub mod poll;
pub mod registry;
pub mod vhu_dmabuf;
