//! `setsockopt`/`getsockopt` of every socket: which table answers an option (the
//! datagram inbox's ancillary-data switches, the raw filters, UDP's multicast
//! options, else the options every socket has), the facts an option's answer needs
//! (type, protocol, state, MTU), the options kept in the socket and applied to a
//! live TCP connection, and the answers for a socket the stack closed under its
//! program. What each option means is [`super::options`]; the options only one
//! protocol knows are its own (`dgram`, `raw`, `udp::opts`).

use super::options::{self, Facts, MAX_OPT, Options, SetOutcome};
use super::tcp::{TcpState, sock};
use super::{Kind, OptionError, Proto, Socket, SocketId, Sockets, Tombstone, addr};
use crate::iface::Interfaces;
use crate::sys;
use std::os::fd::AsFd;

impl Sockets {
    pub(crate) fn facts(&self, ifs: &mut Interfaces, s: &Socket) -> Facts {
        let (state, mtu, timestamps) = match &s.proto {
            Proto::Tcp(TcpState::Connected(c) | TcpState::Connecting(c)) => {
                let mtu = ifs.get(c.iface).mtu;
                let sk = sock(ifs, c.iface, c.handle);
                (Some(sk.state()), Some(mtu), sk.timestamp_enabled())
            }
            Proto::Tcp(TcpState::Spliced(_)) => (
                Some(smoltcp::socket::tcp::State::Established),
                Some(ifs.get(crate::iface::LO).mtu),
                true,
            ),
            _ => (None, None, false),
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
            timestamps,
        }
    }

    /// `setsockopt(2)`: the datagram inbox's switches, a raw socket's filters and a
    /// UDP socket's multicast options first, then the options every socket has.
    pub fn setsockopt(
        &mut self,
        ifs: &mut Interfaces,
        id: SocketId,
        level: i32,
        name: i32,
        value: &[u8],
    ) -> Result<SetOutcome, OptionError> {
        if let Some((d, inbox)) = self.inbox_mut(id)
            && let Some(r) = inbox.setsockopt(d, level, name, value)
        {
            return r.map(|()| SetOutcome::Done);
        }
        let own = match self.kind(id) {
            Some(Kind::Raw) => self.raw_setsockopt(id, level, name, value),
            Some(Kind::Udp) => match self.udp_setsockopt(ifs, id, level, name, value) {
                Ok(false) => None,
                r => Some(r.map(|_| ())),
            },
            _ => None,
        };
        match own {
            Some(r) => r.map(|()| SetOutcome::Done),
            None => self.socket_setsockopt(ifs, id, level, name, value),
        }
    }

    /// `setsockopt` of the options every socket has.
    fn socket_setsockopt(
        &mut self,
        ifs: &mut Interfaces,
        id: SocketId,
        level: i32,
        name: i32,
        value: &[u8],
    ) -> Result<SetOutcome, OptionError> {
        let s = self.get(id).ok_or(OptionError::NoSuchSocket)?;
        let facts = self.facts(ifs, s);
        let s = self.get_mut(id).ok_or(OptionError::NoSuchSocket)?;
        let mut opts = s.opts.clone();
        let outcome = options::set(&mut opts, &facts, level, name, value)?;
        if let Some(dev) = &opts.bindtodevice
            && ifs.by_name(dev).is_none()
        {
            return Err(OptionError::NoDevice);
        }
        let reuse_changed =
            opts.reuseaddr != s.opts.reuseaddr || opts.reuseport != s.opts.reuseport;
        s.opts = opts;
        if let Proto::Tcp(TcpState::Connected(c) | TcpState::Connecting(c)) = &s.proto {
            s.opts.apply(sock(ifs, c.iface, c.handle));
            // SO_RCVBUF on a connection: at most that much waits in the program's
            // end (the stand-in's own buffer, which the stack fills; the window
            // smoltcp advertises keeps the size it was made with).
            if level == libc::SOL_SOCKET
                && name == libc::SO_RCVBUF
                && let (Some(si), Some(b)) = (&s.standin, s.opts.rcvbuf)
            {
                let _ = sys::set_sndbuf(si.fd.as_fd(), b as usize);
            }
        }
        // Only TCP bindings follow a later change of the sharing flags; a UDP or
        // ping socket's binding keeps those it was bound with.
        if let (true, Some(b), Proto::Tcp(_)) = (reuse_changed, s.binding, &s.proto) {
            let reuse = Self::reuse(s);
            self.tcp.set_reuse(b, reuse);
        }
        Ok(outcome)
    }

    /// `getsockopt(2)` into `out`, returning the value's length: the datagram
    /// inbox's switches, a UDP socket's multicast options and a raw socket's
    /// filters first, then the options every socket has.
    pub fn getsockopt(
        &mut self,
        ifs: &mut Interfaces,
        id: SocketId,
        level: i32,
        name: i32,
        out: &mut [u8; MAX_OPT],
    ) -> Result<usize, OptionError> {
        if let Some(n) = self.inbox_getsockopt(id, level, name, out) {
            return Ok(n);
        }
        let own = match self.kind(id) {
            Some(Kind::Udp) => self.udp_getsockopt(id, level, name, out),
            Some(Kind::Raw) => self.raw_getsockopt(id, level, name, out),
            _ => None,
        };
        match own {
            Some(n) => Ok(n),
            None => self.socket_getsockopt(ifs, id, level, name, out),
        }
    }

    /// `getsockopt` of the options every socket has; `SO_ERROR` takes the pending
    /// error.
    fn socket_getsockopt(
        &mut self,
        ifs: &mut Interfaces,
        id: SocketId,
        level: i32,
        name: i32,
        out: &mut [u8; MAX_OPT],
    ) -> Result<usize, OptionError> {
        if level == libc::SOL_SOCKET && name == libc::SO_ERROR {
            let e = self.take_error(id);
            out[..4].copy_from_slice(&e.to_ne_bytes());
            return Ok(4);
        }
        let s = self.get(id).ok_or(OptionError::NoSuchSocket)?;
        let facts = self.facts(ifs, s);
        options::get(&s.opts, &facts, level, name, out)
    }
}

impl Tombstone {
    /// `getsockopt` on a socket the stack closed under its program (inode
    /// `inode`): `SO_ERROR` takes the error it kept; the rest is answered as for a
    /// closed TCP socket with the default options.
    pub(crate) fn getsockopt(
        &mut self,
        inode: u64,
        level: i32,
        name: i32,
        out: &mut [u8; MAX_OPT],
    ) -> Result<usize, OptionError> {
        if level == libc::SOL_SOCKET && name == libc::SO_ERROR {
            let e = std::mem::take(&mut self.error);
            out[..4].copy_from_slice(&e.to_ne_bytes());
            return Ok(4);
        }
        let facts = Facts {
            domain: self.domain.raw(),
            sotype: libc::SOCK_STREAM,
            protocol: libc::IPPROTO_TCP,
            listening: false,
            bound: self.local.is_some(),
            state: Some(smoltcp::socket::tcp::State::Closed),
            mtu: None,
            cookie: inode,
            timestamps: false,
        };
        options::get(&Options::default(), &facts, level, name, out)
    }
}
