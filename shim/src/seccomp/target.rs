//! One intercepted system call and the thread that made it.
//!
//! The target is stopped in the kernel until the call is answered, but it is not
//! trusted: another of its threads may change the memory a pointer argument names,
//! and a signal may end the call (the notification then dies, and its thread id may
//! even be reused). So every read of the target's memory is followed by an
//! `ID_VALID` check before the value is used, and so is every descriptor taken from
//! it: a value read from a dead notification is thrown away, never acted on.

use super::kernel::{self, Notif};
use netcell_frontend::Memory;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

/// Why a call is not carried out (`Gone`: the notification died — the target was
/// interrupted or died — and nobody waits for an answer).
pub use netcell_frontend::Fail;

/// `struct msghdr` as the target laid it out (x86-64).
#[derive(Clone, Copy, Debug, Default)]
pub struct MsgHdr {
    pub name: u64,
    pub namelen: u32,
    pub iov: u64,
    pub iovlen: u64,
    pub control: u64,
    pub controllen: u64,
}

/// The size of `struct msghdr`.
pub const MSGHDR_LEN: u64 = 56;
/// The size of `struct mmsghdr`.
pub const MMSGHDR_LEN: u64 = 64;
/// Offsets in `struct msghdr` of the fields a receive writes back.
pub const MSG_NAMELEN_OFF: u64 = 8;
pub const MSG_CONTROLLEN_OFF: u64 = 40;
pub const MSG_FLAGS_OFF: u64 = 48;
/// Linux's `UIO_MAXIOV`.
pub const MAX_IOV: u64 = 1024;

/// pidfds of the threads that made calls, kept from call to call (opening one
/// costs two system calls). An entry cannot name a different thread later: a
/// thread id is reused only after its thread died, and a pidfd of a dead thread
/// fails (`ESRCH`), which drops the entry.
///
/// Each kept pidfd is watched (it turns readable when its thread exits) in the
/// supervisor's epoll set under [`PIDFD_TOKEN`]` | tid`, so that the entries of
/// exited threads go at once and hold no descriptor.
pub struct Pidfds {
    map: std::cell::RefCell<std::collections::HashMap<u32, OwnedFd>>,
    registry: mio::Registry,
}

/// Entries kept at most (threads that made calls recently).
const MAX_PIDFDS: usize = 1024;
/// The token bit of watched pidfds.
pub const PIDFD_TOKEN: usize = 1 << 40;

impl Pidfds {
    pub fn new(registry: mio::Registry) -> Self {
        Pidfds {
            map: Default::default(),
            registry,
        }
    }

    /// Drops the entry of a thread that exited.
    pub fn forget(&self, tid: u32) {
        if let Some(p) = self.map.borrow_mut().remove(&tid) {
            let _ = self.registry.deregister(&mut mio::unix::SourceFd(
                &std::os::fd::AsRawFd::as_raw_fd(&p),
            ));
        }
    }

    fn with<T>(&self, tid: u32, f: impl Fn(BorrowedFd<'_>) -> io::Result<T>) -> io::Result<T> {
        if let Some(p) = self.map.borrow().get(&tid) {
            match f(std::os::fd::AsFd::as_fd(p)) {
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                r => return r,
            }
        }
        self.forget(tid);
        let (p, thread) = kernel::pidfd_open_thread(tid)?;
        let r = f(std::os::fd::AsFd::as_fd(&p));
        // A pidfd of the thread group (kernels before 6.9) could outlive the thread
        // and its id be reused: only thread pidfds are kept.
        if r.is_ok() && thread && self.map.borrow().len() < MAX_PIDFDS {
            let watched = self.registry.register(
                &mut mio::unix::SourceFd(&std::os::fd::AsRawFd::as_raw_fd(&p)),
                mio::Token(PIDFD_TOKEN | tid as usize),
                mio::Interest::READABLE,
            );
            if watched.is_ok() {
                self.map.borrow_mut().insert(tid, p);
            }
        }
        r
    }
}

/// A notification being served.
pub struct Call<'a> {
    listener: BorrowedFd<'a>,
    pidfds: &'a Pidfds,
    /// The notification's id.
    pub id: u64,
    /// The calling thread.
    pub tid: u32,
    /// The system call number (x86-64).
    pub nr: i64,
    /// The audit architecture the call was made with.
    pub arch: u32,
    /// The raw arguments.
    pub args: [u64; 6],
}

impl<'a> Call<'a> {
    /// The call a notification describes.
    pub fn new(listener: BorrowedFd<'a>, pidfds: &'a Pidfds, n: &Notif) -> Self {
        Call {
            listener,
            pidfds,
            id: n.id,
            tid: n.pid,
            nr: n.data.nr as i64,
            arch: n.data.arch,
            args: n.data.args,
        }
    }

    /// The notification listener (to answer through).
    pub fn listener(&self) -> BorrowedFd<'a> {
        self.listener
    }

    /// Argument `i` as a C `int` (the kernel truncates the register).
    pub fn int(&self, i: usize) -> i32 {
        self.args[i] as u32 as i32
    }

    /// Whether the target still waits for this answer.
    pub fn alive(&self) -> bool {
        kernel::id_valid(self.listener, self.id)
    }

    fn checked(&self) -> Result<(), Fail> {
        if self.alive() {
            Ok(())
        } else {
            Err(Fail::Gone)
        }
    }

    /// Reads a `u64` (a pointer, a `size_t`).
    pub fn read_u64(&self, addr: u64) -> Result<u64, Fail> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b)?;
        Ok(u64::from_ne_bytes(b))
    }

    /// A copy of the target's descriptor `fd`: `EBADF` if it has none by that
    /// number. Any other failure refuses the call (it never lets the kernel carry
    /// it out: what netcell cannot see it cannot judge): `EPERM` when the target
    /// cannot be inspected (it made itself non-dumpable), `ENFILE` when netcell is
    /// out of descriptors.
    pub fn fd(&self, fd: i32) -> Result<OwnedFd, Fail> {
        if fd < 0 {
            return Err(Fail::Errno(libc::EBADF));
        }
        let r = self.pidfds.with(self.tid, |p| kernel::pidfd_getfd(p, fd));
        self.checked()?;
        r.map_err(|e| match e.raw_os_error() {
            Some(libc::ESRCH) => Fail::Gone,
            Some(libc::EBADF) => Fail::Errno(libc::EBADF),
            Some(libc::EMFILE | libc::ENFILE) => {
                super::calls::log_refusal(
                    self.tid,
                    format_args!("netcell is out of descriptors ({e})"),
                );
                Fail::Errno(libc::ENFILE)
            }
            _ => {
                super::calls::log_refusal(
                    self.tid,
                    format_args!(
                        "cannot inspect its descriptor {fd} ({e}; a non-dumpable program \
                         cannot use sockets under the seccomp shim)"
                    ),
                );
                Fail::Errno(libc::EPERM)
            }
        })
    }

    /// Reads a `struct msghdr`.
    pub fn read_msghdr(&self, addr: u64) -> Result<MsgHdr, Fail> {
        let mut b = [0u8; MSGHDR_LEN as usize];
        self.read(addr, &mut b)?;
        let u64_at = |o: usize| u64::from_ne_bytes(b[o..o + 8].try_into().unwrap_or_default());
        Ok(MsgHdr {
            name: u64_at(0),
            namelen: u32::from_ne_bytes(b[8..12].try_into().unwrap_or_default()),
            iov: u64_at(16),
            iovlen: u64_at(24),
            control: u64_at(32),
            controllen: u64_at(40),
        })
    }

    /// Reads an iovec array into `out` as (base, length) pairs; `EMSGSIZE` beyond
    /// `UIO_MAXIOV`, as Linux.
    pub fn read_iov(&self, addr: u64, count: u64, out: &mut Vec<(u64, usize)>) -> Result<(), Fail> {
        out.clear();
        if count > MAX_IOV {
            return Err(Fail::Errno(libc::EMSGSIZE));
        }
        let mut chunk = [0u8; 16 * 64];
        let mut done = 0;
        while done < count {
            let n = (count - done).min(64) as usize;
            self.read(addr + done * 16, &mut chunk[..n * 16])?;
            for i in 0..n {
                let base =
                    u64::from_ne_bytes(chunk[i * 16..i * 16 + 8].try_into().unwrap_or_default());
                let len = u64::from_ne_bytes(
                    chunk[i * 16 + 8..i * 16 + 16]
                        .try_into()
                        .unwrap_or_default(),
                );
                if len > isize::MAX as u64 {
                    return Err(Fail::Errno(libc::EINVAL));
                }
                out.push((base, len as usize));
            }
            done += n as u64;
        }
        Ok(())
    }

    /// Copies the bytes `iov` names into `buf`; `EMSGSIZE` if they do not fit.
    pub fn gather(&self, iov: &[(u64, usize)], buf: &mut [u8]) -> Result<usize, Fail> {
        let total = iov.iter().try_fold(0usize, |a, &(_, l)| a.checked_add(l));
        let total = total.ok_or(Fail::Errno(libc::EINVAL))?;
        if total > buf.len() {
            return Err(Fail::Errno(libc::EMSGSIZE));
        }
        if total == 0 {
            return Ok(0);
        }
        let r = kernel::read_mem_gather(self.tid, iov, &mut buf[..total]);
        self.checked()?;
        r.map_err(|_| Fail::Errno(libc::EFAULT))?;
        Ok(total)
    }

    /// Spreads `data` over `iov`; returns the bytes placed (at most the iovecs'
    /// total).
    pub fn scatter(&self, iov: &[(u64, usize)], data: &[u8]) -> Result<usize, Fail> {
        let mut at = 0;
        for &(base, len) in iov {
            if at == data.len() {
                break;
            }
            let n = len.min(data.len() - at);
            self.write(base, &data[at..at + n])?;
            at += n;
        }
        Ok(at)
    }

    /// Reads the NUL-terminated path at `addr` into `buf` (page by page: it may end
    /// just before an unmapped page); `None` if it is unreadable or longer than
    /// `buf` (the kernel then reports that itself).
    pub fn read_path<'b>(&self, addr: u64, buf: &'b mut [u8]) -> Result<Option<&'b [u8]>, Fail> {
        if addr == 0 {
            return Ok(None);
        }
        let mut got = 0;
        while got < buf.len() {
            let at = addr + got as u64;
            let take = (4096 - (at % 4096) as usize).min(buf.len() - got);
            if kernel::read_mem(self.tid, at, &mut buf[got..got + take]).is_err() {
                return Ok(None);
            }
            if let Some(end) = buf[got..got + take].iter().position(|&b| b == 0) {
                return Ok(Some(&buf[..got + end]));
            }
            got += take;
        }
        Ok(None)
    }
}

/// The target's memory, read and written across processes; every read is
/// followed by an `ID_VALID` check before its value is used.
impl Memory for Call<'_> {
    /// Reads the target's memory; `EFAULT` where it is not readable.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Fail> {
        if buf.is_empty() {
            // Nothing read, nothing to check.
            return Ok(());
        }
        if addr == 0 {
            return Err(Fail::Errno(libc::EFAULT));
        }
        let r = kernel::read_mem(self.tid, addr, buf);
        self.checked()?;
        r.map_err(|_| Fail::Errno(libc::EFAULT))
    }

    /// Writes into the target's memory; `EFAULT` where it is not writable.
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), Fail> {
        if !data.is_empty() && addr == 0 {
            return Err(Fail::Errno(libc::EFAULT));
        }
        match kernel::write_mem(self.tid, addr, data) {
            Ok(()) => Ok(()),
            Err(_) if !self.alive() => Err(Fail::Gone),
            Err(_) => Err(Fail::Errno(libc::EFAULT)),
        }
    }
}
