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

mod class;
mod conn;
mod dgram;
mod dns;
mod front;
mod netdb;
mod resolve;
mod sys;

use class::Class;
use front::{Control, Local};
use libc::{c_int, c_void, iovec, sockaddr, socklen_t};
use netcell_frontend::SetDone;
use netcell_proto::{ACCEPT_RECORD_LEN, MAX_SOCKADDR, Request, reply_flags};
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Inodes of stand-ins known to be listening (so `accept` needs no request).
/// Socket inodes only grow, so an entry never names a different socket later.
static LISTENERS: Mutex<BTreeSet<u64>> = Mutex::new(BTreeSet::new());

macro_rules! real {
    ($fn:ident, $sym:literal, fn($($a:ident: $t:ty),* $(,)?) -> $r:ty, $sys:expr $(,)?) => {
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
        let fd = unsafe { real_socket(domain, ty, protocol) };
        class::set(fd, Class::Foreign);
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
            None => fail(libc::EPROTO),
            Some(fd) => {
                // Received close-on-exec (no window for a concurrent exec); keep it
                // only if asked.
                set_cloexec(fd, ty & libc::SOCK_CLOEXEC != 0);
                if ty & libc::SOCK_NONBLOCK != 0 {
                    sys::set_nonblock(fd);
                }
                class::set(
                    fd,
                    if ty & 0xf == libc::SOCK_STREAM {
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
    let Some(ino) = standin(fd) else {
        return native();
    };
    let r = netcell_frontend::bind(&Local, &mut Control, ino, addr as u64, len);
    front::ret(r, native)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn listen(fd: c_int, backlog: c_int) -> c_int {
    // SAFETY: passing the caller's arguments through.
    let native = || unsafe { real_listen(fd, backlog) };
    let Some(ino) = standin(fd) else {
        return native();
    };
    let r = netcell_frontend::plain(&mut Control, ino, &Request::Listen { backlog });
    if r == Ok(netcell_frontend::Done::Value(0))
        && let Ok(mut l) = LISTENERS.lock()
    {
        l.insert(ino);
    }
    front::ret(r, native)
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
    let known = LISTENERS.lock().map(|l| l.contains(&ino)).unwrap_or(false);
    if !known {
        match netcell_frontend::listening(&mut Control, ino) {
            // SAFETY: passing through.
            Ok(None) => return unsafe { real_accept4(fd, addr, len, flags) },
            Ok(Some(false)) => return fail(libc::EINVAL),
            Ok(Some(true)) => {
                if let Ok(mut l) = LISTENERS.lock() {
                    l.insert(ino);
                }
            }
            Err(e) => return front::ret(Err(e), || -1),
        }
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
    class::set(conn_fd, Class::Stream);
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
    let Some(ino) = standin(fd) else {
        return native();
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
    if !addr.is_null() && class::of(fd) == Class::Datagram {
        let iov = [iovec {
            iov_base: buf as *mut c_void,
            iov_len: len,
        }];
        // SAFETY: the caller's buffers.
        return match unsafe { dgram::send_via_stack(fd, &iov, flags, addr, alen, &[]) } {
            Ok(n) => n as isize,
            Err(e) => fail(e) as isize,
        };
    }
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
    // SAFETY: the caller's msghdr.
    if !msg.is_null()
        && class::of(fd) == Class::Datagram
        && unsafe { !(*msg).msg_name.is_null() || (*msg).msg_controllen > 0 }
    {
        // SAFETY: the caller's msghdr and the buffers it points at.
        let r = unsafe {
            let m = &*msg;
            let iov = if m.msg_iov.is_null() {
                &[][..]
            } else {
                std::slice::from_raw_parts(m.msg_iov, m.msg_iovlen)
            };
            let ctl = if m.msg_control.is_null() {
                &[][..]
            } else {
                std::slice::from_raw_parts(
                    m.msg_control.cast::<u8>(),
                    m.msg_controllen.min(netcell_proto::MAX_CONTROL),
                )
            };
            dgram::send_via_stack(
                fd,
                iov,
                flags,
                m.msg_name.cast::<sockaddr>(),
                m.msg_namelen,
                ctl,
            )
        };
        return match r {
            Ok(n) => n as isize,
            Err(e) => fail(e) as isize,
        };
    }
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

// ---- Datagram receive paths, and the fd lifecycle the classification follows ----

real!(
    real_recvfrom,
    "recvfrom",
    fn(fd: c_int, b: *mut c_void, n: usize, f: c_int, a: *mut sockaddr, l: *mut socklen_t) -> isize,
    libc::SYS_recvfrom
);
real!(
    real_recvmsg,
    "recvmsg",
    fn(fd: c_int, m: *mut libc::msghdr, f: c_int) -> isize,
    libc::SYS_recvmsg
);
real!(
    real_read,
    "read",
    fn(fd: c_int, b: *mut c_void, n: usize) -> isize,
    libc::SYS_read
);
real!(
    real_readv,
    "readv",
    fn(fd: c_int, v: *const iovec, n: c_int) -> isize,
    libc::SYS_readv
);
real!(real_close, "close", fn(fd: c_int) -> c_int, libc::SYS_close);
real!(real_dup, "dup", fn(fd: c_int) -> c_int, libc::SYS_dup);
real!(
    real_dup2,
    "dup2",
    fn(fd: c_int, n: c_int) -> c_int,
    libc::SYS_dup2
);
real!(
    real_dup3,
    "dup3",
    fn(fd: c_int, n: c_int, f: c_int) -> c_int,
    libc::SYS_dup3
);
real!(
    real_fcntl,
    "fcntl",
    fn(fd: c_int, c: c_int, a: libc::c_ulong) -> c_int,
    libc::SYS_fcntl
);
real!(
    real_ioctl,
    "ioctl",
    fn(fd: c_int, r: libc::c_ulong, a: *mut c_void) -> c_int,
    libc::SYS_ioctl
);
real!(
    real_socketpair,
    "socketpair",
    fn(d: c_int, t: c_int, p: c_int, sv: *mut c_int) -> c_int,
    libc::SYS_socketpair
);
real!(
    real_sendmmsg,
    "sendmmsg",
    fn(fd: c_int, m: *mut libc::mmsghdr, n: libc::c_uint, f: c_int) -> c_int,
    libc::SYS_sendmmsg
);
real!(
    real_recvmmsg,
    "recvmmsg",
    fn(
        fd: c_int,
        m: *mut libc::mmsghdr,
        n: libc::c_uint,
        f: c_int,
        t: *mut libc::timespec,
    ) -> c_int,
    libc::SYS_recvmmsg
);

/// A datagram receive, or `None` to fall back to the kernel (the fd was not a
/// datagram stand-in after all).
unsafe fn dgram_recv(
    fd: c_int,
    iov: &[iovec],
    flags: c_int,
    name: *mut sockaddr,
    namelen: *mut socklen_t,
    control: (*mut c_void, usize),
) -> Option<Result<dgram::Received, c_int>> {
    if class::of(fd) != Class::Datagram {
        return None;
    }
    // SAFETY: the caller's buffers.
    match unsafe { dgram::recv(fd, iov, flags, name, namelen, control) } {
        Ok(Some(r)) => Some(Ok(r)),
        Ok(None) => {
            class::set(fd, class::probe(fd));
            None
        }
        Err(e) => Some(Err(e)),
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn recvfrom(
    fd: c_int,
    buf: *mut c_void,
    len: usize,
    flags: c_int,
    addr: *mut sockaddr,
    alen: *mut socklen_t,
) -> isize {
    let iov = [iovec {
        iov_base: buf,
        iov_len: len,
    }];
    // SAFETY: the caller's buffers.
    match unsafe { dgram_recv(fd, &iov, flags, addr, alen, (std::ptr::null_mut(), 0)) } {
        Some(Ok(r)) => r.ret,
        Some(Err(e)) => fail(e) as isize,
        // SAFETY: passing through.
        None => unsafe { real_recvfrom(fd, buf, len, flags, addr, alen) },
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn recv(fd: c_int, buf: *mut c_void, len: usize, flags: c_int) -> isize {
    // SAFETY: same contract, no address.
    unsafe {
        recvfrom(
            fd,
            buf,
            len,
            flags,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn recvmsg(fd: c_int, msg: *mut libc::msghdr, flags: c_int) -> isize {
    if msg.is_null() || class::of(fd) != Class::Datagram {
        // SAFETY: passing through.
        return unsafe { real_recvmsg(fd, msg, flags) };
    }
    // SAFETY: the caller's msghdr.
    let m = unsafe { &mut *msg };
    let iov = if m.msg_iov.is_null() {
        &[][..]
    } else {
        // SAFETY: the caller's iovec array.
        unsafe { std::slice::from_raw_parts(m.msg_iov, m.msg_iovlen) }
    };
    let mut namelen = m.msg_namelen;
    let name = m.msg_name.cast::<sockaddr>();
    // SAFETY: the caller's buffers.
    match unsafe {
        dgram_recv(
            fd,
            iov,
            flags,
            name,
            if name.is_null() {
                std::ptr::null_mut()
            } else {
                &mut namelen
            },
            (m.msg_control, m.msg_controllen),
        )
    } {
        Some(Ok(r)) => {
            if !name.is_null() {
                m.msg_namelen = namelen;
            }
            m.msg_controllen = r.control_len;
            m.msg_flags = r.flags;
            r.ret
        }
        Some(Err(e)) => fail(e) as isize,
        // SAFETY: passing through.
        None => unsafe { real_recvmsg(fd, msg, flags) },
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn recvmmsg(
    fd: c_int,
    v: *mut libc::mmsghdr,
    n: libc::c_uint,
    flags: c_int,
    timeout: *mut libc::timespec,
) -> c_int {
    if v.is_null() || class::of(fd) != Class::Datagram {
        // SAFETY: passing through.
        return unsafe { real_recvmmsg(fd, v, n, flags, timeout) };
    }
    let n = n.min(1024) as usize;
    let mut got = 0;
    let mut f = flags & !libc::MSG_WAITFORONE;
    for i in 0..n {
        // SAFETY: the caller's array of `n` entries.
        let e = unsafe { &mut *v.add(i) };
        // SAFETY: the entry's msghdr.
        let r = unsafe { recvmsg(fd, &mut e.msg_hdr, f) };
        if r < 0 {
            if got == 0 {
                return -1;
            }
            break;
        }
        e.msg_len = r as libc::c_uint;
        got += 1;
        if flags & libc::MSG_WAITFORONE != 0 {
            f |= libc::MSG_DONTWAIT;
        }
    }
    got
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn sendmmsg(
    fd: c_int,
    v: *mut libc::mmsghdr,
    n: libc::c_uint,
    flags: c_int,
) -> c_int {
    if v.is_null() || class::of(fd) != Class::Datagram {
        // SAFETY: passing through.
        return unsafe { real_sendmmsg(fd, v, n, flags) };
    }
    let mut sent = 0;
    for i in 0..n.min(1024) as usize {
        // SAFETY: the caller's array.
        let e = unsafe { &mut *v.add(i) };
        // SAFETY: the entry's msghdr.
        let r = unsafe { sendmsg(fd, &e.msg_hdr, flags) };
        if r < 0 {
            if sent == 0 {
                return -1;
            }
            break;
        }
        e.msg_len = r as libc::c_uint;
        sent += 1;
    }
    sent
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, len: usize) -> isize {
    let iov = [iovec {
        iov_base: buf,
        iov_len: len,
    }];
    // SAFETY: the caller's buffer.
    match unsafe {
        dgram_recv(
            fd,
            &iov,
            0,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            (std::ptr::null_mut(), 0),
        )
    } {
        Some(Ok(r)) => r.ret,
        Some(Err(e)) => fail(e) as isize,
        // SAFETY: passing through.
        None => unsafe { real_read(fd, buf, len) },
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn readv(fd: c_int, v: *const iovec, n: c_int) -> isize {
    if v.is_null() || n < 0 || class::of(fd) != Class::Datagram {
        // SAFETY: passing through.
        return unsafe { real_readv(fd, v, n) };
    }
    // SAFETY: the caller's iovec array.
    let iov = unsafe { std::slice::from_raw_parts(v, n as usize) };
    // SAFETY: the caller's buffers.
    match unsafe {
        dgram_recv(
            fd,
            iov,
            0,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            (std::ptr::null_mut(), 0),
        )
    } {
        Some(Ok(r)) => r.ret,
        Some(Err(e)) => fail(e) as isize,
        // SAFETY: passing through.
        None => unsafe { real_readv(fd, v, n) },
    }
}

/// `_FORTIFY_SOURCE` entry points: the bounds check, then the same paths (glibc's
/// own versions call its internal functions, which would bypass the shim).
fn chk(len: usize, buflen: usize) {
    if len > buflen {
        // SAFETY: glibc's fortify failure handler; it does not return.
        unsafe extern "C" {
            fn __chk_fail() -> !;
        }
        unsafe { __chk_fail() }
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn __recv_chk(
    fd: c_int,
    buf: *mut c_void,
    len: usize,
    buflen: usize,
    flags: c_int,
) -> isize {
    chk(len, buflen);
    // SAFETY: checked bounds, same contract.
    unsafe { recv(fd, buf, len, flags) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn __recvfrom_chk(
    fd: c_int,
    buf: *mut c_void,
    len: usize,
    buflen: usize,
    flags: c_int,
    addr: *mut sockaddr,
    alen: *mut socklen_t,
) -> isize {
    chk(len, buflen);
    // SAFETY: checked bounds, same contract.
    unsafe { recvfrom(fd, buf, len, flags, addr, alen) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn __read_chk(
    fd: c_int,
    buf: *mut c_void,
    len: usize,
    buflen: usize,
) -> isize {
    chk(len, buflen);
    // SAFETY: checked bounds, same contract.
    unsafe { read(fd, buf, len) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn ioctl(fd: c_int, req: libc::c_ulong, arg: *mut c_void) -> c_int {
    if req == libc::FIONREAD && !arg.is_null() && class::of(fd) == Class::Datagram {
        // SAFETY: FIONREAD's argument is an int.
        unsafe { *arg.cast::<c_int>() = dgram::next_size(fd) };
        return 0;
    }
    // SAFETY: passing through (the variadic argument is one pointer-sized value).
    unsafe { real_ioctl(fd, req, arg) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    class::forget(fd);
    // SAFETY: passing through.
    unsafe { real_close(fd) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup(fd: c_int) -> c_int {
    // SAFETY: passing through.
    let n = unsafe { real_dup(fd) };
    if n >= 0 {
        class::copy(fd, n);
    }
    n
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup2(fd: c_int, new: c_int) -> c_int {
    // SAFETY: passing through.
    let n = unsafe { real_dup2(fd, new) };
    if n >= 0 {
        class::copy(fd, n);
    }
    n
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup3(fd: c_int, new: c_int, flags: c_int) -> c_int {
    // SAFETY: passing through.
    let n = unsafe { real_dup3(fd, new, flags) };
    if n >= 0 {
        class::copy(fd, n);
    }
    n
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: libc::c_ulong) -> c_int {
    // SAFETY: passing through (the variadic argument is one int or pointer).
    let r = unsafe { real_fcntl(fd, cmd, arg) };
    if r >= 0 && (cmd == libc::F_DUPFD || cmd == libc::F_DUPFD_CLOEXEC) {
        class::copy(fd, r);
    }
    r
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn socketpair(d: c_int, t: c_int, p: c_int, sv: *mut c_int) -> c_int {
    // SAFETY: passing through.
    let r = unsafe { real_socketpair(d, t, p, sv) };
    if r == 0 && !sv.is_null() {
        // SAFETY: the kernel filled two ints.
        unsafe {
            class::set(*sv, Class::Foreign);
            class::set(*sv.add(1), Class::Foreign);
        }
    }
    r
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn fcntl64(fd: c_int, cmd: c_int, arg: libc::c_ulong) -> c_int {
    // SAFETY: same contract.
    unsafe { fcntl(fd, cmd, arg) }
}

real!(
    real_close_range,
    "close_range",
    fn(first: libc::c_uint, last: libc::c_uint, f: c_int) -> c_int,
    libc::SYS_close_range
);

#[unsafe(no_mangle)]
pub unsafe extern "C" fn close_range(
    first: libc::c_uint,
    last: libc::c_uint,
    flags: c_int,
) -> c_int {
    // SAFETY: passing through.
    let r = unsafe { real_close_range(first, last, flags) };
    if r == 0 && flags & libc::CLOSE_RANGE_CLOEXEC as c_int == 0 {
        for fd in first..=last.min(65535) {
            class::forget(fd as c_int);
        }
    }
    r
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn closefrom(low: c_int) {
    // glibc's closefrom uses close_range; do the same through ours.
    // SAFETY: plain close_range over the program's own fds.
    let r = unsafe { close_range(low.max(0) as libc::c_uint, libc::c_uint::MAX, 0) };
    if r != 0 {
        for fd in low.max(0)..65536 {
            // SAFETY: closing the program's fds as it asked.
            unsafe { close(fd) };
        }
    }
}
