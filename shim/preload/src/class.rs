//! What kind of fd a number is, remembered per process so that the data calls the
//! shim must see for datagram stand-ins (`recv`, `read`, ...) cost other fds one
//! array lookup.
//!
//! An entry is set when the shim creates or learns an fd (`socket`, `accept`,
//! `socketpair`, `dup*`, `fcntl(F_DUPFD)`) and forgotten on `close`; an unknown entry
//! is classified on first use (`fstat`, `SO_TYPE`, `SO_PEERCRED`) and remembered.
//! The table starts empty after `exec` and is inherited by `fork`. Numbers above
//! the table's size are classified every time.

use crate::{conn, sys};
use std::sync::atomic::{AtomicU8, Ordering};

const SIZE: usize = 65536;
static TABLE: [AtomicU8; SIZE] = [const { AtomicU8::new(0) }; SIZE];

/// What an fd is to the shim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Not a stand-in: every call goes to the kernel.
    Foreign,
    /// A stream (TCP) stand-in.
    Stream,
    /// A datagram (UDP) stand-in.
    Datagram,
    /// A stream stand-in that is listening (learned at `listen`).
    Listener,
}

const UNKNOWN: u8 = 0;

fn code(c: Class) -> u8 {
    match c {
        Class::Foreign => 1,
        Class::Stream => 2,
        Class::Datagram => 3,
        Class::Listener => 4,
    }
}

fn decode(v: u8) -> Option<Class> {
    match v {
        1 => Some(Class::Foreign),
        2 => Some(Class::Stream),
        3 => Some(Class::Datagram),
        4 => Some(Class::Listener),
        _ => None,
    }
}

/// Remembers what `fd` is.
pub fn set(fd: libc::c_int, c: Class) {
    if let Some(e) = usize::try_from(fd).ok().and_then(|i| TABLE.get(i)) {
        e.store(code(c), Ordering::Relaxed);
    }
}

/// Forgets `fd` (it was closed or replaced).
pub fn forget(fd: libc::c_int) {
    if let Some(e) = usize::try_from(fd).ok().and_then(|i| TABLE.get(i)) {
        e.store(UNKNOWN, Ordering::Relaxed);
    }
}

/// Looks at the fd itself.
pub fn probe(fd: libc::c_int) -> Class {
    if !conn::active() {
        return Class::Foreign;
    }
    let Some(_) = sys::socket_inode(fd) else {
        return Class::Foreign;
    };
    if sys::sockopt_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN) != Some(libc::AF_UNIX) {
        return Class::Foreign;
    }
    let ty = sys::sockopt_int(fd, libc::SOL_SOCKET, libc::SO_TYPE);
    let ours = conn::stack_made(fd);
    match (ours, ty) {
        (true, Some(libc::SOCK_STREAM)) => Class::Stream,
        (true, Some(libc::SOCK_SEQPACKET)) => Class::Datagram,
        _ => Class::Foreign,
    }
}

/// What the table says `fd` is, without probing it.
pub fn known(fd: libc::c_int) -> Option<Class> {
    let e = usize::try_from(fd).ok().and_then(|i| TABLE.get(i))?;
    decode(e.load(Ordering::Relaxed))
}

/// What `fd` is, from the table or by probing it.
pub fn of(fd: libc::c_int) -> Class {
    let Some(e) = usize::try_from(fd).ok().and_then(|i| TABLE.get(i)) else {
        return probe(fd);
    };
    if let Some(c) = decode(e.load(Ordering::Relaxed)) {
        return c;
    }
    let c = probe(fd);
    e.store(code(c), Ordering::Relaxed);
    c
}

/// Copies the class of `from` to `to` (`dup2`, `fcntl(F_DUPFD)`).
pub fn copy(from: libc::c_int, to: libc::c_int) {
    let c = usize::try_from(from)
        .ok()
        .and_then(|i| TABLE.get(i))
        .map_or(UNKNOWN, |e| e.load(Ordering::Relaxed));
    if let Some(e) = usize::try_from(to).ok().and_then(|i| TABLE.get(i)) {
        e.store(c, Ordering::Relaxed);
    }
}
