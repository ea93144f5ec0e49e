#!/usr/bin/env bash
# What the event loop's spin costs in CPU when a program wakes it now and then
# (shim/bench/ticker.c: a datagram to itself every PERIOD µs on the container's
# loopback): netcell's CPU time with the spin (the default) and without
# (NETCELL_SPIN_US=0), for each shim and period. netcell's CPU is the
# container's total (GNU time on `netcell run`, which counts the reaped
# program) less the program's own. No root needed.
#   PERIODS="60 200" SECS=4 shim/bench/spin_cost.sh
set -euo pipefail
PERIODS=${PERIODS:-60 200}
SECS=${SECS:-4}
[ -x /usr/bin/time ] || { echo "spin_cost.sh needs GNU time: apt-get install time" >&2; exit 1; }
cd "$(dirname "$0")/../.."
cargo build --release --quiet -p netcell
NETCELL=$PWD/target/release/netcell
bin=$(mktemp -d)/ticker
trap 'rm -rf "$(dirname "$bin")"' EXIT
cc -O2 -o "$bin" shim/bench/ticker.c
for shim in seccomp preload; do
  for period in $PERIODS; do
    for spin in default 0; do
      env=()
      [ "$spin" = 0 ] && env=(NETCELL_SPIN_US=0)
      out=$( { env "${env[@]}" /usr/bin/time -f "total_cpu_ms %e %U %S" \
        "$NETCELL" run --uplink none --shim "$shim" -- "$bin" "$period" "$SECS"; } 2>&1 )
      own=$(awk '/^rounds/ {print $4}' <<<"$out")
      rounds=$(awk '/^rounds/ {print $2}' <<<"$out")
      total=$(awk '/^total_cpu_ms/ {printf "%d", ($3 + $4) * 1000}' <<<"$out")
      echo "$shim period ${period}us spin $spin: rounds $rounds netcell_cpu_ms $((total - own)) program_cpu_ms $own"
    done
  done
done
