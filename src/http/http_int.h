/* Internals shared by the HTTP module's files: the server, one request's state, and the
 * helpers that build answers. */
#ifndef SL_HTTP_HTTP_INT_H
#define SL_HTTP_HTTP_INT_H

#include <microhttpd.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdbool.h>

#include "core/buf.h"
#include "http/http.h"
#include "http/metrics.h"

/* Write keys and token buckets (access.c). */
typedef struct sl__http_access {
    char *const *keys; /* borrowed from the options */
    size_t n_keys;
    double rate;                     /* events per second per bucket; 0 = no limit */
    struct sl__http_bucket *buckets; /* one per key, or one shared without keys */
    size_t n_buckets;
} sl__http_access;

SL_MUST_CHECK sl_err sl__http_access_init(sl__http_access *a, char *const *keys, size_t n_keys,
                                          uint64_t events_per_s);
void sl__http_access_cleanup(sl__http_access *a);
/* 0 when the request may go on (*bucket says whose budget it spends), else 401 with a
 * message. @thread an HTTP worker thread. */
unsigned sl__http_access_check_key(const sl__http_access *a, struct MHD_Connection *conn,
                                   size_t *bucket, char *msg, size_t msglen);
/* Takes n events from the bucket: 0 when they fit, else the seconds to wait (nothing is
 * taken). @thread any. */
unsigned sl__http_access_take(sl__http_access *a, size_t bucket, size_t n);

/* Open connections per client address, for --max-connections-per-ip (ip_limit.c).
 * @thread any (one mutex). */
typedef struct sl__http_ip_limit {
    pthread_mutex_t mu;
    void *counts;   /* tsearch tree of struct sl__http_ip_count */
    unsigned limit; /* 0 = no limit: take always succeeds and counts nothing */
} sl__http_ip_limit;

void sl__http_ip_limit_init(sl__http_ip_limit *l, unsigned limit);
void sl__http_ip_limit_cleanup(sl__http_ip_limit *l);
/* Counts one more connection of addr's address; false (nothing counted) when it already
 * holds the limit or when out of memory. */
bool sl__http_ip_limit_take(sl__http_ip_limit *l, const struct sockaddr *addr);
/* Undoes one take of the same address. */
void sl__http_ip_limit_release(sl__http_ip_limit *l, const struct sockaddr *addr);

struct sl_http_server {
    /* Connections are accepted by listener.c and handed to one of two libmicrohttpd
     * daemons, each with its own pool of worker threads (opts.threads). */
    struct MHD_Daemon *poll_daemon;  /* the first opts.poll_connections; NULL if 0 */
    struct MHD_Daemon *epoll_daemon; /* every other connection */
    int listen_fd;
    pthread_t accept_thread;
    bool accepting;               /* accept_thread runs and must be joined */
    atomic_bool accept_end;       /* tells accept_thread to return */
    atomic_uint connections;      /* accepted and not yet closed (counted before the hand-over) */
    atomic_uint poll_connections; /* of those, handed to poll_daemon */
    sl__http_ip_limit ip_limit;
    sl_log_t *log;
    sl_http_options opts;
    sl_metrics metrics;
    sl__http_access access;
    uint16_t port;
    atomic_bool draining;  /* answers carry Connection: close; /ready says no */
    atomic_uint in_flight; /* requests begun and not yet completed */
    atomic_uint suspended; /* requests suspended and not yet run again by their worker
                            * (resumed is not enough: the worker takes a resumed
                            * connection off its suspended list only when it runs it);
                            * libmicrohttpd aborts if stopped with any */
    atomic_bool stopping;  /* set before the last wait for suspended requests: a request
                            * counts itself in suspended, then checks this, and is
                            * refused instead of suspended once it is set */
};

typedef enum sl_content_encoding {
    SL_ENCODING_IDENTITY,
    SL_ENCODING_GZIP_OR_DEFLATE, /* zlib detects which from the header bytes */
} sl_content_encoding;

/* Where a POST /analytics request is in its life:
 *   READING  -> the body is arriving
 *   WAITING  -> events handed to the log, connection suspended until the callback
 *   ANSWERED -> the outcome is known; the next handler call queues the answer */
typedef enum sl_request_phase {
    SL_PHASE_READING,
    SL_PHASE_WAITING,
    SL_PHASE_ANSWERED
} sl_request_phase;

typedef struct sl__http_request {
    sl_http_server_t *srv;
    struct MHD_Connection *conn;
    sl_route route;
    sl_request_phase phase;
    unsigned early_status; /* non-zero: refused before the body was read */
    char early_message[160];
    sl_content_encoding encoding;
    bool responded;         /* an answer is queued: drop whatever else arrives */
    bool suspended;         /* counted in srv->suspended */
    bool body_too_large;    /* over --max-body: the rest is dropped, then 413 */
    size_t bucket;          /* whose rate limit this request spends */
    unsigned retry_after_s; /* for a 429 or 503 answer */
    size_t discarded;       /* bytes dropped past the cap */
    sl_buf body;
    /* Set before the log append; the durability callback only picks success or failure. */
    sl_buf answer;
    size_t n_accepted;
    int64_t append_started_ns;
    sl_err append_err; /* written by the log's thread before resume */
    char append_detail[160];
} sl__http_request;

/* Binds and listens on opts.listen (sets srv->listen_fd and srv->port). */
SL_MUST_CHECK sl_err sl__http_listener_open(sl_http_server_t *srv, char *errbuf, size_t errlen);
/* Starts the thread that accepts connections and hands each to a daemon. */
SL_MUST_CHECK sl_err sl__http_listener_start(sl_http_server_t *srv);
/* Stops accepting and closes the listening socket. Idempotent. */
void sl__http_listener_close(sl_http_server_t *srv);
/* libmicrohttpd's connection notifications of each daemon: undo a closed connection's
 * counts (srv->connections, srv->poll_connections, srv->ip_limit). */
void sl__http_listener_on_poll_connection(void *cls, struct MHD_Connection *conn,
                                          void **socket_context,
                                          enum MHD_ConnectionNotificationCode toe);
void sl__http_listener_on_epoll_connection(void *cls, struct MHD_Connection *conn,
                                           void **socket_context,
                                           enum MHD_ConnectionNotificationCode toe);

/* Undoes a gzip or deflate Content-Encoding. SL_ERR_TOO_LARGE once the output passes
 * out->cap, SL_ERR_INVALID (with a message) for a corrupt or truncated stream. */
SL_MUST_CHECK sl_err sl__http_inflate(const char *in, size_t in_len, sl_buf *out, char *errbuf,
                                      size_t errlen);

/* POST /analytics: called for every chunk of the body and once more at its end (and again
 * after a resume). @thread an HTTP worker thread. */
enum MHD_Result sl__http_ingest(sl__http_request *req, const char *upload, size_t *upload_size);

/* Checks Content-Type and Content-Encoding and the announced length before the body is
 * read; sets req->early_status when the request cannot be taken. */
void sl__http_ingest_begin(sl__http_request *req);

/* The request runs again after its suspension (or ends): it no longer counts in
 * srv->suspended. Idempotent. @thread an HTTP worker thread */
void sl__http_request_unsuspended(sl__http_request *req);

/* Queues a JSON answer with the CORS and connection headers every answer carries, and
 * counts it. body is copied. */
enum MHD_Result sl__http_respond(sl__http_request *req, unsigned status, const char *content_type,
                                 const char *body, size_t len);

/* Queues {"success":false,"error":<status text>,"message":<message>}. */
enum MHD_Result sl__http_respond_error(sl__http_request *req, unsigned status, const char *message);

#endif
