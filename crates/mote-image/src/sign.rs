//! Signing the UKI for UEFI Secure Boot: an Authenticode signature, as
//! firmware verifies it, made by `osslsigncode` (Debian's `osslsigncode`).
//!
//! Why osslsigncode and not `sbsign`: sbsign stamps the signature with the
//! current time, so no two builds would match; osslsigncode takes the
//! signing time (`-time`), which is `SOURCE_DATE_EPOCH`, and then signs
//! deterministically (RSA PKCS #1 v1.5). Writing Authenticode ourselves
//! would mean PKCS #7 and X.509 encoders for one signature.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Why signing failed, with what to do.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The key or the certificate is not there.
    #[error(
        "{what} {path} does not exist; [image] secure_boot paths are relative to the manifest"
    )]
    Missing {
        /// `key` or `cert`.
        what: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// osslsigncode is not installed.
    #[error("osslsigncode is not installed: apt-get install osslsigncode")]
    NoSigner,
    /// osslsigncode failed.
    #[error("osslsigncode: {0} (the key must be an unencrypted PEM RSA key: openssl pkey -in KEY -out PLAIN.key)")]
    Failed(String),
    /// Replacing the unsigned file failed.
    #[error("replacing {path}: {source}")]
    Io {
        /// The UKI.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Sign `uki` in place with `key` and `cert`, dated `epoch`.
pub fn sign(uki: &Path, key: &Path, cert: &Path, epoch: u64) -> Result<(), SignError> {
    for (what, path) in [("key", key), ("cert", cert)] {
        if !path.is_file() {
            return Err(SignError::Missing {
                what,
                path: path.to_path_buf(),
            });
        }
    }
    let signer = crate::tools::find("osslsigncode").ok_or(SignError::NoSigner)?;
    let signed = uki.with_extension("efi.signed");
    let _ = std::fs::remove_file(&signed);
    let out = Command::new(signer)
        .args(["sign", "-h", "sha256", "-time", &epoch.max(1).to_string()])
        .arg("-certs")
        .arg(cert)
        .arg("-key")
        .arg(key)
        .arg("-in")
        .arg(uki)
        .arg("-out")
        .arg(&signed)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| SignError::Failed(e.to_string()))?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&signed);
        let said = String::from_utf8_lossy(&out.stderr);
        let said = said
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("failed");
        return Err(SignError::Failed(said.trim().to_string()));
    }
    std::fs::rename(&signed, uki).map_err(|source| SignError::Io {
        path: uki.to_path_buf(),
        source,
    })
}
