//! The `hostent` calls (`gethostbyname*`, `gethostbyaddr*`, their `_r`
//! variants) and `getnameinfo`.

use super::*;

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
