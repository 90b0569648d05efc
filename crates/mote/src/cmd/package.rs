//! `mote package build|sign|verify`: package archives on this host;
//! `mote -n NODE package list|install|upgrade|remove`: packages on a node
//! (`cmd::remote::package`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Serialize;

use crate::cmd::build::BinDir;
use crate::exit::{Code, WithCode};
use crate::output;

/// Make, sign and check packages (`.mpkg`): a role or an app with its
/// files, services and ports, described by a `package.toml`.
#[derive(clap::Args)]
#[command(after_help = STEPS)]
pub struct Args {
    #[command(subcommand)]
    verb: Verb,
}

const STEPS: &str = "\
Step by step (docs/packages.md has the format):
  mote key generate -o ~/.config/mote/keys/me.key       once: me.key (0600) and me.key.pub
  mote package build examples/hello -o hello.mpkg       package.toml and its files → archive
  mote package sign hello.mpkg --key ~/.config/mote/keys/me.key        → hello.mpkg.minisig
  mote package verify hello.mpkg --key ~/.config/mote/keys/me.key.pub  what an installer checks
On a node (its image lists me.key.pub in [packages] trusted_keys):
  mote -n NODE package install hello.mpkg               verified on the node, started, kept across reboots
  mote -n NODE package list
  mote -n NODE package upgrade hello.mpkg               a newer build of it
  mote -n NODE package remove hello";

#[derive(clap::Subcommand)]
enum Verb {
    /// Pack DIR (its package.toml and the files it names) into an archive.
    /// The same DIR always gives the same bytes (times are
    /// SOURCE_DATE_EPOCH, else 0); dynamically linked executables are refused.
    Build {
        /// The package directory, holding package.toml.
        dir: PathBuf,
        /// The archive to write [default: NAME-VERSION.mpkg]
        #[arg(short, long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        bins: BinDir,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sign a package with a secret key, writing FILE.minisig (minisign's
    /// format: `minisign -Vm FILE -p KEY.pub` checks it too). A
    /// password-protected minisign key takes its password from
    /// MOTE_KEY_PASSWORD.
    Sign {
        /// The package archive.
        file: PathBuf,
        /// The secret key file (from `mote key generate` or `minisign -G`).
        #[arg(long, value_name = "PATH")]
        key: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check a package: its signature (FILE.minisig) against trusted public
    /// keys, then its contents. Refuses unsigned, tampered and untrusted
    /// packages, saying which.
    Verify {
        /// The package archive.
        file: PathBuf,
        /// A trusted public key (repeatable) [default: every *.pub in
        /// CONFIG/mote/trusted-keys/]
        #[arg(long, value_name = "PATH.pub")]
        key: Vec<PathBuf>,
        /// The signature file [default: FILE.minisig]
        #[arg(long, value_name = "PATH")]
        signature: Option<PathBuf>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make DIR a package repository: index.json lists every *.mpkg in it
    /// (name, version, file, SHA-256), signed with KEY as
    /// index.json.minisig. `[packages] repositories` in a manifest and
    /// `package install NAME --repository DIR` read it.
    Index {
        /// The repository directory.
        dir: PathBuf,
        /// The secret key that signs the index.
        #[arg(long, value_name = "PATH")]
        key: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Pack the roles this mote was built with from the bin dir
    /// into signed packages: a repository in BIN/roles (or --out) with a
    /// signed index and KEY.pub as mote.pub. Images take their roles from
    /// there; `cargo xtask demo` and `cargo xtask test` run this with the
    /// workspace key.
    Roles {
        /// The secret key that signs them (its public key is KEY.pub).
        #[arg(long, value_name = "PATH")]
        key: PathBuf,
        /// The repository to write [default: BIN/roles]
        #[arg(short, long, value_name = "DIR")]
        out: Option<PathBuf>,
        #[command(flatten)]
        bins: BinDir,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// On a node (-n NODE): the installed packages, where each came from
    /// and who signed it.
    List {
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// On a node (-n NODE): install FILE. The node verifies it against the
    /// keys its image trusts, unpacks it to its state disk, adds its
    /// settings section, opens its ports and starts its services; any
    /// failure leaves the node as it was.
    Install(Upload),
    /// On a node (-n NODE): replace an installed package's files with
    /// FILE's and restart its services, keeping its settings.
    Upgrade(Upload),
    /// On a node (-n NODE): stop a package's services, close its ports,
    /// drop its settings section and delete its files.
    Remove {
        /// The package name.
        name: String,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
}

/// A package file (or a repository's package) to send to a node.
#[derive(clap::Args)]
struct Upload {
    /// The package archive (or, with --repository, a package name).
    file: PathBuf,
    /// The signature file [default: FILE.minisig]
    #[arg(long, value_name = "PATH")]
    signature: Option<PathBuf>,
    /// Take the highest version of the package named FILE from this
    /// repository: a directory or an http:// or https:// URL (see
    /// `package index`).
    #[arg(long, value_name = "DIR|URL")]
    repository: Option<String>,
    /// Print the API's JSON.
    #[arg(long)]
    json: bool,
}

impl Upload {
    fn remote(self, upgrade: bool) -> crate::cmd::remote::package::Remote {
        crate::cmd::remote::package::Remote::Upload {
            file: self.file,
            signature: self.signature,
            repository: self.repository,
            upgrade,
            json: self.json,
        }
    }
}

/// Runs `mote package …`; the verbs on a node need `node` (`-n NODE`).
pub fn run(args: Args, node: Option<&str>) -> anyhow::Result<i32> {
    use crate::cmd::remote::{self, package::Remote};
    let on_node = |r: Remote| remote::run(node, remote::Verb::Package(r));
    match args.verb {
        Verb::List { json } => return on_node(Remote::List { json }),
        Verb::Install(u) => return on_node(u.remote(false)),
        Verb::Upgrade(u) => return on_node(u.remote(true)),
        Verb::Remove { name, json } => return on_node(Remote::Remove { name, json }),
        _ => {}
    }
    local(args.verb).map(|()| 0)
}

fn local(verb: Verb) -> anyhow::Result<()> {
    match verb {
        Verb::Build {
            dir,
            out,
            bins,
            json,
        } => build(&dir, out, &bins, json),
        Verb::Sign { file, key, json } => sign(&file, &key, json),
        Verb::Verify {
            file,
            key,
            signature,
            json,
        } => verify(&file, &key, signature, json),
        Verb::Index { dir, key, json } => index(&dir, &key, json),
        Verb::Roles {
            key,
            out,
            bins,
            json,
        } => roles(&key, out, &bins, json),
        Verb::List { .. } | Verb::Install(_) | Verb::Upgrade(_) | Verb::Remove { .. } => {
            unreachable!("run() sends the node verbs to the node")
        }
    }
}

#[derive(Serialize)]
struct Indexed {
    index: PathBuf,
    signature: PathBuf,
    key_id: String,
    packages: Vec<String>,
}

/// A secret key file (password from MOTE_KEY_PASSWORD when it has one).
fn read_secret_key(key_path: &Path) -> anyhow::Result<mote_package::SecretKey> {
    let key_text = std::fs::read_to_string(key_path)
        .with_context(|| format!("reading the secret key {}", key_path.display()))
        .code(Code::InvalidInput)?;
    let password = std::env::var("MOTE_KEY_PASSWORD").ok();
    mote_package::SecretKey::parse(
        &key_text,
        &key_path.display().to_string(),
        password.as_deref(),
    )
    .code(Code::InvalidInput)
}

fn roles(key_path: &Path, out: Option<PathBuf>, bins: &BinDir, json: bool) -> anyhow::Result<()> {
    let key = read_secret_key(key_path)?;
    let public_path = PathBuf::from(format!("{}.pub", key_path.display()));
    let public = std::fs::read_to_string(&public_path)
        .with_context(|| {
            format!(
                "reading the public key {} (mote key generate writes it beside the secret key)",
                public_path.display()
            )
        })
        .code(Code::InvalidInput)?;
    let bin_dir = bins.resolve()?;
    let out = out.unwrap_or_else(|| mote_image::roles::RolesDir::in_bin_dir(&bin_dir).dir);
    let packed = mote_image::roles::pack_all(&bin_dir, &key, &public, &out)
        .map_err(anyhow::Error::from)
        .code(Code::InvalidInput)?;
    if json {
        return output::json(&serde_json::json!({
            "repository": out,
            "key_id": key.key_id(),
            "roles": packed,
        }));
    }
    let rows: Vec<Vec<String>> = packed
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.version.clone(),
                p.file.display().to_string(),
                p.sha256[..16].to_string(),
            ]
        })
        .collect();
    output::table(&["ROLE", "VERSION", "FILE", "SHA-256"], &rows);
    println!(
        "\nsigned by key {} into the repository {}",
        key.key_id(),
        out.display()
    );
    Ok(())
}

fn index(dir: &Path, key_path: &Path, json: bool) -> anyhow::Result<()> {
    use mote_package::repository::{signature_path, Index, INDEX_FILE};
    let key = read_secret_key(key_path)?;
    let index = Index::of_directory(dir).code(Code::InvalidInput)?;
    let text = index.to_json();
    let path = dir.join(INDEX_FILE);
    let signature = mote_package::sign(text.as_bytes(), &key, "repository index")?;
    write_atomic(&path, text.as_bytes())?;
    let sig = signature_path(&path);
    write_atomic(&sig, signature.as_bytes())?;
    let indexed = Indexed {
        index: path.clone(),
        signature: sig,
        key_id: key.key_id(),
        packages: index
            .packages
            .iter()
            .map(|e| format!("{} {}", e.name, e.version))
            .collect(),
    };
    if json {
        return output::json(&indexed);
    }
    println!(
        "indexed {} package(s) in {}, signed by key {}",
        indexed.packages.len(),
        path.display(),
        indexed.key_id
    );
    for p in &indexed.packages {
        println!("  {p}");
    }
    Ok(())
}

#[derive(Serialize)]
struct Built {
    file: PathBuf,
    name: String,
    version: String,
    sha256: String,
    bytes: usize,
    files: Vec<String>,
    open_ports: Vec<String>,
}

fn build(dir: &Path, out: Option<PathBuf>, bins: &BinDir, json: bool) -> anyhow::Result<()> {
    let mtime = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let options = mote_package::BuildOptions {
        bin_dir: Some(bins.resolve()?),
        mtime,
    };
    let bytes = mote_package::build(dir, &options)
        .with_context(|| format!("building the package in {}", dir.display()))
        .code(Code::InvalidInput)?;
    // Read back what was written, as a node would: the archive checks itself.
    let package =
        mote_package::open(&bytes).context("the built package does not open (a bug in mote)")?;
    let manifest = &package.manifest;
    let file = out.unwrap_or_else(|| {
        PathBuf::from(format!(
            "{}-{}.{}",
            manifest.name,
            manifest.version,
            mote_package::EXTENSION
        ))
    });
    write_atomic(&file, &bytes)?;
    let built = Built {
        file: file.clone(),
        name: manifest.name.clone(),
        version: manifest.version.to_string(),
        sha256: package.sha256.clone(),
        bytes: bytes.len(),
        files: package
            .files
            .iter()
            .map(|f| f.destination.clone())
            .collect(),
        open_ports: manifest
            .open_ports()
            .iter()
            .map(ToString::to_string)
            .collect(),
    };
    if json {
        return output::json(&built);
    }
    println!(
        "built {} → {} ({}, sha256 {})",
        manifest.id(),
        file.display(),
        output::size(bytes.len() as u64),
        package.sha256
    );
    println!(
        "sign it with: mote package sign {} --key KEY",
        file.display()
    );
    Ok(())
}

#[derive(Serialize)]
struct Signed {
    file: PathBuf,
    signature: PathBuf,
    key_id: String,
    name: String,
    version: String,
    sha256: String,
}

fn sign(file: &Path, key_path: &Path, json: bool) -> anyhow::Result<()> {
    let bytes = read(file)?;
    let package = mote_package::open(&bytes)
        .with_context(|| {
            format!(
                "{} is not a package that opens; only packages are signed",
                file.display()
            )
        })
        .code(Code::InvalidInput)?;
    let key = read_secret_key(key_path)?;
    let manifest = &package.manifest;
    let signature = mote_package::sign(&bytes, &key, &format!("package:{}", manifest.id()))?;
    let signature_path = signature_path(file);
    write_atomic(&signature_path, signature.as_bytes())?;
    let signed = Signed {
        file: file.to_path_buf(),
        signature: signature_path.clone(),
        key_id: key.key_id(),
        name: manifest.name.clone(),
        version: manifest.version.to_string(),
        sha256: package.sha256,
    };
    if json {
        return output::json(&signed);
    }
    println!(
        "signed {} with key {} → {}",
        manifest.id(),
        signed.key_id,
        signature_path.display()
    );
    Ok(())
}

#[derive(Serialize)]
struct Verified {
    file: PathBuf,
    name: String,
    version: String,
    sha256: String,
    key_id: String,
    trusted_key: PathBuf,
    trusted_comment: String,
}

fn verify(
    file: &Path,
    keys: &[PathBuf],
    signature: Option<PathBuf>,
    json: bool,
) -> anyhow::Result<()> {
    let key_paths = if keys.is_empty() {
        default_trusted_keys()?
    } else {
        keys.to_vec()
    };
    let mut trusted = Vec::new();
    for path in &key_paths {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the public key {}", path.display()))
            .code(Code::InvalidInput)?;
        trusted.push(
            mote_package::PublicKey::parse(&text, &path.display().to_string())
                .code(Code::InvalidInput)?,
        );
    }
    let bytes = read(file)?;
    let signature_path = signature.unwrap_or_else(|| signature_path(file));
    let signature_text = match std::fs::read_to_string(&signature_path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(e)
                .with_context(|| format!("reading the signature {}", signature_path.display()))
        }
    };
    let signer = mote_package::verify(&bytes, signature_text.as_deref(), &trusted)
        .with_context(|| format!("{} refused", file.display()))
        .code(Code::InvalidInput)?;
    let package = mote_package::open(&bytes)
        .with_context(|| {
            format!(
                "{} is signed but does not open as a package",
                file.display()
            )
        })
        .code(Code::InvalidInput)?;
    let trusted_key = trusted
        .iter()
        .position(|k| k.key_id() == signer.key_id)
        .and_then(|i| key_paths.get(i).cloned())
        .unwrap_or_default();
    let verified = Verified {
        file: file.to_path_buf(),
        name: package.manifest.name.clone(),
        version: package.manifest.version.to_string(),
        sha256: package.sha256.clone(),
        key_id: signer.key_id,
        trusted_key,
        trusted_comment: signer.trusted_comment,
    };
    if json {
        return output::json(&verified);
    }
    println!(
        "{}: good signature by key {} ({}); {} {}, {} files, sha256 {}",
        file.display(),
        verified.key_id,
        verified.trusted_key.display(),
        verified.name,
        verified.version,
        package.files.len(),
        verified.sha256
    );
    Ok(())
}

/// `CONFIG/mote/trusted-keys/*.pub`, sorted; an error saying how to trust a
/// key when there is none.
fn default_trusted_keys() -> anyhow::Result<Vec<PathBuf>> {
    let dir = crate::remote::config_dir()?.join("trusted-keys");
    let mut keys: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "pub"))
                .collect()
        })
        .unwrap_or_default();
    keys.sort();
    if keys.is_empty() {
        bail!(
            "no trusted keys: pass --key KEY.pub, or copy the public keys you trust into {}",
            dir.display()
        );
    }
    Ok(keys)
}

fn signature_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".");
    name.push(mote_package::SIGNATURE_EXTENSION);
    PathBuf::from(name)
}

fn read(file: &Path) -> anyhow::Result<Vec<u8>> {
    let size = std::fs::metadata(file)
        .with_context(|| format!("reading {}", file.display()))
        .code(Code::InvalidInput)?
        .len();
    if size > mote_package::MAX_ARCHIVE_BYTES as u64 {
        bail!(
            "{}: {size} bytes; a package is at most {} bytes",
            file.display(),
            mote_package::MAX_ARCHIVE_BYTES
        );
    }
    std::fs::read(file)
        .with_context(|| format!("reading {}", file.display()))
        .code(Code::InvalidInput)
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}
