//! Live changes to the network: `reconfigure_interface` between static
//! addressing, DHCP and off; the `Network` view against `ip -j`; and an
//! `Apply` through the control socket — each in namespaces of the test's own.

mod net_support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use mote_api::control::{NetworkInfo, Request, Response};
use mote_config::{Interface, Ipv4Mode, Ipv6Mode, Network, NodeSettings};
use mote_init::control::{serve, Node, NodeOptions};
use mote_init::events::{Events, Level};
use mote_init::net::{configure_with, inspect, reconfigure_interface, NetOptions, NetState};
use mote_init::supervisor::{Limits, Reaper, Supervisor};
use net_support::{
    ip_json_in, ping, servers, udp_port_bound_here, udp_sockets_here, veth, wait_until, Netns,
};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The DHCP client's port.
const DHCP_CLIENT_PORT: u16 = 68;

fn iface(ipv4: Ipv4Mode) -> Interface {
    Interface {
        ipv4,
        gateway4: None,
        ipv6: Ipv6Mode::Off,
        gateway6: None,
        dns: Vec::new(),
        mtu: None,
    }
}

fn static4(cidr: &str, gateway: &str) -> Interface {
    Interface {
        gateway4: Some(gateway.parse().unwrap()),
        ..iface(Ipv4Mode::Static(cidr.parse().unwrap()))
    }
}

fn network(interfaces: &[(&str, &Interface)]) -> Network {
    Network {
        interfaces: interfaces
            .iter()
            .map(|(name, i)| ((*name).to_owned(), (*i).clone()))
            .collect(),
    }
}

fn options(dir: &tempfile::TempDir) -> NetOptions {
    NetOptions {
        resolv_conf: dir.path().join("resolv.conf"),
        ..NetOptions::default()
    }
}

/// The IPv4 addresses of `dev` as (ip/prefix, valid lifetime).
fn ipv4_of(netns: &str, dev: &str) -> Vec<(String, Option<u64>)> {
    let json = ip_json_in(netns, &["-4", "addr", "show", "dev", dev]);
    json[0]["addr_info"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            (
                format!(
                    "{}/{}",
                    a["local"].as_str().unwrap_or_default(),
                    a["prefixlen"]
                ),
                a["valid_life_time"].as_u64(),
            )
        })
        .collect()
}

fn ipv4_cidrs(netns: &str, dev: &str) -> Vec<String> {
    ipv4_of(netns, dev).into_iter().map(|(a, _)| a).collect()
}

/// The default routes of `family` (`-4`/`-6`) as (gateway, dev, protocol).
fn defaults(netns: &str, family: &str) -> Vec<(String, String, String)> {
    let json = ip_json_in(netns, &[family, "route", "show", "default"]);
    json.as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            (s("gateway"), s("dev"), s("protocol"))
        })
        .collect()
}

fn problems(events: &Events) -> Vec<String> {
    events
        .recent()
        .into_iter()
        .filter(|e| e.level >= Level::Warn)
        .map(|e| format!("{}: {}", e.source, e.message))
        .collect()
}

/// The `dhcp` events about `dev` so far.
fn dhcp_log(events: &Events, dev: &str) -> Vec<String> {
    let prefix = format!("{dev}: ");
    events
        .recent()
        .into_iter()
        .filter(|e| e.source == "dhcp" && e.message.starts_with(&prefix))
        .map(|e| e.message)
        .collect()
}

/// Poll `check` on the runtime every 50 ms for up to `limit`.
async fn poll<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Node and peer namespaces joined by eth0 ↔ peer0, the peer's end up with
/// `peer_cidrs`.
fn pair(tag: &str, peer_cidrs: &[&str]) -> (Netns, Netns) {
    let node = Netns::new(&format!("{tag}-node"));
    let peer = Netns::new(&format!("{tag}-peer"));
    veth(&node, "eth0", &peer, "peer0");
    for cidr in peer_cidrs {
        peer.sh(&["ip", "addr", "add", cidr, "dev", "peer0", "nodad"]);
    }
    peer.sh(&["ip", "link", "set", "peer0", "up"]);
    (node, peer)
}

#[test]
fn static_to_another_static_address_and_gateway() {
    let (node, peer) = pair("restatic", &["198.18.5.1/24", "198.18.6.1/24"]);
    let dir = tempfile::tempdir().unwrap();
    let first = static4("198.18.5.10/24", "198.18.5.1");
    let second = static4("198.18.6.10/24", "198.18.6.1");
    let events = Events::new(false);
    let netns = node.name.clone();
    let (before, result, after) = node.run({
        let events = events.clone();
        let options = options(&dir);
        async move || {
            let state = configure_with(&network(&[("eth0", &first)]), &events, options).await;
            let before = (ipv4_cidrs(&netns, "eth0"), defaults(&netns, "-4"));
            let new = network(&[("eth0", &second)]);
            let result = reconfigure_interface(&state, "eth0", Some(&second), &new, &events).await;
            (before, result, state.addresses())
        }
    });
    assert_eq!(
        before,
        (
            vec!["198.18.5.10/24".to_owned()],
            vec![("198.18.5.1".into(), "eth0".into(), "static".into())]
        )
    );
    result.expect("reconfigure");
    assert_eq!(problems(&events), Vec::<String>::new());
    assert_eq!(ipv4_cidrs(&node.name, "eth0"), ["198.18.6.10/24"]);
    assert_eq!(
        defaults(&node.name, "-4"),
        [("198.18.6.1".into(), "eth0".into(), "static".into())]
    );
    assert_eq!(after, ["198.18.6.10".parse::<std::net::IpAddr>().unwrap()]);
    assert!(ping(&peer, "198.18.6.10"), "the new address answers");
    assert!(!ping(&peer, "198.18.5.10"), "the old one does not");
    // Off-link through the new gateway.
    peer.sh(&["ip", "addr", "add", "198.18.99.1/32", "dev", "lo"]);
    assert!(ping(&node, "198.18.99.1"), "through the new gateway");
}

#[test]
fn static_to_dhcp_and_back_to_static() {
    let (node, server) = pair("todhcp", &["198.18.8.1/24"]);
    let dir = tempfile::tempdir().unwrap();
    let _dnsmasq = servers::dnsmasq(
        &server,
        dir.path(),
        "peer0",
        ("198.18.8.50", "198.18.8.60"),
        "198.18.8.1",
        "198.18.8.53",
    );
    let first = static4("198.18.8.10/24", "198.18.8.1");
    let dhcp = iface(Ipv4Mode::Dhcp);
    let mut last = static4("198.18.8.20/24", "198.18.8.1");
    last.dns = vec!["198.18.8.54".parse().unwrap()];
    let resolv = dir.path().join("resolv.conf");
    let events = Events::new(false);
    let netns = node.name.clone();
    let report = node.run({
        let events = events.clone();
        let options = options(&dir);
        let resolv = resolv.clone();
        async move || {
            let state = configure_with(&network(&[("eth0", &first)]), &events, options).await;
            assert!(!udp_port_bound_here(DHCP_CLIENT_PORT));

            let to_dhcp = network(&[("eth0", &dhcp)]);
            reconfigure_interface(&state, "eth0", Some(&dhcp), &to_dhcp, &events)
                .await
                .expect("static → dhcp");
            assert!(
                udp_port_bound_here(DHCP_CLIENT_PORT),
                "the DHCP client runs"
            );
            let lease = poll(Duration::from_secs(10), "a lease", || {
                state.leases().into_iter().next()
            })
            .await;
            let leased = (
                ipv4_of(&netns, "eth0"),
                defaults(&netns, "-4"),
                std::fs::read_to_string(&resolv).unwrap_or_default(),
            );

            let to_static = network(&[("eth0", &last)]);
            let events_before = events.recent().len();
            reconfigure_interface(&state, "eth0", Some(&last), &to_static, &events)
                .await
                .expect("dhcp → static");
            let log_at_switch = dhcp_log(&events, "eth0").len();
            let resolv_writes: Vec<String> = events.recent()[events_before..]
                .iter()
                .filter(|e| e.message.contains("nameservers"))
                .cloned()
                .map(|e| e.message)
                .collect();
            // Let the runtime drop the aborted client, then watch for a while.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let client_socket = udp_port_bound_here(DHCP_CLIENT_PORT);
            tokio::time::sleep(Duration::from_secs(3)).await;
            let log_after = dhcp_log(&events, "eth0")[log_at_switch..].to_vec();
            (
                lease,
                leased,
                resolv_writes,
                client_socket,
                log_after,
                state.leases(),
                state.dns_servers(),
            )
        }
    });
    let (lease, leased, resolv_writes, client_socket, log_after, leases_after, dns_after) = report;
    assert_eq!(
        resolv_writes.len(),
        1,
        "resolv.conf goes straight to the new resolvers: {resolv_writes:#?}"
    );
    let (name, lease) = lease;
    assert_eq!(name, "eth0");
    assert_eq!(lease.router, Some("198.18.8.1".parse().unwrap()));
    let (addrs, routes, resolv_leased) = leased;
    let dynamic = format!("{}/24", lease.address);
    assert_eq!(addrs.len(), 1, "only the leased address: {addrs:?}");
    assert_eq!(addrs[0].0, dynamic);
    assert!(
        addrs[0].1.is_some_and(|l| l <= 120),
        "the lease is the address's lifetime: {addrs:?}"
    );
    assert_eq!(
        routes,
        [("198.18.8.1".into(), "eth0".into(), "dhcp".into())]
    );
    assert!(
        resolv_leased.contains("nameserver 198.18.8.53\n"),
        "{resolv_leased}"
    );

    assert!(!client_socket, "the DHCP client's socket is closed");
    assert!(log_after.is_empty(), "DHCP went quiet: {log_after:#?}");
    assert!(leases_after.is_empty(), "{leases_after:?}");
    assert_eq!(
        dns_after,
        ["198.18.8.54".parse::<std::net::IpAddr>().unwrap()]
    );
    let addrs = ipv4_of(&node.name, "eth0");
    assert_eq!(
        addrs,
        [("198.18.8.20/24".to_owned(), Some(u64::from(u32::MAX)))],
        "the dynamic address is gone, the static one permanent (forever)"
    );
    assert_eq!(
        defaults(&node.name, "-4"),
        [("198.18.8.1".into(), "eth0".into(), "static".into())]
    );
    let text = std::fs::read_to_string(&resolv).unwrap();
    assert_eq!(text.matches("nameserver").count(), 1, "{text}");
    assert!(text.contains("nameserver 198.18.8.54\n"), "{text}");
    assert_eq!(problems(&events), Vec::<String>::new());
    assert!(ping(&server, "198.18.8.20"));
}

/// A 4-second lease is renewed every 2 s; once the interface is turned off
/// no renewal follows, the address and route are gone at once.
#[test]
fn dhcp_to_off_stops_the_client() {
    let (node, server) = pair("dhcpoff", &["198.18.3.1/24"]);
    let dir = tempfile::tempdir().unwrap();
    let _udhcpd = servers::udhcpd(
        &server,
        dir.path(),
        "peer0",
        ("198.18.3.50", "198.18.3.60"),
        "198.18.3.1",
        "198.18.3.53",
        4,
    );
    let dhcp = iface(Ipv4Mode::Dhcp);
    let off = iface(Ipv4Mode::Off);
    let resolv = dir.path().join("resolv.conf");
    let events = Events::new(false);
    let netns = node.name.clone();
    let report = node.run({
        let events = events.clone();
        let options = options(&dir);
        async move || {
            let state = configure_with(&network(&[("eth0", &dhcp)]), &events, options).await;
            let leased = state.leases().len();
            poll(Duration::from_secs(6), "a renewal", || {
                dhcp_log(&events, "eth0")
                    .iter()
                    .any(|m| m.starts_with("eth0: renewed"))
                    .then_some(())
            })
            .await;
            let off_net = network(&[("eth0", &off)]);
            reconfigure_interface(&state, "eth0", Some(&off), &off_net, &events)
                .await
                .expect("dhcp → off");
            let at_once = (ipv4_of(&netns, "eth0"), defaults(&netns, "-4"));
            let log_at_switch = dhcp_log(&events, "eth0").len();
            tokio::time::sleep(Duration::from_millis(200)).await;
            let client_socket = udp_port_bound_here(DHCP_CLIENT_PORT);
            // Past the next T1 (2 s), T2 (3.5 s) and expiry (4 s).
            tokio::time::sleep(Duration::from_secs(5)).await;
            let log_after = dhcp_log(&events, "eth0")[log_at_switch..].to_vec();
            (
                leased,
                at_once,
                client_socket,
                log_after,
                state.leases().len(),
            )
        }
    });
    let (leased, (addrs, routes), client_socket, log_after, leases_after) = report;
    assert_eq!(leased, 1, "{:#?}", dhcp_log(&events, "eth0"));
    assert_eq!(addrs, [], "no IPv4 address right after the switch");
    assert_eq!(routes, [], "no default route right after the switch");
    assert!(!client_socket, "the DHCP client's socket is closed");
    assert!(log_after.is_empty(), "DHCP went quiet: {log_after:#?}");
    assert_eq!(leases_after, 0);
    let text = std::fs::read_to_string(&resolv).unwrap_or_default();
    assert!(!text.contains("198.18.3.53"), "lease resolver gone: {text}");
    assert!(
        events
            .recent()
            .iter()
            .any(|e| e.source == "net" && e.message == "eth0: up, ipv6 off"),
        "configured as off"
    );
    assert!(ipv4_cidrs(&node.name, "eth0").is_empty());
    assert_eq!(problems(&events), Vec::<String>::new());
}

/// DHCP → DHCP (only the resolvers of the settings change): one client
/// afterwards, not two, and it gets a lease and renews it.
#[test]
fn dhcp_to_dhcp_restarts_one_client() {
    let (node, server) = pair("redhcp", &["198.18.4.1/24"]);
    let dir = tempfile::tempdir().unwrap();
    let _udhcpd = servers::udhcpd(
        &server,
        dir.path(),
        "peer0",
        ("198.18.4.50", "198.18.4.60"),
        "198.18.4.1",
        "198.18.4.53",
        4,
    );
    let dhcp = iface(Ipv4Mode::Dhcp);
    let mut dhcp_dns = iface(Ipv4Mode::Dhcp);
    dhcp_dns.dns = vec!["198.18.4.54".parse().unwrap()];
    let events = Events::new(false);
    let netns = node.name.clone();
    let report = node.run({
        let events = events.clone();
        let options = options(&dir);
        async move || {
            let state = configure_with(&network(&[("eth0", &dhcp)]), &events, options).await;
            let first = state.leases().len();
            let net = network(&[("eth0", &dhcp_dns)]);
            reconfigure_interface(&state, "eth0", Some(&dhcp_dns), &net, &events)
                .await
                .expect("dhcp → dhcp");
            let switched = dhcp_log(&events, "eth0").len();
            poll(Duration::from_secs(8), "a lease again", || {
                (!state.leases().is_empty()).then_some(())
            })
            .await;
            // Past T1 of the new lease: it is renewed.
            tokio::time::sleep(Duration::from_secs(3)).await;
            (
                first,
                udp_sockets_here(DHCP_CLIENT_PORT),
                dhcp_log(&events, "eth0")[switched..].to_vec(),
                state.leases().len(),
                state.dns_servers(),
                ipv4_cidrs(&netns, "eth0"),
            )
        }
    });
    let (first, sockets, log, leases, dns, addrs) = report;
    assert_eq!(first, 1);
    assert_eq!(sockets, 1, "one DHCP client, not two: {log:#?}");
    assert!(log.iter().any(|m| m.starts_with("eth0: ACK")), "{log:#?}");
    assert!(
        log.iter().any(|m| m.starts_with("eth0: renewed")),
        "{log:#?}"
    );
    assert_eq!(leases, 1);
    assert_eq!(
        dns,
        [
            "198.18.4.54".parse::<std::net::IpAddr>().unwrap(),
            "198.18.4.53".parse().unwrap()
        ]
    );
    assert_eq!(addrs.len(), 1, "{addrs:?}");
    assert_eq!(problems(&events), Vec::<String>::new());
}

/// Static IPv4 and IPv6 → a new IPv6 address; then the interface is left
/// out of the settings: everything mote put there goes, and its resolvers.
#[test]
fn ipv6_change_then_interface_removed_from_settings() {
    let (node, peer) = pair(
        "v6",
        &["198.18.11.1/24", "2001:db8:11::1/64", "2001:db8:12::1/64"],
    );
    let mut first = static4("198.18.11.10/24", "198.18.11.1");
    first.ipv6 = Ipv6Mode::Static("2001:db8:11::10/64".parse().unwrap());
    first.gateway6 = Some("2001:db8:11::1".parse().unwrap());
    first.dns = vec!["2001:db8:11::53".parse().unwrap()];
    let mut second = first.clone();
    second.ipv6 = Ipv6Mode::Static("2001:db8:12::10/64".parse().unwrap());
    second.gateway6 = Some("2001:db8:12::1".parse().unwrap());
    second.dns = vec!["2001:db8:12::53".parse().unwrap()];
    let dir = tempfile::tempdir().unwrap();
    let resolv = dir.path().join("resolv.conf");
    let events = Events::new(false);
    let netns = node.name.clone();
    let (changed, resolv_changed, removed) = node.run({
        let events = events.clone();
        let options = options(&dir);
        let resolv = resolv.clone();
        async move || {
            let state = configure_with(&network(&[("eth0", &first)]), &events, options).await;
            let net = network(&[("eth0", &second)]);
            reconfigure_interface(&state, "eth0", Some(&second), &net, &events)
                .await
                .expect("new IPv6");
            let changed = state.addresses();
            let resolv_changed = std::fs::read_to_string(&resolv).unwrap();
            reconfigure_interface(&state, "eth0", None, &Network::default(), &events)
                .await
                .expect("removed");
            let _ = netns;
            (changed, resolv_changed, state.addresses())
        }
    });
    assert_eq!(
        changed,
        [
            "198.18.11.10".parse::<std::net::IpAddr>().unwrap(),
            "2001:db8:12::10".parse().unwrap()
        ]
    );
    assert!(
        resolv_changed.ends_with("\nnameserver 2001:db8:12::53\n"),
        "{resolv_changed}"
    );
    assert_eq!(resolv_changed.matches("nameserver").count(), 1);
    assert!(removed.is_empty(), "no address left: {removed:?}");
    assert_eq!(defaults(&node.name, "-4"), []);
    assert_eq!(defaults(&node.name, "-6"), []);
    let text = std::fs::read_to_string(&resolv).unwrap();
    assert!(!text.contains("nameserver"), "no resolver left: {text:?}");
    assert!(!ping(&peer, "198.18.11.10"));
    assert_eq!(problems(&events), Vec::<String>::new());
    assert!(events
        .recent()
        .iter()
        .any(|e| e.message == "eth0: unconfigured"));
}

/// `ip -j` routes of one family's main table, as `RouteInfo` would show
/// them: (destination with prefix or `default`, gateway, interface).
fn ip_routes(netns: &str, family: &str) -> BTreeSet<(String, Option<String>, Option<String>)> {
    let json = ip_json_in(netns, &[family, "route", "show", "table", "main"]);
    let host = if family == "-4" { "/32" } else { "/128" };
    json.as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["type"].as_str().is_none_or(|t| t == "unicast"))
        .map(|r| {
            let dst = r["dst"].as_str().unwrap().to_owned();
            let dst = if dst == "default" || dst.contains('/') {
                dst
            } else {
                dst + host
            };
            let s = |k: &str| r[k].as_str().map(str::to_owned);
            (dst, s("gateway"), s("dev"))
        })
        .collect()
}

fn info_routes(info: &NetworkInfo) -> BTreeSet<(String, Option<String>, Option<String>)> {
    info.routes
        .iter()
        .map(|r| {
            (
                r.destination.clone(),
                r.gateway.clone(),
                r.interface.clone(),
            )
        })
        .collect()
}

/// Compare `info` with `ip -j link`, `addr` and `route` in `netns`.
fn check_against_ip(netns: &str, info: &NetworkInfo) {
    let links = ip_json_in(netns, &["link", "show"]);
    let addrs = ip_json_in(netns, &["addr", "show"]);
    let links = links.as_array().unwrap();
    assert_eq!(
        info.links.iter().map(|l| &l.name).collect::<BTreeSet<_>>(),
        links
            .iter()
            .map(|l| l["ifname"].as_str().unwrap().to_owned())
            .collect::<BTreeSet<_>>()
            .iter()
            .collect(),
        "{info:#?}"
    );
    for link in links {
        let name = link["ifname"].as_str().unwrap();
        let got = info.links.iter().find(|l| l.name == name).unwrap();
        let flags: Vec<&str> = link["flags"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(got.mtu, link["mtu"].as_u64().unwrap() as u32, "{name}");
        assert_eq!(got.mac.as_deref(), link["address"].as_str(), "{name}");
        assert_eq!(
            got.up,
            flags.contains(&"UP") && flags.contains(&"LOWER_UP"),
            "{name}: {flags:?}"
        );
        let expected: BTreeSet<String> = addrs
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["ifname"] == name)
            .flat_map(|a| a["addr_info"].as_array().unwrap().iter())
            .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
            .collect();
        let got_addrs: BTreeSet<String> = got.addresses.iter().cloned().collect();
        assert_eq!(got_addrs, expected, "{name}");
        assert_eq!(got_addrs.len(), got.addresses.len(), "{name}: no repeats");
    }
    let mut expected = ip_routes(netns, "-4");
    expected.extend(ip_routes(netns, "-6"));
    assert_eq!(info_routes(info), expected);
    assert_eq!(info.routes.len(), expected.len(), "no repeats");
}

/// No tentative (DAD in progress) IPv6 address left on any link.
fn settled(netns: &str) -> bool {
    let addrs = ip_json_in(netns, &["-6", "addr", "show"]);
    !addrs
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["addr_info"].as_array().into_iter().flatten())
        .any(|a| a["tentative"].as_bool() == Some(true))
}

#[test]
fn network_info_matches_the_kernel() {
    let (node, _peer) = pair("info", &["198.18.9.1/24", "2001:db8:9::1/64"]);
    // A second link whose peer stays down: up but without a carrier.
    let peer2 = Netns::new("info-peer2");
    veth(&node, "eth1", &peer2, "peer1");
    let mut eth0 = static4("198.18.9.10/24", "198.18.9.1");
    eth0.ipv6 = Ipv6Mode::Static("2001:db8:9::10/64".parse().unwrap());
    eth0.gateway6 = Some("2001:db8:9::1".parse().unwrap());
    eth0.dns = vec![
        "198.18.9.53".parse().unwrap(),
        "2001:db8:9::53".parse().unwrap(),
    ];
    eth0.mtu = Some(1400);
    let eth1 = iface(Ipv4Mode::Off);
    let settings = network(&[("eth0", &eth0), ("eth1", &eth1)]);
    // Not unicast: never listed.
    node.sh(&["ip", "route", "add", "blackhole", "198.18.77.0/24"]);
    node.sh(&["ip", "route", "add", "unreachable", "2001:db8:77::/48"]);
    let dir = tempfile::tempdir().unwrap();
    let events = Events::new(false);
    let state = node.run({
        let events = events.clone();
        let options = options(&dir);
        let settings = settings.clone();
        async move || configure_with(&settings, &events, options).await
    });
    assert_eq!(problems(&events), Vec::<String>::new());
    // Off-link host route, to see a /32 destination with a gateway.
    node.sh(&["ip", "route", "add", "198.18.100.7", "via", "198.18.9.1"]);
    wait_until(Duration::from_secs(5), "IPv6 DAD to finish", || {
        settled(&node.name).then_some(())
    });

    let info = node.run_sync({
        let state = state.clone();
        move || {
            // What the control handler does for `Network`.
            let dns = state
                .dns_servers()
                .iter()
                .map(ToString::to_string)
                .collect();
            inspect(&settings, dns).expect("inspect")
        }
    });
    println!("{info:#?}");
    check_against_ip(&node.name, &info);

    let link = |name: &str| info.links.iter().find(|l| l.name == name).unwrap();
    let eth0 = link("eth0");
    assert_eq!(
        (eth0.mtu, eth0.up, eth0.ipv4.as_str()),
        (1400, true, "static")
    );
    assert!(eth0.addresses.contains(&"198.18.9.10/24".to_owned()));
    assert!(eth0.addresses.contains(&"2001:db8:9::10/64".to_owned()));
    assert!(eth0.mac.as_ref().is_some_and(|m| m.len() == 17), "{eth0:?}");
    let eth1 = link("eth1");
    assert_eq!((eth1.up, eth1.ipv4.as_str()), (false, "off"));
    assert_eq!(link("lo").ipv4, "off");
    assert!(link("lo").addresses.contains(&"127.0.0.1/8".to_owned()));
    let routes = info_routes(&info);
    for (gateway, dev) in [("198.18.9.1", "eth0"), ("2001:db8:9::1", "eth0")] {
        let route = ("default".to_owned(), Some(gateway.into()), Some(dev.into()));
        assert!(routes.contains(&route), "{route:?} in {routes:#?}");
    }
    assert!(routes.contains(&(
        "198.18.100.7/32".to_owned(),
        Some("198.18.9.1".into()),
        Some("eth0".into())
    )));
    assert!(
        !info
            .routes
            .iter()
            .any(|r| r.destination.contains(":77:") || r.destination.starts_with("198.18.77.")),
        "blackhole/unreachable routes are not listed: {routes:#?}"
    );
    assert_eq!(info.dns, ["198.18.9.53", "2001:db8:9::53"]);
}

fn node_settings(eth0: &Interface) -> NodeSettings {
    let mut s = NodeSettings::default();
    s.system.hostname = "reconf".into();
    s.system.admin_password_hash = mote_config::password::hash("x").unwrap();
    s.management.enabled = false;
    s.network = network(&[("eth0", eth0)]);
    s
}

async fn ask(
    lines: &mut tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
    writer: &mut tokio::net::unix::OwnedWriteHalf,
    request: &Request,
) -> Response {
    let mut line = serde_json::to_vec(request).unwrap();
    line.push(b'\n');
    writer.write_all(&line).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(15), lines.next_line())
        .await
        .expect("an answer in time")
        .unwrap()
        .expect("a line");
    serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{answer}: {e}"))
}

/// `Apply` over the control socket, with a real `Node` whose network is the
/// test namespace's: static → DHCP (dnsmasq) → static, then `Network`
/// reports what the kernel has.
#[test]
fn apply_over_the_control_socket_reconfigures_the_interface() {
    let (node_ns, server) = pair("apply", &["198.18.10.1/24"]);
    let dir = tempfile::tempdir().unwrap();
    let _dnsmasq = servers::dnsmasq(
        &server,
        dir.path(),
        "peer0",
        ("198.18.10.50", "198.18.10.60"),
        "198.18.10.1",
        "198.18.10.53",
    );
    let first = node_settings(&static4("198.18.10.10/24", "198.18.10.1"));
    let second = node_settings(&iface(Ipv4Mode::Dhcp));
    let mut third = node_settings(&static4("198.18.10.20/24", "198.18.10.1"));
    third.network.interfaces.get_mut("eth0").unwrap().dns = vec!["198.18.10.54".parse().unwrap()];
    let socket = dir.path().join("control.sock");
    let events = Events::new(false);
    let netns = node_ns.name.clone();
    let net_options = options(&dir);
    let moted = dir.path().join("no-moted");
    let (leased, info, settings_after) = node_ns.run({
        let events = events.clone();
        let third = third.clone();
        async move || {
            let state: NetState = configure_with(&first.network, &events, net_options).await;
            // No reaper: nothing here spawns, and a process-wide
            // waitpid(-1) would steal the other tests' `ip` statuses.
            let supervisor = Supervisor::new(
                &Arc::new(Reaper::default()),
                &events,
                Limits::default(),
                None,
            );
            let (power, _power_rx) = tokio::sync::mpsc::channel(1);
            let options = NodeOptions {
                hostname: false,
                firewall: false,
                network: true,
                moted,
                ..NodeOptions::default()
            };
            let node = Arc::new(Node::new(
                events.clone(),
                supervisor,
                first,
                0,
                options,
                power,
            ));
            node.set_net(state.clone());
            serve(&socket, Arc::clone(&node)).expect("control socket");
            let (reader, mut writer) = tokio::net::UnixStream::connect(&socket)
                .await
                .unwrap()
                .into_split();
            let mut lines = BufReader::new(reader).lines();

            let apply = |s: &NodeSettings| Request::Apply {
                settings: Box::new(s.clone()),
                version: None,
            };
            let answer = ask(&mut lines, &mut writer, &apply(&second)).await;
            assert_eq!(answer, Response::Ok);
            let lease = poll(Duration::from_secs(10), "a lease", || {
                state.leases().into_iter().next()
            })
            .await;
            let leased = (lease.1.address, ipv4_cidrs(&netns, "eth0"));
            let Response::Network(during) = ask(&mut lines, &mut writer, &Request::Network).await
            else {
                panic!("not a Network answer");
            };
            assert_eq!(during.dns, ["198.18.10.53"]);
            let eth0 = during.links.iter().find(|l| l.name == "eth0").unwrap();
            assert_eq!(eth0.ipv4, "dhcp");
            assert!(
                eth0.addresses.contains(&format!("{}/24", lease.1.address)),
                "{during:#?}"
            );

            let answer = ask(&mut lines, &mut writer, &apply(&third)).await;
            assert_eq!(answer, Response::Ok);
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert!(
                !udp_port_bound_here(DHCP_CLIENT_PORT),
                "DHCP client stopped"
            );
            let Response::Network(info) = ask(&mut lines, &mut writer, &Request::Network).await
            else {
                panic!("not a Network answer");
            };
            (leased, info, node.settings())
        }
    });
    let (address, addrs_while_leased) = leased;
    assert_eq!(addrs_while_leased, [format!("{address}/24")]);
    assert_eq!(settings_after, third);
    check_against_ip(&node_ns.name, &info);
    let eth0 = info.links.iter().find(|l| l.name == "eth0").unwrap();
    assert_eq!(eth0.ipv4, "static");
    let v4: Vec<&String> = eth0.addresses.iter().filter(|a| !a.contains(':')).collect();
    assert_eq!(v4, ["198.18.10.20/24"]);
    assert!(info.routes.iter().any(|r| r.destination == "default"
        && r.gateway.as_deref() == Some("198.18.10.1")
        && r.interface.as_deref() == Some("eth0")));
    assert_eq!(info.dns, ["198.18.10.54"]);
    assert_eq!(problems(&events), Vec::<String>::new());
    let log: Vec<String> = events.recent().into_iter().map(|e| e.message).collect();
    assert_eq!(
        log.iter().filter(|m| *m == "new settings applied").count(),
        2,
        "{log:#?}"
    );
}
