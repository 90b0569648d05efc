//! DHCPv4 messages, built and read with `dhcproto`: DISCOVER and REQUEST
//! out, OFFER, ACK and NAK in.

use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Encodable};

use super::lease::{self, Lease, Timing};

/// The client's Ethernet address: `chaddr`, and the client identifier
/// (option 61: hardware type 1, then the address).
pub(crate) type Mac = [u8; 6];

/// Which REQUEST (RFC 2131 §4.3.2 tells them apart by their fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Request {
    /// Answering an OFFER: broadcast, `ciaddr` 0, options 50 (requested
    /// address) and 54 (the chosen server).
    Selecting { offered: Ipv4Addr, server: Ipv4Addr },
    /// At T1: unicast to the server, `ciaddr` = our address, no 50/54.
    Renewing { address: Ipv4Addr },
    /// At T2: broadcast to any server, `ciaddr` = our address, no 50/54.
    Rebinding { address: Ipv4Addr },
}

fn base(
    mac: &Mac,
    xid: u32,
    secs: u16,
    kind: MessageType,
    ciaddr: Ipv4Addr,
    broadcast: bool,
) -> Message {
    let unspecified = Ipv4Addr::UNSPECIFIED;
    let mut message = Message::new_with_id(xid, ciaddr, unspecified, unspecified, unspecified, mac);
    message.set_secs(secs);
    if broadcast {
        // We cannot receive unicast before we have an address: ask the
        // server to broadcast its reply (RFC 2131 §4.1).
        message.set_flags(Flags::default().set_broadcast());
    }
    let options = message.opts_mut();
    options.insert(DhcpOption::MessageType(kind));
    options.insert(DhcpOption::ClientIdentifier([&[1u8][..], mac].concat()));
    options.insert(DhcpOption::ParameterRequestList(vec![
        OptionCode::SubnetMask,
        OptionCode::Router,
        OptionCode::DomainNameServer,
        OptionCode::AddressLeaseTime,
        OptionCode::Renewal,
        OptionCode::Rebinding,
    ]));
    message
}

/// DHCPDISCOVER: looking for servers.
pub(crate) fn discover(
    mac: &Mac,
    xid: u32,
    secs: u16,
) -> Result<Vec<u8>, dhcproto::error::EncodeError> {
    base(
        mac,
        xid,
        secs,
        MessageType::Discover,
        Ipv4Addr::UNSPECIFIED,
        true,
    )
    .to_vec()
}

/// DHCPREQUEST in one of its three forms.
pub(crate) fn request(
    mac: &Mac,
    xid: u32,
    secs: u16,
    kind: Request,
) -> Result<Vec<u8>, dhcproto::error::EncodeError> {
    let message = match kind {
        Request::Selecting { offered, server } => {
            let mut m = base(
                mac,
                xid,
                secs,
                MessageType::Request,
                Ipv4Addr::UNSPECIFIED,
                true,
            );
            m.opts_mut().insert(DhcpOption::RequestedIpAddress(offered));
            m.opts_mut().insert(DhcpOption::ServerIdentifier(server));
            m
        }
        Request::Renewing { address } | Request::Rebinding { address } => {
            base(mac, xid, secs, MessageType::Request, address, false)
        }
    };
    message.to_vec()
}

/// A server's answer to us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// DHCPOFFER: `server` offers `address`.
    Offer { address: Ipv4Addr, server: Ipv4Addr },
    /// DHCPACK: the lease is ours.
    Ack(Lease),
    /// DHCPNAK: start over.
    Nak { server: Option<Ipv4Addr> },
}

/// Length of the fixed BOOTP part, up to and including the magic cookie.
const FIXED_LEN: usize = 240;
/// The options a client needs, with the length each must have
/// (`None`: a non-empty list of IPv4 addresses).
const KEPT_OPTIONS: [(u8, Option<usize>); 8] = [
    (53, Some(1)), // message type
    (54, Some(4)), // server identifier
    (1, Some(4)),  // subnet mask
    (51, Some(4)), // lease time
    (58, Some(4)), // T1
    (59, Some(4)), // T2
    (3, None),     // routers
    (6, None),     // DNS servers
];

/// The datagram with only [`KEPT_OPTIONS`], each once and of the right
/// length; `None` when it is not a DHCP message at all.
///
/// `dhcproto` decodes every option it knows, and some of its decoders
/// assert on lengths an attacker chooses (found by the fuzz test below):
/// only well-formed options we use reach it.
fn sanitize(bytes: &[u8]) -> Option<Vec<u8>> {
    if bytes.get(236..FIXED_LEN)? != dhcproto::v4::MAGIC {
        return None;
    }
    let mut out = bytes[..FIXED_LEN].to_vec();
    let mut seen = [false; 256];
    let mut rest = &bytes[FIXED_LEN..];
    while let Some((&code, tail)) = rest.split_first() {
        match code {
            0 => rest = tail,
            255 => break,
            _ => {
                // A truncated last option ends the list.
                let Some((&len, tail)) = tail.split_first() else {
                    break;
                };
                let Some(value) = tail.get(..usize::from(len)) else {
                    break;
                };
                rest = &tail[usize::from(len)..];
                let Some((_, wanted)) = KEPT_OPTIONS.iter().find(|(c, _)| *c == code) else {
                    continue;
                };
                let fits = match wanted {
                    Some(n) => value.len() == *n,
                    None => !value.is_empty() && value.len() % 4 == 0,
                };
                if fits && !seen[usize::from(code)] {
                    seen[usize::from(code)] = true;
                    out.extend_from_slice(&[code, len]);
                    out.extend_from_slice(value);
                }
            }
        }
    }
    out.push(255);
    Some(out)
}

/// Read a datagram from port 67; `None` unless it is a well-formed reply to
/// our transaction `xid` for our `mac`.
pub(crate) fn parse(bytes: &[u8], xid: u32, mac: &Mac) -> Option<Reply> {
    let message = Message::from_bytes(&sanitize(bytes)?).ok()?;
    // `chaddr()` slices by the packet's own `hlen`: check it before use.
    if message.opcode() != Opcode::BootReply
        || message.xid() != xid
        || usize::from(message.hlen()) != mac.len()
        || message.chaddr() != mac
    {
        return None;
    }
    let options = message.opts();
    let server = match options.get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(ip)) => Some(*ip),
        _ => None,
    };
    match options.msg_type()? {
        MessageType::Offer => {
            // An offer of an address we could not hold, or from a server
            // we could not name in our REQUEST, would only be refused or
            // ignored later: leave it, so another server's offer is taken.
            let address = message.yiaddr();
            let server = server
                .filter(|ip| unicast(*ip))
                .or_else(|| Some(message.siaddr()).filter(|ip| unicast(*ip)))?;
            unicast(address).then_some(Reply::Offer { address, server })
        }
        MessageType::Ack => lease_from(&message, server).map(Reply::Ack),
        MessageType::Nak => Some(Reply::Nak { server }),
        _ => None,
    }
}

/// An address a host can have: not 0.0.0.0, broadcast or multicast.
fn unicast(ip: Ipv4Addr) -> bool {
    !(ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast())
}

fn lease_from(message: &Message, server: Option<Ipv4Addr>) -> Option<Lease> {
    let address = message.yiaddr();
    if !unicast(address) {
        return None;
    }
    let options = message.opts();
    let mut prefix_len = None;
    let mut router = None;
    let mut dns = Vec::new();
    let (mut lease_secs, mut t1, mut t2) = (None, None, None);
    for (_, option) in options.iter() {
        match option {
            DhcpOption::SubnetMask(mask) => prefix_len = lease::prefix_len(*mask),
            DhcpOption::Router(routers) => {
                router = routers.iter().copied().find(|r| !r.is_unspecified())
            }
            DhcpOption::DomainNameServer(servers) => dns = servers.clone(),
            DhcpOption::AddressLeaseTime(secs) => lease_secs = Some(*secs),
            DhcpOption::Renewal(secs) => t1 = Some(*secs),
            DhcpOption::Rebinding(secs) => t2 = Some(*secs),
            _ => {}
        }
    }
    Some(Lease {
        address,
        prefix_len: prefix_len
            .filter(|p| (1..=32).contains(p))
            .unwrap_or_else(|| lease::classful_prefix_len(address)),
        router,
        dns,
        server: server.unwrap_or(Ipv4Addr::UNSPECIFIED),
        lease_secs: lease_secs.unwrap_or(lease::DEFAULT_LEASE_SECS),
        timing: Timing::from_options(lease_secs, t1, t2),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const MAC: Mac = [0x02, 0, 0, 0, 0, 0x42];

    /// A server's reply, as the fake servers of the client tests send it.
    pub(crate) fn reply(xid: u32, kind: MessageType, yiaddr: Ipv4Addr, lease_secs: u32) -> Vec<u8> {
        let server = Ipv4Addr::new(192, 0, 2, 1);
        let mut m = Message::new_with_id(
            xid,
            Ipv4Addr::UNSPECIFIED,
            yiaddr,
            server,
            Ipv4Addr::UNSPECIFIED,
            &MAC,
        );
        m.set_opcode(Opcode::BootReply);
        let o = m.opts_mut();
        o.insert(DhcpOption::MessageType(kind));
        o.insert(DhcpOption::ServerIdentifier(server));
        o.insert(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)));
        o.insert(DhcpOption::Router(vec![server]));
        o.insert(DhcpOption::DomainNameServer(vec![Ipv4Addr::new(
            192, 0, 2, 53,
        )]));
        o.insert(DhcpOption::AddressLeaseTime(lease_secs));
        m.to_vec().unwrap()
    }

    #[test]
    fn requests_carry_the_fields_of_their_state() {
        let server = Ipv4Addr::new(192, 0, 2, 1);
        let offered = Ipv4Addr::new(192, 0, 2, 10);
        let bytes = request(&MAC, 7, 3, Request::Selecting { offered, server }).unwrap();
        let m = Message::from_bytes(&bytes).unwrap();
        assert!(m.flags().broadcast());
        assert_eq!(
            (m.xid(), m.secs(), m.ciaddr()),
            (7, 3, Ipv4Addr::UNSPECIFIED)
        );
        assert_eq!(
            m.opts().get(OptionCode::RequestedIpAddress),
            Some(&DhcpOption::RequestedIpAddress(offered))
        );
        assert_eq!(
            m.opts().get(OptionCode::ServerIdentifier),
            Some(&DhcpOption::ServerIdentifier(server))
        );

        let bytes = request(&MAC, 8, 0, Request::Renewing { address: offered }).unwrap();
        let m = Message::from_bytes(&bytes).unwrap();
        assert!(!m.flags().broadcast());
        assert_eq!(m.ciaddr(), offered);
        assert!(m.opts().get(OptionCode::ServerIdentifier).is_none());
        assert!(m.opts().get(OptionCode::RequestedIpAddress).is_none());

        let m = Message::from_bytes(&discover(&MAC, 9, 0).unwrap()).unwrap();
        assert_eq!(m.opts().msg_type(), Some(MessageType::Discover));
        assert_eq!(m.chaddr(), MAC);
    }

    #[test]
    fn an_ack_becomes_a_lease() {
        let address = Ipv4Addr::new(192, 0, 2, 10);
        let Some(Reply::Ack(lease)) = parse(&reply(5, MessageType::Ack, address, 600), 5, &MAC)
        else {
            panic!("not an ack")
        };
        assert_eq!((lease.address, lease.prefix_len), (address, 24));
        assert_eq!(lease.router, Some(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(lease.dns, [Ipv4Addr::new(192, 0, 2, 53)]);
        assert_eq!(lease.timing.unwrap().renew.as_secs(), 300);
    }

    #[test]
    fn replies_to_others_are_ignored() {
        let offer = reply(5, MessageType::Offer, Ipv4Addr::new(192, 0, 2, 10), 600);
        assert!(parse(&offer, 5, &MAC).is_some());
        assert!(parse(&offer, 6, &MAC).is_none(), "other transaction");
        assert!(
            parse(&offer, 5, &[2, 0, 0, 0, 0, 0x43]).is_none(),
            "other client"
        );
        let own_request = discover(&MAC, 5, 0).unwrap();
        assert!(
            parse(&own_request, 5, &MAC).is_none(),
            "a request, not a reply"
        );
    }

    /// `dhcproto`'s `chaddr()` would slice past its 16-byte array for a
    /// packet claiming `hlen` 200; PID 1 must not panic on such a packet.
    #[test]
    fn regression_a_hostile_hlen_is_not_a_panic() {
        let mut offer = reply(5, MessageType::Offer, Ipv4Addr::new(192, 0, 2, 10), 600);
        offer[2] = 200;
        assert!(parse(&offer, 5, &MAC).is_none());
    }

    /// `dhcproto` 0.15 `debug_assert!`s that option 157 (bulk leasequery
    /// base time) is 4 bytes long; a 2-byte one from the network must not
    /// reach it.
    #[test]
    fn regression_options_we_do_not_use_never_reach_the_decoder() {
        let mut ack = reply(5, MessageType::Ack, Ipv4Addr::new(192, 0, 2, 10), 600);
        let end = ack.iter().rposition(|b| *b == 255).unwrap();
        ack.splice(end..end, [157, 2, 0, 0, 52, 1, 0]);
        assert!(matches!(parse(&ack, 5, &MAC), Some(Reply::Ack(_))));
    }

    /// Found by the fuzz test: an OFFER of 255.255.255.255 with server
    /// identifier 0.0.0.0 was taken, so the client REQUESTed an address no
    /// ACK can give (and named no server), instead of taking another offer.
    #[test]
    fn regression_an_offer_we_cannot_use_is_ignored() {
        let good = Ipv4Addr::new(192, 0, 2, 10);
        for bad in [Ipv4Addr::BROADCAST, Ipv4Addr::new(224, 0, 0, 1)] {
            let offer = reply(5, MessageType::Offer, bad, 600);
            assert_eq!(parse(&offer, 5, &MAC), None, "offer of {bad}");
        }
        // A server identifier we cannot name: siaddr is used instead, and
        // without one the offer is left.
        let mut offer = reply(5, MessageType::Offer, good, 600);
        let at = offer.windows(2).position(|w| w == [54, 4]).unwrap() + 2;
        offer[at..at + 4].copy_from_slice(&[0, 0, 0, 0]);
        let server = Ipv4Addr::new(192, 0, 2, 1);
        assert_eq!(
            parse(&offer, 5, &MAC),
            Some(Reply::Offer {
                address: good,
                server
            })
        );
        offer[20..24].copy_from_slice(&[0, 0, 0, 0]); // siaddr
        assert_eq!(parse(&offer, 5, &MAC), None);
    }

    #[test]
    fn malformed_options_we_use_are_dropped() {
        let mut ack = reply(5, MessageType::Ack, Ipv4Addr::new(192, 0, 2, 10), 600);
        let end = ack.iter().rposition(|b| *b == 255).unwrap();
        // A second, bad router list and a truncated option at the end.
        ack.splice(end.., [3, 3, 1, 2, 3, 6, 9]);
        let Some(Reply::Ack(lease)) = parse(&ack, 5, &MAC) else {
            panic!("not an ack")
        };
        assert_eq!(lease.router, Some(Ipv4Addr::new(192, 0, 2, 1)));
    }

    /// Every truncation and thousands of random corruptions of a valid ACK
    /// are read without panicking.
    #[test]
    fn garbage_is_never_a_panic() {
        let ack = reply(5, MessageType::Ack, Ipv4Addr::new(192, 0, 2, 10), 600);
        for len in 0..ack.len() {
            let _ = parse(&ack[..len], 5, &MAC);
        }
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mut bytes = ack.clone();
            for _ in 0..(next() % 8 + 1) {
                let at = (next() % bytes.len() as u64) as usize;
                bytes[at] = next() as u8;
            }
            let _ = parse(&bytes, 5, &MAC);
        }
    }
}

#[cfg(test)]
#[path = "packet_fuzz.rs"]
mod fuzz;
