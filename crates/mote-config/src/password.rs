//! The administrator credential: argon2id hashes in PHC string form.
//!
//! `mote passwd` prints `hash(password)`; the manifest carries it as
//! `system.admin_password_hash`; `moted` and the recovery console check a login
//! with [`verify`]. The parameters are argon2's defaults (argon2id, v=19,
//! m=19456 KiB, t=2, p=1, the OWASP minimum); a hash made with other parameters
//! still verifies, since they are read from the string.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params};

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// An empty password is never accepted.
    #[error("the password is empty")]
    Empty,
    /// The operating system gave no random bytes for the salt.
    #[error("cannot get random bytes for the salt")]
    Random(#[source] argon2::password_hash::rand_core::Error),
    /// argon2 refused the input (too long, or out of memory).
    #[error("cannot hash the password")]
    Hash(#[source] argon2::password_hash::Error),
}

/// Hashes `password` with argon2id and a fresh random salt, in PHC string form:
/// `$argon2id$v=19$m=19456,t=2,p=1$SALT$HASH`.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    let mut bytes = [0u8; 16];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(PasswordError::Random)?;
    let salt = SaltString::encode_b64(&bytes).map_err(PasswordError::Hash)?;
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(PasswordError::Hash)?;
    Ok(hash.to_string())
}

/// Whether `password` matches the argon2id PHC string `phc`. An empty password,
/// a malformed string or another algorithm never match.
pub fn verify(phc: &str, password: &str) -> bool {
    if password.is_empty() || !is_argon2id(phc) {
        return false;
    }
    PasswordHash::new(phc)
        .map(|hash| {
            Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Whether `phc` is a well-formed argon2id PHC string with a salt, a hash and
/// parameters argon2 accepts.
pub(crate) fn is_argon2id(phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    hash.algorithm == Algorithm::Argon2id.ident()
        && hash.salt.is_some()
        && hash.hash.is_some()
        && Params::try_from(&hash).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let phc = hash("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(is_argon2id(&phc));
        assert!(verify(&phc, "correct horse"));
        assert!(!verify(&phc, "correct horse "));
        assert!(!verify(&phc, ""));
    }

    #[test]
    fn salts_differ() {
        assert_ne!(hash("same").unwrap(), hash("same").unwrap());
    }

    #[test]
    fn empty_password_is_refused() {
        assert!(matches!(hash(""), Err(PasswordError::Empty)));
    }

    #[test]
    fn other_strings_are_not_argon2id() {
        let argon2i =
            "$argon2i$v=19$m=16,t=2,p=1$c29tZXNhbHQ$iWh06vD8Fy27wf9npn6FXWiCX4K6pW6Ue1Bnzz07Z8A";
        for bad in ["", "hunter2", "$argon2id$v=19$m=19456,t=2,p=1$", argon2i] {
            assert!(!is_argon2id(bad), "{bad:?}");
            assert!(!verify(bad, "hunter2"));
        }
    }
}
