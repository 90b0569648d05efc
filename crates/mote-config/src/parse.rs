//! String forms of settings values, checked while deserializing so that errors
//! point at the offending value.

use std::fmt;
use std::str::FromStr;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::settings::{Ipv4Mode, Ipv6Mode, Port, Protocol};

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
                text.parse().map_err(|()| {
                    de::Error::invalid_value(de::Unexpected::Str(&text), &$expecting)
                })
            }
        }
    };
}

string_serde!(Ipv4Mode, "\"dhcp\", \"off\" or an address with prefix such as \"10.0.0.5/24\"");
string_serde!(Ipv6Mode, "\"slaac\", \"off\" or an address with prefix such as \"fd00::5/64\"");

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
                    Ok(number) if number > 0 => Ok(Port { number, protocol: Protocol::Tcp }),
                    _ => Err(E::invalid_value(de::Unexpected::Signed(v), &self)),
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Port, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(-1))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Port, E> {
                v.parse().map_err(|()| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        d.deserialize_any(Visit)
    }
}
