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
//! [`Shards::home_max`] sockets — so a container with a few connections has one
//! set and polls exactly as smoltcp alone would (no copy, no lookup). Past that, a
//! TCP socket whose four-tuple is known (a `connect`, or a listener's socket that
//! took a SYN) is *placed*: moved to shard `1 + hash(tuple) % (SHARDS - 1)` and
//! recorded in a map from tuple to handle. A received frame is parsed (the ingress
//! hook's parser), and a TCP segment whose tuple is placed goes to that shard;
//! everything else to home, where smoltcp answers it as before (a stray segment
//! gets its reset from home, since no placed socket has its tuple).
//!
//! Egress polls only the shards whose sockets changed (a frame arrived for them,
//! the socket layer took one of them mutably, or an interface change touched all)
//! or whose cached `poll_at` is due; `poll_at` of the whole interface is the
//! minimum of the cached ones. An ARP or ICMPv6 (neighbor discovery) frame marks
//! every shard changed: a socket waiting for a neighbour is due again once it is
//! known.
//!
//! # Cost and limits
//!
//! While anything is placed, each received frame is copied once into a buffer the
//! stack reuses (the shard must be chosen before smoltcp takes the frame). TCP in
//! IPv4 fragments, or behind IPv6 extension headers, cannot be matched to a placed
//! connection (its ports are not in the first header) and goes home, where no
//! socket takes it: such a connection gets a reset. Linux peers send TCP with DF
//! and no extension headers, so this is documented, not handled.

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
    /// A frame arrived for it or it was polled for egress since the socket layer
    /// last served its connections: they may have changed.
    news: bool,
}

impl Shard {
    fn new() -> Self {
        Shard {
            set: SocketSet::new(Vec::new()),
            len: 0,
            dirty: true,
            due: None,
            news: true,
        }
    }
}

/// The sockets of one interface (see the module docs).
pub struct Shards {
    shards: Vec<Shard>,
    placed: HashMap<Tuple, SocketHandle>,
    tuple_of: HashMap<SocketHandle, Tuple>,
    home_max: usize,
}

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
        }
    }

    /// Sockets home holds before connections are placed elsewhere.
    pub fn home_max(&self) -> usize {
        self.home_max
    }

    /// Whether any socket lives outside home (frames then need routing).
    pub fn spread(&self) -> bool {
        !self.placed.is_empty() || self.shards[1..].iter().any(|s| s.len > 0)
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
        SocketHandle {
            shard: shard as u16,
            inner: s.set.add(socket),
        }
    }

    /// Adds a TCP socket: placed by its tuple when home is full, else home.
    pub fn add_tcp(&mut self, socket: tcp::Socket<'static>) -> SocketHandle {
        match Tuple::of(&socket) {
            Some(t) if self.shards[0].len >= self.home_max => {
                let h = self.add_in(t.shard(), socket);
                self.record(t, h);
                h
            }
            _ => self.add(socket),
        }
    }

    /// Moves a home TCP socket whose tuple is known to its shard when home is
    /// full; returns its handle from now on (the same one if it stays).
    pub fn place(&mut self, h: SocketHandle) -> SocketHandle {
        if h.shard != 0 || self.shards[0].len <= self.home_max {
            return h;
        }
        let Some(t) = (match self.shards[0].set.get::<Socket<'static>>(h.inner) {
            Socket::Tcp(s) => Tuple::of(s),
            _ => None,
        }) else {
            return h;
        };
        let s = &mut self.shards[0];
        s.len -= 1;
        let socket = s.set.remove(h.inner);
        let moved = self.add_in(t.shard(), socket);
        self.record(t, moved);
        moved
    }

    fn record(&mut self, t: Tuple, h: SocketHandle) {
        self.placed.insert(t, h);
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

    /// Whether the socket's shard had a frame or an egress poll since
    /// [`Shards::clear_news`].
    pub fn news(&self, h: SocketHandle) -> bool {
        self.shards[h.shard as usize].news
    }

    /// The socket layer served every connection with news.
    pub fn clear_news(&mut self) {
        for s in &mut self.shards {
            s.news = false;
        }
    }

    /// Removes a socket.
    pub fn remove(&mut self, h: SocketHandle) -> Socket<'static> {
        if let Some(t) = self.tuple_of.remove(&h)
            && self.placed.get(&t) == Some(&h)
        {
            self.placed.remove(&t);
        }
        let s = &mut self.shards[h.shard as usize];
        s.len -= 1;
        s.set.remove(h.inner)
    }

    /// Every socket.
    pub fn iter(&self) -> impl Iterator<Item = (SocketHandle, &Socket<'static>)> {
        self.shards.iter().enumerate().flat_map(|(i, s)| {
            s.set.iter().map(move |(inner, k)| {
                (
                    SocketHandle {
                        shard: i as u16,
                        inner,
                    },
                    k,
                )
            })
        })
    }

    /// How many sockets there are.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.len).sum()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

    /// The shard a received frame goes to; marks it (or, for ARP and ICMPv6,
    /// every shard) changed.
    pub(crate) fn route(&mut self, medium: Medium, frame: &[u8]) -> usize {
        let shard = match super::ingress::parse(medium, frame) {
            Some(PacketInfo {
                proto: IpProtocol::Tcp,
                src,
                dst,
                src_port,
                dst_port,
                ..
            }) => {
                let t = Tuple {
                    local: IpEndpoint::new(dst, dst_port),
                    remote: IpEndpoint::new(src, src_port),
                };
                self.placed.get(&t).map_or(0, |h| h.shard as usize)
            }
            Some(PacketInfo {
                proto: IpProtocol::Icmpv6,
                ..
            }) => {
                self.touch_all();
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
        s.news = true;
        shard
    }

    /// Shard `i`'s set, for an ingress poll.
    pub(crate) fn set_mut(&mut self, i: usize) -> &mut SocketSet<'static> {
        &mut self.shards[i].set
    }

    /// The shards an egress poll is for now (home always: the interface's own
    /// queues — fragments, multicast reports — leave with it).
    pub(crate) fn egress_due(&self, now: Instant) -> impl Iterator<Item = usize> + '_ {
        self.shards.iter().enumerate().filter_map(move |(i, s)| {
            (i == 0 || (s.len > 0 && (s.dirty || s.due.is_some_and(|t| t <= now)))).then_some(i)
        })
    }

    /// Records shard `i`'s `poll_at` after its egress poll.
    pub(crate) fn polled(&mut self, i: usize, iface: &mut Interface, now: Instant) {
        let s = &mut self.shards[i];
        s.due = iface.poll_at(now, &s.set);
        s.dirty = false;
        s.news = true;
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
