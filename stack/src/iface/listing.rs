//! The interfaces as programs see them: the records of a
//! [`Request::Interfaces`](netcell_proto::Request::Interfaces) reply, from which both
//! front ends answer the interface ioctls, `getifaddrs` and `if_nameindex`.
//!
//! `lo` shows only its loopback addresses: the host routes it keeps for `eth0`'s
//! addresses (see the module docs above) are an implementation detail Linux does
//! not show.

use super::{IfaceId, Interfaces, LO, NetIf};
use netcell_proto::iface::{self, IfAddr, Iface};
use smoltcp::wire::{HardwareAddress, IpCidr};

const ARPHRD_ETHER: u16 = 1;
const ARPHRD_LOOPBACK: u16 = 772;
/// An interface with no hardware address (an IP-medium device, as a TUN).
const ARPHRD_NONE: u16 = 0xfffe;
const IFF_LOWER_UP: u32 = 0x10000;

/// The most addresses one interface lists (what fits one reply).
const MAX_ADDRS: usize = 96;

impl Interfaces {
    /// Writes the records of the interfaces from index `from` on into `out`, as many
    /// as fit; returns the bytes written and the index to continue from (0: done).
    pub fn encode_records(&self, from: u32, out: &mut [u8]) -> (usize, u32) {
        let mut pos = 0;
        let first = self.by_index(from.max(1)).unwrap_or(self.len());
        for (id, n) in self.iter().skip(first) {
            let (head, addrs) = describe(id, n);
            let list = &addrs[..addrs.len().min(MAX_ADDRS)];
            // An interface too large for a reply of its own is cut to what fits.
            if !iface::encode(&head, list, pos == 0, out, &mut pos) {
                return (pos, head.index);
            }
        }
        (pos, 0)
    }
}

/// The record of one interface and its addresses (also what rtnetlink reports).
pub(crate) fn describe(id: IfaceId, n: &NetIf) -> (Iface, Vec<IfAddr>) {
    let mut name = [0u8; 16];
    let b = n.name.as_bytes();
    name[..b.len().min(15)].copy_from_slice(&b[..b.len().min(15)]);
    let up = if n.up {
        (libc::IFF_UP | libc::IFF_RUNNING) as u32 | IFF_LOWER_UP
    } else {
        0
    };
    let (flags, hwtype, mac) = if id == LO {
        (up | libc::IFF_LOOPBACK as u32, ARPHRD_LOOPBACK, [0; 6])
    } else {
        // smoltcp asserts on the hardware address of an IP-medium interface, so
        // ask only an Ethernet one.
        match n.ethernet.then(|| n.iface.hardware_addr()) {
            Some(HardwareAddress::Ethernet(m)) => (
                up | (libc::IFF_BROADCAST | libc::IFF_MULTICAST) as u32,
                ARPHRD_ETHER,
                m.0,
            ),
            _ => (
                up | (libc::IFF_POINTOPOINT | libc::IFF_NOARP) as u32,
                ARPHRD_NONE,
                [0; 6],
            ),
        }
    };
    let mut addrs: Vec<IfAddr> = n
        .iface
        .ip_addrs()
        .iter()
        .filter(|c| id != LO || std::net::IpAddr::from(c.address()).is_loopback())
        .map(|c| match c {
            IpCidr::Ipv4(c) => IfAddr::V4(c.address().octets(), c.prefix_len()),
            IpCidr::Ipv6(c) => IfAddr::V6(c.address().octets(), c.prefix_len()),
        })
        .collect();
    addrs.sort_by_key(|a| matches!(a, IfAddr::V6(..)));
    let head = Iface {
        index: id as u32 + 1,
        flags,
        mtu: n.mtu as u32,
        hwtype,
        mac,
        name,
    };
    (head, addrs)
}
