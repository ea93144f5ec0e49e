//! What container runtimes and sandboxes do in the network namespace they make,
//! under netcell: bringing `lo` up and giving it its address are served by the
//! container's stack (its `lo` is up with 127.0.0.1/8), for anyone, as Linux
//! does it for the namespace's own root; other changes still need
//! `CAP_NET_ADMIN`.

mod common;

use common::*;

/// Without any capability, lo's own setup succeeds (ioctl and rtnetlink, with
/// `NLM_F_EXCL` as bubblewrap sends it); taking lo down or adding another
/// address is refused.
fn lo_setup_is_served_for_anyone(mode: Mode) {
    let (st, out, err) = Container::new(mode)
        .exec([
            "setpriv",
            "--bounding-set=-all",
            "--",
            "python3",
            &py("lo_setup.py"),
        ])
        .run();
    assert!(st.success(), "{out} {err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "ioctl lo up ok",
            "ioctl lo down EPERM",
            "netlink lo 127.0.0.1/8 ok",
            "netlink lo up ok",
            "netlink lo 127.0.0.2/8 EPERM",
        ],
        "{err}"
    );
}

in_both_modes!(lo_setup_is_served_for_anyone);

/// `bwrap --unshare-net` inside a container: bubblewrap's loopback setup
/// (rtnetlink, from a new user namespace) succeeds and the sandbox's programs
/// use the container's loopback. (Under `--shim seccomp` netcell's Landlock
/// wall forbids bubblewrap's mounts, so this runs under preload.)
#[test]
fn bubblewrap_with_its_own_network_runs() {
    need("bwrap");
    let script = "import socket\n\
                  l = socket.socket(); l.bind(('127.0.0.1', 8123)); l.listen()\n\
                  c = socket.create_connection(('127.0.0.1', 8123)); print('loopback ok')\n";
    let (st, out, err) = Container::new(Mode::Preload)
        .exec([
            "bwrap",
            "--unshare-user",
            "--unshare-net",
            "--dev-bind",
            "/",
            "/",
            "python3",
            "-c",
            script,
        ])
        .run();
    if err.contains("setting up uid map") || err.contains("No permissions to create new namespace")
    {
        eprintln!("SKIPPED: bubblewrap cannot make user namespaces here: {err}");
        return;
    }
    assert!(st.success(), "{out} {err}");
    assert_eq!(out.trim(), "loopback ok", "{err}");
}

// ---- OCI containers: `netcell agent` with crun ---------------------------------

/// A crun setup of the test's own: bundles, crun's state directory, and the
/// agent, all in network namespace `ns` (what a container's TAP annotation
/// names is found there, and nothing is made in the host's).
struct Crun<'a> {
    ns: &'a NetNs,
    dir: Scratch,
    agent: Option<Proc>,
}

const CRUN_SKIP: &str = "crun";

impl<'a> Crun<'a> {
    /// `None` (with the reason printed) where crun cannot run here.
    fn new(ns: &'a NetNs) -> Option<Crun<'a>> {
        if std::process::Command::new("crun")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("SKIPPED: {CRUN_SKIP} is not installed");
            return None;
        }
        let c = Crun {
            ns,
            dir: Scratch::new(),
            agent: None,
        };
        Some(c)
    }

    fn socket(&self) -> std::path::PathBuf {
        self.dir.path("agent.sock")
    }

    fn start_agent(&mut self) {
        let mut a = self.ns.cmd(netcell());
        a.args(["agent", "--listen"])
            .arg(self.socket())
            .arg("--runtime-dir")
            .arg(self.dir.path("run"))
            .args(["--allow-annotation", "netcell.tap"])
            .args(["--allow-annotation", "netcell.map-host-loopback"])
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(self.dir.path("agent.log")).unwrap());
        self.agent = Some(Proc::spawn(&mut a));
        wait_for(T, "the agent's socket", || {
            self.socket().exists().then_some(())
        });
    }

    fn agent_log(&self) -> String {
        std::fs::read_to_string(self.dir.path("agent.log")).unwrap_or_default()
    }

    /// A bundle named `id`: the host's /usr and /etc read-only over an empty
    /// root, a private /tmp, the command `args`, `annotations`, and netcell's
    /// seccomp profile pointing at the agent.
    fn bundle(&self, id: &str, args: &[&str], annotations: &[(&str, &str)]) -> std::path::PathBuf {
        let b = self.dir.path(id);
        let root = b.join("rootfs");
        for d in ["usr", "etc", "proc", "dev", "sys", "tmp", "root", "run"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        for l in ["bin", "lib", "lib64", "sbin"] {
            let _ = std::os::unix::fs::symlink(format!("usr/{l}"), root.join(l));
        }
        let (code, profile, err) = nc(&["profile", "--listener", self.socket().to_str().unwrap()]);
        assert_eq!(code, Some(0), "{err}");
        let q = |s: &str| format!("{s:?}");
        let args: Vec<String> = args.iter().map(|a| q(a)).collect();
        let ann: Vec<String> = annotations
            .iter()
            .map(|(k, v)| format!("{}: {}", q(k), q(v)))
            .collect();
        let config = format!(
            r#"{{
  "ociVersion": "1.0.0",
  "process": {{
    "terminal": false, "user": {{"uid": 0, "gid": 0}},
    "args": [{args}],
    "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
    "cwd": "/",
    "capabilities": {{
      "bounding": ["CAP_NET_RAW", "CAP_NET_BIND_SERVICE", "CAP_KILL"],
      "effective": ["CAP_NET_RAW", "CAP_NET_BIND_SERVICE", "CAP_KILL"],
      "permitted": ["CAP_NET_RAW", "CAP_NET_BIND_SERVICE", "CAP_KILL"]
    }},
    "noNewPrivileges": true
  }},
  "root": {{"path": "rootfs", "readonly": true}},
  "hostname": "c",
  "mounts": [
    {{"destination": "/proc", "type": "proc", "source": "proc"}},
    {{"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}},
    {{"destination": "/usr", "type": "bind", "source": "/usr", "options": ["rbind", "ro"]}},
    {{"destination": "/etc", "type": "bind", "source": "/etc", "options": ["rbind", "ro"]}},
    {{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]}}
  ],
  "annotations": {{{ann}}},
  "linux": {{
    "namespaces": [{{"type": "pid"}}, {{"type": "ipc"}}, {{"type": "uts"}}, {{"type": "mount"}}, {{"type": "network"}}],
    "seccomp": {profile}
  }}
}}"#,
            args = args.join(", "),
            ann = ann.join(", "),
        );
        std::fs::write(b.join("config.json"), config).unwrap();
        b
    }

    /// `crun ARGS` (in a private mount namespace without the hybrid layout's
    /// unified cgroup mount, which crun 1.8 refuses, and with cgroups off: tests
    /// only). crun itself runs in the host's network namespace (`ip netns exec`
    /// remounts /sys, which crun refuses too); the containers get new ones, and
    /// their network is the agent's, in the test's namespace.
    fn crun(&self, args: &str) -> std::process::Command {
        let state = self.dir.path("crun-state");
        let mut c = std::process::Command::new("unshare");
        c.args([
            "-m",
            "sh",
            "-c",
            &format!(
                "umount /sys/fs/cgroup/unified 2>/dev/null; exec crun --root {} --cgroup-manager=disabled {args}",
                state.display()
            ),
        ]);
        c
    }

    fn run(&self, id: &str, args: &[&str], annotations: &[(&str, &str)]) -> Outcome {
        let b = self.bundle(id, args, annotations);
        run(&mut self.crun(&format!("run -b {} {id}", b.display())))
    }
}

impl Drop for Crun<'_> {
    fn drop(&mut self) {
        let state = self.dir.path("crun-state");
        if let Ok(ids) = std::fs::read_dir(&state) {
            for id in ids.flatten() {
                let id = id.file_name().to_string_lossy().into_owned();
                let _ = self.crun(&format!("delete -f {id}")).output();
            }
        }
    }
}

/// A crun container served by `netcell agent` gets a stack of its own: python's
/// server and client on its loopback, two containers on the same port at once,
/// `crun exec` on the same stack, a kernel peer through a TAP its annotations
/// give, a bad annotation ends that container (exit 137) with the message on its
/// standard error, and the agent keeps serving.
#[test]
fn crun_containers_are_served_by_the_agent() {
    require_root!();
    let ns = tap_ns();
    let Some(mut c) = Crun::new(&ns) else { return };
    c.start_agent();
    // SIOCGIFCONF with high bits set in the request (the kernel uses the low
    // 32): netcell's, so the container's interfaces (its stack's eth0), not
    // those of its kernel namespace (only lo) nor the host's.
    let ifconf = "import socket, fcntl, struct, array\n\
                  s = socket.socket(); buf = array.array('B', bytes(40 * 8))\n\
                  r = fcntl.ioctl(s, (1 << 32) | 0x8912, struct.pack('iL', len(buf), buf.buffer_info()[0]))\n\
                  n = struct.unpack('iL', r)[0]\n\
                  print([bytes(buf[i:i + 16]).split(bytes(1))[0].decode() for i in range(0, n, 40)])\n";
    let (st, out, err) = c.run(
        "ifconf",
        &["python3", "-c", ifconf],
        &[("netcell.tap", "tap0"), ("netcell.addr", CONTAINER_CIDR)],
    );
    assert!(st.success(), "{out} {err}\n{}", c.agent_log());
    assert_eq!(out.trim(), "['lo', 'eth0']", "{err}");
    let echo = "import socket, sys\n\
                l = socket.socket(); l.bind(('127.0.0.1', 8080)); l.listen()\n\
                k = socket.create_connection(('127.0.0.1', 8080)); a, _ = l.accept()\n\
                k.send(b'hi'); print('loopback', a.recv(2).decode())\n\
                try:\n  socket.create_connection(('127.0.0.1', 8081)); print('8081 reached')\n\
                except OSError as e: print('8081', e.errno)\n";
    let (st, out, err) = c.run(
        "one",
        &["python3", "-c", echo],
        &[("netcell.uplink", "none")],
    );
    assert!(st.success(), "{out} {err}\n{}", c.agent_log());
    assert_eq!(out, format!("loopback hi\n8081 {}\n", libc::ECONNREFUSED));
    // Two at once on 8080, one also on 8081: neither sees the other's.
    let serve = "import socket, time\n\
                 l = socket.socket(); l.bind(('127.0.0.1', 8080)); l.listen()\n\
                 m = socket.socket(); m.bind(('127.0.0.1', 8081)); m.listen()\n\
                 print('serving', flush=True); time.sleep(8)\n";
    let b = c.bundle(
        "two",
        &["python3", "-c", serve],
        &[("netcell.uplink", "none")],
    );
    let mut two = c.crun(&format!("run -b {} two", b.display()));
    let two = Proc::spawn(two.stdout(std::process::Stdio::piped()));
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let (st, out, err) = c.run(
        "three",
        &["python3", "-c", echo],
        &[("netcell.uplink", "none")],
    );
    assert!(st.success(), "{out} {err}");
    assert_eq!(out, format!("loopback hi\n8081 {}\n", libc::ECONNREFUSED));
    let (ls, _, _) = (
        nc(&["ls", "--runtime-dir", c.dir.path("run").to_str().unwrap()]).1,
        0,
        0,
    );
    assert!(ls.contains("two"), "{ls}");
    // crun exec joins "two"'s stack: its 8081 listener is there.
    let (st, out, err) = run(&mut c.crun(
        "exec two python3 -c \"import socket; socket.create_connection(('127.0.0.1', 8081)); print('exec reached 8081')\"",
    ));
    assert!(st.success(), "{out} {err}");
    assert_eq!(out.trim(), "exec reached 8081");
    // netcell stats sees its two listeners.
    let (code, stats, err) = nc(&[
        "stats",
        "two",
        "--json",
        "--runtime-dir",
        c.dir.path("run").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(stats.contains("\"tcp\":{\"listen\":2,"), "{stats}");
    // netcell exec makes its program one of "two"'s processes: on its stack
    // (8081 is there), in its root, pid and UTS namespaces, with its bounding
    // and effective capabilities and no_new_privs, under its seccomp profile
    // (io_uring_setup: ENOSYS by netcell's rules; the kernel would say EFAULT).
    let probe = "import socket, os, ctypes\n\
                 socket.create_connection(('127.0.0.1', 8081)); print('exec reached 8081')\n\
                 print('root', ' '.join(sorted(os.listdir('/'))))\n\
                 print('pid1', open('/proc/1/cmdline', 'rb').read().split(bytes(1))[0].decode())\n\
                 st = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines())\n\
                 print('caps', st['CapBnd'].strip(), st['CapEff'].strip(), st['NoNewPrivs'].strip())\n\
                 print('uts', socket.gethostname())\n\
                 libc = ctypes.CDLL(None, use_errno=True)\n\
                 print('io_uring', libc.syscall(425, 1, 0), ctypes.get_errno())\n";
    let (code, out, err) = nc(&[
        "exec",
        "two",
        "--runtime-dir",
        c.dir.path("run").to_str().unwrap(),
        "--",
        "python3",
        "-c",
        probe,
    ]);
    assert_eq!(code, Some(0), "{out} {err}\n{}", c.agent_log());
    assert_eq!(
        out,
        format!(
            "exec reached 8081\nroot bin dev etc lib lib64 proc root run sbin sys tmp usr\n\
             pid1 python3\ncaps 0000000000002420 0000000000002420 1\nuts c\nio_uring -1 {}\n",
            libc::ENOSYS
        ),
        "{err}"
    );
    // Its exit status comes back; a program the container lacks is 127.
    let rd = c.dir.path("run");
    let rd = rd.to_str().unwrap();
    let (code, _, _) = nc(&[
        "exec",
        "two",
        "--runtime-dir",
        rd,
        "--",
        "sh",
        "-c",
        "exit 7",
    ]);
    assert_eq!(code, Some(7));
    let (code, _, err) = nc(&["exec", "two", "--runtime-dir", rd, "--", "no-such-program"]);
    assert_eq!(code, Some(127), "{err}");
    // The caller's descriptors never enter the container (a terminal there
    // could be typed into with TIOCSTI): the program's are pipes, relayed.
    let input = c.dir.path("stdin.txt");
    std::fs::write(&input, "from the caller\n").unwrap();
    let out = std::process::Command::new(netcell())
        .args(["exec", "two", "--runtime-dir", rd, "--", "sh", "-c"])
        .arg("cat; readlink /proc/self/fd/0 /proc/self/fd/1 /proc/self/fd/2")
        .stdin(std::fs::File::open(&input).unwrap())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.first(), Some(&"from the caller"), "{text}");
    assert!(
        lines.len() == 4 && lines[1..].iter().all(|l| l.starts_with("pipe:[")),
        "{text}"
    );
    let (st, out, _) = two.wait_output(T);
    assert!(st.success() && out.contains("serving"), "{out}");
    // A kernel peer through the TAP the annotations give.
    let mut srv = ns.cmd("python3");
    srv.args(["-m", "http.server", "8099", "--bind", KERNEL])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let _srv = Proc::spawn(&mut srv);
    let fetch = format!(
        "import urllib.request, time\n\
         for i in range(50):\n  \
           try: print('status', urllib.request.urlopen('http://{KERNEL}:8099/', timeout=2).status); break\n  \
           except OSError: time.sleep(0.2)\n"
    );
    let (st, out, err) = c.run(
        "tapped",
        &["python3", "-c", &fetch],
        &[
            ("netcell.tap", "tap0"),
            ("netcell.addr", CONTAINER_CIDR),
            ("netcell.gateway", KERNEL),
        ],
    );
    assert!(st.success(), "{out} {err}\n{}", c.agent_log());
    assert_eq!(out.trim(), "status 200");
    // The world through the uplink: the agent's namespace's loopback, mapped.
    let mut host = ns.cmd("python3");
    host.args(["-m", "http.server", "8098", "--bind", "127.0.0.1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let _host = Proc::spawn(&mut host);
    let fetch = "import urllib.request, time\n\
                 for i in range(50):\n  \
                   try: print('uplink', urllib.request.urlopen('http://10.0.2.2:8098/', timeout=2).status); break\n  \
                   except OSError: time.sleep(0.2)\n";
    let (st, out, err) = c.run(
        "uplinked",
        &["python3", "-c", fetch],
        &[("netcell.map-host-loopback", "10.0.2.2")],
    );
    assert!(st.success(), "{out} {err}\n{}", c.agent_log());
    assert_eq!(out.trim(), "uplink 200");
    // A bad annotation: that container ends, with the message, the agent serves on.
    let (st, out, err) = c.run(
        "bad",
        &[
            "python3",
            "-c",
            "import socket; socket.socket(); print('ran')",
        ],
        &[("netcell.mtu", "big")],
    );
    assert_eq!(st.code(), Some(137), "{out} {err}");
    assert!(
        err.contains("netcell: invalid value 'big' for '--mtu <N>'"),
        "{err}"
    );
    assert!(!out.contains("ran"));
    // An annotation that would make the agent write a file: not without its
    // owner's leave (an image can carry annotations).
    let pcap = c.dir.path("should-not-exist.pcapng");
    let (st, out, err) = c.run(
        "sneaky",
        &[
            "python3",
            "-c",
            "import socket; socket.socket(); print('ran')",
        ],
        &[("netcell.pcap", pcap.to_str().unwrap())],
    );
    assert_eq!(st.code(), Some(137), "{out} {err}");
    assert!(
        err.contains("annotation netcell.pcap is not allowed by this agent"),
        "{err}"
    );
    assert!(!pcap.exists());
    let (st, out, _) = c.run(
        "after",
        &["python3", "-c", echo],
        &[("netcell.uplink", "none")],
    );
    assert!(st.success());
    assert!(out.starts_with("loopback hi"), "{out}");
}

/// The agent's descriptors and threads.
fn fds_and_threads(pid: u32) -> (usize, usize) {
    let count = |d: &str| std::fs::read_dir(format!("/proc/{pid}/{d}")).map_or(0, |r| r.count());
    (count("fd"), count("task"))
}

/// A container whose server dies, or whose agent dies, gets ENOSYS from its
/// next socket call, and no call hangs; 20 containers one after the other leave
/// the agent with the descriptors and threads it had, and no server or
/// directory behind.
#[test]
fn a_dead_server_fails_closed_and_served_containers_leave_nothing() {
    require_root!();
    let ns = tap_ns();
    let Some(mut c) = Crun::new(&ns) else { return };
    c.start_agent();
    let rundir = c.dir.path("run");
    let agent = c.agent.as_ref().unwrap().pid();
    // Warm up (the first container loads what the agent keeps), then count.
    let tiny = [
        "python3",
        "-c",
        "import socket; socket.socket(); print('ok')",
    ];
    let none = [("netcell.uplink", "none")];
    let (st, out, err) = c.run("warm", &tiny, &none);
    assert!(st.success() && out.trim() == "ok", "{out} {err}");
    wait_for(T, "the warm-up server's end", || {
        nc(&["ls", "--runtime-dir", rundir.to_str().unwrap()])
            .1
            .lines()
            .count()
            .eq(&1)
            .then_some(())
    });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let before = fds_and_threads(agent);
    for i in 0..20 {
        let (st, out, err) = c.run(&format!("n{i}"), &tiny, &none);
        assert!(st.success() && out.trim() == "ok", "{i}: {out} {err}");
    }
    wait_for(T, "every server's end", || {
        let ls = nc(&["ls", "--runtime-dir", rundir.to_str().unwrap()]).1;
        (ls.lines().count() == 1).then_some(())
    });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(
        fds_and_threads(agent),
        before,
        "the agent's fds and threads"
    );
    let left: Vec<_> = std::fs::read_dir(rundir.join("netcell"))
        .map(|r| r.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "directories left: {left:?}");
    // A server killed under a live container: ENOSYS, at once.
    let probe = "import socket, time, errno\n\
                 socket.socket(); print('first ok', flush=True)\n\
                 for i in range(300):\n  \
                   time.sleep(0.1)\n  \
                   try: socket.socket().close()\n  \
                   except OSError as e: print('then', errno.errorcode[e.errno], flush=True); break\n";
    let b = c.bundle("victim", &["python3", "-c", probe], &none);
    let mut v = c.crun(&format!("run -b {} victim", b.display()));
    let (v, mut v_out) = spawn_reading(&mut v);
    let server: u32 = wait_for(T, "the victim's server", || {
        let ls = nc(&["ls", "--runtime-dir", rundir.to_str().unwrap()]).1;
        ls.lines()
            .find(|l| l.starts_with("victim "))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
    });
    // Killed once the program was served (not before its first call).
    assert_eq!(first_line(&mut v_out), "first ok");
    unsafe_kill(server);
    let out = rest(v_out);
    let (_, _, err) = v.wait_output(T);
    assert!(out.contains("then ENOSYS"), "{out} {err}");
    // The agent killed: its containers' servers end with it (fail closed).
    let b = c.bundle("victim2", &["python3", "-c", probe], &none);
    let mut v = c.crun(&format!("run -b {} victim2", b.display()));
    let (v, mut v_out) = spawn_reading(&mut v);
    wait_for(T, "the second victim's server", || {
        let ls = nc(&["ls", "--runtime-dir", rundir.to_str().unwrap()]).1;
        ls.lines().any(|l| l.starts_with("victim2 ")).then_some(())
    });
    assert_eq!(first_line(&mut v_out), "first ok");
    unsafe_kill(agent);
    let out = rest(v_out);
    let (_, _, err) = v.wait_output(T);
    assert!(out.contains("then ENOSYS"), "{out} {err}");
}

/// The next line a process printed, trimmed.
fn first_line(r: &mut impl std::io::BufRead) -> String {
    let mut line = String::new();
    let _ = r.read_line(&mut line);
    line.trim().to_string()
}

/// The rest of what a process prints, until it closes its output.
fn rest(mut r: impl std::io::Read) -> String {
    let mut s = String::new();
    let _ = r.read_to_string(&mut s);
    s
}

/// SIGKILL to a process of the test's own.
fn unsafe_kill(pid: u32) {
    let st = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

// ---- podman ---------------------------------------------------------------------

/// A python script that serves and fetches on its loopback and says so.
const LOOPBACK: &str = "import socket, os\n\
    l = socket.socket(); l.bind(('127.0.0.1', 8080)); l.listen()\n\
    k = socket.create_connection(('127.0.0.1', 8080)); a, _ = l.accept()\n\
    k.send(b'hi'); print('loopback', a.recv(2).decode())\n";

/// `podman run --network none` with netcell's profile (built on podman's own
/// default) and a root of the host's /usr and /etc, as `user` (root: `None`),
/// in a private mount namespace without the hybrid layout's unified cgroup
/// mount (crun 1.8 refuses it; tests only) and with cgroups off.
fn podman_script(
    c: &Crun<'_>,
    root: &std::path::Path,
    (opts, run_args): (&str, &str),
    user_env: &str,
) -> String {
    let profile = c.dir.path("podman-profile.json");
    format!(
        "{user_env} {nc} profile --base /usr/share/containers/seccomp.json --listener {sock} > {profile} && \
         podman run --rm --network none --cgroups=disabled --ulimit nofile=20000:20000 \
         --ulimit nproc=32768:32768 --security-opt seccomp={profile} \
         --annotation netcell.uplink=none -v /usr:/usr:ro -v /etc:/etc:ro {opts} --rootfs {root} {run_args}",
        nc = netcell(),
        sock = c.socket().display(),
        profile = profile.display(),
        root = root.display(),
    )
}

/// A server on 8081 for 30 s, and a client of it.
const SERVE_8081: &str = "import socket, time; m = socket.socket(); m.bind(('127.0.0.1', 8081)); m.listen(); time.sleep(30)";
const FETCH_8081: &str =
    "import socket; socket.create_connection(('127.0.0.1', 8081)); print('exec reached 8081')";
/// What a process is, as /proc/self shows it to the process.
const IDENTITY: &str = "grep -E '^(Uid|Gid|Groups|CapBnd|CapEff|CapPrm|CapAmb|Seccomp|NoNewPrivs):' /proc/self/status; readlink /proc/self/ns/pid /proc/self/ns/user /proc/self/ns/mnt";

/// A rootful podman container with `--network none` and netcell's profile is
/// served by the agent: its programs use its own loopback.
#[test]
fn a_podman_container_is_served_by_the_agent() {
    require_root!();
    if std::process::Command::new("podman")
        .arg("--version")
        .output()
        .is_err()
        || !std::path::Path::new("/usr/share/containers/seccomp.json").exists()
    {
        eprintln!("SKIPPED: podman (and its default seccomp profile) is not installed");
        return;
    }
    let ns = tap_ns();
    let Some(mut c) = Crun::new(&ns) else { return };
    c.start_agent();
    let root = c.bundle("podroot", &["true"], &[]).join("rootfs");
    let script = podman_script(&c, &root, ("", &format!("python3 -c \"{LOOPBACK}\"")), "");
    let (st, out, err) = run(std::process::Command::new("unshare").args([
        "-m",
        "sh",
        "-c",
        &format!("umount /sys/fs/cgroup/unified 2>/dev/null; {script}"),
    ]));
    assert!(st.success(), "{out} {err}\n{}", c.agent_log());
    assert_eq!(out.trim(), "loopback hi", "{err}");
    assert!(c.agent_log().contains("served (pid"), "{}", c.agent_log());
    // podman exec joins the container's stack: run's listener on 8081 is there.
    let name = format!("ncpod{}", std::process::id());
    let serve = SERVE_8081;
    let detached = podman_script(
        &c,
        &root,
        (
            &format!("-d --name {name}"),
            &format!("python3 -c \"{serve}\""),
        ),
        "",
    )
    .replace("podman run --rm", "podman run");
    let (fetch, identity) = (FETCH_8081, IDENTITY);
    // netcell exec (by the container's id) too, as the same kind of process as
    // podman exec's: same user, capabilities, seccomp mode, namespaces.
    let (st, out, err) = run(std::process::Command::new("unshare").args([
        "-m",
        "sh",
        "-c",
        &format!(
            "umount /sys/fs/cgroup/unified 2>/dev/null; {detached} > /dev/null && sleep 1.5 && \
             podman exec {name} python3 -c \"{fetch}\" && \
             id=$(podman inspect -f '{{{{.Id}}}}' {name}) && \
             {nc} exec --runtime-dir {rd} $id -- python3 -c \"{fetch}\" && \
             echo podman: && podman exec {name} sh -c \"{identity}\" && \
             echo netcell: && {nc} exec --runtime-dir {rd} $id -- sh -c \"{identity}\"; \
             r=$?; podman rm -f -t 0 {name} > /dev/null; exit $r",
            nc = netcell(),
            rd = c.dir.path("run").display(),
        ),
    ]));
    assert!(st.success(), "{out} {err}\n{}", c.agent_log());
    let (execs, ids) = out.split_once("podman:\n").unwrap();
    assert_eq!(execs, "exec reached 8081\nexec reached 8081\n", "{err}");
    let (podman_id, netcell_id) = ids.split_once("netcell:\n").unwrap();
    assert!(
        podman_id.contains("CapBnd") && podman_id.contains("pid:["),
        "{ids}"
    );
    assert_eq!(podman_id, netcell_id);
    assert!(
        c.agent_log().contains("another process joins"),
        "{}",
        c.agent_log()
    );
}

/// The same as an ordinary user (rootless podman, and the user's own agent).
#[test]
fn a_rootless_podman_container_is_served_by_the_user_s_agent() {
    require_root!();
    if std::process::Command::new("podman")
        .arg("--version")
        .output()
        .is_err()
        || std::process::Command::new("useradd")
            .arg("--help")
            .output()
            .is_err()
        || !std::path::Path::new("/usr/share/containers/seccomp.json").exists()
    {
        eprintln!("SKIPPED: podman or useradd is not installed");
        return;
    }
    let user = format!("ncrl{}", std::process::id());
    let added = std::process::Command::new("useradd")
        .args(["-m", "-s", "/bin/sh", &user])
        .status()
        .unwrap();
    assert!(added.success());
    struct Gone(String);
    impl Drop for Gone {
        fn drop(&mut self) {
            // The user's processes (podman's pause process), then the user.
            if let Ok(o) = std::process::Command::new("ps")
                .args(["-u", &self.0, "-o", "pid="])
                .output()
            {
                for p in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = std::process::Command::new("kill")
                        .args(["-KILL", p])
                        .status();
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
            let _ = std::process::Command::new("userdel")
                .args(["-r", &self.0])
                .output();
        }
    }
    let _gone = Gone(user.clone());
    let id = |f: &str| -> String {
        let o = std::process::Command::new("id")
            .args([f, &user])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let uid = id("-u");
    let home = format!("/home/{user}");
    let xdg = format!("/run/user/{uid}");
    std::fs::create_dir_all(&xdg).unwrap();
    let chown = |p: &str| {
        std::process::Command::new("chown")
            .args(["-R", &format!("{user}:{}", id("-g")), p])
            .status()
            .unwrap()
    };
    chown(&xdg);
    // The root directory, the agent's socket and log: the user's.
    let work = format!("{home}/nc");
    std::fs::create_dir_all(format!("{work}/rootfs")).unwrap();
    for d in ["usr", "etc", "proc", "dev", "sys", "tmp", "root", "run"] {
        std::fs::create_dir_all(format!("{work}/rootfs/{d}")).unwrap();
    }
    for l in ["bin", "lib", "lib64", "sbin"] {
        let _ = std::os::unix::fs::symlink(format!("usr/{l}"), format!("{work}/rootfs/{l}"));
    }
    chown(&home);
    let script = format!(
        "export HOME={home} XDG_RUNTIME_DIR={xdg}; cd $HOME; \
         {nc} agent --listen {xdg}/agent.sock --runtime-dir {work}/run 2> {work}/agent.log & A=$!; \
         sleep 0.5; \
         {nc} profile --base /usr/share/containers/seccomp.json --listener {xdg}/agent.sock > {work}/p.json; \
         P=\"--network none --cgroups=disabled --security-opt seccomp={work}/p.json \
         --annotation netcell.uplink=none -v /usr:/usr:ro -v /etc:/etc:ro --rootfs {work}/rootfs\"; \
         podman run --rm $P python3 -c \"{LOOPBACK}\" || {{ kill $A; exit 1; }}; \
         podman run -d --name ncx $P python3 -c \"{SERVE_8081}\" > /dev/null && sleep 1.5 && \
         id=$(podman inspect -f {{{{.Id}}}} ncx) && \
         {nc} exec --runtime-dir {work}/run $id -- python3 -c \"{FETCH_8081}\" && \
         echo podman: && podman exec ncx sh -c \"{IDENTITY}\" && \
         echo netcell: && {nc} exec --runtime-dir {work}/run $id -- sh -c \"{IDENTITY}\"; \
         r=$?; podman rm -f -t 0 ncx > /dev/null; kill $A; exit $r",
        nc = netcell(),
    );
    let (st, out, err) = run(std::process::Command::new("unshare").args([
        "-m",
        "sh",
        "-c",
        &format!(
            "umount /sys/fs/cgroup/unified 2>/dev/null; exec su -s /bin/sh {user} -c '{}'",
            script.replace('\'', "'\\''")
        ),
    ]));
    let log = std::fs::read_to_string(format!("{work}/agent.log")).unwrap_or_default();
    assert!(st.success(), "{out} {err}\n{log}");
    let (first, ids) = out.split_once("podman:\n").unwrap_or((&out, ""));
    assert_eq!(first, "loopback hi\nexec reached 8081\n", "{err}\n{log}");
    assert!(log.contains("served (pid"), "{log}");
    // netcell exec's program is in the container's user namespace as the same
    // user, with the same capabilities, as podman exec's.
    let (podman_id, netcell_id) = ids.split_once("netcell:\n").unwrap();
    assert!(
        podman_id.contains("CapBnd") && podman_id.contains("pid:["),
        "{ids}"
    );
    assert_eq!(podman_id, netcell_id);
}

/// 70 `crun exec`s one after the other into one container all get its stack:
/// the listeners of execs that ended make room (the server takes at most 64
/// live ones).
#[test]
fn many_execs_keep_the_network() {
    require_root!();
    let ns = tap_ns();
    let Some(mut c) = Crun::new(&ns) else { return };
    c.start_agent();
    let serve = "import socket, time; m = socket.socket(); m.bind(('127.0.0.1', 8081)); m.listen(128); time.sleep(120)";
    let b = c.bundle(
        "long",
        &["python3", "-c", serve],
        &[("netcell.uplink", "none")],
    );
    let mut long = c.crun(&format!("run -b {} long", b.display()));
    let _long = Proc::spawn(long.stdout(std::process::Stdio::null()));
    let rundir = c.dir.path("run");
    wait_for(T, "the container's server", || {
        let ls = nc(&["ls", "--runtime-dir", rundir.to_str().unwrap()]).1;
        ls.lines().any(|l| l.starts_with("long ")).then_some(())
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    let script = "for i in $(seq 70); do crun --root ROOT exec long python3 -c \
                  \"import socket; socket.create_connection(('127.0.0.1', 8081))\" || { echo failed at $i; exit 1; }; done; echo all";
    let state = c.dir.path("crun-state");
    let (st, out, err) = run(std::process::Command::new("unshare").args([
        "-m",
        "sh",
        "-c",
        &format!(
            "umount /sys/fs/cgroup/unified 2>/dev/null; {}",
            script.replace("ROOT", state.to_str().unwrap())
        ),
    ]));
    assert!(st.success(), "{out} {err}\n{}", c.agent_log());
    assert_eq!(out.trim(), "all");
    let _ = c.crun("kill long KILL").output();
}
