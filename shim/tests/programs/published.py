"""A server for published ports: on TCP port 80 it answers each connection with
what it sees of it; on UDP port 53 it answers each datagram with its source.
argv: a label naming this container."""
import socket, sys, threading

label = sys.argv[1]
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("0.0.0.0", 53))


def udp():
    while True:
        d, a = u.recvfrom(1000)
        u.sendto(b"%s %s from=%s" % (label.encode(), d, a[0].encode()), a)


threading.Thread(target=udp, daemon=True).start()
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("0.0.0.0", 80))
l.listen()
while True:
    c, a = l.accept()
    line = "%s accepted=%s peer=%s name=%s:%d domain=%s\n" % (
        label,
        a[0],
        c.getpeername()[0],
        c.getsockname()[0],
        c.getsockname()[1],
        "inet" if c.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN) == socket.AF_INET else "?",
    )
    c.sendall(line.encode())
    c.close()
