//! The egress hook: per-packet IP header fields smoltcp cannot set per packet.
//!
//! smoltcp sets a packet's TTL (hop limit) per socket and has no TOS/traffic class
//! at all, while Linux sockets set both per socket and per datagram (multicast TTL
//! 1 beside unicast TTL 64 on one port, `IP_TOS`, `IP_TTL` in `sendmsg`). UDP
//! endpoints are shared by every socket bound to their port (see
//! `socket::udp`), so a datagram carries its fields in smoltcp's packet
//! metadata ([`PacketMeta::id`]), which smoltcp hands to the device's transmit
//! token; [`HookedTx`] writes them into the IP header once smoltcp has built the
//! frame (and fixes the IPv4 header checksum).

use super::IfaceId;
use smoltcp::phy::{self, Medium, PacketMeta};

/// Marks an encoded [`IpFields`] in `PacketMeta::id`.
const VALID: u32 = 1 << 31;
const HAS_TTL: u32 = 1 << 30;
const HAS_TOS: u32 = 1 << 29;

/// IP header fields to set on one packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IpFields {
    /// TTL / hop limit.
    pub ttl: Option<u8>,
    /// TOS / traffic class.
    pub tos: Option<u8>,
}

impl IpFields {
    /// As a `PacketMeta::id` (0: nothing to change).
    pub fn encode(self) -> u32 {
        let mut v = 0;
        if let Some(t) = self.ttl {
            v |= VALID | HAS_TTL | t as u32;
        }
        if let Some(t) = self.tos {
            v |= VALID | HAS_TOS | (t as u32) << 8;
        }
        v
    }

    /// The TTL (hop limit) and TOS (traffic class) a received frame carries: the
    /// devices hand them to smoltcp as the frame's metadata, which its UDP sockets
    /// keep with each datagram (smoltcp itself keeps neither), for `IP_RECVTTL`,
    /// `IP_RECVTOS`, `IPV6_RECVHOPLIMIT` and `IPV6_RECVTCLASS`.
    pub fn of_frame(medium: Medium, frame: &[u8]) -> IpFields {
        let ip = match medium {
            Medium::Ethernet => match frame.get(12..14) {
                Some([0x08, 0x00]) | Some([0x86, 0xdd]) => &frame[14..],
                _ => return IpFields::default(),
            },
            _ => frame,
        };
        match ip.first().map(|b| b >> 4) {
            Some(4) if ip.len() >= 20 => IpFields {
                ttl: Some(ip[8]),
                tos: Some(ip[1]),
            },
            Some(6) if ip.len() >= 40 => IpFields {
                ttl: Some(ip[7]),
                tos: Some((ip[0] << 4) | (ip[1] >> 4)),
            },
            _ => IpFields::default(),
        }
    }

    /// As the receive metadata of a frame.
    pub fn rx_meta(self) -> PacketMeta {
        let mut m = PacketMeta::default();
        m.id = self.encode();
        m
    }

    /// From a `PacketMeta::id`.
    pub fn decode(v: u32) -> IpFields {
        if v & VALID == 0 {
            return IpFields::default();
        }
        IpFields {
            ttl: (v & HAS_TTL != 0).then_some(v as u8),
            tos: (v & HAS_TOS != 0).then_some((v >> 8) as u8),
        }
    }

    /// Writes the fields into the IP packet at `ip` (an IPv4 or IPv6 header).
    pub fn apply(self, ip: &mut [u8]) {
        let Some(&first) = ip.first() else { return };
        match first >> 4 {
            4 if ip.len() >= 20 => {
                if let Some(t) = self.ttl {
                    ip[8] = t;
                }
                if let Some(t) = self.tos {
                    ip[1] = t;
                }
                let hl = ((ip[0] & 0x0f) as usize * 4).min(ip.len());
                ip[10] = 0;
                ip[11] = 0;
                let mut sum: u32 = 0;
                for c in ip[..hl].chunks(2) {
                    sum += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32;
                }
                while sum > 0xffff {
                    sum = (sum & 0xffff) + (sum >> 16);
                }
                ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
            }
            6 if ip.len() >= 40 => {
                if let Some(t) = self.ttl {
                    ip[7] = t;
                }
                if let Some(t) = self.tos {
                    ip[0] = 0x60 | (t >> 4);
                    ip[1] = (ip[1] & 0x0f) | (t << 4);
                }
            }
            _ => {}
        }
    }
}

/// Where the [`IpFields`] of an IPv6 datagram come from: smoltcp passes no
/// metadata to the device for IPv6 packets (`dispatch_ip` sets it for IPv4 only),
/// so the UDP layer leaves the fields of what it sends here and the transmit
/// token asks when it sees the datagram go out.
pub trait LaterFields {
    /// The fields of the IPv6 packet `ip` leaving on `iface` (default: none).
    fn v6_fields(&mut self, iface: IfaceId, ip: &[u8]) -> IpFields;

    /// Whether [`LaterFields::tcp_leaving`] has work: urgent data on its way.
    fn urgent_pending(&self) -> bool {
        false
    }

    /// A TCP segment leaving (IP packet `ip`): the urgent pointer of its flow, if
    /// one is due (see the socket layer's `tcp::urgent`).
    fn tcp_leaving(&mut self, _ip: &mut [u8]) {}
}

/// A transmit token that applies the [`IpFields`] smoltcp passed as metadata, or
/// for IPv6 the ones `later` holds.
pub struct HookedTx<'b, T: phy::TxToken> {
    pub(crate) inner: T,
    pub(crate) medium: Medium,
    pub(crate) fields: IpFields,
    pub(crate) later: Option<(&'b mut dyn LaterFields, IfaceId)>,
    /// The packet filter and the interface: while it watches what leaves, a
    /// frame is built in its scratch buffer and reaches the device only if it
    /// passes.
    pub(crate) hooks: Option<(super::Hooks<'b>, IfaceId)>,
}

impl<'b, T: phy::TxToken> HookedTx<'b, T> {
    /// A token for smoltcp's answer to a received frame: no socket's fields.
    pub(crate) fn answer(
        inner: T,
        medium: Medium,
        hooks: super::Hooks<'b>,
        iface: IfaceId,
    ) -> Self {
        HookedTx {
            inner,
            medium,
            fields: IpFields::default(),
            later: None,
            hooks: Some((hooks, iface)),
        }
    }
}

/// Applies the per-packet fields to a frame smoltcp built.
fn finish(
    buf: &mut [u8],
    medium: Medium,
    fields: IpFields,
    later: &mut Option<(&mut dyn LaterFields, IfaceId)>,
) {
    let off = if medium == Medium::Ethernet { 14 } else { 0 };
    // Only IP frames (an ARP frame never carries metadata).
    if (medium != Medium::Ethernet
        || buf
            .get(12..14)
            .is_some_and(|t| t == [0x08, 0x00] || t == [0x86, 0xdd]))
        && let Some(ip) = buf.get_mut(off..)
    {
        let fields = match later {
            Some((l, iface))
                if fields == IpFields::default() && ip.first().map(|b| b >> 4) == Some(6) =>
            {
                l.v6_fields(*iface, ip)
            }
            _ => fields,
        };
        fields.apply(ip);
        if let Some((l, _)) = later
            && l.urgent_pending()
        {
            l.tcp_leaving(ip);
        }
    }
}

impl<T: phy::TxToken> phy::TxToken for HookedTx<'_, T> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let HookedTx {
            inner,
            medium,
            fields,
            mut later,
            hooks,
        } = self;
        if let Some((h, iface)) = hooks
            && h.filter.borrow().watches_output()
        {
            let mut fl = h.filter.borrow_mut();
            let mut scratch = fl.take_scratch(len);
            let r = f(&mut scratch[..len]);
            finish(&mut scratch[..len], medium, fields, &mut later);
            if fl.output(iface, medium, &scratch[..len]) {
                inner.consume(len, |buf| buf.copy_from_slice(&scratch[..len]));
                let mut c = h.capture.borrow_mut();
                if c.active() {
                    c.frame(iface, true, &scratch[..len]);
                }
                if iface != super::LO {
                    h.recovery.borrow_mut().sent(iface, medium, &scratch[..len]);
                }
            }
            fl.put_scratch(scratch);
            return r;
        }
        let capture = hooks.filter(|(h, _)| h.capture.borrow().active());
        // Loss recovery learns what is in flight (not on lo, which loses
        // nothing).
        let track = hooks.filter(|(_, iface)| *iface != super::LO);
        if fields == IpFields::default() && later.is_none() && capture.is_none() && track.is_none()
        {
            return inner.consume(len, f);
        }
        inner.consume(len, |buf| {
            let r = f(buf);
            finish(buf, medium, fields, &mut later);
            if let Some((h, iface)) = capture {
                h.capture.borrow_mut().frame(iface, true, buf);
            }
            if let Some((h, iface)) = track {
                h.recovery.borrow_mut().sent(iface, medium, buf);
            }
            r
        })
    }

    fn set_meta(&mut self, meta: PacketMeta) {
        self.fields = IpFields::decode(meta.id);
        self.inner.set_meta(meta);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_apply() {
        let f = IpFields {
            ttl: Some(1),
            tos: Some(0xb8),
        };
        assert_eq!(IpFields::decode(f.encode()), f);
        assert_eq!(IpFields::decode(0), IpFields::default());
        let mut v4 = [
            0x45u8, 0, 0, 28, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        f.apply(&mut v4);
        assert_eq!((v4[8], v4[1]), (1, 0xb8));
        // The checksum of a header with a correct checksum folds to 0xffff.
        let sum: u32 = v4
            .chunks(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]) as u32)
            .sum();
        assert_eq!((sum & 0xffff) + (sum >> 16), 0xffff);
        let mut v6 = [0u8; 40];
        v6[0] = 0x60;
        f.apply(&mut v6);
        assert_eq!(v6[7], 1);
        assert_eq!(((v6[0] & 0x0f) << 4) | (v6[1] >> 4), 0xb8);
    }
}
