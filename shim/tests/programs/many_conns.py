"""Many TCP connections at once, with data on each: to an echo server on the
container's loopback (started here) and to a kernel echo server over the TAP.

    many_conns.py KERNEL_ADDR KERNEL_PORT N
    many_conns.py serve ADDR PORT      the kernel side's echo server

Opens N connections to each server, sends every connection its own bytes, checks
that each gets exactly its own bytes back, closes half and sends again on the
others, then closes all. Prints `ok N` or fails with the first difference.
"""
import selectors
import socket
import sys
import threading


def echo_server(l):
    sel = selectors.DefaultSelector()
    l.setblocking(False)
    sel.register(l, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            if s is l:
                try:
                    c, _ = l.accept()
                except OSError:
                    continue
                c.setblocking(False)
                sel.register(c, selectors.EVENT_READ)
                continue
            try:
                b = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                b = b""
            if not b:
                sel.unregister(s)
                s.close()
            else:
                s.sendall(b)


def exchange(conns, tag):
    for i, c in enumerate(conns):
        c.sendall(b"%s-%d;" % (tag, i))
    for i, c in enumerate(conns):
        want = b"%s-%d;" % (tag, i)
        got = b""
        while len(got) < len(want):
            b = c.recv(len(want) - len(got))
            if not b:
                raise SystemExit("connection %d closed early (%s)" % (i, tag))
            got += b
        if got != want:
            raise SystemExit("connection %d got %r, wanted %r" % (i, got, want))


def main():
    if sys.argv[1] == "serve":
        l = socket.socket()
        l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        l.bind((sys.argv[2], int(sys.argv[3])))
        l.listen(4096)
        print("listening", flush=True)
        echo_server(l)
    kaddr, kport, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    l = socket.socket()
    l.bind(("127.0.0.1", 0))
    l.listen(4096)
    threading.Thread(target=echo_server, args=(l,), daemon=True).start()
    targets = [("127.0.0.1", l.getsockname()[1]), (kaddr, kport)]
    conns = []
    for t in targets:
        for _ in range(n):
            c = socket.create_connection(t, timeout=20)
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conns.append(c)
    exchange(conns, b"a")
    for c in conns[::2]:
        c.close()
    rest = conns[1::2]
    exchange(rest, b"b")
    exchange(rest, b"c" * 3000)
    for c in rest:
        c.close()
    print("ok", n, flush=True)


main()
