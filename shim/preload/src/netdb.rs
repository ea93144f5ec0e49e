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
use crate::resolve::{self, Failure};
use libc::{addrinfo, c_char, c_int, hostent, sockaddr, socklen_t};
use netcell_proto::{Request, info_flags};
use std::cell::RefCell;
use std::ffi::CStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::atomic::{AtomicUsize, Ordering};

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

macro_rules! next {
    ($name:ident, $sym:literal, $ty:ty) => {
        fn $name() -> Option<$ty> {
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

/// Which families the container has addresses of (for `AI_ADDRCONFIG` and order).
fn container_families() -> u32 {
    match conn::call(0, &Request::Info, None) {
        Ok(r) if r.errno == 0 => r.value,
        _ => 0,
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

#[unsafe(no_mangle)]
pub unsafe extern "C" fn getaddrinfo(
    node_p: *const c_char,
    service_p: *const c_char,
    hints: *const addrinfo,
    res: *mut *mut addrinfo,
) -> c_int {
    if !conn::active() {
        return match real_getaddrinfo() {
            // SAFETY: passing through.
            Some(f) => unsafe { f(node_p, service_p, hints, res) },
            None => libc::EAI_SYSTEM,
        };
    }
    if res.is_null() {
        return libc::EAI_SYSTEM;
    }
    // SAFETY: the caller's hints, if any.
    let (flags, family, socktype, protocol) = match unsafe { hints.as_ref() } {
        Some(h) => (h.ai_flags, h.ai_family, h.ai_socktype, h.ai_protocol),
        None => (
            libc::AI_V4MAPPED | libc::AI_ADDRCONFIG,
            libc::AF_UNSPEC,
            0,
            0,
        ),
    };
    const KNOWN: c_int = libc::AI_PASSIVE
        | libc::AI_CANONNAME
        | libc::AI_NUMERICHOST
        | libc::AI_V4MAPPED
        | libc::AI_ALL
        | libc::AI_ADDRCONFIG
        | libc::AI_NUMERICSERV
        | 0x40
        | 0x80;
    if flags & !KNOWN != 0 {
        return libc::EAI_BADFLAGS;
    }
    if ![libc::AF_UNSPEC, libc::AF_INET, libc::AF_INET6].contains(&family) {
        return libc::EAI_FAMILY;
    }
    let kinds: Vec<(c_int, c_int, &str)> = [
        (libc::SOCK_STREAM, libc::IPPROTO_TCP, "tcp"),
        (libc::SOCK_DGRAM, libc::IPPROTO_UDP, "udp"),
        (libc::SOCK_RAW, 0, ""),
    ]
    .into_iter()
    .filter(|(t, p, _)| {
        (socktype == 0 || socktype == *t)
            && (protocol == 0
                || protocol == *p
                || *t == libc::SOCK_RAW && socktype == libc::SOCK_RAW)
    })
    .map(|(t, p, n)| {
        (
            t,
            if socktype == libc::SOCK_RAW && protocol != 0 {
                protocol
            } else {
                p
            },
            n,
        )
    })
    .collect();
    if kinds.is_empty() {
        return libc::EAI_SOCKTYPE;
    }
    // SAFETY: the caller's strings.
    let (host, service) = unsafe { (cstr(node_p), cstr(service_p)) };
    if host.is_none() && service.is_none() {
        return libc::EAI_NONAME;
    }
    if host.is_none() && flags & libc::AI_CANONNAME != 0 {
        return libc::EAI_BADFLAGS;
    }
    let mut ports = Vec::new();
    for (t, p, pname) in &kinds {
        match service_port(service, pname, flags & libc::AI_NUMERICSERV != 0) {
            Ok(Some(port)) => ports.push((*t, *p, port)),
            Ok(None) => {}
            Err(e) => return e,
        }
    }
    if ports.is_empty() {
        return libc::EAI_SERVICE;
    }
    let want_v4 = family != libc::AF_INET6 || flags & libc::AI_V4MAPPED != 0;
    let want_v6 = family != libc::AF_INET;
    let (canon, mut addrs): (Option<String>, Vec<(IpAddr, u32)>) = match host {
        None => {
            let v = if flags & libc::AI_PASSIVE != 0 {
                [
                    IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                ]
            } else {
                [
                    IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(Ipv6Addr::LOCALHOST),
                ]
            };
            (None, v.into_iter().map(|a| (a, 0)).collect())
        }
        Some(h) => match resolve::numeric(h) {
            Some((a, scope)) => (Some(h.to_string()), vec![(a, scope)]),
            None if flags & libc::AI_NUMERICHOST != 0 => return libc::EAI_NONAME,
            None => {
                let fams = if flags & libc::AI_ADDRCONFIG != 0 {
                    container_families()
                } else {
                    info_flags::HAS_IPV4 | info_flags::HAS_IPV6
                };
                // With no address but loopback, AI_ADDRCONFIG filters nothing.
                let fams = if fams == 0 {
                    info_flags::HAS_IPV4 | info_flags::HAS_IPV6
                } else {
                    fams
                };
                let v4 = want_v4 && fams & info_flags::HAS_IPV4 != 0;
                let v6 = want_v6 && fams & info_flags::HAS_IPV6 != 0;
                match resolve::lookup(h, v4, v6) {
                    Ok((c, a)) => (Some(c), a.into_iter().map(|a| (a, 0)).collect()),
                    Err(Failure::NotFound) => return libc::EAI_NONAME,
                    Err(Failure::TryAgain) => return libc::EAI_AGAIN,
                    Err(Failure::NoRecovery) => return libc::EAI_FAIL,
                }
            }
        },
    };
    // Family filter, v4-mapping, and order (IPv6 first only where the container has it).
    let mapped = family == libc::AF_INET6 && flags & libc::AI_V4MAPPED != 0;
    let has_v6 = addrs.iter().any(|(a, _)| a.is_ipv6());
    addrs.retain(|(a, _)| match family {
        libc::AF_INET => a.is_ipv4(),
        libc::AF_INET6 => a.is_ipv6() || (mapped && (flags & libc::AI_ALL != 0 || !has_v6)),
        _ => true,
    });
    if host.is_some()
        && family == libc::AF_UNSPEC
        && container_families() & info_flags::HAS_IPV6 != 0
    {
        addrs.sort_by_key(|(a, _)| a.is_ipv4());
    }
    if addrs.is_empty() {
        return libc::EAI_NONAME;
    }
    let mut head: *mut addrinfo = std::ptr::null_mut();
    let mut tail: *mut addrinfo = std::ptr::null_mut();
    for (a, scope) in &addrs {
        let ip = match (a, mapped) {
            (IpAddr::V4(v4), true) => IpAddr::V6(v4.to_ipv6_mapped()),
            _ => *a,
        };
        for (t, p, port) in &ports {
            let sa = match ip {
                IpAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(v6, *port, 0, *scope)),
                IpAddr::V4(v4) => SocketAddr::new(IpAddr::V4(v4), *port),
            };
            // SAFETY: allocating a node.
            let n = unsafe { node(&sa, *t, *p, flags) };
            if n.is_null() {
                // SAFETY: our own list.
                unsafe { free_list(head) };
                return libc::EAI_MEMORY;
            }
            if head.is_null() {
                head = n;
            } else {
                // SAFETY: `tail` is the last node of our list.
                unsafe { (*tail).ai_next = n };
            }
            tail = n;
        }
    }
    if flags & libc::AI_CANONNAME != 0 {
        let c = std::ffi::CString::new(canon.unwrap_or_default()).unwrap_or_default();
        // SAFETY: `head` is non-null (addrs was not empty); strdup copies a C string.
        unsafe { (*head).ai_canonname = libc::strdup(c.as_ptr()) };
    }
    // SAFETY: the caller's result pointer.
    unsafe { *res = head };
    0
}

/// Writes a hostent for `name`/`addrs` into the caller's buffer (`_r` layout:
/// pointer arrays first, then the addresses, then the strings).
unsafe fn fill_hostent(
    ret: *mut hostent,
    buf: *mut c_char,
    buflen: usize,
    name: &str,
    aliases: &[String],
    af: c_int,
    addrs: &[IpAddr],
) -> Result<(), c_int> {
    let alen = if af == libc::AF_INET { 4 } else { 16 };
    let ptr = std::mem::size_of::<*mut c_char>();
    let align = (buf as usize).next_multiple_of(ptr) - buf as usize;
    let need = align
        + ptr * (aliases.len() + 1 + addrs.len() + 1)
        + alen * addrs.len()
        + name.len()
        + 1
        + aliases.iter().map(|a| a.len() + 1).sum::<usize>();
    if buf.is_null() || need > buflen {
        return Err(libc::ERANGE);
    }
    // SAFETY: every write below stays within the `need <= buflen` bytes checked above.
    unsafe {
        let base = buf.add(align);
        let alias_ptrs = base.cast::<*mut c_char>();
        let addr_ptrs = alias_ptrs.add(aliases.len() + 1);
        let mut cur = addr_ptrs.add(addrs.len() + 1).cast::<c_char>();
        for (i, a) in addrs.iter().enumerate() {
            let bytes: Vec<u8> = match a {
                IpAddr::V4(v) => v.octets().to_vec(),
                IpAddr::V6(v) => v.octets().to_vec(),
            };
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), cur.cast::<u8>(), alen);
            *addr_ptrs.add(i) = cur;
            cur = cur.add(alen);
        }
        *addr_ptrs.add(addrs.len()) = std::ptr::null_mut();
        let mut put = |s: &str| {
            std::ptr::copy_nonoverlapping(s.as_ptr(), cur.cast::<u8>(), s.len());
            *cur.add(s.len()) = 0;
            let p = cur;
            cur = cur.add(s.len() + 1);
            p
        };
        (*ret).h_name = put(name);
        for (i, a) in aliases.iter().enumerate() {
            *alias_ptrs.add(i) = put(a);
        }
        *alias_ptrs.add(aliases.len()) = std::ptr::null_mut();
        (*ret).h_aliases = alias_ptrs;
        (*ret).h_addrtype = af;
        (*ret).h_length = alen as c_int;
        (*ret).h_addr_list = addr_ptrs;
    }
    Ok(())
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn gethostbyname2_r(
    name: *const c_char,
    af: c_int,
    ret: *mut hostent,
    buf: *mut c_char,
    buflen: usize,
    result: *mut *mut hostent,
    h_errnop: *mut c_int,
) -> c_int {
    if !conn::active() {
        return match real_gethostbyname2_r() {
            // SAFETY: passing through.
            Some(f) => unsafe { f(name, af, ret, buf, buflen, result, h_errnop) },
            None => libc::ENOSYS,
        };
    }
    let set = |h: c_int| {
        if !h_errnop.is_null() {
            // SAFETY: the caller's h_errno slot.
            unsafe { *h_errnop = h };
        }
        set_h_errno(h);
    };
    if !result.is_null() {
        // SAFETY: the caller's result slot.
        unsafe { *result = std::ptr::null_mut() };
    }
    if af != libc::AF_INET && af != libc::AF_INET6 {
        set(NO_RECOVERY);
        return libc::EAFNOSUPPORT;
    }
    // SAFETY: the caller's string.
    let Some(n) = (unsafe { cstr(name) }) else {
        set(HOST_NOT_FOUND);
        return libc::ENOENT;
    };
    let found = match resolve::numeric(n) {
        Some((a, _)) if a.is_ipv4() == (af == libc::AF_INET) => {
            Ok((n.to_string(), Vec::new(), vec![a]))
        }
        Some(_) => Err(Failure::NotFound),
        None => match resolve::hosts_by_name(n)
            .filter(|(_, _, a)| a.iter().any(|x| x.is_ipv4() == (af == libc::AF_INET)))
        {
            Some((c, aliases, a)) => Ok((c, aliases, a)),
            None => resolve::lookup(n, af == libc::AF_INET, af == libc::AF_INET6).map(|(c, a)| {
                let aliases = if c.eq_ignore_ascii_case(n) {
                    Vec::new()
                } else {
                    vec![n.to_string()]
                };
                (c, aliases, a)
            }),
        },
    };
    match found {
        Ok((canon, aliases, addrs)) => {
            let addrs: Vec<IpAddr> = addrs
                .into_iter()
                .filter(|a| a.is_ipv4() == (af == libc::AF_INET))
                .collect();
            // SAFETY: the caller's hostent and buffer.
            match unsafe { fill_hostent(ret, buf, buflen, &canon, &aliases, af, &addrs) } {
                Ok(()) => {
                    // SAFETY: the caller's result slot.
                    unsafe { *result = ret };
                    set(0);
                    0
                }
                Err(e) => {
                    set(NO_RECOVERY);
                    e
                }
            }
        }
        Err(f) => {
            set(h_errno_of(f));
            if f == Failure::TryAgain {
                libc::EAGAIN
            } else {
                0
            }
        }
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn gethostbyname_r(
    name: *const c_char,
    ret: *mut hostent,
    buf: *mut c_char,
    buflen: usize,
    result: *mut *mut hostent,
    h_errnop: *mut c_int,
) -> c_int {
    // SAFETY: same contract.
    unsafe { gethostbyname2_r(name, libc::AF_INET, ret, buf, buflen, result, h_errnop) }
}

thread_local! {
    /// The storage of the non-reentrant variants (per thread, better than glibc's
    /// one static buffer).
    static STATIC_HOSTENT: RefCell<(hostent, Vec<c_char>)> = RefCell::new((
        // SAFETY: hostent is plain data.
        unsafe { std::mem::zeroed() },
        vec![0; 8192],
    ));
}

fn static_result(
    f: impl FnOnce(*mut hostent, *mut c_char, usize, *mut *mut hostent, *mut c_int) -> c_int,
) -> *mut hostent {
    STATIC_HOSTENT.with(|cell| {
        let mut g = cell.borrow_mut();
        let (h, buf) = &mut *g;
        let mut result: *mut hostent = std::ptr::null_mut();
        let mut herr = 0;
        f(h, buf.as_mut_ptr(), buf.len(), &mut result, &mut herr);
        result
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn gethostbyname2(name: *const c_char, af: c_int) -> *mut hostent {
    // SAFETY: filling our per-thread storage.
    static_result(|h, b, l, r, e| unsafe { gethostbyname2_r(name, af, h, b, l, r, e) })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn gethostbyname(name: *const c_char) -> *mut hostent {
    // SAFETY: same contract.
    unsafe { gethostbyname2(name, libc::AF_INET) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn gethostbyaddr_r(
    addr: *const libc::c_void,
    len: socklen_t,
    af: c_int,
    ret: *mut hostent,
    buf: *mut c_char,
    buflen: usize,
    result: *mut *mut hostent,
    h_errnop: *mut c_int,
) -> c_int {
    if !conn::active() {
        return match real_gethostbyaddr_r() {
            // SAFETY: passing through.
            Some(f) => unsafe { f(addr, len, af, ret, buf, buflen, result, h_errnop) },
            None => libc::ENOSYS,
        };
    }
    let set = |h: c_int| {
        if !h_errnop.is_null() {
            // SAFETY: the caller's slot.
            unsafe { *h_errnop = h };
        }
        set_h_errno(h);
    };
    if !result.is_null() {
        // SAFETY: the caller's result slot.
        unsafe { *result = std::ptr::null_mut() };
    }
    let ip = match (af, len) {
        // SAFETY: the caller passed `len` bytes of address.
        (libc::AF_INET, 4) => IpAddr::V4(Ipv4Addr::from(unsafe { *addr.cast::<[u8; 4]>() })),
        // SAFETY: as above.
        (libc::AF_INET6, 16) => IpAddr::V6(Ipv6Addr::from(unsafe { *addr.cast::<[u8; 16]>() })),
        _ => {
            set(NO_RECOVERY);
            return libc::EINVAL;
        }
    };
    match resolve::reverse(&ip) {
        // SAFETY: the caller's hostent and buffer.
        Ok(name) => match unsafe { fill_hostent(ret, buf, buflen, &name, &[], af, &[ip]) } {
            Ok(()) => {
                // SAFETY: the caller's result slot.
                unsafe { *result = ret };
                set(0);
                0
            }
            Err(e) => e,
        },
        Err(f) => {
            set(h_errno_of(f));
            0
        }
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn gethostbyaddr(
    addr: *const libc::c_void,
    len: socklen_t,
    af: c_int,
) -> *mut hostent {
    // SAFETY: filling our per-thread storage.
    static_result(|h, b, l, r, e| unsafe { gethostbyaddr_r(addr, len, af, h, b, l, r, e) })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn getnameinfo(
    sa: *const sockaddr,
    salen: socklen_t,
    host: *mut c_char,
    hostlen: socklen_t,
    serv: *mut c_char,
    servlen: socklen_t,
    flags: c_int,
) -> c_int {
    let Some(real) = real_getnameinfo() else {
        return libc::EAI_SYSTEM;
    };
    let want_name =
        conn::active() && !host.is_null() && hostlen > 0 && flags & libc::NI_NUMERICHOST == 0;
    // The numeric answer (and the service, from the services file) from libc.
    let numeric_flags = if want_name {
        (flags | libc::NI_NUMERICHOST) & !libc::NI_NAMEREQD
    } else {
        flags
    };
    if !want_name {
        // SAFETY: passing through.
        return unsafe { real(sa, salen, host, hostlen, serv, servlen, flags) };
    }
    // SAFETY: passing through with NI_NUMERICHOST: no network.
    let r = unsafe { real(sa, salen, host, hostlen, serv, servlen, numeric_flags) };
    if r != 0 {
        return r;
    }
    // SAFETY: the caller's sockaddr, of a family libc accepted above.
    let ip = unsafe {
        match (*sa).sa_family as c_int {
            libc::AF_INET => IpAddr::V4(Ipv4Addr::from(u32::from_be(
                (*sa.cast::<libc::sockaddr_in>()).sin_addr.s_addr,
            ))),
            _ => IpAddr::V6(Ipv6Addr::from(
                (*sa.cast::<libc::sockaddr_in6>()).sin6_addr.s6_addr,
            )),
        }
    };
    match resolve::reverse(&ip) {
        Ok(mut name) => {
            if flags & libc::NI_NOFQDN != 0
                && let Some((first, _)) = name.split_once('.')
            {
                name = first.to_string();
            }
            if name.len() + 1 > hostlen as usize {
                return libc::EAI_OVERFLOW;
            }
            // SAFETY: the caller's buffer of `hostlen` bytes.
            unsafe {
                std::ptr::copy_nonoverlapping(name.as_ptr(), host.cast::<u8>(), name.len());
                *host.add(name.len()) = 0;
            }
            0
        }
        Err(_) if flags & libc::NI_NAMEREQD != 0 => libc::EAI_NONAME,
        Err(_) => 0,
    }
}

// ---- The raw resolver interface of <resolv.h> ----

const NO_DATA: c_int = 4;

/// Copies an answer into the caller's buffer; returns its full length (as
/// `res_query` does, which may exceed `anslen`) or -1 with `h_errno` set.
unsafe fn answer_out(
    r: Result<(Vec<u8>, crate::dns::Response), Failure>,
    answer: *mut u8,
    anslen: c_int,
) -> c_int {
    match r {
        Ok((raw, resp)) => {
            if resp.rcode == crate::dns::RCODE_NXDOMAIN {
                set_h_errno(HOST_NOT_FOUND);
                return -1;
            }
            let an = u16::from_be_bytes([raw[6], raw[7]]);
            if an == 0 {
                set_h_errno(NO_DATA);
                return -1;
            }
            if !answer.is_null() && anslen > 0 {
                let n = raw.len().min(anslen as usize);
                // SAFETY: the caller's buffer of `anslen` bytes.
                unsafe { std::ptr::copy_nonoverlapping(raw.as_ptr(), answer, n) };
            }
            raw.len() as c_int
        }
        Err(f) => {
            set_h_errno(h_errno_of(f));
            -1
        }
    }
}

fn query(name: &str, class: c_int, ty: c_int) -> Result<(Vec<u8>, crate::dns::Response), Failure> {
    let q = crate::dns::query_class(resolve::random_id(), name, class as u16, ty as u16)
        .map_err(|_| Failure::NoRecovery)?;
    resolve::ask_raw(&resolve::config(), &q)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn res_query(
    dname: *const c_char,
    class: c_int,
    ty: c_int,
    answer: *mut u8,
    anslen: c_int,
) -> c_int {
    // SAFETY: the caller's string.
    let Some(name) = (unsafe { cstr(dname) }) else {
        set_h_errno(NO_RECOVERY);
        return -1;
    };
    // SAFETY: the caller's buffer.
    unsafe { answer_out(query(name, class, ty), answer, anslen) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn res_search(
    dname: *const c_char,
    class: c_int,
    ty: c_int,
    answer: *mut u8,
    anslen: c_int,
) -> c_int {
    // SAFETY: the caller's string.
    let Some(name) = (unsafe { cstr(dname) }) else {
        set_h_errno(NO_RECOVERY);
        return -1;
    };
    let c = resolve::config();
    let mut last = Err(Failure::NotFound);
    for cand in resolve::candidates(&c, name) {
        let r = query(&cand, class, ty);
        if let Ok((_, resp)) = &r {
            let an = resp.answers.len();
            if resp.rcode == crate::dns::RCODE_NOERROR && an > 0 {
                // SAFETY: the caller's buffer.
                return unsafe { answer_out(r, answer, anslen) };
            }
        }
        last = r;
    }
    // SAFETY: the caller's buffer.
    unsafe { answer_out(last, answer, anslen) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn res_send(
    msg: *const u8,
    msglen: c_int,
    answer: *mut u8,
    anslen: c_int,
) -> c_int {
    if msg.is_null() || msglen < 12 {
        set_h_errno(NO_RECOVERY);
        return -1;
    }
    // SAFETY: the caller's message of `msglen` bytes.
    let q = unsafe { std::slice::from_raw_parts(msg, msglen as usize) };
    match resolve::ask_raw(&resolve::config(), q) {
        Ok((raw, _)) => {
            if !answer.is_null() && anslen > 0 {
                // SAFETY: the caller's buffer.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        raw.as_ptr(),
                        answer,
                        raw.len().min(anslen as usize),
                    )
                };
            }
            raw.len() as c_int
        }
        Err(f) => {
            set_h_errno(h_errno_of(f));
            -1
        }
    }
}

// glibc also exports these names (older binaries link against them), and the
// reentrant `res_n*` forms whose state argument the shim's resolver does not need.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __res_query(
    d: *const c_char,
    c: c_int,
    t: c_int,
    a: *mut u8,
    l: c_int,
) -> c_int {
    // SAFETY: same contract.
    unsafe { res_query(d, c, t, a, l) }
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __res_search(
    d: *const c_char,
    c: c_int,
    t: c_int,
    a: *mut u8,
    l: c_int,
) -> c_int {
    // SAFETY: same contract.
    unsafe { res_search(d, c, t, a, l) }
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __res_send(m: *const u8, ml: c_int, a: *mut u8, l: c_int) -> c_int {
    // SAFETY: same contract.
    unsafe { res_send(m, ml, a, l) }
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn res_nquery(
    _st: *mut libc::c_void,
    d: *const c_char,
    c: c_int,
    t: c_int,
    a: *mut u8,
    l: c_int,
) -> c_int {
    // SAFETY: same contract.
    unsafe { res_query(d, c, t, a, l) }
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn res_nsearch(
    _st: *mut libc::c_void,
    d: *const c_char,
    c: c_int,
    t: c_int,
    a: *mut u8,
    l: c_int,
) -> c_int {
    // SAFETY: same contract.
    unsafe { res_search(d, c, t, a, l) }
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn res_nsend(
    _st: *mut libc::c_void,
    m: *const u8,
    ml: c_int,
    a: *mut u8,
    l: c_int,
) -> c_int {
    // SAFETY: same contract.
    unsafe { res_send(m, ml, a, l) }
}
