//! The node's network and firewall, through netlink, with no external
//! programs.
//!
//! [`configure`] brings up `lo`, then each interface of the settings:
//!
//! 1. waits (bounded, 3 s for all interfaces together) for the interface to
//!    appear, since its driver may still be probing;
//! 2. sets its IPv6 switches in `/proc/sys/net/ipv6/conf/IF/` while the link
//!    is still down: `"off"` → `disable_ipv6=1`; `"slaac"` → `accept_ra=1,
//!    autoconf=1` (the kernel then does router solicitation, address
//!    autoconfiguration and the default route itself); a static address →
//!    `accept_ra=0`;
//! 3. sets the MTU and brings the link up (`RTM_SETLINK`);
//! 4. IPv4: a static address and the default route via `gateway4`
//!    (`RTM_NEWADDR`, `RTM_NEWROUTE`), or a DHCP client task ([`dhcp`]);
//!    IPv6: a static address and the default route via `gateway6`;
//! 5. writes `/etc/resolv.conf` from the settings' resolvers and, as leases
//!    come and go, theirs;
//! 6. waits up to 3 s for the first lease of every DHCP interface, so the
//!    ready line can show it, but never holds boot longer: the clients keep
//!    trying in the background.
//!
//! Nothing here returns an error or panics: each failure is an event (source
//! `net`, `dhcp` or `firewall`) and the rest carries on.
//!
//! [`apply_firewall`] installs the inbound firewall as one nf_tables
//! transaction; see [`nft`] for the rules and their encoding.
//!
//! # Design
//! Route netlink messages are `netlink-packet-route` types sent over a small
//! synchronous `netlink-sys` socket with a 2 s receive timeout (`rtnl.rs`):
//! each request is answered in microseconds, so blocking the current-thread
//! runtime for it is harmless and keeps the code plain. nf_tables messages
//! are written by hand ([`nft`]). Every socket and every `/proc/sys/net`
//! path belongs to the network namespace of the thread that opens it, which
//! is what lets the tests run all of this inside namespaces of their own.
//!
//! # Limits
//! One IPv4 and one IPv6 address per interface; only default routes; no
//! DHCPv6; `accept_ra=1` is ignored by the kernel when forwarding is on
//! (a future router role will want `accept_ra=2`).
//!
//! ```no_run
//! # async fn boot(settings: mote_config::NodeSettings, events: mote_init::events::Events) {
//! let net = mote_init::net::configure(&settings.network, &events).await;
//! let ports = [mote_config::Port { number: 80, protocol: mote_config::Protocol::Tcp }];
//! let _ = mote_init::net::apply_firewall(&settings.firewall, &ports, &events);
//! println!("ready: {:?}", net.addresses());
//! # }
//! ```

mod addr;
pub mod dhcp;
mod inspect;
mod link;
mod netlink;
pub mod nft;
mod resolv;
mod rtnl;
mod state;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use mote_config::{Interface, Ipv4Mode, Ipv6Mode, Network};
use tokio::sync::mpsc;
use tokio::time::Instant;

use self::addr::Origin;
pub use self::inspect::inspect;
pub use self::netlink::NetlinkError;
pub use self::nft::{apply_firewall, FirewallError};
use self::rtnl::Rtnl;
pub use self::state::NetState;
use crate::events::Events;

/// Knobs of [`configure_with`]; [`configure`] uses the defaults.
#[derive(Debug, Clone)]
pub struct NetOptions {
    /// Where the resolvers are written. Default `/etc/resolv.conf`.
    pub resolv_conf: PathBuf,
    /// How long to wait, in all, for configured interfaces to appear.
    pub link_wait: Duration,
    /// How long to wait for the first DHCP leases before returning.
    pub lease_wait: Duration,
}

impl Default for NetOptions {
    fn default() -> Self {
        Self {
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            link_wait: Duration::from_secs(3),
            lease_wait: Duration::from_secs(3),
        }
    }
}

/// Bring up `lo` and every interface of `network`; see the module docs.
/// Never fails: problems are reported as events. Must run inside a tokio
/// runtime with I/O and timers enabled (DHCP clients are spawned on it).
pub async fn configure(network: &Network, events: &Events) -> NetState {
    configure_with(network, events, NetOptions::default()).await
}

/// [`configure`], with the resolv.conf path and the waits given.
pub async fn configure_with(network: &Network, events: &Events, options: NetOptions) -> NetState {
    let state = NetState::new(options.resolv_conf.clone());
    let mut rtnl = match Rtnl::open() {
        Ok(rtnl) => rtnl,
        Err(e) => {
            events.error("net", format!("cannot configure the network: {e}"));
            return state;
        }
    };
    match link::get(&mut rtnl, "lo") {
        Ok(Some(lo)) => {
            report(
                events,
                "lo",
                "bringing it up",
                link::set_up(&mut rtnl, lo.index, None),
            );
        }
        Ok(None) => events.error("net", "lo: no loopback interface"),
        Err(e) => events.error("net", format!("lo: {e}")),
    }

    state.set_static_dns(static_resolvers(network));

    let link_deadline = deadline(options.link_wait);
    let (bound_tx, mut bound_rx) = mpsc::channel(network.interfaces.len().max(1));
    let mut dhcp_clients = 0;
    for (name, iface) in &network.interfaces {
        if configure_interface(
            &mut rtnl,
            name,
            iface,
            link_deadline,
            &state,
            events,
            &bound_tx,
        )
        .await
        {
            dhcp_clients += 1;
        }
    }
    drop(bound_tx);
    state.write_resolv_conf(events);

    let lease_deadline = deadline(options.lease_wait);
    let mut leased = 0;
    while leased < dhcp_clients {
        match tokio::time::timeout_at(lease_deadline, bound_rx.recv()).await {
            Ok(Some(())) => leased += 1,
            Ok(None) | Err(_) => break,
        }
    }
    if leased < dhcp_clients {
        events.warn(
            "net",
            format!(
                "{} of {dhcp_clients} DHCP interfaces have no lease after {} ms; still trying in the background",
                dhcp_clients - leased,
                options.lease_wait.as_millis()
            ),
        );
    }
    state
}

/// Configure one interface again for `new` settings (`None`: leave it
/// unconfigured): stop its DHCP client, drop its lease and resolvers,
/// remove its global addresses and its default routes, then configure it as
/// at boot (without waiting for a lease). `network` is the whole new
/// network, for the resolvers of every interface. Errors name the step.
pub async fn reconfigure_interface(
    state: &NetState,
    name: &str,
    new: Option<&Interface>,
    network: &Network,
    events: &Events,
) -> Result<(), String> {
    let mut rtnl = Rtnl::open().map_err(|e| format!("{name}: {e}"))?;
    state.stop_interface(name);
    // The new resolvers first, so that dropping the lease rewrites
    // resolv.conf once, straight to them, never to an empty or stale list.
    state.set_static_dns(static_resolvers(network));
    state.set_lease(name, None, events);
    if let Some(link) = link::get(&mut rtnl, name).map_err(|e| format!("{name}: {e}"))? {
        let routes =
            inspect::default_routes(&mut rtnl, link.index).map_err(|e| format!("{name}: {e}"))?;
        for route in routes {
            match rtnl.request(
                netlink_packet_route::RouteNetlinkMessage::DelRoute(route),
                0,
            ) {
                Err(e) if e.errno() != Some(libc::ESRCH) => {
                    return Err(format!("{name}: removing a default route: {e}"))
                }
                _ => {}
            }
        }
        let addresses = addr::list(&mut rtnl).map_err(|e| format!("{name}: {e}"))?;
        for a in addresses
            .into_iter()
            .filter(|a| a.index == link.index && addr::is_reportable(&a.ip))
        {
            addr::remove(&mut rtnl, link.index, a.ip, a.prefix_len)
                .map_err(|e| format!("{name}: removing {}/{}: {e}", a.ip, a.prefix_len))?;
        }
    }
    if let Some(iface) = new {
        let (bound, _) = mpsc::channel(1);
        configure_interface(
            &mut rtnl,
            name,
            iface,
            deadline(Duration::from_secs(1)),
            state,
            events,
            &bound,
        )
        .await;
    } else {
        events.info("net", format!("{name}: unconfigured"));
    }
    state.write_resolv_conf(events);
    Ok(())
}

fn static_resolvers(network: &Network) -> Vec<resolv::Resolver> {
    network
        .interfaces
        .iter()
        .flat_map(|(name, iface)| {
            iface.dns.iter().map(|ip| resolv::Resolver {
                ip: *ip,
                interface: name.clone(),
            })
        })
        .collect()
}

/// Add a static `(address, prefix)` and its default route, noting what
/// worked in `done` and logging what did not.
fn add_static(
    rtnl: &mut Rtnl,
    events: &Events,
    name: &str,
    index: u32,
    (address, prefix): (IpAddr, u8),
    gateway: Option<IpAddr>,
    done: &mut Vec<String>,
) {
    let added = addr::add(rtnl, index, address, prefix, None);
    if report(events, name, &format!("adding {address}/{prefix}"), added) {
        done.push(format!("{address}/{prefix}"));
    }
    if let Some(gateway) = gateway {
        let result = addr::add_default_route(rtnl, index, gateway, Origin::Static);
        if report(
            events,
            name,
            &format!("default route via {gateway}"),
            result,
        ) {
            done.push(format!("via {gateway}"));
        }
    }
}

/// `after` from now, saturating instead of overflowing.
fn deadline(after: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(after)
        .unwrap_or(now + Duration::from_secs(365 * 24 * 3600))
}

/// Log the outcome of one step; true when it went well.
fn report<E: std::fmt::Display>(
    events: &Events,
    interface: &str,
    what: &str,
    result: Result<(), E>,
) -> bool {
    match result {
        Ok(()) => true,
        Err(e) => {
            events.error("net", format!("{interface}: {what}: {e}"));
            false
        }
    }
}

/// One interface; true when a DHCP client was started for it.
async fn configure_interface(
    rtnl: &mut Rtnl,
    name: &str,
    iface: &Interface,
    deadline: Instant,
    state: &NetState,
    events: &Events,
    bound: &mpsc::Sender<()>,
) -> bool {
    let link = match link::wait_for(rtnl, name, deadline).await {
        Ok(Some(link)) => link,
        Ok(None) => {
            events.error(
                "net",
                format!("{name}: no such interface; leaving it unconfigured"),
            );
            return false;
        }
        Err(e) => {
            events.error("net", format!("{name}: cannot look it up: {e}"));
            return false;
        }
    };

    // On the console even in a quiet boot: on a new platform, the first
    // thing to know is which driver took the adapter.
    let driver = link::driver(name);
    let said = format!(
        "{name}: driver {}, MAC {}",
        driver.as_deref().unwrap_or("none (virtual)"),
        link::mac_text(&link.mac)
    );
    crate::console::line(format!("mote: {said}"));
    events.info("net", said);

    let switches: &[(&str, &str)] = match iface.ipv6 {
        Ipv6Mode::Off => &[("disable_ipv6", "1")],
        Ipv6Mode::Slaac => &[("disable_ipv6", "0"), ("accept_ra", "1"), ("autoconf", "1")],
        Ipv6Mode::Static(_) => &[("disable_ipv6", "0"), ("accept_ra", "0")],
    };
    for (key, value) in switches {
        if let Err(e) = link::set_ipv6_conf(name, key, value) {
            events.warn("net", format!("{name}: cannot set {key}={value}: {e}"));
        }
    }

    if !report(
        events,
        name,
        "bringing it up",
        link::set_up(rtnl, link.index, iface.mtu),
    ) && iface.mtu.is_some()
    {
        // Perhaps only the MTU was refused: the link is still worth having.
        report(
            events,
            name,
            "bringing it up without the MTU",
            link::set_up(rtnl, link.index, None),
        );
    }

    let mut done = Vec::new();
    let mut dhcp = false;
    match iface.ipv4 {
        Ipv4Mode::Static(net) => {
            let gateway = iface.gateway4.map(IpAddr::V4);
            let address = (IpAddr::V4(net.addr()), net.prefix_len());
            add_static(rtnl, events, name, link.index, address, gateway, &mut done);
        }
        Ipv4Mode::Dhcp => match dhcp::spawn(name, &link, state, events, bound.clone()) {
            Ok(()) => {
                dhcp = true;
                done.push("dhcp".into());
            }
            Err(e) => events.error("dhcp", format!("{name}: {e}")),
        },
        Ipv4Mode::Off => {}
    }
    if iface.gateway4.is_some() && !matches!(iface.ipv4, Ipv4Mode::Static(_)) {
        events.warn(
            "net",
            format!("{name}: gateway4 is only used with a static IPv4 address"),
        );
    }
    match iface.ipv6 {
        Ipv6Mode::Static(net) => {
            let gateway = iface.gateway6.map(IpAddr::V6);
            let address = (IpAddr::V6(net.addr()), net.prefix_len());
            add_static(rtnl, events, name, link.index, address, gateway, &mut done);
        }
        Ipv6Mode::Slaac => done.push("slaac".into()),
        Ipv6Mode::Off => done.push("ipv6 off".into()),
    }
    if let Some(mtu) = iface.mtu {
        done.push(format!("mtu {mtu}"));
    }
    events.info("net", format!("{name}: up, {}", done.join(", ")));
    dhcp
}
