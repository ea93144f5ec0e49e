//! `netcell run`: one container's life.
//!
//! 1. Build the stack: `lo`, and `eth0` on the TAP device when `--tap` is given.
//! 2. Make the container's private runtime directory (mode 0700): its control socket
//!    and the preload library live there.
//! 3. Start the command under the seccomp filter (the default; see
//!    [`crate::seccomp`]), or with `LD_PRELOAD` and `NETCELL_CONTROL` set
//!    (`--shim preload`), so that it and every program it starts (`fork`, `exec`,
//!    threads) use the container's stack.
//! 4. Serve the stack (and the filter's notifications) until the command exits;
//!    forward signals sent to netcell.
//! 5. Remove what was made (the runtime directory; a TAP device netcell created
//!    disappears when its fd closes) and exit with the command's status.
//!
//! The container ends with its command, as a container does: netcell is the
//! subreaper of the command's descendants, and when the command exits it sends
//! SIGTERM to the processes left behind and SIGKILL two seconds later (they would
//! have no network anyway).
//!
//! Signals: SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH sent to
//! netcell (by `kill`) are forwarded to the command. Those a terminal sends reach the
//! command directly (it is in netcell's process group), so they are forwarded only
//! when the command left the group.

use crate::cli::{RunArgs, ShimMode, UplinkMode};
use crate::owner::{Identity, OwnerServer};
use crate::seccomp::{self, Files, Supervisor};
use crate::{preload_lib, spawn, sys};
use netcell_stack::control::server::ControlServer;
use netcell_stack::device::{Link, TapConfig, TapDevice, TapError};
use netcell_stack::publish::Publisher;
use netcell_stack::runtime::Runtime;
use netcell_stack::uplink::{DNS4, UplinkConfig, UplinkDevice};
use netcell_stack::{EthConfig, SocketConfig, Stack};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

/// Signals netcell forwards to the container's main process.
const FORWARDED: &[libc::c_int] = &[
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

const SIGNALS: usize = 0;
const CHILD: usize = 1;
const SECCOMP: usize = 2;
const PARKED: usize = 3;
const PUBLISHED: usize = 4;
const OWNER: usize = 5;
const ZYGOTE: usize = 6;
const ZYGOTE_SECCOMP: usize = 7;
const MIRROR: usize = 8;
/// `netcell agent`'s link to an OCI container's server.
const OCI_LINK: usize = 9;
/// The supervisor's listener `idx` (an OCI container's `exec`s) is source
/// `LISTENERS + idx`.
const LISTENERS: usize = 16;

/// The container's private directory, removed on drop.
struct RuntimeDir {
    path: PathBuf,
}

impl RuntimeDir {
    /// `netcell/NAME` under `base` (see `owner.rs`): a name already taken by a
    /// running container is refused; a dead one's directory is reused.
    fn create(base: Option<&Path>, name: &str) -> Result<RuntimeDir, String> {
        let top = crate::owner::base_dir(base);
        // Traversable by all (programs in the container may change their user),
        // listable by nobody else; the sockets check who connects.
        std::fs::DirBuilder::new()
            .mode(0o711)
            .recursive(true)
            .create(&top)
            .map_err(|e| format!("cannot create {}: {e}", top.display()))?;
        let path = top.join(name);
        if path.exists() {
            if netcell_sys::connect_seqpacket(&path.join("owner")).is_ok() {
                return Err(format!(
                    "a container named '{name}' is running already; choose another --name"
                ));
            }
            let _ = std::fs::remove_dir_all(&path);
        }
        std::fs::DirBuilder::new()
            .mode(0o711)
            .create(&path)
            .map_err(|e| {
                format!(
                    "cannot create the runtime directory {}: {e}",
                    path.display()
                )
            })?;
        Ok(RuntimeDir { path })
    }
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            log::warn!("cannot remove {}: {e}", self.path.display());
        }
    }
}

/// The host's resolver as an uplinked container needs it: a nameserver on the
/// host's loopback (systemd-resolved's 127.0.0.53, a local dnsmasq) is the
/// container's own loopback inside, so the container's `resolv.conf` names the
/// uplink's DNS address (10.0.2.3) instead, which the uplink maps to it.
struct HostResolver {
    /// The host's first loopback nameserver.
    forward: Option<std::net::IpAddr>,
    /// The container's `resolv.conf`, when it must differ from the host's.
    for_container: Option<String>,
}

impl HostResolver {
    fn read(path: &Path) -> Option<HostResolver> {
        let text = std::fs::read_to_string(path).ok()?;
        Some(Self::from_text(&text))
    }

    fn from_text(text: &str) -> HostResolver {
        let mut forward = None;
        let mut out = String::from(
            "# written by netcell: the host's resolv.conf, its loopback nameserver\n\
             # reached through the uplink's DNS address\n",
        );
        for line in text.lines() {
            let mut words = line.split_whitespace();
            if words.next() == Some("nameserver")
                && let Some(Ok(ip)) = words.next().map(str::parse::<std::net::IpAddr>)
                && ip.is_loopback()
            {
                if forward.is_none() {
                    forward = Some(ip);
                    out.push_str(&format!("nameserver {DNS4}\n"));
                }
                continue;
            }
            out.push_str(line);
            out.push('\n');
        }
        HostResolver {
            forward,
            for_container: forward.map(|_| out),
        }
    }
}

/// Writes the container's own `resolv.conf` (with `--dns*`) and hosts file
/// (`--add-host`) into its runtime directory. For the preload shim's resolver the
/// hosts file holds the additions only (it reads `/etc/hosts` after them); a file
/// served in place of `/etc/hosts` (seccomp mode) holds the additions followed by
/// the host's `/etc/hosts`.
fn write_resolver_files(
    args: &RunArgs,
    host_dns: Option<&HostResolver>,
    dir: &Path,
    merged_hosts: bool,
) -> Result<Files, String> {
    let mut resolv_conf = None;
    if let Some(text) = host_dns.and_then(|h| h.for_container.as_ref())
        && args.dns_search.is_empty()
        && args.dns_option.is_empty()
    {
        let p = dir.join("resolv.conf");
        std::fs::write(&p, text).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
        resolv_conf = Some(p);
    } else if !args.dns.is_empty() || !args.dns_search.is_empty() || !args.dns_option.is_empty() {
        if args.dns.len() > 3 {
            return Err(format!(
                "{} --dns servers given; a resolver uses at most 3",
                args.dns.len()
            ));
        }
        let mut text = String::from("# written by netcell for this container\n");
        for s in &args.dns {
            text.push_str(&format!("nameserver {s}\n"));
        }
        if !args.dns_search.is_empty() {
            text.push_str(&format!("search {}\n", args.dns_search.join(" ")));
        }
        if !args.dns_option.is_empty() {
            text.push_str(&format!("options {}\n", args.dns_option.join(" ")));
        }
        let p = dir.join("resolv.conf");
        std::fs::write(&p, text).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
        resolv_conf = Some(p);
    }
    let mut hosts = None;
    if !args.add_host.is_empty() {
        let mut text: String = args
            .add_host
            .iter()
            .map(|(n, ip)| format!("{ip}\t{n}\n"))
            .collect();
        if merged_hosts {
            text.push_str(&std::fs::read_to_string("/etc/hosts").unwrap_or_default());
        }
        let p = dir.join("hosts");
        std::fs::write(&p, text).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
        hosts = Some(p);
    }
    Files::new(resolv_conf, hosts).map_err(|e| format!("cannot seal the resolver files: {e}"))
}

/// The start-up's pages (argument parsing, the embedded preload library it wrote
/// out, set-up code), handed back once the container has run a second (see
/// `sys::drop_clean_file_pages`): an idle container then holds only what its event
/// loop uses — measured, 2.3–2.6 MiB RSS instead of 5.9 (seccomp) and 10.7 MiB
/// (preload, which hashed and wrote out its embedded library).
struct StartupPages {
    started: std::time::Instant,
    done: bool,
}

impl StartupPages {
    const AFTER: std::time::Duration = std::time::Duration::from_secs(1);

    fn new() -> Self {
        StartupPages {
            started: std::time::Instant::now(),
            done: false,
        }
    }

    /// The longest the next turn may sleep for the hand-back to be on time.
    fn wait(&self) -> Option<std::time::Duration> {
        (!self.done).then(|| Self::AFTER.saturating_sub(self.started.elapsed()))
    }

    fn hand_back_when_due(&mut self) {
        if self.done || self.started.elapsed() < Self::AFTER {
            return;
        }
        self.done = true;
        match sys::drop_clean_file_pages() {
            Ok(kib) => log::debug!("handed back {kib} KiB of start-up pages"),
            Err(e) => log::debug!("cannot hand back start-up pages: {e}"),
        }
    }
}

/// One turn of the event loop with the supervisor (if any) served in it: its
/// notifications and parked calls are sources of the loop, and its deadlines bound
/// the wait.
fn turn(
    runtime: &mut Runtime,
    sup: &mut Option<Supervisor>,
    publisher: &mut Option<Publisher>,
    owner: &mut Option<OwnerServer>,
    max_wait: Option<std::time::Duration>,
    mut on_external: impl FnMut(usize),
) -> std::io::Result<()> {
    // Notifications a batch left (see the supervisor's docs) are served first,
    // and this turn, which then does not wait, settles what they did: the stack
    // polled, new stand-ins watched. (A turn that slept first left a datagram a
    // backlogged `sendmsg` queued unsent until something else woke the loop.)
    let mut wake = sup.as_ref().and_then(Supervisor::next_wake);
    if let Some(s) = sup.as_mut()
        && s.has_backlog()
    {
        s.serve_backlog(runtime.stack());
        wake = Some(std::time::Duration::ZERO);
    }
    // Owner connections a call left (see `OwnerServer::on_listener`).
    if let Some(o) = owner.as_mut()
        && o.has_backlog()
    {
        o.on_listener(runtime.stack());
        wake = Some(std::time::Duration::ZERO);
    }
    let wait = match (max_wait, wake) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    runtime.turn(wait, |n, stack| match n {
        SECCOMP => {
            if let Some(s) = sup.as_mut() {
                s.on_notifications(stack, 0);
            }
        }
        ZYGOTE_SECCOMP => {
            if let Some(s) = sup.as_mut() {
                s.on_notifications(stack, 1);
            }
        }
        PARKED => {
            if let Some(s) = sup.as_mut() {
                s.on_ready(stack);
            }
        }
        PUBLISHED => {
            if let Some(p) = publisher.as_mut() {
                p.serve(stack);
            }
        }
        OWNER => {
            if let Some(o) = owner.as_mut() {
                o.on_listener(stack);
            }
        }
        ZYGOTE => {
            if let Some(o) = owner.as_mut() {
                o.on_zygote();
            }
        }
        MIRROR => stack.send_packet_socket_frames(),
        n if n >= LISTENERS => {
            if let Some(s) = sup.as_mut() {
                s.on_notifications(stack, n - LISTENERS);
            }
        }
        n => on_external(n),
    })?;
    if let (Some(s), Some(o)) = (sup.as_mut(), owner.as_mut()) {
        for fd in o.take_joined() {
            join_listener(runtime, s, fd).map_err(std::io::Error::other)?;
        }
    }
    if let Some(s) = sup.as_mut() {
        s.tick(runtime.stack());
    }
    Ok(())
}

/// Serves another process's seccomp listener (an OCI container's exec, or a
/// program `netcell exec` started in one) on the same stack; at most
/// [`crate::oci::MAX_LISTENERS`] live at once.
fn join_listener(
    runtime: &mut Runtime,
    s: &mut Supervisor,
    fd: std::os::fd::OwnedFd,
) -> Result<(), String> {
    if s.live_listeners() >= crate::oci::MAX_LISTENERS {
        log::warn!(
            "{} processes joined the container already; this one gets no network",
            crate::oci::MAX_LISTENERS
        );
        return Ok(());
    }
    let idx = s.add_or_reuse_listener(fd);
    if let Some(fd) = s.listener_fd_of(idx) {
        runtime
            .register_external(fd, LISTENERS + idx)
            .map_err(|e| e.to_string())?;
    }
    log::info!("another process joins the container (listener {idx})");
    Ok(())
}

/// Polls the stack until the first DHCP client holds a lease, at most `timeout`.
fn wait_for_lease(
    stack: &mut Stack<Link>,
    timeout: std::time::Duration,
) -> Result<netcell_stack::stack::Lease, String> {
    let t0 = std::time::Instant::now();
    loop {
        stack.poll();
        if let Some(l) = stack.dhcp_lease() {
            return Ok(l.clone());
        }
        if t0.elapsed() > timeout {
            return Err(format!(
                "no DHCP lease within {} s: is a DHCP server on the TAP's link?",
                timeout.as_secs()
            ));
        }
        let wait = stack
            .poll_delay()
            .unwrap_or(std::time::Duration::from_millis(20))
            .min(std::time::Duration::from_millis(20));
        std::thread::sleep(wait);
    }
}

/// A readable default name: the command's file name and netcell's pid
/// (`python3-4242`), in the characters `--name` allows.
fn default_name(program: &std::ffi::OsStr) -> String {
    let base = Path::new(program)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let clean: String = base
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
        .skip_while(|c| !c.is_ascii_alphanumeric())
        .take(40)
        .collect();
    let clean = if clean.is_empty() { "c".into() } else { clean };
    format!("{clean}-{}", std::process::id())
}

/// Starts the zygote of `netcell exec` (see `owner.rs`) behind the same walls as
/// the command; returns netcell's end of its socket, and under seccomp the
/// listener of its filter (the supervisor serves it too).
#[allow(clippy::type_complexity)]
fn start_zygote(
    walls: Option<&spawn::Walls>,
) -> Result<(std::os::fd::OwnedFd, Option<std::os::fd::OwnedFd>), String> {
    use std::os::fd::AsFd;
    let (ours, theirs) = sys::seqpacket_pair().map_err(|e| e.to_string())?;
    sys::set_nonblocking(ours.as_fd(), true).map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let raw = theirs.as_raw_fd();
    let cmd = spawn::Command::new(
        exe.as_os_str(),
        &["__zygote".into(), raw.to_string().into()],
        &[],
    )
    .map_err(|e| e.to_string())?;
    // Inherited across exec by the zygote alone (the child shares netcell's table
    // until exec: close-on-exec again right after).
    let spawned = cmd.spawn_keeping(walls, Some(raw));
    let _ = sys::set_cloexec(theirs.as_fd(), true);
    Ok((ours, spawned.map_err(|e| e.to_string())?.listener))
}

/// Serves an OCI container (see `oci`): the descriptors `netcell agent` hands
/// over on `link` — its `run`'s, then each `exec`'s — until no process uses any
/// of them; the stack and its directory go then.
fn serve_oci(
    mut runtime: Runtime,
    mut publisher: Option<Publisher>,
    dir: &RuntimeDir,
    name: &str,
    link: &std::os::fd::OwnedFd,
    max_blocked: usize,
    sigfd: &std::os::fd::OwnedFd,
) -> Result<i32, String> {
    let (first, pid, bundle) = crate::oci::first_listener(link)?;
    let files = Files::new(None, None).map_err(|e| e.to_string())?;
    let s = Supervisor::new(first, files, max_blocked)
        .map_err(|e| format!("seccomp supervisor: {e}"))?;
    runtime
        .register_external(s.listener_fd(), SECCOMP)
        .map_err(|e| e.to_string())?;
    runtime
        .register_external(s.parked_fd(), PARKED)
        .map_err(|e| e.to_string())?;
    runtime
        .register_external(link.as_raw_fd(), OCI_LINK)
        .map_err(|e| e.to_string())?;
    let mut sup = Some(s);
    let mut owner = match OwnerServer::bind(
        &dir.path,
        Identity {
            name: name.to_string(),
            pid: std::process::id(),
            command: format!("(OCI container, pid {pid})"),
            shim: "seccomp",
            started: std::time::Instant::now(),
        },
    ) {
        Ok(o) => {
            runtime
                .register_external(o.listener_fd(), OWNER)
                .map_err(|e| e.to_string())?;
            Some(o)
        }
        Err(e) => {
            log::warn!("no owner socket (netcell ls/stats will not see this container): {e}");
            None
        }
    };
    // `netcell exec` makes its programs the container's own processes (see
    // `enter`); where that cannot be done, it is refused with why.
    if let Some(o) = owner.as_mut() {
        let zygote = sys::pidfd_open(pid)
            .map_err(|e| format!("the container's process {pid}: {e}"))
            .and_then(|pidfd| crate::enter::start(pid, &pidfd, &bundle));
        match zygote {
            Ok(z) => {
                o.set_zygote(z, Vec::new());
                o.take_listeners_from_zygote();
                if let Some(fd) = o.zygote_fd() {
                    runtime
                        .register_external(fd, ZYGOTE)
                        .map_err(|e| e.to_string())?;
                }
            }
            Err(e) => {
                log::warn!("container {name}: netcell exec will not work: {e}");
                o.refuse_exec(&format!("netcell exec cannot start programs here: {e}"));
            }
        }
    }
    crate::oci::report(link, Ok(()));
    log::info!("container {name}: serving the OCI container (pid {pid})");
    let mut agent_gone = false;
    let mut startup = StartupPages::new();
    loop {
        let (mut linked, mut signalled) = (false, false);
        turn(
            &mut runtime,
            &mut sup,
            &mut publisher,
            &mut owner,
            Some(std::time::Duration::from_millis(500)),
            |n| match n {
                OCI_LINK => linked = true,
                SIGNALS => signalled = true,
                _ => {}
            },
        )
        .map_err(|e| format!("event loop: {e}"))?;
        startup.hand_back_when_due();
        let Some(s) = sup.as_mut() else { break };
        while linked && !agent_gone {
            let mut buf = [0u8; 64];
            match sys::recv_with_fds(link.as_fd(), &mut buf) {
                Ok(r) if r.len == 0 && r.fds.is_empty() => {
                    log::warn!("container {name}: the agent went away; serving on");
                    agent_gone = true;
                }
                Ok(r) => {
                    for fd in r.fds {
                        join_listener(&mut runtime, s, fd)?;
                    }
                }
                Err(_) => break,
            }
        }
        if signalled {
            while let Some((sig, _)) = sys::read_signal(sigfd.as_raw_fd()) {
                if sig == libc::SIGTERM || sig == libc::SIGINT {
                    log::info!("container {name}: stopped by signal {sig}");
                    return Ok(0);
                }
            }
        }
        if s.all_hung_up() {
            log::info!("container {name}: no process uses the stack any more");
            break;
        }
    }
    runtime
        .stack()
        .interfaces()
        .capture()
        .borrow_mut()
        .end_mirror();
    Ok(0)
}

/// Stops the processes the command left behind: SIGTERM, then SIGKILL after 2 s.
/// The stack keeps serving meanwhile, so they can close their connections.
fn stop_leftovers(runtime: &mut Runtime, sup: &mut Option<Supervisor>) {
    sys::reap_all();
    let left = sys::children();
    if left.is_empty() {
        return;
    }
    log::info!(
        "stopping {} process(es) the command left behind",
        left.len()
    );
    for &p in &left {
        let _ = sys::kill(p, libc::SIGTERM);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        sys::reap_all();
        if sys::children().is_empty() {
            return;
        }
        let _ = turn(
            runtime,
            sup,
            &mut None,
            &mut None,
            Some(std::time::Duration::from_millis(20)),
            |_| {},
        );
    }
    kill_all_children();
}

/// SIGKILL in rounds until no child is left: a process that keeps forking (its pid
/// changing under every snapshot) leaves children that come to netcell, the
/// subreaper, once their parent dies; each round kills those.
fn kill_all_children() {
    let t0 = std::time::Instant::now();
    loop {
        let left = sys::children();
        if left.is_empty() {
            return;
        }
        if t0.elapsed() > std::time::Duration::from_secs(10) {
            log::warn!(
                "{} process(es) of the container survive SIGKILL",
                left.len()
            );
            return;
        }
        for p in left {
            let _ = sys::kill(p, libc::SIGKILL);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
        sys::reap_all();
    }
}

/// Opens the `--tap`/`--tap-fd` devices, in order, with their settings (the
/// stand-alone device options are eth0's).
fn open_devices(args: &RunArgs) -> Result<Vec<(Link, EthConfig)>, String> {
    let named: Vec<(Option<&str>, Option<i32>, &crate::cli::DevOpts)> = args
        .tap
        .iter()
        .map(|t| (Some(t.dev.as_str()), None, &t.opts))
        .chain(args.tap_fd.iter().map(|t| (None, Some(t.dev), &t.opts)))
        .collect();
    if named.len() > netcell_stack::iface::MAX_ETHS {
        return Err(format!(
            "{} devices given; a container takes at most {}",
            named.len(),
            netcell_stack::iface::MAX_ETHS
        ));
    }
    let mut out = Vec::with_capacity(named.len());
    for (n, (tap, fd, opts)) in named.into_iter().enumerate() {
        let mut opts = opts.clone();
        if n == 0 {
            opts.merge(args.eth0_opts())?;
        }
        let cfg = TapConfig {
            name: tap.unwrap_or_default().to_string(),
            mtu: opts.mtu.unwrap_or(1500),
            verify_rx_checksums: args.verify_checksums,
            offload: !args.no_offload,
            queue_len: args
                .tap_queue
                .unwrap_or(netcell_stack::device::DEFAULT_TAP_QUEUE),
        };
        let dev = match fd {
            Some(fd) => TapDevice::adopt(fd, &cfg),
            None => TapDevice::open(&cfg),
        }
        .map_err(|e| match (&args.net, &e) {
            // In the net's namespace netcell holds CAP_NET_ADMIN: what fails is
            // the device node's permission.
            (Some(net), TapError::Node(source)) => format!(
                "cannot make a TAP device on net '{net}': /dev/net/tun: {source}. netcell is \
                 root of the net's namespace, so the kernel would allow it, but /dev/net/tun \
                 is not open to your user here (mode {}): ask root for `chmod 0666 \
                 /dev/net/tun` (as most distributions ship it), or run as root",
                std::fs::metadata("/dev/net/tun")
                    .map(|m| format!(
                        "{:o}",
                        std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777
                    ))
                    .unwrap_or_else(|_| "unknown".into())
            ),
            (Some(net), _) => format!("cannot make a TAP device on net '{net}': {e}"),
            (None, _) => e.to_string(),
        })?;
        let name = opts.name.clone().unwrap_or_else(|| format!("eth{n}"));
        if opts.addr.is_empty() {
            log::warn!("{}: no address given, {name} has none", dev.name());
        }
        if args.net.is_some() {
            crate::net::attach(dev.name())?;
        }
        out.push((
            Link::Tap(dev),
            EthConfig {
                name,
                addrs: opts.static_addrs(),
                gateways: opts.gateway.clone(),
                mac: opts.mac,
                dhcp: opts.dhcp(),
                slaac: opts.slaac(),
            },
        ));
    }
    Ok(out)
}

/// Runs a container; returns the exit code for the process. With `--oci-link`
/// it serves an OCI container for `netcell agent` instead (see `oci`), and
/// tells the agent why when it cannot.
pub fn run(args: RunArgs) -> Result<i32, String> {
    let Some(fd) = args.oci_link else {
        return run_with(args, None);
    };
    let link = crate::oci::take_link(fd)?;
    // The agent's containers fail closed with it: their next socket call gets
    // ENOSYS once this server is gone.
    if !sys::netns::die_with_parent().map_err(|e| e.to_string())? {
        return Err("the agent ended before its container's server started".into());
    }
    let r = run_with(args, Some(&link));
    if let Err(e) = &r {
        crate::oci::report(&link, Err(e));
    }
    r
}

fn run_with(args: RunArgs, oci: Option<&std::os::fd::OwnedFd>) -> Result<i32, String> {
    let mut args = args;
    if let Some(net) = args.net.clone() {
        // Before anything else: netcell is single-threaded only now. The
        // directories are found from outside the net's user namespace.
        let base = crate::owner::base_dir(args.runtime_dir.as_deref());
        args.runtime_dir = base.parent().map(Path::to_path_buf);
        crate::net::join(&crate::net::base_dir(args.runtime_dir.as_deref()), &net)?;
        let opts = std::mem::take(&mut args.tap)
            .into_iter()
            .next()
            .map(|t| t.opts);
        args.tap = vec![crate::cli::DevArg {
            dev: format!("nc{}", std::process::id()),
            opts: opts.unwrap_or_default(),
        }];
    }
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| default_name(&args.command[0]));
    match netcell_sys::raise_nofile_limit() {
        Ok(n) => log::debug!("file descriptor limit {n}"),
        Err(e) => log::warn!("cannot raise the file descriptor limit: {e}"),
    }

    let uplinked =
        args.tap.is_empty() && args.tap_fd.is_empty() && args.uplink != Some(UplinkMode::None);
    let mut host_dns = None;
    let eths = if uplinked {
        {
            if args.dns.is_empty() {
                host_dns = HostResolver::read(Path::new("/etc/resolv.conf"));
            }
            // A handed host socket stays harmless only while Landlock denies TCP
            // connect and bind on host sockets (a raced connect could re-point
            // one otherwise): without it, under seccomp, no TCP is handed over.
            let tcp = args.shim != ShimMode::Seccomp
                || seccomp::landlock::Wall::prepare().denies_host_tcp();
            if !tcp {
                log::warn!(
                    "this kernel's Landlock has no network rules (ABI 4, Linux 6.7): TCP through \
                     the uplink is off under --shim seccomp (connects fail with EACCES); UDP and \
                     ping work. Use a newer kernel, a TAP, or --shim preload (no boundary)"
                );
            }
            let cfg = UplinkConfig {
                tcp,
                map_host_loopback: args.map_host_loopback,
                dns_forward: host_dns.as_ref().and_then(|h| h.forward),
                max_flows: args.max_uplink_flows,
                ..UplinkConfig::default()
            };
            let dev = UplinkDevice::new(cfg.clone())
                .map_err(|e| format!("cannot set up the host uplink: {e}"))?;
            vec![(Link::Uplink(dev), cfg.eth_config())]
        }
    } else {
        open_devices(&args)?
    };
    let cfg = SocketConfig {
        max_buffer_memory: args.max_buffer_memory,
        max_sockets: args.max_sockets,
        max_pending: args.max_pending,
        loopback_splice: args.loopback_splice,
        ..SocketConfig::default()
    };
    let mut stack = Stack::with_devices(eths, cfg)
        .map_err(|e| format!("invalid network configuration: {e}"))?;
    if let Some(path) = &args.pcap {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| format!("cannot open the capture file {}: {e}", path.display()))?;
        stack
            .start_capture(Box::new(file))
            .map_err(|e| format!("cannot start the capture: {e}"))?;
        log::info!("capture: every frame into {}", path.display());
    }
    if let Some(file) = &args.filter {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read the filter file {}: {e}", file.display()))?;
        let set = netcell_stack::filter::parse::parse_ruleset(&text)
            .map_err(|e| format!("{}: {e}", file.display()))?;
        log::info!("filter: {} rules from {}", set.rules.len(), file.display());
        stack.interfaces().filter().borrow_mut().replace(set);
    }
    if let Some(Link::Uplink(dev)) = stack.eth_device() {
        let policy = dev.uplink();
        stack.set_uplink(policy);
    }
    if args.dhcp() {
        let lease = wait_for_lease(&mut stack, std::time::Duration::from_secs(10))?;
        if args.dns.is_empty() {
            args.dns = lease
                .dns
                .iter()
                .take(3)
                .map(|a| smoltcp::wire::IpAddress::Ipv4(*a))
                .collect();
        }
    }
    let maps: Vec<_> = args.publish.iter().flatten().copied().collect();
    let mut publisher = if maps.is_empty() {
        None
    } else {
        Some(Publisher::bind(&maps, stack.eth_device()).map_err(|e| e.to_string())?)
    };

    let dir = RuntimeDir::create(args.runtime_dir.as_deref(), &name)?;
    let ctl = dir.path.join("ctl");
    if ctl.as_os_str().len() >= 108 {
        return Err(format!(
            "control socket path {} is too long for a unix socket; use --runtime-dir with a shorter path",
            ctl.display()
        ));
    }
    let mut control = ControlServer::bind(&ctl)
        .map_err(|e| format!("cannot create the control socket {}: {e}", ctl.display()))?;
    control.set_max_connections(args.max_control_connections);
    let mode = args.shim;
    if mode == ShimMode::Seccomp {
        control.refuse_all(
            "the container runs under the seccomp shim, which uses no control connection",
        );
    }
    let files = write_resolver_files(
        &args,
        host_dns.as_ref(),
        &dir.path,
        mode == ShimMode::Seccomp,
    )?;

    if let Err(e) = sys::become_subreaper() {
        log::warn!("cannot become the subreaper of the container's processes: {e}");
    }
    let sigfd = sys::block_and_signalfd(FORWARDED)
        .map_err(|e| format!("cannot set up signal handling: {e}"))?;
    let mut runtime =
        Runtime::new(stack, control).map_err(|e| format!("cannot start the event loop: {e}"))?;
    runtime
        .register_external(sigfd.as_raw_fd(), SIGNALS)
        .map_err(|e| e.to_string())?;
    if let Some(p) = &publisher {
        runtime
            .register_external(p.as_raw_fd(), PUBLISHED)
            .map_err(|e| e.to_string())?;
    }
    // Packet sockets (tcpdump inside), served by the mirror (see `mirror`).
    match crate::mirror::PacketMirror::new() {
        Ok(m) => {
            runtime
                .register_external(m.fd(), MIRROR)
                .map_err(|e| e.to_string())?;
            runtime
                .stack()
                .interfaces()
                .capture()
                .borrow_mut()
                .set_mirror(Box::new(m));
        }
        Err(e) => log::warn!("packet sockets will fail with EPERM: {e}"),
    }
    if let Some(link) = oci {
        return serve_oci(
            runtime,
            publisher,
            &dir,
            &name,
            link,
            args.max_blocked_calls,
            &sigfd,
        );
    }

    let program = &args.command[0];
    let mut env: Vec<(std::ffi::OsString, std::ffi::OsString)> =
        vec![("NETCELL_NAME".into(), name.clone().into())];
    let walls = match mode {
        ShimMode::Preload => {
            let so = preload_lib::install(&dir.path)
                .map_err(|e| format!("cannot install the preload library: {e}"))?;
            let mut preload = so.into_os_string();
            if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|o| !o.is_empty()) {
                preload.push(":");
                preload.push(old);
            }
            env.push(("LD_PRELOAD".into(), preload));
            env.push((netcell_proto::ENV_CONTROL.into(), ctl.clone().into()));
            if let Some(p) = files.resolv_conf() {
                env.push(("NETCELL_RESOLV_CONF".into(), p.into()));
            }
            if let Some(p) = files.hosts() {
                env.push(("NETCELL_HOSTS".into(), p.into()));
            }
            None
        }
        ShimMode::Seccomp => {
            seccomp::inherited::check_stdio()?;
            let wall = seccomp::landlock::Wall::prepare();
            for gap in wall.gaps() {
                log::warn!("{gap}");
            }
            Some(spawn::Walls {
                credentials: None,
                cgroup: None,
                filter: seccomp::filter::program(files.any()),
                landlock: wall.into_fd(),
            })
        }
    };
    let mut owner = match OwnerServer::bind(
        &dir.path,
        Identity {
            name: name.clone(),
            pid: std::process::id(),
            command: args
                .command
                .iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            shim: match mode {
                ShimMode::Seccomp => "seccomp",
                ShimMode::Preload => "preload",
            },
            started: std::time::Instant::now(),
        },
    ) {
        Ok(o) => Some(o),
        Err(e) => {
            log::warn!("no owner socket (netcell ls/exec/stats will not see this container): {e}");
            None
        }
    };
    let mut zygote_listener = None;
    if let Some(o) = owner.as_mut() {
        match start_zygote(walls.as_ref()) {
            Ok((z, l)) => {
                zygote_listener = l;
                o.set_zygote(z, env.clone());
                if let Some(fd) = o.zygote_fd() {
                    runtime
                        .register_external(fd, ZYGOTE)
                        .map_err(|e| e.to_string())?;
                }
            }
            Err(e) => log::warn!("netcell exec will not work in this container: {e}"),
        }
        runtime
            .register_external(o.listener_fd(), OWNER)
            .map_err(|e| e.to_string())?;
    }
    let cmd = spawn::Command::new(program, &args.command[1..], &env)
        .map_err(|e| format!("cannot run {}: {e}", program.to_string_lossy()))?;
    let spawned = match cmd.spawn(walls.as_ref()) {
        Ok(s) => s,
        Err(spawn::SpawnError::NotFound(_)) => {
            eprintln!(
                "netcell: cannot run {}: not found",
                program.to_string_lossy()
            );
            return Ok(127);
        }
        Err(e @ spawn::SpawnError::Exec(..)) => {
            eprintln!("netcell: {e}");
            return Ok(126);
        }
        Err(spawn::SpawnError::Seccomp(e)) => {
            let why = if e.raw_os_error() == Some(libc::EBUSY) {
                "the command already runs under a seccomp supervisor (inside another netcell \
                 container, say), and a process may have only one"
            } else {
                "seccomp user notification needs Linux 5.9 or later and no outer sandbox \
                 forbidding it"
            };
            return Err(format!(
                "the kernel refused the seccomp filter ({e}): {why}; run with --shim preload instead"
            ));
        }
        Err(e) => return Err(e.to_string()),
    };
    let mut sup = match spawned.listener {
        Some(l) => {
            let s = Supervisor::new(l, files, args.max_blocked_calls)
                .map_err(|e| format!("seccomp supervisor: {e}"))?;
            runtime
                .register_external(s.listener_fd(), SECCOMP)
                .map_err(|e| e.to_string())?;
            runtime
                .register_external(s.parked_fd(), PARKED)
                .map_err(|e| e.to_string())?;
            let mut s = s;
            // The zygote's filter is another listener of the same container.
            if let Some(zl) = zygote_listener.take() {
                let idx = s.add_listener(zl);
                if let Some(fd) = s.listener_fd_of(idx) {
                    runtime
                        .register_external(fd, ZYGOTE_SECCOMP)
                        .map_err(|e| e.to_string())?;
                }
            }
            Some(s)
        }
        None => None,
    };
    let pid = spawned.pid;
    runtime
        .register_external(spawned.pidfd.as_raw_fd(), CHILD)
        .map_err(|e| e.to_string())?;
    log::info!(
        "container {name}: command pid {pid} ({mode:?} mode), control socket {}",
        ctl.display()
    );

    let mut startup = StartupPages::new();
    let status = loop {
        let (mut signalled, mut exited) = (false, false);
        // A bug that panics must not leave the container running without its stack
        // (its socket calls would fail with ENOSYS, its processes live on): the
        // container ends with it.
        let turned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            turn(
                &mut runtime,
                &mut sup,
                &mut publisher,
                &mut owner,
                startup.wait(),
                |n| match n {
                    SIGNALS => signalled = true,
                    CHILD => exited = true,
                    _ => {}
                },
            )
        }));
        startup.hand_back_when_due();
        match turned {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                log::error!("event loop: {e}");
                let _ = sys::kill(pid, libc::SIGKILL);
            }
            Err(_) => {
                log::error!("netcell failed (a bug: please report it); ending the container");
                kill_all_children();
                return Ok(125);
            }
        }
        if signalled {
            while let Some((sig, from_process)) = sys::read_signal(sigfd.as_raw_fd()) {
                if from_process || !sys::in_my_process_group(pid) {
                    log::debug!("forwarding signal {sig} to {pid}");
                    let _ = sys::kill(pid, sig);
                }
            }
        }
        if exited {
            match spawn::try_wait(pid) {
                Ok(Some(st)) => break st,
                Ok(None) => {}
                Err(e) => return Err(format!("waiting for the command: {e}")),
            }
        }
    };
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    log::info!("container {name}: command exited with {code}");
    // The mirror's helper is no process of the container's.
    runtime
        .stack()
        .interfaces()
        .capture()
        .borrow_mut()
        .end_mirror();
    stop_leftovers(&mut runtime, &mut sup);
    deliver_what_was_written(&mut runtime, &mut sup);
    drop(runtime);
    drop(dir);
    Ok(code)
}

/// How long netcell serves on, at most, for bytes the container's programs
/// wrote before they ended.
const DELIVER_MAX: std::time::Duration = std::time::Duration::from_secs(10);

/// As the kernel delivers what a process wrote before it exited, netcell serves
/// on after the command (and what it left behind) ended until its connections
/// have nothing left to send, at most [`DELIVER_MAX`] (a peer that stopped
/// reading or vanished does not hold the exit longer). Before, bytes still in
/// the stack when the command exited were lost.
fn deliver_what_was_written(runtime: &mut Runtime, sup: &mut Option<Supervisor>) {
    let deadline = std::time::Instant::now() + DELIVER_MAX;
    let mut quiet = 0;
    let mut wait = std::time::Duration::ZERO;
    while quiet < 2 && std::time::Instant::now() < deadline {
        let _ = turn(runtime, sup, &mut None, &mut None, Some(wait), |_| {});
        if runtime.stack().sending() == 0 {
            quiet += 1;
            wait = std::time::Duration::ZERO;
        } else {
            quiet = 0;
            wait = std::time::Duration::from_millis(20);
        }
    }
    if quiet < 2 {
        log::warn!(
            "{} connection(s) still had bytes to send {} s after the command ended; they are dropped",
            runtime.stack().sending(),
            DELIVER_MAX.as_secs()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::HostResolver;

    #[test]
    fn a_loopback_nameserver_is_reached_through_the_uplinks_dns_address() {
        let h = HostResolver::from_text(
            "# systemd-resolved\nnameserver 127.0.0.53\nnameserver ::1\nsearch example.org\noptions edns0 trust-ad\n",
        );
        assert_eq!(h.forward, Some("127.0.0.53".parse().unwrap()));
        let text = h.for_container.unwrap();
        assert!(text.contains("nameserver 10.0.2.3\n"), "{text}");
        assert!(
            !text.contains("127.0.0.53") && !text.contains("::1"),
            "{text}"
        );
        assert!(text.contains("search example.org\n") && text.contains("options edns0"));

        let h = HostResolver::from_text("nameserver 192.0.2.53\n");
        assert_eq!(h.forward, None);
        assert!(h.for_container.is_none(), "the host's file serves as it is");
    }
}
