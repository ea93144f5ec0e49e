"""Sends one UDP datagram: udp_send.py DST PORT TEXT [--broadcast] [--ttl N] [--if ADDR]"""
import socket, sys
dst, port, text = sys.argv[1], int(sys.argv[2]), sys.argv[3]
v6 = ":" in dst
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
args = sys.argv[4:]
if "--broadcast" in args:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
if "--ttl" in args:
    ttl = int(args[args.index("--ttl") + 1])
    if v6: s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, ttl)
    else: s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
if "--if" in args:
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(args[args.index("--if") + 1]))
s.sendto(text.encode(), (dst, port))
