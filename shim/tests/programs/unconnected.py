"""I/O on TCP sockets that are not connected, or are listening, as Linux answers
it: reads fail with ENOTCONN at once (never block), writes with EPIPE (and
SIGPIPE), poll shows POLLOUT|POLLHUP for a fresh socket; ssl wraps an unconnected
socket; and a socket dup'ed, polled and registered before its connect works
after it."""
import errno, os, select, signal, socket, ssl

signal.signal(signal.SIGPIPE, lambda *a: print("SIGPIPE"))


def e(f):
    try:
        r = f()
        return "ok" if r is None else repr(r)
    except OSError as x:
        return errno.errorcode.get(x.errno, str(x.errno))


def poll_mask(s):
    p = select.poll()
    p.register(s, select.POLLIN | select.POLLOUT | select.POLLRDHUP)
    ev = p.poll(0)
    names = [n for n, b in (("IN", select.POLLIN), ("OUT", select.POLLOUT), ("HUP", select.POLLHUP),
                            ("RDHUP", select.POLLRDHUP), ("ERR", select.POLLERR)) if ev and ev[0][1] & b]
    return "|".join(names) or "none"


s = socket.socket()
print("fresh poll", poll_mask(s))
print("fresh recv nonblocking", e(lambda: s.recv(1, socket.MSG_DONTWAIT)))
s.setblocking(False)
print("fresh recv on non-blocking socket", e(lambda: s.recv(1)))
s.setblocking(True)
s.settimeout(2)
print("fresh recv with timeout", e(lambda: s.recv(1)))
print("fresh send", e(lambda: s.send(b"x")))
print("fresh send MSG_NOSIGNAL", e(lambda: s.send(b"x", socket.MSG_NOSIGNAL)))
print("getpeername", e(s.getpeername))
s.close()

ctx = ssl.create_default_context()
try:
    w = ctx.wrap_socket(socket.socket(), server_hostname="x")
    print("ssl wrap of an unconnected socket ok")
    w.close()
except OSError as x:
    print("ssl wrap", type(x).__name__)

b = socket.socket()
b.bind(("127.0.0.1", 0))
print("bound poll", poll_mask(b))
print("bound recv", e(lambda: b.recv(1, socket.MSG_DONTWAIT)))
b.close()

l = socket.socket()
l.bind(("127.0.0.1", 0))
l.listen()
print("listener poll", poll_mask(l))
print("listener recv", e(lambda: l.recv(1, socket.MSG_DONTWAIT)))
print("listener send", e(lambda: l.send(b"x", socket.MSG_NOSIGNAL)))

# A socket dup'ed and registered with epoll before its connect.
c = socket.socket()
d = c.dup()
ep = select.epoll()
ep.register(c.fileno(), select.EPOLLIN)
c.connect(l.getsockname())
a, _ = l.accept()
a.sendall(b"hello")
print("epoll registered before connect", bool(ep.poll(2)))
print("read through the dup", d.recv(5))
d.sendall(b"back")
print("peer reads", a.recv(4))
print("connected poll", poll_mask(c))
