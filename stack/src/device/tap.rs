//! `eth0`: a Linux TAP device (`/dev/net/tun`, `IFF_TAP | IFF_NO_PI`).
//!
//! The device attaches to an existing TAP by name (a persistent one made with
//! `ip tuntap add ... user $USER` needs no privilege) or creates one, which needs
//! `CAP_NET_ADMIN` and disappears when the stack closes it. Or it adopts a
//! descriptor already attached by someone else ([`TapDevice::adopt`]): a privileged
//! helper can open the device and hand it over, where `/dev/net/tun` is closed to
//! the user. It is non-blocking:
//! `receive` returns `None` when the kernel has nothing queued, so the event loop
//! drains it until then and sleeps on its fd. One `read(2)`/`write(2)` per frame
//! into buffers allocated once.
//!
//! Receive offload: opened with `IFF_VNET_HDR` and `TUNSETOFFLOAD` (TSO4/6 and
//! checksum), the kernel side hands over a TCP segment of up to 64 KiB in one
//! frame, behind a `virtio_net_hdr`, instead of one frame per MTU: one `read` and
//! one pass through smoltcp where there were up to 44 (peer → container at MTU 1500:
//! 2.4 → 4.8 Gbit/s). Such frames may carry a partial checksum (pseudo-header only,
//! `NEEDS_CSUM`); with verification on, it is completed before smoltcp sees the
//! frame. Frames we send carry a zeroed header (no offload asked for).
//!
//! Checksums: smoltcp always computes them on transmit. On receive smoltcp does
//! not verify them by default (it costs 15–27% of throughput at large MTUs):
//! frames the kernel vouches for in their `virtio_net_hdr` (`NEEDS_CSUM`: built
//! in this machine; `DATA_VALID`: checked already) pass unchecked, every other
//! frame — all of them without offload — is checked by [`super::checksum`] and
//! dropped if a checksum does not hold. [`TapConfig::verify_rx_checksums`] has
//! smoltcp verify every frame instead.

use super::offload::{
    Batch, DATA_VALID, ETH, MAX_GSO_IP, NEEDS_CSUM, Segment, finish_partial_checksum,
};
use super::{DeviceStats, log_rate_limited};
use crate::sys;
use smoltcp::phy::{self, Checksum, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

/// The largest MTU a TAP device takes (Linux's limit for tun/tap is 65535 minus
/// headers; 65520 is what the peers use).
pub const MAX_TAP_MTU: usize = 65520;
/// The smallest MTU IPv4 allows.
pub const MIN_TAP_MTU: usize = 68;
const ETH_HEADER: usize = 14;
/// Frames with a bad checksum one `receive` drops at most before it returns.
const MAX_DROPS_PER_RECEIVE: usize = 64;

/// How to open a TAP device.
#[derive(Clone, Debug)]
pub struct TapConfig {
    /// The interface name, at most 15 bytes.
    pub name: String,
    /// The IP MTU, `MIN_TAP_MTU..=MAX_TAP_MTU` (68..=65520).
    pub mtu: usize,
    /// Verify checksums of received frames (see the module docs).
    pub verify_rx_checksums: bool,
    /// Take large TCP segments from the kernel in one frame (`IFF_VNET_HDR` with
    /// TSO offload; see the module docs).
    pub offload: bool,
    /// The kernel side's queue of frames for netcell (the device's `txqueuelen`)
    /// is raised to at least this many by [`TapDevice::open`]; 0 leaves it as it
    /// is. A descriptor handed over ([`TapDevice::adopt`]) keeps the queue its
    /// owner gave the device, and so does a device the attach refuses (another
    /// kind, another reader's). See [`DEFAULT_TAP_QUEUE`].
    pub queue_len: usize,
}

/// The queue of frames from the kernel to the stack that a TAP gets by default
/// ([`TapConfig::queue_len`]). The kernel drops a frame for the TAP when its queue
/// is full (the device's `TX dropped`), and a sender's TCP then waits for a
/// retransmission timeout (200 ms and more). Linux makes a TAP's queue 1000
/// frames (500 on older kernels) — too few for a container with many
/// connections: one echo on each of 10 000 held ones came back as 10 000
/// segments faster than the stack took them, 11 857 were dropped, and an echo
/// per connection took 41 µs instead of 23 µs. A frame waits there in kernel
/// memory charged to nobody, at most a 64 KiB segment or merged datagrams with
/// offload: 4096 of them hold at most 256 MiB (1000 held 64 MiB). A TCP peer
/// sends no more than the windows the container's stack offers; a UDP sender
/// (another container on the same `--net`, say) can keep the queue full while
/// the stack is slow or stopped, and then the queue's length is the bound. The
/// raised length stays on a device that outlives netcell (a persistent TAP).
pub const DEFAULT_TAP_QUEUE: usize = 4096;

/// The longest TAP queue [`TapConfig::queue_len`] may ask for: at most 4 GiB of
/// frames waiting.
pub const MAX_TAP_QUEUE: usize = 1 << 16;

impl TapConfig {
    /// A configuration with MTU 1500 and no receive checksum verification.
    pub fn new(name: impl Into<String>) -> Self {
        TapConfig {
            name: name.into(),
            mtu: 1500,
            verify_rx_checksums: false,
            offload: true,
            queue_len: DEFAULT_TAP_QUEUE,
        }
    }
}

/// Raises the kernel side's queue of frames for the stack on TAP `name` to `want`
/// if it is shorter (never shortens one its owner made longer). Failing is not
/// fatal: the device works with the queue it has; the warning to log is
/// returned (only once the device is attached: a failed attach says more).
fn raise_queue(name: &str, want: usize) -> Option<String> {
    match sys::if_tx_queue_len(name) {
        Ok(have) if have < want => match sys::set_if_tx_queue_len(name, want) {
            Ok(()) => {
                log::debug!("{name}: queue of frames for netcell raised from {have} to {want}");
                None
            }
            Err(e) => Some(format!(
                "{name}: the kernel queues at most {have} frames for netcell and raising it to \
                 {want} failed ({e}); a burst of more frames toward the container is dropped (and TCP \
                 resends it late) (as root: ip link set {name} txqueuelen {want}; --tap-queue 0 \
                 leaves the queue as it is)"
            )),
        },
        Ok(_) => None,
        Err(e) => {
            log::debug!("{name}: cannot read the kernel side's queue length: {e}");
            None
        }
    }
}

/// Why a TAP device could not be opened.
#[derive(Debug)]
pub enum TapError {
    /// The name is empty, too long, or has characters Linux rejects.
    BadName(String),
    /// The MTU is out of range.
    BadMtu(usize),
    /// `/dev/net/tun` did not open (its mode, a policy, a missing module).
    Node(io::Error),
    /// Attaching to (or creating) the device failed.
    Open {
        /// The interface.
        name: String,
        /// Whether the interface existed before.
        existed: bool,
        /// The OS error.
        source: io::Error,
    },
    /// Setting non-blocking mode failed.
    NonBlocking(io::Error),
    /// An inherited descriptor is not an attached TAP device.
    Adopt(io::Error),
}

impl fmt::Display for TapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TapError::BadName(n) => write!(
                f,
                "bad TAP name {n:?}: use 1 to 15 characters, no '/', ':' or whitespace"
            ),
            TapError::BadMtu(m) => write!(f, "MTU {m} out of range {MIN_TAP_MTU}..={MAX_TAP_MTU}"),
            TapError::Open {
                name,
                existed,
                source,
            } => {
                write!(f, "cannot open TAP device {name:?}: {source}")?;
                match (source.raw_os_error(), existed) {
                    (Some(libc::EPERM) | Some(libc::EACCES), false) => write!(
                        f,
                        "; creating a TAP device needs CAP_NET_ADMIN. Create it beforehand \
                         (as root: `ip tuntap add dev {name} mode tap user $(id -un)`) and \
                         netcell will attach to it without privileges"
                    ),
                    (Some(libc::EPERM) | Some(libc::EACCES), true) => write!(
                        f,
                        "; the device exists but is not yours: recreate it with \
                         `ip tuntap add dev {name} mode tap user $(id -un)`"
                    ),
                    (Some(libc::EBUSY), _) => write!(f, "; another process holds it open"),
                    (Some(libc::EINVAL), true) => {
                        write!(f, "; {name} exists and is not a TAP device")
                    }
                    _ => Ok(()),
                }
            }
            TapError::Node(source) => {
                write!(f, "cannot open /dev/net/tun: {source}")?;
                match source.raw_os_error() {
                    Some(libc::EACCES) => write!(
                        f,
                        "; it does not open for your user: ask root for `chmod 0666 \
                         /dev/net/tun` (the mode most distributions ship; the kernel still \
                         lets a user attach only to TAP devices made for them), and check that \
                         /dev is not mounted nodev"
                    ),
                    Some(libc::EPERM) => {
                        write!(f, "; a device cgroup or a security policy refuses it")
                    }
                    Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ENXIO) => {
                        write!(f, "; the tun module is missing (as root: modprobe tun)")
                    }
                    _ => Ok(()),
                }
            }
            TapError::NonBlocking(e) => write!(f, "cannot make the TAP device non-blocking: {e}"),
            TapError::Adopt(e) => write!(f, "cannot use the inherited TAP descriptor: {e}"),
        }
    }
}

impl std::error::Error for TapError {}

/// Checks a Linux interface name.
pub(crate) fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0)
}

/// A TAP device.
pub struct TapDevice {
    fd: OwnedFd,
    name: String,
    /// Bytes of `virtio_net_hdr` before each frame (0 without offload).
    vnet: usize,
    /// TCP segments being merged into one large frame (see [`TapDevice::flush`]).
    batch: Batch,
    mtu: usize,
    rx: Box<[u8]>,
    tx: Box<[u8]>,
    stats: DeviceStats,
    created: bool,
    verify_rx: bool,
    /// The last `receive` gave up with frames perhaps still queued (see
    /// [`TapDevice::has_pending`]).
    maybe_more: bool,
}

impl TapDevice {
    /// Attaches to the TAP device `cfg.name`, creating it if it does not exist.
    pub fn open(cfg: &TapConfig) -> Result<TapDevice, TapError> {
        if !valid_ifname(&cfg.name) {
            return Err(TapError::BadName(cfg.name.clone()));
        }
        if !(MIN_TAP_MTU..=MAX_TAP_MTU).contains(&cfg.mtu) {
            return Err(TapError::BadMtu(cfg.mtu));
        }
        let existed = sys::if_index(&cfg.name).is_some();
        // The queue of an existing device is raised before attaching, while it
        // has no carrier: raised after, the kernel's reactivation of its queue
        // made the pending carrier-on event lose its urgency, and a bridge
        // then enabled the port up to a second late — the container's first
        // multicast reports went unheard and its groups unforwarded. And only
        // a TAP nobody reads from: not a device the attach would refuse
        // (another kind, another reader's), whose queue would be restarted
        // under its traffic.
        let want = cfg.queue_len.min(MAX_TAP_QUEUE);
        let mut unraised = (existed && want > 0 && sys::is_idle_tap(&cfg.name).unwrap_or(false))
            .then(|| raise_queue(&cfg.name, want))
            .flatten();
        let attach = |vnet| {
            sys::tap_attach(sys::open_tun().map_err(TapError::Node)?, &cfg.name, vnet).map_err(
                |source| TapError::Open {
                    name: cfg.name.clone(),
                    existed,
                    source,
                },
            )
        };
        let opened = match attach(cfg.offload) {
            // A kernel without the offloads: plain frames.
            Err(TapError::Open { source, .. })
                if cfg.offload && source.raw_os_error() == Some(libc::EINVAL) =>
            {
                attach(false).map(|(f, n)| (f, n, false))
            }
            r => r.map(|(f, n)| (f, n, cfg.offload)),
        };
        let (fd, name, vnet) = opened?;
        // A device made just now is down: its queue changes without more ado
        // (one another process made and brought up meanwhile is left alone).
        if !existed && want > 0 && sys::if_is_up(&name).ok() == Some(false) {
            unraised = raise_queue(&name, want);
        }
        if let Some(warning) = unraised {
            log::warn!("{warning}");
        }
        Self::finish(fd, name, cfg, !existed, vnet)
    }

    /// Takes over the inherited descriptor `raw`, already attached to a TAP device;
    /// `cfg.name` is ignored (the device's own name is used).
    pub fn adopt(raw: RawFd, cfg: &TapConfig) -> Result<TapDevice, TapError> {
        if !(MIN_TAP_MTU..=MAX_TAP_MTU).contains(&cfg.mtu) {
            return Err(TapError::BadMtu(cfg.mtu));
        }
        let (fd, name, vnet) = sys::tap_adopt(raw).map_err(TapError::Adopt)?;
        Self::finish(fd, name, cfg, false, vnet)
    }

    fn finish(
        fd: OwnedFd,
        name: String,
        cfg: &TapConfig,
        created: bool,
        vnet: bool,
    ) -> Result<TapDevice, TapError> {
        sys::set_nonblocking(fd.as_fd(), true).map_err(TapError::NonBlocking)?;
        match sys::if_mtu(&name) {
            Ok(kernel_mtu) if kernel_mtu != cfg.mtu => {
                if let Err(e) = sys::set_if_mtu(&name, cfg.mtu) {
                    log::warn!(
                        "{name}: kernel side has MTU {kernel_mtu}, netcell uses {}; could not align it ({e}); \
                         frames larger than the smaller MTU will be lost",
                        cfg.mtu
                    );
                }
            }
            Ok(_) => {}
            // Adopted from another network namespace: the name means nothing here.
            Err(e) => log::debug!("{name}: cannot read the kernel side's MTU: {e}"),
        }
        log::info!(
            "{name}: {} TAP device, MTU {}{}",
            if created {
                "created"
            } else {
                "attached to existing"
            },
            cfg.mtu,
            if vnet { ", TSO receive offload" } else { "" }
        );
        let vnet = if vnet { sys::VNET_HDR_LEN } else { 0 };
        // Frames from the kernel can be as large as the kernel side's MTU, which its
        // owner may raise, or a 64 KiB segment with offload: size the receive buffer
        // for the largest possible frame.
        let rx = vec![0u8; vnet + 65535 + ETH_HEADER + 64].into_boxed_slice();
        // Sent frames follow a zeroed virtio header (no offload asked for).
        let tx = vec![0u8; vnet + cfg.mtu + ETH_HEADER].into_boxed_slice();
        Ok(TapDevice {
            fd,
            name,
            batch: Batch::new(vnet),
            vnet,
            mtu: cfg.mtu,
            rx,
            tx,
            stats: DeviceStats::default(),
            maybe_more: false,
            created,
            verify_rx: cfg.verify_rx_checksums,
        })
    }

    /// Merges consecutive TCP segments of one connection (and same-sized UDP
    /// datagrams of one flow) into one large frame for
    /// the kernel to take as a whole (a GSO frame; needs the virtio header, so only
    /// with offload). The caller must then call [`TapDevice::flush`] after each round
    /// of polling, before it sleeps: the event loop does ([`crate::runtime`]).
    pub fn set_tx_coalescing(&mut self, on: bool) {
        self.batch.enabled = on && self.vnet > 0;
        if !on {
            self.flush();
        }
    }

    /// Writes the frame being merged, if any.
    pub fn flush(&mut self) {
        self.batch.flush(&self.fd, &self.name, &mut self.stats);
    }

    /// The interface's name as the kernel knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The IP MTU.
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// Whether this device was created by us (and so disappears when dropped).
    pub fn created(&self) -> bool {
        self.created
    }

    /// Whether frames may wait that no readiness event will announce: the last
    /// `receive` stopped after dropping 64 frames for their checksums, or at a
    /// frame shorter than its header. The fd is watched edge-triggered, so the
    /// event loop must look again before it sleeps (a burst of bad frames left
    /// good ones queued behind it until the next frame arrived).
    pub fn has_pending(&self) -> bool {
        self.maybe_more
    }

    /// Counters.
    pub fn stats(&self) -> DeviceStats {
        self.stats
    }
}

impl AsRawFd for TapDevice {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Receive token of [`TapDevice`].
pub struct TapRx<'a> {
    frame: &'a [u8],
}

/// Transmit token of [`TapDevice`].
pub struct TapTx<'a> {
    fd: &'a OwnedFd,
    name: &'a str,
    vnet: usize,
    batch: &'a mut Batch,
    buf: &'a mut [u8],
    stats: &'a mut DeviceStats,
}

impl Device for TapDevice {
    type RxToken<'a> = TapRx<'a>;
    type TxToken<'a> = TapTx<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(TapRx<'_>, TapTx<'_>)> {
        // Frames dropped for their checksum before one is handed over: a
        // flood of them must not keep this call from returning (the event loop
        // comes back: `has_pending`).
        let mut dropped = 0;
        self.maybe_more = false;
        let (v, n) = loop {
            if dropped == MAX_DROPS_PER_RECEIVE {
                self.maybe_more = true;
                return None;
            }
            match sys::read(self.fd.as_fd(), &mut self.rx) {
                Ok(n) if n < self.vnet => {
                    self.stats.rx_errors += 1;
                    self.maybe_more = true;
                    return None;
                }
                Ok(n) => {
                    let v = self.vnet;
                    if v > 0 && self.verify_rx {
                        finish_partial_checksum(&mut self.rx[..n]);
                    }
                    self.stats.rx_frames += 1;
                    self.stats.rx_bytes += (n - v) as u64;
                    // What the kernel did not vouch for is checked here (see
                    // `super::checksum`); smoltcp checks all with `verify_rx`.
                    let vouched = v > 0 && self.rx[0] & (NEEDS_CSUM | DATA_VALID) != 0;
                    if !self.verify_rx && !vouched && !super::checksum::holds(&self.rx[v..n]) {
                        self.stats.rx_errors += 1;
                        self.stats.rx_bad_checksums += 1;
                        log_rate_limited(
                            self.stats.rx_bad_checksums,
                            &self.name,
                            &"frame dropped: a checksum the kernel had not vouched for does not hold",
                        );
                        dropped += 1;
                        continue;
                    }
                    break (v, n);
                }
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::Interrupted =>
                {
                    return None;
                }
                Err(e) => {
                    self.stats.rx_errors += 1;
                    log_rate_limited(self.stats.rx_errors, &format!("{}: read", self.name), &e);
                    return None;
                }
            }
        };
        Some((
            TapRx {
                frame: &self.rx[v..n],
            },
            TapTx {
                fd: &self.fd,
                name: &self.name,
                vnet: self.vnet,
                batch: &mut self.batch,
                buf: &mut self.tx,
                stats: &mut self.stats,
            },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TapTx<'_>> {
        Some(TapTx {
            fd: &self.fd,
            name: &self.name,
            vnet: self.vnet,
            batch: &mut self.batch,
            buf: &mut self.tx,
            stats: &mut self.stats,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.mtu + ETH_HEADER;
        let mut cs = ChecksumCapabilities::default();
        if !self.verify_rx {
            cs.ipv4 = Checksum::Tx;
            cs.udp = Checksum::Tx;
            cs.tcp = Checksum::Tx;
            cs.icmpv4 = Checksum::Tx;
            cs.icmpv6 = Checksum::Tx;
        }
        caps.checksum = cs;
        caps
    }
}

impl phy::RxToken for TapRx<'_> {
    fn meta(&self) -> phy::PacketMeta {
        crate::iface::egress::IpFields::of_frame(Medium::Ethernet, self.frame).rx_meta()
    }

    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.frame)
    }
}

impl phy::TxToken for TapTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        // smoltcp never asks for more than the MTU we advertise; if it ever did, the
        // frame is built in a scratch buffer and dropped rather than truncated.
        let v = self.vnet;
        if v + len > self.buf.len() {
            let mut scratch = vec![0u8; len];
            let r = f(&mut scratch);
            self.stats.tx_errors += 1;
            log_rate_limited(self.stats.tx_errors, "tap: oversize frame dropped", &len);
            return r;
        }
        let r = f(&mut self.buf[v..v + len]);
        if self.batch.enabled {
            let frame = &self.buf[v..v + len];
            // Segments too large for two to fit one frame go out as they are (no copy).
            let seg = Segment::parse(frame)
                .filter(|s| s.data + 2 * (frame.len() - s.data) <= ETH + MAX_GSO_IP)
                .filter(|s| !s.udp || self.batch.udp_ok);
            if let Some(seg) = seg {
                if !self.batch.append(frame, &seg) {
                    self.batch.flush(self.fd, self.name, self.stats);
                    self.batch.start(frame, &seg);
                }
                return r;
            }
            // Anything else must not overtake the merged segments.
            self.batch.flush(self.fd, self.name, self.stats);
        }
        match sys::write(self.fd.as_fd(), &self.buf[..v + len]) {
            Ok(_) => {
                self.stats.tx_frames += 1;
                self.stats.tx_bytes += len as u64;
            }
            Err(e) => {
                // EIO while the kernel side is down, ENOBUFS/EAGAIN when its queue is
                // full: the frame is lost, as on a real link; TCP recovers it.
                self.stats.tx_errors += 1;
                log_rate_limited(self.stats.tx_errors, &format!("{}: write", self.name), &e);
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_error(errno: i32, existed: bool) -> String {
        TapError::Open {
            name: "tap0".into(),
            existed,
            source: io::Error::from_raw_os_error(errno),
        }
        .to_string()
    }

    /// Each way an attach fails says what to do about that way: the device
    /// node's mode (`open` refused), a device of another user, no right to
    /// create one.
    #[test]
    fn a_failed_open_says_what_to_do() {
        let node = |errno| TapError::Node(io::Error::from_raw_os_error(errno)).to_string();
        let e = node(libc::EACCES);
        assert!(e.contains("chmod 0666 /dev/net/tun"), "{e}");
        assert!(!e.contains("not yours"), "{e}");
        assert!(node(libc::EPERM).contains("device cgroup"));
        assert!(node(libc::ENOENT).contains("modprobe tun"));
        for errno in [libc::EPERM, libc::EACCES] {
            let e = open_error(errno, true);
            assert!(e.contains("exists but is not yours"), "{e}");
            assert!(!e.contains("chmod"), "{e}");
            let e = open_error(errno, false);
            assert!(e.contains("needs CAP_NET_ADMIN"), "{e}");
        }
        assert!(open_error(libc::EBUSY, true).contains("another process holds it"));
    }
}
