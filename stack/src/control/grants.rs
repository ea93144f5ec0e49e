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
//! every change of links, addresses or routes moves it as it is made
//! ([`crate::iface::Interfaces::grants`]: netlink requests, DHCP, router
//! advertisements alike); the output filter starting or stopping to look at
//! packets, any `bind`, `connect`, option or `shutdown` of a socket that is not
//! TCP, any packet-filter table call move it before the request's answer — so a
//! program that changed something and then sends sees the change as Linux
//! would show it. A hostile program gains nothing: the page is read-only to it, and a post
//! is checked like any datagram.
//!
//! # What is ordered
//!
//! A post travels on the connection its thread's requests use, so what the
//! thread asks next (a `shutdown`, an option, a datagram that must be asked for
//! because the connection is full) comes after it, in order. Before the
//! program closes a socket it posted on, the shim sends `Closing` on that
//! connection: the posts ahead were served, the close is at once. A socket
//! closed otherwise (an exit, another thread) waits until the control
//! connections were read once after the close was seen (see
//! `Sockets::udp_close_waits`, at most a second), so datagrams posted just
//! before are still sent. Threads of one program are not ordered against each
//! other, as on Linux.

use netcell_sys::SharedCounter;

/// The grants generation.
pub struct Grants {
    counter: Option<SharedCounter>,
    /// Whether the output filter looked at packets as of the last sync.
    filtering: bool,
}

impl Default for Grants {
    fn default() -> Self {
        let counter = SharedCounter::new("netcell-grants")
            .map_err(|e| log::debug!("grants: no shared page ({e}); every sendto asks"))
            .ok();
        Grants {
            counter,
            filtering: false,
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

    /// Moves the generation if the output filter started or stopped looking at
    /// packets since the last call (grants are handed out only while it does
    /// not).
    pub fn sync(&mut self, filtering_out: bool) {
        if filtering_out != self.filtering {
            self.filtering = filtering_out;
            self.invalidate();
        }
    }

    /// The page a shim maps.
    pub fn page(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.counter.as_ref().map(SharedCounter::reader)
    }
}
