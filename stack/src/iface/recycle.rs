//! Closed smoltcp TCP sockets, kept for the next connection instead of freed.
//!
//! # Why
//!
//! A TCP connection's smoltcp socket owns its buffers (1 MiB each way by default,
//! less as the buffer budget fills: [`crate::socket::budget`]). They are large
//! allocations, so each is a fresh `mmap`, a page fault at its first touch and an
//! `munmap` at the end; a connect+close on the container's loopback made four of
//! each (two sockets), and `munmap` flushes the TLB of every CPU the stack's
//! threads ran on. smoltcp 0.14 gives no buffer back out of a socket, but a socket
//! in `CLOSED` or `TIME_WAIT` can be used again as it is: `connect` and `listen`
//! start by resetting it (state, timers, sequence numbers, RTT estimate,
//! reassembly, both buffers emptied, the window scale worked out again from the
//! buffer). Measured on the loopback (`ctlbench`, preload, interleaved runs):
//! connect+close pairs 13.0–13.8 k → 14.0–16.6 k/s with everything on one CPU,
//! 10.2–10.6 k → 10.4–13.8 k/s on two.
//!
//! # What a reused socket keeps, and why that is safe
//!
//! What the reset leaves is set again by whoever takes a socket from here: the
//! options ([`crate::socket::options::Options::apply`]: Nagle, delayed ACK,
//! keep-alive, timeouts, hop limit, and a fresh congestion controller) and the
//! timestamp generator (smoltcp turns it off for a peer whose SYN had none). The
//! rest of what it keeps is the duplicate-ACK count and the last ACK seen (a new
//! connection's first ACK replaces them: a match of 32-bit numbers by chance at
//! worst counts one duplicate), a pending fast retransmission (at worst one
//! segment of the new connection sent again), and the last timestamp the peer
//! sent. That one smoltcp echoes in a `connect`'s SYN (a fresh socket echoes 0):
//! the egress hook sets the echo of every segment without ACK to 0, as RFC 7323
//! asks ([`super::egress`]), so nothing of an old connection reaches a new peer.
//! The bytes an old connection left in the buffers cannot be read: a ring buffer
//! gives out only what was written into it since it was emptied.
//!
//! # Bounds
//!
//! At most [`KEEP`] sockets; none is taken for a connection whose buffers it does
//! not match within a quarter (the budget's share for the new connection, or a
//! little more: the budget counts what the socket really has once it is in a
//! set). What is kept here is outside the budget, which counts the sockets of the
//! interfaces: [`KEEP`] × 2 MiB of address space at most, resident only as far as
//! their connections touched it. A socket not taken within [`IDLE`] is freed, so
//! an idle container holds none.

use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};

/// Sockets kept at most.
pub const KEEP: usize = 16;

/// How long a kept socket waits for a connection before it is freed.
pub const IDLE: Duration = Duration::from_secs(2);

/// The kept sockets (see the module docs).
#[derive(Default)]
pub struct Recycled {
    socks: Vec<tcp::Socket<'static>>,
    /// When a socket was last put here or taken.
    last: Option<Instant>,
}

impl Recycled {
    /// Keeps `s` if it is closed (`CLOSED` or `TIME_WAIT`) and there is room;
    /// else it is dropped.
    pub fn put(&mut self, s: tcp::Socket<'static>, now: Instant) {
        if self.socks.len() < KEEP && !s.is_open() {
            self.socks.push(s);
            self.last = Some(now);
        }
    }

    /// A kept socket with buffers of at least `rx` and `tx` bytes and at most a
    /// quarter more, `free` bytes in all at most, the closest; `None` if none
    /// fits.
    pub fn take(
        &mut self,
        rx: usize,
        tx: usize,
        free: usize,
        now: Instant,
    ) -> Option<tcp::Socket<'static>> {
        let fits = |want: usize, have: usize| have >= want && have <= want + want / 4;
        let i = self
            .socks
            .iter()
            .enumerate()
            .filter(|(_, s)| fits(rx, s.recv_capacity()) && fits(tx, s.send_capacity()))
            .filter(|(_, s)| s.recv_capacity() + s.send_capacity() <= free)
            .min_by_key(|(_, s)| s.recv_capacity() + s.send_capacity())
            .map(|(i, _)| i)?;
        self.last = Some(now);
        Some(self.socks.swap_remove(i))
    }

    /// Frees every kept socket once none was put or taken for [`IDLE`].
    pub fn trim(&mut self, now: Instant) {
        if self.last.is_some_and(|t| now >= t + IDLE) {
            self.socks.clear();
            self.last = None;
        }
    }

    /// When [`Recycled::trim`] has work next.
    pub fn trim_at(&self) -> Option<Instant> {
        self.last
            .filter(|_| !self.socks.is_empty())
            .map(|t| t + IDLE)
    }

    /// Sockets kept now.
    pub fn len(&self) -> usize {
        self.socks.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.socks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sock(rx: usize, tx: usize) -> tcp::Socket<'static> {
        tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; rx]),
            tcp::SocketBuffer::new(vec![0; tx]),
        )
    }

    #[test]
    fn only_closed_sockets_are_kept_and_only_so_many() {
        let now = Instant::from_secs(1);
        let mut r = Recycled::default();
        let mut listening = sock(4096, 4096);
        listening.listen(80).unwrap();
        r.put(listening, now);
        assert!(r.is_empty(), "an open socket is not kept");
        for _ in 0..KEEP + 3 {
            r.put(sock(4096, 4096), now);
        }
        assert_eq!(r.len(), KEEP);
    }

    #[test]
    fn a_socket_is_taken_only_for_buffers_it_fits() {
        let now = Instant::from_secs(1);
        let mut r = Recycled::default();
        r.put(sock(100_000, 100_000), now);
        r.put(sock(90_000, 90_000), now);
        // Too small, or more than a quarter too big: none.
        assert!(r.take(100_001, 100_000, usize::MAX, now).is_none());
        assert!(r.take(70_000, 70_000, usize::MAX, now).is_none());
        // The closest that fits.
        // Nor one that the budget's free bytes do not hold.
        assert!(r.take(80_000, 80_000, 179_999, now).is_none());
        let s = r.take(80_000, 80_000, 180_000, now).unwrap();
        assert_eq!(s.recv_capacity(), 90_000);
        let s = r.take(100_000, 90_000, usize::MAX, now).unwrap();
        assert_eq!((s.recv_capacity(), s.send_capacity()), (100_000, 100_000));
        assert!(r.is_empty());
    }

    #[test]
    fn kept_sockets_go_when_idle() {
        let t0 = Instant::from_secs(10);
        let mut r = Recycled::default();
        assert_eq!(r.trim_at(), None);
        r.put(sock(4096, 4096), t0);
        assert_eq!(r.trim_at(), Some(t0 + IDLE));
        r.trim(t0 + IDLE - Duration::from_millis(1));
        assert_eq!(r.len(), 1);
        r.trim(t0 + IDLE);
        assert!(r.is_empty());
        assert_eq!(r.trim_at(), None);
    }

    #[test]
    fn a_reused_socket_connects_like_a_new_one() {
        // A socket closed after a connection, taken again: connect() resets it.
        let now = Instant::from_secs(1);
        let mut r = Recycled::default();
        let mut s = sock(8192, 8192);
        s.listen(80).unwrap();
        s.abort();
        r.put(s, now);
        let mut s = r.take(8192, 8192, usize::MAX, now).unwrap();
        assert_eq!(s.state(), tcp::State::Closed);
        let mut iface = smoltcp::iface::Interface::new(
            smoltcp::iface::Config::new(smoltcp::wire::HardwareAddress::Ip),
            &mut smoltcp::phy::Loopback::new(smoltcp::phy::Medium::Ip),
            now,
        );
        iface.update_ip_addrs(|a| {
            a.push(smoltcp::wire::IpCidr::new(
                smoltcp::wire::Ipv4Address::new(127, 0, 0, 1).into(),
                8,
            ))
            .unwrap();
        });
        s.connect(
            iface.context(),
            (smoltcp::wire::Ipv4Address::new(127, 0, 0, 1), 80),
            40000,
        )
        .unwrap();
        assert_eq!(s.state(), tcp::State::SynSent);
        assert_eq!(s.recv_queue(), 0);
        assert_eq!(s.send_queue(), 0);
    }
}
