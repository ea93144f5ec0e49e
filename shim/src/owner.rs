//! The owner's way into a running container: `netcell ls`, `netcell stats NAME`,
//! `netcell exec NAME -- CMD`.
//!
//! # Theory of operation
//!
//! Every container has a directory `$XDG_RUNTIME_DIR/netcell/NAME/` (for root
//! `/run/netcell/NAME/`; `--runtime-dir DIR` puts it under `DIR/netcell/`) holding
//! its control socket (`ctl`, for the shims) and its *owner socket* (`owner`), an
//! `AF_UNIX` `SOCK_SEQPACKET` listener. One request per connection:
//!
//! | request | answer |
//! |---------|--------|
//! | `info`  | one JSON object: name, pid, command, shim, devices and addresses, uptime |
//! | `stats` | one JSON object: per-device counters, sockets by state, buffer memory |
//! | `exec` + argv, env, cwd, and the client's stdin/stdout/stderr (`SCM_RIGHTS`) | `started PID`, then `exit CODE` when it ends; `failed CODE WHY` if it cannot start (127 not found, 126 otherwise); `error TEXT` for a refused request |
//!
//! **Who may ask.** The owner socket answers only a peer of netcell's own uid
//! (`SO_PEERCRED`) that runs under no seccomp filter: a program inside any
//! netcell container (this one or another of the same user) runs under one, so no
//! container can reach another's stack through its owner, nor spawn there. The
//! directory is 0711 (programs in the container may have changed user and still
//! reach `ctl`); the sockets check who connects.
//!
//! **exec.** The new process must be *in* the container: under the same shim,
//! and for seccomp under the same filter — a filter's notifications reach only the
//! supervisor of the process tree it was installed in. So netcell starts, next to
//! the command, a *zygote* (`netcell __zygote`, `zygote.rs`) in the container, behind
//! the same walls: it forks and execs what the owner asks, so every process it
//! starts inherits the filter, the Landlock domain and the preload environment, and
//! it reports each one's exit. The zygote holds nothing the container could not
//! have: a container process that took it over could only start processes in its
//! own container, or tell the owner a wrong exit code.
//!
//! An OCI container has no zygote of netcell's inside; its "zygote" is the enter
//! zygote of `enter.rs`, outside, which makes each program one of the
//! container's processes as the runtime's exec would, and also sends the
//! program's seccomp listener (`listener ID`, the descriptor along) for the
//! supervisor to serve.

use netcell_stack::Stack;
use netcell_stack::device::{DeviceStats, Link};
use std::collections::HashMap;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The largest request or answer (argv and environment of an exec included).
pub const MAX_MSG: usize = 64 * 1024;

/// Where containers' directories live for this user.
pub fn base_dir(runtime_dir: Option<&Path>) -> PathBuf {
    let base = match runtime_dir {
        Some(d) => d.to_path_buf(),
        None if netcell_sys::euid() == 0 => PathBuf::from("/run"),
        None => std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_dir())
            .unwrap_or_else(std::env::temp_dir),
    };
    base.join("netcell")
}

/// A program to start in a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    pub argv: Vec<Vec<u8>>,
    pub env: Vec<Vec<u8>>,
    pub cwd: Vec<u8>,
}

impl ExecRequest {
    /// `exec\0`, then counted NUL-terminated strings: cwd, argc, argv, envc, env.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = b"exec\0".to_vec();
        let mut put = |b: &[u8]| {
            out.extend_from_slice(b);
            out.push(0);
        };
        put(&self.cwd);
        put(self.argv.len().to_string().as_bytes());
        for a in &self.argv {
            put(a);
        }
        put(self.env.len().to_string().as_bytes());
        for e in &self.env {
            put(e);
        }
        out
    }

    /// The inverse of [`ExecRequest::encode`]; `None` for anything malformed.
    pub fn decode(b: &[u8]) -> Option<ExecRequest> {
        let mut parts = b.strip_prefix(b"exec\0")?.split(|&c| c == 0);
        let cwd = parts.next()?.to_vec();
        let list = |parts: &mut std::slice::Split<'_, u8, _>| -> Option<Vec<Vec<u8>>> {
            let n: usize = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
            if n > 4096 {
                return None;
            }
            (0..n).map(|_| parts.next().map(<[u8]>::to_vec)).collect()
        };
        let argv = list(&mut parts)?;
        let env = list(&mut parts)?;
        if argv.is_empty() || argv[0].is_empty() || argv.iter().chain(&env).any(|s| s.contains(&0))
        {
            return None;
        }
        Some(ExecRequest { argv, env, cwd })
    }
}

/// What `info` tells that does not change.
pub struct Identity {
    pub name: String,
    pub pid: u32,
    pub command: String,
    pub shim: &'static str,
    pub started: std::time::Instant,
}

/// What a zygote (`zygote.rs`, `enter`) reads from its netcell.
pub enum Incoming {
    /// An exec request: its id, the request, the client's descriptors.
    Request(u64, ExecRequest, Vec<OwnedFd>),
    /// Nothing within the wait, or a message that is not a request.
    Nothing,
    /// netcell is gone (end of file on the socket).
    Ended,
}

/// Waits at most `timeout_ms` (-1: no limit) for the next request on a
/// zygote's socket: an 8-byte id, then an [`ExecRequest`], with the client's
/// descriptors attached.
pub fn next_request(sock: &OwnedFd, buf: &mut [u8], timeout_ms: i32) -> Incoming {
    if !netcell_sys::wait_readable(sock.as_fd(), timeout_ms) {
        return Incoming::Nothing;
    }
    let r = match netcell_sys::recv_with_fds(sock.as_fd(), buf) {
        Ok(r) => r,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) =>
        {
            return Incoming::Nothing;
        }
        Err(_) => return Incoming::Ended,
    };
    if r.len == 0 {
        return Incoming::Ended;
    }
    let msg = &buf[..r.len.min(buf.len())];
    match msg
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
        .zip(ExecRequest::decode(&msg[8.min(msg.len())..]))
    {
        Some((id, req)) => Incoming::Request(id, req, r.fds.into_iter().collect()),
        None => Incoming::Nothing,
    }
}

/// A zygote's answer to its netcell, with a descriptor along if any (netcell
/// reads them as they come; a full socket waits, at most 10 s).
pub fn zygote_reply(sock: &OwnedFd, text: &str, fd: Option<BorrowedFd<'_>>) {
    let fds: Vec<_> = fd.into_iter().collect();
    for _ in 0..1000 {
        match netcell_sys::send_with_fds(sock.as_fd(), text.as_bytes(), &fds) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            _ => return,
        }
    }
}

/// Exec clients waiting for their program's end, at most.
const MAX_WAITING: usize = 256;

/// A container's owner socket and its zygote (see the module docs).
pub struct OwnerServer {
    listener: OwnedFd,
    zygote: Option<OwnedFd>,
    waiting: HashMap<u64, OwnedFd>,
    next_id: u64,
    id: Identity,
    /// Variables every exec'd program gets (the preload shim's, the name).
    env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    /// Why `netcell exec` is refused here, if it is.
    no_exec: Option<String>,
    /// Seccomp listeners of programs the zygote started into an OCI container,
    /// for the supervisor (see `enter`).
    joined: Vec<OwnedFd>,
    /// Whether the zygote may send listeners (see [`Self::take_listeners_from_zygote`]).
    takes_listeners: bool,
    /// Whether connections may wait that the last call left (see
    /// [`Self::on_listener`]).
    backlog: bool,
}

/// Connections served per turn of the event loop: a flood of connections
/// (another container's program connecting in a loop, refused each time) must
/// not keep the loop from the container's own traffic.
const ACCEPT_BATCH: usize = 16;

impl OwnerServer {
    /// Listens at `dir/owner`.
    pub fn bind(dir: &Path, id: Identity) -> io::Result<OwnerServer> {
        Ok(OwnerServer {
            listener: netcell_sys::seqpacket_listener(&dir.join("owner"))?,
            no_exec: None,
            joined: Vec::new(),
            takes_listeners: false,
            zygote: None,
            waiting: HashMap::new(),
            next_id: 1,
            id,
            env: Vec::new(),
            backlog: false,
        })
    }

    /// The zygote's socket (netcell's end) and what exec'd programs get in their
    /// environment.
    pub fn set_zygote(
        &mut self,
        sock: OwnedFd,
        env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    ) {
        self.zygote = Some(sock);
        self.env = env;
    }

    /// The zygote is `enter`'s, outside the container: the seccomp listeners
    /// it sends are served. (A `netcell run` zygote lives inside the container,
    /// which could take it over: what it sends is never served.)
    pub fn take_listeners_from_zygote(&mut self) {
        self.takes_listeners = true;
    }

    /// `netcell exec` is refused with `why`.
    pub fn refuse_exec(&mut self, why: &str) {
        self.no_exec = Some(why.to_string());
    }

    pub fn listener_fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }

    pub fn zygote_fd(&self) -> Option<RawFd> {
        self.zygote.as_ref().map(|z| z.as_raw_fd())
    }

    /// The seccomp listeners that came from the zygote since the last call.
    pub fn take_joined(&mut self) -> Vec<OwnedFd> {
        std::mem::take(&mut self.joined)
    }

    /// Whether connections may wait that the last [`Self::on_listener`] left:
    /// the loop calls it again without sleeping.
    pub fn has_backlog(&self) -> bool {
        self.backlog
    }

    /// Serves the owners who connected, at most [`ACCEPT_BATCH`] connections a
    /// call; [`Self::has_backlog`] says when more may wait.
    pub fn on_listener(&mut self, stack: &mut Stack<Link>) {
        self.backlog = false;
        for n in 0.. {
            if n == ACCEPT_BATCH {
                self.backlog = true;
                break;
            }
            let Ok(conn) = netcell_sys::accept_nb(self.listener.as_fd()) else {
                break;
            };
            if let Err(e) = check_peer(conn.as_fd()) {
                // Refused at once, never waited for (a container connecting to
                // another's owner socket must not stall its event loop). What the
                // peer sent already is read first: a socket closed on unread data
                // resets its peer, who would not see why.
                netcell_stack::warn_limited!("owner socket: refused: {e}");
                let mut scratch = vec![0u8; MAX_MSG];
                let _ = netcell_sys::recv_with_fds(conn.as_fd(), &mut scratch);
                let refusal = format!("error refused: {e}");
                let _ = netcell_sys::send_nb(conn.as_fd(), refusal.as_bytes(), 0);
                continue;
            }
            // The owner's request follows the connect at once; an owner who stalls
            // waits for nobody but itself.
            if !netcell_sys::wait_readable(conn.as_fd(), 1000) {
                continue;
            }
            let mut buf = vec![0u8; MAX_MSG];
            let Ok(r) = netcell_sys::recv_with_fds(conn.as_fd(), &mut buf) else {
                continue;
            };
            let msg = &buf[..r.len.min(buf.len())];
            let answer = match msg {
                b"info" => self.info(stack),
                b"stats" => self.stats(stack),
                m if m.starts_with(b"filter\0") => crate::filtering::serve(stack, &m[7..]),
                m if m.starts_with(b"capture\0") => {
                    crate::capturing::serve(stack, conn, &m[8..], r.fds.into_iter().collect());
                    continue;
                }
                m if m.starts_with(b"exec\0") => {
                    self.exec(conn, m, r.fds.into_iter().collect());
                    continue;
                }
                _ => "error unknown request".to_string(),
            };
            let _ = netcell_sys::send_nb(conn.as_fd(), answer.as_bytes(), 0);
        }
    }

    fn exec(&mut self, conn: OwnedFd, msg: &[u8], fds: Vec<OwnedFd>) {
        let fail = |conn: &OwnedFd, e: &str| {
            let _ = netcell_sys::send_nb(conn.as_fd(), format!("error {e}").as_bytes(), 0);
        };
        let Some(mut req) = ExecRequest::decode(msg) else {
            return fail(&conn, "malformed exec request");
        };
        if let Some(why) = &self.no_exec {
            return fail(&conn, why);
        }
        let Some(z) = &self.zygote else {
            return fail(
                &conn,
                "this container cannot start programs (its zygote did not start)",
            );
        };
        if self.waiting.len() >= MAX_WAITING {
            return fail(&conn, "too many programs started by exec are running");
        }
        for (k, v) in &self.env {
            let key = k.as_bytes();
            req.env
                .retain(|kv| !(kv.starts_with(key) && kv.get(key.len()) == Some(&b'=')));
            let mut kv = key.to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            req.env.push(kv);
        }
        let id = self.next_id;
        self.next_id += 1;
        let mut out = id.to_le_bytes().to_vec();
        out.extend_from_slice(&req.encode());
        let fds: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).take(3).collect();
        if let Err(e) = netcell_sys::send_with_fds(z.as_fd(), &out, &fds) {
            return fail(&conn, &format!("the zygote: {e}"));
        }
        self.waiting.insert(id, conn);
    }

    /// Forwards the zygote's reports to the clients waiting for them.
    pub fn on_zygote(&mut self) {
        let Some(z) = &self.zygote else { return };
        let mut buf = [0u8; 512];
        loop {
            match netcell_sys::recv_record_fd(z.as_fd(), &mut buf, false) {
                Ok((n, fd, _)) if n > 0 => {
                    let n = n.min(buf.len());
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let mut w = text.splitn(3, ' ');
                    let (kind, id, rest) =
                        (w.next().unwrap_or(""), w.next(), w.next().unwrap_or(""));
                    let Some(id) = id.and_then(|i| i.parse::<u64>().ok()) else {
                        continue;
                    };
                    // The OCI zygote's: the program's seccomp listener.
                    if kind == "listener" {
                        // Only from the OCI zygote, for a request under way,
                        // and only a seccomp notification descriptor.
                        let notify = |f: &OwnedFd| {
                            netcell_sys::fd_link(f.as_fd()).as_deref()
                                == Some("anon_inode:seccomp notify")
                        };
                        if let Some(fd) = fd.filter(|f| {
                            self.takes_listeners && self.waiting.contains_key(&id) && notify(f)
                        }) {
                            self.joined.push(fd);
                        }
                        continue;
                    }
                    let answer = match kind {
                        "started" => format!("started {rest}"),
                        "exit" => format!("exit {rest}"),
                        _ => format!("failed {rest}"),
                    };
                    if let Some(c) = self.waiting.get(&id) {
                        let _ = netcell_sys::send_nb(c.as_fd(), answer.as_bytes(), 0);
                    }
                    if kind != "started" {
                        self.waiting.remove(&id);
                    }
                }
                // The zygote ended: programs it was starting never will, and
                // their clients must not wait for ever.
                Ok((_, None, _)) if netcell_sys::hung_up_now(z.as_fd()) => {
                    log::warn!("the zygote of netcell exec ended");
                    for (_, c) in self.waiting.drain() {
                        let _ = netcell_sys::send_nb(
                            c.as_fd(),
                            b"failed the container's zygote ended",
                            0,
                        );
                    }
                    self.zygote = None;
                    break;
                }
                _ => break,
            }
        }
    }

    fn info(&self, stack: &mut Stack<Link>) -> String {
        let mut devices = Vec::new();
        let mut all = Vec::new();
        for (_, n) in stack.interfaces().iter() {
            let addrs: Vec<String> = n.iface.ip_addrs().iter().map(|c| c.to_string()).collect();
            if n.name != "lo" {
                all.extend(addrs.iter().cloned());
            }
            devices.push(format!(
                "{{\"name\":{},\"up\":{},\"mtu\":{},\"addresses\":[{}]}}",
                json_str(&n.name),
                n.up,
                n.mtu,
                addrs
                    .iter()
                    .map(|a| json_str(a))
                    .collect::<Vec<_>>()
                    .join(",")
            ));
        }
        format!(
            "{{\"name\":{},\"pid\":{},\"command\":{},\"shim\":{},\"uptime_s\":{},\"addresses\":[{}],\"devices\":[{}]}}",
            json_str(&self.id.name),
            self.id.pid,
            json_str(&self.id.command),
            json_str(self.id.shim),
            self.id.started.elapsed().as_secs(),
            all.iter()
                .map(|a| json_str(a))
                .collect::<Vec<_>>()
                .join(","),
            devices.join(",")
        )
    }

    fn stats(&self, stack: &mut Stack<Link>) -> String {
        let dev = |s: DeviceStats| {
            format!(
                "{{\"rx_packets\":{},\"rx_bytes\":{},\"tx_packets\":{},\"tx_bytes\":{},\"rx_errors\":{},\"tx_errors\":{}}}",
                s.rx_frames, s.rx_bytes, s.tx_frames, s.tx_bytes, s.rx_errors, s.tx_errors
            )
        };
        // The devices under a key of their own: their names are the container's
        // to choose (`ip link set eth0 name tcp`) and must not clash with the rest.
        let mut devices = vec![format!("\"lo\":{}", dev(stack.lo_device().stats()))];
        for (i, link) in stack.devices().iter().enumerate() {
            let name = &stack.interfaces().get(netcell_stack::iface::ETH + i).name;
            devices.push(format!("{}:{}", json_str(name), dev(link.stats())));
        }
        let mut parts = vec![
            format!("\"name\":{}", json_str(&self.id.name)),
            format!("\"devices\":{{{}}}", devices.join(",")),
        ];
        for link in stack.devices() {
            if let Link::Uplink(u) = link {
                let s = u.uplink_stats();
                parts.push(format!(
                    "\"uplink\":{{\"flows\":{},\"flows_opened\":{},\"flows_evicted\":{},\"sent\":{},\"received\":{},\"dropped\":{}}}",
                    s.flows, s.flows_opened, s.flows_evicted, s.sent, s.received, s.dropped
                ));
            }
        }
        let c = stack.interfaces().capture().borrow().stats();
        if stack.interfaces().capture().borrow().active() || c.frames > 0 {
            parts.push(format!(
                "\"capture\":{{\"frames\":{},\"dropped\":{},\"written\":{},\"errors\":{}}}",
                c.frames, c.dropped, c.written, c.errors
            ));
        }
        let f = stack.interfaces().filter().borrow().stats();
        parts.push(format!(
            "\"filter\":{{\"rules\":{},\"dropped\":{},\"rejected\":{},\"connections\":{},\"logs_suppressed\":{},\"over_budget\":{}}}",
            stack.interfaces().filter().borrow().ruleset().rules.len(),
            f.dropped,
            f.rejected,
            f.connections,
            f.logs_suppressed,
            f.over_budget
        ));
        let tcp = stack.socket_list(libc::IPPROTO_TCP);
        let count = |st: u8| tcp.iter().filter(|e| e.state == st).count();
        parts.push(format!(
            "\"tcp\":{{\"listen\":{},\"established\":{},\"other\":{}}}",
            count(10),
            count(1),
            tcp.len() - count(10) - count(1)
        ));
        parts.push(format!(
            "\"udp\":{}",
            stack.socket_list(libc::IPPROTO_UDP).len()
        ));
        let r = stack.interfaces().recovery().borrow().counters();
        parts.push(format!(
            "\"recovery\":{{\"prompts\":{},\"again\":{},\"probes\":{}}}",
            r.prompts, r.again, r.probes
        ));
        let (posted, dropped) = stack.posts();
        parts.push(format!(
            "\"posted\":{{\"datagrams\":{posted},\"dropped\":{dropped}}}"
        ));
        parts.push(format!("\"spliced\":{}", stack.spliced()));
        parts.push(format!("\"buffer_memory\":{}", stack.buffer_memory()));
        format!("{{{}}}", parts.join(","))
    }
}

/// A JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether the peer of owner connection `conn` may be served: netcell's uid, no
/// seccomp filter (see the module docs). `Err` says why not.
pub fn check_peer(conn: BorrowedFd<'_>) -> Result<(), String> {
    let (uid_pid, uid) =
        netcell_sys::peer_cred(conn).map_err(|e| format!("no credentials: {e}"))?;
    let me = netcell_sys::euid();
    if uid != me {
        return Err(format!("uid {uid} is not the container's owner ({me})"));
    }
    // The process is pinned by a pidfd taken when it connected: its pid cannot be
    // another process's by the time /proc is read (checked alive after).
    let (pidfd, pid) = netcell_sys::peer_pidfd(conn).map_err(|e| format!("pid {uid_pid}: {e}"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("pid {pid}: {e}"))?;
    if !netcell_sys::pidfd_running(pidfd.as_fd()) {
        return Err(format!("pid {pid} is gone"));
    }
    let seccomp = status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .map(str::trim)
        .unwrap_or("0");
    if seccomp != "0" {
        return Err(format!(
            "pid {pid} runs under a seccomp filter (inside a container, say)"
        ));
    }
    Ok(())
}

/// Connects to container `name`'s owner socket.
pub(crate) fn connect(base: &Path, name: &str) -> Result<OwnedFd, String> {
    if name.contains('/') || name.starts_with('.') || name.is_empty() {
        return Err(format!("'{name}' is not a container name"));
    }
    let path = base.join(name).join("owner");
    let c = netcell_sys::connect_seqpacket(&path).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ECONNREFUSED) => {
            format!("no running container named '{name}' (netcell ls lists them)")
        }
        Some(libc::EACCES) => format!("container '{name}' belongs to another user"),
        _ => format!("cannot reach container '{name}': {e}"),
    })?;
    // The directory is the user's, and so writable by the user's containers: the
    // server must be a netcell of the user's, not a program in a container that
    // put its own socket there (it would get our environment and terminal).
    check_peer(c.as_fd()).map_err(|e| {
        format!("refusing to talk to '{name}': the socket's server fails the owner check ({e})")
    })?;
    Ok(c)
}

/// Sends `req` and reads one answer (blocking).
pub(crate) fn ask(
    conn: BorrowedFd<'_>,
    req: &[u8],
    fds: &[BorrowedFd<'_>],
) -> Result<Vec<u8>, String> {
    netcell_sys::set_nonblocking(conn, false).map_err(|e| e.to_string())?;
    if let Err(e) = netcell_sys::send_with_fds(conn, req, fds) {
        // A refusal comes at once, and the connection closes: say why.
        return match read_msg(conn) {
            Err(why) if why != "the container ended" && !why.starts_with("answer:") => Err(why),
            _ => Err(format!("request refused ({e})")),
        };
    }
    read_msg(conn)
}

fn read_msg(conn: BorrowedFd<'_>) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; MAX_MSG];
    let mut f = std::fs::File::from(conn.try_clone_to_owned().map_err(|e| e.to_string())?);
    // A server that refuses closes without reading what we sent, which resets the
    // connection: the kernel reports the reset first and the refusal it had
    // queued on the next read.
    let n = match f.read(&mut buf) {
        Err(e) if e.raw_os_error() == Some(libc::ECONNRESET) => f.read(&mut buf),
        r => r,
    }
    .map_err(|e| format!("answer: {e}"))?;
    if n == 0 {
        return Err("the container ended".into());
    }
    buf.truncate(n);
    if let Some(e) = buf.strip_prefix(b"error ") {
        return Err(String::from_utf8_lossy(e).into_owned());
    }
    Ok(buf)
}

/// The names of the containers with a directory under `base`.
fn names(base: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(base)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().join("owner").exists())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// `netcell ls`: one line per running container, or a JSON array.
pub fn ls(base: &Path, json: bool) -> Result<i32, String> {
    let mut infos = Vec::new();
    for name in names(base) {
        match connect(base, &name).and_then(|c| ask(c.as_fd(), b"info", &[])) {
            Ok(info) => infos.push(String::from_utf8_lossy(&info).into_owned()),
            Err(e) => log::debug!("{name}: {e}"),
        }
    }
    if json {
        println!("[{}]", infos.join(","));
        return Ok(0);
    }
    println!(
        "{:<20} {:>8} {:>8} {:<8} {:<32} COMMAND",
        "NAME", "PID", "UPTIME", "SHIM", "ADDRESSES"
    );
    for i in &infos {
        // Printed on a terminal: no control characters from a container's name or
        // command line.
        let field = |k: &str| printable(&json_field(i, k).unwrap_or_default());
        println!(
            "{:<20} {:>8} {:>7}s {:<8} {:<32} {}",
            field("name"),
            field("pid"),
            field("uptime_s"),
            field("shim"),
            field("addresses"),
            field("command")
        );
    }
    Ok(0)
}

/// A top-level field of one of our own JSON objects, as text (strings unquoted,
/// arrays of strings joined by commas). Only for the objects this module writes.
fn json_field(obj: &str, key: &str) -> Option<String> {
    let at = obj.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &obj[at..];
    if let Some(r) = rest.strip_prefix('"') {
        let end = r.find('"')?;
        return Some(r[..end].to_string());
    }
    if let Some(r) = rest.strip_prefix('[') {
        let end = r.find(']')?;
        return Some(r[..end].replace('"', ""));
    }
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].to_string())
}

/// `netcell stats NAME`.
pub fn stats(base: &Path, name: &str, json: bool) -> Result<i32, String> {
    let c = connect(base, name)?;
    let s = String::from_utf8_lossy(&ask(c.as_fd(), b"stats", &[])?).into_owned();
    if json {
        println!("{s}");
    } else {
        let v: serde_json::Value = serde_json::from_str(&s)
            .map_err(|e| format!("the container's counters are not JSON ({e}): {s}"))?;
        let mut lines = Vec::new();
        flatten("", &v, &mut lines);
        for l in lines {
            println!("{l}");
        }
    }
    Ok(0)
}

/// One `key: value` line per counter, nested keys joined with dots
/// (`devices.eth0.rx_packets: 1046880`), sorted by key.
fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        serde_json::Value::String(s) => {
            out.push(format!("{}: {}", printable(prefix), printable(s)))
        }
        v => out.push(format!("{}: {v}", printable(prefix))),
    }
}

/// `s` for a terminal: control characters (a container names its own
/// interfaces, and an escape sequence fits in 15 bytes) shown as `?`.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// `netcell exec NAME -- CMD`: the command's exit status.
pub fn exec(base: &Path, name: &str, command: &[std::ffi::OsString]) -> Result<i32, String> {
    let c = connect(base, name)?;
    let req = ExecRequest {
        argv: command.iter().map(|a| a.as_bytes().to_vec()).collect(),
        env: std::env::vars_os()
            .map(|(k, v)| {
                let mut kv = k.as_bytes().to_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                kv
            })
            .collect(),
        cwd: std::env::current_dir()
            .map(|d| d.as_os_str().as_bytes().to_vec())
            .unwrap_or_else(|_| b"/".to_vec()),
    };
    let (i, o, e) = (io::stdin(), io::stdout(), io::stderr());
    let stdio = [i.as_fd(), o.as_fd(), e.as_fd()];
    let first = ask(c.as_fd(), &req.encode(), &stdio)?;
    // `failed CODE WHY`: the program could not be started.
    if let Some(rest) = first.strip_prefix(b"failed ") {
        let rest = String::from_utf8_lossy(rest);
        let (code, why) = rest.split_once(' ').unwrap_or(("126", &rest));
        eprintln!("netcell: {why}");
        return Ok(code.parse().unwrap_or(126));
    }
    log::debug!("{}", String::from_utf8_lossy(&first));
    let done = read_msg(c.as_fd())?;
    let code = done
        .strip_prefix(b"exit ")
        .and_then(|c| std::str::from_utf8(c).ok())
        .and_then(|c| c.trim().parse().ok())
        .ok_or_else(|| format!("unexpected answer {:?}", String::from_utf8_lossy(&done)))?;
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refusal sent by a server that closed without reading the request (the
    /// kernel resets the connection) still reaches the client as the refusal.
    #[test]
    fn a_refusal_after_an_unread_request_is_read_past_the_reset() {
        let (client, server) = netcell_sys::seqpacket_pair().unwrap();
        netcell_sys::send_nb(client.as_fd(), b"filter\0x\0flush", 0).unwrap();
        netcell_sys::send_nb(server.as_fd(), b"error refused: uid 1", 0).unwrap();
        drop(server);
        assert_eq!(read_msg(client.as_fd()), Err("refused: uid 1".to_string()));
    }

    #[test]
    fn exec_requests_round_trip_and_garbage_is_refused() {
        let r = ExecRequest {
            argv: vec![b"ip".to_vec(), b"addr".to_vec()],
            env: vec![b"A=1".to_vec(), b"B=".to_vec()],
            cwd: b"/tmp".to_vec(),
        };
        assert_eq!(ExecRequest::decode(&r.encode()), Some(r));
        for bad in [
            &b""[..],
            b"exec\0",
            b"exec\0/\x001\0",
            b"exec\0/\x00999999\0x\0",
            b"exec\0/\x000\x000\0",
            b"exec\0/\x00x\0",
        ] {
            assert_eq!(ExecRequest::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn json_fields_and_strings() {
        assert_eq!(json_str("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
        let o = r#"{"name":"web","pid":42,"addresses":["10.0.2.100/24","::1/128"]}"#;
        assert_eq!(json_field(o, "name").as_deref(), Some("web"));
        assert_eq!(json_field(o, "pid").as_deref(), Some("42"));
        assert_eq!(
            json_field(o, "addresses").as_deref(),
            Some("10.0.2.100/24,::1/128")
        );
    }
}
