//! DHCP servers for the `net_*` tests, run in a namespace of the test's:
//! dnsmasq (leases of two minutes or more) and busybox udhcpd (any length,
//! for renewals within a test).

use std::path::Path;
use std::time::Duration;

use super::{require, wait_until, Killed, Netns};

/// dnsmasq on `interface` of `server`, leasing `first`..`last` of a /24
/// for two minutes, with `router` and `dns` as options. Returns once it has
/// written its pid file (after binding its sockets).
pub fn dnsmasq(
    server: &Netns,
    dir: &Path,
    interface: &str,
    (first, last): (&str, &str),
    router: &str,
    dns: &str,
) -> Killed {
    let dnsmasq = require("dnsmasq", "dnsmasq-base");
    let pid = dir.join("dnsmasq.pid");
    let child = server.spawn(&[
        dnsmasq.to_str().unwrap(),
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--port=0",
        "--user=root",
        &format!("--interface={interface}"),
        "--bind-interfaces",
        &format!("--dhcp-range={first},{last},255.255.255.0,2m"),
        &format!("--dhcp-option=option:router,{router}"),
        &format!("--dhcp-option=option:dns-server,{dns}"),
        "--dhcp-authoritative",
        "--no-ping",
        &format!("--dhcp-leasefile={}", dir.join("dnsmasq.leases").display()),
        &format!("--pid-file={}", pid.display()),
        "--log-facility=-",
        "--log-dhcp",
    ]);
    wait_until(Duration::from_secs(5), "dnsmasq to start", || {
        pid.exists().then_some(())
    });
    child
}

/// busybox udhcpd on `interface` of `server`, leasing `first`..`last` of a
/// /24 for `lease_secs`, with `router` and `dns` as options. Returns once it
/// has written its pid file.
pub fn udhcpd(
    server: &Netns,
    dir: &Path,
    interface: &str,
    (first, last): (&str, &str),
    router: &str,
    dns: &str,
    lease_secs: u32,
) -> Killed {
    let busybox = require("busybox", "busybox");
    let conf = dir.join("udhcpd.conf");
    let pid = dir.join("udhcpd.pid");
    std::fs::write(
        &conf,
        format!(
            "interface {interface}\nstart {first}\nend {last}\noption subnet 255.255.255.0\n\
             option router {router}\noption dns {dns}\noption lease {lease_secs}\n\
             lease_file {dir}/udhcpd.leases\npidfile {pid}\n",
            dir = dir.display(),
            pid = pid.display()
        ),
    )
    .unwrap();
    std::fs::write(dir.join("udhcpd.leases"), "").unwrap();
    let child = server.spawn(&[
        busybox.to_str().unwrap(),
        "udhcpd",
        "-f",
        "-a",
        "100",
        conf.to_str().unwrap(),
    ]);
    wait_until(Duration::from_secs(5), "udhcpd to start", || {
        pid.exists().then_some(())
    });
    child
}
