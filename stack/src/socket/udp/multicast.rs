//! Multicast: memberships per socket (any-source and source-specific, with
//! Linux's limits), joins counted per interface and group so that the IGMP/MLD
//! reports go out once, and the interface a group is joined on.

use super::*;

/// A multicast membership of one socket.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Membership {
    pub(super) group: IpAddr,
    pub(super) iface: IfaceId,
    /// Source-specific: only these sources (empty: any source).
    pub(super) include: Vec<IpAddr>,
    /// Blocked sources of an any-source membership.
    pub(super) exclude: Vec<IpAddr>,
}

impl Sockets {
    pub(super) fn group_join(
        &mut self,
        ifs: &mut Interfaces,
        iface: IfaceId,
        group: IpAddr,
    ) -> Result<(), OptionError> {
        // Counted only once joined: a join the interface's full group table
        // refuses leaves nothing behind (a program looping over new groups
        // would otherwise grow the map without bound).
        if let Some(n) = self.udp.groups.get_mut(&(iface, group)) {
            *n += 1;
            return Ok(());
        }
        ifs.get_mut(iface)
            .iface
            .join_multicast_group(IpAddress::from(group))
            .map_err(|_| OptionError::NoBuffers)?;
        log::debug!("udp: {} joins {group}", ifs.get(iface).name);
        self.udp.groups.insert((iface, group), 1);
        Ok(())
    }

    /// The groups joined on interface `iface` (to join again on an interface
    /// made anew).
    pub(crate) fn groups_on(&self, iface: IfaceId) -> Vec<IpAddress> {
        self.udp
            .groups
            .keys()
            .filter(|(i, _)| *i == iface)
            .map(|(_, g)| IpAddress::from(*g))
            .collect()
    }

    pub(super) fn group_leave(&mut self, ifs: &mut Interfaces, iface: IfaceId, group: IpAddr) {
        if let Some(n) = self.udp.groups.get_mut(&(iface, group)) {
            *n -= 1;
            if *n == 0 {
                self.udp.groups.remove(&(iface, group));
                let _ = ifs
                    .get_mut(iface)
                    .iface
                    .leave_multicast_group(IpAddress::from(group));
                log::debug!("udp: {} leaves {group}", ifs.get(iface).name);
            }
        }
    }

    /// The interface of a multicast membership request: by index, by local address,
    /// or (0 / `INADDR_ANY`) the one the group routes to.
    pub(super) fn mcast_iface(
        ifs: &Interfaces,
        index: u32,
        addr: Option<Ipv4Addr>,
    ) -> Result<IfaceId, OptionError> {
        if index != 0 {
            return ifs.by_index(index).ok_or(OptionError::NoDevice);
        }
        if let Some(a) = addr.filter(|a| !a.is_unspecified()) {
            return (0..ifs.len())
                .find(|&i| {
                    ifs.local_addrs(i).any(|x| x == IpAddress::Ipv4(a))
                        && (i != LO || a.is_loopback())
                })
                .ok_or(OptionError::NoDevice);
        }
        Ok(ifs.default_link())
    }

    pub(super) fn membership(
        &mut self,
        ifs: &mut Interfaces,
        id: SocketId,
        join: bool,
        group: IpAddr,
        iface: IfaceId,
        source: Option<IpAddr>,
    ) -> Result<(), OptionError> {
        if !group.is_multicast() {
            return Err(OptionError::Invalid);
        }
        let u = self.udp_mut(id).ok_or(OptionError::NoSuchSocket)?;
        let pos = u
            .memberships
            .iter()
            .position(|m| m.group == group && m.iface == iface);
        match (join, pos, source) {
            (true, Some(i), Some(src)) => {
                let m = &mut u.memberships[i];
                if m.include.is_empty() {
                    return Err(OptionError::Invalid); // an any-source membership already
                }
                if m.include.contains(&src) {
                    return Err(OptionError::AddrNotAvailable);
                }
                if m.include.len() >= MAX_MSF {
                    return Err(OptionError::NoBuffers);
                }
                m.include.push(src);
                Ok(())
            }
            (true, Some(_), None) => Err(OptionError::AddrInUse),
            (true, None, src) => {
                if u.memberships.len() >= 20 {
                    return Err(OptionError::NoBuffers); // net.ipv4.igmp_max_memberships
                }
                u.memberships.push(Membership {
                    group,
                    iface,
                    include: src.into_iter().collect(),
                    exclude: Vec::new(),
                });
                let r = self.group_join(ifs, iface, group);
                if r.is_err()
                    && let Some(u) = self.udp_mut(id)
                {
                    u.memberships
                        .retain(|m| !(m.group == group && m.iface == iface));
                }
                r
            }
            (false, None, _) => Err(OptionError::AddrNotAvailable),
            (false, Some(i), Some(src)) => {
                let m = &mut u.memberships[i];
                let before = m.include.len();
                m.include.retain(|s| *s != src);
                if m.include.len() == before {
                    return Err(OptionError::AddrNotAvailable);
                }
                if m.include.is_empty() {
                    u.memberships.remove(i);
                    self.group_leave(ifs, iface, group);
                }
                Ok(())
            }
            (false, Some(i), None) => {
                u.memberships.remove(i);
                self.group_leave(ifs, iface, group);
                Ok(())
            }
        }
    }

    pub(super) fn block(
        &mut self,
        id: SocketId,
        block: bool,
        group: IpAddr,
        iface: IfaceId,
        src: IpAddr,
    ) -> Result<(), OptionError> {
        let u = self.udp_mut(id).ok_or(OptionError::NoSuchSocket)?;
        let m = u
            .memberships
            .iter_mut()
            .find(|m| m.group == group && m.iface == iface)
            .ok_or(OptionError::Invalid)?;
        if !m.include.is_empty() {
            return Err(OptionError::Invalid);
        }
        if block {
            if m.exclude.contains(&src) {
                return Err(OptionError::AddrNotAvailable);
            }
            if m.exclude.len() >= MAX_MSF {
                return Err(OptionError::NoBuffers);
            }
            m.exclude.push(src);
        } else {
            let n = m.exclude.len();
            m.exclude.retain(|s| *s != src);
            if m.exclude.len() == n {
                return Err(OptionError::AddrNotAvailable);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::device::PipeDevice;
    use crate::iface::{ETH, EthConfig};
    use crate::socket::{Domain, OptionError, SocketConfig};
    use crate::stack::Stack;

    /// `struct ip_mreqn` for `group` (224.1.x.y) on eth0.
    fn mreqn(x: u8, y: u8) -> Vec<u8> {
        let mut v = vec![224, 1, x, y];
        v.extend_from_slice(&[0; 4]);
        v.extend_from_slice(&(ETH as i32 + 1).to_ne_bytes());
        v
    }

    /// Joins the interface's full group table refuses (ENOBUFS) leave nothing
    /// behind: a program looping over new groups grows nothing, and an
    /// interface made anew joins only the groups really joined.
    #[test]
    fn refused_joins_leave_nothing_behind() {
        let (dev, _peer) = PipeDevice::pair(1500);
        let cfg = EthConfig {
            name: "eth0".into(),
            addrs: vec!["10.9.0.2/24".parse().unwrap()],
            gateways: vec![],
            mac: None,
            dhcp: false,
            slaac: false,
        };
        let mut s = Stack::new(Some((dev, cfg)), SocketConfig::default()).unwrap();
        let open = |s: &mut Stack<PipeDevice>| {
            s.sockets
                .open_for_program(&mut s.ifs, Domain::Inet, libc::SOCK_DGRAM, 0, false, 0)
                .unwrap()
                .0
        };
        let (mut joined, mut group) = (0, 0u8);
        // Sockets join up to 20 groups each until the table is full.
        'fill: loop {
            let id = open(&mut s);
            for _ in 0..20 {
                group += 1;
                match s.setsockopt(
                    id,
                    libc::IPPROTO_IP,
                    libc::IP_ADD_MEMBERSHIP,
                    &mreqn(0, group),
                ) {
                    Ok(_) => joined += 1,
                    Err(OptionError::NoBuffers) => break 'fill,
                    Err(e) => panic!("join {group}: {e:?}"),
                }
            }
        }
        assert!(
            joined >= 16,
            "{joined} groups joined before the table was full"
        );
        let before = s.sockets.groups_on(ETH).len();
        assert_eq!(before, joined);
        let id = open(&mut s);
        for y in 0..200u8 {
            assert_eq!(
                s.setsockopt(id, libc::IPPROTO_IP, libc::IP_ADD_MEMBERSHIP, &mreqn(2, y)),
                Err(OptionError::NoBuffers)
            );
        }
        assert_eq!(s.sockets.groups_on(ETH).len(), before, "refused joins kept");
        // A group already joined is still counted once more, without the table.
        assert!(
            s.setsockopt(id, libc::IPPROTO_IP, libc::IP_ADD_MEMBERSHIP, &mreqn(0, 1))
                .is_ok()
        );
        assert_eq!(s.sockets.groups_on(ETH).len(), before);
    }
}
