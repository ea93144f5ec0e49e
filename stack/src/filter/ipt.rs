//! The `filter` table in the kernel ABI of `iptables-legacy` (`ip_tables.h`,
//! `x_tables.h`), translated to and from the container's [`RuleSet`].
//!
//! `iptables` reads a table with `IPT_SO_GET_INFO` and `IPT_SO_GET_ENTRIES` and
//! writes a whole new one with `IPT_SO_SET_REPLACE`: a blob of `ipt_entry`
//! records (112 bytes each, then their matches and a target, 8-byte aligned),
//! with the offsets where the built-in chains start (`hook_entry`) and where
//! their policies are (`underflow`). User chains are runs of entries that start
//! with an `ERROR` target naming the chain and end with a `RETURN`; the table
//! ends with an `ERROR` entry. [`decode_replace`] turns such a blob into a rule
//! set, refusing with the errno iptables reports what the filter cannot enforce;
//! [`encode_entries`] writes a rule set back as that blob for
//! `IPT_SO_GET_ENTRIES` (`iptables -L`, `iptables-save`), with the filter's
//! counters. Still to come (see the README): serving the calls on the
//! container's raw sockets.
//!
//! Matches served: `tcp`, `udp`, `icmp`, `multiport` (revision 1), `state`,
//! `conntrack` (revision 3, its state only); targets: standard verdicts and
//! jumps, `REJECT`, `LOG`, `ERROR`.

use super::rules::*;
use smoltcp::wire::{IpAddress, IpCidr, Ipv4Address};

/// `sizeof(struct ipt_entry)`.
pub const ENTRY: usize = 112;
/// `sizeof(struct xt_entry_match)` and `xt_entry_target`: the header before
/// their data.
const EXT_HEADER: usize = 32;
/// Where the entries start in an `ipt_replace`.
pub const REPLACE_HEADER: usize = 96;
/// The hooks of the filter table: LOCAL_IN, FORWARD, LOCAL_OUT.
pub const FILTER_HOOKS: u32 = (1 << 1) | (1 << 2) | (1 << 3);
/// Standard verdicts: `-NF_DROP - 1`, `-NF_ACCEPT - 1`, `XT_RETURN`.
const V_DROP: i32 = -1;
const V_ACCEPT: i32 = -2;
const V_RETURN: i32 = -5;
/// `XT_CONNTRACK_STATE_ALIAS`: a conntrack match written as `-m state`.
const STATE_ALIAS: u16 = 1 << 13;
/// The most entries a table takes.
pub const MAX_ENTRIES: usize = 20_000;

/// Where an entry's fields are: `struct ipt_entry` (IPv4, `iptables`) or
/// `struct ip6t_entry` (IPv6, `ip6tables`). Both start with the IP part —
/// source, destination, their masks, the interfaces and their masks, the
/// protocol, flags, inverse flags — and then carry the same offsets, counters
/// and extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout(pub Family);

impl Layout {
    /// The bytes of an address.
    fn a(self) -> usize {
        if self.0 == Family::Ip6 { 16 } else { 4 }
    }
    /// `sizeof` the entry, where its extensions start.
    pub fn entry(self) -> usize {
        if self.0 == Family::Ip6 { 168 } else { ENTRY }
    }
    fn ip_len(self) -> usize {
        if self.0 == Family::Ip6 { 136 } else { 84 }
    }
    fn iniface(self) -> usize {
        4 * self.a()
    }
    fn proto(self) -> usize {
        4 * self.a() + 64
    }
    fn flags(self) -> usize {
        if self.0 == Family::Ip6 { 131 } else { 82 }
    }
    fn invflags(self) -> usize {
        self.flags() + 1
    }
    fn target_offset(self) -> usize {
        self.ip_len() + 4
    }
    fn counters(self) -> usize {
        if self.0 == Family::Ip6 { 152 } else { 96 }
    }
    /// The ICMP match's name.
    fn icmp(self) -> &'static str {
        if self.0 == Family::Ip6 {
            "icmp6"
        } else {
            "icmp"
        }
    }
}

fn align8(n: usize) -> usize {
    (n + 7) & !7
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn cstr(b: &[u8]) -> &str {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    std::str::from_utf8(&b[..end]).unwrap_or("")
}

/// Why a table was refused: the errno `setsockopt` returns, and why (logged).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// `EINVAL` for a malformed blob, `ENOENT` for an unknown match or target,
    /// `EOPNOTSUPP` for what the filter cannot enforce, `ELOOP` for a loop.
    pub errno: i32,
    /// What was wrong.
    pub why: String,
}

fn refuse<T>(errno: i32, why: impl Into<String>) -> Result<T, Refused> {
    Err(Refused {
        errno,
        why: why.into(),
    })
}

/// The fixed part of an `ipt_replace`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplaceHeader {
    /// The table's name.
    pub name: String,
    /// Its hooks.
    pub valid_hooks: u32,
    /// Entries in the blob.
    pub num_entries: u32,
    /// Bytes of entries.
    pub size: u32,
    /// Where each hook's chain starts.
    pub hook_entry: [u32; 5],
    /// Where each hook's policy is.
    pub underflow: [u32; 5],
    /// Counters the caller wants back (the old table's).
    pub num_counters: u32,
    /// Where in the caller's memory they go.
    pub counters_ptr: u64,
}

/// Reads the header of an `ipt_replace`.
pub fn replace_header(b: &[u8]) -> Result<ReplaceHeader, Refused> {
    if b.len() < REPLACE_HEADER {
        return refuse(libc::EINVAL, "an ipt_replace is at least 96 bytes");
    }
    let mut hook_entry = [0; 5];
    let mut underflow = [0; 5];
    for i in 0..5 {
        hook_entry[i] = u32_at(b, 44 + 4 * i);
        underflow[i] = u32_at(b, 64 + 4 * i);
    }
    Ok(ReplaceHeader {
        name: cstr(&b[..32]).to_string(),
        valid_hooks: u32_at(b, 32),
        num_entries: u32_at(b, 36),
        size: u32_at(b, 40),
        hook_entry,
        underflow,
        num_counters: u32_at(b, 84),
        counters_ptr: u64::from_ne_bytes(b[88..96].try_into().unwrap_or_default()),
    })
}

/// One entry of the blob, as read.
struct Entry<'a> {
    at: usize,
    size: usize,
    ip: &'a [u8],
    matches: Vec<(&'a str, u8, &'a [u8])>,
    target: (&'a str, u8, &'a [u8]),
}

fn entries(blob: &[u8], count: usize, lay: Layout) -> Result<Vec<Entry<'_>>, Refused> {
    let entry = lay.entry();
    let mut out = Vec::new();
    let mut at = 0;
    while at < blob.len() {
        if out.len() >= count.min(MAX_ENTRIES) {
            return refuse(libc::EINVAL, "more entries than num_entries says");
        }
        if at + entry > blob.len() {
            return refuse(
                libc::EINVAL,
                format!("an entry at {at} runs past the table"),
            );
        }
        let target_offset = u16_at(blob, at + lay.target_offset()) as usize;
        let next_offset = u16_at(blob, at + lay.target_offset() + 2) as usize;
        if next_offset < entry + EXT_HEADER
            || at + next_offset > blob.len()
            || target_offset < entry
            || target_offset + EXT_HEADER > next_offset
            || !next_offset.is_multiple_of(8)
        {
            return refuse(libc::EINVAL, format!("the entry at {at} has bad offsets"));
        }
        let e = &blob[at..at + next_offset];
        let ext = |off: usize, end: usize| -> Result<(&str, u8, &[u8], usize), Refused> {
            let size = u16_at(e, off) as usize;
            if size < EXT_HEADER || off + size > end || !size.is_multiple_of(8) {
                return refuse(
                    libc::EINVAL,
                    format!("the entry at {at} has a bad match or target size"),
                );
            }
            Ok((
                cstr(&e[off + 2..off + 31]),
                e[off + 31],
                &e[off + EXT_HEADER..off + size],
                size,
            ))
        };
        let mut matches = Vec::new();
        let mut m = entry;
        while m < target_offset {
            let (name, rev, data, size) = ext(m, target_offset)?;
            matches.push((name, rev, data));
            m += size;
            if matches.len() > 16 {
                return refuse(libc::EINVAL, "more than 16 matches in an entry");
            }
        }
        let (tn, tr, td, _) = ext(target_offset, next_offset)?;
        out.push(Entry {
            at,
            size: next_offset,
            ip: &e[..lay.ip_len()],
            matches,
            target: (tn, tr, td),
        });
        at += next_offset;
    }
    if out.len() != count {
        return refuse(
            libc::EINVAL,
            format!("{} entries, num_entries says {count}", out.len()),
        );
    }
    Ok(out)
}

/// The prefix length of an address mask (network byte order).
fn prefix_of(mask: &[u8]) -> Result<u8, Refused> {
    let ones: u32 = mask.iter().map(|b| b.count_ones()).sum();
    let contiguous = mask
        .iter()
        .enumerate()
        .all(|(i, &b)| b == mask_byte(ones as usize, i));
    if !contiguous {
        return refuse(libc::EOPNOTSUPP, "a non-contiguous address mask");
    }
    Ok(ones as u8)
}

/// Byte `i` of a mask of `plen` leading ones.
fn mask_byte(plen: usize, i: usize) -> u8 {
    let bits = plen.saturating_sub(8 * i).min(8);
    (0xff00u16 >> bits) as u8
}

fn iface_match(name: &[u8], mask: &[u8]) -> Result<Option<String>, Refused> {
    let n = cstr(name);
    if n.is_empty() {
        return Ok(None);
    }
    // Printable ASCII, and not beginning with the text form's negation: the
    // rule set's text must read back the same (an interface named `!=` printed
    // as `oif != tcp ...`; found by the `ipt_replace` fuzz target).
    let bad = |c: char| !c.is_ascii_graphic() || "/:\"#{},\\".contains(c);
    if n.chars().any(bad) || n.starts_with('!') {
        return refuse(libc::EINVAL, format!("the interface name {n:?}"));
    }
    // An exact name has its mask over the name and its NUL; `eth+` covers the
    // prefix only, which the filter does not match.
    let exact = mask.iter().take(n.len() + 1).all(|&b| b == 0xff);
    if !exact {
        return refuse(libc::EOPNOTSUPP, format!("the interface wildcard '{n}+'"));
    }
    Ok(Some(n.to_string()))
}

/// The protocol of a rule of `family`'s table. The other family's ICMP is
/// refused like any protocol the filter does not match: the rule set keeps
/// `icmpv6` for IPv6 only (found by the `ipt_replace` fuzz target: an IPv4
/// table's `-p 58` vanished from the IPv4 view it was written to).
fn proto_of(n: u16, family: Family) -> Result<Option<Proto>, Refused> {
    Ok(match (n, family) {
        (0, _) => None,
        (6, _) => Some(Proto::Tcp),
        (17, _) => Some(Proto::Udp),
        (1, Family::Ip) => Some(Proto::Icmp),
        (58, Family::Ip6) => Some(Proto::Icmpv6),
        (o, _) => return refuse(libc::EOPNOTSUPP, format!("protocol {o}")),
    })
}

fn port_range(lo: u16, hi: u16, neg: bool, m: &mut Vec<Match>, src: bool) -> Result<(), Refused> {
    if lo > hi {
        return refuse(
            libc::EINVAL,
            format!("the port range {lo}:{hi} runs backwards"),
        );
    }
    if lo == 0 && hi == 0xffff && !neg {
        return Ok(());
    }
    let p = Ports(vec![(lo, hi)]);
    m.push(if src {
        Match::Sport(p, neg)
    } else {
        Match::Dport(p, neg)
    });
    Ok(())
}

/// `XT_STATE_BIT`s (state and conntrack) to the filter's.
fn state_bits(mask: u32) -> Result<u8, Refused> {
    if mask == 0 {
        return refuse(libc::EINVAL, "an empty state list");
    }
    let mut s = 0;
    if mask & 1 != 0 {
        s |= ct::INVALID;
    }
    if mask & 2 != 0 {
        s |= ct::ESTABLISHED;
    }
    if mask & 4 != 0 {
        s |= ct::RELATED;
    }
    if mask & 8 != 0 {
        s |= ct::NEW;
    }
    if mask & !0xf != 0 {
        return refuse(libc::EOPNOTSUPP, "the UNTRACKED, SNAT or DNAT states");
    }
    Ok(s)
}

fn decode_match(name: &str, rev: u8, d: &[u8], m: &mut Vec<Match>) -> Result<(), Refused> {
    let short = |n: usize| -> Result<(), Refused> {
        if d.len() < n {
            refuse(libc::EINVAL, format!("the {name} match's data is short"))
        } else {
            Ok(())
        }
    };
    match (name, rev) {
        ("tcp", 0) => {
            short(12)?;
            let inv = d[11];
            port_range(u16_at(d, 0), u16_at(d, 2), inv & 1 != 0, m, true)?;
            port_range(u16_at(d, 4), u16_at(d, 6), inv & 2 != 0, m, false)?;
            if d[8] != 0 {
                return refuse(libc::EOPNOTSUPP, "--tcp-option");
            }
            let (mask, cmp) = (d[9] & 0x3f, d[10] & 0x3f);
            if mask != 0 {
                m.push(Match::TcpFlags {
                    mask,
                    value: cmp & mask,
                    neg: inv & 4 != 0,
                });
            }
        }
        ("udp", 0) => {
            short(9)?;
            let inv = d[8];
            port_range(u16_at(d, 0), u16_at(d, 2), inv & 1 != 0, m, true)?;
            port_range(u16_at(d, 4), u16_at(d, 6), inv & 2 != 0, m, false)?;
        }
        ("icmp" | "icmp6", 0) => {
            short(4)?;
            if (d[1], d[2]) != (0, 0xff) {
                return refuse(libc::EOPNOTSUPP, "an ICMP code");
            }
            if d[0] != 0xff {
                m.push(Match::IcmpType(vec![d[0]], d[3] & 1 != 0));
            }
        }
        ("multiport", 1) => {
            short(48)?;
            let (flags, count) = (d[0], (d[1] as usize).min(15));
            let mut ranges = Vec::new();
            let mut i = 0;
            while i < count {
                let p = u16_at(d, 2 + 2 * i);
                if d[32 + i] != 0 && i + 1 < count {
                    let hi = u16_at(d, 4 + 2 * i);
                    if p > hi {
                        let why = format!("the port range {p}:{hi} runs backwards");
                        return refuse(libc::EINVAL, why);
                    }
                    ranges.push((p, hi));
                    i += 2;
                } else {
                    ranges.push((p, p));
                    i += 1;
                }
            }
            let neg = d[47] != 0;
            match flags {
                0 => m.push(Match::Sport(Ports(ranges), neg)),
                1 => m.push(Match::Dport(Ports(ranges), neg)),
                _ => return refuse(libc::EOPNOTSUPP, "multiport --ports (either direction)"),
            }
        }
        ("state", 0) => {
            short(4)?;
            m.push(Match::CtState(state_bits(u32_at(d, 0))?, false));
        }
        ("conntrack", 3) => {
            short(162)?;
            let (flags, invert) = (u16_at(d, 146), u16_at(d, 148));
            // XT_CONNTRACK_STATE, and XT_CONNTRACK_STATE_ALIAS: `-m state`.
            if flags & !(1 | STATE_ALIAS) != 0 {
                return refuse(libc::EOPNOTSUPP, "conntrack matches other than --ctstate");
            }
            if flags & 1 != 0 {
                let alias = if flags & STATE_ALIAS != 0 {
                    ct::AS_STATE
                } else {
                    0
                };
                m.push(Match::CtState(
                    state_bits(u16_at(d, 150) as u32)? | alias,
                    invert & 1 != 0,
                ));
            }
        }
        (n, r) => return refuse(libc::ENOENT, format!("match {n} revision {r}")),
    }
    Ok(())
}

/// The newest revision of a match (or, with `target`, a target) that
/// [`decode_replace`] takes, as the revision queries
/// (`IPT_SO_GET_REVISION_MATCH`/`_TARGET`) report it; `None` for one it does not
/// know. Only that revision is taken: an older one asked for is
/// `EPROTONOSUPPORT`, and iptables falls back to what it can use.
pub fn best_revision(name: &str, target: bool) -> Option<u8> {
    best_revision_in(name, target, Family::Ip)
}

/// [`best_revision`] for `family`'s table (`icmp` is IPv4's, `icmp6` IPv6's).
pub fn best_revision_in(name: &str, target: bool, family: Family) -> Option<u8> {
    Some(match (name, target) {
        ("icmp", false) if family == Family::Ip => 0,
        ("icmp6", false) if family == Family::Ip6 => 0,
        ("tcp" | "udp" | "state", false) => 0,
        ("multiport", false) => 1,
        ("conntrack", false) => 3,
        ("" | "standard" | "REJECT" | "LOG" | "ERROR", true) => 0,
        _ => return None,
    })
}

/// Reads an `IPT_SO_SET_REPLACE` blob for the `filter` table into a rule set.
pub fn decode_replace(b: &[u8]) -> Result<RuleSet, Refused> {
    decode_replace_in(b, Family::Ip)
}

/// Reads an `IPT_SO_SET_REPLACE` (`family` IPv4) or `IP6T_SO_SET_REPLACE`
/// (IPv6) blob for the `filter` table into the rules of that family: each rule
/// carries the family (`meta nfproto`), and the set's policies for it are the
/// table's.
pub fn decode_replace_in(b: &[u8], family: Family) -> Result<RuleSet, Refused> {
    let lay = Layout(family);
    let h = replace_header(b)?;
    if h.name != "filter" {
        return refuse(
            libc::ENOENT,
            format!("table {} (only filter is served)", h.name),
        );
    }
    if h.valid_hooks != FILTER_HOOKS {
        return refuse(
            libc::EINVAL,
            "the filter table's hooks are INPUT, FORWARD, OUTPUT",
        );
    }
    let blob = &b[REPLACE_HEADER..];
    if h.size as usize != blob.len() {
        return refuse(
            libc::EINVAL,
            format!("size {} for {} bytes of entries", h.size, blob.len()),
        );
    }
    let es = entries(blob, h.num_entries as usize, lay)?;
    let hooks = [
        (1usize, Chain::Input),
        (2, Chain::Forward),
        (3, Chain::Output),
    ];
    // Which chain each entry belongs to, and the user chains' starts.
    let mut starts: Vec<(usize, Chain)> = hooks
        .iter()
        .map(|(i, c)| (h.hook_entry[*i] as usize, c.clone()))
        .collect();
    let mut set = RuleSet::default();
    for e in &es {
        if e.target.0 == "ERROR" {
            let name = cstr(e.target.2).to_string();
            if name != "ERROR" {
                if !super::parse::valid_chain_name(&name) || set.has_chain(&name) {
                    return refuse(libc::EOPNOTSUPP, format!("the chain name '{name}'"));
                }
                if set.chains.len() >= MAX_CHAINS {
                    return refuse(libc::ENOMEM, format!("more than {MAX_CHAINS} chains"));
                }
                set.chains.push(name.clone());
                starts.push((e.at, Chain::User(name)));
            }
        }
    }
    starts.sort_by_key(|(at, _)| *at);
    let underflows: Vec<usize> = hooks
        .iter()
        .map(|(i, _)| h.underflow[*i] as usize)
        .collect();
    // Lookups by offset, not scans: a table has up to MAX_ENTRIES entries.
    let chain_at = |at: usize| -> Option<Chain> {
        let i = starts.partition_point(|(s, _)| *s <= at);
        i.checked_sub(1).map(|i| starts[i].1.clone())
    };
    // A jump's offset names the entry after the chain's ERROR head.
    let heads: std::collections::HashMap<usize, String> = es
        .iter()
        .filter(|e| e.target.0 == "ERROR")
        .map(|e| {
            (
                e.at + align8(lay.entry() + EXT_HEADER + 30),
                cstr(e.target.2).to_string(),
            )
        })
        .collect();
    let head_of = |off: usize| -> Option<String> { heads.get(&off).cloned() };
    for e in &es {
        let Some(chain) = chain_at(e.at) else {
            return refuse(
                libc::EINVAL,
                format!("the entry at {} is in no chain", e.at),
            );
        };
        let verdict_of = |d: &[u8]| -> Result<Verdict, Refused> {
            if d.len() < 4 {
                return refuse(libc::EINVAL, "a standard target without its verdict");
            }
            Ok(match u32_at(d, 0) as i32 {
                V_ACCEPT => Verdict::Accept,
                V_DROP => Verdict::Drop,
                V_RETURN => Verdict::Return,
                v if v >= 0 => match head_of(v as usize) {
                    Some(n) => Verdict::Jump(n),
                    None if v as usize == e.at + e.size => {
                        // A jump to the next entry: "go on".
                        Verdict::Continue
                    }
                    None => return refuse(libc::EINVAL, format!("a jump to {v}, not a chain")),
                },
                v => return refuse(libc::EINVAL, format!("verdict {v}")),
            })
        };
        if let Some(k) = underflows.iter().position(|&u| u == e.at) {
            // A built-in chain's policy.
            let v = verdict_of(e.target.2)?;
            set.policy[family.index()][k] = match v {
                Verdict::Accept => true,
                Verdict::Drop => false,
                _ => return refuse(libc::EINVAL, "a policy is ACCEPT or DROP"),
            };
            continue;
        }
        if e.target.0 == "ERROR" {
            continue;
        }
        // A user chain's closing RETURN (unconditional, the last before the
        // next chain's head).
        let ip = e.ip;
        let plain_ip = ip.iter().all(|&b| b == 0);
        if plain_ip
            && e.matches.is_empty()
            && e.target.0.is_empty()
            && matches!(chain, Chain::User(_))
            && e.target.2.get(..4).map(|v| u32_at(v, 0) as i32) == Some(V_RETURN)
            && es
                .iter()
                .find(|x| x.at > e.at)
                .is_none_or(|x| x.target.0 == "ERROR")
        {
            continue;
        }
        let mut m = Vec::new();
        let (inv, proto, flags) = (ip[lay.invflags()], u16_at(ip, lay.proto()), ip[lay.flags()]);
        // IPT_F_FRAG, IPT_F_GOTO; IP6T_F_TOS, IP6T_F_GOTO (IP6T_F_PROTO only
        // says a protocol is given).
        match family {
            Family::Ip if flags & 0x01 != 0 => return refuse(libc::EOPNOTSUPP, "-f (fragments)"),
            Family::Ip6 if flags & 0x02 != 0 => return refuse(libc::EOPNOTSUPP, "--tos"),
            _ if flags & !0x01 != 0 => return refuse(libc::EOPNOTSUPP, "-g (goto)"),
            _ => {}
        }
        if inv & 0x24 != 0 {
            return refuse(libc::EOPNOTSUPP, "! -f or ! --tos");
        }
        let ifs = lay.iniface();
        if let Some(n) = iface_match(&ip[ifs..ifs + 16], &ip[ifs + 32..ifs + 48])? {
            m.push(Match::Iif(n, inv & 0x01 != 0));
        }
        if let Some(n) = iface_match(&ip[ifs + 16..ifs + 32], &ip[ifs + 48..ifs + 64])? {
            m.push(Match::Oif(n, inv & 0x02 != 0));
        }
        if let Some(p) = proto_of(proto, family)? {
            m.push(Match::Proto(p, inv & 0x40 != 0));
        }
        let a = lay.a();
        for (addr_at, mask_at, bit, src) in [(0, 2 * a, 0x08, true), (a, 3 * a, 0x10, false)] {
            let mask = &ip[mask_at..mask_at + a];
            if mask.iter().any(|&b| b != 0) {
                let plen = prefix_of(mask)?;
                let addr = match family {
                    Family::Ip => {
                        IpAddress::Ipv4(Ipv4Address::from(u32::from_be(u32_at(ip, addr_at))))
                    }
                    Family::Ip6 => {
                        let o: [u8; 16] = ip[addr_at..addr_at + 16].try_into().unwrap_or_default();
                        IpAddress::Ipv6(o.into())
                    }
                };
                let c = crate::iface::network(&IpCidr::new(addr, plen));
                m.push(if src {
                    Match::Saddr(c, inv & bit != 0)
                } else {
                    Match::Daddr(c, inv & bit != 0)
                });
            }
        }
        for (name, rev, data) in &e.matches {
            // As the kernel's checks: `tcp` needs `-p tcp`, and so on.
            let needs = match *name {
                "tcp" => Some(6),
                "udp" => Some(17),
                "icmp" if family == Family::Ip => Some(1),
                "icmp6" if family == Family::Ip6 => Some(58),
                "icmp" | "icmp6" => {
                    return refuse(libc::ENOENT, format!("match {name} for this family"));
                }
                _ => None,
            };
            if let Some(p) = needs
                && (proto != p || inv & 0x40 != 0)
            {
                return refuse(libc::EINVAL, format!("the {name} match without -p {name}"));
            }
            decode_match(name, *rev, data, &mut m)?;
        }
        let mut log = None;
        let verdict = match (e.target.0, e.target.1) {
            ("", _) => verdict_of(e.target.2)?,
            ("REJECT", 0) if family == Family::Ip6 => {
                // enum ip6t_reject_with; the rule keeps ICMPv4's codes (see
                // `RejectWith`), from which the ICMPv6 code is derived.
                let with = e.target.2.get(..4).map(|d| u32_at(d, 0));
                Verdict::Reject(match with {
                    Some(0) => RejectWith::Icmp(0),
                    Some(1) => RejectWith::Icmp(13),
                    Some(3) => RejectWith::Icmp(1),
                    Some(4) => RejectWith::Icmp(3),
                    Some(6) => RejectWith::TcpReset,
                    _ => return refuse(libc::EOPNOTSUPP, "this --reject-with"),
                })
            }
            ("REJECT", 0) => {
                let with = e.target.2.get(..4).map(|d| u32_at(d, 0));
                Verdict::Reject(match with {
                    Some(0) => RejectWith::Icmp(0),
                    Some(1) => RejectWith::Icmp(1),
                    Some(2) => RejectWith::Icmp(2),
                    Some(3) => RejectWith::Icmp(3),
                    Some(5) => RejectWith::Icmp(9),
                    Some(6) => RejectWith::Icmp(10),
                    Some(8) => RejectWith::Icmp(13),
                    Some(7) => RejectWith::TcpReset,
                    _ => return refuse(libc::EOPNOTSUPP, "this --reject-with"),
                })
            }
            ("LOG", 0) => {
                // struct xt_log_info: level, logflags, prefix[30].
                let d = e.target.2;
                let level = d.first().copied().unwrap_or(4);
                if level > 7 {
                    return refuse(libc::EINVAL, format!("log level {level}"));
                }
                if d.get(1).is_some_and(|&f| f != 0) {
                    return refuse(
                        libc::EOPNOTSUPP,
                        "LOG options (--log-tcp-sequence, --log-tcp-options, --log-ip-options, --log-uid, --log-macdecode)",
                    );
                }
                let prefix = d.get(2..32).map(cstr).unwrap_or("");
                let clean = |c: &char| !c.is_control() && *c != '"' && *c != '\\';
                log = Some(Log {
                    prefix: prefix.chars().filter(clean).collect(),
                    level,
                });
                Verdict::Continue
            }
            (n, r) => return refuse(libc::ENOENT, format!("target {n} revision {r}")),
        };
        if verdict == Verdict::Reject(RejectWith::TcpReset)
            && !m
                .iter()
                .any(|x| matches!(x, Match::Proto(Proto::Tcp, false)))
        {
            return refuse(libc::EINVAL, "--reject-with tcp-reset needs -p tcp");
        }
        let mut rule = Rule {
            chain,
            matches: m,
            log,
            verdict,
        };
        // The table's rules are its family's; an address says so already.
        if rule.family().is_none() {
            rule.matches.insert(0, Match::Family(family));
        }
        set.add(rule, None).map_err(|_| Refused {
            errno: libc::EINVAL,
            why: "rule order".into(),
        })?;
    }
    if let Err((_, why)) = set.check_jumps() {
        return refuse(libc::ELOOP, why);
    }
    Ok(set)
}

/// Why a rule set cannot be shown as an iptables table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unrepresentable(pub String);

/// An entry being written: the IP part, the matches, the target.
struct Out {
    /// The IP part (`ip_len` of its layout used).
    ip: [u8; 136],
    matches: Vec<u8>,
    count: super::Count,
}

fn ext_bytes(name: &str, rev: u8, data: &[u8]) -> Vec<u8> {
    let size = align8(EXT_HEADER + data.len());
    let mut x = vec![0u8; size];
    x[..2].copy_from_slice(&(size as u16).to_ne_bytes());
    x[2..2 + name.len().min(28)].copy_from_slice(&name.as_bytes()[..name.len().min(28)]);
    x[31] = rev;
    x[EXT_HEADER..EXT_HEADER + data.len()].copy_from_slice(data);
    x
}

/// A target whose jump offset is filled in once the chains are placed.
enum Target {
    Bytes(Vec<u8>),
    Verdict(i32),
    Jump(String),
    Next,
}

fn plain(target: Target) -> (Out, Target) {
    (
        Out {
            ip: [0; 136],
            matches: Vec::new(),
            count: super::Count::default(),
        },
        target,
    )
}

/// Writes `r` as one or two entries (a `log` with a verdict is a LOG entry and
/// the verdict's), or says why it cannot be.
fn encode_rule(
    r: &Rule,
    count: super::Count,
    lay: Layout,
) -> Result<Vec<(Out, Target)>, Unrepresentable> {
    let no = |why: &str| Err(Unrepresentable(format!("{r}: {why}")));
    let mut ip = [0u8; 136];
    let (a, ifs) = (lay.a(), lay.iniface());
    let mut inv = 0u8;
    let mut proto = None;
    let (mut sport, mut dport, mut flags) = (None, None, None);
    let mut icmp = None;
    let mut state = None;
    for m in &r.matches {
        match m {
            Match::Iif(n, g) | Match::Oif(n, g) => {
                let (at, mask_at, bit) = if matches!(m, Match::Iif(..)) {
                    (ifs, ifs + 32, 0x01)
                } else {
                    (ifs + 16, ifs + 48, 0x02)
                };
                let b = n.as_bytes();
                if b.len() > 15 {
                    return no("an interface name longer than 15");
                }
                ip[at..at + b.len()].copy_from_slice(b);
                for x in &mut ip[mask_at..mask_at + b.len() + 1] {
                    *x = 0xff;
                }
                if *g {
                    inv |= bit;
                }
            }
            Match::Proto(p, g) => {
                if proto.is_some() {
                    return no("two protocol matches");
                }
                proto = Some((*p, *g));
                let at = lay.proto();
                ip[at..at + 2].copy_from_slice(&(p.number() as u16).to_ne_bytes());
                if lay.0 == Family::Ip6 {
                    ip[lay.flags()] |= 0x01; // IP6T_F_PROTO
                }
                if *g {
                    inv |= 0x40;
                }
            }
            Match::Saddr(c, g) | Match::Daddr(c, g) => {
                let octets: Vec<u8> = match (c, lay.0) {
                    (IpCidr::Ipv4(c4), Family::Ip) => c4.address().octets().to_vec(),
                    (IpCidr::Ipv6(c6), Family::Ip6) => c6.address().octets().to_vec(),
                    _ => return no("an address of the other family"),
                };
                let (at, mask_at, bit) = if matches!(m, Match::Saddr(..)) {
                    (0, 2 * a, 0x08)
                } else {
                    (a, 3 * a, 0x10)
                };
                ip[at..at + a].copy_from_slice(&octets);
                for i in 0..a {
                    ip[mask_at + i] = mask_byte(usize::from(c.prefix_len()), i);
                }
                if *g {
                    inv |= bit;
                }
            }
            Match::Sport(p, g) => sport = Some((p.clone(), *g)),
            Match::Dport(p, g) => dport = Some((p.clone(), *g)),
            Match::TcpFlags { mask, value, neg } => flags = Some((*mask, *value, *neg)),
            Match::IcmpType(t, g) => icmp = Some((t.clone(), *g)),
            Match::CtState(s, g) => state = Some((*s, *g)),
            Match::Family(f) if *f == lay.0 => {}
            Match::Family(_) => return no("a rule of the other family"),
        }
    }
    ip[lay.invflags()] = inv;
    let mut ms = Vec::new();
    let tcp_or_udp = matches!(proto, Some((Proto::Tcp | Proto::Udp, false)));
    if (sport.is_some() || dport.is_some() || flags.is_some()) && !tcp_or_udp {
        return no("ports or flags without -p tcp or -p udp");
    }
    let single = |p: &Option<(Ports, bool)>| p.as_ref().is_none_or(|(x, _)| x.0.len() == 1);
    if tcp_or_udp {
        let is_tcp = matches!(proto, Some((Proto::Tcp, _)));
        if single(&sport)
            && single(&dport)
            && (sport.is_some() || dport.is_some() || flags.is_some())
        {
            let range = |p: &Option<(Ports, bool)>| p.as_ref().map_or((0, 0xffff), |(x, _)| x.0[0]);
            let (s, d) = (range(&sport), range(&dport));
            let mut data = vec![0u8; if is_tcp { 12 } else { 9 }];
            data[0..2].copy_from_slice(&s.0.to_ne_bytes());
            data[2..4].copy_from_slice(&s.1.to_ne_bytes());
            data[4..6].copy_from_slice(&d.0.to_ne_bytes());
            data[6..8].copy_from_slice(&d.1.to_ne_bytes());
            let mut invf = 0;
            if sport.as_ref().is_some_and(|(_, g)| *g) {
                invf |= 1;
            }
            if dport.as_ref().is_some_and(|(_, g)| *g) {
                invf |= 2;
            }
            if is_tcp {
                if let Some((mask, value, neg)) = flags {
                    data[9] = mask;
                    data[10] = value;
                    if neg {
                        invf |= 4;
                    }
                }
                data[11] = invf;
                ms.extend(ext_bytes("tcp", 0, &data));
            } else {
                if flags.is_some() {
                    return no("TCP flags on udp");
                }
                data[8] = invf;
                ms.extend(ext_bytes("udp", 0, &data));
            }
        } else if sport.is_some() || dport.is_some() {
            if flags.is_some() || (sport.is_some() && dport.is_some()) {
                return no("several port sets at once");
            }
            let (dir, (ports, neg)) = match (&sport, &dport) {
                (Some(p), _) => (0u8, p.clone()),
                (_, Some(p)) => (1u8, p.clone()),
                _ => unreachable!(),
            };
            let mut data = vec![0u8; 48];
            data[0] = dir;
            let mut n = 0;
            for (a, b) in &ports.0 {
                let need = if a == b { 1 } else { 2 };
                if n + need > 15 {
                    return no("more than 15 ports in a set");
                }
                data[2 + 2 * n..4 + 2 * n].copy_from_slice(&a.to_ne_bytes());
                if a != b {
                    data[32 + n] = 1;
                    data[4 + 2 * n..6 + 2 * n].copy_from_slice(&b.to_ne_bytes());
                }
                n += need;
            }
            data[1] = n as u8;
            data[47] = u8::from(neg);
            ms.extend(ext_bytes("multiport", 1, &data));
        }
    }
    if let Some((types, neg)) = icmp {
        let want = if lay.0 == Family::Ip6 {
            Proto::Icmpv6
        } else {
            Proto::Icmp
        };
        if proto != Some((want, false)) || types.len() != 1 {
            return no("an ICMP type match iptables cannot write (one type, -p icmp)");
        }
        ms.extend(ext_bytes(
            lay.icmp(),
            0,
            &[types[0], 0, 0xff, u8::from(neg)],
        ));
    }
    if let Some((s, neg)) = state {
        let mut bits = 0u16;
        for (b, x) in [
            (ct::INVALID, 1),
            (ct::ESTABLISHED, 2),
            (ct::RELATED, 4),
            (ct::NEW, 8),
        ] {
            if s & b != 0 {
                bits |= x;
            }
        }
        let mut data = vec![0u8; 168];
        let flags = if s & ct::AS_STATE != 0 {
            1 | STATE_ALIAS
        } else {
            1
        };
        data[146..148].copy_from_slice(&flags.to_ne_bytes());
        data[148..150].copy_from_slice(&u16::from(neg).to_ne_bytes());
        data[150..152].copy_from_slice(&bits.to_ne_bytes());
        ms.extend(ext_bytes("conntrack", 3, &data));
    }
    let mut out = Vec::new();
    let entry = |target: Target| {
        (
            Out {
                ip,
                matches: ms.clone(),
                count,
            },
            target,
        )
    };
    if let Some(l) = &r.log {
        let mut data = vec![0u8; 32];
        data[0] = l.level;
        let p = l.prefix.as_bytes();
        data[2..2 + p.len().min(29)].copy_from_slice(&p[..p.len().min(29)]);
        out.push(entry(Target::Bytes(ext_bytes("LOG", 0, &data))));
    }
    let t = match &r.verdict {
        Verdict::Accept => Target::Verdict(V_ACCEPT),
        Verdict::Drop => Target::Verdict(V_DROP),
        Verdict::Return => Target::Verdict(V_RETURN),
        Verdict::Jump(c) => Target::Jump(c.clone()),
        Verdict::Reject(w) if lay.0 == Family::Ip6 => {
            // enum ip6t_reject_with, from the ICMPv4 code the rule keeps.
            let with: u32 = match w {
                RejectWith::TcpReset => 6,
                RejectWith::Icmp(0) => 0,
                RejectWith::Icmp(1) => 3,
                RejectWith::Icmp(9 | 10 | 13) => 1,
                RejectWith::Icmp(_) => 4,
            };
            Target::Bytes(ext_bytes("REJECT", 0, &with.to_ne_bytes()))
        }
        Verdict::Reject(w) => {
            let with: u32 = match w {
                RejectWith::TcpReset => 7,
                RejectWith::Icmp(9) => 5,
                RejectWith::Icmp(10) => 6,
                RejectWith::Icmp(13) => 8,
                RejectWith::Icmp(c) => u32::from(*c).min(3),
            };
            Target::Bytes(ext_bytes("REJECT", 0, &with.to_ne_bytes()))
        }
        Verdict::Continue if r.log.is_some() => return Ok(out),
        Verdict::Continue => Target::Next,
    };
    out.push(entry(t));
    Ok(out)
}

/// The `filter` table as `IPT_SO_GET_INFO` and `IPT_SO_GET_ENTRIES` return it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    /// The entries.
    pub entries: Vec<u8>,
    /// Where each hook's chain starts.
    pub hook_entry: [u32; 5],
    /// Where each hook's policy is.
    pub underflow: [u32; 5],
    /// How many entries.
    pub num_entries: u32,
    /// What each entry's counters are (`IPT_SO_SET_ADD_COUNTERS` adds to them):
    /// a rule's first entry, a chain's policy, or nothing of the filter's.
    pub slots: Vec<Option<Slot>>,
    /// IPv4's entries or IPv6's.
    pub layout: Layout,
}

/// Whose counters an entry of a [`Table`] shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// The rule at this index of the set.
    Rule(usize),
    /// The policy of input, forward, output, for a family.
    Policy(Family, usize),
}

impl Table {
    /// The counters of each entry, as `IPT_SO_SET_REPLACE` gives back the old
    /// table's (`struct xt_counters`: packets, bytes).
    pub fn counters(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.num_entries as usize * 16);
        let mut at = 0;
        let lay = self.layout;
        while at + lay.entry() <= self.entries.len() {
            let c = at + lay.counters();
            out.extend_from_slice(&self.entries[c..c + 16]);
            let next = u16_at(&self.entries, at + lay.target_offset() + 2) as usize;
            if next == 0 {
                break;
            }
            at += next;
        }
        out
    }
}

/// [`encode_entries_in`] for IPv4 (`iptables`).
pub fn encode_entries(
    set: &RuleSet,
    counts: &[super::Count],
    policy_counts: &[super::Count; 3],
) -> Result<Table, Unrepresentable> {
    encode_entries_in(set, counts, policy_counts, Family::Ip)
}

/// A rule set's rules for `family` as the `filter` table `IPT_SO_GET_ENTRIES`
/// (IPv4) or `IP6T_SO_GET_ENTRIES` (IPv6) returns: the entries (with `counts`,
/// parallel to the set's rules, as their counters; `policy_counts` the
/// family's), and the `hook_entry` and `underflow` offsets. Rules of the other
/// family are left out; every user chain is shown. Rules that iptables cannot
/// write (port sets without a protocol, several ICMP types) make it fail.
pub fn encode_entries_in(
    set: &RuleSet,
    counts: &[super::Count],
    policy_counts: &[super::Count; 3],
    family: Family,
) -> Result<Table, Unrepresentable> {
    let lay = Layout(family);
    let mut list: Vec<(Out, Target)> = Vec::new();
    let mut hook_entry = [0u32; 5];
    let mut underflow = [0u32; 5];
    let mut starts: Vec<(usize, usize)> = Vec::new(); // (hook, first index)
    let mut chain_first: Vec<(String, usize)> = Vec::new();
    let mut slots: Vec<Option<Slot>> = Vec::new();
    let rules_of = |c: Chain| {
        set.rules
            .iter()
            .zip(
                counts
                    .iter()
                    .copied()
                    .chain(std::iter::repeat(super::Count::default())),
            )
            .enumerate()
            .filter(move |(_, ((_, r), _))| r.chain == c && r.applies_to(family))
            .map(|(i, ((_, r), n))| (i, r, n))
    };
    // Entries in `list`, each rule's first one with its slot.
    let push_rule = |list: &mut Vec<(Out, Target)>,
                     slots: &mut Vec<Option<Slot>>,
                     i: usize,
                     r: &Rule,
                     n: super::Count|
     -> Result<(), Unrepresentable> {
        let e = encode_rule(r, n, lay)?;
        for k in 0..e.len() {
            slots.push((k == 0).then_some(Slot::Rule(i)));
        }
        list.extend(e);
        Ok(())
    };
    for (k, (hook, c)) in [
        (1usize, Chain::Input),
        (2, Chain::Forward),
        (3, Chain::Output),
    ]
    .into_iter()
    .enumerate()
    {
        starts.push((hook, list.len()));
        for (i, r, n) in rules_of(c.clone()) {
            push_rule(&mut list, &mut slots, i, r, n)?;
        }
        let v = if set.accepts_in(&c, family) {
            V_ACCEPT
        } else {
            V_DROP
        };
        let mut p = plain(Target::Verdict(v));
        p.0.count = policy_counts[k];
        underflow[hook] = list.len() as u32; // an index for now
        list.push(p);
        slots.push(Some(Slot::Policy(family, k)));
    }
    // A user chain is shown where it is used: a chain with rules of the other
    // family only, or that only its rules jump to, is the other tool's (one no
    // rule touches is shown to both).
    let visible = |c: &String| {
        let touches = |r: &Rule| {
            r.chain == Chain::User(c.clone()) || matches!(&r.verdict, Verdict::Jump(t) if t == c)
        };
        let mut rules = set
            .rules
            .iter()
            .map(|(_, r)| r)
            .filter(|r| touches(r))
            .peekable();
        rules.peek().is_none()
            || set
                .rules
                .iter()
                .any(|(_, r)| touches(r) && r.applies_to(family))
    };
    for c in set.chains.iter().filter(|c| visible(c)) {
        let mut name = [0u8; 30];
        name[..c.len()].copy_from_slice(c.as_bytes());
        list.push(plain(Target::Bytes(ext_bytes("ERROR", 0, &name))));
        slots.push(None);
        chain_first.push((c.clone(), list.len()));
        for (i, r, n) in rules_of(Chain::User(c.clone())) {
            push_rule(&mut list, &mut slots, i, r, n)?;
        }
        list.push(plain(Target::Verdict(V_RETURN)));
        slots.push(None);
    }
    let mut name = [0u8; 30];
    name[..5].copy_from_slice(b"ERROR");
    list.push(plain(Target::Bytes(ext_bytes("ERROR", 0, &name))));
    slots.push(None);
    // Place the entries, then fill in the jumps.
    let size_of = |(o, t): &(Out, Target)| {
        lay.entry()
            + o.matches.len()
            + match t {
                Target::Bytes(b) => b.len(),
                _ => align8(EXT_HEADER + 4),
            }
    };
    let mut offsets = Vec::with_capacity(list.len());
    let mut at = 0;
    for e in &list {
        offsets.push(at);
        at += size_of(e);
    }
    for (hook, first) in starts {
        hook_entry[hook] = offsets[first] as u32;
        underflow[hook] = offsets[underflow[hook] as usize] as u32;
    }
    let mut blob = Vec::with_capacity(at);
    for (i, (o, t)) in list.iter().enumerate() {
        let target = match t {
            Target::Bytes(b) => b.clone(),
            Target::Verdict(v) => ext_bytes("", 0, &v.to_ne_bytes()),
            Target::Next => ext_bytes(
                "",
                0,
                &((offsets[i] + size_of(&list[i])) as i32).to_ne_bytes(),
            ),
            Target::Jump(c) => {
                let first = chain_first.iter().find(|(n, _)| n == c).map(|(_, f)| *f);
                let Some(first) = first else {
                    return Err(Unrepresentable(format!("a jump to no chain {c}")));
                };
                ext_bytes("", 0, &(offsets[first] as i32).to_ne_bytes())
            }
        };
        let start = blob.len();
        blob.extend_from_slice(&o.ip[..lay.ip_len()]);
        blob.extend_from_slice(&[0; 4]); // nfcache
        let target_offset = lay.entry() + o.matches.len();
        let next = target_offset + target.len();
        blob.extend_from_slice(&(target_offset as u16).to_ne_bytes());
        blob.extend_from_slice(&(next as u16).to_ne_bytes());
        blob.extend_from_slice(&[0; 4]); // comefrom
        blob.resize(start + lay.counters(), 0); // to 8 bytes
        blob.extend_from_slice(&o.count.packets.to_ne_bytes());
        blob.extend_from_slice(&o.count.bytes.to_ne_bytes());
        blob.extend_from_slice(&o.matches);
        blob.extend_from_slice(&target);
        debug_assert_eq!(blob.len() - start, next);
    }
    debug_assert_eq!(slots.len(), list.len());
    Ok(Table {
        entries: blob,
        hook_entry,
        underflow,
        num_entries: list.len() as u32,
        slots,
        layout: lay,
    })
}

/// An `ipt_replace` for the filter table with these entries (what iptables
/// sends back after reading them; for tests and fuzzing).
#[doc(hidden)]
pub fn replace_blob(t: &Table) -> Vec<u8> {
    let (blob, hook_entry, underflow, n) = (&t.entries, t.hook_entry, t.underflow, t.num_entries);
    let mut r = vec![0u8; REPLACE_HEADER];
    r[..6].copy_from_slice(b"filter");
    r[32..36].copy_from_slice(&FILTER_HOOKS.to_ne_bytes());
    r[36..40].copy_from_slice(&n.to_ne_bytes());
    r[40..44].copy_from_slice(&(blob.len() as u32).to_ne_bytes());
    for i in 0..5 {
        r[44 + 4 * i..48 + 4 * i].copy_from_slice(&hook_entry[i].to_ne_bytes());
        r[64 + 4 * i..68 + 4 * i].copy_from_slice(&underflow[i].to_ne_bytes());
    }
    r.extend_from_slice(blob);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds an entry: `ip` fields set by `f`, matches, a target.
    fn entry(
        ip: impl Fn(&mut [u8]),
        matches: &[(&str, u8, &[u8])],
        target: (&str, u8, &[u8]),
    ) -> Vec<u8> {
        let mut e = vec![0u8; ENTRY];
        ip(&mut e[..84]);
        for (n, r, d) in matches {
            e.extend_from_slice(&ext(n, *r, d));
        }
        let t = e.len();
        e.extend_from_slice(&ext(target.0, target.1, target.2));
        let next = e.len();
        e[88..90].copy_from_slice(&(t as u16).to_ne_bytes());
        e[90..92].copy_from_slice(&(next as u16).to_ne_bytes());
        e
    }

    fn ext(name: &str, rev: u8, data: &[u8]) -> Vec<u8> {
        let size = align8(EXT_HEADER + data.len());
        let mut x = vec![0u8; size];
        x[..2].copy_from_slice(&(size as u16).to_ne_bytes());
        x[2..2 + name.len()].copy_from_slice(name.as_bytes());
        x[31] = rev;
        x[EXT_HEADER..EXT_HEADER + data.len()].copy_from_slice(data);
        x
    }

    fn verdict(v: i32) -> Vec<u8> {
        v.to_ne_bytes().to_vec()
    }

    fn error(name: &str) -> Vec<u8> {
        let mut d = vec![0u8; 30];
        d[..name.len()].copy_from_slice(name.as_bytes());
        d
    }

    /// The table `iptables -P INPUT DROP; -A INPUT -p tcp --dport 8080 -j
    /// DROP; -N web; -A INPUT -j web; -A web -s 10.0.0.0/8 -j ACCEPT; -A
    /// OUTPUT -p udp -j REJECT` makes.
    fn table() -> Vec<u8> {
        let tcp = {
            let mut d = vec![0u8; 12];
            d[2..4].copy_from_slice(&0xffffu16.to_ne_bytes());
            d[4..6].copy_from_slice(&8080u16.to_ne_bytes());
            d[6..8].copy_from_slice(&8080u16.to_ne_bytes());
            d
        };
        let proto = |p: u16| move |ip: &mut [u8]| ip[80..82].copy_from_slice(&p.to_ne_bytes());
        let none = |_: &mut [u8]| {};
        let mut es: Vec<Vec<u8>> = Vec::new();
        let mut at = vec![];
        let mut push = |es: &mut Vec<Vec<u8>>, e: Vec<u8>| {
            at.push(es.iter().map(Vec::len).sum::<usize>());
            es.push(e);
        };
        push(
            &mut es,
            entry(proto(6), &[("tcp", 0, &tcp)], ("", 0, &verdict(V_DROP))),
        ); // 0
        push(&mut es, entry(none, &[], ("", 0, &verdict(0)))); // 1: jump web (patched)
        push(&mut es, entry(none, &[], ("", 0, &verdict(V_DROP)))); // 2: INPUT policy
        push(&mut es, entry(none, &[], ("", 0, &verdict(V_ACCEPT)))); // 3: FORWARD policy
        push(
            &mut es,
            entry(proto(17), &[], ("REJECT", 0, &3u32.to_ne_bytes())),
        ); // 4
        push(&mut es, entry(none, &[], ("", 0, &verdict(V_ACCEPT)))); // 5: OUTPUT policy
        push(&mut es, entry(none, &[], ("ERROR", 0, &error("web")))); // 6
        let src = |ip: &mut [u8]| {
            ip[0..4].copy_from_slice(
                &u32::from(Ipv4Address::new(10, 0, 0, 0))
                    .to_be()
                    .to_ne_bytes(),
            );
            ip[8..12].copy_from_slice(&0xff00_0000u32.to_be().to_ne_bytes());
        };
        push(&mut es, entry(src, &[], ("", 0, &verdict(V_ACCEPT)))); // 7
        push(&mut es, entry(none, &[], ("", 0, &verdict(V_RETURN)))); // 8
        push(&mut es, entry(none, &[], ("ERROR", 0, &error("ERROR")))); // 9
        let mut blob: Vec<u8> = es.concat();
        // The jump names the entry after web's head.
        let j = at[1] + ENTRY + EXT_HEADER;
        blob[j..j + 4].copy_from_slice(&(at[7] as i32).to_ne_bytes());
        let mut r = vec![0u8; REPLACE_HEADER];
        r[..6].copy_from_slice(b"filter");
        r[32..36].copy_from_slice(&FILTER_HOOKS.to_ne_bytes());
        r[36..40].copy_from_slice(&(es.len() as u32).to_ne_bytes());
        r[40..44].copy_from_slice(&(blob.len() as u32).to_ne_bytes());
        for (hook, start, under) in [(1, at[0], at[2]), (2, at[3], at[3]), (3, at[4], at[5])] {
            r[44 + 4 * hook..48 + 4 * hook].copy_from_slice(&(start as u32).to_ne_bytes());
            r[64 + 4 * hook..68 + 4 * hook].copy_from_slice(&(under as u32).to_ne_bytes());
        }
        r.extend_from_slice(&blob);
        r
    }

    #[test]
    fn a_table_as_iptables_writes_it_becomes_the_rule_set() {
        let set = decode_replace(&table()).unwrap();
        let text = set.to_string();
        assert_eq!(
            text,
            "policy ip input drop\npolicy ip6 input accept\npolicy forward accept\n\
             policy output accept\nchain web\n\
             input meta nfproto ipv4 tcp dport 8080 drop\ninput meta nfproto ipv4 jump web\n\
             output meta nfproto ipv4 meta l4proto udp reject\n\
             web ip saddr 10.0.0.0/8 accept\n",
            "{text}"
        );
    }

    #[test]
    fn what_the_filter_cannot_enforce_is_refused_with_its_errno() {
        let mut t = table();
        // An unknown match name: ENOENT (iptables: "No chain/target/match by
        // that name").
        let at = REPLACE_HEADER + ENTRY + 2;
        t[at..at + 3].copy_from_slice(b"xyz");
        assert_eq!(decode_replace(&t).unwrap_err().errno, libc::ENOENT);
        // Another table.
        let mut t = table();
        t[..6].copy_from_slice(b"natxxx");
        assert_eq!(decode_replace(&t).unwrap_err().errno, libc::ENOENT);
        // A size that lies.
        let mut t = table();
        t[40] ^= 8;
        assert_eq!(decode_replace(&t).unwrap_err().errno, libc::EINVAL);
    }

    /// Found by the `ipt_replace` fuzz target: an IPv4 table with a `-p 58`
    /// rule decoded to an `icmpv6` rule, which the IPv4 view then never showed
    /// again (iptables -S would lose it). Refused now, as other protocols the
    /// filter does not match; the same table decodes as IPv6 without it
    /// mattering.
    #[test]
    fn the_other_family_s_icmp_is_refused() {
        let blob = include_bytes!("testdata/ipt-v4-icmpv6-rule.bin");
        let e = decode_replace_in(blob, Family::Ip).unwrap_err();
        assert_eq!(e.errno, libc::EOPNOTSUPP, "{e:?}");
        assert!(format!("{e:?}").contains("protocol 58"), "{e:?}");
    }

    /// Found by the `ipt_replace` fuzz target: an interface named `!=` printed
    /// as `oif != tcp ...`, which did not read back. Names are printable ASCII
    /// not beginning with `!` now.
    #[test]
    fn interface_names_are_printable() {
        let blob = include_bytes!("testdata/ipt-invisible-iface.bin");
        for family in Family::ALL {
            if let Ok(set) = decode_replace_in(blob, family) {
                let text = set.to_string();
                let again = crate::filter::parse::parse_ruleset(&text)
                    .unwrap_or_else(|e| panic!("{text}: {e}"));
                assert_eq!(again.rules, set.rules);
            }
        }
        let e = decode_replace_in(blob, Family::Ip).unwrap_err();
        assert_eq!(e.errno, libc::EINVAL, "{e:?}");
    }

    /// An `ipt_replace` of `encode_entries`' output, as iptables would send it
    /// back.
    fn replace_of(set: &RuleSet) -> Vec<u8> {
        let counts = vec![crate::filter::Count::default(); set.rules.len()];
        let t = encode_entries(set, &counts, &[crate::filter::Count::default(); 3]).unwrap();
        replace_blob(&t)
    }

    #[test]
    fn encoding_and_decoding_round_trip() {
        let text = "policy input drop\nchain web\n\
                    input iif lo accept\n\
                    input ct state established,related accept\n\
                    input tcp dport { 22, 80, 8000-8080 } accept\n\
                    input ip saddr 10.0.0.0/8 udp dport 53 accept\n\
                    input icmp type echo-request accept\n\
                    input tcp sport 1024-65535 tcp flags syn / syn,ack,rst,fin drop\n\
                    input tcp dport 443 jump web\n\
                    input meta l4proto udp continue\n\
                    web meta l4proto tcp ip saddr != 192.168.0.0/16 reject with tcp reset\n\
                    web return\n\
                    output oif eth0 ip daddr 192.0.2.0/24 reject with icmp type admin-prohibited\n";
        let set = crate::filter::parse::parse_ruleset(text).unwrap();
        let back = decode_replace(&replace_of(&set)).unwrap();
        // The same rules in each chain (the table lists chain after chain, and
        // the IP header's matches first).
        let normal = |s: &RuleSet| {
            let mut v: Vec<String> = s
                .rules
                .iter()
                .map(|(_, r)| {
                    let mut m: Vec<String> = r.matches.iter().map(|x| format!("{x:?}")).collect();
                    // What iptables wrote is IPv4's.
                    m.retain(|x| x != "Family(Ip)");
                    m.sort();
                    format!("{:?} {m:?} {:?} {:?}", r.chain, r.log, r.verdict)
                })
                .collect();
            v.sort_by_key(|x| x.split(' ').next().map(str::to_string));
            (v, s.policy[0], s.chains.clone())
        };
        assert_eq!(normal(&back), normal(&set), "{back}");
        // The table iptables wrote reads back the same after a round of ours.
        let first = decode_replace(&table()).unwrap();
        assert_eq!(decode_replace(&replace_of(&first)).unwrap(), first);
        // What iptables cannot write is said.
        // An IPv6 rule is ip6tables', not iptables'.
        let v6 = crate::filter::parse::parse_ruleset("input ip6 saddr fd00::/8 drop").unwrap();
        let none = [Default::default(); 3];
        let counts = [crate::filter::Count::default()];
        assert_eq!(encode_entries(&v6, &counts, &none).unwrap().num_entries, 4);
        let t6 = encode_entries_in(&v6, &counts, &none, Family::Ip6).unwrap();
        assert_eq!(t6.num_entries, 5);
        let back6 = decode_replace_in(&replace_blob(&t6), Family::Ip6).unwrap();
        assert_eq!(
            back6.to_string(),
            "policy input accept\npolicy forward accept\npolicy output accept\n\
             input ip6 saddr fd00::/8 drop\n"
        );
        for t in ["input th dport 80 drop", "input icmp type { 0, 8 } accept"] {
            let set = crate::filter::parse::parse_ruleset(t).unwrap();
            let counts = vec![crate::filter::Count::default(); set.rules.len()];
            assert!(
                encode_entries(&set, &counts, &[Default::default(); 3]).is_err(),
                "{t}"
            );
        }
    }

    #[test]
    fn what_would_not_read_back_is_refused() {
        // Found by fuzzing: each of these decoded into a set whose text did not
        // parse back.
        let tcp_data = REPLACE_HEADER + ENTRY + EXT_HEADER;
        // A tcp match on an entry that is not -p tcp (the kernel refuses it too).
        let mut t = table();
        t[REPLACE_HEADER + 80] = 0;
        assert_eq!(decode_replace(&t).unwrap_err().errno, libc::EINVAL);
        // A port range that runs backwards.
        let mut t = table();
        t[tcp_data + 4..tcp_data + 6].copy_from_slice(&9000u16.to_ne_bytes());
        assert_eq!(decode_replace(&t).unwrap_err().errno, libc::EINVAL);
        // A chain named like a keyword.
        let mut t = table();
        let at = t.windows(4).position(|w| w == b"web\0").unwrap();
        t[at..at + 5].copy_from_slice(b"drop\0");
        assert_eq!(decode_replace(&t).unwrap_err().errno, libc::EOPNOTSUPP);
    }

    #[test]
    fn garbage_does_not_panic() {
        let base = table();
        let mut x: u32 = 5;
        for i in 0..20_000 {
            let mut t = base.clone();
            for _ in 0..(i % 7 + 1) {
                x = x.wrapping_mul(1103515245).wrapping_add(12345);
                let at = (x >> 8) as usize % t.len();
                t[at] = (x >> 24) as u8;
            }
            if i % 3 == 0 {
                t.truncate((x as usize) % t.len());
            }
            let _ = decode_replace(&t);
        }
    }
}
