//! The nftables firewall in a namespace of its own: what `nft` reads back,
//! which TCP ports the peer can reach, and re-applying a changed ruleset
//! atomically while connections are being tried.

mod net_support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mote_config::{Firewall, FirewallRule, Policy, Port, Protocol};
use mote_init::events::Events;
use mote_init::net::apply_firewall;
use net_support::{require, veth, Netns};
use serde_json::Value;

const NODE: &str = "198.18.4.10";

fn tcp(number: u16) -> Port {
    Port {
        number,
        protocol: Protocol::Tcp,
    }
}

fn rule(name: &str, port: u16, source: Option<&str>, action: Policy) -> FirewallRule {
    FirewallRule {
        name: name.into(),
        port,
        protocol: Protocol::Tcp,
        source: source.map(|s| s.parse().unwrap()),
        action,
        enabled: true,
    }
}

struct Setup {
    node: Netns,
    peer: Netns,
}

fn setup(tag: &str) -> Setup {
    require("nft", "nftables");
    let node = Netns::new(&format!("{tag}-node"));
    let peer = Netns::new(&format!("{tag}-peer"));
    veth(&node, "eth0", &peer, "peer0");
    node.sh(&["ip", "addr", "add", &format!("{NODE}/24"), "dev", "eth0"]);
    node.sh(&["ip", "link", "set", "eth0", "up"]);
    peer.sh(&["ip", "addr", "add", "198.18.4.1/24", "dev", "peer0"]);
    peer.sh(&["ip", "link", "set", "peer0", "up"]);
    Setup { node, peer }
}

/// Listeners on `ports` inside the node's namespace, each answering "hi"
/// to every connection, for as long as the returned guard lives.
fn listen(node: &Netns, ports: &[u16]) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    for &port in ports {
        let listener = node.run_sync(move || TcpListener::bind(("0.0.0.0", port)).expect("bind"));
        listener.set_nonblocking(true).unwrap();
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        let _ = stream.write_all(b"hi");
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
    }
    stop
}

/// Connect from the peer's namespace: Ok(()) when it answered, the error kind otherwise.
fn connect(peer: &Netns, port: u16, wait: Duration) -> Result<(), ErrorKind> {
    peer.run_sync(move || {
        let address: SocketAddr = format!("{NODE}:{port}").parse().unwrap();
        let mut stream = TcpStream::connect_timeout(&address, wait).map_err(|e| e.kind())?;
        stream.set_read_timeout(Some(wait)).map_err(|e| e.kind())?;
        let mut hello = [0; 2];
        stream.read_exact(&mut hello).map_err(|e| e.kind())?;
        Ok(())
    })
}

/// Apply inside the node's namespace; how long `apply_firewall` took.
fn apply(node: &Netns, firewall: Firewall, ports: Vec<Port>) -> Duration {
    let events = Events::new(false);
    node.run_sync(move || {
        let start = Instant::now();
        apply_firewall(&firewall, &ports, &events).expect("apply_firewall");
        start.elapsed()
    })
}

fn ruleset(node: &Netns) -> Value {
    serde_json::from_str(&node.sh(&["nft", "-j", "list", "ruleset"])).expect("nft -j")
}

/// The `expr` lists of the rules, as nft reads them back.
fn rules(ruleset: &Value) -> Vec<Value> {
    ruleset["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|item| item.get("rule").map(|r| r["expr"].clone()))
        .collect()
}

fn dport_rule(port: u16, verdict: &str) -> Value {
    serde_json::json!([
        {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": port}},
        {verdict: null}
    ])
}

#[test]
fn nft_reads_back_the_table_chain_and_rules_we_meant() {
    let Setup { node, .. } = setup("fw-list");
    let firewall = Firewall {
        inbound: Policy::Deny,
        rules: vec![
            rule("ssh", 22, Some("198.18.4.0/24"), Policy::Allow),
            rule("telnet", 23, None, Policy::Deny),
        ],
    };
    apply(
        &node,
        firewall,
        vec![
            tcp(8080),
            Port {
                number: 53,
                protocol: Protocol::Udp,
            },
        ],
    );
    let json = ruleset(&node);
    let items = json["nftables"].as_array().unwrap();
    let tables: Vec<&Value> = items.iter().filter_map(|i| i.get("table")).collect();
    assert_eq!(tables.len(), 1, "{json}");
    assert_eq!(
        (tables[0]["family"].as_str(), tables[0]["name"].as_str()),
        (Some("inet"), Some("mote"))
    );
    let chain = items.iter().find_map(|i| i.get("chain")).expect("a chain");
    assert_eq!(chain["name"], "input");
    assert_eq!(chain["type"], "filter");
    assert_eq!(chain["hook"], "input");
    assert_eq!(chain["prio"], 0);
    assert_eq!(chain["policy"], "drop");

    let rules = rules(&json);
    let text = node.sh(&["nft", "list", "ruleset"]);
    println!("{text}");
    assert_eq!(rules.len(), 10, "{text}");
    assert_eq!(rules[0][0]["match"]["left"]["meta"]["key"], "iifname");
    assert_eq!(rules[0][0]["match"]["right"], "lo");
    assert_eq!(
        rules[1][0]["match"]["right"],
        serde_json::json!(["established", "related"])
    );
    assert_eq!(rules[2][0]["match"]["right"], "invalid");
    assert_eq!(rules[2][1], serde_json::json!({"drop": null}));
    assert_eq!(rules[3][0]["match"]["right"], "icmp");
    assert_eq!(rules[4][0]["match"]["right"], "ipv6-icmp");
    assert_eq!(
        rules[5][0]["match"]["left"]["payload"],
        serde_json::json!({"protocol": "udp", "field": "dport"})
    );
    assert_eq!(rules[5][0]["match"]["right"], 68);
    assert_eq!(
        rules[6][1]["match"],
        serde_json::json!({"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                           "right": {"prefix": {"addr": "198.18.4.0", "len": 24}}})
    );
    assert_eq!(rules[7], dport_rule(23, "drop"));
    // Service ports in order: 53/udp before 8080/tcp.
    assert_eq!(rules[8][0]["match"]["left"]["payload"]["protocol"], "udp");
    assert_eq!(rules[9], dport_rule(8080, "accept"));
    // Re-applying the same settings gives the same ruleset.
    let firewall = Firewall {
        inbound: Policy::Deny,
        rules: vec![
            rule("ssh", 22, Some("198.18.4.0/24"), Policy::Allow),
            rule("telnet", 23, None, Policy::Deny),
        ],
    };
    apply(
        &node,
        firewall,
        vec![
            tcp(8080),
            Port {
                number: 53,
                protocol: Protocol::Udp,
            },
        ],
    );
    assert_eq!(node.sh(&["nft", "list", "ruleset"]), text, "idempotent");
}

#[test]
fn declared_ports_are_reachable_and_others_are_dropped() {
    let Setup { node, peer } = setup("fw-reach");
    let _listeners = listen(&node, &[8080, 9090, 7070]);
    let quick = Duration::from_millis(700);
    assert_eq!(
        connect(&peer, 9090, quick),
        Ok(()),
        "no firewall yet: everything answers"
    );

    let firewall = Firewall {
        inbound: Policy::Deny,
        rules: vec![rule(
            "from-elsewhere",
            7070,
            Some("203.0.113.0/24"),
            Policy::Allow,
        )],
    };
    let took = apply(&node, firewall, vec![tcp(8080)]);
    println!("apply_firewall took {took:?}");
    assert_eq!(connect(&peer, 8080, quick), Ok(()), "a service port");
    assert_eq!(
        connect(&peer, 9090, quick),
        Err(ErrorKind::TimedOut),
        "undeclared: dropped, not refused"
    );
    assert_eq!(
        connect(&peer, 7070, quick),
        Err(ErrorKind::TimedOut),
        "allowed only from another network"
    );
    assert_eq!(
        connect(&peer, 6060, quick),
        Err(ErrorKind::TimedOut),
        "nothing listens, and no RST either"
    );

    // Inbound "allow" with a deny rule.
    let open = Firewall {
        inbound: Policy::Allow,
        rules: vec![rule("no-8080", 8080, None, Policy::Deny)],
    };
    apply(&node, open, vec![]);
    assert_eq!(connect(&peer, 9090, quick), Ok(()));
    assert_eq!(connect(&peer, 8080, quick), Err(ErrorKind::TimedOut));
    assert_eq!(
        connect(&peer, 6060, quick),
        Err(ErrorKind::ConnectionRefused),
        "policy accept: the RST comes back"
    );
}

#[test]
fn reapplying_swaps_rulesets_atomically_and_keeps_established_connections() {
    let Setup { node, peer } = setup("fw-swap");
    let _listeners = listen(&node, &[8080, 9090]);
    let only = |port| (Firewall::default(), vec![tcp(port)]);
    let (firewall, ports) = only(8080);
    apply(&node, firewall, ports);

    // A connection opened while 8080 is allowed…
    let established = peer.run_sync(|| {
        let stream = TcpStream::connect_timeout(
            &format!("{NODE}:8080").parse().unwrap(),
            Duration::from_secs(2),
        );
        stream.expect("connect to 8080")
    });

    // …while, in a loop, the ruleset flips between "only 8080" and "only
    // 9090" and a prober keeps knocking on 6060, which neither allows.
    let stop = Arc::new(AtomicBool::new(false));
    let probers: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            let name = peer.name.clone();
            std::thread::spawn(move || {
                net_support::enter(&format!("/run/netns/{name}"));
                let address: SocketAddr = format!("{NODE}:6060").parse().unwrap();
                let (mut tries, mut answered) = (0u32, 0u32);
                while !stop.load(Ordering::Relaxed) && tries < 100_000 {
                    tries += 1;
                    // A RST would come back in well under a millisecond.
                    // Only an answer from the node counts: an accept or a
                    // RST. Any other local failure (seen once in a loaded
                    // CI run) says nothing about the firewall.
                    match TcpStream::connect_timeout(&address, Duration::from_millis(10)) {
                        Ok(_) => answered += 1,
                        Err(e)
                            if matches!(
                                e.kind(),
                                ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset
                            ) =>
                        {
                            eprintln!("prober: {address} answered: {e}");
                            answered += 1
                        }
                        Err(_) => {}
                    }
                }
                (tries, answered)
            })
        })
        .collect();
    let flips = 100;
    let mut took = Vec::new();
    for i in 0..flips {
        let (firewall, ports) = only(if i % 2 == 0 { 9090 } else { 8080 });
        took.push(apply(&node, firewall, ports));
    }
    took.sort();
    let per_apply = took[took.len() / 2];
    stop.store(true, Ordering::Relaxed);
    let (tries, answered) = probers
        .into_iter()
        .map(|p| p.join().unwrap())
        .fold((0, 0), |(t, a), (tries, answered)| {
            (t + tries, a + answered)
        });
    println!(
        "{flips} re-applies, median {per_apply:?}; prober: {tries} tries, {answered} answered"
    );
    assert_eq!(
        answered, 0,
        "a port no ruleset allows was never reachable during the swaps"
    );
    assert!(tries > 0);

    // The last ruleset allowed 8080 (i = 99); now switch to 9090 only.
    let (firewall, ports) = only(9090);
    apply(&node, firewall, ports);
    let quick = Duration::from_millis(700);
    assert_eq!(connect(&peer, 9090, quick), Ok(()));
    assert_eq!(
        connect(&peer, 8080, quick),
        Err(ErrorKind::TimedOut),
        "new connections to 8080 are dropped"
    );
    let json = ruleset(&node);
    let rules = rules(&json);
    assert_eq!(rules.last(), Some(&dport_rule(9090, "accept")), "{json}");
    assert_eq!(rules.len(), 7);

    // The established connection survived every swap: its conntrack entry
    // is untouched and `ct state established` lets it through.
    let mut stream = established;
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut hello = [0; 2];
    stream
        .read_exact(&mut hello)
        .expect("the established connection still delivers");
    assert_eq!(&hello, b"hi");
}
