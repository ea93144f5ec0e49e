//! Starting the container's command.
//!
//! # Theory of operation
//!
//! Under the seccomp shim the command must start inside the container's walls — the
//! Landlock domain (the launcher's `seccomp::landlock`) and the seccomp filter — which only
//! its own process can put up, between `fork` and `exec`; and the filter's
//! notification listener, which the kernel hands to that process, must end up in
//! netcell and nowhere else (a container holding its own listener could answer its
//! own `socket` calls with "continue").
//!
//! The child is made with `clone3(CLONE_VFORK | CLONE_FILES | CLONE_PIDFD)`:
//!
//! - **`CLONE_FILES`**: until it execs, the child shares netcell's descriptor table,
//!   so the listener the kernel gives it *is* in netcell's table at once. Nothing is
//!   taken out of another process (the old handover did that with `pidfd_getfd`,
//!   which needs the child to be ptrace-able — and so was every other process of the
//!   user, for a while). `exec` gives the command a copy of the table without the
//!   close-on-exec descriptors, and every descriptor from 3 up is marked so first:
//!   the command starts with its standard descriptors only.
//! - **`CLONE_VFORK`**: netcell sleeps until the child has exec'd or died, so when
//!   `clone3` returns, the child's report (the listener's number, or the step that
//!   failed and its errno) is complete in the status pipe.
//! - **`CLONE_PIDFD`**: the command's pidfd, for the event loop, without a window in
//!   which its pid could be reused.
//!
//! Why no process of the user can take netcell's descriptors at any moment: netcell
//! makes itself non-dumpable before `main` runs ([`crate::process::early_non_dumpable`]),
//! before it opens any descriptor worth taking; the child is a copy of its memory
//! and is non-dumpable too until `exec`; after `exec` it no longer shares the table.
//! (The old order — non-dumpable after the spawn — let the command itself, or a
//! process of another container polling `/proc`, take the listener, the TAP and the
//! control socket.)
//!
//! The child runs only system calls (no allocation, no locks): everything it needs —
//! the program's candidate paths, `argv`, `envp`, the filter — is built before
//! `clone3`. It must also never drop a descriptor it did not open: it shares the
//! table, so a close would close netcell's.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

/// The walls the child puts up before `exec` (seccomp mode).
pub struct Walls {
    /// The seccomp filter; its listener comes back in [`Spawned::listener`].
    pub filter: Vec<libc::sock_filter>,
    /// A Landlock ruleset to restrict the child with, if the kernel has Landlock.
    pub landlock: Option<OwnedFd>,
    /// Whose process the child becomes (`netcell exec` into an OCI container):
    /// its ids, groups and capabilities, set before `exec`. Without, the child
    /// keeps netcell's and always sets `no_new_privs`.
    pub credentials: Option<Credentials>,
    /// A cgroup (v2) directory the child starts in (`CLONE_INTO_CGROUP`),
    /// never passing through the caller's.
    pub cgroup: Option<RawFd>,
}

/// `CLONE_INTO_CGROUP` (Linux 5.7), as `clone_args.flags` takes it.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// A process's identity, as the child takes it on (all in the child's user
/// namespace).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// Real, effective and saved user ids.
    pub uid: [u32; 3],
    /// Real, effective and saved group ids.
    pub gid: [u32; 3],
    /// Supplementary groups.
    pub groups: Vec<libc::gid_t>,
    /// Capability sets, one bit per capability.
    pub inheritable: u64,
    pub permitted: u64,
    pub effective: u64,
    pub bounding: u64,
    pub ambient: u64,
    /// Whether to set `no_new_privs` (the seccomp filter then goes in last;
    /// without it, first, while the child may still install one).
    pub no_new_privs: bool,
    /// The highest capability this kernel knows (`/proc/sys/kernel/cap_last_cap`).
    pub last_cap: u32,
}

/// A command to start.
pub struct Command {
    program: OsString,
    /// Where to look for the program, in order (`execvp`'s `PATH` search).
    candidates: Vec<CString>,
    argv: Vec<CString>,
    envp: Vec<CString>,
}

/// A started command.
pub struct Spawned {
    pub pid: u32,
    /// Turns readable when the command exits.
    pub pidfd: OwnedFd,
    /// The seccomp filter's notification listener (with [`Walls`]).
    pub listener: Option<OwnedFd>,
}

/// Why a command did not start.
#[derive(Debug)]
pub enum SpawnError {
    /// The program was not found (`ENOENT`): exit status 127.
    NotFound(OsString),
    /// The program could not be executed: exit status 126.
    Exec(OsString, io::Error),
    /// The kernel refused the seccomp filter.
    Seccomp(io::Error),
    /// Another wall could not be put up (the step, and the kernel's errno).
    Wall(&'static str, io::Error),
    /// `clone3` or the status pipe failed.
    Os(io::Error),
}

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpawnError::NotFound(p) => write!(f, "cannot run {}: not found", p.to_string_lossy()),
            SpawnError::Exec(p, e) => write!(f, "cannot run {}: {e}", p.to_string_lossy()),
            SpawnError::Seccomp(e) => write!(f, "the kernel refused the seccomp filter ({e})"),
            SpawnError::Wall(step, e) => write!(f, "{step}: {e}"),
            SpawnError::Os(e) => write!(f, "cannot start the command: {e}"),
        }
    }
}

/// Steps of the child, as reported in the status pipe.
#[derive(Clone, Copy)]
#[repr(u32)]
enum Step {
    Listener = 1,
    Signals = 2,
    Descriptors = 3,
    NoNewPrivs = 4,
    Landlock = 5,
    Seccomp = 6,
    Exec = 7,
    Bounding = 8,
    Ids = 9,
    Capabilities = 10,
}

impl Step {
    fn from_u32(v: u32) -> Option<Step> {
        Some(match v {
            1 => Step::Listener,
            2 => Step::Signals,
            3 => Step::Descriptors,
            4 => Step::NoNewPrivs,
            5 => Step::Landlock,
            6 => Step::Seccomp,
            7 => Step::Exec,
            8 => Step::Bounding,
            9 => Step::Ids,
            10 => Step::Capabilities,
            _ => return None,
        })
    }
    fn describe(self) -> &'static str {
        match self {
            Step::Listener | Step::Exec => "start",
            Step::Signals => "cannot reset the signal mask",
            Step::Descriptors => {
                "cannot mark descriptors close-on-exec (close_range needs Linux 5.11)"
            }
            Step::NoNewPrivs => "cannot set no_new_privs",
            Step::Landlock => "cannot enter the Landlock domain",
            Step::Seccomp => "cannot install the seccomp filter",
            Step::Bounding => "cannot drop capabilities from the bounding set",
            Step::Ids => "cannot take on the process's user and groups",
            Step::Capabilities => "cannot take on the process's capabilities",
        }
    }
}

fn cstring(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} contains a NUL byte", s.to_string_lossy()),
        )
    })
}

impl Command {
    /// `program` with `args`, searched in `PATH` as `execvp` does, with this
    /// process's environment plus `env`.
    pub fn new(
        program: &OsStr,
        args: &[OsString],
        env: &[(OsString, OsString)],
    ) -> io::Result<Command> {
        let mut candidates = Vec::new();
        if program.as_bytes().contains(&b'/') {
            candidates.push(cstring(program)?);
        } else {
            let path =
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
            for dir in std::env::split_paths(&path) {
                let dir = if dir.as_os_str().is_empty() {
                    ".".into()
                } else {
                    dir
                };
                candidates.push(cstring(dir.join(program).as_os_str())?);
            }
        }
        let mut argv = vec![cstring(program)?];
        for a in args {
            argv.push(cstring(a)?);
        }
        let mut vars: Vec<(OsString, OsString)> = std::env::vars_os()
            .filter(|(k, _)| !env.iter().any(|(e, _)| e == k))
            .collect();
        vars.extend(env.iter().cloned());
        let mut envp = Vec::with_capacity(vars.len());
        for (k, v) in vars {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            envp.push(cstring(&kv)?);
        }
        Ok(Command {
            program: program.to_os_string(),
            candidates,
            argv,
            envp,
        })
    }

    /// `argv[0]` with the rest of `argv`, with exactly the environment `env`
    /// (`NAME=value` each), searched in that environment's `PATH` (the default
    /// one without): for a program of another root, as it would start there.
    pub fn with_env(argv: &[&[u8]], env: &[&[u8]]) -> io::Result<Command> {
        let Some(&program) = argv.first() else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no program"));
        };
        let program = OsStr::from_bytes(program);
        let path = env
            .iter()
            .find_map(|kv| kv.strip_prefix(b"PATH="))
            .unwrap_or(b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        let mut candidates = Vec::new();
        if program.as_bytes().contains(&b'/') {
            candidates.push(cstring(program)?);
        } else {
            for dir in path.split(|&c| c == b':') {
                let dir = if dir.is_empty() { b".".as_slice() } else { dir };
                let mut full = dir.to_vec();
                full.push(b'/');
                full.extend_from_slice(program.as_bytes());
                candidates.push(cstring(OsStr::from_bytes(&full))?);
            }
        }
        let argv = argv
            .iter()
            .map(|a| cstring(OsStr::from_bytes(a)))
            .collect::<io::Result<_>>()?;
        let envp = env
            .iter()
            .map(|kv| cstring(OsStr::from_bytes(kv)))
            .collect::<io::Result<_>>()?;
        Ok(Command {
            program: program.to_os_string(),
            candidates,
            argv,
            envp,
        })
    }

    /// Starts the command behind `walls` (seccomp mode) or without (preload mode).
    pub fn spawn(&self, walls: Option<&Walls>) -> Result<Spawned, SpawnError> {
        self.spawn_keeping(walls, None)
    }

    /// [`Command::spawn`], with descriptor `keep` left open across exec (a socket
    /// for the new program; every other one of netcell's closes).
    pub fn spawn_keeping(
        &self,
        walls: Option<&Walls>,
        keep: Option<RawFd>,
    ) -> Result<Spawned, SpawnError> {
        let (status_r, status_w) = pipe().map_err(SpawnError::Os)?;
        let mut argv: Vec<*const libc::c_char> = self.argv.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = self.envp.iter().map(|a| a.as_ptr()).collect();
        envp.push(std::ptr::null());
        let candidates: Vec<*const libc::c_char> =
            self.candidates.iter().map(|c| c.as_ptr()).collect();
        let fprog = walls.map(|w| libc::sock_fprog {
            len: w.filter.len() as libc::c_ushort,
            filter: w.filter.as_ptr() as *mut libc::sock_filter,
        });
        let child = Child {
            status: status_w.as_raw_fd(),
            candidates: &candidates,
            argv: argv.as_ptr(),
            envp: envp.as_ptr(),
            filter: fprog.as_ref().map(|p| p as *const libc::sock_fprog),
            landlock: walls.and_then(|w| w.landlock.as_ref().map(AsRawFd::as_raw_fd)),
            credentials: walls.and_then(|w| w.credentials.as_ref()),
            keep,
        };

        let mut pidfd: RawFd = -1;
        // SAFETY: clone_args is plain data; zero is the default of every field.
        let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
        args.flags = (libc::CLONE_VFORK | libc::CLONE_FILES | libc::CLONE_PIDFD) as u64;
        if let Some(cg) = walls.and_then(|w| w.cgroup) {
            args.flags |= CLONE_INTO_CGROUP;
            args.cgroup = cg as u64;
        }
        args.pidfd = &mut pidfd as *mut RawFd as u64;
        args.exit_signal = libc::SIGCHLD as u64;
        // SAFETY: clone3 with a zero stack behaves as fork (the child runs on a
        // copy-on-write copy of this stack); CLONE_VFORK keeps this thread asleep until
        // the child has exec'd or exited. The child runs `Child::run`, which never
        // returns and makes system calls only.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &mut args as *mut libc::clone_args,
                std::mem::size_of::<libc::clone_args>(),
            )
        };
        if pid == 0 {
            child.run();
        }
        if pid < 0 {
            return Err(SpawnError::Os(io::Error::last_os_error()));
        }
        // SAFETY: CLONE_PIDFD stored a fresh descriptor that this process owns.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
        drop(status_w);
        self.collect(pid as u32, pidfd, status_r, walls.is_some())
    }

    /// Reads the child's report and makes the outcome of it.
    fn collect(
        &self,
        pid: u32,
        pidfd: OwnedFd,
        status: OwnedFd,
        walled: bool,
    ) -> Result<Spawned, SpawnError> {
        let mut listener = None;
        let mut failed = None;
        let mut rec = [0u8; 8];
        // The write end is closed in both processes now: the pipe ends after the
        // report.
        while read_exact(status.as_raw_fd(), &mut rec).is_ok() {
            let step = u32::from_ne_bytes([rec[0], rec[1], rec[2], rec[3]]);
            let value = i32::from_ne_bytes([rec[4], rec[5], rec[6], rec[7]]);
            match Step::from_u32(step) {
                // SAFETY: the child's listener, created in the table it shared
                // with this process; nobody else owns it.
                Some(Step::Listener) => listener = Some(unsafe { OwnedFd::from_raw_fd(value) }),
                Some(s) => failed = Some((s, io::Error::from_raw_os_error(value))),
                None => {}
            }
        }
        if let Some((step, e)) = failed {
            reap(pid);
            return Err(match step {
                Step::Exec if e.raw_os_error() == Some(libc::ENOENT) => {
                    SpawnError::NotFound(self.program.clone())
                }
                Step::Exec => SpawnError::Exec(self.program.clone(), e),
                Step::Seccomp => SpawnError::Seccomp(e),
                s => SpawnError::Wall(s.describe(), e),
            });
        }
        if walled && listener.is_none() {
            reap(pid);
            return Err(SpawnError::Os(io::Error::other(
                "the command's process ended before reporting its seccomp listener",
            )));
        }
        Ok(Spawned {
            pid,
            pidfd,
            listener,
        })
    }
}

/// What the child needs, all of it built before `clone3`.
struct Child<'a> {
    status: RawFd,
    candidates: &'a [*const libc::c_char],
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    filter: Option<*const libc::sock_fprog>,
    keep: Option<RawFd>,
    landlock: Option<RawFd>,
    credentials: Option<&'a Credentials>,
}

impl Child<'_> {
    fn report(&self, step: Step, value: i32) {
        let mut rec = [0u8; 8];
        rec[..4].copy_from_slice(&(step as u32).to_ne_bytes());
        rec[4..].copy_from_slice(&value.to_ne_bytes());
        // SAFETY: a write of a local buffer.
        unsafe { libc::write(self.status, rec.as_ptr().cast(), rec.len()) };
    }

    fn fail(&self, step: Step) -> ! {
        self.report(
            step,
            io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        );
        // SAFETY: ends the child without running anything of the parent's.
        unsafe { libc::_exit(127) }
    }

    /// Installs the seccomp filter and reports its listener (close-on-exec: it
    /// stays in netcell's table only).
    ///
    /// # Safety
    /// `prog` points at a filter that lives until `exec`.
    unsafe fn install(&self, prog: *const libc::sock_fprog) {
        // SAFETY: seccomp(2) reads the program `prog` points at.
        let l = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER as libc::c_long,
                libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as libc::c_long,
                prog as libc::c_long,
            )
        };
        if l < 0 {
            self.fail(Step::Seccomp);
        }
        self.report(Step::Listener, l as i32);
    }

    /// Takes on credentials `c`: the bounding set first (that needs
    /// CAP_SETPCAP), the groups and ids (capabilities kept across the change of
    /// user), then exactly the process's capability sets.
    fn take_on(&self, c: &Credentials) {
        // SAFETY: plain system calls on local data.
        unsafe {
            for cap in 0..=c.last_cap.min(63) {
                if c.bounding & (1 << cap) == 0
                    && libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) < 0
                {
                    self.fail(Step::Bounding);
                }
            }
            if libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0
                || libc::setgroups(c.groups.len(), c.groups.as_ptr()) < 0
                || libc::setresgid(c.gid[0], c.gid[1], c.gid[2]) < 0
                || libc::setresuid(c.uid[0], c.uid[1], c.uid[2]) < 0
                || libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0
            {
                self.fail(Step::Ids);
            }
            // Not dumpable until exec, whatever the change of user did
            // (`fs.suid_dumpable`): a container process must not attach to it
            // while it still shares netcell's descriptor table.
            if libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) < 0
                || crate::process::capset(c.effective, c.permitted, c.inheritable) < 0
            {
                self.fail(Step::Capabilities);
            }
            if libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                0,
                0,
                0,
            ) < 0
            {
                self.fail(Step::Capabilities);
            }
            for cap in 0..=c.last_cap.min(63) {
                if c.ambient & (1 << cap) != 0
                    && libc::prctl(
                        libc::PR_CAP_AMBIENT,
                        libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                        cap as libc::c_ulong,
                        0,
                        0,
                    ) < 0
                {
                    self.fail(Step::Capabilities);
                }
            }
        }
    }

    /// The child's whole life: system calls only, then `exec` or `_exit`.
    fn run(&self) -> ! {
        // SAFETY: each call in this block is a plain system call on data built before
        // clone3; nothing allocates, locks or closes a descriptor of netcell's.
        unsafe {
            // netcell blocks the signals it forwards; a blocked mask is inherited
            // across exec. Rust ignores SIGPIPE; a command expects the default.
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            if libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) < 0 {
                self.fail(Step::Signals);
            }
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            // Nothing of netcell's but the standard descriptors survives exec.
            if libc::syscall(
                libc::SYS_close_range,
                3 as libc::c_long,
                !0u32 as libc::c_long,
                libc::CLOSE_RANGE_CLOEXEC as libc::c_long,
            ) < 0
            {
                self.fail(Step::Descriptors);
            }
            if let Some(fd) = self.keep
                && libc::fcntl(fd, libc::F_SETFD, 0) < 0
            {
                self.fail(Step::Descriptors);
            }
            match (self.filter, self.credentials) {
                (Some(prog), Some(c)) => {
                    // As a runtime does: without no_new_privs the filter can go in
                    // only while the process may still install one (it holds
                    // CAP_SYS_ADMIN in its user namespace), so before the ids
                    // change; with it, last.
                    if !c.no_new_privs {
                        self.install(prog);
                    }
                    self.take_on(c);
                    if c.no_new_privs {
                        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 {
                            self.fail(Step::NoNewPrivs);
                        }
                        self.install(prog);
                    }
                }
                (Some(prog), None) => {
                    if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 {
                        self.fail(Step::NoNewPrivs);
                    }
                    if let Some(ruleset) = self.landlock
                        && libc::syscall(
                            libc::SYS_landlock_restrict_self,
                            ruleset as libc::c_long,
                            0 as libc::c_long,
                        ) < 0
                    {
                        self.fail(Step::Landlock);
                    }
                    self.install(prog);
                }
                (None, Some(c)) => self.take_on(c),
                (None, None) => {}
            }
            let mut err = libc::ENOENT;
            for &path in self.candidates {
                libc::execve(path, self.argv, self.envp);
                match *libc::__errno_location() {
                    libc::ENOENT | libc::ENOTDIR => {}
                    libc::EACCES => err = libc::EACCES,
                    e => {
                        err = e;
                        break;
                    }
                }
            }
            *libc::__errno_location() = err;
            self.fail(Step::Exec)
        }
    }
}

/// A pipe, both ends close-on-exec: (reading end, writing end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: a valid array for the kernel to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh descriptors this process owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn read_exact(fd: RawFd, buf: &mut [u8]) -> io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: `buf` is valid for writes.
        let n = unsafe { libc::read(fd, buf[got..].as_mut_ptr().cast(), buf.len() - got) };
        match n {
            n if n > 0 => got += n as usize,
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

/// Waits for a child that failed to start.
fn reap(pid: u32) {
    let mut st = 0;
    // SAFETY: waitpid with a valid status pointer, for our own child.
    unsafe { libc::waitpid(pid as libc::pid_t, &mut st, 0) };
}

/// The exit status of the command, once it exited (`None` while it runs).
pub fn try_wait(pid: u32) -> io::Result<Option<std::process::ExitStatus>> {
    use std::os::unix::process::ExitStatusExt;
    let mut st = 0;
    // SAFETY: waitpid with a valid status pointer, for our own child.
    let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut st, libc::WNOHANG) };
    match r {
        0 => Ok(None),
        r if r < 0 => Err(io::Error::last_os_error()),
        _ => Ok(Some(std::process::ExitStatus::from_raw(st))),
    }
}
