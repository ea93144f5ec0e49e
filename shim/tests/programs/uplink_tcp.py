"""TCP through the host uplink, one line per fact; argv: world address, port of
a world HTTP server, a world port nobody listens on."""
import errno, os, select, socket, sys

world, port, closed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

s = socket.socket()
s.connect((world, port))
print("domain", s.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN) == socket.AF_INET)
print("fd", os.readlink("/proc/self/fd/%d" % s.fileno()).split(":")[0])
print("name", s.getsockname()[0])
print("peer", s.getpeername() == (world, port))
s.sendall(b"GET / HTTP/1.0\r\n\r\n")
data = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    data += b
print("status", data.split(b"\r\n")[0].decode())
print("body", data.split(b"\r\n\r\n", 1)[1].decode().strip())

n = socket.socket()
n.setblocking(False)
print("nonblocking", errno.errorcode[n.connect_ex((world, port))])
select.select([], [n], [], 5)
print("so_error", n.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
print("again", n.connect_ex((world, port)), errno.errorcode[n.connect_ex((world, port))])

r = socket.socket()
print("refused", errno.errorcode[r.connect_ex((world, closed))])
# After a failure the socket connects afresh, through the container's routing.
print("retry", r.connect_ex((world, port)))
print("subnet", errno.errorcode[socket.socket().connect_ex(("10.0.2.7", 80))])
print("hostloop", errno.errorcode[socket.socket().connect_ex(("10.0.2.2", port))])
# The container's loopback stays its own.
print("own_lo", errno.errorcode[socket.socket().connect_ex(("127.0.0.1", port))])
print("v6_mapped_lo", errno.errorcode[socket.socket(socket.AF_INET6).connect_ex(("::ffff:127.0.0.1", port))])
# Never the host's link-local (cloud metadata) nor loopback in other IPv6 spellings.
print("metadata", errno.errorcode[socket.socket().connect_ex(("169.254.169.254", 80))])
print("v4_compatible_lo", errno.errorcode[socket.socket(socket.AF_INET6).connect_ex(("::127.0.0.1", port))])
