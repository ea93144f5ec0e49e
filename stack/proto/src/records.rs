//! What the stack writes into stand-ins rather than into replies: the record of an
//! accepted connection, a datagram's origin, and the error marker of a datagram
//! socket. Both front ends parse them with these functions, so their layout is
//! written down once.

/// The size of an encoded socket address inside an [`AcceptRecord`]
/// (`sizeof(struct sockaddr_in6)`, the largest INET address).
pub const RECORD_SOCKADDR: usize = 28;
/// The size of an [`AcceptRecord`] on the wire.
pub const ACCEPT_RECORD_LEN: usize = 4 + 2 * (4 + RECORD_SOCKADDR) + 4;
const ACCEPT_MAGIC: [u8; 4] = *b"ncA1";

/// What the stack writes into a listener's stand-in for each accepted connection,
/// with the connection's stand-in attached as `SCM_RIGHTS`.
///
/// Layout: magic `b"ncA1"`, then the local and the peer address, each as a `u32`
/// length and [`RECORD_SOCKADDR`] bytes of C sockaddr, then 4 reserved bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcceptRecord {
    /// The connection's local address (`getsockname` of the accepted socket).
    pub local: ([u8; RECORD_SOCKADDR], u32),
    /// The connection's peer address (what `accept` returns).
    pub peer: ([u8; RECORD_SOCKADDR], u32),
}

impl AcceptRecord {
    /// The record's bytes.
    pub fn encode(&self) -> [u8; ACCEPT_RECORD_LEN] {
        let mut out = [0u8; ACCEPT_RECORD_LEN];
        out[..4].copy_from_slice(&ACCEPT_MAGIC);
        let mut pos = 4;
        for (addr, len) in [self.local, self.peer] {
            out[pos..pos + 4].copy_from_slice(&len.to_le_bytes());
            out[pos + 4..pos + 4 + RECORD_SOCKADDR].copy_from_slice(&addr);
            pos += 4 + RECORD_SOCKADDR;
        }
        out
    }

    /// Parses a record; `None` if it is not one.
    pub fn decode(b: &[u8]) -> Option<AcceptRecord> {
        if b.len() != ACCEPT_RECORD_LEN || b[..4] != ACCEPT_MAGIC {
            return None;
        }
        let mut pos = 4;
        let mut field = || {
            let len = u32::from_le_bytes(b[pos..pos + 4].try_into().ok()?);
            if len as usize > RECORD_SOCKADDR {
                return None;
            }
            let mut addr = [0u8; RECORD_SOCKADDR];
            addr.copy_from_slice(&b[pos + 4..pos + 4 + RECORD_SOCKADDR]);
            pos += 4 + RECORD_SOCKADDR;
            Some((addr, len))
        };
        let local = field()?;
        let peer = field()?;
        Some(AcceptRecord { local, peer })
    }
}

/// The data of a reply to [`Request::Origin`]: `src_len: u8`, the source sockaddr,
/// then the ancillary data (`cmsghdr`s, 64-bit layout) the socket's options ask for.
pub mod origin {
    /// Writes the source address into `out`; returns the bytes written (the caller
    /// appends the ancillary data after them). `None` if it does not fit.
    pub fn encode_addr(addr: &[u8], out: &mut [u8]) -> Option<usize> {
        let n = addr.len();
        if n > u8::MAX as usize || out.len() < 1 + n {
            return None;
        }
        out[0] = n as u8;
        out[1..1 + n].copy_from_slice(addr);
        Some(1 + n)
    }

    /// The source address and the ancillary data of an origin; `None` if malformed.
    pub fn decode(data: &[u8]) -> Option<(&[u8], &[u8])> {
        let n = *data.first()? as usize;
        let addr = data.get(1..1 + n)?;
        Some((addr, &data[1 + n..]))
    }
}

/// An error marker: the record the stack writes into a datagram socket's stand-in
/// in place of a datagram when an ICMP error arrives for it — the errno as 4 bytes
/// (native order), with a descriptor attached (no datagram carries one) so that a
/// front end can tell it from a datagram.
pub mod marker {
    /// The record for `errno`.
    pub fn encode(errno: i32) -> [u8; 4] {
        errno.to_ne_bytes()
    }

    /// The errno a marker holds (`ECONNREFUSED`, 111, if it holds none).
    pub fn decode(data: &[u8]) -> i32 {
        const ECONNREFUSED: i32 = 111;
        match data.get(..4) {
            Some(b) => match i32::from_ne_bytes([b[0], b[1], b[2], b[3]]) {
                e if e > 0 => e,
                _ => ECONNREFUSED,
            },
            None => ECONNREFUSED,
        }
    }
}
