"""Closing a listener is immediate: a connect right after close() is refused,
and connections waiting in its backlog are reset."""
import collections, errno, socket

outcomes = collections.Counter()
for i in range(200):
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen()
    port = ls.getsockname()[1]
    ls.close()
    c = socket.socket()
    c.settimeout(5)
    try:
        c.connect(("127.0.0.1", port))
        outcomes["connected"] += 1
    except OSError as e:
        outcomes[errno.errorcode.get(e.errno, str(e.errno))] += 1
    c.close()
print("connect after close", dict(outcomes))

ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(4)
waiting = [socket.create_connection(ls.getsockname(), timeout=5) for _ in range(3)]
ls.close()
got = collections.Counter()
for w in waiting:
    try:
        d = w.recv(1)
        got["eof" if d == b"" else "data"] += 1
    except OSError as e:
        got[errno.errorcode.get(e.errno, str(e.errno))] += 1
print("backlog after close", dict(got))
