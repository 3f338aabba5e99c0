/* The HTTP server: ingest API (POST /analytics), health, readiness and metrics (of the log
 * and of the process's other components), on libmicrohttpd: an accept thread of ours hands
 * each connection to a pool of poll() or of epoll worker threads (listener.c). A request whose
 * events must become durable is suspended (no thread waits) and resumed from the log's durability
 * callback. */
#ifndef SL_HTTP_HTTP_H
#define SL_HTTP_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "core/component.h"
#include "core/err.h"
#include "event/event.h"
#include "log/log.h"

typedef struct sl_http_server sl_http_server_t;

typedef struct sl_http_options {
    const char *listen; /* "HOST:PORT"; port 0 picks a free one */
    unsigned threads;
    unsigned max_connections;
    unsigned max_connections_per_ip; /* 0 = no limit */
    unsigned idle_timeout_s;
    size_t max_body_bytes;     /* as sent */
    size_t max_inflated_bytes; /* after Content-Encoding is undone */
    sl_event_limits limits;
    char *const *write_keys; /* NULL-free array of n_write_keys keys; none = open */
    size_t n_write_keys;
    uint64_t rate_limit;            /* events/s per write key (shared without keys); 0 = off */
    bool ingest;                    /* serve POST /analytics (the api role); else only the
                                     * health, readiness and metrics routes */
    const sl_component *components; /* n_components parts asked by /ready and /metrics */
    size_t n_components;
    unsigned poll_connections; /* served by poll() workers, the rest by epoll (listener.c) */
} sl_http_options;

/* Starts serving. log, the write keys and the components are borrowed and must outlive
 * the server. */
SL_MUST_CHECK sl_err sl_http_server_start(const sl_http_options *opts, sl_log_t *log,
                                          sl_http_server_t **out, char *errbuf, size_t errlen);

/* The port actually bound (useful with port 0). */
uint16_t sl_http_server_port(const sl_http_server_t *srv);

/* Graceful stop, step 1: stop accepting connections, answer requests in flight (waiting
 * up to timeout_ms for their events to become durable), closing keep-alive connections
 * as their requests finish. Returns the number of requests still unfinished. */
unsigned sl_http_server_drain(sl_http_server_t *srv, int64_t timeout_ms);

/* Step 2: waits until no request waits for the log any more (the log's own deadlines
 * bound that), then closes every connection and frees. sl_http_server_free(NULL) is a
 * no-op. */
void sl_http_server_free(sl_http_server_t *srv);

#endif
