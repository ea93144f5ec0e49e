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
    # A port 0, a shutdown: errors as ever.
    s.sendto(b"x", dst)
    print("port 0", attempt(lambda: s.sendto(b"y", ("127.0.0.1", 0))))
    s.connect(dst)
    s.shutdown(socket.SHUT_WR)
    print("after shutdown", attempt(lambda: s.sendto(b"y", dst)))
    count(r, 1, 0.5)

def route():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(50):
        s.sendto(b"b", ("10.88.0.77", 9))
    print("subnet broadcast", attempt(lambda: s.sendto(b"c", ("10.88.0.255", 9))))
    subprocess.run(["ip", "addr", "del", "10.88.0.2/24", "dev", "eth0"], check=True)
    print("after the route went", attempt(lambda: s.sendto(b"d", ("10.88.0.77", 9))))

{"lo": lo, "route": route}[sys.argv[1]]()
