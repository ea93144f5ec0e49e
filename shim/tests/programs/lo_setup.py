# What container runtimes and sandboxes do to the network namespace they make:
# bring lo up (ioctl and rtnetlink) and give it 127.0.0.1/8. Prints one line per
# call: "ok" or the errno's name.
import errno, fcntl, os, socket, struct

def name(e):
    return errno.errorcode.get(e, str(e))

s = socket.socket()
r = fcntl.ioctl(s, 0x8913, struct.pack('16sH', b'lo', 0) + bytes(22))
flags = struct.unpack('16sH', r[:18])[1]
for label, f in (("ioctl lo up", flags | 1), ("ioctl lo down", flags & ~1)):
    try:
        fcntl.ioctl(s, 0x8914, struct.pack('16sH', b'lo', f) + bytes(22))
        print(label, "ok")
    except OSError as e:
        print(label, name(e.errno))

nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
seq = 0

def request(ty, flags, body):
    global seq
    seq += 1
    nl.send(struct.pack('=IHHII', 16 + len(body), ty, flags | 1 | 4, seq, 0) + body)
    r = nl.recv(4096)
    assert struct.unpack('=H', r[4:6])[0] == 2, r
    e = -struct.unpack('=i', r[16:20])[0]
    return "ok" if e == 0 else name(e)

def addr(a):
    ip = socket.inet_aton(a)
    return (struct.pack('=BBBBI', socket.AF_INET, 8, 0x80, 0xfe, 1)
            + struct.pack('=HH4s', 8, 2, ip) + struct.pack('=HH4s', 8, 1, ip))

EXCL_CREATE = 0x200 | 0x400
print("netlink lo 127.0.0.1/8", request(20, EXCL_CREATE, addr("127.0.0.1")))
print("netlink lo up", request(16, 0, struct.pack('=BBHiII', 0, 0, 0, 1, 1, 1)))
print("netlink lo 127.0.0.2/8", request(20, EXCL_CREATE, addr("127.0.0.2")))
