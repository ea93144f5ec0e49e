//! Stand-ins: the kernel fds a program holds in place of its INET sockets, and the
//! pump that moves bytes between them and smoltcp.
//!
//! # Theory of operation
//!
//! A stand-in is an `AF_UNIX` stream pair made when the program calls `socket()`.
//! The program holds one end (`S`) as its socket; the stack holds the other (`T`,
//! non-blocking, in the event loop). Reads, writes, `poll`, `epoll`, `dup`, `fork`,
//! `exec`, fd passing and `close` then work on `S` natively. The stack learns what
//! the program does from `T` alone:
//!
//! | the program                    | `T` sees                                      |
//! |--------------------------------|-----------------------------------------------|
//! | writes bytes                   | readable; the pump moves them to smoltcp      |
//! | `shutdown(SHUT_WR)`            | `read` returns 0 → smoltcp `close()` (FIN)    |
//! | closes its last copy           | HUP (and EOF after the bytes still queued)    |
//! | closes with unread bytes       | HUP and `SO_ERROR` = `ECONNRESET` → TCP RST   |
//! | `shutdown(SHUT_RD)`            | writes fail with `EPIPE` → incoming discarded |
//!
//! and tells the program what the network does:
//!
//! | the network                    | the stack does on `T`            | `S` sees   |
//! |--------------------------------|----------------------------------|------------|
//! | bytes arrive                   | writes them                      | readable   |
//! | the peer's FIN, bytes drained  | `shutdown(SHUT_WR)`              | EOF        |
//! | a reset                        | closes `T`                       | `ECONNRESET` if it had unsent bytes, else EOF; writes `EPIPE` |
//!
//! Backpressure is the kernel's: when `S`'s receive queue is full, writes to `T`
//! fail with `EAGAIN` and smoltcp's receive window closes; when smoltcp's send buffer
//! is full, the pump stops reading `T` and the program's writes block on `S`. Bytes
//! go from `T` straight into smoltcp's ring buffer and back, with no copy between
//! and no allocation.
//!
//! **Connecting.** `connect()` on a non-blocking socket must return `EINPROGRESS`
//! and make the socket writable only once the handshake is over. A fresh `S` is
//! writable, so the stack fills `S`'s send buffer with *filler* bytes (they sit in
//! `T`'s receive queue) until `poll` stops reporting `POLLOUT`. When the handshake
//! completes, the stack reads exactly the filler back: `S` turns writable, and since
//! the program could not write before that, its first byte follows the filler in the
//! stream. When it fails, the stack drains the filler too, shuts `T`'s write side
//! (the program reads EOF) and keeps the `errno` for `SO_ERROR`.
//!
//! **Before `connect` or `listen`.** A TCP socket's `S` starts *unpaired*
//! (`Unpaired`): an `AF_UNIX` stream socket that is not connected, so that the
//! program's reads fail at once (`EINVAL` natively, `ENOTCONN` where a front end
//! sees the call), its writes fail, and `poll` reports `POLLOUT|POLLHUP` — what
//! Linux shows for a TCP socket that is not connected — instead of blocking for
//! ever on a pair nobody writes to. It is bound to an abstract name of the stack's
//! (`netcell.<pid>.` and 64 unforeseeable bits): front ends recognise it by the
//! name, and the stack notices that the program closed it when the name is free
//! again (or, the name being someone else's now, when the kernel's list of unix
//! sockets lacks its inode and cookie). `connect` and `listen` pair it: the
//! stack connects its own copy of `S` (the descriptor the front end passes with
//! the request) to a listener made for that (`pair`) and
//! takes the accepted end as `T`. `S` stays the same file throughout, so a `dup`,
//! a `fork` or an `epoll` registration made before the `connect` keeps working.
//!
//! **Datagram sockets** (UDP, ICMP, raw) stand in as an `AF_UNIX` `SOCK_SEQPACKET`
//! pair: record boundaries are kept and the stack sees the program's close at
//! once (HUP), which frees the port and makes the next datagram to it draw an
//! ICMP port unreachable, as on Linux. The price: `send`/`write` without a
//! destination on an *unconnected* UDP socket is taken natively under seccomp
//! instead of failing with `EDESTADDRREQ`. The road not taken: `SOCK_DGRAM`
//! ends bound to abstract names, the program's connected to the stack's only
//! while the UDP socket is connected, make that `write` fail natively, but a
//! datagram socket tells its peer nothing when it is closed, so closes would be
//! noticed only by probing names (seconds later) — a closed port would stay bound
//! meanwhile, which real programs notice far more than the errno.
//!
//! **Listening.** The listener's `S` receives one [`AcceptRecord`] per accepted
//! connection with the connection's own `S` attached as `SCM_RIGHTS`, so that
//! `accept()` is one `recvmsg` (see `netcell_proto`).

use crate::sys;
use netcell_proto::AcceptRecord;
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// The size of the writes that fill a stand-in and the reads that drain it: a
/// socket buffer takes a few of them (every `connect` pays for these calls).
pub(crate) const FILLER_CHUNK: usize = 64 * 1024;

/// The stack's end of a stand-in and what is known of the program's end.
pub struct StandIn {
    /// `T`.
    pub(crate) fd: OwnedFd,
    /// The inode of the program's end `S`, which names the socket.
    pub(crate) inode: u64,
    /// `T` may have bytes to read (edge-triggered: cleared on `EAGAIN`).
    pub(crate) readable: bool,
    /// `T` may take bytes (cleared on `EAGAIN`).
    pub(crate) writable: bool,
    /// The program's end is gone (or shut both ways).
    pub(crate) hup: bool,
    /// Filler bytes still in `T`'s receive queue.
    pub(crate) filler: usize,
    /// The program's end of a connect that may finish at once: filled only if it
    /// did not (see `Sockets::settle_connects`).
    pub(crate) fill_later: Option<OwnedFd>,
    /// `read` returned 0: the program will write no more.
    pub(crate) app_eof: bool,
    /// The program reads no more (`EPIPE` on write); incoming bytes are discarded.
    pub(crate) app_rd_closed: bool,
    /// We shut `T`'s write side after the peer's FIN.
    pub(crate) fin_to_app: bool,
    /// The program closed its end with bytes unread (`ECONNRESET` on `T`).
    pub(crate) app_reset: bool,
    /// Where the program's end was last seen (see [`StandIn::poison`]).
    pub(crate) owner: Option<Owner>,
    /// An accepted connection handed to its listener's program end and not yet
    /// taken by an `accept` (the front end says so with `Request::Placed`): if
    /// it hangs up now, the listener was closed with it in its queue, and Linux
    /// resets such connections.
    pub(crate) awaiting_accept: bool,
    /// When a hang-up was first seen while `awaiting_accept`: the front end's
    /// `Placed` may still be on its way (it has no answer), so the hang-up waits
    /// for it (see [`crate::socket::Turns`]).
    pub(crate) hup_seen: Option<(u64, smoltcp::time::Instant)>,
    /// Since when a corked partial segment waits in `T` (see [`CORK_MAX`]).
    pub(crate) corked_since: Option<Instant>,
    /// The event loop reported readiness since the socket layer last served it.
    pub(crate) news: bool,
    /// A listener's `T`, shut for reading (the program's sends fail): never read;
    /// only a hang-up means the program closed it.
    pub(crate) shut_for_listening: bool,
    /// The program sent an urgent byte (`POLLPRI` on `T`) not yet moved.
    pub(crate) oob_pending: bool,
}

/// How long `TCP_CORK` holds a partial segment at most (tcp(7): 200 ms).
pub(crate) const CORK_MAX: Duration = Duration::from_millis(200);

/// Where a program's end of a stand-in lives: a process (or thread) and, when the
/// front end knows it, the descriptor number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Owner {
    pub(crate) pid: u32,
    pub(crate) fd: Option<i32>,
}

/// Longest abstract name of an unpaired `S`: "netcell." + pid + "." + 16 hex digits.
const UNPAIRED_NAME: usize = 48;

/// The prefix of the abstract names of this stack's unpaired stand-ins
/// (`netcell.<pid>.`), by which the front ends recognise them.
pub fn unpaired_prefix(pid: u32) -> String {
    format!("netcell.{pid}.")
}

/// A TCP socket's program end before its `connect` or `listen` (see the module
/// docs): known by its inode and the abstract name it is bound to.
pub(crate) struct Unpaired {
    pub(crate) inode: u64,
    /// Its `SO_COOKIE`: with the inode, what names it in the kernel's list of
    /// unix sockets ([`sys::SocketIdentity`]).
    pub(crate) cookie: u64,
    name: [u8; UNPAIRED_NAME],
    len: usize,
    /// Where the program holds it (carried over to the pair).
    pub(crate) owner: Option<Owner>,
    /// The program closed it (its name is free).
    pub(crate) hup: bool,
}

impl Unpaired {
    /// A new unpaired `S` and the program's descriptor.
    ///
    /// Its name is the stack's prefix and 64 bits no one can foresee: abstract
    /// names are one namespace for every user of the network namespace, and
    /// numbered names (`netcell.<pid>.<n>`, as they were) let any local user bind
    /// the next few thousand and make every `socket()` of the container fail
    /// with `ENOBUFS`. A name taken all the same (one in 2^64) is passed over.
    pub(crate) fn new() -> io::Result<(Unpaired, OwnedFd)> {
        let mut tries = 0;
        loop {
            let (name, len) = Self::next_name();
            match sys::bound_stream(&name[..len]) {
                Ok(fd) => {
                    let (inode, cookie) = sys::socket_identity(fd.as_fd())?;
                    let u = Unpaired {
                        inode,
                        cookie,
                        name,
                        len,
                        owner: None,
                        hup: false,
                    };
                    return Ok((u, fd));
                }
                Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) && tries < 8 => {
                    log::warn!(
                        "tcp: the stand-in name {:?} is taken by someone else",
                        String::from_utf8_lossy(&name[..len])
                    );
                    tries += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The server's end of a spliced connection (see the TCP module's
    /// `splice`): an accepted socket, which cannot be bound to a name; its close
    /// is found in the kernel's list of unix sockets instead
    /// ([`Unpaired::is_named`]).
    pub(crate) fn unnamed((inode, cookie): sys::SocketIdentity) -> Unpaired {
        Unpaired {
            inode,
            cookie,
            name: [0; UNPAIRED_NAME],
            len: 0,
            owner: None,
            hup: false,
        }
    }

    /// Whether its close is found by its name ([`Unpaired::closed`]); else by
    /// its inode's absence from the kernel's list of unix sockets.
    pub(crate) fn is_named(&self) -> bool {
        self.len > 0
    }

    /// A fresh name: the prefix, then 64 random bits
    /// ([`crate::iface::random_u64`]), so that the names seen in `/proc/net/unix`
    /// tell nothing of the next.
    fn next_name() -> ([u8; UNPAIRED_NAME], usize) {
        let text = format!(
            "{}{:016x}",
            unpaired_prefix(std::process::id()),
            crate::iface::random_u64()
        );
        let mut name = [0u8; UNPAIRED_NAME];
        let len = text.len().min(UNPAIRED_NAME);
        name[..len].copy_from_slice(&text.as_bytes()[..len]);
        (name, len)
    }

    /// How the kernel's list of unix sockets names it.
    pub(crate) fn identity(&self) -> sys::SocketIdentity {
        (self.inode, self.cookie)
    }

    /// Whether the program closed it, as far as its name tells: a free name is
    /// a closed socket (nobody can unbind it but its last close). A name in use
    /// may have been taken by another user the moment it was freed (names show
    /// in `/proc/net/unix`): the sweep looks such sockets up in the kernel's
    /// list now and then (see `Sockets::notice_unpaired_closes`). An unnamed
    /// one says no here.
    pub(crate) fn closed(&self) -> bool {
        self.is_named() && !sys::abstract_name_in_use(&self.name[..self.len])
    }
}

/// How the stack pairs an unpaired `S` with its `T` (see the module docs): a
/// listener made for the one `connect`, under a fresh random abstract name, and
/// closed once it accepted it (the "intake").
///
/// Not one listener for the life of the process, as it was: its name showed in
/// `/proc/net/unix`, and 1 500 threads of another user connecting to it made the
/// stack accept and close their connections in every pairing (the container's
/// connections took 47 ms each instead of 0.6 ms, and the log got 750 000 lines
/// in 14 s). A listener that lives for a few system calls under a name nobody
/// can foresee leaves nothing to aim at; a connection that gets in all the same
/// is closed unseen (checked by its peer's pid), and under the seccomp shim the
/// container cannot reach abstract sockets made outside it at all (Landlock).
///
/// Connects `program_end` (the stack's copy of an unpaired `S`) to such a
/// listener and returns the accepted end: `T`, non-blocking.
pub(crate) fn pair(program_end: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let me = std::process::id();
    let name = format!("netcell.{me}.intake.{:016x}", crate::iface::random_u64());
    let listener = sys::abstract_listener(name.as_bytes(), INTAKE_BACKLOG)?;
    sys::connect_abstract(program_end, name.as_bytes())?;
    for _ in 0..=INTAKE_BACKLOG {
        let t = sys::accept_nb(listener.as_fd())?;
        if matches!(sys::peer_cred(t.as_fd()), Ok((pid, _)) if pid == me as i32) {
            return Ok(t);
        }
        let n = FOREIGN.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        crate::device::log_rate_limited(
            n,
            "tcp: a connection to the stack's intake from another process, closed",
            &name,
        );
    }
    Err(io::Error::from_raw_os_error(libc::EAGAIN))
}

/// Connections a pairing's listener queues: more than anyone could slip in
/// between its `listen` and the stack's `connect`, so that the `connect`
/// (blocking when the program's file is) always finds room.
const INTAKE_BACKLOG: i32 = 64;

/// Foreign connections to an intake, for the log (see
/// [`crate::device::log_rate_limited`]).
static FOREIGN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many descriptors of the owner [`StandIn::poison`] looks through when the
/// known number is stale.
const POISON_SCAN: usize = 1024;

/// How much a pump call moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Moved {
    /// Bytes moved.
    pub bytes: usize,
    /// The program's end reached EOF during this call.
    pub eof: bool,
    /// The last byte moved is the program's urgent byte (`pump_in`), or an urgent
    /// byte went to the program (`pump_out`).
    pub urgent: bool,
}

enum ReadOutcome {
    Data(usize),
    Eof,
    Err(io::Error),
}

impl StandIn {
    /// Wraps the stack's end of a new pair whose program end has inode `inode`.
    pub(crate) fn new(fd: OwnedFd, inode: u64) -> Self {
        // The program's urgent byte (`MSG_OOB`) is read in line, never dropped;
        // reads stop before it (see `socket::tcp::urgent`).
        let _ = sys::set_oobinline(fd.as_fd());
        StandIn {
            fd,
            inode,
            readable: true,
            writable: true,
            hup: false,
            filler: 0,
            fill_later: None,
            app_eof: false,
            app_rd_closed: false,
            fin_to_app: false,
            app_reset: false,
            owner: None,
            awaiting_accept: false,
            hup_seen: None,
            corked_since: None,
            news: true,
            shut_for_listening: false,
            oob_pending: false,
        }
    }

    /// Whether a connection's pump has anything to look at on this side: news
    /// from the event loop, bytes or a hang-up to take, a timer or a marker.
    pub(crate) fn wants_service(&self) -> bool {
        self.news
            || self.readable
            || self.hup
            || self.corked_since.is_some()
            || self.filler > 0
            || self.awaiting_accept
            || self.oob_pending
    }

    /// Makes the program's next read of its end fail with `ECONNRESET` once the
    /// stack closes `T`, as a read after a TCP reset does on Linux (the kernel sets
    /// that error on `S` when `T` closes with bytes unread). When the program left
    /// nothing unread in `T`, one byte is written into `S` through a copy of it
    /// taken with `pidfd_getfd` from the process that holds it; without one (a
    /// process that does not let itself be copied from, an end moved elsewhere)
    /// the read sees EOF. Returns whether the reset will show.
    pub(crate) fn poison(&self) -> bool {
        if sys::queued(self.fd.as_fd()) > 0 {
            return true;
        }
        let Some(owner) = self.owner else {
            return false;
        };
        let Ok((pidfd, _)) = sys::pidfd_open_thread(owner.pid) else {
            return false;
        };
        let poisoned = |fd: i32| -> bool {
            let Ok(copy) = sys::pidfd_getfd(pidfd.as_fd(), fd) else {
                return false;
            };
            matches!(sys::inode(copy.as_fd()), Ok((ino, _)) if ino == self.inode)
                && sys::send_nb(copy.as_fd(), &[0], 0).is_ok()
        };
        if owner.fd.is_some_and(poisoned) {
            return true;
        }
        let Ok(dir) = std::fs::read_dir(format!("/proc/{}/fd", owner.pid)) else {
            return false;
        };
        let want = format!("socket:[{}]", self.inode);
        dir.take(POISON_SCAN).flatten().any(|e| {
            std::fs::read_link(e.path()).is_ok_and(|l| l.as_os_str() == want.as_str())
                && e.file_name()
                    .to_str()
                    .and_then(|n| n.parse::<i32>().ok())
                    .is_some_and(poisoned)
        })
    }

    /// Makes the program's end `s` unwritable by filling its send buffer; returns the
    /// number of filler bytes now queued towards `T`.
    ///
    /// Not when the program's bytes already wait in `T` (written from another
    /// thread while its `connect` waited for an answer): a filler behind them
    /// could not be read back without them, so they stay first and the end
    /// stays writable until the handshake ends.
    pub(crate) fn fill(&mut self, s: BorrowedFd<'_>) -> io::Result<()> {
        static CHUNK: [u8; FILLER_CHUNK] = [0; FILLER_CHUNK];
        if sys::queued(self.fd.as_fd()) > 0 {
            return Ok(());
        }
        let mut guard = 0;
        // Unwritable means no POLLOUT (an AF_UNIX stream shows POLLOUT while at most a
        // quarter of its send buffer is in use): usually one chunk.
        while sys::writable_now(s) && guard < 4096 {
            match sys::send_nb(s, &CHUNK, 0) {
                Ok(n) => self.filler += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
            guard += 1;
        }
        Ok(())
    }

    /// Reads the filler back, turning the program's end writable.
    pub(crate) fn drain_filler(&mut self, scratch: &mut [u8]) {
        while self.filler > 0 {
            let n = self.filler.min(scratch.len());
            match sys::read(self.fd.as_fd(), &mut scratch[..n]) {
                Ok(0) => break,
                Ok(got) => self.filler -= got,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // The filler was queued before we answered connect(), so it is all
                // there; anything else means the program's end is gone.
                Err(_) => break,
            }
        }
        self.filler = 0;
    }

    /// Moves bytes the network delivered from smoltcp to the program.
    /// With `urgent_at`, the byte that many bytes ahead is urgent: it goes to the
    /// program as its out-of-band byte (`MSG_OOB` on `T`).
    pub(crate) fn pump_out(
        &mut self,
        sock: &mut tcp::Socket<'_>,
        mut urgent_at: Option<usize>,
    ) -> Moved {
        let mut moved = Moved::default();
        while let Some(before) = urgent_at
            && sock.can_recv()
            && self.writable
            && !self.app_rd_closed
        {
            let fd = self.fd.as_fd();
            let r = if before == 0 {
                sock.recv(|buf| match sys::send_nb(fd, &buf[..1], libc::MSG_OOB) {
                    Ok(n) => (n, Ok(n)),
                    Err(e) => (0, Err(e)),
                })
            } else {
                sock.recv(|buf| {
                    let n = buf.len().min(before);
                    match sys::send_nb(fd, &buf[..n], 0) {
                        Ok(n) => (n, Ok(n)),
                        Err(e) => (0, Err(e)),
                    }
                })
            };
            match r {
                Ok(Ok(n)) if before == 0 && n == 1 => {
                    moved.bytes += 1;
                    moved.urgent = true;
                    urgent_at = None;
                }
                Ok(Ok(n)) => {
                    moved.bytes += n;
                    urgent_at = Some(before - n);
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => self.writable = false,
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(_)) => self.app_rd_closed = true,
                Err(_) => break,
            }
        }
        if urgent_at.is_some() {
            return moved;
        }
        while sock.can_recv() && self.writable && !self.app_rd_closed {
            let fd = self.fd.as_fd();
            let r = sock.recv(|buf| match sys::send_nb(fd, buf, 0) {
                Ok(n) => (n, Ok(n)),
                Err(e) => (0, Err(e)),
            });
            match r {
                Ok(Ok(n)) => moved.bytes += n,
                Ok(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => self.writable = false,
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(_)) => self.app_rd_closed = true,
                Err(_) => break,
            }
        }
        if self.app_rd_closed {
            // The program shut its read side: consume and drop, keeping the window open
            // as Linux does after SHUT_RD.
            while sock.can_recv() {
                match sock.recv(|buf| (buf.len(), buf.len())) {
                    Ok(n) if n > 0 => moved.bytes += n,
                    _ => break,
                }
            }
        }
        moved
    }

    /// Moves bytes the program wrote from `T` into smoltcp's send buffer.
    ///
    /// Nagle's algorithm (and `TCP_CORK`) is applied here, as Linux applies it: with
    /// `coalesce_below` set to the MSS, while sent data is unacknowledged (or, corked,
    /// always) and less than one MSS waits in the stand-in, the bytes stay there to
    /// be sent with what follows. smoltcp's own Nagle cannot be used: it counts its
    /// congestion window in bytes and starts it at 2 KiB, so with a large MSS every
    /// segment looks small and waits for an ACK that the peer delays (40 ms).
    pub(crate) fn pump_in(
        &mut self,
        sock: &mut tcp::Socket<'_>,
        coalesce_below: Option<usize>,
        corked: bool,
        now: Instant,
        sndbuf: Option<usize>,
    ) -> Moved {
        let mut moved = Moved::default();
        if let Some(mss) = coalesce_below
            && self.readable
            && !self.app_eof
            && (corked || sock.send_queue() > 0)
        {
            let waiting = sys::pending_bytes(self.fd.as_fd());
            // 0 waiting may be EOF, which must not wait; nor the last bytes before
            // a shutdown or close (Linux sends them with the FIN), nor a corked
            // segment held for CORK_MAX already.
            let expired = corked && self.corked_since.is_some_and(|t| now >= t + CORK_MAX);
            if waiting > 0
                && waiting < mss
                && !expired
                && !self.hup
                && !sys::read_shut(self.fd.as_fd())
            {
                if corked && self.corked_since.is_none() {
                    self.corked_since = Some(now);
                }
                return moved;
            }
        }
        self.corked_since = None;
        while self.readable
            && !self.app_eof
            && sock.can_send()
            && sndbuf.is_none_or(|b| sock.send_queue() < b)
        {
            let fd = self.fd.as_fd();
            if self.oob_pending && sys::at_mark(fd) {
                // The urgent byte, alone, so that the caller knows its place.
                self.oob_pending = false;
                if let Ok(ReadOutcome::Data(1)) =
                    sock.send(|buf| match sys::read(fd, &mut buf[..1]) {
                        Ok(0) => (0, ReadOutcome::Eof),
                        Ok(n) => (n, ReadOutcome::Data(n)),
                        Err(e) => (0, ReadOutcome::Err(e)),
                    })
                {
                    moved.bytes += 1;
                    moved.urgent = true;
                    return moved;
                }
                continue;
            }
            let r = sock.send(|buf| match sys::read(fd, buf) {
                Ok(0) => (0, ReadOutcome::Eof),
                Ok(n) => (n, ReadOutcome::Data(n)),
                Err(e) => (0, ReadOutcome::Err(e)),
            });
            match r {
                Ok(ReadOutcome::Data(n)) => moved.bytes += n,
                Ok(ReadOutcome::Eof) => {
                    self.app_eof = true;
                    moved.eof = true;
                }
                Ok(ReadOutcome::Err(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false
                }
                Ok(ReadOutcome::Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                // ECONNRESET: the program closed with unread bytes; the HUP path
                // answers with a RST. Any other error: the end is unusable.
                Ok(ReadOutcome::Err(e)) => {
                    self.app_reset |= e.raw_os_error() == Some(libc::ECONNRESET);
                    self.readable = false;
                    self.app_eof = true;
                    self.hup = true;
                    moved.eof = true;
                }
                Err(_) => break,
            }
        }
        moved
    }

    /// Reads and discards what the program writes where no connection takes it
    /// (a listener, a failed socket). Returns true at EOF.
    pub(crate) fn discard_input(&mut self, scratch: &mut [u8]) -> bool {
        while self.readable && !self.app_eof && self.filler == 0 {
            match sys::read(self.fd.as_fd(), scratch) {
                Ok(0) => self.app_eof = true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => self.readable = false,
            }
        }
        self.app_eof
    }

    /// Hands an accepted connection to the listener's program end. `Ok(false)` when
    /// the listener's queue is full for now.
    pub(crate) fn deliver(
        &mut self,
        record: &AcceptRecord,
        conn: BorrowedFd<'_>,
    ) -> io::Result<bool> {
        match sys::send_with_fd(self.fd.as_fd(), &record.encode(), Some(conn)) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.writable = false;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Tells the program the peer will send no more: EOF after the queued bytes.
    pub(crate) fn send_fin(&mut self) {
        if !self.fin_to_app {
            self.fin_to_app = true;
            let _ = sys::shutdown(self.fd.as_fd(), libc::SHUT_WR);
        }
    }

    /// Whether the program closed its end while bytes we wrote were unread (the
    /// kernel reports this as `ECONNRESET` on our end): Linux answers such a close
    /// with a RST.
    pub(crate) fn closed_with_unread(&mut self) -> bool {
        self.app_reset |= sys::take_so_error(self.fd.as_fd()) == libc::ECONNRESET;
        self.app_reset
    }
}
