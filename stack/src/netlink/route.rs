//! `NETLINK_ROUTE` requests on the container's interfaces (see the module above
//! for what is served).

use super::wire::{self, Msg, Writer, consts::*};
use crate::iface::listing::describe;
use crate::iface::{
    AddrChangeError, Interfaces, LO, MtuError, RenameError, RouteEntry, RouteOrigin, network,
};
use netcell_proto::iface::IfAddr;
use smoltcp::wire::{IpAddress, IpCidr, Ipv4Address, Ipv6Address};

/// Replies to the sender (datagrams), and notifications (group bit, datagram).
pub type Served = (Vec<Vec<u8>>, Vec<(u32, Vec<u8>)>);

/// Serves one request datagram from port `pid`.
pub fn serve(
    ifs: &mut Interfaces,
    sockets: &crate::socket::Sockets,
    data: &[u8],
    pid: u32,
    admin: bool,
) -> Served {
    let (msgs, well_formed) = wire::messages(data);
    let mut replies = Vec::new();
    let mut events = Vec::new();
    for m in &msgs {
        if m.flags & NLM_F_REQUEST == 0 || m.ty < RTM_NEWLINK {
            // Not a request (a stray reply, NOOP): the kernel ignores it.
            continue;
        }
        let mut w = Writer::default();
        let r = match m.ty {
            RTM_GETLINK => get_link(ifs, m, pid, &mut w),
            RTM_GETADDR => {
                dump_addrs(ifs, m, pid, &mut w);
                Ok(())
            }
            RTM_GETROUTE => {
                dump_routes(ifs, m, pid, &mut w);
                Ok(())
            }
            RTM_GETNEIGH if m.flags & NLM_F_DUMP == NLM_F_DUMP => {
                w.done(m, pid);
                Ok(())
            }
            RTM_NEWADDR | RTM_DELADDR | RTM_NEWROUTE | RTM_DELROUTE | RTM_SETLINK | RTM_NEWLINK
                if !admin && !lo_as_it_is(m) =>
            {
                Err(libc::EPERM)
            }
            RTM_NEWADDR | RTM_DELADDR => change_addr(ifs, m).map(|ev| events.extend(ev)),
            RTM_NEWROUTE | RTM_DELROUTE => change_route(ifs, m).map(|ev| events.extend(ev)),
            RTM_SETLINK | RTM_NEWLINK => set_link(ifs, sockets, m).map(|ev| events.extend(ev)),
            _ => Err(libc::EOPNOTSUPP),
        };
        match r {
            Err(e) => w.error(m, e, pid),
            // A change is acknowledged when asked (`ip` always asks).
            Ok(()) if w.buf.is_empty() && m.flags & NLM_F_ACK != 0 => w.error(m, 0, pid),
            Ok(()) => {}
        }
        if !w.buf.is_empty() {
            replies.push(w.buf);
        }
    }
    if !well_formed {
        log::debug!("netlink: a malformed message from port {pid} ignored");
    }
    (replies, events)
}

/// Whether message type `ty` asks for information (`RTM_GETLINK`,
/// `RTM_GETADDR`, `RTM_GETROUTE`, `RTM_GETNEIGH`, ...: rtnetlink's types come
/// in fours, new, del, get, set).
pub(super) fn is_get(ty: u16) -> bool {
    ty >= RTM_NEWLINK && ty % 4 == 2
}

fn ifindex(id: usize) -> u32 {
    id as u32 + 1
}

/// The link message of interface `id`.
fn link_msg(ifs: &Interfaces, id: usize, ty: u16, flags: u16, seq: u32, pid: u32, w: &mut Writer) {
    let n = ifs.get(id);
    let (head, _) = describe(id, n);
    w.begin(ty, flags, seq, pid);
    let mut info = [0u8; 16];
    info[0] = libc::AF_UNSPEC as u8;
    info[2..4].copy_from_slice(&head.hwtype.to_ne_bytes());
    info[4..8].copy_from_slice(&(head.index as i32).to_ne_bytes());
    info[8..12].copy_from_slice(&head.flags.to_ne_bytes());
    w.raw(&info);
    w.attr_str(IFLA_IFNAME, head.name());
    w.attr_u32(IFLA_MTU, head.mtu);
    w.attr_u32(IFLA_MIN_MTU, 68);
    w.attr_u32(IFLA_MAX_MTU, n.max_mtu as u32);
    w.attr_u32(IFLA_TXQLEN, 1000);
    w.attr_u8(
        IFLA_OPERSTATE,
        if id == LO {
            IF_OPER_UNKNOWN
        } else if n.up {
            IF_OPER_UP
        } else {
            IF_OPER_DOWN
        },
    );
    w.attr_u8(IFLA_LINKMODE, 0);
    w.attr_u32(IFLA_GROUP, 0);
    w.attr_u8(IFLA_CARRIER, 1);
    w.attr_str(IFLA_QDISC, "noqueue");
    // Counters are netcell's business (`netcell stats`); programs find the fields.
    w.attr(IFLA_STATS, &[0u8; 96]);
    w.attr(IFLA_STATS64, &[0u8; 192]);
    if n.ethernet {
        w.attr(IFLA_ADDRESS, &head.mac);
        w.attr(IFLA_BROADCAST, &[0xff; 6]);
    } else if id == LO {
        w.attr(IFLA_ADDRESS, &[0; 6]);
        w.attr(IFLA_BROADCAST, &[0; 6]);
    }
    w.end();
}

fn get_link(ifs: &Interfaces, m: &Msg<'_>, pid: u32, w: &mut Writer) -> Result<(), i32> {
    if m.flags & NLM_F_DUMP == NLM_F_DUMP {
        for (id, _) in ifs.iter() {
            link_msg(ifs, id, RTM_NEWLINK, NLM_F_MULTI, m.seq, pid, w);
        }
        w.done(m, pid);
        return Ok(());
    }
    let index = m
        .body
        .get(4..8)
        .map_or(0, |b| i32::from_ne_bytes(b.try_into().unwrap_or_default()));
    let id = if index > 0 {
        ifs.by_index(index as u32)
    } else {
        wire::attrs(m.body, 16)
            .find(|(t, _)| *t == IFLA_IFNAME)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
            .and_then(|name| ifs.by_name(name.trim_end_matches('\0')))
    };
    let id = id.ok_or(libc::ENODEV)?;
    link_msg(ifs, id, RTM_NEWLINK, 0, m.seq, pid, w);
    Ok(())
}

/// The address messages (a dump's part) of interface `id` whose family is
/// `family` (0: all).
fn addr_msgs(ifs: &Interfaces, id: usize, family: u8, seq: u32, pid: u32, w: &mut Writer) {
    let n = ifs.get(id);
    let (head, addrs) = describe(id, n);
    for a in addrs {
        let (fam, bytes, plen): (u8, Vec<u8>, u8) = match a {
            IfAddr::V4(b, p) => (libc::AF_INET as u8, b.to_vec(), p),
            IfAddr::V6(b, p) => (libc::AF_INET6 as u8, b.to_vec(), p),
        };
        if family != 0 && family != fam {
            continue;
        }
        let scope = match a {
            IfAddr::V4(b, _) if b[0] == 127 => RT_SCOPE_HOST,
            IfAddr::V6(b, _) if b == Ipv6Address::LOCALHOST.octets() => RT_SCOPE_HOST,
            IfAddr::V6(b, _) if b[0] == 0xfe && b[1] & 0xc0 == 0x80 => RT_SCOPE_LINK,
            _ => RT_SCOPE_UNIVERSE,
        };
        w.begin(RTM_NEWADDR, NLM_F_MULTI, seq, pid);
        let mut h = [0u8; 8];
        h[0] = fam;
        h[1] = plen;
        h[2] = IFA_F_PERMANENT as u8;
        h[3] = scope;
        h[4..8].copy_from_slice(&head.index.to_ne_bytes());
        w.raw(&h);
        w.attr(IFA_ADDRESS, &bytes);
        if fam == libc::AF_INET as u8 {
            w.attr(IFA_LOCAL, &bytes);
            if plen < 31 && id != LO {
                let mut bcast = [0u8; 4];
                let v = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
                let host_bits = if plen == 0 {
                    u32::MAX
                } else {
                    u32::MAX >> plen
                };
                bcast.copy_from_slice(&(v | host_bits).to_be_bytes());
                w.attr(IFA_BROADCAST, &bcast);
            }
            w.attr_str(IFA_LABEL, head.name());
        }
        w.attr_u32(IFA_FLAGS, IFA_F_PERMANENT);
        // ifa_cacheinfo: preferred and valid forever, no timestamps.
        let mut ci = [0u8; 16];
        ci[..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        ci[4..8].copy_from_slice(&u32::MAX.to_ne_bytes());
        w.attr(IFA_CACHEINFO, &ci);
        w.end();
    }
}

fn dump_addrs(ifs: &Interfaces, m: &Msg<'_>, pid: u32, w: &mut Writer) {
    let family = m.body.first().copied().unwrap_or(0);
    for (id, _) in ifs.iter() {
        addr_msgs(ifs, id, family, m.seq, pid, w);
    }
    w.done(m, pid);
}

/// One main-table route.
struct Route {
    dst: IpCidr,
    gateway: Option<IpAddress>,
    prefsrc: Option<IpAddress>,
    oif: u32,
    proto: u8,
    scope: u8,
}

fn bytes(a: &IpAddress) -> Vec<u8> {
    match a {
        IpAddress::Ipv4(a) => a.octets().to_vec(),
        IpAddress::Ipv6(a) => a.octets().to_vec(),
    }
}

/// The main table, as Linux shows it: an on-link route per subnet of each
/// interface that is up (the kernel's), then the table's entries.
fn routes(ifs: &Interfaces) -> Vec<Route> {
    let mut out = Vec::new();
    for (id, c) in ifs.all_addrs() {
        if !ifs.get(id).up {
            continue;
        }
        let net = network(c);
        let oif = ifindex(id);
        if out.iter().any(|r: &Route| r.dst == net && r.oif == oif) {
            continue;
        }
        let v6 = matches!(c, IpCidr::Ipv6(_));
        out.push(Route {
            dst: net,
            gateway: None,
            prefsrc: (!v6).then_some(c.address()),
            oif,
            proto: RTPROT_KERNEL,
            scope: if v6 { RT_SCOPE_UNIVERSE } else { RT_SCOPE_LINK },
        });
    }
    for r in ifs.routes() {
        if !ifs.get(r.iface).up {
            continue;
        }
        out.push(entry_route(r));
    }
    out
}

fn entry_route(r: &RouteEntry) -> Route {
    Route {
        dst: r.dst,
        gateway: r.via,
        prefsrc: r.src,
        oif: ifindex(r.iface),
        proto: match r.origin {
            RouteOrigin::Boot => RTPROT_BOOT,
            RouteOrigin::Static => RTPROT_STATIC,
            RouteOrigin::Dhcp => RTPROT_DHCP,
            RouteOrigin::Ra => RTPROT_RA,
            RouteOrigin::Other(p) => p,
        },
        scope: if r.via.is_some() {
            RT_SCOPE_UNIVERSE
        } else {
            RT_SCOPE_LINK
        },
    }
}

fn route_msg(r: &Route, ty: u16, flags: u16, seq: u32, pid: u32, w: &mut Writer) {
    let v6 = matches!(r.dst, IpCidr::Ipv6(_));
    w.begin(ty, flags, seq, pid);
    let h = [
        if v6 { libc::AF_INET6 } else { libc::AF_INET } as u8,
        r.dst.prefix_len(),
        0,
        0,
        RT_TABLE_MAIN,
        r.proto,
        r.scope,
        RTN_UNICAST,
        0,
        0,
        0,
        0,
    ];
    w.raw(&h);
    w.attr_u32(RTA_TABLE, u32::from(RT_TABLE_MAIN));
    if r.dst.prefix_len() > 0 {
        w.attr(RTA_DST, &bytes(&r.dst.address()));
    }
    if let Some(g) = r.gateway {
        w.attr(RTA_GATEWAY, &bytes(&g));
    }
    if let Some(s) = r.prefsrc {
        w.attr(RTA_PREFSRC, &bytes(&s));
    }
    if v6 {
        w.attr_u32(RTA_PRIORITY, if r.gateway.is_some() { 1024 } else { 256 });
    }
    w.attr_u32(RTA_OIF, r.oif);
    w.end();
}

fn dump_routes(ifs: &Interfaces, m: &Msg<'_>, pid: u32, w: &mut Writer) {
    let family = m.body.first().copied().unwrap_or(0);
    for r in routes(ifs) {
        let v6 = matches!(r.dst, IpCidr::Ipv6(_));
        let fam = if v6 { libc::AF_INET6 } else { libc::AF_INET } as u8;
        if family == 0 || family == fam {
            route_msg(&r, RTM_NEWROUTE, NLM_F_MULTI, m.seq, pid, w);
        }
    }
    w.done(m, pid);
}

fn addr_of(fam: u8, v: &[u8]) -> Option<IpAddress> {
    match (fam as i32, v.len()) {
        (libc::AF_INET, 4) => Some(IpAddress::Ipv4(Ipv4Address::new(v[0], v[1], v[2], v[3]))),
        (libc::AF_INET6, 16) => {
            let b: [u8; 16] = v.try_into().ok()?;
            Some(IpAddress::Ipv6(Ipv6Address::from(b)))
        }
        _ => None,
    }
}

fn errno(e: AddrChangeError) -> i32 {
    match e {
        AddrChangeError::NoDevice => libc::ENODEV,
        AddrChangeError::Invalid => libc::EINVAL,
        AddrChangeError::Exists => libc::EEXIST,
        AddrChangeError::NotFound => libc::EADDRNOTAVAIL,
        AddrChangeError::Full => libc::ENOSPC,
        AddrChangeError::Unreachable => libc::ENETUNREACH,
        AddrChangeError::Unsupported => libc::EOPNOTSUPP,
    }
}

/// The notification of a change, as the datagram the group's members read.
fn notify(group: u32, f: impl FnOnce(&mut Writer)) -> (u32, Vec<u8>) {
    let mut w = Writer::default();
    f(&mut w);
    (group, w.buf)
}

fn change_addr(ifs: &mut Interfaces, m: &Msg<'_>) -> Result<Vec<(u32, Vec<u8>)>, i32> {
    if m.body.len() < 8 {
        return Err(libc::EINVAL);
    }
    let (fam, plen) = (m.body[0], m.body[1]);
    let index = u32::from_ne_bytes(m.body[4..8].try_into().unwrap_or_default());
    let id = ifs.by_index(index).ok_or(libc::ENODEV)?;
    let name = ifs.get(id).name.clone();
    let mut local = None;
    let mut address = None;
    for (t, v) in wire::attrs(m.body, 8) {
        match t {
            IFA_LOCAL => local = addr_of(fam, v),
            IFA_ADDRESS => address = addr_of(fam, v),
            _ => {}
        }
    }
    let a = local.or(address).ok_or(libc::EINVAL)?;
    let max = if fam as i32 == libc::AF_INET { 32 } else { 128 };
    if plen > max {
        return Err(libc::EINVAL);
    }
    if id == LO {
        // lo's addresses are fixed (127.0.0.0/8 is all local already). Adding
        // the ones it has is done — container runtimes set up a new network
        // namespace's lo so, with NLM_F_EXCL — anything else is not served.
        let own = matches!(
            (a, plen),
            (IpAddress::Ipv4(v), 8) if v.octets() == [127, 0, 0, 1]
        ) || matches!((a, plen), (IpAddress::Ipv6(v), 128) if v.is_loopback());
        return if m.ty == RTM_NEWADDR && own {
            Ok(Vec::new())
        } else {
            Err(libc::EOPNOTSUPP)
        };
    }
    let group = if fam as i32 == libc::AF_INET {
        RTMGRP_IPV4_IFADDR
    } else {
        RTMGRP_IPV6_IFADDR
    };
    if m.ty == RTM_NEWADDR {
        match ifs.add_addr(id, IpCidr::new(a, plen)) {
            Ok(()) => {}
            Err(AddrChangeError::Exists) if m.flags & NLM_F_EXCL == 0 => return Ok(Vec::new()),
            Err(e) => return Err(errno(e)),
        }
        log::info!("netlink: {name} address {a}/{plen} added");
    } else {
        ifs.del_addr(Some(id), a).map_err(errno)?;
        log::info!("netlink: {name} address {a} removed");
    }
    let ty = m.ty;
    let mut ev = vec![];
    // The notification lists the address as it is (added) or was (removed).
    let mut w = Writer::default();
    let mut h = [0u8; 8];
    h[0] = fam;
    h[1] = plen;
    h[2] = IFA_F_PERMANENT as u8;
    h[4..8].copy_from_slice(&index.to_ne_bytes());
    w.begin(ty, 0, 0, 0);
    w.raw(&h);
    w.attr(IFA_ADDRESS, &bytes(&a));
    if fam as i32 == libc::AF_INET {
        w.attr(IFA_LOCAL, &bytes(&a));
        w.attr_str(IFA_LABEL, &ifs.get(id).name);
    }
    w.end();
    ev.push((group, w.buf));
    Ok(ev)
}

fn change_route(ifs: &mut Interfaces, m: &Msg<'_>) -> Result<Vec<(u32, Vec<u8>)>, i32> {
    if m.body.len() < 12 {
        return Err(libc::EINVAL);
    }
    let (fam, dst_len, table, rtype) = (m.body[0], m.body[1], m.body[4], m.body[7]);
    if table != RT_TABLE_MAIN && table != 0 {
        // One table: policy routing is not served.
        return Err(libc::EOPNOTSUPP);
    }
    let v6 = fam as i32 == libc::AF_INET6;
    if !v6 && fam as i32 != libc::AF_INET {
        return Err(libc::EAFNOSUPPORT);
    }
    if m.ty == RTM_NEWROUTE && rtype != RTN_UNICAST {
        // blackhole, unreachable, prohibit, local...: not served.
        return Err(libc::EOPNOTSUPP);
    }
    if dst_len > if v6 { 128 } else { 32 } {
        return Err(libc::EINVAL);
    }
    let mut dst = None;
    let mut gateway = None;
    let mut prefsrc = None;
    let mut oif = None;
    for (t, v) in wire::attrs(m.body, 12) {
        match t {
            RTA_DST => dst = Some(addr_of(fam, v).ok_or(libc::EINVAL)?),
            RTA_GATEWAY => gateway = Some(addr_of(fam, v).ok_or(libc::EINVAL)?),
            RTA_PREFSRC => prefsrc = Some(addr_of(fam, v).ok_or(libc::EINVAL)?),
            RTA_OIF => {
                oif = v
                    .get(..4)
                    .map(|b| u32::from_ne_bytes(b.try_into().unwrap_or_default()))
            }
            _ => {}
        }
    }
    let unspecified = if v6 {
        IpAddress::Ipv6(Ipv6Address::UNSPECIFIED)
    } else {
        IpAddress::Ipv4(Ipv4Address::UNSPECIFIED)
    };
    let dst = IpCidr::new(dst.unwrap_or(unspecified), dst_len);
    let group = if v6 {
        RTMGRP_IPV6_ROUTE
    } else {
        RTMGRP_IPV4_ROUTE
    };
    let iface = match oif {
        Some(o) => Some(ifs.by_index(o).ok_or(libc::ENODEV)?),
        None => None,
    };
    if iface == Some(LO) {
        return Err(libc::EOPNOTSUPP);
    }
    let r = if m.ty == RTM_NEWROUTE {
        // Without a device, the gateway's: the interface it is on-link on.
        let iface = match (iface, gateway) {
            (Some(i), _) => i,
            (None, Some(g)) => ifs
                .all_addrs()
                .find(|(_, c)| c.contains_addr(&g))
                .map(|(i, _)| i)
                .ok_or(libc::ENETUNREACH)?,
            (None, None) => return Err(libc::EINVAL),
        };
        let r = RouteEntry {
            dst,
            via: gateway,
            iface,
            src: prefsrc,
            // As the request says (iproute2 sends `boot` unless told `proto X`).
            origin: match m.body[5] {
                RTPROT_BOOT => RouteOrigin::Boot,
                RTPROT_STATIC => RouteOrigin::Static,
                RTPROT_DHCP => RouteOrigin::Dhcp,
                // (`Ra` is for the routes SLAAC learned, which it also removes.)
                p => RouteOrigin::Other(p),
            },
        };
        let replace = m.flags & NLM_F_REPLACE != 0;
        match ifs.add_route(r, replace) {
            Ok(()) => {}
            // `ip route add` of what is there: EEXIST, as Linux.
            Err(e) => return Err(errno(e)),
        }
        log::info!(
            "netlink: route {dst} via {gateway:?} dev {} added",
            ifs.get(iface).name
        );
        r
    } else {
        let r = ifs
            .del_route(dst, gateway, iface)
            .map_err(|_| libc::ESRCH)?;
        log::info!("netlink: route {dst} removed");
        r
    };
    let ty = m.ty;
    let rt = entry_route(&r);
    Ok(vec![notify(group, |w| route_msg(&rt, ty, 0, 0, 0, w))])
}

fn set_link(
    ifs: &mut Interfaces,
    sockets: &crate::socket::Sockets,
    m: &Msg<'_>,
) -> Result<Vec<(u32, Vec<u8>)>, i32> {
    if m.body.len() < 16 {
        return Err(libc::EINVAL);
    }
    let index = i32::from_ne_bytes(m.body[4..8].try_into().unwrap_or_default());
    let flags = u32::from_ne_bytes(m.body[8..12].try_into().unwrap_or_default());
    let change = u32::from_ne_bytes(m.body[12..16].try_into().unwrap_or_default());
    let mut name = None;
    let mut mtu = None;
    for (t, v) in wire::attrs(m.body, 16) {
        match t {
            IFLA_IFNAME => {
                name = std::str::from_utf8(v)
                    .ok()
                    .map(|s| s.trim_end_matches('\0').to_string())
            }
            IFLA_MTU => {
                mtu = v
                    .get(..4)
                    .map(|b| u32::from_ne_bytes(b.try_into().unwrap_or_default()))
            }
            _ => {}
        }
    }
    let id = if index > 0 {
        ifs.by_index(index as u32)
    } else {
        name.as_deref().and_then(|n| ifs.by_name(n))
    };
    let id = id.ok_or(libc::ENODEV)?;
    if m.ty == RTM_NEWLINK
        && m.flags & NLM_F_CREATE != 0
        && index <= 0
        && ifs.by_name(name.as_deref().unwrap_or("")).is_none()
    {
        // Creating links (veth, bridge, dummy) is not for a container's stack.
        return Err(libc::EOPNOTSUPP);
    }
    if index > 0
        && let Some(n) = name.as_deref()
        && n != ifs.get(id).name
    {
        let old = ifs.get(id).name.clone();
        ifs.rename(id, n).map_err(|e| match e {
            RenameError::NoDevice => libc::ENODEV,
            RenameError::Invalid => libc::EINVAL,
            RenameError::Exists => libc::EEXIST,
            RenameError::Busy => libc::EBUSY,
        })?;
        log::info!("netlink: {old} renamed {n}");
    }
    if let Some(v) = mtu {
        let groups = sockets.groups_on(id);
        ifs.set_mtu(id, v as usize, &groups).map_err(|e| match e {
            MtuError::NoDevice => libc::ENODEV,
            MtuError::OutOfRange(_) => libc::EINVAL,
        })?;
        log::info!("netlink: {} mtu {v}", ifs.get(id).name);
    }
    // Linux's rule: flags change only when flags or the change mask are set;
    // without a mask the flags replace all.
    let iff_up = libc::IFF_UP as u32;
    if flags != 0 || change != 0 {
        let up = if change == 0 || change & iff_up != 0 {
            flags & iff_up != 0
        } else {
            ifs.get(id).up
        };
        if up != ifs.get(id).up {
            if id == LO {
                return Err(libc::EOPNOTSUPP);
            }
            ifs.set_up(id, up);
            log::info!(
                "netlink: {} {}",
                ifs.get(id).name,
                if up { "up" } else { "down" }
            );
        }
    }
    let ifs_ro: &Interfaces = ifs;
    Ok(vec![notify(RTMGRP_LINK, |w| {
        link_msg(ifs_ro, id, RTM_NEWLINK, 0, 0, 0, w)
    })])
}

/// Whether `m` asks for `lo` as it is — up, with 127.0.0.1/8 or ::1 — which
/// container runtimes and sandboxes do in the network namespace they make, as
/// root of their own user namespace: done for anyone (changing nothing), as
/// Linux does it for them in theirs.
fn lo_as_it_is(m: &Msg<'_>) -> bool {
    let b = m.body;
    if b.len() < 8 || u32::from_ne_bytes([b[4], b[5], b[6], b[7]]) != 1 {
        return false;
    }
    match m.ty {
        RTM_NEWADDR => {
            let v4 = b[0] as i32 == libc::AF_INET && b[1] == 8;
            let v6 = b[0] as i32 == libc::AF_INET6 && b[1] == 128;
            let own = |v: &[u8]| v == [127, 0, 0, 1] || v == std::net::Ipv6Addr::LOCALHOST.octets();
            (v4 || v6)
                && wire::attrs(b, 8).all(|(t, v)| !matches!(t, IFA_LOCAL | IFA_ADDRESS) || own(v))
        }
        RTM_NEWLINK | RTM_SETLINK if b.len() >= 16 => {
            let flags = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
            let change = u32::from_ne_bytes([b[12], b[13], b[14], b[15]]);
            let up = libc::IFF_UP as u32;
            b.len() == 16 && change & !up == 0 && flags & up == up
        }
        _ => false,
    }
}
