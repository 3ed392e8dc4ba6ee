// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The control socket client: one connection, one arbitration domain.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use virtio_dmabuf_proto::control::{
    encode_name, op, BufInfo, CtlRange, CtlReqHdr, CtlRespHdr, CtlUuid, Generation, ImporterInfo,
    PathResp, ShareReq, WaitWriteReq, MAGIC, MAX_PAYLOAD,
};
use virtio_dmabuf_proto::virtio::Uuid;
use virtio_dmabuf_proto::Status;
use vm_memory::ByteValued;
use vmm_sys_util::sock_ctrl_msg::ScmSocket;

use dmabuf_sys_util::memfd;

use crate::error::{ArgumentError, ClientError, ProtocolError, Result};
use crate::types::{timeout_ms, Access, BufferInfo, Importer, ShareFlags};

/// Largest response payload accepted. Data frames stay within [`MAX_PAYLOAD`], but a LIST is
/// not split: with many VMs at their buffer quota it may be larger (80 bytes per buffer).
const MAX_RESPONSE: u32 = 256 << 20;

/// Payload parts at most this long are sent together with the header.
const INLINE_PART: usize = 4096;

/// One response frame, as received.
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: Status,
    /// The payload.
    pub payload: Vec<u8>,
    /// The fd that came with the frame (EXPORT), close-on-exec.
    pub fd: Option<File>,
}

/// A connection to the daemon's control socket.
///
/// The connection is one arbitration domain: accesses begun through it are held until ended or
/// until the connection closes (dropping the `Client`), which also cancels what it waits for.
/// Requests are answered in order, one at a time; a BEGIN or WAIT_WRITE that waits blocks the
/// connection. Use one `Client` per thread that needs to wait independently.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
}

/// Copy a wire struct out of bytes of exactly its size.
fn decode<T: ByteValued + Default>(what: &'static str, bytes: &[u8]) -> Result<T> {
    let mut v = T::default();
    if bytes.len() != v.as_slice().len() {
        return Err(ClientError::Protocol(ProtocolError::Size {
            what,
            got: bytes.len(),
            expected: v.as_slice().len(),
        }));
    }
    v.as_mut_slice().copy_from_slice(bytes);
    Ok(v)
}

fn errno_to_io(e: vmm_sys_util::errno::Error) -> io::Error {
    io::Error::from_raw_os_error(e.errno())
}

fn set_cloexec(f: &File) {
    // SAFETY: F_SETFD with an int argument on an fd we own; failure only leaves the flag unset.
    unsafe {
        libc::fcntl(f.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC);
    }
}

fn range(uuid: &Uuid, offset: u64, len: u64, flags: u32, arg: u32) -> CtlRange {
    CtlRange {
        uuid: *uuid,
        offset: offset.to_le(),
        len: len.to_le(),
        flags: flags.to_le(),
        arg: arg.to_le(),
    }
}

impl Client {
    /// Connect to the control socket at `path`.
    pub fn connect(path: impl AsRef<Path>) -> Result<Client> {
        let path = path.as_ref();
        UnixStream::connect(path)
            .map(Client::from_stream)
            .map_err(|e| ClientError::Connect(path.to_owned(), e))
    }

    /// Use an already connected stream.
    pub fn from_stream(stream: UnixStream) -> Client {
        Client { stream }
    }

    /// The underlying stream (e.g. to set timeouts).
    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    /// Bound every socket read and write (`None`: wait as long as the daemon takes; it answers
    /// every wait within its own bound).
    pub fn set_io_timeout(&self, t: Option<Duration>) -> Result<()> {
        self.stream
            .set_read_timeout(t)
            .and_then(|()| self.stream.set_write_timeout(t))
            .map_err(ClientError::SetTimeout)
    }

    // ------------------------------------------------------------------ framing

    /// Send one request frame: the header and `parts` as its payload, `fd` with the first byte.
    pub fn send_request(&mut self, op: u32, parts: &[&[u8]], fd: Option<RawFd>) -> Result<()> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let len = u32::try_from(total)
            .map_err(|_| ClientError::InvalidArgument(ArgumentError::Payload(total)))?;
        let hdr = CtlReqHdr {
            magic: MAGIC.to_le(),
            op: op.to_le(),
            len: len.to_le(),
            reserved: 0,
        };
        // The header and the small parts go in one message (with the fd); a large trailing data
        // part is written after it without another copy.
        let mut head = hdr.as_slice().to_vec();
        let mut rest: &[&[u8]] = parts;
        while let Some((first, more)) = rest.split_first() {
            if first.len() > INLINE_PART {
                break;
            }
            head.extend_from_slice(first);
            rest = more;
        }
        let mut sent = 0;
        if let Some(fd) = fd {
            sent = loop {
                match self.stream.send_with_fd(&head[..], fd) {
                    Ok(n) => break n,
                    Err(e) if e.errno() == libc::EINTR => continue,
                    Err(e) => return Err(ClientError::Send(errno_to_io(e))),
                }
            };
        }
        self.stream
            .write_all(&head[sent..])
            .map_err(ClientError::Send)?;
        for p in rest {
            self.stream.write_all(p).map_err(ClientError::Send)?;
        }
        Ok(())
    }

    /// Receive one response frame. The fd, if any, arrives with the header's first bytes.
    pub fn recv_reply(&mut self) -> Result<Reply> {
        let mut hdr = [0u8; 16];
        let (n, fd) = loop {
            match self.stream.recv_with_fd(&mut hdr) {
                Ok(r) => break r,
                Err(e) if e.errno() == libc::EINTR => continue,
                Err(e) => return Err(ClientError::Receive(errno_to_io(e))),
            }
        };
        if let Some(f) = &fd {
            set_cloexec(f);
        }
        if n == 0 {
            return Err(ClientError::Closed("response header"));
        }
        self.read_exact(&mut hdr[n..], "response header")?;
        let h: CtlRespHdr = decode("response header", &hdr)?;
        let raw_status = u32::from_le(h.status);
        let status = Status::from_u32(raw_status).ok_or(ClientError::Protocol(
            ProtocolError::UnknownStatus(raw_status),
        ))?;
        let len = u32::from_le(h.len);
        if len > MAX_RESPONSE {
            return Err(ClientError::Protocol(ProtocolError::Oversized(len)));
        }
        match (u32::from_le(h.has_fd), fd.is_some()) {
            (0, false) | (1, true) => {}
            (announced, received) => {
                return Err(ClientError::Protocol(ProtocolError::FdMismatch {
                    announced,
                    received,
                }))
            }
        }
        let mut payload = vec![0u8; len as usize];
        self.read_exact(&mut payload, "response payload")?;
        Ok(Reply {
            status,
            payload,
            fd,
        })
    }

    fn read_exact(&mut self, buf: &mut [u8], what: &'static str) -> Result<()> {
        self.stream.read_exact(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                ClientError::Closed(what)
            } else {
                ClientError::Receive(e)
            }
        })
    }

    /// Send a request and return the response, whatever its status.
    pub fn call(&mut self, op: u32, parts: &[&[u8]], fd: Option<RawFd>) -> Result<Reply> {
        if let Err(e) = self.send_request(op, parts, fd) {
            // The daemon may have answered and hung up before reading (a refused peer, too many
            // clients): report its status rather than the broken pipe.
            if let ClientError::Send(io) = &e {
                if matches!(
                    io.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ) {
                    if let Ok(reply) = self.recv_reply() {
                        return Ok(reply);
                    }
                }
            }
            return Err(e);
        }
        self.recv_reply()
    }

    /// [`Client::call`], with any status but `OK` turned into [`ClientError::Status`].
    fn call_ok(&mut self, op: u32, parts: &[&[u8]], fd: Option<RawFd>) -> Result<Reply> {
        let r = self.call(op, parts, fd)?;
        if r.status != Status::Ok {
            return Err(ClientError::Status(r.status));
        }
        Ok(r)
    }

    fn expect_empty(r: &Reply, what: &'static str) -> Result<()> {
        if r.payload.is_empty() && r.fd.is_none() {
            Ok(())
        } else {
            Err(ClientError::Protocol(ProtocolError::UnexpectedPayload {
                what,
                len: r.payload.len(),
            }))
        }
    }

    // ------------------------------------------------------------------ operations

    /// Share the first `size` bytes of `file` (a memfd sealed with `F_SEAL_SHRINK`, or a dma-buf)
    /// as a new host-backed buffer. `allowed_vms` empty: every VM may import (unless
    /// `host_only`). The daemon keeps its own reference to the fd; the buffer lives until
    /// revoked, whether or not this connection stays open.
    pub fn share(
        &mut self,
        file: &File,
        size: u64,
        flags: ShareFlags,
        allowed_vms: &[&str],
    ) -> Result<Uuid> {
        let nr = u32::try_from(allowed_vms.len()).map_err(|_| {
            ClientError::InvalidArgument(ArgumentError::TooManyVmNames(allowed_vms.len()))
        })?;
        let req = ShareReq {
            size: size.to_le(),
            flags: flags.bits().to_le(),
            nr_allowed: nr.to_le(),
        };
        let mut payload = req.as_slice().to_vec();
        for name in allowed_vms {
            let raw = encode_name(name).ok_or_else(|| {
                ClientError::InvalidArgument(ArgumentError::VmName((*name).to_owned()))
            })?;
            payload.extend_from_slice(&raw);
        }
        let r = self.call_ok(op::SHARE, &[&payload], Some(file.as_raw_fd()))?;
        Ok(decode::<CtlUuid>("SHARE response", &r.payload)?.uuid)
    }

    /// Copy `data` into a new sealed memfd (padded with zeros to whole pages, so that guests can
    /// map it) and share `data.len()` bytes of it. Returns the UUID and the memfd, which the
    /// caller may keep writing (outside the daemon's arbitration) or drop.
    pub fn share_bytes(
        &mut self,
        data: &[u8],
        flags: ShareFlags,
        allowed_vms: &[&str],
    ) -> Result<(Uuid, File)> {
        let file = memfd::shareable_memfd_with("dmabuf-share", data).map_err(ClientError::Memfd)?;
        let uuid = self.share(&file, data.len() as u64, flags, allowed_vms)?;
        Ok((uuid, file))
    }

    /// Every live buffer, sorted by UUID.
    pub fn list(&mut self) -> Result<Vec<BufferInfo>> {
        let r = self.call_ok(op::LIST, &[], None)?;
        let n = size_of::<BufInfo>();
        if r.payload.len() % n != 0 {
            return Err(ClientError::Protocol(ProtocolError::ListLength(
                r.payload.len(),
            )));
        }
        r.payload
            .chunks_exact(n)
            .map(|c| decode::<BufInfo>("LIST entry", c).map(|w| BufferInfo::from(&w)))
            .collect()
    }

    /// One buffer's description.
    /// One buffer's description, with each importer and the kind of its import.
    pub fn info(&mut self, uuid: &Uuid) -> Result<BufferInfo> {
        let r = self.call_ok(op::INFO, &[CtlUuid { uuid: *uuid }.as_slice()], None)?;
        let head = size_of::<BufInfo>();
        let entry = size_of::<ImporterInfo>();
        if r.payload.len() < head || !(r.payload.len() - head).is_multiple_of(entry) {
            return Err(ClientError::Protocol(ProtocolError::Size {
                what: "INFO response",
                got: r.payload.len(),
                expected: head,
            }));
        }
        let mut info = BufferInfo::from(&decode::<BufInfo>("INFO response", &r.payload[..head])?);
        for c in r.payload[head..].chunks_exact(entry) {
            info.importer_list
                .push(Importer::from(&decode::<ImporterInfo>("INFO importer", c)?));
        }
        Ok(info)
    }

    /// Begin CPU access to `offset..offset + len`, waiting at most `timeout` (`None`: the
    /// daemon's default, which also caps longer bounds) for conflicting accesses to end.
    pub fn begin(
        &mut self,
        uuid: &Uuid,
        offset: u64,
        len: u64,
        access: Access,
        timeout: Option<Duration>,
    ) -> Result<()> {
        let r = range(uuid, offset, len, access.flags(), timeout_ms(timeout));
        let reply = self.call_ok(op::BEGIN, &[r.as_slice()], None)?;
        Self::expect_empty(&reply, "BEGIN")
    }

    /// End an access begun with exactly this range and direction.
    pub fn end(&mut self, uuid: &Uuid, offset: u64, len: u64, access: Access) -> Result<()> {
        let r = range(uuid, offset, len, access.flags(), 0);
        let reply = self.call_ok(op::END, &[r.as_slice()], None)?;
        Self::expect_empty(&reply, "END")
    }

    /// Read bytes of a range this connection holds (one held access must cover it), over the
    /// socket in frames of at most [`MAX_PAYLOAD`] bytes.
    pub fn read(&mut self, uuid: &Uuid, offset: u64, len: u64) -> Result<Vec<u8>> {
        if usize::try_from(len).is_err() {
            return Err(ClientError::InvalidArgument(ArgumentError::Length(len)));
        }
        // Grows as frames arrive: a huge length fails at the daemon, not in the allocator.
        let mut out = Vec::with_capacity(len.min(u64::from(MAX_PAYLOAD)) as usize);
        let mut done = 0u64;
        // A zero length is still asked, so the daemon's answer (INVALID_SIZE) comes through.
        loop {
            let n = (len - done).min(u64::from(MAX_PAYLOAD));
            let at = offset
                .checked_add(done)
                .ok_or(ClientError::InvalidArgument(ArgumentError::Overflow {
                    offset,
                    len: done,
                }))?;
            let r = self.call_ok(op::READ, &[range(uuid, at, n, 0, 0).as_slice()], None)?;
            if r.payload.len() as u64 != n || r.fd.is_some() {
                return Err(ClientError::Protocol(ProtocolError::Size {
                    what: "READ response",
                    got: r.payload.len(),
                    expected: n as usize,
                }));
            }
            out.extend_from_slice(&r.payload);
            done += n;
            if done >= len {
                return Ok(out);
            }
        }
    }

    /// Have the daemon copy a held range into `file` (a sealed memfd this client made) at byte
    /// `fd_page_offset * 4096`. Returns the bytes copied.
    pub fn read_into(
        &mut self,
        uuid: &Uuid,
        offset: u64,
        len: u64,
        file: &File,
        fd_page_offset: u32,
    ) -> Result<u64> {
        let r = range(uuid, offset, len, 0, fd_page_offset);
        let reply = self.call_ok(op::READ_INTO, &[r.as_slice()], Some(file.as_raw_fd()))?;
        let p: PathResp = decode("READ_INTO response", &reply.payload)?;
        Ok(u64::from_le(p.copied))
    }

    /// Make `file` (a sealed memfd or a dma-buf this client can write) this connection's READ
    /// target: the daemon maps it once and keeps it mapped until another SET_TARGET or the end
    /// of the connection, so [`Client::read_target`] costs one copy and no mapping.
    pub fn set_read_target(&mut self, file: &File) -> Result<()> {
        self.call_ok(op::SET_TARGET, &[], Some(file.as_raw_fd()))?;
        Ok(())
    }

    /// Have the daemon copy a held range into the target of [`Client::set_read_target`] at
    /// byte `fd_page_offset * 4096`. Returns the bytes copied.
    pub fn read_target(
        &mut self,
        uuid: &Uuid,
        offset: u64,
        len: u64,
        fd_page_offset: u32,
    ) -> Result<u64> {
        let r = range(uuid, offset, len, 0, fd_page_offset);
        let reply = self.call_ok(op::READ_TARGET, &[r.as_slice()], None)?;
        let p: PathResp = decode("READ_TARGET response", &reply.payload)?;
        Ok(u64::from_le(p.copied))
    }

    /// Write `data` at `offset` of a range this connection holds for writing, in frames of at
    /// most [`MAX_PAYLOAD`] bytes.
    pub fn write(&mut self, uuid: &Uuid, offset: u64, data: &[u8]) -> Result<()> {
        let mut done = 0usize;
        loop {
            let n = (data.len() - done).min(MAX_PAYLOAD as usize);
            let at = offset
                .checked_add(done as u64)
                .ok_or(ClientError::InvalidArgument(ArgumentError::Overflow {
                    offset,
                    len: done as u64,
                }))?;
            let r = range(uuid, at, n as u64, 0, 0);
            let reply = self.call_ok(op::WRITE, &[r.as_slice(), &data[done..done + n]], None)?;
            Self::expect_empty(&reply, "WRITE")?;
            done += n;
            if done >= data.len() {
                return Ok(());
            }
        }
    }

    /// A host dma-buf (udmabuf) over a guest-backed buffer's pages: zero copy. `UNSUPPORTED`
    /// for host-backed buffers and on hosts without /dev/udmabuf or memfd guest RAM. Reads of
    /// it should still be bracketed by [`Client::begin`]/[`Client::end`].
    pub fn export_udmabuf(&mut self, uuid: &Uuid) -> Result<File> {
        let r = self.call_ok(op::EXPORT, &[CtlUuid { uuid: *uuid }.as_slice()], None)?;
        r.fd.ok_or(ClientError::Protocol(ProtocolError::MissingFd))
    }

    /// Wait until the buffer's write generation exceeds `after_generation`; returns it.
    pub fn wait_write(
        &mut self,
        uuid: &Uuid,
        after_generation: u64,
        timeout: Option<Duration>,
    ) -> Result<u64> {
        let req = WaitWriteReq {
            uuid: *uuid,
            after_generation: after_generation.to_le(),
            timeout_ms: timeout_ms(timeout).to_le(),
            reserved: 0,
        };
        let r = self.call_ok(op::WAIT_WRITE, &[req.as_slice()], None)?;
        Ok(u64::from_le(
            decode::<Generation>("WAIT_WRITE response", &r.payload)?.generation,
        ))
    }

    /// Revoke a buffer: importers are detached, waiters get `REVOKED`, later requests
    /// `NOT_FOUND`.
    pub fn revoke(&mut self, uuid: &Uuid) -> Result<()> {
        let r = self.call_ok(op::REVOKE, &[CtlUuid { uuid: *uuid }.as_slice()], None)?;
        Self::expect_empty(&r, "REVOKE")
    }

    // ------------------------------------------------------------------ fenced helpers

    /// Begin `access` on the range, run `f`, and end the access whether or not `f` succeeded.
    /// `f`'s error wins over END's. `f` may fail with its own error type (one that a
    /// [`ClientError`] converts into), e.g. a program's error for a failing output file.
    pub fn fenced<R, E: From<ClientError>>(
        &mut self,
        uuid: &Uuid,
        offset: u64,
        len: u64,
        access: Access,
        timeout: Option<Duration>,
        f: impl FnOnce(&mut Client) -> std::result::Result<R, E>,
    ) -> std::result::Result<R, E> {
        self.begin(uuid, offset, len, access, timeout)?;
        let r = f(self);
        let e = self.end(uuid, offset, len, access);
        let v = r?;
        e?;
        Ok(v)
    }

    /// Begin read, read, end.
    pub fn read_fenced(
        &mut self,
        uuid: &Uuid,
        offset: u64,
        len: u64,
        timeout: Option<Duration>,
    ) -> Result<Vec<u8>> {
        self.fenced(uuid, offset, len, Access::Read, timeout, |c| {
            c.read(uuid, offset, len)
        })
    }

    /// Begin write, write, end.
    pub fn write_fenced(
        &mut self,
        uuid: &Uuid,
        offset: u64,
        data: &[u8],
        timeout: Option<Duration>,
    ) -> Result<()> {
        self.fenced(
            uuid,
            offset,
            data.len() as u64,
            Access::Write,
            timeout,
            |c| c.write(uuid, offset, data),
        )
    }
}
