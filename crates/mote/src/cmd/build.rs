//! `mote build MANIFEST [-o DIR]`

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;

use crate::exit::{Code, WithCode};
use crate::output;
use crate::progress::Progress;

/// Build a bootable image from a manifest: fetches the kernel once into the
/// cache, resolves drivers to modules, packs the static userland and writes
/// DIR/vmlinuz, DIR/initrd.img, DIR/cmdline and DIR/build.json. The same
/// manifest always gives byte-identical vmlinuz and initrd.img.
#[derive(clap::Args)]
pub struct Args {
    /// The manifest (TOML).
    manifest: PathBuf,
    /// Output directory [default: out/IMAGE_NAME]
    #[arg(short, long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Outputs to write instead of the manifest's `[image] outputs`
    /// (repeat or separate with commas): initrd, uki, raw, qcow2, vhdx, vhd.
    /// Disks are written as DIR/NAME.raw, DIR/NAME.qcow2, …
    #[arg(long, value_name = "FORMAT", value_delimiter = ',', value_parser = parse_output)]
    format: Vec<mote_config::Output>,
    #[command(flatten)]
    pub bins: BinDir,
    /// Print the build report as JSON.
    #[arg(long)]
    json: bool,
}

/// Where the node binaries (mote-init and friends) come from.
#[derive(clap::Args, Clone)]
pub struct BinDir {
    /// Directory holding the static node binaries (mote-init, …) and the
    /// `bin:NAME` files of manifests [default: beside this mote executable,
    /// else the workspace's target/x86_64-unknown-linux-gnu/release that
    /// built it]
    #[arg(long, env = "MOTE_BIN_DIR", value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
}

impl BinDir {
    pub fn resolve(&self) -> anyhow::Result<PathBuf> {
        if let Some(dir) = &self.bin_dir {
            return Ok(dir.clone());
        }
        let exe = std::env::current_exe().context("finding the mote executable")?;
        let beside = exe.parent().map(Path::to_path_buf).unwrap_or_default();
        // `cargo xtask demo` installs a copy of mote in ~/.cargo/bin; the
        // node binaries it was built with stay in the workspace's target.
        let built = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/x86_64-unknown-linux-gnu/release");
        if !beside.join("mote-init").is_file() && built.join("mote-init").is_file() {
            return Ok(built);
        }
        Ok(beside)
    }
}

/// Build `manifest_path` into `out` (or `out/NAME`); returns the image dir
/// and the report.
pub fn build(
    manifest_path: &Path,
    out: Option<&Path>,
    formats: &[mote_config::Output],
    bins: &BinDir,
    quiet: bool,
) -> anyhow::Result<(PathBuf, mote_image::BuildReport)> {
    let started = Instant::now();
    let text = std::fs::read_to_string(manifest_path)
        .with_context(|| format!("reading the manifest {}", manifest_path.display()))
        .code(Code::InvalidInput)?;
    let mut manifest = mote_config::parse_with(&text, manifest_path, mote_roles::ALL)?;
    if !formats.is_empty() {
        manifest.image.outputs = formats.to_vec();
    }
    let out_dir = out.map_or_else(
        || PathBuf::from("out").join(&manifest.image.name),
        Path::to_path_buf,
    );
    let bin_dir = bins.resolve()?;
    let mut progress = Progress::start(quiet);
    let mut step = |message: &str| progress.step(message);
    let cache = mote_kernel::KernelCache::default_location().code(Code::Environment)?;
    let manifest_dir = manifest_path.parent().unwrap_or(Path::new("."));
    let kernel = mote_kernel::obtain(&manifest.kernel, manifest_dir, &cache, &mut step)
        .code(Code::Environment)?;
    let inputs = mote_image::BuildInputs {
        manifest: &manifest,
        manifest_path,
        manifest_text: &text,
        bin_dir: &bin_dir,
        kernel: &kernel,
    };
    let report = mote_image::build(&inputs, &out_dir, &mut step)
        .with_context(|| format!("building {}", manifest_path.display()))?;
    progress.finish();
    if !quiet {
        eprintln!(
            "built {} in {:.2} s → {} (kernel {})",
            manifest.image.name,
            started.elapsed().as_secs_f64(),
            out_dir.display(),
            kernel.version
        );
    }
    Ok((out_dir, report))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (out_dir, report) = build(
        &args.manifest,
        args.out.as_deref(),
        &args.format,
        &args.bins,
        args.json,
    )?;
    if args.json {
        return output::json(&report);
    }
    let sizes = &report.sizes;
    output::table(
        &["part", "size"],
        &[
            vec!["kernel".into(), output::size(sizes.kernel)],
            vec!["initramfs (zstd)".into(), output::size(sizes.initramfs)],
            vec!["  userland".into(), output::size(sizes.userland_compressed)],
            vec!["  modules".into(), output::size(sizes.modules_compressed)],
        ],
    );
    if !report.outputs.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = report
            .outputs
            .iter()
            .map(|o| {
                vec![
                    out_dir.join(&o.file).display().to_string(),
                    output::size(o.bytes),
                    o.virtual_size.map(output::size).unwrap_or_default(),
                    o.sha256[..16].to_string(),
                ]
            })
            .collect();
        output::table(&["output", "file size", "disk size", "sha256"], &rows);
    }
    println!("boot it with: mote run {}", out_dir.display());
    if let Some(disk) = report.outputs.iter().find(|o| o.virtual_size.is_some()) {
        println!(
            "or boot the disk under UEFI: mote run {}",
            out_dir.join(&disk.file).display()
        );
    }
    Ok(())
}

fn parse_output(word: &str) -> Result<mote_config::Output, String> {
    serde_json::from_value(serde_json::Value::String(word.to_string())).map_err(|_| {
        format!(
            "unknown format {word:?}; allowed: {}",
            mote_config::Output::WORDS.join(", ")
        )
    })
}
