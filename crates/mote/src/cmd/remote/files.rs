//! `mote -n NAME files ls|get|put`

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context};
use mote_api::client::FileGet;

use crate::output;
use crate::remote::{Explain, Session};

/// Files on the node.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    verb: Verb,
    /// Print the API's JSON.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(clap::Subcommand)]
enum Verb {
    /// List a directory.
    Ls {
        /// Absolute path on the node.
        path: String,
    },
    /// Download a file (to stdout unless -o).
    Get {
        /// Absolute path on the node.
        path: String,
        /// Write it here.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Upload a file.
    Put {
        /// The local file.
        local: PathBuf,
        /// Absolute path on the node.
        remote: String,
    },
}

pub async fn run(s: &Session, a: &Args) -> anyhow::Result<()> {
    match &a.verb {
        Verb::Ls { path } => match s.client.files_get(path).await.explain(&s.name)? {
            FileGet::Dir(d) => {
                if a.json {
                    return output::json(&d);
                }
                let rows: Vec<Vec<String>> = d
                    .entries
                    .iter()
                    .map(|e| {
                        vec![
                            format!("{:o}", e.mode & 0o7777),
                            e.kind.clone(),
                            output::size(e.size),
                            output::time_ms(e.modified_ms),
                            e.name.clone(),
                        ]
                    })
                    .collect();
                output::table(&["mode", "kind", "size", "modified", "name"], &rows);
                Ok(())
            }
            FileGet::File(_) => bail!("{path} is a file; fetch it with `files get {path}`"),
        },
        Verb::Get { path, output: out } => {
            let bytes = match s.client.files_get(path).await.explain(&s.name)? {
                FileGet::File(b) => b,
                FileGet::Dir(_) => bail!("{path} is a directory; list it with `files ls {path}`"),
            };
            match out {
                Some(f) => {
                    std::fs::write(f, &bytes)
                        .with_context(|| format!("cannot write {}", f.display()))?;
                    if a.json {
                        return output::json(&serde_json::json!({
                            "path": path, "output": f, "bytes": bytes.len()
                        }));
                    }
                    eprintln!(
                        "{path} → {} ({})",
                        f.display(),
                        output::size(bytes.len() as u64)
                    );
                }
                None => {
                    std::io::stdout().write_all(&bytes)?;
                }
            }
            Ok(())
        }
        Verb::Put { local, remote } => {
            let bytes =
                std::fs::read(local).with_context(|| format!("cannot read {}", local.display()))?;
            let d = s.client.files_put(remote, bytes).await.explain(&s.name)?;
            if a.json {
                return output::json(&d);
            }
            println!("{}: {}", s.name, d.message);
            Ok(())
        }
    }
}
