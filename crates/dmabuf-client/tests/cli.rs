// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! `dmabufctl` end to end against the real daemon.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{status_of, Daemon, PROMPT};
use dmabuf_client::pattern::{fnv1a64, pattern};
use dmabuf_client::{parse_uuid, Access, Status, Uuid};

const CTL: &str = env!("CARGO_BIN_EXE_dmabufctl");

fn ctl(d: &Daemon, args: &[&str]) -> Output {
    ctl_at(&d.ctl, args, None)
}

fn ctl_at(socket: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(CTL);
    cmd.arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("DMABUF_CONTROL_SOCKET")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().unwrap();
    if let Some(data) = stdin {
        child.stdin.take().unwrap().write_all(data).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Run and require exit 0; returns stdout.
fn ok(d: &Daemon, args: &[&str]) -> String {
    let o = ctl(d, args);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    stdout(&o)
}

fn uuid_from(out: &str) -> Uuid {
    let line = out.lines().next().unwrap();
    parse_uuid(line.strip_prefix("uuid=").expect(line)).unwrap()
}

fn crc_line(bytes: &[u8]) -> String {
    format!("fnv1a64={:016x} len={}\n", fnv1a64(bytes), bytes.len())
}

#[test]
fn shared_file_reads_back_with_the_same_checksum_on_every_path() {
    let d = Daemon::start();
    let data: Vec<u8> = (0..200_003u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let file = d.path("input.bin");
    std::fs::write(&file, &data).unwrap();
    let out = ok(&d, &["share", file.to_str().unwrap()]);
    let uuid = uuid_from(&out);
    let u = out.trim().strip_prefix("uuid=").unwrap().to_owned();

    let o = ctl(&d, &["read", &u, "--crc"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), crc_line(&data));
    assert!(stderr(&o).contains("path=socket"), "{}", stderr(&o));

    let o = ctl(&d, &["read", &u, "--crc", "--via", "memfd"]);
    assert_eq!(stdout(&o), crc_line(&data));
    assert!(stderr(&o).contains("path=memfd"));

    // A host-backed buffer has no udmabuf: explicit udmabuf fails, auto falls back to memfd.
    let o = ctl(&d, &["read", &u, "--crc", "--via", "udmabuf"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("dmabufctl: read: UNSUPPORTED"),
        "{}",
        stderr(&o)
    );
    let o = ctl(&d, &["read", &u, "--crc", "--via", "auto"]);
    assert_eq!(stdout(&o), crc_line(&data));
    assert!(stderr(&o).contains("path=memfd"));

    // Raw bytes to stdout and to a file, whole and in part.
    let o = ctl(&d, &["read", &u, "--offset", "4095", "--len", "10"]);
    assert_eq!(o.stdout, &data[4095..4105]);
    let out_file = d.path("out.bin");
    ok(&d, &["read", &u, "--out", out_file.to_str().unwrap()]);
    assert!(std::fs::read(&out_file).unwrap() == data);

    // The same bytes through the library; the buffer is owned by a host client.
    let mut c = d.client();
    let info = c.info(&uuid).unwrap();
    assert_eq!(info.size, data.len() as u64);
    assert!(info.flags.host_backed);
    assert!(c.read_fenced(&uuid, 0, info.size, None).unwrap() == data);

    // From stdin.
    let o = ctl_at(&d.ctl, &["share", "-"], Some(b"from stdin"));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let u2 = uuid_from(&stdout(&o));
    assert_eq!(c.read_fenced(&u2, 0, 10, None).unwrap(), b"from stdin");
}

#[test]
fn pattern_write_reads_back_as_the_pattern() {
    let d = Daemon::start();
    let size = 3 * 4096 + 100;
    let u = uuid_from(&ok(&d, &["share", "--memfd-size", &size.to_string()]));
    let us = dmabuf_client::format_uuid(&u);

    let out = ok(
        &d,
        &[
            "write",
            &us,
            "--fill-seed",
            "7",
            "--offset",
            "5",
            "--len",
            "9000",
        ],
    );
    assert_eq!(out, "written=9000\n");
    let out = ok(
        &d,
        &["read", &us, "--offset", "5", "--len", "9000", "--crc"],
    );
    assert_eq!(out, crc_line(&pattern(7, 5, 9000)));
    // Around it, still zero.
    let mut c = d.client();
    assert_eq!(c.read_fenced(&u, 0, 5, None).unwrap(), vec![0; 5]);
    assert_eq!(c.read_fenced(&u, 9005, 10, None).unwrap(), vec![0; 10]);
    assert_eq!(c.info(&u).unwrap().write_generation, 1);

    // --in from a file and from stdin.
    let f = d.path("in.bin");
    std::fs::write(&f, b"0123456789").unwrap();
    ok(
        &d,
        &[
            "write",
            &us,
            "--in",
            f.to_str().unwrap(),
            "--offset",
            "4096",
        ],
    );
    let o = ctl_at(
        &d.ctl,
        &["write", &us, "--in", "-", "--offset", "1"],
        Some(b"XY"),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(c.read_fenced(&u, 4096, 10, None).unwrap(), b"0123456789");
    assert_eq!(
        c.read_fenced(&u, 0, 4, None).unwrap(),
        vec![0, b'X', b'Y', 0]
    );

    // A pattern-filled share.
    let u3 = ok(&d, &["share", "--memfd-size", "70000", "--fill-seed", "9"]);
    let u3 = dmabuf_client::format_uuid(&uuid_from(&u3));
    assert_eq!(
        ok(&d, &["read", &u3, "--crc"]),
        crc_line(&pattern(9, 0, 70000))
    );

    // A read-only share refuses the write: exit 1, status on stderr.
    let ro = ok(&d, &["share", "--memfd-size", "4096", "--read-only"]);
    let ro = dmabuf_client::format_uuid(&uuid_from(&ro));
    let o = ctl(&d, &["write", &ro, "--fill-seed", "1", "--len", "10"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("dmabufctl: write: PERMISSION_DENIED"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn list_info_wait_write_and_revoke() {
    let d = Daemon::start();
    let a = uuid_from(&ok(
        &d,
        &[
            "share",
            "--memfd-size",
            "8K",
            "--host-only",
            "--allow",
            "vm1",
        ],
    ));
    let a_s = dmabuf_client::format_uuid(&a);

    let list = ok(&d, &["list"]);
    let mut lines = list.lines();
    let head: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        head,
        [
            "UUID",
            "SIZE",
            "OWNER",
            "FLAGS",
            "IMPORTERS",
            "SEGMENTS",
            "WRITES"
        ]
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(row[0], a_s);
    assert_eq!(row[1], "8192");
    assert!(row[2].starts_with("host:"));
    assert_eq!(row[3], "host-only,host-backed");
    assert_eq!(&row[4..], ["0", "1", "0"]);

    let info = ok(&d, &["info", &a_s]);
    for kv in [
        format!("uuid={a_s}"),
        "size=8192".into(),
        "flags=host-only,host-backed".into(),
        "host_only=1".into(),
        "read_only=0".into(),
        "host_backed=1".into(),
        "revoked=0".into(),
        "importers=0".into(),
        "segments=1".into(),
        "write_generation=0".into(),
    ] {
        assert!(info.lines().any(|l| l == kv), "{kv} missing in\n{info}");
    }

    // wait-write: times out without a write, returns after one.
    let o = ctl(&d, &["wait-write", &a_s, "--timeout-ms", "200"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with("dmabufctl: wait-write: TIMEOUT"));
    let waiter = Command::new(CTL)
        .args(["--socket", d.ctl.to_str().unwrap(), "--timeout-ms", "0"])
        .args(["wait-write", &a_s, "--after", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    ok(&d, &["write", &a_s, "--fill-seed", "3", "--len", "1"]);
    let o = waiter.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "generation=1\n");
    assert_eq!(
        ok(&d, &["wait-write", &a_s, "--after", "0"]),
        "generation=1\n"
    );

    ok(&d, &["revoke", &a_s]);
    let o = ctl(&d, &["info", &a_s]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with("dmabufctl: info: NOT_FOUND"));
    assert_eq!(ok(&d, &["list"]).lines().count(), 1, "header only");
}

#[test]
fn hold_blocks_others_until_it_ends_or_is_killed() {
    let d = Daemon::with_sync_timeout(60_000);
    let u = uuid_from(&ok(&d, &["share", "--memfd-size", "8192"]));
    let us = dmabuf_client::format_uuid(&u);

    // A short hold runs to its end.
    assert_eq!(
        ok(
            &d,
            &["hold", &us, "--len", "4096", "--read", "--seconds", "0.1"]
        ),
        "held\nreleasing\nreleased\n"
    );

    let mut hold = Command::new(CTL)
        .args(["--socket", d.ctl.to_str().unwrap()])
        .args(["hold", &us, "--offset", "0", "--len", "4096", "--write"])
        .args(["--seconds", "600"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(hold.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "held\n");
    let mut c = d.client();
    let short = Some(Duration::from_millis(200));
    assert_eq!(
        status_of(c.begin(&u, 10, 10, Access::Read, short)),
        Status::Timeout
    );
    c.begin(&u, 4096, 10, Access::Write, short).unwrap();
    c.end(&u, 4096, 10, Access::Write).unwrap();
    // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet.
    assert_eq!(unsafe { libc::kill(hold.id() as i32, libc::SIGTERM) }, 0);
    let status = hold.wait().unwrap();
    assert_eq!(status.code(), None, "killed by the signal");
    // Its connection closed, which released the write access.
    c.begin(&u, 10, 10, Access::Read, Some(PROMPT)).unwrap();
}

#[test]
fn usage_and_connection_errors_have_their_exit_codes() {
    let d = Daemon::start();
    let o = ctl(&d, &["info", "not-a-uuid"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not a UUID"), "{}", stderr(&o));
    let o = ctl(&d, &["read", "0123456789abcdef0123456789abcdef0"]);
    assert_eq!(o.status.code(), Some(2));
    let o = ctl(
        &d,
        &[
            "hold",
            "00000000-0000-0000-0000-000000000000",
            "--len",
            "1",
            "--seconds",
            "1",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "neither --read nor --write");
    let o = ctl(&d, &["share"]);
    assert_eq!(o.status.code(), Some(2), "nothing to share");
    let o = ctl(&d, &["share", "/nonexistent/file"]);
    assert_eq!(o.status.code(), Some(2));
    let o = ctl(
        &d,
        &[
            "write",
            "00000000-0000-0000-0000-000000000000",
            "--fill-seed",
            "1",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "--fill-seed without --len");
    let o = ctl(
        &d,
        &["share", "--memfd-size", "4096", "--allow", "two words"],
    );
    assert_eq!(o.status.code(), Some(2));

    // The daemon's refusals: exit 1.
    let zero = "00000000-0000-0000-0000-000000000000";
    let o = ctl(&d, &["read", zero, "--len", "1"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).lines().last().unwrap_or(""),
        "dmabufctl: read: NOT_FOUND (no buffer with that UUID: never shared, or released or revoked)"
    );
    let o = ctl(&d, &["share", "--memfd-size", "0"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("share: INVALID_SIZE"));

    // No daemon: exit 3.
    let o = ctl_at(&d.path("nothing.sock"), &["list"], None);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("cannot connect"), "{}", stderr(&o));

    // The socket from the environment.
    let o = Command::new(CTL)
        .arg("list")
        .env("DMABUF_CONTROL_SOCKET", &d.ctl)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // --help documents the exit codes and why files are copied into sealed memfds.
    let o = Command::new(CTL)
        .args(["share", "--help"])
        .output()
        .unwrap();
    assert!(stdout(&o).contains("sealed"));
    let o = Command::new(CTL).arg("--help").output().unwrap();
    assert!(stdout(&o).contains("Exit status"));
}
