//! UDP with Linux semantics over smoltcp.
//!
//! # Theory of operation
//!
//! **Endpoints and fan-out.** smoltcp delivers a datagram to the first UDP socket
//! that matches it, which cannot express `SO_REUSEADDR`/`SO_REUSEPORT`, several
//! multicast members on one port, or broadcast reaching every socket bound to the
//! port. So smoltcp sockets here are *endpoints*: one per (interface, port) that any
//! socket of the table has bound, shared by those sockets. Every datagram an
//! endpoint receives is demultiplexed here, as Linux does: a unicast datagram goes
//! to the one best-matching socket (a connected 4-tuple beats a bound address beats
//! a wildcard; a `SO_REUSEPORT` group picks by a hash of the source), a broadcast or
//! multicast datagram to every matching socket.
//!
//! **Stand-ins.** A UDP socket's stand-in is an `AF_UNIX` `SOCK_SEQPACKET` pair:
//! record boundaries are kept (a short read truncates and drops the rest, as UDP
//! does), and the stack still sees the program's last `close` as a hang-up (a
//! `SOCK_DGRAM` pair would not show it). Records carry bare payloads, so `read`,
//! `recv`, `poll` and `epoll` work natively, also where no front end can intercept
//! them. The datagram's source and destination go into a per-socket FIFO of
//! [`Origin`]s; a front end that must report them (`recvfrom`, `recvmsg`) reads the
//! record natively and then asks for the origin of "the datagram of this length
//! starting with these bytes" ([`Sockets::udp_origin`]); entries ahead of the match
//! belong to datagrams the program read without asking and are dropped. A connected
//! socket's `send`/`write` is a record the stack reads from its end; a datagram with
//! an explicit destination comes in a control request ([`Sockets::udp_sendto`]).
//!
//! **Errors.** An ICMP error for a connected socket (port unreachable → the next
//! receive fails with `ECONNREFUSED`) is written into the stand-in as a *marker*:
//! a record carrying the errno with a descriptor attached, which no datagram has;
//! the front end turns it into the error.
//!
//! **Per-datagram IP fields.** The TTL (unicast, or `IP_MULTICAST_TTL`, default 1)
//! and the TOS byte of each datagram ride in smoltcp's packet metadata and are
//! written into the IP header on the way out ([`crate::iface::egress`]), so sockets
//! sharing an endpoint never mix them up.
//!
//! **Multicast.** Memberships are counted per (interface, group); the first join
//! makes smoltcp send the IGMP/MLD report, the last leave the leave message.
//! smoltcp speaks IGMPv2/MLDv1 only: source-specific joins become any-source joins
//! on the wire and are filtered here. Datagrams a socket sends to a group its own
//! interface has joined are looped back to local members (`IP_MULTICAST_LOOP`),
//! and broadcasts are looped back always, as Linux does.

use super::addr::{Domain, Target};
use super::dgram::{Inbox, Origin};
use super::errno::Errno;
use super::ports::Reuse;
use super::{Proto, SocketId, Sockets};
use crate::iface::egress::IpFields;
use crate::iface::ingress::IcmpError;
use crate::iface::{IfaceId, Interfaces, LO};
use crate::sys;
use smoltcp::iface::SocketHandle;
use smoltcp::phy::PacketMeta;
use smoltcp::socket::udp::{self, UdpMetadata};
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};

/// Packets and bytes an endpoint buffers each way.
const EP_PACKETS: usize = 512;
/// Sources in one membership's filter at most (Linux's `net.ipv4.igmp_max_msf`,
/// beyond which it answers `ENOBUFS`).
const MAX_MSF: usize = 10;
const EP_BYTES: usize = 512 * 1024;
/// The largest UDP payload over IPv4 (65535 - 20 - 8) and IPv6 (65535 - 8).
const MAX_UDP4: usize = 65507;
const MAX_UDP6: usize = 65527;

/// A multicast membership of one socket.
#[derive(Clone, Debug, PartialEq)]
struct Membership {
    group: IpAddr,
    iface: IfaceId,
    /// Source-specific: only these sources (empty: any source).
    include: Vec<IpAddr>,
    /// Blocked sources of an any-source membership.
    exclude: Vec<IpAddr>,
}

/// The UDP state of a socket.
pub(crate) struct UdpState {
    pub(crate) connected: Option<SocketAddr>,
    /// The local address came from `connect` (dissolved with it).
    addr_from_connect: bool,
    pub(crate) inbox: Inbox,
    memberships: Vec<Membership>,
    mcast_if: Option<IfaceId>,
    mcast_if_addr: Option<Ipv4Addr>,
    mcast_ttl: u8,
    mcast_loop: bool,
    mcast_all: bool,
    mcast6_hops: u8,
    mcast6_loop: bool,
    mcast6_if: Option<IfaceId>,
}

impl Default for UdpState {
    fn default() -> Self {
        UdpState {
            connected: None,
            addr_from_connect: false,
            inbox: Inbox::default(),
            memberships: Vec::new(),
            mcast_if: None,
            mcast_if_addr: None,
            mcast_ttl: 1,
            mcast_loop: true,
            mcast_all: true,
            mcast6_hops: 1,
            mcast6_loop: true,
            mcast6_if: None,
        }
    }
}

/// A smoltcp UDP socket shared by the table's sockets bound to its port.
pub(crate) struct Endpoint {
    handle: SocketHandle,
    users: u32,
}

fn is_broadcast(ifs: &Interfaces, a: &IpAddr) -> bool {
    match a {
        IpAddr::V4(v4) => {
            v4.is_broadcast()
                || ifs
                    .eth_addrs()
                    .iter()
                    .any(|c| match (c.address(), c.prefix_len()) {
                        (IpAddress::Ipv4(ip), p) if p < 31 => {
                            let mask = u32::MAX << (32 - p as u32);
                            u32::from(*v4) == (u32::from(ip) & mask) | !mask
                        }
                        _ => false,
                    })
        }
        IpAddr::V6(_) => false,
    }
}

fn family_ok(bound: &IpAddr, dual: bool, dst: &IpAddr) -> bool {
    match (bound, dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => true,
        (IpAddr::V6(_), IpAddr::V4(_)) => dual,
        (IpAddr::V4(_), IpAddr::V6(_)) => false,
    }
}

fn int_opt(v: &[u8]) -> Result<i32, Errno> {
    match v.len() {
        0 => Err(Errno(libc::EINVAL)),
        1..=3 => Ok(v[0] as i32), // Linux accepts a byte for the IP_MULTICAST_* ints
        _ => Ok(i32::from_ne_bytes([v[0], v[1], v[2], v[3]])),
    }
}

fn v4_at(v: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(v[at], v[at + 1], v[at + 2], v[at + 3])
}

impl Sockets {
    pub(crate) fn udp(&self, id: SocketId) -> Option<&UdpState> {
        match &self.get(id)?.proto {
            Proto::Udp(u) => Some(u),
            _ => None,
        }
    }

    fn udp_mut(&mut self, id: SocketId) -> Option<&mut UdpState> {
        match &mut self.get_mut(id)?.proto {
            Proto::Udp(u) => Some(u),
            _ => None,
        }
    }

    /// Makes sure every interface has an endpoint for `port`, counting a user.
    fn udp_add_user(&mut self, ifs: &mut Interfaces, port: u16, id: SocketId) {
        self.udp_users.entry(port).or_default().push(id);
        for iface in 0..ifs.len() {
            let ep = self.udp_eps.entry((iface, port)).or_insert_with(|| {
                let rx = udp::PacketBuffer::new(
                    vec![udp::PacketMetadata::EMPTY; EP_PACKETS],
                    vec![0u8; EP_BYTES],
                );
                let tx = udp::PacketBuffer::new(
                    vec![udp::PacketMetadata::EMPTY; EP_PACKETS],
                    vec![0u8; EP_BYTES],
                );
                let mut s = udp::Socket::new(rx, tx);
                // Bound to the port on every address: the demultiplexing is ours.
                let _ = s.bind(IpListenEndpoint { addr: None, port });
                Endpoint {
                    handle: ifs.get_mut(iface).sockets.add(s),
                    users: 0,
                }
            });
            ep.users += 1;
        }
    }

    fn udp_remove_user(&mut self, ifs: &mut Interfaces, port: u16, id: SocketId) {
        if let Some(v) = self.udp_users.get_mut(&port) {
            v.retain(|x| *x != id);
            if v.is_empty() {
                self.udp_users.remove(&port);
            }
        }
        for iface in 0..ifs.len() {
            if let Some(ep) = self.udp_eps.get_mut(&(iface, port)) {
                ep.users = ep.users.saturating_sub(1);
                if ep.users == 0 {
                    let h = ep.handle;
                    self.udp_eps.remove(&(iface, port));
                    ifs.get_mut(iface).sockets.remove(h);
                }
            }
        }
    }

    /// `bind(2)` of a UDP socket.
    pub(crate) fn udp_bind(
        &mut self,
        ifs: &mut Interfaces,
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
        match (s.domain, a) {
            (Domain::Inet, SocketAddr::V6(_)) => return Err(Errno(libc::EAFNOSUPPORT)),
            (Domain::Inet6, SocketAddr::V4(_)) if s.opts.v6only => return Err(Errno(libc::EINVAL)),
            _ => {}
        }
        let ip = a.ip();
        // Besides its own addresses a UDP socket may bind a multicast group or the
        // broadcast address to receive only those.
        let ok = ip.is_unspecified()
            || ifs.is_local(&ip.into())
            || ip.is_multicast()
            || is_broadcast(ifs, &ip)
            || s.opts.freebind;
        if !ok {
            return Err(Errno(libc::EADDRNOTAVAIL));
        }
        self.udp_take_port(ifs, id, ip, a.port())
    }

    fn udp_take_port(
        &mut self,
        ifs: &mut Interfaces,
        id: SocketId,
        ip: IpAddr,
        port: u16,
    ) -> Result<(), Errno> {
        let s = self.get(id).ok_or(Errno(libc::EBADF))?;
        let dual = s.domain == Domain::Inet6
            && matches!(ip, IpAddr::V6(v) if v.is_unspecified())
            && !s.opts.v6only;
        let reuse = Reuse {
            addr: s.opts.reuseaddr,
            port: s.opts.reuseport,
        };
        let (port, b) = self.udp_ports.take(port, ip, dual, reuse).map_err(Errno)?;
        // A port's first socket makes its endpoints: they must fit the budget.
        if !self.udp_eps.contains_key(&(0, port)) {
            let need = 2 * EP_BYTES * ifs.len();
            let used = super::budget::in_use(ifs);
            if !super::budget::fits(need, used, self.cfg.max_buffer_memory) {
                self.udp_ports.release(port, b);
                super::budget::log_limit(format_args!(
                    "{used} bytes of socket buffers in use (--max-buffer-memory): UDP bind fails with ENOBUFS"
                ));
                return Err(Errno(libc::ENOBUFS));
            }
        }
        let s = self.get_mut(id).ok_or(Errno(libc::EBADF))?;
        s.binding = Some((port, b));
        s.local = Some(SocketAddr::new(ip, port));
        self.udp_add_user(ifs, port, id);
        Ok(())
    }

    fn udp_autobind(&mut self, ifs: &mut Interfaces, id: SocketId) -> Result<u16, Errno> {
        let s = self.get(id).ok_or(Errno(libc::EBADF))?;
        if let Some((p, _)) = s.binding {
            return Ok(p);
        }
        let any = s.local.map_or(s.domain.any(), |l| l.ip());
        self.udp_take_port(ifs, id, any, 0)?;
        Ok(self.get(id).and_then(|s| s.binding).map_or(0, |b| b.0))
    }

    /// `connect(2)` of a UDP socket: sets (or with `AF_UNSPEC` dissolves) the peer.
    pub(crate) fn udp_connect(
        &mut self,
        ifs: &mut Interfaces,
        id: SocketId,
        target: Target,
    ) -> Result<(), Errno> {
        let s = self.get(id).ok_or(Errno(libc::EBADF))?;
        let dst = match target {
            Target::Unspec => {
                let s = self.get_mut(id).ok_or(Errno(libc::EBADF))?;
                let domain = s.domain;
                let mut reset_addr = false;
                if let Proto::Udp(u) = &mut s.proto {
                    u.connected = None;
                    reset_addr = std::mem::take(&mut u.addr_from_connect);
                }
                if reset_addr {
                    s.local = s.local.map(|l| SocketAddr::new(domain.any(), l.port()));
                }
                return Ok(());
            }
            Target::Addr(a) => a,
        };
        match (s.domain, dst) {
            (Domain::Inet, SocketAddr::V6(_)) => return Err(Errno(libc::EAFNOSUPPORT)),
            (Domain::Inet6, SocketAddr::V4(_)) if s.opts.v6only => {
                return Err(Errno(libc::ENETUNREACH));
            }
            _ => {}
        }
        if is_broadcast(ifs, &dst.ip()) && !s.opts.broadcast {
            return Err(Errno(libc::EACCES));
        }
        let (_, src) = self.udp_route(ifs, id, &dst.ip(), None)?;
        self.udp_autobind(ifs, id)?;
        let s = self.get_mut(id).ok_or(Errno(libc::EBADF))?;
        let from_connect = s.local.is_none_or(|l| l.ip().is_unspecified());
        if from_connect {
            let port = s.binding.map_or(0, |b| b.0);
            s.local = Some(SocketAddr::new(src, port));
        }
        if let Proto::Udp(u) = &mut s.proto {
            u.connected = Some(dst);
            u.addr_from_connect = from_connect;
        }
        Ok(())
    }

    /// Interface and source address for a datagram to `dst` from socket `id`. The
    /// source is always of `dst`'s family (smoltcp panics on a mix), as on Linux: a
    /// source from ancillary data of the other family is ignored (Linux reads only
    /// the cmsgs of the family it sends with), and a bound address of the other
    /// family fails the send — `ENETUNREACH` for a socket bound to an IPv6 address
    /// sending to a v4-mapped one, `EAFNOSUPPORT` the other way round.
    fn udp_route(
        &self,
        ifs: &Interfaces,
        id: SocketId,
        dst: &IpAddr,
        src_hint: Option<IpAddr>,
    ) -> Result<(IfaceId, IpAddr), Errno> {
        let src_hint = src_hint.filter(|h| h.is_ipv4() == dst.is_ipv4());
        let (iface, src) = self.udp_route_any(ifs, id, dst, src_hint)?;
        match (src, dst) {
            (IpAddr::V6(_), IpAddr::V4(_)) => Err(Errno(libc::ENETUNREACH)),
            (IpAddr::V4(_), IpAddr::V6(_)) => Err(Errno(libc::EAFNOSUPPORT)),
            _ => Ok((iface, src)),
        }
    }

    fn udp_route_any(
        &self,
        ifs: &Interfaces,
        id: SocketId,
        dst: &IpAddr,
        src_hint: Option<IpAddr>,
    ) -> Result<(IfaceId, IpAddr), Errno> {
        let s = self.get(id).ok_or(Errno(libc::EBADF))?;
        let Proto::Udp(u) = &s.proto else {
            return Err(Errno(libc::EBADF));
        };
        let bound = s
            .local
            .map(|l| l.ip())
            .filter(|ip| !ip.is_unspecified() && !ip.is_multicast() && !is_broadcast(ifs, ip));
        let src_pref = src_hint.filter(|ip| !ip.is_unspecified()).or(bound);
        let dev = s.opts.bindtodevice.as_deref().and_then(|d| ifs.by_name(d));
        if dst.is_multicast() || (dst.is_ipv4() && is_broadcast(ifs, dst)) {
            let chosen = match dst {
                IpAddr::V4(_) => u.mcast_if.or(dev),
                IpAddr::V6(_) => u.mcast6_if.or(dev),
            };
            let iface = chosen.unwrap_or(if ifs.len() > crate::iface::ETH {
                crate::iface::ETH
            } else {
                LO
            });
            let src = src_pref
                .or(u.mcast_if_addr.map(IpAddr::V4).filter(|_| dst.is_ipv4()))
                .or_else(|| {
                    ifs.local_addrs(iface)
                        .map(IpAddr::from)
                        .find(|a| a.is_ipv4() == dst.is_ipv4())
                })
                .ok_or(Errno(libc::ENETUNREACH))?;
            return Ok((iface, src));
        }
        let r = ifs.route(&(*dst).into()).ok_or(Errno(libc::ENETUNREACH))?;
        if dev.is_some_and(|d| d != r.iface) {
            return Err(Errno(libc::ENETUNREACH));
        }
        let src = match src_pref {
            Some(b) if b.is_loopback() && r.iface != LO => return Err(Errno(libc::EINVAL)),
            Some(b) => b,
            None => r.src.into(),
        };
        Ok((r.iface, src))
    }

    /// Sends one datagram from socket `id` (a `SendTo` request, or a record the
    /// program wrote to a connected socket's stand-in). `control` is the program's
    /// ancillary data. Returns the bytes sent.
    pub(crate) fn udp_sendto(
        &mut self,
        ifs: &mut Interfaces,
        id: SocketId,
        dst: Option<Target>,
        control: &[u8],
        payload: &[u8],
    ) -> Result<usize, Errno> {
        let s = self.get(id).ok_or(Errno(libc::EBADF))?;
        let Proto::Udp(u) = &s.proto else {
            return Err(Errno(libc::EBADF));
        };
        let dst = match dst {
            Some(Target::Addr(a)) => a,
            Some(Target::Unspec) | None => u.connected.ok_or(Errno(libc::EDESTADDRREQ))?,
        };
        match (s.domain, dst) {
            (Domain::Inet, SocketAddr::V6(_)) => return Err(Errno(libc::EAFNOSUPPORT)),
            (Domain::Inet6, SocketAddr::V4(_)) if s.opts.v6only => {
                return Err(Errno(libc::ENETUNREACH));
            }
            _ => {}
        }
        if dst.port() == 0 {
            return Err(Errno(libc::EINVAL));
        }
        let max = if dst.is_ipv4() { MAX_UDP4 } else { MAX_UDP6 };
        if payload.len() > max {
            return Err(Errno(libc::EMSGSIZE));
        }
        let broadcast = is_broadcast(ifs, &dst.ip());
        if broadcast && !s.opts.broadcast {
            return Err(Errno(libc::EACCES));
        }
        let (src_hint, ttl_hint) = parse_send_control(control);
        let (iface, src) = self.udp_route(ifs, id, &dst.ip(), src_hint)?;
        if dst.is_ipv6() && payload.len() + 48 > ifs.get(iface).mtu {
            // smoltcp does not fragment IPv6.
            return Err(Errno(libc::EMSGSIZE));
        }
        let port = self.udp_autobind(ifs, id)?;
        let s = self.get(id).ok_or(Errno(libc::EBADF))?;
        let Proto::Udp(u) = &s.proto else {
            return Err(Errno(libc::EBADF));
        };
        let multicast = dst.ip().is_multicast();
        let ttl = ttl_hint.or(if multicast {
            Some(if dst.is_ipv4() {
                u.mcast_ttl
            } else {
                u.mcast6_hops
            })
        } else {
            s.opts.ttl
        });
        let fields = IpFields {
            ttl,
            tos: (s.opts.tos != 0).then_some(s.opts.tos as u8),
        };
        let loop_local = broadcast
            || (multicast
                && (if dst.is_ipv4() {
                    u.mcast_loop
                } else {
                    u.mcast6_loop
                }));
        let ep = self
            .udp_eps
            .get(&(iface, port))
            .ok_or(Errno(libc::ENETUNREACH))?;
        let sock = ifs
            .get_mut(iface)
            .sockets
            .get_mut::<udp::Socket<'static>>(ep.handle);
        let mut meta = PacketMeta::default();
        meta.id = fields.encode();
        let md = UdpMetadata {
            endpoint: IpEndpoint::new(dst.ip().into(), dst.port()),
            local_address: Some(src.into()),
            meta,
        };
        log::trace!(
            "udp: socket {} sends {} bytes {src}:{port} -> {dst} via interface {iface}",
            id.index(),
            payload.len()
        );
        match sock.send_slice(payload, md) {
            Ok(()) => {}
            Err(udp::SendError::BufferFull) => return Err(Errno(libc::ENOBUFS)),
            Err(udp::SendError::Unaddressable) => return Err(Errno(libc::EINVAL)),
        }
        if loop_local {
            let joined = broadcast || self.groups.get(&(iface, dst.ip())).is_some_and(|n| *n > 0);
            if joined {
                let origin = SocketAddr::new(src, port);
                self.udp_deliver(
                    ifs,
                    iface,
                    dst.port(),
                    payload,
                    (origin, dst.ip()),
                    Some(id),
                );
            }
        }
        Ok(payload.len())
    }

    /// Which sockets a datagram goes to (Linux's `__udp4_lib_lookup` and multicast
    /// delivery): see the module docs.
    fn udp_targets(
        &self,
        ifs: &Interfaces,
        iface: IfaceId,
        port: u16,
        src: SocketAddr,
        dst: IpAddr,
        out: &mut Vec<SocketId>,
    ) {
        out.clear();
        let Some(users) = self.udp_users.get(&port) else {
            return;
        };
        let group = dst.is_multicast() || is_broadcast(ifs, &dst);
        let mut best = 0;
        for &id in users {
            let Some(s) = self.get(id) else { continue };
            let Proto::Udp(u) = &s.proto else { continue };
            let Some(local) = s.local else { continue };
            let dual = s.domain == Domain::Inet6 && !s.opts.v6only;
            if !family_ok(&local.ip(), dual, &dst) {
                continue;
            }
            let bound = local.ip();
            let addr_ok = bound.is_unspecified() || bound == dst;
            if !addr_ok {
                continue;
            }
            if let Some(c) = u.connected
                && c != src
            {
                continue;
            }
            if let Some(dev) = s.opts.bindtodevice.as_deref()
                && ifs.by_name(dev) != Some(iface)
            {
                continue;
            }
            if group {
                if dst.is_multicast()
                    && !u.mcast_all
                    && !u
                        .memberships
                        .iter()
                        .any(|m| m.group == dst && m.iface == iface)
                {
                    continue;
                }
                let blocked = u.memberships.iter().any(|m| {
                    m.group == dst
                        && m.iface == iface
                        && (!m.include.is_empty() && !m.include.contains(&src.ip())
                            || m.exclude.contains(&src.ip()))
                });
                if !blocked {
                    out.push(id);
                }
                continue;
            }
            let score = 1
                + if u.connected.is_some() { 4 } else { 0 }
                + if !bound.is_unspecified() { 2 } else { 0 };
            if score > best {
                best = score;
                out.clear();
                out.push(id);
            } else if score == best && s.opts.reuseport {
                out.push(id);
            }
        }
        if !group && out.len() > 1 {
            // A SO_REUSEPORT group: one member, chosen by the source.
            let h = src.port() as usize
                ^ (u32::from(match src.ip() {
                    IpAddr::V4(a) => a,
                    IpAddr::V6(a) => Ipv4Addr::from(u128::from(a) as u32),
                }) as usize);
            let pick = out[h % out.len()];
            out.clear();
            out.push(pick);
        }
    }

    /// Hands one received datagram to the sockets it is for.
    fn udp_deliver(
        &mut self,
        ifs: &Interfaces,
        iface: IfaceId,
        port: u16,
        data: &[u8],
        (src, dst): (SocketAddr, IpAddr),
        except: Option<SocketId>,
    ) {
        let mut targets = std::mem::take(&mut self.udp_scratch);
        self.udp_targets(ifs, iface, port, src, dst, &mut targets);
        for &id in &targets {
            if Some(id) == except && !dst.is_multicast() {
                continue;
            }
            let Some(s) = self.get_mut(id) else { continue };
            let Some(si) = s.standin.as_ref() else {
                continue;
            };
            let Proto::Udp(u) = &mut s.proto else {
                continue;
            };
            u.inbox
                .deliver(si, data, Origin::new(src, dst, iface, data));
        }
        self.udp_scratch = targets;
    }

    /// An ICMP error arrived for a datagram we sent: a connected socket matching it
    /// gets a marker in its stand-in (see the module docs).
    pub(crate) fn udp_icmp_error(&mut self, e: &IcmpError) {
        let Some(users) = self.udp_users.get(&e.orig_src_port) else {
            return;
        };
        let dst = SocketAddr::new(e.orig_dst.into(), e.orig_dst_port);
        let hit = users
            .iter()
            .copied()
            .find(|id| self.udp(*id).is_some_and(|u| u.connected == Some(dst)));
        let Some(id) = hit else { return };
        if let Some(s) = self.get_mut(id)
            && !s.markers
        {
            s.error = e.errno;
            return;
        }
        let Some(marker) = self
            .marker_fd
            .as_ref()
            .map(|f| f.as_fd().try_clone_to_owned())
        else {
            return;
        };
        let Ok(marker) = marker else { return };
        if let Some(si) = self.get_mut(id).and_then(|s| s.standin.as_mut()) {
            let record = netcell_proto::marker::encode(e.errno);
            let _ = sys::send_with_fd(si.fd.as_fd(), &record, Some(marker.as_fd()));
            log::debug!(
                "udp: socket {} gets {} from an ICMP error",
                id.index(),
                Errno(e.errno)
            );
        }
    }

    /// Moves datagrams between endpoints, stand-ins and smoltcp; frees sockets whose
    /// program closed them.
    pub(crate) fn service_udp(&mut self, ifs: &mut Interfaces) -> bool {
        let mut progress = false;
        // Received datagrams to their sockets.
        let keys: Vec<(IfaceId, u16)> = self.udp_eps.keys().copied().collect();
        let mut buf = std::mem::take(&mut self.udp_buf);
        for (iface, port) in keys {
            while let Some(ep) = self.udp_eps.get(&(iface, port)) {
                let sock = ifs
                    .get_mut(iface)
                    .sockets
                    .get_mut::<udp::Socket<'static>>(ep.handle);
                let Ok((n, md)) = sock.recv_slice(&mut buf) else {
                    break;
                };
                let src = SocketAddr::new(md.endpoint.addr.into(), md.endpoint.port);
                let dst: IpAddr = md
                    .local_address
                    .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), Into::into);
                log::trace!(
                    "udp: {} bytes {src} -> {dst} on {}:{port}",
                    n,
                    ifs.get(iface).name
                );
                self.udp_deliver(ifs, iface, port, &buf[..n], (src, dst), None);
                progress = true;
            }
        }
        // Records the programs wrote: datagrams to the connected peer.
        let ids = self.take_ids();
        for &id in &ids {
            let Some(s) = self.get_mut(id) else { continue };
            let Proto::Udp(u) = &s.proto else { continue };
            let connected = u.connected.is_some();
            let Some(si) = s.standin.as_ref() else {
                continue;
            };
            if !si.readable && !si.hup {
                continue;
            }
            let mut eof = false;
            while let Some(si) = self.get(id).and_then(|s| s.standin.as_ref()) {
                match sys::recv_record(si.fd.as_fd(), &mut buf) {
                    Ok(Some(n)) => {
                        // Records of an unconnected socket have no destination: Linux
                        // fails such a send with EDESTADDRREQ; here it is dropped.
                        if connected && let Err(e) = self.udp_sendto(ifs, id, None, &[], &buf[..n])
                        {
                            log::debug!("udp: socket {}: send: {e}", id.index());
                        }
                        progress = true;
                    }
                    Ok(None) => {
                        eof = true;
                        break;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if let Some(si) = self.get_mut(id).and_then(|s| s.standin.as_mut()) {
                            si.readable = false;
                        }
                        break;
                    }
                    Err(_) => {
                        eof = true;
                        break;
                    }
                }
            }
            let hup = self
                .get(id)
                .and_then(|s| s.standin.as_ref())
                .is_some_and(|si| si.hup);
            if eof || hup {
                self.udp_close(ifs, id);
                progress = true;
            }
        }
        self.give_back_ids(ids);
        self.udp_buf = buf;
        progress
    }

    /// Frees a UDP socket: memberships, port, endpoint share.
    pub(crate) fn udp_close(&mut self, ifs: &mut Interfaces, id: SocketId) {
        let Some(s) = self.remove(id, false) else {
            return;
        };
        if let Proto::Udp(u) = &s.proto {
            for m in &u.memberships {
                self.group_leave(ifs, m.iface, m.group);
            }
        }
        if let Some((port, b)) = s.binding {
            self.udp_ports.release(port, b);
            self.udp_remove_user(ifs, port, id);
        }
    }

    fn group_join(
        &mut self,
        ifs: &mut Interfaces,
        iface: IfaceId,
        group: IpAddr,
    ) -> Result<(), Errno> {
        let n = self.groups.entry((iface, group)).or_insert(0);
        if *n == 0 {
            ifs.get_mut(iface)
                .iface
                .join_multicast_group(IpAddress::from(group))
                .map_err(|_| Errno(libc::ENOBUFS))?;
            log::debug!("udp: {} joins {group}", ifs.get(iface).name);
        }
        *n += 1;
        Ok(())
    }

    fn group_leave(&mut self, ifs: &mut Interfaces, iface: IfaceId, group: IpAddr) {
        if let Some(n) = self.groups.get_mut(&(iface, group)) {
            *n -= 1;
            if *n == 0 {
                self.groups.remove(&(iface, group));
                let _ = ifs
                    .get_mut(iface)
                    .iface
                    .leave_multicast_group(IpAddress::from(group));
                log::debug!("udp: {} leaves {group}", ifs.get(iface).name);
            }
        }
    }

    /// The interface of a multicast membership request: by index, by local address,
    /// or (0 / `INADDR_ANY`) the one the group routes to.
    fn mcast_iface(ifs: &Interfaces, index: u32, addr: Option<Ipv4Addr>) -> Result<IfaceId, Errno> {
        if index != 0 {
            return ifs.by_index(index).ok_or(Errno(libc::ENODEV));
        }
        if let Some(a) = addr.filter(|a| !a.is_unspecified()) {
            return (0..ifs.len())
                .find(|&i| {
                    ifs.local_addrs(i).any(|x| x == IpAddress::Ipv4(a))
                        && (i != LO || a.is_loopback())
                })
                .ok_or(Errno(libc::ENODEV));
        }
        Ok(if ifs.len() > crate::iface::ETH {
            crate::iface::ETH
        } else {
            LO
        })
    }

    fn membership(
        &mut self,
        ifs: &mut Interfaces,
        id: SocketId,
        join: bool,
        group: IpAddr,
        iface: IfaceId,
        source: Option<IpAddr>,
    ) -> Result<(), Errno> {
        if !group.is_multicast() {
            return Err(Errno(libc::EINVAL));
        }
        let u = self.udp_mut(id).ok_or(Errno(libc::EBADF))?;
        let pos = u
            .memberships
            .iter()
            .position(|m| m.group == group && m.iface == iface);
        match (join, pos, source) {
            (true, Some(i), Some(src)) => {
                let m = &mut u.memberships[i];
                if m.include.is_empty() {
                    return Err(Errno(libc::EINVAL)); // an any-source membership already
                }
                if m.include.contains(&src) {
                    return Err(Errno(libc::EADDRNOTAVAIL));
                }
                if m.include.len() >= MAX_MSF {
                    return Err(Errno(libc::ENOBUFS));
                }
                m.include.push(src);
                Ok(())
            }
            (true, Some(_), None) => Err(Errno(libc::EADDRINUSE)),
            (true, None, src) => {
                if u.memberships.len() >= 20 {
                    return Err(Errno(libc::ENOBUFS)); // net.ipv4.igmp_max_memberships
                }
                u.memberships.push(Membership {
                    group,
                    iface,
                    include: src.into_iter().collect(),
                    exclude: Vec::new(),
                });
                let r = self.group_join(ifs, iface, group);
                if r.is_err()
                    && let Some(u) = self.udp_mut(id)
                {
                    u.memberships
                        .retain(|m| !(m.group == group && m.iface == iface));
                }
                r
            }
            (false, None, _) => Err(Errno(libc::EADDRNOTAVAIL)),
            (false, Some(i), Some(src)) => {
                let m = &mut u.memberships[i];
                let before = m.include.len();
                m.include.retain(|s| *s != src);
                if m.include.len() == before {
                    return Err(Errno(libc::EADDRNOTAVAIL));
                }
                if m.include.is_empty() {
                    u.memberships.remove(i);
                    self.group_leave(ifs, iface, group);
                }
                Ok(())
            }
            (false, Some(i), None) => {
                u.memberships.remove(i);
                self.group_leave(ifs, iface, group);
                Ok(())
            }
        }
    }

    fn block(
        &mut self,
        id: SocketId,
        block: bool,
        group: IpAddr,
        iface: IfaceId,
        src: IpAddr,
    ) -> Result<(), Errno> {
        let u = self.udp_mut(id).ok_or(Errno(libc::EBADF))?;
        let m = u
            .memberships
            .iter_mut()
            .find(|m| m.group == group && m.iface == iface)
            .ok_or(Errno(libc::EINVAL))?;
        if !m.include.is_empty() {
            return Err(Errno(libc::EINVAL));
        }
        if block {
            if m.exclude.contains(&src) {
                return Err(Errno(libc::EADDRNOTAVAIL));
            }
            if m.exclude.len() >= MAX_MSF {
                return Err(Errno(libc::ENOBUFS));
            }
            m.exclude.push(src);
        } else {
            let n = m.exclude.len();
            m.exclude.retain(|s| *s != src);
            if m.exclude.len() == n {
                return Err(Errno(libc::EADDRNOTAVAIL));
            }
        }
        Ok(())
    }

    /// The UDP-level options (`IPPROTO_IP`/`IPPROTO_IPV6` multicast and ancillary
    /// data switches). `Ok(false)`: not a UDP option, try the generic table.
    pub(crate) fn udp_setsockopt(
        &mut self,
        ifs: &mut Interfaces,
        id: SocketId,
        level: i32,
        name: i32,
        v: &[u8],
    ) -> Result<bool, Errno> {
        let domain = self.get(id).map(|s| s.domain).ok_or(Errno(libc::EBADF))?;
        let group_req =
            |v: &[u8], with_source: bool| -> Result<(u32, IpAddr, Option<IpAddr>), Errno> {
                // struct group_req / group_source_req: u32 index, padding, sockaddr_storage...
                let need = if with_source { 264 } else { 136 };
                if v.len() < need {
                    return Err(Errno(libc::EINVAL));
                }
                let index = u32::from_ne_bytes([v[0], v[1], v[2], v[3]]);
                let sa = |b: &[u8]| -> Result<IpAddr, Errno> {
                    let fam = u16::from_ne_bytes([b[0], b[1]]) as i32;
                    match fam {
                        libc::AF_INET => Ok(IpAddr::V4(v4_at(b, 4))),
                        libc::AF_INET6 => {
                            let mut o = [0u8; 16];
                            o.copy_from_slice(&b[8..24]);
                            Ok(IpAddr::V6(Ipv6Addr::from(o)))
                        }
                        _ => Err(Errno(libc::EINVAL)),
                    }
                };
                let group = sa(&v[8..136])?;
                let source = if with_source {
                    Some(sa(&v[136..264])?)
                } else {
                    None
                };
                Ok((index, group, source))
            };
        let b = |v: &[u8]| int_opt(v).map(|x| x != 0);
        match (level, name) {
            (libc::IPPROTO_IP, libc::IP_ADD_MEMBERSHIP | libc::IP_DROP_MEMBERSHIP) => {
                if v.len() < 8 {
                    return Err(Errno(libc::EINVAL));
                }
                let group = IpAddr::V4(v4_at(v, 0));
                let (index, addr) = if v.len() >= 12 {
                    (
                        i32::from_ne_bytes([v[8], v[9], v[10], v[11]]) as u32,
                        Some(v4_at(v, 4)),
                    )
                } else {
                    (0, Some(v4_at(v, 4)))
                };
                let iface = Self::mcast_iface(ifs, index, addr)?;
                self.membership(ifs, id, name == libc::IP_ADD_MEMBERSHIP, group, iface, None)?;
            }
            (
                libc::IPPROTO_IP,
                libc::IP_ADD_SOURCE_MEMBERSHIP
                | libc::IP_DROP_SOURCE_MEMBERSHIP
                | libc::IP_BLOCK_SOURCE
                | libc::IP_UNBLOCK_SOURCE,
            ) => {
                if v.len() < 12 {
                    return Err(Errno(libc::EINVAL));
                }
                let group = IpAddr::V4(v4_at(v, 0));
                let iface = Self::mcast_iface(ifs, 0, Some(v4_at(v, 4)))?;
                let src = IpAddr::V4(v4_at(v, 8));
                match name {
                    libc::IP_ADD_SOURCE_MEMBERSHIP => {
                        self.membership(ifs, id, true, group, iface, Some(src))?
                    }
                    libc::IP_DROP_SOURCE_MEMBERSHIP => {
                        self.membership(ifs, id, false, group, iface, Some(src))?
                    }
                    libc::IP_BLOCK_SOURCE => self.block(id, true, group, iface, src)?,
                    _ => self.block(id, false, group, iface, src)?,
                }
            }
            (
                libc::IPPROTO_IP | libc::IPPROTO_IPV6,
                libc::MCAST_JOIN_GROUP | libc::MCAST_LEAVE_GROUP,
            ) => {
                let (index, group, _) = group_req(v, false)?;
                let iface = Self::mcast_iface(ifs, index, None)?;
                self.membership(ifs, id, name == libc::MCAST_JOIN_GROUP, group, iface, None)?;
            }
            (
                libc::IPPROTO_IP | libc::IPPROTO_IPV6,
                libc::MCAST_JOIN_SOURCE_GROUP
                | libc::MCAST_LEAVE_SOURCE_GROUP
                | libc::MCAST_BLOCK_SOURCE
                | libc::MCAST_UNBLOCK_SOURCE,
            ) => {
                let (index, group, src) = group_req(v, true)?;
                let iface = Self::mcast_iface(ifs, index, None)?;
                let src = src.ok_or(Errno(libc::EINVAL))?;
                match name {
                    libc::MCAST_JOIN_SOURCE_GROUP => {
                        self.membership(ifs, id, true, group, iface, Some(src))?
                    }
                    libc::MCAST_LEAVE_SOURCE_GROUP => {
                        self.membership(ifs, id, false, group, iface, Some(src))?
                    }
                    libc::MCAST_BLOCK_SOURCE => self.block(id, true, group, iface, src)?,
                    _ => self.block(id, false, group, iface, src)?,
                }
            }
            (libc::IPPROTO_IP, libc::IP_MULTICAST_IF) => {
                let (index, addr) = match v.len() {
                    4..=7 => (0, v4_at(v, 0)),
                    8..=11 => (0, v4_at(v, 4)),
                    n if n >= 12 => (
                        i32::from_ne_bytes([v[8], v[9], v[10], v[11]]) as u32,
                        v4_at(v, 4),
                    ),
                    _ => return Err(Errno(libc::EINVAL)),
                };
                let u_if = if index == 0 && addr.is_unspecified() {
                    None
                } else {
                    Some(
                        Self::mcast_iface(ifs, index, Some(addr))
                            .map_err(|_| Errno(libc::EADDRNOTAVAIL))?,
                    )
                };
                let u = self.udp_mut(id).ok_or(Errno(libc::EBADF))?;
                u.mcast_if = u_if;
                u.mcast_if_addr = (!addr.is_unspecified()).then_some(addr);
            }
            (libc::IPPROTO_IP, libc::IP_MULTICAST_TTL) => {
                let t = int_opt(v)?;
                let t = match t {
                    -1 => 1,
                    0..=255 => t as u8,
                    _ => return Err(Errno(libc::EINVAL)),
                };
                self.udp_mut(id).ok_or(Errno(libc::EBADF))?.mcast_ttl = t;
            }
            (libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP) => {
                self.udp_mut(id).ok_or(Errno(libc::EBADF))?.mcast_loop = b(v)?
            }
            (libc::IPPROTO_IP, libc::IP_MULTICAST_ALL) => {
                self.udp_mut(id).ok_or(Errno(libc::EBADF))?.mcast_all = b(v)?
            }
            (libc::IPPROTO_IPV6, libc::IPV6_ADD_MEMBERSHIP | libc::IPV6_DROP_MEMBERSHIP)
                if domain == Domain::Inet6 =>
            {
                if v.len() < 20 {
                    return Err(Errno(libc::EINVAL));
                }
                let mut g = [0u8; 16];
                g.copy_from_slice(&v[..16]);
                let index = u32::from_ne_bytes([v[16], v[17], v[18], v[19]]);
                let iface = Self::mcast_iface(ifs, index, None)?;
                self.membership(
                    ifs,
                    id,
                    name == libc::IPV6_ADD_MEMBERSHIP,
                    IpAddr::V6(Ipv6Addr::from(g)),
                    iface,
                    None,
                )?;
            }
            (libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_IF) if domain == Domain::Inet6 => {
                let index = int_opt(v)? as u32;
                let i = if index == 0 {
                    None
                } else {
                    Some(ifs.by_index(index).ok_or(Errno(libc::ENODEV))?)
                };
                self.udp_mut(id).ok_or(Errno(libc::EBADF))?.mcast6_if = i;
            }
            (libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS) if domain == Domain::Inet6 => {
                let h = int_opt(v)?;
                let h = match h {
                    -1 => 1,
                    0..=255 => h as u8,
                    _ => return Err(Errno(libc::EINVAL)),
                };
                self.udp_mut(id).ok_or(Errno(libc::EBADF))?.mcast6_hops = h;
            }
            (libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP) if domain == Domain::Inet6 => {
                let x = int_opt(v)?;
                if !(0..=1).contains(&x) {
                    return Err(Errno(libc::EINVAL));
                }
                self.udp_mut(id).ok_or(Errno(libc::EBADF))?.mcast6_loop = x == 1;
            }
            (libc::SOL_SOCKET, libc::SO_RCVBUF) => {
                // The program's receive queue is the stand-in's: its limit is our
                // end's send buffer (Linux doubles the value as for SO_RCVBUF).
                let n = int_opt(v)?.clamp(1152, 212_992);
                if let Some(si) = self.get(id).and_then(|s| s.standin.as_ref()) {
                    let _ = sys::set_sndbuf(si.fd.as_fd(), n as usize);
                }
                return Ok(false); // also record it in the generic options
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The UDP-level `getsockopt` answers. `None`: not a UDP option.
    pub(crate) fn udp_getsockopt(
        &self,
        id: SocketId,
        level: i32,
        name: i32,
        out: &mut [u8],
    ) -> Option<Result<usize, Errno>> {
        let u = self.udp(id)?;
        let int = |out: &mut [u8], v: i32| {
            out[..4].copy_from_slice(&v.to_ne_bytes());
            Some(Ok(4))
        };
        match (level, name) {
            (libc::IPPROTO_IP, libc::IP_MULTICAST_TTL) => int(out, u.mcast_ttl as i32),
            (libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP) => int(out, u.mcast_loop as i32),
            (libc::IPPROTO_IP, libc::IP_MULTICAST_ALL) => int(out, u.mcast_all as i32),
            (libc::IPPROTO_IP, libc::IP_MULTICAST_IF) => {
                out[..4]
                    .copy_from_slice(&u.mcast_if_addr.unwrap_or(Ipv4Addr::UNSPECIFIED).octets());
                Some(Ok(4))
            }
            (libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS) => int(out, u.mcast6_hops as i32),
            (libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP) => int(out, u.mcast6_loop as i32),
            (libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_IF) => {
                int(out, u.mcast6_if.map_or(0, |i| i as i32 + 1))
            }
            _ => None,
        }
    }
}

/// Reads the source address and TTL a program asked for in `sendmsg`'s ancillary
/// data (`IP_PKTINFO`, `IPV6_PKTINFO`, `IP_TTL`, `IPV6_HOPLIMIT`).
fn parse_send_control(c: &[u8]) -> (Option<IpAddr>, Option<u8>) {
    let (mut src, mut ttl) = (None, None);
    let mut pos = 0;
    while pos + 16 <= c.len() {
        let len = u64::from_ne_bytes(c[pos..pos + 8].try_into().unwrap_or([0; 8])) as usize;
        if len < 16 || pos + len > c.len() {
            break;
        }
        let level = i32::from_ne_bytes(c[pos + 8..pos + 12].try_into().unwrap_or([0; 4]));
        let ty = i32::from_ne_bytes(c[pos + 12..pos + 16].try_into().unwrap_or([0; 4]));
        let d = &c[pos + 16..pos + len];
        match (level, ty) {
            (libc::IPPROTO_IP, libc::IP_PKTINFO) if d.len() >= 12 => {
                let spec = v4_at(d, 4);
                if !spec.is_unspecified() {
                    src = Some(IpAddr::V4(spec));
                }
            }
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) if d.len() >= 20 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(&d[..16]);
                let a = Ipv6Addr::from(a);
                if !a.is_unspecified() {
                    src = Some(IpAddr::V6(a));
                }
            }
            (libc::IPPROTO_IP, libc::IP_TTL) | (libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT)
                if d.len() >= 4 =>
            {
                let t = i32::from_ne_bytes([d[0], d[1], d[2], d[3]]);
                if (1..=255).contains(&t) {
                    ttl = Some(t as u8);
                }
            }
            _ => {}
        }
        pos += len.div_ceil(8) * 8;
    }
    (src, ttl)
}

/// The stand-in pair of a datagram socket.
pub(crate) fn datagram_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    sys::seqpacket_pair()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_control_is_read() {
        let mut out = [0u8; 64];
        let mut pos = 0;
        assert!(super::super::dgram::push_cmsg(
            &mut out,
            &mut pos,
            libc::IPPROTO_IP,
            libc::IP_TTL,
            &7i32.to_ne_bytes()
        ));
        assert_eq!(parse_send_control(&out[..pos]), (None, Some(7)));
    }
}
