//! The container administers its own network: `ip` inside shows and changes the
//! container's stack, never the host's (rtnetlink served by the stack), in both
//! shim modes, against a kernel peer on the far side of the container's TAP.

mod common;

use common::*;
use std::process::Stdio;

/// `ip` shows exactly the devices, addresses and routes the owner configured.
fn ip_shows_the_container_s_own_network(mode: Mode) {
    require_root!();
    need("ip");
    let ns = tap_ns();
    let (st, out, err) = Container::new(mode)
        .tap(&ns, "tap0", &[CONTAINER_CIDR])
        .gateway(KERNEL)
        .args(["--mac", "52:54:00:12:34:56", "--mtu", "1400"])
        .sh("ip -j addr; echo; ip route; ip -4 -o addr | cut -d' ' -f2,7; ip -o link | cut -d: -f2")
        .run();
    assert!(st.success(), "{out}\n{err}");
    assert!(!out.contains("tap0"), "a host interface shows: {out}");
    for want in [
        "\"ifname\":\"lo\"",
        "\"ifname\":\"eth0\"",
        "\"mtu\":1400",
        "\"address\":\"52:54:00:12:34:56\"",
        "\"local\":\"10.88.0.2\",\"prefixlen\":24",
        "\"local\":\"fe80::5054:ff:fe12:3456\",\"prefixlen\":64",
        "\"local\":\"127.0.0.1\",\"prefixlen\":8",
    ] {
        assert!(out.contains(want), "{want}: {out}");
    }
    let text: Vec<&str> = out.lines().skip_while(|l| !l.is_empty()).skip(1).collect();
    assert_eq!(
        text,
        [
            "10.88.0.0/24 dev eth0 proto kernel scope link src 10.88.0.2 ",
            "default via 10.88.0.1 dev eth0 ",
            "lo 127.0.0.1/8",
            "eth0 10.88.0.2/24",
            " lo",
            " eth0",
        ],
        "{out}"
    );
}

/// Changes made with `ip` act on the stack: a new address is the source of a new
/// connection to its subnet (the kernel peer sees it), a link set down makes
/// connects fail with `ENETUNREACH` and up restores them, the default route goes
/// and comes back, and `ip monitor` sees the address change.
fn ip_changes_act_on_the_container_s_stack(mode: Mode) {
    require_root!();
    need("ip");
    need("curl");
    let ns = tap_ns();
    let o = ns.sh("ip addr add 10.89.0.1/24 dev tap0");
    assert!(o.status.success());
    let www = Scratch::new();
    std::fs::write(www.path("index.html"), "peer\n").unwrap();
    let log = www.path("access.log");
    let mut srv = ns.cmd("python3");
    srv.args([
        "-m",
        "http.server",
        "8000",
        "--bind",
        "0.0.0.0",
        "--directory",
    ])
    .arg(&www.0)
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&log).unwrap());
    let _srv = Proc::spawn(&mut srv);
    wait_for(T, "the kernel's server", || {
        ns.sh("curl -sf http://10.89.0.1:8000/")
            .status
            .success()
            .then_some(())
    });
    let script = "\
        ip monitor address > $NCDIR/mon & m=$!; sleep 0.3; \
        ip addr add 10.89.0.2/24 dev eth0 && echo added; \
        curl -s http://10.89.0.1:8000/; \
        ip link set dev eth0 down && echo down; \
        python3 -c 'import socket,errno\ntry: socket.create_connection((\"10.89.0.1\", 8000), timeout=2)\nexcept OSError as e: print(\"connect\", errno.errorcode[e.errno])'; \
        ip link set dev eth0 up && echo up; \
        curl -s http://10.89.0.1:8000/; \
        ip route del default && ip route | grep -c default; \
        ip route add default via 10.88.0.1 && ip route | grep default; \
        ip addr del 10.89.0.2/24 dev eth0 && echo deleted; \
        sleep 0.3; kill $m; sed 's/^/monitor /' $NCDIR/mon";
    let dir = Scratch::new();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (_, out, err) = Container::new(mode)
        .tap(&ns, "tap0", &[CONTAINER_CIDR])
        .gateway(KERNEL)
        .env("NCDIR", &dir.0)
        .sh(script)
        .run();
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(
        &got[..9],
        [
            "added",
            "peer",
            "down",
            "connect ENETUNREACH",
            "up",
            "peer",
            "0",
            "default via 10.88.0.1 dev eth0 ",
            "deleted",
        ],
        "{out}\n{err}"
    );
    assert!(
        out.contains("monitor 2: eth0    inet 10.89.0.2/24")
            && out.contains("monitor Deleted 2: eth0    inet 10.89.0.2/24"),
        "ip monitor: {out}"
    );
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.lines().any(|l| l.starts_with("10.89.0.2 - - ")),
        "the peer saw the new address as the source: {log}"
    );
}

/// Two TAPs: each device's subnet is reached on it with its own address as the
/// source, the default route goes through eth0, a more specific route added with
/// `ip` inside sends its prefix through eth1 (and its removal sends it back),
/// and each device keeps its own MTU. Bad device options are refused with the
/// offending value.
fn several_devices_route_by_longest_prefix(mode: Mode) {
    require_root!();
    need("ip");
    let ns = NetNs::new()
        .with_tap("tap0", &format!("{KERNEL}/24"), 1500)
        .with_tap("tap1", "10.77.0.1/24", 9000);
    // 192.0.2.1 is the kernel's on both paths; only the source address (and so
    // the device the connection left on) tells them apart.
    let o = ns.sh("ip addr add 192.0.2.1/32 dev lo");
    assert!(o.status.success());
    let server = r#"
import socket
l = socket.socket(); l.bind(("0.0.0.0", 0)); l.listen(16)
print(l.getsockname()[1], flush=True)
while True:
    c, a = l.accept()
    c.sendall(("%s %d" % (a[0], c.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG))).encode())
    c.close()
"#;
    let mut srv = ns.cmd("python3");
    srv.args(["-c", server]).stdout(Stdio::piped());
    let mut srv = Proc::spawn(&mut srv);
    let mut lines =
        std::io::BufRead::lines(std::io::BufReader::new(srv.child.stdout.take().unwrap()));
    let port: u16 = lines.next().unwrap().unwrap().trim().parse().unwrap();
    let script = format!(
        r#"
seen() {{ /usr/bin/python3 -c "import socket,sys; s=socket.create_connection((sys.argv[1], {port}), timeout=5); print(sys.argv[1], 'from', s.recv(64).decode())" "$1" || echo "$1 failed"; }}
ip -o addr | awk '{{print $2, $4}}'
ip route
ip -o link | awk '{{print $2, $5}}'
seen {KERNEL}; seen 10.77.0.1; seen 192.0.2.1
ip route add 192.0.2.0/24 via 10.77.0.1 && echo added
ip route | grep 192.0.2
seen 192.0.2.1; seen 192.0.2.9
ip route del 192.0.2.0/24 && echo removed
seen 192.0.2.1
ip link set dev eth1 mtu 1280 && echo mtu set
ip link set dev eth1 mtu 9001 || echo mtu refused
ip link set dev eth1 name wan || echo rename refused
ip link set dev eth1 down && ip link set dev eth1 name wan && ip link set dev wan up && echo renamed
ip -o link | awk '{{print $2, $5}}'
seen 10.77.0.1
"#
    );
    let (st, out, err) = Container::new(mode)
        .in_ns(&ns)
        .args([
            "--tap",
            "tap0",
            "--addr",
            CONTAINER_CIDR,
            "--gateway",
            KERNEL,
        ])
        .args(["--tap", "tap1,addr=10.77.0.2/24,mtu=9000"])
        .sh(&script)
        .run();
    assert!(st.success(), "{out}\n{err}");
    for want in [
        "eth0 10.88.0.2/24",
        "eth1 10.77.0.2/24",
        "10.88.0.0/24 dev eth0 proto kernel scope link src 10.88.0.2",
        "10.77.0.0/24 dev eth1 proto kernel scope link src 10.77.0.2",
        "default via 10.88.0.1 dev eth0",
        "eth0: 1500",
        "eth1: 9000",
        "added",
        "192.0.2.0/24 via 10.77.0.1 dev eth1 \n",
        "removed",
    ] {
        assert!(out.contains(want), "{want}: {out}\n{err}");
    }
    // (Each line: the address reached, the source the kernel saw, the kernel's
    // MSS for the connection.)
    let seen: Vec<&str> = out
        .lines()
        .filter(|l| l.contains(" from ") || l.ends_with("failed"))
        .collect();
    let mss = |l: &str| -> u32 { l.rsplit(' ').next().unwrap().parse().unwrap() };
    let without_mss: Vec<String> = seen
        .iter()
        .map(|l| match l.rsplit_once(' ') {
            Some((a, _)) if l.contains(" from ") => a.to_string(),
            _ => l.to_string(),
        })
        .collect();
    assert_eq!(
        without_mss,
        [
            "10.88.0.1 from 10.88.0.2",
            "10.77.0.1 from 10.77.0.2",
            "192.0.2.1 from 10.88.0.2",
            "192.0.2.1 from 10.77.0.2",
            "192.0.2.9 failed",
            "192.0.2.1 from 10.88.0.2",
            "10.77.0.1 from 10.77.0.2",
        ],
        "{out}\n{err}"
    );
    // eth1's MTU of 9000 and then of 1280 reach the peer as the MSS.
    assert!(mss(seen[1]) > 8000, "{out}");
    assert!(mss(seen[6]) <= 1240, "{out}");
    for want in [
        "mtu set",
        "mtu refused",
        "rename refused",
        "RTNETLINK answers: Device or resource busy",
        "renamed",
        "wan: 1280",
    ] {
        assert!(
            out.contains(want) || err.contains(want),
            "{want}: {out}\n{err}"
        );
    }
    srv.stop();
    // Device options with a wrong value are named in the error.
    for (arg, want) in [
        ("tap1,mtu=10", "10 is outside 68..=65520"),
        ("tap1,colour=red", "unknown key 'colour'"),
        (
            "tap1,addr=10.77.0.2",
            "'10.77.0.2' is not an address with a prefix length",
        ),
        ("tap1,mtu=1400,mtu=1500", "mtu= is given twice"),
    ] {
        let (st, _, err) = Container::new(mode)
            .in_ns(&ns)
            .args(["--tap", "tap0", "--tap", arg])
            .exec(["true"])
            .run();
        assert_eq!(st.code(), Some(2), "{arg}: {err}");
        assert!(err.contains(want), "{arg}: {err}");
    }
}

in_both_modes!(
    ip_shows_the_container_s_own_network,
    ip_changes_act_on_the_container_s_stack,
    several_devices_route_by_longest_prefix,
);

/// Garbage on a netlink socket gets netlink errors, and the socket (and the
/// stack) keep serving.
fn netlink_garbage_is_refused_and_serving_goes_on(mode: Mode) {
    require_root!();
    let script = r#"
import socket, struct, os
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
s.bind((0, 0))
for junk in [b"", b"\xff" * 3, struct.pack("=IHHII", 40, 18, 1, 1, 0), struct.pack("=IHHII", 16, 999, 5, 2, 0) ]:
    try:
        s.sendto(junk, (0, 0))
    except OSError as e:
        print("send", e.errno)
s.settimeout(1)
try:
    while True:
        d = s.recv(65536)
        ln, ty, fl, seq, pid = struct.unpack("=IHHII", d[:16])
        print("reply", ty, seq, struct.unpack("=i", d[16:20])[0])
except socket.timeout:
    pass
print(socket.if_nameindex())
"#;
    let (st, out, err) = Container::new(mode)
        .exec(["/usr/bin/python3", "-c", script])
        .run();
    assert!(st.success(), "{out}\n{err}");
    // The unknown type 999 with NLM_F_REQUEST|ACK: EOPNOTSUPP; the rest ignored.
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["reply 2 2 -95", "[(1, 'lo')]"],
        "{err}"
    );
}

in_both_modes!(netlink_garbage_is_refused_and_serving_goes_on);

/// `ss` inside lists the container's own sockets (over `NETLINK_SOCK_DIAG`), with
/// their processes, and not the host's: a listener of the namespace netcell runs
/// in stays out of it.
fn ss_lists_the_container_s_sockets(mode: Mode) {
    require_root!();
    need("ss");
    let ns = NetNs::new();
    let mut host = ns.cmd("python3");
    host.args([
        "-c",
        "import socket,time; s=socket.socket(); s.bind(('0.0.0.0', 8123)); s.listen(); time.sleep(60)",
    ])
    .stdout(Stdio::null());
    let _host = Proc::spawn(&mut host);
    wait_for(T, "the host listener", || {
        ns.sh("ss -ltn | grep -q ':8123 '")
            .status
            .success()
            .then_some(())
    });
    let script = "\
        python3 -c 'import socket,time\nl=socket.socket(); l.bind((\"127.0.0.1\", 8080)); l.listen()\nu=socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); u.bind((\"::\", 5353))\nc=socket.create_connection((\"127.0.0.1\", 8080)); a=l.accept(); time.sleep(3)' & \
        sleep 1; ss -Htuna | tr -s ' '; echo; ss -Htlnp | tr -s ' '";
    let (st, out, err) = Container::new(mode).in_ns(&ns).sh(script).run();
    assert!(st.success(), "{out}\n{err}");
    assert!(!out.contains("8123"), "the host's listener shows: {out}");
    let (all, listeners) = out.split_once("\n\n").unwrap_or((&out, ""));
    let mut all: Vec<&str> = all.lines().collect();
    all.sort();
    assert_eq!(all.len(), 4, "{out}");
    assert!(all[0].starts_with("tcp ESTAB 0 0 127.0.0.1:"), "{out}");
    assert!(
        all[2].starts_with("tcp LISTEN 0 0 127.0.0.1:8080 0.0.0.0:*"),
        "{out}"
    );
    assert!(all[3].starts_with("udp UNCONN 0 0 *:5353 *:*"), "{out}");
    assert!(
        listeners.starts_with("LISTEN 0 0 127.0.0.1:8080 0.0.0.0:* users:((\"python3\",pid="),
        "{out}"
    );
}

in_both_modes!(ss_lists_the_container_s_sockets);

/// The owner's side: `netcell ls` lists running containers (two here), `netcell
/// exec` runs a program in one — under its shim, reaching its private loopback,
/// with the program's exit status — and `netcell stats` counts its sockets.
fn ls_exec_and_stats_reach_running_containers(mode: Mode) {
    require_root!();
    need("curl");
    let a = unique("adm-a");
    let b = unique("adm-b");
    let _ca = Container::new(mode)
        .args(["--name", &a])
        .exec([
            "python3",
            "-m",
            "http.server",
            "8080",
            "--bind",
            "127.0.0.1",
        ])
        .quiet()
        .spawn();
    // b has an eth0 (on a TAP in a namespace of the test's) to rename below.
    let ns = tap_ns();
    let _cb = Container::new(mode)
        .on_tap_ns(&ns)
        .args(["--name", &b])
        .exec(["sleep", "30"])
        .quiet()
        .spawn();
    let listed = wait_for(T, "both containers in netcell ls", || {
        let (_, out, _) = nc(&["ls", "--json"]);
        (out.contains(&format!("\"name\":\"{a}\"")) && out.contains(&format!("\"name\":\"{b}\"")))
            .then_some(out)
    });
    assert!(
        listed.starts_with('[') && listed.trim_end().ends_with(']'),
        "{listed}"
    );
    let (_, table, _) = nc(&["ls"]);
    assert!(
        table.contains(&a) && table.contains("python3 -m http.server"),
        "{table}"
    );
    // The server is up once curl inside gets it; exec is how we look.
    let (code, out, err) = wait_for(T, "the container's server", || {
        let r = nc(&[
            "exec",
            &a,
            "--",
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://127.0.0.1:8080/",
        ]);
        (r.1 == "200").then_some(r)
    });
    assert_eq!((code, out.as_str()), (Some(0), "200"), "{err}");
    // Its loopback is its own: the other container has no such server.
    let (_, out, _) = nc(&[
        "exec",
        &b,
        "--",
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "http://127.0.0.1:8080/",
    ]);
    assert_eq!(out, "000");
    let (code, _, _) = nc(&["exec", &a, "--", "sh", "-c", "exit 7"]);
    assert_eq!(code, Some(7));
    let (code, _, err) = nc(&["exec", &a, "--", "nosuchprogram"]);
    assert_eq!(code, Some(127), "{err}");
    let (code, _, err) = nc(&["exec", "nosuchcontainer", "--", "true"]);
    assert_eq!(code, Some(125));
    assert!(
        err.contains("no running container named 'nosuchcontainer'"),
        "{err}"
    );
    let (code, out, err) = nc(&["stats", &a, "--json"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("\"tcp\":{\"listen\":1,"), "{out}");
    assert!(
        out.contains("\"devices\":{\"lo\":{\"rx_packets\":"),
        "{out}"
    );
    assert!(
        out.contains("\"recovery\":{\"prompts\":0,\"again\":0,\"probes\":0}"),
        "{out}"
    );
    // The text form: one counter per line, nested keys joined with dots.
    let (code, out, err) = nc(&["stats", &a]);
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.contains(&format!("name: {a}").as_str()), "{out}");
    assert!(lines.contains(&"tcp.listen: 1"), "{out}");
    assert!(lines.contains(&"recovery.probes: 0"), "{out}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("devices.lo.rx_packets: ")),
        "{out}"
    );
    assert!(
        lines.iter().all(|l| !l.contains('{') && !l.contains('"')),
        "{out}"
    );
    // Interface names are the container's: one named like a counter hides none
    // of them, and one with an escape sequence reaches no terminal.
    let renamed = |script: &str| {
        let (code, _, err) = nc(&["exec", &b, "--", "sh", "-c", script]);
        assert_eq!(code, Some(0), "{script}: {err}");
        nc(&["stats", &b]).1
    };
    let out = renamed("ip link set eth0 down && ip link set eth0 name tcp");
    assert!(out.lines().any(|l| l == "tcp.listen: 0"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("devices.tcp.rx_packets: ")),
        "{out}"
    );
    let out = renamed("ip link set tcp name \"$(printf 'e\\033]0;X\\007')\"");
    assert!(!out.contains(['\x1b', '\x07']), "{out:?}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("devices.e?]0;X?.rx_packets: ")),
        "{out}"
    );
    // A second container with the same name is refused.
    let (st, _, err) = Container::new(mode)
        .args(["--name", &a])
        .exec(["true"])
        .run();
    assert_eq!(st.code(), Some(125));
    assert!(err.contains("is running already"), "{err}");
}

in_both_modes!(ls_exec_and_stats_reach_running_containers);

/// A program inside a container cannot use another container's owner socket (nor
/// its own): it runs under a seccomp filter, and the owner socket refuses it.
#[test]
fn a_container_cannot_exec_into_another() {
    require_root!();
    let a = unique("adm-t");
    let _ca = Container::new(Mode::Seccomp)
        .args(["--name", &a])
        .exec(["sleep", "30"])
        .quiet()
        .spawn();
    wait_for(T, "the target container", || {
        let o = std::process::Command::new(netcell())
            .args(["ls"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .contains(&a)
            .then_some(())
    });
    let (st, out, err) = Container::new(Mode::Seccomp)
        .exec([netcell(), "exec", &a, "--", "touch", "/tmp/netcell-escaped"])
        .run();
    assert_eq!(st.code(), Some(125), "{out}\n{err}");
    assert!(err.contains("refused") && err.contains("seccomp"), "{err}");
    assert!(!std::path::Path::new("/tmp/netcell-escaped").exists());
    // Nor change its filter or sniff it: the same owner check refuses.
    let (code, _, err) = nc(&["filter", &a, "add", "input", "drop"]);
    assert_eq!(code, Some(0), "the owner may: {err}");
    for cmd in [
        vec![netcell(), "filter", &a, "flush"],
        vec![netcell(), "capture", &a, "-w", "/dev/null"],
    ] {
        let (st, out, err) = Container::new(Mode::Seccomp).exec(cmd.clone()).run();
        assert_eq!(st.code(), Some(125), "{cmd:?}: {out}\n{err}");
        assert!(err.contains("refused"), "{cmd:?}: {err}");
    }
    let (_, list, _) = nc(&["filter", &a, "list"]);
    assert!(list.contains("input drop"), "the rule stayed: {list}");
}

/// A program that connects to its own container's owner socket in a loop is
/// refused each time, in a few log lines rather than one per connection, and
/// the container's stack goes on serving its traffic meanwhile.
#[test]
fn a_flood_of_owner_connections_is_refused_quietly() {
    require_root!();
    let name = unique("adm-fl");
    let dir = Scratch::new();
    let script = r#"
import os, socket, sys, threading
path = os.path.join(sys.argv[1], "netcell", sys.argv[2], "owner")
srv = socket.socket(); srv.bind(("127.0.0.1", 7300)); srv.listen(64)
def echo():
    while True:
        c, _ = srv.accept(); c.sendall(c.recv(100)); c.close()
threading.Thread(target=echo, daemon=True).start()
refused = echoed = 0
for i in range(3000):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)
    if s.recv(200).startswith(b"error refused"):
        refused += 1
    s.close()
    if i % 300 == 0:
        c = socket.create_connection(("127.0.0.1", 7300), timeout=5)
        c.sendall(b"ping"); echoed += c.recv(100) == b"ping"; c.close()
print("refused", refused, "echoed", echoed)
"#;
    let (st, out, err) = Container::new(Mode::Seccomp)
        .args(["--name", &name, "--runtime-dir"])
        .arg(&dir.0)
        .exec(["python3", "-c", script])
        .arg(&dir.0)
        .arg(&name)
        .run();
    assert!(st.success(), "{out}\n{err}");
    assert!(out.contains("refused 3000 echoed 10"), "{out}\n{err}");
    let lines = err.matches("owner socket: refused").count();
    assert!((1..=8).contains(&lines), "{lines} refusal lines:\n{err}");
}

/// `--addr dhcp`: the container takes its address, default route and nameserver
/// from dnsmasq on the kernel side, before its command starts.
fn dhcp_gives_the_container_its_lease(mode: Mode) {
    require_root!();
    need("dnsmasq");
    need("getent");
    let ns = tap_ns();
    let leases = Scratch::new();
    let mut d = ns.cmd("dnsmasq");
    d.args([
        "-k",
        "--interface=tap0",
        "--bind-interfaces",
        "--listen-address",
        KERNEL,
        "--dhcp-range=10.88.0.50,10.88.0.60,255.255.255.0,1h",
        "--dhcp-option=option:router,10.88.0.1",
        "--dhcp-option=option:dns-server,10.88.0.1",
        "--no-resolv",
        "--no-hosts",
        "--address=/lease.test/10.88.0.7",
        "--pid-file=",
        "--user=root",
    ])
    .arg(format!(
        "--dhcp-leasefile={}",
        leases.path("leases").display()
    ))
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let _d = Proc::spawn(&mut d);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (st, out, err) = Container::new(mode)
        .tap(&ns, "tap0", &["dhcp"])
        .sh("ip -4 -o addr show dev eth0 | cut -d' ' -f7; ip route | grep default; getent hosts lease.test")
        .run();
    assert!(st.success(), "{out}\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}\n{err}");
    let addr = lines[0];
    let last: u8 = addr
        .strip_prefix("10.88.0.")
        .and_then(|a| a.strip_suffix("/24"))
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    assert!((50..=60).contains(&last), "an address of the range: {out}");
    // Marked as the lease's, as a DHCP client of Linux's (systemd-networkd) does.
    assert_eq!(lines[1].trim(), "default via 10.88.0.1 dev eth0 proto dhcp");
    assert!(lines[2].starts_with("10.88.0.7"), "{out}");
    // The server handed out that address.
    let l = std::fs::read_to_string(leases.path("leases")).unwrap_or_default();
    assert!(l.contains(addr.trim_end_matches("/24")), "{l}");
}

in_both_modes!(dhcp_gives_the_container_its_lease);

/// `--addr slaac`: router advertisements from dnsmasq on the kernel side give
/// eth0 an address of their prefix and a default route through the router; the
/// kernel reaches a server of the container at that address.
fn slaac_gives_an_address_the_kernel_reaches(mode: Mode) {
    require_root!();
    need("dnsmasq");
    need("curl");
    let ns = tap_ns();
    assert!(
        ns.sh("ip addr add fd88::1/64 dev tap0 nodad")
            .status
            .success()
    );
    let mut d = ns.cmd("dnsmasq");
    d.args([
        "-k",
        "--interface=tap0",
        "--bind-interfaces",
        "--enable-ra",
        "--dhcp-range=fd88::,ra-only,64,1h",
        "--ra-param=tap0,5",
        "--no-resolv",
        "--no-hosts",
        "--port=0",
        "--pid-file=",
        "--user=root",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let _d = Proc::spawn(&mut d);
    let dir = Scratch::new();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    let addr_file = dir.path("addr");
    let script = format!(
        "for i in $(seq 100); do ip -6 -o addr show dev eth0 | grep -q fd88 && break; sleep 0.1; done; \
         ip -6 route | grep default; \
         python3 -m http.server 8081 --bind :: >/dev/null 2>&1 & sleep 0.5; \
         ip -6 -o addr show dev eth0 | grep fd88 | cut -d' ' -f7 > {0}; sleep 5",
        addr_file.display()
    );
    let c = Container::new(mode)
        .tap(&ns, "tap0", &[CONTAINER_CIDR, "slaac"])
        .sh(&script)
        .spawn();
    let addr = wait_for(T, "a SLAAC address", || {
        let a = std::fs::read_to_string(&addr_file).ok()?;
        (!a.trim().is_empty()).then(|| a.trim().to_string())
    });
    assert!(
        addr.starts_with("fd88::") && addr.ends_with("/64"),
        "{addr}"
    );
    let ip = addr.trim_end_matches("/64");
    let got = wait_for(T, "the container's server over IPv6", || {
        let o = ns.sh(&format!(
            "curl -gs -o /dev/null -w '%{{http_code}}' 'http://[{ip}]:8081/'"
        ));
        let code = String::from_utf8_lossy(&o.stdout).to_string();
        (code == "200").then_some(code)
    });
    assert_eq!(got, "200");
    let (_, out, err) = c.wait_output(T);
    assert!(out.starts_with("default via fe80::"), "{out}\n{err}");
}

in_both_modes!(slaac_gives_an_address_the_kernel_reaches);

/// Changes need CAP_NET_ADMIN, as on Linux: an unprivileged program in the
/// container reads the configuration but cannot change it (on a shared L2
/// segment it could take another host's address).
#[test]
fn an_unprivileged_program_cannot_change_the_network() {
    require_root!();
    for mode in [Mode::Seccomp, Mode::Preload] {
        // On the uplink (no TAP for nobody), in a namespace of the test's own.
        let ns = NetNs::new();
        let (st, out, err) = Container::nobody()
            .shim(mode)
            .in_ns(&ns)
            .args(["--uplink", "host"])
            .sh("ip -4 -o addr show dev eth0 | cut -d' ' -f7; ip addr add 10.0.2.1/24 dev eth0; echo add=$?; ip link set dev eth0 down; echo down=$?; ip -4 -o addr show dev eth0 | wc -l")
            .run();
        assert!(st.success(), "{out}\n{err}");
        assert_eq!(
            out.lines().collect::<Vec<_>>(),
            ["10.0.2.100/24", "add=2", "down=2", "1"],
            "{mode:?}: {err}"
        );
        assert!(err.contains("Operation not permitted"), "{err}");
    }
}

/// `netcell net`: two containers on one net (a bridge in a user and network
/// namespace of the user's) exchange TCP, UDP and multicast at L2; `net rm`
/// removes it.
#[test]
fn containers_on_one_net_exchange_tcp_udp_and_multicast() {
    require_root!();
    let name = unique("n");
    let nc = |args: &[&str]| {
        std::process::Command::new(netcell())
            .args(args)
            .output()
            .unwrap()
    };
    let o = nc(&["net", "create", &name]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Removed also when the test fails.
    struct Net(String);
    impl Drop for Net {
        fn drop(&mut self) {
            let _ = std::process::Command::new(netcell())
                .args(["net", "rm", &self.0])
                .output();
        }
    }
    let _net = Net(name.clone());
    let listed = String::from_utf8_lossy(&nc(&["net", "ls"]).stdout).into_owned();
    assert!(listed.contains(&name), "{listed}");
    let server = r#"
import socket, struct
l = socket.socket(); l.bind(("0.0.0.0", 8080)); l.listen()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 5000))
m = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); m.bind(("0.0.0.0", 5001))
m.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, struct.pack("4s4s", socket.inet_aton("239.9.9.9"), socket.inet_aton("10.99.0.2")))
print("ready", flush=True)
c, a = l.accept(); c.sendall(b"tcp " + a[0].encode()); c.close()
d, a = u.recvfrom(100); u.sendto(b"udp " + d, a)
m.settimeout(10)
d, a = m.recvfrom(100); print("multicast", d.decode(), a[0], flush=True)
"#;
    let srv = Container::new(Mode::Seccomp)
        .args(["--net", &name, "--addr", "10.99.0.2/24"])
        .exec(["/usr/bin/python3", "-c", server])
        .spawn();
    let client = r#"
import socket, time
for i in range(100):
    try:
        c = socket.create_connection(("10.99.0.2", 8080), timeout=2); break
    except OSError:
        time.sleep(0.1)
print(c.recv(100).decode())
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(5)
u.sendto(b"x", ("10.99.0.2", 5000)); print(u.recvfrom(100)[0].decode())
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("10.99.0.3"))
for i in range(3):
    s.sendto(b"mc", ("239.9.9.9", 5001)); time.sleep(0.2)
"#;
    let (st, out, err) = Container::new(Mode::Preload)
        .args(["--net", &name, "--addr", "10.99.0.3/24"])
        .exec(["/usr/bin/python3", "-c", client])
        .run();
    assert!(st.success(), "{out}\n{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["tcp 10.99.0.3", "udp x"],
        "{err}"
    );
    let (st, out, err) = srv.wait_output(T);
    assert!(st.success(), "{out}\n{err}");
    assert!(out.contains("multicast mc 10.99.0.3"), "{out}\n{err}");
    let o = nc(&["net", "rm", &name]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let listed = String::from_utf8_lossy(&nc(&["net", "ls"]).stdout).into_owned();
    assert!(!listed.contains(&name), "{listed}");
}

/// Netlink sockets are limited per container (64): past that, socket() fails
/// with ENOBUFS, and closing some makes room again.
fn netlink_sockets_are_limited(mode: Mode) {
    let script = r#"
import socket, errno
held = []
try:
    for i in range(200):
        held.append(socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0))
except OSError as e:
    print(len(held), errno.errorcode[e.errno])
for s in held[:10]:
    s.close()
print(len(socket.if_nameindex()) > 0)
"#;
    let (st, out, err) = Container::new(mode)
        .exec(["/usr/bin/python3", "-c", script])
        .run();
    assert!(st.success(), "{out}\n{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["64 ENOBUFS", "True"],
        "{err}"
    );
}

in_both_modes!(netlink_sockets_are_limited);
