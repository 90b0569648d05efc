//! `mote check MANIFEST`

use std::path::PathBuf;

use serde::Serialize;

use crate::output;

/// Validate a manifest: syntax, schema and every semantic rule, each
/// `[roles.NAME]` section against its role, and the packages it installs
/// (signatures against `[packages] trusted_keys`, dependencies), without
/// building anything. Errors name file:line:column, the key, what was found
/// and what is allowed.
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
    packages: Vec<String>,
    open_ports: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let manifest = mote_config::load_with(&args.manifest, mote_roles::ALL)?;
    let dir = args
        .manifest
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let (installed, settings) = mote_image::installed(&manifest, dir, mote_roles::ALL)?;
    let checked = Checked {
        manifest: &args.manifest,
        valid: true,
        image: &manifest.image.name,
        services: manifest.services.keys().map(String::as_str).collect(),
        packages: settings.packages.clone(),
        open_ports: installed
            .open_ports(&settings, mote_roles::ALL)
            .iter()
            .map(ToString::to_string)
            .collect(),
    };
    if args.json {
        return output::json(&checked);
    }
    println!(
        "{}: valid — image {}, {} service(s), packages: {}, ports open: {}",
        args.manifest.display(),
        checked.image,
        checked.services.len(),
        if checked.packages.is_empty() {
            "none".into()
        } else {
            checked.packages.join(" ")
        },
        if checked.open_ports.is_empty() {
            "none".into()
        } else {
            checked.open_ports.join(" ")
        }
    );
    Ok(())
}
