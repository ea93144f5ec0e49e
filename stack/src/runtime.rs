//! The event loop of a stack process: one thread, one `mio` poll over the L2
//! devices (TAPs, the host uplink), the control socket, its connections and every
//! stand-in.
//!
//! Each turn sleeps until an fd is ready or smoltcp's (or the socket layer's) next
//! deadline — after a turn with events it may first look again for a moment
//! (`SPIN`, while no device has frames: a sleeping thread's wake-up is what a
//! request/response pays most for) — records readiness (edge-triggered: a stand-in's flags are cleared by
//! the pump when a read or write says `EAGAIN`), serves control requests, and then
//! runs [`Stack::poll`] once, which drains the TAP until it is empty, polls both
//! interfaces and pumps every stand-in until nothing moves. Nothing here allocates
//! per packet: the readiness list is reused from turn to turn.
//!
//! The launcher adds its own fds (a signalfd, the child's pidfd) as *external*
//! sources and is told when they are ready.

use crate::control::server::{ConnEvent, ControlServer};
use crate::device::Link;
use crate::stack::Stack;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

const CONTROL: Token = Token(1);
/// External sources use tokens `EXTERNAL..EXTERNAL + MAX_EXTERNAL`.
const EXTERNAL: usize = 2;
/// How many external sources a runtime takes.
pub const MAX_EXTERNAL: usize = 80;
const KIND_SHIFT: u32 = 48;
const KIND_CONN: usize = 1 << KIND_SHIFT;
const KIND_STANDIN: usize = 2 << KIND_SHIFT;
const KIND_NETLINK: usize = 3 << KIND_SHIFT;
const KIND_DEVICE: usize = 4 << KIND_SHIFT;
const INDEX_MASK: usize = (1 << KIND_SHIFT) - 1;

#[derive(Clone, Copy)]
struct Ready {
    token: usize,
    readable: bool,
    writable: bool,
    hup: bool,
    priority: bool,
}

/// A stack with its control server, driven by `mio`.
pub struct Runtime {
    poll: Poll,
    events: Events,
    ready: Vec<Ready>,
    stack: Stack<Link>,
    control: ControlServer,
    /// The last turn had events: the next looks again for a moment before it
    /// sleeps (see [`SPIN`]).
    busy: bool,
    /// How long it looks.
    spin: Duration,
    /// When a device last had frames: the spin waits for [`WIRE_QUIET`] after.
    wire_at: Option<std::time::Instant>,
}

/// How long after a device's last frames the loop may spin again (see [`SPIN`]).
const WIRE_QUIET: Duration = Duration::from_millis(20);

/// How long a turn after a busy one looks for events without sleeping, unless
/// `NETCELL_SPIN_US` in the environment says otherwise (0 turns it off;
/// embedders call [`Runtime::set_spin`]). A program's next request often follows
/// its last answer within microseconds; waking a sleeping thread costs tens of
/// them on a machine whose idle CPUs sleep deeply (the kernel's own
/// request/response round trip varied from 8.5 to 54 µs between this project's
/// machines). While it looks it yields the CPU to any runnable thread first.
///
/// It looks only while no device has had frames for [`WIRE_QUIET`]: with traffic
/// on the wire the spinning thread took the CPU the transfer's other processes
/// needed (on 2 vCPUs, ungated, a TCP upload over the TAP fell from 7.8–9.3 to
/// 3.7–6.4 Gbit/s in interleaved runs), and a frame's own arrival wakes the loop
/// anyway. What is left is the traffic that never leaves the container (its
/// loopback, its control calls), where every step is a wake-up of the program or
/// of netcell. Measured with 50 µs against none, interleaved, on the same 2-vCPU
/// VM: sockperf on a container's loopback, p50 58–95 → 32–34 µs under seccomp
/// and 17–52 → 15–21 µs under preload (the kernel's own loopback: 54 µs), p99
/// 164–849 → 85–97 and 105–1634 → 55–71 µs; UDP echo round trips under preload
/// 4.8–7.7 k → 12–15 k/s; connect+close, TCP over the TAP and UDP into the
/// container unchanged within the noise. Idle connections bring no events: an
/// idle container does not spin.
///
/// Its price is CPU, and a program can make it pay: one that wakes the loop
/// just after each look ends (a datagram to itself every 60 µs on the
/// container's loopback) had netcell use 1.94 s of CPU in 4 s against 0.34 s
/// without the spin (every 200 µs: 0.82 against 0.22 s;
/// `shim/bench/spin_cost.sh`). It stays within the
/// one thread's CPU, yields to runnable threads, and is what request/response
/// traffic pays too. Two ways to adapt it were tried and dropped: halving the
/// look after each one that caught nothing (as KVM adapts its halt polling) cut
/// that cost to 1.5× but lost most of the gain on UDP echo round trips, whose
/// waits hover around the look's length (6.7–10 k/s against 13–16 k/s); and a
/// budget for looks that caught nothing did not cut it at all, since a program
/// can time its wake-ups to be caught late in each look.
///
/// (It was off for a while: Go's `net` tests hung twice in 7 runs with it, in
/// `TestSplice`, an accept that never returned. Since the changes that followed,
/// 40 runs of the whole suite with it did not hang once.)
const SPIN: Duration = Duration::from_micros(50);

fn spin_from_env() -> Duration {
    std::env::var("NETCELL_SPIN_US")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(SPIN, |us: u64| Duration::from_micros(us.min(10_000)))
}

impl Runtime {
    /// Starts watching the stack's devices and the control socket.
    pub fn new(mut stack: Stack<Link>, control: ControlServer) -> io::Result<Runtime> {
        let poll = Poll::new()?;
        for (i, dev) in stack.devices_mut().iter_mut().enumerate() {
            // The loop flushes the TAPs after every poll, so they may merge TCP
            // segments.
            if let Link::Tap(tap) = dev {
                tap.set_tx_coalescing(true);
            }
            dev.set_watched();
            poll.registry().register(
                &mut SourceFd(&dev.as_raw_fd()),
                Token(KIND_DEVICE | i),
                Interest::READABLE,
            )?;
        }
        poll.registry().register(
            &mut SourceFd(&control.listener_fd()),
            CONTROL,
            Interest::READABLE,
        )?;
        Ok(Runtime {
            poll,
            events: Events::with_capacity(1024),
            ready: Vec::with_capacity(1024),
            stack,
            control,
            busy: false,
            spin: spin_from_env(),
            wire_at: None,
        })
    }

    /// Watches an fd of the caller's; [`Runtime::turn`] reports it by `n`.
    pub fn register_external(&self, fd: RawFd, n: usize) -> io::Result<()> {
        assert!(n < MAX_EXTERNAL, "external source {n} out of range");
        self.poll
            .registry()
            .register(&mut SourceFd(&fd), Token(EXTERNAL + n), Interest::READABLE)
    }

    /// How long a turn after a busy one looks for events before it sleeps
    /// (`NETCELL_SPIN_US`, else 50 µs; zero: never; the module's `SPIN` says
    /// when and why).
    pub fn set_spin(&mut self, spin: Duration) {
        self.spin = spin;
    }

    /// The stack.
    pub fn stack(&mut self) -> &mut Stack<Link> {
        &mut self.stack
    }

    /// The control server.
    pub fn control(&self) -> &ControlServer {
        &self.control
    }

    /// One turn of the loop: wait at most `max_wait` (and no longer than the stack's
    /// next deadline), handle what is ready, poll the stack. External sources that
    /// were ready are passed to `on_external`, with the stack: what it does there
    /// (new sockets included) is polled and watched in this same turn.
    pub fn turn(
        &mut self,
        max_wait: Option<Duration>,
        mut on_external: impl FnMut(usize, &mut Stack<Link>),
    ) -> io::Result<()> {
        let mut timeout = self.stack.poll_delay();
        // Datagrams the uplink read from host sockets and the stack has not taken.
        if self.stack.devices().iter().any(Link::has_pending) {
            timeout = Some(Duration::ZERO);
        }
        // Requests a batch left (see the control server's docs).
        if self.control.has_backlog() || self.stack.netlink_has_backlog() {
            timeout = Some(Duration::ZERO);
        }
        if let Some(m) = max_wait {
            timeout = Some(timeout.map_or(m, |t| t.min(m)));
        }
        // A capture's buffer is written out in time.
        if let Some(c) = self.stack.interfaces().capture().borrow().flush_in() {
            timeout = Some(timeout.map_or(c, |t| t.min(c)));
        }
        if self.busy
            && !self.spin.is_zero()
            && timeout != Some(Duration::ZERO)
            && self.wire_at.is_none_or(|t| t.elapsed() >= WIRE_QUIET)
        {
            // Look again for a moment (never past the timeout) before sleeping.
            let spin = timeout.map_or(self.spin, |t| t.min(self.spin));
            let until = std::time::Instant::now() + spin;
            loop {
                match self.poll.poll(&mut self.events, Some(Duration::ZERO)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
                if !self.events.is_empty() || std::time::Instant::now() >= until {
                    break;
                }
                // A runnable thread of this CPU (the program, the kernel's side of
                // the TAP) goes first: spinning must not take its time.
                std::thread::yield_now();
            }
            if self.events.is_empty() {
                timeout = timeout.map(|t| t.saturating_sub(spin));
            }
        } else {
            self.events.clear();
        }
        if self.events.is_empty() {
            match self.poll.poll(&mut self.events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.busy = !self.events.is_empty();
        self.control.serve_backlog(&mut self.stack);
        self.stack.netlink_serve_backlog();
        self.ready.clear();
        for ev in self.events.iter() {
            self.ready.push(Ready {
                token: ev.token().0,
                readable: ev.is_readable(),
                writable: ev.is_writable(),
                hup: ev.is_write_closed() || ev.is_error(),
                priority: ev.is_priority(),
            });
        }
        for i in 0..self.ready.len() {
            let r = self.ready[i];
            match r.token {
                t if t & !INDEX_MASK == KIND_DEVICE => {
                    if !self.spin.is_zero() {
                        self.wire_at = Some(std::time::Instant::now());
                    }
                    // Stack::poll drains it.
                    if let Some(dev) = self.stack.devices_mut().get_mut(t & INDEX_MASK) {
                        dev.readable();
                    }
                }
                t if t == CONTROL.0 => {
                    self.control.accept();
                    let reg = self.poll.registry();
                    self.control.drain_new(|idx, fd| {
                        if let Err(e) = reg.register(
                            &mut SourceFd(&fd),
                            Token(KIND_CONN | idx),
                            Interest::READABLE,
                        ) {
                            log::warn!("control: cannot watch connection {idx}: {e}");
                        }
                    });
                }
                t if (EXTERNAL..EXTERNAL + MAX_EXTERNAL).contains(&t) => {
                    on_external(t - EXTERNAL, &mut self.stack)
                }
                t if t & !INDEX_MASK == KIND_CONN => {
                    // A connection that closes drops its fd, which leaves the poll set.
                    let _: ConnEvent = self.control.serve(t & INDEX_MASK, &mut self.stack);
                }
                t if t & !INDEX_MASK == KIND_NETLINK => {
                    self.stack.netlink_ready(t & INDEX_MASK, r.hup);
                }
                t if t & !INDEX_MASK == KIND_STANDIN => {
                    self.stack
                        .sockets_mut()
                        .standin_event(t & INDEX_MASK, (r.readable, r.writable, r.hup, r.priority));
                }
                _ => {}
            }
        }
        self.stack.begin_turn(!self.control.has_backlog());
        self.stack.poll();
        // Grants lapse for what this turn changed (DHCP, router advertisements).
        self.stack.sync_grants();
        // Merged TCP segments leave before the loop sleeps.
        for dev in self.stack.devices_mut() {
            dev.flush();
        }
        self.stack.interfaces().capture().borrow_mut().flush(false);
        let reg = self.poll.registry();
        self.stack.netlink_drain_new(|idx, fd| {
            if let Err(e) = reg.register(
                &mut SourceFd(&fd),
                Token(KIND_NETLINK | idx),
                // WRITABLE: replies that did not fit go out as the program reads.
                Interest::READABLE | Interest::WRITABLE,
            ) {
                log::warn!("runtime: cannot watch netlink socket {idx}: {e}");
            }
        });
        self.stack.sockets_mut().drain_new_standins(|idx, fd| {
            if let Err(e) = reg.register(
                &mut SourceFd(&fd),
                Token(KIND_STANDIN | idx),
                // PRIORITY: a program's urgent byte (MSG_OOB) waits in the stand-in.
                Interest::READABLE | Interest::WRITABLE | Interest::PRIORITY,
            ) {
                log::warn!("runtime: cannot watch stand-in {idx}: {e}");
            }
        });
        Ok(())
    }
}
