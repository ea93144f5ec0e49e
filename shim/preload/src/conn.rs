//! The shim's connections to its container's stack.
//!
//! The control socket's path comes from `NETCELL_CONTROL`; without it the shim is
//! inert and every call goes to the kernel. Connections live in a small pool: a
//! call takes one, uses it without holding any lock (so threads do not serialise
//! and a signal handler that makes a socket call cannot deadlock), and gives it back.
//! After `fork` the child finds connections of its parent's pid in the pool and
//! closes its copies. A connection's fd sits at 200 or above, away from the low
//! numbers programs expect; before each use its inode is checked, so a program that
//! closed it (daemons close every fd) and reused the number is never written to.

use crate::sys;
use libc::c_int;
use netcell_proto::{self as proto, MAX_MESSAGE, Request, RequestHeader};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, OnceLock};

struct Conn {
    fd: c_int,
    ino: u64,
    pid: u32,
    seq: u32,
}

static POOL: Mutex<Vec<Conn>> = Mutex::new(Vec::new());
static STACK_PID: AtomicI32 = AtomicI32::new(0);
static CONTROL: OnceLock<Option<Vec<u8>>> = OnceLock::new();
static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// The stack's grants generation, mapped read-only (see the stack's
/// `control::grants`); `None` inside when the stack offered none.
static GENERATION: OnceLock<Option<&'static std::sync::atomic::AtomicU64>> = OnceLock::new();

/// Whether this process runs under netcell.
pub fn active() -> bool {
    CONTROL
        .get_or_init(|| {
            std::env::var_os(proto::ENV_CONTROL)
                .map(std::os::unix::ffi::OsStringExt::into_vec)
                .filter(|p| !p.is_empty())
        })
        .is_some()
}

/// The stack's pid, once a connection was made (stand-ins have it as their peer).
/// Whether `fd` is one of the stack's stand-ins: its peer is the stack, or it is
/// a TCP stand-in not yet connected or listening, bound to a name of the stack's.
pub fn stack_made(fd: libc::c_int) -> bool {
    let Some(stack) = stack_pid() else {
        return false;
    };
    match crate::sys::peer_pid(fd) {
        Some(p) if p == stack => true,
        Some(p) if p > 0 => false,
        _ => crate::sys::abstract_name_starts_with(fd, format!("netcell.{stack}.").as_bytes()),
    }
}

pub fn stack_pid() -> Option<i32> {
    let p = STACK_PID.load(Ordering::Relaxed);
    if p != 0 {
        return Some(p);
    }
    // Make a connection to learn it.
    let c = open().ok()?;
    give_back(c);
    let p = STACK_PID.load(Ordering::Relaxed);
    (p != 0).then_some(p)
}

fn warn_once(e: c_int) {
    if !WARNED.swap(true, Ordering::Relaxed) {
        let path = CONTROL
            .get()
            .and_then(|p| p.as_ref())
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default();
        let msg = format!(
            "netcell: cannot reach the container's stack at {path}: {}; INET sockets fail with EACCES\n",
            std::io::Error::from_raw_os_error(e)
        );
        // SAFETY: writing a valid buffer to stderr.
        unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
    }
}

fn open() -> Result<Conn, c_int> {
    let path = CONTROL.get().and_then(|p| p.as_ref()).ok_or(libc::ENOSYS)?;
    let fd = sys::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0)?;
    if let Err(e) = sys::connect_unix(fd, path) {
        sys::close(fd);
        warn_once(e);
        return Err(e);
    }
    let fd = sys::move_fd_up(fd, 200);
    let ino = sys::socket_inode(fd).unwrap_or(0);
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() } as u32;
    let mut c = Conn {
        fd,
        ino,
        pid,
        seq: 0,
    };
    if let Some(p) = sys::peer_pid(fd) {
        STACK_PID.store(p, Ordering::Relaxed);
    }
    let hello = exchange(&mut c, 0, &Request::Hello { pid }, None, 0);
    match hello {
        Ok(r) if r.errno == 0 => {
            if let Some(page) = r.fd {
                if r.flags & proto::reply_flags::GENERATION != 0 && GENERATION.get().is_none() {
                    let _ = GENERATION.set(sys::map_words(page, 1).map(|w| &w[0]));
                }
                sys::close(page);
            }
            // The stack process answers with its pid; stand-ins have it as peer.
            if r.value != 0 {
                STACK_PID.store(r.value as i32, Ordering::Relaxed);
            }
            Ok(c)
        }
        Ok(r) => {
            sys::close(c.fd);
            Err(r.errno)
        }
        Err(e) => {
            sys::close(c.fd);
            Err(e)
        }
    }
}

fn take() -> Result<Conn, c_int> {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() } as u32;
    if let Ok(mut pool) = POOL.try_lock() {
        while let Some(c) = pool.pop() {
            if c.pid != me {
                // Inherited from the parent across fork: our copy of its fd,
                // unless the child put something else on that number.
                if sys::socket_inode(c.fd) == Some(c.ino) {
                    sys::close(c.fd);
                }
                continue;
            }
            if sys::socket_inode(c.fd) != Some(c.ino) {
                // The program closed it and the number now names something else.
                continue;
            }
            return Ok(c);
        }
    }
    open()
}

fn give_back(c: Conn) {
    match POOL.try_lock() {
        Ok(mut pool) if pool.len() < 16 => pool.push(c),
        _ => sys::close(c.fd),
    }
}

/// The stack's grants generation now, if it offers grants.
pub fn generation() -> Option<u64> {
    GENERATION
        .get()
        .copied()
        .flatten()
        .map(|g| g.load(Ordering::Acquire))
}

/// Posts `msg`, an encoded [`Request::Post`]: sent without waiting for an
/// answer (there is none), on the connection the thread's requests use, so that
/// its later requests (a `shutdown`, an option, another datagram asked for) come
/// after it, as on Linux. `Err(EAGAIN)` when the connection is full, or any
/// error reaching the stack: the caller then asks the usual way — on the same
/// connection, behind the posts, and waiting — so a sender that outruns the
/// stack slows to its pace and its datagrams keep their order.
pub fn post(msg: &[u8]) -> Result<(), c_int> {
    let c = take()?;
    match sys::send_nb(c.fd, msg) {
        Ok(_) => {
            give_back(c);
            Ok(())
        }
        Err(libc::EAGAIN) => {
            give_back(c);
            Err(libc::EAGAIN)
        }
        Err(e) => {
            sys::close(c.fd);
            Err(e)
        }
    }
}

/// Sends `req` about socket `sock`, a request the stack does not answer
/// ([`proto::Op::answered`]), on the connection the thread's requests use (so it
/// is served before the thread's later requests), waiting for room when the
/// connection is full.
pub fn tell(sock: u64, req: &Request<'_>) -> Result<(), c_int> {
    debug_assert!(!req.op().answered());
    let mut c = take()?;
    let mut buf = [0u8; MAX_MESSAGE];
    match send_request(&mut c, sock, req, &mut buf, None) {
        Ok(_) => {
            give_back(c);
            Ok(())
        }
        Err(e) => {
            sys::close(c.fd);
            Err(e)
        }
    }
}

/// Numbers `req` about socket `sock` as the connection's next request, encodes
/// it into `buf` and sends it (with `send_fd`).
fn send_request(
    c: &mut Conn,
    sock: u64,
    req: &Request<'_>,
    buf: &mut [u8],
    send_fd: Option<c_int>,
) -> Result<(), c_int> {
    c.seq = c.seq.wrapping_add(1);
    let n = proto::encode_request(RequestHeader { seq: c.seq, sock }, req, buf)
        .map_err(|_| libc::EINVAL)?;
    sys::send_with_fd(c.fd, &buf[..n], send_fd).map(|_| ())
}

/// A reply, owned.
pub struct Response {
    pub errno: c_int,
    pub value: u32,
    pub flags: u32,
    pub data: [u8; MAX_MESSAGE],
    pub len: usize,
    pub fd: Option<c_int>,
}

impl Response {
    pub fn data(&self) -> &[u8] {
        &self.data[..self.len]
    }
}

fn exchange(
    c: &mut Conn,
    sock: u64,
    req: &Request<'_>,
    send_fd: Option<c_int>,
    rx_flags: c_int,
) -> Result<Response, c_int> {
    let mut small = [0u8; MAX_MESSAGE];
    let mut big;
    let buf: &mut [u8] = match req {
        // A datagram or a piece of a table does not fit the usual buffer (nor a
        // thread's stack).
        Request::SendTo { payload, .. } | Request::Table { data: payload, .. }
            if payload.len() > MAX_MESSAGE / 2 =>
        {
            big = vec![0u8; payload.len() + 1024];
            &mut big
        }
        _ => &mut small,
    };
    send_request(c, sock, req, buf, send_fd)?;
    let mut rbuf = [0u8; MAX_MESSAGE];
    let got = loop {
        match sys::recv_with_fd(c.fd, &mut rbuf, libc::MSG_CMSG_CLOEXEC | rx_flags) {
            Ok(g) => break g,
            // The request is out: the reply must be read, signal or not.
            Err(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
    };
    if got.len == 0 || got.truncated {
        if let Some(fd) = got.fd {
            sys::close(fd);
        }
        return Err(libc::ENETDOWN);
    }
    let reply = match proto::decode_reply(&rbuf[..got.len]) {
        Ok(r) if r.seq == c.seq => r,
        _ => {
            if let Some(fd) = got.fd {
                sys::close(fd);
            }
            return Err(libc::EPROTO);
        }
    };
    let mut out = Response {
        errno: reply.errno,
        value: reply.value,
        flags: reply.flags,
        data: [0; MAX_MESSAGE],
        len: reply.data.len(),
        fd: got.fd,
    };
    out.data[..reply.data.len()].copy_from_slice(reply.data);
    Ok(out)
}

/// Sends one request about socket `sock` (a stand-in inode, or 0) and returns the
/// reply. `send_fd` rides along as `SCM_RIGHTS`. A failure to reach the stack is
/// `Err(errno)`: `EACCES` if the stack cannot be reached at all, `ENETDOWN` if it
/// went away mid-call.
pub fn call(sock: u64, req: &Request<'_>, send_fd: Option<c_int>) -> Result<Response, c_int> {
    let mut c = take().map_err(|_| libc::EACCES)?;
    match exchange(&mut c, sock, req, send_fd, 0) {
        Ok(r) => {
            give_back(c);
            Ok(r)
        }
        Err(e) => {
            sys::close(c.fd);
            Err(if e == libc::EPROTO { e } else { libc::ENETDOWN })
        }
    }
}
