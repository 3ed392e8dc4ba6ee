// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The host control socket server (`docs/control-protocol.md`).
//!
//! One thread per connection; each connection is one arbitration domain, released when it closes.
//! The socket file is mode 0600 and every peer's uid is checked against ours (root may connect).
//! With a control group ([`ControlSocket::bind_for_group`], the daemon's `--control-group`) the
//! file is mode 0660 in that group, and peers in the group are served too.

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

use dmabuf_sys_util::fds::{nofile_limit, recv_with_fd, Received};
use log::{debug, info, warn};
use thiserror::Error;
use virtio_dmabuf_proto::control::{
    self as ctl, access_path, decode_request, BufInfo, CtlError, CtlReqHdr, CtlRequest, CtlRespHdr,
    CtlSpan, CtlUuid, Generation, PathResp, MAX_PAYLOAD, NAME_LEN,
};
use virtio_dmabuf_proto::{Direction, Status};
use vm_memory::ByteValued;
use vmm_sys_util::sock_ctrl_msg::ScmSocket;

use crate::arbiter::DomainId;
use crate::hostfile::HostFile;
use crate::ratelimit::RateLimit;
use crate::registry::{chain, BufferSummary, HostRange, Registry, RegistryError, ShareRequest};

mod peer;

use peer::{peer_allowed, peer_cred};
pub use peer::{resolve_group, GroupError};

/// Most simultaneous control connections.
pub const MAX_CLIENTS: usize = 64;
/// A client that started a frame must finish it within this time.
const FRAME_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after a failed accept (out of fds, say) before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Why a socket path cannot be bound.
#[derive(Debug, Error)]
pub enum SocketPathError {
    /// Something else than a socket is there.
    #[error("{} exists and is not a socket", .0.display())]
    NotASocket(PathBuf),
    /// A process answers on it.
    #[error("{} is in use by a running process", .0.display())]
    InUse(PathBuf),
    /// The path cannot be inspected.
    #[error("cannot inspect {}", .0.display())]
    Stat(PathBuf, #[source] io::Error),
    /// A stale socket file cannot be removed.
    #[error("cannot remove the stale socket {}", .0.display())]
    RemoveStale(PathBuf, #[source] io::Error),
}

/// Errors of the control socket.
#[derive(Debug, Error)]
pub enum ControlError {
    /// The socket path is unusable.
    #[error("unusable control socket path")]
    Path(#[source] SocketPathError),
    /// Could not bind the socket.
    #[error("cannot bind the control socket {}", .0.display())]
    Bind(PathBuf, #[source] io::Error),
    /// Could not make the socket file private.
    #[error("cannot set mode 0600 on {}", .0.display())]
    Mode(PathBuf, #[source] io::Error),
    /// Could not give the socket file to the control group (the daemon must be root or a
    /// member of the group).
    #[error("cannot give {} to group {gid} with mode 0660", .path.display())]
    Group {
        path: PathBuf,
        gid: u32,
        #[source]
        source: io::Error,
    },
    /// Could not start the thread that accepts connections.
    #[error("cannot start the control thread")]
    Thread(#[source] io::Error),
}

/// Check a socket path before binding: a stale socket file is removed; a live one (something
/// answers) or a non-socket file is an error.
pub fn prepare_socket_path(path: &Path) -> Result<(), SocketPathError> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SocketPathError::Stat(path.to_owned(), e)),
        Ok(meta) if !meta.file_type().is_socket() => {
            Err(SocketPathError::NotASocket(path.to_owned()))
        }
        Ok(_) => match UnixStream::connect(path) {
            Ok(_) => Err(SocketPathError::InUse(path.to_owned())),
            Err(_) => {
                info!("removing stale socket {}", path.display());
                std::fs::remove_file(path)
                    .map_err(|e| SocketPathError::RemoveStale(path.to_owned(), e))
            }
        },
    }
}

/// The control socket, bound (mode 0600, or 0660 for a control group) and not served yet: the
/// daemon binds it before its sandbox closes the filesystem and serves it after.
pub struct ControlSocket {
    listener: UnixListener,
    /// Peers in this group are served besides the daemon's uid and root.
    group: Option<u32>,
}

impl ControlSocket {
    /// Bind `path` (replacing a stale socket file, refusing a live one) with mode 0600.
    pub fn bind(path: &Path) -> Result<ControlSocket, ControlError> {
        ControlSocket::bind_for_group(path, None)
    }

    /// [`ControlSocket::bind`], and with `group` the socket file becomes mode 0660 in group
    /// `group` and peers in it (their primary group or a supplementary one, `SO_PEERGROUPS`)
    /// are served too. A daemon that is not root must be a member of the group.
    pub fn bind_for_group(path: &Path, group: Option<u32>) -> Result<ControlSocket, ControlError> {
        prepare_socket_path(path).map_err(ControlError::Path)?;
        let listener =
            UnixListener::bind(path).map_err(|e| ControlError::Bind(path.to_owned(), e))?;
        let unbind = |e: ControlError| {
            let _ = std::fs::remove_file(path);
            e
        };
        // The mode first, so the file is never open to the group before it is in the group.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| unbind(ControlError::Mode(path.to_owned(), e)))?;
        if let Some(gid) = group {
            std::os::unix::fs::chown(path, None, Some(gid))
                .and_then(|()| {
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
                })
                .map_err(|source| {
                    unbind(ControlError::Group {
                        path: path.to_owned(),
                        gid,
                        source,
                    })
                })?;
            info!(
                "control socket listening on {} (mode 0660, group {gid})",
                path.display()
            );
        } else {
            info!("control socket listening on {}", path.display());
        }
        Ok(ControlSocket { listener, group })
    }

    /// Serve it on a thread of its own (one more per connection).
    pub fn serve(self, registry: Arc<Registry>) -> Result<thread::JoinHandle<()>, ControlError> {
        let clients = Arc::new(AtomicUsize::new(0));
        thread::Builder::new()
            .name("dmabuf-control".into())
            .spawn(move || self.accept_loop(&registry, &clients))
            .map_err(ControlError::Thread)
    }

    fn accept_loop(&self, registry: &Arc<Registry>, clients: &Arc<AtomicUsize>) {
        static ACCEPT_FAILED: RateLimit = RateLimit::new("control: accepting a connection failed");
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => accept(registry, stream, clients, self.group),
                Err(e) => {
                    if let Some(n) = ACCEPT_FAILED.admit() {
                        warn!("control: accepting a connection: {e}{n}");
                    }
                    // Out of fds (or another persistent failure): do not spin; the connection
                    // waits in the backlog until an fd is free.
                    thread::sleep(ACCEPT_BACKOFF);
                }
            }
        }
    }
}

/// Bind the control socket (mode 0600) and serve it on a thread.
pub fn start(registry: Arc<Registry>, path: &Path) -> Result<thread::JoinHandle<()>, ControlError> {
    ControlSocket::bind(path)?.serve(registry)
}

/// The lines a connecting client can trigger again and again.
static PEER_CRED: RateLimit = RateLimit::new("control: cannot read peer credentials");
static REFUSED_UID: RateLimit = RateLimit::new("control: refusing a peer uid");
static TOO_MANY: RateLimit = RateLimit::new("control: too many clients");
static NO_THREAD: RateLimit = RateLimit::new("control: cannot spawn a connection thread");
static LIST_CUT: RateLimit = RateLimit::new("control: LIST truncated");

fn accept(
    registry: &Arc<Registry>,
    mut stream: UnixStream,
    clients: &Arc<AtomicUsize>,
    group: Option<u32>,
) {
    let (uid, gid, pid) = match peer_cred(&stream) {
        Ok(c) => c,
        Err(e) => {
            if let Some(n) = PEER_CRED.admit() {
                warn!("control: cannot read peer credentials: {e}{n}");
            }
            return;
        }
    };
    if !peer_allowed(&stream, uid, gid, group) {
        if let Some(n) = REFUSED_UID.admit() {
            // SAFETY: geteuid has no preconditions.
            let me = unsafe { libc::geteuid() };
            let g = group
                .map(|g| format!(", not in group {g}"))
                .unwrap_or_default();
            warn!("control: refusing pid {pid} (uid {uid}, daemon uid {me}{g}){n}");
        }
        let _ = send(&stream, Status::PermissionDenied, &[], None);
        return;
    }
    if clients.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
        clients.fetch_sub(1, Ordering::SeqCst);
        if let Some(n) = TOO_MANY.admit() {
            warn!("control: too many clients, refusing pid {pid}{n}");
        }
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
                target: None,
            };
            if let Err(e) = conn.run() {
                debug!("control: pid {pid}: {e}");
            }
            registry.remove_domain(domain);
            clients.fetch_sub(1, Ordering::SeqCst);
            debug!("control: pid {pid} gone");
        });
    if let Err(e) = spawned {
        if let Some(n) = NO_THREAD.admit() {
            warn!("control: cannot spawn a connection thread: {e}{n}");
        }
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

/// One control connection, served on the caller's thread one frame at a time: what each of
/// the daemon's connection threads runs, and what the `control_protocol` fuzz target drives
/// without a thread (so its inputs cost no thread and no accept).
pub struct ControlConnection<'a>(Connection<'a>);

impl<'a> ControlConnection<'a> {
    /// Serve `stream` for host `domain` (of `registry`), whose peer is `pid`.
    pub fn new(
        registry: &'a Registry,
        domain: DomainId,
        pid: i32,
        stream: &'a mut UnixStream,
    ) -> ControlConnection<'a> {
        ControlConnection(Connection {
            registry,
            domain,
            pid,
            stream,
            target: None,
        })
    }

    /// Read one frame and answer it; `false` once the connection is over (end of stream, or a
    /// bad header answered before hanging up). The caller releases the domain afterwards.
    pub fn serve_one(&mut self) -> io::Result<bool> {
        self.0.serve_one()
    }

    /// Hang up: the peer reads the end of the stream after what it was sent.
    pub fn hang_up(&mut self) {
        let _ = self.0.stream.shutdown(std::net::Shutdown::Both);
    }
}

struct Connection<'a> {
    registry: &'a Registry,
    domain: DomainId,
    pid: i32,
    stream: &'a mut UnixStream,
    /// SET_TARGET's file, mapped until replaced or the connection closes (READ_TARGET).
    target: Option<HostFile>,
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

/// One request frame as it came: its op, payload and fd.
struct Frame {
    op: u32,
    payload: Vec<u8>,
    fd: Option<File>,
    /// An fd came with it but was dropped: the daemon is at its fd limit.
    fd_dropped: bool,
}

/// A response: payload and optional fd (status OK).
struct Reply {
    payload: Vec<u8>,
    fd: Option<File>,
}

impl Reply {
    fn empty() -> Reply {
        Reply::with(&[])
    }

    fn with(payload: &[u8]) -> Reply {
        Reply {
            payload: payload.to_vec(),
            fd: None,
        }
    }
}

/// Why a request is answered with a status other than OK.
enum Refusal {
    /// The request's bytes (`docs/control-protocol.md` section 3).
    Decode(CtlError),
    /// The registry.
    Registry(RegistryError),
}

impl From<RegistryError> for Refusal {
    fn from(e: RegistryError) -> Refusal {
        Refusal::Registry(e)
    }
}

impl Refusal {
    /// The one place where this edge turns an error into a wire status. A failure with a cause
    /// (the host failed, not the client's request) is logged with its chain.
    fn status(&self, pid: i32) -> Status {
        match self {
            Refusal::Decode(e) => {
                debug!("control: pid {pid}: {e}");
                e.status()
            }
            Refusal::Registry(e) => {
                static FD_LIMIT: RateLimit = RateLimit::new("control: fd limit");
                static FAILED: RateLimit = RateLimit::new("control: request failed");
                if e.fd_exhaustion() {
                    if let Some(n) = FD_LIMIT.admit() {
                        warn!("control: pid {pid}: {}{n}", chain(e));
                    }
                } else if std::error::Error::source(e).is_some() {
                    if let Some(n) = FAILED.admit() {
                        info!("control: pid {pid}: {}{n}", chain(e));
                    }
                } else {
                    debug!("control: pid {pid}: {e}");
                }
                e.status()
            }
        }
    }
}

/// A buffer as LIST and INFO put it on the wire.
fn buf_info(s: &BufferSummary) -> BufInfo {
    let mut flags = 0;
    if s.read_only {
        flags |= ctl::buf_flags::READ_ONLY;
    }
    if s.host_only {
        flags |= ctl::buf_flags::HOST_ONLY;
    }
    if s.host_backed {
        flags |= ctl::buf_flags::HOST_BACKED;
    }
    if s.revoked {
        flags |= ctl::INFO_REVOKED;
    }
    let mut owner = [0u8; NAME_LEN];
    let n = s.owner.len().min(NAME_LEN - 1);
    owner[..n].copy_from_slice(&s.owner.as_bytes()[..n]);
    BufInfo {
        uuid: s.uuid,
        size: s.size.to_le(),
        write_generation: s.write_generation.to_le(),
        flags: flags.to_le(),
        importers: s.importers.to_le(),
        nr_segs: s.nr_segs.to_le(),
        mapped: u32::try_from(s.importer_views.iter().filter(|v| v.mapped).count())
            .unwrap_or(u32::MAX)
            .to_le(),
        owner,
    }
}

/// INFO: the buffer, then each importer and the kind of its import.
fn info_payload(s: &BufferSummary) -> Vec<u8> {
    let mut out = buf_info(s).as_slice().to_vec();
    for v in &s.importer_views {
        let kind = if v.mapped {
            ctl::import_kind::MAPPED
        } else {
            ctl::import_kind::COPIED
        };
        let entry = ctl::ImporterInfo {
            name: ctl::encode_name(&v.name).unwrap_or([0; NAME_LEN]),
            kind: kind.to_le(),
            reserved: 0,
            copied: v.copied.to_le(),
        };
        out.extend_from_slice(entry.as_slice());
    }
    out
}

impl Connection<'_> {
    fn run(&mut self) -> io::Result<()> {
        while self.serve_one()? {}
        Ok(())
    }

    /// Read one frame and answer it; `false` once the connection is over (end of stream, or
    /// a bad header answered before hanging up).
    fn serve_one(&mut self) -> io::Result<bool> {
        let frame = match self.read_frame()? {
            Some(Ok(f)) => f,
            Some(Err(e)) => {
                // The stream is out of step: answer and hang up.
                debug!("control: pid {}: {e}", self.pid);
                send(self.stream, e.status(), &[], None)?;
                return Ok(false);
            }
            None => return Ok(false),
        };
        match self.dispatch(frame) {
            Ok(r) => send(self.stream, Status::Ok, &r.payload, r.fd.as_ref())?,
            Err(refusal) => send(self.stream, refusal.status(self.pid), &[], None)?,
        }
        Ok(true)
    }

    /// `None` at a clean end of stream.
    fn read_frame(&mut self) -> io::Result<Option<Result<Frame, CtlError>>> {
        let mut hdr = CtlReqHdr::default();
        self.stream.set_read_timeout(None)?;
        let Received {
            bytes: n,
            fd,
            fd_dropped,
        } = recv_with_fd(&*self.stream, hdr.as_mut_slice())?;
        if n == 0 {
            return Ok(None);
        }
        self.stream.set_read_timeout(Some(FRAME_TIMEOUT))?;
        self.stream.read_exact(&mut hdr.as_mut_slice()[n..])?;
        let (op, len) = match hdr.decode() {
            Ok(h) => h,
            Err(e) => return Ok(Some(Err(e))),
        };
        let mut payload = vec![0u8; len as usize];
        self.stream.read_exact(&mut payload)?;
        Ok(Some(Ok(Frame {
            op,
            payload,
            fd,
            fd_dropped,
        })))
    }

    fn dispatch(&mut self, f: Frame) -> Result<Reply, Refusal> {
        if f.fd_dropped {
            let limit = nofile_limit().map_or(0, |l| l.soft);
            return Err(Refusal::Registry(RegistryError::FdDropped(limit)));
        }
        let request = decode_request(f.op, &f.payload, f.fd.is_some()).map_err(Refusal::Decode)?;
        let (reg, domain) = (self.registry, self.domain);
        // The decoder checked that an fd came exactly with the ops that take one.
        let mut fd = f.fd.into_iter();
        match request {
            CtlRequest::Share(args) => {
                let Some(file) = fd.next() else {
                    return Err(Refusal::Decode(CtlError::FdMissing(f.op)));
                };
                let uuid = reg.share(ShareRequest {
                    file,
                    size: args.size,
                    read_only: args.read_only,
                    host_only: args.host_only,
                    allowed_vms: args.allowed_vms,
                    owner: format!("host:{}", self.pid),
                })?;
                Ok(Reply::with(CtlUuid { uuid }.as_slice()))
            }
            CtlRequest::List => {
                // At most MAX_PAYLOAD bytes of entries (209,715 buffers); the rest is dropped and
                // logged (docs/control-protocol.md).
                let max = MAX_PAYLOAD as usize / size_of::<BufInfo>();
                let all = reg.list();
                if all.len() > max {
                    if let Some(n) = LIST_CUT.admit() {
                        warn!(
                            "control: LIST truncated to {max} of {} buffers{n}",
                            all.len()
                        );
                    }
                }
                let mut out = Vec::with_capacity(all.len().min(max) * size_of::<BufInfo>());
                for s in all.iter().take(max) {
                    out.extend_from_slice(buf_info(s).as_slice());
                }
                Ok(Reply {
                    payload: out,
                    fd: None,
                })
            }
            CtlRequest::Info(uuid) => {
                let s = reg.info(&uuid).ok_or(RegistryError::NotFound(uuid))?;
                Ok(Reply::with(&info_payload(&s)))
            }
            CtlRequest::Begin {
                span,
                dir,
                timeout_ms,
            } => {
                let stream: &UnixStream = self.stream;
                let range = host_range(&span, dir);
                reg.host_begin_watched(domain, &range, timeout_ms, &|| peer_gone(stream))?;
                Ok(Reply::empty())
            }
            CtlRequest::End { span, dir } => {
                reg.host_end(domain, &host_range(&span, dir))?;
                Ok(Reply::empty())
            }
            CtlRequest::Read(span) => {
                // The decoder bounded `len` by MAX_PAYLOAD.
                let mut data = vec![0u8; span.len as usize];
                reg.host_read(domain, &span.uuid, span.offset, &mut data)?;
                Ok(Reply {
                    payload: data,
                    fd: None,
                })
            }
            CtlRequest::ReadInto { span, fd_offset } => {
                let Some(file) = fd.next() else {
                    return Err(Refusal::Decode(CtlError::FdMissing(f.op)));
                };
                let range = HostRange::read(&span.uuid, span.offset, span.len);
                reg.host_read_into(domain, &range, file, fd_offset)?;
                let resp = PathResp {
                    path: access_path::COPY_INTO_FD.to_le(),
                    reserved: 0,
                    copied: span.len.to_le(),
                };
                Ok(Reply::with(resp.as_slice()))
            }
            CtlRequest::SetTarget => {
                let Some(file) = fd.next() else {
                    return Err(Refusal::Decode(CtlError::FdMissing(f.op)));
                };
                // The old target is unmapped first: one per connection.
                self.target = None;
                self.target = Some(reg.read_target(file)?);
                Ok(Reply::empty())
            }
            CtlRequest::ReadTarget { span, fd_offset } => {
                let Some(target) = &self.target else {
                    return Err(Refusal::Decode(CtlError::NoTarget));
                };
                let range = HostRange::read(&span.uuid, span.offset, span.len);
                reg.host_read_into_target(domain, &range, target, fd_offset)?;
                let resp = PathResp {
                    path: access_path::COPY_INTO_FD.to_le(),
                    reserved: 0,
                    copied: span.len.to_le(),
                };
                Ok(Reply::with(resp.as_slice()))
            }
            CtlRequest::Write { uuid, offset, data } => {
                reg.host_write(domain, &uuid, offset, data)?;
                Ok(Reply::empty())
            }
            CtlRequest::Export(uuid) => {
                let file = reg.export_udmabuf(&uuid)?;
                let resp = PathResp {
                    path: access_path::UDMABUF.to_le(),
                    reserved: 0,
                    copied: 0,
                };
                Ok(Reply {
                    payload: resp.as_slice().to_vec(),
                    fd: Some(file),
                })
            }
            CtlRequest::WaitWrite {
                uuid,
                after,
                timeout_ms,
            } => {
                let generation = reg.wait_write(&uuid, after, timeout_ms)?;
                let resp = Generation {
                    generation: generation.to_le(),
                };
                Ok(Reply::with(resp.as_slice()))
            }
            CtlRequest::Revoke(uuid) => {
                reg.revoke(&uuid)?;
                Ok(Reply::empty())
            }
        }
    }
}

fn host_range(span: &CtlSpan, dir: Direction) -> HostRange {
    HostRange {
        uuid: span.uuid,
        offset: span.offset,
        len: span.len,
        dir,
    }
}
