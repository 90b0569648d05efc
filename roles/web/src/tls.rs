//! TLS: certificates from PEM files or generated self-signed (rcgen), chosen
//! per connection by SNI among the https bindings of the listener, and
//! ALPN offering h2 and http/1.1. rustls with the ring provider.
//!
//! The resolver reads the current compiled settings at each handshake, so a
//! reload that changes certificates applies to new connections at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls::crypto::ring as provider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::ServerConfig;

use crate::server::Shared;

/// Errors loading or making a certificate.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificate chain {path}")]
    Cert {
        path: PathBuf,
        #[source]
        source: tokio_rustls::rustls::pki_types::pem::Error,
    },
    #[error("cannot read private key {path}")]
    Key {
        path: PathBuf,
        #[source]
        source: tokio_rustls::rustls::pki_types::pem::Error,
    },
    #[error("{path}: unsupported private key")]
    KeyType {
        path: PathBuf,
        #[source]
        source: tokio_rustls::rustls::Error,
    },
    #[error("cannot generate a self-signed certificate")]
    Generate(#[source] rcgen::Error),
    #[error("cannot build the TLS configuration")]
    Config(#[source] tokio_rustls::rustls::Error),
}

pub(crate) fn from_files(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::Cert {
            path: cert.to_owned(),
            source,
        })?;
    let der = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::Key {
        path: key.to_owned(),
        source,
    })?;
    let signer = provider::sign::any_supported_type(&der).map_err(|source| TlsError::KeyType {
        path: key.to_owned(),
        source,
    })?;
    Ok(Arc::new(CertifiedKey::new(chain, signer)))
}

/// A self-signed certificate for `names` (plus localhost and 127.0.0.1).
pub(crate) fn self_signed(names: &[String]) -> Result<Arc<CertifiedKey>, TlsError> {
    let mut all: Vec<String> = names.to_vec();
    for n in ["localhost", "127.0.0.1"] {
        if !all.iter().any(|a| a == n) {
            all.push(n.into());
        }
    }
    let ck = rcgen::generate_simple_self_signed(all).map_err(TlsError::Generate)?;
    let key = PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
    let signer = provider::sign::any_supported_type(&key).map_err(|source| TlsError::KeyType {
        path: PathBuf::from("(generated)"),
        source,
    })?;
    Ok(Arc::new(CertifiedKey::new(
        vec![ck.cert.der().clone()],
        signer,
    )))
}

/// Picks the certificate by SNI among the https bindings of one listener.
#[derive(Debug)]
struct Resolver {
    shared: Arc<Shared>,
    listener: std::net::SocketAddr,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared")
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let cfg = self.shared.current();
        let routes = cfg.routes.get(&self.listener)?;
        let sni = hello.server_name();
        let pick = sni
            .and_then(|n| {
                routes
                    .certs
                    .iter()
                    .find(|(h, _)| h.as_deref().is_some_and(|h| h.eq_ignore_ascii_case(n)))
            })
            .or_else(|| routes.certs.iter().find(|(h, _)| h.is_none()))
            .or_else(|| routes.certs.first())?;
        Some(pick.1.clone())
    }
}

/// The rustls configuration of an https listener.
pub(crate) fn server_config(
    shared: Arc<Shared>,
    listener: std::net::SocketAddr,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut c = ServerConfig::builder_with_provider(Arc::new(provider::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Resolver { shared, listener }));
    c.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(c))
}
