//! An Ethernet segment in memory between two devices, for tests and for embedding.
//!
//! [`PipeDevice::pair`] returns two ends; what one transmits the other receives, in
//! order, up to a bound of queued frames (beyond it frames are dropped, as a full NIC
//! ring drops). The ends are `Send`, so the two stacks may run on different threads.

use super::DeviceStats;
use super::queue::FrameQueue;
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use std::sync::{Arc, Mutex, MutexGuard};

/// One end of an in-memory Ethernet link.
pub struct PipeDevice {
    rx: Arc<Mutex<FrameQueue>>,
    tx: Arc<Mutex<FrameQueue>>,
    mtu: usize,
    stats: DeviceStats,
}

fn lock(q: &Mutex<FrameQueue>) -> MutexGuard<'_, FrameQueue> {
    // A panic while holding the lock cannot leave a FrameQueue inconsistent.
    q.lock().unwrap_or_else(|e| e.into_inner())
}

impl PipeDevice {
    /// Two connected ends with the given IP MTU (the Ethernet header comes on top).
    pub fn pair(mtu: usize) -> (PipeDevice, PipeDevice) {
        let frame = mtu + 14;
        let a = Arc::new(Mutex::new(FrameQueue::new(frame, 1024)));
        let b = Arc::new(Mutex::new(FrameQueue::new(frame, 1024)));
        let end = |rx: &Arc<_>, tx: &Arc<_>| PipeDevice {
            rx: Arc::clone(rx),
            tx: Arc::clone(tx),
            mtu,
            stats: DeviceStats::default(),
        };
        (end(&a, &b), end(&b, &a))
    }

    /// Whether frames are waiting to be received on this end.
    pub fn has_pending(&self) -> bool {
        !lock(&self.rx).is_empty()
    }

    /// Counters of this end.
    pub fn stats(&self) -> DeviceStats {
        DeviceStats {
            tx_errors: lock(&self.tx).dropped,
            ..self.stats
        }
    }
}

/// Receive token of [`PipeDevice`].
pub struct PipeRx<'a> {
    frame: super::queue::Frame,
    queue: &'a Mutex<FrameQueue>,
}

/// Transmit token of [`PipeDevice`].
pub struct PipeTx<'a> {
    queue: &'a Mutex<FrameQueue>,
    stats: &'a mut DeviceStats,
}

impl Device for PipeDevice {
    type RxToken<'a> = PipeRx<'a>;
    type TxToken<'a> = PipeTx<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(PipeRx<'_>, PipeTx<'_>)> {
        let frame = lock(&self.rx).pop()?;
        self.stats.rx_frames += 1;
        self.stats.rx_bytes += frame.bytes().len() as u64;
        Some((
            PipeRx {
                frame,
                queue: &self.rx,
            },
            PipeTx {
                queue: &self.tx,
                stats: &mut self.stats,
            },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<PipeTx<'_>> {
        Some(PipeTx {
            queue: &self.tx,
            stats: &mut self.stats,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.mtu + 14;
        caps
    }
}

impl phy::RxToken for PipeRx<'_> {
    fn meta(&self) -> phy::PacketMeta {
        crate::iface::egress::IpFields::of_frame(Medium::Ethernet, self.frame.bytes()).rx_meta()
    }

    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let r = f(self.frame.bytes());
        lock(self.queue).recycle(self.frame);
        r
    }
}

impl phy::TxToken for PipeTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        self.stats.tx_frames += 1;
        self.stats.tx_bytes += len as u64;
        lock(self.queue).push_with(len, f)
    }
}
