//! `errno` values and the small error enum of each socket operation.
//!
//! Each operation has its own enum listing exactly the ways it fails, each variant
//! documented with when it happens and the Linux `errno` it maps to; [`Errno`] is
//! what travels to the program. The enums are shared by the protocols where the
//! call is the same (a UDP, ping or raw `bind` fails with a [`BindError`] as a TCP
//! one does); a socket that is not there is `NoSuchSocket` (`EBADF`) wherever a
//! call can meet one. `op_errors!` declares them (also the address parser's
//! [`AddrError`] and the socket service's
//! [`RequestError`](crate::control::service::RequestError)).

use super::addr::AddrError;
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

/// Declares the error enum of one operation: each variant with the Linux `errno` it
/// maps to, `errno()`, `From<_> for Errno`, `Display` and `Error`.
macro_rules! op_errors {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $var:ident => $errno:ident,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name { $($(#[$vm])* $var,)* }

        impl $name {
            /// The Linux `errno` for this error.
            pub fn errno(self) -> $crate::socket::errno::Errno {
                match self { $($name::$var => $crate::socket::errno::Errno(libc::$errno),)* }
            }
        }

        impl From<$name> for $crate::socket::errno::Errno {
            fn from(e: $name) -> $crate::socket::errno::Errno { e.errno() }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "{}", self.errno())
            }
        }

        impl ::std::error::Error for $name {}
    };
}
pub(crate) use op_errors;

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
        /// budget is spent (a raw socket's buffers are made at once) (`ENOBUFS`).
        NoBuffers => ENOBUFS,
        /// The container has as many sockets as it may (`EMFILE`, as when a
        /// process reaches its descriptor limit).
        TooMany => EMFILE,
    }
}

op_errors! {
    /// Why `bind` failed.
    pub enum BindError {
        /// No such socket (`EBADF`).
        NoSuchSocket => EBADF,
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
        /// Port 0 and no ephemeral port (or ICMP identifier) left (`EAGAIN`, Linux's
        /// answer for UDP and ping sockets; TCP answers `EADDRINUSE`).
        NoEphemeralPort => EAGAIN,
        /// A UDP port's first socket: its endpoints do not fit the container's
        /// buffer budget (`ENOBUFS`).
        NoBuffers => ENOBUFS,
    }
}

op_errors! {
    /// Why `listen` failed.
    pub enum ListenError {
        /// No such socket (`EBADF`).
        NoSuchSocket => EBADF,
        /// Connected or connecting (`EINVAL`).
        InvalidState => EINVAL,
        /// Another listener holds the address and port, or no ephemeral port is
        /// left for an unbound socket (`EADDRINUSE`).
        AddrInUse => EADDRINUSE,
        /// Not a stream socket (`EOPNOTSUPP`).
        NotSupported => EOPNOTSUPP,
        /// The stand-in passed does not belong to this socket (`EBADF`).
        BadStandIn => EBADF,
    }
}

op_errors! {
    /// Why `connect` failed (or is still going on).
    pub enum ConnectError {
        /// No such socket (`EBADF`).
        NoSuchSocket => EBADF,
        /// Too short an address (`EINVAL`).
        BadLength => EINVAL,
        /// The address family does not match the socket, or a UDP socket bound to
        /// an IPv4 address connects to an IPv6 one (`EAFNOSUPPORT`).
        WrongFamily => EAFNOSUPPORT,
        /// A loopback source towards a non-local destination (`EINVAL`).
        Invalid => EINVAL,
        /// The handshake is under way (`EINPROGRESS`): the normal answer.
        InProgress => EINPROGRESS,
        /// A previous connect is still under way (`EALREADY`).
        Already => EALREADY,
        /// Already connected, or listening (`EISCONN`).
        IsConnected => EISCONN,
        /// No route to the network, or none of the family the socket is bound to
        /// (`ENETUNREACH`).
        NetworkUnreachable => ENETUNREACH,
        /// A host of the uplink's own subnet that does not exist (`EHOSTUNREACH`).
        HostUnreachable => EHOSTUNREACH,
        /// TCP through the host uplink is off on this kernel (`EACCES`; see
        /// `UplinkConfig::tcp`).
        TcpOff => EACCES,
        /// A TCP socket finds no ephemeral port left (`EADDRNOTAVAIL`).
        AddrNotAvailable => EADDRNOTAVAIL,
        /// A UDP or ping socket finds no ephemeral port (identifier) left to bind
        /// to (`EAGAIN`).
        NoEphemeralPort => EAGAIN,
        /// A UDP socket connects to a broadcast address without `SO_BROADCAST`
        /// (`EACCES`).
        BroadcastDenied => EACCES,
        /// The peer answered with a reset (`ECONNREFUSED`).
        Refused => ECONNREFUSED,
        /// The peer never answered (`ETIMEDOUT`).
        TimedOut => ETIMEDOUT,
        /// A connect after one that failed in the background and whose error
        /// `SO_ERROR` took (`ECONNABORTED`, Linux's answer; the next one tries
        /// again).
        Aborted => ECONNABORTED,
        /// The stack closed the socket's connection under the program after a
        /// reset, and nothing is pending (`ECONNRESET`).
        Reset => ECONNRESET,
        /// The stand-in passed does not belong to this socket (`EBADF`).
        BadStandIn => EBADF,
        /// The container's buffer budget is spent (`ENOBUFS`).
        NoBuffers => ENOBUFS,
        /// The packet filter's `output` chain drops the connection's first
        /// packet (`EPERM`, as Linux reports a locally dropped packet).
        Filtered => EPERM,
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
        /// The socket uses a stand-in; its data moves over the fd (`EOPNOTSUPP`).
        NotApi => EOPNOTSUPP,
    }
}

op_errors! {
    /// Why a datagram (UDP, ping or raw) could not be sent (`sendto`, `sendmsg`, or
    /// a record the program wrote to a connected socket's stand-in).
    pub enum SendError {
        /// No such socket, or not a datagram socket of the protocol asked
        /// (`EBADF`).
        NoSuchSocket => EBADF,
        /// A stream socket: its data moves over the stand-in (`EOPNOTSUPP`).
        NotSupported => EOPNOTSUPP,
        /// Too short a destination address (`EINVAL`).
        BadLength => EINVAL,
        /// The destination's family does not match the socket, or a source of
        /// the other family (`EAFNOSUPPORT`).
        WrongFamily => EAFNOSUPPORT,
        /// No destination given and the socket is not connected (`EDESTADDRREQ`).
        DestinationRequired => EDESTADDRREQ,
        /// No route to the destination, an IPv4 destination for a v6-only socket,
        /// or `SO_BINDTODEVICE` naming another interface (`ENETUNREACH`).
        NetworkUnreachable => ENETUNREACH,
        /// Port 0, a loopback source towards a non-local destination, or a ping
        /// socket's message that is not an echo request (`EINVAL`).
        Invalid => EINVAL,
        /// Larger than one datagram can be, or than an IPv6 packet on the route's
        /// MTU (smoltcp does not fragment IPv6) (`EMSGSIZE`).
        TooBig => EMSGSIZE,
        /// A broadcast destination without `SO_BROADCAST` (`EACCES`).
        BroadcastDenied => EACCES,
        /// No ephemeral port (or ICMP identifier) left to bind an unbound
        /// socket to (`EAGAIN`).
        NoEphemeralPort => EAGAIN,
        /// The send queue is full, or the container's buffer budget is spent
        /// (`ENOBUFS`).
        NoBuffers => ENOBUFS,
        /// The packet filter's `output` chain drops the datagram (`EPERM`).
        Filtered => EPERM,
        /// The packet filter's `output` chain rejects the datagram
        /// (`ECONNREFUSED`).
        Refused => ECONNREFUSED,
        /// The socket was shut for writing (`EPIPE`).
        Shut => EPIPE,
    }
}

op_errors! {
    /// Why `shutdown` failed.
    pub enum ShutdownError {
        /// No such socket (`EBADF`).
        NoSuchSocket => EBADF,
        /// `how` is not `SHUT_RD`, `SHUT_WR` or `SHUT_RDWR` (`EINVAL`).
        BadHow => EINVAL,
        /// Not connected (`ENOTCONN`).
        NotConnected => ENOTCONN,
    }
}

op_errors! {
    /// Why `setsockopt` or `getsockopt` failed.
    pub enum OptionError {
        /// No such socket (`EBADF`).
        NoSuchSocket => EBADF,
        /// An option this socket does not have (`ENOPROTOOPT`).
        UnknownOption => ENOPROTOOPT,
        /// A value too short, out of range or malformed, a change Linux refuses
        /// (`IPV6_V6ONLY` once bound, a raw ICMPv6 socket's checksum), or a
        /// membership request that does not fit the socket's (`EINVAL`).
        Invalid => EINVAL,
        /// A timeout whose microseconds are not below a second (`EDOM`).
        BadTimeout => EDOM,
        /// An option that needs `CAP_NET_ADMIN` (`SO_*BUFFORCE`, `SO_MARK`,
        /// `IP_TRANSPARENT`, a `SO_PRIORITY` above 6) (`EPERM`).
        NotPermitted => EPERM,
        /// `SO_DEBUG` on, which needs `CAP_NET_ADMIN` (`EACCES`).
        Denied => EACCES,
        /// No interface of that name or index, or (for a multicast membership)
        /// with that address (`ENODEV`).
        NoDevice => ENODEV,
        /// A congestion control algorithm smoltcp does not have (`ENOENT`).
        UnknownAlgorithm => ENOENT,
        /// An option of the wrong socket (`ICMP_FILTER` on a raw socket not of
        /// ICMP), or a value the stack cannot honour (`IPV6_CHECKSUM` offsets)
        /// (`EOPNOTSUPP`).
        NotSupported => EOPNOTSUPP,
        /// `IP_MTU`/`IPV6_MTU` on an unconnected socket (`ENOTCONN`).
        NotConnected => ENOTCONN,
        /// A multicast interface address that is not the container's, a
        /// membership or source that is not there to drop, or a source already
        /// in the list (`EADDRNOTAVAIL`).
        AddrNotAvailable => EADDRNOTAVAIL,
        /// A group joined twice (`EADDRINUSE`).
        AddrInUse => EADDRINUSE,
        /// Beyond Linux's limits on memberships or sources per socket, or
        /// smoltcp's on groups per interface (`ENOBUFS`).
        NoBuffers => ENOBUFS,
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

/// An address the program passed fails the call that got it.
macro_rules! from_addr_error {
    ($($to:ident),*) => {$(
        impl From<AddrError> for $to {
            fn from(e: AddrError) -> $to {
                match e {
                    AddrError::BadLength => $to::BadLength,
                    AddrError::WrongFamily => $to::WrongFamily,
                }
            }
        }
    )*};
}
from_addr_error!(BindError, ConnectError, SendError);
