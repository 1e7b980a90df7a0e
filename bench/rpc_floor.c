/* The kernel's floor under an RPC between two processes on loopback (bench/test_rpc.py).
 *
 * What any event-loop RPC must do per call, and nothing else: fixed 48-byte messages, no
 * encoding, no dispatch, non-blocking sockets and epoll on both sides.
 *
 *   rpc_floor server tcp|connect|udp             prints its port, serves until killed
 *   rpc_floor client tcp|connect|udp PORT INFLIGHT CALLS [go]
 *                                                 prints {"seconds": s} for CALLS replies
 *                                                 (go: once connected, print "ready" and start
 *                                                 at a line on stdin: several clients at once)
 *
 * tcp:     one persistent connection; the client keeps INFLIGHT requests outstanding on it
 *          (1 = sequential ping-pong: write, epoll_wait, read per call and per side).
 * connect: a connection per call (connect, write, read, close), INFLIGHT of them at once.
 * udp:     one datagram each way per call, INFLIGHT outstanding.
 *
 * Built by the benchmark with the system C compiler (cc -O2); no binary is committed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MSG 48
#define MAX_EVENTS 256
#define MAX_INFLIGHT 4096

static void die(const char *what) {
    perror(what);
    exit(1);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void nonblock(int fd) {
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) die("fcntl");
}

static void nodelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static struct sockaddr_in loopback(int port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static void watch(int ep, int fd, unsigned events, int op) {
    struct epoll_event ev = {.events = events, .data.fd = fd};
    if (epoll_ctl(ep, op, fd, &ev) < 0) die("epoll_ctl");
}

/* ---------------------------------------------------------------------------- servers */

/* Per-connection progress of a TCP server: bytes of the current request read so far. */
static int got[65536];

static void serve(const char *kind) {
    int udp = strcmp(kind, "udp") == 0;
    int once = strcmp(kind, "connect") == 0;     /* one request per connection, then close */
    int ls = socket(AF_INET, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
    struct sockaddr_in a = loopback(0);
    socklen_t len = sizeof a;
    int one = 1, ep;
    char buf[MSG * 64];
    struct epoll_event events[MAX_EVENTS];
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
    if (!udp && listen(ls, 4096) < 0) die("listen");
    getsockname(ls, (struct sockaddr *)&a, &len);
    printf("%d\n", ntohs(a.sin_port));
    fflush(stdout);
    nonblock(ls);
    ep = epoll_create1(0);
    watch(ep, ls, EPOLLIN, EPOLL_CTL_ADD);
    for (;;) {
        int n = epoll_wait(ep, events, MAX_EVENTS, -1);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (udp) {
                struct sockaddr_in from;
                socklen_t flen = sizeof from;
                ssize_t r;
                while ((r = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen)) > 0)
                    sendto(fd, buf, r, 0, (struct sockaddr *)&from, flen);
            } else if (fd == ls) {
                int c;
                while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    nodelay(c);
                    got[c] = 0;
                    watch(ep, c, EPOLLIN, EPOLL_CTL_ADD);
                }
            } else {
                /* read what is there; answer each whole 48-byte request with 48 bytes */
                ssize_t r = read(fd, buf, sizeof buf);
                if (r <= 0) {
                    if (r < 0 && errno == EAGAIN) continue;
                    close(fd);
                    continue;
                }
                int whole = (got[fd] + r) / MSG;
                got[fd] = (got[fd] + r) % MSG;
                if (whole) write(fd, buf, whole * MSG);
                if (once && whole) close(fd);
            }
        }
    }
}

/* ---------------------------------------------------------------------------- clients */

static int go;      /* wait for a line on stdin before starting */

static void wait_for_go(void) {
    char line[16];
    if (!go) return;
    printf("ready\n");
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin)) die("stdin");
}

static double client_tcp(int port, int inflight, long calls) {
    struct sockaddr_in a = loopback(port);
    int s = socket(AF_INET, SOCK_STREAM, 0), ep = epoll_create1(0);
    char out[MSG * MAX_INFLIGHT], in[MSG * MAX_INFLIGHT];
    long sent = 0, done = 0;
    size_t partial = 0;
    struct epoll_event ev;
    double t0;
    if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
    nodelay(s);
    nonblock(s);
    memset(out, 'x', sizeof out);
    watch(ep, s, EPOLLIN, EPOLL_CTL_ADD);
    wait_for_go();
    t0 = now();
    int first = inflight < calls ? inflight : (int)calls;
    if (write(s, out, first * MSG) != first * MSG) die("write");
    sent = first;
    while (done < calls) {
        if (epoll_wait(ep, &ev, 1, -1) < 0) die("epoll_wait");
        ssize_t r = read(s, in, sizeof in);
        if (r < 0 && errno == EAGAIN) continue;
        if (r <= 0) die("read");
        partial += r;
        long replies = partial / MSG;
        partial %= MSG;
        done += replies;
        long more = calls - sent < replies ? calls - sent : replies;
        if (more > 0) {
            if (write(s, out, more * MSG) != more * MSG) die("write");
            sent += more;
        }
    }
    return now() - t0;
}

/* One call over its own connection: connect, write, read the reply, close, all non-blocking. */
struct percall {
    int fd;
    int state;      /* 0 connecting, 1 waiting for the reply */
};

static void start_call(int ep, struct sockaddr_in *a, struct percall *c) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) die("socket");
    nodelay(c->fd);
    if (connect(c->fd, (struct sockaddr *)a, sizeof *a) < 0 && errno != EINPROGRESS)
        die("connect");
    c->state = 0;
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
}

static double client_connect(int port, int inflight, long calls) {
    struct sockaddr_in a = loopback(port);
    int ep = epoll_create1(0);
    static struct percall conns[MAX_INFLIGHT];
    struct epoll_event events[MAX_EVENTS];
    char msg[MSG], in[MSG];
    long started = 0, done = 0;
    double t0;
    memset(msg, 'x', sizeof msg);
    wait_for_go();
    t0 = now();
    for (; started < inflight && started < calls; started++) start_call(ep, &a, &conns[started]);
    while (done < calls) {
        int n = epoll_wait(ep, events, MAX_EVENTS, -1);
        for (int i = 0; i < n; i++) {
            struct percall *c = events[i].data.ptr;
            if (c->state == 0) {
                if (write(c->fd, msg, MSG) != MSG) die("write");
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                c->state = 1;
            } else {
                ssize_t r = read(c->fd, in, MSG);
                if (r < 0 && errno == EAGAIN) continue;
                if (r != MSG) die("read");
                close(c->fd);
                done++;
                if (started < calls) {
                    start_call(ep, &a, c);
                    started++;
                }
            }
        }
    }
    return now() - t0;
}

static double client_udp(int port, int inflight, long calls) {
    struct sockaddr_in a = loopback(port);
    int s = socket(AF_INET, SOCK_DGRAM, 0), ep = epoll_create1(0);
    char msg[MSG], in[MSG * 4];
    long sent = 0, done = 0;
    struct epoll_event ev;
    double t0;
    if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
    nonblock(s);
    memset(msg, 'x', sizeof msg);
    watch(ep, s, EPOLLIN, EPOLL_CTL_ADD);
    wait_for_go();
    t0 = now();
    for (; sent < inflight && sent < calls; sent++)
        if (send(s, msg, MSG, 0) != MSG) die("send");
    while (done < calls) {
        if (epoll_wait(ep, &ev, 1, -1) < 0) die("epoll_wait");
        ssize_t r;
        while ((r = recv(s, in, sizeof in, 0)) > 0) {
            done++;
            if (sent < calls) {
                if (send(s, msg, MSG, 0) != MSG) die("send");
                sent++;
            }
        }
    }
    return now() - t0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "server") == 0) {
        serve(argv[2]);
        return 0;
    }
    if ((argc == 6 || (argc == 7 && strcmp(argv[6], "go") == 0)) &&
        strcmp(argv[1], "client") == 0) {
        go = argc == 7;
        int port = atoi(argv[3]), inflight = atoi(argv[4]);
        long calls = atol(argv[5]);
        double s;
        if (inflight < 1 || inflight > MAX_INFLIGHT) {
            fprintf(stderr, "INFLIGHT must be 1..%d\n", MAX_INFLIGHT);
            return 2;
        }
        if (strcmp(argv[2], "tcp") == 0) s = client_tcp(port, inflight, calls);
        else if (strcmp(argv[2], "connect") == 0) s = client_connect(port, inflight, calls);
        else s = client_udp(port, inflight, calls);
        printf("{\"seconds\": %.6f}\n", s);
        return 0;
    }
    fprintf(stderr, "usage: rpc_floor server tcp|connect|udp\n"
                    "       rpc_floor client tcp|connect|udp PORT INFLIGHT CALLS [go]\n");
    return 2;
}
