//! The data calls the filter sends here: `sendto`/`recvfrom` with an address, and
//! every `sendmsg`, `recvmsg`, `sendmmsg`, `recvmmsg`.
//!
//! A send on a stream stand-in (TCP) goes to the kernel, except one that names a
//! destination, which TCP ignores and the `AF_UNIX` stand-in would refuse: that
//! one is sent here without it. On a datagram stand-in (UDP, ping), a send with a
//! destination or ancillary data becomes a `SendTo` request, and every `recvmsg`
//! and `recvmmsg` is done here: the record is read from a copy of the stand-in,
//! spread over the target's buffers, and its origin asked for when the call wants
//! it — the same steps the preload shim takes in the program. Receives on anything
//! else are made in [`super::intake`]: no receive that could carry descriptors is
//! passed on. A send with `MSG_FASTOPEN` is never passed on either (see
//! `passed_on_send`).
//!
//! # A receive interrupted at its answer
//!
//! A signal can end a call between netcell's look and its answer — the answer
//! then fails (`ENOENT`) and the restarted call arrives as a new notification —
//! and a datagram taken for it would be gone: Go's runtime preempts its threads
//! with `SIGURG`, and its `net` tests (`TestAllocs`: thousands of send-and-receive
//! rounds) hung within a few runs under CPU contention, waiting for a datagram
//! netcell had read. Linux never loses one so. So `recvfrom` and `recvmsg` take
//! the stand-in's first record but only look its origin up in the stack, answer,
//! and then [`settle`]: delivered, the origin leaves the inbox; not, the datagram
//! goes back into the stand-in — at the end of its queue, with its origin (the
//! only reordering, and only for a call a signal interrupted). Taken before the
//! answer, not after: the program acts the moment it is answered, and its next
//! plain `read` (which the kernel serves) must not find the same datagram again.
//!
//! `recvmmsg` takes its datagrams as it goes and keeps them: one a signal
//! interrupts at its answer is lost. It returns once one datagram is there and
//! the queue is empty (as with `MSG_WAITFORONE`), and ignores its timeout.

use super::calls::{Consume, Cx, Held, Outcome, Sock};
use super::intake;
use super::target::{
    Fail, MAX_IOV, MMSGHDR_LEN, MSG_CONTROLLEN_OFF, MSG_FLAGS_OFF, MSG_NAMELEN_OFF, MsgHdr,
};
use netcell_frontend::{Memory, dgram};
use netcell_proto::{MAX_CONTROL, MAX_DATAGRAM, MAX_SOCKADDR, Request};
use netcell_stack::Stack;
use smoltcp::phy::Device;
use std::os::fd::{AsFd, OwnedFd};

/// A datagram a receive took off its stand-in, until its answer is delivered:
/// its full length and first bytes (what the stack's inbox matches its origin
/// by) and whether its origin was looked up (and left in the inbox). The bytes
/// are in the supervisor's scratch buffer until the next call is served.
#[derive(Clone, Copy)]
pub struct Taken {
    /// The socket's inode.
    ino: u64,
    len: usize,
    prefix: [u8; 16],
    prefix_len: usize,
    origin: bool,
}

/// Settles a datagram taken for a receive once its answer went out: `delivered`,
/// its origin leaves the stack's inbox; not (a signal ended the call), the
/// datagram (`data`) goes back into its stand-in, at the end of the queue, with
/// its origin (see the module docs).
pub fn settle<D: Device>(stack: &mut Stack<D>, t: &Taken, delivered: bool, data: &[u8]) {
    if !delivered {
        if !stack.requeue_datagram(t.ino, &data[..t.len.min(data.len())]) {
            log::debug!("seccomp: a datagram whose receive was interrupted could not be put back");
        }
        return;
    }
    if t.origin {
        let req = Request::Origin {
            len: t.len as u32,
            peek: false,
            prefix: &t.prefix[..t.prefix_len],
        };
        super::calls::ask_stack(stack, t.ino, &req);
    }
}

/// What a datagram receive returned.
struct Received {
    /// The call's value: bytes copied, or the full length with `MSG_TRUNC`.
    ret: i64,
    /// `msg_flags`.
    flags: i32,
    /// The source address's full length (0 if unknown).
    namelen: u32,
    /// Bytes of ancillary data written.
    controllen: usize,
}

/// A send on a socket that is not a stand-in goes to the kernel — except with
/// `MSG_FASTOPEN`. By the time the kernel re-reads the descriptor another thread
/// may have put a host TCP socket there, and Fast Open connects it without the
/// `connect` hook the Landlock wall checks (seen on Linux 6.18). `AF_UNIX` sockets
/// ignore the flag; here it fails with `EOPNOTSUPP`.
fn passed_on_send(flags: i32) -> Outcome {
    if flags & libc::MSG_FASTOPEN != 0 {
        Outcome::Errno(libc::EOPNOTSUPP)
    } else {
        Outcome::Continue
    }
}

pub fn sendto<D: Device>(cx: &mut Cx<'_, '_, D>) -> Result<Outcome, Fail> {
    let Some(s) = cx.sock(cx.call.int(0))? else {
        return Ok(passed_on_send(cx.call.int(3)));
    };
    let (buf, len, flags, addr, alen) = (
        cx.call.args[1],
        cx.call.args[2] as usize,
        cx.call.int(3),
        cx.call.args[4],
        cx.call.int(5),
    );
    cx.scratch.iov.clear();
    // Linux takes at most MAX_RW_COUNT bytes of one buffer (`import_ubuf`).
    cx.scratch.iov.push((buf, len.min(MAX_RW_COUNT)));
    if !s.is_datagram() {
        return stream_send(cx, s, flags);
    }
    let n = send_datagram(cx, &s, flags, addr, alen, (0, 0))?;
    Ok(Outcome::Value(n as i64))
}

pub fn sendmsg<D: Device>(cx: &mut Cx<'_, '_, D>) -> Result<Outcome, Fail> {
    let Some(s) = cx.sock(cx.call.int(0))? else {
        return Ok(passed_on_send(cx.call.int(2)));
    };
    let flags = cx.call.int(2);
    let m = cx.call.read_msghdr(cx.call.args[1])?;
    if !s.is_datagram() {
        if m.namelen == 0 {
            return Ok(passed_on_send(flags));
        }
        cx.call.read_iov(m.iov, m.iovlen, &mut cx.scratch.iov)?;
        return stream_send(cx, s, flags);
    }
    if m.namelen == 0 && m.controllen == 0 {
        return Ok(passed_on_send(flags));
    }
    cx.call.read_iov(m.iov, m.iovlen, &mut cx.scratch.iov)?;
    let n = send_datagram(
        cx,
        &s,
        flags,
        m.name,
        msg_namelen(&m),
        (m.control, m.controllen),
    )?;
    Ok(Outcome::Value(n as i64))
}

pub fn sendmmsg<D: Device>(cx: &mut Cx<'_, '_, D>) -> Result<Outcome, Fail> {
    let Some(s) = datagram_sock(cx)? else {
        return Ok(passed_on_send(cx.call.int(3)));
    };
    let (vec, vlen, flags) = mmsg_args(cx);
    let mut sent = 0u32;
    for i in 0..vlen as u64 {
        let at = vec + i * MMSGHDR_LEN;
        let r = cx.call.read_msghdr(at).and_then(|m| {
            cx.call.read_iov(m.iov, m.iovlen, &mut cx.scratch.iov)?;
            send_datagram(
                cx,
                &s,
                flags,
                m.name,
                msg_namelen(&m),
                (m.control, m.controllen),
            )
        });
        match r {
            Ok(n) => {
                cx.call.write_u32(at + 56, n as u32)?;
                sent += 1;
            }
            Err(Fail::Gone) => return Err(Fail::Gone),
            Err(e) if sent == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(Outcome::Value(sent as i64))
}

pub fn recvfrom<D: Device>(cx: &mut Cx<'_, '_, D>) -> Result<Outcome, Fail> {
    let Some(s) = datagram_sock(cx)? else {
        return Ok(Outcome::Continue);
    };
    let (buf, len, flags, addr, lenp) = (
        cx.call.args[1],
        cx.call.args[2] as usize,
        cx.call.int(3),
        cx.call.args[4],
        cx.call.args[5],
    );
    // Linux reads and writes the address length after the receive: a bad pointer
    // there fails the call only once a datagram was taken.
    let room = if lenp == 0 {
        None
    } else {
        Some(cx.call.read_u32(lenp)? as i32)
    };
    if room.is_some_and(|r| r < 0) {
        return Ok(Outcome::Errno(libc::EINVAL));
    }
    cx.scratch.iov.clear();
    cx.scratch.iov.push((buf, len));
    let name = room.map(|r| (addr, r as u32));
    match recv_datagram(cx, &s, flags, name, (0, 0), true)? {
        Some(_) if lenp == 0 => Ok(Outcome::Errno(libc::EFAULT)),
        Some((r, peeked)) => {
            cx.call.write_u32(lenp, r.namelen)?;
            Ok(answer(r.ret, peeked))
        }
        None => Ok(would_block(s, flags)),
    }
}

/// The answer to a receive that got `ret`: with what settles it once it went out
/// (see [`settle`]).
fn answer(ret: i64, taken: Option<Taken>) -> Outcome {
    match taken {
        Some(t) => Outcome::Peeked(ret, Consume::Datagram(t)),
        None => Outcome::Value(ret),
    }
}

/// The socket of a receive that may carry descriptors, if it is a datagram
/// stand-in; anything else is received in [`intake`] (never passed on: the kernel
/// would install what came with it).
fn receiving<D: Device>(cx: &mut Cx<'_, '_, D>) -> Result<Result<Sock, (OwnedFd, bool)>, Fail> {
    match cx.held(cx.call.int(0))? {
        Held::StandIn(s) if s.is_datagram() => Ok(Ok(s)),
        Held::StandIn(s) => Ok(Err((s.fd, true))),
        Held::Unix(fd) | Held::Foreign(fd, _) => Ok(Err((fd, false))),
        Held::Host(s) => Ok(Err((s.fd, false))),
        Held::NotSocket => Err(Fail::Errno(libc::ENOTSOCK)),
    }
}

/// A receive on a TCP stand-in that is not connected: its unpaired `AF_UNIX`
/// end refuses with `EINVAL` where TCP says `ENOTCONN`.
fn not_connected(r: Result<Outcome, Fail>, tcp: bool, flags: i32) -> Result<Outcome, Fail> {
    match r {
        Err(Fail::Errno(libc::EINVAL)) | Ok(Outcome::Errno(libc::EINVAL))
            if tcp && flags & libc::MSG_OOB == 0 =>
        {
            Ok(Outcome::Errno(libc::ENOTCONN))
        }
        r => r,
    }
}

pub fn recvmsg<D: Device>(cx: &mut Cx<'_, '_, D>) -> Result<Outcome, Fail> {
    let (at, flags) = (cx.call.args[1], cx.call.int(2));
    let s = match receiving(cx)? {
        Ok(s) => s,
        Err((fd, tcp)) => return not_connected(intake::recvmsg(cx, fd, at, flags), tcp, flags),
    };
    let m = cx.call.read_msghdr(at)?;
    match recv_msghdr(cx, &s, at, &m, flags, true)? {
        Some((ret, peeked)) => Ok(answer(ret, peeked)),
        None => Ok(would_block(s, flags)),
    }
}

pub fn recvmmsg<D: Device>(cx: &mut Cx<'_, '_, D>) -> Result<Outcome, Fail> {
    let (vec, vlen, flags) = mmsg_args(cx);
    let s = match receiving(cx)? {
        Ok(s) => s,
        Err((fd, tcp)) => {
            return not_connected(intake::recvmmsg(cx, fd, vec, vlen, flags), tcp, flags);
        }
    };
    let base = flags & !libc::MSG_WAITFORONE;
    let mut got = 0u32;
    for i in 0..vlen as u64 {
        let at = vec + i * MMSGHDR_LEN;
        let f = if got == 0 {
            base
        } else {
            base | libc::MSG_DONTWAIT
        };
        let r = cx
            .call
            .read_msghdr(at)
            .and_then(|m| recv_msghdr(cx, &s, at, &m, f, false));
        match r {
            Ok(Some((n, _))) => {
                cx.call.write_u32(at + 56, n as u32)?;
                got += 1;
            }
            Ok(None) if got == 0 => return Ok(would_block(s, flags)),
            Ok(None) => break,
            Err(Fail::Gone) => return Err(Fail::Gone),
            Err(e) if got == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(Outcome::Value(got as i64))
}

/// The call's socket if it is a datagram stand-in; `None`: the kernel handles it.
fn datagram_sock<D: Device>(cx: &mut Cx<'_, '_, D>) -> Result<Option<Sock>, Fail> {
    Ok(cx.sock(cx.call.int(0))?.filter(Sock::is_datagram))
}

/// `sendmmsg`/`recvmmsg`'s vector, its length (at most `UIO_MAXIOV`, as Linux) and
/// flags.
fn mmsg_args<D: Device>(cx: &Cx<'_, '_, D>) -> (u64, u32, i32) {
    (
        cx.call.args[1],
        (cx.call.args[2] as u32).min(MAX_IOV as u32),
        cx.call.int(3),
    )
}

/// An empty queue: `EAGAIN` for a non-blocking receive, else wait.
fn would_block(s: Sock, flags: i32) -> Outcome {
    if flags & libc::MSG_DONTWAIT != 0 || s.nonblocking() {
        Outcome::Errno(libc::EAGAIN)
    } else {
        s.block(false, libc::EAGAIN)
    }
}

/// Takes the socket's pending error (an ICMP error), 0 if none.
fn take_error<D: Device>(cx: &mut Cx<'_, '_, D>, s: &Sock) -> i32 {
    let a = cx.ask(
        s.ino,
        &Request::PendingError { take: true },
        &mut heapless::Vec::new(),
    );
    a.value as i32
}

/// A receive described by the target's `msghdr` at `at`; writes back its name
/// and control lengths and flags. `None`: nothing queued. `defer`: as
/// [`recv_datagram`].
fn recv_msghdr<D: Device>(
    cx: &mut Cx<'_, '_, D>,
    s: &Sock,
    at: u64,
    m: &MsgHdr,
    flags: i32,
    defer: bool,
) -> Result<Option<(i64, Option<Taken>)>, Fail> {
    if (m.namelen as i32) < 0 {
        return Err(Fail::Errno(libc::EINVAL));
    }
    cx.call.read_iov(m.iov, m.iovlen, &mut cx.scratch.iov)?;
    let name = (m.name != 0).then_some((m.name, m.namelen));
    let control = if m.control != 0 {
        (m.control, m.controllen as usize)
    } else {
        (0, 0)
    };
    let Some((r, peeked)) = recv_datagram(cx, s, flags, name, control, defer)? else {
        return Ok(None);
    };
    if m.name != 0 {
        cx.call.write_u32(at + MSG_NAMELEN_OFF, r.namelen)?;
    }
    cx.call.write(
        at + MSG_CONTROLLEN_OFF,
        &(r.controllen as u64).to_ne_bytes(),
    )?;
    cx.call.write_u32(at + MSG_FLAGS_OFF, r.flags as u32)?;
    Ok(Some((r.ret, peeked)))
}

/// Receives one datagram into the iovecs in `cx.scratch.iov`. `name` is the
/// source's buffer and its room, `control` the ancillary data's. `None`: nothing
/// queued. `defer`: its origin is only looked up, and what the answer needs to
/// settle it ([`settle`]) comes back; else the origin is taken now.
fn recv_datagram<D: Device>(
    cx: &mut Cx<'_, '_, D>,
    s: &Sock,
    flags: i32,
    name: Option<(u64, u32)>,
    control: (u64, usize),
    defer: bool,
) -> Result<Option<(Received, Option<Taken>)>, Fail> {
    let e = take_error(cx, s);
    if e != 0 {
        return Err(Fail::Errno(e));
    }
    let peek = flags & libc::MSG_PEEK != 0;
    let fd = s.fd.as_fd();
    let mut buf = std::mem::take(&mut cx.scratch.buf);
    let mut r = super::kernel::recv_record_fd(fd, &mut buf, peek);
    // Doorbells (empty records with a descriptor: an error was pending, see the
    // stack's `udp_icmp_error`) are only for readiness: off the queue with them.
    while let Ok((0, Some(_), _)) = r {
        if peek {
            let _ = super::kernel::recv_record_fd(fd, &mut buf, false);
        }
        r = super::kernel::recv_record_fd(fd, &mut buf, peek);
    }
    let result = match r {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e.into()),
        Ok((full, marker, _)) => {
            let data = &buf[..full.min(buf.len())];
            let deferred = defer && !peek && marker.is_none();
            let wants_origin = name.is_some() || (control.0 != 0 && control.1 > 0);
            deliver(
                cx,
                s,
                (flags, peek || deferred),
                name,
                control,
                data,
                full,
                marker.is_some(),
            )
            .map(|r| {
                let taken = deferred.then(|| {
                    let mut prefix = [0u8; 16];
                    let prefix_len = data.len().min(16);
                    prefix[..prefix_len].copy_from_slice(&data[..prefix_len]);
                    Taken {
                        ino: s.ino,
                        len: full,
                        prefix,
                        prefix_len,
                        origin: wants_origin,
                    }
                });
                Some((r, taken))
            })
        }
    };
    cx.scratch.buf = buf;
    result
}

#[allow(clippy::too_many_arguments)]
fn deliver<D: Device>(
    cx: &mut Cx<'_, '_, D>,
    s: &Sock,
    (flags, look): (i32, bool),
    name: Option<(u64, u32)>,
    control: (u64, usize),
    data: &[u8],
    full: usize,
    marker: bool,
) -> Result<Received, Fail> {
    if marker {
        // An error marker (a socket created with markers on): the errno it holds.
        return Err(Fail::Errno(dgram::marker_errno(data)));
    }
    let capacity: usize = cx
        .scratch
        .iov
        .iter()
        .map(|v| v.1)
        .fold(0, usize::saturating_add);
    let copied = cx.call.scatter(&cx.scratch.iov, data)?;
    let wants = dgram::Wants {
        name,
        control: Some(control),
    };
    let (mem, mut svc) = cx.parts();
    let o = dgram::origin(mem, &mut svc, s.ino, (full, data, look), wants)?;
    Ok(Received {
        ret: if flags & libc::MSG_TRUNC != 0 {
            full
        } else {
            copied
        } as i64,
        flags: if full > capacity { libc::MSG_TRUNC } else { 0 }
            | if o.ctrunc { libc::MSG_CTRUNC } else { 0 },
        namelen: o.namelen,
        controllen: o.controllen,
    })
}

/// Sends one datagram through the stack: the payload the iovecs in
/// `cx.scratch.iov` name, to `addr` (or the connected peer), with `control`.
fn send_datagram<D: Device>(
    cx: &mut Cx<'_, '_, D>,
    s: &Sock,
    flags: i32,
    addr: u64,
    alen: i32,
    control: (u64, u64),
) -> Result<usize, Fail> {
    if alen < 0 || alen as usize > MAX_SOCKADDR {
        return Err(Fail::Errno(libc::EINVAL));
    }
    let alen = if addr == 0 { 0 } else { alen as usize };
    // Linux checks each buffer's whole range before it looks at its length
    // (`access_ok` in `import_iovec`): one past the user address space fails.
    if cx.scratch.iov.iter().any(|&(b, l)| !user_range(b, l)) {
        return Err(Fail::Errno(libc::EFAULT));
    }
    let mut cbuf = [0u8; MAX_CONTROL];
    let c = &mut cbuf[..(control.1 as usize).min(MAX_CONTROL)];
    cx.call.read(control.0, c)?;
    let payload = cx
        .scratch
        .iov
        .iter()
        .try_fold(0usize, |a, v| a.checked_add(v.1));
    let payload = payload.ok_or(Fail::Errno(libc::EINVAL))?;
    if payload > MAX_DATAGRAM {
        // Linux copies the destination before it looks at the length.
        let mut a = [0u8; MAX_SOCKADDR];
        cx.call.read(addr, &mut a[..alen])?;
        return Err(Fail::Errno(libc::EMSGSIZE));
    }
    // The destination is read with the payload, after it: one read of the
    // program's memory (and one check that it is still the caller's) instead of two.
    cx.scratch.iov.push((addr, alen));
    let mut buf = std::mem::take(&mut cx.scratch.buf);
    let r = cx
        .call
        .gather(&cx.scratch.iov, &mut buf[..payload + alen])
        .map(|_| {
            let (data, a) = buf.split_at(payload);
            let req = Request::SendTo {
                flags,
                addr: &a[..alen],
                control: c,
                payload: data,
            };
            cx.ask(s.ino, &req, &mut heapless::Vec::new())
        });
    cx.scratch.buf = buf;
    cx.scratch.iov.pop();
    let a = r?;
    if a.errno != 0 {
        Err(Fail::Errno(a.errno))
    } else {
        Ok(a.value as usize)
    }
}

/// A `msghdr`'s destination length as Linux takes it (`__copy_msghdr`): none
/// without a name, at most `sockaddr_storage`'s 128 bytes (a longer one is cut,
/// not refused as `sendto`'s is); a negative one stays, to fail with `EINVAL`.
fn msg_namelen(m: &MsgHdr) -> i32 {
    match m.namelen as i32 {
        _ if m.name == 0 => 0,
        n if n > MAX_SOCKADDR as i32 => MAX_SOCKADDR as i32,
        n => n,
    }
}

/// Linux's `MAX_RW_COUNT`: the most one read or write moves.
const MAX_RW_COUNT: usize = (i32::MAX as usize) & !4095;

/// The end of the user address space on x86-64 with four-level page tables
/// (`TASK_SIZE_MAX`; five-level machines reach higher, where netcell's check
/// is stricter than the kernel's).
const TASK_SIZE_MAX: u64 = (1 << 47) - 4096;

/// Whether `len` bytes at `base` lie in the user address space (Linux's
/// `access_ok`: the range only, not whether it is mapped).
fn user_range(base: u64, len: usize) -> bool {
    base.checked_add(len as u64)
        .is_some_and(|end| end <= TASK_SIZE_MAX)
}

/// Sends the bytes the iovecs in `cx.scratch.iov` name on a stream stand-in,
/// without the destination TCP ignores.
fn stream_send<D: Device>(cx: &mut Cx<'_, '_, D>, s: Sock, flags: i32) -> Result<Outcome, Fail> {
    let mut buf = std::mem::take(&mut cx.scratch.buf);
    let r = stream_send_with(cx, &s, flags, &mut buf);
    cx.scratch.buf = buf;
    match r {
        // A socket that is not connected (ENOTCONN from its unpaired stand-in), or
        // no more: TCP says EPIPE and raises SIGPIPE in the sending thread unless
        // MSG_NOSIGNAL (netcell sent with MSG_NOSIGNAL on its copy).
        Err(Fail::Errno(libc::ENOTCONN | libc::EPIPE)) => {
            if flags & libc::MSG_NOSIGNAL == 0 {
                let _ = netcell_sys::signal_thread(cx.call.tid, libc::SIGPIPE);
            }
            Ok(Outcome::Errno(libc::EPIPE))
        }
        Ok(0) if cx.scratch.iov.iter().any(|v| v.1 > 0) => {
            if flags & libc::MSG_DONTWAIT != 0 || s.nonblocking() {
                Ok(Outcome::Errno(libc::EAGAIN))
            } else {
                Ok(s.block(true, libc::EAGAIN))
            }
        }
        Ok(n) => Ok(Outcome::Value(n as i64)),
        Err(e) => Err(e),
    }
}

fn stream_send_with<D: Device>(
    cx: &mut Cx<'_, '_, D>,
    s: &Sock,
    flags: i32,
    buf: &mut [u8],
) -> Result<usize, Fail> {
    let mut sent = 0usize;
    let pass = flags & (libc::MSG_MORE | libc::MSG_EOR | libc::MSG_OOB);
    for i in 0..cx.scratch.iov.len() {
        let (base, len) = cx.scratch.iov[i];
        let mut off = 0;
        while off < len {
            let n = (len - off).min(buf.len());
            cx.call.read(base + off as u64, &mut buf[..n])?;
            match super::kernel::send_nb(s.fd.as_fd(), &buf[..n], pass) {
                Ok(k) => {
                    sent += k;
                    off += k;
                    if k < n {
                        return Ok(sent);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(sent),
                Err(e) if sent == 0 => return Err(e.into()),
                Err(_) => return Ok(sent),
            }
        }
    }
    Ok(sent)
}
