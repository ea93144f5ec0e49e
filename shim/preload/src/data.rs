//! The data calls that need more than the kernel: a send with a destination or
//! ancillary data on a datagram stand-in (a `SendTo` request), and the receives of
//! a datagram stand-in (the datagram natively, its origin from the stack), with the
//! `_FORTIFY_SOURCE` variants glibc calls.

use crate::class::{self, Class};
use crate::real::*;
use crate::{dgram, fail, standin, sys};
use libc::{c_int, c_void, iovec, sockaddr, socklen_t};

/// The errors of a read on a stream stand-in that is not connected, as Linux's
/// TCP gives them: an unconnected `AF_UNIX` stream refuses a read with `EINVAL`
/// (`ENOTCONN` for TCP); a listener's stand-in holds accept records, which a read
/// must not take. Only the error path (and a listener) pays.
fn stream_read(fd: c_int, flags: c_int, native: impl FnOnce() -> isize) -> isize {
    let class = class::of(fd);
    if class == Class::Listener {
        return fail(libc::ENOTCONN) as isize;
    }
    let r = native();
    if r < 0 && class == Class::Stream && flags & libc::MSG_OOB == 0 && sys::errno() == libc::EINVAL
    {
        sys::set_errno(libc::ENOTCONN);
    }
    r
}

/// The errors of a send on a stream stand-in that is not connected: TCP says
/// `EPIPE` and raises `SIGPIPE` (unless `MSG_NOSIGNAL`) where the unconnected
/// `AF_UNIX` stream says `ENOTCONN`.
fn stream_send(fd: c_int, flags: c_int, r: isize) -> isize {
    if r < 0 && sys::errno() == libc::ENOTCONN && class::of(fd) == Class::Stream {
        if flags & libc::MSG_NOSIGNAL == 0 {
            // SAFETY: raising a signal in the calling thread, as the kernel does.
            unsafe { libc::raise(libc::SIGPIPE) };
        }
        sys::set_errno(libc::EPIPE);
    }
    r
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, len: usize) -> isize {
    // SAFETY: passing the caller's arguments through.
    let r = unsafe { real_write(fd, buf, len) };
    stream_send(fd, 0, r)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn writev(fd: c_int, v: *const iovec, n: c_int) -> isize {
    // SAFETY: passing the caller's arguments through.
    let r = unsafe { real_writev(fd, v, n) };
    stream_send(fd, 0, r)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn send(fd: c_int, buf: *const c_void, len: usize, flags: c_int) -> isize {
    // SAFETY: same contract, no address.
    unsafe { sendto(fd, buf, len, flags, std::ptr::null(), 0) }
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
    let r = unsafe { real_sendto(fd, buf, len, flags, addr, alen) };
    stream_send(fd, flags, r)
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
        return stream_send(fd, flags, unsafe { real_sendmsg(fd, &m, flags) });
    }
    // SAFETY: passing through.
    stream_send(fd, flags, unsafe { real_sendmsg(fd, msg, flags) })
}

// ---- Datagram receive paths, and the fd lifecycle the classification follows ----

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
        None => stream_read(fd, flags, || unsafe {
            real_recvfrom(fd, buf, len, flags, addr, alen)
        }),
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
        return stream_read(fd, flags, || unsafe { real_recvmsg(fd, msg, flags) });
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
        None => stream_read(fd, 0, || unsafe { real_read(fd, buf, len) }),
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn readv(fd: c_int, v: *const iovec, n: c_int) -> isize {
    if v.is_null() || n < 0 || class::of(fd) != Class::Datagram {
        // SAFETY: passing through.
        return stream_read(fd, 0, || unsafe { real_readv(fd, v, n) });
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
