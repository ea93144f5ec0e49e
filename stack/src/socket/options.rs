//! Socket options: for every `(level, name)` a program may pass, whether netcell
//! honours it (applies it to the smoltcp socket or to the socket layer), emulates it
//! (keeps and reports it where its effect is invisible to the program or has no
//! equivalent in userspace), has the stand-in apply it natively (an option the
//! kernel's `AF_UNIX` socket implements with the same meaning), or rejects it with
//! the `errno` Linux would give a socket that lacks it (`ENOPROTOOPT`). The table in
//! the README mirrors this module; nothing is accepted and then silently ignored where
//! that would mislead a program.
//!
//! Value checks follow Linux: an `int` option shorter than 4 bytes is `EINVAL`;
//! `getsockopt` returns at most as many bytes as the caller's buffer holds.

use super::errno::Errno;
use smoltcp::socket::tcp;
use smoltcp::time::Duration;

/// `SO_RCVTIMEO_NEW` / `SO_SNDTIMEO_NEW` (absent from older `libc` crates).
const SO_RCVTIMEO_NEW: i32 = 66;
const SO_SNDTIMEO_NEW: i32 = 67;
/// `SO_COOKIE`.
const SO_COOKIE: i32 = 57;

/// The largest value `getsockopt` produces (`struct tcp_info` is 232 bytes).
pub const MAX_OPT: usize = 256;

/// Linux's doubling and clamping of `SO_SNDBUF`/`SO_RCVBUF` (`sock_setsockopt`).
const SOCK_MIN_SNDBUF: u32 = 4608;
const SOCK_MIN_RCVBUF: u32 = 2304;
const SYSCTL_WMEM_MAX: u32 = 212_992;
const SYSCTL_RMEM_MAX: u32 = 212_992;

/// Congestion control algorithms smoltcp offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Congestion {
    /// CUBIC (Linux's default).
    Cubic,
    /// Reno.
    Reno,
}

/// The options of one socket, with Linux's defaults.
#[derive(Clone, Debug)]
pub struct Options {
    pub(crate) reuseaddr: bool,
    pub(crate) reuseport: bool,
    pub(crate) keepalive: bool,
    pub(crate) linger: Option<u32>,
    /// `SO_SNDBUF`/`SO_RCVBUF` as `getsockopt` reports them (doubled); `None` until set.
    pub(crate) sndbuf: Option<u32>,
    pub(crate) rcvbuf: Option<u32>,
    pub(crate) nodelay: bool,
    pub(crate) cork: bool,
    pub(crate) quickack: bool,
    pub(crate) keepidle: u32,
    pub(crate) keepintvl: u32,
    pub(crate) keepcnt: u32,
    pub(crate) syncnt: u32,
    pub(crate) user_timeout_ms: u32,
    pub(crate) linger2: i32,
    pub(crate) defer_accept: i32,
    pub(crate) window_clamp: u32,
    pub(crate) maxseg: u32,
    pub(crate) congestion: Congestion,
    pub(crate) v6only: bool,
    pub(crate) tos: i32,
    pub(crate) ttl: Option<u8>,
    pub(crate) recverr: bool,
    pub(crate) recvopts: bool,
    pub(crate) mtu_discover: i32,
    pub(crate) freebind: bool,
    pub(crate) bind_no_port: bool,
    pub(crate) broadcast: bool,
    pub(crate) dontroute: bool,
    pub(crate) oobinline: bool,
    pub(crate) priority: i32,
    pub(crate) rcvlowat: i32,
    pub(crate) busy_poll: i32,
    pub(crate) incoming_cpu: i32,
    pub(crate) bindtodevice: Option<String>,
    pub(crate) rcvtimeo: [u8; 16],
    pub(crate) sndtimeo: [u8; 16],
    pub(crate) timestamp: [bool; 4],
}

impl Default for Options {
    fn default() -> Self {
        Options {
            reuseaddr: false,
            reuseport: false,
            keepalive: false,
            linger: None,
            sndbuf: None,
            rcvbuf: None,
            nodelay: false,
            cork: false,
            quickack: false,
            keepidle: 7200,
            keepintvl: 75,
            keepcnt: 9,
            syncnt: 6,
            user_timeout_ms: 0,
            linger2: 60,
            defer_accept: 0,
            window_clamp: 0,
            maxseg: 0,
            congestion: Congestion::Cubic,
            v6only: false,
            tos: 0,
            ttl: None,
            recverr: false,
            recvopts: false,
            mtu_discover: 1, // IP_PMTUDISC_WANT
            freebind: false,
            bind_no_port: false,
            broadcast: false,
            dontroute: false,
            oobinline: false,
            priority: 0,
            rcvlowat: 1,
            busy_poll: 0,
            incoming_cpu: -1,
            bindtodevice: None,
            rcvtimeo: [0; 16],
            sndtimeo: [0; 16],
            timestamp: [false; 4],
        }
    }
}

impl Options {
    /// How long `connect` keeps trying before `ETIMEDOUT`: Linux retransmits the SYN
    /// `TCP_SYNCNT` times with a doubling timeout from one second (6 → 127 s).
    pub fn connect_timeout(&self) -> Duration {
        let secs = (1u64 << (self.syncnt.min(30) + 1)) - 1;
        let t = Duration::from_secs(secs);
        if self.user_timeout_ms > 0 {
            t.min(Duration::from_millis(self.user_timeout_ms as u64))
        } else {
            t
        }
    }

    /// The receive buffer for a new smoltcp socket: what `SO_RCVBUF` asked, else the
    /// stack's default (Linux autotunes up to 6 MiB; large buffers are what make
    /// large-MTU throughput, and untouched pages cost nothing).
    pub fn rx_buffer(&self, default: usize) -> usize {
        self.rcvbuf.map_or(default, |v| v as usize)
    }

    /// The send buffer for a new smoltcp socket.
    pub fn tx_buffer(&self, default: usize) -> usize {
        self.sndbuf.map_or(default, |v| v as usize)
    }

    /// Whether small writes wait (Nagle's algorithm, `TCP_CORK`): the stand-in pump
    /// applies it, see [`crate::standin`].
    pub fn coalesce(&self) -> bool {
        !self.nodelay || self.cork
    }

    /// Applies the options that live in smoltcp to one of its sockets.
    pub fn apply(&self, s: &mut tcp::Socket<'_>) {
        // Nagle is the pump's (Linux's rule; smoltcp's byte-counted congestion window
        // makes its own rule hold back every segment smaller than the MSS).
        s.set_nagle_enabled(false);
        s.set_ack_delay(if self.quickack {
            None
        } else {
            Some(Duration::from_millis(10))
        });
        s.set_keep_alive(
            self.keepalive
                .then(|| Duration::from_secs(self.keepidle.max(1) as u64)),
        );
        let keepalive_dead = self.keepalive.then(|| {
            Duration::from_secs(
                self.keepidle as u64 + (self.keepintvl as u64) * (self.keepcnt as u64),
            )
        });
        let user =
            (self.user_timeout_ms > 0).then(|| Duration::from_millis(self.user_timeout_ms as u64));
        s.set_timeout(match (user, keepalive_dead) {
            (Some(u), _) => Some(u),
            (None, k) => k,
        });
        s.set_hop_limit(self.ttl);
        s.set_congestion_control(match self.congestion {
            Congestion::Cubic => tcp::CongestionControl::Cubic,
            Congestion::Reno => tcp::CongestionControl::Reno,
        });
    }
}

/// What the caller must do after a successful `setsockopt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetOutcome {
    /// Nothing more.
    Done,
    /// Also apply the option to the stand-in (see the module docs).
    AlsoNative,
}

/// Facts about a socket that some options read.
#[derive(Clone, Copy, Debug)]
pub struct Facts {
    /// `AF_INET` / `AF_INET6`.
    pub domain: i32,
    /// `SOCK_STREAM`, ...
    pub sotype: i32,
    /// `IPPROTO_TCP`, ...
    pub protocol: i32,
    /// Listening.
    pub listening: bool,
    /// Has a local port.
    pub bound: bool,
    /// The smoltcp state of the connection, if any.
    pub state: Option<tcp::State>,
    /// The IP MTU of the connection's interface, if connected.
    pub mtu: Option<usize>,
    /// A stable identifier (`SO_COOKIE`).
    pub cookie: u64,
}

fn int(v: &[u8]) -> Result<i32, Errno> {
    if v.len() < 4 {
        return Err(Errno(libc::EINVAL));
    }
    Ok(i32::from_ne_bytes([v[0], v[1], v[2], v[3]]))
}

fn timeval(v: &[u8]) -> Result<[u8; 16], Errno> {
    if v.len() < 16 {
        return Err(Errno(libc::EINVAL));
    }
    let usec = i64::from_ne_bytes(v[8..16].try_into().unwrap_or([0; 8]));
    if !(0..1_000_000).contains(&usec) {
        return Err(Errno(libc::EDOM));
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&v[..16]);
    Ok(out)
}

fn enoprotoopt() -> Errno {
    Errno(libc::ENOPROTOOPT)
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
) -> Result<SetOutcome, Errno> {
    use SetOutcome::*;
    match level {
        libc::SOL_SOCKET => match name {
            libc::SO_REUSEADDR => o.reuseaddr = int(value)? != 0,
            libc::SO_REUSEPORT => o.reuseport = int(value)? != 0,
            libc::SO_KEEPALIVE => o.keepalive = int(value)? != 0,
            libc::SO_BROADCAST => o.broadcast = int(value)? != 0,
            libc::SO_DONTROUTE => o.dontroute = int(value)? != 0,
            libc::SO_OOBINLINE => o.oobinline = int(value)? != 0,
            libc::SO_SNDBUF => {
                o.sndbuf = Some(bufsize(int(value)?, SOCK_MIN_SNDBUF, SYSCTL_WMEM_MAX))
            }
            libc::SO_RCVBUF => {
                o.rcvbuf = Some(bufsize(int(value)?, SOCK_MIN_RCVBUF, SYSCTL_RMEM_MAX))
            }
            // Raising buffers beyond the sysctl limits needs CAP_NET_ADMIN.
            libc::SO_SNDBUFFORCE | libc::SO_RCVBUFFORCE | libc::SO_MARK => {
                return Err(Errno(libc::EPERM));
            }
            libc::SO_PRIORITY => {
                let v = int(value)?;
                if !(0..=6).contains(&v) {
                    return Err(Errno(libc::EPERM));
                }
                o.priority = v;
            }
            libc::SO_LINGER => {
                if value.len() < 8 {
                    return Err(Errno(libc::EINVAL));
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
                    return Err(Errno(libc::EACCES));
                }
            }
            libc::SO_BUSY_POLL => o.busy_poll = int(value)?.max(0),
            libc::SO_INCOMING_CPU => o.incoming_cpu = int(value)?,
            libc::SO_BINDTODEVICE => {
                let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
                let name = std::str::from_utf8(&value[..end]).map_err(|_| Errno(libc::ENODEV))?;
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
            | libc::SO_PEERCRED => return Err(enoprotoopt()),
            _ => return Err(enoprotoopt()),
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
                    return Err(Errno(libc::EINVAL));
                }
                o.user_timeout_ms = v as u32;
            }
            libc::TCP_LINGER2 => o.linger2 = int(value)?,
            libc::TCP_DEFER_ACCEPT => o.defer_accept = int(value)?.max(0),
            libc::TCP_WINDOW_CLAMP => o.window_clamp = int(value)?.max(0) as u32,
            libc::TCP_MAXSEG => {
                let v = int(value)?;
                if v != 0 && !(88..=32767).contains(&v) {
                    return Err(Errno(libc::EINVAL));
                }
                o.maxseg = v as u32;
            }
            libc::TCP_CONGESTION => {
                let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
                o.congestion = match &value[..end] {
                    b"cubic" => Congestion::Cubic,
                    b"reno" => Congestion::Reno,
                    _ => return Err(Errno(libc::ENOENT)),
                };
            }
            _ => return Err(enoprotoopt()),
        },
        libc::IPPROTO_IP => match name {
            libc::IP_TOS => o.tos = int(value)? & 0xfc,
            libc::IP_TTL => {
                let v = int(value)?;
                o.ttl = match v {
                    -1 => None,
                    1..=255 => Some(v as u8),
                    _ => return Err(Errno(libc::EINVAL)),
                };
            }
            libc::IP_RECVERR => o.recverr = int(value)? != 0,
            libc::IP_MTU_DISCOVER => {
                let v = int(value)?;
                if !(0..=5).contains(&v) {
                    return Err(Errno(libc::EINVAL));
                }
                o.mtu_discover = v;
            }
            libc::IP_FREEBIND => o.freebind = int(value)? != 0,
            libc::IP_BIND_ADDRESS_NO_PORT => o.bind_no_port = int(value)? != 0,
            libc::IP_TRANSPARENT => return Err(Errno(libc::EPERM)),
            // Setting IP options (record route, ...) is not supported; clearing is.
            libc::IP_OPTIONS if value.is_empty() => {}
            libc::IP_OPTIONS => return Err(Errno(libc::EINVAL)),
            // Flags asking for received IP options: smoltcp passes none on, so
            // there is never anything to report (the flags are kept).
            libc::IP_RECVOPTS | libc::IP_RETOPTS => o.recvopts = int(value)? != 0,
            _ => return Err(enoprotoopt()),
        },
        libc::IPPROTO_IPV6 if f.domain == libc::AF_INET6 => match name {
            libc::IPV6_V6ONLY => {
                if f.bound {
                    return Err(Errno(libc::EINVAL));
                }
                o.v6only = int(value)? != 0;
            }
            libc::IPV6_UNICAST_HOPS => {
                let v = int(value)?;
                o.ttl = match v {
                    -1 => None,
                    0..=255 => Some(v as u8),
                    _ => return Err(Errno(libc::EINVAL)),
                };
            }
            libc::IPV6_TCLASS => {
                let v = int(value)?;
                if !(-1..=255).contains(&v) {
                    return Err(Errno(libc::EINVAL));
                }
                o.tos = v.max(0);
            }
            libc::IPV6_RECVERR => o.recverr = int(value)? != 0,
            libc::IPV6_MTU_DISCOVER => o.mtu_discover = int(value)?,
            _ => return Err(enoprotoopt()),
        },
        _ => return Err(enoprotoopt()),
    }
    Ok(Done)
}

fn range(v: i32, lo: i32, hi: i32) -> Result<u32, Errno> {
    if (lo..=hi).contains(&v) {
        Ok(v as u32)
    } else {
        Err(Errno(libc::EINVAL))
    }
}

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
) -> Result<usize, Errno> {
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
            _ => Err(enoprotoopt()),
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
                let mss = match (f.state, f.mtu) {
                    (Some(_), Some(mtu)) => {
                        mtu.saturating_sub(if f.domain == libc::AF_INET6 { 60 } else { 40 }) as i32
                    }
                    _ if o.maxseg != 0 => o.maxseg as i32,
                    _ => 536,
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
            _ => Err(enoprotoopt()),
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
                _ => Err(Errno(libc::ENOTCONN)),
            },
            _ => Err(enoprotoopt()),
        },
        libc::IPPROTO_IPV6 if f.domain == libc::AF_INET6 => match name {
            libc::IPV6_V6ONLY => put(out, o.v6only as i32),
            libc::IPV6_UNICAST_HOPS => put(out, o.ttl.map_or(64, |t| t as i32)),
            libc::IPV6_TCLASS => put(out, o.tos),
            libc::IPV6_RECVERR => put(out, o.recverr as i32),
            libc::IPV6_MTU_DISCOVER => put(out, o.mtu_discover),
            libc::IPV6_MTU => match (f.state, f.mtu) {
                (Some(_), Some(mtu)) => put(out, mtu as i32),
                _ => Err(Errno(libc::ENOTCONN)),
            },
            _ => Err(enoprotoopt()),
        },
        _ => Err(enoprotoopt()),
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
    let mss = mtu.saturating_sub(if f.domain == libc::AF_INET6 { 60 } else { 40 });
    put(out, 8, 200_000); // rto, µs: Linux's initial 200 ms floor
    put(out, 16, mss); // snd_mss
    put(out, 20, mss); // rcv_mss
    put(out, 60, mtu); // pmtu
    put(out, 80, 10); // snd_cwnd, segments: the initial window
    put(out, 84, mss); // advmss
    put(out, 88, 3); // reordering
    LEN
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            domain: libc::AF_INET6,
            sotype: libc::SOCK_STREAM,
            protocol: libc::IPPROTO_TCP,
            listening: false,
            bound: false,
            state: None,
            mtu: None,
            cookie: 7,
        }
    }

    fn get_int(o: &Options, f: &Facts, level: i32, name: i32) -> i32 {
        let mut out = [0u8; MAX_OPT];
        let n = get(o, f, level, name, &mut out).unwrap();
        assert_eq!(n, 4);
        i32::from_ne_bytes(out[..4].try_into().unwrap())
    }

    #[test]
    fn buffers_double_like_linux() {
        let mut o = Options::default();
        let f = facts();
        set(
            &mut o,
            &f,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &65536i32.to_ne_bytes(),
        )
        .unwrap();
        assert_eq!(get_int(&o, &f, libc::SOL_SOCKET, libc::SO_RCVBUF), 131072);
        set(
            &mut o,
            &f,
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            &1i32.to_ne_bytes(),
        )
        .unwrap();
        assert_eq!(get_int(&o, &f, libc::SOL_SOCKET, libc::SO_SNDBUF), 4608);
        set(
            &mut o,
            &f,
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            &i32::MAX.to_ne_bytes(),
        )
        .unwrap();
        assert_eq!(
            get_int(&o, &f, libc::SOL_SOCKET, libc::SO_SNDBUF),
            2 * 212992
        );
    }

    #[test]
    fn errors_like_linux() {
        let mut o = Options::default();
        let mut f = facts();
        let e = |r: Result<SetOutcome, Errno>| r.unwrap_err().0;
        assert_eq!(
            e(set(&mut o, &f, libc::SOL_SOCKET, libc::SO_REUSEADDR, &[1])),
            libc::EINVAL
        );
        assert_eq!(
            e(set(&mut o, &f, libc::SOL_SOCKET, 12345, &[0; 4])),
            libc::ENOPROTOOPT
        );
        assert_eq!(e(set(&mut o, &f, 99, 1, &[0; 4])), libc::ENOPROTOOPT);
        assert_eq!(
            e(set(
                &mut o,
                &f,
                libc::IPPROTO_TCP,
                libc::TCP_CONGESTION,
                b"bbr\0"
            )),
            libc::ENOENT
        );
        assert_eq!(
            e(set(
                &mut o,
                &f,
                libc::IPPROTO_TCP,
                libc::TCP_KEEPCNT,
                &0i32.to_ne_bytes()
            )),
            libc::EINVAL
        );
        assert_eq!(
            e(set(
                &mut o,
                &f,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &[0; 8]
            )),
            libc::EINVAL
        );
        f.bound = true;
        assert_eq!(
            e(set(
                &mut o,
                &f,
                libc::IPPROTO_IPV6,
                libc::IPV6_V6ONLY,
                &1i32.to_ne_bytes()
            )),
            libc::EINVAL
        );
        let mut out = [0u8; MAX_OPT];
        assert_eq!(
            get(&o, &f, libc::IPPROTO_TCP, libc::TCP_FASTOPEN, &mut out)
                .unwrap_err()
                .0,
            libc::ENOPROTOOPT
        );
    }

    #[test]
    fn timeouts_go_native() {
        let mut o = Options::default();
        let f = facts();
        let mut tv = [0u8; 16];
        tv[..8].copy_from_slice(&2i64.to_ne_bytes());
        assert_eq!(
            set(&mut o, &f, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv),
            Ok(SetOutcome::AlsoNative)
        );
        tv[8..].copy_from_slice(&2_000_000i64.to_ne_bytes());
        assert_eq!(
            set(&mut o, &f, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)
                .unwrap_err()
                .0,
            libc::EDOM
        );
        assert_eq!(o.connect_timeout(), Duration::from_secs(127));
    }
}
