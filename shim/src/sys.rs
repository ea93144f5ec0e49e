//! The launcher's door to the kernel: signal masks, `signalfd`, `statvfs`, dumpability.
//! Every `unsafe` block is one system call with its argument checks stated.
#![allow(unsafe_code)]

use std::io;
use std::mem::zeroed;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Signals the launcher forwards to the container's main process.
pub const FORWARDED: &[libc::c_int] = &[
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

fn sigset(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it.
    unsafe {
        let mut set: libc::sigset_t = zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Blocks `FORWARDED` in this thread and returns a signalfd that reads them.
pub fn block_and_signalfd() -> io::Result<OwnedFd> {
    let set = sigset(FORWARDED);
    // SAFETY: a valid sigset; the old mask is not needed.
    cvt(unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) })?;
    // SAFETY: a valid sigset; -1 asks for a new fd.
    let fd = cvt(unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) })?;
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// One signal read from a signalfd: its number and whether a process sent it
/// (`kill`, `sigqueue`) rather than the kernel (a terminal).
pub fn read_signal(fd: RawFd) -> Option<(libc::c_int, bool)> {
    // SAFETY: signalfd_siginfo is plain data of the size the kernel writes.
    let mut info: libc::signalfd_siginfo = unsafe { zeroed() };
    let n = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: `info` is valid for writes of `n` bytes.
    let r = unsafe { libc::read(fd, (&mut info as *mut libc::signalfd_siginfo).cast(), n) };
    if r as usize != n {
        return None;
    }
    Some((info.ssi_signo as libc::c_int, info.ssi_code <= 0))
}

/// `kill(2)`.
pub fn kill(pid: u32, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::kill(pid as libc::pid_t, sig) }).map(|_| ())
}

/// Whether files on the filesystem of `path` may be mapped executable (not `noexec`),
/// which a preload library needs.
pub fn exec_allowed(path: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statvfs is plain data.
    let mut st: libc::statvfs = unsafe { zeroed() };
    // SAFETY: valid C string and output struct.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } < 0 {
        return false;
    }
    st.f_flag & libc::ST_NOEXEC == 0
}

/// Whether `pid` is in the launcher's process group (so a terminal's signals reach
/// it without forwarding).
pub fn in_my_process_group(pid: u32) -> bool {
    // SAFETY: plain syscalls.
    unsafe { libc::getpgid(pid as libc::pid_t) == libc::getpgrp() }
}

/// Makes netcell non-dumpable before `main` runs (from `.init_array`, right after
/// the dynamic loader): from then on no other process of the user — a container's
/// above all — can `ptrace` netcell, take its descriptors (`pidfd_getfd`) or read
/// its memory, and netcell opens its first descriptor (TAP, control socket,
/// seccomp listener) only after this. What is left is the moment between `exec`
/// and this call, when netcell holds only what it inherited.
extern "C" fn early_non_dumpable() {
    // SAFETY: prctl with integer arguments; nothing else runs yet.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } < 0 {
        // SAFETY: a constant message to stderr.
        unsafe {
            let m = b"netcell: cannot make itself non-dumpable\n";
            libc::write(2, m.as_ptr().cast(), m.len());
            libc::_exit(125);
        }
    }
}

#[used]
#[unsafe(link_section = ".init_array")]
static EARLY_NON_DUMPABLE: extern "C" fn() = early_non_dumpable;

/// Serves large allocations from fresh `mmap`s always. Every TCP connection
/// allocates its smoltcp buffers (1 MiB each way by default) zeroed; glibc's dynamic
/// mmap threshold would soon move them onto the heap, where `calloc` must `memset`
/// them (a quarter of the stack's time under connection churn), while fresh pages
/// are zero already and only the ones used get touched.
pub fn large_allocations_from_mmap() {
    // SAFETY: mallopt with integer arguments, before any thread is started.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024) };
}

/// Makes this process the reaper of its orphaned descendants
/// (`PR_SET_CHILD_SUBREAPER`), so that processes a container leaves behind stay
/// within reach.
pub fn become_subreaper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    cvt(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) }).map(|_| ())
}

/// The current children of this process (from `/proc/self/task/*/children`).
pub fn children() -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    out
}

/// Reaps every exited child without blocking; returns how many.
pub fn reap_all() -> usize {
    let mut n = 0;
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid status pointer.
        let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if r <= 0 {
            return n;
        }
        n += 1;
    }
}
