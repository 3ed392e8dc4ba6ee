// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Hostile host clients: fds the daemon must refuse, malformed frames, clients that vanish.
//! After each, the daemon must keep serving.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::{Duration, Instant};

use common::{begin_in_thread, status_of, Daemon, PROMPT};
use dmabuf_client::memfd::{memfd, sealed_memfd};
use dmabuf_client::{Access, Client, ShareFlags, Status};
use virtio_dmabuf_proto::control::{
    op, CtlRange, CtlReqHdr, CtlUuid, ShareReq, MAGIC, MAX_PAYLOAD, NAME_LEN,
};
use vm_memory::ByteValued;

const PAGE: u64 = 4096;

fn hdr(magic: u32, op: u32, len: u32, reserved: u32) -> Vec<u8> {
    CtlReqHdr {
        magic: magic.to_le(),
        op: op.to_le(),
        len: len.to_le(),
        reserved: reserved.to_le(),
    }
    .as_slice()
    .to_vec()
}

fn share_req(size: u64, flags: u32, nr: u32) -> Vec<u8> {
    ShareReq {
        size: size.to_le(),
        flags: flags.to_le(),
        nr_allowed: nr.to_le(),
    }
    .as_slice()
    .to_vec()
}

/// Read one response header from a raw stream: (status, payload length).
fn raw_reply(s: &mut UnixStream) -> Option<(u32, u32)> {
    let mut h = [0u8; 16];
    s.read_exact(&mut h).ok()?;
    let status = u32::from_le_bytes(h[0..4].try_into().unwrap());
    let len = u32::from_le_bytes(h[4..8].try_into().unwrap());
    let mut payload = vec![0u8; len as usize];
    s.read_exact(&mut payload).ok()?;
    Some((status, len))
}

/// Whether the daemon hung up (EOF) within the bound.
fn hung_up(s: &mut UnixStream) -> bool {
    s.set_read_timeout(Some(PROMPT)).unwrap();
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(0))
}

fn raw(d: &Daemon) -> UnixStream {
    let s = UnixStream::connect(&d.ctl).unwrap();
    s.set_read_timeout(Some(PROMPT)).unwrap();
    s
}

#[test]
fn fds_and_sizes_the_daemon_must_refuse() {
    let mut d = Daemon::start();
    let mut c = d.client();
    let none = ShareFlags::default();

    let (pipe_r, _pipe_w) = std::io::pipe().unwrap();
    let pipe = File::from(std::os::fd::OwnedFd::from(pipe_r));
    assert_eq!(
        status_of(c.share(&pipe, 1, none, &[])),
        Status::InvalidRequest,
        "a pipe"
    );
    let dir = File::open(std::env::temp_dir()).unwrap();
    assert_eq!(
        status_of(c.share(&dir, 1, none, &[])),
        Status::InvalidRequest,
        "a directory"
    );
    let plain_path = d.path("plain");
    std::fs::write(&plain_path, [0u8; 4096]).unwrap();
    let plain = File::options()
        .read(true)
        .write(true)
        .open(&plain_path)
        .unwrap();
    assert_eq!(
        status_of(c.share(&plain, 4096, none, &[])),
        Status::InvalidRequest,
        "a plain file can be truncated"
    );
    let unsealed = memfd("unsealed", PAGE).unwrap();
    assert_eq!(
        status_of(c.share(&unsealed, PAGE, none, &[])),
        Status::InvalidRequest,
        "an unsealed memfd"
    );
    // Sealed against growing only: it could still shrink.
    let grow_only = memfd("grow-only", PAGE).unwrap();
    // SAFETY: F_ADD_SEALS with an int argument; the result is checked.
    let r = unsafe { libc::fcntl(grow_only.as_raw_fd(), libc::F_ADD_SEALS, libc::F_SEAL_GROW) };
    assert_eq!(r, 0);
    assert_eq!(
        status_of(c.share(&grow_only, PAGE, none, &[])),
        Status::InvalidRequest,
        "a memfd that may shrink"
    );
    let sealed = sealed_memfd("small", PAGE).unwrap();
    assert_eq!(
        status_of(c.share(&sealed, PAGE + 1, none, &[])),
        Status::InvalidSize,
        "larger than the memfd"
    );
    assert_eq!(
        status_of(c.share(&sealed, 0, none, &[])),
        Status::InvalidSize,
        "size 0"
    );
    assert!(c
        .share(&sealed, "bad name".len() as u64, none, &["bad name"])
        .is_err());

    // Raw SHAREs the library would not send.
    let fd = Some(sealed.as_raw_fd());
    let r = c
        .call(op::SHARE, &[&share_req(PAGE, 1 << 5, 0)], fd)
        .unwrap();
    assert_eq!(r.status, Status::InvalidRequest, "undefined flag");
    let r = c.call(op::SHARE, &[&share_req(PAGE, 0, 0)], None).unwrap();
    assert_eq!(r.status, Status::InvalidRequest, "no fd");
    let r = c.call(op::SHARE, &[&share_req(PAGE, 0, 2)], fd).unwrap();
    assert_eq!(
        r.status,
        Status::InvalidRequest,
        "names announced, not sent"
    );
    let names = vec![b'a'; 65 * NAME_LEN];
    let r = c
        .call(op::SHARE, &[&share_req(PAGE, 0, 65), &names], fd)
        .unwrap();
    assert_eq!(r.status, Status::InvalidRequest, "65 names");
    let mut junk = [0xffu8; NAME_LEN];
    junk[4] = 0;
    let r = c
        .call(op::SHARE, &[&share_req(PAGE, 0, 1), &junk], fd)
        .unwrap();
    assert_eq!(r.status, Status::InvalidRequest, "a name that is not text");
    let r = c.call(op::SHARE, &[&[0u8; 8]], fd).unwrap();
    assert_eq!(r.status, Status::InvalidRequest, "truncated SHARE");

    assert!(c.list().unwrap().is_empty(), "nothing was registered");
    // The same connection and new ones are still served, and a valid share works.
    c.share(&sealed, PAGE, none, &["vm1"]).unwrap();
    d.assert_serving();
}

#[test]
fn malformed_frames_get_an_error_or_a_hang_up_and_the_daemon_keeps_serving() {
    let mut d = Daemon::start();

    // Bad magic: INVALID_REQUEST, then the daemon hangs up (the stream is out of step).
    let mut s = raw(&d);
    s.write_all(&hdr(0x1234_5678, op::LIST, 0, 0)).unwrap();
    assert_eq!(raw_reply(&mut s), Some((Status::InvalidRequest as u32, 0)));
    assert!(hung_up(&mut s), "bad magic");

    // Reserved field set.
    let mut s = raw(&d);
    s.write_all(&hdr(MAGIC, op::LIST, 0, 1)).unwrap();
    assert_eq!(raw_reply(&mut s), Some((Status::InvalidRequest as u32, 0)));
    assert!(hung_up(&mut s), "reserved");

    // A payload length far beyond the limit is refused before anything is allocated.
    let mut s = raw(&d);
    s.write_all(&hdr(MAGIC, op::WRITE, u32::MAX, 0)).unwrap();
    assert_eq!(raw_reply(&mut s), Some((Status::InvalidRequest as u32, 0)));
    assert!(hung_up(&mut s), "oversized");
    let mut s = raw(&d);
    s.write_all(&hdr(MAGIC, op::WRITE, MAX_PAYLOAD + 65, 0))
        .unwrap();
    assert_eq!(raw_reply(&mut s), Some((Status::InvalidRequest as u32, 0)));

    // Unknown op and wrong payload sizes: INVALID_REQUEST, and the connection goes on.
    let mut c = Client::from_stream(raw(&d));
    for bad_op in [0, 12, 99, u32::MAX] {
        let r = c.call(bad_op, &[], None).unwrap();
        assert_eq!(r.status, Status::InvalidRequest, "op {bad_op}");
    }
    let r = c.call(op::INFO, &[&[0u8; 15]], None).unwrap();
    assert_eq!(r.status, Status::InvalidRequest, "short INFO");
    let r = c.call(op::REVOKE, &[&[0u8; 17]], None).unwrap();
    assert_eq!(r.status, Status::InvalidRequest, "long REVOKE");
    let r = c.call(op::BEGIN, &[&[0u8; 39]], None).unwrap();
    assert_eq!(r.status, Status::InvalidRequest, "short BEGIN");
    let range = CtlRange {
        len: 1u64.to_le(),
        flags: 1 << 2, // END is not a BEGIN flag here
        ..Default::default()
    };
    let r = c.call(op::BEGIN, &[range.as_slice()], None).unwrap();
    assert_eq!(r.status, Status::InvalidRequest, "undefined BEGIN flag");
    let r = c.call(op::WAIT_WRITE, &[&[0u8; 16]], None).unwrap();
    assert_eq!(r.status, Status::InvalidRequest, "short WAIT_WRITE");
    let r = c.call(op::WRITE, &[&[0u8; 20]], None).unwrap();
    assert_ne!(r.status, Status::Ok, "truncated WRITE");
    // An fd where none belongs.
    let m = sealed_memfd("stray", PAGE).unwrap();
    let r = c.call(op::LIST, &[], Some(m.as_raw_fd())).unwrap();
    assert_eq!(r.status, Status::InvalidRequest, "LIST with an fd");
    let r = c
        .call(
            op::EXPORT,
            &[CtlUuid::default().as_slice()],
            Some(m.as_raw_fd()),
        )
        .unwrap();
    assert_eq!(r.status, Status::InvalidRequest, "EXPORT with an fd");
    let r = c.call(op::READ_INTO, &[range.as_slice()], None).unwrap();
    assert_eq!(r.status, Status::InvalidRequest, "READ_INTO without an fd");
    c.list().unwrap();

    // A truncated payload, then close.
    let mut s = raw(&d);
    s.write_all(&hdr(MAGIC, op::INFO, 16, 0)).unwrap();
    s.write_all(&[0u8; 7]).unwrap();
    drop(s);
    // Half a header, then vanish.
    let mut s = raw(&d);
    s.write_all(&MAGIC.to_le_bytes()[..3]).unwrap();
    drop(s);
    // A WRITE promising more data than it sends.
    let mut s = raw(&d);
    s.write_all(&hdr(MAGIC, op::WRITE, 40 + 1000, 0)).unwrap();
    s.write_all(&[0u8; 500]).unwrap();
    drop(s);
    // Connect and leave at once.
    drop(raw(&d));

    d.assert_serving();
    c.list().unwrap();
}

#[test]
fn a_waiter_that_vanishes_leaves_nothing_held() {
    let mut d = Daemon::with_sync_timeout(60_000);
    let mut a = d.client();
    let (uuid, _m) = a
        .share_bytes(&[0u8; PAGE as usize], ShareFlags::default(), &[])
        .unwrap();
    a.begin(&uuid, 0, PAGE, Access::Write, None).unwrap();
    // B sends a BEGIN that must wait, then closes its connection without reading the answer.
    let mut b = raw(&d);
    let req = CtlRange {
        uuid,
        offset: 0,
        len: PAGE.to_le(),
        flags: 2u32.to_le(),
        arg: 0,
    };
    b.write_all(&hdr(MAGIC, op::BEGIN, 40, 0)).unwrap();
    b.write_all(req.as_slice()).unwrap();
    thread::sleep(Duration::from_millis(300));
    drop(b);
    // When A ends, B's BEGIN is granted to a closed connection; the daemon must notice and
    // release it, so C gets the range long before its bound.
    let p = begin_in_thread(d.client(), uuid, 0, PAGE, Access::Write, None);
    p.started.recv().unwrap();
    thread::sleep(Duration::from_millis(100));
    let ended = Instant::now();
    a.end(&uuid, 0, PAGE, Access::Write).unwrap();
    let (s, at) = p.done.recv_timeout(PROMPT).unwrap();
    assert_eq!(s, Status::Ok);
    assert!(at - ended < PROMPT);
    drop(p.thread.join().unwrap());
    d.assert_serving();
}

#[test]
fn too_many_clients_are_refused_and_the_daemon_recovers() {
    let mut d = Daemon::start();
    // MAX_CLIENTS in the daemon is 64. Connect and use clients until one is refused. The
    // readiness probe of `Daemon::start` is a connection too: its server thread may still hold
    // a slot for a moment, so 63 served clients are as right as 64 (and the refusal must come).
    let mut clients: Vec<Client> = Vec::new();
    loop {
        let mut c = d.client();
        match c.list() {
            Ok(_) => clients.push(c),
            Err(e) => {
                assert_eq!(status_of::<()>(Err(e)), Status::QuotaExceeded);
                break;
            }
        }
        assert!(clients.len() <= 64, "more than 64 clients served");
    }
    assert!(
        clients.len() >= 63,
        "refused after only {} clients",
        clients.len()
    );
    clients.clear();
    let deadline = Instant::now() + PROMPT;
    loop {
        if d.client().list().is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "slots not freed after clients left"
        );
        thread::sleep(Duration::from_millis(50));
    }
    d.assert_serving();
}

/// Regression: a client that vanishes while its BEGIN waits must not keep its place in the
/// queue (device-spec section 7); later compatible requests are granted at once.
#[test]
fn a_client_vanishing_while_its_begin_waits_leaves_no_ghost_waiter() {
    let d = Daemon::with_sync_timeout(60_000);
    let mut owner = d.client();
    let (u, _f) = owner
        .share_bytes(&[0u8; PAGE as usize], ShareFlags::default(), &[])
        .unwrap();
    let mut reader = d.client();
    reader.begin(&u, 0, PAGE, Access::Read, None).unwrap();
    // A writer queues behind the read, then its process dies.
    let mut writer = d.client();
    writer
        .send_request(
            op::BEGIN,
            &[CtlRange {
                uuid: u,
                offset: 0,
                len: PAGE.to_le(),
                flags: 2u32.to_le(),
                arg: 60_000u32.to_le(),
            }
            .as_slice()],
            None,
        )
        .unwrap();
    thread::sleep(Duration::from_millis(200));
    drop(writer);
    thread::sleep(Duration::from_millis(200));
    // A later reader is compatible with the remaining read: granted promptly, not after 60 s.
    let mut late = d.client();
    let t = Instant::now();
    late.begin(&u, 0, 10, Access::Read, Some(Duration::from_millis(1500)))
        .unwrap();
    assert!(t.elapsed() < Duration::from_millis(1500));
}

/// Regression: host shares are owned by the sharing client's pid, not the daemon's.
#[test]
fn host_share_owner_is_the_client_pid() {
    let d = Daemon::start();
    let mut c = d.client();
    let (u, _f) = c
        .share_bytes(&[1u8; 64], ShareFlags::default(), &[])
        .unwrap();
    assert_eq!(
        c.info(&u).unwrap().owner,
        format!("host:{}", std::process::id())
    );
    assert_ne!(d.pid(), std::process::id());
}

/// Regression: an exported fd is outside the arbiter and writable, so read-only buffers are
/// never exported (checked before looking for /dev/udmabuf).
#[test]
fn read_only_buffers_are_never_exported() {
    let d = Daemon::start();
    let mut c = d.client();
    let flags = ShareFlags {
        read_only: true,
        host_only: false,
    };
    let (u, _f) = c.share_bytes(&[1u8; 4096], flags, &[]).unwrap();
    assert_eq!(status_of(c.export_udmabuf(&u)), Status::PermissionDenied);
}
