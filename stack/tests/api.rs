//! The embedding API: two stacks joined by an in-memory Ethernet, and one stack's
//! private loopback. These are the socket layer's semantics without any shim.

use netcell_stack::device::PipeDevice;
use netcell_stack::socket::{AcceptError, BindError, ConnectError, Domain, IoError, ListenError};
use netcell_stack::{EthConfig, SocketConfig, SocketId, Stack};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn pair() -> (Stack<PipeDevice>, Stack<PipeDevice>) {
    let (a, b) = PipeDevice::pair(1500);
    let cfg = |addr: &str, gw: &str| EthConfig {
        name: "eth0".into(),
        addrs: vec![addr.parse().unwrap()],
        gateways: vec![gw.parse().unwrap()],
        mac: None,
        dhcp: false,
        slaac: false,
    };
    let sa = Stack::new(
        Some((a, cfg("10.9.0.1/24", "10.9.0.2"))),
        SocketConfig::default(),
    )
    .unwrap();
    let sb = Stack::new(
        Some((b, cfg("10.9.0.2/24", "10.9.0.1"))),
        SocketConfig::default(),
    )
    .unwrap();
    (sa, sb)
}

fn lo() -> Stack<PipeDevice> {
    Stack::new(None, SocketConfig::default()).unwrap()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Polls both stacks until `done` or 10 s.
fn run(
    a: &mut Stack<PipeDevice>,
    mut b: Option<&mut Stack<PipeDevice>>,
    mut done: impl FnMut(&mut Stack<PipeDevice>, Option<&mut Stack<PipeDevice>>) -> bool,
) {
    let t0 = Instant::now();
    loop {
        a.poll();
        if let Some(b) = b.as_deref_mut() {
            b.poll();
        }
        if done(a, b.as_deref_mut()) {
            return;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "timed out");
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn listen(s: &mut Stack<PipeDevice>, at: &str, backlog: i32) -> SocketId {
    let l = s.tcp_socket(Domain::Inet).unwrap();
    s.bind(l, addr(at)).unwrap();
    s.listen(l, backlog).unwrap();
    l
}

#[test]
fn http_exchange_between_two_stacks() {
    let (mut a, mut b) = pair();
    let l = listen(&mut b, "0.0.0.0:80", 8);
    let c = a.tcp_socket(Domain::Inet).unwrap();
    assert_eq!(
        a.connect(c, addr("10.9.0.2:80")),
        Err(ConnectError::InProgress)
    );
    run(&mut a, Some(&mut b), |a, _| a.is_connected(c));
    let req = b"GET / HTTP/1.0\r\n\r\n";
    assert_eq!(a.send(c, req), Ok(req.len()));
    let mut srv = None;
    run(&mut a, Some(&mut b), |_, b| {
        if let Ok((s, peer)) = b.unwrap().accept(l) {
            srv = Some((s, peer));
        }
        srv.is_some()
    });
    let (s, peer) = srv.unwrap();
    assert_eq!(peer.ip(), addr("10.9.0.1:1").ip());
    assert_eq!(
        b.local_addr(s).unwrap(),
        addr("10.9.0.2:80"),
        "getsockname gives the concrete address"
    );
    assert_eq!(a.peer_addr(c).unwrap(), addr("10.9.0.2:80"));
    let mut buf = [0u8; 64];
    let mut got = Vec::new();
    run(&mut a, Some(&mut b), |_, b| {
        if let Ok(n) = b.unwrap().recv(s, &mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
        got.len() == req.len()
    });
    assert_eq!(got, req);
    let body = b"HTTP/1.0 200 OK\r\n\r\nhello";
    b.send(s, body).unwrap();
    b.shutdown(s, libc::SHUT_WR).unwrap();
    let mut resp = Vec::new();
    run(&mut a, Some(&mut b), |a, _| match a.recv(c, &mut buf) {
        Ok(0) => true,
        Ok(n) => {
            resp.extend_from_slice(&buf[..n]);
            false
        }
        Err(_) => false,
    });
    assert_eq!(resp, body, "response, then EOF after the peer's FIN");
}

#[test]
fn refused_and_unreachable() {
    let (mut a, mut b) = pair();
    let c = a.tcp_socket(Domain::Inet).unwrap();
    assert_eq!(
        a.connect(c, addr("10.9.0.2:81")),
        Err(ConnectError::InProgress)
    );
    run(&mut a, Some(&mut b), |a, _| {
        !a.is_connected(c) && a.take_error(c) == libc::ECONNREFUSED
    });
    // As on Linux: SO_ERROR took the failure, so the next connect says
    // ECONNABORTED, and the one after that tries again.
    assert_eq!(
        a.connect(c, addr("10.9.0.2:81")),
        Err(ConnectError::Aborted)
    );
    assert_eq!(
        a.connect(c, addr("10.9.0.2:81")),
        Err(ConnectError::InProgress)
    );

    let mut s = lo();
    let c = s.tcp_socket(Domain::Inet).unwrap();
    assert_eq!(
        s.connect(c, addr("10.1.1.1:80")),
        Err(ConnectError::NetworkUnreachable)
    );
    let c = s.tcp_socket(Domain::Inet).unwrap();
    assert_eq!(
        s.connect(c, addr("127.0.0.1:9")),
        Err(ConnectError::InProgress)
    );
    run(&mut s, None, |s, _| s.take_error(c) == libc::ECONNREFUSED);
    let c6 = s.tcp_socket(Domain::Inet6).unwrap();
    assert_eq!(
        s.connect(c6, addr("[::1]:9")),
        Err(ConnectError::InProgress)
    );
    run(&mut s, None, |s, _| s.take_error(c6) == libc::ECONNREFUSED);
}

#[test]
fn bind_errors_like_linux() {
    let (mut a, _b) = pair();
    let x = a.tcp_socket(Domain::Inet).unwrap();
    assert_eq!(
        a.bind(x, addr("10.9.0.7:80")),
        Err(BindError::AddrNotAvailable)
    );
    assert_eq!(a.bind(x, addr("[::1]:80")), Err(BindError::WrongFamily));
    a.bind(x, addr("0.0.0.0:8080")).unwrap();
    assert_eq!(
        a.bind(x, addr("0.0.0.0:8081")),
        Err(BindError::Invalid),
        "already bound"
    );
    let y = a.tcp_socket(Domain::Inet).unwrap();
    assert_eq!(a.bind(y, addr("127.0.0.1:8080")), Err(BindError::AddrInUse));
    a.listen(x, 4).unwrap();
    // SO_REUSEADDR does not allow sharing with a listener...
    let one = 1i32.to_ne_bytes();
    a.setsockopt(y, libc::SOL_SOCKET, libc::SO_REUSEADDR, &one)
        .unwrap();
    assert_eq!(a.bind(y, addr("0.0.0.0:8080")), Err(BindError::AddrInUse));
    // ...but 127.0.0.2 is ours too (all of 127/8 is), and port 0 picks an ephemeral port.
    a.bind(y, addr("127.0.0.2:0")).unwrap();
    let p = a.local_addr(y).unwrap().port();
    assert!((32768..=60999).contains(&p), "ephemeral port {p}");
    // Closing the listener frees the port.
    a.close(x);
    let z = a.tcp_socket(Domain::Inet).unwrap();
    a.bind(z, addr("0.0.0.0:8080")).unwrap();
    // With SO_REUSEADDR on both, two sockets may bind one port while neither
    // listens; the first listens, the second cannot.
    let w = a.tcp_socket(Domain::Inet).unwrap();
    a.setsockopt(z, libc::SOL_SOCKET, libc::SO_REUSEADDR, &one)
        .unwrap();
    a.setsockopt(w, libc::SOL_SOCKET, libc::SO_REUSEADDR, &one)
        .unwrap();
    a.bind(w, addr("0.0.0.0:8080")).unwrap();
    a.listen(z, 1).unwrap();
    assert_eq!(a.listen(w, 1), Err(ListenError::AddrInUse));
    assert_eq!(a.accept(w), Err(AcceptError::NotListening));
    let v = a.tcp_socket(Domain::Inet6).unwrap();
    a.setsockopt(v, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, &one)
        .unwrap();
    // A v6-only wildcard does not overlap the IPv4 listener.
    a.bind(v, addr("[::]:8080")).unwrap();
    a.listen(v, 1).unwrap();
    assert_eq!(a.listen(v, 2), Ok(()), "listen again changes the backlog");
}

#[test]
fn backlog_takes_concurrent_syns_without_reset() {
    let mut s = lo();
    let l = listen(&mut s, "127.0.0.1:7000", 128);
    let clients: Vec<SocketId> = (0..64)
        .map(|_| {
            let c = s.tcp_socket(Domain::Inet).unwrap();
            // Issue all SYNs before the stack polls once.
            let _ = s.connect(c, addr("127.0.0.1:7000"));
            c
        })
        .collect();
    run(&mut s, None, |s, _| {
        clients.iter().all(|c| s.is_connected(*c))
    });
    for c in &clients {
        assert_eq!(s.take_error(*c), 0);
    }
    let mut accepted = 0;
    while s.accept(l).is_ok() {
        accepted += 1;
    }
    assert_eq!(accepted, 64);
}

#[test]
fn full_backlog_holds_syns_instead_of_resetting() {
    let mut s = lo();
    let l = listen(&mut s, "127.0.0.1:7001", 1);
    let clients: Vec<SocketId> = (0..4)
        .map(|_| {
            let c = s.tcp_socket(Domain::Inet).unwrap();
            let _ = s.connect(c, addr("127.0.0.1:7001"));
            c
        })
        .collect();
    // Linux admits backlog + 1 = 2; the other SYNs are dropped, not reset.
    run(&mut s, None, |s, _| {
        clients.iter().filter(|c| s.is_connected(**c)).count() == 2
    });
    std::thread::sleep(Duration::from_millis(300));
    s.poll();
    assert_eq!(clients.iter().filter(|c| s.is_connected(**c)).count(), 2);
    for c in &clients {
        assert_eq!(s.take_error(*c), 0, "no client was refused");
    }
    // Accepting makes room; the rest get in on their SYN retransmission.
    let mut accepted = 0;
    run(&mut s, None, |s, _| {
        while s.accept(l).is_ok() {
            accepted += 1;
        }
        accepted == 4
    });
    assert!(clients.iter().all(|c| s.is_connected(*c)));
}

#[test]
fn close_with_unread_data_resets() {
    let mut s = lo();
    let l = listen(&mut s, "127.0.0.1:7002", 4);
    let c = s.tcp_socket(Domain::Inet).unwrap();
    let _ = s.connect(c, addr("127.0.0.1:7002"));
    let mut srv = None;
    run(&mut s, None, |s, _| {
        srv = s.accept(l).ok().map(|x| x.0);
        srv.is_some()
    });
    let srv = srv.unwrap();
    s.send(c, b"unread").unwrap();
    run(&mut s, None, |_, _| true);
    for _ in 0..20 {
        s.poll();
    }
    // The server closes without reading: the client gets a reset.
    s.close(srv);
    let mut buf = [0u8; 8];
    run(&mut s, None, |s, _| {
        matches!(s.recv(c, &mut buf), Err(IoError::Reset))
    });
}

#[test]
fn dual_stack_listener_takes_ipv4_as_mapped() {
    let mut s = lo();
    let l = s.tcp_socket(Domain::Inet6).unwrap();
    s.bind(l, addr("[::]:7003")).unwrap();
    s.listen(l, 4).unwrap();
    let c4 = s.tcp_socket(Domain::Inet).unwrap();
    let _ = s.connect(c4, addr("127.0.0.1:7003"));
    let c6 = s.tcp_socket(Domain::Inet6).unwrap();
    let _ = s.connect(c6, addr("[::1]:7003"));
    let mut peers = Vec::new();
    run(&mut s, None, |s, _| {
        if let Ok((_, p)) = s.accept(l) {
            peers.push(p);
        }
        peers.len() == 2
    });
    assert!(
        peers.iter().any(|p| p.is_ipv4()),
        "IPv4 client accepted: {peers:?}"
    );
    assert!(
        peers.iter().any(|p| p.is_ipv6()),
        "IPv6 client accepted: {peers:?}"
    );

    // With IPV6_V6ONLY the IPv4 client is refused.
    let l = s.tcp_socket(Domain::Inet6).unwrap();
    s.setsockopt(
        l,
        libc::IPPROTO_IPV6,
        libc::IPV6_V6ONLY,
        &1i32.to_ne_bytes(),
    )
    .unwrap();
    s.bind(l, addr("[::]:7004")).unwrap();
    s.listen(l, 4).unwrap();
    let c4 = s.tcp_socket(Domain::Inet).unwrap();
    let _ = s.connect(c4, addr("127.0.0.1:7004"));
    run(&mut s, None, |s, _| s.take_error(c4) == libc::ECONNREFUSED);
}
