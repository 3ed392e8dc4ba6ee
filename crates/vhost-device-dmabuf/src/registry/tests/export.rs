// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The lifetime of udmabuf exports (spec section 6.3): when the owner lets go of an exported
//! buffer — RELEASE, RELEASE after a host REVOKE, reset — its pages are punched out of guest
//! RAM's memfd before the answer, once; a revoke alone leaves them. There is no /dev/udmabuf
//! here: the export is marked, and the punch is seen in the memfd (the pages read zero again).
//! The udmabuf side is `tests/host_dmabuf.rs`, in a guest that has one.

use vm_memory::FileOffset;

use super::*;

const RAM: u64 = 0x100000;

/// A VM whose RAM is a memfd (as QEMU's `memory-backend-memfd`), and that memfd.
fn memfd_vm(reg: &Arc<Registry>, name: &str) -> (Arc<VmHandle>, std::fs::File) {
    let file = sealed_memfd("ram", RAM).unwrap();
    let fo = FileOffset::new(file.try_clone().unwrap(), 0);
    let mem =
        GuestMem::from_ranges_with_files(&[(GuestAddress(0), RAM as usize, Some(fo))]).unwrap();
    let port = Arc::new(Port::default());
    *lock(&port.registry) = Arc::downgrade(reg);
    (reg.add_vm(name, GuestMemoryAtomic::new(mem), port), file)
}

fn fill(vm: &VmHandle, gpa: u64, len: u64, byte: u8) {
    let data = vec![byte; len as usize];
    vm.mem
        .memory()
        .write_slice(&data, GuestAddress(gpa))
        .unwrap();
}

/// Whether every byte of `gpa..gpa+len` is `byte`, read through the memfd itself.
fn all_are(ram: &std::fs::File, gpa: u64, len: u64, byte: u8) -> bool {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len as usize];
    ram.read_exact_at(&mut buf, gpa).unwrap();
    buf.iter().all(|b| *b == byte)
}

fn exported(reg: &Registry, vm: &Arc<VmHandle>, gpa: u64, len: u64) -> Uuid {
    fill(vm, gpa, len, 0x5a);
    let u = create(reg, vm, gpa, len);
    reg.buffer(&u).unwrap().mark_exported();
    u
}

#[test]
fn release_punches_exported_pages_once_and_plain_ones_never() {
    let reg = registry(Limits::default());
    let (a, ram) = memfd_vm(&reg, "a");

    // A buffer never exported keeps its bytes after RELEASE.
    fill(&a, 0x10000, 2 * PAGE, 0x11);
    let plain = create(&reg, &a, 0x10000, 2 * PAGE);
    reg.release(&a, &plain).unwrap();
    assert!(all_are(&ram, 0x10000, 2 * PAGE, 0x11));

    // An exported one: by the time RELEASE returns, the guest sees fresh zero pages there.
    let u = exported(&reg, &a, 0x20000, 3 * PAGE);
    let buf = reg.buffer(&u).unwrap();
    reg.release(&a, &u).unwrap();
    assert!(all_are(&ram, 0x20000, 3 * PAGE, 0));
    assert!(!buf.exported());
    // The guest reuses the pages: nothing punches them again.
    fill(&a, 0x20000, 3 * PAGE, 0x77);
    assert!(matches!(
        reg.release(&a, &u),
        Err(RegistryError::NotFound(_))
    ));
    assert!(all_are(&ram, 0x20000, 3 * PAGE, 0x77));
    // Its neighbours were not touched.
    assert!(all_are(&ram, 0x10000, 2 * PAGE, 0x11));
}

#[test]
fn a_revoke_leaves_exported_pages_until_the_owner_releases() {
    let reg = registry(Limits::default());
    let (a, ram) = memfd_vm(&reg, "a");
    let u = exported(&reg, &a, 0x30000, PAGE);
    reg.revoke(&u).unwrap();
    // The guest still uses the pages for its (revoked) buffer.
    assert!(all_are(&ram, 0x30000, PAGE, 0x5a));
    reg.release(&a, &u).unwrap();
    assert!(all_are(&ram, 0x30000, PAGE, 0));
}

#[test]
fn reset_and_departure_detach_exports_too() {
    let reg = registry(Limits::default());
    let (a, ram) = memfd_vm(&reg, "a");
    let own = exported(&reg, &a, 0x40000, PAGE);
    let revoked = exported(&reg, &a, 0x50000, PAGE);
    reg.revoke(&revoked).unwrap();
    let kept = create(&reg, &a, 0x60000, PAGE);
    fill(&a, 0x60000, PAGE, 0x33);
    reg.reset_domain(a.domain);
    assert!(all_are(&ram, 0x40000, PAGE, 0));
    assert!(all_are(&ram, 0x50000, PAGE, 0));
    assert!(
        all_are(&ram, 0x60000, PAGE, 0x33),
        "not exported: left alone"
    );
    assert!(reg.info(&own).is_none() && reg.info(&kept).is_none());

    let (b, ram_b) = memfd_vm(&reg, "b");
    let gone = exported(&reg, &b, 0x70000, 2 * PAGE);
    reg.remove_domain(b.domain);
    assert!(reg.info(&gone).is_none());
    assert!(all_are(&ram_b, 0x70000, 2 * PAGE, 0));
}

#[test]
fn only_whole_pages_are_punched() {
    let reg = registry(Limits::default());
    let (a, ram) = memfd_vm(&reg, "a");
    // 100 bytes before a page boundary, one page, 100 bytes after.
    fill(&a, 0x80000 - 100, PAGE + 200, 0x42);
    let u = create(&reg, &a, 0x80000 - 100, PAGE + 200);
    reg.buffer(&u).unwrap().mark_exported();
    reg.release(&a, &u).unwrap();
    assert!(all_are(&ram, 0x80000 - 100, 100, 0x42));
    assert!(all_are(&ram, 0x80000, PAGE, 0));
    assert!(all_are(&ram, 0x81000, 100, 0x42));
}
