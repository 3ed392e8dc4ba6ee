// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The guest requests: CREATE, LOOKUP, ATTACH, SYNC, RELEASE, and what a reset does.

use super::*;
use crate::arbiter::Access;
use crate::registry::buffer::Requester;
use crate::registry::maps::uuid_from;

#[test]
fn create_checks_ram_and_quotas_and_lookup_reports_flags() {
    let reg = registry(small());
    let (a, _) = vm(&reg, "a");
    let (b, _) = vm(&reg, "b");
    let hole = create_with(&reg, &a, &[(0x9f000, 0x2000)], CreateFlags::default());
    assert!(matches!(hole, Err(RegistryError::Segments(_))));
    assert_eq!(status(hole), Status::InvalidAddress);
    let ro = CreateFlags {
        read_only: true,
        host_only: false,
    };
    let u = create_with(&reg, &a, &[(0x100000, PAGE), (0x101000, PAGE)], ro).unwrap();
    assert_eq!((u[6] >> 4, u[8] & 0xc0), (4, 0x80), "version 4, RFC 4122");
    let own = reg.lookup(&a, &u).unwrap();
    assert_eq!(
        (own.size, own.read_only, own.own, own.host_backed),
        (2 * PAGE, false, true, false)
    );
    let other = reg.lookup(&b, &u).unwrap();
    assert!(other.read_only && !other.own);
    assert_eq!(
        reg.info(&u).unwrap().nr_segs,
        1,
        "contiguous pages coalesced"
    );

    // Six runs in total are allowed: 1 + 2 held, and four more would exceed them.
    let scattered = [(0x200000, PAGE), (0x202000, PAGE)];
    create_with(&reg, &a, &scattered, CreateFlags::default()).unwrap();
    let more = [
        (0x300000, PAGE),
        (0x302000, PAGE),
        (0x304000, PAGE),
        (0x306000, PAGE),
    ];
    let over = create_with(&reg, &a, &more, CreateFlags::default());
    assert!(matches!(over, Err(RegistryError::Quota(Quota::Segments))));
    let big = create_with(&reg, &a, &[(0x300000, 15 * PAGE)], CreateFlags::default());
    assert!(matches!(big, Err(RegistryError::Quota(Quota::Bytes))));
    create(&reg, &a, 0x300000, PAGE);
    let fourth = create_with(&reg, &a, &[(0x310000, PAGE)], CreateFlags::default());
    assert!(matches!(fourth, Err(RegistryError::Quota(Quota::Buffers))));
    assert_eq!(status(fourth), Status::QuotaExceeded);
    // A release frees the quota.
    reg.release(&a, &u).unwrap();
    create(&reg, &a, 0x310000, PAGE);
}

#[test]
fn uuids_are_version_4_and_a_failing_source_is_an_error() {
    let u = uuid_from(|b| {
        b.fill(0xff);
        Ok(())
    })
    .unwrap();
    assert_eq!((u[6], u[8]), (0x4f, 0xbf));
    let e = uuid_from(|_| Err(io::Error::from_raw_os_error(libc::ENOSYS))).unwrap_err();
    assert!(matches!(e, RegistryError::Random(_)));
    assert_eq!(e.status(), Status::IoError);
    assert!(
        chain(&e).starts_with("cannot draw a random UUID: "),
        "{}",
        chain(&e)
    );
    let reg = registry(Limits::default());
    let (a, _) = vm(&reg, "a");
    let mut seen: Vec<Uuid> = (0..64)
        .map(|i| create(&reg, &a, 0x100000 + i * PAGE, PAGE))
        .collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 64);
}

#[test]
fn attach_copies_at_fence_points_only_and_write_ends_count() {
    let reg = registry(Limits::default());
    let (a, _) = vm(&reg, "a");
    let (b, _) = vm(&reg, "b");
    write_guest(&a, 0x100000, &[1u8; 8192]);
    let u = create(&reg, &a, 0x100000, 2 * PAGE);
    assert!(matches!(
        attach(&reg, &a, &u, 0x200000, 2 * PAGE),
        Err(RegistryError::AlreadyExists(_))
    ));
    let short = attach(&reg, &b, &u, 0x200000, PAGE);
    assert!(matches!(short, Err(RegistryError::Segments(_))));
    assert_eq!(status(short), Status::InvalidSize);
    attach(&reg, &b, &u, 0x200000, 2 * PAGE).unwrap();
    assert!(matches!(
        attach(&reg, &b, &u, 0x300000, 2 * PAGE),
        Err(RegistryError::AlreadyExists(_))
    ));
    assert_eq!(reg.info(&u).unwrap().importers, 1);
    assert_eq!(
        read_guest(&b, 0x200000, 4),
        [0; 4],
        "nothing copied before a START"
    );

    // START READ of one page copies that page only.
    assert_eq!(
        done(start(&reg, &b, &u, (0, PAGE), Direction::Read)),
        Status::Ok
    );
    assert_eq!(read_guest(&b, 0x200000, 4), [1; 4]);
    assert_eq!(read_guest(&b, 0x201000, 4), [0; 4], "only the range");
    assert_eq!(end(&reg, &b, &u, (0, PAGE), Direction::Read), Status::Ok);
    // A write END takes the copy back and counts a generation; ENDs must match exactly.
    assert_eq!(
        done(start(&reg, &b, &u, (PAGE, PAGE), Direction::ReadWrite)),
        Status::Ok
    );
    write_guest(&b, 0x201000, &[7u8; 4096]);
    assert_eq!(
        end(&reg, &b, &u, (PAGE, PAGE), Direction::Write),
        Status::NotHeld
    );
    assert_eq!(
        read_guest(&a, 0x101000, 4),
        [1; 4],
        "a NOT_HELD END moves nothing"
    );
    assert_eq!(reg.info(&u).unwrap().write_generation, 0);
    assert_eq!(
        end(&reg, &b, &u, (PAGE, PAGE), Direction::ReadWrite),
        Status::Ok
    );
    assert_eq!(read_guest(&a, 0x101000, 4), [7; 4]);
    assert_eq!(reg.info(&u).unwrap().write_generation, 1);
    assert!(reg.stats.copied_bytes.load(Ordering::Relaxed) >= 2 * PAGE);
    // Range and direction checks.
    assert_eq!(
        done(start(&reg, &b, &u, (PAGE, 2 * PAGE), Direction::Read)),
        Status::InvalidSize
    );
    // Releasing the import detaches it; the buffer stays.
    reg.release(&b, &u).unwrap();
    assert_eq!(reg.info(&u).unwrap().importers, 0);
    assert_eq!(status(reg.release(&b, &u)), Status::NotFound);
}

#[test]
fn a_conflicting_start_waits_and_is_granted_by_the_end_that_unblocks_it() {
    let reg = registry(Limits::default());
    let (a, _) = vm(&reg, "a");
    let (b, _) = vm(&reg, "b");
    let u = create(&reg, &a, 0x100000, PAGE);
    attach(&reg, &b, &u, 0x200000, PAGE).unwrap();
    assert_eq!(
        done(start(&reg, &a, &u, (0, PAGE), Direction::Write)),
        Status::Ok
    );
    let (outcome, rx) = sync(
        &reg,
        &b,
        &u,
        (0, 10),
        Direction::Read,
        SyncPhase::Start { timeout_ms: NEVER },
    );
    assert!(matches!(outcome, SyncOutcome::Parked));
    assert_eq!(counts(&reg, &u), (1, 1), "one granted, one waiting");
    assert!(
        rx.try_recv().is_err(),
        "not answered while the write is held"
    );
    write_guest(&a, 0x100000, b"fresh");
    assert_eq!(end(&reg, &a, &u, (0, PAGE), Direction::Write), Status::Ok);
    // The END answered the waiter before it returned, its copy up to date.
    assert_eq!(status(rx.try_recv().unwrap()), Status::Ok);
    assert_eq!(counts(&reg, &u), (1, 0));
    assert_eq!(read_guest(&b, 0x200000, 5), b"fresh");
    // Its own later START does not conflict with its own access.
    assert_eq!(
        done(start(&reg, &b, &u, (0, 10), Direction::Write)),
        Status::Ok
    );
}

#[test]
fn a_waiting_start_times_out_at_its_bound_and_leaves_nothing_held() {
    let reg = registry(Limits {
        sync_timeout: Duration::from_millis(30),
        ..Limits::default()
    });
    let (a, _) = vm(&reg, "a");
    let (b, _) = vm(&reg, "b");
    let u = create(&reg, &a, 0x100000, PAGE);
    attach(&reg, &b, &u, 0x200000, PAGE).unwrap();
    assert_eq!(
        done(start(&reg, &a, &u, (0, 1), Direction::Write)),
        Status::Ok
    );
    // Bounds above the default are reduced to it.
    let (outcome, rx) = sync(
        &reg,
        &b,
        &u,
        (0, 1),
        Direction::Read,
        SyncPhase::Start { timeout_ms: NEVER },
    );
    assert!(matches!(outcome, SyncOutcome::Parked));
    let r = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the timer answers");
    assert!(matches!(r, Err(RegistryError::Timeout)));
    assert_eq!(counts(&reg, &u), (1, 0), "the waiter left");
}

#[test]
fn release_revoke_and_events() {
    let reg = registry(Limits::default());
    let (a, pa) = vm(&reg, "a");
    let (b, pb) = vm(&reg, "b");
    let (c, pc) = vm(&reg, "c");
    let u = create(&reg, &a, 0x100000, PAGE);
    attach(&reg, &b, &u, 0x200000, PAGE).unwrap();
    attach(&reg, &c, &u, 0x200000, PAGE).unwrap();
    assert_eq!(
        done(start(&reg, &b, &u, (0, 1), Direction::Write)),
        Status::Ok
    );
    let (_, waiter) = sync(
        &reg,
        &c,
        &u,
        (0, 1),
        Direction::Read,
        SyncPhase::Start { timeout_ms: NEVER },
    );
    pc.full.store(true, Ordering::Relaxed);
    reg.release(&a, &u).unwrap();
    // The waiter failed, the importers were told (c's queue was full: counted), and a SYNC of
    // an importer answers REVOKED until it releases the UUID.
    assert!(matches!(
        waiter.try_recv().unwrap(),
        Err(RegistryError::Revoked(_))
    ));
    assert_eq!(pb.revoked(), [u]);
    assert!(pc.revoked().is_empty() && pa.revoked().is_empty());
    assert_eq!(reg.stats.dropped_events.load(Ordering::Relaxed), 1);
    assert_eq!(
        done(start(&reg, &b, &u, (0, 1), Direction::Read)),
        Status::Revoked
    );
    assert_eq!(status(reg.lookup(&b, &u)), Status::NotFound);
    reg.release(&b, &u).unwrap();
    assert_eq!(
        done(start(&reg, &b, &u, (0, 1), Direction::Read)),
        Status::NotFound
    );
    assert_eq!(
        status(reg.release(&a, &u)),
        Status::NotFound,
        "a second RELEASE"
    );

    // REVOKE of a guest buffer: the owner is told too and keeps its quota entry.
    let v = create(&reg, &a, 0x100000, PAGE);
    attach(&reg, &b, &v, 0x200000, PAGE).unwrap();
    reg.revoke(&v).unwrap();
    assert_eq!(pa.revoked(), [v]);
    assert_eq!(pb.revoked(), [u, v]);
    assert!(reg.info(&v).is_none());
    assert_eq!(
        done(start(&reg, &a, &v, (0, 1), Direction::Read)),
        Status::Revoked
    );
    reg.release(&a, &v).unwrap();
    assert_eq!(status(reg.revoke(&v)), Status::NotFound);
}

#[test]
fn a_reset_releases_the_domain_and_unblocks_others() {
    let reg = registry(Limits::default());
    let (a, _) = vm(&reg, "a");
    let (b, pb) = vm(&reg, "b");
    let own = create(&reg, &a, 0x100000, PAGE);
    let theirs = create(&reg, &b, 0x100000, PAGE);
    attach(&reg, &a, &theirs, 0x200000, PAGE).unwrap();
    attach(&reg, &b, &own, 0x200000, PAGE).unwrap();
    assert_eq!(
        done(start(&reg, &a, &theirs, (0, 1), Direction::Write)),
        Status::Ok
    );
    let (_, b_waits) = sync(
        &reg,
        &b,
        &theirs,
        (0, 1),
        Direction::Write,
        SyncPhase::Start { timeout_ms: NEVER },
    );
    // a's read does not conflict with its own write, but waits behind b's earlier writer.
    let (_, a_waits) = sync(
        &reg,
        &a,
        &theirs,
        (0, 1),
        Direction::Read,
        SyncPhase::Start { timeout_ms: NEVER },
    );
    assert_eq!(counts(&reg, &theirs), (1, 2));
    reg.reset_domain(a.domain);
    assert!(matches!(
        a_waits.try_recv().unwrap(),
        Err(RegistryError::Cancelled)
    ));
    assert!(
        b_waits.try_recv().unwrap().is_ok(),
        "granted when a's accesses were dropped"
    );
    assert_eq!(counts(&reg, &theirs), (1, 0));
    assert_eq!(
        reg.info(&theirs).unwrap().importers,
        0,
        "a's import is gone"
    );
    assert!(reg.info(&own).is_none(), "a's buffer is destroyed");
    assert_eq!(pb.revoked(), [own]);
    // The domain stays: it may create again.
    create(&reg, &a, 0x100000, PAGE);
    reg.remove_domain(a.domain);
    assert_eq!(
        status(create_with(
            &reg,
            &a,
            &[(0x100000, PAGE)],
            CreateFlags::default()
        )),
        Status::Cancelled
    );
}

#[test]
fn work_that_lands_after_its_vms_reset_is_undone() {
    let reg = registry(Limits::default());
    let (a, _) = vm(&reg, "a");
    let (b, _) = vm(&reg, "b");
    let u = create(&reg, &b, 0x100000, PAGE);
    attach(&reg, &a, &u, 0x200000, PAGE).unwrap();

    // A START whose holdings check came before the reset, and its begin after.
    let (buf, epoch) = reg.held_buffer(&a, &u).unwrap();
    reg.reset_domain(a.domain);
    let access = Access {
        domain: a.domain,
        offset: 0,
        len: 1,
        dir: Direction::Write,
    };
    let outcome = reg.begin(
        &buf,
        Requester::vm(&a, epoch),
        access,
        NEVER,
        Box::new(|_| {}),
    );
    assert!(matches!(
        outcome,
        SyncOutcome::Done(Err(RegistryError::Cancelled))
    ));
    assert_eq!(counts(&reg, &u), (0, 0), "nothing stays held or waiting");

    // The same for an ATTACH whose import lands after the reset.
    let (c, _) = vm(&reg, "c");
    let v = create(&reg, &b, 0x200000, PAGE);
    let buf = reg.buffer(&v).unwrap();
    let epoch = reg.hold_attached(&c, &buf, 1).unwrap();
    reg.reset_domain(c.domain);
    let segs = crate::memory::SegList::build([(0x300000, PAGE)], PAGE, &c.mem.memory()).unwrap();
    assert!(matches!(
        buf.add_import(&c, super::super::buffer::ImportView::Copy(segs), epoch),
        Err(RegistryError::Cancelled)
    ));
    assert_eq!(reg.info(&v).unwrap().importers, 0);
}
