// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Soak: the real daemon binary under two simulated VMs and two host clients doing random shared
//! work for a while, with every byte read checked against a model of what was last written.
//!
//! ```text
//! soak [--seconds N] [--seed N] [--daemon PATH]        (SOAK_SECONDS sets the default of N)
//! ```
//!
//! Each participant runs on its own thread with its own seeded RNG. VMs (`dmabuf_harness::Vm`,
//! over the daemon's real vhost-user sockets) create buffers from their pages, import others'
//! (LOOKUP + ATTACH), SYNC START/END random ranges for reading or writing, and RELEASE. Host
//! clients (`dmabuf_client::Client`, over the control socket) share sealed memfds, revoke
//! buffers, and do fenced reads and writes. A writer fills its range with the test pattern of a
//! fresh seed while it holds write access and records the new contents in the shared model just
//! before its END (no other domain can be granted the range before that END); a reader compares
//! what it reads under read access with the model by FNV-1a checksum. Legitimate outcomes —
//! TIMEOUT under contention, REVOKED / NOT_FOUND after a revoke or release, QUOTA_EXCEEDED,
//! PERMISSION_DENIED on read-only buffers — are counted, not flagged; any other status is a
//! mismatch, as is a wrong byte. Every operation is bounded (the daemon's wait bound is 1 s, the
//! harness's and the client's 10 s); one that takes more than 10 s counts as a hang.
//!
//! The daemon's VmRSS and open fds are read after about a tenth of the run (warm-up) and again
//! at the end, once every participant released or revoked everything. Last line on stdout:
//!
//! ```text
//! soak: seconds=N ops=N mismatches=N rss_growth_kb=N fd_growth=N hangs=N
//! ```
//!
//! Exit status 1 if there was a mismatch, a hang, an fd more at the end, or the daemon died.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use clap::Parser;
use dmabuf_client::pattern::{fill, fnv1a64};
use dmabuf_client::{Access, Client, ClientError, ShareFlags};
use dmabuf_harness::ram::PAGE;
use dmabuf_harness::{DaemonProcess, GuestBuffer, HarnessError, Vm, VmOptions};
use virtio_dmabuf_proto::virtio::{buf_flags, sync_flags as sf, Uuid};
use virtio_dmabuf_proto::Status;

/// An operation slower than this is a hang.
const HANG: Duration = Duration::from_secs(10);
/// The daemon's default and maximum wait for access.
const SYNC_TIMEOUT_MS: u32 = 1000;
/// Pages of the largest buffer (every buffer fits a slot of a VM).
const SLOT_PAGES: u64 = 16;
const SLOTS: usize = 16;
/// Per-VM buffer quota (below the slots, so QUOTA_EXCEEDED happens).
const MAX_BUFFERS: u32 = 12;
const MAX_HOST_BUFFERS: u32 = 20;

#[derive(Parser, Debug)]
#[command(about = "Soak the dma-buf daemon with two VMs and two host clients")]
struct Args {
    /// Run time in seconds (default: $SOAK_SECONDS, else 60).
    #[arg(long)]
    seconds: Option<u64>,
    /// RNG seed of the run (each participant derives its own).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The daemon binary (default: vhost-device-dmabuf next to this example's directory).
    #[arg(long)]
    daemon: Option<PathBuf>,
}

/// SplitMix64: small, seeded, good enough to pick operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> Option<&'a T> {
        (!v.is_empty()).then(|| &v[self.below(v.len() as u64) as usize])
    }
    /// A buffer size up to `SLOT_PAGES` pages: mostly whole pages, sometimes not.
    fn size(&mut self) -> u64 {
        let pages = 1 + self.below(SLOT_PAGES);
        if self.chance(25) {
            (pages - 1) * PAGE + 1 + self.below(PAGE)
        } else {
            pages * PAGE
        }
    }
    /// A non-empty range of a buffer of `size` bytes.
    fn range(&mut self, size: u64) -> (u64, u64) {
        match self.below(10) {
            0..=2 => (0, size),
            3..=4 => {
                let page = self.below(size.div_ceil(PAGE)) * PAGE;
                (page, PAGE.min(size - page))
            }
            _ => {
                let off = self.below(size);
                (off, 1 + self.below(size - off))
            }
        }
    }
    /// A wait bound for a START/BEGIN: mostly the default, sometimes short.
    fn timeout_ms(&mut self) -> u32 {
        if self.chance(70) {
            0
        } else {
            1 + self.below(100) as u32
        }
    }
}

/// Who created a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Party {
    Vm(usize),
    Host(usize),
}

/// What the model knows of a live buffer.
struct BufModel {
    owner: Party,
    read_only: bool,
    host_only: bool,
    host_backed: bool,
    /// The bytes as the last committed write left them.
    content: Vec<u8>,
}

impl BufModel {
    fn may_write(&self, p: Party) -> bool {
        !self.read_only || (matches!(p, Party::Vm(_)) && p == self.owner)
    }
    fn importable_by_vm(&self, p: Party) -> bool {
        !self.host_only && p != self.owner
    }
}

/// Counters shared by all participants.
#[derive(Default)]
struct Stats {
    ops: AtomicU64,
    mismatches: AtomicU64,
    hangs: AtomicU64,
    bytes_checked: AtomicU64,
    outcomes: Mutex<HashMap<String, u64>>,
}

struct Shared {
    model: Mutex<HashMap<Uuid, BufModel>>,
    stats: Stats,
    stop: AtomicBool,
}

impl Shared {
    fn model(&self) -> MutexGuard<'_, HashMap<Uuid, BufModel>> {
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count(&self, what: &str) {
        *self
            .stats
            .outcomes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(what.to_owned())
            .or_default() += 1;
    }

    fn mismatch(&self, who: &str, msg: String) {
        let n = self.stats.mismatches.fetch_add(1, Ordering::Relaxed);
        if n < 20 {
            eprintln!("soak: MISMATCH {who}: {msg}");
        }
    }

    fn hang(&self, who: &str, msg: String) {
        self.stats.hangs.fetch_add(1, Ordering::Relaxed);
        eprintln!("soak: HANG {who}: {msg}");
    }

    /// Compare bytes read at `offset` of `uuid` with the model (if it still knows the buffer).
    fn check(&self, who: &str, uuid: &Uuid, offset: u64, got: &[u8]) {
        let model = self.model();
        let Some(b) = model.get(uuid) else {
            return;
        };
        let want = &b.content[offset as usize..offset as usize + got.len()];
        if fnv1a64(got) != fnv1a64(want) {
            let at = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(0);
            let msg = format!(
                "{} bytes at {offset} of {}: first difference at +{at} (read {:#x}, expected {:#x})",
                got.len(),
                dmabuf_client::format_uuid(uuid),
                got[at],
                want[at]
            );
            drop(model);
            self.mismatch(who, msg);
        } else {
            self.stats
                .bytes_checked
                .fetch_add(got.len() as u64, Ordering::Relaxed);
        }
    }

    /// Record what a writer is about to commit (it holds write access to the range).
    fn commit(&self, uuid: &Uuid, offset: u64, data: &[u8]) {
        if let Some(b) = self.model().get_mut(uuid) {
            b.content[offset as usize..offset as usize + data.len()].copy_from_slice(data);
        }
    }
}

/// A writer's bytes for `offset..offset+len`: the pattern of a fresh seed.
fn fresh_data(rng: &mut Rng, offset: u64, len: u64) -> Vec<u8> {
    let mut v = vec![0u8; len as usize];
    fill(rng.next() as u32, offset, &mut v);
    v
}

// ------------------------------------------------------------------------------------ VMs

struct Slot {
    pages: GuestBuffer,
    used: bool,
}

struct Holding {
    slot: usize,
    guest: GuestBuffer,
    own: bool,
}

struct VmWorker {
    idx: usize,
    name: String,
    vm: Vm,
    rng: Rng,
    shared: Arc<Shared>,
    slots: Vec<Slot>,
    held: HashMap<Uuid, Holding>,
}

/// The first `size` bytes of a slot's pages, as a segment list.
fn truncate(b: &GuestBuffer, size: u64) -> GuestBuffer {
    let mut segs = Vec::new();
    let mut left = size;
    for &(gpa, len) in &b.segs {
        if left == 0 {
            break;
        }
        let take = len.min(left);
        segs.push((gpa, take));
        left -= take;
    }
    GuestBuffer { segs, size }
}

impl VmWorker {
    fn new(
        idx: usize,
        socket: &Path,
        seed: u64,
        shared: Arc<Shared>,
    ) -> Result<Self, HarnessError> {
        let mut vm = Vm::connect(
            socket,
            VmOptions {
                timeout: HANG,
                ..VmOptions::default()
            },
        )?;
        let mut slots = Vec::new();
        for i in 0..SLOTS {
            slots.push(Slot {
                pages: vm.alloc_buffer(SLOT_PAGES * PAGE, i % 2 == 1)?,
                used: false,
            });
        }
        Ok(VmWorker {
            idx,
            name: format!("vm{idx}"),
            vm,
            rng: Rng(seed),
            shared,
            slots,
            held: HashMap::new(),
        })
    }

    fn me(&self) -> Party {
        Party::Vm(self.idx)
    }

    fn free_slot(&mut self) -> Option<usize> {
        let free: Vec<usize> = (0..self.slots.len())
            .filter(|&i| !self.slots[i].used)
            .collect();
        self.rng.pick(&free).copied()
    }

    fn unexpected(&self, what: &str, s: Status) {
        self.shared
            .mismatch(&self.name, format!("{what} answered {s}"));
    }

    /// One random operation.
    fn step(&mut self) -> Result<(), HarnessError> {
        match self.rng.below(100) {
            0..=9 => self.create(),
            10..=19 => self.import(),
            20..=45 => self.sync(false),
            46..=79 => self.sync(true),
            80..=95 => self.release_one(),
            _ => {
                self.vm.events()?;
                Ok(())
            }
        }
    }

    fn create(&mut self) -> Result<(), HarnessError> {
        let Some(slot) = self.free_slot() else {
            return Ok(());
        };
        let size = self.rng.size();
        let guest = truncate(&self.slots[slot].pages, size);
        let flags = match self.rng.below(10) {
            0 => buf_flags::READ_ONLY,
            1 => buf_flags::HOST_ONLY,
            _ => 0,
        };
        let content = fresh_data(&mut self.rng, 0, size);
        self.vm.write_buffer(&guest, 0, &content)?;
        match self.vm.create_buffer(&guest, flags)? {
            Ok(uuid) => {
                self.shared.count("vm create ok");
                self.shared.model().insert(
                    uuid,
                    BufModel {
                        owner: self.me(),
                        read_only: flags & buf_flags::READ_ONLY != 0,
                        host_only: flags & buf_flags::HOST_ONLY != 0,
                        host_backed: false,
                        content,
                    },
                );
                self.slots[slot].used = true;
                self.held.insert(
                    uuid,
                    Holding {
                        slot,
                        guest,
                        own: true,
                    },
                );
            }
            Err(Status::QuotaExceeded) => self.shared.count("vm create QUOTA_EXCEEDED"),
            Err(s) => self.unexpected("CREATE", s),
        }
        Ok(())
    }

    fn import(&mut self) -> Result<(), HarnessError> {
        let me = self.me();
        let candidates: Vec<(Uuid, u64, bool, bool)> = self
            .shared
            .model()
            .iter()
            .filter(|(u, b)| b.importable_by_vm(me) && !self.held.contains_key(*u))
            .map(|(u, b)| (*u, b.content.len() as u64, b.read_only, b.host_backed))
            .collect();
        let Some(&(uuid, size, read_only, host_backed)) = self.rng.pick(&candidates) else {
            return Ok(());
        };
        let Some(slot) = self.free_slot() else {
            return Ok(());
        };
        match self.vm.lookup(&uuid)? {
            Ok((got_size, flags)) => {
                let want = if read_only { buf_flags::READ_ONLY } else { 0 }
                    | if host_backed {
                        buf_flags::HOST_BACKED
                    } else {
                        0
                    };
                if (got_size, flags) != (size, want) {
                    self.shared.mismatch(
                        &self.name,
                        format!(
                            "LOOKUP: size {got_size} flags {flags:#x}, expected {size} {want:#x}"
                        ),
                    );
                }
            }
            Err(Status::NotFound) => {
                self.shared.count("vm lookup NOT_FOUND");
                return Ok(());
            }
            Err(s) => {
                self.unexpected("LOOKUP", s);
                return Ok(());
            }
        }
        let guest = truncate(&self.slots[slot].pages, size);
        match self.vm.attach(&uuid, &guest)? {
            Status::Ok => {
                self.shared.count("vm attach ok");
                self.slots[slot].used = true;
                self.held.insert(
                    uuid,
                    Holding {
                        slot,
                        guest,
                        own: false,
                    },
                );
            }
            s @ (Status::NotFound | Status::QuotaExceeded) => {
                self.shared.count(&format!("vm attach {s}"));
            }
            s => self.unexpected("ATTACH", s),
        }
        Ok(())
    }

    fn sync(&mut self, write: bool) -> Result<(), HarnessError> {
        let uuids: Vec<Uuid> = self.held.keys().copied().collect();
        let Some(&uuid) = self.rng.pick(&uuids) else {
            return Ok(());
        };
        let guest = self.held[&uuid].guest.clone();
        let (offset, len) = self.rng.range(guest.size);
        let flags = if write {
            if self.rng.chance(30) {
                sf::READ | sf::WRITE
            } else {
                sf::WRITE
            }
        } else {
            sf::READ
        };
        let may_write = self
            .shared
            .model()
            .get(&uuid)
            .map(|b| b.may_write(self.me()));
        let timeout = self.rng.timeout_ms();
        match self.vm.sync(&uuid, offset, len, flags, timeout)? {
            Status::Ok => {}
            Status::Timeout => {
                self.shared.count("vm start TIMEOUT");
                return Ok(());
            }
            Status::Revoked => {
                self.shared.count("vm start REVOKED");
                return self.release(uuid);
            }
            Status::PermissionDenied if write && may_write != Some(true) => {
                self.shared.count("vm start PERMISSION_DENIED");
                return Ok(());
            }
            s => {
                self.unexpected(&format!("SYNC START {offset}+{len} flags {flags:#x}"), s);
                return Ok(());
            }
        }
        if write && may_write == Some(false) {
            self.shared.mismatch(
                &self.name,
                "write access granted on a read-only buffer".into(),
            );
        }
        if write {
            let data = fresh_data(&mut self.rng, offset, len);
            self.vm.write_buffer(&guest, offset, &data)?;
            self.shared.commit(&uuid, offset, &data);
        } else {
            let got = self.vm.read_buffer(&guest, offset, len)?;
            self.shared.check(&self.name, &uuid, offset, &got);
        }
        if self.rng.chance(20) {
            // Hold it a while: contention for the others.
            thread::sleep(Duration::from_millis(self.rng.below(50)));
        }
        match self.vm.sync(&uuid, offset, len, flags | sf::END, 0)? {
            Status::Ok => self.shared.count("vm end ok"),
            Status::Revoked => {
                self.shared.count("vm end REVOKED");
                return self.release(uuid);
            }
            s => self.unexpected("SYNC END", s),
        }
        Ok(())
    }

    fn release_one(&mut self) -> Result<(), HarnessError> {
        let uuids: Vec<Uuid> = self.held.keys().copied().collect();
        match self.rng.pick(&uuids) {
            Some(&u) => self.release(u),
            None => Ok(()),
        }
    }

    fn release(&mut self, uuid: Uuid) -> Result<(), HarnessError> {
        let Some(h) = self.held.remove(&uuid) else {
            return Ok(());
        };
        match self.vm.release(&uuid)? {
            Status::Ok => self.shared.count("vm release ok"),
            s => self.unexpected("RELEASE", s),
        }
        if h.own {
            self.shared.model().remove(&uuid);
        }
        // After the answer the device no longer touches the pages: they may be reused.
        self.slots[h.slot].used = false;
        Ok(())
    }

    fn cleanup(&mut self) -> Result<(), HarnessError> {
        let uuids: Vec<Uuid> = self.held.keys().copied().collect();
        for u in uuids {
            self.release(u)?;
        }
        self.vm.events()?;
        Ok(())
    }
}

// ------------------------------------------------------------------------------------ hosts

struct HostWorker {
    idx: usize,
    name: String,
    client: Client,
    rng: Rng,
    shared: Arc<Shared>,
}

fn status_of(e: &ClientError) -> Option<Status> {
    e.status()
}

/// Whether a client error is the bound of the socket passing (a hang), as opposed to a status.
fn is_hang(e: &ClientError) -> bool {
    e.io_error().is_some_and(|io| {
        matches!(
            io.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        )
    })
}

impl HostWorker {
    fn new(idx: usize, socket: &Path, seed: u64, shared: Arc<Shared>) -> Result<Self, ClientError> {
        let client = Client::connect(socket)?;
        client.set_io_timeout(Some(HANG))?;
        Ok(HostWorker {
            idx,
            name: format!("host{idx}"),
            client,
            rng: Rng(seed),
            shared,
        })
    }

    fn me(&self) -> Party {
        Party::Host(self.idx)
    }

    /// Sort a client result into a status; connection failures end the participant.
    fn status<T>(&self, r: Result<T, ClientError>) -> Result<Result<T, Status>, ClientError> {
        match r {
            Ok(v) => Ok(Ok(v)),
            Err(e) => match status_of(&e) {
                Some(s) => Ok(Err(s)),
                None => Err(e),
            },
        }
    }

    fn unexpected(&self, what: &str, s: Status) {
        self.shared
            .mismatch(&self.name, format!("{what} answered {s}"));
    }

    fn pick_buffer(&mut self, own_only: bool) -> Option<(Uuid, u64, bool)> {
        let me = self.me();
        let v: Vec<(Uuid, u64, bool)> = self
            .shared
            .model()
            .iter()
            .filter(|(_, b)| !own_only || b.owner == me)
            .map(|(u, b)| (*u, b.content.len() as u64, b.may_write(me)))
            .collect();
        self.rng.pick(&v).copied()
    }

    fn step(&mut self) -> Result<(), ClientError> {
        match self.rng.below(100) {
            0..=8 => self.share(),
            9..=16 => self.revoke(),
            17..=50 => self.fenced(false),
            51..=90 => self.fenced(true),
            91..=95 => self.wait_write(),
            _ => {
                let r = self.client.list();
                match self.status(r)? {
                    Ok(_) => self.shared.count("host list ok"),
                    Err(s) => self.unexpected("LIST", s),
                }
                Ok(())
            }
        }
    }

    fn share(&mut self) -> Result<(), ClientError> {
        let size = self.rng.size();
        let content = fresh_data(&mut self.rng, 0, size);
        let flags = ShareFlags {
            read_only: self.rng.chance(10),
            host_only: self.rng.chance(10),
        };
        let r = self.client.share_bytes(&content, flags, &[]);
        match self.status(r)? {
            Ok((uuid, _memfd)) => {
                self.shared.count("host share ok");
                self.shared.model().insert(
                    uuid,
                    BufModel {
                        owner: self.me(),
                        read_only: flags.read_only,
                        host_only: flags.host_only,
                        host_backed: true,
                        content,
                    },
                );
            }
            Err(Status::QuotaExceeded) => self.shared.count("host share QUOTA_EXCEEDED"),
            Err(s) => self.unexpected("SHARE", s),
        }
        Ok(())
    }

    fn revoke(&mut self) -> Result<(), ClientError> {
        let own_only = self.rng.chance(70);
        let Some((uuid, _, _)) = self.pick_buffer(own_only) else {
            return Ok(());
        };
        self.revoke_uuid(uuid)
    }

    fn revoke_uuid(&mut self, uuid: Uuid) -> Result<(), ClientError> {
        let r = self.client.revoke(&uuid);
        match self.status(r)? {
            Ok(()) => {
                self.shared.count("host revoke ok");
                self.shared.model().remove(&uuid);
            }
            Err(Status::NotFound) => self.shared.count("host revoke NOT_FOUND"),
            Err(s) => self.unexpected("REVOKE", s),
        }
        Ok(())
    }

    fn fenced(&mut self, write: bool) -> Result<(), ClientError> {
        let Some((uuid, size, may_write)) = self.pick_buffer(false) else {
            return Ok(());
        };
        let (offset, len) = self.rng.range(size);
        let access = if write { Access::Write } else { Access::Read };
        let t = self.rng.timeout_ms();
        let timeout = (t != 0).then(|| Duration::from_millis(u64::from(t)));
        let r = self.client.begin(&uuid, offset, len, access, timeout);
        match self.status(r)? {
            Ok(()) => {}
            Err(Status::Timeout) => {
                self.shared.count("host begin TIMEOUT");
                return Ok(());
            }
            Err(s @ (Status::NotFound | Status::Revoked)) => {
                self.shared.count(&format!("host begin {s}"));
                return Ok(());
            }
            Err(Status::PermissionDenied) if write && !may_write => {
                self.shared.count("host begin PERMISSION_DENIED");
                return Ok(());
            }
            Err(s) => {
                self.unexpected(&format!("BEGIN {offset}+{len} {access}"), s);
                return Ok(());
            }
        }
        if write && !may_write {
            self.shared.mismatch(
                &self.name,
                "write access granted on a read-only buffer".into(),
            );
        }
        let moved = if write {
            let data = fresh_data(&mut self.rng, offset, len);
            // Recorded before the bytes go out: if the WRITE fails half-way (the buffer was
            // revoked), nobody can read the buffer any more anyway.
            self.shared.commit(&uuid, offset, &data);
            let r = self.client.write(&uuid, offset, &data);
            self.status(r)?.map(|_| ())
        } else {
            let r = self.client.read(&uuid, offset, len);
            self.status(r)?
                .map(|got| self.shared.check(&self.name, &uuid, offset, &got))
        };
        match moved {
            Ok(()) => {}
            Err(Status::NotFound) => self.shared.count("host data NOT_FOUND"),
            Err(s) => self.unexpected(if write { "WRITE" } else { "READ" }, s),
        }
        if self.rng.chance(20) {
            thread::sleep(Duration::from_millis(self.rng.below(50)));
        }
        let r = self.client.end(&uuid, offset, len, access);
        match self.status(r)? {
            Ok(()) => self.shared.count("host end ok"),
            Err(Status::NotFound) => self.shared.count("host end NOT_FOUND"),
            Err(s) => self.unexpected("END", s),
        }
        Ok(())
    }

    fn wait_write(&mut self) -> Result<(), ClientError> {
        let Some((uuid, _, _)) = self.pick_buffer(false) else {
            return Ok(());
        };
        let r = self.client.info(&uuid);
        let after = match self.status(r)? {
            Ok(i) => i.write_generation,
            Err(Status::NotFound) => return Ok(()),
            Err(s) => {
                self.unexpected("INFO", s);
                return Ok(());
            }
        };
        let r = self
            .client
            .wait_write(&uuid, after, Some(Duration::from_millis(50)));
        match self.status(r)? {
            Ok(g) if g > after => self.shared.count("host wait_write ok"),
            Ok(g) => self.shared.mismatch(
                &self.name,
                format!("WAIT_WRITE after {after} returned generation {g}"),
            ),
            Err(s @ (Status::Timeout | Status::NotFound | Status::Revoked)) => {
                self.shared.count(&format!("host wait_write {s}"));
            }
            Err(s) => self.unexpected("WAIT_WRITE", s),
        }
        Ok(())
    }

    fn cleanup(&mut self) -> Result<(), ClientError> {
        let me = self.me();
        let own: Vec<Uuid> = self
            .shared
            .model()
            .iter()
            .filter(|(_, b)| b.owner == me)
            .map(|(u, _)| *u)
            .collect();
        for u in own {
            self.revoke_uuid(u)?;
        }
        Ok(())
    }
}

// ------------------------------------------------------------------------------------ driver

/// Run `step` until told to stop, timing each call; then `cleanup`.
fn drive<E: std::fmt::Debug>(
    who: &str,
    shared: &Shared,
    mut step: impl FnMut() -> Result<(), E>,
    is_hang: impl Fn(&E) -> bool,
) -> Result<(), E> {
    while !shared.stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        let r = step();
        let took = t.elapsed();
        shared.stats.ops.fetch_add(1, Ordering::Relaxed);
        if took > HANG {
            shared.hang(who, format!("an operation took {took:?}"));
        }
        if let Err(e) = r {
            if is_hang(&e) {
                shared.hang(who, format!("{e:?}"));
            }
            return Err(e);
        }
    }
    Ok(())
}

/// What the daemon process uses.
#[derive(Clone, Copy, Debug)]
struct Usage {
    /// VmRSS, KiB: everything resident, guest RAM and shared files it touched included.
    rss_kb: i64,
    /// RssAnon, KiB: its heap and stacks.
    anon_kb: i64,
    /// Open file descriptors.
    fds: i64,
}

fn usage(pid: u32) -> Option<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<i64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some(Usage {
        rss_kb: field("VmRSS:")?,
        anon_kb: field("RssAnon:")?,
        fds: std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as i64,
    })
}

fn default_daemon() -> PathBuf {
    // target/<profile>/examples/soak → target/<profile>/vhost-device-dmabuf
    std::env::current_exe()
        .ok()
        .and_then(|e| Some(e.parent()?.parent()?.join("vhost-device-dmabuf")))
        .unwrap_or_else(|| PathBuf::from("target/release/vhost-device-dmabuf"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let seconds = args
        .seconds
        .or_else(|| std::env::var("SOAK_SECONDS").ok()?.parse().ok())
        .unwrap_or(60)
        .max(1);
    let bin = args.daemon.unwrap_or_else(default_daemon);
    let timeout = SYNC_TIMEOUT_MS.to_string();
    let max_buffers = MAX_BUFFERS.to_string();
    let max_host = MAX_HOST_BUFFERS.to_string();
    let mut daemon = match DaemonProcess::spawn(
        &bin,
        &["vm0", "vm1"],
        &[
            "--sync-timeout-ms",
            &timeout,
            "--max-buffers",
            &max_buffers,
            "--max-host-buffers",
            &max_host,
        ],
    ) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("soak: cannot start {}: {e}", bin.display());
            return ExitCode::FAILURE;
        }
    };
    let pid = daemon.pid().expect("a running daemon");
    eprintln!(
        "soak: daemon {} pid {pid}, {seconds} s, seed {}",
        bin.display(),
        args.seed
    );
    let shared = Arc::new(Shared {
        model: Mutex::new(HashMap::new()),
        stats: Stats::default(),
        stop: AtomicBool::new(false),
    });

    let mut threads = Vec::new();
    for i in 0..2 {
        let socket = daemon.vm_socket(&format!("vm{i}"));
        let sh = shared.clone();
        let seed = args.seed.wrapping_mul(1000).wrapping_add(i as u64);
        threads.push(thread::spawn(move || -> Result<(), String> {
            let name = format!("vm{i}");
            let mut w =
                VmWorker::new(i, &socket, seed, sh.clone()).map_err(|e| format!("{name}: {e}"))?;
            let hang = |e: &HarnessError| matches!(e, HarnessError::Timeout(_));
            drive(&name, &sh, || w.step(), hang).map_err(|e| format!("{name}: {e}"))?;
            w.cleanup().map_err(|e| format!("{name}: {e}"))
        }));
    }
    for i in 0..2 {
        let socket = daemon.control_socket();
        let sh = shared.clone();
        let seed = args.seed.wrapping_mul(1000).wrapping_add(10 + i as u64);
        threads.push(thread::spawn(move || -> Result<(), String> {
            let name = format!("host{i}");
            let mut w = HostWorker::new(i, &socket, seed, sh.clone())
                .map_err(|e| format!("{name}: {e}"))?;
            drive(&name, &sh, || w.step(), is_hang).map_err(|e| format!("{name}: {e}"))?;
            w.cleanup().map_err(|e| format!("{name}: {e}"))
        }));
    }

    let start = Instant::now();
    let run = Duration::from_secs(seconds);
    thread::sleep(run / 10);
    let warm = usage(pid);
    eprintln!("soak: warm-up after {:?}: {warm:?}", start.elapsed());
    while start.elapsed() < run && threads.iter().any(|t| !t.is_finished()) {
        thread::sleep(Duration::from_millis(100));
    }
    shared.stop.store(true, Ordering::Relaxed);
    let mut failed = false;
    for t in threads {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                eprintln!("soak: a participant stopped: {e}");
                failed = true;
            }
            Err(_) => {
                eprintln!("soak: a participant panicked");
                failed = true;
            }
        }
    }
    // Anything a participant that broke left behind goes now, so the end state is "no buffers".
    if let Ok(mut c) = Client::connect(daemon.control_socket()) {
        let _ = c.set_io_timeout(Some(HANG));
        match c.list() {
            Ok(left) => {
                for b in &left {
                    if !failed {
                        eprintln!(
                            "soak: buffer {} ({}) still live after every participant cleaned up",
                            dmabuf_client::format_uuid(&b.uuid),
                            b.owner
                        );
                    }
                    let _ = c.revoke(&b.uuid);
                }
                if !left.is_empty() && !failed {
                    shared.mismatch("main", format!("{} buffers left", left.len()));
                }
            }
            Err(e) => {
                eprintln!("soak: LIST at the end: {e}");
                failed = true;
            }
        }
    }
    // Let the daemon finish tearing down what it was told to drop.
    thread::sleep(Duration::from_millis(300));
    let end = usage(pid);
    let alive = daemon.alive();
    eprintln!("soak: end: {end:?}, daemon alive: {alive}");
    let (rss_growth, fd_growth) = match (warm, end) {
        (Some(w), Some(e)) => {
            eprintln!(
                "soak:   heap (RssAnon) growth: {} KiB",
                e.anon_kb - w.anon_kb
            );
            (e.rss_kb - w.rss_kb, e.fds - w.fds)
        }
        _ => {
            failed = true;
            (0, 0)
        }
    };
    let st = &shared.stats;
    let mut outcomes: Vec<(String, u64)> = st
        .outcomes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    outcomes.sort();
    for (k, v) in outcomes {
        eprintln!("soak:   {k}: {v}");
    }
    eprintln!(
        "soak:   bytes checked: {}",
        st.bytes_checked.load(Ordering::Relaxed)
    );
    let (ops, mismatches, hangs) = (
        st.ops.load(Ordering::Relaxed),
        st.mismatches.load(Ordering::Relaxed),
        st.hangs.load(Ordering::Relaxed),
    );
    println!(
        "soak: seconds={seconds} ops={ops} mismatches={mismatches} rss_growth_kb={rss_growth} fd_growth={fd_growth} hangs={hangs}"
    );
    if mismatches > 0 || hangs > 0 || fd_growth > 0 || failed || !alive {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
