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

use super::addr::{Domain, Target};
use super::dgram::{Inbox, Origin};
use super::errno::Errno;
use super::ports::Reuse;
use super::{Proto, SocketId, Sockets};
use crate::iface::{IfaceId, Interfaces};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::icmp;
use std::net::{IpAddr, SocketAddr};

/// Buffer bytes of one smoltcp ICMP socket (both ways).
const ICMP_BYTES: usize = 256 * 1024;

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
    ) -> Result<(), Errno> {
        let s = self.get(id).ok_or(Errno(libc::EBADF))?;
        if s.binding.is_some() {
            return Err(Errno(libc::EINVAL));
        }
        let a = match target {
            Target::Addr(a) => a,
            Target::Unspec => SocketAddr::new(s.domain.any(), 0),
        };
        if (s.domain == Domain::Inet) != a.is_ipv4() {
            return Err(Errno(libc::EAFNOSUPPORT));
        }
        if !a.ip().is_unspecified() && !ifs.is_local(&a.ip().into()) {
            return Err(Errno(libc::EADDRNOTAVAIL));
        }
        self.icmp_take_ident(id, a.ip(), a.port())
    }

    fn icmp_take_ident(&mut self, id: SocketId, ip: IpAddr, ident: u16) -> Result<(), Errno> {
        let (ident, b) = self
            .icmp_ports
            .take(ident, ip, false, Reuse::default())
            .map_err(Errno)?;
        let s = self.get_mut(id).ok_or(Errno(libc::EBADF))?;
        s.binding = Some((ident, b));
        s.local = Some(SocketAddr::new(ip, ident));
        Ok(())
    }

    /// `connect(2)`: a default destination.
    pub(crate) fn icmp_connect(
        &mut self,
        ifs: &Interfaces,
        id: SocketId,
        target: Target,
    ) -> Result<(), Errno> {
        let dst = match target {
            Target::Unspec => None,
            Target::Addr(a) => {
                ifs.route(&a.ip().into()).ok_or(Errno(libc::ENETUNREACH))?;
                Some(a)
            }
        };
        if self.get(id).is_some_and(|s| s.binding.is_none()) {
            let any = self
                .get(id)
                .map(|s| s.domain.any())
                .ok_or(Errno(libc::EBADF))?;
            self.icmp_take_ident(id, any, 0)?;
        }
        self.icmp_mut(id).ok_or(Errno(libc::EBADF))?.connected = dst;
        Ok(())
    }

    /// Sends one echo request (Linux rewrites the identifier and the checksum).
    pub(crate) fn icmp_sendto(
        &mut self,
        ifs: &mut Interfaces,
        id: SocketId,
        dst: Option<Target>,
        payload: &[u8],
    ) -> Result<usize, Errno> {
        let s = self.get(id).ok_or(Errno(libc::EBADF))?;
        let Proto::Icmp(st) = &s.proto else {
            return Err(Errno(libc::EBADF));
        };
        let dst = match dst {
            Some(Target::Addr(a)) => a,
            _ => st.connected.ok_or(Errno(libc::EDESTADDRREQ))?,
        };
        let v6 = s.domain == Domain::Inet6;
        if dst.is_ipv6() != v6 {
            return Err(Errno(libc::EAFNOSUPPORT));
        }
        let request = if v6 { ECHO_REQUEST_V6 } else { ECHO_REQUEST_V4 };
        if payload.len() < 8 || payload[0] != request || payload[1] != 0 {
            return Err(Errno(libc::EINVAL));
        }
        if payload.len() > 65507 {
            return Err(Errno(libc::EMSGSIZE));
        }
        let route = ifs
            .route(&dst.ip().into())
            .ok_or(Errno(libc::ENETUNREACH))?;
        if s.binding.is_none() {
            let any = s.domain.any();
            self.icmp_take_ident(id, any, 0)?;
        }
        let s = self.get(id).ok_or(Errno(libc::EBADF))?;
        let ident = s.binding.map_or(0, |b| b.0);
        let ttl = s.opts.ttl;
        let Proto::Icmp(st) = &s.proto else {
            return Err(Errno(libc::EBADF));
        };
        let handle = match st.socks.iter().find(|(i, _)| *i == route.iface) {
            Some((_, h)) => *h,
            None => {
                let used = super::budget::in_use(ifs);
                if !super::budget::fits(ICMP_BYTES, used, self.cfg.max_buffer_memory) {
                    super::budget::log_limit(format_args!(
                        "{used} bytes of socket buffers in use (--max-buffer-memory): ping send fails with ENOBUFS"
                    ));
                    return Err(Errno(libc::ENOBUFS));
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
                    .map_err(|_| Errno(libc::EINVAL))?;
                let h = ifs.get_mut(route.iface).sockets.add(sock);
                self.icmp_mut(id)
                    .ok_or(Errno(libc::EBADF))?
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
            .map_err(|_| Errno(libc::ENOBUFS))?;
        buf.copy_from_slice(payload);
        buf[4..6].copy_from_slice(&ident.to_be_bytes());
        // smoltcp computes the checksum when it emits the message.
        buf[2] = 0;
        buf[3] = 0;
        Ok(payload.len())
    }

    /// Echo replies to their sockets; connected sockets' native sends; closes.
    pub(crate) fn service_icmp(&mut self, ifs: &mut Interfaces) -> bool {
        let mut progress = false;
        let ids = self.take_ids();
        let mut buf = std::mem::take(&mut self.udp_buf);
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
            let (sent, gone) = self.drain_program_sends(ifs, id, &mut buf, |t, ifs, id, d| {
                let _ = t.icmp_sendto(ifs, id, None, d);
            });
            progress |= sent;
            if gone {
                self.icmp_close(ifs, id);
                progress = true;
            }
        }
        self.udp_buf = buf;
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
            self.icmp_ports.release(port, b);
        }
    }
}
