//! Loss recovery for smoltcp's TCP senders: SACK-driven fast retransmit and
//! loss probes, without touching smoltcp.
//!
//! # Why
//!
//! smoltcp 0.14 retransmits a lost segment early only on the third *duplicate*
//! ACK, and it counts an ACK as a duplicate only while the peer's advertised
//! window stays the same. A Linux receiver moves its window with nearly every
//! ACK while its program reads, so those ACKs rarely count. Otherwise it waits
//! for its retransmission timeout: at least one second (Linux: 200 ms),
//! doubled for each retransmission lost, with no round-trip sample from a
//! retransmitted segment to bring it down (Karn) — and with one segment in
//! flight, as at MTU 65520 or early in a connection, nothing else can detect a
//! loss. On the fault tests' wire (about 10 % of packets lost each way) 256 KiB
//! took 36–107 s to leave a container, against 0.24 s between two kernels.
//!
//! # What
//!
//! Two prompts, both delivered the same way. This module follows the
//! connections of the container with data in flight (egress tells it what
//! went out, ingress what the peer acknowledged) and, when a segment should be
//! retransmitted now, hands smoltcp copies of the peer's last ACK arranged so
//! that smoltcp's own duplicate counter reaches three: the first copy with its
//! window moved by one (smoltcp restarts its count on a window change), one as
//! it came (the window moves back: restarts again), then three alike. smoltcp
//! then retransmits the first unacknowledged segment from its own buffer and
//! its congestion controller enters fast recovery, as for duplicates it
//! counted itself.
//!
//! - **SACK**: a SACK block above the acknowledged point says the segment at
//!   that point is missing. After three such ACKs at one point — or at once
//!   after a partial ACK during a recovery, when the next hole is known lost
//!   (RFC 6675) — the segment is prompted; again a round and a half later if
//!   it is still missing while more was SACKed above it.
//! - **Probes** (Linux's tail-loss probe, and its short retransmission timeout,
//!   in one): data unacknowledged for a probe timeout — two round trips (from
//!   the timestamps the peer echoes), at least 10 ms, more when so little is
//!   in flight that the peer may delay its ACK (as long as it took to ACK a
//!   small flight lately: 40 ms until measured), doubling with each probe
//!   without progress (up to 16 times) — is prompted, unless the peer's
//!   window is full (that silence is flow control). Probes stop 3 s after the
//!   peer was last heard from: a copy counts as a segment from the peer, so a
//!   dead peer's `ETIMEDOUT` (`TCP_USER_TIMEOUT`) comes up to that much late.
//!
//! Nothing is retransmitted here and no TCP state is kept beyond a few numbers
//! and the peer's last ACK per connection: smoltcp stays the one
//! implementation of TCP. The copies never pass the filter or the capture
//! (they are not traffic). `lo` loses nothing and is not followed.
//!
//! # Limits
//!
//! At most [`MAX_TRACKED`] connections are followed at once (others recover
//! as smoltcp alone would); one with nothing in flight is forgotten 2 s after
//! its last ACK. At most [`MAX_QUEUED`] copies wait; a prompt makes five. A
//! connection's first flight is probed with a pure ACK made of the peer's
//! SYN-ACK (the SYN flag cleared, the sequence past it, the window scaled):
//! the peer has sent no other; one the peer opened, with its handshake ACK. A
//! connection whose peer sent data since its last ACK waits for smoltcp's
//! timeout.

use smoltcp::phy::Medium;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpAddress, IpProtocol, Ipv4Packet, Ipv6Packet, TcpOption,
    TcpPacket,
};
use std::collections::{HashMap, VecDeque};

use super::IfaceId;

/// Connections with data in flight tracked at once (others recover as
/// smoltcp alone would).
pub const MAX_TRACKED: usize = 16384;
/// Copies waiting to be received.
pub const MAX_QUEUED: usize = 64;
/// Window scales of peers kept until their connection carries data (the table
/// is emptied when full: a connection then probes without knowing its peer's
/// window).
const MAX_SCALES: usize = 1024;
/// The largest ACK frame copied (a pure ACK with every option is far smaller).
const MAX_COPY: usize = 256;
/// ACKs at one point, each with data SACKed above it, before the segment at
/// that point counts as lost (the classic duplicate threshold).
const DUP_THRESHOLD: u32 = 3;
/// The round trip assumed before one was measured (a probe then waits twice
/// that: Linux's minimum retransmission timeout).
const FIRST_RTT: Duration = Duration::from_millis(100);
/// The shortest probe timeout.
const MIN_PTO: Duration = Duration::from_millis(10);
/// What a receiver may hold back the ACK of a lone segment (Linux's shortest
/// delayed ACK): a probe of a small flight waits that much longer until the
/// peer's ACKs of small flights were timed (`Conn::lone_ack`).
const DELAYED_ACK: Duration = Duration::from_millis(40);
/// Probes stop when the peer has not been heard from for this long; smoltcp's
/// own timeout takes over (a copy counts as a segment heard, so probing for
/// longer would put off a dead peer's `ETIMEDOUT` more). Long enough for
/// several probes: when they all fail smoltcp's timeout, doubled for every
/// earlier loss, can stall a lossy transfer for a minute (measured: a 30 s
/// test past 120 s with a span of 1 s).
const PROBE_SPAN: Duration = Duration::from_secs(3);
/// Probe timeouts double with each probe without progress, up to this many
/// times.
const MAX_BACKOFF: u32 = 4;
/// A tracked connection with nothing in flight is forgotten after this long
/// (until then its round trip and its peer's last ACK serve the next flight:
/// a lost first segment of a flight gets a probe too).
const IDLE: Duration = Duration::from_secs(2);
/// A tracked connection not heard from for this long is forgotten.
const STALE: Duration = Duration::from_secs(30);

/// A connection of the container with data in flight: what was sent, what the
/// peer acknowledged, and its recovery.
#[derive(Debug)]
struct Conn {
    /// The end of what was sent (sequence number after the last byte; a FIN
    /// counts one).
    snd_max: u32,
    /// The end of the data sent (a FIN not counted).
    data_end: u32,
    /// The peer's highest acknowledgement.
    snd_una: u32,
    /// The hole the peer's SACK blocks point at (its ACK point), ACKs seen
    /// there with data SACKed above it.
    hole: u32,
    dups: u32,
    /// When the hole's segment was last retransmitted at our prompting.
    prompted: Option<Instant>,
    /// The highest SACKed byte then.
    high: u32,
    /// In a recovery: prompted, and the hole has not closed since.
    recovering: bool,
    /// Smoothed round trip (from the timestamps the peer echoes).
    srtt: Duration,
    /// How long the peer took to acknowledge a small flight lately (the
    /// longest recent sample, decaying): what a receiver that delays the ACK
    /// of a lone segment adds. [`DELAYED_ACK`] until measured.
    lone_ack: Duration,
    /// The last segment from the peer if it was a pure ACK (empty otherwise):
    /// what a probe hands smoltcp copies of.
    template: Vec<u8>,
    /// Where the template's TCP header starts, and its window.
    tcp_at: usize,
    window: u16,
    iface: IfaceId,
    /// The peer's window scale, if its SYN was seen.
    scale: Option<u8>,
    /// When the peer was last heard from, or a flight began after a pause
    /// (probes stop [`PROBE_SPAN`] after it).
    heard_at: Instant,
    /// When a probe is due, and how many went since the last progress.
    probe_at: Instant,
    probes: u32,
}

impl Conn {
    fn outstanding(&self) -> u32 {
        self.snd_max.wrapping_sub(self.snd_una)
    }

    /// Whether data (not only a FIN) waits for its acknowledgement. A prompt
    /// must not be made for a lone FIN: smoltcp's fast retransmit sends only
    /// data, and it stops its retransmission timer when it decides on one, so
    /// the FIN would never go again (measured: a test hung).
    fn data_in_flight(&self) -> bool {
        seq_gt(self.data_end, self.snd_una)
    }

    /// The probe timeout: two round trips, more for a small flight whose ACK
    /// the peer may delay, doubled for each probe without progress.
    fn pto(&self) -> Duration {
        self.pto_for(self.outstanding())
    }

    /// [`Conn::pto`] with `outstanding` bytes in flight.
    fn pto_for(&self, outstanding: u32) -> Duration {
        let mut t = (self.srtt * 2).max(MIN_PTO);
        if outstanding < 2 * 1460 {
            t += self.lone_ack;
        }
        t * (1u32 << self.probes.min(MAX_BACKOFF))
    }
}

/// What a peer's SYN or SYN-ACK told: the scale of the windows it will
/// advertise, and (a SYN-ACK) a pure ACK made of it for probing the first
/// flight, which no other ACK of the peer's precedes (the SYN flag cleared,
/// the sequence number past the SYN, the window scaled down).
#[derive(Debug)]
struct Opening {
    scale: u8,
    template: Vec<u8>,
    tcp_at: usize,
    window: u16,
}

/// The connection a segment belongs to: (peer address, peer port, our address,
/// our port).
type Key = (IpAddress, u16, IpAddress, u16);

/// What [`Recovery`] did (for tests, embedders through
/// [`super::Interfaces::recovery`], and `netcell stats`: `recovery`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Retransmissions prompted by SACK blocks.
    pub prompts: u64,
    /// Of which again for a hole already prompted (the retransmission was lost).
    pub again: u64,
    /// Retransmissions prompted because no ACK came (probes).
    pub probes: u64,
}

/// SACK-driven fast retransmit and loss probes for every interface (see the
/// module docs).
pub struct Recovery {
    conns: HashMap<Key, Conn>,
    /// What a peer's SYN told, until its connection carries data of ours
    /// (then it moves into the connection's [`Conn`]).
    scales: HashMap<Key, Opening>,
    queue: VecDeque<(IfaceId, Vec<u8>)>,
    spare: Vec<Vec<u8>>,
    /// No probe is due before this (a scan of the table finds the next).
    earliest: Option<Instant>,
    /// The time of the stack's poll (set by [`Recovery::tick`]).
    now: Instant,
    counters: Counters,
}

impl Default for Recovery {
    fn default() -> Self {
        Recovery {
            conns: HashMap::new(),
            scales: HashMap::new(),
            queue: VecDeque::new(),
            spare: Vec::new(),
            earliest: None,
            now: Instant::from_millis(0),
            counters: Counters::default(),
        }
    }
}

/// The parts of a TCP segment that recovery looks at.
struct Seg {
    /// (source, source port, destination, destination port).
    addrs: (IpAddress, u16, IpAddress, u16),
    seq: u32,
    ack: Option<u32>,
    /// Sequence space it takes (payload, SYN and FIN count one each).
    len: u32,
    /// No payload, SYN, FIN, RST or URG: a pure ACK.
    pure_ack: bool,
    /// Payload bytes.
    payload: u32,
    syn: bool,
    rst: bool,
    window: u16,
    /// The highest SACKed byte above the ACK point, if any.
    sacked: Option<u32>,
    /// The timestamp echoed.
    tsecr: Option<u32>,
    /// The window scale offered (SYN segments).
    wscale: Option<u8>,
    /// Where the TCP header starts in the frame.
    tcp_at: usize,
}

fn seq_gt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// The TCP segment in `frame`, if it is one (IPv4 unfragmented, or IPv6 with
/// TCP right behind its header). Checksums are not checked: the device has
/// dropped what the kernel did not vouch for (see [`crate::device::checksum`]),
/// and an offloaded frame's TCP checksum holds only the pseudo-header's sum. (A
/// corrupted ACK on a device that checks nothing costs at most a needless
/// retransmission.)
fn parse(medium: Medium, frame: &[u8]) -> Option<Seg> {
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
    let payload = seg.len().checked_sub(t.header_len() as usize)? as u32;
    let ack = t.ack().then(|| t.ack_number().0 as u32);
    let mut sacked: Option<u32> = None;
    let mut tsecr = None;
    let mut wscale = None;
    if t.header_len() > 20 {
        let mut opts = t.options();
        while !opts.is_empty() {
            let Ok((rest, opt)) = TcpOption::parse(opts) else {
                break;
            };
            match opt {
                TcpOption::SackRange(ranges) => {
                    for (_, right) in ranges.iter().flatten() {
                        if ack.is_some_and(|a| seq_gt(*right, a))
                            && sacked.is_none_or(|s| seq_gt(*right, s))
                        {
                            sacked = Some(*right);
                        }
                    }
                }
                TcpOption::TimeStamp { tsecr: e, .. } => tsecr = Some(e),
                TcpOption::WindowScale(w) => wscale = Some(w.min(14)),
                TcpOption::EndOfList => break,
                _ => {}
            }
            opts = rest;
        }
    }
    Some(Seg {
        addrs: (src, t.src_port(), dst, t.dst_port()),
        seq: t.seq_number().0 as u32,
        ack,
        len: payload + u32::from(t.syn()) + u32::from(t.fin()),
        payload,
        pure_ack: ack.is_some() && payload == 0 && !t.syn() && !t.fin() && !t.rst() && !t.urg(),
        syn: t.syn(),
        rst: t.rst(),
        window: t.window_len(),
        sacked,
        tsecr,
        wscale,
        tcp_at: l3 + tcp_off,
    })
}

impl Recovery {
    /// Looks at a frame the container sends on `iface`: data going out puts
    /// its connection in the table (or moves its end).
    pub fn sent(&mut self, iface: IfaceId, medium: Medium, frame: &[u8]) {
        let now = self.now;
        // Cheap refusals first: TCP only.
        if !is_tcp(medium, frame) {
            return;
        }
        let Some(s) = parse(medium, frame) else {
            return;
        };
        let (src, sport, dst, dport) = s.addrs;
        let key = (dst, dport, src, sport);
        if s.rst || s.syn {
            // Gone, or a new connection on this tuple (another sequence
            // space).
            self.forget(&key);
            return;
        }
        if s.len == 0 {
            return;
        }
        let end = s.seq.wrapping_add(s.len);
        let data_end = s.seq.wrapping_add(s.payload);
        if let Some(c) = self.conns.get_mut(&key) {
            if s.payload > 0 && seq_gt(data_end, c.data_end) {
                c.data_end = data_end;
            }
            if c.outstanding() == 0 {
                // A new flight: its probes (and their span) count from now.
                c.heard_at = now;
                c.probes = 0;
                c.probe_at = now + c.pto_for(end.wrapping_sub(c.snd_una));
                let due = c.probe_at;
                self.earliest = Some(self.earliest.map_or(due, |e| e.min(due)));
            }
            if seq_gt(end, c.snd_max) {
                c.snd_max = end;
            }
            return;
        }
        if self.conns.len() >= MAX_TRACKED {
            return;
        }
        let opening = self.scales.remove(&key);
        let (scale, template, tcp_at, window) = match opening {
            Some(o) => (Some(o.scale), o.template, o.tcp_at, o.window),
            None => (None, Vec::new(), 0, 0),
        };
        let c = Conn {
            snd_max: end,
            data_end,
            snd_una: s.seq,
            hole: s.seq,
            dups: 0,
            prompted: None,
            high: s.seq,
            recovering: false,
            srtt: FIRST_RTT,
            lone_ack: DELAYED_ACK,
            template,
            tcp_at,
            window,
            iface,
            scale,
            heard_at: now,
            probe_at: now,
            probes: 0,
        };
        let due = now + c.pto();
        let c = self.conns.entry(key).or_insert(c);
        c.probe_at = due;
        self.earliest = Some(self.earliest.map_or(due, |e| e.min(due)));
    }

    fn forget(&mut self, key: &Key) {
        if let Some(c) = self.conns.remove(key) {
            self.recycle(c.template);
        }
    }

    /// Looks at a frame received on `iface` that smoltcp is about to process;
    /// queues copies of it when a lost segment should be retransmitted now.
    pub fn observe(&mut self, iface: IfaceId, medium: Medium, frame: &[u8], now: Instant) {
        let syn = is_syn(medium, frame);
        if (self.conns.is_empty() && self.scales.is_empty() && !syn) || !is_tcp(medium, frame) {
            return;
        }
        let Some(s) = parse(medium, frame) else {
            return;
        };
        if syn {
            // A new connection on this tuple: what was followed of an old one
            // is no use (its sequence space is another).
            self.forget(&s.addrs);
            // The scale of the windows the peer will advertise (none without
            // the option).
            if self.scales.len() >= MAX_SCALES {
                self.scales.clear();
            }
            let scale = s.wscale.unwrap_or(0);
            let mut o = Opening {
                scale,
                template: Vec::new(),
                tcp_at: s.tcp_at,
                window: 0,
            };
            if s.ack.is_some() && !s.rst && frame.len() <= MAX_COPY {
                let mut b = self.spare.pop().unwrap_or_default();
                b.clear();
                b.extend_from_slice(frame);
                let window = (s.window >> scale).max(1);
                let mut t = TcpPacket::new_unchecked(&mut b[s.tcp_at..]);
                t.set_syn(false);
                t.set_seq_number(smoltcp::wire::TcpSeqNumber(s.seq.wrapping_add(1) as i32));
                t.set_window_len(window);
                t.fill_checksum(&s.addrs.0, &s.addrs.2);
                o.template = b;
                o.window = window;
            }
            if let Some(old) = self.scales.insert(s.addrs, o) {
                self.recycle(old.template);
            }
            return;
        }
        let Some(c) = self.conns.get_mut(&s.addrs) else {
            // The handshake's ACK of a connection the peer opened: what the
            // first flight is probed with.
            if let Some(o) = self.scales.get_mut(&s.addrs)
                && s.pure_ack
                && s.window != 0
                && frame.len() <= MAX_COPY
            {
                o.template.clear();
                o.template.extend_from_slice(frame);
                o.tcp_at = s.tcp_at;
                o.window = s.window;
            }
            return;
        };
        if s.rst {
            self.forget(&s.addrs);
            return;
        }
        let Some(ack) = s.ack else {
            return;
        };
        c.heard_at = now;
        // The newest segment from the peer is what a probe copies: a pure ACK
        // only (smoltcp counts no duplicate in a segment with data), and not
        // one from before the last (reordered: smoltcp ignores an old ACK).
        if !seq_gt(c.snd_una, ack) {
            c.template.clear();
            if s.pure_ack && s.window != 0 && frame.len() <= MAX_COPY {
                c.template.extend_from_slice(frame);
                c.tcp_at = s.tcp_at;
                c.window = s.window;
            }
        }
        if seq_gt(ack, c.snd_una) {
            let small = c.outstanding() < 2 * 1460;
            c.snd_una = ack;
            if seq_gt(ack, c.snd_max) {
                c.snd_max = ack;
            }
            c.probes = 0;
            if let Some(e) = s.tsecr {
                let sample = crate::socket::tcp::tsval().wrapping_sub(e);
                if sample < 60_000 {
                    let sample = Duration::from_millis(u64::from(sample));
                    c.srtt = if c.srtt == FIRST_RTT {
                        sample
                    } else {
                        (c.srtt * 7 + sample) / 8
                    };
                    if small {
                        // A receiver that ACKs a lone segment at once (Linux
                        // in quick-ACK mode, as after losses) needs no probe
                        // to wait for a delayed ACK; one that delays shows it.
                        c.lone_ack = sample.max(c.lone_ack * 3 / 4);
                    }
                }
            }
            c.probe_at = now + c.pto();
            // A shorter round trip may bring the probe forward.
            let due = c.probe_at;
            self.earliest = Some(self.earliest.map_or(due, |e| e.min(due)));
        }
        let Some(high) = s.sacked.filter(|_| s.pure_ack) else {
            if c.outstanding() == 0 {
                // Everything arrived: kept a while for the next flight.
                c.recovering = false;
                c.prompted = None;
                c.dups = 0;
                let gc = now + IDLE;
                self.earliest = Some(self.earliest.map_or(gc, |e| e.min(gc)));
            } else if c.recovering && s.sacked.is_none() {
                c.recovering = false;
                c.prompted = None;
                c.dups = 0;
            }
            return;
        };
        let prompt = if c.hole == ack && c.dups > 0 {
            c.dups += 1;
            match c.prompted {
                None => c.dups >= DUP_THRESHOLD,
                // Lost again: a round trip passed, more was SACKed above.
                Some(at) => now >= at + c.srtt + c.srtt / 2 && seq_gt(high, c.high),
            }
        } else if seq_gt(ack, c.hole) || c.dups == 0 {
            // A new hole. After a partial ACK in a recovery (the prompted
            // segment arrived), the next hole, below data the peer holds, is
            // lost too.
            let in_recovery = c.recovering && c.dups > 0;
            c.hole = ack;
            c.dups = 1;
            c.prompted = None;
            in_recovery
        } else {
            // An ACK from before the last one (reordered): nothing new.
            false
        };
        if prompt {
            if c.prompted.is_some() {
                self.counters.again += 1;
            }
            c.prompted = Some(now);
            c.high = high;
            c.recovering = true;
            self.counters.prompts += 1;
            log::debug!(
                "{}:{} -> {}:{}: segment at {ack} lost (SACKed up to {high}), retransmit prompted",
                s.addrs.0,
                s.addrs.1,
                s.addrs.2,
                s.addrs.3,
            );
            self.prompt(iface, &s.addrs);
        }
    }

    /// Queues the copies of `key`'s template that make smoltcp retransmit the
    /// first unacknowledged segment: the window moved by one (smoltcp's
    /// duplicate count restarts), as it came (the window moves back: restarts
    /// again), then three alike.
    fn prompt(&mut self, iface: IfaceId, key: &Key) {
        if self.queue.len() + 5 > MAX_QUEUED {
            return;
        }
        let Some(c) = self.conns.get(key) else {
            return;
        };
        if c.template.is_empty() || !c.data_in_flight() {
            return;
        }
        for i in 0..5 {
            let mut b = self.spare.pop().unwrap_or_default();
            b.clear();
            b.extend_from_slice(&c.template);
            if i == 0 {
                set_window(&mut b, c.tcp_at, c.window ^ 1, key);
            }
            self.queue.push_back((iface, b));
        }
    }

    /// Probes connections whose data went unacknowledged for a probe timeout:
    /// smoltcp retransmits the first unacknowledged segment as if three
    /// duplicate ACKs had come (see the module docs). Call it before the
    /// devices are polled; [`Recovery::next_due`] says when it is due again.
    pub fn tick(&mut self, now: Instant) {
        self.now = now;
        match self.earliest {
            Some(e) if now >= e => {}
            _ => return,
        }
        let mut next: Option<Instant> = None;
        let mut due: Vec<(IfaceId, Key)> = Vec::new();
        self.conns.retain(|k, c| {
            if now - c.heard_at > STALE {
                return false;
            }
            if c.outstanding() == 0 {
                if now - c.heard_at > IDLE {
                    return false;
                }
                let gc = c.heard_at + IDLE + Duration::from_millis(1);
                next = Some(next.map_or(gc, |n| n.min(gc)));
                return true;
            }
            if now - c.heard_at > PROBE_SPAN {
                let gc = c.heard_at + STALE + Duration::from_millis(1);
                next = Some(next.map_or(gc, |n| n.min(gc)));
                return true;
            }
            if now >= c.probe_at {
                // Silence while the peer's window is full is flow control,
                // not loss (smoltcp probes a closed window itself).
                let limited = c.scale.is_some_and(|sc| {
                    let window = u32::from(c.window) << sc;
                    c.outstanding().saturating_add(1460) >= window
                });
                if !c.template.is_empty() && !limited && c.data_in_flight() {
                    due.push((c.iface, *k));
                }
                c.probes += 1;
                c.probe_at = now + c.pto();
            }
            next = Some(next.map_or(c.probe_at, |n| n.min(c.probe_at)));
            true
        });
        self.earliest = next;
        for (iface, k) in due {
            self.counters.probes += 1;
            log::debug!(
                "{}:{} -> {}:{}: no ACK for a probe timeout, retransmit prompted",
                k.0,
                k.1,
                k.2,
                k.3
            );
            self.prompt(iface, &k);
        }
    }

    /// When [`Recovery::tick`] has something to do next.
    pub fn next_due(&self) -> Option<Instant> {
        self.earliest
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
        if self.spare.len() < MAX_QUEUED && b.capacity() > 0 {
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
        self.conns.len()
    }
}

/// Where the TCP header of `frame` would start, if its IP header says TCP (a
/// cheap look before [`parse`] checks it all).
fn tcp_at(medium: Medium, frame: &[u8]) -> Option<usize> {
    let l3 = match medium {
        Medium::Ethernet => 14,
        _ => 0,
    };
    match frame.get(l3).map(|v| (v >> 4, v & 0xf)) {
        Some((4, ihl)) if frame.get(l3 + 9) == Some(&6) => Some(l3 + usize::from(ihl) * 4),
        Some((6, _)) if frame.get(l3 + 6) == Some(&6) => Some(l3 + 40),
        _ => None,
    }
}

/// Whether `frame` carries TCP.
fn is_tcp(medium: Medium, frame: &[u8]) -> bool {
    tcp_at(medium, frame).is_some()
}

/// Whether `frame` is a TCP segment with SYN.
fn is_syn(medium: Medium, frame: &[u8]) -> bool {
    tcp_at(medium, frame)
        .and_then(|t| frame.get(t + 13))
        .is_some_and(|f| f & 0x02 != 0)
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

    /// An IPv4 TCP segment from `src` to `dst`.
    #[allow(clippy::too_many_arguments)]
    fn segment(
        src: Ipv4Address,
        dst: Ipv4Address,
        seq: u32,
        ack: u32,
        window: u16,
        sack: &[(u32, u32)],
        tsecr: u32,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut ranges = [None; 3];
        for (i, r) in sack.iter().enumerate() {
            ranges[i] = Some(*r);
        }
        let (sp, dp) = if src == PEER {
            (9001, 40000)
        } else {
            (40000, 9001)
        };
        let tcp = TcpRepr {
            src_port: sp,
            dst_port: dp,
            control: TcpControl::None,
            seq_number: TcpSeqNumber(seq as i32),
            ack_number: Some(TcpSeqNumber(ack as i32)),
            window_len: window,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: ranges,
            timestamp: Some(TcpTimestampRepr::new(5, tsecr)),
            payload,
        };
        crate::testing::ipv4_tcp(src, dst, &tcp)
    }

    /// A pure ACK from the peer: `ack`, `window`, SACK blocks.
    fn ack(ack: u32, window: u16, sack: &[(u32, u32)]) -> Vec<u8> {
        segment(PEER, US, 1, ack, window, sack, 6, &[])
    }

    /// `len` bytes of ours at `seq`.
    fn data(seq: u32, len: usize) -> Vec<u8> {
        segment(US, PEER, seq, 1, 1000, &[], 5, &vec![7; len])
    }

    /// A recovery with bytes 1000..21000 of ours in flight at `t`.
    fn in_flight(t: Instant) -> Recovery {
        let mut r = Recovery::default();
        r.tick(t);
        for i in 0..20 {
            r.sent(0, Medium::Ip, &data(1000 + i * 1000, 1000));
        }
        assert_eq!(r.tracked(), 1);
        r
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
        let now = Instant::from_millis(100);
        let mut r = in_flight(now);
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
        assert!(copies[1..].iter().all(|c| c == &third));
        assert_eq!(r.counters().prompts, 1);
        // More ACKs at once: the retransmission is on its way; no more.
        r.observe(0, Medium::Ip, &ack(1000, 502, &[(2000, 6000)]), now);
        assert!(drain(&mut r).is_empty());
    }

    #[test]
    fn a_partial_ack_in_recovery_prompts_the_next_hole_at_once() {
        let t = Instant::from_millis(100);
        let mut r = in_flight(t);
        for i in 0..3 {
            r.observe(0, Medium::Ip, &ack(1000, 500, &[(2000, 3000 + i)]), t);
        }
        assert_eq!(drain(&mut r).len(), 5);
        // The retransmission filled 1000..2000; 3000.. is missing too.
        let t2 = t + Duration::from_millis(4);
        r.observe(0, Medium::Ip, &ack(2000, 500, &[(4000, 5000)]), t2);
        assert_eq!(drain(&mut r).len(), 5);
        assert_eq!(r.counters().prompts, 2);
        // Everything arrived: no more copies.
        r.observe(0, Medium::Ip, &ack(21000, 500, &[]), t2);
        r.observe(0, Medium::Ip, &ack(21000, 500, &[]), t2);
        assert!(drain(&mut r).is_empty());
    }

    #[test]
    fn a_lost_retransmission_is_prompted_again_a_round_trip_later() {
        let t = Instant::from_millis(100);
        let mut r = in_flight(t);
        for i in 0..3 {
            r.observe(0, Medium::Ip, &ack(1000, 500, &[(2000, 3000 + i)]), t);
        }
        drain(&mut r);
        // Soon after: the retransmission may still be in flight.
        r.observe(0, Medium::Ip, &ack(1000, 500, &[(2000, 4000)]), t);
        assert!(drain(&mut r).is_empty());
        // Much later, more SACKed above, the hole still there.
        let later = t + Duration::from_millis(200);
        r.observe(0, Medium::Ip, &ack(1000, 500, &[(2000, 5000)]), later);
        assert_eq!(drain(&mut r).len(), 5);
        assert_eq!(r.counters().again, 1);
    }

    #[test]
    fn acks_without_sack_or_with_data_are_left_alone() {
        let t = Instant::from_millis(1);
        let mut r = in_flight(t);
        for _ in 0..5 {
            r.observe(0, Medium::Ip, &ack(1000, 500, &[]), t);
        }
        // A SACK block below the ACK point (a D-SACK) reports no hole.
        for _ in 0..5 {
            r.observe(0, Medium::Ip, &ack(1000, 500, &[(500, 900)]), t);
        }
        // Segments with data (smoltcp counts no duplicate there either).
        let with_data = segment(PEER, US, 1, 1000, 500, &[(2000, 3000)], 6, b"xy");
        for _ in 0..5 {
            r.observe(0, Medium::Ip, &with_data, t);
        }
        assert!(drain(&mut r).is_empty());
        assert_eq!(r.counters().prompts, 0);
    }

    #[test]
    fn silence_after_data_brings_a_probe_then_fewer() {
        let t = Instant::from_millis(1000);
        let mut r = in_flight(t);
        // An ACK of the first 1000 bytes echoing a timestamp of now: a round
        // trip of about nothing, so the probe timeout is the shortest.
        let echo = crate::socket::tcp::tsval();
        let a = segment(PEER, US, 1, 2000, 500, &[], echo, &[]);
        r.observe(0, Medium::Ip, &a, t);
        r.tick(t + Duration::from_millis(5));
        assert!(drain(&mut r).is_empty(), "too early");
        r.tick(t + MIN_PTO + Duration::from_millis(5));
        let copies = drain(&mut r);
        assert_eq!(copies.len(), 5);
        assert_eq!(&copies[1], &a);
        assert_eq!(r.counters().probes, 1);
        // The next only after twice the timeout.
        r.tick(t + MIN_PTO * 2 + Duration::from_millis(5));
        assert!(drain(&mut r).is_empty());
        r.tick(t + MIN_PTO * 4);
        assert_eq!(drain(&mut r).len(), 5);
        // A peer silent for longer than the span is left to smoltcp's timeout.
        let mut n = 0;
        for ms in (100..8000).step_by(10) {
            r.tick(t + Duration::from_millis(ms));
            if ms > PROBE_SPAN.total_millis() + 10 {
                n += drain(&mut r).len();
            } else {
                drain(&mut r);
            }
        }
        assert_eq!(n, 0);
    }

    #[test]
    fn the_first_segment_of_a_new_flight_is_probed_with_the_last_ack() {
        let t = Instant::from_millis(1000);
        let mut r = in_flight(t);
        let all = segment(
            PEER,
            US,
            1,
            21000,
            500,
            &[],
            crate::socket::tcp::tsval(),
            &[],
        );
        r.observe(0, Medium::Ip, &all, t);
        // 100 ms later a new flight of one segment, lost: a probe comes with
        // the ACK that acknowledged everything.
        let t2 = t + Duration::from_millis(100);
        r.tick(t2);
        r.sent(0, Medium::Ip, &data(21000, 1000));
        r.tick(t2 + MIN_PTO + DELAYED_ACK + Duration::from_millis(1));
        let copies = drain(&mut r);
        assert_eq!(copies.len(), 5);
        assert_eq!(&copies[1], &all);
    }

    /// A peer that acknowledges lone segments at once: a lost lone segment is
    /// probed after the shortest timeout, not a delayed ACK later; a peer that
    /// delays its ACK of one (40 ms) is waited for again.
    #[test]
    fn a_peer_that_acks_at_once_is_probed_sooner() {
        let t = Instant::from_millis(1000);
        let mut r = in_flight(t);
        let ack = |end: u32, echo: u32| segment(PEER, US, 1, end, 500, &[], echo, &[]);
        r.observe(0, Medium::Ip, &ack(21000, crate::socket::tcp::tsval()), t);
        // Ten lone segments, each acknowledged at once.
        let mut end = 21000;
        for _ in 0..10 {
            r.sent(0, Medium::Ip, &data(end, 1000));
            end += 1000;
            r.observe(0, Medium::Ip, &ack(end, crate::socket::tcp::tsval()), t);
        }
        // The next one is lost: probed well before a delayed ACK's 40 ms.
        r.sent(0, Medium::Ip, &data(end, 1000));
        r.tick(t + MIN_PTO + Duration::from_millis(5));
        assert_eq!(drain(&mut r).len(), 5, "probed after the shortest timeout");
        // Its ACK came 40 ms late after all (a delayed ACK): the next lone
        // segment's probe waits for one again.
        end += 1000;
        let late = crate::socket::tcp::tsval().wrapping_sub(40);
        let t2 = t + Duration::from_millis(100);
        r.tick(t2);
        drain(&mut r);
        r.observe(0, Medium::Ip, &ack(end, late), t2);
        r.sent(0, Medium::Ip, &data(end, 1000));
        r.tick(t2 + MIN_PTO + Duration::from_millis(5));
        assert!(drain(&mut r).is_empty(), "a delayed ACK is waited for");
        r.tick(t2 + MIN_PTO + DELAYED_ACK + Duration::from_millis(5));
        assert_eq!(drain(&mut r).len(), 5);
    }

    #[test]
    fn no_probe_when_everything_arrived_or_the_peer_last_sent_data() {
        let t = Instant::from_millis(1000);
        let mut r = in_flight(t);
        r.observe(0, Medium::Ip, &ack(21000, 500, &[]), t);
        r.tick(t + Duration::from_millis(500));
        assert!(drain(&mut r).is_empty());
        // Kept a while (its last ACK serves a next flight), then forgotten.
        assert_eq!(r.tracked(), 1);
        r.tick(t + IDLE + Duration::from_millis(2));
        assert_eq!(r.tracked(), 0);
        assert!(r.next_due().is_none());
        // The newest segment from the peer carried data: no pure ACK to copy.
        let mut r = in_flight(t);
        r.observe(
            0,
            Medium::Ip,
            &segment(PEER, US, 1, 2000, 500, &[], 6, b"x"),
            t,
        );
        for ms in (0..900).step_by(5) {
            r.tick(t + Duration::from_millis(ms));
        }
        assert!(drain(&mut r).is_empty());
    }

    #[test]
    fn a_late_old_ack_is_not_what_a_probe_copies() {
        let t = Instant::from_millis(1000);
        let mut r = in_flight(t);
        let echo = crate::socket::tcp::tsval();
        let newer = segment(PEER, US, 1, 5000, 500, &[], echo, &[]);
        r.observe(0, Medium::Ip, &newer, t);
        // A reordered ACK from before it.
        r.observe(
            0,
            Medium::Ip,
            &segment(PEER, US, 1, 3000, 500, &[], echo, &[]),
            t,
        );
        r.tick(t + Duration::from_millis(100));
        let copies = drain(&mut r);
        assert_eq!(copies.len(), 5);
        assert_eq!(&copies[1], &newer);
    }

    /// The peer's SYN-ACK offering window scale `scale`.
    fn syn_ack(scale: u8) -> Vec<u8> {
        let f = segment(PEER, US, 0, 1000, 65000, &[], 0, &[]);
        let p = Ipv4Packet::new_checked(&f[..]).unwrap();
        let t = TcpPacket::new_checked(p.payload()).unwrap();
        let tcp = TcpRepr::parse(
            &t,
            &IpAddress::Ipv4(PEER),
            &IpAddress::Ipv4(US),
            &smoltcp::phy::ChecksumCapabilities::default(),
        )
        .unwrap();
        let syn = TcpRepr {
            control: TcpControl::Syn,
            window_scale: Some(scale),
            ..tcp
        };
        let ip = Ipv4Repr {
            src_addr: PEER,
            dst_addr: US,
            next_header: IpProtocol::Tcp,
            payload_len: syn.buffer_len(),
            hop_limit: 64,
        };
        let mut b = vec![0u8; ip.buffer_len() + syn.buffer_len()];
        let caps = smoltcp::phy::ChecksumCapabilities::default();
        let mut p = Ipv4Packet::new_unchecked(&mut b);
        ip.emit(&mut p, &caps);
        let (s, d) = (IpAddress::Ipv4(PEER), IpAddress::Ipv4(US));
        syn.emit(
            &mut TcpPacket::new_unchecked(p.payload_mut()),
            &s,
            &d,
            &caps,
        );
        b
    }

    #[test]
    fn a_full_peer_window_is_no_silence_to_probe() {
        for (scale, probed) in [(0u8, false), (7, true)] {
            let t = Instant::from_millis(1000);
            let mut r = Recovery::default();
            r.tick(t);
            r.observe(0, Medium::Ip, &syn_ack(scale), t);
            for i in 0..20 {
                r.sent(0, Medium::Ip, &data(1000 + i * 1000, 1000));
            }
            // A window of 500 (times 2^scale) against 19 000 bytes in flight.
            let a = segment(
                PEER,
                US,
                1,
                2000,
                500,
                &[],
                crate::socket::tcp::tsval(),
                &[],
            );
            r.observe(0, Medium::Ip, &a, t);
            r.tick(t + Duration::from_millis(100));
            assert_eq!(
                drain(&mut r).len(),
                if probed { 5 } else { 0 },
                "scale {scale}"
            );
        }
    }

    #[test]
    fn the_first_flight_is_probed_with_an_ack_made_of_the_syn_ack() {
        let t = Instant::from_millis(1000);
        let mut r = Recovery::default();
        r.tick(t);
        r.observe(0, Medium::Ip, &syn_ack(7), t);
        r.sent(0, Medium::Ip, &data(1001, 1000));
        // No ACK comes: the first round trip is unknown (100 ms), so the probe
        // waits 2 x 100 + 40 ms.
        r.tick(t + Duration::from_millis(200));
        assert!(drain(&mut r).is_empty());
        r.tick(t + Duration::from_millis(241));
        let copies = drain(&mut r);
        assert_eq!(copies.len(), 5);
        let p = Ipv4Packet::new_checked(&copies[1][..]).unwrap();
        let tcp = TcpPacket::new_checked(p.payload()).unwrap();
        assert!(!tcp.syn() && tcp.ack());
        assert_eq!(tcp.seq_number(), TcpSeqNumber(1));
        assert_eq!(tcp.ack_number(), TcpSeqNumber(1000));
        assert_eq!(tcp.window_len(), 65000 >> 7);
        assert!(tcp.verify_checksum(&IpAddress::Ipv4(PEER), &IpAddress::Ipv4(US)));
    }

    #[test]
    fn a_lone_fin_is_left_to_smoltcps_timer() {
        let t = Instant::from_millis(1000);
        let mut r = in_flight(t);
        let echo = crate::socket::tcp::tsval();
        // Everything acknowledged, then our FIN goes out and is lost.
        r.observe(
            0,
            Medium::Ip,
            &segment(PEER, US, 1, 21000, 500, &[], echo, &[]),
            t,
        );
        let mut fin = data(21000, 0);
        let mut p = Ipv4Packet::new_unchecked(&mut fin[..]);
        let mut tcp = TcpPacket::new_unchecked(p.payload_mut());
        tcp.set_fin(true);
        tcp.fill_checksum(&IpAddress::Ipv4(US), &IpAddress::Ipv4(PEER));
        r.sent(0, Medium::Ip, &fin);
        for ms in (0..2000).step_by(5) {
            r.tick(t + Duration::from_millis(ms));
        }
        assert!(drain(&mut r).is_empty());
    }

    #[test]
    fn a_new_connection_on_the_tuple_forgets_the_old_one() {
        let t = Instant::from_millis(1);
        let mut r = in_flight(t);
        r.observe(0, Medium::Ip, &syn_ack(7), t);
        assert_eq!(r.tracked(), 0);
    }

    #[test]
    fn a_reset_forgets_the_connection() {
        let t = Instant::from_millis(1);
        let mut r = in_flight(t);
        let mut rst = ack(1000, 500, &[]);
        let mut p = Ipv4Packet::new_unchecked(&mut rst[..]);
        let mut tcp = TcpPacket::new_unchecked(p.payload_mut());
        tcp.set_rst(true);
        r.observe(0, Medium::Ip, &rst, t);
        assert_eq!(r.tracked(), 0);
    }

    #[test]
    fn garbage_does_not_panic() {
        let t = Instant::from_millis(0);
        let mut r = in_flight(t);
        let good = ack(1000, 500, &[(2000, 3000)]);
        for cut in 0..good.len() {
            r.observe(0, Medium::Ip, &good[..cut], t);
            r.observe(0, Medium::Ethernet, &good[..cut], t);
            r.sent(0, Medium::Ip, &good[..cut]);
        }
        let mut x = good.clone();
        for i in 0..x.len() {
            x[i] ^= 0xff;
            r.observe(0, Medium::Ip, &x, t);
            r.sent(0, Medium::Ip, &x);
        }
        r.tick(t + Duration::from_secs(1));
    }

    #[test]
    fn the_tracked_table_is_bounded() {
        let mut r = Recovery::default();
        for port in 0..(MAX_TRACKED as u32 + 100) {
            let mut f = data(1000, 10);
            // Another connection: another port of ours (checksum fixed).
            let mut p = Ipv4Packet::new_unchecked(&mut f[..]);
            let mut tcp = TcpPacket::new_unchecked(p.payload_mut());
            tcp.set_src_port(port as u16);
            tcp.fill_checksum(&IpAddress::Ipv4(US), &IpAddress::Ipv4(PEER));
            r.sent(0, Medium::Ip, &f);
        }
        assert_eq!(r.tracked(), MAX_TRACKED);
    }
}
