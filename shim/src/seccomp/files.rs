//! The container's own resolver files.
//!
//! With `--dns*` or `--add-host`, programs must read the container's
//! `resolv.conf` and `hosts` instead of the host's — static binaries and Go
//! programs too, which no preload library reaches. So when such files exist, the
//! filter also sends `open`, `openat` and `openat2` here: a read-only open of
//! exactly `/etc/resolv.conf` or `/etc/hosts` gets the container's file installed
//! in its place; every other open goes to the kernel untouched. (The price is one
//! notification per `open`, about 20 µs, paid only when the options are used; a
//! mount namespace would avoid it but needs a user namespace, which netcell does
//! not make.)

use super::calls::{Outcome, nr};
use super::target::{Call, Fail};
use std::os::fd::AsFd;
use std::path::PathBuf;

/// The files to substitute.
#[derive(Default)]
pub struct Files {
    /// Served for `/etc/resolv.conf`.
    pub resolv_conf: Option<PathBuf>,
    /// Served for `/etc/hosts`.
    pub hosts: Option<PathBuf>,
}

impl Files {
    /// Whether any file is substituted (and `open` must be watched).
    pub fn any(&self) -> bool {
        self.resolv_conf.is_some() || self.hosts.is_some()
    }

    /// Serves an `open`/`openat`/`openat2`.
    pub fn open(&self, call: &Call<'_>) -> Result<Outcome, Fail> {
        let (path, flags) = match call.nr {
            nr::OPEN => (call.args[0], call.args[1]),
            nr::OPENAT => (call.args[1], call.args[2]),
            _ => {
                // openat2(dirfd, path, struct open_how *how, size): how.flags first.
                if call.args[3] < 8 {
                    return Ok(Outcome::Continue);
                }
                (call.args[1], call.read_u64(call.args[2])?)
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
        let ours = [&self.resolv_conf, &self.hosts];
        let Some(i) = call.path_among(path, &["/etc/resolv.conf", "/etc/hosts"])? else {
            return Ok(Outcome::Continue);
        };
        let Some(ours) = ours[i] else {
            return Ok(Outcome::Continue);
        };
        let file = std::fs::File::open(ours).map_err(Fail::from)?;
        netcell_stack::sys::set_nonblocking(file.as_fd(), flags & libc::O_NONBLOCK != 0)?;
        super::calls::install(call, file.as_fd(), flags & libc::O_CLOEXEC != 0)
    }
}
