//! netcell's per-container network stack.
//!
//! Every container gets its own userspace TCP/IP stack: its own loopback, its own
//! addresses and routes on its own L2 device (a TAP), and sockets isolated from the
//! host's and from every other container's. Programs in the container keep using
//! the BSD socket API; a shim (the `LD_PRELOAD` library or the seccomp supervisor of
//! the `netcell` binary) turns each INET socket into a *stand-in* fd and forwards the
//! control calls to this crate.
//!
//! # Layers, bottom up
//!
//! | module | owns |
//! |---|---|
//! | [`device`] | frames in and out: TAP, loopback, in-memory pipe |
//! | [`iface`] | smoltcp interfaces `lo` and `eth0`, routes, the ingress hook |
//! | [`socket`] | BSD semantics: ports, backlog, connect, errno, options |
//! | [`standin`] | the fds programs hold, and the pump between them and smoltcp |
//! | [`stack`] | one container's stack and its poll loop; the embedding API |
//! | [`control`] | the socket service and the control server for the shims |
//! | [`runtime`] | the `mio` event loop of a stack process |
//! | [`netlink`] | the container's own rtnetlink: `ip` and `getifaddrs` on its interfaces |
//! | [`publish`] | published ports: host listeners whose connections the container's listeners accept |
//! | [`uplink`] | the way out through host sockets: TCP handed over, UDP and ping relayed |
//!
//! A packet from the TAP goes `device` → `iface` (ingress hook, then smoltcp) →
//! smoltcp socket → `standin` pump → the program's fd. A program's `connect()` goes
//! shim → `control` → `socket` → smoltcp.
//!
//! # Embedding
//!
//! ```
//! use netcell_stack::{Stack, SocketConfig, device::PipeDevice, socket::Domain};
//! let mut stack: Stack<PipeDevice> = Stack::new(None, SocketConfig::default()).unwrap();
//! let l = stack.tcp_socket(Domain::Inet).unwrap();
//! stack.bind(l, "127.0.0.1:8080".parse().unwrap()).unwrap();
//! stack.listen(l, 16).unwrap();
//! let c = stack.tcp_socket(Domain::Inet).unwrap();
//! let _ = stack.connect(c, "127.0.0.1:8080".parse().unwrap()); // EINPROGRESS
//! while !stack.is_connected(c) { stack.poll(); }
//! stack.send(c, b"hello").unwrap();
//! let (s, _peer) = loop { stack.poll(); if let Ok(a) = stack.accept(l) { break a } };
//! let mut buf = [0u8; 5];
//! loop { stack.poll(); if stack.recv(s, &mut buf) == Ok(5) { break } }
//! assert_eq!(&buf, b"hello");
//! ```
//!
//! See `examples/` for two stacks joined by a [`device::PipeDevice`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// `log::warn!` for what a container's programs can cause as often as they
/// like (a refused connection, a failed host socket): the first five of each
/// call site, then every thousandth, with its count. A line per occurrence
/// would let a program flood netcell's log, and a netcell whose stderr is a
/// full pipe stops serving while it waits to write.
#[macro_export]
macro_rules! warn_limited {
    ($($arg:tt)+) => {{
        static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if n <= 5 || n.is_multiple_of(1000) {
            $crate::__log::warn!("{} (occurrence {n})", format_args!($($arg)+));
        }
    }};
}

#[doc(hidden)]
pub use log as __log;

pub mod capture;
pub mod control;
pub mod device;
pub mod filter;
pub mod iface;
pub mod netlink;
pub mod packet;
pub mod publish;
pub mod runtime;
pub mod socket;
pub mod stack;
pub mod standin;
#[cfg(test)]
mod testing;
pub mod uplink;
use netcell_sys as sys;

pub use iface::{ConfigError, EthConfig};
pub use socket::{SocketConfig, SocketId};
pub use stack::Stack;
