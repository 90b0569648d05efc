//! `mote session NAME`: the remote verbs at a prompt, each line parsed by
//! the same clap tree as the command line (`-n NAME` implied), with history
//! (`CONFIG/history`) and completion of verbs.

use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

use crate::remote;

/// Manage one node interactively: type `system`, `service list`,
/// `events --since 5m`…; `help` lists the verbs; `exit` or Ctrl-D leaves.
#[derive(clap::Args)]
pub struct Args {
    /// The node (see `mote node list`).
    name: String,
}

/// Verbs that make no sense inside a session.
const LOCAL_ONLY: [&str; 10] = [
    "check", "build", "run", "list", "stop", "doctor", "passwd", "node", "session", "help",
];

pub fn run(args: Args) -> anyhow::Result<()> {
    let nodes = remote::Nodes::load()?;
    let node = nodes.get(&args.name)?;
    // Log in (or reuse the cached token) once, up front.
    let session = remote::block_on(remote::connect(&args.name, false))??;
    eprintln!(
        "{} at {} ({}); `help` for the verbs, `exit` or Ctrl-D to leave",
        args.name,
        node.address,
        if session.cached {
            "cached login"
        } else {
            "logged in"
        }
    );
    let mut editor: Editor<VerbCompleter, rustyline::history::FileHistory> = Editor::new()?;
    editor.set_helper(Some(VerbCompleter::new()));
    let history = remote::config_dir()?.join("history");
    let _ = editor.load_history(&history);
    let prompt = format!("{}> ", args.name);
    loop {
        let line = match editor.readline(&prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let _ = editor.add_history_entry(line);
        if matches!(line, "exit" | "quit") {
            break;
        }
        let Some(words) = shlex::split(line) else {
            eprintln!("error: unbalanced quotes");
            continue;
        };
        if words[0] == "help" || words[0] == "?" {
            print_help();
            continue;
        }
        if LOCAL_ONLY.contains(&words[0].as_str()) {
            eprintln!(
                "error: `{}` is not a remote verb; run it outside the session",
                words[0]
            );
            continue;
        }
        let argv = ["mote", "-n", &args.name]
            .into_iter()
            .map(String::from)
            .chain(words);
        match crate::Cli::try_parse_from(argv) {
            Ok(cli) => match crate::dispatch(cli) {
                Ok(0) => {}
                Ok(code) => eprintln!("(exit {code})"),
                Err(e) => eprintln!("error: {}", crate::exit::message(&e)),
            },
            Err(e) => {
                let _ = e.print();
            }
        }
    }
    if let Some(dir) = history.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = editor.save_history(&history);
    Ok(())
}

fn print_help() {
    let cmd = crate::Cli::full_command();
    for sub in cmd.get_subcommands() {
        let name = sub.get_name();
        if LOCAL_ONLY.contains(&name) {
            continue;
        }
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        println!("  {name:<10} {about}");
    }
    println!("  {:<10} leave the session", "exit");
    println!("`VERB --help` tells more.");
}

/// Completes verbs and subverbs from the clap tree.
struct VerbCompleter {
    cmd: clap::Command,
}

impl VerbCompleter {
    fn new() -> Self {
        Self {
            cmd: crate::Cli::full_command(),
        }
    }

    fn candidates(&self, done: &[&str], partial: &str) -> Vec<String> {
        let mut cmd = &self.cmd;
        for w in done {
            match cmd.find_subcommand(w) {
                Some(sub) => cmd = sub,
                None => break,
            }
        }
        let top = std::ptr::eq(cmd, &self.cmd);
        let mut out: Vec<String> = cmd
            .get_subcommands()
            .map(|s| s.get_name().to_string())
            .filter(|n| !(top && LOCAL_ONLY.contains(&n.as_str())))
            .chain(
                cmd.get_arguments()
                    .filter_map(|a| a.get_long().map(|l| format!("--{l}"))),
            )
            .filter(|n| n.starts_with(partial))
            .collect();
        if top && "exit".starts_with(partial) {
            out.push("exit".into());
        }
        out.sort();
        out.dedup();
        out
    }
}

impl Completer for VerbCompleter {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let done: Vec<&str> = before[..start].split_whitespace().collect();
        let pairs = self
            .candidates(&done, &before[start..])
            .into_iter()
            .map(|c| Pair {
                display: c.clone(),
                replacement: format!("{c} "),
            })
            .collect();
        Ok((start, pairs))
    }
}

impl Hinter for VerbCompleter {
    type Hint = String;
}
impl Highlighter for VerbCompleter {}
impl Validator for VerbCompleter {}
impl Helper for VerbCompleter {}

#[cfg(test)]
mod tests {
    #[test]
    fn verbs_and_subverbs_complete() {
        let c = super::VerbCompleter::new();
        assert_eq!(c.candidates(&[], "serv"), vec!["service"]);
        assert!(c
            .candidates(&["service"], "re")
            .contains(&"restart".to_string()));
        assert!(c.candidates(&[], "bui").is_empty());
    }
}
