"""Garbage system calls: socket calls made with raw syscall(2) and bad arguments
(unmapped and read-only pointers, negative and huge lengths, bogus descriptors,
unknown families, truncated structures). Prints one line per deterministic case
(the errno, or "ok"), so that the host kernel and a container must print the same;
then, in a container only (--container), throws a few thousand seeded random calls
and checks that an open TCP connection and new sockets still work ("still
serving"). Never run the container-only part on the host: it would change the
host's interfaces and send to random addresses."""
import ctypes, errno, mmap, os, random, socket, struct, sys

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
NR = dict(ioctl=16, socket=41, connect=42, accept=43, sendto=44, recvfrom=45, sendmsg=46,
          recvmsg=47, shutdown=48, bind=49, listen=50, getsockname=51, getpeername=52,
          setsockopt=54, getsockopt=55, accept4=288, recvmmsg=299, sendmmsg=307)
U = ctypes.c_ulong

def sc(name, *args):
    r = libc.syscall(ctypes.c_long(NR[name]), *[U(a & 0xFFFFFFFFFFFFFFFF) for a in args])
    if r < 0:
        return errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
    return "ok"

UNMAPPED = 0x10
KERNEL = 0xFFFFFFFFFF600000
# A read-only page.
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
RO = libc.mmap(None, 4096, mmap.PROT_READ, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
# Room for whatever a call may write at the pointers below (datagrams up to 64 KiB).
buf = ctypes.create_string_buffer(1 << 20)
B = ctypes.addressof(buf)
lenbuf = ctypes.create_string_buffer(1 << 16)
L = ctypes.addressof(lenbuf)

srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0)); srv.listen(8); port = srv.getsockname()[1]
cl = socket.create_connection(("127.0.0.1", port)); conn, _ = srv.accept()
cl.sendall(b"before"); assert conn.recv(100) == b"before"
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0))
t = socket.socket()
pr, pw = os.pipe()
S, U4, T, LST = cl.fileno(), u.fileno(), t.fileno(), srv.fileno()
sin = struct.pack("!HH4s8x", socket.AF_INET, port, socket.inet_aton("127.0.0.1"))
sin = struct.pack("=H", socket.AF_INET) + sin[2:]
ctypes.memmove(B, sin, len(sin))

def msghdr(name=0, namelen=0, iov=0, iovlen=0, control=0, controllen=0):
    return struct.pack("=QI4xQQQQi4x", name, namelen, iov, iovlen, control, controllen, 0)
M = ctypes.create_string_buffer(1 << 16); MA = ctypes.addressof(M)
IOV = ctypes.create_string_buffer(1 << 16); IA = ctypes.addressof(IOV)

def with_msg(**kw):
    ctypes.memmove(MA, msghdr(**kw), 56)
    return MA

cases = [
    ("socket bad family", lambda: sc("socket", 12345, 1, 0)),
    ("socket bad type", lambda: sc("socket", socket.AF_INET, 99, 0)),
    ("socket bad flags", lambda: sc("socket", socket.AF_INET, 1 | 0x40000000, 0)),
    ("socket tcp with udp protocol", lambda: sc("socket", socket.AF_INET, 1, 17)),
    ("connect negative fd", lambda: sc("connect", -1, B, 16)),
    ("connect huge fd", lambda: sc("connect", 99999, B, 16)),
    ("connect pipe", lambda: sc("connect", pr, B, 16)),
    ("connect unmapped addr", lambda: sc("connect", T, UNMAPPED, 16)),
    ("connect kernel addr", lambda: sc("connect", T, KERNEL, 16)),
    ("connect negative len", lambda: sc("connect", T, B, -1)),
    ("connect huge len", lambda: sc("connect", T, B, 1 << 20)),
    ("connect short len", lambda: sc("connect", T, B, 3)),
    ("bind unmapped", lambda: sc("bind", U4, UNMAPPED, 16)),
    ("bind len 129", lambda: sc("bind", U4, B, 129)),
    ("listen on udp", lambda: sc("listen", U4, 5)),
    ("accept4 bad flags", lambda: sc("accept4", LST, 0, 0, 0x7)),
    ("accept on connected", lambda: sc("accept4", S, 0, 0, 0)),
    ("accept on udp", lambda: sc("accept4", U4, 0, 0, 0)),
    ("getsockname null", lambda: sc("getsockname", S, 0, 0)),
    ("getsockname unmapped len", lambda: sc("getsockname", S, B, UNMAPPED)),
    ("getsockname negative len", lambda: (ctypes.memmove(L, struct.pack("=i", -1), 4), sc("getsockname", S, B, L))[1]),
    ("getsockname read-only addr", lambda: (ctypes.memmove(L, struct.pack("=i", 16), 4), sc("getsockname", S, RO, L))[1]),
    ("getpeername unconnected", lambda: (ctypes.memmove(L, struct.pack("=i", 16), 4), sc("getpeername", T, B, L))[1]),
    ("setsockopt unmapped", lambda: sc("setsockopt", S, socket.SOL_SOCKET, socket.SO_KEEPALIVE, UNMAPPED, 4)),
    ("setsockopt negative len", lambda: sc("setsockopt", S, socket.SOL_SOCKET, socket.SO_KEEPALIVE, B, -1)),
    ("setsockopt short len", lambda: sc("setsockopt", S, socket.SOL_SOCKET, socket.SO_KEEPALIVE, B, 1)),
    ("setsockopt unknown level", lambda: sc("setsockopt", S, 9999, 1, B, 4)),
    ("getsockopt null len", lambda: sc("getsockopt", S, socket.SOL_SOCKET, socket.SO_ERROR, B, 0)),
    ("getsockopt unmapped value", lambda: (ctypes.memmove(L, struct.pack("=i", 4), 4), sc("getsockopt", S, socket.SOL_SOCKET, socket.SO_TYPE, UNMAPPED, L))[1]),
    ("getsockopt negative len", lambda: (ctypes.memmove(L, struct.pack("=i", -5), 4), sc("getsockopt", S, socket.SOL_SOCKET, socket.SO_TYPE, B, L))[1]),
    ("shutdown bad how", lambda: sc("shutdown", T, 7)),
    ("sendto unmapped payload", lambda: sc("sendto", U4, UNMAPPED, 10, 0, B, 16)),
    ("sendto unmapped addr", lambda: sc("sendto", U4, B, 10, 0, UNMAPPED, 16)),
    ("sendto negative addrlen", lambda: sc("sendto", U4, B, 10, 0, B, -1)),
    ("sendto huge payload", lambda: sc("sendto", U4, B, 1 << 20, 0, B, 16)),
    ("sendto huge payload unmapped addr", lambda: sc("sendto", U4, B, 1 << 20, 0, UNMAPPED, 16)),
    ("sendmsg unmapped msghdr", lambda: sc("sendmsg", U4, UNMAPPED, 0)),
    ("sendmsg iovlen too big", lambda: sc("sendmsg", U4, with_msg(name=B, namelen=16, iov=IA, iovlen=1 << 20), 0)),
    ("sendmsg unmapped iov", lambda: sc("sendmsg", U4, with_msg(name=B, namelen=16, iov=UNMAPPED, iovlen=1), 0)),
    ("sendmsg namelen 200", lambda: (ctypes.memmove(IA, struct.pack("=QQ", B + 4096, 10), 16), sc("sendmsg", U4, with_msg(name=B, namelen=200, iov=IA, iovlen=1), 0))[1]),
    ("sendmsg negative namelen", lambda: (ctypes.memmove(IA, struct.pack("=QQ", B + 4096, 10), 16), sc("sendmsg", U4, with_msg(name=B, namelen=0xFFFFFFFF, iov=IA, iovlen=1), 0))[1]),
    ("sendmsg iovecs summing past usize", lambda: (ctypes.memmove(IA, struct.pack("=QQQQQQ", B, 1 << 62, B, 1 << 62, B, 1 << 62), 48), sc("sendmsg", U4, with_msg(name=B, namelen=16, iov=IA, iovlen=3), 0))[1]),
    ("sendmsg iovecs summing past usize unmapped name", lambda: (ctypes.memmove(IA, struct.pack("=QQQQQQ", B, 1 << 62, B, 1 << 62, B, 1 << 62), 48), sc("sendmsg", U4, with_msg(name=UNMAPPED, namelen=16, iov=IA, iovlen=3), 0))[1]),
    ("sendmsg iovec past the address space", lambda: (ctypes.memmove(IA, struct.pack("=QQ", (1 << 47) - 4096 - 100, 1000), 16), sc("sendmsg", U4, with_msg(name=B, namelen=16, iov=IA, iovlen=1), 0))[1]),
    ("sendto payload past the address space", lambda: sc("sendto", U4, (1 << 47) - 4096 - 100, 1000, 0, B, 16)),
    ("sendto payload length past usize", lambda: sc("sendto", U4, B, 1 << 63, 0, B, 16)),
    ("recvmsg unmapped msghdr", lambda: sc("recvmsg", U4, UNMAPPED, socket.MSG_DONTWAIT)),
    ("recvfrom null len", lambda: sc("recvfrom", U4, B, 10, socket.MSG_DONTWAIT, B, 0)),
    ("recvmmsg unmapped vector", lambda: sc("recvmmsg", U4, UNMAPPED, 4, socket.MSG_DONTWAIT, 0)),
    ("sendmmsg unmapped vector", lambda: sc("sendmmsg", U4, UNMAPPED, 4, 0)),
    ("ioctl FIONREAD unmapped", lambda: sc("ioctl", U4, 0x541B, UNMAPPED)),
    ("ioctl SIOCGIFCONF unmapped", lambda: sc("ioctl", U4, 0x8912, UNMAPPED)),
    ("ioctl SIOCGIFFLAGS unterminated name", lambda: (ctypes.memmove(B, b"Z" * 40, 40), sc("ioctl", U4, 0x8913, B))[1]),
    ("ioctl SIOCGIFINDEX no such device", lambda: (ctypes.memmove(B, b"nosuchdev0\0".ljust(40, b"\0"), 40), sc("ioctl", U4, 0x8933, B))[1]),
]
for name, f in cases:
    print(name, f())
if "--container" not in sys.argv:
    # On the host only the cases above run: never change the host's interfaces,
    # never send random addresses into the host's network.
    sys.exit(0)

print("--- container only")
# Changing an interface is refused (the host's would be changed otherwise).
ctypes.memmove(B, b"lo\0".ljust(40, b"\0"), 40)
print("ioctl SIOCSIFFLAGS", sc("ioctl", U4, 0x8914, B))
print("ioctl SIOCADDRT", sc("ioctl", U4, 0x890B, B))

# Then a storm of seeded random calls; only survival is checked. Nothing may block:
# the sockets are non-blocking (t may become a listener), receives use MSG_DONTWAIT.
for x in (t, u, cl):
    x.setblocking(False)
rng = random.Random(int(os.environ.get("GARBAGE_SEED", "7")))
ptrs = [0, UNMAPPED, KERNEL, RO, B, L, MA, IA, B + 4093]
fds = [-1, 0, 1, 2, S, U4, T, pr, 99999]
vals = [0, 1, 4, 16, 28, 128, 129, -1, 1 << 31, 1 << 40, 0x8912, 0x541B]
for i in range(3000):
    name = rng.choice(["connect", "bind", "accept4", "getsockname", "getpeername", "setsockopt",
                       "getsockopt", "sendto", "recvfrom", "sendmsg", "recvmsg", "recvmmsg",
                       "sendmmsg", "ioctl", "socket", "listen"])
    ctypes.memmove(B, bytes(rng.getrandbits(8) for _ in range(64)), 64)
    ctypes.memmove(L, struct.pack("=i", rng.choice(vals) & 0x7FFFFFFF if rng.random() < 0.7 else -1), 4)
    args = [rng.choice(fds)] + [rng.choice(ptrs + vals) for _ in range(5)]
    if name in ("recvfrom", "recvmsg", "recvmmsg", "accept4"):
        # Never block: MSG_DONTWAIT, or SOCK_NONBLOCK for accept4 (its flags).
        args[2 if name == "recvmsg" else 3] = socket.SOCK_NONBLOCK if name == "accept4" else socket.MSG_DONTWAIT
    if name in ("sendto", "sendmmsg"):
        args[3] |= socket.MSG_DONTWAIT
    if name == "sendmsg":
        args[2] |= socket.MSG_DONTWAIT
    if name == "socket":
        args = [rng.choice([2, 10, 1, 17, 16, 12345]), rng.choice([1, 2, 3, 5, 0x800 | 1]), rng.choice([0, 6, 17, 1, 255])]
    sc(name, *args)
cl.setblocking(True)
cl.sendall(b"after"); conn.settimeout(5)
# The storm may have sent garbage bytes down the connection: read up to "after".
got = b""
while not got.endswith(b"after"):
    d = conn.recv(65536)
    assert d, "the open connection broke"
    got += d
n = socket.socket(); n.connect(("127.0.0.1", port)); m, _ = srv.accept()
n.sendall(b"new"); assert m.recv(100) == b"new"
print("still serving")
