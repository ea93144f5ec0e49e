//! Calls on a host TCP socket that the uplink's fast path put in the program's
//! hands (see `netcell_stack::uplink`).
//!
//! # Why these calls are decided here
//!
//! After the fast path, the program holds a real host socket, connected (or
//! connecting) to a destination the uplink allowed. Its data calls and its options
//! are the kernel's: nothing they do can point the socket somewhere else, so they
//! run natively (a `recvmsg` is still made by the intake, as for every socket).
//! Four calls could re-point it — `connect`, `bind`, `listen`, and a send with
//! `MSG_FASTOPEN` — and none of them is ever let through to the kernel (nor is
//! `setsockopt`: made on netcell's copy, with the options that re-point traffic
//! or load code into the kernel refused): a call
//! that continues is carried out with its arguments *re-read*, and another thread
//! can `dup2` a different socket onto the number, or rewrite the address in
//! memory, between netcell's look and the kernel's. So they are decided here, on
//! netcell's own copy of the descriptor, and answered:
//!
//! | the host socket is | `connect`                                 | `bind`, `listen` |
//! |--------------------|-------------------------------------------|------------------|
//! | connected          | the kernel's answer to a connect to its own peer (0 once after a non-blocking handshake, then `EISCONN`) | `EINVAL` |
//! | connecting         | `EALREADY`, or a blocking connect waits here | `EINVAL`     |
//! | closed (failed, reset) | its pending error, once; then as a new socket | as a new socket |
//!
//! "As a new socket": a fresh TCP stand-in takes the host socket's place in the
//! program (its number, close-on-exec and `O_NONBLOCK`), and the call is served
//! on it like any — a new `connect` goes through the container's routing (and may
//! be handed to the host again), a `listen` listens in the container, never on the
//! host. `connect(AF_UNSPEC)` resets the host connection and leaves such a fresh,
//! unconnected stand-in. `MSG_FASTOPEN` sends on it fail with `EOPNOTSUPP` (in
//! [`super::datagram`]), as on every socket that is not a stand-in. The Landlock
//! wall (TCP connect and bind denied on host sockets) stands behind all of this.
//!
//! Differences from Linux, documented in the README: the program's other
//! descriptors for the same socket made before the connect (`dup`, `fork`) keep
//! the stand-in, not the host socket; a `connect` on a connection the peer reset
//! reports the reset instead of `EISCONN`.

use super::calls::{Cx, Held, Outcome, Sock, replace};
use super::target::Fail;
use netcell_proto::{MAX_SOCKADDR, Request};
use smoltcp::phy::Device;
use std::os::fd::AsFd;

/// Where a host TCP socket stands, as far as `connect`, `bind` and `listen` care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Connected,
    Connecting,
    Closed,
}

fn state(s: &Sock) -> State {
    let fd = s.fd.as_fd();
    if netcell_sys::has_peer(fd) {
        State::Connected
    } else if netcell_sys::hung_up_now(fd) {
        State::Closed
    } else {
        State::Connecting
    }
}

/// Whether `s` is a host socket (the stand-in was just replaced by one).
pub fn is_host(s: &Sock) -> bool {
    netcell_sys::sockopt_int(s.fd.as_fd(), libc::SOL_SOCKET, libc::SO_DOMAIN)
        .is_some_and(|d| d != libc::AF_UNIX)
}

/// The answer to the `connect` that handed host socket `s` to the program, its
/// handshake under way: `EINPROGRESS` for a non-blocking socket, else the wait.
pub fn connecting(s: Sock) -> Outcome {
    if s.nonblocking() {
        return Outcome::Errno(libc::EINPROGRESS);
    }
    match state(&s) {
        State::Connecting => s.block(true, libc::EINPROGRESS),
        _ => finished(&s),
    }
}

/// A blocking connect whose handshake ended: 0, or its error (taken, so that it
/// is reported once, as Linux does).
fn finished(s: &Sock) -> Outcome {
    match netcell_sys::sockopt_int(s.fd.as_fd(), libc::SOL_SOCKET, libc::SO_ERROR) {
        Some(0) if state(s) == State::Connected => Outcome::Value(0),
        Some(0) | None => Outcome::Errno(libc::ECONNREFUSED),
        Some(e) => Outcome::Errno(e),
    }
}

/// `connect` on host socket `h`. `Err(stand-in)`: the socket was closed and its
/// error reported before; a fresh stand-in took its place, and the caller serves
/// the connect on it.
pub fn connect<D: Device>(cx: &mut Cx<'_, '_, D>, h: Sock) -> Result<Result<Outcome, Sock>, Fail> {
    let mut buf = [0u8; MAX_SOCKADDR];
    let addr =
        netcell_frontend::sockaddr_arg(&cx.call, cx.call.args[1], cx.call.int(2) as u32, &mut buf)?;
    let family = addr.get(..2).map(|f| u16::from_ne_bytes([f[0], f[1]]));
    if family == Some(libc::AF_UNSPEC as u16) {
        // Linux resets the connection and leaves an unconnected socket.
        let _ = netcell_sys::set_linger_zero(h.fd.as_fd());
        fresh_standin(cx, h)?;
        return Ok(Ok(Outcome::Value(0)));
    }
    Ok(Ok(match state(&h) {
        State::Connected if cx.resumed => Outcome::Value(0),
        // The kernel's own answer (0 once after a non-blocking handshake, then
        // EISCONN), asked with the socket's own peer: nothing the program wrote.
        State::Connected => match netcell_sys::connect_to_own_peer(h.fd.as_fd()) {
            Ok(()) => Outcome::Value(0),
            Err(e) => Outcome::Errno(e.raw_os_error().unwrap_or(libc::EISCONN)),
        },
        State::Connecting if h.nonblocking() => Outcome::Errno(libc::EALREADY),
        State::Connecting => h.block(true, libc::EINPROGRESS),
        State::Closed => {
            match netcell_sys::sockopt_int(h.fd.as_fd(), libc::SOL_SOCKET, libc::SO_ERROR) {
                Some(e) if e != 0 => Outcome::Errno(e),
                _ if cx.resumed => Outcome::Errno(libc::ECONNREFUSED),
                _ => {
                    let s = fresh_standin(cx, h)?;
                    return Ok(Err(s));
                }
            }
        }
    }))
}

/// The stand-in a `bind` or `listen` is served on: the stand-in itself, or for a
/// closed host socket a fresh one in its place; `None` when the kernel serves the
/// call (an `AF_UNIX` socket), `EINVAL` for a host socket that is connected or
/// connecting.
pub fn standin_for_setup<D: Device>(
    cx: &mut Cx<'_, '_, D>,
    held: Held,
) -> Result<Option<Sock>, Fail> {
    match held {
        Held::Host(h) => match state(&h) {
            State::Closed => Ok(Some(fresh_standin(cx, h)?)),
            State::Connected | State::Connecting => Err(Fail::Errno(libc::EINVAL)),
        },
        held => cx.standin_of(held),
    }
}

/// Options never set on a host socket for a container: they re-point traffic
/// (`SO_BINDTODEVICE`, `SO_MARK`), hand the kernel programs or protocols to run
/// (`SO_ATTACH_*`, `TCP_ULP`), or take the connection apart (`TCP_REPAIR*`,
/// `TCP_MD5SIG*`, `TCP_AO*`, `TCP_FASTOPEN_CONNECT`).
fn refused_option(level: i32, name: i32) -> bool {
    match level {
        libc::SOL_SOCKET => matches!(name, 25 | 26 | 36 | 50 | 51 | 52),
        libc::IPPROTO_TCP => matches!(name, 14 | 19..=22 | 29..=32 | 38..=41),
        libc::IPPROTO_IP | libc::IPPROTO_IPV6 => false,
        _ => true,
    }
}

/// `setsockopt` on host socket `h`: made here, on netcell's copy with the value
/// read once, never passed on (the kernel would re-read the descriptor, and
/// another thread could have put a different socket there); the options in
/// [`refused_option`] fail with `ENOPROTOOPT`.
pub fn setsockopt<D: Device>(cx: &mut Cx<'_, '_, D>, h: Sock) -> Result<Outcome, Fail> {
    if refused_option(cx.call.int(1), cx.call.int(2)) {
        return Ok(Outcome::Errno(libc::ENOPROTOOPT));
    }
    setsockopt_on_copy(cx, h.fd.as_fd())
}

/// `setsockopt` made on netcell's copy `fd` of the target's descriptor, with the
/// value read once: the same call, and nothing another thread swaps in between
/// can receive it (an `AF_UNIX` socket's options, like a host socket's).
pub fn setsockopt_on_copy<D: Device>(
    cx: &mut Cx<'_, '_, D>,
    fd: std::os::fd::BorrowedFd<'_>,
) -> Result<Outcome, Fail> {
    let (level, name) = (cx.call.int(1), cx.call.int(2));
    let (val, len) = (cx.call.args[3], cx.call.int(4));
    if !(0..=1024).contains(&len) {
        return Ok(Outcome::Errno(libc::EINVAL));
    }
    let mut buf = [0u8; 1024];
    let v = &mut buf[..len as usize];
    netcell_frontend::Memory::read(&cx.call, val, v)?;
    if let Some(errno) = beyond_the_caller(level, name, v) {
        return Ok(Outcome::Errno(errno));
    }
    if let Some(r) = attach_filter(cx, fd, (level, name), v) {
        return r;
    }
    Ok(match netcell_sys::setsockopt_raw(fd, level, name, v) {
        Ok(()) => Outcome::Value(0),
        Err(e) => Outcome::Errno(e.raw_os_error().unwrap_or(libc::EINVAL)),
    })
}

/// The options netcell's copy would be granted with netcell's own privileges
/// (or that would charge netcell's memory) and the caller is not given: Linux
/// asks `CAP_NET_ADMIN` for the forced buffer sizes, a mark and a priority
/// above 6 (refused: `EPERM`); a packet ring (allocated by the kernel in
/// netcell's name here) is capped at [`MAX_RING`] (`ENOMEM`).
fn beyond_the_caller(level: i32, name: i32, v: &[u8]) -> Option<i32> {
    const SOL_PACKET: i32 = 263;
    const PACKET_RX_RING: i32 = 5;
    const PACKET_TX_RING: i32 = 13;
    let int = || {
        v.get(..4)
            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    };
    match (level, name) {
        (libc::SOL_SOCKET, libc::SO_RCVBUFFORCE | libc::SO_SNDBUFFORCE | libc::SO_MARK) => {
            Some(libc::EPERM)
        }
        (libc::SOL_SOCKET, libc::SO_PRIORITY) if int().is_some_and(|p| !(0..=6).contains(&p)) => {
            Some(libc::EPERM)
        }
        (SOL_PACKET, PACKET_RX_RING | PACKET_TX_RING) if v.len() >= 8 => {
            let u =
                |at: usize| u64::from(u32::from_ne_bytes([v[at], v[at + 1], v[at + 2], v[at + 3]]));
            (u(0) * u(4) > MAX_RING).then_some(libc::ENOMEM)
        }
        _ => None,
    }
}

/// The largest packet ring a program's packet socket gets (tcpdump's default
/// is 2 MiB; `-B` asks more).
const MAX_RING: u64 = 128 << 20;

/// A classic BPF program attached (`SO_ATTACH_FILTER`, as tcpdump's packet
/// socket gets one; `PACKET_FANOUT_DATA`): the value points to the program's
/// instructions in the target's memory, copied here first. `None` for other
/// options.
fn attach_filter<D: Device>(
    cx: &mut Cx<'_, '_, D>,
    fd: std::os::fd::BorrowedFd<'_>,
    (level, name): (i32, i32),
    v: &[u8],
) -> Option<Result<Outcome, Fail>> {
    const PACKET_FANOUT_DATA: i32 = 22;
    let cbpf = (level == libc::SOL_SOCKET && name == libc::SO_ATTACH_FILTER)
        || (level == 263 && name == PACKET_FANOUT_DATA);
    if !cbpf {
        return None;
    }
    if v.len() < 16 {
        return Some(Ok(Outcome::Errno(libc::EINVAL)));
    }
    // struct sock_fprog: the instruction count, then (8-aligned) the pointer.
    let n = u16::from_ne_bytes([v[0], v[1]]) as usize;
    let at = u64::from_ne_bytes(v[8..16].try_into().unwrap_or_default());
    // BPF_MAXINSNS.
    if n == 0 || n > 4096 {
        return Some(Ok(Outcome::Errno(libc::EINVAL)));
    }
    let mut insns = vec![0u8; n * 8];
    if let Err(e) = netcell_frontend::Memory::read(&cx.call, at, &mut insns) {
        return Some(Err(e));
    }
    Some(Ok(
        match netcell_sys::netns::attach_cbpf(fd, level, name, &insns) {
            Ok(()) => Outcome::Value(0),
            Err(e) => Outcome::Errno(e.raw_os_error().unwrap_or(libc::EINVAL)),
        },
    ))
}

/// Puts a new, unconnected TCP stand-in of host socket `h`'s family in its place in
/// the program.
fn fresh_standin<D: Device>(cx: &mut Cx<'_, '_, D>, h: Sock) -> Result<Sock, Fail> {
    let domain = netcell_sys::sockopt_int(h.fd.as_fd(), libc::SOL_SOCKET, libc::SO_DOMAIN)
        .unwrap_or(libc::AF_INET);
    let a = cx.ask(
        0,
        &Request::Socket {
            domain,
            ty: libc::SOCK_STREAM,
            protocol: 0,
        },
        &mut heapless::Vec::new(),
    );
    if a.errno != 0 {
        return Err(Fail::Errno(a.errno));
    }
    let Some(new) = a.fd else {
        return Err(Fail::Errno(libc::EPROTO));
    };
    let mut s = replace(cx, h, new)?;
    s.kind = Some(netcell_stack::socket::Kind::Tcp);
    Ok(s)
}
