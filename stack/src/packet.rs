//! Packet sockets (`AF_PACKET`) of the container: what the stack asks of the
//! mirror that serves them.
//!
//! The stack does not implement packet sockets itself. A program's packet
//! socket is a real kernel packet socket in a *mirror*: a network namespace of
//! the embedder's whose devices copy the container's interfaces (names, indexes,
//! hardware addresses) and carry exactly the container's frames, handed over as
//! the stack receives and sends them. The kernel then gives tcpdump everything it
//! uses — `PACKET_RX_RING`/`mmap` rings, `SO_ATTACH_FILTER` programs,
//! promiscuous membership, statistics, `poll` — at its own speed, and a frame a
//! program sends on its packet socket comes back here to leave on the
//! container's device. netcell's launcher implements the mirror (its `mirror`
//! module); without one, `socket(AF_PACKET, ...)` fails with `EPERM`.

use std::os::fd::OwnedFd;

/// One interface of the container, as the mirror copies it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorIface {
    /// Its index (`lo` is 1).
    pub index: u32,
    /// Its name.
    pub name: String,
    /// Its hardware address; `None` for an IP-medium interface (`lo`, the host
    /// uplink), whose frames are IP packets.
    pub mac: Option<[u8; 6]>,
    /// Its IP MTU.
    pub mtu: usize,
}

/// The mirror of a container's interfaces (see the module docs).
pub trait Mirror {
    /// A packet socket for a program, as `socket(AF_PACKET, ty, protocol)`,
    /// made (with the mirror's devices, copies of `ifaces`) on first use. `Err`:
    /// the errno the program gets.
    fn open(&mut self, ifaces: &[MirrorIface], ty: i32, protocol: i32) -> Result<OwnedFd, i32>;
    /// Whether the socket with inode `ino` is one of the programs' packet
    /// sockets.
    fn owns(&self, ino: u64) -> bool;
    /// Whether frames are wanted: a program holds a packet socket.
    fn active(&self) -> bool;
    /// A frame of interface number `iface` (0 is `lo`); `outbound`: sent by the
    /// stack. An IP-medium interface's frame is an IP packet.
    fn frame(&mut self, iface: usize, outbound: bool, data: &[u8]);
    /// Once per turn of the event loop: sends what waits, and notices packet
    /// sockets the programs closed.
    fn flush(&mut self);
    /// Hands each frame that programs sent on their packet sockets, with its
    /// interface number, to `out` (it leaves the container's device as it is):
    /// at most a few hundred per call, so that a flood does not hold the event
    /// loop; true when more wait.
    fn take_sent(&mut self, out: &mut dyn FnMut(usize, &[u8])) -> bool;
}
