"""UDP through the host uplink; argv: world address, UDP echo port."""
import socket, sys

world, port = sys.argv[1], int(sys.argv[2])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(5)
for i in range(3):
    u.sendto(b"ping%d" % i, (world, port))
    data, src = u.recvfrom(100)
    print("unconnected", data.decode(), src == (world, port))
print("name", u.getsockname()[0])
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.settimeout(5)
c.connect((world, port))
c.send(b"x" * 60000)
print("large", len(c.recv(65536)))
c.send(b"connected")
print("connected", c.recv(100).decode())
