//! Interfaces: a container's `lo` and `eth0`, their addresses and routes.
//!
//! # Theory of operation
//!
//! smoltcp has no loopback inside an `Interface`: a packet to the interface's own
//! address goes out on the device (it ARPs for itself on the TAP). So a container has
//! two smoltcp interfaces, each with its **own** `SocketSet` (two interfaces polling
//! one set reset each other's connections):
//!
//! - `lo` on a [`LoopbackDevice`](crate::device::LoopbackDevice): 127.0.0.0/8 (with
//!   smoltcp's *any-IP* mode and a route, so that 127.0.0.2 is as local as on Linux),
//!   `::1`, and a host route (/32, /128) for every address of `eth0`. Traffic from the
//!   container to any of its own addresses runs here, as Linux routes local addresses
//!   through `lo`; it never appears on the TAP.
//! - `eth0` on the L2 device (a TAP, or any smoltcp `Device` for embedders), with the
//!   container's addresses and default gateways.
//!
//! [`Interfaces::route`] is the routing decision both for choosing the interface a
//! connection lives on and for its source address; it is the one place that knows the
//! difference between "local", "on-link" and "via the gateway".
//!
//! Every received frame passes the [`ingress`] hook before smoltcp sees it; that is
//! where the TCP layer holds back SYNs that smoltcp would otherwise answer with a RST
//! (see [`crate::socket`]).

pub mod egress;
pub mod ingress;
pub(crate) mod listing;

use crate::uplink::Uplink;
use smoltcp::iface::{Config, Interface, Route as SmolRoute, SocketSet};
use smoltcp::phy::{Device, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv4Address, Ipv4Cidr, Ipv6Address,
};
use std::fmt;

/// Index of an interface in a stack: [`LO`] is 0, `eth0` is 1.
pub type IfaceId = usize;
/// The loopback interface.
pub const LO: IfaceId = 0;
/// The L2 interface, when the stack has one.
pub const ETH: IfaceId = 1;

/// How the L2 interface is configured.
#[derive(Clone, Debug, Default)]
pub struct EthConfig {
    /// The interface's name inside the container (`eth0`).
    pub name: String,
    /// Addresses with prefix length, IPv4 and/or IPv6.
    pub addrs: Vec<IpCidr>,
    /// Default gateways, at most one per address family.
    pub gateways: Vec<IpAddress>,
    /// The MAC address; a random locally administered one if `None`.
    pub mac: Option<EthernetAddress>,
    /// Take an IPv4 address, gateway and nameservers from a DHCP server
    /// (see [`crate::stack::Stack::dhcp_lease`]).
    pub dhcp: bool,
    /// Configure IPv6 addresses and the default route from router advertisements
    /// (SLAAC, smoltcp's: one prefix at a time).
    pub slaac: bool,
}

/// Why an interface configuration was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// An address that cannot be an interface address.
    BadAddress(IpCidr),
    /// More addresses than a smoltcp interface holds.
    TooManyAddresses(usize),
    /// A gateway not on any configured subnet of its family.
    UnreachableGateway(IpAddress),
    /// Two gateways for one family.
    DuplicateGateway(IpAddress),
    /// A MAC address that is not unicast.
    BadMac(EthernetAddress),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::BadAddress(a) => {
                write!(
                    f,
                    "{a} cannot be an interface address (loopback, multicast, unspecified or broadcast)"
                )
            }
            ConfigError::TooManyAddresses(n) => {
                write!(
                    f,
                    "{n} addresses given; an interface holds at most {MAX_ETH_ADDRS}"
                )
            }
            ConfigError::UnreachableGateway(g) => {
                write!(
                    f,
                    "gateway {g} is not inside any configured subnet of its family"
                )
            }
            ConfigError::DuplicateGateway(g) => {
                write!(f, "a second gateway {g} for the same family")
            }
            ConfigError::BadMac(m) => write!(f, "MAC address {m} is not unicast"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Why an address or route change was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrChangeError {
    /// The container has no such interface (`ENODEV`).
    NoDevice,
    /// Not an address an interface may hold (`EINVAL`).
    Invalid,
    /// Already there (`EEXIST`).
    Exists,
    /// Not there (`EADDRNOTAVAIL`, `ESRCH` for routes).
    NotFound,
    /// smoltcp's compile-time table is full (`ENOSPC`).
    Full,
}

/// `lo` holds 127.0.0.1/8 and ::1 besides a host route per eth0 address, and eth0
/// its link-local address besides these, within smoltcp's compile-time limit
/// (`SMOLTCP_IFACE_MAX_ADDR_COUNT` = 16).
pub const MAX_ETH_ADDRS: usize = 12;

/// The link-local IPv6 address Linux gives an Ethernet interface: fe80::/64 with
/// the modified EUI-64 of its MAC (RFC 4291 appendix A).
pub fn link_local(mac: EthernetAddress) -> Ipv6Address {
    let m = mac.0;
    Ipv6Address::new(
        0xfe80,
        0,
        0,
        0,
        u16::from_be_bytes([m[0] ^ 0x02, m[1]]),
        u16::from_be_bytes([m[2], 0xff]),
        u16::from_be_bytes([0xfe, m[3]]),
        u16::from_be_bytes([m[4], m[5]]),
    )
}

/// One smoltcp interface and the sockets it polls.
pub struct NetIf {
    /// The name programs see (`lo`, `eth0`).
    pub name: String,
    /// The smoltcp interface.
    pub iface: Interface,
    /// The sockets that live on it.
    pub sockets: SocketSet<'static>,
    /// The IP MTU of its device.
    pub mtu: usize,
    /// Whether its device is Ethernet (else IP: `lo`, the host uplink).
    pub ethernet: bool,
    /// Administratively up (`ip link set dev X up|down`): a down interface routes
    /// nothing and its device is not polled.
    pub up: bool,
}

/// Where a packet to a destination goes: the interface and the source address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// The interface the connection lives on.
    pub iface: IfaceId,
    /// The source address Linux would choose.
    pub src: IpAddress,
}

/// A container's interfaces.
pub struct Interfaces {
    list: Vec<NetIf>,
    /// eth0's configured addresses (the host routes on `lo` mirror them).
    eth_addrs: Vec<IpCidr>,
    eth_gateways: Vec<IpAddress>,
    uplink: Option<Uplink>,
}

/// A random seed from the standard library's per-process hash keys (no extra crate).
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    h.finish()
}

fn is_loopback(a: &IpAddress) -> bool {
    match a {
        IpAddress::Ipv4(a) => a.is_loopback(),
        IpAddress::Ipv6(a) => a.is_loopback(),
    }
}

impl Interfaces {
    /// Builds `lo`, and `eth0` on `eth_dev` if given.
    pub fn new<L: Device, D: Device>(
        lo_dev: &mut L,
        eth: Option<(&mut D, &EthConfig)>,
        now: Instant,
    ) -> Result<Interfaces, ConfigError> {
        let mut eth_addrs = Vec::new();
        let mut eth_gateways = Vec::new();
        let mut mac = None;
        if let Some((dev, cfg)) = &eth {
            validate(cfg)?;
            eth_addrs = cfg.addrs.clone();
            eth_gateways = cfg.gateways.clone();
            // Like Linux, every Ethernet interface has a link-local IPv6 address.
            if dev.capabilities().medium == Medium::Ethernet {
                let m = cfg.mac.unwrap_or_else(random_mac);
                let ll = IpCidr::new(link_local(m).into(), 64);
                if !eth_addrs.contains(&ll) {
                    eth_addrs.push(ll);
                }
                mac = Some(m);
            }
        }

        let mut lo_cfg = Config::new(HardwareAddress::Ip);
        lo_cfg.random_seed = random_u64();
        let lo_mtu = lo_dev.capabilities().ip_mtu();
        let mut lo = Interface::new(lo_cfg, lo_dev, now);
        lo.update_ip_addrs(|a| {
            // Capacity is checked by `validate` (MAX_ETH_ADDRS + 2 <= 8).
            let _ = a.push(IpCidr::new(Ipv4Address::new(127, 0, 0, 1).into(), 8));
            let _ = a.push(IpCidr::new(Ipv6Address::LOCALHOST.into(), 128));
            for c in &eth_addrs {
                let _ = a.push(IpCidr::new(
                    c.address(),
                    if c.address().version() == smoltcp::wire::IpVersion::Ipv4 {
                        32
                    } else {
                        128
                    },
                ));
            }
        });
        // any-IP: accept every address of 127.0.0.0/8, as Linux's lo does.
        lo.set_any_ip(true);
        lo.routes_mut().update(|r| {
            let _ = r.push(SmolRoute {
                cidr: IpCidr::Ipv4(Ipv4Cidr::new(Ipv4Address::new(127, 0, 0, 0), 8)),
                via_router: Ipv4Address::new(127, 0, 0, 1).into(),
                preferred_until: None,
                expires_at: None,
            });
        });
        let mut list = vec![NetIf {
            name: "lo".into(),
            iface: lo,
            sockets: SocketSet::new(Vec::new()),
            mtu: lo_mtu,
            ethernet: false,
            up: true,
        }];

        if let Some((dev, cfg)) = eth {
            // An IP-medium device (the host uplink) has no hardware address.
            let hw = match mac {
                Some(m) => HardwareAddress::Ethernet(m),
                None => HardwareAddress::Ip,
            };
            let mut c = Config::new(hw);
            c.random_seed = random_u64();
            c.slaac = cfg.slaac && mac.is_some();
            let mtu = dev.capabilities().ip_mtu();
            let mut iface = Interface::new(c, dev, now);
            iface.update_ip_addrs(|a| {
                for c in &eth_addrs {
                    let _ = a.push(*c);
                }
            });
            for g in &cfg.gateways {
                // Validated: one per family, so the route table has room.
                let _ = match g {
                    IpAddress::Ipv4(g) => iface.routes_mut().add_default_ipv4_route(*g),
                    IpAddress::Ipv6(g) => iface.routes_mut().add_default_ipv6_route(*g),
                };
            }
            let name = if cfg.name.is_empty() {
                "eth0".to_string()
            } else {
                cfg.name.clone()
            };
            list.push(NetIf {
                name,
                iface,
                sockets: SocketSet::new(Vec::new()),
                mtu,
                ethernet: mac.is_some(),
                up: true,
            });
        }
        Ok(Interfaces {
            list,
            eth_addrs,
            eth_gateways,
            uplink: None,
        })
    }

    /// Makes eth0 the host uplink: TCP connections routed through it are handed
    /// to host sockets by `uplink`'s policy (see [`crate::uplink`]).
    pub fn set_uplink(&mut self, uplink: Uplink) {
        self.uplink = Some(uplink);
    }

    /// Takes in what smoltcp's SLAAC changed on eth0 (addresses from router
    /// advertisements, the default route through the router): the routing
    /// decisions and `lo`'s host routes follow. Returns whether anything changed.
    pub fn sync_slaac(&mut self) -> bool {
        if self.list.len() <= ETH {
            return false;
        }
        let global6 = |c: &IpCidr| matches!(c.address(), IpAddress::Ipv6(a) if !a.is_unicast_link_local() && !a.is_loopback());
        let now: Vec<IpCidr> = self.list[ETH]
            .iface
            .ip_addrs()
            .iter()
            .copied()
            .filter(global6)
            .collect();
        let mut changed = false;
        for c in &now {
            if !self.eth_addrs.contains(c) {
                let a = c.address();
                self.list[LO].iface.update_ip_addrs(|v| {
                    let _ = v.push(IpCidr::new(a, 128));
                });
                self.eth_addrs.push(*c);
                log::info!("slaac: eth0 {c}");
                changed = true;
            }
        }
        let gone: Vec<IpCidr> = self
            .eth_addrs
            .iter()
            .copied()
            .filter(|c| global6(c) && !now.contains(c))
            .collect();
        for c in gone {
            let _ = self.del_eth_addr(c.address());
            changed = true;
        }
        let mut router = None;
        self.list[ETH].iface.routes_mut().update(|r| {
            router = r
                .iter()
                .find(|r| r.cidr.prefix_len() == 0 && matches!(r.via_router, IpAddress::Ipv6(_)))
                .map(|r| r.via_router);
        });
        let current = self
            .eth_gateways
            .iter()
            .find(|g| matches!(g, IpAddress::Ipv6(_)))
            .copied();
        if router != current {
            self.eth_gateways
                .retain(|g| !matches!(g, IpAddress::Ipv6(_)));
            if let Some(r) = router {
                self.eth_gateways.push(r);
                log::info!("slaac: default route via {r}");
            }
            changed = true;
        }
        changed
    }

    /// eth0's default gateways.
    pub fn eth_gateways(&self) -> &[IpAddress] {
        &self.eth_gateways
    }

    /// Sets an interface up or down (see [`NetIf::up`]).
    pub fn set_up(&mut self, id: IfaceId, up: bool) {
        if let Some(n) = self.list.get_mut(id) {
            n.up = up;
        }
    }

    /// Adds an address to eth0 (and its host route on `lo`).
    pub fn add_eth_addr(&mut self, cidr: IpCidr) -> Result<(), AddrChangeError> {
        if self.list.len() <= ETH {
            return Err(AddrChangeError::NoDevice);
        }
        let a = cidr.address();
        // smoltcp panics on an interface address that is not unicast (found by
        // fuzzing `ip addr add 255.255.255.255/24`).
        if !a.is_unicast() || is_loopback(&a) {
            return Err(AddrChangeError::Invalid);
        }
        if self.eth_addrs.iter().any(|c| c.address() == a) {
            return Err(AddrChangeError::Exists);
        }
        if self.eth_addrs.len() >= MAX_ETH_ADDRS {
            return Err(AddrChangeError::Full);
        }
        let mut full = false;
        self.list[ETH]
            .iface
            .update_ip_addrs(|v| full = v.push(cidr).is_err());
        if full {
            return Err(AddrChangeError::Full);
        }
        let host = IpCidr::new(
            a,
            if a.version() == smoltcp::wire::IpVersion::Ipv4 {
                32
            } else {
                128
            },
        );
        self.list[LO].iface.update_ip_addrs(|v| {
            let _ = v.push(host);
        });
        self.eth_addrs.push(cidr);
        Ok(())
    }

    /// Removes an address of eth0 (`cidr`'s prefix length is not compared, as
    /// `ip addr del` without one).
    pub fn del_eth_addr(&mut self, addr: IpAddress) -> Result<(), AddrChangeError> {
        let Some(pos) = self.eth_addrs.iter().position(|c| c.address() == addr) else {
            return Err(AddrChangeError::NotFound);
        };
        self.eth_addrs.remove(pos);
        self.list[ETH]
            .iface
            .update_ip_addrs(|v| v.retain(|c| c.address() != addr));
        self.list[LO]
            .iface
            .update_ip_addrs(|v| v.retain(|c| c.address() != addr || is_loopback(&addr)));
        Ok(())
    }

    /// Sets (or with `None` removes) eth0's default gateway of `v6`'s family.
    pub fn set_gateway(&mut self, v6: bool, gw: Option<IpAddress>) -> Result<(), AddrChangeError> {
        if self.list.len() <= ETH {
            return Err(AddrChangeError::NoDevice);
        }
        let fam = |a: &IpAddress| matches!(a, IpAddress::Ipv6(_)) == v6;
        let routes = self.list[ETH].iface.routes_mut();
        match gw {
            None => {
                if !self.eth_gateways.iter().any(fam) {
                    return Err(AddrChangeError::NotFound);
                }
                let _ = if v6 {
                    routes.remove_default_ipv6_route()
                } else {
                    routes.remove_default_ipv4_route()
                };
                self.eth_gateways.retain(|a| !fam(a));
            }
            Some(g) => {
                if !fam(&g) {
                    return Err(AddrChangeError::Invalid);
                }
                let r = match g {
                    IpAddress::Ipv4(g) => routes.add_default_ipv4_route(g).map(|_| ()),
                    IpAddress::Ipv6(g) => routes.add_default_ipv6_route(g).map(|_| ()),
                };
                if r.is_err() {
                    return Err(AddrChangeError::Full);
                }
                self.eth_gateways.retain(|a| !fam(a));
                self.eth_gateways.push(g);
            }
        }
        Ok(())
    }

    /// The uplink's policy, when eth0 is the host uplink.
    pub fn uplink(&self) -> Option<&Uplink> {
        self.uplink.as_ref()
    }

    /// The interfaces, `lo` first.
    pub fn iter(&self) -> impl Iterator<Item = (IfaceId, &NetIf)> {
        self.list.iter().enumerate()
    }

    /// One interface.
    pub fn get(&self, id: IfaceId) -> &NetIf {
        &self.list[id]
    }

    /// One interface, mutably.
    pub fn get_mut(&mut self, id: IfaceId) -> &mut NetIf {
        &mut self.list[id]
    }

    /// How many interfaces there are.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Always false: `lo` exists.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The interface with this Linux-style index (`lo` is 1, `eth0` 2).
    pub fn by_index(&self, index: u32) -> Option<IfaceId> {
        let i = (index as usize).checked_sub(1)?;
        (i < self.list.len()).then_some(i)
    }

    /// The interface with this name.
    pub fn by_name(&self, name: &str) -> Option<IfaceId> {
        self.list.iter().position(|n| n.name == name)
    }

    /// eth0's addresses.
    pub fn eth_addrs(&self) -> &[IpCidr] {
        &self.eth_addrs
    }

    /// Whether `addr` belongs to this container: 127/8, ::1 or an address of eth0.
    pub fn is_local(&self, addr: &IpAddress) -> bool {
        is_loopback(addr) || self.eth_addrs.iter().any(|c| c.address() == *addr)
    }

    /// The local addresses a wildcard listener of this family accepts on, per
    /// interface (used to arm exact-address listening sockets).
    pub fn local_addrs(&self, iface: IfaceId) -> impl Iterator<Item = IpAddress> + '_ {
        self.list[iface]
            .iface
            .ip_addrs()
            .iter()
            .map(|c| c.address())
    }

    /// Chooses the interface and source address for traffic to `dst`, as Linux's
    /// routing would: local destinations (including 0.0.0.0 and ::, which Linux treats
    /// as "this host") go over `lo`; on-link subnets and then default gateways over
    /// `eth0`. `None` means unreachable (`ENETUNREACH`).
    pub fn route(&self, dst: &IpAddress) -> Option<Route> {
        let dst = match dst {
            IpAddress::Ipv4(a) if a.is_unspecified() => {
                IpAddress::Ipv4(Ipv4Address::new(127, 0, 0, 1))
            }
            IpAddress::Ipv6(a) if a.is_unspecified() => IpAddress::Ipv6(Ipv6Address::LOCALHOST),
            d => *d,
        };
        if is_loopback(&dst) {
            let src = match dst {
                IpAddress::Ipv4(_) => IpAddress::Ipv4(Ipv4Address::new(127, 0, 0, 1)),
                IpAddress::Ipv6(_) => IpAddress::Ipv6(Ipv6Address::LOCALHOST),
            };
            return Some(Route { iface: LO, src });
        }
        if self.is_local(&dst) {
            return Some(Route {
                iface: LO,
                src: dst,
            });
        }
        if dst.is_multicast() || matches!(dst, IpAddress::Ipv4(a) if a.is_broadcast()) {
            return None;
        }
        if self.list.len() > ETH && self.list[ETH].up {
            if let Some(c) = self.eth_addrs.iter().find(|c| c.contains_addr(&dst)) {
                return Some(Route {
                    iface: ETH,
                    src: c.address(),
                });
            }
            let family_matches = |a: &IpAddress| a.version() == dst.version();
            if self.eth_gateways.iter().any(family_matches)
                && let Some(c) = self.eth_addrs.iter().find(|c| family_matches(&c.address()))
            {
                return Some(Route {
                    iface: ETH,
                    src: c.address(),
                });
            }
        }
        None
    }
}

fn validate(cfg: &EthConfig) -> Result<(), ConfigError> {
    if cfg.addrs.len() > MAX_ETH_ADDRS {
        return Err(ConfigError::TooManyAddresses(cfg.addrs.len()));
    }
    for c in &cfg.addrs {
        let a = c.address();
        let bad = a.is_unspecified()
            || a.is_multicast()
            || is_loopback(&a)
            || matches!(a, IpAddress::Ipv4(v4) if v4.is_broadcast());
        if bad {
            return Err(ConfigError::BadAddress(*c));
        }
    }
    let mut seen_v4 = false;
    let mut seen_v6 = false;
    for g in &cfg.gateways {
        let seen = match g {
            IpAddress::Ipv4(_) => &mut seen_v4,
            IpAddress::Ipv6(_) => &mut seen_v6,
        };
        if *seen {
            return Err(ConfigError::DuplicateGateway(*g));
        }
        *seen = true;
        // IPv6 gateways are commonly link-local (fe80::1), which is always on-link.
        let link_local_v6 = matches!(g, IpAddress::Ipv6(a) if a.is_unicast_link_local());
        if !link_local_v6 && !cfg.addrs.iter().any(|c| c.contains_addr(g)) {
            return Err(ConfigError::UnreachableGateway(*g));
        }
    }
    if let Some(m) = cfg.mac
        && !m.is_unicast()
    {
        return Err(ConfigError::BadMac(m));
    }
    Ok(())
}

/// A random, locally administered, unicast MAC address.
pub fn random_mac() -> EthernetAddress {
    let r = random_u64().to_le_bytes();
    EthernetAddress([(r[0] & 0xfe) | 0x02, r[1], r[2], r[3], r[4], r[5]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{LoopbackDevice, PipeDevice};

    fn cidr(s: &str) -> IpCidr {
        s.parse().unwrap()
    }

    fn ifs(addrs: &[&str], gws: &[&str]) -> Result<Interfaces, ConfigError> {
        let mut lo = LoopbackDevice::new();
        let (mut d, _peer) = PipeDevice::pair(1500);
        let cfg = EthConfig {
            name: "eth0".into(),
            addrs: addrs.iter().map(|s| cidr(s)).collect(),
            gateways: gws.iter().map(|s| s.parse().unwrap()).collect(),
            mac: None,
            dhcp: false,
            slaac: false,
        };
        Interfaces::new(&mut lo, Some((&mut d, &cfg)), Instant::from_millis(0))
    }

    #[test]
    fn link_local_from_mac() {
        let mac = EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        assert_eq!(
            link_local(mac),
            "fe80::5054:ff:fe12:3456".parse::<Ipv6Address>().unwrap()
        );
        let n = ifs(&["10.1.0.2/24"], &[]).unwrap();
        let ll = n
            .eth_addrs()
            .iter()
            .find(|c| matches!(c.address(), IpAddress::Ipv6(a) if a.is_unicast_link_local()));
        assert!(ll.is_some(), "eth0 has a link-local address");
        assert_eq!(
            n.route(&"fe80::1".parse().unwrap()).map(|r| r.iface),
            Some(ETH)
        );
    }

    #[test]
    fn routes_like_linux() {
        let n = ifs(&["10.1.0.2/24", "fd00::2/64"], &["10.1.0.1"]).unwrap();
        let r = |s: &str| n.route(&s.parse().unwrap());
        assert_eq!(
            r("127.0.0.1"),
            Some(Route {
                iface: LO,
                src: "127.0.0.1".parse().unwrap()
            })
        );
        assert_eq!(r("127.9.9.9").unwrap().iface, LO);
        assert_eq!(r("0.0.0.0").unwrap().iface, LO);
        assert_eq!(r("::1").unwrap().iface, LO);
        assert_eq!(
            r("10.1.0.2"),
            Some(Route {
                iface: LO,
                src: "10.1.0.2".parse().unwrap()
            })
        );
        assert_eq!(
            r("10.1.0.7"),
            Some(Route {
                iface: ETH,
                src: "10.1.0.2".parse().unwrap()
            })
        );
        assert_eq!(
            r("192.0.2.1"),
            Some(Route {
                iface: ETH,
                src: "10.1.0.2".parse().unwrap()
            })
        );
        assert_eq!(r("fd00::9").unwrap().iface, ETH);
        // No IPv6 default route: off-link v6 is unreachable.
        assert_eq!(r("2001:db8::1"), None);
        assert_eq!(r("224.0.0.1"), None);
    }

    #[test]
    fn loopback_only_stack_reaches_nothing_else() {
        let mut lo = LoopbackDevice::new();
        let n = Interfaces::new::<_, PipeDevice>(&mut lo, None, Instant::from_millis(0)).unwrap();
        assert_eq!(n.len(), 1);
        assert_eq!(n.route(&"10.0.0.1".parse().unwrap()), None);
        assert!(n.route(&"127.0.0.1".parse().unwrap()).is_some());
    }

    #[test]
    fn rejects_bad_configs() {
        assert_eq!(
            ifs(&["127.0.0.2/8"], &[]).err(),
            Some(ConfigError::BadAddress(cidr("127.0.0.2/8")))
        );
        assert_eq!(
            ifs(&["224.0.0.5/4"], &[]).err(),
            Some(ConfigError::BadAddress(cidr("224.0.0.5/4")))
        );
        assert!(matches!(
            ifs(&["10.0.0.2/24"], &["10.9.0.1"]),
            Err(ConfigError::UnreachableGateway(_))
        ));
        assert!(matches!(
            ifs(&["10.0.0.2/24"], &["10.0.0.1", "10.0.0.3"]),
            Err(ConfigError::DuplicateGateway(_))
        ));
        let many: Vec<String> = (0..13).map(|i| format!("10.0.{i}.2/24")).collect();
        let many: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            ifs(&many, &[]).err(),
            Some(ConfigError::TooManyAddresses(13))
        );
        assert!(ifs(&["fd00::2/64"], &["fe80::1"]).is_ok());
    }
}
