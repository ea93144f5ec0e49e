"""Non-blocking connect with the socket registered in epoll *before* connect()
(as nginx and asyncio do): EINPROGRESS, then EPOLLOUT, SO_ERROR 0, data both ways."""
import errno, selectors, socket, sys, threading
host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
srv = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
srv.bind((host, 0)); srv.listen(8)
port = srv.getsockname()[1]
def serve():
    c, _ = srv.accept()
    c.sendall(c.recv(100).upper()); c.close()
threading.Thread(target=serve, daemon=True).start()
c = socket.socket(srv.family)
c.setblocking(False)
sel = selectors.EpollSelector()
sel.register(c, selectors.EVENT_WRITE)          # registered before connect()
rc = c.connect_ex((host, port))
assert rc == errno.EINPROGRESS, f"connect_ex returned {errno.errorcode.get(rc, rc)}"
events = sel.select(timeout=10)
assert events, "no EPOLLOUT within 10 s"
err = c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
assert err == 0, f"SO_ERROR {errno.errorcode.get(err, err)}"
sel.modify(c, selectors.EVENT_READ)
c.send(b"hello epoll")
sel.select(timeout=10)
print("reply:", c.recv(100).decode())
