//! Datagram stand-ins: what a record read from one means.
//!
//! A datagram socket's stand-in carries bare payloads (see the stack's
//! `socket::udp`). A front end reads a record itself — natively into the program's
//! buffers (preload) or into its own and then into the program's (seccomp) — always
//! asking for the full length (`MSG_TRUNC`), and then comes here: a record with a
//! descriptor attached is an error marker and becomes its errno; otherwise, when the
//! program wants the source address or ancillary data, one `Origin` request matches
//! the datagram (by its length and first bytes) and fetches them.

use crate::{Fail, Memory, Service};
use netcell_proto::{Request, marker, origin};

/// The errno an error marker holds.
pub fn marker_errno(record: &[u8]) -> i32 {
    marker::decode(record)
}

/// What a received datagram's origin filled in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    /// The source address's full length (0: unknown, nothing written).
    pub namelen: u32,
    /// Bytes of ancillary data written.
    pub controllen: usize,
    /// The ancillary data did not all fit (`MSG_CTRUNC`).
    pub ctrunc: bool,
}

/// Where a receive wants a datagram's origin: the source address's buffer and its
/// room, the ancillary data's buffer and its room.
#[derive(Clone, Copy, Debug, Default)]
pub struct Wants {
    pub name: Option<(u64, u32)>,
    pub control: Option<(u64, usize)>,
}

impl Wants {
    /// Whether anything is wanted (else no request is made).
    pub fn any(&self) -> bool {
        self.name.is_some() || self.control.is_some_and(|(a, room)| a != 0 && room > 0)
    }
}

/// Asks where the datagram just read (`full` bytes long, beginning with `prefix`,
/// only peeked at with `peek`) came from, and writes what `wants` asks for. An
/// origin the stack lost track of leaves no address rather than a wrong one.
pub fn origin(
    mem: &impl Memory,
    svc: &mut impl Service,
    ino: u64,
    (full, prefix, peek): (usize, &[u8], bool),
    wants: Wants,
) -> Result<Origin, Fail> {
    let mut out = Origin::default();
    if !wants.any() {
        return Ok(out);
    }
    let req = Request::Origin {
        len: full as u32,
        peek,
        prefix: &prefix[..prefix.len().min(16)],
    };
    let mut buf = [0u8; netcell_proto::MAX_MESSAGE];
    let got = svc.ask(ino, &req, |r| {
        if r.errno != 0 || r.value != 1 {
            return None;
        }
        let n = r.data.len().min(buf.len());
        buf[..n].copy_from_slice(&r.data[..n]);
        Some(n)
    })?;
    let Some((addr, cmsgs)) = got.and_then(|n| origin::decode(&buf[..n])) else {
        return Ok(out);
    };
    if let Some((at, room)) = wants.name {
        mem.write(at, &addr[..addr.len().min(room as usize)])?;
        out.namelen = addr.len() as u32;
    }
    if let Some((at, room)) = wants.control.filter(|(a, room)| *a != 0 && *room > 0) {
        let n = cmsgs.len().min(room);
        mem.write(at, &cmsgs[..n])?;
        out.controllen = n;
        out.ctrunc = n < cmsgs.len();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use std::cell::RefCell;

    #[test]
    fn origins_fill_what_is_wanted_and_unknown_ones_nothing() {
        let m = Mem(RefCell::new(vec![0u8; 256]));
        let mut data = vec![4u8, 2, 0, 0, 53];
        data.extend_from_slice(&[7u8; 24]);
        let mut svc = Fixed {
            errno: 0,
            flags: 0,
            data,
            asked: vec![],
        };
        let wants = Wants {
            name: Some((BASE, 2)),
            control: Some((BASE + 64, 16)),
        };
        let o = origin(&m, &mut svc, 1, (10, b"hello", false), wants).unwrap();
        assert_eq!(
            o,
            Origin {
                namelen: 4,
                controllen: 16,
                ctrunc: true
            }
        );
        assert_eq!(&m.0.borrow()[..3], &[2, 0, 0]);
        // Nothing wanted: no request.
        svc.asked.clear();
        let none = origin(&m, &mut svc, 1, (10, b"x", false), Wants::default()).unwrap();
        assert_eq!(none, Origin::default());
        assert!(svc.asked.is_empty());
        // Unknown origin.
        svc.errno = libc::ENOENT;
        assert_eq!(
            origin(&m, &mut svc, 1, (10, b"x", false), wants).unwrap(),
            Origin::default()
        );
    }
}
