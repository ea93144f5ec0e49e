//! The uplink's device: an IP-medium smoltcp device whose far side is the host's
//! sockets API.
//!
//! # Flows
//!
//! A *flow* is a host socket and what it stands for:
//!
//! - **UDP**: one unconnected host UDP socket per container address and port, as a
//!   Linux host behind a full-cone NAT: the container's socket may talk to many
//!   peers, and every datagram arriving on the host socket goes back to it, with the
//!   peer's true address as the source (glibc drops a DNS reply from any other).
//! - **Echo**: one host ICMP datagram socket ("ping socket") per container address
//!   and echo identifier. The host kernel puts its own identifier on the wire; the
//!   reply gets the container's back.
//!
//! A flow opens when the container first sends, is refreshed by traffic both ways,
//! and closes after `udp_timeout` of silence or when `max_flows` are open and a new
//! one needs room (the least recently used goes). Both are limits a container
//! cannot push past: a flood of new source ports recycles flows, it does not
//! multiply host sockets.
//!
//! # Readiness
//!
//! The flows' sockets are registered with a `mio::Poll` of the device's own, whose
//! descriptor ([`AsRawFd`]) the runtime watches like a TAP's. When the stack asks
//! for a packet and none is queued, the device reads every ready socket until it
//! would block (or the queue is full: then it resumes there next time), writing
//! each datagram straight into a recycled packet buffer behind room for the headers
//! — one copy, no allocation per packet.
//!
//! TCP never comes here: the socket layer hands connections to the host directly
//! (see the module above). A TCP segment the device sees belongs to a connection
//! the fast path could not take (an embedder's own socket): it is dropped and
//! counted, and the connect times out.

use super::packet::{self, Outgoing};
use super::{Uplink, UplinkConfig};
use crate::device::DeviceStats;
use crate::device::queue::{Frame, FrameQueue};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use socket2::{Domain, Protocol, Socket, Type};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant as Clock};

/// The uplink's MTU: an IP packet as large as IPv4 allows, like `lo`.
pub const UPLINK_MTU: usize = 65535;
/// Packets read from host sockets and not yet taken by the stack.
const RX_QUEUE: usize = 256;
/// How often idle flows are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum FlowKey {
    Udp(SocketAddr),
    Echo(IpAddr, u16),
}

struct Flow {
    key: FlowKey,
    sock: UdpSocket,
    last: Clock,
    /// A host destination that stands for another container-side address (the
    /// mapped host loopback, the DNS address): replies from `.0` come from `.1`.
    mapped: Option<(SocketAddr, IpAddr)>,
    /// A published UDP port's socket: never closed for idleness or room.
    pinned: bool,
    /// A client on the host's own loopback that sent here: the container sees it
    /// as the gateway (its loopback is its own), and may answer it, at that port.
    loopback_peer: Option<SocketAddr>,
}

/// Counters of the uplink device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UplinkStats {
    /// Flows open now.
    pub flows: u64,
    /// Flows opened since start.
    pub flows_opened: u64,
    /// Flows closed to make room (the `max_flows` limit).
    pub flows_evicted: u64,
    /// Datagrams and echo requests sent through host sockets.
    pub sent: u64,
    /// Datagrams and echo replies delivered to the container.
    pub received: u64,
    /// Packets dropped: refused destinations, host send errors, TCP segments, and
    /// other protocols.
    pub dropped: u64,
}

struct Inner {
    uplink: Uplink,
    poll: Poll,
    events: Events,
    flows: Vec<Option<Flow>>,
    by_key: HashMap<FlowKey, usize>,
    free: Vec<usize>,
    /// Flows whose socket may have more to read.
    ready: Vec<usize>,
    rx: FrameQueue,
    /// A packet the stack is writing, before it is dispatched.
    tx: Box<[u8]>,
    stats: DeviceStats,
    up: UplinkStats,
    last_sweep: Clock,
    ping_refused_said: bool,
    /// An event loop watches the device's fd and says when it turns readable
    /// ([`UplinkDevice::readable`]): the host sockets are looked at only then,
    /// not in every poll round (a system call each, many per connection made
    /// inside the container). Without one (`false`), every round looks.
    watched: bool,
    /// The event loop saw the fd readable since the sockets were last looked
    /// at, or the last look may have left events behind.
    woken: bool,
}

/// The uplink device (see the module docs).
pub struct UplinkDevice {
    inner: RefCell<Inner>,
}

impl UplinkDevice {
    /// A device carrying the container's traffic through host sockets by `cfg`.
    pub fn new(cfg: UplinkConfig) -> io::Result<UplinkDevice> {
        let max = cfg.max_flows.max(1);
        Ok(UplinkDevice {
            inner: RefCell::new(Inner {
                uplink: Uplink::new(cfg),
                poll: Poll::new()?,
                events: Events::with_capacity(256),
                flows: Vec::with_capacity(max.min(1024)),
                by_key: HashMap::new(),
                free: Vec::new(),
                ready: Vec::new(),
                rx: FrameQueue::new(UPLINK_MTU, RX_QUEUE),
                tx: vec![0u8; UPLINK_MTU].into_boxed_slice(),
                stats: DeviceStats::default(),
                up: UplinkStats::default(),
                last_sweep: Clock::now(),
                ping_refused_said: false,
                watched: false,
                woken: false,
            }),
        })
    }

    /// The policy the device follows.
    pub fn uplink(&self) -> Uplink {
        self.inner.borrow().uplink.clone()
    }

    /// Frame counters.
    pub fn stats(&self) -> DeviceStats {
        self.inner.borrow().stats
    }

    /// Flow counters.
    pub fn uplink_stats(&self) -> UplinkStats {
        let i = self.inner.borrow();
        UplinkStats {
            flows: i.by_key.len() as u64,
            ..i.up
        }
    }

    /// Makes `sock` (bound to a published host port) the flow of the container's
    /// UDP port `container_port` (see [`crate::publish`]).
    pub fn publish_udp(&self, sock: UdpSocket, container_port: u16) -> io::Result<()> {
        let mut i = self.inner.borrow_mut();
        let key = FlowKey::Udp(SocketAddr::new(IpAddr::V4(super::ADDR4), container_port));
        if i.by_key.contains_key(&key) {
            return Err(io::Error::from_raw_os_error(libc::EADDRINUSE));
        }
        i.add_flow(key, sock, Clock::now(), true).map(|_| ())
    }

    /// An event loop watches the device's fd from now on and calls
    /// [`UplinkDevice::readable`] when it turns readable.
    pub fn set_watched(&self) {
        self.inner.borrow_mut().watched = true;
    }

    /// The event loop saw the device's fd readable: the next receive looks at
    /// the host sockets.
    pub fn readable(&self) {
        self.inner.borrow_mut().woken = true;
    }

    /// Whether packets read from host sockets wait for the stack, or sockets
    /// remain to be read (the event loop must not sleep).
    pub fn has_pending(&self) -> bool {
        let i = self.inner.borrow();
        !i.rx.is_empty() || !i.ready.is_empty()
    }
}

impl AsRawFd for UplinkDevice {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.borrow().poll.as_raw_fd()
    }
}

impl Inner {
    /// Reads ready host sockets into the receive queue.
    fn pump(&mut self) {
        let now = Clock::now();
        if now.duration_since(self.last_sweep) >= SWEEP_EVERY {
            self.last_sweep = now;
            self.sweep(now);
        }
        if (self.woken || !self.watched)
            && self
                .poll
                .poll(&mut self.events, Some(Duration::ZERO))
                .is_ok()
        {
            // A full batch may have left events behind: look again next time.
            self.woken = self.events.iter().count() == self.events.capacity();
            for ev in self.events.iter() {
                let i = ev.token().0;
                if !self.ready.contains(&i) {
                    self.ready.push(i);
                }
            }
        }
        while let Some(&i) = self.ready.last() {
            if self.rx.is_full() {
                return;
            }
            if self.read_one(i, now) {
                continue;
            }
            self.ready.pop();
        }
    }

    /// Reads one datagram of flow `i` into the queue; false when it has no more.
    fn read_one(&mut self, i: usize, now: Clock) -> bool {
        let Some(flow) = self.flows.get_mut(i).and_then(|f| f.as_mut()) else {
            return false;
        };
        let (key, mapped) = (flow.key, flow.mapped);
        let sock = &flow.sock;
        let v6 = match key {
            FlowKey::Udp(a) => a.is_ipv6(),
            FlowKey::Echo(a, _) => a.is_ipv6(),
        };
        let mut got = None;
        let mut more = true;
        let mut learned = None;
        self.rx.push_filled(|buf| {
            let (head, body) = match key {
                FlowKey::Udp(_) => {
                    let h = packet::ip_header_len(v6) + 8;
                    (h, &mut buf[h..])
                }
                FlowKey::Echo(..) => {
                    let h = packet::ip_header_len(v6);
                    (h, &mut buf[h..])
                }
            };
            let (n, from) = match sock.recv_from(body) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    more = false;
                    return None;
                }
                Err(e) => {
                    // An ICMP error queued on the socket, or the like: nothing to
                    // deliver, but the socket may hold more.
                    log::debug!("uplink: receive on a flow failed: {e}");
                    return None;
                }
            };
            // A reply from a mapped destination comes from the address the
            // container used.
            let from_ip = match mapped {
                Some((host, container)) if same_ip(host.ip(), from.ip()) => container,
                // A client on the host's loopback is not the container's own.
                _ if is_loopback(from.ip()) => {
                    learned = Some(from);
                    gateway(v6)
                }
                _ => from.ip(),
            };
            let from_ip = match (from_ip, v6) {
                (IpAddr::V6(a), false) => a.to_ipv4_mapped().map_or(IpAddr::V6(a), IpAddr::V4),
                (IpAddr::V4(a), true) => IpAddr::V6(a.to_ipv6_mapped()),
                (a, _) => a,
            };
            if from_ip.is_ipv6() != v6 {
                return None;
            }
            let len = match key {
                FlowKey::Udp(to) => {
                    packet::write_udp(buf, SocketAddr::new(from_ip, from.port()), to, n)
                }
                FlowKey::Echo(to, ident) => packet::write_echo_reply(buf, from_ip, to, ident, n)?,
            };
            debug_assert!(head <= len);
            got = Some(len);
            Some(len)
        });
        if got.is_some() {
            self.up.received += 1;
            if let Some(Some(f)) = self.flows.get_mut(i) {
                f.last = now;
                if learned.is_some() {
                    f.loopback_peer = learned;
                }
            }
        }
        more
    }

    /// Closes flows idle for longer than the timeout.
    fn sweep(&mut self, now: Clock) {
        let timeout = self.uplink.config().udp_timeout;
        let idle: Vec<usize> = self
            .flows
            .iter()
            .enumerate()
            .filter_map(|(i, f)| {
                f.as_ref()
                    .filter(|f| !f.pinned && now.duration_since(f.last) > timeout)
                    .map(|_| i)
            })
            .collect();
        for i in idle {
            self.close(i);
        }
    }

    fn close(&mut self, i: usize) {
        if let Some(mut f) = self.flows.get_mut(i).and_then(|f| f.take()) {
            let _ = self.poll.registry().deregister(&mut f.sock);
            self.by_key.remove(&f.key);
            self.ready.retain(|&r| r != i);
            self.free.push(i);
        }
    }

    /// The flow for `key`, opened if needed.
    fn flow(&mut self, key: FlowKey, now: Clock) -> io::Result<usize> {
        if let Some(&i) = self.by_key.get(&key) {
            return Ok(i);
        }
        if self.by_key.len() >= self.uplink.config().max_flows.max(1) {
            let oldest = self
                .flows
                .iter()
                .enumerate()
                .filter_map(|(i, f)| f.as_ref().filter(|f| !f.pinned).map(|f| (f.last, i)))
                .min()
                .map(|(_, i)| i);
            if let Some(i) = oldest {
                self.close(i);
                self.up.flows_evicted += 1;
            }
        }
        let sock = open_host_socket(key)?;
        self.add_flow(key, sock, now, false)
    }

    fn add_flow(
        &mut self,
        key: FlowKey,
        sock: UdpSocket,
        now: Clock,
        pinned: bool,
    ) -> io::Result<usize> {
        let i = self.free.pop().unwrap_or(self.flows.len());
        let mut flow = Flow {
            key,
            sock,
            last: now,
            mapped: None,
            pinned,
            loopback_peer: None,
        };
        self.poll
            .registry()
            .register(&mut flow.sock, Token(i), Interest::READABLE)?;
        if i == self.flows.len() {
            self.flows.push(Some(flow));
        } else {
            self.flows[i] = Some(flow);
        }
        self.by_key.insert(key, i);
        self.up.flows_opened += 1;
        Ok(i)
    }

    /// Carries a packet the stack sent.
    fn dispatch(&mut self, len: usize) {
        let tx = std::mem::take(&mut self.tx);
        self.dispatch_packet(&tx[..len.min(tx.len())]);
        self.tx = tx;
    }

    fn dispatch_packet(&mut self, p: &[u8]) {
        let now = Clock::now();
        let (key, dst, payload) = match packet::parse(p) {
            Some(Outgoing::Udp { src, dst, payload }) => (FlowKey::Udp(src), dst, payload),
            Some(Outgoing::Echo {
                src,
                dst,
                ident,
                message,
            }) => (FlowKey::Echo(src, ident), SocketAddr::new(dst, 0), message),
            Some(Outgoing::Tcp { dst }) => {
                log::debug!("uplink: a TCP segment to {dst} outside the fast path, dropped");
                self.up.dropped += 1;
                return;
            }
            Some(Outgoing::Other) | None => {
                self.up.dropped += 1;
                return;
            }
        };
        // An answer to a client on the host's loopback (seen as the gateway): to
        // that client only, at its port.
        let to_loopback_peer = self
            .by_key
            .get(&key)
            .and_then(|&i| self.flows[i].as_ref())
            .and_then(|f| f.loopback_peer)
            .filter(|p| dst.ip() == gateway(dst.is_ipv6()) && dst.port() == p.port());
        let host_dst = match to_loopback_peer.map_or_else(|| self.uplink.destination(dst), Ok) {
            Ok(d) => d,
            Err(r) => {
                log::debug!("uplink: {dst} refused ({r:?})");
                self.up.dropped += 1;
                return;
            }
        };
        let i = match self.flow(key, now) {
            Ok(i) => i,
            Err(e) => {
                self.refused(key, &e);
                self.up.dropped += 1;
                return;
            }
        };
        let Some(flow) = self.flows[i].as_mut() else {
            return;
        };
        flow.last = now;
        if host_dst != dst {
            flow.mapped = Some((host_dst, dst.ip()));
        }
        match flow.sock.send_to(payload, host_dst) {
            Ok(_) => self.up.sent += 1,
            Err(e) => {
                log::debug!("uplink: send to {host_dst} failed: {e}");
                self.up.dropped += 1;
            }
        }
    }

    /// Says once, clearly, why echo requests cannot leave.
    fn refused(&mut self, key: FlowKey, e: &io::Error) {
        match key {
            FlowKey::Echo(..)
                if matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM))
                    && !self.ping_refused_said =>
            {
                self.ping_refused_said = true;
                log::warn!(
                    "uplink: ping cannot leave: this user may not open ICMP sockets \
                     (net.ipv4.ping_group_range excludes group {}); as root: \
                     sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"",
                    std::fs::read_to_string("/proc/self/status")
                        .ok()
                        .and_then(|s| {
                            s.lines()
                                .find(|l| l.starts_with("Gid:"))
                                .and_then(|l| l.split_whitespace().nth(2).map(str::to_owned))
                        })
                        .unwrap_or_else(|| "?".into())
                );
            }
            FlowKey::Echo(..) => {}
            FlowKey::Udp(_) => crate::warn_limited!("uplink: cannot open a host UDP socket: {e}"),
        }
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
        IpAddr::V4(v4) => v4.is_loopback(),
    }
}

/// The uplink's gateway of a family: what a client on the host's loopback looks
/// like from inside.
pub(crate) fn gateway(v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(super::GATEWAY6)
    } else {
        IpAddr::V4(super::GATEWAY4)
    }
}

fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    let canon = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    canon(a) == canon(b)
}

/// A non-blocking host socket for a new flow, of the container address's family
/// (IPv6 ones take IPv4-mapped destinations too).
fn open_host_socket(key: FlowKey) -> io::Result<UdpSocket> {
    let (v6, proto) = match key {
        FlowKey::Udp(a) => (a.is_ipv6(), Protocol::UDP),
        FlowKey::Echo(a, _) if a.is_ipv6() => (true, Protocol::ICMPV6),
        FlowKey::Echo(..) => (false, Protocol::ICMPV4),
    };
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    let s = Socket::new(domain, Type::DGRAM.nonblocking().cloexec(), Some(proto))?;
    if v6 && proto == Protocol::UDP {
        s.set_only_v6(false)?;
    }
    let any: SocketAddr = if v6 {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    };
    s.bind(&any.into())?;
    Ok(UdpSocket::from_std(s.into()))
}

/// Receive token of [`UplinkDevice`].
pub struct UplinkRx<'a> {
    frame: Frame,
    inner: &'a RefCell<Inner>,
}

/// Transmit token of [`UplinkDevice`].
pub struct UplinkTx<'a> {
    inner: &'a RefCell<Inner>,
}

impl Device for UplinkDevice {
    type RxToken<'a> = UplinkRx<'a>;
    type TxToken<'a> = UplinkTx<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(UplinkRx<'_>, UplinkTx<'_>)> {
        let inner = self.inner.get_mut();
        if inner.rx.is_empty() {
            inner.pump();
        }
        let frame = inner.rx.pop()?;
        Some((
            UplinkRx {
                frame,
                inner: &self.inner,
            },
            UplinkTx { inner: &self.inner },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<UplinkTx<'_>> {
        Some(UplinkTx { inner: &self.inner })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = UPLINK_MTU;
        // Both sides are this process: the packets the device writes are built
        // whole, and what the stack writes is read by the device, not a wire.
        caps.checksum = ChecksumCapabilities::ignored();
        caps
    }
}

impl phy::RxToken for UplinkRx<'_> {
    fn meta(&self) -> phy::PacketMeta {
        crate::iface::egress::IpFields::of_frame(Medium::Ip, self.frame.bytes()).rx_meta()
    }

    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let r = f(self.frame.bytes());
        let mut i = self.inner.borrow_mut();
        i.stats.rx_frames += 1;
        i.stats.rx_bytes += self.frame.bytes().len() as u64;
        i.rx.recycle(self.frame);
        r
    }
}

impl phy::TxToken for UplinkTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut i = self.inner.borrow_mut();
        i.stats.tx_frames += 1;
        i.stats.tx_bytes += len as u64;
        let len = len.min(i.tx.len());
        let r = f(&mut i.tx[..len]);
        i.dispatch(len);
        r
    }
}
