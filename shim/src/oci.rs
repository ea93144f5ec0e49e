//! netcell as the network of OCI containers (crun, runc, podman): a seccomp
//! agent, and the profile that points runtimes at it.
//!
//! # Theory of operation
//!
//! The OCI runtime spec lets a container's seccomp profile name a
//! `listenerPath`: the runtime then connects there and hands over the filter's
//! notification descriptor (`SCM_RIGHTS`) with a JSON message of the container's
//! state — for `run`, and again for each `exec`. `netcell agent --listen SOCKET`
//! is that listener. It checks the peer (its own user, or root for a root
//! agent), checks that the descriptor is a seccomp notification descriptor,
//! reads the container's id and annotations, and hands the descriptor to that
//! container's *server*: a `netcell run` of its own (a child process, so that one
//! container's fault never reaches another's) that serves the container with its
//! own stack exactly as `netcell run` serves a command — the same socket
//! service and seccomp front end — but spawns nothing: it serves the
//! descriptors it is given (`run`'s, then each `exec`'s, over a private socket
//! from the agent) until no process uses any of them, then tears the stack
//! down. It appears in `netcell ls` and `netcell stats` under the container's
//! id.
//!
//! The container's options come from its annotations (`netcell.addr`,
//! `netcell.tap`, ...; [`ANNOTATIONS`]). One the server cannot take — an
//! unknown `netcell.*` key, a bad value, a TAP that cannot be opened — ends
//! that container, not the agent: the message is written to the container's
//! standard error and the container is killed, so the user sees it through the
//! runtime.
//!
//! `netcell profile` prints the seccomp profile: a base (podman's default, or
//! any) with netcell's calls turned to `SCMP_ACT_NOTIFY` in the form that takes
//! effect — a conditional notify next to an unconditional allow of the same
//! call is silently dropped by libseccomp's merge, so the calls are taken out of
//! the base's rules first, and `ioctl` is split by request — and
//! `listenerPath` set.

use netcell_sys as sys;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// The annotations netcell reads, and the `netcell run` option each becomes.
/// A value with commas is several options (`netcell.addr=10.0.0.2/24,fd00::2/64`).
pub const ANNOTATIONS: [(&str, &str); 12] = [
    ("netcell.tap", "--tap"),
    ("netcell.addr", "--addr"),
    ("netcell.gateway", "--gateway"),
    ("netcell.mtu", "--mtu"),
    ("netcell.uplink", "--uplink"),
    ("netcell.publish", "--publish"),
    ("netcell.filter", "--filter"),
    ("netcell.pcap", "--pcap"),
    ("netcell.dns", "--dns"),
    ("netcell.mac", "--mac"),
    ("netcell.max-sockets", "--max-sockets"),
    ("netcell.map-host-loopback", "--map-host-loopback"),
];

/// The annotations any container may carry. The others name files the agent
/// reads or writes, host devices or host ports — and an image can bring its own
/// annotations (podman copies them into the spec) — so the agent takes them
/// only where its owner allowed them (`--allow-annotation`).
pub const SAFE_ANNOTATIONS: [&str; 7] = [
    "netcell.addr",
    "netcell.gateway",
    "netcell.mtu",
    "netcell.uplink",
    "netcell.dns",
    "netcell.mac",
    "netcell.max-sockets",
];

/// The most descriptors (`run` and `exec`s) one container's server takes.
pub const MAX_LISTENERS: usize = 64;

/// The `netcell run` options of a container's annotations; `allowed`: the
/// annotations beyond [`SAFE_ANNOTATIONS`] the agent's owner allowed.
pub fn args_of(
    annotations: &Map<String, Value>,
    allowed: &[String],
) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (k, v) in annotations {
        if !k.starts_with("netcell.") {
            continue;
        }
        let Some((_, opt)) = ANNOTATIONS.iter().find(|(a, _)| a == k) else {
            let known: Vec<&str> = ANNOTATIONS.iter().map(|(a, _)| *a).collect();
            return Err(format!(
                "unknown annotation {k} (netcell takes {})",
                known.join(", ")
            ));
        };
        if !SAFE_ANNOTATIONS.contains(&k.as_str()) && !allowed.iter().any(|a| a == k) {
            return Err(format!(
                "annotation {k} is not allowed by this agent (its owner allows it with \
                 `netcell agent --allow-annotation {k}`)"
            ));
        }
        let Some(v) = v.as_str() else {
            return Err(format!("annotation {k}: a string is expected"));
        };
        // `--tap` takes commas itself (`--tap IF,addr=...`).
        if *opt == "--tap" {
            out.extend([opt.to_string(), v.to_string()]);
            continue;
        }
        for part in v.split(',').filter(|p| !p.is_empty()) {
            out.extend([opt.to_string(), part.to_string()]);
        }
    }
    Ok(out)
}

/// Checks `args` as `netcell run` would take them: the clap message if not.
fn check_args(name: &str, args: &[String]) -> Result<(), String> {
    use clap::Parser;
    let mut argv = vec![
        "netcell".to_string(),
        "run".into(),
        "--name".into(),
        name.into(),
    ];
    argv.extend(args.iter().cloned());
    argv.extend(["--".into(), "oci".into()]);
    // clap's first line says what is wrong; the rest is about --help.
    crate::cli::Cli::try_parse_from(argv)
        .map(drop)
        .map_err(|e| {
            let text = e.to_string();
            let line = text.lines().next().unwrap_or_default();
            line.trim_start_matches("error: ").to_string()
        })
}

// ---- the profile ------------------------------------------------------------

/// The x86-64 name of a call of the filter's table.
fn call_name(nr: u32) -> Option<&'static str> {
    let nr = i64::from(nr);
    Some(match nr {
        libc::SYS_socket => "socket",
        libc::SYS_socketpair => "socketpair",
        libc::SYS_connect => "connect",
        libc::SYS_accept => "accept",
        libc::SYS_accept4 => "accept4",
        libc::SYS_bind => "bind",
        libc::SYS_listen => "listen",
        libc::SYS_getsockname => "getsockname",
        libc::SYS_getpeername => "getpeername",
        libc::SYS_setsockopt => "setsockopt",
        libc::SYS_getsockopt => "getsockopt",
        libc::SYS_shutdown => "shutdown",
        libc::SYS_sendmsg => "sendmsg",
        libc::SYS_recvmsg => "recvmsg",
        libc::SYS_sendmmsg => "sendmmsg",
        libc::SYS_recvmmsg => "recvmmsg",
        libc::SYS_sendto => "sendto",
        libc::SYS_recvfrom => "recvfrom",
        libc::SYS_ioctl => "ioctl",
        libc::SYS_open => "open",
        libc::SYS_openat => "openat",
        libc::SYS_openat2 => "openat2",
        libc::SYS_io_uring_setup => "io_uring_setup",
        libc::SYS_io_uring_enter => "io_uring_enter",
        libc::SYS_io_uring_register => "io_uring_register",
        _ => return None,
    })
}

fn arg(index: u32, value: u64, op: &str) -> Value {
    json!({"index": index, "value": value, "op": op})
}

fn masked(index: u32, mask: u64, value: u64) -> Value {
    json!({"index": index, "value": mask, "valueTwo": value, "op": "SCMP_CMP_MASKED_EQ"})
}

fn rule(name: &str, action: &str, args: Vec<Value>) -> Value {
    let mut r = json!({"names": [name], "action": action});
    if !args.is_empty() {
        r["args"] = Value::Array(args);
    }
    r
}

fn errno_rule(name: &str, errno: i32, args: Vec<Value>) -> Value {
    let mut r = rule(name, "SCMP_ACT_ERRNO", args);
    r["errnoRet"] = json!(errno);
    r
}

/// `ioctl`, split by request as netcell's own filter does, by the low 32 bits
/// the kernel uses: the socket and interface requests (0x89xx, wireless
/// 0x8bxx, whatever the high bits say) to netcell, the others under 2^32
/// allowed — below 0x8900, 0x8axx, and 0x8c00 up in aligned blocks (libseccomp
/// takes one comparison per argument and refuses rules of different actions
/// that overlap, so no rule may cover a value another covers). A request with
/// high bits set that netcell does not serve gets the base's default.
/// (FIONREAD stays the kernel's here: it lies inside the allowed range.)
fn ioctl_rules(name: &str) -> Vec<Value> {
    let mut out = vec![
        rule(name, "SCMP_ACT_ALLOW", vec![arg(1, 0x8900, "SCMP_CMP_LT")]),
        rule(name, "SCMP_ACT_ALLOW", vec![masked(1, !0xffu64, 0x8a00)]),
    ];
    let mut at: u64 = 0x8c00;
    while at < 1 << 32 {
        // The largest aligned block that starts here.
        let size = 1u64 << at.trailing_zeros();
        out.push(rule(
            name,
            "SCMP_ACT_ALLOW",
            vec![masked(1, !(size - 1), at)],
        ));
        at += size;
    }
    for r in [0x8900u64, 0x8b00] {
        out.push(rule(
            name,
            "SCMP_ACT_NOTIFY",
            vec![masked(1, 0xffff_ff00, r)],
        ));
    }
    out
}

/// netcell's rules, from the filter's own table, and the names they cover.
fn netcell_rules() -> (Vec<Value>, Vec<&'static str>) {
    use crate::seccomp::table::{Rule, X86_64};
    let (mut rules, mut names) = (Vec::new(), Vec::new());
    for e in X86_64 {
        let Some(name) = call_name(e.nr) else {
            continue;
        };
        match e.rule {
            Rule::Notify => rules.push(rule(name, "SCMP_ACT_NOTIFY", vec![])),
            Rule::RunIfElseNotify { arg: a, value } => {
                let v = u64::from(value);
                rules.push(rule(name, "SCMP_ACT_ALLOW", vec![arg(a, v, "SCMP_CMP_EQ")]));
                rules.push(rule(
                    name,
                    "SCMP_ACT_NOTIFY",
                    vec![arg(a, v, "SCMP_CMP_NE")],
                ));
            }
            Rule::RunIfElseFail {
                arg: a,
                value,
                errno,
            } => {
                let v = u64::from(value);
                rules.push(rule(name, "SCMP_ACT_ALLOW", vec![arg(a, v, "SCMP_CMP_EQ")]));
                rules.push(errno_rule(name, errno, vec![arg(a, v, "SCMP_CMP_NE")]));
            }
            Rule::NotifyIfSet { arg: a } => {
                rules.push(rule(name, "SCMP_ACT_ALLOW", vec![arg(a, 0, "SCMP_CMP_EQ")]));
                rules.push(rule(
                    name,
                    "SCMP_ACT_NOTIFY",
                    vec![arg(a, 0, "SCMP_CMP_NE")],
                ));
            }
            Rule::Ioctl { .. } => rules.extend(ioctl_rules(name)),
            // The resolver files are `netcell run`'s (the agent has none).
            Rule::NotifyWhenWatched => continue,
            Rule::Fail(errno) => rules.push(errno_rule(name, errno, vec![])),
        }
        names.push(name);
    }
    // i386's multiplexer, which netcell does not serve: every way to a socket
    // from a 32-bit program fails.
    rules.push(errno_rule("socketcall", libc::ENOSYS, vec![]));
    names.push("socketcall");
    (rules, names)
}

/// The profile: `base` (or allow-everything) with netcell's calls taken out
/// of its rules and netcell's rules added, `listenerPath` set.
pub fn profile_json(base: Option<Value>, listener: &Path) -> Result<Value, String> {
    let mut p = base.unwrap_or_else(|| {
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": []
        })
    });
    let (ours, names) = netcell_rules();
    let Some(obj) = p.as_object_mut() else {
        return Err("the base profile is not a JSON object".into());
    };
    let syscalls = obj
        .entry("syscalls")
        .or_insert_with(|| Value::Array(Vec::new()));
    let Some(list) = syscalls.as_array_mut() else {
        return Err("the base profile's \"syscalls\" is not a list".into());
    };
    // Out of the base's rules (a conditional notify next to an unconditional
    // allow would not take effect).
    list.retain_mut(|r| {
        if let Some(ns) = r.get_mut("names").and_then(Value::as_array_mut) {
            ns.retain(|n| n.as_str().is_none_or(|n| !names.contains(&n)));
            !ns.is_empty()
        } else {
            r.get("name")
                .and_then(Value::as_str)
                .is_none_or(|n| !names.contains(&n))
        }
    });
    // A rule that does what the default does is refused by libseccomp
    // (`EEXIST`): podman's default already fails with ENOSYS.
    let default = (
        obj.get("defaultAction").cloned(),
        obj.get("defaultErrnoRet").cloned(),
    );
    let list = obj
        .get_mut("syscalls")
        .and_then(Value::as_array_mut)
        .ok_or("the base profile's \"syscalls\" is not a list")?;
    list.extend(ours.into_iter().filter(|r| {
        r.get("args").is_some() || (r.get("action").cloned(), r.get("errnoRet").cloned()) != default
    }));
    // x86-64 only: libseccomp refuses netcell's notify rules next to a base's
    // for i386 and x32 (their socket calls are multiplexed: `EEXIST` at the
    // container's start), and netcell serves no 32-bit call anyway; their
    // calls get the runtime's action for an architecture the filter lacks.
    obj.remove("archMap");
    obj.insert("architectures".into(), json!(["SCMP_ARCH_X86_64"]));
    obj.insert(
        "listenerPath".into(),
        Value::String(listener.display().to_string()),
    );
    Ok(p)
}

/// `netcell profile [--base FILE] --listener SOCKET`.
pub fn profile(base: Option<&Path>, listener: &Path) -> Result<i32, String> {
    let base = match base {
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .map_err(|e| format!("cannot read the base profile {}: {e}", f.display()))?;
            Some(
                serde_json::from_str(&text)
                    .map_err(|e| format!("{}: not a seccomp profile: {e}", f.display()))?,
            )
        }
        None => None,
    };
    let p = profile_json(base, listener)?;
    let text = serde_json::to_string_pretty(&p).map_err(|e| e.to_string())?;
    println!("{text}");
    Ok(0)
}

// ---- the agent ----------------------------------------------------------------

/// A container's server, as the agent keeps it.
struct Server {
    pid: u32,
    link: OwnedFd,
}

/// What a runtime said.
struct Handover {
    fd: OwnedFd,
    id: String,
    pid: u32,
    /// The runtime's status: `creating`/`created` for a run, `running` for an
    /// exec.
    status: String,
    /// The bundle (a run's; `.` for an exec): its `config.json` has the profile
    /// `netcell exec` installs.
    bundle: String,
    annotations: Map<String, Value>,
    /// The profile's `listenerMetadata`: `netcell run` options for the
    /// containers of that profile, before their annotations'.
    metadata: Vec<String>,
}

/// `netcell agent --listen SOCKET`: serves the containers whose runtimes
/// connect there, until interrupted.
pub fn agent(
    listen: &Path,
    runtime_dir: Option<&Path>,
    allowed: &[String],
    defaults: &[String],
) -> Result<i32, String> {
    if let Some(bad) = allowed
        .iter()
        .find(|a| !ANNOTATIONS.iter().any(|(k, _)| k == a))
    {
        return Err(format!(
            "--allow-annotation {bad}: not an annotation netcell takes"
        ));
    }
    if listen.exists() {
        if std::os::unix::net::UnixStream::connect(listen).is_ok() {
            return Err(format!("{}: another agent listens there", listen.display()));
        }
        let _ = std::fs::remove_file(listen);
    }
    let listener = std::os::unix::net::UnixListener::bind(listen)
        .map_err(|e| format!("cannot listen on {}: {e}", listen.display()))?;
    log::warn!("agent: listening on {}", listen.display());
    let me = sys::euid();
    let mut servers: HashMap<String, Server> = HashMap::new();
    loop {
        // Servers that ended.
        servers.retain(|id, s| match sys::spawn::try_wait(s.pid) {
            Ok(None) => true,
            _ => {
                log::warn!("agent: container {id}: served, stack gone");
                false
            }
        });
        if !sys::wait_readable(listener.as_fd(), 1000) {
            continue;
        }
        let Ok((conn, _)) = listener.accept() else {
            continue;
        };
        let conn: OwnedFd = conn.into();
        match sys::peer_cred(conn.as_fd()) {
            Ok((_, uid)) if uid == me => {}
            Ok((pid, uid)) => {
                log::warn!(
                    "agent: a connection of uid {uid} (pid {pid}) refused: this agent serves uid {me}"
                );
                continue;
            }
            Err(e) => {
                log::warn!("agent: a connection without credentials refused: {e}");
                continue;
            }
        }
        let h = match read_handover(&conn) {
            Ok(h) => h,
            Err(e) => {
                log::warn!("agent: a runtime's message refused: {e}");
                continue;
            }
        };
        drop(conn);
        // A run under an id whose server still serves: that container is
        // over (an id is used again), its server is ended first.
        if h.status != "running"
            && let Some(old) = servers.remove(&h.id)
        {
            log::warn!(
                "agent: container {}: a new run of this id; its old server ends",
                h.id
            );
            let _ = sys::kill(old.pid, libc::SIGTERM);
            reap_soon(old.pid);
        }
        if let Some(s) = servers.get(&h.id) {
            // An exec: the same stack.
            if let Err(e) = give(&s.link, &h) {
                log::warn!(
                    "agent: container {}: cannot hand over an exec's descriptor: {e}",
                    h.id
                );
            } else {
                log::info!("agent: container {}: another process joins its stack", h.id);
            }
            continue;
        }
        match start_server(&h, runtime_dir, allowed, defaults) {
            Ok(s) => {
                log::warn!(
                    "agent: container {}: served (pid {}, server pid {})",
                    h.id,
                    h.pid,
                    s.pid
                );
                servers.insert(h.id.clone(), s);
            }
            Err(e) => {
                log::warn!("agent: container {}: refused: {e}", h.id);
                tell_container(h.pid, &e);
            }
        }
    }
}

/// Reads a runtime's state message and its descriptor.
fn read_handover(conn: &OwnedFd) -> Result<Handover, String> {
    let mut data = Vec::new();
    let mut fd = None;
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(10);
    let state = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !sys::wait_readable(conn.as_fd(), left.as_millis() as i32) {
            return Err("no complete state message within 10 s".into());
        }
        let r = match sys::recv_with_fds(conn.as_fd(), &mut buf) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e.to_string()),
        };
        if fd.is_none() {
            fd = r.fds.into_iter().next();
        }
        if r.len == 0 {
            return Err("the runtime hung up before its state was complete".into());
        }
        data.extend_from_slice(&buf[..r.len]);
        if let Some(state) = crate::oci_state::parse(&data)? {
            break state;
        }
    };
    let fd = fd.ok_or("no descriptor came with the state")?;
    let link = sys::fd_link(fd.as_fd()).unwrap_or_default();
    if link != "anon_inode:seccomp notify" {
        return Err(format!(
            "the descriptor is {link:?}, not a seccomp notification descriptor"
        ));
    }
    Ok(Handover {
        fd,
        id: state.id,
        pid: state.pid,
        status: state.status,
        bundle: state.bundle,
        annotations: state.annotations,
        metadata: state.metadata,
    })
}

/// Hands a descriptor to a server: its pid as text and the bundle (after a
/// NUL), the descriptor along.
fn give(link: &OwnedFd, h: &Handover) -> std::io::Result<()> {
    let mut msg = h.pid.to_string().into_bytes();
    msg.push(0);
    msg.extend_from_slice(h.bundle.as_bytes());
    sys::send_with_fd(link.as_fd(), &msg, Some(h.fd.as_fd())).map(drop)
}

/// Starts container `h`'s server and hands it the descriptor; waits until it
/// serves or says why it cannot.
fn start_server(
    h: &Handover,
    runtime_dir: Option<&Path>,
    allowed: &[String],
    defaults: &[String],
) -> Result<Server, String> {
    let mut args = defaults.to_vec();
    args.extend(h.metadata.iter().cloned());
    args.extend(args_of(&h.annotations, allowed)?);
    check_args(&h.id, &args)?;
    let (ours, theirs) = sys::seqpacket_pair().map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut argv: Vec<std::ffi::OsString> = vec![
        "run".into(),
        "--oci-link".into(),
        theirs.as_raw_fd().to_string().into(),
        "--shim".into(),
        "seccomp".into(),
        "--name".into(),
        h.id.clone().into(),
    ];
    if let Some(d) = runtime_dir {
        argv.extend(["--runtime-dir".into(), d.as_os_str().to_owned()]);
    }
    argv.extend(args.iter().map(Into::into));
    argv.extend(["--".into(), "oci-container".into()]);
    let env: Vec<(std::ffi::OsString, std::ffi::OsString)> = std::env::vars_os()
        .filter(|(k, _)| k == "RUST_LOG" || k == "PATH")
        .collect();
    let cmd = sys::spawn::Command::new(exe.as_os_str(), &argv, &env).map_err(|e| e.to_string())?;
    let spawned = cmd
        .spawn_keeping(None, Some(theirs.as_raw_fd()))
        .map_err(|e| e.to_string())?;
    drop(theirs);
    let server = Server {
        pid: spawned.pid,
        link: ours,
    };
    if let Err(e) = give(&server.link, h) {
        let _ = sys::kill(server.pid, libc::SIGKILL);
        reap_soon(server.pid);
        return Err(format!("cannot hand over the descriptor: {e}"));
    }
    // "R" once it serves; "E" and why not.
    let mut buf = [0u8; 4096];
    let failed = |why: String| {
        let _ = sys::kill(server.pid, libc::SIGKILL);
        reap_soon(server.pid);
        Err(why)
    };
    if !sys::wait_readable(server.link.as_fd(), 30_000) {
        return failed("the container's server did not start within 30 s".into());
    }
    match sys::recv_with_fds(server.link.as_fd(), &mut buf) {
        Ok(r) if r.len >= 1 && buf[0] == b'R' => Ok(server),
        Ok(r) if r.len >= 1 && buf[0] == b'E' => {
            failed(String::from_utf8_lossy(&buf[1..r.len]).into_owned())
        }
        _ => failed("the container's server ended before it served".into()),
    }
}

/// Waits (at most 2 s) for child `pid` to end, and reaps it.
fn reap_soon(pid: u32) {
    let until = Instant::now() + Duration::from_secs(2);
    while matches!(sys::spawn::try_wait(pid), Ok(None)) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Writes `why` to the standard error of container process `pid` and kills it:
/// a container netcell cannot serve does not start (fail closed), and its user
/// sees why through the runtime.
pub fn tell_container(pid: u32, why: &str) {
    if pid == 0 {
        return;
    }
    if let Ok(pidfd) = sys::pidfd_open(pid)
        && let Ok(err) = sys::pidfd_getfd(pidfd.as_fd(), 2)
    {
        let mut f = std::fs::File::from(err);
        let _ = writeln!(f, "netcell: {why}");
    }
    let _ = sys::kill(pid, libc::SIGKILL);
}

/// The server's side of the link: the first descriptor, the container's pid
/// and its bundle, within 10 s of starting.
pub fn first_listener(link: &OwnedFd) -> Result<(OwnedFd, u32, std::path::PathBuf), String> {
    let mut buf = vec![0u8; 8192];
    if !sys::wait_readable(link.as_fd(), 10_000) {
        return Err("no descriptor from the agent".into());
    }
    let r = sys::recv_with_fds(link.as_fd(), &mut buf).map_err(|e| e.to_string())?;
    let msg = &buf[..r.len.min(buf.len())];
    let (pid, bundle) = match msg.iter().position(|&b| b == 0) {
        Some(i) => (&msg[..i], &msg[i + 1..]),
        None => (msg, &b""[..]),
    };
    let pid = std::str::from_utf8(pid)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let bundle = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(bundle));
    let fd = r
        .fds
        .into_iter()
        .next()
        .ok_or("the agent sent no descriptor")?;
    Ok((fd, pid, bundle))
}

/// The server tells the agent it serves (`R`) or why not (`E...`).
pub fn report(link: &OwnedFd, outcome: Result<(), &str>) {
    let msg = match outcome {
        Ok(()) => b"R".to_vec(),
        Err(e) => {
            let mut m = b"E".to_vec();
            m.extend_from_slice(e.as_bytes());
            m.truncate(4000);
            m
        }
    };
    let _ = sys::send_with_fd(link.as_fd(), &msg, None);
}

/// Takes the inherited link descriptor `fd`.
pub fn take_link(fd: i32) -> Result<OwnedFd, String> {
    if fd < 3 {
        return Err(format!("--oci-link {fd}: not an inherited descriptor"));
    }
    sys::take_inherited(fd).map_err(|e| format!("--oci-link {fd}: {e}"))
}
