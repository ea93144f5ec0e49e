//! Many connections in one container: the stack spreads them over socket sets
//! ("shards", see `netcell_stack::iface::shards`) once an interface holds more
//! than a few, and every byte must still reach its own connection.

mod common;

use common::*;
use std::io::BufRead;

/// 300 connections to the container's own loopback server and 300 to a kernel
/// peer over the TAP, with `NETCELL_SHARD_HOME_MAX=8` so that nearly all of them
/// are placed in shards: each gets exactly its own bytes back, before and after
/// half of them close, with 3000-byte messages too.
fn many_connections_each_get_their_own_bytes(mode: Mode) {
    require_root!();
    let ns = tap_ns();
    let (_server, mut out) =
        spawn_reading(
            ns.cmd("python3")
                .args([&py("many_conns.py"), "serve", KERNEL, "9400"]),
        );
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "listening\n");
    let (st, out, err) = Container::new(mode)
        .on_tap_ns(&ns)
        .env("NETCELL_SHARD_HOME_MAX", "8")
        .args(["--max-sockets", "4000"])
        .exec([python(), &py("many_conns.py"), KERNEL, "9400", "300"])
        .run();
    assert!(st.success(), "{out} {err}");
    assert_eq!(out, "ok 300\n", "{err}");
}

in_both_modes!(many_connections_each_get_their_own_bytes);

/// A raw socket of protocol TCP sees copies of every segment, also of
/// connections placed in shards (`NETCELL_SHARD_HOME_MAX=0`: all of them): the
/// SYN (home's listener), the SYN-ACK and the data (placed connections).
fn raw_tcp_sockets_see_placed_connections(mode: Mode) {
    require_root!();
    let out = same_as_the_host(
        Container::new(mode).env("NETCELL_SHARD_HOME_MAX", "0"),
        "raw_tcp.py",
        &[],
    );
    assert!(
        out.contains("raw tcp saw ['SYN', 'SYN-ACK', 'data']\n"),
        "{out}"
    );
}

in_both_modes!(raw_tcp_sockets_see_placed_connections);

/// The TTL and TOS of a received datagram reach the program while the
/// interface's frames are routed to shards (they travel with the frame's copy).
fn datagram_fields_survive_routing(mode: Mode) {
    let out = same_as_the_host(
        Container::new(mode).env("NETCELL_SHARD_HOME_MAX", "0"),
        "spread_udp_fields.py",
        &[],
    );
    assert!(
        out.contains("b'fields' [('tos', 40), ('ttl', 7)]\n"),
        "{out}"
    );
}

in_both_modes!(datagram_fields_survive_routing);

/// A peer that connects again from the same port once the first connection is
/// over (closed both ways, the container's side through TIME-WAIT) reaches the
/// listener in home: the tuple's old entry must not steer its SYN to a shard
/// where nothing takes it.
fn a_tuple_reused_after_a_finished_connection_reaches_the_listener(mode: Mode) {
    require_root!();
    let ns = tap_ns();
    let server = r#"
import socket
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("0.0.0.0", 9500))
l.listen()
print("listening", flush=True)
c1, _ = l.accept()
c1.shutdown(socket.SHUT_WR)
while c1.recv(100):
    pass
print("closed both ways", flush=True)
l.settimeout(40)
c2, a = l.accept()
print("second from", a[1], c2.recv(10), flush=True)
c1.close()
"#;
    let mut cmd = Container::new(mode)
        .on_tap_ns(&ns)
        .env("NETCELL_SHARD_HOME_MAX", "0")
        .exec([python(), "-c", server])
        .command();
    let (_p, mut out) = spawn_reading(&mut cmd);
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "listening\n");
    let client = format!(
        r#"
import socket, time
def conn():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("{KERNEL}", 40123))
    s.settimeout(5)
    s.connect(("{CONTAINER}", 9500))
    return s
s = conn()
while s.recv(100):
    pass
s.close()
# The container's side sits in TIME-WAIT for smoltcp's 10 s, then CLOSED.
time.sleep(11)
try:
    s = conn()
    s.sendall(b"again")
    print("reconnected", flush=True)
except OSError as e:
    print("reconnect failed", e, flush=True)
time.sleep(1)
"#
    );
    let (st, cout, cerr) = run(ns.cmd("python3").args(["-c", &client]));
    assert!(st.success(), "{cout} {cerr}");
    assert_eq!(cout, "reconnected\n", "{cerr}");
    let mut rest = String::new();
    for _ in 0..2 {
        out.read_line(&mut rest).unwrap();
    }
    assert_eq!(rest, "closed both ways\nsecond from 40123 b'again'\n");
}

in_both_modes!(a_tuple_reused_after_a_finished_connection_reaches_the_listener);
