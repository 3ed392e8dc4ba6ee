// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! `dmabufctl`: share, inspect, read, write and revoke dma-buf daemon buffers from the host.
//!
//! The command line is in [`args`], the commands in [`commands`]; everything that talks to the
//! daemon is the `dmabuf_client` library.

mod args;
mod commands;

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use dmabuf_client::error::chain;
use dmabuf_client::{ArgumentError, Client, ClientError};
use thiserror::Error;

use args::{Cli, Command, WriteArgs};

const DEFAULT_SOCKET: &str = "/run/vhost-device-dmabuf/control.sock";
const SOCKET_ENV: &str = "DMABUF_CONTROL_SOCKET";

/// Why a command failed. Printed as `dmabufctl: ` and the error's chain of causes.
#[derive(Debug, Error)]
enum CliError {
    /// The daemon refused, or talking to it failed.
    #[error("{op}")]
    Daemon {
        op: &'static str,
        #[source]
        source: ClientError,
    },
    /// Could not connect.
    #[error("cannot reach the daemon (is vhost-device-dmabuf running with --control-socket?)")]
    Connect(#[source] ClientError),
    /// Arguments that do not go together.
    #[error("{0}")]
    Usage(&'static str),
    /// An argument the wire cannot carry.
    #[error("invalid argument")]
    Argument(#[source] ArgumentError),
    /// An input file (or stdin) that cannot be read.
    #[error("cannot read {}", .path.display())]
    Input {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A local memfd could not be made or filled.
    #[error("cannot make a memfd")]
    Memfd(#[source] io::Error),
    /// Writing the output failed.
    #[error("{op}: cannot write the output")]
    Output {
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// Moving the bytes on this side failed (a target memfd, the exported dma-buf).
    #[error("{op}: {what}")]
    Transfer {
        op: &'static str,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    /// The exported dma-buf is smaller than the range.
    #[error("{op}: the range ends beyond the exported dma-buf of {size} bytes")]
    ExportTooSmall { op: &'static str, size: u64 },
}

impl CliError {
    /// The exit status (documented in `--help`).
    fn code(&self) -> u8 {
        match self {
            CliError::Daemon { .. }
            | CliError::Output { .. }
            | CliError::Transfer { .. }
            | CliError::ExportTooSmall { .. } => 1,
            CliError::Usage(_)
            | CliError::Argument(_)
            | CliError::Input { .. }
            | CliError::Memfd(_) => 2,
            CliError::Connect(_) => 3,
        }
    }
}

/// Attach the subcommand's name to a library error.
fn at(op: &'static str) -> impl Fn(ClientError) -> CliError {
    move |source| CliError::Daemon { op, source }
}

/// The connection and the options every command shares.
struct Ctx {
    client: Client,
    timeout: Option<Duration>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dmabufctl: {}", chain(&e));
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
        Command::Share(a) => Some(commands::prepare_share(a)?),
        _ => None,
    };
    let write_data = match &cli.command {
        Command::Write(WriteArgs { input: Some(p), .. }) => Some(commands::read_input(p)?),
        _ => None,
    };
    let client = Client::connect(&path).map_err(CliError::Connect)?;
    let mut ctx = Ctx { client, timeout };
    match cli.command {
        Command::Share(a) => match share_file {
            Some((file, size)) => commands::share(&mut ctx, &a, &file, size),
            None => Err(CliError::Usage("nothing to share")),
        },
        Command::List => commands::list(&mut ctx),
        Command::Info { uuid } => commands::info(&mut ctx, &uuid.0),
        Command::Read(a) => commands::read(&mut ctx, &a),
        Command::Write(a) => commands::write(&mut ctx, &a, write_data),
        Command::WaitWrite { uuid, after } => commands::wait_write(&mut ctx, &uuid.0, after),
        Command::Revoke { uuid } => ctx.client.revoke(&uuid.0).map_err(at("revoke")),
        Command::Hold(a) => commands::hold(&mut ctx, &a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dmabuf_client::Status;

    #[test]
    fn errors_print_each_cause_once_and_map_to_exit_codes() {
        let e = at("info")(ClientError::Status(Status::NotFound));
        assert!(chain(&e).starts_with("info: NOT_FOUND ("), "{}", chain(&e));
        assert_eq!(e.code(), 1);
        let e = CliError::Connect(ClientError::Connect(
            "/x".into(),
            io::Error::from_raw_os_error(libc::ECONNREFUSED),
        ));
        let text = chain(&e);
        assert_eq!(text.matches("refused").count(), 1, "{text}");
        assert!(text.contains("cannot connect to /x: "), "{text}");
        assert_eq!(e.code(), 3);
        let e = CliError::Input {
            path: "in.bin".into(),
            source: io::Error::from_raw_os_error(libc::ENOENT),
        };
        assert_eq!(
            chain(&e),
            "cannot read in.bin: No such file or directory (os error 2)"
        );
        assert_eq!(e.code(), 2);
    }
}
