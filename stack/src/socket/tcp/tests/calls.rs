//! The calls: connect, bind, listen without bind, shutdown, and their errors.

use super::*;

#[test]
fn connect_picks_distinct_ephemeral_ports_in_linux_range() {
    let mut s = lo_stack();
    let _l = listen(&mut s, "127.0.0.1:7200", 64);
    let clients: Vec<SocketId> = (0..16).map(|_| client(&mut s, "127.0.0.1:7200")).collect();
    let mut ports: Vec<u16> = clients
        .iter()
        .map(|c| s.local_addr(*c).unwrap().port())
        .collect();
    assert!(
        ports
            .iter()
            .all(|p| crate::socket::ports::EPHEMERAL.contains(p)),
        "{ports:?}"
    );
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), 16, "every connection has its own port");
    // A port in use by a connection cannot be bound.
    let p = s.local_addr(clients[0]).unwrap().port();
    let x = s.tcp_socket(Domain::Inet).unwrap();
    assert_eq!(
        s.bind(x, SocketAddr::new("127.0.0.1".parse().unwrap(), p)),
        Err(BindError::AddrInUse)
    );
}

#[test]
fn listen_without_bind_autobinds_an_ephemeral_port() {
    let mut s = lo_stack();
    let l = s.tcp_socket(Domain::Inet).unwrap();
    s.listen(l, 4).unwrap();
    let at = s.local_addr(l).unwrap();
    assert!(at.ip().is_unspecified());
    assert!(crate::socket::ports::EPHEMERAL.contains(&at.port()));
    let c = client(&mut s, &format!("127.0.0.1:{}", at.port()));
    wait("the connection", || {
        step(&mut s);
        s.is_connected(c)
    });
}

#[test]
fn duplicate_bind_is_eaddrinuse_until_the_holder_closes() {
    let mut s = lo_stack();
    let x = s.tcp_socket(Domain::Inet).unwrap();
    s.bind(x, addr("127.0.0.1:7201")).unwrap();
    let y = s.tcp_socket(Domain::Inet).unwrap();
    assert_eq!(s.bind(y, addr("127.0.0.1:7201")), Err(BindError::AddrInUse));
    assert_eq!(s.bind(y, addr("0.0.0.0:7201")), Err(BindError::AddrInUse));
    s.close(x);
    assert_eq!(s.bind(y, addr("0.0.0.0:7201")), Ok(()));
}

#[test]
fn refused_connect_is_econnrefused_and_releases_its_ephemeral_port() {
    let mut s = lo_stack();
    let c = s.tcp_socket(Domain::Inet).unwrap();
    let now = s.now();
    // Not Stack::connect, which polls: the port is seen before the refusal.
    assert_eq!(
        s.sockets.tcp_connect(
            &mut s.ifs,
            c,
            Target::Addr(addr("127.0.0.1:9")),
            None,
            now,
            &mut None
        ),
        Err(ConnectError::InProgress)
    );
    let local = s.local_addr(c).unwrap();
    assert_ne!(local.port(), 0);
    wait("the refusal", || {
        step(&mut s);
        s.sockets.connect_outcome(c) == Some(false)
    });
    assert_eq!(s.take_error(c), libc::ECONNREFUSED);
    assert_eq!(s.take_error(c), 0, "SO_ERROR is read once");
    assert_eq!(
        s.local_addr(c).unwrap(),
        addr("0.0.0.0:0"),
        "the port chosen by connect is given back"
    );
    assert!(port_free(&mut s, local));
    assert_eq!(
        s.connect(c, addr("127.0.0.1:9")),
        Err(ConnectError::Aborted),
        "as on Linux, the next connect after SO_ERROR took the failure is ECONNABORTED"
    );
    assert_eq!(
        s.connect(c, addr("127.0.0.1:9")),
        Err(ConnectError::InProgress),
        "and the one after that tries again"
    );
}

#[test]
fn refused_connect_keeps_an_explicitly_bound_port() {
    let mut s = lo_stack();
    let c = s.tcp_socket(Domain::Inet).unwrap();
    s.bind(c, addr("127.0.0.1:7202")).unwrap();
    let _ = s.connect(c, addr("127.0.0.1:9"));
    wait("the refusal", || {
        step(&mut s);
        s.take_error(c) == libc::ECONNREFUSED
    });
    assert_eq!(s.local_addr(c).unwrap(), addr("127.0.0.1:7202"));
    assert!(!port_free(&mut s, addr("127.0.0.1:7202")));
}

#[test]
fn connect_past_its_syncnt_deadline_is_etimedout() {
    let (mut a, _wa, _b, _wb) = pair();
    let c = a.tcp_socket(Domain::Inet).unwrap();
    // TCP_SYNCNT 1: 1 + 2 = 3 s.
    set_int(&mut a, c, libc::IPPROTO_TCP, libc::TCP_SYNCNT, 1);
    // b is never polled: nobody answers.
    assert_eq!(
        a.connect(c, addr("10.9.0.2:7203")),
        Err(ConnectError::InProgress)
    );
    let local = a.local_addr(c).unwrap();
    service_later(&mut a, 2);
    assert_eq!(a.take_error(c), 0, "still trying after 2 s");
    assert!(matches!(
        a.sockets.get(c).unwrap().proto,
        Proto::Tcp(TcpState::Connecting(_))
    ));
    service_later(&mut a, 4);
    assert_eq!(a.take_error(c), libc::ETIMEDOUT);
    assert_eq!(
        a.connect(c, addr("10.9.0.2:7203")),
        Err(ConnectError::Aborted)
    );
    assert!(port_free(&mut a, local), "the ephemeral port is released");
}

#[test]
fn calls_in_the_wrong_state_fail_as_on_linux() {
    let mut s = lo_stack();
    let l = listen(&mut s, "127.0.0.1:7204", 4);
    assert_eq!(
        s.connect(l, addr("127.0.0.1:7204")),
        Err(ConnectError::IsConnected),
        "connect on a listener"
    );
    let fresh = s.tcp_socket(Domain::Inet).unwrap();
    assert_eq!(
        s.shutdown(fresh, libc::SHUT_WR),
        Err(ShutdownError::NotConnected)
    );
    assert_eq!(s.shutdown(fresh, 7), Err(ShutdownError::BadHow));
    let c = s.tcp_socket(Domain::Inet).unwrap();
    assert_eq!(
        s.connect(c, addr("127.0.0.1:7204")),
        Err(ConnectError::InProgress)
    );
    // Sockets::tcp_connect does not poll: the handshake has not started.
    let c2 = s.tcp_socket(Domain::Inet).unwrap();
    let now = s.now();
    assert_eq!(
        s.sockets.tcp_connect(
            &mut s.ifs,
            c2,
            Target::Addr(addr("127.0.0.1:7204")),
            None,
            now,
            &mut None
        ),
        Err(ConnectError::InProgress)
    );
    assert_eq!(
        s.sockets.tcp_connect(
            &mut s.ifs,
            c2,
            Target::Addr(addr("127.0.0.1:7204")),
            None,
            now,
            &mut None
        ),
        Err(ConnectError::Already),
        "a second connect while the first is under way"
    );
    wait("the connections", || {
        step(&mut s);
        s.is_connected(c) && s.is_connected(c2)
    });
    assert_eq!(
        s.connect(c, addr("127.0.0.1:7204")),
        Ok(()),
        "the first connect after the handshake reports success"
    );
    assert_eq!(
        s.connect(c, addr("127.0.0.1:7204")),
        Err(ConnectError::IsConnected)
    );
    assert_eq!(s.listen(c, 4), Err(ListenError::InvalidState));
    assert_eq!(
        s.bind(c, addr("127.0.0.1:0")),
        Err(BindError::Invalid),
        "bind on a connected socket"
    );
}

#[test]
fn shutdown_rd_stops_a_listener_and_shutdown_wr_does_not() {
    let mut s = lo_stack();
    let l = listen(&mut s, "127.0.0.1:7205", 4);
    s.shutdown(l, libc::SHUT_WR).unwrap();
    assert!(s.sockets.is_listening(l));
    s.shutdown(l, libc::SHUT_RD).unwrap();
    assert!(!s.sockets.is_listening(l));
    let c = client(&mut s, "127.0.0.1:7205");
    wait("the refusal", || {
        step(&mut s);
        s.take_error(c) == libc::ECONNREFUSED
    });
    // The socket keeps its port and may listen again.
    assert!(!port_free(&mut s, addr("127.0.0.1:7205")));
    s.listen(l, 4).unwrap();
    let c = client(&mut s, "127.0.0.1:7205");
    wait("the connection", || {
        step(&mut s);
        s.is_connected(c)
    });
}

#[test]
fn shutdown_wr_sends_fin_and_the_other_direction_keeps_working() {
    let (mut a, wa, mut b, _wb) = pair();
    let (c, srv) = connected_pair(&mut a, &mut b, 7206, |_, _| {});
    a.send(c, b"request").unwrap();
    a.shutdown(c, libc::SHUT_WR).unwrap();
    assert_eq!(a.send(c, b"more"), Err(IoError::BrokenPipe));
    let mut got = Vec::new();
    wait("data then EOF", || {
        step(&mut a);
        step(&mut b);
        drain(&mut b, srv, &mut got)
    });
    assert_eq!(got, b"request");
    assert_eq!(wa.fins(), 1, "one FIN on the wire");
    assert_eq!(wa.rsts(), 0);
    b.send(srv, b"response").unwrap();
    let mut back = Vec::new();
    wait("the response", || {
        step(&mut a);
        step(&mut b);
        drain(&mut a, c, &mut back);
        back.len() == 8
    });
    assert_eq!(back, b"response");
}

#[test]
fn accepted_connection_keeps_the_port_after_its_listener_closes() {
    let mut s = lo_stack();
    let l = listen(&mut s, "127.0.0.1:7207", 4);
    let c = client(&mut s, "127.0.0.1:7207");
    let mut srv = None;
    wait("the connection", || {
        step(&mut s);
        srv = srv.or_else(|| s.accept(l).ok().map(|x| x.0));
        srv.is_some()
    });
    s.close(l);
    assert!(
        !port_free(&mut s, addr("127.0.0.1:7207")),
        "the established connection holds the port (EADDRINUSE on Linux)"
    );
    s.close(srv.unwrap());
    s.close(c);
    wait("both ends closed", || {
        step(&mut s);
        s.sockets.orphans() == 0
    });
    assert!(port_free(&mut s, addr("127.0.0.1:7207")));
}

/// A socket closed while the next turn still lists it, and a new one in its slot:
/// the new one is served in the next turns (its handshake completes in a few
/// polls), not left for the safety net's walk of every socket every 50 ms.
#[test]
fn a_socket_in_a_reused_slot_is_served_at_once() {
    let mut s = lo_stack();
    let _l = listen(&mut s, "127.0.0.1:7290", 8);
    for round in 0..5 {
        let a = s.tcp_socket(Domain::Inet).unwrap();
        step(&mut s);
        step(&mut s);
        s.close(a);
        let t0 = std::time::Instant::now();
        let c = client(&mut s, "127.0.0.1:7290");
        assert_eq!(a.index(), c.index(), "the slot is reused");
        let mut polls = 0;
        while !s.is_connected(c) && polls < 10 {
            s.poll();
            polls += 1;
        }
        let took = t0.elapsed();
        assert!(
            s.is_connected(c) || took >= std::time::Duration::from_millis(40),
            "round {round}: not connected after {polls} polls in {took:?}"
        );
        s.close(c);
        step(&mut s);
    }
}
