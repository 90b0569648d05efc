//! The DHCPv4 client against real servers in a namespace next door: dnsmasq
//! for a lease, busybox udhcpd for a short lease that must be renewed.

mod net_support;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use mote_config::{Firewall, Interface, Ipv4Mode, Ipv6Mode, Network, Port, Protocol};
use mote_init::events::{Events, Level};
use mote_init::net::{apply_firewall, configure_with, NetOptions};
use net_support::{require, veth, wait_until, Netns};

fn dhcp_network() -> Network {
    let eth0 = Interface {
        ipv4: Ipv4Mode::Dhcp,
        gateway4: None,
        ipv6: Ipv6Mode::Off,
        gateway6: None,
        dns: Vec::new(),
        mtu: None,
    };
    Network {
        interfaces: BTreeMap::from([("eth0".to_owned(), eth0)]),
    }
}

/// The node and server namespaces, joined by eth0 ↔ `server_if`, the
/// server end up with `server_ip`/24.
fn pair(tag: &str, server_if: &str, server_ip: &str) -> (Netns, Netns) {
    let node = Netns::new(&format!("{tag}-node"));
    let server = Netns::new(&format!("{tag}-srv"));
    veth(&node, "eth0", &server, server_if);
    server.sh(&[
        "ip",
        "addr",
        "add",
        &format!("{server_ip}/24"),
        "dev",
        server_if,
    ]);
    server.sh(&["ip", "link", "set", server_if, "up"]);
    (node, server)
}

fn messages(events: &Events, source: &str) -> Vec<String> {
    events
        .recent()
        .into_iter()
        .filter(|e| e.source == source)
        .map(|e| e.message)
        .collect()
}

fn eth0_ipv4(node: &Netns) -> Vec<(Ipv4Addr, u64, u64)> {
    let json = node.ip_json(&["-4", "addr", "show", "dev", "eth0"]);
    json[0]["addr_info"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| {
            let ip = a["local"].as_str()?.parse().ok()?;
            Some((ip, a["prefixlen"].as_u64()?, a["valid_life_time"].as_u64()?))
        })
        .collect()
}

fn default_route(node: &Netns) -> Option<(String, String)> {
    let routes = node.ip_json(&["-4", "route", "show", "default"]);
    let route = routes.as_array()?.first()?.clone();
    Some((
        route["gateway"].as_str()?.to_owned(),
        route["protocol"].as_str()?.to_owned(),
    ))
}

#[test]
fn dnsmasq_grants_a_lease_with_route_and_resolvers() {
    let dnsmasq = require("dnsmasq", "dnsmasq-base");
    let (node, server) = pair("dnsmasq", "peer0", "198.18.2.1");
    let dir = tempfile::tempdir().unwrap();
    let leases = dir.path().join("dnsmasq.leases");
    let _server = server.spawn(&[
        dnsmasq.to_str().unwrap(),
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--port=0",
        "--user=root",
        "--interface=peer0",
        "--bind-interfaces",
        "--dhcp-range=198.18.2.50,198.18.2.60,255.255.255.0,2m",
        "--dhcp-option=option:router,198.18.2.1",
        "--dhcp-option=option:dns-server,198.18.2.53",
        "--dhcp-authoritative",
        "--no-ping",
        &format!("--dhcp-leasefile={}", leases.display()),
        &format!("--pid-file={}", dir.path().join("dnsmasq.pid").display()),
        "--log-facility=-",
        "--log-dhcp",
    ]);
    // Ready once it has written its pid file (after binding its sockets).
    wait_until(Duration::from_secs(5), "dnsmasq to start", || {
        dir.path().join("dnsmasq.pid").exists().then_some(())
    });

    let resolv = dir.path().join("resolv.conf");
    let options = NetOptions {
        resolv_conf: resolv.clone(),
        ..NetOptions::default()
    };
    let events = Events::new(false);
    let (took, leases_seen) = node.run({
        let events = events.clone();
        async move || {
            let start = Instant::now();
            let state = configure_with(&dhcp_network(), &events, options).await;
            (start.elapsed(), state.leases())
        }
    });
    let log = messages(&events, "dhcp");
    println!(
        "configure() returned after {took:?} with {} lease(s); events: {log:#?}",
        leases_seen.len()
    );
    assert!(
        took < Duration::from_millis(3500),
        "configure() waits at most ~3 s for a lease: {took:?}"
    );
    assert_eq!(
        leases_seen.len(),
        1,
        "a lease within the 3 s wait: {log:#?}"
    );
    let (name, lease) = &leases_seen[0];
    assert_eq!(name, "eth0");
    assert!((50..=60).contains(&lease.address.octets()[3]), "{lease:?}");
    assert_eq!(
        (lease.prefix_len, lease.router, lease.lease_secs),
        (24, Some(Ipv4Addr::new(198, 18, 2, 1)), 120)
    );
    assert_eq!(lease.dns, [Ipv4Addr::new(198, 18, 2, 53)]);

    let addrs = eth0_ipv4(&node);
    assert_eq!(addrs.len(), 1, "{addrs:?}");
    assert_eq!((addrs[0].0, addrs[0].1), (lease.address, 24));
    assert!(
        addrs[0].2 <= 120,
        "the address carries the lease as its lifetime: {addrs:?}"
    );
    assert_eq!(
        default_route(&node),
        Some(("198.18.2.1".into(), "dhcp".into()))
    );
    let text = std::fs::read_to_string(&resolv).unwrap();
    assert!(text.contains("nameserver 198.18.2.53\n"), "{text}");
    assert!(
        log.iter().any(|m| m.starts_with("eth0: DISCOVER sent")),
        "{log:#?}"
    );
    assert!(log.iter().any(|m| m.contains("OFFER of")), "{log:#?}");
    assert!(log.iter().any(|m| m.starts_with("eth0: ACK: ")), "{log:#?}");
    let granted = std::fs::read_to_string(&leases).unwrap_or_default();
    assert!(
        granted.contains(&lease.address.to_string()),
        "dnsmasq's lease file: {granted}"
    );
}

fn write_udhcpd_conf(dir: &Path, lease_secs: u32) -> String {
    let conf = dir.join("udhcpd.conf");
    std::fs::write(
        &conf,
        format!(
            "interface peer1\nstart 198.18.3.50\nend 198.18.3.60\noption subnet 255.255.255.0\n\
             option router 198.18.3.1\noption dns 198.18.3.53\noption lease {lease_secs}\n\
             lease_file {dir}/udhcpd.leases\npidfile {dir}/udhcpd.pid\n",
            dir = dir.display()
        ),
    )
    .unwrap();
    std::fs::write(dir.join("udhcpd.leases"), "").unwrap();
    conf.display().to_string()
}

/// Start udhcpd in `server` and wait until it has written its pid file.
fn start_udhcpd(server: &Netns, dir: &Path, lease_secs: u32) -> net_support::Killed {
    let busybox = require("busybox", "busybox");
    let conf = write_udhcpd_conf(dir, lease_secs);
    let udhcpd = server.spawn(&[
        busybox.to_str().unwrap(),
        "udhcpd",
        "-f",
        "-a",
        "100",
        &conf,
    ]);
    let pid = dir.join("udhcpd.pid");
    wait_until(Duration::from_secs(5), "udhcpd to start", || {
        pid.exists().then_some(())
    });
    udhcpd
}

/// A 10-second lease from udhcpd: renewed (unicast) at T1 = 5 s and again at
/// 10 s, so it is still there after the first lease would have expired —
/// all with the firewall up, which must let the server's replies in.
#[test]
fn udhcpd_short_lease_is_renewed_at_t1_through_the_firewall() {
    let (node, server) = pair("udhcpd", "peer1", "198.18.3.1");
    let dir = tempfile::tempdir().unwrap();
    let _server = start_udhcpd(&server, dir.path(), 10);

    let resolv = dir.path().join("resolv.conf");
    let options = NetOptions {
        resolv_conf: resolv.clone(),
        ..NetOptions::default()
    };
    let events = Events::new(false);
    let start = Instant::now();
    let (leases_at_start, leases_at_end) = node.run({
        let events = events.clone();
        async move || {
            let ssh = Port {
                number: 22,
                protocol: Protocol::Tcp,
            };
            apply_firewall(&Firewall::default(), &[ssh], &events).expect("firewall");
            let state = configure_with(&dhcp_network(), &events, options).await;
            let first = state.leases();
            // Past T1 (5 s), the original expiry (10 s) and the second T1.
            tokio::time::sleep(Duration::from_secs(12)).await;
            (first, state.leases())
        }
    });
    let log: Vec<String> = events
        .recent()
        .into_iter()
        .filter(|e| e.source == "dhcp" && e.level >= Level::Info)
        .map(|e| {
            format!(
                "+{:>5} ms {}",
                e.time_ms.saturating_sub(start_ms(&events)),
                e.message
            )
        })
        .collect();
    println!("{}", log.join("\n"));
    assert_eq!(leases_at_start.len(), 1, "{log:#?}");
    assert_eq!(leases_at_start[0].1.lease_secs, 10);
    let renewals = log
        .iter()
        .filter(|m| m.contains("eth0: renewed: 198.18.3."))
        .count();
    assert!(renewals >= 2, "renewed at 5 s and 10 s: {log:#?}");
    assert!(
        !log.iter()
            .any(|m| m.contains("expired") || m.contains("T2")),
        "{log:#?}"
    );
    assert_eq!(leases_at_end.len(), 1, "still leased after 12 s: {log:#?}");
    let addrs = eth0_ipv4(&node);
    assert_eq!(addrs.len(), 1, "{addrs:?}");
    assert_eq!(addrs[0].0, leases_at_end[0].1.address);
    assert!(start.elapsed() < Duration::from_secs(20));
}

fn start_ms(events: &Events) -> u64 {
    events.recent().first().map_or(0, |e| e.time_ms)
}

/// The server disappears after granting a 6-second lease: renewing at 3 s
/// and rebinding at 5.25 s get no answer, and at 6 s the address, the
/// default route and the lease's resolver are removed.
#[test]
fn when_the_server_is_gone_the_lease_expires_and_is_removed() {
    let (node, server) = pair("expiry", "peer1", "198.18.3.1");
    let dir = tempfile::tempdir().unwrap();
    let udhcpd = start_udhcpd(&server, dir.path(), 6);
    let resolv = dir.path().join("resolv.conf");
    let options = NetOptions {
        resolv_conf: resolv.clone(),
        ..NetOptions::default()
    };
    let events = Events::new(false);
    let (first, last, resolv_while_leased) = node.run({
        let events = events.clone();
        let resolv = resolv.clone();
        async move || {
            let state = configure_with(&dhcp_network(), &events, options).await;
            let first = state.leases();
            let text = std::fs::read_to_string(&resolv).unwrap_or_default();
            drop(udhcpd);
            tokio::time::sleep(Duration::from_secs(7)).await;
            (first, state.leases(), text)
        }
    });
    let log = messages(&events, "dhcp");
    println!("{log:#?}");
    assert_eq!(first.len(), 1, "{log:#?}");
    assert!(
        resolv_while_leased.contains("nameserver 198.18.3.53"),
        "{resolv_while_leased}"
    );
    assert!(last.is_empty(), "the lease is gone: {last:?}");
    for step in ["T1 reached", "T2 reached", "expired; removing it"] {
        assert!(log.iter().any(|m| m.contains(step)), "{step}: {log:#?}");
    }
    assert!(eth0_ipv4(&node).is_empty(), "address removed");
    assert_eq!(default_route(&node), None, "route removed");
    let text = std::fs::read_to_string(&resolv).unwrap();
    assert!(!text.contains("198.18.3.53"), "resolver removed: {text}");
}
