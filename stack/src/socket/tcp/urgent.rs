//! Urgent data (`MSG_OOB`): the one byte a program marks urgent travels with the
//! URG flag and the urgent pointer, and arrives as the receiving program's
//! out-of-band byte — `recv(MSG_OOB)`, `SIOCATMARK`, or in line with
//! `SO_OOBINLINE` — as on Linux.
//!
//! smoltcp knows nothing of urgent data, so it is carried around it:
//!
//! - **Sending.** `AF_UNIX` streams have `MSG_OOB` too: the program's urgent byte
//!   arrives in `T` as its out-of-band byte, and `T` has `SO_OOBINLINE` on, so the
//!   byte is never dropped and a read stops before it (at the mark). The pump sees
//!   `POLLPRI`, moves the bytes up to the mark, and then the urgent byte alone; its
//!   sequence number is remembered, and the egress hook sets URG and the urgent
//!   pointer on the segments that leave before it.
//! - **Receiving.** The ingress hook notes the sequence number of each urgent byte
//!   that arrives; the pump moves the bytes before it into `T` as usual, and the
//!   urgent byte itself with `MSG_OOB`, so that the program's socket holds it as
//!   its out-of-band byte (or in line, with its own `SO_OOBINLINE`).
//!
//! smoltcp keeps its sequence numbers to itself; they are read from its `Debug`
//! output, only when urgent data passes (rare: `ftp` aborts, `telnet` interrupts).

use super::*;

/// Urgent bytes remembered at most, each way (the oldest is forgotten: it then
/// travels as plain data).
const MAX_URGENT: usize = 64;

/// A connection as seen in packets: (local address, port, remote address, port).
pub(crate) type Flow = (IpAddress, u16, IpAddress, u16);

/// What the table remembers of urgent data.
#[derive(Default)]
pub(crate) struct Urgent {
    /// Sent: the flow and the sequence number after the urgent byte (the urgent
    /// pointer's target).
    out: Vec<(Flow, u32)>,
    /// Received: the flow and the urgent byte's sequence number.
    arrived: Vec<(Flow, u32)>,
}

/// `a` comes before `b` in sequence space.
fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// smoltcp's `local_seq_no` (the first byte of its send buffer) and
/// `remote_seq_no` (the next byte a read takes), from its `Debug` output.
fn seq_numbers(sk: &tcp::Socket<'_>) -> Option<(u32, u32)> {
    let d = format!("{sk:?}");
    let field = |name: &str| -> Option<u32> {
        let at = d.find(&format!("{name}: SeqNumber("))? + name.len() + 12;
        let end = d[at..].find(')')? + at;
        d[at..end].parse::<i32>().ok().map(|v| v as u32)
    };
    Some((field("local_seq_no")?, field("remote_seq_no")?))
}

/// The flow of connection `c` of socket `s`.
pub(super) fn flow_of(s: &Socket, c: &Conn) -> Option<Flow> {
    let l = s.local?;
    Some((
        l.ip().into(),
        l.port(),
        c.remote.ip().into(),
        c.remote.port(),
    ))
}

impl Sockets {
    /// The pump just moved an urgent byte into `sk` (the last byte of its send
    /// buffer): the segments up to it leave with the urgent pointer.
    pub(super) fn urgent_sent(&mut self, flow: Flow, sk: &tcp::Socket<'_>) {
        let Some((snd_una, _)) = seq_numbers(sk) else {
            return;
        };
        let up = snd_una.wrapping_add(sk.send_queue() as u32);
        let out = &mut self.tcp.urgent.out;
        if out.len() == MAX_URGENT {
            out.remove(0);
        }
        out.push((flow, up));
    }

    /// A segment with URG arrived (the ingress hook): remember its urgent byte.
    pub(crate) fn urgent_arrived(&mut self, pkt: &PacketInfo) {
        let Some(seq) = pkt.urgent else { return };
        let flow = (pkt.dst, pkt.dst_port, pkt.src, pkt.src_port);
        let arrived = &mut self.tcp.urgent.arrived;
        // A retransmission, or a later urgent byte of the same flow replacing one
        // not yet read (Linux keeps only the latest too).
        arrived.retain(|(f, _)| *f != flow);
        if arrived.len() == MAX_URGENT {
            arrived.remove(0);
        }
        arrived.push((flow, seq));
    }

    /// Where the next urgent byte of `flow` is in what `sk` holds to be read: the
    /// number of bytes before it. Forgets one the program can no longer get.
    pub(super) fn urgent_offset(&mut self, flow: Flow, sk: &tcp::Socket<'_>) -> Option<usize> {
        let arrived = &mut self.tcp.urgent.arrived;
        let i = arrived.iter().position(|(f, _)| *f == flow)?;
        let (_, rcv) = seq_numbers(sk)?;
        let seq = arrived[i].1;
        if before(seq, rcv) {
            arrived.remove(i);
            return None;
        }
        let off = seq.wrapping_sub(rcv) as usize;
        (off < sk.recv_queue()).then_some(off)
    }

    /// The urgent byte of `flow` went to the program.
    pub(super) fn urgent_delivered(&mut self, flow: Flow) {
        self.tcp.urgent.arrived.retain(|(f, _)| *f != flow);
    }

    /// Whether urgent bytes arrived that the program has not got yet.
    pub(super) fn urgent_arrivals(&self) -> bool {
        !self.tcp.urgent.arrived.is_empty()
    }

    /// Whether a sent urgent byte waits for its segments to leave.
    pub(crate) fn urgent_pending(&self) -> bool {
        !self.tcp.urgent.out.is_empty()
    }

    /// A TCP segment leaving (the egress hook; `ip` is its IP packet): before the
    /// urgent pointer of its flow, it gets URG and the pointer.
    pub(crate) fn urgent_leaving(&mut self, ip: &mut [u8]) {
        let Some((flow, off)) = tcp_flow(ip) else {
            return;
        };
        let out = &mut self.tcp.urgent.out;
        let Some(i) = out.iter().position(|(f, _)| *f == flow) else {
            return;
        };
        let up = out[i].1;
        let tcp = &mut ip[off..];
        let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
        if !before(seq, up) {
            // Everything up to the urgent byte has left.
            out.remove(i);
            return;
        }
        let ptr = up.wrapping_sub(seq).min(u16::MAX as u32) as u16;
        let old_flags = u16::from_be_bytes([tcp[12], tcp[13]]);
        let old_ptr = u16::from_be_bytes([tcp[18], tcp[19]]);
        tcp[13] |= 0x20;
        tcp[18..20].copy_from_slice(&ptr.to_be_bytes());
        let new_flags = u16::from_be_bytes([tcp[12], tcp[13]]);
        // RFC 1624: HC' = ~(~HC + ~m + m') for each changed 16-bit word.
        let mut sum = !u16::from_be_bytes([tcp[16], tcp[17]]) as u32;
        for (old, new) in [(old_flags, new_flags), (old_ptr, ptr)] {
            sum += (!old) as u32 + new as u32;
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        tcp[16..18].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    }
}

/// The flow of the TCP segment in IP packet `ip` (as its sender sees it), and
/// where its TCP header starts.
fn tcp_flow(ip: &[u8]) -> Option<(Flow, usize)> {
    let (src, dst, off) = match ip.first()? >> 4 {
        4 if ip.len() >= 20 && ip[9] == 6 => {
            let hl = (ip[0] & 0x0f) as usize * 4;
            let a = |i: usize| IpAddress::v4(ip[i], ip[i + 1], ip[i + 2], ip[i + 3]);
            (a(12), a(16), hl)
        }
        6 if ip.len() >= 40 && ip[6] == 6 => {
            let a = |i: usize| {
                let mut b = [0u8; 16];
                b.copy_from_slice(&ip[i..i + 16]);
                IpAddress::Ipv6(std::net::Ipv6Addr::from(b))
            };
            (a(8), a(24), 40)
        }
        _ => return None,
    };
    let t = ip.get(off..off + 20)?;
    let sport = u16::from_be_bytes([t[0], t[1]]);
    let dport = u16::from_be_bytes([t[2], t[3]]);
    Some(((src, sport, dst, dport), off))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_order_wraps() {
        assert!(before(1, 2));
        assert!(before(u32::MAX, 0));
        assert!(!before(5, 5));
        assert!(!before(0, u32::MAX));
    }

    #[test]
    fn smoltcp_sequence_numbers_are_read_from_its_debug_output() {
        let s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 64]),
            tcp::SocketBuffer::new(vec![0; 64]),
        );
        assert_eq!(seq_numbers(&s), Some((0, 0)));
    }
}
