//! The compiled settings: what the request path reads, built once per load.
//!
//! [`compile`] canonicalizes roots, loads error pages, builds filters,
//! certificates and the routing table (listener address → host names →
//! site), reuses the app pools and log writers of the previous generation
//! when their settings did not change, and starts the new ones.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use ipnet::IpNet;
use tokio_rustls::rustls::sign::CertifiedKey;

use crate::app::AppPool;
use crate::body::Body;
use crate::config::{Compression, Redirect, Scheme, WebSettings};
use crate::filter::Filter;
use crate::log::{LogError, Logger};
use crate::metrics::{self, SiteMetrics};
use crate::tls::{self, TlsError};

/// Errors compiling loaded settings.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error("sites[{site}].root: cannot open {path}")]
    Root {
        site: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("sites[{site}].error_pages.{code}: cannot read {path}")]
    ErrorPage {
        site: String,
        code: u16,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("sites[{site}].tls")]
    Tls {
        site: String,
        #[source]
        source: TlsError,
    },
    #[error("sites[{site}].logging")]
    Log {
        site: String,
        #[source]
        source: LogError,
    },
    #[error("{addr}: bound as both http and https")]
    MixedScheme { addr: SocketAddr },
}

pub(crate) struct AuthRule {
    pub path: String,
    pub challenge: HeaderValue,
    pub users: HashMap<String, String>,
    /// `Authorization` values already verified, until when.
    pub verified: Mutex<HashMap<String, Instant>>,
}

pub(crate) struct Site {
    pub name: String,
    pub root: PathBuf,
    pub default_docs_enabled: bool,
    pub default_docs: Vec<String>,
    pub directory_browsing: bool,
    pub error_pages: HashMap<u16, (Bytes, &'static str)>,
    pub compression: Compression,
    pub filter: Filter,
    pub hsts: Option<HeaderValue>,
    /// Port of the first https binding, when http requests are redirected.
    pub https_redirect: Option<u16>,
    pub auth: Vec<AuthRule>,
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
    pub redirects: Vec<Redirect>,
    pub apps: Vec<Arc<AppPool>>,
    pub metrics: Arc<SiteMetrics>,
    pub log: Option<Arc<Logger>>,
    log_key: Option<(PathBuf, u64, bool)>,
}

impl Site {
    /// An error response: the custom page for `status`, or a short default.
    pub(crate) fn error(&self, status: StatusCode) -> Response<Body> {
        let (body, ctype) = match self.error_pages.get(&status.as_u16()) {
            Some((b, t)) => (b.clone(), *t),
            None => (default_page(status), "text/html"),
        };
        let mut r = Response::new(Body::bytes(body));
        *r.status_mut() = status;
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
        r
    }

    pub(crate) fn ip_allowed(&self, ip: std::net::IpAddr) -> bool {
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4),
            v4 => v4,
        };
        if self.deny.iter().any(|n| n.contains(&ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&ip))
    }
}

/// The built-in page for `status`; the usual error statuses are made once.
pub(crate) fn default_page(status: StatusCode) -> Bytes {
    static MADE: std::sync::OnceLock<HashMap<u16, Bytes>> = std::sync::OnceLock::new();
    let made = MADE.get_or_init(|| {
        (400..=511)
            .filter_map(|c| StatusCode::from_u16(c).ok())
            .filter(|s| s.canonical_reason().is_some())
            .map(|s| (s.as_u16(), make_page(s)))
            .collect()
    });
    made.get(&status.as_u16())
        .cloned()
        .unwrap_or_else(|| make_page(status))
}

fn make_page(status: StatusCode) -> Bytes {
    let reason = status.canonical_reason().unwrap_or("");
    Bytes::from(format!(
        "<html>\r\n<head><title>{} {reason}</title></head>\r\n<body>\r\n<center><h1>{} {reason}</h1></center>\r\n<hr><center>mote-web</center>\r\n</body>\r\n</html>\r\n",
        status.as_u16(),
        status.as_u16()
    ))
}

/// Routing of one listener.
pub(crate) struct ListenerRoutes {
    pub scheme: Scheme,
    /// (host name or any, site index), exact names first.
    pub hosts: Vec<(Option<String>, usize)>,
    pub certs: Vec<(Option<String>, Arc<CertifiedKey>)>,
}

pub(crate) struct Compiled {
    pub sites: Vec<Arc<Site>>,
    pub routes: HashMap<SocketAddr, ListenerRoutes>,
    /// `limits.header_timeout_secs`.
    pub header_timeout: Duration,
    /// `limits.send_timeout_secs`.
    pub send_timeout: Duration,
    /// `limits.max_connections`.
    pub max_connections: usize,
}

impl Compiled {
    /// The site for a request on `listener` with `host` (port stripped).
    pub(crate) fn route(&self, listener: &SocketAddr, host: Option<&str>) -> Option<&Arc<Site>> {
        let r = self.routes.get(listener)?;
        let host = host.map(|h| {
            if h.starts_with('[') {
                h.find(']').map_or(h, |e| &h[..=e])
            } else {
                h.split(':').next().unwrap_or(h)
            }
        });
        let i = host
            .and_then(|h| {
                r.hosts
                    .iter()
                    .find(|(n, _)| n.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(h)))
            })
            .or_else(|| r.hosts.iter().find(|(n, _)| n.is_none()))?
            .1;
        self.sites.get(i)
    }
}

pub(crate) fn compile(
    s: &WebSettings,
    metrics: &metrics::Registry,
    old: Option<&Compiled>,
) -> Result<Compiled, SiteError> {
    let mut sites = Vec::new();
    let mut routes: HashMap<SocketAddr, ListenerRoutes> = HashMap::new();
    for c in s.sites.iter().filter(|c| c.enabled) {
        // Index into `sites` (disabled sites are not compiled).
        let i = sites.len();
        let old_site = old.and_then(|o| o.sites.iter().find(|x| x.name == c.name));
        let root = std::fs::canonicalize(&c.root).map_err(|source| SiteError::Root {
            site: c.name.clone(),
            path: c.root.clone(),
            source,
        })?;
        let mut error_pages = HashMap::new();
        for (code, file) in &c.error_pages {
            let code: u16 = code.parse().unwrap_or(500);
            let path = root.join(file);
            let b = std::fs::read(&path).map_err(|source| SiteError::ErrorPage {
                site: c.name.clone(),
                code,
                path: path.clone(),
                source,
            })?;
            let t = crate::mime::for_name(&path.to_string_lossy());
            error_pages.insert(code, (Bytes::from(b), t));
        }
        let cert = match &c.tls {
            None => None,
            Some(t) => {
                let r = match (&t.cert, &t.key) {
                    (Some(cert), Some(key)) => tls::from_files(cert, key),
                    _ => {
                        let names: Vec<String> =
                            c.bindings.iter().filter_map(|b| b.host.clone()).collect();
                        tls::self_signed(&names)
                    }
                };
                Some(r.map_err(|source| SiteError::Tls {
                    site: c.name.clone(),
                    source,
                })?)
            }
        };
        for b in &c.bindings {
            let addr = SocketAddr::new(b.address, b.port);
            let r = routes.entry(addr).or_insert_with(|| ListenerRoutes {
                scheme: b.scheme,
                hosts: Vec::new(),
                certs: Vec::new(),
            });
            if r.scheme != b.scheme {
                return Err(SiteError::MixedScheme { addr });
            }
            r.hosts.push((b.host.clone(), i));
            if let (Scheme::Https, Some(cert)) = (b.scheme, &cert) {
                r.certs.push((b.host.clone(), cert.clone()));
            }
        }
        let log_key = c
            .logging
            .enabled
            .then(|| (c.logging.dir.clone(), c.logging.max_bytes, c.logging.daily));
        let site_metrics = metrics.site(&c.name);
        let log = match (&log_key, old_site) {
            (None, _) => None,
            (Some(k), Some(o)) if o.log_key.as_ref() == Some(k) => o.log.clone(),
            (Some((dir, max, daily)), _) => Some(Arc::new(
                Logger::start(dir, &c.name, *max, *daily, site_metrics.clone()).map_err(
                    |source| SiteError::Log {
                        site: c.name.clone(),
                        source,
                    },
                )?,
            )),
        };
        let apps = c
            .apps
            .iter()
            .map(|a| {
                old_site
                    .and_then(|o| o.apps.iter().find(|p| p.config == *a))
                    .cloned()
                    .unwrap_or_else(|| AppPool::start(a.clone(), &c.name))
            })
            .collect();
        let auth = c
            .basic_auth
            .iter()
            .map(|a| AuthRule {
                path: a.path.clone(),
                challenge: HeaderValue::from_str(&format!(
                    "Basic realm=\"{}\", charset=\"UTF-8\"",
                    a.realm.replace('"', "")
                ))
                .unwrap_or_else(|_| HeaderValue::from_static("Basic realm=\"mote\"")),
                users: a.users.clone().into_iter().collect(),
                verified: Mutex::new(HashMap::new()),
            })
            .collect();
        let hsts = c.hsts.as_ref().and_then(|h| {
            let v = if h.include_subdomains {
                format!("max-age={}; includeSubDomains", h.max_age)
            } else {
                format!("max-age={}", h.max_age)
            };
            HeaderValue::from_str(&v).ok()
        });
        let https_redirect = c
            .https_redirect
            .then(|| {
                c.bindings
                    .iter()
                    .find(|b| b.scheme == Scheme::Https)
                    .map(|b| b.port)
            })
            .flatten();
        sites.push(Arc::new(Site {
            name: c.name.clone(),
            root,
            default_docs_enabled: c.default_documents.enabled,
            default_docs: c.default_documents.files.clone(),
            directory_browsing: c.directory_browsing,
            error_pages,
            compression: c.compression.clone(),
            filter: Filter::new(&c.request_filtering),
            hsts,
            https_redirect,
            auth,
            allow: c.ip.allow.clone(),
            deny: c.ip.deny.clone(),
            redirects: c.redirects.clone(),
            apps,
            metrics: site_metrics,
            log,
            log_key,
        }));
    }
    // Exact host names before the catch-all.
    for r in routes.values_mut() {
        r.hosts.sort_by_key(|(h, _)| h.is_none());
        r.certs.sort_by_key(|(h, _)| h.is_none());
    }
    Ok(Compiled {
        sites,
        routes,
        header_timeout: Duration::from_secs(s.limits.header_timeout_secs),
        send_timeout: Duration::from_secs(s.limits.send_timeout_secs),
        max_connections: s.limits.max_connections,
    })
}

/// How long a verified Basic credential is trusted without re-hashing.
pub(crate) const AUTH_CACHE: Duration = Duration::from_secs(300);
