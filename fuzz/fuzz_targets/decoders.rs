//! The front ends' argument decoders (`netcell-frontend`, shared by the seccomp
//! supervisor and the preload library): socket addresses, option values,
//! interface requests (`ifreq`/`ifconf`), iptables' table options and a
//! datagram's origin (`msg_name`/`msg_control`), read from and written to a
//! program's memory whose contents and layout come from the fuzzer, served by
//! a real stack.
//!
//! The program's memory is one 64 KiB region at [`BASE`] holding the input's
//! bytes; anything else is unmapped (`EFAULT`). Each call's pointers and lengths
//! come from the input too, so they land inside, across the region's end, or
//! anywhere.
//!
//! Invariants: nothing panics; a failure is a Linux errno (1 to 4095); nothing
//! is written outside the region; the stack still opens a socket afterwards.

#![no_main]

use libfuzzer_sys::fuzz_target;
use netcell_frontend::{self as fe, Fail, Memory, Reply, Service};
use netcell_proto::{Request, RequestHeader};
use netcell_stack::Stack;
use netcell_stack::control::service::{Caller, serve};
use netcell_stack::device::PipeDevice;
use netcell_stack::SocketConfig;
use std::cell::RefCell;
use std::os::fd::AsFd;

const BASE: u64 = 0x7f00_0000_0000;
const SIZE: usize = 64 * 1024;

struct Mem(RefCell<Vec<u8>>);

impl Memory for Mem {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Fail> {
        let m = self.0.borrow();
        let off = addr.checked_sub(BASE).ok_or(Fail::Errno(libc::EFAULT))? as usize;
        let src = m.get(off..off.checked_add(buf.len()).ok_or(Fail::Errno(libc::EFAULT))?);
        buf.copy_from_slice(src.ok_or(Fail::Errno(libc::EFAULT))?);
        Ok(())
    }
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), Fail> {
        let mut m = self.0.borrow_mut();
        let off = addr.checked_sub(BASE).ok_or(Fail::Errno(libc::EFAULT))? as usize;
        let end = off.checked_add(data.len()).ok_or(Fail::Errno(libc::EFAULT))?;
        m.get_mut(off..end)
            .ok_or(Fail::Errno(libc::EFAULT))?
            .copy_from_slice(data);
        Ok(())
    }
}

struct Direct<'s> {
    stack: &'s mut Stack<PipeDevice>,
    caller: Caller,
}

impl Service for Direct<'_> {
    fn ask<R>(&mut self, ino: u64, req: &Request<'_>, f: impl FnOnce(Reply<'_>) -> R) -> Result<R, Fail> {
        let a = serve(self.stack, RequestHeader { seq: 0, sock: ino }, req, &mut heapless::Vec::new(), self.caller);
        Ok(f(Reply { errno: a.errno, value: a.value, flags: a.flags, data: a.data() }))
    }
}

/// Reads the input as a stream of small numbers.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }
    /// A pointer: null, inside the region, near its end, or wild.
    fn ptr(&mut self) -> u64 {
        match self.byte() % 8 {
            0 => 0,
            1 => BASE + SIZE as u64 - u64::from(self.byte()),
            2 => u64::from(self.u32()) << 16,
            _ => BASE + u64::from(self.u32()) % SIZE as u64,
        }
    }
    /// A length: small, around a structure's size, or wild.
    fn len(&mut self) -> u32 {
        match self.byte() % 4 {
            0 => u32::from(self.byte()),
            1 => [16, 28, 32, 40, 110, 128][usize::from(self.byte()) % 6],
            2 => self.u32(),
            _ => u32::from(self.byte()) * 64,
        }
    }
}

const SIOCS: [u32; 16] = [
    0x8910, 0x8912, 0x8913, 0x8914, 0x8915, 0x8916, 0x8919, 0x891b, 0x8921, 0x8927, 0x8933,
    0x8942, 0x8b01, 0x541b, 0x8906, 0x8940,
];
const LEVELS: [i32; 6] = [libc::SOL_SOCKET, libc::IPPROTO_TCP, libc::IPPROTO_IP, libc::IPPROTO_IPV6, libc::IPPROTO_UDP, 263];

fn check<T>(r: Result<T, Fail>) {
    if let Err(Fail::Errno(e)) = r {
        assert!((1..4096).contains(&e), "errno {e}");
    }
}

fuzz_target!(|data: &[u8]| {
    // The input's head fills the memory; its tail drives the calls.
    let split = usize::from(data.first().copied().unwrap_or(0)) * 64 % (data.len().max(1));
    let (fill, calls) = data.split_at(split);
    let mut region = vec![0u8; SIZE];
    region[..fill.len().min(SIZE)].copy_from_slice(&fill[..fill.len().min(SIZE)]);
    let mem = Mem(RefCell::new(region));
    let mut stack: Stack<PipeDevice> = Stack::new(None, SocketConfig::default()).unwrap();
    let open = |stack: &mut Stack<PipeDevice>, domain, ty, protocol| {
        let req = Request::Socket { domain, ty, protocol };
        let ans = serve(stack, RequestHeader::default(), &req, &mut heapless::Vec::new(), Caller::default());
        ans.fd.and_then(|fd| netcell_sys::inode(fd.as_fd()).ok().map(|(i, _)| (i, fd)))
    };
    let socks: Vec<_> = [
        open(&mut stack, libc::AF_INET, libc::SOCK_STREAM, 0),
        open(&mut stack, libc::AF_INET6, libc::SOCK_DGRAM, 0),
        open(&mut stack, libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut input = Input(calls);
    let mut turns = 0;
    while !input.0.is_empty() && turns < 64 {
        turns += 1;
        let (ino, _) = &socks[usize::from(input.byte()) % socks.len()];
        let ino = if input.byte() == 0xff { 12345 } else { *ino };
        let caller = Caller { pid: if input.byte() & 1 == 1 { std::process::id() } else { 0 } };
        let mut svc = Direct { stack: &mut stack, caller };
        match input.byte() % 10 {
            0 => {
                let (a, l) = (input.ptr(), input.len());
                check(fe::bind(&mem, &mut svc, ino, a, l));
            }
            1 => {
                let peer = input.byte() & 1 == 1;
                let (a, l) = (input.ptr(), input.ptr());
                check(fe::name(&mem, &mut svc, ino, peer, a, l));
            }
            2 => {
                let level = LEVELS[usize::from(input.byte()) % LEVELS.len()];
                let name = i32::from(input.byte() % 100);
                let (v, l) = (input.ptr(), input.len());
                check(fe::setsockopt(&mem, &mut svc, ino, (level, name), v, l));
            }
            3 => {
                let level = LEVELS[usize::from(input.byte()) % LEVELS.len()];
                let name = i32::from(input.byte() % 100);
                let (v, l) = (input.ptr(), input.ptr());
                check(fe::getsockopt(&mem, &mut svc, ino, (level, name), v, l));
            }
            4 | 5 => {
                let req = SIOCS[usize::from(input.byte()) % SIOCS.len()];
                let arg = input.ptr();
                check(fe::ifreq::ioctl(&mem, &mut svc, req, arg, true));
            }
            6 => {
                // iptables' options, both families.
                let (level, names) = if input.byte() & 1 == 0 { (libc::SOL_IP, 64) } else { (libc::SOL_IPV6, 64) };
                let name = names + i32::from(input.byte() % 4);
                let (v, l) = (input.ptr(), input.len() % (1 << 20));
                check(fe::table::set(&mem, &mut svc, ino, (level, name), v, l));
            }
            7 => {
                let (level, name) = if input.byte() & 1 == 0 { (libc::SOL_IP, 64 + i32::from(input.byte() % 4)) } else { (libc::SOL_IPV6, 64 + i32::from(input.byte() % 4)) };
                let (v, l) = (input.ptr(), input.ptr());
                check(fe::table::get(&mem, &mut svc, ino, (level, name), v, l));
            }
            8 => {
                let full = input.u32() as usize % 70_000;
                let n = usize::from(input.byte() % 17);
                let prefix: Vec<u8> = (0..n).map(|_| input.byte()).collect();
                let peek = input.byte() & 1 == 1;
                let wants = fe::dgram::Wants {
                    name: (input.byte() & 1 == 1).then(|| (input.ptr(), input.len())),
                    control: (input.byte() & 1 == 1).then(|| (input.ptr(), input.len() as usize)),
                };
                if let Ok(o) = fe::dgram::origin(&mem, &mut svc, ino, (full, &prefix, peek), wants) {
                    if let Some((_, room)) = wants.control {
                        assert!(o.controllen <= room, "{o:?} in {room}");
                    }
                }
            }
            _ => {
                let (a, l) = (input.ptr(), input.len());
                let mut buf = [0u8; netcell_proto::MAX_SOCKADDR];
                if let Ok(addr) = fe::sockaddr_arg(&mem, a, l, &mut buf) {
                    assert!(addr.len() <= netcell_proto::MAX_SOCKADDR);
                    check(fe::connect_end(&mut svc, ino, addr, input.byte() & 1 == 1));
                }
            }
        }
        stack.poll();
    }
    assert!(mem.0.borrow().len() == SIZE);
    assert!(open(&mut stack, libc::AF_INET, libc::SOCK_STREAM, 0).is_some(), "the stack opens no socket any more");
});
