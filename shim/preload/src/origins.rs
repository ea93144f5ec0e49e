//! The sources of received datagrams, read from the stack's origins rings
//! (see `netcell_proto::ring`) instead of asked for: a `recvfrom` without
//! ancillary data costs no round trip once its socket's ring is mapped.
//!
//! A process maps the ring of a socket the first time it wants a source there
//! (one `OriginRing` request), keeps at most [`MAX_RINGS`] (the oldest is
//! unmapped, under the table's lock, which every reader holds), and remembers
//! where its last find ended: the next find starts there. A find that fails — the datagram came before the
//! ring, the lock is busy, the stack gave no ring — leaves the caller to ask.

use crate::{conn, sys};
use netcell_proto::{Request, ring};
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

/// Rings a process keeps mapped.
const MAX_RINGS: usize = 32;

struct Mapped {
    ino: u64,
    /// `None`: the stack gave no ring; asked no more.
    words: Option<&'static [AtomicU64]>,
    cursor: u64,
}

static RINGS: Mutex<Vec<Mapped>> = Mutex::new(Vec::new());

/// The source of the datagram of `len` bytes starting with `prefix` just read
/// from socket `ino` (`peek`: it stays queued), as the program's sockaddr:
/// copied into `out`, its length returned. `None`: ask the stack.
pub fn find(
    ino: u64,
    len: u32,
    prefix: &[u8],
    peek: bool,
    out: &mut [u8; ring::MAX_ADDR],
) -> Option<usize> {
    let mut all = RINGS.try_lock().ok()?;
    let i = match all.iter().position(|m| m.ino == ino) {
        Some(i) => i,
        None => {
            let words = map(ino);
            if all.len() >= MAX_RINGS {
                let old = all.remove(0);
                if let Some(w) = old.words {
                    // SAFETY: readers hold the lock we hold; no copy of `w` left.
                    unsafe { sys::unmap_words(w) };
                }
            }
            all.push(Mapped {
                ino,
                words,
                cursor: 0,
            });
            all.len() - 1
        }
    };
    let m = &mut all[i];
    // From the cursor on only: an entry before it was another datagram's, and
    // datagrams that look alike (a client's repeated query) must not take each
    // other's source. Threads racing on one socket may leave a datagram behind
    // the cursor: it is asked for.
    let (at, e) = ring::find(m.words?, m.cursor, len, prefix)?;
    if !peek {
        m.cursor = m.cursor.max(at + 1);
    }
    let n = usize::from(e.alen);
    out[..n].copy_from_slice(&e.addr[..n]);
    Some(n)
}

/// Asks for socket `ino`'s ring and maps it.
fn map(ino: u64) -> Option<&'static [AtomicU64]> {
    let r = conn::call(ino, &Request::OriginRing, None).ok()?;
    let fd = r.fd?;
    let words = (r.errno == 0 && r.value == 1)
        .then(|| sys::map_words(fd, ring::WORDS))
        .flatten();
    sys::close(fd);
    words
}
