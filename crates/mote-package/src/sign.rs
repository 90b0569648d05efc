//! Signing and verifying packages in minisign's format.
//!
//! # Files
//! - secret key (`PATH`, mode 0600): minisign's secret key file, not
//!   password-protected (a build machine signs without a prompt); a key made
//!   by `minisign -G` with a password is read when the password is given.
//! - public key (`PATH.pub`): minisign's two-line public key file; its key
//!   id (16 hex digits) names it in every message.
//! - signature (`FILE.minisig`): minisign's signature file. The signature is
//!   Ed25519 over the BLAKE2b-512 digest of the archive (minisign's
//!   "prehashed" mode); a second signature covers the trusted comment, which
//!   says when and what was signed (`timestamp:… package:hello 0.1.0`).
//!
//! Users already have minisign's tools: `minisign -Vm hello.mpkg -p key.pub`
//! checks a package signed here, and a key made by `minisign -G` signs
//! packages that `mote package verify` accepts.
//!
//! # Why the `minisign` crate
//! It is the Rust implementation by minisign's author and reads and writes
//! all three files, including the secret key's checksum and its optional
//! scrypt encryption. The alternative, `minisign-verify` plus
//! `ed25519-dalek`, would leave the key and signature files (base64 boxes,
//! key ids, BLAKE2b checksums, the comment signature) to hand-written code
//! here. The trade: its Ed25519 is its own port rather than dalek's.
//!
//! # Verification
//! [`verify`] answers one of four refusals, in this order: no signature
//! ([`VerifyError::Unsigned`]), a signature file that does not parse or uses
//! the legacy non-prehashed mode ([`VerifyError::Malformed`]), a key id none of
//! the trusted keys has ([`VerifyError::Untrusted`]), a signature that does
//! not match the bytes ([`VerifyError::Tampered`]).

use std::io::Cursor;

/// A secret key that can sign.
pub struct SecretKey {
    key: minisign::SecretKey,
    public: minisign::PublicKey,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", key_id(self.public.keynum()))
    }
}

/// A public key that verifies.
#[derive(Debug, Clone)]
pub struct PublicKey {
    key: minisign::PublicKey,
}

/// A freshly made key pair, as the text of its two files.
#[derive(Debug, Clone)]
pub struct KeyPair {
    /// The secret key file (minisign format, unencrypted): keep it 0600.
    pub secret: String,
    /// The public key file (minisign format).
    pub public: String,
    /// The key id, 16 hex digits.
    pub key_id: String,
}

/// Who signed a package that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// The signing key's id, 16 hex digits.
    pub key_id: String,
    /// The signed trusted comment (`timestamp:… package:…`).
    pub trusted_comment: String,
}

/// Failures to make, read or use keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The operating system's random source failed.
    #[error("making a key: {0}")]
    Generate(String),
    /// A key file that does not parse.
    #[error("{what} is not a minisign {kind} key file ({reason}); make one with `mote key generate -o PATH`")]
    Malformed {
        /// The file, as the caller names it.
        what: String,
        /// `secret` or `public`.
        kind: &'static str,
        /// The parser's words.
        reason: String,
    },
    /// A password-protected secret key and no password (or a wrong one).
    #[error("{what} is password-protected: {reason}; give its password in MOTE_KEY_PASSWORD, or make an unprotected key with `mote key generate`")]
    Encrypted {
        /// The file.
        what: String,
        /// No password, or a wrong one.
        reason: String,
    },
    /// Signing failed.
    #[error("signing with key {key_id}: {reason}")]
    Sign {
        /// The key.
        key_id: String,
        /// Why.
        reason: String,
    },
}

/// Why a package is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// No signature file.
    #[error("the package is unsigned; sign it with `mote package sign FILE --key KEY`")]
    Unsigned,
    /// The signature file does not parse.
    #[error("the signature is malformed ({reason}); sign the package again")]
    Malformed {
        /// The parser's words.
        reason: String,
    },
    /// Signed by a key not among the trusted ones.
    #[error("signed by key {key_id}, which is not trusted (trusted: {}); add its .pub to the trusted keys if you trust its owner", if trusted.is_empty() { "none".to_string() } else { trusted.join(", ") })]
    Untrusted {
        /// The signing key's id.
        key_id: String,
        /// The trusted keys' ids.
        trusted: Vec<String>,
    },
    /// The signature does not match the archive: it changed after signing.
    #[error("the package does not match its signature by key {key_id}: it was changed after signing (or the signature belongs to another file)")]
    Tampered {
        /// The signing key's id.
        key_id: String,
    },
}

/// minisign's key id: the 8-byte key number as a little-endian u64, hex.
fn key_id(keynum: &[u8]) -> String {
    let mut bytes = [0u8; 8];
    for (b, k) in bytes.iter_mut().zip(keynum) {
        *b = *k;
    }
    format!("{:016X}", u64::from_le_bytes(bytes))
}

/// Makes a new, unencrypted Ed25519 key pair.
pub fn generate_key() -> Result<KeyPair, KeyError> {
    let pair = minisign::KeyPair::generate_unencrypted_keypair()
        .map_err(|e| KeyError::Generate(e.to_string()))?;
    let key_id = key_id(pair.pk.keynum());
    let secret = pair
        .sk
        .to_box(Some(&format!("mote secret key {key_id}")))
        .map_err(|e| KeyError::Generate(e.to_string()))?
        .into_string();
    let public = pair
        .pk
        .to_box()
        .map_err(|e| KeyError::Generate(e.to_string()))?
        .into_string();
    Ok(KeyPair {
        secret,
        public,
        key_id,
    })
}

impl SecretKey {
    /// Reads a secret key file's text; `what` names it in errors; `password`
    /// opens a password-protected key (never prompted for).
    pub fn parse(text: &str, what: &str, password: Option<&str>) -> Result<Self, KeyError> {
        let malformed = |reason: String| KeyError::Malformed {
            what: what.into(),
            kind: "secret",
            reason,
        };
        let boxed =
            minisign::SecretKeyBox::from_string(text).map_err(|e| malformed(e.to_string()))?;
        // Never hand minisign a missing password: it would prompt on the terminal.
        let key = match (boxed.clone().into_unencrypted_secret_key(), password) {
            (Ok(key), _) => key,
            (Err(_), Some(password)) => {
                minisign::SecretKey::from_box(boxed, Some(password.to_string())).map_err(|e| {
                    KeyError::Encrypted {
                        what: what.into(),
                        reason: e.to_string(),
                    }
                })?
            }
            (Err(e), None) if e.to_string().contains("encrypted") => {
                return Err(KeyError::Encrypted {
                    what: what.into(),
                    reason: "no password given".into(),
                })
            }
            (Err(e), None) => {
                unchecked_unencrypted(text).ok_or_else(|| malformed(e.to_string()))?
            }
        };
        let public =
            minisign::PublicKey::from_secret_key(&key).map_err(|e| malformed(e.to_string()))?;
        Ok(Self { key, public })
    }

    /// The key id, 16 hex digits.
    pub fn key_id(&self) -> String {
        key_id(self.public.keynum())
    }
}

/// An unencrypted key as minisign 0.11 (Debian 12 and 13) writes it with
/// `-W`: without the checksum the crate insists on (its `chk` is zero).
/// The signature made with it is checked against the derived public key
/// in [`sign`], so a damaged key still fails there.
fn unchecked_unencrypted(text: &str) -> Option<minisign::SecretKey> {
    use base64::Engine;
    let line = text.lines().nth(1)?.trim();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(line)
        .ok()?;
    // sig_alg 2, kdf_alg 2, chk_alg 2, salt 32, opslimit 8, memlimit 8,
    // keynum 8, sk 64, chk 32.
    if bytes.len() != 158 || bytes[2..4] != [0, 0] || bytes[126..].iter().any(|b| *b != 0) {
        return None;
    }
    minisign::SecretKey::from_bytes(&bytes).ok()
}

impl PublicKey {
    /// Reads a public key file's text (or its bare base64 line, as
    /// `minisign -P` takes it); `what` names it in errors.
    pub fn parse(text: &str, what: &str) -> Result<Self, KeyError> {
        let malformed = |reason: String| KeyError::Malformed {
            what: what.into(),
            kind: "public",
            reason,
        };
        let trimmed = text.trim();
        let key = if trimmed.lines().count() == 1 {
            minisign::PublicKey::from_base64(trimmed)
        } else {
            minisign::PublicKey::from_box(
                minisign::PublicKeyBox::from_string(text).map_err(|e| malformed(e.to_string()))?,
            )
        }
        .map_err(|e| malformed(e.to_string()))?;
        Ok(Self { key })
    }

    /// The key id, 16 hex digits.
    pub fn key_id(&self) -> String {
        key_id(self.key.keynum())
    }
}

/// Signs `archive`; `what` goes into the trusted comment (such as
/// `package:hello 0.1.0`). Returns the signature file's text.
pub fn sign(archive: &[u8], key: &SecretKey, what: &str) -> Result<String, KeyError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let trusted = format!("timestamp:{now}\t{what}");
    let untrusted = format!("signature from mote secret key {}", key.key_id());
    let signature = minisign::sign(
        Some(&key.public),
        &key.key,
        Cursor::new(archive),
        Some(&trusted),
        Some(&untrusted),
    )
    .map_err(|e| KeyError::Sign {
        key_id: key.key_id(),
        reason: e.to_string(),
    })?;
    Ok(signature.into_string())
}

/// Checks `signature` (a signature file's text, `None` when there is none)
/// over `archive` against `trusted` keys.
pub fn verify(
    archive: &[u8],
    signature: Option<&str>,
    trusted: &[PublicKey],
) -> Result<Signer, VerifyError> {
    let text = signature.ok_or(VerifyError::Unsigned)?;
    let boxed = minisign::SignatureBox::from_string(text).map_err(|e| VerifyError::Malformed {
        reason: e.to_string(),
    })?;
    if !boxed.is_prehashed() {
        return Err(VerifyError::Malformed {
            reason: "a legacy (not prehashed) signature".into(),
        });
    }
    let signer_id = key_id(boxed.keynum());
    let Some(key) = trusted.iter().find(|k| k.key.keynum() == boxed.keynum()) else {
        return Err(VerifyError::Untrusted {
            key_id: signer_id,
            trusted: trusted.iter().map(PublicKey::key_id).collect(),
        });
    };
    minisign::verify(&key.key, &boxed, Cursor::new(archive), true, false, false).map_err(|_| {
        VerifyError::Tampered {
            key_id: signer_id.clone(),
        }
    })?;
    let trusted_comment = boxed.trusted_comment().unwrap_or_default();
    Ok(Signer {
        key_id: signer_id,
        trusted_comment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> (SecretKey, PublicKey, String) {
        let pair = generate_key().unwrap();
        let secret = SecretKey::parse(&pair.secret, "test.key", None).unwrap();
        let public = PublicKey::parse(&pair.public, "test.key.pub").unwrap();
        (secret, public, pair.key_id)
    }

    const ARCHIVE: &[u8] = b"not really a package, but bytes all the same";

    #[test]
    fn a_signature_verifies_and_names_its_signer() {
        let (secret, public, id) = keys();
        assert_eq!(secret.key_id(), id);
        assert_eq!(public.key_id(), id);
        let signature = sign(ARCHIVE, &secret, "package:hello 0.1.0").unwrap();
        assert!(signature.starts_with("untrusted comment: "), "{signature}");
        let signer = verify(ARCHIVE, Some(&signature), &[public]).unwrap();
        assert_eq!(signer.key_id, id);
        assert!(signer.trusted_comment.starts_with("timestamp:"));
        assert!(signer.trusted_comment.ends_with("\tpackage:hello 0.1.0"));
    }

    #[test]
    fn a_changed_byte_is_tampering() {
        let (secret, public, id) = keys();
        let signature = sign(ARCHIVE, &secret, "x").unwrap();
        let mut changed = ARCHIVE.to_vec();
        changed[7] ^= 1;
        assert_eq!(
            verify(&changed, Some(&signature), &[public]),
            Err(VerifyError::Tampered { key_id: id })
        );
    }

    #[test]
    fn another_key_is_untrusted() {
        let (secret, _, id) = keys();
        let (_, other, other_id) = keys();
        let signature = sign(ARCHIVE, &secret, "x").unwrap();
        let err = verify(ARCHIVE, Some(&signature), &[other]).unwrap_err();
        assert_eq!(
            err,
            VerifyError::Untrusted {
                key_id: id.clone(),
                trusted: vec![other_id.clone()]
            }
        );
        assert!(err.to_string().contains(&format!(
            "signed by key {id}, which is not trusted (trusted: {other_id})"
        )));
        assert!(verify(ARCHIVE, Some(&signature), &[])
            .unwrap_err()
            .to_string()
            .contains("trusted: none"));
    }

    #[test]
    fn no_signature_is_unsigned() {
        let (_, public, _) = keys();
        assert_eq!(verify(ARCHIVE, None, &[public]), Err(VerifyError::Unsigned));
    }

    #[test]
    fn a_malformed_signature_says_so() {
        let (secret, public, _) = keys();
        for bad in [
            "",
            "hello\n",
            "untrusted comment: x\n!!!notbase64\ntrusted comment: y\nAAAA\n",
        ] {
            let err = verify(ARCHIVE, Some(bad), std::slice::from_ref(&public)).unwrap_err();
            assert!(
                matches!(err, VerifyError::Malformed { .. }),
                "{bad:?}: {err}"
            );
        }
        // A changed trusted comment breaks the comment signature: tampering.
        let signature = sign(ARCHIVE, &secret, "package:a 1.0.0").unwrap();
        let forged = signature.replace("package:a 1.0.0", "package:a 9.9.9");
        assert!(matches!(
            verify(ARCHIVE, Some(&forged), &[public]),
            Err(VerifyError::Tampered { .. })
        ));
    }

    #[test]
    fn bad_key_files_name_the_file() {
        let err = PublicKey::parse("nonsense\n", "mine.pub")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("mine.pub is not a minisign public key file"),
            "{err}"
        );
        let err = SecretKey::parse("nonsense\n", "mine.key", None)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("mine.key is not a minisign secret key file"),
            "{err}"
        );
    }
}
