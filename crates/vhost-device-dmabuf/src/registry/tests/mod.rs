// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Unit tests of the registry: guest and host operations on a registry without any vhost-user
//! connection. Waits are asserted by state (the arbiter's counts, a completion that has or has
//! not fired), never by sleeping.

mod export;
mod guest;
mod host;

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, Weak};
use std::thread;
use std::time::Duration;

use dmabuf_sys_util::memfd::{memfd, sealed_memfd, sealed_memfd_with};
use virtio_dmabuf_proto::request::{
    AttachRequest, CreateFlags, CreateRequest, SyncPhase, SyncRequest,
};
use virtio_dmabuf_proto::segments::SegmentList;
use virtio_dmabuf_proto::virtio::{event, Event, Uuid};
use virtio_dmabuf_proto::{Direction, Status};
use vm_memory::{Bytes, GuestAddress, GuestAddressSpace, GuestMemoryAtomic};

use super::*;

const PAGE: u64 = 4096;
/// Long enough never to expire in a test that does not wait for it.
const NEVER: u32 = 60_000;

/// A VM's event queue that records what it is told, and checks that it is told with no
/// registry lock held: it reads the registry, which would deadlock under `inner` or `state`.
#[derive(Default)]
struct Port {
    events: Mutex<Vec<Event>>,
    full: AtomicBool,
    registry: Mutex<Weak<Registry>>,
}

impl GuestPort for Port {
    fn post_event(&self, e: &Event) -> bool {
        if let Some(r) = lock(&self.registry).upgrade() {
            let _ = r.list();
        }
        if self.full.load(Ordering::Relaxed) {
            return false;
        }
        lock(&self.events).push(*e);
        true
    }
}

impl Port {
    fn revoked(&self) -> Vec<Uuid> {
        lock(&self.events)
            .iter()
            .filter(|e| u32::from_le(e.type_) == event::REVOKED)
            .map(|e| e.uuid)
            .collect()
    }
}

fn registry(limits: Limits) -> Arc<Registry> {
    Registry::new(limits).unwrap()
}

fn small() -> Limits {
    Limits {
        max_buffers: 3,
        max_bytes: 16 * PAGE,
        max_total_segments: 6,
        sync_timeout: Duration::from_secs(2),
        ..Limits::default()
    }
}

/// A VM with 4 MiB of RAM around QEMU's hole, and its port.
fn vm(reg: &Arc<Registry>, name: &str) -> (Arc<VmHandle>, Arc<Port>) {
    let mem = GuestMem::from_ranges(&[
        (GuestAddress(0), 0xa0000),
        (GuestAddress(0xc0000), 0x400000 - 0xc0000),
    ])
    .unwrap();
    let port = Arc::new(Port::default());
    *lock(&port.registry) = Arc::downgrade(reg);
    let vm = reg.add_vm(name, GuestMemoryAtomic::new(mem), port.clone());
    (vm, port)
}

fn segments(pairs: &[(u64, u64)]) -> SegmentList {
    SegmentList::from_pairs(pairs.iter().copied()).unwrap()
}

fn create_with(
    reg: &Registry,
    vm: &Arc<VmHandle>,
    pairs: &[(u64, u64)],
    flags: CreateFlags,
) -> Result<Uuid, RegistryError> {
    let size = pairs.iter().map(|p| p.1).sum();
    let segments = segments(pairs);
    reg.create(
        vm,
        CreateRequest {
            size,
            flags,
            segments,
        },
    )
}

fn create(reg: &Registry, vm: &Arc<VmHandle>, gpa: u64, size: u64) -> Uuid {
    create_with(reg, vm, &[(gpa, size)], CreateFlags::default()).unwrap()
}

fn attach(
    reg: &Registry,
    vm: &Arc<VmHandle>,
    uuid: &Uuid,
    gpa: u64,
    size: u64,
) -> Result<(), RegistryError> {
    let segments = segments(&[(gpa, size)]);
    reg.attach(
        vm,
        AttachRequest {
            uuid: *uuid,
            segments,
        },
    )
}

/// A SYNC of `vm`; the receiver gets the outcome of a parked START.
fn sync(
    reg: &Registry,
    vm: &VmHandle,
    uuid: &Uuid,
    (offset, len): (u64, u64),
    dir: Direction,
    phase: SyncPhase,
) -> (SyncOutcome, Receiver<Result<(), RegistryError>>) {
    let (tx, rx) = mpsc::channel();
    let req = SyncRequest {
        uuid: *uuid,
        offset,
        len,
        dir,
        phase,
    };
    let done: Completion = Box::new(move |r| {
        let _ = tx.send(r);
    });
    (reg.guest_sync(vm, &req, done), rx)
}

fn start(
    reg: &Registry,
    vm: &VmHandle,
    uuid: &Uuid,
    range: (u64, u64),
    dir: Direction,
) -> SyncOutcome {
    let phase = SyncPhase::Start { timeout_ms: NEVER };
    sync(reg, vm, uuid, range, dir, phase).0
}

fn end(reg: &Registry, vm: &VmHandle, uuid: &Uuid, range: (u64, u64), dir: Direction) -> Status {
    match sync(reg, vm, uuid, range, dir, SyncPhase::End).0 {
        SyncOutcome::Done(r) => status(r),
        SyncOutcome::Parked => panic!("an END parked"),
    }
}

fn status<T: std::fmt::Debug>(r: Result<T, RegistryError>) -> Status {
    r.map_or_else(|e| e.status(), |_| Status::Ok)
}

fn done(o: SyncOutcome) -> Status {
    match o {
        SyncOutcome::Done(r) => status(r),
        SyncOutcome::Parked => panic!("parked"),
    }
}

/// Granted and waiting accesses of a buffer: how waits are asserted.
fn counts(reg: &Registry, uuid: &Uuid) -> (usize, usize) {
    reg.buffer(uuid).unwrap().counts()
}

fn write_guest(vm: &VmHandle, gpa: u64, data: &[u8]) {
    vm.mem
        .memory()
        .write_slice(data, GuestAddress(gpa))
        .unwrap();
}

fn read_guest(vm: &VmHandle, gpa: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    vm.mem
        .memory()
        .read_slice(&mut v, GuestAddress(gpa))
        .unwrap();
    v
}
