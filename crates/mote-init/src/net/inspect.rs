//! The network as the kernel has it, for the control protocol's `Network`:
//! links (dump of `RTM_GETLINK`), their addresses (`RTM_GETADDR`) and the
//! routes of the main table (`RTM_GETROUTE`, IPv4 and IPv6).

use std::collections::BTreeMap;
use std::net::IpAddr;

use mote_api::control::{LinkInfo, NetworkInfo, RouteInfo};
use mote_config::{Ipv4Mode, Network};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::addr;
use super::netlink::NetlinkError;
use super::rtnl::Rtnl;

/// The main routing table's id.
const RT_TABLE_MAIN: u8 = 254;

/// Links, addresses and main-table routes now; `ipv4` of each link comes
/// from `settings` (`off` for links it does not name), `dns` as given.
pub fn inspect(settings: &Network, dns: Vec<String>) -> Result<NetworkInfo, NetlinkError> {
    let mut rtnl = Rtnl::open()?;
    let links = rtnl.query(RouteNetlinkMessage::GetLink(LinkMessage::default()), true)?;
    let mut names = BTreeMap::new();
    let mut out = Vec::new();
    for reply in links {
        let RouteNetlinkMessage::NewLink(link) = reply else {
            continue;
        };
        let mut name = String::new();
        let mut mac = None;
        let mut mtu = 0;
        for attribute in &link.attributes {
            match attribute {
                LinkAttribute::IfName(n) => name.clone_from(n),
                LinkAttribute::Address(bytes) if !bytes.is_empty() => {
                    mac = Some(super::link::mac_text(bytes));
                }
                LinkAttribute::Mtu(m) => mtu = *m,
                _ => {}
            }
        }
        let flags = link.header.flags;
        let ipv4 = match settings.interfaces.get(&name).map(|i| i.ipv4) {
            Some(Ipv4Mode::Dhcp) => "dhcp",
            Some(Ipv4Mode::Static(_)) => "static",
            Some(Ipv4Mode::Off) | None => "off",
        };
        names.insert(link.header.index, name.clone());
        out.push((
            link.header.index,
            LinkInfo {
                name,
                up: flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::LowerUp),
                mac,
                mtu,
                addresses: Vec::new(),
                ipv4: ipv4.into(),
            },
        ));
    }
    for address in addr::list(&mut rtnl)? {
        if let Some((_, link)) = out.iter_mut().find(|(i, _)| *i == address.index) {
            link.addresses
                .push(format!("{}/{}", address.ip, address.prefix_len));
        }
    }
    let mut routes = Vec::new();
    for family in [AddressFamily::Inet, AddressFamily::Inet6] {
        let mut request = RouteMessage::default();
        request.header.address_family = family;
        for reply in rtnl.query(RouteNetlinkMessage::GetRoute(request), true)? {
            if let RouteNetlinkMessage::NewRoute(route) = reply {
                if let Some(info) = route_info(&route, &names) {
                    routes.push(info);
                }
            }
        }
    }
    Ok(NetworkInfo {
        links: out.into_iter().map(|(_, l)| l).collect(),
        routes,
        dns,
    })
}

fn route_ip(address: &RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// A main-table unicast route as `RouteInfo`; others are left out.
fn route_info(route: &RouteMessage, names: &BTreeMap<u32, String>) -> Option<RouteInfo> {
    let mut table = u32::from(route.header.table);
    let mut destination = None;
    let mut gateway = None;
    let mut interface = None;
    for attribute in &route.attributes {
        match attribute {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(d) => destination = route_ip(d),
            RouteAttribute::Gateway(g) => gateway = route_ip(g),
            RouteAttribute::Oif(index) => interface = names.get(index).cloned(),
            _ => {}
        }
    }
    // Blackhole, unreachable, prohibit … routes have no next hop to show
    // (and `ip route` marks them by type, which `RouteInfo` has no room for).
    if table != u32::from(RT_TABLE_MAIN) || route.header.kind != RouteType::Unicast {
        return None;
    }
    let destination = match destination {
        Some(ip) => format!("{ip}/{}", route.header.destination_prefix_length),
        None if route.header.destination_prefix_length == 0 => "default".into(),
        None => return None,
    };
    Some(RouteInfo {
        destination,
        gateway: gateway.map(|g| g.to_string()),
        interface,
    })
}

/// Default routes through the link `index` (any family), as the kernel
/// has them, ready to be deleted.
pub(crate) fn default_routes(
    rtnl: &mut Rtnl,
    index: u32,
) -> Result<Vec<RouteMessage>, NetlinkError> {
    let mut found = Vec::new();
    for family in [AddressFamily::Inet, AddressFamily::Inet6] {
        let mut request = RouteMessage::default();
        request.header.address_family = family;
        for reply in rtnl.query(RouteNetlinkMessage::GetRoute(request), true)? {
            if let RouteNetlinkMessage::NewRoute(route) = reply {
                let through = route
                    .attributes
                    .iter()
                    .any(|a| matches!(a, RouteAttribute::Oif(i) if *i == index));
                let main = route.header.table == RT_TABLE_MAIN;
                if through && main && route.header.destination_prefix_length == 0 {
                    found.push(route);
                }
            }
        }
    }
    Ok(found)
}
