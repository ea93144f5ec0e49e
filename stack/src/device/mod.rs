//! Devices: where frames enter and leave a stack.
//!
//! Each device implements smoltcp's [`Device`](smoltcp::phy::Device) trait and nothing
//! else: it moves whole frames, counts them, and never parses them (parsing is the
//! interface layer's job, see [`crate::iface`]).
//!
//! - [`TapDevice`] is a container's L2 device (`eth0`): a Linux TAP (`/dev/net/tun`),
//!   non-blocking, with preallocated buffers. I/O errors are counted
//!   and logged, never panicked on.
//! - [`LoopbackDevice`] is `lo`: frames written are read back in order, from a pool of
//!   reused buffers.
//! - [`Link`] is what a `netcell run` container's `eth0` sits on: a TAP, or the
//!   host uplink ([`crate::uplink::UplinkDevice`]).
//! - [`PipeDevice`] wires two stacks in one process, an Ethernet segment in memory, for
//!   tests and for embedding a stack without a TAP.
//!
//! None of them allocates per frame once warmed up: buffers are recycled.

pub mod checksum;
mod link;
mod loopback;
mod offload;
mod pipe;
pub(crate) mod queue;
mod tap;

pub use link::Link;
pub use loopback::LoopbackDevice;
pub use pipe::PipeDevice;
pub use tap::{DEFAULT_TAP_QUEUE, MAX_TAP_QUEUE, TapConfig, TapDevice, TapError};

/// Frame and error counters of a device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// Frames received.
    pub rx_frames: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames transmitted.
    pub tx_frames: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// Receive errors (other than "nothing to read"), frames dropped for a
    /// checksum that does not hold among them.
    pub rx_errors: u64,
    /// Frames dropped because a checksum the kernel had not vouched for did
    /// not hold (see [`checksum`]).
    pub rx_bad_checksums: u64,
    /// Transmit errors and frames dropped for lack of queue space.
    pub tx_errors: u64,
}

/// Logs the first few occurrences of a recurring error, then one in 1000, so that a
/// misbehaving peer cannot flood the log.
pub(crate) fn log_rate_limited(count: u64, what: &str, err: &dyn std::fmt::Display) {
    if count <= 5 || count.is_multiple_of(1000) {
        log::warn!("{what}: {err} (occurrence {count})");
    }
}
