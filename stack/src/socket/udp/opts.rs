//! `setsockopt`/`getsockopt` of the options only UDP sockets have: multicast
//! memberships (any-source and source-specific, IPv4 and IPv6) and the multicast
//! options (`IP_MULTICAST_*`, `IPV6_MULTICAST_*`), and `SO_RCVBUF` applied to the
//! stand-in that is the program's receive queue. Broadcast, TTL and TOS are
//! options every socket has ([`crate::socket::options`], the table of every
//! option); the ancillary-data switches are every datagram socket's (`dgram`).

use super::*;

impl Sockets {
    /// The UDP-level options (`IPPROTO_IP`/`IPPROTO_IPV6` multicast and ancillary
    /// data switches). `Ok(false)`: not a UDP option, try the generic table.
    pub(crate) fn udp_setsockopt(
        &mut self,
        ifs: &mut Interfaces,
        id: SocketId,
        level: i32,
        name: i32,
        v: &[u8],
    ) -> Result<bool, OptionError> {
        let domain = self
            .get(id)
            .map(|s| s.domain)
            .ok_or(OptionError::NoSuchSocket)?;
        let group_req =
            |v: &[u8], with_source: bool| -> Result<(u32, IpAddr, Option<IpAddr>), OptionError> {
                // struct group_req / group_source_req: u32 index, padding, sockaddr_storage...
                let need = if with_source { 264 } else { 136 };
                if v.len() < need {
                    return Err(OptionError::Invalid);
                }
                let index = u32::from_ne_bytes([v[0], v[1], v[2], v[3]]);
                let sa = |b: &[u8]| -> Result<IpAddr, OptionError> {
                    let fam = u16::from_ne_bytes([b[0], b[1]]) as i32;
                    match fam {
                        libc::AF_INET => Ok(IpAddr::V4(v4_at(b, 4))),
                        libc::AF_INET6 => {
                            let mut o = [0u8; 16];
                            o.copy_from_slice(&b[8..24]);
                            Ok(IpAddr::V6(Ipv6Addr::from(o)))
                        }
                        _ => Err(OptionError::Invalid),
                    }
                };
                let group = sa(&v[8..136])?;
                let source = if with_source {
                    Some(sa(&v[136..264])?)
                } else {
                    None
                };
                Ok((index, group, source))
            };
        let b = |v: &[u8]| int_opt(v).map(|x| x != 0);
        match (level, name) {
            (libc::IPPROTO_IP, libc::IP_ADD_MEMBERSHIP | libc::IP_DROP_MEMBERSHIP) => {
                if v.len() < 8 {
                    return Err(OptionError::Invalid);
                }
                let group = IpAddr::V4(v4_at(v, 0));
                let (index, addr) = if v.len() >= 12 {
                    (
                        i32::from_ne_bytes([v[8], v[9], v[10], v[11]]) as u32,
                        Some(v4_at(v, 4)),
                    )
                } else {
                    (0, Some(v4_at(v, 4)))
                };
                let iface = Self::mcast_iface(ifs, index, addr)?;
                self.membership(ifs, id, name == libc::IP_ADD_MEMBERSHIP, group, iface, None)?;
            }
            (
                libc::IPPROTO_IP,
                libc::IP_ADD_SOURCE_MEMBERSHIP
                | libc::IP_DROP_SOURCE_MEMBERSHIP
                | libc::IP_BLOCK_SOURCE
                | libc::IP_UNBLOCK_SOURCE,
            ) => {
                if v.len() < 12 {
                    return Err(OptionError::Invalid);
                }
                let group = IpAddr::V4(v4_at(v, 0));
                let iface = Self::mcast_iface(ifs, 0, Some(v4_at(v, 4)))?;
                let src = IpAddr::V4(v4_at(v, 8));
                match name {
                    libc::IP_ADD_SOURCE_MEMBERSHIP => {
                        self.membership(ifs, id, true, group, iface, Some(src))?
                    }
                    libc::IP_DROP_SOURCE_MEMBERSHIP => {
                        self.membership(ifs, id, false, group, iface, Some(src))?
                    }
                    libc::IP_BLOCK_SOURCE => self.block(id, true, group, iface, src)?,
                    _ => self.block(id, false, group, iface, src)?,
                }
            }
            (
                libc::IPPROTO_IP | libc::IPPROTO_IPV6,
                libc::MCAST_JOIN_GROUP | libc::MCAST_LEAVE_GROUP,
            ) => {
                let (index, group, _) = group_req(v, false)?;
                let iface = Self::mcast_iface(ifs, index, None)?;
                self.membership(ifs, id, name == libc::MCAST_JOIN_GROUP, group, iface, None)?;
            }
            (
                libc::IPPROTO_IP | libc::IPPROTO_IPV6,
                libc::MCAST_JOIN_SOURCE_GROUP
                | libc::MCAST_LEAVE_SOURCE_GROUP
                | libc::MCAST_BLOCK_SOURCE
                | libc::MCAST_UNBLOCK_SOURCE,
            ) => {
                let (index, group, src) = group_req(v, true)?;
                let iface = Self::mcast_iface(ifs, index, None)?;
                let src = src.ok_or(OptionError::Invalid)?;
                match name {
                    libc::MCAST_JOIN_SOURCE_GROUP => {
                        self.membership(ifs, id, true, group, iface, Some(src))?
                    }
                    libc::MCAST_LEAVE_SOURCE_GROUP => {
                        self.membership(ifs, id, false, group, iface, Some(src))?
                    }
                    libc::MCAST_BLOCK_SOURCE => self.block(id, true, group, iface, src)?,
                    _ => self.block(id, false, group, iface, src)?,
                }
            }
            (libc::IPPROTO_IP, libc::IP_MULTICAST_IF) => {
                let (index, addr) = match v.len() {
                    4..=7 => (0, v4_at(v, 0)),
                    8..=11 => (0, v4_at(v, 4)),
                    n if n >= 12 => (
                        i32::from_ne_bytes([v[8], v[9], v[10], v[11]]) as u32,
                        v4_at(v, 4),
                    ),
                    _ => return Err(OptionError::Invalid),
                };
                let u_if = if index == 0 && addr.is_unspecified() {
                    None
                } else {
                    Some(
                        Self::mcast_iface(ifs, index, Some(addr))
                            .map_err(|_| OptionError::AddrNotAvailable)?,
                    )
                };
                let u = self.udp_mut(id).ok_or(OptionError::NoSuchSocket)?;
                u.mcast_if = u_if;
                u.mcast_if_addr = (!addr.is_unspecified()).then_some(addr);
            }
            (libc::IPPROTO_IP, libc::IP_MULTICAST_TTL) => {
                let t = int_opt(v)?;
                let t = match t {
                    -1 => 1,
                    0..=255 => t as u8,
                    _ => return Err(OptionError::Invalid),
                };
                self.udp_mut(id).ok_or(OptionError::NoSuchSocket)?.mcast_ttl = t;
            }
            (libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP) => {
                self.udp_mut(id)
                    .ok_or(OptionError::NoSuchSocket)?
                    .mcast_loop = b(v)?
            }
            (libc::IPPROTO_IP, libc::IP_MULTICAST_ALL) => {
                self.udp_mut(id).ok_or(OptionError::NoSuchSocket)?.mcast_all = b(v)?
            }
            (libc::IPPROTO_IPV6, libc::IPV6_ADD_MEMBERSHIP | libc::IPV6_DROP_MEMBERSHIP)
                if domain == Domain::Inet6 =>
            {
                if v.len() < 20 {
                    return Err(OptionError::Invalid);
                }
                let mut g = [0u8; 16];
                g.copy_from_slice(&v[..16]);
                let index = u32::from_ne_bytes([v[16], v[17], v[18], v[19]]);
                let iface = Self::mcast_iface(ifs, index, None)?;
                self.membership(
                    ifs,
                    id,
                    name == libc::IPV6_ADD_MEMBERSHIP,
                    IpAddr::V6(Ipv6Addr::from(g)),
                    iface,
                    None,
                )?;
            }
            (libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_IF) if domain == Domain::Inet6 => {
                let index = int_opt(v)? as u32;
                let i = if index == 0 {
                    None
                } else {
                    Some(ifs.by_index(index).ok_or(OptionError::NoDevice)?)
                };
                self.udp_mut(id).ok_or(OptionError::NoSuchSocket)?.mcast6_if = i;
            }
            (libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS) if domain == Domain::Inet6 => {
                let h = int_opt(v)?;
                let h = match h {
                    -1 => 1,
                    0..=255 => h as u8,
                    _ => return Err(OptionError::Invalid),
                };
                self.udp_mut(id)
                    .ok_or(OptionError::NoSuchSocket)?
                    .mcast6_hops = h;
            }
            (libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP) if domain == Domain::Inet6 => {
                let x = int_opt(v)?;
                if !(0..=1).contains(&x) {
                    return Err(OptionError::Invalid);
                }
                self.udp_mut(id)
                    .ok_or(OptionError::NoSuchSocket)?
                    .mcast6_loop = x == 1;
            }
            (libc::SOL_SOCKET, libc::SO_RCVBUF) => {
                // The program's receive queue is the stand-in's: its limit is our
                // end's send buffer (Linux doubles the value as for SO_RCVBUF).
                let n = int_opt(v)?.clamp(1152, 212_992);
                if let Some(si) = self.get(id).and_then(|s| s.standin.as_ref()) {
                    let _ = sys::set_sndbuf(si.fd.as_fd(), n as usize);
                }
                return Ok(false); // also record it in the generic options
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The UDP-level `getsockopt` answers (they cannot fail), returning the
    /// value's length. `None`: not a UDP option.
    pub(crate) fn udp_getsockopt(
        &self,
        id: SocketId,
        level: i32,
        name: i32,
        out: &mut [u8],
    ) -> Option<usize> {
        let u = self.udp(id)?;
        let int = |out: &mut [u8], v: i32| {
            out[..4].copy_from_slice(&v.to_ne_bytes());
            Some(4)
        };
        match (level, name) {
            (libc::IPPROTO_IP, libc::IP_MULTICAST_TTL) => int(out, u.mcast_ttl as i32),
            (libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP) => int(out, u.mcast_loop as i32),
            (libc::IPPROTO_IP, libc::IP_MULTICAST_ALL) => int(out, u.mcast_all as i32),
            (libc::IPPROTO_IP, libc::IP_MULTICAST_IF) => {
                out[..4]
                    .copy_from_slice(&u.mcast_if_addr.unwrap_or(Ipv4Addr::UNSPECIFIED).octets());
                Some(4)
            }
            (libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS) => int(out, u.mcast6_hops as i32),
            (libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP) => int(out, u.mcast6_loop as i32),
            (libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_IF) => {
                int(out, u.mcast6_if.map_or(0, |i| i as i32 + 1))
            }
            _ => None,
        }
    }
}
