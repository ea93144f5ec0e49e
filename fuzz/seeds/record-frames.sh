#!/bin/sh
# Records the seed corpus of the `frames` target: real traffic between netcell
# and a kernel peer over a TAP (curl to a kernel HTTP server, a kernel client to
# a server in the container, ping, UDP and DNS both ways, IPv4 and IPv6),
# captured with `--pcap`; each frame netcell *received* becomes part of a seed
# (the target's input format: 2-byte big-endian length, frame; repeated).
# Needs root, python3, curl, ping; the netcell binary as $NETCELL or built.
# Run from fuzz/:  sudo sh seeds/record-frames.sh
set -eu
NETCELL=${NETCELL:-../target/debug/netcell}
NS=ncfz$$
PCAP=$(mktemp /tmp/ncfz.XXXXXX.pcap)
cleanup() { [ -n "${SRV:-}" ] && kill "$SRV" 2>/dev/null; ip netns del "$NS" 2>/dev/null; [ -n "${KEEP:-}" ] || rm -f "$PCAP"; }
trap cleanup EXIT
ip netns add "$NS"
ip netns exec "$NS" ip link set lo up
ip netns exec "$NS" ip tuntap add dev tap0 mode tap
ip netns exec "$NS" ip addr add 10.66.0.1/24 dev tap0
ip netns exec "$NS" ip addr add fd66::1/64 dev tap0 nodad
ip netns exec "$NS" ip link set tap0 address 02:6e:63:00:00:01 up
ip netns exec "$NS" python3 -m http.server 8000 --bind :: >/dev/null 2>&1 & SRV=$!
sleep 0.5
# The container: a server on 8080 the kernel connects to, then its own clients.
ip netns exec "$NS" "$NETCELL" run --tap tap0 --addr 10.66.0.2/24 --addr fd66::2/64 \
  --gateway 10.66.0.1 --mac 02:6e:63:00:00:02 --pcap "$PCAP" -- sh -c '
  python3 -c "
import socket, threading
for fam, a, p in ((socket.AF_INET, \"0.0.0.0\", 5353), (socket.AF_INET6, \"::\", 5354)):
    u = socket.socket(fam, socket.SOCK_DGRAM); u.bind((a, p))
    threading.Thread(target=lambda u=u: [u.sendto(b\"echo:\" + d, p) for d, p in iter(lambda: u.recvfrom(2048), None)], daemon=True).start()
l = socket.socket(socket.AF_INET6); l.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0); l.bind((\"::\", 8080)); l.listen()
for i in range(2):
    c, _ = l.accept(); c.recv(100); c.sendall(b\"HTTP/1.0 200 OK\\r\\n\\r\\n\" + b\"x\" * 3000); c.close()
" & sleep 1
  curl -s -o /dev/null http://10.66.0.1:8000/
  curl -s -o /dev/null "http://[fd66::1]:8000/"
  ping -c 2 -i 0.2 10.66.0.1 >/dev/null
  ping -c 2 -i 0.2 fd66::1 >/dev/null
  python3 -c "
import socket
for fam, a in ((socket.AF_INET, \"10.66.0.1\"), (socket.AF_INET6, \"fd66::1\")):
    s = socket.socket(fam, socket.SOCK_DGRAM); s.sendto(b\"hello\", (a, 9)); s.close()
"
  wait' &
RUN=$!
sleep 2
ip netns exec "$NS" curl -s -o /dev/null http://10.66.0.2:8080/
ip netns exec "$NS" curl -s -o /dev/null "http://[fd66::2]:8080/"
ip netns exec "$NS" python3 -c "
import socket
for fam, a, p in ((socket.AF_INET, '10.66.0.2', 5353), (socket.AF_INET6, 'fd66::2', 5354)):
    s = socket.socket(fam, socket.SOCK_DGRAM); s.settimeout(1); s.sendto(b'ping', (a, p))
    try: s.recvfrom(100)
    except OSError: pass
"
wait "$RUN" || true
python3 - "$PCAP" seeds/frames <<'PY'
import struct, sys, os
data = open(sys.argv[1], 'rb').read()
out = sys.argv[2]
os.makedirs(out, exist_ok=True)
mine = bytes.fromhex('026e63000002')
# pcapng: the enhanced packet blocks (type 6), in order.
off, frames = 0, []
while off + 12 <= len(data):
    btype, blen = struct.unpack('<II', data[off:off + 8])
    if btype == 6:
        incl = struct.unpack('<I', data[off + 20:off + 24])[0]
        f = data[off + 28:off + 28 + incl]
    off += blen
    if btype != 6:
        continue
    # Received by netcell: to its MAC, or broadcast/multicast, not from it.
    if f[6:12] != mine and (f[:6] == mine or f[0] & 1):
        frames.append(f)
def write(name, fs):
    with open(os.path.join(out, name), 'wb') as o:
        for f in fs:
            o.write(struct.pack('>H', len(f)) + f)
write('all', frames)
for i, f in enumerate(frames):
    write('frame-%03d' % i, [f])
print(len(frames), 'frames received by netcell')
PY
