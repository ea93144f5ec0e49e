//! Socket addresses as programs pass them: the raw bytes of a C `sockaddr`.
//!
//! The front ends never interpret an address; they copy the program's bytes into
//! the control message, and this module decides, with Linux's checks and `errno`
//! values, what they mean for a socket of a given family. IPv4 peers of an
//! `AF_INET6` socket are kept as IPv4 internally and shown to the program as
//! v4-mapped addresses (`::ffff:a.b.c.d`), as Linux does.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// An address family of the sockets this stack serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Domain {
    /// `AF_INET`.
    Inet,
    /// `AF_INET6`.
    Inet6,
}

impl Domain {
    /// From a C `AF_*` value.
    pub fn from_raw(af: i32) -> Option<Domain> {
        match af {
            libc::AF_INET => Some(Domain::Inet),
            libc::AF_INET6 => Some(Domain::Inet6),
            _ => None,
        }
    }

    /// The C `AF_*` value.
    pub fn raw(self) -> i32 {
        match self {
            Domain::Inet => libc::AF_INET,
            Domain::Inet6 => libc::AF_INET6,
        }
    }

    /// The wildcard address of the family.
    pub fn any(self) -> IpAddr {
        match self {
            Domain::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Domain::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        }
    }
}

const SIN_LEN: usize = 16;
/// Linux accepts the 24-byte `sockaddr_in6` of RFC 2133 (without `sin6_scope_id`).
const SIN6_LEN_RFC2133: usize = 24;
const SIN6_LEN: usize = 28;

/// What a program's address means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// An address (v4-mapped IPv6 already turned into IPv4).
    Addr(SocketAddr),
    /// `AF_UNSPEC`: dissolve an association (connect) or the IPv4 wildcard (bind).
    Unspec,
}

super::errno::op_errors! {
    /// Why an address was rejected.
    pub enum AddrError {
        /// Too short for its family (`EINVAL`).
        BadLength => EINVAL,
        /// A family that does not go with the socket (`EAFNOSUPPORT`).
        WrongFamily => EAFNOSUPPORT,
    }
}

fn family(b: &[u8]) -> Option<i32> {
    (b.len() >= 2).then(|| u16::from_ne_bytes([b[0], b[1]]) as i32)
}

fn parse_v4(b: &[u8]) -> SocketAddr {
    let port = u16::from_be_bytes([b[2], b[3]]);
    let ip = Ipv4Addr::new(b[4], b[5], b[6], b[7]);
    SocketAddr::V4(SocketAddrV4::new(ip, port))
}

fn parse_v6(b: &[u8]) -> SocketAddr {
    let port = u16::from_be_bytes([b[2], b[3]]);
    let flow = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
    let mut ip = [0u8; 16];
    ip.copy_from_slice(&b[8..24]);
    let scope = if b.len() >= SIN6_LEN {
        u32::from_ne_bytes([b[24], b[25], b[26], b[27]])
    } else {
        0
    };
    let ip = Ipv6Addr::from(ip);
    match ip.to_ipv4_mapped() {
        Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, port)),
        None => SocketAddr::V6(SocketAddrV6::new(ip, port, flow, scope)),
    }
}

/// Parses the address of a `bind` on a socket of `domain`, with Linux's checks
/// (`inet_bind`, `inet6_bind`).
pub fn parse_bind(domain: Domain, b: &[u8]) -> Result<Target, AddrError> {
    match domain {
        Domain::Inet => {
            if b.len() < SIN_LEN {
                return Err(AddrError::BadLength);
            }
            match family(b) {
                Some(libc::AF_INET) => Ok(Target::Addr(parse_v4(b))),
                // Compatibility: AF_UNSPEC with INADDR_ANY means AF_INET.
                Some(libc::AF_UNSPEC) if b[4..8] == [0, 0, 0, 0] => Ok(Target::Addr(parse_v4(b))),
                _ => Err(AddrError::WrongFamily),
            }
        }
        Domain::Inet6 => {
            if b.len() < SIN6_LEN_RFC2133 {
                return Err(AddrError::BadLength);
            }
            match family(b) {
                Some(libc::AF_INET6) => Ok(Target::Addr(parse_v6(b))),
                _ => Err(AddrError::WrongFamily),
            }
        }
    }
}

/// Parses the address of a `connect` (`inet_stream_connect`, `tcp_v4_connect`,
/// `tcp_v6_connect`).
pub fn parse_connect(domain: Domain, b: &[u8]) -> Result<Target, AddrError> {
    match family(b) {
        None => Err(AddrError::BadLength),
        Some(libc::AF_UNSPEC) => Ok(Target::Unspec),
        Some(_) => match domain {
            Domain::Inet => {
                if b.len() < SIN_LEN {
                    Err(AddrError::BadLength)
                } else if family(b) != Some(libc::AF_INET) {
                    Err(AddrError::WrongFamily)
                } else {
                    Ok(Target::Addr(parse_v4(b)))
                }
            }
            Domain::Inet6 => {
                if b.len() < SIN6_LEN_RFC2133 {
                    Err(AddrError::BadLength)
                } else if family(b) != Some(libc::AF_INET6) {
                    Err(AddrError::WrongFamily)
                } else {
                    Ok(Target::Addr(parse_v6(b)))
                }
            }
        },
    }
}

/// Where Linux delivers what is addressed to the unspecified address: this host
/// (`ip_route_connect`, `udpv6_sendmsg`). `0.0.0.0` becomes the socket's bound
/// address, or 127.0.0.1; `::` becomes `::1`, or 127.0.0.1 for a socket bound to a
/// v4-mapped address. Other addresses are returned as they are.
pub fn this_host(dst: SocketAddr, bound: Option<IpAddr>) -> SocketAddr {
    let bound = bound.filter(|b| !b.is_unspecified());
    match dst {
        SocketAddr::V4(a) if a.ip().is_unspecified() => {
            let ip = match bound {
                Some(IpAddr::V4(b)) => b,
                _ => Ipv4Addr::LOCALHOST,
            };
            SocketAddr::V4(SocketAddrV4::new(ip, a.port()))
        }
        SocketAddr::V6(a) if a.ip().is_unspecified() => match bound {
            Some(IpAddr::V4(_)) => SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, a.port())),
            _ => SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::LOCALHOST,
                a.port(),
                a.flowinfo(),
                0,
            )),
        },
        other => other,
    }
}

/// The largest address [`encode`] writes.
pub const MAX_ENCODED: usize = SIN6_LEN;

/// Writes `addr` as a C sockaddr for a socket of `domain` into `out`, returning its
/// length: `sockaddr_in` for `AF_INET`, `sockaddr_in6` (IPv4 as v4-mapped) for
/// `AF_INET6`.
pub fn encode(domain: Domain, addr: SocketAddr, out: &mut [u8; MAX_ENCODED]) -> usize {
    *out = [0; MAX_ENCODED];
    match (domain, addr) {
        (Domain::Inet, SocketAddr::V4(a)) => {
            out[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            out[2..4].copy_from_slice(&a.port().to_be_bytes());
            out[4..8].copy_from_slice(&a.ip().octets());
            SIN_LEN
        }
        (Domain::Inet, SocketAddr::V6(a)) => {
            // Cannot happen for an AF_INET socket; keep the port and the IPv4 part.
            let v4 = a.ip().to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED);
            encode(
                Domain::Inet,
                SocketAddr::V4(SocketAddrV4::new(v4, a.port())),
                out,
            )
        }
        (Domain::Inet6, a) => {
            let (ip, flow, scope) = match a {
                SocketAddr::V4(a) => (a.ip().to_ipv6_mapped(), 0, 0),
                SocketAddr::V6(a) => (*a.ip(), a.flowinfo(), a.scope_id()),
            };
            out[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            out[2..4].copy_from_slice(&a.port().to_be_bytes());
            out[4..8].copy_from_slice(&flow.to_be_bytes());
            out[8..24].copy_from_slice(&ip.octets());
            out[24..28].copy_from_slice(&scope.to_ne_bytes());
            SIN6_LEN
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(d: Domain, a: &str) -> Vec<u8> {
        let mut out = [0u8; MAX_ENCODED];
        let n = encode(d, a.parse().unwrap(), &mut out);
        out[..n].to_vec()
    }

    #[test]
    fn roundtrips() {
        let b = enc(Domain::Inet, "10.1.2.3:8080");
        assert_eq!(b.len(), 16);
        assert_eq!(
            parse_bind(Domain::Inet, &b),
            Ok(Target::Addr("10.1.2.3:8080".parse().unwrap()))
        );
        let b = enc(Domain::Inet6, "[fe80::1%3]:53");
        assert_eq!(
            parse_connect(Domain::Inet6, &b),
            Ok(Target::Addr("[fe80::1%3]:53".parse().unwrap()))
        );
        // IPv4 peers of an AF_INET6 socket are v4-mapped on the way out and IPv4 inside.
        let b = enc(Domain::Inet6, "127.0.0.1:80");
        assert_eq!(
            &b[8..24],
            &"::ffff:127.0.0.1".parse::<Ipv6Addr>().unwrap().octets()
        );
        assert_eq!(
            parse_connect(Domain::Inet6, &b),
            Ok(Target::Addr("127.0.0.1:80".parse().unwrap()))
        );
    }

    #[test]
    fn linux_checks() {
        let v4 = enc(Domain::Inet, "1.2.3.4:5");
        let v6 = enc(Domain::Inet6, "[::1]:5");
        assert_eq!(
            parse_bind(Domain::Inet, &v4[..15]),
            Err(AddrError::BadLength)
        );
        assert_eq!(parse_bind(Domain::Inet, &v6), Err(AddrError::WrongFamily));
        assert_eq!(parse_bind(Domain::Inet6, &v4), Err(AddrError::BadLength));
        assert!(parse_bind(Domain::Inet6, &v6[..24]).is_ok());
        assert_eq!(
            parse_bind(Domain::Inet6, &v6[..23]),
            Err(AddrError::BadLength)
        );
        let mut v4_as_v6 = v6.clone();
        v4_as_v6[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        assert_eq!(
            parse_connect(Domain::Inet6, &v4_as_v6),
            Err(AddrError::WrongFamily)
        );
        let unspec = [0u8; 16];
        assert_eq!(parse_connect(Domain::Inet, &unspec), Ok(Target::Unspec));
        assert_eq!(
            parse_bind(Domain::Inet, &unspec),
            Ok(Target::Addr("0.0.0.0:0".parse().unwrap()))
        );
        assert_eq!(parse_connect(Domain::Inet, &[]), Err(AddrError::BadLength));
        assert_eq!(parse_connect(Domain::Inet, &[2]), Err(AddrError::BadLength));
    }
}
