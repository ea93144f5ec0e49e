//! A container's network stack: its interfaces, devices and sockets, and the poll
//! loop that drives them. This is also the embedding API: a sandbox builds a
//! [`Stack`] on any smoltcp [`Device`] and opens sockets on it with the same
//! semantics the shims give programs.
//!
//! # The poll loop
//!
//! [`Stack::poll`] runs rounds until nothing moves: poll `lo`, poll each L2 device (each
//! through the ingress hook, so the socket layer sees SYNs first), then
//! [`Sockets::service`] (handshakes, backlog, the stand-in pumps, orphans). A packet
//! a socket sends over `lo` is read back in the next round; a SYN held by the hook is
//! offered again after the service step armed a socket for it. Time is monotonic:
//! smoltcp's clock counts from the stack's creation.

use crate::device::LoopbackDevice;
use crate::iface::ingress::{Held, Hooked};
use crate::iface::{ConfigError, ETH, EthConfig, IfaceId, Interfaces, LO, RouteOrigin};
use crate::socket::errno::*;
use crate::socket::options::{MAX_OPT, SetOutcome};
use crate::socket::{Domain, SocketConfig, SocketId, Sockets, Target};
use smoltcp::phy::Device;
use smoltcp::time::Instant;
use std::net::SocketAddr;
use std::time::Duration;

/// Rounds of [`Stack::poll`] before it yields to the event loop.
const MAX_ROUNDS: usize = 64;

/// A container's network stack over L2 devices of type `D`.
pub struct Stack<D: Device> {
    pub(crate) ifs: Interfaces,
    pub(crate) lo: LoopbackDevice,
    /// The L2 devices: `eths[i]` is under interface `ETH + i`.
    pub(crate) eths: Vec<D>,
    /// The ingress hook's held SYNs, per interface.
    held: Vec<Held>,
    /// A received frame on its way to its shard (see [`crate::iface::shards`]).
    frame_buf: Vec<u8>,
    pub(crate) sockets: Sockets,
    /// The container's netlink sockets.
    pub(crate) netlink: crate::netlink::Netlink,
    /// `iptables`' table calls under way.
    pub(crate) tables: crate::control::table::Staging,
    epoch: std::time::Instant,
    /// `poll` stopped before everything was processed.
    more: bool,
    /// Frames programs sent on packet sockets wait to be taken.
    mirror_more: bool,
    /// The DHCP clients: one per interface with `EthConfig::dhcp`, with its lease.
    dhcp: Vec<(IfaceId, crate::iface::shards::SocketHandle, Option<Lease>)>,
    /// Some interface configures itself from router advertisements.
    slaac: bool,
}

/// What a DHCP server gave eth0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The address and its prefix length.
    pub address: smoltcp::wire::Ipv4Cidr,
    /// The default gateway.
    pub router: Option<std::net::Ipv4Addr>,
    /// Nameservers.
    pub dns: Vec<std::net::Ipv4Addr>,
}

impl<D: Device> Stack<D> {
    /// A stack with `lo`, and `eth0` on `eth` when given.
    pub fn new(eth: Option<(D, EthConfig)>, cfg: SocketConfig) -> Result<Self, ConfigError> {
        Self::with_devices(eth.into_iter().collect(), cfg)
    }

    /// A stack with `lo` and an L2 interface on each device, in order (`eth0`,
    /// `eth1`, ...; at most [`crate::iface::MAX_ETHS`]).
    pub fn with_devices(eths: Vec<(D, EthConfig)>, cfg: SocketConfig) -> Result<Self, ConfigError> {
        let epoch = std::time::Instant::now();
        let mut lo = LoopbackDevice::new();
        let (mut devs, cfgs): (Vec<D>, Vec<EthConfig>) = eths.into_iter().unzip();
        let mut ifs = Interfaces::new(
            &mut lo,
            devs.iter_mut().zip(cfgs.iter()).collect(),
            Instant::from_micros(0),
        )?;
        let dhcp = cfgs
            .iter()
            .enumerate()
            .filter(|(_, c)| c.dhcp)
            .map(|(i, _)| {
                let id = ETH + i;
                let h = ifs
                    .get_mut(id)
                    .sockets
                    .add(smoltcp::socket::dhcpv4::Socket::new());
                (id, h, None)
            })
            .collect();
        Ok(Stack {
            held: (0..ifs.len()).map(|_| Held::default()).collect(),
            frame_buf: Vec::new(),
            ifs,
            lo,
            eths: devs,
            dhcp,
            slaac: cfgs.iter().any(|c| c.slaac),
            sockets: Sockets::new(cfg),
            netlink: Default::default(),
            tables: Default::default(),
            epoch,
            more: false,
            mirror_more: false,
        })
    }

    /// Moves the grants generation if the output filter started or stopped
    /// looking at packets (see [`crate::control::grants`]; changes of links,
    /// addresses and routes move it as they are made); the event loop calls it
    /// after each turn, the socket service after each request.
    pub fn sync_grants(&mut self) {
        let filtering = self.ifs.filter().borrow().watches_output();
        self.ifs.grants_mut().sync(filtering);
    }

    /// Connections between the container's programs spliced so far (see the TCP
    /// module's `splice`).
    pub fn spliced(&self) -> u64 {
        self.sockets.spliced()
    }

    /// Datagrams programs posted (see [`crate::control::grants`]), and those of
    /// them dropped (a check failed after all).
    pub fn posts(&self) -> (u64, u64) {
        self.sockets.posts()
    }

    /// Tells the socket layer a turn of the event loop begins its poll, and
    /// whether every control connection was read to its end in it (a socket
    /// whose datagrams were posted closes only after such a turn: see
    /// `Sockets::udp_close_waits`).
    pub fn begin_turn(&mut self, control_drained: bool) {
        self.sockets.begin_turn(control_drained);
    }

    /// smoltcp's notion of now: microseconds since the stack was made, monotonic.
    pub fn now(&self) -> Instant {
        Instant::from_micros(self.epoch.elapsed().as_micros() as i64)
    }

    /// Processes everything pending: received frames, timers, socket I/O. Returns
    /// whether anything happened.
    pub fn poll(&mut self) -> bool {
        if self.mirror_more {
            self.send_packet_socket_frames();
        }
        let now = self.now();
        self.ifs.set_now(now);
        let mut kept = self.ifs.recycled().borrow_mut();
        if !kept.is_empty() {
            kept.trim(std::time::Instant::now());
        }
        drop(kept);
        let mut any = false;
        self.more = false;
        for round in 0..MAX_ROUNDS {
            let mut progress = false;
            let mut deferred = false;
            {
                let (n, hooks) = self.ifs.poll_parts(LO);
                let mut dev = Hooked::new(
                    &mut self.lo,
                    &mut self.sockets,
                    hooks,
                    &mut self.held[LO],
                    LO,
                );
                progress |= dev.poll(n, now, &mut self.frame_buf);
                deferred |= dev.deferred() || dev.spent();
                send_answers(&mut self.lo, hooks, LO, now);
            }
            for (i, eth) in self.eths.iter_mut().enumerate() {
                let id = ETH + i;
                let (n, hooks) = self.ifs.poll_parts(id);
                if !n.up {
                    continue;
                }
                let mut dev = Hooked::new(eth, &mut self.sockets, hooks, &mut self.held[id], id);
                progress |= dev.poll(n, now, &mut self.frame_buf);
                deferred |= dev.deferred() || dev.spent();
                // Answers of rejected arrivals leave on the device they came from.
                send_answers(eth, hooks, id, now);
            }
            progress |= self.sockets.service(&mut self.ifs, now);
            if self.sockets.take_overflowed() {
                // A program is behind its datagrams: let it run before reading
                // more frames that would only be dropped. On this 2-vCPU machine a
                // peer flooding a UDP socket holds one CPU, and netcell and the
                // program share the other: without the yield netcell read
                // 400 k frames/s and the program got 120 k of them (the stand-in
                // full at every look); with it 160-260 k, 1.3-2x, the excess
                // now dropped by the TAP's queue, in the sender's time, as the
                // kernel drops at a full socket in the softirq of the sender.
                std::thread::yield_now();
            }
            // Loss probes due (after this round's frames were read: an ACK
            // waiting in the device is no silence) go out next round.
            self.ifs.recovery().borrow_mut().tick(now);
            progress |= self.dhcp_events();
            if self.slaac {
                progress |= self.ifs.sync_slaac();
            }
            any |= progress;
            let pending = deferred
                || self.lo.has_pending()
                || self.held.iter().any(|h| h.is_full())
                || self.ifs.filter().borrow().has_arrivals()
                || self.ifs.recovery().borrow().has_pending();
            if !progress && !pending {
                break;
            }
            if round + 1 == MAX_ROUNDS {
                self.more = true;
            }
        }
        self.sockets.settle_connects();
        any
    }

    /// The DHCP lease the first interface with `EthConfig::dhcp` holds now.
    pub fn dhcp_lease(&self) -> Option<&Lease> {
        self.dhcp.first().and_then(|(_, _, l)| l.as_ref())
    }

    /// The DHCP lease interface `id` holds now.
    pub fn dhcp_lease_of(&self, id: IfaceId) -> Option<&Lease> {
        self.dhcp
            .iter()
            .find(|(i, _, _)| *i == id)
            .and_then(|(_, _, l)| l.as_ref())
    }

    /// Applies what the DHCP clients learned: a new lease replaces the old
    /// address and default route; a lost one removes them.
    fn dhcp_events(&mut self) -> bool {
        let mut any = false;
        for k in 0..self.dhcp.len() {
            any |= self.dhcp_event(k);
        }
        any
    }

    fn dhcp_event(&mut self, k: usize) -> bool {
        use smoltcp::socket::dhcpv4::{Event, Socket};
        let (id, h, _) = self.dhcp[k];
        let lease = match self.ifs.get_mut(id).sockets.get_mut::<Socket>(h).poll() {
            None => return false,
            Some(Event::Configured(c)) => Some(Lease {
                address: c.address,
                router: c.router,
                dns: c.dns_servers.iter().copied().collect(),
            }),
            Some(Event::Deconfigured) => None,
        };
        let name = self.ifs.get(id).name.clone();
        if let Some(old) = self.dhcp[k].2.take() {
            let _ = self.ifs.del_addr(Some(id), old.address.address().into());
            if old.router.is_some() {
                let _ = self.ifs.set_gateway(id, false, None, RouteOrigin::Dhcp);
            }
        }
        match &lease {
            Some(l) => {
                if let Err(e) = self.ifs.add_addr(id, l.address.into()) {
                    log::warn!("dhcp: {name} cannot take {}: {e:?}", l.address);
                }
                if let Some(r) = l.router
                    && let Err(e) =
                        self.ifs
                            .set_gateway(id, false, Some(r.into()), RouteOrigin::Dhcp)
                {
                    log::warn!("dhcp: {name} cannot route through {r}: {e:?}");
                }
                log::info!(
                    "dhcp: {name} {} via {:?}, nameservers {:?}",
                    l.address,
                    l.router,
                    l.dns
                );
            }
            None => log::info!("dhcp: {name} has no lease"),
        }
        self.dhcp[k].2 = lease;
        true
    }

    /// How long the event loop may sleep before [`Stack::poll`] is due again
    /// (`None`: until something arrives).
    pub fn poll_delay(&mut self) -> Option<Duration> {
        if self.more
            || self.mirror_more
            || self.lo.has_pending()
            || self.held.iter().any(|h| h.is_full())
            || self.ifs.filter().borrow().has_arrivals()
            || self.ifs.recovery().borrow().has_pending()
        {
            return Some(Duration::ZERO);
        }
        let now = self.now();
        let mut best: Option<Instant> = self.sockets.next_timer(now);
        if let Some(t) = self.ifs.recovery().borrow().next_due() {
            best = Some(best.map_or(t, |b| b.min(t)));
        }
        if let Some(t) = self.ifs.recycled().borrow().trim_at() {
            let wait = t.saturating_duration_since(std::time::Instant::now());
            let t = now + smoltcp::time::Duration::from_micros(wait.as_micros() as u64);
            best = Some(best.map_or(t, |b| b.min(t)));
        }
        for i in 0..self.ifs.len() {
            let n = self.ifs.get_mut(i);
            if let Some(t) = n.sockets.poll_at(&mut n.iface, now) {
                best = Some(best.map_or(t, |b| b.min(t)));
            }
        }
        best.map(|t| {
            if t > now {
                Duration::from_micros((t - now).total_micros())
            } else {
                Duration::ZERO
            }
        })
    }

    /// TCP connections with bytes still to go out (see
    /// [`crate::socket::Sockets::sending`]).
    pub fn sending(&mut self) -> usize {
        self.sockets.sending(&mut self.ifs)
    }

    /// The interfaces.
    pub fn interfaces(&self) -> &Interfaces {
        &self.ifs
    }

    /// How many sockets an interface's home socket set holds before TCP
    /// connections are spread over shards ([`crate::iface::shards`]): for
    /// embedders tuning it, and for tests and fuzzing of the spread path (0:
    /// every connection is placed).
    pub fn set_shard_home_max(&mut self, n: usize) {
        self.ifs.set_shard_home_max(n);
    }

    /// Records every frame of every interface into `out` as pcapng (see
    /// [`crate::capture`]).
    pub fn start_capture(&mut self, out: Box<dyn std::io::Write + Send>) -> std::io::Result<()> {
        self.ifs.start_capture(out)
    }

    /// The container's interfaces as the packet sockets' mirror copies them.
    pub fn mirror_ifaces(&self) -> Vec<crate::packet::MirrorIface> {
        use smoltcp::wire::HardwareAddress;
        self.ifs
            .iter()
            .map(|(id, n)| crate::packet::MirrorIface {
                index: id as u32 + 1,
                name: n.name.clone(),
                // smoltcp asserts on an IP-medium interface's hardware address.
                mac: match n.ethernet.then(|| n.iface.hardware_addr()) {
                    Some(HardwareAddress::Ethernet(m)) => Some(m.0),
                    _ => None,
                },
                mtu: n.mtu,
            })
            .collect()
    }

    /// A packet socket for a program (`socket(AF_PACKET, ty, protocol)`), from
    /// the mirror (see [`crate::packet`]): `EPERM` without one.
    pub fn open_packet_socket(
        &mut self,
        ty: i32,
        protocol: i32,
    ) -> Result<std::os::fd::OwnedFd, i32> {
        let ifaces = self.mirror_ifaces();
        let mut c = self.ifs.capture().borrow_mut();
        let m = c.mirror_mut().ok_or(libc::EPERM)?;
        m.open(&ifaces, ty, protocol)
    }

    /// Puts the frames programs sent on their packet sockets on the container's
    /// devices, as they are: Linux's packet sockets pass by the packet filter,
    /// and so do these; captures record them as sent. A frame for `lo` or an
    /// IP-medium interface is not sent (see the README).
    pub fn send_packet_socket_frames(&mut self) {
        use smoltcp::phy::TxToken;
        let mut sent: Vec<(usize, Vec<u8>)> = Vec::new();
        if let Some(m) = self.ifs.capture().borrow_mut().mirror_mut() {
            self.mirror_more = m.take_sent(&mut |i, f| sent.push((i, f.to_vec())));
        }
        let now = self.now();
        for (iface, frame) in sent {
            // Linux refuses a frame over the device's MTU (EMSGSIZE); the
            // mirror's devices take more, so such a frame is dropped here.
            let vlan = frame.get(12..14) == Some(&[0x81, 0x00][..]);
            let ethernet = self.ifs.iter().any(|(id, n)| {
                id == iface
                    && n.ethernet
                    && n.up
                    && frame.len() <= n.mtu + 14 + if vlan { 4 } else { 0 }
            });
            let Some(dev) = iface.checked_sub(ETH).and_then(|i| self.eths.get_mut(i)) else {
                continue;
            };
            if !ethernet {
                continue;
            }
            let Some(tx) = dev.transmit(now) else {
                continue;
            };
            tx.consume(frame.len(), |b| b.copy_from_slice(&frame));
            self.ifs.capture().borrow_mut().record(iface, true, &frame);
        }
    }

    /// The interfaces, mutably (captures, filters and addresses change here).
    pub fn interfaces_mut(&mut self) -> &mut Interfaces {
        &mut self.ifs
    }

    /// A netlink socket's stand-in is ready (see [`crate::netlink`]).
    pub(crate) fn netlink_ready(&mut self, idx: usize, hup: bool) {
        self.netlink.ready(idx, &mut self.ifs, &self.sockets, hup);
    }

    /// Whether netlink requests wait that a turn left unread.
    pub(crate) fn netlink_has_backlog(&self) -> bool {
        self.netlink.has_backlog()
    }

    /// Reads netlink requests a turn left unread.
    pub(crate) fn netlink_serve_backlog(&mut self) {
        self.netlink.serve_backlog(&mut self.ifs, &self.sockets);
    }

    /// New netlink sockets for the event loop to watch.
    pub(crate) fn netlink_drain_new(&mut self, watch: impl FnMut(usize, std::os::fd::RawFd)) {
        self.netlink.drain_new(watch);
    }

    /// The socket table, mutably (the event loop reports stand-in readiness here).
    pub(crate) fn sockets_mut(&mut self) -> &mut Sockets {
        &mut self.sockets
    }

    /// The first L2 device (`eth0`'s).
    pub fn eth_device(&self) -> Option<&D> {
        self.eths.first()
    }

    /// The first L2 device, mutably (to flush a device that batches frames).
    pub fn eth_device_mut(&mut self) -> Option<&mut D> {
        self.eths.first_mut()
    }

    /// The L2 devices, in interface order (`eth0` first).
    pub fn devices(&self) -> &[D] {
        &self.eths
    }

    /// The L2 devices, mutably.
    pub fn devices_mut(&mut self) -> &mut [D] {
        &mut self.eths
    }

    /// Hands a connection that the host accepted on a published port to the
    /// container's listener on `port` (see [`crate::publish`]); one no listener
    /// takes is reset.
    pub fn deliver_published(&mut self, port: u16, conn: std::os::fd::OwnedFd, peer: SocketAddr) {
        if let Err(conn) = self.sockets.deliver_published(&self.ifs, port, conn, peer) {
            let _ = crate::sys::set_linger_zero(std::os::fd::AsFd::as_fd(&conn));
        }
    }

    /// Makes eth0 the host uplink with `uplink`'s policy (its device is the
    /// embedder's business; see [`crate::uplink`]).
    pub fn set_uplink(&mut self, uplink: crate::uplink::Uplink) {
        self.ifs.set_uplink(uplink);
    }

    /// Puts a datagram back into the stand-in (inode `ino`) it was taken from, at
    /// the end of its queue and with its origin: the seccomp front end took it for
    /// a receive that a signal ended before the answer arrived. False if the
    /// socket is gone or its stand-in full (the datagram is then lost, as one may
    /// be).
    pub fn requeue_datagram(&mut self, ino: u64, data: &[u8]) -> bool {
        self.sockets.datagram_requeue(ino, data)
    }

    /// The container's TCP (`IPPROTO_TCP`) or UDP sockets as `ss` lists them.
    pub fn socket_list(&mut self, protocol: i32) -> Vec<crate::socket::diag::DiagEntry> {
        self.sockets.diag(&mut self.ifs, protocol)
    }

    /// Bytes of socket buffer the stack's sockets hold, with the closed ones kept
    /// for reuse (see [`crate::socket::budget`]): what `--max-buffer-memory`
    /// limits.
    pub fn buffer_memory(&self) -> usize {
        crate::socket::budget::in_use(&self.ifs) + self.ifs.recycled().borrow().bytes()
    }

    /// The loopback device.
    pub fn lo_device(&self) -> &LoopbackDevice {
        &self.lo
    }

    // ---- The embedding API: BSD calls on TCP sockets without a stand-in. ----

    /// `socket(domain, SOCK_STREAM, 0)`.
    pub fn tcp_socket(&mut self, domain: Domain) -> Result<SocketId, SocketError> {
        self.sockets
            .open(domain, libc::SOCK_STREAM, 0, false, false)
            .map(|(id, _)| id)
    }

    /// `bind`.
    pub fn bind(&mut self, id: SocketId, addr: SocketAddr) -> Result<(), BindError> {
        self.sockets.tcp_bind(&self.ifs, id, Target::Addr(addr))
    }

    /// `listen`.
    pub fn listen(&mut self, id: SocketId, backlog: i32) -> Result<(), ListenError> {
        self.sockets.tcp_listen(id, backlog, None)
    }

    /// `connect`: `Err(ConnectError::InProgress)` while the handshake runs; poll
    /// until [`Stack::is_connected`] or [`Stack::take_error`] says how it went.
    pub fn connect(&mut self, id: SocketId, addr: SocketAddr) -> Result<(), ConnectError> {
        let now = self.now();
        let r =
            self.sockets
                .tcp_connect(&mut self.ifs, id, Target::Addr(addr), None, now, &mut None);
        self.poll();
        r
    }

    /// `accept`: the next established connection and its peer, or `WouldBlock`.
    pub fn accept(&mut self, id: SocketId) -> Result<(SocketId, SocketAddr), AcceptError> {
        self.sockets.accept(id)
    }

    /// Whether a connection is established.
    pub fn is_connected(&self, id: SocketId) -> bool {
        self.sockets.is_connected(id)
    }

    /// `send` (never blocks: `WouldBlock` when the send buffer is full).
    pub fn send(&mut self, id: SocketId, data: &[u8]) -> Result<usize, IoError> {
        self.sockets.send(&mut self.ifs, id, data)
    }

    /// `recv` (never blocks: `WouldBlock` when nothing arrived; `Ok(0)` at the end).
    pub fn recv(&mut self, id: SocketId, buf: &mut [u8]) -> Result<usize, IoError> {
        self.sockets.recv(&mut self.ifs, id, buf)
    }

    /// `shutdown`.
    pub fn shutdown(&mut self, id: SocketId, how: i32) -> Result<(), ShutdownError> {
        self.sockets.tcp_shutdown(&mut self.ifs, id, how)
    }

    /// `close`.
    pub fn close(&mut self, id: SocketId) {
        let now = self.now();
        self.sockets.close(&mut self.ifs, id, now);
    }

    /// `getsockname`.
    pub fn local_addr(&self, id: SocketId) -> Result<SocketAddr, LookupError> {
        self.sockets.local_addr(id)
    }

    /// `getpeername`.
    pub fn peer_addr(&self, id: SocketId) -> Result<SocketAddr, LookupError> {
        self.sockets.peer_addr(id)
    }

    /// `getsockopt(SOL_SOCKET, SO_ERROR)`.
    pub fn take_error(&mut self, id: SocketId) -> i32 {
        self.sockets.take_error(id)
    }

    /// `setsockopt`.
    pub fn setsockopt(
        &mut self,
        id: SocketId,
        level: i32,
        name: i32,
        value: &[u8],
    ) -> Result<SetOutcome, OptionError> {
        self.sockets
            .setsockopt(&mut self.ifs, id, level, name, value)
    }

    /// `getsockopt` into `out`, returning the length.
    pub fn getsockopt(
        &mut self,
        id: SocketId,
        level: i32,
        name: i32,
        out: &mut [u8; MAX_OPT],
    ) -> Result<usize, OptionError> {
        self.sockets.getsockopt(&mut self.ifs, id, level, name, out)
    }
}

/// Sends the filter's answers to rejected arrivals out of `dev` (interface
/// `id`), recording them where a capture runs.
fn send_answers<D: Device>(dev: &mut D, hooks: crate::iface::Hooks<'_>, id: IfaceId, now: Instant) {
    use smoltcp::phy::TxToken;
    hooks.filter.borrow_mut().send_answers(id, |frame| {
        let Some(tx) = dev.transmit(now) else {
            return false;
        };
        tx.consume(frame.len(), |b| b.copy_from_slice(frame));
        let mut c = hooks.capture.borrow_mut();
        if c.active() {
            c.frame(id, true, frame);
        }
        true
    });
}
