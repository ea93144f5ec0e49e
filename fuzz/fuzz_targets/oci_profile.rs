//! An OCI seccomp profile made into BPF for `netcell exec` into an OCI
//! container (`shim/src/enter/profile.rs`, compiled here as is), from any JSON.
//!
//! Invariants: nothing panics; a compiled program fits the kernel (at most
//! 4096 instructions), every jump lands inside it, it ends every path in a
//! return, and run on sample calls it returns a known action: the kernel
//! would take it, and it does what it says.

#![no_main]

#[path = "../../shim/src/enter"]
mod enter {
    pub mod names;
    #[allow(dead_code)]
    pub mod profile;
}

use libfuzzer_sys::fuzz_target;

fn run(prog: &[libc::sock_filter], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_ne_bytes());
    data[4..8].copy_from_slice(&arch.to_ne_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
    }
    let (mut pc, mut acc) = (0usize, 0u32);
    for _ in 0..=prog.len() {
        let i = prog[pc];
        pc += 1;
        match u32::from(i.code) {
            c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => {
                let k = i.k as usize;
                assert!(k + 4 <= 64 && k % 4 == 0, "load at {k}");
                acc = u32::from_ne_bytes(data[k..k + 4].try_into().unwrap());
            }
            c if c == libc::BPF_ALU | libc::BPF_AND | libc::BPF_K => acc &= i.k,
            c if c == libc::BPF_RET | libc::BPF_K => return i.k,
            c if c == libc::BPF_JMP | libc::BPF_JA => pc += i.k as usize,
            c => {
                let hit = match c & !libc::BPF_K {
                    x if x == libc::BPF_JMP | libc::BPF_JEQ => acc == i.k,
                    x if x == libc::BPF_JMP | libc::BPF_JGT => acc > i.k,
                    x if x == libc::BPF_JMP | libc::BPF_JGE => acc >= i.k,
                    _ => panic!("instruction {c:#x}"),
                };
                pc += usize::from(if hit { i.jt } else { i.jf });
            }
        }
        assert!(pc < prog.len(), "a jump or fall-through past the end");
    }
    panic!("no return after {} steps (a loop)", prog.len() + 1);
}

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok((prog, _)) = enter::profile::compile(&v) else {
        return;
    };
    assert!(!prog.is_empty() && prog.len() <= 4096);
    let known = [0x8000_0000u32, 0, 0x0003_0000, 0x0005_0000, 0x7fc0_0000, 0x7ff0_0000, 0x7ffc_0000, 0x7fff_0000];
    let seed = data.iter().fold(0u64, |h, &b| h.rotate_left(5) ^ u64::from(b));
    for (k, &(_, nr)) in enter::names::X86_64.iter().enumerate().step_by(7) {
        let a = seed.wrapping_mul(k as u64 + 1);
        let ret = run(&prog, nr, 0xC000_003E, [a, a >> 7, 0x8912, a.rotate_left(32), 0, 1]);
        assert!(known.contains(&(ret & 0xffff_0000)), "return {ret:#x}");
    }
    // Other architectures and x32 are killed.
    assert_eq!(run(&prog, 1, 0x4000_0003, [0; 6]), 0x8000_0000);
    assert_eq!(run(&prog, 0x4000_0001, 0xC000_003E, [0; 6]), 0x8000_0000);
});
