#!/usr/bin/env bash
# The cost of one intercepted control call: connect+close pairs per second and
# accepts per second on loopback (ctlbench.c), natively on the kernel and in a
# netcell container under each shim, in one run. Lines: peer metric value unit,
# then each shim's ratio to the kernel. Runs on the host's and the containers' own
# loopback only; needs a C compiler, no root.
#   N=20000 ROUNDS=3 shim/bench/control.sh
set -euo pipefail
N=${N:-10000}
ROUNDS=${ROUNDS:-3}
cd "$(dirname "$0")/../.."
cargo build --release --quiet -p netcell
NETCELL=$PWD/target/release/netcell
bin=$(mktemp -d)/ctlbench
trap 'rm -rf "$(dirname "$bin")"' EXIT
cc -O2 -o "$bin" shim/bench/ctlbench.c
out=$(mktemp)
for r in $(seq "$ROUNDS"); do
  "$bin" "$N" | sed 's/^/kernel /' >>"$out"
  "$NETCELL" run --shim preload -- "$bin" "$N" | sed 's/^/preload /' >>"$out"
  "$NETCELL" run --shim seccomp -- "$bin" "$N" | sed 's/^/seccomp /' >>"$out"
done
python3 - "$out" <<'PY'
import statistics, sys
v = {}
for line in open(sys.argv[1]):
    peer, metric, value, unit = line.split()
    v.setdefault((peer, metric), []).append(float(value))
med = {k: statistics.median(x) for k, x in v.items()}
for (peer, metric), x in sorted(med.items()):
    print(f"{peer} {metric} {x:.0f} per_s (median of {len(v[(peer, metric)])})")
print("\nratios to the kernel (higher is better), and the cost per pair:")
for metric in ("connect_close_pairs", "accepts"):
    k = med[("kernel", metric)]
    for shim in ("preload", "seccomp"):
        s = med[(shim, metric)]
        print(f"{shim} {metric} {s / k:.2f}x kernel, {1e6 / s:.1f} us vs {1e6 / k:.1f} us")
PY
