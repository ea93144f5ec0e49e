//! Blocks of destinations that route alike: what a UDP socket's grant covers.
//!
//! A program's `sendto` with an address needs the stack's answer only when it can
//! fail: no route, a broadcast without `SO_BROADCAST`, the filter's verdict, an
//! address of this host. Once a datagram to a destination went out, later ones to
//! any address that routes the same way — same interface, same source, none of
//! those special cases — cannot fail either until something changes, so the
//! front end may post them without waiting (see the control module's grants).
//! The block handed out is the largest prefix around the destination that lies
//! inside its route and holds no part of anything routed otherwise: a more
//! specific route or subnet, an address of this host, a subnet's broadcast
//! address, loopback, multicast, the limited broadcast, IPv4-mapped and
//! link-local IPv6 (whose scope a bare address does not say). This host's own
//! addresses go over `lo` whatever the routes say: 127/8 is one block, an
//! address of an interface a block of its own. Routes of links
//! that are down count too: their coming up changes the generation anyway.

use super::{Interfaces, is_link_local};
use smoltcp::wire::{IpAddress, IpCidr};

/// An address as the 128 bits of its family's width, left-aligned.
fn bits(a: &IpAddress) -> u128 {
    match a {
        IpAddress::Ipv4(v4) => u128::from(u32::from(*v4)) << 96,
        IpAddress::Ipv6(v6) => u128::from(*v6),
    }
}

/// Leading bits `a` and `b` share.
fn common(a: u128, b: u128) -> u8 {
    (a ^ b).leading_zeros() as u8
}

impl Interfaces {
    /// The prefix length of the block of destinations around `dst` that route
    /// as `dst` does (see the module docs); `None` when `dst` is special itself.
    pub fn grant_block(&self, dst: &IpAddress) -> Option<u8> {
        let width: u8 = match dst {
            IpAddress::Ipv4(_) => 32,
            IpAddress::Ipv6(_) => 128,
        };
        let d = bits(dst);
        // This host's own addresses go over `lo` whatever the routes say: all of
        // 127/8 alike, an address of an interface alone.
        match dst {
            IpAddress::Ipv4(v4) if v4.is_loopback() => return Some(8),
            IpAddress::Ipv6(v6) if v6.is_loopback() => return Some(128),
            _ if self.is_local(dst) => return Some(width),
            _ => {}
        }
        // (prefix bits, length) of what routes otherwise or is special.
        let mut special: Vec<(u128, u8)> = Vec::with_capacity(16);
        match dst {
            IpAddress::Ipv4(_) => {
                special.push((bits(&IpAddress::v4(127, 0, 0, 0)), 8));
                special.push((bits(&IpAddress::v4(0, 0, 0, 0)), 8));
                special.push((bits(&IpAddress::v4(224, 0, 0, 0)), 3));
                special.push((bits(&IpAddress::v4(255, 255, 255, 255)), 32));
            }
            IpAddress::Ipv6(_) => {
                special.push((0, 127)); // :: and ::1
                special.push((0xff << 120, 8));
                special.push((0xfe80 << 112, 10));
                special.push((0xffff << 32, 96));
            }
        }
        let mut route_len: Option<u8> = None;
        let mut prefixes: Vec<IpCidr> = Vec::with_capacity(8);
        for (_, c) in self.all_addrs() {
            if c.address().version() != dst.version() {
                continue;
            }
            prefixes.push(super::network(c));
            special.push((bits(&c.address()), width));
            if let IpCidr::Ipv4(v4) = c
                && v4.prefix_len() < 31
            {
                let mask = u32::MAX >> v4.prefix_len();
                let b = u32::from(v4.address()) | mask;
                special.push((u128::from(b) << 96, 32));
            }
        }
        prefixes.extend(
            self.routes
                .iter()
                .map(|r| r.dst)
                .filter(|c| c.address().version() == dst.version()),
        );
        for c in prefixes {
            let (p, l) = (bits(&c.address()), c.prefix_len());
            if common(d, p) >= l {
                // A route holding `dst`: the block stays inside the longest.
                route_len = Some(route_len.map_or(l, |r| r.max(l)));
            } else {
                special.push((p, l));
            }
        }
        let mut len = route_len?;
        for (p, l) in special {
            let shared = common(d, p).min(width);
            if shared >= l {
                // `dst` is special itself.
                return None;
            }
            // Keep the block apart from it: diverge within the first bits.
            len = len.max(shared + 1);
        }
        if is_link_local(dst) {
            return None;
        }
        Some(len.min(width))
    }
}
