// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! A hostile guest driver: every malformed request gets its documented status (spec section 9),
//! nothing panics or hangs, and a valid request succeeds afterwards.

use std::path::Path;

use dmabuf_harness::queue::{Buf, RawDesc, F_INDIRECT, F_NEXT, F_WRITE};
use dmabuf_harness::ram::{HOLE_END, HOLE_START, PAGE};
use dmabuf_harness::{status_of, DaemonProcess, GuestBuffer, Vm, VmOptions};
use virtio_dmabuf_proto::virtio::{buf_flags, req, sync_flags as sf, Uuid, VIRTIO_DMABUF_F_IMPORT};
use virtio_dmabuf_proto::Status;

const MAX_SEGS: u32 = 64;

struct Guest {
    vm: Vm,
    /// A valid buffer, used to show the device still serves after each hostile request.
    probe: Uuid,
    _d: DaemonProcess,
}

fn guest_with(extra: &[&str]) -> Guest {
    let max = MAX_SEGS.to_string();
    let mut args = vec!["--max-segments", &max, "--sync-timeout-ms", "2000"];
    args.extend_from_slice(extra);
    let d = DaemonProcess::spawn(
        Path::new(env!("CARGO_BIN_EXE_vhost-device-dmabuf")),
        &["vm1", "vm2"],
        &args,
    )
    .unwrap();
    let mut vm = Vm::connect(&d.vm_socket("vm1"), VmOptions::default()).unwrap();
    let b = vm.alloc_buffer(PAGE, false).unwrap();
    let probe = vm.create_buffer(&b, 0).unwrap().unwrap();
    Guest { vm, probe, _d: d }
}

fn guest() -> Guest {
    guest_with(&[])
}

/// CPU time (user + system, in clock ticks) process `pid` has used so far.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

impl Guest {
    /// Wait up to 5 s for the hand-built chain `head`: its used length.
    fn used_len(&mut self, head: u16) -> u32 {
        self.vm
            .wait_head(head, std::time::Duration::from_secs(5))
            .unwrap()
    }

    /// The status the device wrote at `resp`.
    fn status_at(&self, resp: u64) -> Status {
        let mut out = [0u8; 8];
        self.vm.ram.read(resp, &mut out).unwrap();
        status_of(&out).unwrap()
    }

    /// The device still answers a valid request correctly.
    fn still_serving(&mut self) {
        assert_eq!(
            self.vm.lookup(&self.probe).unwrap(),
            Ok((PAGE, buf_flags::OWN))
        );
        assert_eq!(
            self.vm.sync(&self.probe, 0, 1, sf::READ, 0).unwrap(),
            Status::Ok
        );
        assert_eq!(
            self.vm
                .sync(&self.probe, 0, 1, sf::READ | sf::END, 0)
                .unwrap(),
            Status::Ok
        );
    }

    fn create_status(&mut self, size: u64, flags: u32, segs: &[(u64, u64)]) -> Status {
        match self.vm.create(size, flags, segs).unwrap() {
            Ok(_) => Status::Ok,
            Err(s) => s,
        }
    }

    fn raw(&mut self, request: &[u8], resp: u32) -> Vec<u8> {
        self.vm.request(request, resp).unwrap()
    }

    fn expect(&mut self, request: &[u8], status: Status) {
        let r = self.raw(request, 64);
        assert_eq!(r.len(), 8, "error responses are 8 bytes");
        assert_eq!(status_of(&r).unwrap(), status);
        self.still_serving();
    }
}

fn hdr(kind: u32, reserved: u32) -> Vec<u8> {
    let mut v = kind.to_le_bytes().to_vec();
    v.extend_from_slice(&reserved.to_le_bytes());
    v
}

#[test]
fn h01_gpa_outside_memory() {
    let mut g = guest();
    let ram = VmOptions::default().ram_size;
    assert_eq!(
        g.create_status(PAGE, 0, &[(ram, PAGE)]),
        Status::InvalidAddress
    );
    assert_eq!(
        g.create_status(PAGE, 0, &[(ram - 100, PAGE)]),
        Status::InvalidAddress
    );
    g.still_serving();
}

#[test]
fn h02_gpa_plus_len_overflows() {
    let mut g = guest();
    assert_eq!(
        g.create_status(PAGE, 0, &[(u64::MAX - 10, PAGE)]),
        Status::InvalidAddress
    );
    g.still_serving();
}

#[test]
fn h03_segment_across_the_hole() {
    let mut g = guest();
    assert_eq!(
        g.create_status(2 * PAGE, 0, &[(HOLE_START - PAGE, 2 * PAGE)]),
        Status::InvalidAddress
    );
    // Two pages that would coalesce into a run crossing into the hole.
    assert_eq!(
        g.create_status(
            2 * PAGE,
            0,
            &[(HOLE_START - PAGE, PAGE), (HOLE_START, PAGE)]
        ),
        Status::InvalidAddress
    );
    g.still_serving();
}

#[test]
fn h04_segment_inside_the_hole() {
    let mut g = guest();
    assert_eq!(
        g.create_status(PAGE, 0, &[(HOLE_START + PAGE, PAGE)]),
        Status::InvalidAddress
    );
    assert_eq!(
        g.create_status(PAGE, 0, &[(HOLE_END - 1, PAGE)]),
        Status::InvalidAddress
    );
    g.still_serving();
}

#[test]
fn h05_zero_length_segment() {
    let mut g = guest();
    assert_eq!(
        g.create_status(PAGE, 0, &[(0x200000, PAGE), (0x300000, 0)]),
        Status::InvalidSize
    );
    g.still_serving();
}

#[test]
fn h06_zero_size_and_no_segments() {
    let mut g = guest();
    assert_eq!(
        g.create_status(0, 0, &[(0x200000, PAGE)]),
        Status::InvalidSize
    );
    assert_eq!(g.create_status(PAGE, 0, &[]), Status::InvalidSize);
    g.still_serving();
}

#[test]
fn h07_lengths_do_not_add_up() {
    let mut g = guest();
    assert_eq!(
        g.create_status(3 * PAGE, 0, &[(0x200000, PAGE)]),
        Status::InvalidSize
    );
    assert_eq!(
        g.create_status(PAGE, 0, &[(0x200000, PAGE), (0x300000, PAGE)]),
        Status::InvalidSize
    );
    // Lengths whose sum overflows 64 bits.
    assert_eq!(
        g.create_status(
            PAGE,
            0,
            &[(0x200000, u64::MAX / 2), (0x300000, u64::MAX / 2 + 2)]
        ),
        Status::InvalidSize
    );
    g.still_serving();
}

#[test]
fn h08_too_many_segments() {
    let mut g = guest();
    let segs: Vec<(u64, u64)> = (0..u64::from(MAX_SEGS) + 1)
        .map(|i| (0x200000 + i * 2 * PAGE, PAGE))
        .collect();
    assert_eq!(
        g.create_status(segs.len() as u64 * PAGE, 0, &segs),
        Status::TooManySegments
    );
    // A count far beyond what the request carries is refused before anything is read.
    let mut r = hdr(req::CREATE, 0);
    r.extend_from_slice(&PAGE.to_le_bytes());
    r.extend_from_slice(&0u32.to_le_bytes());
    r.extend_from_slice(&u32::MAX.to_le_bytes());
    g.expect(&r, Status::TooManySegments);
}

#[test]
fn h09_segment_count_larger_than_the_list() {
    let mut g = guest();
    let mut r = Vm::create_request(2 * PAGE, 0, &[(0x200000, PAGE), (0x300000, PAGE)]);
    r.truncate(r.len() - 16);
    g.expect(&r, Status::InvalidRequest);
}

#[test]
fn h10_unknown_uuid() {
    let mut g = guest();
    assert_eq!(g.vm.release(&[0x42; 16]).unwrap(), Status::NotFound);
    assert_eq!(g.vm.lookup(&[0x42; 16]).unwrap(), Err(Status::NotFound));
    g.still_serving();
}

#[test]
fn h11_forged_uuid_sync() {
    let mut g = guest();
    let mut forged = g.probe;
    forged[15] ^= 1;
    assert_eq!(
        g.vm.sync(&forged, 0, 1, sf::READ, 0).unwrap(),
        Status::NotFound
    );
    g.still_serving();
}

#[test]
fn h12_release_twice() {
    let mut g = guest();
    let b = g.vm.alloc_buffer(PAGE, false).unwrap();
    let u = g.vm.create_buffer(&b, 0).unwrap().unwrap();
    assert_eq!(g.vm.release(&u).unwrap(), Status::Ok);
    assert_eq!(g.vm.release(&u).unwrap(), Status::NotFound);
    g.still_serving();
}

#[test]
fn h13_end_without_begin() {
    let mut g = guest();
    let p = g.probe;
    assert_eq!(
        g.vm.sync(&p, 0, 1, sf::READ | sf::END, 0).unwrap(),
        Status::NotHeld
    );
    g.still_serving();
}

#[test]
fn h14_direction_mismatch() {
    let mut g = guest();
    let p = g.probe;
    assert_eq!(g.vm.sync(&p, 0, 100, sf::READ, 0).unwrap(), Status::Ok);
    assert_eq!(
        g.vm.sync(&p, 0, 100, sf::WRITE | sf::END, 0).unwrap(),
        Status::NotHeld
    );
    assert_eq!(
        g.vm.sync(&p, 0, 99, sf::READ | sf::END, 0).unwrap(),
        Status::NotHeld
    );
    assert_eq!(
        g.vm.sync(&p, 0, 100, sf::READ | sf::END, 0).unwrap(),
        Status::Ok
    );
    g.still_serving();
}

#[test]
fn h15_write_to_a_read_only_share() {
    let mut g = guest();
    let mut vm2 = Vm::connect(&g._d.vm_socket("vm2"), VmOptions::default()).unwrap();
    let b = g.vm.alloc_buffer(PAGE, false).unwrap();
    let u =
        g.vm.create_buffer(&b, buf_flags::READ_ONLY)
            .unwrap()
            .unwrap();
    assert_eq!(vm2.lookup(&u).unwrap(), Ok((PAGE, buf_flags::READ_ONLY)));
    let copy = vm2.alloc_buffer(PAGE, false).unwrap();
    assert_eq!(vm2.attach(&u, &copy).unwrap(), Status::Ok);
    assert_eq!(
        vm2.sync(&u, 0, PAGE, sf::WRITE, 0).unwrap(),
        Status::PermissionDenied
    );
    assert_eq!(
        vm2.sync(&u, 0, PAGE, sf::READ | sf::WRITE, 0).unwrap(),
        Status::PermissionDenied
    );
    assert_eq!(vm2.sync(&u, 0, PAGE, sf::READ, 0).unwrap(), Status::Ok);
    // The owner may still write.
    assert_eq!(
        g.vm.sync(&u, 0, PAGE, sf::WRITE, 100).unwrap(),
        Status::Timeout
    );
    assert_eq!(
        vm2.sync(&u, 0, PAGE, sf::READ | sf::END, 0).unwrap(),
        Status::Ok
    );
    assert_eq!(g.vm.sync(&u, 0, PAGE, sf::WRITE, 0).unwrap(), Status::Ok);
    g.still_serving();
}

#[test]
fn h16_truncated_header() {
    let mut g = guest();
    g.expect(&req::SYNC.to_le_bytes(), Status::InvalidRequest);
    g.expect(&[], Status::InvalidRequest);
}

#[test]
fn h17_truncated_body() {
    let mut g = guest();
    let r = Vm::sync_request(&g.probe, 0, 1, sf::READ, 0);
    g.expect(&r[..r.len() - 1], Status::InvalidRequest);
    let r = Vm::create_request(PAGE, 0, &[(0x200000, PAGE)]);
    g.expect(&r[..12], Status::InvalidRequest);
}

#[test]
fn h18_response_area_under_eight_bytes() {
    let mut g = guest();
    let r = Vm::sync_request(&g.probe, 0, 1, sf::READ, 0);
    assert!(g.raw(&r, 7).is_empty(), "nothing written, used length 0");
    // And the request was not acted on: an END finds nothing to end.
    assert_eq!(
        g.vm.sync(&g.probe.clone(), 0, 1, sf::READ | sf::END, 0)
            .unwrap(),
        Status::NotHeld
    );
    g.still_serving();
}

#[test]
fn h19_response_too_small_for_create() {
    let mut g = guest_with(&["--max-buffers", "2"]);
    let r = Vm::create_request(PAGE, 0, &[(0x200000, PAGE)]);
    for _ in 0..3 {
        let resp = g.raw(&r, 8);
        assert_eq!(status_of(&resp).unwrap(), Status::ResponseTooSmall);
    }
    // Not acted on: the quota (probe + one more) still has room.
    assert_eq!(g.create_status(PAGE, 0, &[(0x200000, PAGE)]), Status::Ok);
    g.still_serving();
}

#[test]
fn h20_readable_after_writable() {
    let mut g = guest();
    let r = Vm::sync_request(&g.probe, 0, 1, sf::READ, 0);
    let a = g.vm.scratch(64).unwrap();
    let resp = g.vm.scratch(8).unwrap();
    g.vm.ram.write(a, &r).unwrap();
    let head =
        g.vm.submit(&[
            Buf {
                addr: a,
                len: 8,
                write: false,
            },
            Buf {
                addr: resp,
                len: 8,
                write: true,
            },
            Buf {
                addr: a + 8,
                len: r.len() as u32 - 8,
                write: false,
            },
        ])
        .unwrap();
    assert_eq!(g.used_len(head), 8);
    assert_eq!(g.status_at(resp), Status::InvalidRequest);
    g.still_serving();
}

#[test]
fn h21_no_writable_descriptor() {
    let mut g = guest();
    let r = Vm::sync_request(&g.probe, 0, 1, sf::READ, 0);
    assert!(g.raw(&r, 0).is_empty());
    assert_eq!(
        g.vm.sync(&g.probe.clone(), 0, 1, sf::READ | sf::END, 0)
            .unwrap(),
        Status::NotHeld
    );
    g.still_serving();
}

#[test]
fn h22_buffer_quota() {
    let mut g = guest_with(&["--max-buffers", "3"]);
    let a = g.vm.alloc_buffer(PAGE, false).unwrap();
    let b = g.vm.alloc_buffer(PAGE, false).unwrap();
    let c = g.vm.alloc_buffer(PAGE, false).unwrap();
    let ua = g.vm.create_buffer(&a, 0).unwrap().unwrap();
    g.vm.create_buffer(&b, 0).unwrap().unwrap();
    assert_eq!(
        g.vm.create_buffer(&c, 0).unwrap(),
        Err(Status::QuotaExceeded)
    );
    assert_eq!(g.vm.release(&ua).unwrap(), Status::Ok);
    assert!(g.vm.create_buffer(&c, 0).unwrap().is_ok());
    g.still_serving();
}

#[test]
fn h23_byte_quota() {
    let mut g = guest_with(&["--max-bytes", "64K"]);
    let big = g.vm.alloc_buffer(64 * 1024, false).unwrap();
    assert_eq!(
        g.vm.create_buffer(&big, 0).unwrap(),
        Err(Status::QuotaExceeded)
    );
    let fits = g.vm.alloc_buffer(60 * 1024, false).unwrap();
    assert!(g.vm.create_buffer(&fits, 0).unwrap().is_ok());
    g.still_serving();
}

#[test]
fn h24_segment_quota() {
    let mut g = guest_with(&["--max-total-segments", "40"]);
    let b = g.vm.alloc_buffer(40 * PAGE, true).unwrap();
    assert_eq!(
        g.vm.create_buffer(&b, 0).unwrap(),
        Err(Status::QuotaExceeded)
    );
    // Contiguous pages coalesce into one segment and fit.
    let c = g.vm.alloc_buffer(40 * PAGE, false).unwrap();
    assert!(g.vm.create_buffer(&c, 0).unwrap().is_ok());
    g.still_serving();
}

#[test]
fn h25_unknown_request_type() {
    let mut g = guest();
    g.expect(&hdr(0x0999, 0), Status::InvalidRequest);
    g.expect(&hdr(0, 0), Status::InvalidRequest);
}

#[test]
fn h26_reserved_header_field() {
    let mut g = guest();
    let mut r = Vm::sync_request(&g.probe, 0, 1, sf::READ, 0);
    r[4] = 1;
    g.expect(&r, Status::InvalidRequest);
}

#[test]
fn h27_undefined_create_flag() {
    let mut g = guest();
    assert_eq!(
        g.create_status(PAGE, 1 << 5, &[(0x200000, PAGE)]),
        Status::InvalidRequest
    );
    g.still_serving();
}

#[test]
fn h28_sync_flags() {
    let mut g = guest();
    let p = g.probe;
    g.expect(&Vm::sync_request(&p, 0, 1, 0, 0), Status::InvalidRequest);
    g.expect(
        &Vm::sync_request(&p, 0, 1, sf::END, 0),
        Status::InvalidRequest,
    );
    g.expect(
        &Vm::sync_request(&p, 0, 1, sf::READ | 1 << 9, 0),
        Status::InvalidRequest,
    );
    g.expect(
        &Vm::sync_request(&p, 0, 1, sf::READ | sf::END, 5),
        Status::InvalidRequest,
    );
}

#[test]
fn h29_sync_ranges() {
    let mut g = guest();
    let p = g.probe;
    g.expect(
        &Vm::sync_request(&p, 0, 0, sf::READ, 0),
        Status::InvalidSize,
    );
    g.expect(
        &Vm::sync_request(&p, PAGE, 1, sf::READ, 0),
        Status::InvalidSize,
    );
    g.expect(
        &Vm::sync_request(&p, 1, PAGE, sf::READ, 0),
        Status::InvalidSize,
    );
    g.expect(
        &Vm::sync_request(&p, u64::MAX, 2, sf::READ, 0),
        Status::InvalidSize,
    );
}

#[test]
fn h30_attach_own_and_twice() {
    let mut g = guest();
    let mut vm2 = Vm::connect(&g._d.vm_socket("vm2"), VmOptions::default()).unwrap();
    let own = g.vm.alloc_buffer(PAGE, false).unwrap();
    let p = g.probe;
    assert_eq!(g.vm.attach(&p, &own).unwrap(), Status::AlreadyExists);
    let c = vm2.alloc_buffer(PAGE, false).unwrap();
    assert_eq!(vm2.attach(&p, &c).unwrap(), Status::Ok);
    assert_eq!(vm2.attach(&p, &c).unwrap(), Status::AlreadyExists);
    g.still_serving();
}

#[test]
fn h31_attach_size_mismatch() {
    let mut g = guest();
    let mut vm2 = Vm::connect(&g._d.vm_socket("vm2"), VmOptions::default()).unwrap();
    let c = vm2.alloc_buffer(2 * PAGE, false).unwrap();
    let p = g.probe;
    assert_eq!(vm2.attach(&p, &c).unwrap(), Status::InvalidSize);
    let bad = GuestBuffer {
        segs: vec![(HOLE_START, PAGE)],
        size: PAGE,
    };
    assert_eq!(vm2.attach(&p, &bad).unwrap(), Status::InvalidAddress);
    g.still_serving();
}

#[test]
fn h32_import_without_the_feature() {
    let g = guest();
    let opts = VmOptions {
        refuse_features: 1 << VIRTIO_DMABUF_F_IMPORT,
        ..VmOptions::default()
    };
    let mut vm2 = Vm::connect(&g._d.vm_socket("vm2"), opts).unwrap();
    assert_eq!(vm2.lookup(&g.probe).unwrap(), Err(Status::Unsupported));
    let c = vm2.alloc_buffer(PAGE, false).unwrap();
    assert_eq!(vm2.attach(&g.probe, &c).unwrap(), Status::Unsupported);
    // CREATE still works without it.
    assert!(vm2.create_buffer(&c, 0).unwrap().is_ok());
}

#[test]
fn h33_request_descriptor_outside_memory() {
    let mut g = guest();
    let resp = g.vm.scratch(8).unwrap();
    let ram = VmOptions::default().ram_size;
    for addr in [ram + PAGE, HOLE_START + 16, u64::MAX - 4] {
        let head =
            g.vm.submit(&[
                Buf {
                    addr,
                    len: 48,
                    write: false,
                },
                Buf {
                    addr: resp,
                    len: 8,
                    write: true,
                },
            ])
            .unwrap();
        assert_eq!(g.used_len(head), 8);
        assert_eq!(g.status_at(resp), Status::InvalidAddress);
    }
    g.still_serving();
}

#[test]
fn h34_response_descriptor_outside_memory() {
    let mut g = guest();
    let r = Vm::sync_request(&g.probe, 0, 1, sf::READ, 0);
    let a = g.vm.scratch(64).unwrap();
    g.vm.ram.write(a, &r).unwrap();
    let head =
        g.vm.submit(&[
            Buf {
                addr: a,
                len: r.len() as u32,
                write: false,
            },
            Buf {
                addr: HOLE_START,
                len: 8,
                write: true,
            },
        ])
        .unwrap();
    assert_eq!(g.used_len(head), 0);
    g.still_serving();
}

#[test]
fn h35_descriptor_loop() {
    let mut g = guest();
    let r = Vm::sync_request(&g.probe, 0, 1, sf::READ, 0);
    let a = g.vm.scratch(64).unwrap();
    g.vm.ram.write(a, &r).unwrap();
    // Two descriptors pointing at each other.
    let head =
        g.vm.req
            .add_raw(
                &g.vm.ram,
                &[
                    RawDesc {
                        addr: a,
                        len: 8,
                        flags: F_NEXT,
                        next: 1,
                    },
                    RawDesc {
                        addr: a,
                        len: 8,
                        flags: F_NEXT,
                        next: 0,
                    },
                ],
            )
            .unwrap();
    assert_eq!(g.used_len(head), 0);
    g.still_serving();
}

/// A flood of malformed chains (each a log line before) leaves at most a burst of lines per
/// second in the daemon's log, and the count of the rest; the guest is served throughout.
#[test]
fn h46_a_flood_of_malformed_chains_is_logged_within_a_rate_limit() {
    let log = std::env::temp_dir().join(format!("dmabuf-h46-{}.log", std::process::id()));
    let d = DaemonProcess::spawn_logged(
        Path::new(env!("CARGO_BIN_EXE_vhost-device-dmabuf")),
        &["vm1"],
        &[],
        Some(&log),
    )
    .unwrap();
    let mut vm = Vm::connect(&d.vm_socket("vm1"), VmOptions::default()).unwrap();
    let b = vm.alloc_buffer(PAGE, false).unwrap();
    let probe = vm.create_buffer(&b, 0).unwrap().unwrap();
    let mut g = Guest { vm, probe, _d: d };
    let r = Vm::sync_request(&g.probe, 0, 1, sf::READ, 0);
    let a = g.vm.scratch(64).unwrap();
    g.vm.ram.write(a, &r).unwrap();
    let t0 = std::time::Instant::now();
    let floods = 400;
    for _ in 0..floods {
        let looped = [
            RawDesc {
                addr: a,
                len: 8,
                flags: F_NEXT,
                next: 1,
            },
            RawDesc {
                addr: a,
                len: 8,
                flags: F_NEXT,
                next: 0,
            },
        ];
        let head = g.vm.req.add_raw(&g.vm.ram, &looped).unwrap();
        assert_eq!(g.used_len(head), 0);
    }
    let seconds = t0.elapsed().as_secs() + 1;
    g.still_serving();
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    let lines = text.lines().filter(|l| l.contains("malformed")).count() as u64;
    let burst = u64::from(vhost_device_dmabuf::ratelimit::BURST);
    assert!(lines >= 1, "{text}");
    assert!(
        lines <= burst * (seconds + 1),
        "{lines} lines for {floods} malformed chains in {seconds} s"
    );
}

#[test]
fn h36_indirect_table_outside_memory() {
    let mut g = guest();
    let head =
        g.vm.req
            .add_raw(
                &g.vm.ram,
                &[RawDesc {
                    addr: HOLE_START,
                    len: 32,
                    flags: F_INDIRECT,
                    next: 0,
                }],
            )
            .unwrap();
    assert_eq!(g.used_len(head), 0);
    let ram = VmOptions::default().ram_size;
    let head =
        g.vm.req
            .add_raw(
                &g.vm.ram,
                &[RawDesc {
                    addr: ram - 16,
                    len: 64,
                    flags: F_INDIRECT,
                    next: 0,
                }],
            )
            .unwrap();
    assert_eq!(g.used_len(head), 0);
    g.still_serving();
}

#[test]
fn h37_writable_only_chain_and_next_out_of_range() {
    let mut g = guest();
    let resp = g.vm.scratch(8).unwrap();
    // Only a writable descriptor: the header cannot be read.
    let head =
        g.vm.submit(&[Buf {
            addr: resp,
            len: 8,
            write: true,
        }])
        .unwrap();
    assert_eq!(g.used_len(head), 8);
    assert_eq!(g.status_at(resp), Status::InvalidRequest);
    // A `next` index beyond the queue size.
    let head =
        g.vm.req
            .add_raw(
                &g.vm.ram,
                &[RawDesc {
                    addr: resp,
                    len: 8,
                    flags: F_NEXT | F_WRITE,
                    next: 9999,
                }],
            )
            .unwrap();
    assert_eq!(g.used_len(head), 0);
    g.still_serving();
}

#[test]
fn h38_host_only_buffer_is_invisible_to_other_vms() {
    let mut g = guest();
    let mut vm2 = Vm::connect(&g._d.vm_socket("vm2"), VmOptions::default()).unwrap();
    let b = g.vm.alloc_buffer(PAGE, false).unwrap();
    let u =
        g.vm.create_buffer(&b, buf_flags::HOST_ONLY)
            .unwrap()
            .unwrap();
    assert_eq!(vm2.lookup(&u).unwrap(), Err(Status::NotFound));
    let c = vm2.alloc_buffer(PAGE, false).unwrap();
    assert_eq!(vm2.attach(&u, &c).unwrap(), Status::NotFound);
    g.still_serving();
}

#[test]
fn h39_sync_on_a_buffer_of_another_vm_not_attached() {
    let mut g = guest();
    let mut vm2 = Vm::connect(&g._d.vm_socket("vm2"), VmOptions::default()).unwrap();
    let p = g.probe;
    assert_eq!(vm2.sync(&p, 0, 1, sf::READ, 0).unwrap(), Status::NotFound);
    assert_eq!(vm2.release(&p).unwrap(), Status::NotFound);
    g.still_serving();
}

#[test]
fn h40_segment_list_split_over_many_descriptors_is_valid() {
    let mut g = guest();
    let b = g.vm.alloc_buffer(16 * PAGE, true).unwrap();
    let r = Vm::create_request(b.size, 0, &b.segs);
    // 7-byte descriptors: every structure straddles descriptor boundaries.
    let resp = g.vm.request_chunked(&r, 24, 7).unwrap();
    assert_eq!(status_of(&resp).unwrap(), Status::Ok);
    assert_eq!(resp.len(), 24);
    g.still_serving();
}

#[test]
fn h41_indirect_chain_longer_than_the_queue() {
    let mut g = guest();
    // 300 one-byte readable descriptors (the queue has 256 entries) carrying a SYNC request.
    let r = Vm::sync_request(&g.probe, 0, 1, sf::READ, 0);
    let a = g.vm.scratch(r.len() as u64).unwrap();
    g.vm.ram.write(a, &r).unwrap();
    let resp = g.vm.scratch(8).unwrap();
    let mut bufs: Vec<Buf> = (0..300u64)
        .map(|i| Buf {
            addr: a + (i % r.len() as u64),
            len: 1,
            write: false,
        })
        .collect();
    bufs.push(Buf {
        addr: resp,
        len: 8,
        write: true,
    });
    let table = g.vm.scratch(bufs.len() as u64 * 16).unwrap();
    let head = g.vm.req.add_indirect(&g.vm.ram, table, &bufs).unwrap();
    // Refused or answered, but answered: never a hang, never a crash.
    let len = g.used_len(head);
    assert!(len == 0 || len == 8, "used length {len}");
    g.still_serving();
}

#[test]
fn h42_avail_index_abuse() {
    let mut g = guest();
    let real = g.vm.req.avail_idx();
    let pid = g._d.pid().expect("daemon pid");
    let cpu_before = cpu_ticks(pid);
    // An index far beyond the ring: the device must not walk garbage or spin (found by the
    // request_decode fuzz target: the worker looped between "available" and "nothing to pop").
    g.vm.req
        .poke_avail_idx(&g.vm.ram, Some(real.wrapping_add(5000)))
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let spent = cpu_ticks(pid) - cpu_before;
    assert!(
        spent <= 15,
        "the daemon used {spent} clock ticks of CPU in 500 ms with a broken avail index"
    );
    // The driver repairs its ring; the device serves again (or, having stopped the queue,
    // another VM is unaffected).
    g.vm.req.poke_avail_idx(&g.vm.ram, None).unwrap();
    let mut vm2 = Vm::connect(&g._d.vm_socket("vm2"), VmOptions::default()).unwrap();
    let b = vm2.alloc_buffer(PAGE, false).unwrap();
    assert!(
        vm2.create_buffer(&b, 0).unwrap().is_ok(),
        "other VMs keep working"
    );
    // And the repaired queue itself serves again.
    g.still_serving();
}

#[test]
fn h43_start_racing_the_owners_release() {
    let mut g = guest();
    let mut vm2 = Vm::connect(&g._d.vm_socket("vm2"), VmOptions::default()).unwrap();
    let b = g.vm.alloc_buffer(PAGE, false).unwrap();
    let u = g.vm.create_buffer(&b, 0).unwrap().unwrap();
    let c = vm2.alloc_buffer(PAGE, false).unwrap();
    assert_eq!(vm2.attach(&u, &c).unwrap(), Status::Ok);
    assert_eq!(vm2.sync(&u, 0, PAGE, sf::WRITE, 0).unwrap(), Status::Ok);
    // The owner's own START waits behind vm2's write; then the owner releases the buffer.
    let p = g.vm.sync_async(&u, 0, 1, sf::READ, 0).unwrap();
    assert!(g.vm.is_parked(&p).unwrap());
    assert_eq!(g.vm.release(&u).unwrap(), Status::Ok);
    assert_eq!(
        g.vm.wait_pending(&p, std::time::Duration::from_secs(5))
            .unwrap(),
        Status::Revoked
    );
    // vm2's END on the vanished buffer: REVOKED, and its release succeeds.
    assert_eq!(
        vm2.sync(&u, 0, PAGE, sf::WRITE | sf::END, 0).unwrap(),
        Status::Revoked
    );
    assert_eq!(vm2.release(&u).unwrap(), Status::Ok);
    g.still_serving();
}

#[test]
fn h44_import_quota() {
    let mut g = guest_with(&["--max-buffers", "2"]);
    let mut vm2 = Vm::connect(&g._d.vm_socket("vm2"), VmOptions::default()).unwrap();
    let mut uuids = Vec::new();
    // The probe counts against vm1's quota: one more fits.
    let b = g.vm.alloc_buffer(PAGE, false).unwrap();
    uuids.push(g.vm.create_buffer(&b, 0).unwrap().unwrap());
    uuids.push(g.probe);
    let own = vm2.alloc_buffer(PAGE, false).unwrap();
    vm2.create_buffer(&own, 0).unwrap().unwrap();
    let c1 = vm2.alloc_buffer(PAGE, false).unwrap();
    let c2 = vm2.alloc_buffer(PAGE, false).unwrap();
    assert_eq!(vm2.attach(&uuids[0], &c1).unwrap(), Status::Ok);
    assert_eq!(
        vm2.attach(&uuids[1], &c2).unwrap(),
        Status::QuotaExceeded,
        "imports count too"
    );
    g.still_serving();
}

#[test]
fn h45_release_of_another_vms_buffer_and_response_area_in_the_request() {
    let mut g = guest();
    let mut vm2 = Vm::connect(&g._d.vm_socket("vm2"), VmOptions::default()).unwrap();
    let p = g.probe;
    // A VM cannot release, and so destroy, a buffer it does not hold.
    assert_eq!(vm2.release(&p).unwrap(), Status::NotFound);
    // The response area overlaps the request itself: the device reads first, then writes.
    let r = Vm::sync_request(&p, 0, 1, sf::READ, 0);
    let a = g.vm.scratch(64).unwrap();
    g.vm.ram.write(a, &r).unwrap();
    let head =
        g.vm.submit(&[
            Buf {
                addr: a,
                len: r.len() as u32,
                write: false,
            },
            Buf {
                addr: a,
                len: 8,
                write: true,
            },
        ])
        .unwrap();
    assert_eq!(g.used_len(head), 8);
    assert_eq!(g.status_at(a), Status::Ok);
    assert_eq!(
        g.vm.sync(&p, 0, 1, sf::READ | sf::END, 0).unwrap(),
        Status::Ok
    );
    g.still_serving();
}
