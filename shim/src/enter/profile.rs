//! An OCI seccomp profile (`linux.seccomp` of a bundle's `config.json`) made
//! into the BPF program a runtime would install from it, for the programs
//! `netcell exec` starts in an OCI container.
//!
//! A runtime's `exec` installs the container's profile again in every process it
//! starts (the kernel offers no way to attach an existing filter to another
//! process); netcell does the same, so that an exec'd program is held by the
//! same syscall rules as the container's own — and its `SCMP_ACT_NOTIFY` rules
//! reach netcell through the new filter's listener.
//!
//! The program, for x86-64 (the only architecture netcell's profile names):
//!
//! - another architecture, or an x32 call, kills the process (a filter of
//!   libseccomp for x86-64 alone refuses them too; nothing runs there);
//! - each named call jumps to its own code: an unconditional rule's action, or
//!   its conditional rules in turn (64-bit comparisons, every argument of a rule
//!   must hold), the most restrictive first, then the default action. libseccomp
//!   refuses overlapping conditional rules of different actions and drops
//!   conditional rules next to an unconditional one; "most restrictive first"
//!   gives the same result on every profile it accepts, and the safe one on
//!   those it would not;
//! - any other call gets `defaultAction`.
//!
//! As crun and runc build their filters: a rule whose action is the default is
//! skipped, and a rule comparing one argument more than once becomes one rule
//! per comparison. Names this table does not know (calls of a newer kernel) are
//! skipped, as runtimes do.

use super::names::X86_64 as NAMES;
use libc::sock_filter;
use serde_json::Value;
use std::collections::BTreeMap;

const ARCH_X86_64: u32 = 0xC000_003E;
const X32_BIT: u32 = 0x4000_0000;
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;

const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_KILL_THREAD: u32 = 0;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_USER_NOTIF: u32 = 0x7fc0_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

/// Why a profile cannot be made into a filter.
#[derive(Debug, PartialEq, Eq)]
pub enum ProfileError {
    /// A field is missing or of the wrong type: its path and what it holds.
    Field(String),
    /// An action name no runtime knows.
    Action(String),
    /// A comparison operator no runtime knows.
    Operator(String),
    /// An argument index past 5.
    ArgIndex(u64),
    /// The program would be longer than the kernel takes (4096 instructions).
    TooLong(usize),
}

impl std::fmt::Display for ProfileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProfileError::Field(w) => write!(f, "seccomp profile: {w}"),
            ProfileError::Action(a) => write!(f, "seccomp profile: unknown action {a:?}"),
            ProfileError::Operator(o) => write!(f, "seccomp profile: unknown operator {o:?}"),
            ProfileError::ArgIndex(i) => {
                write!(f, "seccomp profile: argument index {i} (0 to 5)")
            }
            ProfileError::TooLong(n) => write!(
                f,
                "seccomp profile: {n} BPF instructions, more than the kernel's 4096"
            ),
        }
    }
}

/// A comparison of one argument, as OCI profiles write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    /// `(arg & mask) == value`.
    MaskedEq,
}

#[derive(Debug, Clone, Copy)]
struct ArgTest {
    index: u32,
    op: Cmp,
    value: u64,
    value_two: u64,
}

#[derive(Debug, Clone)]
struct Rule {
    ret: u32,
    args: Vec<ArgTest>,
}

/// How restrictive a return value is: the kernel's own order of precedence.
fn severity(ret: u32) -> u32 {
    match ret & 0xffff_0000 {
        RET_KILL_PROCESS => 7,
        RET_KILL_THREAD => 6,
        RET_TRAP => 5,
        RET_ERRNO => 4,
        RET_USER_NOTIF => 3,
        RET_TRACE => 2,
        RET_LOG => 1,
        _ => 0,
    }
}

fn action(name: &str, errno: Option<u32>) -> Result<u32, ProfileError> {
    Ok(match name {
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => RET_KILL_THREAD,
        "SCMP_ACT_KILL_PROCESS" => RET_KILL_PROCESS,
        "SCMP_ACT_TRAP" => RET_TRAP,
        "SCMP_ACT_ERRNO" => RET_ERRNO | (errno.unwrap_or(libc::EPERM as u32) & 0xffff),
        "SCMP_ACT_TRACE" => RET_TRACE | (errno.unwrap_or(0) & 0xffff),
        "SCMP_ACT_LOG" => RET_LOG,
        "SCMP_ACT_ALLOW" => RET_ALLOW,
        "SCMP_ACT_NOTIFY" => RET_USER_NOTIF,
        other => return Err(ProfileError::Action(other.to_string())),
    })
}

fn op(name: &str) -> Result<Cmp, ProfileError> {
    Ok(match name {
        "SCMP_CMP_NE" => Cmp::Ne,
        "SCMP_CMP_LT" => Cmp::Lt,
        "SCMP_CMP_LE" => Cmp::Le,
        "SCMP_CMP_EQ" => Cmp::Eq,
        "SCMP_CMP_GE" => Cmp::Ge,
        "SCMP_CMP_GT" => Cmp::Gt,
        "SCMP_CMP_MASKED_EQ" => Cmp::MaskedEq,
        other => return Err(ProfileError::Operator(other.to_string())),
    })
}

fn field(what: impl Into<String>) -> ProfileError {
    ProfileError::Field(what.into())
}

/// The x86-64 number of call `name`.
pub fn number(name: &str) -> Option<u32> {
    NAMES.iter().find(|(n, _)| *n == name).map(|&(_, nr)| nr)
}

/// The filter of `profile` (the value of `linux.seccomp`), and whether any of
/// its rules (or its default) notifies.
pub fn compile(profile: &Value) -> Result<(Vec<sock_filter>, bool), ProfileError> {
    let errno_of = |v: &Value, path: &str| -> Result<Option<u32>, ProfileError> {
        match v.get("errnoRet").or_else(|| v.get("defaultErrnoRet")) {
            None | Some(Value::Null) => Ok(None),
            Some(e) => e
                .as_u64()
                .filter(|&e| e <= 0xffff)
                .map(|e| Some(e as u32))
                .ok_or_else(|| field(format!("{path}.errnoRet is {e}, not an errno"))),
        }
    };
    let default_name = profile
        .get("defaultAction")
        .and_then(Value::as_str)
        .ok_or_else(|| field("defaultAction is missing or not a string"))?;
    let default = action(default_name, errno_of(profile, "")?)?;
    let mut by_call: BTreeMap<u32, Vec<Rule>> = BTreeMap::new();
    let empty = Vec::new();
    let syscalls = match profile.get("syscalls") {
        None | Some(Value::Null) => &empty,
        Some(v) => v
            .as_array()
            .ok_or_else(|| field("syscalls is not a list"))?,
    };
    for (i, r) in syscalls.iter().enumerate() {
        let path = format!("syscalls[{i}]");
        let act = r
            .get("action")
            .and_then(Value::as_str)
            .ok_or_else(|| field(format!("{path}.action is missing")))?;
        let ret = action(act, errno_of(r, &path)?)?;
        let mut args = Vec::new();
        if let Some(list) = r.get("args").filter(|a| !a.is_null()) {
            let list = list
                .as_array()
                .ok_or_else(|| field(format!("{path}.args is not a list")))?;
            for (j, a) in list.iter().enumerate() {
                let num = |k: &str| a.get(k).and_then(Value::as_u64);
                let optional = |k: &str| match a.get(k) {
                    None | Some(Value::Null) => Ok(0),
                    Some(v) => v.as_u64().ok_or_else(|| {
                        field(format!("{path}.args[{j}].{k} is {v}, not a 64-bit number"))
                    }),
                };
                let index = num("index")
                    .ok_or_else(|| field(format!("{path}.args[{j}].index is missing")))?;
                if index > 5 {
                    return Err(ProfileError::ArgIndex(index));
                }
                let o = a
                    .get("op")
                    .and_then(Value::as_str)
                    .ok_or_else(|| field(format!("{path}.args[{j}].op is missing")))?;
                args.push(ArgTest {
                    index: index as u32,
                    op: op(o)?,
                    value: optional("value")?,
                    value_two: optional("valueTwo")?,
                });
            }
        }
        let names: Vec<&str> = match (r.get("names"), r.get("name")) {
            (Some(Value::Array(ns)), _) => ns.iter().filter_map(Value::as_str).collect(),
            (_, Some(Value::String(n))) => vec![n.as_str()],
            _ => return Err(field(format!("{path} names no call"))),
        };
        // As crun and runc: a rule doing what the default does is no rule (it
        // must not hide the call's other rules), and comparisons that repeat an
        // argument are separate rules (either matching applies), not one.
        if ret == default {
            continue;
        }
        let repeats = args
            .iter()
            .enumerate()
            .any(|(k, a)| args[..k].iter().any(|b| b.index == a.index));
        let rules: Vec<Vec<ArgTest>> = if repeats {
            args.iter().map(|a| vec![*a]).collect()
        } else {
            vec![args]
        };
        for n in names {
            match number(n) {
                Some(nr) => by_call
                    .entry(nr)
                    .or_default()
                    .extend(rules.iter().map(|args| Rule {
                        ret,
                        args: args.clone(),
                    })),
                None => log::debug!("seccomp profile: call {n:?} unknown here, skipped"),
            }
        }
    }
    let notifies = severity(default) == severity(RET_USER_NOTIF)
        || by_call
            .values()
            .flatten()
            .any(|r| r.ret & 0xffff_0000 == RET_USER_NOTIF);
    let prog = assemble(default, &by_call)?;
    Ok((prog, notifies))
}

// ---- the assembler ---------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Label(usize);

enum Ins {
    Stmt(u16, u32),
    /// A conditional jump (8-bit offsets: targets must be near).
    Jump(u16, u32, Label, Label),
    /// An unconditional jump (32-bit offset).
    Always(Label),
    At(Label),
}

#[derive(Default)]
struct Asm {
    code: Vec<Ins>,
    labels: usize,
}

const LD_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGT: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const AND: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

impl Asm {
    fn label(&mut self) -> Label {
        self.labels += 1;
        Label(self.labels - 1)
    }
    fn at(&mut self, l: Label) {
        self.code.push(Ins::At(l));
    }
    fn ld(&mut self, off: u32) {
        self.code.push(Ins::Stmt(LD_ABS, off));
    }
    fn ret(&mut self, v: u32) {
        self.code.push(Ins::Stmt(RET, v));
    }
    fn jump(&mut self, code: u16, k: u32, t: Label, f: Label) {
        self.code.push(Ins::Jump(code, k, t, f));
    }

    /// Falls through when argument test `a` holds, jumps to `fail` otherwise.
    fn test(&mut self, a: &ArgTest, fail: Label) {
        let (hi, lo) = (16 + 8 * a.index + 4, 16 + 8 * a.index);
        let pass = self.label();
        let low = self.label();
        let (vh, vl) = ((a.value >> 32) as u32, a.value as u32);
        self.ld(hi);
        match a.op {
            Cmp::Eq | Cmp::Ne => {
                let (t, f) = if a.op == Cmp::Eq {
                    (pass, fail)
                } else {
                    (fail, pass)
                };
                self.jump(JEQ, vh, low, f);
                self.at(low);
                self.ld(lo);
                self.jump(JEQ, vl, t, f);
            }
            Cmp::MaskedEq => {
                let (dh, dl) = ((a.value_two >> 32) as u32, a.value_two as u32);
                self.code.push(Ins::Stmt(AND, vh));
                self.jump(JEQ, dh, low, fail);
                self.at(low);
                self.ld(lo);
                self.code.push(Ins::Stmt(AND, vl));
                self.jump(JEQ, dl, pass, fail);
            }
            Cmp::Gt | Cmp::Ge | Cmp::Lt | Cmp::Le => {
                // GT/GE: high above, or high equal and low above (or equal);
                // LT/LE are their negations (not GE, not GT).
                let strict = matches!(a.op, Cmp::Gt | Cmp::Le);
                let (yes, no) = if matches!(a.op, Cmp::Gt | Cmp::Ge) {
                    (pass, fail)
                } else {
                    (fail, pass)
                };
                let equal_high = self.label();
                self.jump(JGT, vh, yes, equal_high);
                self.at(equal_high);
                self.jump(JEQ, vh, low, no);
                self.at(low);
                self.ld(lo);
                self.jump(if strict { JGT } else { JGE }, vl, yes, no);
            }
        }
        self.at(pass);
    }

    /// Resolves the labels.
    fn finish(self) -> Result<Vec<sock_filter>, ProfileError> {
        let mut pos = vec![usize::MAX; self.labels];
        let mut n = 0;
        for i in &self.code {
            match i {
                Ins::At(l) => pos[l.0] = n,
                _ => n += 1,
            }
        }
        if n > 4096 {
            return Err(ProfileError::TooLong(n));
        }
        let mut out = Vec::with_capacity(n);
        for i in &self.code {
            let here = out.len();
            let off = |l: &Label| pos[l.0] - (here + 1);
            match i {
                Ins::At(_) => continue,
                Ins::Stmt(code, k) => out.push(sock_filter {
                    code: *code,
                    jt: 0,
                    jf: 0,
                    k: *k,
                }),
                Ins::Always(l) => out.push(sock_filter {
                    code: (libc::BPF_JMP | libc::BPF_JA) as u16,
                    jt: 0,
                    jf: 0,
                    k: off(l) as u32,
                }),
                Ins::Jump(code, k, t, f) => {
                    let (t, f) = (off(t), off(f));
                    // Conditional targets are always within a rule's few
                    // instructions; a longer one would be a bug here.
                    if t > 255 || f > 255 {
                        return Err(ProfileError::TooLong(n));
                    }
                    out.push(sock_filter {
                        code: *code,
                        jt: t as u8,
                        jf: f as u8,
                        k: *k,
                    });
                }
            }
        }
        Ok(out)
    }
}

fn assemble(
    default: u32,
    by_call: &BTreeMap<u32, Vec<Rule>>,
) -> Result<Vec<sock_filter>, ProfileError> {
    let mut a = Asm::default();
    let (other_arch, x64, x32, native) = (a.label(), a.label(), a.label(), a.label());
    a.ld(OFF_ARCH);
    a.jump(JEQ, ARCH_X86_64, x64, other_arch);
    a.at(other_arch);
    a.ret(RET_KILL_PROCESS);
    a.at(x64);
    a.ld(OFF_NR);
    a.jump(JGE, X32_BIT, x32, native);
    a.at(x32);
    a.ret(RET_KILL_PROCESS);
    a.at(native);
    // The dispatch: one comparison per call, a long jump to its code.
    let bodies: Vec<(u32, Label)> = by_call.keys().map(|&nr| (nr, a.label())).collect();
    for &(nr, body) in &bodies {
        let next = a.label();
        let go = a.label();
        a.jump(JEQ, nr, go, next);
        a.at(go);
        a.code.push(Ins::Always(body));
        a.at(next);
    }
    a.ret(default);
    for (nr, body) in bodies {
        a.at(body);
        let rules = &by_call[&nr];
        let unconditional = rules
            .iter()
            .filter(|r| r.args.is_empty())
            .max_by_key(|r| severity(r.ret));
        if let Some(r) = unconditional {
            a.ret(r.ret);
            continue;
        }
        let mut ordered: Vec<&Rule> = rules.iter().collect();
        ordered.sort_by_key(|r| std::cmp::Reverse(severity(r.ret)));
        for r in ordered {
            let next = a.label();
            for t in &r.args {
                a.test(t, next);
            }
            a.ret(r.ret);
            a.at(next);
        }
        a.ret(default);
    }
    a.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A classic-BPF interpreter of the instructions the assembler emits.
    fn eval(prog: &[sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_ne_bytes());
        data[4..8].copy_from_slice(&arch.to_ne_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
        }
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = prog[pc];
            pc += 1;
            match i.code {
                LD_ABS => {
                    let k = i.k as usize;
                    acc = u32::from_ne_bytes(data[k..k + 4].try_into().unwrap());
                }
                AND => acc &= i.k,
                RET => return i.k,
                c if c == (libc::BPF_JMP | libc::BPF_JA) as u16 => pc += i.k as usize,
                c => {
                    let hit = match c {
                        JEQ => acc == i.k,
                        JGT => acc > i.k,
                        JGE => acc >= i.k,
                        _ => panic!("unexpected instruction {c:#x}"),
                    };
                    pc += usize::from(if hit { i.jt } else { i.jf });
                }
            }
        }
    }

    fn nr(n: &str) -> u32 {
        number(n).unwrap()
    }

    #[test]
    fn actions_arguments_and_architectures() {
        let p = json!({
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
            "syscalls": [
                {"names": ["read", "write", "no_such_call"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["socket"], "action": "SCMP_ACT_NOTIFY"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0xffff_ffffu64, "op": "SCMP_CMP_EQ"}]},
                {"names": ["ioctl"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 1, "value": 0x8900, "op": "SCMP_CMP_LT"}]},
                {"names": ["ioctl"], "action": "SCMP_ACT_NOTIFY",
                 "args": [{"index": 1, "value": 0xffff_ff00u64, "valueTwo": 0x8900, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["kill"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_NE"},
                          {"index": 0, "value": 100, "op": "SCMP_CMP_GT"}]},
                {"names": ["mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"names": ["mount"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_NE"}]}
            ]
        });
        let (prog, notifies) = compile(&p).unwrap();
        assert!(notifies);
        let x = |n: &str, args: [u64; 6]| eval(&prog, ARCH_X86_64, nr(n), args);
        let z = [0u64; 6];
        assert_eq!(x("read", z), RET_ALLOW);
        assert_eq!(x("socket", z), RET_USER_NOTIF);
        assert_eq!(x("close", z), RET_ERRNO | 38);
        assert_eq!(x("personality", [8, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(x("personality", [0xffff_ffff, 0, 0, 0, 0, 0]), RET_ALLOW);
        // 64-bit: the high half counts.
        assert_eq!(
            x("personality", [(1 << 32) | 8, 0, 0, 0, 0, 0]),
            RET_ERRNO | 38
        );
        assert_eq!(x("ioctl", [0, 0x5401, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(x("ioctl", [0, 0x8912, 0, 0, 0, 0]), RET_USER_NOTIF);
        assert_eq!(
            x("ioctl", [0, (1 << 32) | 0x8912, 0, 0, 0, 0]),
            RET_USER_NOTIF
        );
        assert_eq!(x("ioctl", [0, 0x8a00, 0, 0, 0, 0]), RET_ERRNO | 38);
        assert_eq!(x("kill", [101, 15, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(x("kill", [101, 9, 0, 0, 0, 0]), RET_ERRNO | 38);
        assert_eq!(x("kill", [100, 15, 0, 0, 0, 0]), RET_ERRNO | 38);
        assert_eq!(x("kill", [1 << 40, 15, 0, 0, 0, 0]), RET_ALLOW);
        // An unconditional rule decides (libseccomp drops the conditional one).
        assert_eq!(x("mount", [5, 0, 0, 0, 0, 0]), RET_ERRNO | 1);
        // Other architectures and x32 calls are killed.
        assert_eq!(eval(&prog, 0x4000_0003, 3, z), RET_KILL_PROCESS);
        assert_eq!(eval(&prog, ARCH_X86_64, X32_BIT | 1, z), RET_KILL_PROCESS);
    }

    /// Found by review, checked against libseccomp: a rule with the default's
    /// action must not hide the call's other rules, and two comparisons of one
    /// argument are either-or.
    #[test]
    fn rules_as_crun_builds_them() {
        let p = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": 5, "op": "SCMP_CMP_EQ"}]},
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 1, "value": 5, "op": "SCMP_CMP_EQ"},
                      {"index": 1, "value": 6, "op": "SCMP_CMP_EQ"}]}]});
        let (prog, _) = compile(&p).unwrap();
        let x = |n: &str, a0: u64, a1: u64| eval(&prog, ARCH_X86_64, nr(n), [a0, a1, 0, 0, 0, 0]);
        assert_eq!(x("personality", 5, 0), RET_ERRNO | 1);
        assert_eq!(x("personality", 4, 0), RET_ALLOW);
        assert_eq!(x("kill", 0, 5), RET_ERRNO | 1);
        assert_eq!(x("kill", 0, 6), RET_ERRNO | 1);
        assert_eq!(x("kill", 0, 7), RET_ALLOW);
    }

    #[test]
    fn comparisons_hold_at_their_edges() {
        for (op, v, cases) in [
            (
                "SCMP_CMP_LT",
                1u64 << 33,
                [
                    ((1u64 << 33) - 1, true),
                    (1 << 33, false),
                    (u64::MAX, false),
                ],
            ),
            (
                "SCMP_CMP_LE",
                1 << 33,
                [(1 << 33, true), ((1 << 33) + 1, false), (0, true)],
            ),
            (
                "SCMP_CMP_GE",
                1 << 33,
                [(1 << 33, true), ((1 << 33) - 1, false), (u64::MAX, true)],
            ),
            ("SCMP_CMP_GT", 5, [(5, false), (6, true), (1 << 32, true)]),
        ] {
            let p = json!({"defaultAction": "SCMP_ACT_KILL_PROCESS", "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 2, "value": v, "op": op}]}]});
            let (prog, notifies) = compile(&p).unwrap();
            assert!(!notifies);
            for (arg, allowed) in cases {
                let got = eval(&prog, ARCH_X86_64, nr("read"), [0, 0, arg, 0, 0, 0]);
                let want = if allowed { RET_ALLOW } else { RET_KILL_PROCESS };
                assert_eq!(got, want, "{op} {v:#x} on {arg:#x}");
            }
        }
    }

    #[test]
    fn netcell_s_own_profile_compiles_and_notifies_socket_calls() {
        let p = crate::oci::profile_json(None, std::path::Path::new("/x")).unwrap();
        let (prog, notifies) = compile(&p).unwrap();
        assert!(notifies && prog.len() < 4096);
        let z = [0u64; 6];
        assert_eq!(eval(&prog, ARCH_X86_64, nr("connect"), z), RET_USER_NOTIF);
        assert_eq!(
            eval(&prog, ARCH_X86_64, nr("socket"), [2, 1, 0, 0, 0, 0]),
            RET_USER_NOTIF
        );
        assert_eq!(eval(&prog, ARCH_X86_64, nr("read"), z), RET_ALLOW);
        assert_eq!(
            eval(&prog, ARCH_X86_64, nr("ioctl"), [0, 0x8913, 0, 0, 0, 0]),
            RET_USER_NOTIF
        );
        assert_eq!(
            eval(&prog, ARCH_X86_64, nr("ioctl"), [0, 0x5401, 0, 0, 0, 0]),
            RET_ALLOW
        );
    }

    #[test]
    fn bad_profiles_say_what_is_wrong() {
        let bad = [
            (json!({}), "defaultAction"),
            (json!({"defaultAction": "SCMP_ACT_NOPE"}), "SCMP_ACT_NOPE"),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"]}]}),
                "syscalls[0].action",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                  "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
                "index 9",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                  "args": [{"index": 1, "value": 1, "op": "SCMP_CMP_LIKE"}]}]}),
                "SCMP_CMP_LIKE",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}),
                "errnoRet is 70000",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                  "args": [{"index": 1, "value": "5", "op": "SCMP_CMP_EQ"}]}]}),
                "args[0].value is \"5\"",
            ),
        ];
        for (p, want) in bad {
            let e = compile(&p).unwrap_err().to_string();
            assert!(e.contains(want), "{p}: {e}");
        }
    }
}
