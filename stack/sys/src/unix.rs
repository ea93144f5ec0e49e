//! Unix sockets: the stand-in pairs and the control socket, descriptor passing
//! (`SCM_RIGHTS`), and the socket options and queue sizes netcell reads.
#![allow(unused_imports)]

use crate::fd::{poll_now, set_nonblocking};
use crate::process::pidfd_open;
use crate::{cvt, cvt_long, cvt_size};
use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Creates the two ends of a stand-in: an `AF_UNIX` stream pair. The first end is the
/// stack's (non-blocking), the second the program's (blocking, as `socket()` returns).
/// Both are close-on-exec in this process.
pub fn stream_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is a valid array of two ints for the kernel to fill.
    cvt(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: socketpair succeeded, so both fds are open and owned by nobody else.
    let (ours, theirs) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    set_nonblocking(ours.as_fd(), true)?;
    Ok((ours, theirs))
}

/// Creates the two ends of a datagram stand-in: an `AF_UNIX` `SOCK_SEQPACKET` pair
/// (the stack's end non-blocking, the program's blocking), close-on-exec here.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is a valid array of two ints for the kernel to fill.
    cvt(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: socketpair succeeded, so both fds are open and owned by nobody else.
    let (ours, theirs) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    set_nonblocking(ours.as_fd(), true)?;
    Ok((ours, theirs))
}

/// A `sockaddr_un` for the path `path` and its length; `InvalidInput` if the path
/// does not fit.
fn path_addr(path: &std::path::Path) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is a plain C struct; zero is valid.
    let mut sun: libc::sockaddr_un = unsafe { zeroed() };
    if bytes.len() >= sun.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("socket path too long: {}", path.display()),
        ));
    }
    sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in sun.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let len = (size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;
    Ok((sun, len))
}

/// A new `AF_UNIX` `SOCK_SEQPACKET` socket (close-on-exec) with `flags`.
fn seqpacket(flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2).
    let fd = cvt(unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC | flags,
            0,
        )
    })?;
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Runs `f` with an address for `path`: the path itself, or where it is longer
/// than a `sockaddr_un` holds (a container id of 64 characters under a long
/// runtime directory), `/proc/self/fd/N/NAME` through a descriptor of its
/// directory, which the kernel resolves to the same file.
fn with_path_addr<T>(
    path: &std::path::Path,
    f: impl FnOnce(&libc::sockaddr_un, libc::socklen_t) -> io::Result<T>,
) -> io::Result<T> {
    match path_addr(path) {
        Ok((sun, len)) => f(&sun, len),
        Err(e) => {
            let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
                return Err(e);
            };
            let dir = std::fs::File::open(dir)?;
            let short = std::path::Path::new("/proc/self/fd")
                .join(dir.as_raw_fd().to_string())
                .join(name);
            let (sun, len) = path_addr(&short).map_err(|_| e)?;
            f(&sun, len)
        }
    }
}

/// Creates a non-blocking `AF_UNIX` `SOCK_SEQPACKET` socket listening at `path`,
/// readable and writable by its owner only.
pub fn seqpacket_listener(path: &std::path::Path) -> io::Result<OwnedFd> {
    with_path_addr(path, seqpacket_listener_at)
}

fn seqpacket_listener_at(sun: &libc::sockaddr_un, len: libc::socklen_t) -> io::Result<OwnedFd> {
    let fd = seqpacket(libc::SOCK_NONBLOCK)?;
    // SAFETY: sun is a valid sockaddr_un of at least `len` bytes.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (sun as *const libc::sockaddr_un).cast(),
            len,
        )
    })?;
    // SAFETY: plain listen(2) on our socket.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), 128) })?;
    Ok(fd)
}

/// A blocking `SOCK_SEQPACKET` connection to the path-named socket `path`.
pub fn connect_seqpacket(path: &std::path::Path) -> io::Result<OwnedFd> {
    with_path_addr(path, |sun, len| {
        let fd = seqpacket(0)?;
        // SAFETY: sun is a valid sockaddr_un of at least `len` bytes.
        cvt(unsafe {
            libc::connect(
                fd.as_raw_fd(),
                (sun as *const libc::sockaddr_un).cast(),
                len,
            )
        })?;
        Ok(fd)
    })
}

/// A `sockaddr_un` for the abstract name `name` (without its leading NUL) and its
/// length; `InvalidInput` if the name does not fit.
fn abstract_addr(name: &[u8]) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is a plain C struct; zero is valid.
    let mut sun: libc::sockaddr_un = unsafe { zeroed() };
    if name.len() + 1 > sun.sun_path.len() {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in sun.sun_path[1..].iter_mut().zip(name) {
        *d = *s as libc::c_char;
    }
    let len = (size_of::<libc::sa_family_t>() + 1 + name.len()) as libc::socklen_t;
    Ok((sun, len))
}

fn unix_socket(ty: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2).
    let fd = cvt(unsafe { libc::socket(libc::AF_UNIX, ty | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Binds `fd` to the abstract name `name`.
pub fn bind_abstract(fd: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    let (sun, len) = abstract_addr(name)?;
    // SAFETY: sun is a valid sockaddr_un of at least `len` bytes.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sun as *const libc::sockaddr_un).cast(),
            len,
        )
    })?;
    Ok(())
}

/// A stream socket bound to the abstract name `name`, neither connected nor
/// listening (blocking, close-on-exec here): the program's end of a TCP stand-in
/// before its `connect` or `listen`, which reads and polls as an unconnected
/// socket does. The name lets netcell recognise it and tell when it is closed
/// ([`abstract_name_in_use`]).
pub fn bound_stream(name: &[u8]) -> io::Result<OwnedFd> {
    let fd = unix_socket(libc::SOCK_STREAM)?;
    bind_abstract(fd.as_fd(), name)?;
    Ok(fd)
}

/// A non-blocking stream socket listening at the abstract name `name`.
pub fn abstract_listener(name: &[u8], backlog: i32) -> io::Result<OwnedFd> {
    let fd = unix_socket(libc::SOCK_STREAM | libc::SOCK_NONBLOCK)?;
    bind_abstract(fd.as_fd(), name)?;
    // SAFETY: plain listen(2) on our socket.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), backlog) })?;
    Ok(fd)
}

/// Connects stream socket `fd` to the listener at abstract name `name` (a unix
/// connect completes at once while the listener's queue has room).
pub fn connect_abstract(fd: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    let (sun, len) = abstract_addr(name)?;
    // SAFETY: sun is a valid sockaddr_un of at least `len` bytes.
    cvt(unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&sun as *const libc::sockaddr_un).cast(),
            len,
        )
    })?;
    Ok(())
}

/// Whether a socket is bound to the abstract name `name` (a probe: binding a
/// throw-away socket to it fails with `EADDRINUSE` while one is).
pub fn abstract_name_in_use(name: &[u8]) -> bool {
    match unix_socket(libc::SOCK_STREAM) {
        Ok(probe) => matches!(
            bind_abstract(probe.as_fd(), name),
            Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE)
        ),
        // Out of descriptors: say yes (nothing is freed on a guess).
        Err(_) => true,
    }
}

/// Accepts one connection without blocking; the new fd is non-blocking and
/// close-on-exec.
pub fn accept_nb(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: null address pointers are allowed by accept4.
    let c = cvt(unsafe {
        libc::accept4(
            fd.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    })?;
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(c) })
}

/// Reads one record of a `SOCK_SEQPACKET` socket without blocking. `Ok(None)` at
/// end of file (a zero-length read while the peer is gone); a zero-length record
/// of a live peer is `Ok(Some(0))`. A peer that shut its writing side
/// (`shutdown(SHUT_WR)`) but lives on reads as `WouldBlock`: nothing more will come
/// (a zero-length read there would otherwise repeat for ever).
pub fn recv_record(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Option<usize>> {
    // SAFETY: `buf` is valid for writes of its length.
    let n = cvt_size(unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    })?;
    if n == 0 {
        let r = poll_now(fd, libc::POLLRDHUP);
        if r & libc::POLLHUP != 0 {
            return Ok(None);
        }
        if r & libc::POLLRDHUP != 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
    }
    Ok(Some(n))
}

/// Receives one record from a copy of a target's stand-in without blocking: its
/// length (the full length, `MSG_TRUNC`), the first descriptor attached (an
/// accepted connection, or a datagram socket's error marker), and whether `buf` was
/// too short.
pub fn recv_record_fd(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    peek: bool,
) -> io::Result<(usize, Option<OwnedFd>, bool)> {
    let mut control = CmsgBuf::<64>([0; 64]);
    let flags = libc::MSG_DONTWAIT
        | libc::MSG_CMSG_CLOEXEC
        | libc::MSG_TRUNC
        | if peek { libc::MSG_PEEK } else { 0 };
    let r = recvmsg(fd, buf, None, &mut control.0, flags)?;
    Ok((
        r.len,
        r.fds.into_iter().next(),
        r.flags & libc::MSG_TRUNC != 0,
    ))
}

/// Sets `SO_SNDBUF` (the kernel doubles it); as root, `SO_SNDBUFFORCE` lifts the
/// sysctl limit.
pub fn set_sndbuf(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<()> {
    let v = (bytes.min(i32::MAX as usize) as libc::c_int).to_ne_bytes();
    setsockopt_raw(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &v)
        .or_else(|_| setsockopt_raw(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, &v))
}

/// `send(2)` with `MSG_DONTWAIT | MSG_NOSIGNAL`.
pub fn send_nb(fd: BorrowedFd<'_>, data: &[u8], flags: i32) -> io::Result<usize> {
    // SAFETY: `data` is valid for reads.
    let n = unsafe {
        libc::send(
            fd.as_raw_fd(),
            data.as_ptr().cast(),
            data.len(),
            flags | libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Room for ancillary data, aligned as `struct cmsghdr` must be (64 bytes: one
/// `SCM_RIGHTS` with up to 4 fds).
#[repr(C, align(8))]
pub struct CmsgBuf<const N: usize = 64>(pub [u8; N]);

/// Sends one message, optionally with one fd as `SCM_RIGHTS`; non-blocking, no SIGPIPE.
pub fn send_with_fd(
    sock: BorrowedFd<'_>,
    data: &[u8],
    fd: Option<BorrowedFd<'_>>,
) -> io::Result<usize> {
    match fd {
        Some(fd) => send_with_fds(sock, data, &[fd]),
        None => send_with_fds(sock, data, &[]),
    }
}

/// Sends one message with up to 4 fds as `SCM_RIGHTS`; non-blocking, no SIGPIPE.
pub fn send_with_fds(
    sock: BorrowedFd<'_>,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<usize> {
    if fds.len() > 4 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut _,
        iov_len: data.len(),
    };
    let mut cmsg = CmsgBuf::<64>([0; 64]);
    // SAFETY: msghdr is a plain C struct; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let bytes = (size_of::<RawFd>() * fds.len()) as u32;
        // SAFETY: CMSG_SPACE is a pure size computation.
        let space = unsafe { libc::CMSG_SPACE(bytes) } as usize;
        msg.msg_control = cmsg.0.as_mut_ptr().cast();
        msg.msg_controllen = space;
        // SAFETY: msg_control points at `space` (at most 40) bytes of the 64 aligned
        // ones, enough for one cmsghdr carrying up to 4 ints, so CMSG_FIRSTHDR is
        // non-null and the writes stay in bounds.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(bytes) as usize;
            let data = libc::CMSG_DATA(c).cast::<RawFd>();
            for (i, fd) in fds.iter().enumerate() {
                std::ptr::write_unaligned(data.add(i), fd.as_raw_fd());
            }
        }
    }
    // SAFETY: msg and everything it points to are valid for the call.
    cvt_size(unsafe {
        libc::sendmsg(
            sock.as_raw_fd(),
            &msg,
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    })
}

/// `SCM_PIDFD` (Linux 6.5): a pidfd of the sender, as ancillary data.
pub const SCM_PIDFD: i32 = 4;

/// At most this many descriptors come with one message (Linux's `SCM_MAX_FD`).
pub const SCM_MAX_FD: usize = 253;

/// What `recvmsg` gave.
pub struct RecvMsg {
    /// The return value: bytes, or the full length with `MSG_TRUNC`.
    pub len: usize,
    /// `msg_flags`.
    pub flags: i32,
    /// The source address's full length.
    pub namelen: usize,
    /// Bytes of ancillary data.
    pub controllen: usize,
    /// The descriptors that came in it (`SCM_RIGHTS`, `SCM_PIDFD`), in order, now
    /// netcell's.
    pub fds: heapless::Vec<OwnedFd, SCM_MAX_FD>,
}

/// `recvmsg(2)` into one buffer.
pub fn recvmsg(
    fd: BorrowedFd<'_>,
    data: &mut [u8],
    name: Option<&mut [u8; 128]>,
    control: &mut [u8],
    flags: i32,
) -> io::Result<RecvMsg> {
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: plain data.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if let Some(n) = name {
        msg.msg_name = n.as_mut_ptr().cast();
        msg.msg_namelen = n.len() as u32;
    }
    if !control.is_empty() {
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = control.len();
    }
    // SAFETY: every buffer is valid for the lengths given.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, flags) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut fds = heapless::Vec::new();
    // SAFETY: the kernel wrote well-formed cmsghdrs into `control`; the
    // descriptors in them are new in this process and owned by nobody yet.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            let t = (*c).cmsg_type;
            if (*c).cmsg_level == libc::SOL_SOCKET && (t == libc::SCM_RIGHTS || t == SCM_PIDFD) {
                let count = ((*c).cmsg_len - libc::CMSG_LEN(0) as usize) / size_of::<RawFd>();
                for i in 0..count {
                    let raw = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<RawFd>().add(i));
                    let _ = fds.push(OwnedFd::from_raw_fd(raw));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok(RecvMsg {
        len: n as usize,
        flags: msg.msg_flags,
        namelen: msg.msg_namelen as usize,
        controllen: msg.msg_controllen,
        fds,
    })
}

/// One received message.
#[derive(Debug)]
pub struct Received {
    /// Bytes of payload.
    pub len: usize,
    /// The payload did not fit the buffer (`MSG_TRUNC`).
    pub truncated: bool,
    /// File descriptors that came along, close-on-exec. Excess fds beyond the
    /// capacity are closed, and `fds_truncated` is set.
    pub fds: heapless::Vec<OwnedFd, 4>,
    /// Some fds were dropped.
    pub fds_truncated: bool,
}

/// Receives one message without blocking, taking any `SCM_RIGHTS` fds (close-on-exec).
pub fn recv_with_fds(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Received> {
    let mut control = CmsgBuf::<64>([0; 64]);
    let r = recvmsg(
        sock,
        buf,
        None,
        &mut control.0,
        libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
    )?;
    let mut out = Received {
        len: r.len,
        truncated: r.flags & libc::MSG_TRUNC != 0,
        fds: heapless::Vec::new(),
        fds_truncated: r.flags & libc::MSG_CTRUNC != 0,
    };
    for fd in r.fds {
        if out.fds.push(fd).is_err() {
            out.fds_truncated = true; // dropped here, which closes it
        }
    }
    Ok(out)
}

/// Reads and clears the socket's pending error (`SO_ERROR`).
pub fn take_so_error(fd: BorrowedFd<'_>) -> i32 {
    let mut v: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: v/len are valid for writes of their sizes.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r < 0 { 0 } else { v }
}

/// An `int` socket option of `fd`.
pub fn sockopt_int(fd: BorrowedFd<'_>, level: i32, name: i32) -> Option<i32> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a valid int and length.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (r == 0).then_some(v)
}

/// A socket timeout of `fd` (`SO_RCVTIMEO`/`SO_SNDTIMEO`); `None` for none.
pub fn sock_timeout(fd: BorrowedFd<'_>, name: i32) -> Option<std::time::Duration> {
    // SAFETY: plain data.
    let mut tv: libc::timeval = unsafe { zeroed() };
    let mut len = std::mem::size_of::<libc::timeval>() as libc::socklen_t;
    // SAFETY: a valid timeval and length.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            name,
            (&mut tv as *mut libc::timeval).cast(),
            &mut len,
        )
    };
    if r != 0 || (tv.tv_sec == 0 && tv.tv_usec == 0) {
        return None;
    }
    Some(
        std::time::Duration::from_secs(tv.tv_sec as u64)
            + std::time::Duration::from_micros(tv.tv_usec as u64),
    )
}

/// The pid and uid of the process that created the peer of a unix socket.
pub fn peer_cred(fd: BorrowedFd<'_>) -> io::Result<(i32, u32)> {
    // SAFETY: ucred is a plain C struct.
    let mut cred: libc::ucred = unsafe { zeroed() };
    let mut len = size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: cred/len are valid for writes of their sizes.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    })?;
    Ok((cred.pid, cred.uid))
}

/// A pidfd of the process at the other end of a unix socket, taken when it
/// connected (`SO_PEERPIDFD`, Linux 6.5): it names that process, never a later one
/// with the same pid. On older kernels, a pidfd opened now for `SO_PEERCRED`'s pid.
pub fn peer_pidfd(fd: BorrowedFd<'_>) -> io::Result<(OwnedFd, i32)> {
    let (pid, _) = peer_cred(fd)?;
    let mut v: libc::c_int = -1;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: v/len are valid for writes of their sizes.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERPIDFD,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r == 0 && v >= 0 {
        // SAFETY: a fresh descriptor the kernel made for us.
        return Ok((unsafe { OwnedFd::from_raw_fd(v) }, pid));
    }
    if pid <= 0 {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok((pidfd_open(pid as u32)?, pid))
}

/// Whether socket `fd` has a peer (`getpeername` succeeds).
pub fn has_peer(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: plain data.
    let mut sa: libc::sockaddr_storage = unsafe { zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: a valid address buffer and length.
    let r = unsafe {
        libc::getpeername(
            fd.as_raw_fd(),
            (&mut sa as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    r == 0
}

/// Bytes this socket has sent that its peer has not read yet (`SIOCOUTQ`).
/// For an `AF_UNIX` stream this is the kernel's memory accounting of the queued
/// buffers, a fixed amount per small message.
pub fn outq(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let mut v: libc::c_int = 0;
    // SAFETY: SIOCOUTQ writes one int.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &mut v) })?;
    Ok(v.max(0) as usize)
}

/// Whether the next byte to read from `fd` is its out-of-band byte
/// (`SIOCATMARK`).
pub fn at_mark(fd: BorrowedFd<'_>) -> bool {
    let mut v: libc::c_int = 0;
    const SIOCATMARK: libc::Ioctl = 0x8905;
    // SAFETY: SIOCATMARK writes one int.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), SIOCATMARK, &mut v) };
    r == 0 && v != 0
}

/// Turns `SO_OOBINLINE` on: the socket's out-of-band byte is read in line (and
/// a read stops before it).
pub fn set_oobinline(fd: BorrowedFd<'_>) -> io::Result<()> {
    setsockopt_raw(
        fd,
        libc::SOL_SOCKET,
        libc::SO_OOBINLINE,
        &1i32.to_ne_bytes(),
    )
}

/// Bytes waiting to be read (`FIONREAD`).
pub fn pending_bytes(fd: BorrowedFd<'_>) -> usize {
    let mut v: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut v) };
    if r < 0 { 0 } else { v.max(0) as usize }
}

/// Bytes queued for reading on a stream (`FIONREAD`); 0 if unknown.
pub fn queued(fd: BorrowedFd<'_>) -> usize {
    let mut v: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut v) };
    if r < 0 { 0 } else { v.max(0) as usize }
}

/// The length of the next datagram queued (a stream: whether a byte is there;
/// 0 at its end); `WouldBlock` when nothing is queued.
pub fn peek_len(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let mut b = [0u8; 1];
    // SAFETY: a one-byte buffer; with MSG_TRUNC a datagram's full length comes back.
    let r = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            b.as_mut_ptr().cast(),
            1,
            libc::MSG_PEEK | libc::MSG_TRUNC | libc::MSG_DONTWAIT,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// The length of the next record queued on a datagram stand-in (0 if none).
pub fn next_record_len(fd: BorrowedFd<'_>) -> usize {
    // SAFETY: a zero-length receive with a null buffer is valid.
    let r = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            std::ptr::null_mut(),
            0,
            libc::MSG_PEEK | libc::MSG_TRUNC | libc::MSG_DONTWAIT,
        )
    };
    r.max(0) as usize
}

/// `shutdown(2)`.
pub fn shutdown(fd: BorrowedFd<'_>, how: libc::c_int) -> io::Result<()> {
    // SAFETY: plain syscall on a valid fd.
    cvt(unsafe { libc::shutdown(fd.as_raw_fd(), how) }).map(|_| ())
}

/// `connect` of socket `fd` to its own peer (`getpeername`): on a connected TCP
/// socket, the kernel's answer to a repeated connect (0 the first time after a
/// non-blocking handshake ended, then `EISCONN`) without any address from outside.
pub fn connect_to_own_peer(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: plain data.
    let mut sa: libc::sockaddr_storage = unsafe { zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: a valid address buffer and length.
    cvt(unsafe {
        libc::getpeername(
            fd.as_raw_fd(),
            (&mut sa as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    })?;
    // SAFETY: the address the kernel just wrote, and its length.
    cvt(unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_storage).cast(),
            len,
        )
    })?;
    Ok(())
}

/// `setsockopt(2)` with the raw value `value`.
pub fn setsockopt_raw(fd: BorrowedFd<'_>, level: i32, name: i32, value: &[u8]) -> io::Result<()> {
    // SAFETY: `value` is valid for reads of its length.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            value.as_ptr().cast(),
            value.len() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// `listen(2)` on `fd`.
pub fn listen(fd: BorrowedFd<'_>, backlog: i32) -> io::Result<()> {
    // SAFETY: a plain system call on a valid descriptor.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), backlog) })?;
    Ok(())
}

/// Sets `SO_LINGER` to {on, 0 s}: closing the socket's last descriptor resets its
/// connection instead of finishing it.
pub fn set_linger_zero(fd: BorrowedFd<'_>) -> io::Result<()> {
    // struct linger { int l_onoff = 1; int l_linger = 0; }
    let mut l = [0u8; 8];
    l[..4].copy_from_slice(&1i32.to_ne_bytes());
    setsockopt_raw(fd, libc::SOL_SOCKET, libc::SO_LINGER, &l)
}

/// A socket as the kernel's diagnostics name it: its inode and its cookie
/// (`SO_COOKIE`). Inode numbers come from a 32-bit counter that wraps and is
/// shared with every other kind of file, so an inode alone may name another
/// socket later; the cookie is never reused while the machine runs.
pub type SocketIdentity = (u64, u64);

/// The identity of socket `fd`: its inode and cookie (see [`SocketIdentity`]).
pub fn socket_identity(fd: BorrowedFd<'_>) -> io::Result<SocketIdentity> {
    Ok((crate::fd::inode(fd)?.0, socket_cookie(fd)?))
}

/// The cookie of socket `fd` (`SO_COOKIE`, see [`SocketIdentity`]).
pub fn socket_cookie(fd: BorrowedFd<'_>) -> io::Result<u64> {
    const SO_COOKIE: libc::c_int = 57;
    let mut v = 0u64;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: an 8-byte buffer and its length for the kernel to fill.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_COOKIE,
            (&mut v as *mut u64).cast(),
            &mut len,
        )
    })?;
    Ok(v)
}

/// Whether the socket `id` still exists, by one exact lookup in the kernel's
/// socket diagnostics: `Some(false)` when no socket has its inode, `Some(true)`
/// when the one found has its cookie, `None` when another socket has that
/// inode (numbers wrap; the kernel looks at the first it finds) or the lookup
/// fails. The lookup walks the namespace's whole list in the kernel: for
/// confirming the few sockets a dump ([`unix_sockets`]) did not list (a dump
/// may skip a socket when others come and go while it is read).
pub fn unix_socket_exists((ino, cookie): SocketIdentity) -> Option<bool> {
    let Ok(ino32) = u32::try_from(ino) else {
        return None;
    };
    let mut req = [0u8; 16 + 24];
    req[16] = libc::AF_UNIX as u8;
    req[20..24].copy_from_slice(&u32::MAX.to_ne_bytes());
    req[24..28].copy_from_slice(&ino32.to_ne_bytes());
    req[32..36].copy_from_slice(&(cookie as u32).to_ne_bytes());
    req[36..40].copy_from_slice(&((cookie >> 32) as u32).to_ne_bytes());
    let mut found = false;
    match unix_diag(&mut req, 0, &mut |id| found |= id == (ino, cookie)) {
        Ok(()) => Some(found),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Some(false),
        Err(_) => None,
    }
}

/// Every `AF_UNIX` socket of this network namespace, from the kernel's socket
/// diagnostics (`NETLINK_SOCK_DIAG`, what `ss -x` reads), into `out` (cleared
/// first). How the stack finds that a program closed a socket it holds no
/// descriptor of. One dump for all: the kernel's lookup of a single socket by
/// inode walks the whole namespace's list, so one per socket cost as much as
/// this each (24 ms with 120 000 sockets, which another user can hold).
pub fn unix_sockets(out: &mut std::collections::HashSet<SocketIdentity>) -> io::Result<()> {
    out.clear();
    let mut req = [0u8; 16 + 24];
    req[16] = libc::AF_UNIX as u8;
    req[20..24].copy_from_slice(&u32::MAX.to_ne_bytes());
    unix_diag(&mut req, libc::NLM_F_DUMP, &mut |id| {
        out.insert(id);
    })
}

/// Sends `req` (an `nlmsghdr` to fill, then a `unix_diag_req`: family,
/// protocol, pad (u16), states, ino, show, cookie[2], u32 each) to the kernel's
/// socket diagnostics with `flags`, and gives `seen` each answer's inode and
/// cookie. A dump ends at `NLMSG_DONE`; an exact lookup answers with one message.
fn unix_diag(
    req: &mut [u8; 40],
    flags: libc::c_int,
    seen: &mut dyn FnMut(SocketIdentity),
) -> io::Result<()> {
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const NETLINK_SOCK_DIAG: libc::c_int = 4;
    // SAFETY: plain socket(2).
    let fd = cvt(unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            NETLINK_SOCK_DIAG,
        )
    })?;
    // SAFETY: a fresh fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    req[0..4].copy_from_slice(&(40u32).to_ne_bytes());
    req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req[6..8].copy_from_slice(&((libc::NLM_F_REQUEST | flags) as u16).to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    // SAFETY: sending a buffer we own to a socket we own.
    cvt_size(unsafe { libc::send(fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) })?;
    let dump = flags & libc::NLM_F_DUMP != 0;
    let mut buf = vec![0u8; if dump { 64 * 1024 } else { 1024 }];
    loop {
        // SAFETY: receiving into a buffer we own.
        let n =
            cvt_size(unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) })?;
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        let mut at = 0;
        while at + 16 <= n {
            let word = |o: usize| u32::from_ne_bytes([buf[o], buf[o + 1], buf[o + 2], buf[o + 3]]);
            let len = word(at) as usize;
            let ty = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
            if len < 16 || at + len > n {
                return Err(io::Error::from(io::ErrorKind::InvalidData));
            }
            match ty as libc::c_int {
                libc::NLMSG_DONE => return Ok(()),
                libc::NLMSG_ERROR => {
                    let e = if len >= 20 { word(at + 16) as i32 } else { 0 };
                    return Err(io::Error::from_raw_os_error(-e));
                }
                // unix_diag_msg: family, type, state, pad, inode, cookie[2].
                _ if len >= 16 + 16 => {
                    let ino = word(at + 20) as u64;
                    let cookie = word(at + 24) as u64 | (word(at + 28) as u64) << 32;
                    seen((ino, cookie));
                }
                _ => {}
            }
            at += (len + 3) & !3;
        }
        if !dump {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fd::inode;

    #[test]
    fn unix_sockets_tell_a_socket_from_a_later_one_under_its_name() {
        let name = format!("netcell-test-identity.{}", std::process::id());
        let id = |fd: BorrowedFd<'_>| socket_identity(fd).unwrap();
        let mut live = std::collections::HashSet::new();
        let a = bound_stream(name.as_bytes()).unwrap();
        let ida = id(a.as_fd());
        assert_ne!(ida.1, 0);
        unix_sockets(&mut live).unwrap();
        assert!(live.contains(&ida));
        assert_eq!(unix_socket_exists(ida), Some(true));
        drop(a);
        // Another socket under the same name is not the first one.
        let b = bound_stream(name.as_bytes()).unwrap();
        unix_sockets(&mut live).unwrap();
        assert!(!live.contains(&ida));
        assert!(live.contains(&id(b.as_fd())));
        assert_eq!(unix_socket_exists(ida), Some(false));
        assert_eq!(unix_socket_exists(id(b.as_fd())), Some(true));
    }

    #[test]
    fn pair_passes_fds_and_reports_outq() {
        let (a, b) = stream_pair().unwrap();
        let (x, _y) = stream_pair().unwrap();
        let n = send_with_fd(a.as_fd(), b"hello", Some(x.as_fd())).unwrap();
        assert_eq!(n, 5);
        assert!(outq(a.as_fd()).unwrap() > 0);
        set_nonblocking(b.as_fd(), true).unwrap();
        let mut buf = [0u8; 16];
        let r = recv_with_fds(b.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..r.len], b"hello");
        assert_eq!(r.fds.len(), 1);
        let (ino_sent, _) = inode(x.as_fd()).unwrap();
        let (ino_got, is_sock) = inode(r.fds[0].as_fd()).unwrap();
        assert_eq!(ino_sent, ino_got);
        assert!(is_sock);
        assert_eq!(peer_cred(a.as_fd()).unwrap().0, std::process::id() as i32);
    }

    #[test]
    fn unix_sockets_lists_open_sockets_only() {
        let (a, b) = stream_pair().unwrap();
        let id = |fd: BorrowedFd<'_>| socket_identity(fd).unwrap();
        let (ia, ib) = (id(a.as_fd()), id(b.as_fd()));
        let mut set = std::collections::HashSet::new();
        unix_sockets(&mut set).unwrap();
        assert!(
            set.contains(&ia) && set.contains(&ib),
            "{ia:?} {ib:?} not listed"
        );
        drop(b);
        unix_sockets(&mut set).unwrap();
        assert!(set.contains(&ia));
        assert!(!set.contains(&ib), "{ib:?} listed after its close");
    }
}
