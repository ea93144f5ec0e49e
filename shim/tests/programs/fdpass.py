"""Descriptor passing and receives on unix sockets that the seccomp shim carries
out itself (recvmsg with SCM_RIGHTS, MSG_PEEK, MSG_WAITALL, a blocking receive):
the output must be the same on the host and in a container."""
import os, socket, sys, time, threading
# Legit descriptor passing inside the container: a stand-in, a pipe, a unix socket.
a, b = socket.socketpair()
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen()
r, w = os.pipe()
socket.send_fds(a, [b"x"], [l.fileno(), w, a.fileno()])
msg, fds, flags, addr = socket.recv_fds(b, 10, 5)
print("received", msg, len(fds), flags)
l2 = socket.socket(fileno=fds[0])
print("passed listener", l2.getsockname()[0])
c = socket.create_connection(l2.getsockname()); s, _ = l2.accept(); c.sendall(b"ping"); print("via passed listener", s.recv(4))
os.write(fds[1], b"pipe!"); print("via passed pipe", os.read(r, 5))
# MSG_PEEK and MSG_WAITALL on a unix stream through recvmsg
a.sendall(b"abc")
print("peek", b.recvmsg(10, 0, socket.MSG_PEEK)[0], "then", b.recvmsg(10)[0])
def later():
    time.sleep(0.3); a.sendall(b"45")
    time.sleep(0.3); a.sendall(b"6789")
a.sendall(b"123")
threading.Thread(target=later).start()
t0 = time.time()
print("waitall", b.recvmsg(9, 0, socket.MSG_WAITALL)[0], round(time.time() - t0, 1) >= 0.5)
# recvmsg on a TCP stand-in and a blocking recvmsg that waits
def later2():
    time.sleep(0.2); c.sendall(b"late")
threading.Thread(target=later2).start()
print("tcp recvmsg", s.recvmsg(100)[0])
