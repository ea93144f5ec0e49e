//! Processes: pidfds, another process's descriptors and memory (the seccomp
//! supervisor's view of its targets), signals, children, limits, dumpability.
#![allow(unused_imports)]

use crate::{cvt, cvt_long, cvt_size};
use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// `pidfd_open(2)`.
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall.
    let fd = cvt_long(unsafe {
        libc::syscall(libc::SYS_pidfd_open, pid as libc::c_long, 0 as libc::c_long)
    })?;
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// A pidfd naming the thread `tid` itself (`PIDFD_THREAD`, Linux 6.9), so that a
/// notification from any thread of a process can be served; on older kernels, a
/// pidfd of its thread group (read from `/proc/TID/status`).
/// The flag says whether the pidfd names the thread itself.
pub fn pidfd_open_thread(tid: u32) -> io::Result<(OwnedFd, bool)> {
    // SAFETY: plain syscall.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_open,
            tid as libc::c_long,
            libc::O_EXCL as libc::c_long,
        )
    };
    if r >= 0 {
        // SAFETY: a fresh fd we own.
        return Ok((unsafe { OwnedFd::from_raw_fd(r as RawFd) }, true));
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::EINVAL) {
        return Err(e);
    }
    let status = std::fs::read_to_string(format!("/proc/{tid}/status"))?;
    let tgid = status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse::<u32>().ok())
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))?;
    Ok((pidfd_open(tgid)?, false))
}

/// A copy of the target's descriptor `fd` (`pidfd_getfd(2)`), close-on-exec.
pub fn pidfd_getfd(pidfd: BorrowedFd<'_>, fd: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall.
    let r = cvt_long(unsafe {
        libc::syscall(
            libc::SYS_pidfd_getfd,
            pidfd.as_raw_fd() as libc::c_long,
            fd as libc::c_long,
            0 as libc::c_long,
        )
    })?;
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// Whether the process a pidfd names is still running (not yet reaped: its pid
/// cannot have been given to another process).
pub fn pidfd_alive(pidfd: BorrowedFd<'_>) -> bool {
    // SAFETY: signal 0 only checks; null info is allowed.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd() as libc::c_long,
            0 as libc::c_long,
            std::ptr::null::<u8>(),
            0 as libc::c_long,
        ) == 0
    }
}

/// Whether the process a pidfd names has not exited (its pidfd is not readable):
/// needs no permission to signal it (a process in a Landlock domain with signal
/// scoping may ask about one outside).
pub fn pidfd_running(pidfd: BorrowedFd<'_>) -> bool {
    crate::fd::poll_now(pidfd, libc::POLLIN) & libc::POLLIN == 0
}

/// Joins the user and network namespaces of process `pid` (this process must be
/// single-threaded, and may join the user namespace: its owner).
pub fn join_user_and_net(pid: u32) -> io::Result<()> {
    let pidfd = pidfd_open(pid)?;
    // SAFETY: setns with a pidfd and namespace flags; no memory is passed.
    cvt(unsafe { libc::setns(pidfd.as_raw_fd(), libc::CLONE_NEWUSER | libc::CLONE_NEWNET) })?;
    Ok(())
}

/// The parent pid of `pid` (`PPid` in `/proc/PID/status`).
pub fn parent_of(pid: i32) -> Option<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Reads the ranges `remote` names (address, length) of the target's memory back
/// to back into `local`, as many ranges per system call as fit in one batch
/// (`GATHER_BATCH`): all of them or an error (`EFAULT` for a short read).
/// `local` must be as long as the ranges together.
pub fn read_mem_gather(pid: u32, remote: &[(u64, usize)], local: &mut [u8]) -> io::Result<()> {
    const GATHER_BATCH: usize = 64;
    let total = remote
        .iter()
        .map(|r| r.1)
        .fold(0usize, usize::saturating_add);
    if total != local.len() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut at = 0;
    for chunk in remote.chunks(GATHER_BATCH) {
        let mut iov = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; GATHER_BATCH];
        let mut n = 0;
        let mut want = 0;
        for &(addr, len) in chunk.iter().filter(|r| r.1 > 0) {
            iov[n] = libc::iovec {
                iov_base: addr as *mut libc::c_void,
                iov_len: len,
            };
            n += 1;
            want += len;
        }
        if n == 0 {
            continue;
        }
        let dst = &mut local[at..at + want];
        let l = libc::iovec {
            iov_base: dst.as_mut_ptr().cast(),
            iov_len: dst.len(),
        };
        // SAFETY: `l` is our buffer of exactly `want` bytes; the kernel checks the
        // `n` remote ranges against the target.
        let got =
            unsafe { libc::process_vm_readv(pid as libc::pid_t, &l, 1, iov.as_ptr(), n as u64, 0) };
        match got {
            g if g < 0 => return Err(io::Error::last_os_error()),
            g if g as usize != want => return Err(io::Error::from_raw_os_error(libc::EFAULT)),
            _ => at += want,
        }
    }
    Ok(())
}

/// Reads the target's memory at `addr` into `buf`, all of it or an error.
pub fn read_mem(pid: u32, addr: u64, buf: &mut [u8]) -> io::Result<()> {
    read_mem_gather(pid, &[(addr, buf.len())], buf)
}

/// Writes `data` into the target's memory at `addr`.
pub fn write_mem(pid: u32, addr: u64, data: &[u8]) -> io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    let local = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: as for read_mem.
    let n = unsafe { libc::process_vm_writev(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    match n {
        n if n < 0 => Err(io::Error::last_os_error()),
        n if n as usize != data.len() => Err(io::Error::from_raw_os_error(libc::EFAULT)),
        _ => Ok(()),
    }
}

/// `kill(2)`.
pub fn kill(pid: u32, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::kill(pid as libc::pid_t, sig) }).map(|_| ())
}

/// Sends signal `sig` to thread `tid` (as the kernel signals the thread whose
/// call raised it, `SIGPIPE` on a send to a closed socket).
pub fn signal_thread(tid: u32, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: plain syscall.
    cvt_long(unsafe { libc::syscall(libc::SYS_tkill, tid as libc::c_long, sig as libc::c_long) })
        .map(|_| ())
}

/// Whether `pid` is in the launcher's process group (so a terminal's signals reach
/// it without forwarding).
pub fn in_my_process_group(pid: u32) -> bool {
    // SAFETY: plain syscalls.
    unsafe { libc::getpgid(pid as libc::pid_t) == libc::getpgrp() }
}

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

/// The effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// Raises `RLIMIT_NOFILE`'s soft limit to its hard limit: the stack holds one fd per
/// socket of every process in the container. Returns the new soft limit.
pub fn raise_nofile_limit() -> io::Result<u64> {
    // SAFETY: rlimit is a plain C struct.
    let mut rl: libc::rlimit = unsafe { zeroed() };
    // SAFETY: rl is valid for writes.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) })?;
    if rl.rlim_cur < rl.rlim_max {
        rl.rlim_cur = rl.rlim_max;
        // SAFETY: rl is a valid rlimit.
        cvt(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) })?;
    }
    Ok(rl.rlim_cur)
}

/// Serves allocations of 32 KiB and more from fresh `mmap`s always. Every TCP
/// connection allocates its smoltcp buffers (1 MiB each way by default) zeroed;
/// glibc's dynamic mmap threshold would soon move them onto the heap, where
/// `calloc` must `memset` them (a quarter of the stack's time under connection
/// churn), while fresh pages are zero already and only the ones used get touched.
///
/// Why 32 KiB and not the 256 KiB this once was: as connections add up, the
/// buffer budget hands each new one less (`--max-buffer-memory`), and buffers
/// under the threshold came from the heap, zeroed page by page. Opening 10 000
/// connections then spent 44 % of netcell's time clearing pages and left it at
/// 1.3 GB resident; at 32 KiB it took 2.4-2.8 s instead of 3.7-6.3 s and 98 MB.
/// Below 32 KiB, zeroing costs about what the `mmap` and `munmap` would.
pub fn large_allocations_from_mmap() {
    // SAFETY: mallopt with integer arguments, before any thread is started.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 32 * 1024) };
}

/// Hands back the resident pages of this process's file mappings that were never
/// written (code, read-only data: the start-up's clap, the embedded preload
/// library it hashed and wrote out) and returns how many KiB were resident in them.
/// The pages stay in the page cache; what runs again faults its pages back in from
/// there. Only mappings without write permission and without a private
/// (copy-on-write) page qualify: `MADV_DONTNEED` re-reads such a mapping from its
/// file, which holds exactly what was there (a relocated RELRO region has private
/// pages and is left alone).
pub fn drop_clean_file_pages() -> io::Result<u64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    let mut dropped = 0;
    let mut cur: Option<(usize, usize, bool)> = None;
    let mut rss = 0u64;
    let mut private = 0u64;
    let mut flush = |cur: Option<(usize, usize, bool)>, rss: u64, private: u64| {
        if let Some((start, end, true)) = cur
            && private == 0
            && rss > 0
        {
            // SAFETY: `start..end` is one whole mapping of this process, backed by a
            // file, not writable and without private pages (checked above from
            // the kernel's own account); discarding its pages only makes later
            // reads fault them in again from the same file contents.
            let r = unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED)
            };
            if r == 0 {
                dropped += rss;
            }
        }
    };
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(start), Ok(end)) =
                (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            flush(cur, rss, private);
            let perms = words.next().unwrap_or("");
            let inode = words.nth(2).unwrap_or("0");
            let path = words.next().unwrap_or("");
            let clean_file = !perms.contains('w') && inode != "0" && path.starts_with('/');
            cur = Some((start, end, clean_file));
            (rss, private) = (0, 0);
            continue;
        }
        let kib = || {
            words
                .clone()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        match first {
            "Rss:" => rss = kib(),
            // Copy-on-write copies count as anonymous; `Private_Dirty` alone may
            // be the file's own page cache not yet written back (a fresh build).
            "Anonymous:" | "AnonHugePages:" | "Swap:" => private += kib(),
            _ => {}
        }
    }
    flush(cur, rss, private);
    Ok(dropped)
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

/// Makes netcell non-dumpable before `main` runs (from `.init_array`, right after
/// the dynamic loader): from then on no other process of the user — a container's
/// above all — can `ptrace` netcell, take its descriptors (`pidfd_getfd`) or read
/// its memory, and netcell opens its first descriptor (TAP, control socket,
/// seccomp listener) only after this. What is left is the moment between `exec`
/// and this call, when netcell holds only what it inherited.
pub extern "C" fn early_non_dumpable() {
    // SAFETY: prctl with integer arguments; nothing else runs yet.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } < 0 {
        // SAFETY: a constant message to stderr.
        unsafe {
            let m = b"netcell: cannot make itself non-dumpable\n";
            libc::write(2, m.as_ptr().cast(), m.len());
            libc::_exit(125);
        }
    }
    MADE_NON_DUMPABLE.store(true, std::sync::atomic::Ordering::Relaxed);
}

#[used]
#[unsafe(link_section = ".init_array")]
static EARLY_NON_DUMPABLE: extern "C" fn() = early_non_dumpable;

static MADE_NON_DUMPABLE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether [`early_non_dumpable`] ran before `main`. Calling this also keeps the
/// `.init_array` entry in the binary (the linker takes an archive member only when
/// something in it is used).
pub fn started_non_dumpable() -> bool {
    std::hint::black_box(&EARLY_NON_DUMPABLE);
    MADE_NON_DUMPABLE.load(std::sync::atomic::Ordering::Relaxed)
}

/// Blocks `signals` in this thread and returns a signalfd that reads them.
pub fn block_and_signalfd(signals: &[libc::c_int]) -> io::Result<OwnedFd> {
    let set = sigset(signals);
    // SAFETY: a valid sigset; the old mask is not needed.
    cvt(unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) })?;
    // SAFETY: a valid sigset; -1 asks for a new fd.
    let fd = cvt(unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) })?;
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether descriptor `fd` of thread `tid` is close-on-exec (`flags:` of its
/// `/proc/TID/fdinfo` entry, octal); `None` if it cannot be read.
pub fn fd_cloexec_of(tid: u32, fd: i32) -> Option<bool> {
    let info = std::fs::read_to_string(format!("/proc/{tid}/fdinfo/{fd}")).ok()?;
    let flags = info.lines().find_map(|l| l.strip_prefix("flags:"))?.trim();
    let v = u32::from_str_radix(flags, 8).ok()?;
    Some(v & libc::O_CLOEXEC as u32 != 0)
}

// ---- entering another process's container (`netcell exec` into OCI ones) ----

/// `fork(2)`: `Some(pid)` in the parent, `None` in the child; refused
/// (`EDEADLK`) unless the calling process has a single thread: the child runs on
/// a copy of that one only, and a lock another thread held would stay locked in
/// it for ever. (Only this thread could start another meanwhile, so the count
/// read here holds at the fork.)
pub fn fork_single_threaded() -> io::Result<Option<u32>> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse::<u32>().ok());
    if threads != Some(1) {
        return Err(io::Error::from_raw_os_error(libc::EDEADLK));
    }
    // SAFETY: a single thread, checked above.
    match unsafe { libc::fork() } {
        r if r < 0 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        pid => Ok(Some(pid as u32)),
    }
}

/// Makes directory `root` this process's root and `cwd` its working directory
/// (`fchdir` + `chroot(".")`, then `fchdir`): another process's root and
/// working directory, from descriptors opened on `/proc/PID/{root,cwd}`.
pub fn enter_root(root: BorrowedFd<'_>, cwd: Option<BorrowedFd<'_>>) -> io::Result<()> {
    // SAFETY: plain syscalls on valid descriptors and a static path.
    unsafe {
        cvt(libc::fchdir(root.as_raw_fd()))?;
        cvt(libc::chroot(c".".as_ptr()))?;
        match cwd {
            Some(c) if libc::fchdir(c.as_raw_fd()) == 0 => {}
            _ => {
                cvt(libc::chdir(c"/".as_ptr()))?;
            }
        }
    }
    Ok(())
}

/// `dup2(from, to)`: `to` (a standard descriptor) now refers to `from`'s file.
pub fn dup_onto(from: BorrowedFd<'_>, to: RawFd) -> io::Result<()> {
    // SAFETY: plain syscall; `to` is replaced, which the caller asks for.
    cvt(unsafe { libc::dup2(from.as_raw_fd(), to) }).map(drop)
}

/// `setrlimit(2)` of resource `res` (a `RLIMIT_*` number).
pub fn set_limit(res: u32, soft: u64, hard: u64) -> io::Result<()> {
    let l = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: a valid rlimit for the kernel to read.
    cvt(unsafe { libc::setrlimit(res as _, &l) }).map(drop)
}

/// Waits for child `pid` to end; its exit code, or 128+N for signal N.
pub fn wait_exit_code(pid: u32) -> io::Result<i32> {
    let mut st = 0;
    loop {
        // SAFETY: waitpid with a valid status pointer, for our own child.
        let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut st, 0) };
        if r >= 0 {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(if libc::WIFEXITED(st) {
        libc::WEXITSTATUS(st)
    } else {
        128 + libc::WTERMSIG(st)
    })
}

/// Restores the default action of `sig` (an ignored SIGCHLD, inherited, would
/// make the kernel reap children nobody then can wait for).
pub fn default_signal(sig: libc::c_int) {
    // SAFETY: sets a signal's disposition to the default, no handler involved.
    unsafe { libc::signal(sig, libc::SIG_DFL) };
}

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// `capset(2)` of this thread's three sets (one bit per capability); the raw
/// result. A system call only: safe between `clone` and `exec`.
pub(crate) fn capset(effective: u64, permitted: u64, inheritable: u64) -> libc::c_long {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let word = |set: u64, i: u32| (set >> (32 * i)) as u32;
    let data = [0, 1].map(|i| CapData {
        effective: word(effective, i),
        permitted: word(permitted, i),
        inheritable: word(inheritable, i),
    });
    // SAFETY: a valid header and two data words for the kernel to read.
    unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    }
}

/// Narrows this process to capabilities `keep` (effective and permitted; no
/// inheritable ones) and its bounding set to `bounding`, capabilities 0 to
/// `last_cap`: what a process about to become a container's may hold on the
/// way.
pub fn restrict_capabilities(bounding: u64, keep: u64, last_cap: u32) -> io::Result<()> {
    for cap in 0..=last_cap.min(63) {
        // SAFETY: plain prctl call, no pointers.
        let held = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) };
        if bounding & (1 << cap) == 0 && held == 1 {
            // SAFETY: plain prctl call, no pointers.
            cvt(unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) })?;
        }
    }
    cvt_long(capset(keep, keep, 0)).map(drop)
}

/// A child that ended, if any: its pid and exit code (128+N for signal N).
pub fn reap_any() -> Option<(u32, i32)> {
    let mut st = 0;
    // SAFETY: waitpid with a valid status pointer.
    let r = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
    (r > 0).then(|| {
        let code = if libc::WIFEXITED(st) {
            libc::WEXITSTATUS(st)
        } else {
            128 + libc::WTERMSIG(st)
        };
        (r as u32, code)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    static TEXT: &str = "read-only data, dropped and read again";

    fn rss_file_kib() -> u64 {
        let s = std::fs::read_to_string("/proc/self/status").unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix("RssFile:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    }

    /// Code and read-only data come back from the file after their pages were
    /// handed back.
    #[test]
    fn dropping_clean_file_pages_keeps_the_process_working() {
        let before_text = TEXT.to_string();
        // (RssFile before and after is not compared: the harness's other threads
        // fault pages in meanwhile.)
        let dropped = drop_clean_file_pages().unwrap();
        assert!(dropped > 0, "nothing handed back");
        // Code runs and data reads as before.
        assert_eq!(TEXT, before_text);
        assert_eq!(format!("{}", 6 * 7), "42");
        assert!(rss_file_kib() > 0);
    }
}
