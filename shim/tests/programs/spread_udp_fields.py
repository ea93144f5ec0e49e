"""A received datagram's TTL and TOS reach the program (IP_RECVTTL, IP_RECVTOS)
also while TCP connections are open beside it — under netcell with
NETCELL_SHARD_HOME_MAX=0 those connections are placed in shards and every frame
of the interface is routed, copy and all."""
import socket
import struct

IP_RECVTTL = 12  # not named by Python

# A TCP connection on loopback: under netcell, it spreads lo's sockets.
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen()
c = socket.create_connection(ls.getsockname(), timeout=5)
a, _ = ls.accept()
c.sendall(b"x")
assert a.recv(1) == b"x"

r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
r.bind(("127.0.0.1", 0))
r.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
r.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
r.settimeout(5)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 7)
s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0x28)
s.sendto(b"fields", r.getsockname())
data, anc, _, _ = r.recvmsg(100, 256)
fields = {}
for level, kind, value in anc:
    if kind == socket.IP_TTL:
        fields["ttl"] = struct.unpack("i", value[:4])[0]
    elif kind == socket.IP_TOS:
        fields["tos"] = value[0]
print(data, sorted(fields.items()))
# The connection still carries bytes.
a.sendall(b"y")
print("tcp", c.recv(1))
