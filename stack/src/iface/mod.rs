//! Interfaces: a container's `lo` and its L2 devices (`eth0`, `eth1`, ...), their
//! addresses and its routing table.
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
//! - `eth0`, `eth1`, ... on the L2 devices (TAPs, the host uplink, or any smoltcp
//!   `Device` for embedders), each with its addresses.
//!
//! # Routing
//!
//! The container has one routing table (Linux's `main`): the *connected* routes,
//! one per subnet of an interface address (derived, as the kernel's `proto kernel`
//! routes are), and the [`RouteEntry`]s the configuration, DHCP, router
//! advertisements or `ip route` added — a destination prefix, a gateway or none
//! (on-link), an interface, an optional preferred source. [`Interfaces::route`]
//! picks, among the routes of interfaces that are up, the one with the longest
//! prefix (a connected route wins a tie, then the older entry): that is the
//! interface a connection lives on; its source address is the route's preferred
//! source, else the interface's address on the gateway's (or destination's)
//! subnet, else the interface's first address of the family — Linux's choice for
//! a single-homed interface. It is the one place that knows the difference
//! between "local", "on-link" and "via a gateway".
//!
//! smoltcp resolves the next hop itself from each interface's own route list,
//! which is rebuilt from this table whenever it changes (the gateway routes of
//! that interface; smoltcp sends directly to destinations on an interface's
//! subnets). An on-link route outside every subnet of its interface therefore
//! cannot be followed by smoltcp and is refused (`EOPNOTSUPP`, documented).
//!
//! Every received frame passes the [`ingress`] hook before smoltcp sees it; that is
//! where the TCP layer holds back SYNs that smoltcp would otherwise answer with a RST
//! (see [`crate::socket`]).

pub mod egress;
mod grant;
pub mod ingress;
pub(crate) mod listing;
pub mod recovery;
pub mod recycle;
pub mod shards;

use crate::uplink::Uplink;
use smoltcp::iface::{Config, Interface, Route as SmolRoute};
use smoltcp::phy::{Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv4Address, Ipv4Cidr, Ipv6Address,
};
use std::fmt;

/// Index of an interface in a stack: [`LO`] is 0, the L2 interfaces follow
/// (`eth0` is 1).
pub type IfaceId = usize;
/// The loopback interface.
pub const LO: IfaceId = 0;
/// The first L2 interface (`eth0`), when the stack has one.
pub const ETH: IfaceId = 1;

/// How an L2 interface is configured.
#[derive(Clone, Debug, Default)]
pub struct EthConfig {
    /// The interface's name inside the container (`eth0`; empty: `eth<N>` by
    /// position).
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
    /// Two interfaces with one name.
    DuplicateName(String),
    /// More L2 interfaces than a stack takes.
    TooManyInterfaces(usize),
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
                    "{n} addresses given; an interface holds at most {MAX_ETH_ADDRS}, all \
                     interfaces together {MAX_ADDRS}"
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
            ConfigError::DuplicateName(n) => write!(f, "two interfaces are named {n}"),
            ConfigError::TooManyInterfaces(n) => {
                write!(f, "{n} devices given; a container takes at most {MAX_ETHS}")
            }
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
    /// The gateway is on no subnet of the route's interface (`ENETUNREACH`).
    Unreachable,
    /// A route smoltcp cannot follow (`EOPNOTSUPP`): on-link outside the
    /// interface's subnets.
    Unsupported,
}

/// Why an MTU change was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MtuError {
    /// No such interface (`ENODEV`).
    NoDevice,
    /// Outside 68 up to the device's MTU, given here (`EINVAL`).
    OutOfRange(usize),
}

/// Why a rename was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenameError {
    /// No such interface (`ENODEV`).
    NoDevice,
    /// Not a name Linux takes (`EINVAL`).
    Invalid,
    /// Another interface has it (`EEXIST`).
    Exists,
    /// The interface is up, or is `lo` (`EBUSY`).
    Busy,
}

/// The most addresses one L2 interface holds besides its link-local one, within
/// smoltcp's compile-time limit (`SMOLTCP_IFACE_MAX_ADDR_COUNT` = 16).
pub const MAX_ETH_ADDRS: usize = 12;
/// The most addresses all L2 interfaces hold together (link-local ones included):
/// `lo` keeps a host route for each beside 127.0.0.1/8 and ::1, in its 16.
pub const MAX_ADDRS: usize = 14;
/// The most L2 interfaces a stack takes.
pub const MAX_ETHS: usize = 8;
/// The most routes in the table ([`RouteEntry`]s; connected routes are free).
pub const MAX_ROUTES: usize = 64;
/// The most gateway routes one interface holds (smoltcp's route list,
/// `SMOLTCP_IFACE_MAX_ROUTE_COUNT` = 16).
const MAX_IFACE_ROUTES: usize = 16;

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
    pub sockets: shards::Shards,
    /// The IP MTU of its device.
    pub mtu: usize,
    /// Whether its device is Ethernet (else IP: `lo`, the host uplink).
    pub ethernet: bool,
    /// Administratively up (`ip link set dev X up|down`): a down interface routes
    /// nothing and its device is not polled.
    pub up: bool,
    /// Its addresses (an L2 interface's; `lo`'s are fixed and not listed here).
    addrs: Vec<IpCidr>,
    /// It configures itself from router advertisements.
    slaac: bool,
    /// The routes netcell put in smoltcp's list (the others are SLAAC's).
    installed: Vec<(IpCidr, IpAddress)>,
    /// Its device's capabilities (smoltcp fixes an interface's when it is made).
    caps: DeviceCapabilities,
    /// The device's own IP MTU: the most `ip link set mtu` may set.
    pub max_mtu: usize,
}

/// A device that only has capabilities: what a rebuilt smoltcp interface is
/// made from (see [`Interfaces::set_mtu`]); it never moves a frame.
struct CapsOnly(DeviceCapabilities);

/// The token [`CapsOnly`] never hands out.
struct NoToken;

impl smoltcp::phy::RxToken for NoToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&[])
    }
}

impl smoltcp::phy::TxToken for NoToken {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, _len: usize, f: F) -> R {
        f(&mut [])
    }
}

impl Device for CapsOnly {
    type RxToken<'a> = NoToken;
    type TxToken<'a> = NoToken;

    fn receive(&mut self, _: Instant) -> Option<(NoToken, NoToken)> {
        None
    }

    fn transmit(&mut self, _: Instant) -> Option<NoToken> {
        None
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.0.clone()
    }
}

/// Who made a route (`rtm_protocol`, as `ip route` shows it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteOrigin {
    /// The start configuration (`proto boot`).
    Boot,
    /// `ip route add` (`proto static`).
    Static,
    /// A DHCP lease (`proto dhcp`).
    Dhcp,
    /// A router advertisement (`proto ra`).
    Ra,
    /// Another `rtm_protocol` an `ip route add` gave (`proto N`).
    Other(u8),
}

/// A route of the table (connected routes are not entries: they follow the
/// addresses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteEntry {
    /// The destination prefix (its host bits are zero).
    pub dst: IpCidr,
    /// The gateway, or `None` for on-link.
    pub via: Option<IpAddress>,
    /// The interface.
    pub iface: IfaceId,
    /// The preferred source address (`src`).
    pub src: Option<IpAddress>,
    /// Who made it.
    pub origin: RouteOrigin,
}

/// Where a packet to a destination goes: the interface and the source address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// The interface the connection lives on.
    pub iface: IfaceId,
    /// The source address Linux would choose.
    pub src: IpAddress,
}

/// A container's interfaces and its routing table.
pub struct Interfaces {
    list: Vec<NetIf>,
    routes: Vec<RouteEntry>,
    uplink: Option<Uplink>,
    /// smoltcp's time at the stack's last poll (for interfaces made again).
    now: Instant,
    /// The container's packet filter (see [`crate::filter`]); the hooks of
    /// every interface ask it, so it lives beside them.
    filter: std::cell::RefCell<crate::filter::Filter>,
    /// The capture to a file (see [`crate::capture`]), inactive unless started.
    capture: std::cell::RefCell<crate::capture::Capture>,
    /// SACK-driven loss recovery for the container's TCP senders (see
    /// [`recovery`]).
    recovery: std::cell::RefCell<recovery::Recovery>,
    /// Closed TCP sockets kept for the next connection (see [`recycle`]).
    recycled: std::cell::RefCell<recycle::Recycled>,
    /// The grants generation, moved by every change of links, addresses and
    /// routes (see [`crate::control::grants`]).
    grants: crate::control::grants::Grants,
}

/// What every frame passes besides smoltcp, for one interface's poll: the packet
/// filter and the capture.
#[derive(Clone, Copy)]
pub struct Hooks<'a> {
    /// The packet filter.
    pub filter: &'a std::cell::RefCell<crate::filter::Filter>,
    /// The capture.
    pub capture: &'a std::cell::RefCell<crate::capture::Capture>,
    /// Loss recovery's watch on arriving ACKs.
    pub recovery: &'a std::cell::RefCell<recovery::Recovery>,
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

fn is_link_local(a: &IpAddress) -> bool {
    matches!(a, IpAddress::Ipv6(a) if a.is_unicast_link_local())
}

fn host_cidr(a: IpAddress) -> IpCidr {
    IpCidr::new(
        a,
        if a.version() == smoltcp::wire::IpVersion::Ipv4 {
            32
        } else {
            128
        },
    )
}

/// The network of `c`: its address with the host bits cleared.
pub fn network(c: &IpCidr) -> IpCidr {
    match c {
        IpCidr::Ipv4(c) => IpCidr::Ipv4(c.network()),
        IpCidr::Ipv6(c) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(c.prefix_len()))
                .unwrap_or(0);
            let net = u128::from_be_bytes(c.address().octets()) & mask;
            IpCidr::new(
                IpAddress::Ipv6(Ipv6Address::from(net.to_be_bytes())),
                c.prefix_len(),
            )
        }
    }
}

fn default_of(v6: bool) -> IpCidr {
    if v6 {
        IpCidr::new(IpAddress::Ipv6(Ipv6Address::UNSPECIFIED), 0)
    } else {
        IpCidr::new(IpAddress::Ipv4(Ipv4Address::UNSPECIFIED), 0)
    }
}

impl Interfaces {
    /// Builds `lo`, and an L2 interface on each of `eths`, in order (`eth0`,
    /// `eth1`, ...).
    pub fn new<L: Device, D: Device>(
        lo_dev: &mut L,
        eths: Vec<(&mut D, &EthConfig)>,
        now: Instant,
    ) -> Result<Interfaces, ConfigError> {
        if eths.len() > MAX_ETHS {
            return Err(ConfigError::TooManyInterfaces(eths.len()));
        }
        let mut lo_cfg = Config::new(HardwareAddress::Ip);
        lo_cfg.random_seed = random_u64();
        let lo_caps = lo_dev.capabilities();
        let lo_mtu = lo_caps.ip_mtu();
        let mut lo = Interface::new(lo_cfg, lo_dev, now);
        lo.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(Ipv4Address::new(127, 0, 0, 1).into(), 8));
            let _ = a.push(IpCidr::new(Ipv6Address::LOCALHOST.into(), 128));
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
        let mut ifs = Interfaces {
            list: vec![NetIf {
                name: "lo".into(),
                iface: lo,
                sockets: shards::Shards::default(),
                mtu: lo_mtu,
                ethernet: false,
                up: true,
                addrs: Vec::new(),
                slaac: false,
                installed: Vec::new(),
                caps: lo_caps,
                max_mtu: lo_mtu,
            }],
            routes: Vec::new(),
            uplink: None,
            now,
            filter: Default::default(),
            capture: Default::default(),
            recovery: Default::default(),
            recycled: Default::default(),
            grants: Default::default(),
        };
        let mut total = 0;
        for (n, (dev, cfg)) in eths.into_iter().enumerate() {
            validate(cfg)?;
            let mut addrs = cfg.addrs.clone();
            // Like Linux, every Ethernet interface has a link-local IPv6 address.
            let mac = (dev.capabilities().medium == Medium::Ethernet)
                .then(|| cfg.mac.unwrap_or_else(random_mac));
            if let Some(m) = mac {
                let ll = IpCidr::new(link_local(m).into(), 64);
                if !addrs.contains(&ll) {
                    addrs.push(ll);
                }
            }
            total += addrs.len();
            if total > MAX_ADDRS {
                return Err(ConfigError::TooManyAddresses(total));
            }
            // An IP-medium device (the host uplink) has no hardware address.
            let hw = match mac {
                Some(m) => HardwareAddress::Ethernet(m),
                None => HardwareAddress::Ip,
            };
            let mut c = Config::new(hw);
            c.random_seed = random_u64();
            c.slaac = cfg.slaac && mac.is_some();
            let caps = dev.capabilities();
            let mtu = caps.ip_mtu();
            let iface = Interface::new(c, dev, now);
            let name = if cfg.name.is_empty() {
                format!("eth{n}")
            } else {
                cfg.name.clone()
            };
            if ifs.by_name(&name).is_some() {
                return Err(ConfigError::DuplicateName(name));
            }
            ifs.list.push(NetIf {
                name,
                iface,
                sockets: shards::Shards::default(),
                mtu,
                ethernet: mac.is_some(),
                up: true,
                addrs: Vec::new(),
                slaac: cfg.slaac && mac.is_some(),
                installed: Vec::new(),
                caps,
                max_mtu: mtu,
            });
            let id = ifs.list.len() - 1;
            for a in addrs {
                match ifs.add_addr(id, a) {
                    Ok(()) => {}
                    Err(AddrChangeError::Full) => {
                        return Err(ConfigError::TooManyAddresses(total));
                    }
                    Err(_) => return Err(ConfigError::BadAddress(a)),
                }
            }
            for g in &cfg.gateways {
                let r = RouteEntry {
                    dst: default_of(matches!(g, IpAddress::Ipv6(_))),
                    via: Some(*g),
                    iface: id,
                    src: None,
                    origin: RouteOrigin::Boot,
                };
                if ifs.add_route(r, false).is_err() {
                    return Err(ConfigError::UnreachableGateway(*g));
                }
            }
        }
        ifs.names_changed();
        Ok(ifs)
    }

    /// The grants generation (see [`crate::control::grants`]): every change of
    /// links, addresses and routes moves it before it returns.
    pub fn grants(&self) -> &crate::control::grants::Grants {
        &self.grants
    }

    /// The grants generation, to move.
    pub fn grants_mut(&mut self) -> &mut crate::control::grants::Grants {
        &mut self.grants
    }

    /// smoltcp's time as of the stack's last poll.
    pub(crate) fn now(&self) -> Instant {
        self.now
    }

    /// Records smoltcp's time (the stack does at each poll), for the filter too.
    pub(crate) fn set_now(&mut self, now: Instant) {
        self.now = now;
        self.filter.get_mut().set_now(now);
    }

    /// Tells the filter the interfaces' names (rules name interfaces): when
    /// they are made and when one is renamed.
    fn names_changed(&mut self) {
        let names = self.list.iter().map(|n| n.name.as_str());
        self.filter.get_mut().sync_names(names);
    }

    /// The packet filter.
    pub fn filter(&self) -> &std::cell::RefCell<crate::filter::Filter> {
        &self.filter
    }

    /// Loss recovery (its counters).
    pub fn recovery(&self) -> &std::cell::RefCell<recovery::Recovery> {
        &self.recovery
    }

    /// Closed TCP sockets kept for the next connection (see [`recycle`]).
    pub fn recycled(&self) -> &std::cell::RefCell<recycle::Recycled> {
        &self.recycled
    }

    /// The capture to a file.
    pub fn capture(&self) -> &std::cell::RefCell<crate::capture::Capture> {
        &self.capture
    }

    fn capture_ifaces(&self) -> Vec<(String, bool)> {
        self.list
            .iter()
            .map(|n| (n.name.clone(), n.ethernet))
            .collect()
    }

    /// Starts capturing every frame of every interface into `out` (pcapng).
    pub fn start_capture(&mut self, out: Box<dyn std::io::Write + Send>) -> std::io::Result<()> {
        let ifaces = self.capture_ifaces();
        *self.capture.get_mut() = crate::capture::Capture::start(out, &ifaces)?;
        Ok(())
    }

    /// Starts a live capture (see [`crate::capture::Capture::add_live`]) of
    /// interface `only` (a name; `None` or "any": all).
    pub fn add_live_capture(
        &mut self,
        out: Box<dyn std::io::Write + Send>,
        only: Option<&str>,
        expr: Option<crate::capture::Expr>,
        lifeline: std::os::fd::OwnedFd,
    ) -> Result<(), String> {
        let only = match only.filter(|d| *d != "any") {
            Some(d) => Some(
                self.by_name(d)
                    .ok_or_else(|| format!("the container has no interface {d}"))?,
            ),
            None => None,
        };
        let ifaces = self.capture_ifaces();
        self.capture
            .get_mut()
            .add_live(out, &ifaces, only, expr, lifeline)
    }

    /// Interface `id` and the hooks, for one poll of it.
    pub(crate) fn poll_parts(&mut self, id: IfaceId) -> (&mut NetIf, Hooks<'_>) {
        (
            &mut self.list[id],
            Hooks {
                filter: &self.filter,
                capture: &self.capture,
                recovery: &self.recovery,
            },
        )
    }

    /// Makes eth0 the host uplink: TCP connections routed through it are handed
    /// to host sockets by `uplink`'s policy (see [`crate::uplink`]).
    pub fn set_uplink(&mut self, uplink: Uplink) {
        self.uplink = Some(uplink);
    }

    /// Takes in what smoltcp's SLAAC changed on the interfaces that use it
    /// (addresses from router advertisements, the default route through the
    /// router): the routing decisions and `lo`'s host routes follow. Returns
    /// whether anything changed.
    pub fn sync_slaac(&mut self) -> bool {
        let mut changed = false;
        for id in ETH..self.list.len() {
            if self.list[id].slaac {
                changed |= self.sync_slaac_of(id);
            }
        }
        changed
    }

    fn sync_slaac_of(&mut self, id: IfaceId) -> bool {
        let global6 = |c: &IpCidr| matches!(c.address(), IpAddress::Ipv6(a) if !a.is_unicast_link_local() && !a.is_loopback());
        let now: Vec<IpCidr> = self.list[id]
            .iface
            .ip_addrs()
            .iter()
            .copied()
            .filter(global6)
            .collect();
        let mut changed = false;
        for c in &now {
            if !self.list[id].addrs.contains(c) {
                let a = c.address();
                self.list[LO].iface.update_ip_addrs(|v| {
                    let _ = v.push(host_cidr(a));
                });
                self.list[id].addrs.push(*c);
                log::info!("slaac: {} {c}", self.list[id].name);
                changed = true;
            }
        }
        let gone: Vec<IpCidr> = self.list[id]
            .addrs
            .iter()
            .copied()
            .filter(|c| global6(c) && !now.contains(c))
            .collect();
        for c in gone {
            let _ = self.del_addr(Some(id), c.address());
            changed = true;
        }
        // smoltcp's SLAAC keeps the router's route in the interface's own list
        // (the routes there that netcell did not install); the table follows it.
        let mut router = None;
        let NetIf {
            iface, installed, ..
        } = &mut self.list[id];
        iface.routes_mut().update(|r| {
            router = r
                .iter()
                .find(|r| {
                    r.cidr.prefix_len() == 0
                        && matches!(r.via_router, IpAddress::Ipv6(_))
                        && !installed.contains(&(r.cidr, r.via_router))
                })
                .map(|r| r.via_router);
        });
        let current = self.routes.iter().position(|r| {
            r.iface == id && r.origin == RouteOrigin::Ra && r.dst == default_of(true)
        });
        if router != current.and_then(|i| self.routes[i].via) {
            if let Some(i) = current {
                self.routes.remove(i);
            }
            if let Some(r) = router {
                self.routes.push(RouteEntry {
                    dst: default_of(true),
                    via: Some(r),
                    iface: id,
                    src: None,
                    origin: RouteOrigin::Ra,
                });
                log::info!("slaac: default route via {r} dev {}", self.list[id].name);
            }
            changed = true;
        }
        changed
    }

    /// The default gateways of interface `id`.
    pub fn gateways(&self, id: IfaceId) -> impl Iterator<Item = IpAddress> + '_ {
        self.routes
            .iter()
            .filter(move |r| r.iface == id && r.dst.prefix_len() == 0)
            .filter_map(|r| r.via)
    }

    /// The routing table's entries (connected routes are not among them).
    pub fn routes(&self) -> &[RouteEntry] {
        &self.routes
    }

    /// Sets, on every interface, how many sockets its home set holds before TCP
    /// connections are spread over shards (see [`shards`]; [`shards::HOME_MAX`]
    /// by default).
    pub fn set_shard_home_max(&mut self, n: usize) {
        for n_if in &mut self.list {
            n_if.sockets.set_home_max(n);
        }
    }

    /// Every socket of every interface is due for a poll (an address changed).
    fn touch_all(&mut self) {
        for n in &mut self.list {
            n.sockets.touch_all();
        }
    }

    /// Sets an interface up or down (see [`NetIf::up`]).
    pub fn set_up(&mut self, id: IfaceId, up: bool) {
        self.grants.invalidate();
        if let Some(n) = self.list.get_mut(id) {
            n.up = up;
            n.sockets.touch_all();
        }
    }

    /// How many addresses the L2 interfaces hold together.
    fn addr_count(&self) -> usize {
        self.list.iter().map(|n| n.addrs.len()).sum()
    }

    /// Adds an address to L2 interface `id` (and its host route on `lo`).
    pub fn add_addr(&mut self, id: IfaceId, cidr: IpCidr) -> Result<(), AddrChangeError> {
        self.grants.invalidate();
        self.touch_all();
        if id == LO || id >= self.list.len() {
            return Err(AddrChangeError::NoDevice);
        }
        let a = cidr.address();
        // smoltcp panics on an interface address that is not unicast (found by
        // fuzzing `ip addr add 255.255.255.255/24`).
        if !a.is_unicast() || is_loopback(&a) {
            return Err(AddrChangeError::Invalid);
        }
        if self.is_local(&a) {
            return Err(AddrChangeError::Exists);
        }
        let own = self.list[id]
            .addrs
            .iter()
            .filter(|c| !is_link_local(&c.address()))
            .count();
        if (own >= MAX_ETH_ADDRS && !is_link_local(&a)) || self.addr_count() >= MAX_ADDRS {
            return Err(AddrChangeError::Full);
        }
        let mut full = false;
        self.list[id]
            .iface
            .update_ip_addrs(|v| full = v.push(cidr).is_err());
        if full {
            return Err(AddrChangeError::Full);
        }
        self.list[LO].iface.update_ip_addrs(|v| {
            let _ = v.push(host_cidr(a));
        });
        self.list[id].addrs.push(cidr);
        Ok(())
    }

    /// Removes an address (of interface `id`, or of whichever holds it); `cidr`'s
    /// prefix length is not compared, as `ip addr del` without one. Routes
    /// through gateways that are no longer on any subnet of their interface go
    /// with it, as Linux's do.
    pub fn del_addr(
        &mut self,
        id: Option<IfaceId>,
        addr: IpAddress,
    ) -> Result<(), AddrChangeError> {
        self.grants.invalidate();
        self.touch_all();
        let holder = (ETH..self.list.len())
            .filter(|&i| id.is_none_or(|id| id == i))
            .find(|&i| self.list[i].addrs.iter().any(|c| c.address() == addr))
            .ok_or(AddrChangeError::NotFound)?;
        self.list[holder].addrs.retain(|c| c.address() != addr);
        self.list[holder]
            .iface
            .update_ip_addrs(|v| v.retain(|c| c.address() != addr));
        self.list[LO]
            .iface
            .update_ip_addrs(|v| v.retain(|c| c.address() != addr || is_loopback(&addr)));
        let before = self.routes.len();
        let list = &self.list;
        self.routes.retain(|r| match r.via {
            Some(g) => r.iface != holder || on_link(&list[holder], &g),
            None => true,
        });
        if self.routes.len() != before {
            self.sync_iface_routes(holder);
        }
        Ok(())
    }

    /// Adds a route (`replace`: one with the same destination takes its place, as
    /// `ip route replace`).
    pub fn add_route(&mut self, r: RouteEntry, replace: bool) -> Result<(), AddrChangeError> {
        self.grants.invalidate();
        if r.iface == LO || r.iface >= self.list.len() {
            return Err(AddrChangeError::NoDevice);
        }
        if r.dst != network(&r.dst) {
            return Err(AddrChangeError::Invalid);
        }
        if let Some(g) = r.via {
            if g.version() != r.dst.address().version() || !g.is_unicast() || is_loopback(&g) {
                return Err(AddrChangeError::Invalid);
            }
            if !on_link(&self.list[r.iface], &g) {
                return Err(AddrChangeError::Unreachable);
            }
        } else if !self.list[r.iface]
            .addrs
            .iter()
            .any(|c| c.prefix_len() <= r.dst.prefix_len() && c.contains_addr(&r.dst.address()))
        {
            return Err(AddrChangeError::Unsupported);
        }
        if let Some(s) = r.src
            && !self.is_local(&s)
        {
            return Err(AddrChangeError::Invalid);
        }
        let same = self.routes.iter().position(|x| x.dst == r.dst);
        match same {
            Some(i) if replace => {
                let old = self.routes[i];
                self.routes[i] = r;
                if self.gateway_routes(r.iface) > MAX_IFACE_ROUTES {
                    self.routes[i] = old;
                    return Err(AddrChangeError::Full);
                }
                self.sync_iface_routes(old.iface);
            }
            Some(_) => return Err(AddrChangeError::Exists),
            None => {
                if self.routes.len() >= MAX_ROUTES {
                    return Err(AddrChangeError::Full);
                }
                self.routes.push(r);
                if self.gateway_routes(r.iface) > MAX_IFACE_ROUTES {
                    self.routes.pop();
                    return Err(AddrChangeError::Full);
                }
            }
        }
        self.sync_iface_routes(r.iface);
        Ok(())
    }

    /// Removes the route to `dst` (and, when given, through `via` and on
    /// `iface`); returns it.
    pub fn del_route(
        &mut self,
        dst: IpCidr,
        via: Option<IpAddress>,
        iface: Option<IfaceId>,
    ) -> Result<RouteEntry, AddrChangeError> {
        self.grants.invalidate();
        let i = self
            .routes
            .iter()
            .position(|r| {
                r.dst == dst
                    && via.is_none_or(|v| r.via == Some(v))
                    && iface.is_none_or(|i| r.iface == i)
            })
            .ok_or(AddrChangeError::NotFound)?;
        let r = self.routes.remove(i);
        self.sync_iface_routes(r.iface);
        Ok(r)
    }

    /// Sets (or with `None` removes) interface `id`'s default route of `v6`'s
    /// family, made by `origin`.
    pub fn set_gateway(
        &mut self,
        id: IfaceId,
        v6: bool,
        gw: Option<IpAddress>,
        origin: RouteOrigin,
    ) -> Result<(), AddrChangeError> {
        match gw {
            None => self.del_route(default_of(v6), None, Some(id)).map(|_| ()),
            Some(g) => self.add_route(
                RouteEntry {
                    dst: default_of(v6),
                    via: Some(g),
                    iface: id,
                    src: None,
                    origin,
                },
                true,
            ),
        }
    }

    /// Sets interface `id`'s MTU (68 up to its device's, [`NetIf::max_mtu`]).
    /// smoltcp fixes an interface's MTU when it is made, so the interface is
    /// made again with the same hardware address, addresses, routes, any-IP
    /// mode and the multicast `groups` its sockets joined (their reports go out
    /// again, as after a link change); the sockets, which live in their own set,
    /// are untouched, and new segments follow the new MTU. The neighbour cache
    /// starts empty.
    pub fn set_mtu(
        &mut self,
        id: IfaceId,
        mtu: usize,
        groups: &[IpAddress],
    ) -> Result<(), MtuError> {
        self.grants.invalidate();
        let now = self.now;
        let n = self.list.get_mut(id).ok_or(MtuError::NoDevice)?;
        if !(68..=n.max_mtu).contains(&mtu) {
            return Err(MtuError::OutOfRange(n.max_mtu));
        }
        if mtu == n.mtu {
            return Ok(());
        }
        let mut caps = n.caps.clone();
        caps.max_transmission_unit = mtu + (caps.max_transmission_unit - caps.ip_mtu());
        let hw = if n.ethernet {
            n.iface.hardware_addr()
        } else {
            HardwareAddress::Ip
        };
        let mut c = Config::new(hw);
        c.random_seed = random_u64();
        c.slaac = n.slaac;
        let mut iface = Interface::new(c, &mut CapsOnly(caps), now);
        let addrs: Vec<IpCidr> = n.iface.ip_addrs().to_vec();
        iface.update_ip_addrs(|v| {
            for a in addrs {
                let _ = v.push(a);
            }
        });
        let mut routes = Vec::new();
        n.iface
            .routes_mut()
            .update(|v| routes.extend(v.iter().cloned()));
        iface.routes_mut().update(|v| {
            for r in routes {
                let _ = v.push(r);
            }
        });
        iface.set_any_ip(n.iface.any_ip());
        for g in groups {
            let _ = iface.join_multicast_group(*g);
        }
        n.iface = iface;
        n.sockets.touch_all();
        n.mtu = mtu;
        Ok(())
    }

    /// Renames interface `id`, as `ip link set dev X name Y` (Linux's rules: only
    /// while it is down, a name no other interface has).
    pub fn rename(&mut self, id: IfaceId, name: &str) -> Result<(), RenameError> {
        let valid = !name.is_empty()
            && name.len() < 16
            && name != "."
            && name != ".."
            && !name.contains(['/', ':'])
            && !name.chars().any(|c| c.is_whitespace() || c == '\0');
        if !valid {
            return Err(RenameError::Invalid);
        }
        if id >= self.list.len() {
            return Err(RenameError::NoDevice);
        }
        if self.list[id].name == name {
            return Ok(());
        }
        if self.by_name(name).is_some() {
            return Err(RenameError::Exists);
        }
        if id == LO || self.list[id].up {
            return Err(RenameError::Busy);
        }
        self.list[id].name = name.to_string();
        self.names_changed();
        Ok(())
    }

    /// Checks the table's invariants (for fuzzing and tests): every route on an
    /// existing L2 interface, its gateway on-link there, smoltcp's lists holding
    /// what netcell installed, `lo` holding a host route per address.
    #[doc(hidden)]
    pub fn check(&self) -> Result<(), String> {
        for r in &self.routes {
            if r.iface == LO || r.iface >= self.list.len() {
                return Err(format!("route {r:?} on no L2 interface"));
            }
            if let Some(g) = r.via
                && !on_link(&self.list[r.iface], &g)
            {
                return Err(format!("route {r:?}: gateway not on-link"));
            }
        }
        for (id, n) in self.list.iter().enumerate().skip(ETH) {
            let want = self
                .routes
                .iter()
                .filter(|r| r.iface == id && r.via.is_some() && r.origin != RouteOrigin::Ra)
                .count();
            if n.installed.len() != want {
                return Err(format!(
                    "{}: {} routes installed, {want} in the table",
                    n.name,
                    n.installed.len()
                ));
            }
            for c in &n.addrs {
                if !self.list[LO].iface.has_ip_addr(c.address()) {
                    return Err(format!("{}: {c} has no host route on lo", n.name));
                }
                if !n.iface.has_ip_addr(c.address()) {
                    return Err(format!("{}: {c} is not on its smoltcp interface", n.name));
                }
            }
        }
        Ok(())
    }

    fn gateway_routes(&self, id: IfaceId) -> usize {
        self.routes
            .iter()
            .filter(|r| r.iface == id && r.via.is_some())
            .count()
    }

    /// Rebuilds smoltcp's route list of interface `id` from the table (keeping
    /// the routes smoltcp's SLAAC put there itself).
    fn sync_iface_routes(&mut self, id: IfaceId) {
        if id == LO || id >= self.list.len() {
            return;
        }
        let mine: Vec<(IpCidr, IpAddress)> = self
            .routes
            .iter()
            .filter(|r| r.iface == id && r.origin != RouteOrigin::Ra)
            .filter_map(|r| r.via.map(|g| (r.dst, g)))
            .collect();
        let n = &mut self.list[id];
        let old = std::mem::take(&mut n.installed);
        n.iface.routes_mut().update(|v| {
            v.retain(|r| !old.contains(&(r.cidr, r.via_router)));
            for (cidr, via_router) in &mine {
                // Capacity is checked when a route is added.
                let _ = v.push(SmolRoute {
                    cidr: *cidr,
                    via_router: *via_router,
                    preferred_until: None,
                    expires_at: None,
                });
            }
        });
        n.installed = mine;
        n.sockets.touch_all();
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

    /// The addresses of L2 interface `id` (none for `lo`).
    pub fn addrs(&self, id: IfaceId) -> &[IpCidr] {
        self.list.get(id).map_or(&[], |n| &n.addrs)
    }

    /// The addresses of every L2 interface, with their interface.
    pub fn all_addrs(&self) -> impl Iterator<Item = (IfaceId, &IpCidr)> + '_ {
        self.list
            .iter()
            .enumerate()
            .flat_map(|(i, n)| n.addrs.iter().map(move |c| (i, c)))
    }

    /// The interface whose subnet `a` is the broadcast address of.
    pub fn broadcast_iface(&self, a: &Ipv4Address) -> Option<IfaceId> {
        self.all_addrs()
            .find_map(|(i, c)| match (c.address(), c.prefix_len()) {
                (IpAddress::Ipv4(ip), p) if p < 31 => {
                    let mask = u32::MAX << (32 - p as u32);
                    (u32::from(*a) == (u32::from(ip) & mask) | !mask).then_some(i)
                }
                _ => None,
            })
    }

    /// Whether `addr` belongs to this container: 127/8, ::1 or an address of an
    /// L2 interface.
    pub fn is_local(&self, addr: &IpAddress) -> bool {
        is_loopback(addr) || self.all_addrs().any(|(_, c)| c.address() == *addr)
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

    /// The first L2 interface that is up (where link-local and multicast
    /// traffic goes without a chosen interface), else `lo`.
    pub fn default_link(&self) -> IfaceId {
        (ETH..self.list.len())
            .find(|&i| self.list[i].up)
            .unwrap_or(LO)
    }

    /// Chooses the interface and source address for traffic to `dst`, as Linux's
    /// routing would (see the module docs): local destinations (including 0.0.0.0
    /// and ::, which Linux treats as "this host") go over `lo`; otherwise the
    /// longest matching prefix among connected routes and the table's. `None`
    /// means unreachable (`ENETUNREACH`).
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
        let up = |i: IfaceId| self.list[i].up;
        // (prefix length, interface, preferred source, gateway); connected
        // routes first so that they win ties.
        let mut best: Option<(u8, IfaceId, Option<IpAddress>, Option<IpAddress>)> = None;
        for (i, c) in self.all_addrs() {
            if up(i) && c.contains_addr(&dst) && best.is_none_or(|b| c.prefix_len() > b.0) {
                best = Some((c.prefix_len(), i, Some(c.address()), None));
            }
        }
        for r in &self.routes {
            if up(r.iface)
                && r.dst.contains_addr(&dst)
                && best.is_none_or(|b| r.dst.prefix_len() > b.0)
            {
                best = Some((r.dst.prefix_len(), r.iface, r.src, r.via));
            }
        }
        let (_, iface, src, via) = best?;
        let src = src.or_else(|| self.source_for(iface, via.as_ref().unwrap_or(&dst)))?;
        Some(Route { iface, src })
    }

    /// The source address for traffic over `iface` towards `toward` (the gateway
    /// or the destination): the interface's address on its subnet, else its
    /// first address of the family (a link-local one only for a link-local
    /// destination), else any interface's.
    fn source_for(&self, iface: IfaceId, toward: &IpAddress) -> Option<IpAddress> {
        let fam = |c: &&IpCidr| c.address().version() == toward.version();
        let usable = |c: &&IpCidr| !is_link_local(&c.address()) || is_link_local(toward);
        let own = &self.list[iface].addrs;
        own.iter()
            .filter(fam)
            .find(|c| c.contains_addr(toward) && !is_link_local(&c.address()))
            .or_else(|| own.iter().filter(fam).find(usable))
            .or_else(|| self.all_addrs().map(|(_, c)| c).filter(fam).find(usable))
            .map(|c| c.address())
    }
}

/// Whether gateway `g` is on a subnet of `n` (or link-local, always on-link).
fn on_link(n: &NetIf, g: &IpAddress) -> bool {
    is_link_local(g) || n.addrs.iter().any(|c| c.contains_addr(g))
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
        if !is_link_local(g) && !cfg.addrs.iter().any(|c| c.contains_addr(g)) {
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
        Interfaces::new(&mut lo, vec![(&mut d, &cfg)], Instant::from_millis(0))
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
            .addrs(ETH)
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
        let n = Interfaces::new::<_, PipeDevice>(&mut lo, vec![], Instant::from_millis(0)).unwrap();
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

    fn two(a: &[&str], ga: &[&str], b: &[&str], gb: &[&str]) -> Interfaces {
        let mut lo = LoopbackDevice::new();
        let (mut d0, _p0) = PipeDevice::pair(1500);
        let (mut d1, _p1) = PipeDevice::pair(9000);
        let cfg = |addrs: &[&str], gws: &[&str]| EthConfig {
            addrs: addrs.iter().map(|s| cidr(s)).collect(),
            gateways: gws.iter().map(|s| s.parse().unwrap()).collect(),
            ..EthConfig::default()
        };
        let (c0, c1) = (cfg(a, ga), cfg(b, gb));
        Interfaces::new(
            &mut lo,
            vec![(&mut d0, &c0), (&mut d1, &c1)],
            Instant::from_millis(0),
        )
        .unwrap()
    }

    fn via(n: &Interfaces, dst: &str) -> Option<(IfaceId, String)> {
        n.route(&dst.parse().unwrap())
            .map(|r| (r.iface, r.src.to_string()))
    }

    /// Every address of the block `grant_block` gives for `dst` (sampled for a
    /// big block) routes as `dst` does and is no broadcast.
    fn block_routes_alike(n: &Interfaces, dst: &str) -> u8 {
        let d: IpAddress = dst.parse().unwrap();
        let len = n
            .grant_block(&d)
            .unwrap_or_else(|| panic!("{dst}: no block"));
        let want = n.route(&d);
        let IpAddress::Ipv4(v4) = d else { return len };
        let base = u32::from(v4) & (u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0));
        let size = 1u64 << (32 - u32::from(len));
        let step = (size / 4096).max(1);
        let mut a = 0u64;
        while a < size {
            let x = Ipv4Address::from(base + a as u32);
            let got = n.route(&IpAddress::Ipv4(x));
            assert_eq!(got, want, "{x} in {dst}/{len} routes otherwise");
            assert!(
                n.broadcast_iface(&x).is_none(),
                "{x} in {dst}/{len} is a broadcast"
            );
            a += step;
        }
        len
    }

    /// Grant blocks (see `grant.rs`): the largest block around a destination
    /// that routes alike, apart from more specific routes, local and broadcast
    /// addresses; none for what is special itself.
    #[test]
    fn grant_blocks_route_alike() {
        let mut n = two(
            &["10.1.0.2/24", "fd01::2/64"],
            &["10.1.0.1"],
            &["10.2.0.2/16"],
            &[],
        );
        let r = RouteEntry {
            dst: cidr("192.0.2.0/24"),
            via: Some("10.2.0.1".parse().unwrap()),
            iface: 2,
            src: None,
            origin: RouteOrigin::Static,
        };
        n.add_route(r, false).unwrap();
        // On eth0's subnet, apart from its own address (.2) and broadcast.
        assert_eq!(block_routes_alike(&n, "10.1.0.9"), 29);
        assert_eq!(block_routes_alike(&n, "10.1.0.100"), 26);
        // Through the default route, apart from the route to 192.0.2.0/24.
        assert_eq!(block_routes_alike(&n, "192.0.3.1"), 24);
        assert_eq!(block_routes_alike(&n, "192.0.2.77"), 24);
        assert_eq!(block_routes_alike(&n, "8.8.8.8"), 7);
        // This host: all of 127/8, an interface's address alone.
        assert_eq!(n.grant_block(&"127.0.0.1".parse().unwrap()), Some(8));
        assert_eq!(n.grant_block(&"10.2.0.2".parse().unwrap()), Some(32));
        // Special itself: none.
        for special in [
            "10.1.0.255",
            "10.2.255.255",
            "255.255.255.255",
            "224.0.0.1",
            "0.0.0.0",
        ] {
            assert_eq!(n.grant_block(&special.parse().unwrap()), None, "{special}");
        }
        // IPv6: apart from the local address; none for link-local or mapped.
        assert_eq!(n.grant_block(&"fd01::9".parse().unwrap()), Some(125));
        assert_eq!(n.grant_block(&"fe80::1".parse().unwrap()), None);
        assert_eq!(n.grant_block(&"::ffff:10.1.0.9".parse().unwrap()), None);
        // A new route moves the grants generation, and narrows the block.
        let before = n.grants().generation();
        let r = RouteEntry {
            dst: cidr("192.0.3.128/25"),
            ..r
        };
        n.add_route(r, false).unwrap();
        assert_ne!(n.grants().generation(), before);
        assert_eq!(block_routes_alike(&n, "192.0.3.1"), 25);
        // No route at all: no block.
        n.del_route(cidr("0.0.0.0/0"), None, None).ok();
        assert_eq!(n.grant_block(&"8.8.8.8".parse().unwrap()), None);
    }

    #[test]
    fn several_devices_route_by_longest_prefix() {
        let mut n = two(
            &["10.1.0.2/24", "fd01::2/64"],
            &["10.1.0.1"],
            &["10.2.0.2/16"],
            &[],
        );
        assert_eq!(n.get(1).name, "eth0");
        assert_eq!(n.get(2).name, "eth1");
        assert_eq!(n.get(2).mtu, 9000);
        // On-link on each device, with that device's address as the source.
        assert_eq!(via(&n, "10.1.0.9"), Some((1, "10.1.0.2".into())));
        assert_eq!(via(&n, "10.2.200.9"), Some((2, "10.2.0.2".into())));
        // Elsewhere: the default route on eth0.
        assert_eq!(via(&n, "192.0.2.1"), Some((1, "10.1.0.2".into())));
        // Addresses of either device are local.
        assert_eq!(via(&n, "10.2.0.2").unwrap().0, LO);
        // A more specific route through eth1's router wins over the default,
        // and the source follows the route.
        let r = RouteEntry {
            dst: cidr("192.0.2.0/24"),
            via: Some("10.2.0.1".parse().unwrap()),
            iface: 2,
            src: None,
            origin: RouteOrigin::Static,
        };
        n.add_route(r, false).unwrap();
        assert_eq!(via(&n, "192.0.2.1"), Some((2, "10.2.0.2".into())));
        assert_eq!(via(&n, "192.0.3.1"), Some((1, "10.1.0.2".into())));
        assert_eq!(n.add_route(r, false), Err(AddrChangeError::Exists));
        // smoltcp follows it: eth1's own list has the route.
        let mut found = false;
        n.get_mut(2).iface.routes_mut().update(|v| {
            found = v.iter().any(|x| x.cidr == cidr("192.0.2.0/24"));
        });
        assert!(found, "smoltcp's route list of eth1 has the route");
        // A /32 on-link route inside eth1's subnet beats eth0's connected /24.
        let host = RouteEntry {
            dst: cidr("10.1.0.9/32"),
            via: Some("10.2.0.1".parse().unwrap()),
            iface: 2,
            src: Some("10.2.0.2".parse().unwrap()),
            origin: RouteOrigin::Static,
        };
        n.add_route(host, false).unwrap();
        assert_eq!(via(&n, "10.1.0.9"), Some((2, "10.2.0.2".into())));
        assert_eq!(via(&n, "10.1.0.8"), Some((1, "10.1.0.2".into())));
        // A gateway off the interface's subnets, an on-link route outside them,
        // a destination with host bits, a missing device: refused.
        let mut bad = r;
        bad.dst = cidr("198.51.100.0/24");
        bad.via = Some("10.1.0.1".parse().unwrap());
        assert_eq!(n.add_route(bad, false), Err(AddrChangeError::Unreachable));
        bad.via = None;
        assert_eq!(n.add_route(bad, false), Err(AddrChangeError::Unsupported));
        bad.dst = cidr("198.51.100.7/24");
        assert_eq!(n.add_route(bad, false), Err(AddrChangeError::Invalid));
        bad.iface = 7;
        assert_eq!(n.add_route(bad, false), Err(AddrChangeError::NoDevice));
        // Down, eth1 routes nothing: its routes fall back to eth0's default.
        n.set_up(2, false);
        assert_eq!(via(&n, "192.0.2.1"), Some((1, "10.1.0.2".into())));
        assert_eq!(via(&n, "10.2.0.9"), Some((1, "10.1.0.2".into())));
        n.set_up(2, true);
        // Removing eth1's address removes the routes through its gateway.
        n.del_addr(None, "10.2.0.2".parse().unwrap()).unwrap();
        assert!(n.routes().iter().all(|r| r.iface != 2), "{:?}", n.routes());
        assert_eq!(via(&n, "192.0.2.1"), Some((1, "10.1.0.2".into())));
        // IPv6 has no default route: unreachable off-link.
        assert_eq!(via(&n, "2001:db8::1"), None);
        assert_eq!(via(&n, "fd01::7"), Some((1, "fd01::2".into())));
        n.check().unwrap();
    }

    #[test]
    fn a_second_device_with_an_address_of_the_first_is_refused() {
        let mut lo = LoopbackDevice::new();
        let (mut d0, _p0) = PipeDevice::pair(1500);
        let (mut d1, _p1) = PipeDevice::pair(1500);
        let c = EthConfig {
            addrs: vec![cidr("10.1.0.2/24")],
            ..EthConfig::default()
        };
        let r = Interfaces::new(
            &mut lo,
            vec![(&mut d0, &c), (&mut d1, &c)],
            Instant::from_millis(0),
        );
        assert_eq!(r.err(), Some(ConfigError::BadAddress(cidr("10.1.0.2/24"))));
        let named = EthConfig {
            name: "eth0".into(),
            ..EthConfig::default()
        };
        let r = Interfaces::new(
            &mut lo,
            vec![(&mut d0, &EthConfig::default()), (&mut d1, &named)],
            Instant::from_millis(0),
        );
        assert_eq!(r.err(), Some(ConfigError::DuplicateName("eth0".into())));
    }
}
