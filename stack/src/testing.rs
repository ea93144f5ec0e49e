//! Helpers for the crate's unit tests: packets built from smoltcp's
//! representations, as another host would send them.

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr, TcpPacket, TcpRepr};

/// An IPv4 packet from `src` to `dst` carrying `tcp`, checksums filled in.
pub(crate) fn ipv4_tcp(src: Ipv4Address, dst: Ipv4Address, tcp: &TcpRepr<'_>) -> Vec<u8> {
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Tcp,
        payload_len: tcp.buffer_len(),
        hop_limit: 64,
    };
    let mut b = vec![0u8; ip.buffer_len() + tcp.buffer_len()];
    let caps = ChecksumCapabilities::default();
    let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
    ip.emit(&mut p, &caps);
    tcp.emit(
        &mut TcpPacket::new_unchecked(p.payload_mut()),
        &src.into(),
        &dst.into(),
        &caps,
    );
    b
}
