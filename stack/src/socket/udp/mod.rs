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
//! starting with these bytes" ([`Sockets::datagram_origin`]); entries ahead of the match
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
//!
//! **The table.** What UDP keeps beyond its sockets is its own [`Table`]: the port
//! bindings, the users and endpoint of every port, the multicast memberships counted
//! per interface, and the buffers its service reuses.

use super::LazyBuf;
use super::addr::{Domain, Target};
use super::dgram::{AutobindError, Inbox, Origin};
use super::errno::{BindError, ConnectError, Errno, OptionError, SendError};
use super::ports::{PortTable, Reuse};
use super::{Proto, SocketId, Sockets};
use crate::iface::egress::IpFields;
use crate::iface::ingress::IcmpError;
use crate::iface::shards::SocketHandle;
use crate::iface::{IfaceId, Interfaces, LO};
use crate::sys;
use smoltcp::phy::PacketMeta;
use smoltcp::socket::udp::{self, UdpMetadata};
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};

/// Packets and bytes an endpoint buffers each way.
pub(super) const EP_PACKETS: usize = 512;
/// Sources in one membership's filter at most (Linux's `net.ipv4.igmp_max_msf`,
/// beyond which it answers `ENOBUFS`).
pub(super) const MAX_MSF: usize = 10;
pub(super) const EP_BYTES: usize = 512 * 1024;
/// The largest UDP payload over IPv4 (65535 - 20 - 8) and IPv6 (65535 - 8).
pub(crate) const MAX_UDP4: usize = 65507;
pub(super) const MAX_UDP6: usize = 65527;

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
    /// `shutdown` shut its writing side.
    pub(crate) write_shut: bool,
    /// The interface its connected peer is routed through, as of a grants
    /// generation (see [`Sockets::udp_room`]).
    room_route: Option<(u64, IfaceId)>,
    /// Datagrams were posted to this socket: its close waits for those still
    /// on their way (see [`Sockets::udp_close_waits`]).
    pub(crate) posted: bool,
    /// When its program's close was first seen: (turn, time).
    hup_seen: Option<(u64, smoltcp::time::Instant)>,
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
            posted: false,
            hup_seen: None,
            write_shut: false,
            room_route: None,
        }
    }
}

/// A smoltcp UDP socket shared by the table's sockets bound to its port.
struct Endpoint {
    handle: SocketHandle,
    users: u32,
    /// Since when records wait for this endpoint's room (see
    /// [`Sockets::udp_room`]).
    full_since: Option<smoltcp::time::Instant>,
}

/// UDP's part of the socket table (see the module docs).
pub(crate) struct Table {
    /// Port bindings of UDP sockets.
    ports: PortTable,
    /// Port → sockets bound to it.
    users: HashMap<u16, Vec<SocketId>>,
    /// (interface, port) → the smoltcp socket receiving for it.
    endpoints: HashMap<(IfaceId, u16), Endpoint>,
    /// When an endpoint that holds records back becomes stuck (see
    /// [`Sockets::udp_room`]): the event loop's deadline.
    pub(super) stuck_due: Option<smoltcp::time::Instant>,
    /// Sockets with an origins ring (see [`Sockets::origin_ring`]).
    pub(crate) rings: usize,
    /// Datagrams posted, and those of them dropped (see
    /// [`crate::control::grants`]).
    pub(crate) posts: (u64, u64),
    /// A received datagram found its stand-in full since the stack last asked
    /// (see [`Sockets::take_overflowed`]).
    overflowed: bool,
    /// Multicast memberships per (interface, group), counted over sockets.
    groups: HashMap<(IfaceId, IpAddr), u32>,
    /// The sockets one datagram goes to (reused for every datagram).
    targets: Vec<SocketId>,
    /// Datagrams taken from endpoints and records read from stand-ins: up to the
    /// largest UDP payload, made at the first datagram.
    buf: LazyBuf,
    /// Attached to error markers in stand-ins (see the module docs).
    marker_fd: Option<OwnedFd>,
    /// The TTL/TOS of IPv6 datagrams sent but not yet out (see [`V6Sent`]).
    v6_sent: VecDeque<V6Sent>,
}

/// An IPv6 datagram handed to smoltcp with a hop limit or traffic class of its
/// own: smoltcp gives the device no metadata for IPv6 packets, so the egress
/// hook finds the datagram's fields here when it leaves
/// ([`crate::iface::egress::LaterFields`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct V6Sent {
    iface: IfaceId,
    sport: u16,
    dst: std::net::Ipv6Addr,
    dport: u16,
    fields: IpFields,
}

/// Datagrams whose fields wait at most (beyond this the oldest are forgotten:
/// those leave with the defaults).
const V6_SENT_MAX: usize = 256;

impl Table {
    /// Remembers the fields of an IPv6 datagram just handed to smoltcp.
    pub(crate) fn v6_sent(
        &mut self,
        iface: IfaceId,
        sport: u16,
        dst: SocketAddr,
        fields: IpFields,
    ) {
        let SocketAddr::V6(d) = dst else { return };
        if fields == IpFields::default() {
            return;
        }
        if self.v6_sent.len() == V6_SENT_MAX {
            self.v6_sent.pop_front();
        }
        self.v6_sent.push_back(V6Sent {
            iface,
            sport,
            dst: *d.ip(),
            dport: d.port(),
            fields,
        });
    }

    /// The fields of the IPv6 packet `ip` leaving on `iface`, if it is a UDP
    /// datagram one was remembered for (the first that matches: datagrams of
    /// one flow leave in the order they were sent).
    pub(crate) fn v6_leaving(&mut self, iface: IfaceId, ip: &[u8]) -> IpFields {
        if self.v6_sent.is_empty() || ip.len() < 48 || ip[6] != 17 {
            return IpFields::default();
        }
        let mut dst = [0u8; 16];
        dst.copy_from_slice(&ip[24..40]);
        let dst = std::net::Ipv6Addr::from(dst);
        let sport = u16::from_be_bytes([ip[40], ip[41]]);
        let dport = u16::from_be_bytes([ip[42], ip[43]]);
        let hit = self
            .v6_sent
            .iter()
            .position(|v| v.iface == iface && v.sport == sport && v.dst == dst && v.dport == dport);
        hit.and_then(|i| self.v6_sent.remove(i))
            .map_or(IpFields::default(), |v| v.fields)
    }

    pub(crate) fn new() -> Self {
        Table {
            ports: PortTable::new(crate::iface::random_u64() | 1),
            users: HashMap::new(),
            endpoints: HashMap::new(),
            stuck_due: None,
            posts: (0, 0),
            overflowed: false,
            rings: 0,
            groups: HashMap::new(),
            targets: Vec::new(),
            buf: LazyBuf::default(),
            marker_fd: sys::dev_null().ok(),
            v6_sent: VecDeque::with_capacity(V6_SENT_MAX),
        }
    }
}

pub(super) fn is_broadcast(ifs: &Interfaces, a: &IpAddr) -> bool {
    match a {
        IpAddr::V4(v4) => v4.is_broadcast() || ifs.broadcast_iface(v4).is_some(),
        IpAddr::V6(_) => false,
    }
}

pub(super) fn family_ok(bound: &IpAddr, dual: bool, dst: &IpAddr) -> bool {
    match (bound, dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => true,
        (IpAddr::V6(_), IpAddr::V4(_)) => dual,
        (IpAddr::V4(_), IpAddr::V6(_)) => false,
    }
}

pub(super) fn int_opt(v: &[u8]) -> Result<i32, OptionError> {
    match v.len() {
        0 => Err(OptionError::Invalid),
        1..=3 => Ok(v[0] as i32), // Linux accepts a byte for the IP_MULTICAST_* ints
        _ => Ok(i32::from_ne_bytes([v[0], v[1], v[2], v[3]])),
    }
}

pub(super) fn v4_at(v: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(v[at], v[at + 1], v[at + 2], v[at + 3])
}

mod deliver;
mod multicast;
mod opts;
mod send;

use multicast::Membership;

impl Sockets {
    pub(crate) fn udp(&self, id: SocketId) -> Option<&UdpState> {
        match &self.get(id)?.proto {
            Proto::Udp(u) => Some(u),
            _ => None,
        }
    }

    pub(crate) fn udp_state_mut(&mut self, id: SocketId) -> Option<&mut UdpState> {
        self.udp_mut(id)
    }

    fn udp_mut(&mut self, id: SocketId) -> Option<&mut UdpState> {
        match &mut self.get_mut(id)?.proto {
            Proto::Udp(u) => Some(u),
            _ => None,
        }
    }

    /// Makes sure every interface has an endpoint for `port`, counting a user.
    fn udp_add_user(&mut self, ifs: &mut Interfaces, port: u16, id: SocketId) {
        self.udp.users.entry(port).or_default().push(id);
        for iface in 0..ifs.len() {
            let ep = self.udp.endpoints.entry((iface, port)).or_insert_with(|| {
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
                    full_since: None,
                    handle: ifs.get_mut(iface).sockets.add(s),
                    users: 0,
                }
            });
            ep.users += 1;
        }
    }

    fn udp_remove_user(&mut self, ifs: &mut Interfaces, port: u16, id: SocketId) {
        if let Some(v) = self.udp.users.get_mut(&port) {
            v.retain(|x| *x != id);
            if v.is_empty() {
                self.udp.users.remove(&port);
            }
        }
        for iface in 0..ifs.len() {
            if let Some(ep) = self.udp.endpoints.get_mut(&(iface, port)) {
                ep.users = ep.users.saturating_sub(1);
                if ep.users == 0 {
                    let h = ep.handle;
                    self.udp.endpoints.remove(&(iface, port));
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
    ) -> Result<(), BindError> {
        let s = self.get(id).ok_or(BindError::NoSuchSocket)?;
        if s.binding.is_some() {
            return Err(BindError::Invalid);
        }
        let a = match target {
            Target::Addr(a) => a,
            Target::Unspec => SocketAddr::new(s.domain.any(), 0),
        };
        match (s.domain, a) {
            (Domain::Inet, SocketAddr::V6(_)) => return Err(BindError::WrongFamily),
            (Domain::Inet6, SocketAddr::V4(_)) if s.opts.v6only => return Err(BindError::Invalid),
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
            return Err(BindError::AddrNotAvailable);
        }
        self.udp_take_port(ifs, id, ip, a.port())
    }

    fn udp_take_port(
        &mut self,
        ifs: &mut Interfaces,
        id: SocketId,
        ip: IpAddr,
        port: u16,
    ) -> Result<(), BindError> {
        let s = self.get(id).ok_or(BindError::NoSuchSocket)?;
        let dual = s.domain == Domain::Inet6
            && matches!(ip, IpAddr::V6(v) if v.is_unspecified())
            && !s.opts.v6only;
        let reuse = Reuse {
            addr: s.opts.reuseaddr,
            port: s.opts.reuseport,
        };
        let (port, b) = self.udp.ports.take(port, ip, dual, reuse)?;
        // A port's first socket makes its endpoints: they must fit the budget.
        if !self.udp.endpoints.contains_key(&(0, port)) {
            let need = 2 * EP_BYTES * ifs.len();
            super::budget::make_room(ifs, need, self.cfg.max_buffer_memory);
            let used = super::budget::in_use(ifs);
            if !super::budget::fits(need, used, self.cfg.max_buffer_memory) {
                self.udp.ports.release(port, b);
                super::budget::log_limit(format_args!(
                    "{used} bytes of socket buffers in use (--max-buffer-memory): UDP bind fails with ENOBUFS"
                ));
                return Err(BindError::NoBuffers);
            }
        }
        let s = self.get_mut(id).ok_or(BindError::NoSuchSocket)?;
        s.binding = Some((port, b));
        s.local = Some(SocketAddr::new(ip, port));
        self.udp_add_user(ifs, port, id);
        Ok(())
    }

    /// Binds an unbound socket to an ephemeral port (before it connects or sends),
    /// returning its port.
    fn udp_autobind(&mut self, ifs: &mut Interfaces, id: SocketId) -> Result<u16, AutobindError> {
        let s = self.get(id).ok_or(AutobindError::NoSuchSocket)?;
        if let Some((p, _)) = s.binding {
            return Ok(p);
        }
        let any = s.local.map_or(s.domain.any(), |l| l.ip());
        self.udp_take_port(ifs, id, any, 0).map_err(|e| match e {
            BindError::NoBuffers => AutobindError::NoBuffers,
            BindError::NoSuchSocket => AutobindError::NoSuchSocket,
            // Port 0: the only other way to fail is an exhausted range.
            _ => AutobindError::Exhausted,
        })?;
        Ok(self.get(id).and_then(|s| s.binding).map_or(0, |b| b.0))
    }

    /// `connect(2)` of a UDP socket: sets (or with `AF_UNSPEC` dissolves) the peer.
    pub(crate) fn udp_connect(
        &mut self,
        ifs: &mut Interfaces,
        id: SocketId,
        target: Target,
    ) -> Result<(), ConnectError> {
        let s = self.get(id).ok_or(ConnectError::NoSuchSocket)?;
        let dst = match target {
            Target::Unspec => {
                let s = self.get_mut(id).ok_or(ConnectError::NoSuchSocket)?;
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
            (Domain::Inet, SocketAddr::V6(_)) => return Err(ConnectError::WrongFamily),
            (Domain::Inet6, SocketAddr::V4(_)) if s.opts.v6only => {
                return Err(ConnectError::NetworkUnreachable);
            }
            _ => {}
        }
        if is_broadcast(ifs, &dst.ip()) && !s.opts.broadcast {
            return Err(ConnectError::BroadcastDenied);
        }
        let (_, src) = self.udp_route(ifs, id, &dst.ip(), None)?;
        self.udp_autobind(ifs, id)?;
        let s = self.get_mut(id).ok_or(ConnectError::NoSuchSocket)?;
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
            self.udp.ports.release(port, b);
            self.udp_remove_user(ifs, port, id);
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
