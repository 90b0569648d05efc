//! `mote`: build, run and manage minimal, headless server nodes.
//!
//! Thin by design: parse the arguments, call the crates, print, and turn an
//! error into a documented exit code (see [`exit::Code`]).

mod cmd;
mod exit;
mod output;
mod progress;

use clap::{Parser, Subcommand};

/// Build, run and manage minimal, headless, remotely managed server nodes.
///
/// A node is a Linux kernel plus a userland written in Rust, described by one
/// TOML manifest. Start with `mote passwd` for the administrator credential,
/// then `mote build examples/hello.toml` and `mote run out/hello`.
#[derive(Parser)]
#[command(name = "mote", version, propagate_version = true, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a manifest without building anything.
    Check(cmd::check::Args),
    /// Build a bootable image (kernel, initramfs, build.json) from a manifest.
    Build(cmd::build::Args),
    /// Boot an image (or build and boot a manifest) under QEMU.
    Run(cmd::run::Args),
    /// List the nodes started by `mote run` on this host.
    List(cmd::nodes::ListArgs),
    /// Power a node off in order (ACPI power button), killing it after a timeout.
    Stop(cmd::nodes::StopArgs),
    /// Check this host's prerequisites and say how to fix what is missing.
    Doctor(cmd::doctor::Args),
    /// Make an administrator credential (argon2id) for a manifest's [system].
    Passwd(cmd::passwd::Args),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(args) => cmd::check::run(args),
        Command::Build(args) => cmd::build::run(args),
        Command::Run(args) => cmd::run::run(args),
        Command::List(args) => cmd::nodes::list(args),
        Command::Stop(args) => cmd::nodes::stop(args),
        Command::Doctor(args) => cmd::doctor::run(args),
        Command::Passwd(args) => cmd::passwd::run(args),
    };
    if let Err(error) = result {
        eprintln!("error: {error:#}");
        std::process::exit(exit::Code::of(&error) as i32);
    }
}
