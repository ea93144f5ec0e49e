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
//!    AppArmor profile), opens its cgroups, root and working directory, asks for
//!    its AppArmor profile at the next exec, takes its limits, joins its
//!    namespaces (one `setns` on the pidfd) and takes that root and directory,
//!    narrows its own capabilities and bounding set to the process's (plus what
//!    it needs to change ids and install the filter), and joins its v1 cgroups.
//! 3. The program's process is made as `netcell run` makes a command
//!    (`netcell_sys::spawn`: `clone3` sharing the enterer's descriptor table
//!    until `exec`, so the filter's listener lands there and nowhere else): it
//!    starts in the container's cgroup v2 (`CLONE_INTO_CGROUP`; the enterer stays
//!    out of reach of the container's `cgroup.kill`), is in the container's pid
//!    namespace (a child of a process that joined it), drops
//!    the bounding set to the container process's, takes its groups, ids and
//!    exactly its capability sets, and installs the profile's filter (first while
//!    still allowed to when the container runs without `no_new_privs`, last with
//!    it), stays non-dumpable until exec, then execs the program with the
//!    bundle's environment (`process.env`, as `podman exec` gives it).
//! 4. The enterer sends the listener to the server (the program's socket calls
//!    reach the container's stack), reports `started`, relays the program's
//!    standard streams (pipes: the caller's descriptors, a terminal perhaps,
//!    never enter the container, where `TIOCSTI` could type into the caller's
//!    shell), then reports `exit`. The enter zygote reports an enterer that was
//!    killed before its last word.
//!
//! The enterer is non-dumpable (netcell is, from before `main`) and outside the
//! container's pid namespace: a container process cannot ptrace it or take its
//! descriptors while it holds netcell's privileges.
//!
//! Not copied: SELinux labels, securebits, the session keyring, `oom_score_adj`,
//! the process's own later changes to its seccomp filters (the profile is the
//! bundle's, as the runtime's exec installs it). The program gets the bundle's
//! environment and the working directory of the container's process, not the
//! caller's, and pipes rather than a terminal (as `podman exec` without `-t`).

pub mod names;
pub mod profile;
pub mod target;

use crate::owner::{ExecRequest, Incoming, MAX_MSG, next_request, zygote_reply as reply};
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

/// The container's process, and what its bundle says, as the enter zygote
/// holds them.
struct Container {
    pid: u32,
    pidfd: OwnedFd,
    /// The bundle's seccomp filter and the process's environment, or why
    /// there are none.
    bundle: Result<(Vec<libc::sock_filter>, Vec<Vec<u8>>), String>,
}

/// The most of `config.json` read (runtimes write a few KiB).
const MAX_CONFIG: u64 = 4 << 20;

/// Reads the bundle: the profile (`linux.seccomp`) and the environment
/// (`process.env`) of its `config.json`. (The environment is the bundle's, as
/// `podman exec` gives it, not the one in the process's memory: that one the
/// container may have pointed anywhere, at a terabyte, say.)
fn read_bundle(bundle: &Path) -> Result<(Vec<libc::sock_filter>, Vec<Vec<u8>>), String> {
    use std::io::Read;
    let path = bundle.join("config.json");
    let mut text = Vec::new();
    std::fs::File::open(&path)
        .and_then(|f| f.take(MAX_CONFIG).read_to_end(&mut text))
        .map_err(|e| format!("{}: {e}", path.display()))?;
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
    let env = config
        .pointer("/process/env")
        .and_then(serde_json::Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(serde_json::Value::as_str)
                .filter(|kv| kv.contains('=') && !kv.contains('\0'))
                .map(|kv| kv.as_bytes().to_vec())
                .collect()
        })
        .unwrap_or_default();
    Ok((prog, env))
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
                    bundle: read_bundle(&bundle),
                },
                _ => return 2,
            }
        }
        Err(_) => return 2,
    };
    if let Err(e) = &container.bundle {
        log::warn!("netcell exec will fail in this container: {e}");
    }
    // Enterers by pid, with their request's id: one that dies without its last
    // word (a container that can reach its cgroup could kill it) is reported.
    let mut enterers: std::collections::HashMap<u32, u64> = std::collections::HashMap::new();
    loop {
        while let Some((pid, code)) = netcell_sys::reap_any() {
            // 0 and 1: it said how its program ended, or why it did not start.
            if let Some(id) = enterers.remove(&pid)
                && code > 1
            {
                reply(
                    &sock,
                    &format!("error {id} 125 the program's starter ended early (status {code})"),
                    None,
                );
            }
        }
        let (id, req, fds) = match next_request(&sock, &mut buf, 200) {
            Incoming::Request(id, req, fds) => (id, req, fds),
            Incoming::Nothing => continue,
            Incoming::Ended => return 0,
        };
        match netcell_sys::fork_single_threaded() {
            Ok(Some(pid)) => {
                enterers.insert(pid, id);
            }
            Ok(None) => {
                let code = enter(&sock, &container, id, &req, fds);
                std::process::exit(code);
            }
            Err(e) => reply(&sock, &format!("error {id} 126 cannot fork: {e}"), None),
        }
    }
}

/// The enterer: starts request `id` in the container, relays its standard
/// streams and waits for it.
fn enter(sock: &OwnedFd, c: &Container, id: u64, req: &ExecRequest, client: Vec<OwnedFd>) -> i32 {
    netcell_sys::default_signal(libc::SIGCHLD);
    let Ok::<[OwnedFd; 3], _>([cin, cout, cerr]) = client.try_into() else {
        reply(
            sock,
            &format!("error {id} 126 an exec request brings exactly 3 descriptors"),
            None,
        );
        return 1;
    };
    match start_program(c, req) {
        Ok((spawned, [in_w, out_r, err_r])) => {
            let Some(listener) = spawned.listener.as_ref() else {
                reply(sock, &format!("error {id} 126 no seccomp listener"), None);
                return 1;
            };
            reply(sock, &format!("listener {id}"), Some(listener.as_fd()));
            reply(sock, &format!("started {id} {}", spawned.pid), None);
            drop(spawned.listener);
            // The program's ends of the pipes are its own now.
            if let Ok(null) = netcell_sys::dev_null() {
                for i in 0..3 {
                    let _ = netcell_sys::dup_onto(null.as_fd(), i);
                }
            }
            relay([(cin, in_w), (out_r, cout), (err_r, cerr)]);
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

/// Copies each pair's first descriptor to its second until the program's
/// output and error streams end (the first pair, the caller's input, stops
/// mattering then). One thread, `poll`: the enterer holds the container's
/// limits, under which it may start no thread.
fn relay(pairs: [(OwnedFd, OwnedFd); 3]) {
    let mut pairs: Vec<Option<(OwnedFd, OwnedFd)>> = pairs.into_iter().map(Some).collect();
    let mut buf = vec![0u8; 64 * 1024];
    while pairs[1].is_some() || pairs[2].is_some() {
        let live: Vec<usize> = (0..3).filter(|&i| pairs[i].is_some()).collect();
        let fds: Vec<_> = live
            .iter()
            .filter_map(|&i| pairs[i].as_ref().map(|(from, _)| from.as_fd()))
            .collect();
        let Ok(ready) = netcell_sys::poll_readable(&fds, -1) else {
            continue;
        };
        drop(fds);
        for (k, &i) in live.iter().enumerate() {
            if !ready[k] {
                continue;
            }
            let Some((from, to)) = &pairs[i] else {
                continue;
            };
            let end = match netcell_sys::read(from.as_fd(), &mut buf) {
                Ok(0) => true,
                Ok(n) => {
                    // A reader that went away (the program closed its input,
                    // the caller its output) ends that stream only.
                    write_all(to, &buf[..n]).is_err() && i == 0
                }
                Err(e) => e.kind() != std::io::ErrorKind::Interrupted,
            };
            if end {
                pairs[i] = None;
            }
        }
    }
}

fn write_all(to: &OwnedFd, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        match netcell_sys::write(to.as_fd(), data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Capabilities the process holds on its way to the container's identity, on
/// top of what it ends with: to change ids, to set the capability sets, and
/// (without no_new_privs) to install the filter.
const CAP_SETGID: u32 = 6;
const CAP_SETUID: u32 = 7;
const CAP_SETPCAP: u32 = 8;
const CAP_SYS_ADMIN: u32 = 21;

/// Starts the program; returns it, and the enterer's ends of its standard
/// streams' pipes (its stdin's writing end, its stdout's and stderr's reading
/// ends).
#[allow(clippy::type_complexity)]
fn start_program(
    c: &Container,
    req: &ExecRequest,
) -> Result<(spawn::Spawned, [OwnedFd; 3]), (i32, String)> {
    let refuse = |why: String| (126, why);
    let (filter, env) = c.bundle.clone().map_err(refuse)?;
    let t = target::read_target(c.pid).map_err(refuse)?;
    let proc = Path::new("/proc").join(c.pid.to_string());
    let root = std::fs::File::open(proc.join("root"))
        .map_err(|e| refuse(format!("the container's root: {e}")))?;
    let cwd = std::fs::File::open(proc.join("cwd")).ok();
    let cgroups = target::open_cgroups(&t.cgroups).map_err(refuse)?;
    // What was read and opened was the container's process, not one that took
    // its pid after it ended.
    if !netcell_sys::pidfd_alive(c.pidfd.as_fd()) {
        return Err(refuse("the container's process has ended".into()));
    }
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
    // The program's standard streams are pipes to this process, never the
    // caller's descriptors: a terminal of the caller's inside the container
    // could be typed into (TIOCSTI) or read from by any of its processes.
    let pipe = || spawn::pipe().map_err(|e| refuse(format!("pipe: {e}")));
    let ((in_r, in_w), (out_r, out_w), (err_r, err_w)) = (pipe()?, pipe()?, pipe()?);
    for (i, fd) in [&in_r, &out_w, &err_w].into_iter().enumerate() {
        netcell_sys::dup_onto(fd.as_fd(), i as i32)
            .map_err(|e| refuse(format!("standard descriptor {i}: {e}")))?;
    }
    drop((in_r, out_w, err_w));
    let argv: Vec<&[u8]> = req.argv.iter().map(Vec::as_slice).collect();
    let env: Vec<&[u8]> = env.iter().map(Vec::as_slice).collect();
    let cmd = spawn::Command::with_env(&argv, &env).map_err(|e| refuse(e.to_string()))?;
    // From here on this process holds no more than the program will, plus
    // what it needs to become it: nothing the container could take from it in
    // the moment between clone and exec.
    let cr = &t.credentials;
    let mut keep =
        cr.permitted | cr.inheritable | 1 << CAP_SETGID | 1 << CAP_SETUID | 1 << CAP_SETPCAP;
    if !cr.no_new_privs {
        keep |= 1 << CAP_SYS_ADMIN;
    }
    netcell_sys::restrict_capabilities(cr.bounding, keep, cr.last_cap)
        .map_err(|e| refuse(format!("cannot narrow the capabilities: {e}")))?;
    cgroups.join_v1().map_err(refuse)?;
    let walls = spawn::Walls {
        filter,
        landlock: None,
        credentials: Some(t.credentials),
        cgroup: cgroups.unified.as_ref().map(|f| f.as_raw_fd()),
    };
    let spawned = cmd.spawn(Some(&walls)).map_err(|e| {
        let code = match e {
            spawn::SpawnError::NotFound(_) => 127,
            _ => 126,
        };
        (code, e.to_string())
    })?;
    Ok((spawned, [in_w, out_r, err_r]))
}
