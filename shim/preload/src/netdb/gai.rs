//! `getaddrinfo` (with glibc's flags, families and service names): names and
//! services to socket addresses, in lists glibc's `freeaddrinfo` frees.

use super::*;

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
                let (has4, has6) = if flags & libc::AI_ADDRCONFIG != 0 {
                    container_families()
                } else {
                    (true, true)
                };
                // With no address but loopback, AI_ADDRCONFIG filters nothing.
                let (has4, has6) = if has4 || has6 {
                    (has4, has6)
                } else {
                    (true, true)
                };
                let v4 = want_v4 && has4;
                let v6 = want_v6 && has6;
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
    if host.is_some() && family == libc::AF_UNSPEC && container_families().1 {
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
