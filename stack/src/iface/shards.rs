//! An interface's sockets, spread over several smoltcp socket sets ("shards") so
//! that the work per frame and per turn grows with what is active, not with how
//! many connections exist.
//!
//! # Why
//!
//! smoltcp finds a frame's socket by asking every socket of the set
//! (`tcp::Socket::accepts`, the raw-socket filter), adds a socket by scanning for
//! a free slot, and on every egress poll and `poll_at` visits every socket. With
//! one set per interface, a container holding 5 000 connections spent 44 % of
//! netcell's time in that ingress walk, and opening them one after the other took
//! 5.6 ms per connection (measured: 27.9 s for 5 000), because every frame and
//! every turn paid for all of them. smoltcp 0.14 offers no index to replace the
//! walk, but it takes the socket set as an argument of each poll: so netcell keeps
//! several sets and gives each frame the one its connection lives in.
//!
//! # How
//!
//! Shard 0 is *home*: listening sockets, half-open ones before their SYN, UDP,
//! ICMP, raw and DHCP sockets, and every TCP connection while home holds fewer than
//! [`HOME_MAX`] sockets (or [`Shards::set_home_max`]'s) — so a container with a
//! few connections has one set and polls exactly as smoltcp alone would (no copy,
//! no lookup). Past that, a
//! TCP socket whose four-tuple is known (a `connect`, or a listener's socket that
//! took a SYN) is *placed*: moved to shard `1 + hash(tuple) % (SHARDS - 1)` and
//! recorded in a map from tuple to handles; a socket whose tuple is placed
//! already joins the others of it (a frame must find all of them in one set). A
//! received frame is parsed (the ingress hook's parser), and a TCP segment whose
//! tuple is placed goes to that shard — unless every socket of the tuple is in
//! `CLOSED` (a connection over, held until its program closes it), which takes no
//! segment: then home, where a listener may take a new connection on the tuple.
//! Everything else goes home, where smoltcp answers it as before (a stray segment
//! gets its reset from home, since no placed socket has its tuple).
//!
//! Two things smoltcp does per set follow the frame: its device metadata (the id
//! that carries a datagram's TTL and TOS to its socket) travels with the copy, and
//! while a raw socket of protocol TCP exists (they live in home and see every
//! segment), a segment for another shard is first given to home with answers
//! dropped — home has no socket of that tuple and its listeners take no segment
//! with an ACK, so the raw sockets' copy is all that happens there.
//!
//! Egress polls only the shards whose sockets changed (a frame arrived for them,
//! the socket layer took one of them mutably, or an interface change touched all)
//! or whose cached `poll_at` is due; `poll_at` of the whole interface is the
//! minimum of the cached ones. What changed is told to the socket layer as
//! narrowly as it is known: a segment of a placed tuple is news of that
//! tuple's connections alone, and an egress poll of a placed shard is news only
//! of the connections it closed (`Shards::polled` says why nothing else an
//! egress poll does needs the socket layer). An ARP or ICMPv6 (neighbor
//! discovery) frame marks every shard changed: a socket waiting for a neighbour
//! is due again once it is known.
//!
//! # Cost and limits
//!
//! While anything is placed, each received frame is copied once into a buffer the
//! stack reuses (the shard must be chosen before smoltcp takes the frame).
//!
//! smoltcp reassembles IPv4 fragments per interface and hands the whole packet to
//! the set polled with its last fragment; only the first carries the ports. So the
//! shard of each packet's first fragment is remembered (source, destination, id;
//! the last 32 packets) and its later fragments follow it; a later fragment that
//! comes before the first is only stored, wherever it goes. TCP behind an IPv6
//! hop-by-hop header (the one extension header smoltcp follows) is routed by the
//! ports behind it.

use super::ingress::PacketInfo;
use smoltcp::iface::{Interface, SocketHandle as SmolHandle, SocketSet};
use smoltcp::phy::Medium;
use smoltcp::socket::{AnySocket, Socket, tcp};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetFrame, EthernetProtocol, IpAddress, IpEndpoint, IpProtocol};
use std::collections::HashMap;

/// Shards per interface once sockets are placed (home included).
pub const SHARDS: usize = 128;

/// Sockets home holds before connections are placed elsewhere.
pub const HOME_MAX: usize = 64;

/// A socket of an interface: its shard and its handle there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketHandle {
    shard: u16,
    inner: SmolHandle,
}

impl SocketHandle {
    /// The shard the socket lives in.
    pub fn shard(self) -> usize {
        self.shard as usize
    }
}

/// A TCP connection's addresses, as seen from this side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Tuple {
    local: IpEndpoint,
    remote: IpEndpoint,
}

impl Tuple {
    fn of(s: &tcp::Socket<'_>) -> Option<Tuple> {
        Some(Tuple {
            local: s.local_endpoint()?,
            remote: s.remote_endpoint()?,
        })
    }

    /// The shard a placed connection lives in (never home).
    fn shard(&self) -> usize {
        // FNV-1a over the ports and addresses: cheap, and spreading is all it is
        // for (the map, not this, decides where a frame goes).
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |b: &[u8]| {
            for &x in b {
                h = (h ^ x as u64).wrapping_mul(0x0100_0000_01b3);
            }
        };
        eat(&self.local.port.to_be_bytes());
        eat(&self.remote.port.to_be_bytes());
        for a in [self.local.addr, self.remote.addr] {
            match a {
                IpAddress::Ipv4(a) => eat(&a.octets()),
                IpAddress::Ipv6(a) => eat(&a.octets()),
            }
        }
        1 + (h % (SHARDS as u64 - 1)) as usize
    }
}

struct Shard {
    set: SocketSet<'static>,
    len: usize,
    /// Its sockets changed since its egress poll: `due` is not to be trusted.
    dirty: bool,
    /// smoltcp's `poll_at` for it, as of its last egress poll.
    due: Option<Instant>,
    /// Something may have changed any of its connections since the socket layer
    /// last served them (a frame no tuple places, an interface change, and for
    /// home every egress poll); news of one placed connection goes to
    /// [`Shards::touched`] instead.
    news: bool,
    /// Its TCP sockets found in `CLOSED` after an egress poll, each told once as
    /// news.
    closed: Vec<SmolHandle>,
}

impl Shard {
    fn new() -> Self {
        Shard {
            set: SocketSet::new(Vec::new()),
            len: 0,
            dirty: true,
            due: None,
            news: true,
            closed: Vec::new(),
        }
    }
}

/// The sockets of one interface (see the module docs).
pub struct Shards {
    shards: Vec<Shard>,
    /// The placed sockets of each tuple (usually one; a new connection on the
    /// tuple of one in `TIME_WAIT` joins it in its shard).
    placed: HashMap<Tuple, Vec<SocketHandle>>,
    tuple_of: HashMap<SocketHandle, Tuple>,
    home_max: usize,
    /// Raw sockets of protocol TCP (in home): they get a copy of every segment.
    raw_tcp: usize,
    /// The bytes of buffers all the sockets hold.
    buffer_bytes: usize,
    /// Where the first fragments of the last IPv4 packets went.
    fragments: Vec<(FragmentKey, usize)>,
    next_fragment: usize,
    /// Placed connections that a frame arrived for, or that an egress poll
    /// closed, since [`Shards::clear_news`]: news of one connection, so that the socket
    /// layer serves it and not its whole shard.
    touched: Vec<SocketHandle>,
}

/// IPv4 packets in reassembly whose first fragment's shard is remembered.
const FRAGMENTS: usize = 32;

/// An IPv4 packet's identity among fragments: source, destination, id.
type FragmentKey = ([u8; 4], [u8; 4], u16);

impl Default for Shards {
    fn default() -> Self {
        Shards::new(home_max())
    }
}

/// [`HOME_MAX`], or `NETCELL_SHARD_HOME_MAX` from the environment (tests set it
/// to 0 so that every connection is placed).
fn home_max() -> usize {
    use std::sync::OnceLock;
    static V: OnceLock<usize> = OnceLock::new();
    *V.get_or_init(|| {
        std::env::var("NETCELL_SHARD_HOME_MAX")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(HOME_MAX)
    })
}

impl Shards {
    /// No sockets; connections are placed once home holds `home_max`.
    pub fn new(home_max: usize) -> Self {
        Shards {
            shards: vec![Shard::new()],
            placed: HashMap::new(),
            tuple_of: HashMap::new(),
            home_max,
            raw_tcp: 0,
            buffer_bytes: 0,
            fragments: Vec::new(),
            next_fragment: 0,
            touched: Vec::new(),
        }
    }

    /// Sets how many sockets home holds before connections are placed elsewhere
    /// (sockets already placed stay where they are).
    pub fn set_home_max(&mut self, n: usize) {
        self.home_max = n;
    }

    /// Whether any socket lives outside home (frames then need routing).
    pub fn spread(&self) -> bool {
        // Every socket outside home is placed: recorded by its tuple.
        !self.placed.is_empty()
    }

    /// Adds a socket to home.
    pub fn add<T: AnySocket<'static>>(&mut self, socket: T) -> SocketHandle {
        self.add_in(0, socket)
    }

    fn add_in<T: AnySocket<'static>>(&mut self, shard: usize, socket: T) -> SocketHandle {
        if shard >= self.shards.len() {
            self.shards.resize_with(SHARDS, Shard::new);
        }
        let s = &mut self.shards[shard];
        s.len += 1;
        s.dirty = true;
        let inner = s.set.add(socket);
        let added = s.set.get::<Socket<'static>>(inner);
        self.buffer_bytes += crate::socket::budget::buffer_bytes(added);
        if is_raw_tcp(added) {
            self.raw_tcp += 1;
        }
        SocketHandle {
            shard: shard as u16,
            inner,
        }
    }

    /// The shard the sockets of tuple `t` are placed in, if any is.
    fn placed_shard(&self, t: &Tuple) -> Option<usize> {
        self.placed
            .get(t)
            .and_then(|v| v.first())
            .map(|h| h.shard as usize)
    }

    /// Where a TCP socket of tuple `t` goes: next to the placed sockets of its
    /// tuple (a frame must find all of them in one set), else to its own shard
    /// when home is full, else home (`None`).
    fn shard_for(&self, t: &Tuple, home_full: bool) -> Option<usize> {
        self.placed_shard(t)
            .or_else(|| home_full.then(|| t.shard()))
    }

    /// Adds a TCP socket: placed by its tuple when home is full, else home.
    pub fn add_tcp(&mut self, socket: tcp::Socket<'static>) -> SocketHandle {
        let placed = Tuple::of(&socket).and_then(|t| {
            self.shard_for(&t, self.shards[0].len >= self.home_max)
                .map(|k| (t, k))
        });
        match placed {
            Some((t, k)) => {
                let h = self.add_in(k, socket);
                self.record(t, h);
                h
            }
            None => self.add(socket),
        }
    }

    /// Moves a home TCP socket whose tuple is known to its shard when home is
    /// full; returns its handle from now on (the same one if it stays).
    pub fn place(&mut self, h: SocketHandle) -> SocketHandle {
        if h.shard != 0 {
            return h;
        }
        let Some(t) = (match self.shards[0].set.get::<Socket<'static>>(h.inner) {
            Socket::Tcp(s) => Tuple::of(s),
            _ => None,
        }) else {
            return h;
        };
        // Home counts this socket too.
        let Some(k) = self.shard_for(&t, self.shards[0].len > self.home_max) else {
            return h;
        };
        let s = &mut self.shards[0];
        s.len -= 1;
        let socket = s.set.remove(h.inner);
        // `add_in` counts it again.
        self.buffer_bytes -= crate::socket::budget::buffer_bytes(&socket);
        let moved = self.add_in(k, socket);
        self.record(t, moved);
        moved
    }

    fn record(&mut self, t: Tuple, h: SocketHandle) {
        self.placed.entry(t).or_default().push(h);
        self.tuple_of.insert(h, t);
    }

    /// A socket, by handle.
    ///
    /// # Panics
    /// If the handle is not of this interface or the socket has another type.
    pub fn get<T: AnySocket<'static>>(&self, h: SocketHandle) -> &T {
        self.shards[h.shard as usize].set.get(h.inner)
    }

    /// A socket, by handle, to change: its shard is polled in the next turn.
    ///
    /// # Panics
    /// As [`Shards::get`].
    pub fn get_mut<T: AnySocket<'static>>(&mut self, h: SocketHandle) -> &mut T {
        let s = &mut self.shards[h.shard as usize];
        s.dirty = true;
        s.set.get_mut(h.inner)
    }

    /// A socket, by handle, to look at or change in a way its shard's next egress
    /// poll need not know of; [`Shards::touch`] when it did change.
    ///
    /// # Panics
    /// As [`Shards::get`].
    pub fn get_mut_quiet<T: AnySocket<'static>>(&mut self, h: SocketHandle) -> &mut T {
        self.shards[h.shard as usize].set.get_mut(h.inner)
    }

    /// The socket's shard is to be polled for egress.
    pub fn touch(&mut self, h: SocketHandle) {
        self.shards[h.shard as usize].dirty = true;
    }

    /// Whether the socket's shard had news of all of its connections since
    /// [`Shards::clear_news`] (news of single ones: [`Shards::touched`]).
    pub fn news(&self, h: SocketHandle) -> bool {
        self.shards[h.shard as usize].news
    }

    /// The shards that had news of all of their connections since
    /// [`Shards::clear_news`].
    pub fn shards_with_news(&self) -> impl Iterator<Item = usize> + '_ {
        self.shards
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.news.then_some(i))
    }

    /// The placed connections with news of their own since
    /// [`Shards::clear_news`]; a handle may come more than once.
    ///
    /// Together with [`Shards::shards_with_news`] this is all that may have
    /// changed a connection: every frame a placed shard gets is routed here
    /// first (a whole segment is news of its tuple's connections, anything
    /// else of the whole shard), and an egress poll changes a connection only
    /// by closing it, which its look after the poll finds (`Shards::polled`).
    pub fn touched(&self) -> &[SocketHandle] {
        &self.touched
    }

    /// The socket layer served every connection with news.
    pub fn clear_news(&mut self) {
        for s in &mut self.shards {
            s.news = false;
        }
        self.touched.clear();
    }

    /// Removes a socket.
    pub fn remove(&mut self, h: SocketHandle) -> Socket<'static> {
        if let Some(t) = self.tuple_of.remove(&h)
            && let Some(v) = self.placed.get_mut(&t)
        {
            v.retain(|x| *x != h);
            if v.is_empty() {
                self.placed.remove(&t);
            }
        }
        let s = &mut self.shards[h.shard as usize];
        s.len -= 1;
        s.closed.retain(|x| *x != h.inner);
        let socket = s.set.remove(h.inner);
        self.buffer_bytes -= crate::socket::budget::buffer_bytes(&socket);
        if is_raw_tcp(&socket) {
            self.raw_tcp -= 1;
        }
        socket
    }

    /// The bytes of buffers the sockets hold.
    pub fn buffer_bytes(&self) -> usize {
        self.buffer_bytes
    }

    /// Every shard is to be polled (an interface change, a neighbour learned).
    pub fn touch_all(&mut self) {
        for s in &mut self.shards {
            s.dirty = true;
            s.news = true;
        }
    }

    /// Home's set, for an interface nothing is placed on (polled as smoltcp alone).
    pub(crate) fn home_mut(&mut self) -> &mut SocketSet<'static> {
        let s = &mut self.shards[0];
        s.dirty = true;
        s.news = true;
        &mut s.set
    }

    /// The shard a received frame goes to, and whether home's raw TCP sockets
    /// are to see it first (it goes elsewhere, and it is neither a fragment nor
    /// a SYN that home's listeners would take); marks the shard (or, for ARP and
    /// neighbor discovery, every shard) changed, and as having news: the
    /// connections of its tuple alone for a whole segment of a placed tuple,
    /// else all of the shard's.
    pub(crate) fn route(&mut self, medium: Medium, frame: &[u8]) -> (usize, bool) {
        let mut sniff = false;
        let mut alone = None;
        let ip = if medium == Medium::Ethernet { 14 } else { 0 };
        let shard = match super::ingress::parse(medium, frame) {
            Some(PacketInfo {
                proto: IpProtocol::Tcp,
                src,
                dst,
                src_port,
                dst_port,
                syn,
                ack,
                ..
            }) => {
                let t = Tuple {
                    local: IpEndpoint::new(dst, dst_port),
                    remote: IpEndpoint::new(src, src_port),
                };
                match fragment_of(&frame[ip..]) {
                    // A later fragment: where its first went (smoltcp gives the
                    // whole packet to the set that gets its last fragment).
                    Some((key, false)) => self.fragment_shard(key),
                    Some((key, true)) => {
                        let k = self.live_shard(&t);
                        self.remember_fragment(key, k);
                        k
                    }
                    None => {
                        let k = self.live_shard(&t);
                        // Not a SYN alone: home's listeners would take it.
                        let opening = syn && !ack;
                        sniff = k != 0 && self.raw_tcp > 0 && !opening;
                        if k != 0 {
                            alone = Some(t);
                        }
                        k
                    }
                }
            }
            Some(PacketInfo {
                proto: IpProtocol::HopByHop,
                src,
                dst,
                ..
            }) => {
                // smoltcp takes TCP behind an IPv6 hop-by-hop header (the only
                // extension header it follows).
                match tcp_behind_hop_by_hop(&frame[ip..]) {
                    Some((src_port, dst_port)) => self.live_shard(&Tuple {
                        local: IpEndpoint::new(dst, dst_port),
                        remote: IpEndpoint::new(src, src_port),
                    }),
                    None => 0,
                }
            }
            Some(PacketInfo {
                proto: IpProtocol::Icmpv6,
                ..
            }) => {
                // Neighbor discovery (router solicitation to redirect, 133–137)
                // may teach smoltcp a neighbour some socket waits for.
                let ip = if medium == Medium::Ethernet { 14 } else { 0 };
                if frame.get(ip + 40).is_some_and(|t| (133..=137).contains(t)) {
                    self.touch_all();
                }
                0
            }
            Some(_) => 0,
            None => {
                let arp = medium == Medium::Ethernet
                    && EthernetFrame::new_checked(frame)
                        .is_ok_and(|e| e.ethertype() == EthernetProtocol::Arp);
                if arp {
                    self.touch_all();
                }
                0
            }
        };
        let s = &mut self.shards[shard];
        s.dirty = true;
        match alone.and_then(|t| self.placed.get(&t)) {
            Some(v) => self.touched.extend_from_slice(v),
            None => s.news = true,
        }
        (shard, sniff)
    }

    /// Remembers where the first fragment of an IPv4 packet went.
    fn remember_fragment(&mut self, key: FragmentKey, shard: usize) {
        if self.fragments.len() < FRAGMENTS {
            self.fragments.push((key, shard));
        } else {
            self.fragments[self.next_fragment] = (key, shard);
            self.next_fragment = (self.next_fragment + 1) % FRAGMENTS;
        }
    }

    /// Where the first fragment of a packet went (home if it has not come).
    fn fragment_shard(&self, key: FragmentKey) -> usize {
        self.fragments
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map_or(0, |(_, s)| *s)
    }

    /// The shard of tuple `t`'s placed sockets, if one of them takes segments: a
    /// socket in `CLOSED` (a connection over, whose program has not closed it
    /// yet) accepts none, and smoltcp would answer from its shard with a reset
    /// where home's listener may take a new connection on the same tuple.
    fn live_shard(&self, t: &Tuple) -> usize {
        let Some(v) = self.placed.get(t) else {
            return 0;
        };
        let live = v.iter().any(|h| {
            self.shards[h.shard as usize]
                .set
                .get::<tcp::Socket<'static>>(h.inner)
                .state()
                != tcp::State::Closed
        });
        if live { v[0].shard as usize } else { 0 }
    }

    /// Shard `i`'s set, for an ingress poll.
    pub(crate) fn set_mut(&mut self, i: usize) -> &mut SocketSet<'static> {
        &mut self.shards[i].set
    }

    /// How many shards there are (1 until something is placed).
    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Whether shard `i` is for an egress poll now (home always: the interface's
    /// own queues — fragments, multicast reports — leave with it).
    pub(crate) fn egress_due(&self, i: usize, now: Instant) -> bool {
        let s = &self.shards[i];
        i == 0 || (s.len > 0 && (s.dirty || s.due.is_some_and(|t| t <= now)))
    }

    /// Records shard `i`'s `poll_at` after its egress poll, and what the poll
    /// may have changed as news.
    ///
    /// The one change of a connection's state an egress poll makes is to
    /// `CLOSED` (smoltcp's `dispatch`: `TIME_WAIT` ends, a retransmission or
    /// user timeout gives up, the local address went away); what it sends
    /// otherwise (data, acknowledgements, window updates, probes) the socket
    /// layer has nothing to do about until the peer answers, and that answer is
    /// a frame. So a placed shard's poll is news only of the connections it
    /// left newly `CLOSED`, found by a look at its sockets (just walked by the
    /// poll, so in the cache). Home's poll is news of all of home, as smoltcp
    /// alone would have it.
    pub(crate) fn polled(&mut self, i: usize, iface: &mut Interface, now: Instant) {
        let s = &mut self.shards[i];
        s.due = iface.poll_at(now, &s.set);
        s.dirty = false;
        if i == 0 {
            s.news = true;
            return;
        }
        // A socket connected again (after a failed `connect`) is told anew.
        let set = &s.set;
        s.closed.retain(|h| {
            matches!(set.get::<Socket<'static>>(*h), Socket::Tcp(t) if t.state() == tcp::State::Closed)
        });
        for (h, sock) in s.set.iter() {
            if let Socket::Tcp(t) = sock
                && t.state() == tcp::State::Closed
                && !s.closed.contains(&h)
            {
                s.closed.push(h);
                self.touched.push(SocketHandle {
                    shard: i as u16,
                    inner: h,
                });
            }
        }
    }

    /// When the interface's sockets need polling next (smoltcp's `poll_at` over
    /// all of them, from the cached figures where nothing changed).
    pub fn poll_at(&mut self, iface: &mut Interface, now: Instant) -> Option<Instant> {
        let mut best: Option<Instant> = None;
        for s in &mut self.shards {
            if s.dirty {
                s.due = iface.poll_at(now, &s.set);
            }
            if let Some(t) = s.due {
                best = Some(best.map_or(t, |b| b.min(t)));
            }
        }
        best
    }
}

fn is_raw_tcp(s: &Socket<'_>) -> bool {
    matches!(s, Socket::Raw(r) if r.ip_protocol() == Some(IpProtocol::Tcp))
}

/// An IPv4 packet that is a fragment (more follow, or not the first): its key,
/// and whether it is the first.
fn fragment_of(ip: &[u8]) -> Option<(FragmentKey, bool)> {
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return None;
    }
    let flags = u16::from_be_bytes([ip[6], ip[7]]);
    let (more, offset) = (flags & 0x2000 != 0, flags & 0x1fff);
    if !more && offset == 0 {
        return None;
    }
    let key = (
        [ip[12], ip[13], ip[14], ip[15]],
        [ip[16], ip[17], ip[18], ip[19]],
        u16::from_be_bytes([ip[4], ip[5]]),
    );
    Some((key, offset == 0))
}

/// The ports of a TCP segment behind an IPv6 hop-by-hop header.
fn tcp_behind_hop_by_hop(ip: &[u8]) -> Option<(u16, u16)> {
    let hbh = ip.get(40..)?;
    if *hbh.first()? != 6 {
        return None;
    }
    let tcp = hbh.get((*hbh.get(1)? as usize + 1) * 8..)?;
    Some((
        u16::from_be_bytes([*tcp.first()?, *tcp.get(1)?]),
        u16::from_be_bytes([*tcp.get(2)?, *tcp.get(3)?]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::{Ipv4Address, Ipv6Address};

    /// A Shards with one "live" socket (listening: any state but CLOSED) placed
    /// in shard 5 under tuple `t`.
    fn with_placed(t: Tuple) -> Shards {
        let mut s = Shards::new(HOME_MAX);
        let mut sock = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 64]),
            tcp::SocketBuffer::new(vec![0; 64]),
        );
        sock.listen(t.local.port).unwrap();
        let h = s.add_in(5, sock);
        s.record(t, h);
        s
    }

    /// 10.0.0.1:80 with 10.0.0.2:40000, the tuple of [`tcp_header`] in [`ipv4`].
    fn tuple() -> Tuple {
        Tuple {
            local: IpEndpoint::new(v4([10, 0, 0, 1]), 80),
            remote: IpEndpoint::new(v4([10, 0, 0, 2]), 40000),
        }
    }

    fn v4(a: [u8; 4]) -> IpAddress {
        IpAddress::Ipv4(Ipv4Address::new(a[0], a[1], a[2], a[3]))
    }

    /// An IPv4 packet (IP medium) from 10.0.0.2 to 10.0.0.1 with id 7, the given
    /// fragment flags and offset (in 8-byte units), carrying `payload`.
    fn ipv4(more: bool, offset: u16, id: u16, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 20];
        p[0] = 0x45;
        let len = (20 + payload.len()) as u16;
        p[2..4].copy_from_slice(&len.to_be_bytes());
        p[4..6].copy_from_slice(&id.to_be_bytes());
        let flags = offset | if more { 0x2000 } else { 0 };
        p[6..8].copy_from_slice(&flags.to_be_bytes());
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&[10, 0, 0, 2]);
        p[16..20].copy_from_slice(&[10, 0, 0, 1]);
        p.extend_from_slice(payload);
        p
    }

    /// A TCP header from port 40000 to 80 with ACK set.
    fn tcp_header() -> Vec<u8> {
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&40000u16.to_be_bytes());
        t[2..4].copy_from_slice(&80u16.to_be_bytes());
        t[12] = 5 << 4;
        t[13] = 0x10;
        t
    }

    #[test]
    fn fragments_follow_their_first_one() {
        let t = tuple();
        let mut s = with_placed(t);
        // A whole segment goes to its connection's shard.
        assert_eq!(s.route(Medium::Ip, &ipv4(false, 0, 1, &tcp_header())).0, 5);
        // A later fragment before its first: home (it is only stored there).
        assert_eq!(s.route(Medium::Ip, &ipv4(true, 4, 7, &[0; 32])).0, 0);
        // The first fragment, with the ports: the connection's shard ...
        assert_eq!(s.route(Medium::Ip, &ipv4(true, 0, 7, &tcp_header())).0, 5);
        // ... and the rest of that packet follows it; another packet's does not.
        assert_eq!(s.route(Medium::Ip, &ipv4(false, 8, 7, &[0; 32])).0, 5);
        assert_eq!(s.route(Medium::Ip, &ipv4(false, 8, 8, &[0; 32])).0, 0);
    }

    #[test]
    fn tcp_behind_a_hop_by_hop_header_finds_its_shard() {
        let (a, b) = (
            Ipv6Address::new(0xfd00, 0, 0, 0, 0, 0, 0, 1),
            Ipv6Address::new(0xfd00, 0, 0, 0, 0, 0, 0, 2),
        );
        let t = Tuple {
            local: IpEndpoint::new(IpAddress::Ipv6(a), 80),
            remote: IpEndpoint::new(IpAddress::Ipv6(b), 40000),
        };
        let mut s = with_placed(t);
        let mut p = vec![0u8; 40];
        p[0] = 0x60;
        let hbh = [6u8, 0, 1, 4, 0, 0, 0, 0]; // next: TCP; PadN
        let len = (hbh.len() + 20) as u16;
        p[4..6].copy_from_slice(&len.to_be_bytes());
        p[6] = 0; // hop-by-hop
        p[7] = 64;
        p[8..24].copy_from_slice(&b.octets());
        p[24..40].copy_from_slice(&a.octets());
        p.extend_from_slice(&hbh);
        p.extend_from_slice(&tcp_header());
        assert_eq!(s.route(Medium::Ip, &p).0, 5);
        // Without the placed tuple (another port) it is home's.
        let l = p.len();
        p[l - 18..l - 16].copy_from_slice(&81u16.to_be_bytes());
        assert_eq!(s.route(Medium::Ip, &p).0, 0);
    }

    #[test]
    fn a_placed_segment_is_news_of_its_connections_alone() {
        let t = tuple();
        let mut s = with_placed(t);
        let h = s.placed[&t][0];
        s.clear_news();
        assert_eq!(s.route(Medium::Ip, &ipv4(false, 0, 1, &tcp_header())).0, 5);
        assert_eq!(s.touched(), &[h]);
        assert!(!s.news(h), "its shard's other connections have no news");
        assert!(s.shards[5].dirty, "the shard is still polled for egress");
        // A segment of no placed tuple is news of all of home.
        let mut other = tcp_header();
        other[2..4].copy_from_slice(&81u16.to_be_bytes());
        assert_eq!(s.route(Medium::Ip, &ipv4(false, 0, 2, &other)).0, 0);
        assert_eq!(s.shards_with_news().collect::<Vec<_>>(), vec![0]);
        s.clear_news();
        assert!(s.touched().is_empty() && s.shards_with_news().next().is_none());
    }

    #[test]
    fn an_egress_poll_is_news_of_the_connections_it_closed_once() {
        use smoltcp::iface::Config;
        use smoltcp::phy::Loopback;
        use smoltcp::wire::HardwareAddress;
        let t = tuple();
        let mut s = with_placed(t);
        let h = s.placed[&t][0];
        let mut dev = Loopback::new(Medium::Ip);
        let mut iface = Interface::new(Config::new(HardwareAddress::Ip), &mut dev, Instant::ZERO);
        s.clear_news();
        s.polled(5, &mut iface, Instant::ZERO);
        assert!(s.touched().is_empty(), "a listener's poll changed nothing");
        s.get_mut::<tcp::Socket>(h).abort();
        s.polled(5, &mut iface, Instant::ZERO);
        assert_eq!(s.touched(), &[h]);
        s.clear_news();
        s.polled(5, &mut iface, Instant::ZERO);
        assert!(s.touched().is_empty(), "told once");
        // In use again, then closed again: told again.
        s.get_mut::<tcp::Socket>(h).listen(80).unwrap();
        s.polled(5, &mut iface, Instant::ZERO);
        s.get_mut::<tcp::Socket>(h).abort();
        s.polled(5, &mut iface, Instant::ZERO);
        assert_eq!(s.touched(), &[h]);
        // Home's poll is news of all of home.
        s.polled(0, &mut iface, Instant::ZERO);
        assert_eq!(s.shards_with_news().collect::<Vec<_>>(), vec![0]);
    }

    #[test]
    fn a_tuple_whose_sockets_are_closed_routes_home() {
        let t = tuple();
        let mut s = Shards::new(HOME_MAX);
        let sock = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 64]),
            tcp::SocketBuffer::new(vec![0; 64]),
        );
        let h = s.add_in(5, sock);
        s.record(t, h);
        assert_eq!(s.buffer_bytes(), 128);
        assert_eq!(s.route(Medium::Ip, &ipv4(false, 0, 1, &tcp_header())).0, 0);
        // Removing it forgets the tuple and its buffers.
        s.remove(h);
        assert!(s.placed.is_empty() && s.tuple_of.is_empty());
        assert_eq!(s.buffer_bytes(), 0);
    }
}
