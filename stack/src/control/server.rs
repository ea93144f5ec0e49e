//! The control server: accepts shim connections on an `AF_UNIX` `SOCK_SEQPACKET`
//! socket and answers their requests through [`super::service`].
//!
//! A connection belongs to one process (the shim opens a new one after `fork`).
//! Everything a connection sends is untrusted: a message that does not decode gets
//! an `EBADMSG` reply when its header was readable, and closes the connection when
//! not; an oversize message gets `EMSGSIZE`; unexpected descriptors are closed; a
//! client that does not read its replies is disconnected. None of this affects other
//! connections or the sockets the process already holds.

use super::service;
use crate::stack::Stack;
use crate::sys;
use netcell_proto::{self as proto, DecodeError, MAX_MESSAGE, MAX_REQUEST, Reply};
use smoltcp::phy::Device;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// Malformed messages tolerated on one connection before it is closed.
const MAX_ERRORS: u32 = 64;

struct Conn {
    fd: OwnedFd,
    pid: i32,
    hello: bool,
    errors: u32,
}

/// The listening control socket and its connections.
pub struct ControlServer {
    listener: OwnedFd,
    owner_uid: u32,
    path: PathBuf,
    conns: Vec<Option<Conn>>,
    rx: Box<[u8]>,
    tx: Box<[u8]>,
    /// Connections accepted since the last call to [`ControlServer::drain_new`].
    new: Vec<usize>,
}

/// What happened on a connection.
#[derive(Debug, PartialEq, Eq)]
pub enum ConnEvent {
    /// Still open.
    Open,
    /// Closed (by the client or for misbehaviour).
    Closed,
}

impl ControlServer {
    /// Listens at `path` (which must not exist).
    pub fn bind(path: &Path) -> io::Result<ControlServer> {
        let listener = sys::seqpacket_listener(path)?;
        // Connectable by every user; `allowed` decides who is served.
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o666))?;
        Ok(ControlServer {
            listener,
            owner_uid: sys::euid(),
            path: path.to_path_buf(),
            conns: Vec::new(),
            rx: vec![0u8; MAX_REQUEST + 1].into_boxed_slice(),
            tx: vec![0u8; MAX_MESSAGE].into_boxed_slice(),
            new: Vec::new(),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The listening fd (for the event loop).
    pub fn listener_fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }

    /// Number of open connections.
    pub fn connections(&self) -> usize {
        self.conns.iter().filter(|c| c.is_some()).count()
    }

    /// Whether a peer may use the stack: a process of the container (a descendant of
    /// the stack process, which is the container's subreaper), or one of the stack's
    /// own user. The socket is reachable by everyone (so that container programs that
    /// drop privileges, such as nginx workers, keep their network); this check is
    /// what keeps other users' processes out.
    fn allowed(&self, pid: i32, uid: u32) -> bool {
        if uid == self.owner_uid || uid == 0 && self.owner_uid == 0 {
            return true;
        }
        is_descendant(pid, std::process::id() as i32)
    }

    /// Accepts every pending connection.
    pub fn accept(&mut self) {
        loop {
            match sys::accept_nb(self.listener.as_fd()) {
                Ok(fd) => {
                    let (pid, uid) = sys::peer_cred(fd.as_fd()).unwrap_or((0, u32::MAX));
                    if !self.allowed(pid, uid) {
                        log::warn!(
                            "control: refusing pid {pid} (uid {uid}): not a process of this container"
                        );
                        continue;
                    }
                    let conn = Conn {
                        fd,
                        pid,
                        hello: false,
                        errors: 0,
                    };
                    let idx = match self.conns.iter().position(|c| c.is_none()) {
                        Some(i) => {
                            self.conns[i] = Some(conn);
                            i
                        }
                        None => {
                            self.conns.push(Some(conn));
                            self.conns.len() - 1
                        }
                    };
                    log::debug!("control: connection {idx} from pid {pid}");
                    self.new.push(idx);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // EMFILE and friends: the client sees its connect fail or hang;
                    // the stack keeps serving the others.
                    log::warn!("control: accept: {e}");
                    break;
                }
            }
        }
    }

    /// Connections accepted since the last call: (index, fd) for the event loop.
    pub fn drain_new(&mut self, mut f: impl FnMut(usize, RawFd)) {
        for idx in self.new.drain(..) {
            if let Some(c) = &self.conns[idx] {
                f(idx, c.fd.as_raw_fd());
            }
        }
    }

    /// Serves every message waiting on connection `idx`.
    pub fn serve<D: Device>(&mut self, idx: usize, stack: &mut Stack<D>) -> ConnEvent {
        loop {
            let Some(conn) = self.conns.get_mut(idx).and_then(|c| c.as_mut()) else {
                return ConnEvent::Closed;
            };
            let mut got = match sys::recv_with_fds(conn.fd.as_fd(), &mut self.rx) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ConnEvent::Open,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!("control: connection {idx} (pid {}): {e}", conn.pid);
                    self.conns[idx] = None;
                    return ConnEvent::Closed;
                }
            };
            if got.len == 0 && got.fds.is_empty() {
                log::debug!("control: connection {idx} (pid {}) closed", conn.pid);
                self.conns[idx] = None;
                return ConnEvent::Closed;
            }
            let msg = &self.rx[..got.len];
            let outcome = if got.truncated || got.len > MAX_REQUEST {
                Err((
                    DecodeError::TooLong(got.len),
                    proto::peek_request_header(msg),
                ))
            } else {
                match proto::decode_request(msg) {
                    Ok(r) => Ok(r),
                    Err(e) => Err((e, proto::peek_request_header(msg))),
                }
            };
            let (n, fd) = match outcome {
                Ok((hdr, req)) => {
                    let first = !conn.hello;
                    if first && !matches!(req, proto::Request::Hello { .. }) {
                        log::warn!(
                            "control: pid {} sent {:?} before Hello; closing",
                            conn.pid,
                            req.op()
                        );
                        self.conns[idx] = None;
                        return ConnEvent::Closed;
                    }
                    conn.hello = true;
                    let ans = service::serve(
                        stack,
                        hdr,
                        &req,
                        &mut got.fds,
                        service::Caller {
                            pid: conn.pid.max(0) as u32,
                        },
                    );
                    let reply = Reply {
                        op: req.op(),
                        seq: hdr.seq,
                        errno: ans.errno,
                        value: ans.value,
                        flags: ans.flags,
                        data: ans.data(),
                    };
                    match proto::encode_reply(&reply, &mut self.tx) {
                        Ok(n) => (n, ans.fd),
                        Err(e) => {
                            log::error!("control: cannot encode a reply: {e}");
                            continue;
                        }
                    }
                }
                Err((e, header)) => {
                    conn.errors += 1;
                    crate::device::log_rate_limited(
                        conn.errors as u64,
                        &format!(
                            "control: malformed message from pid {} ({} bytes)",
                            conn.pid, got.len
                        ),
                        &e,
                    );
                    let Some((op, hdr)) =
                        header.filter(|_| e.header_was_valid() && conn.errors <= MAX_ERRORS)
                    else {
                        log::warn!("control: closing connection of pid {} after: {e}", conn.pid);
                        self.conns[idx] = None;
                        return ConnEvent::Closed;
                    };
                    let errno = match e {
                        DecodeError::TooLong(_) => libc::EMSGSIZE,
                        DecodeError::UnknownOp(_) => libc::EOPNOTSUPP,
                        _ => libc::EBADMSG,
                    };
                    let reply = Reply {
                        op: proto::Op::Hello,
                        seq: hdr.seq,
                        errno,
                        value: 0,
                        flags: 0,
                        data: &[],
                    };
                    match proto::encode_reply_raw(op, &reply, &mut self.tx) {
                        Ok(n) => (n, None),
                        Err(_) => continue,
                    }
                }
            };
            // Descriptors the request did not use are dropped (closed) here.
            got.fds.clear();
            let Some(conn) = self.conns.get_mut(idx).and_then(|c| c.as_mut()) else {
                return ConnEvent::Closed;
            };
            match sys::send_with_fd(
                conn.fd.as_fd(),
                &self.tx[..n],
                fd.as_ref().map(|f| f.as_fd()),
            ) {
                Ok(_) => {}
                Err(e) => {
                    // A client that does not read its replies, or is gone.
                    log::debug!("control: reply to pid {} failed: {e}; closing", conn.pid);
                    self.conns[idx] = None;
                    return ConnEvent::Closed;
                }
            }
        }
    }
}

/// Whether `pid` descends from `ancestor` (walking `PPid` in `/proc`).
fn is_descendant(mut pid: i32, ancestor: i32) -> bool {
    for _ in 0..128 {
        if pid == ancestor {
            return true;
        }
        if pid <= 1 {
            return false;
        }
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            return false;
        };
        let Some(ppid) = status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))
            .and_then(|v| v.trim().parse().ok())
        else {
            return false;
        };
        pid = ppid;
    }
    false
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
