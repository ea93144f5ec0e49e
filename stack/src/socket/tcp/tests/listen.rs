//! Listening: arming per address, the ingress hook, the backlog, closing a listener.

use super::*;

#[test]
fn listener_arms_one_exact_address_socket_per_address_that_got_a_syn() {
    let mut s = lo_stack();
    let l = listen(&mut s, "0.0.0.0:7100", 8);
    assert!(
        listener(&s, l).armed.is_empty(),
        "nothing is armed before a SYN arrives"
    );
    let mut clients = Vec::new();
    for to in ["127.0.0.1:7100", "127.0.0.2:7100", "127.0.0.1:7100"] {
        let c = client(&mut s, to);
        wait("the connection", || {
            step(&mut s);
            s.is_connected(c)
        });
        clients.push(c);
    }
    let li = listener(&s, l);
    assert_eq!(li.ready.len(), 3, "three connections wait for accept");
    assert!(li.embryos.is_empty());
    let mut armed: Vec<(IfaceId, IpAddress)> = li.armed.iter().map(|a| (a.iface, a.addr)).collect();
    armed.sort_by_key(|(i, a)| (*i, a.to_string()));
    assert_eq!(
        armed,
        vec![(LO, v4("127.0.0.1")), (LO, v4("127.0.0.2"))],
        "one spare socket per address that received a SYN"
    );
    for a in &li.armed {
        let sk = s
            .ifs
            .get(a.iface)
            .sockets
            .get::<tcp::Socket<'static>>(a.handle);
        assert_eq!(sk.state(), State::Listen);
        assert_eq!(
            sk.listen_endpoint(),
            IpListenEndpoint {
                addr: Some(a.addr),
                port: 7100
            },
            "armed on the exact address, not the wildcard"
        );
    }
    // Each accepted connection knows its exact local address.
    let mut locals = Vec::new();
    while let Ok((id, _)) = s.accept(l) {
        locals.push(s.local_addr(id).unwrap());
    }
    locals.sort();
    assert_eq!(
        locals,
        vec![
            addr("127.0.0.1:7100"),
            addr("127.0.0.1:7100"),
            addr("127.0.0.2:7100")
        ]
    );
}

#[test]
fn ingress_hook_defers_a_syn_until_armed_then_accepts_then_drops_over_backlog() {
    let mut s = lo_stack();
    let l = listen(&mut s, "127.0.0.1:7101", 0);
    assert_eq!(listener(&s, l).capacity(), 1, "backlog 0 admits one");
    let first = syn("127.0.0.1", 40000, "127.0.0.1", 7101);
    assert_eq!(
        s.sockets.tcp_admit(LO, &first),
        Verdict::Defer,
        "no socket armed yet: held, not answered with a RST"
    );
    assert_eq!(listener(&s, l).wants, vec![(LO, v4("127.0.0.1"))]);
    let now = s.now();
    s.sockets.service(&mut s.ifs, now);
    assert_eq!(listener(&s, l).armed.len(), 1, "the service armed a socket");
    assert_eq!(s.sockets.tcp_admit(LO, &first), Verdict::Accept);
    assert_eq!(listener(&s, l).claimed, 1);
    let second = syn("127.0.0.1", 40001, "127.0.0.1", 7101);
    assert_eq!(
        s.sockets.tcp_admit(LO, &second),
        Verdict::Drop,
        "the backlog is full: dropped (the client retransmits)"
    );
    // Everything but a SYN for a listener passes untouched.
    let synack = PacketInfo {
        ack: true,
        ..second
    };
    assert_eq!(s.sockets.tcp_admit(LO, &synack), Verdict::Accept);
    let ack = PacketInfo {
        syn: false,
        ack: true,
        ..second
    };
    assert_eq!(s.sockets.tcp_admit(LO, &ack), Verdict::Accept);
    let other_port = syn("127.0.0.1", 40002, "127.0.0.1", 7102);
    assert_eq!(
        s.sockets.tcp_admit(LO, &other_port),
        Verdict::Accept,
        "no listener: smoltcp answers with a RST, as Linux does"
    );
    let other_addr = syn("127.0.0.1", 40003, "127.0.0.2", 7101);
    assert_eq!(
        s.sockets.tcp_admit(LO, &other_addr),
        Verdict::Accept,
        "a listener on 127.0.0.1 does not take SYNs to 127.0.0.2"
    );
}

#[test]
fn ingress_hook_prefers_the_exact_address_listener_and_keeps_families_apart() {
    let mut s = lo_stack();
    let one = 1i32;
    let exact = s.tcp_socket(Domain::Inet).unwrap();
    let wild = s.tcp_socket(Domain::Inet).unwrap();
    for id in [exact, wild] {
        set_int(&mut s, id, libc::SOL_SOCKET, libc::SO_REUSEPORT, one);
    }
    // The wildcard listens first, so order alone would pick it.
    s.bind(wild, addr("0.0.0.0:7102")).unwrap();
    s.listen(wild, 4).unwrap();
    s.bind(exact, addr("127.0.0.1:7102")).unwrap();
    s.listen(exact, 4).unwrap();
    let v6only = s.tcp_socket(Domain::Inet6).unwrap();
    set_int(&mut s, v6only, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1);
    s.bind(v6only, addr("[::]:7103")).unwrap();
    s.listen(v6only, 4).unwrap();

    let to_exact = syn("127.0.0.1", 40000, "127.0.0.1", 7102);
    assert_eq!(s.sockets.tcp_admit(LO, &to_exact), Verdict::Defer);
    assert_eq!(listener(&s, exact).wants, vec![(LO, v4("127.0.0.1"))]);
    assert!(listener(&s, wild).wants.is_empty());
    let to_other = syn("127.0.0.1", 40001, "127.0.0.3", 7102);
    assert_eq!(s.sockets.tcp_admit(LO, &to_other), Verdict::Defer);
    assert_eq!(listener(&s, wild).wants, vec![(LO, v4("127.0.0.3"))]);
    let v4_to_v6only = syn("127.0.0.1", 40002, "127.0.0.1", 7103);
    assert_eq!(
        s.sockets.tcp_admit(LO, &v4_to_v6only),
        Verdict::Accept,
        "an IPV6_V6ONLY listener does not take IPv4 (smoltcp refuses it)"
    );
    assert!(listener(&s, v6only).wants.is_empty());
}

#[test]
fn full_backlog_drops_syns_without_rst_and_admits_one_after_accept() {
    let (mut a, _wa, mut b, wb) = pair();
    let l = listen(&mut b, "0.0.0.0:7104", 1);
    let clients: Vec<SocketId> = (0..3).map(|_| client(&mut a, "10.9.0.2:7104")).collect();
    let connected = |a: &Stack<Rec>| clients.iter().filter(|c| a.is_connected(**c)).count();
    wait("backlog + 1 connections", || {
        step(&mut a);
        step(&mut b);
        connected(&a) == 2
    });
    for_a_while(300, || {
        step(&mut a);
        step(&mut b);
    });
    assert_eq!(connected(&a), 2, "the third SYN is held back");
    assert_eq!(listener(&b, l).ready.len(), 2);
    for c in &clients {
        assert_eq!(a.take_error(*c), 0, "no client was refused");
    }
    assert_eq!(wb.rsts(), 0, "the listener never answered a SYN with a RST");
    b.accept(l).unwrap();
    wait("the third connection after an accept", || {
        step(&mut a);
        step(&mut b);
        connected(&a) == 3
    });
    assert_eq!(wb.rsts(), 0);
    assert!(
        wb.segs().iter().filter(|s| s.syn).count() == 3,
        "one SYN-ACK per connection"
    );
}

#[test]
fn backlog_zero_admits_exactly_one_connection_until_it_is_accepted() {
    let mut s = lo_stack();
    let l = listen(&mut s, "127.0.0.1:7105", 0);
    let c1 = client(&mut s, "127.0.0.1:7105");
    let c2 = client(&mut s, "127.0.0.1:7105");
    let both = [c1, c2];
    let connected = |s: &Stack<PipeDevice>| both.iter().filter(|c| s.is_connected(**c)).count();
    wait("one connection", || {
        step(&mut s);
        connected(&s) == 1
    });
    for_a_while(300, || step(&mut s));
    assert_eq!(connected(&s), 1, "Linux admits backlog + 1 = 1");
    assert_eq!(s.take_error(c1), 0);
    assert_eq!(s.take_error(c2), 0);
    s.accept(l).unwrap();
    wait("the second connection", || {
        step(&mut s);
        connected(&s) == 2
    });
    assert!(s.accept(l).is_ok());
}

#[test]
fn negative_and_oversized_backlogs_are_clamped_to_somaxconn() {
    let mut s = lo_stack();
    let l = listen(&mut s, "127.0.0.1:7106", -1);
    assert_eq!(
        listener(&s, l).backlog,
        SOMAXCONN,
        "listen(-1) is somaxconn"
    );
    s.listen(l, i32::MAX).unwrap();
    assert_eq!(listener(&s, l).backlog, SOMAXCONN);
    s.listen(l, 3).unwrap();
    assert_eq!(
        listener(&s, l).backlog,
        3,
        "listen again changes the backlog"
    );
    assert_eq!(listener(&s, l).capacity(), 4);
}

#[test]
fn listen_again_with_a_larger_backlog_admits_a_held_syn() {
    let mut s = lo_stack();
    let l = listen(&mut s, "127.0.0.1:7107", 0);
    let c1 = client(&mut s, "127.0.0.1:7107");
    let c2 = client(&mut s, "127.0.0.1:7107");
    wait("one connection", || {
        step(&mut s);
        s.is_connected(c1) || s.is_connected(c2)
    });
    for_a_while(200, || step(&mut s));
    assert!(!(s.is_connected(c1) && s.is_connected(c2)));
    s.listen(l, 4).unwrap();
    assert_eq!(
        listener(&s, l).ready.len(),
        1,
        "listen again keeps the queue"
    );
    wait("the held client, without an accept", || {
        step(&mut s);
        s.is_connected(c1) && s.is_connected(c2)
    });
    assert_eq!(listener(&s, l).ready.len(), 2);
}

#[test]
fn closing_a_listener_resets_unaccepted_connections_and_frees_its_port() {
    let mut s = lo_stack();
    let l = listen(&mut s, "127.0.0.1:7108", 4);
    let c1 = client(&mut s, "127.0.0.1:7108");
    let c2 = client(&mut s, "127.0.0.1:7108");
    wait("two connections", || {
        step(&mut s);
        s.is_connected(c1) && s.is_connected(c2)
    });
    assert_eq!(listener(&s, l).ready.len(), 2);
    let live = s.sockets.len();
    s.close(l);
    assert_eq!(
        s.sockets.len(),
        live - 3,
        "the listener and its two unaccepted connections leave the table"
    );
    let mut buf = [0u8; 8];
    for c in [c1, c2] {
        wait("the reset", || {
            step(&mut s);
            s.recv(c, &mut buf) == Err(IoError::Reset)
        });
    }
    assert_eq!(s.sockets.orphans(), 0, "the reset connections are gone");
    assert!(
        port_free(&mut s, addr("127.0.0.1:7108")),
        "the port is free again"
    );
}

/// `b` listening on 7109, `a`'s SYN answered but `a` not polled since: the
/// listener holds an embryo. Returns the listener and the client.
fn half_open(a: &mut Stack<Rec>, b: &mut Stack<Rec>) -> (SocketId, SocketId) {
    let l = listen(b, "0.0.0.0:7109", 4);
    let c = client(a, "10.9.0.2:7109");
    wait("a half-open connection", || {
        step(a);
        step(b);
        !listener(b, l).embryos.is_empty()
    });
    assert!(!a.is_connected(c));
    (l, c)
}

#[test]
fn retransmitted_syn_of_a_half_open_connection_is_dropped() {
    let (mut a, _wa, mut b, _wb) = pair();
    let (l, c) = half_open(&mut a, &mut b);
    let port = a.local_addr(c).unwrap().port();
    let again = syn("10.9.0.1", port, "10.9.0.2", 7109);
    assert_eq!(
        b.sockets.tcp_admit(ETH, &again),
        Verdict::Drop,
        "the embryo retransmits its SYN-ACK itself"
    );
    let other = syn("10.9.0.1", port.wrapping_add(1), "10.9.0.2", 7109);
    assert_ne!(b.sockets.tcp_admit(ETH, &other), Verdict::Drop);
    assert_eq!(listener(&b, l).embryos.len(), 1);
}

#[test]
fn closing_a_listener_resets_half_open_connections() {
    let (mut a, _wa, mut b, wb) = pair();
    let (l, c) = half_open(&mut a, &mut b);
    let port = a.local_addr(c).unwrap().port();
    wb.clear();
    b.close(l);
    for _ in 0..3 {
        step(&mut b);
    }
    assert!(
        wb.segs().iter().any(|s| s.rst && s.dst_port == port),
        "a RST went to the half-open client: {:?}",
        wb.segs()
    );
    let mut buf = [0u8; 8];
    wait("the client to learn of the reset", || {
        step(&mut a);
        step(&mut b);
        a.take_error(c) == libc::ECONNREFUSED || a.recv(c, &mut buf) == Err(IoError::Reset)
    });
    assert_eq!(b.sockets.orphans(), 0);
}

#[test]
fn max_pending_drops_syns_across_listeners() {
    let cfg = SocketConfig {
        max_pending: 1,
        ..SocketConfig::default()
    };
    let mut s = lo_stack_with(cfg);
    let l1 = listen(&mut s, "127.0.0.1:7110", 8);
    let _l2 = listen(&mut s, "127.0.0.1:7111", 8);
    let c1 = client(&mut s, "127.0.0.1:7110");
    wait("the first connection", || {
        step(&mut s);
        s.is_connected(c1)
    });
    let c2 = client(&mut s, "127.0.0.1:7111");
    for_a_while(300, || step(&mut s));
    assert!(
        !s.is_connected(c2),
        "one connection pending is the container's limit"
    );
    assert_eq!(s.take_error(c2), 0, "dropped, not refused");
    s.accept(l1).unwrap();
    wait("the second connection once the first is accepted", || {
        step(&mut s);
        s.is_connected(c2)
    });
}

#[test]
fn listener_standin_counts_records_in_flight_against_the_backlog() {
    let mut s = lo_stack();
    let (l, lprog) = s
        .sockets
        .open(Domain::Inet, libc::SOCK_STREAM, 0, true, false)
        .unwrap();
    let lprog = lprog.unwrap();
    s.bind(l, addr("127.0.0.1:7112")).unwrap();
    // The front end passes the program's end with listen: it is paired then.
    s.sockets.listen(l, 0, Some(&lprog)).unwrap();
    let c1 = client(&mut s, "127.0.0.1:7112");
    wait("the first connection", || {
        step(&mut s);
        s.is_connected(c1)
    });
    wait("its record in the listener's stand-in", || {
        step(&mut s);
        listener(&s, l).inflight == 1
    });
    assert!(listener(&s, l).ready.is_empty(), "handed to the program");
    let c2 = client(&mut s, "127.0.0.1:7112");
    for_a_while(300, || step(&mut s));
    assert!(
        !s.is_connected(c2),
        "a record not yet accepted fills backlog 0"
    );
    assert_eq!(s.take_error(c2), 0);
    // The program's accept(): one record with the connection's stand-in.
    let mut rec = [0u8; 512];
    let got = crate::sys::recv_with_fds(lprog.as_fd(), &mut rec).unwrap();
    assert_eq!(
        got.fds.len(),
        1,
        "the connection's fd comes with the record"
    );
    let r = AcceptRecord::decode(&rec[..got.len]).expect("an accept record");
    let peer = addr::parse_connect(Domain::Inet, &r.peer.0[..r.peer.1 as usize]);
    assert_eq!(peer, Ok(Target::Addr(s.local_addr(c1).unwrap())));
    wait("the second connection once the first is accepted", || {
        step(&mut s);
        s.is_connected(c2)
    });
}

/// Sends a frame from `a`'s device as if its stack had: a segment no socket of
/// `a` made, such as another host's SYN.
fn inject(a: &mut Stack<Rec>, frame: &[u8]) {
    let now = a.now();
    let tx = phy::Device::transmit(&mut a.devices_mut()[0].dev, now).unwrap();
    phy::TxToken::consume(tx, frame.len(), |buf| buf.copy_from_slice(frame));
}

/// A segment from `a`'s address and MAC to 10.9.0.2:`port`: a SYN with a
/// timestamp and MSS `mss` but without window scaling, or (`rst`) the RST that
/// follows it.
fn odd_segment(a: &Stack<Rec>, src_port: u16, port: u16, mss: u16, rst: bool) -> Vec<u8> {
    use smoltcp::wire::{
        EthernetAddress, EthernetRepr, HardwareAddress, Ipv4Address, TcpControl, TcpRepr,
        TcpSeqNumber, TcpTimestampRepr,
    };
    let HardwareAddress::Ethernet(mac) = a.ifs.get(ETH).iface.hardware_addr() else {
        panic!("eth0 has a MAC")
    };
    let (src, dst) = (Ipv4Address::new(10, 9, 0, 1), Ipv4Address::new(10, 9, 0, 2));
    let tcp = TcpRepr {
        src_port,
        dst_port: port,
        control: if rst {
            TcpControl::Rst
        } else {
            TcpControl::Syn
        },
        seq_number: TcpSeqNumber(1_000_000 + i32::from(rst)),
        ack_number: None,
        window_len: if rst { 0 } else { 65535 },
        window_scale: None,
        max_seg_size: (!rst).then_some(mss),
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: (!rst).then_some(TcpTimestampRepr {
            tsval: 12345,
            tsecr: 0,
        }),
        payload: &[],
    };
    let eth = EthernetRepr {
        src_addr: mac,
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Ipv4,
    };
    let ip = crate::testing::ipv4_tcp(src, dst, &tcp);
    let mut frame = vec![0u8; eth.buffer_len() + ip.len()];
    let mut f = EthernetFrame::new_unchecked(&mut frame[..]);
    eth.emit(&mut f);
    f.payload_mut().copy_from_slice(&ip);
    frame
}

/// A SYN without window scaling and its RST, arriving in one poll, send the
/// listener's armed socket through SYN-RECEIVED back to LISTEN, where smoltcp
/// keeps what it took from that SYN: window scaling off. The next connection
/// gets a socket of its own, whose SYN-ACK scales the window again.
#[test]
fn a_listener_socket_a_reset_sent_back_to_listen_is_not_used_again() {
    let (mut a, wa, mut b, wb) = pair();
    let l = listen(&mut b, "0.0.0.0:7120", 4);
    // A first connection: ARP both ways, and the listener arms a socket for
    // 10.9.0.2 (a SYN to an address it has none for waits for one).
    let (c0, s0) = connect_to(&mut a, &mut b, l, 7120);
    a.close(c0);
    b.close(s0);
    for_a_while(30, || {
        step(&mut a);
        step(&mut b);
    });
    let first_syn_ack = wb.segs().into_iter().find(|s| s.syn && s.ack).unwrap();
    assert!(first_syn_ack.ws.is_some_and(|w| w > 0), "{first_syn_ack:?}");
    wa.clear();
    wb.clear();

    let (syn, rst) = (
        odd_segment(&a, 40000, 7120, 536, false),
        odd_segment(&a, 40000, 7120, 536, true),
    );
    inject(&mut a, &syn);
    inject(&mut a, &rst);
    for_a_while(30, || {
        step(&mut b);
        step(&mut a);
    });
    // Both in one poll: the socket went back to LISTEN before it answered.
    assert!(
        !wb.segs().iter().any(|s| s.dst_port == 40000),
        "b answered the odd SYN: it did not see the RST in the same poll"
    );
    assert!(b.accept(l).is_err(), "nothing to accept: the SYN was reset");
    wb.clear();

    let (c, srv) = connect_to(&mut a, &mut b, l, 7120);
    let syn_ack = wb
        .segs()
        .into_iter()
        .find(|s| s.syn && s.ack)
        .expect("b answered the SYN");
    assert!(
        syn_ack.ws.is_some_and(|w| w > 0),
        "the SYN-ACK scales the window: {syn_ack:?}"
    );
    let data = vec![7u8; 8000];
    let mut sent = 0;
    let mut got = Vec::new();
    wait("the bytes", || {
        if sent < data.len() {
            sent += b.send(srv, &data[sent..]).unwrap_or(0);
        }
        step(&mut b);
        step(&mut a);
        drain(&mut a, c, &mut got);
        got.len() == data.len()
    });
    let largest = wb.data().into_iter().max().unwrap();
    assert!(
        largest > 536,
        "segments of {largest} bytes: the odd SYN's MSS"
    );
}

/// Connections a published port brings from the host wait in netcell until
/// the program accepts them: they count against --max-pending like SYNs do,
/// whatever the listener's backlog, and the rest are refused (the host side
/// resets them).
#[test]
fn published_connections_count_against_the_pending_limit() {
    let (_a, _wa, mut b, _wb) = pair();
    b.sockets.cfg.max_pending = 3;
    let (l, lprog) = b
        .sockets
        .open(Domain::Inet, libc::SOCK_STREAM, 0, true, false)
        .unwrap();
    let lprog = lprog.unwrap();
    b.bind(l, addr("0.0.0.0:80")).unwrap();
    b.sockets.listen(l, 4096, Some(&lprog)).unwrap();
    let mut taken = 0;
    for i in 0..10 {
        let (conn, _other) = UnixStream::pair().unwrap();
        let peer = addr(&format!("10.9.0.1:{}", 5000 + i));
        if b.sockets
            .deliver_published(&b.ifs, 80, conn.into(), peer)
            .is_ok()
        {
            taken += 1;
        }
    }
    assert_eq!(taken, 3, "--max-pending 3, backlog 4096");
}
