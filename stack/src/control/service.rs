//! The socket service: one [`Request`] in, one [`Answer`] out, for a socket named by
//! its stand-in's inode. Both front ends end here — the control server decodes
//! requests from the preload shim, the seccomp supervisor builds them from
//! intercepted system calls — so a socket call means the same in both.
//!
//! Each request is decode → call → encode: its arguments decoded (an address
//! parsed for the socket's family), one call of [`Sockets`](crate::socket::Sockets)
//! (which picks the protocol's, see [`crate::socket::calls`]), its result or error
//! encoded. What the service adds itself is timing: a `bind`, `listen` or
//! `socket` that finds a port or the socket limit taken looks once for sockets the
//! program closed a moment ago, and a `connect` polls the stack at once so that
//! its SYN leaves now (a datagram leaves at the end of the turn, with the others
//! of the turn).

use crate::socket::addr::{self, Domain};
use crate::socket::errno::op_errors;
use crate::socket::options::{MAX_OPT, SetOutcome};
use crate::socket::{
    BindError, ConnectError, Errno, Kind, ListenError, LookupError, SendError, ShutdownError,
    SocketError, SocketId,
};
use crate::stack::Stack;
use netcell_proto::{Grant, Request, RequestHeader, kinds, reply_flags};
use smoltcp::phy::Device;
use std::os::fd::OwnedFd;

op_errors! {
    /// Why the service refuses a request that no socket call answers.
    pub enum RequestError {
        /// A request that names no call on a socket (`Hello`, `Socket` or `Info`
        /// sent for one), or a call a socket the stack closed under its program
        /// cannot take (`EINVAL`).
        Invalid => EINVAL,
    }
}

/// The answer to one request.
pub struct Answer {
    /// 0 or a Linux errno.
    pub errno: i32,
    /// A per-operation value.
    pub value: u32,
    /// [`reply_flags`].
    pub flags: u32,
    data: [u8; MAX_OPT],
    len: usize,
    /// Data longer than `data` holds (a piece of an `iptables` table); empty for
    /// everything else.
    big: Vec<u8>,
    /// A descriptor to pass back (the new stand-in of `Socket`).
    pub fd: Option<OwnedFd>,
}

impl Answer {
    fn ok() -> Self {
        Answer {
            errno: 0,
            value: 0,
            flags: 0,
            data: [0; MAX_OPT],
            len: 0,
            big: Vec::new(),
            fd: None,
        }
    }

    fn err(e: impl Into<Errno>) -> Self {
        Answer {
            errno: e.into().raw(),
            ..Answer::ok()
        }
    }

    fn result<E: Into<Errno>>(r: Result<(), E>) -> Self {
        match r {
            Ok(()) => Answer::ok(),
            Err(e) => Answer::err(e),
        }
    }

    fn not_standin() -> Self {
        Answer {
            flags: reply_flags::NOT_STANDIN,
            ..Answer::ok()
        }
    }

    fn with_addr(domain: Domain, a: std::net::SocketAddr) -> Self {
        let mut ans = Answer::ok();
        let mut buf = [0u8; addr::MAX_ENCODED];
        let n = addr::encode(domain, a, &mut buf);
        ans.data[..n].copy_from_slice(&buf[..n]);
        ans.len = n;
        ans
    }

    /// The reply's data bytes.
    pub fn data(&self) -> &[u8] {
        if !self.big.is_empty() {
            return &self.big;
        }
        &self.data[..self.len]
    }
}

/// Who made a request: the calling process (or thread), as the front end knows it
/// (the control connection's peer, the notification's thread).
#[derive(Clone, Copy, Debug, Default)]
pub struct Caller {
    /// Its pid or tid; 0 when unknown.
    pub pid: u32,
}

/// Serves one request. `fds` are the descriptors that came with it; the service
/// takes what it needs and the rest are closed by the caller. Grants a request
/// may have changed lapse before the answer is returned (see [`super::grants`]).
pub fn serve<D: Device>(
    stack: &mut Stack<D>,
    hdr: RequestHeader,
    req: &Request<'_>,
    fds: &mut heapless::Vec<OwnedFd, 4>,
    caller: Caller,
) -> Answer {
    let changes = changes_grants(stack, hdr, req);
    let ans = serve_request(stack, hdr, req, fds, caller);
    stack.sync_grants();
    if changes {
        stack.ifs.grants_mut().invalidate();
    }
    ans
}

fn serve_request<D: Device>(
    stack: &mut Stack<D>,
    hdr: RequestHeader,
    req: &Request<'_>,
    fds: &mut heapless::Vec<OwnedFd, 4>,
    caller: Caller,
) -> Answer {
    if let Request::Socket {
        domain,
        ty,
        protocol,
    } = *req
    {
        if domain == libc::AF_NETLINK {
            let admin = caller.pid != 0 && has_cap(caller.pid, 12);
            return match stack.netlink.open(ty, protocol, caller.pid, admin) {
                Ok(fd) => Answer {
                    fd: Some(fd),
                    ..Answer::ok()
                },
                Err(e) => Answer {
                    errno: e,
                    ..Answer::ok()
                },
            };
        }
        if domain == libc::AF_PACKET {
            // Linux asks for CAP_NET_RAW; the socket is the mirror's (see
            // `crate::packet`).
            if caller.pid == 0 || !has_net_raw(caller.pid) {
                return Answer::err(Errno(libc::EPERM));
            }
            let ty = ty & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC);
            return match stack.open_packet_socket(ty, protocol) {
                Ok(fd) => Answer {
                    fd: Some(fd),
                    ..Answer::ok()
                },
                Err(e) => Answer::err(Errno(e)),
            };
        }
        let Some(domain) = Domain::from_raw(domain) else {
            return Answer::err(SocketError::FamilyNotSupported);
        };
        // Linux asks for CAP_NET_RAW in the caller's effective set.
        let may_raw = ty & 0xf == libc::SOCK_RAW && caller.pid != 0 && has_net_raw(caller.pid);
        let open = |stack: &mut Stack<D>| {
            stack.sockets.open_for_program(
                &mut stack.ifs,
                domain,
                ty,
                protocol,
                may_raw,
                caller.pid,
            )
        };
        let mut opened = open(stack);
        // At the socket limit: sockets the program closed a moment ago count no
        // more (close is synchronous on Linux).
        if opened.as_ref().is_err_and(|e| *e == SocketError::TooMany)
            && stack.sockets.notice_hangups()
        {
            stack.poll();
            opened = open(stack);
        }
        if opened.as_ref().is_err_and(|e| *e == SocketError::TooMany) {
            stack.sockets.log_socket_limit();
        }
        return match opened {
            Ok((id, fd)) => {
                log::debug!("service: socket {} ({domain:?}, type {ty:#x})", id.index());
                Answer { fd, ..Answer::ok() }
            }
            Err(e) => Answer::err(e),
        };
    }
    if let Request::Interfaces { from } = *req {
        let mut ans = Answer::ok();
        let (n, next) = stack.ifs.encode_records(from, &mut ans.data);
        ans.len = n;
        ans.value = next;
        return ans;
    }
    if let Request::Hello { .. } = req {
        // The grants generation's page (see `grants`), for the shim to map.
        let page = stack
            .ifs
            .grants()
            .page()
            .and_then(|p| p.try_clone_to_owned().ok());
        return Answer {
            value: std::process::id(),
            flags: if page.is_some() {
                reply_flags::GENERATION
            } else {
                0
            },
            fd: page,
            ..Answer::ok()
        };
    }
    if stack.netlink.has(hdr.sock) {
        return serve_netlink(stack, hdr.sock, req, caller);
    }
    let Some(id) = stack.sockets.by_inode(hdr.sock) else {
        return serve_dead(stack, hdr.sock, req);
    };
    let domain = stack.sockets.domain(id).unwrap_or(Domain::Inet);
    match *req {
        Request::Bind { addr } => Answer::result(
            addr::parse_bind(domain, addr)
                .map_err(BindError::from)
                .and_then(|t| {
                    retry_if_in_use(stack, BindError::AddrInUse, |stack| {
                        stack.sockets.bind(&mut stack.ifs, id, t)
                    })
                }),
        ),
        Request::Listen { backlog } => {
            let end = fds.pop();
            Answer::result(retry_if_in_use(stack, ListenError::AddrInUse, |stack| {
                stack.sockets.listen(id, backlog, end.as_ref())
            }))
        }
        Request::Connect { addr, wait, spare } => match addr::parse_connect(domain, addr) {
            Ok(t) => {
                let now = stack.now();
                let mut replacement = None;
                let mut r =
                    stack
                        .sockets
                        .connect(&mut stack.ifs, id, t, fds.pop(), now, &mut replacement);
                // Send the SYN now rather than at the next event.
                stack.poll();
                // A destination inside the container: the poll ran the whole
                // handshake (or the connection was spliced). A program that waits
                // for it hears so now.
                if wait
                    && matches!(r, Err(ConnectError::InProgress))
                    && stack.sockets.connect_done(id, true)
                {
                    r = Ok(());
                }
                let mut ans = Answer::result(r);
                if let Some(fd) = replacement {
                    ans.fd = Some(fd);
                    ans.flags |= reply_flags::REPLACE_STANDIN;
                } else if spare && stack.sockets.kind(id) == Some(Kind::Tcp) {
                    give_spare(stack, domain, caller, &mut ans);
                }
                ans
            }
            Err(e) => Answer::err(ConnectError::from(e)),
        },
        Request::GetSockName => match stack.sockets.local_addr(id) {
            Ok(a) => Answer::with_addr(domain, a),
            Err(e) => Answer::err(e),
        },
        Request::GetPeerName => match stack.sockets.peer_addr(id) {
            Ok(a) => Answer::with_addr(domain, a),
            Err(e) => Answer::err(e),
        },
        Request::SetSockOpt { level, name, value } => {
            match stack
                .sockets
                .setsockopt(&mut stack.ifs, id, level, name, value)
            {
                Ok(SetOutcome::AlsoNative) => Answer {
                    flags: reply_flags::APPLY_NATIVE,
                    ..Answer::ok()
                },
                Ok(SetOutcome::Done) => Answer::ok(),
                Err(e) => Answer::err(e),
            }
        }
        Request::GetSockOpt { level, name, .. } => {
            let mut ans = Answer::ok();
            match stack
                .sockets
                .getsockopt(&mut stack.ifs, id, level, name, &mut ans.data)
            {
                Ok(n) => {
                    ans.len = n;
                    ans
                }
                Err(e) => Answer::err(e),
            }
        }
        Request::Shutdown { how } => {
            Answer::result(stack.sockets.shutdown(&mut stack.ifs, id, how))
        }
        Request::SendTo {
            flags,
            addr,
            control,
            payload,
        } => match send_datagram(stack, id, addr, control, payload) {
            Ok(n) => {
                let mut ans = Answer {
                    value: n as u32,
                    ..Answer::ok()
                };
                if control.is_empty()
                    && let Some(g) = grant(stack, id, domain, flags, addr)
                {
                    g.encode(&mut ans.data);
                    ans.len = Grant::LEN;
                    ans.flags |= reply_flags::GRANT;
                }
                ans
            }
            Err(e) => Answer::err(e),
        },
        Request::Post { addr, payload, .. } => {
            // Its close now waits for posts that may still be on their way.
            stack.sockets.mark_posted(id, true);
            let r = send_datagram(stack, id, addr, &[], payload);
            stack.sockets.count_post(id, r.err());
            // Nobody reads an answer (the server sends none).
            Answer::ok()
        }
        Request::Closing => {
            // The posts before this were served: a close need not wait.
            stack.sockets.mark_posted(id, false);
            Answer::ok()
        }
        Request::OriginRing => match stack.sockets.origin_ring(id) {
            Some(fd) => Answer {
                value: 1,
                fd: Some(fd),
                ..Answer::ok()
            },
            None => Answer::ok(),
        },
        Request::Origin { len, peek, prefix } => {
            let mut ans = Answer::ok();
            if let Some(n) = stack
                .sockets
                .datagram_origin(id, len, prefix, peek, &mut ans.data)
            {
                ans.len = n;
                ans.value = 1;
            }
            ans
        }
        Request::Describe => Answer {
            value: match stack.sockets.kind(id) {
                Some(Kind::Tcp) | None => kinds::TCP,
                Some(Kind::Udp) => kinds::UDP,
                Some(Kind::Icmp) => kinds::ICMP,
                Some(Kind::Raw) => kinds::RAW,
            },
            ..Answer::ok()
        },
        Request::ConnectDone { commit } => Answer {
            value: stack.sockets.connect_done(id, commit) as u32,
            ..Answer::ok()
        },
        Request::PendingError { take } => Answer {
            value: stack.sockets.pending_error(id, take) as u32,
            ..Answer::ok()
        },
        Request::ErrorMarkers { on } => {
            stack.sockets.set_error_markers(id, on);
            Answer::ok()
        }
        Request::Placed { fd } => {
            stack.sockets.placed(id, caller.pid, fd);
            Answer::ok()
        }
        Request::Table {
            step,
            level,
            name,
            offset,
            len,
            data,
        } => {
            use crate::filter::rules::Family;
            let family = match (domain, level) {
                (Domain::Inet, libc::SOL_IP) => Family::Ip,
                (Domain::Inet6, libc::SOL_IPV6) => Family::Ip6,
                _ => return Answer::err(Errno(libc::ENOPROTOOPT)),
            };
            // Linux asks for CAP_NET_ADMIN over the network namespace.
            let admin = caller.pid != 0 && has_cap(caller.pid, 12);
            let mut filter = stack.ifs.filter().borrow_mut();
            let room = netcell_proto::MAX_MESSAGE - netcell_proto::REPLY_HEADER;
            match stack.tables.step(
                &mut filter,
                (hdr.sock, family),
                admin,
                (step, name),
                offset,
                len,
                data,
                room,
            ) {
                Ok((value, bytes)) => Answer {
                    value,
                    big: bytes.to_vec(),
                    ..Answer::ok()
                },
                Err(e) => Answer::err(Errno(e)),
            }
        }
        Request::Hello { .. } | Request::Socket { .. } | Request::Interfaces { .. } => {
            Answer::err(RequestError::Invalid)
        }
    }
}

/// Puts a spare stand-in into a connect's answer ([`reply_flags::SPARE`]): a new
/// TCP socket of `domain`, as a `socket()` would make it, that the front end
/// hands out at the program's next `socket()` without a round trip. It is a
/// socket like any other (it counts against `--max-sockets`); none is given
/// when the limit is one socket away, so that the program's own next socket of
/// another kind does not fail for it. A spare the program never takes goes
/// when its process exits, found as unpaired stand-ins are.
fn give_spare<D: Device>(stack: &mut Stack<D>, domain: Domain, caller: Caller, ans: &mut Answer) {
    if !stack.sockets.room_for(2) {
        return;
    }
    let opened = stack.sockets.open_for_program(
        &mut stack.ifs,
        domain,
        libc::SOCK_STREAM,
        0,
        false,
        caller.pid,
    );
    if let Ok((_, Some(fd))) = opened {
        ans.fd = Some(fd);
        ans.flags |= reply_flags::SPARE;
        ans.value = domain.raw() as u32;
    }
}

/// Sends a datagram of socket `id` (a `SendTo` or a `Post`). It leaves at the
/// end of this turn of the event loop, with the others a turn's requests sent
/// (the stack polls then; a poll per datagram halved the rate of a program's
/// `sendto` under seccomp); an endpoint whose queue is full of them is polled
/// out first.
fn send_datagram<D: Device>(
    stack: &mut Stack<D>,
    id: SocketId,
    addr: &[u8],
    control: &[u8],
    payload: &[u8],
) -> Result<usize, SendError> {
    let r = stack
        .sockets
        .send_to(&mut stack.ifs, id, addr, control, payload);
    if !matches!(r, Err(SendError::NoBuffers)) {
        return r;
    }
    stack.poll();
    stack
        .sockets
        .send_to(&mut stack.ifs, id, addr, control, payload)
}

/// `MSG_*` flags a posted datagram may carry: those that change nothing the
/// stack checks.
const POSTABLE_FLAGS: i32 = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL | libc::MSG_CONFIRM;

/// The grant a successful `sendto` of UDP socket `id` to `addr` earns (see
/// [`super::grants`]): none while the output filter looks at packets (its
/// verdict is per datagram), for flags beyond [`POSTABLE_FLAGS`], or for a
/// destination that is special itself.
fn grant<D: Device>(
    stack: &mut Stack<D>,
    id: SocketId,
    domain: Domain,
    flags: i32,
    addr: &[u8],
) -> Option<Grant> {
    if !stack.ifs.grants().enabled()
        || flags & !POSTABLE_FLAGS != 0
        || stack.sockets.kind(id) != Some(Kind::Udp)
        || stack.ifs.filter().borrow().watches_output()
    {
        return None;
    }
    let addr::Target::Addr(dst) = addr::parse_connect(domain, addr).ok()? else {
        return None;
    };
    // The program's sockaddr is what the shim compares: its family, its bytes.
    let (family, mut bytes) = (if dst.is_ipv4() { 4 } else { 6 }, [0u8; 16]);
    match dst.ip() {
        std::net::IpAddr::V4(v4) => bytes[..4].copy_from_slice(&v4.octets()),
        std::net::IpAddr::V6(v6) => bytes.copy_from_slice(&v6.octets()),
    }
    if (family == 4) != (domain == Domain::Inet) {
        // A v4-mapped destination of an IPv6 socket: not worth a block.
        return None;
    }
    let prefix_len = stack.ifs.grant_block(&dst.ip().into())?;
    // IPv4 datagrams are fragmented; IPv6 ones must fit the link (as the
    // stack's send checks).
    let max_payload = match dst.ip() {
        std::net::IpAddr::V4(_) => crate::socket::udp::MAX_UDP4,
        std::net::IpAddr::V6(ip) => {
            let r = stack.ifs.route(&ip.into())?;
            stack.ifs.get(r.iface).mtu.saturating_sub(48)
        }
    };
    stack.sync_grants();
    Some(Grant {
        family,
        prefix_len,
        addr: bytes,
        generation: stack.ifs.grants().generation(),
        max_payload: max_payload.min(usize::from(u16::MAX)) as u16,
    })
}

/// Whether a request may change what a grant promised (see [`super::grants`]):
/// the generation moves after serving it, before its answer leaves.
fn changes_grants<D: Device>(stack: &Stack<D>, hdr: RequestHeader, req: &Request<'_>) -> bool {
    match req {
        Request::Bind { .. }
        | Request::Connect { .. }
        | Request::SetSockOpt { .. }
        | Request::Shutdown { .. }
        | Request::Listen { .. }
        | Request::ErrorMarkers { .. } => {
            stack
                .sockets
                .by_inode(hdr.sock)
                .and_then(|id| stack.sockets.kind(id))
                != Some(Kind::Tcp)
        }
        Request::SendTo { .. } => stack.netlink.has(hdr.sock),
        Request::Table { .. } => true,
        _ => false,
    }
}

/// Runs `f`; if it fails with `in_use` (the port is taken), first lets the stack
/// notice sockets the program closed a moment ago (see
/// [`crate::socket::Sockets::notice_hangups`]) and tries again.
fn retry_if_in_use<D: Device, E: PartialEq>(
    stack: &mut Stack<D>,
    in_use: E,
    mut f: impl FnMut(&mut Stack<D>) -> Result<(), E>,
) -> Result<(), E> {
    match f(stack) {
        Err(e) if e == in_use && stack.sockets.notice_hangups() => {
            stack.poll();
            f(stack)
        }
        r => r,
    }
}

/// Answers for an inode the stack no longer serves: from its tombstone when the
/// stack closed the socket under the program (after a reset), else "not a
/// stand-in" so the front end performs the call natively.
/// A request about one of the container's netlink sockets (see [`crate::netlink`]).
fn serve_netlink<D: Device>(
    stack: &mut Stack<D>,
    inode: u64,
    req: &Request<'_>,
    caller: Caller,
) -> Answer {
    let errno = |e: i32| Answer {
        errno: e,
        ..Answer::ok()
    };
    let nl = &mut stack.netlink;
    match *req {
        Request::Describe => Answer {
            value: kinds::NETLINK,
            ..Answer::ok()
        },
        Request::Bind { addr } => nl.bind(inode, addr).map_or_else(errno, |()| Answer::ok()),
        Request::GetSockName | Request::GetPeerName => {
            let mut ans = Answer::ok();
            match nl.name(inode, &mut ans.data) {
                Ok(n) if matches!(req, Request::GetSockName) => ans.len = n,
                // The peer is the kernel (port 0).
                Ok(_) => ans.len = crate::netlink::write_addr(0, 0, &mut ans.data),
                Err(e) => return errno(e),
            }
            ans
        }
        Request::SetSockOpt { level, name, value } => {
            match nl.setsockopt(inode, level, name, value) {
                Ok(true) => Answer {
                    flags: reply_flags::APPLY_NATIVE,
                    ..Answer::ok()
                },
                Ok(false) => Answer::ok(),
                Err(e) => errno(e),
            }
        }
        Request::GetSockOpt { level, name, .. } => match nl.getsockopt(inode, level, name) {
            Some(v) => {
                let mut ans = Answer::ok();
                ans.data[..4].copy_from_slice(&v.to_ne_bytes());
                ans.len = 4;
                ans
            }
            None if level == libc::SOL_SOCKET => Answer::not_standin(),
            None => errno(libc::ENOPROTOOPT),
        },
        Request::SendTo { addr, payload, .. } => {
            // Changes need CAP_NET_ADMIN, as on Linux (CAP_NET_ADMIN in the
            // container's user namespace: root in the container).
            let admin = caller.pid != 0 && has_cap(caller.pid, 12);
            match nl.send(inode, &mut stack.ifs, &stack.sockets, addr, payload, admin) {
                Ok(n) => Answer {
                    value: n as u32,
                    ..Answer::ok()
                },
                Err(e) => errno(e),
            }
        }
        Request::Origin { .. } => {
            // Every datagram comes from the kernel (port 0).
            let mut ans = Answer::ok();
            ans.data[0] = 12;
            ans.len = 1 + crate::netlink::write_addr(0, 0, &mut ans.data[1..]);
            ans.value = 1;
            ans
        }
        // connect to the kernel's address: the default destination already.
        Request::Connect { addr, .. } => match addr.get(4..8) {
            Some(p) if p == [0, 0, 0, 0] => Answer::ok(),
            Some(_) => errno(libc::ECONNREFUSED),
            None => errno(libc::EINVAL),
        },
        Request::Shutdown { .. } | Request::ErrorMarkers { .. } | Request::Placed { .. } => {
            Answer::ok()
        }
        Request::PendingError { .. } | Request::ConnectDone { .. } => Answer::ok(),
        _ => errno(libc::EOPNOTSUPP),
    }
}

fn serve_dead<D: Device>(stack: &mut Stack<D>, inode: u64, req: &Request<'_>) -> Answer {
    if let Request::Describe = req
        && stack.ifs.capture().borrow().owns_packet_socket(inode)
    {
        return Answer {
            value: kinds::PACKET,
            ..Answer::ok()
        };
    }
    if let Some(h) = stack.sockets.handed(inode) {
        // A host socket of the uplink's fast path: the kernel serves it, but its
        // name is the container's.
        return match *req {
            Request::Describe => Answer {
                value: kinds::HOST_TCP,
                ..Answer::ok()
            },
            Request::GetSockName => Answer::with_addr(h.domain, h.local),
            Request::GetPeerName => match h.peer {
                Some(p) => Answer::with_addr(h.domain, p),
                None => Answer::not_standin(),
            },
            _ => Answer::not_standin(),
        };
    }
    let Some(t) = stack.sockets.tombstone(inode) else {
        return Answer::not_standin();
    };
    match *req {
        Request::Describe => Answer {
            value: kinds::CLOSED,
            ..Answer::ok()
        },
        Request::GetSockName => {
            let a = t
                .local
                .unwrap_or_else(|| std::net::SocketAddr::new(t.domain.any(), 0));
            Answer::with_addr(t.domain, a)
        }
        Request::GetPeerName => Answer::err(LookupError::NotConnected),
        Request::Shutdown { .. } => Answer::err(ShutdownError::NotConnected),
        Request::GetSockOpt { level, name, .. } => {
            let mut ans = Answer::ok();
            match t.getsockopt(inode, level, name, &mut ans.data) {
                Ok(n) => {
                    ans.len = n;
                    ans
                }
                Err(e) => Answer::err(e),
            }
        }
        Request::SetSockOpt { .. } => Answer::ok(),
        // The error the connection ended with, else the reset.
        Request::Connect { .. } if t.error != 0 => Answer {
            errno: t.error,
            ..Answer::ok()
        },
        Request::Connect { .. } => Answer::err(ConnectError::Reset),
        _ => Answer::err(RequestError::Invalid),
    }
}

/// The socket a request names, for callers that have resolved it already.
pub fn lookup<D: Device>(stack: &Stack<D>, inode: u64) -> Option<SocketId> {
    stack.sockets.by_inode(inode)
}

/// Whether process (or thread) `pid` has `CAP_NET_RAW` over this stack: in its
/// effective set (`/proc/PID/status`) *and* in the user namespace the stack runs
/// in. Linux checks the capability in the user namespace that owns the network
/// namespace; a container's network is this stack, owned by the stack's user
/// namespace, so capabilities a program holds in a namespace it made itself
/// (`unshare -Ur`) do not count. Anything that cannot be read answers no.
fn has_net_raw(pid: u32) -> bool {
    has_cap(pid, 13)
}

/// Whether process `pid` holds capability `cap` in its effective set, in netcell's
/// user namespace (a capability of another namespace means nothing here).
fn has_cap(pid: u32, cap: u32) -> bool {
    let ns = |p: &str| {
        std::fs::metadata(p).ok().map(|m| {
            use std::os::unix::fs::MetadataExt;
            (m.dev(), m.ino())
        })
    };
    let theirs = ns(&format!("/proc/{pid}/ns/user"));
    if theirs.is_none() || theirs != ns("/proc/self/ns/user") {
        return false;
    }
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << cap) != 0)
}
