//! The node firewall: nftables, programmed over netlink (`NETLINK_NETFILTER`)
//! with no `nft` binary and no libnftnl.
//!
//! There is no permissively licensed pure-Rust nftables crate (the libnftnl
//! bindings and `nftnl-rs` wrap a GPL C library, `nftables` shells out to
//! `nft`), so this module writes the messages itself. The encoding below was
//! checked against what `nft` 1.0.6 sends for the same ruleset
//! (`testdata/`, captured with `strace -e write=3`), and a unit test holds
//! the two byte-for-byte equal.
//!
//! # What is installed
//!
//! ```text
//! table inet mote {
//!   chain input {
//!     type filter hook input priority 0; policy drop;   # accept when inbound = "allow"
//!     iifname "lo" accept
//!     ct state established,related accept                # replies to our own traffic
//!     ct state invalid drop
//!     meta l4proto icmp accept
//!     meta l4proto ipv6-icmp accept                       # neighbour discovery, RAs for SLAAC
//!     udp dport 68 accept                                 # DHCP server replies
//!     tcp dport 22 ip saddr 10.0.0.0/8 accept             # each enabled [[firewall.rules]]
//!     tcp dport 80 accept                                 # each service port
//!   }
//! }
//! ```
//!
//! ICMPv6 must be let in: without neighbour solicitations and advertisements
//! IPv6 cannot even resolve the next hop, and SLAAC lives on router
//! advertisements. ICMPv4 is let in for path-MTU discovery and ping.
//!
//! # Step by step: the encoding
//!
//! 1. **Messages.** Each is a netlink header (`nlmsghdr`: length, type,
//!    flags, sequence number, port 0 = the kernel; native byte order) and a
//!    4-byte `nfgenmsg` (family, version 0, `res_id` big-endian). The type
//!    is `NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_*` (`0x0a00` new table, `0x0a02`
//!    delete table, `0x0a03` new chain, `0x0a06` new rule); the family is
//!    `NFPROTO_INET` (1). Attributes follow as TLVs: `u16` length, `u16`
//!    type, the value padded to 4 bytes; a nested attribute has
//!    `NLA_F_NESTED` (0x8000) in its type. Names are NUL-terminated strings
//!    and numbers are big-endian `u32` (`wire.rs`).
//! 2. **The batch.** Changes to nf_tables are transactions: the messages sit
//!    between `NFNL_MSG_BATCH_BEGIN` (0x10) and `NFNL_MSG_BATCH_END` (0x11),
//!    whose `nfgenmsg` has family `AF_UNSPEC` and `res_id` =
//!    `NFNL_SUBSYS_NFTABLES`; the whole batch goes in one `send`, and the
//!    kernel commits all of it or nothing. Each inner message carries
//!    `NLM_F_ACK`, so the kernel answers each with an `NLMSG_ERROR` (0 for
//!    success), which ties a failure to the rule that caused it.
//! 3. **Table.** `NEWTABLE { NFTA_TABLE_NAME "mote", NFTA_TABLE_FLAGS 0 }`,
//!    then `DELTABLE { NAME "mote" }`, then `NEWTABLE` again. The first one
//!    makes the delete valid when the table does not exist yet; the delete
//!    drops the old chain and rules; all three are in the same transaction,
//!    so re-applying is atomic (no instant without a firewall) and
//!    idempotent.
//! 4. **Chain.** `NEWCHAIN` (`NLM_F_CREATE`) `{ NFTA_CHAIN_TABLE "mote",
//!    NFTA_CHAIN_NAME "input", NFTA_CHAIN_TYPE "filter", NFTA_CHAIN_POLICY
//!    NF_DROP (0) or NF_ACCEPT (1), NFTA_CHAIN_HOOK { NFTA_HOOK_HOOKNUM
//!    NF_INET_LOCAL_IN (1), NFTA_HOOK_PRIORITY 0 } }`: a base chain on the
//!    input hook, so it sees every packet addressed to the node.
//! 5. **Rules.** `NEWRULE` (`NLM_F_CREATE | NLM_F_APPEND`) `{ NFTA_RULE_TABLE,
//!    NFTA_RULE_CHAIN, NFTA_RULE_EXPRESSIONS { NFTA_LIST_ELEM { NFTA_EXPR_NAME
//!    "cmp", NFTA_EXPR_DATA { ... } }, ... } }`. A rule is a little program
//!    over registers; every expression that fails to match ends it (`expr.rs`):
//!    - `meta` `{ KEY, DREG }` loads metadata into register 1: `iifname`
//!      (6, the 16-byte interface name), `nfproto` (15: 2 = IPv4, 10 = IPv6),
//!      `l4proto` (16: 6 = TCP, 17 = UDP, 1 = ICMP, 58 = ICMPv6).
//!    - `ct` `{ KEY NFT_CT_STATE (0), DREG }` loads the conntrack state bits
//!      (invalid 1, established 2, related 4) as a host-order `u32`.
//!    - `payload` `{ DREG, BASE, OFFSET, LEN }` loads header bytes: the
//!      destination port is 2 bytes at offset 2 of the transport header
//!      (base 2); the IPv4 source is 4 bytes at offset 12 of the network
//!      header (base 1), the IPv6 source 16 bytes at offset 8.
//!    - `bitwise` `{ SREG, DREG, LEN, MASK { VALUE }, XOR { VALUE } }` computes
//!      `(reg & mask) ^ xor`: how `ct state a,b` keeps its bits and how a
//!      source prefix off a byte boundary is masked (one on a byte boundary
//!      just loads fewer bytes).
//!    - `cmp` `{ SREG, OP (0 eq, 1 neq), DATA { VALUE } }` compares register 1
//!      with a constant, in packet byte order.
//!    - `immediate` `{ DREG 0, DATA { VERDICT { CODE } } }` writes the verdict
//!      register: `NF_ACCEPT` (1) or `NF_DROP` (0).
//!
//!    So `tcp dport 22 ip saddr 10.16.0.0/12 accept` is: meta l4proto → cmp
//!    eq 6; payload transport+2 len 2 → cmp eq `00 16`; meta nfproto → cmp
//!    eq 2; payload network+12 len 4 → bitwise mask `ff f0 00 00` → cmp eq
//!    `0a 10 00 00`; immediate accept.
//!
//! # Limits
//! The batch goes out in one datagram, so it must fit the socket's send
//! buffer (about 800 rules with the default 208 KiB). Only inbound filtering;
//! no rate limits, no logging of drops.

mod expr;
mod ruleset;
mod wire;

use std::collections::BTreeMap;

use mote_config::{Firewall, Policy, Port};
use netlink_sys::protocols::NETLINK_NETFILTER;

use super::netlink::{self, NetlinkError, NlSocket};
use crate::events::Events;

/// Most datagrams read while collecting the acknowledgements of one batch.
const MAX_DATAGRAMS: usize = 4096;

/// Why the firewall could not be applied. The previous ruleset, if any,
/// stays in force: the kernel applies a batch whole or not at all.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// The netfilter socket could not be used.
    #[error("cannot talk to nf_tables")]
    Netlink(#[from] NetlinkError),
    /// The kernel refused one of the changes.
    #[error("nf_tables refused {what}")]
    Refused {
        /// The table, chain or rule, as nft would print it.
        what: String,
        /// The kernel's answer.
        #[source]
        source: NetlinkError,
    },
}

/// Replace table `inet mote` with the rules for these settings and service
/// ports, atomically. See the module docs for the ruleset and its encoding.
pub fn apply_firewall(
    firewall: &Firewall,
    service_ports: &[Port],
    events: &Events,
) -> Result<(), FirewallError> {
    let rules = ruleset::rules(firewall, service_ports);
    let result = send(firewall.inbound, &rules);
    match &result {
        Ok(()) => {
            let policy = match firewall.inbound {
                Policy::Deny => "deny",
                Policy::Allow => "allow",
            };
            let own: Vec<&str> = rules
                .iter()
                .skip(ruleset::BUILTIN_RULES)
                .map(|r| r.what.as_str())
                .collect();
            events.info(
                "firewall",
                format!(
                    "applied table inet mote: inbound {policy}; {} rules: {}",
                    own.len(),
                    own.join("; ")
                ),
            );
        }
        Err(e) => events.error("firewall", error_chain(e)),
    }
    result
}

/// An error and its sources on one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn send(policy: Policy, rules: &[ruleset::Rule]) -> Result<(), FirewallError> {
    let mut socket = NlSocket::open(NETLINK_NETFILTER)?;
    let batch = ruleset::batch(policy, rules, 1, true);
    let begin = batch.begin_seq();
    let (bytes, described) = batch.finish();
    let mut pending: BTreeMap<u32, String> = described.into_iter().collect();
    socket.send(&bytes)?;
    for _ in 0..MAX_DATAGRAMS {
        if pending.is_empty() {
            return Ok(());
        }
        let datagram = socket.recv()?;
        for (head, message) in netlink::messages(datagram) {
            if head.kind != netlink::NLMSG_ERROR {
                continue;
            }
            if let Err(source) = netlink::ack(&head, message) {
                let what = if head.seq == begin {
                    "the transaction (commit)".to_owned()
                } else {
                    pending
                        .remove(&head.seq)
                        .unwrap_or_else(|| format!("message {}", head.seq))
                };
                // The first refusal is the cause; later ones follow from it.
                return Err(FirewallError::Refused { what, source });
            }
            pending.remove(&head.seq);
        }
    }
    Err(NetlinkError::Malformed(format!("{} changes never acknowledged", pending.len())).into())
}
