//! `iptables`' socket options, served on the container's IPv4 sockets.
//!
//! `iptables-legacy` reads and writes the `filter` table with `getsockopt` and
//! `setsockopt` at `SOL_IP` on a raw socket (`ip_tables.h`): `IPT_SO_GET_INFO`,
//! `IPT_SO_GET_ENTRIES`, the revision queries, `IPT_SO_SET_REPLACE` and
//! `IPT_SO_SET_ADD_COUNTERS`. Their values can be megabytes, more than one message
//! of the control protocol carries, so a front end moves them in pieces through a
//! staging area here ([`netcell_proto::table_steps`]); the table itself is the
//! container's [`Filter`](crate::filter::Filter), translated by
//! [`crate::filter::ipt`].
//!
//! Linux's checks are kept, with its errnos: `CAP_NET_ADMIN` (`EPERM`), the
//! value sizes (`EINVAL`), a table other than `filter` (`ENOENT`), a stale size or
//! counter count (`EAGAIN`). One staging area serves the whole container: a
//! second program's call in between makes the first one's fail with `EAGAIN`
//! (iptables itself serialises its runs with `/run/xtables.lock`).

use crate::filter::ipt;
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
    /// Serves one step of a table call on the stand-in `owner`. `admin`: the
    /// caller holds `CAP_NET_ADMIN`. `room`: the most bytes a reply carries.
    #[allow(clippy::too_many_arguments)]
    pub fn step<'s>(
        &'s mut self,
        filter: &mut Filter,
        owner: u64,
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
                    SO_REPLACE_OR_INFO => self.replace(filter, &input),
                    SO_COUNTERS_OR_ENTRIES => add_counters(filter, &input),
                    _ => Err(libc::ENOPROTOOPT),
                };
                r.map(|()| (self.output.len() as u32, &[][..]))
            }
            table_steps::GET => {
                self.owner = owner;
                self.input.clear();
                self.output.clear();
                let value = self.get(filter, name, len, data)?;
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
    fn replace(&mut self, filter: &mut Filter, blob: &[u8]) -> Result<(), i32> {
        let h = ipt::replace_header(blob).map_err(|r| r.errno)?;
        if h.name != "filter" {
            return Err(libc::ENOENT);
        }
        let old = current(filter)?;
        let set = match ipt::decode_replace(blob) {
            Ok(s) => s,
            Err(r) => {
                log::info!("filter: iptables table refused: {}", r.why);
                return Err(r.errno);
            }
        };
        if h.num_counters != old.num_entries {
            return Err(libc::EAGAIN);
        }
        self.output = old.counters();
        filter.replace(set);
        log::info!(
            "filter: iptables replaced the table ({} rules)",
            filter.ruleset().rules.len()
        );
        Ok(())
    }

    /// A `getsockopt`, the answer staged as output: the answer's length, or the
    /// call's return value for a revision query.
    fn get(&mut self, filter: &Filter, name: i32, len: u32, head: &[u8]) -> Result<u32, i32> {
        let len = len as usize;
        match name {
            SO_REPLACE_OR_INFO => {
                if len != GETINFO {
                    return Err(libc::EINVAL);
                }
                check_name(head)?;
                let t = current(filter)?;
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
                let t = current(filter)?;
                if t.entries.len() != size {
                    return Err(libc::EAGAIN);
                }
                self.output = t.entries;
                Ok(size as u32)
            }
            SO_REVISION_MATCH | SO_REVISION_TARGET => {
                if len != REVISION || head.len() < REVISION {
                    return Err(libc::EINVAL);
                }
                let end = head[..29].iter().position(|&c| c == 0).unwrap_or(29);
                let n = std::str::from_utf8(&head[..end]).unwrap_or("");
                let best = ipt::best_revision(n, name == SO_REVISION_TARGET).ok_or(libc::ENOENT)?;
                if head[29] > best {
                    return Err(libc::EPROTONOSUPPORT);
                }
                Ok(u32::from(best))
            }
            _ => Err(libc::ENOPROTOOPT),
        }
    }
}

/// The filter's rule set as the `filter` table; a set iptables cannot show
/// (written with `netcell filter`) fails with `EOPNOTSUPP`, said in the log.
fn current(filter: &Filter) -> Result<ipt::Table, i32> {
    let counts: Vec<Count> = filter.list().iter().map(|l| l.count).collect();
    let policy = [
        filter.policy_count(&crate::filter::rules::Chain::Input),
        filter.policy_count(&crate::filter::rules::Chain::Forward),
        filter.policy_count(&crate::filter::rules::Chain::Output),
    ];
    ipt::encode_entries(filter.ruleset(), &counts, &policy).map_err(|e| {
        log::warn!("filter: iptables cannot show the rule set: {}", e.0);
        libc::EOPNOTSUPP
    })
}

/// The table a call names must be `filter` (`ENOENT`, as for a table whose
/// module is not loaded).
fn check_name(head: &[u8]) -> Result<(), i32> {
    let end = head[..32.min(head.len())]
        .iter()
        .position(|&c| c == 0)
        .unwrap_or(32);
    if &head[..end] == b"filter" {
        Ok(())
    } else {
        Err(libc::ENOENT)
    }
}

/// `IPT_SO_SET_ADD_COUNTERS`: `struct xt_counters_info`, one `xt_counters` per
/// entry of the current table, added to the rules and policies they show.
fn add_counters(filter: &mut Filter, b: &[u8]) -> Result<(), i32> {
    if b.len() < GET_HEADER {
        return Err(libc::EINVAL);
    }
    let n = u32::from_ne_bytes([b[32], b[33], b[34], b[35]]) as usize;
    if b.len() != GET_HEADER + n * 16 {
        return Err(libc::EINVAL);
    }
    check_name(b)?;
    let t = current(filter)?;
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
