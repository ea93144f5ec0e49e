"""Datagrams sent with an address, as a DNS or QUIC server sends them: under
netcell's preload shim most are posted without waiting for the stack (see the
stack's control::grants). What a program sees must not change:

  posted.py lo      on the loopback: every datagram arrives, also those sent
                    right before a close or an exit; errors after a shutdown
  posted.py route   (eth0 at 10.88.0.2/24) a send after the route went away
                    fails with ENETUNREACH at once, and a subnet broadcast
                    without SO_BROADCAST with EACCES, after sends were posted
"""
import errno, os, select, socket, subprocess, sys

def count(r, want, wait=2.0):
    got = set()
    while len(got) < want and select.select([r], [], [], wait)[0]:
        got.add(r.recv(2048))
    return len(got)

def attempt(f):
    try:
        f()
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]

def lo():
    r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    r.bind(("127.0.0.1", 0))
    dst = r.getsockname()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(200):
        s.sendto(b"a%d" % i, dst)
    print("sent 200, arrived", count(r, 200))
    # Right before the sender's exit (no close: the kernel closes it).
    for how in ("exit", "close"):
        pid = os.fork()
        if pid == 0:
            c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for i in range(200):
                c.sendto(b"%s%d" % (how.encode(), i), dst)
            if how == "close":
                c.close()
            os._exit(0)
        os.waitpid(pid, 0)
        print(f"200 sent before {how}, arrived", count(r, 200))
    # A port 0 fails; datagrams before a shutdown are sent, after it EPIPE.
    s.sendto(b"x", dst)
    print("port 0", attempt(lambda: s.sendto(b"y", ("127.0.0.1", 0))))
    for i in range(200):
        s.sendto(b"s%d" % i, dst)
    s.connect(dst)
    s.shutdown(socket.SHUT_WR)
    print("after shutdown", attempt(lambda: s.sendto(b"y", dst)))
    print("before the shutdown, arrived", count(r, 201))
    # A port is free again as soon as its socket is closed.
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b.bind(("127.0.0.1", 0))
    port = b.getsockname()[1]
    for i in range(50):
        b.sendto(b"p%d" % i, dst)
    b.close()
    again = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    print("bind after close", attempt(lambda: again.bind(("127.0.0.1", port))))
    again.close()
    count(r, 50)
    # One thread's datagrams arrive in the order it sent them.
    pid = os.fork()
    if pid == 0:
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(20000):
            c.sendto(b"%d" % i, dst)
        os._exit(0)
    last, inversions = -1, 0
    while select.select([r], [], [], 1.0)[0]:
        n = int(r.recv(64))
        inversions += n < last
        last = n
    os.waitpid(pid, 0)
    print("out of order", inversions)
    # A child that puts its own files on numbers the shim had used keeps them.
    pid = os.fork()
    if pid == 0:
        path = "/tmp/posted-%d" % os.getpid()
        f = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        for n in range(200, 216):
            os.dup2(f, n)
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.sendto(b"z", dst)
        c.sendto(b"z", dst)
        for n in range(200, 216):
            os.write(n, b"k")
        size = os.path.getsize(path)
        os.unlink(path)
        os._exit(0 if size == 16 else 1)
    _, st = os.waitpid(pid, 0)
    print("a child's own descriptors kept", os.waitstatus_to_exitcode(st) == 0)
    count(r, 2, 0.5)

def sources():
    # Three senders, alike and unalike datagrams interleaved: recvfrom names the
    # right one each time.
    r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    r.bind(("127.0.0.1", 0))
    dst = r.getsockname()
    senders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    for s in senders:
        s.bind(("127.0.0.1", 0))
    wrong = got = 0
    for rnd in range(60):
        for k, s in enumerate(senders):
            s.sendto(b"ping" if rnd % 2 else b"from %d round %d" % (k, rnd), dst)
        for _ in senders:
            data, src = r.recvfrom(64)
            got += 1
            if data != b"ping":
                k = int(data.split()[1])
                wrong += src != senders[k].getsockname()
        # Alike datagrams: each sender's port once per round.
    print("sources", got, "wrong", wrong)
    # Alike datagrams queued together come back with their own senders.
    for s in senders:
        s.sendto(b"same", dst)
    ports = sorted(r.recvfrom(64)[1][1] for _ in senders)
    print("alike sources right", ports == sorted(s.getsockname()[1] for s in senders))

def route():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(50):
        s.sendto(b"b", ("10.88.0.77", 9))
    print("subnet broadcast", attempt(lambda: s.sendto(b"c", ("10.88.0.255", 9))))
    subprocess.run(["ip", "addr", "del", "10.88.0.2/24", "dev", "eth0"], check=True)
    print("after the route went", attempt(lambda: s.sendto(b"d", ("10.88.0.77", 9))))

{"lo": lo, "route": route, "sources": sources}[sys.argv[1]]()
