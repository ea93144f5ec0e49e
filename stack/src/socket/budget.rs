//! What one container can make the stack hold, and how much of it.
//!
//! A container's programs are untrusted, and everything they can make the stack
//! allocate has a limit ([`super::SocketConfig`]):
//!
//! - **Buffer memory** — the big one: a TCP connection's smoltcp buffers are
//!   1 MiB each way by default, and 1200 unread loopback pairs once took a stack
//!   to 5 GiB. Every smoltcp socket's buffer capacity counts (TCP windows, UDP
//!   endpoint, ICMP and raw queues), whether its pages were touched yet or not, so
//!   the stack's memory stays under the limit whatever the traffic. A new TCP
//!   socket gets the buffers it asks for scaled by the square of the budget's free
//!   fraction (all of it on an idle stack, a quarter when half is taken, 1/100 with
//!   a tenth left: smaller windows, slower, still working), at least
//!   [`MIN_TCP_BUFFER`] each way; when not even that is left, `connect` fails with
//!   `ENOBUFS` and a listener drops SYNs (the peer retries, as with a kernel under
//!   memory pressure). With the defaults (1 MiB each way, 256 MiB) that is about
//!   3 900 connections, the first hundred at full size; closing sockets gives the
//!   memory back.
//! - **Sockets**: `socket()` fails with `EMFILE` at the limit (as at a descriptor
//!   limit), and SYNs are dropped while the connections waiting to be accepted
//!   would take the container past it.
//! - **Pending connections** over all listeners (each listener's backlog is capped
//!   at `SOMAXCONN` besides).
//! - The front ends' own: control connections ([`crate::control::server`]) and
//!   parked calls (the seccomp supervisor).
//! - Per socket, fixed bounds: the source addresses of datagrams a program has not
//!   asked for yet (512, about 40 KiB), a listener's spare armed sockets (32
//!   addresses); and per stack, the tombstones of sockets closed under their
//!   programs (4096), one 64 KiB buffer per protocol, made at its first use, and
//!   up to 16 closed TCP sockets kept for a listener's next connection, for 2 s
//!   at most ([`crate::iface::recycle`]): their buffers count against the limit
//!   (a new socket that would pass it frees them first), not in the shares.
//!
//! The use is counted when it matters (a new socket), by going over the smoltcp
//! sockets: no bookkeeping to get wrong on any of the many ways a socket goes.

use crate::iface::Interfaces;
use smoltcp::socket::Socket as Smol;

/// The smallest TCP buffer a connection is given (each way).
pub const MIN_TCP_BUFFER: usize = 4096;

/// Bytes of buffers the smoltcp sockets of all interfaces hold (each interface
/// keeps its sum as sockets come and go: no walk over them).
pub fn in_use(ifs: &Interfaces) -> usize {
    ifs.iter().map(|(_, nif)| nif.sockets.buffer_bytes()).sum()
}

/// Bytes of buffers one smoltcp socket holds (fixed when it is made).
pub fn buffer_bytes(s: &Smol<'_>) -> usize {
    match s {
        Smol::Tcp(t) => t.recv_capacity() + t.send_capacity(),
        Smol::Udp(u) => u.payload_recv_capacity() + u.payload_send_capacity(),
        Smol::Icmp(i) => i.payload_recv_capacity() + i.payload_send_capacity(),
        Smol::Raw(r) => r.payload_recv_capacity() + r.payload_send_capacity(),
        #[allow(unreachable_patterns)]
        _ => 0,
    }
}

/// The TCP buffers (receive, send) a new connection gets when it asks for `want`,
/// with `used` of `limit` bytes taken; `None`: none can be given.
pub fn tcp_share(want: (usize, usize), used: usize, limit: usize) -> Option<(usize, usize)> {
    let free = limit.saturating_sub(used);
    if free < 2 * MIN_TCP_BUFFER {
        return None;
    }
    // want × (free / limit)²: never more than what is free while want ≤ limit.
    let (f, l) = (free as u128, limit.max(1) as u128);
    let scale = |w: usize| {
        ((w as u128 * f * f / (l * l)) as usize).clamp(MIN_TCP_BUFFER, w.max(MIN_TCP_BUFFER))
    };
    let (rx, tx) = (scale(want.0), scale(want.1));
    (rx + tx <= free).then_some((rx, tx))
}

/// Before `need` bytes of new buffers are made: frees the closed sockets kept
/// for reuse if they, the sockets in use and the new buffers would pass `limit`
/// (kept sockets count against the limit, not in the shares: see
/// [`crate::iface::recycle`]).
pub fn make_room(ifs: &Interfaces, need: usize, limit: usize) {
    let mut kept = ifs.recycled().borrow_mut();
    if in_use(ifs)
        .saturating_add(kept.bytes())
        .saturating_add(need)
        > limit
    {
        kept.clear();
    }
}

/// Whether `bytes` more fit under `limit` with `used` taken.
pub fn fits(bytes: usize, used: usize, limit: usize) -> bool {
    used.saturating_add(bytes) <= limit
}

static LIMIT_LOGS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Logs a limit reached: the first few times, then every 1000th.
pub fn log_limit(what: std::fmt::Arguments<'_>) {
    let n = LIMIT_LOGS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    if n <= 5 || n.is_multiple_of(1000) {
        log::warn!("limit reached: {what} (occurrence {n})");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_shrink_then_run_out() {
        let limit = 64 << 20;
        let mib = 1 << 20;
        // An idle stack: what was asked.
        assert_eq!(tcp_share((mib, mib), 0, limit), Some((mib, mib)));
        // Half taken: a quarter.
        assert_eq!(
            tcp_share((mib, mib), limit / 2, limit),
            Some((mib / 4, mib / 4))
        );
        // Then the floor, then nothing.
        let (rx, _) = tcp_share((mib, mib), limit - 3 * MIN_TCP_BUFFER, limit).unwrap();
        assert_eq!(rx, MIN_TCP_BUFFER);
        assert_eq!(tcp_share((mib, mib), limit - MIN_TCP_BUFFER, limit), None);
        assert_eq!(tcp_share((mib, mib), limit + 5, limit), None);
        // Small asks are not raised above what was asked (but to the floor).
        assert_eq!(
            tcp_share((100, 8192), 0, limit),
            Some((MIN_TCP_BUFFER, 8192))
        );
        // Allocating shares one after the other never passes the limit, and many
        // connections get some.
        let mut used = 0;
        let mut n = 0;
        while let Some((a, b)) = tcp_share((mib, mib), used, limit) {
            used += a + b;
            n += 1;
            assert!(used <= limit, "{used} > {limit} after {n}");
        }
        assert!(n > 900, "{n} connections in 64 MiB");
    }
}
