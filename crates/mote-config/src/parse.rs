//! String forms of settings values, checked while deserializing so that errors
//! point at the offending value and say what is allowed, plus the parsers for
//! values that stay strings in the schema (`owner`, `mode`, `user`).

use std::fmt;
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::manifest::Output;
use crate::settings::{Ipv4Mode, Ipv6Mode, Policy, Port, Protocol, RestartPolicy};

macro_rules! string_serde {
    ($ty:ty, $expecting:expr) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse()
                    .map_err(|()| de::Error::invalid_value(de::Unexpected::Str(&text), &$expecting))
            }
        }
    };
}

string_serde!(
    Ipv4Mode,
    "\"dhcp\", \"off\" or an address with prefix such as \"10.0.0.5/24\""
);
string_serde!(
    Ipv6Mode,
    "\"slaac\", \"off\" or an address with prefix such as \"fd00::5/64\""
);

impl FromStr for Ipv4Mode {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "dhcp" => Ok(Self::Dhcp),
            "off" => Ok(Self::Off),
            _ => s.parse().map(Self::Static).map_err(|_| ()),
        }
    }
}

impl fmt::Display for Ipv4Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dhcp => f.write_str("dhcp"),
            Self::Off => f.write_str("off"),
            Self::Static(net) => net.fmt(f),
        }
    }
}

impl FromStr for Ipv6Mode {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "slaac" => Ok(Self::Slaac),
            "off" => Ok(Self::Off),
            _ => s.parse().map(Self::Static).map_err(|_| ()),
        }
    }
}

impl fmt::Display for Ipv6Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Slaac => f.write_str("slaac"),
            Self::Off => f.write_str("off"),
            Self::Static(net) => net.fmt(f),
        }
    }
}

impl FromStr for Port {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let (number, protocol) = match s.split_once('/') {
            Some((n, "tcp")) => (n, Protocol::Tcp),
            Some((n, "udp")) => (n, Protocol::Udp),
            Some(_) => return Err(()),
            None => (s, Protocol::Tcp),
        };
        match number.parse::<u16>() {
            Ok(0) | Err(_) => Err(()),
            Ok(number) => Ok(Self { number, protocol }),
        }
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match self.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        };
        write!(f, "{}/{proto}", self.number)
    }
}

impl Serialize for Port {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A port is written `8080` or `"53/udp"`.
impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl de::Visitor<'_> for Visit {
            type Value = Port;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port 1-65535, or \"PORT/tcp\" or \"PORT/udp\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Port, E> {
                match u16::try_from(v) {
                    Ok(number) if number > 0 => Ok(Port {
                        number,
                        protocol: Protocol::Tcp,
                    }),
                    _ => Err(E::invalid_value(de::Unexpected::Signed(v), &self)),
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Port, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(-1))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Port, E> {
                v.parse()
                    .map_err(|()| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        d.deserialize_any(Visit)
    }
}

/// Enums written as one of a few words. The hand-written `Deserialize` lists the
/// words both for a wrong word and for a wrong type (serde's derive says only
/// "wanted string or table" for the latter under `toml`).
macro_rules! keyword_serde {
    ($ty:ident { $($word:literal => $variant:ident),+ $(,)? }) => {
        impl $ty {
            /// The words this setting is written as, in TOML and JSON.
            pub const WORDS: &'static [&'static str] = &[$($word),+];
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Visit;
                impl de::Visitor<'_> for Visit {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str(&crate::invalid::quote_all($ty::WORDS))
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$ty, E> {
                        match v {
                            $($word => Ok($ty::$variant),)+
                            _ => Err(E::unknown_variant(v, $ty::WORDS)),
                        }
                    }
                }
                d.deserialize_str(Visit)
            }
        }
    };
}

keyword_serde!(Policy { "deny" => Deny, "allow" => Allow });
keyword_serde!(Protocol { "tcp" => Tcp, "udp" => Udp });
keyword_serde!(RestartPolicy { "always" => Always, "on-failure" => OnFailure, "never" => Never });
keyword_serde!(Output {
    "initrd" => Initrd,
    "uki" => Uki,
    "raw" => Raw,
    "qcow2" => Qcow2,
    "vhdx" => Vhdx,
    "vhd" => Vhd,
});

/// A value parsed from a string, with an error that says what is allowed
/// (the standard library's address parsers only say "invalid IP address syntax").
pub(crate) trait Described: FromStr {
    /// What the string must look like.
    const EXPECTING: &'static str;
}

impl Described for Ipv4Addr {
    const EXPECTING: &'static str = "an IPv4 address such as \"192.0.2.1\"";
}
impl Described for Ipv6Addr {
    const EXPECTING: &'static str = "an IPv6 address such as \"2001:db8::1\"";
}
impl Described for IpAddr {
    const EXPECTING: &'static str = "an IPv4 or IPv6 address such as \"192.0.2.53\"";
}
impl Described for ipnet::IpNet {
    const EXPECTING: &'static str =
        "a network with prefix such as \"192.0.2.0/24\" or \"2001:db8::/32\"";
}

struct Parsed<T>(T);

impl<'de, T: Described> Deserialize<'de> for Parsed<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<T>(PhantomData<T>);
        impl<T: Described> de::Visitor<'_> for Visit<T> {
            type Value = Parsed<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(T::EXPECTING)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Parsed<T>, E> {
                v.parse()
                    .map(Parsed)
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        d.deserialize_str(Visit(PhantomData))
    }
}

/// `deserialize_with` for an optional address or network.
pub(crate) fn optional<'de, D: Deserializer<'de>, T: Described>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Ok(Option::<Parsed<T>>::deserialize(d)?.map(|p| p.0))
}

/// `deserialize_with` for a list of addresses.
pub(crate) fn list<'de, D: Deserializer<'de>, T: Described>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Vec::<Parsed<T>>::deserialize(d)?
        .into_iter()
        .map(|p| p.0)
        .collect())
}

/// A string setting that does not parse: what it was and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("found {found:?}; allowed: {allowed}")]
pub struct ValueError {
    /// The string as written.
    pub found: String,
    /// What would have been accepted.
    pub allowed: &'static str,
}

impl ValueError {
    fn new(found: &str, allowed: &'static str) -> Self {
        Self {
            found: found.to_owned(),
            allowed,
        }
    }
}

const OWNER: &str = "\"UID:GID\" with numbers below 4294967295, such as \"0:0\"";
const MODE: &str = "an octal mode up to \"7777\", such as \"0755\" or \"644\"";
const USER: &str = "\"root\", \"nobody\", \"UID\" or \"UID:GID\" with numbers below 4294967295";

/// A uid or gid: decimal digits only, and not 4294967295 (which means "no change"
/// to `chown`).
fn id(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|&id| id != u32::MAX)
}

/// Parses a file owner, `"UID:GID"` such as `"0:0"`.
pub fn parse_owner(s: &str) -> Result<(u32, u32), ValueError> {
    s.split_once(':')
        .and_then(|(uid, gid)| Some((id(uid)?, id(gid)?)))
        .ok_or_else(|| ValueError::new(s, OWNER))
}

/// Parses an octal file mode, `"0755"` or `"755"`, up to `0o7777`.
pub fn parse_mode(s: &str) -> Result<u32, ValueError> {
    if s.is_empty() || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(ValueError::new(s, MODE));
    }
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|&mode| mode <= 0o7777)
        .ok_or_else(|| ValueError::new(s, MODE))
}

/// Parses a service's user: `root` is `(0, 0)`, `nobody` is `(65534, 65534)`,
/// `"1000"` is `(1000, 1000)` and `"1000:100"` is `(1000, 100)`.
pub fn parse_user(s: &str) -> Result<(u32, u32), ValueError> {
    let ids = match s {
        "root" => Some((0, 0)),
        "nobody" => Some((65534, 65534)),
        _ => match s.split_once(':') {
            Some((uid, gid)) => id(uid).zip(id(gid)),
            None => id(s).map(|uid| (uid, uid)),
        },
    };
    ids.ok_or_else(|| ValueError::new(s, USER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners() {
        assert_eq!(parse_owner("0:0"), Ok((0, 0)));
        assert_eq!(parse_owner("1000:100"), Ok((1000, 100)));
        for bad in [
            "",
            "0",
            "root:root",
            "1:",
            ":1",
            "-1:0",
            "+1:0",
            "1:2:3",
            "4294967295:0",
        ] {
            assert!(parse_owner(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(
            parse_owner("a:b").unwrap_err().to_string(),
            format!("found \"a:b\"; allowed: {OWNER}")
        );
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0755"), Ok(0o755));
        assert_eq!(parse_mode("755"), Ok(0o755));
        assert_eq!(parse_mode("4755"), Ok(0o4755));
        assert_eq!(parse_mode("7777"), Ok(0o7777));
        assert_eq!(parse_mode("0"), Ok(0));
        for bad in ["", "0o755", "+755", "758", "17777", "rwx", " 755"] {
            assert!(parse_mode(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn users() {
        assert_eq!(parse_user("root"), Ok((0, 0)));
        assert_eq!(parse_user("nobody"), Ok((65534, 65534)));
        assert_eq!(parse_user("1000"), Ok((1000, 1000)));
        assert_eq!(parse_user("1000:100"), Ok((1000, 100)));
        for bad in ["", "www-data", "1000:", "Root", "-5", "1000:100:1"] {
            assert!(parse_user(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn port_forms() {
        #[derive(Deserialize)]
        struct P {
            ports: Vec<Port>,
        }
        let p: P = toml::from_str(r#"ports = [8080, "53/udp", "443/tcp", "22"]"#).unwrap();
        let tcp = |number| Port {
            number,
            protocol: Protocol::Tcp,
        };
        assert_eq!(
            p.ports,
            vec![
                tcp(8080),
                Port {
                    number: 53,
                    protocol: Protocol::Udp
                },
                tcp(443),
                tcp(22)
            ]
        );
        for bad in [
            "[0]",
            "[65536]",
            "[-1]",
            r#"["0/udp"]"#,
            r#"["53/sctp"]"#,
            r#"["http"]"#,
            "[true]",
        ] {
            let text = format!("ports = {bad}");
            assert!(
                toml::from_str::<P>(&text).is_err(),
                "{bad} should be rejected"
            );
        }
        assert_eq!(tcp(8080).to_string(), "8080/tcp");
        assert_eq!(serde_json::to_string(&tcp(80)).unwrap(), "\"80/tcp\"");
        let back: Port = serde_json::from_str("\"53/udp\"").unwrap();
        assert_eq!(
            back,
            Port {
                number: 53,
                protocol: Protocol::Udp
            }
        );
    }

    #[test]
    fn keywords_list_their_words() {
        #[derive(Debug, Deserialize)]
        struct R {
            #[allow(dead_code)]
            restart: RestartPolicy,
        }
        let err = toml::from_str::<R>("restart = 3").unwrap_err();
        assert!(
            err.message()
                .contains(r#"expected "always", "on-failure", "never""#),
            "{}",
            err.message()
        );
        let r: R = toml::from_str("restart = \"on-failure\"").unwrap();
        assert_eq!(r.restart, RestartPolicy::OnFailure);
    }
}
