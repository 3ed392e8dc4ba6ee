// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Fuzz driver: arbitrary bytes as virtqueue requests, decoded and validated by the daemon's real
//! vhost-user backend.
//!
//! The input is a sequence of requests. Each is written into a guest RAM with QEMU's layout (low
//! RAM, the hole at 0xa0000-0xc0000, then two adjacent regions), put on a split virtqueue as a
//! descriptor chain whose shape the input also chooses (split, indirect, misordered, reaching
//! into the hole, looping...), and handed to `DmabufBackend::handle_event` — the same entry point
//! the vhost-user daemon framework calls on a kick. So the chain checks (`ChainShape`, virtio-queue's
//! `Reader` and `Writer`), the protocol crate's decoder (`request::read_header`, `read_body`, the
//! segment list reader) and the registry calls behind them run exactly as in the daemon.
//!
//! Beyond "no panic", each answer is checked against an independent model of the spec (sections
//! 6 and 9): the status of every chain (a request reaching into the hole is `INVALID_ADDRESS`, a
//! response area in it is used with length 0, neither acted on), the used length, and — with
//! `SegList::build` as the reference for segment validation — the CREATE and ATTACH verdicts,
//! quotas, LOOKUP flags, SYNC flags and arbitration and the write generation (which only an
//! `OK` write END may advance).
//!
//! Input format (all little-endian):
//! ```text
//! byte 0: global flags — bit 0: the driver refuses VIRTIO_DMABUF_F_IMPORT
//! then per request:
//!   ctl   u8  bits 0-2 layout (see `Layout`), bit 3 substitute the UUID (its first byte picks a
//!             known buffer), bits 4-6 response size (`RESP_SIZES`), bit 7 split the response
//!   split u8  readable part cut into descriptors of this many bytes (0: one descriptor)
//!   len   u16 request bytes that follow (clamped to what is left)
//!   bytes
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use vhost_device_dmabuf::memory::{check_range, GuestMem, MemError, SegList};
use vhost_device_dmabuf::registry::{HostRange, HostSession, Limits, Registry, ShareRequest};
use vhost_device_dmabuf::vhu_dmabuf::DmabufBackend;
use vhost_user_backend::{VhostUserBackend, VringRwLock, VringT};
use virtio_dmabuf_proto::request::{CreateFlags, CreateRequest};
use virtio_dmabuf_proto::segments::SegmentList;
use virtio_dmabuf_proto::virtio::{buf_flags, req, Uuid, REQUEST_QUEUE, VIRTIO_DMABUF_F_IMPORT};
use virtio_dmabuf_proto::Status;
use virtio_queue::QueueT;
use vm_memory::{Bytes, GuestAddress, GuestMemoryAtomic};
use vmm_sys_util::epoll::EventSet;

const QUEUE_SIZE: u16 = 128;
const DESC: u64 = 0x1000;
const AVAIL: u64 = 0x1800;
const USED: u64 = 0x2000;
const EVT_DESC: u64 = 0x2800;
const EVT_AVAIL: u64 = 0x2a00;
const EVT_USED: u64 = 0x2c00;
const EVT_BUFS: u64 = 0x2e00;
const EVT_QUEUE_SIZE: u16 = 8;
/// Indirect tables: one 0x800-byte slot per chain.
const INDIRECT: u64 = 0x3000;
/// Requests are laid out one after the other here.
const REQ_AREA: u64 = 0x10000;
const REQ_AREA_END: u64 = 0x90000;
/// Response areas: 0x100 bytes per chain, in the region after the hole.
const RESP_AREA: u64 = 0xc0000;
/// Where an "adjacent" request straddles two regions with no gap between them.
const ADJACENT: u64 = 0x100000;
const HOLE_START: u64 = 0xa0000;
const RAM_END: u64 = 0x200000;
/// Most chains per input (each owns `DESC_PER_CHAIN` descriptors of the table).
const MAX_CHAINS: usize = 8;
const DESC_PER_CHAIN: u16 = QUEUE_SIZE / MAX_CHAINS as u16;
/// Most readable descriptors per chain (more go into an indirect table).
const MAX_PIECES: usize = 64;
const RESP_SIZES: [u32; 8] = [64, 24, 8, 0, 4, 16, 23, 40];

const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;
const F_INDIRECT: u16 = 4;

/// How a chain is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// Direct descriptors: readable pieces, then the writable part.
    Direct,
    /// The same descriptors in an indirect table.
    Indirect,
    /// A writable descriptor before the readable ones.
    Misordered,
    /// The request ends inside the hole: the part read first is RAM, the rest is not.
    IntoHole,
    /// The writable part lies in the hole.
    WritableInHole,
    /// The last descriptor points back at the head (a loop).
    Loop,
    /// An indirect descriptor whose table is outside guest memory.
    BadIndirect,
    /// The request straddles two adjacent regions (valid RAM).
    Adjacent,
}

impl Layout {
    fn from_bits(b: u8) -> Layout {
        match b & 7 {
            0 => Layout::Direct,
            1 => Layout::Indirect,
            2 => Layout::Misordered,
            3 => Layout::IntoHole,
            4 => Layout::WritableInHole,
            5 => Layout::Loop,
            6 => Layout::BadIndirect,
            _ => Layout::Adjacent,
        }
    }
}

/// Limits of the fuzzed device: small, so that quotas and segment limits are reachable.
fn limits() -> Limits {
    Limits {
        max_segments: 64,
        max_buffers: 6,
        max_bytes: 1 << 20,
        max_total_segments: 96,
        sync_timeout: Duration::from_millis(2),
        cross_vm: true,
        max_host_buffers: 16,
        poll_max: Duration::ZERO,
        shm_size: 0,
        shm_reply_bound: Duration::from_millis(10),
    }
}

/// A buffer registered outside the fuzzed VM, which the input can name.
#[derive(Clone, Debug)]
struct Fixture {
    uuid: Uuid,
    size: u64,
    /// What LOOKUP answers the fuzzed VM.
    lookup: Result<u32, Status>,
    /// A host session holds write access to this range: overlapping STARTs wait.
    blocked: Option<(u64, u64)>,
}

struct World {
    registry: Arc<Registry>,
    backend: DmabufBackend,
    mem: GuestMem,
    vrings: Vec<VringRwLock>,
    fixtures: Vec<Fixture>,
    _owner: DmabufBackend,
    _holder: HostSession,
    _host_file: std::fs::File,
}

fn world() -> MutexGuard<'static, World> {
    static WORLD: OnceLock<Mutex<World>> = OnceLock::new();
    WORLD
        .get_or_init(|| Mutex::new(World::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// The fuzzed VM's RAM: QEMU's low RAM and hole, then two adjacent regions.
pub fn guest_ram() -> GuestMem {
    GuestMem::from_ranges(&[
        (GuestAddress(0), HOLE_START as usize),
        (GuestAddress(0xc0000), (ADJACENT - 0xc0000) as usize),
        (GuestAddress(ADJACENT), (RAM_END - ADJACENT) as usize),
    ])
    .expect("guest RAM")
}

impl World {
    fn new() -> World {
        let registry = Registry::new(limits()).expect("registry");
        let mem = guest_ram();
        let atomic = GuestMemoryAtomic::new(mem.clone());
        let backend =
            DmabufBackend::new(registry.clone(), "fuzz", atomic.clone()).expect("backend");
        let vrings = vec![
            VringRwLock::new(atomic.clone(), QUEUE_SIZE).expect("vring"),
            VringRwLock::new(atomic, EVT_QUEUE_SIZE).expect("vring"),
        ];

        // Another VM owns a few buffers the fuzzed VM may import.
        let owner_mem = GuestMem::from_ranges(&[(GuestAddress(0), 0x100000)]).expect("owner RAM");
        let owner =
            DmabufBackend::new(registry.clone(), "owner", GuestMemoryAtomic::new(owner_mem))
                .expect("owner backend");
        let create = |gpa: u64, size: u64, flags: u32| {
            let req = CreateRequest {
                size,
                flags: CreateFlags::from_bits(flags).expect("fixture flags"),
                segments: SegmentList::from_pairs([(gpa, size)]).expect("fixture segment"),
            };
            registry.create(owner.vm(), req).expect("fixture buffer")
        };
        let plain = create(0x10000, 8192, 0);
        let read_only = create(0x20000, 4096, buf_flags::READ_ONLY);
        let host_only = create(0x30000, 4096, buf_flags::HOST_ONLY);
        let contended = create(0x40000, 8192, 0);
        let host_file = dmabuf_client::memfd::sealed_memfd("fuzz-host", 8192).expect("memfd");
        let host = registry
            .share(ShareRequest {
                file: host_file.try_clone().expect("dup"),
                size: 8192,
                read_only: false,
                host_only: false,
                allowed_vms: Vec::new(),
                owner: "host:fuzz".into(),
            })
            .expect("host buffer");
        let holder = HostSession::new(&registry);
        holder
            .begin(&HostRange::write(&contended, 0, 4096), 0)
            .expect("holding the contended range");
        let fixtures = vec![
            Fixture {
                uuid: plain,
                size: 8192,
                lookup: Ok(0),
                blocked: None,
            },
            Fixture {
                uuid: read_only,
                size: 4096,
                lookup: Ok(buf_flags::READ_ONLY),
                blocked: None,
            },
            Fixture {
                uuid: host_only,
                size: 4096,
                lookup: Err(Status::NotFound),
                blocked: None,
            },
            Fixture {
                uuid: host,
                size: 8192,
                lookup: Ok(buf_flags::HOST_BACKED),
                blocked: None,
            },
            Fixture {
                uuid: contended,
                size: 8192,
                lookup: Ok(0),
                blocked: Some((0, 4096)),
            },
        ];
        World {
            registry,
            backend,
            mem,
            vrings,
            fixtures,
            _owner: owner,
            _holder: holder,
            _host_file: host_file,
        }
    }

    /// Fresh rings for a new input (the device state was reset at the end of the last one).
    fn reset_rings(&self, event_queue: bool) {
        // A static page of zeros: no allocation and no memset per input.
        static ZERO: [u8; (REQ_AREA - DESC) as usize] = [0; (REQ_AREA - DESC) as usize];
        self.mem
            .write_slice(&ZERO, GuestAddress(DESC))
            .expect("ring area");
        let setup = |v: &VringRwLock, size: u16, desc: u64, avail: u64, used: u64, ready: bool| {
            v.get_mut().get_queue_mut().reset();
            v.set_queue_size(size);
            v.set_queue_info(desc, avail, used)
                .expect("queue addresses");
            v.set_queue_ready(ready);
            v.set_enabled(ready);
        };
        setup(&self.vrings[0], QUEUE_SIZE, DESC, AVAIL, USED, true);
        setup(
            &self.vrings[1],
            EVT_QUEUE_SIZE,
            EVT_DESC,
            EVT_AVAIL,
            EVT_USED,
            event_queue,
        );
        // Event buffers, as a driver keeps them posted.
        for i in 0..EVT_QUEUE_SIZE {
            let d = desc_bytes(EVT_BUFS + u64::from(i) * 32, 24, F_WRITE, 0);
            self.write(EVT_DESC + u64::from(i) * 16, &d);
            self.write(EVT_AVAIL + 4 + u64::from(i) * 2, &i.to_le_bytes());
        }
        self.write(EVT_AVAIL + 2, &EVT_QUEUE_SIZE.to_le_bytes());
    }

    fn write(&self, gpa: u64, data: &[u8]) {
        self.mem
            .write_slice(data, GuestAddress(gpa))
            .expect("harness write inside RAM");
    }

    fn read(&self, gpa: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.mem
            .read_slice(&mut v, GuestAddress(gpa))
            .expect("harness read inside RAM");
        v
    }

    fn kick(&self) {
        // Errors (a queue the input corrupted) are the daemon's to report, not to panic over.
        let _ = self
            .backend
            .handle_event(REQUEST_QUEUE, EventSet::IN, &self.vrings, 0);
    }

    fn generation(&self, uuid: &Uuid) -> Option<u64> {
        self.registry.info(uuid).map(|i| i.write_generation)
    }
}

fn desc_bytes(addr: u64, len: u32, flags: u16, next: u16) -> [u8; 16] {
    let mut d = [0u8; 16];
    d[..8].copy_from_slice(&addr.to_le_bytes());
    d[8..12].copy_from_slice(&len.to_le_bytes());
    d[12..14].copy_from_slice(&flags.to_le_bytes());
    d[14..].copy_from_slice(&next.to_le_bytes());
    d
}

/// One request of the input.
struct ChainSpec<'a> {
    layout: Layout,
    substitute: bool,
    resp_len: u32,
    split_resp: bool,
    split: usize,
    bytes: &'a [u8],
}

fn parse(mut data: &[u8]) -> Vec<ChainSpec<'_>> {
    let mut out = Vec::new();
    while !data.is_empty() && out.len() < MAX_CHAINS {
        let (ctl, split, len) = match data {
            [c, s, l0, l1, ..] => (*c, *s, usize::from(u16::from_le_bytes([*l0, *l1]))),
            _ => (0, 0, data.len()),
        };
        let header = if data.len() >= 4 { 4 } else { 0 };
        let rest = &data[header..];
        let len = len.min(rest.len());
        out.push(ChainSpec {
            layout: Layout::from_bits(ctl),
            substitute: ctl & 8 != 0,
            resp_len: RESP_SIZES[usize::from((ctl >> 4) & 7)],
            split_resp: ctl & 0x80 != 0,
            split: usize::from(split),
            bytes: &rest[..len],
        });
        data = &rest[len..];
    }
    out
}

/// What the fuzzed VM holds, as the spec says the device must see it.
#[derive(Clone, Debug)]
struct Held {
    size: u64,
    own: bool,
    read_only: bool,
    runs: u64,
    blocked: Option<(u64, u64)>,
    /// An attached copy over the harness's rings, requests or responses.
    hazard: bool,
}

/// Whether a segment touches guest memory the harness itself uses.
fn touches_harness(segs: &[(u64, u64)]) -> bool {
    const USED_BY_HARNESS: [(u64, u64); 3] = [
        (0, HOLE_START),
        (RESP_AREA, RESP_AREA + 0x1000),
        (ADJACENT - 0x10000, ADJACENT + 0x10000),
    ];
    segs.iter().any(|&(a, l)| {
        USED_BY_HARNESS
            .iter()
            .any(|&(s, e)| a < e && s < a.saturating_add(l))
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Granted {
    uuid: Uuid,
    offset: u64,
    len: u64,
    read: bool,
    write: bool,
}

#[derive(Default)]
struct Model {
    held: HashMap<Uuid, Held>,
    bytes: u64,
    segments: u64,
    granted: Vec<Granted>,
    /// UUIDs of buffers the VM created in this input and has not released.
    created: Vec<(Uuid, u64)>,
    /// Statuses the model cannot predict any more (a request acted on without an answer).
    unsure: bool,
    /// The device copied into pages the harness uses for rings and requests.
    hazard: bool,
}

impl Model {
    fn quota_ok(&self, l: &Limits, size: u64, runs: u64) -> bool {
        (self.held.len() as u64) < u64::from(l.max_buffers)
            && self.bytes.saturating_add(size) <= l.max_bytes
            && self.segments.saturating_add(runs) <= l.max_total_segments
    }

    fn add(&mut self, uuid: Uuid, h: Held) {
        self.bytes += h.size;
        self.segments += h.runs;
        self.held.insert(uuid, h);
    }

    fn release(&mut self, uuid: &Uuid) -> bool {
        let Some(h) = self.held.remove(uuid) else {
            return false;
        };
        self.bytes -= h.size;
        self.segments -= h.runs;
        self.granted.retain(|g| &g.uuid != uuid);
        self.created.retain(|(u, _)| u != uuid);
        true
    }
}

/// What the device must answer a chain (for the chains whose answer the model can predict).
#[derive(Debug, PartialEq, Eq)]
enum Expect {
    /// Used with this status and length.
    Answer(Status, u32),
    /// Used with length 0 (no status can be written, or the chain cannot be walked).
    Silent,
    /// CREATE succeeds: 24 bytes, a fresh UUID; the model learns it from the answer.
    Created { size: u64, runs: u64 },
    /// LOOKUP succeeds with this size and these flags.
    Found { size: u64, flags: u32 },
    /// Left waiting (a START that conflicts), or already answered TIMEOUT / CANCELLED.
    Waits,
    /// Any valid status.
    Any,
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn uuid_at(b: &[u8], at: usize) -> Uuid {
    b[at..at + 16].try_into().expect("16 bytes")
}

/// Segments of a CREATE or ATTACH body, if the request holds all `nr` of them.
fn segments(b: &[u8], at: usize, nr: u32) -> Option<Vec<(u64, u64)>> {
    let need = at.checked_add(nr as usize * 16)?;
    if b.len() < need {
        return None;
    }
    Some(
        (0..nr as usize)
            .map(|i| (le64(b, at + i * 16), le64(b, at + i * 16 + 8)))
            .collect(),
    )
}

/// The reference verdict on a segment list: `SegList::build`, split into the errors found while
/// parsing (before the flag and ownership checks) and those found when the list is finished.
enum SegVerdict {
    Parse(Status),
    Finish(Status),
    Ok(u64),
}

fn seg_verdict(segs: &[(u64, u64)], size: u64, mem: &GuestMem) -> SegVerdict {
    match SegList::build(segs.iter().copied(), size, mem) {
        Ok(list) => SegVerdict::Ok(list.runs() as u64),
        Err(e @ MemError::Segment(_)) => SegVerdict::Parse(e.status()),
        Err(e) => SegVerdict::Finish(e.status()),
    }
}

/// `DMABUF_FUZZ_TRACE=1`: print each chain, the model's expectation and the answer.
fn trace() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("DMABUF_FUZZ_TRACE").is_some())
}

/// Run one input.
pub fn run(data: &[u8]) {
    let (global, chains) = match data.split_first() {
        Some((g, rest)) => (*g, parse(rest)),
        None => return,
    };
    let w = world();
    let import = global & 1 == 0;
    let mut features = w.backend.features();
    if !import {
        features &= !(1 << VIRTIO_DMABUF_F_IMPORT);
    }
    w.backend.acked_features(features);
    w.reset_rings(global & 2 == 0);

    let mut model = Model::default();
    let mut used_seen: u16 = 0;
    let mut answers: HashMap<u16, u32> = HashMap::new();
    let mut waiting: Vec<u16> = Vec::new();
    let mut req_next = REQ_AREA;
    let mut corrupted = false;
    let mut avail_idx: u16 = 0;

    for (k, spec) in chains.iter().enumerate() {
        let mut bytes = spec.bytes.to_vec();
        let kind = (bytes.len() >= 4).then(|| le32(&bytes, 0));
        if spec.substitute && bytes.len() >= 24 {
            if let Some(req::RELEASE | req::LOOKUP | req::ATTACH | req::SYNC) = kind {
                let known: Vec<Uuid> = w
                    .fixtures
                    .iter()
                    .map(|f| f.uuid)
                    .chain(model.created.iter().map(|c| c.0))
                    .collect();
                let pick = known[usize::from(bytes[8]) % known.len()];
                bytes[8..24].copy_from_slice(&pick);
            }
        }

        // Where the request bytes go.
        let len = bytes.len() as u64;
        let req_gpa = match spec.layout {
            Layout::IntoHole => HOLE_START - len / 2,
            Layout::Adjacent => ADJACENT - len / 2,
            _ => {
                let at = (req_next + 63) & !63;
                if at + len > REQ_AREA_END {
                    break;
                }
                req_next = at + len;
                at
            }
        };
        if spec.layout != Layout::IntoHole {
            w.write(req_gpa, &bytes);
        } else {
            w.write(req_gpa, &bytes[..(len / 2) as usize]);
        }

        // The chain's buffers, in order.
        let resp_gpa = RESP_AREA + k as u64 * 0x100;
        w.write(resp_gpa, &[0xee; 0x100]);
        let mut bufs: Vec<(u64, u32, bool)> = Vec::new();
        if !bytes.is_empty() {
            let chunk = match spec.split {
                0 => bytes.len(),
                n => n.max(bytes.len().div_ceil(MAX_PIECES)),
            };
            let mut at = 0usize;
            while at < bytes.len() {
                let n = chunk.min(bytes.len() - at);
                bufs.push((req_gpa + at as u64, n as u32, false));
                at += n;
            }
        }
        let resp_at = if spec.layout == Layout::WritableInHole {
            HOLE_START + 0x1000
        } else {
            resp_gpa
        };
        if spec.resp_len > 0 {
            if spec.split_resp && spec.resp_len > 4 {
                bufs.push((resp_at, 4, true));
                bufs.push((resp_at + 4, spec.resp_len - 4, true));
            } else {
                bufs.push((resp_at, spec.resp_len, true));
            }
        }
        if spec.layout == Layout::Misordered {
            // Move the last writable descriptor to the front.
            if let Some(pos) = bufs.iter().rposition(|b| b.2) {
                let b = bufs.remove(pos);
                bufs.insert(0, b);
            }
        }
        if bufs.is_empty() {
            continue;
        }
        // Where the device writes the status: the first writable descriptor.
        let status_at = match bufs.iter().find(|b| b.2) {
            Some(b) if spec.layout != Layout::WritableInHole => b.0,
            _ => resp_gpa,
        };
        let base = k as u16 * DESC_PER_CHAIN;
        let indirect = matches!(spec.layout, Layout::Indirect | Layout::BadIndirect)
            || bufs.len() > usize::from(DESC_PER_CHAIN);
        if indirect {
            let table = INDIRECT + k as u64 * 0x800;
            for (i, &(addr, l, wr)) in bufs.iter().enumerate() {
                let last = i + 1 == bufs.len();
                let (flags, next) = if last && spec.layout == Layout::Loop {
                    (F_NEXT, 0)
                } else if last {
                    (0, 0)
                } else {
                    (F_NEXT, i as u16 + 1)
                };
                let flags = flags | if wr { F_WRITE } else { 0 };
                w.write(table + i as u64 * 16, &desc_bytes(addr, l, flags, next));
            }
            let table_at = if spec.layout == Layout::BadIndirect {
                RAM_END + 0x10000
            } else {
                table
            };
            w.write(
                DESC + u64::from(base) * 16,
                &desc_bytes(table_at, bufs.len() as u32 * 16, F_INDIRECT, 0),
            );
        } else {
            for (i, &(addr, l, wr)) in bufs.iter().enumerate() {
                let last = i + 1 == bufs.len();
                let idx = base + i as u16;
                let (flags, next) = if last && spec.layout == Layout::Loop {
                    (F_NEXT, base)
                } else if last {
                    (0, 0)
                } else {
                    (F_NEXT, idx + 1)
                };
                let flags = flags | if wr { F_WRITE } else { 0 };
                w.write(
                    DESC + u64::from(idx) * 16,
                    &desc_bytes(addr, l, flags, next),
                );
            }
        }
        w.write(AVAIL + 4 + u64::from(avail_idx) * 2, &base.to_le_bytes());
        avail_idx += 1;
        w.write(AVAIL + 2, &avail_idx.to_le_bytes());

        let snapshot_desc = w.read(DESC, (USED - DESC) as usize);
        let snapshot_req = if spec.layout == Layout::IntoHole {
            Vec::new()
        } else {
            w.read(req_gpa, bytes.len())
        };
        let expect = if corrupted || model.unsure {
            Expect::Any
        } else {
            expect(&w, &mut model, spec, &bytes, import)
        };
        let generation_before = sync_target(&bytes).and_then(|u| w.generation(&u));

        w.kick();
        if model.hazard {
            corrupted = true;
        }

        // Did the request's own effects rewrite the rings or the request (an attached copy
        // placed over them)? Then the chains after it are the hostile guest's problem.
        if w.read(DESC, (USED - DESC) as usize) != snapshot_desc
            || (spec.layout != Layout::IntoHole && w.read(req_gpa, bytes.len()) != snapshot_req)
        {
            corrupted = true;
        }
        let used_idx = u16::from_le_bytes(w.read(USED + 2, 2).try_into().expect("2 bytes"));
        if used_idx.wrapping_sub(used_seen) > QUEUE_SIZE {
            corrupted = true;
        }
        if !corrupted {
            while used_seen != used_idx {
                let e = w.read(USED + 4 + u64::from(used_seen % QUEUE_SIZE) * 8, 8);
                answers.insert(le32(&e, 0) as u16, le32(&e, 4));
                used_seen = used_seen.wrapping_add(1);
            }
        }
        if corrupted {
            continue;
        }
        let answer = answers.remove(&base);
        if trace() {
            eprintln!(
                "chain {k}: {:?} bufs {bufs:x?} indirect {indirect} expect {expect:?} answer {answer:?} status {:?}",
                spec.layout,
                w.read(status_at, 8)
            );
        }
        let answered = answer.filter(|len| *len >= 8).map(|_| {
            let raw = le32(&w.read(status_at, 4), 0);
            Status::from_u32(raw).unwrap_or_else(|| panic!("chain {k}: invalid status {raw}"))
        });
        let what = format!("chain {k} ({:?}, {} bytes)", spec.layout, bytes.len());
        match (&expect, answer) {
            (Expect::Waits, None) => waiting.push(base),
            (Expect::Any, None) => {}
            (_, None) => panic!("{what} not answered, expected {expect:?}"),
            (Expect::Answer(s, l), Some(len)) => {
                assert_eq!((len, answered), (*l, Some(*s)), "{what}");
            }
            (Expect::Silent, Some(len)) => {
                assert_eq!(len, 0, "{what}: used length")
            }
            (Expect::Created { size, runs }, Some(len)) => {
                assert_eq!((len, answered), (24, Some(Status::Ok)), "{what}");
                let uuid = uuid_at(&w.read(status_at, 24), 8);
                assert_eq!(uuid[6] >> 4, 4, "{what}: version 4 UUID");
                assert_eq!(uuid[8] & 0xc0, 0x80, "{what}: RFC 4122 variant");
                assert!(
                    !model.held.contains_key(&uuid) && !w.fixtures.iter().any(|f| f.uuid == uuid),
                    "{what}: UUID reused"
                );
                model.add(
                    uuid,
                    Held {
                        size: *size,
                        own: true,
                        read_only: false,
                        runs: *runs,
                        blocked: None,
                        hazard: false,
                    },
                );
                model.created.push((uuid, *size));
            }
            (Expect::Found { size, flags }, Some(len)) => {
                assert_eq!((len, answered), (24, Some(Status::Ok)), "{what}");
                let r = w.read(status_at, 24);
                assert_eq!(
                    (le64(&r, 8), le32(&r, 16), le32(&r, 20)),
                    (*size, *flags, 0),
                    "{what}"
                );
            }
            (Expect::Waits, Some(len)) => {
                assert_eq!(len, 8, "{what}");
                assert!(
                    matches!(answered, Some(Status::Timeout | Status::Cancelled)),
                    "{what}: a waiting START answered {answered:?}"
                );
            }
            // Unpredictable, or the rings may hold what a hostile copy put there.
            (Expect::Any, Some(_)) => {}
        }
        // The write generation moves only with an OK write END.
        if let (Some(before), Some(u)) = (generation_before, sync_target(&bytes)) {
            let after = w.generation(&u).unwrap_or(before);
            let ok_write_end = answered == Some(Status::Ok) && sync_is_write_end(&bytes);
            if !model.unsure {
                assert_eq!(
                    after != before,
                    ok_write_end,
                    "{what}: write generation {before} -> {after} after a SYNC answered {answered:?}"
                );
            }
        }
        // Late answers of waiting STARTs: TIMEOUT (their bound) or CANCELLED (released).
        waiting.retain(|h| match answers.remove(h) {
            Some(len) => {
                let at = RESP_AREA + u64::from(*h / DESC_PER_CHAIN) * 0x100;
                let s = Status::from_u32(le32(&w.read(at, 4), 0));
                assert!(len == 8, "waiting START used length {len}");
                assert!(
                    matches!(s, Some(Status::Timeout | Status::Cancelled)),
                    "a waiting START answered {s:?}"
                );
                false
            }
            None => true,
        });
    }
    // The device forgets everything this VM did (as on a driver reset).
    w.backend.reset_device();
}

/// A SYNC as the model reads it.
struct Op {
    uuid: Uuid,
    offset: u64,
    len: u64,
    read: bool,
    write: bool,
    end: bool,
}

/// The UUID of a SYNC request (the generation of that buffer is watched).
fn sync_target(b: &[u8]) -> Option<Uuid> {
    (b.len() >= 48 && le32(b, 0) == req::SYNC && le32(b, 4) == 0).then(|| uuid_at(b, 8))
}

fn sync_is_write_end(b: &[u8]) -> bool {
    let flags = le32(b, 40);
    flags & 2 != 0 && flags & 4 != 0
}

/// The model's prediction for one chain, and the model updated as if it happened.
fn expect(w: &World, m: &mut Model, spec: &ChainSpec<'_>, b: &[u8], import: bool) -> Expect {
    let cap = spec.resp_len;
    if matches!(spec.layout, Layout::Loop | Layout::BadIndirect) {
        return Expect::Silent;
    }
    if cap < 8 {
        return Expect::Silent;
    }
    let status = |s: Status| Expect::Answer(s, 8);
    if spec.layout == Layout::Misordered {
        return status(Status::InvalidRequest);
    }
    if spec.layout == Layout::WritableInHole {
        // The whole response area is resolved before the request is read: nothing can be
        // written, so nothing is done (spec section 9).
        return Expect::Silent;
    }
    if spec.layout == Layout::IntoHole {
        // Every readable descriptor is resolved before a byte is decoded.
        return status(if b.is_empty() {
            Status::InvalidRequest
        } else {
            Status::InvalidAddress
        });
    }
    if b.len() < 8 {
        return status(Status::InvalidRequest);
    }
    if le32(b, 4) != 0 {
        return status(Status::InvalidRequest);
    }
    let kind = le32(b, 0);
    let needed = match kind {
        req::CREATE | req::LOOKUP => 24,
        req::MAP => 32,
        _ => 8,
    };
    if cap < needed {
        return status(Status::ResponseTooSmall);
    }
    let l = w.registry.limits();
    match kind {
        req::CREATE => {
            if b.len() < 24 {
                return status(Status::InvalidRequest);
            }
            let size = le64(b, 8);
            let flags = le32(b, 16);
            let nr = le32(b, 20);
            if nr == 0 || size == 0 {
                return status(Status::InvalidSize);
            }
            if nr > l.max_segments {
                return status(Status::TooManySegments);
            }
            let Some(segs) = segments(b, 24, nr) else {
                return status(Status::InvalidRequest);
            };
            match seg_verdict(&segs, size, &w.mem) {
                SegVerdict::Parse(s) => status(s),
                _ if flags & !buf_flags::CREATE_MASK != 0 => status(Status::InvalidRequest),
                SegVerdict::Finish(s) => status(s),
                SegVerdict::Ok(runs) => {
                    if !m.quota_ok(l, size, runs) {
                        return status(Status::QuotaExceeded);
                    }
                    Expect::Created { size, runs }
                }
            }
        }
        req::RELEASE => {
            if b.len() < 24 {
                return status(Status::InvalidRequest);
            }
            if m.release(&uuid_at(b, 8)) {
                status(Status::Ok)
            } else {
                status(Status::NotFound)
            }
        }
        req::LOOKUP => {
            if !import {
                return status(Status::Unsupported);
            }
            if b.len() < 24 {
                return status(Status::InvalidRequest);
            }
            let u = uuid_at(b, 8);
            if let Some(h) = m.held.get(&u).filter(|h| h.own) {
                return Expect::Found {
                    size: h.size,
                    flags: buf_flags::OWN,
                };
            }
            match w.fixtures.iter().find(|f| f.uuid == u) {
                Some(Fixture {
                    size,
                    lookup: Ok(flags),
                    ..
                }) => Expect::Found {
                    size: *size,
                    flags: *flags,
                },
                _ => status(Status::NotFound),
            }
        }
        req::ATTACH => {
            if !import {
                return status(Status::Unsupported);
            }
            if b.len() < 32 {
                return status(Status::InvalidRequest);
            }
            let u = uuid_at(b, 8);
            let nr = le32(b, 24);
            if le32(b, 28) != 0 {
                return status(Status::InvalidRequest);
            }
            if nr == 0 {
                return status(Status::InvalidSize);
            }
            if nr > l.max_segments {
                return status(Status::TooManySegments);
            }
            let Some(segs) = segments(b, 32, nr) else {
                return status(Status::InvalidRequest);
            };
            let own = m.held.get(&u).is_some_and(|h| h.own);
            let fixture = w.fixtures.iter().find(|f| f.uuid == u);
            let size = match (own, fixture) {
                (true, _) => m.held[&u].size,
                (false, Some(f)) if f.lookup.is_ok() => f.size,
                _ => 0,
            };
            // Parse errors come first; with no size to check against, any size will do.
            if let SegVerdict::Parse(s) = seg_verdict(&segs, size.max(1), &w.mem) {
                return status(s);
            }
            if size == 0 {
                return status(Status::NotFound);
            }
            if own {
                return status(Status::AlreadyExists);
            }
            let f = fixture.expect("an importable fixture");
            let runs = match seg_verdict(&segs, size, &w.mem) {
                SegVerdict::Parse(s) | SegVerdict::Finish(s) => return status(s),
                SegVerdict::Ok(runs) => runs,
            };
            if m.held.contains_key(&u) {
                return status(Status::AlreadyExists);
            }
            if !m.quota_ok(l, size, runs) {
                return status(Status::QuotaExceeded);
            }
            m.add(
                u,
                Held {
                    size,
                    own: false,
                    read_only: f.lookup == Ok(buf_flags::READ_ONLY),
                    runs,
                    blocked: f.blocked,
                    hazard: touches_harness(&segs),
                },
            );
            status(Status::Ok)
        }
        req::SYNC => {
            if b.len() < 48 {
                return status(Status::InvalidRequest);
            }
            // The spec's rules for the SYNC body (section 6.6), independently of the decoder.
            let (uuid, offset, len) = (uuid_at(b, 8), le64(b, 24), le64(b, 32));
            let (flags, timeout_ms) = (le32(b, 40), le32(b, 44));
            let (read, write, end) = (flags & 1 != 0, flags & 2 != 0, flags & 4 != 0);
            if flags & !7 != 0 || !(read || write) {
                return status(Status::InvalidRequest);
            }
            if len == 0 || offset.checked_add(len).is_none() {
                return status(Status::InvalidSize);
            }
            if end && timeout_ms != 0 {
                return status(Status::InvalidRequest);
            }
            let op = Op {
                uuid,
                offset,
                len,
                read,
                write,
                end,
            };
            let Some(h) = m.held.get(&op.uuid).cloned() else {
                return status(Status::NotFound);
            };
            if check_range(h.size, op.offset, op.len).is_err() {
                return status(Status::InvalidSize);
            }
            if op.write && h.read_only {
                return status(Status::PermissionDenied);
            }
            let g = Granted {
                uuid: op.uuid,
                offset: op.offset,
                len: op.len,
                read: op.read,
                write: op.write,
            };
            if op.end {
                match m.granted.iter().position(|x| *x == g) {
                    Some(i) => {
                        m.granted.swap_remove(i);
                        status(Status::Ok)
                    }
                    None => status(Status::NotHeld),
                }
            } else {
                let waits = h
                    .blocked
                    .is_some_and(|(o, l)| op.offset < o + l && o < op.offset + op.len);
                if waits {
                    Expect::Waits
                } else if h.hazard {
                    // The grant copies the origin over the harness's own pages.
                    m.hazard = true;
                    Expect::Any
                } else {
                    m.granted.push(g);
                    status(Status::Ok)
                }
            }
        }
        // The fuzzed device has no shared memory region, so it does not offer
        // VIRTIO_DMABUF_F_MAP: MAP is UNSUPPORTED, whatever its body (spec section 13).
        req::MAP => status(Status::Unsupported),
        _ => status(Status::InvalidRequest),
    }
}
