//! The control calls: `socket`, `bind`, `listen`, `accept`, `connect`, the names,
//! the options and `shutdown` — each a request to the stack for a stand-in (its
//! meaning written once, in `netcell-frontend`), the real libc function for
//! anything else.

use crate::class::{self, Class};
use crate::front::{self, Control, Local};
use crate::real::*;
use crate::{LISTENERS, addr_bytes, ask, conn, dgram, fail, set_cloexec, spare, standin, sys};
use libc::{c_int, c_void, sockaddr, socklen_t};
use netcell_frontend::SetDone;
use netcell_proto::{ACCEPT_RECORD_LEN, Request, reply_flags};

#[unsafe(no_mangle)]
pub unsafe extern "C" fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    // NETLINK_ROUTE (0) is the container's: its interfaces, routes, addresses.
    // A packet socket is the mirror's: a kernel packet socket in a namespace
    // that copies the container's interfaces (see the stack's `packet` module).
    let ours = domain == libc::AF_INET
        || domain == libc::AF_INET6
        || domain == libc::AF_PACKET
        || (domain == libc::AF_NETLINK && (protocol == 0 || protocol == 4));
    if !ours || !conn::active() {
        // SAFETY: passing the caller's arguments through.
        let fd = unsafe { real_socket(domain, ty, protocol) };
        class::set(fd, Class::Foreign);
        return fd;
    }
    if let Some(fd) = spare::take(domain, ty, protocol) {
        return fd;
    }
    match conn::call(
        0,
        &Request::Socket {
            domain,
            ty,
            protocol,
        },
        None,
    ) {
        Err(e) => fail(e),
        Ok(r) if r.errno != 0 => fail(r.errno),
        Ok(r) => match r.fd {
            // The stand-in came but the kernel could not install it (MSG_CTRUNC):
            // the descriptor table is full, which is Linux's EMFILE.
            None => fail(libc::EMFILE),
            Some(fd) => {
                // Received close-on-exec (no window for a concurrent exec); keep it
                // only if asked.
                set_cloexec(fd, ty & libc::SOCK_CLOEXEC != 0);
                if ty & libc::SOCK_NONBLOCK != 0 {
                    sys::set_nonblock(fd);
                }
                class::set(
                    fd,
                    if domain == libc::AF_PACKET {
                        Class::Foreign
                    } else if ty & 0xf == libc::SOCK_STREAM {
                        Class::Stream
                    } else {
                        Class::Datagram
                    },
                );
                fd
            }
        },
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    // SAFETY: passing the caller's arguments through.
    let native = || unsafe { real_bind(fd, addr, len) };
    let Some(ino) = standin(fd).or_else(|| reopen_closed_host_socket(fd)) else {
        return native();
    };
    let r = netcell_frontend::bind(&Local, &mut Control, ino, addr as u64, len);
    front::ret(r, native)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn listen(fd: c_int, backlog: c_int) -> c_int {
    // SAFETY: passing the caller's arguments through.
    let native = || unsafe { real_listen(fd, backlog) };
    let Some(ino) = standin(fd).or_else(|| reopen_closed_host_socket(fd)) else {
        return native();
    };
    let r = netcell_frontend::listen(&mut front::Passing(fd), ino, backlog);
    if r == Ok(netcell_frontend::Done::Value(0)) {
        class::set(fd, Class::Listener);
        known_listener(fd, ino);
    }
    front::ret(r, native)
}

/// Notes that the stand-in `fd` (inode `ino`) listens (see [`LISTENERS`]).
fn known_listener(fd: c_int, ino: u64) {
    let (Some(cookie), Ok(mut l)) = (sys::socket_cookie(fd), LISTENERS.lock()) else {
        return;
    };
    if l.len() >= crate::MAX_LISTENERS {
        l.clear();
    }
    l.insert(ino, cookie);
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn accept4(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
) -> c_int {
    let Some(ino) = standin(fd) else {
        // SAFETY: passing through.
        return unsafe { real_accept4(fd, addr, len, flags) };
    };
    if let Err(e) = netcell_frontend::accept_flags(flags) {
        return front::ret(Err(e), || -1);
    }
    let cookie = sys::socket_cookie(fd);
    let known = LISTENERS
        .lock()
        .is_ok_and(|l| cookie.is_some() && l.get(&ino).copied() == cookie);
    if !known {
        match netcell_frontend::listening(&mut Control, ino) {
            // SAFETY: passing through.
            Ok(None) => return unsafe { real_accept4(fd, addr, len, flags) },
            Ok(Some(false)) => return fail(libc::EINVAL),
            Ok(Some(true)) => known_listener(fd, ino),
            Err(e) => return front::ret(Err(e), || -1),
        }
    }
    // At the descriptor limit the kernel would drop the connection's stand-in
    // from the record (and the connection with it); Linux fails with EMFILE and
    // leaves the connection waiting. So look for room first.
    if !sys::have_room_for_fd() {
        return fail(libc::EMFILE);
    }
    let mut rec = [0u8; ACCEPT_RECORD_LEN];
    let got = match sys::recv_with_fd(fd, &mut rec, libc::MSG_CMSG_CLOEXEC) {
        Ok(g) => g,
        Err(e) => return fail(e),
    };
    let record = &rec[..got.len];
    let r = netcell_frontend::accepted(&Local, record, got.fd.is_some(), addr as u64, len as u64);
    let conn_fd = match (r, got.fd) {
        (Ok(()), Some(c)) => c,
        (r, f) => {
            if let Some(f) = f {
                sys::close(f);
            }
            return front::ret(
                r.and(Err(netcell_frontend::Fail::Errno(libc::ECONNABORTED))),
                || -1,
            );
        }
    };
    set_cloexec(conn_fd, flags & libc::SOCK_CLOEXEC != 0);
    if flags & libc::SOCK_NONBLOCK != 0 {
        sys::set_nonblock(conn_fd);
    }
    // A connection of a published port is the host's accepted socket itself.
    class::set(conn_fd, class::probe(conn_fd));
    // Taken from the queue (a listener closed from now on does not reset it), and
    // where it lives (a reset shows as ECONNRESET there). Not answered: the
    // accept returns without a round trip.
    if let Some(ino) = sys::socket_inode(conn_fd) {
        let _ = conn::tell(ino, &Request::Placed { fd: conn_fd });
    }
    conn_fd
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    if standin(fd).is_none() {
        // SAFETY: passing through.
        return unsafe { real_accept(fd, addr, len) };
    }
    // SAFETY: same contract.
    unsafe { accept4(fd, addr, len, 0) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    let Some(ino) = standin(fd).or_else(|| reopen_closed_host_socket(fd)) else {
        // SAFETY: passing through.
        return unsafe { real_connect(fd, addr, len) };
    };
    // SAFETY: the caller's address buffer.
    let a = match unsafe { addr_bytes(addr, len) } {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    let mut ino = ino;
    let blocking = sys::fl(fd) & libc::O_NONBLOCK == 0;
    // A blocking connect's answer reaches this thread for sure: the stack may
    // report a connection its request established at once (`wait`).
    let req = Request::Connect {
        addr: a,
        wait: blocking,
        spare: spare::wanted(
            a.get(..2)
                .map_or(0, |f| c_int::from(u16::from_ne_bytes([f[0], f[1]]))),
        ),
    };
    let errno = match conn::call(ino, &req, Some(fd)) {
        // SAFETY: passing through.
        Ok(r) if r.flags & reply_flags::NOT_STANDIN != 0 => {
            return unsafe { real_connect(fd, addr, len) };
        }
        Ok(mut r) => {
            if r.flags & reply_flags::SPARE != 0
                && let Some(s) = r.fd.take()
            {
                spare::keep(r.value as c_int, s);
            }
            if r.flags & reply_flags::REPLACE_STANDIN != 0
                && let Some(new) = r.fd
            {
                // A connect after a failed one: the new stand-in takes the old one's
                // place (its number and flags).
                match sys::replace_fd(fd, new) {
                    Ok(()) => {
                        class::set(fd, Class::Stream);
                        ino = sys::socket_inode(fd).unwrap_or(ino);
                    }
                    Err(e) => return fail(e),
                }
                if sys::sockopt_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN) != Some(libc::AF_UNIX) {
                    // The uplink's fast path: fd is the host socket now, its
                    // handshake under way; the kernel serves it from here on.
                    class::set(fd, Class::Foreign);
                    // SAFETY: the caller's arguments.
                    return unsafe { host_connected(fd, addr, len) };
                }
            }
            if r.errno == 0 {
                return 0;
            }
            r.errno
        }
        Err(e) => e,
    };
    if !(blocking && (errno == libc::EINPROGRESS || errno == libc::EALREADY)) {
        return fail(errno);
    }
    // Blocking connect: the stand-in turns writable when the handshake ends; then
    // the call is made again, as Linux's own wait ends, which reports the outcome
    // once (0, or the error).
    loop {
        match sys::poll1(fd, libc::POLLOUT, sys::sndtimeo_ms(fd)) {
            Err(e) => return fail(e),
            Ok(0) => return fail(libc::EINPROGRESS),
            Ok(_) => {}
        }
        // The answer cannot be lost in the program's own thread: reported at once.
        match netcell_frontend::connect_end(&mut Control, ino, a, true) {
            Ok(netcell_frontend::ConnectEnd::Connected) => return 0,
            Ok(netcell_frontend::ConnectEnd::Pending) => continue,
            Ok(netcell_frontend::ConnectEnd::Failed(e)) => return fail(e),
            Ok(netcell_frontend::ConnectEnd::Native) => return fail(libc::ENOTSOCK),
            Err(e) => return front::ret(Err(e), || -1),
        }
    }
}

/// A host socket of the uplink's fast path whose connection failed or ended is
/// connected, bound or listening again through the stack, as a new socket would
/// be (the container's routing and the uplink's policy apply again; a listener
/// listens in the container): a fresh TCP stand-in takes its place. Returns its inode; `None` for any other descriptor (the kernel's:
/// connected or connecting, it answers `EISCONN`/`EALREADY` itself).
fn reopen_closed_host_socket(fd: c_int) -> Option<u64> {
    if !conn::active()
        || sys::sockopt_int(fd, libc::SOL_SOCKET, libc::SO_TYPE)? != libc::SOCK_STREAM
    {
        return None;
    }
    let domain = sys::sockopt_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN)?;
    if domain != libc::AF_INET && domain != libc::AF_INET6 {
        return None;
    }
    if sys::poll1(fd, 0, 0).ok()? & libc::POLLHUP == 0 {
        return None;
    }
    let ino = sys::socket_inode(fd)?;
    let described = conn::call(ino, &Request::Describe, None).ok()?;
    if described.errno != 0 || described.value != netcell_proto::kinds::HOST_TCP {
        return None;
    }
    let r = conn::call(
        0,
        &Request::Socket {
            domain,
            ty: libc::SOCK_STREAM,
            protocol: 0,
        },
        None,
    )
    .ok()?;
    sys::replace_fd(fd, r.fd?).ok()?;
    class::set(fd, Class::Stream);
    sys::socket_inode(fd)
}

/// The end of a `connect` that the uplink handed to host socket `fd`:
/// `EINPROGRESS` for a non-blocking socket; else, once the handshake ended, the
/// connect made again on the kernel's socket, which reports the outcome once and
/// leaves the socket as Linux's own blocking connect does.
unsafe fn host_connected(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    if sys::fl(fd) & libc::O_NONBLOCK != 0 {
        return fail(libc::EINPROGRESS);
    }
    match sys::poll1(fd, libc::POLLOUT, sys::sndtimeo_ms(fd)) {
        Err(e) => return fail(e),
        Ok(0) => return fail(libc::EINPROGRESS),
        Ok(_) => {}
    }
    // SAFETY: the caller's arguments.
    unsafe { real_connect(fd, addr, len) }
}

unsafe fn name_call(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t, peer: bool) -> c_int {
    let native = || {
        // SAFETY: passing the caller's arguments through.
        unsafe {
            if peer {
                real_getpeername(fd, addr, len)
            } else {
                real_getsockname(fd, addr, len)
            }
        }
    };
    let ino = match standin(fd) {
        Some(ino) => ino,
        // A host socket of the uplink's fast path: its name is the container's
        // (the stack answers for its inode; for any other socket it says
        // NOT_STANDIN and the kernel answers).
        None if conn::active() => match sys::socket_inode(fd) {
            Some(ino) => ino,
            None => return native(),
        },
        None => return native(),
    };
    let r = netcell_frontend::name(&Local, &mut Control, ino, peer, addr as u64, len as u64);
    front::ret(r, native)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn getsockname(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    // SAFETY: same contract.
    unsafe { name_call(fd, addr, len, false) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn getpeername(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    // SAFETY: same contract.
    unsafe { name_call(fd, addr, len, true) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *const c_void,
    len: socklen_t,
) -> c_int {
    // SAFETY: passing the caller's arguments through.
    let native = || unsafe { real_setsockopt(fd, level, name, val, len) };
    let Some(ino) = standin(fd) else {
        return native();
    };
    match netcell_frontend::setsockopt(&Local, &mut Control, ino, (level, name), val as u64, len) {
        Ok(SetDone::Done) => 0,
        // The stand-in takes the option too (or is no stand-in after all).
        Ok(SetDone::AlsoNative | SetDone::Native) => native(),
        Err(e) => front::ret(Err(e), native),
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn getsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *mut c_void,
    len: *mut socklen_t,
) -> c_int {
    // SAFETY: passing the caller's arguments through.
    let native = || unsafe { real_getsockopt(fd, level, name, val, len) };
    let Some(ino) = standin(fd) else {
        return native();
    };
    // A datagram socket's pending ICMP error waits as a marker in its stand-in.
    if level == libc::SOL_SOCKET
        && name == libc::SO_ERROR
        && class::of(fd) == Class::Datagram
        && !len.is_null()
        && let Some(e) = dgram::take_marker(fd)
    {
        // SAFETY: checked non-null.
        let want = unsafe { *len } as i32;
        let v = e.to_ne_bytes();
        let r = netcell_frontend::put_option(
            &Local,
            val as u64,
            len as u64,
            &v[..want.clamp(0, 4) as usize],
        );
        return front::ret(r.map(|()| netcell_frontend::Done::Value(0)), native);
    }
    let r = netcell_frontend::getsockopt(
        &Local,
        &mut Control,
        ino,
        (level, name),
        val as u64,
        len as u64,
    );
    front::ret(r, native)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn shutdown(fd: c_int, how: c_int) -> c_int {
    let Some(ino) = standin(fd) else {
        // SAFETY: passing through.
        return unsafe { real_shutdown(fd, how) };
    };
    match ask(ino, &Request::Shutdown { how }, None) {
        // SAFETY: passing through (and, after the stack agreed, shutting the
        // stand-in itself so the FIN is ordered after the bytes written).
        None | Some(Ok(_)) => unsafe {
            let r = real_shutdown(fd, how);
            if r < 0 && sys::errno() == libc::ENOTCONN {
                0
            } else {
                r
            }
        },
        Some(Err(e)) => fail(e),
    }
}
