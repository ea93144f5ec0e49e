//! The packet sockets' mirror: `tcpdump` inside a container.
//!
//! # Theory of operation
//!
//! A program's `socket(AF_PACKET, ...)` gets a real kernel packet socket, made in
//! a network namespace of netcell's (the *mirror*) whose devices copy the
//! container's: `lo` at index 1, and for each other interface a veth device
//! with the container's name, index and hardware address. Every frame the stack
//! receives or sends is handed to the mirror while a program holds a packet
//! socket, so the kernel shows the program the container's traffic — and only
//! it — with everything libpcap uses (`PACKET_RX_RING` rings and `mmap`,
//! `SO_ATTACH_FILTER` programs, `PACKET_ADD_MEMBERSHIP`, statistics, `poll`),
//! natively and at the kernel's speed; netcell then serves no call on the
//! socket. Indexes are the container's, so what the program learns from the
//! container's `SIOCGIFINDEX` or netlink binds the right mirror device.
//!
//! Each veth's peer lives in a second namespace (the *back*), where `-i any`
//! cannot see it. Frames the container receives are sent on the peer, so they
//! arrive on the mirror device (`PACKET_HOST`, `_BROADCAST`, `_OTHERHOST` as on
//! the wire); frames it sends are sent on the mirror device itself, so sniffers
//! see them leave (`PACKET_OUTGOING`); `lo`'s are sent on the mirror's `lo`,
//! which shows each once, as Linux's does. The mirror's own stack stays silent:
//! its devices have no addresses (`lo`'s loopback address is removed), IPv6 is
//! off and ARP too.
//!
//! A frame a program sends on its packet socket leaves the mirror device and
//! reaches the peer, where netcell reads it and puts it on the container's
//! device. Netcell's own copies of sent frames arrive there too; they are
//! recognised (length and a hash, in order) and dropped.
//!
//! The namespaces are made by a helper (`netcell __mirror`), started on the first
//! packet socket: in a new user namespace when netcell is not root (it is then
//! root of it, and so may make devices and packet sockets there), made
//! non-dumpable so that no other process of the user can enter them. It makes
//! the devices, hands netcell its sockets, and then makes the programs' packet
//! sockets on request (`CAP_NET_RAW` of the caller is checked by the stack first,
//! as Linux does) and lists the live ones (`/proc/net/packet`), which is how
//! netcell learns that programs closed theirs and stops copying frames.

use netcell_stack::packet::{Mirror, MirrorIface};
use netcell_sys as sys;
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// Packet sockets programs may hold at once, per container.
pub const MAX_PACKET_SOCKETS: usize = 64;
/// How often netcell asks which packet sockets are still open.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Netcell's copies of sent frames awaited back, per interface.
const MAX_ECHOES: usize = 1024;
/// The mirror devices' MTU: the largest frames the container's devices pass
/// (merged by offload) must fit.
const MIRROR_MTU: u32 = 65535;
/// Frames read back from the peers per call (the rest wait for the next turn).
const SENT_PER_TURN: usize = 256;
/// The largest frame read back from a peer.
const MAX_FRAME: usize = 65536 + 64;

const ETH_P_ALL: u16 = 0x0003;
const SOL_PACKET: i32 = 263;
const PACKET_IGNORE_OUTGOING: i32 = 23;

/// Which of netcell's sockets a setup message carries.
const KIND_LO: u8 = b'l';
const KIND_TX: u8 = b't';
const KIND_RX: u8 = b'r';

/// The helper's answer: the descriptors it sent (each with its message), and
/// the message that ended the answer.
type Answer = (Vec<(Vec<u8>, OwnedFd)>, Vec<u8>);

/// The helper's process and its socket.
struct Helper {
    pid: u32,
    sock: OwnedFd,
}

impl Helper {
    fn start() -> io::Result<Helper> {
        let (ours, theirs) = sys::seqpacket_pair()?;
        let exe = std::env::current_exe()?;
        let raw = theirs.as_raw_fd();
        let cmd = sys::spawn::Command::new(
            exe.as_os_str(),
            &["__mirror".into(), raw.to_string().into()],
            &[],
        )
        .map_err(|e| io::Error::other(e.to_string()))?;
        let spawned = cmd
            .spawn_keeping(None, Some(raw))
            .map_err(|e| io::Error::other(e.to_string()))?;
        drop(theirs);
        Ok(Helper {
            pid: spawned.pid,
            sock: ours,
        })
    }

    /// Sends a request, then collects reply messages until one that is not a
    /// descriptor: the descriptors (with their message) and that last message.
    fn ask(&self, req: &[u8]) -> io::Result<Answer> {
        sys::send_with_fd(self.sock.as_fd(), req, None)?;
        let mut fds = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if !sys::wait_readable(self.sock.as_fd(), 10_000) {
                return Err(io::Error::from_raw_os_error(libc::ETIMEDOUT));
            }
            let r = sys::recv_with_fds(self.sock.as_fd(), &mut buf)?;
            if r.len == 0 {
                return Err(io::Error::from_raw_os_error(libc::ECONNRESET));
            }
            let msg = buf[..r.len].to_vec();
            match (msg[0], r.fds.into_iter().next()) {
                (b'F', Some(fd)) => fds.push((msg, fd)),
                (b'E', _) if msg.len() >= 5 => {
                    let e = i32::from_ne_bytes(msg[1..5].try_into().unwrap_or_default());
                    let why = String::from_utf8_lossy(&msg[5..]).into_owned();
                    log::warn!("mirror: {why}");
                    return Err(io::Error::from_raw_os_error(e));
                }
                _ => return Ok((fds, msg)),
            }
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = sys::kill(self.pid, libc::SIGKILL);
        // Reaped here, so that it is not taken for a process the container
        // left behind.
        for _ in 0..200 {
            if !matches!(sys::spawn::try_wait(self.pid), Ok(None)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Netcell's side of the mirror (see the module docs).
pub struct PacketMirror {
    helper: Option<Helper>,
    /// Why the mirror could not be made (asked once).
    failed: Option<i32>,
    ifaces: Vec<MirrorIface>,
    /// Per interface number: the socket frames are sent on as the container
    /// sends them (`lo`'s for `lo`), and the peer's socket.
    tx: Vec<Option<OwnedFd>>,
    rx: Vec<Option<OwnedFd>>,
    /// Inodes of netcell's own packet sockets in the mirror.
    own: Vec<u64>,
    /// Inodes of the programs' open packet sockets.
    programs: Vec<u64>,
    checked: Instant,
    /// Per interface: netcell's copies of sent frames not yet read back.
    echoes: Vec<VecDeque<(usize, u64)>>,
    /// Where the peers' sockets are watched; the event loop watches it.
    poll: mio::Poll,
    events: mio::Events,
    buf: Vec<u8>,
    /// Where frames read back from the peers go.
    rbuf: Vec<u8>,
    /// Frames that could not be handed to the mirror (its queues full).
    dropped: u64,
}

impl PacketMirror {
    /// A mirror, made on the first packet socket. The event loop watches
    /// [`PacketMirror::fd`] and then calls the stack's
    /// `send_packet_socket_frames`.
    pub fn new() -> io::Result<PacketMirror> {
        Ok(PacketMirror {
            helper: None,
            failed: None,
            ifaces: Vec::new(),
            tx: Vec::new(),
            rx: Vec::new(),
            own: Vec::new(),
            programs: Vec::new(),
            checked: Instant::now(),
            echoes: Vec::new(),
            poll: mio::Poll::new()?,
            events: mio::Events::with_capacity(16),
            buf: Vec::with_capacity(MAX_FRAME),
            rbuf: Vec::new(),
            dropped: 0,
        })
    }

    /// What the event loop watches.
    pub fn fd(&self) -> RawFd {
        self.poll.as_raw_fd()
    }

    /// Starts the helper and makes the devices.
    fn make(&mut self, ifaces: &[MirrorIface]) -> io::Result<()> {
        let helper = Helper::start()?;
        let mut req = vec![b'S', ifaces.len() as u8];
        for i in ifaces {
            req.extend_from_slice(&i.index.to_ne_bytes());
            req.push(u8::from(i.mac.is_some()));
            req.extend_from_slice(&i.mac.unwrap_or([0; 6]));
            let n = i.name.as_bytes();
            req.push(n.len() as u8);
            req.extend_from_slice(n);
        }
        let (fds, _) = helper.ask(&req)?;
        let n = ifaces.len();
        self.tx = (0..n).map(|_| None).collect();
        self.rx = (0..n).map(|_| None).collect();
        self.echoes = (0..n).map(|_| VecDeque::new()).collect();
        for (msg, fd) in fds {
            let (kind, index) = (
                msg[1],
                u32::from_ne_bytes(msg[2..6].try_into().unwrap_or_default()),
            );
            let Some(at) = ifaces.iter().position(|i| i.index == index) else {
                continue;
            };
            sys::set_nonblocking(fd.as_fd(), true)?;
            if let Ok((ino, _)) = sys::inode(fd.as_fd()) {
                self.own.push(ino);
            }
            match kind {
                KIND_LO | KIND_TX => self.tx[at] = Some(fd),
                KIND_RX => {
                    self.poll.registry().register(
                        &mut mio::unix::SourceFd(&fd.as_raw_fd()),
                        mio::Token(at),
                        mio::Interest::READABLE,
                    )?;
                    self.rx[at] = Some(fd);
                }
                _ => {}
            }
        }
        self.ifaces = ifaces.to_vec();
        self.helper = Some(helper);
        log::info!("mirror: made for {n} interfaces");
        Ok(())
    }

    /// The programs' packet sockets that are still open.
    fn refresh(&mut self) {
        self.checked = Instant::now();
        let Some(h) = &self.helper else {
            return;
        };
        match h.ask(b"L") {
            Ok((_, msg)) if msg.first() == Some(&b'I') => {
                self.programs = msg[1..]
                    .chunks_exact(8)
                    .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or_default()))
                    .filter(|i| !self.own.contains(i))
                    .collect();
            }
            Ok(_) => {}
            Err(e) => log::warn!("mirror: cannot list packet sockets: {e}"),
        }
    }
}

/// A cheap identity of a frame: its length and a hash of its start and end.
fn fingerprint(f: &[u8]) -> (usize, u64) {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let head = &f[..f.len().min(96)];
    let tail = &f[f.len().saturating_sub(32)..];
    for &b in head.iter().chain(tail) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (f.len(), h)
}

impl Mirror for PacketMirror {
    fn open(&mut self, ifaces: &[MirrorIface], ty: i32, protocol: i32) -> Result<OwnedFd, i32> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if self.helper.is_none()
            && let Err(e) = self.make(ifaces)
        {
            log::warn!(
                "mirror: cannot make the namespaces of the packet sockets ({e}); \
                 packet sockets fail with EPERM"
            );
            self.failed = Some(libc::EPERM);
            self.helper = None;
            return Err(libc::EPERM);
        }
        self.refresh();
        if self.programs.len() >= MAX_PACKET_SOCKETS {
            netcell_stack::warn_limited!(
                "mirror: {MAX_PACKET_SOCKETS} packet sockets are open: ENOBUFS"
            );
            return Err(libc::ENOBUFS);
        }
        let mut req = vec![b'O'];
        req.extend_from_slice(&ty.to_ne_bytes());
        req.extend_from_slice(&protocol.to_ne_bytes());
        let h = self.helper.as_ref().ok_or(libc::EPERM)?;
        match h.ask(&req) {
            Ok((mut fds, _)) if !fds.is_empty() => {
                let (_, fd) = fds.remove(0);
                if let Ok((ino, _)) = sys::inode(fd.as_fd()) {
                    self.programs.push(ino);
                }
                Ok(fd)
            }
            Ok(_) => Err(libc::EPROTO),
            Err(e) => Err(e.raw_os_error().unwrap_or(libc::EPROTO)),
        }
    }

    fn owns(&self, ino: u64) -> bool {
        self.programs.contains(&ino)
    }

    fn active(&self) -> bool {
        !self.programs.is_empty()
    }

    fn frame(&mut self, iface: usize, outbound: bool, data: &[u8]) {
        let Some(i) = self.ifaces.get(iface) else {
            return;
        };
        let frame: &[u8] = if i.mac.is_some() {
            data
        } else {
            // An IP packet: behind an Ethernet header with zero addresses, as
            // Linux's `lo` shows its packets.
            let ty: [u8; 2] = match data.first().map(|v| v >> 4) {
                Some(6) => [0x86, 0xdd],
                _ => [0x08, 0x00],
            };
            self.buf.clear();
            self.buf.extend_from_slice(&[0; 12]);
            self.buf.extend_from_slice(&ty);
            self.buf.extend_from_slice(data);
            &self.buf
        };
        // `lo` (index 1) shows each packet once: sent on the mirror's `lo`.
        let fd = if outbound || i.index == 1 {
            self.tx.get(iface)
        } else {
            self.rx.get(iface)
        };
        let Some(Some(fd)) = fd else {
            return;
        };
        match sys::send_nb(fd.as_fd(), frame, 0) {
            Ok(_) if outbound && i.index != 1 => {
                let q = &mut self.echoes[iface];
                if q.len() >= MAX_ECHOES {
                    q.pop_front();
                }
                q.push_back(fingerprint(frame));
            }
            Ok(_) => {}
            Err(_) => self.dropped += 1,
        }
    }

    fn flush(&mut self) {
        if !self.programs.is_empty() && self.checked.elapsed() >= CHECK_EVERY {
            self.refresh();
            if self.programs.is_empty() {
                log::debug!("mirror: no packet socket is open; frames are not copied");
            }
        }
    }

    fn take_sent(&mut self, out: &mut dyn FnMut(usize, &[u8])) -> bool {
        // Empties the ready list, so that the event loop hears of new frames.
        let _ = self.poll.poll(&mut self.events, Some(Duration::ZERO));
        let mut buf = std::mem::take(&mut self.rbuf);
        buf.resize(MAX_FRAME, 0);
        let mut budget = SENT_PER_TURN;
        let mut more = false;
        for at in 0..self.rx.len() {
            let Some(fd) = &self.rx[at] else {
                continue;
            };
            loop {
                if budget == 0 {
                    more = true;
                    break;
                }
                let Ok(n) = sys::read(fd.as_fd(), &mut buf) else {
                    break;
                };
                budget -= 1;
                let f = &buf[..n];
                let q = &mut self.echoes[at];
                let fp = fingerprint(f);
                if let Some(k) = q.iter().position(|e| *e == fp) {
                    // Netcell's copy (those before it were lost on the way).
                    q.drain(..=k);
                    continue;
                }
                out(at, f);
            }
        }
        self.rbuf = buf;
        more
    }
}

// ---- the helper ----------------------------------------------------------

/// `netcell __mirror FD`: makes the mirror's namespaces and serves netcell on
/// socket `fd` until it goes away.
pub fn helper_main(fd: i32) -> Result<i32, String> {
    let sock = sys::take_inherited(fd).map_err(|e| format!("fd {fd}: {e}"))?;
    sys::netns::guard_helper().map_err(|e| e.to_string())?;
    let (shadow, back) = namespaces().map_err(|e| format!("cannot make the namespaces: {e}"))?;
    let mut buf = vec![0u8; 4096];
    loop {
        if !sys::wait_readable(sock.as_fd(), -1) {
            continue;
        }
        let r = match sys::recv_with_fds(sock.as_fd(), &mut buf) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(_) => return Ok(0),
        };
        if r.len == 0 {
            return Ok(0);
        }
        let req = &buf[..r.len];
        let reply = match req[0] {
            b'S' => setup(&sock, &shadow, &back, &req[1..]),
            b'O' if req.len() >= 9 => {
                let ty = i32::from_ne_bytes(req[1..5].try_into().unwrap_or_default());
                let proto = i32::from_ne_bytes(req[5..9].try_into().unwrap_or_default());
                match sys::netns::socket(libc::AF_PACKET, ty, proto) {
                    Ok(s) => send_fd(&sock, 0, 0, &s).map_err(|e| (e, String::new())),
                    Err(e) => Err((e, String::new())),
                }
            }
            b'L' => {
                let mut m = vec![b'I'];
                for ino in packet_inodes() {
                    m.extend_from_slice(&ino.to_ne_bytes());
                }
                sys::send_with_fd(sock.as_fd(), &m, None)
                    .map(drop)
                    .map_err(|e| (e, String::new()))
            }
            _ => Err((
                io::Error::from_raw_os_error(libc::EINVAL),
                "unknown request".into(),
            )),
        };
        let done = match reply {
            Ok(()) if req[0] == b'L' => continue,
            Ok(()) => b"K".to_vec(),
            Err((e, why)) => {
                let mut m = vec![b'E'];
                m.extend_from_slice(&e.raw_os_error().unwrap_or(libc::EIO).to_ne_bytes());
                m.extend_from_slice(why.as_bytes());
                m
            }
        };
        if sys::send_with_fd(sock.as_fd(), &done, None).is_err() {
            return Ok(0);
        }
    }
}

/// Enters a user namespace of its own (unless root), then makes the mirror's
/// network namespace and the back one; returns in the mirror's.
fn namespaces() -> io::Result<(std::fs::File, std::fs::File)> {
    if sys::euid() != 0 {
        let (uid, gid) = sys::netns::ids();
        sys::netns::unshare(libc::CLONE_NEWUSER)?;
        // Only a dumpable process may write its maps; non-dumpable again right
        // after.
        sys::netns::set_dumpable(true)?;
        let maps = (|| {
            std::fs::write("/proc/self/setgroups", "deny")?;
            std::fs::write("/proc/self/uid_map", format!("0 {uid} 1"))?;
            std::fs::write("/proc/self/gid_map", format!("0 {gid} 1"))
        })();
        sys::netns::set_dumpable(false)?;
        maps?;
    }
    sys::netns::unshare(libc::CLONE_NEWNET)?;
    quiet();
    let shadow = std::fs::File::open("/proc/self/ns/net")?;
    sys::netns::unshare(libc::CLONE_NEWNET)?;
    quiet();
    let back = std::fs::File::open("/proc/self/ns/net")?;
    sys::netns::setns(shadow.as_fd(), libc::CLONE_NEWNET)?;
    Ok((shadow, back))
}

/// Turns IPv6 off for the namespace's devices to come (no addresses, no
/// neighbour discovery: the mirror sends nothing of its own).
fn quiet() {
    for k in ["all", "default"] {
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{k}/disable_ipv6"), "1");
    }
}

fn send_fd(sock: &OwnedFd, kind: u8, index: u32, fd: &OwnedFd) -> io::Result<()> {
    let mut m = vec![b'F', kind];
    m.extend_from_slice(&index.to_ne_bytes());
    sys::send_with_fd(sock.as_fd(), &m, Some(fd.as_fd())).map(drop)
}

type Failed = (io::Error, String);

/// Makes the devices of the setup request and hands netcell its sockets.
fn setup(
    sock: &OwnedFd,
    shadow: &std::fs::File,
    back: &std::fs::File,
    mut b: &[u8],
) -> Result<(), Failed> {
    let ctx = |what: String| move |e: io::Error| (e, what);
    let mut nl = Netlink::open().map_err(ctx("netlink".into()))?;
    nl.set_up(1).map_err(ctx("lo up".into()))?;
    // The mirror's `lo` keeps no address: packets copied to it go nowhere.
    let _ = nl.del_loopback_address();
    let lo =
        sys::netns::socket(libc::AF_PACKET, libc::SOCK_RAW, 0).map_err(ctx("socket".into()))?;
    sys::netns::bind_packet(lo.as_fd(), 1, 0).map_err(ctx("bind lo".into()))?;
    send_fd(sock, KIND_LO, 1, &lo).map_err(ctx("send".into()))?;
    let n = *b.first().unwrap_or(&0);
    b = b.get(1..).unwrap_or(&[]);
    for _ in 0..n {
        if b.len() < 12 {
            return Err((
                io::Error::from_raw_os_error(libc::EINVAL),
                "short setup".into(),
            ));
        }
        let index = u32::from_ne_bytes(b[..4].try_into().unwrap_or_default());
        let has_mac = b[4] != 0;
        let mut mac: [u8; 6] = b[5..11].try_into().unwrap_or_default();
        let len = b[11] as usize;
        let name = String::from_utf8_lossy(b.get(12..12 + len).unwrap_or(&[])).into_owned();
        b = b.get(12 + len..).unwrap_or(&[]);
        if index == 1 {
            continue;
        }
        if !has_mac {
            // An IP-medium interface: a locally administered address of its own.
            mac = [0x02, 0, 0, 0, 0, index as u8];
        }
        let peer = format!("m{index}");
        nl.add_veth(&name, index, mac, &peer, back.as_raw_fd())
            .map_err(ctx(format!("veth {name}")))?;
        nl.set_up(index).map_err(ctx(format!("{name} up")))?;
        let tx =
            sys::netns::socket(libc::AF_PACKET, libc::SOCK_RAW, 0).map_err(ctx("socket".into()))?;
        sys::netns::bind_packet(tx.as_fd(), index as i32, 0)
            .map_err(ctx(format!("bind {name}")))?;
        send_fd(sock, KIND_TX, index, &tx).map_err(ctx("send".into()))?;
        // The peer's socket, made in the back namespace.
        sys::netns::setns(back.as_fd(), libc::CLONE_NEWNET).map_err(ctx("setns".into()))?;
        let rx = (|| {
            let pi =
                sys::if_index(&peer).ok_or_else(|| io::Error::from_raw_os_error(libc::ENODEV))?;
            Netlink::open()?.set_up(pi)?;
            let s = sys::netns::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW,
                i32::from(ETH_P_ALL.to_be()),
            )?;
            sys::netns::bind_packet(s.as_fd(), pi as i32, ETH_P_ALL.to_be())?;
            sys::setsockopt_raw(
                s.as_fd(),
                SOL_PACKET,
                PACKET_IGNORE_OUTGOING,
                &1i32.to_ne_bytes(),
            )?;
            Ok::<_, io::Error>(s)
        })();
        sys::netns::setns(shadow.as_fd(), libc::CLONE_NEWNET).map_err(ctx("setns".into()))?;
        let rx = rx.map_err(ctx(format!("peer of {name}")))?;
        send_fd(sock, KIND_RX, index, &rx).map_err(ctx("send".into()))?;
    }
    Ok(())
}

/// The inodes of the packet sockets of this namespace.
fn packet_inodes() -> Vec<u64> {
    std::fs::read_to_string("/proc/self/net/packet")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().last()?.parse().ok())
        .collect()
}

/// A `NETLINK_ROUTE` socket of the helper's.
struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

const RTM_NEWLINK: u16 = 16;
const RTM_DELADDR: u16 = 21;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_ADDRESS: u16 = 1;

fn attr(b: &mut Vec<u8>, ty: u16, data: &[u8]) {
    b.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
    b.extend_from_slice(&ty.to_ne_bytes());
    b.extend_from_slice(data);
    b.resize((b.len() + 3) & !3, 0);
}

fn nest(b: &mut Vec<u8>, ty: u16, f: impl FnOnce(&mut Vec<u8>)) {
    let at = b.len();
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&ty.to_ne_bytes());
    f(b);
    let len = (b.len() - at) as u16;
    b[at..at + 2].copy_from_slice(&len.to_ne_bytes());
}

/// `struct ifinfomsg` of interface `index` with `flags` (all of them changed).
fn ifinfo(b: &mut Vec<u8>, index: u32, flags: u32) {
    b.extend_from_slice(&[0, 0, 0, 0]); // family, pad, type
    b.extend_from_slice(&(index as i32).to_ne_bytes());
    b.extend_from_slice(&flags.to_ne_bytes());
    b.extend_from_slice(&flags.to_ne_bytes()); // change
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

impl Netlink {
    fn open() -> io::Result<Netlink> {
        let fd = sys::netns::socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE)?;
        Ok(Netlink { fd, seq: 0 })
    }

    /// Sends one request and waits for its acknowledgement.
    fn request(&mut self, ty: u16, flags: u16, body: &[u8]) -> io::Result<()> {
        self.seq += 1;
        let mut m = Vec::with_capacity(16 + body.len());
        m.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        m.extend_from_slice(&self.seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(body);
        sys::write(self.fd.as_fd(), &m)?;
        let mut r = [0u8; 4096];
        let n = sys::read(self.fd.as_fd(), &mut r)?;
        // NLMSG_ERROR (2): the errno, negated (0: acknowledged).
        if n >= 20 && u16::from_ne_bytes([r[4], r[5]]) == 2 {
            let e = i32::from_ne_bytes([r[16], r[17], r[18], r[19]]);
            if e != 0 {
                return Err(io::Error::from_raw_os_error(-e));
            }
        }
        Ok(())
    }

    fn set_up(&mut self, index: u32) -> io::Result<()> {
        let mut b = Vec::new();
        ifinfo(&mut b, index, libc::IFF_UP as u32);
        self.request(RTM_NEWLINK, 0, &b)
    }

    fn del_loopback_address(&mut self) -> io::Result<()> {
        // struct ifaddrmsg: family, prefix length, flags, scope, index.
        let mut b = vec![libc::AF_INET as u8, 8, 0, 0];
        b.extend_from_slice(&1u32.to_ne_bytes());
        attr(&mut b, IFA_LOCAL, &[127, 0, 0, 1]);
        attr(&mut b, IFA_ADDRESS, &[127, 0, 0, 1]);
        self.request(RTM_DELADDR, 0, &b)
    }

    /// A veth pair: `name` here, with index `index` and address `mac`, without
    /// ARP; `peer` in the namespace `peer_ns`, likewise. (Both are brought up
    /// afterwards: a veth cannot go up before its pair is complete.)
    fn add_veth(
        &mut self,
        name: &str,
        index: u32,
        mac: [u8; 6],
        peer: &str,
        peer_ns: RawFd,
    ) -> io::Result<()> {
        let flags = libc::IFF_NOARP as u32;
        let mut b = Vec::new();
        ifinfo(&mut b, index, flags);
        attr(&mut b, IFLA_IFNAME, &cstr(name));
        attr(&mut b, IFLA_ADDRESS, &mac);
        attr(&mut b, IFLA_MTU, &MIRROR_MTU.to_ne_bytes());
        nest(&mut b, IFLA_LINKINFO, |b| {
            attr(b, IFLA_INFO_KIND, b"veth");
            nest(b, IFLA_INFO_DATA, |b| {
                nest(b, VETH_INFO_PEER, |b| {
                    ifinfo(b, 0, flags);
                    attr(b, IFLA_IFNAME, &cstr(peer));
                    attr(b, IFLA_MTU, &MIRROR_MTU.to_ne_bytes());
                    attr(b, IFLA_NET_NS_FD, &(peer_ns as u32).to_ne_bytes());
                });
            });
        });
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &b)
    }
}
