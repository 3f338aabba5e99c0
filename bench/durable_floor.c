/* durable_floor: a benchmark instrument, not product. It measures what a durable HTTP ingest
 * server can physically do on this machine, as a floor under sluice's figures: it does the
 * least any such server must do and nothing else (no JSON parsing, no validation, no ids,
 * no index). Built and run by bench/ingest.sh (FLOOR=1); never linked into sluice.
 *
 *   durable_floor PORT FILE [MODE] [THREADS]
 *
 * THREADS (default 2) event loops, each with its own SO_REUSEPORT listener, read HTTP/1.1
 * keep-alive POSTs (headers up to the blank line, then Content-Length bytes of body). A
 * complete request's body is copied into the current group under one mutex; one writer
 * thread takes the whole group, writes it with ONE pwrite over FILE (preallocated with
 * zeroes and fsync'd at start, reused from its beginning when full, like a WAL segment) and
 * ONE fdatasync, then hands the group's connections back to their loops (one eventfd write
 * per loop per group), which send a small 200 JSON answer. MODE: "durable" (default),
 * "grow" (durable, but appending to a file that starts empty and never wraps: every byte
 * lands on a fresh page-cache page and each fdatasync also commits the file's new size, as
 * for a store that keeps what it writes), "nosync" (durable's writes without the
 * fdatasync), "none" (answer at once from the loop: HTTP alone). Requests of one
 * connection are answered in order; pipelining is not supported. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>

#define FILE_BYTES ((off_t)64 << 20) /* four of sluice's WAL segments */
#define MAX_BODY   (1 << 20)
#define MAX_CONNS  4096
#define MAX_LOOPS  8

static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             "Content-Length: 16\r\n\r\n{\"success\":true}";

struct conn {
    int fd, loop;
    char *buf;             /* headers + body of the request being read */
    size_t len, cap, need; /* need: total bytes of the request, 0 until headers are seen */
};

/* One group: the bodies and the connections waiting for its flush. */
struct group {
    char *data;
    size_t len, cap;
    int *fds, nfds, capfds;
};

static struct conn conns[MAX_CONNS];
static int mode_sync = 1, mode_none, mode_grow;
static int file_fd, port, nloops;
static pthread_mutex_t gmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gcv = PTHREAD_COND_INITIALIZER;
static struct group cur; /* filled by the loops, taken whole by the writer */
static struct {
    pthread_mutex_t mu;
    int efd;
    int *fds, n, cap; /* connections whose request is durable, to answer */
} loops[MAX_LOOPS];

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void grow(void **p, int *cap, int need, size_t elem)
{
    if (need <= *cap)
        return;
    *cap = need * 2;
    if (!(*p = realloc(*p, (size_t)*cap * elem)))
        die("realloc");
}

static void send_answer(int fd)
{
    if (send(fd, answer, sizeof answer - 1, MSG_NOSIGNAL) < 0)
        close(fd); /* the client went away; its epoll entry goes with the close */
}

/* A whole request is in c->buf: queue its body for the writer (or answer it at once). */
static void complete(struct conn *c, size_t body_off)
{
    size_t blen = c->need - body_off;
    if (mode_none) {
        send_answer(c->fd);
        return;
    }
    pthread_mutex_lock(&gmu);
    if (cur.len + blen > cur.cap) {
        cur.cap = (cur.len + blen) * 2;
        if (!(cur.data = realloc(cur.data, cur.cap)))
            die("realloc");
    }
    memcpy(cur.data + cur.len, c->buf + body_off, blen);
    cur.len += blen;
    grow((void **)&cur.fds, &cur.capfds, cur.nfds + 1, sizeof(int));
    cur.fds[cur.nfds++] = c->fd;
    pthread_cond_signal(&gcv);
    pthread_mutex_unlock(&gmu);
}

/* Returns the request's total length once its headers are in, 0 before, -1 if malformed. */
static long request_length(struct conn *c)
{
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (!end)
        return 0;
    for (char *p = c->buf; p < end; p = memchr(p, '\n', (size_t)(end - p)) + 1) {
        if (strncasecmp(p, "content-length:", 15) == 0) {
            long n = strtol(p + 15, NULL, 10);
            return n < 0 || n > MAX_BODY ? -1 : (long)(end + 4 - c->buf) + n;
        }
        if (!memchr(p, '\n', (size_t)(end - p)))
            break;
    }
    return (long)(end + 4 - c->buf); /* no body */
}

static void on_readable(struct conn *c)
{
    for (;;) {
        if (c->cap - c->len < 16384) {
            c->cap = c->cap ? c->cap * 2 : 65536;
            if (!(c->buf = realloc(c->buf, c->cap)))
                die("realloc");
        }
        size_t room = c->cap - c->len;
        ssize_t n = recv(c->fd, c->buf + c->len, room, 0);
        if (n <= 0) {
            if (n < 0 && errno == EAGAIN)
                return;
            close(c->fd); /* also leaves the epoll set */
            c->len = c->need = 0;
            return;
        }
        c->len += (size_t)n;
        if (!c->need) {
            long total = request_length(c);
            if (total < 0) {
                close(c->fd);
                c->len = 0;
                return;
            }
            c->need = (size_t)total;
        }
        if (c->need && c->len >= c->need) {
            size_t body_off = (size_t)((char *)memmem(c->buf, c->len, "\r\n\r\n", 4) - c->buf) + 4;
            complete(c, body_off);
            c->len = c->need = 0; /* no pipelining: anything after the request is dropped */
            return;
        }
        if ((size_t)n < room)
            return; /* level-triggered: the rest wakes us again */
    }
}

static void *loop_main(void *arg)
{
    int id = (int)(intptr_t)arg, one = 1;
    pthread_setname_np(pthread_self(), "floor-loop"); /* for CPU by thread in /proc */
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) || listen(lfd, 1024))
        die("bind/listen");
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd}, evs[256];
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    ev.data.fd = loops[id].efd;
    epoll_ctl(ep, EPOLL_CTL_ADD, loops[id].efd, &ev);
    int *ready = NULL, nready = 0, capready = 0;
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                int cfd;
                while ((cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (cfd >= MAX_CONNS) {
                        close(cfd);
                        continue;
                    }
                    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conns[cfd].fd = cfd;
                    conns[cfd].loop = id;
                    conns[cfd].len = conns[cfd].need = 0;
                    ev.data.fd = cfd;
                    epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &ev);
                }
            } else if (fd == loops[id].efd) {
                uint64_t v;
                if (read(fd, &v, sizeof v) < 0 && errno != EAGAIN)
                    die("eventfd read");
                pthread_mutex_lock(&loops[id].mu); /* swap the ready list out, answer outside */
                int *t = ready, tc = capready;
                ready = loops[id].fds, nready = loops[id].n, capready = loops[id].cap;
                loops[id].fds = t, loops[id].cap = tc, loops[id].n = 0;
                pthread_mutex_unlock(&loops[id].mu);
                for (int k = 0; k < nready; k++)
                    send_answer(ready[k]);
            } else {
                on_readable(&conns[fd]);
            }
        }
    }
    return NULL;
}

static void *writer_main(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "floor-writer");
    struct group g = {0};
    off_t pos = 0;
    for (;;) {
        pthread_mutex_lock(&gmu);
        while (!cur.nfds)
            pthread_cond_wait(&gcv, &gmu);
        struct group t = g; /* take the whole group, leave our emptied buffers behind */
        g = cur;
        cur = t;
        cur.len = 0, cur.nfds = 0;
        pthread_mutex_unlock(&gmu);
        if (!mode_grow && pos + (off_t)g.len > FILE_BYTES)
            pos = 0;
        if (!mode_grow && g.len > (size_t)FILE_BYTES)
            g.len = (size_t)FILE_BYTES; /* cannot happen at the bench's sizes */
        if (pwrite(file_fd, g.data, g.len, pos) != (ssize_t)g.len)
            die("pwrite");
        pos += (off_t)g.len;
        if (mode_sync && fdatasync(file_fd))
            die("fdatasync");
        int woke[MAX_LOOPS] = {0};
        for (int i = 0; i < g.nfds; i++) {
            int l = conns[g.fds[i]].loop;
            pthread_mutex_lock(&loops[l].mu);
            grow((void **)&loops[l].fds, &loops[l].cap, loops[l].n + 1, sizeof(int));
            loops[l].fds[loops[l].n++] = g.fds[i];
            pthread_mutex_unlock(&loops[l].mu);
            woke[l] = 1;
        }
        for (int l = 0; l < nloops; l++)
            if (woke[l] && eventfd_write(loops[l].efd, 1))
                die("eventfd write");
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s PORT FILE [durable|grow|nosync|none] [THREADS]\n", argv[0]);
        return 2;
    }
    port = (int)strtol(argv[1], NULL, 10);
    const char *mode = argc > 3 ? argv[3] : "durable";
    mode_grow = strcmp(mode, "grow") == 0;
    mode_sync = mode_grow || strcmp(mode, "durable") == 0;
    mode_none = strcmp(mode, "none") == 0;
    nloops = argc > 4 ? (int)strtol(argv[4], NULL, 10) : 2;
    if (nloops < 1 || nloops > MAX_LOOPS)
        nloops = 2;
    file_fd = open(argv[2], O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (file_fd < 0)
        die("open");
    static char zeroes[1 << 20]; /* the file's bytes exist before use: fdatasync writes data only */
    for (off_t off = 0; !mode_grow && off < FILE_BYTES; off += sizeof zeroes)
        if (pwrite(file_fd, zeroes, sizeof zeroes, off) != sizeof zeroes)
            die("pwrite zeroes");
    if (fsync(file_fd))
        die("fsync");
    pthread_t t;
    for (int i = 0; i < nloops; i++) {
        pthread_mutex_init(&loops[i].mu, NULL);
        if ((loops[i].efd = eventfd(0, EFD_NONBLOCK)) < 0)
            die("eventfd");
    }
    if (!mode_none && pthread_create(&t, NULL, writer_main, NULL))
        die("pthread_create");
    for (int i = 1; i < nloops; i++)
        if (pthread_create(&t, NULL, loop_main, (void *)(intptr_t)i))
            die("pthread_create");
    loop_main((void *)0);
    return 0;
}
