//! `lo`: an IP-medium device that reads back what it writes.
//!
//! Unlike `smoltcp::phy::Loopback`, which allocates a `Vec` per packet, frames live in
//! recycled buffers. Checksums are neither computed nor verified: both ends are this
//! stack, and Linux's `lo` skips them too.
//!
//! smoltcp writes the reply to a received packet (a SYN-ACK, an RST, an ACK) through
//! the transmit token handed out with it, *while* the receive token's closure runs;
//! so both tokens reach the queue through a `RefCell`, and neither holds the borrow
//! across smoltcp's closure.

use super::DeviceStats;
use super::queue::{Frame, FrameQueue};
use smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use std::cell::RefCell;

/// The largest IP packet on `lo` (Linux's `lo` MTU is 65536; IPv4 caps a packet at 65535).
pub const LOOPBACK_MTU: usize = 65535;

struct Inner {
    queue: FrameQueue,
    stats: DeviceStats,
}

/// The loopback device.
pub struct LoopbackDevice {
    inner: RefCell<Inner>,
}

impl Default for LoopbackDevice {
    fn default() -> Self {
        Self::new()
    }
}

impl LoopbackDevice {
    /// A loopback device holding up to 4096 packets in flight.
    pub fn new() -> Self {
        LoopbackDevice {
            inner: RefCell::new(Inner {
                queue: FrameQueue::new(LOOPBACK_MTU, 4096),
                stats: DeviceStats::default(),
            }),
        }
    }

    /// Whether packets are waiting to be read back.
    pub fn has_pending(&self) -> bool {
        !self.inner.borrow().queue.is_empty()
    }

    /// Counters.
    pub fn stats(&self) -> DeviceStats {
        let i = self.inner.borrow();
        DeviceStats {
            tx_errors: i.queue.dropped,
            ..i.stats
        }
    }
}

/// Receive token of [`LoopbackDevice`].
pub struct LoRx<'a> {
    frame: Frame,
    inner: &'a RefCell<Inner>,
}

/// Transmit token of [`LoopbackDevice`].
pub struct LoTx<'a> {
    inner: &'a RefCell<Inner>,
}

impl Device for LoopbackDevice {
    type RxToken<'a> = LoRx<'a>;
    type TxToken<'a> = LoTx<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(LoRx<'_>, LoTx<'_>)> {
        let frame = self.inner.get_mut().queue.pop()?;
        Some((
            LoRx {
                frame,
                inner: &self.inner,
            },
            LoTx { inner: &self.inner },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<LoTx<'_>> {
        Some(LoTx { inner: &self.inner })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = LOOPBACK_MTU;
        caps.checksum = ChecksumCapabilities::ignored();
        caps
    }
}

impl phy::RxToken for LoRx<'_> {
    fn meta(&self) -> phy::PacketMeta {
        crate::iface::egress::IpFields::of_frame(Medium::Ip, self.frame.bytes()).rx_meta()
    }

    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let r = f(self.frame.bytes());
        let mut i = self.inner.borrow_mut();
        i.stats.rx_frames += 1;
        i.stats.rx_bytes += self.frame.bytes().len() as u64;
        i.queue.recycle(self.frame);
        r
    }
}

impl phy::TxToken for LoTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut i = self.inner.borrow_mut();
        i.stats.tx_frames += 1;
        i.stats.tx_bytes += len as u64;
        i.queue.push_with(len, f)
    }
}
