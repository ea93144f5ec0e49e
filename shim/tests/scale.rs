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

/// What reaches a container from a burst of `n` datagrams sent by a kernel peer
/// while its stack is stopped (SIGSTOP), so that every frame waits in the TAP's
/// queue: the frames the kernel dropped for the TAP meanwhile (the tun ring's
/// `tx_dropped` and its qdisc's drops) and the datagrams the container's
/// program received after the stack went on.
fn burst_while_stopped(extra: &[&str], n: usize) -> (u64, usize) {
    let ns = tap_ns();
    // Linux's length, whatever a udev rule of this machine made it.
    assert!(ns.sh("ip link set tap0 txqueuelen 1000").status.success());
    let receiver = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
s.bind(("0.0.0.0", 9500))
print("ready", flush=True)
s.recv(100)
print("first", flush=True)
# The burst comes while the stack is stopped: wait for its first datagram as
# long as a loaded machine may take, then until it has been quiet for 3 s.
s.settimeout(60)
got = 0
try:
    while True:
        s.recv(100)
        got += 1
        s.settimeout(3)
except socket.timeout:
    pass
print(got, flush=True)
"#;
    let mut c = Container::new(Mode::Preload)
        .on_tap_ns(&ns)
        .args(extra)
        .exec([python(), "-c", receiver])
        .command();
    let (p, mut out) = spawn_reading(&mut c);
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    // One datagram first, with the stack running: the kernel side learns the
    // container's MAC address, so the burst is not held back for it.
    let send = |count: usize| {
        let o = ns.sh(&format!(
            "python3 -c 'import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
             for i in range({count}): s.sendto(b\"%015d\" % i, (\"{CONTAINER}\", 9500))'"
        ));
        assert!(o.status.success(), "{o:?}");
    };
    send(1);
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "first\n");
    // Frames dropped on their way to the stack: by the tun driver when its ring
    // is full (this kernel), or by the queueing layer in front of it (kernels
    // whose tun holds the queue back instead).
    let dropped = || -> u64 {
        let o = ns.sh("cat /sys/class/net/tap0/statistics/tx_dropped; \
             tc -s qdisc show dev tap0 | grep -o 'dropped [0-9]*' | cut -d' ' -f2");
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .map(|n| n.parse::<u64>().unwrap())
            .sum()
    };
    let before = dropped();
    let signal = |sig: &str| {
        let st = std::process::Command::new("kill")
            .args([sig, &p.pid().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    };
    signal("-STOP");
    send(n);
    let lost = dropped() - before;
    signal("-CONT");
    line.clear();
    out.read_line(&mut line).unwrap();
    let got = line.trim().parse().unwrap_or_else(|_| panic!("{line:?}"));
    let (st, _, err) = p.wait_output(T);
    assert!(st.success(), "{err}");
    eprintln!("{extra:?}: {lost} of {n} frames dropped, {got} datagrams arrived");
    (lost, got)
}

/// A burst of 3000 frames toward a container whose stack cannot read them at once
/// (here: stopped) waits whole in the TAP's queue, which netcell raises to 4096
/// frames (`--tap-queue`), and then reaches the program. With the queue Linux
/// gives a TAP (1000, `--tap-queue 0` leaves it), the kernel drops the rest —
/// what held back 10 000 connections' echoes for retransmission timeouts.
#[test]
fn a_burst_waits_in_the_tap_queue_while_the_stack_is_busy() {
    require_root!();
    need("python3");
    let (lost, got) = burst_while_stopped(&[], 3000);
    assert_eq!(lost, 0, "frames dropped with the raised queue");
    assert!(got > 2000, "only {got} of 3000 datagrams arrived");
    let (lost, got) = burst_while_stopped(&["--tap-queue", "0"], 3000);
    assert!(
        lost >= 1500,
        "the kernel's queue of 1000 dropped only {lost} of 3000"
    );
    assert!(
        got <= 1000,
        "{got} datagrams arrived through a queue of 1000"
    );
}

/// `--tap-queue` raises a shorter queue to its value, never shortens a longer one,
/// and a value out of range, or one for a --tap-fd device, is refused with a
/// message that names it.
#[test]
fn the_tap_queue_is_raised_never_lowered() {
    require_root!();
    let qlen = |ns: &NetNs| -> u64 {
        let o = ns.sh("cat /sys/class/net/tap0/tx_queue_len");
        String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
    };
    for (set, arg, want) in [
        (1000, "2000", 2000),
        (8000, "2000", 8000),
        (1000, "0", 1000),
    ] {
        let ns = tap_ns();
        assert!(
            ns.sh(&format!("ip link set tap0 txqueuelen {set}"))
                .status
                .success()
        );
        let (st, _, err) = Container::new(Mode::Preload)
            .on_tap_ns(&ns)
            .args(["--tap-queue", arg])
            .exec(["true"])
            .run();
        assert!(st.success(), "{err}");
        assert_eq!(qlen(&ns), want, "queue {set}, --tap-queue {arg}");
    }
    // A device netcell makes gets the queue while it is still down.
    let ns = NetNs::new();
    let dev = unique("nq");
    let (st, out, err) = Container::new(Mode::Preload)
        .in_ns(&ns)
        .args(["--tap", &dev])
        .sh(&format!("cat /sys/class/net/{dev}/tx_queue_len"))
        .run();
    assert!(st.success(), "{err}");
    assert_eq!(out.trim(), "4096", "{err}");
    // A device the attach refuses is left as it was: a veth named by
    // mistake, and a TAP another reader holds.
    let ns = tap_ns();
    assert!(
        ns.sh("ip link add ve0 type veth peer name ve1 && ip link set ve0 up")
            .status
            .success()
    );
    let holder = Container::new(Mode::Preload)
        .on_tap_ns(&ns)
        .args(["--tap-queue", "0"])
        .exec(["sleep", "30"])
        .spawn();
    wait_for(T, "the first reader", || {
        let o = ns.sh("cat /sys/class/net/tap0/carrier");
        (String::from_utf8_lossy(&o.stdout).trim() == "1").then_some(())
    });
    for dev in ["ve0", "tap0"] {
        let (st, _, err) = Container::new(Mode::Preload)
            .in_ns(&ns)
            .args(["--tap", dev])
            .exec(["true"])
            .run();
        assert_eq!(st.code(), Some(125), "{dev}: {err}");
        let o = ns.sh(&format!("cat /sys/class/net/{dev}/tx_queue_len"));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            "1000",
            "{dev}: {err}"
        );
    }
    drop(holder);
    for (arg, want) in [
        ("300000", "300000 is more than 65536 frames"),
        ("many", "'many' is not a number"),
    ] {
        let (st, _, err) = Container::new(Mode::Preload)
            .on_tap_ns(&ns)
            .args(["--tap-queue", arg])
            .exec(["true"])
            .run();
        assert_eq!(st.code(), Some(2), "{arg}: {err}");
        assert!(err.contains(want), "{arg}: {err}");
    }
    // A --tap-fd device keeps its owner's queue: asking for one there is an
    // error, not silently ignored.
    let (st, _, err) = Container::new(Mode::Preload)
        .args(["--tap-fd", "3", "--tap-queue", "100"])
        .exec(["true"])
        .run();
    assert_eq!(st.code(), Some(2), "{err}");
    assert!(
        err.contains("'--tap-fd <FD[,KEY=VALUE]...>' cannot be used with '--tap-queue"),
        "{err}"
    );
}
