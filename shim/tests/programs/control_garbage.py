"""Sends garbage to the container's control socket while a TCP connection is open,
then checks that the connection and new sockets still work."""
import os, random, socket, struct, threading
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(4)
port = srv.getsockname()[1]
def serve(c):
    while (d := c.recv(4096)):
        c.sendall(d)
def echo():
    while True:
        c, _ = srv.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
threading.Thread(target=echo, daemon=True).start()
cl = socket.create_connection(("127.0.0.1", port))
cl.sendall(b"before"); assert cl.recv(100) == b"before"

path = os.environ["NETCELL_CONTROL"]
rng = random.Random(1234)
replies = closed = 0
for i in range(200):
    g = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    g.settimeout(5)
    g.connect(path)
    kind = i % 4
    if kind == 0:
        msg = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 64)))
    elif kind == 1:   # a valid header, garbage body, no Hello first
        msg = b"nc\x01" + bytes([rng.randrange(0, 255)]) + os.urandom(rng.randrange(0, 40))
    elif kind == 2:   # oversize
        msg = os.urandom(5000)
    else:             # Hello, then garbage with a valid header
        g.send(b"nc\x01\x01" + struct.pack("<IQI", 1, 0, os.getpid()))
        g.recv(100)
        msg = b"nc\x01" + bytes([rng.randrange(11, 255)]) + os.urandom(12)
    try:
        g.send(msg)
        r = g.recv(100)
        if r: replies += 1
        else: closed += 1
    except OSError:
        closed += 1
    g.close()
cl.sendall(b"after"); assert cl.recv(100) == b"after"
fresh = socket.create_connection(("127.0.0.1", port))
fresh.sendall(b"fresh"); assert fresh.recv(100) == b"fresh"
print(f"still serving; garbage got {replies} error replies, {closed} closed connections")
