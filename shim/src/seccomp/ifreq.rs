//! `ioctl` on sockets: `FIONREAD` of datagram stand-ins, and the interface ioctls.
//!
//! The interface ioctls (`SIOCGIFCONF`, `SIOCGIFFLAGS`, ...) work on any socket,
//! `AF_UNIX` included, and describe the network namespace the socket lives in — the
//! host's. So every `SIOC*` request on a socket comes here: the read-only ones are
//! answered from the container's interfaces (`lo`, `eth0`), the ones that change
//! interfaces, routes or ARP entries fail with `EPERM`, and device-private ones
//! with `EOPNOTSUPP`. Wireless-extension requests (`0x8B00`–`0x8BFF`) find no
//! device (`ENODEV`). Requests that are about the socket itself (`SIOCATMARK`,
//! `SIOCGSTAMP`, the protocol-private range) go to the kernel for `AF_UNIX`
//! sockets and are answered here for stand-ins.

use super::calls::{Cx, Held, Outcome};
use super::target::Fail;
use netcell_frontend::Memory;
use netcell_stack::iface::{LO, NetIf};
use smoltcp::phy::Device;
use smoltcp::wire::{HardwareAddress, IpCidr};
use std::os::fd::AsFd;

const SIOCATMARK: u32 = 0x8905;
const SIOCGSTAMP: u32 = 0x8906;
const SIOCGSTAMPNS: u32 = 0x8907;
const SIOCGIFNAME: u32 = 0x8910;
const SIOCGIFCONF: u32 = 0x8912;
const SIOCGIFFLAGS: u32 = 0x8913;
const SIOCGIFADDR: u32 = 0x8915;
const SIOCGIFDSTADDR: u32 = 0x8917;
const SIOCGIFBRDADDR: u32 = 0x8919;
const SIOCGIFNETMASK: u32 = 0x891b;
const SIOCGIFMETRIC: u32 = 0x891d;
const SIOCGIFMTU: u32 = 0x8921;
const SIOCGIFHWADDR: u32 = 0x8927;
const SIOCGIFINDEX: u32 = 0x8933;
const SIOCGIFTXQLEN: u32 = 0x8942;
const SIOCPROTOPRIVATE: u32 = 0x89e0;
const SIOCDEVPRIVATE: u32 = 0x89f0;
const WIRELESS_FIRST: u32 = 0x8b00;
const WIRELESS_LAST: u32 = 0x8bff;

/// `struct ifreq` is 40 bytes: a 16-byte name and a 24-byte union.
const IFREQ: usize = 40;
const IFNAMSIZ: usize = 16;
const ARPHRD_ETHER: u16 = 1;
const ARPHRD_LOOPBACK: u16 = 772;

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
    0x8935, // SIOCGIFPFLAGS
];

pub fn ioctl<D: Device>(cx: &mut Cx<'_, '_, D>) -> Result<Outcome, Fail> {
    let req = cx.call.args[1] as u32;
    let arg = cx.call.args[2];
    if req == libc::FIONREAD as u32 {
        return fionread(cx, arg);
    }
    // Never passed on for what is not a socket: the kernel would re-read the
    // descriptor, and find a socket there by then if another thread put one.
    let standin = match cx.held(cx.call.int(0))? {
        // What a terminal or file says to a request it does not know.
        Held::NotSocket => return Ok(Outcome::Errno(libc::ENOTTY)),
        Held::StandIn(_) => true,
        Held::Unix(_) | Held::Foreign(..) => false,
    };
    match req {
        WIRELESS_FIRST..=WIRELESS_LAST => Ok(Outcome::Errno(libc::ENODEV)),
        // About the socket itself: the kernel answers for an AF_UNIX socket (and
        // harmlessly for any socket another thread may have put there by then).
        SIOCATMARK | SIOCGSTAMP | SIOCGSTAMPNS | SIOCPROTOPRIVATE..=0x89ef if !standin => {
            Ok(Outcome::Continue)
        }
        SIOCATMARK => {
            cx.call.write_u32(arg, 0)?;
            Ok(Outcome::Value(0))
        }
        // No packet timestamps are kept.
        SIOCGSTAMP | SIOCGSTAMPNS => Ok(Outcome::Errno(libc::ENOENT)),
        SIOCGIFCONF => ifconf(cx, arg),
        SIOCGIFNAME => {
            let mut r = [0u8; IFREQ];
            cx.call.read(arg, &mut r)?;
            let index = u32::from_ne_bytes([r[16], r[17], r[18], r[19]]);
            let ifs = cx.stack.interfaces();
            let Some(id) = ifs.by_index(index) else {
                return Ok(Outcome::Errno(libc::ENODEV));
            };
            let name = ifs.get(id).name.as_bytes();
            let mut out = [0u8; IFNAMSIZ];
            out[..name.len().min(IFNAMSIZ - 1)]
                .copy_from_slice(&name[..name.len().min(IFNAMSIZ - 1)]);
            cx.call.write(arg, &out)?;
            Ok(Outcome::Value(0))
        }
        r if GETTERS.contains(&r) => getter(cx, r, arg),
        SIOCDEVPRIVATE..=0x89ff => Ok(Outcome::Errno(libc::EOPNOTSUPP)),
        SIOCPROTOPRIVATE..=0x89ef => Ok(Outcome::Errno(libc::ENOTTY)),
        // Everything else in the range changes interfaces, routes or ARP entries,
        // or reaches devices (ethtool, MII, bridges, bonds, VLANs).
        _ => Ok(Outcome::Errno(libc::EPERM)),
    }
}

/// `FIONREAD` of a datagram stand-in is the size of the next datagram (natively it
/// would count every queued byte); anything else goes to the kernel.
fn fionread<D: Device>(cx: &mut Cx<'_, '_, D>, arg: u64) -> Result<Outcome, Fail> {
    let s = match cx.held(cx.call.int(0))? {
        Held::StandIn(s) if s.is_datagram() => s,
        // A count of queued bytes, whatever the descriptor is by the time the
        // kernel looks again: harmless.
        _ => return Ok(Outcome::Continue),
    };
    let n = super::kernel::next_record_len(s.fd.as_fd());
    cx.call.write_u32(arg, n as u32)?;
    Ok(Outcome::Value(0))
}

/// The IPv4 addresses an interface shows (`lo` only its loopback ones: the stack
/// keeps host routes for eth0's addresses on it, which Linux does not show).
fn ipv4_addrs(id: usize, n: &NetIf) -> impl Iterator<Item = (std::net::Ipv4Addr, u8)> + '_ {
    n.iface.ip_addrs().iter().filter_map(move |c| match c {
        IpCidr::Ipv4(c) if id != LO || c.address().is_loopback() => {
            Some((c.address(), c.prefix_len()))
        }
        _ => None,
    })
}

fn sockaddr_in(a: std::net::Ipv4Addr) -> [u8; 16] {
    let mut s = [0u8; 16];
    s[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
    s[4..8].copy_from_slice(&a.octets());
    s
}

fn netmask(prefix: u8) -> std::net::Ipv4Addr {
    let bits = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix as u32)
    };
    bits.into()
}

fn flags(id: usize) -> u16 {
    let up = (libc::IFF_UP | libc::IFF_RUNNING) as u16;
    if id == LO {
        up | libc::IFF_LOOPBACK as u16
    } else {
        up | (libc::IFF_BROADCAST | libc::IFF_MULTICAST) as u16
    }
}

fn ifconf<D: Device>(cx: &mut Cx<'_, '_, D>, arg: u64) -> Result<Outcome, Fail> {
    // struct ifconf { int ifc_len; (pad) ; char *ifc_buf; }
    let mut h = [0u8; 16];
    cx.call.read(arg, &mut h)?;
    let room = i32::from_ne_bytes([h[0], h[1], h[2], h[3]]);
    let buf = u64::from_ne_bytes(h[8..16].try_into().unwrap_or_default());
    let ifs = cx.stack.interfaces();
    let mut entries: Vec<[u8; IFREQ]> = Vec::new();
    for (id, n) in ifs.iter() {
        for (a, _) in ipv4_addrs(id, n) {
            let mut e = [0u8; IFREQ];
            let name = n.name.as_bytes();
            e[..name.len().min(IFNAMSIZ - 1)]
                .copy_from_slice(&name[..name.len().min(IFNAMSIZ - 1)]);
            e[16..32].copy_from_slice(&sockaddr_in(a));
            entries.push(e);
        }
    }
    let len = if buf == 0 {
        // Asking for the size needed.
        entries.len() * IFREQ
    } else {
        let fit = (room.max(0) as usize / IFREQ).min(entries.len());
        for (i, e) in entries.iter().take(fit).enumerate() {
            cx.call.write(buf + (i * IFREQ) as u64, e)?;
        }
        fit * IFREQ
    };
    cx.call.write_u32(arg, len as u32)?;
    Ok(Outcome::Value(0))
}

fn getter<D: Device>(cx: &mut Cx<'_, '_, D>, req: u32, arg: u64) -> Result<Outcome, Fail> {
    let mut r = [0u8; IFREQ];
    cx.call.read(arg, &mut r)?;
    let end = r[..IFNAMSIZ]
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(IFNAMSIZ);
    let Ok(name) = std::str::from_utf8(&r[..end]) else {
        return Ok(Outcome::Errno(libc::ENODEV));
    };
    let ifs = cx.stack.interfaces();
    let Some(id) = ifs.by_name(name) else {
        return Ok(Outcome::Errno(libc::ENODEV));
    };
    let n = ifs.get(id);
    let first4 = ipv4_addrs(id, n).next();
    let u = &mut r[16..IFREQ];
    match req {
        SIOCGIFFLAGS => u[..2].copy_from_slice(&flags(id).to_ne_bytes()),
        SIOCGIFADDR | SIOCGIFNETMASK | SIOCGIFBRDADDR | SIOCGIFDSTADDR => {
            let Some((a, p)) = first4 else {
                return Ok(Outcome::Errno(libc::EADDRNOTAVAIL));
            };
            let v = match req {
                SIOCGIFADDR => a,
                SIOCGIFNETMASK => netmask(p),
                SIOCGIFBRDADDR if id != LO => (u32::from(a) | !u32::from(netmask(p))).into(),
                SIOCGIFDSTADDR if id == LO => a,
                _ => std::net::Ipv4Addr::UNSPECIFIED,
            };
            u[..16].copy_from_slice(&sockaddr_in(v));
        }
        SIOCGIFMTU => u[..4].copy_from_slice(&(n.mtu as i32).to_ne_bytes()),
        SIOCGIFINDEX => u[..4].copy_from_slice(&(id as i32 + 1).to_ne_bytes()),
        SIOCGIFTXQLEN => u[..4].copy_from_slice(&1000i32.to_ne_bytes()),
        SIOCGIFHWADDR => {
            // `lo` is an IP-medium interface: smoltcp has no hardware address for it
            // (and asserts so).
            let (family, mac) = match id {
                LO => (ARPHRD_LOOPBACK, [0; 6]),
                _ => match n.iface.hardware_addr() {
                    HardwareAddress::Ethernet(m) => (ARPHRD_ETHER, m.0),
                    _ => (ARPHRD_LOOPBACK, [0; 6]),
                },
            };
            u[..2].copy_from_slice(&family.to_ne_bytes());
            u[2..8].copy_from_slice(&mac);
        }
        // SIOCGIFMETRIC, SIOCGIFPFLAGS
        _ => u[..4].copy_from_slice(&0i32.to_ne_bytes()),
    }
    cx.call.write(arg, &r)?;
    Ok(Outcome::Value(0))
}
