//! `ioctl` on sockets: `FIONREAD` of datagram stand-ins here, the interface
//! ioctls in [`netcell_frontend::ifreq`] (shared with the preload library), which
//! answers them from the container's interfaces: on any socket they would describe
//! the host's.

use super::calls::{Cx, Held, Outcome};
use super::target::Fail;
use netcell_frontend::{Done, Memory, ifreq};
use smoltcp::phy::Device;
use std::os::fd::AsFd;

pub fn ioctl<D: Device>(cx: &mut Cx<'_, '_, D>) -> Result<Outcome, Fail> {
    let req = cx.call.args[1] as u32;
    let arg = cx.call.args[2];
    if req == libc::FIONREAD as u32 {
        return fionread(cx, arg);
    }
    // Never passed on for what is not a socket: the kernel would re-read the
    // descriptor, and find a socket there by then if another thread put one.
    let standin = match cx.held(cx.call.int(0))? {
        // What a terminal or file says to a request it does not know.
        Held::NotSocket => return Ok(Outcome::Errno(libc::ENOTTY)),
        // A host socket of the uplink is the container's too: its interfaces.
        Held::StandIn(_) | Held::Host(_) => true,
        // The kernel's answer to a request about the socket itself is harmless for
        // any socket another thread may have put there by then.
        Held::Unix(_) | Held::Foreign(..) => false,
    };
    let (mem, mut svc) = cx.parts();
    Ok(match ifreq::ioctl(mem, &mut svc, req, arg, standin)? {
        Done::Value(v) => Outcome::Value(v),
        Done::Native => Outcome::Continue,
    })
}

/// `FIONREAD` of a datagram stand-in is the size of the next datagram (natively it
/// would count every queued byte); anything else goes to the kernel.
fn fionread<D: Device>(cx: &mut Cx<'_, '_, D>, arg: u64) -> Result<Outcome, Fail> {
    let s = match cx.held(cx.call.int(0))? {
        Held::StandIn(s) if s.is_datagram() => s,
        // A count of queued bytes, whatever the descriptor is by the time the
        // kernel looks again: harmless.
        _ => return Ok(Outcome::Continue),
    };
    let n = super::kernel::next_record_len(s.fd.as_fd());
    cx.call.write_u32(arg, n as u32)?;
    Ok(Outcome::Value(0))
}
