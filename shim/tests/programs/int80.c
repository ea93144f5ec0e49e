/* The 32-bit system call entry (int $0x80) from a 64-bit program: socketcall and
 * the direct i386 socket call must not create sockets under the seccomp shim;
 * getpid shows other i386 calls still run. Built -no-pie so the argument block
 * has a 32-bit address. */
#include <stdio.h>
#include <unistd.h>

static unsigned int args[3] = {2, 1, 0}; /* AF_INET, SOCK_STREAM, 0 */

static long int80(long nr, long b, long c, long d) {
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(nr), "b"(b), "c"(c), "d"(d) : "memory");
    return r;
}

int main(void) {
    long r = int80(102, 1, (long)args, 0); /* socketcall(SYS_SOCKET, args) */
    printf("i386 socketcall %s\n", r >= 0 ? "ok" : r == -38 ? "ENOSYS" : "other");
    r = int80(359, 2, 1, 0); /* socket(AF_INET, SOCK_STREAM, 0) */
    printf("i386 socket %s\n", r >= 0 ? "ok" : r == -38 ? "ENOSYS" : "other");
    r = int80(20, 0, 0, 0); /* getpid */
    printf("i386 getpid %s\n", r == getpid() ? "ok" : "wrong");
    return 0;
}
