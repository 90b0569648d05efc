//! `mote -n NAME exec -- PROGRAM ARGS…`

use std::io::Write;

use anyhow::bail;
use mote_api::api::{ExecLine, ExecRequest};

use crate::remote::{Explain, Session};

/// Run a program on the node (absolute path; nothing of the environment is
/// inherited), streaming its output; `mote` exits with its exit code.
#[derive(clap::Args)]
pub struct Args {
    /// Kill it after this many seconds.
    #[arg(long, value_name = "S")]
    timeout: Option<u64>,
    /// Print the stream as JSON lines.
    #[arg(long)]
    json: bool,
    /// The program and its arguments.
    #[arg(required = true, last = true)]
    argv: Vec<String>,
}

pub async fn run(s: &Session, a: &Args) -> anyhow::Result<i32> {
    let req = ExecRequest {
        argv: a.argv.clone(),
        timeout_secs: a.timeout,
        env: Default::default(),
    };
    let mut lines = s.client.exec(&req).await.explain(&s.name)?;
    while let Some(l) = lines.next().await {
        let l = l.explain(&s.name)?;
        if a.json {
            println!("{}", serde_json::to_string(&l)?);
        }
        match l {
            ExecLine::Output { stream, data } => {
                if a.json {
                    continue;
                }
                if stream == "stderr" {
                    eprint!("{data}");
                } else {
                    print!("{data}");
                    std::io::stdout().flush()?;
                }
            }
            ExecLine::Exit {
                exit_code,
                signal,
                timed_out,
            } => {
                if timed_out && !a.json {
                    eprintln!("mote: {} timed out on {}", a.argv[0], s.name);
                }
                return Ok(match (exit_code, signal) {
                    (Some(c), _) => c,
                    (None, Some(sig)) => 128 + sig,
                    _ => 1,
                });
            }
        }
    }
    bail!(
        "node {} ended the exec stream without an exit status",
        s.name
    )
}
