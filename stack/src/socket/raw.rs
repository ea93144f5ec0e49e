//! Raw IP sockets: `socket(AF_INET, SOCK_RAW, proto)` and `socket(AF_INET6,
//! SOCK_RAW, proto)`, for programs with `CAP_NET_RAW` (root in the container, as
//! Linux asks): busybox `ping`, tools that build their own ICMP, and sniffers of
//! one protocol (`IPPROTO_TCP`, `IPPROTO_UDP`: they get copies; the stack still
//! serves those packets), and `iptables`, whose table calls go to an
//! `IPPROTO_RAW` socket. `IPPROTO_RAW` is Linux's: it receives nothing, and what
//! it sends carries its own IP header (`IP_HDRINCL`; the stack fills in the total
//! length, a zero source and the checksum, as Linux does).
//!
//! Linux semantics: a send carries the protocol's message without an IP header
//! (`IP_HDRINCL` is not offered); the stack adds the header (source by routing,
//! the socket's TTL and TOS). For ICMPv6 the stack computes the checksum, as Linux
//! does; for IPv4 the program's checksum is sent as it is. Every packet of the
//! protocol addressed to the container is copied to every raw socket of it — an
//! IPv4 socket receives the whole packet, IP header included, an IPv6 socket the
//! payload only — and to the stack's own processing (echo requests are still
//! answered, TCP and UDP still delivered).
//!
//! Each socket has one smoltcp raw socket per interface, made when the program
//! opens it (so that the container's buffer budget is checked then) or at the
//! latest at its first service; they hold what arrives until the socket moves it
//! into its stand-in. Raw IP's own [`Table`] holds only the buffer its service
//! reads packets into.

use super::LazyBuf;
use super::addr::{Domain, Target};
use super::dgram::{Inbox, Origin};
use super::errno::{BindError, ConnectError, OptionError, SendError};
use super::{Proto, SocketId, Sockets};
use crate::iface::shards::SocketHandle;
use crate::iface::{IfaceId, Interfaces};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::raw;
use smoltcp::wire::{IpProtocol, IpVersion, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr};
use std::net::{IpAddr, SocketAddr};

/// Buffer bytes of one smoltcp raw socket: received and to send.
const RAW_RX: usize = 256 * 1024;
const RAW_TX: usize = 128 * 1024;

/// `IPPROTO_RAW`: send-only, the header included.
const IPPROTO_RAW: u8 = 255;

/// Makes `packet` of an `IPPROTO_RAW` send: the program's IP packet, with what
/// Linux fills in (the total length or payload length, a zero IPv4 source, the
/// IPv4 header checksum).
fn header_included(packet: &mut Vec<u8>, payload: &[u8], src: IpAddr) -> Result<(), SendError> {
    packet.extend_from_slice(payload);
    match (packet.first().map(|b| b >> 4), src) {
        (Some(4), IpAddr::V4(src)) => {
            let mut p = Ipv4Packet::new_checked(&mut packet[..]).map_err(|_| SendError::Invalid)?;
            if usize::from(p.header_len()) > payload.len() || payload.len() > 65535 {
                return Err(SendError::Invalid);
            }
            p.set_total_len(payload.len() as u16);
            if p.src_addr().is_unspecified() {
                p.set_src_addr(src);
            }
            p.fill_checksum();
        }
        (Some(6), IpAddr::V6(_)) => {
            if payload.len() < V6_HEADER || payload.len() - V6_HEADER > 65535 {
                return Err(SendError::Invalid);
            }
            let mut p = Ipv6Packet::new_unchecked(&mut packet[..]);
            p.set_payload_len((payload.len() - V6_HEADER) as u16);
        }
        _ => return Err(SendError::Invalid),
    }
    Ok(())
}

/// `ICMP_FILTER` (`SOL_RAW`) and `ICMP6_FILTER` (`IPPROTO_ICMPV6`).
const ICMP_FILTER: i32 = 1;
const ICMP6_FILTER: i32 = 1;

/// Bytes of IPv4 and IPv6 headers the stack writes.
const V4_HEADER: usize = 20;
const V6_HEADER: usize = 40;

/// The state of a raw socket.
pub(crate) struct RawState {
    pub(crate) inbox: Inbox,
    pub(crate) connected: Option<SocketAddr>,
    pub(crate) protocol: u8,
    socks: Vec<(IfaceId, SocketHandle)>,
    /// A whole packet being built for sending.
    packet: Vec<u8>,
    /// ICMP types not delivered (`ICMP_FILTER`: types 0–31; `ICMP6_FILTER`: all).
    blocked: [u32; 8],
}

impl RawState {
    pub(crate) fn new(protocol: u8) -> Self {
        RawState {
            inbox: Inbox::default(),
            connected: None,
            protocol,
            socks: Vec::new(),
            packet: Vec::with_capacity(V6_HEADER + 65535),
            blocked: [0; 8],
        }
    }

    fn is_blocked(&self, icmp_type: u8) -> bool {
        self.blocked[icmp_type as usize / 32] & (1 << (icmp_type % 32)) != 0
    }
}

/// Raw IP's part of the socket table.
#[derive(Default)]
pub(crate) struct Table {
    /// Packets taken from smoltcp and records programs write: up to the largest
    /// IP packet, made when a raw socket is first served.
    buf: LazyBuf,
}

impl Sockets {
    fn raw_mut(&mut self, id: SocketId) -> Option<&mut RawState> {
        match &mut self.get_mut(id)?.proto {
            Proto::Raw(r) => Some(r),
            _ => None,
        }
    }

    /// `bind(2)`: the source address of what the socket sends (the port is
    /// ignored, as Linux does).
    pub(crate) fn raw_bind(
        &mut self,
        ifs: &Interfaces,
        id: SocketId,
        target: Target,
    ) -> Result<(), BindError> {
        let s = self.get_mut(id).ok_or(BindError::NoSuchSocket)?;
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
        s.local = Some(SocketAddr::new(a.ip(), 0));
        Ok(())
    }

    /// `connect(2)`: a default destination, and only its packets are received.
    pub(crate) fn raw_connect(
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
                Some(SocketAddr::new(a.ip(), 0))
            }
        };
        self.raw_mut(id)
            .ok_or(ConnectError::NoSuchSocket)?
            .connected = dst;
        Ok(())
    }

    /// Sends one message of the socket's protocol to `dst` (or the connected peer).
    pub(crate) fn raw_sendto(
        &mut self,
        ifs: &mut Interfaces,
        id: SocketId,
        dst: Option<Target>,
        payload: &[u8],
    ) -> Result<usize, SendError> {
        if !self.raw_open_on(ifs, id) {
            return Err(SendError::NoBuffers);
        }
        let s = self.get_mut(id).ok_or(SendError::NoSuchSocket)?;
        let (domain, ttl, tos, local) = (s.domain, s.opts.ttl, s.opts.tos, s.local);
        let Proto::Raw(st) = &mut s.proto else {
            return Err(SendError::NoSuchSocket);
        };
        let dst = match dst {
            Some(Target::Addr(a)) => a.ip(),
            _ => st.connected.ok_or(SendError::DestinationRequired)?.ip(),
        };
        if dst.is_ipv6() != (domain == Domain::Inet6) {
            return Err(SendError::WrongFamily);
        }
        let route = ifs
            .route(&dst.into())
            .ok_or(SendError::NetworkUnreachable)?;
        let src = match local {
            Some(a) if !a.ip().is_unspecified() => a.ip(),
            _ => route.src.into(),
        };
        let protocol = IpProtocol::from(st.protocol);
        let caps = ChecksumCapabilities::default();
        st.packet.clear();
        if st.protocol == IPPROTO_RAW {
            header_included(&mut st.packet, payload, src)?;
        } else {
            match (src, dst) {
                (IpAddr::V4(src), IpAddr::V4(dst)) => {
                    if payload.len() > 65535 - V4_HEADER {
                        return Err(SendError::TooBig);
                    }
                    let repr = Ipv4Repr {
                        src_addr: src,
                        dst_addr: dst,
                        next_header: protocol,
                        payload_len: payload.len(),
                        hop_limit: ttl.unwrap_or(64),
                    };
                    st.packet.resize(V4_HEADER + payload.len(), 0);
                    let mut p = Ipv4Packet::new_unchecked(&mut st.packet[..]);
                    repr.emit(&mut p, &caps);
                    p.set_dscp((tos >> 2) as u8);
                    p.set_ecn(tos as u8 & 3);
                    p.fill_checksum();
                    st.packet[V4_HEADER..].copy_from_slice(payload);
                }
                (IpAddr::V6(src), IpAddr::V6(dst)) => {
                    if payload.len() > 65535 {
                        return Err(SendError::TooBig);
                    }
                    let repr = Ipv6Repr {
                        src_addr: src,
                        dst_addr: dst,
                        next_header: protocol,
                        payload_len: payload.len(),
                        hop_limit: ttl.unwrap_or(64),
                    };
                    st.packet.resize(V6_HEADER + payload.len(), 0);
                    let mut p = Ipv6Packet::new_unchecked(&mut st.packet[..]);
                    repr.emit(&mut p);
                    st.packet[V6_HEADER..].copy_from_slice(payload);
                    if protocol == IpProtocol::Icmpv6 && payload.len() >= 4 {
                        // Linux computes the ICMPv6 checksum for raw sockets.
                        smoltcp::wire::Icmpv6Packet::new_unchecked(&mut st.packet[V6_HEADER..])
                            .fill_checksum(&src, &dst);
                    }
                }
                _ => return Err(SendError::WrongFamily),
            }
        }
        let handle = st
            .socks
            .iter()
            .find(|(i, _)| *i == route.iface)
            .map(|(_, h)| *h)
            .ok_or(SendError::NetworkUnreachable)?;
        ifs.get_mut(route.iface)
            .sockets
            .get_mut::<raw::Socket<'static>>(handle)
            .send_slice(&st.packet)
            .map_err(|_| SendError::NoBuffers)?;
        Ok(payload.len())
    }

    /// Makes the socket's smoltcp raw sockets, one per interface, if not yet made;
    /// false when they do not fit the container's buffer budget.
    pub(crate) fn raw_open_on(&mut self, ifs: &mut Interfaces, id: SocketId) -> bool {
        let raw_only = matches!(self.get(id).map(|s| &s.proto), Some(Proto::Raw(st)) if st.protocol == IPPROTO_RAW);
        // IPPROTO_RAW receives nothing: no receive buffer.
        let rx = if raw_only { 0 } else { RAW_RX };
        let need = (rx + RAW_TX) * ifs.len();
        let limit = self.cfg.max_buffer_memory;
        let Some(s) = self.get_mut(id) else {
            return false;
        };
        let version = if s.domain == Domain::Inet6 {
            IpVersion::Ipv6
        } else {
            IpVersion::Ipv4
        };
        let Proto::Raw(st) = &mut s.proto else {
            return false;
        };
        if !st.socks.is_empty() {
            return true;
        }
        super::budget::make_room(ifs, need, limit);
        let used = super::budget::in_use(ifs);
        if !super::budget::fits(need, used, limit) {
            super::budget::log_limit(format_args!(
                "{used} bytes of socket buffers in use (--max-buffer-memory): raw socket fails with ENOBUFS"
            ));
            return false;
        }
        let ids: Vec<IfaceId> = ifs.iter().map(|(i, _)| i).collect();
        for iface in ids {
            // IPPROTO_RAW sends any protocol.
            let protocol = (st.protocol != IPPROTO_RAW).then(|| IpProtocol::from(st.protocol));
            let slots = if rx == 0 { 0 } else { 64 };
            let sock = raw::Socket::new(
                Some(version),
                protocol,
                raw::PacketBuffer::new(vec![raw::PacketMetadata::EMPTY; slots], vec![0u8; rx]),
                raw::PacketBuffer::new(vec![raw::PacketMetadata::EMPTY; 16], vec![0u8; RAW_TX]),
            );
            let h = ifs.get_mut(iface).sockets.add(sock);
            st.socks.push((iface, h));
        }
        true
    }

    /// Received packets to their sockets; connected sockets' native sends; closes.
    pub(crate) fn service_raw(&mut self, ifs: &mut Interfaces) -> bool {
        if !self.any_raw() {
            return false;
        }
        let mut progress = false;
        let ids = self.take_ids();
        let mut lazy = std::mem::take(&mut self.raw.buf);
        for &id in &ids {
            if !matches!(self.get(id).map(|s| &s.proto), Some(Proto::Raw(_))) {
                continue;
            }
            if !self.raw_open_on(ifs, id) {
                continue;
            }
            let buf = lazy.get();
            let Some(s) = self.get_mut(id) else { continue };
            let domain = s.domain;
            let Proto::Raw(st) = &mut s.proto else {
                continue;
            };
            for &(iface, h) in &st.socks {
                loop {
                    let sock = ifs
                        .get_mut(iface)
                        .sockets
                        .get_mut::<raw::Socket<'static>>(h);
                    let Ok(n) = sock.recv_slice(buf) else {
                        break;
                    };
                    progress = true;
                    let Some((src, dst, header)) = addresses(domain, &buf[..n]) else {
                        continue;
                    };
                    if !ifs.is_local(&dst.into()) && !dst.is_multicast() {
                        continue; // not for this container (smoltcp shows raw sockets all)
                    }
                    if st.connected.is_some_and(|c| c.ip() != src) {
                        continue;
                    }
                    let icmp = match domain {
                        Domain::Inet if st.protocol == libc::IPPROTO_ICMP as u8 => buf.get(header),
                        Domain::Inet6 if st.protocol == libc::IPPROTO_ICMPV6 as u8 => {
                            buf.get(header)
                        }
                        _ => None,
                    };
                    if icmp.is_some_and(|&t| st.is_blocked(t)) {
                        continue;
                    }
                    // IPv4 raw sockets see the IP header; IPv6 ones only the payload.
                    let data = if domain == Domain::Inet6 {
                        &buf[header..n]
                    } else {
                        &buf[..n]
                    };
                    let origin = Origin::new(SocketAddr::new(src, 0), dst, iface, data);
                    if let Some(si) = s.standin.as_ref() {
                        st.inbox.deliver(si, data, origin);
                    }
                }
            }
            // Records the program wrote (send/write on a connected socket).
            let (sent, gone) = self.drain_program_sends(ifs, id, buf, |t, ifs, id, d| {
                let _ = t.raw_sendto(ifs, id, None, d);
            });
            progress |= sent;
            if gone {
                self.raw_close(ifs, id);
                progress = true;
            }
        }
        self.raw.buf = lazy;
        self.give_back_ids(ids);
        progress
    }

    /// The raw-socket options: `ICMP_FILTER` (`SOL_RAW`), `ICMP6_FILTER` and
    /// `IPV6_CHECKSUM`. `None`: not one of them.
    pub(crate) fn raw_setsockopt(
        &mut self,
        id: SocketId,
        level: i32,
        name: i32,
        value: &[u8],
    ) -> Option<Result<(), OptionError>> {
        let s = self.get_mut(id)?;
        let domain = s.domain;
        let Proto::Raw(st) = &mut s.proto else {
            return None;
        };
        let word = |v: &[u8]| -> Result<i32, OptionError> {
            v.get(..4)
                .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or(OptionError::Invalid)
        };
        match (level, name) {
            (libc::SOL_RAW, ICMP_FILTER) => Some(
                if domain != Domain::Inet || st.protocol != libc::IPPROTO_ICMP as u8 {
                    Err(OptionError::NotSupported)
                } else {
                    word(value).map(|m| st.blocked[0] = m as u32)
                },
            ),
            (libc::IPPROTO_ICMPV6, ICMP6_FILTER) => {
                Some(if st.protocol != libc::IPPROTO_ICMPV6 as u8 {
                    Err(OptionError::NotSupported)
                } else if value.len() < 32 {
                    Err(OptionError::Invalid)
                } else {
                    for (i, w) in st.blocked.iter_mut().enumerate() {
                        *w = u32::from_ne_bytes([
                            value[i * 4],
                            value[i * 4 + 1],
                            value[i * 4 + 2],
                            value[i * 4 + 3],
                        ]);
                    }
                    Ok(())
                })
            }
            (libc::IPPROTO_IPV6, libc::IPV6_CHECKSUM) if domain == Domain::Inet6 => Some(
                // ICMPv6 always has its checksum computed; Linux refuses a change.
                if st.protocol == libc::IPPROTO_ICMPV6 as u8 {
                    Err(OptionError::Invalid)
                } else {
                    word(value).and_then(|v| {
                        if v == -1 {
                            Ok(())
                        } else {
                            Err(OptionError::NotSupported)
                        }
                    })
                },
            ),
            _ => None,
        }
    }

    /// Reads the raw-socket options (see [`Sockets::raw_setsockopt`]; they cannot
    /// fail), returning the value's length. `None`: not one of them.
    pub(crate) fn raw_getsockopt(
        &self,
        id: SocketId,
        level: i32,
        name: i32,
        out: &mut [u8],
    ) -> Option<usize> {
        let s = self.get(id)?;
        let Proto::Raw(st) = &s.proto else {
            return None;
        };
        match (level, name) {
            (libc::SOL_RAW, ICMP_FILTER) => {
                out[..4].copy_from_slice(&st.blocked[0].to_ne_bytes());
                Some(4)
            }
            (libc::IPPROTO_ICMPV6, ICMP6_FILTER) => {
                for (i, w) in st.blocked.iter().enumerate() {
                    out[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
                }
                Some(32)
            }
            (libc::IPPROTO_IPV6, libc::IPV6_CHECKSUM) => {
                let v: i32 = if st.protocol == libc::IPPROTO_ICMPV6 as u8 {
                    2
                } else {
                    -1
                };
                out[..4].copy_from_slice(&v.to_ne_bytes());
                Some(4)
            }
            _ => None,
        }
    }

    /// Frees a raw socket.
    pub(crate) fn raw_close(&mut self, ifs: &mut Interfaces, id: SocketId) {
        let Some(s) = self.remove(id, false) else {
            return;
        };
        if let Proto::Raw(st) = &s.proto {
            for &(iface, h) in &st.socks {
                ifs.get_mut(iface).sockets.remove(h);
            }
        }
    }
}

/// The source and destination of a whole IP packet, and its header length.
fn addresses(domain: Domain, packet: &[u8]) -> Option<(IpAddr, IpAddr, usize)> {
    if domain == Domain::Inet6 {
        let p = Ipv6Packet::new_checked(packet).ok()?;
        Some((
            IpAddr::V6(p.src_addr()),
            IpAddr::V6(p.dst_addr()),
            V6_HEADER,
        ))
    } else {
        let p = Ipv4Packet::new_checked(packet).ok()?;
        Some((
            IpAddr::V4(p.src_addr()),
            IpAddr::V4(p.dst_addr()),
            p.header_len() as usize,
        ))
    }
}
