//! The resolver entry points of `<netdb.h>`, answered by [`crate::resolve`] so that
//! a program's name lookups go through its container's stack (see there for why).
//!
//! Results are laid out as glibc lays them out, so glibc's `freeaddrinfo` and
//! `gai_strerror` work on them: each `addrinfo` is one `malloc` block with its
//! sockaddr inside, and `ai_canonname` a separate `malloc`. `hostent` results fill
//! the caller's buffer (`_r` variants) or per-thread storage.
//!
//! Without `NETCELL_CONTROL` (not under netcell) every call goes to libc.

use crate::conn;
use crate::real::next;
use crate::resolve::{self, Failure};
use libc::{addrinfo, c_char, c_int, hostent, sockaddr, socklen_t};
use std::cell::RefCell;
use std::ffi::CStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

mod gai;
mod hosts;
mod res;

const HOST_NOT_FOUND: c_int = 1;
const TRY_AGAIN: c_int = 2;
const NO_RECOVERY: c_int = 3;

unsafe extern "C" {
    fn __h_errno_location() -> *mut c_int;
}

fn set_h_errno(v: c_int) {
    // SAFETY: glibc's per-thread h_errno slot.
    unsafe { *__h_errno_location() = v }
}

fn h_errno_of(f: Failure) -> c_int {
    match f {
        Failure::NotFound => HOST_NOT_FOUND,
        Failure::TryAgain => TRY_AGAIN,
        Failure::NoRecovery => NO_RECOVERY,
    }
}

type GaiFn = unsafe extern "C" fn(
    *const c_char,
    *const c_char,
    *const addrinfo,
    *mut *mut addrinfo,
) -> c_int;
type GniFn = unsafe extern "C" fn(
    *const sockaddr,
    socklen_t,
    *mut c_char,
    socklen_t,
    *mut c_char,
    socklen_t,
    c_int,
) -> c_int;
type Gh2rFn = unsafe extern "C" fn(
    *const c_char,
    c_int,
    *mut hostent,
    *mut c_char,
    usize,
    *mut *mut hostent,
    *mut c_int,
) -> c_int;
type GharFn = unsafe extern "C" fn(
    *const libc::c_void,
    socklen_t,
    c_int,
    *mut hostent,
    *mut c_char,
    usize,
    *mut *mut hostent,
    *mut c_int,
) -> c_int;
next!(real_getaddrinfo, "getaddrinfo", GaiFn);
next!(real_getnameinfo, "getnameinfo", GniFn);
next!(real_gethostbyname2_r, "gethostbyname2_r", Gh2rFn);
next!(real_gethostbyaddr_r, "gethostbyaddr_r", GharFn);

/// Whether the container has an IPv4 address besides loopback, and a global IPv6
/// one (for `AI_ADDRCONFIG` and the order of results); neither if that is unknown.
fn container_families() -> (bool, bool) {
    match netcell_frontend::ifreq::interfaces(&mut crate::front::Control) {
        Ok(list) => netcell_frontend::ifreq::families(&list),
        Err(_) => (false, false),
    }
}

unsafe fn cstr<'a>(p: *const c_char) -> Option<&'a str> {
    if p.is_null() {
        return None;
    }
    // SAFETY: a NUL-terminated string from the caller.
    unsafe { CStr::from_ptr(p) }.to_str().ok()
}

/// The ports of a service for one protocol: numeric, or from the services database
/// (a file; no network).
fn service_port(
    service: Option<&str>,
    proto: &str,
    numeric_only: bool,
) -> Result<Option<u16>, c_int> {
    let Some(s) = service else { return Ok(Some(0)) };
    if let Ok(p) = s.parse::<u16>() {
        return Ok(Some(p));
    }
    if numeric_only || s.is_empty() {
        return Err(libc::EAI_NONAME);
    }
    if proto.is_empty() {
        return Ok(None); // raw sockets have no named services
    }
    let (Ok(cs), Ok(cp)) = (std::ffi::CString::new(s), std::ffi::CString::new(proto)) else {
        return Ok(None);
    };
    // SAFETY: getservbyname reads /etc/services; valid C strings.
    let e = unsafe { libc::getservbyname(cs.as_ptr(), cp.as_ptr()) };
    if e.is_null() {
        Ok(None)
    } else {
        // SAFETY: a valid servent; s_port is in network order.
        Ok(Some(u16::from_be(unsafe { (*e).s_port } as u16)))
    }
}

/// Builds one glibc-compatible `addrinfo` node.
unsafe fn node(addr: &SocketAddr, socktype: c_int, protocol: c_int, flags: c_int) -> *mut addrinfo {
    let (ss, len) = resolve::sockaddr(addr);
    let size = std::mem::size_of::<addrinfo>() + std::mem::size_of::<libc::sockaddr_in6>();
    // SAFETY: a fresh allocation of `size` bytes, zeroed.
    let p = unsafe { libc::calloc(1, size) }.cast::<addrinfo>();
    if p.is_null() {
        return p;
    }
    // SAFETY: `p` is a valid, zeroed block large enough for addrinfo + sockaddr_in6.
    unsafe {
        let sa = p.cast::<u8>().add(std::mem::size_of::<addrinfo>());
        std::ptr::copy_nonoverlapping(
            (&ss as *const libc::sockaddr_storage).cast::<u8>(),
            sa,
            len as usize,
        );
        (*p).ai_flags = flags;
        (*p).ai_family = if addr.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        };
        (*p).ai_socktype = socktype;
        (*p).ai_protocol = protocol;
        (*p).ai_addrlen = len;
        (*p).ai_addr = sa.cast();
    }
    p
}

unsafe fn free_list(mut p: *mut addrinfo) {
    while !p.is_null() {
        // SAFETY: nodes built by `node`.
        unsafe {
            let next = (*p).ai_next;
            libc::free((*p).ai_canonname.cast());
            libc::free(p.cast());
            p = next;
        }
    }
}
