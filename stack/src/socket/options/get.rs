//! `getsockopt` of the options every socket has: the values kept in [`Options`],
//! the socket's [`Facts`], and a `struct tcp_info` with what smoltcp can tell.

use super::*;
use crate::socket::errno::OptionError;

/// Linux's `TCP_*` state numbers (`include/net/tcp_states.h`).
pub fn linux_tcp_state(s: tcp::State) -> u8 {
    use tcp::State::*;
    match s {
        Established => 1,
        SynSent => 2,
        SynReceived => 3,
        FinWait1 => 4,
        FinWait2 => 5,
        TimeWait => 6,
        Closed => 7,
        CloseWait => 8,
        LastAck => 9,
        Listen => 10,
        Closing => 11,
    }
}

/// Answers `getsockopt(level, name)` into `out`, returning the value's length.
/// `SO_ERROR` is answered by the caller, which owns the pending error.
pub fn get(
    o: &Options,
    f: &Facts,
    level: i32,
    name: i32,
    out: &mut [u8; MAX_OPT],
) -> Result<usize, OptionError> {
    let put = |out: &mut [u8; MAX_OPT], v: i32| {
        out[..4].copy_from_slice(&v.to_ne_bytes());
        Ok(4)
    };
    match level {
        libc::SOL_SOCKET => match name {
            libc::SO_TYPE => put(out, f.sotype),
            libc::SO_DOMAIN => put(out, f.domain),
            libc::SO_PROTOCOL => put(out, f.protocol),
            libc::SO_ACCEPTCONN => put(out, f.listening as i32),
            libc::SO_REUSEADDR => put(out, o.reuseaddr as i32),
            libc::SO_REUSEPORT => put(out, o.reuseport as i32),
            libc::SO_KEEPALIVE => put(out, o.keepalive as i32),
            libc::SO_BROADCAST => put(out, o.broadcast as i32),
            libc::SO_DONTROUTE => put(out, o.dontroute as i32),
            libc::SO_OOBINLINE => put(out, o.oobinline as i32),
            libc::SO_SNDBUF => put(out, o.sndbuf.unwrap_or(16384) as i32),
            libc::SO_RCVBUF => put(out, o.rcvbuf.unwrap_or(131072) as i32),
            libc::SO_PRIORITY => put(out, o.priority),
            libc::SO_RCVLOWAT => put(out, o.rcvlowat),
            libc::SO_SNDLOWAT => put(out, 1),
            libc::SO_BUSY_POLL => put(out, o.busy_poll),
            libc::SO_INCOMING_CPU => put(out, o.incoming_cpu),
            libc::SO_DEBUG | libc::SO_NO_CHECK | libc::SO_PASSCRED => put(out, 0),
            libc::SO_MARK => put(out, 0),
            libc::SO_TIMESTAMP | libc::SO_TIMESTAMPNS | libc::SO_TIMESTAMPING => put(
                out,
                o.timestamp[(name - libc::SO_TIMESTAMP).clamp(0, 3) as usize] as i32,
            ),
            libc::SO_LINGER => {
                out[..4].copy_from_slice(&(o.linger.is_some() as i32).to_ne_bytes());
                out[4..8].copy_from_slice(&(o.linger.unwrap_or(0) as i32).to_ne_bytes());
                Ok(8)
            }
            libc::SO_RCVTIMEO | SO_RCVTIMEO_NEW => {
                out[..16].copy_from_slice(&o.rcvtimeo);
                Ok(16)
            }
            libc::SO_SNDTIMEO | SO_SNDTIMEO_NEW => {
                out[..16].copy_from_slice(&o.sndtimeo);
                Ok(16)
            }
            libc::SO_BINDTODEVICE => {
                let n = o.bindtodevice.as_deref().unwrap_or("");
                out[..n.len()].copy_from_slice(n.as_bytes());
                out[n.len()] = 0;
                Ok(n.len() + 1)
            }
            SO_COOKIE => {
                out[..8].copy_from_slice(&f.cookie.to_ne_bytes());
                Ok(8)
            }
            libc::SO_PEERCRED => {
                // A TCP socket has no peer credentials: Linux reports pid 0 and the
                // overflow uid/gid.
                out[..4].copy_from_slice(&0i32.to_ne_bytes());
                out[4..8].copy_from_slice(&65534u32.to_ne_bytes());
                out[8..12].copy_from_slice(&65534u32.to_ne_bytes());
                Ok(12)
            }
            _ => Err(OptionError::UnknownOption),
        },
        libc::IPPROTO_TCP if f.protocol == libc::IPPROTO_TCP => match name {
            libc::TCP_NODELAY => put(out, o.nodelay as i32),
            libc::TCP_CORK => put(out, o.cork as i32),
            libc::TCP_QUICKACK => put(out, o.quickack as i32),
            libc::TCP_KEEPIDLE => put(out, o.keepidle as i32),
            libc::TCP_KEEPINTVL => put(out, o.keepintvl as i32),
            libc::TCP_KEEPCNT => put(out, o.keepcnt as i32),
            libc::TCP_SYNCNT => put(out, o.syncnt as i32),
            libc::TCP_USER_TIMEOUT => put(out, o.user_timeout_ms as i32),
            libc::TCP_LINGER2 => put(out, o.linger2),
            libc::TCP_DEFER_ACCEPT => put(out, o.defer_accept),
            libc::TCP_WINDOW_CLAMP => put(out, o.window_clamp as i32),
            libc::TCP_MAXSEG => {
                let mss = match f.segment_size() {
                    Some(mss) => mss as i32,
                    None if o.maxseg != 0 => o.maxseg as i32,
                    None => 536,
                };
                put(out, mss)
            }
            libc::TCP_CONGESTION => {
                let n: &[u8] = match o.congestion {
                    Congestion::Cubic => b"cubic",
                    Congestion::Reno => b"reno",
                };
                out[..16].fill(0);
                out[..n.len()].copy_from_slice(n);
                Ok(16)
            }
            libc::TCP_INFO => Ok(tcp_info(f, out)),
            _ => Err(OptionError::UnknownOption),
        },
        libc::IPPROTO_IP => match name {
            libc::IP_TOS => put(out, o.tos),
            libc::IP_TTL => put(out, o.ttl.map_or(64, |t| t as i32)),
            libc::IP_RECVERR => put(out, o.recverr as i32),
            libc::IP_RECVOPTS | libc::IP_RETOPTS => put(out, o.recvopts as i32),
            libc::IP_MTU_DISCOVER => put(out, o.mtu_discover),
            libc::IP_FREEBIND => put(out, o.freebind as i32),
            libc::IP_BIND_ADDRESS_NO_PORT => put(out, o.bind_no_port as i32),
            libc::IP_MTU => match (f.state, f.mtu) {
                (Some(_), Some(mtu)) => put(out, mtu as i32),
                _ => Err(OptionError::NotConnected),
            },
            _ => Err(OptionError::UnknownOption),
        },
        libc::IPPROTO_IPV6 if f.domain == libc::AF_INET6 => match name {
            libc::IPV6_V6ONLY => put(out, o.v6only as i32),
            libc::IPV6_UNICAST_HOPS => put(out, o.ttl.map_or(64, |t| t as i32)),
            libc::IPV6_TCLASS => put(out, o.tos),
            libc::IPV6_RECVERR => put(out, o.recverr as i32),
            libc::IPV6_MTU_DISCOVER => put(out, o.mtu_discover),
            libc::IPV6_MTU => match (f.state, f.mtu) {
                (Some(_), Some(mtu)) => put(out, mtu as i32),
                _ => Err(OptionError::NotConnected),
            },
            _ => Err(OptionError::UnknownOption),
        },
        _ => Err(OptionError::UnknownOption),
    }
}

/// A `struct tcp_info` (232 bytes) with the fields smoltcp can tell: the state, the
/// MSS and the path MTU. Counters smoltcp does not keep are zero.
fn tcp_info(f: &Facts, out: &mut [u8; MAX_OPT]) -> usize {
    const LEN: usize = 232;
    out[..LEN].fill(0);
    let state = f.state.map_or(7, linux_tcp_state);
    out[0] = if f.listening { 10 } else { state };
    let put = |out: &mut [u8; MAX_OPT], off: usize, v: u32| {
        out[off..off + 4].copy_from_slice(&v.to_ne_bytes())
    };
    let mtu = f.mtu.unwrap_or(1500) as u32;
    let advmss = super::segment_size(mtu as usize, f.domain == libc::AF_INET6, false) as u32;
    let mss = f.segment_size().unwrap_or(advmss);
    if f.timestamps {
        out[5] = 1; // tcpi_options: TCPI_OPT_TIMESTAMPS
    }
    put(out, 8, 200_000); // rto, µs: Linux's initial 200 ms floor
    put(out, 16, mss); // snd_mss
    put(out, 20, mss); // rcv_mss
    put(out, 60, mtu); // pmtu
    put(out, 80, 10); // snd_cwnd, segments: the initial window
    put(out, 84, advmss); // advmss: options not taken off
    put(out, 88, 3); // reordering
    LEN
}
