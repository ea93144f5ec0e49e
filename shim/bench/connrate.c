/* connrate: new TCP connections per second to a server elsewhere (through the
 * uplink, a veth, slirp4netns).
 *
 *   connrate serve ADDR PORT        accept and close connections for ever
 *   connrate connect ADDR PORT N    N times socket() + connect() + close();
 *                                   prints "connect_close_pairs R per_s"
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what) {
    perror(what);
    exit(1);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: connrate serve ADDR PORT | connrate connect ADDR PORT N\n");
        return 2;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[3]))};
    if (inet_pton(AF_INET, argv[2], &a.sin_addr) != 1) die("address");
    if (strcmp(argv[1], "serve") == 0) {
        int l = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(l, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
        if (listen(l, 4096) < 0) die("listen");
        for (;;) {
            int c = accept(l, NULL, NULL);
            if (c >= 0) close(c);
        }
    }
    int n = argc > 4 ? atoi(argv[4]) : 2000;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < n; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (s < 0) die("socket");
        if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
        close(s);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("connect_close_pairs %.0f per_s\n", n / secs);
    return 0;
}
