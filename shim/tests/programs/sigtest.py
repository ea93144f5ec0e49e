"""Blocking socket calls and signals, through libc directly (ctypes), so that the
program sees what the kernel returns (Python's own socket methods retry on EINTR).

  sigtest.py block CALL PIDFILE    block in CALL (accept, connect, recvfrom) until
                                   killed; writes the pid first
  sigtest.py eintr BLACKHOLE       each call interrupted by a handler without
                                   SA_RESTART: EINTR; 20 rounds, fd counts printed
  sigtest.py restart BLACKHOLE     a handler with SA_RESTART: the call goes on and
                                   completes

BLACKHOLE: an address:port where a connect blocks (no answer to ARP or SYN)."""
import ctypes, errno, os, signal, socket, struct, sys, threading, time

libc = ctypes.CDLL(None, use_errno=True)

def sockaddr(host, port):
    return ctypes.create_string_buffer(struct.pack("=H", 2) + struct.pack("!H4s8x", port, socket.inet_aton(host)))

def call(name, s, blackhole=None):
    """One blocking call on socket s through libc; returns the errno name or "ok"."""
    ctypes.set_errno(0)
    if name == "accept":
        r = libc.accept(s.fileno(), None, None)
    elif name == "recvfrom":
        b = ctypes.create_string_buffer(100)
        a = ctypes.create_string_buffer(16)
        l = ctypes.c_uint32(16)
        r = libc.recvfrom(s.fileno(), b, 100, 0, a, ctypes.byref(l))
    else:
        h, p = blackhole
        r = libc.connect(s.fileno(), sockaddr(h, p), 16)
    if r >= 0:
        if name == "accept":
            os.close(r)
        return "ok"
    return errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))

def make(name):
    if name == "accept":
        s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
    elif name == "recvfrom":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0))
    else:
        s = socket.socket()
    return s

def nfds():
    return len(os.listdir("/proc/self/fd"))

mode = sys.argv[1]
if mode == "block":
    what, pidfile = sys.argv[2], sys.argv[3]
    s = make(what)
    bh = ("10.88.0.99", 80)
    with open(pidfile + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename(pidfile + ".tmp", pidfile)
    print(what, call(what, s, bh), flush=True)
    sys.exit(3)

host, port = sys.argv[2].rsplit(":", 1)
bh = (host, int(port))
main = threading.get_ident()
hits = [0]
signal.signal(signal.SIGUSR1, lambda *a: hits.__setitem__(0, hits[0] + 1))
signal.siginterrupt(signal.SIGUSR1, mode == "eintr")

def poke(delay, then=None):
    def run():
        time.sleep(delay)
        signal.pthread_kill(main, signal.SIGUSR1)
        if then:
            time.sleep(0.3)
            then()
    threading.Thread(target=run, daemon=True).start()

if mode == "eintr":
    before = None
    for rnd in range(21):
        for what in ("accept", "recvfrom", "connect"):
            s = make(what)
            poke(0.05)
            r = call(what, s, bh)
            s.close()
            if r != "EINTR":
                print("round", rnd, what, r)
        if rnd == 0:
            before = nfds()
    print("eintr rounds done, handler ran", hits[0], "fds", before, nfds())
else:
    # The handler runs, the call restarts and completes when its event comes.
    s = make("accept")
    addr = s.getsockname()
    poke(0.1, lambda: socket.create_connection(addr).close())
    print("accept after restart", call("accept", s), "handler ran", hits[0])
    u = make("recvfrom")
    addr = u.getsockname()
    poke(0.1, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", addr))
    print("recvfrom after restart", call("recvfrom", u), "handler ran", hits[0])
    c = make("connect")
    srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
    # connect to a live listener restarted by the handler: completes.
    poke(0.0)
    print("connect after restart", call("connect", c, srv.getsockname()), "handler ran", hits[0])
