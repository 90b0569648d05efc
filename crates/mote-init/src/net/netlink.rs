//! The part of netlink every family shares: a socket with a receive timeout,
//! splitting a datagram into messages, and reading the kernel's acknowledgements
//! (`NLMSG_ERROR`, with the extended-ack text when the kernel sends one).
//!
//! A netlink message is a 16-byte header (`nlmsg_len`, `nlmsg_type`,
//! `nlmsg_flags`, `nlmsg_seq`, `nlmsg_pid`, native byte order) followed by the
//! payload, padded to 4 bytes. An acknowledgement is `NLMSG_ERROR` (type 2)
//! whose payload is an `i32` (0 or `-errno`), the header of the request it
//! answers (we ask for only the header with `NETLINK_CAP_ACK`), then, when
//! `NLM_F_ACK_TLVS` is set, attributes of which `NLMSGERR_ATTR_MSG` (1) is a
//! human-readable reason.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use netlink_sys::Socket;

/// `NLMSG_ERROR`: an error or an acknowledgement.
pub(crate) const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: end of a dump.
pub(crate) const NLMSG_DONE: u16 = 3;
/// `NLM_F_ACK_TLVS`, on an `NLMSG_ERROR`: extended-ack attributes follow.
const NLM_F_ACK_TLVS: u16 = 0x200;
/// `NLMSGERR_ATTR_MSG`: the reason, a NUL-terminated string.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// Size of `struct nlmsghdr`.
pub(crate) const HEADER_LEN: usize = 16;

/// How long we wait for the kernel to answer one request.
const RECV_TIMEOUT: Duration = Duration::from_secs(2);
/// Receive buffer: larger than any datagram the kernel sends us.
const RECV_BUFFER: usize = 64 * 1024;

/// What failed while talking to the kernel over netlink.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The socket could not be opened or bound.
    #[error("cannot open a netlink socket")]
    Open(#[source] io::Error),
    /// The request could not be sent.
    #[error("cannot send to the kernel")]
    Send(#[source] io::Error),
    /// No answer arrived in time, or reading failed.
    #[error("no answer from the kernel")]
    Receive(#[source] io::Error),
    /// The kernel answered with an error.
    #[error("the kernel refused: {reason}")]
    Refused {
        /// The positive errno.
        errno: i32,
        /// `strerror` of `errno`, and the kernel's own explanation when it gave one.
        reason: String,
    },
    /// The answer could not be parsed.
    #[error("malformed answer from the kernel: {0}")]
    Malformed(String),
}

impl NetlinkError {
    /// The errno of a refusal, if this is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Refused { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

/// A bound netlink socket of one protocol, with a receive timeout.
pub(crate) struct NlSocket {
    socket: Socket,
    buf: Vec<u8>,
}

impl NlSocket {
    /// Open and bind a socket of `protocol` (`NETLINK_ROUTE`, `NETLINK_NETFILTER`).
    pub(crate) fn open(protocol: isize) -> Result<Self, NetlinkError> {
        let mut socket = Socket::new(protocol).map_err(NetlinkError::Open)?;
        socket.bind_auto().map_err(NetlinkError::Open)?;
        // Both only make answers smaller and errors clearer; old kernels lack them.
        let _ = socket.set_cap_ack(true);
        let _ = socket.set_ext_ack(true);
        // SAFETY: the descriptor belongs to `socket`, which outlives this borrow.
        let fd = unsafe { BorrowedFd::borrow_raw(socket.as_raw_fd()) };
        rustix::net::sockopt::set_socket_timeout(
            fd,
            rustix::net::sockopt::Timeout::Recv,
            Some(RECV_TIMEOUT),
        )
        .map_err(|e| NetlinkError::Open(e.into()))?;
        Ok(Self {
            socket,
            buf: Vec::with_capacity(RECV_BUFFER),
        })
    }

    /// Send one datagram (one message or a whole batch) to the kernel.
    pub(crate) fn send(&self, bytes: &[u8]) -> Result<(), NetlinkError> {
        let sent = self.socket.send(bytes, 0).map_err(NetlinkError::Send)?;
        if sent != bytes.len() {
            return Err(NetlinkError::Send(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("sent {sent} of {} bytes", bytes.len()),
            )));
        }
        Ok(())
    }

    /// Receive one datagram; it holds one or more messages. Times out after
    /// [`RECV_TIMEOUT`].
    pub(crate) fn recv(&mut self) -> Result<&[u8], NetlinkError> {
        self.buf.clear();
        self.buf.reserve(RECV_BUFFER);
        loop {
            match self.socket.recv(&mut self.buf, 0) {
                Ok(_) => return Ok(&self.buf),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(NetlinkError::Receive(e)),
            }
        }
    }
}

/// The fixed header of one netlink message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) len: u32,
    pub(crate) kind: u16,
    pub(crate) flags: u16,
    pub(crate) seq: u32,
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// Read the header at the start of `bytes`.
pub(crate) fn header(bytes: &[u8]) -> Option<Header> {
    Some(Header {
        len: u32_at(bytes, 0)?,
        kind: u16_at(bytes, 4)?,
        flags: u16_at(bytes, 6)?,
        seq: u32_at(bytes, 8)?,
    })
}

/// The messages in one datagram, each as its header and its whole bytes
/// (header included). Stops at the first malformed length.
pub(crate) fn messages(mut bytes: &[u8]) -> impl Iterator<Item = (Header, &[u8])> {
    std::iter::from_fn(move || {
        let head = header(bytes)?;
        let len = head.len as usize;
        if len < HEADER_LEN || len > bytes.len() {
            return None;
        }
        let message = &bytes[..len];
        bytes = bytes.get(align(len)..).unwrap_or(&[]);
        Some((head, message))
    })
}

/// Round up to netlink's 4-byte alignment.
pub(crate) const fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// An `NLMSG_ERROR` message: `Ok(())` for an acknowledgement, the refusal
/// otherwise. `message` is the whole message, header included.
pub(crate) fn ack(head: &Header, message: &[u8]) -> Result<(), NetlinkError> {
    let code = u32_at(message, HEADER_LEN)
        .map(|c| c as i32)
        .ok_or_else(|| NetlinkError::Malformed("short NLMSG_ERROR".into()))?;
    if code == 0 {
        return Ok(());
    }
    let errno = code.saturating_abs();
    let mut reason = io::Error::from_raw_os_error(errno).to_string();
    if head.flags & NLM_F_ACK_TLVS != 0 {
        // Error code, then the echoed request: its header only, or all of it
        // when the kernel did not honour NETLINK_CAP_ACK.
        let echoed = u32_at(message, HEADER_LEN + 4).unwrap_or(0) as usize;
        let capped = head.flags & 0x100 != 0; // NLM_F_CAPPED
        let skip = HEADER_LEN + 4 + if capped { HEADER_LEN } else { align(echoed) };
        if let Some(text) = message.get(skip..).and_then(ext_ack_message) {
            reason = format!("{reason} ({text})");
        }
    }
    Err(NetlinkError::Refused { errno, reason })
}

/// `NLMSGERR_ATTR_MSG` among extended-ack attributes.
fn ext_ack_message(mut attrs: &[u8]) -> Option<String> {
    while attrs.len() >= 4 {
        let len = usize::from(u16_at(attrs, 0)?);
        let kind = u16_at(attrs, 2)? & 0x3fff;
        let value = attrs.get(4..len)?;
        if kind == NLMSGERR_ATTR_MSG {
            let text = value.split(|b| *b == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        attrs = attrs.get(align(len.max(4))..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_message(code: i32, seq: u32, ext: Option<&str>) -> Vec<u8> {
        let mut payload = code.to_ne_bytes().to_vec();
        // The echoed request header (capped).
        payload.extend_from_slice(&[20, 0, 0, 0, 0, 10, 1, 0]);
        payload.extend_from_slice(&seq.to_ne_bytes());
        payload.extend_from_slice(&0u32.to_ne_bytes());
        let mut flags = 0x100u16;
        if let Some(text) = ext {
            flags |= NLM_F_ACK_TLVS;
            let value = [text.as_bytes(), &[0]].concat();
            payload.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
            payload.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
            payload.extend_from_slice(&value);
            payload.resize(align(payload.len()), 0);
        }
        let mut out = ((HEADER_LEN + payload.len()) as u32).to_ne_bytes().to_vec();
        out.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        out.extend_from_slice(&flags.to_ne_bytes());
        out.extend_from_slice(&seq.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(&payload);
        out
    }

    #[test]
    fn acks_errors_and_their_reasons_are_read() {
        let mut datagram = error_message(0, 7, None);
        datagram.extend(error_message(
            -2,
            8,
            Some("No such file or directory in table"),
        ));
        let parsed: Vec<_> = messages(&datagram).collect();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].0.seq, 7);
        assert!(ack(&parsed[0].0, parsed[0].1).is_ok());
        let err = ack(&parsed[1].0, parsed[1].1).unwrap_err();
        assert_eq!(err.errno(), Some(2));
        assert!(err.to_string().contains("in table"), "{err}");
    }

    #[test]
    fn truncated_datagrams_stop_the_iteration() {
        let datagram = error_message(0, 1, None);
        assert_eq!(messages(&datagram[..10]).count(), 0);
        let mut bad = datagram.clone();
        bad[0] = 200; // longer than the datagram
        assert_eq!(messages(&bad).count(), 0);
        let mut tiny = datagram;
        tiny[0] = 4; // shorter than a header
        assert_eq!(messages(&tiny).count(), 0);
    }
}
