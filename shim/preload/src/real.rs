//! The real libc functions this library stands in front of, found with
//! `dlsym(RTLD_NEXT)` once and called for everything that is not a stand-in (or
//! the raw system call where libc has none).

use libc::{c_int, c_void, iovec, sockaddr, socklen_t};
use std::sync::atomic::{AtomicUsize, Ordering};

macro_rules! real {
    ($fn:ident, $sym:literal, fn($($a:ident: $t:ty),* $(,)?) -> $r:ty, $sys:expr $(,)?) => {
        pub(crate) unsafe fn $fn($($a: $t),*) -> $r {
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

/// `fn $name() -> Option<$ty>`: the next definition of library function `$sym`
/// (one with no system call behind it), if there is one.
macro_rules! next {
    ($name:ident, $sym:literal, $ty:ty) => {
        fn $name() -> Option<$ty> {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static P: AtomicUsize = AtomicUsize::new(0);
            let mut p = P.load(Ordering::Relaxed);
            if p == 0 {
                // SAFETY: dlsym with a NUL-terminated name.
                p = unsafe { libc::dlsym(libc::RTLD_NEXT, concat!($sym, "\0").as_ptr().cast()) }
                    as usize;
                P.store(p, Ordering::Relaxed);
            }
            // SAFETY: libc's function of this signature, if found.
            (p != 0).then(|| unsafe { std::mem::transmute::<usize, $ty>(p) })
        }
    };
}
pub(crate) use next;

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
real!(
    real_write,
    "write",
    fn(fd: c_int, b: *const c_void, n: usize) -> isize,
    libc::SYS_write
);
real!(
    real_writev,
    "writev",
    fn(fd: c_int, v: *const iovec, n: c_int) -> isize,
    libc::SYS_writev
);
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
real!(
    real_close_range,
    "close_range",
    fn(first: libc::c_uint, last: libc::c_uint, f: c_int) -> c_int,
    libc::SYS_close_range
);
