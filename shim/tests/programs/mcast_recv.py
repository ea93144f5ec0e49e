"""Joins a multicast group (IPv4 or IPv6) on eth0, also listens for broadcasts on
another port, and prints what arrives with its source, until COUNT datagrams or
10 s. Usage: mcast_recv.py GROUP PORT BCAST_PORT COUNT READY_FILE"""
import select, socket, struct, sys, time
group, port, bport, count, ready = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
v6 = ":" in group
m = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
m.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
m.bind(("::" if v6 else "0.0.0.0", port))
if v6:
    m.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, socket.inet_pton(socket.AF_INET6, group) + struct.pack("@I", 2))
else:
    m.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(group) + socket.inet_aton("0.0.0.0"))
b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
b.bind(("0.0.0.0", bport))
open(ready, "w").close()
got = 0
deadline = time.time() + 10
while got < count and time.time() < deadline:
    r, _, _ = select.select([m, b], [], [], 0.5)
    for s in r:
        data, src = s.recvfrom(2000)
        print(("mcast" if s is m else "bcast"), data.decode(), src[0], flush=True)
        got += 1
