//! The answer a REJECT gives, as Linux's `REJECT` target builds it: a TCP RST
//! (`with tcp reset`) or an ICMP / ICMPv6 destination-unreachable quoting the
//! packet. Nothing answers an ICMP error, a RST, a fragment, or a packet to a
//! multicast or broadcast address.

use super::packet::Pkt;
use super::rules::RejectWith;
use smoltcp::phy::Medium;
use smoltcp::wire::IpAddress;

fn sum16(b: &[u8]) -> u32 {
    b.chunks(2)
        .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32)
        .sum()
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

fn sum_addr(a: &IpAddress) -> u32 {
    match a {
        IpAddress::Ipv4(a) => sum16(&a.octets()),
        IpAddress::Ipv6(a) => sum16(&a.octets()),
    }
}

fn pseudo(src: &IpAddress, dst: &IpAddress, proto: u8, len: usize) -> u32 {
    sum_addr(src) + sum_addr(dst) + proto as u32 + len as u32
}

/// Writes into `out` the answer to `frame` (packet `p`, of a device of
/// `medium`) that `with` asks for; false if nothing is to be sent.
pub fn answer(medium: Medium, frame: &[u8], p: &Pkt, with: RejectWith, out: &mut Vec<u8>) -> bool {
    let never = p.fragment
        || p.quoted.is_some()
        || (p.proto == 6 && p.flags & 0x04 != 0)
        || p.dst.is_multicast()
        || matches!(p.dst, IpAddress::Ipv4(a) if a.is_broadcast());
    if never {
        return false;
    }
    out.clear();
    let v6 = matches!(p.src, IpAddress::Ipv6(_));
    if medium == Medium::Ethernet {
        if frame.len() < 14 {
            return false;
        }
        out.extend_from_slice(&frame[6..12]);
        out.extend_from_slice(&frame[0..6]);
        out.extend_from_slice(&frame[12..14]);
    }
    // The IP header's place; the transport part follows it, written in place
    // (no allocation per answer: `out` is a reused buffer).
    let ip_at = out.len();
    let hl = if v6 { 40 } else { 20 };
    out.resize(ip_at + hl, 0);
    let l4_at = out.len();
    let proto = if with == RejectWith::TcpReset && p.proto == 6 {
        let t = &frame[p.l4_at..];
        if t.len() < 20 {
            return false;
        }
        let seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
        let ack = u32::from_be_bytes([t[8], t[9], t[10], t[11]]);
        let doff = ((t[12] >> 4) as usize * 4).max(20);
        let payload = (p.ip_at + p.len).saturating_sub(p.l4_at + doff);
        let mut r = [0u8; 20];
        r[0..2].copy_from_slice(&p.dport.to_be_bytes());
        r[2..4].copy_from_slice(&p.sport.to_be_bytes());
        if p.flags & 0x10 != 0 {
            r[4..8].copy_from_slice(&ack.to_be_bytes());
            r[13] = 0x04;
        } else {
            let n =
                payload as u32 + u32::from(p.flags & 0x02 != 0) + u32::from(p.flags & 0x01 != 0);
            r[8..12].copy_from_slice(&seq.wrapping_add(n).to_be_bytes());
            r[13] = 0x14;
        }
        r[12] = 5 << 4;
        let c = fold(pseudo(&p.dst, &p.src, 6, 20) + sum16(&r));
        r[16..18].copy_from_slice(&c.to_be_bytes());
        out.extend_from_slice(&r);
        6
    } else {
        let code = match with {
            RejectWith::Icmp(c) => c,
            RejectWith::TcpReset => 3,
        };
        let orig = &frame[p.ip_at..(p.ip_at + p.len).min(frame.len())];
        if orig.is_empty() {
            return false;
        }
        let (ty, code, quote) = if v6 {
            // ICMPv6 codes: 0 no route, 1 prohibited, 3 address, 4 port.
            let c6 = match code {
                0 => 0,
                1 => 3,
                9 | 10 | 13 => 1,
                _ => 4,
            };
            (1u8, c6, orig.len().min(1280 - 48))
        } else {
            let ohl = ((orig[0] & 0x0f) as usize * 4).clamp(20, orig.len().max(20));
            (3u8, code, orig.len().min(ohl + 8))
        };
        out.extend_from_slice(&[ty, code, 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&orig[..quote]);
        let len = out.len() - l4_at;
        let mut s = sum16(&out[l4_at..]);
        if v6 {
            s += pseudo(&p.dst, &p.src, 58, len);
        }
        let c = fold(s).to_be_bytes();
        out[l4_at + 2..l4_at + 4].copy_from_slice(&c);
        if v6 { 58 } else { 1 }
    };
    let l4_len = out.len() - l4_at;
    let h = &mut out[ip_at..l4_at];
    if v6 {
        h[0] = 0x60;
        h[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        h[6] = proto;
        h[7] = 64;
        write_addr(&mut h[8..24], &p.dst);
        write_addr(&mut h[24..40], &p.src);
    } else {
        h[0] = 0x45;
        h[2..4].copy_from_slice(&((20 + l4_len) as u16).to_be_bytes());
        h[6] = 0x40;
        h[8] = 64;
        h[9] = proto;
        write_addr(&mut h[12..16], &p.dst);
        write_addr(&mut h[16..20], &p.src);
        let c = fold(sum16(h));
        h[10..12].copy_from_slice(&c.to_be_bytes());
    }
    true
}

fn write_addr(to: &mut [u8], a: &IpAddress) {
    match a {
        IpAddress::Ipv4(a) => to.copy_from_slice(&a.octets()),
        IpAddress::Ipv6(a) => to.copy_from_slice(&a.octets()),
    }
}
