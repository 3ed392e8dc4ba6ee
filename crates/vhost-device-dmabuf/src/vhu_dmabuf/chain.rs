// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The thin layer over virtio-queue's chains: their shape as the spec judges it, and writing a
//! response (see the module documentation of [`super`]).

use std::io::Write;

use virtio_dmabuf_proto::virtio::RespHdr;
use virtio_dmabuf_proto::Status;
use virtio_queue::{DescriptorChain, Writer};
use vm_memory::ByteValued;

use super::Mem;

/// How a chain is laid out, as far as virtio-queue's Reader and Writer do not check it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ChainShape {
    /// The chain ends with a descriptor without NEXT (not a loop, not cut short).
    pub(super) walkable: bool,
    /// A readable descriptor comes after a writable one.
    pub(super) misordered: bool,
}

impl ChainShape {
    pub(super) fn of(chain: &DescriptorChain<Mem>) -> ChainShape {
        let (mut any, mut last_has_next, mut seen_writable, mut misordered) =
            (false, false, false, false);
        for desc in chain.clone() {
            any = true;
            last_has_next = desc.has_next();
            if desc.is_write_only() {
                seen_writable = true;
            } else if seen_writable {
                misordered = true;
            }
        }
        ChainShape {
            walkable: any && !last_has_next,
            misordered,
        }
    }
}

/// Write `bytes` as the response; the used length (the bytes written).
pub(super) fn respond(out: &mut Writer<'_>, bytes: &[u8]) -> u32 {
    // The caller checked the capacity; a short write still reports what landed.
    let _ = out.write_all(bytes);
    u32::try_from(out.bytes_written()).unwrap_or(0)
}

pub(super) fn respond_status(out: &mut Writer<'_>, status: Status) -> u32 {
    respond(out, RespHdr::new(status).as_slice())
}
