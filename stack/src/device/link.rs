//! [`Link`]: the device under a `netcell run` container's `eth0`, one of two
//! kinds chosen at start — a TAP (frames on a real L2 link) or the host uplink
//! (packets carried by host sockets). One type, so that the event loop and the
//! stack are built once for both.

use super::DeviceStats;
use super::tap::{TapDevice, TapRx, TapTx};
use crate::uplink::UplinkDevice;
use crate::uplink::{UplinkRx, UplinkTx};
use smoltcp::phy::{self, Device, DeviceCapabilities};
use smoltcp::time::Instant;
use std::os::fd::{AsRawFd, RawFd};

/// A TAP or the host uplink. (The uplink's state sits behind a `RefCell` and
/// the TAP's buffers on the heap; the size difference is the TAP's few fields.)
#[allow(clippy::large_enum_variant)]
pub enum Link {
    /// A TAP device.
    Tap(TapDevice),
    /// The host uplink.
    Uplink(UplinkDevice),
}

impl Link {
    /// Frame counters.
    pub fn stats(&self) -> DeviceStats {
        match self {
            Link::Tap(t) => t.stats(),
            Link::Uplink(u) => u.stats(),
        }
    }

    /// Whether received packets wait (the loop must poll again before sleeping).
    pub fn has_pending(&self) -> bool {
        match self {
            Link::Tap(t) => t.has_pending(),
            Link::Uplink(u) => u.has_pending(),
        }
    }

    /// An event loop watches the device's fd from now on and calls
    /// [`Link::readable`] when it turns readable.
    pub fn set_watched(&mut self) {
        if let Link::Uplink(u) = self {
            u.set_watched();
        }
    }

    /// The event loop saw the device's fd readable.
    pub fn readable(&mut self) {
        if let Link::Uplink(u) = self {
            u.readable();
        }
    }

    /// Writes out what the device batched (the TAP's merged segments).
    pub fn flush(&mut self) {
        if let Link::Tap(t) = self {
            t.flush();
        }
    }
}

impl AsRawFd for Link {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Link::Tap(t) => t.as_raw_fd(),
            Link::Uplink(u) => u.as_raw_fd(),
        }
    }
}

/// Receive token of [`Link`].
pub enum LinkRx<'a> {
    /// A TAP's.
    Tap(TapRx<'a>),
    /// The uplink's.
    Uplink(UplinkRx<'a>),
}

/// Transmit token of [`Link`].
pub enum LinkTx<'a> {
    /// A TAP's.
    Tap(TapTx<'a>),
    /// The uplink's.
    Uplink(UplinkTx<'a>),
}

impl Device for Link {
    type RxToken<'a> = LinkRx<'a>;
    type TxToken<'a> = LinkTx<'a>;

    fn receive(&mut self, now: Instant) -> Option<(LinkRx<'_>, LinkTx<'_>)> {
        match self {
            Link::Tap(t) => t
                .receive(now)
                .map(|(r, t)| (LinkRx::Tap(r), LinkTx::Tap(t))),
            Link::Uplink(u) => u
                .receive(now)
                .map(|(r, t)| (LinkRx::Uplink(r), LinkTx::Uplink(t))),
        }
    }

    fn transmit(&mut self, now: Instant) -> Option<LinkTx<'_>> {
        match self {
            Link::Tap(t) => t.transmit(now).map(LinkTx::Tap),
            Link::Uplink(u) => u.transmit(now).map(LinkTx::Uplink),
        }
    }

    fn capabilities(&self) -> DeviceCapabilities {
        match self {
            Link::Tap(t) => t.capabilities(),
            Link::Uplink(u) => u.capabilities(),
        }
    }
}

impl phy::RxToken for LinkRx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        match self {
            LinkRx::Tap(t) => t.consume(f),
            LinkRx::Uplink(u) => u.consume(f),
        }
    }

    fn meta(&self) -> phy::PacketMeta {
        match self {
            LinkRx::Tap(t) => t.meta(),
            LinkRx::Uplink(u) => u.meta(),
        }
    }
}

impl phy::TxToken for LinkTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        match self {
            LinkTx::Tap(t) => t.consume(len, f),
            LinkTx::Uplink(u) => u.consume(len, f),
        }
    }

    fn set_meta(&mut self, meta: phy::PacketMeta) {
        match self {
            LinkTx::Tap(t) => t.set_meta(meta),
            LinkTx::Uplink(u) => u.set_meta(meta),
        }
    }
}
