//! The DHCPv4 client's state machine (RFC 2131 §4.4), over a [`Transport`]
//! that moves datagrams and a [`LeaseHost`] that applies leases, so tests
//! can drive it with a fake server on tokio's paused clock.

use std::future::Future;
use std::io;
use std::net::Ipv4Addr;
use std::time::Duration;

use tokio::time::{sleep, sleep_until, timeout_at, Instant};

use super::lease::{self, Lease, Phase};
use super::packet::{self, Mac, Reply, Request};
use crate::events::{Events, Level};

/// Largest DHCP datagram we read.
const MAX_DATAGRAM: usize = 1500;
/// REQUEST transmissions answering one OFFER before starting over.
const REQUEST_ATTEMPTS: u32 = 4;
/// Pause after a NAK before looking for a server again.
const AFTER_NAK: Duration = Duration::from_secs(2);

/// Sends and receives DHCP datagrams on one interface.
pub(crate) trait Transport {
    /// Send to `to`:67 (`255.255.255.255` for a broadcast).
    fn send(&self, payload: &[u8], to: Ipv4Addr) -> impl Future<Output = io::Result<()>>;
    /// Receive one datagram sent to port 68.
    fn recv(&self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>>;
}

/// Applies leases to the system.
pub(crate) trait LeaseHost {
    /// A lease was granted or renewed; `previous` is the one it replaces.
    fn bound(&mut self, lease: &Lease, previous: Option<&Lease>);
    /// The lease ended (expired or refused): remove what `bound` applied.
    fn lost(&mut self, lease: &Lease);
}

/// One interface's client.
pub(crate) struct Client<T, H> {
    pub(crate) interface: String,
    pub(crate) mac: Mac,
    pub(crate) transport: T,
    pub(crate) host: H,
    pub(crate) events: Events,
    pub(crate) random: Random,
}

/// What came back while waiting for an ACK.
enum Answer {
    Ack(Lease),
    Nak,
    Nothing,
}

impl<T: Transport, H: LeaseHost> Client<T, H> {
    fn log(&self, level: Level, message: impl AsRef<str>) {
        self.events.emit(
            "dhcp",
            level,
            format!("{}: {}", self.interface, message.as_ref()),
        );
    }

    /// Run forever: acquire a lease, keep it, and start over when it is lost.
    pub(crate) async fn run(mut self) {
        loop {
            let (mut lease, mut since) = self.acquire().await;
            self.host.bound(&lease, None);
            loop {
                match self.keep(&lease, since).await {
                    Some((renewed, at)) => {
                        self.host.bound(&renewed, Some(&lease));
                        (lease, since) = (renewed, at);
                    }
                    None => {
                        self.host.lost(&lease);
                        break;
                    }
                }
            }
        }
    }

    /// INIT → SELECTING → REQUESTING → BOUND. Returns the lease and the time
    /// its REQUEST was sent, from which its T1, T2 and expiry count.
    async fn acquire(&mut self) -> (Lease, Instant) {
        loop {
            let xid = self.random.next_u32();
            let started = Instant::now();
            let (offered, server) = self.select(xid, started).await;
            self.log(
                Level::Info,
                format!("OFFER of {offered} from {server}; REQUEST sent"),
            );
            for attempt in 0..REQUEST_ATTEMPTS {
                let sent = Instant::now();
                let bytes = packet::request(
                    &self.mac,
                    xid,
                    secs(started),
                    Request::Selecting { offered, server },
                );
                self.transmit(bytes, Ipv4Addr::BROADCAST).await;
                let deadline = sent + lease::retransmit_delay(attempt, self.random.next_u32());
                match self.wait_ack(xid, deadline, Some(server), server).await {
                    Answer::Ack(lease) => {
                        self.log(Level::Info, format!("ACK: {}", describe(&lease)));
                        return (lease, sent);
                    }
                    Answer::Nak => {
                        self.log(
                            Level::Warn,
                            format!("NAK from {server} for {offered}; starting over"),
                        );
                        sleep(AFTER_NAK).await;
                        break;
                    }
                    Answer::Nothing => {}
                }
            }
        }
    }

    /// SELECTING: broadcast DISCOVER, retransmitting with backoff, until an
    /// OFFER arrives. Never gives up: the node has nothing better to do.
    async fn select(&mut self, xid: u32, started: Instant) -> (Ipv4Addr, Ipv4Addr) {
        let mut attempt = 0u32;
        loop {
            let level = if attempt == 0 {
                Level::Info
            } else {
                Level::Debug
            };
            self.log(level, format!("DISCOVER sent (attempt {})", attempt + 1));
            let sent = Instant::now();
            self.transmit(
                packet::discover(&self.mac, xid, secs(started)),
                Ipv4Addr::BROADCAST,
            )
            .await;
            let deadline = sent + lease::retransmit_delay(attempt, self.random.next_u32());
            while let Some(reply) = self.receive(xid, deadline).await {
                if let Reply::Offer { address, server } = reply {
                    return (address, server);
                }
            }
            attempt = attempt.saturating_add(1);
        }
    }

    /// BOUND → RENEWING → REBINDING. Returns the renewed lease and its
    /// request time, or `None` once it is lost (NAK or expiry).
    async fn keep(&mut self, lease: &Lease, since: Instant) -> Option<(Lease, Instant)> {
        let Some(timing) = lease.timing else {
            // A lease that never ends: nothing to do, ever.
            return std::future::pending().await;
        };
        sleep_until(since + timing.renew).await;
        let xid = self.random.next_u32();
        let address = lease.address;
        self.log(
            Level::Info,
            format!("T1 reached: renewing {address} with {}", lease.server),
        );
        let mut rebinding_logged = false;
        loop {
            let now = Instant::now();
            let (kind, to, phase_end) = match timing.phase(now.saturating_duration_since(since)) {
                Phase::Bound | Phase::Renewing => (
                    Request::Renewing { address },
                    lease.server,
                    since + timing.rebind,
                ),
                Phase::Rebinding => {
                    if !rebinding_logged {
                        rebinding_logged = true;
                        self.log(Level::Warn, format!("T2 reached: no answer from {}; rebinding {address} with any server", lease.server));
                    }
                    (
                        Request::Rebinding { address },
                        Ipv4Addr::BROADCAST,
                        since + timing.expiry,
                    )
                }
                Phase::Expired => {
                    self.log(
                        Level::Warn,
                        format!("lease on {address} expired; removing it and starting over"),
                    );
                    return None;
                }
            };
            let to = if to.is_unspecified() {
                Ipv4Addr::BROADCAST
            } else {
                to
            };
            self.transmit(packet::request(&self.mac, xid, 0, kind), to)
                .await;
            let deadline = now + lease::renew_retry(phase_end.saturating_duration_since(now));
            match self.wait_ack(xid, deadline, None, lease.server).await {
                Answer::Ack(renewed) => {
                    self.log(Level::Info, format!("renewed: {}", describe(&renewed)));
                    return Some((renewed, now));
                }
                Answer::Nak => {
                    self.log(
                        Level::Warn,
                        format!("NAK for {address}; removing it and starting over"),
                    );
                    return None;
                }
                Answer::Nothing => {}
            }
        }
    }

    /// Wait until `deadline` for an ACK or NAK (from `server`, when given).
    /// An ACK without a server identifier is taken as from `fallback`.
    async fn wait_ack(
        &mut self,
        xid: u32,
        deadline: Instant,
        server: Option<Ipv4Addr>,
        fallback: Ipv4Addr,
    ) -> Answer {
        while let Some(reply) = self.receive(xid, deadline).await {
            match reply {
                Reply::Ack(lease)
                    if server
                        .is_none_or(|s| lease.server.is_unspecified() || lease.server == s) =>
                {
                    let mut lease = lease;
                    if lease.server.is_unspecified() {
                        lease.server = fallback;
                    }
                    return Answer::Ack(lease);
                }
                Reply::Nak { server: from }
                    if server.is_none() || from.is_none() || from == server =>
                {
                    return Answer::Nak;
                }
                _ => {}
            }
        }
        Answer::Nothing
    }

    /// The next reply to transaction `xid` before `deadline`; `None` at the
    /// deadline. Datagrams for others are skipped.
    async fn receive(&mut self, xid: u32, deadline: Instant) -> Option<Reply> {
        let mut buf = [0u8; MAX_DATAGRAM];
        loop {
            match timeout_at(deadline, self.transport.recv(&mut buf)).await {
                Err(_elapsed) => return None,
                Ok(Ok(len)) => {
                    if let Some(reply) = packet::parse(&buf[..len.min(buf.len())], xid, &self.mac) {
                        return Some(reply);
                    }
                }
                Ok(Err(e)) => {
                    // Do not spin on a socket that keeps failing.
                    self.log(Level::Debug, format!("receive failed: {e}"));
                    sleep_until(deadline).await;
                    return None;
                }
            }
        }
    }

    async fn transmit(
        &mut self,
        bytes: Result<Vec<u8>, dhcproto::error::EncodeError>,
        to: Ipv4Addr,
    ) {
        let result = match bytes {
            Ok(bytes) => self.transport.send(&bytes, to).await,
            Err(e) => Err(io::Error::other(e.to_string())),
        };
        if let Err(e) = result {
            self.log(Level::Debug, format!("send to {to} failed: {e}"));
        }
    }
}

/// RFC 2131's `secs`: seconds since the client began acquiring.
fn secs(started: Instant) -> u16 {
    u16::try_from(started.elapsed().as_secs()).unwrap_or(u16::MAX)
}

/// A lease in one line, for events.
pub(crate) fn describe(lease: &Lease) -> String {
    let mut text = format!(
        "{}/{} from {}",
        lease.address, lease.prefix_len, lease.server
    );
    if let Some(router) = lease.router {
        text.push_str(&format!(", router {router}"));
    }
    if !lease.dns.is_empty() {
        let dns: Vec<String> = lease.dns.iter().map(ToString::to_string).collect();
        text.push_str(&format!(", dns {}", dns.join(" ")));
    }
    match lease.timing {
        Some(t) => text.push_str(&format!(
            ", lease {} s (renew at {} s, rebind at {} s)",
            lease.lease_secs,
            t.renew.as_secs(),
            t.rebind.as_secs()
        )),
        None => text.push_str(", lease infinite"),
    }
    text
}

/// A small xorshift generator for transaction ids and jitter, seeded from
/// the standard library's per-process random keys, the clock and the MAC.
/// Not for secrets: a DHCP xid only has to differ between clients.
pub(crate) struct Random(u64);

impl Random {
    pub(crate) fn new(mac: &Mac) -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write(mac);
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        Self(hasher.finish() | 1)
    }

    pub(crate) fn next_u32(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 32) as u32
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
