//! End to end on a real L2 segment: a namespace the test makes holds a
//! bridge and dnsmasq (see `vm/netns.rs`); the node joins it with
//! `mote run --net bridge=br0` (or the caller's tap), gets the address
//! reserved for the MAC derived from its name, and is scanned from the
//! segment with nmap: every TCP port and the common UDP ports. Only the
//! declared ports may answer: for examples/hello.toml 8080 (its service)
//! and 5986 (management), not 8081, where hello also listens.
//!
//! Needs root (namespaces, raw sockets), QEMU, dnsmasq, nmap, the kernel
//! and the release node binaries (`MOTE_BIN_DIR`). Skipped only when
//! `MOTE_SKIP_VM=1`.

use std::time::Duration;

mod vm;
use vm::netns::{net_prerequisites, Segment, BRIDGE, FIRST_LEASE};
use vm::scan::{nmap, parse_grepable, print_table};
use vm::*;

const HELLO_BINS: [&str; 3] = ["mote-init", "moted", "mote-hello"];

#[test]
fn hello_on_a_bridge_answers_only_on_its_declared_ports() {
    if !prerequisites(&HELLO_BINS) {
        return;
    }
    net_prerequisites();
    let state = tempfile::tempdir().expect("temp dir");
    let image = build_image(state.path(), "examples/hello.toml");
    let name = "e2e-net-hello";
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
        node.ready["addresses"][0],
        FIRST_LEASE,
        "the node did not get the address reserved for its MAC: {}\ndnsmasq:\n{}",
        node.ready,
        segment.dhcp_log()
    );
    assert_eq!(
        node.ready["management"],
        format!("{FIRST_LEASE}:5986").as_str()
    );

    // `mote list` says how the node is networked.
    let list = mote(state.path())
        .args(["list", "--json"])
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).expect("list JSON");
    assert_eq!(list[0]["net"], "bridge=br0", "{list}");
    let tap = list[0]["tap"].as_str().expect("a tap").to_owned();
    assert!(segment.has_link(&tap), "no tap {tap} in the namespace");

    let body = wait_for(
        "hello to answer on the segment",
        Duration::from_secs(20),
        || segment.get(FIRST_LEASE, 8080, "/").ok(),
    );
    assert_eq!(body, "hello from hello");

    let undeclared = segment.get(FIRST_LEASE, 8081, "/");
    assert!(
        undeclared.is_err(),
        "8081 is not declared but answered on the segment: {undeclared:?}"
    );

    let tcp = nmap(
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
    let udp = nmap(
        segment.command("nmap"),
        "udp top 100",
        &["-sU", "--top-ports", "100", "-T4", "--max-retries", "1"],
        FIRST_LEASE,
    );
    let declared = [5986, 8080];
    print_table(
        &format!("{name} at {FIRST_LEASE}"),
        &declared,
        &[&tcp, &udp],
    );

    assert_eq!(
        tcp.answering(),
        declared,
        "TCP ports other than the declared ones answer (8081 listens undeclared): {:?}",
        tcp.ports
    );
    assert!(
        tcp.ports.iter().all(|p| p.state == "open"),
        "{:?}",
        tcp.ports
    );
    assert_eq!(
        tcp.ignored.as_ref().map(|(s, n)| (s.as_str(), *n)),
        Some(("filtered", 65535 - declared.len() as u32)),
        "every other TCP port must be dropped"
    );
    assert!(
        udp.answering().is_empty(),
        "UDP ports answer though none is declared: {:?}",
        udp.ports
    );

    let console = stop(state.path(), name, node);
    assert!(console.contains("mote: powering off"), "{console}");
    // The tap mote made went with QEMU.
    assert!(!segment.has_link(&tap), "tap {tap} outlived the node");
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
    for boot in 1..=2 {
        let mut run = segment.mote(state.path());
        run.args(["run", "--json", "--accel", "tcg", "--name", name])
            .args(["--net", "tap=tap0"])
            .arg(&image);
        let node = boot_with(run, state.path(), name);
        assert_eq!(node.ready["tap"], "tap0", "{}", node.ready);
        assert_eq!(node.ready["mac"], mote_vm::mac_address(name).as_str());
        let addr = node.ready["addresses"][0]
            .as_str()
            .unwrap_or_else(|| {
                panic!(
                    "boot {boot}: no address: {}\n{}",
                    node.ready,
                    segment.dhcp_log()
                )
            })
            .to_owned();
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
