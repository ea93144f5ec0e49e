//! Published ports (`netcell run -p [HOST_IP:]HOST_PORT[-END]:CONTAINER_PORT[-END][/tcp|/udp]`,
//! podman's syntax): the host's ports that lead to the container's servers.
//!
//! # Theory of operation
//!
//! **TCP.** netcell listens on the host port itself. A connection the host accepts
//! is not relayed: the host's accepted socket goes, as it is, into the accept
//! queue of the container's listener on the container port (an accept record
//! carrying it, like any connection's stand-in), so the program's `accept`
//! returns the host socket — its bytes never pass through netcell, and
//! `getpeername` and `accept`'s address are the real client's (pasta keeps them
//! too; slirp4netns does not). `getsockname` shows the container's address and
//! port. A listener takes it when it is bound to the unspecified address or to the
//! container's own (not to a loopback address, as on a real host), its family
//! admits the client's, and its backlog has room; otherwise the connection is
//! reset, as a host with no listener there would.
//!
//! **UDP** is published through the host uplink only: the host socket bound to
//! the host port becomes one of the uplink's flows, pinned, whose datagrams arrive
//! at the container's address and port with the client's true source, and whose
//! container port's replies leave through it (the client sees them come from the
//! port it sent to).

use crate::Stack;
use crate::device::Link;
use mio::net::{TcpListener, UdpSocket};
use mio::{Events, Interest, Poll, Token};
use smoltcp::phy::Device;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// A transport protocol of a published port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortProto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl fmt::Display for PortProto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PortProto::Tcp => "tcp",
            PortProto::Udp => "udp",
        })
    }
}

/// One published port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortMap {
    /// The host address to listen on (`None`: all of them, IPv4).
    pub host_ip: Option<IpAddr>,
    /// The host port.
    pub host_port: u16,
    /// The container's port.
    pub container_port: u16,
    /// TCP or UDP.
    pub proto: PortProto,
}

impl PortMap {
    fn host_addr(&self) -> SocketAddr {
        SocketAddr::new(
            self.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            self.host_port,
        )
    }
}

/// Why a port cannot be published.
#[derive(Debug)]
pub struct PublishError {
    /// The port.
    pub map: PortMap,
    /// What the host said.
    pub error: io::Error,
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.map;
        write!(
            f,
            "cannot publish {}/{} (to the container's port {}): {}",
            m.host_addr(),
            m.proto,
            m.container_port,
            self.error
        )?;
        match self.error.raw_os_error() {
            Some(libc::EADDRINUSE) => write!(f, "; another program listens there"),
            Some(libc::EACCES) => write!(
                f,
                "; ports below {} need privilege (net.ipv4.ip_unprivileged_port_start)",
                std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
                    .map(|s| s.trim().to_string())
                    .unwrap_or_else(|_| "1024".into())
            ),
            Some(libc::EADDRNOTAVAIL) => write!(f, "; the host has no such address"),
            _ => Ok(()),
        }
    }
}

impl std::error::Error for PublishError {}

/// The host listeners of a container's published TCP ports (UDP ones live in the
/// uplink device).
pub struct Publisher {
    poll: Poll,
    events: Events,
    tcp: Vec<(TcpListener, PortMap)>,
}

impl Publisher {
    /// Binds every port of `maps`. TCP ports listen here; UDP ports become pinned
    /// flows of `link`'s uplink (an error without one). The first port that
    /// cannot be bound fails the whole set.
    pub fn bind(maps: &[PortMap], link: Option<&Link>) -> Result<Publisher, PublishError> {
        let poll = Poll::new().map_err(|error| PublishError {
            map: maps[0],
            error,
        })?;
        let mut tcp = Vec::new();
        for m in maps {
            let fail = |error| PublishError { map: *m, error };
            match m.proto {
                PortProto::Tcp => {
                    let mut l = TcpListener::bind(m.host_addr()).map_err(fail)?;
                    poll.registry()
                        .register(&mut l, Token(tcp.len()), Interest::READABLE)
                        .map_err(fail)?;
                    tcp.push((l, *m));
                }
                PortProto::Udp => {
                    let Some(Link::Uplink(up)) = link else {
                        return Err(fail(io::Error::other(
                            "UDP ports are published through the host uplink only (not with --tap)",
                        )));
                    };
                    let s = UdpSocket::bind(m.host_addr()).map_err(fail)?;
                    up.publish_udp(s, m.container_port).map_err(fail)?;
                }
            }
            log::info!(
                "published {}/{} -> the container's port {}",
                m.host_addr(),
                m.proto,
                m.container_port
            );
        }
        Ok(Publisher {
            poll,
            events: Events::with_capacity(64),
            tcp,
        })
    }

    /// Accepts what the host listeners hold and hands each connection to the
    /// container's listener (see the module docs).
    pub fn serve<D: Device>(&mut self, stack: &mut Stack<D>) {
        if self
            .poll
            .poll(&mut self.events, Some(std::time::Duration::ZERO))
            .is_err()
        {
            return;
        }
        let ready: Vec<usize> = self.events.iter().map(|e| e.token().0).collect();
        for i in ready {
            let Some((l, m)) = self.tcp.get(i) else {
                continue;
            };
            let cport = m.container_port;
            loop {
                match l.accept() {
                    Ok((conn, peer)) => {
                        let fd = OwnedFd::from(std::net::TcpStream::from(conn));
                        // accept() without SOCK_NONBLOCK gives a blocking socket.
                        if let Err(e) =
                            crate::sys::set_nonblocking(std::os::fd::AsFd::as_fd(&fd), false)
                        {
                            log::warn!("published port: {e}");
                            continue;
                        }
                        stack.deliver_published(cport, fd, peer);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        // EMFILE and the like: the connection waits in the host's
                        // queue; the next readiness tries again.
                        log::warn!("published port {}: accept: {e}", m.host_port);
                        break;
                    }
                }
            }
        }
        stack.poll();
    }
}

impl AsRawFd for Publisher {
    fn as_raw_fd(&self) -> RawFd {
        self.poll.as_raw_fd()
    }
}
