//! Host TCP sockets in a program's hands, on the socket layer's side: the
//! uplink's fast path — a `connect` routed through the host uplink is not made by
//! smoltcp but by a host socket that takes the stand-in's place in the program
//! (see [`crate::uplink`]) — and the connections of published ports, which the
//! host accepted and a container listener's `accept` returns (see
//! [`crate::publish`]).
//!
//! The socket leaves the stack at that moment: its stand-in is dropped (the front
//! end replaces the program's descriptor), its port binding freed. What the stack
//! keeps is a bounded table from the host socket's inode to the addresses the
//! program must see — its `getsockname` shows the container's address, not the
//! host's. An entry outlives the socket (the stack is not told of its close) until
//! newer ones push it out; inodes of sockets are not reused while the system runs
//! long enough for that to matter.

use super::super::addr::{Domain, Target};
use super::super::errno::ConnectError;
use super::super::{Proto, Sockets};
use super::{TcpState, is_loopback, to_ip};
use crate::iface::{Interfaces, LO};
use crate::socket::SocketId;
use crate::sys;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};

/// A host socket handed to a program.
#[derive(Clone, Copy, Debug)]
pub struct Handed {
    /// The program's socket's family.
    pub domain: Domain,
    /// What `getsockname` answers: the container's address and the host socket's
    /// port.
    pub local: SocketAddr,
    /// What `getpeername` answers where it is not the kernel's: a client on the
    /// host's loopback is the uplink's gateway inside (the container's loopback is
    /// its own).
    pub peer: Option<SocketAddr>,
}

/// Host sockets handed to programs, by inode (bounded: the oldest entries go).
#[derive(Default)]
pub(crate) struct HandedTable {
    map: HashMap<u64, Handed>,
    order: VecDeque<u64>,
}

/// Entries kept at most.
const HANDED: usize = 65536;

impl HandedTable {
    fn insert(&mut self, ino: u64, h: Handed) {
        if self.order.len() >= HANDED
            && let Some(old) = self.order.pop_front()
        {
            self.map.remove(&old);
        }
        self.order.push_back(ino);
        self.map.insert(ino, h);
    }
}

impl Sockets {
    /// The host socket handed to a program under this inode, if it is one.
    pub(crate) fn handed(&self, ino: u64) -> Option<Handed> {
        self.tcp.handed.map.get(&ino).copied()
    }

    /// Queues a connection the host accepted on a published port for the
    /// container's listener on `port`; gives it back when no listener takes it.
    pub(crate) fn deliver_published(
        &mut self,
        ifs: &Interfaces,
        port: u16,
        conn: OwnedFd,
        peer: SocketAddr,
    ) -> Result<(), OwnedFd> {
        let peer_v4 = match peer {
            SocketAddr::V4(_) => true,
            SocketAddr::V6(a) => a.ip().to_ipv4_mapped().is_some(),
        };
        // A connection from the host waits in netcell like a SYN the container's
        // listener has not accepted yet, and counts against the same limits
        // (--max-pending, --max-sockets, the buffer budget): a program that
        // never accepts must not make netcell hold host sockets without bound.
        if self.pending_over_limits("a published port's connection refused") {
            return Err(conn);
        }
        let ids = self.tcp.listeners.get(&port).cloned().unwrap_or_default();
        let takes = |s: &super::super::Socket| -> Option<std::net::IpAddr> {
            let local = s.local?;
            if !(local.ip().is_unspecified() || ifs.is_local(&to_ip(local.ip())))
                || is_loopback(&local.ip())
            {
                return None;
            }
            let family_ok = match s.domain {
                Domain::Inet => peer_v4,
                Domain::Inet6 => !s.opts.v6only || !peer_v4,
            };
            if !family_ok {
                return None;
            }
            // The container's address the client reached, in the listener's family.
            let mine = ifs
                .addrs(crate::iface::ETH)
                .iter()
                .map(|c| std::net::IpAddr::from(c.address()))
                .find(|a| {
                    a.is_ipv4() == peer_v4
                        && !matches!(a, std::net::IpAddr::V6(v6) if v6.is_unicast_link_local())
                });
            let mine = if local.ip().is_unspecified() {
                mine?
            } else {
                local.ip()
            };
            Some(match (s.domain, mine) {
                (Domain::Inet6, std::net::IpAddr::V4(a)) => {
                    std::net::IpAddr::V6(a.to_ipv6_mapped())
                }
                (_, a) => a,
            })
        };
        let Some((id, mine)) = ids.iter().find_map(|&id| {
            let s = self.get(id)?;
            let Proto::Tcp(TcpState::Listening(l)) = &s.proto else {
                return None;
            };
            if s.standin.is_none() || l.load() >= l.capacity() {
                return None;
            }
            takes(s).map(|m| (id, m))
        }) else {
            log::debug!("published port {port}: no listener takes {peer}; reset");
            return Err(conn);
        };
        let Some(s) = self.get_mut(id) else {
            return Err(conn);
        };
        let domain = s.domain;
        let local = SocketAddr::new(mine, port);
        // A client on the host's own loopback must not look like the container's
        // (services trust their loopback): through the uplink it is the gateway.
        let from_host_loopback = match peer.ip() {
            std::net::IpAddr::V4(a) => a.is_loopback(),
            std::net::IpAddr::V6(a) => a
                .to_ipv4_mapped()
                .map_or(a.is_loopback(), |v| v.is_loopback()),
        };
        let rewritten = (from_host_loopback && ifs.uplink().is_some()).then(|| {
            let v4 = peer.is_ipv4()
                || matches!(peer.ip(), std::net::IpAddr::V6(a) if a.to_ipv4_mapped().is_some());
            SocketAddr::new(crate::uplink::gateway_of(!v4), peer.port())
        });
        let peer = rewritten.unwrap_or(peer);
        let peer = match (domain, peer) {
            (Domain::Inet6, SocketAddr::V4(a)) => {
                SocketAddr::new(std::net::IpAddr::V6(a.ip().to_ipv6_mapped()), a.port())
            }
            (Domain::Inet, SocketAddr::V6(a)) => match a.ip().to_ipv4_mapped() {
                Some(v4) => SocketAddr::new(v4.into(), a.port()),
                None => return Err(conn),
            },
            (_, p) => p,
        };
        let mut l_enc = [0u8; crate::socket::addr::MAX_ENCODED];
        let mut p_enc = [0u8; crate::socket::addr::MAX_ENCODED];
        let ll = crate::socket::addr::encode(domain, local, &mut l_enc);
        let pl = crate::socket::addr::encode(domain, peer, &mut p_enc);
        let record = netcell_proto::AcceptRecord {
            local: (l_enc, ll as u32),
            peer: (p_enc, pl as u32),
        };
        let Ok((ino, _)) = sys::inode(conn.as_fd()) else {
            return Err(conn);
        };
        let Proto::Tcp(TcpState::Listening(l)) = &mut s.proto else {
            return Err(conn);
        };
        l.published.push_back((record, conn));
        self.tcp.handed.insert(
            ino,
            Handed {
                domain,
                local,
                peer: rewritten.map(|_| peer),
            },
        );
        log::debug!("published port {port}: {peer} -> listener {}", id.index());
        Ok(())
    }

    /// The fast path, if `dst` is routed through the host uplink: opens the host
    /// connection and returns its socket for the front end to put in place of the
    /// stand-in `program_end`; the stack forgets the socket. `Ok(None)`: the
    /// stack's own path serves this connect (no uplink, another route, or a
    /// condition that path reports).
    pub(super) fn uplink_connect(
        &mut self,
        ifs: &mut Interfaces,
        id: SocketId,
        target: Target,
        program_end: Option<&OwnedFd>,
    ) -> Result<Option<OwnedFd>, ConnectError> {
        let (Some(uplink), Target::Addr(dst), Some(end)) = (ifs.uplink(), target, program_end)
        else {
            return Ok(None);
        };
        let s = self.get(id).ok_or(ConnectError::NoSuchSocket)?;
        if !matches!(s.proto, Proto::Tcp(TcpState::Closed { failed: None })) {
            return Ok(None);
        }
        let family_ok = match (s.domain, dst) {
            (Domain::Inet, SocketAddr::V6(_)) => false,
            (Domain::Inet6, SocketAddr::V4(_)) => false,
            (Domain::Inet6, SocketAddr::V6(a)) => {
                !(s.opts.v6only && a.ip().to_ipv4_mapped().is_some())
            }
            _ => true,
        };
        if !family_ok || dst.port() == 0 {
            return Ok(None);
        }
        let Some(route) = ifs.route(&to_ip(dst.ip())) else {
            return Ok(None);
        };
        if route.iface == LO {
            return Ok(None);
        }
        if s.opts
            .bindtodevice
            .as_deref()
            .is_some_and(|d| ifs.by_name(d) != Some(route.iface))
        {
            return Ok(None);
        }
        if s.local.is_some_and(|l| is_loopback(&l.ip())) {
            return Ok(None);
        }
        // Only the program's own stand-in is replaced.
        let standin_ino = s
            .standin
            .as_ref()
            .map(|si| si.inode)
            .or(s.unpaired.as_ref().map(|u| u.inode));
        match sys::inode(end.as_fd()) {
            Ok((ino, _)) if Some(ino) == standin_ino => {}
            _ => return Err(ConnectError::BadStandIn),
        }
        // The filter sees the connection here, once: its bytes never pass the
        // stack (the host picks the source port later: rules see 0).
        ifs.filter()
            .borrow_mut()
            .check_start(
                route.iface,
                crate::filter::rules::Proto::Tcp,
                route.src,
                0,
                to_ip(dst.ip()),
                dst.port(),
                true,
            )
            .map_err(|e| {
                if e == libc::EPERM {
                    ConnectError::Filtered
                } else {
                    ConnectError::Refused
                }
            })?;
        let v6 = s.domain == Domain::Inet6;
        let (fd, port) = uplink.connect_tcp(v6, dst, &s.opts)?;
        let (ino, _) = sys::inode(fd.as_fd()).map_err(|_| ConnectError::NoBuffers)?;
        let local_ip: std::net::IpAddr = route.src.into();
        let local_ip = match (v6, local_ip) {
            (true, std::net::IpAddr::V4(a)) => std::net::IpAddr::V6(a.to_ipv6_mapped()),
            (_, a) => a,
        };
        let domain = s.domain;
        self.tcp.handed.insert(
            ino,
            Handed {
                domain,
                local: SocketAddr::new(local_ip, port),
                peer: None,
            },
        );
        log::debug!(
            "tcp: socket {} handed to the host: {} -> {dst}",
            id.index(),
            SocketAddr::new(local_ip, port)
        );
        self.drop_socket(ifs, id);
        Ok(Some(fd))
    }
}
