//! Datagram (UDP) stand-ins: the receive and send paths.
//!
//! A datagram stand-in is a `SOCK_SEQPACKET` socket whose records are bare payloads
//! (see the stack's `socket::udp`). Receiving is a native `recvmsg` with three
//! additions: the full length is always asked for (`MSG_TRUNC`) so the datagram can
//! be matched with its origin; a record carrying a descriptor is the stack's error
//! marker and becomes `-1` with the errno it holds; and when the program wants the
//! source address or ancillary data, one `Origin` request fetches them. A send with
//! a destination or ancillary data is a `SendTo` request carrying the datagram; a
//! plain `send`/`write` on a connected socket stays native.

use crate::conn;
use crate::front::{Control, Local};
use crate::sys;
use libc::{c_int, c_void, iovec, msghdr, sockaddr, socklen_t};
use netcell_proto::{Grant, MAX_CONTROL, MAX_DATAGRAM, MAX_MESSAGE, MAX_SOCKADDR, Request};
use std::mem::{size_of, zeroed};
use std::sync::Mutex;

#[repr(C, align(8))]
struct Cmsg([u8; 64]);

/// The first `n` bytes spread over `iov`.
///
/// # Safety
/// `iov` describes valid buffers holding at least `n` bytes in total.
unsafe fn gather(iov: &[iovec], n: usize, out: &mut [u8]) -> usize {
    let mut got = 0;
    for v in iov {
        if got == n {
            break;
        }
        let take = (n - got).min(v.iov_len);
        // SAFETY: `take` bytes of this iovec were written by the kernel.
        unsafe {
            std::ptr::copy_nonoverlapping(v.iov_base.cast::<u8>(), out[got..].as_mut_ptr(), take)
        };
        got += take;
    }
    got
}

/// What a receive returned.
pub struct Received {
    /// The value for the program: bytes copied, or the full length with `MSG_TRUNC`.
    pub ret: isize,
    /// `msg_flags` for `recvmsg`.
    pub flags: c_int,
    /// Bytes of ancillary data written.
    pub control_len: usize,
}

/// Receives one datagram into `iov`. `name`/`namelen` (may be null) get the source;
/// `control` (may be empty) the ancillary data the socket's options ask for.
/// `Err(errno)` for errors, including the stack's error markers. `Ok(None)`: the
/// fd is not a socket after all (a stale classification): the caller reclassifies
/// and falls back to the kernel.
///
/// # Safety
/// The pointers are valid as the socket API requires.
pub unsafe fn recv(
    fd: c_int,
    iov: &[iovec],
    flags: c_int,
    name: *mut sockaddr,
    namelen: *mut socklen_t,
    control: (*mut c_void, usize),
) -> Result<Option<Received>, c_int> {
    let want_origin = !name.is_null() || (!control.0.is_null() && control.1 > 0);
    let capacity: usize = iov.iter().map(|v| v.iov_len).sum();
    let mut cm = Cmsg([0; 64]);
    // SAFETY: plain data.
    let mut m: msghdr = unsafe { zeroed() };
    m.msg_iov = iov.as_ptr() as *mut iovec;
    m.msg_iovlen = iov.len();
    m.msg_control = cm.0.as_mut_ptr().cast();
    m.msg_controllen = cm.0.len();
    let f = flags | libc::MSG_TRUNC | libc::MSG_CMSG_CLOEXEC;
    // SAFETY: `m` points at valid buffers.
    let r = unsafe {
        libc::syscall(
            libc::SYS_recvmsg,
            fd as libc::c_long,
            &mut m as *mut msghdr as libc::c_long,
            f as libc::c_long,
        )
    };
    if r < 0 {
        let e = sys::errno();
        if e == libc::ENOTSOCK {
            return Ok(None);
        }
        return Err(e);
    }
    let full = r as usize;
    if let Some(marker) = marker_fd(&m) {
        sys::close(marker);
        let mut e = [0u8; 4];
        // SAFETY: the kernel wrote min(full, capacity) bytes into iov.
        let n = unsafe { gather(iov, full.min(4).min(capacity), &mut e) };
        if flags & libc::MSG_PEEK != 0 {
            // Consume the marker: an error is reported once.
            let mut sink = [0u8; 8];
            let mut sv = [iovec {
                iov_base: sink.as_mut_ptr().cast(),
                iov_len: sink.len(),
            }];
            let mut cm2 = Cmsg([0; 64]);
            // SAFETY: plain data.
            let mut m2: msghdr = unsafe { zeroed() };
            m2.msg_iov = sv.as_mut_ptr();
            m2.msg_iovlen = 1;
            m2.msg_control = cm2.0.as_mut_ptr().cast();
            m2.msg_controllen = cm2.0.len();
            // SAFETY: valid buffers.
            unsafe {
                libc::syscall(
                    libc::SYS_recvmsg,
                    fd as libc::c_long,
                    &mut m2 as *mut msghdr as libc::c_long,
                    (libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC) as libc::c_long,
                )
            };
            if let Some(f2) = marker_fd(&m2) {
                sys::close(f2);
            }
        }
        return Err(netcell_frontend::dgram::marker_errno(&e[..n]));
    }
    let copied = full.min(capacity);
    let mut out_flags = if full > capacity { libc::MSG_TRUNC } else { 0 };
    let mut control_len = 0;
    if want_origin {
        let mut prefix = [0u8; 16];
        // SAFETY: the kernel wrote `copied` bytes into iov.
        let plen = unsafe { gather(iov, copied.min(16), &mut prefix) };
        let ino = sys::socket_inode(fd).unwrap_or(0);
        let name_room = if name.is_null() || namelen.is_null() {
            None
        } else {
            // SAFETY: checked non-null; the caller's length.
            Some((name as u64, unsafe { *namelen }))
        };
        let wants = netcell_frontend::dgram::Wants {
            name: name_room,
            control: Some((control.0 as u64, control.1)),
        };
        let peek = flags & libc::MSG_PEEK != 0;
        // A source without ancillary data: from the socket's origins ring, no
        // round trip (see `origins`).
        if let Some((at, room)) = name_room
            && (control.0.is_null() || control.1 == 0)
        {
            let mut sa = [0u8; netcell_proto::ring::MAX_ADDR];
            if let Some(n) = crate::origins::find(ino, full as u32, &prefix[..plen], peek, &mut sa)
            {
                let k = n.min(room as usize);
                // SAFETY: the caller's name buffer of `room` bytes; its length.
                unsafe {
                    std::ptr::copy_nonoverlapping(sa.as_ptr(), at as *mut u8, k);
                    *namelen = n as socklen_t;
                }
                return Ok(Some(Received {
                    ret: if flags & libc::MSG_TRUNC != 0 {
                        full
                    } else {
                        copied
                    } as isize,
                    flags: out_flags,
                    control_len: 0,
                }));
            }
        }
        let o = netcell_frontend::dgram::origin(
            &Local,
            &mut Control,
            ino,
            (full, &prefix[..plen], peek),
            wants,
        )
        .map_err(|e| match e {
            netcell_frontend::Fail::Errno(e) => e,
            netcell_frontend::Fail::Gone => libc::EINTR,
        })?;
        if name_room.is_some() {
            // SAFETY: checked non-null.
            unsafe { *namelen = o.namelen };
        }
        control_len = o.controllen;
        if o.ctrunc {
            out_flags |= libc::MSG_CTRUNC;
        }
    }
    let ret = if flags & libc::MSG_TRUNC != 0 {
        full
    } else {
        copied
    };
    Ok(Some(Received {
        ret: ret as isize,
        flags: out_flags,
        control_len,
    }))
}

/// `SO_ERROR` of a datagram stand-in: an error marker at the head of the queue is
/// the pending error; it is taken (reported once, as Linux does).
pub fn take_marker(fd: c_int) -> Option<c_int> {
    let mut e = [0u8; 4];
    let mut taken = None;
    for flags in [libc::MSG_PEEK, 0] {
        let mut v = [iovec {
            iov_base: e.as_mut_ptr().cast(),
            iov_len: e.len(),
        }];
        let mut cm = Cmsg([0; 64]);
        // SAFETY: plain data.
        let mut m: msghdr = unsafe { zeroed() };
        m.msg_iov = v.as_mut_ptr();
        m.msg_iovlen = 1;
        m.msg_control = cm.0.as_mut_ptr().cast();
        m.msg_controllen = cm.0.len();
        // SAFETY: valid buffers.
        let r = unsafe {
            libc::syscall(
                libc::SYS_recvmsg,
                fd as libc::c_long,
                &mut m as *mut msghdr as libc::c_long,
                (flags | libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC) as libc::c_long,
            )
        };
        if r < 0 {
            return taken;
        }
        match marker_fd(&m) {
            Some(f) => sys::close(f),
            None => return None,
        }
        let errno = c_int::from_ne_bytes(e);
        taken = Some(if errno > 0 { errno } else { libc::ECONNREFUSED });
    }
    taken
}

/// The first descriptor in a received message's ancillary data, if any (others are
/// closed).
fn marker_fd(m: &msghdr) -> Option<c_int> {
    let mut found = None;
    // SAFETY: the kernel filled msg_control with well-formed cmsghdrs.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(m);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let count = ((*c).cmsg_len - libc::CMSG_LEN(0) as usize) / size_of::<c_int>();
                for i in 0..count {
                    let fd = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<c_int>().add(i));
                    if found.is_none() {
                        found = Some(fd)
                    } else {
                        sys::close(fd)
                    }
                }
            }
            c = libc::CMSG_NXTHDR(m, c);
        }
    }
    found
}

/// Sends one datagram through the stack (`SendTo`): the destination and ancillary
/// data as the program passed them. Returns bytes sent or `Err(errno)`.
///
/// # Safety
/// The pointers are valid as the socket API requires.
pub unsafe fn send_via_stack(
    fd: c_int,
    iov: &[iovec],
    flags: c_int,
    addr: *const sockaddr,
    alen: socklen_t,
    control: &[u8],
) -> Result<usize, c_int> {
    let total: usize = iov.iter().map(|v| v.iov_len).sum();
    if total > MAX_DATAGRAM {
        return Err(libc::EMSGSIZE);
    }
    if alen as usize > MAX_SOCKADDR || control.len() > MAX_CONTROL {
        return Err(libc::EINVAL);
    }
    let addr: &[u8] = if addr.is_null() || alen == 0 {
        &[]
    } else {
        // SAFETY: the caller's address of `alen` bytes.
        unsafe { std::slice::from_raw_parts(addr.cast::<u8>(), alen as usize) }
    };
    let ino = sys::socket_inode(fd).ok_or(libc::EBADF)?;
    if control.is_empty() && !addr.is_empty() {
        // SAFETY: the caller's iovecs.
        match unsafe { post(ino, iov, total, flags, addr) } {
            Ok(()) => return Ok(total),
            Err(Fail::Errno(e)) => return Err(e),
            Err(Fail::Gone) => {} // ask, below
        }
    }
    let mut payload = vec![0u8; total];
    // SAFETY: the caller's iovecs, `total` bytes in all.
    unsafe { copy_in(iov, &mut payload) }?;
    let req = Request::SendTo {
        flags,
        addr,
        control,
        payload: &payload,
    };
    match conn::call(ino, &req, None) {
        Ok(r) if r.errno == 0 => {
            if r.flags & netcell_proto::reply_flags::GRANT != 0
                && let Some(g) = Grant::decode(r.data())
            {
                remember(ino, g);
            }
            Ok(r.value as usize)
        }
        Ok(r) => Err(r.errno),
        Err(e) => Err(e),
    }
}

/// Grants the stack handed out (see the stack's `control::grants`): (socket
/// inode, grant), the newest last.
static GRANTS: Mutex<Vec<(u64, Grant)>> = Mutex::new(Vec::new());
/// Grants kept per process.
const MAX_GRANTS: usize = 64;
/// Sockets this process posted on (their inodes), the newest last: their close
/// sends `Closing` first (see [`before_close`]).
static POSTED: Mutex<Vec<u64>> = Mutex::new(Vec::new());
/// The largest datagram posted (its request is built on the thread's stack, in
/// a reply-sized buffer); bigger ones are asked for.
const MAX_POSTED: usize = MAX_MESSAGE - 160;

/// What [`post`] did instead of posting.
enum Fail {
    /// The program's call fails with this errno, as the kernel's would.
    Errno(c_int),
    /// No grant covers it, or posting is not possible now: ask the stack.
    Gone,
}

/// Before the program closes `fd`, a datagram socket: if this process posted
/// on it, the stack reads the posts first (a `Closing` request on the thread's
/// connection, behind them), so the close need not wait for them and the port
/// is free when `close` returns, as on Linux.
pub fn before_close(fd: c_int) {
    let Some(ino) = sys::socket_inode(fd) else {
        return;
    };
    if let Ok(mut all) = GRANTS.try_lock() {
        all.retain(|(i, _)| *i != ino);
    }
    let posted = match POSTED.try_lock() {
        Ok(mut all) => {
            let before = all.len();
            all.retain(|i| *i != ino);
            all.len() != before
        }
        // Busy: whether it posted is unknown; the stack waits for its posts.
        Err(_) => false,
    };
    if posted {
        let _ = conn::call(ino, &Request::Closing, None);
    }
}

fn remember(ino: u64, g: Grant) {
    let Ok(mut all) = GRANTS.try_lock() else {
        return;
    };
    // A socket's grant for the same block is replaced; the oldest goes first.
    all.retain(|(i, old)| {
        !(*i == ino
            && old.family == g.family
            && old.prefix_len == g.prefix_len
            && old.covers(&g.addr[..if g.family == 4 { 4 } else { 16 }]))
    });
    if all.len() >= MAX_GRANTS {
        all.remove(0);
    }
    all.push((ino, g));
}

/// Posts a datagram of socket `ino` to `addr` if a grant of the current
/// generation covers it (see the stack's `control::grants`); `Gone` to ask
/// instead.
///
/// # Safety
/// `iov` describes the caller's readable buffers of `total` bytes in all.
unsafe fn post(
    ino: u64,
    iov: &[iovec],
    total: usize,
    flags: c_int,
    addr: &[u8],
) -> Result<(), Fail> {
    const POSTABLE: c_int = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL | libc::MSG_CONFIRM;
    if total > MAX_POSTED || flags & !POSTABLE != 0 {
        return Err(Fail::Gone);
    }
    let Some(generation) = conn::generation() else {
        return Err(Fail::Gone);
    };
    // The destination as the stack compares it: family, port, address bytes.
    let (family, port, ip) = match (
        addr.len(),
        addr.first().map(|_| u16::from_ne_bytes([addr[0], addr[1]])),
    ) {
        (16.., Some(f)) if f == libc::AF_INET as u16 => (4, &addr[2..4], &addr[4..8]),
        (24.., Some(f)) if f == libc::AF_INET6 as u16 => (6, &addr[2..4], &addr[8..24]),
        _ => return Err(Fail::Gone),
    };
    if port == [0, 0] {
        return Err(Fail::Gone);
    }
    let covered = GRANTS.try_lock().ok().is_some_and(|all| {
        all.iter().any(|(i, g)| {
            *i == ino
                && g.family == family
                && g.generation == generation
                && total <= usize::from(g.max_payload)
                && g.covers(ip)
        })
    });
    if !covered {
        return Err(Fail::Gone);
    }
    // The request, then the datagram gathered right behind it (a post's
    // payload is its last field): one buffer of the thread's stack.
    let mut buf = [0u8; MAX_MESSAGE];
    let head = Request::Post {
        flags,
        addr,
        payload: &[],
    };
    let n = netcell_proto::encode_request(
        netcell_proto::RequestHeader { seq: 0, sock: ino },
        &head,
        &mut buf,
    )
    .map_err(|_| Fail::Gone)?;
    if n + total > buf.len() {
        return Err(Fail::Gone);
    }
    // SAFETY: the caller's iovecs, `total` bytes in all; they fit (above).
    unsafe { copy_in(iov, &mut buf[n..n + total]) }.map_err(Fail::Errno)?;
    conn::post(&buf[..n + total]).map_err(|_| Fail::Gone)?;
    if let Ok(mut all) = POSTED.try_lock()
        && all.last() != Some(&ino)
        && !all.contains(&ino)
    {
        if all.len() >= MAX_GRANTS {
            all.remove(0);
        }
        all.push(ino);
    }
    Ok(())
}

/// Copies what the iovecs hold into `out` (exactly their total length);
/// `EFAULT` for a null buffer with a length, as the kernel answers.
///
/// # Safety
/// `iov` describes readable buffers of `out.len()` bytes in all.
unsafe fn copy_in(iov: &[iovec], out: &mut [u8]) -> Result<(), c_int> {
    let mut at = 0;
    for v in iov {
        if v.iov_len == 0 {
            continue;
        }
        if v.iov_base.is_null() {
            return Err(libc::EFAULT);
        }
        // SAFETY: the caller's iovec of iov_len readable bytes; they fit.
        unsafe {
            std::ptr::copy_nonoverlapping(
                v.iov_base.cast::<u8>(),
                out[at..].as_mut_ptr(),
                v.iov_len,
            )
        };
        at += v.iov_len;
    }
    Ok(())
}

/// `FIONREAD` of a datagram stand-in: the size of the next datagram (a native
/// `FIONREAD` on a `SOCK_SEQPACKET` socket counts every queued byte).
pub fn next_size(fd: c_int) -> c_int {
    // SAFETY: a zero-length receive with a null buffer is valid.
    let r = unsafe {
        libc::syscall(
            libc::SYS_recvfrom,
            fd as libc::c_long,
            std::ptr::null_mut::<c_void>() as libc::c_long,
            0 as libc::c_long,
            (libc::MSG_PEEK | libc::MSG_TRUNC | libc::MSG_DONTWAIT) as libc::c_long,
            0 as libc::c_long,
            0 as libc::c_long,
        )
    };
    if r < 0 { 0 } else { r as c_int }
}
