//! Frames from the TAP: whatever the wire brings, into a container's stack that
//! has a listener, an established connection, UDP endpoints of both families, a
//! multicast membership, a packet filter with connection tracking, and a capture
//! running. The input is frames, each a 2-byte big-endian length and its bytes
//! (`seeds/frames/`, recorded from real traffic with `seeds/record-frames.sh`,
//! are in this form and use its addresses).
//!
//! The first byte's low bit chooses how the container's sockets are kept: all in
//! one smoltcp set, or every connection placed in a shard of its own tuple (see
//! `netcell_stack::iface::shards`), so that frames go through the shard routing.
//!
//! Each frame is also shown to the TAP's checksum check
//! (`netcell_stack::device::checksum`), and the stack's loss recovery
//! (`netcell_stack::iface::recovery`) sees every frame both ways.
//!
//! Invariants: nothing panics; afterwards the stack still accepts a fresh
//! connection from its peer and moves data both ways on it; it holds no more
//! TCP sockets than the listener's backlog allows (nothing leaks).

#![no_main]

use libfuzzer_sys::fuzz_target;
use netcell_proto::{Request, RequestHeader};
use netcell_stack::control::service::{Caller, serve};
use netcell_stack::device::PipeDevice;
use netcell_stack::socket::Domain;
use netcell_stack::{EthConfig, SocketConfig, SocketId, Stack};
use smoltcp::phy::{Device, TxToken};
use smoltcp::wire::EthernetAddress;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;

const BACKLOG: i32 = 128;
/// Frames per input, at most (fewer than the backlog: a fresh connection must
/// always find room).
const MAX_FRAMES: usize = 96;

fn eth(addrs: &[&str], gw: &str, mac: [u8; 6]) -> EthConfig {
    EthConfig {
        name: "eth0".into(),
        addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        gateways: vec![gw.parse().unwrap()],
        mac: Some(EthernetAddress(mac)),
        dhcp: false,
        slaac: false,
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn poll(a: &mut Stack<PipeDevice>, b: &mut Stack<PipeDevice>, mut done: impl FnMut(&mut Stack<PipeDevice>, &mut Stack<PipeDevice>) -> bool) -> bool {
    for _ in 0..2000 {
        a.poll();
        b.poll();
        if done(a, b) {
            return true;
        }
    }
    false
}

/// A datagram socket of the control service (a real stand-in), bound, and
/// optionally joined to a group.
fn udp(stack: &mut Stack<PipeDevice>, domain: i32, sockaddr: &[u8], join: Option<(i32, i32, &[u8])>) -> Option<OwnedFd> {
    let mut fds = heapless::Vec::new();
    let req = Request::Socket { domain, ty: libc::SOCK_DGRAM, protocol: 0 };
    let ans = serve(stack, RequestHeader::default(), &req, &mut fds, Caller::default());
    let fd = ans.fd?;
    let ino = netcell_sys::inode(std::os::fd::AsFd::as_fd(&fd)).ok()?.0;
    let hdr = RequestHeader { sock: ino, ..RequestHeader::default() };
    serve(stack, hdr, &Request::Bind { addr: sockaddr }, &mut fds, Caller::default());
    if let Some((level, name, value)) = join {
        serve(stack, hdr, &Request::SetSockOpt { level, name, value }, &mut fds, Caller::default());
    }
    Some(fd)
}

fn sockaddr_in(port: u16) -> Vec<u8> {
    let mut v = vec![0u8; 16];
    v[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
    v[2..4].copy_from_slice(&port.to_be_bytes());
    v
}

fn sockaddr_in6(port: u16) -> Vec<u8> {
    let mut v = vec![0u8; 28];
    v[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
    v[2..4].copy_from_slice(&port.to_be_bytes());
    v
}

fn tcp_count(s: &mut Stack<PipeDevice>) -> usize {
    s.socket_list(libc::IPPROTO_TCP).len()
}

fn exchange(a: &mut Stack<PipeDevice>, b: &mut Stack<PipeDevice>, x: SocketId, y: SocketId) -> bool {
    let _ = a.send(x, b"ping");
    let _ = b.send(y, b"pong");
    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    poll(a, b, |a, b| {
        let mut buf = [0u8; 16];
        if let Ok(n) = a.recv(x, &mut buf) {
            got_a.extend_from_slice(&buf[..n]);
        }
        if let Ok(n) = b.recv(y, &mut buf) {
            got_b.extend_from_slice(&buf[..n]);
        }
        got_a == b"pong" && got_b == b"ping"
    })
}

fuzz_target!(|data: &[u8]| {
    // The container (a) and its peer (b, where the recording's kernel was).
    let (da, db) = PipeDevice::pair(1500);
    let mut a = Stack::new(
        Some((da, eth(&["10.66.0.2/24", "fd66::2/64"], "10.66.0.1", [2, 0x6e, 0x63, 0, 0, 2]))),
        SocketConfig::default(),
    )
    .unwrap();
    let mut b = Stack::new(
        Some((db, eth(&["10.66.0.1/24", "fd66::1/64"], "10.66.0.2", [2, 0x6e, 0x63, 0, 0, 1]))),
        SocketConfig::default(),
    )
    .unwrap();
    if data.first().is_some_and(|b| b & 1 == 1) {
        a.set_shard_home_max(0);
    }
    // The filter: stateful, with a reject; a capture to nowhere.
    {
        let text = "policy ip input accept\n\
                    input ct state established,related accept\n\
                    input tcp dport 9 reject with tcp reset\n\
                    input udp dport 7 drop\n";
        let set = netcell_stack::filter::parse::parse_ruleset(text).unwrap();
        a.interfaces().filter().borrow_mut().replace(set);
    }
    let _ = a.start_capture(Box::new(std::io::sink()));
    // Listeners on 8080 (both families), an established connection to b:8000.
    let l = a.tcp_socket(Domain::Inet6).unwrap();
    a.bind(l, addr("[::]:8080")).unwrap();
    a.listen(l, BACKLOG).unwrap();
    let bl = b.tcp_socket(Domain::Inet).unwrap();
    b.bind(bl, addr("0.0.0.0:8000")).unwrap();
    b.listen(bl, 8).unwrap();
    let c = a.tcp_socket(Domain::Inet).unwrap();
    let _ = a.connect(c, addr("10.66.0.1:8000"));
    let mut peer = None;
    assert!(poll(&mut a, &mut b, |a, b| {
        if peer.is_none() {
            peer = b.accept(bl).ok().map(|(s, _)| s);
        }
        a.is_connected(c) && peer.is_some()
    }));
    let group4 = [224u8, 0, 0, 251, 0, 0, 0, 0];
    let _u4 = udp(&mut a, libc::AF_INET, &sockaddr_in(5353), Some((libc::IPPROTO_IP, libc::IP_ADD_MEMBERSHIP, &group4)));
    let _u6 = udp(&mut a, libc::AF_INET6, &sockaddr_in6(5354), None);
    let baseline = tcp_count(&mut a);

    // The frames, as b's wire delivers them.
    let mut d = data;
    let mut n = 0;
    while d.len() >= 2 && n < MAX_FRAMES {
        let len = usize::from(u16::from_be_bytes([d[0], d[1]])).min(d.len() - 2);
        let frame = &d[2..2 + len];
        d = &d[2 + len..];
        n += 1;
        // The TAP's check of frames the kernel did not vouch for sees it too.
        let _ = netcell_stack::device::checksum::holds(frame);
        let now = smoltcp::time::Instant::from_millis(0);
        if let Some(tx) = b.devices_mut()[0].transmit(now) {
            if frame.len() <= 1514 {
                tx.consume(frame.len(), |buf| buf.copy_from_slice(frame));
            }
        }
        a.poll();
    }
    // The peer announces itself again (the frames may have said another MAC
    // holds its address: a wire that lies is obeyed, as Linux updates a
    // neighbour from a reply).
    let mut arp = vec![2, 0x6e, 0x63, 0, 0, 2, 2, 0x6e, 0x63, 0, 0, 1, 8, 6, 0, 1, 8, 0, 6, 4, 0, 2];
    arp.extend_from_slice(&[2, 0x6e, 0x63, 0, 0, 1, 10, 66, 0, 1, 2, 0x6e, 0x63, 0, 0, 2, 10, 66, 0, 2]);
    let now = smoltcp::time::Instant::from_millis(0);
    if let Some(tx) = b.devices_mut()[0].transmit(now) {
        tx.consume(arp.len(), |buf| buf.copy_from_slice(&arp));
    }
    for _ in 0..8 {
        a.poll();
        b.poll();
    }

    // Still serving: a fresh connection, and data both ways on it.
    let fresh = b.tcp_socket(Domain::Inet).unwrap();
    let _ = b.connect(fresh, addr("10.66.0.2:8080"));
    let mut acc = None;
    assert!(
        poll(&mut a, &mut b, |a, b| {
            if acc.is_none() {
                acc = a.accept(l).ok().map(|(s, _)| s);
            }
            acc.is_some() && b.is_connected(fresh)
        }),
        "no fresh connection after the frames"
    );
    assert!(exchange(&mut a, &mut b, acc.unwrap(), fresh), "no data on the fresh connection");
    // Nothing leaked: the half-open and accepted connections the frames made
    // are at most one per frame, and the fresh one.
    let after = tcp_count(&mut a);
    assert!(after <= baseline + n + 1, "{after} TCP sockets after {n} frames (from {baseline})");
    let _ = peer;
});
