//! Port bindings: who holds which local address and port, with Linux's conflict
//! rules (`inet_csk_bind_conflict`) and ephemeral port choice.
//!
//! smoltcp knows nothing of ports in use: two of its sockets may listen on the same
//! endpoint. Each protocol with ports keeps its own [`PortTable`] in its table (TCP
//! and UDP ports, ping sockets' ICMP identifiers). Every TCP socket that holds a port
//! (bound, listening, connected, an orphan finishing its close, an accepted
//! connection sharing its listener's port) has one `Binding` in TCP's, and `bind`,
//! `listen` and `connect` ask it first; likewise a bound UDP or ping socket.
//!
//! Two bindings on one port *overlap* when their addresses are equal or either is a
//! wildcard of the same family; an IPv6 wildcard without `IPV6_V6ONLY` also overlaps
//! every IPv4 address. Overlapping bindings conflict unless both set `SO_REUSEADDR`
//! and the existing one is not listening, or both set `SO_REUSEPORT`.

use super::errno::BindError;
use std::collections::HashMap;
use std::net::IpAddr;

/// Linux's default `net.ipv4.ip_local_port_range`.
pub const EPHEMERAL: std::ops::RangeInclusive<u16> = 32768..=60999;

/// Identifies one binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BindingId(u64);

/// What a binding's holder is doing, for the conflict rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindState {
    /// Bound, connected, or closing: not listening.
    Idle,
    /// Listening.
    Listening,
}

/// The sharing flags of a socket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reuse {
    /// `SO_REUSEADDR`.
    pub addr: bool,
    /// `SO_REUSEPORT`.
    pub port: bool,
}

#[derive(Clone, Debug)]
struct Binding {
    id: BindingId,
    addr: IpAddr,
    /// An IPv6 wildcard that also takes IPv4 (`IPV6_V6ONLY` off).
    dual: bool,
    reuse: Reuse,
    state: BindState,
}

/// The bindings of one protocol.
#[derive(Default)]
pub struct PortTable {
    ports: HashMap<u16, Vec<Binding>>,
    next: u64,
    /// Where the next ephemeral search starts, as an offset into the range: a
    /// random point at first, then just past the last port given.
    cursor: u32,
}

fn overlap(a: IpAddr, a_dual: bool, b: IpAddr, b_dual: bool) -> bool {
    match (a, b) {
        (IpAddr::V4(x), IpAddr::V4(y)) => x == y || x.is_unspecified() || y.is_unspecified(),
        (IpAddr::V6(x), IpAddr::V6(y)) => x == y || x.is_unspecified() || y.is_unspecified(),
        (IpAddr::V4(_), IpAddr::V6(_)) => b_dual,
        (IpAddr::V6(_), IpAddr::V4(_)) => a_dual,
    }
}

impl PortTable {
    /// An empty table.
    pub fn new(seed: u64) -> Self {
        // xorshift of the seed for the first starting offset.
        let mut x = seed;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let span = *EPHEMERAL.end() as u64 - *EPHEMERAL.start() as u64 + 1;
        PortTable {
            ports: HashMap::new(),
            next: 1,
            cursor: (x % span) as u32,
        }
    }

    fn conflicts(
        &self,
        port: u16,
        addr: IpAddr,
        dual: bool,
        reuse: Reuse,
        skip: Option<BindingId>,
    ) -> bool {
        let Some(list) = self.ports.get(&port) else {
            return false;
        };
        list.iter().filter(|b| Some(b.id) != skip).any(|b| {
            if !overlap(addr, dual, b.addr, b.dual) {
                return false;
            }
            let reuseaddr_ok = reuse.addr && b.reuse.addr && b.state != BindState::Listening;
            let reuseport_ok = reuse.port && b.reuse.port;
            !(reuseaddr_ok || reuseport_ok)
        })
    }

    /// Takes `addr:port`, or fails with `EADDRINUSE` semantics (`None`).
    pub fn bind(
        &mut self,
        port: u16,
        addr: IpAddr,
        dual: bool,
        reuse: Reuse,
        state: BindState,
    ) -> Option<BindingId> {
        if self.conflicts(port, addr, dual, reuse, None) {
            return None;
        }
        Some(self.insert(port, addr, dual, reuse, state))
    }

    /// Records a binding that shares its port by construction (an accepted
    /// connection on its listener's port): no conflict check.
    pub fn insert(
        &mut self,
        port: u16,
        addr: IpAddr,
        dual: bool,
        reuse: Reuse,
        state: BindState,
    ) -> BindingId {
        let id = BindingId(self.next);
        self.next += 1;
        self.ports.entry(port).or_default().push(Binding {
            id,
            addr,
            dual,
            reuse,
            state,
        });
        id
    }

    /// Takes an ephemeral port for `addr`: one no binding uses, the search
    /// starting at a random point of the range, then each time just past the
    /// last port given. `None` when the range is exhausted.
    ///
    /// A port comes round again only after the whole range, as Linux's
    /// connect-time choice (a per-destination offset that moves on by one) does:
    /// a peer holds a closed connection's port in TIME_WAIT for a minute, and a
    /// random choice per connection picked one of those ports again and again
    /// under a stream of short connections — the peer ignored each such SYN and
    /// the connect waited a 1 s retransmission (183 connections/s over a TAP
    /// fell to 46 by the 3000th; found by the soak test).
    pub fn bind_ephemeral(
        &mut self,
        addr: IpAddr,
        dual: bool,
        reuse: Reuse,
    ) -> Option<(u16, BindingId)> {
        let lo = *EPHEMERAL.start() as u32;
        let span = *EPHEMERAL.end() as u32 - lo + 1;
        for i in 0..span {
            let off = (self.cursor + i) % span;
            let port = (lo + off) as u16;
            if self.ports.get(&port).is_none_or(|l| l.is_empty()) {
                self.cursor = (off + 1) % span;
                return Some((port, self.insert(port, addr, dual, reuse, BindState::Idle)));
            }
        }
        None
    }

    /// Takes `port` on `addr`, or an ephemeral port when `port` is 0: `bind`'s
    /// answer, [`BindError::AddrInUse`] or, when no ephemeral port is left,
    /// [`BindError::NoEphemeralPort`] (Linux's answer at bind time).
    pub fn take(
        &mut self,
        port: u16,
        addr: IpAddr,
        dual: bool,
        reuse: Reuse,
    ) -> Result<(u16, BindingId), BindError> {
        if port == 0 {
            self.bind_ephemeral(addr, dual, reuse)
                .ok_or(BindError::NoEphemeralPort)
        } else {
            self.bind(port, addr, dual, reuse, BindState::Idle)
                .map(|b| (port, b))
                .ok_or(BindError::AddrInUse)
        }
    }

    /// Moves a binding to the listening state, re-checking conflicts as Linux does
    /// at `listen()`. `false` (`EADDRINUSE`) leaves it unchanged.
    pub fn listen(&mut self, port: u16, id: BindingId) -> bool {
        let Some(b) = self
            .ports
            .get(&port)
            .and_then(|l| l.iter().find(|b| b.id == id))
            .cloned()
        else {
            return false;
        };
        if self.conflicts(port, b.addr, b.dual, b.reuse, Some(id)) {
            return false;
        }
        self.set_state(port, id, BindState::Listening);
        true
    }

    /// Changes a binding's state (a listener closing, say).
    pub fn set_state(&mut self, port: u16, id: BindingId, state: BindState) {
        if let Some(b) = self
            .ports
            .get_mut(&port)
            .and_then(|l| l.iter_mut().find(|b| b.id == id))
        {
            b.state = state;
        }
    }

    /// Updates the sharing flags of a binding (setsockopt after bind).
    pub fn set_reuse(&mut self, port: u16, id: BindingId, reuse: Reuse) {
        if let Some(b) = self
            .ports
            .get_mut(&port)
            .and_then(|l| l.iter_mut().find(|b| b.id == id))
        {
            b.reuse = reuse;
        }
    }

    /// Gives the port back.
    pub fn release(&mut self, port: u16, id: BindingId) {
        if let Some(l) = self.ports.get_mut(&port) {
            l.retain(|b| b.id != id);
            if l.is_empty() {
                self.ports.remove(&port);
            }
        }
    }

    /// Number of bindings on a port (tests).
    pub fn count(&self, port: u16) -> usize {
        self.ports.get(&port).map_or(0, |l| l.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    const NO: Reuse = Reuse {
        addr: false,
        port: false,
    };
    const RA: Reuse = Reuse {
        addr: true,
        port: false,
    };
    const RP: Reuse = Reuse {
        addr: false,
        port: true,
    };

    #[test]
    fn linux_conflict_rules() {
        let mut t = PortTable::new(1);
        let a = t
            .bind(80, ip("0.0.0.0"), false, NO, BindState::Idle)
            .unwrap();
        assert!(
            t.bind(80, ip("10.0.0.2"), false, NO, BindState::Idle)
                .is_none()
        );
        assert!(
            t.bind(80, ip("127.0.0.1"), false, RA, BindState::Idle)
                .is_none()
        );
        // Different families without dual stack do not overlap.
        assert!(t.bind(80, ip("::"), false, NO, BindState::Idle).is_some());
        t.release(80, a);
        // v6 wildcard without V6ONLY overlaps IPv4.
        assert!(t.bind(80, ip("::"), true, NO, BindState::Idle).is_none());

        let mut t = PortTable::new(1);
        let a = t
            .bind(81, ip("0.0.0.0"), false, RA, BindState::Idle)
            .unwrap();
        let b = t
            .bind(81, ip("0.0.0.0"), false, RA, BindState::Idle)
            .unwrap();
        assert!(t.listen(81, a));
        // The second cannot listen on top of the first, SO_REUSEADDR or not.
        assert!(!t.listen(81, b));
        t.release(81, b);
        // ...and nobody binds next to a listener, except with SO_REUSEPORT on both.
        assert!(
            t.bind(81, ip("0.0.0.0"), false, RA, BindState::Idle)
                .is_none()
        );

        let mut t = PortTable::new(1);
        let a = t
            .bind(82, ip("0.0.0.0"), false, RP, BindState::Idle)
            .unwrap();
        assert!(t.listen(82, a));
        let b = t
            .bind(82, ip("0.0.0.0"), false, RP, BindState::Idle)
            .unwrap();
        assert!(t.listen(82, b));
        // Distinct specific addresses never conflict.
        let mut t = PortTable::new(1);
        t.bind(83, ip("127.0.0.1"), false, NO, BindState::Listening)
            .unwrap();
        assert!(
            t.bind(83, ip("10.0.0.2"), false, NO, BindState::Listening)
                .is_some()
        );
    }

    #[test]
    fn ephemeral_ports_are_distinct_and_in_range() {
        let mut t = PortTable::new(42);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let (p, _) = t.bind_ephemeral(ip("0.0.0.0"), false, NO).unwrap();
            assert!(EPHEMERAL.contains(&p));
            assert!(seen.insert(p));
        }
    }

    /// A port given back is not given again before the rest of the range.
    #[test]
    fn ephemeral_ports_come_round_only_after_the_range() {
        let mut t = PortTable::new(7);
        let mut seen = std::collections::HashSet::new();
        let span = (*EPHEMERAL.end() - *EPHEMERAL.start()) as usize + 1;
        for _ in 0..span {
            let (p, id) = t.bind_ephemeral(ip("0.0.0.0"), false, NO).unwrap();
            assert!(seen.insert(p), "port {p} again after {} ports", seen.len());
            t.release(p, id);
        }
        // Then round again, in the same order.
        let (p, _) = t.bind_ephemeral(ip("0.0.0.0"), false, NO).unwrap();
        assert!(seen.contains(&p));
    }
}
