//! Orphans: connections whose program closed them, finishing their close.

use super::*;

#[test]
fn orphan_with_unsent_data_keeps_its_port_until_its_close_completes() {
    let (mut a, wa, mut b, _wb) = pair();
    // A small receive window on b's side: a's bytes cannot all leave at once.
    let (c, srv) = connected_pair(&mut a, &mut b, 7300, |b, l| {
        set_int(b, l, libc::SOL_SOCKET, libc::SO_RCVBUF, 4096)
    });
    let data: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(a.send(c, &data), Ok(data.len()));
    let local = a.local_addr(c).unwrap();
    let live = a.sockets.len();
    a.close(c);
    assert_eq!(a.sockets.len(), live - 1, "the program's socket is gone");
    assert_eq!(a.sockets.orphans(), 1, "its connection stays as an orphan");
    for_a_while(200, || {
        step(&mut a);
        step(&mut b);
    });
    assert_eq!(a.sockets.orphans(), 1, "bytes are still unsent");
    assert!(!port_free(&mut a, local), "the orphan keeps its port");
    let mut got = Vec::new();
    wait("every byte, then EOF", || {
        step(&mut a);
        step(&mut b);
        drain(&mut b, srv, &mut got)
    });
    assert_eq!(got.len(), data.len());
    assert!(got == data, "the bytes arrive intact");
    wait("our FIN acknowledged (the peer has not closed)", || {
        step(&mut a);
        step(&mut b);
        orphan_states(&a) == vec![State::FinWait2]
    });
    assert!(!port_free(&mut a, local));
    b.close(srv);
    wait("the orphan to go", || {
        step(&mut a);
        step(&mut b);
        a.sockets.orphans() == 0
    });
    assert!(port_free(&mut a, local), "its port is free once it is gone");
    assert_eq!(wa.rsts(), 0, "a graceful close sends no RST");
}

#[test]
fn orphan_acknowledges_the_peers_fin_before_it_is_freed() {
    let (mut a, wa, mut b, _wb) = pair();
    let (c, srv) = connected_pair(&mut a, &mut b, 7301, |_, _| {});
    a.close(c);
    let mut got = Vec::new();
    wait("EOF", || {
        step(&mut a);
        step(&mut b);
        drain(&mut b, srv, &mut got)
    });
    b.close(srv);
    wait("b's LAST_ACK to end", || {
        step(&mut a);
        step(&mut b);
        b.sockets.orphans() == 0
    });
    assert_eq!(a.sockets.orphans(), 0);
    assert_eq!(
        wa.rsts(),
        0,
        "a's last word is the ACK of b's FIN, not a RST: {:?}",
        wa.segs()
    );
}

#[test]
fn orphan_in_fin_wait_2_is_reset_after_tcp_linger2() {
    let (mut a, wa, mut b, _wb) = pair();
    let (c, srv) = connected_pair(&mut a, &mut b, 7302, |_, _| {});
    let local = a.local_addr(c).unwrap();
    let closed_at = a.now();
    a.close(c);
    let mut got = Vec::new();
    wait("EOF at the peer", || {
        step(&mut a);
        step(&mut b);
        drain(&mut b, srv, &mut got)
    });
    wait("FIN_WAIT_2", || {
        step(&mut a);
        step(&mut b);
        orphan_states(&a) == vec![State::FinWait2]
    });
    // The socket layer's timer is the orphan's TCP_LINGER2 deadline (60 s).
    let t = a.sockets.next_timer(a.now()).expect("an orphan timer");
    assert!(
        t >= closed_at + Duration::from_secs(60) && t <= a.now() + Duration::from_secs(60),
        "next timer {t} is 60 s after the close at {closed_at}"
    );
    service_later(&mut a, 30);
    assert_eq!(
        orphan_states(&a),
        vec![State::FinWait2],
        "kept within TCP_LINGER2"
    );
    assert_eq!(wa.rsts(), 0);
    service_later(&mut a, 61);
    wait("the orphan to go", || {
        step(&mut a);
        step(&mut b);
        a.sockets.orphans() == 0
    });
    assert_eq!(wa.rsts(), 1, "cut with a RST");
    assert_eq!(conn_state(&b, srv), State::Closed, "the peer saw the RST");
    assert!(port_free(&mut a, local));
}

#[test]
fn orphan_that_cannot_finish_is_reset_after_the_orphan_limit() {
    let (mut a, wa, mut b, _wb) = pair();
    let (c, _srv) = connected_pair(&mut a, &mut b, 7303, |b, l| {
        set_int(b, l, libc::SOL_SOCKET, libc::SO_RCVBUF, 4096)
    });
    let data = vec![7u8; 65536];
    assert_eq!(a.send(c, &data), Ok(data.len()));
    let local = a.local_addr(c).unwrap();
    a.close(c);
    // b never reads: its window stays shut.
    for_a_while(200, || {
        step(&mut a);
        step(&mut b);
    });
    assert_eq!(orphan_states(&a), vec![State::FinWait1]);
    service_later(&mut a, 299);
    assert_eq!(a.sockets.orphans(), 1);
    assert_eq!(wa.rsts(), 0);
    service_later(&mut a, 301);
    wait("the orphan to go", || {
        step(&mut a);
        step(&mut b);
        a.sockets.orphans() == 0
    });
    assert_eq!(wa.rsts(), 1);
    assert!(port_free(&mut a, local));
}

#[test]
fn data_arriving_for_an_orphan_is_answered_with_rst() {
    let (mut a, wa, mut b, _wb) = pair();
    let (c, srv) = connected_pair(&mut a, &mut b, 7304, |_, _| {});
    a.close(c);
    let mut got = Vec::new();
    wait("EOF at the peer", || {
        step(&mut a);
        step(&mut b);
        drain(&mut b, srv, &mut got)
    });
    assert_eq!(wa.rsts(), 0);
    // The peer, half-closed, still writes.
    b.send(srv, b"too late").unwrap();
    wait("the peer to be reset", || {
        step(&mut a);
        step(&mut b);
        b.send(srv, b"x") == Err(IoError::Reset)
    });
    assert_eq!(wa.rsts(), 1);
    assert_eq!(a.sockets.orphans(), 0);
}

#[test]
fn close_with_unread_data_sends_rst_instead_of_fin_and_frees_the_port() {
    let (mut a, wa, mut b, _wb) = pair();
    let (c, srv) = connected_pair(&mut a, &mut b, 7305, |_, _| {});
    b.send(srv, b"never read").unwrap();
    wait("the bytes to arrive", || {
        step(&mut a);
        step(&mut b);
        matches!(&a.sockets.get(c).unwrap().proto,
            Proto::Tcp(TcpState::Connected(k)) if a.ifs.get(k.iface).sockets
                .get::<tcp::Socket<'static>>(k.handle).recv_queue() > 0)
    });
    let local = a.local_addr(c).unwrap();
    wa.clear();
    a.close(c);
    wait("the orphan to go", || {
        step(&mut a);
        a.sockets.orphans() == 0
    });
    assert_eq!(wa.rsts(), 1, "abortive close: {:?}", wa.segs());
    assert_eq!(wa.fins(), 0, "no FIN");
    assert!(port_free(&mut a, local), "no TIME_WAIT after a RST");
    let mut buf = [0u8; 16];
    wait("the peer to see the reset", || {
        step(&mut b);
        matches!(b.recv(srv, &mut buf), Err(IoError::Reset))
    });
}

#[test]
fn so_linger_zero_close_sends_rst() {
    let (mut a, wa, mut b, _wb) = pair();
    let (c, srv) = connected_pair(&mut a, &mut b, 7306, |_, _| {});
    let linger: [i32; 2] = [1, 0];
    let mut v = [0u8; 8];
    v[..4].copy_from_slice(&linger[0].to_ne_bytes());
    v[4..].copy_from_slice(&linger[1].to_ne_bytes());
    a.setsockopt(c, libc::SOL_SOCKET, libc::SO_LINGER, &v)
        .unwrap();
    wa.clear();
    a.close(c);
    wait("the orphan to go", || {
        step(&mut a);
        a.sockets.orphans() == 0
    });
    assert_eq!(wa.rsts(), 1);
    assert_eq!(wa.fins(), 0);
    let mut buf = [0u8; 16];
    wait("the peer to see the reset", || {
        step(&mut b);
        matches!(b.recv(srv, &mut buf), Err(IoError::Reset))
    });
}
