//! The node's TLS key and certificate: made at first start (ECDSA P-256,
//! self-signed), kept under `STATE/tls/` (`key.pem` mode 0600, `cert.pem`,
//! `fingerprint`), and loaded on later starts.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use mote_api::store::{write_atomic, StoreError};

/// Why the node identity could not be made or loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Writing failed.
    #[error("cannot store the TLS identity")]
    Store(#[from] StoreError),
    /// A file system call failed.
    #[error("cannot {op} {path}")]
    Io {
        /// What.
        op: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Generating failed.
    #[error("cannot generate the node certificate")]
    Generate(#[from] rcgen::Error),
    /// The stored files do not parse.
    #[error("{path} is not a PEM {what}; delete STATE/tls to make a new identity")]
    Pem {
        /// File.
        path: PathBuf,
        /// Certificate or key.
        what: &'static str,
    },
    /// rustls refused the pair.
    #[error("the stored key does not suit the certificate")]
    Rustls(#[from] rustls::Error),
}

/// The loaded identity.
pub struct Identity {
    /// The server configuration.
    pub config: Arc<rustls::ServerConfig>,
    /// SHA-256 fingerprint of the certificate.
    pub fingerprint: String,
}

/// Loads `dir/{key,cert}.pem`, making them first if absent.
pub fn load_or_make(dir: &Path) -> Result<Identity, TlsError> {
    let key_path = dir.join("key.pem");
    let cert_path = dir.join("cert.pem");
    if !key_path.exists() || !cert_path.exists() {
        fs::create_dir_all(dir).map_err(|source| TlsError::Io {
            op: "create",
            path: dir.into(),
            source,
        })?;
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = rcgen::CertificateParams::new(vec!["mote-node".to_string()])?;
        params.not_after = rcgen::date_time_ymd(2099, 1, 1);
        let cert = params.self_signed(&key)?;
        write_atomic(&key_path, key.serialize_pem().as_bytes())?;
        fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600)).map_err(|source| {
            TlsError::Io {
                op: "chmod",
                path: key_path.clone(),
                source,
            }
        })?;
        write_atomic(&cert_path, cert.pem().as_bytes())?;
    }
    let cert = CertificateDer::from_pem_file(&cert_path).map_err(|_| TlsError::Pem {
        path: cert_path.clone(),
        what: "certificate",
    })?;
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|_| TlsError::Pem {
        path: key_path.clone(),
        what: "private key",
    })?;
    let fingerprint = mote_api::api::fingerprint(cert.as_ref());
    write_atomic(
        &dir.join("fingerprint"),
        format!("{fingerprint}\n").as_bytes(),
    )?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(rustls::DEFAULT_VERSIONS)?
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Identity {
        config: Arc::new(config),
        fingerprint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_made_once_and_kept() {
        let d = tempfile::tempdir().unwrap();
        let a = load_or_make(d.path()).unwrap();
        let b = load_or_make(d.path()).unwrap();
        assert_eq!(a.fingerprint, b.fingerprint);
        let mode = fs::metadata(d.path().join("key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let stored = fs::read_to_string(d.path().join("fingerprint")).unwrap();
        assert_eq!(stored.trim(), a.fingerprint);
    }
}
