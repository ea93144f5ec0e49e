//! What the filter reads of a packet: addresses, protocol, ports, TCP flags,
//! ICMP type, and for an ICMP error the connection it reports on.

use smoltcp::phy::Medium;
use smoltcp::wire::{IpAddress, Ipv4Address, Ipv6Address};

/// The fields rules and connection tracking look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pkt {
    /// IP source.
    pub src: IpAddress,
    /// IP destination.
    pub dst: IpAddress,
    /// IP protocol number (the last IPv6 header's).
    pub proto: u8,
    /// Transport source port (ICMP echo: the identifier).
    pub sport: u16,
    /// Transport destination port (ICMP echo: the identifier).
    pub dport: u16,
    /// TCP flags.
    pub flags: u8,
    /// ICMP type and code.
    pub icmp: Option<(u8, u8)>,
    /// An ICMP error's quoted packet: its protocol, source, source port,
    /// destination, destination port.
    pub quoted: Option<(u8, IpAddress, u16, IpAddress, u16)>,
    /// Bytes of the IP packet.
    pub len: usize,
    /// Where the IP header starts in the frame.
    pub ip_at: usize,
    /// Where the transport header starts in the frame.
    pub l4_at: usize,
    /// A non-first IPv4 fragment (no transport header).
    pub fragment: bool,
}

/// ICMP types that are errors (they quote the packet they report on).
fn icmp_error(proto: u8, ty: u8) -> bool {
    match proto {
        1 => matches!(ty, 3 | 4 | 5 | 11 | 12),
        58 => ty < 128,
        _ => false,
    }
}

fn ports(b: &[u8]) -> (u16, u16) {
    match b {
        [a, b, c, d, ..] => (u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d])),
        _ => (0, 0),
    }
}

/// The IP header of `ip`: source, destination, protocol, header length, total
/// length, non-first fragment.
fn ip_header(ip: &[u8]) -> Option<(IpAddress, IpAddress, u8, usize, usize, bool)> {
    match ip.first()? >> 4 {
        4 if ip.len() >= 20 => {
            let hl = ((ip[0] & 0x0f) as usize * 4).max(20);
            let tl = (u16::from_be_bytes([ip[2], ip[3]]) as usize).min(ip.len());
            let frag = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff != 0;
            let a = |o: usize| Ipv4Address::new(ip[o], ip[o + 1], ip[o + 2], ip[o + 3]);
            Some((
                a(12).into(),
                a(16).into(),
                ip[9],
                hl.min(ip.len()),
                tl.max(hl.min(ip.len())),
                frag,
            ))
        }
        6 if ip.len() >= 40 => {
            let a = |o: usize| {
                let b: [u8; 16] = ip[o..o + 16].try_into().unwrap_or([0; 16]);
                Ipv6Address::from(b)
            };
            let tl = (40 + u16::from_be_bytes([ip[4], ip[5]]) as usize).min(ip.len());
            // Walk the common extension headers to the transport header.
            let (mut next, mut at) = (ip[6], 40);
            for _ in 0..8 {
                match next {
                    0 | 43 | 60 if at + 8 <= tl => {
                        next = ip[at];
                        at += (ip[at + 1] as usize + 1) * 8;
                    }
                    44 if at + 8 <= tl => {
                        let frag = u16::from_be_bytes([ip[at + 2], ip[at + 3]]) & 0xfff8 != 0;
                        next = ip[at];
                        at += 8;
                        if frag {
                            return Some((a(8).into(), a(24).into(), next, at.min(tl), tl, true));
                        }
                    }
                    _ => break,
                }
            }
            Some((a(8).into(), a(24).into(), next, at.min(tl), tl, false))
        }
        _ => None,
    }
}

/// Reads a frame of a device of `medium`; `None` for what is not IP (ARP) or too
/// short to be.
pub fn parse(medium: Medium, frame: &[u8]) -> Option<Pkt> {
    let ip_at = match medium {
        Medium::Ethernet => match frame.get(12..14)? {
            [0x08, 0x00] | [0x86, 0xdd] => 14,
            _ => return None,
        },
        _ => 0,
    };
    let ip = &frame[ip_at..];
    let (src, dst, proto, hl, tl, fragment) = ip_header(ip)?;
    let l4 = &ip[hl..tl];
    let mut p = Pkt {
        src,
        dst,
        proto,
        sport: 0,
        dport: 0,
        flags: 0,
        icmp: None,
        quoted: None,
        len: tl,
        ip_at,
        l4_at: ip_at + hl,
        fragment,
    };
    if fragment {
        return Some(p);
    }
    match proto {
        6 | 17 | 132 => {
            (p.sport, p.dport) = ports(l4);
            if proto == 6 {
                p.flags = l4.get(13).copied().unwrap_or(0) & 0x3f;
            }
        }
        1 | 58 if l4.len() >= 4 => {
            let (ty, code) = (l4[0], l4[1]);
            p.icmp = Some((ty, code));
            if icmp_error(proto, ty) {
                if let Some((qs, qd, qp, qhl, _, _)) = l4.get(8..).and_then(ip_header) {
                    let (qsp, qdp) = ports(l4.get(8 + qhl..).unwrap_or(&[]));
                    p.quoted = Some((qp, qs, qsp, qd, qdp));
                }
            } else if l4.len() >= 6 {
                // Echo request and reply: the identifier stands for both ports.
                let id = u16::from_be_bytes([l4[4], l4[5]]);
                (p.sport, p.dport) = (id, id);
            }
        }
        _ => {}
    }
    Some(p)
}
