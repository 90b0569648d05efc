//! A DHCPv4 client (RFC 2131), one tokio task per interface. `dhcproto`
//! encodes and decodes the messages; this module is the protocol.
//!
//! # The protocol, step by step
//!
//! 1. **INIT → SELECTING.** Pick a random transaction id (`xid`) and
//!    broadcast DHCPDISCOVER from `0.0.0.0:68` to `255.255.255.255:67`,
//!    carrying our MAC in `chaddr`, a client identifier (option 61), the
//!    options we want (55: subnet mask, router, DNS, lease time, T1, T2) and
//!    the BOOTP broadcast flag: we have no address yet, so servers must
//!    broadcast their answers. Without an answer, send again after 1 s,
//!    2 s, 4 s … up to 32 s (±1/8 at random), forever.
//! 2. **OFFER.** Servers answer DHCPOFFER: an address in `yiaddr` and their
//!    server identifier (option 54). We take the first offer for our `xid`
//!    and `chaddr`.
//! 3. **REQUESTING.** Broadcast DHCPREQUEST with the same `xid`, the
//!    offered address (option 50) and the chosen server (option 54) — the
//!    broadcast also tells the other servers they were not chosen. Retry up
//!    to 4 times with the same backoff, then start over at INIT.
//! 4. **ACK / NAK.** The chosen server confirms with DHCPACK (lease time,
//!    mask, routers, resolvers) or refuses with DHCPNAK (back to INIT after
//!    2 s). On ACK we are **BOUND**: add the address with the prefix from
//!    the subnet mask (classful when there is none) and the lease as its
//!    kernel lifetime, the default route through the first router, and the
//!    resolvers to resolv.conf. Lease times count from when the REQUEST was
//!    sent, as RFC 2131 §4.4.1 says.
//! 5. **RENEWING at T1** (option 58, default lease/2). Unicast DHCPREQUEST
//!    to the server that granted the lease, with `ciaddr` = our address and
//!    no options 50/54. Retransmit after half the time left until T2, at
//!    least 60 s apart (RFC 2131 §4.4.5). An ACK renews the lease (back to
//!    BOUND, times counted from this request); a NAK means the address is no
//!    longer ours: remove it, back to INIT.
//! 6. **REBINDING at T2** (option 59, default lease × 7/8). The server is
//!    gone: broadcast the same REQUEST so that any server may extend it.
//!    Retransmit after half the time left until expiry.
//! 7. **Expiry.** Remove the route and the address, drop its resolvers,
//!    and start over at INIT.
//!
//! Not done: ARP probing of the offered address before using it (and
//! DHCPDECLINE), DHCPRELEASE at shutdown, DHCPINFORM, the hostname option,
//! classless static routes (option 121), and the MTU option.

mod client;
mod host;
mod lease;
mod packet;
mod socket;

pub use lease::{Lease, Timing};

use tokio::sync::mpsc;

use super::link::Link;
use super::state::NetState;
use crate::events::Events;

/// Start the client for `interface` in the background. `first_bound` is
/// told when the first lease is applied.
pub(crate) fn spawn(
    interface: &str,
    link: &Link,
    state: &NetState,
    events: &Events,
    first_bound: mpsc::Sender<()>,
) -> Result<(), String> {
    let mac: packet::Mac = link.mac.as_slice().try_into().map_err(|_| {
        format!(
            "DHCP needs an Ethernet address; {interface} has {} bytes",
            link.mac.len()
        )
    })?;
    let transport = socket::UdpTransport::bind(interface)
        .map_err(|e| format!("cannot open UDP port 68: {e}"))?;
    let client = client::Client {
        interface: interface.to_owned(),
        mac,
        transport,
        host: host::KernelHost {
            interface: interface.to_owned(),
            index: link.index,
            state: state.clone(),
            events: events.clone(),
            first_bound: Some(first_bound),
        },
        events: events.clone(),
        random: client::Random::new(&mac),
    };
    let task = tokio::spawn(client.run());
    state.add_task(interface, task.abort_handle());
    Ok(())
}
