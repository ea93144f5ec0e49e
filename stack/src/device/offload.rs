//! Segmentation offload on the TAP, both ways: merging consecutive TCP segments
//! of one connection, or consecutive same-sized UDP datagrams of one flow, into
//! one GSO frame for the kernel (one `write` and one pass through its stack for
//! up to 64 KiB), and completing the partial checksums of the large segments the
//! kernel hands over (`virtio_net_hdr` with `NEEDS_CSUM`). The device
//! ([`super::tap`]) decides when; this module knows the frames.

use super::{DeviceStats, log_rate_limited};
use crate::sys;
use std::os::fd::{AsFd, OwnedFd};

/// A TCP segment or UDP datagram that may be merged: IPv4 without options or
/// fragmentation, or IPv6 without extension headers; for TCP, flags ACK or
/// ACK|PSH; some payload.
pub(crate) struct Segment {
    pub(crate) v6: bool,
    /// Offset of the TCP or UDP header in the frame.
    pub(crate) l4: usize,
    /// Offset of the payload.
    pub(crate) data: usize,
    pub(crate) seq: u32,
    pub(crate) psh: bool,
    /// A UDP datagram (`seq` and `psh` mean nothing then).
    pub(crate) udp: bool,
}

pub(crate) const ETH: usize = 14;
pub(crate) const TCP_ACK: u8 = 0x10;
pub(crate) const TCP_PSH: u8 = 0x08;
pub(crate) const GSO_TCPV4: u8 = 1;
pub(crate) const GSO_TCPV6: u8 = 4;
/// `VIRTIO_NET_HDR_GSO_UDP_L4`: datagrams of `gso_size` bytes (the last may be
/// shorter), each with its own UDP header once cut (Linux 6.2 takes it from a TAP).
pub(crate) const GSO_UDP_L4: u8 = 5;
/// The most datagrams one UDP GSO packet may carry (Linux's `UDP_MAX_SEGMENTS`).
pub(crate) const MAX_UDP_SEGS: usize = 64;
/// Largest IP packet a merged frame may describe.
pub(crate) const MAX_GSO_IP: usize = 65535;

impl Segment {
    pub(crate) fn parse(f: &[u8]) -> Option<Segment> {
        if f.len() < ETH + 28 {
            return None;
        }
        let (v6, l4, proto) = match u16::from_be_bytes([f[12], f[13]]) {
            0x0800 => {
                let ip = &f[ETH..];
                // Version 4, no options, not a fragment (DF is fine).
                if ip[0] != 0x45 || u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
                    return None;
                }
                if u16::from_be_bytes([ip[2], ip[3]]) as usize != f.len() - ETH {
                    return None;
                }
                (false, ETH + 20, ip[9])
            }
            0x86dd => {
                let ip = f.get(ETH..ETH + 40)?;
                if ip[0] >> 4 != 6 {
                    return None;
                }
                if u16::from_be_bytes([ip[4], ip[5]]) as usize != f.len() - ETH - 40 {
                    return None;
                }
                (true, ETH + 40, ip[6])
            }
            _ => return None,
        };
        match proto {
            6 => {
                let tcp = f.get(l4..l4 + 20)?;
                let data = l4 + (tcp[12] >> 4) as usize * 4;
                let flags = tcp[13];
                if data >= f.len() || flags & !(TCP_ACK | TCP_PSH) != 0 || flags & TCP_ACK == 0 {
                    return None;
                }
                Some(Segment {
                    v6,
                    l4,
                    data,
                    seq: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
                    psh: flags & TCP_PSH != 0,
                    udp: false,
                })
            }
            17 => {
                let udp = f.get(l4..l4 + 8)?;
                let data = l4 + 8;
                // Its own length field must agree (the GSO frame's is rewritten).
                if data >= f.len() || u16::from_be_bytes([udp[4], udp[5]]) as usize != f.len() - l4
                {
                    return None;
                }
                Some(Segment {
                    v6,
                    l4,
                    data,
                    seq: 0,
                    psh: false,
                    udp: true,
                })
            }
            _ => None,
        }
    }
}

/// Consecutive full-sized TCP segments of one connection, merged into one frame
/// that the kernel takes as one GSO packet (`virtio_net_hdr` with
/// `VIRTIO_NET_HDR_GSO_TCPV4/6`): one `write` and one trip through the kernel's
/// stack for up to 64 KiB, where there were up to 44. The kernel cuts it into
/// segments again only if it forwards it. Segments merge when everything but the
/// sequence number matches (addresses, ports, ACK, window, TCP options) and they are
/// contiguous; a shorter segment or one with PSH ends the frame.
///
/// UDP datagrams merge the same way (`VIRTIO_NET_HDR_GSO_UDP_L4`): consecutive
/// datagrams of one flow (addresses, ports, IP fields but length, ID and
/// checksum) of the first one's size, up to [`MAX_UDP_SEGS`]; a shorter one ends
/// the frame. The kernel cuts it into the same datagrams (IDs counting up from
/// the first's) before any socket or forwarding sees them: a flood of
/// 64-byte datagrams costs one `write` per 64 instead of one each. A kernel that
/// refuses such a frame (`EINVAL`) gets the datagrams one by one, and no more
/// merged UDP.
pub(crate) struct Batch {
    pub(crate) enabled: bool,
    /// The virtio header and the frame being built.
    pub(crate) buf: Box<[u8]>,
    pub(crate) vnet: usize,
    /// Bytes used in `buf` (0: nothing pending).
    pub(crate) len: usize,
    pub(crate) segs: usize,
    /// Length of the headers (Ethernet, IP, TCP).
    pub(crate) hdr: usize,
    pub(crate) l4: usize,
    pub(crate) mss: usize,
    pub(crate) next_seq: u32,
    pub(crate) v6: bool,
    pub(crate) closed: bool,
    /// The frame holds UDP datagrams.
    pub(crate) udp: bool,
    /// The kernel takes merged UDP frames (cleared when it refuses one).
    pub(crate) udp_ok: bool,
}

impl Batch {
    pub(crate) fn new(vnet: usize) -> Batch {
        Batch {
            enabled: false,
            buf: vec![0u8; vnet + ETH + MAX_GSO_IP].into_boxed_slice(),
            vnet,
            len: 0,
            segs: 0,
            hdr: 0,
            l4: 0,
            mss: 0,
            next_seq: 0,
            v6: false,
            closed: false,
            udp: false,
            udp_ok: true,
        }
    }

    /// Begins a new frame with `f`.
    pub(crate) fn start(&mut self, f: &[u8], s: &Segment) {
        let v = self.vnet;
        self.buf[v..v + f.len()].copy_from_slice(f);
        self.len = v + f.len();
        self.segs = 1;
        self.hdr = s.data;
        self.l4 = s.l4;
        self.mss = f.len() - s.data;
        self.next_seq = s.seq.wrapping_add(self.mss as u32);
        self.v6 = s.v6;
        self.udp = s.udp;
        self.closed = s.psh;
    }

    /// Adds `f` to the frame if it continues it; false if it does not.
    pub(crate) fn append(&mut self, f: &[u8], s: &Segment) -> bool {
        let v = self.vnet;
        let payload = f.len() - s.data;
        if self.segs == 0
            || self.closed
            || s.v6 != self.v6
            || s.udp != self.udp
            || s.data != self.hdr
            || (!s.udp && s.seq != self.next_seq)
            || (s.udp && self.segs >= MAX_UDP_SEGS)
            || payload > self.mss
            || self.len - v - ETH + payload > MAX_GSO_IP
        {
            return false;
        }
        let head = &self.buf[v..v + self.hdr];
        // Ethernet header; IP header except length, ID and checksum; TCP header and
        // options except sequence number and checksum (and PSH, allowed on the last).
        let same = |a: std::ops::Range<usize>| head[a.clone()] == f[a];
        let ip_same = if s.v6 {
            same(0..ETH + 4) && same(ETH + 6..ETH + 40)
        } else {
            same(0..ETH + 2) && same(ETH + 6..ETH + 10) && same(ETH + 12..ETH + 20)
        };
        let l4 = s.l4;
        if s.udp {
            // Ports; the length and checksum are the frame's own.
            if !(ip_same && same(l4..l4 + 4)) {
                return false;
            }
            self.buf[self.len..self.len + payload].copy_from_slice(&f[s.data..]);
            self.len += payload;
            self.segs += 1;
            self.closed = payload < self.mss;
            return true;
        }
        let tcp_same = same(l4..l4 + 4)
            && same(l4 + 8..l4 + 13)
            && head[l4 + 13] & !TCP_PSH == f[l4 + 13] & !TCP_PSH
            && same(l4 + 14..l4 + 16)
            && same(l4 + 18..s.data);
        if !(ip_same && tcp_same) {
            return false;
        }
        self.buf[self.len..self.len + payload].copy_from_slice(&f[s.data..]);
        self.len += payload;
        self.segs += 1;
        self.next_seq = self.next_seq.wrapping_add(payload as u32);
        if s.psh {
            self.buf[v + l4 + 13] |= TCP_PSH;
        }
        self.closed = s.psh || payload < self.mss;
        true
    }

    /// Writes the pending frame: as it is if it holds one segment, else as a GSO
    /// frame with its lengths and checksums made for the kernel to finish.
    pub(crate) fn flush(&mut self, fd: &OwnedFd, name: &str, stats: &mut DeviceStats) {
        if self.len == 0 {
            return;
        }
        let v = self.vnet;
        if self.segs > 1 {
            self.make_gso();
        }
        match sys::write(fd.as_fd(), &self.buf[..self.len]) {
            Ok(_) => {
                stats.tx_frames += self.segs as u64;
                stats.tx_bytes += (self.len - v) as u64;
            }
            Err(e) if self.udp && self.segs > 1 && e.raw_os_error() == Some(libc::EINVAL) => {
                log::warn!(
                    "{name}: the kernel refuses merged UDP datagrams ({e}); sending them one by one"
                );
                self.udp_ok = false;
                self.write_each(fd, name, stats);
            }
            Err(e) => {
                stats.tx_errors += 1;
                log_rate_limited(stats.tx_errors, &format!("{name}: write"), &e);
            }
        }
        self.buf[..v].fill(0);
        self.len = 0;
        self.segs = 0;
    }

    /// Makes the pending frame of several segments a GSO frame: the IP and UDP
    /// lengths of the whole, the IPv4 header checksum, the transport checksum's
    /// partial sum (the pseudo-header's) and the virtio header.
    fn make_gso(&mut self) {
        let v = self.vnet;
        let (l4, total) = (self.l4, self.len - v);
        let frame = &mut self.buf[v..self.len];
        let l4_len = total - l4;
        let proto = if self.udp { 17 } else { 6 };
        let pseudo = set_ip_length(frame, self.v6, l4_len, proto);
        // A partial checksum: the pseudo-header's sum, folded, not inverted.
        let check_at = if self.udp {
            frame[l4 + 4..l4 + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            6
        } else {
            16
        };
        frame[l4 + check_at..l4 + check_at + 2].copy_from_slice(&fold(pseudo).to_be_bytes());
        let h = &mut self.buf[..v];
        h[0] = NEEDS_CSUM;
        h[1] = match (self.udp, self.v6) {
            (true, _) => GSO_UDP_L4,
            (false, true) => GSO_TCPV6,
            (false, false) => GSO_TCPV4,
        };
        h[2..4].copy_from_slice(&(self.hdr as u16).to_le_bytes());
        h[4..6].copy_from_slice(&(self.mss as u16).to_le_bytes());
        h[6..8].copy_from_slice(&(l4 as u16).to_le_bytes());
        h[8..10].copy_from_slice(&(check_at as u16).to_le_bytes());
    }

    /// Writes the merged UDP datagrams of the pending frame one by one, each
    /// with its own lengths and (partial) checksum, for a kernel that refused
    /// the merged frame.
    fn write_each(&mut self, fd: &OwnedFd, name: &str, stats: &mut DeviceStats) {
        let (v, hdr, l4) = (self.vnet, self.hdr, self.l4);
        let mut one = vec![0u8; v + hdr + self.mss];
        let mut at = v + hdr;
        let mut id = u16::from_be_bytes([self.buf[v + ETH + 4], self.buf[v + ETH + 5]]);
        while at < self.len {
            let n = self.mss.min(self.len - at);
            one[..v + hdr].copy_from_slice(&self.buf[..v + hdr]);
            one[v + hdr..v + hdr + n].copy_from_slice(&self.buf[at..at + n]);
            let frame = &mut one[v..v + hdr + n];
            let l4_len = hdr - l4 + n;
            if !self.v6 {
                frame[ETH + 4..ETH + 6].copy_from_slice(&id.to_be_bytes());
                id = id.wrapping_add(1);
            }
            let pseudo = set_ip_length(frame, self.v6, l4_len, 17);
            frame[l4 + 4..l4 + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            frame[l4 + 6..l4 + 8].copy_from_slice(&fold(pseudo).to_be_bytes());
            // Checksum offload alone: the kernel finishes the partial sum.
            one[1] = 0;
            match sys::write(fd.as_fd(), &one[..v + hdr + n]) {
                Ok(_) => {
                    stats.tx_frames += 1;
                    stats.tx_bytes += (hdr + n) as u64;
                }
                Err(e) => {
                    stats.tx_errors += 1;
                    log_rate_limited(stats.tx_errors, &format!("{name}: write"), &e);
                }
            }
            at += n;
        }
    }
}

/// Sets the IP length fields of `frame` (Ethernet, then IPv4 without options
/// or IPv6) for a transport part of `l4_len` bytes, and the IPv4 header
/// checksum; returns the pseudo-header's sum for transport `proto`, unfolded.
fn set_ip_length(frame: &mut [u8], v6: bool, l4_len: usize, proto: u32) -> u32 {
    if v6 {
        frame[ETH + 4..ETH + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        return sum16(&frame[ETH + 8..ETH + 40]) + proto + l4_len as u32;
    }
    frame[ETH + 2..ETH + 4].copy_from_slice(&((20 + l4_len) as u16).to_be_bytes());
    frame[ETH + 10] = 0;
    frame[ETH + 11] = 0;
    let c = !fold(sum16(&frame[ETH..ETH + 20]));
    frame[ETH + 10..ETH + 12].copy_from_slice(&c.to_be_bytes());
    sum16(&frame[ETH + 12..ETH + 20]) + proto + l4_len as u32
}

/// The 16-bit one's-complement sum of `b` (big-endian words), unfolded.
pub(crate) fn sum16(b: &[u8]) -> u32 {
    let mut sum: u32 = 0;
    let mut chunks = b.chunks_exact(2);
    for c in &mut chunks {
        sum += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [last] = chunks.remainder() {
        sum += (*last as u32) << 8;
    }
    sum
}

pub(crate) fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the frame's transport checksum holds only the
/// pseudo-header sum; the sum over `csum_start..` is still to be added.
pub(crate) const NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: the kernel (or a NIC) has checked the frame's
/// checksums.
pub(crate) const DATA_VALID: u8 = 2;

/// Completes the checksum of an offloaded frame (`buf` = virtio header + frame), so
/// that verification sees what a wire would carry. Headers it cannot make sense of
/// are left alone (the frame then fails verification, as a corrupt one should).
pub(crate) fn finish_partial_checksum(buf: &mut [u8]) {
    let v = sys::VNET_HDR_LEN;
    if buf.len() < v || buf[0] & NEEDS_CSUM == 0 {
        return;
    }
    let start = u16::from_le_bytes([buf[6], buf[7]]) as usize;
    let offset = u16::from_le_bytes([buf[8], buf[9]]) as usize;
    let frame = &mut buf[v..];
    if start + offset + 2 > frame.len() {
        return;
    }
    let sum = !fold(sum16(&frame[start..]));
    frame[start + offset..start + offset + 2].copy_from_slice(&sum.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Flushes `b`, which holds `segs` segments, and returns what it wrote
    /// (virtio header and frame).
    fn flushed(b: &mut Batch, segs: u64) -> Vec<u8> {
        let (r, w) = sys::stream_pair().unwrap();
        let mut stats = DeviceStats::default();
        b.flush(&w, "test", &mut stats);
        assert_eq!(stats.tx_frames, segs);
        let mut out = vec![0u8; 8192];
        let n = sys::read(r.as_fd(), &mut out).unwrap();
        out.truncate(n);
        out
    }

    /// An IPv4 TCP frame: 1000 bytes of payload at `seq`, acking `ack`.
    fn segment(seq: u32, ack: u32, flags: u8, len: usize) -> Vec<u8> {
        let mut f = vec![0u8; ETH];
        f[12] = 0x08;
        let total = 20 + 20 + len;
        f.extend_from_slice(&[
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            1,
            0x40,
            0,
            64,
            6,
            0,
            0,
        ]);
        f.extend_from_slice(&[10, 0, 0, 2, 10, 0, 0, 1]);
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&5000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
        tcp[4..8].copy_from_slice(&seq.to_be_bytes());
        tcp[8..12].copy_from_slice(&ack.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = flags;
        tcp[14..16].copy_from_slice(&1000u16.to_be_bytes());
        f.extend_from_slice(&tcp);
        f.extend((0..len).map(|i| (seq as usize + i) as u8));
        f
    }

    /// Contiguous full segments of one connection merge; a gap, another ACK, a PSH
    /// or a shorter segment ends the frame; the flushed frame is a GSO frame whose
    /// header, lengths and partial checksum describe the whole.
    #[test]
    fn segments_merge_into_one_gso_frame() {
        let mut b = Batch::new(sys::VNET_HDR_LEN);
        let s = |f: &[u8]| Segment::parse(f).expect("eligible");
        let f1 = segment(1000, 7, TCP_ACK, 1000);
        b.start(&f1, &s(&f1));
        let f2 = segment(2000, 7, TCP_ACK, 1000);
        assert!(b.append(&f2, &s(&f2)));
        let gap = segment(4000, 7, TCP_ACK, 1000);
        assert!(!b.append(&gap, &s(&gap)), "not contiguous");
        let other_ack = segment(3000, 8, TCP_ACK, 1000);
        assert!(!b.append(&other_ack, &s(&other_ack)), "another ACK number");
        let f3 = segment(3000, 7, TCP_ACK | TCP_PSH, 500);
        assert!(b.append(&f3, &s(&f3)));
        let f4 = segment(3500, 7, TCP_ACK, 1000);
        assert!(
            !b.append(&f4, &s(&f4)),
            "PSH and a short segment end the frame"
        );
        assert!(
            Segment::parse(&segment(1, 1, TCP_ACK | 0x02, 10)).is_none(),
            "SYN"
        );
        assert!(
            Segment::parse(&segment(1, 1, TCP_ACK, 0)).is_none(),
            "no payload"
        );

        let out = flushed(&mut b, 3);
        let (h, frame) = out.split_at(sys::VNET_HDR_LEN);
        assert_eq!(h[0], NEEDS_CSUM);
        assert_eq!(h[1], GSO_TCPV4);
        assert_eq!(u16::from_le_bytes([h[2], h[3]]), 54, "header length");
        assert_eq!(u16::from_le_bytes([h[4], h[5]]), 1000, "segment size");
        assert_eq!(u16::from_le_bytes([h[6], h[7]]), 34, "checksum start");
        assert_eq!(frame.len(), 54 + 2500);
        assert_eq!(
            u16::from_be_bytes([frame[16], frame[17]]) as usize,
            20 + 20 + 2500
        );
        assert_eq!(
            fold(sum16(&frame[ETH..ETH + 20])),
            0xffff,
            "IPv4 header checksum"
        );
        assert_eq!(
            frame[ETH + 20 + 13],
            TCP_ACK | TCP_PSH,
            "PSH of the last segment"
        );
        let payload: Vec<u8> = [&f1[54..], &f2[54..], &f3[54..]].concat();
        assert_eq!(&frame[54..], &payload[..]);
        // Finishing the partial checksum gives the checksum of the whole segment.
        let mut copy = out.clone();
        finish_partial_checksum(&mut copy);
        let tcp = &copy[sys::VNET_HDR_LEN + 34..];
        let pseudo = sum16(&frame[26..34]) + 6 + tcp.len() as u32;
        assert_eq!(fold(pseudo + sum16(tcp)), 0xffff, "TCP checksum");
    }

    /// A frame as the kernel hands it over with TSO offload: the TCP checksum field
    /// holds the pseudo-header sum only. Completing it must give the checksum a wire
    /// would carry.
    #[test]
    fn partial_checksum_is_completed() {
        let payload: Vec<u8> = (0..3001u32).map(|i| (i * 7) as u8).collect();
        let (src, dst) = ([10, 0, 0, 1], [10, 0, 0, 2]);
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&80u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&4321u16.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = 0x18;
        tcp.extend_from_slice(&payload);
        let tcp_len = tcp.len() as u32;
        let pseudo = sum16(&src) + sum16(&dst) + 6 + tcp_len;
        let full = !fold(pseudo + sum16(&tcp));
        // The frame: virtio header, Ethernet, IPv4 (20), TCP with the partial sum.
        let mut buf = vec![0u8; sys::VNET_HDR_LEN];
        buf[0] = NEEDS_CSUM;
        buf[6..8].copy_from_slice(&(14u16 + 20).to_le_bytes());
        buf[8..10].copy_from_slice(&16u16.to_le_bytes());
        buf.extend_from_slice(&[0u8; 14]);
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 6, 0, 0];
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        buf.extend_from_slice(&ip);
        let mut partial = tcp.clone();
        partial[16..18].copy_from_slice(&fold(pseudo).to_be_bytes());
        buf.extend_from_slice(&partial);
        finish_partial_checksum(&mut buf);
        let at = sys::VNET_HDR_LEN + 14 + 20 + 16;
        assert_eq!(u16::from_be_bytes([buf[at], buf[at + 1]]), full);
        // Without NEEDS_CSUM nothing changes; a header pointing past the end is ignored.
        let before = buf.clone();
        buf[0] = 0;
        finish_partial_checksum(&mut buf);
        assert_eq!(
            buf,
            before
                .iter()
                .enumerate()
                .map(|(i, b)| if i == 0 { 0 } else { *b })
                .collect::<Vec<_>>()
        );
        buf[0] = NEEDS_CSUM;
        buf[6..8].copy_from_slice(&u16::MAX.to_le_bytes());
        let kept = buf.clone();
        finish_partial_checksum(&mut buf);
        assert_eq!(buf, kept);
    }

    /// An IPv4 UDP datagram from 10.0.0.2:`sport` to 10.0.0.1:53 with IP ID
    /// `id`, `len` bytes of `fill`, its checksums complete.
    fn datagram(sport: u16, id: u16, fill: u8, len: usize) -> Vec<u8> {
        let mut f = vec![0u8; ETH];
        f[12] = 0x08;
        let total = 20 + 8 + len;
        let mut ip = vec![0x45, 0, (total >> 8) as u8, total as u8];
        ip.extend_from_slice(&id.to_be_bytes());
        ip.extend_from_slice(&[0, 0, 64, 17, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1]);
        let c = !fold(sum16(&ip));
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
        let mut udp = Vec::new();
        udp.extend_from_slice(&sport.to_be_bytes());
        udp.extend_from_slice(&53u16.to_be_bytes());
        udp.extend_from_slice(&((8 + len) as u16).to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.extend(std::iter::repeat_n(fill, len));
        let pseudo = sum16(&ip[12..20]) + 17 + udp.len() as u32;
        let c = !fold(pseudo + sum16(&udp));
        udp[6..8].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&udp);
        f
    }

    /// The UDP checksum of `frame` (Ethernet, IPv4, UDP) checks out.
    fn udp_checksum_ok(frame: &[u8]) -> bool {
        let udp = &frame[ETH + 20..];
        fold(sum16(&frame[ETH + 12..ETH + 20]) + 17 + udp.len() as u32 + sum16(udp)) == 0xffff
    }

    /// Same-sized datagrams of one flow merge into one UDP GSO frame; another
    /// port, a larger datagram, or anything after a shorter one does not join;
    /// the flushed frame's virtio header, lengths and partial checksum describe
    /// the whole, as the kernel cuts it.
    #[test]
    fn datagrams_merge_into_one_udp_gso_frame() {
        let mut b = Batch::new(sys::VNET_HDR_LEN);
        let s = |f: &[u8]| Segment::parse(f).expect("eligible");
        let d1 = datagram(4000, 1, b'a', 64);
        assert!(s(&d1).udp);
        b.start(&d1, &s(&d1));
        let d2 = datagram(4000, 2, b'b', 64);
        assert!(b.append(&d2, &s(&d2)));
        let other = datagram(4001, 3, b'x', 64);
        assert!(!b.append(&other, &s(&other)), "another flow");
        let larger = datagram(4000, 3, b'x', 65);
        assert!(!b.append(&larger, &s(&larger)), "larger than the first");
        let d3 = datagram(4000, 3, b'c', 10);
        assert!(b.append(&d3, &s(&d3)), "a shorter last one");
        let d4 = datagram(4000, 4, b'd', 10);
        assert!(!b.append(&d4, &s(&d4)), "nothing after a shorter one");
        let tcp = segment(1, 1, TCP_ACK, 10);
        assert!(!b.append(&tcp, &s(&tcp)), "not TCP into UDP");
        let mut bad_len = datagram(4000, 5, b'e', 64);
        bad_len[ETH + 20 + 5] ^= 1;
        assert!(Segment::parse(&bad_len).is_none(), "a UDP length that lies");

        let out = flushed(&mut b, 3);
        let (h, frame) = out.split_at(sys::VNET_HDR_LEN);
        assert_eq!(h[0], NEEDS_CSUM);
        assert_eq!(h[1], GSO_UDP_L4);
        assert_eq!(u16::from_le_bytes([h[2], h[3]]), 42, "header length");
        assert_eq!(u16::from_le_bytes([h[4], h[5]]), 64, "datagram size");
        assert_eq!(u16::from_le_bytes([h[6], h[7]]), 34, "checksum start");
        assert_eq!(u16::from_le_bytes([h[8], h[9]]), 6, "checksum offset");
        assert_eq!(frame.len(), 42 + 138);
        assert_eq!(u16::from_be_bytes([frame[16], frame[17]]), 20 + 8 + 138);
        assert_eq!(
            u16::from_be_bytes([frame[38], frame[39]]),
            8 + 138,
            "UDP length"
        );
        assert_eq!(
            fold(sum16(&frame[ETH..ETH + 20])),
            0xffff,
            "IPv4 header checksum"
        );
        let payload: Vec<u8> = [&d1[42..], &d2[42..], &d3[42..]].concat();
        assert_eq!(&frame[42..], &payload[..]);
        let mut copy = out.clone();
        finish_partial_checksum(&mut copy);
        assert!(
            udp_checksum_ok(&copy[sys::VNET_HDR_LEN..]),
            "UDP checksum of the whole"
        );
        // At most MAX_UDP_SEGS datagrams in one frame.
        let mut b = Batch::new(sys::VNET_HDR_LEN);
        let one = datagram(4000, 0, b'z', 8);
        b.start(&one, &s(&one));
        let merged = (1..100).take_while(|_| b.append(&one, &s(&one))).count();
        assert_eq!(merged + 1, MAX_UDP_SEGS);
    }

    /// For a kernel that refuses merged datagrams, they go out one by one:
    /// each the datagram it was, with its own lengths, ID and a checksum the
    /// kernel completes.
    #[test]
    fn refused_datagrams_go_out_one_by_one() {
        let mut b = Batch::new(sys::VNET_HDR_LEN);
        let s = |f: &[u8]| Segment::parse(f).expect("eligible");
        let ds = [
            datagram(4000, 7, b'a', 64),
            datagram(4000, 8, b'b', 64),
            datagram(4000, 9, b'c', 20),
        ];
        b.start(&ds[0], &s(&ds[0]));
        assert!(b.append(&ds[1], &s(&ds[1])) && b.append(&ds[2], &s(&ds[2])));
        b.make_gso();
        let (r, w) = sys::seqpacket_pair().unwrap();
        let mut stats = DeviceStats::default();
        b.write_each(&w, "test", &mut stats);
        assert_eq!(stats.tx_frames, 3);
        for d in &ds {
            let mut out = vec![0u8; 4096];
            let n = sys::read(r.as_fd(), &mut out).unwrap();
            let (h, frame) = out[..n].split_at(sys::VNET_HDR_LEN);
            assert_eq!((h[0], h[1]), (NEEDS_CSUM, 0), "checksum offload, no GSO");
            assert_eq!(frame.len(), d.len());
            assert_eq!(&frame[..ETH + 10], &d[..ETH + 10], "lengths and ID");
            assert_eq!(&frame[ETH + 12..ETH + 26], &d[ETH + 12..ETH + 26]);
            assert_eq!(&frame[ETH + 28..], &d[ETH + 28..], "payload");
            assert_eq!(fold(sum16(&frame[ETH..ETH + 20])), 0xffff);
            let mut copy = out[..n].to_vec();
            finish_partial_checksum(&mut copy);
            assert!(udp_checksum_ok(&copy[sys::VNET_HDR_LEN..]));
        }
    }
}
