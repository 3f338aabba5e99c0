/* POST /analytics: reads the body (capped), undoes gzip/deflate, parses and validates the
 * events, hands the accepted ones to the log as one unit, and answers once they are
 * durable. The connection is suspended meanwhile, so no thread waits on a disk. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/diag.h"
#include "core/time.h"
#include "http/http_int.h"

/* Per worker thread: parsing scratch reused from request to request, owned by a pthread
 * key so it is freed when MHD's worker thread exits. Shrunk after an unusually large
 * request so an idle server holds little memory. */
typedef struct scratch {
    sl_event_batch batch;
    sl_buf inflated;
    sl_log_record *records;
    size_t records_cap;
} scratch;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p)
{
    scratch *sc = p;
    sl_event_batch_cleanup(&sc->batch);
    sl_buf_cleanup(&sc->inflated);
    free(sc->records);
    free(sc);
}

static void scratch_key_create(void)
{
    pthread_key_create(&scratch_key, scratch_free);
}

#define SCRATCH_KEEP_BYTES (4u << 20)

static bool header_is(const char *value, const char *want)
{
    size_t n = strlen(want);
    if (strncasecmp(value, want, n) != 0)
        return false;
    /* Parameters such as "; charset=utf-8" may follow. */
    return value[n] == '\0' || value[n] == ';' || value[n] == ' ';
}

void sl__http_ingest_begin(sl__http_request *req)
{
    struct MHD_Connection *conn = req->conn;
    req->early_status = sl__http_access_check_key(&req->srv->access, conn, &req->bucket,
                                                  req->early_message, sizeof req->early_message);
    if (req->early_status)
        return;
    const char *ctype = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    const char *cenc = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Encoding");
    const char *clen = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    /* sendBeacon sends text/plain; a missing type is taken as JSON. */
    if (ctype && !header_is(ctype, "application/json") && !header_is(ctype, "text/plain")) {
        req->early_status = 415;
        snprintf(req->early_message, sizeof req->early_message,
                 "content type \"%.60s\" is not supported; send application/json or text/plain",
                 ctype);
        return;
    }
    if (cenc && (!strcasecmp(cenc, "gzip") || !strcasecmp(cenc, "x-gzip") ||
                 !strcasecmp(cenc, "deflate"))) {
        req->encoding = SL_ENCODING_GZIP_OR_DEFLATE;
    } else if (cenc && strcasecmp(cenc, "identity") != 0) {
        req->early_status = 415;
        snprintf(req->early_message, sizeof req->early_message,
                 "content encoding \"%.40s\" is not supported; send gzip, deflate or identity",
                 cenc);
        return;
    }
    if (clen) {
        char *end;
        unsigned long long n = strtoull(clen, &end, 10);
        if (*end == '\0' && n > req->srv->opts.max_body_bytes) {
            req->early_status = 413;
            snprintf(req->early_message, sizeof req->early_message,
                     "body of %llu bytes exceeds the limit of %zu bytes", n,
                     req->srv->opts.max_body_bytes);
        }
    }
}

/* Appends the "rejected":[...] list. */
static sl_err append_rejections(sl_buf *b, const sl_event_batch *batch)
{
    sl_err err = sl_buf_append_str(b, "\"rejected\":[");
    for (size_t i = 0; !err && i < batch->n_rejected; i++) {
        const sl_event_rejection *r = &batch->rejected[i];
        err = sl_buf_appendf(b, "%s{\"index\":%zu,\"reason\":\"%s\",\"message\":", i ? "," : "",
                             r->index, sl_event_reason_name(r->reason));
        if (!err)
            err = sl_buf_append_json_string(b, r->message, strlen(r->message));
        if (!err)
            err = sl_buf_append_char(b, '}');
    }
    return err ? err : sl_buf_append_char(b, ']');
}

/* The answer when at least one event was accepted: the reference API's success, message
 * and eventId, plus the counts, the rejections and every accepted id. */
static sl_err build_accepted_answer(sl_buf *b, const sl_event_batch *batch)
{
    const sl_event_entry *first = &batch->accepted[0];
    sl_err err = sl_buf_appendf(b,
                                "{\"success\":true,\"message\":\"%zu event%s received\","
                                "\"eventId\":",
                                batch->n_accepted, batch->n_accepted == 1 ? "" : "s");
    /* Client-chosen ids may hold quotes or backslashes: always escape them. */
    if (!err)
        err = sl_buf_append_json_string(b, first->event_id, strlen(first->event_id));
    if (!err)
        err = sl_buf_appendf(b, ",\"accepted\":%zu,", batch->n_accepted);
    if (!err)
        err = append_rejections(b, batch);
    if (!err)
        err = sl_buf_append_str(b, ",\"eventIds\":[");
    for (size_t i = 0; !err && i < batch->n_accepted; i++) {
        const char *id = batch->accepted[i].event_id;
        if (i)
            err = sl_buf_append_char(b, ',');
        if (!err)
            err = sl_buf_append_json_string(b, id, strlen(id));
    }
    return err ? err : sl_buf_append_str(b, "]}");
}

/* The answer when nothing was accepted: 400, or 413 for a lone event over the size limit. */
static enum MHD_Result answer_all_rejected(sl__http_request *req, const sl_event_batch *batch)
{
    const sl_event_rejection *r0 = &batch->rejected[0];
    unsigned status = (!batch->is_batch && r0->reason == SL_REASON_TOO_LARGE) ? 413 : 400;
    sl_buf b;
    sl_buf_init(&b, 1 << 20);
    char message[SL_EVENT_MESSAGE_MAX + 64];
    if (batch->is_batch)
        snprintf(message, sizeof message, "all %zu events were rejected; first: event %zu: %s",
                 batch->n_rejected, r0->index, r0->message);
    else
        snprintf(message, sizeof message, "%s", r0->message);
    enum MHD_Result rc = MHD_NO;
    const char *err_text = status == 413 ? "Payload too large" : "Bad request";
    if (sl_buf_append_str(&b, "{\"success\":false,\"error\":\"") ||
        sl_buf_append_str(&b, err_text) || sl_buf_append_str(&b, "\",\"message\":") ||
        sl_buf_append_json_string(&b, message, strlen(message)) ||
        sl_buf_append_str(&b, ",\"accepted\":0,") || append_rejections(&b, batch) ||
        sl_buf_append_char(&b, '}'))
        goto out;
    rc = sl__http_respond(req, status, "application/json", b.data, b.len);
out:
    sl_buf_cleanup(&b);
    return rc;
}

/* @thread the log's writer thread: records the outcome and wakes the connection. */
static void on_durable(void *opaque, sl_err err, const char *detail)
{
    sl__http_request *req = opaque;
    sl_metrics_observe_append(&req->srv->metrics, sl_time_mono_ns() - req->append_started_ns);
    req->append_err = err;
    if (err)
        snprintf(req->append_detail, sizeof req->append_detail, "%s", detail ? detail : "");
    req->phase = SL_PHASE_ANSWERED;
    /* MHD_resume_connection synchronizes with the worker thread that runs the handler next. */
    MHD_resume_connection(req->conn);
}

static enum MHD_Result answer_outcome(sl__http_request *req)
{
    sl__http_request_unsuspended(req);
    if (req->append_err == SL_OK) {
        atomic_fetch_add_explicit(&req->srv->metrics.events_accepted, req->n_accepted,
                                  memory_order_relaxed);
        return sl__http_respond(req, 200, "application/json", req->answer.data, req->answer.len);
    }
    char msg[256];
    if (req->append_err == SL_ERR_TOO_LARGE) {
        snprintf(msg, sizeof msg,
                 "the events of this request are more than the log can queue "
                 "at once; send smaller batches");
        return sl__http_respond_error(req, 413, msg);
    }
    if (req->append_err == SL_ERR_BUSY) {
        atomic_fetch_add_explicit(&req->srv->metrics.requests_refused_busy, 1,
                                  memory_order_relaxed);
        snprintf(msg, sizeof msg, "the log is busy; retry shortly (nothing was stored)");
    } else {
        snprintf(msg, sizeof msg, "the log could not store the events (nothing was stored): %s",
                 req->append_detail[0] ? req->append_detail : sl_strerror(req->append_err));
    }
    return sl__http_respond_error(req, 503, msg);
}

/* This thread's scratch, emptied for a new request; NULL when out of memory. */
static scratch *scratch_get(const sl_http_options *opts)
{
    pthread_once(&scratch_once, scratch_key_create);
    scratch *sc = pthread_getspecific(scratch_key);
    if (!sc) {
        sc = calloc(1, sizeof *sc);
        if (!sc || pthread_setspecific(scratch_key, sc) != 0) {
            free(sc);
            return NULL;
        }
        sl_event_batch_init(&sc->batch);
        sl_buf_init(&sc->inflated, opts->max_inflated_bytes);
    }
    sl_event_batch_reset(&sc->batch);
    sl_buf_reset(&sc->inflated);
    return sc;
}

static void scratch_trim(scratch *sc)
{
    if (sc->batch.data.alloc > SCRATCH_KEEP_BYTES) {
        sl_event_batch_cleanup(&sc->batch);
        sl_event_batch_init(&sc->batch);
    }
    if (sc->inflated.alloc > SCRATCH_KEEP_BYTES)
        sl_buf_cleanup(&sc->inflated);
}

static sl_err scratch_reserve_records(scratch *sc, size_t n)
{
    if (n <= sc->records_cap)
        return SL_OK;
    sl_log_record *p = realloc(sc->records, n * sizeof *p);
    if (!p)
        return SL_ERR_NOMEM;
    sc->records = p;
    sc->records_cap = n;
    return SL_OK;
}

/* The body is complete: decide the answer, or hand the events to the log and suspend. */
static enum MHD_Result finish_body(sl__http_request *req)
{
    sl_http_server_t *srv = req->srv;
    char errbuf[256];
    scratch *sc = scratch_get(&srv->opts);
    if (!sc)
        return sl__http_respond_error(req, 503, "out of memory; retry shortly");
    sl_event_batch *batch = &sc->batch;
    enum MHD_Result rc;
    const char *body = req->body.data ? req->body.data : "";
    size_t body_len = req->body.len;
    if (req->encoding == SL_ENCODING_GZIP_OR_DEFLATE) {
        sl_err err = sl__http_inflate(body, body_len, &sc->inflated, errbuf, sizeof errbuf);
        if (err) {
            rc = sl__http_respond_error(req, err == SL_ERR_TOO_LARGE ? 413 : 400, errbuf);
            goto out;
        }
        body = sc->inflated.data;
        body_len = sc->inflated.len;
    }

    const char *ua = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "User-Agent");
    sl_event_context ctx = {.received_at_us = sl_time_now_us(), .user_agent = ua};
    sl_event_reason reason;
    sl_err err = sl_event_parse_body(body, body_len, &ctx, &srv->opts.limits, batch, &reason,
                                     errbuf, sizeof errbuf);
    if (err) {
        if (err == SL_ERR_NOMEM) {
            rc = sl__http_respond_error(req, 503, "out of memory; retry shortly");
            goto out;
        }
        sl_metrics_count_rejection(&srv->metrics, reason, 1);
        rc = sl__http_respond_error(req, err == SL_ERR_TOO_LARGE ? 413 : 400, errbuf);
        goto out;
    }
    for (size_t i = 0; i < batch->n_rejected; i++)
        sl_metrics_count_rejection(&srv->metrics, batch->rejected[i].reason, 1);
    if (batch->n_accepted == 0) {
        rc = answer_all_rejected(req, batch);
        goto out;
    }

    unsigned wait_s = sl__http_access_take(&srv->access, req->bucket, batch->n_accepted);
    if (wait_s) {
        req->retry_after_s = wait_s;
        snprintf(errbuf, sizeof errbuf,
                 "over the rate limit of %llu events per second; retry in %u s (nothing was "
                 "stored)",
                 (unsigned long long)srv->opts.rate_limit, wait_s);
        rc = sl__http_respond_error(req, 429, errbuf);
        goto out;
    }
    if (build_accepted_answer(&req->answer, batch) ||
        scratch_reserve_records(sc, batch->n_accepted)) {
        rc = sl__http_respond_error(req, 503, "out of memory; retry shortly");
        goto out;
    }
    for (size_t i = 0; i < batch->n_accepted; i++) {
        const sl_event_entry *e = &batch->accepted[i];
        sc->records[i] = (sl_log_record){
            .key = batch->data.data + e->key_off,
            .key_len = e->key_len,
            .value = batch->data.data + e->json_off,
            .value_len = e->json_len,
        };
    }
    req->n_accepted = batch->n_accepted;
    req->phase = SL_PHASE_WAITING;
    req->append_started_ns = sl_time_mono_ns();
    /* Count the suspension before checking srv->stopping, the reverse of the order in
     * sl_http_server_free: either the server sees this request and waits for it, or the
     * request sees the server stopping. A request on a kept-alive connection can arrive
     * after the drain saw none in flight. */
    req->suspended = true;
    atomic_fetch_add(&srv->suspended, 1);
    if (atomic_load(&srv->stopping)) {
        sl__http_request_unsuspended(req);
        rc = sl__http_respond_error(req, 503,
                                    "the server is shutting down; retry (nothing was stored)");
        goto out;
    }
    /* Suspend first: the callback may run on the log's thread before append returns. */
    MHD_suspend_connection(req->conn);
    err = sl_log_append(srv->log, sc->records, batch->n_accepted, on_durable, req);
    if (err) {
        req->append_err = err;
        snprintf(req->append_detail, sizeof req->append_detail, "%s", sl_strerror(err));
        req->phase = SL_PHASE_ANSWERED;
        MHD_resume_connection(req->conn);
    }
    rc = MHD_YES;
out:
    scratch_trim(sc);
    return rc;
}

enum MHD_Result sl__http_ingest(sl__http_request *req, const char *upload, size_t *upload_size)
{
    switch (req->phase) {
    case SL_PHASE_WAITING:
        /* A spurious call while suspended: nothing to do until the callback. */
        return MHD_YES;
    case SL_PHASE_ANSWERED:
        return answer_outcome(req);
    case SL_PHASE_READING:
        break;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (!req->body_too_large) {
            if (sl_buf_append(&req->body, upload, n) == SL_OK)
                return MHD_YES;
            req->body_too_large = true;
            sl_buf_cleanup(&req->body);
        }
        /* A chunked body over the cap: MHD cannot answer before the body ends, so drop the
         * rest and answer 413 then; a body that goes on past 8 times the cap is cut off. */
        req->discarded += n;
        if (req->discarded > 8 * req->srv->opts.max_body_bytes) {
            sl_diag(SL_DIAG_WARN, "closing a connection whose body would not end",
                    "discarded_bytes=%zu", req->discarded);
            return MHD_NO;
        }
        return MHD_YES;
    }
    if (req->body_too_large) {
        char msg[128];
        snprintf(msg, sizeof msg, "body exceeds the limit of %zu bytes",
                 req->srv->opts.max_body_bytes);
        return sl__http_respond_error(req, 413, msg);
    }
    return finish_body(req);
}
