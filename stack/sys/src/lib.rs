//! netcell's door to the kernel: every system call netcell makes that Rust's
//! standard library does not, and so every `unsafe` block of the stack and the
//! launcher (the preload library, an ABI shim loaded into programs, keeps its own).
//! Each `unsafe` block is one system call or one read of what the kernel wrote, with
//! a `// SAFETY:` line; the other crates forbid `unsafe` code.
//!
//! - [`fd`]: any descriptor — flags, identity, readiness, plain reads and writes.
//! - [`unix`]: unix sockets — the stand-in pairs, descriptor passing, options.
//! - [`process`]: processes — pidfds, another process's descriptors and memory,
//!   signals, children, limits.
//! - [`seccomp`]: user notifications and the Landlock ABI.
//! - [`tap`]: TAP devices and interface ioctls.
//! - [`netns`]: network namespaces and packet sockets.
//! - [`spawn`]: starting a container's command inside its walls.
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod fd;
pub mod netns;
pub mod process;
pub mod seccomp;
pub mod spawn;
pub mod tap;
pub mod unix;

pub use fd::*;
pub use process::*;
pub use tap::*;
pub use unix::*;

use std::io;

/// A `c_int` result: the value, or `errno` as an error.
pub(crate) fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// An `ssize_t` result.
pub(crate) fn cvt_size(r: libc::ssize_t) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// A `long` result (`syscall(2)`).
pub(crate) fn cvt_long(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}
