"""Bulk TCP transfers whose bytes are checked end to end (the fault tests).

    bulk.py send HOST PORT BYTES SEED   connect (retrying 30 s), send BYTES of a
                                        seeded pseudo-random stream, close
    bulk.py send-no-wait HOST PORT BYTES SEED
                                        the same, but close at once and exit
                                        without waiting for the peer
    bulk.py recv PORT [HOST]            listen, accept one connection, read to
                                        its end
    bulk.py serve PORT BYTES SEED       listen, accept one, send the stream
    bulk.py fetch HOST PORT             connect (retrying 30 s), read to the end

Each prints "bytes N sha256 HEX seconds S" of what it sent or received; an
error is printed as "error ERRNO TEXT" with exit status 1. Every 10 s a
transfer prints "ROLE: N bytes after S s" on stderr: a test that times out shows
which direction stalled, and where.
"""
import hashlib
import random
import socket
import sys
import threading
import time

CHUNK = 1 << 20
PROGRESS_EVERY = 10.0


class Progress:
    """Bytes moved so far, reported on stderr every PROGRESS_EVERY seconds
    by a thread of its own (so a transfer stuck in one call still reports)."""

    def __init__(self, role):
        self.role, self.n, self.t0 = role, 0, time.monotonic()
        threading.Thread(target=self.report, daemon=True).start()

    def add(self, n):
        self.n += n

    def report(self):
        while True:
            time.sleep(PROGRESS_EVERY)
            took = time.monotonic() - self.t0
            print(f"{self.role}: {self.n} bytes after {took:.0f} s", file=sys.stderr, flush=True)


def stream(total, seed):
    rng = random.Random(int(seed))
    left = total
    while left > 0:
        n = min(CHUNK, left)
        yield rng.randbytes(n)
        left -= n


def send_all(sock, total, seed, wait=True):
    h = hashlib.sha256()
    n = 0
    progress = Progress(f"send to {sock.getpeername()[:2]}")
    for block in stream(total, seed):
        sock.sendall(block)
        h.update(block)
        n += len(block)
        progress.add(len(block))
    if not wait:
        sock.close()
        return n, h.hexdigest()
    sock.shutdown(socket.SHUT_WR)
    # The peer's close says it read everything.
    sock.recv(1)
    return n, h.hexdigest()


def recv_all(sock):
    h = hashlib.sha256()
    n = 0
    progress = Progress(f"recv from {sock.getpeername()[:2]}")
    while True:
        b = sock.recv(1 << 18)
        if not b:
            return n, h.hexdigest()
        h.update(b)
        n += len(b)
        progress.add(len(b))


def connect(host, port):
    """A connection to the peer, retried for 30 s while it starts."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return socket.create_connection((host, port))
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def listener(port, host="::"):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    l = socket.socket(fam)
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6:
        l.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    l.bind((host, port))
    l.listen(1)
    return l


def main():
    t0 = time.monotonic()
    try:
        if sys.argv[1] in ("send", "send-no-wait"):
            host, port, total, seed = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
            s = connect(host, port)
            t0 = time.monotonic()
            n, d = send_all(s, total, seed, wait=sys.argv[1] == "send")
        elif sys.argv[1] == "fetch":
            host, port = sys.argv[2], int(sys.argv[3])
            s = connect(host, port)
            t0 = time.monotonic()
            n, d = recv_all(s)
            s.close()
        elif sys.argv[1] == "recv":
            l = listener(int(sys.argv[2]), *sys.argv[3:4])
            print("listening", flush=True)
            c, _ = l.accept()
            t0 = time.monotonic()
            n, d = recv_all(c)
            c.close()
        else:
            port, total, seed = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
            l = listener(port)
            print("listening", flush=True)
            c, _ = l.accept()
            t0 = time.monotonic()
            n, d = send_all(c, total, seed)
    except OSError as e:
        print("error", e.errno, e, flush=True)
        sys.exit(1)
    print("bytes", n, "sha256", d, "seconds", round(time.monotonic() - t0, 2), flush=True)


main()
