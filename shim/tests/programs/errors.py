"""Prints the errno name of the socket errors a program meets most."""
import errno, socket, sys
def name(f):
    try:
        f(); return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
foreign = sys.argv[1] if len(sys.argv) > 1 else "192.0.2.55"
print("refused", name(lambda: socket.socket().connect(("127.0.0.1", 1))))
print("addrnotavail", name(lambda: socket.socket().bind((foreign, 80))))
a = socket.socket(); a.bind(("0.0.0.0", 0)); a.listen(1)
print("addrinuse", name(lambda: socket.socket().bind(("127.0.0.1", a.getsockname()[1]))))
print("notconn", name(lambda: socket.socket().getpeername()))
print("isconn", name(lambda: (lambda s: (s.connect(("127.0.0.1", a.getsockname()[1])), s.connect(("127.0.0.1", a.getsockname()[1]))))(socket.socket())))
print("inval_backlog_listen_connected", name(lambda: (lambda s: (s.connect(("127.0.0.1", a.getsockname()[1])), s.listen(1)))(socket.socket())))
print("noprotoopt", name(lambda: socket.socket().setsockopt(socket.SOL_SOCKET, 4242, 1)))
def v6only_mapped():
    s = socket.socket(socket.AF_INET6)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.connect(("::ffff:127.0.0.1", a.getsockname()[1]))
print("v6only_mapped", name(v6only_mapped))
def sendto_connected():
    l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(1)
    c = socket.create_connection(("127.0.0.1", l.getsockname()[1]))
    c.sendto(b"xy", ("127.0.0.1", l.getsockname()[1]))  # TCP ignores the address
    assert l.accept()[0].recv(10) == b"xy"
print("sendto_connected", name(sendto_connected))
