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
//!
//! This module holds the options every socket has ([`Options`], with Linux's
//! defaults, and how they apply to a smoltcp TCP socket) and the [`Facts`] some
//! answers read; [`set()`] parses `setsockopt` values into them and [`get()`] answers
//! `getsockopt` from them, each in its own file as the two directions share only
//! the table. Options only one protocol has live with it (the multicast options in
//! `udp::opts`, the filters in `raw`, the ancillary-data switches in `dgram`);
//! `sockopt` tries those first.

mod get;
mod set;

pub use get::{get, linux_tcp_state};
pub use set::set;

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
    /// The connection carries TCP timestamps (12 bytes of every segment).
    pub timestamps: bool,
}

/// What one TCP segment carries on a link of `mtu` bytes: the IP and TCP headers
/// taken off, and the timestamp option's 12 bytes when the connection has it (the
/// MSS Linux reports, and Nagle's "full segment").
pub fn segment_size(mtu: usize, ipv6: bool, timestamps: bool) -> usize {
    let headers = if ipv6 { 60 } else { 40 };
    mtu.saturating_sub(headers + if timestamps { 12 } else { 0 })
}

impl Facts {
    /// The connection's MSS as Linux reports it (`TCP_MAXSEG`, `tcpi_snd_mss`);
    /// `None` unless connected.
    pub fn segment_size(&self) -> Option<u32> {
        let (_, mtu) = self.state.zip(self.mtu)?;
        Some(segment_size(mtu, self.domain == libc::AF_INET6, self.timestamps) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socket::errno::OptionError;

    fn facts() -> Facts {
        Facts {
            domain: libc::AF_INET6,
            sotype: libc::SOCK_STREAM,
            protocol: libc::IPPROTO_TCP,
            listening: false,
            bound: false,
            timestamps: false,
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
    fn segment_size_takes_timestamps_off_like_linux() {
        let o = Options::default();
        let mut f = facts();
        assert_eq!(get_int(&o, &f, libc::IPPROTO_TCP, libc::TCP_MAXSEG), 536);
        f.state = Some(tcp::State::Established);
        f.mtu = Some(1500);
        assert_eq!(get_int(&o, &f, libc::IPPROTO_TCP, libc::TCP_MAXSEG), 1440);
        f.timestamps = true;
        assert_eq!(get_int(&o, &f, libc::IPPROTO_TCP, libc::TCP_MAXSEG), 1428);
        let mut info = [0u8; MAX_OPT];
        get(&o, &f, libc::IPPROTO_TCP, libc::TCP_INFO, &mut info).unwrap();
        let at = |off: usize| u32::from_ne_bytes(info[off..off + 4].try_into().unwrap());
        assert_eq!(info[5] & 1, 1, "tcpi_options: TCPI_OPT_TIMESTAMPS");
        assert_eq!((at(16), at(84)), (1428, 1440), "snd_mss, advmss");
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
        let e = |r: Result<SetOutcome, OptionError>| r.unwrap_err().errno().raw();
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
                .errno()
                .raw(),
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
                .errno()
                .raw(),
            libc::EDOM
        );
        assert_eq!(o.connect_timeout(), Duration::from_secs(127));
    }
}
