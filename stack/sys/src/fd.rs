//! Any descriptor: its flags and identity, its readiness, plain reads and writes,
//! and sealed in-memory files.
#![allow(unused_imports)]

use crate::{cvt, cvt_long, cvt_size};
use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// The `poll` events of `fd` now (`POLLHUP` and `POLLERR` always, `extra` asked).
pub(crate) fn poll_now(fd: BorrowedFd<'_>, extra: libc::c_short) -> libc::c_short {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: extra,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let r = unsafe { libc::poll(&mut p, 1, 0) };
    if r == 1 { p.revents } else { 0 }
}

/// Waits up to `timeout_ms` (-1: for ever) for `fd` to be readable (or hung up);
/// whether it is. Interrupted waits are resumed.
pub fn wait_readable(fd: BorrowedFd<'_>, timeout_ms: i32) -> bool {
    loop {
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, timeout_ms) };
        if r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return r == 1;
    }
}

/// Takes ownership of inherited descriptor `raw`, if it is open.
pub fn take_inherited(raw: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD on any number is harmless; it fails for a closed one.
    cvt(unsafe { libc::fcntl(raw, libc::F_GETFD) })?;
    // SAFETY: open (checked above) and handed to this process to own (it was
    // inherited for this purpose, and nothing else refers to it).
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Whether reading `fd` would not block now: bytes, a message (an empty one or
/// one with only descriptors too), end of file or an error.
pub fn readable_now(fd: BorrowedFd<'_>) -> bool {
    let r = poll_now(fd, libc::POLLIN | libc::POLLRDHUP);
    r & (libc::POLLIN | libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
}

/// Whether the peer of a unix socket is gone (`POLLHUP`).
pub fn hung_up(fd: BorrowedFd<'_>) -> bool {
    poll_now(fd, 0) & libc::POLLHUP != 0
}

/// Whether the peer of a stream socket will write no more (`POLLRDHUP`: it shut
/// its writing side or is gone).
pub fn read_shut(fd: BorrowedFd<'_>) -> bool {
    poll_now(fd, libc::POLLRDHUP) & (libc::POLLRDHUP | libc::POLLHUP) != 0
}

/// Whether the fd reports a hang-up right now (`POLLHUP`: a TCP socket in the
/// closed state, a stream whose both directions are shut).
pub fn hung_up_now(fd: BorrowedFd<'_>) -> bool {
    poll_now(fd, 0) & libc::POLLHUP != 0
}

/// Whether the fd is writable right now (`poll` with zero timeout).
pub fn writable_now(fd: BorrowedFd<'_>) -> bool {
    poll_now(fd, libc::POLLOUT) & libc::POLLOUT != 0
}

/// Opens `/dev/null` read-only: a harmless descriptor to attach to marker records.
pub fn dev_null() -> io::Result<OwnedFd> {
    std::fs::File::open("/dev/null").map(OwnedFd::from)
}

/// Sets or clears `FD_CLOEXEC`.
pub fn set_cloexec(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    // SAFETY: F_SETFD on a valid fd takes a plain int.
    cvt(unsafe {
        libc::fcntl(
            fd.as_raw_fd(),
            libc::F_SETFD,
            if on { libc::FD_CLOEXEC } else { 0 },
        )
    })?;
    Ok(())
}

/// Sets or clears `O_NONBLOCK`.
pub fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on a valid fd take and return plain ints.
    let flags = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    let new = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    if new != flags {
        // SAFETY: as above.
        cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, new) })?;
    }
    Ok(())
}

/// The file status flags of `fd` (`F_GETFL`); they belong to the open file, so a
/// copy taken with `pidfd_getfd` shows the target's `O_NONBLOCK`.
pub fn status_flags(fd: BorrowedFd<'_>) -> i32 {
    // SAFETY: plain fcntl.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) }.max(0)
}

/// What `fstat` says about an fd: its inode and whether it is a socket.
pub fn inode(fd: BorrowedFd<'_>) -> io::Result<(u64, bool)> {
    // SAFETY: `st` is a plain C struct that fstat fills; zeroed is a valid value.
    let mut st: libc::stat = unsafe { zeroed() };
    // SAFETY: `st` is valid for writes of its size.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok((st.st_ino, st.st_mode & libc::S_IFMT == libc::S_IFSOCK))
}

/// Whether `fd` is a socket.
pub fn is_socket(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: stat is plain data for the kernel to fill.
    let mut st: libc::stat = unsafe { zeroed() };
    // SAFETY: a valid stat buffer.
    let r = unsafe { libc::fstat(fd.as_raw_fd(), &mut st) };
    r == 0 && st.st_mode & libc::S_IFMT == libc::S_IFSOCK
}

/// The file type bits and device number of `fd` (`fstat`).
pub fn file_kind(fd: BorrowedFd<'_>) -> Option<(u32, u64)> {
    // SAFETY: plain data for fstat to fill.
    let mut st: libc::stat = unsafe { zeroed() };
    // SAFETY: a valid stat buffer.
    let r = unsafe { libc::fstat(fd.as_raw_fd(), &mut st) };
    (r == 0).then_some((st.st_mode & libc::S_IFMT, st.st_rdev))
}

/// What `/proc/self/fd/N` says `fd` is (`anon_inode:[eventfd]`, a path, ...).
pub fn fd_link(fd: BorrowedFd<'_>) -> Option<String> {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// `read(2)` into `buf`.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of its length.
    cvt_size(unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) })
}

/// `write(2)`.
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads.
    let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// A sealed, read-only in-memory copy of `data` (`memfd_create` with every seal):
/// nobody — no other process of the user either — can change it afterwards.
pub fn sealed_copy(name: &str, data: &[u8]) -> io::Result<OwnedFd> {
    let cname = std::ffi::CString::new(name).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: a valid C string; flags are constants.
    let fd = cvt(unsafe {
        libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
    })?;
    // SAFETY: a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut f = std::fs::File::from(fd);
    std::io::Write::write_all(&mut f, data)?;
    let fd = OwnedFd::from(f);
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl with integer arguments.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) })?;
    Ok(fd)
}

/// `poll(2)` for input on `fds`, at most `timeout_ms` (-1: no limit); for
/// each, whether it is readable or at its end (`POLLIN`/`POLLHUP`/`POLLERR`).
pub fn poll_readable(fds: &[BorrowedFd<'_>], timeout_ms: i32) -> io::Result<Vec<bool>> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|f| libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `p` is a valid array of `p.len()` pollfds.
    let r = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(p.iter()
        .map(|x| x.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0)
        .collect())
}

/// Pages of shared memory that only this process can change: other processes
/// map them read-only from [`SharedPages::reader`]'s descriptor (the seals
/// refuse a writable mapping, growing and shrinking) and see every store at
/// once. Accessed as 64-bit atomics only (see the stack's `control::grants`
/// and the origins ring of `netcell_proto::ring`).
pub struct SharedPages {
    fd: OwnedFd,
    base: std::ptr::NonNull<std::sync::atomic::AtomicU64>,
    words: usize,
}

// SAFETY: the mapping is shared memory accessed only through atomics.
unsafe impl Send for SharedPages {}

impl SharedPages {
    /// `words` zeroed 64-bit words (rounded up to whole pages) in a fresh
    /// sealed `memfd`.
    pub fn new(name: &str, words: usize) -> io::Result<SharedPages> {
        let bytes = (words.max(1) * 8).div_ceil(4096) * 4096;
        let cname = std::ffi::CString::new(name).map_err(|_| io::ErrorKind::InvalidInput)?;
        // SAFETY: a valid C string; flags are constants.
        let fd = cvt(unsafe {
            libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
        })?;
        // SAFETY: a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: ftruncate with integer arguments on our descriptor.
        cvt(unsafe { libc::ftruncate(fd.as_raw_fd(), bytes as libc::off_t) })?;
        // SAFETY: mapping `bytes` bytes of a file that long, shared, at a place
        // the kernel chooses.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // Our mapping stays writable; nobody else's can be.
        let seals =
            libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_FUTURE_WRITE;
        // SAFETY: fcntl with integer arguments.
        if let Err(e) = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) }) {
            // SAFETY: unmapping what was mapped above.
            unsafe { libc::munmap(p, bytes) };
            return Err(e);
        }
        let base = std::ptr::NonNull::new(p.cast::<std::sync::atomic::AtomicU64>())
            .ok_or(io::ErrorKind::Other)?;
        Ok(SharedPages {
            fd,
            base,
            words: bytes / 8,
        })
    }

    /// The words.
    pub fn words(&self) -> &[std::sync::atomic::AtomicU64] {
        // SAFETY: a page-aligned mapping of `words` words that lives as long as
        // self; atomics may alias what other processes read.
        unsafe { std::slice::from_raw_parts(self.base.as_ptr(), self.words) }
    }

    /// The descriptor another process maps read-only.
    pub fn reader(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for SharedPages {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, not used after this.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.words * 8) };
    }
}

/// A counter in shared memory that only this process can change (a
/// [`SharedPages`] of one word; the stack's grants generation).
pub struct SharedCounter(SharedPages);

impl SharedCounter {
    /// A counter at 1.
    pub fn new(name: &str) -> io::Result<SharedCounter> {
        let p = SharedPages::new(name, 1)?;
        p.words()[0].store(1, std::sync::atomic::Ordering::Release);
        Ok(SharedCounter(p))
    }

    /// The counter's value.
    pub fn get(&self) -> u64 {
        self.0.words()[0].load(std::sync::atomic::Ordering::Acquire)
    }

    /// Adds one.
    pub fn bump(&self) {
        self.0.words()[0].fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// The descriptor another process maps read-only.
    pub fn reader(&self) -> BorrowedFd<'_> {
        self.0.reader()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Another mapping of the counter sees every bump and cannot be made
    /// writable, not even by the descriptor's holder.
    #[test]
    fn a_shared_counter_is_read_only_to_others() {
        let c = SharedCounter::new("test-counter").unwrap();
        let fd = c.reader().as_raw_fd();
        // SAFETY: mapping a 4096-byte memfd; the result is checked.
        let w = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        assert_eq!(w, libc::MAP_FAILED, "a writable mapping was allowed");
        // SAFETY: as above, read-only.
        let r = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        assert_ne!(r, libc::MAP_FAILED);
        // SAFETY: a live 4096-byte mapping, read through an atomic.
        let seen = unsafe { &*(r as *const std::sync::atomic::AtomicU64) };
        assert_eq!(seen.load(std::sync::atomic::Ordering::Acquire), 1);
        c.bump();
        c.bump();
        assert_eq!(seen.load(std::sync::atomic::Ordering::Acquire), 3);
        assert_eq!(c.get(), 3);
        // A read-only mapping cannot be turned writable (the seal).
        // SAFETY: mprotect of our own mapping; the kernel refuses.
        let rw = unsafe { libc::mprotect(r, 4096, libc::PROT_READ | libc::PROT_WRITE) };
        assert_ne!(rw, 0);
        // SAFETY: unmapping the mapping made above.
        unsafe { libc::munmap(r, 4096) };
        // SAFETY: ftruncate on our descriptor: refused by the seals.
        assert_ne!(unsafe { libc::ftruncate(fd, 0) }, 0);
    }
}
