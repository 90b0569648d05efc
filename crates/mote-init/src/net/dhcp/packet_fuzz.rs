//! Property tests of [`parse`] (issue 9: fuzz targets, run bounded in the
//! suite and longer by `cargo xtask fuzz`): PID 1 reads these bytes from
//! anyone on the segment.
//!
//! Inputs: arbitrary bytes; a valid fixed part followed by arbitrary option
//! bytes; and replies built with `dhcproto` from arbitrary fields, whole or
//! mutated (bytes changed, cut, options appended).
//! Properties: no panic; nothing is accepted unless it is a BOOTREPLY
//! (`op` 2) to our `xid` for our 6-byte `chaddr`; an accepted lease has a
//! usable address, a prefix of 1 to 32 bits and T1 ≤ T2 < expiry; and an
//! unmutated reply is read exactly as RFC 2131 says (an oracle written from
//! the fields the reply was built from).
//!
//! `MOTE_FUZZ_CASES` sets the cases per property and round (default
//! [`CASES`]); `MOTE_FUZZ_UNTIL` (Unix seconds) keeps running rounds until
//! then.

use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode, UnknownOption};
use dhcproto::Encodable;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use super::super::lease::{self, Lease, Timing};
use super::{parse, Mac, Reply, FIXED_LEN, KEPT_OPTIONS};

/// Cases per property in the suite.
const CASES: u32 = 10_000;

const OURS: u32 = 0x1234_5678;
const MAC: Mac = [0x02, 0, 0, 0, 0, 0x42];

/// Runs `test` on values of `strategy`: `MOTE_FUZZ_CASES` cases (default
/// `CASES`), then more rounds while the clock is before `MOTE_FUZZ_UNTIL`.
/// A failing case is the `Err` the test returns (with the minimal input).
fn fuzz<S: Strategy>(
    name: &str,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> Result<(), String>
where
    S::Value: std::fmt::Debug,
{
    let number = |var: &str| std::env::var(var).ok().and_then(|v| v.parse::<u64>().ok());
    let cases = number("MOTE_FUZZ_CASES").map_or(CASES, |n| n.clamp(1, u32::MAX.into()) as u32);
    let until = number("MOTE_FUZZ_UNTIL").unwrap_or(0);
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let started = std::time::Instant::now();
    let mut rounds = 0u64;
    loop {
        // A runner per round: each starts from a new random seed.
        TestRunner::new(config.clone())
            .run(&strategy, &test)
            .map_err(|e| format!("{name}: {e}"))?;
        rounds += 1;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if now >= until {
            break;
        }
    }
    eprintln!(
        "fuzz {name}: {} cases in {:.1} s",
        rounds * u64::from(cases),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// What a reply is built from.
#[derive(Debug, Clone)]
struct Fields {
    reply: bool,
    xid: u32,
    chaddr: Mac,
    yiaddr: Ipv4Addr,
    siaddr: Ipv4Addr,
    kind: Option<MessageType>,
    server: Option<Ipv4Addr>,
    mask: Option<Ipv4Addr>,
    routers: Option<Vec<Ipv4Addr>>,
    dns: Option<Vec<Ipv4Addr>>,
    lease: Option<u32>,
    t1: Option<u32>,
    t2: Option<u32>,
    /// Options we do not read: code (never one of ours), value.
    others: Vec<(u8, Vec<u8>)>,
}

fn address() -> impl Strategy<Value = Ipv4Addr> {
    prop_oneof![
        Just(Ipv4Addr::UNSPECIFIED),
        Just(Ipv4Addr::BROADCAST),
        Just(Ipv4Addr::new(224, 0, 0, 1)),
        (0..=255u8).prop_map(|last| Ipv4Addr::new(192, 0, 2, last)),
        any::<u32>().prop_map(Ipv4Addr::from),
    ]
}

fn mask() -> impl Strategy<Value = Ipv4Addr> {
    prop_oneof![
        (0..=32u32).prop_map(|n| Ipv4Addr::from(u32::MAX.checked_shl(32 - n).unwrap_or(0))),
        any::<u32>().prop_map(Ipv4Addr::from),
    ]
}

fn seconds() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        Just(u32::MAX),
        0..10u32,
        0..100_000u32,
        any::<u32>()
    ]
}

fn fields() -> impl Strategy<Value = Fields> {
    let kind = prop_oneof![
        3 => Just(Some(MessageType::Offer)),
        3 => Just(Some(MessageType::Ack)),
        1 => Just(Some(MessageType::Nak)),
        1 => Just(Some(MessageType::Discover)),
        1 => Just(Some(MessageType::Request)),
        1 => Just(Some(MessageType::Inform)),
        1 => Just(None),
    ];
    let ours = |p: u32| prop::bool::weighted(f64::from(p) / 100.0);
    let addresses = || prop::collection::vec(address(), 0..4);
    let other = (1..=254u8)
        .prop_filter("not an option we read", |c| {
            !KEPT_OPTIONS.iter().any(|(k, _)| k == c)
        })
        .prop_flat_map(|c| (Just(c), prop::collection::vec(any::<u8>(), 0..12)));
    (
        (ours(90), ours(85), any::<u32>(), ours(85), any::<Mac>()),
        (address(), address(), kind, prop::option::of(address())),
        (
            prop::option::of(mask()),
            prop::option::of(addresses()),
            prop::option::of(addresses()),
        ),
        (
            prop::option::of(seconds()),
            prop::option::of(seconds()),
            prop::option::of(seconds()),
        ),
        prop::collection::vec(other, 0..3),
    )
        .prop_map(
            |(
                (reply, our_xid, xid, our_mac, mac),
                (yiaddr, siaddr, kind, server),
                (mask, routers, dns),
                (lease, t1, t2),
                others,
            )| Fields {
                reply,
                xid: if our_xid { OURS } else { xid },
                chaddr: if our_mac { MAC } else { mac },
                yiaddr,
                siaddr,
                kind,
                server,
                mask,
                routers,
                dns,
                lease,
                t1,
                t2,
                others,
            },
        )
}

fn build(f: &Fields) -> Vec<u8> {
    let none = Ipv4Addr::UNSPECIFIED;
    let mut m = Message::new_with_id(f.xid, none, f.yiaddr, f.siaddr, none, &f.chaddr);
    m.set_opcode(if f.reply {
        Opcode::BootReply
    } else {
        Opcode::BootRequest
    });
    let o = m.opts_mut();
    if let Some(kind) = f.kind {
        o.insert(DhcpOption::MessageType(kind));
    }
    if let Some(ip) = f.server {
        o.insert(DhcpOption::ServerIdentifier(ip));
    }
    if let Some(mask) = f.mask {
        o.insert(DhcpOption::SubnetMask(mask));
    }
    if let Some(r) = &f.routers {
        o.insert(DhcpOption::Router(r.clone()));
    }
    if let Some(d) = &f.dns {
        o.insert(DhcpOption::DomainNameServer(d.clone()));
    }
    if let Some(s) = f.lease {
        o.insert(DhcpOption::AddressLeaseTime(s));
    }
    if let Some(s) = f.t1 {
        o.insert(DhcpOption::Renewal(s));
    }
    if let Some(s) = f.t2 {
        o.insert(DhcpOption::Rebinding(s));
    }
    for (code, data) in &f.others {
        o.insert(DhcpOption::Unknown(UnknownOption::new(
            OptionCode::from(*code),
            data.clone(),
        )));
    }
    // dhcproto encodes what it built; were it ever to fail, the empty reply
    // fails the RFC 2131 oracle, which expects it read.
    m.to_vec().unwrap_or_default()
}

/// An address a host can have (written again here: the oracle does not
/// borrow from the code it checks).
fn unicast(ip: Ipv4Addr) -> bool {
    !(ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast())
}

/// What RFC 2131 says a client makes of a reply built from `f`.
fn expected(f: &Fields) -> Option<Reply> {
    if !f.reply || f.xid != OURS || f.chaddr != MAC {
        return None;
    }
    let routers = f.routers.clone().unwrap_or_default();
    let dns = f.dns.clone().unwrap_or_default();
    match f.kind? {
        MessageType::Offer => {
            let server = f
                .server
                .filter(|s| unicast(*s))
                .or(Some(f.siaddr).filter(|s| unicast(*s)))?;
            unicast(f.yiaddr).then_some(Reply::Offer {
                address: f.yiaddr,
                server,
            })
        }
        MessageType::Ack => {
            let a = f.yiaddr;
            if !unicast(a) {
                return None;
            }
            let prefix = f.mask.and_then(|m| {
                let bits = u32::from(m);
                let ones = bits.leading_ones();
                (ones > 0 && bits.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
            });
            Some(Reply::Ack(Lease {
                address: a,
                prefix_len: prefix.unwrap_or_else(|| lease::classful_prefix_len(a)),
                router: routers.into_iter().find(|r| !r.is_unspecified()),
                dns,
                server: f.server.unwrap_or(Ipv4Addr::UNSPECIFIED),
                lease_secs: f.lease.unwrap_or(lease::DEFAULT_LEASE_SECS),
                timing: Timing::from_options(f.lease, f.t1, f.t2),
            }))
        }
        MessageType::Nak => Some(Reply::Nak { server: f.server }),
        _ => None,
    }
}

/// What must hold of any datagram, whatever it holds.
fn safe(bytes: &[u8]) -> Result<(), TestCaseError> {
    let Some(reply) = parse(bytes, OURS, &MAC) else {
        return Ok(());
    };
    prop_assert!(bytes.len() >= FIXED_LEN, "accepted a short datagram");
    prop_assert_eq!(bytes[0], 2, "accepted op {} (not a BOOTREPLY)", bytes[0]);
    prop_assert_eq!(&bytes[4..8], &OURS.to_be_bytes(), "accepted another xid");
    prop_assert_eq!(bytes[2], 6, "accepted hlen {}", bytes[2]);
    prop_assert_eq!(&bytes[28..34], &MAC[..], "accepted another chaddr");
    match reply {
        Reply::Offer { address, server } => {
            prop_assert!(
                unicast(address) && unicast(server),
                "{address} from {server}"
            );
        }
        Reply::Ack(lease) => {
            prop_assert!(unicast(lease.address), "{lease:?}");
            prop_assert!((1..=32).contains(&lease.prefix_len), "{lease:?}");
            prop_assert!(lease.router.is_none_or(|r| !r.is_unspecified()));
            if let Some(t) = lease.timing {
                prop_assert!(
                    !t.renew.is_zero() && t.renew <= t.rebind && t.rebind < t.expiry,
                    "{t:?}"
                );
            } else {
                prop_assert_eq!(lease.lease_secs, lease::INFINITE);
            }
        }
        Reply::Nak { .. } => {}
    }
    Ok(())
}

#[test]
fn arbitrary_bytes_are_never_a_panic_nor_a_reply() -> Result<(), String> {
    fuzz(
        "dhcp: arbitrary bytes",
        prop::collection::vec(any::<u8>(), 0..600),
        |bytes| safe(&bytes),
    )
}

#[test]
fn arbitrary_options_after_a_valid_header_are_safe() -> Result<(), String> {
    let fields = Fields {
        reply: true,
        xid: OURS,
        chaddr: MAC,
        yiaddr: Ipv4Addr::new(192, 0, 2, 10),
        siaddr: Ipv4Addr::new(192, 0, 2, 1),
        kind: None,
        server: None,
        mask: None,
        routers: None,
        dns: None,
        lease: None,
        t1: None,
        t2: None,
        others: Vec::new(),
    };
    let header = build(&fields)[..FIXED_LEN].to_vec();
    // Options as bytes: mostly ours (with any length), some of the rest.
    let code = prop_oneof![
        4 => prop::sample::select(KEPT_OPTIONS.map(|(c, _)| c).to_vec()),
        1 => any::<u8>(),
    ];
    let option =
        (code, prop::collection::vec(any::<u8>(), 0..10), 0..3u8).prop_map(|(code, value, lie)| {
            // The length byte is usually the value's, sometimes a lie.
            let len = match lie {
                0 => value.len() as u8,
                1 => value.len() as u8 + 1,
                _ => 255,
            };
            [&[code, len][..], &value].concat()
        });
    fuzz(
        "dhcp: arbitrary options",
        prop::collection::vec(option, 0..12),
        |options| {
            let mut bytes = header.clone();
            bytes.extend(options.concat());
            safe(&bytes)
        },
    )
}

#[test]
fn built_replies_are_read_as_rfc_2131_says() -> Result<(), String> {
    fuzz("dhcp: built replies", fields(), |f| {
        let bytes = build(&f);
        safe(&bytes)?;
        prop_assert_eq!(parse(&bytes, OURS, &MAC), expected(&f));
        Ok(())
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Set byte `at` (a fraction of the length) to `value`.
    Byte { at: f64, value: u8 },
    /// Cut at `at`.
    Cut { at: f64 },
    /// Put raw bytes before the end option.
    Append { bytes: Vec<u8> },
}

#[test]
fn mutated_replies_are_never_a_panic_nor_anothers_reply() -> Result<(), String> {
    let mutation = prop_oneof![
        4 => (0.0..1.0f64, any::<u8>()).prop_map(|(at, value)| Mutation::Byte { at, value }),
        1 => (0.0..1.0f64).prop_map(|at| Mutation::Cut { at }),
        2 => prop::collection::vec(any::<u8>(), 1..16).prop_map(|bytes| Mutation::Append { bytes }),
    ];
    let strategy = (fields(), prop::collection::vec(mutation, 1..6));
    fuzz("dhcp: mutated replies", strategy, |(f, mutations)| {
        let mut bytes = build(&f);
        for m in &mutations {
            let n = bytes.len();
            let pos = |at: f64| ((at * n as f64) as usize).min(n.saturating_sub(1));
            match m {
                Mutation::Byte { at, value } if n > 0 => bytes[pos(*at)] = *value,
                Mutation::Byte { .. } => {}
                Mutation::Cut { at } => bytes.truncate(pos(*at)),
                Mutation::Append { bytes: more } => {
                    let end = bytes.iter().rposition(|b| *b == 255).unwrap_or(n);
                    bytes.splice(end..end, more.iter().copied());
                }
            }
        }
        safe(&bytes)?;
        // Untouched fixed fields that say "not ours" keep the packet out,
        // whatever happened to the options.
        if bytes.len() >= 34 && (bytes[0] != 2 || bytes[4..8] != OURS.to_be_bytes()) {
            prop_assert_eq!(parse(&bytes, OURS, &MAC), None);
        }
        Ok(())
    })
}
