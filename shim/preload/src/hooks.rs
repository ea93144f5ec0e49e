//! The descriptor calls watched only to keep the fd classification current
//! (`close`, `dup*`, `fcntl`, `socketpair`, `close_range`, `closefrom`), and
//! `ioctl` (`FIONREAD` of a datagram stand-in is the next datagram's size).

use crate::class::{self, Class};
use crate::dgram;
use crate::real::*;
use libc::{c_int, c_void};

#[unsafe(no_mangle)]
pub unsafe extern "C" fn ioctl(fd: c_int, req: libc::c_ulong, arg: *mut c_void) -> c_int {
    if req == libc::FIONREAD && !arg.is_null() && class::of(fd) == Class::Datagram {
        // SAFETY: FIONREAD's argument is an int.
        unsafe { *arg.cast::<c_int>() = dgram::next_size(fd) };
        return 0;
    }
    if let Some(r) = crate::ifaces::ioctl(fd, req as u32, arg) {
        return r;
    }
    // SAFETY: passing through (the variadic argument is one pointer-sized value).
    unsafe { real_ioctl(fd, req, arg) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    if class::known(fd) == Some(class::Class::Datagram) {
        crate::dgram::before_close(fd);
    }
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
