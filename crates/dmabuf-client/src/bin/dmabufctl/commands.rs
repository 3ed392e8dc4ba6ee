// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The commands of `dmabufctl`, one function each, on a connected [`Ctx`].

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

use dmabuf_client::dma_buf::{begin_cpu_access, end_cpu_access, CpuAccess};
use dmabuf_client::mapping::{file_size, ReadMapping};
use dmabuf_client::pattern::{fill, Fnv1a64};
use dmabuf_client::{
    format_uuid, memfd, Access, ClientError, ShareFlags, Status, Uuid, MAX_PAYLOAD,
};

use crate::args::{HoldArgs, ReadArgs, ShareArgs, Via, WriteArgs};
use crate::{at, CliError, Ctx};

/// Bytes moved per step when streaming to the output.
const CHUNK: u64 = 1 << 20;

/// What can fail inside a fenced transfer: the daemon, or something on this side.
enum Step {
    Daemon(ClientError),
    Local(CliError),
}

impl From<ClientError> for Step {
    fn from(e: ClientError) -> Step {
        Step::Daemon(e)
    }
}

impl Step {
    /// The command's error: the daemon's with the command's name.
    fn at(self, op: &'static str) -> CliError {
        match self {
            Step::Daemon(e) => at(op)(e),
            Step::Local(e) => e,
        }
    }
}

fn print_out(op: &'static str, text: &str) -> Result<(), CliError> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|source| CliError::Output { op, source })
}

fn input_error(path: &Path) -> impl FnOnce(io::Error) -> CliError + '_ {
    move |source| CliError::Input {
        path: path.to_owned(),
        source,
    }
}

/// Read all of FILE or stdin ('-').
pub(crate) fn read_input(path: &Path) -> Result<Vec<u8>, CliError> {
    let mut data = Vec::new();
    if path == Path::new("-") {
        io::stdin()
            .lock()
            .read_to_end(&mut data)
            .map_err(input_error(path))?;
    } else {
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut data))
            .map_err(input_error(path))?;
    }
    Ok(data)
}

/// Where `read` puts the bytes.
enum Sink {
    Crc { hash: Fnv1a64, len: u64 },
    Bytes(Box<dyn Write>),
}

impl Sink {
    fn new(a: &ReadArgs) -> Result<Sink, CliError> {
        if a.crc {
            return Ok(Sink::Crc {
                hash: Fnv1a64::new(),
                len: 0,
            });
        }
        let w: Box<dyn Write> = match &a.out {
            Some(p) if p != Path::new("-") => {
                Box::new(BufWriter::new(File::create(p).map_err(input_error(p))?))
            }
            _ => Box::new(BufWriter::new(io::stdout().lock())),
        };
        Ok(Sink::Bytes(w))
    }

    fn put(&mut self, op: &'static str, bytes: &[u8]) -> Result<(), Step> {
        match self {
            Sink::Crc { hash, len } => {
                hash.update(bytes);
                *len += bytes.len() as u64;
                Ok(())
            }
            Sink::Bytes(w) => w
                .write_all(bytes)
                .map_err(|source| Step::Local(CliError::Output { op, source })),
        }
    }

    fn finish(self) -> io::Result<()> {
        match self {
            Sink::Crc { hash, len } => {
                let mut out = io::stdout().lock();
                writeln!(out, "fnv1a64={:016x} len={len}", hash.finish())?;
                out.flush()
            }
            Sink::Bytes(mut w) => w.flush(),
        }
    }
}

/// The sealed memfd to share and its size.
pub(crate) fn prepare_share(a: &ShareArgs) -> Result<(File, u64), CliError> {
    if let Some(size) = a.memfd_size {
        // Padded to whole pages (shared: `size` bytes), so that guests can map it.
        let f = memfd::shareable_memfd("dmabufctl-share", size).map_err(CliError::Memfd)?;
        if let Some(seed) = a.fill_seed {
            let mut buf = vec![0u8; CHUNK.min(size) as usize];
            let mut at = 0u64;
            while at < size {
                let n = (size - at).min(CHUNK) as usize;
                fill(seed, at, &mut buf[..n]);
                f.write_all_at(&buf[..n], at).map_err(CliError::Memfd)?;
                at += n as u64;
            }
        }
        return Ok((f, size));
    }
    let path = a.file.as_deref().unwrap_or(Path::new("-"));
    let (f, size) = if path == Path::new("-") {
        memfd::shareable_memfd_from_reader("dmabufctl-share", &mut io::stdin().lock())
    } else {
        File::open(path)
            .and_then(|mut src| memfd::shareable_memfd_from_reader("dmabufctl-share", &mut src))
    }
    .map_err(input_error(path))?;
    Ok((f, size))
}

pub(crate) fn share(ctx: &mut Ctx, a: &ShareArgs, file: &File, size: u64) -> Result<(), CliError> {
    let flags = ShareFlags {
        read_only: a.read_only,
        host_only: a.host_only,
    };
    let names: Vec<&str> = a.allow.iter().map(String::as_str).collect();
    let uuid = ctx
        .client
        .share(file, size, flags, &names)
        .map_err(|e| match e {
            ClientError::InvalidArgument(bad) => CliError::Argument(bad),
            other => at("share")(other),
        })?;
    print_out("share", &format!("uuid={}\n", format_uuid(&uuid)))
}

pub(crate) fn list(ctx: &mut Ctx) -> Result<(), CliError> {
    let list = ctx.client.list().map_err(at("list"))?;
    let mut text = format!(
        "{:<36}  {:>12}  {:<20}  {:<32}  {:>9}  {:>8}  {:>8}\n",
        "UUID", "SIZE", "OWNER", "FLAGS", "IMPORTERS", "SEGMENTS", "WRITES"
    );
    for b in list {
        text.push_str(&format!(
            "{:<36}  {:>12}  {:<20}  {:<32}  {:>9}  {:>8}  {:>8}\n",
            format_uuid(&b.uuid),
            b.size,
            b.owner,
            b.flags.to_string(),
            b.importers,
            b.segments,
            b.write_generation
        ));
    }
    print_out("list", &text)
}

pub(crate) fn info(ctx: &mut Ctx, uuid: &Uuid) -> Result<(), CliError> {
    let b = ctx.client.info(uuid).map_err(at("info"))?;
    let text = format!(
        "uuid={}\nsize={}\nowner={}\nflags={}\nread_only={}\nhost_only={}\nhost_backed={}\n\
         revoked={}\nimporters={}\nmapped_importers={}\nsegments={}\nwrite_generation={}\n",
        format_uuid(&b.uuid),
        b.size,
        b.owner,
        b.flags,
        u8::from(b.flags.read_only),
        u8::from(b.flags.host_only),
        u8::from(b.flags.host_backed),
        u8::from(b.flags.revoked),
        b.importers,
        b.mapped,
        b.segments,
        b.write_generation
    );
    // The bytes the daemon copied for the current importers at their fence points (0 for
    // mapped imports), then one line per importer: how it reaches the bytes (spec 13.6).
    let mut text = text;
    let copied: u64 = b.importer_list.iter().map(|i| i.copied).sum();
    text.push_str(&format!("copied_bytes={copied}\n"));
    for i in &b.importer_list {
        let kind = if i.mapped { "mapped" } else { "copied" };
        text.push_str(&format!(
            "importer={} {kind} copied_bytes={}\n",
            i.vm, i.copied
        ));
    }
    print_out("info", &text)
}

pub(crate) fn read(ctx: &mut Ctx, a: &ReadArgs) -> Result<(), CliError> {
    const OP: &str = "read";
    let uuid = a.uuid.0;
    let len = match a.len {
        Some(l) => l,
        None => ctx
            .client
            .info(&uuid)
            .map_err(at(OP))?
            .size
            .saturating_sub(a.offset),
    };
    let mut via = a.via;
    let mut dmabuf = None;
    if matches!(via, Via::Udmabuf | Via::Auto) {
        match ctx.client.export_udmabuf(&uuid) {
            Ok(f) => {
                dmabuf = Some(f);
                via = Via::Udmabuf;
            }
            Err(ClientError::Status(Status::Unsupported)) if via == Via::Auto => via = Via::Memfd,
            Err(e) => return Err(at(OP)(e)),
        }
    }
    let mut sink = Sink::new(a)?;
    let (off, timeout) = (a.offset, ctx.timeout);
    let fenced =
        |c: &mut dmabuf_client::Client,
         f: &mut dyn FnMut(&mut dmabuf_client::Client) -> Result<(), Step>| {
            c.fenced(&uuid, off, len, Access::Read, timeout, f)
                .map_err(|s: Step| s.at(OP))
        };
    match (via, dmabuf) {
        (Via::Socket, _) => {
            eprintln!("path=socket");
            fenced(&mut ctx.client, &mut |c| {
                let mut done = 0;
                loop {
                    let n = (len - done).min(u64::from(MAX_PAYLOAD));
                    let bytes = c.read(&uuid, off + done, n)?;
                    sink.put(OP, &bytes)?;
                    done += n;
                    if done >= len {
                        return Ok(());
                    }
                }
            })?;
        }
        (Via::Udmabuf, Some(f)) => {
            eprintln!("path=udmabuf");
            fenced(&mut ctx.client, &mut |_| {
                read_exported(&f, off, len, &mut sink)
            })?;
        }
        _ => {
            eprintln!("path=memfd");
            let mf = memfd::sealed_memfd("dmabufctl-read", len).map_err(|source| {
                CliError::Transfer {
                    op: OP,
                    what: "cannot make the target memfd",
                    source,
                }
            })?;
            fenced(&mut ctx.client, &mut |c| {
                c.read_into(&uuid, off, len, &mf, 0).map(|_| ())?;
                Ok(())
            })?;
            let mut buf = vec![0u8; CHUNK.min(len) as usize];
            let mut done = 0;
            while done < len {
                let n = (len - done).min(CHUNK) as usize;
                mf.read_exact_at(&mut buf[..n], done)
                    .map_err(|source| CliError::Transfer {
                        op: OP,
                        what: "cannot read the copied bytes",
                        source,
                    })?;
                sink.put(OP, &buf[..n]).map_err(|s| s.at(OP))?;
                done += n as u64;
            }
        }
    }
    sink.finish()
        .map_err(|source| CliError::Output { op: OP, source })
}

/// Copy `off..off + len` of an exported dma-buf to `sink`, through a read-only mapping and
/// inside the kernel's CPU-access bracket.
fn read_exported(f: &File, off: u64, len: u64, sink: &mut Sink) -> Result<(), Step> {
    const OP: &str = "read";
    let local = |source| {
        Step::Local(CliError::Transfer {
            op: OP,
            what: "cannot read the exported dma-buf",
            source,
        })
    };
    let size = file_size(f).map_err(local)?;
    let fits = off.checked_add(len).is_some_and(|e| e <= size);
    let map_len = usize::try_from(size).ok().filter(|_| fits);
    let Some(map_len) = map_len else {
        return Err(Step::Local(CliError::ExportTooSmall { op: OP, size }));
    };
    let map = ReadMapping::new(f, map_len).map_err(local)?;
    begin_cpu_access(f.as_fd(), CpuAccess::Read).map_err(local)?;
    let mut buf = vec![0u8; CHUNK.min(len) as usize];
    let mut done = 0;
    let copied = (|| {
        while done < len {
            let n = (len - done).min(CHUNK) as usize;
            map.read_at((off + done) as usize, &mut buf[..n])
                .map_err(local)?;
            sink.put(OP, &buf[..n])?;
            done += n as u64;
        }
        Ok(())
    })();
    end_cpu_access(f.as_fd(), CpuAccess::Read).map_err(local)?;
    copied
}

pub(crate) fn write(ctx: &mut Ctx, a: &WriteArgs, data: Option<Vec<u8>>) -> Result<(), CliError> {
    const OP: &str = "write";
    let uuid = a.uuid.0;
    let off = a.offset;
    let written = if let Some(data) = data {
        ctx.client
            .write_fenced(&uuid, off, &data, ctx.timeout)
            .map_err(at(OP))?;
        data.len() as u64
    } else {
        let (Some(seed), Some(len)) = (a.fill_seed, a.len) else {
            return Err(CliError::Usage("give --in FILE or --fill-seed S --len L"));
        };
        let step = u64::from(MAX_PAYLOAD);
        ctx.client
            .fenced(&uuid, off, len, Access::Write, ctx.timeout, |c| {
                let mut buf = vec![0u8; step.min(len) as usize];
                let mut done = 0u64;
                loop {
                    let n = (len - done).min(step) as usize;
                    fill(seed, off + done, &mut buf[..n]);
                    c.write(&uuid, off + done, &buf[..n])?;
                    done += n as u64;
                    if done >= len {
                        return Ok(());
                    }
                }
            })
            .map_err(at(OP))?;
        len
    };
    print_out(OP, &format!("written={written}\n"))
}

pub(crate) fn wait_write(ctx: &mut Ctx, uuid: &Uuid, after: Option<u64>) -> Result<(), CliError> {
    const OP: &str = "wait-write";
    let after = match after {
        Some(g) => g,
        None => ctx.client.info(uuid).map_err(at(OP))?.write_generation,
    };
    let generation = ctx
        .client
        .wait_write(uuid, after, ctx.timeout)
        .map_err(at(OP))?;
    print_out(OP, &format!("generation={generation}\n"))
}

pub(crate) fn hold(ctx: &mut Ctx, a: &HoldArgs) -> Result<(), CliError> {
    const OP: &str = "hold";
    let access = if a.write { Access::Write } else { Access::Read };
    ctx.client
        .begin(&a.uuid.0, a.offset, a.len, access, ctx.timeout)
        .map_err(at(OP))?;
    print_out(OP, "held\n")?;
    std::thread::sleep(a.seconds);
    // Said before the END goes out: a waiter the END lets in may report its grant before
    // "released" below is read.
    print_out(OP, "releasing\n")?;
    ctx.client
        .end(&a.uuid.0, a.offset, a.len, access)
        .map_err(at(OP))?;
    print_out(OP, "released\n")
}
