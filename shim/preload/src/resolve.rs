//! A stub resolver whose queries go through the container's stack.
//!
//! glibc resolves names inside libc, calling its *internal* socket functions, which
//! no preload library can interpose: a dynamically linked program's DNS would leave
//! through the host's network. So the shim answers the resolver entry points itself
//! (see `netdb.rs`) with this resolver, whose sockets are ordinary stand-ins:
//!
//! - configuration from `NETCELL_RESOLV_CONF` (the container's own `resolv.conf`,
//!   which `netcell run --dns` writes) or `/etc/resolv.conf`: `nameserver`,
//!   `search`/`domain`, and the options `ndots`, `timeout`, `attempts`, `rotate`,
//!   `use-vc`;
//! - names from `NETCELL_HOSTS` (`--add-host`) and `/etc/hosts` first;
//! - queries over UDP, retried over TCP when truncated (or always with `use-vc`),
//!   A and AAAA as asked, CNAME chains followed, the search list applied as glibc
//!   applies it (`ndots`).
//!
//! Resolution that needs no network (numeric addresses, hosts files) never opens a
//! socket.

use crate::{class, conn, dns, sys};
use libc::c_int;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The resolver's settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub servers: Vec<SocketAddr>,
    pub search: Vec<String>,
    pub ndots: usize,
    pub timeout_ms: c_int,
    pub attempts: u32,
    pub rotate: bool,
    pub use_vc: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            servers: Vec::new(),
            search: Vec::new(),
            ndots: 1,
            timeout_ms: 5000,
            attempts: 2,
            rotate: false,
            use_vc: false,
        }
    }
}

/// Parses `resolv.conf` text (`resolv.conf(5)`).
pub fn parse_resolv_conf(text: &str) -> Config {
    let mut c = Config::default();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("");
        let mut w = line.split_whitespace();
        match w.next() {
            Some("nameserver") => {
                if let Some(a) = w
                    .next()
                    .and_then(|a| a.split('%').next())
                    .and_then(|a| a.parse::<IpAddr>().ok())
                    && c.servers.len() < 3
                {
                    c.servers.push(SocketAddr::new(a, 53));
                }
            }
            Some("search") => {
                c.search = w
                    .map(|s| s.trim_end_matches('.').to_string())
                    .take(6)
                    .collect()
            }
            Some("domain") => {
                c.search = w
                    .next()
                    .map(|d| vec![d.trim_end_matches('.').to_string()])
                    .unwrap_or_default()
            }
            Some("options") => {
                for o in w {
                    let (k, v) = o.split_once(':').unwrap_or((o, ""));
                    let n = v.parse::<u32>().ok();
                    match (k, n) {
                        ("ndots", Some(n)) => c.ndots = n.min(15) as usize,
                        ("timeout", Some(n)) => c.timeout_ms = (n.clamp(1, 30) * 1000) as c_int,
                        ("attempts", Some(n)) => c.attempts = n.clamp(1, 5),
                        ("rotate", _) => c.rotate = true,
                        ("use-vc", _) | ("usevc", _) => c.use_vc = true,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if c.servers.is_empty() {
        // glibc's default: a nameserver on this host.
        c.servers
            .push(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53));
    }
    c
}

fn read_env_file(var: &str, fallback: &str) -> String {
    let path = std::env::var_os(var)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| fallback.into());
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The current configuration (read at every resolution, as glibc notices changes).
pub fn config() -> Config {
    parse_resolv_conf(&read_env_file("NETCELL_RESOLV_CONF", "/etc/resolv.conf"))
}

fn hosts_text() -> String {
    let mut t = std::env::var_os("NETCELL_HOSTS")
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    t.push('\n');
    t.push_str(&std::fs::read_to_string("/etc/hosts").unwrap_or_default());
    t
}

/// Addresses of `name` in the hosts files, with the canonical name and aliases.
pub fn hosts_by_name(name: &str) -> Option<(String, Vec<String>, Vec<IpAddr>)> {
    let name = name.trim_end_matches('.');
    let mut canon = None;
    let mut aliases = Vec::new();
    let mut addrs = Vec::new();
    for line in hosts_text().lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut w = line.split_whitespace();
        let Some(ip) = w
            .next()
            .and_then(|a| a.split('%').next())
            .and_then(|a| a.parse::<IpAddr>().ok())
        else {
            continue;
        };
        let names: Vec<&str> = w.collect();
        if names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            if canon.is_none() {
                canon = Some(names[0].to_string());
                aliases = names[1..].iter().map(|s| s.to_string()).collect();
            }
            if !addrs.contains(&ip) {
                addrs.push(ip);
            }
        }
    }
    canon.map(|c| (c, aliases, addrs))
}

/// The name of `ip` in the hosts files.
pub fn hosts_by_addr(ip: &IpAddr) -> Option<String> {
    hosts_text().lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or("");
        let mut w = line.split_whitespace();
        let a = w.next()?.split('%').next()?.parse::<IpAddr>().ok()?;
        (a == *ip).then(|| w.next().map(str::to_string)).flatten()
    })
}

/// Why a name could not be resolved (as `h_errno` and `EAI_*` tell it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The name does not exist, or has no address of the family (`HOST_NOT_FOUND`,
    /// `EAI_NONAME`).
    NotFound,
    /// No server answered, or it failed (`TRY_AGAIN`, `EAI_AGAIN`).
    TryAgain,
    /// An unusable answer or a malformed name (`NO_RECOVERY`, `EAI_FAIL`).
    NoRecovery,
}

pub fn random_id() -> u16 {
    let mut b = [0u8; 2];
    // SAFETY: getrandom writes at most 2 bytes into `b`.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), 2, 0) };
    if n == 2 {
        u16::from_ne_bytes(b)
    } else {
        (std::process::id() as u16) ^ 0x5a5a
    }
}

/// A stand-in socket connected to `server`, closed on drop.
struct Sock(c_int);

impl Sock {
    fn connect(server: &SocketAddr, ty: c_int, timeout_ms: c_int) -> Option<Sock> {
        let domain = if server.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        };
        // SAFETY: our own socket(), which asks the container's stack.
        let fd = unsafe { crate::calls::socket(domain, ty | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return None;
        }
        let s = Sock(fd);
        let tv = libc::timeval {
            tv_sec: (timeout_ms / 1000) as _,
            tv_usec: ((timeout_ms % 1000) * 1000) as _,
        };
        // SAFETY: a valid timeval for SO_SNDTIMEO (bounds a blocking TCP connect).
        unsafe {
            crate::calls::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_SNDTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        let (sa, len) = sockaddr(server);
        // SAFETY: a valid sockaddr of `len` bytes.
        if unsafe { crate::calls::connect(fd, (&sa as *const libc::sockaddr_storage).cast(), len) }
            < 0
        {
            return None;
        }
        Some(s)
    }

    fn wait(&self, timeout_ms: c_int) -> bool {
        matches!(sys::poll1(self.0, libc::POLLIN, timeout_ms), Ok(r) if r != 0)
    }
}

impl Drop for Sock {
    fn drop(&mut self) {
        class::forget(self.0);
        sys::close(self.0);
    }
}

/// A C sockaddr for `a`.
pub fn sockaddr(a: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match a {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let sin = unsafe {
                &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = v4.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(v4.ip().octets()),
            };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe {
                &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = v6.port().to_be();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: v6.ip().octets(),
            };
            sin6.sin6_scope_id = v6.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

fn exchange_udp(
    server: &SocketAddr,
    q: &[u8],
    id: u16,
    timeout_ms: c_int,
) -> Option<(Vec<u8>, dns::Response)> {
    let s = Sock::connect(server, libc::SOCK_DGRAM, timeout_ms)?;
    // SAFETY: sending our own buffer on our socket.
    if unsafe { libc::send(s.0, q.as_ptr().cast(), q.len(), libc::MSG_NOSIGNAL) } < 0 {
        return None;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(timeout_ms as u64);
    let mut buf = vec![0u8; 65536];
    loop {
        let left = deadline
            .saturating_duration_since(std::time::Instant::now())
            .as_millis() as c_int;
        if left == 0 || !s.wait(left) {
            return None;
        }
        // SAFETY: our own recv (it turns the stack's error markers into errors).
        let n = unsafe {
            crate::data::recv(s.0, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT)
        };
        if n < 0 {
            if sys::errno() == libc::EAGAIN {
                continue;
            }
            return None; // ECONNREFUSED: nothing listens there
        }
        // A stray answer (another id) is ignored, as glibc does.
        if let Ok(r) = dns::parse(&buf[..n as usize], id) {
            buf.truncate(n as usize);
            return Some((buf, r));
        }
    }
}

fn read_exact(s: &Sock, buf: &mut [u8], timeout_ms: c_int) -> Option<()> {
    let mut got = 0;
    while got < buf.len() {
        if !s.wait(timeout_ms) {
            return None;
        }
        // SAFETY: reading into our buffer.
        let n = unsafe { libc::recv(s.0, buf[got..].as_mut_ptr().cast(), buf.len() - got, 0) };
        if n <= 0 {
            return None;
        }
        got += n as usize;
    }
    Some(())
}

fn exchange_tcp(
    server: &SocketAddr,
    q: &[u8],
    id: u16,
    timeout_ms: c_int,
) -> Option<(Vec<u8>, dns::Response)> {
    let s = Sock::connect(server, libc::SOCK_STREAM, timeout_ms)?;
    let mut m = Vec::with_capacity(q.len() + 2);
    m.extend_from_slice(&(q.len() as u16).to_be_bytes());
    m.extend_from_slice(q);
    // SAFETY: sending our own buffer.
    if unsafe { libc::send(s.0, m.as_ptr().cast(), m.len(), libc::MSG_NOSIGNAL) }
        != m.len() as isize
    {
        return None;
    }
    let mut len = [0u8; 2];
    read_exact(&s, &mut len, timeout_ms)?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    read_exact(&s, &mut buf, timeout_ms)?;
    let r = dns::parse(&buf, id).ok()?;
    Some((buf, r))
}

/// Sends one query to the configured servers until one answers usefully.
fn ask(c: &Config, name: &str, qtype: u16) -> Result<dns::Response, Failure> {
    let id = random_id();
    let q = dns::query(id, name, qtype).map_err(|_| Failure::NoRecovery)?;
    ask_raw(c, &q).map(|(_, r)| r)
}

/// Sends a complete DNS message (its id is its first two bytes) to the configured
/// servers until one answers usefully; returns the answer's bytes and its parse.
pub fn ask_raw(c: &Config, q: &[u8]) -> Result<(Vec<u8>, dns::Response), Failure> {
    if q.len() < 12 {
        return Err(Failure::NoRecovery);
    }
    let id = u16::from_be_bytes([q[0], q[1]]);
    if !conn::active() {
        return Err(Failure::TryAgain);
    }
    let n = c.servers.len();
    let start = if c.rotate { id as usize % n } else { 0 };
    for _ in 0..c.attempts {
        for i in 0..n {
            let server = &c.servers[(start + i) % n];
            let mut r = if c.use_vc {
                exchange_tcp(server, q, id, c.timeout_ms)
            } else {
                exchange_udp(server, q, id, c.timeout_ms)
            };
            if r.as_ref().is_some_and(|(_, r)| r.truncated) && !c.use_vc {
                r = exchange_tcp(server, q, id, c.timeout_ms);
            }
            match r {
                Some((raw, r))
                    if r.rcode == dns::RCODE_NOERROR || r.rcode == dns::RCODE_NXDOMAIN =>
                {
                    return Ok((raw, r));
                }
                _ => continue, // SERVFAIL, REFUSED, timeout: the next server
            }
        }
    }
    Err(Failure::TryAgain)
}

/// The candidate names for `name` under the search list (`resolv.conf(5)`, ndots).
pub fn candidates(c: &Config, name: &str) -> Vec<String> {
    if let Some(abs) = name.strip_suffix('.') {
        return vec![abs.to_string()];
    }
    let dots = name.matches('.').count();
    let mut v = Vec::new();
    if dots >= c.ndots {
        v.push(name.to_string());
    }
    for d in &c.search {
        v.push(format!("{name}.{d}"));
    }
    if dots < c.ndots {
        v.push(name.to_string());
    }
    v
}

/// Resolves `name` to addresses: hosts files first, then DNS. `v4`/`v6` say which
/// families are wanted. Returns the canonical name and the addresses.
pub fn lookup(name: &str, v4: bool, v6: bool) -> Result<(String, Vec<IpAddr>), Failure> {
    if name.is_empty() {
        return Err(Failure::NotFound);
    }
    if let Some((canon, _, addrs)) = hosts_by_name(name) {
        let addrs: Vec<IpAddr> = addrs
            .into_iter()
            .filter(|a| (a.is_ipv4() && v4) || (a.is_ipv6() && v6))
            .collect();
        if !addrs.is_empty() {
            return Ok((canon, addrs));
        }
    }
    let c = config();
    let mut again = false;
    for cand in candidates(&c, name) {
        let mut canon = cand.clone();
        let mut addrs = Vec::new();
        for (want, qtype, is_v6) in [(v4, dns::TYPE_A, false), (v6, dns::TYPE_AAAA, true)] {
            if !want {
                continue;
            }
            match ask(&c, &cand, qtype) {
                // The name does not exist (as far as this type tells).
                Ok(r) if r.rcode == dns::RCODE_NXDOMAIN => break,
                Ok(r) => {
                    let (cn, mut a) = dns::addresses(&r, &cand, is_v6);
                    canon = cn;
                    addrs.append(&mut a);
                }
                Err(Failure::TryAgain) => again = true,
                Err(e) => return Err(e),
            }
        }
        // An NXDOMAIN for one type after the other's answers (some servers say
        // so for AAAA of a name they know only an A of): glibc keeps the answers.
        if !addrs.is_empty() {
            return Ok((canon, addrs));
        }
    }
    Err(if again {
        Failure::TryAgain
    } else {
        Failure::NotFound
    })
}

/// The name of an address: hosts files first, then a PTR query.
pub fn reverse(ip: &IpAddr) -> Result<String, Failure> {
    if let Some(n) = hosts_by_addr(ip) {
        return Ok(n);
    }
    let c = config();
    let r = ask(&c, &dns::reverse_name(ip), dns::TYPE_PTR)?;
    r.answers
        .iter()
        .find_map(|a| match a {
            dns::Record::Ptr(_, n) => Some(n.clone()),
            _ => None,
        })
        .ok_or(Failure::NotFound)
}

/// Parses a numeric host as `inet_pton`/`getaddrinfo` take it (IPv6 with an
/// optional `%scope`).
pub fn numeric(host: &str) -> Option<(IpAddr, u32)> {
    if let Ok(a) = host.parse::<Ipv4Addr>() {
        return Some((IpAddr::V4(a), 0));
    }
    let (a, scope) = host.split_once('%').unwrap_or((host, ""));
    let a = a.parse::<Ipv6Addr>().ok()?;
    let scope = if scope.is_empty() {
        0
    } else {
        scope.parse::<u32>().ok().or_else(|| {
            let c = std::ffi::CString::new(scope).ok()?;
            // SAFETY: a valid C string.
            let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
            (i != 0).then_some(i)
        })?
    };
    Some((IpAddr::V6(a), scope))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf() {
        let c = parse_resolv_conf(
            "# comment\nnameserver 10.0.0.1\nnameserver fe80::1%eth0\nnameserver bogus\nsearch a.test b.test.\noptions ndots:2 timeout:1 attempts:3 rotate use-vc\n",
        );
        assert_eq!(
            c.servers,
            vec![
                "10.0.0.1:53".parse().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ]
        );
        assert_eq!(c.search, vec!["a.test", "b.test"]);
        assert_eq!(
            (c.ndots, c.timeout_ms, c.attempts, c.rotate, c.use_vc),
            (2, 1000, 3, true, true)
        );
        assert_eq!(
            parse_resolv_conf("").servers,
            vec!["127.0.0.1:53".parse().unwrap()]
        );
    }

    #[test]
    fn search_list_order() {
        let c = Config {
            search: vec!["corp.test".into()],
            ndots: 1,
            ..Config::default()
        };
        assert_eq!(candidates(&c, "web"), vec!["web.corp.test", "web"]);
        assert_eq!(candidates(&c, "web.x"), vec!["web.x", "web.x.corp.test"]);
        assert_eq!(candidates(&c, "web.x."), vec!["web.x"]);
    }

    #[test]
    fn numeric_hosts() {
        assert_eq!(numeric("10.0.0.1"), Some(("10.0.0.1".parse().unwrap(), 0)));
        assert_eq!(numeric("fe80::1%7"), Some(("fe80::1".parse().unwrap(), 7)));
        assert_eq!(numeric("web"), None);
        assert_eq!(numeric("1.2.3"), None);
    }
}
