"""Calls that once crashed or wedged a container's stack (found by attacking it):
each must fail or succeed as a call, and the stack must go on serving. Prints one
"name result" line each, then whether a fresh socket still works."""
import errno, fcntl, socket, struct, sys, time


def attempt(name, f):
    try:
        r = f()
        print(name, "ok" if r is None else r, flush=True)
    except OSError as e:
        print(name, errno.errorcode.get(e.errno, e.errno), flush=True)


def v6():
    return socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)


def bound_v6_to_mapped():
    s = v6(); s.bind(("::1", 0)); s.sendto(b"x", ("::ffff:127.0.0.1", 9))


def bound_mapped_to_v6():
    s = v6(); s.bind(("::ffff:127.0.0.1", 0)); s.sendto(b"x", ("::1", 9))


def connected_mixed_write():
    s = v6(); s.bind(("::1", 0)); s.connect(("::ffff:127.0.0.1", 9)); s.send(b"x")


def pktinfo_of_other_family():
    s = v6()
    pi = socket.inet_aton("127.0.0.1") * 2 + b"\0" * 4
    s.sendmsg([b"x"], [(socket.IPPROTO_IP, 8, struct.pack("i", 0) + pi)], 0, ("::1", 9))


def pktinfo6_to_v4():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    pi = socket.inet_pton(socket.AF_INET6, "::1") + struct.pack("i", 0)
    s.sendmsg([b"x"], [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, pi)], 0, ("127.0.0.1", 9))


def hwaddr_of_lo():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    r = fcntl.ioctl(s, 0x8927, struct.pack("16s24x", b"lo"))
    return "family%d" % struct.unpack("H", r[16:18])[0]


def udp_shut_wr_then_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(("127.0.0.1", 9)); s.shutdown(socket.SHUT_WR)
    t0 = time.time()
    socket.socket().close()
    s.close()
    return "answered_in_time" if time.time() - t0 < 2 else "stalled"


def source_filters_beyond_ten():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(11):
        mreq = socket.inet_aton("239.1.2.3") + socket.inet_aton("127.0.0.1") + socket.inet_aton("10.0.0.%d" % (i + 1))
        try:
            s.setsockopt(socket.IPPROTO_IP, 39, mreq)  # IP_ADD_SOURCE_MEMBERSHIP
        except OSError as e:
            return "source%d_%s" % (i + 1, errno.errorcode[e.errno])
    return "eleven_sources"


for name, f in [
    ("bound v6 to mapped", bound_v6_to_mapped),
    ("bound mapped to v6", bound_mapped_to_v6),
    ("connected mixed write", connected_mixed_write),
    ("pktinfo of the other family", pktinfo_of_other_family),
    ("pktinfo6 to v4", pktinfo6_to_v4),
    ("hwaddr of lo", hwaddr_of_lo),
    ("udp shut wr", udp_shut_wr_then_socket),
    ("source filters", source_filters_beyond_ten),
]:
    attempt(name, f)
time.sleep(0.3)
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
c = socket.create_connection(s.getsockname()); a, _ = s.accept(); c.sendall(b"still")
print("stack serving", a.recv(5).decode())
