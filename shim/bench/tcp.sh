#!/usr/bin/env bash
# netcell's TCP benchmark, in the line format of ../shared/bench/peers.sh:
#   peer  metric  value  unit
# and, with PEERS=path/to/peers.sh, the kernel and slirp4netns figures of the same run
# and netcell's ratio to each.
#
#   netcell tcp_stream_mtu{1500,65520}        container -> kernel peer over the TAP
#   netcell tcp_stream_rev_mtu{1500,65520}    kernel peer -> container
#   netcell tcp_rr_p50                        64-byte ping-pong, container -> kernel peer
#   netcell loopback_stream                   iperf3 client and server in one container
#
# Needs root (a network namespace and a TAP device), iperf3 and sockperf. Everything
# stays inside the namespace this script creates and removes.
set -euo pipefail
SHIM=${SHIM:-seccomp}   # the shim to measure: seccomp (default) or preload
SECS=${SECS:-5}
cd "$(dirname "$0")/../.."
cargo build --release --quiet -p netcell
NETCELL=$PWD/target/release/netcell
ns="ncbench$$"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  ip netns del "$ns" 2>/dev/null || true
}
trap cleanup EXIT
gbps() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(round(d["end"]["sum_received"]["bits_per_second"]/1e9,3))'; }
p50() { sed -n 's/.*percentile 50.000 = *\([0-9.]*\).*/\1/p'; }

ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" tuntap add dev tap0 mode tap
ip -n "$ns" addr add 10.250.0.1/24 dev tap0
ip -n "$ns" link set tap0 up
ip netns exec "$ns" iperf3 -s -p 5201 >/dev/null 2>&1 & pids+=($!)
ip netns exec "$ns" sockperf server --tcp -i 10.250.0.1 -p 11111 >/dev/null 2>&1 & pids+=($!)
sleep 0.5
out=$(mktemp)
for mtu in 1500 65520; do
  ip -n "$ns" link set tap0 mtu $mtu
  ip netns exec "$ns" "$NETCELL" run --shim "$SHIM" --tap tap0 --addr 10.250.0.2/24 --gateway 10.250.0.1 --mtu $mtu -- \
    iperf3 -c 10.250.0.1 -p 5201 -t "$SECS" -J | gbps | sed "s/^/netcell tcp_stream_mtu$mtu /; s/$/ Gbit\/s/" | tee -a "$out"
  ip netns exec "$ns" "$NETCELL" run --shim "$SHIM" --tap tap0 --addr 10.250.0.2/24 --gateway 10.250.0.1 --mtu $mtu -- \
    iperf3 -c 10.250.0.1 -p 5201 -t "$SECS" -R -J | gbps | sed "s/^/netcell tcp_stream_rev_mtu$mtu /; s/$/ Gbit\/s/" | tee -a "$out"
done
ip netns exec "$ns" "$NETCELL" run --shim "$SHIM" --tap tap0 --addr 10.250.0.2/24 --gateway 10.250.0.1 --mtu 65520 -- \
  sockperf ping-pong --tcp -i 10.250.0.1 -p 11111 -t "$SECS" -m 64 2>&1 | p50 | sed 's/^/netcell tcp_rr_p50 /; s/$/ us/' | tee -a "$out"
"$NETCELL" run --shim "$SHIM" -- sh -c "iperf3 -s -1 -p 5202 >/dev/null 2>&1 & sleep 0.3; iperf3 -c 127.0.0.1 -p 5202 -t $SECS -J" | gbps \
  | sed 's/^/netcell loopback_stream /; s/$/ Gbit\/s/' | tee -a "$out"

if [ -n "${PEERS:-}" ]; then
  SECS=$SECS bash "$PEERS" | tee -a "$out"
  python3 - "$out" <<'PY'
import sys
v = {}
for line in open(sys.argv[1]):
    p = line.split()
    if len(p) == 4:
        v[(p[0], p[1])] = float(p[2])
print("\nratios (netcell / peer; for tcp_rr_p50 lower is better):")
for (peer, metric), x in sorted(v.items()):
    if peer != "netcell": continue
    base = metric.replace("_rev", "")
    for other in ("kernel", "slirp"):
        if (other, base) in v and v[(other, base)]:
            print(f"  {metric:24s} vs {other:6s} {x / v[(other, base)]:.2f}")
PY
fi
rm -f "$out"
