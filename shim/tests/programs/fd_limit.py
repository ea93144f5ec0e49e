"""socket() and accept() at the descriptor limit: EMFILE, and the waiting
connection is still there once a descriptor is free again."""
import errno, os, resource, socket

ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(8)
c = socket.create_connection(ls.getsockname(), timeout=5)
c.sendall(b"hello")
open_now = len(os.listdir("/proc/self/fd"))
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (open_now + 3, hard))
made = []
err = None
while len(made) < 50:
    try:
        made.append(socket.socket())
    except OSError as e:
        err = e.errno
        break
print("sockets before the limit", len(made) >= 1, "then", errno.errorcode.get(err, err))
try:
    a, _ = ls.accept()
    print("accept at the limit ok")
except OSError as e:
    print("accept at the limit", errno.errorcode.get(e.errno, e.errno))
made.pop().close()
ls.settimeout(5)
a, _ = ls.accept()
print("accept after freeing one", a.recv(5))
