//! The ingress hook: every received frame is shown to an [`Admission`] policy before
//! smoltcp processes it.
//!
//! smoltcp answers every TCP SYN that no socket accepts with a RST, and a listening
//! smoltcp socket *becomes* the connection, so "a listener with a backlog" has to be
//! built above smoltcp (see `socket::tcp`). That layer needs one thing from
//! the receive path: the power to say, per packet, *accept*, *drop* (a SYN to a full
//! backlog, which the client will retransmit, as Linux drops it), or *defer* (a SYN
//! for which a listening socket must first be armed). A deferred frame is copied
//! aside and the interface stops receiving until the stack has acted and polls
//! again; then the frame is offered once more. Later packet filters and captures hook
//! in at this same point.
//!
//! Dropping is done by handing smoltcp an empty frame, which it counts as processed.
//! Transmit tokens pass through [`super::egress`] on the way out.

use super::Hooks;
use super::IfaceId;
use super::egress::{HookedTx, IpFields};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpAddress, IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket,
    UdpPacket,
};

/// The parts of a packet's headers that policies look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketInfo {
    /// IP source.
    pub src: IpAddress,
    /// IP destination.
    pub dst: IpAddress,
    /// The transport protocol.
    pub proto: IpProtocol,
    /// Transport source port (0 if none).
    pub src_port: u16,
    /// Transport destination port (0 if none).
    pub dst_port: u16,
    /// TCP SYN flag.
    pub syn: bool,
    /// TCP ACK flag.
    pub ack: bool,
    /// A TCP segment with the URG flag: the sequence number of its urgent byte
    /// (the one before the urgent pointer, as Linux reads it).
    pub urgent: Option<u32>,
    /// An ICMP "destination unreachable" and what it is about.
    pub icmp_error: Option<IcmpError>,
}

/// An ICMP destination-unreachable message and the datagram it reports on (from the
/// original IP header and first 8 bytes it quotes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpError {
    /// The errno Linux reports for it (`icmp_err_convert`, `icmpv6_err_convert`).
    pub errno: i32,
    /// The quoted datagram's protocol.
    pub orig_proto: IpProtocol,
    /// The quoted datagram's source (ours).
    pub orig_src: IpAddress,
    /// Its source port.
    pub orig_src_port: u16,
    /// The quoted datagram's destination (the peer).
    pub orig_dst: IpAddress,
    /// Its destination port.
    pub orig_dst_port: u16,
}

fn icmp4_errno(code: u8) -> i32 {
    match code {
        0 | 6 | 9 | 11 => libc::ENETUNREACH,
        2 => libc::ENOPROTOOPT,
        3 => libc::ECONNREFUSED,
        4 => libc::EMSGSIZE,
        5 => libc::EOPNOTSUPP,
        7 => libc::EHOSTDOWN,
        8 => libc::ENONET,
        _ => libc::EHOSTUNREACH,
    }
}

fn icmp6_errno(code: u8) -> i32 {
    match code {
        0 => libc::ENETUNREACH,
        1 | 5 | 6 => libc::EACCES,
        4 => libc::ECONNREFUSED,
        _ => libc::EHOSTUNREACH,
    }
}

/// Parses the datagram quoted by an ICMP error: its IP header and first 8 bytes.
fn quoted(b: &[u8], errno: i32) -> Option<IcmpError> {
    let (src, dst, proto, l4) = match b.first()? >> 4 {
        4 => {
            let p = Ipv4Packet::new_checked(b).ok()?;
            let hl = p.header_len() as usize;
            (
                IpAddress::Ipv4(p.src_addr()),
                IpAddress::Ipv4(p.dst_addr()),
                p.next_header(),
                b.get(hl..hl + 8)?,
            )
        }
        6 => {
            if b.len() < 48 {
                return None;
            }
            let p = Ipv6Packet::new_unchecked(b);
            (
                IpAddress::Ipv6(p.src_addr()),
                IpAddress::Ipv6(p.dst_addr()),
                p.next_header(),
                &b[40..48],
            )
        }
        _ => return None,
    };
    Some(IcmpError {
        errno,
        orig_proto: proto,
        orig_src: src,
        orig_src_port: u16::from_be_bytes([l4[0], l4[1]]),
        orig_dst: dst,
        orig_dst_port: u16::from_be_bytes([l4[2], l4[3]]),
    })
}

/// Parses the L3/L4 headers of a frame; `None` for anything that is not IP (ARP,
/// NDP is IP) or is too short to be valid (smoltcp then drops it itself).
pub fn parse(medium: Medium, frame: &[u8]) -> Option<PacketInfo> {
    let ip = match medium {
        Medium::Ethernet => {
            let eth = EthernetFrame::new_checked(frame).ok()?;
            match eth.ethertype() {
                EthernetProtocol::Ipv4 | EthernetProtocol::Ipv6 => {
                    &frame[EthernetFrame::<&[u8]>::header_len()..]
                }
                _ => return None,
            }
        }
        _ => frame,
    };
    let (src, dst, proto, payload) = match ip.first()? >> 4 {
        4 => {
            let p = Ipv4Packet::new_checked(ip).ok()?;
            let first_fragment = p.frag_offset() == 0;
            let hl = p.header_len() as usize;
            let tl = (p.total_len() as usize).min(ip.len());
            let payload = if first_fragment && tl >= hl {
                &ip[hl..tl]
            } else {
                &[][..]
            };
            (
                IpAddress::Ipv4(p.src_addr()),
                IpAddress::Ipv4(p.dst_addr()),
                p.next_header(),
                payload,
            )
        }
        6 => {
            let p = Ipv6Packet::new_checked(ip).ok()?;
            let end = (40 + p.payload_len() as usize).min(ip.len());
            (
                IpAddress::Ipv6(p.src_addr()),
                IpAddress::Ipv6(p.dst_addr()),
                p.next_header(),
                &ip[40..end],
            )
        }
        _ => return None,
    };
    let mut info = PacketInfo {
        src,
        dst,
        proto,
        src_port: 0,
        dst_port: 0,
        syn: false,
        ack: false,
        urgent: None,
        icmp_error: None,
    };
    match proto {
        IpProtocol::Tcp => {
            if let Ok(t) = TcpPacket::new_checked(payload) {
                info.src_port = t.src_port();
                info.dst_port = t.dst_port();
                info.syn = t.syn();
                info.ack = t.ack();
                if t.urg() && t.urgent_at() > 0 {
                    info.urgent =
                        Some(t.seq_number().0.wrapping_add(t.urgent_at() as i32 - 1) as u32);
                }
            }
        }
        IpProtocol::Udp => {
            if let Ok(u) = UdpPacket::new_checked(payload) {
                info.src_port = u.src_port();
                info.dst_port = u.dst_port();
            }
        }
        // Type 3 (v4) / 1 (v6): destination unreachable; 8 bytes of ICMP header, then
        // the quoted datagram.
        IpProtocol::Icmp if payload.len() > 8 && payload[0] == 3 => {
            info.icmp_error = quoted(&payload[8..], icmp4_errno(payload[1]));
        }
        IpProtocol::Icmpv6 if payload.len() > 8 && payload[0] == 1 => {
            info.icmp_error = quoted(&payload[8..], icmp6_errno(payload[1]));
        }
        _ => {}
    }
    Some(info)
}

/// What to do with a received packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Let smoltcp process it.
    Accept,
    /// Discard it silently.
    Drop,
    /// Hold it until the stack has polled its sockets again.
    Defer,
}

/// A policy deciding the fate of received packets.
pub trait Admission: super::egress::LaterFields {
    /// Decides on one packet received on `iface`.
    fn admit(&mut self, iface: IfaceId, pkt: &PacketInfo) -> Verdict;
}

/// Admits everything.
pub struct AcceptAll;

impl Admission for AcceptAll {
    fn admit(&mut self, _: IfaceId, _: &PacketInfo) -> Verdict {
        Verdict::Accept
    }
}

impl super::egress::LaterFields for AcceptAll {
    fn v6_fields(&mut self, _: IfaceId, _: &[u8]) -> IpFields {
        IpFields::default()
    }
}

/// A frame held back by [`Verdict::Defer`], one slot per interface.
pub struct Held {
    buf: Box<[u8]>,
    len: usize,
    full: bool,
}

impl Default for Held {
    fn default() -> Self {
        Held {
            buf: vec![0u8; 65536 + 64].into_boxed_slice(),
            len: 0,
            full: false,
        }
    }
}

impl Held {
    /// Whether a frame waits to be offered again.
    pub fn is_full(&self) -> bool {
        self.full
    }

    fn store(&mut self, frame: &[u8]) {
        let n = frame.len().min(self.buf.len());
        self.buf[..n].copy_from_slice(&frame[..n]);
        self.len = n;
        self.full = true;
    }
}

/// A device seen through the packet filter and an admission policy, for one
/// `Interface::poll`.
pub struct Hooked<'a, D: Device, A: Admission> {
    dev: &'a mut D,
    admission: &'a mut A,
    hooks: Hooks<'a>,
    held: &'a mut Held,
    iface: IfaceId,
    medium: Medium,
    /// A frame was deferred during this poll: receive nothing more until the stack
    /// has acted on it.
    deferred: bool,
    /// Frames still to take from the device in this poll (see [`FRAME_BUDGET`]).
    budget: usize,
}

/// Frames one poll takes from a device before the sockets are served. smoltcp
/// reads a device until it is empty, and a TAP queues up to its `txqueuelen`
/// frames (Linux's 1 000 then; netcell raises it to 4096 now): with a peer
/// flooding one UDP socket, the program got 80–90 k of the 390 k datagrams per
/// second the stack read (a burst overflowing the
/// socket's 512-datagram endpoint while its stand-in sat empty, as it reads;
/// the drops were not counted). Served every 64 frames, it got 108–145 k.
pub const FRAME_BUDGET: usize = 64;

impl<'a, D: Device, A: Admission> Hooked<'a, D, A> {
    /// Wraps `dev` for one poll of interface `iface`.
    pub fn new(
        dev: &'a mut D,
        admission: &'a mut A,
        hooks: Hooks<'a>,
        held: &'a mut Held,
        iface: IfaceId,
    ) -> Self {
        let medium = dev.capabilities().medium;
        Hooked {
            dev,
            admission,
            hooks,
            held,
            iface,
            medium,
            deferred: false,
            budget: FRAME_BUDGET,
        }
    }

    /// Whether a frame was deferred during this poll.
    pub fn deferred(&self) -> bool {
        self.deferred
    }

    /// Whether this poll stopped at its [`FRAME_BUDGET`] (the device may hold more).
    pub fn spent(&self) -> bool {
        self.budget == 0
    }

    /// A token for an answer to a received frame (what `receive` pairs with the
    /// frame: no socket's fields).
    fn reply_token(&mut self, now: Instant) -> Option<HookedTx<'_, D::TxToken<'_>>> {
        let (medium, iface, hooks) = (self.medium, self.iface, self.hooks);
        self.dev
            .transmit(now)
            .map(|inner| HookedTx::answer(inner, medium, hooks, iface))
    }

    /// Polls interface `n` with this device: as smoltcp alone while all its
    /// sockets are home; else each received frame is copied into `buf` (the
    /// stack's, reused) and given to the shard its connection lives in, and only
    /// the shards that changed or are due are polled for egress (see
    /// [`super::shards`]). Returns whether a socket's state may have changed.
    pub fn poll(&mut self, n: &mut super::NetIf, now: Instant, buf: &mut Vec<u8>) -> bool {
        use smoltcp::iface::{PollIngressSingleResult, PollResult};
        if !n.sockets.spread() {
            let changed = n.iface.poll(now, self, n.sockets.home_mut());
            return changed == PollResult::SocketStateChanged;
        }
        let mut changed = false;
        n.iface.poll_maintenance(now);
        loop {
            let (len, meta) = {
                let Some((rx, tx)) = self.receive(now) else {
                    break;
                };
                // The device's metadata (the id that carries a datagram's TTL and
                // TOS to its socket) goes along with the copy.
                let meta = phy::RxToken::meta(&rx);
                let len = phy::RxToken::consume(rx, |f| {
                    if buf.len() < f.len() {
                        buf.resize(f.len(), 0);
                    }
                    buf[..f.len()].copy_from_slice(f);
                    f.len()
                });
                drop(tx);
                (len, meta)
            };
            if len == 0 {
                // Dropped or held by the hook.
                continue;
            }
            let frame = &buf[..len];
            let (shard, sniff) = n.sockets.route(self.medium, frame);
            if sniff {
                // Home's raw TCP sockets take their copy; home's own answer to a
                // segment none of its sockets takes (a reset) goes nowhere.
                let mut copy = SniffOnly {
                    frame: Some((frame, meta)),
                    caps: self.dev.capabilities(),
                };
                let _ = n
                    .iface
                    .poll_ingress_single(now, &mut copy, n.sockets.set_mut(0));
            }
            let mut one = OneFrame {
                dev: self,
                frame: Some((frame, meta)),
            };
            changed |= n
                .iface
                .poll_ingress_single(now, &mut one, n.sockets.set_mut(shard))
                == PollIngressSingleResult::SocketStateChanged;
        }
        for i in 0..n.sockets.shard_count() {
            if !n.sockets.egress_due(i, now) {
                continue;
            }
            while n.iface.poll_egress(now, self, n.sockets.set_mut(i))
                == PollResult::SocketStateChanged
            {
                changed = true;
            }
            n.sockets.polled(i, &mut n.iface, now);
        }
        changed
    }
}

/// One frame, already through the hook, for one ingress poll of the shard it is
/// for; answers and egress go out through the hooked device.
struct OneFrame<'x, 'a, D: Device, A: Admission> {
    dev: &'x mut Hooked<'a, D, A>,
    frame: Option<(&'x [u8], phy::PacketMeta)>,
}

/// One frame for home's raw sockets only: whatever smoltcp answers is dropped.
struct SniffOnly<'x> {
    frame: Option<(&'x [u8], phy::PacketMeta)>,
    caps: DeviceCapabilities,
}

/// A transmit token that drops the frame.
struct Discard;

impl phy::TxToken for Discard {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut b = [0u8; 256];
        match b.get_mut(..len) {
            Some(b) => f(b),
            None => f(&mut vec![0; len]),
        }
    }
}

impl<'x> Device for SniffOnly<'x> {
    type RxToken<'b>
        = FrameRx<'x>
    where
        Self: 'b;
    type TxToken<'b>
        = Discard
    where
        Self: 'b;

    fn receive(&mut self, _: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let (frame, meta) = self.frame.take()?;
        Some((FrameRx(frame, meta), Discard))
    }

    fn transmit(&mut self, _: Instant) -> Option<Self::TxToken<'_>> {
        None
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.caps.clone()
    }
}

/// [`OneFrame`]'s receive token.
struct FrameRx<'x>(&'x [u8], phy::PacketMeta);

impl phy::RxToken for FrameRx<'_> {
    fn consume<T, F: FnOnce(&[u8]) -> T>(self, f: F) -> T {
        f(self.0)
    }

    fn meta(&self) -> phy::PacketMeta {
        self.1
    }
}

impl<'x, 'a, D: Device, A: Admission> Device for OneFrame<'x, 'a, D, A> {
    type RxToken<'b>
        = FrameRx<'x>
    where
        Self: 'b;
    type TxToken<'b>
        = HookedTx<'b, D::TxToken<'b>>
    where
        Self: 'b;

    fn receive(&mut self, now: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let (frame, meta) = self.frame.take()?;
        let tx = self.dev.reply_token(now)?;
        Some((FrameRx(frame, meta), tx))
    }

    fn transmit(&mut self, now: Instant) -> Option<Self::TxToken<'_>> {
        self.dev.transmit(now)
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.dev.dev.capabilities()
    }
}

/// Returns an injected frame's buffer to where it came from: loss recovery
/// (`copied`) or the filter (a reject's answer).
fn give_back(hooks: Hooks<'_>, frame: Vec<u8>, copied: bool) {
    match copied {
        true => hooks.recovery.borrow_mut().recycle(frame),
        false => hooks.filter.borrow_mut().recycle(frame),
    }
}

/// Receive token of [`Hooked`].
pub struct HookedRx<'b, R: phy::RxToken, A: Admission> {
    live: Option<R>,
    /// A reject's answer, or a copy loss recovery made, handed to the stack
    /// as if it had arrived.
    injected: Option<Vec<u8>>,
    /// Whether `injected` is loss recovery's (its buffer goes back there).
    copied: bool,
    /// The time of this poll.
    now: Instant,
    hooks: Hooks<'b>,
    admission: &'b mut A,
    held: &'b mut Held,
    deferred: &'b mut bool,
    iface: IfaceId,
    medium: Medium,
}

impl<D: Device, A: Admission> Device for Hooked<'_, D, A> {
    type RxToken<'b>
        = HookedRx<'b, D::RxToken<'b>, A>
    where
        Self: 'b;
    type TxToken<'b>
        = HookedTx<'b, D::TxToken<'b>>
    where
        Self: 'b;

    fn receive(&mut self, now: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let Hooked {
            dev,
            admission,
            hooks,
            held,
            iface,
            medium,
            deferred,
            budget,
        } = self;
        let (admission, held, hooks) = (&mut **admission, &mut **held, *hooks);
        let filter = hooks.filter;
        if *deferred {
            return None;
        }
        let medium_v = *medium;
        let iface_v = *iface;
        // Responses to received packets: no socket's fields.
        let wrap = |inner| HookedTx::answer(inner, medium_v, hooks, iface_v);
        // Loss recovery's copies of an ACK follow it at once.
        let copy = hooks.recovery.borrow_mut().take(iface_v);
        let (arrival, copied) = match copy {
            Some(c) => (Some(c), true),
            None => (filter.borrow_mut().take_arrival(iface_v), false),
        };
        if let Some(frame) = arrival {
            let Some(tx) = dev.transmit(now) else {
                give_back(hooks, frame, copied);
                return None;
            };
            let rx = HookedRx::new(
                None,
                Some((frame, copied)),
                now,
                hooks,
                admission,
                held,
                deferred,
                *iface,
                *medium,
            );
            return Some((rx, wrap(tx)));
        }
        if held.full {
            let tx = wrap(dev.transmit(now)?);
            let rx = HookedRx::new(
                None, None, now, hooks, admission, held, deferred, *iface, *medium,
            );
            return Some((rx, tx));
        }
        if *budget == 0 {
            return None;
        }
        let (live, tx) = dev.receive(now)?;
        *budget -= 1;
        let rx = HookedRx::new(
            Some(live),
            None,
            now,
            hooks,
            admission,
            held,
            deferred,
            *iface,
            *medium,
        );
        Some((rx, wrap(tx)))
    }

    fn transmit(&mut self, now: Instant) -> Option<Self::TxToken<'_>> {
        let medium = self.medium;
        let iface = self.iface;
        let later: &mut dyn super::egress::LaterFields = &mut *self.admission;
        let hooks = self.hooks;
        self.dev.transmit(now).map(|inner| HookedTx {
            inner,
            medium,
            fields: IpFields::default(),
            later: Some((later, iface)),
            hooks: Some((hooks, iface)),
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.dev.capabilities()
    }
}

impl<'b, R: phy::RxToken, A: Admission> HookedRx<'b, R, A> {
    /// A token for a frame from the device (`live`), a reject's answer
    /// (`injected`), or neither (the held frame).
    #[allow(clippy::too_many_arguments)]
    fn new(
        live: Option<R>,
        injected: Option<(Vec<u8>, bool)>,
        now: Instant,
        hooks: Hooks<'b>,
        admission: &'b mut A,
        held: &'b mut Held,
        deferred: &'b mut bool,
        iface: IfaceId,
        medium: Medium,
    ) -> Self {
        let (injected, copied) = match injected {
            Some((f, c)) => (Some(f), c),
            None => (None, false),
        };
        HookedRx {
            live,
            injected,
            copied,
            now,
            hooks,
            admission,
            held,
            deferred,
            iface,
            medium,
        }
    }
}

impl<R: phy::RxToken, A: Admission> phy::RxToken for HookedRx<'_, R, A> {
    fn consume<T, F: FnOnce(&[u8]) -> T>(self, f: F) -> T {
        let HookedRx {
            live,
            injected,
            copied,
            now,
            hooks,
            admission,
            held,
            deferred,
            iface,
            medium,
        } = self;
        let filter = hooks.filter;
        if let Some(frame) = injected {
            let r = f(&frame);
            give_back(hooks, frame, copied);
            return r;
        }
        let verdict = |frame: &[u8], admission: &mut A| match parse(medium, frame) {
            Some(info) => admission.admit(iface, &info),
            None => Verdict::Accept,
        };
        match live {
            Some(rx) => rx.consume(|frame| {
                // Recorded as it arrived (lo's packets are recorded as sent).
                if iface != super::LO {
                    let mut c = hooks.capture.borrow_mut();
                    if c.active() {
                        c.frame(iface, false, frame);
                    }
                }
                let passes = filter.borrow_mut().input(iface, medium, frame);
                if !passes {
                    return f(&[]);
                }
                match verdict(frame, admission) {
                    Verdict::Accept => {
                        // lo loses nothing: loss recovery does not follow it.
                        if iface != super::LO {
                            hooks
                                .recovery
                                .borrow_mut()
                                .observe(iface, medium, frame, now);
                        }
                        f(frame)
                    }
                    Verdict::Drop => f(&[]),
                    Verdict::Defer => {
                        held.store(frame);
                        *deferred = true;
                        f(&[])
                    }
                }
            }),
            None => {
                let len = held.len;
                match verdict(&held.buf[..len], admission) {
                    Verdict::Accept => {
                        held.full = false;
                        f(&held.buf[..len])
                    }
                    Verdict::Drop => {
                        held.full = false;
                        f(&[])
                    }
                    Verdict::Defer => {
                        *deferred = true;
                        f(&[])
                    }
                }
            }
        }
    }

    fn meta(&self) -> phy::PacketMeta {
        self.live.as_ref().map(|r| r.meta()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::{Ipv4Address, TcpControl, TcpRepr, TcpSeqNumber};

    fn syn_packet(dst_port: u16) -> Vec<u8> {
        let src = Ipv4Address::new(10, 0, 0, 1);
        let dst = Ipv4Address::new(10, 0, 0, 2);
        let tcp = TcpRepr {
            src_port: 40000,
            dst_port,
            control: TcpControl::Syn,
            seq_number: TcpSeqNumber(1),
            ack_number: None,
            window_len: 1000,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: None,
            payload: &[],
        };
        crate::testing::ipv4_tcp(src, dst, &tcp)
    }

    #[test]
    fn parses_a_syn() {
        let p = parse(Medium::Ip, &syn_packet(8080)).unwrap();
        assert_eq!(p.proto, IpProtocol::Tcp);
        assert_eq!(p.dst_port, 8080);
        assert!(p.syn && !p.ack);
    }

    #[test]
    fn garbage_does_not_panic() {
        let mut x: u32 = 12345;
        for len in 0..200 {
            let frame: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1103515245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            let _ = parse(Medium::Ethernet, &frame);
            let _ = parse(Medium::Ip, &frame);
        }
        let mut p = syn_packet(80);
        p.truncate(30);
        let info = parse(Medium::Ip, &p);
        assert!(info.is_none() || info.unwrap().dst_port == 0);
    }
}
