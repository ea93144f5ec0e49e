"""res_query/res_search through the global symbol scope (where the shim interposes)."""
import ctypes
lib = ctypes.CDLL(None)
buf = ctypes.create_string_buffer(512)
n = lib.res_query(b"web.test", 1, 1, buf, 512)
print("res_query", n, bytes([10,88,0,80]) in buf.raw[:n])
n = lib.res_search(b"web", 1, 1, buf, 512)
print("res_search", n, bytes([10,88,0,80]) in buf.raw[:max(n,0)])
print("res_query nx", lib.res_query(b"nope.test", 1, 1, buf, 512))
