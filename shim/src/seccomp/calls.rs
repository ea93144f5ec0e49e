//! What each intercepted system call means, translated into the socket service's
//! requests — the same requests the preload shim sends, so both front ends answer
//! alike.
//!
//! A call on a descriptor first finds out what the descriptor is ([`Held`]): a copy
//! is taken from the target (`pidfd_getfd`) and its inode looked up in the stack. A
//! stand-in is served here. A descriptor netcell cannot copy is refused, never passed
//! on (`EPERM` for a target that made itself non-dumpable, `ENFILE` when netcell is
//! out of descriptors); no descriptor is `EBADF` and a non-socket `ENOTSOCK`,
//! answered here; a socket of another family (a host socket the container got
//! from outside) gets `EPERM`: the container's network is its stack. Only a call on
//! an `AF_UNIX` socket that is not a stand-in is passed to the kernel
//! (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`).
//!
//! # Why a call passed on is harmless
//!
//! The kernel carries out a passed-on call by reading its arguments again — the
//! descriptor number too. Another thread can `dup2` a different descriptor to that
//! number between netcell's look and the kernel's (the review won that race about
//! once in 3 000 tries). So what netcell checked proves nothing about what the kernel
//! will find; what makes passing on safe is what the kernel *can* find: any
//! descriptor the container holds. Those are, by construction:
//!
//! - stand-ins, other `AF_UNIX` sockets, pipes, files: no network;
//! - host sockets on its standard descriptors only if they are connected TCP
//!   streams (`super::inherited` refuses to start otherwise), and later the TCP
//!   sockets the host uplink hands over — connected, connecting, or closed after a
//!   failure or a reset: `connect`, `bind` and `listen` on those are decided in
//!   `super::host` and never passed on, and `listen` is never passed on for any
//!   socket (on a closed host socket it would listen on the host, and Landlock has
//!   no rule for it: it is made on netcell's copy);
//! - nothing else: INET sockets are always stand-ins (`socket` is answered here,
//!   `socketpair` of another family fails in the filter); descriptors passed in with
//!   `SCM_RIGHTS` are admitted only when they are no network, because every receive
//!   that can carry them is made here, never passed on (`super::intake`); other
//!   processes' descriptors are out of reach (the Landlock wall's ptrace scope, and
//!   netcell is non-dumpable).
//!
//! And on a connected TCP stream, no call the filter passes on gains reach:
//! `connect` and `bind` are denied by the Landlock wall (TCP bind and connect,
//! `super::landlock`) and fail anyway (`EISCONN`, `EINVAL`), `listen` and `accept`
//! fail, `sendto`/`sendmsg` ignore a destination — except with `MSG_FASTOPEN`, which
//! connects without the hook Landlock checks, so a send with that flag is never passed
//! on (`super::datagram`) — and a disconnect (`connect` with `AF_UNSPEC`) leaves a
//! socket that still cannot connect. Receives are never passed on. Where the kernel
//! has no Landlock network rules (before ABI 4), the TCP part of this rests on netcell
//! alone and a raced `connect` could reach the host: `netcell run` says so when it
//! starts.

use super::table::{self, Op};
use super::target::{Call, Fail};
use super::{datagram, files::Files, ifreq};
use netcell_frontend::{self as frontend, ConnectEnd, Done, SetDone};
use netcell_proto::{ACCEPT_RECORD_LEN, MAX_SOCKADDR, Request, RequestHeader, kinds, reply_flags};
use netcell_stack::Stack;
use netcell_stack::control::service::{self, Answer};
use netcell_stack::socket::Kind;
use smoltcp::phy::Device;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

/// How a call ends.
pub enum Outcome {
    /// Return this value.
    Value(i64),
    /// Fail with this errno.
    Errno(i32),
    /// Let the kernel carry the call out.
    Continue,
    /// Already answered (a descriptor was installed with `ADDFD_FLAG_SEND`).
    Answered,
    /// Nobody waits for an answer any more.
    Gone,
    /// Wait until the descriptor is ready, then serve the call again.
    Block(Block),
    /// Return 0 for a connect, and once that answer is delivered, mark the
    /// connection of the stand-in with this inode reported.
    Connected(u64),
    /// Return this value (bytes received), and settle the receive by whether that
    /// answer was delivered (see [`Consume`]).
    Peeked(i64, Consume),
}

/// How a receive is settled once its answer went out.
pub enum Consume {
    /// Bytes peeked from a stream: taken off it if the answer was delivered
    /// ([`super::intake`]).
    Stream {
        /// A copy of the program's descriptor.
        fd: OwnedFd,
        /// How many bytes.
        len: usize,
    },
    /// A datagram taken off its stand-in: its origin leaves the stack's inbox if
    /// the answer was delivered, else it goes back ([`super::datagram::settle`]).
    Datagram(super::datagram::Taken),
}

/// A blocking call waiting for its socket.
pub struct Block {
    /// A copy of the target's descriptor, watched for readiness.
    pub fd: OwnedFd,
    /// Wait for writability (else readability).
    pub writable: bool,
    /// `SO_RCVTIMEO`/`SO_SNDTIMEO`.
    pub timeout: Option<Duration>,
    /// The errno when the timeout expires.
    pub timeout_errno: i32,
    /// A datagram socket (its stand-in's inode) whose pending error also ends the
    /// wait.
    pub watch: Option<u64>,
    /// Serve the call again after a short while, not on readiness (a stream with
    /// some but not all the bytes `MSG_WAITALL` asks for: its descriptor is ready
    /// all along).
    pub retry: bool,
}

impl Block {
    /// Waits until `fd` turns readable (or writable); `SO_RCVTIMEO` or
    /// `SO_SNDTIMEO` bounds the wait, which then fails with `timeout_errno`.
    pub fn on(fd: OwnedFd, writable: bool, timeout_errno: i32, watch: Option<u64>) -> Block {
        let name = if writable {
            libc::SO_SNDTIMEO
        } else {
            libc::SO_RCVTIMEO
        };
        let timeout = super::kernel::sock_timeout(fd.as_fd(), name);
        Block {
            fd,
            writable,
            timeout,
            timeout_errno,
            watch,
            retry: false,
        }
    }
}

impl Outcome {
    /// For the log.
    pub fn describe(&self) -> String {
        match self {
            Outcome::Value(v) => format!("{v}"),
            Outcome::Errno(e) => format!("errno {e}"),
            Outcome::Continue => "continue".into(),
            Outcome::Answered => "fd installed".into(),
            Outcome::Gone => "gone".into(),
            Outcome::Block(b) => format!("parked ({})", if b.writable { "out" } else { "in" }),
            Outcome::Connected(_) => "0 (connected)".into(),
            Outcome::Peeked(v, _) => format!("{v} (peeked)"),
        }
    }
}

impl From<Fail> for Outcome {
    fn from(f: Fail) -> Self {
        match f {
            Fail::Errno(e) => Outcome::Errno(e),
            Fail::Gone => Outcome::Gone,
        }
    }
}

/// Buffers reused from call to call (nothing is allocated per datagram).
pub struct Scratch {
    /// One datagram and its destination.
    pub buf: Box<[u8]>,
    /// One iovec array.
    pub iov: Vec<(u64, usize)>,
    /// What a receive on a descriptor that is not a stand-in takes (grown as
    /// needed: a unix datagram may be larger than an IP one).
    pub intake: Vec<u8>,
}

impl Scratch {
    pub fn new() -> Self {
        Scratch {
            buf: vec![0u8; netcell_proto::MAX_DATAGRAM + netcell_proto::MAX_SOCKADDR]
                .into_boxed_slice(),
            iov: Vec::with_capacity(64),
            intake: vec![0u8; 64 * 1024],
        }
    }
}

/// Everything one call is served with.
pub struct Cx<'a, 's, D: Device> {
    pub stack: &'s mut Stack<D>,
    pub call: Call<'a>,
    /// The call is served again after it blocked.
    pub resumed: bool,
    pub scratch: &'s mut Scratch,
    pub files: &'s Files,
}

/// A descriptor of the target that is a stand-in.
pub struct Sock {
    /// Our copy of it.
    pub fd: OwnedFd,
    /// Its inode, which names the socket in the stack.
    pub ino: u64,
    /// What it is (`None`: the stack closed it under the program, after a reset).
    pub kind: Option<Kind>,
}

impl Sock {
    /// Whether the target's descriptor is non-blocking.
    pub fn nonblocking(&self) -> bool {
        super::kernel::status_flags(self.fd.as_fd()) & libc::O_NONBLOCK != 0
    }

    pub fn is_datagram(&self) -> bool {
        matches!(self.kind, Some(Kind::Udp | Kind::Icmp | Kind::Raw))
    }

    /// Waits for this socket (see [`Block`]); `SO_RCVTIMEO` or `SO_SNDTIMEO` bounds it.
    pub fn block(self, writable: bool, timeout_errno: i32) -> Outcome {
        let watch = if self.is_datagram() {
            Some(self.ino)
        } else {
            None
        };
        Outcome::Block(Block::on(self.fd, writable, timeout_errno, watch))
    }
}

/// What a descriptor of the target is, as far as a socket call is concerned.
pub enum Held {
    /// A stand-in of this stack.
    StandIn(Sock),
    /// An `AF_UNIX` socket that is not a stand-in: the kernel's business.
    Unix(OwnedFd),
    /// Not a socket: a file, a pipe, a terminal, an event fd.
    NotSocket,
    /// A socket of another family: one the container got from outside (a host
    /// socket on its standard input), and its family. Control calls on it are
    /// refused.
    Foreign(OwnedFd, Option<i32>),
    /// A host TCP socket the uplink handed to the program (see [`super::host`]).
    Host(Sock),
}

/// Refusals logged so far (the log is rate-limited: a container can make many).
static REFUSALS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Logs why a call was refused, the first few times and then every 1000th.
pub fn log_refusal(tid: u32, why: std::fmt::Arguments<'_>) {
    let n = REFUSALS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    if n <= 5 || n.is_multiple_of(1000) {
        log::warn!("seccomp: pid {tid}: {why}: refused (refusal {n})");
    }
}

impl<'a, D: Device> Cx<'a, '_, D> {
    /// What the target's descriptor `fd` is. Every doubt refuses: a descriptor
    /// netcell cannot copy (the target made itself non-dumpable, netcell is out of
    /// descriptors) is an error, never a reason to let the kernel carry the call out.
    pub fn held(&mut self, fd: i32) -> Result<Held, Fail> {
        let copy = self.call.fd(fd)?;
        let Ok((ino, is_socket)) = netcell_sys::inode(copy.as_fd()) else {
            return Err(Fail::Errno(libc::EPERM));
        };
        if !is_socket {
            return Ok(Held::NotSocket);
        }
        let described = self.ask(ino, &Request::Describe, &mut heapless::Vec::new());
        if described.flags & reply_flags::NOT_STANDIN != 0 {
            let domain =
                super::kernel::sockopt_int(copy.as_fd(), libc::SOL_SOCKET, libc::SO_DOMAIN);
            if domain != Some(libc::AF_UNIX) {
                return Ok(Held::Foreign(copy, domain));
            }
            return Ok(Held::Unix(copy));
        }
        // A packet socket of the mirror is the kernel's to serve, as an AF_UNIX
        // socket of the program's own is (a racing `dup2` under it gains what
        // it does for one).
        if described.value == kinds::PACKET {
            return Ok(Held::Unix(copy));
        }
        if described.value == kinds::HOST_TCP {
            return Ok(Held::Host(Sock {
                fd: copy,
                ino,
                kind: None,
            }));
        }
        let kind = match described.value {
            kinds::TCP => Some(Kind::Tcp),
            kinds::UDP => Some(Kind::Udp),
            kinds::ICMP => Some(Kind::Icmp),
            kinds::RAW => Some(Kind::Raw),
            // A netlink socket is a datagram stand-in like a UDP socket's: its
            // requests go as SendTo, its replies are read with their origin.
            kinds::NETLINK => Some(Kind::Udp),
            _ => None,
        };
        Ok(Held::StandIn(Sock {
            fd: copy,
            ino,
            kind,
        }))
    }

    /// The stand-in behind the target's descriptor `fd`; `Ok(None)` for an
    /// `AF_UNIX` socket (the kernel carries the call out), `ENOTSOCK` for what is no
    /// socket, as the kernel would say.
    pub fn sock(&mut self, fd: i32) -> Result<Option<Sock>, Fail> {
        let held = self.held(fd)?;
        self.standin_of(held)
    }

    /// What [`Cx::sock`] says of a descriptor already looked at. A host socket
    /// of the uplink is the kernel's (`None`): the calls that must not reach the
    /// kernel on it are decided in [`super::host`] before this is asked.
    pub fn standin_of(&mut self, held: Held) -> Result<Option<Sock>, Fail> {
        match held {
            Held::StandIn(s) => Ok(Some(s)),
            Held::Unix(_) | Held::Host(_) => Ok(None),
            Held::NotSocket => Err(Fail::Errno(libc::ENOTSOCK)),
            Held::Foreign(_, domain) => {
                log_refusal(
                    self.call.tid,
                    format_args!("a socket of family {domain:?} from outside the container"),
                );
                Err(Fail::Errno(libc::EPERM))
            }
        }
    }

    /// The program's memory and the socket service, for the front-end core.
    pub fn parts(&mut self) -> (&Call<'a>, Direct<'_, D>) {
        let caller = service::Caller { pid: self.call.tid };
        (
            &self.call,
            Direct {
                stack: self.stack,
                caller,
                standin: None,
            },
        )
    }

    /// Serves one request about the stand-in `ino`.
    pub fn ask(
        &mut self,
        ino: u64,
        req: &Request<'_>,
        fds: &mut heapless::Vec<OwnedFd, 4>,
    ) -> Answer {
        let caller = service::Caller { pid: self.call.tid };
        service::serve(
            self.stack,
            RequestHeader { seq: 0, sock: ino },
            req,
            fds,
            caller,
        )
    }
}

/// Serves one request about the stand-in `ino` for the supervisor itself (no
/// program's call: no caller).
pub fn ask_stack<D: Device>(stack: &mut Stack<D>, ino: u64, req: &Request<'_>) -> Answer {
    service::serve(
        stack,
        RequestHeader { seq: 0, sock: ino },
        req,
        &mut heapless::Vec::new(),
        service::Caller::default(),
    )
}

/// Serves one call: as what the call table says it is ([`super::table`]).
pub fn serve<D: Device>(cx: &mut Cx<'_, '_, D>) -> Outcome {
    let Some(op) = table::op(cx.call.arch, cx.call.nr as i32) else {
        // Not in the table: the filter does not send it here.
        log::warn!(
            "seccomp: call {} (arch {:#x}) is not in the call table",
            cx.call.nr,
            cx.call.arch
        );
        return Outcome::Errno(libc::ENOSYS);
    };
    let r = match op {
        Op::Socket => socket(cx),
        Op::Connect => connect(cx),
        Op::Accept => accept(cx, 0),
        Op::Accept4 => accept(cx, cx.call.int(3)),
        Op::Bind => bind(cx),
        Op::Listen => listen(cx),
        Op::GetSockName => name(cx, false),
        Op::GetPeerName => name(cx, true),
        Op::SetSockOpt => setsockopt(cx),
        Op::GetSockOpt => getsockopt(cx),
        Op::Shutdown => shutdown(cx),
        Op::SendTo => datagram::sendto(cx),
        Op::RecvFrom => datagram::recvfrom(cx),
        Op::SendMsg => datagram::sendmsg(cx),
        Op::RecvMsg => datagram::recvmsg(cx),
        Op::SendMmsg => datagram::sendmmsg(cx),
        Op::RecvMmsg => datagram::recvmmsg(cx),
        Op::Ioctl => ifreq::ioctl(cx),
        Op::Open | Op::OpenAt | Op::OpenAt2 => cx.files.open(&cx.call, op),
    };
    r.unwrap_or_else(Outcome::from)
}

fn socket<D: Device>(cx: &mut Cx<'_, '_, D>) -> Result<Outcome, Fail> {
    let (domain, ty, protocol) = (cx.call.int(0), cx.call.int(1), cx.call.int(2));
    match domain {
        libc::AF_INET | libc::AF_INET6 => {}
        // NETLINK_ROUTE and NETLINK_SOCK_DIAG are the container's own (its
        // interfaces, addresses, routes; its sockets for ss).
        libc::AF_NETLINK if protocol == 0 || protocol == 4 => {}
        libc::AF_UNIX => return Ok(Outcome::Continue),
        // A packet socket is the mirror's (see the stack's `packet` module): a
        // kernel packet socket in a namespace that copies the container's
        // interfaces, which the kernel serves from then on.
        libc::AF_PACKET => {
            let fd = match new_socket(cx, (domain, ty, protocol))? {
                Ok(fd) => fd,
                Err(o) => return Ok(o),
            };
            return install(&cx.call, fd.as_fd(), ty & libc::SOCK_CLOEXEC != 0);
        }
        // Other netlink families never reach the host's.
        libc::AF_NETLINK => return Ok(Outcome::Errno(libc::EPERM)),
        _ => return Ok(Outcome::Errno(libc::EAFNOSUPPORT)),
    }
    let fd = match new_socket(cx, (domain, ty, protocol))? {
        Ok(fd) => fd,
        Err(o) => return Ok(o),
    };
    // Plain reads of a datagram stand-in stay native here, so ICMP errors wait as
    // the pending error instead of as markers in the stand-in.
    if let Ok((ino, _)) = netcell_sys::inode(fd.as_fd()) {
        cx.ask(
            ino,
            &Request::ErrorMarkers { on: false },
            &mut heapless::Vec::new(),
        );
    }
    install_standin(cx, fd.as_fd(), ty & libc::SOCK_CLOEXEC != 0)
}

/// The stack's new socket for `socket(domain, ty, protocol)` (a stand-in, or
/// the mirror's packet socket), `O_NONBLOCK` as asked; `Err` with the outcome
/// when the stack refuses.
fn new_socket<D: Device>(
    cx: &mut Cx<'_, '_, D>,
    (domain, ty, protocol): (i32, i32, i32),
) -> Result<Result<std::os::fd::OwnedFd, Outcome>, Fail> {
    let ans = cx.ask(
        0,
        &Request::Socket {
            domain,
            ty,
            protocol,
        },
        &mut heapless::Vec::new(),
    );
    if ans.errno != 0 {
        return Ok(Err(Outcome::Errno(ans.errno)));
    }
    let Some(fd) = ans.fd else {
        return Ok(Err(Outcome::Errno(libc::EPROTO)));
    };
    netcell_sys::set_nonblocking(fd.as_fd(), ty & libc::SOCK_NONBLOCK != 0)?;
    Ok(Ok(fd))
}

/// Installs stand-in `fd` in the target as the call's result, and tells the
/// stack where it went (after a reset the stack finds it there, see
/// `Request::Placed`).
fn install_standin<D: Device>(
    cx: &mut Cx<'_, '_, D>,
    fd: std::os::fd::BorrowedFd<'_>,
    cloexec: bool,
) -> Result<Outcome, Fail> {
    match super::kernel::addfd(cx.call.listener(), cx.call.id, fd, cloexec, true) {
        Ok(n) => {
            if let Ok((ino, _)) = netcell_sys::inode(fd) {
                cx.ask(ino, &Request::Placed { fd: n }, &mut heapless::Vec::new());
            }
            Ok(Outcome::Answered)
        }
        // ESRCH: a signal ended the call while the descriptor was on its way.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ESRCH)) => Ok(Outcome::Gone),
        Err(e) => Err(e.into()),
    }
}

/// Installs `fd` in the target as the call's result.
pub fn install(
    call: &Call<'_>,
    fd: std::os::fd::BorrowedFd<'_>,
    cloexec: bool,
) -> Result<Outcome, Fail> {
    match super::kernel::addfd(call.listener(), call.id, fd, cloexec, true) {
        Ok(_) => Ok(Outcome::Answered),
        // ESRCH: a signal ended the call while the descriptor was on its way.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ESRCH)) => Ok(Outcome::Gone),
        Err(e) => Err(e.into()),
    }
}

fn bind<D: Device>(cx: &mut Cx<'_, '_, D>) -> Result<Outcome, Fail> {
    let held = cx.held(cx.call.int(0))?;
    let Some(s) = super::host::standin_for_setup(cx, held)? else {
        return Ok(Outcome::Continue);
    };
    let (addr, len) = (cx.call.args[1], cx.call.int(2) as u32);
    let (mem, mut svc) = cx.parts();
    Ok(done(frontend::bind(mem, &mut svc, s.ino, addr, len)?))
}

fn listen<D: Device>(cx: &mut Cx<'_, '_, D>) -> Result<Outcome, Fail> {
    let held = cx.held(cx.call.int(0))?;
    if let Held::Unix(fd) = &held {
        // Made here on netcell's copy, never passed on: by the time the kernel
        // looked again, another thread could have put there a host socket of the
        // uplink whose connect failed, and `listen` on it would listen on the host
        // (Landlock has no rule for listen). The call has no argument in memory, so
        // on the copy it is the same call.
        return Ok(match netcell_sys::listen(fd.as_fd(), cx.call.int(1)) {
            Ok(()) => Outcome::Value(0),
            Err(e) => Outcome::Errno(e.raw_os_error().unwrap_or(libc::EINVAL)),
        });
    }
    let Some(s) = super::host::standin_for_setup(cx, held)? else {
        return Ok(Outcome::Continue);
    };
    let backlog = cx.call.int(1);
    let (_, mut svc) = cx.parts();
    svc.standin = Some(s.fd);
    Ok(done(frontend::listen(&mut svc, s.ino, backlog)?))
}

/// The outcome of a call the front-end core decided.
fn done(d: Done) -> Outcome {
    match d {
        Done::Value(v) => Outcome::Value(v),
        Done::Native => Outcome::Continue,
    }
}

/// The socket service called in the stack's thread: the seccomp front end's
/// transport for the front-end core.
pub struct Direct<'s, D: Device> {
    stack: &'s mut Stack<D>,
    caller: service::Caller,
    /// The program's end of the stand-in, for requests that pass it.
    standin: Option<OwnedFd>,
}

impl<D: Device> frontend::Service for Direct<'_, D> {
    fn ask<R>(
        &mut self,
        ino: u64,
        req: &Request<'_>,
        f: impl FnOnce(frontend::Reply<'_>) -> R,
    ) -> Result<R, Fail> {
        let a = service::serve(
            self.stack,
            RequestHeader { seq: 0, sock: ino },
            req,
            &mut heapless::Vec::new(),
            self.caller,
        );
        Ok(f(frontend::Reply {
            errno: a.errno,
            value: a.value,
            flags: a.flags,
            data: a.data(),
        }))
    }

    fn ask_passing<R>(
        &mut self,
        ino: u64,
        req: &Request<'_>,
        f: impl FnOnce(frontend::Reply<'_>) -> R,
    ) -> Result<R, Fail> {
        let mut fds = heapless::Vec::new();
        if let Some(fd) = self.standin.take() {
            let _ = fds.push(fd);
        }
        let a = service::serve(
            self.stack,
            RequestHeader { seq: 0, sock: ino },
            req,
            &mut fds,
            self.caller,
        );
        Ok(f(frontend::Reply {
            errno: a.errno,
            value: a.value,
            flags: a.flags,
            data: a.data(),
        }))
    }
}

fn connect<D: Device>(cx: &mut Cx<'_, '_, D>) -> Result<Outcome, Fail> {
    let s = match cx.held(cx.call.int(0))? {
        Held::Host(h) => match super::host::connect(cx, h)? {
            Ok(outcome) => return Ok(outcome),
            // Failed and reported: a fresh stand-in took its place.
            Err(s) => s,
        },
        held => match cx.standin_of(held)? {
            Some(s) => s,
            None => return Ok(Outcome::Continue),
        },
    };
    connect_standin(cx, s)
}

/// `connect` of stand-in `s`.
pub(super) fn connect_standin<D: Device>(cx: &mut Cx<'_, '_, D>, s: Sock) -> Result<Outcome, Fail> {
    let mut buf = [0u8; MAX_SOCKADDR];
    let addr = frontend::sockaddr_arg(&cx.call, cx.call.args[1], cx.call.int(2) as u32, &mut buf)?;
    // A blocking connect parks until the stand-in turns writable (the handshake
    // ended), then reports how it ended.
    if cx.resumed {
        if !netcell_sys::writable_now(s.fd.as_fd()) {
            return Ok(s.block(true, libc::EINPROGRESS));
        }
        return Ok(finished_connect(cx, s, addr));
    }
    let mut fds = heapless::Vec::new();
    let _ = fds.push(s.fd.try_clone()?);
    // Not `wait`: a signal can lose the answer, so a connection is reported
    // only once the answer arrived (`Outcome::Connected`).
    let req = Request::Connect {
        addr,
        wait: false,
        spare: false,
    };
    let mut a = cx.ask(s.ino, &req, &mut fds);
    if a.flags & reply_flags::NOT_STANDIN != 0 {
        return Ok(Outcome::Continue);
    }
    let s = match a.fd.take() {
        // A connect after a failed one: the new stand-in takes the old one's place
        // in the program (its number, close-on-exec flag and O_NONBLOCK).
        Some(new) if a.flags & reply_flags::REPLACE_STANDIN != 0 => replace(cx, s, new)?,
        _ => s,
    };
    if a.errno == libc::EINPROGRESS && super::host::is_host(&s) {
        // The uplink's fast path: the program holds the host socket now.
        return Ok(super::host::connecting(s));
    }
    match a.errno {
        0 => Ok(Outcome::Value(0)),
        libc::EINPROGRESS | libc::EALREADY if !s.nonblocking() => {
            // On lo the handshake often ends within the request's own poll: answer
            // at once instead of parking for a readiness event already there.
            if netcell_sys::writable_now(s.fd.as_fd()) {
                return Ok(finished_connect(cx, s, addr));
            }
            Ok(s.block(true, libc::EINPROGRESS))
        }
        e => Ok(Outcome::Errno(e)),
    }
}

/// Puts stand-in `new` in place of the target's descriptor of `old` (the call's
/// first argument), with its flags; returns it as the call's socket.
pub(super) fn replace<D: Device>(
    cx: &mut Cx<'_, '_, D>,
    old: Sock,
    new: OwnedFd,
) -> Result<Sock, Fail> {
    let target_fd = cx.call.int(0);
    netcell_sys::set_nonblocking(new.as_fd(), old.nonblocking())?;
    let cloexec = netcell_sys::fd_cloexec_of(cx.call.tid, target_fd).unwrap_or(false);
    let n = super::kernel::addfd_at(
        cx.call.listener(),
        cx.call.id,
        new.as_fd(),
        target_fd,
        cloexec,
    )
    .map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) => Fail::Gone,
        _ => Fail::from(e),
    })?;
    let (ino, _) = netcell_sys::inode(new.as_fd())?;
    cx.ask(ino, &Request::Placed { fd: n }, &mut heapless::Vec::new());
    Ok(Sock {
        fd: new,
        ino,
        kind: old.kind,
    })
}

/// The end of a blocking connect whose stand-in turned writable. A success is
/// answered without being marked reported: the supervisor marks it once the answer
/// reached the program, so that a call a signal interrupted at that moment and
/// restarts still gets 0 (see `Sockets::connect_outcome`).
fn finished_connect<D: Device>(cx: &mut Cx<'_, '_, D>, s: Sock, addr: &[u8]) -> Outcome {
    let (_, mut svc) = cx.parts();
    match frontend::connect_end(&mut svc, s.ino, addr, false) {
        Ok(ConnectEnd::Connected) => Outcome::Connected(s.ino),
        Ok(ConnectEnd::Pending) => s.block(true, libc::EINPROGRESS),
        Ok(ConnectEnd::Failed(e)) | Err(Fail::Errno(e)) => Outcome::Errno(e),
        Ok(ConnectEnd::Native) => Outcome::Continue,
        Err(Fail::Gone) => Outcome::Gone,
    }
}

fn accept<D: Device>(cx: &mut Cx<'_, '_, D>, flags: i32) -> Result<Outcome, Fail> {
    let Some(s) = cx.sock(cx.call.int(0))? else {
        return Ok(Outcome::Continue);
    };
    frontend::accept_flags(flags)?;
    match s.kind {
        Some(Kind::Tcp) => {}
        Some(_) => return Ok(Outcome::Errno(libc::EOPNOTSUPP)),
        None => return Ok(Outcome::Errno(libc::EINVAL)),
    }
    let (_, mut svc) = cx.parts();
    if frontend::listening(&mut svc, s.ino)? != Some(true) {
        return Ok(Outcome::Errno(libc::EINVAL));
    }
    // Peek first: the connection leaves the listener's queue only once it is
    // installed in the target, so an interrupted accept loses nothing.
    let mut rec = [0u8; ACCEPT_RECORD_LEN];
    let (n, conn, _) = match super::kernel::recv_record_fd(s.fd.as_fd(), &mut rec, true) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            if s.nonblocking() {
                return Ok(Outcome::Errno(libc::EAGAIN));
            }
            return Ok(s.block(false, libc::EAGAIN));
        }
        Err(e) => return Err(e.into()),
    };
    let record = &rec[..n.min(rec.len())];
    let (addr, lenp) = (cx.call.args[1], cx.call.args[2]);
    let Some(conn) =
        conn.filter(|_| frontend::accepted(&cx.call, record, true, addr, lenp).is_ok())
    else {
        let e = frontend::accepted(&cx.call, record, false, addr, lenp);
        if n > 0 {
            // Not a connection: off the queue with it.
            let _ = super::kernel::recv_record_fd(s.fd.as_fd(), &mut rec, false);
        }
        return Err(e.err().unwrap_or(Fail::Errno(libc::ECONNABORTED)));
    };
    netcell_sys::set_nonblocking(conn.as_fd(), flags & libc::SOCK_NONBLOCK != 0)?;
    let out = install_standin(cx, conn.as_fd(), flags & libc::SOCK_CLOEXEC != 0)?;
    if let Outcome::Answered = out {
        // Installed: now take the record off the queue (nobody else reads it:
        // every accept of the container comes through here, one at a time).
        let _ = super::kernel::recv_record_fd(s.fd.as_fd(), &mut rec, false);
    }
    Ok(out)
}

fn name<D: Device>(cx: &mut Cx<'_, '_, D>, peer: bool) -> Result<Outcome, Fail> {
    let s = match cx.held(cx.call.int(0))? {
        // The host socket's name is the container's address (the stack keeps it);
        // its peer is the kernel's answer, but for a client on the host's loopback
        // (the gateway inside): the stack says which.
        Held::Host(h) => h,
        held => match cx.standin_of(held)? {
            Some(s) => s,
            None => return Ok(Outcome::Continue),
        },
    };
    let (addr, lenp) = (cx.call.args[1], cx.call.args[2]);
    let (mem, mut svc) = cx.parts();
    Ok(done(frontend::name(
        mem, &mut svc, s.ino, peer, addr, lenp,
    )?))
}

fn setsockopt<D: Device>(cx: &mut Cx<'_, '_, D>) -> Result<Outcome, Fail> {
    let s = match cx.held(cx.call.int(0))? {
        Held::Host(h) => return super::host::setsockopt(cx, h),
        Held::Unix(fd) => return super::host::setsockopt_on_copy(cx, fd.as_fd()),
        held => match cx.standin_of(held)? {
            Some(s) => s,
            None => return Ok(Outcome::Continue),
        },
    };
    let opt = (cx.call.int(1), cx.call.int(2));
    let (val, len) = (cx.call.args[3], cx.call.int(4) as u32);
    let (mem, mut svc) = cx.parts();
    Ok(
        match frontend::setsockopt(mem, &mut svc, s.ino, opt, val, len)? {
            SetDone::Done => Outcome::Value(0),
            // The stand-in takes the option too (timeouts, buffer sizes the kernel
            // enforces on it).
            SetDone::AlsoNative | SetDone::Native => Outcome::Continue,
        },
    )
}

fn getsockopt<D: Device>(cx: &mut Cx<'_, '_, D>) -> Result<Outcome, Fail> {
    let Some(s) = cx.sock(cx.call.int(0))? else {
        return Ok(Outcome::Continue);
    };
    let opt = (cx.call.int(1), cx.call.int(2));
    let (val, lenp) = (cx.call.args[3], cx.call.args[4]);
    let (mem, mut svc) = cx.parts();
    Ok(done(frontend::getsockopt(
        mem, &mut svc, s.ino, opt, val, lenp,
    )?))
}

fn shutdown<D: Device>(cx: &mut Cx<'_, '_, D>) -> Result<Outcome, Fail> {
    let Some(s) = cx.sock(cx.call.int(0))? else {
        return Ok(Outcome::Continue);
    };
    let how = cx.call.int(1);
    let (_, mut svc) = cx.parts();
    // Agreed: the kernel shuts the stand-in too, so the FIN follows the bytes
    // written before it.
    frontend::plain(&mut svc, s.ino, &Request::Shutdown { how })?;
    Ok(Outcome::Continue)
}
