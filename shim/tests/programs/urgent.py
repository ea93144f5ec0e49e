"""Urgent data (MSG_OOB) over TCP as Linux delivers it: the receiver without
SO_OOBINLINE reads up to the mark, SIOCATMARK says it is there, recv(MSG_OOB)
takes the urgent byte and the rest follows; with SO_OOBINLINE the byte comes in
line after the mark; select reports the exception. With a port argument the
script is the client of a receiver elsewhere (the kernel side of a TAP)."""
import fcntl, select, socket, struct, sys, time

SIOCATMARK = 0x8905


def atmark(s):
    return struct.unpack("i", fcntl.ioctl(s, SIOCATMARK, b"\0" * 4))[0]


def receive(a, inline):
    a.settimeout(5)
    if inline:
        a.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)
    r, _, x = select.select([a], [], [a], 5)
    print("inline" if inline else "plain", "exception reported", bool(x))
    data = a.recv(100)
    print(" before the mark", data, "at mark", atmark(a))
    if not inline:
        print(" urgent", a.recv(1, socket.MSG_OOB))
    rest = b""
    while len(rest) < (3 if inline else 2):
        rest += a.recv(100)
    print(" then", rest)


def send(c):
    c.sendall(b"ab")
    time.sleep(0.2)
    c.send(b"!", socket.MSG_OOB)
    time.sleep(0.2)
    c.sendall(b"cd")


if len(sys.argv) == 3 and sys.argv[1] == "serve":
    # server mode: receive on PORT (plain) and PORT+1 (inline), from elsewhere
    port = int(sys.argv[2])
    ls = []
    for inline in (False, True):
        l = socket.socket()
        l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        l.bind(("0.0.0.0", port + inline))
        l.listen()
        ls.append(l)
    print("ready", flush=True)
    for inline, l in zip((False, True), ls):
        l.settimeout(10)
        a, _ = l.accept()
        time.sleep(0.6)
        receive(a, inline)
    sys.exit(0)

if len(sys.argv) > 2:
    # client mode: host port
    for inline in (False, True):
        c = socket.create_connection((sys.argv[1], int(sys.argv[2]) + inline), timeout=5)
        send(c)
        time.sleep(0.5)
        c.close()
    sys.exit(0)

for inline in (False, True):
    l = socket.socket()
    l.bind(("127.0.0.1", 0))
    l.listen()
    c = socket.create_connection(l.getsockname(), timeout=5)
    a, _ = l.accept()
    send(c)
    time.sleep(0.2)
    receive(a, inline)
