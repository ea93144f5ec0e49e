"""TCP between two programs over the loopback, as the kernel shows it: names,
TCP_INFO's state, bytes both ways, half-close, a close with bytes unread, what
ss lists while connected and after both ends closed, dups and epoll made before
the connect. Run on the kernel and in a container with --loopback-splice (the
connections are then one kernel AF_UNIX pair); the output must be the same."""
import hashlib
import os
import select
import socket
import struct
import subprocess
import threading
import time


def established(port):
    out = subprocess.run(
        ["ss", "-tnH", "state", "established"], capture_output=True, text=True
    ).stdout
    return sum(1 for line in out.splitlines() if f":{port} " in line + " ")


def tcp_state(s):
    return struct.unpack("B", s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[:1])[0]


for fam, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    name = "v4" if fam == socket.AF_INET else "v6"
    l = socket.socket(fam)
    l.bind((host, 0))
    l.listen(8)
    port = l.getsockname()[1]
    c = socket.socket(fam)
    d = os.dup(c.fileno())  # made before the connect: must go on working
    ep = select.epoll()
    ep.register(c.fileno(), select.EPOLLIN)
    c.connect((host, port))
    s, peer = l.accept()
    print(name, "names", c.getpeername()[:2] == (host, port), s.getsockname()[:2] == (host, port),
          peer[:2] == c.getsockname()[:2], s.getpeername()[:2] == c.getsockname()[:2])
    print(name, "tcp_info state", tcp_state(c), tcp_state(s))
    print(name, "ss established", established(port))
    # Bytes both ways at once.
    blob = os.urandom(4 << 20)
    got = {}

    def pull(sock, key):
        h, n = hashlib.sha256(), 0
        while n < len(blob):
            b = sock.recv(1 << 16)
            if not b:
                break
            h.update(b)
            n += len(b)
        got[key] = (n, h.hexdigest() == hashlib.sha256(blob).hexdigest())

    ts = [threading.Thread(target=pull, args=(s, "to server")),
          threading.Thread(target=pull, args=(c, "to client"))]
    for t in ts:
        t.start()
    c.sendall(blob)
    s.sendall(blob)
    for t in ts:
        t.join()
    print(name, "bytes", sorted(got.items()))
    # The dup and the epoll registration made before the connect.
    os.write(d, b"via dup")
    print(name, "dup", s.recv(100))
    s.sendall(b"x")
    print(name, "epoll", [e for _, e in ep.poll(2)] == [select.EPOLLIN], c.recv(1))
    ep.close()
    os.close(d)
    # Half-close: the server reads EOF and can still answer.
    c.shutdown(socket.SHUT_WR)
    print(name, "after shutdown", s.recv(10), end=" ")
    s.sendall(b"still")
    print(c.recv(10))
    s.close()
    c.close()
    # A close with bytes unread resets the peer.
    c = socket.socket(fam)
    c.connect((host, port))
    s, _ = l.accept()
    c.sendall(b"unread")
    time.sleep(0.1)
    s.close()
    try:
        print(name, "peer closed with bytes unread", c.recv(10))
    except ConnectionResetError:
        print(name, "peer closed with bytes unread ECONNRESET")
    c.close()
    l.close()
    # Both ends closed: ss lists nothing established within a few seconds.
    for _ in range(50):
        if established(port) == 0:
            break
        time.sleep(0.1)
    print(name, "ss after close", established(port))
