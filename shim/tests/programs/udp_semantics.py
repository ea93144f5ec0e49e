"""UDP behaviour a program can observe, printed deterministically so that the same
script on the host kernel and in a netcell container must print the same lines."""
import errno, fcntl, socket, struct, sys, termios, array
def name(f):
    try:
        r = f(); return "ok" if r is None else str(r)
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); c.bind(("127.0.0.1", 0))
c.sendto(b"hello", ("127.0.0.1", port)); c.sendto(b"second datagram", ("127.0.0.1", port)); c.sendto(b"third", ("127.0.0.1", port))
import time; time.sleep(0.2)
buf = array.array("i", [0]); fcntl.ioctl(s, termios.FIONREAD, buf); print("fionread", buf[0])
print("peek", s.recv(100, socket.MSG_PEEK))
d, src = s.recvfrom(100); print("recvfrom", d, src == c.getsockname())
m = s.recvmsg(3); print("truncated", m[0], bool(m[2] & socket.MSG_TRUNC))
print("next after truncation", s.recv(100))
print("msg_trunc flag returns full length", (lambda: (c.sendto(b"0123456789", ("127.0.0.1", port)), time.sleep(0.1), s.recv_into(bytearray(4), 4, socket.MSG_TRUNC))[2])())
print("type", s.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE), "protocol", s.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL))
print("mcast ttl", s.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL), "loop", s.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.connect(("127.0.0.1", 9)); u.send(b"x"); time.sleep(0.1)
# Under the seccomp shim a plain recv() stays native and does not see ICMP errors
# (documented); recvfrom() and SO_ERROR do, in both modes.
if "--no-native-icmp-errors" not in sys.argv:
    print("connected to closed port", name(lambda: u.recv(10)))
    u.send(b"x"); time.sleep(0.1)
print("connected to closed port, recvfrom", name(lambda: u.recvfrom(10)))
u.send(b"x"); time.sleep(0.1)
print("connected to closed port, SO_ERROR", errno.errorcode.get(u.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)))
u.connect(("127.0.0.1", port)); print("peer", u.getpeername() == ("127.0.0.1", port))
a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); a.bind(("127.0.0.1", 0))
b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); b.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
print("reuseaddr both", name(lambda: b.bind(a.getsockname())))
print("no reuseaddr", name(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).bind(a.getsockname())))
print("broadcast without SO_BROADCAST", name(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("255.255.255.255", 9))))
print("port 0 destination", name(lambda: c.sendto(b"x", ("127.0.0.1", 0))))
print("too big", name(lambda: c.sendto(b"x" * 65508, ("127.0.0.1", port))))
IP_PKTINFO = 8
s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
c.sendto(b"pi", ("127.0.0.1", port)); time.sleep(0.1)
m = s.recvmsg(100, 100)
ifindex, spec, addr = struct.unpack("@i4s4s", m[1][0][2])
print("pktinfo", [(l, t) for l, t, _ in m[1]], ifindex, socket.inet_ntoa(addr))
d6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); d6.bind(("::", 0))
c.sendto(b"v4", ("127.0.0.1", d6.getsockname()[1])); time.sleep(0.1)
print("dual stack source", d6.recvfrom(10)[1][0])
s.setblocking(False); print("nonblocking empty", name(lambda: s.recv(10)))
