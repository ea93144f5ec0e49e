//! The container's interfaces where libc would show the host's: `getifaddrs`,
//! `if_nametoindex`, `if_indextoname` and `if_nameindex` (glibc answers them over
//! netlink or with interface ioctls on sockets of its own, which no preload
//! library sees), and the interface ioctls on any socket (see
//! `netcell_frontend::ifreq`, which the seccomp front end shares).
//!
//! Results are laid out as glibc lays them out so that glibc's `freeifaddrs` and
//! `if_freenameindex` free them: `getifaddrs` returns one `malloc` block whose
//! first bytes are the first `ifaddrs`; `if_nameindex` a `malloc`ed array whose
//! names are `malloc`ed one by one. The entries come in glibc's order: one
//! `AF_PACKET` entry per interface, then the IPv4 addresses, then the IPv6 ones.
//! The `AF_PACKET` entries' statistics (`ifa_data`) are zero: the stack keeps no
//! interface counters yet.

use crate::front::{Control, Local};
use crate::real::next;
use crate::{conn, fail, standin, sys};
use libc::{c_char, c_int, c_uint, c_void, ifaddrs};
use netcell_frontend::ifreq::{self, Interface};
use netcell_frontend::{Done, Fail};
use netcell_proto::iface::IfAddr;
use std::mem::size_of;

/// `struct rtnl_link_stats`: 24 `u32` counters.
const LINK_STATS: usize = 24 * 4;
/// Room for any address an entry points at (`sockaddr_in6` and `sockaddr_ll` fit).
const SA: usize = 32;
const ARPHRD_ETHER: u16 = 1;

type GetIfAddrs = unsafe extern "C" fn(*mut *mut ifaddrs) -> c_int;
type NameToIndex = unsafe extern "C" fn(*const c_char) -> c_uint;
type IndexToName = unsafe extern "C" fn(c_uint, *mut c_char) -> *mut c_char;
type NameIndexFn = unsafe extern "C" fn() -> *mut c_void;
next!(real_getifaddrs, "getifaddrs", GetIfAddrs);
next!(real_if_nametoindex, "if_nametoindex", NameToIndex);
next!(real_if_indextoname, "if_indextoname", IndexToName);
next!(real_if_nameindex, "if_nameindex", NameIndexFn);

/// The interface ioctls on a socket of the container; `None` for what is not one
/// (the caller passes it to libc).
pub fn ioctl(fd: c_int, req: u32, arg: *mut c_void) -> Option<c_int> {
    if !conn::active() || !ifreq::is_socket_ioctl(req) || sys::socket_inode(fd).is_none() {
        return None;
    }
    let is_standin = standin(fd).is_some();
    Some(
        match ifreq::ioctl(&Local, &mut Control, req, arg as u64, is_standin) {
            Ok(Done::Value(v)) => v as c_int,
            Ok(Done::Native) => return None,
            Err(Fail::Errno(e)) => fail(e),
            Err(Fail::Gone) => fail(libc::EINTR),
        },
    )
}

fn list() -> Result<Vec<Interface>, c_int> {
    ifreq::interfaces(&mut Control).map_err(|e| match e {
        Fail::Errno(e) => e,
        Fail::Gone => libc::EINTR,
    })
}

/// A C string of `name` in a `malloc` block of its own.
fn c_name(name: &str) -> *mut c_char {
    // SAFETY: malloc of len + 1 bytes, all written below before use.
    let p = unsafe { libc::malloc(name.len() + 1) }.cast::<u8>();
    if !p.is_null() {
        // SAFETY: p has name.len() + 1 bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(name.as_ptr(), p, name.len());
            *p.add(name.len()) = 0;
        }
    }
    p.cast()
}

/// One entry of `getifaddrs`, before it is laid out.
struct Entry<'a> {
    iface: &'a Interface,
    addr: [u8; SA],
    netmask: Option<[u8; SA]>,
    broad: Option<[u8; SA]>,
    stats: bool,
}

fn sa_in(a: [u8; 4]) -> [u8; SA] {
    let mut s = [0u8; SA];
    s[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
    s[4..8].copy_from_slice(&a);
    s
}

fn sa_in6(a: [u8; 16], scope: u32) -> [u8; SA] {
    let mut s = [0u8; SA];
    s[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
    s[8..24].copy_from_slice(&a);
    s[24..28].copy_from_slice(&scope.to_ne_bytes());
    s
}

fn sa_ll(i: &Interface, mac: [u8; 6]) -> [u8; SA] {
    // struct sockaddr_ll: family u16, protocol be16, ifindex i32, hatype u16,
    // pkttype u8, halen u8, addr [u8; 8].
    let mut s = [0u8; SA];
    s[..2].copy_from_slice(&(libc::AF_PACKET as u16).to_ne_bytes());
    s[4..8].copy_from_slice(&(i.head.index as i32).to_ne_bytes());
    s[8..10].copy_from_slice(&i.head.hwtype.to_ne_bytes());
    s[11] = 6;
    s[12..18].copy_from_slice(&mac);
    s
}

fn v6_mask(prefix: u8) -> [u8; 16] {
    let bits = match prefix {
        0 => 0u128,
        p => u128::MAX << (128 - p.min(128) as u32),
    };
    bits.to_be_bytes()
}

fn entries(list: &[Interface]) -> Vec<Entry<'_>> {
    let mut out = Vec::new();
    for i in list {
        let broad = if i.head.hwtype == ARPHRD_ETHER {
            [0xff; 6]
        } else {
            [0; 6]
        };
        out.push(Entry {
            iface: i,
            addr: sa_ll(i, i.head.mac),
            netmask: None,
            broad: Some(sa_ll(i, broad)),
            stats: true,
        });
    }
    for i in list {
        for a in &i.addrs {
            if let IfAddr::V4(b, p) = *a {
                let has_broadcast = i.head.flags & libc::IFF_BROADCAST as u32 != 0;
                out.push(Entry {
                    iface: i,
                    addr: sa_in(b),
                    netmask: Some(sa_in(ifreq::netmask(p))),
                    // Without a broadcast address (lo), glibc reports the address
                    // itself there, as netlink's IFA_ADDRESS is.
                    broad: Some(sa_in(if has_broadcast {
                        ifreq::broadcast(b, p)
                    } else {
                        b
                    })),
                    stats: false,
                });
            }
        }
    }
    for i in list {
        for a in &i.addrs {
            if let IfAddr::V6(b, p) = *a {
                let link_local = b[0] == 0xfe && b[1] & 0xc0 == 0x80;
                let scope = if link_local || b[0] == 0xff {
                    i.head.index
                } else {
                    0
                };
                out.push(Entry {
                    iface: i,
                    addr: sa_in6(b, scope),
                    netmask: Some(sa_in6(v6_mask(p), 0)),
                    broad: None,
                    stats: false,
                });
            }
        }
    }
    out
}

/// Lays `entries` out in one `malloc` block: the `ifaddrs` array, then per entry
/// its addresses, name and statistics.
fn lay_out(entries: &[Entry<'_>]) -> *mut ifaddrs {
    const HEAD: usize = size_of::<ifaddrs>();
    const EXTRA: usize = 3 * SA + 16 + LINK_STATS;
    let total = entries.len() * (HEAD + EXTRA);
    // SAFETY: a zeroed block of `total` bytes; every pointer below stays inside it.
    let base = unsafe { libc::calloc(1, total) }.cast::<u8>();
    if base.is_null() {
        return base.cast();
    }
    for (n, e) in entries.iter().enumerate() {
        // SAFETY: entry n's ifaddrs is at n * HEAD, its extra bytes after all the
        // heads at entries.len() * HEAD + n * EXTRA; both inside the block, and
        // ifaddrs' alignment (8) divides HEAD and the block's start.
        unsafe {
            let head = base.add(n * HEAD).cast::<ifaddrs>();
            let extra = base.add(entries.len() * HEAD + n * EXTRA);
            let put = |at: usize, sa: &[u8; SA]| {
                std::ptr::copy_nonoverlapping(sa.as_ptr(), extra.add(at), SA);
                extra.add(at).cast::<libc::sockaddr>()
            };
            (*head).ifa_next = if n + 1 < entries.len() {
                base.add((n + 1) * HEAD).cast()
            } else {
                std::ptr::null_mut()
            };
            (*head).ifa_addr = put(0, &e.addr);
            (*head).ifa_netmask = e.netmask.map_or(std::ptr::null_mut(), |m| put(SA, &m));
            (*head).ifa_ifu = e.broad.map_or(std::ptr::null_mut(), |b| put(2 * SA, &b));
            let name = extra.add(3 * SA);
            std::ptr::copy_nonoverlapping(e.iface.head.name.as_ptr(), name, 15);
            (*head).ifa_name = name.cast();
            (*head).ifa_flags = e.iface.head.flags as c_uint;
            (*head).ifa_data = if e.stats {
                extra.add(3 * SA + 16).cast()
            } else {
                std::ptr::null_mut()
            };
        }
    }
    base.cast()
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn getifaddrs(out: *mut *mut ifaddrs) -> c_int {
    if !conn::active() {
        return match real_getifaddrs() {
            // SAFETY: passing through.
            Some(f) => unsafe { f(out) },
            None => fail(libc::ENOSYS),
        };
    }
    let list = match list() {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let p = lay_out(&entries(&list));
    if p.is_null() && !list.is_empty() {
        return fail(libc::ENOMEM);
    }
    if out.is_null() {
        // SAFETY: our own block.
        unsafe { libc::free(p.cast()) };
        return fail(libc::EFAULT);
    }
    // SAFETY: the caller's out pointer.
    unsafe { *out = p };
    0
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn freeifaddrs(ifa: *mut ifaddrs) {
    // Both glibc's lists and ours are one malloc block.
    // SAFETY: a block getifaddrs returned.
    unsafe { libc::free(ifa.cast()) };
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn if_nametoindex(name: *const c_char) -> c_uint {
    if !conn::active() {
        // SAFETY: passing through.
        return real_if_nametoindex().map_or(0, |f| unsafe { f(name) });
    }
    if name.is_null() {
        return 0;
    }
    // SAFETY: a NUL-terminated string from the caller.
    let name = unsafe { std::ffi::CStr::from_ptr(name) }.to_bytes();
    match list() {
        Ok(l) => match l.iter().find(|i| i.head.name().as_bytes() == name) {
            Some(i) => i.head.index,
            None => {
                sys::set_errno(libc::ENODEV);
                0
            }
        },
        Err(e) => {
            sys::set_errno(e);
            0
        }
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn if_indextoname(index: c_uint, buf: *mut c_char) -> *mut c_char {
    if !conn::active() {
        // SAFETY: passing through.
        return real_if_indextoname().map_or(std::ptr::null_mut(), |f| unsafe { f(index, buf) });
    }
    let found = list().map(|l| l.into_iter().find(|i| i.head.index == index));
    match found {
        Ok(Some(i)) if !buf.is_null() => {
            // SAFETY: the caller's buffer holds IF_NAMESIZE (16) bytes; the name is
            // NUL-padded to 16.
            unsafe {
                std::ptr::copy_nonoverlapping(i.head.name.as_ptr(), buf.cast(), 16);
                *buf.add(15) = 0;
            }
            buf
        }
        Ok(_) => {
            sys::set_errno(libc::ENXIO);
            std::ptr::null_mut()
        }
        Err(e) => {
            sys::set_errno(e);
            std::ptr::null_mut()
        }
    }
}

/// `struct if_nameindex`.
#[repr(C)]
struct NameIndex {
    index: c_uint,
    name: *mut c_char,
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn if_nameindex() -> *mut c_void {
    if !conn::active() {
        // SAFETY: passing through.
        return real_if_nameindex().map_or(std::ptr::null_mut(), |f| unsafe { f() });
    }
    let l = match list() {
        Ok(l) => l,
        Err(e) => {
            sys::set_errno(e);
            return std::ptr::null_mut();
        }
    };
    // SAFETY: room for every interface and the terminating entry, zeroed (the
    // terminator is {0, NULL}).
    let arr = unsafe { libc::calloc(l.len() + 1, size_of::<NameIndex>()) }.cast::<NameIndex>();
    if arr.is_null() {
        sys::set_errno(libc::ENOBUFS);
        return arr.cast();
    }
    for (n, i) in l.iter().enumerate() {
        let name = c_name(i.head.name());
        if name.is_null() {
            // SAFETY: the entries filled so far and the array, as glibc frees them.
            unsafe {
                for k in 0..n {
                    libc::free((*arr.add(k)).name.cast());
                }
                libc::free(arr.cast());
            }
            sys::set_errno(libc::ENOBUFS);
            return std::ptr::null_mut();
        }
        // SAFETY: entry n is inside the array.
        unsafe {
            *arr.add(n) = NameIndex {
                index: i.head.index,
                name,
            }
        };
    }
    arr.cast()
}
