//! The socket layer: BSD socket semantics over smoltcp, decided once for every front
//! end (the preload shim, the seccomp supervisor, the embedding API).
//!
//! # Theory of operation
//!
//! A [`Sockets`] table holds every socket of one container, named by a [`SocketId`]
//! and, for sockets a program holds, by the inode of its stand-in (see
//! [`crate::standin`]). What smoltcp leaves to its user is done here:
//!
//! - **Ports** ([`ports`]): ephemeral ports from Linux's range, `EADDRINUSE` with
//!   Linux's `SO_REUSEADDR`/`SO_REUSEPORT` rules, each protocol its own table.
//! - **Interfaces**: a smoltcp socket lives in the `SocketSet` of the one interface
//!   its traffic uses ([`crate::iface::Interfaces::route`]); a listener on `0.0.0.0`
//!   or `::` listens on every interface.
//! - **Listen backlog** (`tcp`): smoltcp has none; a listening smoltcp socket
//!   becomes the connection. A listener here keeps listening smoltcp sockets *armed*
//!   for the exact addresses SYNs arrive on, re-arms them as they are taken, and
//!   through the ingress hook ([`crate::iface::ingress`]) holds back a SYN that finds
//!   no armed socket (until one is armed) and drops a SYN that finds the backlog full
//!   — never answering it with a RST.
//! - **errno values and options** as Linux gives them ([`errno`], [`options`]).
//!
//! Sockets a program closes while their connection still has work (a FIN to send, a
//! `TIME_WAIT` to sit out) become *orphans*: the smoltcp socket and its port stay
//! until the connection is over, as in the kernel.
//!
//! # Where things are
//!
//! Each protocol has one module that does all of its calls (`bind`, `connect`,
//! `listen`, sends, `shutdown`, its own options) and owns its part of the table —
//! ports, endpoints, buffers — as its own `Table`: `tcp`, `udp`, `icmp` (ping
//! sockets), `raw`; `dgram` is what the three datagram protocols share. Every call
//! has one method of [`Sockets`] that picks the protocol's ([`calls`]; the options'
//! in `sockopt`), which is all the socket service
//! ([`crate::control::service`]) and the embedding API call. Every way a call fails
//! is a variant of its own error enum ([`errno`]).

pub mod addr;
pub mod budget;
pub mod calls;
pub(crate) mod dgram;
pub mod diag;
pub mod errno;
pub(crate) mod icmp;
pub mod options;
pub mod ports;
pub(crate) mod raw;
mod sockopt;
pub(crate) mod tcp;
pub(crate) mod udp;

pub use addr::{Domain, Target};
pub use errno::*;

use crate::iface::Interfaces;
use crate::iface::egress::IpFields;
use crate::iface::ingress::{Admission, PacketInfo, Verdict};
use crate::standin::{StandIn, Unpaired};
use crate::sys;
use options::Options;
use ports::BindingId;
use smoltcp::time::Instant;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use tcp::TcpState;

/// Names a socket in a stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SocketId {
    index: u32,
    generation: u32,
}

impl SocketId {
    /// The slot index (stable while the socket lives; reused afterwards).
    pub fn index(self) -> usize {
        self.index as usize
    }

    /// A key for event registrations: the slot index and 16 bits of its
    /// generation, so that an event still queued for a closed socket is not
    /// taken for the socket that reuses its slot in the same turn.
    pub(crate) fn key(self) -> usize {
        self.index as usize | ((self.generation as usize & 0xffff) << 32)
    }
}

/// Tunables of the socket layer, and the limits of what one container can make
/// the stack hold (see [`budget`]).
#[derive(Clone, Debug)]
pub struct SocketConfig {
    /// Receive buffer of a TCP connection unless `SO_RCVBUF` says otherwise.
    pub tcp_rx_buffer: usize,
    /// Send buffer of a TCP connection unless `SO_SNDBUF` says otherwise.
    pub tcp_tx_buffer: usize,
    /// Bytes of socket buffers (TCP windows, UDP, ICMP and raw queues) the stack
    /// allocates at most. New TCP connections get smaller windows as it fills up;
    /// when it is full they fail with `ENOBUFS` (SYNs are dropped).
    pub max_buffer_memory: usize,
    /// Sockets the container may have at once: its programs' and the connections
    /// waiting to be accepted. Beyond it `socket()` fails with `EMFILE` and SYNs are
    /// dropped.
    pub max_sockets: usize,
    /// Connections being set up or waiting to be accepted, over all listeners
    /// (each listener also has its own backlog); beyond it SYNs are dropped.
    pub max_pending: usize,
    /// Connections between the container's own programs over its loopback are
    /// spliced: program to program through one kernel `AF_UNIX` pair (see the
    /// TCP module's `splice`).
    pub loopback_splice: bool,
}

/// The default of [`SocketConfig::max_buffer_memory`]: 256 MiB.
pub const DEFAULT_MAX_BUFFER_MEMORY: usize = 256 << 20;
/// The default of [`SocketConfig::max_sockets`].
pub const DEFAULT_MAX_SOCKETS: usize = 8192;
/// The default of [`SocketConfig::max_pending`].
pub const DEFAULT_MAX_PENDING: usize = 4096;

impl Default for SocketConfig {
    fn default() -> Self {
        SocketConfig {
            tcp_rx_buffer: 1 << 20,
            tcp_tx_buffer: 1 << 20,
            max_buffer_memory: DEFAULT_MAX_BUFFER_MEMORY,
            max_sockets: DEFAULT_MAX_SOCKETS,
            max_pending: DEFAULT_MAX_PENDING,
            loopback_splice: false,
        }
    }
}

/// One socket.
pub(crate) struct Socket {
    pub(crate) domain: Domain,
    pub(crate) opts: Options,
    /// The local address: set by `bind`, `connect`, `listen`'s autobind, or accept.
    pub(crate) local: Option<SocketAddr>,
    /// The port binding, with its port.
    pub(crate) binding: Option<(u16, BindingId)>,
    /// The port was chosen by `connect` (released again if the connect fails).
    pub(crate) autobound: bool,
    /// Pending `SO_ERROR`.
    pub(crate) error: i32,
    /// Datagram errors (ICMP) go into the stand-in as markers (the preload shim
    /// reads every datagram through its own code); when off, they wait in `error`
    /// for `SO_ERROR` and the front end's intercepted receive calls (the seccomp
    /// supervisor, under which plain `read`/`recv` stay native and could not tell a
    /// marker from a datagram).
    pub(crate) markers: bool,
    /// The fd front end, if a program holds this socket.
    pub(crate) standin: Option<StandIn>,
    /// A TCP socket's program end before `connect` or `listen` pair it (see
    /// [`crate::standin`]); then `standin` takes over.
    pub(crate) unpaired: Option<Unpaired>,
    pub(crate) proto: Proto,
    pub(crate) cookie: u64,
}

impl Socket {
    /// What the socket is.
    pub(crate) fn kind(&self) -> Kind {
        match self.proto {
            Proto::Tcp(_) => Kind::Tcp,
            Proto::Udp(_) => Kind::Udp,
            Proto::Icmp(_) => Kind::Icmp,
            Proto::Raw(_) => Kind::Raw,
        }
    }
}

/// What a socket is, with its protocol's state.
pub(crate) enum Proto {
    /// `SOCK_STREAM`.
    Tcp(TcpState),
    /// `SOCK_DGRAM`, `IPPROTO_UDP`.
    Udp(Box<udp::UdpState>),
    /// `SOCK_DGRAM`, `IPPROTO_ICMP`/`IPPROTO_ICMPV6` (ping sockets).
    Icmp(Box<icmp::IcmpState>),
    /// `SOCK_RAW`.
    Raw(Box<raw::RawState>),
}

/// A socket's type, for front ends and dispatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP echo ("ping").
    Icmp,
    /// Raw IP.
    Raw,
}

/// What is left of a socket the stack closed while the program still holds its
/// stand-in (after a reset): enough to answer `getsockname`, `SO_ERROR` and friends.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tombstone {
    pub(crate) domain: Domain,
    pub(crate) local: Option<SocketAddr>,
    pub(crate) error: i32,
}

const TOMBSTONES: usize = 4096;

/// The size of a [`LazyBuf`]: 64 KiB, the most one IP packet carries.
const LAZY_BUF: usize = 65536;

/// A buffer a protocol's service reuses (datagrams, packets, records, bytes to
/// drop), made at its first use and kept: a protocol no program uses costs
/// nothing, and no packet allocates.
#[derive(Default)]
pub(crate) struct LazyBuf(Vec<u8>);

impl LazyBuf {
    /// The buffer, made now if this is its first use.
    pub(crate) fn get(&mut self) -> &mut [u8] {
        if self.0.is_empty() {
            self.0 = vec![0u8; LAZY_BUF];
        }
        &mut self.0
    }
}

struct Slot<T> {
    generation: u32,
    val: Option<T>,
}

/// All sockets of a stack, and each protocol's table.
pub struct Sockets {
    /// The event loop's turns, once it reports them ([`Sockets::begin_turn`]).
    turns: Option<Turns>,
    slots: Vec<Slot<Socket>>,
    free: Vec<u32>,
    /// Live sockets (the slots in use).
    live: usize,
    by_inode: HashMap<u64, SocketId>,
    tombstones: HashMap<u64, Tombstone>,
    tomb_order: VecDeque<u64>,
    new_standins: Vec<SocketId>,
    pub(crate) cfg: SocketConfig,
    ids: Vec<SocketId>,
    next_cookie: u64,
    /// Sockets whose stand-in is unpaired now.
    pub(crate) unpaired_live: usize,
    /// Live UDP, ICMP and raw sockets: their services walk the table only when
    /// there are some (a turn must not cost a walk of 10 000 TCP connections for
    /// none).
    udp_live: usize,
    /// The live UDP sockets: the UDP service goes over these, not the table.
    udp_ids: Vec<SocketId>,
    icmp_live: usize,
    raw_live: usize,
    /// TCP's ports, listeners and orphans.
    tcp: tcp::Table,
    /// UDP's ports, endpoints and multicast memberships.
    udp: udp::Table,
    /// The identifiers of ping sockets.
    icmp: icmp::Table,
    /// Raw sockets' buffer.
    raw: raw::Table,
}

/// The event loop's turns as the socket layer sees them. A program may send a
/// message that has no answer on a control connection (a datagram posted, an
/// accepted connection placed) and then close a socket: the event loop can see
/// the hang-up before it reads the message, and must not act on the hang-up
/// until it has (see [`Turns::close_waits`]).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Turns {
    /// The current turn.
    turn: u64,
    /// The last turn that read every control connection to its end.
    drained: u64,
}

/// How long a hang-up waits for the control connections at most (a program
/// that keeps its connection busy cannot hold a socket for longer).
const CLOSE_WAIT_MAX: smoltcp::time::Duration = smoltcp::time::Duration::from_secs(1);

impl Turns {
    /// Whether a hang-up seen at `now` (first seen as `seen`, which this keeps)
    /// must wait still: messages sent before it were on the control connections
    /// when it was seen, so a turn that read every connection to its end after
    /// that has served them — or [`CLOSE_WAIT_MAX`] passed. Without an event
    /// loop (`turns` is `None`: the embedding API) nothing waits.
    pub(crate) fn close_waits(
        turns: Option<Turns>,
        seen: &mut Option<(u64, Instant)>,
        now: Instant,
    ) -> bool {
        let Some(turns) = turns else {
            return false;
        };
        // A hang-up seen in the middle of a turn (a request's poll) may be newer
        // than the turn's reading of the connections: the next turn's does not
        // count, the one after does.
        let (turn, since) = *seen.get_or_insert((turns.turn + 1, now));
        !(turns.drained > turn || now - since >= CLOSE_WAIT_MAX)
    }
}

impl Sockets {
    /// A turn of the event loop begins its poll; `drained`: it read every
    /// control connection to its end first.
    pub(crate) fn begin_turn(&mut self, drained: bool) {
        let t = self.turns.get_or_insert_default();
        t.turn += 1;
        if drained {
            t.drained = t.turn;
        }
    }

    /// An empty table.
    pub fn new(cfg: SocketConfig) -> Self {
        Sockets {
            turns: None,
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            by_inode: HashMap::new(),
            tombstones: HashMap::new(),
            tomb_order: VecDeque::new(),
            new_standins: Vec::new(),
            cfg,
            ids: Vec::new(),
            next_cookie: 1,
            unpaired_live: 0,
            udp_live: 0,
            udp_ids: Vec::new(),
            icmp_live: 0,
            raw_live: 0,
            tcp: tcp::Table::new(),
            udp: udp::Table::new(),
            icmp: icmp::Table::new(),
            raw: raw::Table::default(),
        }
    }

    pub(crate) fn insert(&mut self, mut s: Socket) -> SocketId {
        s.cookie = self.next_cookie;
        self.next_cookie += 1;
        let inode = s
            .standin
            .as_ref()
            .map(|si| si.inode)
            .or(s.unpaired.as_ref().map(|u| u.inode));
        let has_standin = s.standin.is_some();
        let unpaired = s.unpaired.is_some();
        self.live += 1;
        self.count_kind(s.kind(), 1);
        let tcp = s.kind() == Kind::Tcp;
        let id = match self.free.pop() {
            Some(i) => {
                let slot = &mut self.slots[i as usize];
                slot.val = Some(s);
                SocketId {
                    index: i,
                    generation: slot.generation,
                }
            }
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    val: Some(s),
                });
                SocketId {
                    index: (self.slots.len() - 1) as u32,
                    generation: 0,
                }
            }
        };
        if let Some(ino) = inode {
            self.by_inode.insert(ino, id);
        }
        if has_standin {
            self.new_standins.push(id);
        }
        if unpaired {
            self.unpaired_live += 1;
        }
        if tcp {
            self.tcp.turn.again(id);
        }
        if self.get(id).is_some_and(|s| s.kind() == Kind::Udp) {
            self.udp_ids.push(id);
        }
        id
    }

    pub(crate) fn get(&self, id: SocketId) -> Option<&Socket> {
        self.slots
            .get(id.index as usize)
            .filter(|s| s.generation == id.generation)
            .and_then(|s| s.val.as_ref())
    }

    pub(crate) fn get_mut(&mut self, id: SocketId) -> Option<&mut Socket> {
        self.slots
            .get_mut(id.index as usize)
            .filter(|s| s.generation == id.generation)
            .and_then(|s| s.val.as_mut())
    }

    /// Keeps the UDP, ICMP and raw counts (a socket's kind is fixed when it is
    /// made).
    fn count_kind(&mut self, kind: Kind, by: isize) {
        match kind {
            Kind::Udp => self.udp_live = self.udp_live.wrapping_add_signed(by),
            Kind::Icmp => self.icmp_live = self.icmp_live.wrapping_add_signed(by),
            Kind::Raw => self.raw_live = self.raw_live.wrapping_add_signed(by),
            _ => {}
        }
    }

    /// The live UDP sockets, in the reusable id buffer (give it back with
    /// [`Sockets::give_back_ids`]).
    pub(crate) fn take_udp_ids(&mut self) -> Vec<SocketId> {
        let mut ids = std::mem::take(&mut self.ids);
        ids.clear();
        ids.extend_from_slice(&self.udp_ids);
        ids
    }

    /// Whether any UDP socket is open.
    pub(crate) fn any_udp(&self) -> bool {
        self.udp_live > 0
    }

    /// Whether any ICMP socket is open.
    pub(crate) fn any_icmp(&self) -> bool {
        self.icmp_live > 0
    }

    /// Whether any raw socket is open.
    pub(crate) fn any_raw(&self) -> bool {
        self.raw_live > 0
    }

    /// Removes a socket from the table (its smoltcp socket and binding are the
    /// caller's business). The stand-in, if any, is closed; if `tomb`, later calls on
    /// its inode are answered from a tombstone.
    pub(crate) fn remove(&mut self, id: SocketId, tomb: bool) -> Option<Socket> {
        let slot = self
            .slots
            .get_mut(id.index as usize)
            .filter(|s| s.generation == id.generation)?;
        let s = slot.val.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(id.index);
        self.live -= 1;
        self.count_kind(s.kind(), -1);
        if s.kind() == Kind::Udp {
            self.udp_ids.retain(|&x| x != id);
        }
        if let Proto::Udp(u) = &s.proto
            && u.inbox.has_ring()
        {
            self.udp.rings -= 1;
        }
        if let Some(u) = &s.unpaired {
            self.by_inode.remove(&u.inode);
            self.unpaired_live -= 1;
        }
        if let Some(si) = &s.standin {
            self.by_inode.remove(&si.inode);
            if tomb {
                self.add_tombstone(
                    si.inode,
                    Tombstone {
                        domain: s.domain,
                        local: s.local,
                        error: s.error,
                    },
                );
            }
        }
        Some(s)
    }

    fn add_tombstone(&mut self, inode: u64, t: Tombstone) {
        if self.tomb_order.len() >= TOMBSTONES
            && let Some(old) = self.tomb_order.pop_front()
        {
            self.tombstones.remove(&old);
        }
        self.tomb_order.push_back(inode);
        self.tombstones.insert(inode, t);
    }

    /// The socket whose stand-in has this inode.
    pub(crate) fn by_inode(&self, inode: u64) -> Option<SocketId> {
        self.by_inode.get(&inode).copied()
    }

    /// What remains of a socket the stack closed under a program.
    pub(crate) fn tombstone(&mut self, inode: u64) -> Option<&mut Tombstone> {
        self.tombstones.get_mut(&inode)
    }

    /// Ids of all live sockets, into a reused buffer.
    pub(crate) fn take_ids(&mut self) -> Vec<SocketId> {
        let mut ids = std::mem::take(&mut self.ids);
        ids.clear();
        ids.extend(
            self.slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.val.is_some())
                .map(|(i, s)| SocketId {
                    index: i as u32,
                    generation: s.generation,
                }),
        );
        ids
    }

    pub(crate) fn give_back_ids(&mut self, ids: Vec<SocketId>) {
        self.ids = ids;
    }

    /// Number of live sockets (orphans excluded).
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether no socket lives.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stand-ins created since the last call, for the event loop to watch: the slot
    /// index (its token) and the stack's fd.
    pub(crate) fn drain_new_standins(&mut self, mut f: impl FnMut(usize, RawFd)) {
        let ids = std::mem::take(&mut self.new_standins);
        for (i, id) in ids.iter().enumerate() {
            // A socket made and given a new stand-in in one turn is listed twice.
            if ids[..i].contains(id) {
                continue;
            }
            if let Some(s) = self.get(*id)
                && let Some(si) = s.standin.as_ref()
            {
                f(id.key(), si.fd.as_raw_fd());
                // A new stand-in may hold bytes already: served next turn.
                if matches!(s.proto, Proto::Tcp(_)) {
                    self.tcp.turn.again(*id);
                }
            }
        }
        self.new_standins = ids;
        self.new_standins.clear();
    }

    /// Gives socket `id` a new stand-in (the program gets its other end in place of
    /// the old one), keeping what is known of where the program holds it.
    pub(crate) fn replace_standin(&mut self, id: SocketId, mut new: StandIn) {
        let Some(s) = self.get_mut(id) else { return };
        let old = s.standin.take();
        if let Some(old) = &old {
            new.owner = old.owner;
        }
        let ino = new.inode;
        s.standin = Some(new);
        if let Some(old) = old {
            self.by_inode.remove(&old.inode);
        }
        self.by_inode.insert(ino, id);
        self.new_standins.push(id);
    }

    /// Readiness of a stand-in reported by the event loop (edge-triggered: only
    /// `true` values are news). `key` is what [`Sockets::drain_new_standins`]
    /// registered it with ([`SocketId::key`]); an event for a socket gone since is
    /// dropped.
    pub(crate) fn standin_event(
        &mut self,
        key: usize,
        (readable, writable, hup, urgent): (bool, bool, bool, bool),
    ) {
        let index = key & 0xffff_ffff;
        let generation = (key >> 32) & 0xffff;
        if let Some(slot) = self
            .slots
            .get_mut(index)
            .filter(|s| s.generation as usize & 0xffff == generation)
            && let Some(s) = slot.val.as_mut()
            && let Some(si) = s.standin.as_mut()
        {
            si.readable |= readable || hup || urgent;
            si.writable |= writable;
            let news = readable || writable || hup || urgent;
            if news && !si.news && matches!(s.proto, Proto::Tcp(_)) {
                self.tcp.turn.woken(SocketId {
                    index: index as u32,
                    generation: slot.generation,
                });
            }
            si.news |= news;
            si.hup |= hup;
            si.oob_pending |= urgent;
        }
    }

    /// Notices stand-ins whose program closed them since the event loop last looked
    /// (their hang-up may still be queued). `close` is synchronous on Linux — a port
    /// it frees is free when it returns — so a `bind` that finds its port taken
    /// looks here before failing. Returns whether any closed stand-in waits to be
    /// processed (found now, or flagged by the event loop in this turn).
    pub(crate) fn notice_hangups(&mut self) -> bool {
        let mut any = self.notice_unpaired_closes(true);
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let Some(s) = slot.val.as_mut() else { continue };
            let tcp = matches!(s.proto, Proto::Tcp(_));
            let Some(si) = s.standin.as_mut() else {
                continue;
            };
            if !si.hup && sys::hung_up(si.fd.as_fd()) {
                si.hup = true;
                si.readable = true;
                if tcp {
                    self.tcp.turn.woken(SocketId {
                        index: index as u32,
                        generation: slot.generation,
                    });
                }
            }
            any |= si.hup;
        }
        any
    }

    /// Whether any socket has an unpaired stand-in.
    pub(crate) fn unpaired_live(&self) -> bool {
        self.unpaired_live > 0
    }

    /// Notices unpaired stand-ins (TCP sockets before `connect` or `listen`) that
    /// the program closed. Returns whether any is.
    ///
    /// A named one is closed when its name is free (a hash lookup in the kernel).
    /// One whose name is in use is looked for in the kernel's list of unix
    /// sockets by its inode and cookie, at most every [`tcp::VERIFY_EVERY`] (every
    /// [`tcp::DUMP_EVERY`] when `urgent`: a port or the socket limit ran short):
    /// the name may be another user's, bound the moment it came free, and
    /// counting the closed socket for ever would let that user fill
    /// `--max-sockets`. An unnamed one (a spliced end) is looked for in the list
    /// each time, which is read at most every [`tcp::DUMP_EVERY`]. One the list
    /// lacks is looked up alone before it counts as closed ([`tcp::gone`]). When
    /// the list cannot be read, none is taken for closed by it.
    pub(crate) fn notice_unpaired_closes(&mut self, urgent: bool) -> bool {
        let mut any = false;
        let dump_due = self
            .tcp
            .last_dump
            .is_none_or(|t| t.elapsed() >= tcp::DUMP_EVERY);
        let verify_every = if urgent {
            tcp::DUMP_EVERY
        } else {
            tcp::VERIFY_EVERY
        };
        let verify_due = self
            .tcp
            .last_verify
            .is_none_or(|t| t.elapsed() >= verify_every);
        let mut kernel: Option<Option<std::collections::HashSet<sys::SocketIdentity>>> =
            (!dump_due).then_some(None);
        let mut verified = false;
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some(u) = slot.val.as_mut().and_then(|s| s.unpaired.as_mut()) else {
                continue;
            };
            if u.hup {
                any = true;
                continue;
            }
            let closed = if u.closed() {
                true
            } else if u.is_named() && !verify_due {
                false
            } else {
                verified |= u.is_named();
                let live =
                    kernel.get_or_insert_with(|| tcp::kernel_unix_sockets(&mut self.tcp.last_dump));
                live.as_ref().is_some_and(|l| tcp::gone(l, u.identity()))
            };
            if closed {
                u.hup = true;
                // Served next turn (a spliced end is not served otherwise).
                self.tcp.turn.again(SocketId {
                    index: i as u32,
                    generation: slot.generation,
                });
            }
            any |= u.hup;
        }
        // Looked up only if the list was read now (it may not have been due).
        if verified && kernel.is_some_and(|k| k.is_some()) {
            self.tcp.last_verify = Some(std::time::Instant::now());
        }
        any
    }

    /// The socket's domain.
    pub fn domain(&self, id: SocketId) -> Option<Domain> {
        self.get(id).map(|s| s.domain)
    }

    /// The socket's type.
    pub(crate) fn kind(&self, id: SocketId) -> Option<Kind> {
        self.get(id).map(Socket::kind)
    }

    /// Runs everything that happens between polls: listeners, handshakes, the data
    /// pumps, orphans. Returns whether anything moved.
    pub fn service(&mut self, ifs: &mut Interfaces, now: Instant) -> bool {
        let tcp = self.service_tcp(ifs, now);
        let udp = self.service_udp(ifs);
        let icmp = self.service_icmp(ifs) | self.service_raw(ifs);
        tcp || udp || icmp
    }
}

impl crate::iface::egress::LaterFields for Sockets {
    fn v6_fields(&mut self, iface: crate::iface::IfaceId, ip: &[u8]) -> IpFields {
        self.udp.v6_leaving(iface, ip)
    }

    fn urgent_pending(&self) -> bool {
        Sockets::urgent_pending(self)
    }

    fn tcp_leaving(&mut self, ip: &mut [u8]) {
        self.urgent_leaving(ip);
    }
}

impl Admission for Sockets {
    /// Every received packet passes here (the ingress hook): ICMP errors go to the
    /// datagram sockets they concern, TCP SYNs to the listen backlog.
    fn admit(&mut self, iface: crate::iface::IfaceId, pkt: &PacketInfo) -> Verdict {
        if let Some(e) = &pkt.icmp_error {
            if e.orig_proto == smoltcp::wire::IpProtocol::Udp {
                self.udp_icmp_error(e);
            }
            return Verdict::Accept;
        }
        if pkt.urgent.is_some() {
            self.urgent_arrived(pkt);
        }
        self.tcp_admit(iface, pkt)
    }
}
