//! Connection tracking: which packets start a connection, belong to one that has
//! seen traffic both ways, report on one (ICMP errors), or fit none.
//!
//! A connection is keyed by its protocol and the two ends as its first packet
//! named them. As in Linux, a connection is *new* until a packet in the reply
//! direction is seen, then *established* both ways; an ICMP error quoting a
//! tracked connection is *related*; a packet that fits none and cannot start
//! one (a TCP RST, an ICMP error about nothing tracked) is *invalid*. A TCP
//! segment of a connection that started before tracking did (a filter loaded
//! under load) is picked up as Linux's `nf_conntrack_tcp_loose` does: it starts
//! an entry, so established connections keep running.
//!
//! Entries end after Linux's default timeouts (TCP unanswered 120 s, established
//! 5 days, after a FIN 120 s, after a RST 10 s; UDP 30 s, answered 120 s; ICMP
//! 30 s) and the table holds at most [`MAX_ENTRIES`]: when full, expired entries
//! are swept, and a packet that would start one more is invalid.
//!
//! A packet is tracked in two steps, as Linux confirms an entry only once the
//! packet has passed the filter: [`Conntrack::classify`] tells the state, and
//! [`Conntrack::commit`] records it for a packet that was let through.

use super::packet::Pkt;
use super::rules::ct;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::IpAddress;
use std::collections::HashMap;

/// The most connections tracked at once per container.
pub const MAX_ENTRIES: usize = 65_536;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    proto: u8,
    a: IpAddress,
    ap: u16,
    b: IpAddress,
    bp: u16,
}

impl Key {
    fn reversed(self) -> Key {
        Key {
            proto: self.proto,
            a: self.b,
            ap: self.bp,
            b: self.a,
            bp: self.ap,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    replied: bool,
    closing: bool,
    expires: Instant,
}

/// What [`Conntrack::classify`] found, for [`Conntrack::commit`].
#[derive(Clone, Copy, Debug)]
pub struct Seen {
    /// The state bit (`ct::NEW`...).
    pub state: u8,
    key: Option<Key>,
    reply: bool,
    exists: bool,
    flags: u8,
}

/// The connection table of one container.
#[derive(Default)]
pub struct Conntrack {
    table: HashMap<Key, Entry>,
    /// Packets classified since the last sweep.
    since_sweep: u32,
}

fn key_of(p: &Pkt) -> Key {
    Key {
        proto: p.proto,
        a: p.src,
        ap: p.sport,
        b: p.dst,
        bp: p.dport,
    }
}

fn timeout(proto: u8, replied: bool, closing: bool, flags: u8) -> Duration {
    let s = match proto {
        6 if flags & 0x04 != 0 => 10,
        6 if closing => 120,
        6 if replied => 432_000,
        6 => 120,
        17 if replied => 120,
        17 => 30,
        _ => 30,
    };
    Duration::from_secs(s)
}

impl Conntrack {
    /// Connections tracked now.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Forgets every connection.
    pub fn clear(&mut self) {
        self.table.clear();
    }

    /// The state of packet `p` at `now` (nothing recorded yet).
    pub fn classify(&mut self, p: &Pkt, now: Instant) -> Seen {
        self.since_sweep += 1;
        if self.since_sweep >= 8192 {
            self.sweep(now);
        }
        let invalid = Seen {
            state: ct::INVALID,
            key: None,
            reply: false,
            exists: false,
            flags: p.flags,
        };
        if p.fragment {
            // A later fragment: Linux reassembles first; netcell lets the
            // fragment take the state of an established flow it cannot name.
            return Seen {
                state: ct::ESTABLISHED,
                ..invalid
            };
        }
        if let Some((qp, qs, qsp, qd, qdp)) = p.quoted {
            // An ICMP error: related to the connection it quotes (its packet
            // went from us, so its source is our end).
            let k = Key {
                proto: qp,
                a: qs,
                ap: qsp,
                b: qd,
                bp: qdp,
            };
            let live = |k: &Key| self.table.get(k).is_some_and(|e| e.expires > now);
            return if live(&k) || live(&k.reversed()) {
                Seen {
                    state: ct::RELATED,
                    ..invalid
                }
            } else {
                invalid
            };
        }
        let k = key_of(p);
        if let Some(e) = self.table.get(&k).filter(|e| e.expires > now) {
            return Seen {
                state: if e.replied { ct::ESTABLISHED } else { ct::NEW },
                key: Some(k),
                reply: false,
                exists: true,
                flags: p.flags,
            };
        }
        let r = k.reversed();
        if self.table.get(&r).is_some_and(|e| e.expires > now) {
            return Seen {
                state: ct::ESTABLISHED,
                key: Some(r),
                reply: true,
                exists: true,
                flags: p.flags,
            };
        }
        // A TCP RST starts nothing; neither does an ICMP reply without its
        // request.
        let starts = match p.proto {
            6 => p.flags & 0x04 == 0,
            1 => p.icmp.is_some_and(|(t, _)| t == 8),
            58 => p.icmp.is_some_and(|(t, _)| t == 128),
            _ => true,
        };
        if !starts {
            return invalid;
        }
        if self.table.len() >= MAX_ENTRIES {
            self.sweep(now);
            if self.table.len() >= MAX_ENTRIES {
                return invalid;
            }
        }
        Seen {
            state: ct::NEW,
            key: Some(k),
            reply: false,
            exists: false,
            flags: p.flags,
        }
    }

    /// Records a packet that passed the filter.
    pub fn commit(&mut self, s: &Seen, now: Instant) {
        let Some(k) = s.key else { return };
        let e = self.table.entry(k).or_insert(Entry {
            replied: false,
            closing: false,
            expires: now,
        });
        if s.reply {
            e.replied = true;
        }
        if s.flags & 0x01 != 0 {
            e.closing = true;
        }
        e.expires = now + timeout(k.proto, e.replied, e.closing, s.flags);
        let _ = s.exists;
    }

    /// Drops expired entries.
    pub fn sweep(&mut self, now: Instant) {
        self.since_sweep = 0;
        self.table.retain(|_, e| e.expires > now);
    }
}
