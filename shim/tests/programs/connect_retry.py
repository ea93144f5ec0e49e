"""A connect after a failed one, on the same socket, as Linux answers it: blocking
(the failure reported by that call: the next one tries again), with a timeout
and non-blocking (SO_ERROR took the failure: ECONNABORTED, then a new try)."""
import socket, errno, select
def e(x): return errno.errorcode.get(x, x)
def attempt(s, a):
    try:
        s.connect(a); return "ok"
    except OSError as x:
        return e(x.errno)
# blocking (no timeout): refused, then listen, retries on the same socket
l=socket.socket(); l.bind(('127.0.0.1',0)); a=l.getsockname()
s=socket.socket()
print("blocking 1", attempt(s, a))
l.listen()
print("blocking 2", attempt(s, a))
print("blocking 3", attempt(s, a))
# timeout socket (non-blocking inside): the error is consumed by SO_ERROR
l=socket.socket(); l.bind(('127.0.0.1',0)); a=l.getsockname()
s=socket.socket(); s.settimeout(3)
print("timeout 1", attempt(s, a))
l.listen()
print("timeout 2", attempt(s, a))
print("timeout 3", attempt(s, a))
# non-blocking
l2=socket.socket(); l2.bind(('127.0.0.1',0)); a2=l2.getsockname()
n=socket.socket(); n.setblocking(False)
print("nb 1", e(n.connect_ex(a2)))
select.select([], [n], [], 3)
print("so_error", e(n.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)))
l2.listen()
print("nb 2", e(n.connect_ex(a2)))
print("nb 3", e(n.connect_ex(a2)))
select.select([], [n], [], 3)
print("nb 4", e(n.connect_ex(a2)), "so_error", e(n.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)))
