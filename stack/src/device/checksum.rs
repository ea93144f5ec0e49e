//! Checksums of received frames nobody has checked.
//!
//! smoltcp is told not to verify what it receives on a TAP (it costs 15–27 %
//! of throughput at large MTUs), because nearly every frame there was built in
//! this machine's memory. Nearly: the TAP's `virtio_net_hdr` says, per frame,
//! whether the kernel vouches for it — `NEEDS_CSUM` (built here, its checksum
//! still to be completed) or `DATA_VALID` (checked already, by a NIC or the
//! kernel). A frame with neither flag has a checksum nobody checked: one a
//! netfilter queue rewrote, one bridged from a wire whose NIC checked nothing,
//! one another program wrote into the TAP. Without offload there is no header
//! and no frame says anything. Such frames are checked here, and one whose
//! checksum does not hold is dropped, as a wire's receiver drops it. Before
//! this, a link corrupting 5 % of its packets corrupted the bytes a container
//! received (measured with the fault tests' impairer: the SHA-256 of 4 MiB
//! differed).
//!
//! Checked: the IPv4 header; TCP, UDP (a zero UDP checksum over IPv4 means
//! none), ICMP and ICMPv6 directly behind the IP header. Not checked: the
//! transport checksum of an IPv4 fragment (it covers the whole datagram) and
//! of a segment behind IPv6 extension headers.

use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, Icmpv4Packet, Icmpv6Packet, IpAddress, IpProtocol, Ipv4Packet,
    Ipv6Packet, TcpPacket, UdpPacket,
};

/// Whether the checksums of the Ethernet frame `frame` hold (see the module
/// docs for what is checked). A frame too short or malformed to check is let
/// through: smoltcp drops those itself.
pub fn holds(frame: &[u8]) -> bool {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return true;
    };
    let ip = eth.payload();
    match eth.ethertype() {
        EthernetProtocol::Ipv4 => {
            let Ok(p) = Ipv4Packet::new_checked(ip) else {
                return true;
            };
            if !p.verify_checksum() {
                return false;
            }
            if p.more_frags() || p.frag_offset() != 0 {
                return true;
            }
            let (src, dst) = (IpAddress::Ipv4(p.src_addr()), IpAddress::Ipv4(p.dst_addr()));
            transport_holds(p.next_header(), p.payload(), &src, &dst)
        }
        EthernetProtocol::Ipv6 => {
            let Ok(p) = Ipv6Packet::new_checked(ip) else {
                return true;
            };
            let (src, dst) = (IpAddress::Ipv6(p.src_addr()), IpAddress::Ipv6(p.dst_addr()));
            transport_holds(p.next_header(), p.payload(), &src, &dst)
        }
        _ => true,
    }
}

fn transport_holds(proto: IpProtocol, l4: &[u8], src: &IpAddress, dst: &IpAddress) -> bool {
    match proto {
        IpProtocol::Tcp => TcpPacket::new_checked(l4).is_ok_and(|t| t.verify_checksum(src, dst)),
        IpProtocol::Udp => UdpPacket::new_checked(l4).is_ok_and(|u| u.verify_checksum(src, dst)),
        IpProtocol::Icmp => Icmpv4Packet::new_checked(l4).is_ok_and(|i| i.verify_checksum()),
        IpProtocol::Icmpv6 => match (src, dst) {
            (IpAddress::Ipv6(s), IpAddress::Ipv6(d)) => {
                Icmpv6Packet::new_checked(l4).is_ok_and(|i| i.verify_checksum(s, d))
            }
            _ => false,
        },
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{
        EthernetAddress, EthernetRepr, Ipv4Address, Ipv4Repr, Ipv6Address, Ipv6Repr, UdpRepr,
    };

    fn eth(proto: EthernetProtocol, ip: &[u8]) -> Vec<u8> {
        let repr = EthernetRepr {
            src_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            dst_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
            ethertype: proto,
        };
        let mut f = vec![0u8; repr.buffer_len() + ip.len()];
        let mut e = EthernetFrame::new_unchecked(&mut f[..]);
        repr.emit(&mut e);
        e.payload_mut().copy_from_slice(ip);
        f
    }

    /// A UDP datagram over IPv4 (`v6` false) or IPv6, as Ethernet frame.
    fn udp(v6: bool, payload: &[u8]) -> Vec<u8> {
        let udp = UdpRepr {
            src_port: 53,
            dst_port: 4000,
        };
        let caps = ChecksumCapabilities::default();
        let len = 8 + payload.len();
        if v6 {
            let (s, d) = (
                Ipv6Address::new(0xfd00, 0, 0, 0, 0, 0, 0, 1),
                Ipv6Address::new(0xfd00, 0, 0, 0, 0, 0, 0, 2),
            );
            let ip = Ipv6Repr {
                src_addr: s,
                dst_addr: d,
                next_header: IpProtocol::Udp,
                payload_len: len,
                hop_limit: 64,
            };
            let mut b = vec![0u8; ip.buffer_len() + len];
            let mut p = Ipv6Packet::new_unchecked(&mut b[..]);
            ip.emit(&mut p);
            udp.emit(
                &mut UdpPacket::new_unchecked(p.payload_mut()),
                &IpAddress::Ipv6(s),
                &IpAddress::Ipv6(d),
                payload.len(),
                |b| b.copy_from_slice(payload),
                &caps,
            );
            eth(EthernetProtocol::Ipv6, &b)
        } else {
            let (s, d) = (Ipv4Address::new(10, 0, 0, 1), Ipv4Address::new(10, 0, 0, 2));
            let ip = Ipv4Repr {
                src_addr: s,
                dst_addr: d,
                next_header: IpProtocol::Udp,
                payload_len: len,
                hop_limit: 64,
            };
            let mut b = vec![0u8; ip.buffer_len() + len];
            let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
            ip.emit(&mut p, &caps);
            udp.emit(
                &mut UdpPacket::new_unchecked(p.payload_mut()),
                &IpAddress::Ipv4(s),
                &IpAddress::Ipv4(d),
                payload.len(),
                |b| b.copy_from_slice(payload),
                &caps,
            );
            eth(EthernetProtocol::Ipv4, &b)
        }
    }

    #[test]
    fn a_flipped_bit_anywhere_is_caught() {
        for v6 in [false, true] {
            let good = udp(v6, b"some payload bytes");
            assert!(holds(&good));
            // Every bit the checksums cover: the IPv4 header but its
            // version/length byte and total length (a frame that no longer
            // parses is smoltcp's to drop), IPv6's addresses (in the pseudo
            // header), the whole datagram.
            let from = if v6 { 14 + 8 } else { 14 + 1 };
            for i in from..good.len() {
                if !v6 && (i == 16 || i == 17) {
                    continue;
                }
                for bit in 0..8 {
                    let mut bad = good.clone();
                    bad[i] ^= 1 << bit;
                    let sum_at = if v6 { 14 + 40 + 6 } else { 14 + 20 + 6 };
                    if bad[sum_at] == 0 && bad[sum_at + 1] == 0 {
                        // Flipped to "no checksum".
                        continue;
                    }
                    assert!(!holds(&bad), "v6 {v6}: byte {i} bit {bit} went unseen");
                }
            }
        }
    }

    #[test]
    fn what_cannot_be_checked_passes() {
        // ARP, garbage, a truncated frame: smoltcp's business.
        assert!(holds(&eth(EthernetProtocol::Arp, &[0; 28])));
        assert!(holds(&[1, 2, 3]));
        let good = udp(false, b"x");
        assert!(holds(&good[..20]));
        // A zero UDP checksum over IPv4 means none was computed.
        let mut none = good.clone();
        let at = 14 + 20 + 6;
        none[at] = 0;
        none[at + 1] = 0;
        assert!(holds(&none));
    }
}
