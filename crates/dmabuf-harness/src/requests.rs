// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The guest driver's requests (`docs/device-spec.md` section 6), encoded with the wire-format
//! crate and sent on the request queue; their answers decoded.

use std::time::Duration;

use virtio_dmabuf_proto::virtio::{
    req, AttachReq, CreateReq, MapReq, MapResp, ReqHdr, Segment, SyncReq, Uuid, UuidReq,
};
use virtio_dmabuf_proto::Status;
use vm_memory::ByteValued;

use virtio_bindings::bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX;

use crate::queue::Buf;
use crate::{status_of, GuestBuffer, HarnessError, MapInfo, Pending, Vm};

impl Vm {
    fn body<T: ByteValued>(kind: u32, body: &T, tail: &[u8]) -> Vec<u8> {
        let hdr = ReqHdr {
            type_: kind.to_le(),
            reserved: 0,
        };
        let mut v = Vec::with_capacity(8 + size_of::<T>() + tail.len());
        v.extend_from_slice(hdr.as_slice());
        v.extend_from_slice(body.as_slice());
        v.extend_from_slice(tail);
        v
    }

    /// Encode a segment list.
    pub fn encode_segments(segs: &[(u64, u64)]) -> Vec<u8> {
        let mut v = Vec::with_capacity(segs.len() * 16);
        for &(a, l) in segs {
            v.extend_from_slice(Segment::new(a, l).as_slice());
        }
        v
    }

    /// The bytes of a CREATE request.
    pub fn create_request(size: u64, flags: u32, segs: &[(u64, u64)]) -> Vec<u8> {
        let body = CreateReq {
            size: size.to_le(),
            flags: flags.to_le(),
            nr_segs: (segs.len() as u32).to_le(),
        };
        Self::body(req::CREATE, &body, &Self::encode_segments(segs))
    }

    /// CREATE.
    pub fn create(
        &mut self,
        size: u64,
        flags: u32,
        segs: &[(u64, u64)],
    ) -> Result<Result<Uuid, Status>, HarnessError> {
        let r = Self::create_request(size, flags, segs);
        let resp = self.request_chunked(&r, 24, 1 << 20)?;
        Ok(match status_of(&resp)? {
            Status::Ok if resp.len() == 24 => {
                let mut u = [0u8; 16];
                u.copy_from_slice(&resp[8..24]);
                Ok(u)
            }
            Status::Ok => return Err(HarnessError::Protocol("short CREATE response".into())),
            s => Err(s),
        })
    }

    /// CREATE of a guest buffer.
    pub fn create_buffer(
        &mut self,
        b: &GuestBuffer,
        flags: u32,
    ) -> Result<Result<Uuid, Status>, HarnessError> {
        self.create(b.size, flags, &b.segs.clone())
    }

    /// RELEASE.
    pub fn release(&mut self, uuid: &Uuid) -> Result<Status, HarnessError> {
        let r = Self::body(req::RELEASE, &UuidReq { uuid: *uuid }, &[]);
        status_of(&self.request(&r, 8)?)
    }

    /// LOOKUP → (size, flags).
    pub fn lookup(&mut self, uuid: &Uuid) -> Result<Result<(u64, u32), Status>, HarnessError> {
        let r = Self::body(req::LOOKUP, &UuidReq { uuid: *uuid }, &[]);
        let resp = self.request(&r, 24)?;
        Ok(match status_of(&resp)? {
            Status::Ok if resp.len() == 24 => {
                let size = u64::from_le_bytes(resp[8..16].try_into().unwrap_or_default());
                let flags = u32::from_le_bytes(resp[16..20].try_into().unwrap_or_default());
                Ok((size, flags))
            }
            Status::Ok => return Err(HarnessError::Protocol("short LOOKUP response".into())),
            s => Err(s),
        })
    }

    /// MAP `uuid` into the device's shared memory region (spec section 13.2).
    pub fn map(&mut self, uuid: &Uuid) -> Result<Result<MapInfo, Status>, HarnessError> {
        let body = MapReq {
            uuid: *uuid,
            flags: 0,
            reserved: 0,
        };
        let r = Self::body(req::MAP, &body, &[]);
        let resp = self.request(&r, size_of::<MapResp>() as u32)?;
        Ok(match status_of(&resp)? {
            Status::Ok if resp.len() == size_of::<MapResp>() => {
                let mut m = MapResp::default();
                m.as_mut_slice().copy_from_slice(&resp);
                Ok(MapInfo {
                    offset: u64::from_le(m.offset),
                    len: u64::from_le(m.len),
                    flags: u32::from_le(m.flags),
                })
            }
            Status::Ok => return Err(HarnessError::Protocol("short MAP response".into())),
            s => Err(s),
        })
    }

    /// ATTACH a guest buffer as this VM's copy of `uuid`.
    pub fn attach(&mut self, uuid: &Uuid, b: &GuestBuffer) -> Result<Status, HarnessError> {
        let body = AttachReq {
            uuid: *uuid,
            nr_segs: (b.segs.len() as u32).to_le(),
            reserved: 0,
        };
        let r = Self::body(req::ATTACH, &body, &Self::encode_segments(&b.segs));
        status_of(&self.request_chunked(&r, 8, 1 << 20)?)
    }

    /// The bytes of a SYNC request.
    pub fn sync_request(
        uuid: &Uuid,
        offset: u64,
        len: u64,
        flags: u32,
        timeout_ms: u32,
    ) -> Vec<u8> {
        let body = SyncReq {
            uuid: *uuid,
            offset: offset.to_le(),
            len: len.to_le(),
            flags: flags.to_le(),
            timeout_ms: timeout_ms.to_le(),
        };
        Self::body(req::SYNC, &body, &[])
    }

    /// SYNC, waiting for the answer.
    pub fn sync(
        &mut self,
        uuid: &Uuid,
        offset: u64,
        len: u64,
        flags: u32,
        timeout_ms: u32,
    ) -> Result<Status, HarnessError> {
        status_of(&self.request(&Self::sync_request(uuid, offset, len, flags, timeout_ms), 8)?)
    }

    /// SYNC START without waiting for the answer.
    pub fn sync_async(
        &mut self,
        uuid: &Uuid,
        offset: u64,
        len: u64,
        flags: u32,
        timeout_ms: u32,
    ) -> Result<Pending, HarnessError> {
        let r = Self::sync_request(uuid, offset, len, flags, timeout_ms);
        self.rewind_scratch();
        let req_gpa = self.scratch(r.len() as u64)?;
        let resp = self.scratch(8)?;
        self.ram.write(req_gpa, &r)?;
        self.ram.write(resp, &[0xff; 8])?;
        let head = self.submit(&[
            Buf {
                addr: req_gpa,
                len: r.len() as u32,
                write: false,
            },
            Buf {
                addr: resp,
                len: 8,
                write: true,
            },
        ])?;
        Ok(Pending {
            head,
            resp,
            avail: self.req.avail_idx(),
        })
    }

    /// Whether a pending START has been answered (without waiting).
    pub fn try_pending(&mut self, p: &Pending) -> Result<Option<Status>, HarnessError> {
        while let Some((h, len)) = self.req.poll(&self.ram)? {
            self.done.insert(h, len);
        }
        if self.done.contains_key(&p.head) {
            return self.wait_pending(p, Duration::ZERO).map(Some);
        }
        Ok(None)
    }

    /// Wait until the device took a pending START from the ring, and tell whether it is still
    /// unanswered, i.e. waiting in the device. Asserted by the device's state, not by time: with
    /// EVENT_IDX the device publishes how far it read the ring (its avail event) before it goes
    /// back to sleep, and an answered START is in the used ring. Without EVENT_IDX the device
    /// publishes nothing of the kind, and this falls back to looking after 150 ms.
    pub fn is_parked(&mut self, p: &Pending) -> Result<bool, HarnessError> {
        if self.features & (1 << VIRTIO_RING_F_EVENT_IDX) == 0 {
            std::thread::sleep(Duration::from_millis(150));
            return self.try_pending(p).map(|s| s.is_none());
        }
        let deadline = std::time::Instant::now() + self.opts.timeout;
        // `avail` counts the START; the device has read past it once its event reaches it.
        while p.avail.wrapping_sub(self.req.avail_event(&self.ram)?) as i16 > 0 {
            if std::time::Instant::now() > deadline {
                return Err(HarnessError::Timeout(self.opts.timeout));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        self.try_pending(p).map(|s| s.is_none())
    }

    /// Wait for a pending START's answer.
    pub fn wait_pending(&mut self, p: &Pending, timeout: Duration) -> Result<Status, HarnessError> {
        let len = self.wait_head(p.head, timeout)?;
        if len != 8 {
            return Err(HarnessError::Protocol(format!(
                "SYNC answered with {len} bytes"
            )));
        }
        let mut b = [0u8; 8];
        self.ram.read(p.resp, &mut b)?;
        status_of(&b)
    }
}
