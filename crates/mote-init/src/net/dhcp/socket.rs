//! The client's socket: UDP, bound to `0.0.0.0:68` on one interface.
//!
//! Why UDP rather than a raw `AF_PACKET` socket (what dhclient and dhcpcd
//! use): the kernel builds and checks the IP and UDP headers and checksums
//! for us — raw sockets on virtio-net and veth see packets whose checksums
//! were never filled in (offload), a classic source of DHCP bugs — and no
//! BPF filter is needed to keep all other traffic out of the process. One
//! socket type serves every state, renewals included.
//!
//! What makes it work before the interface has an address:
//! - `SO_BINDTODEVICE` ties sends and receives to the interface, so a
//!   broadcast leaves through it and only its replies come back;
//! - `SO_BROADCAST` allows sending to `255.255.255.255`;
//! - `SO_REUSEADDR` lets one socket per interface share port 68;
//! - the BOOTP broadcast flag in DISCOVER and REQUEST asks servers to
//!   broadcast their replies (RFC 2131 §4.1), which the kernel delivers to a
//!   socket bound to `0.0.0.0` even while the interface has no address.
//!   dnsmasq, ISC/Kea, busybox udhcpd and QEMU's user-mode server honour it.
//!
//! The costs, accepted: a server that ignores the flag and unicasts to the
//! offered address at the MAC level is never heard (we do not have that
//! address yet, so the kernel drops the packet); a DISCOVER leaves with another interface's
//! address as its IP source if one has any (servers go by `chaddr`, not the
//! source); and strict reverse-path filtering (`rp_filter=1`, not the
//! kernel's default) would drop replies before we have an address.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use super::client::Transport;

/// DHCP's ports.
const SERVER_PORT: u16 = 67;
const CLIENT_PORT: u16 = 68;

/// A UDP socket on port 68 of one interface.
pub(crate) struct UdpTransport {
    socket: UdpSocket,
}

impl UdpTransport {
    /// Open the socket on `interface`; must run inside the tokio runtime.
    pub(crate) fn bind(interface: &str) -> io::Result<Self> {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_reuse_address(true)?;
        socket.set_broadcast(true)?;
        socket.bind_device(Some(interface.as_bytes()))?;
        socket.set_nonblocking(true)?;
        socket.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, CLIENT_PORT).into())?;
        Ok(Self {
            socket: UdpSocket::from_std(socket.into())?,
        })
    }
}

impl Transport for UdpTransport {
    async fn send(&self, payload: &[u8], to: Ipv4Addr) -> io::Result<()> {
        let sent = self
            .socket
            .send_to(payload, SocketAddrV4::new(to, SERVER_PORT))
            .await?;
        if sent == payload.len() {
            Ok(())
        } else {
            Err(io::Error::new(io::ErrorKind::WriteZero, "short send"))
        }
    }

    async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let (len, from) = self.socket.recv_from(buf).await?;
            if from.port() == SERVER_PORT {
                return Ok(len);
            }
        }
    }
}
