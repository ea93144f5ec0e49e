//! `setsockopt` of the options every socket has: each value checked as Linux checks
//! it (`sock_setsockopt`, `do_tcp_setsockopt`, `do_ip_setsockopt`,
//! `do_ipv6_setsockopt`) and kept in [`Options`], with the `errno` Linux gives for
//! a bad one.

use super::*;
use crate::socket::errno::OptionError;

fn int(v: &[u8]) -> Result<i32, OptionError> {
    if v.len() < 4 {
        return Err(OptionError::Invalid);
    }
    Ok(i32::from_ne_bytes([v[0], v[1], v[2], v[3]]))
}

fn timeval(v: &[u8]) -> Result<[u8; 16], OptionError> {
    if v.len() < 16 {
        return Err(OptionError::Invalid);
    }
    let usec = i64::from_ne_bytes(v[8..16].try_into().unwrap_or([0; 8]));
    if !(0..1_000_000).contains(&usec) {
        return Err(OptionError::BadTimeout);
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&v[..16]);
    Ok(out)
}

fn bufsize(v: i32, min: u32, max: u32) -> u32 {
    let v = (v.max(0) as u32).min(max);
    (v * 2).max(min)
}

/// Applies `setsockopt(level, name, value)` to `o`.
pub fn set(
    o: &mut Options,
    f: &Facts,
    level: i32,
    name: i32,
    value: &[u8],
) -> Result<SetOutcome, OptionError> {
    use SetOutcome::*;
    match level {
        libc::SOL_SOCKET => match name {
            libc::SO_REUSEADDR => o.reuseaddr = int(value)? != 0,
            libc::SO_REUSEPORT => o.reuseport = int(value)? != 0,
            libc::SO_KEEPALIVE => o.keepalive = int(value)? != 0,
            libc::SO_BROADCAST => o.broadcast = int(value)? != 0,
            libc::SO_DONTROUTE => o.dontroute = int(value)? != 0,
            // The stand-in holds urgent bytes as its own out-of-band data, so it
            // takes the switch too (see `socket::tcp::urgent`).
            libc::SO_OOBINLINE => {
                o.oobinline = int(value)? != 0;
                return Ok(AlsoNative);
            }
            libc::SO_SNDBUF => {
                o.sndbuf = Some(bufsize(int(value)?, SOCK_MIN_SNDBUF, SYSCTL_WMEM_MAX))
            }
            libc::SO_RCVBUF => {
                o.rcvbuf = Some(bufsize(int(value)?, SOCK_MIN_RCVBUF, SYSCTL_RMEM_MAX))
            }
            // Raising buffers beyond the sysctl limits needs CAP_NET_ADMIN.
            libc::SO_SNDBUFFORCE | libc::SO_RCVBUFFORCE | libc::SO_MARK => {
                return Err(OptionError::NotPermitted);
            }
            libc::SO_PRIORITY => {
                let v = int(value)?;
                if !(0..=6).contains(&v) {
                    return Err(OptionError::NotPermitted);
                }
                o.priority = v;
            }
            libc::SO_LINGER => {
                if value.len() < 8 {
                    return Err(OptionError::Invalid);
                }
                let on = int(&value[..4])?;
                let secs = int(&value[4..8])?;
                o.linger = (on != 0).then_some(secs.max(0) as u32);
            }
            libc::SO_RCVLOWAT => {
                o.rcvlowat = int(value)?.max(1);
                return Ok(AlsoNative);
            }
            libc::SO_RCVTIMEO | SO_RCVTIMEO_NEW => {
                o.rcvtimeo = timeval(value)?;
                return Ok(AlsoNative);
            }
            libc::SO_SNDTIMEO | SO_SNDTIMEO_NEW => {
                o.sndtimeo = timeval(value)?;
                return Ok(AlsoNative);
            }
            libc::SO_TIMESTAMP | libc::SO_TIMESTAMPNS | libc::SO_TIMESTAMPING => {
                let i = (name - libc::SO_TIMESTAMP).clamp(0, 3) as usize;
                o.timestamp[i] = int(value)? != 0;
                return Ok(AlsoNative);
            }
            libc::SO_DEBUG => {
                if int(value)? != 0 {
                    return Err(OptionError::Denied);
                }
            }
            libc::SO_BUSY_POLL => o.busy_poll = int(value)?.max(0),
            libc::SO_INCOMING_CPU => o.incoming_cpu = int(value)?,
            libc::SO_BINDTODEVICE => {
                let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
                let name = std::str::from_utf8(&value[..end]).map_err(|_| OptionError::NoDevice)?;
                o.bindtodevice = if name.is_empty() {
                    None
                } else {
                    Some(name.to_string())
                };
            }
            libc::SO_SNDLOWAT
            | libc::SO_TYPE
            | libc::SO_ERROR
            | libc::SO_DOMAIN
            | libc::SO_PROTOCOL
            | libc::SO_ACCEPTCONN
            | libc::SO_PEERCRED => return Err(OptionError::UnknownOption),
            _ => return Err(OptionError::UnknownOption),
        },
        libc::IPPROTO_TCP if f.protocol == libc::IPPROTO_TCP => match name {
            libc::TCP_NODELAY => o.nodelay = int(value)? != 0,
            libc::TCP_CORK => o.cork = int(value)? != 0,
            libc::TCP_QUICKACK => o.quickack = int(value)? != 0,
            libc::TCP_KEEPIDLE => o.keepidle = range(int(value)?, 1, 32767)?,
            libc::TCP_KEEPINTVL => o.keepintvl = range(int(value)?, 1, 32767)?,
            libc::TCP_KEEPCNT => o.keepcnt = range(int(value)?, 1, 127)?,
            libc::TCP_SYNCNT => o.syncnt = range(int(value)?, 1, 127)?,
            libc::TCP_USER_TIMEOUT => {
                let v = int(value)?;
                if v < 0 {
                    return Err(OptionError::Invalid);
                }
                o.user_timeout_ms = v as u32;
            }
            libc::TCP_LINGER2 => o.linger2 = int(value)?,
            libc::TCP_DEFER_ACCEPT => o.defer_accept = int(value)?.max(0),
            libc::TCP_WINDOW_CLAMP => o.window_clamp = int(value)?.max(0) as u32,
            libc::TCP_MAXSEG => {
                let v = int(value)?;
                if v != 0 && !(88..=32767).contains(&v) {
                    return Err(OptionError::Invalid);
                }
                o.maxseg = v as u32;
            }
            libc::TCP_CONGESTION => {
                let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
                o.congestion = match &value[..end] {
                    b"cubic" => Congestion::Cubic,
                    b"reno" => Congestion::Reno,
                    _ => return Err(OptionError::UnknownAlgorithm),
                };
            }
            _ => return Err(OptionError::UnknownOption),
        },
        libc::IPPROTO_IP => match name {
            libc::IP_TOS => o.tos = int(value)? & 0xfc,
            libc::IP_TTL => {
                let v = int(value)?;
                o.ttl = match v {
                    -1 => None,
                    1..=255 => Some(v as u8),
                    _ => return Err(OptionError::Invalid),
                };
            }
            libc::IP_RECVERR => o.recverr = int(value)? != 0,
            libc::IP_MTU_DISCOVER => {
                let v = int(value)?;
                if !(0..=5).contains(&v) {
                    return Err(OptionError::Invalid);
                }
                o.mtu_discover = v;
            }
            libc::IP_FREEBIND => o.freebind = int(value)? != 0,
            libc::IP_BIND_ADDRESS_NO_PORT => o.bind_no_port = int(value)? != 0,
            libc::IP_TRANSPARENT => return Err(OptionError::NotPermitted),
            // Setting IP options (record route, ...) is not supported; clearing is.
            libc::IP_OPTIONS if value.is_empty() => {}
            libc::IP_OPTIONS => return Err(OptionError::Invalid),
            // Flags asking for received IP options: smoltcp passes none on, so
            // there is never anything to report (the flags are kept).
            libc::IP_RECVOPTS | libc::IP_RETOPTS => o.recvopts = int(value)? != 0,
            _ => return Err(OptionError::UnknownOption),
        },
        libc::IPPROTO_IPV6 if f.domain == libc::AF_INET6 => match name {
            libc::IPV6_V6ONLY => {
                if f.bound {
                    return Err(OptionError::Invalid);
                }
                o.v6only = int(value)? != 0;
            }
            libc::IPV6_UNICAST_HOPS => {
                let v = int(value)?;
                o.ttl = match v {
                    -1 => None,
                    0..=255 => Some(v as u8),
                    _ => return Err(OptionError::Invalid),
                };
            }
            libc::IPV6_TCLASS => {
                let v = int(value)?;
                if !(-1..=255).contains(&v) {
                    return Err(OptionError::Invalid);
                }
                o.tos = v.max(0);
            }
            libc::IPV6_RECVERR => o.recverr = int(value)? != 0,
            libc::IPV6_MTU_DISCOVER => o.mtu_discover = int(value)?,
            _ => return Err(OptionError::UnknownOption),
        },
        _ => return Err(OptionError::UnknownOption),
    }
    Ok(Done)
}

fn range(v: i32, lo: i32, hi: i32) -> Result<u32, OptionError> {
    if (lo..=hi).contains(&v) {
        Ok(v as u32)
    } else {
        Err(OptionError::Invalid)
    }
}
