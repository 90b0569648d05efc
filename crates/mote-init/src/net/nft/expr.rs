//! nf_tables expressions: the instructions of a rule's little register
//! machine, and how each is encoded. Every data expression here loads into
//! or reads register 1 (`NFT_REG_1`, 16 bytes); the verdict goes to register 0.

use super::wire::Attrs;

/// `NFT_REG_VERDICT` and `NFT_REG_1`.
const REG_VERDICT: u32 = 0;
const REG_1: u32 = 1;

/// `NFTA_LIST_ELEM`, `NFTA_EXPR_NAME`, `NFTA_EXPR_DATA`.
const LIST_ELEM: u16 = 1;
const EXPR_NAME: u16 = 1;
const EXPR_DATA: u16 = 2;
/// `NFTA_DATA_VALUE`, `NFTA_DATA_VERDICT`, `NFTA_VERDICT_CODE`.
const DATA_VALUE: u16 = 1;
const DATA_VERDICT: u16 = 2;
const VERDICT_CODE: u16 = 1;

/// `enum nft_meta_keys` values used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MetaKey {
    /// `NFT_META_IIFNAME` (6): input interface name, 16 bytes.
    IifName = 6,
    /// `NFT_META_NFPROTO` (15): 2 for IPv4, 10 for IPv6, one byte.
    NfProto = 15,
    /// `NFT_META_L4PROTO` (16): transport protocol number, one byte.
    L4Proto = 16,
}

/// `NFT_PAYLOAD_NETWORK_HEADER` (1), `NFT_PAYLOAD_TRANSPORT_HEADER` (2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Base {
    /// The IPv4 or IPv6 header.
    Network = 1,
    /// The TCP or UDP header.
    Transport = 2,
}

/// `NFT_CMP_EQ` (0), `NFT_CMP_NEQ` (1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    /// Equal.
    Eq = 0,
    /// Not equal.
    Neq = 1,
}

/// `NF_DROP` (0), `NF_ACCEPT` (1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Drop the packet.
    Drop = 0,
    /// Let it in.
    Accept = 1,
}

/// One expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expr {
    /// `meta`: load packet metadata into register 1.
    Meta(MetaKey),
    /// `ct`: load the connection-tracking state bits (`NFT_CT_STATE`, 0) into
    /// register 1, a host-order `u32`.
    CtState,
    /// `payload`: load `len` bytes at `offset` from a header into register 1.
    Payload { base: Base, offset: u32, len: u32 },
    /// `cmp`: compare register 1 with `data`; on mismatch the rule stops.
    Cmp { op: CmpOp, data: Vec<u8> },
    /// `bitwise`: register 1 = (register 1 & mask) ^ xor, over `mask.len()` bytes.
    Bitwise { mask: Vec<u8>, xor: Vec<u8> },
    /// `immediate`: set the verdict register.
    Verdict(Verdict),
}

impl Expr {
    fn name(&self) -> &'static str {
        match self {
            Self::Meta(_) => "meta",
            Self::CtState => "ct",
            Self::Payload { .. } => "payload",
            Self::Cmp { .. } => "cmp",
            Self::Bitwise { .. } => "bitwise",
            Self::Verdict(_) => "immediate",
        }
    }

    /// Append this expression as one element of `NFTA_RULE_EXPRESSIONS`:
    /// `NFTA_LIST_ELEM { NFTA_EXPR_NAME "name", NFTA_EXPR_DATA { ... } }`, the
    /// data attributes in the order nft writes them.
    pub(crate) fn encode(&self, list: &mut Attrs<'_>) {
        list.nested(LIST_ELEM, |elem| {
            elem.string(EXPR_NAME, self.name());
            elem.nested(EXPR_DATA, |data| match self {
                Self::Meta(key) => {
                    data.be32(2, *key as u32); // NFTA_META_KEY
                    data.be32(1, REG_1); // NFTA_META_DREG
                }
                Self::CtState => {
                    data.be32(2, 0); // NFTA_CT_KEY: NFT_CT_STATE
                    data.be32(1, REG_1); // NFTA_CT_DREG
                }
                Self::Payload { base, offset, len } => {
                    data.be32(1, REG_1); // NFTA_PAYLOAD_DREG
                    data.be32(2, *base as u32); // NFTA_PAYLOAD_BASE
                    data.be32(3, *offset); // NFTA_PAYLOAD_OFFSET
                    data.be32(4, *len); // NFTA_PAYLOAD_LEN
                }
                Self::Cmp { op, data: value } => {
                    data.be32(1, REG_1); // NFTA_CMP_SREG
                    data.be32(2, *op as u32); // NFTA_CMP_OP
                    data.nested(3, |d| d.bytes(DATA_VALUE, value)); // NFTA_CMP_DATA
                }
                Self::Bitwise { mask, xor } => {
                    data.be32(1, REG_1); // NFTA_BITWISE_SREG
                    data.be32(2, REG_1); // NFTA_BITWISE_DREG
                    data.be32(3, mask.len() as u32); // NFTA_BITWISE_LEN
                    data.nested(4, |d| d.bytes(DATA_VALUE, mask)); // NFTA_BITWISE_MASK
                    data.nested(5, |d| d.bytes(DATA_VALUE, xor)); // NFTA_BITWISE_XOR
                }
                Self::Verdict(verdict) => {
                    data.be32(1, REG_VERDICT); // NFTA_IMMEDIATE_DREG
                    data.nested(2, |d| {
                        // NFTA_IMMEDIATE_DATA
                        d.nested(DATA_VERDICT, |v| v.be32(VERDICT_CODE, *verdict as u32));
                    });
                }
            });
        });
    }
}
