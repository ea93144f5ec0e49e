//! The host uplink: a container's way out through sockets of the host, with no TAP
//! and no privilege (`netcell run --uplink host`, the default without `--tap`).
//!
//! # Theory of operation
//!
//! The container gets an `eth0` like any other: an address (10.0.2.100/24 and
//! fd00::100/64, slirp4netns's numbering, so that guides written for it apply), a
//! default route through a gateway (10.0.2.2, fd00::2), and smoltcp runs it as it
//! runs a TAP. What differs is the device under it: [`UplinkDevice`] is an IP
//! device whose far side is not a wire but the host's sockets API. Nothing the
//! container sends leaves with the container's address: the outside sees the
//! host's address, as with slirp4netns and pasta.
//!
//! | the container sends               | carried by                                     |
//! |-----------------------------------|------------------------------------------------|
//! | a TCP `connect` routed via eth0   | a host TCP socket that *becomes* the program's descriptor (the fast path, below) |
//! | a UDP datagram                    | a host UDP socket per container address and port (a *flow*), replies packed back into datagrams with their true source |
//! | an ICMP echo request              | a host ICMP datagram socket per identifier, if `net.ipv4.ping_group_range` lets this user open one |
//! | anything else                     | dropped (counted)                              |
//!
//! **The TCP fast path.** A `connect` whose route goes through the uplink never
//! reaches smoltcp: the socket layer opens a non-blocking host TCP socket, applies
//! the options the program set on its stand-in, starts the connect, and returns the
//! host socket to the front end, which installs it *in place of* the stand-in
//! (same descriptor number, its flags). From then on the program's bytes never pass
//! through netcell: established connections run at the kernel's speed. netcell
//! remembers the socket's inode only to answer `getsockname` with the container's
//! address; the front ends refuse or re-route every call that could re-point it
//! (see `shim/src/seccomp/host.rs`).
//!
//! **Where the outside may not go.** [`Uplink::destination`] is the one place that
//! maps a container destination to a host one: the host's loopback only through
//! `--map-host-loopback ADDR` (the destination `ADDR` stands for 127.0.0.1 or
//! ::1), the DNS address (10.0.2.3, fd00::3), port 53 only, to the nameserver the host's
//! loopback holds (systemd-resolved's 127.0.0.53) when there is one, and never the
//! host's unspecified, loopback or link-local addresses (169.254.0.0/16 holds
//! cloud metadata services) in any spelling (IPv4-mapped, -compatible,
//! -translated, NAT64, 6to4), nor another address of the uplink's own subnets
//! (which exist only inside netcell).

mod device;
mod packet;

pub use device::{UPLINK_MTU, UplinkDevice, UplinkRx, UplinkStats, UplinkTx};

use crate::socket::errno::ConnectError;
use crate::socket::options::Options;
use smoltcp::wire::{IpAddress, IpCidr};
use socket2::{Domain, Protocol, SockAddr, Socket, TcpKeepalive, Type};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::time::Duration;

/// The uplink's gateway of a family (what a client on the host's own loopback
/// looks like from inside).
pub fn gateway_of(v6: bool) -> IpAddr {
    device::gateway(v6)
}

/// The container's IPv4 address on the uplink (slirp4netns's default).
pub const ADDR4: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 100);
/// The uplink's IPv4 gateway.
pub const GATEWAY4: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
/// The uplink's IPv4 DNS address (mapped to a nameserver on the host's loopback).
pub const DNS4: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);
/// The container's IPv6 address on the uplink.
pub const ADDR6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x100);
/// The uplink's IPv6 gateway.
pub const GATEWAY6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
/// The uplink's IPv6 DNS address.
pub const DNS6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 3);

/// How a container's uplink behaves.
#[derive(Clone, Debug)]
pub struct UplinkConfig {
    /// The address that stands for the host's loopback (`--map-host-loopback`).
    pub map_host_loopback: Option<IpAddr>,
    /// The host nameserver that the DNS addresses (10.0.2.3, fd00::3) reach, when
    /// the host's resolver is on its loopback.
    pub dns_forward: Option<IpAddr>,
    /// UDP and ICMP flows held at once; beyond, the least recently used one closes.
    pub max_flows: usize,
    /// How long a UDP flow with no traffic stays open.
    pub udp_timeout: Duration,
    /// Whether TCP connections are handed to host sockets. Off where a handed
    /// socket could be re-pointed (the seccomp shim without Landlock's network
    /// rules): TCP through the uplink then fails with `EACCES`.
    pub tcp: bool,
}

impl Default for UplinkConfig {
    fn default() -> Self {
        UplinkConfig {
            map_host_loopback: None,
            dns_forward: None,
            max_flows: 1024,
            udp_timeout: Duration::from_secs(180),
            tcp: true,
        }
    }
}

impl UplinkConfig {
    /// The container's interface on the uplink: its addresses and gateways.
    pub fn eth_config(&self) -> crate::EthConfig {
        crate::EthConfig {
            name: "eth0".into(),
            addrs: vec![
                IpCidr::new(IpAddress::Ipv4(ADDR4), 24),
                IpCidr::new(IpAddress::Ipv6(ADDR6), 64),
            ],
            gateways: vec![IpAddress::Ipv4(GATEWAY4), IpAddress::Ipv6(GATEWAY6)],
            mac: None,
            dhcp: false,
            slaac: false,
        }
    }
}

/// Why a destination is not reachable through the uplink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// An address of the uplink's own subnets that is nothing (`EHOSTUNREACH`).
    NoSuchHost,
    /// The host's loopback or "this host" without `--map-host-loopback`, or an
    /// address no host socket may be pointed at (`ENETUNREACH`).
    Forbidden,
}

impl From<Refusal> for ConnectError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::NoSuchHost => ConnectError::HostUnreachable,
            Refusal::Forbidden => ConnectError::NetworkUnreachable,
        }
    }
}

/// The uplink's policy, shared by the socket layer (TCP) and the device (UDP, ICMP).
#[derive(Clone, Debug)]
pub struct Uplink {
    cfg: UplinkConfig,
}

/// An IPv4-mapped IPv6 address as IPv4; anything else as it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Destinations no host socket is pointed at: "this host", loopback, multicast,
/// broadcast, and link-local (169.254.0.0/16, fe80::/10: the host's link, where
/// cloud metadata services answer — a connection made by the host is not
/// stopped by their hop limit), in every IPv6 spelling that embeds an IPv4
/// address (IPv4-mapped, IPv4-compatible, IPv4-translated, NAT64, 6to4).
fn forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            a.is_loopback()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.is_multicast()
                || a.is_link_local()
                || a.octets()[0] == 0
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            let embedded = |hi: u16, lo: u16| {
                Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)
            };
            let v4 = if s[..6] == [0; 6] {
                // IPv4-compatible (::a.b.c.d).
                Some(embedded(s[6], s[7]))
            } else if s[..4] == [0; 4] && s[4] == 0xffff && s[5] == 0 {
                // IPv4-translated (::ffff:0:a.b.c.d).
                Some(embedded(s[6], s[7]))
            } else if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || s[..3] == [0x64, 0xff9b, 1] {
                // NAT64.
                Some(embedded(s[6], s[7]))
            } else if s[0] == 0x2002 {
                // 6to4.
                Some(embedded(s[1], s[2]))
            } else {
                None
            };
            a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || a.is_unicast_link_local()
                || v4.is_some_and(|v4| !v4.is_unspecified() && forbidden(IpAddr::V4(v4)))
        }
    }
}

fn in_uplink_subnet(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.octets()[..3] == ADDR4.octets()[..3],
        IpAddr::V6(a) => a.segments()[..4] == ADDR6.segments()[..4],
    }
}

impl Uplink {
    /// The policy of `cfg`.
    pub fn new(cfg: UplinkConfig) -> Uplink {
        Uplink { cfg }
    }

    /// The configuration.
    pub fn config(&self) -> &UplinkConfig {
        &self.cfg
    }

    /// Where a host socket goes for the container's destination `dst` (see the
    /// module docs). The answer keeps `dst`'s spelling: an IPv4-mapped destination
    /// stays mapped, for a host socket of the container socket's family.
    pub fn destination(&self, dst: SocketAddr) -> Result<SocketAddr, Refusal> {
        let ip = canonical(dst.ip());
        let mapped = dst.is_ipv6() && ip.is_ipv4();
        let spell = |ip: IpAddr| -> SocketAddr {
            let ip = match ip {
                IpAddr::V4(a) if mapped => IpAddr::V6(a.to_ipv6_mapped()),
                a => a,
            };
            SocketAddr::new(ip, dst.port())
        };
        if self.cfg.map_host_loopback.map(canonical) == Some(ip) {
            return Ok(spell(match ip {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            }));
        }
        if (ip == IpAddr::V4(DNS4) || ip == IpAddr::V6(DNS6))
            && dst.port() == 53
            && let Some(ns) = self.cfg.dns_forward
        {
            // The nameserver keeps its own family: a v4 nameserver for a v6
            // socket is reached IPv4-mapped.
            let ns = match (ns, dst) {
                (IpAddr::V4(a), SocketAddr::V6(_)) => IpAddr::V6(a.to_ipv6_mapped()),
                (a, _) => a,
            };
            return Ok(SocketAddr::new(ns, dst.port()));
        }
        if in_uplink_subnet(ip) {
            return Err(Refusal::NoSuchHost);
        }
        if forbidden(ip) {
            return Err(Refusal::Forbidden);
        }
        Ok(spell(ip))
    }

    /// Opens a non-blocking host TCP socket of `dst`'s family with the program's
    /// options and starts its connect to the container's destination `dst`.
    /// Returns the socket and its local port.
    pub(crate) fn connect_tcp(
        &self,
        v6: bool,
        dst: SocketAddr,
        opts: &Options,
    ) -> Result<(OwnedFd, u16), ConnectError> {
        let host_dst = self.destination(dst)?;
        if !self.cfg.tcp {
            return Err(ConnectError::TcpOff);
        }
        let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
        let host_dst = match (v6, host_dst) {
            (true, SocketAddr::V4(a)) => {
                SocketAddr::new(IpAddr::V6(a.ip().to_ipv6_mapped()), a.port())
            }
            (_, a) => a,
        };
        let s = Socket::new(
            domain,
            Type::STREAM.nonblocking().cloexec(),
            Some(Protocol::TCP),
        )
        .map_err(host_error)?;
        apply_options(&s, opts, v6);
        match s.connect(&SockAddr::from(host_dst)) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(host_error(e)),
        }
        let port = s
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .map_or(0, |a| a.port());
        Ok((s.into(), port))
    }
}

/// The container's view of a host socket error at `socket`/`connect` time.
pub(crate) fn host_error(e: std::io::Error) -> ConnectError {
    match e.raw_os_error() {
        Some(libc::ENETUNREACH) => ConnectError::NetworkUnreachable,
        Some(libc::EHOSTUNREACH) => ConnectError::HostUnreachable,
        Some(libc::ECONNREFUSED) => ConnectError::Refused,
        Some(libc::EADDRNOTAVAIL) => ConnectError::AddrNotAvailable,
        Some(libc::ETIMEDOUT) => ConnectError::TimedOut,
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => ConnectError::NoBuffers,
        _ => {
            crate::warn_limited!("uplink: a host socket failed: {e}");
            ConnectError::NetworkUnreachable
        }
    }
}

/// Copies what the program set on its stand-in to the host socket. Each option is
/// best effort: one the host refuses (an unprivileged `SO_PRIORITY` above 6) is
/// logged and left at the host's default, as the connection is still worth making.
fn apply_options(s: &Socket, o: &Options, v6: bool) {
    let mut fails: Vec<(&str, std::io::Error)> = Vec::new();
    let mut check = |name: &'static str, r: std::io::Result<()>| {
        if let Err(e) = r {
            fails.push((name, e));
        }
    };
    if o.nodelay {
        check("TCP_NODELAY", s.set_tcp_nodelay(true));
    }
    if o.keepalive {
        check("SO_KEEPALIVE", s.set_keepalive(true));
    }
    let ka = TcpKeepalive::new()
        .with_time(Duration::from_secs(o.keepidle.into()))
        .with_interval(Duration::from_secs(o.keepintvl.into()))
        .with_retries(o.keepcnt);
    check("TCP_KEEPIDLE", s.set_tcp_keepalive(&ka));
    if let Some(l) = o.linger {
        check(
            "SO_LINGER",
            s.set_linger(Some(Duration::from_secs(l.into()))),
        );
    }
    // getsockopt reports the doubled value; the host doubles what it is given.
    if let Some(b) = o.sndbuf {
        check("SO_SNDBUF", s.set_send_buffer_size(b as usize / 2));
    }
    if let Some(b) = o.rcvbuf {
        check("SO_RCVBUF", s.set_recv_buffer_size(b as usize / 2));
    }
    if o.tos != 0 {
        if v6 {
            check("IPV6_TCLASS", s.set_tclass_v6(o.tos as u32));
        } else {
            check("IP_TOS", s.set_tos_v4(o.tos as u32));
        }
    }
    if o.user_timeout_ms != 0 {
        check(
            "TCP_USER_TIMEOUT",
            s.set_tcp_user_timeout(Some(Duration::from_millis(o.user_timeout_ms.into()))),
        );
    }
    if o.maxseg != 0 {
        check("TCP_MAXSEG", s.set_tcp_mss(o.maxseg));
    }
    if o.priority != 0 {
        check("SO_PRIORITY", s.set_priority(o.priority as u32));
    }
    if let Some(t) = timeval(&o.rcvtimeo) {
        check("SO_RCVTIMEO", s.set_read_timeout(Some(t)));
    }
    if let Some(t) = timeval(&o.sndtimeo) {
        check("SO_SNDTIMEO", s.set_write_timeout(Some(t)));
    }
    for (name, e) in fails {
        log::info!("uplink: {name} not applied to the host socket: {e}");
    }
}

/// A `struct timeval` as stored by `setsockopt`; `None` for zero (no timeout).
fn timeval(b: &[u8; 16]) -> Option<Duration> {
    let sec = i64::from_ne_bytes(b[..8].try_into().ok()?);
    let usec = i64::from_ne_bytes(b[8..].try_into().ok()?);
    if sec <= 0 && usec <= 0 {
        return None;
    }
    Some(Duration::from_secs(sec.max(0) as u64) + Duration::from_micros(usec.max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(map: Option<&str>, dns: Option<&str>) -> Uplink {
        Uplink::new(UplinkConfig {
            map_host_loopback: map.map(|m| m.parse().unwrap()),
            dns_forward: dns.map(|d| d.parse().unwrap()),
            ..UplinkConfig::default()
        })
    }

    fn dst(u: &Uplink, s: &str) -> Result<String, Refusal> {
        u.destination(s.parse().unwrap()).map(|a| a.to_string())
    }

    #[test]
    fn the_host_loopback_only_through_the_mapping() {
        let u = up(None, None);
        for forbidden in [
            "127.0.0.1:80",
            "0.0.0.0:80",
            "[::1]:80",
            "[::]:80",
            "[::ffff:127.0.0.1]:80",
            "[::ffff:0.0.0.0]:80",
            "255.255.255.255:80",
            "224.0.0.1:80",
            "169.254.169.254:80",
            "[fe80::1]:80",
            "[::127.0.0.1]:80",
            "[::ffff:0:127.0.0.1]:80",
            "[64:ff9b::127.0.0.1]:80",
            "[2002:7f00:1::]:80",
            "0.1.2.3:80",
        ] {
            assert_eq!(dst(&u, forbidden), Err(Refusal::Forbidden), "{forbidden}");
        }
        assert_eq!(dst(&u, "10.0.2.2:80"), Err(Refusal::NoSuchHost));
        assert_eq!(dst(&u, "10.0.2.3:53"), Err(Refusal::NoSuchHost));
        assert_eq!(dst(&u, "[fd00::2]:80"), Err(Refusal::NoSuchHost));
        assert_eq!(dst(&u, "192.0.2.7:80").unwrap(), "192.0.2.7:80");
        assert_eq!(
            dst(&u, "[::ffff:192.0.2.7]:80").unwrap(),
            "[::ffff:192.0.2.7]:80"
        );

        let m = up(Some("10.0.2.2"), None);
        assert_eq!(dst(&m, "10.0.2.2:8080").unwrap(), "127.0.0.1:8080");
        assert_eq!(
            dst(&m, "[::ffff:10.0.2.2]:8080").unwrap(),
            "[::ffff:127.0.0.1]:8080"
        );
        assert_eq!(dst(&m, "127.0.0.1:8080"), Err(Refusal::Forbidden));
    }

    #[test]
    fn dns_address_reaches_the_hosts_loopback_resolver() {
        let u = up(None, Some("127.0.0.53"));
        assert_eq!(dst(&u, "10.0.2.3:53").unwrap(), "127.0.0.53:53");
        assert_eq!(dst(&u, "[fd00::3]:53").unwrap(), "[::ffff:127.0.0.53]:53");
        assert_eq!(dst(&u, "127.0.0.53:53"), Err(Refusal::Forbidden));
        // Only the nameserver's port: the rest of the host's loopback stays shut.
        assert_eq!(dst(&u, "10.0.2.3:22"), Err(Refusal::NoSuchHost));
    }

    #[test]
    fn timeval_decoding() {
        let mut b = [0u8; 16];
        assert_eq!(timeval(&b), None);
        b[..8].copy_from_slice(&2i64.to_ne_bytes());
        b[8..].copy_from_slice(&500_000i64.to_ne_bytes());
        assert_eq!(timeval(&b), Some(Duration::from_millis(2500)));
    }
}
