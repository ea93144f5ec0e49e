//! The netlink wire format: message headers, the rtnetlink structures, and
//! attributes — parsed from what a program sends (every length checked; a short
//! or overlong field is an error, never a panic) and written into replies.

/// `struct nlmsghdr`'s size.
pub const NLMSG_HDRLEN: usize = 16;

/// Message types and flags (`linux/netlink.h`, `linux/rtnetlink.h`), by their C
/// names.
#[allow(dead_code)]
pub mod consts {
    pub const NLMSG_NOOP: u16 = 1;
    pub const NLMSG_ERROR: u16 = 2;
    pub const NLMSG_DONE: u16 = 3;
    pub const NLM_F_REQUEST: u16 = 0x1;
    pub const NLM_F_MULTI: u16 = 0x2;
    pub const NLM_F_ACK: u16 = 0x4;
    pub const NLM_F_ECHO: u16 = 0x8;
    pub const NLM_F_DUMP: u16 = 0x300;
    pub const NLM_F_REPLACE: u16 = 0x100;
    pub const NLM_F_EXCL: u16 = 0x200;
    pub const NLM_F_CREATE: u16 = 0x400;

    pub const RTM_NEWLINK: u16 = 16;
    pub const RTM_DELLINK: u16 = 17;
    pub const RTM_GETLINK: u16 = 18;
    pub const RTM_SETLINK: u16 = 19;
    pub const RTM_NEWADDR: u16 = 20;
    pub const RTM_DELADDR: u16 = 21;
    pub const RTM_GETADDR: u16 = 22;
    pub const RTM_NEWROUTE: u16 = 24;
    pub const RTM_DELROUTE: u16 = 25;
    pub const RTM_GETROUTE: u16 = 26;
    pub const RTM_NEWNEIGH: u16 = 28;
    pub const RTM_DELNEIGH: u16 = 29;
    pub const RTM_GETNEIGH: u16 = 30;

    pub const IFLA_ADDRESS: u16 = 1;
    pub const IFLA_BROADCAST: u16 = 2;
    pub const IFLA_IFNAME: u16 = 3;
    pub const IFLA_MTU: u16 = 4;
    pub const IFLA_QDISC: u16 = 6;
    pub const IFLA_STATS: u16 = 7;
    pub const IFLA_STATS64: u16 = 23;
    pub const IFLA_TXQLEN: u16 = 13;
    pub const IFLA_OPERSTATE: u16 = 16;
    pub const IFLA_LINKMODE: u16 = 17;
    pub const IFLA_GROUP: u16 = 27;
    pub const IFLA_CARRIER: u16 = 33;
    pub const IFLA_MIN_MTU: u16 = 50;
    pub const IFLA_MAX_MTU: u16 = 51;

    pub const IFA_ADDRESS: u16 = 1;
    pub const IFA_LOCAL: u16 = 2;
    pub const IFA_LABEL: u16 = 3;
    pub const IFA_BROADCAST: u16 = 4;
    pub const IFA_CACHEINFO: u16 = 6;
    pub const IFA_FLAGS: u16 = 8;
    pub const IFA_F_PERMANENT: u32 = 0x80;
    pub const IFA_F_NODAD: u32 = 0x02;

    pub const RTA_DST: u16 = 1;
    pub const RTA_OIF: u16 = 4;
    pub const RTA_GATEWAY: u16 = 5;
    pub const RTA_PRIORITY: u16 = 6;
    pub const RTA_PREFSRC: u16 = 7;
    pub const RTA_TABLE: u16 = 15;

    pub const RT_TABLE_MAIN: u8 = 254;
    pub const RTPROT_KERNEL: u8 = 2;
    pub const RTPROT_BOOT: u8 = 3;
    pub const RTPROT_STATIC: u8 = 4;
    pub const RTPROT_RA: u8 = 9;
    pub const RTPROT_DHCP: u8 = 16;
    pub const RT_SCOPE_UNIVERSE: u8 = 0;
    pub const RT_SCOPE_LINK: u8 = 253;
    pub const RT_SCOPE_HOST: u8 = 254;
    pub const RTN_UNICAST: u8 = 1;

    pub const RTMGRP_LINK: u32 = 0x1;
    pub const RTMGRP_IPV4_IFADDR: u32 = 0x10;
    pub const RTMGRP_IPV4_ROUTE: u32 = 0x40;
    pub const RTMGRP_IPV6_IFADDR: u32 = 0x100;
    pub const RTMGRP_IPV6_ROUTE: u32 = 0x400;

    pub const IF_OPER_DOWN: u8 = 2;
    pub const IF_OPER_UP: u8 = 6;
    pub const IF_OPER_UNKNOWN: u8 = 0;
}

/// A request message, borrowed from what the program sent.
#[derive(Clone, Copy, Debug)]
pub struct Msg<'a> {
    /// `nlmsg_type`.
    pub ty: u16,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// `nlmsg_seq`.
    pub seq: u32,
    /// The payload after the header.
    pub body: &'a [u8],
    /// The whole message, header included (echoed in errors).
    pub whole: &'a [u8],
}

/// Splits a datagram into its messages; `Err` at the first malformed header (the
/// messages before it are returned with it, as the kernel processes them).
pub fn messages(mut d: &[u8]) -> (Vec<Msg<'_>>, bool) {
    let mut out = Vec::new();
    while d.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes(d[0..4].try_into().unwrap_or_default()) as usize;
        if len < NLMSG_HDRLEN || len > d.len() {
            return (out, false);
        }
        out.push(Msg {
            ty: u16::from_ne_bytes([d[4], d[5]]),
            flags: u16::from_ne_bytes([d[6], d[7]]),
            seq: u32::from_ne_bytes(d[8..12].try_into().unwrap_or_default()),
            body: &d[NLMSG_HDRLEN..len],
            whole: &d[..len],
        });
        let next = align(len).min(d.len());
        d = &d[next..];
    }
    (out, true)
}

/// Netlink's 4-byte alignment.
pub fn align(n: usize) -> usize {
    (n + 3) & !3
}

/// Attributes (`struct rtattr`) after a fixed header of `skip` bytes.
pub fn attrs(body: &[u8], skip: usize) -> impl Iterator<Item = (u16, &[u8])> {
    let mut d = body.get(skip..).unwrap_or(&[]);
    std::iter::from_fn(move || {
        if d.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([d[0], d[1]]) as usize;
        let ty = u16::from_ne_bytes([d[2], d[3]]) & 0x3fff;
        if len < 4 || len > d.len() {
            d = &[];
            return None;
        }
        let v = &d[4..len];
        d = &d[align(len).min(d.len())..];
        Some((ty, v))
    })
}

/// A reply being written: messages appended to one datagram.
#[derive(Default)]
pub struct Writer {
    /// The datagram so far.
    pub buf: Vec<u8>,
    /// Where the message being written starts.
    start: usize,
}

impl Writer {
    /// Begins a message.
    pub fn begin(&mut self, ty: u16, flags: u16, seq: u32, pid: u32) {
        self.start = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&pid.to_ne_bytes());
    }

    /// Appends raw bytes (a fixed header), padded to 4.
    pub fn raw(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
        self.pad();
    }

    /// Appends an attribute.
    pub fn attr(&mut self, ty: u16, v: &[u8]) {
        self.buf
            .extend_from_slice(&((4 + v.len()) as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(v);
        self.pad();
    }

    /// A `u32` attribute.
    pub fn attr_u32(&mut self, ty: u16, v: u32) {
        self.attr(ty, &v.to_ne_bytes());
    }

    /// A `u8` attribute.
    pub fn attr_u8(&mut self, ty: u16, v: u8) {
        self.attr(ty, &[v]);
    }

    /// A NUL-terminated string attribute.
    pub fn attr_str(&mut self, ty: u16, s: &str) {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.attr(ty, &v);
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    /// Ends the message begun last: writes its length.
    pub fn end(&mut self) {
        let len = (self.buf.len() - self.start) as u32;
        self.buf[self.start..self.start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    /// An `NLMSG_ERROR` answering `req` (`errno` 0: an acknowledgement), echoing its
    /// header (and for errors its payload, as without `NETLINK_CAP_ACK`).
    pub fn error(&mut self, req: &Msg<'_>, errno: i32, pid: u32) {
        self.begin(consts::NLMSG_ERROR, 0, req.seq, pid);
        self.buf.extend_from_slice(&(-errno).to_ne_bytes());
        if errno == 0 {
            self.buf.extend_from_slice(&req.whole[..NLMSG_HDRLEN]);
        } else {
            self.buf.extend_from_slice(req.whole);
        }
        self.pad();
        self.end();
    }

    /// The `NLMSG_DONE` that ends a dump.
    pub fn done(&mut self, req: &Msg<'_>, pid: u32) {
        self.begin(consts::NLMSG_DONE, consts::NLM_F_MULTI, req.seq, pid);
        self.buf.extend_from_slice(&0i32.to_ne_bytes());
        self.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_attributes_round_trip() {
        let mut w = Writer::default();
        w.begin(
            consts::RTM_GETLINK,
            consts::NLM_F_REQUEST | consts::NLM_F_DUMP,
            7,
            0,
        );
        w.raw(&[0u8; 16]);
        w.attr_u32(29, 1);
        w.attr_str(consts::IFLA_IFNAME, "eth0");
        w.end();
        let (m, ok) = messages(&w.buf);
        assert!(ok);
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].ty, m[0].seq), (consts::RTM_GETLINK, 7));
        let a: Vec<_> = attrs(m[0].body, 16).collect();
        assert_eq!(a, vec![(29, &1u32.to_ne_bytes()[..]), (3, &b"eth0\0"[..])]);
    }

    #[test]
    fn garbage_never_panics() {
        for d in [
            &[][..],
            &[0xff; 3],
            &[20, 0, 0, 0, 1, 2],
            &[255; 64],
            &[16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 9],
        ] {
            let (m, _) = messages(d);
            for x in m {
                let _ = attrs(x.body, 16).count();
                let _ = attrs(x.body, 1000).count();
            }
        }
        let (_, ok) = messages(&[40, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(!ok, "a length past the datagram is malformed");
    }
}
