//! The container's packet filter: stateful rules on every interface, `lo`
//! included, with its own connection tracking.
//!
//! # Where it sits
//!
//! Every frame a device hands the stack passes the ingress hook
//! ([`crate::iface::ingress`]), and every frame smoltcp sends passes the egress
//! hook ([`crate::iface::egress`]); both ask the filter first: the `input` chain
//! for what arrives, the `output` chain for what leaves (traffic between the
//! container's own addresses crosses `lo` both ways, as on Linux). An output
//! frame is built in a scratch buffer and copied to the device only if the
//! filter lets it pass — a cost paid only while output rules exist (or
//! connection tracking needs to see outgoing packets). The `forward` chain is
//! kept and listed, but netcell never forwards, so nothing traverses it.
//!
//! Locally started traffic is also checked where it starts, as Linux reports
//! an output verdict to the sender: a TCP `connect` or a UDP send that the
//! `output` chain drops fails with `EPERM`, one it rejects with
//! `ECONNREFUSED`. That is also what a rule can see of a TCP connection the
//! host uplink carries (its bytes never pass the stack): the container's
//! address and port, the destination address and port, protocol `tcp`,
//! `oif eth0`, state `new` — nothing later in the connection. UDP and ping
//! through the uplink are packets of the stack and are filtered per packet.
//!
//! # Verdicts
//!
//! `accept` and `drop` end the chain; `reject` drops and answers as Linux's
//! REJECT (a TCP RST, or an ICMP/ICMPv6 destination-unreachable): an answer to
//! an arriving packet leaves on its interface, an answer to a leaving packet is
//! handed to the stack as if it had arrived, so the program sees the refusal.
//! `log` writes one line per packet through `log` (rate-limited: 10 at once,
//! 5 per second after that). Every rule counts the packets and bytes it
//! matched; the policies count what reached the end of their chain.
//!
//! A rule set is replaced as a whole ([`Filter::replace`]); a set that does not
//! parse never reaches the filter (see [`parse`]).

pub mod conntrack;
pub mod ipt;
pub mod packet;
pub mod parse;
pub mod reject;
pub mod rules;

use crate::iface::IfaceId;
use conntrack::Conntrack;
use packet::Pkt;
use rules::{Chain, Family, Match, Proto, RejectWith, Rule, RuleSet, Verdict};
use smoltcp::phy::Medium;
use smoltcp::time::Instant;
use smoltcp::wire::IpAddress;
use std::collections::VecDeque;

/// Answers waiting per interface at most (beyond, they are not sent).
const MAX_ANSWERS: usize = 64;
/// The most rules one packet's walk through the chains looks at: jumps can
/// make a set of a few hundred rules cost exponentially many visits (Linux's
/// own walk would too); a packet past this is dropped and counted.
pub const MAX_VISITS: u32 = 50_000;
/// Log lines at once, then per second.
const LOG_BURST: u32 = 10;
const LOG_PER_SEC: u32 = 5;

/// Packets and bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Count {
    /// Packets.
    pub packets: u64,
    /// Bytes (of the IP packets).
    pub bytes: u64,
}

impl Count {
    fn add(&mut self, bytes: usize) {
        self.packets += 1;
        self.bytes += bytes as u64;
    }
}

/// What the filter did, for `netcell stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterStats {
    /// Packets dropped (by rules and policies).
    pub dropped: u64,
    /// Packets rejected.
    pub rejected: u64,
    /// Log lines not written (over the rate).
    pub logs_suppressed: u64,
    /// Packets dropped because their walk through the chains took more than
    /// [`MAX_VISITS`] rules.
    pub over_budget: u64,
    /// Connections tracked now.
    pub connections: usize,
}

/// Why a rule change was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeError {
    /// No rule with this handle (in that chain).
    NoSuchRule(u32),
    /// The set holds as many rules ([`parse::MAX_RULES`]) or chains as it takes.
    Full,
    /// A chain of that name exists.
    ChainExists(String),
    /// A `jump` to no chain, or one that would loop.
    BadJump(String),
}

impl std::fmt::Display for ChangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChangeError::NoSuchRule(h) => write!(f, "no rule with handle {h}"),
            ChangeError::Full => write!(
                f,
                "the rule set is full ({} rules, {} chains at most)",
                parse::MAX_RULES,
                rules::MAX_CHAINS
            ),
            ChangeError::ChainExists(n) => write!(f, "a chain named {n} exists"),
            ChangeError::BadJump(why) => write!(f, "{why}"),
        }
    }
}

/// The filter of one container.
pub struct Filter {
    set: RuleSet,
    /// Per rule, in the set's order.
    counts: Vec<Count>,
    /// Per family and chain (what its policy decided).
    policy_counts: [[Count; 3]; 2],
    ct: Conntrack,
    track: bool,
    watch_in: bool,
    watch_out: bool,
    names: Vec<String>,
    now: Instant,
    /// Answers to send out of each interface, and to hand to each as received.
    to_send: Vec<VecDeque<Vec<u8>>>,
    to_receive: Vec<VecDeque<Vec<u8>>>,
    spare: Vec<Vec<u8>>,
    scratch: Vec<u8>,
    log_tokens: u32,
    log_refilled: Instant,
    /// Rules looked at by the packet being walked.
    visits: u32,
    stats: FilterStats,
}

impl Default for Filter {
    fn default() -> Self {
        Filter {
            set: RuleSet::default(),
            counts: Vec::new(),
            policy_counts: [[Count::default(); 3]; 2],
            ct: Conntrack::default(),
            track: false,
            watch_in: false,
            watch_out: false,
            names: Vec::new(),
            now: Instant::ZERO,
            to_send: Vec::new(),
            to_receive: Vec::new(),
            spare: Vec::new(),
            scratch: Vec::new(),
            log_tokens: LOG_BURST,
            log_refilled: Instant::ZERO,
            visits: 0,
            stats: FilterStats::default(),
        }
    }
}

/// A rule's identity and counters, for listing.
#[derive(Clone, Debug)]
pub struct Listed {
    /// Its handle.
    pub handle: u32,
    /// The rule.
    pub rule: Rule,
    /// What it matched.
    pub count: Count,
}

impl Filter {
    /// Replaces the whole rule set (counters start at zero; tracked connections
    /// stay).
    pub fn replace(&mut self, set: RuleSet) {
        self.counts = vec![Count::default(); set.rules.len()];
        self.policy_counts = [[Count::default(); 3]; 2];
        self.set = set;
        self.changed();
    }

    /// Replaces the rules and the policies of `family` — the table `iptables`
    /// (IPv4) or `ip6tables` (IPv6) writes — with `new`'s, keeping the other
    /// family's rules (with their counters) and policies. A rule of both
    /// families (written with `netcell filter`) keeps its other half, as a rule
    /// of the other family. A user chain stays while a kept rule is in it or
    /// jumps to it. Refused (the set unchanged) when the result would loop.
    pub fn replace_family(&mut self, family: Family, new: RuleSet) -> Result<(), String> {
        let other = match family {
            Family::Ip => Family::Ip6,
            Family::Ip6 => Family::Ip,
        };
        let mut set = RuleSet {
            policy: self.set.policy,
            ..RuleSet::default()
        };
        set.policy[family.index()] = new.policy[family.index()];
        let mut kept = Vec::new();
        for ((_, r), c) in self.set.rules.iter().zip(&self.counts) {
            if !r.applies_to(family) {
                kept.push((r.clone(), *c));
            } else if r.applies_to(other) {
                let mut half = r.clone();
                half.matches.insert(0, Match::Family(other));
                kept.push((half, *c));
            }
        }
        let used = |n: &str| {
            kept.iter().any(|(r, _)| {
                r.chain == Chain::User(n.to_string())
                    || matches!(&r.verdict, Verdict::Jump(t) if t == n)
            })
        };
        for c in &self.set.chains {
            if used(c) || new.chains.contains(c) {
                set.chains.push(c.clone());
            }
        }
        for c in &new.chains {
            if !set.chains.contains(c) {
                set.chains.push(c.clone());
            }
        }
        let mut counts = Vec::new();
        for (r, c) in kept {
            set.add(r, None).map_err(|_| "rule order".to_string())?;
            counts.push(c);
        }
        for (_, r) in new.rules {
            set.add(r, None).map_err(|_| "rule order".to_string())?;
            counts.push(Count::default());
        }
        if set.rules.len() > parse::MAX_RULES {
            return Err(format!("more than {} rules", parse::MAX_RULES));
        }
        set.check_jumps().map_err(|(_, why)| why)?;
        // `add` with no place appends: the counters are in the rules' order.
        self.set = set;
        self.counts = counts;
        self.policy_counts[family.index()] = [Count::default(); 3];
        self.changed();
        Ok(())
    }

    fn changed(&mut self) {
        self.track = self.set.uses_conntrack();
        self.watch_in = self.set.filters(&Chain::Input) || self.track;
        self.watch_out = self.set.filters(&Chain::Output) || self.track;
        if !self.track {
            self.ct.clear();
        }
    }

    /// The rule set.
    pub fn ruleset(&self) -> &RuleSet {
        &self.set
    }

    /// The rules with their counters, in order.
    pub fn list(&self) -> Vec<Listed> {
        self.set
            .rules
            .iter()
            .zip(&self.counts)
            .map(|((h, r), c)| Listed {
                handle: *h,
                rule: r.clone(),
                count: *c,
            })
            .collect()
    }

    /// What `chain`'s policy decided so far, for both families.
    pub fn policy_count(&self, chain: &Chain) -> Count {
        let (a, b) = (
            self.policy_count_in(chain, Family::Ip),
            self.policy_count_in(chain, Family::Ip6),
        );
        Count {
            packets: a.packets + b.packets,
            bytes: a.bytes + b.bytes,
        }
    }

    /// What `chain`'s policy decided so far for `family`.
    pub fn policy_count_in(&self, chain: &Chain, family: Family) -> Count {
        chain
            .index()
            .map(|i| self.policy_counts[family.index()][i])
            .unwrap_or_default()
    }

    /// Adds a rule at the end of its chain, or before the rule `before`.
    pub fn add(&mut self, rule: Rule, before: Option<u32>) -> Result<u32, ChangeError> {
        if self.set.rules.len() >= parse::MAX_RULES {
            return Err(ChangeError::Full);
        }
        let h = self
            .set
            .add(rule, before)
            .map_err(ChangeError::NoSuchRule)?;
        if let Err((_, why)) = self.set.check_jumps() {
            self.set.delete(h);
            return Err(ChangeError::BadJump(why));
        }
        let at = self
            .set
            .rules
            .iter()
            .position(|(x, _)| *x == h)
            .unwrap_or(self.counts.len());
        self.counts.insert(at, Count::default());
        self.changed();
        Ok(h)
    }

    /// Adds to the counters of a rule or a policy (`iptables` carries a rule's
    /// counters over a table replace this way); a slot that is not there is
    /// ignored.
    pub fn add_counts(&mut self, slot: ipt::Slot, c: Count) {
        let n = match slot {
            ipt::Slot::Rule(i) => self.counts.get_mut(i),
            ipt::Slot::Policy(f, i) => self.policy_counts[f.index()].get_mut(i),
        };
        if let Some(n) = n {
            n.packets = n.packets.saturating_add(c.packets);
            n.bytes = n.bytes.saturating_add(c.bytes);
        }
    }

    /// Removes the rule with handle `h`.
    pub fn delete(&mut self, h: u32) -> Result<Rule, ChangeError> {
        let i = self
            .set
            .rules
            .iter()
            .position(|(x, _)| *x == h)
            .ok_or(ChangeError::NoSuchRule(h))?;
        self.counts.remove(i);
        let r = self.set.rules.remove(i).1;
        self.changed();
        Ok(r)
    }

    /// Removes every rule (the policies stay, as `iptables -F`).
    pub fn flush(&mut self) {
        self.set.rules.clear();
        self.counts.clear();
        self.changed();
    }

    /// Sets a chain's policy, for one family or (`None`) both.
    pub fn set_policy(&mut self, chain: &Chain, family: Option<Family>, accept: bool) {
        if let Some(i) = chain.index() {
            for f in Family::ALL {
                if family.is_none_or(|g| g == f) {
                    self.set.policy[f.index()][i] = accept;
                }
            }
            self.changed();
        }
    }

    /// Declares a user chain.
    pub fn add_chain(&mut self, name: String) -> Result<(), ChangeError> {
        if self.set.has_chain(&name) {
            return Err(ChangeError::ChainExists(name));
        }
        if self.set.chains.len() >= rules::MAX_CHAINS {
            return Err(ChangeError::Full);
        }
        self.set.chains.push(name);
        Ok(())
    }

    /// Counters of what the filter did.
    pub fn stats(&self) -> FilterStats {
        FilterStats {
            connections: self.ct.len(),
            ..self.stats
        }
    }

    /// Whether arriving packets are looked at.
    pub fn watches_input(&self) -> bool {
        self.watch_in
    }

    /// Whether leaving packets are looked at.
    pub fn watches_output(&self) -> bool {
        self.watch_out
    }

    /// The stack's time (set at each poll).
    pub fn set_now(&mut self, now: Instant) {
        self.now = now;
    }

    /// The interfaces' names (rules name interfaces; the stack keeps this
    /// current).
    pub fn sync_names<'a>(&mut self, names: impl Iterator<Item = &'a str>) {
        let mut i = 0;
        for n in names {
            if self.names.get(i).map(String::as_str) != Some(n) {
                self.names.truncate(i);
                self.names.push(n.to_string());
            }
            i += 1;
        }
        self.names.truncate(i);
        self.to_send.resize_with(i, VecDeque::new);
        self.to_receive.resize_with(i, VecDeque::new);
    }

    fn name(&self, id: Option<IfaceId>) -> &str {
        id.and_then(|i| self.names.get(i))
            .map_or("", String::as_str)
    }

    fn matches(
        &self,
        m: &Match,
        iif: Option<IfaceId>,
        oif: Option<IfaceId>,
        p: &Pkt,
        state: u8,
    ) -> bool {
        match m {
            Match::Iif(n, neg) => (iif.is_some() && self.name(iif) == n) != *neg,
            Match::Oif(n, neg) => (oif.is_some() && self.name(oif) == n) != *neg,
            Match::Proto(pr, neg) => (p.proto == pr.number()) != *neg,
            Match::Saddr(c, neg) => c.contains_addr(&p.src) != *neg,
            Match::Daddr(c, neg) => c.contains_addr(&p.dst) != *neg,
            Match::Sport(ports, neg) => {
                (matches!(p.proto, 6 | 17 | 132) && !p.fragment && ports.contains(p.sport)) != *neg
            }
            Match::Dport(ports, neg) => {
                (matches!(p.proto, 6 | 17 | 132) && !p.fragment && ports.contains(p.dport)) != *neg
            }
            Match::IcmpType(types, neg) => p.icmp.is_some_and(|(t, _)| types.contains(&t)) != *neg,
            Match::TcpFlags { mask, value, neg } => {
                (p.proto == 6 && !p.fragment && p.flags & mask == *value) != *neg
            }
            Match::CtState(s, neg) => (s & state != 0) != *neg,
            Match::Family(f) => Family::of(&p.src) == *f,
        }
    }

    /// Runs built-in `chain` on `p`: the verdict (`Accept`, `Drop` or
    /// `Reject`). `count`: the packet is real (counted and logged).
    fn eval(
        &mut self,
        chain: Chain,
        iif: Option<IfaceId>,
        oif: Option<IfaceId>,
        p: &Pkt,
        state: u8,
        count: bool,
    ) -> Verdict {
        self.visits = 0;
        if let Some(v) = self.walk(&chain, iif, oif, p, state, count, 0) {
            if self.visits > MAX_VISITS {
                self.stats.over_budget += 1;
            }
            return v;
        }
        let family = Family::of(&p.src);
        if count && let Some(i) = chain.index() {
            self.policy_counts[family.index()][i].add(p.len);
        }
        if self.set.accepts_in(&chain, family) {
            Verdict::Accept
        } else {
            Verdict::Drop
        }
    }

    /// The rules of `chain`: a terminal verdict, or `None` (its end, or
    /// `return`).
    #[allow(clippy::too_many_arguments)]
    fn walk(
        &mut self,
        chain: &Chain,
        iif: Option<IfaceId>,
        oif: Option<IfaceId>,
        p: &Pkt,
        state: u8,
        count: bool,
        depth: usize,
    ) -> Option<Verdict> {
        for i in 0..self.set.rules.len() {
            self.visits += 1;
            if self.visits > MAX_VISITS {
                return Some(Verdict::Drop);
            }
            let r = &self.set.rules[i].1;
            if &r.chain != chain
                || !r
                    .matches
                    .iter()
                    .all(|m| self.matches(m, iif, oif, p, state))
            {
                continue;
            }
            if count {
                self.counts[i].add(p.len);
                if let Some(l) = &self.set.rules[i].1.log {
                    let (prefix, level) = (l.prefix.clone(), l.log_level());
                    self.log(&prefix, level, iif, oif, p);
                }
            }
            match &self.set.rules[i].1.verdict {
                Verdict::Continue => continue,
                Verdict::Return => return None,
                Verdict::Jump(target) => {
                    // Loops are refused when rules are loaded; the depth is a
                    // second guard.
                    if depth >= rules::MAX_JUMP_DEPTH {
                        continue;
                    }
                    let target = Chain::User(target.clone());
                    if let Some(v) = self.walk(&target, iif, oif, p, state, count, depth + 1) {
                        return Some(v);
                    }
                }
                v => return Some(v.clone()),
            }
        }
        None
    }

    fn log(
        &mut self,
        prefix: &str,
        level: log::Level,
        iif: Option<IfaceId>,
        oif: Option<IfaceId>,
        p: &Pkt,
    ) {
        let elapsed = (self.now - self.log_refilled).total_millis();
        if elapsed >= 1000 {
            let add = (elapsed / 1000) as u32 * LOG_PER_SEC;
            self.log_tokens = (self.log_tokens + add).min(LOG_BURST);
            self.log_refilled = self.now;
        }
        if self.log_tokens == 0 {
            self.stats.logs_suppressed += 1;
            return;
        }
        self.log_tokens -= 1;
        log::log!(
            level,
            "filter: {prefix}IN={} OUT={} SRC={} DST={} LEN={} PROTO={} SPT={} DPT={}",
            self.name(iif),
            self.name(oif),
            p.src,
            p.dst,
            p.len,
            p.proto,
            p.sport,
            p.dport
        );
    }

    fn decide(&mut self, chain: Chain, iface: IfaceId, medium: Medium, frame: &[u8]) -> bool {
        let Some(p) = packet::parse(medium, frame) else {
            // ARP and what is too short to be IP: not the filter's.
            return true;
        };
        let seen = self.track.then(|| self.ct.classify(&p, self.now));
        let state = seen.map_or(0, |s| s.state);
        let (iif, oif) = match chain {
            Chain::Output => (None, Some(iface)),
            _ => (Some(iface), None),
        };
        match self.eval(chain.clone(), iif, oif, &p, state, true) {
            Verdict::Accept | Verdict::Continue | Verdict::Jump(_) | Verdict::Return => {
                if let Some(s) = &seen {
                    self.ct.commit(s, self.now);
                }
                true
            }
            Verdict::Drop => {
                self.stats.dropped += 1;
                false
            }
            Verdict::Reject(with) => {
                self.stats.rejected += 1;
                self.answer(chain, iface, medium, frame, &p, with);
                false
            }
        }
    }

    fn answer(
        &mut self,
        chain: Chain,
        iface: IfaceId,
        medium: Medium,
        frame: &[u8],
        p: &Pkt,
        with: RejectWith,
    ) {
        let mut buf = self.spare.pop().unwrap_or_default();
        if !reject::answer(medium, frame, p, with, &mut buf) {
            self.spare.push(buf);
            return;
        }
        let q = match chain {
            Chain::Output => self.to_receive.get_mut(iface),
            _ => self.to_send.get_mut(iface),
        };
        match q {
            Some(q) if q.len() < MAX_ANSWERS => q.push_back(buf),
            _ => self.spare.push(buf),
        }
    }

    /// The ingress hook's question: may this frame, arrived on `iface`, pass?
    pub fn input(&mut self, iface: IfaceId, medium: Medium, frame: &[u8]) -> bool {
        !self.watch_in || self.decide(Chain::Input, iface, medium, frame)
    }

    /// The egress hook's question: may this frame leave on `iface`?
    pub fn output(&mut self, iface: IfaceId, medium: Medium, frame: &[u8]) -> bool {
        !self.watch_out || self.decide(Chain::Output, iface, medium, frame)
    }

    /// A reject's answer waiting to leave on `iface`: the frame is passed to
    /// `send`, and its buffer kept for the next.
    pub fn send_answers(&mut self, iface: IfaceId, mut send: impl FnMut(&[u8]) -> bool) {
        while let Some(b) = self.to_send.get_mut(iface).and_then(VecDeque::pop_front) {
            let sent = send(&b);
            if !sent {
                if let Some(q) = self.to_send.get_mut(iface) {
                    q.push_front(b);
                }
                return;
            }
            self.spare.push(b);
        }
    }

    /// Whether an answer waits to be received on some interface.
    pub fn has_arrivals(&self) -> bool {
        self.to_receive.iter().any(|q| !q.is_empty())
    }

    /// The next answer to be received on `iface` (give the buffer back with
    /// [`Filter::recycle`]).
    pub fn take_arrival(&mut self, iface: IfaceId) -> Option<Vec<u8>> {
        self.to_receive.get_mut(iface).and_then(VecDeque::pop_front)
    }

    /// Keeps a buffer for the next answer.
    pub fn recycle(&mut self, b: Vec<u8>) {
        if self.spare.len() < MAX_ANSWERS {
            self.spare.push(b);
        }
    }

    /// The output scratch buffer (an output frame is built here first), at
    /// least `len` bytes; hand it back with [`Filter::put_scratch`].
    pub fn take_scratch(&mut self, len: usize) -> Vec<u8> {
        let mut s = std::mem::take(&mut self.scratch);
        if s.len() < len {
            s.resize(len, 0);
        }
        s
    }

    /// Returns the scratch buffer.
    pub fn put_scratch(&mut self, s: Vec<u8>) {
        self.scratch = s;
    }

    /// The `output` chain's verdict on a connection or datagram the container
    /// starts (before a packet exists): `Err(EPERM)` for drop,
    /// `Err(ECONNREFUSED)` for reject, as Linux reports them to the sender.
    /// `packetless`: no packet will follow (a connection the host uplink
    /// carries), so this one is counted and logged.
    #[allow(clippy::too_many_arguments)]
    pub fn check_start(
        &mut self,
        oif: IfaceId,
        proto: Proto,
        src: IpAddress,
        sport: u16,
        dst: IpAddress,
        dport: u16,
        packetless: bool,
    ) -> Result<(), i32> {
        if !self.watch_out {
            return Ok(());
        }
        let p = Pkt {
            src,
            dst,
            proto: proto.number(),
            sport,
            dport,
            flags: if proto == Proto::Tcp {
                rules::tcp_flags::SYN
            } else {
                0
            },
            icmp: None,
            quoted: None,
            len: 0,
            ip_at: 0,
            l4_at: 0,
            fragment: false,
        };
        // A start is new unless the flow is already tracked (a UDP socket's
        // next datagram).
        let state = if self.track {
            self.ct.classify(&p, self.now).state
        } else {
            rules::ct::NEW
        };
        // A start the chain refuses never becomes a packet either: it is
        // counted (packets, no bytes) as the packet Linux would have refused.
        let mut counted = packetless;
        let mut v = self.eval(Chain::Output, None, Some(oif), &p, state, counted);
        if !counted && matches!(v, Verdict::Drop | Verdict::Reject(_)) {
            counted = true;
            v = self.eval(Chain::Output, None, Some(oif), &p, state, counted);
        }
        match v {
            Verdict::Accept | Verdict::Continue | Verdict::Jump(_) | Verdict::Return => Ok(()),
            Verdict::Drop => {
                self.stats.dropped += u64::from(counted);
                Err(libc::EPERM)
            }
            Verdict::Reject(_) => {
                self.stats.rejected += u64::from(counted);
                Err(libc::ECONNREFUSED)
            }
        }
    }
}

#[cfg(test)]
mod tests;
