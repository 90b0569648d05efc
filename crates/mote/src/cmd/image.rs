//! `mote image inspect DISK`: a disk's contents without booting it.

use std::path::PathBuf;

use crate::exit::{Code, WithCode};
use crate::output;

/// Look into disks and UKIs that `mote build` wrote, without booting them.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(clap::Subcommand)]
enum Verb {
    /// Change the settings a disk boots with and add files to it, without
    /// booting it: each --set is checked as a settings change on the node
    /// is, each --add-file as a manifest's [[files]] entry, then the disk's
    /// UKI is written again. A node that already stored settings on its
    /// state partition keeps those (change them over the API).
    Edit {
        /// The disk (.raw, .qcow2, .vhdx, .vhd); changed in place.
        disk: PathBuf,
        /// KEY=VALUE, a dotted settings key (system.hostname=web02); the
        /// value is JSON, a TOML value or plain text. Repeatable.
        #[arg(
            long = "set",
            value_name = "KEY=VALUE",
            required_unless_present = "files",
            value_parser = parse_set
        )]
        sets: Vec<(String, serde_json::Value)>,
        /// SRC:DEST, the host file SRC at the absolute path DEST on the
        /// node, with SRC's mode, owned by root (an executable must be
        /// static). Repeatable.
        #[arg(long = "add-file", value_name = "SRC:DEST", value_parser = parse_add_file)]
        files: Vec<mote_image::edit::AddFile>,
        /// For a signed disk: the Secure Boot key to sign the new UKI with.
        #[arg(long, value_name = "KEY", requires = "secure_boot_cert")]
        secure_boot_key: Option<PathBuf>,
        /// For a signed disk: the key's certificate.
        #[arg(long, value_name = "CERT", requires = "secure_boot_key")]
        secure_boot_cert: Option<PathBuf>,
        /// Print the changes as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a disk's partitions, its UKI (signed or not, kernel, command
    /// line), the settings it boots with, its packages and files, read from
    /// the disk itself (a .raw, .qcow2, .vhdx or .vhd; or a .efi UKI).
    Inspect {
        /// The disk or UKI.
        disk: PathBuf,
        /// Print everything, the settings whole, as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (disk, json) = match args.verb {
        Verb::Inspect { disk, json } => (disk, json),
        Verb::Edit {
            disk,
            sets,
            files,
            secure_boot_key,
            secure_boot_cert,
            json,
        } => {
            return edit(
                &disk,
                &sets,
                &files,
                secure_boot_key.zip(secure_boot_cert),
                json,
            )
        }
    };
    let seen = mote_image::inspect::inspect(&disk)
        .map_err(anyhow::Error::msg)
        .code(Code::InvalidInput)?;
    if json {
        return output::json(&seen);
    }
    if !seen.partitions.is_empty() {
        let rows: Vec<Vec<String>> = seen
            .partitions
            .iter()
            .map(|p| {
                vec![
                    p.number.to_string(),
                    p.name.clone(),
                    output::size(p.start),
                    output::size(p.size),
                ]
            })
            .collect();
        output::table(&["partition", "name", "start", "size"], &rows);
        println!();
    }
    let hostname = seen.settings["system"]["hostname"]
        .as_str()
        .unwrap_or("?")
        .to_string();
    let packages = seen
        .packages
        .iter()
        .map(|(n, v)| format!("{n} {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    let image = seen
        .uki
        .os_release
        .lines()
        .find_map(|l| l.strip_prefix("IMAGE_ID="))
        .unwrap_or("?")
        .to_string();
    let signed = if seen.uki.signed {
        "yes (Authenticode)"
    } else {
        "no"
    };
    let rows = vec![
        vec!["image".into(), image],
        vec!["host name".into(), hostname],
        vec!["kernel".into(), seen.uki.kernel.clone()],
        vec!["command line".into(), seen.uki.cmdline.clone()],
        vec![
            "UKI".into(),
            format!("{}, signed: {signed}", output::size(seen.uki.bytes)),
        ],
        vec![
            "packages".into(),
            if packages.is_empty() {
                "none".into()
            } else {
                packages
            },
        ],
        vec![
            "files".into(),
            format!("{} ({})", seen.files, output::size(seen.file_bytes)),
        ],
    ];
    output::table(&["", ""], &rows);
    println!(
        "the settings whole: mote image inspect {} --json",
        disk.display()
    );
    Ok(())
}

/// `--set KEY=VALUE`: a dotted key and its value (JSON, TOML or text).
fn parse_set(set: &str) -> Result<(String, serde_json::Value), String> {
    let (key, value) = set
        .split_once('=')
        .ok_or("write KEY=VALUE, such as system.hostname=web02")?;
    crate::cmd::remote::settings::merge_patch(key, serde_json::Value::Null)
        .map_err(|e| e.to_string())?;
    Ok((
        key.to_string(),
        crate::cmd::remote::settings::parse_value(value),
    ))
}

/// `--add-file SRC:DEST`.
fn parse_add_file(file: &str) -> Result<mote_image::edit::AddFile, String> {
    let (source, destination) = file
        .rsplit_once(':')
        .ok_or("write SRC:DEST, such as ./motd:/etc/motd")?;
    Ok(mote_image::edit::AddFile {
        source: PathBuf::from(source),
        destination: destination.to_string(),
    })
}

fn edit(
    disk: &std::path::Path,
    sets: &[(String, serde_json::Value)],
    files: &[mote_image::edit::AddFile],
    sign: Option<(PathBuf, PathBuf)>,
    json: bool,
) -> anyhow::Result<()> {
    let sign = sign.as_ref().map(|(k, c)| (k.as_path(), c.as_path()));
    let changes = mote_image::edit::edit(disk, sets, files, sign)
        .map_err(|e| anyhow::anyhow!("{}: {e}", disk.display()))
        .code(Code::InvalidInput)?;
    if json {
        return output::json(&changes);
    }
    if changes.is_empty() {
        println!("{}: nothing to change", disk.display());
        return Ok(());
    }
    let rows: Vec<Vec<String>> = changes
        .iter()
        .map(|c| vec![c.key.clone(), c.old.to_string(), c.new.to_string()])
        .collect();
    output::table(&["setting or file", "was", "now"], &rows);
    println!("{} boots with these changes", disk.display());
    Ok(())
}
