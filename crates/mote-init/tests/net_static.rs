//! Static addressing, SLAAC and IPv6-off switches, MTU, resolv.conf and a
//! missing interface, each in namespaces of the test's own.

mod net_support;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use mote_config::{Interface, Ipv4Mode, Ipv6Mode, Network};
use mote_init::events::{Events, Level};
use mote_init::net::{configure_with, NetOptions};
use net_support::{ping, veth, wait_until, Netns};
use serde_json::Value;

fn interface(ipv4: Ipv4Mode, ipv6: Ipv6Mode) -> Interface {
    Interface {
        ipv4,
        gateway4: None,
        ipv6,
        gateway6: None,
        dns: Vec::new(),
        mtu: None,
    }
}

fn addresses(netns: &Netns, dev: &str) -> Vec<(String, u64)> {
    let json = netns.ip_json(&["addr", "show", "dev", dev]);
    json[0]["addr_info"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            (
                a["local"].as_str().unwrap_or_default().to_owned(),
                a["prefixlen"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

fn default_gateway(netns: &Netns, family: &str) -> Option<(String, String)> {
    let routes = netns.ip_json(&[family, "route", "show", "default"]);
    routes.as_array()?.first().map(|r: &Value| {
        (
            r["gateway"].as_str().unwrap_or_default().to_owned(),
            r["protocol"].as_str().unwrap_or_default().to_owned(),
        )
    })
}

#[test]
fn static_ipv4_and_ipv6_with_gateways_mtu_and_resolvers() {
    let node = Netns::new("static-node");
    let peer = Netns::new("static-peer");
    veth(&node, "eth0", &peer, "peer0");
    peer.sh(&["ip", "addr", "add", "198.18.1.1/24", "dev", "peer0"]);
    peer.sh(&[
        "ip",
        "addr",
        "add",
        "2001:db8:1::1/64",
        "dev",
        "peer0",
        "nodad",
    ]);
    peer.sh(&["ip", "link", "set", "peer0", "up"]);

    let dir = tempfile::tempdir().unwrap();
    let resolv = dir.path().join("resolv.conf");
    let mut eth0 = interface(
        Ipv4Mode::Static("198.18.1.10/24".parse().unwrap()),
        Ipv6Mode::Static("2001:db8:1::10/64".parse().unwrap()),
    );
    eth0.gateway4 = Some("198.18.1.1".parse().unwrap());
    eth0.gateway6 = Some("2001:db8:1::1".parse().unwrap());
    eth0.dns = vec![
        "198.18.1.53".parse().unwrap(),
        "2001:db8:1::53".parse().unwrap(),
    ];
    eth0.mtu = Some(1400);
    let network = Network {
        interfaces: BTreeMap::from([("eth0".to_owned(), eth0)]),
    };
    let events = Events::new(false);

    let options = NetOptions {
        resolv_conf: resolv.clone(),
        ..NetOptions::default()
    };
    let (took, reported) = node.run({
        let events = events.clone();
        async move || {
            let start = Instant::now();
            let state = configure_with(&network, &events, options).await;
            (start.elapsed(), state.addresses())
        }
    });
    let problems: Vec<_> = events
        .recent()
        .into_iter()
        .filter(|e| e.level >= Level::Warn)
        .collect();
    assert!(problems.is_empty(), "{problems:#?}");
    println!("configure() with static addresses took {took:?}");
    assert!(
        took < Duration::from_secs(1),
        "static configuration is immediate: {took:?}"
    );

    let addrs = addresses(&node, "eth0");
    assert!(addrs.contains(&("198.18.1.10".into(), 24)), "{addrs:?}");
    assert!(addrs.contains(&("2001:db8:1::10".into(), 64)), "{addrs:?}");
    assert_eq!(
        default_gateway(&node, "-4"),
        Some(("198.18.1.1".into(), "static".into()))
    );
    assert_eq!(
        default_gateway(&node, "-6"),
        Some(("2001:db8:1::1".into(), "static".into()))
    );
    let link = node.ip_json(&["link", "show", "dev", "eth0"]);
    assert_eq!(link[0]["mtu"], 1400);
    let lo = node.ip_json(&["link", "show", "dev", "lo"]);
    assert!(
        lo[0]["flags"].as_array().unwrap().iter().any(|f| f == "UP"),
        "lo is up: {lo}"
    );
    assert_eq!(node.sysctl("/proc/sys/net/ipv6/conf/eth0/accept_ra"), "0");

    let expected: Vec<IpAddr> = vec![
        "198.18.1.10".parse().unwrap(),
        "2001:db8:1::10".parse().unwrap(),
    ];
    assert_eq!(reported, expected, "NetState::addresses()");
    let text = std::fs::read_to_string(&resolv).unwrap();
    assert!(
        text.contains("nameserver 198.18.1.53\nnameserver 2001:db8:1::53\n"),
        "{text}"
    );

    assert!(ping(&peer, "198.18.1.10"), "IPv4 ping from the peer");
    // The static IPv6 address does duplicate address detection first (~1 s).
    wait_until(Duration::from_secs(5), "IPv6 ping from the peer", || {
        ping(&peer, "2001:db8:1::10").then_some(())
    });
    // And out through the gateway: the peer answers for an off-link address.
    peer.sh(&["ip", "addr", "add", "198.18.99.1/32", "dev", "lo"]);
    assert!(ping(&node, "198.18.99.1"), "off-link IPv4 through gateway4");
}

#[test]
fn slaac_and_ipv6_off_set_the_kernel_switches() {
    let node = Netns::new("slaac-node");
    let peer = Netns::new("slaac-peer");
    veth(&node, "eth0", &peer, "peer0");
    veth(&node, "eth1", &peer, "peer1");
    let network = Network {
        interfaces: BTreeMap::from([
            ("eth0".to_owned(), interface(Ipv4Mode::Off, Ipv6Mode::Slaac)),
            ("eth1".to_owned(), interface(Ipv4Mode::Off, Ipv6Mode::Off)),
        ]),
    };
    let dir = tempfile::tempdir().unwrap();
    let resolv = dir.path().join("resolv.conf");
    let options = NetOptions {
        resolv_conf: resolv.clone(),
        ..NetOptions::default()
    };
    let events = Events::new(false);
    node.run({
        let events = events.clone();
        async move || drop(configure_with(&network, &events, options).await)
    });
    let problems: Vec<_> = events
        .recent()
        .into_iter()
        .filter(|e| e.level >= Level::Warn)
        .collect();
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(node.sysctl("/proc/sys/net/ipv6/conf/eth0/accept_ra"), "1");
    assert_eq!(node.sysctl("/proc/sys/net/ipv6/conf/eth0/autoconf"), "1");
    assert_eq!(
        node.sysctl("/proc/sys/net/ipv6/conf/eth0/disable_ipv6"),
        "0"
    );
    assert_eq!(
        node.sysctl("/proc/sys/net/ipv6/conf/eth1/disable_ipv6"),
        "1"
    );
    let eth1 = node.ip_json(&["link", "show", "dev", "eth1"]);
    assert!(
        eth1[0]["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "UP"),
        "{eth1}"
    );
    assert!(
        !resolv.exists(),
        "no resolver known: resolv.conf is left alone"
    );
}

#[test]
fn a_missing_interface_is_an_event_after_a_bounded_wait() {
    let node = Netns::new("missing");
    let network = Network {
        interfaces: BTreeMap::from([(
            "eth7".to_owned(),
            interface(
                Ipv4Mode::Static("198.18.1.10/24".parse().unwrap()),
                Ipv6Mode::Off,
            ),
        )]),
    };
    let dir = tempfile::tempdir().unwrap();
    let options = NetOptions {
        resolv_conf: dir.path().join("resolv.conf"),
        link_wait: Duration::from_millis(500),
        ..NetOptions::default()
    };
    let events = Events::new(false);
    let took = node.run({
        let events = events.clone();
        async move || {
            let start = Instant::now();
            let state = configure_with(&network, &events, options).await;
            assert!(state.addresses().is_empty());
            start.elapsed()
        }
    });
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(1500),
        "waited {took:?}"
    );
    let errors: Vec<String> = events
        .recent()
        .into_iter()
        .filter(|e| e.level == Level::Error)
        .map(|e| e.message)
        .collect();
    assert_eq!(errors, ["eth7: no such interface; leaving it unconfigured"]);
}

#[test]
fn an_interface_that_appears_late_is_waited_for() {
    let node = Netns::new("late-node");
    let peer = Netns::new("late-peer");
    let network = Network {
        interfaces: BTreeMap::from([(
            "eth0".to_owned(),
            interface(
                Ipv4Mode::Static("198.18.1.10/24".parse().unwrap()),
                Ipv6Mode::Off,
            ),
        )]),
    };
    let dir = tempfile::tempdir().unwrap();
    let options = NetOptions {
        resolv_conf: dir.path().join("resolv.conf"),
        ..NetOptions::default()
    };
    let events = Events::new(false);
    let (node_name, peer_name) = (node.name.clone(), peer.name.clone());
    let creator = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(400));
        net_support::run(
            "ip",
            &[
                "link", "add", "eth0", "netns", &node_name, "type", "veth", "peer", "name",
                "peer0", "netns", &peer_name,
            ],
        );
    });
    node.run({
        let events = events.clone();
        async move || drop(configure_with(&network, &events, options).await)
    });
    creator.join().unwrap();
    let problems: Vec<_> = events
        .recent()
        .into_iter()
        .filter(|e| e.level >= Level::Warn)
        .collect();
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(addresses(&node, "eth0").contains(&("198.18.1.10".into(), 24)));
}
