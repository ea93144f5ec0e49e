"""Many established connections at once, for the benchmark's scale figures.

    conns.py serve ADDR PORT            echo every byte back, on any number of
                                        connections (selectors, one thread)
    conns.py client ADDR PORT K ROUNDS  open K connections, hold them idle for a
                                        moment, then ROUNDS rounds of a 1-byte
                                        echo on every one of them

The client prints `opened K SECONDS`, `idle` (the caller measures the stack's
CPU while they sit idle, then creates the file given by $CONNS_GO), and
`rounds ROUNDS us_per_echo X`: the time of one echo, per connection, over all
rounds (all K in flight at once, as a server with K clients sees them).
"""
import os
import resource
import selectors
import socket
import sys
import time


def raise_nofile(k):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, k + 64))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def serve(addr, port):
    raise_nofile(1 << 17)
    sel = selectors.DefaultSelector()
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((addr, port))
    l.listen(4096)
    l.setblocking(False)
    sel.register(l, selectors.EVENT_READ)
    print("listening", flush=True)
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            if s is l:
                try:
                    c, _ = l.accept()
                except OSError:
                    continue
                c.setblocking(False)
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sel.register(c, selectors.EVENT_READ)
                continue
            try:
                b = s.recv(4096)
            except OSError:
                b = b""
            if not b:
                sel.unregister(s)
                s.close()
            else:
                s.sendall(b)


def client(addr, port, k, rounds):
    raise_nofile(k)
    t0 = time.monotonic()
    conns = []
    for _ in range(k):
        c = socket.create_connection((addr, port))
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conns.append(c)
    print("opened %d %.2f" % (k, time.monotonic() - t0), flush=True)
    print("idle", flush=True)
    go = os.environ.get("CONNS_GO")
    while go and not os.path.exists(go):
        time.sleep(0.05)
    sel = selectors.DefaultSelector()
    for c in conns:
        c.setblocking(False)
        sel.register(c, selectors.EVENT_READ)
    t0 = time.monotonic()
    for _ in range(rounds):
        for c in conns:
            c.send(b"x")
        left = k
        while left:
            for key, _ in sel.select():
                if key.fileobj.recv(16):
                    left -= 1
    dt = time.monotonic() - t0
    print("rounds %d us_per_echo %.3f" % (rounds, dt * 1e6 / (rounds * k)), flush=True)
    for c in conns:
        c.close()


if sys.argv[1] == "serve":
    serve(sys.argv[2], int(sys.argv[3]))
else:
    client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
