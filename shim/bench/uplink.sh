#!/usr/bin/env bash
# Through the host uplink, against the same programs without netcell and through
# slirp4netns (and pasta when installed), in one run: a "world" namespace with
# the servers, a "host" namespace joined to it by a veth pair where the clients
# run — natively (the kernel), in netcell containers (seccomp, preload; as
# nobody, no TAP), in a slirp4netns and a pasta namespace made there.
# Lines: peer metric value unit; then ratios to the kernel.
# Needs root, iperf3, sockperf, a C compiler; slirp4netns and pasta optional.
#   SECS=5 shim/bench/uplink.sh
set -euo pipefail
SECS=${SECS:-5}
N=${N:-3000}
cd "$(dirname "$0")/../.."
cargo build --release --quiet -p netcell
NETCELL=$PWD/target/release/netcell
tag="ncu$$"; W=${tag}w; H=${tag}h
tmp=$(mktemp -d); chmod 755 "$tmp"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$tmp/pasta.pid" ] && kill "$(cat "$tmp/pasta.pid")" 2>/dev/null || true
  ip netns del "$W" 2>/dev/null || true
  ip netns del "$H" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
cc -O2 -o "$tmp/connrate" shim/bench/connrate.c
ip netns add "$W"; ip netns add "$H"
ip link add w0 netns "$W" type veth peer name h0 netns "$H"
ip -n "$W" addr add 10.78.0.1/24 dev w0; ip -n "$H" addr add 10.78.0.2/24 dev h0
for n in "$W" "$H"; do ip -n "$n" link set lo up; done
ip -n "$W" link set w0 up; ip -n "$H" link set h0 up
ip -n "$H" route add default via 10.78.0.1
ip netns exec "$W" iperf3 -s -p 5201 >/dev/null 2>&1 & pids+=($!)
ip netns exec "$W" sockperf server --tcp -i 10.78.0.1 -p 11111 >/dev/null 2>&1 & pids+=($!)
ip netns exec "$W" "$tmp/connrate" serve 10.78.0.1 7000 & pids+=($!)
sleep 0.5

gbps() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(round(d["end"]["sum_received"]["bits_per_second"]/1e9,3))'; }
p50() { sed -n 's/.*percentile 50.000 = *\([0-9.]*\).*/\1/p'; }
out=$tmp/out
# $1 peer, then the command prefix that runs a client as that peer.
measure() {
  local peer=$1; shift
  echo "$peer tcp_stream_up $("$@" iperf3 -c 10.78.0.1 -p 5201 -t "$SECS" -J | gbps) Gbit/s" | tee -a "$out"
  echo "$peer tcp_stream_down $("$@" iperf3 -c 10.78.0.1 -p 5201 -t "$SECS" -R -J | gbps) Gbit/s" | tee -a "$out"
  # sockperf's p50 swings between runs on this VM: the median of three.
  local rr=()
  for _ in 1 2 3; do
    rr+=("$("$@" sockperf ping-pong --tcp -i 10.78.0.1 -p 11111 -t "$SECS" -m 64 2>&1 | p50)")
  done
  echo "$peer tcp_rr_p50 $(printf '%s\n' "${rr[@]}" | sort -g | sed -n 2p) us" | tee -a "$out"
  echo "$peer $("$@" "$tmp/connrate" connect 10.78.0.1 7000 "$N")" | tee -a "$out"
}
nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
measure kernel ip netns exec "$H"
measure netcell_seccomp ip netns exec "$H" "${nobody[@]}" "$NETCELL" run --uplink host --shim seccomp --
measure netcell_preload ip netns exec "$H" "${nobody[@]}" "$NETCELL" run --uplink host --shim preload --
if command -v slirp4netns >/dev/null; then
  ip netns exec "$H" unshare -Urn sleep 100000 & ns=$!; pids+=($ns)
  sleep 0.3
  ip netns exec "$H" slirp4netns --configure --mtu=65520 "$ns" tap0 >/dev/null 2>&1 & pids+=($!)
  sleep 1
  measure slirp4netns nsenter --preserve-credentials -U -n -t "$ns"
fi
if command -v pasta >/dev/null; then
  ip netns exec "$H" unshare -Urn sleep 100000 & ns=$!; pids+=($ns)
  sleep 0.3
  # pasta daemonizes: its pid file lets the cleanup stop it.
  ip netns exec "$H" pasta --runas 0 --no-map-gw --pid "$tmp/pasta.pid" --config-net "$ns" >/dev/null 2>&1 || true
  sleep 1
  if [[ $(nsenter --preserve-credentials -U -n -t "$ns" ip route) == *default* ]]; then
    measure pasta nsenter --preserve-credentials -U -n -t "$ns"
  fi
fi
python3 - "$out" <<'PY'
import sys
v = {}
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) == 4:  # a peer that could not measure prints less
        v[(f[0], f[1])] = float(f[2])
print("\nratios to the kernel (for tcp_rr_p50, the kernel's latency over the peer's: higher is better):")
for (peer, metric), x in sorted(v.items()):
    if peer == "kernel" or ("kernel", metric) not in v or x == 0:
        continue
    k = v[("kernel", metric)]
    r = k / x if metric == "tcp_rr_p50" else x / k
    print(f"{peer} {metric} {r:.2f}x")
PY
