//! Raw system calls for the shim's own use. The shim exports `socket`, `connect`,
//! ... itself, so calling libc's versions from inside would call the shim again;
//! everything the shim does on its own behalf goes through `syscall(2)` directly.

use libc::{c_int, c_long, c_void, socklen_t};
use std::mem::{size_of, zeroed};

/// The calling thread's `errno`.
pub fn errno() -> c_int {
    // SAFETY: __errno_location returns the thread's errno slot.
    unsafe { *libc::__errno_location() }
}

/// Sets the calling thread's `errno`.
pub fn set_errno(e: c_int) {
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = e }
}

fn ret(r: c_long) -> Result<c_long, c_int> {
    if r < 0 { Err(errno()) } else { Ok(r) }
}

/// `socket(2)`.
pub fn socket(domain: c_int, ty: c_int, proto: c_int) -> Result<c_int, c_int> {
    // SAFETY: plain syscall with integer arguments.
    ret(unsafe {
        libc::syscall(
            libc::SYS_socket,
            domain as c_long,
            ty as c_long,
            proto as c_long,
        )
    })
    .map(|r| r as c_int)
}

/// `connect(2)` to an `AF_UNIX` path, retrying on `EINTR`.
pub fn connect_unix(fd: c_int, path: &[u8]) -> Result<(), c_int> {
    // SAFETY: sockaddr_un is plain data.
    let mut sun: libc::sockaddr_un = unsafe { zeroed() };
    if path.len() >= sun.sun_path.len() {
        return Err(libc::ENAMETOOLONG);
    }
    sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in sun.sun_path.iter_mut().zip(path) {
        *d = *s as libc::c_char;
    }
    let len = (size_of::<libc::sa_family_t>() + path.len() + 1) as c_long;
    loop {
        // SAFETY: `sun` is a valid sockaddr_un of at least `len` bytes.
        let r = unsafe {
            libc::syscall(
                libc::SYS_connect,
                fd as c_long,
                &sun as *const _ as c_long,
                len,
            )
        };
        match ret(r) {
            Ok(_) => return Ok(()),
            Err(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `close(2)`, ignoring errors.
pub fn close(fd: c_int) {
    // SAFETY: closing an fd this module owns.
    unsafe { libc::syscall(libc::SYS_close, fd as c_long) };
}

/// `fcntl(F_DUPFD_CLOEXEC)`: moves the fd to `min` or above, closing the original.
pub fn move_fd_up(fd: c_int, min: c_int) -> c_int {
    // SAFETY: plain fcntl.
    let n = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) };
    if n < 0 {
        fd
    } else {
        close(fd);
        n
    }
}

/// `fcntl(fd, cmd, min)` for `F_DUPFD`/`F_DUPFD_CLOEXEC`: the new descriptor.
pub fn dup_from(fd: c_int, cmd: c_int, min: c_int) -> Result<c_int, c_int> {
    // SAFETY: plain fcntl.
    let r = unsafe { libc::syscall(libc::SYS_fcntl, fd as c_long, cmd as c_long, min as c_long) };
    ret(r).map(|n| n as c_int)
}

/// File status flags.
pub fn fl(fd: c_int) -> c_int {
    // SAFETY: plain fcntl.
    unsafe { libc::fcntl(fd, libc::F_GETFL) }
}

/// Sets `O_NONBLOCK`.
pub fn set_nonblock(fd: c_int) {
    let f = fl(fd);
    if f >= 0 {
        // SAFETY: plain fcntl.
        unsafe { libc::fcntl(fd, libc::F_SETFL, f | libc::O_NONBLOCK) };
    }
}

/// Puts the file of `new` in place of descriptor `fd` (keeping `fd`'s number, its
/// close-on-exec flag and its O_NONBLOCK) and closes `new`.
pub fn replace_fd(fd: c_int, new: c_int) -> Result<(), c_int> {
    // SAFETY: plain fcntl and dup3 system calls on descriptors of this process
    // (raw: the library's own hooks need not see them).
    unsafe {
        let fdflags = libc::syscall(libc::SYS_fcntl, fd as c_long, libc::F_GETFD as c_long);
        let fl = libc::syscall(libc::SYS_fcntl, fd as c_long, libc::F_GETFL as c_long);
        let newfl = self::fl(new);
        if fl >= 0 && newfl >= 0 {
            let want = if fl as c_int & libc::O_NONBLOCK != 0 {
                newfl | libc::O_NONBLOCK
            } else {
                newfl & !libc::O_NONBLOCK
            };
            libc::syscall(
                libc::SYS_fcntl,
                new as c_long,
                libc::F_SETFL as c_long,
                want as c_long,
            );
        }
        let cloexec = if fdflags >= 0 && fdflags as c_int & libc::FD_CLOEXEC != 0 {
            libc::O_CLOEXEC
        } else {
            0
        };
        let r = libc::syscall(
            libc::SYS_dup3,
            new as c_long,
            fd as c_long,
            cloexec as c_long,
        );
        close(new);
        ret(r).map(|_| ())
    }
}

/// Whether the descriptor table has room for one more descriptor (a probe:
/// another thread may take the room in between).
pub fn have_room_for_fd() -> bool {
    // SAFETY: duplicating fd 0 into the lowest free slot; closed at once. (The
    // system call: the library's own fcntl hook need not see it.)
    let probe = unsafe {
        libc::syscall(
            libc::SYS_fcntl,
            0 as c_long,
            libc::F_DUPFD_CLOEXEC as c_long,
            0 as c_long,
        )
    } as c_int;
    if probe >= 0 {
        close(probe);
        return true;
    }
    // EBADF: no fd 0 to duplicate; try another way.
    if errno() != libc::EBADF {
        return false;
    }
    // SAFETY: opening /dev/null read-only; closed at once.
    let probe = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if probe < 0 {
        return errno() != libc::EMFILE && errno() != libc::ENFILE;
    }
    close(probe);
    true
}

/// The inode of an fd, if it is a socket.
pub fn socket_inode(fd: c_int) -> Option<u64> {
    // SAFETY: plain data.
    let mut st: libc::stat = unsafe { zeroed() };
    // SAFETY: `st` is valid for writes.
    if unsafe { libc::fstat(fd, &mut st) } < 0 {
        return None;
    }
    (st.st_mode & libc::S_IFMT == libc::S_IFSOCK).then_some(st.st_ino)
}

/// The socket's `SO_COOKIE`: unlike its inode number, never reused while the
/// machine runs.
pub fn socket_cookie(fd: c_int) -> Option<u64> {
    const SO_COOKIE: c_int = 57;
    let mut v = 0u64;
    let mut len = size_of::<u64>() as socklen_t;
    getsockopt_raw(
        fd,
        libc::SOL_SOCKET,
        SO_COOKIE,
        &mut v as *mut u64 as *mut c_void,
        &mut len,
    )
    .ok()
    .map(|()| v)
}

fn getsockopt_raw(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *mut c_void,
    len: &mut socklen_t,
) -> Result<(), c_int> {
    // SAFETY: `val` points at `*len` writable bytes (the callers pass locals).
    ret(unsafe {
        libc::syscall(
            libc::SYS_getsockopt,
            fd as c_long,
            level as c_long,
            name as c_long,
            val as c_long,
            len as *mut _ as c_long,
        )
    })
    .map(|_| ())
}

/// An int socket option, read natively.
pub fn sockopt_int(fd: c_int, level: c_int, name: c_int) -> Option<c_int> {
    let mut v: c_int = 0;
    let mut len = size_of::<c_int>() as socklen_t;
    getsockopt_raw(fd, level, name, &mut v as *mut _ as *mut c_void, &mut len)
        .ok()
        .map(|_| v)
}

/// The pid that created the peer of a unix socket.
pub fn peer_pid(fd: c_int) -> Option<i32> {
    // SAFETY: plain data.
    let mut cred: libc::ucred = unsafe { zeroed() };
    let mut len = size_of::<libc::ucred>() as socklen_t;
    getsockopt_raw(
        fd,
        libc::SOL_SOCKET,
        libc::SO_PEERCRED,
        &mut cred as *mut _ as *mut c_void,
        &mut len,
    )
    .ok()
    .map(|_| cred.pid)
}

/// Whether unix socket `fd` is bound to an abstract name that starts with
/// `prefix` (an unpaired stand-in of the stack is `netcell.<pid>.<n>`).
pub fn abstract_name_starts_with(fd: c_int, prefix: &[u8]) -> bool {
    // SAFETY: plain data.
    let mut sun: libc::sockaddr_un = unsafe { zeroed() };
    let mut len = size_of::<libc::sockaddr_un>() as socklen_t;
    // SAFETY: sun/len are valid for writes of their sizes (the raw system call:
    // the library's getsockname hook need not see it).
    let r = unsafe {
        libc::syscall(
            libc::SYS_getsockname,
            fd as c_long,
            &mut sun as *mut libc::sockaddr_un as c_long,
            &mut len as *mut socklen_t as c_long,
        )
    };
    let path_off = size_of::<libc::sa_family_t>();
    let n = (len as usize)
        .saturating_sub(path_off)
        .min(sun.sun_path.len());
    if r < 0 || n < 1 + prefix.len() || sun.sun_path[0] != 0 {
        return false;
    }
    sun.sun_path[1..1 + prefix.len()]
        .iter()
        .zip(prefix)
        .all(|(a, b)| *a as u8 == *b)
}

/// `SO_SNDTIMEO` in milliseconds (-1: none).
pub fn sndtimeo_ms(fd: c_int) -> c_int {
    // SAFETY: plain data.
    let mut tv: libc::timeval = unsafe { zeroed() };
    let mut len = size_of::<libc::timeval>() as socklen_t;
    match getsockopt_raw(
        fd,
        libc::SOL_SOCKET,
        libc::SO_SNDTIMEO,
        &mut tv as *mut _ as *mut c_void,
        &mut len,
    ) {
        Ok(()) if tv.tv_sec > 0 || tv.tv_usec > 0 => {
            (tv.tv_sec.saturating_mul(1000) + tv.tv_usec / 1000).clamp(1, c_int::MAX as i64)
                as c_int
        }
        _ => -1,
    }
}

/// Waits for `events` on one fd. `Ok(revents)`, `Ok(0)` on timeout.
pub fn poll1(fd: c_int, events: i16, timeout_ms: c_int) -> Result<i16, c_int> {
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let ts;
    let tsp = if timeout_ms < 0 {
        std::ptr::null()
    } else {
        ts = libc::timespec {
            tv_sec: (timeout_ms / 1000) as _,
            tv_nsec: ((timeout_ms % 1000) as i64 * 1_000_000) as _,
        };
        &ts as *const libc::timespec
    };
    // SAFETY: one valid pollfd; tsp null or valid.
    let r = ret(unsafe {
        libc::syscall(
            libc::SYS_ppoll,
            &mut p as *mut _ as c_long,
            1 as c_long,
            tsp as c_long,
            0 as c_long,
            0 as c_long,
        )
    })?;
    Ok(if r == 0 { 0 } else { p.revents })
}

#[repr(C, align(8))]
struct Cmsg([u8; 64]);

/// `sendmsg(2)` of one buffer with an optional fd as `SCM_RIGHTS`; no SIGPIPE.
pub fn send_with_fd(sock: c_int, data: &[u8], fd: Option<c_int>) -> Result<usize, c_int> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut c_void,
        iov_len: data.len(),
    };
    let mut cm = Cmsg([0; 64]);
    // SAFETY: plain data.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if let Some(fd) = fd {
        // SAFETY: the control buffer is aligned and large enough for one int.
        unsafe {
            msg.msg_control = cm.0.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(size_of::<c_int>() as u32) as usize;
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(size_of::<c_int>() as u32) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<c_int>(), fd);
        }
    }
    loop {
        // SAFETY: msg points at valid buffers.
        let r = unsafe {
            libc::syscall(
                libc::SYS_sendmsg,
                sock as c_long,
                &msg as *const _ as c_long,
                libc::MSG_NOSIGNAL as c_long,
            )
        };
        match ret(r) {
            Ok(n) => return Ok(n as usize),
            Err(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// One received message: its length, the first fd that came with it (others are
/// closed), and whether it was truncated.
pub struct Got {
    pub len: usize,
    pub fd: Option<c_int>,
    pub truncated: bool,
}

/// `recvmsg(2)` of one message with up to one fd. `flags` are passed through
/// (`MSG_CMSG_CLOEXEC`, `MSG_WAITALL`, ...). `EINTR` is returned, not retried.
pub fn recv_with_fd(sock: c_int, buf: &mut [u8], flags: c_int) -> Result<Got, c_int> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cm = Cmsg([0; 64]);
    // SAFETY: plain data.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cm.0.as_mut_ptr().cast();
    msg.msg_controllen = cm.0.len();
    // SAFETY: msg points at valid buffers.
    let n = ret(unsafe {
        libc::syscall(
            libc::SYS_recvmsg,
            sock as c_long,
            &mut msg as *mut _ as c_long,
            flags as c_long,
        )
    })? as usize;
    let mut got = Got {
        len: n,
        fd: None,
        truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
    };
    // SAFETY: the kernel wrote msg_controllen bytes of cmsghdrs; walk them in bounds.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let count = ((*c).cmsg_len - libc::CMSG_LEN(0) as usize) / size_of::<c_int>();
                for i in 0..count {
                    let fd = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<c_int>().add(i));
                    if got.fd.is_none() {
                        got.fd = Some(fd)
                    } else {
                        close(fd)
                    }
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok(got)
}

/// `send(2)` without blocking and without SIGPIPE.
pub fn send_nb(sock: c_int, data: &[u8]) -> Result<usize, c_int> {
    loop {
        // SAFETY: `data` is valid for reads.
        let r = unsafe {
            libc::syscall(
                libc::SYS_sendto,
                sock as c_long,
                data.as_ptr() as c_long,
                data.len() as c_long,
                (libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) as c_long,
                0 as c_long,
                0 as c_long,
            )
        };
        match ret(r) {
            Ok(n) => return Ok(n as usize),
            Err(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// A read-only shared mapping of `words` 64-bit words of `fd` (pages the stack
/// shares: the grants generation, an origins ring); `None` if it cannot be
/// mapped. [`unmap_words`] gives it back.
pub fn map_words(fd: c_int, words: usize) -> Option<&'static [std::sync::atomic::AtomicU64]> {
    // SAFETY: mapping a descriptor read-only; the result is checked.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            words * 8,
            libc::PROT_READ,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return None;
    }
    // SAFETY: a page-aligned mapping of `words` words, read only through
    // atomics, valid until `unmap_words` (callers keep it for ever or unmap it
    // when nobody can be reading it).
    Some(unsafe { std::slice::from_raw_parts(p as *const std::sync::atomic::AtomicU64, words) })
}

/// Unmaps what [`map_words`] mapped.
///
/// # Safety
/// Nothing reads `w` any more.
pub unsafe fn unmap_words(w: &'static [std::sync::atomic::AtomicU64]) {
    // SAFETY: the caller's mapping of that many words.
    unsafe { libc::munmap(w.as_ptr() as *mut c_void, w.len() * 8) };
}
