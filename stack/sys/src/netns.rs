//! Network namespaces and packet sockets: what the packet sockets' mirror (the
//! launcher's `mirror` module) is built from.

use crate::cvt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `unshare(2)` of the namespaces in `flags` (`CLONE_NEWUSER`, `CLONE_NEWNET`).
pub fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: no pointers; the flags are checked by the kernel.
    cvt(unsafe { libc::unshare(flags) }).map(drop)
}

/// `setns(2)`: joins the namespace `fd` names (`nstype`: `CLONE_NEWNET`, ...).
pub fn setns(fd: BorrowedFd<'_>, nstype: libc::c_int) -> io::Result<()> {
    // SAFETY: no pointers; `fd` is a valid descriptor.
    cvt(unsafe { libc::setns(fd.as_raw_fd(), nstype) }).map(drop)
}

/// A socket of `domain`, `ty` (close-on-exec added) and `protocol`.
pub fn socket(domain: libc::c_int, ty: libc::c_int, protocol: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: no pointers.
    let fd = cvt(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, protocol) })?;
    // SAFETY: `fd` was just opened and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Binds packet socket `fd` to interface `ifindex`, receiving `protocol` (network
/// byte order; 0: nothing).
pub fn bind_packet(fd: BorrowedFd<'_>, ifindex: i32, protocol: u16) -> io::Result<()> {
    // SAFETY: sockaddr_ll is a plain C struct; all-zero is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol;
    sll.sll_ifindex = ifindex;
    // SAFETY: `sll` is a valid sockaddr_ll of the size given.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    })
    .map(drop)
}

/// Makes this process's namespace descriptors and memory unreachable for other
/// processes of its user (`PR_SET_DUMPABLE` 0), and ends it with its parent
/// (`PR_SET_PDEATHSIG`).
pub fn guard_helper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    cvt(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) })?;
    // SAFETY: prctl with integer arguments.
    cvt(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) }).map(drop)
}

/// Sets whether the process is dumpable (`PR_SET_DUMPABLE`): only a dumpable
/// process may write its own `/proc/self/uid_map`.
pub fn set_dumpable(on: bool) -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    cvt(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, libc::c_ulong::from(on), 0, 0, 0) }).map(drop)
}

/// Ends this process (SIGKILL) when its parent ends; false when the parent has
/// ended already.
pub fn die_with_parent() -> io::Result<bool> {
    // SAFETY: prctl and getppid with integer arguments.
    let parent = unsafe { libc::getppid() };
    // SAFETY: as above.
    cvt(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) })?;
    // SAFETY: as above.
    Ok(unsafe { libc::getppid() } == parent)
}

/// The process's real uid and gid.
pub fn ids() -> (u32, u32) {
    // SAFETY: getuid and getgid cannot fail.
    unsafe { (libc::getuid(), libc::getgid()) }
}

/// Attaches a classic BPF program (`SO_ATTACH_FILTER`, or another option whose
/// value is a `struct sock_fprog`) to socket `fd`: `insns` are its `struct
/// sock_filter`s, 8 bytes each, as the program wrote them.
pub fn attach_cbpf(fd: BorrowedFd<'_>, level: i32, name: i32, insns: &[u8]) -> io::Result<()> {
    if !insns.len().is_multiple_of(8) || insns.len() / 8 > u16::MAX as usize {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let prog: Vec<libc::sock_filter> = insns
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `fprog` points to `prog`, valid for the call, with its length.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as u32,
        )
    })
    .map(drop)
}
