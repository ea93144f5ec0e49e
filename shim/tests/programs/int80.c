/* The 32-bit system call entry (int $0x80) from a 64-bit program: socketcall and
 * the direct i386 socket calls must not create or receive sockets under the
 * seccomp shim;
 * the interface ioctls must not describe the host's interfaces; an i386 open of
 * /etc/resolv.conf gets the container's file (with --dns); getpid shows other
 * i386 calls still run. Built -no-pie so every address is a 32-bit one. */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static unsigned int args[3] = {2, 1, 0}; /* AF_INET, SOCK_STREAM, 0 */
static char path[] = "/etc/resolv.conf";
static char ifbuf[40 * 16];
static struct {
    int len;
    unsigned int buf; /* a 32-bit pointer */
} ifc32;
static char line[128];

static long int80(long nr, long b, long c, long d) {
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(nr), "b"(b), "c"(c), "d"(d) : "memory");
    return r;
}

static const char *en(long r) {
    return r >= 0 ? "ok" : r == -38 ? "ENOSYS" : r == -1 ? "EPERM" : "other";
}

int main(void) {
    long r = int80(102, 1, (long)args, 0); /* socketcall(SYS_SOCKET, args) */
    printf("i386 socketcall %s\n", en(r));
    r = int80(359, 2, 1, 0); /* socket(AF_INET, SOCK_STREAM, 0) */
    printf("i386 socket %s\n", en(r));
    r = int80(417, 0, 0, 0); /* recvmmsg_time64: it would install passed descriptors */
    printf("i386 recvmmsg_time64 %s\n", en(r));
    r = int80(20, 0, 0, 0); /* getpid */
    printf("i386 getpid %s\n", r == getpid() ? "ok" : "wrong");
    int u = socket(AF_UNIX, SOCK_DGRAM, 0);
    ifc32.len = sizeof ifbuf;
    ifc32.buf = (unsigned int)(unsigned long)ifbuf;
    r = int80(54, u, 0x8912, (long)&ifc32); /* ioctl(u, SIOCGIFCONF) */
    printf("i386 ifconf %s", en(r));
    for (int i = 0; r == 0 && i < ifc32.len / 32; i++)
        printf(" %s", ifbuf + 32 * i);
    printf("\n");
    r = int80(5, (long)path, 0, 0); /* open(path, O_RDONLY) */
    if (r >= 0) {
        long n = read((int)r, line, sizeof line - 1);
        line[n > 0 ? n : 0] = 0;
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        printf("i386 open: %s\n", line);
    } else {
        printf("i386 open %s\n", en(r));
    }
    return 0;
}
