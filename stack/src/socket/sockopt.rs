//! `setsockopt`/`getsockopt` of every socket: the facts an option's answer needs
//! (type, protocol, state, MTU), the options kept in the socket and applied to a
//! live TCP connection. What each option means is [`super::options`]; the options
//! only one protocol knows are its own (`udp::opts`).

use super::options::{self, Facts, SetOutcome};
use super::tcp::{TcpState, sock};
use super::{Errno, Proto, Socket, SocketId, Sockets, addr};
use crate::iface::Interfaces;

impl Sockets {
    pub(crate) fn facts(&self, ifs: &mut Interfaces, s: &Socket) -> Facts {
        let (state, mtu) = match &s.proto {
            Proto::Tcp(TcpState::Connected(c) | TcpState::Connecting(c)) => {
                let mtu = ifs.get(c.iface).mtu;
                (Some(sock(ifs, c.iface, c.handle).state()), Some(mtu))
            }
            _ => (None, None),
        };
        let (sotype, protocol) = match s.proto {
            Proto::Tcp(_) => (libc::SOCK_STREAM, libc::IPPROTO_TCP),
            Proto::Udp(_) => (libc::SOCK_DGRAM, libc::IPPROTO_UDP),
            Proto::Icmp(_) if s.domain == addr::Domain::Inet6 => {
                (libc::SOCK_DGRAM, libc::IPPROTO_ICMPV6)
            }
            Proto::Icmp(_) => (libc::SOCK_DGRAM, libc::IPPROTO_ICMP),
            Proto::Raw(ref r) => (libc::SOCK_RAW, r.protocol as i32),
        };
        Facts {
            domain: s.domain.raw(),
            sotype,
            protocol,
            listening: matches!(s.proto, Proto::Tcp(TcpState::Listening(_))),
            bound: s.binding.is_some() || s.local.is_some(),
            state,
            mtu,
            cookie: s.cookie,
        }
    }

    /// `setsockopt(2)`.
    pub fn setsockopt(
        &mut self,
        ifs: &mut Interfaces,
        id: SocketId,
        level: i32,
        name: i32,
        value: &[u8],
    ) -> Result<SetOutcome, Errno> {
        let s = self.get(id).ok_or(Errno(libc::EBADF))?;
        let facts = self.facts(ifs, s);
        let s = self.get_mut(id).ok_or(Errno(libc::EBADF))?;
        let mut opts = s.opts.clone();
        let outcome = options::set(&mut opts, &facts, level, name, value)?;
        if let Some(dev) = &opts.bindtodevice
            && ifs.by_name(dev).is_none()
        {
            return Err(Errno(libc::ENODEV));
        }
        let reuse_changed =
            opts.reuseaddr != s.opts.reuseaddr || opts.reuseport != s.opts.reuseport;
        s.opts = opts;
        if let Proto::Tcp(TcpState::Connected(c) | TcpState::Connecting(c)) = &s.proto {
            s.opts.apply(sock(ifs, c.iface, c.handle));
        }
        if let (true, Some((port, b))) = (reuse_changed, s.binding) {
            let reuse = Self::reuse(s);
            self.ports.set_reuse(port, b, reuse);
        }
        Ok(outcome)
    }

    /// `getsockopt(2)` into `out`, returning the value's length.
    pub fn getsockopt(
        &mut self,
        ifs: &mut Interfaces,
        id: SocketId,
        level: i32,
        name: i32,
        out: &mut [u8; options::MAX_OPT],
    ) -> Result<usize, Errno> {
        if level == libc::SOL_SOCKET && name == libc::SO_ERROR {
            let e = self.take_error(id);
            out[..4].copy_from_slice(&e.to_ne_bytes());
            return Ok(4);
        }
        let s = self.get(id).ok_or(Errno(libc::EBADF))?;
        let facts = self.facts(ifs, s);
        options::get(&s.opts, &facts, level, name, out)
    }
}
