"""Connection pairs on the container's loopback whose receivers never read,
filled for a while: what a container can make its stack hold. Prints how many
pairs it got, why it stopped, netcell's resident memory, and whether a fresh
connection works once they are closed.

argv: pairs, seconds of filling, netcell's pid."""
import os, socket, sys, time

n, secs, stack = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(4096)
pairs = []
stopped = "none"
for i in range(n):
    try:
        c = socket.socket(); c.connect(l.getsockname()); s, _ = l.accept()
    except OSError as e:
        stopped = os.strerror(e.errno); break
    c.setblocking(False)
    pairs.append((c, s))
chunk = b"x" * 65536
t0 = time.time()
sent = 0
while time.time() - t0 < secs:
    moved = 0
    for c, s in pairs:
        try: moved += c.send(chunk)
        except OSError: pass
    sent += moved
    if moved == 0: time.sleep(0.05)
rss = int(open("/proc/%d/status" % stack).read().split("VmRSS:")[1].split()[0])
print("pairs", len(pairs)); print("stopped", stopped.replace(" ", "_"))
print("sent_mib", sent >> 20); print("rss_kib", rss)
for c, s in pairs:
    c.close(); s.close()
time.sleep(1)
c = socket.socket(); c.connect(l.getsockname()); s, _ = l.accept()
c.sendall(b"y" * (1 << 20)); c.close()
got = 0
while True:
    b = s.recv(65536)
    if not b: break
    got += len(b)
print("after", got)
