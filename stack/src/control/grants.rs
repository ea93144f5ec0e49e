//! Grants: datagrams a program may post without waiting for the stack.
//!
//! # Why
//!
//! A `sendto` with an address cannot be native (the stand-in carries no
//! address), so the preload shim asked the stack for each one: a round trip of
//! two wake-ups per datagram, 0.06–0.14× the kernel's rate for a DNS or QUIC
//! server. Most of such a call's answer is known in advance, though: once a
//! datagram from a socket to a destination went out, another to any address that
//! routes the same way ([`crate::iface::Interfaces::grant_block`]) cannot fail
//! either — until a route, address, link, the filter or the socket's own settings
//! change. So the answer to a successful `SendTo` may carry a [`netcell_proto::Grant`]: the
//! block of addresses and the *generation* it holds in. The shim then *posts*
//! later datagrams to that block ([`netcell_proto::Request::Post`]: no reply)
//! while the generation is unchanged, and the stack still checks each one fully
//! (a datagram that fails after all — the socket closed in between — is dropped
//! and counted, not reported).
//!
//! # The generation
//!
//! A counter in a page of shared memory ([`netcell_sys::SharedCounter`]): the
//! stack writes it; every shim process maps it read-only (the `Hello` reply
//! carries it) and reads it before each post, one atomic load. The stack moves
//! it **before it answers** any request that may change what a grant promised —
//! a change of links, addresses or routes ([`crate::iface::Interfaces::changes`],
//! also the ones DHCP and router advertisements make, published at the end of
//! each turn of the event loop), the output filter starting or stopping to look
//! at packets, any `bind`, `connect`, option or `shutdown` of a socket that is
//! not TCP, any packet-filter table call, any netlink request — so a program
//! that changed something and then sends sees the change as Linux would show
//! it. A hostile program gains nothing: the page is read-only to it, and a post
//! is checked like any datagram.
//!
//! # What is ordered
//!
//! Posts travel on a connection of their own per process, in order. A socket's
//! close waits until the control connections were read once after the close was
//! seen (see `Sockets::udp_close_waits`), so datagrams posted just before
//! a `close` or an exit are sent. Posts are not ordered against requests on other
//! connections (a `SendTo` with ancillary data from another thread may overtake
//! them): UDP promises no order.

use netcell_sys::SharedCounter;

/// The grants generation and what it was last moved for.
pub struct Grants {
    counter: Option<SharedCounter>,
    /// (route changes, output filtering) as of the last sync.
    seen: (u64, bool),
}

impl Default for Grants {
    fn default() -> Self {
        let counter = SharedCounter::new("netcell-grants")
            .map_err(|e| log::debug!("grants: no shared page ({e}); every sendto asks"))
            .ok();
        Grants {
            counter,
            seen: (0, false),
        }
    }
}

impl Grants {
    /// Whether grants are handed out (the shared page exists).
    pub fn enabled(&self) -> bool {
        self.counter.is_some()
    }

    /// The current generation.
    pub fn generation(&self) -> u64 {
        self.counter.as_ref().map_or(0, SharedCounter::get)
    }

    /// Moves the generation: every grant handed out so far lapses.
    pub fn invalidate(&mut self) {
        if let Some(c) = &self.counter {
            c.bump();
        }
    }

    /// Moves the generation if routing or the output filter changed since the
    /// last call.
    pub fn sync(&mut self, route_changes: u64, filtering_out: bool) {
        let now = (route_changes, filtering_out);
        if now != self.seen {
            self.seen = now;
            self.invalidate();
        }
    }

    /// The page a shim maps.
    pub fn page(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.counter.as_ref().map(SharedCounter::reader)
    }
}
