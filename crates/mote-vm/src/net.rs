//! The node's network: [`NetMode`] (what the caller asks for, parsed without
//! touching the system) and [`mac_address`] (the node's stable MAC).
//!
//! - `user`: QEMU's user-mode network (slirp). The node reaches out through
//!   the host; the host reaches in only through port forwards on 127.0.0.1.
//!   Nothing to set up, no privilege; the default for development.
//! - `tap=NAME`: an existing tap device, made by the caller (`ip tuntap add
//!   NAME mode tap user $USER`, then brought up and bridged or addressed as the
//!   caller likes). The node sits on a real segment.
//! - `tap`: mote makes a tap named after the node (`mote-NAME`, or a hash when
//!   that is longer than an interface name may be) and brings it up. The tap
//!   is not persistent: QEMU holds its only file descriptor, so the kernel
//!   removes it when QEMU exits, killed or not. Needs `CAP_NET_ADMIN` (root).
//! - `bridge=NAME`: as `tap`, and the tap is enslaved to bridge NAME. Without
//!   the privilege to make a tap, QEMU's bridge helper does it (it must be
//!   setuid and `/etc/qemu/bridge.conf` must say `allow NAME`).
//!
//! Port forwards exist only on `user`; on a real segment the node is reached
//! at its own address.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How the node is networked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum NetMode {
    /// QEMU's user-mode network with port forwards (`user`).
    #[default]
    User,
    /// A tap device: the caller's (`tap=NAME`), or one mote makes and QEMU's
    /// exit removes (`tap`).
    Tap {
        /// The caller's tap; `None` asks mote to make one.
        name: Option<String>,
    },
    /// A tap mote makes and enslaves to this bridge (`bridge=NAME`).
    Bridge {
        /// The bridge.
        name: String,
    },
}

impl NetMode {
    /// Whether port forwards apply (only on the user-mode network).
    pub fn forwards(&self) -> bool {
        matches!(self, Self::User)
    }
}

/// A network mode that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NetModeError {
    /// Not one of the forms.
    #[error("network {input:?} is not user, tap, tap=NAME or bridge=NAME")]
    Syntax {
        /// What was given.
        input: String,
    },
    /// An interface name Linux would refuse.
    #[error("network {input:?}: {name:?} {reason}: an interface name has 1 to 15 letters, digits, '-', '_' or '.'")]
    Interface {
        /// What was given.
        input: String,
        /// The interface name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Linux's interface name limit (`IFNAMSIZ` less the NUL).
pub(crate) const MAX_IFNAME: usize = 15;

/// Check an interface name the way the kernel's `dev_valid_name` does, and
/// a little stricter (no characters a shell or QEMU option would mangle).
pub(crate) fn check_ifname(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("is empty");
    }
    if name.len() > MAX_IFNAME {
        return Err("is longer than 15 bytes");
    }
    if name == "." || name == ".." {
        return Err("is not a name");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err("has other characters");
    }
    Ok(())
}

impl FromStr for NetMode {
    type Err = NetModeError;

    /// `user`, `tap`, `tap=NAME`, `bridge=NAME`.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let iface = |name: &str| {
            check_ifname(name)
                .map(|()| name.to_string())
                .map_err(|reason| NetModeError::Interface {
                    input: input.to_string(),
                    name: name.to_string(),
                    reason,
                })
        };
        match input.split_once('=') {
            None if input == "user" => Ok(Self::User),
            None if input == "tap" => Ok(Self::Tap { name: None }),
            Some(("tap", name)) => Ok(Self::Tap {
                name: Some(iface(name)?),
            }),
            Some(("bridge", name)) => Ok(Self::Bridge { name: iface(name)? }),
            _ => Err(NetModeError::Syntax {
                input: input.to_string(),
            }),
        }
    }
}

impl fmt::Display for NetMode {
    /// The form [`NetMode::from_str`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User => f.write_str("user"),
            Self::Tap { name: None } => f.write_str("tap"),
            Self::Tap { name: Some(name) } => write!(f, "tap={name}"),
            Self::Bridge { name } => write!(f, "bridge={name}"),
        }
    }
}

impl TryFrom<String> for NetMode {
    type Error = NetModeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<NetMode> for String {
    fn from(mode: NetMode) -> Self {
        mode.to_string()
    }
}

/// FNV-1a, 64 bits: a hash that stays the same across Rust releases (std's
/// `DefaultHasher` may not), for names derived from a node's name.
pub(crate) fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The node's MAC address, `52:54:xx:xx:xx:xx`: QEMU's customary prefix
/// (locally administered, unicast) and four bytes of a stable hash of the
/// node's name. The same name gets the same MAC on every boot and host, so
/// a DHCP server hands it the same lease and a scan finds it at the same
/// place; two nodes on one segment collide with odds of 1 in 2³².
pub fn mac_address(node: &str) -> String {
    let h = stable_hash(node.as_bytes()).to_be_bytes();
    format!("52:54:{:02x}:{:02x}:{:02x}:{:02x}", h[0], h[1], h[2], h[3])
}

/// The tap mote makes for a node: `mote-NAME` when that fits in an
/// interface name, else `mote-` and 10 hex digits of a stable hash.
pub fn tap_name(node: &str) -> String {
    let plain = format!("mote-{node}");
    if check_ifname(&plain).is_ok() {
        return plain;
    }
    let h = stable_hash(node.as_bytes());
    format!("mote-{:010x}", h >> 24)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print_back() {
        for (text, mode) in [
            ("user", NetMode::User),
            ("tap", NetMode::Tap { name: None }),
            (
                "tap=tap0",
                NetMode::Tap {
                    name: Some("tap0".into()),
                },
            ),
            (
                "bridge=br-lan.1",
                NetMode::Bridge {
                    name: "br-lan.1".into(),
                },
            ),
        ] {
            assert_eq!(text.parse::<NetMode>(), Ok(mode.clone()), "{text}");
            assert_eq!(mode.to_string(), text);
            let json = serde_json::to_string(&mode).unwrap();
            assert_eq!(json, format!("{text:?}"));
            assert_eq!(serde_json::from_str::<NetMode>(&json).unwrap(), mode);
        }
        assert_eq!(NetMode::default(), NetMode::User);
        assert!(NetMode::User.forwards());
        assert!(!NetMode::Tap { name: None }.forwards());
    }

    #[test]
    fn bad_modes_say_what_is_allowed() {
        for bad in ["", "slirp", "bridge", "user=x", "tap=", "Tap"] {
            let err = bad.parse::<NetMode>().unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.contains("bridge=NAME") || msg.contains("interface name"),
                "{bad}: {msg}"
            );
        }
        let err = "bridge=a-very-long-bridge".parse::<NetMode>().unwrap_err();
        assert!(err.to_string().contains("longer than 15"), "{err}");
        let err = "tap=a/b".parse::<NetMode>().unwrap_err();
        assert!(matches!(err, NetModeError::Interface { .. }), "{err}");
        assert!("tap=..".parse::<NetMode>().is_err());
    }

    #[test]
    fn macs_are_stable_local_unicast_and_differ_by_name() {
        let a = mac_address("hello");
        assert_eq!(a, mac_address("hello"));
        assert_ne!(a, mac_address("hello2"));
        assert!(a.starts_with("52:54:"), "{a}");
        assert_eq!(a.len(), 17);
        // Pinned: a change here changes every node's DHCP lease.
        assert_eq!(mac_address("web01"), "52:54:66:13:be:2e");
        let first = u8::from_str_radix(&a[..2], 16).unwrap();
        assert_eq!(first & 0b11, 0b10, "locally administered, unicast");
    }

    #[test]
    fn tap_names_fit_in_an_interface_name() {
        assert_eq!(tap_name("hello"), "mote-hello");
        assert_eq!(tap_name("node-0123"), "mote-node-0123");
        let long = tap_name("a-rather-long-node-name");
        assert!(long.starts_with("mote-") && long.len() == 15, "{long}");
        assert_ne!(long, tap_name("a-rather-long-node-namf"));
        assert!(check_ifname(&long).is_ok());
    }
}
