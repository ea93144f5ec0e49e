#!/usr/bin/env bash
# Runs every fuzz target (or those named) for SECONDS each, one after the other,
# with its committed seeds and dictionary; the corpus grows in corpus/TARGET
# (ignored by git), crashes land in artifacts/TARGET. Prints one line per target:
# runs, seconds, corpus size, and whether it crashed. Exit status 1 if any did.
#   fuzz/run.sh 600                  # ten minutes each
#   fuzz/run.sh 20 frames calls      # a smoke of two targets
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
set -uo pipefail
cd "$(dirname "$0")"
SECONDS_EACH=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    mapfile -t TARGETS < <(cargo +nightly fuzz list)
fi
failed=0
summary=()
for t in "${TARGETS[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    seeds=()
    [ -d "seeds/$t" ] && seeds=("seeds/$t")
    dict=()
    [ -f "dicts/$t.dict" ] && dict=("-dict=dicts/$t.dict")
    log=$(mktemp)
    cargo +nightly fuzz run "$t" "corpus/$t" "${seeds[@]}" -- \
        -max_total_time="$SECONDS_EACH" -print_final_stats=1 "${dict[@]}" >"$log" 2>&1
    rc=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    size=$(ls "corpus/$t" | wc -l)
    if [ $rc -ne 0 ]; then
        failed=1
        summary+=("$t: CRASHED after ${runs:-?} runs (see artifacts/$t); log: $log")
        grep -m1 -A5 'panicked\|ERROR: ' "$log" | sed 's/^/    /'
    else
        summary+=("$t: ${runs} runs in ${SECONDS_EACH} s, corpus ${size}, no crash")
        rm -f "$log"
    fi
done
printf '%s\n' "${summary[@]}"
exit $failed
