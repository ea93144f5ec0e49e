//! `NETLINK_SOCK_DIAG`: `SOCK_DIAG_BY_FAMILY` dumps of the container's TCP and UDP
//! sockets (`inet_diag`, what `ss` asks), from [`crate::socket::diag`]. Other
//! families (`AF_UNIX`, `AF_PACKET`, `AF_NETLINK`) get empty dumps: the
//! container's unix sockets are the kernel's, outside its network.

use super::wire::{self, Msg, Writer, consts::*};
use crate::iface::Interfaces;
use crate::socket::Sockets;
use std::net::SocketAddr;

const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `sizeof(struct inet_diag_req_v2)`.
const REQ_LEN: usize = 56;

/// Serves one request datagram from port `pid`.
pub fn serve(sockets: &Sockets, ifs: &mut Interfaces, data: &[u8], pid: u32) -> Vec<Vec<u8>> {
    let (msgs, _) = wire::messages(data);
    let mut replies = Vec::new();
    for m in &msgs {
        if m.flags & NLM_F_REQUEST == 0 {
            continue;
        }
        let mut w = Writer::default();
        match m.ty {
            SOCK_DIAG_BY_FAMILY if m.body.len() >= REQ_LEN => {
                dump(sockets, ifs, m, pid, &mut w, &mut replies)
            }
            SOCK_DIAG_BY_FAMILY => w.error(m, libc::EINVAL, pid),
            _ => w.error(m, libc::EOPNOTSUPP, pid),
        }
        replies.push(w.buf);
    }
    replies
}

/// A dump's datagrams stay below this (a stand-in takes a datagram of at most
/// its socket buffer).
const DATAGRAM: usize = 32 * 1024;

fn dump(
    sockets: &Sockets,
    ifs: &mut Interfaces,
    m: &Msg<'_>,
    pid: u32,
    w: &mut Writer,
    full: &mut Vec<Vec<u8>>,
) {
    let (family, protocol) = (m.body[0] as i32, m.body[1] as i32);
    let states = u32::from_ne_bytes(m.body[4..8].try_into().unwrap_or_default());
    if m.flags & NLM_F_DUMP != NLM_F_DUMP {
        // A lookup of one socket by its addresses: not offered.
        w.error(m, libc::EOPNOTSUPP, pid);
        return;
    }
    if family == libc::AF_INET || family == libc::AF_INET6 {
        let uid = unsafe_free_uid();
        for e in sockets.diag(ifs, protocol) {
            let v6 = family == libc::AF_INET6;
            // A v6 socket lists under AF_INET6 (its v4-mapped peers too).
            if e.v6 != v6 || states & (1 << e.state) == 0 {
                continue;
            }
            if w.buf.len() > DATAGRAM {
                full.push(std::mem::take(&mut w.buf));
            }
            w.begin(SOCK_DIAG_BY_FAMILY, NLM_F_MULTI, m.seq, pid);
            let mut msg = [0u8; 72];
            msg[0] = family as u8;
            msg[1] = e.state;
            put_id(&mut msg[4..52], e.local, e.remote, e.cookie);
            msg[56..60].copy_from_slice(&e.queues.0.to_ne_bytes());
            msg[60..64].copy_from_slice(&e.queues.1.to_ne_bytes());
            msg[64..68].copy_from_slice(&uid.to_ne_bytes());
            msg[68..72].copy_from_slice(&(e.inode as u32).to_ne_bytes());
            w.raw(&msg);
            w.end();
        }
    }
    w.done(m, pid);
}

/// `struct inet_diag_sockid`: ports (network order), addresses, interface, cookie.
fn put_id(id: &mut [u8], local: SocketAddr, remote: Option<SocketAddr>, cookie: u64) {
    id[0..2].copy_from_slice(&local.port().to_be_bytes());
    id[2..4].copy_from_slice(&remote.map_or(0, |r| r.port()).to_be_bytes());
    let put = |out: &mut [u8], a: Option<SocketAddr>| match a.map(|a| a.ip()) {
        Some(std::net::IpAddr::V4(v4)) => out[..4].copy_from_slice(&v4.octets()),
        Some(std::net::IpAddr::V6(v6)) => out.copy_from_slice(&v6.octets()),
        None => {}
    };
    put(&mut id[4..20], Some(local));
    put(&mut id[20..36], remote);
    id[40..44].copy_from_slice(&(cookie as u32).to_ne_bytes());
    id[44..48].copy_from_slice(&((cookie >> 32) as u32).to_ne_bytes());
}

/// The uid the container runs as (netcell's own: containers run as their owner).
fn unsafe_free_uid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap_or(0)
}
