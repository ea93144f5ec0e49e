"""Tries every way out of a container's network that a program has, and prints
what each attempt gave ("ok" or the errno). Run on the host it shows the attempts
are real (as root most succeed); run in a seccomp container each must fail.

argv[1]: a port a server listens on at the host's 127.0.0.1."""
import ctypes, errno, fcntl, os, socket, struct, sys

def fds():
    # The descriptor os.listdir opens for the directory is closed again by now.
    out = []
    for n in sorted(int(x) for x in os.listdir("/proc/self/fd")):
        try:
            os.fstat(n)
            out.append(n)
        except OSError:
            pass
    return out
print("fds", fds())

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def raw(nr, *a):
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_ulong(x & 0xFFFFFFFFFFFFFFFF) for x in a])
    return r if r >= 0 else -ctypes.get_errno()
def en(r):
    return "ok" if r >= 0 else errno.errorcode.get(-r, str(-r))
def close(r):
    if r >= 0:
        os.close(r)

port = int(sys.argv[1])
sa = ctypes.create_string_buffer(struct.pack("=H", 2) + struct.pack("!H4s8x", port, socket.inet_aton("127.0.0.1")))
fd = raw(41, socket.AF_INET, socket.SOCK_STREAM, 0)
print("raw socket", en(fd))
print("raw connect to the host's loopback", en(raw(42, fd, ctypes.addressof(sa), 16)))
close(fd)
try:
    socket.create_connection(("127.0.0.1", port), timeout=5).close()
    print("libc connect to the host's loopback ok")
except OSError as e:
    print("libc connect to the host's loopback", errno.errorcode[e.errno])
for name, args in [
    ("packet socket", (socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))),
    ("packet dgram socket", (socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(3))),
    ("netlink route socket", (socket.AF_NETLINK, socket.SOCK_RAW, 0)),
    ("netlink generic socket", (socket.AF_NETLINK, socket.SOCK_DGRAM, 16)),
    ("vsock socket", (40, socket.SOCK_STREAM, 0)),
    ("raw ip socket", (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)),
]:
    r = raw(41, *args)
    print(name, en(r))
    close(r)
params = ctypes.create_string_buffer(120)
r = raw(425, 4, ctypes.addressof(params))
print("io_uring_setup", en(r))
close(r)
r = raw(41 | 0x40000000, socket.AF_INET, socket.SOCK_STREAM, 0)
print("x32 socket", en(r))
close(r)
try:
    print("if_nameindex", " ".join(n for _, n in socket.if_nameindex()))
except OSError as e:
    print("if_nameindex", errno.errorcode.get(e.errno, e.errno))
# The interfaces the interface ioctls show.
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
buf = ctypes.create_string_buffer(40 * 32)
ifc = struct.pack("iiQ", len(buf), 0, ctypes.addressof(buf))
n = struct.unpack("iiQ", fcntl.ioctl(s, 0x8912, ifc))[0]
shown = []
for i in range(n // 40):
    e = buf.raw[i * 40:(i + 1) * 40]
    shown.append(e[:16].rstrip(b"\0").decode() + "=" + socket.inet_ntoa(e[20:24]))
print("ifconf", " ".join(shown))
