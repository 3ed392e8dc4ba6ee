// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Fuzz driver: arbitrary byte streams on the host control socket.
//!
//! The daemon's real connection code (`vhost_device_dmabuf::control::ControlConnection`, what
//! each of its connection threads runs) serves one end of a Unix socket pair on the fuzz
//! thread, one frame at a time — no accept, no thread per input — over a registry holding a few
//! fixture buffers: a guest-backed
//! one, a host-backed one, a read-only one, and one whose first page another domain holds for
//! writing (so BEGINs wait, briefly: the wait bound is 1 ms). Each input is one connection's byte
//! stream, sent frame by frame: a well-formed frame is sent whole and its answer read before the
//! next (so a later frame can name a buffer an earlier SHARE created); a frame that is cut short
//! or a stray tail is sent as it is, then the write side is shut and whatever the daemon still
//! says is read until it hangs up. Afterwards a new connection must get a valid INFO answered.
//! (The accept loop and the peer-credential check around this code are not fuzzed: they read no
//! byte of the client's.)
//!
//! Every answer is checked against `docs/control-protocol.md`: a well-formed header, a known
//! status that this socket may return at all, an empty payload and no fd unless `OK`, the
//! payload size of each `OK`, `INVALID_REQUEST` for the framing and payload-size errors the
//! document lists (and a hang-up after a bad header), READ/WRITE served only inside an access the
//! connection holds, END only for exactly a held access, and the write generation advanced by
//! nothing but an `OK` write END. No answer may take longer than 10 s.
//!
//! Input format: byte 0 chooses the fd sent with SHARE, READ_INTO and SET_TARGET frames — bits 0-1: none, a
//! sealed memfd, an unsealed memfd, a pipe; bit 2: send it with every frame; bit 3: seal the
//! memfd against writes; bits 4-5: its size (16 KiB, 4 KiB, 1 byte, 0). Then the byte stream.
//! In a frame whose payload starts with a UUID, a first byte below 0xc0 picks a known buffer.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use vhost_device_dmabuf::control::ControlConnection;
use vhost_device_dmabuf::memory::GuestMem;
use vhost_device_dmabuf::registry::{
    GuestPort, HostRange, HostSession, Limits, Registry, ShareRequest, VmHandle,
};
use virtio_dmabuf_proto::control::{op, MAGIC, MAX_PAYLOAD};
use virtio_dmabuf_proto::request::{CreateFlags, CreateRequest};
use virtio_dmabuf_proto::segments::SegmentList;
use virtio_dmabuf_proto::virtio::{buf_flags, Event, Uuid};
use virtio_dmabuf_proto::Status;
use vm_memory::{GuestAddress, GuestMemoryAtomic};
use vmm_sys_util::sock_ctrl_msg::ScmSocket;

/// Longest a single answer may take (the daemon's own bounds are 1 ms here).
const ANSWER_BOUND: Duration = Duration::from_secs(10);

struct NoEvents;

impl GuestPort for NoEvents {
    fn post_event(&self, _event: &Event) -> bool {
        false
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FixtureKind {
    Guest,
    Host,
    ReadOnly,
    Contended,
}

const FIXTURES: [FixtureKind; 4] = [
    FixtureKind::Guest,
    FixtureKind::Host,
    FixtureKind::ReadOnly,
    FixtureKind::Contended,
];

struct World {
    registry: Arc<Registry>,
    vm: Arc<VmHandle>,
    fixtures: Vec<Uuid>,
    holder: Option<HostSession>,
}

/// The pid the connections claim (LIST and INFO name shares `host:<pid>`).
const FUZZ_PID: i32 = 4242;

/// A connection of the daemon's, served on this thread: its client end, and whether the
/// daemon's end still serves.
struct Conn<'a> {
    server: ControlConnection<'a>,
    serving: bool,
}

impl Conn<'_> {
    /// Let the daemon's end read one frame and answer it; once it is done with the stream
    /// (end of stream, a bad header answered, an error) it hangs up, as its thread would.
    fn serve(&mut self) {
        if self.serving && !matches!(self.server.serve_one(), Ok(true)) {
            self.serving = false;
            self.server.hang_up();
        }
    }
}

fn limits() -> Limits {
    Limits {
        max_segments: 64,
        max_buffers: 64,
        max_bytes: 1 << 30,
        max_total_segments: 1024,
        sync_timeout: Duration::from_millis(1),
        cross_vm: true,
        max_host_buffers: 12,
        poll_max: Duration::ZERO,
        shm_size: 0,
        shm_reply_bound: Duration::from_millis(10),
    }
}

fn world() -> MutexGuard<'static, World> {
    static WORLD: OnceLock<Mutex<World>> = OnceLock::new();
    WORLD
        .get_or_init(|| Mutex::new(World::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

impl World {
    fn new() -> World {
        let registry = Registry::new(limits()).expect("registry");
        let mem = GuestMem::from_ranges(&[(GuestAddress(0), 0x100000)]).expect("guest RAM");
        let vm = registry.add_vm("vm1", GuestMemoryAtomic::new(mem), Arc::new(NoEvents));
        let mut w = World {
            registry,
            vm,
            fixtures: Vec::new(),
            holder: None,
        };
        w.fixtures = FIXTURES.iter().map(|k| w.make_fixture(*k)).collect();
        w
    }

    fn make_fixture(&mut self, kind: FixtureKind) -> Uuid {
        let share = |size: u64, flags: u32| {
            let f = dmabuf_client::memfd::sealed_memfd("fuzz-fixture", size).expect("memfd");
            self.registry
                .share(ShareRequest {
                    file: f,
                    size,
                    read_only: flags & buf_flags::READ_ONLY != 0,
                    host_only: flags & buf_flags::HOST_ONLY != 0,
                    allowed_vms: Vec::new(),
                    owner: "host:fuzz".into(),
                })
                .expect("fixture share")
        };
        match kind {
            FixtureKind::Guest => {
                let req = CreateRequest {
                    size: 0x2000,
                    flags: CreateFlags::default(),
                    segments: SegmentList::from_pairs([(0x10000, 0x1000), (0x30000, 0x1000)])
                        .expect("segments"),
                };
                self.registry.create(&self.vm, req).expect("guest fixture")
            }
            FixtureKind::Host => share(0x2000, 0),
            FixtureKind::ReadOnly => share(0x1000, buf_flags::READ_ONLY),
            FixtureKind::Contended => {
                let u = share(0x2000, 0);
                let holder = HostSession::new(&self.registry);
                holder
                    .begin(&HostRange::write(&u, 0, 0x1000), 0)
                    .expect("holding the contended range");
                self.holder = Some(holder);
                u
            }
        }
    }

    /// Revoke every buffer an input shared, then put back the fixtures it revoked (in that
    /// order: an input that filled the host-buffer quota must not leave no room for them).
    fn restore(&mut self) {
        for info in self.registry.list() {
            if !self.fixtures.contains(&info.uuid) {
                self.registry.revoke(&info.uuid).expect("a listed buffer");
            }
        }
        for (i, kind) in FIXTURES.iter().enumerate() {
            if self.registry.info(&self.fixtures[i]).is_none() {
                if *kind == FixtureKind::Guest {
                    // The VM keeps a revoked buffer's quota entry until it releases the UUID.
                    self.registry
                        .release(&self.vm, &self.fixtures[i])
                        .expect("the VM still counts its revoked fixture");
                }
                self.fixtures[i] = self.make_fixture(*kind);
            }
        }
    }

    fn generation(&self, uuid: &Uuid) -> Option<u64> {
        self.registry.info(uuid).map(|i| i.write_generation)
    }
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The fd an input sends with its frames.
fn make_fd(opts: u8) -> Option<OwnedFd> {
    let size = [16 << 10, 4 << 10, 1, 0][usize::from((opts >> 4) & 3)];
    match opts & 3 {
        0 => None,
        1 | 2 => {
            let f = dmabuf_client::memfd::memfd("fuzz-share", size).expect("memfd");
            let mut seals = 0;
            if opts & 3 == 1 {
                seals |= libc::F_SEAL_SHRINK | libc::F_SEAL_GROW;
            }
            if opts & 8 != 0 {
                seals |= libc::F_SEAL_WRITE;
            }
            if seals != 0 {
                // SAFETY: F_ADD_SEALS takes an int and touches no memory; failure is checked.
                let r = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_ADD_SEALS, seals) };
                assert_eq!(r, 0, "sealing a fresh memfd");
            }
            Some(f.into())
        }
        _ => {
            let mut fds = [0; 2];
            // SAFETY: `fds` has room for the two descriptors pipe(2) writes; checked below.
            let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
            assert_eq!(r, 0, "pipe2");
            // SAFETY: both descriptors are fresh and owned by nothing else.
            let (rd, _wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
            Some(rd)
        }
    }
}

/// One answer frame.
#[derive(Debug)]
struct Answer {
    status: Status,
    payload: Vec<u8>,
    fd: Option<File>,
}

/// Read one answer; `None` if the daemon hung up first.
fn read_answer(s: &mut UnixStream) -> Option<Answer> {
    let started = Instant::now();
    let mut hdr = [0u8; 16];
    let (n, fd) = loop {
        match s.recv_with_fd(&mut hdr) {
            Ok(r) => break r,
            Err(e) if e.errno() == libc::EINTR => continue,
            Err(e) if e.errno() == libc::EAGAIN => panic!("no answer within {ANSWER_BOUND:?}"),
            Err(e) if e.errno() == libc::ECONNRESET => return None,
            Err(e) => panic!("receiving an answer: {e}"),
        }
    };
    if n == 0 {
        return None;
    }
    if let Err(e) = s.read_exact(&mut hdr[n..]) {
        panic!("the daemon hung up inside an answer header: {e}");
    }
    let raw = le32(&hdr, 0);
    let status = Status::from_u32(raw).unwrap_or_else(|| panic!("status {raw}"));
    let len = le32(&hdr, 4);
    let has_fd = le32(&hdr, 8);
    assert_eq!(le32(&hdr, 12), 0, "reserved field of an answer");
    assert!(has_fd <= 1, "has_fd {has_fd}");
    assert_eq!(has_fd == 1, fd.is_some(), "has_fd {has_fd} with fd {fd:?}");
    assert!(len <= MAX_PAYLOAD, "answer payload of {len} bytes");
    if status != Status::Ok {
        assert_eq!((len, has_fd), (0, 0), "{status} with a payload or an fd");
    }
    let mut payload = vec![0u8; len as usize];
    s.read_exact(&mut payload)
        .unwrap_or_else(|e| panic!("the daemon hung up inside an answer: {e}"));
    assert!(
        started.elapsed() < ANSWER_BOUND,
        "an answer took {:?}",
        started.elapsed()
    );
    Some(Answer {
        status,
        payload,
        fd,
    })
}

fn send(s: &mut UnixStream, bytes: &[u8], fd: Option<&OwnedFd>) -> bool {
    let mut sent = 0;
    if let Some(fd) = fd {
        if bytes.is_empty() {
            return true;
        }
        match s.send_with_fd(bytes, fd.as_raw_fd()) {
            Ok(n) => sent = n,
            Err(_) => return false,
        }
    }
    s.write_all(&bytes[sent..]).is_ok()
}

/// Read until the daemon hangs up (after the write side was shut).
fn drain(s: &mut UnixStream) {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                panic!("the daemon kept the connection open after the stream ended")
            }
            Err(_) => return,
        }
    }
}

/// Statuses an op may answer at all (`docs/control-protocol.md` section 5).
fn allowed(op: u32, s: Status) -> bool {
    use Status::*;
    let common = matches!(s, Ok | InvalidRequest);
    common
        || match op {
            op::SHARE => matches!(s, InvalidSize | QuotaExceeded | IoError),
            op::LIST => false,
            op::INFO | op::REVOKE => s == NotFound,
            op::BEGIN => matches!(
                s,
                InvalidSize | NotFound | PermissionDenied | Timeout | Revoked
            ),
            // A write END on a read-only buffer: PERMISSION_DENIED, as SYNC_WRITE in any SYNC
            // (device spec 6.6); it cannot match a held access either.
            op::END => matches!(s, InvalidSize | NotFound | NotHeld | PermissionDenied),
            op::READ => matches!(s, InvalidSize | NotFound | NotHeld | IoError),
            op::READ_INTO | op::READ_TARGET | op::WRITE => matches!(
                s,
                InvalidSize | NotFound | NotHeld | PermissionDenied | IoError
            ),
            // A target that is read-only (opened so, or write-sealed), empty, or cannot be mapped.
            op::SET_TARGET => matches!(s, PermissionDenied | InvalidSize | IoError),
            op::EXPORT => matches!(s, NotFound | PermissionDenied | Unsupported),
            op::WAIT_WRITE => matches!(s, NotFound | Timeout | Revoked),
            _ => false,
        }
}

/// Payload size of an `OK` answer, where it is fixed.
fn ok_payload(op: u32, req: &[u8]) -> Option<usize> {
    match op {
        op::SHARE | op::READ_INTO | op::READ_TARGET | op::EXPORT => Some(16),
        op::SET_TARGET => Some(0),
        op::INFO => Some(80),
        op::BEGIN | op::END | op::WRITE | op::REVOKE => Some(0),
        op::WAIT_WRITE => Some(8),
        op::READ => Some(le64(req, 24) as usize),
        _ => None,
    }
}

/// What the framing and payload-size rules alone decide (before any buffer is looked at).
fn framing_verdict(op: u32, p: &[u8], with_fd: bool) -> Option<Status> {
    let takes_fd = matches!(op, op::SHARE | op::READ_INTO | op::SET_TARGET);
    let invalid = Some(Status::InvalidRequest);
    if !(op::SHARE..=op::READ_TARGET).contains(&op) || with_fd != takes_fd {
        return invalid;
    }
    let size_ok = match op {
        op::SHARE => {
            p.len() >= 16 && {
                let n = le32(p, 12);
                n <= 64 && p.len() == 16 + n as usize * 32
            }
        }
        op::LIST | op::SET_TARGET => p.is_empty(),
        op::INFO | op::EXPORT | op::REVOKE => p.len() == 16,
        op::BEGIN | op::END | op::READ | op::READ_INTO | op::READ_TARGET => p.len() == 40,
        op::WRITE => p.len() >= 40,
        _ => p.len() == 32,
    };
    if !size_ok {
        return invalid;
    }
    let (flags, arg) = if p.len() >= 40 {
        (le32(p, 32), le32(p, 36))
    } else {
        (0, 0)
    };
    match op {
        op::BEGIN | op::END if flags == 0 || flags & !3 != 0 => invalid,
        op::END if arg != 0 => invalid,
        op::READ | op::WRITE if flags != 0 || arg != 0 => invalid,
        op::READ_INTO | op::READ_TARGET if flags != 0 => invalid,
        op::READ if le64(p, 24) == 0 || le64(p, 24) > u64::from(MAX_PAYLOAD) => {
            Some(Status::InvalidSize)
        }
        op::WRITE if le64(p, 24) == 0 || le64(p, 24) != (p.len() - 40) as u64 => {
            Some(Status::InvalidSize)
        }
        _ => None,
    }
}

/// An access this connection holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Held {
    uuid: Uuid,
    offset: u64,
    len: u64,
    write: bool,
}

/// Run one input.
pub fn run(data: &[u8]) {
    let Some((&opts, mut stream)) = data.split_first() else {
        return;
    };
    let mut w = world();
    let fd = make_fd(opts);
    let registry = w.registry.clone();
    let (mut s, mut server) = UnixStream::pair().expect("socket pair");
    s.set_read_timeout(Some(ANSWER_BOUND)).expect("timeout");
    s.set_write_timeout(Some(ANSWER_BOUND)).expect("timeout");
    let domain = registry.add_host_domain();
    let mut conn = Conn {
        server: ControlConnection::new(&registry, domain, FUZZ_PID, &mut server),
        serving: true,
    };
    let mut known = w.fixtures.clone();
    let mut held: Vec<Held> = Vec::new();
    let mut open = true;

    while open && !stream.is_empty() {
        if stream.len() < 16 {
            let _ = send(&mut s, stream, None);
            break;
        }
        let hdr = &stream[..16];
        let (magic, opcode, len, reserved) =
            (le32(hdr, 0), le32(hdr, 4), le32(hdr, 8), le32(hdr, 12));
        let header_ok = magic == MAGIC && reserved == 0 && len <= MAX_PAYLOAD + 64;
        let take = if header_ok { len as usize } else { 0 };
        if take > stream.len() - 16 {
            // Cut short: the rest of the stream, then the daemon sees the end.
            let _ = send(&mut s, stream, None);
            break;
        }
        let mut frame = stream[..16 + take].to_vec();
        stream = &stream[16 + take..];
        let takes_uuid = matches!(
            opcode,
            op::INFO
                | op::BEGIN
                | op::END
                | op::READ
                | op::READ_INTO
                | op::READ_TARGET
                | op::WRITE
                | op::EXPORT
                | op::WAIT_WRITE
                | op::REVOKE
        );
        if header_ok && takes_uuid && take >= 16 && frame[16] < 0xc0 {
            let pick = known[usize::from(frame[16]) % known.len()];
            frame[16..32].copy_from_slice(&pick);
        }
        let with_fd = fd.is_some()
            && (opts & 4 != 0 || matches!(opcode, op::SHARE | op::READ_INTO | op::SET_TARGET));
        let p = frame[16..].to_vec();
        let uuid: Option<Uuid> = (p.len() >= 16).then(|| p[..16].try_into().expect("16 bytes"));
        let generation_before = uuid.and_then(|u| w.generation(&u));
        if !send(&mut s, &frame, fd.as_ref().filter(|_| with_fd)) {
            // The daemon hung up (it may have said why).
            let _ = read_answer(&mut s);
            open = false;
            continue;
        }
        conn.serve();
        let Some(a) = read_answer(&mut s) else {
            panic!("op {opcode}: the daemon hung up without an answer");
        };
        let what = format!("op {opcode} ({} payload bytes, fd {with_fd})", p.len());
        if !header_ok {
            assert_eq!(a.status, Status::InvalidRequest, "{what}: bad header");
            assert!(
                read_answer(&mut s).is_none(),
                "{what}: still open after a bad header"
            );
            open = false;
            continue;
        }
        assert!(allowed(opcode, a.status), "{what}: answered {}", a.status);
        if let Some(v) = framing_verdict(opcode, &p, with_fd) {
            assert_eq!(a.status, v, "{what}");
            continue;
        }
        if a.status == Status::Ok {
            if let Some(n) = ok_payload(opcode, &p) {
                assert_eq!(a.payload.len(), n, "{what}: OK payload");
            }
            assert_eq!(a.fd.is_some(), opcode == op::EXPORT, "{what}: fd");
        }
        let range = |p: &[u8]| Held {
            uuid: p[..16].try_into().expect("16 bytes"),
            offset: le64(p, 16),
            len: le64(p, 24),
            write: le32(p, 32) & 2 != 0,
        };
        let covered = |h: &[Held], r: &Held, write: bool| {
            h.iter().any(|x| {
                x.uuid == r.uuid
                    && x.offset <= r.offset
                    && r.offset
                        .checked_add(r.len)
                        .is_some_and(|e| e <= x.offset + x.len)
                    && (x.write || !write)
            })
        };
        match (opcode, a.status) {
            (op::SHARE, Status::Ok) => known.push(a.payload[..16].try_into().expect("uuid")),
            (op::LIST, Status::Ok) => assert_eq!(a.payload.len() % 80, 0, "{what}"),
            (op::INFO, Status::Ok) => assert_eq!(&a.payload[..16], &p[..16], "{what}"),
            (op::BEGIN, Status::Ok) => held.push(range(&p)),
            (op::END, s) => {
                let r = range(&p);
                let pos = held.iter().position(|h| *h == r);
                match (s, pos) {
                    (Status::Ok, Some(i)) => {
                        held.swap_remove(i);
                    }
                    (Status::Ok, None) => panic!("{what}: END of an access not held"),
                    (Status::NotHeld, Some(_)) => panic!("{what}: NOT_HELD for a held access"),
                    _ => {}
                }
            }
            (op::READ | op::READ_INTO | op::READ_TARGET, Status::Ok) => {
                assert!(
                    covered(&held, &range(&p), false),
                    "{what}: served outside an access"
                );
            }
            (op::WRITE, Status::Ok) => {
                assert!(
                    covered(&held, &range(&p), true),
                    "{what}: served outside a write access"
                );
            }
            (op::READ | op::WRITE, Status::NotHeld) => {
                assert!(
                    !covered(&held, &range(&p), opcode == op::WRITE),
                    "{what}: NOT_HELD inside a held access"
                );
            }
            (op::REVOKE, Status::Ok) => {
                let u = uuid.expect("a REVOKE names a UUID");
                held.retain(|h| h.uuid != u);
            }
            _ => {}
        }
        // The write generation moves only with an OK write END.
        if let (Some(before), Some(u)) = (generation_before, uuid) {
            let after = w.generation(&u).unwrap_or(before);
            let write_end = opcode == op::END && a.status == Status::Ok && range(&p).write;
            assert_eq!(
                after != before,
                write_end,
                "{what}: generation {before} -> {after}"
            );
        }
    }
    if open {
        let _ = s.shutdown(std::net::Shutdown::Write);
        // The daemon reads what is left (a frame cut short, a stray tail) up to the end.
        while conn.serving {
            conn.serve();
        }
        drain(&mut s);
    }
    drop(conn);
    drop(s);
    // As the daemon's thread does when its connection ends.
    registry.remove_domain(domain);

    // A new connection's valid request is served.
    let mut info = Vec::with_capacity(32);
    for v in [MAGIC, op::INFO, 16, 0] {
        info.extend_from_slice(&v.to_le_bytes());
    }
    info.extend_from_slice(&w.fixtures[1]);
    let (mut probe, mut probe_server) = UnixStream::pair().expect("socket pair");
    probe.set_read_timeout(Some(ANSWER_BOUND)).expect("timeout");
    let probe_domain = registry.add_host_domain();
    let mut pc = ControlConnection::new(&registry, probe_domain, FUZZ_PID, &mut probe_server);
    assert!(send(&mut probe, &info, None), "sending the probe");
    assert!(
        matches!(pc.serve_one(), Ok(true)),
        "the probe was not served"
    );
    drop(pc);
    registry.remove_domain(probe_domain);
    match read_answer(&mut probe) {
        Some(a) if a.status == Status::Ok && a.payload.len() == 80 => {}
        // The input revoked the fixture.
        Some(a) if a.status == Status::NotFound => {}
        other => panic!("the daemon no longer serves: {other:?}"),
    }
    w.restore();
}
