"""The unspecified address as a destination means this host: TCP connects and UDP
sends to 0.0.0.0 and :: reach local sockets, as Go's dialer relies on. Prints one
line per case; the same on Linux and in a container."""
import errno, socket


def show(label, f):
    try:
        print(label, f())
    except OSError as e:
        print(label, errno.errorcode.get(e.errno, e.errno))


def tcp(fam, listen_addr, dst, bind=None):
    ls = socket.socket(fam)
    ls.bind((listen_addr, 0))
    ls.listen()
    port = ls.getsockname()[1]
    c = socket.socket(fam)
    try:
        if bind:
            c.bind((bind, 0))
        c.settimeout(5)
        c.connect((dst, port))
        a, _ = ls.accept()
        c.sendall(b"x")
        return f"peer={c.getpeername()[0]} got={a.recv(1)!r}"
    finally:
        c.close()
        ls.close()


def udp(fam, bind_addr, dst, connect):
    r = socket.socket(fam, socket.SOCK_DGRAM)
    r.bind((bind_addr, 0))
    r.settimeout(5)
    port = r.getsockname()[1]
    s = socket.socket(fam, socket.SOCK_DGRAM)
    try:
        if connect:
            s.connect((dst, port))
            s.send(b"y")
            peer = s.getpeername()[0]
        else:
            s.sendto(b"y", (dst, port))
            peer = "-"
        data, src = r.recvfrom(16)
        return f"peer={peer} got={data!r} from={src[0]}"
    finally:
        s.close()
        r.close()


show("tcp4 0.0.0.0", lambda: tcp(socket.AF_INET, "0.0.0.0", "0.0.0.0"))
show("tcp4 0.0.0.0 from 127.0.0.5", lambda: tcp(socket.AF_INET, "0.0.0.0", "0.0.0.0", "127.0.0.5"))
show("tcp6 ::", lambda: tcp(socket.AF_INET6, "::", "::"))
show("tcp6 :: to v4-mapped", lambda: tcp(socket.AF_INET6, "::", "::ffff:0.0.0.0"))
show("udp4 sendto 0.0.0.0", lambda: udp(socket.AF_INET, "127.0.0.1", "0.0.0.0", False))
show("udp4 connect 0.0.0.0", lambda: udp(socket.AF_INET, "127.0.0.1", "0.0.0.0", True))
show("udp6 sendto ::", lambda: udp(socket.AF_INET6, "::1", "::", False))
show("udp6 connect ::", lambda: udp(socket.AF_INET6, "::1", "::", True))
