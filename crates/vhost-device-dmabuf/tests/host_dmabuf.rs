// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Host dma-bufs for real: the udmabuf EXPORT of a guest-backed buffer and its lifetime, host
//! dma-buf shares (a udmabuf, a vgem buffer) bracketed with `DMA_BUF_IOCTL_SYNC`, and a vgem
//! buffer whose fence does not signal.
//!
//! They need `/dev/udmabuf` and vgem, which this build machine lacks: `tests/nested.sh` runs
//! this binary, with the daemon at the path it was built for, inside Debian guests (6.12, 7.x)
//! that have both, with `DMABUF_NESTED=1`. Elsewhere each test says SKIP and passes — unless
//! `DMABUF_NESTED=1`, where a missing device fails it. Each test prints `NESTED-PASS <name>`
//! when it ran all the way, which the runner counts.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd, FromRawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use dmabuf_client::dma_buf::{begin_cpu_access, end_cpu_access, CpuAccess};
use dmabuf_client::memfd::sealed_memfd;
use dmabuf_client::{Access, Client, ClientError, ShareFlags, Status};
use dmabuf_harness::{DaemonProcess, GuestBuffer, Vm, VmOptions};
use virtio_dmabuf_proto::virtio::sync_flags as sf;
use virtio_dmabuf_proto::virtio::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_vhost-device-dmabuf");
const PAGE: u64 = 4096;
/// The daemon's wait bound in these tests (vgem signals a forgotten fence after 10 s).
const BOUND_MS: u64 = 1000;

fn nested() -> bool {
    std::env::var("DMABUF_NESTED").is_ok_and(|v| v == "1")
}

/// Whether `what` is there; if not: SKIP, or fail under `DMABUF_NESTED=1`.
fn have(test: &str, what: &str, ok: bool) -> bool {
    if !ok {
        assert!(!nested(), "{test}: DMABUF_NESTED=1 but {what} is missing");
        eprintln!(
            "SKIP {test}: {what} is missing (tests/nested.sh runs this in a guest that has it)"
        );
    }
    ok
}

fn passed(test: &str) {
    eprintln!("NESTED-PASS {test}");
}

/// The daemon, sandboxed as by default (checked: the guests run these paths under the filter).
fn daemon() -> DaemonProcess {
    let bound = BOUND_MS.to_string();
    let d = DaemonProcess::spawn(Path::new(BIN), &["vm1"], &["--sync-timeout-ms", &bound]).unwrap();
    // The sockets are bound just before the sandbox is applied: look until it is.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let path = format!("/proc/{}/status", d.pid().unwrap());
        let status = std::fs::read_to_string(path).unwrap();
        if status.contains("Seccomp:\t2") && status.contains("NoNewPrivs:\t1") {
            return d;
        }
        assert!(Instant::now() < deadline, "not sandboxed:\n{status}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------- dma-buf helpers

/// A shared mapping of a dma-buf.
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    fn new(f: &File, len: u64) -> Mapping {
        let len = usize::try_from(len).unwrap();
        // SAFETY: a shared read-write mapping of `len` bytes of a dma-buf we hold; checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED, "{}", std::io::Error::last_os_error());
        Mapping {
            ptr: ptr.cast(),
            len,
        }
    }

    fn read(&self, off: usize, len: usize) -> Vec<u8> {
        assert!(off + len <= self.len);
        // SAFETY: inside the live mapping; volatile because others write it.
        (0..len)
            .map(|i| unsafe { self.ptr.add(off + i).read_volatile() })
            .collect()
    }

    fn write(&self, off: usize, data: &[u8]) {
        assert!(off + data.len() <= self.len);
        for (i, b) in data.iter().enumerate() {
            // SAFETY: inside the live mapping.
            unsafe { self.ptr.add(off + i).write_volatile(*b) };
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Read or write a dma-buf's mapping inside its CPU-access bracket.
fn bracketed<R>(f: &File, access: CpuAccess, body: impl FnOnce() -> R) -> R {
    begin_cpu_access(f.as_fd(), access).unwrap();
    let r = body();
    end_cpu_access(f.as_fd(), access).unwrap();
    r
}

fn pattern(seed: u8, len: u64) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// `UDMABUF_CREATE` = `_IOW('u', 0x42, struct udmabuf_create)`.
const UDMABUF_CREATE: libc::c_ulong = 0x4018_7542;

/// A udmabuf over the whole of `memfd`.
fn udmabuf_of(memfd: &File, size: u64) -> File {
    let dev = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/udmabuf")
        .unwrap();
    // struct udmabuf_create { u32 memfd; u32 flags; u64 offset; u64 size; }
    let arg: [u64; 3] = [
        u64::from(memfd.as_raw_fd().unsigned_abs()) | (1u64 << 32), // UDMABUF_FLAGS_CLOEXEC
        0,
        size,
    ];
    // SAFETY: the kernel reads the 24-byte struct; checked.
    let fd = unsafe { libc::ioctl(dev.as_raw_fd(), UDMABUF_CREATE, arg.as_ptr()) };
    assert!(
        fd >= 0,
        "UDMABUF_CREATE: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: a new fd the kernel returned.
    unsafe { File::from_raw_fd(fd) }
}

/// vgem, the virtual GEM driver: dumb buffers exported as dma-bufs, and fences attached to them
/// by hand.
struct Vgem {
    card: File,
}

const DRM_IOCTL_VERSION: libc::c_ulong = 0xC040_6400;
const DRM_IOCTL_MODE_CREATE_DUMB: libc::c_ulong = 0xC020_64B2;
const DRM_IOCTL_PRIME_HANDLE_TO_FD: libc::c_ulong = 0xC00C_642D;
const DRM_IOCTL_VGEM_FENCE_ATTACH: libc::c_ulong = 0xC010_6441;
const DRM_IOCTL_VGEM_FENCE_SIGNAL: libc::c_ulong = 0x4008_6442;
const VGEM_FENCE_WRITE: u32 = 1;

fn drm_ioctl<T>(f: &File, req: libc::c_ulong, arg: &mut T) -> std::io::Result<()> {
    // SAFETY: `arg` is the struct this DRM request reads and writes; checked.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), req, arg as *mut T) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[repr(C)]
#[derive(Default)]
struct DrmVersion {
    major: i32,
    minor: i32,
    patch: i32,
    name_len: usize,
    name: usize,
    date_len: usize,
    date: usize,
    desc_len: usize,
    desc: usize,
}

impl Vgem {
    /// The vgem card, if one is there.
    fn open() -> Option<Vgem> {
        for i in 0..8 {
            let Ok(card) = OpenOptions::new()
                .read(true)
                .write(true)
                .open(format!("/dev/dri/card{i}"))
            else {
                continue;
            };
            let mut name = [0u8; 32];
            let mut v = DrmVersion {
                name_len: name.len(),
                name: name.as_mut_ptr() as usize,
                ..DrmVersion::default()
            };
            if drm_ioctl(&card, DRM_IOCTL_VERSION, &mut v).is_ok() && name.starts_with(b"vgem") {
                return Some(Vgem { card });
            }
        }
        None
    }

    /// A buffer of `size` bytes (a multiple of the page): its handle and its dma-buf.
    fn buffer(&self, size: u64) -> (u32, File) {
        // struct drm_mode_create_dumb { u32 height, width, bpp, flags, handle, pitch; u64 size; }
        let mut dumb: [u32; 8] = [u32::try_from(size / PAGE).unwrap(), 1024, 32, 0, 0, 0, 0, 0];
        drm_ioctl(&self.card, DRM_IOCTL_MODE_CREATE_DUMB, &mut dumb).unwrap();
        let handle = dumb[4];
        // struct drm_prime_handle { u32 handle; u32 flags; s32 fd; }
        let mut prime: [i32; 3] = [handle as i32, libc::O_CLOEXEC | libc::O_RDWR, -1];
        drm_ioctl(&self.card, DRM_IOCTL_PRIME_HANDLE_TO_FD, &mut prime).unwrap();
        // SAFETY: a new fd the kernel returned.
        (handle, unsafe { File::from_raw_fd(prime[2]) })
    }

    /// Attach an unsignalled fence to buffer `handle` (a write fence, or a read fence).
    fn fence(&self, handle: u32, write: bool) -> u32 {
        // struct drm_vgem_fence_attach { u32 handle; u32 flags; u32 out_fence; u32 pad; }
        let mut a: [u32; 4] = [handle, if write { VGEM_FENCE_WRITE } else { 0 }, 0, 0];
        drm_ioctl(&self.card, DRM_IOCTL_VGEM_FENCE_ATTACH, &mut a).unwrap();
        a[2]
    }

    fn signal(&self, fence: u32) {
        // struct drm_vgem_fence_signal { u32 fence; u32 flags; }
        let mut s: [u32; 2] = [fence, 0];
        drm_ioctl(&self.card, DRM_IOCTL_VGEM_FENCE_SIGNAL, &mut s).unwrap();
    }
}

fn status<T>(r: Result<T, ClientError>) -> Status {
    match r {
        Ok(_) => Status::Ok,
        Err(ClientError::Status(s)) => s,
        Err(e) => panic!("expected a status, got {e}"),
    }
}

/// A guest buffer of `pages` whole, page-aligned pages filled with `data`, registered.
fn guest_buffer(vm: &mut Vm, data: &[u8]) -> (GuestBuffer, Uuid) {
    let b = vm.alloc_buffer(data.len() as u64, false).unwrap();
    assert_eq!(b.segs[0].0 % PAGE, 0);
    vm.write_buffer(&b, 0, data).unwrap();
    let u = vm.create_buffer(&b, 0).unwrap().unwrap();
    (b, u)
}

// ---------------------------------------------------------------------- tests

/// (a) EXPORT of a guest-backed buffer maps the guest's pages while the guest holds the buffer
/// (a host REVOKE included); from its RELEASE on it keeps the pages' last bytes, and neither the
/// guest's reuse of the pages nor the export's writes cross over (spec section 6.3).
#[test]
fn udmabuf_export_maps_the_guest_pages_until_release() {
    let test = "udmabuf_export_maps_the_guest_pages_until_release";
    if !have(test, "/dev/udmabuf", Path::new("/dev/udmabuf").exists()) {
        return;
    }
    let d = daemon();
    let mut vm = Vm::connect(&d.vm_socket("vm1"), VmOptions::default()).unwrap();
    let mut c = Client::connect(d.control_socket()).unwrap();
    let size = 4 * PAGE;
    let a = pattern(1, size);
    let (b, u) = guest_buffer(&mut vm, &a);

    let f = c.export_udmabuf(&u).unwrap();
    let m = Mapping::new(&f, size);
    assert_eq!(
        bracketed(&f, CpuAccess::Read, || m.read(0, size as usize)),
        a
    );
    // Zero copy both ways while the guest holds it.
    bracketed(&f, CpuAccess::Write, || m.write(0, b"from the host"));
    assert_eq!(vm.read_buffer(&b, 0, 13).unwrap(), b"from the host");
    vm.write_buffer(&b, PAGE, b"from the guest").unwrap();
    assert_eq!(m.read(PAGE as usize, 14), b"from the guest");
    let at_release = m.read(0, size as usize);

    assert_eq!(vm.release(&u).unwrap(), Status::Ok);
    // The guest reuses the pages: the export keeps what they held at RELEASE.
    let reuse = pattern(99, size);
    vm.write_buffer(&b, 0, &reuse).unwrap();
    let seen = bracketed(&f, CpuAccess::Read, || m.read(0, size as usize));
    assert!(
        seen == at_release,
        "the guest's writes after RELEASE reached the export (it shows {} bytes of them)",
        seen.iter().zip(&reuse).filter(|(a, b)| a == b).count()
    );
    // And what the export writes stays in the export.
    bracketed(&f, CpuAccess::Write, || {
        m.write(2 * PAGE as usize, b"late host write")
    });
    assert!(
        vm.read_buffer(&b, 0, size).unwrap() == reuse,
        "the export's write after RELEASE reached the guest"
    );
    assert_eq!(m.read(2 * PAGE as usize, 15), b"late host write");
    drop(m);
    drop(f);

    // A REVOKE does not detach: the guest still uses its revoked buffer's pages.
    let (b2, u2) = guest_buffer(&mut vm, &pattern(5, 2 * PAGE));
    let f2 = c.export_udmabuf(&u2).unwrap();
    let m2 = Mapping::new(&f2, 2 * PAGE);
    c.revoke(&u2).unwrap();
    vm.write_buffer(&b2, 0, b"after revoke").unwrap();
    assert_eq!(m2.read(0, 12), b"after revoke");
    assert_eq!(vm.release(&u2).unwrap(), Status::Ok);
    vm.write_buffer(&b2, 0, b"after release").unwrap();
    assert_eq!(m2.read(0, 12), b"after revoke");
    passed(test);
}

/// The shares of (b): a udmabuf over a memfd, and a vgem buffer (if vgem is loaded).
fn host_dma_bufs(test: &str, size: u64, fill: &[u8]) -> Vec<(&'static str, File)> {
    let mut out = Vec::new();
    if have(test, "/dev/udmabuf", Path::new("/dev/udmabuf").exists()) {
        let memfd = sealed_memfd("origin", size).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&memfd, fill, 0).unwrap();
        out.push(("udmabuf", udmabuf_of(&memfd, size)));
    }
    if let Some(vgem) = have(
        test,
        "vgem (/sbin/load-vgem)",
        Path::new("/dev/dri").exists(),
    )
    .then(Vgem::open)
    .flatten()
    {
        let (_handle, f) = vgem.buffer(size);
        let m = Mapping::new(&f, size);
        bracketed(&f, CpuAccess::Write, || m.write(0, fill));
        out.push(("vgem", f));
    } else {
        assert!(!nested(), "{test}: DMABUF_NESTED=1 but no vgem card");
    }
    out
}

/// (b) A host dma-buf shared with the daemon: a guest's import START brings its bytes over and
/// a write END takes them back, each inside the daemon's `DMA_BUF_IOCTL_SYNC` bracket; a host
/// client reads them over the socket.
#[test]
fn host_dma_buf_shares_are_bracketed_and_copied() {
    let test = "host_dma_buf_shares_are_bracketed_and_copied";
    let size = 4 * PAGE;
    let p = pattern(7, size);
    let shares = host_dma_bufs(test, size, &p);
    if shares.is_empty() {
        return;
    }
    let d = daemon();
    let mut vm = Vm::connect(&d.vm_socket("vm1"), VmOptions::default()).unwrap();
    let mut c = Client::connect(d.control_socket()).unwrap();
    for (kind, f) in &shares {
        let u = c.share(f, size, ShareFlags::default(), &[]).unwrap();
        let copy = vm.alloc_buffer(size, true).unwrap();
        assert_eq!(vm.attach(&u, &copy).unwrap(), Status::Ok, "{kind}");
        assert_eq!(vm.sync(&u, 0, size, sf::READ, 0).unwrap(), Status::Ok);
        assert_eq!(vm.read_buffer(&copy, 0, size).unwrap(), p, "{kind}");
        assert_eq!(
            vm.sync(&u, 0, size, sf::READ | sf::END, 0).unwrap(),
            Status::Ok
        );
        assert_eq!(vm.sync(&u, PAGE, 100, sf::WRITE, 0).unwrap(), Status::Ok);
        vm.write_buffer(&copy, PAGE, &[0xab; 100]).unwrap();
        assert_eq!(
            vm.sync(&u, PAGE, 100, sf::WRITE | sf::END, 0).unwrap(),
            Status::Ok
        );
        let m = Mapping::new(f, size);
        let now = bracketed(f, CpuAccess::Read, || m.read(0, size as usize));
        assert_eq!(
            &now[PAGE as usize..PAGE as usize + 100],
            &[0xab; 100],
            "{kind}"
        );
        assert_eq!(&now[..PAGE as usize], &p[..PAGE as usize], "{kind}");
        c.begin(&u, 0, size, Access::Read, None).unwrap();
        assert_eq!(c.read(&u, 0, size).unwrap(), now, "{kind}");
        c.end(&u, 0, size, Access::Read).unwrap();
        eprintln!("{test}: {kind}: START, write END and host READ bracketed");
    }
    passed(test);
}

/// (c) A vgem buffer with a fence that does not signal: a guest's START on its import ends in
/// `TIMEOUT` at the bound and the VM's other buffers are served meanwhile; a write END waits for
/// the fence and completes when it signals (and ends in `TIMEOUT` when it does not); a host
/// READ ends in `TIMEOUT` too. Before the fix the START blocked the VM's worker until vgem gave
/// up on the fence (10 s).
#[test]
fn an_unsignalled_fence_times_out_and_the_vm_goes_on() {
    let test = "an_unsignalled_fence_times_out_and_the_vm_goes_on";
    let vgem = have(
        test,
        "vgem (/sbin/load-vgem)",
        Path::new("/dev/dri").exists(),
    )
    .then(Vgem::open)
    .flatten();
    let Some(vgem) = vgem else {
        assert!(!nested(), "{test}: DMABUF_NESTED=1 but no vgem card");
        return;
    };
    let size = 4 * PAGE;
    let (handle, f) = vgem.buffer(size);
    let p = pattern(3, size);
    let m = Mapping::new(&f, size);
    bracketed(&f, CpuAccess::Write, || m.write(0, &p));
    let d = daemon();
    let mut vm = Vm::connect(&d.vm_socket("vm1"), VmOptions::default()).unwrap();
    let mut c = Client::connect(d.control_socket()).unwrap();
    let u = c.share(&f, size, ShareFlags::default(), &[]).unwrap();
    let copy = vm.alloc_buffer(size, true).unwrap();
    assert_eq!(vm.attach(&u, &copy).unwrap(), Status::Ok);
    let (_own, mine) = guest_buffer(&mut vm, &pattern(4, 2 * PAGE));
    let bound = Duration::from_millis(BOUND_MS);

    // A write fence that nobody signals: the START waits, the VM does not.
    let fence = vgem.fence(handle, true);
    let t0 = Instant::now();
    let start = vm.sync_async(&u, 0, size, sf::READ, 0).unwrap();
    assert!(
        vm.is_parked(&start).unwrap(),
        "the START must wait for the fence"
    );
    for _ in 0..5 {
        let t = Instant::now();
        assert_eq!(vm.sync(&mine, 0, PAGE, sf::WRITE, 0).unwrap(), Status::Ok);
        assert_eq!(
            vm.sync(&mine, 0, PAGE, sf::WRITE | sf::END, 0).unwrap(),
            Status::Ok
        );
        let took = t.elapsed();
        assert!(took < bound / 2, "another buffer of the VM waited {took:?}");
    }
    let (other, _) = guest_buffer(&mut vm, &pattern(6, PAGE));
    assert_eq!(other.size, PAGE);
    assert_eq!(vm.wait_pending(&start, bound * 5).unwrap(), Status::Timeout);
    let waited = t0.elapsed();
    eprintln!("{test}: START on an unsignalled fence: TIMEOUT after {waited:?} (bound {bound:?})");
    assert!(waited >= bound.mul_f32(0.9), "{waited:?}");
    assert!(waited < bound + Duration::from_millis(1500), "{waited:?}");
    // The access was let go: a host writer is granted at once.
    c.begin(&u, 0, size, Access::Write, Some(Duration::from_millis(200)))
        .unwrap();
    c.end(&u, 0, size, Access::Write).unwrap();
    // A host READ inside a held range waits for the fence too, bounded.
    c.begin(&u, 0, size, Access::Read, None).unwrap();
    let t = Instant::now();
    assert_eq!(status(c.read(&u, 0, 64)), Status::Timeout);
    eprintln!(
        "{test}: host READ on an unsignalled fence: TIMEOUT after {:?}",
        t.elapsed()
    );
    c.end(&u, 0, size, Access::Read).unwrap();

    // Signalled: the START completes and brings the bytes.
    vgem.signal(fence);
    assert_eq!(vm.sync(&u, 0, size, sf::READ, 0).unwrap(), Status::Ok);
    assert_eq!(vm.read_buffer(&copy, 0, size).unwrap(), p);
    assert_eq!(
        vm.sync(&u, 0, size, sf::READ | sf::END, 0).unwrap(),
        Status::Ok
    );

    // A write END waits for a reader's fence (reads may go on: the START is granted), and
    // completes once it signals, with the bytes in the origin.
    let reader = vgem.fence(handle, false);
    assert_eq!(vm.sync(&u, 0, PAGE, sf::WRITE, 0).unwrap(), Status::Ok);
    vm.write_buffer(&copy, 0, &[0x5a; 64]).unwrap();
    let end = vm.sync_async(&u, 0, PAGE, sf::WRITE | sf::END, 0).unwrap();
    assert!(
        vm.is_parked(&end).unwrap(),
        "the END must wait for the reader's fence"
    );
    std::thread::sleep(bound / 4);
    vgem.signal(reader);
    assert_eq!(vm.wait_pending(&end, bound * 5).unwrap(), Status::Ok);
    assert_eq!(
        bracketed(&f, CpuAccess::Read, || m.read(0, 64)),
        vec![0x5a; 64]
    );
    // ... and ends in TIMEOUT, not copied, when it never signals; the access is over.
    let _stuck = vgem.fence(handle, false);
    assert_eq!(vm.sync(&u, 0, PAGE, sf::WRITE, 0).unwrap(), Status::Ok);
    vm.write_buffer(&copy, 0, &[0x77; 64]).unwrap();
    let t = Instant::now();
    assert_eq!(
        vm.sync(&u, 0, PAGE, sf::WRITE | sf::END, 0).unwrap(),
        Status::Timeout
    );
    assert!(t.elapsed() < bound + Duration::from_millis(1500));
    assert_eq!(m.read(0, 64), vec![0x5a; 64]);
    assert_eq!(
        vm.sync(&u, 0, PAGE, sf::WRITE | sf::END, 0).unwrap(),
        Status::NotHeld
    );
    passed(test);
}
