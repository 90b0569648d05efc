//! Resolving a [`NetMode`] against the system: check the caller's tap or
//! bridge exists, make the node's tap (`/dev/net/tun`, `TUNSETIFF`), bring
//! it up and enslave it with `ip link`.
//!
//! A tap mote makes is not persistent: the file descriptor from `TUNSETIFF`
//! is its only reference, mote hands it to QEMU as `fd=3` and closes its own
//! copy, so the kernel removes the tap when QEMU exits, however it exits.

use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::VmError;
use crate::net::{tap_name, NetMode};
use crate::tools;

/// The fd number QEMU finds the tap at.
pub(crate) const TAP_FD: i32 = 3;

/// What QEMU's `-netdev` gets.
#[derive(Debug)]
pub(crate) enum Backend {
    /// User-mode network.
    User,
    /// A tap mote made, handed to QEMU as fd [`TAP_FD`].
    OwnedTap {
        /// Our copy; dropped once QEMU has its own.
        fd: OwnedFd,
        /// Its name.
        ifname: String,
    },
    /// The caller's tap, opened by QEMU by name.
    NamedTap {
        /// Its name.
        ifname: String,
    },
    /// QEMU's bridge helper makes the tap and enslaves it.
    Helper {
        /// The bridge.
        bridge: String,
    },
}

impl Backend {
    /// The tap's name, when we know it.
    pub(crate) fn tap(&self) -> Option<&str> {
        match self {
            Self::OwnedTap { ifname, .. } | Self::NamedTap { ifname } => Some(ifname),
            Self::User | Self::Helper { .. } => None,
        }
    }
}

fn sys_net(name: &str) -> std::path::PathBuf {
    Path::new("/sys/class/net").join(name)
}

/// Check what the mode names and make what it asks mote to make.
pub(crate) fn resolve(mode: &NetMode, node: &str) -> Result<Backend, VmError> {
    match mode {
        NetMode::User => Ok(Backend::User),
        NetMode::Tap { name: Some(name) } => {
            if !sys_net(name).exists() {
                return Err(VmError::NoInterface {
                    kind: "tap",
                    name: name.clone(),
                    fix: format!(
                        "make it with `ip tuntap add {name} mode tap user $USER && ip link set {name} up`, \
                         or use --net tap to have mote make one"
                    ),
                });
            }
            if !sys_net(name).join("tun_flags").exists() {
                return Err(VmError::NotATap { name: name.clone() });
            }
            Ok(Backend::NamedTap {
                ifname: name.clone(),
            })
        }
        NetMode::Tap { name: None } => {
            let ifname = tap_name(node);
            let fd = make_tap(&ifname)?;
            ip(&["link", "set", "dev", &ifname, "up"])?;
            Ok(Backend::OwnedTap { fd, ifname })
        }
        NetMode::Bridge { name: bridge } => {
            if !sys_net(bridge).join("bridge").exists() {
                return Err(VmError::NoInterface {
                    kind: "bridge",
                    name: bridge.clone(),
                    fix: format!(
                        "make it with `ip link add {bridge} type bridge && ip link set {bridge} up` \
                         (and give it an address or a DHCP server)"
                    ),
                });
            }
            let ifname = tap_name(node);
            match make_tap(&ifname) {
                Ok(fd) => {
                    ip(&["link", "set", "dev", &ifname, "master", bridge, "up"])?;
                    Ok(Backend::OwnedTap { fd, ifname })
                }
                // No privilege to make a tap: QEMU's setuid helper may.
                Err(VmError::TapCreate { source, .. })
                    if matches!(source.raw_os_error(), Some(libc::EPERM | libc::EACCES)) =>
                {
                    Ok(Backend::Helper {
                        bridge: bridge.clone(),
                    })
                }
                Err(e) => Err(e),
            }
        }
    }
}

/// `struct ifreq` as `TUNSETIFF` reads it: the name, the flags, and the
/// rest of the 40-byte union.
#[repr(C)]
struct IfReq {
    name: [u8; 16],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// `_IOW('T', 202, int)`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TAP: u16 = 0x0002;
const IFF_NO_PI: u16 = 0x1000;
/// Frames carry a virtio-net header: QEMU passes offloads through.
const IFF_VNET_HDR: u16 = 0x4000;
/// Fail if the interface exists already, rather than attach to it.
const IFF_TUN_EXCL: u16 = 0x8000;

/// Make a new, non-persistent tap named `ifname` and return its fd.
fn make_tap(ifname: &str) -> Result<OwnedFd, VmError> {
    if sys_net(ifname).exists() {
        return Err(VmError::InterfaceExists {
            name: ifname.to_string(),
        });
    }
    let err = |source| VmError::TapCreate {
        name: ifname.to_string(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(err)?;
    let mut req = IfReq {
        name: [0; 16],
        flags: (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_TUN_EXCL) as libc::c_short,
        _pad: [0; 22],
    };
    // check_ifname keeps names to 15 bytes, so the NUL fits.
    let len = ifname.len().min(15);
    req.name[..len].copy_from_slice(&ifname.as_bytes()[..len]);
    // SAFETY: TUNSETIFF reads and writes one `struct ifreq`, which `req`
    // is (40 bytes, C layout), on a tun fd we own.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF, &mut req as *mut IfReq) };
    if rc < 0 {
        return Err(err(std::io::Error::last_os_error()));
    }
    Ok(file.into())
}

/// Run `ip ARGS…`, with its complaint in the error.
fn ip(args: &[&str]) -> Result<(), VmError> {
    let program = tools::find("ip").ok_or(VmError::ProgramMissing {
        program: "ip",
        fix: "apt-get install iproute2",
    })?;
    let out = Command::new(&program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| VmError::Spawn {
            program: program.display().to_string(),
            source,
        })?;
    if !out.status.success() {
        return Err(VmError::Ip {
            command: format!("ip {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifreq_is_the_kernels_size() {
        assert_eq!(std::mem::size_of::<IfReq>(), 40);
    }

    #[test]
    fn missing_interfaces_say_how_to_make_them() {
        let err = resolve(&"tap=mote-none0".parse().unwrap(), "n").unwrap_err();
        assert!(
            err.to_string().contains("ip tuntap add mote-none0"),
            "{err}"
        );
        let err = resolve(&"bridge=mote-nobr0".parse().unwrap(), "n").unwrap_err();
        assert!(err.to_string().contains("type bridge"), "{err}");
        // Loopback exists and is no tap.
        let err = resolve(&"tap=lo".parse().unwrap(), "n").unwrap_err();
        assert!(matches!(err, VmError::NotATap { .. }), "{err}");
        assert!(matches!(resolve(&NetMode::User, "n"), Ok(Backend::User)));
    }
}
