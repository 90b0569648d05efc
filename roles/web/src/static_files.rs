//! Static content: files, default documents, directory listings.
//!
//! Job: answer GET/HEAD for a decoded, filtered path under a site's root
//! with the right type, validators (ETag, Last-Modified), conditional 304s,
//! single byte ranges (206/416) and content coding (precompressed `.br`/`.gz`
//! siblings, else brotli or gzip on the fly).
//!
//! Design: the URL path is resolved with `canonicalize` and must stay under
//! the canonical root (symlinks out of the root are 404); resolutions are
//! cached for [`RESOLVE_TTL`]. Files up to [`SMALL_FILE`] bytes are kept in
//! memory and revalidated with one `stat` per request (size, mtime, inode);
//! larger files are streamed in chunks. Compressed variants are cached too.
//!
//! Limits: metadata calls are synchronous on the worker (like nginx; fast on
//! a warm cache); multi-range requests get the whole file (RFC 9110 allows
//! it); the caches are dropped wholesale when they pass their byte budget.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Response, StatusCode};

use crate::body::Body;
use crate::mime;
use crate::site::Site;

/// Resolutions of URL paths to canonical files are trusted this long.
const RESOLVE_TTL: Duration = Duration::from_secs(2);
/// Files up to this size are cached in memory.
const SMALL_FILE: u64 = 256 * 1024;
/// Byte budget of each cache.
const CACHE_BUDGET: usize = 64 << 20;

/// Identity of a file version: size, mtime (ns), inode.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Version {
    len: u64,
    mtime_ns: i128,
    ino: u64,
}

impl Version {
    fn of(m: &std::fs::Metadata) -> Self {
        Self {
            len: m.len(),
            mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
            ino: m.ino(),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Coding {
    Identity,
    Gzip,
    Brotli,
}

impl Coding {
    fn name(self) -> &'static str {
        match self {
            Coding::Identity => "identity",
            Coding::Gzip => "gzip",
            Coding::Brotli => "br",
        }
    }
    fn suffix(self) -> &'static str {
        match self {
            Coding::Identity => "",
            Coding::Gzip => ".gz",
            Coding::Brotli => ".br",
        }
    }
}

struct Resolved {
    path: PathBuf,
    at: Instant,
}

/// Caches shared by all sites (keys are canonical paths).
#[derive(Default)]
pub(crate) struct FileCache {
    resolved: RwLock<HashMap<PathBuf, Resolved>>,
    content: RwLock<Cache>,
}

#[derive(Default)]
struct Cache {
    /// Per file, one slot per coding (identity, gzip, brotli).
    map: HashMap<PathBuf, [Option<(Version, Bytes)>; 3]>,
    bytes: usize,
}

impl FileCache {
    fn get(&self, path: &Path, coding: Coding, v: Version) -> Option<Bytes> {
        let c = self.content.read().ok()?;
        match &c.map.get(path)?[coding as usize] {
            Some((cv, b)) if *cv == v => Some(b.clone()),
            _ => None,
        }
    }

    fn put(&self, path: &Path, coding: Coding, v: Version, b: Bytes) {
        if let Ok(mut c) = self.content.write() {
            if c.bytes + b.len() > CACHE_BUDGET {
                c.map.clear();
                c.bytes = 0;
            }
            let added = b.len();
            let slot = &mut c.map.entry(path.to_path_buf()).or_default()[coding as usize];
            let old = slot.replace((v, b)).map_or(0, |(_, o)| o.len());
            c.bytes = c.bytes + added - old;
        }
    }

    /// The canonical file for `joined` (root + URL path), if under `root`.
    fn resolve(&self, root: &Path, joined: PathBuf) -> Option<PathBuf> {
        if let Ok(r) = self.resolved.read() {
            if let Some(e) = r.get(&joined) {
                if e.at.elapsed() < RESOLVE_TTL {
                    return Some(e.path.clone());
                }
            }
        }
        // One stat settles a missing path (the 404 case) before
        // `canonicalize`, which costs a readlink per component.
        std::fs::metadata(&joined).ok()?;
        let canon = std::fs::canonicalize(&joined).ok()?;
        if !canon.starts_with(root) {
            return None;
        }
        if let Ok(mut r) = self.resolved.write() {
            if r.len() > 100_000 {
                r.clear();
            }
            r.insert(
                joined,
                Resolved {
                    path: canon.clone(),
                    at: Instant::now(),
                },
            );
        }
        Some(canon)
    }
}

/// What the static handler answered, for the log.
pub(crate) type Answer = Response<Body>;

/// Serves `path` (canonical, filtered) of `site`; a large file goes out
/// `chunk` bytes at a time.
pub(crate) async fn serve(
    site: &Site,
    cache: &FileCache,
    method: &Method,
    headers: &HeaderMap,
    path: &str,
    query: Option<&str>,
    chunk: usize,
) -> Answer {
    if method != Method::GET && method != Method::HEAD {
        let mut r = site.error(StatusCode::METHOD_NOT_ALLOWED);
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let mut joined = site.root.clone();
    for seg in path.split('/').filter(|s| !s.is_empty() && *s != ".") {
        joined.push(seg);
    }
    let Some(file) = cache.resolve(&site.root, joined) else {
        return site.error(StatusCode::NOT_FOUND);
    };
    let Ok(meta) = std::fs::metadata(&file) else {
        return site.error(StatusCode::NOT_FOUND);
    };
    if meta.is_dir() {
        if !path.ends_with('/') {
            let mut loc = String::with_capacity(path.len() + 1);
            // `path` is canonical: one leading '/', so never `//…`.
            loc.push_str(&crate::path::encode(path));
            loc.push('/');
            if let Some(q) = query {
                loc.push('?');
                loc.push_str(q);
            }
            return redirect(StatusCode::MOVED_PERMANENTLY, &loc);
        }
        if site.default_docs_enabled {
            for doc in &site.default_docs {
                let Some(f) = cache.resolve(&site.root, file.join(doc)) else {
                    continue;
                };
                if let Ok(m) = std::fs::metadata(&f) {
                    if m.is_file() {
                        return send_file(site, cache, method, headers, &f, &m, chunk).await;
                    }
                }
            }
        }
        if site.directory_browsing {
            return listing(method, path, &file);
        }
        return site.error(StatusCode::FORBIDDEN);
    }
    if !meta.is_file() {
        return site.error(StatusCode::NOT_FOUND);
    }
    send_file(site, cache, method, headers, &file, &meta, chunk).await
}

pub(crate) fn redirect(status: StatusCode, location: &str) -> Answer {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn etag(v: &Version, mtime: u64, coding: Coding) -> String {
    let _ = v.ino;
    match coding {
        Coding::Identity => format!("\"{:x}-{:x}\"", mtime, v.len),
        c => format!("\"{:x}-{:x}-{}\"", mtime, v.len, c.name()),
    }
}

fn accepts(headers: &HeaderMap, coding: Coding) -> bool {
    let name = coding.name();
    headers.get_all(header::ACCEPT_ENCODING).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',').any(|item| {
                let mut it = item.split(';');
                let tok = it.next().unwrap_or("").trim();
                let q_zero = it.any(|p| {
                    let p = p.trim();
                    p.strip_prefix("q=")
                        .is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q <= 0.0))
                });
                (tok.eq_ignore_ascii_case(name) || tok == "*") && !q_zero
            })
        })
    })
}

fn not_modified(headers: &HeaderMap, tag: &str, mtime: u64) -> bool {
    if let Some(inm) = headers.get(header::IF_NONE_MATCH) {
        let Ok(s) = inm.to_str() else { return false };
        return s.split(',').any(|t| {
            let t = t.trim();
            t == "*" || t == tag || t.strip_prefix("W/") == Some(tag)
        });
    }
    if let Some(ims) = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    {
        let ims = ims.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        return mtime <= ims;
    }
    false
}

enum Range {
    Full,
    Part(u64, u64),
    Unsatisfiable,
}

fn parse_range(headers: &HeaderMap, len: u64, tag: &str, lm: &str) -> Range {
    let Some(v) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Range::Full;
    };
    if let Some(ir) = headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        if ir != tag && ir != lm {
            return Range::Full;
        }
    }
    let Some(spec) = v.strip_prefix("bytes=") else {
        return Range::Full;
    };
    if spec.contains(',') {
        return Range::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Range::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let Ok(n) = b.parse::<u64>() else {
            return Range::Full;
        };
        if n == 0 {
            return Range::Unsatisfiable;
        }
        (len.saturating_sub(n), len.saturating_sub(1))
    } else {
        let Ok(s) = a.parse::<u64>() else {
            return Range::Full;
        };
        let e = if b.is_empty() {
            len.saturating_sub(1)
        } else {
            match b.parse::<u64>() {
                Ok(e) if e >= s => e.min(len.saturating_sub(1)),
                _ => return Range::Full,
            }
        };
        (s, e)
    };
    if start >= len || len == 0 {
        return Range::Unsatisfiable;
    }
    Range::Part(start, end)
}

async fn send_file(
    site: &Site,
    cache: &FileCache,
    method: &Method,
    headers: &HeaderMap,
    file: &Path,
    meta: &std::fs::Metadata,
    chunk: usize,
) -> Answer {
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let ctype = mime::for_name(name);
    let version = Version::of(meta);
    let modified = meta.modified().unwrap_or(UNIX_EPOCH);
    let mtime = modified
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let lm = httpdate::fmt_http_date(modified);
    let compressible = site.compression.enabled && mime::compressible(ctype);
    let has_range = headers.contains_key(header::RANGE);

    // Content coding: precompressed sibling, else on the fly.
    let mut coding = Coding::Identity;
    let mut precompressed: Option<(PathBuf, std::fs::Metadata)> = None;
    if compressible && !has_range {
        for c in [Coding::Brotli, Coding::Gzip] {
            if !accepts(headers, c) {
                continue;
            }
            let mut sib = file.as_os_str().to_owned();
            sib.push(c.suffix());
            let sib = PathBuf::from(sib);
            if let Ok(m) = std::fs::metadata(&sib) {
                if m.is_file() {
                    coding = c;
                    precompressed = Some((sib, m));
                    break;
                }
            }
            if coding == Coding::Identity
                && version.len >= site.compression.min_bytes
                && version.len <= site.compression.max_bytes
            {
                coding = c;
                break;
            }
        }
    }

    let tag = etag(&version, mtime, coding);
    let mut resp = Response::builder()
        .header(header::LAST_MODIFIED, &lm)
        .header(header::ETAG, &tag);
    if compressible {
        resp = resp.header(header::VARY, "Accept-Encoding");
    }
    // As nginx: a 304 carries validators only.
    if not_modified(headers, &tag, mtime) {
        return finish(resp.status(StatusCode::NOT_MODIFIED), Body::empty());
    }
    resp = resp.header(header::CONTENT_TYPE, ctype);
    if coding != Coding::Identity {
        resp = resp.header(header::CONTENT_ENCODING, coding.name());
    } else if !has_range {
        resp = resp.header(header::ACCEPT_RANGES, "bytes");
    }

    if coding != Coding::Identity {
        let body = match precompressed {
            Some((sib, m)) => {
                let v = Version::of(&m);
                match load(cache, &sib, v, Coding::Identity).await {
                    Some(b) => b,
                    None => return site.error(StatusCode::NOT_FOUND),
                }
            }
            None => match compressed(cache, file, version, coding).await {
                Some(b) => b,
                None => return site.error(StatusCode::NOT_FOUND),
            },
        };
        return head_or(method, resp, body);
    }

    let (status, start, len) = match parse_range(headers, version.len, &tag, &lm) {
        Range::Full => (StatusCode::OK, 0, version.len),
        Range::Part(s, e) => {
            resp = resp.header(
                header::CONTENT_RANGE,
                format!("bytes {s}-{e}/{}", version.len),
            );
            (StatusCode::PARTIAL_CONTENT, s, e - s + 1)
        }
        Range::Unsatisfiable => {
            let mut r = site.error(StatusCode::RANGE_NOT_SATISFIABLE);
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", version.len)) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    resp = resp.status(status);
    if method == Method::HEAD {
        return finish(resp.header(header::CONTENT_LENGTH, len), Body::empty());
    }
    if version.len <= SMALL_FILE {
        let Some(all) = load(cache, file, version, Coding::Identity).await else {
            return site.error(StatusCode::NOT_FOUND);
        };
        let end = (start + len).min(all.len() as u64) as usize;
        return finish(resp, Body::bytes(all.slice(start as usize..end)));
    }
    let Ok(f) = std::fs::File::open(file) else {
        return site.error(StatusCode::NOT_FOUND);
    };
    finish(resp, Body::file(f, start, len, chunk))
}

fn head_or(method: &Method, resp: hyper::http::response::Builder, body: Bytes) -> Answer {
    if method == Method::HEAD {
        finish(
            resp.header(header::CONTENT_LENGTH, body.len()),
            Body::empty(),
        )
    } else {
        finish(resp, Body::bytes(body))
    }
}

fn finish(b: hyper::http::response::Builder, body: Body) -> Answer {
    b.body(body).unwrap_or_else(|_| {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}

/// Whole contents of a small file (cached).
async fn load(cache: &FileCache, path: &Path, v: Version, c: Coding) -> Option<Bytes> {
    if let Some(b) = cache.get(path, c, v) {
        return Some(b);
    }
    let b = Bytes::from(std::fs::read(path).ok()?);
    if v.len <= SMALL_FILE {
        cache.put(path, c, v, b.clone());
    }
    Some(b)
}

/// The file compressed with `c` (cached), compressed on a blocking thread.
async fn compressed(cache: &FileCache, path: &Path, v: Version, c: Coding) -> Option<Bytes> {
    if let Some(b) = cache.get(path, c, v) {
        return Some(b);
    }
    let p = path.to_path_buf();
    let out = tokio::task::spawn_blocking(move || -> Option<Vec<u8>> {
        let data = std::fs::read(&p).ok()?;
        compress(&data, c)
    })
    .await
    .ok()??;
    let b = Bytes::from(out);
    cache.put(path, c, v, b.clone());
    Some(b)
}

fn compress(data: &[u8], c: Coding) -> Option<Vec<u8>> {
    match c {
        Coding::Identity => Some(data.to_vec()),
        Coding::Gzip => {
            let mut e = flate2::write::GzEncoder::new(
                Vec::with_capacity(data.len() / 3 + 64),
                flate2::Compression::new(6),
            );
            e.write_all(data).ok()?;
            e.finish().ok()
        }
        Coding::Brotli => {
            let mut out = Vec::with_capacity(data.len() / 3 + 64);
            {
                let mut w = brotli::CompressorWriter::new(&mut out, 16 * 1024, 5, 22);
                w.write_all(data).ok()?;
            }
            Some(out)
        }
    }
}

fn html_escape(s: &str, out: &mut String) {
    for ch in s.chars() {
        match ch {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// HTML listing of a directory (directory browsing on).
fn listing(method: &Method, url: &str, dir: &Path) -> Answer {
    let Ok(rd) = std::fs::read_dir(dir) else {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::FORBIDDEN;
        return r;
    };
    let mut entries: Vec<(String, bool, u64, SystemTime)> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            if name.starts_with('.') {
                return None;
            }
            let m = e.metadata().ok()?;
            Some((
                name,
                m.is_dir(),
                m.len(),
                m.modified().unwrap_or(UNIX_EPOCH),
            ))
        })
        .collect();
    entries.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut h = String::with_capacity(512 + entries.len() * 120);
    h.push_str("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of ");
    html_escape(url, &mut h);
    h.push_str("</title></head><body><h1>Index of ");
    html_escape(url, &mut h);
    h.push_str("</h1><hr><pre>\n");
    if url != "/" {
        h.push_str("<a href=\"../\">../</a>\n");
    }
    for (name, is_dir, len, mtime) in entries {
        let href = percent_encoding::utf8_percent_encode(&name, crate::path::PATH_SET).to_string();
        h.push_str("<a href=\"");
        html_escape(&href, &mut h);
        if is_dir {
            h.push('/');
        }
        h.push_str("\">");
        html_escape(&name, &mut h);
        if is_dir {
            h.push('/');
        }
        h.push_str("</a>  ");
        h.push_str(&httpdate::fmt_http_date(mtime));
        if is_dir {
            h.push_str("  -\n");
        } else {
            h.push_str(&format!("  {len}\n"));
        }
    }
    h.push_str("</pre><hr></body></html>\n");
    let resp = Response::builder().header(header::CONTENT_TYPE, "text/html; charset=utf-8");
    head_or(method, resp, Bytes::from(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hm(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn ranges() {
        let r = |v: &str| match parse_range(&hm(&[("range", v)]), 100, "t", "d") {
            Range::Full => (0, 0, 'f'),
            Range::Part(a, b) => (a, b, 'p'),
            Range::Unsatisfiable => (0, 0, 'u'),
        };
        assert_eq!(r("bytes=0-9"), (0, 9, 'p'));
        assert_eq!(r("bytes=90-"), (90, 99, 'p'));
        assert_eq!(r("bytes=-10"), (90, 99, 'p'));
        assert_eq!(r("bytes=50-500"), (50, 99, 'p'));
        assert_eq!(r("bytes=100-"), (0, 0, 'u'));
        assert_eq!(r("bytes=0-1,5-6"), (0, 0, 'f'));
        assert_eq!(r("items=0-1"), (0, 0, 'f'));
    }

    #[test]
    fn negotiation() {
        assert!(accepts(
            &hm(&[("accept-encoding", "gzip, br")]),
            Coding::Brotli
        ));
        assert!(!accepts(
            &hm(&[("accept-encoding", "gzip;q=0")]),
            Coding::Gzip
        ));
        assert!(!accepts(&hm(&[]), Coding::Gzip));
        let d = b"hello hello hello hello hello hello".repeat(20);
        let gz = compress(&d, Coding::Gzip).unwrap();
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut out).unwrap();
        assert_eq!(out, d);
        assert!(compress(&d, Coding::Brotli).unwrap().len() < d.len());
    }
}
