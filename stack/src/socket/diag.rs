//! What `ss` sees: the container's TCP and UDP sockets as `inet_diag` lists them
//! (served over `NETLINK_SOCK_DIAG` by [`crate::netlink`]).
//!
//! Listed as Linux lists them: TCP listeners and connections (not sockets that are
//! only made or bound), UDP sockets that are bound. The inode is the program's end
//! of the stand-in, the one `/proc/PID/fd` shows, so `ss -p` finds the process.
//! Host sockets of the uplink are the host's (its `ss` lists them).

use super::tcp::{TcpState, sock};
use super::{Proto, Sockets};
use crate::iface::Interfaces;
use std::net::SocketAddr;

/// One socket as `inet_diag` describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiagEntry {
    /// `TCP_*` state (10 listening, 1 established, 7 a UDP socket unconnected).
    pub state: u8,
    /// The local address.
    pub local: SocketAddr,
    /// The peer, when connected.
    pub remote: Option<SocketAddr>,
    /// The inode of the program's descriptor.
    pub inode: u64,
    /// Bytes waiting to be read, and to be sent.
    pub queues: (u32, u32),
    /// `SO_COOKIE`.
    pub cookie: u64,
    /// The socket is IPv6.
    pub v6: bool,
}

impl Sockets {
    /// The sockets of `protocol` (`IPPROTO_TCP`, `IPPROTO_UDP`).
    pub fn diag(&self, ifs: &mut Interfaces, protocol: i32) -> Vec<DiagEntry> {
        let mut out = Vec::new();
        for slot in &self.slots {
            let Some(s) = slot.val.as_ref() else {
                continue;
            };
            let inode = s
                .standin
                .as_ref()
                .map(|si| si.inode)
                .or(s.unpaired.as_ref().map(|u| u.inode))
                .unwrap_or(0);
            let v6 = s.domain == super::addr::Domain::Inet6;
            let entry = match (&s.proto, protocol) {
                (Proto::Tcp(TcpState::Listening(_)), libc::IPPROTO_TCP) => {
                    s.local.map(|local| DiagEntry {
                        state: 10,
                        local,
                        remote: None,
                        inode,
                        queues: (0, 0),
                        cookie: s.cookie,
                        v6,
                    })
                }
                (
                    Proto::Tcp(TcpState::Connecting(c) | TcpState::Connected(c)),
                    libc::IPPROTO_TCP,
                ) => {
                    let sk = sock(ifs, c.iface, c.handle);
                    s.local.map(|local| DiagEntry {
                        state: super::options::linux_tcp_state(sk.state()),
                        local,
                        remote: Some(c.remote),
                        inode,
                        queues: (sk.recv_queue() as u32, sk.send_queue() as u32),
                        cookie: s.cookie,
                        v6,
                    })
                }
                (Proto::Tcp(TcpState::Spliced(sp)), libc::IPPROTO_TCP) => {
                    s.local.map(|local| DiagEntry {
                        state: 1,
                        local,
                        remote: Some(sp.remote),
                        inode,
                        queues: (0, 0),
                        cookie: s.cookie,
                        v6,
                    })
                }
                (Proto::Udp(u), libc::IPPROTO_UDP) => s.local.map(|local| DiagEntry {
                    state: if u.connected.is_some() { 1 } else { 7 },
                    local,
                    remote: u.connected,
                    inode,
                    queues: (0, 0),
                    cookie: s.cookie,
                    v6,
                }),
                _ => None,
            };
            out.extend(entry);
        }
        out
    }
}
