//! What a socket call means between a program's arguments and the socket service's
//! [`Request`]/reply, written once for both of netcell's front ends.
//!
//! # Theory of operation
//!
//! A program's socket call reaches netcell in one of two ways: the `LD_PRELOAD`
//! library catches the C call in the program, or the seccomp supervisor catches the
//! system call in the stack's process. Both must answer it alike — the argument
//! checks Linux makes, the errno values, how an address or an option value is
//! copied back and truncated, what a datagram's source and ancillary data look
//! like. That meaning lives here; each front end supplies only
//!
//! - its memory access ([`Memory`]): the program's own pointers (preload), or
//!   `process_vm_readv`/`writev` with the notification's `ID_VALID` checked
//!   (seccomp);
//! - its transport to the service ([`Service`]): a request over the control socket
//!   (preload), or a direct call in the stack's thread (seccomp);
//! - and its way of waiting, which stays in the front end: a call here never
//!   blocks; where the kernel would, it says so ([`Done::Native`] or the errno the
//!   front end waits on).
//!
//! Addresses are `u64` in the program's address space; the preload library's are
//! its own pointers.
#![forbid(unsafe_code)]

pub mod dgram;
pub mod ifreq;
pub mod table;

use netcell_proto::{AcceptRecord, MAX_OPTVAL, MAX_SOCKADDR, Request, reply_flags};

/// Why a call returns no value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fail {
    /// The call fails with this errno.
    Errno(i32),
    /// Nobody waits for the answer any more (seccomp: the target was interrupted).
    Gone,
}

impl From<std::io::Error> for Fail {
    fn from(e: std::io::Error) -> Self {
        Fail::Errno(e.raw_os_error().unwrap_or(libc::EIO))
    }
}

/// The program's memory, as a front end reaches it.
pub trait Memory {
    /// Reads `buf.len()` bytes at `addr`; `EFAULT` where they are not readable.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Fail>;
    /// Writes `data` at `addr`; `EFAULT` where it is not writable.
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), Fail>;

    /// Reads a `u32` (an `int`, a `socklen_t`).
    fn read_u32(&self, addr: u64) -> Result<u32, Fail> {
        let mut b = [0u8; 4];
        self.read(addr, &mut b)?;
        Ok(u32::from_ne_bytes(b))
    }

    /// Writes a `u32`.
    fn write_u32(&self, addr: u64, v: u32) -> Result<(), Fail> {
        self.write(addr, &v.to_ne_bytes())
    }
}

/// A reply of the socket service.
#[derive(Clone, Copy, Debug)]
pub struct Reply<'d> {
    /// 0 or a Linux errno.
    pub errno: i32,
    /// A per-operation value.
    pub value: u32,
    /// [`reply_flags`].
    pub flags: u32,
    /// Data: an address, an option value, an origin.
    pub data: &'d [u8],
}

impl Reply<'_> {
    /// The service says the descriptor is not one of its stand-ins (any more): the
    /// kernel is to carry the call out.
    pub fn not_standin(&self) -> bool {
        self.flags & reply_flags::NOT_STANDIN != 0
    }

    /// The reply's data as an `int` (0 if shorter).
    pub fn int(&self) -> i32 {
        self.data
            .get(..4)
            .map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// A front end's way to the socket service.
pub trait Service {
    /// Serves `req` about the stand-in with inode `ino` and hands the reply to `f`.
    fn ask<R>(
        &mut self,
        ino: u64,
        req: &Request<'_>,
        f: impl FnOnce(Reply<'_>) -> R,
    ) -> Result<R, Fail>;

    /// As [`Service::ask`], passing the program's end of the stand-in with the
    /// request when the service was made with it (`listen`, `connect`: the stack
    /// pairs a stand-in that is not yet, see the stack's `standin` module).
    fn ask_passing<R>(
        &mut self,
        ino: u64,
        req: &Request<'_>,
        f: impl FnOnce(Reply<'_>) -> R,
    ) -> Result<R, Fail> {
        self.ask(ino, req, f)
    }
}

/// How a call ends, when it does not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Done {
    /// It returns this value.
    Value(i64),
    /// The kernel carries it out (the descriptor is not a stand-in after all).
    Native,
}

/// What a front end does after a `setsockopt` the service agreed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetDone {
    /// Nothing: it returns 0.
    Done,
    /// The stand-in takes the option too (timeouts, buffer sizes the kernel enforces
    /// on it): the kernel applies it and its answer is the call's.
    AlsoNative,
    /// The kernel carries the call out (not a stand-in after all).
    Native,
}

fn errno_or<T>(r: Reply<'_>, f: impl FnOnce(Reply<'_>) -> T) -> Result<Option<T>, Fail> {
    if r.not_standin() {
        Ok(None)
    } else if r.errno != 0 {
        Err(Fail::Errno(r.errno))
    } else {
        Ok(Some(f(r)))
    }
}

/// Reads a socket address argument with Linux's checks (`move_addr_to_kernel`):
/// longer than a `sockaddr_storage` is `EINVAL`, no address with a length `EFAULT`.
pub fn sockaddr_arg<'b>(
    mem: &impl Memory,
    addr: u64,
    len: u32,
    buf: &'b mut [u8; MAX_SOCKADDR],
) -> Result<&'b [u8], Fail> {
    let len = len as i32;
    if len < 0 || len as usize > MAX_SOCKADDR {
        return Err(Fail::Errno(libc::EINVAL));
    }
    let b = &mut buf[..len as usize];
    if !b.is_empty() {
        if addr == 0 {
            return Err(Fail::Errno(libc::EFAULT));
        }
        mem.read(addr, b)?;
    }
    Ok(b)
}

/// Copies an address out as `accept`, `getsockname` and `recvfrom` do: truncated to
/// the room `*lenp` gives, the full length stored back. A null `addr` or `lenp`
/// skips it.
pub fn put_addr(mem: &impl Memory, addr: u64, lenp: u64, data: &[u8]) -> Result<(), Fail> {
    if addr == 0 || lenp == 0 {
        return Ok(());
    }
    let room = mem.read_u32(lenp)? as i32;
    if room < 0 {
        return Err(Fail::Errno(libc::EINVAL));
    }
    mem.write(addr, &data[..data.len().min(room as usize)])?;
    mem.write_u32(lenp, data.len() as u32)
}

/// A call whose answer is 0 or an errno: `bind`, `listen`, `shutdown`, ...
pub fn plain(svc: &mut impl Service, ino: u64, req: &Request<'_>) -> Result<Done, Fail> {
    let r = svc.ask(ino, req, |r| errno_or(r, |_| ()))??;
    Ok(r.map_or(Done::Native, |()| Done::Value(0)))
}

/// `listen(fd, backlog)`: the stand-in goes with the request (the stack pairs it
/// to receive its connections).
pub fn listen(svc: &mut impl Service, ino: u64, backlog: i32) -> Result<Done, Fail> {
    let r = svc.ask_passing(ino, &Request::Listen { backlog }, |r| errno_or(r, |_| ()))??;
    Ok(r.map_or(Done::Native, |()| Done::Value(0)))
}

/// `bind(fd, addr, len)`.
pub fn bind(
    mem: &impl Memory,
    svc: &mut impl Service,
    ino: u64,
    addr: u64,
    len: u32,
) -> Result<Done, Fail> {
    let mut buf = [0u8; MAX_SOCKADDR];
    let addr = sockaddr_arg(mem, addr, len, &mut buf)?;
    plain(svc, ino, &Request::Bind { addr })
}

/// `getsockname`/`getpeername(fd, addr, lenp)`.
pub fn name(
    mem: &impl Memory,
    svc: &mut impl Service,
    ino: u64,
    peer: bool,
    addr: u64,
    lenp: u64,
) -> Result<Done, Fail> {
    if addr == 0 || lenp == 0 {
        return Err(Fail::Errno(libc::EFAULT));
    }
    if (mem.read_u32(lenp)? as i32) < 0 {
        return Err(Fail::Errno(libc::EINVAL));
    }
    let req = if peer {
        Request::GetPeerName
    } else {
        Request::GetSockName
    };
    let mut a = [0u8; MAX_SOCKADDR];
    let got = svc.ask(ino, &req, |r| {
        errno_or(r, |r| {
            let n = r.data.len().min(a.len());
            a[..n].copy_from_slice(&r.data[..n]);
            n
        })
    })??;
    let Some(n) = got else {
        return Ok(Done::Native);
    };
    put_addr(mem, addr, lenp, &a[..n])?;
    Ok(Done::Value(0))
}

/// `setsockopt(fd, level, name, val, len)`.
pub fn setsockopt(
    mem: &impl Memory,
    svc: &mut impl Service,
    ino: u64,
    (level, name): (i32, i32),
    val: u64,
    len: u32,
) -> Result<SetDone, Fail> {
    if table::is_table_option(level, name) {
        return table::set(mem, svc, ino, (level, name), val, len);
    }
    let len = len as i32;
    if len < 0 || len as usize > MAX_OPTVAL {
        return Err(Fail::Errno(libc::EINVAL));
    }
    let mut buf = [0u8; MAX_OPTVAL];
    let value = &mut buf[..len as usize];
    if !value.is_empty() {
        if val == 0 {
            return Err(Fail::Errno(libc::EFAULT));
        }
        mem.read(val, value)?;
    }
    let req = Request::SetSockOpt { level, name, value };
    let got = svc.ask(ino, &req, |r| {
        errno_or(r, |r| r.flags & reply_flags::APPLY_NATIVE != 0)
    })??;
    Ok(match got {
        None => SetDone::Native,
        Some(true) => SetDone::AlsoNative,
        Some(false) => SetDone::Done,
    })
}

/// `getsockopt(fd, level, name, val, lenp)`.
pub fn getsockopt(
    mem: &impl Memory,
    svc: &mut impl Service,
    ino: u64,
    (level, name): (i32, i32),
    val: u64,
    lenp: u64,
) -> Result<Done, Fail> {
    if table::is_table_option(level, name) {
        return table::get(mem, svc, ino, (level, name), val, lenp);
    }
    if lenp == 0 {
        return Err(Fail::Errno(libc::EFAULT));
    }
    let want = mem.read_u32(lenp)? as i32;
    if want < 0 {
        return Err(Fail::Errno(libc::EINVAL));
    }
    if val == 0 && want > 0 {
        return Err(Fail::Errno(libc::EFAULT));
    }
    let req = Request::GetSockOpt {
        level,
        name,
        len: want as u32,
    };
    let mut v = [0u8; netcell_proto::MAX_MESSAGE];
    let got = svc.ask(ino, &req, |r| {
        errno_or(r, |r| {
            let n = r.data.len().min(v.len()).min(want as usize);
            v[..n].copy_from_slice(&r.data[..n]);
            n
        })
    })??;
    let Some(n) = got else {
        return Ok(Done::Native);
    };
    put_option(mem, val, lenp, &v[..n])?;
    Ok(Done::Value(0))
}

/// Copies an option value out (already cut to the caller's room) and its length.
pub fn put_option(mem: &impl Memory, val: u64, lenp: u64, data: &[u8]) -> Result<(), Fail> {
    mem.write(val, data)?;
    mem.write_u32(lenp, data.len() as u32)
}

/// How a connect that was under way stands, once its stand-in turned writable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectEnd {
    /// Connected: the call returns 0.
    Connected,
    /// Still connecting: wait again.
    Pending,
    /// Failed with this errno (reported once, as Linux does).
    Failed(i32),
    /// Not a stand-in after all.
    Native,
}

/// How the connect of stand-in `ino` to `addr` ended. A connection is reported
/// only once; with `commit` it is marked reported now — a front end whose answer
/// can be lost (seccomp: a signal interrupts the target) commits only once the
/// answer arrived, so that a restarted call still gets 0.
pub fn connect_end(
    svc: &mut impl Service,
    ino: u64,
    addr: &[u8],
    commit: bool,
) -> Result<ConnectEnd, Fail> {
    let done = svc.ask(ino, &Request::ConnectDone { commit }, |r| {
        r.errno == 0 && r.value == 1
    })?;
    if done {
        return Ok(ConnectEnd::Connected);
    }
    // Failed (the errno, reported once), still connecting, or connected before.
    let req = Request::Connect {
        addr,
        wait: false,
        spare: false,
    };
    svc.ask(ino, &req, |r| {
        if r.not_standin() {
            return ConnectEnd::Native;
        }
        match r.errno {
            0 => ConnectEnd::Connected,
            libc::EALREADY | libc::EINPROGRESS => ConnectEnd::Pending,
            e => ConnectEnd::Failed(e),
        }
    })
}

/// Whether the stand-in `ino` is a listening socket (`SO_ACCEPTCONN`); `None`: not
/// a stand-in.
pub fn listening(svc: &mut impl Service, ino: u64) -> Result<Option<bool>, Fail> {
    let req = Request::GetSockOpt {
        level: libc::SOL_SOCKET,
        name: libc::SO_ACCEPTCONN,
        len: 4,
    };
    svc.ask(ino, &req, |r| {
        if r.not_standin() {
            None
        } else {
            Some(r.errno == 0 && r.int() != 0)
        }
    })
}

/// The checks `accept4` makes of its flags: `EINVAL` for any but `SOCK_NONBLOCK`
/// and `SOCK_CLOEXEC`.
pub fn accept_flags(flags: i32) -> Result<(), Fail> {
    if flags & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) != 0 {
        Err(Fail::Errno(libc::EINVAL))
    } else {
        Ok(())
    }
}

/// What a record read from a listener's stand-in means: with a connection attached
/// and a valid [`AcceptRecord`], the connection (its peer is copied out to
/// `addr`/`lenp`); an empty record (end of file) is a listener shut down
/// (`EINVAL`); anything else an aborted connection (`ECONNABORTED`).
pub fn accepted(
    mem: &impl Memory,
    record: &[u8],
    has_conn: bool,
    addr: u64,
    lenp: u64,
) -> Result<(), Fail> {
    let Some(rec) = AcceptRecord::decode(record).filter(|_| has_conn) else {
        return Err(Fail::Errno(if record.is_empty() {
            libc::EINVAL
        } else {
            libc::ECONNABORTED
        }));
    };
    let (peer, plen) = rec.peer;
    put_addr(mem, addr, lenp, &peer[..(plen as usize).min(peer.len())])
}

#[cfg(test)]
pub(crate) mod testing {
    //! A program's memory and a service, in memory, for the unit tests.
    use super::*;
    use std::cell::RefCell;

    /// Memory at addresses 0x1000.. of a vector.
    pub struct Mem(pub RefCell<Vec<u8>>);

    pub const BASE: u64 = 0x1000;

    impl Memory for Mem {
        fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Fail> {
            let m = self.0.borrow();
            let at = addr.checked_sub(BASE).ok_or(Fail::Errno(libc::EFAULT))? as usize;
            let src = m.get(at..at + buf.len()).ok_or(Fail::Errno(libc::EFAULT))?;
            buf.copy_from_slice(src);
            Ok(())
        }
        fn write(&self, addr: u64, data: &[u8]) -> Result<(), Fail> {
            let mut m = self.0.borrow_mut();
            let at = addr.checked_sub(BASE).ok_or(Fail::Errno(libc::EFAULT))? as usize;
            let dst = m
                .get_mut(at..at + data.len())
                .ok_or(Fail::Errno(libc::EFAULT))?;
            dst.copy_from_slice(data);
            Ok(())
        }
    }

    /// A service answering every request with one reply.
    pub struct Fixed {
        pub errno: i32,
        pub flags: u32,
        pub data: Vec<u8>,
        pub asked: Vec<String>,
    }

    impl Service for Fixed {
        fn ask<R>(
            &mut self,
            _: u64,
            req: &Request<'_>,
            f: impl FnOnce(Reply<'_>) -> R,
        ) -> Result<R, Fail> {
            self.asked.push(format!("{:?}", req.op()));
            Ok(f(Reply {
                errno: self.errno,
                value: 1,
                flags: self.flags,
                data: &self.data,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use std::cell::RefCell;

    fn mem() -> Mem {
        Mem(RefCell::new(vec![0u8; 256]))
    }

    #[test]
    fn names_are_truncated_to_the_room_and_report_their_length() {
        let m = mem();
        m.write_u32(BASE + 100, 4).unwrap();
        let mut svc = Fixed {
            errno: 0,
            flags: 0,
            data: (1..=16).collect(),
            asked: vec![],
        };
        assert_eq!(
            name(&m, &mut svc, 7, false, BASE, BASE + 100),
            Ok(Done::Value(0))
        );
        assert_eq!(&m.0.borrow()[..5], &[1, 2, 3, 4, 0]);
        assert_eq!(m.read_u32(BASE + 100), Ok(16));
        // Null pointers and a negative room, as Linux answers them.
        assert_eq!(
            name(&m, &mut svc, 7, true, 0, BASE),
            Err(Fail::Errno(libc::EFAULT))
        );
        m.write_u32(BASE + 100, u32::MAX).unwrap();
        assert_eq!(
            name(&m, &mut svc, 7, true, BASE, BASE + 100),
            Err(Fail::Errno(libc::EINVAL))
        );
        // Not a stand-in: the kernel's business.
        svc.flags = reply_flags::NOT_STANDIN;
        m.write_u32(BASE + 100, 16).unwrap();
        assert_eq!(
            name(&m, &mut svc, 7, true, BASE, BASE + 100),
            Ok(Done::Native)
        );
    }

    #[test]
    fn option_arguments_are_checked_before_asking() {
        let m = mem();
        let mut svc = Fixed {
            errno: 0,
            flags: reply_flags::APPLY_NATIVE,
            data: vec![1, 0, 0, 0],
            asked: vec![],
        };
        let too_long = MAX_OPTVAL as u32 + 1;
        assert_eq!(
            setsockopt(&m, &mut svc, 1, (1, 2), BASE, too_long),
            Err(Fail::Errno(libc::EINVAL))
        );
        assert_eq!(
            setsockopt(&m, &mut svc, 1, (1, 2), 0, 4),
            Err(Fail::Errno(libc::EFAULT))
        );
        assert!(svc.asked.is_empty(), "{:?}", svc.asked);
        assert_eq!(
            setsockopt(&m, &mut svc, 1, (1, 2), BASE, 4),
            Ok(SetDone::AlsoNative)
        );
        // getsockopt: room 2 of a 4-byte value.
        m.write_u32(BASE + 64, 2).unwrap();
        assert_eq!(
            getsockopt(&m, &mut svc, 1, (1, 2), BASE, BASE + 64),
            Ok(Done::Value(0))
        );
        assert_eq!(m.read_u32(BASE + 64), Ok(2));
        assert_eq!(
            getsockopt(&m, &mut svc, 1, (1, 2), 0, BASE + 64),
            Err(Fail::Errno(libc::EFAULT))
        );
        svc.errno = libc::ENOPROTOOPT;
        assert_eq!(
            getsockopt(&m, &mut svc, 1, (1, 2), BASE, BASE + 64),
            Err(Fail::Errno(libc::ENOPROTOOPT))
        );
    }

    #[test]
    fn accept_records() {
        let m = mem();
        assert_eq!(
            accepted(&m, &[], false, 0, 0),
            Err(Fail::Errno(libc::EINVAL))
        );
        assert_eq!(
            accepted(&m, &[1, 2], false, 0, 0),
            Err(Fail::Errno(libc::ECONNABORTED))
        );
        assert_eq!(accept_flags(libc::SOCK_CLOEXEC), Ok(()));
        assert_eq!(accept_flags(0x10), Err(Fail::Errno(libc::EINVAL)));
    }
}
