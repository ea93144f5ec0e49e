//! The second wall: a Landlock domain around the container.
//!
//! The seccomp filter decides what each socket call means; this wall makes sure that
//! what slips past a decision lands on nothing. It is a Landlock ruleset (unprivileged:
//! it needs only `no_new_privs`, which the filter sets anyway) that the command's
//! process enters before `exec`, so every process of the container is inside it and
//! netcell is not:
//!
//! - **ptrace scope** (every Landlock ABI): a process in a domain cannot `ptrace`,
//!   `pidfd_getfd`, `process_vm_readv`/`writev` or open `/proc/PID/mem` of a process
//!   outside it — netcell, the user's shell, another container. Without it a
//!   container could drive any process of its user (there is no Yama here).
//! - **TCP bind and connect denied** (ABI 4): no rule allows a port, so a real
//!   (host) TCP socket in the container can neither bind nor connect. This is what
//!   makes a call the supervisor passes on (`CONTINUE`) harmless whatever the kernel
//!   finds at that descriptor when it re-reads the arguments — another thread may
//!   have `dup2`'d a host socket there in between (see `calls`).
//! - **signal and abstract unix socket scope** (ABI 6): no `kill` of processes
//!   outside (netcell cannot be stopped by its container), no connection to abstract
//!   unix sockets made outside (they belong to the host's network namespace).
//!
//! The filesystem is not confined (a network stack is not a filesystem sandbox: run
//! `netcell` inside bubblewrap for that). The ruleset handles `MAKE_BLOCK` with no
//! rule, which only takes from the container what an unprivileged process never has
//! (block device nodes need `CAP_MKNOD` in the initial namespace); it is there so that
//! kernels with ABI 1–3 still get a domain, and with it the ptrace scope.
//!
//! The ruleset is built with the `landlock` crate (it knows each ABI's flags and
//! degrades on older kernels); the child enters it with one raw
//! `landlock_restrict_self` because it shares netcell's descriptor table until exec
//! (see [`netcell_sys::spawn`]) and must not close the ruleset's descriptor.

use landlock::{AccessFs, AccessNet, CompatLevel, Compatible, Ruleset, RulesetAttr, Scope};
use std::os::fd::OwnedFd;

/// A ruleset ready for the command to enter, and what this kernel enforces of it.
pub struct Wall {
    fd: Option<OwnedFd>,
    abi: i32,
}

/// The first ABI that denies TCP bind and connect.
const ABI_NET: i32 = 4;
/// The first ABI that scopes signals and abstract unix sockets.
const ABI_SCOPE: i32 = 6;

impl Wall {
    /// Builds the ruleset the container enters, as much of it as the kernel has.
    pub fn prepare() -> Wall {
        let abi = super::kernel::landlock_abi();
        let built = Ruleset::default()
            .set_compatibility(CompatLevel::BestEffort)
            .handle_access(AccessFs::MakeBlock)
            .and_then(|r| r.handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp))
            .and_then(|r| r.scope(Scope::AbstractUnixSocket | Scope::Signal))
            .and_then(|r| r.create());
        let fd = match built {
            Ok(r) => r.into(),
            Err(e) => {
                log::warn!("cannot build the Landlock ruleset: {e}");
                None
            }
        };
        let abi = if fd.is_some() { abi } else { 0 };
        Wall { fd, abi }
    }

    /// The ruleset's descriptor, for the child to enter (none without Landlock).
    /// Whether TCP bind and connect on host sockets are denied (ABI 4).
    pub fn denies_host_tcp(&self) -> bool {
        self.abi >= ABI_NET
    }

    pub fn into_fd(self) -> Option<OwnedFd> {
        self.fd
    }

    /// What this kernel does not enforce, one line each (empty: everything).
    pub fn gaps(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.abi < 1 {
            out.push(
                "Landlock is not available: processes of the container can ptrace, signal \
                 and take descriptors of every other process of your user",
            );
        }
        if self.abi < ABI_NET {
            out.push(
                "Landlock ABI < 4: the kernel does not deny TCP bind/connect on host sockets \
                 the container may hold (a call the filter passes on is checked by netcell only)",
            );
        }
        if self.abi < ABI_SCOPE {
            out.push(
                "Landlock ABI < 6: signals to processes outside the container and abstract \
                 unix sockets of the host are not blocked",
            );
        }
        out
    }
}
