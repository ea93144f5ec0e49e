"""A raw socket of protocol TCP (and UDP) receives a copy of the packets while
the stack still serves them, as on Linux. Needs CAP_NET_RAW."""
import socket, struct

raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
raw.settimeout(5)
rawu = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
rawu.settimeout(5)
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen()
port = ls.getsockname()[1]
c = socket.create_connection(("127.0.0.1", port), timeout=5)
a, _ = ls.accept()
c.sendall(b"over tcp")
print("tcp still works", a.recv(8))
flags_seen = set()
while True:
    pkt = raw.recv(65535)
    ihl = (pkt[0] & 15) * 4
    sport, dport = struct.unpack("!HH", pkt[ihl:ihl + 4])
    if port not in (sport, dport):
        continue
    flags = pkt[ihl + 13]
    if dport == port and flags & 0x02:
        flags_seen.add("SYN")
    if sport == port and flags & 0x12 == 0x12:
        flags_seen.add("SYN-ACK")
    if b"over tcp" in pkt:
        flags_seen.add("data")
        break
print("raw tcp saw", sorted(flags_seen))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("127.0.0.1", 0))
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"over udp", u.getsockname())
print("udp still works", u.recv(8))
while True:
    pkt = rawu.recv(65535)
    if pkt.endswith(b"over udp"):
        ihl = (pkt[0] & 15) * 4
        print("raw udp saw port", struct.unpack("!H", pkt[ihl + 2:ihl + 4])[0] == u.getsockname()[1])
        break
