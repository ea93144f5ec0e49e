"""Tries to reach the host's loopback through sockets the uplink handed over;
argv: world address, world HTTP port, a closed world port, the port of a listener
on the host's 127.0.0.1. Prints what each try got; the test counts what the host
listener saw."""
import ctypes, errno, os, socket, struct, sys, threading, time

world, port, closed, hostport = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
libc = ctypes.CDLL(None, use_errno=True)
loop = struct.pack("=HH4s8x", socket.AF_INET, socket.htons(hostport), socket.inet_aton("127.0.0.1"))
unspec = struct.pack("=H14x", socket.AF_UNSPEC)


def raw_connect(fd, addr):
    r = libc.connect(fd, addr, len(addr))
    return 0 if r == 0 else errno.errorcode.get(ctypes.get_errno(), "?")


# 1. Disconnect a handed socket, then point it at the host's loopback.
s = socket.socket()
s.connect((world, port))
print("unspec", raw_connect(s.fileno(), unspec))
print("after_unspec", raw_connect(s.fileno(), loop))

# 1b. Options that would re-point a handed socket or load code into the kernel.
def opt(level, name, value):
    try:
        s.setsockopt(level, name, value)
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]


s = socket.socket()
s.connect((world, port))
print("bindtodevice", opt(socket.SOL_SOCKET, 25, b"lo\0"))
print("tcp_ulp", opt(socket.IPPROTO_TCP, 31, b"tls"))
print("nodelay", opt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1), s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

# 2. A handed socket whose connect failed, pointed at the host's loopback.
f = socket.socket()
print("failed", errno.errorcode[f.connect_ex((world, closed))])
print("after_failure", raw_connect(f.fileno(), loop))

# 3. Fast Open on a failed handed socket.
g = socket.socket()
g.connect_ex((world, closed))
r = libc.sendto(g.fileno(), b"x", 1, 0x20000000, loop, len(loop))
print("fastopen", errno.errorcode.get(ctypes.get_errno(), "?") if r < 0 else "sent")

# 4. listen on a failed handed socket listens in the container, not on the host.
h = socket.socket()
h.connect_ex((world, closed))
h.listen()
print("listen_name", h.getsockname()[0])

# 5. Racing threads: one swaps failed handed sockets and stand-ins under a
# number, the other connects that number to the host's loopback.
pool = []
for _ in range(8):
    x = socket.socket()
    x.connect_ex((world, closed))
    pool.append(x)
fresh = socket.socket()
target = os.dup(fresh.fileno())
stop = time.time() + 3
tries = [0]


def swapper():
    i = 0
    while time.time() < stop:
        os.dup2(pool[i % len(pool)].fileno(), target)
        os.dup2(fresh.fileno(), target)
        i += 1


def connector():
    while time.time() < stop:
        raw_connect(target, loop)
        libc.sendto(target, b"x", 1, 0x20000000, loop, len(loop))
        tries[0] += 1


ts = [threading.Thread(target=swapper), threading.Thread(target=connector)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print("raced", tries[0] > 100)


# 6. Racing listen: a number swapped between a unix socket and failed handed
# sockets, listened on; a listen the kernel made on a host socket would listen on
# the host. /proc/net/tcp shows the host's sockets (the network namespace's).
def host_listeners():
    n = 0
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in open(f).readlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.split(":")[1], 16) != hostport:
                n += 1
    return n


before = host_listeners()
u = socket.socket(socket.AF_UNIX)
target2 = os.dup(u.fileno())
stop = time.time() + 3


def swapper2():
    i = 0
    while time.time() < stop:
        os.dup2(pool[i % len(pool)].fileno(), target2)
        os.dup2(u.fileno(), target2)
        i += 1


def listener():
    while time.time() < stop:
        libc.listen(target2, 1)


ts = [threading.Thread(target=swapper2), threading.Thread(target=listener)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print("host_listeners", host_listeners() - before)
