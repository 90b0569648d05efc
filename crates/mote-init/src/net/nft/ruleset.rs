//! From the firewall settings to the rules of chain `input`, and to the batch
//! that replaces table `inet mote` with them.

use std::collections::BTreeSet;

use ipnet::IpNet;
use mote_config::{Firewall, Policy, Port, Protocol};

use super::expr::{Base, CmpOp, Expr, MetaKey, Verdict};
use super::wire::{Batch, NFT_MSG_DELTABLE, NFT_MSG_NEWCHAIN, NFT_MSG_NEWRULE, NFT_MSG_NEWTABLE};
use super::wire::{NLM_F_APPEND, NLM_F_CREATE};

/// Our table (family `inet`: IPv4 and IPv6 alike) and its one chain.
pub(crate) const TABLE: &str = "mote";
pub(crate) const CHAIN: &str = "input";

/// `NF_INET_LOCAL_IN`: the input hook, packets addressed to this node.
const HOOK_INPUT: u32 = 1;

/// `NF_CT_STATE_*_BIT`.
const CT_INVALID: u32 = 1;
const CT_ESTABLISHED: u32 = 2;
const CT_RELATED: u32 = 4;

const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;
/// The DHCP client port: replies from DHCP servers arrive here.
const DHCP_CLIENT_PORT: u16 = 68;

/// How many rules come before those of the settings and the services.
pub(crate) const BUILTIN_RULES: usize = 6;

/// One rule: what it is (for error messages and events) and its expressions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    pub(crate) what: String,
    pub(crate) exprs: Vec<Expr>,
}

fn verdict(policy: Policy) -> Verdict {
    match policy {
        Policy::Allow => Verdict::Accept,
        Policy::Deny => Verdict::Drop,
    }
}

fn proto_number(protocol: Protocol) -> u8 {
    match protocol {
        Protocol::Tcp => IPPROTO_TCP,
        Protocol::Udp => IPPROTO_UDP,
    }
}

fn proto_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

/// `meta l4proto P` + `P dport N`: the destination port is the 2 bytes at
/// offset 2 of both the TCP and the UDP header, in network byte order.
fn dport(protocol: Protocol, port: u16) -> [Expr; 4] {
    [
        Expr::Meta(MetaKey::L4Proto),
        Expr::Cmp {
            op: CmpOp::Eq,
            data: vec![proto_number(protocol)],
        },
        Expr::Payload {
            base: Base::Transport,
            offset: 2,
            len: 2,
        },
        Expr::Cmp {
            op: CmpOp::Eq,
            data: port.to_be_bytes().to_vec(),
        },
    ]
}

/// `ip saddr A/N` or `ip6 saddr A/N`: first `meta nfproto` (the inet table
/// sees both families), then the source address: at offset 12 of the IPv4
/// header, 8 of the IPv6 one. A prefix on a byte boundary loads and compares
/// only its bytes; any other loads the whole address, masks it with
/// `bitwise` and compares with the network address (as nft does).
fn saddr(source: &IpNet) -> Vec<Expr> {
    let (nfproto, offset, network, prefix_len) = match source {
        IpNet::V4(net) => (
            NFPROTO_IPV4,
            12,
            net.network().octets().to_vec(),
            net.prefix_len(),
        ),
        IpNet::V6(net) => (
            NFPROTO_IPV6,
            8,
            net.network().octets().to_vec(),
            net.prefix_len(),
        ),
    };
    let mut exprs = vec![
        Expr::Meta(MetaKey::NfProto),
        Expr::Cmp {
            op: CmpOp::Eq,
            data: vec![nfproto],
        },
    ];
    let prefix_len = usize::from(prefix_len);
    if prefix_len == 0 {
        return exprs; // any source of that family
    }
    if prefix_len % 8 == 0 {
        let len = prefix_len / 8;
        exprs.push(Expr::Payload {
            base: Base::Network,
            offset,
            len: len as u32,
        });
        exprs.push(Expr::Cmp {
            op: CmpOp::Eq,
            data: network[..len].to_vec(),
        });
    } else {
        let mask: Vec<u8> = (0..network.len())
            .map(|i| {
                let bits = prefix_len.saturating_sub(i * 8).min(8);
                (0xff00u16 >> bits) as u8
            })
            .collect();
        exprs.push(Expr::Payload {
            base: Base::Network,
            offset,
            len: network.len() as u32,
        });
        exprs.push(Expr::Bitwise {
            xor: vec![0; mask.len()],
            mask,
        });
        exprs.push(Expr::Cmp {
            op: CmpOp::Eq,
            data: network,
        });
    }
    exprs
}

/// `ct state S`: load the state bits, keep those of `S`, match when any is set.
fn ct_state(bits: u32) -> [Expr; 3] {
    [
        Expr::CtState,
        Expr::Bitwise {
            mask: bits.to_ne_bytes().to_vec(),
            xor: vec![0; 4],
        },
        Expr::Cmp {
            op: CmpOp::Neq,
            data: vec![0; 4],
        },
    ]
}

fn rule(what: impl Into<String>, mut exprs: Vec<Expr>, verdict: Verdict) -> Rule {
    exprs.push(Expr::Verdict(verdict));
    Rule {
        what: what.into(),
        exprs,
    }
}

/// The rules of chain `input`, in order.
pub(crate) fn rules(firewall: &Firewall, service_ports: &[Port]) -> Vec<Rule> {
    let mut lo = b"lo".to_vec();
    lo.resize(16, 0); // IFNAMSIZ: the kernel compares the whole name buffer
    let mut rules = vec![
        rule(
            "iifname lo accept",
            vec![
                Expr::Meta(MetaKey::IifName),
                Expr::Cmp {
                    op: CmpOp::Eq,
                    data: lo,
                },
            ],
            Verdict::Accept,
        ),
        rule(
            "ct state established,related accept",
            ct_state(CT_ESTABLISHED | CT_RELATED).to_vec(),
            Verdict::Accept,
        ),
        rule(
            "ct state invalid drop",
            ct_state(CT_INVALID).to_vec(),
            Verdict::Drop,
        ),
        rule(
            "meta l4proto icmp accept",
            vec![
                Expr::Meta(MetaKey::L4Proto),
                Expr::Cmp {
                    op: CmpOp::Eq,
                    data: vec![IPPROTO_ICMP],
                },
            ],
            Verdict::Accept,
        ),
        rule(
            "meta l4proto ipv6-icmp accept",
            vec![
                Expr::Meta(MetaKey::L4Proto),
                Expr::Cmp {
                    op: CmpOp::Eq,
                    data: vec![IPPROTO_ICMPV6],
                },
            ],
            Verdict::Accept,
        ),
        rule(
            "udp dport 68 accept (DHCP replies)",
            dport(Protocol::Udp, DHCP_CLIENT_PORT).to_vec(),
            Verdict::Accept,
        ),
    ];
    for r in firewall.rules.iter().filter(|r| r.enabled) {
        let mut exprs = dport(r.protocol, r.port).to_vec();
        let mut what = format!(
            "rule {:?}: {} dport {}",
            r.name,
            proto_name(r.protocol),
            r.port
        );
        if let Some(source) = &r.source {
            exprs.extend(saddr(source));
            what.push_str(&format!(" saddr {source}"));
        }
        rules.push(rule(what, exprs, verdict(r.action)));
    }
    let ports: BTreeSet<Port> = service_ports.iter().copied().collect();
    for port in ports {
        let what = format!(
            "service port {} dport {}",
            proto_name(port.protocol),
            port.number
        );
        rules.push(rule(
            what,
            dport(port.protocol, port.number).to_vec(),
            Verdict::Accept,
        ));
    }
    rules
}

/// The whole transaction: make sure the table exists (adding an existing
/// table is not an error), delete it with everything in it, create it again
/// with the chain and `rules`. The kernel applies all of it or none of it.
pub(crate) fn batch(policy: Policy, rules: &[Rule], first_seq: u32, ack: bool) -> Batch {
    let mut batch = Batch::new(first_seq, ack);
    let table = |a: &mut super::wire::Attrs<'_>| {
        a.string(1, TABLE); // NFTA_TABLE_NAME
        a.be32(2, 0); // NFTA_TABLE_FLAGS
    };
    batch.add(NFT_MSG_NEWTABLE, 0, "table inet mote (ensure)", table);
    batch.add(NFT_MSG_DELTABLE, 0, "table inet mote (delete)", |a| {
        a.string(1, TABLE)
    });
    batch.add(NFT_MSG_NEWTABLE, 0, "table inet mote", table);
    batch.add(NFT_MSG_NEWCHAIN, NLM_F_CREATE, "chain input", |a| {
        a.string(1, TABLE); // NFTA_CHAIN_TABLE
        a.string(3, CHAIN); // NFTA_CHAIN_NAME
        a.string(7, "filter"); // NFTA_CHAIN_TYPE
        a.be32(5, verdict(policy) as u32); // NFTA_CHAIN_POLICY
        a.nested(4, |hook| {
            // NFTA_CHAIN_HOOK
            hook.be32(1, HOOK_INPUT); // NFTA_HOOK_HOOKNUM
            hook.be32(2, 0); // NFTA_HOOK_PRIORITY: filter
        });
    });
    for rule in rules {
        batch.add(
            NFT_MSG_NEWRULE,
            NLM_F_CREATE | NLM_F_APPEND,
            rule.what.clone(),
            |a| {
                a.string(1, TABLE); // NFTA_RULE_TABLE
                a.string(2, CHAIN); // NFTA_RULE_CHAIN
                a.nested(4, |list| {
                    // NFTA_RULE_EXPRESSIONS
                    for expr in &rule.exprs {
                        expr.encode(list);
                    }
                });
            },
        );
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;
    use mote_config::FirewallRule;

    fn parse_hex(text: &str) -> Vec<Vec<u8>> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|line| {
                (0..line.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&line[i..i + 2], 16).unwrap())
                    .collect()
            })
            .collect()
    }

    /// The settings equivalent of `testdata/ruleset.nft`.
    fn fixture_settings() -> (Firewall, Vec<Port>) {
        let rule = |name: &str, port, protocol, source: &str, action| FirewallRule {
            name: name.into(),
            port,
            protocol,
            source: Some(source.parse().unwrap()),
            action,
            enabled: true,
        };
        let mut disabled = rule("off", 9999, Protocol::Tcp, "0.0.0.0/0", Policy::Allow);
        disabled.enabled = false;
        let firewall = Firewall {
            inbound: Policy::Deny,
            rules: vec![
                rule("ssh", 22, Protocol::Tcp, "10.16.0.0/12", Policy::Allow),
                rule("dns", 53, Protocol::Udp, "fd00:1::/60", Policy::Deny),
                disabled,
            ],
        };
        let web = Port {
            number: 80,
            protocol: Protocol::Tcp,
        };
        (firewall, vec![web, web])
    }

    #[test]
    fn the_batch_is_byte_for_byte_what_nft_sends_for_the_same_ruleset() {
        let expected = parse_hex(include_str!("testdata/batch.hex"));
        let (firewall, ports) = fixture_settings();
        let (bytes, _) = batch(firewall.inbound, &rules(&firewall, &ports), 0, false).finish();
        let ours: Vec<Vec<u8>> = crate::net::netlink::messages(&bytes)
            .map(|(_, m)| m.to_vec())
            .collect();
        assert_eq!(ours.len(), expected.len(), "message count");
        for (i, (ours, theirs)) in ours.iter().zip(&expected).enumerate() {
            let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
            assert_eq!(hex(ours), hex(theirs), "message {i} differs");
        }
    }

    #[test]
    fn with_acks_every_change_is_described_by_its_sequence_number() {
        let (firewall, ports) = fixture_settings();
        let (bytes, described) =
            batch(Policy::Allow, &rules(&firewall, &ports), 100, true).finish();
        assert_eq!(described.len(), 13);
        assert_eq!(described[0].0, 101);
        assert!(
            described[10].1.contains("saddr 10.16.0.0/12"),
            "{:?}",
            described[10]
        );
        let flags: Vec<u16> = crate::net::netlink::messages(&bytes)
            .map(|(h, _)| h.flags)
            .collect();
        assert_eq!(flags[0] & 0x4, 0, "BATCH_BEGIN asks for no ack");
        assert!(flags[1..flags.len() - 1].iter().all(|f| f & 0x4 != 0));
    }

    #[test]
    fn builtin_rules_come_first_and_disabled_rules_are_left_out() {
        assert_eq!(rules(&Firewall::default(), &[]).len(), BUILTIN_RULES);
        let (firewall, ports) = fixture_settings();
        let all = rules(&firewall, &ports);
        assert_eq!(
            all.len(),
            BUILTIN_RULES + 2 + 1,
            "two enabled rules, one distinct service port"
        );
        assert!(all.iter().all(|r| !r.what.contains("\"off\"")));
    }

    #[test]
    fn prefixes_on_and_off_byte_boundaries() {
        let on = saddr(&"10.0.0.0/8".parse().unwrap());
        assert_eq!(
            on[2],
            Expr::Payload {
                base: Base::Network,
                offset: 12,
                len: 1
            }
        );
        assert_eq!(
            on[3],
            Expr::Cmp {
                op: CmpOp::Eq,
                data: vec![10]
            }
        );
        let off = saddr(&"192.168.1.77/23".parse().unwrap());
        assert_eq!(
            off[3],
            Expr::Bitwise {
                mask: vec![255, 255, 254, 0],
                xor: vec![0; 4]
            }
        );
        assert_eq!(
            off[4],
            Expr::Cmp {
                op: CmpOp::Eq,
                data: vec![192, 168, 0, 0]
            }
        );
        assert_eq!(
            saddr(&"::/0".parse().unwrap()).len(),
            2,
            "any IPv6 source: family check only"
        );
    }
}
