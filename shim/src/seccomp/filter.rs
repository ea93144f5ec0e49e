//! The seccomp filter a container runs under.
//!
//! On x86-64:
//! - the socket calls the stack answers notify the supervisor: `socket`, `bind`,
//!   `listen`, `connect`, `accept`, `accept4`, `getsockname`, `getpeername`,
//!   `setsockopt`, `getsockopt`, `shutdown`, `sendmsg`, `recvmsg`, `sendmmsg`,
//!   `recvmmsg`;
//! - `sendto`/`recvfrom` notify only with an address argument: `send`/`recv` on a
//!   connected socket (every TCP byte) stay native;
//! - `socket` and `socketpair` of `AF_UNIX` run (a new unix socket reaches no
//!   network); `socketpair` of any other family fails with `EOPNOTSUPP` (Linux has
//!   none; a kernel that had one would hand out sockets no stand-in stands for);
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
//! - `io_uring_setup`/`_enter`/`_register` fail with `ENOSYS` (io_uring's socket
//!   operations would bypass the filter; runtimes fall back to epoll);
//! - x32 system calls fail with `ENOSYS`.
//!
//! For i386 programs the socket entry points (`socketcall`, the direct socket
//! calls of Linux 4.3+, `recvmmsg`, `sendmmsg`, `recvmmsg_time64`) and io_uring
//! fail with `ENOSYS`; the interface and TUN
//! ioctls fail with `EPERM` (the supervisor serves x86-64 calls only, and on any
//! socket these describe the host's interfaces); `open`, `openat` and `openat2`
//! notify when `open` is watched; other i386 calls run. Any other architecture is
//! killed.

use libc::sock_filter;

/// `AUDIT_ARCH_X86_64`.
pub const ARCH_X86_64: u32 = 0xC000_003E;
/// `AUDIT_ARCH_I386`.
const ARCH_I386: u32 = 0x4000_0003;
const X32_BIT: u32 = 0x4000_0000;

const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const fn off_arg(i: u32, high: bool) -> u32 {
    16 + 8 * i + if high { 4 } else { 0 }
}

/// x86-64 calls that always notify.
const NOTIFY: &[u32] = &[
    42,  // connect
    43,  // accept
    288, // accept4
    49,  // bind
    50,  // listen
    51,  // getsockname
    52,  // getpeername
    54,  // setsockopt
    55,  // getsockopt
    48,  // shutdown
    46,  // sendmsg
    47,  // recvmsg
    307, // sendmmsg
    299, // recvmmsg
];
const SYS_SOCKET: u32 = 41;
const SYS_SOCKETPAIR: u32 = 53;
const SYS_SENDTO: u32 = 44;
const SYS_RECVFROM: u32 = 45;
const SYS_IOCTL: u32 = 16;
const OPEN: [u32; 3] = [2, 257, 437];
const IO_URING: [u32; 3] = [425, 426, 427];
/// i386: socketcall, recvmmsg, sendmmsg, recvmmsg_time64, and socket..shutdown
/// (359–373).
const I386_SOCKETCALL: u32 = 102;
const I386_SOCKET_FIRST: u32 = 359;
const I386_SOCKET_LAST: u32 = 373;
const I386_MMSG: [u32; 3] = [337, 345, 417];
/// `TIOCSTI`: pushes bytes into a terminal's input, as if typed — into the shell
/// the container was started from, once it reads again.
const TIOCSTI: u32 = 0x5412;
const I386_IOCTL: u32 = 54;
/// i386 open, openat, openat2.
const I386_OPEN: [u32; 3] = [5, 295, 437];
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

/// A small assembler with symbolic jump targets, resolved when finished.
struct Asm {
    code: Vec<sock_filter>,
    /// (instruction index, label, whether the label is the jt target)
    fixups: Vec<(usize, &'static str, bool)>,
    labels: Vec<(&'static str, usize)>,
}

impl Asm {
    fn new() -> Self {
        Asm {
            code: Vec::new(),
            fixups: Vec::new(),
            labels: Vec::new(),
        }
    }
    fn push(&mut self, f: sock_filter) {
        self.code.push(f);
    }
    /// `if A == k goto label` (fall through otherwise).
    fn jeq(&mut self, k: u32, label: &'static str) {
        self.fixups.push((self.code.len(), label, true));
        self.code.push(jump(JEQ, k, 0, 0));
    }
    /// `if A >= k goto label`.
    fn jge(&mut self, k: u32, label: &'static str) {
        self.fixups.push((self.code.len(), label, true));
        self.code.push(jump(JGE, k, 0, 0));
    }
    /// `if A != k goto label`.
    fn jne(&mut self, k: u32, label: &'static str) {
        self.fixups.push((self.code.len(), label, false));
        self.code.push(jump(JEQ, k, 0, 0));
    }
    /// `if A > k goto label`.
    fn jgt(&mut self, k: u32, label: &'static str) {
        self.fixups.push((self.code.len(), label, true));
        self.code.push(jump(JGT, k, 0, 0));
    }
    fn label(&mut self, name: &'static str) {
        self.labels.push((name, self.code.len()));
    }
    fn finish(mut self) -> Vec<sock_filter> {
        for (at, name, jt) in std::mem::take(&mut self.fixups) {
            let target = self
                .labels
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, i)| *i)
                .expect("label defined");
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

/// The container's filter; `watch_open` adds the `open` calls.
pub fn program(watch_open: bool) -> Vec<sock_filter> {
    let mut a = Asm::new();
    a.push(stmt(LD_W_ABS, OFF_ARCH));
    a.jeq(ARCH_X86_64, "x86_64");
    a.jeq(ARCH_I386, "i386");
    a.push(ret(libc::SECCOMP_RET_KILL_PROCESS));

    a.label("x86_64");
    a.push(stmt(LD_W_ABS, OFF_NR));
    a.jge(X32_BIT, "enosys");
    for nr in IO_URING {
        a.jeq(nr, "enosys");
    }
    for &nr in NOTIFY {
        a.jeq(nr, "notify");
    }
    a.jeq(SYS_SOCKET, "socket");
    a.jeq(SYS_SOCKETPAIR, "socketpair");
    a.jeq(SYS_SENDTO, "addr_arg");
    a.jeq(SYS_RECVFROM, "addr_arg");
    a.jeq(SYS_IOCTL, "ioctl");
    if watch_open {
        for nr in OPEN {
            a.jeq(nr, "notify");
        }
    }
    a.push(ret(libc::SECCOMP_RET_ALLOW));

    // sendto/recvfrom: notify when argument 4 (the address) is not NULL.
    a.label("addr_arg");
    a.push(stmt(LD_W_ABS, off_arg(4, false)));
    a.jne(0, "notify");
    a.push(stmt(LD_W_ABS, off_arg(4, true)));
    a.jne(0, "notify");
    a.push(ret(libc::SECCOMP_RET_ALLOW));

    // socket: AF_UNIX runs, the rest notifies.
    a.label("socket");
    a.push(stmt(LD_W_ABS, off_arg(0, false)));
    a.jeq(libc::AF_UNIX as u32, "allow");
    a.push(ret(libc::SECCOMP_RET_USER_NOTIF));

    // socketpair: AF_UNIX runs, any other family fails.
    a.label("socketpair");
    a.push(stmt(LD_W_ABS, off_arg(0, false)));
    a.jeq(libc::AF_UNIX as u32, "allow");
    a.push(ret(errno(libc::EOPNOTSUPP)));

    // ioctl: FIONREAD and the SIOC* range notify; TUN and TIOCSTI fail.
    a.label("ioctl");
    a.push(stmt(LD_W_ABS, off_arg(1, false)));
    a.jeq(libc::FIONREAD as u32, "notify");
    a.jeq(TIOCSTI, "eio");
    a.jgt(0x8bff, "ioctl_tun");
    a.jge(0x8b00, "notify");
    a.jgt(0x89ff, "ioctl_tun");
    a.jge(0x8900, "notify");
    a.label("ioctl_tun");
    tun_check(&mut a, "ioctl_not_tun");
    a.label("allow");
    a.push(ret(libc::SECCOMP_RET_ALLOW));

    a.label("i386");
    a.push(stmt(LD_W_ABS, OFF_NR));
    a.jeq(I386_IOCTL, "i386_ioctl");
    if watch_open {
        for nr in I386_OPEN {
            a.jeq(nr, "notify");
        }
    }
    a.jeq(I386_SOCKETCALL, "enosys");
    for nr in I386_MMSG {
        a.jeq(nr, "enosys");
    }
    for nr in IO_URING {
        a.jeq(nr, "enosys");
    }
    a.jgt(I386_SOCKET_LAST, "allow2");
    a.jge(I386_SOCKET_FIRST, "enosys");
    a.label("allow2");
    a.push(ret(libc::SECCOMP_RET_ALLOW));

    // i386 ioctl: the interface and TUN ranges and TIOCSTI fail.
    a.label("i386_ioctl");
    a.push(stmt(LD_W_ABS, off_arg(1, false)));
    a.jeq(TIOCSTI, "eio");
    a.jgt(0x8bff, "i386_tun");
    a.jge(0x8900, "eperm");
    a.label("i386_tun");
    tun_check(&mut a, "i386_not_tun");
    a.push(ret(libc::SECCOMP_RET_ALLOW));

    a.label("notify");
    a.push(ret(libc::SECCOMP_RET_USER_NOTIF));
    a.label("enosys");
    a.push(ret(errno(libc::ENOSYS)));
    a.label("eperm");
    a.push(ret(errno(libc::EPERM)));
    // What Linux answers TIOCSTI with when dev.tty.legacy_tiocsti is off.
    a.label("eio");
    a.push(ret(errno(libc::EIO)));
    a.finish()
}

/// With an ioctl request in the accumulator: jumps to "eperm" for the TUN/TAP
/// ioctls (any direction and size), falls through otherwise (the accumulator is
/// then the request's low 16 bits). `done` names the fall-through point.
fn tun_check(a: &mut Asm, done: &'static str) {
    a.push(stmt(AND, 0xffff));
    a.jgt(TUN_IOCTL_LAST, done);
    a.jge(TUN_IOCTL_FIRST, "eperm");
    a.label(done);
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
        for nr in I386_OPEN {
            assert_eq!(
                run(&p, ARCH_I386, nr, none),
                libc::SECCOMP_RET_USER_NOTIF,
                "i386 open {nr}"
            );
        }
    }
}
