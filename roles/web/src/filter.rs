//! Request filtering (IIS's `requestFiltering`): verbs, URL and query
//! lengths, body length, double-encoded and traversing paths, denied
//! extensions and hidden segments.
//!
//! [`check`] runs before anything touches the disk and returns the
//! canonical path ([`crate::path`]), the one every later rule matches. Each rejection keeps IIS's 404.x substatus for the log, while the
//! client sees the plain HTTP status (405, 414, 413, 400, 404).

use hyper::http::request::Parts;
use std::borrow::Cow;

use hyper::{header, StatusCode};

use crate::config::RequestFiltering;

/// The compiled filter of a site.
pub(crate) struct Filter {
    max_url: usize,
    max_query: usize,
    max_body: u64,
    denied_ext: Vec<String>,
    hidden: Vec<String>,
    verbs: Vec<String>,
}

/// Why a request was refused: the status sent and IIS's substatus logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reject {
    pub status: StatusCode,
    pub substatus: u16,
}

const fn reject(status: StatusCode, substatus: u16) -> Reject {
    Reject { status, substatus }
}

impl Filter {
    pub(crate) fn new(c: &RequestFiltering) -> Self {
        Self {
            max_url: c.max_url_length,
            max_query: c.max_query_length,
            max_body: c.max_body_bytes,
            denied_ext: c
                .denied_extensions
                .iter()
                .map(|e| e.to_ascii_lowercase())
                .collect(),
            hidden: c
                .hidden_segments
                .iter()
                .map(|e| e.to_ascii_lowercase())
                .collect(),
            verbs: c.allowed_verbs.clone(),
        }
    }

    /// Largest request body the site accepts, in bytes.
    pub(crate) fn max_body(&self) -> u64 {
        self.max_body
    }

    /// Checks the request head; on success gives the canonical path.
    pub(crate) fn check<'a>(&self, parts: &'a Parts) -> Result<Cow<'a, str>, Reject> {
        if !self.verbs.iter().any(|v| v == parts.method.as_str()) {
            return Err(reject(StatusCode::METHOD_NOT_ALLOWED, 6));
        }
        let raw = parts.uri.path();
        let query = parts.uri.query().unwrap_or("");
        if raw.len() > self.max_url {
            return Err(reject(StatusCode::URI_TOO_LONG, 14));
        }
        if query.len() > self.max_query {
            return Err(reject(StatusCode::URI_TOO_LONG, 15));
        }
        if let Some(len) = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
        {
            if len > self.max_body {
                return Err(reject(StatusCode::PAYLOAD_TOO_LARGE, 13));
            }
        }
        let path = decode_path(raw)?;
        self.check_segments(&path)?;
        Ok(path)
    }

    fn check_segments(&self, path: &str) -> Result<(), Reject> {
        let mut last = "";
        for seg in path.split('/') {
            if seg.is_empty() {
                continue;
            }
            if self.hidden.iter().any(|h| h.eq_ignore_ascii_case(seg)) {
                return Err(reject(StatusCode::NOT_FOUND, 8));
            }
            last = seg;
        }
        if let Some(dot) = last.rfind('.') {
            let ext = &last[dot..];
            if self.denied_ext.iter().any(|e| e.eq_ignore_ascii_case(ext)) {
                return Err(reject(StatusCode::NOT_FOUND, 7));
            }
        }
        Ok(())
    }
}

/// The canonical path ([`crate::path::canonical`]); a path it refuses is
/// 400 with substatus 11.
fn decode_path(raw: &str) -> Result<Cow<'_, str>, Reject> {
    crate::path::canonical(raw).map_err(|_| reject(StatusCode::BAD_REQUEST, 11))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::Request;

    fn parts(method: &str, uri: &str) -> Parts {
        Request::builder()
            .method(method)
            .uri(uri)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    #[test]
    fn rejections() {
        let f = Filter::new(&RequestFiltering::default());
        let st = |m: &str, u: &str| {
            f.check(&parts(m, u))
                .map(Cow::into_owned)
                .map_err(|r| r.status.as_u16())
        };
        assert_eq!(st("GET", "/a%20b.txt"), Ok("/a b.txt".into()));
        assert_eq!(st("GET", "//.git/config"), Err(404));
        assert_eq!(st("GET", "/%2e/sub/web.config"), Err(404));
        assert_eq!(st("TRACE", "/"), Err(405));
        assert_eq!(st("GET", "/../etc/passwd"), Err(400));
        assert_eq!(st("GET", "/%2e%2e/etc/passwd"), Err(400));
        assert_eq!(st("GET", "/%252e%252e/etc/passwd"), Err(400));
        assert_eq!(st("GET", "/a%5c..%5cb"), Err(400));
        assert_eq!(st("GET", "/.git/config"), Err(404));
        assert_eq!(st("GET", "/sub/Web.Config"), Err(404));
        assert_eq!(st("GET", "/x.CONFIG"), Err(404));
        let long = format!("/{}", "a".repeat(5000));
        assert_eq!(st("GET", &long), Err(414));
        let q = format!("/?{}", "a".repeat(3000));
        assert_eq!(st("GET", &q), Err(414));
        let mut p = parts("POST", "/");
        p.headers
            .insert(header::CONTENT_LENGTH, "999999999999".parse().unwrap());
        assert_eq!(f.check(&p).map_err(|r| r.status.as_u16()), Err(413));
    }
}
