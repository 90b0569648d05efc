//! The canonical request path: what every rule of a site matches.
//!
//! Job: turn the path of a request target, as sent, into the one spelling
//! that IP rules, request filtering, redirects, Basic authentication, app
//! mounts and static content all see, so that a protected path is
//! protected however it is spelled (`//admin`, `/./admin`, `/%2fadmin`,
//! `/%2e/admin` are all `/admin`).
//!
//! Steps, once, in this order:
//! 1. The path must start with `/` (origin form; `*` and the like: 400).
//! 2. `%XX` is decoded once. What is left with a `%` (`%25` decoded, or a
//!    malformed escape) is refused: a second decoding somewhere would see
//!    another path.
//! 3. The result must be UTF-8 without NUL or `\`: a backslash is refused
//!    whether sent as is or as `%5c`, since some clients and file systems
//!    take it for a separator.
//! 4. An encoded slash (`%2f`) is a separator like `/`, as nginx treats
//!    it: `/%2fadmin` is `/admin`.
//! 5. Empty and `.` segments are dropped; a `..` segment is refused (it
//!    would reach above where the client says it is).
//! 6. A path that ended with `/` (or `/.`) keeps one trailing `/`.
//!
//! Refusals are 400 with IIS's substatus 11 in the log.
//!
//! Cost: a path with no `%`, `\`, `//` and no `.` or `..` segment, the
//! usual case, is checked by one scan and borrowed as it is (no
//! allocation).

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadPath;

/// The canonical form of `raw`, the path of a request target as sent.
pub(crate) fn canonical(raw: &str) -> Result<Cow<'_, str>, BadPath> {
    if is_canonical(raw.as_bytes())? {
        return Ok(Cow::Borrowed(raw));
    }
    let decoded = percent_decode_str(raw).decode_utf8().map_err(|_| BadPath)?;
    if decoded.contains(['%', '\\', '\0']) {
        return Err(BadPath);
    }
    let mut out = String::with_capacity(decoded.len());
    let mut trailing = false;
    for seg in decoded.split('/') {
        trailing = seg.is_empty() || seg == ".";
        if trailing {
            continue;
        }
        if seg == ".." {
            return Err(BadPath);
        }
        out.push('/');
        out.push_str(seg);
    }
    if trailing || out.is_empty() {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

/// Whether `p` is already canonical (Ok(true)), needs the slow path
/// (Ok(false)), or is refused outright.
fn is_canonical(p: &[u8]) -> Result<bool, BadPath> {
    if p.first() != Some(&b'/') {
        return Err(BadPath);
    }
    // Start of the current segment (after its '/').
    let mut start = 1;
    for (i, &b) in p.iter().enumerate().skip(1) {
        match b {
            b'%' | b'\\' | 0 => return Ok(false),
            b'/' => {
                if dot_or_empty(&p[start..i]) {
                    return Ok(false);
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    // The last segment may be empty (a trailing '/'), not '.' or '..'.
    let last = &p[start..];
    Ok(last != b"." && last != b"..")
}

fn dot_or_empty(seg: &[u8]) -> bool {
    matches!(seg, b"" | b"." | b"..")
}

/// `canonical` put back into a URL path: characters that cannot stand in a
/// path, or would change its meaning, are percent-encoded (UTF-8 bytes as
/// well). What is left never starts with `//`.
pub(crate) fn encode(path: &str) -> Cow<'_, str> {
    percent_encoding::utf8_percent_encode(path, PATH_SET).into()
}

/// Characters escaped in a path sent back out (a `Location`, an app's
/// request target): controls, space, the delimiters of a URL and `%`.
pub(crate) const PATH_SET: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'%');

#[cfg(test)]
mod tests {
    use super::*;

    fn c(p: &str) -> Result<String, BadPath> {
        canonical(p).map(Cow::into_owned)
    }

    #[test]
    fn the_usual_path_is_borrowed() {
        for p in ["/", "/a", "/a/b.txt", "/a/", "/a.b/.c/d..e/"] {
            assert!(
                matches!(canonical(p), Ok(Cow::Borrowed(x)) if x == p),
                "{p}"
            );
        }
    }

    #[test]
    fn every_spelling_of_a_path_is_one_path() {
        for p in [
            "//admin/secret.txt",
            "/./admin/secret.txt",
            "/%2fadmin/secret.txt",
            "/%2Fadmin/secret.txt",
            "/%2e/admin/secret.txt",
            "/admin//secret.txt",
            "/admin/./secret.txt",
            "/%61dmin/secret.txt",
            "///admin/.//secret.txt",
        ] {
            assert_eq!(c(p), Ok("/admin/secret.txt".into()), "{p}");
        }
        assert_eq!(c("//sub"), Ok("/sub".into()));
        assert_eq!(c("/%2Fassets"), Ok("/assets".into()));
        assert_eq!(c("/sub/."), Ok("/sub/".into()));
        assert_eq!(c("/sub//"), Ok("/sub/".into()));
        assert_eq!(c("//"), Ok("/".into()));
        assert_eq!(c("/."), Ok("/".into()));
        assert_eq!(c("/a%20b"), Ok("/a b".into()));
    }

    #[test]
    fn what_could_mean_two_things_is_refused() {
        for p in [
            "/..",
            "/../etc/passwd",
            "/a/../b",
            "/%2e%2e/etc",
            "/a/%2E%2E",
            "/a%2f..%2fb",
            "/%252e%252e/",
            "/%zz",
            "/a\\b",
            "/a%5cb",
            "/a%00",
            "/%ff",
            "*",
            "",
            "a/b",
        ] {
            assert_eq!(c(p), Err(BadPath), "{p}");
        }
    }

    #[test]
    fn encoding_never_gives_two_leading_slashes() {
        assert_eq!(encode("/a b/?#%"), "/a%20b/%3F%23%25");
        assert_eq!(encode("/é"), "/%C3%A9");
        for p in ["//x", "/%2f/x", "/./%2Fx"] {
            let e = encode(&canonical(p).unwrap()).into_owned();
            assert!(!e.starts_with("//"), "{p} -> {e}");
        }
    }
}
