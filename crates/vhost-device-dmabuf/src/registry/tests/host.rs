// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Host operations: shares and who sees them, sessions, the control socket's data paths,
//! WAIT_WRITE, and completions delivered outside every registry lock.

use super::*;

#[test]
fn visibility_follows_flags_policy_and_access_lists() {
    let reg = registry(Limits::default());
    let (a, _) = vm(&reg, "a");
    let (b, _) = vm(&reg, "b");
    let host_only = CreateFlags {
        read_only: false,
        host_only: true,
    };
    let h = create_with(&reg, &a, &[(0x100000, PAGE)], host_only).unwrap();
    assert!(matches!(
        reg.lookup(&b, &h),
        Err(RegistryError::NotFound(_))
    ));
    assert!(matches!(
        attach(&reg, &b, &h, 0x100000, PAGE),
        Err(RegistryError::NotFound(_))
    ));
    assert!(reg.lookup(&a, &h).is_ok(), "the owner always sees it");
    assert!(reg.info(&h).unwrap().host_only);

    let share = |allowed: Vec<String>, host_only: bool| {
        reg.share(ShareRequest {
            file: sealed_memfd("t", PAGE).unwrap(),
            size: PAGE,
            read_only: false,
            host_only,
            allowed_vms: allowed,
            owner: "host:1".into(),
        })
        .unwrap()
    };
    let only_b = share(vec!["b".into()], false);
    assert!(matches!(
        reg.lookup(&a, &only_b),
        Err(RegistryError::NotFound(_))
    ));
    assert!(reg.lookup(&b, &only_b).unwrap().host_backed);
    let none = share(Vec::new(), true);
    assert!(reg.lookup(&a, &none).is_err() && reg.lookup(&b, &none).is_err());
    let all = share(Vec::new(), false);
    assert!(reg.lookup(&a, &all).is_ok() && reg.lookup(&b, &all).is_ok());

    let strict = registry(Limits {
        cross_vm: false,
        ..Limits::default()
    });
    let (c, _) = vm(&strict, "c");
    let (d, _) = vm(&strict, "d");
    let u = create(&strict, &c, 0x100000, PAGE);
    assert!(matches!(
        strict.lookup(&d, &u),
        Err(RegistryError::NotFound(_))
    ));
}

#[test]
fn host_shares_sessions_and_data_paths() {
    let reg = registry(Limits {
        max_host_buffers: 2,
        ..Limits::default()
    });
    let (a, _) = vm(&reg, "a");
    let file = sealed_memfd_with("t", b"0123456789").unwrap();
    let share = |file: std::fs::File, size: u64| {
        reg.share(ShareRequest {
            file,
            size,
            read_only: false,
            host_only: false,
            allowed_vms: Vec::new(),
            owner: "host:7".into(),
        })
    };
    assert_eq!(
        status(share(file.try_clone().unwrap(), 11)),
        Status::InvalidSize
    );
    assert_eq!(
        status(share(memfd("u", 10).unwrap(), 10)),
        Status::InvalidRequest,
        "unsealed"
    );
    let u = share(file.try_clone().unwrap(), 10).unwrap();
    let s = reg.info(&u).unwrap();
    assert_eq!(
        (s.owner.as_str(), s.host_backed, s.nr_segs),
        ("host:7", true, 1)
    );

    let session = HostSession::new(&reg);
    let first = HostRange::read(&u, 0, 4);
    assert_eq!(status(session.with_range(&first, |_| ())), Status::NotHeld);
    session.begin(&first, 0).unwrap();
    let seen = session
        .with_range(&first, |s| {
            let mut v = vec![0u8; 4];
            s[0].copy_to(&mut v[..]);
            v
        })
        .unwrap();
    assert_eq!(seen, b"0123");
    assert_eq!(
        status(session.with_range(&HostRange::write(&u, 0, 4), |_| ())),
        Status::NotHeld
    );
    // A guest's write START waits for the session's read.
    let copy = 0x100000;
    attach(&reg, &a, &u, copy, 10).unwrap();
    let (outcome, rx) = sync(
        &reg,
        &a,
        &u,
        (2, 2),
        Direction::Write,
        SyncPhase::Start { timeout_ms: NEVER },
    );
    assert!(matches!(outcome, SyncOutcome::Parked));
    drop(session);
    assert!(
        rx.try_recv().unwrap().is_ok(),
        "a dropped session releases its accesses"
    );
    assert_eq!(
        read_guest(&a, copy, 10),
        [0, 0, b'2', b'3', 0, 0, 0, 0, 0, 0],
        "the range only"
    );
    write_guest(&a, copy + 2, b"AB");
    assert_eq!(end(&reg, &a, &u, (2, 2), Direction::Write), Status::Ok);

    // The control socket's data paths on another domain.
    let d = reg.add_host_domain();
    let mut out = [0u8; 10];
    assert_eq!(status(reg.host_read(d, &u, 0, &mut out)), Status::NotHeld);
    reg.host_begin(d, &HostRange::write(&u, 0, 10), 0).unwrap();
    reg.host_read(d, &u, 0, &mut out).unwrap();
    assert_eq!(&out, b"01AB456789");
    reg.host_write(d, &u, 8, b"yz").unwrap();
    let target = sealed_memfd("target", 2 * PAGE).unwrap();
    reg.host_read_into(
        d,
        &HostRange::read(&u, 0, 10),
        target.try_clone().unwrap(),
        PAGE,
    )
    .unwrap();
    let mut back = [0u8; 10];
    std::os::unix::fs::FileExt::read_exact_at(&target, &mut back, PAGE).unwrap();
    assert_eq!(&back, b"01AB4567yz");
    assert_eq!(
        status(reg.host_end(d, &HostRange::read(&u, 0, 10))),
        Status::NotHeld
    );
    reg.host_end(d, &HostRange::write(&u, 0, 10)).unwrap();
    assert_eq!(
        reg.info(&u).unwrap().write_generation,
        2,
        "the guest's and the host's"
    );
    assert_eq!(
        status(reg.export_udmabuf(&u)),
        Status::Unsupported,
        "host-backed"
    );

    // The daemon's count of host shares.
    share(sealed_memfd("t", 1).unwrap(), 1).unwrap();
    assert_eq!(
        status(share(sealed_memfd("t", 1).unwrap(), 1)),
        Status::QuotaExceeded
    );
    reg.revoke(&u).unwrap();
    share(sealed_memfd("t", 1).unwrap(), 1).unwrap();
}

#[test]
fn read_only_shares_refuse_writes_to_everyone() {
    let reg = registry(Limits::default());
    let f = sealed_memfd("t", PAGE).unwrap();
    let req = |read_only| ShareRequest {
        file: f.try_clone().unwrap(),
        size: PAGE,
        read_only,
        host_only: false,
        allowed_vms: Vec::new(),
        owner: "host:1".into(),
    };
    let u = reg.share(req(true)).unwrap();
    let d = reg.add_host_domain();
    let w = HostRange::write(&u, 0, 1);
    assert!(matches!(
        reg.host_begin(d, &w, 0),
        Err(RegistryError::ReadOnly(_))
    ));
    assert_eq!(status(reg.host_end(d, &w)), Status::PermissionDenied);
    assert_eq!(
        status(reg.host_write(d, &u, 0, b"x")),
        Status::PermissionDenied
    );
    assert!(reg.info(&u).unwrap().read_only);
    // A read-only fd makes the share read-only whatever it asked.
    let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&f));
    let ro = std::fs::File::open(path).unwrap();
    let v = reg
        .share(ShareRequest {
            file: ro,
            ..req(false)
        })
        .unwrap();
    assert!(reg.info(&v).unwrap().read_only);
}

#[test]
fn wait_write_wakes_on_a_write_end() {
    let reg = registry(Limits::default());
    let (a, _) = vm(&reg, "a");
    let u = create(&reg, &a, 0x100000, PAGE);
    assert_eq!(status(reg.wait_write(&u, 0, 1)), Status::Timeout);
    // The waiters look the buffer up first: what they see does not depend on when they run.
    let buf = reg.buffer(&u).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let waiter = {
        let buf = buf.clone();
        thread::spawn(move || buf.wait_write(0, deadline))
    };
    assert_eq!(
        done(start(&reg, &a, &u, (0, 1), Direction::Read)),
        Status::Ok
    );
    assert_eq!(end(&reg, &a, &u, (0, 1), Direction::Read), Status::Ok);
    assert_eq!(
        done(start(&reg, &a, &u, (0, 1), Direction::Write)),
        Status::Ok
    );
    assert_eq!(end(&reg, &a, &u, (0, 1), Direction::Write), Status::Ok);
    assert_eq!(
        waiter.join().unwrap().unwrap(),
        1,
        "woken by the write END only"
    );
    // A revoke wakes a waiter with REVOKED.
    let waiter = thread::spawn(move || buf.wait_write(1, deadline));
    reg.revoke(&u).unwrap();
    assert_eq!(status(waiter.join().unwrap()), Status::Revoked);
}

#[test]
fn completions_run_with_no_registry_lock_held() {
    let reg = registry(Limits::default());
    let (a, _) = vm(&reg, "a");
    let u = create(&reg, &a, 0x100000, PAGE);
    let d = reg.add_host_domain();
    reg.host_begin(d, &HostRange::write(&u, 0, 1), 0).unwrap();
    let (tx, rx) = mpsc::channel();
    let weak = Arc::downgrade(&reg);
    let req = SyncRequest {
        uuid: u,
        offset: 0,
        len: 1,
        dir: Direction::Read,
        phase: SyncPhase::Start { timeout_ms: NEVER },
    };
    // The completion reads the registry: under `inner` or the buffer's `state` it would
    // deadlock, and the END below would never return.
    let outcome = reg.guest_sync(
        &a,
        &req,
        Box::new(move |r| {
            let listed = weak.upgrade().map(|reg| reg.list().len());
            let _ = tx.send((r.is_ok(), listed));
        }),
    );
    assert!(matches!(outcome, SyncOutcome::Parked));
    let ender = {
        let reg = reg.clone();
        thread::spawn(move || reg.host_end(d, &HostRange::write(&u, 0, 1)))
    };
    let got = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("no deadlock");
    assert_eq!(got, (true, Some(1)));
    ender.join().unwrap().unwrap();
}
