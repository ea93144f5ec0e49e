//! The origins ring: where a datagram came from, shared by the stack with the
//! preload shim so that `recvfrom` costs no round trip.
//!
//! A datagram's payload travels natively through the socket's stand-in; its
//! source address was until now asked for after each receive (an `Origin`
//! request: two wake-ups per datagram, which capped a DNS server's loop). For a
//! socket whose program asks for sources, the stack also writes each datagram's
//! origin into a ring in shared memory ([`crate::Op::OriginRing`] hands it out,
//! read-only); after a native receive the shim finds the entry by the same key
//! the stack matches on — the datagram's length and first 16 bytes — and falls
//! back to the request only when the entry is not there (written before the ring
//! existed, or overwritten: more than [`ENTRIES`] datagrams behind).
//!
//! # Layout
//!
//! 64-bit words, written by the stack alone, read by any number of processes:
//! word 0 counts the entries ever written (the next index); entry `i` lives in
//! slot `i % ENTRIES`, eight words from word [`HEADER`]:
//!
//! | word | holds                                                        |
//! |-----:|--------------------------------------------------------------|
//! | 0    | sequence: `2i + 1` while being written, `2i + 2` once written |
//! | 1    | length (32 bits), sockaddr length (8), prefix length (8)     |
//! | 2–3  | the first 16 bytes of the datagram                           |
//! | 4–7  | the source as the program's `sockaddr` (at most 28 bytes)    |
//!
//! A reader copies an entry and checks the sequence before and after (a
//! sequence lock): a torn copy is never used. The words are atomics on both
//! sides; nothing in the ring is trusted by the stack (it never reads it).

use std::sync::atomic::{AtomicU64, Ordering, fence};

/// Entries in a ring: more than a stand-in can queue (Linux's default
/// `net.unix.max_dgram_qlen` is 512), so a datagram waiting to be read still
/// has its entry.
pub const ENTRIES: usize = 1024;
/// Words before the first entry.
pub const HEADER: usize = 8;
/// Words per entry.
const ENTRY: usize = 8;
/// Words in a ring.
pub const WORDS: usize = HEADER + ENTRIES * ENTRY;
/// The longest source address an entry holds (`sockaddr_in6`).
pub const MAX_ADDR: usize = 28;

/// One datagram's origin as the ring keeps it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    /// The datagram's full length.
    pub len: u32,
    /// Its first bytes (`plen` of them).
    pub prefix: [u8; 16],
    /// How many of `prefix` are the datagram's.
    pub plen: u8,
    /// The source as a `sockaddr` of the socket's family.
    pub addr: [u8; MAX_ADDR],
    /// How many bytes of `addr` are used.
    pub alen: u8,
}

impl Entry {
    /// Whether this is the origin of a datagram of `len` bytes starting with
    /// `prefix` (as much of its first 16 bytes as the reader got).
    fn matches(&self, len: u32, prefix: &[u8]) -> bool {
        self.len == len
            && prefix.len() <= usize::from(self.plen)
            && self.prefix[..prefix.len()] == *prefix
    }
}

fn word(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w[..b.len()].copy_from_slice(b);
    u64::from_le_bytes(w)
}

/// Writes `e` as the next entry of `ring` (the stack, its only writer).
pub fn push(ring: &[AtomicU64], e: &Entry) {
    if ring.len() < WORDS {
        return;
    }
    let i = ring[0].load(Ordering::Relaxed);
    let at = HEADER + (i as usize % ENTRIES) * ENTRY;
    let w = &ring[at..at + ENTRY];
    w[0].store(2 * i + 1, Ordering::Relaxed);
    fence(Ordering::Release);
    let meta = u64::from(e.len) | u64::from(e.alen) << 32 | u64::from(e.plen) << 40;
    w[1].store(meta, Ordering::Relaxed);
    w[2].store(word(&e.prefix[..8]), Ordering::Relaxed);
    w[3].store(word(&e.prefix[8..]), Ordering::Relaxed);
    for k in 0..4 {
        let from = k * 8;
        let to = (from + 8).min(MAX_ADDR);
        w[4 + k].store(word(&e.addr[from..to]), Ordering::Relaxed);
    }
    w[0].store(2 * i + 2, Ordering::Release);
    ring[0].store(i + 1, Ordering::Release);
}

/// Reads entry `i`, if it is there whole.
fn read(ring: &[AtomicU64], i: u64) -> Option<Entry> {
    let at = HEADER + (i as usize % ENTRIES) * ENTRY;
    let w = &ring[at..at + ENTRY];
    let done = 2 * i + 2;
    if w[0].load(Ordering::Acquire) != done {
        return None;
    }
    let meta = w[1].load(Ordering::Relaxed);
    let p0 = w[2].load(Ordering::Relaxed).to_le_bytes();
    let p1 = w[3].load(Ordering::Relaxed).to_le_bytes();
    let mut addr = [0u8; 32];
    for k in 0..4 {
        addr[k * 8..k * 8 + 8].copy_from_slice(&w[4 + k].load(Ordering::Relaxed).to_le_bytes());
    }
    fence(Ordering::Acquire);
    if w[0].load(Ordering::Relaxed) != done {
        return None;
    }
    let mut prefix = [0u8; 16];
    prefix[..8].copy_from_slice(&p0);
    prefix[8..].copy_from_slice(&p1);
    let e = Entry {
        len: meta as u32,
        alen: ((meta >> 32) as u8).min(MAX_ADDR as u8),
        plen: ((meta >> 40) as u8).min(16),
        prefix,
        addr: addr[..MAX_ADDR].try_into().expect("28 bytes"),
    };
    Some(e)
}

/// Finds the origin of a datagram of `len` bytes starting with `prefix` (its
/// first 16 bytes or fewer), looking at entries from index `from` on (a
/// reader's cursor: where its last find ended, a little before for racing
/// threads) up to the newest. Returns the entry and its index.
pub fn find(ring: &[AtomicU64], from: u64, len: u32, prefix: &[u8]) -> Option<(u64, Entry)> {
    if ring.len() < WORDS {
        return None;
    }
    let head = ring[0].load(Ordering::Acquire);
    let oldest = head.saturating_sub(ENTRIES as u64 - 1);
    (from.max(oldest)..head).find_map(|i| {
        read(ring, i)
            .filter(|e| e.matches(len, prefix))
            .map(|e| (i, e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> Vec<AtomicU64> {
        (0..WORDS).map(|_| AtomicU64::new(0)).collect()
    }

    fn entry(len: u32, data: &[u8], port: u8) -> Entry {
        let mut e = Entry {
            len,
            plen: data.len().min(16) as u8,
            alen: 16,
            ..Entry::default()
        };
        e.prefix[..data.len().min(16)].copy_from_slice(&data[..data.len().min(16)]);
        e.addr[..4].copy_from_slice(&[2, 0, 0, port]);
        e
    }

    /// Entries are found by length and first bytes from a cursor on; what
    /// was overwritten is not found; a short or foreign ring finds nothing.
    #[test]
    fn entries_are_found_by_their_key() {
        let r = ring();
        push(&r, &entry(5, b"hello", 1));
        push(&r, &entry(40, b"0123456789abcdefXYZ", 2));
        push(&r, &entry(5, b"hello", 3));
        let (i, e) = find(&r, 0, 5, b"hello").unwrap();
        assert_eq!((i, e.addr[3]), (0, 1));
        let (i, e) = find(&r, 1, 5, b"hello").unwrap();
        assert_eq!((i, e.addr[3]), (2, 3));
        let (i, e) = find(&r, 0, 40, b"0123456789abcdef").unwrap();
        assert_eq!((i, e.addr[3]), (1, 2));
        assert_eq!(find(&r, 0, 40, b"0123456789abcdeX"), None);
        assert_eq!(find(&r, 0, 6, b"hello"), None);
        assert_eq!(find(&r, 3, 5, b"hello"), None);
        // A lap later the first ones are gone.
        for n in 0..ENTRIES as u32 {
            push(&r, &entry(1000 + n, b"x", 9));
        }
        assert_eq!(find(&r, 0, 40, b"0123456789abcdef"), None);
        assert!(find(&r, 0, 1000 + ENTRIES as u32 - 1, b"x").is_some());
        assert_eq!(find(&r[..WORDS - 1], 0, 1, b"x"), None);
    }

    /// An entry half written (its sequence odd, or from another lap) is not
    /// read.
    #[test]
    fn torn_entries_are_not_read() {
        let r = ring();
        push(&r, &entry(5, b"hello", 1));
        r[HEADER].store(1, Ordering::Release); // being written again
        assert_eq!(find(&r, 0, 5, b"hello"), None);
        r[HEADER].store(2 + 2 * ENTRIES as u64, Ordering::Release); // a later lap's
        assert_eq!(find(&r, 0, 5, b"hello"), None);
    }
}
