//! `mote`: build, run and manage minimal, headless server nodes.
//!
//! Thin by design: parse the arguments, call the crates, print, and turn an
//! error into a documented exit code (see [`exit::Code`]).

mod cmd;
mod exit;
mod output;
mod progress;
mod remote;

use clap::{CommandFactory, FromArgMatches, Subcommand};

/// Build, run and manage minimal, headless, remotely managed server nodes.
///
/// A node is a Linux kernel plus a userland written in Rust, described by one
/// TOML manifest. Start with `mote passwd` for the administrator credential,
/// then `mote build examples/hello.toml` and `mote run out/hello`.
///
/// Manage a node over its HTTPS API: `mote node add NAME ADDRESS` (or `mote
/// run`, which registers the node it boots), then `mote -n NAME system`,
/// `service`, `events`, `settings`… or `mote session NAME`.
#[derive(clap::Parser)]
#[command(name = "mote", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// The managed node the remote verbs talk to (see `mote node list`).
    #[arg(short = 'n', long = "node", global = true, value_name = "NAME")]
    node: Option<String>,
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
    /// Add, list or remove the nodes you manage (pinned certificates).
    Node(cmd::node::Args),
    /// An interactive session with one node: the remote verbs, with history.
    Session(cmd::session::Args),
    /// Build, sign and verify packages (.mpkg) of roles and apps; with -n
    /// NODE, list, install, upgrade and remove them on a node.
    Package(cmd::package::Args),
    /// Make the keys that sign packages.
    Key(cmd::key::Args),
    /// Look into a disk or UKI without booting it.
    Image(cmd::image::Args),
    #[command(flatten)]
    Remote(cmd::remote::Verb),
}

fn main() {
    quiet_on_closed_stdout();
    let cli = Cli::try_parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit());
    let code = match dispatch(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", exit::message(&error));
            exit::Code::of(&error) as i32
        }
    };
    std::process::exit(code);
}

/// `mote … | head -1`: once the reader has gone, `println!` panics with
/// "failed printing to stdout: Broken pipe". That is the end of the output,
/// not a fault: leave quietly, as `head`'s writer should. (Restoring
/// SIGPIPE's default instead would also kill mote on a write to a closed
/// QMP or node socket, where an error is wanted.)
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

impl Cli {
    /// The whole command tree: mote's own verbs and each role's
    /// (`mote -n NAME web …`, from the role registry).
    pub fn full_command() -> clap::Command {
        cmd::remote::role::augment(Self::command())
    }

    /// Parses a command line (or a session line with `mote -n NAME` in
    /// front): a role's verb is kept as the role's matches, the rest is
    /// read into the typed commands.
    pub fn try_parse_from<I, T>(argv: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Self::full_command().try_get_matches_from(argv)?;
        if let Some(call) = cmd::remote::role::call(&matches) {
            return Ok(Cli {
                node: matches.get_one::<String>("node").cloned(),
                command: Command::Remote(cmd::remote::Verb::Role(call)),
            });
        }
        Self::from_arg_matches(&matches)
    }
}

/// Runs one parsed command line; the exit code to end with.
pub fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    let result = match cli.command {
        Command::Check(args) => cmd::check::run(args),
        Command::Build(args) => cmd::build::run(args),
        Command::Run(args) => cmd::run::run(args),
        Command::List(args) => cmd::nodes::list(args),
        Command::Stop(args) => cmd::nodes::stop(args),
        Command::Doctor(args) => cmd::doctor::run(args),
        Command::Passwd(args) => cmd::passwd::run(args),
        Command::Node(args) => cmd::node::run(args),
        Command::Session(args) => cmd::session::run(args),
        Command::Package(args) => return cmd::package::run(args, cli.node.as_deref()),
        Command::Key(args) => cmd::key::run(args),
        Command::Image(args) => cmd::image::run(args),
        Command::Remote(verb) => return cmd::remote::run(cli.node.as_deref(), verb),
    };
    result.map(|()| 0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_tree_is_valid() {
        super::Cli::full_command().debug_assert();
    }
}
