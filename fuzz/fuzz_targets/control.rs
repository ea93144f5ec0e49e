//! Control-protocol requests as a container program would send them over its
//! control socket: each input is a sequence of length-prefixed messages,
//! decoded as the server decodes them and served on a stack that has a TCP, a
//! UDP and a raw socket open (a selector byte picks the socket each names).
//! Nothing panics, every answer is a valid reply, and the stack keeps working.

#![no_main]

use libfuzzer_sys::fuzz_target;
use netcell_proto::{Request, RequestHeader, decode_request};
use netcell_stack::control::service::{Caller, serve};
use netcell_stack::device::PipeDevice;
use netcell_stack::{SocketConfig, Stack};
use std::os::fd::AsFd;

fn open(stack: &mut Stack<PipeDevice>, ty: i32, protocol: i32) -> u64 {
    let req = Request::Socket {
        domain: libc::AF_INET,
        ty,
        protocol,
    };
    let mut fds = heapless::Vec::new();
    let ans = serve(
        stack,
        RequestHeader::default(),
        &req,
        &mut fds,
        Caller::default(),
    );
    ans.fd
        .and_then(|fd| netcell_sys::inode(fd.as_fd()).ok().map(|(i, _)| i))
        .unwrap_or(0)
}

fuzz_target!(|data: &[u8]| {
    let mut stack: Stack<PipeDevice> = Stack::new(None, SocketConfig::default()).unwrap();
    let inodes = [
        open(&mut stack, libc::SOCK_STREAM, 0),
        open(&mut stack, libc::SOCK_DGRAM, 0),
        open(&mut stack, libc::SOCK_DGRAM, libc::IPPROTO_ICMP),
        0,
    ];
    let mut d = data;
    let mut msg = Vec::with_capacity(4096);
    while d.len() >= 3 {
        // A body length, the socket it names, the operation, the body; the
        // header (magic, version, sequence, inode) is written here.
        let n = (usize::from(d[0]) << 4 | usize::from(d[1] >> 4)).min(d.len() - 3);
        let pick = usize::from(d[1] & 3);
        let op = d[2] % 24;
        msg.clear();
        msg.extend_from_slice(b"nc");
        msg.push(netcell_proto::VERSION);
        msg.push(op);
        msg.extend_from_slice(&[0; 12]);
        msg.extend_from_slice(&d[3..3 + n]);
        d = &d[3 + n..];
        let Ok((mut hdr, req)) = decode_request(&msg) else {
            continue;
        };
        hdr.sock = inodes[pick];
        let mut fds = heapless::Vec::new();
        let ans = serve(&mut stack, hdr, &req, &mut fds, Caller::default());
        assert!(ans.errno >= 0 && ans.errno < 4096, "errno {}", ans.errno);
        stack.poll();
    }
    // Still serving: a new socket opens.
    assert!(open(&mut stack, libc::SOCK_STREAM, 0) != 0);
});
