// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! A split virtqueue, driver side: what the guest's virtio core does, in guest memory.

use std::os::fd::AsRawFd;
use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::ram::GuestRam;
use crate::HarnessError;

/// Descriptor flag: another descriptor follows.
pub const F_NEXT: u16 = 1;
/// Descriptor flag: device-writable.
pub const F_WRITE: u16 = 2;
/// Descriptor flag: points at an indirect table.
pub const F_INDIRECT: u16 = 4;

/// One buffer of a chain.
#[derive(Clone, Copy, Debug)]
pub struct Buf {
    /// Guest-physical address.
    pub addr: u64,
    /// Length.
    pub len: u32,
    /// Device-writable.
    pub write: bool,
}

/// A raw descriptor, for building hostile tables.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawDesc {
    /// Address.
    pub addr: u64,
    /// Length.
    pub len: u32,
    /// Flags.
    pub flags: u16,
    /// Next index.
    pub next: u16,
}

/// The rings of one queue and its eventfds.
pub struct SplitQueue {
    /// Queue size.
    pub size: u16,
    desc: u64,
    avail: u64,
    used: u64,
    free: Vec<u16>,
    avail_idx: u16,
    last_used: u16,
    /// Heads in flight → descriptors they hold.
    in_flight: std::collections::HashMap<u16, Vec<u16>>,
    /// Device → driver notifications.
    pub call: EventFd,
    /// Driver → device notifications.
    pub kick: EventFd,
    /// VIRTIO_RING_F_EVENT_IDX was negotiated: kick only when the device's avail event asks.
    event_idx: bool,
}

impl SplitQueue {
    /// Rings of `size` entries at `base` (which needs `SplitQueue::footprint(size)` bytes).
    pub fn new(ram: &GuestRam, base: u64, size: u16) -> Result<SplitQueue, HarnessError> {
        let desc = base;
        let avail = desc + 16 * u64::from(size);
        let used = (avail + 6 + 2 * u64::from(size) + 4095) & !4095;
        ram.write(base, &vec![0u8; Self::footprint(size) as usize])?;
        Ok(SplitQueue {
            size,
            desc,
            avail,
            used,
            free: (0..size).rev().collect(),
            avail_idx: 0,
            last_used: 0,
            in_flight: Default::default(),
            // Blocking: `wait` reads it only after `poll` says it is readable, and
            // `wait_blocking` sleeps in the read like a vCPU halted until its interrupt.
            call: EventFd::new(0)?,
            kick: EventFd::new(EFD_NONBLOCK)?,
            event_idx: false,
        })
    }

    /// Bytes the rings of a queue of `size` occupy.
    pub fn footprint(size: u16) -> u64 {
        let avail_end = 16 * u64::from(size) + 6 + 2 * u64::from(size);
        ((avail_end + 4095) & !4095) + 6 + 8 * u64::from(size) + 4096
    }

    /// (descriptor table, avail ring, used ring) addresses.
    pub fn addrs(&self) -> (u64, u64, u64) {
        (self.desc, self.avail, self.used)
    }

    /// Descriptors not in flight.
    pub fn free_descriptors(&self) -> usize {
        self.free.len()
    }

    fn write_desc(&self, ram: &GuestRam, idx: u16, d: RawDesc) -> Result<(), HarnessError> {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&d.addr.to_le_bytes());
        b[8..12].copy_from_slice(&d.len.to_le_bytes());
        b[12..14].copy_from_slice(&d.flags.to_le_bytes());
        b[14..].copy_from_slice(&d.next.to_le_bytes());
        ram.write(self.desc + 16 * u64::from(idx), &b)
    }

    /// Add a chain of direct descriptors and make it available. Returns its head.
    pub fn add(&mut self, ram: &GuestRam, bufs: &[Buf]) -> Result<u16, HarnessError> {
        if bufs.is_empty() || bufs.len() > self.free.len() {
            return Err(HarnessError::QueueFull);
        }
        let ids: Vec<u16> = (0..bufs.len()).filter_map(|_| self.free.pop()).collect();
        for (i, b) in bufs.iter().enumerate() {
            let last = i + 1 == bufs.len();
            let mut flags = if b.write { F_WRITE } else { 0 };
            if !last {
                flags |= F_NEXT;
            }
            let next = if last { 0 } else { ids[i + 1] };
            self.write_desc(
                ram,
                ids[i],
                RawDesc {
                    addr: b.addr,
                    len: b.len,
                    flags,
                    next,
                },
            )?;
        }
        let head = ids[0];
        self.in_flight.insert(head, ids);
        self.publish(ram, head)?;
        Ok(head)
    }

    /// Add a chain through an indirect table written at `table` (16 bytes per buffer).
    pub fn add_indirect(
        &mut self,
        ram: &GuestRam,
        table: u64,
        bufs: &[Buf],
    ) -> Result<u16, HarnessError> {
        let mut raw = Vec::with_capacity(bufs.len() * 16);
        for (i, b) in bufs.iter().enumerate() {
            let last = i + 1 == bufs.len();
            let mut flags = if b.write { F_WRITE } else { 0 };
            if !last {
                flags |= F_NEXT;
            }
            let next = if last {
                0
            } else {
                u16::try_from(i + 1).unwrap_or(0)
            };
            raw.extend_from_slice(&b.addr.to_le_bytes());
            raw.extend_from_slice(&b.len.to_le_bytes());
            raw.extend_from_slice(&flags.to_le_bytes());
            raw.extend_from_slice(&next.to_le_bytes());
        }
        ram.write(table, &raw)?;
        let len = u32::try_from(raw.len()).map_err(|_| HarnessError::QueueFull)?;
        self.add_raw(
            ram,
            &[RawDesc {
                addr: table,
                len,
                flags: F_INDIRECT,
                next: 0,
            }],
        )
    }

    /// Write raw descriptors into free slots, linked as given (`next` fields are indices into
    /// `descs`, translated to slots; a hostile test may point them anywhere by setting
    /// `F_NEXT` with an out-of-list index, which is kept as is). Makes the first available.
    pub fn add_raw(&mut self, ram: &GuestRam, descs: &[RawDesc]) -> Result<u16, HarnessError> {
        if descs.is_empty() || descs.len() > self.free.len() {
            return Err(HarnessError::QueueFull);
        }
        let ids: Vec<u16> = (0..descs.len()).filter_map(|_| self.free.pop()).collect();
        for (i, d) in descs.iter().enumerate() {
            let mut d = *d;
            if let Some(&slot) = ids.get(usize::from(d.next)) {
                if d.flags & F_NEXT != 0 {
                    d.next = slot;
                }
            }
            self.write_desc(ram, ids[i], d)?;
        }
        let head = ids[0];
        self.in_flight.insert(head, ids);
        self.publish(ram, head)?;
        Ok(head)
    }

    /// Whether the driver honours the device's notification suppression the EVENT_IDX way.
    pub fn set_event_idx(&mut self, enabled: bool) {
        self.event_idx = enabled;
    }

    fn publish(&mut self, ram: &GuestRam, head: u16) -> Result<(), HarnessError> {
        let slot = self.avail + 4 + 2 * u64::from(self.avail_idx % self.size);
        ram.write(slot, &head.to_le_bytes())?;
        fence(Ordering::SeqCst);
        let old = self.avail_idx;
        self.avail_idx = self.avail_idx.wrapping_add(1);
        ram.write(self.avail + 2, &self.avail_idx.to_le_bytes())?;
        fence(Ordering::SeqCst);
        if self.kick_needed(ram, old)? {
            self.kick.write(1)?;
        }
        Ok(())
    }

    /// As a Linux driver decides after publishing entries `old..avail_idx`: with EVENT_IDX,
    /// kick only if the device's avail event lies in that range; without, unless the device
    /// set VRING_USED_F_NO_NOTIFY.
    fn kick_needed(&self, ram: &GuestRam, old: u16) -> Result<bool, HarnessError> {
        let mut b = [0u8; 2];
        if self.event_idx {
            let event = self.avail_event(ram)?;
            let new = self.avail_idx;
            Ok(new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old))
        } else {
            ram.read(self.used, &mut b)?;
            Ok(u16::from_le_bytes(b) & 1 == 0)
        }
    }

    /// Hostile tests: overwrite the avail ring's index with `idx` and kick (as a broken or
    /// malicious driver would); `restore` puts the true index back.
    pub fn poke_avail_idx(&mut self, ram: &GuestRam, idx: Option<u16>) -> Result<(), HarnessError> {
        let v = idx.unwrap_or(self.avail_idx);
        ram.write(self.avail + 2, &v.to_le_bytes())?;
        fence(Ordering::SeqCst);
        self.kick.write(1)?;
        Ok(())
    }

    /// The device's avail event (EVENT_IDX): the avail index it will be notified past, which
    /// it sets to how far it read the ring when it goes back to sleep.
    pub fn avail_event(&self, ram: &GuestRam) -> Result<u16, HarnessError> {
        let mut b = [0u8; 2];
        ram.read(self.used + 4 + 8 * u64::from(self.size), &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    /// The driver's own avail index.
    pub fn avail_idx(&self) -> u16 {
        self.avail_idx
    }

    /// Tell the device (EVENT_IDX) to notify at the next used entry.
    fn arm(&self, ram: &GuestRam) -> Result<(), HarnessError> {
        let used_event = self.avail + 4 + 2 * u64::from(self.size);
        ram.write(used_event, &self.last_used.to_le_bytes())?;
        fence(Ordering::SeqCst);
        Ok(())
    }

    /// One used entry, if any: (head, written length).
    pub fn poll(&mut self, ram: &GuestRam) -> Result<Option<(u16, u32)>, HarnessError> {
        fence(Ordering::SeqCst);
        let mut idx = [0u8; 2];
        ram.read(self.used + 2, &mut idx)?;
        if u16::from_le_bytes(idx) == self.last_used {
            return Ok(None);
        }
        let mut e = [0u8; 8];
        ram.read(
            self.used + 4 + 8 * u64::from(self.last_used % self.size),
            &mut e,
        )?;
        self.last_used = self.last_used.wrapping_add(1);
        let id = u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
        let len = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
        let head =
            u16::try_from(id).map_err(|_| HarnessError::Protocol(format!("used id {id}")))?;
        if let Some(ids) = self.in_flight.remove(&head) {
            self.free.extend(ids);
        }
        Ok(Some((head, len)))
    }

    /// Wait for one used entry as a halted vCPU waits for its interrupt: look at the used ring
    /// for up to `halt_poll`, then sleep in a blocking read of the call eventfd, no time limit.
    /// For benchmarks against a daemon that cannot vanish.
    pub fn wait_blocking(
        &mut self,
        ram: &GuestRam,
        halt_poll: Duration,
    ) -> Result<(u16, u32), HarnessError> {
        let poll_until = Instant::now() + halt_poll;
        loop {
            self.arm(ram)?;
            if let Some(u) = self.poll(ram)? {
                return Ok(u);
            }
            if !halt_poll.is_zero() && Instant::now() < poll_until {
                std::hint::spin_loop();
                continue;
            }
            // The call eventfd is in blocking mode; this sleeps until the device signals.
            self.call.read()?;
        }
    }

    /// Wait for one used entry, up to `timeout`.
    pub fn wait(
        &mut self,
        ram: &GuestRam,
        timeout: Duration,
    ) -> Result<Option<(u16, u32)>, HarnessError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.arm(ram)?;
            if let Some(u) = self.poll(ram)? {
                return Ok(Some(u));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let ms = (deadline - now).as_millis().clamp(1, 1000) as i32;
            let mut pfd = libc::pollfd {
                fd: self.call.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd, the count says so; the result only decides whether to
            // read the eventfd.
            let r = unsafe { libc::poll(&mut pfd, 1, ms) };
            if r > 0 {
                let _ = self.call.read();
            }
        }
    }
}
