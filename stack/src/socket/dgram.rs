//! What every datagram socket (UDP, ICMP "ping", raw) shares: the inbox, the calls
//! that mean the same for all three (`getpeername`, `shutdown`, the `Origin`
//! request, the records a program writes to a connected socket), and how a
//! failed autobind (UDP's port, a ping socket's identifier) reads as the error of
//! the `connect` or send that needed it.
//!
//! A received datagram's payload goes into the socket's stand-in as one record; its
//! [`Origin`] (source, destination, interface) waits in the inbox until the
//! program asks for it after reading the record natively (see [`crate::socket::udp`]
//! for the reasons). The inbox also holds the switches that ask for ancillary data
//! (`IP_PKTINFO`, `IP_RECVTTL`, ...) and builds that data.

use super::addr::{self, Domain};
use super::errno::{ConnectError, LookupError, OptionError, SendError, ShutdownError};
use super::{Proto, SocketId, Sockets};
use crate::iface::IfaceId;
use crate::iface::egress::IpFields;
use crate::standin::StandIn;
use crate::sys;
use netcell_proto::ring;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;

/// Why a datagram socket could not be bound on the way (by `connect` or a send,
/// as Linux's autobind does): the call says it with its own error.
#[derive(Clone, Copy, Debug)]
pub(crate) enum AutobindError {
    /// No such socket.
    NoSuchSocket,
    /// No ephemeral port (or ICMP identifier) left.
    Exhausted,
    /// A UDP port's endpoints do not fit the container's buffer budget.
    NoBuffers,
}

impl From<AutobindError> for ConnectError {
    fn from(e: AutobindError) -> Self {
        match e {
            AutobindError::NoSuchSocket => ConnectError::NoSuchSocket,
            AutobindError::Exhausted => ConnectError::NoEphemeralPort,
            AutobindError::NoBuffers => ConnectError::NoBuffers,
        }
    }
}

impl From<AutobindError> for SendError {
    fn from(e: AutobindError) -> Self {
        match e {
            AutobindError::NoSuchSocket => SendError::NoSuchSocket,
            AutobindError::Exhausted => SendError::NoEphemeralPort,
            AutobindError::NoBuffers => SendError::NoBuffers,
        }
    }
}

/// Origins kept per socket: beyond this the program is not asking for them (a
/// stand-in queues about 280 small datagrams with the default buffer; the oldest
/// entries then belong to datagrams read without asking). This bounds what a
/// container can make the stack keep: 40 KiB per datagram socket.
const MAX_ORIGINS: usize = 512;

/// Origins rings a container's sockets hold at most (64 KiB of shared memory
/// each, touched as datagrams arrive); sockets beyond ask for each origin.
const MAX_RINGS: usize = 1024;

/// Where a received datagram came from, kept until the program asks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Origin {
    pub(crate) src: SocketAddr,
    pub(crate) dst: IpAddr,
    pub(crate) iface: IfaceId,
    /// The TTL (hop limit) and TOS (traffic class) the packet carried, when the
    /// device said (see [`IpFields::of_frame`]).
    pub(crate) fields: IpFields,
    len: u32,
    plen: u8,
    prefix: [u8; 16],
}

impl Origin {
    /// The origin of `data`, received on `iface` from `src` for `dst`.
    pub(crate) fn new(src: SocketAddr, dst: IpAddr, iface: IfaceId, data: &[u8]) -> Origin {
        let mut prefix = [0u8; 16];
        let plen = data.len().min(16);
        prefix[..plen].copy_from_slice(&data[..plen]);
        Origin {
            src,
            dst,
            iface,
            fields: IpFields::default(),
            len: data.len() as u32,
            plen: plen as u8,
            prefix,
        }
    }

    /// With the IP header fields the packet carried.
    pub(crate) fn with_fields(self, fields: IpFields) -> Origin {
        Origin { fields, ..self }
    }

    fn matches(&self, len: u32, prefix: &[u8]) -> bool {
        self.len == len
            && prefix.len() <= self.plen as usize
            && self.prefix[..prefix.len()] == *prefix
    }
}

/// Appends one `cmsghdr` (64-bit layout) to `out`; false if it does not fit.
pub(crate) fn push_cmsg(out: &mut [u8], pos: &mut usize, level: i32, ty: i32, data: &[u8]) -> bool {
    let space = 16 + data.len().div_ceil(8) * 8;
    if *pos + space > out.len() {
        return false;
    }
    let o = &mut out[*pos..*pos + space];
    o.fill(0);
    o[..8].copy_from_slice(&((16 + data.len()) as u64).to_ne_bytes());
    o[8..12].copy_from_slice(&level.to_ne_bytes());
    o[12..16].copy_from_slice(&ty.to_ne_bytes());
    o[16..16 + data.len()].copy_from_slice(data);
    *pos += space;
    true
}

/// The receive side of a datagram socket.
#[derive(Default)]
pub(crate) struct Inbox {
    origins: VecDeque<Origin>,
    pktinfo: bool,
    recvpktinfo6: bool,
    recvttl: bool,
    recvhoplimit: bool,
    recvtos: bool,
    recvtclass: bool,
    /// Datagrams dropped because the program's queue was full.
    pub(crate) dropped: u64,
    /// The origins ring shared with the program's shim, once asked for (see
    /// [`netcell_proto::ring`]), and the family its addresses are written in.
    ring: Option<(netcell_sys::SharedPages, Domain)>,
}

impl Inbox {
    /// Writes a datagram into the stand-in and remembers its origin; a full queue
    /// drops it, as a socket's full receive buffer does. Returns whether the
    /// queue was full: the program is behind (a stand-in its program closed is
    /// not that).
    pub(crate) fn deliver(&mut self, si: &StandIn, data: &[u8], origin: Origin) -> bool {
        // The ring's entry first: the program may read the datagram and look
        // for its origin the moment it is in the stand-in.
        self.to_ring(&origin);
        match sys::send_nb(si.fd.as_fd(), data, 0) {
            Ok(_) => {
                if self.origins.len() >= MAX_ORIGINS {
                    self.origins.pop_front();
                }
                self.origins.push_back(origin);
                false
            }
            Err(e) => {
                self.dropped += 1;
                e.kind() == std::io::ErrorKind::WouldBlock
                    || e.raw_os_error() == Some(libc::ENOBUFS)
            }
        }
    }

    /// Writes `o` into the origins ring, if the socket has one.
    fn to_ring(&self, o: &Origin) {
        let Some((pages, domain)) = &self.ring else {
            return;
        };
        let mut sa = [0u8; addr::MAX_ENCODED];
        let n = addr::encode(*domain, o.src, &mut sa).min(ring::MAX_ADDR);
        let mut e = ring::Entry {
            len: o.len,
            prefix: o.prefix,
            plen: o.plen,
            alen: n as u8,
            ..ring::Entry::default()
        };
        e.addr[..n].copy_from_slice(&sa[..n]);
        ring::push(pages.words(), &e);
    }

    /// The origins ring, made at the first call (see
    /// [`netcell_proto::ring`]); `None` if it cannot be.
    pub(crate) fn ring(&mut self, domain: Domain) -> Option<std::os::fd::BorrowedFd<'_>> {
        if self.ring.is_none() {
            let pages = netcell_sys::SharedPages::new("netcell-origins", ring::WORDS)
                .map_err(|e| log::debug!("udp: no origins ring: {e}"))
                .ok()?;
            self.ring = Some((pages, domain));
        }
        self.ring.as_ref().map(|(p, _)| p.reader())
    }

    /// Whether the socket has an origins ring.
    pub(crate) fn has_ring(&self) -> bool {
        self.ring.is_some()
    }

    /// Puts `data` back at the end of the stand-in's queue, its origin (matched as
    /// [`Inbox::answer`] matches) moved to the end with it: a datagram a front end
    /// took for a call that never got it. False if the stand-in is full.
    pub(crate) fn requeue(&mut self, si: &StandIn, data: &[u8]) -> bool {
        let prefix = &data[..data.len().min(16)];
        let origin = self
            .origins
            .iter()
            .position(|o| o.matches(data.len() as u32, prefix))
            .and_then(|i| self.origins.remove(i));
        if let Some(o) = &origin {
            self.to_ring(o);
        }
        if sys::send_nb(si.fd.as_fd(), data, 0).is_err() {
            self.dropped += 1;
            return false;
        }
        if let Some(o) = origin {
            self.origins.push_back(o);
        }
        true
    }

    /// Answers `Origin`: the source of the datagram the program just read (matched
    /// by length and first bytes; entries ahead of it were read without asking) and
    /// the ancillary data the socket's options ask for, into `out`. `None`: unknown.
    pub(crate) fn answer(
        &mut self,
        domain: Domain,
        len: u32,
        prefix: &[u8],
        peek: bool,
        out: &mut [u8],
    ) -> Option<usize> {
        let i = self.origins.iter().position(|o| o.matches(len, prefix))?;
        let o = self.origins[i];
        if !peek {
            self.origins.drain(..=i);
        }
        let mut sa = [0u8; addr::MAX_ENCODED];
        let n = addr::encode(domain, o.src, &mut sa);
        let mut pos = netcell_proto::origin::encode_addr(&sa[..n], out)?;
        let ifindex = (o.iface + 1) as i32;
        if let (IpAddr::V4(d), true) = (o.dst, self.pktinfo) {
            let mut pi = [0u8; 12];
            pi[..4].copy_from_slice(&ifindex.to_ne_bytes());
            pi[4..8].copy_from_slice(&d.octets()); // ipi_spec_dst: the local address
            pi[8..12].copy_from_slice(&d.octets()); // ipi_addr: the header destination
            push_cmsg(out, &mut pos, libc::IPPROTO_IP, libc::IP_PKTINFO, &pi);
        }
        if self.recvpktinfo6 && domain == Domain::Inet6 {
            let d6 = match o.dst {
                IpAddr::V6(d) => d,
                IpAddr::V4(d) => d.to_ipv6_mapped(),
            };
            let mut pi = [0u8; 20];
            pi[..16].copy_from_slice(&d6.octets());
            pi[16..20].copy_from_slice(&(ifindex as u32).to_ne_bytes());
            push_cmsg(out, &mut pos, libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &pi);
        }
        // What the packet carried; the usual values where the device did not say
        // (an embedder's device: 64 and 0).
        let ttl = o.fields.ttl.unwrap_or(64) as i32;
        let tos = o.fields.tos.unwrap_or(0);
        if self.recvttl && o.src.is_ipv4() {
            push_cmsg(
                out,
                &mut pos,
                libc::IPPROTO_IP,
                libc::IP_TTL,
                &ttl.to_ne_bytes(),
            );
        }
        if self.recvhoplimit && domain == Domain::Inet6 {
            push_cmsg(
                out,
                &mut pos,
                libc::IPPROTO_IPV6,
                libc::IPV6_HOPLIMIT,
                &ttl.to_ne_bytes(),
            );
        }
        if self.recvtos && o.src.is_ipv4() {
            push_cmsg(out, &mut pos, libc::IPPROTO_IP, libc::IP_TOS, &[tos]);
        }
        if self.recvtclass && domain == Domain::Inet6 {
            push_cmsg(
                out,
                &mut pos,
                libc::IPPROTO_IPV6,
                libc::IPV6_TCLASS,
                &(tos as i32).to_ne_bytes(),
            );
        }
        Some(pos)
    }

    /// The ancillary-data switches. `None`: not one of them.
    pub(crate) fn setsockopt(
        &mut self,
        domain: Domain,
        level: i32,
        name: i32,
        v: &[u8],
    ) -> Option<Result<(), OptionError>> {
        let flag = match (level, name) {
            (libc::IPPROTO_IP, libc::IP_PKTINFO) => &mut self.pktinfo,
            (libc::IPPROTO_IP, libc::IP_RECVTTL) => &mut self.recvttl,
            (libc::IPPROTO_IP, libc::IP_RECVTOS) => &mut self.recvtos,
            (libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO) if domain == Domain::Inet6 => {
                &mut self.recvpktinfo6
            }
            (libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT) if domain == Domain::Inet6 => {
                &mut self.recvhoplimit
            }
            (libc::IPPROTO_IPV6, libc::IPV6_RECVTCLASS) if domain == Domain::Inet6 => {
                &mut self.recvtclass
            }
            _ => return None,
        };
        Some(match v.len() {
            0 => Err(OptionError::Invalid),
            1..=3 => {
                *flag = v[0] != 0;
                Ok(())
            }
            _ => {
                *flag = i32::from_ne_bytes([v[0], v[1], v[2], v[3]]) != 0;
                Ok(())
            }
        })
    }

    /// `getsockopt` of the switches. `None`: not one of them.
    pub(crate) fn getsockopt(&self, level: i32, name: i32) -> Option<bool> {
        Some(match (level, name) {
            (libc::IPPROTO_IP, libc::IP_PKTINFO) => self.pktinfo,
            (libc::IPPROTO_IP, libc::IP_RECVTTL) => self.recvttl,
            (libc::IPPROTO_IP, libc::IP_RECVTOS) => self.recvtos,
            (libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO) => self.recvpktinfo6,
            (libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT) => self.recvhoplimit,
            (libc::IPPROTO_IPV6, libc::IPV6_RECVTCLASS) => self.recvtclass,
            _ => return None,
        })
    }
}

impl Sockets {
    /// The inbox of a datagram socket.
    pub(crate) fn inbox_mut(&mut self, id: SocketId) -> Option<(Domain, &mut Inbox)> {
        let s = self.get_mut(id)?;
        let d = s.domain;
        match &mut s.proto {
            Proto::Udp(u) => Some((d, &mut u.inbox)),
            Proto::Icmp(i) => Some((d, &mut i.inbox)),
            Proto::Raw(r) => Some((d, &mut r.inbox)),
            Proto::Tcp(_) => None,
        }
    }

    /// A datagram a front end took off the stand-in with inode `ino` for a call
    /// that never got it, back in the stand-in (see [`Inbox::requeue`]).
    pub(crate) fn datagram_requeue(&mut self, ino: u64, data: &[u8]) -> bool {
        let Some(s) = self.by_inode(ino).and_then(|id| self.get_mut(id)) else {
            return false;
        };
        let Some(si) = s.standin.as_ref() else {
            return false;
        };
        let inbox = match &mut s.proto {
            Proto::Udp(u) => &mut u.inbox,
            Proto::Icmp(i) => &mut i.inbox,
            Proto::Raw(r) => &mut r.inbox,
            Proto::Tcp(_) => return false,
        };
        inbox.requeue(si, data)
    }

    /// Answers `Origin` for a datagram socket (see [`Inbox::answer`]): the length
    /// of what went into `out`, `None` when the datagram is unknown.
    pub(crate) fn datagram_origin(
        &mut self,
        id: SocketId,
        len: u32,
        prefix: &[u8],
        peek: bool,
        out: &mut [u8],
    ) -> Option<usize> {
        let (d, inbox) = self.inbox_mut(id)?;
        inbox.answer(d, len, prefix, peek, out)
    }

    /// The origins ring of UDP socket `id` (see [`netcell_proto::ring`]), made
    /// at the first call, for the front end to map read-only. `None` for other
    /// sockets, or beyond [`MAX_RINGS`] in the container.
    pub(crate) fn origin_ring(&mut self, id: SocketId) -> Option<std::os::fd::OwnedFd> {
        if self.kind(id) != Some(super::Kind::Udp) {
            return None;
        }
        let rings = self.udp.rings;
        let (d, inbox) = self.inbox_mut(id)?;
        let new = !inbox.has_ring();
        if new && rings >= MAX_RINGS {
            return None;
        }
        let fd = inbox.ring(d)?.try_clone_to_owned().ok()?;
        if new {
            self.udp.rings += 1;
        }
        Some(fd)
    }

    /// The default destination of a connected datagram socket.
    fn datagram_connected(&self, id: SocketId) -> Option<SocketAddr> {
        match &self.get(id)?.proto {
            Proto::Udp(u) => u.connected,
            Proto::Icmp(i) => i.connected,
            Proto::Raw(r) => r.connected,
            Proto::Tcp(_) => None,
        }
    }

    /// `getpeername(2)` of a datagram socket: its default destination.
    pub(crate) fn datagram_peer(&self, id: SocketId) -> Result<SocketAddr, LookupError> {
        self.datagram_connected(id).ok_or(LookupError::NotConnected)
    }

    /// `shutdown(2)` of a datagram socket: Linux's checks (`how` must be valid and
    /// the socket connected); the front end shuts the stand-in, and a UDP
    /// socket remembers a shut writing side for the sends that come as requests
    /// (`EPIPE`, as Linux answers).
    pub(crate) fn datagram_shutdown(
        &mut self,
        id: SocketId,
        how: i32,
    ) -> Result<(), ShutdownError> {
        if !(libc::SHUT_RD..=libc::SHUT_RDWR).contains(&how) {
            return Err(ShutdownError::BadHow);
        }
        self.datagram_connected(id)
            .ok_or(ShutdownError::NotConnected)?;
        if how != libc::SHUT_RD
            && let Some(u) = self.udp_state_mut(id)
        {
            u.write_shut = true;
        }
        Ok(())
    }

    /// The ancillary-data switches of a datagram socket's inbox, for `getsockopt`:
    /// the `int` value into `out`, returning its length. `None`: not one of them, or
    /// not a datagram socket.
    pub(crate) fn inbox_getsockopt(
        &mut self,
        id: SocketId,
        level: i32,
        name: i32,
        out: &mut [u8],
    ) -> Option<usize> {
        let on = self.inbox_mut(id)?.1.getsockopt(level, name)?;
        out[..4].copy_from_slice(&(on as i32).to_ne_bytes());
        Some(4)
    }

    /// Sends every record the program wrote into a datagram socket's stand-in (a
    /// `send`/`write` on a connected socket) with `send`. Returns whether anything
    /// was sent, and whether the program is gone (its end closed: the socket must be
    /// freed).
    pub(crate) fn drain_program_sends(
        &mut self,
        ifs: &mut crate::iface::Interfaces,
        id: SocketId,
        buf: &mut [u8],
        mut send: impl FnMut(&mut Self, &mut crate::iface::Interfaces, SocketId, &[u8]),
    ) -> (bool, bool) {
        let mut sent = false;
        while let Some(si) = self.get(id).and_then(|s| s.standin.as_ref()) {
            if !si.readable && !si.hup {
                return (sent, false);
            }
            match sys::recv_record(si.fd.as_fd(), buf) {
                Ok(Some(n)) => {
                    send(self, ifs, id, &buf[..n]);
                    sent = true;
                }
                Ok(None) => return (sent, true),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let si = self.get_mut(id).and_then(|s| s.standin.as_mut());
                    return match si {
                        Some(si) => {
                            si.readable = false;
                            (sent, si.hup)
                        }
                        None => (sent, false),
                    };
                }
                Err(_) => return (sent, true),
            }
        }
        (sent, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_match_by_length_and_prefix() {
        let o = Origin::new(
            "1.2.3.4:5".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            1,
            b"0123456789abcdefXXXX",
        );
        assert!(o.matches(20, b"0123"));
        assert!(o.matches(20, b""));
        assert!(!o.matches(21, b"0123"));
        assert!(!o.matches(20, b"x"));
    }

    #[test]
    fn cmsg_layout() {
        let mut out = [0u8; 64];
        let mut pos = 0;
        assert!(push_cmsg(
            &mut out,
            &mut pos,
            libc::IPPROTO_IP,
            libc::IP_TTL,
            &7i32.to_ne_bytes()
        ));
        assert_eq!(pos, 24);
        assert_eq!(u64::from_ne_bytes(out[..8].try_into().unwrap()), 20);
        let mut small = [0u8; 20];
        let mut p = 0;
        assert!(!push_cmsg(&mut small, &mut p, 0, 0, &[0; 8]));
    }

    #[test]
    fn answer_skips_what_was_read_natively() {
        let mut inbox = Inbox::default();
        let src = |p| SocketAddr::new("10.0.0.1".parse().unwrap(), p);
        inbox.origins.push_back(Origin::new(
            src(1),
            "10.0.0.2".parse().unwrap(),
            1,
            b"first",
        ));
        inbox.origins.push_back(Origin::new(
            src(2),
            "10.0.0.2".parse().unwrap(),
            1,
            b"second",
        ));
        let mut out = [0u8; 128];
        // The program read "first" with read() and then recvfrom()s "second".
        let n = inbox
            .answer(Domain::Inet, 6, b"sec", false, &mut out)
            .unwrap();
        let mut expect = [0u8; addr::MAX_ENCODED];
        let l = addr::encode(Domain::Inet, src(2), &mut expect);
        assert_eq!(&out[1..1 + l], &expect[..l]);
        assert_eq!(n, 1 + l);
        assert!(inbox.origins.is_empty());
    }
}
