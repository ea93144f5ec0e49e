//! The container's own rtnetlink: `AF_NETLINK`/`NETLINK_ROUTE` sockets served by
//! its stack, so that `ip`, glibc's `getifaddrs`/`if_nameindex` and Go's
//! `net.Interfaces` see and change the container's interfaces — never the host's.
//!
//! # Theory of operation
//!
//! A netlink socket stands in as a datagram stand-in (an `AF_UNIX`
//! `SOCK_SEQPACKET` pair, like a UDP socket's): the program holds one end. Its
//! requests reach the stack through the front ends' datagram path — `sendto` and
//! `sendmsg` with the kernel's address, which is how glibc and Go send them — as
//! `SendTo` requests, answered at once: the reply datagrams (a dump's
//! messages, then `NLMSG_DONE`; an `NLMSG_ERROR` with the errno or an
//! acknowledgement) are written into the stack's end, where the program's
//! `recvmsg` finds them. Their source (`Origin`) is the kernel's address (port 0).
//!
//! A change (`RTM_NEWADDR`, `RTM_DELADDR`, `RTM_NEWROUTE`, `RTM_DELROUTE`,
//! `RTM_SETLINK`) needs `CAP_NET_ADMIN` in the caller's effective set, as on Linux
//! (`EPERM` otherwise: an unprivileged program on a shared L2 segment must not
//! take other hosts' addresses); it is made on the stack's interfaces and announced to every netlink
//! socket of the container that joined the matching group (`ip monitor`).
//!
//! | request                 | served                                                   |
//! |-------------------------|----------------------------------------------------------|
//! | `RTM_GETLINK`           | dump, or one link by index or `IFLA_IFNAME`              |
//! | `RTM_GETADDR`           | dump (per family)                                        |
//! | `RTM_GETROUTE`          | dump of the main table: on-link subnets, default routes  |
//! | `RTM_GETNEIGH`          | an empty dump (smoltcp's neighbour cache is not exposed) |
//! | `RTM_NEWADDR`/`DELADDR` | on eth0                                                  |
//! | `RTM_NEWROUTE`/`DELROUTE` | default routes (one gateway per family)                |
//! | `RTM_SETLINK`/`NEWLINK` | up/down of eth0; an MTU equal to the current one         |
//! | anything else           | `EOPNOTSUPP`                                             |
//!
//! `NETLINK_SOCK_DIAG` sockets get `SOCK_DIAG_BY_FAMILY` dumps of the container's
//! TCP and UDP sockets (`ss`), from [`crate::socket::diag`].
//!
//! Replies a program does not read wait in a queue per socket (at most
//! 1 MiB, then dropped) and are written as its stand-in makes room.
//!
//! What a hostile program can make the stack do is bounded too:
//! - A datagram is served one message at a time, each message's replies
//!   queued before the next is read. Without that, one 64 KiB datagram of ~900
//!   socket dumps built hundreds of MiB of replies in one go.
//! - Socket dumps (`SOCK_DIAG`), whose cost grows with the container's sockets,
//!   are served at most [`DUMPS_PER_WINDOW`] per 100 ms for the whole
//!   container; one beyond is answered with `EBUSY` (Linux's answer to a dump
//!   it cannot start: one is under way), which `ss` reports and a program can
//!   retry. `ss` asks for one to four dumps.
//! - Once a socket's unread replies nearly fill its queue, a request for
//!   information (a dump, an `RTM_GET*`) is not built: it is answered with a
//!   short `ENOBUFS` error. Linux would stop the dump until the program reads
//!   and finish it then; the program here asks again. Changes are still made.
//! - The event loop reads at most [`READ_BATCH`] requests from a socket's
//!   stand-in per turn; the rest are read in the turns that follow, without
//!   sleeping. They are read also while replies wait unread: Linux serves a
//!   request at its `send`, whatever the reader does, and a program that sends
//!   a batch of requests before it reads any must not block for good.

mod diag;
mod route;
pub(crate) mod wire;

use crate::sys;
use std::os::fd::{AsFd, OwnedFd};

/// Netlink sockets a container may hold at once.
pub const MAX_SOCKETS: usize = 64;

/// Requests read from one socket's stand-in per turn of the event loop.
pub const READ_BATCH: usize = 16;

/// Socket dumps served per 100 ms, for the whole container.
pub const DUMPS_PER_WINDOW: u32 = 16;

/// The window [`DUMPS_PER_WINDOW`] counts in.
const DUMP_WINDOW: std::time::Duration = std::time::Duration::from_millis(100);

/// `NETLINK_ROUTE`.
pub const NETLINK_ROUTE: i32 = 0;
/// `NETLINK_SOCK_DIAG`.
pub const NETLINK_SOCK_DIAG: i32 = 4;
/// Reply bytes a socket may leave unread before more are dropped (a socket
/// dump of the largest container, 8192 sockets, is about 720 KiB).
const MAX_PENDING: usize = 1 << 20;
/// `SOL_NETLINK`.
pub const SOL_NETLINK: i32 = 270;

/// One netlink socket of the container.
pub(crate) struct NlSocket {
    /// The stack's end of its stand-in.
    t: OwnedFd,
    inode: u64,
    /// Its port id (`nl_pid`): the caller's pid for the first, then unique
    /// negatives, as Linux assigns them.
    pid: u32,
    /// Multicast groups joined (the `nl_groups` bitmask of groups 1..=32).
    groups: u32,
    ty: i32,
    protocol: i32,
    /// Its opener held `CAP_NET_ADMIN`: it may change interfaces, addresses,
    /// routes.
    admin: bool,
    /// Reply datagrams its stand-in had no room for yet.
    pending: std::collections::VecDeque<Vec<u8>>,
    pending_bytes: usize,
}

impl NlSocket {
    /// Whether its queue of unread replies is full: the next reply datagram
    /// (at most 64 KiB) may not fit.
    fn full(&self) -> bool {
        self.pending_bytes + 65536 > MAX_PENDING
    }

    /// Queues a datagram for the program and writes what fits.
    fn push(&mut self, d: Vec<u8>) {
        if self.pending_bytes + d.len() > MAX_PENDING {
            log::debug!("netlink: port {}: replies unread, one dropped", self.pid);
            return;
        }
        self.pending_bytes += d.len();
        self.pending.push_back(d);
        self.flush();
    }

    /// Writes pending datagrams until the stand-in is full.
    fn flush(&mut self) {
        while let Some(d) = self.pending.front() {
            match sys::send_nb(self.t.as_fd(), d, 0) {
                Ok(_) => {
                    self.pending_bytes -= d.len();
                    self.pending.pop_front();
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.pending.clear();
                    self.pending_bytes = 0;
                    return;
                }
            }
        }
    }
}

/// A container's netlink sockets.
#[derive(Default)]
pub struct Netlink {
    /// By index (the event loop's token), `None` where a socket closed.
    socks: Vec<Option<NlSocket>>,
    next_port: u32,
    /// Indices of sockets the event loop does not watch yet.
    new: Vec<usize>,
    /// Indices of sockets whose stand-ins hold requests a turn left unread.
    backlog: Vec<usize>,
    /// The buffer requests are read into (made at the first).
    rbuf: Vec<u8>,
    /// Requests served, and those refused (`ENOBUFS`, `EBUSY`).
    requests: (u64, u64),
    /// When the current dump window began, and the dumps served in it.
    dumps: Option<(std::time::Instant, u32)>,
}

/// Why a netlink call failed, as an errno.
pub type Errno = i32;

impl Netlink {
    /// `socket(AF_NETLINK, ty, protocol)`: the program's end of a new socket.
    /// `admin`: the opener holds `CAP_NET_ADMIN` (Linux checks a change against
    /// the credentials the socket was opened with).
    pub fn open(
        &mut self,
        ty: i32,
        protocol: i32,
        caller: u32,
        admin: bool,
    ) -> Result<OwnedFd, Errno> {
        match ty & 0xf {
            libc::SOCK_RAW | libc::SOCK_DGRAM => {}
            _ => return Err(libc::ESOCKTNOSUPPORT),
        }
        if protocol != NETLINK_ROUTE && protocol != NETLINK_SOCK_DIAG {
            return Err(libc::EPROTONOSUPPORT);
        }
        for (i, slot) in self.socks.iter_mut().enumerate() {
            // One whose requests wait in the backlog goes once they are served.
            if !self.backlog.contains(&i)
                && slot.as_ref().is_some_and(|s| sys::hung_up_now(s.t.as_fd()))
            {
                *slot = None;
            }
        }
        if self.live().count() >= MAX_SOCKETS {
            return Err(libc::ENOBUFS);
        }
        let (ours, theirs) = sys::seqpacket_pair().map_err(|_| libc::ENOBUFS)?;
        sys::set_nonblocking(ours.as_fd(), true).map_err(|_| libc::ENOBUFS)?;
        let (inode, _) = sys::inode(theirs.as_fd()).map_err(|_| libc::ENOBUFS)?;
        let pid = self.port_for(caller);
        let sock = NlSocket {
            t: ours,
            inode,
            pid,
            groups: 0,
            ty: ty & 0xf,
            protocol,
            admin,
            pending: Default::default(),
            pending_bytes: 0,
        };
        let idx = match self.socks.iter().position(Option::is_none) {
            Some(i) => {
                self.socks[i] = Some(sock);
                i
            }
            None => {
                self.socks.push(Some(sock));
                self.socks.len() - 1
            }
        };
        // A slot reused in the turn it was freed is in the list already (a second
        // watch of the same descriptor fails with EEXIST).
        if !self.new.contains(&idx) {
            self.new.push(idx);
        }
        Ok(theirs)
    }

    fn live(&self) -> impl Iterator<Item = &NlSocket> {
        self.socks.iter().flatten()
    }

    /// Hands the stack's ends of new sockets to the event loop (`idx`, fd).
    pub fn drain_new(&mut self, mut watch: impl FnMut(usize, std::os::fd::RawFd)) {
        for idx in std::mem::take(&mut self.new) {
            if let Some(s) = self.socks.get(idx).and_then(|s| s.as_ref()) {
                watch(idx, std::os::fd::AsRawFd::as_raw_fd(&s.t));
            }
        }
    }

    /// Socket `idx`'s stand-in is readable (requests sent without an address:
    /// `send`, `write`), writable (the program read replies), or hung up (the
    /// program closed it). Reads at most [`READ_BATCH`] requests (see the module
    /// docs).
    pub fn ready(
        &mut self,
        idx: usize,
        ifs: &mut crate::iface::Interfaces,
        sockets: &crate::socket::Sockets,
        hup: bool,
    ) {
        self.backlog.retain(|&i| i != idx);
        if let Some(s) = self.socks.get_mut(idx).and_then(|s| s.as_mut()) {
            s.flush();
        }
        let mut buf = std::mem::take(&mut self.rbuf);
        buf.resize(65536, 0);
        let mut read = 0;
        let drained = loop {
            let Some(s) = self.socks.get(idx).and_then(|s| s.as_ref()) else {
                self.rbuf = buf;
                return;
            };
            if read == READ_BATCH {
                self.backlog.push(idx);
                break false;
            }
            match sys::recv_record(s.t.as_fd(), &mut buf) {
                // An empty send is ignored, as Linux does; what follows is read.
                Ok(Some(0)) => read += 1,
                Ok(Some(n)) => {
                    read += 1;
                    let inode = s.inode;
                    let n = n.min(buf.len());
                    // Sent without an address: the opener's CAP_NET_ADMIN
                    // decides, as on Linux.
                    let _ = self.send(inode, ifs, sockets, &[], &buf[..n], false);
                }
                Ok(None) | Err(_) => break true,
            }
        };
        self.rbuf = buf;
        // A closed socket goes once its last requests are served.
        if hup
            && drained
            && self
                .socks
                .get(idx)
                .and_then(|s| s.as_ref())
                .is_some_and(|s| sys::hung_up_now(s.t.as_fd()))
        {
            self.socks[idx] = None;
            self.backlog.retain(|&i| i != idx);
        }
    }

    /// Request messages served, and those refused because their socket's
    /// replies went unread or the container asked for too many socket dumps
    /// (see the module docs).
    pub fn requests(&self) -> (u64, u64) {
        self.requests
    }

    /// Counts a socket dump against the window's budget; false when it is spent
    /// ([`DUMPS_PER_WINDOW`]).
    fn take_dump(&mut self) -> bool {
        let now = std::time::Instant::now();
        let (start, n) = match self.dumps {
            Some((start, n)) if now.duration_since(start) < DUMP_WINDOW => (start, n),
            _ => (now, 0),
        };
        if n >= DUMPS_PER_WINDOW {
            return false;
        }
        self.dumps = Some((start, n + 1));
        true
    }

    /// Whether requests wait that a turn left unread ([`Netlink::serve_backlog`]).
    pub fn has_backlog(&self) -> bool {
        !self.backlog.is_empty()
    }

    /// Reads the requests a turn left unread, a batch per socket.
    pub fn serve_backlog(
        &mut self,
        ifs: &mut crate::iface::Interfaces,
        sockets: &crate::socket::Sockets,
    ) {
        for idx in std::mem::take(&mut self.backlog) {
            // Its hang-up may have come in the turn that left it.
            self.ready(idx, ifs, sockets, true);
        }
    }

    fn port_for(&mut self, caller: u32) -> u32 {
        // Linux's first port of a process is its pid as the process sees it
        // (in its own pid namespace: a sandbox checks replies against getpid()).
        let caller = own_pid(caller).unwrap_or(caller);
        if caller != 0 && !self.live().any(|s| s.pid == caller) {
            return caller;
        }
        self.next_port = self.next_port.wrapping_add(1);
        (-(4096i64 + i64::from(self.next_port)) as i32) as u32
    }

    /// Whether `inode` is one of the container's netlink sockets.
    pub fn has(&self, inode: u64) -> bool {
        self.live().any(|s| s.inode == inode)
    }

    fn get(&self, inode: u64) -> Option<&NlSocket> {
        self.live().find(|s| s.inode == inode)
    }

    fn get_mut(&mut self, inode: u64) -> Option<&mut NlSocket> {
        self.socks.iter_mut().flatten().find(|s| s.inode == inode)
    }

    /// `bind`: `nl_groups` joins groups; a nonzero `nl_pid` must be the socket's
    /// own (netcell assigns ports at `socket`).
    pub fn bind(&mut self, inode: u64, addr: &[u8]) -> Result<(), Errno> {
        let (pid, groups) = parse_addr(addr)?;
        let s = self.get_mut(inode).ok_or(libc::EBADF)?;
        if pid != 0 && pid != s.pid {
            return Err(libc::EADDRINUSE);
        }
        s.groups |= groups;
        Ok(())
    }

    /// `getsockname`: the socket's `sockaddr_nl`.
    pub fn name(&self, inode: u64, out: &mut [u8]) -> Result<usize, Errno> {
        let s = self.get(inode).ok_or(libc::EBADF)?;
        Ok(write_addr(s.pid, s.groups, out))
    }

    /// `setsockopt`: `SOL_NETLINK` memberships and flags; socket-level options
    /// apply to the stand-in natively (`Ok(true)`).
    pub fn setsockopt(
        &mut self,
        inode: u64,
        level: i32,
        name: i32,
        v: &[u8],
    ) -> Result<bool, Errno> {
        let s = self.get_mut(inode).ok_or(libc::EBADF)?;
        match (level, name) {
            (SOL_NETLINK, 1 | 2) => {
                let g = u32::from_ne_bytes(
                    v.get(..4)
                        .ok_or(libc::EINVAL)?
                        .try_into()
                        .unwrap_or_default(),
                );
                if !(1..=32).contains(&g) {
                    // Groups above 32 exist on Linux; none of them is served here.
                    return if name == 1 {
                        Err(libc::EINVAL)
                    } else {
                        Ok(false)
                    };
                }
                let bit = 1u32 << (g - 1);
                if name == 1 {
                    s.groups |= bit;
                } else {
                    s.groups &= !bit;
                }
                Ok(false)
            }
            // NETLINK_PKTINFO, BROADCAST_ERROR, NO_ENOBUFS, LISTEN_ALL_NSID,
            // CAP_ACK, EXT_ACK, GET_STRICT_CHK: accepted.
            (SOL_NETLINK, 3..=12) => Ok(false),
            (SOL_NETLINK, _) => Err(libc::ENOPROTOOPT),
            (libc::SOL_SOCKET, _) => Ok(true),
            _ => Err(libc::ENOPROTOOPT),
        }
    }

    /// `getsockopt` of the socket's identity options (`SO_DOMAIN`, `SO_TYPE`,
    /// `SO_PROTOCOL`); `None` for the others (native on the stand-in).
    pub fn getsockopt(&self, inode: u64, level: i32, name: i32) -> Option<i32> {
        let s = self.get(inode)?;
        match (level, name) {
            (libc::SOL_SOCKET, libc::SO_DOMAIN) => Some(libc::AF_NETLINK),
            (libc::SOL_SOCKET, libc::SO_TYPE) => Some(s.ty),
            (libc::SOL_SOCKET, libc::SO_PROTOCOL) => Some(s.protocol),
            _ => None,
        }
    }

    /// A request datagram from socket `inode`, served on `ifs`: replies go into
    /// its stand-in, change notifications to the sockets that joined their groups.
    /// Returns the datagram's length (the `sendto` result).
    pub fn send(
        &mut self,
        inode: u64,
        ifs: &mut crate::iface::Interfaces,
        sockets: &crate::socket::Sockets,
        addr: &[u8],
        data: &[u8],
        admin: bool,
    ) -> Result<usize, Errno> {
        if !addr.is_empty() {
            let (pid, _) = parse_addr(addr)?;
            if pid != 0 {
                // To another socket's port: none is served (the kernel would
                // deliver it; programs talk to the kernel only).
                return Err(libc::ECONNREFUSED);
            }
        }
        let (pid, protocol, opener_admin) = {
            let s = self.get(inode).ok_or(libc::EBADF)?;
            (s.pid, s.protocol, s.admin)
        };
        let admin = admin || opener_admin;
        // One message at a time, its replies queued before the next is served
        // (see the module docs).
        let (msgs, well_formed) = wire::messages(data);
        if !well_formed {
            log::debug!("netlink: a malformed message from port {pid} ignored");
        }
        for m in &msgs {
            let info = protocol == NETLINK_SOCK_DIAG || route::is_get(m.ty);
            let refusal = if m.flags & wire::consts::NLM_F_REQUEST == 0 {
                None
            } else if info && self.get(inode).is_none_or(NlSocket::full) {
                Some(libc::ENOBUFS)
            } else if protocol == NETLINK_SOCK_DIAG && !self.take_dump() {
                Some(libc::EBUSY)
            } else {
                None
            };
            if let Some(errno) = refusal {
                self.requests.1 += 1;
                let mut w = wire::Writer::default();
                w.error(m, errno, pid);
                if let Some(s) = self.get_mut(inode) {
                    s.push(w.buf);
                }
                continue;
            }
            self.requests.0 += 1;
            let (replies, events) = match protocol {
                NETLINK_SOCK_DIAG => (diag::serve(sockets, ifs, m.whole, pid), Vec::new()),
                _ => route::serve(ifs, sockets, m.whole, pid, admin),
            };
            if let Some(s) = self.get_mut(inode) {
                for r in replies {
                    s.push(r);
                }
            }
            for (group, msg) in events {
                for s in self.socks.iter_mut().flatten() {
                    if s.protocol == NETLINK_ROUTE && s.groups & group != 0 {
                        s.push(msg.clone());
                    }
                }
            }
        }
        Ok(data.len())
    }
}

/// Serves one `NETLINK_ROUTE` request datagram on `ifs` as port `pid`; the reply
/// datagrams. For fuzzing and tests: what a socket's `send` does, without one.
#[doc(hidden)]
pub fn serve_route(ifs: &mut crate::iface::Interfaces, data: &[u8], pid: u32) -> Vec<Vec<u8>> {
    let sockets = crate::socket::Sockets::new(Default::default());
    route::serve(ifs, &sockets, data, pid, true).0
}

/// A container's interfaces as fuzzing starts from them: `lo`, `eth0` with
/// 10.88.0.2/24, fd00::2/64 and a gateway, and `eth1` with 10.77.0.2/24, on
/// in-memory devices.
#[doc(hidden)]
pub fn sample_interfaces() -> crate::iface::Interfaces {
    use smoltcp::wire::{IpAddress, IpCidr};
    let mut lo = crate::device::LoopbackDevice::new();
    let (mut dev, _peer) = crate::device::PipeDevice::pair(1500);
    let cfg = crate::EthConfig {
        name: "eth0".into(),
        addrs: vec![
            IpCidr::new(IpAddress::v4(10, 88, 0, 2), 24),
            IpCidr::new(IpAddress::v6(0xfd00, 0, 0, 0, 0, 0, 0, 2), 64),
        ],
        gateways: vec![IpAddress::v4(10, 88, 0, 1)],
        ..Default::default()
    };
    let (mut dev1, _peer1) = crate::device::PipeDevice::pair(9000);
    let cfg1 = crate::EthConfig {
        addrs: vec![IpCidr::new(IpAddress::v4(10, 77, 0, 2), 24)],
        ..Default::default()
    };
    crate::iface::Interfaces::new(
        &mut lo,
        vec![(&mut dev, &cfg), (&mut dev1, &cfg1)],
        smoltcp::time::Instant::ZERO,
    )
    .expect("a valid sample configuration")
}

/// A `sockaddr_nl`: `nl_family`, pad, `nl_pid`, `nl_groups`.
fn parse_addr(a: &[u8]) -> Result<(u32, u32), Errno> {
    if a.len() < 12 {
        return Err(libc::EINVAL);
    }
    if u16::from_ne_bytes([a[0], a[1]]) != libc::AF_NETLINK as u16 {
        return Err(libc::EINVAL);
    }
    Ok((
        u32::from_ne_bytes(a[4..8].try_into().unwrap_or_default()),
        u32::from_ne_bytes(a[8..12].try_into().unwrap_or_default()),
    ))
}

/// Writes a `sockaddr_nl`; returns its length (12).
pub fn write_addr(pid: u32, groups: u32, out: &mut [u8]) -> usize {
    let mut a = [0u8; 12];
    a[..2].copy_from_slice(&(libc::AF_NETLINK as u16).to_ne_bytes());
    a[4..8].copy_from_slice(&pid.to_ne_bytes());
    a[8..12].copy_from_slice(&groups.to_ne_bytes());
    let n = out.len().min(12);
    out[..n].copy_from_slice(&a[..n]);
    n
}

/// The process id of thread `tid` as its own pid namespace numbers it (the last
/// `NStgid` of `/proc/TID/status`).
fn own_pid(tid: u32) -> Option<u32> {
    if tid == 0 {
        return None;
    }
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("NStgid:"))?;
    line.split_whitespace().last()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_reused_before_the_loop_watches_it_is_watched_once() {
        let mut nl = Netlink::default();
        let first = nl.open(libc::SOCK_RAW, NETLINK_ROUTE, 1, false).unwrap();
        drop(first); // the program closes it before the event loop looked
        let _second = nl.open(libc::SOCK_RAW, NETLINK_ROUTE, 1, false).unwrap();
        let mut watched = Vec::new();
        nl.drain_new(|idx, fd| watched.push((idx, fd)));
        assert_eq!(watched.len(), 1, "{watched:?}");
    }

    /// A `SOCK_DIAG_BY_FAMILY` dump of every TCP socket (72 bytes).
    fn dump_request() -> Vec<u8> {
        let mut m = Vec::with_capacity(72);
        m.extend_from_slice(&72u32.to_ne_bytes());
        m.extend_from_slice(&20u16.to_ne_bytes()); // SOCK_DIAG_BY_FAMILY
        m.extend_from_slice(&0x301u16.to_ne_bytes()); // NLM_F_REQUEST | NLM_F_DUMP
        m.extend_from_slice(&[0; 8]); // seq, pid
        m.extend_from_slice(&[libc::AF_INET as u8, libc::IPPROTO_TCP as u8, 0, 0]);
        m.extend_from_slice(&u32::MAX.to_ne_bytes()); // every state
        m.resize(72, 0);
        m
    }

    /// A container with `n` TCP listeners, and a `NETLINK_SOCK_DIAG` socket of
    /// it: (netlink, interfaces, sockets, the program's end, its inode).
    fn diag_with_sockets(
        n: usize,
    ) -> (
        Netlink,
        crate::iface::Interfaces,
        crate::socket::Sockets,
        OwnedFd,
        u64,
    ) {
        let ifs = sample_interfaces();
        let mut sockets = crate::socket::Sockets::new(Default::default());
        for i in 0..n {
            let (id, _) = sockets
                .open(
                    crate::socket::Domain::Inet,
                    libc::SOCK_STREAM,
                    0,
                    false,
                    false,
                )
                .unwrap();
            let at = std::net::SocketAddr::from(([127, 0, 0, 1], 20000 + i as u16));
            sockets
                .tcp_bind(&ifs, id, crate::socket::addr::Target::Addr(at))
                .unwrap();
            sockets.tcp_listen(id, 8, None).unwrap();
        }
        let mut nl = Netlink::default();
        let theirs = nl
            .open(libc::SOCK_RAW, NETLINK_SOCK_DIAG, 1, false)
            .unwrap();
        let inode = nl.live().next().unwrap().inode;
        (nl, ifs, sockets, theirs, inode)
    }

    /// The errnos of the `NLMSG_ERROR`s among the reply datagrams waiting in
    /// the program's end, and how many datagrams there were.
    fn errors_read(fd: &OwnedFd) -> (Vec<i32>, usize) {
        let mut buf = vec![0u8; 1 << 16];
        let (mut errs, mut n) = (Vec::new(), 0);
        while let Ok(Some(len)) = sys::recv_record(fd.as_fd(), &mut buf) {
            n += 1;
            let (msgs, _) = wire::messages(&buf[..len]);
            for m in msgs {
                if m.ty == wire::consts::NLMSG_ERROR && m.body.len() >= 4 {
                    errs.push(-i32::from_ne_bytes(m.body[..4].try_into().unwrap()));
                }
            }
        }
        (errs, n)
    }

    /// The program reads until nothing more comes, the loop writing what
    /// waited as its end makes room: the errnos of every `NLMSG_ERROR`.
    fn read_everything(
        nl: &mut Netlink,
        ifs: &mut crate::iface::Interfaces,
        sockets: &crate::socket::Sockets,
        theirs: &OwnedFd,
    ) -> Vec<i32> {
        let mut all = Vec::new();
        loop {
            let (errs, n) = errors_read(theirs);
            all.extend(errs);
            nl.ready(0, ifs, sockets, false);
            if n == 0 && nl.live().all(|s| s.pending.is_empty()) {
                return all;
            }
        }
    }

    /// A datagram of 900 socket dumps (each walks every socket of the
    /// container) gets the window's 16, and `EBUSY` for the rest; the next
    /// window serves dumps again.
    #[test]
    fn socket_dumps_beyond_the_window_s_budget_are_refused_with_ebusy() {
        let (mut nl, mut ifs, sockets, theirs, inode) = diag_with_sockets(300);
        let flood = dump_request().repeat(900);
        assert_eq!(
            nl.send(inode, &mut ifs, &sockets, &[], &flood, false),
            Ok(flood.len())
        );
        let (served, refused) = nl.requests();
        assert!(served <= DUMPS_PER_WINDOW as u64, "{served} dumps built");
        assert_eq!(served + refused, 900);
        let errs = read_everything(&mut nl, &mut ifs, &sockets, &theirs);
        let busy = errs.iter().filter(|&&e| e == libc::EBUSY).count();
        assert_eq!(busy as u64, refused, "each refused dump is told EBUSY");
        std::thread::sleep(DUMP_WINDOW);
        nl.send(inode, &mut ifs, &sockets, &[], &dump_request(), false)
            .unwrap();
        assert_eq!(nl.requests(), (served + 1, refused), "served again");
    }

    /// Once a socket's unread replies nearly fill its queue, requests for
    /// information are answered with ENOBUFS instead of being built; changes
    /// would still be made.
    #[test]
    fn information_requests_are_not_built_while_replies_go_unread() {
        let mut ifs = sample_interfaces();
        let sockets = crate::socket::Sockets::new(Default::default());
        let mut nl = Netlink::default();
        let theirs = nl.open(libc::SOCK_RAW, NETLINK_ROUTE, 1, false).unwrap();
        let inode = nl.live().next().unwrap().inode;
        // RTM_GETLINK dumps: a few hundred bytes of reply each.
        let mut m = Vec::new();
        m.extend_from_slice(&32u32.to_ne_bytes());
        m.extend_from_slice(&wire::consts::RTM_GETLINK.to_ne_bytes());
        m.extend_from_slice(&0x301u16.to_ne_bytes());
        m.resize(32, 0);
        let flood = m.repeat(2000);
        for _ in 0..4 {
            nl.send(inode, &mut ifs, &sockets, &[], &flood, false)
                .unwrap();
        }
        let (served, refused) = nl.requests();
        assert!(refused > 0, "{served} served, none refused");
        assert!(nl.live().next().unwrap().pending_bytes <= MAX_PENDING);
        let errs = read_everything(&mut nl, &mut ifs, &sockets, &theirs);
        let nobufs = errs.iter().filter(|&&e| e == libc::ENOBUFS).count();
        assert!(nobufs > 0, "refusals are told ENOBUFS");
    }

    /// Requests written into a socket's stand-in are read a batch per turn; the
    /// rest wait for the turns that follow (the event loop does not sleep
    /// while they wait).
    #[test]
    fn requests_written_to_the_standin_are_read_a_batch_per_turn() {
        let (mut nl, mut ifs, sockets, theirs, _) = diag_with_sockets(2);
        for _ in 0..40 {
            sys::send_nb(theirs.as_fd(), &dump_request(), 0).unwrap();
        }
        nl.ready(0, &mut ifs, &sockets, false);
        assert_eq!(nl.requests().0, READ_BATCH as u64);
        assert!(nl.has_backlog());
        let mut turns = 1;
        while nl.has_backlog() {
            errors_read(&theirs);
            nl.serve_backlog(&mut ifs, &sockets);
            turns += 1;
        }
        let (served, refused) = nl.requests();
        assert_eq!(served + refused, 40, "each request answered once");
        assert_eq!(turns, 40usize.div_ceil(READ_BATCH));
        // The program closes it: the socket goes at its hang-up.
        drop(theirs);
        nl.ready(0, &mut ifs, &sockets, true);
        assert_eq!(nl.live().count(), 0);
    }

    /// A program that sends requests and closes its socket at once: the
    /// requests a turn left are still served, also when another socket opens
    /// meanwhile (which sweeps closed ones), and then the socket goes.
    #[test]
    fn requests_left_by_a_closed_socket_are_served_before_it_goes() {
        let (mut nl, mut ifs, sockets, theirs, _) = diag_with_sockets(2);
        for _ in 0..40 {
            sys::send_nb(theirs.as_fd(), &dump_request(), 0).unwrap();
        }
        drop(theirs);
        nl.ready(0, &mut ifs, &sockets, true);
        assert!(nl.has_backlog());
        let _other = nl.open(libc::SOCK_RAW, NETLINK_ROUTE, 1, false).unwrap();
        assert_eq!(nl.live().count(), 2, "kept while its requests wait");
        while nl.has_backlog() {
            nl.serve_backlog(&mut ifs, &sockets);
        }
        let (served, refused) = nl.requests();
        assert_eq!(served + refused, 40);
        assert_eq!(nl.live().count(), 1, "gone once they were served");
    }

    /// Crashes the fuzzer found, each answered now with an error.
    #[test]
    fn fuzz_crashes_are_refused() {
        // RTM_NEWADDR of 255.255.255.255/24 on eth0: smoltcp panicked.
        let new_broadcast: &[u8] = &[
            32, 0, 0, 0, 20, 0, 5, 6, 39, 160, 13, 157, 255, 0, 0, 0, 2, 24, 0, 0, 2, 0, 0, 0, 8,
            0, 2, 0, 255, 255, 255, 255,
        ];
        let mut ifs = sample_interfaces();
        let replies = serve_route(&mut ifs, new_broadcast, 1);
        let r = &replies[0];
        assert_eq!(u16::from_ne_bytes([r[4], r[5]]), 2, "NLMSG_ERROR");
        assert_eq!(
            i32::from_ne_bytes(r[16..20].try_into().unwrap()),
            -libc::EINVAL
        );
        assert_eq!(ifs.addrs(crate::iface::ETH).len(), 3, "nothing added");
    }
}
