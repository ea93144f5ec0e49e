/* accept_close N: a server that accepts, writes "hello" and closes at once, and
 * a client that reads each connection to its end; N connections, one after the
 * other. Before each accept the server sends 40 datagrams with an address (under
 * preload they are posted: its control connection has a queue), so the stack
 * may see the accepted connection's close before it reads the shim's word that
 * the connection was taken from the queue. Prints how many connections did not
 * end in exactly "hello" and EOF (a reset, as for a connection never accepted,
 * loses the bytes). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static void die(const char *what) {
    perror(what);
    exit(1);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1000;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct sockaddr_in d = a;
    socklen_t al = sizeof a, dl = sizeof d;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    if (l < 0 || bind(l, (void *)&a, sizeof a) < 0 || listen(l, 4096) < 0 ||
        getsockname(l, (void *)&a, &al) < 0)
        die("listener");
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    int sink = socket(AF_INET, SOCK_DGRAM, 0);
    if (u < 0 || sink < 0 || bind(sink, (void *)&d, sizeof d) < 0 ||
        getsockname(sink, (void *)&d, &dl) < 0)
        die("udp");
    int go[2];
    if (pipe(go) < 0) die("pipe");
    pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) {
        char b;
        for (int i = 0; i < n; i++) {
            if (read(go[0], &b, 1) != 1) die("read go");
            for (int k = 0; k < 40; k++) sendto(u, "x", 1, 0, (void *)&d, sizeof d);
            int s = accept(l, NULL, NULL);
            if (s < 0) die("accept");
            if (write(s, "hello", 5) != 5) die("write");
            close(s);
        }
        _exit(0);
    }
    close(l);
    int bad = 0;
    char buf[64];
    for (int i = 0; i < n; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (s < 0 || connect(s, (void *)&a, sizeof a) < 0) die("connect");
        if (write(go[1], "g", 1) != 1) die("write go");
        int got = 0, r;
        while ((r = read(s, buf + got, sizeof buf - got)) > 0) got += r;
        if (r < 0 || got != 5) bad++;
        close(s);
        while (recv(sink, buf, sizeof buf, MSG_DONTWAIT) > 0) {
        }
    }
    int st;
    if (waitpid(child, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) die("server");
    printf("connections cut short %d of %d\n", bad, n);
    return 0;
}
