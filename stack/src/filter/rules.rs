//! The rule model: chains, matches and verdicts, and their text form (what
//! `netcell filter NAME save` prints and [`super::parse`] reads back).

use smoltcp::wire::{IpAddress, IpCidr};
use std::fmt;

/// A chain of the `filter` table: the three built-in ones, or one the rule set
/// declares (reached by `jump`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Chain {
    /// Packets addressed to the container (`lo` included).
    Input,
    /// Packets the container sends (`lo` included).
    Output,
    /// Packets routed through the container: netcell never forwards, so nothing
    /// traverses it; its rules are kept (and listed) for tools that expect it.
    Forward,
    /// A chain of the rule set's own, by name.
    User(String),
}

impl Chain {
    /// The built-in chains, in listing order.
    pub const ALL: [Chain; 3] = [Chain::Input, Chain::Forward, Chain::Output];

    /// The chain's name in the text syntax.
    pub fn name(&self) -> &str {
        match self {
            Chain::Input => "input",
            Chain::Output => "output",
            Chain::Forward => "forward",
            Chain::User(n) => n,
        }
    }

    /// A built-in chain's place in the policy table.
    pub(crate) fn index(&self) -> Option<usize> {
        match self {
            Chain::Input => Some(0),
            Chain::Forward => Some(1),
            Chain::Output => Some(2),
            Chain::User(_) => None,
        }
    }
}

/// The longest user chain name (iptables' limit).
pub const MAX_CHAIN_NAME: usize = 28;
/// The most user chains a set declares.
pub const MAX_CHAINS: usize = 256;
/// How deep `jump`s may nest.
pub const MAX_JUMP_DEPTH: usize = 16;

/// A transport protocol a rule names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP (IPv4).
    Icmp,
    /// ICMPv6.
    Icmpv6,
}

impl Proto {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Icmp => 1,
            Proto::Icmpv6 => 58,
        }
    }

    /// The name in the text syntax.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
            Proto::Icmpv6 => "icmpv6",
        }
    }
}

/// A set of port ranges (`80`, `8000-8080`, `{ 80, 443, 8000-8080 }`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ports(pub Vec<(u16, u16)>);

impl Ports {
    /// Whether `p` is in the set.
    pub fn contains(&self, p: u16) -> bool {
        self.0.iter().any(|&(a, b)| (a..=b).contains(&p))
    }
}

impl fmt::Display for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let one = |f: &mut fmt::Formatter<'_>, (a, b): (u16, u16)| {
            if a == b {
                write!(f, "{a}")
            } else {
                write!(f, "{a}-{b}")
            }
        };
        if self.0.len() == 1 {
            return one(f, self.0[0]);
        }
        write!(f, "{{ ")?;
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            one(f, *r)?;
        }
        write!(f, " }}")
    }
}

/// TCP flag bits, as in the header.
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
    /// URG.
    pub const URG: u8 = 0x20;
    /// Their names, in header order.
    pub const NAMES: [(&str, u8); 6] = [
        ("fin", FIN),
        ("syn", SYN),
        ("rst", RST),
        ("psh", PSH),
        ("ack", ACK),
        ("urg", URG),
    ];
}

/// Connection-tracking states, as bits.
pub mod ct {
    /// The first packet of a connection.
    pub const NEW: u8 = 1;
    /// A packet of a connection that has seen traffic both ways.
    pub const ESTABLISHED: u8 = 2;
    /// An ICMP error about a tracked connection.
    pub const RELATED: u8 = 4;
    /// A packet that belongs to no connection and cannot start one.
    pub const INVALID: u8 = 8;
    /// Not a state: the match was written as iptables' `-m state` (kept so that
    /// `iptables` reads back the bytes it wrote; the filter ignores it).
    pub const AS_STATE: u8 = 0x80;
    /// Their names.
    pub const NAMES: [(&str, u8); 4] = [
        ("new", NEW),
        ("established", ESTABLISHED),
        ("related", RELATED),
        ("invalid", INVALID),
    ];
}

/// ICMP (v4) and ICMPv6 type names.
pub const ICMP_TYPES: [(&str, u8); 8] = [
    ("echo-reply", 0),
    ("destination-unreachable", 3),
    ("redirect", 5),
    ("echo-request", 8),
    ("router-advertisement", 9),
    ("router-solicitation", 10),
    ("time-exceeded", 11),
    ("parameter-problem", 12),
];

/// ICMPv6 type names.
pub const ICMPV6_TYPES: [(&str, u8); 10] = [
    ("destination-unreachable", 1),
    ("packet-too-big", 2),
    ("time-exceeded", 3),
    ("parameter-problem", 4),
    ("echo-request", 128),
    ("echo-reply", 129),
    ("nd-router-solicit", 133),
    ("nd-router-advert", 134),
    ("nd-neighbor-solicit", 135),
    ("nd-neighbor-advert", 136),
];

/// An address family, as nftables names it in a rule set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// IPv4 (`ip`; `meta nfproto ipv4`).
    Ip,
    /// IPv6 (`ip6`; `meta nfproto ipv6`).
    Ip6,
}

impl Family {
    /// Both, IPv4 first.
    pub const ALL: [Family; 2] = [Family::Ip, Family::Ip6];

    /// 0 for IPv4, 1 for IPv6.
    pub fn index(self) -> usize {
        self as usize
    }

    /// `ip` or `ip6`.
    pub fn name(self) -> &'static str {
        match self {
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
        }
    }

    /// The family of an address.
    pub fn of(a: &IpAddress) -> Family {
        match a {
            IpAddress::Ipv4(_) => Family::Ip,
            IpAddress::Ipv6(_) => Family::Ip6,
        }
    }
}

/// One condition of a rule; `neg` inverts it (`!=`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Match {
    /// The interface a packet arrived on (`iif NAME`).
    Iif(String, bool),
    /// The interface a packet leaves on (`oif NAME`).
    Oif(String, bool),
    /// The transport protocol (`meta l4proto P`, or implied by `tcp dport`...).
    Proto(Proto, bool),
    /// Source address in a prefix (`ip saddr`, `ip6 saddr`).
    Saddr(IpCidr, bool),
    /// Destination address in a prefix.
    Daddr(IpCidr, bool),
    /// Source port (`tcp sport`, `udp sport`, `th sport`: the protocol is a
    /// separate [`Match::Proto`] where given).
    Sport(Ports, bool),
    /// Destination port.
    Dport(Ports, bool),
    /// ICMP or ICMPv6 type (the protocol is a separate [`Match::Proto`]).
    IcmpType(Vec<u8>, bool),
    /// TCP flags: `(flags & mask) == value`.
    TcpFlags {
        /// The bits looked at.
        mask: u8,
        /// What they must be.
        value: u8,
        /// Inverted.
        neg: bool,
    },
    /// Connection-tracking state, any of the bits.
    CtState(u8, bool),
    /// The packet's address family (`meta nfproto ipv4|ipv6`): what a rule
    /// that `iptables` or `ip6tables` wrote carries.
    Family(Family),
}

/// How a rejected packet is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectWith {
    /// A TCP RST (for TCP packets only; others get port-unreachable).
    TcpReset,
    /// An ICMP (v4) or ICMPv6 destination-unreachable with this code (v4 codes:
    /// 0 net, 1 host, 3 port, 13 administratively prohibited; the ICMPv6 code is
    /// derived: 0 no route, 1 prohibited, 3 address, 4 port).
    Icmp(u8),
}

/// What a rule does when it matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Let the packet pass (ends the chain).
    Accept,
    /// Discard it silently.
    Drop,
    /// Discard it and answer as Linux's REJECT does.
    Reject(RejectWith),
    /// Only count (and log): evaluation goes on.
    Continue,
    /// Evaluate the user chain of this name, then go on unless it decided.
    Jump(String),
    /// Back to the chain that jumped here (in a built-in chain: its policy).
    Return,
}

/// A rule: matches, an optional log line, a verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Its chain.
    pub chain: Chain,
    /// All must hold.
    pub matches: Vec<Match>,
    /// Log matching packets (rate-limited).
    pub log: Option<Log>,
    /// What happens to a matching packet.
    pub verdict: Verdict,
}

/// A rule's log line: its prefix and syslog level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Log {
    /// Written before the packet's description.
    pub prefix: String,
    /// 0 (emerg) to 7 (debug), as syslog; 4 (warn) when not said.
    pub level: u8,
}

/// The syslog level names, 0 to 7, as nft writes them.
pub const LOG_LEVELS: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warn", "notice", "info", "debug",
];

impl Log {
    /// The `log` crate's level for a syslog level.
    pub fn log_level(&self) -> log::Level {
        match self.level {
            0..=3 => log::Level::Error,
            4 => log::Level::Warn,
            5 | 6 => log::Level::Info,
            _ => log::Level::Debug,
        }
    }
}

/// A whole rule set: the rules of each chain and the chains' policies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSet {
    /// The rules, each with its handle (unique, never reused within a set).
    pub rules: Vec<(u32, Rule)>,
    /// The policy of each chain (true: accept), in input, forward, output order,
    /// for IPv4 and for IPv6 (`policy input drop` sets both; iptables and
    /// ip6tables each set their own).
    pub policy: [[bool; 3]; 2],
    /// The user chains, in the order they were declared.
    pub chains: Vec<String>,
    /// The next handle.
    pub next_handle: u32,
}

impl Default for RuleSet {
    fn default() -> Self {
        RuleSet {
            rules: Vec::new(),
            policy: [[true; 3]; 2],
            chains: Vec::new(),
            next_handle: 1,
        }
    }
}

impl Rule {
    /// The one family this rule can match, if it names one (by `meta nfproto`,
    /// an address, or ICMP/ICMPv6); `None`: both.
    pub fn family(&self) -> Option<Family> {
        self.matches.iter().find_map(|m| match m {
            Match::Family(f) => Some(*f),
            Match::Saddr(c, _) | Match::Daddr(c, _) => Some(Family::of(&c.address())),
            Match::Proto(Proto::Icmp, false) => Some(Family::Ip),
            Match::Proto(Proto::Icmpv6, false) => Some(Family::Ip6),
            _ => None,
        })
    }

    /// Whether this rule can match packets of `family`.
    pub fn applies_to(&self, family: Family) -> bool {
        self.family().is_none_or(|f| f == family)
    }
}

impl RuleSet {
    /// Whether `chain`'s policy for `family` is accept (a user chain has none:
    /// true).
    pub fn accepts_in(&self, chain: &Chain, family: Family) -> bool {
        chain.index().is_none_or(|i| self.policy[family.index()][i])
    }

    /// Whether `chain`'s policy is accept for both families.
    pub fn accepts(&self, chain: &Chain) -> bool {
        Family::ALL.iter().all(|f| self.accepts_in(chain, *f))
    }

    /// Whether a chain of this name exists (built-in or declared).
    pub fn has_chain(&self, name: &str) -> bool {
        matches!(name, "input" | "output" | "forward") || self.chains.iter().any(|c| c == name)
    }

    /// Checks that every `jump` names a declared chain and that no chain can
    /// reach itself (Linux refuses loops with `ELOOP`); the first offending
    /// rule's handle and why.
    pub fn check_jumps(&self) -> Result<(), (u32, String)> {
        for (h, r) in &self.rules {
            if let Verdict::Jump(t) = &r.verdict
                && !self.chains.iter().any(|c| c == t)
            {
                return Err((*h, format!("no chain named '{t}' (declare it: chain {t})")));
            }
        }
        // The jump graph between user chains (each edge once, with the first
        // rule that makes it), then a depth-first search that visits each chain
        // once: a chain met again while on the path is a loop; each chain's
        // depth (the longest chain of jumps from it) is computed once. Linear in
        // rules and chains, whatever the shape (a search of every path is
        // exponential: 15 chains of 10 jumps each to the next).
        let index = |n: &str| self.chains.iter().position(|c| c == n);
        let mut edges: Vec<Vec<(usize, u32)>> = vec![Vec::new(); self.chains.len()];
        for (h, r) in &self.rules {
            if let (Chain::User(from), Verdict::Jump(t)) = (&r.chain, &r.verdict)
                && let (Some(a), Some(b)) = (index(from), index(t))
                && !edges[a].iter().any(|(x, _)| *x == b)
            {
                edges[a].push((b, *h));
            }
        }
        // 0: not seen, 1: on the path, 2: done (depth known).
        let mut state = vec![0u8; self.chains.len()];
        let mut depth = vec![0usize; self.chains.len()];
        for start in 0..self.chains.len() {
            if state[start] != 0 {
                continue;
            }
            // (chain, next edge to follow)
            let mut path: Vec<(usize, usize)> = vec![(start, 0)];
            state[start] = 1;
            while let Some(&mut (at, ref mut next)) = path.last_mut() {
                if let Some(&(to, h)) = edges[at].get(*next) {
                    *next += 1;
                    match state[to] {
                        1 => {
                            let name = &self.chains[to];
                            return Err((
                                h,
                                format!("chain '{name}' would jump to itself (a loop)"),
                            ));
                        }
                        0 => {
                            state[to] = 1;
                            path.push((to, 0));
                        }
                        _ => {}
                    }
                    continue;
                }
                let d = edges[at]
                    .iter()
                    .map(|(to, _)| depth[*to] + 1)
                    .max()
                    .unwrap_or(0);
                if d > MAX_JUMP_DEPTH {
                    let h = edges[at].first().map_or(0, |e| e.1);
                    return Err((h, format!("jumps nest deeper than {MAX_JUMP_DEPTH}")));
                }
                depth[at] = d;
                state[at] = 2;
                path.pop();
            }
        }
        Ok(())
    }

    /// Adds `rule` at the end of its chain (or before the rule with handle
    /// `before`); returns its handle.
    pub fn add(&mut self, rule: Rule, before: Option<u32>) -> Result<u32, u32> {
        let h = self.next_handle;
        let at = match before {
            Some(b) => self
                .rules
                .iter()
                .position(|(x, r)| *x == b && r.chain == rule.chain)
                .ok_or(b)?,
            None => self.rules.len(),
        };
        self.rules.insert(at, (h, rule));
        self.next_handle += 1;
        Ok(h)
    }

    /// Removes the rule with handle `h`.
    pub fn delete(&mut self, h: u32) -> Option<Rule> {
        let i = self.rules.iter().position(|(x, _)| *x == h)?;
        Some(self.rules.remove(i).1)
    }

    /// Whether some rule looks at connection-tracking state.
    pub fn uses_conntrack(&self) -> bool {
        self.rules
            .iter()
            .any(|(_, r)| r.matches.iter().any(|m| matches!(m, Match::CtState(..))))
    }

    /// Whether anything can be refused on `chain` (rules or a drop policy).
    pub fn filters(&self, chain: &Chain) -> bool {
        !self.accepts(chain) || self.rules.iter().any(|(_, r)| &r.chain == chain)
    }
}

fn neq(neg: bool) -> &'static str {
    if neg { "!= " } else { "" }
}

fn bits(f: &mut fmt::Formatter<'_>, v: u8, names: &[(&str, u8)]) -> fmt::Result {
    let mut first = true;
    for (n, b) in names {
        if v & b != 0 {
            if !first {
                write!(f, ",")?;
            }
            write!(f, "{n}")?;
            first = false;
        }
    }
    Ok(())
}

impl Match {
    /// Writes the match; `proto` is the rule's protocol so far (what names a
    /// port, type or flags match: `tcp dport 80`).
    fn write(&self, f: &mut fmt::Formatter<'_>, proto: Option<Proto>) -> fmt::Result {
        let fam = |c: &IpCidr| match c {
            IpCidr::Ipv4(_) => "ip",
            IpCidr::Ipv6(_) => "ip6",
        };
        let th = match proto {
            Some(p @ (Proto::Tcp | Proto::Udp)) => p.name(),
            _ => "th",
        };
        match self {
            Match::Iif(n, g) => write!(f, "iif {}{n}", neq(*g)),
            Match::Oif(n, g) => write!(f, "oif {}{n}", neq(*g)),
            Match::Proto(p, g) => write!(f, "meta l4proto {}{}", neq(*g), p.name()),
            Match::Saddr(c, g) => write!(f, "{} saddr {}{c}", fam(c), neq(*g)),
            Match::Daddr(c, g) => write!(f, "{} daddr {}{c}", fam(c), neq(*g)),
            Match::Sport(p, g) => write!(f, "{th} sport {}{p}", neq(*g)),
            Match::Dport(p, g) => write!(f, "{th} dport {}{p}", neq(*g)),
            Match::IcmpType(t, g) => {
                let name = if proto == Some(Proto::Icmpv6) {
                    "icmpv6"
                } else {
                    "icmp"
                };
                write!(f, "{name} type {}", neq(*g))?;
                if t.len() == 1 {
                    write!(f, "{}", t[0])
                } else {
                    let l: Vec<String> = t.iter().map(u8::to_string).collect();
                    write!(f, "{{ {} }}", l.join(", "))
                }
            }
            Match::TcpFlags { mask, value, neg } => {
                write!(f, "tcp flags {}", neq(*neg))?;
                bits(f, *value, &tcp_flags::NAMES)?;
                if *value == 0 {
                    write!(f, "none")?;
                }
                if mask != value {
                    write!(f, " / ")?;
                    bits(f, *mask, &tcp_flags::NAMES)?;
                }
                Ok(())
            }
            Match::CtState(s, g) => {
                write!(f, "ct state {}", neq(*g))?;
                bits(f, *s, &ct::NAMES)
            }
            Match::Family(Family::Ip) => write!(f, "meta nfproto ipv4"),
            Match::Family(Family::Ip6) => write!(f, "meta nfproto ipv6"),
        }
    }

    /// Whether the match is written with its protocol's name (`tcp dport`).
    fn named_by_proto(&self) -> bool {
        matches!(
            self,
            Match::Sport(..) | Match::Dport(..) | Match::IcmpType(..) | Match::TcpFlags { .. }
        )
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.chain.name())?;
        let mut proto = None;
        for (i, m) in self.matches.iter().enumerate() {
            if let Match::Proto(p, false) = m {
                proto = Some(*p);
                // `tcp dport 80`: the next match carries the protocol's name.
                let named = self.matches.get(i + 1).is_some_and(|n| {
                    n.named_by_proto()
                        && (matches!(n, Match::IcmpType(..))
                            == matches!(p, Proto::Icmp | Proto::Icmpv6))
                        && (!matches!(n, Match::TcpFlags { .. }) || *p == Proto::Tcp)
                        && (!matches!(n, Match::Sport(..) | Match::Dport(..))
                            || matches!(p, Proto::Tcp | Proto::Udp))
                });
                if named {
                    continue;
                }
            }
            write!(f, " ")?;
            m.write(f, proto)?;
        }
        if let Some(l) = &self.log {
            write!(f, " log")?;
            if l.level != 4 {
                write!(f, " level {}", LOG_LEVELS[usize::from(l.level.min(7))])?;
            }
            if !l.prefix.is_empty() {
                write!(f, " prefix \"{}\"", l.prefix)?;
            }
        }
        match &self.verdict {
            Verdict::Accept => write!(f, " accept"),
            Verdict::Drop => write!(f, " drop"),
            Verdict::Continue => write!(f, " continue"),
            Verdict::Jump(c) => write!(f, " jump {c}"),
            Verdict::Return => write!(f, " return"),
            Verdict::Reject(RejectWith::TcpReset) => write!(f, " reject with tcp reset"),
            Verdict::Reject(RejectWith::Icmp(3)) => write!(f, " reject"),
            Verdict::Reject(RejectWith::Icmp(c)) => {
                let name = super::parse::REJECT_CODES
                    .iter()
                    .find(|(_, x)| x == c)
                    .map_or("port-unreachable", |(n, _)| n);
                write!(f, " reject with icmp type {name}")
            }
        }
    }
}

impl fmt::Display for RuleSet {
    /// The whole set in the text syntax: policies, then the rules in order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = |a: bool| if a { "accept" } else { "drop" };
        for c in Chain::ALL {
            let (v4, v6) = (
                self.accepts_in(&c, Family::Ip),
                self.accepts_in(&c, Family::Ip6),
            );
            if v4 == v6 {
                writeln!(f, "policy {} {}", c.name(), word(v4))?;
            } else {
                writeln!(f, "policy ip {} {}", c.name(), word(v4))?;
                writeln!(f, "policy ip6 {} {}", c.name(), word(v6))?;
            }
        }
        for c in &self.chains {
            writeln!(f, "chain {c}")?;
        }
        for (_, r) in &self.rules {
            writeln!(f, "{r}")?;
        }
        Ok(())
    }
}
