"""TCP sockets as the preload shim hands them out from its spares (a connect
brings the next socket() its stand-in): what the program sees must be what
Linux shows. Prints facts to compare with a run on the kernel."""
import os
import socket
import subprocess
import sys

srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(128)
addr = srv.getsockname()


def pair():
    s = socket.socket()
    s.connect(addr)
    c, _ = srv.accept()
    return s, c


# The numbers are Linux's: the lowest free descriptor, also after a connect
# brought a spare.
nums = []
for _ in range(3):
    s, c = pair()
    nums += [s.fileno(), c.fileno()]
    s.close()
    c.close()
s = socket.socket()
f = open("/dev/null")
nums += [s.fileno(), f.fileno()]
f.close()
s.close()
print("numbers", nums)

# The flags asked for.
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
print("nonblocking", not s.getblocking(), "inheritable", os.get_inheritable(s.fileno()))
s.close()
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
print("cloexec", not os.get_inheritable(s.fileno()))
s.close()
s, c = pair()
s.close()
c.close()
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
print(
    "protocol",
    s.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL),
    "type",
    s.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE),
    "name",
    s.getsockname(),
)
s.close()

# IPv6 and IPv4 in turns.
ok = 0
for i in range(20):
    fam = socket.AF_INET6 if i % 2 else socket.AF_INET
    host = "::1" if i % 2 else "127.0.0.1"
    l = socket.socket(fam)
    l.bind((host, 0))
    l.listen(1)
    s = socket.socket(fam)
    s.connect(l.getsockname()[:2])
    c, _ = l.accept()
    s.sendall(b"v")
    ok += c.recv(1) == b"v"
    for x in (s, c, l):
        x.close()
print("both families", ok)

# fork: parent and child each make and connect their own sockets (the parent
# holds a spare the child inherits).
s, c = pair()
s.close()
c.close()
pid = os.fork()
if pid == 0:
    for _ in range(30):
        s = socket.socket()
        s.connect(addr)
        s.sendall(b"child")
        s.close()
    os._exit(0)
for _ in range(30):
    s = socket.socket()
    s.connect(addr)
    s.sendall(b"parent")
    s.close()
got = {}
for _ in range(60):
    c, _ = srv.accept()
    d = c.recv(10)
    got[d.decode()] = got.get(d.decode(), 0) + 1
    c.close()
_, st = os.waitpid(pid, 0)
print("fork", sorted(got.items()), "child exit", st)

# A child that makes no socket of its own while its parent's next socket comes
# from the spare it inherited: the parent's close is still the last one.
s, c = pair()
s.close()
c.close()
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(w)
    os.read(r, 1)
    os._exit(0)
os.close(r)
s, c = pair()
s.close()
c.settimeout(5)
try:
    print("close seen with a child alive", c.recv(1))
except socket.timeout:
    print("close seen with a child alive: no (timed out)")
c.close()
os.close(w)
os.waitpid(pid, 0)

# A program that closes every descriptor but its own.
s, c = pair()
s.close()
c.close()
os.closerange(srv.fileno() + 1, 4096)
s, c = pair()
s.sendall(b"x")
print("after closerange", c.recv(1))
s.close()
c.close()

# exec: what a new program finds open is what it inherited, nothing more.
s, c = pair()
s.close()
c.close()
code = "import os; print(sorted(int(x) for x in os.listdir('/proc/self/fd')))"
out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, close_fds=False)
print("exec sees", out.stdout.strip())
