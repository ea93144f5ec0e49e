//! The pump: stand-ins' bytes into connections, Nagle's rule and TCP_CORK.

use super::*;

#[test]
fn nagle_holds_small_writes_while_data_is_unacknowledged() {
    let (mut a, wa, mut b, _wb) = pair();
    let (_c, mut prog, srv) = standin_pair(&mut a, &mut b, 7400);
    wa.clear();
    prog.write_all(&[1; 100]).unwrap();
    step(&mut a);
    assert_eq!(wa.data(), vec![100], "nothing in flight: sent at once");
    // b is not polled: the first segment stays unacknowledged.
    prog.write_all(&[2; 100]).unwrap();
    step(&mut a);
    prog.write_all(&[3; 100]).unwrap();
    step(&mut a);
    step(&mut a);
    assert_eq!(
        wa.data(),
        vec![100],
        "small writes wait for the ACK of the data in flight"
    );
    let mut got = Vec::new();
    wait("all bytes", || {
        step(&mut a);
        step(&mut b);
        drain(&mut b, srv, &mut got);
        got.len() == 300
    });
    assert_eq!(
        wa.data(),
        vec![100, 200],
        "the waiting writes leave as one segment"
    );
    assert_eq!(&got[100..], [[2u8; 100], [3u8; 100]].concat());
}

#[test]
fn nagle_does_not_hold_a_full_sized_segment() {
    let (mut a, wa, mut b, _wb) = pair();
    let (_c, mut prog, _srv) = standin_pair(&mut a, &mut b, 7401);
    wa.clear();
    prog.write_all(&[1; 100]).unwrap();
    step(&mut a);
    prog.write_all(&[2; 3000]).unwrap();
    step(&mut a);
    let mss = 1500 - 40 - 12; // timestamps on both ends
    let data = wa.data();
    assert_eq!(data[0], 100);
    assert!(
        data[1..].contains(&mss),
        "a full segment leaves although data is in flight: {data:?}"
    );
}

#[test]
fn tcp_nodelay_sends_each_small_write_at_once() {
    let (mut a, wa, mut b, _wb) = pair();
    let (c, mut prog, srv) = standin_pair(&mut a, &mut b, 7402);
    set_int(&mut a, c, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
    wa.clear();
    for i in 0..3u8 {
        prog.write_all(&[i; 100]).unwrap();
        step(&mut a);
    }
    assert_eq!(wa.data(), vec![100, 100, 100], "no write waits for an ACK");
    let mut got = Vec::new();
    wait("all bytes", || {
        step(&mut a);
        step(&mut b);
        drain(&mut b, srv, &mut got);
        got.len() == 300
    });
}

#[test]
fn tcp_cork_holds_a_partial_segment_until_uncorked() {
    let (mut a, wa, mut b, _wb) = pair();
    let (c, mut prog, srv) = standin_pair(&mut a, &mut b, 7403);
    set_int(&mut a, c, libc::IPPROTO_TCP, libc::TCP_CORK, 1);
    wa.clear();
    prog.write_all(&[1; 100]).unwrap();
    for _ in 0..5 {
        step(&mut a);
        step(&mut b);
    }
    assert!(
        wa.data().is_empty(),
        "corked: nothing in flight, still held"
    );
    // Enough for a full segment leaves while corked.
    prog.write_all(&[2; 1400]).unwrap();
    step(&mut a);
    assert!(wa.data().contains(&1448), "{:?}", wa.data());
    let mut got = Vec::new();
    wait("the full segment", || {
        step(&mut a);
        step(&mut b);
        drain(&mut b, srv, &mut got);
        got.len() == 1500
    });
    wait("the ACK of the full segment", || {
        step(&mut a);
        step(&mut b);
        send_queue(&a, c) == 0
    });
    // A partial segment, then uncork: it leaves.
    wa.clear();
    prog.write_all(&[3; 10]).unwrap();
    for _ in 0..5 {
        step(&mut a);
        step(&mut b);
    }
    assert!(wa.data().is_empty());
    set_int(&mut a, c, libc::IPPROTO_TCP, libc::TCP_CORK, 0);
    step(&mut a);
    assert_eq!(wa.data(), vec![10], "uncorking sends what waits");
}

#[test]

fn tcp_cork_holds_bytes_at_most_200ms() {
    let (mut a, wa, mut b, _wb) = pair();
    let (c, mut prog, _srv) = standin_pair(&mut a, &mut b, 7404);
    set_int(&mut a, c, libc::IPPROTO_TCP, libc::TCP_CORK, 1);
    wa.clear();
    prog.write_all(&[1; 100]).unwrap();
    for_a_while(600, || {
        step(&mut a);
        step(&mut b);
    });
    assert_eq!(wa.data(), vec![100], "the cork's 200 ms ceiling");
}

#[test]
fn tcp_cork_bytes_and_fin_leave_on_shutdown() {
    let (mut a, _wa, mut b, _wb) = pair();
    let (c, mut prog, srv) = standin_pair(&mut a, &mut b, 7405);
    set_int(&mut a, c, libc::IPPROTO_TCP, libc::TCP_CORK, 1);
    prog.write_all(b"last words").unwrap();
    prog.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    let t0 = std::time::Instant::now();
    let mut eof = false;
    while !eof && t0.elapsed() < std::time::Duration::from_secs(2) {
        step(&mut a);
        step(&mut b);
        eof = drain(&mut b, srv, &mut got);
    }
    assert_eq!(got, b"last words");
    assert!(eof, "the FIN follows the bytes");
}

#[test]
fn tcp_cork_bytes_and_fin_leave_on_close() {
    let (mut a, _wa, mut b, _wb) = pair();
    let (c, mut prog, srv) = standin_pair(&mut a, &mut b, 7410);
    set_int(&mut a, c, libc::IPPROTO_TCP, libc::TCP_CORK, 1);
    prog.write_all(b"last words").unwrap();
    drop(prog);
    let mut got = Vec::new();
    let t0 = std::time::Instant::now();
    let mut eof = false;
    while !eof && t0.elapsed() < std::time::Duration::from_secs(2) {
        step(&mut a);
        step(&mut b);
        eof = drain(&mut b, srv, &mut got);
    }
    assert_eq!(got, b"last words");
    assert!(eof, "the FIN follows the bytes");
    // The socket is an orphan now, waiting in FIN_WAIT_2 for the peer's FIN (its
    // TCP_LINGER2 timer running), not a socket held for ever.
    wait("the socket to become an orphan", || {
        step(&mut a);
        step(&mut b);
        a.sockets.get(c).is_none() && a.sockets.orphans() == 1
    });
}

#[test]
fn standin_shutdown_wr_sends_fin_after_the_bytes_and_close_ends_as_orphan() {
    let (mut a, wa, mut b, _wb) = pair();
    let (c, mut prog, srv) = standin_pair(&mut a, &mut b, 7406);
    let local = a.local_addr(c).unwrap();
    prog.write_all(b"hello").unwrap();
    prog.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    wait("the bytes, then EOF", || {
        step(&mut a);
        step(&mut b);
        drain(&mut b, srv, &mut got)
    });
    assert_eq!(got, b"hello");
    assert_eq!(wa.fins(), 1);
    // Half-closed: the other direction still flows to the program.
    b.send(srv, b"bye").unwrap();
    b.shutdown(srv, libc::SHUT_WR).unwrap();
    let mut back = Vec::new();
    let mut buf = [0u8; 64];
    wait("the reply, then EOF for the program", || {
        step(&mut a);
        step(&mut b);
        match prog.read(&mut buf) {
            Ok(0) => true,
            Ok(n) => {
                back.extend_from_slice(&buf[..n]);
                false
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => false,
            Err(e) => panic!("read: {e}"),
        }
    });
    assert_eq!(back, b"bye");
    drop(prog);
    wait("the socket and its orphan to go", || {
        step(&mut a);
        step(&mut b);
        a.sockets.get(c).is_none() && a.sockets.orphans() == 0
    });
    assert_eq!(wa.rsts(), 0);
    assert!(port_free(&mut a, local));
}

#[test]
fn standin_closed_with_unread_bytes_sends_rst() {
    let (mut a, wa, mut b, _wb) = pair();
    let (c, prog, srv) = standin_pair(&mut a, &mut b, 7407);
    b.send(srv, b"unread").unwrap();
    wait("the bytes in the program's stand-in", || {
        step(&mut a);
        step(&mut b);
        crate::sys::pending_bytes(prog.as_fd()) == 6
    });
    wa.clear();
    drop(prog);
    wait("the socket to go", || {
        step(&mut a);
        a.sockets.get(c).is_none() && a.sockets.orphans() == 0
    });
    assert_eq!(wa.rsts(), 1, "{:?}", wa.segs());
    assert_eq!(wa.fins(), 0);
    let mut buf = [0u8; 16];
    wait("the peer to see the reset", || {
        step(&mut b);
        matches!(b.recv(srv, &mut buf), Err(IoError::Reset))
    });
}

#[test]
fn standin_so_linger_zero_close_sends_rst_not_fin() {
    let (mut a, wa, mut b, _wb) = pair();
    let (c, prog, srv) = standin_pair(&mut a, &mut b, 7411);
    let mut v = [0u8; 8];
    v[..4].copy_from_slice(&1i32.to_ne_bytes());
    a.setsockopt(c, libc::SOL_SOCKET, libc::SO_LINGER, &v)
        .unwrap();
    wa.clear();
    drop(prog);
    wait("the socket and its orphan to go", || {
        step(&mut a);
        a.sockets.get(c).is_none() && a.sockets.orphans() == 0
    });
    assert_eq!(wa.rsts(), 1, "{:?}", wa.segs());
    assert_eq!(wa.fins(), 0);
    let mut buf = [0u8; 16];
    wait("the peer to see the reset", || {
        step(&mut b);
        matches!(b.recv(srv, &mut buf), Err(IoError::Reset))
    });
}

#[test]
fn standin_connect_refused_reads_eof_and_reports_econnrefused() {
    let (mut a, _wa, mut b, wb) = pair();
    let (c, mut prog) = standin_client(&mut a, "10.9.0.2:7408");
    assert!(
        !crate::sys::writable_now(prog.as_fd()),
        "the stand-in is unwritable while connecting"
    );
    wait("the refusal", || {
        step(&mut a);
        step(&mut b);
        a.sockets.connect_outcome(c) == Some(false)
    });
    assert!(wb.rsts() >= 1, "b answered the SYN with a RST");
    assert_eq!(a.take_error(c), libc::ECONNREFUSED);
    let mut buf = [0u8; 8];
    assert_eq!(prog.read(&mut buf).unwrap(), 0, "the program reads EOF");
    assert!(
        crate::sys::writable_now(prog.as_fd()),
        "the filler is drained"
    );
    assert_eq!(a.local_addr(c).unwrap(), addr("0.0.0.0:0"));
}

#[test]
fn standin_connect_completes_and_the_first_byte_follows_no_filler() {
    let (mut a, _wa, mut b, _wb) = pair();
    let (c, mut prog, srv) = standin_pair(&mut a, &mut b, 7409);
    assert_eq!(a.sockets.connect_outcome(c), Some(true));
    a.sockets.connect_reported(c);
    assert_eq!(a.sockets.connect_outcome(c), None, "reported once");
    assert!(crate::sys::writable_now(prog.as_fd()));
    prog.write_all(b"first").unwrap();
    let mut got = Vec::new();
    wait("the bytes", || {
        step(&mut a);
        step(&mut b);
        drain(&mut b, srv, &mut got);
        got.len() >= 5
    });
    assert_eq!(got, b"first", "no filler byte reaches the peer");
}

/// The filler that keeps a connecting stand-in unwritable waits, for a
/// connect to a listener of the container, for the end of the poll that
/// follows the connect, and is not written when the handshake is over by then;
/// a connect to a peer outside is filled at once, as before.
#[test]
fn the_filler_waits_for_the_end_of_the_poll() {
    let mut s = lo_stack();
    let l = listen(&mut s, "127.0.0.1:7410", 4);
    let (c, prog) = standin_connect(&mut s, "127.0.0.1:7410");
    assert!(
        crate::sys::writable_now(prog.as_fd()),
        "no filler before the poll"
    );
    s.poll();
    assert_eq!(s.sockets.connect_outcome(c), Some(true), "over in one poll");
    assert!(crate::sys::writable_now(prog.as_fd()));
    assert!(s.accept(l).is_ok());

    let (mut a, _wa, mut b, _wb) = pair();
    let _l = listen(&mut b, "0.0.0.0:7411", 4);
    let (c, prog) = standin_connect(&mut a, "10.9.0.2:7411");
    a.poll();
    assert_eq!(
        a.sockets.connect_outcome(c),
        None,
        "the peer has not answered"
    );
    assert!(
        !crate::sys::writable_now(prog.as_fd()),
        "filled: unwritable while connecting"
    );
    wait("the connection", || {
        step(&mut a);
        step(&mut b);
        a.sockets.connect_outcome(c) == Some(true)
    });
    assert!(
        crate::sys::writable_now(prog.as_fd()),
        "the filler is drained"
    );
}

/// A program that writes into a connecting socket's stand-in from another
/// thread before its `connect` has an answer (the window in which the filler
/// waits for the end of the poll) loses nothing: when the handshake does not
/// end in that poll (the listener's backlog is full), no filler goes in behind
/// the bytes, which reach the peer first and whole once it connects.
#[test]
fn bytes_written_while_the_connect_waits_go_first_and_whole() {
    let mut s = lo_stack();
    let l = listen(&mut s, "127.0.0.1:7412", 1);
    // The backlog fills up.
    let mut waiting = Vec::new();
    for _ in 0..4 {
        waiting.push(client(&mut s, "127.0.0.1:7412"));
        for_a_while(5, || step(&mut s));
    }
    let (c, mut prog) = standin_connect(&mut s, "127.0.0.1:7412");
    prog.write_all(b"early").unwrap();
    s.poll();
    assert_eq!(s.sockets.connect_outcome(c), None, "still connecting");
    let mut got = Vec::new();
    let mut accepted = Vec::new();
    wait("the early bytes", || {
        step(&mut s);
        while let Ok((a, _)) = s.accept(l) {
            accepted.push(a);
        }
        for a in &accepted {
            drain(&mut s, *a, &mut got);
        }
        got.len() >= 5
    });
    for_a_while(50, || {
        step(&mut s);
        for a in &accepted {
            drain(&mut s, *a, &mut got);
        }
    });
    assert_eq!(got, b"early", "no filler byte, nothing lost");
}

/// Connections placed in shards (home holds none here) are listed for the turn
/// by shard and by handle; once they are over, the walks drop them from those
/// lists, which news of single connections would otherwise never prune.
#[test]
fn the_turn_lists_forget_connections_that_are_over() {
    let mut s = lo_stack();
    s.ifs.get_mut(crate::iface::LO).sockets.set_home_max(0);
    let l = listen(&mut s, "127.0.0.1:7700", 64);
    let listed = |s: &Stack<PipeDevice>| s.sockets.tcp.turn.listed();
    for _ in 0..100 {
        let c = client(&mut s, "127.0.0.1:7700");
        let mut srv = None;
        wait("the connection", || {
            step(&mut s);
            if srv.is_none() {
                srv = s.accept(l).ok().map(|x| x.0);
            }
            s.is_connected(c) && srv.is_some()
        });
        s.close(c);
        s.close(srv.unwrap());
    }
    // (Walks during the loop may have dropped the first ones already.)
    let (by_shard, by_handle) = listed(&s);
    assert!(by_shard > 0 && by_handle > 0, "{by_shard} {by_handle}");
    // Past a walk (every 50 ms) of a turn that serves TCP.
    for_a_while(120, || step(&mut s));
    assert_eq!(listed(&s), (0, 0), "nothing is connected any more");
}
