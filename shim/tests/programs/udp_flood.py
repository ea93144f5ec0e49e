"""UDP floods a program in a container may make, and what they must not do.

  udp_flood.py lo N       a connected socket sends N datagrams on the loopback to
                          a reader in another process: prints how many arrived
  udp_flood.py dead ADDR N  a connected socket sends N datagrams to ADDR, a
                          neighbour that never answers: prints the seconds the
                          sends took (Linux drops what waits for the neighbour;
                          a sender is never blocked for ever)
"""
import os, select, socket, sys, time

def lo(n):
    r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    r.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    r.bind(("127.0.0.1", 0))
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:
        got = 0
        while got < n and select.select([r], [], [], 1.0)[0]:
            r.recv(2048)
            got += 1
        os.write(wr, str(got).encode())
        os._exit(0)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(r.getsockname())
    time.sleep(0.2)
    msg = b"x" * 64
    for _ in range(n):
        s.send(msg)
    got = int(os.read(rd, 64))
    os.waitpid(pid, 0)
    print(f"sent {n} arrived {got} share {got * 100 // n}")

def dead(addr, n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((addr, 9))
    t = time.monotonic()
    for _ in range(n):
        s.send(b"y" * 512)
    print(f"sent {n} to a silent neighbour in {time.monotonic() - t:.1f} s")

if sys.argv[1] == "lo":
    lo(int(sys.argv[2]))
else:
    dead(sys.argv[2], int(sys.argv[3]))
