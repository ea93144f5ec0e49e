//! Receives that can carry descriptors: `recvmsg` and `recvmmsg` on every
//! descriptor that is not a datagram stand-in, carried out here, never passed on.
//!
//! # Why
//!
//! A descriptor arriving with `SCM_RIGHTS` (or `SCM_PIDFD`) is installed in the
//! receiving process by the kernel. If the supervisor let such a receive through,
//! a process outside the container — or anything that can reach a unix socket the
//! container holds — could hand the container a host socket: a UDP socket it could
//! aim anywhere with a raced `connect` (the Landlock wall covers TCP only), a raw,
//! packet or netlink socket, a TAP device. And letting any receive through is
//! letting every receive through: by the time the kernel re-reads the descriptor,
//! another thread may have put a different socket at that number. So netcell makes
//! every such receive itself, on its copy of the descriptor, and admits a received
//! descriptor only if it is no network: an `AF_UNIX` socket (stand-ins are), or one
//! of the kinds of non-socket on an allowlist (`super::inherited::device_reach`:
//! files, pipes, terminals, the memory devices, event and timer descriptors — not a
//! TUN, macvtap or ipvtap device, not an io_uring). The first one refused ends the
//! installing, with `MSG_CTRUNC`, as when Linux's security hooks refuse a passed
//! descriptor; it and those after it are closed. The container then holds no
//! network socket but stand-ins, and the connected TCP streams it may start with
//! (see [`super::inherited`]) — the ground the argument in [`super::calls`] stands
//! on.
//!
//! # How
//!
//! The receive is made on netcell's copy with `MSG_DONTWAIT` into netcell's
//! buffers; the bytes, the source address and the ancillary data (with the
//! admitted descriptors installed in the target by `SECCOMP_IOCTL_NOTIF_ADDFD` and
//! their numbers written in) are then written into the target's memory. A call that
//! finds nothing waits as a parked call (`SO_RCVTIMEO` honoured).
//!
//! A stream is *peeked* and consumed only once the answer reached the program, so
//! a signal that interrupts the call loses no byte (the program's restarted call
//! finds the same bytes). A datagram is taken at once (unlike a stand-in's, see
//! `super::datagram`): one a signal interrupts at that moment is lost, as a
//! datagram may be — its descriptors are installed as it is answered, and a
//! datagram another reader took meanwhile would reach two readers.
//!
//! `MSG_WAITALL` on a blocking stream waits until the bytes asked for are there
//! (looking again every few milliseconds), or the stream ends.
//! Differences: descriptors installed in a program whose call is interrupted right
//! then stay open in it unreported; `recvmmsg` on a stream receives one message.

use super::calls::{Block, Consume, Cx, Outcome};
use super::kernel;
use super::target::{Fail, MSG_CONTROLLEN_OFF, MSG_FLAGS_OFF, MSG_NAMELEN_OFF, MsgHdr};
use netcell_frontend::Memory;
use smoltcp::phy::Device;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// The most bytes of a stream one receive takes.
const MAX_STREAM: usize = 256 * 1024;
/// The most bytes of a datagram one receive takes (a larger one is truncated).
const MAX_DGRAM: usize = 4 * 1024 * 1024;
/// The most ancillary data one receive passes on.
const MAX_CONTROL: usize = 16 * 1024;

/// What one receive gave.
enum Got {
    /// Nothing there yet.
    Nothing,
    /// Some but not all of what `MSG_WAITALL` asks for.
    NotAll,
    /// Received: the call's value, and the bytes to consume afterwards (a stream
    /// that was peeked).
    Value(i64, Option<usize>),
}

/// `recvmsg(fd, at, flags)` on `copy`, a descriptor that is not a datagram
/// stand-in.
pub fn recvmsg<D: Device>(
    cx: &mut Cx<'_, '_, D>,
    copy: OwnedFd,
    at: u64,
    flags: i32,
) -> Result<Outcome, Fail> {
    let m = cx.call.read_msghdr(at)?;
    match receive(cx, copy.as_fd(), at, &m, flags)? {
        Got::Value(v, None) => Ok(Outcome::Value(v)),
        Got::Value(v, Some(len)) => Ok(Outcome::Peeked(v, Consume::Stream { fd: copy, len })),
        got => Ok(wait(copy, flags, matches!(got, Got::NotAll))),
    }
}

/// `recvmmsg(fd, vec, vlen, flags, timeout)` on `copy`: the first message as
/// `recvmsg` would receive it, then those already queued (datagrams only).
pub fn recvmmsg<D: Device>(
    cx: &mut Cx<'_, '_, D>,
    copy: OwnedFd,
    vec: u64,
    vlen: u32,
    flags: i32,
) -> Result<Outcome, Fail> {
    let base = flags & !libc::MSG_WAITFORONE;
    let mut got = 0u32;
    for i in 0..vlen as u64 {
        let at = vec + i * super::target::MMSGHDR_LEN;
        let f = if got == 0 {
            base
        } else {
            base | libc::MSG_DONTWAIT
        };
        let r = cx
            .call
            .read_msghdr(at)
            .and_then(|m| receive(cx, copy.as_fd(), at, &m, f));
        match r {
            Ok(Got::Value(n, peeked)) => {
                cx.call.write_u32(at + 56, n as u32)?;
                got += 1;
                if let Some(len) = peeked {
                    return Ok(Outcome::Peeked(1, Consume::Stream { fd: copy, len }));
                }
            }
            Ok(g) if got == 0 => return Ok(wait(copy, flags, matches!(g, Got::NotAll))),
            Ok(_) => break,
            Err(Fail::Gone) => return Err(Fail::Gone),
            Err(e) if got == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(Outcome::Value(got as i64))
}

/// Takes the `len` bytes of the stream `fd` that were peeked for a program that
/// now has them.
pub fn consume(fd: BorrowedFd<'_>, len: usize) {
    let mut sink = [0u8; 4096];
    let mut control = kernel::CmsgBuf([0u8; MAX_CONTROL]);
    let mut left = len;
    while left > 0 {
        let n = left.min(sink.len());
        match kernel::recvmsg(
            fd,
            &mut sink[..n],
            None,
            &mut control.0,
            libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
        ) {
            // The descriptors came with the peek; these copies (r.fds) close here.
            Ok(r) if r.len > 0 => left -= r.len.min(left),
            _ => break,
        }
    }
    if left > 0 {
        log::debug!("seccomp: {left} peeked bytes were read by someone else meanwhile");
    }
}

fn wait(copy: OwnedFd, flags: i32, not_all: bool) -> Outcome {
    if flags & libc::MSG_DONTWAIT != 0 || kernel::status_flags(copy.as_fd()) & libc::O_NONBLOCK != 0
    {
        return Outcome::Errno(libc::EAGAIN);
    }
    let mut b = Block::on(copy, false, libc::EAGAIN, None);
    b.retry = not_all;
    Outcome::Block(b)
}

fn receive<D: Device>(
    cx: &mut Cx<'_, '_, D>,
    fd: BorrowedFd<'_>,
    at: u64,
    m: &MsgHdr,
    flags: i32,
) -> Result<Got, Fail> {
    if (m.namelen as i32) < 0 {
        return Err(Fail::Errno(libc::EINVAL));
    }
    cx.call.read_iov(m.iov, m.iovlen, &mut cx.scratch.iov)?;
    let want = cx
        .scratch
        .iov
        .iter()
        .fold(0usize, |a, v| a.saturating_add(v.1));
    let stream =
        kernel::sockopt_int(fd, libc::SOL_SOCKET, libc::SO_TYPE) == Some(libc::SOCK_STREAM);
    let peek = flags & libc::MSG_PEEK != 0;
    let blocking =
        flags & libc::MSG_DONTWAIT == 0 && kernel::status_flags(fd) & libc::O_NONBLOCK == 0;
    let len = if stream {
        let len = want.min(MAX_STREAM);
        if flags & libc::MSG_WAITALL != 0 && blocking && len > 0 && kernel::queued(fd) < len {
            // All of it, or the end of the stream or an error, before anything.
            match kernel::peek_len(fd) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    return Ok(if kernel::queued(fd) == 0 {
                        Got::Nothing
                    } else {
                        Got::NotAll
                    });
                }
                Ok(n) if n > 0 => return Ok(Got::NotAll),
                _ => {} // the end, or an error the receive reports
            }
        }
        len
    } else {
        // Room for the whole datagram (up to what the program offers).
        match kernel::peek_len(fd) {
            Ok(n) => want.min(n).min(MAX_DGRAM),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(Got::Nothing),
            Err(_) => 0, // the receive reports it
        }
    };
    if cx.scratch.intake.len() < len {
        cx.scratch.intake.resize(len, 0);
    }
    let control_room = if m.control != 0 {
        (m.controllen as usize).min(MAX_CONTROL)
    } else {
        0
    };
    let mut control = kernel::CmsgBuf([0u8; MAX_CONTROL]);
    let control = &mut control.0;
    let mut name = [0u8; 128];
    let our_flags = (flags & !(libc::MSG_CMSG_CLOEXEC | libc::MSG_WAITALL))
        | libc::MSG_DONTWAIT
        | libc::MSG_CMSG_CLOEXEC
        | if stream { libc::MSG_PEEK } else { 0 };
    let mut data = std::mem::take(&mut cx.scratch.intake);
    let r = kernel::recvmsg(
        fd,
        &mut data[..len],
        (m.name != 0).then_some(&mut name),
        &mut control[..control_room],
        our_flags,
    );
    let r = match r {
        Ok(r) => r,
        Err(e) => {
            cx.scratch.intake = data;
            if e.kind() == std::io::ErrorKind::WouldBlock {
                return Ok(Got::Nothing);
            }
            return Err(e.into());
        }
    };
    // The bytes (the call's value may be larger, with MSG_TRUNC).
    let copied = r.len.min(len);
    let placed = cx.call.scatter(&cx.scratch.iov, &data[..copied]);
    cx.scratch.intake = data;
    placed?;
    // The kernel echoes MSG_CMSG_CLOEXEC: netcell's, not necessarily the program's.
    let mut msg_flags = (r.flags & !libc::MSG_CMSG_CLOEXEC) | (flags & libc::MSG_CMSG_CLOEXEC);
    let controllen = admit(
        cx,
        &control[..r.controllen],
        r.fds,
        (m.control, control_room),
        flags,
        &mut msg_flags,
    )?;
    if m.name != 0 {
        let n = r.namelen.min(m.namelen as usize).min(name.len());
        cx.call.write(m.name, &name[..n])?;
        cx.call.write_u32(at + MSG_NAMELEN_OFF, r.namelen as u32)?;
    }
    cx.call
        .write(at + MSG_CONTROLLEN_OFF, &(controllen as u64).to_ne_bytes())?;
    cx.call.write_u32(at + MSG_FLAGS_OFF, msg_flags as u32)?;
    let consume = (stream && !peek && r.len > 0).then_some(r.len);
    Ok(Got::Value(r.len as i64, consume))
}

/// Ancillary data as the kernel laid it out (x86-64: a 16-byte header, data
/// padded to 8 bytes).
struct Cmsgs<'a>(&'a [u8]);

const CMSG_HDR: usize = 16;

impl<'a> Iterator for Cmsgs<'a> {
    /// (level, type, data)
    type Item = (i32, i32, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        if self.0.len() < CMSG_HDR {
            return None;
        }
        let len = u64::from_ne_bytes(self.0[..8].try_into().ok()?) as usize;
        if len < CMSG_HDR || len > self.0.len() {
            return None;
        }
        let level = i32::from_ne_bytes(self.0[8..12].try_into().ok()?);
        let ty = i32::from_ne_bytes(self.0[12..16].try_into().ok()?);
        let data = &self.0[CMSG_HDR..len];
        let next = len.next_multiple_of(8).min(self.0.len());
        self.0 = &self.0[next..];
        Some((level, ty, data))
    }
}

/// Whether a received descriptor may enter the container: no network.
fn admissible(fd: BorrowedFd<'_>) -> bool {
    if kernel::is_socket(fd) {
        kernel::sockopt_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN) == Some(libc::AF_UNIX)
    } else {
        super::inherited::device_reach(fd).is_none()
    }
}

/// Installs the admitted descriptors of `fds` (those `control` passes, in order)
/// in the target and writes the ancillary data, with their numbers there, to
/// `dest` (with room for `dest.1` bytes); returns its length. netcell's copies
/// close on return.
fn admit<D: Device>(
    cx: &mut Cx<'_, '_, D>,
    control: &[u8],
    fds: heapless::Vec<OwnedFd, { kernel::SCM_MAX_FD }>,
    (dest, room): (u64, usize),
    flags: i32,
    msg_flags: &mut i32,
) -> Result<usize, Fail> {
    let mut owned = fds.into_iter();
    let cloexec = flags & libc::MSG_CMSG_CLOEXEC != 0;
    let mut out = [0u8; MAX_CONTROL];
    let mut len = 0;
    let mut refused = false;
    for (level, ty, data) in Cmsgs(control) {
        let passes_fds =
            level == libc::SOL_SOCKET && (ty == libc::SCM_RIGHTS || ty == kernel::SCM_PIDFD);
        let mut body = [0u8; MAX_CONTROL];
        let n = if passes_fds {
            let mut k = 0;
            for _ in 0..data.len() / 4 {
                let Some(ours) = owned.next() else { break };
                if refused || !admissible(ours.as_fd()) {
                    if !refused {
                        super::calls::log_refusal(
                            cx.call.tid,
                            format_args!(
                                "a descriptor passed in that is a network socket or TAP device"
                            ),
                        );
                    }
                    refused = true;
                    continue;
                }
                let theirs =
                    kernel::addfd(cx.call.listener(), cx.call.id, ours.as_fd(), cloexec, false)
                        .map_err(|e| match e.raw_os_error() {
                            Some(libc::ENOENT | libc::ESRCH) => Fail::Gone,
                            _ => Fail::from(e),
                        })?;
                body[k..k + 4].copy_from_slice(&theirs.to_ne_bytes());
                k += 4;
            }
            if k == 0 {
                continue;
            }
            k
        } else {
            body[..data.len()].copy_from_slice(data);
            data.len()
        };
        let total = CMSG_HDR + n;
        if len + total > room {
            *msg_flags |= libc::MSG_CTRUNC;
            break;
        }
        out[len..len + 8].copy_from_slice(&(total as u64).to_ne_bytes());
        out[len + 8..len + 12].copy_from_slice(&level.to_ne_bytes());
        out[len + 12..len + 16].copy_from_slice(&ty.to_ne_bytes());
        out[len + CMSG_HDR..len + total].copy_from_slice(&body[..n]);
        len = (len + total).next_multiple_of(8).min(room);
    }
    if refused {
        *msg_flags |= libc::MSG_CTRUNC;
    }
    if len > 0 {
        cx.call.write(dest, &out[..len])?;
    }
    Ok(len)
}
