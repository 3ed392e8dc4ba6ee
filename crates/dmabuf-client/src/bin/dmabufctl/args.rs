// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! `dmabufctl`'s command line (clap derive).

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use dmabuf_client::{parse_uuid, Uuid};
use dmabuf_sys_util::size::{self, SizeError};

const EXIT_HELP: &str = "\
Exit status: 0 success; 1 the daemon refused (\"dmabufctl: <op>: <STATUS>\" on stderr) or the
transfer failed; 2 usage error (bad arguments, unparsable UUID, unreadable input); 3 the control
socket cannot be reached.";

/// Host control of vhost-device-dmabuf: share host memory with guests, read and write any buffer
/// under the daemon's CPU-access arbitration.
#[derive(Parser, Debug)]
#[command(name = "dmabufctl", version, after_help = EXIT_HELP)]
pub(crate) struct Cli {
    /// The daemon's control socket [default: $DMABUF_CONTROL_SOCKET, else
    /// /run/vhost-device-dmabuf/control.sock].
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) socket: Option<PathBuf>,

    /// Wait bound in milliseconds for access (BEGIN) and for wait-write; 0 or absent: the
    /// daemon's default, which also caps longer bounds.
    #[arg(long, global = true, value_name = "MS")]
    pub(crate) timeout_ms: Option<u32>,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
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
    /// Begin access to a range, hold it, end it (prints "held", then "releasing" just before
    /// the end and "released" after it).
    ///
    /// Killing dmabufctl (SIGTERM, SIGINT) closes its connection, which releases the access.
    Hold(HoldArgs),
}

#[derive(Args, Debug)]
pub(crate) struct ShareArgs {
    /// File whose bytes to share ('-': stdin).
    #[arg(required_unless_present = "memfd_size", conflicts_with = "memfd_size")]
    pub(crate) file: Option<PathBuf>,
    /// Share a new memfd of this many bytes (decimal or 0x hex, suffixes K, M, G, T) instead of a file.
    #[arg(long, value_name = "N", value_parser = parse_size)]
    pub(crate) memfd_size: Option<u64>,
    /// Fill the new memfd with the test pattern of this seed (with --memfd-size).
    #[arg(
        long,
        value_name = "S",
        requires = "memfd_size",
        conflicts_with = "file"
    )]
    pub(crate) fill_seed: Option<u32>,
    /// Nobody may write the buffer through the daemon (guests import it read-only).
    #[arg(long)]
    pub(crate) read_only: bool,
    /// No VM may import the buffer; only host clients.
    #[arg(long)]
    pub(crate) host_only: bool,
    /// A VM allowed to import the buffer (repeat; none given: every VM).
    #[arg(long = "allow", value_name = "VM")]
    pub(crate) allow: Vec<String>,
}

/// How `read` brings the bytes into this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Via {
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
pub(crate) struct ReadArgs {
    /// The buffer.
    pub(crate) uuid: UuidArg,
    /// First byte.
    #[arg(long, default_value = "0", value_parser = parse_size)]
    pub(crate) offset: u64,
    /// Bytes [default: to the end of the buffer].
    #[arg(long, value_parser = parse_size)]
    pub(crate) len: Option<u64>,
    /// Write the bytes to FILE ('-': stdout, the default).
    #[arg(long, value_name = "FILE", conflicts_with = "crc")]
    pub(crate) out: Option<PathBuf>,
    /// Print "fnv1a64=<hex> len=<n>" instead of the bytes.
    #[arg(long)]
    pub(crate) crc: bool,
    /// Access path; the one taken is printed to stderr as path=<path>.
    #[arg(long, value_enum, default_value_t = Via::Socket)]
    pub(crate) via: Via,
}

#[derive(Args, Debug)]
pub(crate) struct WriteArgs {
    /// The buffer.
    pub(crate) uuid: UuidArg,
    /// First byte.
    #[arg(long, default_value = "0", value_parser = parse_size)]
    pub(crate) offset: u64,
    /// The bytes to write: FILE, or '-' for stdin.
    #[arg(
        long = "in",
        value_name = "FILE",
        required_unless_present = "fill_seed",
        conflicts_with = "fill_seed"
    )]
    pub(crate) input: Option<PathBuf>,
    /// Write the test pattern of this seed (positions within the buffer) instead.
    #[arg(long, value_name = "S", requires = "len")]
    pub(crate) fill_seed: Option<u32>,
    /// Bytes of pattern to write.
    #[arg(long, value_parser = parse_size, requires = "fill_seed")]
    pub(crate) len: Option<u64>,
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("direction").required(true).args(["read", "write"])))]
pub(crate) struct HoldArgs {
    /// The buffer.
    pub(crate) uuid: UuidArg,
    /// First byte.
    #[arg(long, default_value = "0", value_parser = parse_size)]
    pub(crate) offset: u64,
    /// Bytes.
    #[arg(long, value_parser = parse_size)]
    pub(crate) len: u64,
    /// Hold read access.
    #[arg(long)]
    pub(crate) read: bool,
    /// Hold write access.
    #[arg(long)]
    pub(crate) write: bool,
    /// How long to hold it once granted.
    #[arg(long, value_parser = parse_seconds)]
    pub(crate) seconds: Duration,
}

/// A UUID argument, with a clear error for junk.
#[derive(Clone, Copy, Debug)]
pub(crate) struct UuidArg(pub(crate) Uuid);

impl FromStr for UuidArg {
    type Err = String;

    fn from_str(s: &str) -> Result<UuidArg, String> {
        parse_uuid(s).map(UuidArg).ok_or_else(|| {
            "not a UUID (expected 32 hex digits as xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)".into()
        })
    }
}

/// A size argument: decimal or 0x hex, with an optional K, M, G or T (the daemon's rule too).
pub(crate) fn parse_size(s: &str) -> Result<u64, SizeError> {
    size::parse(s)
}

pub(crate) fn parse_seconds(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .and_then(|v| Duration::try_from_secs_f64(v).ok())
        .ok_or_else(|| format!("{s:?} is not a number of seconds"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use dmabuf_client::format_uuid;

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
