//! The preload library's side of the front-end core (`netcell-frontend`): its
//! memory is the program's own ([`Local`]), its transport the control socket
//! ([`Control`]).

use crate::conn;
use netcell_frontend::{Fail, Memory, Reply, Service};
use netcell_proto::Request;

/// The program's memory: the library runs inside it, so an address is a pointer.
pub struct Local;

impl Memory for Local {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Fail> {
        if buf.is_empty() {
            return Ok(());
        }
        if addr == 0 {
            return Err(Fail::Errno(libc::EFAULT));
        }
        // SAFETY: the program passed this pointer to a socket call with this length,
        // as the C API requires it to be readable.
        unsafe { std::ptr::copy_nonoverlapping(addr as *const u8, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    fn write(&self, addr: u64, data: &[u8]) -> Result<(), Fail> {
        if data.is_empty() {
            return Ok(());
        }
        if addr == 0 {
            return Err(Fail::Errno(libc::EFAULT));
        }
        // SAFETY: the program passed this buffer to a socket call with room for at
        // least `data.len()` bytes (the core never writes more than the room given).
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), addr as *mut u8, data.len()) };
        Ok(())
    }
}

/// The container's stack, over the control socket.
pub struct Control;

/// The container's stack, over the control socket, for a request that passes the
/// stand-in (`SCM_RIGHTS`).
pub struct Passing(pub libc::c_int);

impl Service for Passing {
    fn ask<R>(
        &mut self,
        ino: u64,
        req: &Request<'_>,
        f: impl FnOnce(Reply<'_>) -> R,
    ) -> Result<R, Fail> {
        Control.ask(ino, req, f)
    }

    fn ask_passing<R>(
        &mut self,
        ino: u64,
        req: &Request<'_>,
        f: impl FnOnce(Reply<'_>) -> R,
    ) -> Result<R, Fail> {
        let r = conn::call(ino, req, Some(self.0)).map_err(Fail::Errno)?;
        Ok(f(Reply {
            errno: r.errno,
            value: r.value,
            flags: r.flags,
            data: r.data(),
        }))
    }
}

impl Service for Control {
    fn ask<R>(
        &mut self,
        ino: u64,
        req: &Request<'_>,
        f: impl FnOnce(Reply<'_>) -> R,
    ) -> Result<R, Fail> {
        let r = conn::call(ino, req, None).map_err(Fail::Errno)?;
        Ok(f(Reply {
            errno: r.errno,
            value: r.value,
            flags: r.flags,
            data: r.data(),
        }))
    }
}

/// The C return value of a call the core decided; `native` carries it out in the
/// kernel when the descriptor is not a stand-in after all.
pub fn ret(
    r: Result<netcell_frontend::Done, Fail>,
    native: impl FnOnce() -> libc::c_int,
) -> libc::c_int {
    match r {
        Ok(netcell_frontend::Done::Value(v)) => v as libc::c_int,
        Ok(netcell_frontend::Done::Native) => native(),
        Err(Fail::Errno(e)) => crate::fail(e),
        Err(Fail::Gone) => crate::fail(libc::EINTR),
    }
}
