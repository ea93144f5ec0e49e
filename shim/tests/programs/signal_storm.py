"""UDP send-and-receive rounds on the container's loopback while another thread
signals the sending and receiving thread as fast as it can (a handler with
SA_RESTART, as Go's runtime preempts its threads with SIGURG). A datagram taken
for a receive whose answer a signal cut off is lost (the next receive waits for it
until SO_RCVTIMEO); a send carried out twice arrives twice.

  signal_storm.py ROUNDS    prints "rounds R signals S lost L duplicated D", or
                            "stuck at round N" when five kicks were lost too
"""
import ctypes, os, signal, socket, struct, sys, threading, time

libc = ctypes.CDLL(None, use_errno=True)
rounds = int(sys.argv[1])
signals = 0

def on_signal(*_):
    global signals
    signals += 1

signal.signal(signal.SIGUSR1, on_signal)
signal.siginterrupt(signal.SIGUSR1, False)  # SA_RESTART: the kernel restarts the call

s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
dest = s.getsockname()
KICK = 1 << 63
progress = 0
main = threading.get_ident()
done = False

def storm():
    while not done:
        signal.pthread_kill(main, signal.SIGUSR1)
        time.sleep(0.00005)

def watchdog():
    k = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    seen, kicks = -1, 0
    while not done:
        time.sleep(1)
        if progress != seen:
            seen, kicks = progress, 0
            continue
        kicks += 1
        if kicks > 5:  # the kicks are lost too
            print("stuck at round", progress + 1, "signals", signals, flush=True)
            os._exit(1)
        k.sendto(struct.pack("!Q", KICK), dest)

for f in (storm, watchdog):
    threading.Thread(target=f, daemon=True).start()
buf = ctypes.create_string_buffer(64)
name = ctypes.create_string_buffer(16)
lost = dup = 0
for i in range(rounds):
    s.sendto(struct.pack("!Q", i), dest)
    while True:
        n = ctypes.c_uint32(16)
        r = libc.recvfrom(s.fileno(), buf, 64, 0, name, ctypes.byref(n))
        if r < 0:
            e = ctypes.get_errno()
            if e == 4:  # EINTR: ask again
                continue
            print("error", e, flush=True)
            os._exit(1)
        got = struct.unpack("!Q", buf.raw[:8])[0]
        if got == i:
            break
        if got == KICK:  # this round's datagram is lost
            lost += 1
            break
        dup += 1  # an earlier round's datagram again
    progress = i
done = True
print("rounds", rounds, "signals", signals, "lost", lost, "duplicated", dup, flush=True)
