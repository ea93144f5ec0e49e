#!/usr/bin/env bash
# UDP packet rates and redis throughput, netcell against the kernel in the same run:
#   {netcell,kernel} udp_pps_{64,1400}[_rev]   iperf3 -u, unlimited rate, packets/s received
#   {netcell,kernel} redis_{set,get}           redis-benchmark, server and client together
# netcell: a container on a TAP whose kernel side is in a namespace (UDP), and one
# container's loopback (redis). kernel: two namespaces joined by a veth (UDP), and
# one namespace's loopback (redis). Needs root, iperf3, redis-server, redis-benchmark.
set -euo pipefail
SHIM=${SHIM:-seccomp}   # the shim to measure: seccomp (default) or preload
SECS=${SECS:-5}
cd "$(dirname "$0")/../.."
cargo build --release --quiet -p netcell
NETCELL=$PWD/target/release/netcell
tag="ncu$$"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for n in a b c; do ip netns del "$tag$n" 2>/dev/null || true; done
}
trap cleanup EXIT
pps() { python3 -c 'import json,sys; d=json.load(sys.stdin)["end"]; s=d.get("sum_received") or d["sum"]; print(round((s["packets"]-s.get("lost_packets",0))/s["seconds"]))'; }

# netcell: container eth0 on tap0, kernel peer 10.251.0.1 in namespace c.
ip netns add "${tag}c"; ip -n "${tag}c" link set lo up
ip -n "${tag}c" tuntap add dev tap0 mode tap; ip -n "${tag}c" addr add 10.251.0.1/24 dev tap0; ip -n "${tag}c" link set tap0 up
ip netns exec "${tag}c" iperf3 -s -p 5201 >/dev/null 2>&1 & pids+=($!)
# kernel: veth between a and b.
ip netns add "${tag}a"; ip netns add "${tag}b"
ip link add va netns "${tag}a" type veth peer name vb netns "${tag}b"
ip -n "${tag}a" addr add 10.252.0.1/24 dev va; ip -n "${tag}b" addr add 10.252.0.2/24 dev vb
for n in a b; do ip -n "$tag$n" link set lo up; done
ip -n "${tag}a" link set va up; ip -n "${tag}b" link set vb up
ip netns exec "${tag}a" iperf3 -s -p 5201 >/dev/null 2>&1 & pids+=($!)
sleep 0.5
for len in 64 1400; do
  for dir in "" "-R"; do
    suffix=${dir:+_rev}
    v=$(ip netns exec "${tag}c" "$NETCELL" run --shim "$SHIM" --tap tap0 --addr 10.251.0.2/24 -- iperf3 -c 10.251.0.1 -p 5201 -u -b 0 -l $len -t "$SECS" $dir -J | pps)
    echo "netcell udp_pps_${len}${suffix} $v packets/s"
    v=$(ip netns exec "${tag}b" iperf3 -c 10.252.0.1 -p 5201 -u -b 0 -l $len -t "$SECS" $dir -J | pps)
    echo "kernel udp_pps_${len}${suffix} $v packets/s"
  done
done
rb() { sed -n 's/^"\(SET\|GET\)","\([0-9.]*\)".*/\2/p' | paste -sd' '; }
read -r s g < <("$NETCELL" run --shim "$SHIM" -- sh -c "redis-server --port 6391 --save '' --appendonly no >/dev/null 2>&1 & sleep 0.5; redis-benchmark -p 6391 -q -n 100000 -c 50 -t set,get --csv; redis-cli -p 6391 shutdown nosave >/dev/null 2>&1" | rb)
echo "netcell redis_set $s requests/s"; echo "netcell redis_get $g requests/s"
read -r s g < <(ip netns exec "${tag}a" sh -c "redis-server --port 6391 --save '' --appendonly no >/dev/null 2>&1 & sleep 0.5; redis-benchmark -p 6391 -q -n 100000 -c 50 -t set,get --csv; redis-cli -p 6391 shutdown nosave >/dev/null 2>&1" | rb)
echo "kernel redis_set $s requests/s"; echo "kernel redis_get $g requests/s"
