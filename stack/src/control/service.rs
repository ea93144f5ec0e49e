//! The socket service: one [`Request`] in, one [`Answer`] out, for a socket named by
//! its stand-in's inode. Both front ends end here — the control server decodes
//! requests from the preload shim, the seccomp supervisor builds them from
//! intercepted system calls — so a socket call means the same in both.

use crate::socket::addr::{self, Domain};
use crate::socket::options::{self, Facts, MAX_OPT, Options, SetOutcome};
use crate::socket::{Errno, Kind, SocketError, SocketId};
use crate::stack::Stack;
use netcell_proto::{Request, RequestHeader, kinds, reply_flags};
use smoltcp::phy::Device;
use std::os::fd::OwnedFd;

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
/// takes what it needs and the rest are closed by the caller.
pub fn serve<D: Device>(
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
        let Some(domain) = Domain::from_raw(domain) else {
            return Answer::err(Errno(libc::EAFNOSUPPORT));
        };
        // Linux asks for CAP_NET_RAW in the caller's effective set.
        let may_raw = ty & 0xf == libc::SOCK_RAW && caller.pid != 0 && has_net_raw(caller.pid);
        let mut opened = stack.sockets.open(domain, ty, protocol, true, may_raw);
        // At the socket limit: sockets the program closed a moment ago count no
        // more (close is synchronous on Linux).
        if opened.as_ref().is_err_and(|e| *e == SocketError::TooMany)
            && stack.sockets.notice_hangups()
        {
            stack.poll();
            opened = stack.sockets.open(domain, ty, protocol, true, may_raw);
        }
        return match opened {
            // A raw socket's buffers are made now, so that many of them cannot
            // overrun the container's budget before they are served.
            Ok((id, _))
                if stack.sockets.kind(id) == Some(Kind::Raw)
                    && !stack.sockets.raw_open_on(&mut stack.ifs, id) =>
            {
                stack.sockets.drop_socket(&mut stack.ifs, id);
                Answer::err(Errno(libc::ENOBUFS))
            }
            Ok((id, fd)) => {
                log::debug!("service: socket {} ({domain:?}, type {ty:#x})", id.index());
                Answer { fd, ..Answer::ok() }
            }
            Err(e) => Answer::err(e),
        };
    }
    if let Request::Hello { .. } = req {
        return Answer {
            value: std::process::id(),
            ..Answer::ok()
        };
    }
    let Some(id) = stack.sockets.by_inode(hdr.sock) else {
        return serve_dead(stack, hdr.sock, req);
    };
    let domain = stack.sockets.domain(id).unwrap_or(Domain::Inet);
    let kind = stack.sockets.kind(id).unwrap_or(Kind::Tcp);
    match *req {
        Request::Bind { addr } => match addr::parse_bind(domain, addr) {
            Ok(t) => {
                let mut bind = |stack: &mut Stack<D>| -> Result<(), Errno> {
                    match kind {
                        Kind::Tcp => stack.sockets.bind(&stack.ifs, id, t).map_err(Errno::from),
                        Kind::Udp => stack.sockets.udp_bind(&mut stack.ifs, id, t),
                        Kind::Icmp => stack.sockets.icmp_bind(&stack.ifs, id, t),
                        Kind::Raw => stack.sockets.raw_bind(&stack.ifs, id, t),
                    }
                };
                Answer::result(retry_if_in_use(stack, &mut bind))
            }
            Err(e) => Answer::err(e),
        },
        Request::Listen { backlog } => match kind {
            Kind::Tcp => Answer::result(retry_if_in_use(stack, &mut |stack: &mut Stack<D>| {
                stack.sockets.listen(id, backlog).map_err(Errno::from)
            })),
            Kind::Udp | Kind::Icmp | Kind::Raw => Answer::err(Errno(libc::EOPNOTSUPP)),
        },
        Request::Connect { addr } => match addr::parse_connect(domain, addr) {
            Ok(t) => {
                let r = match kind {
                    Kind::Tcp => {
                        let now = stack.now();
                        let fd = fds.pop();
                        stack
                            .sockets
                            .connect(&mut stack.ifs, id, t, fd, now)
                            .map_err(Errno::from)
                    }
                    Kind::Udp => stack.sockets.udp_connect(&mut stack.ifs, id, t),
                    Kind::Icmp => stack.sockets.icmp_connect(&stack.ifs, id, t),
                    Kind::Raw => stack.sockets.raw_connect(&stack.ifs, id, t),
                };
                // Send the SYN now rather than at the next event.
                stack.poll();
                Answer::result(r)
            }
            Err(e) => Answer::err(e),
        },
        Request::GetSockName => match stack.sockets.local_addr(id) {
            Ok(a) => Answer::with_addr(domain, a),
            Err(e) => Answer::err(e),
        },
        Request::GetPeerName => match kind {
            Kind::Tcp => match stack.sockets.peer_addr(id) {
                Ok(a) => Answer::with_addr(domain, a),
                Err(e) => Answer::err(e),
            },
            Kind::Udp | Kind::Icmp | Kind::Raw => match stack.sockets.datagram_peer(id) {
                Some(a) => Answer::with_addr(domain, a),
                None => Answer::err(Errno(libc::ENOTCONN)),
            },
        },
        Request::SetSockOpt { level, name, value } => {
            if let Some((d, inbox)) = stack.sockets.inbox_mut(id)
                && let Some(r) = inbox.setsockopt(d, level, name, value)
            {
                return Answer::result(r);
            }
            if let Some(r) = stack.sockets.raw_setsockopt(id, level, name, value) {
                return Answer::result(r);
            }
            if kind == Kind::Udp {
                match stack
                    .sockets
                    .udp_setsockopt(&mut stack.ifs, id, level, name, value)
                {
                    Ok(true) => return Answer::ok(),
                    Ok(false) => {}
                    Err(e) => return Answer::err(e),
                }
            }
            match stack.setsockopt(id, level, name, value) {
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
            if let Some(on) = stack
                .sockets
                .inbox_mut(id)
                .and_then(|(_, i)| i.getsockopt(level, name))
            {
                ans.data[..4].copy_from_slice(&(on as i32).to_ne_bytes());
                ans.len = 4;
                return ans;
            }
            let r = match stack.sockets.udp_getsockopt(id, level, name, &mut ans.data) {
                Some(r) => r,
                None => match stack.sockets.raw_getsockopt(id, level, name, &mut ans.data) {
                    Some(r) => r,
                    None => stack.getsockopt(id, level, name, &mut ans.data),
                },
            };
            match r {
                Ok(n) => {
                    ans.len = n;
                    ans
                }
                Err(e) => Answer::err(e),
            }
        }
        Request::Shutdown { how } => match kind {
            Kind::Tcp => Answer::result(stack.shutdown(id, how)),
            Kind::Udp | Kind::Icmp | Kind::Raw => {
                if !(libc::SHUT_RD..=libc::SHUT_RDWR).contains(&how) {
                    Answer::err(Errno(libc::EINVAL))
                } else if stack.sockets.datagram_peer(id).is_none() {
                    Answer::err(Errno(libc::ENOTCONN))
                } else {
                    Answer::ok()
                }
            }
        },
        Request::SendTo {
            addr,
            control,
            payload,
            ..
        } => {
            if kind == Kind::Tcp {
                return Answer::err(Errno(libc::EOPNOTSUPP));
            }
            let target = if addr.is_empty() {
                None
            } else {
                match addr::parse_connect(domain, addr) {
                    Ok(t) => Some(t),
                    Err(e) => return Answer::err(e),
                }
            };
            let r = match kind {
                Kind::Icmp => stack
                    .sockets
                    .icmp_sendto(&mut stack.ifs, id, target, payload),
                Kind::Raw => stack
                    .sockets
                    .raw_sendto(&mut stack.ifs, id, target, payload),
                _ => stack
                    .sockets
                    .udp_sendto(&mut stack.ifs, id, target, control, payload),
            };
            match r {
                Ok(n) => {
                    // Out on the wire now, not at the next event.
                    stack.poll();
                    Answer {
                        value: n as u32,
                        ..Answer::ok()
                    }
                }
                Err(e) => Answer::err(e),
            }
        }
        Request::Origin { len, peek, prefix } => {
            let mut ans = Answer::ok();
            match stack
                .sockets
                .datagram_origin(id, len, prefix, peek, &mut ans.data)
            {
                Some(n) => {
                    ans.len = n;
                    ans.value = 1;
                    ans
                }
                None => ans,
            }
        }
        Request::Describe => Answer {
            value: match kind {
                Kind::Tcp => kinds::TCP,
                Kind::Udp => kinds::UDP,
                Kind::Icmp => kinds::ICMP,
                Kind::Raw => kinds::RAW,
            },
            ..Answer::ok()
        },
        Request::ConnectDone { commit } => {
            let done = stack.sockets.connect_outcome(id) == Some(true);
            if done && commit {
                stack.sockets.connect_reported(id);
            }
            Answer {
                value: done as u32,
                ..Answer::ok()
            }
        }
        Request::PendingError { take } => Answer {
            value: if take {
                stack.sockets.take_error(id)
            } else {
                stack.sockets.peek_error(id)
            } as u32,
            ..Answer::ok()
        },
        Request::ErrorMarkers { on } => {
            stack.sockets.set_error_markers(id, on);
            Answer::ok()
        }
        Request::Hello { .. } | Request::Socket { .. } | Request::Info => {
            Answer::err(Errno(libc::EINVAL))
        }
    }
}

/// Runs `f`; if the port is taken, first lets the stack notice sockets the
/// program closed a moment ago (see [`crate::socket::Sockets::notice_hangups`]) and
/// tries again.
fn retry_if_in_use<D: Device>(
    stack: &mut Stack<D>,
    f: &mut dyn FnMut(&mut Stack<D>) -> Result<(), Errno>,
) -> Result<(), Errno> {
    match f(stack) {
        Err(e) if e.raw() == libc::EADDRINUSE && stack.sockets.notice_hangups() => {
            stack.poll();
            f(stack)
        }
        r => r,
    }
}

/// Answers for an inode the stack no longer serves: from its tombstone when the
/// stack closed the socket under the program (after a reset), else "not a
/// stand-in" so the front end performs the call natively.
fn serve_dead<D: Device>(stack: &mut Stack<D>, inode: u64, req: &Request<'_>) -> Answer {
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
        Request::GetPeerName | Request::Shutdown { .. } => Answer::err(Errno(libc::ENOTCONN)),
        Request::GetSockOpt { level, name, .. } => {
            let mut ans = Answer::ok();
            if level == libc::SOL_SOCKET && name == libc::SO_ERROR {
                let e = std::mem::take(&mut t.error);
                ans.data[..4].copy_from_slice(&e.to_ne_bytes());
                ans.len = 4;
                return ans;
            }
            let facts = Facts {
                domain: t.domain.raw(),
                sotype: libc::SOCK_STREAM,
                protocol: libc::IPPROTO_TCP,
                listening: false,
                bound: t.local.is_some(),
                state: Some(smoltcp::socket::tcp::State::Closed),
                mtu: None,
                cookie: inode,
            };
            match options::get(&Options::default(), &facts, level, name, &mut ans.data) {
                Ok(n) => {
                    ans.len = n;
                    ans
                }
                Err(e) => Answer::err(e),
            }
        }
        Request::SetSockOpt { .. } => Answer::ok(),
        Request::Connect { .. } => Answer::err(Errno(if t.error != 0 {
            t.error
        } else {
            libc::ECONNRESET
        })),
        _ => Answer::err(Errno(libc::EINVAL)),
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
    const CAP_NET_RAW: u32 = 13;
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
        .is_some_and(|caps| caps & (1 << CAP_NET_RAW) != 0)
}
