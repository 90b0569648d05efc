//! End to end on a real L2 segment: a namespace the test makes holds a
//! bridge and dnsmasq (see `vm/netns.rs`); the node joins it with
//! `mote run --net bridge=br0` (or the caller's tap), gets the address
//! reserved for the MAC derived from its name, and is scanned from the
//! segment with nmap: every TCP port and the common UDP ports. Only the
//! declared ports may answer: for examples/hello.toml 8080 (its service)
//! and 5986 (management), not 8081, where hello also listens; for
//! examples/web.toml 80 and 5986.
//!
//! Needs root (namespaces, raw sockets), QEMU, dnsmasq, nmap, the kernel
//! and the release node binaries (`MOTE_BIN_DIR`). Skipped only when
//! `MOTE_SKIP_VM=1`.

use std::sync::Mutex;
use std::time::Duration;

mod vm;
use vm::netns::{net_prerequisites, Segment, BRIDGE, FIRST_LEASE};
use vm::scan::{nmap, parse_grepable, print_table};
use vm::*;

const HELLO_BINS: [&str; 3] = ["mote-init", "moted", "mote-hello"];

/// What one scan test boots and expects.
struct Expect {
    manifest: &'static str,
    name: &'static str,
    /// A port and a path that must serve a body containing this text.
    serves: (u16, &'static str, &'static str),
    /// Ports the node listens on without declaring them: never answered.
    undeclared: &'static [u16],
}

/// Boot `expect.manifest` on a bridge of a fresh namespace with dnsmasq,
/// check it serves, then scan it from the namespace: every TCP port and
/// the 100 most common UDP ports; only the declared ports may answer.
fn scan_on_a_bridge(expect: &Expect) {
    let state = tempfile::tempdir().expect("temp dir");
    let image = build_image(state.path(), expect.manifest);
    let name = expect.name;
    // What the firewall opens: the manifest's services' and packages'
    // ports and management, as `mote check` lists them.
    let check = mote(state.path())
        .args(["check", expect.manifest, "--json"])
        .output()
        .unwrap();
    let check: serde_json::Value = serde_json::from_slice(&check.stdout).expect("check JSON");
    let declared = |proto: &str| -> Vec<u16> {
        let mut ports: Vec<u16> = check["open_ports"]
            .as_array()
            .expect("open_ports")
            .iter()
            .filter_map(|p| p.as_str()?.strip_suffix(&format!("/{proto}"))?.parse().ok())
            .collect();
        ports.sort_unstable();
        ports
    };
    let (declared_tcp, declared_udp) = (declared("tcp"), declared("udp"));
    let mac = mote_vm::mac_address(name);

    // Declared before the node: dropped after it.
    let mut segment = Segment::new();
    segment.dhcp(&[(&mac, FIRST_LEASE)]);
    let mut run = segment.mote(state.path());
    run.args(["run", "--json", "--accel", "tcg", "--name", name, "--net"])
        .arg(format!("bridge={BRIDGE}"))
        .arg(&image);
    let node = boot_with(run, state.path(), name);
    assert_eq!(node.ready["mac"], mac.as_str(), "{}", node.ready);
    assert_eq!(node.ready["net"], "bridge=br0", "{}", node.ready);
    assert_eq!(
        segment.lease(&mac, Duration::from_secs(30)),
        FIRST_LEASE,
        "the node did not get the address reserved for its MAC: {}\ndnsmasq:\n{}",
        node.ready,
        segment.dhcp_log()
    );
    // Known at once when the lease came before the ready line.
    if node.ready["addresses"][0] == FIRST_LEASE {
        assert_eq!(
            node.ready["management"],
            format!("{FIRST_LEASE}:5986").as_str()
        );
    }

    // `mote list` says how the node is networked.
    let list = mote(state.path())
        .args(["list", "--json"])
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).expect("list JSON");
    assert_eq!(list[0]["net"], "bridge=br0", "{list}");
    let tap = list[0]["tap"].as_str().expect("a tap").to_owned();
    assert!(segment.has_link(&tap), "no tap {tap} in the namespace");

    let (port, path, text) = expect.serves;
    let body = wait_for(
        "the node to serve on the segment",
        Duration::from_secs(30),
        || segment.get(FIRST_LEASE, port, path).ok(),
    );
    assert!(body.contains(text), "{body}");
    for port in expect.undeclared {
        let answer = segment.get(FIRST_LEASE, *port, "/");
        assert!(
            answer.is_err(),
            "{port} is not declared but answered on the segment: {answer:?}"
        );
    }

    // One scan at a time: two at 10 000 probes a second on a TCG guest
    // each would only lose probes.
    static SCANNING: Mutex<()> = Mutex::new(());
    let scanning = SCANNING.lock().unwrap_or_else(|e| e.into_inner());
    let mut tcp = nmap(
        segment.command("nmap"),
        "tcp 1-65535",
        &[
            "-sS",
            "-p-",
            "-T4",
            "--max-retries",
            "1",
            "--min-rate",
            "10000",
        ],
        FIRST_LEASE,
    );
    // A lost probe can hide a declared port (never an undeclared one: that
    // needs an answer): ask the declared ports again.
    if tcp.answering() != declared_tcp {
        let list: Vec<String> = declared_tcp.iter().map(u16::to_string).collect();
        let again = nmap(
            segment.command("nmap"),
            "tcp declared",
            &["-sS", "-p", &list.join(","), "--max-retries", "3"],
            FIRST_LEASE,
        );
        for port in again.ports {
            if let Some(ignored) = tcp.ignored.as_mut().filter(|_| port.state == "open") {
                ignored.1 = ignored.1.saturating_sub(1);
            }
            tcp.ports.retain(|p| p.port != port.port);
            tcp.ports.push(port);
        }
        tcp.ports.sort_by_key(|p| p.port);
    }
    let udp = nmap(
        segment.command("nmap"),
        "udp top 100",
        &["-sU", "--top-ports", "100", "-T4", "--max-retries", "1"],
        FIRST_LEASE,
    );
    drop(scanning);
    print_table(
        &format!("{name} ({}) at {FIRST_LEASE}", expect.manifest),
        &declared_tcp,
        &[&tcp, &udp],
    );

    assert_eq!(
        tcp.answering(),
        declared_tcp,
        "TCP ports other than the declared ones answer: {:?}",
        tcp.ports
    );
    assert!(
        tcp.ports
            .iter()
            .all(|p| p.state == "open" || p.state == "closed"),
        "{:?}",
        tcp.ports
    );
    assert_eq!(
        tcp.ignored.as_ref().map(|(s, n)| (s.as_str(), *n)),
        Some(("filtered", 65535 - declared_tcp.len() as u32)),
        "every other TCP port must be dropped"
    );
    assert!(
        udp.answering().iter().all(|p| declared_udp.contains(p)),
        "undeclared UDP ports answer: {:?}",
        udp.ports
    );

    let console = stop(state.path(), name, node);
    assert!(console.contains("mote: powering off"), "{console}");
    // The tap mote made went with QEMU.
    assert!(!segment.has_link(&tap), "tap {tap} outlived the node");
}

#[test]
fn hello_on_a_bridge_answers_only_on_its_declared_ports() {
    if !prerequisites(&HELLO_BINS) {
        return;
    }
    net_prerequisites();
    scan_on_a_bridge(&Expect {
        manifest: "examples/hello.toml",
        name: "e2e-net-hello",
        serves: (8080, "/", "hello from hello"),
        // hello listens on 8081 too.
        undeclared: &[8081],
    });
}

#[test]
fn web_on_a_bridge_answers_only_on_its_declared_ports() {
    const BINS: [&str; 3] = ["mote-init", "moted", "mote-web"];
    if !prerequisites(&BINS) {
        return;
    }
    net_prerequisites();
    scan_on_a_bridge(&Expect {
        manifest: "examples/web.toml",
        name: "e2e-net-web",
        serves: (80, "/", "Hello from mote-web"),
        undeclared: &[],
    });
}

#[test]
fn hello_on_the_callers_tap_keeps_its_lease_across_boots() {
    if !prerequisites(&HELLO_BINS) {
        return;
    }
    net_prerequisites();
    let state = tempfile::tempdir().expect("temp dir");
    let image = build_image(state.path(), "examples/hello.toml");
    let name = "e2e-net-tap";

    // The caller's tap, on the bridge; no reservation: dnsmasq picks.
    let mut segment = Segment::new();
    segment.tap("tap0");
    segment.dhcp(&[]);
    let mut leases = Vec::new();
    for _ in 0..2 {
        let mut run = segment.mote(state.path());
        run.args(["run", "--json", "--accel", "tcg", "--name", name])
            .args(["--net", "tap=tap0"])
            .arg(&image);
        let node = boot_with(run, state.path(), name);
        assert_eq!(node.ready["tap"], "tap0", "{}", node.ready);
        assert_eq!(node.ready["mac"], mote_vm::mac_address(name).as_str());
        let addr = segment.lease(&mote_vm::mac_address(name), Duration::from_secs(30));
        let body = wait_for(
            "hello to answer on the tap",
            Duration::from_secs(20),
            || segment.get(&addr, 8080, "/").ok(),
        );
        assert_eq!(body, "hello from hello");
        stop(state.path(), name, node);
        // The caller's tap is the caller's: it stays.
        assert!(segment.has_link("tap0"), "mote removed the caller's tap");
        leases.push(addr);
    }
    assert_eq!(
        leases[0], leases[1],
        "the node's MAC, and so its lease, changed between boots"
    );
}

#[test]
fn nmap_grepable_lines_parse() {
    let text = "# Nmap 7.93 scan\nHost: 10.77.0.10 ()\tStatus: Up\n\
        Host: 10.77.0.10 ()\tPorts: 5986/open/tcp//wsmans///, 8080/open/tcp//http-proxy///\tIgnored State: filtered (65533)\n";
    let scan = parse_grepable(text).unwrap();
    assert_eq!(scan.answering(), vec![5986, 8080]);
    assert_eq!(scan.ports[1].service, "http-proxy");
    assert_eq!(scan.ignored, Some(("filtered".into(), 65533)));
    let udp = parse_grepable("Host: 10.77.0.10 ()\tPorts: \tIgnored State: open|filtered (100)\n")
        .unwrap();
    assert!(udp.ports.is_empty() && udp.answering().is_empty());
    assert_eq!(udp.ignored, Some(("open|filtered".into(), 100)));
    assert!(parse_grepable("Host: 10.77.0.10 ()\tStatus: Down\n").is_none());
}
