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
//! Checksums: smoltcp always computes them on transmit. On receive they are not
//! verified by default, because every frame on a TAP was built in this machine's
//! memory (by the kernel, which checksums what it sends into a TAP without offload
//! negotiation, or by another userspace stack) and verification costs 15–27% of
//! throughput at large MTUs. [`TapConfig::verify_rx_checksums`] turns it on.

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
}

impl TapConfig {
    /// A configuration with MTU 1500 and no receive checksum verification.
    pub fn new(name: impl Into<String>) -> Self {
        TapConfig {
            name: name.into(),
            mtu: 1500,
            verify_rx_checksums: false,
            offload: true,
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
    /// Opening `/dev/net/tun` or attaching failed.
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
                    (Some(libc::ENOENT), _) => {
                        write!(f, "; /dev/net/tun is missing (modprobe tun)")
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
        let opened = match sys::tap_open(&cfg.name, cfg.offload) {
            // A kernel without the offloads: plain frames.
            Err(e) if cfg.offload && e.raw_os_error() == Some(libc::EINVAL) => {
                sys::tap_open(&cfg.name, false).map(|(f, n)| (f, n, false))
            }
            r => r.map(|(f, n)| (f, n, cfg.offload)),
        };
        let (fd, name, vnet) = opened.map_err(|source| TapError::Open {
            name: cfg.name.clone(),
            existed,
            source,
        })?;
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
            created,
            verify_rx: cfg.verify_rx_checksums,
        })
    }

    /// Merges consecutive TCP segments of one connection into one large frame for
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
        match sys::read(self.fd.as_fd(), &mut self.rx) {
            Ok(n) if n < self.vnet => {
                self.stats.rx_errors += 1;
                None
            }
            Ok(n) => {
                let v = self.vnet;
                if v > 0 && self.verify_rx {
                    finish_partial_checksum(&mut self.rx[..n]);
                }
                self.stats.rx_frames += 1;
                self.stats.rx_bytes += (n - v) as u64;
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
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                None
            }
            Err(e) => {
                self.stats.rx_errors += 1;
                log_rate_limited(self.stats.rx_errors, &format!("{}: read", self.name), &e);
                None
            }
        }
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
                .filter(|s| s.data + 2 * (frame.len() - s.data) <= ETH + MAX_GSO_IP);
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

/// A TCP segment that may be merged: IPv4 without options or fragmentation, or IPv6
/// without extension headers; flags ACK or ACK|PSH; some payload.
struct Segment {
    v6: bool,
    /// Offset of the TCP header in the frame.
    l4: usize,
    /// Offset of the payload.
    data: usize,
    seq: u32,
    psh: bool,
}

const ETH: usize = 14;
const TCP_ACK: u8 = 0x10;
const TCP_PSH: u8 = 0x08;
const GSO_TCPV4: u8 = 1;
const GSO_TCPV6: u8 = 4;
/// Largest IP packet a merged frame may describe.
const MAX_GSO_IP: usize = 65535;

impl Segment {
    fn parse(f: &[u8]) -> Option<Segment> {
        if f.len() < ETH + 40 {
            return None;
        }
        let (v6, l4) = match u16::from_be_bytes([f[12], f[13]]) {
            0x0800 => {
                let ip = &f[ETH..];
                // Version 4, no options, TCP, not a fragment (DF is fine).
                if ip[0] != 0x45 || ip[9] != 6 || u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
                    return None;
                }
                if u16::from_be_bytes([ip[2], ip[3]]) as usize != f.len() - ETH {
                    return None;
                }
                (false, ETH + 20)
            }
            0x86dd => {
                let ip = &f[ETH..];
                if ip[0] >> 4 != 6 || ip[6] != 6 {
                    return None;
                }
                if u16::from_be_bytes([ip[4], ip[5]]) as usize != f.len() - ETH - 40 {
                    return None;
                }
                (true, ETH + 40)
            }
            _ => return None,
        };
        let tcp = f.get(l4..l4 + 20)?;
        let data = l4 + (tcp[12] >> 4) as usize * 4;
        let flags = tcp[13];
        if data >= f.len() || flags & !(TCP_ACK | TCP_PSH) != 0 || flags & TCP_ACK == 0 {
            return None;
        }
        Some(Segment {
            v6,
            l4,
            data,
            seq: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
            psh: flags & TCP_PSH != 0,
        })
    }
}

/// Consecutive full-sized TCP segments of one connection, merged into one frame
/// that the kernel takes as one GSO packet (`virtio_net_hdr` with
/// `VIRTIO_NET_HDR_GSO_TCPV4/6`): one `write` and one trip through the kernel's
/// stack for up to 64 KiB, where there were up to 44. The kernel cuts it into
/// segments again only if it forwards it. Segments merge when everything but the
/// sequence number matches (addresses, ports, ACK, window, TCP options) and they are
/// contiguous; a shorter segment or one with PSH ends the frame.
struct Batch {
    enabled: bool,
    /// The virtio header and the frame being built.
    buf: Box<[u8]>,
    vnet: usize,
    /// Bytes used in `buf` (0: nothing pending).
    len: usize,
    segs: usize,
    /// Length of the headers (Ethernet, IP, TCP).
    hdr: usize,
    l4: usize,
    mss: usize,
    next_seq: u32,
    v6: bool,
    closed: bool,
}

impl Batch {
    fn new(vnet: usize) -> Batch {
        Batch {
            enabled: false,
            buf: vec![0u8; vnet + ETH + MAX_GSO_IP].into_boxed_slice(),
            vnet,
            len: 0,
            segs: 0,
            hdr: 0,
            l4: 0,
            mss: 0,
            next_seq: 0,
            v6: false,
            closed: false,
        }
    }

    /// Begins a new frame with `f`.
    fn start(&mut self, f: &[u8], s: &Segment) {
        let v = self.vnet;
        self.buf[v..v + f.len()].copy_from_slice(f);
        self.len = v + f.len();
        self.segs = 1;
        self.hdr = s.data;
        self.l4 = s.l4;
        self.mss = f.len() - s.data;
        self.next_seq = s.seq.wrapping_add(self.mss as u32);
        self.v6 = s.v6;
        self.closed = s.psh;
    }

    /// Adds `f` to the frame if it continues it; false if it does not.
    fn append(&mut self, f: &[u8], s: &Segment) -> bool {
        let v = self.vnet;
        let payload = f.len() - s.data;
        if self.segs == 0
            || self.closed
            || s.v6 != self.v6
            || s.data != self.hdr
            || s.seq != self.next_seq
            || payload > self.mss
            || self.len - v - ETH + payload > MAX_GSO_IP
        {
            return false;
        }
        let head = &self.buf[v..v + self.hdr];
        // Ethernet header; IP header except length, ID and checksum; TCP header and
        // options except sequence number and checksum (and PSH, allowed on the last).
        let same = |a: std::ops::Range<usize>| head[a.clone()] == f[a];
        let ip_same = if s.v6 {
            same(0..ETH + 4) && same(ETH + 6..ETH + 40)
        } else {
            same(0..ETH + 2) && same(ETH + 6..ETH + 10) && same(ETH + 12..ETH + 20)
        };
        let l4 = s.l4;
        let tcp_same = same(l4..l4 + 4)
            && same(l4 + 8..l4 + 13)
            && head[l4 + 13] & !TCP_PSH == f[l4 + 13] & !TCP_PSH
            && same(l4 + 14..l4 + 16)
            && same(l4 + 18..s.data);
        if !(ip_same && tcp_same) {
            return false;
        }
        self.buf[self.len..self.len + payload].copy_from_slice(&f[s.data..]);
        self.len += payload;
        self.segs += 1;
        self.next_seq = self.next_seq.wrapping_add(payload as u32);
        if s.psh {
            self.buf[v + l4 + 13] |= TCP_PSH;
        }
        self.closed = s.psh || payload < self.mss;
        true
    }

    /// Writes the pending frame: as it is if it holds one segment, else as a GSO
    /// frame with its lengths and checksums made for the kernel to finish.
    fn flush(&mut self, fd: &OwnedFd, name: &str, stats: &mut DeviceStats) {
        if self.len == 0 {
            return;
        }
        let v = self.vnet;
        if self.segs > 1 {
            let (l4, total) = (self.l4, self.len - v);
            let frame = &mut self.buf[v..self.len];
            let tcp_len = total - l4;
            let pseudo = if self.v6 {
                frame[ETH + 4..ETH + 6].copy_from_slice(&(tcp_len as u16).to_be_bytes());
                sum16(&frame[ETH + 8..ETH + 40]) + 6 + tcp_len as u32
            } else {
                frame[ETH + 2..ETH + 4].copy_from_slice(&((total - ETH) as u16).to_be_bytes());
                frame[ETH + 10] = 0;
                frame[ETH + 11] = 0;
                let c = !fold(sum16(&frame[ETH..ETH + 20]));
                frame[ETH + 10..ETH + 12].copy_from_slice(&c.to_be_bytes());
                sum16(&frame[ETH + 12..ETH + 20]) + 6 + tcp_len as u32
            };
            // A partial checksum: the pseudo-header's sum, folded, not inverted.
            frame[l4 + 16..l4 + 18].copy_from_slice(&fold(pseudo).to_be_bytes());
            let h = &mut self.buf[..v];
            h[0] = NEEDS_CSUM;
            h[1] = if self.v6 { GSO_TCPV6 } else { GSO_TCPV4 };
            h[2..4].copy_from_slice(&(self.hdr as u16).to_le_bytes());
            h[4..6].copy_from_slice(&(self.mss as u16).to_le_bytes());
            h[6..8].copy_from_slice(&(l4 as u16).to_le_bytes());
            h[8..10].copy_from_slice(&16u16.to_le_bytes());
        }
        match sys::write(fd.as_fd(), &self.buf[..self.len]) {
            Ok(_) => {
                stats.tx_frames += self.segs as u64;
                stats.tx_bytes += (self.len - v) as u64;
            }
            Err(e) => {
                stats.tx_errors += 1;
                log_rate_limited(stats.tx_errors, &format!("{name}: write"), &e);
            }
        }
        self.buf[..v].fill(0);
        self.len = 0;
        self.segs = 0;
    }
}

/// The 16-bit one's-complement sum of `b` (big-endian words), unfolded.
fn sum16(b: &[u8]) -> u32 {
    let mut sum: u32 = 0;
    let mut chunks = b.chunks_exact(2);
    for c in &mut chunks {
        sum += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [last] = chunks.remainder() {
        sum += (*last as u32) << 8;
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the frame's transport checksum holds only the
/// pseudo-header sum; the sum over `csum_start..` is still to be added.
const NEEDS_CSUM: u8 = 1;

/// Completes the checksum of an offloaded frame (`buf` = virtio header + frame), so
/// that verification sees what a wire would carry. Headers it cannot make sense of
/// are left alone (the frame then fails verification, as a corrupt one should).
fn finish_partial_checksum(buf: &mut [u8]) {
    let v = sys::VNET_HDR_LEN;
    if buf.len() < v || buf[0] & NEEDS_CSUM == 0 {
        return;
    }
    let start = u16::from_le_bytes([buf[6], buf[7]]) as usize;
    let offset = u16::from_le_bytes([buf[8], buf[9]]) as usize;
    let frame = &mut buf[v..];
    if start + offset + 2 > frame.len() {
        return;
    }
    let sum = !fold(sum16(&frame[start..]));
    frame[start + offset..start + offset + 2].copy_from_slice(&sum.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 TCP frame: 1000 bytes of payload at `seq`, acking `ack`.
    fn segment(seq: u32, ack: u32, flags: u8, len: usize) -> Vec<u8> {
        let mut f = vec![0u8; ETH];
        f[12] = 0x08;
        let total = 20 + 20 + len;
        f.extend_from_slice(&[
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            1,
            0x40,
            0,
            64,
            6,
            0,
            0,
        ]);
        f.extend_from_slice(&[10, 0, 0, 2, 10, 0, 0, 1]);
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&5000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
        tcp[4..8].copy_from_slice(&seq.to_be_bytes());
        tcp[8..12].copy_from_slice(&ack.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = flags;
        tcp[14..16].copy_from_slice(&1000u16.to_be_bytes());
        f.extend_from_slice(&tcp);
        f.extend((0..len).map(|i| (seq as usize + i) as u8));
        f
    }

    /// Contiguous full segments of one connection merge; a gap, another ACK, a PSH
    /// or a shorter segment ends the frame; the flushed frame is a GSO frame whose
    /// header, lengths and partial checksum describe the whole.
    #[test]
    fn segments_merge_into_one_gso_frame() {
        let mut b = Batch::new(sys::VNET_HDR_LEN);
        let s = |f: &[u8]| Segment::parse(f).expect("eligible");
        let f1 = segment(1000, 7, TCP_ACK, 1000);
        b.start(&f1, &s(&f1));
        let f2 = segment(2000, 7, TCP_ACK, 1000);
        assert!(b.append(&f2, &s(&f2)));
        let gap = segment(4000, 7, TCP_ACK, 1000);
        assert!(!b.append(&gap, &s(&gap)), "not contiguous");
        let other_ack = segment(3000, 8, TCP_ACK, 1000);
        assert!(!b.append(&other_ack, &s(&other_ack)), "another ACK number");
        let f3 = segment(3000, 7, TCP_ACK | TCP_PSH, 500);
        assert!(b.append(&f3, &s(&f3)));
        let f4 = segment(3500, 7, TCP_ACK, 1000);
        assert!(
            !b.append(&f4, &s(&f4)),
            "PSH and a short segment end the frame"
        );
        assert!(
            Segment::parse(&segment(1, 1, TCP_ACK | 0x02, 10)).is_none(),
            "SYN"
        );
        assert!(
            Segment::parse(&segment(1, 1, TCP_ACK, 0)).is_none(),
            "no payload"
        );

        let (r, w) = sys::stream_pair().unwrap();
        let mut stats = DeviceStats::default();
        b.flush(&w, "test", &mut stats);
        assert_eq!(stats.tx_frames, 3);
        let mut out = vec![0u8; 8192];
        let n = sys::read(r.as_fd(), &mut out).unwrap();
        let (h, frame) = out[..n].split_at(sys::VNET_HDR_LEN);
        assert_eq!(h[0], NEEDS_CSUM);
        assert_eq!(h[1], GSO_TCPV4);
        assert_eq!(u16::from_le_bytes([h[2], h[3]]), 54, "header length");
        assert_eq!(u16::from_le_bytes([h[4], h[5]]), 1000, "segment size");
        assert_eq!(u16::from_le_bytes([h[6], h[7]]), 34, "checksum start");
        assert_eq!(frame.len(), 54 + 2500);
        assert_eq!(
            u16::from_be_bytes([frame[16], frame[17]]) as usize,
            20 + 20 + 2500
        );
        assert_eq!(
            fold(sum16(&frame[ETH..ETH + 20])),
            0xffff,
            "IPv4 header checksum"
        );
        assert_eq!(
            frame[ETH + 20 + 13],
            TCP_ACK | TCP_PSH,
            "PSH of the last segment"
        );
        let payload: Vec<u8> = [&f1[54..], &f2[54..], &f3[54..]].concat();
        assert_eq!(&frame[54..], &payload[..]);
        // Finishing the partial checksum gives the checksum of the whole segment.
        let mut copy = out[..n].to_vec();
        finish_partial_checksum(&mut copy);
        let tcp = &copy[sys::VNET_HDR_LEN + 34..];
        let pseudo = sum16(&frame[26..34]) + 6 + tcp.len() as u32;
        assert_eq!(fold(pseudo + sum16(tcp)), 0xffff, "TCP checksum");
    }

    /// A frame as the kernel hands it over with TSO offload: the TCP checksum field
    /// holds the pseudo-header sum only. Completing it must give the checksum a wire
    /// would carry.
    #[test]
    fn partial_checksum_is_completed() {
        let payload: Vec<u8> = (0..3001u32).map(|i| (i * 7) as u8).collect();
        let (src, dst) = ([10, 0, 0, 1], [10, 0, 0, 2]);
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&80u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&4321u16.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = 0x18;
        tcp.extend_from_slice(&payload);
        let tcp_len = tcp.len() as u32;
        let pseudo = sum16(&src) + sum16(&dst) + 6 + tcp_len;
        let full = !fold(pseudo + sum16(&tcp));
        // The frame: virtio header, Ethernet, IPv4 (20), TCP with the partial sum.
        let mut buf = vec![0u8; sys::VNET_HDR_LEN];
        buf[0] = NEEDS_CSUM;
        buf[6..8].copy_from_slice(&(14u16 + 20).to_le_bytes());
        buf[8..10].copy_from_slice(&16u16.to_le_bytes());
        buf.extend_from_slice(&[0u8; 14]);
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 6, 0, 0];
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        buf.extend_from_slice(&ip);
        let mut partial = tcp.clone();
        partial[16..18].copy_from_slice(&fold(pseudo).to_be_bytes());
        buf.extend_from_slice(&partial);
        finish_partial_checksum(&mut buf);
        let at = sys::VNET_HDR_LEN + 14 + 20 + 16;
        assert_eq!(u16::from_be_bytes([buf[at], buf[at + 1]]), full);
        // Without NEEDS_CSUM nothing changes; a header pointing past the end is ignored.
        let before = buf.clone();
        buf[0] = 0;
        finish_partial_checksum(&mut buf);
        assert_eq!(
            buf,
            before
                .iter()
                .enumerate()
                .map(|(i, b)| if i == 0 { 0 } else { *b })
                .collect::<Vec<_>>()
        );
        buf[0] = NEEDS_CSUM;
        buf[6..8].copy_from_slice(&u16::MAX.to_le_bytes());
        let kept = buf.clone();
        finish_partial_checksum(&mut buf);
        assert_eq!(buf, kept);
    }
}
