//! seccomp user notifications (receiving, answering, installing descriptors in the
//! target) and the Landlock ABI.
#![allow(unused_imports)]

use crate::{cvt, cvt_long, cvt_size};
use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// The kernel's Landlock ABI version (0 when Landlock is not available).
pub fn landlock_abi() -> i32 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_long = 1;
    // SAFETY: the version query takes no attribute pointer.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0 as libc::c_long,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    r.max(0) as i32
}

/// One notification.
pub type Notif = libc::seccomp_notif;

/// Whether a notification waits (`poll` on the listener).
pub fn pending(listener: BorrowedFd<'_>) -> bool {
    let mut p = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let r = unsafe { libc::poll(&mut p, 1, 0) };
    r == 1 && p.revents & libc::POLLIN != 0
}

/// Asks the kernel to hand each notification to the listener, and each answer
/// back to its caller, on the waking CPU (`SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP`,
/// Linux 6.6): a call and its answer then cost two context switches instead of
/// two cross-CPU wake-ups. Fails with `EINVAL` on older kernels.
pub fn sync_wake_up(listener: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: the ioctl takes its flags by value and touches no memory.
    cvt(unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS,
            1u64, // SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
        )
    })
    .map(|_| ())
}

/// Receives one notification (`SECCOMP_IOCTL_NOTIF_RECV`); call when `pending`.
pub fn recv(listener: BorrowedFd<'_>) -> io::Result<Notif> {
    // SAFETY: seccomp_notif is plain data; the kernel requires it zeroed.
    let mut n: Notif = unsafe { zeroed() };
    // SAFETY: a valid, zeroed seccomp_notif for the kernel to fill.
    cvt(unsafe { libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut n) })?;
    Ok(n)
}

/// Answers a notification: `val` as the result, or `-error`; or, with `continue_`,
/// lets the kernel carry out the call itself.
pub fn respond(
    listener: BorrowedFd<'_>,
    id: u64,
    val: i64,
    error: i32,
    continue_: bool,
) -> io::Result<()> {
    let resp = libc::seccomp_notif_resp {
        id,
        val,
        error: if error != 0 { -error } else { 0 },
        flags: if continue_ {
            libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32
        } else {
            0
        },
    };
    // SAFETY: a valid seccomp_notif_resp.
    cvt(unsafe { libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &resp) })
        .map(|_| ())
}

/// Whether the notification is still alive (the target has not been interrupted
/// and its pid still names it).
pub fn id_valid(listener: BorrowedFd<'_>, id: u64) -> bool {
    // SAFETY: the ioctl reads one u64.
    unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
            &id,
        ) == 0
    }
}

/// Installs `fd` in the target of notification `id` as its descriptor `at`,
/// replacing what is there (`SECCOMP_ADDFD_FLAG_SETFD`, as `dup2` would); the
/// notification stays pending. Returns the number (`at`).
pub fn addfd_at(
    listener: BorrowedFd<'_>,
    id: u64,
    fd: BorrowedFd<'_>,
    at: i32,
    cloexec: bool,
) -> io::Result<i32> {
    let a = libc::seccomp_notif_addfd {
        id,
        flags: libc::SECCOMP_ADDFD_FLAG_SETFD as u32,
        srcfd: fd.as_raw_fd() as u32,
        newfd: at as u32,
        newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
    };
    // SAFETY: a valid seccomp_notif_addfd.
    cvt(unsafe { libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_ADDFD, &a) })
}

/// Installs `fd` in the target (`SECCOMP_IOCTL_NOTIF_ADDFD`) and returns its number
/// there; with `answer`, also answers the notification with that number, in one step
/// (`SECCOMP_ADDFD_FLAG_SEND`). Fails with `ENOENT` if the target was interrupted
/// meanwhile; the fd is then not installed.
pub fn addfd(
    listener: BorrowedFd<'_>,
    id: u64,
    fd: BorrowedFd<'_>,
    cloexec: bool,
    answer: bool,
) -> io::Result<i32> {
    let a = libc::seccomp_notif_addfd {
        id,
        flags: if answer {
            libc::SECCOMP_ADDFD_FLAG_SEND as u32
        } else {
            0
        },
        srcfd: fd.as_raw_fd() as u32,
        newfd: 0,
        newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
    };
    // SAFETY: a valid seccomp_notif_addfd.
    cvt(unsafe { libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_ADDFD, &a) })
}
