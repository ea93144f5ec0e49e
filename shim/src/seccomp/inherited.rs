//! What a container starts with: its standard descriptors, checked.
//!
//! netcell passes the command its standard input, output and error as they are, and
//! nothing else (every other descriptor is close-on-exec, see [`netcell_sys::spawn`]). When
//! one of them is a socket of the host, the container holds a real network socket
//! outside its stack. The supervisor refuses every control call on such a socket
//! (`EPERM`), but a call it passes on for an `AF_UNIX` socket is carried out by the
//! kernel on whatever the descriptor number names by then — another thread may have
//! `dup2`'d the host socket there (see `calls`). So the container may start with a
//! host socket only where no call could turn it into new reach:
//!
//! - an `AF_UNIX` socket (a pipe to a parent, a terminal multiplexer): no network;
//! - a *connected* TCP stream (inetd-style): `connect` on it fails (`EISCONN`, and the
//!   Landlock wall denies TCP connect and bind outright), `listen` and `accept`
//!   fail, and `sendto` ignores its address — it reaches only the peer it was
//!   connected to, which is what the caller handed over.
//!
//! Anything else — a UDP socket (a passed-on `connect` would aim it anywhere), a
//! listening socket, an unconnected one, a raw, packet or netlink socket, or a
//! descriptor that reaches a network without being a socket (a TUN/TAP device, an
//! io_uring: see [`device_reach`]) — makes `netcell run` refuse to start, with the
//! descriptor and what it is.

use super::kernel;
use std::os::fd::{AsFd, BorrowedFd};

/// Refuses to start when a standard descriptor is a host socket other than a
/// connected TCP stream or an `AF_UNIX` socket.
pub fn check_stdio() -> Result<(), String> {
    let (i, o, e) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
    for (b, fd, name) in [
        (i.as_fd(), 0, "input"),
        (o.as_fd(), 1, "output"),
        (e.as_fd(), 2, "error"),
    ] {
        if let Some(what) = refused(b) {
            return Err(format!(
                "standard {name} (fd {fd}) is {what} of the host; under --shim seccomp a \
                 container may start with a host socket only when it is a connected TCP \
                 stream or an AF_UNIX socket (its network is its own stack). Redirect it, \
                 or use --shim preload"
            ));
        }
    }
    Ok(())
}

/// Anonymous-inode descriptors that reach no network.
const ANON_OK: [&str; 8] = [
    "[eventfd]",
    "[eventpoll]",
    "[signalfd]",
    "[timerfd]",
    "[pidfd]",
    "inotify",
    "[fanotify]",
    "[userfaultfd]",
];

/// What a descriptor that is not a socket could reach a network with, if anything:
/// an allowlist, because what is not on it may (a TUN device, a macvtap or ipvtap
/// device under any major number, an io_uring whose kernel thread does socket I/O
/// with no system call, a BPF socket map). Allowed: files, directories, pipes, the
/// memory devices (`/dev/null`, `zero`, `full`, `random`, `urandom`), terminals and
/// pseudo-terminals, and the anonymous inodes of [`ANON_OK`].
pub fn device_reach(fd: BorrowedFd<'_>) -> Option<String> {
    let Some((kind, rdev)) = kernel::file_kind(fd) else {
        return Some("a descriptor netcell cannot inspect".into());
    };
    match kind {
        libc::S_IFREG | libc::S_IFDIR | libc::S_IFIFO | libc::S_IFSOCK => None,
        libc::S_IFCHR => {
            let (major, minor) = (libc::major(rdev), libc::minor(rdev));
            let ok = matches!((major, minor), (1, 3 | 5 | 7 | 8 | 9) | (4, _) | (5, 0..=2))
                || (136..=143).contains(&major);
            (!ok).then(|| format!("a character device {major}:{minor}"))
        }
        libc::S_IFBLK => Some("a block device".into()),
        0 => {
            let link = kernel::fd_link(fd).unwrap_or_default();
            let name = link.strip_prefix("anon_inode:").unwrap_or(&link);
            (!ANON_OK.contains(&name)).then(|| link.clone())
        }
        _ => Some(format!("a file of type {kind:#o}")),
    }
}

/// What makes `fd` unfit to pass on, if it is.
fn refused(fd: BorrowedFd<'_>) -> Option<String> {
    if !kernel::is_socket(fd) {
        return device_reach(fd);
    }
    let int = |level, name| kernel::sockopt_int(fd, level, name);
    let domain = int(libc::SOL_SOCKET, libc::SO_DOMAIN);
    let ty = int(libc::SOL_SOCKET, libc::SO_TYPE);
    let family = match domain {
        Some(libc::AF_UNIX) => return None,
        Some(libc::AF_INET) => "an IPv4",
        Some(libc::AF_INET6) => "an IPv6",
        Some(libc::AF_NETLINK) => return Some("a netlink socket".into()),
        Some(libc::AF_PACKET) => return Some("a packet socket".into()),
        Some(d) => return Some(format!("a socket of family {d}")),
        None => return Some("a socket of unknown family".into()),
    };
    let kind = match ty {
        Some(libc::SOCK_STREAM) => "TCP",
        Some(libc::SOCK_DGRAM) => return Some(format!("{family} UDP socket")),
        Some(libc::SOCK_RAW) => return Some(format!("{family} raw socket")),
        _ => return Some(format!("{family} socket of type {ty:?}")),
    };
    if int(libc::SOL_SOCKET, libc::SO_ACCEPTCONN) == Some(1) {
        return Some(format!("{family} listening {kind} socket"));
    }
    if !kernel::has_peer(fd) {
        return Some(format!("{family} unconnected {kind} socket"));
    }
    None
}
