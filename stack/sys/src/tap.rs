//! TAP devices (`/dev/net/tun` with `IFF_TAP`, the virtio header and receive
//! offload) and the interface ioctls netcell uses on the host side.
#![allow(unused_imports)]

use crate::{cvt, cvt_long, cvt_size};
use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

fn ifreq_for(name: &str) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is a plain C struct/union; zero is valid.
    let mut ifr: libc::ifreq = unsafe { zeroed() };
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= ifr.ifr_name.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name {name:?}"),
        ));
    }
    for (d, s) in ifr.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    Ok(ifr)
}

fn ioctl_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call.
    let fd = cvt(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads a network interface's MTU (`SIOCGIFMTU`).
pub fn if_mtu(name: &str) -> io::Result<usize> {
    let mut ifr = ifreq_for(name)?;
    let s = ioctl_socket()?;
    // SAFETY: SIOCGIFMTU fills ifr_ifru.ifru_mtu in a valid ifreq.
    cvt(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCGIFMTU, &mut ifr) })?;
    // SAFETY: the kernel just wrote the mtu member of the union.
    Ok(unsafe { ifr.ifr_ifru.ifru_mtu }.max(0) as usize)
}

/// Sets a network interface's MTU (`SIOCSIFMTU`, needs `CAP_NET_ADMIN`).
pub fn set_if_mtu(name: &str, mtu: usize) -> io::Result<()> {
    let mut ifr = ifreq_for(name)?;
    ifr.ifr_ifru.ifru_mtu = mtu as libc::c_int;
    let s = ioctl_socket()?;
    // SAFETY: SIOCSIFMTU reads a valid ifreq.
    cvt(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCSIFMTU, &ifr) }).map(|_| ())
}

/// A network interface's transmit queue length (`SIOCGIFTXQLEN`): for a TAP, how
/// many frames from the kernel wait for the reader before the next is dropped.
pub fn if_tx_queue_len(name: &str) -> io::Result<usize> {
    let mut ifr = ifreq_for(name)?;
    let s = ioctl_socket()?;
    // SAFETY: SIOCGIFTXQLEN fills the union's int (`ifr_qlen`, which the libc
    // crate names by its alias `ifru_ifindex`: the same int) in a valid ifreq.
    cvt(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCGIFTXQLEN, &mut ifr) })?;
    // SAFETY: the kernel just wrote that int member of the union. The kernel
    // keeps the length as a u32 (netlink sets ones above i32::MAX).
    Ok(unsafe { ifr.ifr_ifru.ifru_ifindex } as u32 as usize)
}

/// Whether interface `name` is a TAP device with no reader attached (the
/// tun driver's `ethtool` answers: driver "tun", bus "tap"; no carrier, which a
/// TAP has only while a reader holds it). `SIOCETHTOOL` with `ETHTOOL_GDRVINFO`
/// and `ETHTOOL_GLINK`, which need no privilege.
pub fn is_idle_tap(name: &str) -> io::Result<bool> {
    const SIOCETHTOOL: libc::c_ulong = 0x8946;
    const ETHTOOL_GDRVINFO: u32 = 0x03;
    const ETHTOOL_GLINK: u32 = 0x0a;
    let s = ioctl_socket()?;
    // struct ethtool_drvinfo: cmd (u32), driver[32], version[32], fw_version[32],
    // bus_info[32], erom_version[32], reserved2[12], five u32 counts.
    let mut info = [0u8; 196];
    info[..4].copy_from_slice(&ETHTOOL_GDRVINFO.to_ne_bytes());
    let mut ifr = ifreq_for(name)?;
    ifr.ifr_ifru.ifru_data = info.as_mut_ptr().cast();
    // SAFETY: SIOCETHTOOL with GDRVINFO writes at most the 196 bytes of the
    // struct behind ifru_data, which `info` holds and outlives the call.
    cvt(unsafe { libc::ioctl(s.as_raw_fd(), SIOCETHTOOL, &mut ifr) })?;
    let text = |at: usize| {
        let field = &info[at..at + 32];
        &field[..field.iter().position(|&b| b == 0).unwrap_or(32)]
    };
    if text(4) != b"tun" || text(4 + 3 * 32) != b"tap" {
        return Ok(false);
    }
    // struct ethtool_value: cmd, data (the carrier).
    let mut link = [ETHTOOL_GLINK, 0u32];
    let mut ifr = ifreq_for(name)?;
    ifr.ifr_ifru.ifru_data = link.as_mut_ptr().cast();
    // SAFETY: SIOCETHTOOL with GLINK writes the 8 bytes behind ifru_data.
    cvt(unsafe { libc::ioctl(s.as_raw_fd(), SIOCETHTOOL, &mut ifr) })?;
    Ok(link[1] == 0)
}

/// Whether interface `name` is administratively up (`IFF_UP`, `SIOCGIFFLAGS`).
pub fn if_is_up(name: &str) -> io::Result<bool> {
    let mut ifr = ifreq_for(name)?;
    let s = ioctl_socket()?;
    // SAFETY: SIOCGIFFLAGS fills ifr_ifru.ifru_flags in a valid ifreq.
    cvt(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) })?;
    // SAFETY: the kernel just wrote the flags member of the union.
    Ok(unsafe { ifr.ifr_ifru.ifru_flags } & libc::IFF_UP as libc::c_short != 0)
}

/// Sets a network interface's transmit queue length (`SIOCSIFTXQLEN`, needs
/// `CAP_NET_ADMIN`; see [`if_tx_queue_len`]).
pub fn set_if_tx_queue_len(name: &str, len: usize) -> io::Result<()> {
    let len = libc::c_int::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let mut ifr = ifreq_for(name)?;
    ifr.ifr_ifru.ifru_ifindex = len;
    let s = ioctl_socket()?;
    // SAFETY: SIOCSIFTXQLEN reads a valid ifreq.
    cvt(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCSIFTXQLEN, &ifr) }).map(|_| ())
}

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

const TUNGETIFF: libc::c_ulong = 0x8004_54d2;

const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;

const TUNSETVNETHDRSZ: libc::c_ulong = 0x4004_54d8;

const IFF_TAP: libc::c_short = 0x0002;

const IFF_NO_PI: libc::c_short = 0x1000;

const IFF_VNET_HDR: libc::c_short = 0x4000;

const TUN_F_CSUM: libc::c_uint = 0x01;

const TUN_F_TSO4: libc::c_uint = 0x02;

const TUN_F_TSO6: libc::c_uint = 0x04;

/// The size of `struct virtio_net_hdr`, which precedes every frame on a TAP opened
/// with `IFF_VNET_HDR`.
pub const VNET_HDR_LEN: usize = 10;

fn ifr_name(ifr: &libc::ifreq) -> String {
    let bytes: Vec<u8> = ifr
        .ifr_name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Opens the TUN/TAP device node `/dev/net/tun`, for [`tap_attach`]. Its own
/// step, because its errors are the node's (mode, policies, a missing module)
/// and not the device's.
pub fn open_tun() -> io::Result<OwnedFd> {
    // SAFETY: a valid NUL-terminated path.
    let fd = cvt(unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) })?;
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Attaches `fd`, from [`open_tun`], to the TAP device `name` (creating it if it
/// does not exist, which needs `CAP_NET_ADMIN`), without packet information.
/// Returns the fd and the interface's name.
///
/// With `vnet`, frames carry a `virtio_net_hdr` ([`VNET_HDR_LEN`] bytes) and the
/// kernel is told this end takes TCP segments of up to 64 KiB with their checksum
/// left to finish (`TUNSETOFFLOAD`: `TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6`), so it
/// hands over a large segment in one frame instead of one frame per MTU.
pub fn tap_attach(fd: OwnedFd, name: &str, vnet: bool) -> io::Result<(OwnedFd, String)> {
    let mut ifr = ifreq_for(name)?;
    ifr.ifr_ifru.ifru_flags = IFF_TAP | IFF_NO_PI | if vnet { IFF_VNET_HDR } else { 0 };
    // SAFETY: TUNSETIFF reads and writes a valid ifreq.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, &mut ifr) })?;
    if vnet {
        tap_offload(fd.as_fd())?;
    } else {
        no_offload(fd.as_fd())?;
    }
    Ok((fd, ifr_name(&ifr)))
}

/// Sets the virtio header size and the receive offloads of a TAP opened with
/// `IFF_VNET_HDR` (see [`tap_attach`]).
fn tap_offload(fd: BorrowedFd<'_>) -> io::Result<()> {
    let size = VNET_HDR_LEN as libc::c_int;
    // SAFETY: TUNSETVNETHDRSZ reads one int.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETVNETHDRSZ, &size) })?;
    // SAFETY: TUNSETOFFLOAD takes its flags by value.
    cvt(unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            TUNSETOFFLOAD,
            (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) as libc::c_ulong,
        )
    })?;
    Ok(())
}

/// Turns the receive offloads of a TAP read without `virtio_net_hdr` off. They
/// outlive the descriptor that set them: on a persistent TAP a previous opener
/// with offload leaves them on, and the kernel goes on handing over frames
/// whose checksums it left to finish, which a reader without the header cannot
/// (measured: SYN-ACKs with pseudo-header-only checksums).
fn no_offload(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: TUNSETOFFLOAD takes its flags by value.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETOFFLOAD, 0 as libc::c_ulong) })?;
    Ok(())
}

/// Takes over `raw`, a descriptor this process inherited that is attached to a
/// TAP device (opened by a privileged helper, say). It must be a TAP device
/// without packet information; returns it, the interface's name, and whether
/// frames carry a `virtio_net_hdr` (it was opened with `IFF_VNET_HDR`: the
/// offloads of [`tap_attach`] are then set too).
pub fn tap_adopt(raw: RawFd) -> io::Result<(OwnedFd, String, bool)> {
    if raw < 3 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("fd {raw} is a standard stream, not a TAP device"),
        ));
    }
    // SAFETY: ifreq is plain data; zero is valid.
    let mut ifr: libc::ifreq = unsafe { zeroed() };
    // SAFETY: TUNGETIFF writes a valid ifreq; on an fd that is not a TUN/TAP it fails
    // (EBADF, ENOTTY, EBADFD) and touches nothing.
    cvt(unsafe { libc::ioctl(raw, TUNGETIFF, &mut ifr) }).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("fd {raw} is not attached to a TAP device ({e})"),
        )
    })?;
    // SAFETY: the kernel wrote the flags member of the union.
    let flags = unsafe { ifr.ifr_ifru.ifru_flags };
    if flags & IFF_TAP == 0 || flags & IFF_NO_PI == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "fd {raw} is attached to {} with flags {flags:#x}; netcell needs IFF_TAP | IFF_NO_PI",
                ifr_name(&ifr)
            ),
        ));
    }
    // SAFETY: the fd is open (TUNGETIFF succeeded) and this process takes it over; the
    // caller passes an fd nothing else in the process owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: plain fcntl.
    cvt(unsafe { libc::fcntl(raw, libc::F_SETFD, libc::FD_CLOEXEC) })?;
    let vnet = flags & IFF_VNET_HDR != 0;
    if vnet {
        tap_offload(fd.as_fd())?;
    } else {
        no_offload(fd.as_fd())?;
    }
    Ok((fd, ifr_name(&ifr), vnet))
}

/// The index of a network interface in this process's network namespace, if it exists.
pub fn if_index(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx)
}
