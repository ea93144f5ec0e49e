"""Abortive close: bytes written before SO_LINGER {1, 0} + close() reach the peer
before its reset, every time; right after the reset the peer's socket reads
ECONNRESET once, then EOF."""
import collections, errno, socket, struct, time

N = int(__import__("sys").argv[1]) if len(__import__("sys").argv) > 1 else 100000
got = collections.Counter()
after = collections.Counter()
for i in range(20):
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen()
    c = socket.create_connection(ls.getsockname(), timeout=5)
    a, _ = ls.accept()
    a.sendall(b"x" * N)
    a.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    a.close()
    data = b""
    try:
        while len(data) < N:
            d = c.recv(4096)
            if not d:
                break
            data += d
        got["all bytes" if len(data) == N else f"{len(data)} bytes"] += 1
        try:
            d = c.recv(1)
            after["eof" if d == b"" else "data"] += 1
        except OSError as e:
            after[errno.errorcode.get(e.errno, e.errno)] += 1
    except OSError as e:
        got[f"{len(data)} bytes then {errno.errorcode.get(e.errno, e.errno)}"] += 1
    try:
        after["then " + ("eof" if c.recv(1) == b"" else "data")] += 1
    except OSError as e:
        after["then " + errno.errorcode.get(e.errno, str(e.errno))] += 1
    c.close()
    ls.close()
print("before the reset", dict(got))
print("after the bytes", dict(after))
