//! What only the seccomp shim gives: static binaries and Go redirected, an enforced
//! boundary, blocking calls that signals interrupt as the kernel's do, threads and
//! process trees that stay inside, and all of it without privileges.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The `int80` helper (i386 system calls from a 64-bit program).
fn int80() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| cc("int80.c", "int80", &["-no-pie"]))
}

fn busybox() -> String {
    need("busybox");
    let o = Command::new("sh")
        .args(["-c", "command -v busybox"])
        .output()
        .unwrap();
    let path = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let f = Command::new("file").arg("-L").arg(&path).output();
    if let Ok(f) = f {
        let s = String::from_utf8_lossy(&f.stdout);
        assert!(
            s.contains("statically linked"),
            "the tests need busybox-static: {s}"
        );
    }
    path
}

fn dnsmasq(ns: &NetNs, records: &[&str]) -> Proc {
    need("dnsmasq");
    let p = kernel_dnsmasq(ns, records.iter().map(|r| format!("--host-record={r}")));
    need("dig");
    wait_for(T, "dnsmasq", || {
        let o = ns.sh(&format!(
            "dig +short +time=1 +tries=1 @{KERNEL} {}",
            records[0].split(',').next().unwrap_or("x")
        ));
        (!o.stdout.is_empty()).then_some(())
    });
    p
}

#[test]
fn static_busybox_and_go_reach_the_kernel_peer_and_each_other() {
    require_root!();
    need("python3");
    need("curl");
    let bb = busybox();
    let go = gonet().display().to_string();
    let ns = tap_ns();
    let dir = Scratch::new();
    std::fs::write(dir.path("kernel-file"), "from the kernel side\n").unwrap();
    std::fs::create_dir_all(dir.path("www")).unwrap();
    std::fs::write(dir.path("www/c"), "from busybox httpd\n").unwrap();
    let _dns = dnsmasq(&ns, &["web1.test,10.88.0.80"]);
    let _web = kernel_http_server(&ns, &dir.0, Stdio::null());
    wait_for(T, "the kernel side's web server", || {
        ns.sh(&format!(
            "curl -s -m 1 -o /dev/null http://{KERNEL}:8000/kernel-file"
        ))
        .status
        .success()
        .then_some(())
    });
    // The kernel side's nc server records what the container's nc client sends.
    let got = dir.path("nc-got");
    let _ncsrv = Proc::spawn(
        ns.cmd("sh")
            .args(["-c", &format!("{bb} nc -l -p 9100 > {}", got.display())])
            .stdout(Stdio::null()),
    );
    let d = dir.0.display();
    let script = format!(
        r#"
{bb} httpd -f -p 8080 -h {d}/www & H=$!
{go} serve :8081 >/dev/null & G=$!
echo nc-server-hello | {bb} nc -l -p 9000 & N=$!
for i in $(seq 100); do {bb} wget -q -O /dev/null http://127.0.0.1:8081/ 2>/dev/null && {bb} wget -q -O /dev/null http://127.0.0.1:8080/c 2>/dev/null && break; sleep 0.1; done
echo "bb-wget-kernel $({bb} wget -q -O - http://{KERNEL}:8000/kernel-file)"
echo "bb-wget-httpd $({bb} wget -q -O - http://127.0.0.1:8080/c)"
echo "bb-wget-go $({bb} wget -q -O - http://127.0.0.1:8081/from-busybox)"
echo "go-get $({go} get http://{KERNEL}:8000/kernel-file http://127.0.0.1:8080/c http://[::1]:8081/v6 | tr '\n' '|')"
echo "go-parallel $({go} parallel http://127.0.0.1:8081/p 64)"
echo "bb-nslookup $({bb} nslookup web1.test 2>&1 | grep -c 10.88.0.80)"
echo "go-lookup $({go} lookup web1.test) $({go} lookup gohost.test)"
echo "bb-ping $({bb} ping -c 1 -W 5 {KERNEL} >/dev/null && echo ok)"
echo from-container-nc | {bb} nc -w 2 {KERNEL} 9100
touch {d}/READY
while [ ! -e {d}/DONE ]; do sleep 0.05; done
kill $H $G $N 2>/dev/null; exit 0
"#
    );
    let p = Container::new(Mode::Seccomp)
        .tap(&ns, "tap0", &[CONTAINER_CIDR])
        .gateway(KERNEL)
        .dns(KERNEL)
        .add_host("gohost.test", KERNEL)
        .sh(&script)
        .spawn();
    wait_for(T, "the container's clients", || {
        dir.path("READY").exists().then_some(())
    });
    // The kernel side reaches the container's static servers.
    let curl = |url: &str| {
        let o = ns.sh(&format!("curl -s -m 10 {url}"));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let k_go = curl(&format!("http://{CONTAINER}:8081/from-kernel"));
    let k_httpd = curl(&format!("http://{CONTAINER}:8080/c"));
    let k_nc = ns.sh(&format!("{bb} nc -w 3 {CONTAINER} 9000 </dev/null"));
    std::fs::write(dir.path("DONE"), "").unwrap();
    let (st, out, err) = p.wait_output(T);
    assert!(st.success(), "{out}\n{err}");
    let want = [
        "bb-wget-kernel from the kernel side".to_string(),
        "bb-wget-httpd from busybox httpd".to_string(),
        "bb-wget-go go /from-busybox from 127.0.0.1:".to_string(),
        "go-get from the kernel side|from busybox httpd|go /v6 from [::1]:".to_string(),
        "go-parallel ok 64".to_string(),
        "bb-nslookup 1".to_string(),
        format!("go-lookup 10.88.0.80 {KERNEL}"),
        "bb-ping ok".to_string(),
    ];
    for w in &want {
        assert!(out.contains(w.as_str()), "missing {w:?} in:\n{out}\n{err}");
    }
    assert!(
        k_go.starts_with(&format!("go /from-kernel from {KERNEL}:")),
        "kernel → Go server: {k_go:?}"
    );
    assert_eq!(k_httpd, "from busybox httpd", "kernel → busybox httpd");
    assert_eq!(
        String::from_utf8_lossy(&k_nc.stdout).trim(),
        "nc-server-hello",
        "kernel → busybox nc server"
    );
    wait_for(T, "the kernel's nc server to get the line", || {
        std::fs::read_to_string(&got)
            .ok()
            .filter(|s| s.contains("from-container-nc"))
            .map(|_| ())
    });
}

/// A server on the host's own loopback, which no container may reach.
fn host_listener() -> (std::net::TcpListener, u16) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let p = l.local_addr().unwrap().port();
    (l, p)
}

fn parse_lines(out: &str) -> std::collections::BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| {
            // "name words... VALUE": the last word is the value.
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

#[test]
fn escapes_from_the_container_fail() {
    need("python3");
    let (_l, port) = host_listener();
    // On the host, as the same user, the attempts are real.
    let host = Command::new("python3")
        .arg(py("escapes.py"))
        .arg(port.to_string())
        .output()
        .unwrap();
    assert!(host.status.success());
    let host = parse_lines(&String::from_utf8_lossy(&host.stdout));
    assert_eq!(host["raw connect to the host's loopback"], "ok");
    if is_root() {
        assert_eq!(
            host["packet socket"], "ok",
            "root opens packet sockets on the host"
        );
        assert_eq!(host["io_uring_setup"], "ok");
    }
    assert_eq!(host["netlink route socket"], "ok");

    // In a container, from the command itself and from an `env -i` grandchild that
    // a shell started.
    let i80 = int80().display().to_string();
    let script = format!(
        "python3 {0} {port}; echo '-- env -i'; sh -c 'env -i /usr/bin/python3 {0} {port}'; {i80}",
        py("escapes.py")
    );
    let (st, out, err) = Container::new(Mode::Seccomp).sh(&script).run();
    assert!(st.success(), "{out} {err}");
    let (first, rest) = out.split_once("-- env -i\n").expect("both parts ran");
    for part in [first, rest] {
        let got = parse_lines(part);
        let expect = [
            ("raw socket", "ok"),
            ("raw connect to the host's loopback", "ECONNREFUSED"),
            ("libc connect to the host's loopback", "ECONNREFUSED"),
            // The container's own rtnetlink: its interfaces only.
            ("netlink route socket", "ok"),
            ("netlink generic socket", "EPERM"),
            ("vsock socket", "EAFNOSUPPORT"),
            ("io_uring_setup", "ENOSYS"),
            ("x32 socket", "ENOSYS"),
            ("if_nameindex", "lo"),
            ("ifconf", "lo=127.0.0.1"),
        ];
        for (k, v) in expect {
            assert_eq!(
                got.get(k).map(String::as_str),
                Some(v),
                "{k}: {part}\n{err}"
            );
        }
        // A raw socket is the container's own, for those with CAP_NET_RAW; so is
        // a packet socket (the mirror's: it sees the container's frames and
        // never the host's, see `tests/capture.rs`).
        let raw = if is_root() { "ok" } else { "EPERM" };
        for k in ["packet socket", "packet dgram socket"] {
            assert_eq!(got.get(k).map(String::as_str), Some(raw), "{k}: {part}");
        }
        assert_eq!(
            got.get("raw ip socket").map(String::as_str),
            Some(raw),
            "{part}"
        );
        // Only the standard descriptors are inherited: nothing of netcell's.
        assert!(part.contains("fds [0, 1, 2]\n"), "{part}");
    }
    // The 32-bit entry points create nothing; other i386 calls still run.
    assert!(out.contains("i386 socketcall ENOSYS"), "{out}");
    assert!(out.contains("i386 socket ENOSYS"), "{out}");
    assert!(out.contains("i386 getpid ok"), "{out}");
}

#[test]
fn the_host_s_inherited_descriptors_do_not_reach_the_container() {
    need("python3");
    // netcell started with an extra inherited socket (fd 5): the container does not
    // get it.
    let (l, _) = host_listener();
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let raw = l.as_raw_fd();
    let mut c = Container::new(Mode::Seccomp)
        .exec([
            "python3",
            "-c",
            "import os; print(sorted(int(x) for x in os.listdir('/proc/self/fd')))",
        ])
        .command();
    // SAFETY: dup2 between fork and exec, on fds this test owns.
    unsafe {
        c.pre_exec(move || {
            if libc::dup2(raw, 5) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (st, out, err) = run(&mut c);
    assert!(st.success(), "{err}");
    // 0, 1, 2 and the directory listing's own descriptor.
    assert_eq!(out.trim(), "[0, 1, 2, 3]", "{err}");
}

#[test]
fn a_refused_filter_gets_a_clear_error_and_preload_still_works() {
    need("python3");
    // An outer sandbox makes seccomp(2) fail, as some container runtimes do.
    let mut c = Command::new("python3");
    c.arg(py("deny_seccomp.py"))
        .arg(netcell())
        .args(["run", "--uplink", "none", "--", "true"]);
    let (st, out, err) = run(&mut c);
    assert_eq!(st.code(), Some(125), "{out} {err}");
    assert!(
        err.contains("the kernel refused the seccomp filter") && err.contains("--shim preload"),
        "{err}"
    );
    let mut c = Command::new("python3");
    c.arg(py("deny_seccomp.py"))
        .arg(netcell())
        .args(["run", "--uplink", "none", "--shim", "preload", "--", "python3", "-c", "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); print('ok', s.getsockname()[0])"]);
    let (st, out, err) = run(&mut c);
    assert!(st.success(), "{out} {err}");
    assert_eq!(out.trim(), "ok 127.0.0.1");
}

/// Finds the pid a `sigtest.py block` wrote.
fn read_pid(path: &Path) -> i32 {
    wait_for(T, "the blocked program's pid", || {
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    })
}

fn signals(mode: Mode) {
    require_root!();
    need("python3");
    let ns = tap_ns();
    let dir = Scratch::new();
    // A server blocked in accept(), a client blocked in connect() (to an address
    // nobody answers) or in recvfrom(): each ends promptly on SIGINT or SIGTERM.
    for (call, sig) in [
        ("accept", libc::SIGINT),
        ("connect", libc::SIGTERM),
        ("recvfrom", libc::SIGINT),
        ("accept", libc::SIGTERM),
    ] {
        let pidfile = dir.path(&format!("{call}-{sig}.pid"));
        let p = Container::new(mode)
            .on_tap_ns(&ns)
            .exec(["python3", &py("sigtest.py"), "block", call])
            .arg(&pidfile)
            .spawn();
        let pid = read_pid(&pidfile);
        std::thread::sleep(Duration::from_millis(300));
        let t0 = Instant::now();
        // SAFETY: signalling the program this test started (inside its container).
        unsafe { libc::kill(pid, sig) };
        let (st, out, err) = p.wait_output(T);
        let took = t0.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "{call}: took {took:?} to end on signal {sig}"
        );
        assert!(!st.success(), "{call}: {out} {err}");
        assert!(out.is_empty(), "{call} must not have returned: {out}");
    }
    // EINTR where Linux reports it (a handler without SA_RESTART), and no
    // descriptors left behind by 60 interrupted calls, in the program or in netcell.
    let blackhole = "10.88.0.99:80";
    let (st, out, err) = Container::new(mode)
        .on_tap_ns(&ns)
        .exec(["python3", &py("sigtest.py"), "eintr", blackhole])
        .run();
    assert!(st.success(), "{out} {err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("eintr rounds done"))
        .unwrap_or_else(|| panic!("{out} {err}"));
    assert!(
        !out.contains("round "),
        "calls that did not fail with EINTR: {out}"
    );
    let words: Vec<&str> = line.split_whitespace().collect();
    let (fds_before, fds_after) = (words[words.len() - 2], words[words.len() - 1]);
    assert_eq!(
        fds_before, fds_after,
        "the program leaked descriptors: {line}"
    );
    // With SA_RESTART the calls go on and complete.
    let (st, out, err) = Container::new(mode)
        .on_tap_ns(&ns)
        .exec(["python3", &py("sigtest.py"), "restart", blackhole])
        .run();
    assert!(st.success(), "{out} {err}");
    for w in [
        "accept after restart ok handler ran 1",
        "recvfrom after restart ok handler ran 2",
        "connect after restart ok",
    ] {
        assert!(out.contains(w), "missing {w:?}: {out} {err}");
    }
}

/// netcell's own descriptors after interrupted calls: the supervisor keeps a copy
/// of a blocked call's socket and must close it when the call ends.
/// Receives and sends that signals interrupt as netcell answers them (a signal
/// every 50 µs or so, handled with `SA_RESTART`, as Go's preemption does): no
/// datagram is lost to a receive whose answer failed (it goes back into the
/// stand-in), no send is made twice by its restart, and the dead
/// copies of a blocked call that each signal leaves go at once. Before: every
/// round soon ended in `ENOMEM` (epoll refused to watch a 500th copy of one
/// socket), and with datagrams taken at once the program lost even the
/// watchdog's kicks and stuck. What remains is the kernel's own race (an answer
/// it accepts and then drops for the signal): a few rounds in a thousand.
#[test]
fn a_signal_storm_loses_no_datagram() {
    let rounds = 3000;
    let (st, out, err) = Container::new(Mode::Seccomp)
        .exec(["python3", &py("signal_storm.py"), &rounds.to_string()])
        .run();
    assert!(st.success(), "{out}{err}");
    // rounds R signals S lost L duplicated D
    let f: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(f.first(), Some(&"rounds"), "{out}");
    let n = |i: usize| -> u64 { f[i].parse().unwrap() };
    assert!(
        n(3) > 1000,
        "the storm was too weak to test anything: {out}"
    );
    assert!(
        n(5) * 100 <= rounds && n(7) * 100 <= rounds,
        "more than 1 % of the datagrams lost or duplicated: {out}"
    );
}

#[test]
fn interrupted_calls_leave_no_descriptors_in_netcell() {
    require_root!();
    need("python3");
    let ns = tap_ns();
    let script = format!(
        "import os, subprocess, sys, time\n\
         def count(): return len(os.listdir('/proc/%d/fd' % os.getppid()))\n\
         subprocess.run([sys.executable, {sig:?}, 'eintr', '10.88.0.99:80'], check=True, stdout=subprocess.DEVNULL)\n\
         time.sleep(0.5); a = count()\n\
         subprocess.run([sys.executable, {sig:?}, 'eintr', '10.88.0.99:80'], check=True, stdout=subprocess.DEVNULL)\n\
         time.sleep(0.5); b = count()\n\
         print('netcell fds', a, b)\n",
        sig = py("sigtest.py")
    );
    let (st, out, err) = Container::new(Mode::Seccomp)
        .on_tap_ns(&ns)
        .exec(["python3", "-c", &script])
        .run();
    assert!(st.success(), "{out} {err}");
    let line = out.lines().find(|l| l.starts_with("netcell fds")).unwrap();
    let w: Vec<usize> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // 60 interrupted calls more, and netcell holds no more descriptors than before
    // (its sockets for the finished program are gone too).
    assert!(w[1] <= w[0], "netcell's descriptors grew: {line}");
}

fn threads_and_process_trees(mode: Mode) {
    need("python3");
    let dir = Scratch::new();
    std::fs::write(dir.path("t.txt"), "threaded").unwrap();
    // A ThreadingHTTPServer under 32 concurrent clients; a forked child and an
    // `env -i` grandchild (which drops LD_PRELOAD: only seccomp holds there) serve
    // and connect inside the container.
    let script = format!(
        r#"
import os, socket, subprocess, sys, threading, http.server, functools, urllib.request
H = functools.partial(http.server.SimpleHTTPRequestHandler, directory={d:?})
class Quiet(H.func):
    def log_message(self, *a): pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory={d:?}))
port = srv.server_address[1]
threading.Thread(target=srv.serve_forever, daemon=True).start()
ok = []
def get():
    ok.append(urllib.request.urlopen(f"http://127.0.0.1:{{port}}/t.txt", timeout=20).read())
ts = [threading.Thread(target=get) for _ in range(32)]
[t.start() for t in ts]; [t.join() for t in ts]
print("threaded", len(ok), set(ok))
code = f"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:{{port}}/t.txt', timeout=20).read().decode())"
print("env-i", subprocess.run(["sh", "-c", f"env -i {{sys.executable}} -c \"{{code}}\""], capture_output=True, text=True).stdout.strip())
pid = os.fork()
if pid == 0:
    print("forked", urllib.request.urlopen(f"http://127.0.0.1:{{port}}/t.txt", timeout=20).read().decode(), flush=True)
    os._exit(0)
os.waitpid(pid, 0)
"#,
        d = dir.0.display().to_string()
    );
    let (st, out, err) = Container::new(mode).exec(["python3", "-c", &script]).run();
    assert!(st.success(), "{out} {err}");
    assert!(out.contains("threaded 32 {b'threaded'}"), "{out} {err}");
    assert!(out.contains("forked threaded"), "{out} {err}");
    if mode == Mode::Seccomp {
        // env -i removes LD_PRELOAD: only under seccomp does the grandchild still
        // reach the container's server.
        assert!(out.contains("env-i threaded"), "{out} {err}");
    }
}

#[test]
fn go_server_threads_under_load_from_the_kernel_side() {
    require_root!();
    need("python3");
    let go = gonet().display().to_string();
    let ns = tap_ns();
    let mut c = Container::new(Mode::Seccomp)
        .on_tap_ns(&ns)
        .exec([&go, "serve", ":8081"])
        .command();
    let _server = Proc::spawn(c.stderr(Stdio::null()));
    wait_for(T, "the Go server", || {
        ns.sh(&format!("curl -s -m 1 http://{CONTAINER}:8081/"))
            .stdout
            .starts_with(b"go /")
            .then_some(())
    });
    // 200 requests from 16 kernel-side threads at once.
    let o = ns.sh(&format!(
        "python3 -c \"
import concurrent.futures, urllib.request
def get(i): return urllib.request.urlopen('http://{CONTAINER}:8081/%d' % i, timeout=20).read().decode()
with concurrent.futures.ThreadPoolExecutor(16) as ex: r = list(ex.map(get, range(200)))
print(sum(1 for i, b in enumerate(r) if b.startswith('go /%d from {KERNEL}:' % i)))
\""
    ));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "200",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn unprivileged_user_runs_a_container_on_its_own_tap() {
    require_root!();
    need("python3");
    need("setpriv");
    // A TAP device owned by `nobody`, in a namespace the test made: netcell runs as
    // nobody on it, and the container serves the kernel side and fetches from it.
    let ns = NetNs::new();
    let o = ns.sh(&format!(
        "ip tuntap add dev tap0 mode tap user 65534 group 65534 && ip addr add {KERNEL}/24 dev tap0 && ip link set tap0 up"
    ));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bin = netcell_for_all();
    let dir = Scratch::new();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(dir.path("k.txt"), "kernel file").unwrap();
    let _web = kernel_http_server(&ns, &dir.0, Stdio::null());
    let script = r#"
import os, socket, urllib.request, subprocess
print("uid", os.getuid(), os.geteuid())
print("fetch", urllib.request.urlopen("http://10.88.0.1:8000/k.txt", timeout=20).read().decode())
# netcell is non-dumpable: its memory and descriptors are closed to the container.
try:
    open("/proc/%d/environ" % os.getppid()).read(); print("netcell environ readable")
except PermissionError:
    print("netcell environ EACCES")
# A setuid-root program runs without privilege (no_new_privs).
print("ping", subprocess.run(["ping", "-c", "1", "-W", "5", "10.88.0.1"], capture_output=True).returncode)
s = socket.socket(); s.bind(("0.0.0.0", 8080)); s.listen()
open(os.environ["FLAG"], "w").close()
c, a = s.accept(); c.sendall(b"hello kernel"); c.close()
"#;
    let flag = dir.path("ready");
    // A privileged helper opens the TAP (this machine's /dev/net/tun may be closed to
    // other users) and hands the descriptor over; from then on it is nobody's show.
    let helper = r#"
import fcntl, os, struct, sys
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, 0x400454CA, struct.pack("16sH", b"tap0", 0x1002))
os.set_inheritable(fd, True)
argv = [a.replace("TAPFD", str(fd)) for a in sys.argv[1:]]
os.execvp(argv[0], argv)
"#;
    let mut c = ns.cmd("python3");
    c.args(["-c", helper, "setpriv"])
        .args(AS_NOBODY)
        .arg(bin)
        .args([
            "run",
            "--tap-fd",
            "TAPFD",
            "--addr",
            CONTAINER_CIDR,
            "--runtime-dir",
        ])
        .arg(&dir.0)
        .args(["--", "python3", "-c", script])
        .env("FLAG", &flag)
        .env_remove("XDG_RUNTIME_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let p = Proc::spawn(&mut c);
    wait_for(T, "the unprivileged container's server", || {
        flag.exists().then_some(())
    });
    let o = ns.sh(&format!("python3 -c \"import socket; print(socket.create_connection(('{CONTAINER}', 8080), timeout=10).recv(100).decode())\""));
    let (st, out, err) = p.wait_output(T);
    assert!(st.success(), "{out} {err}");
    assert!(out.contains("uid 65534 65534"), "{out}");
    assert!(out.contains("fetch kernel file"), "{out} {err}");
    assert!(out.contains("netcell environ EACCES"), "{out}");
    assert!(
        out.contains("ping 0"),
        "ping must work unprivileged: {out} {err}"
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "hello kernel");
}

in_both_modes!(signals, threads_and_process_trees);
