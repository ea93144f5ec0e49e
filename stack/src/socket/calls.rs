//! The socket calls, one method of [`Sockets`] each: what the socket service
//! ([`crate::control::service`]) calls for a request, after decoding it, and what
//! the embedding API calls. A call that means something different per protocol
//! picks the protocol's own (`tcp_bind`, `udp_bind`, `icmp_bind`, `raw_bind`, ...)
//! by the socket's [`Kind`]; the protocol modules hold the semantics. The options
//! are `sockopt`'s.

use super::addr::{self, Domain, Target};
use super::errno::*;
use super::options::Options;
use super::tcp::TcpState;
use super::{Kind, Proto, Socket, SocketId, Sockets, budget, raw, udp};
use crate::iface::Interfaces;
use crate::standin::{Owner, StandIn, Unpaired};
use crate::sys;
use smoltcp::time::Instant;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};

impl Sockets {
    /// Whether `n` more sockets fit under `--max-sockets`.
    pub(crate) fn room_for(&self, n: usize) -> bool {
        self.live + n <= self.cfg.max_sockets
    }

    /// Creates a socket. With `standin`, also the stand-in pair: the program's end is
    /// returned for the front end to hand over.
    pub fn open(
        &mut self,
        domain: Domain,
        ty: i32,
        protocol: i32,
        standin: bool,
        may_raw: bool,
    ) -> Result<(SocketId, Option<OwnedFd>), SocketError> {
        // Linux: any bit beyond the type mask and the two flags is EINVAL.
        if ty & !(0xf | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) != 0 {
            return Err(SocketError::BadFlags);
        }
        if !self.room_for(1) {
            return Err(SocketError::TooMany);
        }
        let base = ty & 0xf;
        let kind = match base {
            libc::SOCK_STREAM => {
                if protocol != 0 && protocol != libc::IPPROTO_TCP {
                    return Err(SocketError::ProtocolNotSupported);
                }
                Kind::Tcp
            }
            libc::SOCK_DGRAM => match (protocol, domain) {
                (0 | libc::IPPROTO_UDP, _) => Kind::Udp,
                (libc::IPPROTO_ICMP, Domain::Inet) | (libc::IPPROTO_ICMPV6, Domain::Inet6) => {
                    Kind::Icmp
                }
                _ => return Err(SocketError::ProtocolNotSupported),
            },
            // Linux asks for CAP_NET_RAW; the front end says whether the caller has it.
            libc::SOCK_RAW if !may_raw => return Err(SocketError::NotPermitted),
            libc::SOCK_RAW => {
                // Raw TCP and UDP sockets receive copies of the packets as on
                // Linux (the stack still handles them) and send what they build.
                // IPPROTO_RAW (255) is send-only, with the header included.
                if !(1..=255).contains(&protocol) {
                    return Err(SocketError::ProtocolNotSupported);
                }
                Kind::Raw
            }
            libc::SOCK_SEQPACKET | libc::SOCK_RDM => return Err(SocketError::TypeNotSupported),
            _ => return Err(SocketError::TypeNotSupported),
        };
        let fd_error = |e: std::io::Error| match e.raw_os_error() {
            Some(libc::EMFILE) | Some(libc::ENFILE) => SocketError::NoFds,
            _ => SocketError::NoBuffers,
        };
        let (si, unpaired, program_end) = match (standin, kind) {
            (false, _) => (None, None, None),
            // A TCP socket's program end stays unpaired until connect or listen.
            (true, Kind::Tcp) => {
                let (u, fd) = Unpaired::new().map_err(fd_error)?;
                (None, Some(u), Some(fd))
            }
            (true, Kind::Udp | Kind::Icmp | Kind::Raw) => {
                let (ours, theirs) = udp::datagram_pair().map_err(fd_error)?;
                let (inode, _) = sys::inode(theirs.as_fd()).map_err(|_| SocketError::NoBuffers)?;
                (Some(StandIn::new(ours, inode)), None, Some(theirs))
            }
        };
        let s = Socket {
            domain,
            opts: Options::default(),
            local: None,
            binding: None,
            autobound: false,
            error: 0,
            markers: true,
            standin: si,
            unpaired,
            proto: match kind {
                Kind::Tcp => Proto::Tcp(TcpState::Closed { failed: None }),
                Kind::Udp => Proto::Udp(Box::default()),
                Kind::Icmp => Proto::Icmp(Box::default()),
                Kind::Raw => Proto::Raw(Box::new(raw::RawState::new(protocol as u8))),
            },
            cookie: 0,
        };
        Ok((self.insert(s), program_end))
    }

    /// The socket's local address (`getsockname`): the wildcard with port 0 when
    /// unbound, as Linux answers.
    pub fn local_addr(&self, id: SocketId) -> Result<SocketAddr, LookupError> {
        let s = self.get(id).ok_or(LookupError::NoSuchSocket)?;
        Ok(s.local
            .unwrap_or_else(|| SocketAddr::new(s.domain.any(), 0)))
    }

    /// `socket(2)` for a program: [`Sockets::open`] with a stand-in, whose program
    /// end is returned for the front end to hand over. A raw socket's buffers are
    /// made now, so that many of them cannot overrun the container's budget before
    /// they are served.
    pub fn open_for_program(
        &mut self,
        ifs: &mut Interfaces,
        domain: Domain,
        ty: i32,
        protocol: i32,
        may_raw: bool,
        owner: u32,
    ) -> Result<(SocketId, Option<OwnedFd>), SocketError> {
        let (id, fd) = self.open(domain, ty, protocol, true, may_raw)?;
        let owner = (owner != 0).then_some(Owner {
            pid: owner,
            fd: None,
        });
        if let Some(s) = self.get_mut(id) {
            if let Some(si) = s.standin.as_mut() {
                si.owner = owner;
            }
            if let Some(u) = s.unpaired.as_mut() {
                u.owner = owner;
            }
        }
        if self.kind(id) == Some(Kind::Raw) && !self.raw_open_on(ifs, id) {
            self.raw_close(ifs, id);
            return Err(SocketError::NoBuffers);
        }
        Ok((id, fd))
    }

    /// `bind(2)`.
    pub fn bind(
        &mut self,
        ifs: &mut Interfaces,
        id: SocketId,
        target: Target,
    ) -> Result<(), BindError> {
        match self.kind(id).ok_or(BindError::NoSuchSocket)? {
            Kind::Tcp => self.tcp_bind(ifs, id, target),
            Kind::Udp => self.udp_bind(ifs, id, target),
            Kind::Icmp => self.icmp_bind(ifs, id, target),
            Kind::Raw => self.raw_bind(ifs, id, target),
        }
    }

    /// `listen(2)`: stream sockets only.
    pub fn listen(
        &mut self,
        id: SocketId,
        backlog: i32,
        program_end: Option<&OwnedFd>,
    ) -> Result<(), ListenError> {
        match self.kind(id).ok_or(ListenError::NoSuchSocket)? {
            Kind::Tcp => self.tcp_listen(id, backlog, program_end),
            Kind::Udp | Kind::Icmp | Kind::Raw => Err(ListenError::NotSupported),
        }
    }

    /// `connect(2)`. A TCP socket answers [`ConnectError::InProgress`] and
    /// connects in the background (see `tcp`); `program_end` is its stand-in as the
    /// program holds it. A datagram socket sets (or, with `AF_UNSPEC`, dissolves)
    /// its default destination at once.
    pub fn connect(
        &mut self,
        ifs: &mut Interfaces,
        id: SocketId,
        target: Target,
        program_end: Option<OwnedFd>,
        now: Instant,
        replacement: &mut Option<OwnedFd>,
    ) -> Result<(), ConnectError> {
        let target = self.this_host(id, target);
        match self.kind(id).ok_or(ConnectError::NoSuchSocket)? {
            Kind::Tcp => self.tcp_connect(ifs, id, target, program_end, now, replacement),
            Kind::Udp => self.udp_connect(ifs, id, target),
            Kind::Icmp => self.icmp_connect(ifs, id, target),
            Kind::Raw => self.raw_connect(ifs, id, target),
        }
    }

    /// A destination with the unspecified address made this host's, as Linux
    /// does (see [`addr::this_host`]).
    fn this_host(&self, id: SocketId, target: Target) -> Target {
        match target {
            Target::Addr(a) => {
                let bound = self.get(id).and_then(|s| s.local).map(|l| l.ip());
                Target::Addr(addr::this_host(a, bound))
            }
            t => t,
        }
    }

    /// Whether a TCP connect finished (see [`Sockets::connect_outcome`]), marking
    /// it reported when `commit` (a front end's answer reached the program).
    pub(crate) fn connect_done(&mut self, id: SocketId, commit: bool) -> bool {
        let done = self.connect_outcome(id) == Some(true);
        if done && commit {
            self.connect_reported(id);
        }
        done
    }

    /// Logs that `socket()` fails at the socket limit (`--max-sockets`).
    pub(crate) fn log_socket_limit(&self) {
        budget::log_limit(format_args!(
            "{} sockets (--max-sockets): socket() fails with EMFILE",
            self.live
        ));
    }

    /// The program's end of `id`'s stand-in was installed as descriptor `fd` of
    /// process (or thread) `pid`: after a reset the stack finds it there, to make
    /// the program's next read fail with `ECONNRESET`.
    pub fn placed(&mut self, id: SocketId, pid: u32, fd: i32) {
        let Some(s) = self.get_mut(id).filter(|_| pid != 0) else {
            return;
        };
        let owner = Some(Owner { pid, fd: Some(fd) });
        if let Some(si) = s.standin.as_mut() {
            si.owner = owner;
            si.awaiting_accept = false;
        }
        if let Some(u) = s.unpaired.as_mut() {
            u.owner = owner;
        }
    }

    /// `getpeername(2)`: a connection's peer, a datagram socket's default
    /// destination.
    pub fn peer_addr(&self, id: SocketId) -> Result<SocketAddr, LookupError> {
        match self.kind(id).ok_or(LookupError::NoSuchSocket)? {
            Kind::Tcp => self.tcp_peer_addr(id),
            Kind::Udp | Kind::Icmp | Kind::Raw => self.datagram_peer(id),
        }
    }

    /// `shutdown(2)`.
    pub fn shutdown(
        &mut self,
        ifs: &mut Interfaces,
        id: SocketId,
        how: i32,
    ) -> Result<(), ShutdownError> {
        match self.kind(id).ok_or(ShutdownError::NoSuchSocket)? {
            Kind::Tcp => self.tcp_shutdown(ifs, id, how),
            Kind::Udp | Kind::Icmp | Kind::Raw => self.datagram_shutdown(id, how),
        }
    }

    /// Sends one datagram (`sendto`, `sendmsg`; a connected socket's plain sends
    /// go through its stand-in): `addr` is the destination as the program passed
    /// it (a C `sockaddr`; empty: the connected peer), `control` the ancillary data.
    /// Returns the bytes sent. A stream socket's data moves over its stand-in: it
    /// refuses before the address is read.
    pub fn send_to(
        &mut self,
        ifs: &mut Interfaces,
        id: SocketId,
        addr: &[u8],
        control: &[u8],
        payload: &[u8],
    ) -> Result<usize, SendError> {
        let s = self.get(id).ok_or(SendError::NoSuchSocket)?;
        let domain = s.domain;
        let dst = || match addr {
            [] => Ok(None),
            a => addr::parse_connect(domain, a).map(|t| Some(self.this_host(id, t))),
        };
        match s.kind() {
            Kind::Tcp => Err(SendError::NotSupported),
            Kind::Udp => self.udp_sendto(ifs, id, dst()?, control, payload),
            Kind::Icmp => self.icmp_sendto(ifs, id, dst()?, payload),
            Kind::Raw => self.raw_sendto(ifs, id, dst()?, payload),
        }
    }

    /// The pending error (`SO_ERROR`), taken (reported) or only looked at.
    pub(crate) fn pending_error(&mut self, id: SocketId, take: bool) -> i32 {
        if take {
            self.take_error(id)
        } else {
            self.peek_error(id)
        }
    }

    /// Takes the pending error (`SO_ERROR`).
    pub(crate) fn take_error(&mut self, id: SocketId) -> i32 {
        self.get_mut(id).map_or(0, |s| std::mem::take(&mut s.error))
    }

    /// The pending error without taking it.
    pub(crate) fn peek_error(&self, id: SocketId) -> i32 {
        self.get(id).map_or(0, |s| s.error)
    }

    /// Chooses how a datagram socket learns of ICMP errors: markers in its stand-in
    /// (the default), or the pending error only (see `Socket`'s `markers`).
    pub(crate) fn set_error_markers(&mut self, id: SocketId, on: bool) {
        if let Some(s) = self.get_mut(id) {
            s.markers = on;
        }
    }
}
