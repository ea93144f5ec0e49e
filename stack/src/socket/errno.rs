//! `errno` values and the small error enum of each socket operation.
//!
//! Each operation has its own enum listing exactly the ways it fails, each variant
//! documented with the Linux `errno` it maps to; [`Errno`] is what travels to the
//! program.

use std::fmt;

/// A Linux `errno` value.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

impl Errno {
    /// The raw value.
    pub fn raw(self) -> i32 {
        self.0
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Errno({} {})",
            self.0,
            std::io::Error::from_raw_os_error(self.0)
        )
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", std::io::Error::from_raw_os_error(self.0))
    }
}

impl std::error::Error for Errno {}

macro_rules! op_errors {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $var:ident => $errno:ident,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name { $($(#[$vm])* $var,)* }

        impl $name {
            /// The Linux `errno` for this error.
            pub fn errno(self) -> Errno {
                match self { $($name::$var => Errno(libc::$errno),)* }
            }
        }

        impl From<$name> for Errno {
            fn from(e: $name) -> Errno { e.errno() }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.errno())
            }
        }

        impl std::error::Error for $name {}
    };
}

op_errors! {
    /// Why `socket` failed.
    pub enum SocketError {
        /// Not `AF_INET`/`AF_INET6` (`EAFNOSUPPORT`).
        FamilyNotSupported => EAFNOSUPPORT,
        /// A socket type this stack does not implement (`ESOCKTNOSUPPORT`).
        TypeNotSupported => ESOCKTNOSUPPORT,
        /// A protocol that does not go with the type (`EPROTONOSUPPORT`).
        ProtocolNotSupported => EPROTONOSUPPORT,
        /// Unknown flag bits in the type (`EINVAL`).
        BadFlags => EINVAL,
        /// Raw sockets need `CAP_NET_RAW` (`EPERM`).
        NotPermitted => EPERM,
        /// The stack process is out of file descriptors (`ENFILE`: from the
        /// program's side a system-wide shortage; its own table is not full).
        NoFds => ENFILE,
        /// Out of kernel memory for the stand-in, or the container's buffer
        /// budget is spent (`ENOBUFS`).
        NoBuffers => ENOBUFS,
        /// The container has as many sockets as it may (`EMFILE`, as when a
        /// process reaches its descriptor limit).
        TooMany => EMFILE,
    }
}

op_errors! {
    /// Why `bind` failed.
    pub enum BindError {
        /// Too short an address (`EINVAL`).
        BadLength => EINVAL,
        /// The address family does not match the socket (`EAFNOSUPPORT`).
        WrongFamily => EAFNOSUPPORT,
        /// Already bound, or a v4-mapped address on a v6-only socket (`EINVAL`).
        Invalid => EINVAL,
        /// The address is not one of this container's (`EADDRNOTAVAIL`).
        AddrNotAvailable => EADDRNOTAVAIL,
        /// Another socket holds the address and port (`EADDRINUSE`).
        AddrInUse => EADDRINUSE,
        /// A port below 1024 without privilege (`EACCES`).
        Privileged => EACCES,
    }
}

op_errors! {
    /// Why `listen` failed.
    pub enum ListenError {
        /// Connected or connecting (`EINVAL`).
        InvalidState => EINVAL,
        /// Another listener holds the address and port (`EADDRINUSE`).
        AddrInUse => EADDRINUSE,
        /// Not a stream socket (`EOPNOTSUPP`).
        NotSupported => EOPNOTSUPP,
    }
}

op_errors! {
    /// Why `connect` failed (or is still going on).
    pub enum ConnectError {
        /// Too short an address (`EINVAL`).
        BadLength => EINVAL,
        /// The address family does not match the socket (`EAFNOSUPPORT`).
        WrongFamily => EAFNOSUPPORT,
        /// A loopback source towards a non-local destination (`EINVAL`).
        Invalid => EINVAL,
        /// The handshake is under way (`EINPROGRESS`): the normal answer.
        InProgress => EINPROGRESS,
        /// A previous connect is still under way (`EALREADY`).
        Already => EALREADY,
        /// Already connected, or listening (`EISCONN`).
        IsConnected => EISCONN,
        /// No route to the network (`ENETUNREACH`).
        NetworkUnreachable => ENETUNREACH,
        /// No neighbour answered (`EHOSTUNREACH`).
        HostUnreachable => EHOSTUNREACH,
        /// No ephemeral port left, or a source address not ours (`EADDRNOTAVAIL`).
        AddrNotAvailable => EADDRNOTAVAIL,
        /// The 4-tuple is taken (`EADDRINUSE`).
        AddrInUse => EADDRINUSE,
        /// The peer answered with a reset (`ECONNREFUSED`).
        Refused => ECONNREFUSED,
        /// The peer never answered (`ETIMEDOUT`).
        TimedOut => ETIMEDOUT,
        /// The stand-in passed does not belong to this socket (`EBADF`).
        BadStandIn => EBADF,
        /// The container's buffer budget is spent (`ENOBUFS`).
        NoBuffers => ENOBUFS,
    }
}

op_errors! {
    /// Why `accept` failed.
    pub enum AcceptError {
        /// Not listening (`EINVAL`).
        NotListening => EINVAL,
        /// No connection waiting (`EAGAIN`).
        WouldBlock => EAGAIN,
    }
}

op_errors! {
    /// Why `send`/`recv` (embedding API) failed.
    pub enum IoError {
        /// Not connected (`ENOTCONN`).
        NotConnected => ENOTCONN,
        /// Buffer full or empty (`EAGAIN`).
        WouldBlock => EAGAIN,
        /// Writing after shutdown or close (`EPIPE`).
        BrokenPipe => EPIPE,
        /// The peer reset the connection (`ECONNRESET`).
        Reset => ECONNRESET,
        /// The connection timed out (`ETIMEDOUT`).
        TimedOut => ETIMEDOUT,
        /// The socket uses a stand-in; its data moves over the fd (`EOPNOTSUPP`).
        NotApi => EOPNOTSUPP,
    }
}

op_errors! {
    /// Why `shutdown` failed.
    pub enum ShutdownError {
        /// `how` is not `SHUT_RD`, `SHUT_WR` or `SHUT_RDWR` (`EINVAL`).
        BadHow => EINVAL,
        /// Not connected (`ENOTCONN`).
        NotConnected => ENOTCONN,
    }
}

op_errors! {
    /// Why a socket could not be looked up.
    pub enum LookupError {
        /// No such socket (`EBADF`).
        NoSuchSocket => EBADF,
        /// `getpeername` on an unconnected socket (`ENOTCONN`).
        NotConnected => ENOTCONN,
    }
}
