//! TCP with Linux semantics over smoltcp.
//!
//! # Theory of operation
//!
//! A TCP socket of the table is in one of four states ([`TcpState`]):
//!
//! ```text
//!            bind / setsockopt                         connect
//!  Closed ───────────────────▶ Closed (bound) ──────────────────▶ Connecting
//!    │  ▲                           │ listen                        │   │
//!    │  └── failed(errno) ◀─────────┼───────── RST / timeout ───────┘   │ handshake done
//!    │                              ▼                                   ▼
//!    └──────── listen ─────────▶ Listening ── accepted connection ─▶ Connected
//!                                                                       │ program closes
//!                                                                       ▼
//!                                                                     orphan ─▶ gone
//! ```
//!
//! **Listening.** smoltcp has no backlog: a listening smoltcp socket *becomes* the
//! connection, and a SYN that no socket takes is answered with a RST. A [`Listener`]
//! therefore owns several smoltcp sockets:
//!
//! - *armed*: listening on one exact local address (so that a wildcard listener of
//!   one family never takes a SYN of the other, and `getsockname` of an accepted
//!   socket is exact), on the interface where that address lives;
//! - *embryos*: armed sockets that took a SYN and wait for the handshake's ACK;
//! - *ready*: established connections, already sockets of the table, waiting for
//!   `accept()` (embedding API) or being handed to the listener's stand-in;
//! - *in flight*: handed to the stand-in, not yet taken by the program's `accept()`
//!   (measured with `SIOCOUTQ` on the stand-in: a fixed amount of kernel memory per
//!   record, measured at start-up by [`measure_record_truesize`]).
//!
//! Every received SYN passes [`Sockets::tcp_admit`] first (the ingress hook). The load of
//! a listener is embryos + ready + in flight; Linux accepts `backlog + 1`. A SYN
//! beyond that is dropped (the client retransmits it, as with a full Linux accept
//! queue); a SYN that finds an unclaimed armed socket for its address is let through;
//! otherwise the SYN is deferred: held until the socket layer has armed a socket for
//! its address, then offered again. An address that received a SYN stays *hot*: one
//! spare socket is kept armed there. A retransmitted SYN of an embryo is dropped (the
//! embryo retransmits its SYN-ACK itself), so that it cannot reach a newer armed
//! socket and open a second connection on the same 4-tuple.
//!
//! **Connecting.** `connect` picks the interface and source address by route,
//! allocates an ephemeral port unless bound, and returns `EINPROGRESS`. The state is
//! then followed after every poll: established → `Connected`; closed before the
//! deadline (`TCP_SYNCNT`: 127 s by default) → `ECONNREFUSED` (a RST); past it →
//! `ETIMEDOUT`. A failed socket keeps its errno for `SO_ERROR` and repeats it on a
//! later `connect` (Linux would retry; POSIX leaves it unspecified).
//!
//! **Connected.** The pump ([`crate::standin`]) moves bytes both ways. The peer's
//! FIN becomes EOF for the program once the bytes before it are delivered; a reset
//! closes the stack's end of the stand-in and leaves a tombstone answering
//! `SO_ERROR` = `ECONNRESET`. When the program closes: with unread bytes (either in
//! its stand-in or still in smoltcp), or with `SO_LINGER` {1, 0}, the connection is
//! aborted with a RST; otherwise the rest of its bytes and a FIN follow.
//!
//! **Orphans.** A connection whose program is gone stays, keeping its port, until
//! its close completes; data arriving for it gets a RST; `FIN_WAIT_2` is cut after
//! `TCP_LINGER2`. It goes as soon as it reaches `TIME_WAIT`: its smoltcp socket
//! (and its 2 MiB of buffers) and its port are freed at once, where Linux keeps a
//! small `TIME_WAIT` record for 60 s. Kept whole, every closed connection would
//! hold its buffers and, on `lo`, block its 4-tuple: a client that reconnects
//! from a port whose old connection still waits has its SYN dropped until the
//! wait ends (15 s of SYN retries) — Linux instead lets a new SYN end a
//! `TIME_WAIT`. The difference shows only as a port reusable sooner.
//!
//! **The table.** What TCP keeps beyond its sockets is its own [`Table`]: the port
//! bindings (of orphans too), the listeners of every port (for the ingress hook),
//! the orphans, and the state of the buffer budget the listeners read.

use super::addr::{self, Target};
use super::errno::*;
use super::options;
use super::ports::{BindState, BindingId, PortTable, Reuse};
use super::{LazyBuf, Proto, Socket, SocketId, Sockets};
use crate::iface::ingress::{PacketInfo, Verdict};
use crate::iface::shards::SocketHandle;
use crate::iface::{IfaceId, Interfaces, LO};
use crate::standin::{FILLER_CHUNK, Owner, StandIn};
use crate::sys;
use netcell_proto::{AcceptRecord, RECORD_SOCKADDR};
use smoltcp::socket::tcp::{self, State};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint, IpProtocol};
use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};

mod api;
mod handover;
mod listen;
mod orphan;
mod pump;
mod splice;
#[cfg(test)]
mod tests;
mod urgent;

pub(crate) use listen::Listener;
use listen::measure_record_truesize;
use orphan::Orphan;
pub(crate) use splice::{DUMP_EVERY, VERIFY_EVERY, gone, kernel_unix_sockets};

/// Linux's `net.core.somaxconn`.
pub const SOMAXCONN: usize = 4096;

/// TCP's part of the socket table (see the module docs).
pub(crate) struct Table {
    /// Port bindings of TCP sockets and orphans.
    ports: PortTable,
    /// Port → listeners on it.
    listeners: HashMap<u16, Vec<SocketId>>,
    /// Connections whose program is gone, finishing their close.
    orphans: Vec<Orphan>,
    /// Where the bytes a program writes to a socket without a connection go to be
    /// dropped: made at the first such write.
    scratch: LazyBuf,
    /// The last buffer allocation found the budget spent: SYNs are dropped until
    /// one succeeds again.
    buffers_spent: Cell<bool>,
    /// Connections spliced so far (see [`splice`]).
    spliced: u64,
    /// Whether the kernel's list of unix sockets can be read (splicing needs
    /// it): `None` until first asked.
    diag_works: Option<bool>,
    /// When that list was last read (at most every [`splice::DUMP_EVERY`]).
    pub(super) last_dump: Option<std::time::Instant>,
    /// When named unpaired stand-ins were last looked up in that list (see
    /// [`Sockets::notice_unpaired_closes`]).
    pub(super) last_verify: Option<std::time::Instant>,
    /// Spliced ends made lately, with when: looked at often (see
    /// [`splice`]).
    check_soon: Vec<(SocketId, Instant)>,
    /// When they are looked at next.
    next_check: Option<Instant>,
    /// When they were last looked at, and how long that reading took.
    last_check: Option<(Instant, std::time::Duration)>,
    /// Kernel memory accounting of one accept record in flight (see
    /// [`measure_record_truesize`]).
    record_truesize: usize,
    /// When the event loop next looks for unpaired stand-ins the program closed.
    pub(crate) next_sweep: Option<Instant>,
    /// Host sockets handed to programs by the uplink's fast path.
    handed: handover::HandedTable,
    /// Urgent bytes on their way (see [`urgent`]).
    urgent: urgent::Urgent,
    /// Which sockets a turn serves (see [`pump`]).
    pub(crate) turn: pump::TurnSet,
    /// Connects whose filler waits for the end of the poll (see
    /// [`Sockets::settle_connects`]).
    unsettled: Vec<SocketId>,
}

impl Table {
    pub(crate) fn new() -> Self {
        Table {
            ports: PortTable::new(crate::iface::random_u64() | 1),
            listeners: HashMap::new(),
            orphans: Vec::new(),
            scratch: LazyBuf::default(),
            buffers_spent: Cell::new(false),
            spliced: 0,
            diag_works: None,
            last_dump: None,
            last_verify: None,
            check_soon: Vec::new(),
            next_check: None,
            last_check: None,
            record_truesize: measure_record_truesize(),
            unsettled: Vec::new(),
            next_sweep: None,
            handed: Default::default(),
            urgent: urgent::Urgent::default(),
            turn: pump::TurnSet::default(),
        }
    }

    /// Updates the sharing flags of a binding (`SO_REUSEADDR`/`SO_REUSEPORT` set
    /// after `bind`).
    pub(crate) fn set_reuse(&mut self, (port, b): (u16, BindingId), reuse: Reuse) {
        self.ports.set_reuse(port, b, reuse);
    }
}

/// The TCP state of a socket.
pub(crate) enum TcpState {
    /// Fresh, bound, or after a failed connect (`failed` then holds why).
    Closed {
        failed: Option<ConnectError>,
    },
    Listening(Box<Listener>),
    Connecting(Conn),
    Connected(Conn),
    /// Both ends in the container, one kernel `AF_UNIX` pair (see [`splice`]).
    Spliced(splice::Splice),
}

/// A smoltcp connection and what the socket layer knows about it.
pub(crate) struct Conn {
    pub(crate) iface: IfaceId,
    pub(crate) handle: SocketHandle,
    pub(crate) remote: SocketAddr,
    /// Connect deadline.
    pub(crate) deadline: Instant,
    /// We sent our FIN (the program shut its write side).
    pub(crate) we_closed: bool,
    /// The peer's FIN arrived.
    pub(crate) remote_fin: bool,
    /// Embedding API: a reset was reported once by `recv`.
    pub(crate) reset_reported: bool,
    /// Embedding API: `shutdown(SHUT_RD)`.
    pub(crate) rd_shut: bool,
    /// The handshake this socket's `connect` started ended, and no `connect` call
    /// has returned success for it yet: the next `connect` returns 0 (as Linux
    /// does, for a restarted or repeated call), later ones `EISCONN`.
    pub(crate) unreported: bool,
}

pub(crate) fn sock(
    ifs: &mut Interfaces,
    iface: IfaceId,
    h: SocketHandle,
) -> &mut tcp::Socket<'static> {
    ifs.get_mut(iface).sockets.touch(h);
    sock_quiet(ifs, iface, h)
}

/// The TCP timestamp clock (RFC 7323): milliseconds of the wall clock, read once
/// per process and advanced by the monotonic clock from there, so that it says
/// nothing about the uptime and goes on rising from one container (one netcell
/// process) to the next. A random start per process would not do: a container
/// that reuses the port pair a previous one left in a kernel peer's `TIME_WAIT`
/// would send an older timestamp, and the peer drops such a SYN (PAWS) — measured:
/// 300 connections a second instead of 5 000 when consecutive containers connect
/// to one server. (Linux keeps its clock per address pair for the same reason.)
/// What that costs: every peer sees the host's clock (Linux hides it behind a
/// random offset per address pair), and a wall clock set back between two
/// containers brings those dropped SYNs back.
///
/// # Why timestamps
///
/// Linux sends them and its peers rely on them: a kernel that holds a port pair
/// in `TIME_WAIT` accepts a new SYN on that pair at once when the SYN's timestamp
/// is newer (`tcp_timewait_state_process`); without one, only when its sequence
/// number is beyond the old connection's, a coin toss with random initial
/// sequence numbers — the other half were answered with an ACK and their
/// connect waited a second for its retransmitted SYN. They also guard long fast
/// transfers against wrapped sequence numbers (PAWS). smoltcp keeps them only
/// when the peer's SYN carries them.
pub(crate) fn tsval() -> u32 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static ORIGIN: OnceLock<(Instant, u32)> = OnceLock::new();
    let (start, wall_ms) = ORIGIN.get_or_init(|| {
        let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        (Instant::now(), wall.map_or(0, |d| d.as_millis() as u32))
    });
    wall_ms.wrapping_add(start.elapsed().as_millis() as u32)
}

/// [`sock`] for the pump, which tells the shard itself when it changed something
/// (see [`crate::iface::shards`]: a connection looked at every turn must not make
/// its shard due every turn).
pub(crate) fn sock_quiet(
    ifs: &mut Interfaces,
    iface: IfaceId,
    h: SocketHandle,
) -> &mut tcp::Socket<'static> {
    ifs.get_mut(iface)
        .sockets
        .get_mut_quiet::<tcp::Socket<'static>>(h)
}

/// The shard of a smoltcp socket's handle (see [`crate::iface::shards`]).
pub(super) fn shard_of(h: SocketHandle) -> usize {
    h.shard()
}

/// Takes a socket out of its interface; a closed one is kept for a listener's
/// next connection (see [`crate::iface::recycle`]).
pub(super) fn remove_sock(ifs: &mut Interfaces, iface: IfaceId, h: SocketHandle) {
    if let smoltcp::socket::Socket::Tcp(t) = ifs.get_mut(iface).sockets.remove(h) {
        ifs.recycled()
            .borrow_mut()
            .put(t, std::time::Instant::now());
    }
}

pub(super) fn to_ip(a: IpAddr) -> IpAddress {
    a.into()
}

pub(super) fn is_loopback(a: &IpAddr) -> bool {
    a.is_loopback()
}

impl Sockets {
    /// A new smoltcp socket with the buffers `o` asks for, as far as the
    /// container's buffer budget allows ([`super::budget`]); `None` when it is spent.
    /// For a listener (`passive`: armed for a SYN) it may be a closed one used
    /// again; a `connect`'s is always new (see [`crate::iface::recycle`]).
    fn new_smol(
        &self,
        ifs: &Interfaces,
        o: &options::Options,
        passive: bool,
    ) -> Option<tcp::Socket<'static>> {
        let want = (
            o.rx_buffer(self.cfg.tcp_rx_buffer),
            o.tx_buffer(self.cfg.tcp_tx_buffer),
        );
        let limit = self.cfg.max_buffer_memory;
        let used = super::budget::in_use(ifs);
        let Some((rx, tx)) = super::budget::tcp_share(want, used, limit) else {
            self.tcp.buffers_spent.set(true);
            super::budget::log_limit(format_args!(
                "{used} of {limit} bytes of socket buffers in use (--max-buffer-memory): \
                 new TCP connections fail with ENOBUFS"
            ));
            return None;
        };
        self.tcp.buffers_spent.set(false);
        let exact = o.rcvbuf.is_some() || o.sndbuf.is_some();
        let reused = passive
            .then(|| {
                ifs.recycled()
                    .borrow_mut()
                    .take(rx, tx, exact, limit.saturating_sub(used))
            })
            .flatten();
        let mut s = reused.unwrap_or_else(|| {
            super::budget::make_room(ifs, rx + tx, limit);
            let rx = tcp::SocketBuffer::new(vec![0u8; rx]);
            let tx = tcp::SocketBuffer::new(vec![0u8; tx]);
            tcp::Socket::new(rx, tx)
        });
        // Set here, at the start: smoltcp drops it when the peer's SYN has no
        // timestamp, and a later `apply` must not turn it back on.
        s.set_tsval_generator(Some(tsval));
        o.apply(&mut s);
        Some(s)
    }

    pub(crate) fn reuse(s: &Socket) -> Reuse {
        Reuse {
            addr: s.opts.reuseaddr,
            port: s.opts.reuseport,
        }
    }

    fn dual(s: &Socket, ip: &IpAddr) -> bool {
        s.domain == addr::Domain::Inet6
            && matches!(ip, IpAddr::V6(v6) if v6.is_unspecified())
            && !s.opts.v6only
    }

    /// Whether the handshake a `connect` started has ended, without reporting it:
    /// `Some(true)` connected (and not yet reported), `Some(false)` failed, `None`
    /// still connecting or nothing to report. A front end that answers a blocking
    /// `connect` itself (the seccomp supervisor) asks this, answers, and only once
    /// the answer reached the program marks it reported
    /// ([`Sockets::connect_reported`]): an answer lost to a signal leaves the
    /// restarted call to report it, as Linux's restart does.
    pub(crate) fn connect_outcome(&self, id: SocketId) -> Option<bool> {
        match &self.get(id)?.proto {
            Proto::Tcp(TcpState::Connected(c)) if c.unreported => Some(true),
            Proto::Tcp(TcpState::Spliced(sp)) if sp.unreported => Some(true),
            Proto::Tcp(TcpState::Closed { failed: Some(_) }) => Some(false),
            _ => None,
        }
    }

    /// Ends what [`Sockets::connect`] left for the end of the poll that follows
    /// it ([`crate::Stack::poll`] calls this) when it connected to a listener of
    /// the container: a connect still under way makes its stand-in unwritable
    /// now (the filler; see `standin`), one that finished or failed in that poll
    /// needs none — usually the case, so the filler is neither written nor read
    /// back: two system calls of 64 KiB fewer per connection.
    pub(crate) fn settle_connects(&mut self) {
        while let Some(id) = self.tcp.unsettled.pop() {
            let Some(s) = self.get_mut(id) else { continue };
            let connecting = matches!(s.proto, Proto::Tcp(TcpState::Connecting(_)));
            let Some(si) = s.standin.as_mut() else {
                continue;
            };
            let Some(end) = si.fill_later.take() else {
                continue;
            };
            if connecting && let Err(e) = si.fill(end.as_fd()) {
                crate::warn_limited!("tcp: cannot fill stand-in of socket {}: {e}", id.index());
            }
        }
    }

    /// Marks a finished connect reported (see [`Sockets::connect_outcome`]).
    pub(crate) fn connect_reported(&mut self, id: SocketId) {
        match self.get_mut(id).map(|s| &mut s.proto) {
            Some(Proto::Tcp(TcpState::Connected(c))) => c.unreported = false,
            Some(Proto::Tcp(TcpState::Spliced(sp))) => sp.unreported = false,
            _ => {}
        }
    }

    /// `bind(2)` of a TCP socket.
    pub(crate) fn tcp_bind(
        &mut self,
        ifs: &Interfaces,
        id: SocketId,
        target: Target,
    ) -> Result<(), BindError> {
        let s = self.get(id).ok_or(BindError::Invalid)?;
        if s.binding.is_some()
            || s.local.is_some()
            || !matches!(s.proto, Proto::Tcp(TcpState::Closed { .. }))
        {
            return Err(BindError::Invalid);
        }
        let a = match target {
            Target::Addr(a) => a,
            Target::Unspec => SocketAddr::new(s.domain.any(), 0),
        };
        match (s.domain, a) {
            (addr::Domain::Inet, SocketAddr::V6(_)) => return Err(BindError::WrongFamily),
            (addr::Domain::Inet6, SocketAddr::V4(_)) if s.opts.v6only => {
                return Err(BindError::Invalid);
            }
            _ => {}
        }
        let ip = a.ip();
        if !ip.is_unspecified() && !ifs.is_local(&to_ip(ip)) && !s.opts.freebind {
            return Err(BindError::AddrNotAvailable);
        }
        let dual = Self::dual(s, &ip);
        let reuse = Self::reuse(s);
        let bind_no_port = s.opts.bind_no_port;
        let binding = if a.port() == 0 && bind_no_port {
            None
        } else {
            // Linux's TCP answers EADDRINUSE also for an exhausted ephemeral range.
            Some(
                self.tcp
                    .ports
                    .take(a.port(), ip, dual, reuse)
                    .map_err(|_| BindError::AddrInUse)?,
            )
        };
        let s = self.get_mut(id).ok_or(BindError::Invalid)?;
        s.local = Some(SocketAddr::new(ip, binding.map_or(0, |b| b.0)));
        s.binding = binding;
        Ok(())
    }

    /// `listen(2)` of a TCP socket.
    pub(crate) fn tcp_listen(
        &mut self,
        id: SocketId,
        backlog: i32,
        program_end: Option<&OwnedFd>,
    ) -> Result<(), ListenError> {
        let backlog = if backlog < 0 {
            SOMAXCONN
        } else {
            (backlog as usize).min(SOMAXCONN)
        };
        let s = self.get_mut(id).ok_or(ListenError::InvalidState)?;
        match &mut s.proto {
            Proto::Tcp(TcpState::Listening(l)) => {
                l.backlog = backlog;
                return Ok(());
            }
            Proto::Tcp(TcpState::Connecting(_) | TcpState::Connected(_) | TcpState::Spliced(_)) => {
                return Err(ListenError::InvalidState);
            }
            Proto::Tcp(TcpState::Closed { .. }) => {}
            _ => return Err(ListenError::NotSupported),
        }
        // Accept records go into the program's end: pair it first. A listener
        // takes no bytes: its end is filled and shut for writing, so that the
        // program's sends fail with EPIPE and poll shows no POLLOUT, as on Linux.
        let was_unpaired = self.get(id).is_some_and(|s| s.unpaired.is_some());
        self.pair(id, program_end)
            .map_err(|_| ListenError::BadStandIn)?;
        if was_unpaired
            && let (Some(si), Some(end)) = (
                self.get_mut(id).and_then(|s| s.standin.as_mut()),
                program_end,
            )
        {
            let _ = si.fill(end.as_fd());
            if sys::shutdown(si.fd.as_fd(), libc::SHUT_RD).is_ok() {
                si.shut_for_listening = true;
                si.readable = false;
            }
            si.filler = 0;
        }
        let s = self.get_mut(id).ok_or(ListenError::InvalidState)?;
        let (port, bid) = match s.binding {
            Some(b) => b,
            None => {
                let ip = s.local.map_or(s.domain.any(), |a| a.ip());
                let dual = Self::dual(s, &ip);
                let reuse = Self::reuse(s);
                let (p, b) = self
                    .tcp
                    .ports
                    .bind_ephemeral(ip, dual, reuse)
                    .ok_or(ListenError::AddrInUse)?;
                let s = self.get_mut(id).ok_or(ListenError::InvalidState)?;
                s.binding = Some((p, b));
                s.local = Some(SocketAddr::new(ip, p));
                (p, b)
            }
        };
        if !self.tcp.ports.listen(port, bid) {
            return Err(ListenError::AddrInUse);
        }
        let s = self.get_mut(id).ok_or(ListenError::InvalidState)?;
        s.proto = Proto::Tcp(TcpState::Listening(Box::new(Listener::new(backlog))));
        s.autobound = false;
        self.tcp.listeners.entry(port).or_default().push(id);
        log::debug!(
            "tcp: socket {} listening on {:?}, backlog {backlog}",
            id.index(),
            self.get(id).and_then(|s| s.local)
        );
        Ok(())
    }

    /// Pairs the unpaired stand-in of `id`, if it has one, through the stack's
    /// intake ([`crate::standin::pair`]): `program_end` is the stack's copy of the
    /// program's end, which the front end passes with `connect` and `listen`.
    /// Nothing to do for a socket already paired or without a stand-in.
    pub(super) fn pair(
        &mut self,
        id: SocketId,
        program_end: Option<&OwnedFd>,
    ) -> Result<(), std::io::Error> {
        let Some(u) = self.get(id).and_then(|s| s.unpaired.as_ref()) else {
            return Ok(());
        };
        let Some(end) = program_end else {
            return Err(std::io::Error::from_raw_os_error(libc::EBADF));
        };
        if !matches!(sys::inode(end.as_fd()), Ok((ino, _)) if ino == u.inode) {
            return Err(std::io::Error::from_raw_os_error(libc::EBADF));
        }
        let t = crate::standin::pair(end.as_fd())?;
        let Some(s) = self.get_mut(id) else {
            return Ok(());
        };
        let Some(u) = s.unpaired.take() else {
            return Ok(());
        };
        let mut si = StandIn::new(t, u.inode);
        si.owner = u.owner;
        s.standin = Some(si);
        self.unpaired_live -= 1;
        self.new_standins.push(id);
        Ok(())
    }

    /// `connect(2)` of a TCP socket. `Err(ConnectError::InProgress)` is the normal answer; the
    /// outcome shows up in the pending error (`SO_ERROR`) and the socket's state after the
    /// next polls. `program_end` is the stand-in the program holds, which this call
    /// makes unwritable until the handshake ends (see [`crate::standin`]).
    ///
    /// A connect after a failed one tries again, as on Linux: the failure is first
    /// reported once (its errno, or `ECONNABORTED` when `SO_ERROR` took it). Its
    /// stand-in can carry nothing more then (the failure shut it), so a new one is
    /// made and returned in `replacement`, for the front end to put in its place.
    pub(crate) fn tcp_connect(
        &mut self,
        ifs: &mut Interfaces,
        id: SocketId,
        target: Target,
        mut program_end: Option<OwnedFd>,
        now: Instant,
        replacement: &mut Option<OwnedFd>,
    ) -> Result<(), ConnectError> {
        let s = self.get_mut(id).ok_or(ConnectError::NoSuchSocket)?;
        match &mut s.proto {
            Proto::Tcp(TcpState::Connecting(_)) => return Err(ConnectError::Already),
            Proto::Tcp(TcpState::Connected(c)) if c.unreported => {
                c.unreported = false;
                return Ok(());
            }
            Proto::Tcp(TcpState::Spliced(sp)) if sp.unreported => {
                sp.unreported = false;
                return Ok(());
            }
            Proto::Tcp(TcpState::Connected(_) | TcpState::Listening(_) | TcpState::Spliced(_)) => {
                return Err(ConnectError::IsConnected);
            }
            Proto::Tcp(TcpState::Closed { failed: Some(e) }) => {
                // Reported by this call (no longer pending for SO_ERROR), or taken by
                // SO_ERROR already; either way the next connect starts afresh.
                let e = if s.error != 0 {
                    *e
                } else {
                    ConnectError::Aborted
                };
                s.error = 0;
                s.proto = Proto::Tcp(TcpState::Closed { failed: None });
                return Err(e);
            }
            Proto::Tcp(TcpState::Closed { failed: None }) => {}
            _ => return Err(ConnectError::Invalid),
        }
        if let Some(host) = self.uplink_connect(ifs, id, target, program_end.as_ref())? {
            *replacement = Some(host);
            return Err(ConnectError::InProgress);
        }
        if let Target::Addr(dst) = target
            && self
                .try_splice(ifs, id, dst, program_end.as_ref())
                .is_some()
        {
            return Err(ConnectError::InProgress);
        }
        if matches!(target, Target::Addr(_)) {
            self.pair(id, program_end.as_ref())
                .map_err(|_| ConnectError::BadStandIn)?;
        }
        let s = self.get(id).ok_or(ConnectError::NoSuchSocket)?;
        if let (Some(si), Some(fd)) = (&s.standin, &program_end) {
            match sys::inode(fd.as_fd()) {
                Ok((ino, _)) if ino == si.inode => {}
                _ => return Err(ConnectError::BadStandIn),
            }
        }
        let dst = match target {
            Target::Unspec => return Ok(()),
            Target::Addr(a) => a,
        };
        if s.standin.as_ref().is_some_and(|si| si.fin_to_app) {
            // A failed connect shut this stand-in: a new one takes its place.
            let (ours, theirs) = sys::stream_pair().map_err(|_| ConnectError::NoBuffers)?;
            let (ino, _) = sys::inode(theirs.as_fd()).map_err(|_| ConnectError::NoBuffers)?;
            self.replace_standin(id, StandIn::new(ours, ino));
            program_end = Some(theirs.try_clone().map_err(|_| ConnectError::NoBuffers)?);
            *replacement = Some(theirs);
        }
        let s = self.get(id).ok_or(ConnectError::NoSuchSocket)?;
        match (s.domain, dst) {
            (addr::Domain::Inet, SocketAddr::V6(_)) => return Err(ConnectError::WrongFamily),
            (addr::Domain::Inet6, SocketAddr::V4(_)) if s.opts.v6only => {
                return Err(ConnectError::NetworkUnreachable);
            }
            _ => {}
        }
        if dst.port() == 0 {
            return Err(ConnectError::Refused);
        }
        let dst_ip = to_ip(dst.ip());
        let local = ifs.is_local(&dst_ip);
        if local {
            self.close_hung_up_listeners(ifs, dst.port());
        }
        let s = self.get(id).ok_or(ConnectError::NoSuchSocket)?;
        let mut route = ifs.route(&dst_ip).ok_or(ConnectError::NetworkUnreachable)?;
        if let Some(dev) = &s.opts.bindtodevice
            && ifs.by_name(dev) != Some(route.iface)
        {
            return Err(ConnectError::NetworkUnreachable);
        }
        if let Some(local) = s.local.filter(|l| !l.ip().is_unspecified()) {
            if is_loopback(&local.ip()) && route.iface != LO {
                return Err(ConnectError::Invalid);
            }
            if local.ip().is_ipv4() != dst.ip().is_ipv4() {
                return Err(ConnectError::NetworkUnreachable);
            }
            route.src = to_ip(local.ip());
        }
        let src_ip: IpAddr = route.src.into();
        let reuse = Self::reuse(s);
        let mut smol = self
            .new_smol(ifs, &s.opts, false)
            .ok_or(ConnectError::NoBuffers)?;
        let timeout = s.opts.connect_timeout();
        let (port, autobound) = match s.binding {
            Some((p, _)) => (p, None),
            None => {
                let (p, b) = self
                    .tcp
                    .ports
                    .bind_ephemeral(src_ip, false, reuse)
                    .ok_or(ConnectError::AddrNotAvailable)?;
                (p, Some(b))
            }
        };
        // The output chain's verdict on the SYN, reported to the program as
        // Linux does (the SYN itself is filtered and counted when it leaves).
        let verdict = ifs.filter().borrow_mut().check_start(
            route.iface,
            crate::filter::rules::Proto::Tcp,
            route.src,
            port,
            dst_ip,
            dst.port(),
            false,
        );
        if let Err(e) = verdict {
            if let Some(b) = autobound {
                self.tcp.ports.release(port, b);
            }
            return Err(if e == libc::EPERM {
                ConnectError::Filtered
            } else {
                ConnectError::Refused
            });
        }
        let local_ep = IpListenEndpoint {
            addr: Some(route.src),
            port,
        };
        if smol
            .connect(
                ifs.get_mut(route.iface).iface.context(),
                IpEndpoint::new(dst_ip, dst.port()),
                local_ep,
            )
            .is_err()
        {
            if let Some(b) = autobound {
                self.tcp.ports.release(port, b);
            }
            return Err(ConnectError::Invalid);
        }
        let handle = ifs.get_mut(route.iface).sockets.add_tcp(smol);
        let s = self.get_mut(id).ok_or(ConnectError::NoSuchSocket)?;
        if let Some(b) = autobound {
            s.binding = Some((port, b));
            s.autobound = true;
        }
        s.local = Some(SocketAddr::new(src_ip, port));
        s.proto = Proto::Tcp(TcpState::Connecting(Conn {
            iface: route.iface,
            handle,
            remote: dst,
            deadline: now + timeout,
            we_closed: false,
            remote_fin: false,
            reset_reported: false,
            rd_shut: false,
            unreported: false,
        }));
        // To a listener of the container, the filler waits for the end of the
        // poll (`settle_connects`): the handshake is usually over by then.
        if let (Some(si), Some(end)) = (s.standin.as_mut(), program_end) {
            if local {
                si.fill_later = Some(end);
                self.tcp.unsettled.push(id);
            } else if let Err(e) = si.fill(end.as_fd()) {
                crate::warn_limited!("tcp: cannot fill stand-in of socket {}: {e}", id.index());
            }
        }
        log::debug!(
            "tcp: socket {} connecting {} -> {dst} on {}",
            id.index(),
            SocketAddr::new(src_ip, port),
            ifs.get(route.iface).name
        );
        Err(ConnectError::InProgress)
    }

    /// `shutdown(2)` of a TCP socket. For a socket with a stand-in, the front end
    /// then shuts the stand-in itself, which orders the FIN after the bytes already
    /// written.
    pub(crate) fn tcp_shutdown(
        &mut self,
        ifs: &mut Interfaces,
        id: SocketId,
        how: i32,
    ) -> Result<(), ShutdownError> {
        if !(libc::SHUT_RD..=libc::SHUT_RDWR).contains(&how) {
            return Err(ShutdownError::BadHow);
        }
        let s = self.get_mut(id).ok_or(ShutdownError::NotConnected)?;
        match &mut s.proto {
            Proto::Tcp(TcpState::Closed { .. }) => Err(ShutdownError::NotConnected),
            Proto::Tcp(TcpState::Listening(_)) => {
                if how != libc::SHUT_WR {
                    self.stop_listening(ifs, id);
                }
                Ok(())
            }
            Proto::Tcp(TcpState::Connecting(c)) => {
                // Linux disconnects a connecting socket.
                remove_sock(ifs, c.iface, c.handle);
                s.proto = Proto::Tcp(TcpState::Closed { failed: None });
                if let Some(si) = s.standin.as_mut() {
                    let mut scratch = [0u8; FILLER_CHUNK];
                    si.drain_filler(&mut scratch);
                }
                Ok(())
            }
            // The front end shuts the program's end itself: the kernel's pair
            // carries the shutdown to the peer.
            Proto::Tcp(TcpState::Spliced(_)) => Ok(()),
            Proto::Tcp(TcpState::Connected(c)) => {
                if s.standin.is_none() {
                    if how != libc::SHUT_RD {
                        sock(ifs, c.iface, c.handle).close();
                        c.we_closed = true;
                    }
                    if how != libc::SHUT_WR {
                        c.rd_shut = true;
                    }
                }
                Ok(())
            }
            _ => Err(ShutdownError::NotConnected),
        }
    }

    /// Closes a socket of the embedding API (a program's socket closes when its
    /// stand-in does).
    pub fn close(&mut self, ifs: &mut Interfaces, id: SocketId, now: Instant) {
        let Some(s) = self.get(id) else { return };
        match &s.proto {
            Proto::Tcp(TcpState::Listening(_)) => {
                self.stop_listening(ifs, id);
                self.drop_socket(ifs, id);
            }
            Proto::Tcp(TcpState::Connected(c)) => {
                let (iface, handle) = (c.iface, c.handle);
                let linger0 = s.opts.linger == Some(0);
                let sk = sock(ifs, iface, handle);
                let rst = linger0 || sk.recv_queue() > 0;
                if rst {
                    sk.abort();
                } else {
                    sk.close();
                }
                self.orphan(id, now, rst);
            }
            _ => self.drop_socket(ifs, id),
        }
    }

    /// Frees a socket that has no connection: its binding and its entry.
    pub(crate) fn drop_socket(&mut self, ifs: &mut Interfaces, id: SocketId) {
        if let Some(s) = self.remove(id, false) {
            if let Proto::Tcp(TcpState::Connecting(c) | TcpState::Connected(c)) = &s.proto {
                remove_sock(ifs, c.iface, c.handle);
            }
            if let Some((p, b)) = s.binding {
                self.tcp.ports.release(p, b);
            }
        }
    }

    /// Resets a connection that holds no port binding of its own (a half-open or
    /// unaccepted connection of a listener): the RST goes out on the next poll.
    fn reset_unbound(
        &mut self,
        ifs: &mut Interfaces,
        iface: IfaceId,
        handle: SocketHandle,
        now: Instant,
    ) {
        sock(ifs, iface, handle).abort();
        self.tcp.orphans.push(Orphan {
            iface,
            handle,
            binding: None,
            since: now,
            linger2: Duration::from_secs(1),
            rst_pending: true,
            reset_when_sent: false,
        });
    }

    /// Fails a connecting socket.
    fn fail(&mut self, ifs: &mut Interfaces, id: SocketId, e: ConnectError) {
        let Some(s) = self.get_mut(id) else { return };
        let Proto::Tcp(TcpState::Connecting(c)) = std::mem::replace(
            &mut s.proto,
            Proto::Tcp(TcpState::Closed { failed: Some(e) }),
        ) else {
            return;
        };
        remove_sock(ifs, c.iface, c.handle);
        s.error = e.errno().raw();
        let release = if s.autobound {
            s.local = None;
            s.autobound = false;
            s.binding.take()
        } else {
            None
        };
        if let Some(si) = s.standin.as_mut() {
            let mut scratch = [0u8; FILLER_CHUNK];
            si.drain_filler(&mut scratch);
            si.send_fin();
        }
        if let Some((p, b)) = release {
            self.tcp.ports.release(p, b);
        }
        log::debug!(
            "tcp: socket {} connect to {} failed: {}",
            id.index(),
            c.remote,
            e.errno()
        );
    }
}
