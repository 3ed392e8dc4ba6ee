// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! `xtask`: what the Debian package needs besides the binaries, generated from the clap
//! definitions the binaries themselves are built from (`packaging/README.md`).
//!
//! `cargo run -p xtask -- assets --out DIR` writes
//!
//! * `DIR/man/vhost-device-dmabuf.1`, `DIR/man/dmabufctl.1` and one `dmabufctl-<command>.1` per
//!   subcommand (gzipped by cargo-deb when it packs them);
//! * `DIR/completions/{bash,zsh,fish}/` for both commands, named as Debian's shells look for
//!   them (`NAME`, `_NAME`, `NAME.fish`).
//!
//! The two command-line modules are the binaries' own source files, compiled into this tool as
//! well (`#[path]`): there is no second copy of an option that could drift.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;
use thiserror::Error;

/// The daemon's command line (its `src/cli.rs`).
#[allow(dead_code)] // the tool builds the parser, never reads the parsed fields
#[path = "../../crates/vhost-device-dmabuf/src/cli.rs"]
mod daemon_cli;

/// `dmabufctl`'s command line (its `args.rs`).
#[allow(dead_code)] // likewise
#[path = "../../crates/dmabuf-client/src/bin/dmabufctl/args.rs"]
mod dmabufctl_args;

/// Packaging tasks of the workspace.
#[derive(Parser, Debug)]
#[command(name = "xtask", version)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand, Debug)]
enum Task {
    /// Write the man pages and the bash, zsh and fish completions of vhost-device-dmabuf and
    /// dmabufctl into DIR/man and DIR/completions (emptied first).
    Assets {
        /// Output directory.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Debug, Error)]
enum TaskError {
    #[error("cannot write {}", .0.display())]
    Write(PathBuf, #[source] io::Error),
}

fn write_file(
    path: &Path,
    render: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<(), TaskError> {
    let err = |e| TaskError::Write(path.to_owned(), e);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(err)?;
    }
    let mut w = BufWriter::new(File::create(path).map_err(err)?);
    render(&mut w).and_then(|()| w.flush()).map_err(err)
}

/// Man pages of `cmd` and of each of its subcommands (`NAME-SUB.1`, titled `NAME-SUB`).
fn man_pages(cmd: &clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> Result<(), TaskError> {
    let name = cmd.get_name().to_owned();
    let path = dir.join(format!("{name}.1"));
    write_file(&path, |w| clap_mangen::Man::new(cmd.clone()).render(w))?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let full = format!("{name}-{}", sub.get_name());
        let sub = sub
            .clone()
            .name(full.clone())
            .bin_name(format!("{name} {}", sub.get_name()));
        let path = dir.join(format!("{full}.1"));
        write_file(&path, |w| clap_mangen::Man::new(sub).render(w))?;
        written.push(path);
    }
    Ok(())
}

/// The completion file of `cmd` for `shell`, at the name the shell's Debian package looks for.
fn completion(
    cmd: &mut clap::Command,
    shell: Shell,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<(), TaskError> {
    let name = cmd.get_name().to_owned();
    let file = match shell {
        Shell::Bash => name.clone(),
        Shell::Zsh => format!("_{name}"),
        _ => format!("{name}.{shell}"),
    };
    let path = dir.join(shell.to_string()).join(file);
    write_file(&path, |w| {
        clap_complete::generate(shell, cmd, name.clone(), w);
        Ok(())
    })?;
    written.push(path);
    Ok(())
}

fn assets(out: &Path) -> Result<Vec<PathBuf>, TaskError> {
    let mut written = Vec::new();
    for sub in ["man", "completions"] {
        let d = out.join(sub);
        match fs::remove_dir_all(&d) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(TaskError::Write(d, e)),
            _ => {}
        }
    }
    let commands = [daemon_cli::Args::command(), dmabufctl_args::Cli::command()];
    for mut cmd in commands {
        cmd.build();
        man_pages(&cmd, &out.join("man"), &mut written)?;
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            completion(&mut cmd, shell, &out.join("completions"), &mut written)?;
        }
    }
    Ok(written)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.task {
        Task::Assets { out } => match assets(&out) {
            Ok(files) => {
                println!("xtask: wrote {} files under {}", files.len(), out.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                let mut text = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    text += &format!(": {s}");
                    src = s.source();
                }
                eprintln!("xtask: {text}");
                ExitCode::FAILURE
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_option_of_both_commands_is_in_their_man_pages_and_completions() {
        let out = std::env::temp_dir().join(format!("xtask-assets-{}", std::process::id()));
        let files = assets(&out).unwrap();
        let read = |p: &str| fs::read_to_string(out.join(p)).unwrap();
        for (cmd, man, bash) in [
            (
                daemon_cli::Args::command(),
                "man/vhost-device-dmabuf.1",
                "completions/bash/vhost-device-dmabuf",
            ),
            (
                dmabufctl_args::Cli::command(),
                "man/dmabufctl.1",
                "completions/bash/dmabufctl",
            ),
        ] {
            let (man, bash) = (read(man), read(bash));
            for arg in cmd.get_arguments().filter_map(|a| a.get_long()) {
                // groff escapes '-' as '\-'.
                assert!(
                    man.contains(&format!("\\-\\-{}", arg.replace('-', "\\-"))),
                    "{arg}"
                );
                assert!(bash.contains(&format!("--{arg}")), "{arg}");
            }
        }
        assert!(read("man/dmabufctl-share.1").contains("memfd"));
        assert!(read("completions/zsh/_dmabufctl").starts_with("#compdef dmabufctl"));
        assert!(read("completions/fish/vhost-device-dmabuf.fish").contains("control-group"));
        // 2 + 8 subcommands' man pages, 3 shells x 2 commands.
        assert_eq!(files.len(), 2 + 8 + 6, "{files:?}");
        fs::remove_dir_all(&out).unwrap();
    }
}
