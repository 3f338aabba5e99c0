/* The listening socket and the thread that accepts connections and hands each to one of
 * the server's two libmicrohttpd daemons (MHD_add_connection).
 *
 * Why two daemons: a durable request suspends its connection until the log's callback
 * resumes it. With epoll, libmicrohttpd takes a suspended connection out of its set and puts
 * it back on resume (two epoll_ctl per request) and, edge-triggered, reads until EAGAIN
 * (one more recvfrom): about 7.3 system calls per durable single event in the HTTP path,
 * against 3.8 with poll() (strace -c, docs/internals/http.md). But poll() scans every
 * connection of its worker at each wake-up: with 1,000 idle connections beside 64 busy
 * ones, poll alone cost twice the CPU per request of epoll. So the first
 * opts.poll_connections connections go to the poll daemon, where their count bounds the
 * scan, and any past that to the epoll daemon, whose cost does not grow with idle ones.
 *
 * Connections are counted here, exactly, before the hand-over: the total (for
 * --max-connections), those in the poll daemon, and per address (ip_limit.c), each
 * released when libmicrohttpd reports the connection closed. The daemons' own limits sit above ours
 * and never refuse first: a connection libmicrohttpd drops before it starts is never reported
 * closed, and its count would leak. The one such drop left is its failing to allocate the
 * connection's memory pool. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/diag.h"
#include "core/time.h"
#include "http/http_int.h"

/* Splits "HOST:PORT" or "[V6]:PORT" and resolves it to a socket address. */
static sl_err resolve_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *ss_len,
                             char *errbuf, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen || !colon[1])
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG,
                             "listen address \"%s\" is not HOST:PORT", listen);
    const char *h = listen;
    size_t hlen = (size_t)(colon - listen);
    if (h[0] == '[' && hlen >= 2 && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen >= sizeof host)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG, "listen host is too long");
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (*end || errno || port < 0 || port > 65535)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG, "listen port \"%s\" is not 0-65535",
                             colon + 1);
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG, "could not resolve \"%s\": %s", host,
                             gai_strerror(rc));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *ss_len = res->ai_addrlen;
    freeaddrinfo(res);
    return SL_OK;
}

sl_err sl__http_listener_open(sl_http_server_t *srv, char *errbuf, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t ss_len = 0;
    sl_err err = resolve_listen(srv->opts.listen, &ss, &ss_len, errbuf, errlen);
    if (err)
        return err;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int on = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) ||
        (ss.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on)) ||
        bind(fd, (struct sockaddr *)&ss, ss_len) || listen(fd, SOMAXCONN)) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not listen on \"%s\": %s",
                             srv->opts.listen, strerror(e));
    }
    struct sockaddr_storage bound;
    socklen_t bound_len = sizeof bound;
    if (getsockname(fd, (struct sockaddr *)&bound, &bound_len) == 0)
        srv->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                      : ((struct sockaddr_in *)&bound)->sin_port);
    srv->listen_fd = fd;
    return SL_OK;
}

/* Whether a warning may go out now: at most one a second, so a flood cannot fill the log. */
static bool may_warn(int64_t *last_warned_ns)
{
    int64_t now = sl_time_mono_ns();
    if (now - *last_warned_ns < 1000000000)
        return false;
    *last_warned_ns = now;
    return true;
}

/* Closes a connection refused for a limit. */
static void refuse(int fd, const char *why, int64_t *last_warned_ns)
{
    close(fd);
    if (may_warn(last_warned_ns))
        sl_diag(SL_DIAG_WARN, "refusing connections", "reason=\"%s\"", why);
}

/* @thread the accept thread */
static void hand_over(sl_http_server_t *srv, int fd, const struct sockaddr *addr, socklen_t len,
                      int64_t *last_warned_ns)
{
    if (atomic_fetch_add(&srv->connections, 1) >= srv->opts.max_connections) {
        atomic_fetch_sub(&srv->connections, 1);
        refuse(fd, "--max-connections reached", last_warned_ns);
        return;
    }
    if (!sl__http_ip_limit_take(&srv->ip_limit, addr)) {
        atomic_fetch_sub(&srv->connections, 1);
        refuse(fd, "--max-connections-per-ip reached", last_warned_ns);
        return;
    }
    bool to_poll =
        srv->poll_daemon && atomic_load(&srv->poll_connections) < srv->opts.poll_connections;
    if (to_poll)
        atomic_fetch_add(&srv->poll_connections, 1);
    if (MHD_add_connection(to_poll ? srv->poll_daemon : srv->epoll_daemon, fd, addr, len) !=
        MHD_YES) { /* it closed fd */
        if (to_poll)
            atomic_fetch_sub(&srv->poll_connections, 1);
        sl__http_ip_limit_release(&srv->ip_limit, addr);
        atomic_fetch_sub(&srv->connections, 1);
    }
}

static void *accept_main(void *arg)
{
    sl_http_server_t *srv = arg;
    pthread_setname_np(pthread_self(), "sl-http-accept");
    int64_t last_warned_ns = INT64_MIN / 2;
    while (!atomic_load(&srv->accept_end)) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd =
            accept4(srv->listen_fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            hand_over(srv, fd, (struct sockaddr *)&ss, len, &last_warned_ns);
            continue;
        }
        if (atomic_load(&srv->accept_end) || errno == EINTR || errno == ECONNABORTED)
            continue;
        /* Out of descriptors or memory: wait for some to be freed rather than spin. */
        if (may_warn(&last_warned_ns))
            sl_diag(SL_DIAG_WARN, "could not accept a connection", "detail=\"%s\"",
                    strerror(errno));
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

sl_err sl__http_listener_start(sl_http_server_t *srv)
{
    if (pthread_create(&srv->accept_thread, NULL, accept_main, srv) != 0)
        return SL_ERR_NOMEM;
    srv->accepting = true;
    return SL_OK;
}

void sl__http_listener_close(sl_http_server_t *srv)
{
    if (srv->listen_fd < 0)
        return;
    atomic_store(&srv->accept_end, true);
    /* On Linux, shutdown() of a listening socket makes a blocked accept() return. */
    shutdown(srv->listen_fd, SHUT_RDWR);
    if (srv->accepting)
        pthread_join(srv->accept_thread, NULL);
    srv->accepting = false;
    close(srv->listen_fd);
    srv->listen_fd = -1;
}

/* A connection closed: undo its counts. */
static void connection_closed(sl_http_server_t *srv, struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (info && info->client_addr)
        sl__http_ip_limit_release(&srv->ip_limit, info->client_addr);
    atomic_fetch_sub(&srv->connections, 1);
}

void sl__http_listener_on_poll_connection(void *cls, struct MHD_Connection *conn,
                                          void **socket_context,
                                          enum MHD_ConnectionNotificationCode toe)
{
    (void)socket_context;
    sl_http_server_t *srv = cls;
    if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        atomic_fetch_sub(&srv->poll_connections, 1);
        connection_closed(srv, conn);
    }
}

void sl__http_listener_on_epoll_connection(void *cls, struct MHD_Connection *conn,
                                           void **socket_context,
                                           enum MHD_ConnectionNotificationCode toe)
{
    (void)socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_CLOSED)
        connection_closed(cls, conn);
}
