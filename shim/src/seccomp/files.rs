//! The container's own resolver files.
//!
//! With `--dns*` or `--add-host`, programs must read the container's
//! `resolv.conf` and `hosts` instead of the host's — static binaries and Go
//! programs too, which no preload library reaches. So when such files exist, the
//! filter also sends `open`, `openat` and `openat2` here (i386's too): a read-only
//! open of the host's `/etc/resolv.conf` or `/etc/hosts` gets the container's file
//! installed in its place; every other open goes to the kernel untouched. (The price
//! is one notification per `open`, about 20 µs, paid only when the options are used;
//! a mount namespace would avoid it but needs a user namespace, which netcell does
//! not make: it would show the container every file of another owner as `nobody`.)
//!
//! What counts is the file a path *resolves to*, not its spelling: `/etc//hosts`,
//! `../etc/hosts` from `/tmp`, `hosts` from `/etc`, an `openat` from a directory
//! descriptor, a symbolic link to the file, `/proc/self/fd/N` of an `O_PATH`
//! descriptor — each is resolved as the calling thread would resolve it (from its
//! working directory, its directory descriptor and its root, through
//! `/proc/TID/...`) and compared by device and inode with the host's files, found
//! when the container starts. The exact spelling is also served when the host has
//! no such file.
//!
//! Not a secrecy boundary: the host's `resolv.conf` and `hosts` are readable files,
//! and a program that rewrites the path in its memory while netcell looks at it (from
//! another thread) opens the host's file — it only deceives itself. The
//! substitution is for programs that look up names, and they all get the
//! container's files.

use super::calls::Outcome;
use super::table::Op;
use super::target::{Call, Fail};
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The host files substituted, in this order, and their last components.
const HOST_FILES: [&str; 2] = ["/etc/resolv.conf", "/etc/hosts"];
const BASENAMES: [&[u8]; 2] = [b"resolv.conf", b"hosts"];

/// The files to substitute.
#[derive(Default)]
pub struct Files {
    /// Written for `/etc/resolv.conf`, `/etc/hosts` (the preload shim reads these).
    ours: [Option<PathBuf>; 2],
    /// What is served: sealed in-memory copies of them, which no process can change
    /// (the files in the runtime directory are writable by every process of the
    /// user, other containers' too).
    sealed: [Option<std::os::fd::OwnedFd>; 2],
    /// The host's files' (device, inode), where they exist.
    host_ids: [Option<(u64, u64)>; 2],
}

impl Files {
    /// Substitutes `resolv_conf` for the host's `/etc/resolv.conf` and `hosts` for
    /// its `/etc/hosts` (each if given).
    pub fn new(resolv_conf: Option<PathBuf>, hosts: Option<PathBuf>) -> std::io::Result<Files> {
        let ours = [resolv_conf, hosts];
        let mut host_ids = [None, None];
        let mut sealed = [None, None];
        for (i, p) in HOST_FILES.iter().enumerate() {
            if let Some(path) = &ours[i] {
                host_ids[i] = std::fs::metadata(p).ok().map(|m| {
                    use std::os::unix::fs::MetadataExt;
                    (m.dev(), m.ino())
                });
                sealed[i] = Some(super::kernel::sealed_copy(p, &std::fs::read(path)?)?);
            }
        }
        Ok(Files {
            ours,
            sealed,
            host_ids,
        })
    }

    /// The container's `resolv.conf`, if it has one.
    pub fn resolv_conf(&self) -> Option<&Path> {
        self.ours[0].as_deref()
    }

    /// The container's hosts file, if it has one.
    pub fn hosts(&self) -> Option<&Path> {
        self.ours[1].as_deref()
    }

    /// Whether any file is substituted (and `open` must be watched).
    pub fn any(&self) -> bool {
        self.ours.iter().any(Option::is_some)
    }

    /// Serves an `open`/`openat`/`openat2` (x86-64 or i386: the same arguments).
    pub fn open(&self, call: &Call<'_>, op: Op) -> Result<Outcome, Fail> {
        let (dirfd, path, flags) = match op {
            Op::Open => (libc::AT_FDCWD, call.args[0], call.args[1]),
            Op::OpenAt => (call.int(0), call.args[1], call.args[2]),
            _ => {
                // openat2(dirfd, path, struct open_how *how, size): how.flags first.
                if call.args[3] < 8 {
                    return Ok(Outcome::Continue);
                }
                (call.int(0), call.args[1], call.read_u64(call.args[2])?)
            }
        };
        let flags = flags as i64 as i32;
        let read_only = flags & libc::O_ACCMODE == libc::O_RDONLY
            && flags
                & (libc::O_CREAT
                    | libc::O_TRUNC
                    | libc::O_DIRECTORY
                    | libc::O_PATH
                    | libc::O_TMPFILE)
                == 0;
        if !read_only {
            return Ok(Outcome::Continue);
        }
        let mut buf = [0u8; libc::PATH_MAX as usize];
        let Some(p) = call.read_path(path, &mut buf)? else {
            return Ok(Outcome::Continue);
        };
        let Some(i) = self.which(call, dirfd, p, flags & libc::O_NOFOLLOW != 0) else {
            return Ok(Outcome::Continue);
        };
        let Some(ours) = &self.sealed[i] else {
            return Ok(Outcome::Continue);
        };
        // The target still waits: what was read is what it asked for.
        if !call.alive() {
            return Err(Fail::Gone);
        }
        // A new open of the sealed copy: its own file offset, read-only.
        let file = std::fs::File::open(format!("/proc/self/fd/{}", ours.as_raw_fd()))
            .map_err(Fail::from)?;
        netcell_sys::set_nonblocking(file.as_fd(), flags & libc::O_NONBLOCK != 0)?;
        super::calls::install(call, file.as_fd(), flags & libc::O_CLOEXEC != 0)
    }

    /// Which substituted file `path` (relative to `dirfd` of the calling thread)
    /// names, if any.
    fn which(&self, call: &Call<'_>, dirfd: i32, path: &[u8], nofollow: bool) -> Option<usize> {
        if let Some(i) = HOST_FILES.iter().position(|f| f.as_bytes() == path) {
            return self.ours[i].is_some().then_some(i);
        }
        if self.host_ids.iter().all(Option::is_none) {
            return None;
        }
        // Only a path whose last component names one of the files, or that goes
        // through a link that can lead anywhere, can resolve to one.
        let last = path.rsplit(|&b| b == b'/').find(|c| !c.is_empty())?;
        let could = BASENAMES.contains(&last) || path_may_link(call, dirfd, path);
        if !could {
            return None;
        }
        let id = resolve(call.tid, dirfd, path, nofollow)?;
        self.host_ids.iter().position(|h| *h == Some(id))
    }
}

/// Whether resolving `path` may follow a symbolic link the last component does not
/// show: the path contains a link we can see without resolving (`/proc`, `/dev/fd`,
/// `/dev/std*`), or anything else that is a symbolic link. Checked with one
/// `statx` of the path without following its last link.
fn path_may_link(call: &Call<'_>, dirfd: i32, path: &[u8]) -> bool {
    if path.starts_with(b"/proc/") || path.starts_with(b"/dev/") {
        return true;
    }
    // A symbolic link as the last component (the common case of a link to the
    // file, under another name).
    resolve_mode(call.tid, dirfd, path).is_some_and(|m| m & libc::S_IFMT == libc::S_IFLNK)
}

/// The path, as netcell can resolve it in the thread's view: a relative path from
/// its working directory or directory descriptor, an absolute one under its root;
/// `/proc/self`, `/proc/thread-self` and `/dev/fd` as the thread's own.
fn in_thread_view(tid: u32, dirfd: i32, path: &[u8]) -> Option<CString> {
    let mut out = Vec::with_capacity(path.len() + 32);
    let rewrites: [(&[u8], String); 3] = [
        (b"/proc/self/", format!("/proc/{tid}/")),
        (b"/proc/thread-self/", format!("/proc/{tid}/task/{tid}/")),
        (b"/dev/fd/", format!("/proc/{tid}/fd/")),
    ];
    if let Some((p, r)) = rewrites.iter().find(|(p, _)| path.starts_with(p)) {
        out.extend_from_slice(r.as_bytes());
        out.extend_from_slice(&path[p.len()..]);
    } else if path.first() == Some(&b'/') {
        out.extend_from_slice(format!("/proc/{tid}/root").as_bytes());
        out.extend_from_slice(path);
    } else if dirfd == libc::AT_FDCWD {
        out.extend_from_slice(format!("/proc/{tid}/cwd/").as_bytes());
        out.extend_from_slice(path);
    } else if dirfd >= 0 {
        out.extend_from_slice(format!("/proc/{tid}/fd/{dirfd}/").as_bytes());
        out.extend_from_slice(path);
    } else {
        return None;
    }
    CString::new(out).ok()
}

/// The (device, inode) `path` resolves to for thread `tid`.
fn resolve(tid: u32, dirfd: i32, path: &[u8], nofollow: bool) -> Option<(u64, u64)> {
    let p = in_thread_view(tid, dirfd, path)?;
    let m = if nofollow {
        std::fs::symlink_metadata(std::ffi::OsStr::from_bytes(p.as_bytes()))
    } else {
        std::fs::metadata(std::ffi::OsStr::from_bytes(p.as_bytes()))
    }
    .ok()?;
    use std::os::unix::fs::MetadataExt;
    Some((m.dev(), m.ino()))
}

/// The file type and mode of `path` itself (not following a last link).
fn resolve_mode(tid: u32, dirfd: i32, path: &[u8]) -> Option<u32> {
    let p = in_thread_view(tid, dirfd, path)?;
    let m = std::fs::symlink_metadata(std::ffi::OsStr::from_bytes(p.as_bytes())).ok()?;
    use std::os::unix::fs::MetadataExt;
    Some(m.mode())
}
