/* The libmicrohttpd daemons: routing, per-request state, the answers shared by every
 * route, health/readiness/metrics, and graceful draining. Accepting connections lives in
 * listener.c, POST /analytics in ingest.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/diag.h"
#include "core/time.h"
#include "http/http_int.h"

/* Every answer may be read by a browser on another origin (analytics beacons are). */
static void add_common_headers(sl__http_request *req, struct MHD_Response *resp,
                               const char *content_type)
{
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*");
    if (content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (atomic_load(&req->srv->draining))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
}

enum MHD_Result sl__http_respond(sl__http_request *req, unsigned status, const char *content_type,
                                 const char *body, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    add_common_headers(req, resp, content_type);
    if (status == 405)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
                                req->route == SL_ROUTE_ANALYTICS ? "POST, OPTIONS" : "GET, HEAD");
    if (status == 503 || status == 429) {
        char secs[16];
        snprintf(secs, sizeof secs, "%u", req->retry_after_s ? req->retry_after_s : 1);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, secs);
    }
    if (status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    enum MHD_Result rc = MHD_queue_response(req->conn, status, resp);
    MHD_destroy_response(resp);
    sl_metrics_count_request(&req->srv->metrics, req->route, status);
    req->responded = true;
    return rc;
}

static const char *status_text(unsigned status)
{
    switch (status) {
    case 400:
        return "Bad request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not found";
    case 405:
        return "Method not allowed";
    case 413:
        return "Payload too large";
    case 415:
        return "Unsupported media type";
    case 429:
        return "Too many requests";
    case 500:
        return "Internal server error";
    case 503:
        return "Service unavailable";
    default:
        return "Error";
    }
}

enum MHD_Result sl__http_respond_error(sl__http_request *req, unsigned status, const char *message)
{
    sl_buf b;
    sl_buf_init(&b, 4096);
    enum MHD_Result rc = MHD_NO;
    if (sl_buf_append_str(&b, "{\"success\":false,\"error\":") ||
        sl_buf_append_json_string(&b, status_text(status), strlen(status_text(status))) ||
        sl_buf_append_str(&b, ",\"message\":") ||
        sl_buf_append_json_string(&b, message, strlen(message)) || sl_buf_append_char(&b, '}'))
        goto out;
    rc = sl__http_respond(req, status, "application/json", b.data, b.len);
out:
    sl_buf_cleanup(&b);
    return rc;
}

static bool log_is_ready(sl_http_server_t *srv, sl_log_stats *st)
{
    sl_log_get_stats(srv->log, st);
    return st->healthy && !atomic_load(&srv->draining);
}

/* GET /health answers like the reference API (status, kafkaReady, timestamp): kafkaReady
 * keeps its name for clients that read it and means "the log takes appends". */
static enum MHD_Result handle_health(sl__http_request *req)
{
    sl_log_stats st;
    bool ready = log_is_ready(req->srv, &st);
    char ts[SL_TIME_RFC3339_MAX];
    sl_time_format_rfc3339(sl_time_now_us(), ts);
    char body[256];
    int n = snprintf(body, sizeof body,
                     "{\"status\":\"ok\",\"kafkaReady\":%s,\"logReady\":%s,\"timestamp\":\"%s\"}",
                     ready ? "true" : "false", ready ? "true" : "false", ts);
    return sl__http_respond(req, 200, "application/json", body, (size_t)n);
}

/* GET /ready: 200 only when events sent now would be made durable (api role) and every
 * component (a sink) works; else 503 with the first reason found. */
static enum MHD_Result handle_ready(sl__http_request *req)
{
    sl_http_server_t *srv = req->srv;
    sl_log_stats st;
    bool ready = log_is_ready(srv, &st);
    char why[256] = "";
    if (atomic_load(&srv->draining))
        snprintf(why, sizeof why, "shutting down");
    else if (!st.healthy)
        snprintf(why, sizeof why, "the log failed its last commit");
    for (size_t i = 0; ready && i < srv->opts.n_components; i++) {
        const sl_component *c = &srv->opts.components[i];
        char detail[200] = "";
        if (!c->is_ready(c->opaque, detail, sizeof detail)) {
            ready = false;
            snprintf(why, sizeof why, "%s: %s", c->name, detail);
        }
    }
    sl_buf b;
    sl_buf_init(&b, 4096);
    enum MHD_Result rc = MHD_NO;
    if (sl_buf_append_str(&b, ready ? "{\"ready\":true" : "{\"ready\":false,\"reason\":") ||
        (!ready && sl_buf_append_json_string(&b, why, strlen(why))) || sl_buf_append_char(&b, '}'))
        goto out;
    rc = sl__http_respond(req, ready ? 200 : 503, "application/json", b.data, b.len);
out:
    sl_buf_cleanup(&b);
    return rc;
}

static enum MHD_Result handle_metrics(sl__http_request *req)
{
    sl_http_server_t *srv = req->srv;
    sl_log_stats st;
    sl_log_get_stats(srv->log, &st);
    sl_metrics_gauges g = {
        .log = &st,
        .connections = atomic_load(&srv->connections),
        .poll_connections = atomic_load(&srv->poll_connections),
        .requests_in_flight = atomic_load(&srv->in_flight),
    };
    sl_buf b;
    sl_buf_init(&b, 1 << 20);
    enum MHD_Result rc;
    sl_err err = sl_metrics_render(&srv->metrics, &g, &b);
    for (size_t i = 0; !err && i < srv->opts.n_components; i++)
        err = srv->opts.components[i].write_metrics(srv->opts.components[i].opaque, &b);
    if (err)
        rc = sl__http_respond_error(req, 500, "could not render metrics");
    else
        rc = sl__http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
    sl_buf_cleanup(&b);
    return rc;
}

/* CORS preflight for any route. */
static enum MHD_Result handle_preflight(sl__http_request *req)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    add_common_headers(req, resp, NULL);
    MHD_add_response_header(resp, "Access-Control-Allow-Methods", "POST, GET, OPTIONS");
    MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                            "Content-Type, Content-Encoding, Authorization, X-Write-Key");
    MHD_add_response_header(resp, "Access-Control-Max-Age", "86400");
    enum MHD_Result rc = MHD_queue_response(req->conn, 204, resp);
    MHD_destroy_response(resp);
    sl_metrics_count_request(&req->srv->metrics, req->route, 204);
    req->responded = true;
    return rc;
}

static sl_route route_of(const char *url)
{
    if (!strcmp(url, "/analytics"))
        return SL_ROUTE_ANALYTICS;
    if (!strcmp(url, "/health"))
        return SL_ROUTE_HEALTH;
    if (!strcmp(url, "/ready"))
        return SL_ROUTE_READY;
    if (!strcmp(url, "/metrics"))
        return SL_ROUTE_METRICS;
    return SL_ROUTE_OTHER;
}

void sl__http_request_unsuspended(sl__http_request *req)
{
    if (req->suspended) {
        req->suspended = false;
        atomic_fetch_sub(&req->srv->suspended, 1);
    }
}

static void request_free(sl__http_request *req)
{
    sl__http_request_unsuspended(req);
    sl_buf_cleanup(&req->body);
    sl_buf_cleanup(&req->answer);
    free(req);
}

/* @thread an HTTP worker thread; called on each step of each request. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    sl_http_server_t *srv = cls;
    sl__http_request *req = *con_cls;
    if (!req) {
        req = calloc(1, sizeof *req);
        if (!req)
            return MHD_NO;
        req->srv = srv;
        req->conn = conn;
        req->route = route_of(url);
        sl_buf_init(&req->body, srv->opts.max_body_bytes);
        sl_buf_init(&req->answer, 1 << 20);
        *con_cls = req;
        atomic_fetch_add(&srv->in_flight, 1);
        if (req->route == SL_ROUTE_ANALYTICS && srv->opts.ingest &&
            !strcmp(method, MHD_HTTP_METHOD_POST)) {
            /* Refusing before the body is read spares reading a body we would drop. */
            sl__http_ingest_begin(req);
            if (req->early_status)
                return sl__http_respond_error(req, req->early_status, req->early_message);
        }
        return MHD_YES;
    }
    if (req->responded) {
        *upload_size = 0;
        return MHD_YES;
    }
    if (!strcmp(method, MHD_HTTP_METHOD_OPTIONS))
        return handle_preflight(req);
    if (req->route == SL_ROUTE_ANALYTICS) {
        if (!srv->opts.ingest)
            return sl__http_respond_error(req, 404,
                                          "this process does not run the api role (--roles)");
        if (!strcmp(method, MHD_HTTP_METHOD_POST))
            return sl__http_ingest(req, upload, upload_size);
        return sl__http_respond_error(req, 405, "use POST for /analytics");
    }
    /* Other routes take no body: ignore any that was sent. */
    if (*upload_size) {
        *upload_size = 0;
        return MHD_YES;
    }
    bool is_get = !strcmp(method, MHD_HTTP_METHOD_GET) || !strcmp(method, MHD_HTTP_METHOD_HEAD);
    if (req->route == SL_ROUTE_OTHER) {
        char msg[200];
        snprintf(msg, sizeof msg, "no route for %.16s %.120s", method, url);
        return sl__http_respond_error(req, 404, msg);
    }
    if (!is_get)
        return sl__http_respond_error(req, 405, "use GET for this route");
    switch (req->route) {
    case SL_ROUTE_HEALTH:
        return handle_health(req);
    case SL_ROUTE_READY:
        return handle_ready(req);
    default:
        return handle_metrics(req);
    }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    sl_http_server_t *srv = cls;
    sl__http_request *req = *con_cls;
    if (!req)
        return;
    request_free(req);
    *con_cls = NULL;
    atomic_fetch_sub(&srv->in_flight, 1);
}

static void on_mhd_error(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    sl_diag(SL_DIAG_WARN, "http server", "detail=\"%s\"", msg);
}

/* One daemon without a listening socket (listener.c hands it connections), with its own
 * pool of worker threads waiting in poll() or epoll. */
static struct MHD_Daemon *start_daemon(sl_http_server_t *srv, unsigned wait_flag,
                                       MHD_NotifyConnectionCallback on_connection)
{
    const sl_http_options *opts = &srv->opts;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_NO_LISTEN_SOCKET |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG | MHD_USE_TURBO | wait_flag;
    /* Above listener.c's exact limit, so that libmicrohttpd never refuses first (each
     * worker of the pool gets an equal share of this). */
    unsigned daemon_limit = opts->max_connections * opts->threads;
    /* The per-connection pool (headers, read buffer, answer) is zeroed by libmicrohttpd at
     * every request on a kept-alive connection: 64 KiB cost about 98k instructions per
     * request under callgrind, 32 KiB half that, and still takes request headers of 16 KB
     * (docs/benchmarks.md). */
    return MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_error, srv,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)opts->threads, MHD_OPTION_CONNECTION_LIMIT,
        daemon_limit, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)opts->idle_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32 * 1024, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, srv, MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv, MHD_OPTION_END);
}

/* Stops both daemons (closing their connections) and frees the server; the listener is
 * closed first. */
static void server_destroy(sl_http_server_t *srv)
{
    sl__http_listener_close(srv);
    if (srv->poll_daemon)
        MHD_stop_daemon(srv->poll_daemon);
    if (srv->epoll_daemon)
        MHD_stop_daemon(srv->epoll_daemon);
    sl__http_ip_limit_cleanup(&srv->ip_limit);
    sl__http_access_cleanup(&srv->access);
    free(srv);
}

sl_err sl_http_server_start(const sl_http_options *opts, sl_log_t *log, sl_http_server_t **out,
                            char *errbuf, size_t errlen)
{
    sl_http_server_t *srv = calloc(1, sizeof *srv);
    if (!srv)
        return SL_ERR_NOMEM;
    srv->log = log;
    srv->opts = *opts;
    srv->listen_fd = -1;
    sl_metrics_init(&srv->metrics);
    sl__http_ip_limit_init(&srv->ip_limit, opts->max_connections_per_ip);
    if (sl__http_access_init(&srv->access, opts->write_keys, opts->n_write_keys,
                             opts->rate_limit)) {
        sl__http_ip_limit_cleanup(&srv->ip_limit);
        free(srv);
        return SL_ERR_NOMEM;
    }
    sl_err err = sl__http_listener_open(srv, errbuf, errlen);
    if (err)
        goto fail;
    srv->epoll_daemon = start_daemon(srv, MHD_USE_EPOLL, sl__http_listener_on_epoll_connection);
    if (opts->poll_connections && srv->epoll_daemon)
        srv->poll_daemon = start_daemon(srv, MHD_USE_POLL, sl__http_listener_on_poll_connection);
    if (!srv->epoll_daemon || (opts->poll_connections && !srv->poll_daemon)) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not start the HTTP workers: %s",
                            errno ? strerror(errno) : "libmicrohttpd refused");
        goto fail;
    }
    if (sl__http_listener_start(srv)) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "could not start the accept thread");
        goto fail;
    }
    *out = srv;
    return SL_OK;
fail:
    server_destroy(srv);
    return err;
}

uint16_t sl_http_server_port(const sl_http_server_t *srv)
{
    return srv->port;
}

unsigned sl_http_server_drain(sl_http_server_t *srv, int64_t timeout_ms)
{
    atomic_store(&srv->draining, true);
    sl__http_listener_close(srv);
    int64_t deadline = sl_time_mono_ns() + timeout_ms * 1000000;
    while (atomic_load(&srv->in_flight) > 0 && sl_time_mono_ns() < deadline) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return atomic_load(&srv->in_flight);
}

void sl_http_server_free(sl_http_server_t *srv)
{
    if (!srv)
        return;
    /* A request past the drain deadline may still wait for the log, whose callback will
     * resume it, or be resumed and not yet run by its worker; stopping then would abort the
     * process (libmicrohttpd panics). The log bounds that wait (its fsync, or Kafka's
     * message.timeout.ms). Once stopping is set no request suspends (finish_body). */
    atomic_store(&srv->stopping, true);
    if (atomic_load(&srv->suspended))
        sl_diag(SL_DIAG_WARN, "waiting for the log to answer suspended requests", "requests=%u",
                atomic_load(&srv->suspended));
    while (atomic_load(&srv->suspended)) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    server_destroy(srv);
}
