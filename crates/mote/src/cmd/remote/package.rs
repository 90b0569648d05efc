//! `mote -n NAME package list|install|upgrade|remove`: packages on a node.
//! (`mote package build|sign|verify` without `-n` work on this host.)

use std::path::{Path, PathBuf};

use anyhow::Context;
use mote_api::api::PackageChange;
use mote_api::control::{PackageInfo, PackageTrust};

use crate::exit::{Code, WithCode};
use crate::output;
use crate::remote::{Explain, Session};

/// A package verb on a node.
#[derive(Debug, Clone)]
pub enum Remote {
    /// The installed packages.
    List {
        /// Print the API's JSON.
        json: bool,
    },
    /// Install (or, with `upgrade`, upgrade) the package FILE.
    Upload {
        /// The archive.
        file: PathBuf,
        /// Its signature [default: FILE.minisig when it exists].
        signature: Option<PathBuf>,
        /// `file` names a package in this repository (a directory or an
        /// HTTP(S) URL).
        repository: Option<String>,
        /// Upgrade an installed package rather than install a new one.
        upgrade: bool,
        /// Print the API's JSON.
        json: bool,
    },
    /// Remove the package NAME.
    Remove {
        /// Package name.
        name: String,
        /// Print the API's JSON.
        json: bool,
    },
}

pub async fn run(s: &Session, r: &Remote) -> anyhow::Result<()> {
    match r {
        Remote::List { json } => {
            let list = s.client.packages().await.explain(&s.name)?;
            if *json {
                return output::json(&list);
            }
            let rows: Vec<Vec<String>> = list.packages.iter().map(row).collect();
            output::table(
                &[
                    "NAME", "VERSION", "ACTIVE", "FROM", "TRUST", "SERVICES", "PORTS",
                ],
                &rows,
            );
            if list.allow_unsigned {
                println!(
                    "\nthis node lets unsigned packages in (allow_unsigned: development only)"
                );
            }
            Ok(())
        }
        Remote::Upload {
            file,
            signature,
            repository,
            upgrade,
            json,
        } => {
            let (file, archive, signature) = match repository {
                Some(repository) => {
                    let (file, bytes, found) = from_repository(repository, file)?;
                    let signature = match signature {
                        Some(path) => read_signature(&file, Some(path))?,
                        None => found,
                    };
                    (file, bytes, signature)
                }
                None => {
                    let bytes = std::fs::read(file)
                        .with_context(|| format!("reading {}", file.display()))
                        .code(Code::InvalidInput)?;
                    let signature = read_signature(file, signature.as_deref())?;
                    (file.clone(), bytes, signature)
                }
            };
            let file = &file;
            let name = if *upgrade {
                let package = mote_package::open(&archive)
                    .with_context(|| format!("{} is not a package that opens", file.display()))
                    .code(Code::InvalidInput)?;
                Some(package.manifest.name)
            } else {
                None
            };
            eprintln!(
                "{} {} ({}) to {}…",
                if *upgrade {
                    "upgrading with"
                } else {
                    "installing"
                },
                file.display(),
                output::size(archive.len() as u64),
                s.name
            );
            let change = s
                .client
                .package_upload(name.as_deref(), archive, signature.as_deref())
                .await
                .explain(&s.name)?;
            done(&change, *json)
        }
        Remote::Remove { name, json } => {
            let change = s.client.package_remove(name).await.explain(&s.name)?;
            done(&change, *json)
        }
    }
}

/// The highest version of the package `name` in the repository (a
/// directory or an HTTP(S) URL), its file checked against the index's
/// digest (the node checks the package's signature), and the signature's
/// text when the repository has one.
fn from_repository(
    repository: &str,
    name: &Path,
) -> anyhow::Result<(PathBuf, Vec<u8>, Option<String>)> {
    use mote_package::repository::{Index, Source};
    let source = Source::parse(repository, Path::new("."));
    let index = Index::read_unverified(&source).code(Code::InvalidInput)?;
    let name = name.to_string_lossy();
    let entry = index
        .latest(&name)
        .with_context(|| format!("repository {source} lists no package {name:?}"))
        .code(Code::InvalidInput)?;
    let bytes = entry.read(&source).code(Code::InvalidInput)?;
    let signature = source
        .fetch_signature(&entry.file)
        .code(Code::InvalidInput)?;
    Ok((source.locate(&entry.file), bytes, signature))
}

fn read_signature(file: &Path, given: Option<&Path>) -> anyhow::Result<Option<String>> {
    let default = PathBuf::from(format!(
        "{}.{}",
        file.display(),
        mote_package::SIGNATURE_EXTENSION
    ));
    match given {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading the signature {}", path.display()))
            .code(Code::InvalidInput)
            .map(Some),
        None => Ok(std::fs::read_to_string(&default).ok()),
    }
}

fn done(change: &PackageChange, json: bool) -> anyhow::Result<()> {
    if json {
        return output::json(change);
    }
    println!("{}", change.message);
    println!("settings version {}", change.settings_version);
    Ok(())
}

fn row(p: &PackageInfo) -> Vec<String> {
    let trust = match &p.trust {
        Some(PackageTrust::Signed { key_id }) => format!("key {key_id}"),
        Some(PackageTrust::Unsigned { .. }) => "UNSIGNED".into(),
        None if p.in_image => "image".into(),
        None => "-".into(),
    };
    vec![
        p.name.clone(),
        p.version.clone(),
        if p.active { "yes" } else { "no" }.into(),
        if p.in_image { "image" } else { "online" }.into(),
        trust,
        p.services.join(" "),
        p.ports.join(" "),
    ]
}
