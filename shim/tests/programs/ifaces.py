"""Prints the interfaces a program sees, one fact per line: if_nameindex,
if_nametoindex/if_indextoname, getifaddrs (through ctypes, as C programs call it)
and the interface ioctls on an INET socket and on an AF_UNIX one."""
import ctypes, ctypes.util, errno, fcntl, socket, struct

libc = ctypes.CDLL(None, use_errno=True)


def err(e):
    return errno.errorcode.get(e, str(e))


try:
    print("if_nameindex", " ".join(f"{i}:{n}" for i, n in socket.if_nameindex()))
except OSError as e:
    print("if_nameindex", err(e.errno))
try:
    print("if_nametoindex eth0", socket.if_nametoindex("eth0"))
except OSError as e:
    print("if_nametoindex eth0", err(e.errno))
try:
    print("if_indextoname 1", socket.if_indextoname(1))
except OSError as e:
    print("if_indextoname 1", err(e.errno))
# Python hides the errno of this one: ask libc.
ctypes.set_errno(0)
print("if_nametoindex nosuch0", libc.if_nametoindex(b"nosuch0"), err(ctypes.get_errno()))


class Ifaddrs(ctypes.Structure):
    pass


Ifaddrs._fields_ = [
    ("next", ctypes.POINTER(Ifaddrs)),
    ("name", ctypes.c_char_p),
    ("flags", ctypes.c_uint),
    ("addr", ctypes.c_void_p),
    ("netmask", ctypes.c_void_p),
    ("broad", ctypes.c_void_p),
    ("data", ctypes.c_void_p),
]


def sa(p):
    if not p:
        return "-"
    fam = ctypes.c_ushort.from_address(p).value
    raw = ctypes.string_at(p, 28)
    if fam == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[4:8])
    if fam == socket.AF_INET6:
        scope = struct.unpack("I", raw[24:28])[0]
        a = socket.inet_ntop(socket.AF_INET6, raw[8:24])
        return f"{a}%{scope}" if scope else a
    if fam == socket.AF_PACKET:
        ifindex, hatype = struct.unpack("iH", raw[4:10])
        halen = raw[11]
        return f"ll:{ifindex}:{hatype}:" + raw[12:12 + halen].hex()
    return f"family{fam}"


head = ctypes.POINTER(Ifaddrs)()
libc.getifaddrs.argtypes = [ctypes.POINTER(ctypes.POINTER(Ifaddrs))]
libc.freeifaddrs.argtypes = [ctypes.POINTER(Ifaddrs)]
if libc.getifaddrs(ctypes.byref(head)) != 0:
    print("getifaddrs", err(ctypes.get_errno()))
else:
    p = head
    while p:
        e = p.contents
        print("ifaddr", e.name.decode(), f"{e.flags & 0xffff:#x}", sa(e.addr),
              sa(e.netmask), sa(e.broad), "stats" if e.data else "-")
        p = e.next
    libc.freeifaddrs(head)

for label, fam, ty in [("inet", socket.AF_INET, socket.SOCK_DGRAM),
                       ("unix", socket.AF_UNIX, socket.SOCK_STREAM)]:
    s = socket.socket(fam, ty)
    buf = ctypes.create_string_buffer(40 * 32)
    ifc = struct.pack("iiQ", len(buf), 0, ctypes.addressof(buf))
    n = struct.unpack("iiQ", fcntl.ioctl(s, 0x8912, ifc))[0]
    shown = []
    for i in range(n // 40):
        e = buf.raw[i * 40:(i + 1) * 40]
        shown.append(e[:16].rstrip(b"\0").decode() + "=" + socket.inet_ntoa(e[20:24]))
    print(label, "ifconf", " ".join(shown))
    for name, req, fmt in [("index", 0x8933, "i"), ("mtu", 0x8921, "i"),
                           ("netmask", 0x891b, "4s"), ("broadaddr", 0x8919, "4s"),
                           ("hwaddr", 0x8927, "6s")]:
        try:
            r = fcntl.ioctl(s, req, struct.pack("16s24s", b"eth0", b""))
            u = r[16:]
            if fmt == "i":
                v = struct.unpack("i", u[:4])[0]
            elif name == "hwaddr":
                v = f"{struct.unpack('H', u[:2])[0]}:{u[2:8].hex()}"
            else:
                v = socket.inet_ntoa(u[4:8])
            print(label, name, v)
        except OSError as e:
            print(label, name, err(e.errno))
    try:
        fcntl.ioctl(s, 0x8914, struct.pack("16sH22s", b"eth0", 0, b""))  # SIOCSIFFLAGS
        print(label, "setflags ok")
    except OSError as e:
        print(label, "setflags", err(e.errno))
    s.close()
