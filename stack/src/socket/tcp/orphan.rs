//! Orphans: connections whose program closed them, finishing their close (see
//! the module docs of [`super`]): the FIN or RST still to send, `FIN_WAIT_2` cut
//! after `TCP_LINGER2`, gone at `TIME_WAIT`.

use super::*;

/// How long an orphan may take to close at most.
pub(super) const ORPHAN_MAX: Duration = Duration::from_secs(300);
/// How long an abortive close (`SO_LINGER {1, 0}`) waits for the bytes written
/// before it to be acknowledged before it resets.
pub(super) const ABORT_FLUSH_MAX: Duration = Duration::from_secs(1);

/// A connection whose program is gone, finishing its close.
pub(crate) struct Orphan {
    pub(super) iface: IfaceId,
    pub(super) handle: SocketHandle,
    pub(super) binding: Option<(u16, BindingId)>,
    pub(super) since: Instant,
    pub(super) linger2: Duration,
    pub(super) rst_pending: bool,
    /// Reset once what is queued is acknowledged (or after [`ABORT_FLUSH_MAX`]).
    pub(super) reset_when_sent: bool,
}

impl Sockets {
    /// Turns a connected socket whose program closed it with `SO_LINGER {1, 0}`
    /// into an orphan that resets once its queued bytes are acknowledged.
    pub(super) fn orphan_then_reset(&mut self, id: SocketId, now: Instant) {
        log::debug!("tcp: socket {} closed with SO_LINGER {{1, 0}}", id.index());
        self.orphan(id, now, false);
        if let Some(o) = self.tcp.orphans.last_mut() {
            o.reset_when_sent = true;
        }
    }

    /// Turns a connected socket whose program is gone into an orphan.
    pub(super) fn orphan(&mut self, id: SocketId, now: Instant, rst: bool) {
        let Some(s) = self.remove(id, false) else {
            return;
        };
        if let Proto::Tcp(TcpState::Connected(c)) = s.proto {
            self.tcp.orphans.push(Orphan {
                iface: c.iface,
                handle: c.handle,
                binding: s.binding,
                since: now,
                linger2: Duration::from_secs(s.opts.linger2.max(1) as u64),
                rst_pending: rst,
                reset_when_sent: false,
            });
        } else if let Some((p, b)) = s.binding {
            self.tcp.ports.release(p, b);
        }
    }

    /// Number of orphaned connections still closing.
    pub fn orphans(&self) -> usize {
        self.tcp.orphans.len()
    }

    /// TCP connections with bytes still to go out: in smoltcp's send buffer
    /// (unsent or unacknowledged), or in a stand-in the event loop found
    /// readable (the pump has yet to take them).
    pub fn sending(&self, ifs: &mut Interfaces) -> usize {
        let mut n = 0;
        for o in &self.tcp.orphans {
            if sock_quiet(ifs, o.iface, o.handle).send_queue() > 0 {
                n += 1;
            }
        }
        for slot in &self.slots {
            let Some(s) = slot.val.as_ref() else { continue };
            if let Proto::Tcp(TcpState::Connected(c)) = &s.proto
                && (s.standin.as_ref().is_some_and(|si| si.readable)
                    || sock_quiet(ifs, c.iface, c.handle).send_queue() > 0)
            {
                n += 1;
            }
        }
        n
    }

    pub(super) fn service_orphans(&mut self, ifs: &mut Interfaces, now: Instant) -> bool {
        let mut progress = false;
        let mut i = 0;
        while i < self.tcp.orphans.len() {
            let o = &mut self.tcp.orphans[i];
            let sk = sock(ifs, o.iface, o.handle);
            let state = sk.state();
            let mut done = false;
            if o.rst_pending {
                // abort() sends its RST on the next poll; keep the socket until then.
                o.rst_pending = false;
            } else if o.reset_when_sent
                && state != State::Closed
                && (sk.send_queue() == 0 || now >= o.since + ABORT_FLUSH_MAX)
            {
                log::debug!(
                    "tcp: orphan reset after its bytes went ({} unacked)",
                    sk.send_queue()
                );
                sk.abort();
                o.reset_when_sent = false;
                o.rst_pending = true;
                progress = true;
            } else if state == State::Closed || state == State::TimeWait {
                // No TIME_WAIT is kept: the socket and its port go at once (see the
                // module docs).
                done = true;
            } else if sk.recv_queue() > 0
                || (state == State::FinWait2 && now >= o.since + o.linger2)
                || now >= o.since + ORPHAN_MAX
            {
                // Data for a closed socket, or a close that takes too long: RST.
                sk.abort();
                o.rst_pending = true;
                progress = true;
            }
            if done {
                let o = self.tcp.orphans.swap_remove(i);
                remove_sock(ifs, o.iface, o.handle);
                if let Some((p, b)) = o.binding {
                    self.tcp.ports.release(p, b);
                }
                progress = true;
            } else {
                i += 1;
            }
        }
        progress
    }

    /// The earliest deadline of the socket layer's own timers (connect timeouts,
    /// corked segments, orphan limits); smoltcp's timers are the interfaces'
    /// business. Only the sockets the next turn serves whatever happens are
    /// looked at (see [`super::pump`]): every socket with a handshake under way and
    /// every connection with a corked segment is among them.
    pub(crate) fn next_timer(&self, _now: Instant) -> Option<Instant> {
        let mut best: Option<Instant> = None;
        let mut take = |t: Instant| best = Some(best.map_or(t, |b| b.min(t)));
        for &id in self.tcp.turn.pending() {
            match self.get(id) {
                Some(Socket {
                    proto: Proto::Tcp(TcpState::Connecting(c)),
                    ..
                }) => take(c.deadline),
                Some(Socket {
                    proto: Proto::Tcp(TcpState::Connected(_)),
                    standin: Some(si),
                    ..
                }) => {
                    if let Some(t) = si.corked_since {
                        take(t + crate::standin::CORK_MAX);
                    }
                    if let Some((_, seen)) = si.hup_seen.filter(|_| si.awaiting_accept) {
                        // A hang-up waits for the control connections: turn again.
                        take(seen);
                    }
                }
                _ => {}
            }
        }
        if let Some(t) = self.tcp.next_sweep {
            take(t);
        }
        if let Some(t) = self.tcp.next_check {
            take(t);
        }
        if let Some(t) = self.udp_stuck_due() {
            take(t);
        }
        for o in &self.tcp.orphans {
            if o.rst_pending {
                take(o.since);
            }
            if o.reset_when_sent {
                take(o.since + ABORT_FLUSH_MAX);
            }
            take(o.since + o.linger2.min(ORPHAN_MAX));
        }
        best
    }
}
