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

mod calls;
mod class;
mod conn;
mod data;
mod dgram;
mod dns;
mod front;
mod hooks;
mod ifaces;
mod netdb;
mod origins;
mod real;
mod resolve;
mod spare;
mod sys;

use libc::{c_int, sockaddr, socklen_t};
use netcell_proto::{MAX_SOCKADDR, Request, reply_flags};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Stand-ins known to be listening (so `accept` needs no request): inode to
/// `SO_COOKIE`. Inode numbers are a machine-wide 32-bit counter that wraps, so
/// an inode alone may name another socket later; the cookie tells. At most
/// [`MAX_LISTENERS`] are kept (a program that listens on many sockets in turn
/// clears them now and then and asks again).
pub(crate) static LISTENERS: Mutex<BTreeMap<u64, u64>> = Mutex::new(BTreeMap::new());

/// Entries of [`LISTENERS`] at most.
pub(crate) const MAX_LISTENERS: usize = 4096;

pub(crate) fn fail(e: c_int) -> c_int {
    sys::set_errno(e);
    -1
}

/// The inode of `fd` if it is a stand-in of this container's stack.
pub(crate) fn standin(fd: c_int) -> Option<u64> {
    if !conn::active() {
        return None;
    }
    let ino = sys::socket_inode(fd)?;
    if sys::sockopt_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN)? != libc::AF_UNIX {
        return None;
    }
    conn::stack_made(fd).then_some(ino)
}

/// Borrows a C sockaddr as bytes, with Linux's checks (`move_addr_to_kernel`).
pub(crate) unsafe fn addr_bytes<'a>(
    addr: *const sockaddr,
    len: socklen_t,
) -> Result<&'a [u8], c_int> {
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
pub(crate) fn ask(
    ino: u64,
    req: &Request<'_>,
    fd: Option<c_int>,
) -> Option<Result<conn::Response, c_int>> {
    match conn::call(ino, req, fd) {
        Ok(r) if r.flags & reply_flags::NOT_STANDIN != 0 => None,
        Ok(r) if r.errno != 0 => Some(Err(r.errno)),
        Ok(r) => Some(Ok(r)),
        Err(e) => Some(Err(e)),
    }
}

pub(crate) fn set_cloexec(fd: c_int, on: bool) {
    // SAFETY: plain fcntl on an fd we just received.
    unsafe { libc::fcntl(fd, libc::F_SETFD, if on { libc::FD_CLOEXEC } else { 0 }) };
}
