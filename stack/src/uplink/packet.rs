//! The IP packets the uplink device reads from the stack and writes to it: what it
//! needs of a packet the stack sent (addresses, protocol, ports or echo
//! identifier), and headers written around a payload received from a host socket,
//! in place.

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Address, Ipv6Packet, Ipv6Repr, UdpPacket,
};
use std::net::{IpAddr, SocketAddr};

/// The hop limit of packets the uplink delivers (what the host's sockets do not
/// tell; Linux's default).
const HOP_LIMIT: u8 = 64;

/// What the stack sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outgoing<'a> {
    /// A UDP datagram from `src` to `dst`.
    Udp {
        src: SocketAddr,
        dst: SocketAddr,
        payload: &'a [u8],
    },
    /// An ICMP or ICMPv6 echo request; `message` is the whole ICMP message.
    Echo {
        src: IpAddr,
        dst: IpAddr,
        ident: u16,
        message: &'a [u8],
    },
    /// A TCP segment (the fast path did not take its connection).
    Tcp { dst: SocketAddr },
    /// Anything else (IGMP, MLD, ICMP errors, other protocols).
    Other,
}

/// Parses a packet the stack sent; `None` if it is not a well-formed IP packet.
pub(crate) fn parse(p: &[u8]) -> Option<Outgoing<'_>> {
    let (src, dst, proto, payload): (IpAddr, IpAddr, IpProtocol, &[u8]) = match p.first()? >> 4 {
        4 => {
            let ip = Ipv4Packet::new_checked(p).ok()?;
            if ip.more_frags() || ip.frag_offset() != 0 {
                return Some(Outgoing::Other);
            }
            let hl = ip.header_len() as usize;
            let total = (ip.total_len() as usize).min(p.len());
            (
                IpAddr::V4(ip.src_addr()),
                IpAddr::V4(ip.dst_addr()),
                ip.next_header(),
                p.get(hl..total)?,
            )
        }
        6 => {
            let ip = Ipv6Packet::new_checked(p).ok()?;
            let end = (40 + ip.payload_len() as usize).min(p.len());
            (
                IpAddr::V6(ip.src_addr()),
                IpAddr::V6(ip.dst_addr()),
                ip.next_header(),
                p.get(40..end)?,
            )
        }
        _ => return None,
    };
    match proto {
        IpProtocol::Udp => {
            let u = UdpPacket::new_checked(payload).ok()?;
            let len = (u.len() as usize).clamp(8, payload.len());
            Some(Outgoing::Udp {
                src: SocketAddr::new(src, u.src_port()),
                dst: SocketAddr::new(dst, u.dst_port()),
                payload: &payload[8..len],
            })
        }
        IpProtocol::Icmp | IpProtocol::Icmpv6 => {
            let echo_request = if proto == IpProtocol::Icmp { 8 } else { 128 };
            if payload.len() < 8 || payload[0] != echo_request || payload[1] != 0 {
                return Some(Outgoing::Other);
            }
            Some(Outgoing::Echo {
                src,
                dst,
                ident: u16::from_be_bytes([payload[4], payload[5]]),
                message: payload,
            })
        }
        IpProtocol::Tcp if payload.len() >= 4 => Some(Outgoing::Tcp {
            dst: SocketAddr::new(dst, u16::from_be_bytes([payload[2], payload[3]])),
        }),
        _ => Some(Outgoing::Other),
    }
}

/// Bytes before an IP payload of this family.
pub(crate) fn ip_header_len(v6: bool) -> usize {
    if v6 { 40 } else { 20 }
}

/// Writes the IP header of a packet from `src` to `dst` whose `payload_len` bytes
/// follow the header in `buf`; returns the packet's length.
fn write_ip(
    buf: &mut [u8],
    src: IpAddr,
    dst: IpAddr,
    proto: IpProtocol,
    payload_len: usize,
) -> usize {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let repr = Ipv4Repr {
                src_addr: s,
                dst_addr: d,
                next_header: proto,
                payload_len,
                hop_limit: HOP_LIMIT,
            };
            repr.emit(
                &mut Ipv4Packet::new_unchecked(&mut buf[..20]),
                &ChecksumCapabilities::default(),
            );
            20 + payload_len
        }
        (s, d) => {
            let repr = Ipv6Repr {
                src_addr: v6(s),
                dst_addr: v6(d),
                next_header: proto,
                payload_len,
                hop_limit: HOP_LIMIT,
            };
            repr.emit(&mut Ipv6Packet::new_unchecked(&mut buf[..40]));
            40 + payload_len
        }
    }
}

fn v6(a: IpAddr) -> Ipv6Address {
    match a {
        IpAddr::V6(a) => a,
        IpAddr::V4(a) => a.to_ipv6_mapped(),
    }
}

fn ip(a: IpAddr) -> IpAddress {
    match a {
        IpAddr::V4(a) => IpAddress::Ipv4(a),
        IpAddr::V6(a) => IpAddress::Ipv6(a),
    }
}

/// Writes the IP and UDP headers of a datagram from `src` to `dst` whose payload
/// of `n` bytes already sits after them in `buf` (at `ip_header_len + 8`).
/// Returns the packet's length. IPv4 datagrams carry no checksum (allowed, and the
/// stack does not check the uplink's); IPv6 ones carry theirs, as IPv6 requires.
pub(crate) fn write_udp(buf: &mut [u8], src: SocketAddr, dst: SocketAddr, n: usize) -> usize {
    let v6 = dst.is_ipv6();
    let h = ip_header_len(v6);
    {
        let mut u = UdpPacket::new_unchecked(&mut buf[h..h + 8 + n]);
        u.set_src_port(src.port());
        u.set_dst_port(dst.port());
        u.set_len((8 + n) as u16);
        u.set_checksum(0);
        if v6 {
            u.fill_checksum(&ip(src.ip()), &ip(dst.ip()));
        }
    }
    write_ip(buf, src.ip(), dst.ip(), IpProtocol::Udp, 8 + n)
}

/// Writes the IP header of an ICMP echo reply from `src` to `dst` whose ICMP
/// message of `n` bytes sits after it in `buf`, with the identifier set back to
/// `ident` and the checksum fixed. Returns the packet's length, or `None` when the
/// message is no echo reply.
pub(crate) fn write_echo_reply(
    buf: &mut [u8],
    src: IpAddr,
    dst: IpAddr,
    ident: u16,
    n: usize,
) -> Option<usize> {
    let v6 = dst.is_ipv6();
    let h = ip_header_len(v6);
    let m = buf.get_mut(h..h + n)?;
    let reply = if v6 { 129 } else { 0 };
    if n < 8 || m[0] != reply {
        return None;
    }
    m[4..6].copy_from_slice(&ident.to_be_bytes());
    m[2..4].copy_from_slice(&[0, 0]);
    let mut sum = if v6 {
        pseudo_sum(src, dst, n as u32, 58)
    } else {
        0
    };
    sum = add_sum(sum, m);
    let c = !fold(sum);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    let proto = if v6 {
        IpProtocol::Icmpv6
    } else {
        IpProtocol::Icmp
    };
    Some(write_ip(buf, src, dst, proto, n))
}

fn pseudo_sum(src: IpAddr, dst: IpAddr, len: u32, next: u8) -> u32 {
    let mut sum = add_sum(0, &v6(src).octets());
    sum = add_sum(sum, &v6(dst).octets());
    sum = add_sum(sum, &len.to_be_bytes());
    add_sum(sum, &[0, 0, 0, next])
}

fn add_sum(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        sum += u32::from(*b) << 8;
    }
    // Fold early so that a 64 KiB message cannot overflow.
    (sum & 0xffff) + (sum >> 16)
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::{Icmpv4Packet, Icmpv6Packet};

    #[test]
    fn udp_round_trip_v4_and_v6() {
        for (src, dst) in [
            ("192.0.2.9:53", "10.0.2.100:40000"),
            ("[2001:db8::9]:53", "[fd00::100]:40000"),
        ] {
            let (src, dst): (SocketAddr, SocketAddr) = (src.parse().unwrap(), dst.parse().unwrap());
            let mut buf = vec![0u8; 100];
            let h = ip_header_len(dst.is_ipv6()) + 8;
            buf[h..h + 5].copy_from_slice(b"hello");
            let n = write_udp(&mut buf, src, dst, 5);
            assert_eq!(
                parse(&buf[..n]),
                Some(Outgoing::Udp {
                    src,
                    dst,
                    payload: b"hello"
                })
            );
            if dst.is_ipv6() {
                let p = Ipv6Packet::new_checked(&buf[..n]).unwrap();
                let u = UdpPacket::new_checked(p.payload()).unwrap();
                assert!(u.verify_checksum(&ip(src.ip()), &ip(dst.ip())));
            }
        }
    }

    #[test]
    fn echo_reply_gets_its_identifier_back_and_a_valid_checksum() {
        for (src, dst, reply) in [
            ("192.0.2.9", "10.0.2.100", 0u8),
            ("2001:db8::9", "fd00::100", 129),
        ] {
            let (src, dst): (IpAddr, IpAddr) = (src.parse().unwrap(), dst.parse().unwrap());
            let h = ip_header_len(dst.is_ipv6());
            let mut buf = vec![0u8; 100];
            let msg = [reply, 0, 0xde, 0xad, 0x12, 0x34, 0, 7, b'p', b'i', b'n'];
            buf[h..h + msg.len()].copy_from_slice(&msg);
            let n = write_echo_reply(&mut buf, src, dst, 0x4242, msg.len()).unwrap();
            if dst.is_ipv6() {
                let p = Ipv6Packet::new_checked(&buf[..n]).unwrap();
                let i = Icmpv6Packet::new_checked(p.payload()).unwrap();
                assert_eq!(i.echo_ident(), 0x4242);
                assert!(i.verify_checksum(&v6(src), &v6(dst)));
            } else {
                let p = Ipv4Packet::new_checked(&buf[..n]).unwrap();
                assert!(p.verify_checksum());
                let i = Icmpv4Packet::new_checked(p.payload()).unwrap();
                assert_eq!(i.echo_ident(), 0x4242);
                assert!(i.verify_checksum());
            }
        }
        let mut buf = vec![0u8; 64];
        let a: IpAddr = "10.0.2.100".parse().unwrap();
        buf[20] = 3; // destination unreachable: not a reply
        assert_eq!(write_echo_reply(&mut buf, a, a, 1, 8), None);
    }

    #[test]
    fn garbage_is_no_packet() {
        assert_eq!(parse(&[]), None);
        assert_eq!(parse(&[0x45, 0, 0]), None);
        assert_eq!(parse(&[0x99; 60]), None);
    }
}
