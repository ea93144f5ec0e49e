//! The host uplink (`--uplink host`), tested as the outside world it stands for:
//! each test makes a "world" namespace and a "host" namespace joined by a veth
//! pair, runs real servers in the world (python's http.server, dnsmasq, a UDP
//! echo) and netcell as `nobody` in the host namespace, with no TAP. The world is
//! 10.77.0.1; the host 10.77.0.2, its default route through the world; the host's
//! `resolv.conf` (through `ip netns exec`'s `/etc/netns`) names the world's
//! dnsmasq.

mod common;

use common::*;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

const WORLD: &str = "10.77.0.1";
const HOST: &str = "10.77.0.2";
const HTTP: u16 = 8000;
const CLOSED: u16 = 8009;
const ECHO: u16 = 7007;

/// Two namespaces joined by a veth pair, and the host's resolver file.
struct World {
    world: NetNs,
    host: NetNs,
    etc: PathBuf,
    _www: Scratch,
    servers: Vec<Proc>,
    /// The world HTTP server's access log.
    log: PathBuf,
}

impl World {
    fn new() -> World {
        let world = NetNs::new();
        let host = NetNs::new();
        let o = sh(&format!(
            "ip link add w0 netns {w} type veth peer name h0 netns {h} && \
             ip -n {w} addr add {WORLD}/24 dev w0 && ip -n {w} link set w0 up && \
             ip -n {h} addr add {HOST}/24 dev h0 && ip -n {h} link set h0 up && \
             ip -n {h} route add default via {WORLD}",
            w = world.name,
            h = host.name
        ));
        assert!(o.status.success(), "{o:?}");
        let etc = PathBuf::from("/etc/netns").join(&host.name);
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(etc.join("resolv.conf"), format!("nameserver {WORLD}\n")).unwrap();
        let www = Scratch::new();
        std::fs::write(www.path("index.html"), "hello from the world\n").unwrap();
        let log = www.path("access.log");
        let mut servers = Vec::new();
        let mut http = world.cmd("python3");
        http.args([
            "-m",
            "http.server",
            &HTTP.to_string(),
            "--bind",
            WORLD,
            "--directory",
        ])
        .arg(&www.0)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
        servers.push(Proc::spawn(&mut http));
        let mut echo = world.cmd("python3");
        echo.args([
            "-c",
            &format!(
                "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
                 s.bind(('{WORLD}',{ECHO}))\nwhile True:\n d,a=s.recvfrom(65536)\n s.sendto(d,a)"
            ),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        servers.push(Proc::spawn(&mut echo));
        let mut dns = world.cmd("dnsmasq");
        dns.args([
            "-k",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--listen-address",
            WORLD,
            "--pid-file=",
            "--user=root",
            "--local=/test/",
            &format!("--address=/web.test/{WORLD}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        servers.push(Proc::spawn(&mut dns));
        let w = World {
            world,
            host,
            etc,
            _www: www,
            servers,
            log,
        };
        wait_for(Duration::from_secs(10), "the world's servers", || {
            let o = w.host.sh(&format!(
                "curl -sf http://{WORLD}:{HTTP}/ && dig +short +time=1 +tries=1 @{WORLD} web.test"
            ));
            o.status.success().then_some(())
        });
        w
    }

    /// A container in the host namespace, as `nobody`, on the uplink.
    fn container(&self, mode: Mode) -> Container<'_> {
        Container::nobody()
            .shim(mode)
            .in_ns(&self.host)
            .args(["--uplink", "host"])
    }

    /// Lets `nobody` open ICMP sockets in the host namespace.
    fn allow_ping(&self) {
        let o = self
            .host
            .sh("sysctl -qw net.ipv4.ping_group_range='0 2147483647'");
        assert!(o.status.success());
    }

    fn access_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for s in &mut self.servers {
            s.stop();
        }
        let _ = std::fs::remove_dir_all(&self.etc);
    }
}

fn sh(cmd: &str) -> std::process::Output {
    std::process::Command::new("sh")
        .args(["-c", cmd])
        .output()
        .unwrap()
}

fn lines(out: &str) -> Vec<&str> {
    out.lines().collect()
}

/// `curl` by name, the name resolved by the world's dnsmasq (the host's
/// nameserver): the request arrives from the host's address.
fn curl_by_name_reaches_the_world(mode: Mode) {
    require_root!();
    need("curl");
    need("dnsmasq");
    let w = World::new();
    let (st, out, err) = w
        .container(mode)
        .exec(["curl", "-sS", &format!("http://web.test:{HTTP}/")])
        .run();
    assert!(st.success(), "{out}\n{err}");
    assert_eq!(out, "hello from the world\n");
    let log = w.access_log();
    assert!(
        log.contains(&format!("{HOST} - - ")) && log.contains("GET / HTTP"),
        "the world saw the host's address: {log}"
    );
}

/// The fast path: after `connect` the program holds an INET socket of the host
/// (`SO_DOMAIN`, `/proc/self/fd`), its name the container's address; errors are
/// Linux's; a socket whose connect failed connects afresh; the host's loopback and
/// the uplink's empty subnet are out of reach.
fn tcp_connections_are_host_sockets(mode: Mode) {
    require_root!();
    need("dnsmasq");
    let w = World::new();
    let (st, out, err) = w
        .container(mode)
        .exec([
            "/usr/bin/python3",
            &py("uplink_tcp.py"),
            WORLD,
            &HTTP.to_string(),
            &CLOSED.to_string(),
        ])
        .run();
    assert!(st.success(), "{out}\n{err}");
    assert_eq!(
        lines(&out),
        [
            "domain True",
            "fd socket",
            "name 10.0.2.100",
            "peer True",
            "status HTTP/1.0 200 OK",
            "body hello from the world",
            "nonblocking EINPROGRESS",
            "so_error 0",
            "again 0 EISCONN",
            "refused ECONNREFUSED",
            "retry 0",
            "subnet EHOSTUNREACH",
            "hostloop EHOSTUNREACH",
            "own_lo ECONNREFUSED",
            "v6_mapped_lo ECONNREFUSED",
            "metadata ENETUNREACH",
            "v4_compatible_lo ENETUNREACH",
        ],
        "{err}"
    );
}

/// UDP: replies come back with the world's true address; large datagrams and
/// connected sockets work.
fn udp_goes_through_host_sockets(mode: Mode) {
    require_root!();
    need("dnsmasq");
    need("dig");
    let w = World::new();
    let (st, out, err) = w
        .container(mode)
        .exec([
            "/usr/bin/python3",
            &py("uplink_udp.py"),
            WORLD,
            &ECHO.to_string(),
        ])
        .run();
    assert!(st.success(), "{out}\n{err}");
    assert_eq!(
        lines(&out),
        [
            "unconnected ping0 True",
            "unconnected ping1 True",
            "unconnected ping2 True",
            "name 0.0.0.0",
            "large 60000",
            "connected connected",
        ],
        "{err}"
    );
    // dig checks that the answer comes from the server it asked.
    let (st, out, err) = w
        .container(mode)
        .exec([
            "dig",
            "+short",
            "+time=2",
            "+tries=1",
            &format!("@{WORLD}"),
            "web.test",
        ])
        .run();
    assert!(st.success(), "{out}\n{err}");
    assert_eq!(out.trim(), WORLD);
}

/// ping through host ICMP sockets where `ping_group_range` allows this user; a
/// one-line message that says what to do where it does not. (Under seccomp only:
/// `ping` has file capabilities, and the loader ignores `LD_PRELOAD` for it.)
#[test]
fn ping_goes_through_host_icmp_sockets() {
    let mode = Mode::Seccomp;
    require_root!();
    need("ping");
    need("dnsmasq");
    let w = World::new();
    let (st, out, err) = w
        .container(mode)
        .exec(["ping", "-c", "2", "-W", "2", WORLD])
        .run();
    assert!(!st.success(), "{out}\n{err}");
    let said: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("ping_group_range"))
        .collect();
    assert_eq!(said.len(), 1, "{err}");
    assert!(
        said[0].contains("sysctl -w net.ipv4.ping_group_range"),
        "{err}"
    );
    w.allow_ping();
    let (st, out, err) = w
        .container(mode)
        .exec(["ping", "-c", "2", "-W", "2", WORLD])
        .run();
    assert!(st.success(), "{out}\n{err}");
    assert!(out.contains("2 received"), "{out}");
    assert!(
        out.contains(&format!("bytes from {WORLD}: icmp_seq=1")),
        "{out}"
    );
}

/// The host's loopback: out of reach without `--map-host-loopback`, reached
/// through its address with it; a nameserver on the host's loopback is reached
/// through 10.0.2.3.
fn the_host_loopback_only_through_the_mapping(mode: Mode) {
    require_root!();
    need("curl");
    need("dnsmasq");
    let w = World::new();
    let www = Scratch::new();
    std::fs::write(www.path("index.html"), "the host's loopback\n").unwrap();
    let mut srv = w.host.cmd("python3");
    srv.args([
        "-m",
        "http.server",
        "8123",
        "--bind",
        "127.0.0.1",
        "--directory",
    ])
    .arg(&www.0)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let _srv = Proc::spawn(&mut srv);
    let mut dns = w.host.cmd("dnsmasq");
    dns.args([
        "-k",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        "--listen-address=127.0.0.53",
        "--pid-file=",
        "--user=root",
        "--local=/test/",
        "--address=/loop.test/10.0.2.2",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let _dns = Proc::spawn(&mut dns);
    wait_for(
        Duration::from_secs(10),
        "the host's loopback servers",
        || {
            w.host
            .sh("curl -sf http://127.0.0.1:8123/ && dig +short +time=1 +tries=1 @127.0.0.53 loop.test | grep -q 10.0.2.2")
            .status
            .success()
            .then_some(())
        },
    );
    let probe = "for a in 127.0.0.1 10.0.2.2; do curl -s -o /dev/null -w \"$a %{http_code}\\n\" --max-time 3 http://$a:8123/; done";
    let (_, out, err) = w.container(mode).sh(probe).run();
    assert_eq!(lines(&out), ["127.0.0.1 000", "10.0.2.2 000"], "{err}");
    let (st, out, err) = w
        .container(mode)
        .args(["--map-host-loopback", "10.0.2.2"])
        .sh(probe)
        .run();
    assert!(st.success(), "{out}\n{err}");
    assert_eq!(lines(&out), ["127.0.0.1 000", "10.0.2.2 200"], "{err}");
    // The host resolves through its loopback: so does the container, by name.
    std::fs::write(w.etc.join("resolv.conf"), "nameserver 127.0.0.53\n").unwrap();
    let (st, out, err) = w
        .container(mode)
        .args(["--map-host-loopback", "10.0.2.2"])
        .exec(["curl", "-sS", "--max-time", "5", "http://loop.test:8123/"])
        .run();
    assert!(st.success(), "{out}\n{err}");
    assert_eq!(out, "the host's loopback\n");
}

/// What a world client gets from a published TCP port and a published UDP port.
fn world_asks(w: &World, tcp_port: u16, udp_port: u16) -> Option<(String, String)> {
    let tcp = w.world.sh(&format!(
        "python3 -c \"import socket; c=socket.create_connection(('{HOST}', {tcp_port}), timeout=2); print(c.makefile().readline().strip())\""
    ));
    if !tcp.status.success() {
        return None;
    }
    let udp = w.world.sh(&format!(
        "python3 -c \"import socket; u=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(2); u.sendto(b'q', ('{HOST}', {udp_port})); d, a = u.recvfrom(100); print(d.decode(), a[0], a[1])\""
    ));
    Some((
        String::from_utf8_lossy(&tcp.stdout).trim().to_string(),
        String::from_utf8_lossy(&udp.stdout).trim().to_string(),
    ))
}

/// Published ports: a world client reaches the container's TCP and UDP servers
/// through the host's ports; the server's accepted socket is the host's (an INET
/// socket), it sees the client's true address, and its name is the container's.
fn published_ports_reach_the_container(mode: Mode) {
    require_root!();
    need("dnsmasq");
    let w = World::new();
    let _c = w
        .container(mode)
        .args(["-p", "8080:80", "-p", "5353:53/udp"])
        .exec(["/usr/bin/python3", &py("published.py"), "one"])
        .quiet()
        .spawn();
    let (tcp, udp) = wait_for(Duration::from_secs(10), "the published ports", || {
        world_asks(&w, 8080, 5353)
    });
    assert_eq!(
        tcp,
        format!("one accepted={WORLD} peer={WORLD} name=10.0.2.100:80 domain=inet")
    );
    assert_eq!(udp, format!("one q from={WORLD} {HOST} 5353"));
    // A client on the host's own loopback is not the container's loopback: it is
    // the gateway inside, and it still gets its answers.
    let tcp = w.host.sh(
        "python3 -c \"import socket; c=socket.create_connection(('127.0.0.1', 8080), timeout=2); print(c.makefile().readline().strip())\"",
    );
    assert_eq!(
        String::from_utf8_lossy(&tcp.stdout).trim(),
        "one accepted=10.0.2.2 peer=10.0.2.2 name=10.0.2.100:80 domain=inet"
    );
    let udp = w.host.sh(
        "python3 -c \"import socket; u=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(2); u.sendto(b'q', ('127.0.0.1', 5353)); d, a = u.recvfrom(100); print(d.decode(), a[0], a[1])\"",
    );
    assert_eq!(
        String::from_utf8_lossy(&udp.stdout).trim(),
        "one q from=10.0.2.2 127.0.0.1 5353"
    );
}

/// A filter rule refuses a connection through the uplink (the host socket is
/// never opened: the world's server logs nothing), another port still works,
/// and UDP through the uplink is filtered per datagram.
fn the_filter_refuses_uplinked_connections(mode: Mode) {
    require_root!();
    need("dnsmasq");
    let w = World::new();
    let dir = Scratch::new();
    let rules = dir.path("rules");
    std::fs::write(
        &rules,
        format!("output ip daddr {WORLD} tcp dport {HTTP} reject\noutput udp dport {ECHO} drop\n"),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&rules, std::fs::Permissions::from_mode(0o644)).unwrap();
    let script = format!(
        r#"
import socket, errno
def attempt(port):
    s = socket.socket(); s.settimeout(3)
    try:
        s.connect(('{WORLD}', port)); return 'ok'
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e))
print('http', attempt({HTTP}))
print('closed', attempt({CLOSED}))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    u.sendto(b'x', ('{WORLD}', {ECHO})); print('udp sent')
except OSError as e:
    print('udp', errno.errorcode[e.errno])
"#
    );
    let before = w.access_log();
    let (st, out, err) = w
        .container(mode)
        .args(["--filter", rules.to_str().unwrap()])
        .exec(["/usr/bin/python3", "-c", &script])
        .run();
    assert!(st.success(), "{out}\n{err}");
    assert_eq!(
        lines(&out),
        ["http ECONNREFUSED", "closed ECONNREFUSED", "udp EPERM"],
        "{err}"
    );
    assert_eq!(w.access_log(), before, "no request reached the world");
    // Without the rules, the same connection is made.
    let (_, out, _) = w
        .container(mode)
        .exec(["/usr/bin/python3", "-c", &script])
        .run();
    assert_eq!(lines(&out)[0], "http ok");
}

in_both_modes!(
    the_filter_refuses_uplinked_connections,
    published_ports_reach_the_container,
    curl_by_name_reaches_the_world,
    tcp_connections_are_host_sockets,
    udp_goes_through_host_sockets,
    the_host_loopback_only_through_the_mapping,
);

/// Static binaries (Go, busybox) through the uplink: only the seccomp shim can
/// redirect them.
#[test]
fn static_clients_reach_the_world() {
    require_root!();
    need("busybox");
    need("dnsmasq");
    let go = gonet();
    let w = World::new();
    let url = format!("http://{WORLD}:{HTTP}/");
    let (st, out, err) = w
        .container(Mode::Seccomp)
        .exec([
            go.to_str().unwrap(),
            "get",
            &url,
            &format!("http://web.test:{HTTP}/"),
        ])
        .run();
    assert!(st.success(), "{out}\n{err}");
    assert_eq!(
        lines(&out),
        ["hello from the world", "hello from the world"],
        "{err}"
    );
    let busybox = which("busybox");
    let (st, out, err) = w
        .container(Mode::Seccomp)
        .exec([busybox.as_str(), "wget", "-q", "-O", "-", &url])
        .run();
    assert!(st.success(), "{out}\n{err}");
    assert_eq!(out, "hello from the world\n");
}

fn which(p: &str) -> String {
    let o = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {p}")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A handed-over host socket is never a way to the host's loopback: disconnect and
/// reconnect, connect after a failure, Fast Open, listen, and a second thread
/// swapping descriptors under a connecting one. A listener on the host's
/// 127.0.0.1 counts what reaches it: nothing may.
#[test]
fn handed_sockets_cannot_be_re_pointed() {
    require_root!();
    need("dnsmasq");
    let w = World::new();
    let count = Scratch::new();
    let seen = count.path("seen");
    let mut l = w.host.cmd("python3");
    l.args([
        "-c",
        &format!(
            "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
             s.bind(('127.0.0.1',8124))\ns.listen(64)\nn=0\nwhile True:\n c,a=s.accept()\n n+=1\n \
             open('{}','w').write(str(n))\n c.close()",
            seen.display()
        ),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let _l = Proc::spawn(&mut l);
    wait_for(Duration::from_secs(5), "the host listener", || {
        w.host
            .sh("python3 -c \"import socket; socket.create_connection(('127.0.0.1', 8124)).close()\"")
            .status
            .success()
            .then_some(())
    });
    std::thread::sleep(Duration::from_millis(200));
    let before = std::fs::read_to_string(&seen).unwrap_or_default();
    let (st, out, err) = w
        .container(Mode::Seccomp)
        .exec([
            "/usr/bin/python3",
            &py("uplink_escape.py"),
            WORLD,
            &HTTP.to_string(),
            &CLOSED.to_string(),
            "8124",
        ])
        .run();
    assert!(st.success(), "{out}\n{err}");
    assert_eq!(
        lines(&out),
        [
            "unspec 0",
            "after_unspec ECONNREFUSED",
            "bindtodevice ENOPROTOOPT",
            "tcp_ulp ENOPROTOOPT",
            "nodelay ok 1",
            "failed ECONNREFUSED",
            "after_failure ECONNREFUSED",
            "fastopen ENOTSUP",
            "listen_name 0.0.0.0",
            "raced True",
            "host_listeners 0",
        ],
        "{err}"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        std::fs::read_to_string(&seen).unwrap_or_default(),
        before,
        "a connection reached the host's loopback"
    );
}

/// Two containers publish different host ports to their own port 80; each
/// reaches its own server, and one reaches the other through the host like any
/// host port.
#[test]
fn two_containers_publish_their_own_port_80() {
    require_root!();
    need("dnsmasq");
    let w = World::new();
    let _a = w
        .container(Mode::Seccomp)
        .args(["-p", "8081:80", "-p", "5301:53/udp"])
        .exec(["/usr/bin/python3", &py("published.py"), "a"])
        .quiet()
        .spawn();
    let _b = w
        .container(Mode::Preload)
        .args(["-p", "8082:80", "-p", "5302:53/udp"])
        .exec(["/usr/bin/python3", &py("published.py"), "b"])
        .quiet()
        .spawn();
    let (ta, _) = wait_for(Duration::from_secs(10), "container a", || {
        world_asks(&w, 8081, 5301)
    });
    let (tb, _) = wait_for(Duration::from_secs(10), "container b", || {
        world_asks(&w, 8082, 5302)
    });
    assert!(ta.starts_with("a accepted="), "{ta}");
    assert!(tb.starts_with("b accepted="), "{tb}");
    // A third container reaches b's published port through the host's address.
    let (st, out, err) = w
        .container(Mode::Seccomp)
        .exec([
            "/usr/bin/python3",
            "-c",
            &format!("import socket; c=socket.create_connection(('{HOST}', 8082), timeout=3); print(c.makefile().readline().strip())"),
        ])
        .run();
    assert!(st.success(), "{out}\n{err}");
    assert!(out.starts_with(&format!("b accepted={HOST} ")), "{out}");
}

/// A host port taken by another program fails the start with status 125 and a
/// message naming the port.
#[test]
fn a_taken_host_port_fails_the_start() {
    require_root!();
    need("dnsmasq");
    let w = World::new();
    let mut l = w.host.cmd("python3");
    l.args(["-c", "import socket,time; s=socket.socket(); s.bind(('0.0.0.0',8083)); s.listen(); print('up', flush=True); time.sleep(30)"])
        .stdout(Stdio::null());
    let _l = Proc::spawn(&mut l);
    wait_for(Duration::from_secs(5), "the squatter", || {
        w.host
            .sh("ss -ltn | grep -q ':8083 '")
            .status
            .success()
            .then_some(())
    });
    let (st, out, err) = w
        .container(Mode::Seccomp)
        .args(["-p", "8083:80"])
        .exec(["true"])
        .run();
    assert_eq!(st.code(), Some(125), "{out}\n{err}");
    assert!(
        err.contains("cannot publish 0.0.0.0:8083/tcp") && err.contains("in use"),
        "{err}"
    );
}

/// iperf3 through the uplink, TCP both ways and UDP, against a server in the
/// world: the bytes counted on both sides agree.
fn iperf3_through_the_uplink(mode: Mode) {
    require_root!();
    need("iperf3");
    need("dnsmasq");
    let w = World::new();
    let mut srv = w.world.cmd("iperf3");
    srv.args(["-s", "-B", WORLD, "-p", "5299"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _srv = Proc::spawn(&mut srv);
    wait_for(Duration::from_secs(5), "iperf3", || {
        w.host
            .sh(&format!(
                "nc -z {WORLD} 5299 || bash -c 'echo > /dev/tcp/{WORLD}/5299'"
            ))
            .status
            .success()
            .then_some(())
    });
    for extra in [&[][..], &["-R"][..], &["-u", "-b", "20M"][..]] {
        let mut argv = vec!["iperf3", "-c", WORLD, "-p", "5299", "-t", "1", "-J"];
        argv.extend_from_slice(extra);
        let (st, out, err) = w.container(mode).exec(argv).run();
        assert!(st.success(), "iperf3 {extra:?}: {out}\n{err}");
        // The totals, in the "end" section ("start" has a "bytes" of its own).
        let end = out.split("\"end\":").nth(1).unwrap_or("");
        let sent = json_number(end, "\"bytes\":");
        assert!(
            sent > 1_000_000,
            "iperf3 {extra:?} moved {sent} bytes: {out}"
        );
        if extra.first() == Some(&"-u") {
            let lost = json_number(end, "\"lost_percent\":");
            assert!(lost < 50, "iperf3 UDP lost {lost}%: {out}");
        }
    }
}

/// The first number after `key` in a JSON text.
fn json_number(text: &str, key: &str) -> u64 {
    text.split(key)
        .nth(1)
        .map(|t| {
            t.trim_start()
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect::<String>()
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

in_both_modes!(iperf3_through_the_uplink);

/// IPv6 through the uplink: a TCP connection handed over as an IPv6 host socket,
/// and UDP both ways with the true source.
#[test]
fn ipv6_through_the_uplink() {
    require_root!();
    need("curl");
    need("dnsmasq");
    let w = World::new();
    let o = sh(&format!(
        "ip -n {w} addr add fd77::1/64 dev w0 nodad && ip -n {h} addr add fd77::2/64 dev h0 nodad && \
         ip -n {h} -6 route add default via fd77::1",
        w = w.world.name,
        h = w.host.name
    ));
    assert!(o.status.success(), "{o:?}");
    let www = Scratch::new();
    std::fs::write(www.path("index.html"), "hello over IPv6\n").unwrap();
    let mut http = w.world.cmd("python3");
    http.args([
        "-m",
        "http.server",
        "8006",
        "--bind",
        "fd77::1",
        "--directory",
    ])
    .arg(&www.0)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let _http = Proc::spawn(&mut http);
    let mut echo = w.world.cmd("python3");
    echo.args([
        "-c",
        "import socket\ns=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)\n\
         s.bind(('fd77::1',7006))\nwhile True:\n d,a=s.recvfrom(65536)\n s.sendto(d,a)",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let _echo = Proc::spawn(&mut echo);
    wait_for(Duration::from_secs(10), "the IPv6 server", || {
        w.host
            .sh("curl -gsf 'http://[fd77::1]:8006/'")
            .status
            .success()
            .then_some(())
    });
    let script = "import socket\n\
        c = socket.create_connection(('fd77::1', 8006))\n\
        print('tcp', c.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN) == socket.AF_INET6, c.getsockname()[0])\n\
        u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n\
        u.settimeout(5)\n\
        u.sendto(b'six', ('fd77::1', 7006))\n\
        d, a = u.recvfrom(100)\n\
        print('udp', d.decode(), a[0], a[1])\n";
    let (st, out, err) = w
        .container(Mode::Seccomp)
        .exec(["/usr/bin/python3", "-c", script])
        .run();
    assert!(st.success(), "{out}\n{err}");
    assert_eq!(
        lines(&out),
        ["tcp True fd00::100", "udp six fd77::1 7006"],
        "{err}"
    );
    let (st, out, err) = w
        .container(Mode::Seccomp)
        .exec(["curl", "-gsS", "http://[fd77::1]:8006/"])
        .run();
    assert!(st.success(), "{out}\n{err}");
    assert_eq!(out, "hello over IPv6\n");
}

/// A flood of UDP source ports cannot make netcell hold a host socket for each:
/// flows stop at `--max-uplink-flows` (the oldest make room), and the datagrams
/// still go out.
#[test]
fn a_flood_of_udp_flows_stays_within_the_limit() {
    require_root!();
    need("dnsmasq");
    let w = World::new();
    let script = format!(
        "import socket, time\n\
         socks = []\n\
         for i in range(120):\n    \
             s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n    \
             s.sendto(b'f', ('{WORLD}', {ECHO}))\n    \
             socks.append(s)\n\
         last = socks[-1]; last.settimeout(5)\n\
         print('echo', last.recvfrom(10)[0].decode(), flush=True)\n\
         time.sleep(3)\n"
    );
    let c = w
        .container(Mode::Seccomp)
        .args(["--max-uplink-flows", "16"])
        .exec(["/usr/bin/python3", "-c", &script])
        .spawn();
    // The host namespace's UDP sockets are netcell's flows (the world's servers
    // live in the other namespace).
    let mut most = 0;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(100));
        let o = w
            .host
            .sh("tail -n +2 /proc/net/udp /proc/net/udp6 | grep -c ':'");
        let n: usize = String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        most = most.max(n);
    }
    let (st, out, err) = c.wait_output(T);
    assert!(st.success(), "{out}\n{err}");
    assert_eq!(out.trim(), "echo f", "{err}");
    assert!(most > 0, "no flow seen");
    assert!(
        most <= 16,
        "{most} host UDP sockets for flows limited to 16"
    );
}
