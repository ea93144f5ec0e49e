"""Runs a command under an outer seccomp filter that makes the seccomp(2) system
call fail with EPERM, as some outer sandboxes do: netcell must say what is wrong.
  deny_seccomp.py PROGRAM ARGS..."""
import ctypes, os, struct, sys

libc = ctypes.CDLL(None, use_errno=True)
libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
def insn(code, k, jt=0, jf=0):
    return struct.pack("=HBBI", code, jt, jf, k)
SECCOMP_NR = 317
prog = (insn(0x20, 0)                        # A = syscall number
        + insn(0x15, SECCOMP_NR, 0, 1)       # if A == seccomp
        + insn(0x06, 0x00050000 | 1)         #   return ERRNO(EPERM)
        + insn(0x06, 0x7FFF0000))            # return ALLOW
code = ctypes.create_string_buffer(prog)
fprog = ctypes.create_string_buffer(struct.pack("=H6xQ", 4, ctypes.addressof(code)))
assert libc.prctl(38, 1, 0, 0, 0) == 0                             # PR_SET_NO_NEW_PRIVS
assert libc.prctl(22, 2, ctypes.addressof(fprog), 0, 0) == 0       # PR_SET_SECCOMP, FILTER
os.execv(sys.argv[1], sys.argv[1:])
