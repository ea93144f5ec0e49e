#!/usr/bin/env bash
# Line coverage of one fuzz target over its corpus and seeds, as a text report
# of netcell's own files: fuzz/coverage.sh frames
# Needs nightly, cargo-fuzz and the llvm-tools component
# (`rustup component add --toolchain nightly llvm-tools-preview`).
set -euo pipefail
cd "$(dirname "$0")"
t=${1:?usage: fuzz/coverage.sh TARGET}
mkdir -p "corpus/$t"
dirs=("corpus/$t")
[ -d "seeds/$t" ] && dirs+=("seeds/$t")
cargo +nightly fuzz coverage "$t" "${dirs[@]}"
sysroot=$(rustc +nightly --print sysroot)
cov=$(find "$sysroot" -name llvm-cov -type f | head -1)
bin=target/x86_64-unknown-linux-gnu/coverage/x86_64-unknown-linux-gnu/release/$t
"$cov" report "$bin" -instr-profile="coverage/$t/coverage.profdata" \
    --ignore-filename-regex='(\.cargo/registry|/rustc/|fuzz_targets/[a-z_]+\.rs$)'
