//! Spare TCP stand-ins: `socket()` without a round trip.
//!
//! A TCP client's `socket()` asked the stack for a stand-in and waited for it: a
//! round trip (two sleeping threads woken) of the two a connection costs before
//! its `connect` returns. Now a connect asks for a spare along the way
//! (`Request::Connect`'s `spare`): the reply carries a new unconnected TCP
//! stand-in of the connecting socket's domain, which the shim keeps, moved up to
//! a high descriptor number (close-on-exec, out of the way of the numbers the
//! program's own files get). The program's next `socket()` of that domain and
//! type takes it: duplicated to the lowest free number (the number Linux would
//! give), with the flags asked for — three system calls and no waiting.
//!
//! What it costs and where it shows: one descriptor per domain in each process
//! that connects (as the shim's pooled control connections, visible in
//! `/proc/self/fd`), and one socket of the container's `--max-sockets` (the
//! stack gives none when the limit is one socket away). A spare a process never
//! takes goes when it exits or `exec`s (the stack finds it closed, as any
//! unpaired stand-in). After `fork` a child would hold a copy of its parent's
//! spare, and with it the socket the parent's next `socket()` becomes (its close
//! would then not be the last, and its peer would never see it): a
//! `pthread_atfork` handler closes the child's copy at once (only if the number
//! still holds it). A `vfork` child (no handlers run) leaves the slot to its
//! parent and asks the stack. A program that closed the number itself (a
//! daemon's `close_range`) is noticed by the inode: the spare is forgotten. Where
//! the descriptor limit is below 300 no spare is kept.

use crate::class::{self, Class};
use crate::sys;
use libc::c_int;
use std::sync::Mutex;

/// A spare stand-in held by the process `pid` at descriptor `fd`.
struct Spare {
    pid: u32,
    fd: c_int,
    ino: u64,
}

/// One slot per domain: `AF_INET`, `AF_INET6`.
static SLOTS: [Mutex<Option<Spare>>; 2] = [Mutex::new(None), Mutex::new(None)];

/// Where spares are kept: at or above this descriptor number.
const SPARE_FD_MIN: c_int = 300;

fn slot(domain: c_int) -> Option<&'static Mutex<Option<Spare>>> {
    match domain {
        libc::AF_INET => Some(&SLOTS[0]),
        libc::AF_INET6 => Some(&SLOTS[1]),
        _ => None,
    }
}

fn me() -> u32 {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() as u32 }
}

/// Whether a `socket(domain, ty, protocol)` call can take a spare: a TCP socket
/// of `AF_INET` or `AF_INET6` with no other flags than `SOCK_NONBLOCK` and
/// `SOCK_CLOEXEC`.
fn eligible(domain: c_int, ty: c_int, protocol: c_int) -> bool {
    slot(domain).is_some()
        && ty & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) == libc::SOCK_STREAM
        && (protocol == 0 || protocol == libc::IPPROTO_TCP)
}

/// Hands out the spare for `socket(domain, ty, protocol)`, if there is one:
/// the new descriptor, with `ty`'s flags.
pub fn take(domain: c_int, ty: c_int, protocol: c_int) -> Option<c_int> {
    if !eligible(domain, ty, protocol) {
        return None;
    }
    // A signal handler's socket() while this thread holds the slot asks the
    // stack instead.
    let mut guard = slot(domain)?.try_lock().ok()?;
    if guard.as_ref()?.pid != me() {
        // A vfork child's view of its parent's slot: the parent's.
        return None;
    }
    let s = guard.take()?;
    drop(guard);
    if sys::socket_inode(s.fd) != Some(s.ino) {
        // The program closed the number: the spare is gone (the stack finds it
        // closed).
        return None;
    }
    let cmd = if ty & libc::SOCK_CLOEXEC != 0 {
        libc::F_DUPFD_CLOEXEC
    } else {
        libc::F_DUPFD
    };
    let n = sys::dup_from(s.fd, cmd, 0);
    sys::close(s.fd);
    let n = n.ok()?;
    if ty & libc::SOCK_NONBLOCK != 0 {
        sys::set_nonblock(n);
    }
    class::set(n, Class::Stream);
    Some(n)
}

/// Whether a connect to an address of `family` should ask for a spare: that
/// family's slot is empty. (The stack makes the spare in the connecting
/// socket's domain, which is the address's family for every connect that can
/// succeed: a v4-mapped destination of an IPv6 socket is `AF_INET6` too.)
pub fn wanted(family: c_int) -> bool {
    slot(family)
        .and_then(|m| m.try_lock().ok())
        .is_some_and(|s| s.is_none())
}

/// In a child right after `fork` (a `pthread_atfork` handler): the parent's
/// spares are the parent's; the child's copies of them close.
extern "C" fn forget_in_child() {
    for m in &SLOTS {
        // A slot another thread of the parent held at the fork stays as it was:
        // its owner's pid tells the child it is not its own.
        if let Ok(mut s) = m.try_lock()
            && let Some(old) = s.take()
            && sys::socket_inode(old.fd) == Some(old.ino)
        {
            sys::close(old.fd);
        }
    }
}

/// Keeps `fd`, a spare of `domain` the stack sent, unless its slot is taken.
pub fn keep(domain: c_int, fd: c_int) {
    let Some(mut s) = slot(domain).and_then(|m| m.try_lock().ok()) else {
        sys::close(fd);
        return;
    };
    if s.is_some() {
        // Taken meanwhile (another thread), or a vfork parent's.
        sys::close(fd);
        return;
    }
    static AT_FORK: std::sync::Once = std::sync::Once::new();
    // SAFETY: registers a handler that only closes descriptors this module owns.
    AT_FORK.call_once(|| unsafe {
        libc::pthread_atfork(None, None, Some(forget_in_child));
    });
    let fd = sys::move_fd_up(fd, SPARE_FD_MIN);
    match sys::socket_inode(fd) {
        // Below 300 it would take a number the program's next file gets.
        Some(ino) if fd >= SPARE_FD_MIN => *s = Some(Spare { pid: me(), fd, ino }),
        _ => sys::close(fd),
    }
}
