// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! `dmabufctl`: share, inspect, read, write and revoke dma-buf daemon buffers from the host.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use dmabuf_client::mapping::{dma_buf_sync, file_size, ReadMapping};
use dmabuf_client::pattern::{fill, Fnv1a64};
use dmabuf_client::{
    format_uuid, memfd, parse_uuid, Access, Client, ClientError, ShareFlags, Status, Uuid,
    MAX_PAYLOAD,
};
use thiserror::Error;

const DEFAULT_SOCKET: &str = "/run/vhost-device-dmabuf/control.sock";
const SOCKET_ENV: &str = "DMABUF_CONTROL_SOCKET";
/// Bytes moved per step when streaming to the output.
const CHUNK: u64 = 1 << 20;

const EXIT_HELP: &str = "\
Exit status: 0 success; 1 the daemon refused (\"dmabufctl: <op>: <STATUS>\" on stderr) or the
transfer failed; 2 usage error (bad arguments, unparsable UUID, unreadable input); 3 the control
socket cannot be reached.";

/// Host control of vhost-device-dmabuf: share host memory with guests, read and write any buffer
/// under the daemon's CPU-access arbitration.
#[derive(Parser, Debug)]
#[command(name = "dmabufctl", version, after_help = EXIT_HELP)]
struct Cli {
    /// The daemon's control socket [default: $DMABUF_CONTROL_SOCKET, else
    /// /run/vhost-device-dmabuf/control.sock].
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,

    /// Wait bound in milliseconds for access (BEGIN) and for wait-write; 0 or absent: the
    /// daemon's default, which also caps longer bounds.
    #[arg(long, global = true, value_name = "MS")]
    timeout_ms: Option<u32>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Share a file's bytes or a new memfd as a host-backed buffer; prints uuid=<UUID>.
    ///
    /// FILE ('-': stdin) is copied into a new memfd sealed with F_SEAL_SHRINK|F_SEAL_GROW, and
    /// that memfd is shared: the daemon accepts only sealed memfds and dma-bufs, because a plain
    /// file could be truncated under its mapping. With --memfd-size a zeroed (or, with
    /// --fill-seed, pattern-filled) memfd is shared instead. The daemon keeps the memfd;
    /// dmabufctl keeps nothing open, and the buffer lives until `dmabufctl revoke`.
    Share(ShareArgs),
    /// List every buffer: uuid, size, owner, flags, importers, segments, writes.
    List,
    /// Describe one buffer as key=value lines.
    Info {
        /// The buffer.
        uuid: UuidArg,
    },
    /// Read a range (fenced: begin read, read, end) to a file, stdout, or a checksum.
    Read(ReadArgs),
    /// Write a range (fenced: begin write, write, end) from a file, stdin, or the test pattern.
    Write(WriteArgs),
    /// Wait until a write to the buffer ends; prints generation=<N>.
    WaitWrite {
        /// The buffer.
        uuid: UuidArg,
        /// Return once the write generation exceeds this [default: the current generation].
        #[arg(long, value_name = "GEN")]
        after: Option<u64>,
    },
    /// Revoke a buffer: importers are detached, waiters fail, the UUID is gone.
    Revoke {
        /// The buffer.
        uuid: UuidArg,
    },
    /// Begin access to a range, hold it, end it (prints "held", then "released").
    ///
    /// Killing dmabufctl (SIGTERM, SIGINT) closes its connection, which releases the access.
    Hold(HoldArgs),
}

#[derive(Args, Debug)]
struct ShareArgs {
    /// File whose bytes to share ('-': stdin).
    #[arg(required_unless_present = "memfd_size", conflicts_with = "memfd_size")]
    file: Option<PathBuf>,
    /// Share a new memfd of this many bytes (suffixes K, M, G) instead of a file.
    #[arg(long, value_name = "N", value_parser = parse_size)]
    memfd_size: Option<u64>,
    /// Fill the new memfd with the test pattern of this seed (with --memfd-size).
    #[arg(
        long,
        value_name = "S",
        requires = "memfd_size",
        conflicts_with = "file"
    )]
    fill_seed: Option<u32>,
    /// Nobody may write the buffer through the daemon (guests import it read-only).
    #[arg(long)]
    read_only: bool,
    /// No VM may import the buffer; only host clients.
    #[arg(long)]
    host_only: bool,
    /// A VM allowed to import the buffer (repeat; none given: every VM).
    #[arg(long = "allow", value_name = "VM")]
    allow: Vec<String>,
}

/// How `read` brings the bytes into this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Via {
    /// READ frames over the socket (one copy by the daemon).
    Socket,
    /// READ_INTO a sealed memfd of this process (one copy by the daemon).
    Memfd,
    /// EXPORT a udmabuf of the guest's pages and map it (zero copy; guest-backed buffers on
    /// hosts with /dev/udmabuf only).
    Udmabuf,
    /// udmabuf when the daemon can export one, memfd otherwise.
    Auto,
}

#[derive(Args, Debug)]
struct ReadArgs {
    /// The buffer.
    uuid: UuidArg,
    /// First byte.
    #[arg(long, default_value = "0", value_parser = parse_size)]
    offset: u64,
    /// Bytes [default: to the end of the buffer].
    #[arg(long, value_parser = parse_size)]
    len: Option<u64>,
    /// Write the bytes to FILE ('-': stdout, the default).
    #[arg(long, value_name = "FILE", conflicts_with = "crc")]
    out: Option<PathBuf>,
    /// Print "fnv1a64=<hex> len=<n>" instead of the bytes.
    #[arg(long)]
    crc: bool,
    /// Access path; the one taken is printed to stderr as path=<path>.
    #[arg(long, value_enum, default_value_t = Via::Socket)]
    via: Via,
}

#[derive(Args, Debug)]
struct WriteArgs {
    /// The buffer.
    uuid: UuidArg,
    /// First byte.
    #[arg(long, default_value = "0", value_parser = parse_size)]
    offset: u64,
    /// The bytes to write: FILE, or '-' for stdin.
    #[arg(
        long = "in",
        value_name = "FILE",
        required_unless_present = "fill_seed",
        conflicts_with = "fill_seed"
    )]
    input: Option<PathBuf>,
    /// Write the test pattern of this seed (positions within the buffer) instead.
    #[arg(long, value_name = "S", requires = "len")]
    fill_seed: Option<u32>,
    /// Bytes of pattern to write.
    #[arg(long, value_parser = parse_size, requires = "fill_seed")]
    len: Option<u64>,
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("direction").required(true).args(["read", "write"])))]
struct HoldArgs {
    /// The buffer.
    uuid: UuidArg,
    /// First byte.
    #[arg(long, default_value = "0", value_parser = parse_size)]
    offset: u64,
    /// Bytes.
    #[arg(long, value_parser = parse_size)]
    len: u64,
    /// Hold read access.
    #[arg(long)]
    read: bool,
    /// Hold write access.
    #[arg(long)]
    write: bool,
    /// How long to hold it once granted.
    #[arg(long, value_parser = parse_seconds)]
    seconds: Duration,
}

/// A UUID argument, with a clear error for junk.
#[derive(Clone, Copy, Debug)]
struct UuidArg(Uuid);

impl FromStr for UuidArg {
    type Err = String;

    fn from_str(s: &str) -> Result<UuidArg, String> {
        parse_uuid(s).map(UuidArg).ok_or_else(|| {
            "not a UUID (expected 32 hex digits as xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)".into()
        })
    }
}

fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'K' | 'k')) => (&t[..i], 1u64 << 10),
        Some((i, 'M' | 'm')) => (&t[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    let n = match num.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => num.parse::<u64>().ok(),
    };
    n.and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("{s:?} is not a size (a number with an optional K, M or G)"))
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .and_then(|v| Duration::try_from_secs_f64(v).ok())
        .ok_or_else(|| format!("{s:?} is not a number of seconds"))
}

#[derive(Debug, Error)]
enum CliError {
    /// The daemon refused, or talking to it failed.
    #[error("{op}: {source}")]
    Client {
        op: &'static str,
        #[source]
        source: ClientError,
    },
    /// Could not connect.
    #[error("{0}; is vhost-device-dmabuf running with --control-socket?")]
    Connect(#[source] ClientError),
    /// Bad input from the user.
    #[error("{0}")]
    Usage(String),
    /// Writing the output failed.
    #[error("{op}: output: {source}")]
    Output {
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

impl CliError {
    fn code(&self) -> u8 {
        match self {
            CliError::Client { .. } | CliError::Output { .. } => 1,
            CliError::Usage(_) => 2,
            CliError::Connect(_) => 3,
        }
    }
}

/// Attach the subcommand's name to a library error.
fn at(op: &'static str) -> impl Fn(ClientError) -> CliError {
    move |source| CliError::Client { op, source }
}

fn input_error(path: &Path, e: io::Error) -> CliError {
    CliError::Usage(format!("{}: {e}", path.display()))
}

/// Read all of FILE or stdin ('-').
fn read_input(path: &Path) -> Result<Vec<u8>, CliError> {
    let mut data = Vec::new();
    if path == Path::new("-") {
        io::stdin()
            .lock()
            .read_to_end(&mut data)
            .map_err(|e| input_error(path, e))?;
    } else {
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut data))
            .map_err(|e| input_error(path, e))?;
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
            Some(p) if p != Path::new("-") => Box::new(BufWriter::new(
                File::create(p).map_err(|e| input_error(p, e))?,
            )),
            _ => Box::new(BufWriter::new(io::stdout().lock())),
        };
        Ok(Sink::Bytes(w))
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Sink::Crc { hash, len } => {
                hash.update(bytes);
                *len += bytes.len() as u64;
                Ok(())
            }
            Sink::Bytes(w) => w.write_all(bytes),
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

struct Ctx {
    client: Client,
    timeout: Option<Duration>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dmabufctl: {e}");
            ExitCode::from(e.code())
        }
    }
}

fn socket_path(cli: &Cli) -> PathBuf {
    cli.socket
        .clone()
        .or_else(|| std::env::var_os(SOCKET_ENV).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

fn run(cli: Cli) -> Result<(), CliError> {
    let timeout = cli
        .timeout_ms
        .filter(|&ms| ms != 0)
        .map(|ms| Duration::from_millis(u64::from(ms)));
    let path = socket_path(&cli);
    // Local inputs first: a bad file is a usage error whether or not the daemon runs.
    let share_file = match &cli.command {
        Command::Share(a) => Some(prepare_share(a)?),
        _ => None,
    };
    let write_data = match &cli.command {
        Command::Write(WriteArgs { input: Some(p), .. }) => Some(read_input(p)?),
        _ => None,
    };
    let client = Client::connect(&path).map_err(CliError::Connect)?;
    let mut ctx = Ctx { client, timeout };
    match cli.command {
        Command::Share(a) => {
            let (file, size) = share_file.expect("prepared above");
            cmd_share(&mut ctx, &a, &file, size)
        }
        Command::List => cmd_list(&mut ctx),
        Command::Info { uuid } => cmd_info(&mut ctx, &uuid.0),
        Command::Read(a) => cmd_read(&mut ctx, &a),
        Command::Write(a) => cmd_write(&mut ctx, &a, write_data),
        Command::WaitWrite { uuid, after } => cmd_wait_write(&mut ctx, &uuid.0, after),
        Command::Revoke { uuid } => ctx.client.revoke(&uuid.0).map_err(at("revoke")),
        Command::Hold(a) => cmd_hold(&mut ctx, &a),
    }
}

fn print_out(op: &'static str, text: &str) -> Result<(), CliError> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|source| CliError::Output { op, source })
}

/// The sealed memfd to share and its size.
fn prepare_share(a: &ShareArgs) -> Result<(File, u64), CliError> {
    let mem_err = |e: io::Error| CliError::Usage(format!("cannot make a memfd: {e}"));
    if let Some(size) = a.memfd_size {
        let f = memfd::sealed_memfd("dmabufctl-share", size).map_err(mem_err)?;
        if let Some(seed) = a.fill_seed {
            let mut buf = vec![0u8; CHUNK.min(size) as usize];
            let mut at = 0u64;
            while at < size {
                let n = (size - at).min(CHUNK) as usize;
                fill(seed, at, &mut buf[..n]);
                f.write_all_at(&buf[..n], at).map_err(mem_err)?;
                at += n as u64;
            }
        }
        return Ok((f, size));
    }
    let path = a.file.as_deref().unwrap_or(Path::new("-"));
    let f = if path == Path::new("-") {
        memfd::sealed_memfd_from_reader("dmabufctl-share", &mut io::stdin().lock())
    } else {
        File::open(path)
            .and_then(|mut src| memfd::sealed_memfd_from_reader("dmabufctl-share", &mut src))
    }
    .map_err(|e| input_error(path, e))?;
    let size = f.metadata().map_err(mem_err)?.len();
    Ok((f, size))
}

fn cmd_share(ctx: &mut Ctx, a: &ShareArgs, file: &File, size: u64) -> Result<(), CliError> {
    let flags = ShareFlags {
        read_only: a.read_only,
        host_only: a.host_only,
    };
    let names: Vec<&str> = a.allow.iter().map(String::as_str).collect();
    let uuid = ctx
        .client
        .share(file, size, flags, &names)
        .map_err(|e| match e {
            ClientError::InvalidArgument(m) => CliError::Usage(m),
            other => at("share")(other),
        })?;
    print_out("share", &format!("uuid={}\n", format_uuid(&uuid)))
}

fn cmd_list(ctx: &mut Ctx) -> Result<(), CliError> {
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

fn cmd_info(ctx: &mut Ctx, uuid: &Uuid) -> Result<(), CliError> {
    let b = ctx.client.info(uuid).map_err(at("info"))?;
    let text = format!(
        "uuid={}\nsize={}\nowner={}\nflags={}\nread_only={}\nhost_only={}\nhost_backed={}\n\
         revoked={}\nimporters={}\nsegments={}\nwrite_generation={}\n",
        format_uuid(&b.uuid),
        b.size,
        b.owner,
        b.flags,
        u8::from(b.flags.read_only),
        u8::from(b.flags.host_only),
        u8::from(b.flags.host_backed),
        u8::from(b.flags.revoked),
        b.importers,
        b.segments,
        b.write_generation
    );
    print_out("info", &text)
}

fn cmd_read(ctx: &mut Ctx, a: &ReadArgs) -> Result<(), CliError> {
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
    // Output errors are carried out of the fence separately from the daemon's answers.
    let mut out_err: Option<io::Error> = None;
    let mut put = |sink: &mut Sink, bytes: &[u8]| -> Result<(), ClientError> {
        sink.put(bytes).map_err(|e| {
            let msg = e.to_string();
            out_err = Some(e);
            ClientError::Io(io::Error::other(msg))
        })
    };
    let result = match via {
        Via::Socket => {
            eprintln!("path=socket");
            ctx.client
                .fenced(&uuid, off, len, Access::Read, timeout, |c| {
                    let mut done = 0;
                    loop {
                        let n = (len - done).min(u64::from(MAX_PAYLOAD));
                        let bytes = c.read(&uuid, off + done, n)?;
                        put(&mut sink, &bytes)?;
                        done += n;
                        if done >= len {
                            return Ok(());
                        }
                    }
                })
        }
        Via::Memfd => {
            eprintln!("path=memfd");
            let mf = memfd::sealed_memfd("dmabufctl-read", len)
                .map_err(|e| at(OP)(ClientError::Io(e)))?;
            ctx.client
                .fenced(&uuid, off, len, Access::Read, timeout, |c| {
                    c.read_into(&uuid, off, len, &mf, 0)
                })
                .and_then(|_| {
                    let mut buf = vec![0u8; CHUNK.min(len) as usize];
                    let mut done = 0;
                    while done < len {
                        let n = (len - done).min(CHUNK) as usize;
                        mf.read_exact_at(&mut buf[..n], done)?;
                        put(&mut sink, &buf[..n])?;
                        done += n as u64;
                    }
                    Ok(())
                })
        }
        Via::Udmabuf | Via::Auto => {
            eprintln!("path=udmabuf");
            let f = dmabuf.expect("exported above");
            ctx.client
                .fenced(&uuid, off, len, Access::Read, timeout, |_| {
                    let size = usize::try_from(file_size(&f)?)
                        .map_err(|_| ClientError::Protocol("dma-buf too large to map".into()))?;
                    let end = off.checked_add(len).filter(|&e| e <= size as u64);
                    if end.is_none() {
                        return Err(ClientError::Protocol(format!(
                            "range beyond the exported dma-buf of {size} bytes"
                        )));
                    }
                    let map = ReadMapping::new(&f, size)?;
                    dma_buf_sync(&f, false, true, false)?;
                    let mut buf = vec![0u8; CHUNK.min(len) as usize];
                    let mut done = 0;
                    let copied = (|| {
                        while done < len {
                            let n = (len - done).min(CHUNK) as usize;
                            map.read_at((off + done) as usize, &mut buf[..n])?;
                            put(&mut sink, &buf[..n])?;
                            done += n as u64;
                        }
                        Ok(())
                    })();
                    dma_buf_sync(&f, true, true, false)?;
                    copied
                })
        }
    };
    if let Some(source) = out_err {
        return Err(CliError::Output { op: OP, source });
    }
    result.map_err(at(OP))?;
    sink.finish()
        .map_err(|source| CliError::Output { op: OP, source })
}

fn cmd_write(ctx: &mut Ctx, a: &WriteArgs, data: Option<Vec<u8>>) -> Result<(), CliError> {
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
            return Err(CliError::Usage(
                "give --in FILE or --fill-seed S --len L".into(),
            ));
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

fn cmd_wait_write(ctx: &mut Ctx, uuid: &Uuid, after: Option<u64>) -> Result<(), CliError> {
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

fn cmd_hold(ctx: &mut Ctx, a: &HoldArgs) -> Result<(), CliError> {
    const OP: &str = "hold";
    let access = if a.write { Access::Write } else { Access::Read };
    ctx.client
        .begin(&a.uuid.0, a.offset, a.len, access, ctx.timeout)
        .map_err(at(OP))?;
    print_out(OP, "held\n")?;
    std::thread::sleep(a.seconds);
    ctx.client
        .end(&a.uuid.0, a.offset, a.len, access)
        .map_err(at(OP))?;
    print_out(OP, "released\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes_seconds_and_uuids_parse() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("8K"), Ok(8192));
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("0x1000"), Ok(4096));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
        assert_eq!(parse_seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("soon").is_err());
        let u = "12345678-9abc-4def-8001-020304050607";
        assert_eq!(
            format_uuid(&u.parse::<UuidArg>().unwrap().0),
            u,
            "round trip"
        );
        assert!("12345678".parse::<UuidArg>().is_err());
    }

    #[test]
    fn arguments_combine_as_documented() {
        let p = |args: &[&str]| Cli::try_parse_from([&["dmabufctl"], args].concat());
        let u = "12345678-9abc-4def-8001-020304050607";
        assert!(p(&["share", "f"]).is_ok());
        assert!(p(&["share", "--memfd-size", "4K", "--fill-seed", "1"]).is_ok());
        assert!(p(&["share"]).is_err());
        assert!(p(&["share", "f", "--memfd-size", "1"]).is_err());
        assert!(p(&["share", "f", "--fill-seed", "1"]).is_err());
        assert!(p(&["read", u, "--crc", "--out", "x"]).is_err());
        assert!(p(&["read", u, "--via", "udmabuf"]).is_ok());
        assert!(p(&["write", u]).is_err());
        assert!(p(&["write", u, "--in", "-", "--fill-seed", "1", "--len", "1"]).is_err());
        assert!(p(&["write", u, "--fill-seed", "1", "--len", "1"]).is_ok());
        assert!(p(&["hold", u, "--len", "1", "--seconds", "1"]).is_err());
        assert!(p(&[
            "hold",
            u,
            "--len",
            "1",
            "--read",
            "--write",
            "--seconds",
            "1"
        ])
        .is_err());
        let c = p(&["wait-write", u, "--timeout-ms", "50"]).unwrap();
        assert_eq!(c.timeout_ms, Some(50), "global option after the subcommand");
    }
}
