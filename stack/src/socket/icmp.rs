//! ICMP datagram sockets ("ping sockets"): `socket(AF_INET, SOCK_DGRAM,
//! IPPROTO_ICMP)` and `socket(AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6)`, as Linux offers
//! them to unprivileged users, so that `ping` works in a container without root.
//!
//! Linux semantics: the socket's "port" is the ICMP identifier (bound, or chosen at
//! the first send like an ephemeral port); a program may send only echo requests,
//! whose identifier the stack overwrites with the socket's and whose checksum it
//! computes; the socket receives the echo replies carrying its identifier, ICMP
//! header and payload without the IP header, with the replier as source (port 0).
//!
//! Each socket has one smoltcp ICMP socket per interface it sends through, bound to
//! its identifier. smoltcp also hands such a socket echo *requests* with that
//! identifier (a container pinging itself sees its own request); those are dropped
//! here. Echo requests to the container's addresses are answered by smoltcp itself.
//!
//! The identifiers in use are ICMP's own [`PortTable`] in its [`Table`].

use super::LazyBuf;
use super::addr::{Domain, Target};
use super::dgram::{AutobindError, Inbox, Origin};
use super::errno::{BindError, ConnectError, SendError};
use super::ports::{PortTable, Reuse};
use super::{Proto, SocketId, Sockets};
use crate::iface::shards::SocketHandle;
use crate::iface::{IfaceId, Interfaces};
use smoltcp::socket::icmp;
use std::net::{IpAddr, SocketAddr};

/// Buffer bytes of one smoltcp ICMP socket (both ways).
const ICMP_BYTES: usize = 256 * 1024;

/// The largest echo request (an IPv4 datagram's payload, as Linux allows).
const MAX_ECHO: usize = 65507;

const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;

/// The state of a ping socket.
#[derive(Default)]
pub(crate) struct IcmpState {
    pub(crate) inbox: Inbox,
    pub(crate) connected: Option<SocketAddr>,
    socks: Vec<(IfaceId, SocketHandle)>,
}

/// ICMP's part of the socket table.
pub(crate) struct Table {
    /// The identifiers of ping sockets (their "ports").
    idents: PortTable,
    /// Records programs write to connected sockets (echo replies are read in
    /// place): up to the largest echo request, made at the first record.
    buf: LazyBuf,
}

impl Table {
    pub(crate) fn new() -> Self {
        Table {
            idents: PortTable::new(crate::iface::random_u64() | 1),
            buf: LazyBuf::default(),
        }
    }
}

impl Sockets {
    fn icmp_mut(&mut self, id: SocketId) -> Option<&mut IcmpState> {
        match &mut self.get_mut(id)?.proto {
            Proto::Icmp(i) => Some(i),
            _ => None,
        }
    }

    /// `bind(2)`: the address must be the container's; the port is the identifier.
    pub(crate) fn icmp_bind(
        &mut self,
        ifs: &Interfaces,
        id: SocketId,
        target: Target,
    ) -> Result<(), BindError> {
        let s = self.get(id).ok_or(BindError::NoSuchSocket)?;
        if s.binding.is_some() {
            return Err(BindError::Invalid);
        }
        let a = match target {
            Target::Addr(a) => a,
            Target::Unspec => SocketAddr::new(s.domain.any(), 0),
        };
        if (s.domain == Domain::Inet) != a.is_ipv4() {
            return Err(BindError::WrongFamily);
        }
        if !a.ip().is_unspecified() && !ifs.is_local(&a.ip().into()) {
            return Err(BindError::AddrNotAvailable);
        }
        self.icmp_take_ident(id, a.ip(), a.port())
    }

    fn icmp_take_ident(&mut self, id: SocketId, ip: IpAddr, ident: u16) -> Result<(), BindError> {
        let (ident, b) = self.icmp.idents.take(ident, ip, false, Reuse::default())?;
        let s = self.get_mut(id).ok_or(BindError::NoSuchSocket)?;
        s.binding = Some((ident, b));
        s.local = Some(SocketAddr::new(ip, ident));
        Ok(())
    }

    /// Gives an unbound socket an identifier (before it connects or sends).
    fn icmp_autobind(&mut self, id: SocketId) -> Result<(), AutobindError> {
        let s = self.get(id).ok_or(AutobindError::NoSuchSocket)?;
        if s.binding.is_some() {
            return Ok(());
        }
        let any = s.domain.any();
        self.icmp_take_ident(id, any, 0).map_err(|e| match e {
            BindError::NoSuchSocket => AutobindError::NoSuchSocket,
            // Identifier 0: the only other way to fail is an exhausted range.
            _ => AutobindError::Exhausted,
        })
    }

    /// `connect(2)`: a default destination.
    pub(crate) fn icmp_connect(
        &mut self,
        ifs: &Interfaces,
        id: SocketId,
        target: Target,
    ) -> Result<(), ConnectError> {
        let dst = match target {
            Target::Unspec => None,
            Target::Addr(a) => {
                ifs.route(&a.ip().into())
                    .ok_or(ConnectError::NetworkUnreachable)?;
                Some(a)
            }
        };
        self.icmp_autobind(id)?;
        self.icmp_mut(id)
            .ok_or(ConnectError::NoSuchSocket)?
            .connected = dst;
        Ok(())
    }

    /// Sends one echo request (Linux rewrites the identifier and the checksum).
    pub(crate) fn icmp_sendto(
        &mut self,
        ifs: &mut Interfaces,
        id: SocketId,
        dst: Option<Target>,
        payload: &[u8],
    ) -> Result<usize, SendError> {
        let s = self.get(id).ok_or(SendError::NoSuchSocket)?;
        let Proto::Icmp(st) = &s.proto else {
            return Err(SendError::NoSuchSocket);
        };
        let dst = match dst {
            Some(Target::Addr(a)) => a,
            _ => st.connected.ok_or(SendError::DestinationRequired)?,
        };
        let v6 = s.domain == Domain::Inet6;
        if dst.is_ipv6() != v6 {
            return Err(SendError::WrongFamily);
        }
        let request = if v6 { ECHO_REQUEST_V6 } else { ECHO_REQUEST_V4 };
        if payload.len() < 8 || payload[0] != request || payload[1] != 0 {
            return Err(SendError::Invalid);
        }
        if payload.len() > MAX_ECHO {
            return Err(SendError::TooBig);
        }
        let route = ifs
            .route(&dst.ip().into())
            .ok_or(SendError::NetworkUnreachable)?;
        self.icmp_autobind(id)?;
        let s = self.get(id).ok_or(SendError::NoSuchSocket)?;
        let ident = s.binding.map_or(0, |b| b.0);
        let ttl = s.opts.ttl;
        let Proto::Icmp(st) = &s.proto else {
            return Err(SendError::NoSuchSocket);
        };
        let handle = match st.socks.iter().find(|(i, _)| *i == route.iface) {
            Some((_, h)) => *h,
            None => {
                super::budget::make_room(ifs, ICMP_BYTES, self.cfg.max_buffer_memory);
                let used = super::budget::in_use(ifs);
                if !super::budget::fits(ICMP_BYTES, used, self.cfg.max_buffer_memory) {
                    super::budget::log_limit(format_args!(
                        "{used} bytes of socket buffers in use (--max-buffer-memory): ping send fails with ENOBUFS"
                    ));
                    return Err(SendError::NoBuffers);
                }
                let mut sock = icmp::Socket::new(
                    icmp::PacketBuffer::new(
                        vec![icmp::PacketMetadata::EMPTY; 64],
                        vec![0u8; ICMP_BYTES / 2],
                    ),
                    icmp::PacketBuffer::new(
                        vec![icmp::PacketMetadata::EMPTY; 64],
                        vec![0u8; ICMP_BYTES / 2],
                    ),
                );
                sock.bind(icmp::Endpoint::Ident(ident))
                    .map_err(|_| SendError::Invalid)?;
                let h = ifs.get_mut(route.iface).sockets.add(sock);
                self.icmp_mut(id)
                    .ok_or(SendError::NoSuchSocket)?
                    .socks
                    .push((route.iface, h));
                h
            }
        };
        let sock = ifs
            .get_mut(route.iface)
            .sockets
            .get_mut::<icmp::Socket<'static>>(handle);
        sock.set_hop_limit(ttl);
        let buf = sock
            .send(payload.len(), dst.ip().into())
            .map_err(|_| SendError::NoBuffers)?;
        buf.copy_from_slice(payload);
        buf[4..6].copy_from_slice(&ident.to_be_bytes());
        // smoltcp computes the checksum when it emits the message.
        buf[2] = 0;
        buf[3] = 0;
        Ok(payload.len())
    }

    /// Echo replies to their sockets; connected sockets' native sends; closes.
    pub(crate) fn service_icmp(&mut self, ifs: &mut Interfaces) -> bool {
        if !self.any_icmp() {
            return false;
        }
        let mut progress = false;
        let ids = self.take_ids();
        let mut buf = std::mem::take(&mut self.icmp.buf);
        for &id in &ids {
            let Some(s) = self.get_mut(id) else { continue };
            let domain = s.domain;
            let Proto::Icmp(st) = &mut s.proto else {
                continue;
            };
            let reply = if domain == Domain::Inet6 {
                ECHO_REPLY_V6
            } else {
                ECHO_REPLY_V4
            };
            for &(iface, h) in &st.socks {
                let dst = ifs
                    .local_addrs(iface)
                    .map(IpAddr::from)
                    .find(|a| a.is_ipv6() == (domain == Domain::Inet6));
                let sock = ifs
                    .get_mut(iface)
                    .sockets
                    .get_mut::<icmp::Socket<'static>>(h);
                while let Ok((data, src)) = sock.recv() {
                    progress = true;
                    if data.first() != Some(&reply) {
                        continue; // our own echo request, seen on lo
                    }
                    let origin = Origin::new(
                        SocketAddr::new(src.into(), 0),
                        dst.unwrap_or(domain.any()),
                        iface,
                        data,
                    );
                    if let Some(si) = s.standin.as_ref() {
                        st.inbox.deliver(si, data, origin);
                    }
                }
            }
            // Records the program wrote (send/write on a connected socket).
            let readable = s.standin.as_ref().is_some_and(|si| si.readable || si.hup);
            if !readable {
                continue;
            }
            let (sent, gone) = self.drain_program_sends(ifs, id, buf.get(), |t, ifs, id, d| {
                let _ = t.icmp_sendto(ifs, id, None, d);
            });
            progress |= sent;
            if gone {
                self.icmp_close(ifs, id);
                progress = true;
            }
        }
        self.icmp.buf = buf;
        self.give_back_ids(ids);
        progress
    }

    /// Frees a ping socket.
    pub(crate) fn icmp_close(&mut self, ifs: &mut Interfaces, id: SocketId) {
        let Some(s) = self.remove(id, false) else {
            return;
        };
        if let Proto::Icmp(st) = &s.proto {
            for &(iface, h) in &st.socks {
                ifs.get_mut(iface).sockets.remove(h);
            }
        }
        if let Some((port, b)) = s.binding {
            self.icmp.idents.release(port, b);
        }
    }
}
