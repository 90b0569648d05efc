//! Addresses and routes: add or remove an address on a link, the default
//! route through a gateway, and the list of addresses the node has now.

use std::net::{IpAddr, Ipv4Addr};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, CacheInfo};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::netlink::NetlinkError;
use super::rtnl::Rtnl;

/// Who put a route there, as `ip route` shows it (`proto static`, `proto dhcp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// From the settings.
    Static,
    /// From a DHCP lease.
    Dhcp,
}

/// An address on a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LinkAddress {
    /// Interface index.
    pub(crate) index: u32,
    /// The address.
    pub(crate) ip: IpAddr,
    /// Its prefix length.
    pub(crate) prefix_len: u8,
}

fn family(ip: &IpAddr) -> AddressFamily {
    if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

fn address_message(index: u32, ip: IpAddr, prefix_len: u8) -> AddressMessage {
    let mut message = AddressMessage::default();
    message.header.family = family(&ip);
    message.header.prefix_len = prefix_len;
    message.header.index = index;
    if let IpAddr::V4(v4) = ip {
        message.attributes.push(AddressAttribute::Local(ip));
        if prefix_len <= 30 {
            message
                .attributes
                .push(AddressAttribute::Broadcast(broadcast(v4, prefix_len)));
        }
    }
    message.attributes.push(AddressAttribute::Address(ip));
    message
}

/// The subnet-directed broadcast address of `ip/prefix_len`.
pub(crate) fn broadcast(ip: Ipv4Addr, prefix_len: u8) -> Ipv4Addr {
    let host_bits = u32::MAX.checked_shr(u32::from(prefix_len)).unwrap_or(0);
    Ipv4Addr::from(u32::from(ip) | host_bits)
}

/// Add `ip/prefix_len` to the link, replacing it if present. With
/// `lifetime_secs`, the kernel itself removes the address when that runs
/// out (a DHCP lease's length), should nothing renew it.
pub(crate) fn add(
    rtnl: &mut Rtnl,
    index: u32,
    ip: IpAddr,
    prefix_len: u8,
    lifetime_secs: Option<u32>,
) -> Result<(), NetlinkError> {
    let mut message = address_message(index, ip, prefix_len);
    if let Some(secs) = lifetime_secs {
        let mut info = CacheInfo::default();
        info.ifa_preferred = secs;
        info.ifa_valid = secs;
        message.attributes.push(AddressAttribute::CacheInfo(info));
    }
    rtnl.request(
        RouteNetlinkMessage::NewAddress(message),
        NLM_F_CREATE | NLM_F_REPLACE,
    )
}

/// Remove `ip/prefix_len` from the link; Ok when it was already gone.
pub(crate) fn remove(
    rtnl: &mut Rtnl,
    index: u32,
    ip: IpAddr,
    prefix_len: u8,
) -> Result<(), NetlinkError> {
    match rtnl.request(
        RouteNetlinkMessage::DelAddress(address_message(index, ip, prefix_len)),
        0,
    ) {
        Err(e) if e.errno() == Some(libc::EADDRNOTAVAIL) => Ok(()),
        other => other,
    }
}

fn default_route(index: u32, gateway: IpAddr, origin: Origin) -> RouteMessage {
    let mut message = RouteMessage::default();
    message.header.address_family = family(&gateway);
    message.header.destination_prefix_length = 0;
    message.header.table = RouteHeader::RT_TABLE_MAIN;
    message.header.protocol = match origin {
        Origin::Static => RouteProtocol::Static,
        Origin::Dhcp => RouteProtocol::Dhcp,
    };
    message.header.scope = RouteScope::Universe;
    message.header.kind = RouteType::Unicast;
    message
        .attributes
        .push(RouteAttribute::Gateway(RouteAddress::from(gateway)));
    message.attributes.push(RouteAttribute::Oif(index));
    message
}

/// Route everything not on a local subnet through `gateway` on this link,
/// replacing any default route of that family.
pub(crate) fn add_default_route(
    rtnl: &mut Rtnl,
    index: u32,
    gateway: IpAddr,
    origin: Origin,
) -> Result<(), NetlinkError> {
    rtnl.request(
        RouteNetlinkMessage::NewRoute(default_route(index, gateway, origin)),
        NLM_F_CREATE | NLM_F_REPLACE,
    )
}

/// Remove the default route through `gateway`; Ok when it was already gone
/// (the kernel drops it with the address that made the gateway reachable).
pub(crate) fn remove_default_route(
    rtnl: &mut Rtnl,
    index: u32,
    gateway: IpAddr,
    origin: Origin,
) -> Result<(), NetlinkError> {
    match rtnl.request(
        RouteNetlinkMessage::DelRoute(default_route(index, gateway, origin)),
        0,
    ) {
        Err(e) if e.errno() == Some(libc::ESRCH) => Ok(()),
        other => other,
    }
}

/// Every address of every link, as the kernel has them now.
pub(crate) fn list(rtnl: &mut Rtnl) -> Result<Vec<LinkAddress>, NetlinkError> {
    let replies = rtnl.query(
        RouteNetlinkMessage::GetAddress(AddressMessage::default()),
        true,
    )?;
    Ok(replies
        .into_iter()
        .filter_map(|reply| {
            let RouteNetlinkMessage::NewAddress(message) = reply else {
                return None;
            };
            // IFA_LOCAL is the address itself; IFA_ADDRESS is the peer on
            // point-to-point links and the address itself elsewhere.
            let mut local = None;
            let mut address = None;
            for attribute in &message.attributes {
                match attribute {
                    AddressAttribute::Local(ip) => local = Some(*ip),
                    AddressAttribute::Address(ip) => address = Some(*ip),
                    _ => {}
                }
            }
            let ip = local.or(address)?;
            Some(LinkAddress {
                index: message.header.index,
                ip,
                prefix_len: message.header.prefix_len,
            })
        })
        .collect())
}

/// Worth announcing: not loopback, not link-local, not unspecified.
pub(crate) fn is_reportable(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_loopback() || v4.is_link_local() || v4.is_unspecified()),
        IpAddr::V6(v6) => !(v6.is_loopback() || v6.is_unicast_link_local() || v6.is_unspecified()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_addresses() {
        assert_eq!(
            broadcast(Ipv4Addr::new(10, 0, 2, 15), 24),
            Ipv4Addr::new(10, 0, 2, 255)
        );
        assert_eq!(
            broadcast(Ipv4Addr::new(10, 1, 2, 3), 8),
            Ipv4Addr::new(10, 255, 255, 255)
        );
        assert_eq!(
            broadcast(Ipv4Addr::new(10, 1, 2, 3), 32),
            Ipv4Addr::new(10, 1, 2, 3)
        );
        assert_eq!(
            broadcast(Ipv4Addr::new(10, 1, 2, 3), 0),
            Ipv4Addr::BROADCAST
        );
    }

    #[test]
    fn only_routable_addresses_are_reported() {
        for (ip, expected) in [
            ("10.0.2.15", true),
            ("127.0.0.1", false),
            ("169.254.1.1", false),
            ("2001:db8::1", true),
            ("fe80::1", false),
            ("::1", false),
        ] {
            assert_eq!(is_reportable(&ip.parse().unwrap()), expected, "{ip}");
        }
    }
}
