//! The stack's only door to the kernel for things `std` does not cover: socket pairs,
//! `SCM_RIGHTS`, `SO_PEERCRED`, `SIOCOUTQ`, interface MTU ioctls, resource limits.
//!
//! Every function here is a thin, checked wrapper over one or two system calls; each
//! `unsafe` block states why it is sound. Everything above this module is safe code.
#![allow(unsafe_code)]

use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn cvt_size(r: libc::ssize_t) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

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

/// The `poll` events of `fd` now (`POLLHUP` and `POLLERR` always, `extra` asked).
fn poll_now(fd: BorrowedFd<'_>, extra: libc::c_short) -> libc::c_short {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: extra,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let r = unsafe { libc::poll(&mut p, 1, 0) };
    if r == 1 { p.revents } else { 0 }
}

/// Whether the peer of a unix socket is gone (`POLLHUP`).
pub fn hung_up(fd: BorrowedFd<'_>) -> bool {
    poll_now(fd, 0) & libc::POLLHUP != 0
}

/// Sets `SO_SNDBUF` (the kernel doubles it); as root, `SO_SNDBUFFORCE` lifts the
/// sysctl limit.
pub fn set_sndbuf(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<()> {
    let v = bytes.min(i32::MAX as usize) as libc::c_int;
    let len = size_of::<libc::c_int>() as libc::socklen_t;
    let p = (&v as *const libc::c_int).cast();
    // SAFETY: `v` is a valid int for the duration of the call.
    if unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUFFORCE,
            p,
            len,
        )
    } == 0
    {
        return Ok(());
    }
    // SAFETY: as above.
    cvt(unsafe { libc::setsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_SNDBUF, p, len) })
        .map(|_| ())
}

/// Opens `/dev/null` read-only: a harmless descriptor to attach to marker records.
pub fn dev_null() -> io::Result<OwnedFd> {
    std::fs::File::open("/dev/null").map(OwnedFd::from)
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

/// What `fstat` says about an fd: its inode and whether it is a socket.
pub fn inode(fd: BorrowedFd<'_>) -> io::Result<(u64, bool)> {
    // SAFETY: `st` is a plain C struct that fstat fills; zeroed is a valid value.
    let mut st: libc::stat = unsafe { zeroed() };
    // SAFETY: `st` is valid for writes of its size.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok((st.st_ino, st.st_mode & libc::S_IFMT == libc::S_IFSOCK))
}

/// `send(2)` with `MSG_DONTWAIT | MSG_NOSIGNAL`: never blocks, never raises SIGPIPE.
pub fn send_nb(fd: BorrowedFd<'_>, data: &[u8]) -> io::Result<usize> {
    // SAFETY: `data` is valid for reads of its length.
    cvt_size(unsafe {
        libc::send(
            fd.as_raw_fd(),
            data.as_ptr().cast(),
            data.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    })
}

/// `read(2)` into `buf`.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of its length.
    cvt_size(unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) })
}

/// Space for the control message of one `SCM_RIGHTS` with up to 4 fds.
#[repr(C, align(8))]
struct CmsgBuf([u8; 64]);

/// Sends one message, optionally with one fd as `SCM_RIGHTS`; non-blocking, no SIGPIPE.
pub fn send_with_fd(
    sock: BorrowedFd<'_>,
    data: &[u8],
    fd: Option<BorrowedFd<'_>>,
) -> io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut _,
        iov_len: data.len(),
    };
    let mut cmsg = CmsgBuf([0; 64]);
    // SAFETY: msghdr is a plain C struct; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if let Some(fd) = fd {
        // SAFETY: CMSG_SPACE is a pure size computation.
        let space = unsafe { libc::CMSG_SPACE(size_of::<RawFd>() as u32) } as usize;
        msg.msg_control = cmsg.0.as_mut_ptr().cast();
        msg.msg_controllen = space;
        // SAFETY: msg_control points at `space` bytes of aligned storage, enough for one
        // cmsghdr carrying one int, so CMSG_FIRSTHDR is non-null and CMSG_DATA in bounds.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(size_of::<RawFd>() as u32) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), fd.as_raw_fd());
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
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cmsg = CmsgBuf([0; 64]);
    // SAFETY: all-zero msghdr is valid; we fill the pointers below.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.0.as_mut_ptr().cast();
    msg.msg_controllen = cmsg.0.len();
    // SAFETY: msg points at valid buffers of the stated sizes.
    let n = cvt_size(unsafe {
        libc::recvmsg(
            sock.as_raw_fd(),
            &mut msg,
            libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
        )
    })?;
    let mut out = Received {
        len: n,
        truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
        fds: heapless::Vec::new(),
        fds_truncated: msg.msg_flags & libc::MSG_CTRUNC != 0,
    };
    // SAFETY: the kernel filled msg_control with msg_controllen bytes of well-formed
    // cmsghdrs; CMSG_FIRSTHDR/NXTHDR walk them within those bounds.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c);
                let count = ((*c).cmsg_len - libc::CMSG_LEN(0) as usize) / size_of::<RawFd>();
                for i in 0..count {
                    let raw = std::ptr::read_unaligned(data.cast::<RawFd>().add(i));
                    // The kernel installed this fd for us; we own it now.
                    let fd = OwnedFd::from_raw_fd(raw);
                    if out.fds.push(fd).is_err() {
                        out.fds_truncated = true; // dropped here, which closes it
                    }
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
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
    Ok((pidfd_open(pid)?, pid))
}

/// `pidfd_open(2)`.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    if pid <= 0 {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    // SAFETY: plain syscall with integer arguments.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_long, 0 as libc::c_long) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// Whether the process a pidfd names is still running (not yet reaped: its pid
/// cannot have been given to another process).
pub fn pidfd_alive(pidfd: BorrowedFd<'_>) -> bool {
    // SAFETY: signal 0 only checks; null info is allowed.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd() as libc::c_long,
            0 as libc::c_long,
            std::ptr::null::<u8>(),
            0 as libc::c_long,
        ) == 0
    }
}

/// The parent pid of `pid` (`PPid` in `/proc/PID/status`).
pub fn parent_of(pid: i32) -> Option<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|v| v.trim().parse().ok())
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

/// Bytes waiting to be read (`FIONREAD`).
pub fn pending_bytes(fd: BorrowedFd<'_>) -> usize {
    let mut v: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut v) };
    if r < 0 { 0 } else { v.max(0) as usize }
}

/// Whether the fd is writable right now (`poll` with zero timeout).
pub fn writable_now(fd: BorrowedFd<'_>) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let r = unsafe { libc::poll(&mut p, 1, 0) };
    r == 1 && p.revents & libc::POLLOUT != 0
}

/// `shutdown(2)`.
pub fn shutdown(fd: BorrowedFd<'_>, how: libc::c_int) -> io::Result<()> {
    // SAFETY: plain syscall on a valid fd.
    cvt(unsafe { libc::shutdown(fd.as_raw_fd(), how) }).map(|_| ())
}

/// The effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// Raises `RLIMIT_NOFILE`'s soft limit to its hard limit: the stack holds one fd per
/// socket of every process in the container. Returns the new soft limit.
pub fn raise_nofile_limit() -> io::Result<u64> {
    // SAFETY: rlimit is a plain C struct.
    let mut rl: libc::rlimit = unsafe { zeroed() };
    // SAFETY: rl is valid for writes.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) })?;
    if rl.rlim_cur < rl.rlim_max {
        rl.rlim_cur = rl.rlim_max;
        // SAFETY: rl is a valid rlimit.
        cvt(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) })?;
    }
    Ok(rl.rlim_cur)
}

fn ifreq_for(name: &str) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is a plain C struct/union; zero is valid.
    let mut ifr: libc::ifreq = unsafe { zeroed() };
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= ifr.ifr_name.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name {name:?}"),
        ));
    }
    for (d, s) in ifr.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    Ok(ifr)
}

fn ioctl_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call.
    let fd = cvt(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads a network interface's MTU (`SIOCGIFMTU`).
pub fn if_mtu(name: &str) -> io::Result<usize> {
    let mut ifr = ifreq_for(name)?;
    let s = ioctl_socket()?;
    // SAFETY: SIOCGIFMTU fills ifr_ifru.ifru_mtu in a valid ifreq.
    cvt(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCGIFMTU, &mut ifr) })?;
    // SAFETY: the kernel just wrote the mtu member of the union.
    Ok(unsafe { ifr.ifr_ifru.ifru_mtu }.max(0) as usize)
}

/// Sets a network interface's MTU (`SIOCSIFMTU`, needs `CAP_NET_ADMIN`).
pub fn set_if_mtu(name: &str, mtu: usize) -> io::Result<()> {
    let mut ifr = ifreq_for(name)?;
    ifr.ifr_ifru.ifru_mtu = mtu as libc::c_int;
    let s = ioctl_socket()?;
    // SAFETY: SIOCSIFMTU reads a valid ifreq.
    cvt(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCSIFMTU, &ifr) }).map(|_| ())
}

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNGETIFF: libc::c_ulong = 0x8004_54d2;
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
const TUNSETVNETHDRSZ: libc::c_ulong = 0x4004_54d8;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
const TUN_F_CSUM: libc::c_uint = 0x01;
const TUN_F_TSO4: libc::c_uint = 0x02;
const TUN_F_TSO6: libc::c_uint = 0x04;

/// The size of `struct virtio_net_hdr`, which precedes every frame on a TAP opened
/// with `IFF_VNET_HDR`.
pub const VNET_HDR_LEN: usize = 10;

fn ifr_name(ifr: &libc::ifreq) -> String {
    let bytes: Vec<u8> = ifr
        .ifr_name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Opens `/dev/net/tun` and attaches to the TAP device `name` (creating it if it
/// does not exist, which needs `CAP_NET_ADMIN`), without packet information.
/// Returns the fd and the interface's name.
///
/// With `vnet`, frames carry a `virtio_net_hdr` ([`VNET_HDR_LEN`] bytes) and the
/// kernel is told this end takes TCP segments of up to 64 KiB with their checksum
/// left to finish (`TUNSETOFFLOAD`: `TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6`), so it
/// hands over a large segment in one frame instead of one frame per MTU.
pub fn tap_open(name: &str, vnet: bool) -> io::Result<(OwnedFd, String)> {
    // SAFETY: a valid NUL-terminated path.
    let fd = cvt(unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) })?;
    // SAFETY: a fresh fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut ifr = ifreq_for(name)?;
    ifr.ifr_ifru.ifru_flags = IFF_TAP | IFF_NO_PI | if vnet { IFF_VNET_HDR } else { 0 };
    // SAFETY: TUNSETIFF reads and writes a valid ifreq.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, &mut ifr) })?;
    if vnet {
        tap_offload(fd.as_fd())?;
    }
    Ok((fd, ifr_name(&ifr)))
}

/// Sets the virtio header size and the receive offloads of a TAP opened with
/// `IFF_VNET_HDR` (see [`tap_open`]).
fn tap_offload(fd: BorrowedFd<'_>) -> io::Result<()> {
    let size = VNET_HDR_LEN as libc::c_int;
    // SAFETY: TUNSETVNETHDRSZ reads one int.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETVNETHDRSZ, &size) })?;
    // SAFETY: TUNSETOFFLOAD takes its flags by value.
    cvt(unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            TUNSETOFFLOAD,
            (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) as libc::c_ulong,
        )
    })?;
    Ok(())
}

/// Takes over `raw`, a descriptor this process inherited that is attached to a
/// TAP device (opened by a privileged helper, say). It must be a TAP device
/// without packet information; returns it, the interface's name, and whether
/// frames carry a `virtio_net_hdr` (it was opened with `IFF_VNET_HDR`: the
/// offloads of [`tap_open`] are then set too).
pub fn tap_adopt(raw: RawFd) -> io::Result<(OwnedFd, String, bool)> {
    if raw < 3 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("fd {raw} is a standard stream, not a TAP device"),
        ));
    }
    // SAFETY: ifreq is plain data; zero is valid.
    let mut ifr: libc::ifreq = unsafe { zeroed() };
    // SAFETY: TUNGETIFF writes a valid ifreq; on an fd that is not a TUN/TAP it fails
    // (EBADF, ENOTTY, EBADFD) and touches nothing.
    cvt(unsafe { libc::ioctl(raw, TUNGETIFF, &mut ifr) }).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("fd {raw} is not attached to a TAP device ({e})"),
        )
    })?;
    // SAFETY: the kernel wrote the flags member of the union.
    let flags = unsafe { ifr.ifr_ifru.ifru_flags };
    if flags & IFF_TAP == 0 || flags & IFF_NO_PI == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "fd {raw} is attached to {} with flags {flags:#x}; netcell needs IFF_TAP | IFF_NO_PI",
                ifr_name(&ifr)
            ),
        ));
    }
    // SAFETY: the fd is open (TUNGETIFF succeeded) and this process takes it over; the
    // caller passes an fd nothing else in the process owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: plain fcntl.
    cvt(unsafe { libc::fcntl(raw, libc::F_SETFD, libc::FD_CLOEXEC) })?;
    let vnet = flags & IFF_VNET_HDR != 0;
    if vnet {
        tap_offload(fd.as_fd())?;
    }
    Ok((fd, ifr_name(&ifr), vnet))
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

/// Whether process (or thread) `pid` has `CAP_NET_RAW` over this stack: in its
/// effective set (`/proc/PID/status`) *and* in the user namespace the stack runs
/// in. Linux checks the capability in the user namespace that owns the network
/// namespace; a container's network is this stack, owned by the stack's user
/// namespace, so capabilities a program holds in a namespace it made itself
/// (`unshare -Ur`) do not count. Anything that cannot be read answers no.
pub fn has_net_raw(pid: u32) -> bool {
    const CAP_NET_RAW: u32 = 13;
    let ns = |p: &str| {
        std::fs::metadata(p).ok().map(|m| {
            use std::os::unix::fs::MetadataExt;
            (m.dev(), m.ino())
        })
    };
    let theirs = ns(&format!("/proc/{pid}/ns/user"));
    if theirs.is_none() || theirs != ns("/proc/self/ns/user") {
        return false;
    }
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << CAP_NET_RAW) != 0)
}

/// The index of a network interface in this process's network namespace, if it exists.
pub fn if_index(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx)
}

/// Creates a non-blocking `AF_UNIX` `SOCK_SEQPACKET` socket listening at `path`,
/// readable and writable by its owner only.
pub fn seqpacket_listener(path: &std::path::Path) -> io::Result<OwnedFd> {
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
    // SAFETY: plain socket(2).
    let fd = cvt(unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    // SAFETY: a fresh fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let len = (size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;
    // SAFETY: sun is a valid sockaddr_un of at least `len` bytes.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sun as *const libc::sockaddr_un).cast(),
            len,
        )
    })?;
    // SAFETY: plain listen(2) on our socket.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), 128) })?;
    Ok(fd)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
