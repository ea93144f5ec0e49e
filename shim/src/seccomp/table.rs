//! The one table of the system calls a container's filter treats specially.
//!
//! Each entry says what the filter does with a call — run it, hand it to netcell,
//! fail it — and, for those it hands over, which [`Op`] the supervisor serves it
//! as. The BPF program ([`super::filter`]) is generated from this table and the
//! supervisor dispatches by it ([`super::calls::serve`]), so a call the filter
//! notifies always has a handler, and a handler always has its call notified.
//! Every call not in the table runs.
//!
//! x86-64 numbers come from `libc::SYS_*`. i386 numbers are the kernel's
//! (`arch/x86/entry/syscalls/syscall_32.tbl`): an x86-64 build of libc has no
//! names for them.

/// What the supervisor serves a notified call as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Socket,
    Connect,
    Accept,
    Accept4,
    Bind,
    Listen,
    GetSockName,
    GetPeerName,
    SetSockOpt,
    GetSockOpt,
    Shutdown,
    SendTo,
    RecvFrom,
    SendMsg,
    RecvMsg,
    SendMmsg,
    RecvMmsg,
    Ioctl,
    Open,
    OpenAt,
    OpenAt2,
}

/// What the filter does with a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Hand it to netcell.
    Notify,
    /// Run it when argument `arg` (its low 32 bits: an `int`) is `value`, else hand
    /// it to netcell (`socket(AF_UNIX)` needs no stack).
    RunIfElseNotify { arg: u32, value: u32 },
    /// Run it when argument `arg` is `value`, else fail with `errno`.
    RunIfElseFail { arg: u32, value: u32, errno: i32 },
    /// Hand it to netcell when the 64-bit pointer argument `arg` is set
    /// (`sendto`/`recvfrom` with an address; without one they are plain I/O).
    NotifyIfSet { arg: u32 },
    /// `ioctl`, by request: `FIONREAD` and the socket and interface requests
    /// (`0x8900`–`0x89ff`, wireless `0x8b00`–`0x8bff`) go to netcell (x86-64) or fail
    /// with `EPERM` (i386, which netcell does not serve); the TUN/TAP requests fail
    /// with `EPERM`; `TIOCSTI` fails with `EIO`; the rest run.
    Ioctl { served: bool },
    /// Hand it to netcell only when the container has its own resolver files.
    NotifyWhenWatched,
    /// Fail with this errno.
    Fail(i32),
}

/// One entry: a call number, its rule, and what serves it when notified.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    pub nr: u32,
    pub rule: Rule,
    pub op: Option<Op>,
}

const fn notify(nr: libc::c_long, op: Op) -> Entry {
    Entry {
        nr: nr as u32,
        rule: Rule::Notify,
        op: Some(op),
    }
}

const fn fail(nr: u32, errno: i32) -> Entry {
    Entry {
        nr,
        rule: Rule::Fail(errno),
        op: None,
    }
}

const AF_UNIX: u32 = libc::AF_UNIX as u32;

/// The x86-64 calls.
pub const X86_64: &[Entry] = &[
    Entry {
        nr: libc::SYS_socket as u32,
        rule: Rule::RunIfElseNotify {
            arg: 0,
            value: AF_UNIX,
        },
        op: Some(Op::Socket),
    },
    // No family but AF_UNIX has socketpair on Linux; a kernel that had one would
    // hand out sockets no stand-in stands for.
    Entry {
        nr: libc::SYS_socketpair as u32,
        rule: Rule::RunIfElseFail {
            arg: 0,
            value: AF_UNIX,
            errno: libc::EOPNOTSUPP,
        },
        op: None,
    },
    notify(libc::SYS_connect, Op::Connect),
    notify(libc::SYS_accept, Op::Accept),
    notify(libc::SYS_accept4, Op::Accept4),
    notify(libc::SYS_bind, Op::Bind),
    notify(libc::SYS_listen, Op::Listen),
    notify(libc::SYS_getsockname, Op::GetSockName),
    notify(libc::SYS_getpeername, Op::GetPeerName),
    notify(libc::SYS_setsockopt, Op::SetSockOpt),
    notify(libc::SYS_getsockopt, Op::GetSockOpt),
    notify(libc::SYS_shutdown, Op::Shutdown),
    notify(libc::SYS_sendmsg, Op::SendMsg),
    notify(libc::SYS_recvmsg, Op::RecvMsg),
    notify(libc::SYS_sendmmsg, Op::SendMmsg),
    notify(libc::SYS_recvmmsg, Op::RecvMmsg),
    Entry {
        nr: libc::SYS_sendto as u32,
        rule: Rule::NotifyIfSet { arg: 4 },
        op: Some(Op::SendTo),
    },
    Entry {
        nr: libc::SYS_recvfrom as u32,
        rule: Rule::NotifyIfSet { arg: 4 },
        op: Some(Op::RecvFrom),
    },
    Entry {
        nr: libc::SYS_ioctl as u32,
        rule: Rule::Ioctl { served: true },
        op: Some(Op::Ioctl),
    },
    Entry {
        nr: libc::SYS_open as u32,
        rule: Rule::NotifyWhenWatched,
        op: Some(Op::Open),
    },
    Entry {
        nr: libc::SYS_openat as u32,
        rule: Rule::NotifyWhenWatched,
        op: Some(Op::OpenAt),
    },
    Entry {
        nr: libc::SYS_openat2 as u32,
        rule: Rule::NotifyWhenWatched,
        op: Some(Op::OpenAt2),
    },
    // io_uring's socket operations would bypass the filter; runtimes fall back to
    // epoll.
    fail(libc::SYS_io_uring_setup as u32, libc::ENOSYS),
    fail(libc::SYS_io_uring_enter as u32, libc::ENOSYS),
    fail(libc::SYS_io_uring_register as u32, libc::ENOSYS),
];

/// The i386 calls (`int $0x80` from any program, or a 32-bit one): netcell serves
/// none but the opens, so every way to a socket fails.
pub const I386: &[Entry] = &[
    fail(102, libc::ENOSYS), // socketcall
    // The direct socket calls of Linux 4.3+: socket, socketpair, bind, connect,
    // listen, accept4, getsockopt, setsockopt, getsockname, getpeername, sendto,
    // sendmsg, recvfrom, recvmsg, shutdown.
    fail(359, libc::ENOSYS),
    fail(360, libc::ENOSYS),
    fail(361, libc::ENOSYS),
    fail(362, libc::ENOSYS),
    fail(363, libc::ENOSYS),
    fail(364, libc::ENOSYS),
    fail(365, libc::ENOSYS),
    fail(366, libc::ENOSYS),
    fail(367, libc::ENOSYS),
    fail(368, libc::ENOSYS),
    fail(369, libc::ENOSYS),
    fail(370, libc::ENOSYS),
    fail(371, libc::ENOSYS),
    fail(372, libc::ENOSYS),
    fail(373, libc::ENOSYS),
    fail(337, libc::ENOSYS), // recvmmsg
    fail(345, libc::ENOSYS), // sendmmsg
    fail(417, libc::ENOSYS), // recvmmsg_time64: it would install passed descriptors
    fail(425, libc::ENOSYS), // io_uring_setup
    fail(426, libc::ENOSYS), // io_uring_enter
    fail(427, libc::ENOSYS), // io_uring_register
    Entry {
        nr: 54, // ioctl
        rule: Rule::Ioctl { served: false },
        op: None,
    },
    Entry {
        nr: 5, // open
        rule: Rule::NotifyWhenWatched,
        op: Some(Op::Open),
    },
    Entry {
        nr: 295, // openat
        rule: Rule::NotifyWhenWatched,
        op: Some(Op::OpenAt),
    },
    Entry {
        nr: 437, // openat2
        rule: Rule::NotifyWhenWatched,
        op: Some(Op::OpenAt2),
    },
];

/// What a notified call is to be served as: its entry's op in the table of its
/// architecture.
pub fn op(arch: u32, nr: i32) -> Option<Op> {
    let table = match arch {
        super::filter::ARCH_X86_64 => X86_64,
        super::filter::ARCH_I386 => I386,
        _ => return None,
    };
    table.iter().find(|e| e.nr == nr as u32).and_then(|e| e.op)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_notifying_rule_has_an_op_and_numbers_are_unique() {
        for table in [X86_64, I386] {
            for (i, e) in table.iter().enumerate() {
                let notifies = match e.rule {
                    Rule::Fail(_) | Rule::RunIfElseFail { .. } => false,
                    Rule::Ioctl { served } => served,
                    _ => true,
                };
                assert_eq!(notifies, e.op.is_some(), "entry {e:?}");
                assert!(
                    table[i + 1..].iter().all(|o| o.nr != e.nr),
                    "{} twice",
                    e.nr
                );
            }
        }
    }
}
