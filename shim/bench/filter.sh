#!/usr/bin/env bash
# What the packet filter and capture cost: iperf3 from the container to a kernel
# peer over a TAP (MTU 1500, both directions), with nothing, with --pcap (to a file
# in $CAPDIR, default /tmp), with a live `netcell capture` into /dev/null, with
# `tcpdump -i eth0 -w /dev/null` running inside the container (its packet socket, served
# by the mirror), and with a
# 100-rule filter (a stateful input policy and 100 rules the traffic does not match,
# so every packet runs them all). Rounds
# alternate the configurations to spread the machine's noise; the ratios are to the
# plain run of the same round.
#
#   netcell filter_plain|filter_pcap|filter_live|filter_tcpdump|filter_rules100 {tx,rx}  Gbit/s
#
# Needs root (a namespace and a TAP device) and iperf3; everything stays inside the
# namespace this script creates and removes.
set -euo pipefail
SHIM=${SHIM:-seccomp}
SECS=${SECS:-5}
ROUNDS=${ROUNDS:-2}
CAPDIR=${CAPDIR:-/tmp}
cd "$(dirname "$0")/../.."
cargo build --release --quiet -p netcell
NETCELL=$PWD/target/release/netcell
ns="ncfbench$$"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work" "$CAPDIR/ncfbench$$.pcapng"
}
trap cleanup EXIT
gbps() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(round(d["end"]["sum_received"]["bits_per_second"]/1e9,3))'; }

{
  echo "policy input drop"
  echo "input ct state established,related accept"
  for p in $(seq 10000 10099); do echo "input tcp dport $p drop"; done
} > "$work/rules100"

ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" tuntap add dev tap0 mode tap
ip -n "$ns" addr add 10.251.0.1/24 dev tap0
ip -n "$ns" link set tap0 up
ip netns exec "$ns" iperf3 -s -p 5201 >/dev/null 2>&1 & pids+=($!)
sleep 0.5
run() { # config direction-flag
  local extra=() name="ncfb$$-$RANDOM"
  case $1 in
    pcap) extra=(--pcap "$CAPDIR/ncfbench$$.pcapng") ;;
    rules100) extra=(--filter "$work/rules100") ;;
  esac
  local cmd="iperf3 -c 10.251.0.1 -p 5201 -t $SECS $2 -J"
  # The live capture attaches while iperf3 waits a moment to start.
  [ "$1" = live ] && cmd="sleep 1; $cmd"
  [ "$1" = tcpdump ] && cmd="tcpdump -i eth0 -w /dev/null 2>/dev/null & t=\$!; sleep 1.5; $cmd; kill \$t"
  ip netns exec "$ns" "$NETCELL" run --name "$name" --runtime-dir "$work" --shim "$SHIM" \
    --tap tap0 --addr 10.251.0.2/24 "${extra[@]}" -- sh -c "$cmd" > "$work/json" &
  local runner=$!
  if [ "$1" = live ]; then
    sleep 0.5
    "$NETCELL" capture "$name" --runtime-dir "$work" -w /dev/null 2>/dev/null &
  fi
  wait $runner
  gbps < "$work/json"
}
out="$work/out"
for r in $(seq "$ROUNDS"); do
  for cfg in plain pcap live tcpdump rules100; do
    for dir in tx rx; do
      flag=""; [ "$dir" = rx ] && flag="-R"
      v=$(run $cfg "$flag")
      echo "netcell filter_$cfg $dir $v Gbit/s round $r" | tee -a "$out"
    done
  done
done
python3 - "$out" <<'PY'
import sys, collections
v = collections.defaultdict(list)
for line in open(sys.argv[1]):
    p = line.split()
    v[(p[1], p[2])].append(float(p[3]))
print("\nmean Gbit/s, and ratio to the plain run:")
for d in ("tx", "rx"):
    base = sum(v[("filter_plain", d)]) / len(v[("filter_plain", d)])
    for cfg in ("filter_plain", "filter_pcap", "filter_live", "filter_tcpdump", "filter_rules100"):
        m = sum(v[(cfg, d)]) / len(v[(cfg, d)])
        print(f"{cfg:16} {d}  {m:6.3f}  {m / base:5.2f}x")
PY
