// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! `--control-group`: the control socket file is mode 0660 in the group, and the daemon serves
//! peers in the group (primary or supplementary) besides its own uid and root, and nobody else.
//!
//! The clients are threads of this test that drop to another uid and group set with the raw
//! system calls, which change only the calling thread's credentials (the C library's wrappers
//! would change every thread's): the kernel takes a Unix socket peer's credentials, and checks
//! the socket file's mode, with the connecting thread's credentials. That needs root; as any
//! other user the test says so and checks only what it can (the refusal of a bad group).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use dmabuf_client::memfd::sealed_memfd;
use dmabuf_client::{Client, ClientError, ShareFlags};
use dmabuf_harness::DaemonProcess;
use vhost_device_dmabuf::control::{resolve_group, GroupError};
use virtio_dmabuf_proto::Status;

const BIN: &str = env!("CARGO_BIN_EXE_vhost-device-dmabuf");

/// A gid and uids no account on a test machine uses.
const GROUP: u32 = 64_321;
const MEMBER_UID: u32 = 64_322;
const OTHER_UID: u32 = 64_323;

/// What a client running as `uid` (primary group `gid`, supplementary `groups`) got.
#[derive(Debug)]
enum Outcome {
    /// Connected, shared a buffer and listed it.
    Served,
    /// connect(2) failed with this errno (the file's mode).
    ConnectRefused(i32),
    /// The daemon answered this status (its peer check).
    Status(Status),
}

fn as_user(socket: &Path, uid: u32, gid: u32, groups: &[u32]) -> Outcome {
    let socket = socket.to_owned();
    let groups = groups.to_vec();
    std::thread::spawn(move || {
        // SAFETY: raw setgroups/setresgid/setresuid with a valid list of `groups.len()` gids;
        // the raw calls change this thread's credentials only, and this thread does nothing but
        // the client's work afterwards.
        let r = unsafe {
            libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) == 0
                && libc::syscall(libc::SYS_setresgid, gid, gid, gid) == 0
                && libc::syscall(libc::SYS_setresuid, uid, uid, uid) == 0
        };
        assert!(
            r,
            "dropping to uid {uid}: {}",
            std::io::Error::last_os_error()
        );
        let mut c = match Client::connect(&socket) {
            Ok(c) => c,
            Err(ClientError::Connect(_, e)) => {
                return Outcome::ConnectRefused(e.raw_os_error().unwrap_or(0))
            }
            Err(e) => panic!("{e}"),
        };
        let f = sealed_memfd("group-test", 4096).unwrap();
        match c.share(&f, 4096, ShareFlags::default(), &[]) {
            Ok(u) => {
                assert!(c.list().unwrap().iter().any(|b| b.uuid == u));
                c.revoke(&u).unwrap();
                Outcome::Served
            }
            Err(ClientError::Status(s)) => Outcome::Status(s),
            Err(e) => panic!("uid {uid}: {e}"),
        }
    })
    .join()
    .unwrap()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn members_of_the_control_group_are_served_and_others_are_not() {
    if !is_root() {
        eprintln!("SKIPPED: needs root (clients of other uids); run `make test` as root");
        return;
    }
    let group = GROUP.to_string();
    let mut d =
        DaemonProcess::spawn(Path::new(BIN), &["vm1"], &["--control-group", &group]).unwrap();
    let ctl: PathBuf = d.control_socket();
    let meta = std::fs::metadata(&ctl).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), GROUP);

    // A supplementary member, a primary member: served.
    assert!(matches!(
        as_user(&ctl, MEMBER_UID, MEMBER_UID, &[GROUP]),
        Outcome::Served
    ));
    assert!(matches!(
        as_user(&ctl, MEMBER_UID, GROUP, &[]),
        Outcome::Served
    ));
    // Anyone else: the file's mode stops them.
    match as_user(&ctl, OTHER_UID, OTHER_UID, &[]) {
        Outcome::ConnectRefused(e) => assert_eq!(e, libc::EACCES),
        o => panic!("a non-member got {o:?}"),
    }
    // And the daemon itself refuses them when the file's mode does not (opened up by hand).
    std::fs::set_permissions(&ctl, std::fs::Permissions::from_mode(0o666)).unwrap();
    match as_user(&ctl, OTHER_UID, OTHER_UID, &[]) {
        Outcome::Status(s) => assert_eq!(s, Status::PermissionDenied),
        o => panic!("a non-member got {o:?}"),
    }
    // Root still is served.
    let mut c = Client::connect(&ctl).unwrap();
    assert!(c.list().unwrap().is_empty());
    assert_eq!(
        d.signal(libc::SIGTERM, std::time::Duration::from_secs(10)),
        Some(0)
    );
    assert!(!ctl.exists());
}

#[test]
fn without_a_control_group_only_the_daemons_uid_and_root_are_served() {
    if !is_root() {
        eprintln!("SKIPPED: needs root (clients of other uids); run `make test` as root");
        return;
    }
    let d = DaemonProcess::spawn(Path::new(BIN), &["vm1"], &[]).unwrap();
    let ctl = d.control_socket();
    let meta = std::fs::metadata(&ctl).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    std::fs::set_permissions(&ctl, std::fs::Permissions::from_mode(0o666)).unwrap();
    // A member of the group a --control-group would name is nobody special without it.
    match as_user(&ctl, MEMBER_UID, GROUP, &[GROUP]) {
        Outcome::Status(s) => assert_eq!(s, Status::PermissionDenied),
        o => panic!("got {o:?}"),
    }
}

#[test]
fn group_names_resolve_and_bad_ones_are_refused_before_anything_is_bound() {
    assert_eq!(resolve_group("root").unwrap(), 0);
    assert_eq!(resolve_group("4242").unwrap(), 4242);
    assert!(matches!(
        resolve_group("no-such-group-dmabuf"),
        Err(GroupError::Unknown(_))
    ));
    assert!(matches!(resolve_group("a\0b"), Err(GroupError::BadName(_))));
    let dir = std::env::temp_dir().join(format!("dmabuf-ctlgroup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(BIN)
        .arg("--socket")
        .arg(dir.join("vm1.sock"))
        .arg("--control-socket")
        .arg(dir.join("control.sock"))
        .args(["--control-group", "no-such-group-dmabuf"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--control-group: no group named \"no-such-group-dmabuf\""),
        "{err}"
    );
    assert!(!dir.join("vm1.sock").exists() && !dir.join("control.sock").exists());
    // Without --control-socket the option means nothing: a usage error.
    let out = Command::new(BIN)
        .arg("--socket")
        .arg(dir.join("vm1.sock"))
        .args(["--control-group", "root"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_control_group_the_namespace_sandbox_would_hide_is_refused() {
    use std::os::unix::process::CommandExt;
    if !is_root() {
        eprintln!("SKIPPED: needs root (runs the daemon as another uid)");
        return;
    }
    // Not root, in the namespace sandbox, the group not its own: it could not see the group.
    let dir = std::env::temp_dir().join(format!("dmabuf-ctlgroup-ns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let group = GROUP.to_string();
    let run = |gid: u32| {
        Command::new(BIN)
            .arg("--socket")
            .arg(dir.join("vm1.sock"))
            .arg("--control-socket")
            .arg(dir.join("control.sock"))
            .args(["--control-group", &group, "--sandbox", "namespace"])
            .uid(MEMBER_UID)
            .gid(gid)
            .output()
    };
    let out = match run(MEMBER_UID) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            eprintln!("SKIPPED: uid {MEMBER_UID} cannot execute {BIN}: {e}");
            return;
        }
        r => r.unwrap(),
    };
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("cannot see which peers are in group {GROUP}")),
        "{err}"
    );
    assert!(!dir.join("control.sock").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
