"""Short connections one after the other, for the soak test.

    soak.py OUT N [HOST PORT]

Without HOST, its own listener on 127.0.0.1:7100 takes them. Each connection
sends a byte, gets it back, closes. First 500 as a warm-up, then "warm" in
OUT and a wait for OUT.go; then N, "done N SECONDS" in OUT, and a wait for
OUT.end (the test reads netcell's figures meanwhile).
"""
import os
import socket
import sys
import threading
import time

out, n = sys.argv[1], int(sys.argv[2])
if len(sys.argv) > 3:
    target = (sys.argv[3], int(sys.argv[4]))
else:
    target = ("127.0.0.1", 7100)
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(target)
    l.listen(1024)

    def serve():
        while True:
            c, _ = l.accept()
            c.sendall(c.recv(1))
            c.close()

    threading.Thread(target=serve, daemon=True).start()


def one():
    c = socket.create_connection(target)
    c.sendall(b"x")
    assert c.recv(1) == b"x"
    c.close()


def say(text):
    with open(out, "a") as f:
        f.write(text + "\n")


def wait(path):
    while not os.path.exists(path):
        time.sleep(0.05)


for _ in range(500):
    one()
say("warm")
wait(out + ".go")
t0 = time.monotonic()
for _ in range(n):
    one()
say("done %d %.1f" % (n, time.monotonic() - t0))
wait(out + ".end")
