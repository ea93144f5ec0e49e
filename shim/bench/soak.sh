#!/usr/bin/env bash
# The mixed-load soak: one container under ten minutes (DURATION seconds) of
# everything at once — iperf3 TCP streams both ways over its TAP in bursts,
# UDP at 50 Mbit/s, short connections to a kernel peer and on its own loopback,
# DNS-sized UDP exchanges on loopback — while netcell's resident memory,
# descriptors and sockets are sampled every SAMPLE seconds.
#
# Writes $OUT (default /tmp/netcell-soak-<date>.csv: seconds, rss_kib, fds,
# tcp, udp, buffer_bytes), prints an ASCII graph of RSS and descriptors over
# time, and, where python3 has matplotlib, a PNG beside the CSV. The run
# fails (exit 1) if the descriptors or the sockets at the end are not back at
# the baseline, or RSS grew by more than a quarter.
#
#   sudo shim/bench/soak.sh                  # ten minutes, seccomp
#   DURATION=60 SHIM=preload shim/bench/soak.sh
#
# Needs root (a namespace and a TAP device), iperf3 and python3; everything
# stays inside the namespace this script creates and removes.
set -euo pipefail
SHIM=${SHIM:-seccomp}
DURATION=${DURATION:-600}
SAMPLE=${SAMPLE:-5}
OUT=${OUT:-/tmp/netcell-soak-$(date +%Y%m%d-%H%M%S).csv}
cd "$(dirname "$0")/../.."
cargo build --release --quiet -p netcell
NETCELL=$PWD/target/release/netcell
ns="ncsoak$$"
name="soak$$"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" tuntap add dev tap0 mode tap
ip -n "$ns" addr add 10.252.0.1/24 dev tap0
ip -n "$ns" link set tap0 up
ip netns exec "$ns" iperf3 -s -p 5201 >/dev/null 2>&1 & pids+=($!)
ip netns exec "$ns" iperf3 -s -p 5202 >/dev/null 2>&1 & pids+=($!)
ip netns exec "$ns" python3 -c '
import socket, threading
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("10.252.0.1", 7100)); l.listen(1024)
def one(c):
    c.sendall(c.recv(100)); c.close()
while True:
    c, _ = l.accept(); threading.Thread(target=one, args=(c,), daemon=True).start()
' & pids+=($!)
sleep 0.5

cat > "$work/warm.py" <<'WARM'
import socket
l = socket.socket(); l.bind(("127.0.0.1", 7300)); l.listen()
c = socket.create_connection(("127.0.0.1", 7300)); l.accept()[0].close(); c.close()
WARM
# The load, inside the container, until the stop file appears.
stop=$work/stop
cat > "$work/load.py" <<LOAD
import os, socket, subprocess, threading, time
stop = "$stop"
def running(): return not os.path.exists(stop)
def streams():
    while running():
        for flag in ([], ["-R"]):
            subprocess.run(["iperf3", "-c", "10.252.0.1", "-p", "5201", "-t", "5"] + flag,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2)
def udp():
    while running():
        subprocess.run(["iperf3", "-c", "10.252.0.1", "-p", "5202", "-u", "-b", "50M", "-t", "10"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
def short(target):
    while running():
        try:
            c = socket.create_connection(target, timeout=5); c.sendall(b"x" * 64); c.recv(100); c.close()
        except OSError:
            time.sleep(0.1)
l = socket.socket(); l.bind(("127.0.0.1", 7200)); l.listen(1024)
def serve():
    while True:
        c, _ = l.accept(); c.sendall(c.recv(100)); c.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 5353))
def dns_server():
    while True:
        d, p = u.recvfrom(512); u.sendto(d, p)
def dns_client():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1)
    while running():
        try:
            s.sendto(os.urandom(40), ("127.0.0.1", 5353)); s.recvfrom(512)
        except OSError:
            pass
ts = [threading.Thread(target=f, args=a, daemon=True) for f, a in
      ((serve, ()), (dns_server, ()), (streams, ()), (udp, ()), (short, (("10.252.0.1", 7100),)),
       (short, (("127.0.0.1", 7200),)), (dns_client, ()))]
for t in ts: t.start()
while running(): time.sleep(0.5)
time.sleep(3)
LOAD
ip netns exec "$ns" "$NETCELL" run --name "$name" --runtime-dir "$work" --shim "$SHIM" \
  --tap tap0 --addr 10.252.0.2/24 -- sh -c "python3 $work/warm.py && touch $work/warm && \
  while [ ! -e $work/go ]; do sleep 0.2; done; python3 $work/load.py; sleep 600" &
pids+=($!)
pid=$!
stat() { "$NETCELL" stats "$name" --runtime-dir "$work" --json 2>/dev/null || echo '{}'; }
field() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); t=d.get("tcp",{}); print(sum(t.values()) if t else 0, d.get("udp",0), d.get("buffer_memory",0))' "$1"; }
sample() {
  local rss fds s
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  fds=$(ls "/proc/$pid/fd" | wc -l)
  s=$(field "$(stat)")
  echo "$1,$rss,$fds,${s// /,}"
}
# The baseline once a first connection has come and gone: what the stack
# makes once (the private listener that pairs stand-ins) is there by then.
while [ ! -e "$work/warm" ]; do sleep 0.2; done
sleep 2
echo "seconds,rss_kib,fds,tcp,udp,buffer_bytes" > "$OUT"
base=$(sample 0); echo "$base" >> "$OUT"
touch "$work/go"
t0=$(date +%s)
while [ $(( $(date +%s) - t0 )) -lt "$DURATION" ]; do
  sleep "$SAMPLE"
  sample $(( $(date +%s) - t0 )) >> "$OUT"
done
touch "$stop"
sleep 20
end=$(sample $(( $(date +%s) - t0 ))); echo "$end" >> "$OUT"

python3 - "$OUT" "$base" "$end" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
def graph(key, unit):
    vals = [int(r[key]) for r in rows]
    lo, hi = min(vals), max(vals)
    bars = " ▁▂▃▄▅▆▇█"
    line = "".join(bars[0 if hi == lo else round((v - lo) / (hi - lo) * 8)] for v in vals)
    print(f"{key:>7} {lo}..{hi} {unit}  {line}")
print(f"{len(rows)} samples over {rows[-1]['seconds']} s ({sys.argv[1]})")
for k, u in (("rss_kib", "KiB"), ("fds", ""), ("tcp", "sockets"), ("buffer_bytes", "B")):
    graph(k, u)
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    t = [int(r["seconds"]) for r in rows]
    fig, ax = plt.subplots(2, 1, sharex=True, figsize=(8, 5))
    ax[0].plot(t, [int(r["rss_kib"]) / 1024 for r in rows]); ax[0].set_ylabel("RSS (MiB)")
    ax[1].plot(t, [int(r["fds"]) for r in rows]); ax[1].set_ylabel("descriptors"); ax[1].set_xlabel("seconds")
    fig.suptitle("netcell under mixed load")
    png = sys.argv[1].rsplit(".", 1)[0] + ".png"
    fig.savefig(png, dpi=100); print("plot:", png)
except ImportError:
    pass
b = sys.argv[2].split(","); e = sys.argv[3].split(",")
print(f"baseline rss {b[1]} KiB fds {b[2]} tcp {b[3]} udp {b[4]} buffers {b[5]}; end rss {e[1]} KiB fds {e[2]} tcp {e[3]} udp {e[4]} buffers {e[5]}")
ok = int(e[2]) <= int(b[2]) and int(e[3]) <= int(b[3]) and int(e[1]) <= int(b[1]) * 1.25 + 4096
print("back at the baseline" if ok else "NOT back at the baseline")
sys.exit(0 if ok else 1)
PY
