//! What a container's process is, read from `/proc/PID`: its identity and
//! capabilities (in its user namespace), its namespaces, cgroups, limits,
//! AppArmor profile — everything a program started into the container must
//! share with it.

use netcell_sys::spawn::Credentials;
use std::path::Path;

/// The namespaces a process can be in, by `/proc/PID/ns` name, with their
/// `CLONE_NEW*` flag. (`time` is joined by its children only, like `pid`.)
const NAMESPACES: [(&str, libc::c_int); 8] = [
    ("user", libc::CLONE_NEWUSER),
    ("mnt", libc::CLONE_NEWNS),
    ("pid", libc::CLONE_NEWPID),
    ("uts", libc::CLONE_NEWUTS),
    ("ipc", libc::CLONE_NEWIPC),
    ("net", libc::CLONE_NEWNET),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("time", libc::CLONE_NEWTIME),
];

/// A container process, as read.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub credentials: Credentials,
    /// `CLONE_NEW*` flags of the namespaces it is in and this process is not.
    pub namespaces: libc::c_int,
    /// `(hierarchy line prefix, path)` of each cgroup it is in that this
    /// process is not: `("0:", "/a/b")` for the unified hierarchy, `("4:cpu,cpuacct", ...)`.
    pub cgroups: Vec<(String, String)>,
    /// `(RLIMIT_* number, soft, hard)`.
    pub limits: Vec<(u32, u64, u64)>,
    /// Its AppArmor profile, unless unconfined or AppArmor is off.
    pub apparmor: Option<String>,
}

/// `/proc/PID/status`'s fields `Uid:`, `Gid:`, `Groups:`, `Cap*:`, `NoNewPrivs:`,
/// ids as the reader's user namespace sees them.
fn parse_status(text: &str) -> Result<Credentials, String> {
    let mut c = Credentials::default();
    let mut seen = 0;
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let nums = || -> Vec<u64> {
            v.split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect()
        };
        let hex = || u64::from_str_radix(v.trim(), 16).ok();
        match k {
            "Uid" | "Gid" => {
                let n = nums();
                if n.len() < 3 {
                    return Err(format!("status: {line:?}"));
                }
                let ids = [n[0] as u32, n[1] as u32, n[2] as u32];
                if k == "Uid" {
                    c.uid = ids;
                } else {
                    c.gid = ids;
                }
                seen |= 1;
            }
            "Groups" => c.groups = nums().into_iter().map(|g| g as u32).collect(),
            "CapInh" => c.inheritable = hex().ok_or("status: CapInh")?,
            "CapPrm" => c.permitted = hex().ok_or("status: CapPrm")?,
            "CapEff" => c.effective = hex().ok_or("status: CapEff")?,
            "CapBnd" => {
                c.bounding = hex().ok_or("status: CapBnd")?;
                seen |= 2;
            }
            "CapAmb" => c.ambient = hex().ok_or("status: CapAmb")?,
            "NoNewPrivs" => c.no_new_privs = v.trim() == "1",
            _ => {}
        }
    }
    if seen != 3 {
        return Err("status: no ids or capabilities".into());
    }
    Ok(c)
}

/// An id the reader sees as `outside`, as the namespace of `map`
/// (`/proc/PID/uid_map`: `inside outside count` per line) sees it.
fn map_inward(map: &str, outside: u32) -> Option<u32> {
    map.lines().find_map(|l| {
        let n: Vec<u64> = l
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        let (inside, out, count) = (*n.first()?, *n.get(1)?, *n.get(2)?);
        let o = u64::from(outside);
        (o >= out && o < out + count).then(|| (inside + o - out) as u32)
    })
}

/// `/proc/PID/limits`: the limits by name, as `getrlimit` numbers them.
fn parse_limits(text: &str) -> Vec<(u32, u64, u64)> {
    const NAMES: [(&str, u32); 16] = [
        ("Max cpu time", libc::RLIMIT_CPU),
        ("Max file size", libc::RLIMIT_FSIZE),
        ("Max data size", libc::RLIMIT_DATA),
        ("Max stack size", libc::RLIMIT_STACK),
        ("Max core file size", libc::RLIMIT_CORE),
        ("Max resident set", libc::RLIMIT_RSS),
        ("Max processes", libc::RLIMIT_NPROC),
        ("Max open files", libc::RLIMIT_NOFILE),
        ("Max locked memory", libc::RLIMIT_MEMLOCK),
        ("Max address space", libc::RLIMIT_AS),
        ("Max file locks", libc::RLIMIT_LOCKS),
        ("Max pending signals", libc::RLIMIT_SIGPENDING),
        ("Max msgqueue size", libc::RLIMIT_MSGQUEUE),
        ("Max nice priority", libc::RLIMIT_NICE),
        ("Max realtime priority", libc::RLIMIT_RTPRIO),
        ("Max realtime timeout", libc::RLIMIT_RTTIME),
    ];
    let value = |w: &str| {
        if w == "unlimited" {
            Some(libc::RLIM_INFINITY)
        } else {
            w.parse().ok()
        }
    };
    let mut out = Vec::new();
    for line in text.lines() {
        for (name, res) in NAMES {
            if let Some(rest) = line.strip_prefix(name) {
                let w: Vec<&str> = rest.split_whitespace().collect();
                if let (Some(s), Some(h)) = (
                    w.first().and_then(|w| value(w)),
                    w.get(1).and_then(|w| value(w)),
                ) {
                    out.push((res, s, h));
                }
            }
        }
    }
    out
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn ns_inode(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// Reads process `pid` (as this process's `/proc` shows it).
pub fn read_target(pid: u32) -> Result<Target, String> {
    let proc = Path::new("/proc").join(pid.to_string());
    let mut credentials = parse_status(&read(&proc.join("status"))?)?;
    let mut namespaces = 0;
    for (name, flag) in NAMESPACES {
        let theirs = ns_inode(&proc.join("ns").join(name));
        let ours = ns_inode(&Path::new("/proc/self/ns").join(name));
        if theirs.is_some() && theirs != ours {
            namespaces |= flag;
        }
    }
    // Ids as its own user namespace numbers them.
    if namespaces & libc::CLONE_NEWUSER != 0 {
        let (umap, gmap) = (read(&proc.join("uid_map"))?, read(&proc.join("gid_map"))?);
        let inward = |map: &str, id: u32, what: &str| {
            map_inward(map, id)
                .ok_or_else(|| format!("{what} {id} is not mapped in its user namespace"))
        };
        for u in &mut credentials.uid {
            *u = inward(&umap, *u, "user")?;
        }
        for g in credentials
            .gid
            .iter_mut()
            .chain(credentials.groups.iter_mut())
        {
            *g = inward(&gmap, *g, "group")?;
        }
    }
    credentials.last_cap = read(Path::new("/proc/sys/kernel/cap_last_cap"))?
        .trim()
        .parse()
        .map_err(|_| "cap_last_cap is not a number")?;
    let mine = read(Path::new("/proc/self/cgroup")).unwrap_or_default();
    let cgroups = read(&proc.join("cgroup"))?
        .lines()
        .filter(|l| !mine.lines().any(|m| m == *l))
        .filter_map(|l| {
            // "ID:CONTROLLERS:PATH" (the path may hold ':').
            let mut f = l.splitn(3, ':');
            let (id, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            Some((format!("{id}:{ctrls}"), path.to_string()))
        })
        .collect();
    // AppArmor's own file; the generic one only where AppArmor is the LSM
    // (elsewhere it holds, say, an SELinux context).
    let apparmor_on = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|v| v.trim() == "Y");
    let apparmor = std::fs::read_to_string(proc.join("attr/apparmor/current"))
        .or_else(|e| {
            if apparmor_on {
                std::fs::read_to_string(proc.join("attr/current"))
            } else {
                Err(e)
            }
        })
        .ok()
        .map(|l| {
            // "name (mode)" → "name"
            let l = l.trim_end_matches(['\n', '\0']);
            l.rsplit_once(" (").map_or(l, |(n, _)| n).to_string()
        })
        .filter(|l| !l.is_empty() && l != "unconfined");
    Ok(Target {
        credentials,
        namespaces,
        cgroups,
        limits: parse_limits(&read(&proc.join("limits"))?),
        apparmor,
    })
}

/// The container's cgroups, opened (in this process's mount namespace, before
/// it joins the container's).
#[derive(Default)]
pub struct Cgroups {
    /// The unified hierarchy's directory: the new process starts there
    /// (`CLONE_INTO_CGROUP`), never passing through the caller's.
    pub unified: Option<std::fs::File>,
    /// `cgroup.procs` of each v1 hierarchy: the caller joins them just before
    /// the new process is made.
    pub v1: Vec<(std::path::PathBuf, std::fs::File)>,
}

impl Cgroups {
    /// Moves this process into the v1 cgroups.
    pub fn join_v1(&self) -> Result<(), String> {
        for (path, f) in &self.v1 {
            use std::io::Write;
            (&*f)
                .write_all(std::process::id().to_string().as_bytes())
                .map_err(|e| format!("cannot join cgroup {}: {e}", path.display()))?;
        }
        Ok(())
    }
}

/// Opens cgroups `cgroups` (as [`Target::cgroups`] gives them), through the
/// hierarchies this process's `/proc/self/mountinfo` shows.
pub fn open_cgroups(cgroups: &[(String, String)]) -> Result<Cgroups, String> {
    let mounts = read(Path::new("/proc/self/mountinfo"))?;
    let mut out = Cgroups::default();
    for (hier, path) in cgroups {
        // "0:" is the unified hierarchy (cgroup2); "N:ctrl,ctrl" or
        // "N:name=systemd" a v1 one, mounted with those options.
        let (_, ctrls) = hier.split_once(':').unwrap_or(("", ""));
        let mount = mounts.lines().find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let mut r = right.split_whitespace();
            let (fstype, _src, opts) = (r.next()?, r.next()?, r.next().unwrap_or(""));
            let point = left.split_whitespace().nth(4)?;
            let root = left.split_whitespace().nth(3)?;
            let fits = if ctrls.is_empty() {
                fstype == "cgroup2"
            } else {
                fstype == "cgroup" && ctrls.split(',').all(|c| opts.split(',').any(|o| o == c))
            };
            (fits && root == "/").then(|| point.to_string())
        });
        let Some(point) = mount else {
            return Err(format!(
                "cgroup {path} ({hier}): that hierarchy is not mounted here"
            ));
        };
        let dir = Path::new(&point).join(path.trim_start_matches('/'));
        if ctrls.is_empty() {
            out.unified = Some(
                std::fs::File::open(&dir).map_err(|e| format!("cgroup {}: {e}", dir.display()))?,
            );
        } else {
            let procs = dir.join("cgroup.procs");
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&procs)
                .map_err(|e| format!("cannot join cgroup {}: {e}", procs.display()))?;
            out.v1.push((procs, f));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_ids_capabilities_and_maps() {
        let status = "Name:\tpython3\nUid:\t100000\t100000\t100000\t100000\n\
                      Gid:\t100005\t100005\t100005\t100005\nGroups:\t100005 100010 \n\
                      CapInh:\t0000000000000000\nCapPrm:\t00000000000024fb\n\
                      CapEff:\t00000000000024fb\nCapBnd:\t00000000000024fb\n\
                      CapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n";
        let c = parse_status(status).unwrap();
        assert_eq!(c.uid, [100000; 3]);
        assert_eq!(c.gid, [100005; 3]);
        assert_eq!(c.groups, vec![100005, 100010]);
        assert_eq!((c.permitted, c.bounding, c.ambient), (0x24fb, 0x24fb, 0));
        assert!(c.no_new_privs);
        let map = "         0     100000      65536\n";
        assert_eq!(map_inward(map, 100000), Some(0));
        assert_eq!(map_inward(map, 100010), Some(10));
        assert_eq!(map_inward(map, 99999), None);
        assert_eq!(map_inward(map, 165536), None);
        assert!(parse_status("Name:\tx\n").is_err());
    }

    #[test]
    fn limits_by_name() {
        let text = "Limit                     Soft Limit           Hard Limit           Units\n\
                    Max cpu time              unlimited            unlimited            seconds\n\
                    Max open files            1024                 524288               files\n\
                    Max processes             32768                32768                processes\n";
        let l = parse_limits(text);
        assert!(l.contains(&(libc::RLIMIT_NOFILE, 1024, 524288)));
        assert!(l.contains(&(libc::RLIMIT_NPROC, 32768, 32768)));
        assert!(l.contains(&(libc::RLIMIT_CPU, libc::RLIM_INFINITY, libc::RLIM_INFINITY)));
    }

    #[test]
    fn this_process_reads_as_itself() {
        let t = read_target(std::process::id()).unwrap();
        assert_eq!(t.namespaces, 0);
        assert!(t.cgroups.is_empty());
        assert_eq!(t.credentials.uid[0], netcell_sys::euid());
    }
}
