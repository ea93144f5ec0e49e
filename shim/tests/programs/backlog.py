"""64 clients connect at once to a listener with backlog 128 that has not accepted
yet; all must connect, then all are accepted. Prints 'connected=N accepted=M'."""
import socket, sys, threading
N = int(sys.argv[1]) if len(sys.argv) > 1 else 64
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0))
srv.listen(128)
port = srv.getsockname()[1]
go = threading.Barrier(N)
ok = []
errs = []
def client():
    s = socket.socket()
    s.settimeout(20)
    go.wait()
    try:
        s.connect(("127.0.0.1", port))
        ok.append(s)
    except OSError as e:
        errs.append(e)
ts = [threading.Thread(target=client) for _ in range(N)]
for t in ts: t.start()
for t in ts: t.join()
accepted = 0
srv.settimeout(10)
while accepted < len(ok):
    c, _ = srv.accept()
    accepted += 1
print(f"connected={len(ok)} accepted={accepted} errors={errs}")
