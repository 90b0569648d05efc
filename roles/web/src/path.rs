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
pub struct BadPath;

/// The canonical form of `raw`, the path of a request target as sent.
pub fn canonical(raw: &str) -> Result<Cow<'_, str>, BadPath> {
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
pub fn encode(path: &str) -> Cow<'_, str> {
    percent_encoding::utf8_percent_encode(path, PATH_SET).into()
}

/// Characters escaped in a path sent back out (a `Location`, an app's
/// request target): controls, space, the delimiters of a URL and `%`.
pub const PATH_SET: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
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

/// Property tests of the canonical path (the request-path fuzz target of
/// issue 9): arbitrary spellings built from the characters that matter.
/// `MOTE_FUZZ_CASES` sets the number of cases (default 10,000);
/// `cargo xtask fuzz` runs them longer.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn config() -> ProptestConfig {
        // `cargo xtask fuzz` gives a deadline (MOTE_FUZZ_UNTIL, Unix
        // seconds): about 5,000 cases a second fill it in a release build.
        let until = std::env::var("MOTE_FUZZ_UNTIL")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map(|until| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                // Two properties share the time.
                (until.saturating_sub(now) * 5_000 / 2).max(1) as u32
            });
        let cases = std::env::var("MOTE_FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .or(until)
            .unwrap_or(10_000);
        ProptestConfig {
            cases,
            ..ProptestConfig::default()
        }
    }

    /// Paths made of the pieces that spell one path many ways.
    fn spelling() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("/".to_owned()),
            Just("//".to_owned()),
            Just(".".to_owned()),
            Just("..".to_owned()),
            Just("%2f".to_owned()),
            Just("%2F".to_owned()),
            Just("%2e".to_owned()),
            Just("%25".to_owned()),
            Just("%5c".to_owned()),
            Just("\\".to_owned()),
            Just("%00".to_owned()),
            Just("%c3%a9".to_owned()),
            Just("%ff".to_owned()),
            Just("%".to_owned()),
            "[a-z]{1,3}",
            any::<char>().prop_map(String::from),
        ];
        proptest::collection::vec(piece, 0..12).prop_map(|v| format!("/{}", v.concat()))
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn a_canonical_path_is_one_plain_spelling(raw in spelling()) {
            if let Ok(c) = canonical(&raw) {
                prop_assert!(c.starts_with('/'), "{raw:?} → {c:?}");
                prop_assert!(!c.contains("//"), "{raw:?} → {c:?}");
                prop_assert!(!c.contains(['%', '\\', '\0']), "{raw:?} → {c:?}");
                prop_assert!(
                    c.split('/').all(|s| s != "." && s != ".."),
                    "{raw:?} → {c:?}"
                );
                // Canonical twice is canonical once, and the fast path
                // agrees with the slow one.
                prop_assert!(
                    matches!(canonical(&c), Ok(Cow::Borrowed(again)) if again == c),
                    "{raw:?} → {c:?} is not canonical itself"
                );
                // What goes back out (a Location) is this site's path.
                let out = encode(&c);
                prop_assert!(!out.starts_with("//"), "{raw:?} → {out:?}");
                let back = percent_decode_str(&out).decode_utf8().unwrap();
                prop_assert_eq!(back.as_ref(), c.as_ref());
            }
        }

        #[test]
        fn empty_and_dot_segments_and_encoded_slashes_change_nothing(
            raw in spelling(),
            at in 0usize..12,
            extra in prop_oneof![Just("/"), Just("/."), Just("%2f"), Just("/%2e")],
        ) {
            // Insert an extra separator spelling at a segment boundary:
            // before a '/' other than the first, or at the end.
            let cuts: Vec<usize> = raw
                .match_indices('/')
                .map(|(i, _)| i)
                .filter(|i| *i > 0)
                .chain([raw.len()])
                .collect();
            let cut = cuts[at % cuts.len()];
            let spelled = format!("{}{extra}{}", &raw[..cut], &raw[cut..]);
            let (a, b) = (canonical(&raw), canonical(&spelled));
            if let (Ok(a), Ok(b)) = (&a, &b) {
                // A trailing "/." or "/" may add the one trailing slash.
                prop_assert_eq!(a.trim_end_matches('/'), b.trim_end_matches('/'),
                    "{:?} and {:?}", raw, spelled);
            } else if a.is_ok() {
                prop_assert!(false, "{raw:?} is fine but {spelled:?} is refused");
            }
        }
    }
}
