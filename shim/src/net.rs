//! `netcell net`: an L2 segment between containers, without root where the kernel
//! lets users open `/dev/net/tun`.
//!
//! # Theory of operation
//!
//! `netcell net create NAME` starts a *holder* (`netcell __net-holder`) in a new
//! user and network namespace (`unshare --user --map-root-user --net`): there it
//! makes a Linux bridge `br0`, brings it up, writes its pid to
//! `$XDG_RUNTIME_DIR/netcell-nets/NAME/pid` (`/run/netcell-nets` for root), and
//! sleeps. `netcell run --net NAME` joins the holder's namespaces before anything
//! else (netcell is single-threaded then), creates its TAP there (it is root of
//! that user namespace, so it may), and puts it on `br0`: containers on one net
//! share an Ethernet segment — TCP, UDP, ARP, multicast — and nothing else; the
//! segment has no way out (give a container a second path, or a root user a veth
//! from the bridge to the host).
//!
//! Programs of a `--net` container run as root of the net's user namespace (as in
//! a rootless podman container): root inside, the user outside.
//!
//! Opening `/dev/net/tun` needs read-write permission on it; a distribution
//! that makes it 0600 (root only) leaves `--net` to root: netcell says so.
//!
//! `netcell net rm NAME` stops the holder (the namespaces and the bridge go with
//! it once the containers on it end); `netcell net ls` lists nets.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where nets live for this user.
pub fn base_dir(runtime_dir: Option<&Path>) -> PathBuf {
    let containers = crate::owner::base_dir(runtime_dir);
    containers.with_file_name("netcell-nets")
}

fn valid(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{name}' is not a net name: 1 to 32 letters, digits, '-', '_' or '.'"
        ))
    }
}

/// The holder's pid of net `name`, if it runs.
fn holder(base: &Path, name: &str) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(base.join(name).join("pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    // Alive and ours: its command line names this net, and it runs under no
    // seccomp filter (a program in a container that wrote a pid file of its own
    // must not draw containers onto a segment it controls).
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let wanted = format!("__net-holder\0{name}\0");
    if !cmdline
        .windows(wanted.len())
        .any(|w| w == wanted.as_bytes())
    {
        return None;
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let filtered = status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .is_some_and(|v| v.trim() != "0");
    (!filtered).then_some(pid)
}

/// `netcell net create NAME`.
pub fn create(base: &Path, name: &str) -> Result<i32, String> {
    valid(name)?;
    if holder(base, name).is_some() {
        return Err(format!(
            "a net named '{name}' exists already (netcell net ls)"
        ));
    }
    let dir = base.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let child = Command::new("unshare")
        .args(["--user", "--map-root-user", "--net", "--"])
        .arg(exe)
        .args(["__net-holder", name])
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run unshare (util-linux): {e}"))?;
    let t0 = Instant::now();
    while holder(base, name).is_none() {
        if t0.elapsed() > Duration::from_secs(5) {
            let out = child
                .wait_with_output()
                .map(|o| o.stderr)
                .unwrap_or_default();
            return Err(format!(
                "the net's namespace did not start: {} (unprivileged user namespaces may be off: sysctl kernel.unprivileged_userns_clone)",
                String::from_utf8_lossy(&out).trim()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("{name}");
    Ok(0)
}

/// The holder, inside the net's namespaces: makes the bridge, then waits.
pub fn holder_main(name: &str, dir: &Path) -> Result<i32, String> {
    for args in [
        &["link", "set", "lo", "up"][..],
        &["link", "add", "br0", "type", "bridge"],
        &["link", "set", "br0", "up"],
    ] {
        let st = Command::new("ip")
            .args(args)
            .status()
            .map_err(|e| format!("ip: {e}"))?;
        if !st.success() {
            return Err(format!("ip {} failed", args.join(" ")));
        }
    }
    std::fs::write(dir.join("pid"), std::process::id().to_string()).map_err(|e| e.to_string())?;
    log::info!("net {name}: bridge br0 up");
    loop {
        std::thread::park();
    }
}

/// `netcell net ls`.
pub fn ls(base: &Path) -> Result<i32, String> {
    let mut names: Vec<String> = std::fs::read_dir(base)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    for n in names {
        if let Some(pid) = holder(base, &n) {
            println!("{n}\t{pid}");
        }
    }
    Ok(0)
}

/// `netcell net rm NAME`.
pub fn rm(base: &Path, name: &str) -> Result<i32, String> {
    valid(name)?;
    let pid = holder(base, name).ok_or_else(|| format!("no net named '{name}'"))?;
    netcell_sys::kill(pid, libc::SIGTERM).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(base.join(name));
    Ok(0)
}

/// Joins net `name`'s namespaces (`run --net`); netcell must be single-threaded.
pub fn join(base: &Path, name: &str) -> Result<(), String> {
    valid(name)?;
    let pid = holder(base, name)
        .ok_or_else(|| format!("no net named '{name}' (create it: netcell net create {name})"))?;
    netcell_sys::join_user_and_net(pid).map_err(|e| format!("cannot join net '{name}': {e}"))
}

/// Puts TAP device `tap` on the net's bridge, up.
pub fn attach(tap: &str) -> Result<(), String> {
    let st = Command::new("ip")
        .args(["link", "set", "dev", tap, "master", "br0", "up"])
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if !st.status.success() {
        return Err(format!(
            "cannot put {tap} on the net's bridge: {}",
            String::from_utf8_lossy(&st.stderr).trim()
        ));
    }
    Ok(())
}
