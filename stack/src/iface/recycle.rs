//! Closed smoltcp TCP sockets, kept for a listener's next connection instead of
//! freed.
//!
//! # Why
//!
//! A TCP connection's smoltcp socket owns its buffers (1 MiB each way by default,
//! less as the buffer budget fills: [`crate::socket::budget`]). They are large
//! allocations, so each is a fresh `mmap`, a page fault at its first touch and an
//! `munmap` at the end, which flushes the TLB of every CPU the stack's threads ran
//! on; a connect+close on the container's loopback made four of each. smoltcp 0.14
//! gives no buffer back out of a socket, but a socket in `CLOSED` or `TIME_WAIT`
//! can be used again whole: `listen` starts by resetting it (state, timers,
//! sequence numbers, RTT estimate, reassembly, both buffers emptied, the window
//! scale worked out again from the buffer). A cache of freed blocks had failed
//! here: the budget gives each new connection a slightly different size, so a
//! kept socket is taken for buffers it matches within a quarter.
//!
//! # Only for listeners
//!
//! What the reset leaves is set again by whoever takes a socket: the options
//! ([`crate::socket::options::Options::apply`]: Nagle, delayed ACK, keep-alive,
//! timeouts, hop limit, a fresh congestion controller) and the timestamp
//! generator (smoltcp turns it off for a peer whose SYN had none). Of the rest,
//! the last ACK seen and the duplicate-ACK count are replaced by the handshake's
//! ACK. A fast retransmission left pending (the old peer sent three duplicate
//! ACKs after everything but the FIN was acknowledged, and nothing was left to
//! send again) survives too: the new connection's first data segment then
//! leaves by that path, up to one MSS regardless of the peer's window and the
//! congestion window — a window under one MSS at the start of a connection is
//! what that would overrun, and it stays one segment. The one that matters is the last timestamp the old peer sent: smoltcp
//! echoes it in every segment it sends. A listener's socket receives the SYN
//! (and with it the new peer's timestamp, or timestamps turned off) before it
//! sends anything, so nothing of the old connection reaches the new peer. A
//! `connect` sends first — its SYN would echo the old peer's timestamp, with no
//! way to clear it — so a connecting socket is always new. Bytes an old
//! connection left in the buffers cannot be read: a ring buffer gives out only
//! what was written into it since it was emptied. Measured on the loopback
//! (`ctlbench`, preload, interleaved runs, everything on one CPU): connect+close
//! pairs 13.0–13.6 k → 15.0–15.5 k/s (reusing the connecting side's socket too
//! gave 16.1–16.6 k).
//!
//! # Bounds
//!
//! At most [`KEEP`] sockets, each for at most [`IDLE`]: an idle container holds
//! none. They count against `--max-buffer-memory` like the sockets in use: a new
//! socket that would pass the limit with them frees them first. A program that
//! set its buffer sizes (`SO_RCVBUF`, `SO_SNDBUF`) gets exactly those.

use smoltcp::socket::tcp;
use std::time::{Duration, Instant};

/// Sockets kept at most.
pub const KEEP: usize = 16;

/// How long a kept socket waits for a connection before it is freed.
pub const IDLE: Duration = Duration::from_secs(2);

/// The kept sockets (see the module docs), each with when it was put here.
#[derive(Default)]
pub struct Recycled {
    socks: Vec<(tcp::Socket<'static>, Instant)>,
    /// Sockets taken for reuse so far.
    taken: u64,
}

/// Buffer bytes of one socket.
fn bytes(s: &tcp::Socket<'_>) -> usize {
    s.recv_capacity() + s.send_capacity()
}

impl Recycled {
    /// Keeps `s` (closed at `now`) if it is `CLOSED` or `TIME_WAIT`, in place of
    /// the oldest when [`KEEP`] are kept; anything else is dropped.
    pub fn put(&mut self, s: tcp::Socket<'static>, now: Instant) {
        if s.is_open() {
            return;
        }
        if self.socks.len() >= KEEP {
            self.socks.remove(0);
        }
        self.socks.push((s, now));
    }

    /// A kept socket with buffers of at least `rx` and `tx` bytes and at most a
    /// quarter more (`exact`: just those), `free` bytes in all at most, the
    /// closest; `None` if none fits.
    pub fn take(
        &mut self,
        rx: usize,
        tx: usize,
        exact: bool,
        free: usize,
    ) -> Option<tcp::Socket<'static>> {
        let fits = |want: usize, have: usize| {
            have >= want && (have <= want + want / 4) && (!exact || have == want)
        };
        let i = self
            .socks
            .iter()
            .enumerate()
            .filter(|(_, (s, _))| fits(rx, s.recv_capacity()) && fits(tx, s.send_capacity()))
            .filter(|(_, (s, _))| bytes(s) <= free)
            .min_by_key(|(_, (s, _))| bytes(s))
            .map(|(i, _)| i)?;
        self.taken += 1;
        Some(self.socks.remove(i).0)
    }

    /// Sockets taken for reuse so far.
    pub fn taken(&self) -> u64 {
        self.taken
    }

    /// Frees the sockets kept for [`IDLE`] by `now`.
    pub fn trim(&mut self, now: Instant) {
        self.socks.retain(|(_, t)| now < *t + IDLE);
    }

    /// When [`Recycled::trim`] frees one next.
    pub fn trim_at(&self) -> Option<Instant> {
        self.socks.first().map(|(_, t)| *t + IDLE)
    }

    /// Frees every kept socket.
    pub fn clear(&mut self) {
        self.socks.clear();
    }

    /// Buffer bytes the kept sockets hold.
    pub fn bytes(&self) -> usize {
        self.socks.iter().map(|(s, _)| bytes(s)).sum()
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
    fn only_closed_sockets_are_kept_the_newest_ones() {
        let t0 = Instant::now();
        let mut r = Recycled::default();
        let mut listening = sock(4096, 4096);
        listening.listen(80).unwrap();
        r.put(listening, t0);
        assert!(r.is_empty(), "an open socket is not kept");
        // The first one is bigger: it is the one a full pool gives up.
        r.put(sock(8192, 8192), t0);
        for i in 0..KEEP {
            r.put(sock(4096, 4096), t0 + Duration::from_millis(i as u64));
        }
        assert_eq!(r.len(), KEEP);
        assert_eq!(r.bytes(), KEEP * 8192);
        assert!(r.take(8192, 8192, false, usize::MAX).is_none());
    }

    #[test]
    fn a_socket_is_taken_only_for_buffers_it_fits() {
        let now = Instant::now();
        let mut r = Recycled::default();
        r.put(sock(100_000, 100_000), now);
        r.put(sock(90_000, 90_000), now);
        r.put(sock(80_000, 80_000), now);
        // Too small, or more than a quarter too big: none.
        assert!(r.take(100_001, 100_000, false, usize::MAX).is_none());
        assert!(r.take(60_000, 60_000, false, usize::MAX).is_none());
        // Nor one that the budget's free bytes do not hold.
        assert!(r.take(81_000, 81_000, false, 179_999).is_none());
        // The closest that fits.
        let s = r.take(75_000, 75_000, false, usize::MAX).unwrap();
        assert_eq!(s.recv_capacity(), 80_000);
        // Sizes the program set: only an exact match.
        assert!(r.take(85_000, 85_000, true, usize::MAX).is_none());
        let s = r.take(90_000, 90_000, true, usize::MAX).unwrap();
        assert_eq!(s.recv_capacity(), 90_000);
        let s = r.take(100_000, 90_000, false, usize::MAX).unwrap();
        assert_eq!((s.recv_capacity(), s.send_capacity()), (100_000, 100_000));
        assert!(r.is_empty());
    }

    #[test]
    fn each_kept_socket_goes_after_its_idle_time() {
        let t0 = Instant::now();
        let mut r = Recycled::default();
        assert_eq!(r.trim_at(), None);
        r.put(sock(4096, 4096), t0);
        let t1 = t0 + Duration::from_secs(1);
        r.put(sock(4096, 4096), t1);
        assert_eq!(r.trim_at(), Some(t0 + IDLE));
        r.trim(t0 + IDLE - Duration::from_millis(1));
        assert_eq!(r.len(), 2);
        // The first goes; putting or taking others does not keep it.
        r.put(sock(8192, 8192), t1);
        assert!(r.take(8192, 8192, true, usize::MAX).is_some());
        r.trim(t0 + IDLE);
        assert_eq!(r.len(), 1);
        assert_eq!(r.trim_at(), Some(t1 + IDLE));
        r.trim(t1 + IDLE);
        assert!(r.is_empty());
        assert_eq!(r.trim_at(), None);
    }
}
