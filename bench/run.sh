#!/usr/bin/env bash
# netcell's benchmark, one command: netcell in both shim modes against the kernel
# (a veth between namespaces; a namespace's loopback) and slirp4netns, in one run —
# TCP stream both ways at MTU 1500 and 65520, request/response latency
# (percentiles), new connections per second (over the wire and on the container's
# loopback), UDP datagrams per second at 64 and 1400 bytes, in-container loopback
# stream and latency, redis-benchmark, idle memory, 1000 containers at once, 10 000
# connections in one container.
#
#   bench/run.sh            the full run (about 15 minutes): writes
#                           bench/results/DATE.json, DATE.md and DATE-*.png
#                           (BENCH_NAME=NAME: NAME.json, ... instead, for a
#                           second run the same day)
#   bench/run.sh --quick    seconds per figure, fewer of them, results to a
#                           temporary directory; prints the table (CI runs it;
#                           it fails only when a measurement cannot be made,
#                           never on a ratio)
#
# Needs root (namespaces, a TAP), iperf3, sockperf, redis, slirp4netns, a C
# compiler, and python3-matplotlib for the plots. Traffic stays on 127.0.0.1 and
# inside the namespaces it makes and removes.
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=""
[ "${1:-}" = "--quick" ] && QUICK="--quick"
cargo build --release --quiet -p netcell
bins=$(mktemp -d)
trap 'rm -rf "$bins"' EXIT
cc -O2 -o "$bins/connrate" shim/bench/connrate.c
cc -O2 -o "$bins/ctlbench" shim/bench/ctlbench.c
cc -O2 -o "$bins/dgrambench" shim/bench/dgrambench.c
date=${BENCH_NAME:-$(date -u +%Y-%m-%d)}
if [ -n "$QUICK" ]; then out="$bins/results"; else out=bench/results; fi
mkdir -p "$out"
python3 bench/run.py $QUICK --bins "$bins" --netcell "$PWD/target/release/netcell" --out "$bins"
# The plots want matplotlib: Debian's lives with the system python.
py=python3
for p in /usr/bin/python3 python3; do
  if "$p" -c 'import matplotlib' 2>/dev/null; then py=$p; break; fi
done
"$py" bench/report.py "$bins/raw.txt" "$out" "$date" $QUICK
