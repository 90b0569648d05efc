//! Links: find an interface by name (waiting, bounded, while its driver
//! probes), bring it up with its MTU, and the per-interface IPv6 switches in
//! `/proc/sys/net/ipv6/conf/IF/`.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use tokio::time::Instant;

use super::netlink::NetlinkError;
use super::rtnl::Rtnl;

/// How often we look again for an interface that is not there yet.
const POLL: Duration = Duration::from_millis(50);

/// What we need to know about one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Link {
    /// Kernel interface index.
    pub(crate) index: u32,
    /// Hardware address (6 bytes for Ethernet), empty when it has none.
    pub(crate) mac: Vec<u8>,
}

/// The interface called `name`, or `None` when there is none.
pub(crate) fn get(rtnl: &mut Rtnl, name: &str) -> Result<Option<Link>, NetlinkError> {
    let mut message = LinkMessage::default();
    message
        .attributes
        .push(LinkAttribute::IfName(name.to_owned()));
    match rtnl.query(RouteNetlinkMessage::GetLink(message), false) {
        Ok(replies) => Ok(replies.into_iter().find_map(|reply| match reply {
            RouteNetlinkMessage::NewLink(link) => Some(Link {
                index: link.header.index,
                mac: link
                    .attributes
                    .into_iter()
                    .find_map(|a| {
                        if let LinkAttribute::Address(mac) = a {
                            Some(mac)
                        } else {
                            None
                        }
                    })
                    .unwrap_or_default(),
            }),
            _ => None,
        })),
        Err(e) if e.errno() == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Like [`get`], but waits until `deadline` for the interface to appear.
pub(crate) async fn wait_for(
    rtnl: &mut Rtnl,
    name: &str,
    deadline: Instant,
) -> Result<Option<Link>, NetlinkError> {
    loop {
        if let Some(link) = get(rtnl, name)? {
            return Ok(Some(link));
        }
        if Instant::now() + POLL > deadline {
            return Ok(None);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Set the MTU (when given) and bring the link up.
pub(crate) fn set_up(rtnl: &mut Rtnl, index: u32, mtu: Option<u32>) -> Result<(), NetlinkError> {
    let mut message = LinkMessage::default();
    message.header.index = index;
    message.header.flags = LinkFlags::Up;
    message.header.change_mask = LinkFlags::Up;
    if let Some(mtu) = mtu {
        message.attributes.push(LinkAttribute::Mtu(mtu));
    }
    rtnl.request(RouteNetlinkMessage::SetLink(message), 0)
}

/// Write `value` to `/proc/sys/net/ipv6/conf/IFNAME/KEY`.
///
/// The sysctl tree under `/proc/sys/net` belongs to the network namespace of
/// the thread that opens it, so this follows the caller's namespace as the
/// netlink sockets do.
pub(crate) fn set_ipv6_conf(ifname: &str, key: &str, value: &str) -> io::Result<()> {
    if ifname.is_empty() || ifname.contains('/') || ifname == "." || ifname == ".." {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not an interface name: {ifname:?}"),
        ));
    }
    let path: PathBuf = ["/proc/sys/net/ipv6/conf", ifname, key].iter().collect();
    std::fs::write(&path, value)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// The kernel driver bound to interface `ifname` (`virtio_net`, `hv_netvsc`,
/// `e1000`), from `/sys/class/net/IF/device/driver`; `None` for virtual
/// interfaces and unsafe names.
pub(crate) fn driver(ifname: &str) -> Option<String> {
    if ifname.is_empty() || ifname.contains('/') || ifname.starts_with('.') {
        return None;
    }
    let link = std::fs::read_link(format!("/sys/class/net/{ifname}/device/driver")).ok()?;
    Some(link.file_name()?.to_string_lossy().into_owned())
}

/// `52:54:00:12:34:56`.
pub(crate) fn mac_text(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
