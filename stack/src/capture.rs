//! Sniffing to a file: every frame of every interface as pcapng (`--pcap FILE`),
//! which tcpdump, tshark and Wireshark read, with each interface's name.
//!
//! The packet path never waits for the file: frames are appended to a buffer in
//! memory (no syscall per frame); a full buffer, or one [`FLUSH_AFTER`] old, is
//! handed to the capture's own writer thread, which writes it out and returns it
//! to a small pool. When every buffer of the pool is waiting to be written (the
//! file or the reader is slower than the traffic), a frame is not recorded and
//! counted as dropped (`netcell stats`); the stack never waits.
//!
//! What is recorded, as Linux's capture points see it: a frame arriving on a
//! device before the packet filter looks at it, a frame leaving once the filter
//! has let it go, and on `lo` each packet once (as it is sent). Every interface
//! is recorded as Ethernet: IP-medium ones (`lo`, the host uplink) get an
//! Ethernet header with zero addresses, as Linux's `lo` shows in tcpdump —
//! libpcap refuses a file whose interfaces have different link types. Frames
//! merged by TSO offload are recorded as they crossed the device (up to 64 KiB),
//! as tcpdump shows them on Linux.

use smoltcp::phy::Medium;
use std::io::{self, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The size of one buffer (a frame larger than this is not recorded).
pub const BUFFER: usize = 1 << 20;
/// Buffers of the `--pcap` file's pool (what may wait to be written).
pub const FILE_BUFFERS: usize = 8;
/// Buffers of a live capture's pool.
pub const LIVE_BUFFERS: usize = 2;
/// A buffer is handed to the writer once its oldest frame is this old.
pub const FLUSH_AFTER: Duration = Duration::from_millis(200);

const LINKTYPE_ETHERNET: u16 = 1;

/// Counters of a capture.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Frames recorded.
    pub frames: u64,
    /// Frames not recorded (the buffer was full).
    pub dropped: u64,
    /// Bytes written out.
    pub written: u64,
    /// Write errors (a capture stops at its first).
    pub errors: u64,
}

impl CaptureStats {
    fn add(&mut self, o: CaptureStats) {
        self.frames += o.frames;
        self.dropped += o.dropped;
        self.written += o.written;
        self.errors += o.errors;
    }
}

/// The writer thread of one capture: buffers go to it full and come back empty.
struct Writer {
    full: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    empty: std::sync::mpsc::Receiver<Vec<u8>>,
    failed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    written: std::sync::Arc<std::sync::atomic::AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Buffers made so far (at most the pool's size).
    made: usize,
}

impl Writer {
    fn start(mut out: Box<dyn Write + Send>, live: bool, pool: usize) -> io::Result<Writer> {
        use std::sync::atomic::Ordering;
        let (full, to_write) = std::sync::mpsc::sync_channel::<Vec<u8>>(pool);
        let (give_back, empty) = std::sync::mpsc::sync_channel::<Vec<u8>>(pool);
        let failed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let written = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (f, w) = (failed.clone(), written.clone());
        let thread = std::thread::Builder::new()
            .name("netcell-capture".into())
            .spawn(move || {
                for mut b in to_write {
                    if let Err(e) = out.write_all(&b).and_then(|()| out.flush()) {
                        if live {
                            log::info!("capture: the reader went away ({e}); capture stops");
                        } else {
                            log::warn!(
                                "capture: cannot write the capture file: {e}; capture stops"
                            );
                        }
                        f.store(true, Ordering::Relaxed);
                        return;
                    }
                    w.fetch_add(b.len() as u64, Ordering::Relaxed);
                    b.clear();
                    let _ = give_back.try_send(b);
                }
            })?;
        Ok(Writer {
            full: Some(full),
            empty,
            failed,
            written,
            thread: Some(thread),
            made: 1,
        })
    }
}

/// One destination of frames: the `--pcap` file, or a live `netcell capture`.
struct Sink {
    writer: Writer,
    pool: usize,
    /// Per interface: its frames are IP packets (an Ethernet header is added).
    raw_ip: Vec<bool>,
    /// Only this interface (`-i DEV`), else all.
    only: Option<usize>,
    /// Only frames this expression selects.
    expr: Option<Expr>,
    /// A live capture's connection to its client: when the client goes, so
    /// does the capture.
    lifeline: Option<std::os::fd::OwnedFd>,
    /// The buffer being filled (`None`: every buffer waits to be written).
    buf: Option<Vec<u8>>,
    since: Option<Instant>,
    stats: CaptureStats,
    failed: bool,
}

/// The captures of a stack's interfaces (none, the `--pcap` file, live ones).
#[derive(Default)]
pub struct Capture {
    sinks: Vec<Sink>,
    /// Counters of the captures that ended.
    ended: CaptureStats,
    /// The packet sockets' mirror, which takes every frame while a program holds
    /// a packet socket (see [`crate::packet`]).
    mirror: Option<Box<dyn crate::packet::Mirror>>,
}

/// The most captures at once per container.
pub const MAX_CAPTURES: usize = 8;

fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

fn option(buf: &mut Vec<u8>, code: u16, value: &[u8]) {
    buf.extend_from_slice(&code.to_ne_bytes());
    buf.extend_from_slice(&(value.len() as u16).to_ne_bytes());
    buf.extend_from_slice(value);
    buf.resize(pad4(buf.len()), 0);
}

/// Appends a block of type `ty` whose body `body` writes.
fn block(buf: &mut Vec<u8>, ty: u32, body: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(&[0; 4]);
    body(buf);
    buf.resize(start + pad4(buf.len() - start), 0);
    let total = (buf.len() - start + 4) as u32;
    buf.extend_from_slice(&total.to_ne_bytes());
    buf[start + 4..start + 8].copy_from_slice(&total.to_ne_bytes());
}

impl Sink {
    fn new(
        out: Box<dyn Write + Send>,
        ifaces: &[(String, bool)],
        only: Option<usize>,
        expr: Option<Expr>,
        lifeline: Option<std::os::fd::OwnedFd>,
        pool: usize,
    ) -> io::Result<Sink> {
        let writer = Writer::start(out, lifeline.is_some(), pool)?;
        let mut buf = Vec::with_capacity(BUFFER);
        // Section header: byte-order magic, version 1.0, length unknown.
        block(&mut buf, 0x0A0D_0D0A, |b| {
            b.extend_from_slice(&0x1A2B_3C4Du32.to_ne_bytes());
            b.extend_from_slice(&1u16.to_ne_bytes());
            b.extend_from_slice(&0u16.to_ne_bytes());
            b.extend_from_slice(&(-1i64).to_ne_bytes());
            option(b, 4, b"netcell");
            option(b, 0, &[]);
        });
        for (name, _) in ifaces {
            block(&mut buf, 1, |b| {
                b.extend_from_slice(&LINKTYPE_ETHERNET.to_ne_bytes());
                b.extend_from_slice(&0u16.to_ne_bytes());
                b.extend_from_slice(&0u32.to_ne_bytes()); // no snap length
                option(b, 2, name.as_bytes()); // if_name
                option(b, 0, &[]);
            });
        }
        Ok(Sink {
            writer,
            pool,
            raw_ip: ifaces.iter().map(|(_, e)| !e).collect(),
            only,
            expr,
            lifeline,
            buf: Some(buf),
            since: Some(Instant::now()),
            stats: CaptureStats::default(),
            failed: false,
        })
    }

    /// Hands the current buffer to the writer and takes an empty one (from the
    /// pool, or a new one while the pool is not all made).
    fn hand_off(&mut self) {
        let Some(b) = self.buf.take() else {
            self.buf = self.spare();
            return;
        };
        if b.is_empty() {
            self.buf = Some(b);
            return;
        }
        match self.writer.full.as_ref().map(|f| f.try_send(b)) {
            Some(Ok(())) => {}
            Some(Err(std::sync::mpsc::TrySendError::Full(b))) => {
                // Cannot happen (as many slots as buffers); keep what it holds.
                self.buf = Some(b);
                return;
            }
            _ => {
                self.failed = true;
                return;
            }
        }
        self.since = None;
        self.buf = self.spare();
    }

    fn spare(&mut self) -> Option<Vec<u8>> {
        match self.writer.empty.try_recv() {
            Ok(b) => Some(b),
            Err(_) if self.writer.made < self.pool => {
                self.writer.made += 1;
                Some(Vec::with_capacity(BUFFER))
            }
            Err(_) => None,
        }
    }

    fn frame(&mut self, iface: usize, outbound: bool, data: &[u8], t: u64) {
        if self.only.is_some_and(|o| o != iface) {
            return;
        }
        let raw = self.raw_ip.get(iface).copied().unwrap_or(false);
        if let Some(e) = &self.expr {
            let medium = if raw { Medium::Ip } else { Medium::Ethernet };
            if !e.selects(medium, data) {
                return;
            }
        }
        // Enhanced packet block: 28 bytes of header, the data padded, the
        // direction flags option (12), the end marker (4) and the trailer (4).
        let len = data.len() + if raw { 14 } else { 0 };
        let need = 28 + pad4(len) + 12 + 4 + 4;
        if self.buf.as_ref().is_none_or(|b| b.len() + need > BUFFER) {
            self.hand_off();
        }
        let Some(buf) = self.buf.as_mut().filter(|b| b.len() + need <= BUFFER) else {
            self.stats.dropped += 1;
            return;
        };
        block(buf, 6, |b| {
            b.extend_from_slice(&(iface as u32).to_ne_bytes());
            b.extend_from_slice(&((t >> 32) as u32).to_ne_bytes());
            b.extend_from_slice(&(t as u32).to_ne_bytes());
            b.extend_from_slice(&(len as u32).to_ne_bytes());
            b.extend_from_slice(&(len as u32).to_ne_bytes());
            if raw {
                let ty: [u8; 2] = match data.first().map(|v| v >> 4) {
                    Some(6) => [0x86, 0xdd],
                    _ => [0x08, 0x00],
                };
                b.extend_from_slice(&[0; 12]);
                b.extend_from_slice(&ty);
            }
            b.extend_from_slice(data);
            b.resize(pad4(b.len()), 0);
            // epb_flags: inbound 1, outbound 2.
            let flags: u32 = if outbound { 2 } else { 1 };
            option(b, 2, &flags.to_ne_bytes());
            option(b, 0, &[]);
        });
        self.stats.frames += 1;
        self.since.get_or_insert_with(Instant::now);
    }

    fn flush(&mut self, force: bool) {
        use std::sync::atomic::Ordering;
        if let Some(l) = &self.lifeline
            && crate::sys::wait_readable(std::os::fd::AsFd::as_fd(l), 0)
        {
            // The client hung up (or sent something it should not): done.
            self.failed = true;
        }
        if self.writer.failed.load(Ordering::Relaxed) {
            if !self.failed {
                self.stats.errors += 1;
            }
            self.failed = true;
        }
        self.stats.written = self.writer.written.load(Ordering::Relaxed);
        let due = force || self.since.is_some_and(|s| s.elapsed() >= FLUSH_AFTER);
        if !self.failed && due {
            self.hand_off();
        }
    }

    /// Ends the capture: what is buffered is written (and, for the file, waited
    /// for, so that it is complete when netcell exits).
    fn finish(mut self) {
        if !self.failed {
            self.hand_off();
        }
        self.writer.full = None;
        if let Some(t) = self.writer.thread.take()
            && self.lifeline.is_none()
        {
            let _ = t.join();
        }
    }
}

impl Capture {
    /// Starts a capture into `out` of interfaces `ifaces` (name, Ethernet or
    /// not), in index order: every frame (`--pcap`).
    pub fn start(out: Box<dyn Write + Send>, ifaces: &[(String, bool)]) -> io::Result<Capture> {
        let mut c = Capture::default();
        c.sinks
            .push(Sink::new(out, ifaces, None, None, None, FILE_BUFFERS)?);
        Ok(c)
    }

    /// Adds a live capture: frames of interface `only` (or all) that `expr`
    /// selects (or all), into `out`, while `lifeline` stays open. Its pool is
    /// smaller than a file's ([`LIVE_BUFFERS`]): a reader that falls behind
    /// loses frames, the stack never waits.
    pub fn add_live(
        &mut self,
        out: Box<dyn Write + Send>,
        ifaces: &[(String, bool)],
        only: Option<usize>,
        expr: Option<Expr>,
        lifeline: std::os::fd::OwnedFd,
    ) -> Result<(), String> {
        self.sinks.retain(|s| !s.failed);
        if self.sinks.len() >= MAX_CAPTURES {
            return Err(format!("{MAX_CAPTURES} captures run already"));
        }
        let sink = Sink::new(out, ifaces, only, expr, Some(lifeline), LIVE_BUFFERS)
            .map_err(|e| format!("cannot start the capture's writer: {e}"))?;
        self.sinks.push(sink);
        Ok(())
    }

    /// Whether frames are being recorded (or mirrored).
    pub fn active(&self) -> bool {
        !self.sinks.is_empty() || self.mirror.as_ref().is_some_and(|m| m.active())
    }

    /// Serves programs' packet sockets with `mirror` from now on.
    pub fn set_mirror(&mut self, mirror: Box<dyn crate::packet::Mirror>) {
        self.mirror = Some(mirror);
    }

    /// Ends the packet sockets' mirror (programs' packet sockets see nothing
    /// more).
    pub fn end_mirror(&mut self) {
        self.mirror = None;
    }

    /// The packet sockets' mirror, if there is one.
    pub fn mirror_mut(&mut self) -> Option<&mut (dyn crate::packet::Mirror + 'static)> {
        self.mirror.as_deref_mut()
    }

    /// Whether the socket with inode `ino` is a program's packet socket.
    pub fn owns_packet_socket(&self, ino: u64) -> bool {
        self.mirror.as_ref().is_some_and(|m| m.owns(ino))
    }

    /// Counters, of every capture so far.
    pub fn stats(&self) -> CaptureStats {
        let mut t = self.ended;
        for s in &self.sinks {
            t.add(s.stats);
        }
        t
    }

    /// Live captures running.
    pub fn live(&self) -> usize {
        self.sinks.iter().filter(|s| s.lifeline.is_some()).count()
    }

    /// Records one frame of interface `iface` (`outbound`: sent by the stack).
    pub fn frame(&mut self, iface: usize, outbound: bool, data: &[u8]) {
        if let Some(m) = self.mirror.as_mut().filter(|m| m.active()) {
            m.frame(iface, outbound, data);
        }
        self.record(iface, outbound, data);
    }

    /// Records one frame in the captures only (not the mirror: a frame a
    /// program sent on a packet socket, which the mirror has seen).
    pub fn record(&mut self, iface: usize, outbound: bool, data: &[u8]) {
        if self.sinks.is_empty() {
            return;
        }
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        for s in &mut self.sinks {
            if !s.failed {
                s.frame(iface, outbound, data, t);
            }
        }
    }

    /// How long the event loop may wait before [`Capture::flush`] is due.
    pub fn flush_in(&self) -> Option<Duration> {
        let live = self.sinks.iter().any(|s| s.lifeline.is_some());
        let since = self.sinks.iter().filter_map(|s| s.since).min();
        match (since, live) {
            (Some(t), _) => Some(FLUSH_AFTER.saturating_sub(t.elapsed())),
            // A live capture's client is checked for even without traffic.
            (None, true) => Some(FLUSH_AFTER),
            (None, false) => None,
        }
    }

    /// Writes out what is due (`force`: everything), and ends the captures that
    /// failed or whose client went away.
    pub fn flush(&mut self, force: bool) {
        if let Some(m) = self.mirror.as_mut() {
            m.flush();
        }
        for s in &mut self.sinks {
            s.flush(force);
        }
        let mut i = 0;
        while i < self.sinks.len() {
            if self.sinks[i].failed {
                let s = self.sinks.remove(i);
                self.ended.add(s.stats);
                s.finish();
            } else {
                i += 1;
            }
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        for s in self.sinks.drain(..) {
            s.finish();
        }
    }
}

/// A tcpdump-like capture expression: `host A`, `src|dst host A`, `net CIDR`,
/// `src|dst net CIDR`, `port N`, `src|dst port N`, `portrange A-B`, `tcp`, `udp`,
/// `icmp`, `icmp6`, `ip`, `ip6`, `arp`, combined with `and`/`&&` (or just side
/// by side, as `tcp port 80`), `or`/`||`, `not`/`!` and parentheses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// Both.
    And(Box<Expr>, Box<Expr>),
    /// Either.
    Or(Box<Expr>, Box<Expr>),
    /// Not.
    Not(Box<Expr>),
    /// An address is (`Some(true)`: the source; `Some(false)`: the
    /// destination; `None`: either) in the prefix.
    Net(Option<bool>, smoltcp::wire::IpCidr),
    /// A port in the range (direction as for `Net`).
    Port(Option<bool>, u16, u16),
    /// An IP protocol number.
    Proto(u8),
    /// IPv4 (`ip`) or IPv6 (`ip6`).
    Version(u8),
    /// ARP.
    Arp,
}

impl Expr {
    /// Parses an expression from its words.
    pub fn parse(words: &[&str]) -> Result<Expr, String> {
        let mut toks: Vec<String> = Vec::new();
        for w in words {
            // Parentheses and `!` may stick to words: `(tcp`, `!arp`.
            let mut w = *w;
            while let Some(r) = w.strip_prefix('(') {
                toks.push("(".into());
                w = r;
            }
            let mut close = 0;
            while let Some(r) = w.strip_suffix(')') {
                close += 1;
                w = r;
            }
            if let Some(r) = w.strip_prefix('!').filter(|r| !r.is_empty()) {
                toks.push("!".into());
                w = r;
            }
            if !w.is_empty() {
                toks.push(w.to_string());
            }
            toks.extend(std::iter::repeat_n(")".to_string(), close));
        }
        if toks.len() > 256 {
            return Err("an expression of at most 256 words".into());
        }
        let mut at = 0;
        let e = or_expr(&toks, &mut at, 0)?;
        match toks.get(at) {
            None => Ok(e),
            Some(t) => Err(format!("'{t}' is not expected there")),
        }
    }

    /// Whether the expression selects `frame` (of a device of `medium`).
    pub fn selects(&self, medium: Medium, frame: &[u8]) -> bool {
        let arp = medium == Medium::Ethernet && frame.get(12..14) == Some(&[0x08, 0x06][..]);
        let p = crate::filter::packet::parse(medium, frame);
        self.eval(arp, p.as_ref())
    }

    fn eval(&self, arp: bool, p: Option<&crate::filter::packet::Pkt>) -> bool {
        use smoltcp::wire::IpAddress;
        match self {
            Expr::And(a, b) => a.eval(arp, p) && b.eval(arp, p),
            Expr::Or(a, b) => a.eval(arp, p) || b.eval(arp, p),
            Expr::Not(a) => !a.eval(arp, p),
            Expr::Arp => arp,
            Expr::Version(v) => p.is_some_and(|p| match p.src {
                IpAddress::Ipv4(_) => *v == 4,
                IpAddress::Ipv6(_) => *v == 6,
            }),
            Expr::Proto(n) => p.is_some_and(|p| p.proto == *n),
            Expr::Net(dir, c) => p.is_some_and(|p| match dir {
                Some(true) => c.contains_addr(&p.src),
                Some(false) => c.contains_addr(&p.dst),
                None => c.contains_addr(&p.src) || c.contains_addr(&p.dst),
            }),
            Expr::Port(dir, lo, hi) => p.is_some_and(|p| {
                let ports = matches!(p.proto, 6 | 17 | 132) && !p.fragment;
                let inr = |x: u16| (*lo..=*hi).contains(&x);
                ports
                    && match dir {
                        Some(true) => inr(p.sport),
                        Some(false) => inr(p.dport),
                        None => inr(p.sport) || inr(p.dport),
                    }
            }),
        }
    }
}

fn or_expr(t: &[String], at: &mut usize, depth: usize) -> Result<Expr, String> {
    let mut e = and_expr(t, at, depth)?;
    while matches!(t.get(*at).map(String::as_str), Some("or" | "||")) {
        *at += 1;
        e = Expr::Or(Box::new(e), Box::new(and_expr(t, at, depth)?));
    }
    Ok(e)
}

fn and_expr(t: &[String], at: &mut usize, depth: usize) -> Result<Expr, String> {
    let mut e = unary(t, at, depth)?;
    loop {
        match t.get(*at).map(String::as_str) {
            Some("and" | "&&") => *at += 1,
            // Juxtaposition is `and`, as in tcpdump's `tcp port 80`.
            Some(w) if !matches!(w, "or" | "||" | ")") => {}
            _ => return Ok(e),
        }
        e = Expr::And(Box::new(e), Box::new(unary(t, at, depth)?));
    }
}

fn unary(t: &[String], at: &mut usize, depth: usize) -> Result<Expr, String> {
    if depth > 32 {
        return Err("parentheses nest at most 32 deep".into());
    }
    let w = t.get(*at).ok_or("the expression ends too early")?.as_str();
    *at += 1;
    let next = |at: &mut usize, what: &str| -> Result<String, String> {
        let v = t.get(*at).ok_or(format!("{what} expected at the end"))?;
        *at += 1;
        Ok(v.clone())
    };
    let addr = |s: &str| -> Result<smoltcp::wire::IpCidr, String> {
        let (a, len) = match s.split_once('/') {
            Some((a, l)) => (
                a,
                Some(
                    l.parse::<u8>()
                        .map_err(|_| format!("'{s}' is not a prefix"))?,
                ),
            ),
            None => (s, None),
        };
        let ip: smoltcp::wire::IpAddress = a
            .parse()
            .map_err(|_| format!("'{s}' is not an address (names are not resolved)"))?;
        let max = if matches!(ip, smoltcp::wire::IpAddress::Ipv4(_)) {
            32
        } else {
            128
        };
        let len = len.unwrap_or(max);
        if len > max {
            return Err(format!("'{s}': a prefix of {len} bits"));
        }
        Ok(crate::iface::network(&smoltcp::wire::IpCidr::new(ip, len)))
    };
    let port = |s: &str| -> Result<(u16, u16), String> {
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let p = |x: &str| {
            x.parse::<u16>()
                .map_err(|_| format!("'{s}' is not a port or range"))
        };
        let (a, b) = (p(a)?, p(b)?);
        if a > b {
            return Err(format!("'{s}': the range runs backwards"));
        }
        Ok((a, b))
    };
    let prim = |w: &str, dir: Option<bool>, at: &mut usize| -> Result<Expr, String> {
        match w {
            "host" => Ok(Expr::Net(dir, addr(&next(at, "an address")?)?)),
            "net" => Ok(Expr::Net(dir, addr(&next(at, "a prefix")?)?)),
            "port" | "portrange" => {
                let (a, b) = port(&next(at, "a port")?)?;
                Ok(Expr::Port(dir, a, b))
            }
            o => Err(format!("'{o}' is not host, net, port or portrange")),
        }
    };
    match w {
        "(" => {
            let e = or_expr(t, at, depth + 1)?;
            if t.get(*at).map(String::as_str) != Some(")") {
                return Err("')' expected".into());
            }
            *at += 1;
            Ok(e)
        }
        "not" | "!" => Ok(Expr::Not(Box::new(unary(t, at, depth + 1)?))),
        "src" | "dst" => {
            let kind = next(at, "host, net or port")?;
            prim(&kind, Some(w == "src"), at)
        }
        "host" | "net" | "port" | "portrange" => prim(w, None, at),
        "tcp" => Ok(Expr::Proto(6)),
        "udp" => Ok(Expr::Proto(17)),
        "icmp" => Ok(Expr::Proto(1)),
        "icmp6" => Ok(Expr::Proto(58)),
        "ip" => Ok(Expr::Version(4)),
        "ip6" => Ok(Expr::Version(6)),
        "arp" => Ok(Expr::Arp),
        o => Err(format!(
            "'{o}' is not a capture term (host, net, port, portrange, src, dst, tcp, udp, icmp, icmp6, ip, ip6, arp, and, or, not)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_ne_bytes(b[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn blocks_are_well_formed_and_full_buffers_drop() {
        let out = Shared::default();
        let mut c = Capture::start(
            Box::new(out.clone()),
            &[("lo".into(), false), ("eth0".into(), true)],
        )
        .unwrap();
        c.frame(1, false, &[0xab; 61]);
        c.frame(0, true, &[0x45; 20]);
        assert_eq!(c.stats().frames, 2);
        drop(c);
        let b = out.0.lock().unwrap().clone();
        // Walk the blocks: each length is a multiple of 4, repeated at its end.
        let mut at = 0;
        let mut types = Vec::new();
        while at < b.len() {
            let (ty, len) = (u32_at(&b, at), u32_at(&b, at + 4) as usize);
            assert_eq!(len % 4, 0);
            assert_eq!(u32_at(&b, at + len - 4) as usize, len);
            types.push(ty);
            at += len;
        }
        assert_eq!(at, b.len());
        assert_eq!(types, [0x0A0D_0D0A, 1, 1, 6, 6]);
        // A writer that cannot keep up: the pool runs dry and frames drop.
        struct Stuck;
        impl Write for Stuck {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                std::thread::sleep(Duration::from_secs(3600));
                Ok(0)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut c = Capture::default();
        c.add_live(
            Box::new(Stuck),
            &[("lo".into(), false)],
            None,
            None,
            a.into(),
        )
        .unwrap();
        for _ in 0..(LIVE_BUFFERS * BUFFER / 65536 + 40) {
            c.frame(0, true, &[0; 65536]);
        }
        assert!(c.stats().dropped >= 1, "{:?}", c.stats());
        // Ending does not wait for a live capture's stuck reader.
        drop(c);
    }

    #[test]
    fn expressions_select_like_tcpdump() {
        let syn = [
            0x45u8, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 88, 0, 2, 10, 88, 0, 1, 0x9c, 0x40,
            0x1f, 0x90, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0x10, 0, 0, 0, 0, 0,
        ];
        let sel = |e: &str| {
            let w: Vec<&str> = e.split_whitespace().collect();
            Expr::parse(&w).unwrap().selects(Medium::Ip, &syn)
        };
        assert!(sel("tcp"));
        assert!(sel("tcp and dst port 8080"));
        assert!(sel("tcp dst port 8080"), "juxtaposition is and");
        assert!(!sel("src port 8080"));
        assert!(sel("host 10.88.0.1 and (port 8080 or port 53)"));
        assert!(sel("net 10.88.0.0/16 and not udp"));
        assert!(!sel("!tcp"));
        assert!(sel("src host 10.88.0.2 && portrange 8000-8100"));
        assert!(!sel("ip6 or arp"));
        for bad in [
            "host",
            "port x",
            "tcp and",
            "(tcp",
            "frob",
            "host example.com",
        ] {
            let w: Vec<&str> = bad.split_whitespace().collect();
            assert!(Expr::parse(&w).is_err(), "{bad}");
        }
    }
}
