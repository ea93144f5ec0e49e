//! Socket call sequences against the socket service, as a program could make
//! them in any order: socket, bind, listen, connect, accept, send, recv,
//! shutdown, close, options, on a stack's loopback and on its Ethernet to a
//! peer stack (the input is an `arbitrary` list of calls).
//!
//! Invariants: nothing panics; every refusal is a typed error; once every
//! socket is closed, none is left listening or established, and a fresh
//! listener and connection on loopback work (the port tables were kept
//! consistent through whatever happened).

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use netcell_stack::device::PipeDevice;
use netcell_stack::socket::Domain;
use netcell_stack::{EthConfig, SocketConfig, SocketId, Stack};
use std::net::SocketAddr;

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Host {
    Any,
    Loopback,
    Mine,
    Peer,
    Unreachable,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct Addr {
    v6: bool,
    host: Host,
    /// Picks one of a few ports (0 and colliding ones matter most).
    port: u8,
}

#[derive(Arbitrary, Debug)]
enum Call {
    Socket { v6: bool, on_peer: bool },
    Bind { s: u8, at: Addr },
    Listen { s: u8, backlog: i16 },
    Connect { s: u8, to: Addr },
    Accept { s: u8 },
    Send { s: u8, len: u16 },
    Recv { s: u8, len: u16 },
    Shutdown { s: u8, how: u8 },
    Close { s: u8 },
    SetOpt { s: u8, level: u8, name: u8, value: [u8; 8], len: u8 },
    GetOpt { s: u8, level: u8, name: u8 },
    Names { s: u8 },
    Poll { turns: u8 },
}

const PORTS: [u16; 5] = [0, 80, 8080, 8081, 65535];
const LEVELS: [i32; 4] = [libc::SOL_SOCKET, libc::IPPROTO_TCP, libc::IPPROTO_IP, libc::IPPROTO_IPV6];
const MAX_SOCKETS: usize = 64;

fn sockaddr(a: Addr) -> SocketAddr {
    let port = PORTS[usize::from(a.port) % PORTS.len()];
    let ip: std::net::IpAddr = match (a.v6, a.host) {
        (false, Host::Any) => "0.0.0.0".parse().unwrap(),
        (false, Host::Loopback) => "127.0.0.1".parse().unwrap(),
        (false, Host::Mine) => "10.9.0.1".parse().unwrap(),
        (false, Host::Peer) => "10.9.0.2".parse().unwrap(),
        (false, Host::Unreachable) => "192.0.2.7".parse().unwrap(),
        (true, Host::Any) => "::".parse().unwrap(),
        (true, Host::Loopback) => "::1".parse().unwrap(),
        (true, Host::Mine) => "fd09::1".parse().unwrap(),
        (true, Host::Peer) => "fd09::2".parse().unwrap(),
        (true, Host::Unreachable) => "2001:db8::7".parse().unwrap(),
    };
    SocketAddr::new(ip, port)
}

fn stack(me: &str, me6: &str, gw: &str, dev: PipeDevice) -> Stack<PipeDevice> {
    let cfg = EthConfig {
        name: "eth0".into(),
        addrs: vec![me.parse().unwrap(), me6.parse().unwrap()],
        gateways: vec![gw.parse().unwrap()],
        mac: None,
        dhcp: false,
        slaac: false,
    };
    Stack::new(Some((dev, cfg)), SocketConfig::default()).unwrap()
}

fuzz_target!(|calls: Vec<Call>| {
    let (da, db) = PipeDevice::pair(1500);
    let mut stacks = [
        stack("10.9.0.1/24", "fd09::1/64", "10.9.0.2", da),
        stack("10.9.0.2/24", "fd09::2/64", "10.9.0.1", db),
    ];
    // (which stack, socket)
    let mut socks: Vec<(usize, SocketId)> = Vec::new();
    let mut buf = vec![0u8; 65536];
    for call in calls.iter().take(200) {
        let pick = |s: &u8| (!socks.is_empty()).then(|| socks[usize::from(*s) % socks.len()]);
        match call {
            Call::Socket { v6, on_peer } => {
                if socks.len() < MAX_SOCKETS {
                    let i = usize::from(*on_peer);
                    let d = if *v6 { Domain::Inet6 } else { Domain::Inet };
                    if let Ok(id) = stacks[i].tcp_socket(d) {
                        socks.push((i, id));
                    }
                }
            }
            Call::Bind { s, at } => {
                if let Some((i, id)) = pick(s) {
                    let _ = stacks[i].bind(id, sockaddr(*at));
                }
            }
            Call::Listen { s, backlog } => {
                if let Some((i, id)) = pick(s) {
                    let _ = stacks[i].listen(id, i32::from(*backlog));
                }
            }
            Call::Connect { s, to } => {
                if let Some((i, id)) = pick(s) {
                    let _ = stacks[i].connect(id, sockaddr(*to));
                }
            }
            Call::Accept { s } => {
                if let Some((i, id)) = pick(s) {
                    if let Ok((new, _)) = stacks[i].accept(id) {
                        if socks.len() < MAX_SOCKETS {
                            socks.push((i, new));
                        } else {
                            stacks[i].close(new);
                        }
                    }
                }
            }
            Call::Send { s, len } => {
                if let Some((i, id)) = pick(s) {
                    let n = usize::from(*len).min(buf.len());
                    if let Ok(sent) = stacks[i].send(id, &buf[..n]) {
                        assert!(sent <= n);
                    }
                }
            }
            Call::Recv { s, len } => {
                if let Some((i, id)) = pick(s) {
                    let n = usize::from(*len).min(buf.len());
                    if let Ok(got) = stacks[i].recv(id, &mut buf[..n]) {
                        assert!(got <= n);
                    }
                }
            }
            Call::Shutdown { s, how } => {
                if let Some((i, id)) = pick(s) {
                    let _ = stacks[i].shutdown(id, i32::from(*how % 4));
                }
            }
            Call::Close { s } => {
                if let Some((i, id)) = pick(s) {
                    stacks[i].close(id);
                    socks.retain(|&x| x != (i, id));
                }
            }
            Call::SetOpt { s, level, name, value, len } => {
                if let Some((i, id)) = pick(s) {
                    let level = LEVELS[usize::from(*level) % LEVELS.len()];
                    let n = usize::from(*len) % 9;
                    let _ = stacks[i].setsockopt(id, level, i32::from(*name % 80), &value[..n]);
                }
            }
            Call::GetOpt { s, level, name } => {
                if let Some((i, id)) = pick(s) {
                    let level = LEVELS[usize::from(*level) % LEVELS.len()];
                    let mut out = [0u8; netcell_stack::socket::options::MAX_OPT];
                    if let Ok(n) = stacks[i].getsockopt(id, level, i32::from(*name % 80), &mut out) {
                        assert!(n <= out.len());
                    }
                }
            }
            Call::Names { s } => {
                if let Some((i, id)) = pick(s) {
                    let _ = stacks[i].local_addr(id);
                    let _ = stacks[i].peer_addr(id);
                    let _ = stacks[i].take_error(id);
                    let _ = stacks[i].is_connected(id);
                }
            }
            Call::Poll { turns } => {
                for _ in 0..(*turns % 16) {
                    stacks[0].poll();
                    stacks[1].poll();
                }
            }
        }
    }
    for (i, id) in socks.drain(..) {
        stacks[i].close(id);
    }
    for _ in 0..16 {
        stacks[0].poll();
        stacks[1].poll();
    }
    // Closed means gone from LISTEN and ESTABLISHED (the others are the
    // orderly ends of connections: FIN_WAIT, TIME_WAIT, LAST_ACK, ...).
    for s in &mut stacks {
        for e in s.socket_list(libc::IPPROTO_TCP) {
            assert!(
                !matches!(e.state, 1 | 10),
                "a socket in state {} outlives its close: {e:?}",
                e.state
            );
        }
    }
    // A fresh listener and connection on loopback.
    let s = &mut stacks[0];
    let l = s.tcp_socket(Domain::Inet).unwrap();
    s.bind(l, "127.0.0.1:9999".parse().unwrap()).unwrap();
    s.listen(l, 4).unwrap();
    let c = s.tcp_socket(Domain::Inet).unwrap();
    let _ = s.connect(c, "127.0.0.1:9999".parse().unwrap());
    let mut ok = false;
    for _ in 0..200 {
        s.poll();
        if s.is_connected(c) && s.accept(l).is_ok() {
            ok = true;
            break;
        }
    }
    assert!(ok, "no loopback connection after the calls");
});
