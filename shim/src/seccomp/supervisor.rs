//! The supervisor: takes the container's notifications and answers them.
//!
//! It runs in the stack's own thread, as two sources of its event loop (the
//! notification listener, and the set of parked calls), and calls the socket
//! service directly: a notified call costs the kernel's round trip and nothing more.
//!
//! A call that would block (`accept` on an empty queue, a blocking `connect`, a
//! receive with nothing queued) must not block the stack. It is *parked*: a copy of
//! its descriptor joins the supervisor's own epoll set, and the call is served
//! again when that descriptor turns ready — the stack makes it ready itself, by
//! delivering a connection, a datagram or the end of a handshake. Its target
//! meanwhile sleeps in the kernel, interruptibly: a signal ends the wait (the call
//! fails with `EINTR`, or is restarted and arrives as a new notification) without
//! anything happening here. Parked calls are therefore checked with `ID_VALID`
//! every 100 ms and dropped when dead, their descriptor copies closed; `SO_RCVTIMEO`
//! and `SO_SNDTIMEO` give them deadlines. And a thread is in one call at a time: a
//! new call from a thread with a parked call means that one was interrupted, and
//! it goes at once (a thread signalled every 50 µs while blocked in `recvfrom`
//! left hundreds of dead copies of one socket watched, until epoll refused more).
//!
//! # Answers a signal cuts off
//!
//! A signal can end a call after netcell carried it out and before its answer
//! reached it: the answer fails, and the call, restarted (`SA_RESTART`, as Go's
//! `SIGURG` preemption does) or retried after `EINTR`, arrives again. Linux never
//! does a call twice so. So a receive from a stream only peeks, and takes what it
//! read once its answer is delivered; a datagram taken for a receive goes back
//! into its stand-in when the answer fails (`Outcome::Peeked`); a connect's
//! success is marked reported only once delivered (`Outcome::Connected`); and any
//! other call that succeeded but whose answer failed is remembered (`Done`): the same
//! thread's next call, if it is the same call with the same arguments, gets the
//! first one's answer instead of being carried out again — a
//! send is not sent twice, a `bind` does not fail with `EINVAL` for the binding
//! its first run made. What that cannot tell apart: a program that gets `EINTR`
//! for such a call, does not retry it, and next makes the very same call (a send
//! of other bytes from the same buffer, say) — that one is not carried out; and a
//! call answered so does not write its results again (an `accept` retried with
//! its address length reset reads the first run's length).
//!
//! What no supervisor can mend is the kernel's own race: a signal that wakes the
//! target just before the answer lands makes it drop an answer it accepted
//! (`seccomp_do_user_notification` goes to `interrupted` whenever its wait was
//! interrupted, the reply notwithstanding). A receive so answered has taken its
//! datagram, a send has sent. Measured with a signal every 50 µs or so
//! (`signal_storm.py`): 2 or 3 datagrams in 5 000 rounds lost, 1 to 3 doubled.
//! `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV` would close it, but a call netcell
//! parks would then be deaf to every signal but a fatal one.
//!
//! A listener's notifications are served 16 at a time (`BATCH`), as the control
//! server serves a connection's requests: a program that calls again the moment it
//! is answered always has its next call waiting, and serving until none is would
//! keep the event loop here — the hang-ups of the sockets it closed unread, the TAP
//! and every other process waiting (measured: a connect+close loop over the TAP
//! held up to 484 closed sockets at once, every turn going over all of them). What
//! a batch leaves is the backlog, served before the next turn, which does not wait.
//!
//! # Wake-ups
//!
//! Every listener is switched to synchronous wake-ups
//! (`SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP`, Linux 6.6): the kernel wakes a caller
//! on the CPU that answered it, and wakes the stack's thread (which waits in
//! epoll, so only as a hint that the caller is about to sleep) towards the
//! caller's, instead of sending another CPU an interrupt and waiting for it to
//! leave its idle state. On this 2-vCPU VM a cross-CPU wake-up costs tens of
//! microseconds, and a notified call had two: switching raised `sendto` with an
//! address from 11–14 k to 52–63 k calls per second, and UDP echo round trips
//! (`recvfrom` + `sendto` on both sides) from 4–5 k to 8.5–13.6 k per second (the
//! kernel's own: 9.5 k). The price: a caller woken so stays near the stack's CPU
//! for a while, and a flood of calls that are not notified right after (connected
//! `send`s) measured 0.9× in the same runs.

use super::calls::{self, Block, Consume, Cx, Outcome, Scratch};
use super::files::Files;
use super::kernel::{self, Notif};
use super::target::{Call, PIDFD_TOKEN, Pidfds};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use netcell_proto::Request;
use netcell_stack::Stack;
use smoltcp::phy::Device;
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// How often parked calls are checked for targets that went away.
const SWEEP: Duration = Duration::from_millis(100);

struct Parked {
    notif: Notif,
    /// The listener it came from.
    listener: usize,
    fd: OwnedFd,
    deadline: Option<Instant>,
    timeout_errno: i32,
    watch: Option<u64>,
    /// Served again at this time rather than on readiness.
    retry_at: Option<Instant>,
}

/// How long a call waiting for more of a stream than is there sleeps between looks.
const RETRY: Duration = Duration::from_millis(5);

/// Notifications served from one listener before the event loop turns.
const BATCH: usize = 16;

/// A call that succeeded but whose answer did not reach it: what it returned.
struct Done {
    tid: u32,
    arch: u32,
    nr: i32,
    args: [u64; 6],
    value: i64,
}

/// Calls remembered at most (one per interrupted thread; the oldest goes). An
/// entry also goes with its thread's next call and with its thread. No time
/// limit: a frozen or stopped container restarts its calls when it is thawed.
const MAX_DONE: usize = 64;

/// Whether a call `nr` that succeeded but whose answer did not arrive must be
/// remembered: all but receives (settled by `Outcome::Peeked`). A failed call is
/// never remembered: it did nothing to repeat, and its failure may be the
/// interruption itself (an `ADDFD` the signal cut off fails with `ESRCH`, and a
/// `socket` answered so again would fail for good).
fn remembered(nr: i32) -> bool {
    ![libc::SYS_recvfrom, libc::SYS_recvmsg, libc::SYS_recvmmsg].contains(&(nr as i64))
}

/// Counters, for the log.
#[derive(Default, Debug)]
struct Counts {
    served: u64,
    passed: u64,
    parked: u64,
}

/// The seccomp front end of one container.
pub struct Supervisor {
    /// The command's listener, then those of other process trees in the same
    /// container (the zygote of `netcell exec`): each filter has its own.
    listeners: Vec<OwnedFd>,
    poll: Poll,
    events: Events,
    ready: Vec<usize>,
    parked: Vec<Option<Parked>>,
    scratch: Scratch,
    pidfds: Pidfds,
    files: Files,
    next_sweep: Instant,
    counts: Counts,
    /// Parked calls at most (each holds a descriptor).
    max_parked: usize,
    /// Listeners a batch left notifications on.
    backlog: Vec<usize>,
    /// The backlog being served (kept to reuse its allocation).
    serving: Vec<usize>,
    /// Calls whose answers a signal cut off (see the module docs).
    done: Vec<Done>,
    /// The slot of each thread's parked call.
    parked_by_tid: HashMap<u32, usize>,
}

impl Supervisor {
    /// Serves the notifications of `listener`, substituting `files`, with at most
    /// `max_parked` calls waiting at once.
    pub fn new(listener: OwnedFd, files: Files, max_parked: usize) -> io::Result<Supervisor> {
        hand_over_on_this_cpu(&listener);
        let poll = Poll::new()?;
        let pidfds = Pidfds::new(poll.registry().try_clone()?);
        Ok(Supervisor {
            listeners: vec![listener],
            poll,
            events: Events::with_capacity(64),
            ready: Vec::with_capacity(64),
            parked: Vec::new(),
            scratch: Scratch::new(),
            pidfds,
            files,
            next_sweep: Instant::now() + SWEEP,
            counts: Counts::default(),
            max_parked,
            backlog: Vec::new(),
            serving: Vec::new(),
            done: Vec::new(),
            parked_by_tid: HashMap::new(),
        })
    }

    /// The command's notification listener, for the event loop.
    pub fn listener_fd(&self) -> RawFd {
        self.listeners[0].as_raw_fd()
    }

    /// Serves another filter's listener too (a process tree started behind the
    /// same walls); returns its index for [`Supervisor::on_notifications`].
    pub fn add_listener(&mut self, listener: OwnedFd) -> usize {
        hand_over_on_this_cpu(&listener);
        self.listeners.push(listener);
        self.listeners.len() - 1
    }

    /// [`Supervisor::add_listener`], in the place of one no process uses any
    /// more (and no parked call waits on) when there is one: an OCI container's
    /// execs come and go, and their listeners must not pile up. The command's
    /// (0) is never replaced.
    pub fn add_or_reuse_listener(&mut self, listener: OwnedFd) -> usize {
        let free = (1..self.listeners.len()).find(|&i| {
            netcell_sys::hung_up_now(self.listeners[i].as_fd())
                && !self.parked.iter().flatten().any(|p| p.listener == i)
        });
        match free {
            Some(i) => {
                hand_over_on_this_cpu(&listener);
                self.listeners[i] = listener;
                i
            }
            None => self.add_listener(listener),
        }
    }

    /// How many listeners some process still uses.
    pub fn live_listeners(&self) -> usize {
        self.listeners
            .iter()
            .filter(|l| !netcell_sys::hung_up_now(l.as_fd()))
            .count()
    }

    /// Listener `idx`'s descriptor, for the event loop.
    pub fn listener_fd_of(&self, idx: usize) -> Option<RawFd> {
        self.listeners.get(idx).map(|l| l.as_raw_fd())
    }

    /// The parked calls' epoll set, for the event loop.
    pub fn parked_fd(&self) -> RawFd {
        self.poll.as_raw_fd()
    }

    /// How long the event loop may sleep: until the next deadline or sweep.
    pub fn next_wake(&self) -> Option<Duration> {
        if self.parked.iter().all(Option::is_none) {
            return None;
        }
        let now = Instant::now();
        let mut at = self.next_sweep;
        for p in self.parked.iter().flatten() {
            for d in [p.deadline, p.retry_at].into_iter().flatten() {
                at = at.min(d);
            }
        }
        Some(at.saturating_duration_since(now))
    }

    /// Whether no process uses any of its filters any more (each listener
    /// reports a hang-up): an OCI container is over.
    pub fn all_hung_up(&self) -> bool {
        self.listeners
            .iter()
            .all(|l| netcell_sys::hung_up_now(l.as_fd()))
    }

    /// Serves a batch of the waiting notifications of listener `idx` (0: the
    /// command's); what it leaves joins the backlog (see the module docs).
    pub fn on_notifications<D: Device>(&mut self, stack: &mut Stack<D>, idx: usize) {
        // The listener is borrowed afresh for each receive (not duplicated: a
        // netcell at its descriptor limit must still serve, and a pending
        // notification left unserved would never wake the edge-triggered loop:
        // hence the backlog).
        for _ in 0..BATCH {
            let Some(l) = self.listeners.get(idx) else {
                return;
            };
            if !kernel::pending(l.as_fd()) {
                return;
            }
            match kernel::recv(l.as_fd()) {
                Ok(n) => self.serve(stack, n, idx, None),
                // The target died between the poll and the receive.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => {
                    log::warn!("seccomp: cannot receive a notification: {e}");
                    return;
                }
            }
        }
        if !self.backlog.contains(&idx) {
            self.backlog.push(idx);
        }
    }

    /// Whether a batch left notifications waiting: the event loop must not sleep.
    pub fn has_backlog(&self) -> bool {
        !self.backlog.is_empty()
    }

    /// Serves another batch on each listener a batch left notifications on; the
    /// turn that follows settles what they did (polls the stack, watches new
    /// stand-ins).
    pub fn serve_backlog<D: Device>(&mut self, stack: &mut Stack<D>) {
        std::mem::swap(&mut self.backlog, &mut self.serving);
        while let Some(idx) = self.serving.pop() {
            self.on_notifications(stack, idx);
        }
    }

    /// Serves again the parked calls whose descriptors turned ready.
    pub fn on_ready<D: Device>(&mut self, stack: &mut Stack<D>) {
        if let Err(e) = self.poll.poll(&mut self.events, Some(Duration::ZERO)) {
            if e.kind() != io::ErrorKind::Interrupted {
                log::warn!("seccomp: polling parked calls: {e}");
            }
            return;
        }
        self.ready.clear();
        self.ready.extend(self.events.iter().map(|e| e.token().0));
        for i in 0..self.ready.len() {
            let slot = self.ready[i];
            if slot & PIDFD_TOKEN != 0 {
                // A thread that made calls exited.
                let tid = (slot & !PIDFD_TOKEN) as u32;
                self.pidfds.forget(tid);
                self.done.retain(|d| d.tid != tid);
                continue;
            }
            if let Some(p) = self.unpark(slot) {
                self.serve(stack, p.notif, p.listener, Some(p));
            }
        }
    }

    /// Ends parked calls whose deadline passed, resumes those whose socket got an
    /// error, drops those whose target went away.
    pub fn tick<D: Device>(&mut self, stack: &mut Stack<D>) {
        if self.parked.iter().all(Option::is_none) {
            return;
        }
        let now = Instant::now();
        let sweep = now >= self.next_sweep;
        if sweep {
            self.next_sweep = now + SWEEP;
        }
        for slot in 0..self.parked.len() {
            let Some(p) = &self.parked[slot] else {
                continue;
            };
            let expired = p.deadline.is_some_and(|d| now >= d);
            let errored = p.watch.is_some_and(|ino| {
                calls::ask_stack(stack, ino, &Request::PendingError { take: false }).value != 0
            });
            let retry = p.retry_at.is_some_and(|d| now >= d);
            let dead = sweep && !kernel::id_valid(self.listeners[p.listener].as_fd(), p.notif.id);
            if !(expired || errored || retry || dead) {
                continue;
            }
            let Some(p) = self.unpark(slot) else {
                continue;
            };
            if dead {
                log::trace!("seccomp: parked call of {} was interrupted", p.notif.pid);
            } else if expired {
                let _ = self.respond(p.listener, p.notif.id, Outcome::Errno(p.timeout_errno));
            } else {
                self.serve(stack, p.notif, p.listener, Some(p));
                // What it sent leaves now: the turn's poll is over.
                stack.poll();
            }
        }
    }

    /// Takes the call parked in `slot` out of the watch.
    fn unpark(&mut self, slot: usize) -> Option<Parked> {
        let p = self.parked.get_mut(slot).and_then(Option::take)?;
        if self.parked_by_tid.get(&p.notif.pid) == Some(&slot) {
            self.parked_by_tid.remove(&p.notif.pid);
        }
        self.unwatch(&p);
        Some(p)
    }

    fn unwatch(&self, p: &Parked) {
        let _ = self
            .poll
            .registry()
            .deregister(&mut SourceFd(&p.fd.as_raw_fd()));
    }

    /// Serves one call (`prev`: it was parked before).
    fn serve<D: Device>(
        &mut self,
        stack: &mut Stack<D>,
        notif: Notif,
        li: usize,
        prev: Option<Parked>,
    ) {
        if prev.is_none()
            && let Some(&slot) = self.parked_by_tid.get(&notif.pid)
        {
            // Its thread calls again: the parked call was interrupted.
            log::trace!("seccomp: parked call of {} was interrupted", notif.pid);
            drop(self.unpark(slot));
        }
        if !self.done.is_empty() && self.restarted(&notif, li) {
            return;
        }
        let call = Call::new(self.listeners[li].as_fd(), &self.pidfds, &notif);
        let mut cx = Cx {
            stack,
            call,
            resumed: prev.is_some(),
            scratch: &mut self.scratch,
            files: &self.files,
        };
        let out = calls::serve(&mut cx);
        self.counts.served += 1;
        if log::log_enabled!(log::Level::Trace) {
            log::trace!(
                "seccomp: pid {} call {} {:x?} -> {}",
                notif.pid,
                notif.data.nr,
                &notif.data.args[..3],
                out.describe()
            );
        }
        match out {
            Outcome::Block(b) => self.park(notif, li, b, prev.and_then(|p| p.deadline)),
            Outcome::Connected(id) => {
                if self.respond(li, notif.id, Outcome::Value(0)) {
                    calls::ask_stack(stack, id, &Request::ConnectDone { commit: true });
                }
            }
            Outcome::Peeked(v, c) => {
                let delivered = self.respond(li, notif.id, Outcome::Value(v));
                match c {
                    Consume::Stream { fd, len } if delivered => {
                        super::intake::consume(fd.as_fd(), len)
                    }
                    Consume::Stream { .. } => {}
                    Consume::Datagram(t) => {
                        super::datagram::settle(stack, &t, delivered, &self.scratch.buf)
                    }
                }
            }
            Outcome::Value(v) if remembered(notif.data.nr) => {
                self.answer_remembering(li, &notif, v)
            }
            o => {
                self.respond(li, notif.id, o);
            }
        }
        if self.counts.served.is_multiple_of(100_000) {
            log::debug!("seccomp: {:?}", self.counts);
        }
    }

    /// Answers `notif` if it is the restart of a call already carried out (see the
    /// module docs); a thread's other calls end what was remembered for it.
    fn restarted(&mut self, notif: &Notif, li: usize) -> bool {
        let Some(i) = self.done.iter().position(|d| d.tid == notif.pid) else {
            return false;
        };
        let d = self.done.remove(i);
        if (d.arch, d.nr, d.args) != (notif.data.arch, notif.data.nr, notif.data.args) {
            return false;
        }
        log::debug!(
            "seccomp: pid {} restarted call {}: answered as before",
            notif.pid,
            d.nr
        );
        if !self.respond(li, notif.id, Outcome::Value(d.value)) {
            self.done.push(d);
        }
        true
    }

    /// Answers `notif` with `value`, and remembers it if it did not arrive.
    fn answer_remembering(&mut self, li: usize, notif: &Notif, value: i64) {
        if self.respond(li, notif.id, Outcome::Value(value)) {
            return;
        }
        if self.done.len() >= MAX_DONE {
            self.done.remove(0);
        }
        self.done.push(Done {
            tid: notif.pid,
            arch: notif.data.arch,
            nr: notif.data.nr,
            args: notif.data.args,
            value,
        });
    }

    /// Answers a call; false if the answer did not reach it (it was interrupted).
    fn respond(&mut self, li: usize, id: u64, out: Outcome) -> bool {
        let Some(l) = self.listeners.get(li) else {
            return false;
        };
        let l = l.as_fd();
        let r = match out {
            Outcome::Value(v) => kernel::respond(l, id, v, 0, false),
            Outcome::Errno(e) => kernel::respond(l, id, 0, e, false),
            Outcome::Continue => {
                self.counts.passed += 1;
                kernel::respond(l, id, 0, 0, true)
            }
            Outcome::Connected(_) | Outcome::Peeked(..) => kernel::respond(l, id, 0, 0, false),
            Outcome::Answered | Outcome::Gone | Outcome::Block(_) => Ok(()),
        };
        match r {
            Ok(()) => true,
            Err(e) => {
                if e.raw_os_error() != Some(libc::ENOENT) {
                    log::debug!("seccomp: answering call {id}: {e}");
                }
                false
            }
        }
    }

    fn park(&mut self, notif: Notif, li: usize, b: Block, deadline: Option<Instant>) {
        let slot = match self.parked.iter().position(Option::is_none) {
            Some(i) => i,
            None if self.parked.len() >= self.max_parked => {
                super::calls::log_refusal(
                    notif.pid,
                    format_args!(
                        "{} calls wait already (--max-blocked-calls): a call that would wait fails with ENOBUFS",
                        self.parked.len()
                    ),
                );
                let _ = self.respond(li, notif.id, Outcome::Errno(libc::ENOBUFS));
                return;
            }
            None => {
                self.parked.push(None);
                self.parked.len() - 1
            }
        };
        let interest = if b.writable {
            Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        if !b.retry
            && let Err(e) = self.poll.registry().register(
                &mut SourceFd(&b.fd.as_raw_fd()),
                Token(slot),
                interest,
            )
        {
            log::warn!(
                "seccomp: cannot watch a blocked call (descriptor {}): {e}",
                b.fd.as_raw_fd()
            );
            let _ = self.respond(li, notif.id, Outcome::Errno(libc::ENOMEM));
            return;
        }
        self.counts.parked += 1;
        let deadline = deadline.or_else(|| b.timeout.map(|t| Instant::now() + t));
        self.parked_by_tid.insert(notif.pid, slot);
        self.parked[slot] = Some(Parked {
            notif,
            listener: li,
            fd: b.fd,
            deadline,
            timeout_errno: b.timeout_errno,
            watch: b.watch,
            retry_at: b.retry.then(|| Instant::now() + RETRY),
        });
    }
}

/// Asks the kernel for synchronous wake-ups on `listener` (see the module docs,
/// "Wake-ups"); an older kernel refuses, and calls then cost what they cost.
fn hand_over_on_this_cpu(listener: &OwnedFd) {
    if let Err(e) = netcell_sys::seccomp::sync_wake_up(listener.as_fd()) {
        log::debug!("seccomp: no synchronous wake-ups on this kernel ({e})");
    }
}
