//! Loss recovery for smoltcp's TCP senders, driven by the peer's SACK blocks.
//!
//! # Why
//!
//! smoltcp 0.14 retransmits a lost segment early (before its retransmission
//! timeout, whose floor is one second) only on the third *duplicate* ACK, and it
//! counts an ACK as a duplicate only while the peer's advertised window stays
//! the same. A Linux receiver moves its window with nearly every ACK while its
//! program reads, so those ACKs never count: on a link losing 10 % of its
//! packets every lost segment cost smoltcp a full second (measured: 256 KiB
//! took 57–107 s to leave a container, against 0.24 s between two kernels on the
//! same wire). It also retransmits only the first hole once per three
//! duplicates, so a window with several losses recovers one second at a time.
//!
//! # What
//!
//! This module watches the pure ACKs arriving for the container's connections.
//! A SACK block above the acknowledged point says the segment at that point is
//! missing. After three such ACKs at one point — or at once after a partial
//! ACK during a recovery, when the next hole is known to be lost (RFC 6675) —
//! it hands smoltcp copies of that ACK arranged so that smoltcp's own
//! duplicate counter reaches three: the first copy with its window moved by
//! one (smoltcp resets its counter on a window change), one as it came (the
//! window changes back: reset again), then three alike. smoltcp then
//! retransmits the first unacknowledged segment from its own buffer, and its
//! congestion controller enters fast recovery, as for dup ACKs it counted
//! itself. If the hole is still there a round trip later while more data is
//! SACKed above it (the retransmission was lost too), it does so again.
//!
//! Nothing is retransmitted here and no TCP state is kept beyond a few numbers
//! per connection in recovery: smoltcp stays the one implementation of TCP. The
//! copies never pass the filter or the capture (they are not traffic).
//!
//! # Limits
//!
//! At most [`MAX_TRACKED`] connections are tracked at once (others recover
//! as smoltcp alone would) and at most [`MAX_QUEUED`] copies wait; an ACK
//! from the wire makes at most five copies. A peer without SACK gets
//! smoltcp's own recovery.

use smoltcp::phy::Medium;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpAddress, IpProtocol, Ipv4Packet, Ipv6Packet, TcpOption,
    TcpPacket,
};
use std::collections::{HashMap, VecDeque};

use super::IfaceId;

/// Connections in recovery tracked at once.
pub const MAX_TRACKED: usize = 4096;
/// Copies waiting to be received.
pub const MAX_QUEUED: usize = 64;
/// The largest ACK frame copied (a pure ACK with every option is far smaller).
const MAX_COPY: usize = 256;
/// ACKs at one point, each with data SACKed above it, before the segment at
/// that point counts as lost (the classic duplicate threshold).
const DUP_THRESHOLD: u32 = 3;
/// The round trip assumed before one was seen in a recovery.
const FIRST_RTT: Duration = Duration::from_millis(10);

/// A connection whose peer reported a hole: the point, what was seen since.
#[derive(Clone, Copy, Debug)]
struct Hole {
    /// The acknowledged point (the first byte the peer misses).
    ack: u32,
    /// ACKs seen at this point with data SACKed above it.
    dups: u32,
    /// When this point's segment was last retransmitted (by smoltcp, at our
    /// prompting); `None` before.
    prompted: Option<Instant>,
    /// The highest SACKed byte when it was.
    high: u32,
    /// Whether the connection is in a recovery (a prompt was made and the hole
    /// has not closed since).
    recovering: bool,
    /// The round trip of a prompted retransmission (prompt to the ACK past it).
    rtt: Duration,
}

/// The connection an ACK belongs to: (peer address, peer port, our address,
/// our port).
type Key = (IpAddress, u16, IpAddress, u16);

/// What [`Recovery`] did (for `netcell stats` and tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Retransmissions prompted.
    pub prompts: u64,
    /// Of which again for a hole already prompted (the retransmission was lost).
    pub again: u64,
}

/// SACK-driven fast retransmit for every interface (see the module docs).
#[derive(Default)]
pub struct Recovery {
    holes: HashMap<Key, Hole>,
    queue: VecDeque<(IfaceId, Vec<u8>)>,
    spare: Vec<Vec<u8>>,
    counters: Counters,
}

/// The parts of a pure ACK that recovery looks at.
struct Ack {
    key: Key,
    ack: u32,
    window: u16,
    /// The highest SACKed byte above `ack`, if any.
    sacked: Option<u32>,
    /// Where the TCP header starts in the frame, and the IP addresses (to fix
    /// the checksum of the copy whose window moves).
    tcp_at: usize,
}

fn seq_gt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// A pure ACK (no data, no SYN/FIN/RST) in `frame`. Checksums are not
/// checked: the device has dropped what the kernel did not vouch for (see
/// [`crate::device::checksum`]), and an offloaded frame's TCP checksum holds
/// only the pseudo-header's sum. (A corrupted ACK on a device that checks
/// nothing costs at most one needless retransmission.)
fn parse_ack(medium: Medium, frame: &[u8]) -> Option<Ack> {
    let l3 = match medium {
        Medium::Ethernet => {
            let eth = EthernetFrame::new_checked(frame).ok()?;
            if !matches!(
                eth.ethertype(),
                EthernetProtocol::Ipv4 | EthernetProtocol::Ipv6
            ) {
                return None;
            }
            EthernetFrame::<&[u8]>::header_len()
        }
        _ => 0,
    };
    let ip = &frame[l3..];
    let (src, dst, tcp_off, tcp_len) = match ip.first()? >> 4 {
        4 => {
            let p = Ipv4Packet::new_checked(ip).ok()?;
            if p.next_header() != IpProtocol::Tcp || p.more_frags() || p.frag_offset() != 0 {
                return None;
            }
            let hl = p.header_len() as usize;
            let tl = p.total_len() as usize;
            (
                IpAddress::Ipv4(p.src_addr()),
                IpAddress::Ipv4(p.dst_addr()),
                hl,
                tl.checked_sub(hl)?,
            )
        }
        6 => {
            let p = Ipv6Packet::new_checked(ip).ok()?;
            if p.next_header() != IpProtocol::Tcp {
                return None;
            }
            (
                IpAddress::Ipv6(p.src_addr()),
                IpAddress::Ipv6(p.dst_addr()),
                40,
                p.payload_len() as usize,
            )
        }
        _ => return None,
    };
    let seg = ip.get(tcp_off..tcp_off.checked_add(tcp_len)?)?;
    let t = TcpPacket::new_checked(seg).ok()?;
    if !t.ack()
        || t.syn()
        || t.fin()
        || t.rst()
        || t.urg()
        || t.header_len() as usize != seg.len()
        || t.window_len() == 0
    {
        return None;
    }
    let ack = t.ack_number().0 as u32;
    let mut sacked: Option<u32> = None;
    let mut opts = t.options();
    while !opts.is_empty() {
        let Ok((rest, opt)) = TcpOption::parse(opts) else {
            break;
        };
        if let TcpOption::SackRange(ranges) = opt {
            for (_, right) in ranges.iter().flatten() {
                if seq_gt(*right, ack) && sacked.is_none_or(|s| seq_gt(*right, s)) {
                    sacked = Some(*right);
                }
            }
        }
        if matches!(opt, TcpOption::EndOfList) {
            break;
        }
        opts = rest;
    }
    Some(Ack {
        key: (src, t.src_port(), dst, t.dst_port()),
        ack,
        window: t.window_len(),
        sacked,
        tcp_at: l3 + tcp_off,
    })
}

impl Recovery {
    /// Looks at a frame received on `iface` that smoltcp is about to process;
    /// queues copies of it when a lost segment should be retransmitted now.
    pub fn observe(&mut self, iface: IfaceId, medium: Medium, frame: &[u8], now: Instant) {
        // Cheap refusals first: only TCP segments with options beyond the
        // timestamps can carry SACK blocks; while nothing is tracked nothing
        // else matters.
        if self.holes.is_empty() && !may_carry_sack(medium, frame) {
            return;
        }
        let Some(a) = parse_ack(medium, frame) else {
            return;
        };
        let Some(high) = a.sacked else {
            // No hole reported: a recovery this connection was in is over.
            self.holes.remove(&a.key);
            return;
        };
        let prompt = match self.holes.get_mut(&a.key) {
            None => {
                if self.holes.len() >= MAX_TRACKED {
                    return;
                }
                self.holes.insert(
                    a.key,
                    Hole {
                        ack: a.ack,
                        dups: 1,
                        prompted: None,
                        high,
                        recovering: false,
                        rtt: FIRST_RTT,
                    },
                );
                false
            }
            Some(h) if h.ack == a.ack => {
                h.dups += 1;
                match h.prompted {
                    None => h.dups >= DUP_THRESHOLD,
                    // Lost again: a round trip passed, more was SACKed above.
                    Some(at) => now >= at + h.rtt + h.rtt / 2 && seq_gt(high, h.high),
                }
            }
            Some(h) if seq_gt(a.ack, h.ack) => {
                // A partial ACK: the prompted segment arrived; the next hole,
                // below data the peer holds, is lost too.
                if let Some(at) = h.prompted {
                    let sample = now - at;
                    h.rtt = ((h.rtt * 3 + sample) / 4)
                        .max(Duration::from_millis(1))
                        .min(Duration::from_millis(500));
                }
                let in_recovery = h.recovering;
                h.ack = a.ack;
                h.dups = 1;
                h.prompted = None;
                in_recovery
            }
            // An ACK from before the last one (reordered): nothing new.
            Some(_) => false,
        };
        if !prompt || self.queue.len() + 5 > MAX_QUEUED || frame.len() > MAX_COPY {
            return;
        }
        let Some(h) = self.holes.get_mut(&a.key) else {
            return;
        };
        if h.prompted.is_some() {
            self.counters.again += 1;
        }
        log::debug!(
            "{}:{} -> {}:{}: segment at {} lost (SACKed up to {high}), retransmit prompted",
            a.key.0,
            a.key.1,
            a.key.2,
            a.key.3,
            a.ack
        );
        h.prompted = Some(now);
        h.high = high;
        h.recovering = true;
        self.counters.prompts += 1;
        // The window moved by one: smoltcp's duplicate count restarts.
        let mut moved = self.copy(frame);
        set_window(&mut moved, a.tcp_at, a.window ^ 1, &a.key);
        self.queue.push_back((iface, moved));
        // As it came (the window moves back: restarts again), then three alike.
        for _ in 0..4 {
            let c = self.copy(frame);
            self.queue.push_back((iface, c));
        }
    }

    fn copy(&mut self, frame: &[u8]) -> Vec<u8> {
        let mut b = self.spare.pop().unwrap_or_default();
        b.clear();
        b.extend_from_slice(frame);
        b
    }

    /// The next copy to be received on `iface` (give it back with
    /// [`Recovery::recycle`]).
    pub fn take(&mut self, iface: IfaceId) -> Option<Vec<u8>> {
        match self.queue.front() {
            Some((i, _)) if *i == iface => self.queue.pop_front().map(|(_, b)| b),
            _ => None,
        }
    }

    /// Keeps a copy's buffer for the next.
    pub fn recycle(&mut self, b: Vec<u8>) {
        if self.spare.len() < MAX_QUEUED {
            self.spare.push(b);
        }
    }

    /// Whether copies wait to be received.
    pub fn has_pending(&self) -> bool {
        !self.queue.is_empty()
    }

    /// What was done so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Connections tracked now.
    pub fn tracked(&self) -> usize {
        self.holes.len()
    }
}

/// Whether `frame` may be a TCP segment with a SACK option: a TCP header longer
/// than 32 bytes (20, and the 12 of a timestamp option).
fn may_carry_sack(medium: Medium, frame: &[u8]) -> bool {
    let l3 = match medium {
        Medium::Ethernet => 14,
        _ => 0,
    };
    let Some(&v) = frame.get(l3) else {
        return false;
    };
    let (proto, tcp) = match v >> 4 {
        4 => (frame.get(l3 + 9), l3 + (usize::from(v & 0xf) * 4)),
        6 => (frame.get(l3 + 6), l3 + 40),
        _ => return false,
    };
    proto == Some(&6) && frame.get(tcp + 12).is_some_and(|o| (o >> 4) > 8)
}

/// Sets the window field of the TCP segment at `tcp_at` and its checksum.
fn set_window(frame: &mut [u8], tcp_at: usize, window: u16, key: &Key) {
    let mut t = TcpPacket::new_unchecked(&mut frame[tcp_at..]);
    t.set_window_len(window);
    t.fill_checksum(&key.0, &key.2);
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::{
        IpProtocol, Ipv4Address, Ipv4Repr, TcpControl, TcpRepr, TcpSeqNumber, TcpTimestampRepr,
    };

    const PEER: Ipv4Address = Ipv4Address::new(10, 0, 0, 1);
    const US: Ipv4Address = Ipv4Address::new(10, 0, 0, 2);

    /// An IPv4 pure ACK from the peer: `ack`, `window`, SACK blocks.
    fn ack(ack: u32, window: u16, sack: &[(u32, u32)]) -> Vec<u8> {
        let mut ranges = [None; 3];
        for (i, r) in sack.iter().enumerate() {
            ranges[i] = Some(*r);
        }
        let tcp = TcpRepr {
            src_port: 9001,
            dst_port: 40000,
            control: TcpControl::None,
            seq_number: TcpSeqNumber(1),
            ack_number: Some(TcpSeqNumber(ack as i32)),
            window_len: window,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: ranges,
            timestamp: Some(TcpTimestampRepr::new(5, 6)),
            payload: &[],
        };
        let ip = Ipv4Repr {
            src_addr: PEER,
            dst_addr: US,
            next_header: IpProtocol::Tcp,
            payload_len: tcp.buffer_len(),
            hop_limit: 64,
        };
        let mut b = vec![0u8; ip.buffer_len() + tcp.buffer_len()];
        let caps = smoltcp::phy::ChecksumCapabilities::default();
        let mut p = Ipv4Packet::new_unchecked(&mut b);
        ip.emit(&mut p, &caps);
        let (src, dst) = (IpAddress::Ipv4(PEER), IpAddress::Ipv4(US));
        tcp.emit(
            &mut TcpPacket::new_unchecked(p.payload_mut()),
            &src,
            &dst,
            &caps,
        );
        b
    }

    fn drain(r: &mut Recovery) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(b) = r.take(0) {
            out.push(b);
        }
        out
    }

    fn window_of(frame: &[u8]) -> u16 {
        let p = Ipv4Packet::new_checked(frame).unwrap();
        TcpPacket::new_checked(p.payload()).unwrap().window_len()
    }

    #[test]
    fn three_acks_at_a_hole_prompt_one_retransmission() {
        let mut r = Recovery::default();
        let now = Instant::from_millis(100);
        // Windows that move with every ACK, as a Linux receiver's do.
        r.observe(0, Medium::Ip, &ack(1000, 500, &[(2000, 3000)]), now);
        r.observe(0, Medium::Ip, &ack(1000, 501, &[(2000, 4000)]), now);
        assert!(drain(&mut r).is_empty());
        let third = ack(1000, 502, &[(2000, 5000)]);
        r.observe(0, Medium::Ip, &third, now);
        let copies = drain(&mut r);
        assert_eq!(copies.len(), 5);
        // The first with its window moved (and a checksum that holds), then
        // four as it came.
        assert_eq!(window_of(&copies[0]), 502 ^ 1);
        let p = Ipv4Packet::new_checked(&copies[0][..]).unwrap();
        let t = TcpPacket::new_checked(p.payload()).unwrap();
        assert!(t.verify_checksum(&IpAddress::Ipv4(PEER), &IpAddress::Ipv4(US)));
        let a = parse_ack(Medium::Ip, &copies[0]).expect("a valid ACK");
        assert_eq!(a.ack, 1000);
        assert!(copies[1..].iter().all(|c| c == &third));
        assert_eq!(r.counters().prompts, 1);
        // More ACKs at once: the retransmission is on its way; no more.
        r.observe(0, Medium::Ip, &ack(1000, 502, &[(2000, 6000)]), now);
        assert!(drain(&mut r).is_empty());
    }

    #[test]
    fn a_partial_ack_in_recovery_prompts_the_next_hole_at_once() {
        let mut r = Recovery::default();
        let t = Instant::from_millis(100);
        for i in 0..3 {
            r.observe(0, Medium::Ip, &ack(1000, 500, &[(2000, 3000 + i)]), t);
        }
        assert_eq!(drain(&mut r).len(), 5);
        // The retransmission filled 1000..2000; 3000.. is missing too.
        let t2 = t + Duration::from_millis(4);
        r.observe(0, Medium::Ip, &ack(2000, 500, &[(4000, 5000)]), t2);
        assert_eq!(drain(&mut r).len(), 5);
        assert_eq!(r.counters().prompts, 2);
        // The hole closed: nothing tracked.
        r.observe(0, Medium::Ip, &ack(5000, 500, &[]), t2);
        assert_eq!(r.tracked(), 0);
    }

    #[test]
    fn a_lost_retransmission_is_prompted_again_a_round_trip_later() {
        let mut r = Recovery::default();
        let t = Instant::from_millis(100);
        for i in 0..3 {
            r.observe(0, Medium::Ip, &ack(1000, 500, &[(2000, 3000 + i)]), t);
        }
        drain(&mut r);
        // Soon after: the retransmission may still be in flight.
        r.observe(0, Medium::Ip, &ack(1000, 500, &[(2000, 4000)]), t);
        assert!(drain(&mut r).is_empty());
        // Much later, more SACKed above, the hole still there.
        let later = t + Duration::from_millis(50);
        r.observe(0, Medium::Ip, &ack(1000, 500, &[(2000, 5000)]), later);
        assert_eq!(drain(&mut r).len(), 5);
        assert_eq!(r.counters().again, 1);
    }

    #[test]
    fn acks_without_sack_or_with_data_are_left_alone() {
        let mut r = Recovery::default();
        let t = Instant::from_millis(1);
        for _ in 0..5 {
            r.observe(0, Medium::Ip, &ack(1000, 500, &[]), t);
        }
        assert_eq!(r.tracked(), 0);
        // A SACK block below the ACK point (a D-SACK) reports no hole.
        for _ in 0..5 {
            r.observe(0, Medium::Ip, &ack(1000, 500, &[(500, 900)]), t);
        }
        assert_eq!(r.tracked(), 0);
        // An ACK with data (smoltcp counts no duplicate there either).
        let mut data = ack(1000, 500, &[(2000, 3000)]);
        data.extend_from_slice(b"xy");
        let mut p = Ipv4Packet::new_unchecked(&mut data[..]);
        p.set_total_len(p.total_len() + 2);
        for _ in 0..5 {
            r.observe(0, Medium::Ip, &data, t);
        }
        assert_eq!(r.tracked(), 0);
        assert!(drain(&mut r).is_empty());
    }

    #[test]
    fn garbage_does_not_panic() {
        let mut r = Recovery::default();
        let good = ack(1000, 500, &[(2000, 3000)]);
        for cut in 0..good.len() {
            r.observe(0, Medium::Ip, &good[..cut], Instant::from_millis(0));
            r.observe(0, Medium::Ethernet, &good[..cut], Instant::from_millis(0));
        }
        let mut x = good.clone();
        for i in 0..x.len() {
            x[i] ^= 0xff;
            r.observe(0, Medium::Ip, &x, Instant::from_millis(0));
        }
    }

    #[test]
    fn the_tracked_table_is_bounded() {
        let mut r = Recovery::default();
        let t = Instant::from_millis(1);
        for port in 0..(MAX_TRACKED as u32 + 100) {
            let mut f = ack(1000, 500, &[(2000, 3000)]);
            // Another connection: another peer port (checksum fixed).
            let mut p = Ipv4Packet::new_unchecked(&mut f[..]);
            let mut tcp = TcpPacket::new_unchecked(p.payload_mut());
            tcp.set_src_port(port as u16);
            tcp.fill_checksum(&IpAddress::Ipv4(PEER), &IpAddress::Ipv4(US));
            r.observe(0, Medium::Ip, &f, t);
        }
        assert_eq!(r.tracked(), MAX_TRACKED);
    }
}
