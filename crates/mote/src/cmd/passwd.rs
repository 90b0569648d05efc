//! `mote passwd`

use std::io::{IsTerminal, Read};

use anyhow::{bail, Context};
use serde::Serialize;

use crate::output;

/// Make the administrator credential for a manifest: an argon2id hash of a
/// password you type (twice), or of `MOTE_PASSWORD`, or of standard input
/// when it is not a terminal. Put the printed line under `[system]`.
#[derive(clap::Args)]
pub struct Args {
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Credential {
    admin_password_hash: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let password = read_password()?;
    let hash = mote_config::password::hash(&password).context("hashing the password")?;
    if args.json {
        return output::json(&Credential {
            admin_password_hash: hash,
        });
    }
    println!("admin_password_hash = \"{hash}\"");
    if std::io::stdout().is_terminal() {
        eprintln!("put that line under [system] in your manifest");
    }
    Ok(())
}

fn read_password() -> anyhow::Result<String> {
    if let Ok(password) = std::env::var("MOTE_PASSWORD") {
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the password from standard input")?;
        return Ok(text.trim_end_matches(['\r', '\n']).to_owned());
    }
    let first = rpassword::prompt_password("new administrator password: ")
        .context("reading the password")?;
    let again = rpassword::prompt_password("again: ").context("reading the password")?;
    if first != again {
        bail!("the two passwords differ; nothing was made, run 'mote passwd' again");
    }
    Ok(first)
}
