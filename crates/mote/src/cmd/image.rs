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
    let Verb::Inspect { disk, json } = args.verb;
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
