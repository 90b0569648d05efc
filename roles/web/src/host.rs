//! The host a request is for, checked as RFC 9112 §3.2 and RFC 9113
//! §8.3.1 ask.
//!
//! - HTTP/1.1: exactly one `Host` (none, or two, is 400), with a valid
//!   value. An absolute-form target (`GET http://a.example/ HTTP/1.1`)
//!   names the host itself: it routes by the target's authority, and the
//!   `Host` it must still carry is checked but not used.
//! - HTTP/1.0: `Host` is optional (without one the request goes to the
//!   listener's catch-all binding); two are 400.
//! - HTTP/2: `:authority`, else `host`; one of them is required, and when
//!   both come they must be the same (compared without case), else 400.
//!
//! A valid host is a registered name (letters, digits and `-._~!$&'()*+,;=`,
//! no empty label such as `a..b`) or an IP literal in brackets, followed by
//! an optional `:PORT` of digits. No user information (`user@host`), no
//! `%`, `/`, `\`, spaces or controls.

use hyper::header::{self, HeaderMap};
use hyper::{Uri, Version};

/// Why a request's host was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadHost;

/// The host of a request (`name[:port]`, as sent), or None for an
/// HTTP/1.0 request without one.
pub(crate) fn of<'a>(
    version: Version,
    uri: &'a Uri,
    headers: &'a HeaderMap,
) -> Result<Option<&'a str>, BadHost> {
    let mut all = headers.get_all(header::HOST).iter();
    let host = match all.next() {
        Some(h) => Some(h.to_str().ok().filter(|h| valid(h)).ok_or(BadHost)?),
        None => None,
    };
    if all.next().is_some() {
        return Err(BadHost);
    }
    let authority = match uri.authority() {
        Some(a) if valid(a.as_str()) => Some(a.as_str()),
        Some(_) => return Err(BadHost),
        None => None,
    };
    match (version, authority, host) {
        (Version::HTTP_2, Some(a), Some(h)) if !a.eq_ignore_ascii_case(h) => Err(BadHost),
        (Version::HTTP_2, None, None) => Err(BadHost),
        (Version::HTTP_11, _, None) => Err(BadHost),
        (_, Some(a), _) => Ok(Some(a)),
        (_, None, h) => Ok(h),
    }
}

/// Whether `h` is `name[:port]` or `[literal][:port]`.
pub(crate) fn valid(h: &str) -> bool {
    let b = h.as_bytes();
    let (name_ok, rest) = if b.first() == Some(&b'[') {
        match b.iter().position(|&c| c == b']') {
            Some(end) => (
                end > 1
                    && b[1..end]
                        .iter()
                        .all(|&c| c.is_ascii_hexdigit() || c == b':' || c == b'.'),
                &b[end + 1..],
            ),
            None => return false,
        }
    } else {
        let end = b.iter().position(|&c| c == b':').unwrap_or(b.len());
        let name = &b[..end];
        (
            !name.is_empty()
                && name
                    .iter()
                    .all(|&c| c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&c))
                && !name.windows(2).any(|w| w == b".."),
            &b[end..],
        )
    };
    name_ok
        && match rest.split_first() {
            None => true,
            Some((b':', port)) => port.len() <= 5 && port.iter().all(u8::is_ascii_digit),
            Some(_) => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(version: Version, uri: &str, hosts: &[&str]) -> Result<Option<String>, BadHost> {
        let uri: Uri = uri.parse().unwrap();
        let mut h = HeaderMap::new();
        for v in hosts {
            h.append(header::HOST, v.parse().unwrap());
        }
        of(version, &uri, &h).map(|o| o.map(str::to_owned))
    }

    #[test]
    fn http11_needs_one_valid_host() {
        let v = Version::HTTP_11;
        assert_eq!(req(v, "/", &["a.example"]), Ok(Some("a.example".into())));
        assert_eq!(
            req(v, "/", &["a.example:8080"]),
            Ok(Some("a.example:8080".into()))
        );
        assert_eq!(req(v, "/", &["[::1]:80"]), Ok(Some("[::1]:80".into())));
        assert_eq!(req(v, "/", &[]), Err(BadHost));
        assert_eq!(req(v, "/", &["a", "b"]), Err(BadHost));
        assert_eq!(req(v, "/", &["a", "a"]), Err(BadHost));
        for bad in [
            "", "a b", "a/b", "a\\b", "u@a", "a:b", "a:123456", "[::1", "[]", "a..b", "a%41",
            "[zz]",
        ] {
            assert_eq!(req(v, "/", &[bad]), Err(BadHost), "{bad:?}");
        }
    }

    #[test]
    fn absolute_form_routes_by_its_authority() {
        let v = Version::HTTP_11;
        assert_eq!(
            req(v, "http://b.example/x", &["a.example"]),
            Ok(Some("b.example".into()))
        );
        assert_eq!(req(v, "http://b.example/x", &[]), Err(BadHost));
        assert_eq!(req(v, "http://u@b.example/x", &["b.example"]), Err(BadHost));
    }

    #[test]
    fn http10_may_go_without() {
        assert_eq!(req(Version::HTTP_10, "/", &[]), Ok(None));
        assert_eq!(req(Version::HTTP_10, "/", &["a", "b"]), Err(BadHost));
    }

    #[test]
    fn h2_authority_and_host_agree() {
        let v = Version::HTTP_2;
        assert_eq!(
            req(v, "https://a.example/", &[]),
            Ok(Some("a.example".into()))
        );
        assert_eq!(
            req(v, "https://a.example/", &["A.example"]),
            Ok(Some("a.example".into()))
        );
        assert_eq!(req(v, "https://a.example/", &["b.example"]), Err(BadHost));
        assert_eq!(req(v, "/", &["b.example"]), Ok(Some("b.example".into())));
        assert_eq!(req(v, "/", &[]), Err(BadHost));
    }
}
