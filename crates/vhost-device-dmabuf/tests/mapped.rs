// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Mapped imports (spec section 13) over the real vhost-user socket, with the harness playing
//! QEMU 11.1's side of vhost-user shared memory: the region, SHMEM_MAP / SHMEM_UNMAP, the
//! memory-table updates that follow them, the removal of every mapping at a device reset.
//! Bytes written on one side are read on the other, through the harness's own mapping of the
//! region.

use std::path::Path;
use std::time::Duration;

use dmabuf_client::{Access, Client, ShareFlags};
use dmabuf_harness::ram::PAGE;
use dmabuf_harness::shm::{MemUpdates, ShmEvent, BAR_GPA};
use dmabuf_harness::{DaemonProcess, Vm, VmOptions};
use virtio_dmabuf_proto::virtio::{buf_flags, event, sync_flags as sf, VIRTIO_DMABUF_F_MAP};
use virtio_dmabuf_proto::Status;

fn daemon(shm_size: &str) -> DaemonProcess {
    DaemonProcess::spawn(
        Path::new(env!("CARGO_BIN_EXE_vhost-device-dmabuf")),
        &["a", "b"],
        &["--sync-timeout-ms", "2000", "--shm-size", shm_size],
    )
    .unwrap()
}

fn opts(updates: MemUpdates) -> VmOptions {
    VmOptions {
        shm: Some(updates),
        ..VmOptions::default()
    }
}

fn vm(d: &DaemonProcess, name: &str) -> Vm {
    Vm::connect(&d.vm_socket(name), opts(MemUpdates::AfterReply)).unwrap()
}

fn region_bytes(vm: &Vm, offset: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    vm.shm().expect("a region").read(offset, &mut out).unwrap();
    out
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn no_unmap_after_reset(vm: &Vm) {
    let bad: Vec<ShmEvent> = vm
        .shm()
        .unwrap()
        .events()
        .into_iter()
        .filter(|e| {
            matches!(
                e,
                ShmEvent::UnmapAfterReset { .. } | ShmEvent::Refused { .. }
            )
        })
        .collect();
    assert!(
        bad.is_empty(),
        "requests QEMU 11.1 refuses or crashes on: {bad:?}"
    );
}

#[test]
fn host_buffer_is_read_and_written_in_place() {
    let d = daemon("4M");
    let mut a = vm(&d, "a");
    assert_eq!(a.shm().unwrap().size(), 4 << 20);
    let mut host = Client::connect(d.control_socket()).unwrap();
    let data = pattern(1, 3 * PAGE as usize - 100);
    let (u, _memfd) = host.share_bytes(&data, ShareFlags::default(), &[]).unwrap();

    let m = a.map(&u).unwrap().unwrap();
    assert_eq!((m.offset % PAGE, m.len), (0, 3 * PAGE));
    assert_eq!(m.flags, buf_flags::HOST_BACKED);
    assert_eq!(
        a.shm().unwrap().mappings(),
        vec![(m.offset, 3 * PAGE, true)]
    );
    assert_eq!(region_bytes(&a, m.offset, data.len()), data);
    // Past the size: the file's own bytes (zero), never another buffer's.
    assert_eq!(
        region_bytes(&a, m.offset + data.len() as u64, 100),
        vec![0; 100]
    );

    // The guest writes in place inside its bracket; the host reads the guest's bytes.
    assert_eq!(a.sync(&u, 0, 64, sf::WRITE, 0).unwrap(), Status::Ok);
    assert!(a
        .shm()
        .unwrap()
        .write(m.offset + 10, b"guest wrote")
        .unwrap());
    assert_eq!(
        a.sync(&u, 0, 64, sf::WRITE | sf::END, 0).unwrap(),
        Status::Ok
    );
    host.begin(&u, 0, 64, Access::Read, None).unwrap();
    assert_eq!(host.read(&u, 10, 11).unwrap(), b"guest wrote");
    host.end(&u, 0, 64, Access::Read).unwrap();

    // A host writer excludes the guest: its START waits until the host's END.
    host.begin(&u, 0, PAGE, Access::Write, None).unwrap();
    host.write(&u, 0, b"host wrote").unwrap();
    let p = a.sync_async(&u, 0, PAGE, sf::READ, 0).unwrap();
    assert!(a.is_parked(&p).unwrap());
    host.end(&u, 0, PAGE, Access::Write).unwrap();
    assert_eq!(
        a.wait_pending(&p, Duration::from_secs(5)).unwrap(),
        Status::Ok
    );
    assert_eq!(region_bytes(&a, m.offset, 10), b"host wrote");
    assert_eq!(
        a.sync(&u, 0, PAGE, sf::READ | sf::END, 0).unwrap(),
        Status::Ok
    );

    // One import per UUID; the importer is listed as mapped.
    assert_eq!(a.map(&u).unwrap(), Err(Status::AlreadyExists));
    let pages = a.alloc_buffer(3 * PAGE, false).unwrap();
    let copy = dmabuf_harness::GuestBuffer {
        segs: vec![(pages.segs[0].0, data.len() as u64)],
        size: data.len() as u64,
    };
    assert_eq!(a.attach(&u, &copy).unwrap(), Status::AlreadyExists);
    let mut b = Vm::connect(&d.vm_socket("b"), VmOptions::default()).unwrap();
    let bcopy = b.alloc_buffer(3 * PAGE, false).unwrap();
    let bcopy = dmabuf_harness::GuestBuffer {
        segs: vec![(bcopy.segs[0].0, data.len() as u64)],
        size: data.len() as u64,
    };
    assert_eq!(b.attach(&u, &bcopy).unwrap(), Status::Ok);
    // Both read it: the copy is filled at its START, the mapped import moves nothing.
    let n = data.len() as u64;
    for vm in [&mut a, &mut b] {
        assert_eq!(vm.sync(&u, 0, n, sf::READ, 0).unwrap(), Status::Ok);
        assert_eq!(
            vm.sync(&u, 0, n, sf::READ | sf::END, 0).unwrap(),
            Status::Ok
        );
    }
    // The copy holds the origin's bytes as the mapping shows them (written by both sides).
    assert_eq!(
        b.read_buffer(&bcopy, 0, n).unwrap(),
        region_bytes(&a, m.offset, data.len())
    );
    let info = host.info(&u).unwrap();
    assert_eq!((info.importers, info.mapped), (2, 1));
    let kinds: Vec<(String, bool, u64)> = info
        .importer_list
        .iter()
        .map(|i| (i.vm.clone(), i.mapped, i.copied))
        .collect();
    assert_eq!(
        kinds,
        vec![("a".to_owned(), true, 0), ("b".to_owned(), false, n)]
    );
    assert_eq!(host.list().unwrap()[0].mapped, 1);

    // RELEASE: the mapping is gone when the answer comes.
    assert_eq!(a.release(&u).unwrap(), Status::Ok);
    assert!(a.shm().unwrap().mappings().is_empty());
    assert_eq!(region_bytes(&a, m.offset, 64), vec![0; 64]);
    assert!(!a.shm().unwrap().write(m.offset, b"lost").unwrap());
    assert_eq!(a.sync(&u, 0, 1, sf::READ, 0).unwrap(), Status::NotFound);
    no_unmap_after_reset(&a);
}

#[test]
fn read_only_shares_are_not_mapped_but_copied() {
    // QEMU 11.1.3 maps every range of the region writable, whatever the read-only flag says:
    // a read-only buffer mapped into a guest could be written through by its kernel. MAP
    // refuses (UNSUPPORTED) and the driver imports a copy, which is never written back.
    let d = daemon("4M");
    let mut a = vm(&d, "a");
    let mut host = Client::connect(d.control_socket()).unwrap();
    let ro = ShareFlags {
        read_only: true,
        host_only: false,
    };
    let bytes = pattern(2, 8192);
    let (u, _f) = host.share_bytes(&bytes, ro, &[]).unwrap();
    assert_eq!(a.map(&u).unwrap(), Err(Status::Unsupported));
    assert!(a.shm().unwrap().mappings().is_empty());
    // The fallback: a copy, readable, never writable.
    let (size, flags) = a.lookup(&u).unwrap().unwrap();
    assert_eq!(flags, buf_flags::HOST_BACKED | buf_flags::READ_ONLY);
    let copy = a.alloc_buffer(size, false).unwrap();
    assert_eq!(a.attach(&u, &copy).unwrap(), Status::Ok);
    assert_eq!(a.sync(&u, 0, size, sf::READ, 0).unwrap(), Status::Ok);
    assert_eq!(a.read_buffer(&copy, 0, size).unwrap(), bytes);
    assert_eq!(
        a.sync(&u, 0, 1, sf::WRITE, 0).unwrap(),
        Status::PermissionDenied
    );
    // A host-only share is not even visible.
    let ho = ShareFlags {
        read_only: false,
        host_only: true,
    };
    let (h, _g) = host.share_bytes(&[1; 4096], ho, &[]).unwrap();
    assert_eq!(a.map(&h).unwrap(), Err(Status::NotFound));
}

#[test]
fn revocation_unmaps_at_once_and_keeps_the_range_until_release() {
    let d = daemon("4M");
    let mut a = vm(&d, "a");
    let mut host = Client::connect(d.control_socket()).unwrap();
    let (x, _fx) = host
        .share_bytes(&[0x11; 8192], ShareFlags::default(), &[])
        .unwrap();
    let (y, _fy) = host
        .share_bytes(&[0x22; 8192], ShareFlags::default(), &[])
        .unwrap();
    let mx = a.map(&x).unwrap().unwrap();
    assert_eq!(region_bytes(&a, mx.offset, 4), [0x11; 4]);

    // REVOKE returns once the importer's mapping is gone.
    host.revoke(&x).unwrap();
    assert!(a.shm().unwrap().mappings().is_empty());
    assert_eq!(region_bytes(&a, mx.offset, 8192), vec![0; 8192]);
    let ev = a.wait_events(Duration::from_secs(2)).unwrap();
    assert!(ev.iter().any(|e| e.type_ == event::REVOKED && e.uuid == x));
    assert_eq!(a.sync(&x, 0, 1, sf::READ, 0).unwrap(), Status::Revoked);

    // Until the driver releases X its range is not given to another buffer.
    let my = a.map(&y).unwrap().unwrap();
    assert!(my.offset >= mx.offset + mx.len || my.offset + my.len <= mx.offset);
    assert_eq!(region_bytes(&a, my.offset, 4), [0x22; 4]);
    assert_eq!(region_bytes(&a, mx.offset, 4), [0; 4]);
    assert_eq!(a.release(&x).unwrap(), Status::Ok);
    assert_eq!(a.release(&y).unwrap(), Status::Ok);
    // Everything is free again: a region-sized buffer fits.
    let (z, _fz) = host
        .share_bytes(&vec![0x33; 4 << 20], ShareFlags::default(), &[])
        .unwrap();
    let mz = a.map(&z).unwrap().unwrap();
    assert_eq!((mz.offset, mz.len), (0, 4 << 20));
    no_unmap_after_reset(&a);
}

#[test]
fn a_full_region_answers_no_space_and_the_copy_path_still_works() {
    let d = daemon("2M");
    let mut a = vm(&d, "a");
    let mut host = Client::connect(d.control_socket()).unwrap();
    let (x, _fx) = host
        .share_bytes(&vec![1; 1536 << 10], ShareFlags::default(), &[])
        .unwrap();
    let (y, _fy) = host
        .share_bytes(&vec![2; 1 << 20], ShareFlags::default(), &[])
        .unwrap();
    a.map(&x).unwrap().unwrap();
    assert_eq!(a.map(&y).unwrap(), Err(Status::NoSpace));
    // NO_SPACE left nothing held: the driver falls back to a copy.
    let copy = a.alloc_buffer(1 << 20, false).unwrap();
    assert_eq!(a.attach(&y, &copy).unwrap(), Status::Ok);
    assert_eq!(a.sync(&y, 0, 1 << 20, sf::READ, 0).unwrap(), Status::Ok);
    assert_eq!(a.read_buffer(&copy, 0, 4).unwrap(), [2; 4]);
    assert_eq!(
        a.sync(&y, 0, 1 << 20, sf::READ | sf::END, 0).unwrap(),
        Status::Ok
    );
    assert_eq!(a.release(&y).unwrap(), Status::Ok);
    assert_eq!(a.release(&x).unwrap(), Status::Ok);
    assert!(a.map(&y).unwrap().is_ok());
}

#[test]
fn unsupported_without_shared_memory() {
    // A VMM without shared memory (QEMU 10.2): F_MAP is offered, MAP answers UNSUPPORTED.
    let d = daemon("4M");
    let mut plain = Vm::connect(&d.vm_socket("a"), VmOptions::default()).unwrap();
    assert!(plain.features & (1 << VIRTIO_DMABUF_F_MAP) != 0);
    assert!(plain.shm().is_none());
    let mut host = Client::connect(d.control_socket()).unwrap();
    let (u, _f) = host
        .share_bytes(&[5; 4096], ShareFlags::default(), &[])
        .unwrap();
    assert_eq!(plain.map(&u).unwrap(), Err(Status::Unsupported));
    // Nothing was held: ATTACH works.
    let copy = plain.alloc_buffer(4096, false).unwrap();
    assert_eq!(plain.attach(&u, &copy).unwrap(), Status::Ok);

    // A driver that did not negotiate F_MAP.
    let refuse = VmOptions {
        refuse_features: 1 << VIRTIO_DMABUF_F_MAP,
        ..opts(MemUpdates::AfterReply)
    };
    let mut b = Vm::connect(&d.vm_socket("b"), refuse).unwrap();
    assert_eq!(b.map(&u).unwrap(), Err(Status::Unsupported));

    // --shm-size 0: no F_MAP, no region.
    let d0 = daemon("0");
    let mut c = Vm::connect(&d0.vm_socket("a"), opts(MemUpdates::AfterReply)).unwrap();
    assert_eq!(c.features & (1 << VIRTIO_DMABUF_F_MAP), 0);
    assert!(c.shm().is_none());
    let mut host0 = Client::connect(d0.control_socket()).unwrap();
    let (u0, _f0) = host0
        .share_bytes(&[5; 4096], ShareFlags::default(), &[])
        .unwrap();
    assert_eq!(c.map(&u0).unwrap(), Err(Status::Unsupported));
}

#[test]
fn reset_leaves_the_region_to_the_vmm_and_starts_empty() {
    let d = daemon("4M");
    let mut a = vm(&d, "a");
    let mut host = Client::connect(d.control_socket()).unwrap();
    let (x, _fx) = host
        .share_bytes(&[7; 8192], ShareFlags::default(), &[])
        .unwrap();
    let (y, _fy) = host
        .share_bytes(&[8; 4096], ShareFlags::default(), &[])
        .unwrap();
    a.map(&x).unwrap().unwrap();
    a.map(&y).unwrap().unwrap();
    a.reset().unwrap();
    // The VMM removed the mappings itself; the daemon sends no UNMAP for them (QEMU 11.1.3
    // crashes on one), and the whole region is free again.
    let (z, _fz) = host
        .share_bytes(&vec![9; 4 << 20], ShareFlags::default(), &[])
        .unwrap();
    let mz = a.map(&z).unwrap().unwrap();
    assert_eq!(mz.offset, 0);
    assert_eq!(region_bytes(&a, 0, 4), [9; 4]);
    // The host revokes a buffer the reset VM had mapped before: no UNMAP goes out for it.
    host.revoke(&x).unwrap();
    assert_eq!(a.release(&x).unwrap(), Status::NotFound);
    no_unmap_after_reset(&a);
    // Disconnect with a live mapping, then revoke: nothing hangs, a new connection maps.
    a.disconnect();
    host.revoke(&z).unwrap();
    let mut again = vm(&d, "a");
    assert_eq!(again.map(&y).unwrap().unwrap().offset, 0);
}

#[test]
fn memory_updates_before_the_answer_do_not_deadlock() {
    let d = daemon("4M");
    let mut a = Vm::connect(&d.vm_socket("a"), opts(MemUpdates::BeforeReply)).unwrap();
    let mut host = Client::connect(d.control_socket()).unwrap();
    for i in 0..8u8 {
        let (u, _f) = host
            .share_bytes(&[i; 4096], ShareFlags::default(), &[])
            .unwrap();
        let m = a.map(&u).unwrap().unwrap();
        assert_eq!(region_bytes(&a, m.offset, 1), [i]);
        if i % 2 == 0 {
            assert_eq!(a.release(&u).unwrap(), Status::Ok);
        }
    }
}

#[test]
fn the_region_is_not_guest_ram() {
    let d = daemon("4M");
    let mut a = vm(&d, "a");
    let mut host = Client::connect(d.control_socket()).unwrap();
    let (u, _f) = host
        .share_bytes(&[3; 8192], ShareFlags::default(), &[])
        .unwrap();
    let m = a.map(&u).unwrap().unwrap();
    // The daemon now has the mapped BAR range in its memory table; it is no buffer's page.
    a.shm().unwrap().settle(Duration::from_secs(5)).unwrap();
    let gpa = BAR_GPA + m.offset;
    assert_eq!(
        a.create(4096, 0, &[(gpa, 4096)]).unwrap(),
        Err(Status::InvalidAddress)
    );
    let (v, _g) = host
        .share_bytes(&[4; 4096], ShareFlags::default(), &[])
        .unwrap();
    let fake = dmabuf_harness::GuestBuffer {
        segs: vec![(gpa, 4096)],
        size: 4096,
    };
    assert_eq!(a.attach(&v, &fake).unwrap(), Status::InvalidAddress);
    // Guest RAM still is.
    let real = a.alloc_buffer(4096, false).unwrap();
    assert!(a.create_buffer(&real, 0).unwrap().is_ok());
}

#[test]
fn a_host_file_that_ends_inside_its_last_page_is_copied() {
    // A VMM maps whole pages of a file and refuses a mapping past its end (QEMU 11.1.3:
    // "backing store size ... is too small"): such a share is not mapped, it is copied.
    let d = daemon("4M");
    let mut a = vm(&d, "a");
    let mut host = Client::connect(d.control_socket()).unwrap();
    let bytes = pattern(9, 4096 + 100);
    // share_bytes pads its memfd to whole pages; a file of exactly the buffer's size:
    let f = dmabuf_sys_util::memfd::sealed_memfd_with("short", &bytes).unwrap();
    let u = host
        .share(&f, bytes.len() as u64, ShareFlags::default(), &[])
        .unwrap();
    assert_eq!(a.map(&u).unwrap(), Err(Status::Unsupported));
    assert!(
        a.shm().unwrap().events().is_empty(),
        "nothing was asked of the VMM"
    );
    let (size, _) = a.lookup(&u).unwrap().unwrap();
    let copy = a.alloc_buffer(size, false).unwrap();
    assert_eq!(a.attach(&u, &copy).unwrap(), Status::Ok);
    assert_eq!(a.sync(&u, 0, size, sf::READ, 0).unwrap(), Status::Ok);
    assert_eq!(a.read_buffer(&copy, 0, size).unwrap(), bytes);
}

#[test]
fn a_mapping_the_vmm_refuses_is_unsupported_and_its_range_free_again() {
    let d = daemon("4M");
    let mut a = vm(&d, "a");
    let mut host = Client::connect(d.control_socket()).unwrap();
    let bytes = pattern(4, 8192);
    let (u, _f) = host
        .share_bytes(&bytes, ShareFlags::default(), &[])
        .unwrap();
    a.shm().unwrap().refuse_maps(1);
    assert_eq!(a.map(&u).unwrap(), Err(Status::Unsupported));
    assert!(a
        .shm()
        .unwrap()
        .events()
        .iter()
        .any(|e| matches!(e, ShmEvent::Refused { what: "map", .. })));
    // Nothing is held: the same import is mapped at once, at the range the refusal had.
    let m = a.map(&u).unwrap().unwrap();
    assert_eq!(m.offset, 0);
    assert_eq!(region_bytes(&a, m.offset, 8192), bytes);
}

#[test]
fn more_mappings_than_one_memory_table_holds() {
    // The daemon does not offer CONFIGURE_MEM_SLOTS (QEMU 11.1.3 crashes with it when a device
    // reset with mappings in place is started again), so the front-end sends its memory table
    // whole, and cannot once guest RAM and the mappings pass 8 regions. Mapping goes on; the
    // daemon keeps its last table and every mapping still shows its own buffer's bytes.
    let d = daemon("4M");
    let mut a = vm(&d, "a");
    let mut host = Client::connect(d.control_socket()).unwrap();
    let mut held = Vec::new();
    for seed in 0..12u8 {
        let bytes = pattern(seed, 4096);
        let (u, f) = host
            .share_bytes(&bytes, ShareFlags::default(), &[])
            .unwrap();
        let m = a.map(&u).unwrap().unwrap();
        held.push((u, f, m, bytes));
    }
    a.shm().unwrap().settle(Duration::from_secs(5)).unwrap();
    assert!(a
        .shm()
        .unwrap()
        .events()
        .iter()
        .any(|e| matches!(e, ShmEvent::TableTooLarge { regions } if *regions > 8)));
    for (u, _f, m, bytes) in &held {
        assert_eq!(a.sync(u, 0, 4096, sf::READ, 0).unwrap(), Status::Ok);
        assert_eq!(&region_bytes(&a, m.offset, 4096), bytes);
        assert_eq!(
            a.sync(u, 0, 4096, sf::READ | sf::END, 0).unwrap(),
            Status::Ok
        );
    }
    // Guest RAM is still the daemon's: a new buffer of the VM is read by the host.
    let real = a.alloc_buffer(4096, false).unwrap();
    a.write_buffer(&real, 0, &[0x5a; 4096]).unwrap();
    let g = a.create_buffer(&real, 0).unwrap().unwrap();
    assert_eq!(
        host.read_fenced(&g, 0, 4096, None).unwrap(),
        vec![0x5a; 4096]
    );
    for (u, _f, _m, _bytes) in &held {
        assert_eq!(a.release(u).unwrap(), Status::Ok);
    }
    assert!(a.shm().unwrap().mappings().is_empty());
}

#[test]
fn another_vms_buffer_is_mapped_page_by_page_and_unmapped_before_its_owner_goes_on() {
    let d = daemon("4M");
    let mut a = vm(&d, "a");
    let mut b = vm(&d, "b");
    // Three runs: 2 contiguous pages, then 2 scattered ones; the last one partly used.
    let run = a.alloc_buffer(2 * PAGE, false).unwrap();
    let _gap = a.alloc_buffer(PAGE, false).unwrap();
    let scattered = a.alloc_buffer(2 * PAGE, true).unwrap();
    let size = 4 * PAGE - 1000;
    let mut segs = run.segs.clone();
    segs.extend(scattered.segs.iter().copied());
    let last = segs.len() - 1;
    segs[last].1 -= 1000;
    let buf = dmabuf_harness::GuestBuffer { segs, size };
    let data = pattern(9, size as usize);
    a.write_buffer(&buf, 0, &data).unwrap();
    let u = a.create_buffer(&buf, 0).unwrap().unwrap();

    let m = b.map(&u).unwrap().unwrap();
    assert_eq!((m.len, m.flags), (4 * PAGE, 0));
    // One mapping per run, at consecutive offsets.
    let maps = b.shm().unwrap().mappings();
    assert_eq!(maps.len(), 3, "{maps:?}");
    assert_eq!(maps[0], (m.offset, 2 * PAGE, true));
    assert_eq!(maps[1].0, m.offset + 2 * PAGE);
    assert_eq!(region_bytes(&b, m.offset, size as usize), data);

    // B writes in place: A's own pages change; A writes: B sees it.
    assert_eq!(b.sync(&u, 0, size, sf::WRITE, 0).unwrap(), Status::Ok);
    assert!(b
        .shm()
        .unwrap()
        .write(m.offset + 3 * PAGE + 5, b"from b")
        .unwrap());
    assert_eq!(
        b.sync(&u, 0, size, sf::WRITE | sf::END, 0).unwrap(),
        Status::Ok
    );
    assert_eq!(a.read_buffer(&buf, 3 * PAGE + 5, 6).unwrap(), b"from b");
    assert_eq!(a.sync(&u, 0, 8, sf::WRITE, 0).unwrap(), Status::Ok);
    a.write_buffer(&buf, 0, b"from a").unwrap();
    assert_eq!(
        a.sync(&u, 0, 8, sf::WRITE | sf::END, 0).unwrap(),
        Status::Ok
    );
    assert_eq!(region_bytes(&b, m.offset, 6), b"from a");

    // A's RELEASE is answered only once B no longer maps A's pages.
    assert_eq!(a.release(&u).unwrap(), Status::Ok);
    assert!(b.shm().unwrap().mappings().is_empty());
    assert_eq!(region_bytes(&b, m.offset, 8), [0; 8]);
    let ev = b.wait_events(Duration::from_secs(2)).unwrap();
    assert!(ev.iter().any(|e| e.type_ == event::REVOKED && e.uuid == u));
    assert_eq!(b.release(&u).unwrap(), Status::Ok);

    // The same for A's reset and A's disconnection.
    let u2 = a.create_buffer(&run, 0).unwrap().unwrap();
    b.map(&u2).unwrap().unwrap();
    a.reset().unwrap();
    assert!(b.shm().unwrap().mappings().is_empty());
    assert_eq!(b.release(&u2).unwrap(), Status::Ok);
    let u3 = a.create_buffer(&run, 0).unwrap().unwrap();
    b.map(&u3).unwrap().unwrap();
    a.disconnect();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !b.shm().unwrap().mappings().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "B still maps A's pages"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    no_unmap_after_reset(&b);
}

#[test]
fn guest_buffers_that_cannot_be_mapped() {
    let d = daemon("4M");
    let no_map = VmOptions {
        refuse_features: 1 << VIRTIO_DMABUF_F_MAP,
        ..opts(MemUpdates::AfterReply)
    };
    let mut a = Vm::connect(&d.vm_socket("a"), no_map).unwrap();
    let mut b = vm(&d, "b");
    let p = a.alloc_buffer(PAGE, false).unwrap();
    let u = a.create_buffer(&p, 0).unwrap().unwrap();
    assert_eq!(
        b.map(&u).unwrap(),
        Err(Status::Unsupported),
        "owner without F_MAP"
    );
    drop(a);
    let mut a = vm(&d, "a");
    let p = a.alloc_buffer(2 * PAGE, false).unwrap();
    let (g, _) = p.segs[0];
    // A segment that starts inside a page.
    let v = a.create(100, 0, &[(g + 8, 100)]).unwrap().unwrap();
    assert_eq!(b.map(&v).unwrap(), Err(Status::Unsupported), "unaligned");
    // A buffer of whole pages is mappable; B's own buffer is not (ALREADY_EXISTS).
    let w = a.create(PAGE, 0, &[(g + PAGE, PAGE)]).unwrap().unwrap();
    assert!(b.map(&w).unwrap().is_ok());
    let own = b.alloc_buffer(PAGE, false).unwrap();
    let mine = b.create_buffer(&own, 0).unwrap().unwrap();
    assert_eq!(b.map(&mine).unwrap(), Err(Status::AlreadyExists));
}
