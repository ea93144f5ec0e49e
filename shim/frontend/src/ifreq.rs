//! The container's interfaces as programs look at them: the interface ioctls
//! (`SIOCGIFCONF`, `SIOCGIFFLAGS`, ...) and the list behind `getifaddrs` and
//! `if_nameindex`.
//!
//! The interface ioctls work on any socket, `AF_UNIX` included, and describe the
//! network namespace the socket lives in — the host's, for netcell's stand-ins and
//! for the program's own unix sockets. So a front end sends every `SIOC*` request
//! on a socket here: the read-only ones are answered from the container's
//! interfaces (one [`Request::Interfaces`] walk), the ones that change interfaces,
//! routes or ARP entries fail with `EPERM`, device-private ones with `EOPNOTSUPP`,
//! wireless-extension requests (`0x8B00`–`0x8BFF`) find no device (`ENODEV`).
//! Requests about the socket itself (`SIOCATMARK`, `SIOCGSTAMP`, the
//! protocol-private range) are the kernel's for a socket that is not a stand-in.

use crate::{Done, Fail, Memory, Service};
use netcell_proto::Request;
use netcell_proto::iface::{self, IfAddr, Iface};

const SIOCATMARK: u32 = 0x8905;
const SIOCGSTAMP: u32 = 0x8906;
const SIOCGSTAMPNS: u32 = 0x8907;
const SIOCGIFNAME: u32 = 0x8910;
const SIOCGIFCONF: u32 = 0x8912;
const SIOCGIFFLAGS: u32 = 0x8913;
const SIOCSIFFLAGS: u32 = 0x8914;
const SIOCGIFADDR: u32 = 0x8915;
const SIOCGIFDSTADDR: u32 = 0x8917;
const SIOCGIFBRDADDR: u32 = 0x8919;
const SIOCGIFNETMASK: u32 = 0x891b;
const SIOCGIFMETRIC: u32 = 0x891d;
const SIOCGIFMTU: u32 = 0x8921;
const SIOCGIFHWADDR: u32 = 0x8927;
const SIOCGIFINDEX: u32 = 0x8933;
const SIOCGIFPFLAGS: u32 = 0x8935;
const SIOCGIFTXQLEN: u32 = 0x8942;
const SIOCETHTOOL: u32 = 0x8946;
const SIOCPROTOPRIVATE: u32 = 0x89e0;
const SIOCDEVPRIVATE: u32 = 0x89f0;
const WIRELESS_FIRST: u32 = 0x8b00;
const WIRELESS_LAST: u32 = 0x8bff;
const SOCKIOS_FIRST: u32 = 0x8900;
const SOCKIOS_LAST: u32 = 0x89ff;

/// `struct ifreq` is 40 bytes: a 16-byte name and a 24-byte union.
const IFREQ: usize = 40;
const IFNAMSIZ: usize = 16;

/// Requests that read an interface by name.
const GETTERS: [u32; 11] = [
    SIOCGIFFLAGS,
    SIOCGIFADDR,
    SIOCGIFDSTADDR,
    SIOCGIFBRDADDR,
    SIOCGIFNETMASK,
    SIOCGIFMETRIC,
    SIOCGIFMTU,
    SIOCGIFHWADDR,
    SIOCGIFINDEX,
    SIOCGIFTXQLEN,
    SIOCGIFPFLAGS,
];

/// One interface of the container with its addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// Index, flags, MTU, hardware address, name.
    pub head: Iface,
    /// Its addresses, IPv4 first.
    pub addrs: Vec<IfAddr>,
}

impl Interface {
    /// Its first IPv4 address and prefix length.
    pub fn ipv4(&self) -> Option<([u8; 4], u8)> {
        self.addrs.iter().find_map(|a| match *a {
            IfAddr::V4(b, p) => Some((b, p)),
            IfAddr::V6(..) => None,
        })
    }
}

/// The container's interfaces, in index order.
pub fn interfaces(svc: &mut impl Service) -> Result<Vec<Interface>, Fail> {
    let mut out: Vec<Interface> = Vec::new();
    let mut from = 1;
    // Each reply holds at least one interface, so this ends; the bound is for a
    // service that says otherwise.
    for _ in 0..4096 {
        let next = svc.ask(0, &Request::Interfaces { from }, |r| {
            if r.errno != 0 {
                return Err(Fail::Errno(r.errno));
            }
            let mut rest = r.data;
            while let Some((head, addrs, more)) = iface::decode(rest) {
                out.push(Interface {
                    head,
                    addrs: iface::addrs(addrs).collect(),
                });
                rest = more;
            }
            Ok(r.value)
        })??;
        if next <= from {
            break;
        }
        from = next;
    }
    Ok(out)
}

/// Whether the container has an IPv4 address besides loopback, and a global
/// IPv6 one (what `AI_ADDRCONFIG` asks).
pub fn families(list: &[Interface]) -> (bool, bool) {
    let mut v4 = false;
    let mut v6 = false;
    for a in list.iter().flat_map(|i| &i.addrs) {
        match *a {
            IfAddr::V4(b, _) => v4 |= b[0] != 127,
            IfAddr::V6(b, _) => {
                let loopback = b == std::net::Ipv6Addr::LOCALHOST.octets();
                let link_local = b[0] == 0xfe && b[1] & 0xc0 == 0x80;
                v6 |= !loopback && !link_local;
            }
        }
    }
    (v4, v6)
}

/// Whether `req` is a socket ioctl this module answers (the `SIOC*` range and
/// the wireless extensions); others are the front end's business.
pub fn is_socket_ioctl(req: u32) -> bool {
    (SOCKIOS_FIRST..=SOCKIOS_LAST).contains(&req) || (WIRELESS_FIRST..=WIRELESS_LAST).contains(&req)
}

/// Serves socket ioctl `req` (see [`is_socket_ioctl`]) with argument `arg` on a
/// socket that is a stand-in (`standin`) or the program's own.
pub fn ioctl(
    mem: &impl Memory,
    svc: &mut impl Service,
    req: u32,
    arg: u64,
    standin: bool,
) -> Result<Done, Fail> {
    match req {
        WIRELESS_FIRST..=WIRELESS_LAST => Err(Fail::Errno(libc::ENODEV)),
        // About the socket itself: the kernel answers for a socket of the
        // program's own, and for a stand-in whether its out-of-band byte is next
        // (urgent data arrives as the stand-in's own, see the stack's
        // `socket::tcp::urgent`).
        SIOCATMARK => Ok(Done::Native),
        SIOCGSTAMP | SIOCGSTAMPNS | SIOCPROTOPRIVATE..=0x89ef if !standin => Ok(Done::Native),
        // No packet timestamps are kept.
        SIOCGSTAMP | SIOCGSTAMPNS => Err(Fail::Errno(libc::ENOENT)),
        SIOCGIFCONF => ifconf(mem, svc, arg),
        SIOCGIFNAME => {
            let mut r = [0u8; IFREQ];
            mem.read(arg, &mut r)?;
            let index = u32::from_ne_bytes([r[16], r[17], r[18], r[19]]);
            let list = interfaces(svc)?;
            let i = list
                .iter()
                .find(|i| i.head.index == index)
                .ok_or(Fail::Errno(libc::ENODEV))?;
            mem.write(arg, &i.head.name)?;
            Ok(Done::Value(0))
        }
        r if GETTERS.contains(&r) => getter(mem, svc, r, arg),
        SIOCSIFFLAGS => set_flags(mem, svc, arg),
        SIOCDEVPRIVATE..=0x89ff => Err(Fail::Errno(libc::EOPNOTSUPP)),
        // The container's devices have no ethtool operations: what a kernel says
        // of such a device (libpcap then falls back to its defaults).
        SIOCETHTOOL => Err(Fail::Errno(libc::EOPNOTSUPP)),
        SIOCPROTOPRIVATE..=0x89ef => Err(Fail::Errno(libc::ENOTTY)),
        // Everything else in the range changes interfaces, routes or ARP entries,
        // or reaches devices (ethtool, MII, bridges, bonds, VLANs).
        _ => Err(Fail::Errno(libc::EPERM)),
    }
}

fn sockaddr_in(a: [u8; 4]) -> [u8; 16] {
    let mut s = [0u8; 16];
    s[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
    s[4..8].copy_from_slice(&a);
    s
}

/// The IPv4 netmask of a prefix length.
pub fn netmask(prefix: u8) -> [u8; 4] {
    let bits = match prefix {
        0 => 0,
        p => u32::MAX << (32 - p.min(32) as u32),
    };
    bits.to_be_bytes()
}

/// The broadcast address of `a`/`prefix`.
pub fn broadcast(a: [u8; 4], prefix: u8) -> [u8; 4] {
    (u32::from_be_bytes(a) | !u32::from_be_bytes(netmask(prefix))).to_be_bytes()
}

fn ifconf(mem: &impl Memory, svc: &mut impl Service, arg: u64) -> Result<Done, Fail> {
    // struct ifconf { int ifc_len; (pad); char *ifc_buf; }
    let mut h = [0u8; 16];
    mem.read(arg, &mut h)?;
    let room = i32::from_ne_bytes([h[0], h[1], h[2], h[3]]);
    let buf = u64::from_ne_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]);
    let list = interfaces(svc)?;
    let entries = list.iter().flat_map(|i| {
        i.addrs.iter().filter_map(move |a| match *a {
            IfAddr::V4(b, _) => {
                let mut e = [0u8; IFREQ];
                e[..IFNAMSIZ].copy_from_slice(&i.head.name);
                e[16..32].copy_from_slice(&sockaddr_in(b));
                Some(e)
            }
            IfAddr::V6(..) => None,
        })
    });
    let len = if buf == 0 {
        // Asking for the size needed.
        entries.count() * IFREQ
    } else {
        let fit = room.max(0) as usize / IFREQ;
        let mut n = 0;
        for e in entries.take(fit) {
            mem.write(buf + (n * IFREQ) as u64, &e)?;
            n += 1;
        }
        n * IFREQ
    };
    mem.write_u32(arg, len as u32)?;
    Ok(Done::Value(0))
}

/// `SIOCSIFFLAGS` that changes nothing, or only asks an interface that is up
/// to be up (container runtimes bring `lo` up so): done. Any other change is
/// `ip link`'s (netlink) and refused here (`EPERM`).
fn set_flags(mem: &impl Memory, svc: &mut impl Service, arg: u64) -> Result<Done, Fail> {
    let (r, i) = named(mem, svc, arg)?;
    let want = u32::from(u16::from_ne_bytes([r[16], r[17]]));
    // The flags a program cannot set (Linux ignores them in the request).
    let volatile = (libc::IFF_RUNNING | libc::IFF_LOWER_UP | libc::IFF_DORMANT) as u32;
    let have = i.head.flags & 0xffff & !volatile;
    if want & !volatile == have {
        Ok(Done::Value(0))
    } else {
        Err(Fail::Errno(libc::EPERM))
    }
}

/// The `struct ifreq` at `arg` and the container's interface it names
/// (`ENODEV` for none).
fn named(
    mem: &impl Memory,
    svc: &mut impl Service,
    arg: u64,
) -> Result<([u8; IFREQ], Interface), Fail> {
    let mut r = [0u8; IFREQ];
    mem.read(arg, &mut r)?;
    let end = r[..IFNAMSIZ]
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(IFNAMSIZ);
    let i = interfaces(svc)?
        .into_iter()
        .find(|i| i.head.name().as_bytes() == &r[..end])
        .ok_or(Fail::Errno(libc::ENODEV))?;
    Ok((r, i))
}

fn getter(mem: &impl Memory, svc: &mut impl Service, req: u32, arg: u64) -> Result<Done, Fail> {
    let (mut r, i) = named(mem, svc, arg)?;
    let lo = i.head.flags & libc::IFF_LOOPBACK as u32 != 0;
    let u = &mut r[16..IFREQ];
    match req {
        SIOCGIFFLAGS => u[..2].copy_from_slice(&(i.head.flags as u16).to_ne_bytes()),
        SIOCGIFADDR | SIOCGIFNETMASK | SIOCGIFBRDADDR | SIOCGIFDSTADDR => {
            let (a, p) = i.ipv4().ok_or(Fail::Errno(libc::EADDRNOTAVAIL))?;
            let v = match req {
                SIOCGIFADDR => a,
                SIOCGIFNETMASK => netmask(p),
                SIOCGIFBRDADDR if !lo => broadcast(a, p),
                SIOCGIFDSTADDR if lo => a,
                _ => [0; 4],
            };
            u[..16].copy_from_slice(&sockaddr_in(v));
        }
        SIOCGIFMTU => u[..4].copy_from_slice(&(i.head.mtu as i32).to_ne_bytes()),
        SIOCGIFINDEX => u[..4].copy_from_slice(&(i.head.index as i32).to_ne_bytes()),
        SIOCGIFTXQLEN => u[..4].copy_from_slice(&1000i32.to_ne_bytes()),
        SIOCGIFHWADDR => {
            u[..2].copy_from_slice(&i.head.hwtype.to_ne_bytes());
            u[2..8].copy_from_slice(&i.head.mac);
        }
        // SIOCGIFMETRIC, SIOCGIFPFLAGS
        _ => u[..4].copy_from_slice(&0i32.to_ne_bytes()),
    }
    mem.write(arg, &r)?;
    Ok(Done::Value(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use std::cell::RefCell;

    fn two() -> Vec<u8> {
        let mut data = vec![0u8; 512];
        let mut pos = 0;
        let mut name = [0u8; 16];
        name[..2].copy_from_slice(b"lo");
        let lo = Iface {
            index: 1,
            flags: (libc::IFF_UP | libc::IFF_RUNNING | libc::IFF_LOOPBACK) as u32,
            mtu: 65536,
            hwtype: 772,
            mac: [0; 6],
            name,
        };
        assert!(iface::encode(
            &lo,
            &[IfAddr::V4([127, 0, 0, 1], 8), IfAddr::V6([0; 16], 128)],
            false,
            &mut data,
            &mut pos
        ));
        let mut name = [0u8; 16];
        name[..4].copy_from_slice(b"eth0");
        let eth = Iface {
            index: 2,
            flags: (libc::IFF_UP | libc::IFF_RUNNING | libc::IFF_BROADCAST) as u32,
            mtu: 1500,
            hwtype: 1,
            mac: [2, 0, 0, 0, 0, 9],
            name,
        };
        assert!(iface::encode(
            &eth,
            &[IfAddr::V4([10, 88, 0, 2], 24)],
            false,
            &mut data,
            &mut pos
        ));
        data.truncate(pos);
        data
    }

    fn svc() -> Fixed {
        Fixed {
            errno: 0,
            flags: 0,
            data: two(),
            asked: vec![],
        }
    }

    fn ifreq(name: &str) -> Mem {
        let m = Mem(RefCell::new(vec![0u8; 256]));
        m.0.borrow_mut()[..name.len()].copy_from_slice(name.as_bytes());
        m
    }

    #[test]
    fn getters_answer_from_the_container() {
        let m = ifreq("eth0");
        let mut s = svc();
        assert_eq!(
            ioctl(&m, &mut s, SIOCGIFBRDADDR, BASE, true),
            Ok(Done::Value(0))
        );
        assert_eq!(&m.0.borrow()[20..24], &[10, 88, 0, 255]);
        assert_eq!(
            ioctl(&m, &mut s, SIOCGIFINDEX, BASE, false),
            Ok(Done::Value(0))
        );
        assert_eq!(&m.0.borrow()[16..20], &2i32.to_ne_bytes());
        assert_eq!(
            ioctl(&m, &mut s, SIOCGIFHWADDR, BASE, false),
            Ok(Done::Value(0))
        );
        assert_eq!(&m.0.borrow()[16..24], &[1, 0, 2, 0, 0, 0, 0, 9]);
        let none = ifreq("wlan0");
        assert_eq!(
            ioctl(&none, &mut s, SIOCGIFFLAGS, BASE, true),
            Err(Fail::Errno(libc::ENODEV))
        );
        // Changing things is refused; the socket's own requests go native
        // for a socket of the program's.
        assert_eq!(
            ioctl(&m, &mut s, 0x8914, BASE, true),
            Err(Fail::Errno(libc::EPERM))
        );
        assert_eq!(ioctl(&m, &mut s, SIOCATMARK, BASE, false), Ok(Done::Native));
        assert_eq!(ioctl(&m, &mut s, SIOCATMARK, BASE, true), Ok(Done::Native));
    }

    #[test]
    fn ifconf_lists_ipv4_addresses_and_their_size() {
        let m = Mem(RefCell::new(vec![0u8; 256]));
        let mut s = svc();
        // Size query: ifc_buf NULL.
        assert_eq!(
            ioctl(&m, &mut s, SIOCGIFCONF, BASE, true),
            Ok(Done::Value(0))
        );
        assert_eq!(m.read_u32(BASE).unwrap(), 2 * IFREQ as u32);
        // Room for one.
        m.write_u32(BASE, IFREQ as u32 + 3).unwrap();
        m.write(BASE + 8, &(BASE + 64).to_ne_bytes()).unwrap();
        assert_eq!(
            ioctl(&m, &mut s, SIOCGIFCONF, BASE, true),
            Ok(Done::Value(0))
        );
        assert_eq!(m.read_u32(BASE).unwrap(), IFREQ as u32);
        assert_eq!(&m.0.borrow()[64..66], b"lo");
    }

    #[test]
    fn families_ignore_loopback_and_link_local() {
        let mut list = vec![Interface {
            head: Iface::default(),
            addrs: vec![
                IfAddr::V4([127, 0, 0, 1], 8),
                IfAddr::V6(std::net::Ipv6Addr::LOCALHOST.octets(), 128),
            ],
        }];
        assert_eq!(families(&list), (false, false));
        let mut ll = [0u8; 16];
        ll[0] = 0xfe;
        ll[1] = 0x80;
        list[0].addrs.push(IfAddr::V6(ll, 64));
        list[0].addrs.push(IfAddr::V4([10, 0, 0, 2], 24));
        assert_eq!(families(&list), (true, false));
    }
}
