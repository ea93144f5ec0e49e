/* ctlbench: the cost of socket control calls, the ones a front end intercepts.
 *
 *   ctlbench N
 *
 * A child accepts and closes connections on 127.0.0.1 as fast as it can; the
 * parent makes N connections, each socket() + connect() + close(), one after the
 * other. Prints the client's connect+close pairs per second and the server's
 * accepts per second (first to last accept). Run natively, and in containers of
 * each shim, to compare. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
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

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 10000;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    if (l < 0) die("socket");
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (bind(l, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
    if (listen(l, 4096) < 0) die("listen");
    if (getsockname(l, (struct sockaddr *)&a, &al) < 0) die("getsockname");
    int report[2];
    if (pipe(report) < 0) die("pipe");
    pid_t child = fork();
    if (child == 0) {
        double first = 0, last = 0;
        for (int i = 0; i < n; i++) {
            int c = accept(l, NULL, NULL);
            if (c < 0) die("accept");
            last = now();
            if (i == 0) first = last;
            close(c);
        }
        double rate = n > 1 ? (n - 1) / (last - first) : 0;
        if (write(report[1], &rate, sizeof rate) != sizeof rate) die("write");
        _exit(0);
    }
    close(l);
    double t0 = now();
    for (int i = 0; i < n; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (s < 0) die("socket");
        if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
        close(s);
    }
    double t1 = now();
    double accepts = 0;
    if (read(report[0], &accepts, sizeof accepts) != sizeof accepts) die("read");
    waitpid(child, NULL, 0);
    printf("connect_close_pairs %.0f per_s\naccepts %.0f per_s\n", n / (t1 - t0), accepts);
    return 0;
}
