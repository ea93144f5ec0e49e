//! Closed sockets used again by listeners ([`crate::iface::recycle`]).

use super::*;

/// Closes both ends of a connection and waits until `b`'s socket is kept.
fn close_both(a: &mut Stack<Rec>, c: SocketId, b: &mut Stack<Rec>, srv: SocketId) {
    a.close(c);
    b.close(srv);
    wait("the closed socket kept", || {
        step(a);
        step(b);
        !b.ifs.recycled().borrow().is_empty()
    });
}

/// A listener's next connection takes a socket a closed connection left, and
/// what it sends echoes the new peer's timestamp, never the old one's; the
/// connection carries data both ways like a new one.
#[test]
fn a_listener_uses_a_closed_socket_again_and_echoes_only_the_new_peer() {
    let (mut a, wa, mut b, wb) = pair();
    let (c, srv) = connected_pair(&mut a, &mut b, 80, |_, _| {});
    assert_eq!(a.send(c, b"first").unwrap(), 5);
    let mut got = Vec::new();
    wait("the first bytes", || {
        step(&mut a);
        step(&mut b);
        drain(&mut b, srv, &mut got);
        got == b"first"
    });
    close_both(&mut a, c, &mut b, srv);
    let taken = b.ifs.recycled().borrow().taken();
    let old_ts = wa
        .segs()
        .iter()
        .filter_map(|s| s.ts)
        .map(|t| t.0)
        .max()
        .expect("a's segments carry timestamps");
    // Timestamps count milliseconds: the next connection's are newer.
    std::thread::sleep(std::time::Duration::from_millis(20));
    wa.clear();
    wb.clear();

    let (c2, srv2) = connected_pair(&mut a, &mut b, 81, |_, _| {});
    assert!(
        b.ifs.recycled().borrow().taken() > taken,
        "the listener took a kept socket"
    );
    let syn = wa.segs().into_iter().find(|s| s.syn && !s.ack).unwrap();
    let syn_ack = wb.segs().into_iter().find(|s| s.syn && s.ack).unwrap();
    let (syn_val, _) = syn.ts.expect("the SYN has a timestamp");
    assert!(syn_val > old_ts, "{syn_val} after {old_ts}");
    assert_eq!(
        syn_ack.ts.map(|t| t.1),
        Some(syn_val),
        "the SYN-ACK echoes the new SYN's timestamp"
    );
    for s in wb.segs() {
        if let Some((_, echo)) = s.ts {
            assert!(echo >= syn_val, "{s:?} echoes an old timestamp");
        }
    }
    assert_eq!(b.send(srv2, b"second").unwrap(), 6);
    assert_eq!(a.send(c2, b"back").unwrap(), 4);
    let (mut at_a, mut at_b) = (Vec::new(), Vec::new());
    wait("the second connection's bytes", || {
        step(&mut a);
        step(&mut b);
        drain(&mut a, c2, &mut at_a);
        drain(&mut b, srv2, &mut at_b);
        at_a == b"second" && at_b == b"back"
    });
}

/// A connecting socket is always new: its SYN would echo the old peer's
/// timestamp (see the module docs of `iface::recycle`).
#[test]
fn a_connect_never_takes_a_kept_socket() {
    let (mut a, wa, mut b, _wb) = pair();
    // b accepts a connection from a and closes it: b keeps the socket.
    let (c, srv) = connected_pair(&mut a, &mut b, 80, |_, _| {});
    close_both(&mut a, c, &mut b, srv);
    let taken = b.ifs.recycled().borrow().taken();
    // Now b connects out to a listener of a.
    let l = listen(&mut a, "0.0.0.0:90", 4);
    wa.clear();
    let c2 = client(&mut b, "10.9.0.1:90");
    wait("b's connection", || {
        step(&mut a);
        step(&mut b);
        let _ = a.accept(l);
        b.is_connected(c2)
    });
    assert_eq!(b.ifs.recycled().borrow().taken(), taken, "nothing taken");
}

/// Kept sockets count against the buffer limit: new buffers that would pass it
/// with them free them first.
#[test]
fn kept_sockets_make_room_for_new_buffers() {
    let s = lo_stack();
    let closed = || {
        tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 1 << 20]),
            tcp::SocketBuffer::new(vec![0; 1 << 20]),
        )
    };
    for _ in 0..2 {
        s.ifs
            .recycled()
            .borrow_mut()
            .put(closed(), std::time::Instant::now());
    }
    let limit = 6 << 20;
    // 4 MiB kept + 2 MiB new: at the limit, kept.
    crate::socket::budget::make_room(&s.ifs, 2 << 20, limit);
    assert_eq!(s.ifs.recycled().borrow().len(), 2);
    // One byte more: freed.
    crate::socket::budget::make_room(&s.ifs, (2 << 20) + 1, limit);
    assert!(s.ifs.recycled().borrow().is_empty());
}
