//! Spliced connections: TCP inside the container, from program to program.
//!
//! A connection between two of the container's programs over its loopback
//! crossed the stack twice: the client's bytes were read from its stand-in into
//! smoltcp, segmented over `lo`, reassembled and written into the server's
//! stand-in — four copies and a wake-up of the stack's thread for every burst,
//! where the kernel's own loopback copies twice. So when a `connect` goes to a
//! listener of the container on a loopback address, the stack makes the two
//! programs' ends one kernel `AF_UNIX` stream pair instead: the client's stand-in
//! is replaced by one end (as a connect after a failed one replaces it, keeping
//! the descriptor's number and flags), and the other end is what the listener's
//! `accept` returns. Bytes then go from program to program through the kernel
//! alone, at its `AF_UNIX` speed (faster than its TCP loopback), and a request
//! and its answer wake nobody but the two programs.
//!
//! The stack keeps both ends as sockets of its table ([`TcpState::Spliced`]),
//! with the addresses and port a connection through it would have had: so
//! `getsockname`, `getpeername`, options, `TCP_INFO` (established) and `ss`
//! (ESTAB) answer as for any connection, and the client's port stays taken. It
//! finds their closes by looking, as it holds neither end: an end's inode is
//! gone from the kernel's list of unix sockets (`NETLINK_SOCK_DIAG`; no splicing
//! where it cannot be read). Ends younger than [`YOUNG`] are looked at every
//! [`CHECK_EVERY`] in one reading of that list — most loopback connections are
//! short, and a closed end counts against `--max-sockets` and keeps its port
//! until found (with the 2 s sweep alone, a program opening and closing
//! connections one after the other hit the socket limit); older ones with the
//! sweep of unpaired stand-ins every 2 s (the client's end by the abstract name
//! it was bound to, the server's by the list, read at most every
//! [`DUMP_EVERY`]). Watching each end's peer for a hang-up was tried: when both
//! ends close at once, the kernel drops the hang-up event with the closing
//! file's watch, and half the closes went unseen.
//!
//! Only where nothing could see the difference in packets: no capture runs (a
//! `--pcap` file, a `tcpdump` inside the container), the packet filter looks at
//! nothing, no raw socket is open, and the listener has room in its backlog.
//! Off unless asked for (`--loopback-splice`, [`super::super::SocketConfig`]'s
//! `loopback_splice`), because of what differs from a connection through the
//! stack (documented in the README):
//! - a capture or a filter rule that starts later does not see the connections
//!   spliced before it;
//! - the closing handshake is the kernel's `AF_UNIX` one: the peer of a closed
//!   end reads EOF (or `ECONNRESET` when it closed with bytes unread, as TCP),
//!   also after `SO_LINGER` {1, 0}, where TCP resets; a connection left in the
//!   backlog of a closed listener ends in EOF, not a reset; `ss` shows both ends
//!   ESTAB until their closes are found, with empty queues;
//! - urgent data is the kernel's `AF_UNIX` out-of-band byte;
//! - TCP options (`TCP_NODELAY`, `TCP_CORK`, keep-alive, `TCP_USER_TIMEOUT`)
//!   are kept and answered but change nothing: there are no segments.

use super::super::addr::Domain;
use super::super::ports::BindState;
use super::super::{Proto, Socket, SocketId, Sockets};
use super::{TcpState, to_ip};
use crate::iface::{Interfaces, LO};
use crate::standin::{self, Unpaired};
use crate::sys;
use smoltcp::time::Instant;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};

/// How often the kernel's list of unix sockets is read at most (it lists the
/// whole network namespace's: a program must not make the stack read it per
/// call).
pub(crate) const DUMP_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// How often young spliced ends are looked at (see
/// [`Sockets::check_spliced_ends`]).
const CHECK_EVERY: smoltcp::time::Duration = smoltcp::time::Duration::from_millis(50);

/// How often young spliced ends are looked at, at most, while the container is
/// near its socket limit (see [`Sockets::check_spliced_ends`]).
const CHECK_AT_LIMIT: smoltcp::time::Duration = smoltcp::time::Duration::from_millis(2);

/// How long a spliced end counts as young.
const YOUNG: smoltcp::time::Duration = smoltcp::time::Duration::from_secs(2);

/// How often named unpaired stand-ins whose names are in use are looked up in
/// the kernel's list of unix sockets at most (see
/// [`Sockets::notice_unpaired_closes`]): the list holds every unix socket of the
/// namespace, which another user can make long (a read took 33 ms with 114 000).
pub(crate) const VERIFY_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// The kernel's unix sockets (`sys::unix_sockets`), noting in `last_dump` when
/// they were read; `None` when they cannot be.
pub(crate) fn kernel_unix_sockets(
    last_dump: &mut Option<std::time::Instant>,
) -> Option<std::collections::HashSet<sys::SocketIdentity>> {
    *last_dump = Some(std::time::Instant::now());
    let mut set = std::collections::HashSet::new();
    match sys::unix_sockets(&mut set) {
        Ok(()) => Some(set),
        Err(e) => {
            log::warn!("tcp: the kernel's unix socket list cannot be read: {e}");
            None
        }
    }
}

/// Whether the socket `id` is gone: missing from `live` (a dump of the kernel's
/// unix sockets) and not found when looked up alone. A dump can skip a socket
/// while others come and go (it is read in batches), and a live socket taken
/// for closed would be torn down under its program; the lookup walks the
/// kernel's whole list, so it is kept for the few a dump misses.
pub(crate) fn gone(
    live: &std::collections::HashSet<sys::SocketIdentity>,
    id: sys::SocketIdentity,
) -> bool {
    !live.contains(&id) && sys::unix_socket_exists(id) == Some(false)
}

/// A spliced connection's end, as the stack keeps it.
pub(crate) struct Splice {
    /// The peer's address.
    pub(crate) remote: SocketAddr,
    /// The client's `connect` has not returned success for it yet (see
    /// [`super::Conn::unreported`]).
    pub(crate) unreported: bool,
}

impl Sockets {
    /// Connections spliced so far.
    pub fn spliced(&self) -> u64 {
        self.tcp.spliced
    }

    /// Looks at the spliced ends made in the last [`YOUNG`], every
    /// [`CHECK_EVERY`], in one reading of the kernel's list of unix sockets: an
    /// end whose inode is gone was closed. Most loopback connections are short,
    /// and a closed end counts against `--max-sockets` and keeps its port until
    /// it is found; older ends are left to the periodic sweep. Returns whether
    /// any was found closed.
    ///
    /// Near the socket limit (fewer sockets left than twice the young ends)
    /// they are looked at sooner: every [`CHECK_AT_LIMIT`], or four times as
    /// long as the last reading took, whichever is longer (the list is the
    /// namespace's, which another user can make long). A program opening and
    /// closing connections one after the other at thousands a second reached
    /// `--max-sockets 300` between two looks 50 ms apart, and its SYNs were
    /// dropped.
    pub(super) fn check_spliced_ends(&mut self, now: Instant) -> bool {
        if self.tcp.check_soon.is_empty() {
            return false;
        }
        let mut due = *self.tcp.next_check.get_or_insert(now + CHECK_EVERY);
        let left = self.cfg.max_sockets.saturating_sub(self.live);
        if left < 2 * self.tcp.check_soon.len() {
            let (at, took) = self.tcp.last_check.unwrap_or((now, Default::default()));
            let every = smoltcp::time::Duration::from_micros(took.as_micros() as u64 * 4)
                .max(CHECK_AT_LIMIT)
                .min(CHECK_EVERY);
            due = due.min(at + every);
            self.tcp.next_check = Some(due);
        }
        if now < due {
            return false;
        }
        self.tcp.next_check = None;
        let started = std::time::Instant::now();
        let Some(live) = kernel_unix_sockets(&mut self.tcp.last_dump) else {
            self.tcp.next_check = Some(now + CHECK_EVERY);
            return false;
        };
        self.tcp.last_check = Some((now, started.elapsed()));
        let mut ends = std::mem::take(&mut self.tcp.check_soon);
        let mut any = false;
        ends.retain(|&(id, since)| {
            let Some(u) = self.get_mut(id).and_then(|s| s.unpaired.as_mut()) else {
                return false;
            };
            if u.hup {
                return false;
            }
            if gone(&live, u.identity()) {
                u.hup = true;
                self.tcp.turn.again(id);
                any = true;
                return false;
            }
            now < since + YOUNG
        });
        if !ends.is_empty() {
            self.tcp.next_check = Some(now + CHECK_EVERY);
        }
        self.tcp.check_soon.extend(ends);
        any
    }

    /// Whether the kernel's list of unix sockets can be read (asked once).
    fn diag_works(&mut self) -> bool {
        let last_dump = &mut self.tcp.last_dump;
        *self.tcp.diag_works.get_or_insert_with(|| {
            let works = kernel_unix_sockets(last_dump).is_some();
            if !works {
                log::warn!("tcp: loopback connections are not spliced");
            }
            works
        })
    }

    /// Splices socket `id`'s connect to `dst` if it can (see the module docs):
    /// `Some` when the connection is established so. `None`: the connect goes
    /// through the stack.
    pub(super) fn try_splice(
        &mut self,
        ifs: &mut Interfaces,
        id: SocketId,
        dst: SocketAddr,
        program_end: Option<&OwnedFd>,
    ) -> Option<()> {
        if !self.cfg.loopback_splice
            || !self.diag_works()
            || !dst.ip().is_loopback()
            || dst.port() == 0
            || self.raw_live > 0
            || ifs.capture().borrow().active()
        {
            return None;
        }
        {
            let f = ifs.filter().borrow();
            if f.watches_input() || f.watches_output() {
                return None;
            }
        }
        let s = self.get(id)?;
        let u = s.unpaired.as_ref()?;
        if !matches!(s.proto, Proto::Tcp(TcpState::Closed { failed: None }))
            || s.opts.bindtodevice.is_some()
            || !matches!(
                (s.domain, dst),
                (Domain::Inet, SocketAddr::V4(_)) | (Domain::Inet6, SocketAddr::V6(_))
            )
        {
            return None;
        }
        match program_end.map(|f| sys::inode(f.as_fd())) {
            Some(Ok((ino, _))) if ino == u.inode => {}
            _ => return None,
        }
        let route = ifs.route(&to_ip(dst.ip()))?;
        if route.iface != LO {
            return None;
        }
        let src_ip = match s.local {
            Some(l) if !l.ip().is_unspecified() => {
                if !l.ip().is_loopback() {
                    return None;
                }
                l.ip()
            }
            _ => route.src.into(),
        };
        // The listener, with room: else the connect goes the usual way (and its
        // SYN waits as a full backlog makes it). One its program closed a moment
        // ago is gone (close is synchronous on Linux).
        self.close_hung_up_listeners(ifs, dst.port());
        let lid = self.listener_for(dst.port(), dst.ip())?;
        if !self.room_for(1) || self.pending_over_limits("a spliced connect goes the usual way") {
            return None;
        }
        let l = self.get(lid)?;
        let Proto::Tcp(TcpState::Listening(listener)) = &l.proto else {
            return None;
        };
        if listener.load() + listener.claimed >= listener.capacity()
            || l.standin.as_ref().is_none_or(|si| si.hup)
        {
            return None;
        }
        let (l_domain, l_opts, l_reuse) = (l.domain, l.opts.clone(), Self::reuse(l));
        let l_port = l.binding?.0;

        let s = self.get(id)?;
        let reuse = Self::reuse(s);
        let (port, autobound) = match s.binding {
            Some((p, _)) => (p, None),
            None => {
                let (p, b) = self.tcp.ports.bind_ephemeral(src_ip, false, reuse)?;
                (p, Some(b))
            }
        };
        // The program's own end connects to the stack's intake, and what the
        // intake accepts is the server's end: the client keeps its file (a `dup`,
        // an `epoll` registration, a `fork` made before the connect go on
        // working), and its name tells its close, as before.
        let end = program_end?.as_fd();
        let paired = standin::pair(end);
        let server_end = match paired.and_then(|t| Ok((sys::socket_identity(t.as_fd())?, t))) {
            Ok((ino, t)) => (ino, t),
            Err(e) => {
                if let Some(b) = autobound {
                    self.tcp.ports.release(port, b);
                }
                log::debug!("tcp: cannot splice socket {}: {e}", id.index());
                return None;
            }
        };
        let (server_id, server_end) = server_end;
        // Blocking, as an accepted socket is (the front end sets what accept4
        // asks for).
        if let Err(e) = sys::set_nonblocking(server_end.as_fd(), false) {
            log::warn!("tcp: spliced connection's end: {e}");
        }
        let client_addr = SocketAddr::new(src_ip, port);
        let s = self.get_mut(id)?;
        if let Some(b) = autobound {
            s.binding = Some((port, b));
            s.autobound = true;
        }
        s.local = Some(client_addr);
        s.proto = Proto::Tcp(TcpState::Spliced(Splice {
            remote: dst,
            unreported: true,
        }));

        let binding = self
            .tcp
            .ports
            .insert(l_port, dst.ip(), false, l_reuse, BindState::Idle);
        let server = self.insert(Socket {
            domain: l_domain,
            opts: l_opts,
            local: Some(dst),
            binding: Some((l_port, binding)),
            autobound: false,
            error: 0,
            markers: true,
            standin: None,
            unpaired: Some(Unpaired::unnamed(server_id)),
            proto: Proto::Tcp(TcpState::Spliced(Splice {
                remote: client_addr,
                unreported: false,
            })),
            cookie: 0,
        });
        // Looked at often while young: most loopback connections are short.
        let now = ifs.now();
        self.tcp.check_soon.push((id, now));
        self.tcp.check_soon.push((server, now));
        if let Some(Proto::Tcp(TcpState::Listening(l))) = self.get_mut(lid).map(|l| &mut l.proto) {
            l.ready.push_back((server, Some(server_end)));
        }
        self.tcp.turn.again(lid);
        self.tcp.spliced += 1;
        log::debug!(
            "tcp: socket {} spliced {client_addr} -> {dst} with socket {}",
            id.index(),
            server.index()
        );
        Some(())
    }
}
