//! The zygote: `netcell __zygote FD`, started by `netcell run` next to the command,
//! inside the container and behind the same walls, to start the programs of
//! `netcell exec` there (see `owner.rs` for why).
//!
//! It reads requests from the socket `FD` (its netcell's): an 8-byte id, then an
//! [`ExecRequest`], with the client's stdin, stdout and stderr attached. For each it
//! starts the program (exactly the request's argv, environment and directory, the
//! client's descriptors as its 0, 1 and 2) and answers `started ID PID` or
//! `error ID TEXT`; when the program ends, `exit ID CODE` (128+N for signal N). It
//! ends when its netcell does (end of file on `FD`).

use crate::owner::{ExecRequest, Incoming, MAX_MSG, next_request, zygote_reply};
use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::Arc;

/// Runs the zygote on inherited descriptor `fd`; returns its exit status.
pub fn main(fd: i32) -> i32 {
    let sock = match netcell_sys::take_inherited(fd) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("netcell __zygote: descriptor {fd}: {e}");
            return 2;
        }
    };
    let _ = netcell_sys::set_cloexec(sock.as_fd(), true);
    let mut buf = vec![0u8; MAX_MSG];
    loop {
        match next_request(&sock, &mut buf, -1) {
            Incoming::Request(id, req, fds) => start(&sock, id, req, fds),
            Incoming::Nothing => {}
            Incoming::Ended => return 0,
        }
    }
}

fn reply(sock: &OwnedFd, text: &str) {
    zygote_reply(sock, text, None);
}

fn start(sock: &Arc<OwnedFd>, id: u64, req: ExecRequest, fds: Vec<OwnedFd>) {
    let mut stdio = fds.into_iter();
    let mut cmd = Command::new(OsStr::from_bytes(&req.argv[0]));
    cmd.args(req.argv[1..].iter().map(|a| OsStr::from_bytes(a)))
        .env_clear()
        .current_dir(OsStr::from_bytes(&req.cwd));
    for kv in &req.env {
        if let Some(eq) = kv.iter().position(|&c| c == b'=') {
            cmd.env(
                OsStr::from_bytes(&kv[..eq]),
                OsStr::from_bytes(&kv[eq + 1..]),
            );
        }
    }
    for (i, fd) in (0..3).zip(stdio.by_ref()) {
        let s = Stdio::from(fd);
        match i {
            0 => cmd.stdin(s),
            1 => cmd.stdout(s),
            _ => cmd.stderr(s),
        };
    }
    match cmd.spawn() {
        Ok(mut child) => {
            reply(sock, &format!("started {id} {}", child.id()));
            drop(cmd);
            let sock = Arc::clone(sock);
            std::thread::spawn(move || {
                let code = match child.wait() {
                    Ok(st) => st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)),
                    Err(_) => 125,
                };
                reply(&sock, &format!("exit {id} {code}"));
            });
        }
        Err(e) => {
            let code = match e.kind() {
                std::io::ErrorKind::NotFound => 127,
                _ => 126,
            };
            reply(
                sock,
                &format!(
                    "error {id} {code} cannot run {}: {e}",
                    String::from_utf8_lossy(&req.argv[0])
                ),
            );
        }
    }
}
