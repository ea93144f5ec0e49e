//! The seccomp user-notification interface and the cross-process calls the
//! supervisor needs: installing a filter, receiving and answering notifications,
//! installing descriptors in the target (`SECCOMP_IOCTL_NOTIF_ADDFD`), taking a copy
//! of a target's descriptor (`pidfd_getfd`), and reading and writing its memory
//! (`process_vm_readv`/`writev`). Every `unsafe` block is one system call.
#![allow(unsafe_code)]

use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn cvt_long(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// The kernel's Landlock ABI version (0 when Landlock is not available).
pub fn landlock_abi() -> i32 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_long = 1;
    // SAFETY: the version query takes no attribute pointer.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0 as libc::c_long,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    r.max(0) as i32
}

/// One notification.
pub type Notif = libc::seccomp_notif;

/// Whether a notification waits (`poll` on the listener).
pub fn pending(listener: BorrowedFd<'_>) -> bool {
    let mut p = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let r = unsafe { libc::poll(&mut p, 1, 0) };
    r == 1 && p.revents & libc::POLLIN != 0
}

/// Receives one notification (`SECCOMP_IOCTL_NOTIF_RECV`); call when `pending`.
pub fn recv(listener: BorrowedFd<'_>) -> io::Result<Notif> {
    // SAFETY: seccomp_notif is plain data; the kernel requires it zeroed.
    let mut n: Notif = unsafe { zeroed() };
    // SAFETY: a valid, zeroed seccomp_notif for the kernel to fill.
    cvt(unsafe { libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut n) })?;
    Ok(n)
}

/// Answers a notification: `val` as the result, or `-error`; or, with `continue_`,
/// lets the kernel carry out the call itself.
pub fn respond(
    listener: BorrowedFd<'_>,
    id: u64,
    val: i64,
    error: i32,
    continue_: bool,
) -> io::Result<()> {
    let resp = libc::seccomp_notif_resp {
        id,
        val,
        error: if error != 0 { -error } else { 0 },
        flags: if continue_ {
            libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32
        } else {
            0
        },
    };
    // SAFETY: a valid seccomp_notif_resp.
    cvt(unsafe { libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &resp) })
        .map(|_| ())
}

/// Whether the notification is still alive (the target has not been interrupted
/// and its pid still names it).
pub fn id_valid(listener: BorrowedFd<'_>, id: u64) -> bool {
    // SAFETY: the ioctl reads one u64.
    unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
            &id,
        ) == 0
    }
}

/// Installs `fd` in the target (`SECCOMP_IOCTL_NOTIF_ADDFD`) and returns its number
/// there; with `answer`, also answers the notification with that number, in one step
/// (`SECCOMP_ADDFD_FLAG_SEND`). Fails with `ENOENT` if the target was interrupted
/// meanwhile; the fd is then not installed.
pub fn addfd(
    listener: BorrowedFd<'_>,
    id: u64,
    fd: BorrowedFd<'_>,
    cloexec: bool,
    answer: bool,
) -> io::Result<i32> {
    let a = libc::seccomp_notif_addfd {
        id,
        flags: if answer {
            libc::SECCOMP_ADDFD_FLAG_SEND as u32
        } else {
            0
        },
        srcfd: fd.as_raw_fd() as u32,
        newfd: 0,
        newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
    };
    // SAFETY: a valid seccomp_notif_addfd.
    cvt(unsafe { libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_ADDFD, &a) })
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

/// What `/proc/self/fd/N` says `fd` is (`anon_inode:[eventfd]`, a path, ...).
pub fn fd_link(fd: BorrowedFd<'_>) -> Option<String> {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// The file type bits and device number of `fd` (`fstat`).
pub fn file_kind(fd: BorrowedFd<'_>) -> Option<(u32, u64)> {
    // SAFETY: plain data for fstat to fill.
    let mut st: libc::stat = unsafe { zeroed() };
    // SAFETY: a valid stat buffer.
    let r = unsafe { libc::fstat(fd.as_raw_fd(), &mut st) };
    (r == 0).then_some((st.st_mode & libc::S_IFMT, st.st_rdev))
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

/// `pidfd_open(2)`.
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall.
    let fd = cvt_long(unsafe {
        libc::syscall(libc::SYS_pidfd_open, pid as libc::c_long, 0 as libc::c_long)
    })?;
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// A pidfd naming the thread `tid` itself (`PIDFD_THREAD`, Linux 6.9), so that a
/// notification from any thread of a process can be served; on older kernels, a
/// pidfd of its thread group (read from `/proc/TID/status`).
/// The flag says whether the pidfd names the thread itself.
pub fn pidfd_open_thread(tid: u32) -> io::Result<(OwnedFd, bool)> {
    // SAFETY: plain syscall.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_open,
            tid as libc::c_long,
            libc::O_EXCL as libc::c_long,
        )
    };
    if r >= 0 {
        // SAFETY: a fresh fd we own.
        return Ok((unsafe { OwnedFd::from_raw_fd(r as RawFd) }, true));
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::EINVAL) {
        return Err(e);
    }
    let status = std::fs::read_to_string(format!("/proc/{tid}/status"))?;
    let tgid = status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse::<u32>().ok())
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))?;
    Ok((pidfd_open(tgid)?, false))
}

/// A copy of the target's descriptor `fd` (`pidfd_getfd(2)`), close-on-exec.
pub fn pidfd_getfd(pidfd: BorrowedFd<'_>, fd: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall.
    let r = cvt_long(unsafe {
        libc::syscall(
            libc::SYS_pidfd_getfd,
            pidfd.as_raw_fd() as libc::c_long,
            fd as libc::c_long,
            0 as libc::c_long,
        )
    })?;
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// Reads the target's memory at `addr` into `buf`, all of it or an error.
pub fn read_mem(pid: u32, addr: u64, buf: &mut [u8]) -> io::Result<()> {
    if buf.is_empty() {
        return Ok(());
    }
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `local` is our buffer; the kernel checks `remote` against the target.
    let n = unsafe { libc::process_vm_readv(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    match n {
        n if n < 0 => Err(io::Error::last_os_error()),
        n if n as usize != buf.len() => Err(io::Error::from_raw_os_error(libc::EFAULT)),
        _ => Ok(()),
    }
}

/// Writes `data` into the target's memory at `addr`.
pub fn write_mem(pid: u32, addr: u64, data: &[u8]) -> io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    let local = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: as for read_mem.
    let n = unsafe { libc::process_vm_writev(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    match n {
        n if n < 0 => Err(io::Error::last_os_error()),
        n if n as usize != data.len() => Err(io::Error::from_raw_os_error(libc::EFAULT)),
        _ => Ok(()),
    }
}

/// Receives one record from a copy of a target's stand-in without blocking: its
/// length (the full length, `MSG_TRUNC`), the first descriptor attached (an
/// accepted connection, or a datagram socket's error marker), and whether `buf` was
/// too short.
pub fn recv_record(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    peek: bool,
) -> io::Result<(usize, Option<OwnedFd>, bool)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    #[repr(C, align(8))]
    struct Cm([u8; 64]);
    let mut cm = Cm([0; 64]);
    // SAFETY: plain data.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cm.0.as_mut_ptr().cast();
    msg.msg_controllen = cm.0.len();
    let flags = libc::MSG_DONTWAIT
        | libc::MSG_CMSG_CLOEXEC
        | libc::MSG_TRUNC
        | if peek { libc::MSG_PEEK } else { 0 };
    // SAFETY: valid buffers.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, flags) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let truncated = msg.msg_flags & libc::MSG_TRUNC != 0;
    let mut got = None;
    // SAFETY: the kernel wrote well-formed cmsghdrs.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let count =
                    ((*c).cmsg_len - libc::CMSG_LEN(0) as usize) / std::mem::size_of::<RawFd>();
                for i in 0..count {
                    let raw = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<RawFd>().add(i));
                    let fd = OwnedFd::from_raw_fd(raw);
                    if got.is_none() {
                        got = Some(fd);
                    }
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n as usize, got, truncated))
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

/// The file status flags of `fd` (`F_GETFL`); they belong to the open file, so a
/// copy taken with `pidfd_getfd` shows the target's `O_NONBLOCK`.
pub fn status_flags(fd: BorrowedFd<'_>) -> i32 {
    // SAFETY: plain fcntl.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) }.max(0)
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

/// Whether `fd` is a socket.
pub fn is_socket(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: stat is plain data for the kernel to fill.
    let mut st: libc::stat = unsafe { zeroed() };
    // SAFETY: a valid stat buffer.
    let r = unsafe { libc::fstat(fd.as_raw_fd(), &mut st) };
    r == 0 && st.st_mode & libc::S_IFMT == libc::S_IFSOCK
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
