//! The control protocol between a container's shim and its netcell stack.
//!
//! # Theory of operation
//!
//! A container program's INET socket is, in the program, a *stand-in*: one end of an
//! `AF_UNIX` stream pair whose other end the stack holds. Bytes move over the pair
//! natively; only the calls that a byte stream cannot express travel as control
//! messages: creating a socket, naming it (`bind`, `getsockname`, `getpeername`),
//! `listen`, `connect`, options and `shutdown`. A front end (the `LD_PRELOAD` library,
//! or the seccomp supervisor inside the stack process) translates a C call into one
//! [`Request`]; the stack answers with one [`Reply`] carrying a Linux `errno` value, so
//! every socket-call semantic is decided once, in the stack.
//!
//! Messages travel over an `AF_UNIX` `SOCK_SEQPACKET` connection: one message per
//! packet, so framing is the kernel's job, and a packet longer than
//! [`MAX_REQUEST`] (a request) or [`MAX_MESSAGE`] (a reply) arrives truncated
//! (`MSG_TRUNC`), which the receiver rejects.
//!
//! Datagram sockets follow the same scheme with two more operations: a datagram
//! sent to an explicit destination travels in a [`Request::SendTo`] (a connected
//! socket's `send`/`write` stays native), and after reading a datagram natively from
//! its stand-in, a front end that needs the source address asks for it with
//! [`Request::Origin`] (see the stack's `socket::udp` for why the payload itself
//! carries no header).
//! File descriptors ride along as `SCM_RIGHTS`: the stack sends a new stand-in with the
//! reply to [`Request::Socket`], and the shim sends the stand-in with
//! [`Request::Connect`] (the stack must write into it, see the stack's `standin`
//! module). A socket is named by the inode of its stand-in (`st_ino` from `fstat`),
//! which stays the same across `dup`, `fork`, `exec` and fd passing.
//!
//! Accepting needs no control message: the stack delivers each accepted connection
//! to the listener's stand-in as one [`AcceptRecord`] with the connection's own
//! stand-in attached as `SCM_RIGHTS`. `accept()` is then one `recvmsg` on the
//! listener, which blocks, times out, wakes `epoll` and is shared between forked
//! workers exactly as a kernel listener is.
//!
//! # Wire format (version 1)
//!
//! All integers are little-endian. A request is a 16-byte header and a body:
//!
//! | offset | size | field                                   |
//! |-------:|-----:|-----------------------------------------|
//! | 0      | 2    | magic `b"nc"`                           |
//! | 2      | 1    | version, [`VERSION`]                    |
//! | 3      | 1    | operation, [`Op`]                       |
//! | 4      | 4    | sequence number, echoed in the reply    |
//! | 8      | 8    | socket: the stand-in's inode, 0 if none |
//! | 16     | ...  | body, per operation (see [`Request`])   |
//!
//! A reply is a 20-byte header and a body:
//!
//! | offset | size | field                                       |
//! |-------:|-----:|---------------------------------------------|
//! | 0      | 2    | magic `b"nc"`                               |
//! | 2      | 1    | version                                     |
//! | 3      | 1    | operation, echoed                           |
//! | 4      | 4    | sequence number, echoed                     |
//! | 8      | 4    | `errno` (0: success), a Linux errno value   |
//! | 12     | 4    | a 32-bit value, per operation               |
//! | 16     | 4    | flags, [`reply_flags`]                      |
//! | 20     | ...  | data: a sockaddr or an option value         |
//!
//! Socket addresses travel as the raw bytes of the C `struct sockaddr` the program
//! passed (at most [`MAX_SOCKADDR`] bytes): the stack parses and validates them, so a
//! front end never interprets an address.
//!
//! # Version negotiation
//!
//! The first request on a connection is [`Request::Hello`]. A stack that does not
//! speak the client's version answers `EPROTONOSUPPORT` and closes the connection.
//! Any message that fails to decode gets an `EBADMSG` reply when its header was
//! readable, and otherwise closes the connection; either way the stack goes on
//! serving every other connection.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod records;
pub mod ring;
#[cfg(test)]
mod tests;
mod wire;

pub use records::*;
pub use wire::*;

/// The protocol version this crate speaks.
pub const VERSION: u8 = 1;
/// The first two bytes of every message.
pub const MAGIC: [u8; 2] = *b"nc";
/// The largest reply the stack sends, in bytes.
pub const MAX_MESSAGE: usize = 2048;
/// The largest request a front end sends: a [`Request::SendTo`] carries a whole
/// datagram (up to 65535 bytes) besides its addresses.
pub const MAX_REQUEST: usize = 65536 + 1024;
/// The largest datagram payload [`Request::SendTo`] carries.
pub const MAX_DATAGRAM: usize = 65535;
/// The largest ancillary data (`msg_control`) [`Request::SendTo`] carries.
pub const MAX_CONTROL: usize = 256;
/// The largest socket address carried, in bytes (`sizeof(struct sockaddr_storage)`).
pub const MAX_SOCKADDR: usize = 128;
/// The largest option value carried by `setsockopt`/`getsockopt`, in bytes.
pub const MAX_OPTVAL: usize = 1024;
/// Size of a request header.
pub const REQUEST_HEADER: usize = 16;
/// Size of a reply header.
pub const REPLY_HEADER: usize = 20;

/// The environment variable that tells a shim where its stack's control socket is.
pub const ENV_CONTROL: &str = "NETCELL_CONTROL";

/// Flags in a reply's flag word.
pub mod reply_flags {
    /// `setsockopt`: the front end must also apply the option to the stand-in itself
    /// (options that the kernel's `AF_UNIX` socket implements with the right meaning,
    /// such as `SO_RCVTIMEO`).
    pub const APPLY_NATIVE: u32 = 1;
    /// The inode named is not a stand-in of this stack (an `AF_UNIX` socket of the
    /// program's own that happens to have the stack as its peer): the front end
    /// performs the call natively.
    pub const NOT_STANDIN: u32 = 2;
    /// `connect`: the reply carries a new stand-in (`SCM_RIGHTS`) that the front
    /// end puts in place of the program's descriptor, keeping its number and
    /// flags, before it goes on as the errno says (a connect after a failed one:
    /// the failure shut the old stand-in).
    pub const REPLACE_STANDIN: u32 = 4;
    /// `sendto` on a UDP socket: the datagram went out, and later datagrams of
    /// this socket to the block of addresses the data names may be posted
    /// ([`crate::Request::Post`]) while the grants generation is the one it names. Data:
    /// [`crate::Grant`]'s encoding.
    pub const GRANT: u32 = 8;
    /// `Hello`: the reply carries (`SCM_RIGHTS`) the page that holds the grants
    /// generation, a little-endian `u64` at its start, for a read-only shared
    /// mapping.
    pub const GENERATION: u32 = 16;
    /// `connect` asked for a spare ([`crate::Request::Connect`]'s `spare`): the
    /// reply carries (`SCM_RIGHTS`) a new, unconnected TCP stand-in of the
    /// domain the reply value names (`AF_INET`/`AF_INET6`), for the front end to
    /// hand out at the program's next `socket()` of that domain without asking.
    pub const SPARE: u32 = 32;
}

/// A block of destinations a UDP socket may post datagrams to without waiting
/// for the stack's answer ([`reply_flags::GRANT`]): every address in it is routed
/// the same way and nothing the stack checks per datagram can fail there, as long
/// as the grants generation (a counter the stack bumps on every change of
/// routes, addresses, links, the filter, or a datagram socket's settings) is
/// `generation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    /// 4 or 6.
    pub family: u8,
    /// The block's prefix length.
    pub prefix_len: u8,
    /// The block's address (IPv4 in the first four bytes).
    pub addr: [u8; 16],
    /// The generation the grant holds in.
    pub generation: u64,
    /// The largest payload a posted datagram may carry (what the route's link
    /// takes without fragments IPv6 does not make here).
    pub max_payload: u16,
}

impl Grant {
    /// Bytes of the encoding.
    pub const LEN: usize = 28;

    /// Writes the grant into `out` (at least [`Grant::LEN`] bytes).
    pub fn encode(&self, out: &mut [u8]) {
        out[0] = self.family;
        out[1] = self.prefix_len;
        out[2..18].copy_from_slice(&self.addr);
        out[18..26].copy_from_slice(&self.generation.to_le_bytes());
        out[26..28].copy_from_slice(&self.max_payload.to_le_bytes());
    }

    /// Reads a grant; `None` for anything malformed.
    pub fn decode(b: &[u8]) -> Option<Grant> {
        let b = b.get(..Self::LEN)?;
        let family = b[0];
        let prefix_len = b[1];
        let ok = match family {
            4 => prefix_len <= 32,
            6 => prefix_len <= 128,
            _ => false,
        };
        ok.then(|| Grant {
            family,
            prefix_len,
            addr: b[2..18].try_into().expect("16 bytes"),
            generation: u64::from_le_bytes(b[18..26].try_into().expect("8 bytes")),
            max_payload: u16::from_le_bytes([b[26], b[27]]),
        })
    }

    /// Whether `addr` (4 or 16 bytes, of the grant's family) lies in the block.
    pub fn covers(&self, addr: &[u8]) -> bool {
        let bits = match (self.family, addr.len()) {
            (4, 4) => 32,
            (6, 16) => 128,
            _ => return false,
        };
        let n = usize::from(self.prefix_len.min(bits));
        let (whole, rest) = (n / 8, n % 8);
        if addr[..whole] != self.addr[..whole] {
            return false;
        }
        rest == 0 || {
            let mask = 0xffu8 << (8 - rest);
            addr[whole] & mask == self.addr[whole] & mask
        }
    }
}

/// An operation: what a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    /// Opens a session; must be the first request.
    Hello = 1,
    /// `socket(2)`: the reply carries the new stand-in as `SCM_RIGHTS`.
    Socket = 2,
    /// `bind(2)`.
    Bind = 3,
    /// `listen(2)`.
    Listen = 4,
    /// `connect(2)`: the request carries the stand-in as `SCM_RIGHTS`.
    Connect = 5,
    /// `getsockname(2)`.
    GetSockName = 6,
    /// `getpeername(2)`.
    GetPeerName = 7,
    /// `setsockopt(2)`.
    SetSockOpt = 8,
    /// `getsockopt(2)`.
    GetSockOpt = 9,
    /// `shutdown(2)`.
    Shutdown = 10,
    /// `sendto(2)`/`sendmsg(2)` with a destination or ancillary data, on a datagram
    /// socket: the datagram travels in the request.
    SendTo = 11,
    /// Where the datagram just received natively from a stand-in came from.
    Origin = 12,
    /// What a descriptor is to the stack (the seccomp supervisor asks).
    Describe = 14,
    /// Whether a connect's handshake ended in a connection not yet reported.
    ConnectDone = 15,
    /// A datagram socket's pending error (an ICMP error).
    PendingError = 16,
    /// How a datagram socket learns of ICMP errors.
    ErrorMarkers = 17,
    /// The container's interfaces and their addresses.
    Interfaces = 18,
    /// Where a front end installed a stand-in in the program: no reply.
    Placed = 19,
    /// A step of a packet-filter table call (`iptables`' socket options).
    Table = 20,
    /// A datagram to a destination a [`Grant`] covers: no reply.
    Post = 21,
    /// The origins ring of a datagram socket (see [`ring`]).
    OriginRing = 22,
    /// The program closes a descriptor of a socket it posted on.
    Closing = 23,
}

/// The reply value of [`Request::Describe`]: what kind of socket the stand-in is.
pub mod kinds {
    /// A socket the stack closed under its program (after a reset): its stand-in
    /// still answers `getsockname`, `SO_ERROR`, ...
    pub const CLOSED: u32 = 0;
    /// TCP.
    pub const TCP: u32 = 1;
    /// UDP.
    pub const UDP: u32 = 2;
    /// ICMP echo ("ping").
    pub const ICMP: u32 = 3;
    /// Raw IP.
    pub const RAW: u32 = 4;
    /// Not a stand-in: a host TCP socket the uplink handed to the program in its
    /// place (the fast path). The kernel serves it; the stack answers only
    /// `getsockname` (with the container's address), and front ends refuse or
    /// re-route the calls that could point it somewhere else.
    pub const HOST_TCP: u32 = 5;
    /// A netlink (`NETLINK_ROUTE`) socket of the container's stack: a datagram
    /// stand-in whose requests go as `SendTo` and whose replies' origin is the
    /// kernel's address.
    pub const NETLINK: u32 = 6;
    /// Not a stand-in: a packet socket of the container's mirror (a kernel
    /// packet socket in a namespace that copies the container's interfaces; see
    /// the stack's `packet` module). The kernel serves every call on it.
    pub const PACKET: u32 = 7;
}

impl Op {
    /// The operation with this wire number.
    pub fn from_u8(v: u8) -> Option<Op> {
        Some(match v {
            1 => Op::Hello,
            2 => Op::Socket,
            3 => Op::Bind,
            4 => Op::Listen,
            5 => Op::Connect,
            6 => Op::GetSockName,
            7 => Op::GetPeerName,
            8 => Op::SetSockOpt,
            9 => Op::GetSockOpt,
            10 => Op::Shutdown,
            11 => Op::SendTo,
            12 => Op::Origin,
            14 => Op::Describe,
            15 => Op::ConnectDone,
            16 => Op::PendingError,
            17 => Op::ErrorMarkers,
            18 => Op::Interfaces,
            19 => Op::Placed,
            20 => Op::Table,
            21 => Op::Post,
            22 => Op::OriginRing,
            23 => Op::Closing,
            _ => return None,
        })
    }
}

/// A request from a front end, borrowing its variable-length parts from the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// Body: `pid: u32`, the caller's process id (for logs).
    /// Reply value: the stack's process id.
    Hello {
        /// The calling process.
        pid: u32,
    },
    /// Body: `domain: i32, type: i32, protocol: i32`, as passed to `socket(2)`
    /// (`type` with `SOCK_NONBLOCK`/`SOCK_CLOEXEC`, which the front end applies).
    Socket {
        /// `AF_INET` or `AF_INET6`.
        domain: i32,
        /// `SOCK_STREAM`, `SOCK_DGRAM`, ... with flags.
        ty: i32,
        /// `IPPROTO_*` or 0.
        protocol: i32,
    },
    /// Body: the sockaddr bytes.
    Bind {
        /// The address as the program passed it.
        addr: &'a [u8],
    },
    /// Body: `backlog: i32`.
    Listen {
        /// The program's backlog argument.
        backlog: i32,
    },
    /// Body: `flags: u8` (bit 0 `wait`, bit 1 `spare`), then the sockaddr
    /// bytes. The stand-in rides along as `SCM_RIGHTS`. `EINPROGRESS` is the
    /// normal answer; the stand-in turns writable when the connection is
    /// established or has failed, and `SO_ERROR` tells which.
    Connect {
        /// The address as the program passed it.
        addr: &'a [u8],
        /// The program waits for the handshake (a blocking socket) and the
        /// answer reaches it for sure (the preload shim): a connection the
        /// request's own poll established (a destination inside the container)
        /// is answered 0 and counts as reported — no `ConnectDone` round trip.
        wait: bool,
        /// The front end wants a spare stand-in ([`reply_flags::SPARE`]) for the
        /// program's next `socket()`: a TCP socket's connect is the round trip
        /// that brings it, so that the `socket()` needs none.
        spare: bool,
    },
    /// No body. Reply data: the sockaddr.
    GetSockName,
    /// No body. Reply data: the sockaddr.
    GetPeerName,
    /// Body: `level: i32, name: i32`, then the value bytes.
    SetSockOpt {
        /// `SOL_SOCKET`, `IPPROTO_TCP`, ...
        level: i32,
        /// The option.
        name: i32,
        /// The value as the program passed it.
        value: &'a [u8],
    },
    /// Body: `level: i32, name: i32, len: u32` (the caller's buffer size).
    /// Reply data: the value (possibly longer than `len`; the caller truncates).
    GetSockOpt {
        /// `SOL_SOCKET`, `IPPROTO_TCP`, ...
        level: i32,
        /// The option.
        name: i32,
        /// The size of the caller's buffer.
        len: u32,
    },
    /// Body: `how: i32`. On success the front end also shuts the stand-in down, so
    /// that the half-close is ordered after the bytes already written.
    Shutdown {
        /// `SHUT_RD`, `SHUT_WR` or `SHUT_RDWR`.
        how: i32,
    },
    /// Body: `flags: i32, addr_len: u16, addr, control_len: u16, control`, then the
    /// payload. `addr` may be empty (a connected socket with ancillary data);
    /// `control` is the program's `msg_control` bytes (`IP_PKTINFO`, ...).
    /// Reply value: bytes sent.
    SendTo {
        /// `MSG_*` flags.
        flags: i32,
        /// The destination sockaddr, or empty.
        addr: &'a [u8],
        /// Ancillary data as the program passed it.
        control: &'a [u8],
        /// The datagram.
        payload: &'a [u8],
    },
    /// Body: `flags: i32, addr_len: u16, addr`, then the payload: a datagram of a
    /// UDP socket to a destination a [`Grant`] of the socket covers, with no
    /// ancillary data. The stack sends no reply: the front end already told the
    /// program the datagram was sent. The stack still checks everything it checks
    /// for [`Request::SendTo`]; a datagram that fails is dropped and counted.
    Post {
        /// `MSG_*` flags.
        flags: i32,
        /// The destination sockaddr.
        addr: &'a [u8],
        /// The datagram.
        payload: &'a [u8],
    },
    /// No body. The reply carries (`SCM_RIGHTS`) the socket's origins ring for a
    /// read-only shared mapping of [`ring::WORDS`] words, value 1; value 0 when
    /// the socket gets none (not UDP, or the container holds as many rings as
    /// it may).
    OriginRing,
    /// No body. The program is about to close a descriptor of a socket it
    /// posted datagrams on ([`Request::Post`]); the requests before this one on
    /// the connection were served, so the socket's close need not wait for
    /// posts (the stack's `control::grants`).
    Closing,
    /// Body: `len: u32, peek: u8, prefix_len: u8`, then `prefix_len` (at most 16)
    /// bytes: the full length and the first bytes of a datagram the front end just
    /// read from the stand-in (with `MSG_PEEK` when `peek`). Reply data: `src_len: u8`,
    /// the source sockaddr, then the ancillary data (`cmsghdr`s) the socket's options
    /// ask for (`IP_PKTINFO`, ...). Reply value: 1 when the origin is known.
    Origin {
        /// The datagram's full length.
        len: u32,
        /// The datagram was only peeked at.
        peek: bool,
        /// Its first bytes (at most 16).
        prefix: &'a [u8],
    },
    /// Body: `from: u32`. The interfaces whose index is `from` or above, as
    /// [`iface`] records in the reply's data, as many as fit; reply value: the
    /// index to ask from next, 0 when none is left.
    Interfaces {
        /// The first interface index wanted (1 for all).
        from: u32,
    },
    /// Body: `fd: i32`. The stand-in was installed as descriptor `fd` of the
    /// requesting process (the seccomp supervisor says so after
    /// `SECCOMP_IOCTL_NOTIF_ADDFD`, the preload shim after an `accept`), so that
    /// the stack can find it again: after a reset it makes the program's next
    /// read fail with `ECONNRESET`. **No reply** (see [`Op::answered`]): an
    /// `accept` must not wait a round trip for it; the stack holds back a
    /// hang-up of a connection it has not yet heard is placed until it has read
    /// the control connections once after the hang-up.
    Placed {
        /// The descriptor number in the program.
        fd: i32,
    },
    /// No body. Reply value: [`kinds`]; `NOT_STANDIN` when the inode is not one of
    /// the stack's stand-ins.
    Describe,
    /// Body: `commit: u8`. Reply value: 1 when the socket's connect ended in a
    /// connection that no `connect` has reported yet; with `commit`, it is reported
    /// now. (The seccomp supervisor answers a blocking `connect` itself and commits
    /// only once its answer reached the program, so that a call a signal interrupts
    /// and restarts still gets 0.)
    ConnectDone {
        /// Mark it reported.
        commit: bool,
    },
    /// Body: `take: u8`. Reply value: the pending errno of a datagram socket (an
    /// ICMP error), 0 if none; with `take` it is cleared, as `SO_ERROR` does.
    PendingError {
        /// Clear it.
        take: bool,
    },
    /// Body: `on: u8`. Whether ICMP errors of a datagram socket go into its
    /// stand-in as [`marker`] records (the default, for the preload library, which
    /// reads every record itself) or wait as the pending error (the seccomp
    /// supervisor, under which plain reads stay native).
    ErrorMarkers {
        /// Markers in the stand-in.
        on: bool,
    },
    /// Body: `step: u8, level: i32, name: i32, offset: u32, len: u32`, then
    /// `data`. One step of an `iptables` socket option (`IPT_SO_*` at `SOL_IP`,
    /// `ip6tables`' `IP6T_SO_*` at `SOL_IPV6`), whose values are
    /// larger than a message: see [`table_steps`]. The values go through a
    /// staging area of the stack's, at most [`MAX_TABLE`] bytes each way.
    Table {
        /// A [`table_steps`] value.
        step: u8,
        /// `SOL_IP` (iptables) or `SOL_IPV6` (ip6tables).
        level: i32,
        /// The option (`IPT_SO_SET_REPLACE`, `IPT_SO_GET_ENTRIES`, ...).
        name: i32,
        /// Where in the staged value `data` goes (`PUT`) or is read (`READ`).
        offset: u32,
        /// `PUT`: the whole value's length; `GET`: the caller's buffer size;
        /// `READ`: the most bytes wanted.
        len: u32,
        /// `PUT`: a piece of the value; `GET`: the fixed header the caller passed.
        data: &'a [u8],
    },
}

/// The steps of [`Request::Table`].
///
/// A `setsockopt` is `PUT` of its value in pieces (offset 0 starts afresh), then
/// `SET`, whose reply value is the length of what the call gives back (the old
/// counters of `IPT_SO_SET_REPLACE`), read with `READ`. A `getsockopt` is `GET`
/// with the value's fixed header; its reply value is the length of the answer
/// (read with `READ`; the reply carries its first bytes) or, for the revision
/// queries, the call's return value.
pub mod table_steps {
    /// A piece of a `setsockopt` value.
    pub const PUT: u8 = 1;
    /// Carry out the `setsockopt` whose value was put.
    pub const SET: u8 = 2;
    /// Carry out a `getsockopt`.
    pub const GET: u8 = 3;
    /// A piece of the answer.
    pub const READ: u8 = 4;
}

/// The largest `iptables` table value carried by [`Request::Table`], in bytes.
pub const MAX_TABLE: usize = 8 << 20;
/// The most bytes of a table value one [`Request::Table`] carries.
pub const TABLE_PIECE: usize = 60_000;

impl Op {
    /// Whether the stack answers a request of this operation: [`Op::Post`] and
    /// [`Op::Placed`] are sent and forgotten (in order with the connection's
    /// other requests).
    pub fn answered(self) -> bool {
        !matches!(self, Op::Post | Op::Placed)
    }
}

impl Request<'_> {
    /// The operation of this request.
    pub fn op(&self) -> Op {
        match self {
            Request::Hello { .. } => Op::Hello,
            Request::Socket { .. } => Op::Socket,
            Request::Bind { .. } => Op::Bind,
            Request::Listen { .. } => Op::Listen,
            Request::Connect { .. } => Op::Connect,
            Request::GetSockName => Op::GetSockName,
            Request::GetPeerName => Op::GetPeerName,
            Request::SetSockOpt { .. } => Op::SetSockOpt,
            Request::GetSockOpt { .. } => Op::GetSockOpt,
            Request::Shutdown { .. } => Op::Shutdown,
            Request::SendTo { .. } => Op::SendTo,
            Request::Post { .. } => Op::Post,
            Request::OriginRing => Op::OriginRing,
            Request::Closing => Op::Closing,
            Request::Origin { .. } => Op::Origin,
            Request::Interfaces { .. } => Op::Interfaces,
            Request::Placed { .. } => Op::Placed,
            Request::Describe => Op::Describe,
            Request::ConnectDone { .. } => Op::ConnectDone,
            Request::PendingError { .. } => Op::PendingError,
            Request::ErrorMarkers { .. } => Op::ErrorMarkers,
            Request::Table { .. } => Op::Table,
        }
    }
}

/// The header fields of a request other than the operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestHeader {
    /// Echoed in the reply, so that a client can detect a stale reply.
    pub seq: u32,
    /// The stand-in's inode, or 0.
    pub sock: u64,
}

/// A reply from the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply<'a> {
    /// The operation answered.
    pub op: Op,
    /// The request's sequence number.
    pub seq: u32,
    /// 0, or the Linux `errno` value the call fails with.
    pub errno: i32,
    /// A 32-bit result, per operation (the stack's pid for `Hello`).
    pub value: u32,
    /// [`reply_flags`].
    pub flags: u32,
    /// A sockaddr or an option value.
    pub data: &'a [u8],
}
