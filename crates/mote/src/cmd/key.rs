//! `mote key generate`: signing keys for packages.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Serialize;

use crate::output;

/// Make and manage the keys that sign packages.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(clap::Subcommand)]
enum Verb {
    /// Make an Ed25519 signing key in minisign's format: the secret key at
    /// PATH (mode 0600, not password-protected: keep it on the build
    /// machine) and the public key at PATH.pub, which you hand to whoever
    /// installs your packages (`mote package verify --key PATH.pub`).
    Generate {
        /// Where to write the secret key; the public key goes to PATH.pub.
        #[arg(short, long, value_name = "PATH")]
        out: PathBuf,
        /// Replace existing key files.
        #[arg(long)]
        force: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct Generated {
    key_id: String,
    secret_key: PathBuf,
    public_key: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.verb {
        Verb::Generate { out, force, json } => generate(&out, force, json),
    }
}

fn generate(secret_path: &Path, force: bool, json: bool) -> anyhow::Result<()> {
    let mut public_path = secret_path.as_os_str().to_owned();
    public_path.push(".pub");
    let public_path = PathBuf::from(public_path);
    if !force {
        for path in [secret_path, &public_path] {
            if path.exists() {
                bail!(
                    "{} exists; a new key would orphan the packages signed with it: choose \
                     another PATH, or pass --force to replace it",
                    path.display()
                );
            }
        }
    }
    let keys = mote_package::generate_key()?;
    if let Some(dir) = secret_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    write_mode(secret_path, keys.secret.as_bytes(), 0o600)?;
    write_mode(&public_path, keys.public.as_bytes(), 0o644)?;
    let generated = Generated {
        key_id: keys.key_id,
        secret_key: secret_path.to_path_buf(),
        public_key: public_path,
    };
    if json {
        return output::json(&generated);
    }
    println!(
        "made key {}: secret {} (0600, keep it private), public {}",
        generated.key_id,
        generated.secret_key.display(),
        generated.public_key.display()
    );
    println!(
        "sign with: mote package sign FILE --key {}",
        generated.secret_key.display()
    );
    Ok(())
}

/// Writes a new file with `mode` from the start (never world-readable for
/// a moment), replacing any file there.
fn write_mode(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let context = || format!("writing {}", path.display());
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(context),
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(context)?;
    file.write_all(bytes).with_context(context)?;
    // The umask may have taken bits away from the public key; set them.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))
        .with_context(context)?;
    file.sync_all().with_context(context)
}
