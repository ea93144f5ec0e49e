/* ticker: a program that wakes netcell's loop now and then and does little else.
 *
 *   ticker PERIOD_US SECONDS
 *
 * Sends itself a one-byte datagram on 127.0.0.1 and reads it back, then sleeps
 * PERIOD_US, for SECONDS. Prints how many rounds it made and its own CPU time
 * in ms: shim/bench/spin_cost.sh subtracts that from the container's total to
 * get what netcell spent. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: ticker PERIOD_US SECONDS\n");
        return 2;
    }
    long us = atol(argv[1]);
    int secs = atoi(argv[2]);
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(s, (struct sockaddr *)&a, &al) < 0 ||
        connect(s, (struct sockaddr *)&a, sizeof a) < 0) {
        perror("ticker");
        return 1;
    }
    struct timespec t0, t, nap = {us / 1000000, (us % 1000000) * 1000}, cpu;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long rounds = 0;
    char b[8];
    do {
        if (send(s, "x", 1, 0) != 1 || recv(s, b, sizeof b, 0) != 1) {
            perror("ticker");
            return 1;
        }
        rounds++;
        nanosleep(&nap, 0);
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while (t.tv_sec - t0.tv_sec < secs);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
    printf("rounds %ld own_cpu_ms %ld\n", rounds, cpu.tv_sec * 1000 + cpu.tv_nsec / 1000000);
    return 0;
}
