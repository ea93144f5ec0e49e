//! The uplink's TCP fast path, on the socket layer's side: a `connect` routed
//! through the host uplink is not made by smoltcp but by a host socket that takes
//! the stand-in's place in the program (see [`crate::uplink`]).
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
