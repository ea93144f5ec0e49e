//! Sniffing to a file: every frame of every interface as pcapng (`--pcap FILE`),
//! which tcpdump, tshark and Wireshark read, with each interface's name.
//!
//! The packet path never waits for the file: frames are appended to a bounded
//! buffer in memory (no syscall per frame), which the event loop writes out when
//! it holds [`FLUSH_AT`] bytes or is [`FLUSH_AFTER`] old, and once more when the
//! stack ends. When the buffer is full (the file is slower than the traffic), a
//! frame is not recorded and counted as dropped (`netcell stats`).
//!
//! What is recorded, as Linux's capture points see it: a frame arriving on a
//! device before the packet filter looks at it, a frame leaving once the filter
//! has let it go, and on `lo` each packet once (as it is sent). Every interface
//! is recorded as Ethernet: IP-medium ones (`lo`, the host uplink) get an
//! Ethernet header with zero addresses, as Linux's `lo` shows in tcpdump —
//! libpcap refuses a file whose interfaces have different link types. Frames
//! merged by TSO offload are recorded as they crossed the device (up to 64 KiB),
//! as tcpdump shows them on Linux.

use std::io::{self, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The buffer holds at most this much (beyond, frames are dropped).
pub const MAX_BUFFER: usize = 8 << 20;
/// Written out once this much is buffered...
pub const FLUSH_AT: usize = 256 << 10;
/// ...or once the oldest buffered frame is this old.
pub const FLUSH_AFTER: Duration = Duration::from_millis(200);

const LINKTYPE_ETHERNET: u16 = 1;

/// Counters of a capture.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Frames recorded.
    pub frames: u64,
    /// Frames not recorded (the buffer was full).
    pub dropped: u64,
    /// Bytes written to the file.
    pub written: u64,
    /// Write errors (the capture stops at the first).
    pub errors: u64,
}

/// A pcapng capture of a stack's interfaces.
#[derive(Default)]
pub struct Capture {
    out: Option<Box<dyn Write + Send>>,
    /// Per interface: its frames are IP packets (an Ethernet header is added).
    raw_ip: Vec<bool>,
    buf: Vec<u8>,
    since: Option<Instant>,
    stats: CaptureStats,
}

fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

fn option(buf: &mut Vec<u8>, code: u16, value: &[u8]) {
    buf.extend_from_slice(&code.to_ne_bytes());
    buf.extend_from_slice(&(value.len() as u16).to_ne_bytes());
    buf.extend_from_slice(value);
    buf.resize(pad4(buf.len()), 0);
}

/// Appends a block of type `ty` whose body `body` writes.
fn block(buf: &mut Vec<u8>, ty: u32, body: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(&[0; 4]);
    body(buf);
    buf.resize(start + pad4(buf.len() - start), 0);
    let total = (buf.len() - start + 4) as u32;
    buf.extend_from_slice(&total.to_ne_bytes());
    buf[start + 4..start + 8].copy_from_slice(&total.to_ne_bytes());
}

impl Capture {
    /// Starts a capture into `out` of interfaces `ifaces` (name, Ethernet or
    /// not), in index order.
    pub fn start(out: Box<dyn Write + Send>, ifaces: &[(String, bool)]) -> Capture {
        let mut buf = Vec::with_capacity(MAX_BUFFER);
        // Section header: byte-order magic, version 1.0, length unknown.
        block(&mut buf, 0x0A0D_0D0A, |b| {
            b.extend_from_slice(&0x1A2B_3C4Du32.to_ne_bytes());
            b.extend_from_slice(&1u16.to_ne_bytes());
            b.extend_from_slice(&0u16.to_ne_bytes());
            b.extend_from_slice(&(-1i64).to_ne_bytes());
            option(b, 4, b"netcell");
            option(b, 0, &[]);
        });
        for (name, _) in ifaces {
            block(&mut buf, 1, |b| {
                b.extend_from_slice(&LINKTYPE_ETHERNET.to_ne_bytes());
                b.extend_from_slice(&0u16.to_ne_bytes());
                b.extend_from_slice(&0u32.to_ne_bytes()); // no snap length
                option(b, 2, name.as_bytes()); // if_name
                option(b, 0, &[]);
            });
        }
        Capture {
            out: Some(out),
            raw_ip: ifaces.iter().map(|(_, e)| !e).collect(),
            buf,
            since: Some(Instant::now()),
            stats: CaptureStats::default(),
        }
    }

    /// Whether frames are being recorded.
    pub fn active(&self) -> bool {
        self.out.is_some()
    }

    /// Counters.
    pub fn stats(&self) -> CaptureStats {
        self.stats
    }

    /// Records one frame of interface `iface` (`outbound`: sent by the stack).
    pub fn frame(&mut self, iface: usize, outbound: bool, data: &[u8]) {
        if self.out.is_none() {
            return;
        }
        // Enhanced packet block: 28 bytes of header, the data padded, the
        // direction flags option (12), the end marker (4) and the trailer (4).
        let raw = self.raw_ip.get(iface).copied().unwrap_or(false);
        let len = data.len() + if raw { 14 } else { 0 };
        let need = 28 + pad4(len) + 12 + 4 + 4;
        if self.buf.len() + need > MAX_BUFFER {
            self.stats.dropped += 1;
            return;
        }
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        block(&mut self.buf, 6, |b| {
            b.extend_from_slice(&(iface as u32).to_ne_bytes());
            b.extend_from_slice(&((t >> 32) as u32).to_ne_bytes());
            b.extend_from_slice(&(t as u32).to_ne_bytes());
            b.extend_from_slice(&(len as u32).to_ne_bytes());
            b.extend_from_slice(&(len as u32).to_ne_bytes());
            if raw {
                let ty: [u8; 2] = match data.first().map(|v| v >> 4) {
                    Some(6) => [0x86, 0xdd],
                    _ => [0x08, 0x00],
                };
                b.extend_from_slice(&[0; 12]);
                b.extend_from_slice(&ty);
            }
            b.extend_from_slice(data);
            b.resize(pad4(b.len()), 0);
            // epb_flags: inbound 1, outbound 2.
            let flags: u32 = if outbound { 2 } else { 1 };
            option(b, 2, &flags.to_ne_bytes());
            option(b, 0, &[]);
        });
        self.stats.frames += 1;
        self.since.get_or_insert_with(Instant::now);
    }

    /// How long the event loop may wait before [`Capture::flush`] is due.
    pub fn flush_in(&self) -> Option<Duration> {
        let since = self.since?;
        self.out.as_ref()?;
        Some(FLUSH_AFTER.saturating_sub(since.elapsed()))
    }

    /// Writes the buffer out if it is due (`force`: now).
    pub fn flush(&mut self, force: bool) {
        let due = force
            || self.buf.len() >= FLUSH_AT
            || self.since.is_some_and(|s| s.elapsed() >= FLUSH_AFTER);
        if !due || self.buf.is_empty() {
            return;
        }
        let Some(out) = self.out.as_mut() else {
            return;
        };
        let mut done = 0;
        let r = loop {
            match out.write(&self.buf[done..]) {
                Ok(0) => break Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => {
                    done += n;
                    if done == self.buf.len() {
                        break Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        self.stats.written += done as u64;
        self.buf.drain(..done);
        self.since = (!self.buf.is_empty()).then(Instant::now);
        if let Err(e) = r.and_then(|()| out.flush()) {
            log::warn!("capture: cannot write the capture file: {e}; capture stops");
            self.stats.errors += 1;
            self.out = None;
            self.buf = Vec::new();
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.flush(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_ne_bytes(b[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn blocks_are_well_formed_and_full_buffers_drop() {
        let out = Shared::default();
        let mut c = Capture::start(
            Box::new(out.clone()),
            &[("lo".into(), false), ("eth0".into(), true)],
        );
        c.frame(1, false, &[0xab; 61]);
        c.frame(0, true, &[0x45; 20]);
        c.flush(true);
        let b = out.0.lock().unwrap().clone();
        // Walk the blocks: each length is a multiple of 4, repeated at its end.
        let mut at = 0;
        let mut types = Vec::new();
        while at < b.len() {
            let (ty, len) = (u32_at(&b, at), u32_at(&b, at + 4) as usize);
            assert_eq!(len % 4, 0);
            assert_eq!(u32_at(&b, at + len - 4) as usize, len);
            types.push(ty);
            at += len;
        }
        assert_eq!(at, b.len());
        assert_eq!(types, [0x0A0D_0D0A, 1, 1, 6, 6]);
        assert_eq!(c.stats().frames, 2);
        // A buffer that cannot take more drops, and counts.
        let mut c = Capture::start(Box::new(Shared::default()), &[("lo".into(), false)]);
        for _ in 0..(MAX_BUFFER / 65536 + 2) {
            c.frame(0, true, &[0; 65536]);
        }
        assert!(c.stats().dropped >= 1, "{:?}", c.stats());
    }
}
