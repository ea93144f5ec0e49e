//! `netcell exec` into an OCI container: a program started from outside, made
//! into one of the container's own processes.
//!
//! # Theory of operation
//!
//! A container `netcell run` started has a zygote inside its walls (`zygote.rs`):
//! whatever it forks is the container's. An OCI container has none — the runtime
//! made its process — and a program netcell started next to it would run with
//! netcell's privileges (host root for a rootful container), outside the
//! container's namespaces, cgroup, capabilities and syscall profile. So this
//! module does what a runtime's own `exec` does, from what the container's
//! process (the pid of the runtime's state) shows in `/proc` and from its
//! bundle's `config.json`:
//!
//! 1. The *enter zygote* (`netcell __enter FD`) is started with the container's
//!    server. It is told the container's process (a pidfd: no pid reuse) and
//!    bundle, compiles the bundle's seccomp profile ([`profile`]), and for each
//!    exec request forks an *enterer*. It stays single-threaded, so a fork may do
//!    anything.
//! 2. The enterer reads the process ([`target`]: ids and capability sets as its
//!    user namespace numbers them, `no_new_privs`, namespaces, cgroups, limits,
//!    AppArmor profile, environment), joins its cgroups, asks for its AppArmor
//!    profile at the next exec, takes its limits, opens its root and working
//!    directory, joins its namespaces (one `setns` on the pidfd), and takes that
//!    root and directory.
//! 3. The program's process is made as `netcell run` makes a command
//!    (`netcell_sys::spawn`: `clone3` sharing the enterer's descriptor table
//!    until `exec`, so the filter's listener lands there and nowhere else): it is
//!    in the container's pid namespace (a child of a process that joined it), drops
//!    the bounding set to the container process's, takes its groups, ids and
//!    exactly its capability sets, and installs the profile's filter (first while
//!    still allowed to when the container runs without `no_new_privs`, last with
//!    it), then execs the program with the container process's environment.
//! 4. The enterer sends the listener to the server (the program's socket calls
//!    reach the container's stack) and reports `started`, then `exit`.
//!
//! The enterer is non-dumpable (netcell is, from before `main`) and outside the
//! container's pid namespace: a container process cannot ptrace it or take its
//! descriptors while it holds netcell's privileges.
//!
//! Not copied: SELinux labels, securebits, the process's own later changes to
//! its seccomp filters (the profile is the bundle's, as the runtime's exec
//! installs it). The program gets the container's environment and working
//! directory, not the caller's (as `podman exec` does).

pub mod names;
pub mod profile;
pub mod target;

use crate::owner::{ExecRequest, MAX_MSG};
use netcell_sys::spawn;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

/// Starts the enter zygote for the container whose process `pid` (`pidfd`) was
/// made from `bundle`; returns the server's end of its socket.
pub fn start(pid: u32, pidfd: &OwnedFd, bundle: &Path) -> Result<OwnedFd, String> {
    if !bundle.is_absolute() {
        return Err(format!(
            "the runtime gave the bundle as {}, not an absolute path",
            bundle.display()
        ));
    }
    let (ours, theirs) = netcell_sys::seqpacket_pair().map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let raw = theirs.as_raw_fd();
    let cmd = spawn::Command::new(
        exe.as_os_str(),
        &["__enter".into(), raw.to_string().into()],
        &[],
    )
    .map_err(|e| e.to_string())?;
    let spawned = cmd.spawn_keeping(None, Some(raw));
    let _ = netcell_sys::set_cloexec(theirs.as_fd(), true);
    drop(theirs);
    spawned.map_err(|e| e.to_string())?;
    let mut setup = pid.to_string().into_bytes();
    setup.push(0);
    setup.extend_from_slice(std::os::unix::ffi::OsStrExt::as_bytes(bundle.as_os_str()));
    netcell_sys::send_with_fds(ours.as_fd(), &setup, &[pidfd.as_fd()])
        .map_err(|e| format!("the enter zygote: {e}"))?;
    netcell_sys::set_nonblocking(ours.as_fd(), true).map_err(|e| e.to_string())?;
    Ok(ours)
}

/// The container's process and its filter, as the enter zygote holds them.
struct Container {
    pid: u32,
    pidfd: OwnedFd,
    /// The bundle's seccomp filter, or why there is none.
    filter: Result<Vec<libc::sock_filter>, String>,
}

/// Reads the bundle's profile: `linux.seccomp` of `config.json`.
fn filter_of(bundle: &Path) -> Result<Vec<libc::sock_filter>, String> {
    let path = bundle.join("config.json");
    let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let config: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let seccomp = config
        .pointer("/linux/seccomp")
        .filter(|v| !v.is_null())
        .ok_or_else(|| format!("{} has no linux.seccomp", path.display()))?;
    let (prog, notifies) = profile::compile(seccomp).map_err(|e| e.to_string())?;
    if !notifies {
        return Err(format!(
            "{}'s seccomp profile notifies no call: a program started with it would not reach the container's network",
            path.display()
        ));
    }
    Ok(prog)
}

/// `netcell __enter FD`: the enter zygote (see the module docs).
pub fn main(fd: i32) -> i32 {
    let sock = match netcell_sys::take_inherited(fd) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("netcell __enter: descriptor {fd}: {e}");
            return 2;
        }
    };
    let _ = netcell_sys::set_cloexec(sock.as_fd(), true);
    let mut buf = vec![0u8; MAX_MSG];
    if !netcell_sys::wait_readable(sock.as_fd(), 10_000) {
        return 2;
    }
    let container = match netcell_sys::recv_with_fds(sock.as_fd(), &mut buf) {
        Ok(r) => {
            let msg = &buf[..r.len.min(buf.len())];
            let mut parts = msg.splitn(2, |&b| b == 0);
            let pid = parts
                .next()
                .and_then(|p| std::str::from_utf8(p).ok())
                .and_then(|p| p.parse().ok());
            let bundle = parts.next().map(|b| {
                Path::new(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b))
                    .to_path_buf()
            });
            match (pid, bundle, r.fds.into_iter().next()) {
                (Some(pid), Some(bundle), Some(pidfd)) => Container {
                    pid,
                    pidfd,
                    filter: filter_of(&bundle),
                },
                _ => return 2,
            }
        }
        Err(_) => return 2,
    };
    if let Err(e) = &container.filter {
        log::warn!("netcell exec will fail in this container: {e}");
    }
    loop {
        netcell_sys::reap_all();
        if !netcell_sys::wait_readable(sock.as_fd(), 1000) {
            continue;
        }
        let r = match netcell_sys::recv_with_fds(sock.as_fd(), &mut buf) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return 0,
        };
        if r.len == 0 {
            return 0;
        }
        let msg = &buf[..r.len.min(buf.len())];
        let Some((id, req)) = msg
            .get(..8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
            .zip(ExecRequest::decode(&msg[8.min(msg.len())..]))
        else {
            continue;
        };
        let fds: Vec<OwnedFd> = r.fds.into_iter().collect();
        match netcell_sys::fork_single_threaded() {
            Ok(Some(_)) => {}
            Ok(None) => {
                let code = enter(&sock, &container, id, &req, &fds);
                std::process::exit(code);
            }
            Err(e) => reply(&sock, &format!("error {id} 126 cannot fork: {e}"), None),
        }
    }
}

fn reply(sock: &OwnedFd, text: &str, fd: Option<std::os::fd::BorrowedFd<'_>>) {
    let fds: Vec<_> = fd.into_iter().collect();
    for _ in 0..1000 {
        match netcell_sys::send_with_fds(sock.as_fd(), text.as_bytes(), &fds) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            _ => return,
        }
    }
}

/// The enterer: starts request `id` in the container and waits for it.
fn enter(sock: &OwnedFd, c: &Container, id: u64, req: &ExecRequest, stdio: &[OwnedFd]) -> i32 {
    netcell_sys::default_signal(libc::SIGCHLD);
    match start_program(c, req, stdio) {
        Ok(spawned) => {
            let Some(listener) = spawned.listener.as_ref() else {
                reply(sock, &format!("error {id} 126 no seccomp listener"), None);
                return 1;
            };
            reply(sock, &format!("listener {id}"), Some(listener.as_fd()));
            reply(sock, &format!("started {id} {}", spawned.pid), None);
            drop(spawned.listener);
            let code = netcell_sys::wait_exit_code(spawned.pid).unwrap_or(125);
            reply(sock, &format!("exit {id} {code}"), None);
            0
        }
        Err((code, why)) => {
            log::warn!("netcell exec: {why}");
            reply(sock, &format!("error {id} {code} {why}"), None);
            1
        }
    }
}

fn start_program(
    c: &Container,
    req: &ExecRequest,
    stdio: &[OwnedFd],
) -> Result<spawn::Spawned, (i32, String)> {
    let refuse = |why: String| (126, why);
    let filter = c.filter.clone().map_err(refuse)?;
    let t = target::read_target(c.pid).map_err(refuse)?;
    let proc = Path::new("/proc").join(c.pid.to_string());
    let root = std::fs::File::open(proc.join("root"))
        .map_err(|e| refuse(format!("the container's root: {e}")))?;
    let cwd = std::fs::File::open(proc.join("cwd")).ok();
    // What was read and opened was the container's process, not one that took
    // its pid after it ended.
    if !netcell_sys::pidfd_alive(c.pidfd.as_fd()) {
        return Err(refuse("the container's process has ended".into()));
    }
    target::join_cgroups(&t.cgroups).map_err(refuse)?;
    if let Some(label) = &t.apparmor {
        let req = format!("exec {label}");
        std::fs::write("/proc/thread-self/attr/apparmor/exec", &req)
            .or_else(|_| std::fs::write("/proc/thread-self/attr/exec", &req))
            .map_err(|e| refuse(format!("AppArmor profile {label}: {e}")))?;
    }
    for &(res, soft, hard) in &t.limits {
        // Raising a hard limit needs CAP_SYS_RESOURCE: then this process's
        // (lower) limit stays.
        let _ = netcell_sys::set_limit(res, soft, hard);
    }
    if t.namespaces != 0 {
        netcell_sys::netns::setns(c.pidfd.as_fd(), t.namespaces)
            .map_err(|e| refuse(format!("cannot join the container's namespaces: {e}")))?;
    }
    netcell_sys::enter_root(root.as_fd(), cwd.as_ref().map(|c| c.as_fd()))
        .map_err(|e| refuse(format!("cannot enter the container's root: {e}")))?;
    for (i, fd) in stdio.iter().take(3).enumerate() {
        netcell_sys::dup_onto(fd.as_fd(), i as i32)
            .map_err(|e| refuse(format!("standard descriptor {i}: {e}")))?;
    }
    let argv: Vec<&[u8]> = req.argv.iter().map(Vec::as_slice).collect();
    let env: Vec<&[u8]> = t.env.iter().map(Vec::as_slice).collect();
    let cmd = spawn::Command::with_env(&argv, &env).map_err(|e| refuse(e.to_string()))?;
    let walls = spawn::Walls {
        filter,
        landlock: None,
        credentials: Some(t.credentials),
    };
    cmd.spawn(Some(&walls)).map_err(|e| {
        let code = match e {
            spawn::SpawnError::NotFound(_) => 127,
            _ => 126,
        };
        (code, e.to_string())
    })
}
