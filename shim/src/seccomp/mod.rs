//! The seccomp front end (`netcell run --shim seccomp`, the default).
//!
//! # Theory of operation
//!
//! The command starts under a seccomp filter ([`filter`]) that sends the socket
//! calls to netcell as user notifications (the child installs it before `exec`,
//! see [`netcell_sys::spawn`]; `no_new_privs` is what lets an unprivileged user do so). The
//! filter is inherited by every thread and child and survives `exec` and `env -i`,
//! and it sees system calls, not library calls: static binaries, Go programs and
//! raw `syscall(2)` are caught like any glibc program.
//!
//! The [`supervisor`] answers each notification in the stack's thread through the
//! same socket service the preload shim's requests go to ([`calls`]), so both front
//! ends behave alike. `socket(AF_INET/AF_INET6)` returns a stand-in, installed in
//! the target with `SECCOMP_IOCTL_NOTIF_ADDFD` and answered in the same step
//! (`SECCOMP_ADDFD_FLAG_SEND`); data then flows natively, as in preload mode:
//! `read`, `write`, `send`/`recv` without an address, `poll`, `epoll` and `close`
//! never reach the filter's notification path. Pointer arguments are read from and
//! written to the target's memory (`process_vm_readv`/`writev`) with `ID_VALID`
//! checked after each read ([`target`]).
//!
//! # The boundary
//!
//! Two walls. The first is the filter and what the supervisor decides, whatever
//! the program does: an INET socket is always a stand-in; `AF_PACKET` and
//! `AF_NETLINK` fail with `EPERM` (the host's interfaces and traffic stay
//! invisible); other families fail with `EAFNOSUPPORT`, `socketpair` of them with
//! `EOPNOTSUPP`; the interface ioctls describe the container's interfaces
//! ([`ifreq`]); the TUN/TAP ioctls fail with `EPERM`; io_uring fails with `ENOSYS`
//! (its socket operations would bypass the filter); x32 and i386 socket entry points
//! fail with `ENOSYS` (i386 interface ioctls with `EPERM`); other architectures are
//! killed. A descriptor netcell cannot inspect is refused, never passed on; a
//! receive that could carry descriptors is made by netcell, which admits none that
//! is a network socket ([`intake`]); and the only calls passed on are harmless
//! whatever descriptor the kernel finds (the argument is in [`calls`]).
//!
//! The second is a Landlock domain ([`landlock`]): no ptrace, `pidfd_getfd` or
//! `process_vm_*` of a process outside the container, no signals out of it, no
//! abstract unix sockets of the host, no TCP bind or connect on a real socket.
//! netcell is non-dumpable from before `main` and hands the command nothing but its
//! standard descriptors ([`netcell_sys::spawn`], [`inherited`]).
//!
//! Every resource the container can make netcell hold has a limit: socket buffers,
//! sockets, pending connections (the stack's `SocketConfig`), control connections,
//! and parked calls here (`--max-blocked-calls`).
//!
//! Why this is the default: preload mode is a convenience, not a boundary — a
//! static binary, a Go program, `env -i` or a raw system call leaves it — while
//! this mode holds for every program and costs a few microseconds per control call
//! (connect, accept, bind, ...), nothing per byte of TCP.

pub mod calls;
mod datagram;
pub mod files;
pub mod filter;
mod host;
mod ifreq;
pub mod inherited;
mod intake;
/// The system calls of this front end: netcell-sys, the user-notification ones
/// included.
mod kernel {
    pub use netcell_sys::seccomp::*;
    pub use netcell_sys::*;
}
pub mod landlock;
pub mod supervisor;
pub(crate) mod table;
mod target;

pub use files::Files;
pub use supervisor::Supervisor;
