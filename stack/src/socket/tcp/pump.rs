//! Every poll, each connection's work: a handshake that ended (the stand-in
//! drained and made writable, or the failure recorded), bytes pumped both ways
//! between the stand-in and smoltcp (with Nagle's rule and `TCP_CORK`), a FIN or a
//! reset passed on, a closed stand-in turned into an orphan.
//!
//! # Which sockets a turn serves
//!
//! Not every socket every turn: with 10 000 connections open that walk was most
//! of netcell's time. A turn serves (see [`TurnSet`]) the TCP sockets that are not
//! connected (listeners, handshakes, sockets without a connection — few), the
//! connections whose stand-in reported news, the connections that news of their
//! own came for (a segment of their tuple, or an egress poll that closed them: see
//! [`crate::iface::shards::Shards::touched`]), the connections of every shard
//! with news of all of them (home after every poll — while everything lives in
//! home, that is every connection, every turn, as before — and a shard that had
//! a frame no tuple places), and connections that asked to be served again
//! (something left: bytes the program wrote that smoltcp had no room for, a
//! corked segment's timer, a hang-up). Every 50 ms the whole table is walked
//! anyway, a safety net for the lists above whose catches are logged: it
//! serves what has news or stand-in work but was missing from them. It is no
//! net for news that never came (a connection is not looked into without
//! news: at 10 000 connections that look costs milliseconds), so what gives
//! news must be complete; [`crate::iface::shards::Shards::touched`] says why
//! it is.
//!
//! News came by shard until the benchmark's 10 000 echoing connections (128
//! shards of about 80) showed what that cost: every frame had the turn serve
//! the 80 connections of its shard, and looking at each (its slot, its stand-in,
//! its smoltcp socket: cold memory) took 16 % of netcell's time. Per connection,
//! netcell's CPU per echo fell from 30–40 µs to 23–25 µs.

use super::*;

/// How often the event loop looks for unpaired stand-ins the program closed.
const UNPAIRED_SWEEP: Duration = Duration::from_secs(2);

/// How often a turn serves every TCP socket anyway.
const FULL_WALK: Duration = Duration::from_millis(50);

/// The sockets the next turn serves (see the module docs).
#[derive(Default)]
pub(crate) struct TurnSet {
    /// Served in the next turn whatever happens.
    again: Vec<SocketId>,
    /// Connections whose stand-in reported news.
    woken: Vec<SocketId>,
    /// Connections by interface and shard.
    by_shard: HashMap<(IfaceId, usize), Vec<SocketId>>,
    /// Connections by interface and handle, for the news of one connection
    /// ([`crate::iface::shards::Shards::touched`]). An entry outlives its
    /// socket until the next walk prunes it or the handle is listed again; a
    /// stale one is told apart by the id's generation, or costs one needless
    /// service.
    by_handle: HashMap<(IfaceId, SocketHandle), SocketId>,
    /// When the whole table was last walked.
    last_walk: Option<Instant>,
    /// Per slot, the turn that listed it last (a socket is served once a turn).
    stamp: Vec<u32>,
    /// Per slot, the turn in which its connection alone had news.
    news: Vec<u32>,
    turn: u32,
}

impl TurnSet {
    /// A new TCP socket, or one that is not connected: served next turn.
    pub(crate) fn again(&mut self, id: SocketId) {
        self.again.push(id);
    }

    /// The sockets the next turn serves whatever happens.
    pub(crate) fn pending(&self) -> &[SocketId] {
        &self.again
    }

    /// A stand-in's news.
    pub(crate) fn woken(&mut self, id: SocketId) {
        self.woken.push(id);
    }

    /// A connection with handle `handle` on interface `iface`, from now on.
    pub(crate) fn list(&mut self, id: SocketId, iface: IfaceId, handle: SocketHandle) {
        self.by_shard
            .entry((iface, shard_of(handle)))
            .or_default()
            .push(id);
        self.by_handle.insert((iface, handle), id);
    }

    /// The entries of the lists by shard, and of the map from handles.
    #[cfg(test)]
    pub(crate) fn listed(&self) -> (usize, usize) {
        (
            self.by_shard.values().map(Vec::len).sum(),
            self.by_handle.len(),
        )
    }

    /// Whether connection `id` alone had news in this turn.
    fn news_of(&self, id: SocketId) -> bool {
        self.news.get(id.index()) == Some(&self.turn)
    }
}

/// Whether `id` is a live connection on interface `iface` whose handle passes
/// `at` (the test of a turn list's entry).
fn connection_in(
    slots: &[crate::socket::Slot<Socket>],
    id: SocketId,
    iface: IfaceId,
    at: impl Fn(SocketHandle) -> bool,
) -> bool {
    matches!(
        slots.get(id.index()).filter(|s| s.generation == id.generation)
            .and_then(|s| s.val.as_ref()).map(|s| &s.proto),
        Some(Proto::Tcp(TcpState::Connected(c))) if c.iface == iface && at(c.handle)
    )
}

impl Sockets {
    pub(crate) fn service_tcp(&mut self, ifs: &mut Interfaces, now: Instant) -> bool {
        let mut progress = false;
        // Unpaired stand-ins tell nobody when the program closes them: look now
        // and then (and at once when a port or the socket limit runs short).
        if self.tcp.next_sweep.is_some_and(|t| now >= t) {
            self.tcp.next_sweep = None;
            self.notice_unpaired_closes(false);
        }
        progress |= self.check_spliced_ends(now);
        let urgent = self.urgent_arrivals();
        let walk = urgent || self.tcp.turn.last_walk.is_none_or(|t| now >= t + FULL_WALK);
        // On a walk, what a turn would have served is kept to tell what the walk
        // alone found (a missed wake-up: logged).
        let mut expected = None;
        let ids = if walk {
            self.tcp.turn.last_walk = Some(now);
            self.prune_turn_lists();
            let would = self.turn_ids(ifs);
            expected = Some(
                would
                    .iter()
                    .copied()
                    .collect::<std::collections::HashSet<_>>(),
            );
            self.give_back_ids(would);
            self.take_ids()
        } else {
            self.turn_ids(ifs)
        };
        for &id in &ids {
            let Some(s) = self.get(id) else { continue };
            let served = match &s.proto {
                Proto::Tcp(TcpState::Listening(_)) => self.service_listener(ifs, id, now),
                Proto::Tcp(TcpState::Connecting(_)) => self.service_connecting(ifs, id, now),
                Proto::Tcp(TcpState::Connected(c)) => {
                    // Only what may have changed: news of it or of its whole
                    // shard (see `crate::iface::shards`), or of its stand-in —
                    // not every connection every turn.
                    let (iface, handle) = (c.iface, c.handle);
                    let news = urgent
                        || ifs.get(iface).sockets.news(handle)
                        || self.tcp.turn.news_of(id)
                        || s.standin.as_ref().is_none_or(StandIn::wants_service);
                    if !news {
                        continue;
                    }
                    if let Some(si) = self.get_mut(id).and_then(|s| s.standin.as_mut()) {
                        si.news = false;
                    }
                    let moved = self.service_connected(ifs, id, now);
                    if moved {
                        // Also after an abort or close (an orphan keeps the handle).
                        ifs.get_mut(iface).sockets.touch(handle);
                        if expected.as_ref().is_some_and(|e| !e.contains(&id)) {
                            log::debug!(
                                "tcp: socket {} had work only the full walk found",
                                id.index()
                            );
                        }
                    }
                    moved
                }
                Proto::Tcp(TcpState::Closed { .. } | TcpState::Spliced(_)) => {
                    self.service_idle(ifs, id)
                }
                _ => continue,
            };
            progress |= served;
            // What the next turn serves of it whatever happens.
            match self.get(id).map(|s| (&s.proto, s.standin.as_ref())) {
                Some((Proto::Tcp(TcpState::Connected(_)), si))
                    if si.is_some_and(StandIn::wants_service) =>
                {
                    self.tcp.turn.again(id)
                }
                // A spliced end is looked at when its close is found.
                Some((Proto::Tcp(TcpState::Connected(_) | TcpState::Spliced(_)), _)) => {}
                Some((Proto::Tcp(_), _)) => self.tcp.turn.again(id),
                _ => {}
            }
        }
        self.give_back_ids(ids);
        for i in 0..ifs.len() {
            ifs.get_mut(i).sockets.clear_news();
        }
        progress |= self.service_orphans(ifs, now);
        if self.tcp.next_sweep.is_none() && self.unpaired_live() {
            self.tcp.next_sweep = Some(now + UNPAIRED_SWEEP);
        }
        progress
    }

    /// Drops from the turn's lists the connections that are over: a shard's
    /// list is pruned where its shard has news of all of it, which a placed
    /// shard seldom has (its news is mostly of single connections), so on the
    /// walks too — each list, and the map from handles, then hold at most what
    /// 50 ms of churn left behind.
    fn prune_turn_lists(&mut self) {
        let (slots, turn) = (&self.slots, &mut self.tcp.turn);
        turn.by_shard.retain(|&(iface, shard), list| {
            list.retain(|&id| connection_in(slots, id, iface, |h| shard_of(h) == shard));
            !list.is_empty()
        });
        turn.by_handle
            .retain(|&(iface, handle), id| connection_in(slots, *id, iface, |h| h == handle));
    }

    /// The sockets this turn serves when it does not walk them all: those asked
    /// for again, those whose stand-in woke, and the connections of shards with
    /// news (entries of sockets that are no longer connections there go).
    fn turn_ids(&mut self, ifs: &Interfaces) -> Vec<SocketId> {
        let mut ids = std::mem::take(&mut self.ids);
        ids.clear();
        let turn = &mut self.tcp.turn;
        turn.turn = turn.turn.wrapping_add(1);
        if turn.stamp.len() < self.slots.len() {
            turn.stamp.resize(self.slots.len(), 0);
            turn.news.resize(self.slots.len(), 0);
        }
        let (stamp, now, slots) = (&mut turn.stamp, turn.turn, &self.slots);
        // Only live ids take their slot's stamp: a stale one (its socket gone, the
        // slot reused) must not keep the new socket from being served.
        let mut take = |ids: &mut Vec<SocketId>, id: SocketId| {
            let live = slots
                .get(id.index())
                .is_some_and(|s| s.generation == id.generation && s.val.is_some());
            if live
                && let Some(s) = stamp.get_mut(id.index())
                && *s != now
            {
                *s = now;
                ids.push(id);
            }
        };
        for id in turn.again.drain(..).chain(turn.woken.drain(..)) {
            take(&mut ids, id);
        }
        for iface in 0..ifs.len() {
            for &h in ifs.get(iface).sockets.touched() {
                if let Some(&id) = turn.by_handle.get(&(iface, h)) {
                    take(&mut ids, id);
                    if let Some(n) = turn.news.get_mut(id.index()) {
                        *n = now;
                    }
                }
            }
            for shard in ifs.get(iface).sockets.shards_with_news() {
                let Some(list) = turn.by_shard.get_mut(&(iface, shard)) else {
                    continue;
                };
                list.retain(|&id| connection_in(slots, id, iface, |h| shard_of(h) == shard));
                for &id in list.iter() {
                    take(&mut ids, id);
                }
            }
        }
        ids
    }

    /// A socket without a connection: discard what the program writes, free it
    /// when the program closes it.
    pub(super) fn service_idle(&mut self, ifs: &mut Interfaces, id: SocketId) -> bool {
        if self
            .get(id)
            .and_then(|s| s.unpaired.as_ref())
            .is_some_and(|u| u.hup)
        {
            self.drop_socket(ifs, id);
            return true;
        }
        let mut scratch = std::mem::take(&mut self.tcp.scratch);
        let gone = match self.get_mut(id).and_then(|s| s.standin.as_mut()) {
            Some(si) if si.readable || si.hup => {
                // EOF on `T` means the program closed its end (a socket without a
                // connection answers `shutdown` with ENOTCONN, so it cannot be that).
                let eof = si.discard_input(scratch.get());
                si.hup || eof
            }
            _ => false,
        };
        self.tcp.scratch = scratch;
        if gone {
            self.drop_socket(ifs, id);
        }
        gone
    }

    pub(super) fn service_connecting(
        &mut self,
        ifs: &mut Interfaces,
        id: SocketId,
        now: Instant,
    ) -> bool {
        let Some(s) = self.get_mut(id) else {
            return false;
        };
        let Proto::Tcp(TcpState::Connecting(c)) = &s.proto else {
            return false;
        };
        let (iface, handle, deadline) = (c.iface, c.handle, c.deadline);
        if s.standin.as_ref().is_some_and(|si| si.hup) {
            // The program closed a connecting socket: drop it without a RST.
            self.drop_socket(ifs, id);
            return true;
        }
        let state = sock(ifs, iface, handle).state();
        match state {
            State::SynSent | State::SynReceived => {
                if now >= deadline {
                    self.fail(ifs, id, ConnectError::TimedOut);
                    return true;
                }
                false
            }
            State::Closed | State::TimeWait | State::Listen => {
                let e = if now >= deadline {
                    ConnectError::TimedOut
                } else {
                    ConnectError::Refused
                };
                self.fail(ifs, id, e);
                true
            }
            _ => {
                let s = self.get_mut(id).expect("socket checked above");
                let Proto::Tcp(TcpState::Connecting(c)) =
                    std::mem::replace(&mut s.proto, Proto::Tcp(TcpState::Closed { failed: None }))
                else {
                    return false;
                };
                // Keep-alive and user timeouts replace the connect timeout.
                s.opts.apply(sock(ifs, c.iface, c.handle));
                if !s.opts.keepalive && s.opts.user_timeout_ms == 0 {
                    sock(ifs, c.iface, c.handle).set_timeout(None);
                }
                let (iface, handle) = (c.iface, c.handle);
                s.proto = Proto::Tcp(TcpState::Connected(Conn {
                    unreported: true,
                    ..c
                }));
                self.tcp.turn.list(id, iface, handle);
                let Some(s) = self.get_mut(id) else {
                    return true;
                };
                if let Some(si) = s.standin.as_mut() {
                    let mut scratch = [0u8; FILLER_CHUNK];
                    si.drain_filler(&mut scratch);
                }
                log::debug!("tcp: socket {} connected", id.index());
                true
            }
        }
    }

    pub(super) fn service_connected(
        &mut self,
        ifs: &mut Interfaces,
        id: SocketId,
        now: Instant,
    ) -> bool {
        // Urgent data on its way in (see `urgent`): where the next urgent byte is.
        let (flow, iface, handle) = match self.get(id).map(|s| (s, &s.proto)) {
            Some((s, Proto::Tcp(TcpState::Connected(c)))) => {
                (urgent::flow_of(s, c), c.iface, c.handle)
            }
            _ => return false,
        };
        let urgent_at = match flow {
            Some(f) if self.urgent_arrivals() => {
                self.urgent_offset(f, sock_quiet(ifs, iface, handle))
            }
            _ => None,
        };
        let turns = self.turns;
        let Some(s) = self.get_mut(id) else {
            return false;
        };
        let linger0 = s.opts.linger == Some(0);
        let Proto::Tcp(TcpState::Connected(c)) = &mut s.proto else {
            return false;
        };
        let mtu = ifs.get(c.iface).mtu;
        let sk = sock_quiet(ifs, c.iface, c.handle);
        let state = sk.state();
        c.remote_fin |= matches!(
            state,
            State::CloseWait | State::LastAck | State::Closing | State::TimeWait
        );
        let mss = options::segment_size(mtu, !c.remote.is_ipv4(), sk.timestamp_enabled());
        let coalesce = s.opts.coalesce().then_some(mss);
        let corked = s.opts.cork;
        // SO_SNDBUF set on the connection: at most that much waits in it (a socket
        // made with it has buffers of that size already).
        let sndbuf = s.opts.sndbuf.map(|b| b as usize);
        let sk = sock_quiet(ifs, c.iface, c.handle);
        let Some(si) = s.standin.as_mut() else {
            return false; // The embedding API moves its own bytes.
        };
        if si.hup
            && si.awaiting_accept
            && crate::socket::Turns::close_waits(turns, &mut si.hup_seen, now)
        {
            // Accepted and closed at once, perhaps: the front end's `Placed` may
            // be unread still (see `Turns`).
            return false;
        }
        if si.hup
            && (si.awaiting_accept
                || (!si.app_eof && (si.closed_with_unread() || sk.recv_queue() > 0)))
        {
            // Closed with unread bytes, or never accepted from a listener that is
            // gone: Linux sends a RST at once.
            sk.abort();
            self.orphan(id, now, true);
            return true;
        }
        if si.hup && !si.app_eof && linger0 {
            // SO_LINGER {1, 0}: Linux resets, dropping only what it had not sent
            // yet — and what the program wrote before close() it sent as it was
            // written. Here those bytes may still be in the stand-in: they go into
            // the connection first, and the reset follows once they are sent.
            si.readable = true;
            si.pump_in(sk, None, false, now, None);
            self.orphan_then_reset(id, now);
            return true;
        }
        let out = si.pump_out(sk, urgent_at);
        if c.remote_fin && sk.recv_queue() == 0 {
            si.send_fin();
        }
        let inn = si.pump_in(sk, coalesce, corked, now, sndbuf);
        if inn.eof {
            // EOF from a close (not a shutdown) whose hang-up the event loop has not
            // reported yet: the close decides (a RST for SO_LINGER {1, 0}).
            si.hup |= sys::hung_up(si.fd.as_fd());
            if si.app_reset || (si.hup && sk.recv_queue() > 0) {
                sk.abort();
                self.orphan(id, now, true);
                return true;
            }
            if si.hup && linger0 {
                self.orphan_then_reset(id, now);
                return true;
            }
            sk.close();
            c.we_closed = true;
        }
        let progress = out.bytes > 0 || inn.bytes > 0 || inn.eof;
        if let Some(f) = flow {
            if out.urgent {
                self.urgent_delivered(f);
            }
            if inn.urgent {
                self.urgent_sent(f, sock_quiet(ifs, iface, handle));
            }
        }
        let Some(s) = self.get_mut(id) else {
            return progress;
        };
        let Proto::Tcp(TcpState::Connected(c)) = &mut s.proto else {
            return progress;
        };
        let sk = sock_quiet(ifs, c.iface, c.handle);
        let Some(si) = s.standin.as_mut() else {
            return progress;
        };
        if si.hup && si.app_eof {
            self.orphan(id, now, false);
            return true;
        }
        if sk.state() == State::Closed && !(c.we_closed && c.remote_fin) {
            // Reset (or a keep-alive/user timeout): close our end so the program
            // sees ECONNRESET (with unsent bytes) or EOF, then EPIPE.
            s.error = if s.opts.user_timeout_ms > 0 || s.opts.keepalive {
                libc::ETIMEDOUT
            } else {
                libc::ECONNRESET
            };
            log::debug!("tcp: socket {} reset by peer", id.index());
            if let Some(si) = s.standin.as_ref() {
                // Closing T below shows the program ECONNRESET rather than EOF.
                si.poison();
            }
            if let Some(s) = self.remove(id, true) {
                if let Proto::Tcp(TcpState::Connected(c)) = s.proto {
                    remove_sock(ifs, c.iface, c.handle);
                }
                if let Some((p, b)) = s.binding {
                    self.tcp.ports.release(p, b);
                }
            }
            return true;
        }
        progress
    }
}
