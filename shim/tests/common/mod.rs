//! Test fixtures: the `netcell` binary, network namespaces with a TAP device, and
//! processes that are stopped (by their own process group) when a test ends, also
//! when it fails. Names include the test process's pid and a counter so parallel
//! tests never collide.
#![allow(dead_code)]

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A name unique to this test process and call.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// The `netcell` binary under test: this build's, or `NETCELL_TEST_BIN` (to show
/// that a regression test fails on an older build).
pub fn netcell() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("NETCELL_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_netcell").into())
    })
}

/// A directory for built helpers, readable and executable by every user (the
/// unprivileged tests run them as `nobody`), made once per test process.
pub fn build_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(unique("netcell-build-"));
        std::fs::create_dir_all(&d).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        d
    })
}

/// A copy of the `netcell` binary that every user may run (the build directory
/// may be closed to `nobody`).
pub fn netcell_for_all() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let bin = build_dir().join("netcell");
        std::fs::copy(netcell(), &bin).unwrap();
        bin
    })
}

/// Runs `cmd` as `nobody` when the tests run as root (`setpriv`), else as is: the
/// attacks of a hostile container are made by an unprivileged user.
pub fn unprivileged(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args(AS_NOBODY).arg(program);
        c.env_remove("XDG_RUNTIME_DIR");
        c
    } else {
        Command::new(program)
    }
}

/// The system's Python, by its full path: a `python3` earlier in `PATH` may be a
/// per-user shim (pyenv) that `nobody` cannot run.
pub fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// Compiles a C test program (with `extra` flags such as `-static`) into the
/// build directory, once per name.
pub fn cc(source: &str, name: &str, extra: &[&str]) -> PathBuf {
    let out = build_dir().join(name);
    let o = Command::new("cc")
        .args(["-O1", "-pthread", "-Wall", "-o"])
        .arg(&out)
        .arg(programs().join(source))
        .args(extra)
        .output()
        .expect("cc (install gcc)");
    assert!(
        o.status.success(),
        "cc {source}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// How the container's programs reach its stack (`netcell run --shim`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Preload,
    Seccomp,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Preload => "preload",
            Mode::Seccomp => "seccomp",
        }
    }
}

/// How long a test waits for a container, a server or a file before it fails.
pub const T: Duration = Duration::from_secs(120);

/// The kernel side's address on the test TAP `tap0` (see `tap_ns`).
pub const KERNEL: &str = "10.88.0.1";
/// The container's address on `tap0`.
pub const CONTAINER: &str = "10.88.0.2";
/// `CONTAINER` with its prefix, for `--addr`.
pub const CONTAINER_CIDR: &str = "10.88.0.2/24";

/// `setpriv` options that make the rest of its command line run as `nobody`.
pub const AS_NOBODY: [&str; 4] = ["--reuid=65534", "--regid=65534", "--clear-groups", "--"];

/// A finished command: its exit status, stdout and stderr.
pub type Outcome = (ExitStatus, String, String);

/// A helper program of `tests/programs`, as a command-line argument.
pub fn py(script: &str) -> String {
    programs().join(script).display().to_string()
}

/// Runs `c` with its output captured and waits for it (at most `T`).
pub fn run(c: &mut Command) -> Outcome {
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    Proc::spawn(c).wait_output(T)
}

/// A namespace with `tap0`, MTU 1500, whose kernel side is `KERNEL`/24.
pub fn tap_ns() -> NetNs {
    NetNs::new().with_tap("tap0", &format!("{KERNEL}/24"), 1500)
}

/// `tap_ns` with fd00::1/64 on the kernel side too.
pub fn dual_stack_tap_ns() -> NetNs {
    let ns = tap_ns();
    let o = ns.sh("ip addr add fd00::1/64 dev tap0 nodad");
    assert!(o.status.success());
    ns
}

/// `python3 -m http.server 8000 --bind KERNEL --directory DIR` on the kernel side
/// of a `tap_ns`, its stdout discarded, its stderr (the access log) to `log`.
pub fn kernel_http_server(ns: &NetNs, dir: &Path, log: impl Into<Stdio>) -> Proc {
    let mut k = ns.cmd("python3");
    k.args(["-m", "http.server", "8000", "--bind", KERNEL, "--directory"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(log);
    Proc::spawn(&mut k)
}

/// dnsmasq on the kernel side of a `tap_ns`, authoritative for `.test`, with
/// `options` (its records), output discarded; the caller waits until it answers.
pub fn kernel_dnsmasq<S: AsRef<OsStr>>(ns: &NetNs, options: impl IntoIterator<Item = S>) -> Proc {
    let mut d = ns.cmd("dnsmasq");
    d.args([
        "-k",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        "--listen-address",
        KERNEL,
        "--pid-file=",
        "--user=root",
        "--local=/test/",
    ])
    .args(options)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    Proc::spawn(&mut d)
}

/// Who runs `netcell`.
#[derive(Clone, Copy)]
enum User {
    /// The test's own user.
    Caller,
    /// `nobody` (by `setpriv`, when the tests run as root), with `netcell_for_all`.
    Nobody,
}

/// A `netcell run` command line, written in the order a test reads it:
///
/// ```ignore
/// let (st, out, err) = Container::new(mode)
///     .tap(&ns, "tap0", &[CONTAINER_CIDR])
///     .dns(KERNEL)
///     .sh("getent hosts web.test")
///     .run();
/// ```
///
/// Options and arguments go on the command line in the order they are given;
/// `exec` and `sh` put the `--` before the command, and what follows them is the
/// command's. With a namespace (`in_ns`, `tap`) netcell runs in it through `ip
/// netns exec`, without the test's `LD_PRELOAD` and `NETCELL_CONTROL` (`NetNs::cmd`).
/// Its stdout and stderr are piped, unless `quiet`; its stdin is inherited, unless
/// `stdin`.
pub struct Container<'a> {
    shim: Option<Mode>,
    user: User,
    ns: Option<&'a NetNs>,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    stdin: Option<Stdio>,
    quiet: bool,
}

impl<'a> Container<'a> {
    /// `netcell run --shim MODE`, as the test's user.
    pub fn new(mode: Mode) -> Self {
        Container {
            shim: Some(mode),
            user: User::Caller,
            ns: None,
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            quiet: false,
        }
    }

    /// `netcell run` (the default shim) as `nobody` (see `unprivileged`).
    pub fn nobody() -> Self {
        Container {
            shim: None,
            user: User::Nobody,
            ns: None,
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            quiet: false,
        }
    }

    /// `--shim MODE`, right after `run`.
    pub fn shim(mut self, mode: Mode) -> Self {
        self.shim = Some(mode);
        self
    }

    /// Runs netcell inside `ns`.
    pub fn in_ns(mut self, ns: &'a NetNs) -> Self {
        self.ns = Some(ns);
        self
    }

    /// Runs netcell inside `ns` on its TAP `dev`: `--tap DEV --addr A...`.
    pub fn tap(self, ns: &'a NetNs, dev: &str, addrs: &[&str]) -> Self {
        let mut c = self.in_ns(ns).args(["--tap", dev]);
        for a in addrs {
            c = c.args(["--addr", *a]);
        }
        c
    }

    /// The usual place in a `tap_ns`: `--tap tap0 --addr CONTAINER_CIDR --gateway
    /// KERNEL --mtu 1500`.
    pub fn on_tap_ns(self, ns: &'a NetNs) -> Self {
        self.tap(ns, "tap0", &[CONTAINER_CIDR])
            .gateway(KERNEL)
            .mtu(1500)
    }

    /// `--gateway ADDR`.
    pub fn gateway(self, addr: &str) -> Self {
        self.args(["--gateway", addr])
    }

    /// `--mtu N`.
    pub fn mtu(self, mtu: usize) -> Self {
        self.args(["--mtu", &mtu.to_string()])
    }

    /// `--dns ADDR`.
    pub fn dns(self, addr: &str) -> Self {
        self.args(["--dns", addr])
    }

    /// `--add-host NAME:ADDR`.
    pub fn add_host(self, name: &str, addr: &str) -> Self {
        self.args(["--add-host", &format!("{name}:{addr}")])
    }

    /// One more argument: a netcell option before `exec`/`sh`, the command's after.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// More arguments, as `arg`.
    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// The command: `-- ARGV...`.
    pub fn exec<S: AsRef<OsStr>>(self, argv: impl IntoIterator<Item = S>) -> Self {
        self.arg("--").args(argv)
    }

    /// The command `sh -c SCRIPT`.
    pub fn sh(self, script: &str) -> Self {
        self.exec(["sh", "-c", script])
    }

    /// An environment variable for netcell and so for the command.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// netcell's standard input (a host socket, for the boundary tests).
    pub fn stdin(mut self, stdin: impl Into<Stdio>) -> Self {
        self.stdin = Some(stdin.into());
        self
    }

    /// Discards stdout and stderr (for servers nobody reads).
    pub fn quiet(mut self) -> Self {
        self.quiet = true;
        self
    }

    /// The command line, for what the builder does not cover (stdin, `pre_exec`...).
    pub fn command(self) -> Command {
        let mut c = match (self.user, self.ns) {
            (User::Caller, None) => Command::new(netcell()),
            (User::Caller, Some(ns)) => ns.cmd(netcell()),
            (User::Nobody, None) => unprivileged(netcell_for_all()),
            (User::Nobody, Some(ns)) => {
                let mut c = ns.cmd("setpriv");
                c.args(AS_NOBODY)
                    .arg(netcell_for_all())
                    .env_remove("XDG_RUNTIME_DIR");
                c
            }
        };
        c.arg("run");
        if let Some(mode) = self.shim {
            c.args(["--shim", mode.name()]);
        }
        // Tests stay off the host's network unless they ask for the uplink: no
        // packet of theirs may leave for an address they did not create.
        let chosen = self.args.iter().any(|a| {
            ["--tap", "--tap-fd", "--uplink", "--net"].contains(&a.to_str().unwrap_or(""))
        });
        if !chosen {
            c.args(["--uplink", "none"]);
        }
        c.args(&self.args);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        if let Some(stdin) = self.stdin {
            c.stdin(stdin);
        }
        if self.quiet {
            c.stdout(Stdio::null()).stderr(Stdio::null());
        } else {
            c.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        c
    }

    /// Starts the container; it is stopped when the `Proc` is dropped.
    pub fn spawn(self) -> Proc {
        Proc::spawn(&mut self.command())
    }

    /// Runs the container to its end (at most `T`).
    pub fn run(self) -> Outcome {
        self.spawn().wait_output(T)
    }
}

/// Generates, for each test function `name(mode: Mode)`, the tests
/// `name::preload` and `name::seccomp`: one test matrix, parametrised by mode.
#[macro_export]
macro_rules! in_both_modes {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn preload() {
                    super::$name($crate::common::Mode::Preload)
                }
                #[test]
                fn seccomp() {
                    super::$name($crate::common::Mode::Seccomp)
                }
            }
        )*
    };
}

pub fn programs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs")
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Skips the calling test (returning early) unless it runs as root.
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::common::is_root() {
            eprintln!("SKIPPED: this test needs root (network namespaces and TAP devices); run as root to include it");
            return;
        }
    };
}

/// Panics with a clear message if a program the test needs is missing.
pub fn need(program: &str) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{program} is not installed; .ci/run installs the test tools (apt-get install ...)"
    );
}

fn sh(cmd: &str) -> Output {
    Command::new("sh").arg("-c").arg(cmd).output().expect("sh")
}

fn run_ok(cmd: &str) {
    let o = sh(cmd);
    assert!(
        o.status.success(),
        "`{cmd}` failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A process started by a test; its whole process group is stopped on drop.
///
/// A watchdog kills the group after [`WATCHDOG`] if the test has not stopped it
/// by then: a hung netcell then fails its test (the test's reads of the group's
/// output end) instead of stalling the whole run.
pub struct Proc {
    pub child: Child,
    stopped: bool,
    /// Set (under its lock) once the group is stopped; the watchdog kills only
    /// while it is clear, so it never signals a reused process group.
    done: std::sync::Arc<std::sync::Mutex<bool>>,
}

/// How long a process started by a test may live.
pub const WATCHDOG: Duration = Duration::from_secs(300);

impl Proc {
    pub fn spawn(cmd: &mut Command) -> Proc {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
        let done = std::sync::Arc::new(std::sync::Mutex::new(false));
        let pgid = child.id() as i32;
        let watch = done.clone();
        std::thread::spawn(move || {
            let t0 = Instant::now();
            while t0.elapsed() < WATCHDOG {
                std::thread::sleep(Duration::from_millis(500));
                if *watch.lock().unwrap_or_else(|e| e.into_inner()) {
                    return;
                }
            }
            let done = watch.lock().unwrap_or_else(|e| e.into_inner());
            if !*done {
                eprintln!("watchdog: process group {pgid} still ran after {WATCHDOG:?}: killed");
                // SAFETY: signalling the process group this test created and has
                // not reaped (`done` is clear and its lock held).
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
            }
        });
        Proc {
            child,
            stopped: false,
            done,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit, at most `timeout`; returns its output.
    pub fn wait_output(mut self, timeout: Duration) -> Outcome {
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                self.stopped = true;
                *self.done.lock().unwrap_or_else(|e| e.into_inner()) = true;
                let mut out = String::new();
                let mut err = String::new();
                if let Some(mut o) = self.child.stdout.take() {
                    let _ = o.read_to_string(&mut out);
                }
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                return (st, out, err);
            }
            if t0.elapsed() > timeout {
                let pid = self.pid();
                let (out, err) = (self.child.stdout.take(), self.child.stderr.take());
                drop(self);
                // What it printed before it was stopped says where it hung.
                panic!(
                    "process {pid} did not exit within {timeout:?}; it printed:\n{}\nand on stderr:\n{}",
                    read_within(out, Duration::from_secs(5)),
                    read_within(err, Duration::from_secs(5))
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) {
        if !self.stopped {
            self.stopped = true;
            // The watchdog stays away while the group is signalled and reaped.
            let done = self.done.clone();
            let mut guard = done.lock().unwrap_or_else(|e| e.into_inner());
            *guard = true;
            let pgid = self.child.id() as i32;
            // SAFETY: signalling the process group this test created.
            unsafe {
                libc::kill(-pgid, libc::SIGTERM);
            }
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(3) {
                if let Ok(Some(_)) = self.child.try_wait() {
                    // SAFETY: as above; stragglers of the group.
                    unsafe { libc::kill(-pgid, libc::SIGKILL) };
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // SAFETY: as above.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let _ = self.child.wait();
        }
    }
}

/// All of `pipe` up to its end, or what arrived within `limit` (a process
/// that escaped its group can hold a pipe open).
fn read_within(pipe: Option<impl Read + Send + 'static>, limit: Duration) -> String {
    let Some(mut pipe) = pipe else {
        return String::new();
    };
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (sink, (tx, rx)) = (got.clone(), std::sync::mpsc::channel::<()>());
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = pipe.read(&mut buf) {
            sink.lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(&buf[..n]);
        }
        drop(tx);
    });
    // Disconnected at the pipe's end, or timed out.
    let _ = rx.recv_timeout(limit);
    let got = got.lock().unwrap_or_else(|e| e.into_inner());
    String::from_utf8_lossy(&got).into_owned()
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A network namespace with `lo` up and a TAP device `tap0` whose kernel side has
/// `kernel_cidr`; removed on drop.
pub struct NetNs {
    pub name: String,
}

impl NetNs {
    pub fn new() -> NetNs {
        let name = unique("nct");
        run_ok(&format!("ip netns add {name}"));
        let ns = NetNs { name };
        run_ok(&format!("ip -n {} link set lo up", ns.name));
        ns
    }

    /// Adds a persistent TAP device `dev` with the kernel side's address, link up.
    pub fn with_tap(self, dev: &str, kernel_cidr: &str, mtu: usize) -> NetNs {
        run_ok(&format!(
            "ip -n {0} tuntap add dev {dev} mode tap && ip -n {0} link set {dev} mtu {mtu} && ip -n {0} addr add {kernel_cidr} dev {dev} && ip -n {0} link set {dev} up",
            self.name
        ));
        self
    }

    /// A command run inside the namespace (a kernel peer, not under netcell).
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c.env_remove("LD_PRELOAD").env_remove("NETCELL_CONTROL");
        c
    }

    pub fn sh(&self, cmd: &str) -> Output {
        sh(&format!(
            "ip netns exec {} sh -c '{}'",
            self.name,
            cmd.replace('\'', "'\\''")
        ))
    }

    /// Packet counters of a device, from the kernel side: (rx_packets, tx_packets).
    pub fn counters(&self, dev: &str) -> (u64, u64) {
        let read = |f: &str| -> u64 {
            let o = self.sh(&format!("cat /sys/class/net/{dev}/statistics/{f}"));
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse()
                .unwrap_or(0)
        };
        (read("rx_packets"), read("tx_packets"))
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = sh(&format!(
            "ip netns pids {0} | xargs -r kill -9; ip netns del {0}",
            self.name
        ));
    }
}

/// Polls `f` every 50 ms until it returns `Some`, at most `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A scratch directory for one test, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new() -> Scratch {
        let p = std::env::temp_dir().join(unique("netcell-test-"));
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Prints its pid, then execs its arguments: netcell started this way tells the
/// test its pid first.
pub const PID_LAUNCHER: &str =
    "import os,sys; print(os.getpid(), flush=True); os.execvp(sys.argv[1], sys.argv[1:])";

/// Spawns `c` (a `PID_LAUNCHER` command line) and reads the pid it reports; the
/// rest of its output is in the returned reader.
pub fn spawn_with_pid(
    c: &mut Command,
) -> (Proc, std::io::BufReader<std::process::ChildStdout>, u32) {
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut p = Proc::spawn(c);
    let mut stdout = std::io::BufReader::new(p.child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    let pid = first.trim().parse().expect("the launcher's pid");
    (p, stdout, pid)
}

/// Lowers netcell's descriptor limit (as its user: root here may lack
/// CAP_SYS_RESOURCE).
pub fn limit_descriptors(pid: u32, n: usize) {
    let o = unprivileged(Path::new("/usr/bin/prlimit"))
        .args(["--pid", &pid.to_string(), &format!("--nofile={n}:{n}")])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Runs `script` (a program of `tests/programs`, with `args`) on the kernel and
/// in `container` (a builder without its command yet), asserts that both succeed
/// and print the same, and returns what they print. As root the kernel's run is
/// in a network namespace of its own with only `lo` (what the container has;
/// and tests running at the same time do not see each other's packets).
pub fn same_as_the_host(container: Container<'_>, script: &str, args: &[&str]) -> String {
    need("python3");
    let ns = is_root().then(NetNs::new);
    let mut k = match &ns {
        Some(ns) => ns.cmd(python()),
        None => Command::new(python()),
    };
    let host = k.arg(py(script)).args(args).output().unwrap();
    let host_out = String::from_utf8_lossy(&host.stdout).into_owned();
    assert!(
        host.status.success(),
        "{script} on the host: {host_out}{}",
        String::from_utf8_lossy(&host.stderr)
    );
    let (st, out, err) = container.exec([python(), &py(script)]).args(args).run();
    assert!(st.success(), "{script} in the container: {out}{err}");
    assert_eq!(
        out, host_out,
        "{script}: container (left) and host (right)\n{err}"
    );
    out
}

/// "key value" lines (the value is the last word).
pub fn facts(out: &str) -> std::collections::BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

/// The attack program of the boundary tests: (dynamic, static).
pub fn attack() -> &'static (PathBuf, PathBuf) {
    static BINS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BINS.get_or_init(|| {
        need("cc");
        (
            cc("attack.c", "attack", &[]),
            cc("attack.c", "attack-static", &["-static"]),
        )
    })
}

/// The test program `gonet`, built statically (`CGO_ENABLED=0`) once per test run.
pub fn gonet() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        need("go");
        let out = build_dir().join("gonet");
        let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go");
        let o = Command::new("go")
            .args(["build", "-o"])
            .arg(&out)
            .arg(programs().join("gonet/main.go"))
            .env("CGO_ENABLED", "0")
            .env("GOCACHE", cache.join("cache"))
            .env("GOPATH", cache.join("path"))
            .env("GOFLAGS", "-mod=mod")
            .output()
            .expect("go build");
        assert!(
            o.status.success(),
            "go build: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let f = Command::new("file").arg(&out).output();
        if let Ok(f) = f {
            let s = String::from_utf8_lossy(&f.stdout);
            assert!(s.contains("statically linked"), "gonet must be static: {s}");
        }
        out
    })
}

/// Runs `netcell ARGS...` from the host (the owner's commands): exit code,
/// stdout, stderr.
pub fn nc(args: &[&str]) -> (Option<i32>, String, String) {
    let o = Command::new(netcell()).args(args).output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Starts `c` with its output piped; its process and its stdout to read.
pub fn spawn_reading(
    c: &mut std::process::Command,
) -> (Proc, std::io::BufReader<std::process::ChildStdout>) {
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut p = Proc::spawn(c);
    let out = std::io::BufReader::new(p.child.stdout.take().unwrap());
    (p, out)
}

/// `netcell stats NAME --json` of a container in `rd`: (TCP sockets, UDP
/// sockets, buffer memory).
pub fn held(name: &str, rd: &str) -> Option<(u64, u64, u64)> {
    let (code, out, _) = nc(&["stats", name, "--json", "--runtime-dir", rd]);
    if code != Some(0) {
        return None;
    }
    let num = |key: &str| -> u64 {
        out.split(&format!("\"{key}\":"))
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    Some((
        num("listen") + num("established") + num("other"),
        num("udp"),
        num("buffer_memory"),
    ))
}

pub fn fds_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}
