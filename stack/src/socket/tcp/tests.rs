//! Unit tests of the TCP core: listening and the backlog (`listen.rs` and the
//! ingress hook), orphans (`orphan.rs`), the per-poll pump with Nagle's rule and
//! `TCP_CORK` (`pump.rs`), and the calls of `mod.rs` (bind, connect, shutdown,
//! close).
//!
//! Stacks are built in memory: one stack alone (`lo` only), or two stacks joined
//! by a [`PipeDevice`] pair whose ends are wrapped in a [`Rec`] that records every
//! TCP segment a stack transmits, so that tests can count segments and see RSTs
//! and FINs on the wire. Sockets with a stand-in are driven as the event loop
//! would drive them: [`kick`] reports every stand-in readable and writable and
//! notices hang-ups before each poll.

use super::*;
use crate::device::PipeDevice;
use crate::iface::{ETH, EthConfig};
use crate::socket::{Domain, IoError, SocketConfig};
use crate::stack::Stack;
use smoltcp::phy::{self, Device, DeviceCapabilities};
use smoltcp::wire::{EthernetFrame, EthernetProtocol, Ipv4Packet, TcpPacket};
use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::rc::Rc;

// ---- In-memory devices and stacks. ----

/// One TCP segment a stack transmitted.
#[derive(Clone, Copy, Debug)]
struct Seg {
    dst_port: u16,
    syn: bool,
    fin: bool,
    rst: bool,
    len: usize,
}

fn parse_seg(frame: &[u8]) -> Option<Seg> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if ip.next_header() != IpProtocol::Tcp {
        return None;
    }
    let t = TcpPacket::new_checked(ip.payload()).ok()?;
    Some(Seg {
        dst_port: t.dst_port(),
        syn: t.syn(),
        fin: t.fin(),
        rst: t.rst(),
        len: t.payload().len(),
    })
}

/// What a [`Rec`] saw its stack transmit.
#[derive(Clone, Default)]
struct Wire(Rc<RefCell<Vec<Seg>>>);

impl Wire {
    fn clear(&self) {
        self.0.borrow_mut().clear();
    }

    fn segs(&self) -> Vec<Seg> {
        self.0.borrow().clone()
    }

    /// Payload lengths of the segments that carried data.
    fn data(&self) -> Vec<usize> {
        self.segs()
            .iter()
            .filter(|s| s.len > 0)
            .map(|s| s.len)
            .collect()
    }

    fn rsts(&self) -> usize {
        self.segs().iter().filter(|s| s.rst).count()
    }

    fn fins(&self) -> usize {
        self.segs().iter().filter(|s| s.fin).count()
    }
}

/// A pipe end that records the TCP segments transmitted through it.
struct Rec {
    dev: PipeDevice,
    wire: Wire,
}

struct RecTx<'a, T> {
    inner: T,
    wire: &'a Wire,
}

impl Device for Rec {
    type RxToken<'a> = <PipeDevice as Device>::RxToken<'a>;
    type TxToken<'a> = RecTx<'a, <PipeDevice as Device>::TxToken<'a>>;

    fn receive(&mut self, now: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let (rx, tx) = self.dev.receive(now)?;
        Some((
            rx,
            RecTx {
                inner: tx,
                wire: &self.wire,
            },
        ))
    }

    fn transmit(&mut self, now: Instant) -> Option<Self::TxToken<'_>> {
        Some(RecTx {
            inner: self.dev.transmit(now)?,
            wire: &self.wire,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.dev.capabilities()
    }
}

impl<T: phy::TxToken> phy::TxToken for RecTx<'_, T> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let wire = self.wire;
        self.inner.consume(len, |buf| {
            let r = f(buf);
            if let Some(s) = parse_seg(buf) {
                wire.0.borrow_mut().push(s);
            }
            r
        })
    }
}

/// A stack with `lo` only.
fn lo_stack() -> Stack<PipeDevice> {
    lo_stack_with(SocketConfig::default())
}

fn lo_stack_with(cfg: SocketConfig) -> Stack<PipeDevice> {
    Stack::new(None, cfg).unwrap()
}

/// Two stacks on one Ethernet in memory: `a` is 10.9.0.1, `b` is 10.9.0.2, each
/// with the wire of what it transmits.
fn pair() -> (Stack<Rec>, Wire, Stack<Rec>, Wire) {
    let (da, db) = PipeDevice::pair(1500);
    let cfg = |a: &str| EthConfig {
        name: "eth0".into(),
        addrs: vec![a.parse().unwrap()],
        gateways: vec![],
        mac: None,
    };
    let (wa, wb) = (Wire::default(), Wire::default());
    let a = Stack::new(
        Some((
            Rec {
                dev: da,
                wire: wa.clone(),
            },
            cfg("10.9.0.1/24"),
        )),
        SocketConfig::default(),
    )
    .unwrap();
    let b = Stack::new(
        Some((
            Rec {
                dev: db,
                wire: wb.clone(),
            },
            cfg("10.9.0.2/24"),
        )),
        SocketConfig::default(),
    )
    .unwrap();
    (a, wa, b, wb)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// What the event loop does before it polls: every stand-in is reported readable
/// and writable (spurious readiness is harmless), hang-ups are noticed.
fn kick<D: Device>(s: &mut Stack<D>) {
    let ids = s.sockets.take_ids();
    for id in &ids {
        s.sockets.standin_event(id.index(), true, true, false);
    }
    s.sockets.give_back_ids(ids);
    s.sockets.notice_hangups();
}

/// One turn of the event loop of a stack.
fn step<D: Device>(s: &mut Stack<D>) {
    kick(s);
    s.poll();
}

/// Calls `f` until it returns true; fails after 10 s.
fn wait(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = std::time::Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
}

/// Calls `f` repeatedly for `ms` milliseconds.
fn for_a_while(ms: u64, mut f: impl FnMut()) {
    let t0 = std::time::Instant::now();
    while t0.elapsed() < std::time::Duration::from_millis(ms) {
        f();
        std::thread::sleep(std::time::Duration::from_micros(500));
    }
}

fn listen<D: Device>(s: &mut Stack<D>, at: &str, backlog: i32) -> SocketId {
    let l = s.tcp_socket(Domain::Inet).unwrap();
    s.bind(l, addr(at)).unwrap();
    s.listen(l, backlog).unwrap();
    l
}

/// A client of the embedding API whose connect is under way.
fn client<D: Device>(s: &mut Stack<D>, to: &str) -> SocketId {
    let c = s.tcp_socket(Domain::Inet).unwrap();
    assert_eq!(s.connect(c, addr(to)), Err(ConnectError::InProgress));
    c
}

fn listener<D: Device>(s: &Stack<D>, id: SocketId) -> &Listener {
    match &s.sockets.get(id).expect("no such socket").proto {
        Proto::Tcp(TcpState::Listening(l)) => l,
        _ => panic!("socket {} is not listening", id.index()),
    }
}

/// The smoltcp state of a connected socket of the table.
fn conn_state<D: Device>(s: &Stack<D>, id: SocketId) -> State {
    match &s.sockets.get(id).expect("no such socket").proto {
        Proto::Tcp(TcpState::Connected(c) | TcpState::Connecting(c)) => s
            .ifs
            .get(c.iface)
            .sockets
            .get::<tcp::Socket<'static>>(c.handle)
            .state(),
        _ => panic!("socket {} has no connection", id.index()),
    }
}

/// Bytes in a connection's smoltcp send buffer (unsent or unacknowledged).
fn send_queue<D: Device>(s: &Stack<D>, id: SocketId) -> usize {
    match &s.sockets.get(id).expect("no such socket").proto {
        Proto::Tcp(TcpState::Connected(c)) => s
            .ifs
            .get(c.iface)
            .sockets
            .get::<tcp::Socket<'static>>(c.handle)
            .send_queue(),
        _ => panic!("socket {} is not connected", id.index()),
    }
}

/// The smoltcp states of the orphans.
fn orphan_states<D: Device>(s: &Stack<D>) -> Vec<State> {
    s.sockets
        .tcp
        .orphans
        .iter()
        .map(|o| {
            s.ifs
                .get(o.iface)
                .sockets
                .get::<tcp::Socket<'static>>(o.handle)
                .state()
        })
        .collect()
}

/// Whether a new socket may bind `a` (no `SO_REUSEADDR`): the port is free.
fn port_free<D: Device>(s: &mut Stack<D>, a: SocketAddr) -> bool {
    let t = s.tcp_socket(Domain::Inet).unwrap();
    let ok = s.bind(t, a).is_ok();
    s.close(t);
    ok
}

fn set_int<D: Device>(s: &mut Stack<D>, id: SocketId, level: i32, name: i32, v: i32) {
    s.setsockopt(id, level, name, &v.to_ne_bytes()).unwrap();
}

/// The socket layer's timers seen `secs` seconds from now (smoltcp's clock is
/// left alone): orphan limits, connect deadlines.
fn service_later<D: Device>(s: &mut Stack<D>, secs: u64) {
    let later = s.now() + Duration::from_secs(secs);
    s.sockets.service(&mut s.ifs, later);
}

/// Reads what the embedding API has for `id` into `got`; true at end of stream.
fn drain<D: Device>(s: &mut Stack<D>, id: SocketId, got: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match s.recv(id, &mut buf) {
            Ok(0) => return true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(IoError::WouldBlock) => return false,
            Err(e) => panic!("recv: {e:?}"),
        }
    }
}

/// `b` listening on `port` (backlog 4), `a` connected to it from the embedding API;
/// returns the client and the accepted connection.
fn connected_pair(
    a: &mut Stack<Rec>,
    b: &mut Stack<Rec>,
    port: u16,
    listener_opts: impl FnOnce(&mut Stack<Rec>, SocketId),
) -> (SocketId, SocketId) {
    let l = b.tcp_socket(Domain::Inet).unwrap();
    listener_opts(b, l);
    b.bind(l, SocketAddr::new("0.0.0.0".parse().unwrap(), port))
        .unwrap();
    b.listen(l, 4).unwrap();
    let c = client(a, &format!("10.9.0.2:{port}"));
    let mut srv = None;
    wait("the connection", || {
        step(a);
        step(b);
        if srv.is_none() {
            srv = b.accept(l).ok().map(|x| x.0);
        }
        a.is_connected(c) && srv.is_some()
    });
    // Let the last ACKs settle.
    for_a_while(30, || {
        step(a);
        step(b);
    });
    (c, srv.unwrap())
}

/// A socket of `a` with a stand-in, connecting to `to`; the program's end of the
/// stand-in, non-blocking.
fn standin_client<D: Device>(s: &mut Stack<D>, to: &str) -> (SocketId, UnixStream) {
    let (id, prog) = s
        .sockets
        .open(Domain::Inet, libc::SOCK_STREAM, 0, true, false)
        .unwrap();
    let prog = prog.expect("a stand-in");
    let now = s.now();
    let held_by_front_end = prog.try_clone().unwrap();
    assert_eq!(
        s.sockets.tcp_connect(
            &mut s.ifs,
            id,
            Target::Addr(addr(to)),
            Some(held_by_front_end),
            now
        ),
        Err(ConnectError::InProgress)
    );
    let prog = UnixStream::from(prog);
    prog.set_nonblocking(true).unwrap();
    (id, prog)
}

/// [`connected_pair`] with a stand-in client on `a`.
fn standin_pair(
    a: &mut Stack<Rec>,
    b: &mut Stack<Rec>,
    port: u16,
) -> (SocketId, UnixStream, SocketId) {
    let l = listen(b, &format!("0.0.0.0:{port}"), 4);
    let (c, prog) = standin_client(a, &format!("10.9.0.2:{port}"));
    let mut srv = None;
    wait("the connection", || {
        step(a);
        step(b);
        if srv.is_none() {
            srv = b.accept(l).ok().map(|x| x.0);
        }
        a.sockets.is_connected(c) && srv.is_some()
    });
    for_a_while(30, || {
        step(a);
        step(b);
    });
    (c, prog, srv.unwrap())
}

fn v4(a: &str) -> IpAddress {
    let ip: std::net::Ipv4Addr = a.parse().unwrap();
    IpAddress::Ipv4(ip)
}

/// A SYN as the ingress hook sees it.
fn syn(src: &str, src_port: u16, dst: &str, dst_port: u16) -> PacketInfo {
    PacketInfo {
        src: v4(src),
        dst: v4(dst),
        proto: IpProtocol::Tcp,
        src_port,
        dst_port,
        syn: true,
        ack: false,
        icmp_error: None,
    }
}

// ---- Listening and the backlog. ----

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
    s.listen(l, 0).unwrap();
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

// ---- connect, bind, shutdown. ----

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
            .all(|p| super::super::ports::EPHEMERAL.contains(p)),
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
    assert!(super::super::ports::EPHEMERAL.contains(&at.port()));
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
        s.sockets
            .tcp_connect(&mut s.ifs, c, Target::Addr(addr("127.0.0.1:9")), None, now),
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
        Err(ConnectError::Refused),
        "a later connect repeats the failure"
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
        Err(ConnectError::TimedOut)
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
            now
        ),
        Err(ConnectError::InProgress)
    );
    assert_eq!(
        s.sockets.tcp_connect(
            &mut s.ifs,
            c2,
            Target::Addr(addr("127.0.0.1:7204")),
            None,
            now
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

// ---- Orphans. ----

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

// ---- The pump: stand-ins, Nagle, TCP_CORK. ----

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
    let mss = 1500 - 40;
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
    assert!(wa.data().contains(&1460), "{:?}", wa.data());
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
