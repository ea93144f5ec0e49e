//! `iptables`' and `ip6tables`' socket options, served on the container's
//! sockets.
//!
//! `iptables-legacy` reads and writes the `filter` table with `getsockopt` and
//! `setsockopt` at `SOL_IP` on an IPv4 raw socket (`ip_tables.h`):
//! `IPT_SO_GET_INFO`, `IPT_SO_GET_ENTRIES`, the revision queries,
//! `IPT_SO_SET_REPLACE` and `IPT_SO_SET_ADD_COUNTERS`; `ip6tables-legacy` the
//! same at `SOL_IPV6` on an IPv6 one (`ip6_tables.h`, whose revision queries are
//! 68 and 69). Each sees and writes its family's rules and policies of the one
//! rule set ([`crate::filter::Filter::replace_family`]). Their values can be megabytes, more than one message
//! of the control protocol carries, so a front end moves them in pieces through a
//! staging area here ([`netcell_proto::table_steps`]); the table itself is the
//! container's [`crate::filter::Filter`], translated by
//! [`crate::filter::ipt`].
//!
//! Linux's checks are kept, with its errnos: `CAP_NET_ADMIN` (`EPERM`), the
//! value sizes (`EINVAL`), a table other than `filter` (`ENOENT`), a stale size or
//! counter count (`EAGAIN`). One staging area serves the whole container: a
//! second program's call in between makes the first one's fail with `EAGAIN`
//! (iptables itself serialises its runs with `/run/xtables.lock`).

use crate::filter::ipt;
#[cfg(test)]
use crate::filter::ipt::Slot;
use crate::filter::rules::Family;
use crate::filter::{Count, Filter};
use netcell_proto::{MAX_TABLE, table_steps};

/// `IPT_SO_SET_REPLACE` and `IPT_SO_GET_INFO`.
pub const SO_REPLACE_OR_INFO: i32 = 64;
/// `IPT_SO_SET_ADD_COUNTERS` and `IPT_SO_GET_ENTRIES`.
pub const SO_COUNTERS_OR_ENTRIES: i32 = 65;
/// `IPT_SO_GET_REVISION_MATCH`.
pub const SO_REVISION_MATCH: i32 = 66;
/// `IPT_SO_GET_REVISION_TARGET`.
pub const SO_REVISION_TARGET: i32 = 67;
/// `IP6T_SO_GET_REVISION_MATCH`.
pub const SO6_REVISION_MATCH: i32 = 68;
/// `IP6T_SO_GET_REVISION_TARGET`.
pub const SO6_REVISION_TARGET: i32 = 69;

/// `sizeof(struct ipt_getinfo)`.
pub const GETINFO: usize = 84;
/// `sizeof(struct ipt_get_entries)` and `struct xt_counters_info`: a name, a
/// size or count, padding to 8.
pub const GET_HEADER: usize = 40;
/// `sizeof(struct xt_get_revision)`.
pub const REVISION: usize = 30;

/// The values on their way in and out.
#[derive(Default)]
pub struct Staging {
    /// The stand-in whose call they belong to.
    owner: u64,
    input: Vec<u8>,
    output: Vec<u8>,
}

/// What a step answers: its reply value and the answer's bytes to send (a piece
/// of the staged output), or an errno.
pub type Stepped<'a> = Result<(u32, &'a [u8]), i32>;

impl Staging {
    /// Serves one step of a table call of `family`'s table on the stand-in
    /// `owner`. `admin`: the caller holds `CAP_NET_ADMIN`. `room`: the most
    /// bytes a reply carries.
    #[allow(clippy::too_many_arguments)]
    pub fn step<'s>(
        &'s mut self,
        filter: &mut Filter,
        (owner, family): (u64, Family),
        admin: bool,
        (step, name): (u8, i32),
        offset: u32,
        len: u32,
        data: &[u8],
        room: usize,
    ) -> Stepped<'s> {
        if !admin {
            return Err(libc::EPERM);
        }
        match step {
            table_steps::PUT => {
                if len as usize > MAX_TABLE {
                    return Err(libc::ENOMEM);
                }
                if offset == 0 {
                    self.owner = owner;
                    self.input.clear();
                    self.output.clear();
                    self.input.reserve_exact(len as usize);
                }
                if self.owner != owner || offset as usize != self.input.len() {
                    return Err(libc::EAGAIN);
                }
                if self.input.len() + data.len() > len as usize {
                    return Err(libc::EINVAL);
                }
                self.input.extend_from_slice(data);
                Ok((0, &[]))
            }
            table_steps::SET => {
                if self.owner != owner {
                    return Err(libc::EAGAIN);
                }
                let input = std::mem::take(&mut self.input);
                self.output.clear();
                let r = match name {
                    SO_REPLACE_OR_INFO => self.replace(filter, &input, family),
                    SO_COUNTERS_OR_ENTRIES => add_counters(filter, &input, family),
                    _ => Err(libc::ENOPROTOOPT),
                };
                r.map(|()| (self.output.len() as u32, &[][..]))
            }
            table_steps::GET => {
                self.owner = owner;
                self.input.clear();
                self.output.clear();
                let value = self.get(filter, name, len, data, family)?;
                let n = self.output.len().min(room);
                Ok((value, &self.output[..n]))
            }
            table_steps::READ => {
                if self.owner != owner {
                    return Err(libc::EAGAIN);
                }
                let from = (offset as usize).min(self.output.len());
                let n = (len as usize).min(room).min(self.output.len() - from);
                Ok((0, &self.output[from..from + n]))
            }
            _ => Err(libc::EINVAL),
        }
    }

    /// `IPT_SO_SET_REPLACE`: the old table's counters become the output.
    fn replace(&mut self, filter: &mut Filter, blob: &[u8], family: Family) -> Result<(), i32> {
        let h = ipt::replace_header(blob).map_err(|r| r.errno)?;
        if h.name != "filter" {
            return Err(libc::ENOENT);
        }
        let old = current(filter, family)?;
        let set = match ipt::decode_replace_in(blob, family) {
            Ok(s) => s,
            Err(r) => {
                log::info!("filter: iptables table refused: {}", r.why);
                return Err(r.errno);
            }
        };
        if h.num_counters != old.num_entries {
            return Err(libc::EAGAIN);
        }
        let n = set.rules.len();
        if let Err(why) = filter.replace_family(family, set) {
            log::info!("filter: iptables table refused: {why}");
            return Err(libc::ELOOP);
        }
        self.output = old.counters();
        log::info!(
            "filter: {} replaced the {} table ({n} rules)",
            tool(family),
            family.name()
        );
        Ok(())
    }

    /// A `getsockopt`, the answer staged as output: the answer's length, or the
    /// call's return value for a revision query.
    fn get(
        &mut self,
        filter: &Filter,
        name: i32,
        len: u32,
        head: &[u8],
        family: Family,
    ) -> Result<u32, i32> {
        let len = len as usize;
        let revisions = match family {
            Family::Ip => [SO_REVISION_MATCH, SO_REVISION_TARGET],
            Family::Ip6 => [SO6_REVISION_MATCH, SO6_REVISION_TARGET],
        };
        match name {
            SO_REPLACE_OR_INFO => {
                if len != GETINFO {
                    return Err(libc::EINVAL);
                }
                check_name(head)?;
                let t = current(filter, family)?;
                let mut out = vec![0u8; GETINFO];
                out[..6].copy_from_slice(b"filter");
                out[32..36].copy_from_slice(&ipt::FILTER_HOOKS.to_ne_bytes());
                for i in 0..5 {
                    out[36 + 4 * i..40 + 4 * i].copy_from_slice(&t.hook_entry[i].to_ne_bytes());
                    out[56 + 4 * i..60 + 4 * i].copy_from_slice(&t.underflow[i].to_ne_bytes());
                }
                out[76..80].copy_from_slice(&t.num_entries.to_ne_bytes());
                out[80..84].copy_from_slice(&(t.entries.len() as u32).to_ne_bytes());
                self.output = out;
                Ok(GETINFO as u32)
            }
            SO_COUNTERS_OR_ENTRIES => {
                if len < GET_HEADER || head.len() < GET_HEADER {
                    return Err(libc::EINVAL);
                }
                let size = u32::from_ne_bytes([head[32], head[33], head[34], head[35]]) as usize;
                if len != GET_HEADER + size {
                    return Err(libc::EINVAL);
                }
                check_name(head)?;
                let t = current(filter, family)?;
                if t.entries.len() != size {
                    return Err(libc::EAGAIN);
                }
                self.output = t.entries;
                Ok(size as u32)
            }
            n if revisions.contains(&n) => {
                if len != REVISION || head.len() < REVISION {
                    return Err(libc::EINVAL);
                }
                let end = head[..29].iter().position(|&c| c == 0).unwrap_or(29);
                let n = std::str::from_utf8(&head[..end]).unwrap_or("");
                let target = name == revisions[1];
                let best = ipt::best_revision_in(n, target, family).ok_or(libc::ENOENT)?;
                if head[29] > best {
                    return Err(libc::EPROTONOSUPPORT);
                }
                Ok(u32::from(best))
            }
            _ => Err(libc::ENOPROTOOPT),
        }
    }
}

/// The program that writes `family`'s table.
fn tool(family: Family) -> &'static str {
    match family {
        Family::Ip => "iptables",
        Family::Ip6 => "ip6tables",
    }
}

/// The filter's rules of `family` as the `filter` table; a set iptables cannot
/// show (written with `netcell filter`) fails with `EOPNOTSUPP`, said in the log.
fn current(filter: &Filter, family: Family) -> Result<ipt::Table, i32> {
    use crate::filter::rules::Chain;
    let counts: Vec<Count> = filter.list().iter().map(|l| l.count).collect();
    let policy =
        [Chain::Input, Chain::Forward, Chain::Output].map(|c| filter.policy_count_in(&c, family));
    ipt::encode_entries_in(filter.ruleset(), &counts, &policy, family).map_err(|e| {
        crate::warn_limited!("filter: {} cannot show the rule set: {}", tool(family), e.0);
        libc::EOPNOTSUPP
    })
}

/// The table a call names must be `filter` (`ENOENT`, as for a table whose
/// module is not loaded).
fn check_name(head: &[u8]) -> Result<(), i32> {
    // A request of a program's own may carry less than the 32 bytes.
    let name = &head[..32.min(head.len())];
    let end = name.iter().position(|&c| c == 0).unwrap_or(name.len());
    if &head[..end] == b"filter" {
        Ok(())
    } else {
        Err(libc::ENOENT)
    }
}

/// `IPT_SO_SET_ADD_COUNTERS`: `struct xt_counters_info`, one `xt_counters` per
/// entry of the current table, added to the rules and policies they show.
fn add_counters(filter: &mut Filter, b: &[u8], family: Family) -> Result<(), i32> {
    if b.len() < GET_HEADER {
        return Err(libc::EINVAL);
    }
    let n = u32::from_ne_bytes([b[32], b[33], b[34], b[35]]) as usize;
    if b.len() != GET_HEADER + n * 16 {
        return Err(libc::EINVAL);
    }
    check_name(b)?;
    let t = current(filter, family)?;
    if n != t.num_entries as usize {
        return Err(libc::EINVAL);
    }
    let u64_at = |at: usize| {
        let mut x = [0u8; 8];
        x.copy_from_slice(&b[at..at + 8]);
        u64::from_ne_bytes(x)
    };
    for (i, slot) in t.slots.iter().enumerate() {
        let at = GET_HEADER + 16 * i;
        if let Some(slot) = slot {
            let c = Count {
                packets: u64_at(at),
                bytes: u64_at(at + 8),
            };
            filter.add_counts(*slot, c);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::parse::parse_ruleset;

    const ROOM: usize = 2000;

    fn get(
        st: &mut Staging,
        f: &mut Filter,
        name: i32,
        len: u32,
        head: &[u8],
    ) -> Result<(u32, Vec<u8>), i32> {
        st.step(
            f,
            (7, Family::Ip),
            true,
            (table_steps::GET, name),
            0,
            len,
            head,
            ROOM,
        )
        .map(|(v, d)| (v, d.to_vec()))
    }

    fn set(st: &mut Staging, f: &mut Filter, name: i32, value: &[u8]) -> Result<u32, i32> {
        st.step(
            f,
            (7, Family::Ip),
            true,
            (table_steps::PUT, name),
            0,
            value.len() as u32,
            value,
            ROOM,
        )?;
        st.step(
            f,
            (7, Family::Ip),
            true,
            (table_steps::SET, name),
            0,
            0,
            &[],
            ROOM,
        )
        .map(|(v, _)| v)
    }

    fn named(name: &[u8], len: usize) -> Vec<u8> {
        let mut h = vec![0u8; len];
        h[..name.len()].copy_from_slice(name);
        h
    }

    /// A replace by the rules of `text`, asking back `counters` old counters.
    fn replace_blob(text: &str, counters: u32) -> Vec<u8> {
        let set = parse_ruleset(text).unwrap();
        let mut b =
            ipt::replace_blob(&ipt::encode_entries(&set, &[], &[Count::default(); 3]).unwrap());
        b[84..88].copy_from_slice(&counters.to_ne_bytes());
        b
    }

    #[test]
    fn linux_checks_and_errnos() {
        let (mut st, mut f) = (Staging::default(), Filter::default());
        let h = named(b"filter", 32);
        assert_eq!(
            st.step(
                &mut f,
                (7, Family::Ip),
                false,
                (table_steps::GET, SO_REPLACE_OR_INFO),
                0,
                84,
                &h,
                ROOM
            )
            .err(),
            Some(libc::EPERM)
        );
        assert_eq!(
            get(&mut st, &mut f, SO_REPLACE_OR_INFO, 83, &h).err(),
            Some(libc::EINVAL)
        );
        // A name shorter than its field and without its NUL (a hostile
        // request; found by the table_calls fuzz target): refused, no panic.
        assert_eq!(
            get(&mut st, &mut f, SO_REPLACE_OR_INFO, 84, b"fil").err(),
            Some(libc::ENOENT)
        );
        let nat = named(b"nat", 32);
        assert_eq!(
            get(&mut st, &mut f, SO_REPLACE_OR_INFO, 84, &nat).err(),
            Some(libc::ENOENT)
        );
        let (n, info) = get(&mut st, &mut f, SO_REPLACE_OR_INFO, 84, &h).unwrap();
        assert_eq!((n, info.len()), (84, 84));
        let entries = u32::from_ne_bytes(info[76..80].try_into().unwrap());
        let size = u32::from_ne_bytes(info[80..84].try_into().unwrap());
        assert_eq!(entries, 4, "three policies and the end");
        let mut g = named(b"filter", 40);
        g[32..36].copy_from_slice(&(size + 8).to_ne_bytes());
        assert_eq!(
            get(&mut st, &mut f, SO_COUNTERS_OR_ENTRIES, 40 + size + 8, &g).err(),
            Some(libc::EAGAIN)
        );
        assert_eq!(
            get(&mut st, &mut f, SO_COUNTERS_OR_ENTRIES, 40 + size, &g).err(),
            Some(libc::EINVAL)
        );
        // Revisions: the newest served, EPROTONOSUPPORT above it, ENOENT unknown.
        let mut rev = named(b"conntrack", 30);
        rev[29] = 3;
        assert_eq!(
            get(&mut st, &mut f, SO_REVISION_MATCH, 30, &rev).map(|r| r.0),
            Ok(3)
        );
        rev[29] = 4;
        assert_eq!(
            get(&mut st, &mut f, SO_REVISION_MATCH, 30, &rev).err(),
            Some(libc::EPROTONOSUPPORT)
        );
        let limit = named(b"limit", 30);
        assert_eq!(
            get(&mut st, &mut f, SO_REVISION_MATCH, 30, &limit).err(),
            Some(libc::ENOENT)
        );
        // A replace must name as many counters as the table has entries.
        let b = replace_blob("input tcp dport 80 drop\n", 3);
        assert_eq!(
            set(&mut st, &mut f, SO_REPLACE_OR_INFO, &b),
            Err(libc::EAGAIN)
        );
        assert!(f.ruleset().rules.is_empty(), "the old table stays");
        // Too big; a piece out of order or from another socket.
        let big = MAX_TABLE as u32 + 1;
        assert_eq!(
            st.step(
                &mut f,
                (7, Family::Ip),
                true,
                (table_steps::PUT, 64),
                0,
                big,
                &[],
                ROOM
            )
            .err(),
            Some(libc::ENOMEM)
        );
        st.step(
            &mut f,
            (7, Family::Ip),
            true,
            (table_steps::PUT, 64),
            0,
            10,
            &[0; 5],
            ROOM,
        )
        .unwrap();
        assert_eq!(
            st.step(
                &mut f,
                (8, Family::Ip),
                true,
                (table_steps::PUT, 64),
                5,
                10,
                &[0; 5],
                ROOM
            )
            .err(),
            Some(libc::EAGAIN)
        );
        assert_eq!(
            st.step(
                &mut f,
                (7, Family::Ip),
                true,
                (table_steps::PUT, 64),
                6,
                10,
                &[0; 4],
                ROOM
            )
            .err(),
            Some(libc::EAGAIN)
        );
    }

    #[test]
    fn replace_gives_back_the_old_counters_and_add_restores_them() {
        let (mut st, mut f) = (Staging::default(), Filter::default());
        let b = replace_blob("input tcp dport 80 drop\n", 4);
        assert_eq!(set(&mut st, &mut f, SO_REPLACE_OR_INFO, &b), Ok(4 * 16));
        f.add_counts(
            Slot::Rule(0),
            Count {
                packets: 5,
                bytes: 300,
            },
        );
        // The next replace (a rule in front) hands back the counters, per entry.
        let b = replace_blob("input udp dport 53 accept\ninput tcp dport 80 drop\n", 5);
        assert_eq!(set(&mut st, &mut f, SO_REPLACE_OR_INFO, &b), Ok(5 * 16));
        let (_, old) = st
            .step(
                &mut f,
                (7, Family::Ip),
                true,
                (table_steps::READ, 64),
                0,
                1000,
                &[],
                ROOM,
            )
            .map(|(v, d)| (v, d.to_vec()))
            .unwrap();
        assert_eq!(old.len(), 80);
        assert_eq!(u64::from_ne_bytes(old[..8].try_into().unwrap()), 5);
        assert_eq!(u64::from_ne_bytes(old[8..16].try_into().unwrap()), 300);
        assert_eq!(f.list()[1].count, Count::default(), "zero after a replace");
        // iptables adds them back to the rule's new entry (the second).
        let mut add = named(b"filter", 40);
        add[32..36].copy_from_slice(&7u32.to_ne_bytes());
        for i in 0..7 {
            let c = if i == 1 { (5u64, 300u64) } else { (0, 0) };
            add.extend_from_slice(&c.0.to_ne_bytes());
            add.extend_from_slice(&c.1.to_ne_bytes());
        }
        assert_eq!(
            set(&mut st, &mut f, SO_COUNTERS_OR_ENTRIES, &add),
            Err(libc::EINVAL),
            "7 counters for 6 entries"
        );
        add.truncate(40 + 6 * 16);
        add[32..36].copy_from_slice(&6u32.to_ne_bytes());
        assert_eq!(set(&mut st, &mut f, SO_COUNTERS_OR_ENTRIES, &add), Ok(0));
        assert_eq!(
            f.list()[1].count,
            Count {
                packets: 5,
                bytes: 300
            }
        );
        assert_eq!(f.list()[0].count, Count::default());
    }
}
