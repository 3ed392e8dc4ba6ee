// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The client library against the real daemon: sharing, fenced data movement, arbitration
//! between connections, read-only shares, write notification, revocation, READ_INTO, EXPORT.

mod common;

use std::os::unix::fs::FileExt;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{begin_in_thread, status_of, Daemon, PROMPT};
use dmabuf_client::memfd::{memfd, sealed_memfd};
use dmabuf_client::pattern::{fnv1a64, pattern};
use dmabuf_client::{Access, ShareFlags, Status, MAX_PAYLOAD};

const PAGE: u64 = 4096;
const SHORT: Option<Duration> = Some(Duration::from_millis(200));

#[test]
fn shared_memfd_shows_in_list_and_info() {
    let d = Daemon::start();
    let mut a = d.client();
    let size = 3 * PAGE + 5;
    let (uuid, _memfd) = a
        .share_bytes(&pattern(1, 0, size as usize), ShareFlags::default(), &[])
        .unwrap();
    let (ro, _m2) = a
        .share_bytes(
            b"read only",
            ShareFlags {
                read_only: true,
                host_only: true,
            },
            &["vm1", "vm2"],
        )
        .unwrap();
    // Another connection sees both, even after the sharer went away.
    drop(a);
    let mut b = d.client();
    let list = b.list().unwrap();
    assert_eq!(list.len(), 2);
    assert!(list.windows(2).all(|w| w[0].uuid < w[1].uuid), "sorted");
    let i = list.iter().find(|i| i.uuid == uuid).unwrap().clone();
    assert_eq!(i, b.info(&uuid).unwrap());
    assert_eq!(i.size, size);
    assert!(i.owner.starts_with("host:"), "{}", i.owner);
    assert!(i.flags.host_backed && !i.flags.read_only && !i.flags.host_only);
    assert!(!i.flags.revoked);
    assert_eq!((i.importers, i.segments, i.write_generation), (0, 1, 0));
    let r = b.info(&ro).unwrap();
    assert_eq!(r.size, 9);
    assert!(r.flags.read_only && r.flags.host_only && r.flags.host_backed);
    assert_eq!(
        status_of(b.info(&[0x42; 16])),
        Status::NotFound,
        "unknown UUID"
    );
}

#[test]
fn fenced_write_then_read_round_trips_byte_for_byte() {
    let d = Daemon::start();
    let mut c = d.client();
    // Larger than one frame, so reads and writes are split.
    let size = u64::from(MAX_PAYLOAD) + 3 * PAGE + 7;
    let memfd = sealed_memfd("t", size).unwrap();
    let uuid = c.share(&memfd, size, ShareFlags::default(), &[]).unwrap();
    let mut model = vec![0u8; size as usize];

    let mut put = |c: &mut dmabuf_client::Client, off: u64, seed: u32, len: usize| {
        let data = pattern(seed, off, len);
        c.write_fenced(&uuid, off, &data, None).unwrap();
        model[off as usize..off as usize + len].copy_from_slice(&data);
        assert_eq!(c.read_fenced(&uuid, off, len as u64, None).unwrap(), data);
    };
    put(&mut c, 1, 2, 10);
    put(&mut c, PAGE - 1, 3, 2);
    put(&mut c, PAGE + 1, 4, 5000);
    put(&mut c, size - 3, 5, 3);
    put(&mut c, 0, 6, 1);
    put(&mut c, 1001, 7, MAX_PAYLOAD as usize + 99);

    let all = c.read_fenced(&uuid, 0, size, None).unwrap();
    assert_eq!(fnv1a64(&all), fnv1a64(&model));
    assert!(all == model, "whole buffer byte for byte");
    for (off, len) in [(3u64, 1u64), (PAGE - 2, 5), (2 * PAGE + 1, PAGE + 3)] {
        let got = c.read_fenced(&uuid, off, len, None).unwrap();
        assert_eq!(
            got,
            &model[off as usize..(off + len) as usize],
            "{off}+{len}"
        );
    }
    // The origin is the memfd itself: its pages hold what was written.
    let mut head = vec![0u8; 3 * PAGE as usize];
    memfd.read_exact_at(&mut head, 0).unwrap();
    assert_eq!(head, &model[..3 * PAGE as usize]);
    // Each fenced write bumped the generation once per END.
    assert_eq!(c.info(&uuid).unwrap().write_generation, 6);
}

#[test]
fn data_ops_need_a_held_range() {
    let d = Daemon::start();
    let mut c = d.client();
    let (uuid, _m) = c
        .share_bytes(&[7u8; 2 * PAGE as usize], ShareFlags::default(), &[])
        .unwrap();
    assert_eq!(status_of(c.read(&uuid, 0, 10)), Status::NotHeld);
    assert_eq!(status_of(c.write(&uuid, 0, b"x")), Status::NotHeld);
    assert_eq!(
        status_of(c.end(&uuid, 0, 10, Access::Read)),
        Status::NotHeld,
        "end without begin"
    );
    c.begin(&uuid, 0, PAGE, Access::Read, None).unwrap();
    assert_eq!(c.read(&uuid, 10, 20).unwrap(), vec![7u8; 20]);
    assert_eq!(
        status_of(c.read(&uuid, PAGE - 1, 2)),
        Status::NotHeld,
        "partly outside the held range"
    );
    assert_eq!(
        status_of(c.write(&uuid, 0, b"x")),
        Status::NotHeld,
        "read access does not allow writing"
    );
    assert_eq!(
        status_of(c.end(&uuid, 0, PAGE, Access::Write)),
        Status::NotHeld,
        "direction differs"
    );
    assert_eq!(
        status_of(c.end(&uuid, 0, PAGE - 1, Access::Read)),
        Status::NotHeld,
        "range differs"
    );
    c.end(&uuid, 0, PAGE, Access::Read).unwrap();
    assert_eq!(status_of(c.read(&uuid, 0, 10)), Status::NotHeld, "ended");

    // A write access allows reading too.
    c.begin(&uuid, PAGE, PAGE, Access::Write, None).unwrap();
    c.write(&uuid, PAGE + 1, b"ab").unwrap();
    assert_eq!(c.read(&uuid, PAGE, 4).unwrap(), vec![7, b'a', b'b', 7]);
    c.end(&uuid, PAGE, PAGE, Access::Write).unwrap();

    // Shapes the daemon refuses.
    assert_eq!(
        status_of(c.begin(&uuid, 0, 0, Access::Read, None)),
        Status::InvalidSize
    );
    assert_eq!(
        status_of(c.begin(&uuid, PAGE, PAGE + 1, Access::Read, None)),
        Status::InvalidSize
    );
    assert_eq!(
        status_of(c.begin(&uuid, u64::MAX, 2, Access::Read, None)),
        Status::InvalidSize
    );
    assert_eq!(
        status_of(c.begin(&[1; 16], 0, 1, Access::Read, None)),
        Status::NotFound
    );
    assert_eq!(status_of(c.read(&uuid, 0, 0)), Status::InvalidSize);
    // Fenced helpers report the first failure and leave nothing held.
    assert_eq!(
        status_of(c.read_fenced(&uuid, PAGE, 2 * PAGE, None)),
        Status::InvalidSize
    );
    let mut other = d.client();
    other
        .begin(&uuid, 0, 2 * PAGE, Access::Write, SHORT)
        .unwrap();
}

#[test]
fn overlapping_access_waits_for_the_holder_and_disjoint_does_not() {
    let d = Daemon::with_sync_timeout(30_000);
    let mut a = d.client();
    let mut b = d.client();
    let (uuid, _m) = a
        .share_bytes(&[0u8; 4 * PAGE as usize], ShareFlags::default(), &[])
        .unwrap();
    a.begin(&uuid, 0, PAGE, Access::Write, None).unwrap();

    // Disjoint: granted at once (a 200 ms bound would otherwise time out).
    b.begin(&uuid, 2 * PAGE, PAGE, Access::Read, SHORT).unwrap();
    b.end(&uuid, 2 * PAGE, PAGE, Access::Read).unwrap();
    b.begin(&uuid, PAGE, PAGE, Access::Write, SHORT).unwrap();
    b.end(&uuid, PAGE, PAGE, Access::Write).unwrap();
    // Overlapping with a short bound: TIMEOUT, and nothing is held afterwards.
    assert_eq!(
        status_of(b.begin(&uuid, 100, 10, Access::Read, SHORT)),
        Status::Timeout
    );
    assert_eq!(status_of(b.read(&uuid, 100, 10)), Status::NotHeld);

    // Overlapping with a long bound: waits until A ends.
    let p = begin_in_thread(b, uuid, 100, 10, Access::Read, None);
    p.started.recv().unwrap();
    thread::sleep(Duration::from_millis(300));
    assert!(
        p.done.try_recv().is_err(),
        "the reader was granted while the writer held the range"
    );
    a.write(&uuid, 100, b"written by A").unwrap();
    let before_end = Instant::now();
    a.end(&uuid, 0, PAGE, Access::Write).unwrap();
    let (s, granted_at) = p.done.recv_timeout(PROMPT).unwrap();
    assert_eq!(s, Status::Ok);
    assert!(granted_at >= before_end);
    let mut b = p.thread.join().unwrap();
    assert_eq!(b.read(&uuid, 100, 10).unwrap(), b"written by");
    // Now B holds read: A's write waits; A's read shares.
    a.begin(&uuid, 0, PAGE, Access::Read, SHORT).unwrap();
    a.end(&uuid, 0, PAGE, Access::Read).unwrap();
    assert_eq!(
        status_of(a.begin(&uuid, 0, PAGE, Access::Write, SHORT)),
        Status::Timeout
    );
    b.end(&uuid, 100, 10, Access::Read).unwrap();
    a.begin(&uuid, 0, PAGE, Access::Write, SHORT).unwrap();
}

#[test]
fn a_closed_connection_releases_what_it_held() {
    let d = Daemon::with_sync_timeout(60_000);
    let mut a = d.client();
    let b = d.client();
    let (uuid, _m) = a
        .share_bytes(&[0u8; 2 * PAGE as usize], ShareFlags::default(), &[])
        .unwrap();
    a.begin(&uuid, 0, PAGE, Access::Write, None).unwrap();
    let p = begin_in_thread(b, uuid, 0, 2 * PAGE, Access::Write, None);
    p.started.recv().unwrap();
    thread::sleep(Duration::from_millis(300));
    assert!(p.done.try_recv().is_err(), "granted while A held write");
    let dropped_at = Instant::now();
    drop(a);
    let (s, granted_at) = p.done.recv_timeout(PROMPT).unwrap();
    assert_eq!(
        s,
        Status::Ok,
        "granted by the hang-up, well before its bound"
    );
    assert!(granted_at - dropped_at < PROMPT);
    let mut b = p.thread.join().unwrap();
    b.write(&uuid, 0, b"B").unwrap();
    b.end(&uuid, 0, 2 * PAGE, Access::Write).unwrap();
    // The buffer outlives the connection that shared it.
    assert_eq!(b.info(&uuid).unwrap().write_generation, 1);
}

#[test]
fn read_only_share_refuses_write_access() {
    let d = Daemon::start();
    let mut c = d.client();
    let (uuid, _m) = c
        .share_bytes(
            b"constant",
            ShareFlags {
                read_only: true,
                host_only: false,
            },
            &[],
        )
        .unwrap();
    assert_eq!(
        status_of(c.begin(&uuid, 0, 8, Access::Write, None)),
        Status::PermissionDenied
    );
    assert_eq!(
        status_of(c.write_fenced(&uuid, 0, b"x", None)),
        Status::PermissionDenied
    );
    assert_eq!(c.read_fenced(&uuid, 0, 8, None).unwrap(), b"constant");

    // An fd the daemon cannot write (opened read-only) makes the share read-only by itself.
    let m = sealed_memfd("ro", PAGE).unwrap();
    m.write_all_at(b"abc", 0).unwrap();
    let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&m));
    let ro = std::fs::File::open(path).unwrap();
    let u2 = c.share(&ro, PAGE, ShareFlags::default(), &[]).unwrap();
    assert!(c.info(&u2).unwrap().flags.read_only);
    assert_eq!(
        status_of(c.begin(&u2, 0, 1, Access::Write, None)),
        Status::PermissionDenied
    );
    assert_eq!(c.read_fenced(&u2, 0, 3, None).unwrap(), b"abc");
}

#[test]
fn wait_write_returns_after_a_write_end_and_times_out_otherwise() {
    let d = Daemon::with_sync_timeout(30_000);
    let mut w = d.client();
    let (uuid, _m) = w
        .share_bytes(&[0u8; PAGE as usize], ShareFlags::default(), &[])
        .unwrap();
    let g0 = w.info(&uuid).unwrap().write_generation;
    assert_eq!(
        status_of(w.wait_write(&uuid, g0, SHORT)),
        Status::Timeout,
        "no write"
    );
    // A read does not count.
    w.read_fenced(&uuid, 0, 1, None).unwrap();
    assert_eq!(status_of(w.wait_write(&uuid, g0, SHORT)), Status::Timeout);

    let (tx, rx) = mpsc::channel();
    let waiter = thread::spawn(move || {
        let r = w.wait_write(&uuid, g0, None);
        tx.send(r.map_err(|e| e.to_string())).unwrap();
        w
    });
    thread::sleep(Duration::from_millis(200));
    let mut other = d.client();
    other.write_fenced(&uuid, 10, b"news", None).unwrap();
    let generation = rx.recv_timeout(PROMPT).unwrap().unwrap();
    assert_eq!(generation, g0 + 1);
    let mut w = waiter.join().unwrap();
    // Already past: returns at once.
    assert_eq!(w.wait_write(&uuid, g0, SHORT).unwrap(), g0 + 1);
    assert_eq!(
        status_of(w.wait_write(&[3; 16], 0, SHORT)),
        Status::NotFound
    );
}

#[test]
fn revoke_fails_waiters_and_forgets_the_buffer() {
    let d = Daemon::with_sync_timeout(60_000);
    let mut owner = d.client();
    // A waiting BEGIN and a WAIT_WRITE must be waiting when REVOKE comes, or they see NOT_FOUND
    // instead; a slow machine may lose that race, so the scenario is retried with more slack.
    for attempt in 1..=4u32 {
        let (uuid, _m) = owner
            .share_bytes(&[0u8; 2 * PAGE as usize], ShareFlags::default(), &[])
            .unwrap();
        let mut holder = d.client();
        holder.begin(&uuid, 0, PAGE, Access::Write, None).unwrap();
        let begin = begin_in_thread(d.client(), uuid, 0, 10, Access::Read, None);
        let mut ww = d.client();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let s = status_of(ww.wait_write(&uuid, 0, None));
            tx.send(s).unwrap();
        });
        begin.started.recv().unwrap();
        thread::sleep(Duration::from_millis(500) * attempt);
        assert!(
            begin.done.try_recv().is_err(),
            "granted while held for writing"
        );
        owner.revoke(&uuid).unwrap();
        let (s_begin, _) = begin.done.recv_timeout(PROMPT).unwrap();
        let s_wait = rx.recv_timeout(PROMPT).unwrap();
        if (s_begin == Status::NotFound || s_wait == Status::NotFound) && attempt < 4 {
            continue;
        }
        assert_eq!(s_begin, Status::Revoked, "the waiting BEGIN");
        assert_eq!(s_wait, Status::Revoked, "WAIT_WRITE");

        assert_eq!(status_of(owner.info(&uuid)), Status::NotFound);
        assert!(owner.list().unwrap().iter().all(|i| i.uuid != uuid));
        assert_eq!(status_of(owner.revoke(&uuid)), Status::NotFound);
        assert_eq!(
            status_of(holder.end(&uuid, 0, PAGE, Access::Write)),
            Status::NotFound
        );
        assert_eq!(
            status_of(holder.begin(&uuid, 0, 1, Access::Read, None)),
            Status::NotFound
        );
        assert_eq!(
            status_of(holder.wait_write(&uuid, 0, None)),
            Status::NotFound
        );
        return;
    }
}

#[test]
fn read_into_copies_into_a_client_memfd() {
    let d = Daemon::start();
    let mut c = d.client();
    let data = pattern(11, 0, 3 * PAGE as usize);
    let (uuid, _m) = c.share_bytes(&data, ShareFlags::default(), &[]).unwrap();
    let target = sealed_memfd("into", 4 * PAGE).unwrap();
    assert_eq!(
        status_of(c.read_into(&uuid, 5, 100, &target, 0)),
        Status::NotHeld
    );
    c.begin(&uuid, 0, 3 * PAGE, Access::Read, None).unwrap();
    // At page 1 of the target.
    assert_eq!(
        c.read_into(&uuid, 5, 2 * PAGE, &target, 1).unwrap(),
        2 * PAGE
    );
    let mut got = vec![0u8; 2 * PAGE as usize];
    target.read_exact_at(&mut got, PAGE).unwrap();
    assert_eq!(got, &data[5..5 + 2 * PAGE as usize]);
    let mut first = vec![1u8; PAGE as usize];
    target.read_exact_at(&mut first, 0).unwrap();
    assert!(
        first.iter().all(|&b| b == 0),
        "bytes before the offset untouched"
    );

    // Targets the daemon refuses.
    assert_eq!(
        status_of(c.read_into(&uuid, 0, PAGE, &target, 4)),
        Status::InvalidSize,
        "past the target's end"
    );
    let unsealed = memfd("unsealed", 4 * PAGE).unwrap();
    assert_eq!(
        status_of(c.read_into(&uuid, 0, PAGE, &unsealed, 0)),
        Status::InvalidRequest
    );
    let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&target));
    let read_only = std::fs::File::open(path).unwrap();
    assert_eq!(
        status_of(c.read_into(&uuid, 0, PAGE, &read_only, 0)),
        Status::PermissionDenied
    );
    c.end(&uuid, 0, 3 * PAGE, Access::Read).unwrap();
}

#[test]
fn read_target_keeps_the_client_memfd_mapped_across_reads() {
    let d = Daemon::start();
    let mut c = d.client();
    let data = pattern(12, 0, 3 * PAGE as usize);
    let (uuid, _m) = c.share_bytes(&data, ShareFlags::default(), &[]).unwrap();
    c.begin(&uuid, 0, 3 * PAGE, Access::Write, None).unwrap();
    assert_eq!(
        status_of(c.read_target(&uuid, 0, PAGE, 0)),
        Status::InvalidRequest,
        "no target set yet"
    );
    let unsealed = memfd("unsealed", 4 * PAGE).unwrap();
    assert_eq!(
        status_of(c.set_read_target(&unsealed)),
        Status::InvalidRequest
    );
    let target = sealed_memfd("target", 4 * PAGE).unwrap();
    c.set_read_target(&target).unwrap();
    // Two reads into the same target; the second sees the bytes written in between.
    assert_eq!(c.read_target(&uuid, 5, 2 * PAGE, 1).unwrap(), 2 * PAGE);
    let mut got = vec![0u8; 2 * PAGE as usize];
    target.read_exact_at(&mut got, PAGE).unwrap();
    assert_eq!(got, &data[5..5 + 2 * PAGE as usize]);
    c.write(&uuid, 5, b"changed").unwrap();
    assert_eq!(c.read_target(&uuid, 5, 7, 0).unwrap(), 7);
    let mut again = [0u8; 7];
    target.read_exact_at(&mut again, 0).unwrap();
    assert_eq!(&again, b"changed");
    assert_eq!(
        status_of(c.read_target(&uuid, 0, 2 * PAGE, 3)),
        Status::InvalidSize,
        "past the target's end"
    );
    // A read-only fd is refused as a target.
    let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&target));
    let read_only = std::fs::File::open(path).unwrap();
    assert_eq!(
        status_of(c.set_read_target(&read_only)),
        Status::PermissionDenied
    );
    c.end(&uuid, 0, 3 * PAGE, Access::Write).unwrap();
}

#[test]
fn export_of_a_host_backed_buffer_is_unsupported() {
    let d = Daemon::start();
    let mut c = d.client();
    let (uuid, _m) = c
        .share_bytes(&[1u8; PAGE as usize], ShareFlags::default(), &[])
        .unwrap();
    assert_eq!(status_of(c.export_udmabuf(&uuid)), Status::Unsupported);
    assert_eq!(status_of(c.export_udmabuf(&[9; 16])), Status::NotFound);
    // The connection stays usable.
    assert_eq!(c.read_fenced(&uuid, 0, 2, None).unwrap(), vec![1, 1]);
}
