//! The seccomp filter a container runs under: a BPF program generated from the
//! call table ([`super::table`]), which says for each special call what happens to
//! it. In short, on x86-64:
//!
//! - the socket calls the stack answers notify the supervisor; `socket` and
//!   `socketpair` of `AF_UNIX` run (a new unix socket reaches no network);
//!   `socketpair` of any other family fails with `EOPNOTSUPP`;
//! - `sendto`/`recvfrom` notify only with an address argument: `send`/`recv` on a
//!   connected socket (every TCP byte) stay native;
//! - `ioctl` notifies only for `FIONREAD`, the socket and interface ioctls
//!   (`SIOC*`, 0x8900–0x89ff) and the wireless ones (0x8b00–0x8bff): terminals and
//!   files are not slowed down; the TUN/TAP ioctls (type `'T'`, numbers 200–255:
//!   `TUNSETIFF` and friends) fail with `EPERM`, so a container cannot attach to a
//!   TAP device of its user through `/dev/net/tun` and put frames on that link;
//!   `TIOCSTI` fails with `EIO` (as on a kernel with `dev.tty.legacy_tiocsti` off):
//!   bytes pushed into a shared terminal would run as commands in the user's shell
//!   once the container ends;
//! - `open`, `openat` and `openat2` notify only when the container has its own
//!   resolver files (see `files`);
//! - io_uring fails with `ENOSYS` (its socket operations would bypass the filter;
//!   runtimes fall back to epoll); x32 system calls fail with `ENOSYS`.
//!
//! For i386 programs every socket entry point (`socketcall`, the direct socket
//! calls of Linux 4.3+, `recvmmsg`, `sendmmsg`, `recvmmsg_time64`) and io_uring
//! fail with `ENOSYS`; the interface and TUN ioctls fail with `EPERM` (the
//! supervisor serves x86-64 calls only, and on any socket these describe the host's
//! interfaces); the opens notify when watched; other i386 calls run. Any other
//! architecture is killed.

use super::table::{self, Entry, Rule};
use libc::sock_filter;

/// `AUDIT_ARCH_X86_64`.
pub const ARCH_X86_64: u32 = 0xC000_003E;
/// `AUDIT_ARCH_I386`.
pub const ARCH_I386: u32 = 0x4000_0003;
const X32_BIT: u32 = 0x4000_0000;

const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const fn off_arg(i: u32, high: bool) -> u32 {
    16 + 8 * i + if high { 4 } else { 0 }
}

/// `TIOCSTI`: pushes bytes into a terminal's input, as if typed — into the shell
/// the container was started from, once it reads again.
const TIOCSTI: u32 = 0x5412;
/// `_IOC_TYPE` 'T' with numbers 200..=255: the TUN/TAP driver's ioctls.
const TUN_IOCTL_FIRST: u32 = 0x54c8;
const TUN_IOCTL_LAST: u32 = 0x54ff;

fn stmt(code: u32, k: u32) -> sock_filter {
    sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

const LD_W_ABS: u32 = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
const JEQ: u32 = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
const JGE: u32 = libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K;
const JGT: u32 = libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K;
const AND: u32 = libc::BPF_ALU | libc::BPF_AND | libc::BPF_K;
const RET: u32 = libc::BPF_RET | libc::BPF_K;

fn ret(v: u32) -> sock_filter {
    stmt(RET, v)
}

fn errno(e: i32) -> u32 {
    libc::SECCOMP_RET_ERRNO | (e as u32 & libc::SECCOMP_RET_DATA)
}

/// A jump target of [`Asm`].
#[derive(Clone, Copy, PartialEq, Eq)]
struct Label(usize);

/// A small assembler with symbolic jump targets, resolved when finished.
struct Asm {
    code: Vec<sock_filter>,
    /// (instruction index, label, whether the label is the jt target)
    fixups: Vec<(usize, Label, bool)>,
    /// Where each label points, once bound.
    labels: Vec<Option<usize>>,
}

impl Asm {
    fn new() -> Self {
        Asm {
            code: Vec::new(),
            fixups: Vec::new(),
            labels: Vec::new(),
        }
    }
    fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }
    fn bind(&mut self, l: Label) {
        self.labels[l.0] = Some(self.code.len());
    }
    fn push(&mut self, f: sock_filter) {
        self.code.push(f);
    }
    /// `if A == k goto l` (fall through otherwise).
    fn jeq(&mut self, k: u32, l: Label) {
        self.fixups.push((self.code.len(), l, true));
        self.code.push(jump(JEQ, k, 0, 0));
    }
    /// `if A >= k goto l`.
    fn jge(&mut self, k: u32, l: Label) {
        self.fixups.push((self.code.len(), l, true));
        self.code.push(jump(JGE, k, 0, 0));
    }
    /// `if A != k goto l`.
    fn jne(&mut self, k: u32, l: Label) {
        self.fixups.push((self.code.len(), l, false));
        self.code.push(jump(JEQ, k, 0, 0));
    }
    /// `if A > k goto l`.
    fn jgt(&mut self, k: u32, l: Label) {
        self.fixups.push((self.code.len(), l, true));
        self.code.push(jump(JGT, k, 0, 0));
    }
    fn finish(mut self) -> Vec<sock_filter> {
        for (at, l, jt) in std::mem::take(&mut self.fixups) {
            let target = self.labels[l.0].expect("label bound");
            let off = target - at - 1;
            assert!(off < 256, "BPF jump too far");
            if jt {
                self.code[at].jt = off as u8;
            } else {
                self.code[at].jf = off as u8;
            }
        }
        self.code
    }
}

/// The program's shared endings.
struct Ends {
    notify: Label,
    allow: Label,
    eperm: Label,
    eio: Label,
    /// `ret ERRNO(e)` for the other errno values, made as needed.
    errnos: Vec<(i32, Label)>,
}

impl Ends {
    fn errno(&mut self, a: &mut Asm, e: i32) -> Label {
        match e {
            libc::EPERM => self.eperm,
            libc::EIO => self.eio,
            _ => match self.errnos.iter().find(|(x, _)| *x == e) {
                Some((_, l)) => *l,
                None => {
                    let l = a.label();
                    self.errnos.push((e, l));
                    l
                }
            },
        }
    }
}

/// The container's filter; `watch_open` hands the opens to netcell too.
pub fn program(watch_open: bool) -> Vec<sock_filter> {
    let mut a = Asm::new();
    let mut ends = Ends {
        notify: a.label(),
        allow: a.label(),
        eperm: a.label(),
        eio: a.label(),
        errnos: Vec::new(),
    };
    let (x86_64, i386) = (a.label(), a.label());
    a.push(stmt(LD_W_ABS, OFF_ARCH));
    a.jeq(ARCH_X86_64, x86_64);
    a.jeq(ARCH_I386, i386);
    a.push(ret(libc::SECCOMP_RET_KILL_PROCESS));

    a.bind(x86_64);
    a.push(stmt(LD_W_ABS, OFF_NR));
    let enosys = ends.errno(&mut a, libc::ENOSYS);
    a.jge(X32_BIT, enosys);
    dispatch(&mut a, &mut ends, table::X86_64, watch_open);

    a.bind(i386);
    a.push(stmt(LD_W_ABS, OFF_NR));
    dispatch(&mut a, &mut ends, table::I386, watch_open);

    a.bind(ends.notify);
    a.push(ret(libc::SECCOMP_RET_USER_NOTIF));
    a.bind(ends.allow);
    a.push(ret(libc::SECCOMP_RET_ALLOW));
    a.bind(ends.eperm);
    a.push(ret(errno(libc::EPERM)));
    // What Linux answers TIOCSTI with when dev.tty.legacy_tiocsti is off.
    a.bind(ends.eio);
    a.push(ret(errno(libc::EIO)));
    for (e, l) in std::mem::take(&mut ends.errnos) {
        a.bind(l);
        a.push(ret(errno(e)));
    }
    a.finish()
}

/// With the call number in the accumulator: one comparison per entry of `table`
/// (calls not in it run), then the code of the rules that look at arguments.
fn dispatch(a: &mut Asm, ends: &mut Ends, table: &[Entry], watch_open: bool) {
    let mut blocks = Vec::new();
    for e in table {
        match e.rule {
            Rule::Notify => a.jeq(e.nr, ends.notify),
            Rule::NotifyWhenWatched if watch_open => a.jeq(e.nr, ends.notify),
            Rule::NotifyWhenWatched => {}
            Rule::Fail(err) => {
                let l = ends.errno(a, err);
                a.jeq(e.nr, l);
            }
            rule => {
                let l = a.label();
                a.jeq(e.nr, l);
                blocks.push((l, rule));
            }
        }
    }
    a.push(ret(libc::SECCOMP_RET_ALLOW));
    for (l, rule) in blocks {
        a.bind(l);
        match rule {
            Rule::RunIfElseNotify { arg, value } => {
                a.push(stmt(LD_W_ABS, off_arg(arg, false)));
                a.jeq(value, ends.allow);
                a.push(ret(libc::SECCOMP_RET_USER_NOTIF));
            }
            Rule::RunIfElseFail {
                arg,
                value,
                errno: e,
            } => {
                a.push(stmt(LD_W_ABS, off_arg(arg, false)));
                a.jeq(value, ends.allow);
                a.push(ret(errno(e)));
            }
            Rule::NotifyIfSet { arg } => {
                a.push(stmt(LD_W_ABS, off_arg(arg, false)));
                a.jne(0, ends.notify);
                a.push(stmt(LD_W_ABS, off_arg(arg, true)));
                a.jne(0, ends.notify);
                a.push(ret(libc::SECCOMP_RET_ALLOW));
            }
            Rule::Ioctl { served } => ioctl(a, ends, served),
            Rule::Notify | Rule::NotifyWhenWatched | Rule::Fail(_) => {}
        }
    }
}

/// An `ioctl`'s request decides (see [`Rule::Ioctl`]).
fn ioctl(a: &mut Asm, ends: &Ends, served: bool) {
    let (interface, tun) = (if served { ends.notify } else { ends.eperm }, a.label());
    a.push(stmt(LD_W_ABS, off_arg(1, false)));
    if served {
        a.jeq(libc::FIONREAD as u32, ends.notify);
    }
    a.jeq(TIOCSTI, ends.eio);
    a.jgt(0x8bff, tun);
    a.jge(0x8b00, interface);
    a.jgt(0x89ff, tun);
    a.jge(0x8900, interface);
    // The TUN/TAP requests, any direction and size: the low 16 bits.
    a.bind(tun);
    a.push(stmt(AND, 0xffff));
    a.jgt(TUN_IOCTL_LAST, ends.allow);
    a.jge(TUN_IOCTL_FIRST, ends.eperm);
    a.push(ret(libc::SECCOMP_RET_ALLOW));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny BPF interpreter for the instructions `program` uses.
    fn run(prog: &[sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_ne_bytes());
        data[4..8].copy_from_slice(&arch.to_ne_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
        }
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let f = prog[pc];
            let code = f.code as u32;
            if code == LD_W_ABS {
                acc = u32::from_ne_bytes(data[f.k as usize..f.k as usize + 4].try_into().unwrap());
                pc += 1;
            } else if code == AND {
                acc &= f.k;
                pc += 1;
            } else if code == RET {
                return f.k;
            } else {
                let taken = match code {
                    JEQ => acc == f.k,
                    JGE => acc >= f.k,
                    JGT => acc > f.k,
                    _ => panic!("unknown op {code:#x}"),
                };
                pc += 1 + if taken { f.jt as usize } else { f.jf as usize };
            }
        }
    }

    #[test]
    fn decisions() {
        let p = program(false);
        let x = |nr, args| run(&p, ARCH_X86_64, nr, args);
        let none = [0; 6];
        assert_eq!(x(41, none), libc::SECCOMP_RET_USER_NOTIF, "socket");
        assert_eq!(x(0, none), libc::SECCOMP_RET_ALLOW, "read");
        assert_eq!(x(1, none), libc::SECCOMP_RET_ALLOW, "write");
        assert_eq!(x(44, none), libc::SECCOMP_RET_ALLOW, "send without address");
        assert_eq!(
            x(44, [3, 0, 0, 0, 0x7ffd_0000_1000, 16]),
            libc::SECCOMP_RET_USER_NOTIF,
            "sendto with address"
        );
        assert_eq!(
            x(45, [3, 0, 0, 0, 0x1000, 0]),
            libc::SECCOMP_RET_USER_NOTIF,
            "recvfrom with address"
        );
        assert_eq!(
            x(16, [1, 0x5401, 0, 0, 0, 0]),
            libc::SECCOMP_RET_ALLOW,
            "TCGETS"
        );
        assert_eq!(
            x(16, [1, libc::FIONREAD, 0, 0, 0, 0]),
            libc::SECCOMP_RET_USER_NOTIF
        );
        assert_eq!(
            x(16, [1, 0x8912, 0, 0, 0, 0]),
            libc::SECCOMP_RET_USER_NOTIF,
            "SIOCGIFCONF"
        );
        assert_eq!(x(16, [1, 0x8a00, 0, 0, 0, 0]), libc::SECCOMP_RET_ALLOW);
        assert_eq!(x(425, none), errno(libc::ENOSYS), "io_uring_setup");
        assert_eq!(x(41 | X32_BIT, none), errno(libc::ENOSYS), "x32");
        let i = |nr| run(&p, ARCH_I386, nr, none);
        assert_eq!(i(102), errno(libc::ENOSYS), "socketcall");
        assert_eq!(i(359), errno(libc::ENOSYS), "i386 socket");
        assert_eq!(i(373), errno(libc::ENOSYS), "i386 shutdown");
        assert_eq!(i(417), errno(libc::ENOSYS), "i386 recvmmsg_time64");
        assert_eq!(x(16, [0, 0x5412, 0, 0, 0, 0]), errno(libc::EIO), "TIOCSTI");
        assert_eq!(
            run(&p, ARCH_I386, 54, [0, 0x5412, 0, 0, 0, 0]),
            errno(libc::EIO),
            "i386 TIOCSTI"
        );
        assert_eq!(i(374), libc::SECCOMP_RET_ALLOW);
        assert_eq!(i(3), libc::SECCOMP_RET_ALLOW, "i386 read");
        assert_eq!(
            run(&p, 0xC000_00B7, 0, none),
            libc::SECCOMP_RET_KILL_PROCESS,
            "aarch64"
        );
        assert_eq!(
            x(16, [1, 0x8b01, 0, 0, 0, 0]),
            libc::SECCOMP_RET_USER_NOTIF,
            "SIOCGIWNAME"
        );
        assert_eq!(x(257, none), libc::SECCOMP_RET_ALLOW, "openat unwatched");
        let unix = libc::AF_UNIX as u64;
        assert_eq!(
            x(41, [unix, 1, 0, 0, 0, 0]),
            libc::SECCOMP_RET_ALLOW,
            "AF_UNIX socket"
        );
        assert_eq!(
            x(41, [2, 1, 0, 0, 0, 0]),
            libc::SECCOMP_RET_USER_NOTIF,
            "AF_INET socket"
        );
        assert_eq!(
            x(53, [unix, 1, 0, 0, 0, 0]),
            libc::SECCOMP_RET_ALLOW,
            "AF_UNIX socketpair"
        );
        for family in [2u64, 10, 16, 17, 40] {
            assert_eq!(
                x(53, [family, 1, 0, 0, 0, 0]),
                errno(libc::EOPNOTSUPP),
                "socketpair of family {family}"
            );
        }
        // TUNSETIFF, TUNGETIFF, TUNSETOFFLOAD, TUNGETFILTER, TUNSETQUEUE: refused;
        // terminal ioctls of the same type run.
        for req in [
            0x400454ca_u64,
            0x800454d2,
            0x400454d0,
            0x801054db,
            0x400454d9,
        ] {
            assert_eq!(x(16, [3, req, 0, 0, 0, 0]), errno(libc::EPERM), "{req:#x}");
            assert_eq!(
                run(&p, ARCH_I386, 54, [3, req, 0, 0, 0, 0]),
                errno(libc::EPERM),
                "i386 {req:#x}"
            );
        }
        for req in [0x5401_u64, 0x5413, 0x80045430, 0x5441] {
            assert_eq!(
                x(16, [1, req, 0, 0, 0, 0]),
                libc::SECCOMP_RET_ALLOW,
                "{req:#x}"
            );
            assert_eq!(
                run(&p, ARCH_I386, 54, [1, req, 0, 0, 0, 0]),
                libc::SECCOMP_RET_ALLOW,
                "i386 {req:#x}"
            );
        }
        // i386: the interface ioctls fail, FIONREAD runs.
        assert_eq!(
            run(&p, ARCH_I386, 54, [3, 0x8912, 0, 0, 0, 0]),
            errno(libc::EPERM),
            "i386 SIOCGIFCONF"
        );
        assert_eq!(
            run(&p, ARCH_I386, 54, [3, 0x8b01, 0, 0, 0, 0]),
            errno(libc::EPERM),
            "i386 wireless"
        );
        assert_eq!(
            run(&p, ARCH_I386, 54, [3, libc::FIONREAD, 0, 0, 0, 0]),
            libc::SECCOMP_RET_ALLOW
        );
        assert_eq!(
            run(&p, ARCH_I386, 5, none),
            libc::SECCOMP_RET_ALLOW,
            "i386 open unwatched"
        );
        let p = program(true);
        assert_eq!(
            run(&p, ARCH_X86_64, 257, none),
            libc::SECCOMP_RET_USER_NOTIF,
            "openat watched"
        );
        assert_eq!(
            run(&p, ARCH_X86_64, 2, none),
            libc::SECCOMP_RET_USER_NOTIF,
            "open watched"
        );
        assert_eq!(
            run(&p, ARCH_X86_64, 0, none),
            libc::SECCOMP_RET_ALLOW,
            "read"
        );
        for nr in [5, 295, 437] {
            assert_eq!(
                run(&p, ARCH_I386, nr, none),
                libc::SECCOMP_RET_USER_NOTIF,
                "i386 open {nr}"
            );
        }
    }
}
