//! The byte layout of requests and replies (see the crate docs' wire format):
//! a bounds-checked writer and reader, and the encoders and decoders built on them.
//! Decoding never trusts a length it has not checked against the message.

use crate::*;
use core::fmt;
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

/// A sockaddr: its `u16` length (at most [`MAX_SOCKADDR`]), then its bytes.
fn take_sockaddr<'b>(r: &mut Reader<'b>) -> Result<&'b [u8], DecodeError> {
    let alen = r.u16()? as usize;
    if alen > MAX_SOCKADDR {
        return Err(DecodeError::BadField {
            field: "sockaddr length",
            value: alen as u64,
        });
    }
    r.take(alen)
}

/// The rest of the message: a datagram (at most [`MAX_DATAGRAM`] bytes).
fn take_datagram<'b>(r: &mut Reader<'b>) -> Result<&'b [u8], DecodeError> {
    let payload = r.rest();
    if payload.len() > MAX_DATAGRAM {
        return Err(DecodeError::BadField {
            field: "datagram length",
            value: payload.len() as u64,
        });
    }
    Ok(payload)
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
        Request::Bind { addr } => {
            check_len("sockaddr", addr, MAX_SOCKADDR)?;
            w.bytes(addr)?;
        }
        Request::Connect { addr, wait, spare } => {
            check_len("sockaddr", addr, MAX_SOCKADDR)?;
            w.u8(wait as u8 | (spare as u8) << 1)?;
            w.bytes(addr)?;
        }
        Request::Listen { backlog } => w.i32(backlog)?,
        Request::GetSockName
        | Request::GetPeerName
        | Request::Describe
        | Request::OriginRing
        | Request::Closing => {}
        Request::Interfaces { from } => w.u32(from)?,
        Request::Placed { fd } => w.i32(fd)?,
        Request::Table {
            step,
            level,
            name,
            offset,
            len,
            data,
        } => {
            check_len("table value", data, TABLE_PIECE)?;
            w.u8(step)?;
            w.i32(level)?;
            w.i32(name)?;
            w.u32(offset)?;
            w.u32(len)?;
            w.bytes(data)?;
        }
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
        Request::Post {
            flags,
            addr,
            payload,
        } => {
            check_len("sockaddr", addr, MAX_SOCKADDR)?;
            check_len("datagram", payload, MAX_DATAGRAM)?;
            w.i32(flags)?;
            w.u16(addr.len() as u16)?;
            w.bytes(addr)?;
            w.bytes(payload)?;
        }
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
            let flags = match op {
                Op::Connect => match r.u8()? {
                    f if f & !3 == 0 => f,
                    v => {
                        return Err(DecodeError::BadField {
                            field: "connect flags",
                            value: v as u64,
                        });
                    }
                },
                _ => 0,
            };
            let (wait, spare) = (flags & 1 != 0, flags & 2 != 0);
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
                Request::Connect { addr, wait, spare }
            }
        }
        Op::Listen => Request::Listen { backlog: r.i32()? },
        Op::GetSockName => Request::GetSockName,
        Op::GetPeerName => Request::GetPeerName,
        Op::Interfaces => Request::Interfaces { from: r.u32()? },
        Op::Placed => Request::Placed { fd: r.i32()? },
        Op::Table => {
            let step = r.u8()?;
            let level = r.i32()?;
            let name = r.i32()?;
            let offset = r.u32()?;
            let len = r.u32()?;
            let data = r.rest();
            if data.len() > TABLE_PIECE {
                return Err(DecodeError::BadField {
                    field: "table piece length",
                    value: data.len() as u64,
                });
            }
            Request::Table {
                step,
                level,
                name,
                offset,
                len,
                data,
            }
        }
        Op::Describe => Request::Describe,
        Op::OriginRing => Request::OriginRing,
        Op::Closing => Request::Closing,
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
            let addr = take_sockaddr(&mut r)?;
            let clen = r.u16()? as usize;
            if clen > MAX_CONTROL {
                return Err(DecodeError::BadField {
                    field: "control length",
                    value: clen as u64,
                });
            }
            let control = r.take(clen)?;
            Request::SendTo {
                flags,
                addr,
                control,
                payload: take_datagram(&mut r)?,
            }
        }
        Op::Post => Request::Post {
            flags: r.i32()?,
            addr: take_sockaddr(&mut r)?,
            payload: take_datagram(&mut r)?,
        },
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
