//! `iptables`' socket options (`IPT_SO_*` at `SOL_IP`), whose values can be
//! megabytes: moved between the program's memory and the stack in pieces (the
//! steps of `Request::Table`, see `netcell_proto::table_steps`). What they mean
//! is the stack's (its `control::table` module); here are only the sizes Linux
//! checks before it reads and where the answers go.

use super::{Done, Fail, Memory, Service, SetDone, errno_or};
use netcell_proto::{MAX_TABLE, Request, TABLE_PIECE, table_steps};

/// `IPT_SO_SET_REPLACE`, `IPT_SO_GET_INFO`.
const REPLACE_OR_INFO: i32 = 64;
/// `IPT_SO_SET_ADD_COUNTERS`, `IPT_SO_GET_ENTRIES`.
const COUNTERS_OR_ENTRIES: i32 = 65;
/// `IPT_SO_GET_REVISION_TARGET`, the last of iptables'.
const REVISION_TARGET: i32 = 67;
/// `IP6T_SO_GET_REVISION_MATCH` and `_TARGET`.
const REVISION6: [i32; 2] = [68, 69];
/// Where an `ipt_replace` says where the old counters go: `num_counters`, then
/// the pointer.
const COUNTERS_AT: usize = 88;
/// `sizeof(struct ipt_get_entries)` up to its entries.
const ENTRIES_AT: u64 = 40;

/// Whether `(level, name)` is one of iptables' (or ip6tables') table calls.
pub fn is_table_option(level: i32, name: i32) -> bool {
    (level == libc::SOL_IP && (REPLACE_OR_INFO..=REVISION_TARGET).contains(&name))
        || (level == libc::SOL_IPV6
            && (name == REPLACE_OR_INFO
                || name == COUNTERS_OR_ENTRIES
                || REVISION6.contains(&name)))
}

fn step<R>(
    svc: &mut impl Service,
    ino: u64,
    req: Request<'_>,
    f: impl FnOnce(u32, &[u8]) -> R,
) -> Result<Option<R>, Fail> {
    svc.ask(ino, &req, |r| errno_or(r, |r| f(r.value, r.data)))?
}

/// A table `setsockopt`: its value put in pieces, then carried out; the old
/// counters of a replace written where the value says.
pub fn set(
    mem: &impl Memory,
    svc: &mut impl Service,
    ino: u64,
    (level, name): (i32, i32),
    val: u64,
    len: u32,
) -> Result<SetDone, Fail> {
    let len = len as usize;
    if len > MAX_TABLE {
        return Err(Fail::Errno(libc::ENOMEM));
    }
    let mut piece = vec![0u8; len.clamp(1, TABLE_PIECE)];
    let mut counters_ptr = 0u64;
    let mut off = 0;
    loop {
        let n = (len - off).min(TABLE_PIECE);
        mem.read(val + off as u64, &mut piece[..n])?;
        if off == 0 && n >= COUNTERS_AT + 8 {
            counters_ptr = u64::from_ne_bytes(
                piece[COUNTERS_AT..COUNTERS_AT + 8]
                    .try_into()
                    .unwrap_or_default(),
            );
        }
        let put = Request::Table {
            step: table_steps::PUT,
            level,
            name,
            offset: off as u32,
            len: len as u32,
            data: &piece[..n],
        };
        if step(svc, ino, put, |_, _| ())?.is_none() {
            return Ok(SetDone::Native);
        }
        off += n;
        if off >= len {
            break;
        }
    }
    let carry = Request::Table {
        step: table_steps::SET,
        level,
        name,
        offset: 0,
        len: 0,
        data: &[],
    };
    let Some(out) = step(svc, ino, carry, |v, _| v as usize)? else {
        return Ok(SetDone::Native);
    };
    if name == REPLACE_OR_INFO && out > 0 {
        read_out(svc, ino, (level, name), 0, out, |at, b| {
            mem.write(counters_ptr + at, b)
        })?;
    }
    Ok(SetDone::Done)
}

/// Reads the staged answer from `from` to `total`, handing each piece to `put`
/// with its offset.
fn read_out(
    svc: &mut impl Service,
    ino: u64,
    (level, name): (i32, i32),
    mut from: usize,
    total: usize,
    mut put: impl FnMut(u64, &[u8]) -> Result<(), Fail>,
) -> Result<(), Fail> {
    while from < total {
        let req = Request::Table {
            step: table_steps::READ,
            level,
            name,
            offset: from as u32,
            len: (total - from) as u32,
            data: &[],
        };
        let mut buf = [0u8; netcell_proto::MAX_MESSAGE];
        let n = step(svc, ino, req, |_, d| {
            let n = d.len().min(buf.len());
            buf[..n].copy_from_slice(&d[..n]);
            n
        })?
        .unwrap_or(0);
        if n == 0 {
            return Err(Fail::Errno(libc::EAGAIN));
        }
        put(from as u64, &buf[..n])?;
        from += n;
    }
    Ok(())
}

/// A table `getsockopt`: the answer written to the program (the table's info at
/// `val`, its entries after the `ipt_get_entries` header), or a revision query's
/// return value.
pub fn get(
    mem: &impl Memory,
    svc: &mut impl Service,
    ino: u64,
    (level, name): (i32, i32),
    val: u64,
    lenp: u64,
) -> Result<Done, Fail> {
    if lenp == 0 {
        return Err(Fail::Errno(libc::EFAULT));
    }
    let want = mem.read_u32(lenp)? as i32;
    if want < 0 {
        return Err(Fail::Errno(libc::EINVAL));
    }
    // The fixed part the kernel reads: the table's name, the entries' size, the
    // extension's name and revision.
    let head_len = match name {
        REPLACE_OR_INFO => 32,
        COUNTERS_OR_ENTRIES => ENTRIES_AT as usize,
        _ => 30,
    };
    let mut head = [0u8; ENTRIES_AT as usize];
    let h = &mut head[..head_len.min(want as usize)];
    if !h.is_empty() {
        mem.read(val, h)?;
    }
    let req = Request::Table {
        step: table_steps::GET,
        level,
        name,
        offset: 0,
        len: want as u32,
        data: h,
    };
    let mut first = [0u8; netcell_proto::MAX_MESSAGE];
    let Some((value, n)) = step(svc, ino, req, |v, d| {
        let n = d.len().min(first.len());
        first[..n].copy_from_slice(&d[..n]);
        (v, n)
    })?
    else {
        return Ok(Done::Native);
    };
    let at = match name {
        REPLACE_OR_INFO => val,
        COUNTERS_OR_ENTRIES => val + ENTRIES_AT,
        _ => return Ok(Done::Value(i64::from(value))),
    };
    mem.write(at, &first[..n])?;
    read_out(svc, ino, (level, name), n, value as usize, |off, b| {
        mem.write(at + off, b)
    })?;
    Ok(Done::Value(0))
}
