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
//! Every received SYN passes [`Sockets::admit`] first (the ingress hook). The load of
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

use super::addr::{self, Target};
use super::errno::*;
use super::options::{self, Facts, SetOutcome};
use super::ports::{BindState, BindingId, Reuse};
use super::{Proto, Socket, SocketId, Sockets};
use crate::iface::ingress::{PacketInfo, Verdict};
use crate::iface::{IfaceId, Interfaces, LO};
use crate::standin::{FILLER_CHUNK, StandIn};
use crate::sys;
use netcell_proto::{AcceptRecord, RECORD_SOCKADDR};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{self, State};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint, IpProtocol};
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};

/// Linux's `net.core.somaxconn`.
pub const SOMAXCONN: usize = 4096;
/// How long a half-open connection waits for the handshake's last ACK.
const SYN_RECV_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an orphan may take to close at most.
const ORPHAN_MAX: Duration = Duration::from_secs(300);
/// Addresses per listener for which a spare armed socket is kept.
const MAX_HOT: usize = 32;

/// The TCP state of a socket.
pub(crate) enum TcpState {
    /// Fresh, bound, or after a failed connect (`failed` then holds why).
    Closed {
        failed: Option<ConnectError>,
    },
    Listening(Box<Listener>),
    Connecting(Conn),
    Connected(Conn),
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

struct Armed {
    iface: IfaceId,
    addr: IpAddress,
    handle: SocketHandle,
    claimed: bool,
}

struct Embryo {
    iface: IfaceId,
    handle: SocketHandle,
    remote: Option<IpEndpoint>,
}

/// The backlog machinery of a listening socket.
pub(crate) struct Listener {
    backlog: usize,
    armed: Vec<Armed>,
    embryos: Vec<Embryo>,
    /// Established, not yet accepted; with the program's end of the stand-in when the
    /// listener has one.
    ready: VecDeque<(SocketId, Option<OwnedFd>)>,
    inflight: usize,
    claimed: usize,
    hot: Vec<(IfaceId, IpAddress)>,
    wants: Vec<(IfaceId, IpAddress)>,
}

impl Listener {
    fn new(backlog: usize) -> Self {
        Listener {
            backlog,
            armed: Vec::new(),
            embryos: Vec::new(),
            ready: VecDeque::new(),
            inflight: 0,
            claimed: 0,
            hot: Vec::new(),
            wants: Vec::new(),
        }
    }

    /// Linux's accept queue admits `backlog + 1`.
    fn capacity(&self) -> usize {
        self.backlog + 1
    }

    fn load(&self) -> usize {
        self.embryos.len() + self.ready.len() + self.inflight
    }
}

/// A connection whose program is gone, finishing its close.
pub(crate) struct Orphan {
    iface: IfaceId,
    handle: SocketHandle,
    binding: Option<(u16, BindingId)>,
    since: Instant,
    linger2: Duration,
    rst_pending: bool,
}

/// Measures the kernel memory (`SIOCOUTQ`) one accept record with its fd occupies in
/// a stand-in, so that records in flight can be counted. 768 bytes on Linux 6.x.
pub(crate) fn measure_record_truesize() -> usize {
    let measure = || -> std::io::Result<usize> {
        let (a, _b) = sys::stream_pair()?;
        let (x, _y) = sys::stream_pair()?;
        let rec = AcceptRecord {
            local: ([0; RECORD_SOCKADDR], 0),
            peer: ([0; RECORD_SOCKADDR], 0),
        };
        sys::send_with_fd(a.as_fd(), &rec.encode(), Some(x.as_fd()))?;
        sys::outq(a.as_fd())
    };
    match measure() {
        Ok(n) if n > 0 => n,
        _ => 768,
    }
}

fn sock(ifs: &mut Interfaces, iface: IfaceId, h: SocketHandle) -> &mut tcp::Socket<'static> {
    ifs.get_mut(iface)
        .sockets
        .get_mut::<tcp::Socket<'static>>(h)
}

fn remove_sock(ifs: &mut Interfaces, iface: IfaceId, h: SocketHandle) {
    ifs.get_mut(iface).sockets.remove(h);
}

fn to_ip(a: IpAddr) -> IpAddress {
    a.into()
}

fn is_loopback(a: &IpAddr) -> bool {
    a.is_loopback()
}

impl Sockets {
    /// A new smoltcp socket with the buffers `o` asks for, as far as the
    /// container's buffer budget allows ([`super::budget`]); `None` when it is spent.
    fn new_smol(&self, ifs: &Interfaces, o: &options::Options) -> Option<tcp::Socket<'static>> {
        let want = (
            o.rx_buffer(self.cfg.tcp_rx_buffer),
            o.tx_buffer(self.cfg.tcp_tx_buffer),
        );
        let limit = self.cfg.max_buffer_memory;
        let used = super::budget::in_use(ifs);
        let Some((rx, tx)) = super::budget::tcp_share(want, used, limit) else {
            self.buffers_spent.set(true);
            super::budget::log_limit(format_args!(
                "{used} of {limit} bytes of socket buffers in use (--max-buffer-memory): \
                 new TCP connections fail with ENOBUFS"
            ));
            return None;
        };
        self.buffers_spent.set(false);
        let rx = tcp::SocketBuffer::new(vec![0u8; rx]);
        let tx = tcp::SocketBuffer::new(vec![0u8; tx]);
        let mut s = tcp::Socket::new(rx, tx);
        o.apply(&mut s);
        Some(s)
    }

    fn reuse(s: &Socket) -> Reuse {
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
            Proto::Tcp(TcpState::Closed { failed: Some(_) }) => Some(false),
            _ => None,
        }
    }

    /// Marks a finished connect reported (see [`Sockets::connect_outcome`]).
    pub(crate) fn connect_reported(&mut self, id: SocketId) {
        if let Some(Proto::Tcp(TcpState::Connected(c))) = self.get_mut(id).map(|s| &mut s.proto) {
            c.unreported = false;
        }
    }

    /// `bind(2)`.
    pub fn bind(
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
                self.ports
                    .take(a.port(), ip, dual, reuse)
                    .map_err(|_| BindError::AddrInUse)?,
            )
        };
        let s = self.get_mut(id).ok_or(BindError::Invalid)?;
        s.local = Some(SocketAddr::new(ip, binding.map_or(0, |b| b.0)));
        s.binding = binding;
        Ok(())
    }

    /// `listen(2)`.
    pub fn listen(&mut self, id: SocketId, backlog: i32) -> Result<(), ListenError> {
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
            Proto::Tcp(TcpState::Connecting(_) | TcpState::Connected(_)) => {
                return Err(ListenError::InvalidState);
            }
            Proto::Tcp(TcpState::Closed { .. }) => {}
            _ => return Err(ListenError::NotSupported),
        }
        let (port, bid) = match s.binding {
            Some(b) => b,
            None => {
                let ip = s.local.map_or(s.domain.any(), |a| a.ip());
                let dual = Self::dual(s, &ip);
                let reuse = Self::reuse(s);
                let (p, b) = self
                    .ports
                    .bind_ephemeral(ip, dual, reuse)
                    .ok_or(ListenError::AddrInUse)?;
                let s = self.get_mut(id).ok_or(ListenError::InvalidState)?;
                s.binding = Some((p, b));
                s.local = Some(SocketAddr::new(ip, p));
                (p, b)
            }
        };
        if !self.ports.listen(port, bid) {
            return Err(ListenError::AddrInUse);
        }
        let s = self.get_mut(id).ok_or(ListenError::InvalidState)?;
        s.proto = Proto::Tcp(TcpState::Listening(Box::new(Listener::new(backlog))));
        s.autobound = false;
        self.tcp_listeners.entry(port).or_default().push(id);
        log::debug!(
            "tcp: socket {} listening on {:?}, backlog {backlog}",
            id.index(),
            self.get(id).and_then(|s| s.local)
        );
        Ok(())
    }

    /// `connect(2)`. `Err(ConnectError::InProgress)` is the normal answer; the
    /// outcome shows up in the pending error (`SO_ERROR`) and the socket's state after the
    /// next polls. `program_end` is the stand-in the program holds, which this call
    /// makes unwritable until the handshake ends (see [`crate::standin`]).
    pub fn connect(
        &mut self,
        ifs: &mut Interfaces,
        id: SocketId,
        target: Target,
        program_end: Option<OwnedFd>,
        now: Instant,
    ) -> Result<(), ConnectError> {
        let s = self.get_mut(id).ok_or(ConnectError::BadStandIn)?;
        match &mut s.proto {
            Proto::Tcp(TcpState::Connecting(_)) => return Err(ConnectError::Already),
            Proto::Tcp(TcpState::Connected(c)) if c.unreported => {
                c.unreported = false;
                return Ok(());
            }
            Proto::Tcp(TcpState::Connected(_) | TcpState::Listening(_)) => {
                return Err(ConnectError::IsConnected);
            }
            Proto::Tcp(TcpState::Closed { failed: Some(e) }) => {
                // Reported by this call: no longer pending for SO_ERROR.
                s.error = 0;
                return Err(*e);
            }
            Proto::Tcp(TcpState::Closed { failed: None }) => {}
            _ => return Err(ConnectError::Invalid),
        }
        let s = self.get(id).ok_or(ConnectError::BadStandIn)?;
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
        let mut smol = self.new_smol(ifs, &s.opts).ok_or(ConnectError::NoBuffers)?;
        let timeout = s.opts.connect_timeout();
        let (port, autobound) = match s.binding {
            Some((p, _)) => (p, None),
            None => {
                let (p, b) = self
                    .ports
                    .bind_ephemeral(src_ip, false, reuse)
                    .ok_or(ConnectError::AddrNotAvailable)?;
                (p, Some(b))
            }
        };
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
                self.ports.release(port, b);
            }
            return Err(ConnectError::Invalid);
        }
        let handle = ifs.get_mut(route.iface).sockets.add(smol);
        let s = self.get_mut(id).ok_or(ConnectError::BadStandIn)?;
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
        if let (Some(si), Some(fd)) = (s.standin.as_mut(), program_end.as_ref())
            && let Err(e) = si.fill(fd.as_fd())
        {
            log::warn!("tcp: cannot fill stand-in of socket {}: {e}", id.index());
        }
        log::debug!(
            "tcp: socket {} connecting {} -> {dst} on {}",
            id.index(),
            SocketAddr::new(src_ip, port),
            ifs.get(route.iface).name
        );
        Err(ConnectError::InProgress)
    }

    /// `accept(2)` for the embedding API (a program's `accept()` is a `recvmsg` on
    /// its stand-in).
    pub fn accept(&mut self, id: SocketId) -> Result<(SocketId, SocketAddr), AcceptError> {
        let s = self.get_mut(id).ok_or(AcceptError::NotListening)?;
        let Proto::Tcp(TcpState::Listening(l)) = &mut s.proto else {
            return Err(AcceptError::NotListening);
        };
        let (cid, _) = l.ready.pop_front().ok_or(AcceptError::WouldBlock)?;
        let peer = self.peer_addr(cid).map_err(|_| AcceptError::WouldBlock)?;
        Ok((cid, peer))
    }

    /// `getpeername(2)`.
    pub fn peer_addr(&self, id: SocketId) -> Result<SocketAddr, LookupError> {
        let s = self.get(id).ok_or(LookupError::NoSuchSocket)?;
        match &s.proto {
            Proto::Tcp(TcpState::Connected(c)) => Ok(c.remote),
            _ => Err(LookupError::NotConnected),
        }
    }

    /// Whether the socket is listening.
    pub fn is_listening(&self, id: SocketId) -> bool {
        matches!(
            self.get(id).map(|s| &s.proto),
            Some(Proto::Tcp(TcpState::Listening(_)))
        )
    }

    /// Whether the socket's connection is established (or closing).
    pub fn is_connected(&self, id: SocketId) -> bool {
        matches!(
            self.get(id).map(|s| &s.proto),
            Some(Proto::Tcp(TcpState::Connected(_)))
        )
    }

    /// `shutdown(2)`. For a socket with a stand-in, the front end then shuts the
    /// stand-in itself, which orders the FIN after the bytes already written.
    pub fn shutdown(
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

    /// Writes for the embedding API.
    pub fn send(
        &mut self,
        ifs: &mut Interfaces,
        id: SocketId,
        data: &[u8],
    ) -> Result<usize, IoError> {
        let s = self.get_mut(id).ok_or(IoError::NotConnected)?;
        if s.standin.is_some() {
            return Err(IoError::NotApi);
        }
        match &s.proto {
            Proto::Tcp(TcpState::Connected(c)) => {
                if c.we_closed {
                    return Err(IoError::BrokenPipe);
                }
                let sk = sock(ifs, c.iface, c.handle);
                if sk.state() == State::Closed {
                    return Err(IoError::Reset);
                }
                match sk.send_slice(data) {
                    Ok(0) if !data.is_empty() => Err(IoError::WouldBlock),
                    Ok(n) => Ok(n),
                    Err(_) => Err(IoError::BrokenPipe),
                }
            }
            Proto::Tcp(TcpState::Connecting(_)) => Err(IoError::WouldBlock),
            _ => Err(IoError::NotConnected),
        }
    }

    /// Reads for the embedding API: `Ok(0)` is end of stream.
    pub fn recv(
        &mut self,
        ifs: &mut Interfaces,
        id: SocketId,
        buf: &mut [u8],
    ) -> Result<usize, IoError> {
        let s = self.get_mut(id).ok_or(IoError::NotConnected)?;
        if s.standin.is_some() {
            return Err(IoError::NotApi);
        }
        match &mut s.proto {
            Proto::Tcp(TcpState::Connected(c)) => {
                if c.rd_shut {
                    return Ok(0);
                }
                let sk = sock(ifs, c.iface, c.handle);
                match sk.recv_slice(buf) {
                    Ok(0) if !buf.is_empty() => {
                        if sk.state() == State::Closed
                            && !(c.we_closed && c.remote_fin)
                            && !c.reset_reported
                        {
                            c.reset_reported = true;
                            s.error = 0;
                            return Err(IoError::Reset);
                        }
                        Err(IoError::WouldBlock)
                    }
                    Ok(n) => Ok(n),
                    Err(tcp::RecvError::Finished) => Ok(0),
                    Err(tcp::RecvError::InvalidState) => {
                        if c.remote_fin || c.reset_reported {
                            Ok(0)
                        } else {
                            c.reset_reported = true;
                            Err(IoError::Reset)
                        }
                    }
                }
            }
            Proto::Tcp(TcpState::Connecting(_)) => Err(IoError::WouldBlock),
            _ => Err(IoError::NotConnected),
        }
    }

    fn facts(&self, ifs: &mut Interfaces, s: &Socket) -> Facts {
        let (state, mtu) = match &s.proto {
            Proto::Tcp(TcpState::Connected(c) | TcpState::Connecting(c)) => {
                let mtu = ifs.get(c.iface).mtu;
                (Some(sock(ifs, c.iface, c.handle).state()), Some(mtu))
            }
            _ => (None, None),
        };
        let (sotype, protocol) = match s.proto {
            Proto::Tcp(_) => (libc::SOCK_STREAM, libc::IPPROTO_TCP),
            Proto::Udp(_) => (libc::SOCK_DGRAM, libc::IPPROTO_UDP),
            Proto::Icmp(_) if s.domain == addr::Domain::Inet6 => {
                (libc::SOCK_DGRAM, libc::IPPROTO_ICMPV6)
            }
            Proto::Icmp(_) => (libc::SOCK_DGRAM, libc::IPPROTO_ICMP),
            Proto::Raw(ref r) => (libc::SOCK_RAW, r.protocol as i32),
        };
        Facts {
            domain: s.domain.raw(),
            sotype,
            protocol,
            listening: matches!(s.proto, Proto::Tcp(TcpState::Listening(_))),
            bound: s.binding.is_some() || s.local.is_some(),
            state,
            mtu,
            cookie: s.cookie,
        }
    }

    /// `setsockopt(2)`.
    pub fn setsockopt(
        &mut self,
        ifs: &mut Interfaces,
        id: SocketId,
        level: i32,
        name: i32,
        value: &[u8],
    ) -> Result<SetOutcome, Errno> {
        let s = self.get(id).ok_or(Errno(libc::EBADF))?;
        let facts = self.facts(ifs, s);
        let s = self.get_mut(id).ok_or(Errno(libc::EBADF))?;
        let mut opts = s.opts.clone();
        let outcome = options::set(&mut opts, &facts, level, name, value)?;
        if let Some(dev) = &opts.bindtodevice
            && ifs.by_name(dev).is_none()
        {
            return Err(Errno(libc::ENODEV));
        }
        let reuse_changed =
            opts.reuseaddr != s.opts.reuseaddr || opts.reuseport != s.opts.reuseport;
        s.opts = opts;
        if let Proto::Tcp(TcpState::Connected(c) | TcpState::Connecting(c)) = &s.proto {
            s.opts.apply(sock(ifs, c.iface, c.handle));
        }
        if let (true, Some((port, b))) = (reuse_changed, s.binding) {
            let reuse = Self::reuse(s);
            self.ports.set_reuse(port, b, reuse);
        }
        Ok(outcome)
    }

    /// `getsockopt(2)` into `out`, returning the value's length.
    pub fn getsockopt(
        &mut self,
        ifs: &mut Interfaces,
        id: SocketId,
        level: i32,
        name: i32,
        out: &mut [u8; options::MAX_OPT],
    ) -> Result<usize, Errno> {
        if level == libc::SOL_SOCKET && name == libc::SO_ERROR {
            let e = self.take_error(id);
            out[..4].copy_from_slice(&e.to_ne_bytes());
            return Ok(4);
        }
        let s = self.get(id).ok_or(Errno(libc::EBADF))?;
        let facts = self.facts(ifs, s);
        options::get(&s.opts, &facts, level, name, out)
    }

    /// Frees a socket that has no connection: its binding and its entry.
    pub(crate) fn drop_socket(&mut self, ifs: &mut Interfaces, id: SocketId) {
        if let Some(s) = self.remove(id, false) {
            if let Proto::Tcp(TcpState::Connecting(c) | TcpState::Connected(c)) = &s.proto {
                remove_sock(ifs, c.iface, c.handle);
            }
            if let Some((p, b)) = s.binding {
                self.ports.release(p, b);
            }
        }
    }

    /// Turns a connected socket whose program is gone into an orphan.
    fn orphan(&mut self, id: SocketId, now: Instant, rst: bool) {
        let Some(s) = self.remove(id, false) else {
            return;
        };
        if let Proto::Tcp(TcpState::Connected(c)) = s.proto {
            self.orphans.push(Orphan {
                iface: c.iface,
                handle: c.handle,
                binding: s.binding,
                since: now,
                linger2: Duration::from_secs(s.opts.linger2.max(1) as u64),
                rst_pending: rst,
            });
        } else if let Some((p, b)) = s.binding {
            self.ports.release(p, b);
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
        self.orphans.push(Orphan {
            iface,
            handle,
            binding: None,
            since: now,
            linger2: Duration::from_secs(1),
            rst_pending: true,
        });
    }

    /// A listener stops: half-open and unaccepted connections are reset (as Linux
    /// does when a listener closes), the port stays bound (the socket may listen
    /// again) until the socket goes.
    fn stop_listening(&mut self, ifs: &mut Interfaces, id: SocketId) {
        let Some(s) = self.get_mut(id) else { return };
        let Proto::Tcp(TcpState::Listening(l)) =
            std::mem::replace(&mut s.proto, Proto::Tcp(TcpState::Closed { failed: None }))
        else {
            return;
        };
        if let Some((port, b)) = s.binding {
            self.ports.set_state(port, b, BindState::Idle);
            if let Some(v) = self.tcp_listeners.get_mut(&port) {
                v.retain(|x| *x != id);
                if v.is_empty() {
                    self.tcp_listeners.remove(&port);
                }
            }
        }
        for a in l.armed {
            remove_sock(ifs, a.iface, a.handle);
        }
        let now = Instant::from_millis(0);
        for e in l.embryos {
            self.reset_unbound(ifs, e.iface, e.handle, now);
        }
        for (cid, _) in l.ready {
            if let Some(Proto::Tcp(TcpState::Connected(c))) = self.get(cid).map(|s| &s.proto) {
                sock(ifs, c.iface, c.handle).abort();
            }
            self.orphan(cid, now, true);
        }
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
            self.ports.release(p, b);
        }
        log::debug!(
            "tcp: socket {} connect to {} failed: {}",
            id.index(),
            c.remote,
            e.errno()
        );
    }

    pub(crate) fn service_tcp(&mut self, ifs: &mut Interfaces, now: Instant) -> bool {
        let mut progress = false;
        let ids = self.take_ids();
        for &id in &ids {
            let Some(s) = self.get(id) else { continue };
            progress |= match s.proto {
                Proto::Tcp(TcpState::Listening(_)) => self.service_listener(ifs, id, now),
                Proto::Tcp(TcpState::Connecting(_)) => self.service_connecting(ifs, id, now),
                Proto::Tcp(TcpState::Connected(_)) => self.service_connected(ifs, id, now),
                Proto::Tcp(TcpState::Closed { .. }) => self.service_idle(ifs, id),
                _ => false,
            };
        }
        self.give_back_ids(ids);
        progress |= self.service_orphans(ifs, now);
        progress
    }

    /// A socket without a connection: discard what the program writes, free it
    /// when the program closes it.
    fn service_idle(&mut self, ifs: &mut Interfaces, id: SocketId) -> bool {
        let mut scratch = std::mem::take(&mut self.scratch);
        let gone = match self.get_mut(id).and_then(|s| s.standin.as_mut()) {
            Some(si) if si.readable || si.hup => {
                // EOF on `T` means the program closed its end (a socket without a
                // connection answers `shutdown` with ENOTCONN, so it cannot be that).
                let eof = si.discard_input(&mut scratch);
                si.hup || eof
            }
            _ => false,
        };
        self.scratch = scratch;
        if gone {
            self.drop_socket(ifs, id);
        }
        gone
    }

    fn service_connecting(&mut self, ifs: &mut Interfaces, id: SocketId, now: Instant) -> bool {
        let Some(s) = self.get_mut(id) else {
            return false;
        };
        let Proto::Tcp(TcpState::Connecting(c)) = &s.proto else {
            return false;
        };
        let (iface, handle, deadline) = (c.iface, c.handle, c.deadline);
        if s.standin.as_ref().is_some_and(|si| si.hup) {
            // The program closed a connecting socket: drop it without a RST.
            self.drop_socket(ifs, id);
            return true;
        }
        let state = sock(ifs, iface, handle).state();
        match state {
            State::SynSent | State::SynReceived => {
                if now >= deadline {
                    self.fail(ifs, id, ConnectError::TimedOut);
                    return true;
                }
                false
            }
            State::Closed | State::TimeWait | State::Listen => {
                let e = if now >= deadline {
                    ConnectError::TimedOut
                } else {
                    ConnectError::Refused
                };
                self.fail(ifs, id, e);
                true
            }
            _ => {
                let s = self.get_mut(id).expect("socket checked above");
                let Proto::Tcp(TcpState::Connecting(c)) =
                    std::mem::replace(&mut s.proto, Proto::Tcp(TcpState::Closed { failed: None }))
                else {
                    return false;
                };
                // Keep-alive and user timeouts replace the connect timeout.
                s.opts.apply(sock(ifs, c.iface, c.handle));
                if !s.opts.keepalive && s.opts.user_timeout_ms == 0 {
                    sock(ifs, c.iface, c.handle).set_timeout(None);
                }
                s.proto = Proto::Tcp(TcpState::Connected(Conn {
                    unreported: true,
                    ..c
                }));
                if let Some(si) = s.standin.as_mut() {
                    let mut scratch = [0u8; FILLER_CHUNK];
                    si.drain_filler(&mut scratch);
                }
                log::debug!("tcp: socket {} connected", id.index());
                true
            }
        }
    }

    fn service_connected(&mut self, ifs: &mut Interfaces, id: SocketId, now: Instant) -> bool {
        let Some(s) = self.get_mut(id) else {
            return false;
        };
        let linger0 = s.opts.linger == Some(0);
        let Proto::Tcp(TcpState::Connected(c)) = &mut s.proto else {
            return false;
        };
        let sk = sock(ifs, c.iface, c.handle);
        let state = sk.state();
        c.remote_fin |= matches!(
            state,
            State::CloseWait | State::LastAck | State::Closing | State::TimeWait
        );
        let mss = ifs
            .get(c.iface)
            .mtu
            .saturating_sub(if c.remote.is_ipv4() { 40 } else { 60 });
        let coalesce = s.opts.coalesce().then_some(mss);
        let corked = s.opts.cork;
        let sk = sock(ifs, c.iface, c.handle);
        let Some(si) = s.standin.as_mut() else {
            return false; // The embedding API moves its own bytes.
        };
        if si.hup && !si.app_eof && (si.closed_with_unread() || sk.recv_queue() > 0 || linger0) {
            // Closed with unread bytes or SO_LINGER {1, 0}: Linux sends a RST.
            sk.abort();
            self.orphan(id, now, true);
            return true;
        }
        let out = si.pump_out(sk);
        if c.remote_fin && sk.recv_queue() == 0 {
            si.send_fin();
        }
        let inn = si.pump_in(sk, coalesce, corked);
        if inn.eof {
            if si.app_reset || (si.hup && (sk.recv_queue() > 0 || linger0)) {
                sk.abort();
                self.orphan(id, now, true);
                return true;
            }
            sk.close();
            c.we_closed = true;
        }
        let progress = out.bytes > 0 || inn.bytes > 0 || inn.eof;
        if si.hup && si.app_eof {
            self.orphan(id, now, false);
            return true;
        }
        if sk.state() == State::Closed && !(c.we_closed && c.remote_fin) {
            // Reset (or a keep-alive/user timeout): close our end so the program
            // sees ECONNRESET (with unsent bytes) or EOF, then EPIPE.
            s.error = if s.opts.user_timeout_ms > 0 || s.opts.keepalive {
                libc::ETIMEDOUT
            } else {
                libc::ECONNRESET
            };
            log::debug!("tcp: socket {} reset by peer", id.index());
            if let Some(s) = self.remove(id, true) {
                if let Proto::Tcp(TcpState::Connected(c)) = s.proto {
                    remove_sock(ifs, c.iface, c.handle);
                }
                if let Some((p, b)) = s.binding {
                    self.ports.release(p, b);
                }
            }
            return true;
        }
        progress
    }

    fn service_orphans(&mut self, ifs: &mut Interfaces, now: Instant) -> bool {
        let mut progress = false;
        let mut i = 0;
        while i < self.orphans.len() {
            let o = &mut self.orphans[i];
            let sk = sock(ifs, o.iface, o.handle);
            let state = sk.state();
            let mut done = false;
            if o.rst_pending {
                // abort() sends its RST on the next poll; keep the socket until then.
                o.rst_pending = false;
            } else if state == State::Closed || state == State::TimeWait {
                // No TIME_WAIT is kept: the socket and its port go at once (see the
                // module docs).
                done = true;
            } else if sk.recv_queue() > 0
                || (state == State::FinWait2 && now >= o.since + o.linger2)
                || now >= o.since + ORPHAN_MAX
            {
                // Data for a closed socket, or a close that takes too long: RST.
                sk.abort();
                o.rst_pending = true;
                progress = true;
            }
            if done {
                let o = self.orphans.swap_remove(i);
                remove_sock(ifs, o.iface, o.handle);
                if let Some((p, b)) = o.binding {
                    self.ports.release(p, b);
                }
                progress = true;
            } else {
                i += 1;
            }
        }
        progress
    }

    fn service_listener(&mut self, ifs: &mut Interfaces, id: SocketId, now: Instant) -> bool {
        let mut scratch = std::mem::take(&mut self.scratch);
        let gone = match self.get_mut(id).and_then(|s| s.standin.as_mut()) {
            Some(si) => {
                if si.readable {
                    si.discard_input(&mut scratch);
                }
                si.hup || si.app_eof
            }
            None => false,
        };
        self.scratch = scratch;
        if gone {
            self.stop_listening(ifs, id);
            self.drop_socket(ifs, id);
            return true;
        }
        let Some(s) = self.get_mut(id) else {
            return false;
        };
        let Proto::Tcp(TcpState::Listening(mut l)) =
            std::mem::replace(&mut s.proto, Proto::Tcp(TcpState::Closed { failed: None }))
        else {
            return false;
        };
        let mut standin = s.standin.take();
        let domain = s.domain;
        let opts = s.opts.clone();
        let Some((port, _)) = s.binding else {
            return false;
        };
        let reuse = Self::reuse(s);
        let mut progress = false;

        // Armed sockets that took a SYN become embryos.
        let mut i = 0;
        while i < l.armed.len() {
            let a = &mut l.armed[i];
            let sk = sock(ifs, a.iface, a.handle);
            match sk.state() {
                State::Listen => {
                    a.claimed = false;
                    i += 1;
                }
                State::Closed => {
                    remove_sock(ifs, a.iface, a.handle);
                    l.armed.swap_remove(i);
                }
                _ => {
                    let remote = sk.remote_endpoint();
                    l.embryos.push(Embryo {
                        iface: a.iface,
                        handle: a.handle,
                        remote,
                    });
                    l.armed.swap_remove(i);
                    progress = true;
                }
            }
        }
        l.claimed = 0;

        // Embryos whose handshake completed become connections.
        let mut i = 0;
        while i < l.embryos.len() {
            let e = &l.embryos[i];
            let state = sock(ifs, e.iface, e.handle).state();
            match state {
                State::SynReceived => i += 1,
                State::Closed | State::Listen | State::TimeWait => {
                    remove_sock(ifs, e.iface, e.handle);
                    l.embryos.swap_remove(i);
                }
                _ => {
                    let e = l.embryos.swap_remove(i);
                    if let Some(ready) =
                        self.promote(ifs, &e, domain, &opts, port, reuse, standin.is_some(), now)
                    {
                        l.ready.push_back(ready);
                    }
                    progress = true;
                }
            }
        }

        // Hand connections to the program.
        if let Some(si) = standin.as_mut() {
            let mut delivered = false;
            while si.writable {
                let Some((cid, Some(fd))) = l.ready.front() else {
                    break;
                };
                let Some(rec) = self.record(*cid) else {
                    l.ready.pop_front();
                    continue;
                };
                match si.deliver(&rec, fd.as_fd()) {
                    Ok(true) => {
                        l.ready.pop_front();
                        progress = true;
                        delivered = true;
                    }
                    Ok(false) => break,
                    Err(e) => {
                        log::debug!("tcp: listener {} stand-in gone: {e}", id.index());
                        si.hup = true;
                        break;
                    }
                }
            }
            // Records still in the stand-in count against the backlog. Nothing to
            // ask the kernel when none were there and none were added.
            if delivered || l.inflight > 0 {
                l.inflight =
                    sys::outq(si.fd.as_fd()).map_or(0, |q| q.div_ceil(self.record_truesize));
            }
        }

        // Arm a socket for every address that wants one while the backlog has room.
        for w in l.wants.drain(..) {
            if !l.hot.contains(&w) {
                if l.hot.len() >= MAX_HOT {
                    l.hot.remove(0);
                }
                l.hot.push(w);
            }
        }
        let room = l.capacity().saturating_sub(l.load());
        if room > 0 {
            for &(iface, addr) in &l.hot {
                if !l.armed.iter().any(|a| a.iface == iface && a.addr == addr) {
                    let Some(mut smol) = self.new_smol(ifs, &opts) else {
                        break;
                    };
                    smol.set_timeout(Some(SYN_RECV_TIMEOUT));
                    if smol
                        .listen(IpListenEndpoint {
                            addr: Some(addr),
                            port,
                        })
                        .is_ok()
                    {
                        let handle = ifs.get_mut(iface).sockets.add(smol);
                        l.armed.push(Armed {
                            iface,
                            addr,
                            handle,
                            claimed: false,
                        });
                        progress = true;
                    }
                }
            }
        }

        if let Some(s) = self.get_mut(id) {
            s.proto = Proto::Tcp(TcpState::Listening(l));
            s.standin = standin;
        }
        progress
    }

    /// Makes an established embryo a socket of the table.
    #[allow(clippy::too_many_arguments)]
    fn promote(
        &mut self,
        ifs: &mut Interfaces,
        e: &Embryo,
        domain: addr::Domain,
        opts: &options::Options,
        port: u16,
        reuse: Reuse,
        with_standin: bool,
        now: Instant,
    ) -> Option<(SocketId, Option<OwnedFd>)> {
        let sk = sock(ifs, e.iface, e.handle);
        opts.apply(sk);
        if !opts.keepalive && opts.user_timeout_ms == 0 {
            sk.set_timeout(None);
        }
        let (Some(local), Some(remote)) = (sk.local_endpoint(), sk.remote_endpoint()) else {
            remove_sock(ifs, e.iface, e.handle);
            return None;
        };
        let local = SocketAddr::from(local);
        let remote = SocketAddr::from(remote);
        let (standin, program_end) = if with_standin {
            match sys::stream_pair().and_then(|(ours, theirs)| {
                let (ino, _) = sys::inode(theirs.as_fd())?;
                Ok((StandIn::new(ours, ino), theirs))
            }) {
                Ok((si, theirs)) => (Some(si), Some(theirs)),
                Err(err) => {
                    log::warn!(
                        "tcp: cannot make a stand-in for a connection from {remote}: {err}; resetting it"
                    );
                    self.reset_unbound(ifs, e.iface, e.handle, now);
                    return None;
                }
            }
        } else {
            (None, None)
        };
        let binding = self
            .ports
            .insert(port, local.ip(), false, reuse, BindState::Idle);
        let id = self.insert(Socket {
            domain,
            opts: opts.clone(),
            local: Some(local),
            binding: Some((port, binding)),
            autobound: false,
            error: 0,
            markers: true,
            standin,
            proto: Proto::Tcp(TcpState::Connected(Conn {
                iface: e.iface,
                handle: e.handle,
                remote,
                deadline: now,
                we_closed: false,
                remote_fin: false,
                reset_reported: false,
                rd_shut: false,
                unreported: false,
            })),
            cookie: 0,
        });
        log::debug!("tcp: accepted {remote} -> {local} as socket {}", id.index());
        Some((id, program_end))
    }

    fn record(&self, id: SocketId) -> Option<AcceptRecord> {
        let s = self.get(id)?;
        let Proto::Tcp(TcpState::Connected(c)) = &s.proto else {
            return None;
        };
        let mut local = [0u8; addr::MAX_ENCODED];
        let mut peer = [0u8; addr::MAX_ENCODED];
        let ll = addr::encode(s.domain, s.local?, &mut local);
        let pl = addr::encode(s.domain, c.remote, &mut peer);
        Some(AcceptRecord {
            local: (local, ll as u32),
            peer: (peer, pl as u32),
        })
    }
}

impl Sockets {
    /// Decides on every received TCP SYN (see the module docs).
    pub(crate) fn tcp_admit(&mut self, iface: IfaceId, pkt: &PacketInfo) -> Verdict {
        if pkt.proto != IpProtocol::Tcp || !pkt.syn || pkt.ack {
            return Verdict::Accept;
        }
        let Some(list) = self.tcp_listeners.get(&pkt.dst_port) else {
            return Verdict::Accept;
        };
        let dst: IpAddr = pkt.dst.into();
        let mut best = None;
        for &lid in list {
            let Some(s) = self.get(lid) else { continue };
            let Some(local) = s.local else { continue };
            let ip = local.ip();
            if ip == dst {
                best = Some(lid);
                break;
            }
            let family_ok = match (ip, dst) {
                (IpAddr::V4(a), IpAddr::V4(_)) => a.is_unspecified(),
                (IpAddr::V6(a), IpAddr::V6(_)) => a.is_unspecified(),
                (IpAddr::V6(a), IpAddr::V4(_)) => a.is_unspecified() && !s.opts.v6only,
                (IpAddr::V4(_), IpAddr::V6(_)) => false,
            };
            if family_ok && best.is_none() {
                best = Some(lid);
            }
        }
        let Some(lid) = best else {
            return Verdict::Accept;
        };
        let Some(s) = self.get_mut(lid) else {
            return Verdict::Accept;
        };
        let Proto::Tcp(TcpState::Listening(l)) = &mut s.proto else {
            return Verdict::Accept;
        };
        let remote = IpEndpoint::new(pkt.src, pkt.src_port);
        if l.embryos
            .iter()
            .any(|e| e.iface == iface && e.remote == Some(remote))
        {
            return Verdict::Drop;
        }
        if l.load() + l.claimed >= l.capacity() {
            return Verdict::Drop;
        }
        // The container's limits: a SYN that would take it past them is dropped
        // (the peer retries), as a kernel short of memory does.
        if self.pending_over_limits() {
            return Verdict::Drop;
        }
        let Some(s) = self.get_mut(lid) else {
            return Verdict::Accept;
        };
        let Proto::Tcp(TcpState::Listening(l)) = &mut s.proto else {
            return Verdict::Accept;
        };
        if let Some(a) = l
            .armed
            .iter_mut()
            .find(|a| a.iface == iface && a.addr == pkt.dst && !a.claimed)
        {
            a.claimed = true;
            l.claimed += 1;
            return Verdict::Accept;
        }
        if !l.wants.contains(&(iface, pkt.dst)) {
            l.wants.push((iface, pkt.dst));
        }
        Verdict::Defer
    }
}

impl Sockets {
    /// Whether one more pending connection would take the container past its
    /// limits: buffers spent, too many sockets, too many pending connections.
    fn pending_over_limits(&self) -> bool {
        if self.buffers_spent.get() {
            return true;
        }
        let mut pending = 0;
        for lid in self.tcp_listeners.values().flatten() {
            if let Some(Socket {
                proto: Proto::Tcp(TcpState::Listening(l)),
                ..
            }) = self.get(*lid)
            {
                pending += l.load() + l.claimed;
            }
        }
        if pending >= self.cfg.max_pending || self.live + pending >= self.cfg.max_sockets {
            super::budget::log_limit(format_args!(
                "{pending} connections pending, {} sockets (--max-pending, --max-sockets): SYN dropped",
                self.live
            ));
            return true;
        }
        false
    }

    /// The earliest deadline of the socket layer's own timers (connect timeouts,
    /// orphan limits); smoltcp's timers are the interfaces' business.
    pub(crate) fn next_timer(&self, _now: Instant) -> Option<Instant> {
        let mut best: Option<Instant> = None;
        let mut take = |t: Instant| best = Some(best.map_or(t, |b| b.min(t)));
        for slot in &self.slots {
            if let Some(Socket {
                proto: Proto::Tcp(TcpState::Connecting(c)),
                ..
            }) = &slot.val
            {
                take(c.deadline);
            }
        }
        for o in &self.orphans {
            if o.rst_pending {
                take(o.since);
            }
            take(o.since + o.linger2.min(ORPHAN_MAX));
        }
        best
    }
}
