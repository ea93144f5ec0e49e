"""Datagram details programs rely on, one line each; run on a kernel whose only
interface is lo, and in a container with only lo.
- multicast and broadcast sent on lo arrive once, whatever IP_MULTICAST_LOOP says;
- an ICMP port unreachable on a connected UDP socket makes it readable for
  select, poll and epoll, and the read fails with ECONNREFUSED;
- IP_RECVTTL, IP_RECVTOS, IPV6_RECVHOPLIMIT and IPV6_RECVTCLASS report what the
  packet carried, and IPV6_HOPLIMIT on send sets it for one datagram."""
import errno, select, socket, struct

IP_RECVTTL = 12  # not named by Python


def received(r, wait=0.3):
    n = 0
    while select.select([r], [], [], wait)[0]:
        r.recv(64)
        n += 1
    return n


def multicast(loop):
    r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    r.bind(("0.0.0.0", 0))
    mreq = struct.pack("4s4s", socket.inet_aton("239.1.2.3"), socket.inet_aton("127.0.0.1"))
    r.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, loop)
    s.sendto(b"m", ("239.1.2.3", r.getsockname()[1]))
    print("multicast on lo, loop", loop, "received", received(r))


multicast(1)
multicast(0)
r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
r.bind(("0.0.0.0", 0))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.sendto(b"b", ("127.255.255.255", r.getsockname()[1]))
print("broadcast on lo received", received(r))

# ICMP port unreachable on a connected socket: readiness, then the error.
closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
closed.bind(("127.0.0.1", 0))
port = closed.getsockname()[1]
closed.close()
for how in ("select", "poll", "epoll"):
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.connect(("127.0.0.1", port))
    c.send(b"?")
    if how == "select":
        ready = bool(select.select([c], [], [], 2)[0])
    elif how == "poll":
        p = select.poll()
        p.register(c, select.POLLIN)
        ev = p.poll(2000)
        ready = bool(ev) and bool(ev[0][1] & (select.POLLIN | select.POLLERR))
    else:
        e = select.epoll()
        e.register(c.fileno(), select.EPOLLIN)
        ev = e.poll(2)
        ready = bool(ev) and bool(ev[0][1] & (select.EPOLLIN | select.EPOLLERR))
        e.close()
    try:
        # recvfrom, as event loops read datagrams (a plain recv under the seccomp
        # shim reads an empty datagram instead: see the README's differences).
        c.recvfrom(16)
        res = "data"
    except OSError as x:
        res = errno.errorcode[x.errno]
    print("port unreachable,", how, "ready", ready, "then", res)
    c.close()


def ancillary(fam, host, opts, sendopts, cmsgs=()):
    r = socket.socket(fam, socket.SOCK_DGRAM)
    r.bind((host, 0))
    for level, name in opts:
        r.setsockopt(level, name, 1)
    s = socket.socket(fam, socket.SOCK_DGRAM)
    for level, name, v in sendopts:
        s.setsockopt(level, name, v)
    s.sendmsg([b"x"], list(cmsgs), 0, r.getsockname()[:2])
    r.settimeout(2)
    _, anc, _, _ = r.recvmsg(16, 256)
    return sorted((l, t, int.from_bytes(d[:4], "little") if len(d) >= 4 else d[0]) for l, t, d in anc)


print("v4 ttl/tos", ancillary(socket.AF_INET, "127.0.0.1",
      [(socket.IPPROTO_IP, IP_RECVTTL), (socket.IPPROTO_IP, socket.IP_RECVTOS)],
      [(socket.IPPROTO_IP, socket.IP_TTL, 7), (socket.IPPROTO_IP, socket.IP_TOS, 0x10)]))
print("v6 hops/tclass", ancillary(socket.AF_INET6, "::1",
      [(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT), (socket.IPPROTO_IPV6, socket.IPV6_RECVTCLASS)],
      [(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 9), (socket.IPPROTO_IPV6, socket.IPV6_TCLASS, 0x28)]))
print("v6 hoplimit on send", ancillary(socket.AF_INET6, "::1",
      [(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT)], [],
      [(socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT, struct.pack("i", 5))]))
