// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! vhost-user backend of the virtio dma-buf sharing device (virtio ID 37).
//!
//! Where things are:
//! * [`vhu_dmabuf`] — the vhost-user glue: virtqueues, chains on virtio-queue's `Reader` and
//!   `Writer`, typed requests (decoded by `virtio-dmabuf-proto`) to the registry, responses;
//! * [`registry`] — buffers, domains, quotas, access control, data movement at fence points,
//!   one file per lock (see its module documentation for the lock rules);
//! * [`arbiter`] — the fence arbiter: a pure state machine per buffer;
//! * [`memory`] — the resolver: guest scatter-gather lists to host memory, per access;
//! * [`control`] — the host control socket server;
//! * [`hostfile`] — host-backed buffers (memfd, dma-buf) and the udmabuf export;
//! * [`shm`] — a VM's shared memory region: ranges, the mapping requests to the VMM;
//! * [`poll`] — adaptive busy-polling of a request queue between requests;
//! * [`limits`] — quotas, policy and wait bounds; [`daemon`] — serving VM sockets.

pub mod arbiter;
pub mod control;
pub mod daemon;
pub mod fds;
pub mod hostfile;
pub mod limits;
pub mod memory;
pub mod poll;
pub mod ratelimit;
pub mod registry;
pub mod sandbox;
pub mod shm;
pub mod vhu_dmabuf;
pub mod watchdog;
