//! The control server: accepts shim connections on an `AF_UNIX` `SOCK_SEQPACKET`
//! socket and answers their requests through [`super::service`].
//!
//! A connection belongs to one process (the shim opens a new one after `fork`).
//! Everything a connection sends is untrusted: a message that does not decode gets
//! an `EBADMSG` reply when its header was readable, and closes the connection when
//! not; an oversize message gets `EMSGSIZE`; unexpected descriptors are closed; a
//! client that does not read its replies is disconnected. None of this affects other
//! connections or the sockets the process already holds.
//!
//! # Who may connect
//!
//! Only processes of this container: descendants of the stack process (the
//! container's subreaper), whatever their user (programs that drop privileges, such
//! as nginx workers, keep their network). The socket's path is no secret (it is in
//! `/proc`), so a process of another container of the same user could otherwise use
//! this container's stack — its private loopback above all. The check walks the
//! peer's parents with pidfds, so that no pid it reads can have been reused by the
//! time it is trusted (see `descends_from_us`).
//!
//! Under the seccomp shim no program needs the socket (the supervisor serves
//! their calls in the stack's own thread), so the launcher has every connection
//! refused ([`ControlServer::refuse_all`]): a request names a socket by its
//! stand-in's inode, which a process can guess without holding the socket, and
//! a program must not reach another's sockets that way. (Under preload it can:
//! see the README's preload limits.)
//!
//! # Floods
//!
//! A container can open connections until the stack runs out of descriptors. At
//! most [`ControlServer::set_max_connections`] are kept (the default is
//! [`DEFAULT_MAX_CONNECTIONS`]); beyond that a connection is accepted and closed at
//! once (the shim reports it). `accept` runs until the queue is empty, because the
//! event loop is edge-triggered: a queue left with connections in it would never be
//! reported again. When the stack itself is out of descriptors (`EMFILE`,
//! `ENFILE`), a descriptor kept in reserve is given up for one `accept`, whose
//! connection is closed at once, and taken again: the queue drains, and once the
//! flood is over new clients are served again.
//!
//! A connection's requests are served 16 at a time (`BATCH`), and of those at
//! most 4 that the program waits for (`ANSWERED_BATCH`): a program that asks
//! again the moment it has its answer would otherwise keep the event loop here —
//! its closed sockets' hang-ups, the TAP and every other program waiting. What a
//! batch leaves is the backlog, served in the next turn (whose wait is zero).
//!
//! Why answered requests end a batch sooner: the hang-up of a stand-in is learnt
//! from the event loop's `epoll_wait`, once per turn. A program that connects
//! and closes in a loop sends its next `connect` while the stack is still in the
//! batch (its answer woke it), so with 16 per batch a turn lasted about 30
//! connections, and the connections it had closed waited that long in
//! `CLOSE_WAIT` — about 60 of them at any time in `ctlbench` on the loopback,
//! each served again by every request's poll (134 times per connection, to no
//! effect: nothing told the stack yet that their stand-ins were closed). With 4,
//! connect+close pairs on one CPU went from 10.7–10.8 k to 13.5 k per second;
//! posted requests (`sendto` with an address, `Placed`) still go 16 a turn.

use super::service;
use crate::stack::Stack;
use crate::sys;
use netcell_proto::{self as proto, DecodeError, MAX_MESSAGE, MAX_REQUEST, Reply};
use smoltcp::phy::Device;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// Malformed messages tolerated on one connection before it is closed.
const MAX_ERRORS: u32 = 64;

/// Requests served on one connection before the event loop turns.
const BATCH: usize = 16;

/// Of a batch's requests, those the program waits an answer for (see the
/// module docs).
const ANSWERED_BATCH: usize = 4;

/// Connections kept at most, unless set otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

struct Conn {
    fd: OwnedFd,
    pid: i32,
    hello: bool,
    errors: u32,
}

/// The listening control socket and its connections.
pub struct ControlServer {
    listener: OwnedFd,
    /// Given up for one `accept` when the stack is out of descriptors.
    reserve: Option<OwnedFd>,
    max_connections: usize,
    /// Why every connection is refused, if it is (see [`ControlServer::refuse_all`]).
    refuse_all: Option<&'static str>,
    /// Connections refused so far (for the log).
    refused: u64,
    path: PathBuf,
    conns: Vec<Option<Conn>>,
    rx: Box<[u8]>,
    tx: Box<[u8]>,
    /// Connections accepted since the last call to [`ControlServer::drain_new`].
    new: Vec<usize>,
    /// Connections a batch left requests on, and the list being served.
    backlog: Vec<usize>,
    serving: Vec<usize>,
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
            reserve: Some(sys::dev_null()?),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            refuse_all: None,
            refused: 0,
            path: path.to_path_buf(),
            conns: Vec::new(),
            rx: vec![0u8; MAX_REQUEST + 1].into_boxed_slice(),
            tx: vec![0u8; MAX_MESSAGE].into_boxed_slice(),
            new: Vec::new(),
            backlog: Vec::new(),
            serving: Vec::new(),
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

    /// Keeps at most `n` connections (at least 1).
    pub fn set_max_connections(&mut self, n: usize) {
        self.max_connections = n.max(1);
    }

    /// Refuses every connection from now on, saying `why` (a container whose
    /// programs all run under the seccomp shim has no use for the control
    /// socket, and a hostile program of it must not speak the protocol: its
    /// requests name sockets by inode, which proves no hold on them).
    pub fn refuse_all(&mut self, why: &'static str) {
        self.refuse_all = Some(why);
    }

    fn refuse(&mut self, why: std::fmt::Arguments<'_>) {
        self.refused += 1;
        if self.refused <= 5 || self.refused.is_multiple_of(1000) {
            log::warn!(
                "control: {why}: connection refused (refusal {})",
                self.refused
            );
        }
    }

    /// Accepts every pending connection (see the module docs: until the queue is
    /// empty, also when the stack is out of descriptors).
    pub fn accept(&mut self) {
        loop {
            let fd = match sys::accept_nb(self.listener.as_fd()) {
                Ok(fd) => fd,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    // Give up the reserve for this one connection, close it, and
                    // take the reserve back.
                    let Some(reserve) = self.reserve.take() else {
                        log::warn!("control: accept: {e}; no reserve descriptor left");
                        break;
                    };
                    drop(reserve);
                    if let Ok(c) = sys::accept_nb(self.listener.as_fd()) {
                        drop(c);
                        self.refuse(format_args!("the stack is out of descriptors ({e})"));
                    }
                    self.reserve = sys::dev_null().ok();
                    continue;
                }
                Err(e) => {
                    log::warn!("control: accept: {e}");
                    break;
                }
            };
            if let Some(why) = self.refuse_all {
                self.refuse(format_args!("{why}"));
                continue;
            }
            let live = self.connections();
            if live >= self.max_connections {
                self.refuse(format_args!("{live} connections already (the limit)"));
                continue;
            }
            let pid = match descends_from_us(fd.as_fd()) {
                Ok(pid) => pid,
                Err(why) => {
                    self.refuse(format_args!("{why}"));
                    continue;
                }
            };
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
        let mut answered = 0;
        for _ in 0..BATCH {
            if answered >= ANSWERED_BATCH {
                break;
            }
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
                        crate::warn_limited!(
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
                    if !req.op().answered() {
                        // Posted: nobody waits for an answer.
                        got.fds.clear();
                        continue;
                    }
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
                    // Counted for the whole server: a program opening a
                    // connection per message would get a line for each.
                    crate::warn_limited!(
                        "control: malformed message from pid {} ({} bytes): {e}",
                        conn.pid,
                        got.len
                    );
                    let Some((op, hdr)) =
                        header.filter(|_| e.header_was_valid() && conn.errors <= MAX_ERRORS)
                    else {
                        crate::warn_limited!(
                            "control: closing connection of pid {} after: {e}",
                            conn.pid
                        );
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
            answered += 1;
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
        // More may wait: the next turn serves them (see the module docs). A batch
        // that ended with nothing left to read leaves no backlog (a backlog keeps
        // turns from counting as drained: `Sockets::begin_turn`); a message, an
        // empty one, or the client's hang-up is something to read (the event loop
        // reported the connection once, edge-triggered: it will not again).
        let Some(conn) = self.conns.get(idx).and_then(|c| c.as_ref()) else {
            return ConnEvent::Closed;
        };
        if sys::readable_now(conn.fd.as_fd()) && !self.backlog.contains(&idx) {
            self.backlog.push(idx);
        }
        ConnEvent::Open
    }

    /// Whether a batch left requests waiting: the event loop must not sleep.
    pub fn has_backlog(&self) -> bool {
        !self.backlog.is_empty()
    }

    /// Serves another batch on each connection a batch left requests on.
    pub fn serve_backlog<D: Device>(&mut self, stack: &mut Stack<D>) {
        std::mem::swap(&mut self.backlog, &mut self.serving);
        while let Some(idx) = self.serving.pop() {
            let _ = self.serve(idx, stack);
        }
    }
}

/// The pid of the process at the other end of `conn` if it descends from the stack
/// process, else why not.
///
/// The peer is pinned by a pidfd taken when it connected. Each step up reads the
/// parent's pid, opens a pidfd for it, and reads the child's parent again: if the
/// child is still alive and still has that parent, the pidfd names the parent
/// itself — a parent that had died would have given its children to a reaper
/// (another pid) before its own pid could be reused. A process of another
/// container can never come to descend from this stack: a process only ever
/// moves up, to a reaper among its ancestors.
fn descends_from_us(conn: BorrowedFd<'_>) -> Result<i32, String> {
    let me = std::process::id() as i32;
    let (mut fd, peer) = sys::peer_pidfd(conn).map_err(|e| format!("peer unknown ({e})"))?;
    let mut pid = peer;
    for _ in 0..256 {
        if pid == me {
            return Ok(peer);
        }
        if pid <= 1 {
            break;
        }
        let gone = || format!("pid {peer}: an ancestor exited while it was checked");
        let parent = sys::parent_of(pid).ok_or_else(gone)?;
        if !sys::pidfd_alive(fd.as_fd()) {
            return Err(gone());
        }
        if parent <= 0 {
            break;
        }
        let parent_fd = sys::pidfd_open(parent as u32).map_err(|_| gone())?;
        if sys::parent_of(pid) != Some(parent) || !sys::pidfd_alive(fd.as_fd()) {
            return Err(gone());
        }
        (fd, pid) = (parent_fd, parent);
    }
    Err(format!("pid {peer} is not a process of this container"))
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::PipeDevice;
    use crate::socket::SocketConfig;
    use proto::{Request, RequestHeader};

    /// Replies waiting for the client now.
    fn replies(client: BorrowedFd<'_>) -> Vec<u32> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let mut seqs = Vec::new();
        while let Ok(r) = sys::recv_with_fds(client, &mut buf) {
            if r.len == 0 {
                break;
            }
            seqs.push(proto::decode_reply(&buf[..r.len]).unwrap().seq);
        }
        seqs
    }

    /// A server and a client that queued `reqs` (sequence numbers from 0), the
    /// client accepted and not yet served: (server, stack, client, index).
    fn queued(
        name: &str,
        reqs: &[Request<'_>],
    ) -> (ControlServer, Stack<PipeDevice>, OwnedFd, usize) {
        let dir = std::env::temp_dir().join(format!("netcell-ctl-{name}-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let mut server = ControlServer::bind(&dir).unwrap();
        let stack: Stack<PipeDevice> = Stack::new(None, SocketConfig::default()).unwrap();
        let client = sys::connect_seqpacket(&dir).unwrap();
        let mut buf = vec![0u8; MAX_MESSAGE];
        for (seq, req) in reqs.iter().enumerate() {
            let hdr = RequestHeader {
                seq: seq as u32,
                sock: 0,
            };
            let n = proto::encode_request(hdr, req, &mut buf).unwrap();
            sys::send_nb(client.as_fd(), &buf[..n], 0).unwrap();
        }
        server.accept();
        let mut idx = None;
        server.drain_new(|i, _| idx = Some(i));
        let idx = idx.expect("the client was accepted");
        sys::set_nonblocking(client.as_fd(), true).unwrap();
        (server, stack, client, idx)
    }

    fn hello() -> Request<'static> {
        Request::Hello {
            pid: std::process::id(),
        }
    }

    /// A client with 40 requests queued gets 4 answered per turn, in order:
    /// the event loop goes on between batches (see the module docs).
    #[test]
    fn requests_are_served_a_batch_at_a_time() {
        let mut reqs = vec![hello()];
        reqs.resize(40, Request::GetSockName);
        let (mut server, mut stack, client, idx) = queued("batch", &reqs);

        assert_eq!(server.serve(idx, &mut stack), ConnEvent::Open);
        assert_eq!(replies(client.as_fd()), (0..4).collect::<Vec<_>>());
        for first in (4..40).step_by(4) {
            assert!(server.has_backlog());
            server.serve_backlog(&mut stack);
            assert_eq!(
                replies(client.as_fd()),
                (first..first + 4).collect::<Vec<_>>()
            );
        }
        // The last batch ended at its 4th answer with the connection empty: no
        // backlog is left (it would keep the turns from counting as drained).
        assert!(!server.has_backlog());
    }

    /// A client that posts a full batch and hangs up: the batch leaves a backlog,
    /// and the next turn finds the hang-up (nothing else would report it).
    #[test]
    fn a_hang_up_after_a_full_batch_is_noticed() {
        let (mut server, mut stack, client, idx) = queued("hangup", &[hello()]);
        assert_eq!(server.serve(idx, &mut stack), ConnEvent::Open);
        assert_eq!(replies(client.as_fd()), vec![0]);
        let mut buf = vec![0u8; MAX_MESSAGE];
        for seq in 1..=BATCH as u32 {
            let hdr = RequestHeader { seq, sock: 0 };
            let n = proto::encode_request(hdr, &Request::Placed { fd: 3 }, &mut buf).unwrap();
            sys::send_nb(client.as_fd(), &buf[..n], 0).unwrap();
        }
        drop(client);
        assert_eq!(server.serve(idx, &mut stack), ConnEvent::Open);
        assert!(server.has_backlog(), "the hang-up is still to be read");
        server.serve_backlog(&mut stack);
        assert!(server.conns[idx].is_none(), "the connection is closed");
        assert!(!server.has_backlog());
    }

    /// Requests nobody waits for go 16 a turn, answered ones 4: a `Hello` and
    /// 20 posted `Placed` take two turns, 8 answered after them two more.
    #[test]
    fn posted_requests_fill_a_batch_answered_ones_end_it() {
        let mut reqs = vec![hello()];
        reqs.resize(21, Request::Placed { fd: 3 });
        reqs.resize(29, Request::GetSockName);
        let (mut server, mut stack, client, idx) = queued("post", &reqs);

        // The Hello and 15 Placed: 16 requests, one answer.
        assert_eq!(server.serve(idx, &mut stack), ConnEvent::Open);
        assert_eq!(replies(client.as_fd()), vec![0]);
        // 5 Placed, then 4 answered end the batch.
        server.serve_backlog(&mut stack);
        assert_eq!(replies(client.as_fd()), (21..25).collect::<Vec<_>>());
        server.serve_backlog(&mut stack);
        assert_eq!(replies(client.as_fd()), (25..29).collect::<Vec<_>>());
        assert!(!server.has_backlog());
    }
}
