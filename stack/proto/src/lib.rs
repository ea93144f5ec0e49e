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

use core::fmt;

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
    /// Facts about the container the resolver needs.
    Info = 13,
    /// What a descriptor is to the stack (the seccomp supervisor asks).
    Describe = 14,
    /// Whether a connect's handshake ended in a connection not yet reported.
    ConnectDone = 15,
    /// A datagram socket's pending error (an ICMP error).
    PendingError = 16,
    /// How a datagram socket learns of ICMP errors.
    ErrorMarkers = 17,
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
}

/// Bits of the reply value of [`Request::Info`].
pub mod info_flags {
    /// The container has an IPv4 address besides loopback.
    pub const HAS_IPV4: u32 = 1;
    /// The container has a global (not link-local) IPv6 address besides loopback.
    pub const HAS_IPV6: u32 = 2;
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
            13 => Op::Info,
            14 => Op::Describe,
            15 => Op::ConnectDone,
            16 => Op::PendingError,
            17 => Op::ErrorMarkers,
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
    /// Body: the sockaddr bytes. The stand-in rides along as `SCM_RIGHTS`.
    /// `EINPROGRESS` is the normal answer; the stand-in turns writable when the
    /// connection is established or has failed, and `SO_ERROR` tells which.
    Connect {
        /// The address as the program passed it.
        addr: &'a [u8],
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
    /// No body. Reply value: [`info_flags`].
    Info,
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
            Request::Origin { .. } => Op::Origin,
            Request::Info => Op::Info,
            Request::Describe => Op::Describe,
            Request::ConnectDone { .. } => Op::ConnectDone,
            Request::PendingError { .. } => Op::PendingError,
            Request::ErrorMarkers { .. } => Op::ErrorMarkers,
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

/// Why a message could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The output buffer is too small.
    BufferTooSmall,
    /// A variable-length field exceeds its limit.
    FieldTooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::BufferTooSmall => write!(f, "output buffer too small"),
            EncodeError::FieldTooLong { field, len } => {
                write!(f, "{field} is {len} bytes, more than the protocol carries")
            }
        }
    }
}

impl std::error::Error for EncodeError {}

/// Why a message could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than its header or than its operation's body.
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// Longer than [`MAX_MESSAGE`].
    TooLong(usize),
    /// Does not start with [`MAGIC`].
    BadMagic([u8; 2]),
    /// A version this crate does not speak.
    BadVersion(u8),
    /// An unknown operation number.
    UnknownOp(u8),
    /// A field's value is out of range.
    BadField {
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
}

impl DecodeError {
    /// Whether the header was readable, so that an error reply can be addressed.
    pub fn header_was_valid(&self) -> bool {
        !matches!(
            self,
            DecodeError::BadMagic(_) | DecodeError::BadVersion(_) | DecodeError::TooLong(_)
        ) && !matches!(self, DecodeError::Truncated { have, .. } if *have < REQUEST_HEADER)
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { need, have } => {
                write!(f, "truncated message: {have} bytes, need {need}")
            }
            DecodeError::TooLong(n) => write!(f, "message of {n} bytes is too long"),
            DecodeError::BadMagic(m) => write!(f, "bad magic {:02x}{:02x}", m[0], m[1]),
            DecodeError::BadVersion(v) => {
                write!(f, "protocol version {v} (this stack speaks {VERSION})")
            }
            DecodeError::UnknownOp(op) => write!(f, "unknown operation {op}"),
            DecodeError::BadField { field, value } => write!(f, "bad {field}: {value}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// A bounds-checked little-endian writer over a caller's buffer.
struct Writer<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl<'b> Writer<'b> {
    fn new(buf: &'b mut [u8]) -> Self {
        Writer { buf, pos: 0 }
    }
    fn bytes(&mut self, b: &[u8]) -> Result<(), EncodeError> {
        let end = self.pos + b.len();
        if end > self.buf.len() || end > MAX_REQUEST {
            return Err(EncodeError::BufferTooSmall);
        }
        self.buf[self.pos..end].copy_from_slice(b);
        self.pos = end;
        Ok(())
    }
    fn u8(&mut self, v: u8) -> Result<(), EncodeError> {
        self.bytes(&[v])
    }
    fn u32(&mut self, v: u32) -> Result<(), EncodeError> {
        self.bytes(&v.to_le_bytes())
    }
    fn i32(&mut self, v: i32) -> Result<(), EncodeError> {
        self.bytes(&v.to_le_bytes())
    }
    fn u16(&mut self, v: u16) -> Result<(), EncodeError> {
        self.bytes(&v.to_le_bytes())
    }
    fn u64(&mut self, v: u64) -> Result<(), EncodeError> {
        self.bytes(&v.to_le_bytes())
    }
}

/// A bounds-checked little-endian reader.
struct Reader<'b> {
    buf: &'b [u8],
    pos: usize,
}

impl<'b> Reader<'b> {
    fn take(&mut self, n: usize) -> Result<&'b [u8], DecodeError> {
        let end = self.pos + n;
        if end > self.buf.len() {
            return Err(DecodeError::Truncated {
                need: end,
                have: self.buf.len(),
            });
        }
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn rest(&mut self) -> &'b [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }
    fn finish(&self) -> Result<(), DecodeError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(DecodeError::BadField {
                field: "trailing bytes",
                value: (self.buf.len() - self.pos) as u64,
            })
        }
    }
}

fn check_len(field: &'static str, data: &[u8], max: usize) -> Result<(), EncodeError> {
    if data.len() > max {
        Err(EncodeError::FieldTooLong {
            field,
            len: data.len(),
        })
    } else {
        Ok(())
    }
}

/// Encodes a request into `buf`, returning the message length.
pub fn encode_request(
    hdr: RequestHeader,
    req: &Request<'_>,
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    let mut w = Writer::new(buf);
    w.bytes(&MAGIC)?;
    w.u8(VERSION)?;
    w.u8(req.op() as u8)?;
    w.u32(hdr.seq)?;
    w.u64(hdr.sock)?;
    match *req {
        Request::Hello { pid } => w.u32(pid)?,
        Request::Socket {
            domain,
            ty,
            protocol,
        } => {
            w.i32(domain)?;
            w.i32(ty)?;
            w.i32(protocol)?;
        }
        Request::Bind { addr } | Request::Connect { addr } => {
            check_len("sockaddr", addr, MAX_SOCKADDR)?;
            w.bytes(addr)?;
        }
        Request::Listen { backlog } => w.i32(backlog)?,
        Request::GetSockName | Request::GetPeerName | Request::Info | Request::Describe => {}
        Request::ConnectDone { commit: b }
        | Request::PendingError { take: b }
        | Request::ErrorMarkers { on: b } => w.u8(b as u8)?,
        Request::SetSockOpt { level, name, value } => {
            check_len("option value", value, MAX_OPTVAL)?;
            w.i32(level)?;
            w.i32(name)?;
            w.bytes(value)?;
        }
        Request::GetSockOpt { level, name, len } => {
            w.i32(level)?;
            w.i32(name)?;
            w.u32(len)?;
        }
        Request::Shutdown { how } => w.i32(how)?,
        Request::SendTo {
            flags,
            addr,
            control,
            payload,
        } => {
            check_len("sockaddr", addr, MAX_SOCKADDR)?;
            check_len("control", control, MAX_CONTROL)?;
            check_len("datagram", payload, MAX_DATAGRAM)?;
            w.i32(flags)?;
            w.u16(addr.len() as u16)?;
            w.bytes(addr)?;
            w.u16(control.len() as u16)?;
            w.bytes(control)?;
            w.bytes(payload)?;
        }
        Request::Origin { len, peek, prefix } => {
            check_len("prefix", prefix, 16)?;
            w.u32(len)?;
            w.u8(peek as u8)?;
            w.u8(prefix.len() as u8)?;
            w.bytes(prefix)?;
        }
    }
    Ok(w.pos)
}

fn decode_header(r: &mut Reader<'_>, len: usize, max: usize) -> Result<u8, DecodeError> {
    if len > max {
        return Err(DecodeError::TooLong(len));
    }
    let magic = r.array::<2>()?;
    if magic != MAGIC {
        return Err(DecodeError::BadMagic(magic));
    }
    let version = r.u8()?;
    if version != VERSION {
        return Err(DecodeError::BadVersion(version));
    }
    r.u8()
}

/// Decodes the header of a request whose body may be bad, so that an error reply can
/// echo the operation and sequence number. `None` if even that is unreadable.
pub fn peek_request_header(msg: &[u8]) -> Option<(u8, RequestHeader)> {
    let mut r = Reader { buf: msg, pos: 0 };
    let op = decode_header(&mut r, msg.len(), MAX_REQUEST).ok()?;
    let seq = r.u32().ok()?;
    let sock = r.u64().ok()?;
    Some((op, RequestHeader { seq, sock }))
}

/// Decodes a request.
pub fn decode_request(msg: &[u8]) -> Result<(RequestHeader, Request<'_>), DecodeError> {
    let mut r = Reader { buf: msg, pos: 0 };
    let op = decode_header(&mut r, msg.len(), MAX_REQUEST)?;
    let seq = r.u32()?;
    let sock = r.u64()?;
    let op = Op::from_u8(op).ok_or(DecodeError::UnknownOp(op))?;
    let req = match op {
        Op::Hello => Request::Hello { pid: r.u32()? },
        Op::Socket => Request::Socket {
            domain: r.i32()?,
            ty: r.i32()?,
            protocol: r.i32()?,
        },
        Op::Bind | Op::Connect => {
            let addr = r.rest();
            if addr.len() > MAX_SOCKADDR {
                return Err(DecodeError::BadField {
                    field: "sockaddr length",
                    value: addr.len() as u64,
                });
            }
            if op == Op::Bind {
                Request::Bind { addr }
            } else {
                Request::Connect { addr }
            }
        }
        Op::Listen => Request::Listen { backlog: r.i32()? },
        Op::GetSockName => Request::GetSockName,
        Op::GetPeerName => Request::GetPeerName,
        Op::Info => Request::Info,
        Op::Describe => Request::Describe,
        Op::ConnectDone => Request::ConnectDone {
            commit: r.u8()? != 0,
        },
        Op::PendingError => Request::PendingError { take: r.u8()? != 0 },
        Op::ErrorMarkers => Request::ErrorMarkers { on: r.u8()? != 0 },
        Op::SetSockOpt => {
            let level = r.i32()?;
            let name = r.i32()?;
            let value = r.rest();
            if value.len() > MAX_OPTVAL {
                return Err(DecodeError::BadField {
                    field: "option length",
                    value: value.len() as u64,
                });
            }
            Request::SetSockOpt { level, name, value }
        }
        Op::GetSockOpt => Request::GetSockOpt {
            level: r.i32()?,
            name: r.i32()?,
            len: r.u32()?,
        },
        Op::Shutdown => Request::Shutdown { how: r.i32()? },
        Op::SendTo => {
            let flags = r.i32()?;
            let alen = r.u16()? as usize;
            if alen > MAX_SOCKADDR {
                return Err(DecodeError::BadField {
                    field: "sockaddr length",
                    value: alen as u64,
                });
            }
            let addr = r.take(alen)?;
            let clen = r.u16()? as usize;
            if clen > MAX_CONTROL {
                return Err(DecodeError::BadField {
                    field: "control length",
                    value: clen as u64,
                });
            }
            let control = r.take(clen)?;
            let payload = r.rest();
            if payload.len() > MAX_DATAGRAM {
                return Err(DecodeError::BadField {
                    field: "datagram length",
                    value: payload.len() as u64,
                });
            }
            Request::SendTo {
                flags,
                addr,
                control,
                payload,
            }
        }
        Op::Origin => {
            let len = r.u32()?;
            let peek = match r.u8()? {
                0 => false,
                1 => true,
                v => {
                    return Err(DecodeError::BadField {
                        field: "peek",
                        value: v as u64,
                    });
                }
            };
            let plen = r.u8()? as usize;
            if plen > 16 {
                return Err(DecodeError::BadField {
                    field: "prefix length",
                    value: plen as u64,
                });
            }
            Request::Origin {
                len,
                peek,
                prefix: r.take(plen)?,
            }
        }
    };
    r.finish()?;
    Ok((RequestHeader { seq, sock }, req))
}

/// Encodes a reply into `buf`, returning the message length.
pub fn encode_reply(reply: &Reply<'_>, buf: &mut [u8]) -> Result<usize, EncodeError> {
    check_len("reply data", reply.data, MAX_MESSAGE - REPLY_HEADER)?;
    encode_reply_raw(reply.op as u8, reply, buf)
}

/// Encodes a reply to a request whose operation number is not known to this crate.
pub fn encode_reply_raw(op: u8, reply: &Reply<'_>, buf: &mut [u8]) -> Result<usize, EncodeError> {
    let mut w = Writer::new(buf);
    w.bytes(&MAGIC)?;
    w.u8(VERSION)?;
    w.u8(op)?;
    w.u32(reply.seq)?;
    w.i32(reply.errno)?;
    w.u32(reply.value)?;
    w.u32(reply.flags)?;
    w.bytes(reply.data)?;
    Ok(w.pos)
}

/// Decodes a reply.
pub fn decode_reply(msg: &[u8]) -> Result<Reply<'_>, DecodeError> {
    let mut r = Reader { buf: msg, pos: 0 };
    let op = decode_header(&mut r, msg.len(), MAX_MESSAGE)?;
    let op = Op::from_u8(op).ok_or(DecodeError::UnknownOp(op))?;
    let seq = r.u32()?;
    let errno = r.i32()?;
    if errno < 0 {
        return Err(DecodeError::BadField {
            field: "errno",
            value: errno as u64,
        });
    }
    let value = r.u32()?;
    let flags = r.u32()?;
    let data = r.rest();
    Ok(Reply {
        op,
        seq,
        errno,
        value,
        flags,
        data,
    })
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_markers_round_trip() {
        let mut out = [0u8; 32];
        let n = origin::encode_addr(&[2, 0, 1, 2], &mut out).unwrap();
        out[n] = 9;
        assert_eq!(
            origin::decode(&out[..n + 1]),
            Some((&[2u8, 0, 1, 2][..], &[9u8][..]))
        );
        assert_eq!(origin::decode(&[5, 1]), None);
        assert_eq!(origin::decode(&[]), None);
        assert_eq!(marker::decode(&marker::encode(113)), 113);
        assert_eq!(marker::decode(&[1, 2]), 111);
        assert_eq!(marker::decode(&(-5i32).to_ne_bytes()), 111);
    }

    fn roundtrip(req: Request<'_>) {
        let mut buf = [0u8; MAX_MESSAGE];
        let hdr = RequestHeader { seq: 7, sock: 99 };
        let n = encode_request(hdr, &req, &mut buf).unwrap();
        let (h2, r2) = decode_request(&buf[..n]).unwrap();
        assert_eq!(h2, hdr);
        assert_eq!(r2, req);
    }

    #[test]
    fn requests_roundtrip() {
        roundtrip(Request::Hello { pid: 1234 });
        roundtrip(Request::Socket {
            domain: 2,
            ty: 1 | 0o4000,
            protocol: 0,
        });
        roundtrip(Request::Bind {
            addr: &[2, 0, 0, 80],
        });
        roundtrip(Request::Connect { addr: &[10, 0] });
        roundtrip(Request::Listen { backlog: -1 });
        roundtrip(Request::GetSockName);
        roundtrip(Request::GetPeerName);
        roundtrip(Request::Info);
        roundtrip(Request::SetSockOpt {
            level: 6,
            name: 1,
            value: &1i32.to_ne_bytes(),
        });
        roundtrip(Request::GetSockOpt {
            level: 1,
            name: 4,
            len: 4,
        });
        roundtrip(Request::Shutdown { how: 1 });
        roundtrip(Request::SendTo {
            flags: 0x40,
            addr: &[2, 0, 0, 53, 10, 0, 0, 1],
            control: &[1, 2, 3],
            payload: b"query",
        });
        roundtrip(Request::SendTo {
            flags: 0,
            addr: &[],
            control: &[],
            payload: &[],
        });
        roundtrip(Request::Origin {
            len: 1400,
            peek: true,
            prefix: b"0123456789abcdef",
        });
    }

    #[test]
    fn big_datagrams_fit_small_replies_do_not_grow() {
        let payload = vec![7u8; MAX_DATAGRAM];
        let mut buf = vec![0u8; MAX_REQUEST];
        let n = encode_request(
            RequestHeader::default(),
            &Request::SendTo {
                flags: 0,
                addr: &[0; MAX_SOCKADDR],
                control: &[0; MAX_CONTROL],
                payload: &payload,
            },
            &mut buf,
        )
        .unwrap();
        assert!(decode_request(&buf[..n]).is_ok());
        let big = vec![0u8; MAX_MESSAGE + 1];
        assert!(matches!(decode_reply(&big), Err(DecodeError::TooLong(_))));
    }

    #[test]
    fn reply_roundtrip() {
        let mut buf = [0u8; MAX_MESSAGE];
        let r = Reply {
            op: Op::GetSockName,
            seq: 3,
            errno: 0,
            value: 16,
            flags: reply_flags::APPLY_NATIVE,
            data: &[2, 0, 1, 2, 127, 0, 0, 1],
        };
        let n = encode_reply(&r, &mut buf).unwrap();
        assert_eq!(decode_reply(&buf[..n]).unwrap(), r);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let mut buf = [0u8; MAX_MESSAGE];
        let n = encode_request(
            RequestHeader::default(),
            &Request::Socket {
                domain: 2,
                ty: 1,
                protocol: 0,
            },
            &mut buf,
        )
        .unwrap();
        for cut in 0..n {
            assert!(decode_request(&buf[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn garbage_is_rejected_not_panicking() {
        // A cheap deterministic PRNG; the fuzz targets do the thorough job.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let mut buf = [0u8; 64];
        for _ in 0..20000 {
            for b in buf.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            let len = (x % 64) as usize;
            let _ = decode_request(&buf[..len]);
            let _ = decode_reply(&buf[..len]);
            let _ = AcceptRecord::decode(&buf[..len]);
        }
    }

    #[test]
    fn wrong_magic_version_op_length() {
        let mut buf = [0u8; MAX_MESSAGE];
        let n = encode_request(RequestHeader::default(), &Request::GetSockName, &mut buf).unwrap();
        let mut m = buf[..n].to_vec();
        m[0] = b'x';
        assert!(matches!(decode_request(&m), Err(DecodeError::BadMagic(_))));
        let mut m = buf[..n].to_vec();
        m[2] = 9;
        assert_eq!(decode_request(&m), Err(DecodeError::BadVersion(9)));
        let mut m = buf[..n].to_vec();
        m[3] = 200;
        assert_eq!(decode_request(&m), Err(DecodeError::UnknownOp(200)));
        let mut m = buf[..n].to_vec();
        m.push(0);
        assert!(matches!(
            decode_request(&m),
            Err(DecodeError::BadField { .. })
        ));
        let big = vec![0u8; MAX_REQUEST + 1];
        assert_eq!(
            decode_request(&big),
            Err(DecodeError::TooLong(MAX_REQUEST + 1))
        );
        let long = [0u8; MAX_SOCKADDR + 1];
        assert!(
            encode_request(
                RequestHeader::default(),
                &Request::Bind { addr: &long },
                &mut buf
            )
            .is_err()
        );
    }

    #[test]
    fn accept_record_roundtrip() {
        let mut a = [0u8; RECORD_SOCKADDR];
        a[0] = 2;
        let rec = AcceptRecord {
            local: (a, 16),
            peer: ([7u8; RECORD_SOCKADDR], 28),
        };
        let enc = rec.encode();
        assert_eq!(AcceptRecord::decode(&enc), Some(rec));
        let mut bad = enc;
        bad[4] = 200;
        assert_eq!(AcceptRecord::decode(&bad), None);
    }
}
