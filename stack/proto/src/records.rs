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

/// The data of a reply to [`Request::Origin`](crate::Request::Origin): `src_len: u8`, the source sockaddr,
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

/// One interface in the reply to [`Request::Interfaces`](crate::Request::Interfaces):
/// a fixed 40-byte header (index `u32`, flags `u32`, MTU `u32`, ARP hardware type
/// `u16`, hardware address `[u8; 6]`, name `[u8; 16]` NUL-padded, address count
/// `u16`), then that many 18-byte addresses (family `u8`: 4 or 6, prefix length
/// `u8`, address `[u8; 16]`, an IPv4 one in its first 4 bytes). Integers are
/// little-endian. The reply's data is a run of such records.
pub mod iface {
    /// The header of one interface.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Iface {
        /// Its index (`if_nametoindex`), from 1.
        pub index: u32,
        /// `IFF_*` flags.
        pub flags: u32,
        /// The IP MTU.
        pub mtu: u32,
        /// `ARPHRD_*` (1: Ethernet, 772: loopback).
        pub hwtype: u16,
        /// The hardware address (zero for loopback).
        pub mac: [u8; 6],
        /// The name, NUL-padded (at most 15 bytes and a NUL, as `IFNAMSIZ`).
        pub name: [u8; 16],
    }

    impl Iface {
        /// The name as text (up to the first NUL).
        pub fn name(&self) -> &str {
            let end = self.name.iter().position(|&b| b == 0).unwrap_or(16);
            core::str::from_utf8(&self.name[..end]).unwrap_or("")
        }
    }

    /// One address of an interface.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum IfAddr {
        /// An IPv4 address and its prefix length.
        V4([u8; 4], u8),
        /// An IPv6 address and its prefix length.
        V6([u8; 16], u8),
    }

    /// The size of a header.
    pub const HEADER: usize = 40;
    /// The size of an address.
    pub const ADDR: usize = 18;

    /// Appends `iface` with `addrs` to `out` at `*pos`. Returns false, writing
    /// nothing, when the header and all the addresses do not fit; with `partial`,
    /// as many addresses as fit are written instead (for an interface too large
    /// for any reply).
    pub fn encode(
        iface: &Iface,
        addrs: &[IfAddr],
        partial: bool,
        out: &mut [u8],
        pos: &mut usize,
    ) -> bool {
        let room = out.len().saturating_sub(*pos);
        if room < HEADER || (!partial && room < HEADER + addrs.len() * ADDR) {
            return false;
        }
        let n = addrs
            .len()
            .min((room - HEADER) / ADDR)
            .min(u16::MAX as usize);
        let o = &mut out[*pos..];
        o[0..4].copy_from_slice(&iface.index.to_le_bytes());
        o[4..8].copy_from_slice(&iface.flags.to_le_bytes());
        o[8..12].copy_from_slice(&iface.mtu.to_le_bytes());
        o[12..14].copy_from_slice(&iface.hwtype.to_le_bytes());
        o[14..20].copy_from_slice(&iface.mac);
        o[20..36].copy_from_slice(&iface.name);
        o[36..38].copy_from_slice(&(n as u16).to_le_bytes());
        o[38..40].fill(0);
        for (i, a) in addrs.iter().take(n).enumerate() {
            let at = &mut o[HEADER + i * ADDR..HEADER + (i + 1) * ADDR];
            at.fill(0);
            match *a {
                IfAddr::V4(b, p) => {
                    at[0] = 4;
                    at[1] = p;
                    at[2..6].copy_from_slice(&b);
                }
                IfAddr::V6(b, p) => {
                    at[0] = 6;
                    at[1] = p;
                    at[2..18].copy_from_slice(&b);
                }
            }
        }
        *pos += HEADER + n * ADDR;
        true
    }

    /// The first record of `data`: its header, its addresses' bytes (see
    /// [`addrs`]) and the rest of `data`. `None` when `data` is empty or malformed.
    pub fn decode(data: &[u8]) -> Option<(Iface, &[u8], &[u8])> {
        let h = data.get(..HEADER)?;
        let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&h[14..20]);
        let mut name = [0u8; 16];
        name.copy_from_slice(&h[20..36]);
        let n = u16::from_le_bytes([h[36], h[37]]) as usize;
        let end = HEADER.checked_add(n.checked_mul(ADDR)?)?;
        let addrs = data.get(HEADER..end)?;
        let iface = Iface {
            index: u32_at(0),
            flags: u32_at(4),
            mtu: u32_at(8),
            hwtype: u16::from_le_bytes([h[12], h[13]]),
            mac,
            name,
        };
        Some((iface, addrs, &data[end..]))
    }

    /// The addresses in the bytes [`decode`] returned; malformed ones are skipped.
    pub fn addrs(bytes: &[u8]) -> impl Iterator<Item = IfAddr> + '_ {
        bytes.chunks_exact(ADDR).filter_map(|a| match a[0] {
            4 => Some(IfAddr::V4([a[2], a[3], a[4], a[5]], a[1])),
            6 => {
                let mut b = [0u8; 16];
                b.copy_from_slice(&a[2..18]);
                Some(IfAddr::V6(b, a[1]))
            }
            _ => None,
        })
    }
}
