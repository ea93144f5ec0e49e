//! netcell's `LD_PRELOAD` shim: redirects a program's INET sockets into its
//! container's stack.
//!
//! # Theory of operation
//!
//! `socket(AF_INET/AF_INET6, ...)` asks the stack (over the control socket named by
//! `NETCELL_CONTROL`) for a new socket and returns the *stand-in* it sends: a real
//! kernel fd, one end of an `AF_UNIX` stream pair. Data calls (`read`, `write`,
//! `send`, `recv`, `poll`, `epoll`, `close`, ...) then work on it natively and are
//! not intercepted at all. The calls a byte stream cannot express are forwarded as
//! control requests, and their answers (errno values included) come from the stack:
//! `bind`, `listen`, `connect`, `getsockname`, `getpeername`, `setsockopt`,
//! `getsockopt`, `shutdown`. `accept` needs no request: the stack delivers each
//! connection into the listener's stand-in, and `accept` is one `recvmsg`, so it
//! blocks, times out and wakes `epoll` exactly like a kernel listener.
//!
//! An fd is a stand-in when it is an `AF_UNIX` socket whose peer was created by the
//! stack process (`SO_PEERCRED`); the stack has the last word (an inode it does not
//! know is passed to the kernel). Everything else — `AF_UNIX` sockets, pipes, files —
//! goes to the real libc function. Without `NETCELL_CONTROL` the shim is inert.
//!
//! A blocking `connect` waits natively for the stand-in to turn writable (the stack
//! keeps it unwritable until the handshake ends), so signals interrupt it as they
//! would the kernel's (`EINTR`, the connection going on), and `SO_SNDTIMEO` bounds
//! it (`EINPROGRESS`).
//!
//! Limits: statically linked programs and Go binaries do not load preload libraries
//! (use `--shim seccomp` once available); glibc's resolver calls its internal socket
//! functions, which bypass this library.
#![allow(clippy::missing_safety_doc)]

mod conn;
mod sys;

use libc::{c_int, c_void, sockaddr, socklen_t};
use netcell_proto::{
    ACCEPT_RECORD_LEN, AcceptRecord, MAX_OPTVAL, MAX_SOCKADDR, Request, reply_flags,
};
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Inodes of stand-ins known to be listening (so `accept` needs no request).
/// Socket inodes only grow, so an entry never names a different socket later.
static LISTENERS: Mutex<BTreeSet<u64>> = Mutex::new(BTreeSet::new());

macro_rules! real {
    ($fn:ident, $sym:literal, fn($($a:ident: $t:ty),*) -> $r:ty, $sys:expr) => {
        unsafe fn $fn($($a: $t),*) -> $r {
            static P: AtomicUsize = AtomicUsize::new(0);
            let mut p = P.load(Ordering::Relaxed);
            if p == 0 {
                // SAFETY: dlsym with a NUL-terminated name.
                p = unsafe { libc::dlsym(libc::RTLD_NEXT, concat!($sym, "\0").as_ptr().cast()) } as usize;
                P.store(p, Ordering::Relaxed);
            }
            if p == 0 {
                // No next definition (cannot happen with glibc): the raw system call.
                // SAFETY: same arguments as the libc function.
                return unsafe { libc::syscall($sys, $($a as libc::c_long),*) } as $r;
            }
            // SAFETY: the symbol is libc's function of exactly this signature.
            let f: unsafe extern "C" fn($($t),*) -> $r = unsafe { std::mem::transmute(p) };
            unsafe { f($($a),*) }
        }
    };
}

real!(
    real_socket,
    "socket",
    fn(d: c_int, t: c_int, p: c_int) -> c_int,
    libc::SYS_socket
);
real!(
    real_bind,
    "bind",
    fn(fd: c_int, a: *const sockaddr, l: socklen_t) -> c_int,
    libc::SYS_bind
);
real!(
    real_listen,
    "listen",
    fn(fd: c_int, b: c_int) -> c_int,
    libc::SYS_listen
);
real!(
    real_accept4,
    "accept4",
    fn(fd: c_int, a: *mut sockaddr, l: *mut socklen_t, f: c_int) -> c_int,
    libc::SYS_accept4
);
real!(
    real_accept,
    "accept",
    fn(fd: c_int, a: *mut sockaddr, l: *mut socklen_t) -> c_int,
    libc::SYS_accept
);
real!(
    real_connect,
    "connect",
    fn(fd: c_int, a: *const sockaddr, l: socklen_t) -> c_int,
    libc::SYS_connect
);
real!(
    real_getsockname,
    "getsockname",
    fn(fd: c_int, a: *mut sockaddr, l: *mut socklen_t) -> c_int,
    libc::SYS_getsockname
);
real!(
    real_getpeername,
    "getpeername",
    fn(fd: c_int, a: *mut sockaddr, l: *mut socklen_t) -> c_int,
    libc::SYS_getpeername
);
real!(
    real_setsockopt,
    "setsockopt",
    fn(fd: c_int, lv: c_int, n: c_int, v: *const c_void, l: socklen_t) -> c_int,
    libc::SYS_setsockopt
);
real!(
    real_getsockopt,
    "getsockopt",
    fn(fd: c_int, lv: c_int, n: c_int, v: *mut c_void, l: *mut socklen_t) -> c_int,
    libc::SYS_getsockopt
);
real!(
    real_shutdown,
    "shutdown",
    fn(fd: c_int, h: c_int) -> c_int,
    libc::SYS_shutdown
);
real!(
    real_sendto,
    "sendto",
    fn(fd: c_int, b: *const c_void, n: usize, f: c_int, a: *const sockaddr, l: socklen_t) -> isize,
    libc::SYS_sendto
);
real!(
    real_sendmsg,
    "sendmsg",
    fn(fd: c_int, m: *const libc::msghdr, f: c_int) -> isize,
    libc::SYS_sendmsg
);

fn fail(e: c_int) -> c_int {
    sys::set_errno(e);
    -1
}

/// The inode of `fd` if it is a stand-in of this container's stack.
fn standin(fd: c_int) -> Option<u64> {
    if !conn::active() {
        return None;
    }
    let ino = sys::socket_inode(fd)?;
    if sys::sockopt_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN)? != libc::AF_UNIX {
        return None;
    }
    let peer = sys::peer_pid(fd)?;
    (Some(peer) == conn::stack_pid()).then_some(ino)
}

/// Borrows a C sockaddr as bytes, with Linux's checks (`move_addr_to_kernel`).
unsafe fn addr_bytes<'a>(addr: *const sockaddr, len: socklen_t) -> Result<&'a [u8], c_int> {
    if len as usize > MAX_SOCKADDR {
        return Err(libc::EINVAL);
    }
    if len == 0 {
        return Ok(&[]);
    }
    if addr.is_null() {
        return Err(libc::EFAULT);
    }
    // SAFETY: the caller passed `len` readable bytes at `addr`, as the C API requires.
    Ok(unsafe { std::slice::from_raw_parts(addr.cast::<u8>(), len as usize) })
}

/// Copies an address out as `accept`/`getsockname` do: truncated to the caller's
/// buffer, with the full length reported.
unsafe fn put_addr(addr: *mut sockaddr, len: *mut socklen_t, data: &[u8]) {
    if addr.is_null() || len.is_null() {
        return;
    }
    // SAFETY: the caller passed a buffer of `*len` bytes and a valid length pointer.
    unsafe {
        let n = (*len as usize).min(data.len());
        std::ptr::copy_nonoverlapping(data.as_ptr(), addr.cast::<u8>(), n);
        *len = data.len() as socklen_t;
    }
}

/// Sends a request about a stand-in; `None` when the stack says it is not one.
fn ask(ino: u64, req: &Request<'_>, fd: Option<c_int>) -> Option<Result<conn::Response, c_int>> {
    match conn::call(ino, req, fd) {
        Ok(r) if r.flags & reply_flags::NOT_STANDIN != 0 => None,
        Ok(r) if r.errno != 0 => Some(Err(r.errno)),
        Ok(r) => Some(Ok(r)),
        Err(e) => Some(Err(e)),
    }
}

fn set_cloexec(fd: c_int, on: bool) {
    // SAFETY: plain fcntl on an fd we just received.
    unsafe { libc::fcntl(fd, libc::F_SETFD, if on { libc::FD_CLOEXEC } else { 0 }) };
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    if (domain != libc::AF_INET && domain != libc::AF_INET6) || !conn::active() {
        // SAFETY: passing the caller's arguments through.
        return unsafe { real_socket(domain, ty, protocol) };
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
            None => fail(libc::EPROTO),
            Some(fd) => {
                // Received close-on-exec (no window for a concurrent exec); keep it
                // only if asked.
                set_cloexec(fd, ty & libc::SOCK_CLOEXEC != 0);
                if ty & libc::SOCK_NONBLOCK != 0 {
                    sys::set_nonblock(fd);
                }
                fd
            }
        },
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    let Some(ino) = standin(fd) else {
        // SAFETY: passing through.
        return unsafe { real_bind(fd, addr, len) };
    };
    // SAFETY: the caller's address buffer.
    let a = match unsafe { addr_bytes(addr, len) } {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    match ask(ino, &Request::Bind { addr: a }, None) {
        // SAFETY: passing through.
        None => unsafe { real_bind(fd, addr, len) },
        Some(Ok(_)) => 0,
        Some(Err(e)) => fail(e),
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn listen(fd: c_int, backlog: c_int) -> c_int {
    let Some(ino) = standin(fd) else {
        // SAFETY: passing through.
        return unsafe { real_listen(fd, backlog) };
    };
    match ask(ino, &Request::Listen { backlog }, None) {
        // SAFETY: passing through.
        None => unsafe { real_listen(fd, backlog) },
        Some(Ok(_)) => {
            if let Ok(mut l) = LISTENERS.lock() {
                l.insert(ino);
            }
            0
        }
        Some(Err(e)) => fail(e),
    }
}

fn int_value(r: &conn::Response) -> c_int {
    let d = r.data();
    if d.len() >= 4 {
        c_int::from_ne_bytes([d[0], d[1], d[2], d[3]])
    } else {
        0
    }
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
    if flags & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) != 0 {
        return fail(libc::EINVAL);
    }
    let known = LISTENERS.lock().map(|l| l.contains(&ino)).unwrap_or(false);
    if !known {
        let req = Request::GetSockOpt {
            level: libc::SOL_SOCKET,
            name: libc::SO_ACCEPTCONN,
            len: 4,
        };
        match ask(ino, &req, None) {
            // SAFETY: passing through.
            None => return unsafe { real_accept4(fd, addr, len, flags) },
            Some(Err(e)) => return fail(e),
            Some(Ok(r)) if int_value(&r) == 0 => return fail(libc::EINVAL),
            Some(Ok(_)) => {
                if let Ok(mut l) = LISTENERS.lock() {
                    l.insert(ino);
                }
            }
        }
    }
    let mut rec = [0u8; ACCEPT_RECORD_LEN];
    let got = match sys::recv_with_fd(fd, &mut rec, libc::MSG_CMSG_CLOEXEC) {
        Ok(g) => g,
        Err(e) => return fail(e),
    };
    let (Some(record), Some(conn_fd)) = (AcceptRecord::decode(&rec[..got.len]), got.fd) else {
        if let Some(f) = got.fd {
            sys::close(f);
        }
        // EOF: the listener was shut down.
        return fail(if got.len == 0 {
            libc::EINVAL
        } else {
            libc::ECONNABORTED
        });
    };
    set_cloexec(conn_fd, flags & libc::SOCK_CLOEXEC != 0);
    if flags & libc::SOCK_NONBLOCK != 0 {
        sys::set_nonblock(conn_fd);
    }
    let (peer, plen) = record.peer;
    // SAFETY: the caller's buffer and length.
    unsafe { put_addr(addr, len, &peer[..plen as usize]) };
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
    let Some(ino) = standin(fd) else {
        // SAFETY: passing through.
        return unsafe { real_connect(fd, addr, len) };
    };
    // SAFETY: the caller's address buffer.
    let a = match unsafe { addr_bytes(addr, len) } {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    let errno = match ask(ino, &Request::Connect { addr: a }, Some(fd)) {
        // SAFETY: passing through.
        None => return unsafe { real_connect(fd, addr, len) },
        Some(Ok(_)) => return 0,
        Some(Err(e)) => e,
    };
    let blocking = sys::fl(fd) & libc::O_NONBLOCK == 0;
    if !(blocking && (errno == libc::EINPROGRESS || errno == libc::EALREADY)) {
        return fail(errno);
    }
    // Blocking connect: the stand-in turns writable when the handshake ends.
    match sys::poll1(fd, libc::POLLOUT, sys::sndtimeo_ms(fd)) {
        Err(e) => return fail(e),
        Ok(0) => return fail(libc::EINPROGRESS),
        Ok(_) => {}
    }
    let req = Request::GetSockOpt {
        level: libc::SOL_SOCKET,
        name: libc::SO_ERROR,
        len: 4,
    };
    match ask(ino, &req, None) {
        Some(Ok(r)) if int_value(&r) == 0 => 0,
        Some(Ok(r)) => fail(int_value(&r)),
        Some(Err(e)) => fail(e),
        None => fail(libc::ENOTSOCK),
    }
}

unsafe fn name_call(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t, peer: bool) -> c_int {
    let passthrough = |fd, addr, len| {
        // SAFETY: passing the caller's arguments through.
        unsafe {
            if peer {
                real_getpeername(fd, addr, len)
            } else {
                real_getsockname(fd, addr, len)
            }
        }
    };
    let Some(ino) = standin(fd) else {
        return passthrough(fd, addr, len);
    };
    if addr.is_null() || len.is_null() {
        return fail(libc::EFAULT);
    }
    // SAFETY: checked non-null above.
    if (unsafe { *len } as i32) < 0 {
        return fail(libc::EINVAL);
    }
    let req = if peer {
        Request::GetPeerName
    } else {
        Request::GetSockName
    };
    match ask(ino, &req, None) {
        None => passthrough(fd, addr, len),
        Some(Ok(r)) => {
            // SAFETY: the caller's buffer and length.
            unsafe { put_addr(addr, len, r.data()) };
            0
        }
        Some(Err(e)) => fail(e),
    }
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
    let Some(ino) = standin(fd) else {
        // SAFETY: passing through.
        return unsafe { real_setsockopt(fd, level, name, val, len) };
    };
    if len as usize > MAX_OPTVAL {
        return fail(libc::EINVAL);
    }
    let value: &[u8] = if len == 0 {
        &[]
    } else if val.is_null() {
        return fail(libc::EFAULT);
    } else {
        // SAFETY: the caller passed `len` readable bytes.
        unsafe { std::slice::from_raw_parts(val.cast::<u8>(), len as usize) }
    };
    match ask(ino, &Request::SetSockOpt { level, name, value }, None) {
        // SAFETY: passing through.
        None => unsafe { real_setsockopt(fd, level, name, val, len) },
        Some(Ok(r)) if r.flags & reply_flags::APPLY_NATIVE != 0 => {
            // SAFETY: the caller's arguments, applied to the stand-in as well.
            unsafe { real_setsockopt(fd, level, name, val, len) }
        }
        Some(Ok(_)) => 0,
        Some(Err(e)) => fail(e),
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
    let Some(ino) = standin(fd) else {
        // SAFETY: passing through.
        return unsafe { real_getsockopt(fd, level, name, val, len) };
    };
    if len.is_null() {
        return fail(libc::EFAULT);
    }
    // SAFETY: checked non-null.
    let want = unsafe { *len } as i32;
    if want < 0 {
        return fail(libc::EINVAL);
    }
    if val.is_null() && want > 0 {
        return fail(libc::EFAULT);
    }
    match ask(
        ino,
        &Request::GetSockOpt {
            level,
            name,
            len: want as u32,
        },
        None,
    ) {
        // SAFETY: passing through.
        None => unsafe { real_getsockopt(fd, level, name, val, len) },
        Some(Ok(r)) => {
            let n = (want as usize).min(r.data().len());
            // SAFETY: the caller's buffer holds `want` bytes; we copy at most that.
            unsafe {
                std::ptr::copy_nonoverlapping(r.data().as_ptr(), val.cast::<u8>(), n);
                *len = n as socklen_t;
            }
            0
        }
        Some(Err(e)) => fail(e),
    }
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

/// Whether `fd` is a stand-in for a stream (TCP) socket.
fn stream_standin(fd: c_int) -> bool {
    sys::sockopt_int(fd, libc::SOL_SOCKET, libc::SO_TYPE) == Some(libc::SOCK_STREAM)
        && standin(fd).is_some()
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn sendto(
    fd: c_int,
    buf: *const c_void,
    len: usize,
    flags: c_int,
    addr: *const sockaddr,
    alen: socklen_t,
) -> isize {
    // TCP ignores the destination of a connected socket; an AF_UNIX stream (the
    // stand-in) would answer EISCONN. Only calls with an address pay for the check.
    let (addr, alen) = if !addr.is_null() && stream_standin(fd) {
        (std::ptr::null(), 0)
    } else {
        (addr, alen)
    };
    // SAFETY: the caller's arguments (the address possibly dropped).
    unsafe { real_sendto(fd, buf, len, flags, addr, alen) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn sendmsg(fd: c_int, msg: *const libc::msghdr, flags: c_int) -> isize {
    // SAFETY: the caller passes a valid msghdr (or the kernel reports EFAULT).
    if !msg.is_null() && unsafe { !(*msg).msg_name.is_null() } && stream_standin(fd) {
        // SAFETY: copying the caller's msghdr to drop the address.
        let mut m = unsafe { *msg };
        m.msg_name = std::ptr::null_mut();
        m.msg_namelen = 0;
        // SAFETY: a valid msghdr.
        return unsafe { real_sendmsg(fd, &m, flags) };
    }
    // SAFETY: passing through.
    unsafe { real_sendmsg(fd, msg, flags) }
}
