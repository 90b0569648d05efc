//! What the caller asks for: [`RunConfig`] and its parts, validated without
//! touching the system. Resolving them (free ports, the accelerator, the state
//! disk) happens in [`crate::start`].

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::net::NetMode;

/// How to run one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunConfig {
    /// The node's name: its directory under [`crate::registry::state_dir`] and
    /// what `mote stop NAME` takes. Letters, digits, `-`, `_` and `.`.
    pub name: String,
    /// The image directory `mote build` wrote: `vmlinuz`, `initrd.img`, `cmdline`.
    pub image_dir: PathBuf,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Virtual CPUs.
    pub cpus: u32,
    /// The node's network: user-mode (the default), a tap, or a bridge.
    pub net: NetMode,
    /// Ports forwarded from 127.0.0.1 on the host into the guest (user-mode
    /// network only).
    pub forwards: Vec<Forward>,
    /// Boot this GPT disk (`.raw`, `.qcow2`, `.vhdx`, `.vhd` from `mote
    /// build`) under UEFI firmware instead of the image directory's kernel
    /// and initramfs. The disk is used in place, as a hypervisor uses it: it
    /// holds the node's state partition, so there is no separate state disk,
    /// and the machine is `pc` (microvm has no UEFI).
    pub disk: Option<PathBuf>,
    /// Boot the disk with Secure Boot enforced (q35 with SMM), trusting
    /// Debian's test key: for testing signed images.
    pub secure_boot: bool,
    /// The state disk; `None` is `state.img` in the node's directory.
    pub state_disk: Option<PathBuf>,
    /// Size of a state disk created on first use, in MiB.
    pub state_disk_mib: u32,
    /// Write the serial console log here instead of the node's
    /// `serial.log` (which then links to it). QEMU writes it itself, so it
    /// stays complete after the caller exits.
    pub log: Option<PathBuf>,
    /// Echo the serial console to our stdout while the node runs (foreground).
    pub console: bool,
    /// Which accelerator to use.
    pub accel: AccelChoice,
    /// Which QEMU machine type to use.
    pub machine: Machine,
    /// Appended to the image's kernel command line.
    pub extra_cmdline: String,
}

impl RunConfig {
    /// A config with the defaults: 256 MiB, 1 CPU, user-mode network, no forwards, a 256 MiB
    /// state disk in the node's directory, automatic accelerator, microvm.
    pub fn new(name: impl Into<String>, image_dir: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            image_dir: image_dir.into(),
            memory_mib: 256,
            cpus: 1,
            net: NetMode::User,
            forwards: Vec::new(),
            disk: None,
            secure_boot: false,
            state_disk: None,
            state_disk_mib: 256,
            log: None,
            console: false,
            accel: AccelChoice::Auto,
            machine: Machine::Microvm,
            extra_cmdline: String::new(),
        }
    }
}

impl Default for RunConfig {
    /// [`RunConfig::new`] with an empty name and image directory, for
    /// `RunConfig { name, image_dir, ..Default::default() }`.
    fn default() -> Self {
        Self::new("", "")
    }
}

/// The accelerator the caller asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccelChoice {
    /// KVM when [`crate::probe_accel`] shows it runs a guest, else TCG.
    #[default]
    Auto,
    /// KVM, or an error when it does not run a guest.
    Kvm,
    /// TCG (software emulation), without probing.
    Tcg,
}

impl FromStr for AccelChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "kvm" => Ok(Self::Kvm),
            "tcg" => Ok(Self::Tcg),
            _ => Err(format!("unknown accelerator {s:?}: use auto, kvm or tcg")),
        }
    }
}

/// The QEMU machine type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Machine {
    /// `-machine microvm`: no PCI, no firmware tables to walk, virtio-mmio
    /// devices; the fastest boot. The guest needs the `virtio_mmio` module.
    #[default]
    Microvm,
    /// `-machine pc` without default devices, virtio-pci devices; the guest
    /// needs `virtio_pci`.
    Pc,
}

impl Machine {
    /// The name QEMU and the command line use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Microvm => "microvm",
            Self::Pc => "pc",
        }
    }
}

impl FromStr for Machine {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "microvm" => Ok(Self::Microvm),
            "pc" => Ok(Self::Pc),
            _ => Err(format!("unknown machine {s:?}: use microvm or pc")),
        }
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transport protocol of a port forward.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A port forwarded from `127.0.0.1:host` into the guest's `guest` port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forward {
    /// The host port on 127.0.0.1; 0 asks [`crate::start`] to pick a free one.
    pub host: u16,
    /// The guest port.
    pub guest: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
}

/// A port forward that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ForwardError {
    /// Not `HOST:GUEST[/PROTO]`.
    #[error("port forward {input:?} is not HOST:GUEST[/tcp|/udp], e.g. 8080:80 or 5353:53/udp")]
    Syntax {
        /// What was given.
        input: String,
    },
    /// A port that is not a number in range.
    #[error("port forward {input:?}: {value:?} is not a port (0-65535 on the host, 1-65535 in the guest)")]
    Port {
        /// What was given.
        input: String,
        /// The part that is not a port.
        value: String,
    },
    /// A protocol other than tcp or udp.
    #[error("port forward {input:?}: protocol {value:?} is not tcp or udp")]
    Protocol {
        /// What was given.
        input: String,
        /// The protocol given.
        value: String,
    },
}

impl FromStr for Forward {
    type Err = ForwardError;

    /// `HOST:GUEST` or `HOST:GUEST/PROTO`: `8080:80`, `5353:53/udp`, `0:80`
    /// (host 0 picks a free port).
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let syntax = || ForwardError::Syntax {
            input: input.to_string(),
        };
        let (ports, protocol) = match input.split_once('/') {
            Some((ports, proto)) => {
                let protocol = match proto.to_ascii_lowercase().as_str() {
                    "tcp" => Protocol::Tcp,
                    "udp" => Protocol::Udp,
                    _ => {
                        return Err(ForwardError::Protocol {
                            input: input.to_string(),
                            value: proto.to_string(),
                        })
                    }
                };
                (ports, protocol)
            }
            None => (input, Protocol::Tcp),
        };
        let (host, guest) = ports.split_once(':').ok_or_else(syntax)?;
        let port = |value: &str, min: u16| -> Result<u16, ForwardError> {
            let bad = || ForwardError::Port {
                input: input.to_string(),
                value: value.to_string(),
            };
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            value
                .parse::<u16>()
                .ok()
                .filter(|p| *p >= min)
                .ok_or_else(bad)
        };
        Ok(Forward {
            host: port(host, 0)?,
            guest: port(guest, 1)?,
            protocol,
        })
    }
}

impl fmt::Display for Forward {
    /// The same form [`Forward::from_str`] reads: `8080:80/tcp`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.host, self.guest, self.protocol)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fwd(host: u16, guest: u16, protocol: Protocol) -> Forward {
        Forward {
            host,
            guest,
            protocol,
        }
    }

    #[test]
    fn forwards_parse() {
        assert_eq!("8080:80".parse(), Ok(fwd(8080, 80, Protocol::Tcp)));
        assert_eq!("5353:53/udp".parse(), Ok(fwd(5353, 53, Protocol::Udp)));
        assert_eq!("5353:53/UDP".parse(), Ok(fwd(5353, 53, Protocol::Udp)));
        assert_eq!("443:443/tcp".parse(), Ok(fwd(443, 443, Protocol::Tcp)));
        assert_eq!("0:80".parse(), Ok(fwd(0, 80, Protocol::Tcp)));
        assert_eq!("65535:1".parse(), Ok(fwd(65535, 1, Protocol::Tcp)));
    }

    #[test]
    fn forwards_round_trip_through_display() {
        let f = fwd(5353, 53, Protocol::Udp);
        assert_eq!(f.to_string(), "5353:53/udp");
        assert_eq!(f.to_string().parse(), Ok(f));
    }

    #[test]
    fn bad_forwards_say_what_is_wrong() {
        let syntax = |s: &str| ForwardError::Syntax { input: s.into() };
        assert_eq!("80".parse::<Forward>(), Err(syntax("80")));
        assert_eq!("".parse::<Forward>(), Err(syntax("")));
        let port = |s: &str, v: &str| ForwardError::Port {
            input: s.into(),
            value: v.into(),
        };
        assert_eq!("x:80".parse::<Forward>(), Err(port("x:80", "x")));
        assert_eq!("80:0".parse::<Forward>(), Err(port("80:0", "0")));
        assert_eq!(
            "70000:80".parse::<Forward>(),
            Err(port("70000:80", "70000"))
        );
        assert_eq!("+80:80".parse::<Forward>(), Err(port("+80:80", "+80")));
        assert_eq!(":80".parse::<Forward>(), Err(port(":80", "")));
        assert_eq!("1:2:3".parse::<Forward>(), Err(port("1:2:3", "2:3")));
        assert_eq!(
            "80:80/sctp".parse::<Forward>(),
            Err(ForwardError::Protocol {
                input: "80:80/sctp".into(),
                value: "sctp".into()
            })
        );
        let msg = "80".parse::<Forward>().unwrap_err().to_string();
        assert!(msg.contains("8080:80"), "{msg}");
    }

    #[test]
    fn choices_parse() {
        assert_eq!("tcg".parse(), Ok(AccelChoice::Tcg));
        assert_eq!("pc".parse(), Ok(Machine::Pc));
        assert!("q35".parse::<Machine>().is_err());
        let cfg = RunConfig::new("n", "/img");
        assert_eq!(
            (cfg.memory_mib, cfg.cpus, cfg.state_disk_mib),
            (256, 1, 256)
        );
        assert_eq!(cfg.machine, Machine::Microvm);
    }
}
