//! A small synchronous rtnetlink client: send one `netlink-packet-route`
//! message, wait (bounded) for the kernel's acknowledgement or its replies.
//!
//! Synchronous on purpose: every request here is answered by the kernel in
//! microseconds, and a plain socket with a receive timeout keeps the code
//! obvious. Every wait is bounded by the socket's 2-second receive timeout.

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::protocols::NETLINK_ROUTE;

use super::netlink::{self, NetlinkError, NlSocket};

/// Most datagrams read for one request before giving up (a dump of a node's
/// links or addresses is a handful).
const MAX_DATAGRAMS: usize = 1024;

/// An open `NETLINK_ROUTE` socket.
pub(crate) struct Rtnl {
    socket: NlSocket,
    seq: u32,
}

impl Rtnl {
    /// Open a socket in the calling thread's network namespace.
    pub(crate) fn open() -> Result<Self, NetlinkError> {
        Ok(Self {
            socket: NlSocket::open(NETLINK_ROUTE)?,
            seq: 0,
        })
    }

    /// A request that changes something (`flags` adds `NLM_F_CREATE`,
    /// `NLM_F_REPLACE`, ...): Ok once the kernel acknowledges it.
    pub(crate) fn request(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<(), NetlinkError> {
        self.exchange(message, NLM_F_REQUEST | NLM_F_ACK | flags)
            .map(drop)
    }

    /// A request answered with messages: a `GET` of one object, or a dump when
    /// `dump` (all objects of that kind).
    pub(crate) fn query(
        &mut self,
        message: RouteNetlinkMessage,
        dump: bool,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        let flags = if dump {
            NLM_F_REQUEST | NLM_F_DUMP
        } else {
            NLM_F_REQUEST | NLM_F_ACK
        };
        self.exchange(message, flags)
    }

    fn exchange(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = seq;
        let mut request = NetlinkMessage::new(header, NetlinkPayload::from(message));
        request.finalize();
        let mut bytes = vec![0; request.buffer_len()];
        request.serialize(&mut bytes);
        self.socket.send(&bytes)?;

        let mut replies = Vec::new();
        for _ in 0..MAX_DATAGRAMS {
            let datagram = self.socket.recv()?;
            for (head, raw) in netlink::messages(datagram) {
                if head.seq != seq {
                    continue; // a late answer to an earlier, timed-out request
                }
                match head.kind {
                    netlink::NLMSG_ERROR => return netlink::ack(&head, raw).map(|()| replies),
                    netlink::NLMSG_DONE => return Ok(replies),
                    _ => match NetlinkMessage::<RouteNetlinkMessage>::deserialize(raw) {
                        Ok(parsed) => {
                            if let NetlinkPayload::InnerMessage(inner) = parsed.payload {
                                replies.push(inner);
                            }
                        }
                        Err(e) => return Err(NetlinkError::Malformed(e.to_string())),
                    },
                }
            }
        }
        Err(NetlinkError::Malformed(format!(
            "no end after {MAX_DATAGRAMS} datagrams"
        )))
    }
}
