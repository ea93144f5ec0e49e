//! Starting a command under the filter.
//!
//! The filter must be installed by the command's own process, after `fork` and
//! before `exec`, and its listener must end up in netcell, not in the container (a
//! container holding its own listener could answer its own `socket` calls with
//! "continue"). The child cannot send the listener over a socket — `sendmsg` is one
//! of the calls its new filter holds for a supervisor that is not yet listening —
//! so it writes the listener's number down a pipe and waits; a helper thread of
//! netcell takes the descriptor out of the child with `pidfd_getfd` and writes
//! back; the child closes its own copy and execs. Before that, the child marks every
//! descriptor from 3 up close-on-exec: nothing netcell inherited or holds reaches
//! the container.

use super::{filter, kernel};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Command;
use std::sync::mpsc;

/// The parent's side of a handover in progress.
pub struct Handover {
    /// The child's pipe ends, kept open in the parent until the spawn is done.
    child_ends: Option<(OwnedFd, OwnedFd)>,
    rx: mpsc::Receiver<io::Result<OwnedFd>>,
}

/// Prepares `cmd` to install the filter (watching `open` calls too when
/// `watch_open`) and hand its listener over; call [`Handover::finish`] once the
/// command was spawned.
pub fn prepare(cmd: &mut Command, watch_open: bool) -> io::Result<Handover> {
    let prog = filter::program(watch_open);
    let (report_r, report_w) = kernel::pipe()?;
    let (ack_r, ack_w) = kernel::pipe()?;
    let (report_fd, ack_fd) = (report_w.as_raw_fd(), ack_r.as_raw_fd());
    kernel::before_exec(cmd, move || {
        kernel::cloexec_from_3()?;
        let mut msg = [0u8; 8];
        let listener = match kernel::install_filter(&prog) {
            Ok(l) => l,
            Err(e) => {
                // pid 0 says the kernel refused; the errno follows.
                msg[4..].copy_from_slice(&e.raw_os_error().unwrap_or(0).to_ne_bytes());
                let _ = kernel::write_all_raw(report_fd, &msg);
                return Err(e);
            }
        };
        msg[..4].copy_from_slice(&kernel::getpid().to_ne_bytes());
        msg[4..].copy_from_slice(&listener.to_ne_bytes());
        kernel::write_all_raw(report_fd, &msg)?;
        let mut ack = [0u8; 1];
        let r = kernel::read_exact_raw(ack_fd, &mut ack);
        kernel::close_raw(listener);
        r?;
        if ack[0] != 1 {
            return Err(io::Error::other(
                "netcell could not take the seccomp listener",
            ));
        }
        Ok(())
    });
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("seccomp-handover".into())
        .spawn(move || {
            let r = take_listener(&report_r);
            let _ = kernel::write_all_raw(ack_w.as_raw_fd(), &[r.is_ok() as u8]);
            let _ = tx.send(r);
        })?;
    Ok(Handover {
        child_ends: Some((report_w, ack_r)),
        rx,
    })
}

fn take_listener(report: &OwnedFd) -> io::Result<OwnedFd> {
    let mut msg = [0u8; 8];
    kernel::read_exact_raw(report.as_raw_fd(), &mut msg)?;
    let pid = u32::from_ne_bytes([msg[0], msg[1], msg[2], msg[3]]);
    let fd = i32::from_ne_bytes([msg[4], msg[5], msg[6], msg[7]]);
    if pid == 0 {
        let why = if fd == libc::EBUSY {
            "the command already runs under a seccomp supervisor (inside another netcell \
             container, say), and a process may have only one"
        } else {
            "seccomp user notification needs Linux 5.9 or later and no outer sandbox \
             forbidding it"
        };
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "the kernel refused the seccomp filter ({}): {why}; run with --shim preload instead",
                io::Error::from_raw_os_error(fd)
            ),
        ));
    }
    let pidfd = kernel::pidfd_open(pid)?;
    kernel::pidfd_getfd(std::os::fd::AsFd::as_fd(&pidfd), fd)
}

impl Handover {
    /// The listener, once the command was spawned (or failed to be: then the
    /// helper sees the pipe close and this reports an error).
    pub fn finish(mut self) -> io::Result<OwnedFd> {
        drop(self.child_ends.take());
        self.rx
            .recv()
            .map_err(|_| io::Error::other("seccomp handover thread died"))?
    }
}
