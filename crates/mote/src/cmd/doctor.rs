//! `mote doctor`

use crate::output;

/// Check this host: QEMU, a KVM that really runs guests, apt for fetching
/// kernels, mkfs.ext4 for state disks, and the kernel cache. Each problem
/// comes with the command that fixes it.
#[derive(clap::Args)]
pub struct Args {
    /// Print the checks as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let checks = mote_vm::doctor();
    if args.json {
        return output::json(&checks);
    }
    let rows: Vec<Vec<String>> = checks
        .iter()
        .map(|c| {
            vec![
                if c.ok { "ok".into() } else { "FIX".into() },
                c.name.clone(),
                c.detail.clone(),
                c.fix.clone().unwrap_or_default(),
            ]
        })
        .collect();
    output::table(&["", "check", "found", "fix"], &rows);
    Ok(())
}
