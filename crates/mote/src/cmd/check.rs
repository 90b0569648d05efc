//! `mote check MANIFEST`

use std::path::PathBuf;

use serde::Serialize;

use crate::output;

/// Validate a manifest: syntax, schema and every semantic rule, without
/// fetching or building anything. Errors name file:line:column, the key, what
/// was found and what is allowed.
#[derive(clap::Args)]
pub struct Args {
    /// The manifest (TOML).
    manifest: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Checked<'a> {
    manifest: &'a PathBuf,
    valid: bool,
    image: &'a str,
    services: Vec<&'a str>,
    open_ports: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let manifest = mote_config::load(&args.manifest)?;
    let settings = manifest.settings();
    let checked = Checked {
        manifest: &args.manifest,
        valid: true,
        image: &manifest.image.name,
        services: manifest.services.keys().map(String::as_str).collect(),
        open_ports: settings
            .open_ports()
            .iter()
            .map(ToString::to_string)
            .collect(),
    };
    if args.json {
        return output::json(&checked);
    }
    println!(
        "{}: valid — image {}, {} service(s), ports open: {}",
        args.manifest.display(),
        checked.image,
        checked.services.len(),
        if checked.open_ports.is_empty() {
            "none".into()
        } else {
            checked.open_ports.join(" ")
        }
    );
    Ok(())
}
