// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The host control socket server (`docs/control-protocol.md`).
//!
//! One thread per connection; each connection is one arbitration domain, released when it closes.
//! The socket file is mode 0600 and every peer's uid is checked against ours (root may connect).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use log::{debug, info, warn};
use thiserror::Error;
use virtio_dmabuf_proto::control::{
    self as ctl, access_path, op, CtlRange, CtlReqHdr, CtlRespHdr, CtlUuid, Generation, PathResp,
    ShareReq, WaitWriteReq, MAGIC, MAX_PAYLOAD, NAME_LEN,
};
use virtio_dmabuf_proto::virtio::sync_flags;
use virtio_dmabuf_proto::Status;
use vm_memory::ByteValued;
use vmm_sys_util::sock_ctrl_msg::ScmSocket;

use crate::arbiter::DomainId;
use crate::registry::Registry;

/// Most simultaneous control connections.
pub const MAX_CLIENTS: usize = 64;
/// A client that started a frame must finish it within this time.
const FRAME_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors of the control socket.
#[derive(Debug, Error)]
pub enum ControlError {
    /// Could not bind or prepare the socket file.
    #[error("control socket {0}: {1}")]
    Bind(PathBuf, #[source] io::Error),
}

/// Check a socket path before binding: a stale socket file is removed; a live one (something
/// answers) or a non-socket file is an error.
pub fn prepare_socket_path(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(meta) if !meta.file_type().is_socket() => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        )),
        Ok(_) => match UnixStream::connect(path) {
            Ok(_) => Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{} is in use by a running process", path.display()),
            )),
            Err(_) => {
                info!("removing stale socket {}", path.display());
                std::fs::remove_file(path)
            }
        },
    }
}

/// Bind the control socket (mode 0600) and serve it on a thread.
pub fn start(registry: Arc<Registry>, path: &Path) -> Result<thread::JoinHandle<()>, ControlError> {
    let err = |e| ControlError::Bind(path.to_owned(), e);
    prepare_socket_path(path).map_err(err)?;
    let listener = UnixListener::bind(path).map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    info!("control socket listening on {}", path.display());
    let clients = Arc::new(AtomicUsize::new(0));
    thread::Builder::new()
        .name("dmabuf-control".into())
        .spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(stream) => accept(&registry, stream, &clients),
                    Err(e) => warn!("control accept: {e}"),
                }
            }
        })
        .map_err(err)
}

fn peer_uid(stream: &UnixStream) -> io::Result<(u32, i32)> {
    // SAFETY: `ucred` is plain data; zeroed is a valid value.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: SO_PEERCRED writes at most `len` bytes into `cred`, which we own; checked below.
    let r = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((cred.uid, cred.pid))
}

fn accept(registry: &Arc<Registry>, mut stream: UnixStream, clients: &Arc<AtomicUsize>) {
    let (uid, pid) = match peer_uid(&stream) {
        Ok(c) => c,
        Err(e) => {
            warn!("control: cannot read peer credentials: {e}");
            return;
        }
    };
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if uid != me && uid != 0 {
        warn!("control: refusing pid {pid} (uid {uid}, daemon uid {me})");
        let _ = send(&stream, Status::PermissionDenied, &[], None);
        return;
    }
    if clients.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
        clients.fetch_sub(1, Ordering::SeqCst);
        warn!("control: too many clients, refusing pid {pid}");
        let _ = send(&stream, Status::QuotaExceeded, &[], None);
        let _ = stream.flush();
        return;
    }
    let registry = registry.clone();
    let clients = clients.clone();
    let spawned = thread::Builder::new()
        .name(format!("dmabuf-ctl-{pid}"))
        .spawn(move || {
            let domain = registry.add_host_domain();
            debug!("control: pid {pid} connected as domain {domain}");
            let mut conn = Connection {
                registry: &registry,
                domain,
                pid,
                stream: &mut stream,
            };
            if let Err(e) = conn.run() {
                debug!("control: pid {pid}: {e}");
            }
            registry.remove_domain(domain);
            clients.fetch_sub(1, Ordering::SeqCst);
            debug!("control: pid {pid} gone");
        });
    if let Err(e) = spawned {
        warn!("control: cannot spawn a connection thread: {e}");
    }
}

fn send(stream: &UnixStream, status: Status, payload: &[u8], fd: Option<&File>) -> io::Result<()> {
    let len = u32::try_from(payload.len()).map_err(io::Error::other)?;
    let hdr = CtlRespHdr::new(status, len, fd.is_some());
    let mut frame = Vec::with_capacity(16 + payload.len());
    frame.extend_from_slice(hdr.as_slice());
    frame.extend_from_slice(payload);
    let mut sent = match fd {
        Some(f) => stream
            .send_with_fd(&frame[..], f.as_raw_fd())
            .map_err(|e| io::Error::from_raw_os_error(e.errno()))?,
        None => 0,
    };
    let mut s = stream;
    while sent < frame.len() {
        sent += s.write(&frame[sent..])?;
    }
    Ok(())
}

struct Connection<'a> {
    registry: &'a Registry,
    domain: DomainId,
    pid: i32,
    stream: &'a mut UnixStream,
}

/// Whether the peer closed its end (checked while a BEGIN waits).
fn peer_gone(stream: &UnixStream) -> bool {
    let mut pfd = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd and a zero timeout; only `revents` is written.
    let r = unsafe { libc::poll(&mut pfd, 1, 0) };
    r > 0 && pfd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
}

/// A decoded request frame.
struct Frame {
    op: u32,
    payload: Vec<u8>,
    fd: Option<File>,
}

fn obj<T: ByteValued + Default>(bytes: &[u8]) -> Result<T, Status> {
    let mut v = T::default();
    let n = v.as_slice().len();
    if bytes.len() < n {
        return Err(Status::InvalidRequest);
    }
    v.as_mut_slice().copy_from_slice(&bytes[..n]);
    Ok(v)
}

fn exact<T: ByteValued + Default>(bytes: &[u8]) -> Result<T, Status> {
    if bytes.len() != size_of::<T>() {
        return Err(Status::InvalidRequest);
    }
    obj(bytes)
}

/// A response: status, payload, optional fd.
type Reply = (Status, Vec<u8>, Option<File>);

fn ok(payload: &[u8]) -> Reply {
    (Status::Ok, payload.to_vec(), None)
}

impl Connection<'_> {
    fn run(&mut self) -> io::Result<()> {
        loop {
            let frame = match self.read_frame()? {
                Some(Ok(f)) => f,
                Some(Err(status)) => {
                    // The stream is out of step: answer and hang up.
                    send(self.stream, status, &[], None)?;
                    return Ok(());
                }
                None => return Ok(()),
            };
            let (status, payload, fd) = self
                .dispatch(frame)
                .unwrap_or_else(|s| (s, Vec::new(), None));
            send(self.stream, status, &payload, fd.as_ref())?;
        }
    }

    /// `None` at a clean end of stream.
    fn read_frame(&mut self) -> io::Result<Option<Result<Frame, Status>>> {
        let mut hdr = [0u8; 16];
        self.stream.set_read_timeout(None)?;
        let (n, fd) = self
            .stream
            .recv_with_fd(&mut hdr)
            .map_err(|e| io::Error::from_raw_os_error(e.errno()))?;
        if n == 0 {
            return Ok(None);
        }
        self.stream.set_read_timeout(Some(FRAME_TIMEOUT))?;
        self.stream.read_exact(&mut hdr[n..])?;
        let h: CtlReqHdr = obj(&hdr).unwrap_or_default();
        let len = u32::from_le(h.len);
        if u32::from_le(h.magic) != MAGIC || h.reserved != 0 || len > MAX_PAYLOAD + 64 {
            return Ok(Some(Err(Status::InvalidRequest)));
        }
        let mut payload = vec![0u8; len as usize];
        self.stream.read_exact(&mut payload)?;
        Ok(Some(Ok(Frame {
            op: u32::from_le(h.op),
            payload,
            fd,
        })))
    }

    fn range(&self, p: &[u8]) -> Result<(CtlRange, u64, u64), Status> {
        let r: CtlRange = obj(p)?;
        Ok((r, u64::from_le(r.offset), u64::from_le(r.len)))
    }

    /// A range that is the whole payload, with the unused fields zero.
    fn range_exact(&self, p: &[u8]) -> Result<(CtlRange, u64, u64), Status> {
        let r: CtlRange = exact(p)?;
        if r.flags != 0 || r.arg != 0 {
            return Err(Status::InvalidRequest);
        }
        Ok((r, u64::from_le(r.offset), u64::from_le(r.len)))
    }

    fn dispatch(&mut self, f: Frame) -> Result<Reply, Status> {
        let reg = self.registry;
        let p = &f.payload[..];
        let need_no_fd = |f: &Option<File>| {
            if f.is_some() {
                Err(Status::InvalidRequest)
            } else {
                Ok(())
            }
        };
        match f.op {
            op::SHARE => {
                let file = f.fd.ok_or(Status::InvalidRequest)?;
                let r: ShareReq = obj(p)?;
                let n = u32::from_le(r.nr_allowed);
                if n > ctl::MAX_ALLOWED_VMS || p.len() != 16 + n as usize * NAME_LEN {
                    return Err(Status::InvalidRequest);
                }
                let mut names = Vec::new();
                for raw in p[16..].chunks_exact(NAME_LEN) {
                    let mut a = [0u8; NAME_LEN];
                    a.copy_from_slice(raw);
                    names.push(ctl::decode_name(&a).ok_or(Status::InvalidRequest)?);
                }
                let owner = format!("host:{}", self.pid);
                let uuid = reg.share(
                    file,
                    u64::from_le(r.size),
                    u32::from_le(r.flags),
                    names,
                    &owner,
                )?;
                Ok(ok(CtlUuid { uuid }.as_slice()))
            }
            op::LIST => {
                need_no_fd(&f.fd)?;
                // LIST takes no payload (found by the control_protocol fuzz target).
                if !p.is_empty() {
                    return Err(Status::InvalidRequest);
                }
                // At most MAX_PAYLOAD bytes of entries (209,715 buffers); the rest is dropped and
                // logged (docs/control-protocol.md).
                let max = MAX_PAYLOAD as usize / size_of::<ctl::BufInfo>();
                let all = reg.list();
                if all.len() > max {
                    warn!("control: LIST truncated to {max} of {} buffers", all.len());
                }
                let mut out = Vec::with_capacity(all.len().min(max) * size_of::<ctl::BufInfo>());
                for info in all.iter().take(max) {
                    out.extend_from_slice(info.as_slice());
                }
                Ok(ok(&out))
            }
            op::INFO => {
                need_no_fd(&f.fd)?;
                let u: CtlUuid = exact(p)?;
                let info = reg.info(&u.uuid).ok_or(Status::NotFound)?;
                Ok(ok(info.as_slice()))
            }
            op::BEGIN | op::END => {
                need_no_fd(&f.fd)?;
                if p.len() != size_of::<CtlRange>() {
                    return Err(Status::InvalidRequest);
                }
                let (r, offset, len) = self.range(p)?;
                let flags = u32::from_le(r.flags);
                if flags & !(sync_flags::READ | sync_flags::WRITE) != 0 || flags == 0 {
                    return Err(Status::InvalidRequest);
                }
                let write = flags & sync_flags::WRITE != 0;
                let s = if f.op == op::BEGIN {
                    let stream: &UnixStream = self.stream;
                    reg.host_begin_watched(
                        self.domain,
                        &r.uuid,
                        offset,
                        len,
                        write,
                        u32::from_le(r.arg),
                        &|| peer_gone(stream),
                    )
                } else if r.arg != 0 {
                    Status::InvalidRequest
                } else {
                    reg.host_end(self.domain, &r.uuid, offset, len, write)
                };
                Ok((s, Vec::new(), None))
            }
            op::READ => {
                need_no_fd(&f.fd)?;
                let (r, offset, len) = self.range_exact(p)?;
                if len == 0 || len > u64::from(MAX_PAYLOAD) {
                    return Err(Status::InvalidSize);
                }
                let mut data = vec![0u8; len as usize];
                match reg.host_read(self.domain, &r.uuid, offset, &mut data) {
                    Status::Ok => Ok((Status::Ok, data, None)),
                    s => Err(s),
                }
            }
            op::READ_INTO => {
                let file = f.fd.ok_or(Status::InvalidRequest)?;
                let r: CtlRange = exact(p)?;
                if r.flags != 0 {
                    return Err(Status::InvalidRequest);
                }
                let (offset, len) = (u64::from_le(r.offset), u64::from_le(r.len));
                let fd_off = u64::from(u32::from_le(r.arg)) * 4096;
                match reg.host_read_into(self.domain, &r.uuid, offset, len, file, fd_off) {
                    Status::Ok => Ok(ok(PathResp {
                        path: access_path::COPY_INTO_FD.to_le(),
                        reserved: 0,
                        copied: len.to_le(),
                    }
                    .as_slice())),
                    s => Err(s),
                }
            }
            op::WRITE => {
                need_no_fd(&f.fd)?;
                let (r, offset, len) = self.range(p)?;
                if r.flags != 0 || r.arg != 0 {
                    return Err(Status::InvalidRequest);
                }
                let data = &p[size_of::<CtlRange>().min(p.len())..];
                if len == 0 || data.len() as u64 != len {
                    return Err(Status::InvalidSize);
                }
                match reg.host_write(self.domain, &r.uuid, offset, data) {
                    Status::Ok => Ok(ok(&[])),
                    s => Err(s),
                }
            }
            op::EXPORT => {
                need_no_fd(&f.fd)?;
                let u: CtlUuid = exact(p)?;
                let file = reg.export_udmabuf(&u.uuid)?;
                let resp = PathResp {
                    path: access_path::UDMABUF.to_le(),
                    reserved: 0,
                    copied: 0,
                };
                Ok((Status::Ok, resp.as_slice().to_vec(), Some(file)))
            }
            op::WAIT_WRITE => {
                need_no_fd(&f.fd)?;
                let w: WaitWriteReq = exact(p)?;
                let generation = reg.wait_write(
                    &w.uuid,
                    u64::from_le(w.after_generation),
                    u32::from_le(w.timeout_ms),
                )?;
                Ok(ok(Generation {
                    generation: generation.to_le(),
                }
                .as_slice()))
            }
            op::REVOKE => {
                need_no_fd(&f.fd)?;
                let u: CtlUuid = exact(p)?;
                match reg.revoke(&u.uuid) {
                    Status::Ok => Ok(ok(&[])),
                    s => Err(s),
                }
            }
            _ => Err(Status::InvalidRequest),
        }
    }
}
