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
    ack: bool,
    fin: bool,
    rst: bool,
    len: usize,
    /// The timestamp option's value and echo.
    ts: Option<(u32, u32)>,
    /// The window scale option (SYNs only).
    ws: Option<u8>,
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
    let (src, dst) = (ip.src_addr().into(), ip.dst_addr().into());
    let caps = smoltcp::phy::ChecksumCapabilities::ignored();
    let repr = smoltcp::wire::TcpRepr::parse(&t, &src, &dst, &caps).ok()?;
    Some(Seg {
        dst_port: t.dst_port(),
        syn: t.syn(),
        ack: t.ack(),
        fin: t.fin(),
        rst: t.rst(),
        len: t.payload().len(),
        ts: repr.timestamp.map(|ts| (ts.tsval, ts.tsecr)),
        ws: repr.window_scale,
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
        dhcp: false,
        slaac: false,
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
        s.sockets
            .standin_event(id.key(), (true, true, false, false));
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
    let conn = connect_to(a, b, l, port);
    // Let the last ACKs settle.
    for_a_while(30, || {
        step(a);
        step(b);
    });
    conn
}

/// `a` connects to 10.9.0.2:`port`, where `b` listens with socket `l`; returns
/// the client and the accepted connection.
fn connect_to(
    a: &mut Stack<Rec>,
    b: &mut Stack<Rec>,
    l: SocketId,
    port: u16,
) -> (SocketId, SocketId) {
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
    (c, srv.unwrap())
}

/// A socket of `a` with a stand-in, connecting to `to`; the program's end of the
/// stand-in, non-blocking.
fn standin_client<D: Device>(s: &mut Stack<D>, to: &str) -> (SocketId, UnixStream) {
    let (id, prog) = standin_connect(s, to);
    // As at the end of the poll that follows a front end's connect.
    s.sockets.settle_connects();
    (id, prog)
}

/// A stand-in client's connect as the front end makes it, before the poll
/// that follows.
fn standin_connect<D: Device>(s: &mut Stack<D>, to: &str) -> (SocketId, UnixStream) {
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
            now,
            &mut None
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
        urgent: None,
        icmp_error: None,
    }
}

mod calls;
mod listen;
mod orphan;
mod pump;
mod recycle;
