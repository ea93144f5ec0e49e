//! Segmentation offload on the TAP, both ways: merging consecutive TCP segments
//! of one connection into one GSO frame for the kernel (one `write` and one pass
//! through its stack for up to 64 KiB), and completing the partial checksums of the
//! large segments the kernel hands over (`virtio_net_hdr` with `NEEDS_CSUM`). The
//! device ([`super::tap`]) decides when; this module knows the frames.

use super::{DeviceStats, log_rate_limited};
use crate::sys;
use std::os::fd::{AsFd, OwnedFd};

/// A TCP segment that may be merged: IPv4 without options or fragmentation, or IPv6
/// without extension headers; flags ACK or ACK|PSH; some payload.
pub(crate) struct Segment {
    pub(crate) v6: bool,
    /// Offset of the TCP header in the frame.
    pub(crate) l4: usize,
    /// Offset of the payload.
    pub(crate) data: usize,
    pub(crate) seq: u32,
    pub(crate) psh: bool,
}

pub(crate) const ETH: usize = 14;
pub(crate) const TCP_ACK: u8 = 0x10;
pub(crate) const TCP_PSH: u8 = 0x08;
pub(crate) const GSO_TCPV4: u8 = 1;
pub(crate) const GSO_TCPV6: u8 = 4;
/// Largest IP packet a merged frame may describe.
pub(crate) const MAX_GSO_IP: usize = 65535;

impl Segment {
    pub(crate) fn parse(f: &[u8]) -> Option<Segment> {
        if f.len() < ETH + 40 {
            return None;
        }
        let (v6, l4) = match u16::from_be_bytes([f[12], f[13]]) {
            0x0800 => {
                let ip = &f[ETH..];
                // Version 4, no options, TCP, not a fragment (DF is fine).
                if ip[0] != 0x45 || ip[9] != 6 || u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
                    return None;
                }
                if u16::from_be_bytes([ip[2], ip[3]]) as usize != f.len() - ETH {
                    return None;
                }
                (false, ETH + 20)
            }
            0x86dd => {
                let ip = &f[ETH..];
                if ip[0] >> 4 != 6 || ip[6] != 6 {
                    return None;
                }
                if u16::from_be_bytes([ip[4], ip[5]]) as usize != f.len() - ETH - 40 {
                    return None;
                }
                (true, ETH + 40)
            }
            _ => return None,
        };
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
        })
    }
}

/// Consecutive full-sized TCP segments of one connection, merged into one frame
/// that the kernel takes as one GSO packet (`virtio_net_hdr` with
/// `VIRTIO_NET_HDR_GSO_TCPV4/6`): one `write` and one trip through the kernel's
/// stack for up to 64 KiB, where there were up to 44. The kernel cuts it into
/// segments again only if it forwards it. Segments merge when everything but the
/// sequence number matches (addresses, ports, ACK, window, TCP options) and they are
/// contiguous; a shorter segment or one with PSH ends the frame.
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
        self.closed = s.psh;
    }

    /// Adds `f` to the frame if it continues it; false if it does not.
    pub(crate) fn append(&mut self, f: &[u8], s: &Segment) -> bool {
        let v = self.vnet;
        let payload = f.len() - s.data;
        if self.segs == 0
            || self.closed
            || s.v6 != self.v6
            || s.data != self.hdr
            || s.seq != self.next_seq
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
            let (l4, total) = (self.l4, self.len - v);
            let frame = &mut self.buf[v..self.len];
            let tcp_len = total - l4;
            let pseudo = if self.v6 {
                frame[ETH + 4..ETH + 6].copy_from_slice(&(tcp_len as u16).to_be_bytes());
                sum16(&frame[ETH + 8..ETH + 40]) + 6 + tcp_len as u32
            } else {
                frame[ETH + 2..ETH + 4].copy_from_slice(&((total - ETH) as u16).to_be_bytes());
                frame[ETH + 10] = 0;
                frame[ETH + 11] = 0;
                let c = !fold(sum16(&frame[ETH..ETH + 20]));
                frame[ETH + 10..ETH + 12].copy_from_slice(&c.to_be_bytes());
                sum16(&frame[ETH + 12..ETH + 20]) + 6 + tcp_len as u32
            };
            // A partial checksum: the pseudo-header's sum, folded, not inverted.
            frame[l4 + 16..l4 + 18].copy_from_slice(&fold(pseudo).to_be_bytes());
            let h = &mut self.buf[..v];
            h[0] = NEEDS_CSUM;
            h[1] = if self.v6 { GSO_TCPV6 } else { GSO_TCPV4 };
            h[2..4].copy_from_slice(&(self.hdr as u16).to_le_bytes());
            h[4..6].copy_from_slice(&(self.mss as u16).to_le_bytes());
            h[6..8].copy_from_slice(&(l4 as u16).to_le_bytes());
            h[8..10].copy_from_slice(&16u16.to_le_bytes());
        }
        match sys::write(fd.as_fd(), &self.buf[..self.len]) {
            Ok(_) => {
                stats.tx_frames += self.segs as u64;
                stats.tx_bytes += (self.len - v) as u64;
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

        let (r, w) = sys::stream_pair().unwrap();
        let mut stats = DeviceStats::default();
        b.flush(&w, "test", &mut stats);
        assert_eq!(stats.tx_frames, 3);
        let mut out = vec![0u8; 8192];
        let n = sys::read(r.as_fd(), &mut out).unwrap();
        let (h, frame) = out[..n].split_at(sys::VNET_HDR_LEN);
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
        let mut copy = out[..n].to_vec();
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
}
