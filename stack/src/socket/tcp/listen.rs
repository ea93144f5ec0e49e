//! Listening: the backlog smoltcp does not have (see the module docs of
//! [`super`]): armed sockets per address, embryos, connections ready for `accept`
//! and records in flight to the listener's stand-in; the ingress hook's decision on
//! every SYN.

use super::*;

/// How long a half-open connection waits for the handshake's last ACK.
const SYN_RECV_TIMEOUT: Duration = Duration::from_secs(60);

/// Addresses per listener for which a spare armed socket is kept.
const MAX_HOT: usize = 32;

pub(super) struct Armed {
    pub(super) iface: IfaceId,
    pub(super) addr: IpAddress,
    pub(super) handle: SocketHandle,
    pub(super) claimed: bool,
}

pub(super) struct Embryo {
    pub(super) iface: IfaceId,
    pub(super) handle: SocketHandle,
    pub(super) remote: Option<IpEndpoint>,
}

/// The backlog machinery of a listening socket.
pub(crate) struct Listener {
    pub(super) backlog: usize,
    pub(super) armed: Vec<Armed>,
    pub(super) embryos: Vec<Embryo>,
    /// Established, not yet accepted; with the program's end of the stand-in when the
    /// listener has one.
    pub(super) ready: VecDeque<(SocketId, Option<OwnedFd>)>,
    /// Connections of published ports: host sockets the host accepted, each with
    /// its record (see [`crate::publish`]).
    pub(super) published: VecDeque<(AcceptRecord, OwnedFd)>,
    pub(super) inflight: usize,
    pub(super) claimed: usize,
    pub(super) hot: Vec<(IfaceId, IpAddress)>,
    pub(super) wants: Vec<(IfaceId, IpAddress)>,
}

impl Listener {
    pub(super) fn new(backlog: usize) -> Self {
        Listener {
            backlog,
            armed: Vec::new(),
            embryos: Vec::new(),
            ready: VecDeque::new(),
            published: VecDeque::new(),
            inflight: 0,
            claimed: 0,
            hot: Vec::new(),
            wants: Vec::new(),
        }
    }

    /// Linux's accept queue admits `backlog + 1`.
    pub(super) fn capacity(&self) -> usize {
        self.backlog + 1
    }

    pub(super) fn load(&self) -> usize {
        self.embryos.len() + self.ready.len() + self.published.len() + self.inflight
    }
}

/// Sends one accept record and its connection into a listener's stand-in: true
/// when it went; false when the stand-in is full, or gone (then marked hung up).
fn offer(
    si: &mut StandIn,
    id: SocketId,
    rec: &AcceptRecord,
    fd: std::os::fd::BorrowedFd<'_>,
) -> bool {
    match si.deliver(rec, fd) {
        Ok(sent) => sent,
        Err(e) => {
            log::debug!("tcp: listener {} stand-in gone: {e}", id.index());
            si.hup = true;
            false
        }
    }
}

/// Measures the kernel memory (`SIOCOUTQ`) one accept record with its fd occupies in
/// a stand-in, so that records in flight can be counted. 768 bytes on Linux 6.x.
pub(super) fn measure_record_truesize() -> usize {
    let measure = || -> std::io::Result<usize> {
        let (a, _b) = sys::stream_pair()?;
        let (x, _y) = sys::stream_pair()?;
        let rec = AcceptRecord {
            local: ([0; RECORD_SOCKADDR], 0),
            peer: ([0; RECORD_SOCKADDR], 0),
        };
        sys::send_with_fd(a.as_fd(), &rec.encode(), Some(x.as_fd()))?;
        sys::outq(a.as_fd())
    };
    match measure() {
        Ok(n) if n > 0 => n,
        _ => 768,
    }
}

impl Sockets {
    /// A listener stops: half-open and unaccepted connections are reset (as Linux
    /// does when a listener closes), the port stays bound (the socket may listen
    /// again) until the socket goes.
    pub(super) fn stop_listening(&mut self, ifs: &mut Interfaces, id: SocketId) {
        let Some(s) = self.get_mut(id) else { return };
        let Proto::Tcp(TcpState::Listening(l)) =
            std::mem::replace(&mut s.proto, Proto::Tcp(TcpState::Closed { failed: None }))
        else {
            return;
        };
        if let Some((port, b)) = s.binding {
            self.tcp.ports.set_state(port, b, BindState::Idle);
            if let Some(v) = self.tcp.listeners.get_mut(&port) {
                v.retain(|x| *x != id);
                if v.is_empty() {
                    self.tcp.listeners.remove(&port);
                }
            }
        }
        for a in l.armed {
            remove_sock(ifs, a.iface, a.handle);
        }
        let now = Instant::from_millis(0);
        for e in l.embryos {
            self.reset_unbound(ifs, e.iface, e.handle, now);
        }
        for (cid, _) in l.ready {
            if let Some(Proto::Tcp(TcpState::Connected(c))) = self.get(cid).map(|s| &s.proto) {
                sock(ifs, c.iface, c.handle).abort();
            }
            self.orphan(cid, now, true);
        }
    }

    /// Closes the listeners on `port` whose program closed them a moment ago
    /// (their hang-up not yet seen by the event loop): `close()` is synchronous on
    /// Linux, so a local connect right after it must find no listener there.
    pub(super) fn close_hung_up_listeners(&mut self, ifs: &mut Interfaces, port: u16) {
        let Some(ids) = self.tcp.listeners.get(&port).cloned() else {
            return;
        };
        for lid in ids {
            let gone = self
                .get_mut(lid)
                .and_then(|s| s.standin.as_mut())
                .is_some_and(|si| si.hup || sys::hung_up(si.fd.as_fd()));
            if gone {
                self.stop_listening(ifs, lid);
                self.drop_socket(ifs, lid);
            }
        }
    }

    pub(super) fn service_listener(
        &mut self,
        ifs: &mut Interfaces,
        id: SocketId,
        now: Instant,
    ) -> bool {
        let mut scratch = std::mem::take(&mut self.tcp.scratch);
        let gone = match self.get_mut(id).and_then(|s| s.standin.as_mut()) {
            Some(si) if si.shut_for_listening => si.hup,
            Some(si) => {
                if si.readable {
                    si.discard_input(scratch.get());
                }
                si.hup || si.app_eof
            }
            None => false,
        };
        self.tcp.scratch = scratch;
        if gone {
            self.stop_listening(ifs, id);
            self.drop_socket(ifs, id);
            return true;
        }
        let Some(s) = self.get_mut(id) else {
            return false;
        };
        let Proto::Tcp(TcpState::Listening(mut l)) =
            std::mem::replace(&mut s.proto, Proto::Tcp(TcpState::Closed { failed: None }))
        else {
            return false;
        };
        let mut standin = s.standin.take();
        let domain = s.domain;
        let opts = s.opts.clone();
        let Some((port, _)) = s.binding else {
            return false;
        };
        let reuse = Self::reuse(s);
        let mut progress = false;

        // Armed sockets that took a SYN become embryos.
        let mut i = 0;
        while i < l.armed.len() {
            let a = &mut l.armed[i];
            let sk = sock(ifs, a.iface, a.handle);
            match sk.state() {
                // Back to LISTEN after a RST in SYN-RECEIVED, smoltcp keeps what it
                // took from that SYN (no window scaling, its MSS, timestamps off):
                // such a socket is replaced, not reused (a new one is armed, and
                // `listen` resets it).
                State::Listen if sk.timestamp_enabled() && !a.claimed => {
                    a.claimed = false;
                    i += 1;
                }
                State::Listen | State::Closed => {
                    remove_sock(ifs, a.iface, a.handle);
                    l.armed.swap_remove(i);
                }
                _ => {
                    let remote = sk.remote_endpoint();
                    // Its four-tuple is known now: to its shard, when home is full.
                    let handle = ifs.get_mut(a.iface).sockets.place(a.handle);
                    l.embryos.push(Embryo {
                        iface: a.iface,
                        handle,
                        remote,
                    });
                    l.armed.swap_remove(i);
                    progress = true;
                }
            }
        }
        l.claimed = 0;

        // Embryos whose handshake completed become connections.
        let mut i = 0;
        while i < l.embryos.len() {
            let e = &l.embryos[i];
            let state = sock(ifs, e.iface, e.handle).state();
            match state {
                State::SynReceived => i += 1,
                State::Closed | State::Listen | State::TimeWait => {
                    remove_sock(ifs, e.iface, e.handle);
                    l.embryos.swap_remove(i);
                }
                _ => {
                    let e = l.embryos.swap_remove(i);
                    if let Some(ready) =
                        self.promote(ifs, &e, domain, &opts, port, reuse, standin.is_some(), now)
                    {
                        l.ready.push_back(ready);
                    }
                    progress = true;
                }
            }
        }

        // Hand connections to the program.
        if let Some(si) = standin.as_mut() {
            let mut delivered = false;
            while si.writable {
                let Some((rec, fd)) = l.published.front() else {
                    break;
                };
                if !offer(si, id, rec, fd.as_fd()) {
                    break;
                }
                l.published.pop_front();
                progress = true;
                delivered = true;
            }
            while si.writable {
                let Some((cid, Some(fd))) = l.ready.front() else {
                    break;
                };
                let Some(rec) = self.record(*cid) else {
                    l.ready.pop_front();
                    continue;
                };
                if !offer(si, id, &rec, fd.as_fd()) {
                    break;
                }
                // Whoever accepts it most likely holds the listener too.
                let owner = si.owner.map(|o| Owner { fd: None, ..o });
                if let Some((cid, _)) = l.ready.pop_front()
                    && let Some(c) = self.get_mut(cid).and_then(|c| c.standin.as_mut())
                {
                    c.owner = owner;
                    c.awaiting_accept = true;
                }
                progress = true;
                delivered = true;
            }
            // Records still in the stand-in count against the backlog. Nothing to
            // ask the kernel when none were there and none were added.
            if delivered || l.inflight > 0 {
                l.inflight =
                    sys::outq(si.fd.as_fd()).map_or(0, |q| q.div_ceil(self.tcp.record_truesize));
            }
        }

        // Arm a socket for every address that wants one while the backlog has room.
        for w in l.wants.drain(..) {
            if !l.hot.contains(&w) {
                if l.hot.len() >= MAX_HOT {
                    l.hot.remove(0);
                }
                l.hot.push(w);
            }
        }
        let room = l.capacity().saturating_sub(l.load());
        if room > 0 {
            for &(iface, addr) in &l.hot {
                if !l.armed.iter().any(|a| a.iface == iface && a.addr == addr) {
                    let Some(mut smol) = self.new_smol(ifs, &opts, true) else {
                        break;
                    };
                    smol.set_timeout(Some(SYN_RECV_TIMEOUT));
                    if smol
                        .listen(IpListenEndpoint {
                            addr: Some(addr),
                            port,
                        })
                        .is_ok()
                    {
                        let handle = ifs.get_mut(iface).sockets.add(smol);
                        l.armed.push(Armed {
                            iface,
                            addr,
                            handle,
                            claimed: false,
                        });
                        progress = true;
                    }
                }
            }
        }

        if let Some(s) = self.get_mut(id) {
            s.proto = Proto::Tcp(TcpState::Listening(l));
            s.standin = standin;
        }
        progress
    }

    /// Makes an established embryo a socket of the table.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn promote(
        &mut self,
        ifs: &mut Interfaces,
        e: &Embryo,
        domain: addr::Domain,
        opts: &options::Options,
        port: u16,
        reuse: Reuse,
        with_standin: bool,
        now: Instant,
    ) -> Option<(SocketId, Option<OwnedFd>)> {
        let sk = sock(ifs, e.iface, e.handle);
        opts.apply(sk);
        if !opts.keepalive && opts.user_timeout_ms == 0 {
            sk.set_timeout(None);
        }
        let (Some(local), Some(remote)) = (sk.local_endpoint(), sk.remote_endpoint()) else {
            remove_sock(ifs, e.iface, e.handle);
            return None;
        };
        let local = SocketAddr::from(local);
        let remote = SocketAddr::from(remote);
        let (standin, program_end) = if with_standin {
            match sys::stream_pair().and_then(|(ours, theirs)| {
                let (ino, _) = sys::inode(theirs.as_fd())?;
                Ok((StandIn::new(ours, ino), theirs))
            }) {
                Ok((si, theirs)) => (Some(si), Some(theirs)),
                Err(err) => {
                    log::warn!(
                        "tcp: cannot make a stand-in for a connection from {remote}: {err}; resetting it"
                    );
                    self.reset_unbound(ifs, e.iface, e.handle, now);
                    return None;
                }
            }
        } else {
            (None, None)
        };
        let binding = self
            .tcp
            .ports
            .insert(port, local.ip(), false, reuse, BindState::Idle);
        let id = self.insert(Socket {
            domain,
            opts: opts.clone(),
            local: Some(local),
            binding: Some((port, binding)),
            autobound: false,
            error: 0,
            markers: true,
            standin,
            unpaired: None,
            proto: Proto::Tcp(TcpState::Connected(Conn {
                iface: e.iface,
                handle: e.handle,
                remote,
                deadline: now,
                we_closed: false,
                remote_fin: false,
                reset_reported: false,
                rd_shut: false,
                unreported: false,
            })),
            cookie: 0,
        });
        self.tcp.turn.list(id, e.iface, e.handle);
        log::debug!("tcp: accepted {remote} -> {local} as socket {}", id.index());
        Some((id, program_end))
    }

    pub(super) fn record(&self, id: SocketId) -> Option<AcceptRecord> {
        let s = self.get(id)?;
        let remote = match &s.proto {
            Proto::Tcp(TcpState::Connected(c)) => c.remote,
            Proto::Tcp(TcpState::Spliced(sp)) => sp.remote,
            _ => return None,
        };
        let mut local = [0u8; addr::MAX_ENCODED];
        let mut peer = [0u8; addr::MAX_ENCODED];
        let ll = addr::encode(s.domain, s.local?, &mut local);
        let pl = addr::encode(s.domain, remote, &mut peer);
        Some(AcceptRecord {
            local: (local, ll as u32),
            peer: (peer, pl as u32),
        })
    }

    /// The listener a connection to `dst` on `port` reaches: one bound to `dst`
    /// itself, else a wildcard one of its family (an IPv6 one takes IPv4 unless
    /// `IPV6_V6ONLY`).
    pub(super) fn listener_for(&self, port: u16, dst: IpAddr) -> Option<SocketId> {
        let list = self.tcp.listeners.get(&port)?;
        let mut best = None;
        for &lid in list {
            let Some(s) = self.get(lid) else { continue };
            let Some(local) = s.local else { continue };
            let ip = local.ip();
            if ip == dst {
                return Some(lid);
            }
            let family_ok = match (ip, dst) {
                (IpAddr::V4(a), IpAddr::V4(_)) => a.is_unspecified(),
                (IpAddr::V6(a), IpAddr::V6(_)) => a.is_unspecified(),
                (IpAddr::V6(a), IpAddr::V4(_)) => a.is_unspecified() && !s.opts.v6only,
                (IpAddr::V4(_), IpAddr::V6(_)) => false,
            };
            if family_ok && best.is_none() {
                best = Some(lid);
            }
        }
        best
    }

    /// Decides on every received TCP SYN (see the module docs).
    pub(crate) fn tcp_admit(&mut self, iface: IfaceId, pkt: &PacketInfo) -> Verdict {
        if pkt.proto != IpProtocol::Tcp || !pkt.syn || pkt.ack {
            return Verdict::Accept;
        }
        let Some(lid) = self.listener_for(pkt.dst_port, pkt.dst.into()) else {
            return Verdict::Accept;
        };
        let Some(s) = self.get_mut(lid) else {
            return Verdict::Accept;
        };
        let Proto::Tcp(TcpState::Listening(l)) = &mut s.proto else {
            return Verdict::Accept;
        };
        let remote = IpEndpoint::new(pkt.src, pkt.src_port);
        if l.embryos
            .iter()
            .any(|e| e.iface == iface && e.remote == Some(remote))
        {
            return Verdict::Drop;
        }
        if l.load() + l.claimed >= l.capacity() {
            return Verdict::Drop;
        }
        // The container's limits: a SYN that would take it past them is dropped
        // (the peer retries), as a kernel short of memory does.
        if self.pending_over_limits("SYN dropped") {
            return Verdict::Drop;
        }
        let Some(s) = self.get_mut(lid) else {
            return Verdict::Accept;
        };
        let Proto::Tcp(TcpState::Listening(l)) = &mut s.proto else {
            return Verdict::Accept;
        };
        if let Some(a) = l
            .armed
            .iter_mut()
            .find(|a| a.iface == iface && a.addr == pkt.dst && !a.claimed)
        {
            a.claimed = true;
            l.claimed += 1;
            return Verdict::Accept;
        }
        if !l.wants.contains(&(iface, pkt.dst)) {
            l.wants.push((iface, pkt.dst));
        }
        Verdict::Defer
    }

    /// Whether one more pending connection would take the container past its
    /// limits: buffers spent, too many sockets, too many pending connections.
    /// `refused` says in the log what is refused then.
    pub(super) fn pending_over_limits(&self, refused: &str) -> bool {
        if self.tcp.buffers_spent.get() {
            return true;
        }
        let mut pending = 0;
        for lid in self.tcp.listeners.values().flatten() {
            if let Some(Socket {
                proto: Proto::Tcp(TcpState::Listening(l)),
                ..
            }) = self.get(*lid)
            {
                pending += l.load() + l.claimed;
            }
        }
        if pending >= self.cfg.max_pending || self.live + pending >= self.cfg.max_sockets {
            crate::socket::budget::log_limit(format_args!(
                "{pending} connections pending, {} sockets (--max-pending, --max-sockets): {refused}",
                self.live
            ));
            return true;
        }
        false
    }
}
