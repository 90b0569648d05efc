//! Writing nfnetlink messages: attributes (TLVs), one message, and the batch
//! that wraps them. See the module docs of [`super`] for the layout.

/// `NFNL_SUBSYS_NFTABLES`: the high byte of every nf_tables message type.
pub(crate) const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NFNL_MSG_BATCH_BEGIN` / `_END`: the brackets of a transaction.
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
/// `NFT_MSG_*`: what one message in the batch does.
pub(crate) const NFT_MSG_NEWTABLE: u16 = 0;
pub(crate) const NFT_MSG_DELTABLE: u16 = 2;
pub(crate) const NFT_MSG_NEWCHAIN: u16 = 3;
pub(crate) const NFT_MSG_NEWRULE: u16 = 6;
/// `NFPROTO_INET`: a table for both IPv4 and IPv6.
pub(crate) const NFPROTO_INET: u8 = 1;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
/// `NLM_F_CREATE`, `NLM_F_APPEND`: create the object / append the rule.
pub(crate) const NLM_F_CREATE: u16 = 0x400;
pub(crate) const NLM_F_APPEND: u16 = 0x800;
/// Set on an attribute's type when its value is more attributes.
const NLA_F_NESTED: u16 = 0x8000;

/// Appends attributes to a message under construction.
pub(crate) struct Attrs<'a> {
    buf: &'a mut Vec<u8>,
}

impl Attrs<'_> {
    /// One attribute: `u16` length (header included, padding excluded),
    /// `u16` type, the value, zeros up to a multiple of 4.
    pub(crate) fn bytes(&mut self, kind: u16, value: &[u8]) {
        let len = 4 + value.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value);
        pad(self.buf);
    }

    /// A NUL-terminated string, as nf_tables wants names.
    pub(crate) fn string(&mut self, kind: u16, value: &str) {
        let mut bytes = Vec::with_capacity(value.len() + 1);
        bytes.extend_from_slice(value.as_bytes());
        bytes.push(0);
        self.bytes(kind, &bytes);
    }

    /// A 32-bit number: nf_tables sends these in network byte order.
    pub(crate) fn be32(&mut self, kind: u16, value: u32) {
        self.bytes(kind, &value.to_be_bytes());
    }

    /// An attribute whose value is the attributes `fill` writes.
    pub(crate) fn nested(&mut self, kind: u16, fill: impl FnOnce(&mut Attrs<'_>)) {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        fill(&mut Attrs { buf: self.buf });
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }
}

fn pad(buf: &mut Vec<u8>) {
    buf.resize((buf.len() + 3) & !3, 0);
}

/// A transaction under construction: `BATCH_BEGIN`, the messages, `BATCH_END`.
pub(crate) struct Batch {
    buf: Vec<u8>,
    begin_seq: u32,
    next_seq: u32,
    ack: bool,
    /// Sequence number and description of each message asking for an ack.
    pub(crate) described: Vec<(u32, String)>,
}

impl Batch {
    /// Start a batch whose first message has sequence number `first_seq`.
    /// With `ack`, every message in it asks the kernel for an acknowledgement.
    pub(crate) fn new(first_seq: u32, ack: bool) -> Self {
        let mut batch = Self {
            buf: Vec::with_capacity(4096),
            begin_seq: first_seq,
            next_seq: first_seq,
            ack,
            described: Vec::new(),
        };
        batch.bracket(NFNL_MSG_BATCH_BEGIN);
        batch
    }

    /// Sequence number of `BATCH_BEGIN`: the kernel reports a failed commit
    /// against it.
    pub(crate) fn begin_seq(&self) -> u32 {
        self.begin_seq
    }

    /// `BATCH_BEGIN` and `BATCH_END` carry no family and name the subsystem
    /// in `res_id`.
    fn bracket(&mut self, kind: u16) {
        self.header(kind, NLM_F_REQUEST, 0, NFNL_SUBSYS_NFTABLES.to_be_bytes());
        self.finish_message(self.buf.len() - 20);
    }

    /// Add one nf_tables message (`NFT_MSG_*`) for family `inet`.
    pub(crate) fn add(
        &mut self,
        kind: u16,
        flags: u16,
        what: impl Into<String>,
        fill: impl FnOnce(&mut Attrs<'_>),
    ) {
        let mut flags = NLM_F_REQUEST | flags;
        if self.ack {
            flags |= NLM_F_ACK;
            self.described.push((self.next_seq, what.into()));
        }
        let start = self.buf.len();
        self.header(
            NFNL_SUBSYS_NFTABLES << 8 | kind,
            flags,
            NFPROTO_INET,
            [0, 0],
        );
        fill(&mut Attrs { buf: &mut self.buf });
        self.finish_message(start);
    }

    /// `struct nlmsghdr` (length patched later) and `struct nfgenmsg`.
    fn header(&mut self, kind: u16, flags: u16, family: u8, res_id: [u8; 2]) {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // port: the kernel
        self.buf
            .extend_from_slice(&[family, 0 /* NFNETLINK_V0 */, res_id[0], res_id[1]]);
    }

    fn finish_message(&mut self, start: usize) {
        let len = (self.buf.len() - start) as u32;
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    /// Close the batch: its bytes, to send in one datagram.
    pub(crate) fn finish(mut self) -> (Vec<u8>, Vec<(u32, String)>) {
        self.bracket(NFNL_MSG_BATCH_END);
        (self.buf, self.described)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_padded_and_nests_measured() {
        let mut buf = Vec::new();
        let mut attrs = Attrs { buf: &mut buf };
        attrs.string(1, "mote");
        attrs.nested(4, |a| a.be32(1, 1));
        assert_eq!(
            buf,
            [
                9, 0, 1, 0, b'm', b'o', b't', b'e', 0, 0, 0, 0, // name, padded to 12
                12, 0, 4, 0x80, 8, 0, 1, 0, 0, 0, 0, 1, // nested, big-endian 1
            ]
        );
    }

    #[test]
    fn an_empty_batch_is_begin_and_end() {
        let batch = Batch::new(5, true);
        assert_eq!(batch.begin_seq(), 5);
        let (bytes, described) = batch.finish();
        assert!(described.is_empty());
        assert_eq!(bytes.len(), 40);
        assert_eq!(&bytes[4..6], &0x10u16.to_ne_bytes());
        assert_eq!(&bytes[24..26], &0x11u16.to_ne_bytes());
        assert_eq!(&bytes[28..32], &6u32.to_ne_bytes());
        assert_eq!(&bytes[36..40], &[0, 0, 0, 10]);
    }
}
