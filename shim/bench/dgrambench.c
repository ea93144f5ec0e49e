/* dgrambench: the cost of datagrams with an address — what a DNS or QUIC server
 * in a container does for every packet — on the loopback.
 *
 *   dgrambench N
 *
 * flood: the parent sends N 64-byte datagrams with sendto() and a destination on
 * an unconnected UDP socket as fast as it can; a child receives them with recv().
 * Prints the sender's sendto calls per second and the datagrams the child
 * received per second (first to last; the loopback drops what overflows a
 * receive buffer, so the second can be lower).
 * echo: a child answers each datagram with recvfrom() + sendto() to its source
 * (a DNS server's loop); the parent does N round trips, each sendto() + recvfrom()
 * on an unconnected socket. Prints round trips per second.
 * connected: the same flood with connect() and send() (the stand-in's native
 * path), the stack's own rate for comparison.
 * Run natively, and in containers of each shim, to compare. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static int bound(struct sockaddr_in *a) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0) die("socket");
    int big = 4 << 20;
    setsockopt(s, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a->sin_port = 0;
    socklen_t al = sizeof *a;
    if (bind(s, (struct sockaddr *)a, sizeof *a) < 0) die("bind");
    if (getsockname(s, (struct sockaddr *)a, &al) < 0) die("getsockname");
    return s;
}

static void flood(int n, int connected) {
    struct sockaddr_in a;
    int r = bound(&a);
    int report[2];
    if (pipe(report) < 0) die("pipe");
    pid_t child = fork();
    if (child == 0) {
        char buf[2048];
        int got = 0;
        double first = 0, last = 0;
        struct pollfd p = {.fd = r, .events = POLLIN};
        while (got < n && poll(&p, 1, 1000) == 1) {
            if (recv(r, buf, sizeof buf, 0) < 0) die("recv");
            last = now();
            if (got++ == 0) first = last;
        }
        double rate = got > 1 ? (got - 1) / (last - first) : 0;
        if (write(report[1], &rate, sizeof rate) != sizeof rate) die("write");
        _exit(0);
    }
    close(r);
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0) die("socket");
    if (connected && connect(s, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
    char msg[64];
    memset(msg, 'x', sizeof msg);
    usleep(100000);
    double t0 = now();
    for (int i = 0; i < n; i++)
        if ((connected ? send(s, msg, sizeof msg, 0)
                       : sendto(s, msg, sizeof msg, 0, (struct sockaddr *)&a, sizeof a)) !=
            sizeof msg)
            die("sendto");
    double t1 = now();
    double received = 0;
    if (read(report[0], &received, sizeof received) != sizeof received) die("read");
    waitpid(child, NULL, 0);
    const char *what = connected ? "connected_send" : "sendto";
    printf("%s %.0f per_s\n%s_received %.0f per_s\n", what, n / (t1 - t0), what, received);
}

static void echo(int n) {
    struct sockaddr_in a;
    int r = bound(&a);
    pid_t child = fork();
    if (child == 0) {
        char buf[2048];
        for (;;) {
            struct sockaddr_in from;
            socklen_t fl = sizeof from;
            ssize_t k = recvfrom(r, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
            if (k < 0) die("recvfrom");
            if (k == 1 && buf[0] == 'q') _exit(0);
            if (sendto(r, buf, k, 0, (struct sockaddr *)&from, fl) != k) die("sendto (server)");
        }
    }
    close(r);
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0) die("socket");
    char msg[64], buf[2048];
    memset(msg, 'x', sizeof msg);
    double t0 = now();
    for (int i = 0; i < n; i++) {
        if (sendto(s, msg, sizeof msg, 0, (struct sockaddr *)&a, sizeof a) != sizeof msg)
            die("sendto");
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        if (recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl) != sizeof msg)
            die("recvfrom");
        if (from.sin_port != a.sin_port) {
            fprintf(stderr, "answer from port %d, expected %d\n", ntohs(from.sin_port),
                    ntohs(a.sin_port));
            exit(1);
        }
    }
    double t1 = now();
    if (sendto(s, "q", 1, 0, (struct sockaddr *)&a, sizeof a) != 1) die("sendto");
    waitpid(child, NULL, 0);
    printf("echo_round_trips %.0f per_s\n", n / (t1 - t0));
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 100000;
    flood(n, 0);
    flood(n, 1);
    echo(n / 5);
    return 0;
}
