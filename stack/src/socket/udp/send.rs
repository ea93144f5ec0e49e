//! Sending: the route and source address of a datagram (of the destination's
//! family always), and the datagram handed to the endpoint of its interface with
//! its TTL and TOS.

use super::*;

/// Why a datagram has no route (see [`Sockets::udp_route`]): the call that asked
/// says it with its own error.
#[derive(Clone, Copy, Debug)]
pub(super) enum RouteError {
    /// No such UDP socket.
    NoSuchSocket,
    /// No route, no source address of the destination's family, or
    /// `SO_BINDTODEVICE` naming another interface.
    Unreachable,
    /// Bound to an IPv4 address, sending to an IPv6 one.
    WrongFamily,
    /// A loopback source towards a non-local destination.
    LoopbackSource,
}

impl From<RouteError> for ConnectError {
    fn from(e: RouteError) -> Self {
        match e {
            RouteError::NoSuchSocket => ConnectError::NoSuchSocket,
            RouteError::Unreachable => ConnectError::NetworkUnreachable,
            RouteError::WrongFamily => ConnectError::WrongFamily,
            RouteError::LoopbackSource => ConnectError::Invalid,
        }
    }
}

impl From<RouteError> for SendError {
    fn from(e: RouteError) -> Self {
        match e {
            RouteError::NoSuchSocket => SendError::NoSuchSocket,
            RouteError::Unreachable => SendError::NetworkUnreachable,
            RouteError::WrongFamily => SendError::WrongFamily,
            RouteError::LoopbackSource => SendError::Invalid,
        }
    }
}

/// How long an endpoint may stay full before the records waiting for it are
/// dropped rather than held (see [`Sockets::udp_room`]).
const STUCK: smoltcp::time::Duration = smoltcp::time::Duration::from_millis(200);

impl Sockets {
    /// Interface and source address for a datagram to `dst` from socket `id`. The
    /// source is always of `dst`'s family (smoltcp panics on a mix), as on Linux: a
    /// source from ancillary data of the other family is ignored (Linux reads only
    /// the cmsgs of the family it sends with), and a bound address of the other
    /// family fails the send — `ENETUNREACH` for a socket bound to an IPv6 address
    /// sending to a v4-mapped one, `EAFNOSUPPORT` the other way round.
    pub(super) fn udp_route(
        &self,
        ifs: &Interfaces,
        id: SocketId,
        dst: &IpAddr,
        src_hint: Option<IpAddr>,
    ) -> Result<(IfaceId, IpAddr), RouteError> {
        let src_hint = src_hint.filter(|h| h.is_ipv4() == dst.is_ipv4());
        let (iface, src) = self.udp_route_any(ifs, id, dst, src_hint)?;
        match (src, dst) {
            (IpAddr::V6(_), IpAddr::V4(_)) => Err(RouteError::Unreachable),
            (IpAddr::V4(_), IpAddr::V6(_)) => Err(RouteError::WrongFamily),
            _ => Ok((iface, src)),
        }
    }

    pub(super) fn udp_route_any(
        &self,
        ifs: &Interfaces,
        id: SocketId,
        dst: &IpAddr,
        src_hint: Option<IpAddr>,
    ) -> Result<(IfaceId, IpAddr), RouteError> {
        let s = self.get(id).ok_or(RouteError::NoSuchSocket)?;
        let Proto::Udp(u) = &s.proto else {
            return Err(RouteError::NoSuchSocket);
        };
        let bound = s
            .local
            .map(|l| l.ip())
            .filter(|ip| !ip.is_unspecified() && !ip.is_multicast() && !is_broadcast(ifs, ip));
        let src_pref = src_hint.filter(|ip| !ip.is_unspecified()).or(bound);
        let dev = s.opts.bindtodevice.as_deref().and_then(|d| ifs.by_name(d));
        if dst.is_multicast() || (dst.is_ipv4() && is_broadcast(ifs, dst)) {
            let chosen = match dst {
                IpAddr::V4(_) => u.mcast_if.or(dev),
                IpAddr::V6(_) => u.mcast6_if.or(dev),
            };
            // A subnet's broadcast leaves on that subnet's interface.
            let subnet = match dst {
                IpAddr::V4(v4) => ifs.broadcast_iface(v4),
                IpAddr::V6(_) => None,
            };
            let iface = chosen.or(subnet).unwrap_or(ifs.default_link());
            let src = src_pref
                .or(u.mcast_if_addr.map(IpAddr::V4).filter(|_| dst.is_ipv4()))
                .or_else(|| {
                    ifs.local_addrs(iface)
                        .map(IpAddr::from)
                        .find(|a| a.is_ipv4() == dst.is_ipv4())
                })
                .ok_or(RouteError::Unreachable)?;
            return Ok((iface, src));
        }
        let r = ifs.route(&(*dst).into()).ok_or(RouteError::Unreachable)?;
        if dev.is_some_and(|d| d != r.iface) {
            return Err(RouteError::Unreachable);
        }
        let src = match src_pref {
            Some(b) if b.is_loopback() && r.iface != LO => return Err(RouteError::LoopbackSource),
            Some(b) => b,
            None => r.src.into(),
        };
        Ok((r.iface, src))
    }

    /// Whether a record of connected socket `id` may be read now: the endpoint
    /// it leaves through has room for the largest datagram (twice that: smoltcp's
    /// payload ring keeps a datagram in one piece and pads to the ring's end to
    /// do so), or the send would fail anyway (its error is the send's to
    /// report). An endpoint that stays full for [`STUCK`] (a neighbour that does
    /// not answer: smoltcp keeps the datagrams) no longer holds records back: they
    /// are read and dropped, as Linux drops what waits for an unresolved
    /// neighbour, and the sender is not blocked for ever.
    pub(super) fn udp_room(&mut self, ifs: &Interfaces, id: SocketId) -> bool {
        let Some(s) = self.get(id) else { return true };
        let Proto::Udp(u) = &s.proto else { return true };
        let (Some(dst), Some(local)) = (u.connected, s.local) else {
            return true;
        };
        // The route is looked up once per grants generation (which every change
        // of routes and of a datagram socket's settings moves), not per record.
        let generation = ifs.grants().generation();
        let iface = match u.room_route {
            Some((g, iface)) if g == generation && generation != 0 => iface,
            _ => {
                let Ok((iface, _)) = self.udp_route(ifs, id, &dst.ip(), None) else {
                    return true;
                };
                if let Some(u) = self.udp_mut(id) {
                    u.room_route = Some((generation, iface));
                }
                iface
            }
        };
        let Some(ep) = self.udp.endpoints.get_mut(&(iface, local.port())) else {
            return true;
        };
        let sock = ifs
            .get(iface)
            .sockets
            .get::<udp::Socket<'static>>(ep.handle);
        let room = sock.can_send()
            && sock.payload_send_capacity() - sock.send_queue() >= 2 * (MAX_UDP6 + 1);
        if room {
            ep.full_since = None;
            return true;
        }
        let now = ifs.now();
        let due = *ep.full_since.get_or_insert(now) + STUCK;
        if now >= due {
            return true;
        }
        // The loop wakes then even if nothing else happens.
        self.udp.stuck_due = Some(self.udp.stuck_due.map_or(due, |d| d.min(due)));
        false
    }

    /// Sends one datagram from socket `id` (a `SendTo` request, or a record the
    /// program wrote to a connected socket's stand-in). `control` is the program's
    /// ancillary data. Returns the bytes sent.
    pub(crate) fn udp_sendto(
        &mut self,
        ifs: &mut Interfaces,
        id: SocketId,
        dst: Option<Target>,
        control: &[u8],
        payload: &[u8],
    ) -> Result<usize, SendError> {
        let s = self.get(id).ok_or(SendError::NoSuchSocket)?;
        let Proto::Udp(u) = &s.proto else {
            return Err(SendError::NoSuchSocket);
        };
        if u.write_shut {
            return Err(SendError::Shut);
        }
        let dst = match dst {
            Some(Target::Addr(a)) => a,
            Some(Target::Unspec) | None => u.connected.ok_or(SendError::DestinationRequired)?,
        };
        match (s.domain, dst) {
            (Domain::Inet, SocketAddr::V6(_)) => return Err(SendError::WrongFamily),
            (Domain::Inet6, SocketAddr::V4(_)) if s.opts.v6only => {
                return Err(SendError::NetworkUnreachable);
            }
            _ => {}
        }
        if dst.port() == 0 {
            return Err(SendError::Invalid);
        }
        let max = if dst.is_ipv4() { MAX_UDP4 } else { MAX_UDP6 };
        if payload.len() > max {
            return Err(SendError::TooBig);
        }
        let broadcast = is_broadcast(ifs, &dst.ip());
        if broadcast && !s.opts.broadcast {
            return Err(SendError::BroadcastDenied);
        }
        let (src_hint, ttl_hint) = parse_send_control(control);
        let (iface, src) = self.udp_route(ifs, id, &dst.ip(), src_hint)?;
        if dst.is_ipv6() && payload.len() + 48 > ifs.get(iface).mtu {
            // smoltcp does not fragment IPv6.
            return Err(SendError::TooBig);
        }
        let port = self.udp_autobind(ifs, id)?;
        // The output chain's verdict, reported to the sender as Linux does (the
        // datagram itself is filtered and counted when it leaves).
        ifs.filter()
            .borrow_mut()
            .check_start(
                iface,
                crate::filter::rules::Proto::Udp,
                src.into(),
                port,
                dst.ip().into(),
                dst.port(),
                false,
            )
            .map_err(|e| {
                if e == libc::EPERM {
                    SendError::Filtered
                } else {
                    SendError::Refused
                }
            })?;
        let s = self.get(id).ok_or(SendError::NoSuchSocket)?;
        let Proto::Udp(u) = &s.proto else {
            return Err(SendError::NoSuchSocket);
        };
        let multicast = dst.ip().is_multicast();
        let ttl = ttl_hint.or(if multicast {
            Some(if dst.is_ipv4() {
                u.mcast_ttl
            } else {
                u.mcast6_hops
            })
        } else {
            s.opts.ttl
        });
        let fields = IpFields {
            ttl,
            tos: (s.opts.tos != 0).then_some(s.opts.tos as u8),
        };
        // The local copy Linux makes of what leaves on a device (for broadcasts,
        // and for multicast with IP_MULTICAST_LOOP). Not on `lo`: what it sends
        // comes back to the container once, whatever IP_MULTICAST_LOOP says.
        let loop_local = iface != LO
            && (broadcast
                || (multicast
                    && (if dst.is_ipv4() {
                        u.mcast_loop
                    } else {
                        u.mcast6_loop
                    })));
        let ep = self
            .udp
            .endpoints
            .get(&(iface, port))
            .ok_or(SendError::NetworkUnreachable)?;
        let sock = ifs
            .get_mut(iface)
            .sockets
            .get_mut::<udp::Socket<'static>>(ep.handle);
        let mut meta = PacketMeta::default();
        meta.id = fields.encode();
        let md = UdpMetadata {
            endpoint: IpEndpoint::new(dst.ip().into(), dst.port()),
            local_address: Some(src.into()),
            meta,
        };
        log::trace!(
            "udp: socket {} sends {} bytes {src}:{port} -> {dst} via interface {iface}",
            id.index(),
            payload.len()
        );
        match sock.send_slice(payload, md) {
            Ok(()) => self.udp.v6_sent(iface, port, dst, fields),
            Err(udp::SendError::BufferFull) => return Err(SendError::NoBuffers),
            Err(udp::SendError::Unaddressable) => return Err(SendError::Invalid),
        }
        if loop_local {
            let joined = broadcast
                || self
                    .udp
                    .groups
                    .get(&(iface, dst.ip()))
                    .is_some_and(|n| *n > 0);
            if joined {
                let origin = SocketAddr::new(src, port);
                self.udp_deliver(
                    ifs,
                    iface,
                    dst.port(),
                    payload,
                    (
                        origin,
                        dst.ip(),
                        IpFields {
                            ttl: Some(ttl.unwrap_or(64)),
                            tos: Some(fields.tos.unwrap_or(0)),
                        },
                    ),
                    Some(id),
                );
            }
        }
        Ok(payload.len())
    }
}
