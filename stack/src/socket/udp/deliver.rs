//! Receiving: every datagram an endpoint took goes to the sockets Linux would give
//! it to (connected 4-tuple, bound address, wildcard; `SO_REUSEPORT` groups;
//! multicast and broadcast to every member), ICMP errors to the connected socket
//! they concern, and the records a program wrote to its connected socket's
//! stand-in out as datagrams.

use super::*;

impl Sockets {
    /// Which sockets a datagram goes to (Linux's `__udp4_lib_lookup` and multicast
    /// delivery): see the module docs.
    pub(super) fn udp_targets(
        &self,
        ifs: &Interfaces,
        iface: IfaceId,
        port: u16,
        src: SocketAddr,
        dst: IpAddr,
        out: &mut Vec<SocketId>,
    ) {
        out.clear();
        let Some(users) = self.udp.users.get(&port) else {
            return;
        };
        let group = dst.is_multicast() || is_broadcast(ifs, &dst);
        let mut best = 0;
        for &id in users {
            let Some(s) = self.get(id) else { continue };
            let Proto::Udp(u) = &s.proto else { continue };
            let Some(local) = s.local else { continue };
            let dual = s.domain == Domain::Inet6 && !s.opts.v6only;
            if !family_ok(&local.ip(), dual, &dst) {
                continue;
            }
            let bound = local.ip();
            let addr_ok = bound.is_unspecified() || bound == dst;
            if !addr_ok {
                continue;
            }
            if let Some(c) = u.connected
                && c != src
            {
                continue;
            }
            if let Some(dev) = s.opts.bindtodevice.as_deref()
                && ifs.by_name(dev) != Some(iface)
            {
                continue;
            }
            if group {
                if dst.is_multicast()
                    && !u.mcast_all
                    && !u
                        .memberships
                        .iter()
                        .any(|m| m.group == dst && m.iface == iface)
                {
                    continue;
                }
                let blocked = u.memberships.iter().any(|m| {
                    m.group == dst
                        && m.iface == iface
                        && (!m.include.is_empty() && !m.include.contains(&src.ip())
                            || m.exclude.contains(&src.ip()))
                });
                if !blocked {
                    out.push(id);
                }
                continue;
            }
            let score = 1
                + if u.connected.is_some() { 4 } else { 0 }
                + if !bound.is_unspecified() { 2 } else { 0 };
            if score > best {
                best = score;
                out.clear();
                out.push(id);
            } else if score == best && s.opts.reuseport {
                out.push(id);
            }
        }
        if !group && out.len() > 1 {
            // A SO_REUSEPORT group: one member, chosen by the source.
            let h = src.port() as usize
                ^ (u32::from(match src.ip() {
                    IpAddr::V4(a) => a,
                    IpAddr::V6(a) => Ipv4Addr::from(u128::from(a) as u32),
                }) as usize);
            let pick = out[h % out.len()];
            out.clear();
            out.push(pick);
        }
    }

    /// Whether a received datagram found its stand-in full since the last call:
    /// its program is behind, and the stack should let it run (see
    /// [`crate::Stack::poll`]).
    pub(crate) fn take_overflowed(&mut self) -> bool {
        std::mem::take(&mut self.udp.overflowed)
    }

    /// Hands one received datagram to the sockets it is for.
    pub(super) fn udp_deliver(
        &mut self,
        ifs: &Interfaces,
        iface: IfaceId,
        port: u16,
        data: &[u8],
        (src, dst, fields): (SocketAddr, IpAddr, IpFields),
        except: Option<SocketId>,
    ) {
        let mut targets = std::mem::take(&mut self.udp.targets);
        self.udp_targets(ifs, iface, port, src, dst, &mut targets);
        for &id in &targets {
            if Some(id) == except && !dst.is_multicast() {
                continue;
            }
            let Some(s) = self.get_mut(id) else { continue };
            let Some(si) = s.standin.as_ref() else {
                continue;
            };
            let Proto::Udp(u) = &mut s.proto else {
                continue;
            };
            if u.inbox.deliver(
                si,
                data,
                Origin::new(src, dst, iface, data).with_fields(fields),
            ) {
                self.udp.overflowed = true;
            }
        }
        self.udp.targets = targets;
    }

    /// An ICMP error arrived for a datagram we sent: a connected socket matching it
    /// gets a marker in its stand-in (see the module docs).
    pub(crate) fn udp_icmp_error(&mut self, e: &IcmpError) {
        let Some(users) = self.udp.users.get(&e.orig_src_port) else {
            return;
        };
        let dst = SocketAddr::new(e.orig_dst.into(), e.orig_dst_port);
        let hit = users
            .iter()
            .copied()
            .find(|id| self.udp(*id).is_some_and(|u| u.connected == Some(dst)));
        let Some(id) = hit else { return };
        // Without markers (the seccomp supervisor: plain reads stay native) the
        // error waits as the pending error, and an empty record with a descriptor
        // attached (a doorbell) makes the stand-in readable for select, poll and
        // epoll, as the error makes a socket on Linux; the supervisor's receives
        // skip it, a plain read sees an empty datagram.
        let doorbell = match self.get_mut(id) {
            Some(s) if !s.markers => {
                let first = s.error == 0;
                s.error = e.errno;
                if !first {
                    return;
                }
                true
            }
            _ => false,
        };
        let Some(marker) = self
            .udp
            .marker_fd
            .as_ref()
            .map(|f| f.as_fd().try_clone_to_owned())
        else {
            return;
        };
        let Ok(marker) = marker else { return };
        if let Some(si) = self.get_mut(id).and_then(|s| s.standin.as_mut()) {
            let record = netcell_proto::marker::encode(e.errno);
            let record: &[u8] = if doorbell { &[] } else { &record };
            let _ = sys::send_with_fd(si.fd.as_fd(), record, Some(marker.as_fd()));
            log::debug!(
                "udp: socket {} gets {} from an ICMP error",
                id.index(),
                Errno(e.errno)
            );
        }
    }

    /// When an endpoint that holds a connected socket's records back is due to
    /// be declared stuck (see [`Sockets::udp_room`]).
    pub(crate) fn udp_stuck_due(&self) -> Option<smoltcp::time::Instant> {
        self.udp.stuck_due
    }

    /// Socket `id` received a posted datagram (`true`), or its program said
    /// every post before its close was served (`false`; see
    /// [`crate::control::grants`]).
    pub(crate) fn mark_posted(&mut self, id: SocketId, posted: bool) {
        if let Some(u) = self.udp_mut(id) {
            u.posted = posted;
        }
    }

    /// Counts a posted datagram of socket `id`, sent or dropped with `err`.
    pub(crate) fn count_post(&mut self, id: SocketId, err: Option<SendError>) {
        self.udp.posts.0 += 1;
        if let Some(e) = err {
            self.udp.posts.1 += 1;
            let n = self.udp.posts.1;
            // Formatted only when it is logged: a flood allocates nothing.
            if n > 5 && !n.is_multiple_of(1000) {
                return;
            }
            crate::device::log_rate_limited(
                self.udp.posts.1,
                &format!("udp: socket {}: a posted datagram was dropped", id.index()),
                &e,
            );
        }
    }

    /// Datagrams posted, and those of them dropped.
    pub fn posts(&self) -> (u64, u64) {
        self.udp.posts
    }

    /// Whether the close of socket `id`, which its program closed, must wait:
    /// datagrams it posted may still sit in a control connection, which the
    /// event loop reads in its own order. They were there before the close was
    /// seen, so a turn that read every connection to its end after that has
    /// served them (see [`super::super::Turns::close_waits`]). Without an event
    /// loop (the embedding API), nothing is posted and nothing waits.
    pub(crate) fn udp_close_waits(&mut self, ifs: &Interfaces, id: SocketId) -> bool {
        let turns = self.turns;
        let now = ifs.now();
        let Some(u) = self.udp_mut(id).filter(|u| u.posted) else {
            return false;
        };
        if !super::super::Turns::close_waits(turns, &mut u.hup_seen, now) {
            return false;
        }
        // The loop turns again at once rather than sleep on it.
        self.udp.stuck_due = Some(now);
        true
    }

    /// Moves datagrams between endpoints, stand-ins and smoltcp; frees sockets whose
    /// program closed them.
    pub(crate) fn service_udp(&mut self, ifs: &mut Interfaces) -> bool {
        if !self.any_udp() && self.udp.endpoints.is_empty() {
            return false;
        }
        let mut progress = false;
        // Visits below set it again for endpoints still full.
        self.udp.stuck_due = None;
        // Received datagrams to their sockets.
        let keys: Vec<(IfaceId, u16)> = self.udp.endpoints.keys().copied().collect();
        let mut lazy = std::mem::take(&mut self.udp.buf);
        for (iface, port) in keys {
            while let Some(ep) = self.udp.endpoints.get(&(iface, port)) {
                let sock = ifs
                    .get_mut(iface)
                    .sockets
                    .get_mut::<udp::Socket<'static>>(ep.handle);
                if !sock.can_recv() {
                    break;
                }
                let buf = lazy.get();
                let Ok((n, md)) = sock.recv_slice(buf) else {
                    break;
                };
                let src = SocketAddr::new(md.endpoint.addr.into(), md.endpoint.port);
                let dst: IpAddr = md
                    .local_address
                    .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), Into::into);
                log::trace!(
                    "udp: {} bytes {src} -> {dst} on {}:{port}",
                    n,
                    ifs.get(iface).name
                );
                let fields = IpFields::decode(md.meta.id);
                log::trace!("udp: received fields {fields:?} (meta {:#x})", md.meta.id);
                self.udp_deliver(ifs, iface, port, &buf[..n], (src, dst, fields), None);
                progress = true;
            }
        }
        // Records the programs wrote: datagrams to the connected peer.
        let ids = self.take_udp_ids();
        for &id in &ids {
            let Some(s) = self.get_mut(id) else { continue };
            let Proto::Udp(u) = &s.proto else { continue };
            let connected = u.connected.is_some();
            let Some(si) = s.standin.as_ref() else {
                continue;
            };
            if !si.readable && !si.hup {
                continue;
            }
            let mut eof = false;
            let buf = lazy.get();
            while let Some(si) = self.get(id).and_then(|s| s.standin.as_ref()) {
                // A record is read only when its endpoint can take it: what waits
                // stays in the stand-in, whose full buffer blocks the sender (as
                // Linux's send buffer does), instead of being read and dropped.
                // The egress that empties the endpoint counts as progress, so the
                // stack's next round comes back here; an endpoint that cannot
                // empty (a neighbour not resolved) does not keep the loop busy.
                let hup = si.hup;
                if connected && !hup && !self.udp_room(ifs, id) {
                    break;
                }
                let Some(si) = self.get(id).and_then(|s| s.standin.as_ref()) else {
                    break;
                };
                match sys::recv_record(si.fd.as_fd(), buf) {
                    Ok(Some(n)) => {
                        // Records of an unconnected socket have no destination: Linux
                        // fails such a send with EDESTADDRREQ; here it is dropped.
                        if connected && let Err(e) = self.udp_sendto(ifs, id, None, &[], &buf[..n])
                        {
                            log::debug!("udp: socket {}: send: {e}", id.index());
                        }
                        progress = true;
                    }
                    Ok(None) => {
                        eof = true;
                        break;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if let Some(si) = self.get_mut(id).and_then(|s| s.standin.as_mut()) {
                            si.readable = false;
                        }
                        break;
                    }
                    Err(_) => {
                        eof = true;
                        break;
                    }
                }
            }
            let hup = self
                .get(id)
                .and_then(|s| s.standin.as_ref())
                .is_some_and(|si| si.hup);
            if (eof || hup) && !self.udp_close_waits(ifs, id) {
                self.udp_close(ifs, id);
                progress = true;
            }
        }
        self.give_back_ids(ids);
        self.udp.buf = lazy;
        progress
    }
}
