/* The s3:// backend: S3's REST API over libcurl, every request signed with AWS Signature
 * V4 (sigv4.c). Requests are retried with exponential backoff and jitter on connection
 * errors, 5xx, 429 and SlowDown, within max_attempts and retry_budget_ms; 4xx answers fail
 * at once with S3's error Code and Message quoted.
 *
 * Invariants: 1. nothing is visible under a key before the request that writes it whole
 * succeeds (PUT, or CompleteMultipartUpload); 2. an upload that fails or is freed
 * uncommitted is aborted (best effort: a server that is down cannot be told, and its
 * parts stay until the bucket's lifecycle rule removes them); 3. at most POOL_MAX idle
 * curl handles are kept, so connections are reused across threads. */
#include "storage/storage_int.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/time.h"

#define POOL_MAX     8
#define ERR_BODY_CAP (64u * 1024)
#define BACKOFF_BASE 100  /* ms before the second attempt */
#define BACKOFF_CAP  5000 /* ms, longest single wait */
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

typedef struct s3_store {
    sl_storage_t base;
    char *bucket;
    char *prefix;   /* "" or ending in '/' */
    char *base_url; /* scheme://host[:port] the requests go to (bucket host when virtual) */
    char *host;     /* Host header, default port left out */
    bool path_style;
    char *region, *akid, *secret, *token;
    pthread_mutex_t lock; /* @locks guards idle and n_idle */
    CURL *idle[POOL_MAX];
    size_t n_idle;
} s3_store;

typedef struct s3_req {
    const char *method;
    const char *key;   /* full object key (store prefix included); NULL for the bucket */
    const char *query; /* canonical query string, "" for none */
    const void *body;
    size_t body_len;
    const char *range;  /* "bytes=A-B" or NULL */
    bool if_none_match; /* sends If-None-Match: * */
    sl_buf *out;        /* 2xx body goes here (NULL: dropped); ERR_BODY_CAP otherwise */
} s3_req;

typedef struct s3_resp {
    long status;
    unsigned attempts;
    bool ambiguous; /* an earlier attempt may have reached the server and taken effect */
    bool out_full;  /* the 2xx body did not fit req->out */
    char etag[256];
    uint64_t content_length; /* from the headers, for HEAD */
    int64_t mtime_ms;        /* Last-Modified, for HEAD; -1 if none */
    sl_buf err_body;
    /* transfer state of the current attempt */
    const s3_req *req;
    size_t body_pos;
} s3_resp;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- the curl handle pool ---- */

static CURL *handle_take(s3_store *s3)
{
    CURL *h = NULL;
    pthread_mutex_lock(&s3->lock);
    if (s3->n_idle > 0)
        h = s3->idle[--s3->n_idle];
    pthread_mutex_unlock(&s3->lock);
    return h ? h : curl_easy_init();
}

static void handle_give(s3_store *s3, CURL *h)
{
    pthread_mutex_lock(&s3->lock);
    if (s3->n_idle < POOL_MAX) {
        s3->idle[s3->n_idle++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&s3->lock);
    if (h)
        curl_easy_cleanup(h);
}

/* ---- one HTTP exchange ---- */

static size_t on_header(char *p, size_t size, size_t n, void *opaque)
{
    s3_resp *r = opaque;
    size_t len = size * n;
    if (len > 5 && memcmp(p, "HTTP/", 5) == 0) {
        /* A new status line (after a redirect or 100): forget the previous headers. */
        const char *sp = memchr(p, ' ', len);
        r->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        r->etag[0] = '\0';
        r->content_length = 0;
        r->mtime_ms = -1;
    } else if (len > 15 && strncasecmp(p, "content-length:", 15) == 0) {
        r->content_length = strtoull(p + 15, NULL, 10);
    } else if (len > 14 && len < 128 && strncasecmp(p, "last-modified:", 14) == 0) {
        char date[128];
        memcpy(date, p + 14, len - 14);
        date[len - 14] = '\0';
        time_t t = curl_getdate(date, NULL);
        r->mtime_ms = t < 0 ? -1 : (int64_t)t * 1000;
    } else if (len > 5 && strncasecmp(p, "etag:", 5) == 0) {
        size_t a = 5, b = len;
        while (a < b && (p[a] == ' ' || p[a] == '\t'))
            a++;
        while (b > a && (p[b - 1] == '\r' || p[b - 1] == '\n' || p[b - 1] == ' '))
            b--;
        if (b - a < sizeof r->etag) {
            memcpy(r->etag, p + a, b - a);
            r->etag[b - a] = '\0';
        }
    }
    return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *opaque)
{
    s3_resp *r = opaque;
    size_t len = size * n;
    if (r->status >= 200 && r->status < 300) {
        if (!r->req->out)
            return len;
        if (sl_buf_append(r->req->out, p, len) != SL_OK) {
            r->out_full = true;
            return 0; /* aborts the transfer */
        }
        return len;
    }
    size_t room = ERR_BODY_CAP - r->err_body.len;
    if (sl_buf_append(&r->err_body, p, len < room ? len : room) != SL_OK)
        return 0;
    return len;
}

static size_t on_read(char *p, size_t size, size_t n, void *opaque)
{
    s3_resp *r = opaque;
    size_t left = r->req->body_len - r->body_pos;
    size_t len = size * n < left ? size * n : left;
    memcpy(p, (const char *)r->req->body + r->body_pos, len);
    r->body_pos += len;
    return len;
}

/* The request's path: "/BUCKET/KEY" (path style) or "/KEY", key %-encoded but for '/'. */
static sl_err build_path(const s3_store *s3, const char *key, sl_buf *path)
{
    sl_err err = sl_buf_append_char(path, '/');
    if (!err && s3->path_style)
        err = sl_buf_append_str(path, s3->bucket);
    if (!err && s3->path_style && key)
        err = sl_buf_append_char(path, '/');
    if (!err && key)
        err = sl__storage_uri_encode(path, key, true);
    return err;
}

/* Sends req once. SL_OK when an HTTP answer came (any status, in r->status); SL_ERR_IO or
 * SL_ERR_TIMEOUT with detail when the transfer failed; SL_ERR_TOO_LARGE when the body did
 * not fit req->out. */
static sl_err perform_once(s3_store *s3, CURL *h, const s3_req *req, s3_resp *r, char *errbuf,
                           size_t errlen)
{
    sl_storage_options *o = &s3->base.opts;
    sl_buf path, url, auth;
    sl_buf_init(&path, 8192);
    sl_buf_init(&url, 16384);
    sl_buf_init(&auth, 1024);
    struct curl_slist *hdrs = NULL;
    char lines[6][SL__S3_MAX_TOKEN + 64];
    sl_err err = build_path(s3, req->key, &path);
    if (!err)
        err = sl_buf_appendf(&url, "%s%s%s%s", s3->base_url, path.data, req->query[0] ? "?" : "",
                             req->query);
    if (err) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID, "s3 request url is too long");
        goto out;
    }

    char payload_hash[65];
    if (req->body_len)
        sl__storage_sha256_hex(req->body, req->body_len, payload_hash);
    else
        memcpy(payload_hash, EMPTY_SHA256, 65);
    char amz_date[17];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(amz_date, sizeof amz_date, "%Y%m%dT%H%M%SZ", &tm);

    sl__sigv4_header sh[6];
    size_t nh = 0;
    sh[nh++] = (sl__sigv4_header){"host", s3->host};
    sh[nh++] = (sl__sigv4_header){"x-amz-content-sha256", payload_hash};
    sh[nh++] = (sl__sigv4_header){"x-amz-date", amz_date};
    if (s3->token)
        sh[nh++] = (sl__sigv4_header){"x-amz-security-token", s3->token};
    if (req->range)
        sh[nh++] = (sl__sigv4_header){"range", req->range};
    if (req->if_none_match)
        sh[nh++] = (sl__sigv4_header){"if-none-match", "*"};
    sl__sigv4_request sr = {
        .method = req->method,
        .canonical_uri = path.data,
        .canonical_query = req->query,
        .headers = sh,
        .n_headers = nh,
        .payload_hash = payload_hash,
        .amz_date = amz_date,
        .region = s3->region,
        .service = "s3",
        .access_key_id = s3->akid,
        .secret_access_key = s3->secret,
    };
    if ((err = sl__storage_sigv4_sign(&sr, &auth, NULL, NULL))) {
        err = sl_errbuf_set(errbuf, errlen, err, "could not sign the s3 request: %s",
                            sl_strerror(err));
        goto out;
    }
    for (size_t i = 0; i < nh; i++) {
        int w = snprintf(lines[i], sizeof lines[i], "%s: %s", sh[i].name, sh[i].value);
        struct curl_slist *n = w < (int)sizeof lines[i] ? curl_slist_append(hdrs, lines[i]) : NULL;
        if (!n) {
            err = sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM,
                                "s3 header \"%s\" is over %zu bytes or memory ran out", sh[i].name,
                                sizeof lines[i]);
            goto out;
        }
        hdrs = n;
    }
    char auth_line[1100];
    snprintf(auth_line, sizeof auth_line, "Authorization: %s", auth.data);
    /* No "Expect: 100-continue" round trip, and no form content type on POST. */
    const char *extra[] = {"Expect:", "Content-Type:", auth_line};
    for (size_t i = 0; i < 3; i++) {
        struct curl_slist *n = curl_slist_append(hdrs, extra[i]);
        if (!n) {
            err = sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "out of memory");
            goto out;
        }
        hdrs = n;
    }

    r->status = 0;
    r->etag[0] = '\0';
    r->req = req;
    r->body_pos = 0;
    sl_buf_reset(&r->err_body);
    char cerr[CURL_ERROR_SIZE] = "";
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url.data);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)o->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)(o->stall_timeout_ms + 999) / 1000);
    if (strcmp(req->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(req->method, "PUT") == 0) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, r);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)req->body_len);
    } else if (strcmp(req->method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body_len ? (const char *)req->body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    } else if (strcmp(req->method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
    }
    CURLcode rc = curl_easy_perform(h);
    if (r->out_full) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_TOO_LARGE,
                            "s3 answer for \"%s\" is over the buffer's cap of %zu bytes",
                            req->key ? req->key : s3->bucket, req->out->cap);
    } else if (rc != CURLE_OK) {
        err = sl_errbuf_set(
            errbuf, errlen, rc == CURLE_OPERATION_TIMEDOUT ? SL_ERR_TIMEOUT : SL_ERR_IO,
            "s3 %s \"%s\": %s", req->method, url.data, cerr[0] ? cerr : curl_easy_strerror(rc));
    }
out:
    curl_slist_free_all(hdrs);
    sl_buf_cleanup(&path);
    sl_buf_cleanup(&url);
    sl_buf_cleanup(&auth);
    return err;
}

static bool is_retryable_status(const s3_resp *r)
{
    if (r->status >= 500 || r->status == 429)
        return true;
    /* S3 answers a slow client's upload with 400 RequestTimeout: worth another try. */
    return r->status == 400 && r->err_body.data &&
           strstr(r->err_body.data, "<Code>RequestTimeout<");
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Sends req with retries. SL_OK when an answer came that is not worth retrying (its status
 * in r->status, which the caller judges), else the last transport error. r->err_body is
 * initialised here; the caller cleans it up. */
static sl_err s3_request(s3_store *s3, const s3_req *req, s3_resp *r, char *errbuf, size_t errlen)
{
    memset(r, 0, sizeof *r);
    sl_buf_init(&r->err_body, ERR_BODY_CAP + 1);
    CURL *h = handle_take(s3);
    if (!h)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "could not create a curl handle");
    size_t out_start = req->out ? req->out->len : 0;
    int64_t start_ns = sl_time_mono_ns();
    sl_err err = SL_OK;
    unsigned max = s3->base.opts.max_attempts;
    for (unsigned a = 0; a < max; a++) {
        if (req->out) { /* drop what a failed attempt appended */
            req->out->len = out_start;
            if (req->out->data)
                req->out->data[out_start] = '\0';
        }
        r->attempts = a + 1;
        err = perform_once(s3, h, req, r, errbuf, errlen);
        bool retry = err == SL_ERR_IO || err == SL_ERR_TIMEOUT || (!err && is_retryable_status(r));
        if (!retry)
            break;
        r->ambiguous = true;
        if (a + 1 == max)
            break;
        unsigned wait = BACKOFF_BASE << (a < 6 ? a : 6);
        if (wait > BACKOFF_CAP)
            wait = BACKOFF_CAP;
        wait = wait / 2 + (unsigned)(random() % (wait / 2 + 1)); /* jitter: [w/2, w] */
        int64_t spent_ms = (sl_time_mono_ns() - start_ns) / 1000000;
        if (spent_ms + wait > (int64_t)s3->base.opts.retry_budget_ms)
            break;
        sleep_ms(wait);
    }
    handle_give(s3, h);
    return err;
}

/* The error for an answer outside 2xx: S3's Code and Message quoted, mapped to an sl_err. */
static sl_err status_error(const s3_store *s3, const s3_req *req, const s3_resp *r, char *errbuf,
                           size_t errlen)
{
    char code[128] = "", msg[512] = "";
    if (r->err_body.len)
        sl__storage_xml_error(r->err_body.data, r->err_body.len, code, sizeof code, msg,
                              sizeof msg);
    sl_err err = SL_ERR_IO;
    if (r->status == 404)
        err = strcmp(code, "NoSuchBucket") == 0 ? SL_ERR_CONFIG : SL_ERR_NOT_FOUND;
    else if (r->status == 401 || r->status == 403)
        err = SL_ERR_CONFIG;
    else if (r->status == 412)
        err = SL_ERR_EXISTS;
    else if (r->status == 400 || r->status == 416)
        err = SL_ERR_INVALID;
    char after[48] = "";
    if (r->attempts > 1)
        snprintf(after, sizeof after, " (after %u attempts)", r->attempts);
    return sl_errbuf_set(errbuf, errlen, err, "s3 %s \"s3://%s/%s\": %ld %s%s%s%s", req->method,
                         s3->bucket, req->key ? req->key : "", r->status,
                         code[0] ? code : "(no error document)", msg[0] ? ": " : "", msg, after);
}

/* The object's full key: the store's prefix and key. */
static char *full_key(const s3_store *s3, const char *key)
{
    size_t a = strlen(s3->prefix), b = strlen(key);
    if (a + b > SL_STORAGE_MAX_KEY)
        return NULL;
    char *k = malloc(a + b + 1);
    if (k) {
        memcpy(k, s3->prefix, a);
        memcpy(k + a, key, b + 1);
    }
    return k;
}

#define WITH_FULL_KEY(fk, key)                                                                     \
    char *fk = full_key(s3, key);                                                                  \
    if (!fk)                                                                                       \
        return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID,                                       \
                             "key \"%s\" with the prefix \"%s\" is over %d bytes or memory ran "   \
                             "out",                                                                \
                             key, s3->prefix, SL_STORAGE_MAX_KEY);

static sl_err s3_get(sl_storage_t *st, const char *key, bool ranged, uint64_t offset, uint64_t len,
                     sl_buf *out, char *errbuf, size_t errlen)
{
    s3_store *s3 = (s3_store *)st;
    WITH_FULL_KEY(fk, key);
    char range[64];
    snprintf(range, sizeof range, "bytes=%" PRIu64 "-%" PRIu64, offset, offset + len - 1);
    s3_req req = {
        .method = "GET", .key = fk, .query = "", .range = ranged ? range : NULL, .out = out};
    s3_resp r;
    size_t start = out->len;
    sl_err err = s3_request(s3, &req, &r, errbuf, errlen);
    if (!err && r.status == 416)
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID,
                            "range start %" PRIu64 " is past the end of \"%s\"", offset, key);
    else if (!err && (r.status < 200 || r.status > 299))
        err = status_error(s3, &req, &r, errbuf, errlen);
    else if (!err && ranged && r.status != 206)
        /* A server that ignored Range sent the whole object: keep the asked-for bytes. */
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_UNSUPPORTED,
                            "s3 server answered a ranged GET of \"%s\" with %ld, not 206", key,
                            r.status);
    if (err) {
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
    }
    sl_buf_cleanup(&r.err_body);
    free(fk);
    return err;
}

static sl_err s3_put(sl_storage_t *st, const char *key, const void *data, size_t len,
                     bool if_absent, char *errbuf, size_t errlen)
{
    s3_store *s3 = (s3_store *)st;
    WITH_FULL_KEY(fk, key);
    s3_req req = {.method = "PUT",
                  .key = fk,
                  .query = "",
                  .body = data,
                  .body_len = len,
                  .if_none_match = if_absent};
    s3_resp r;
    sl_err err = s3_request(s3, &req, &r, errbuf, errlen);
    if (!err && if_absent && r.status == 412 && r.ambiguous) {
        /* An earlier try may have written the object and lost its answer: if what is stored
         * is what we sent, that try won. */
        sl_buf cur;
        sl_buf_init(&cur, len + 1);
        char eb2[256];
        sl_err gerr = s3_get(st, key, false, 0, 0, &cur, eb2, sizeof eb2);
        if (!gerr && cur.len == len && memcmp(cur.data ? cur.data : "", data, len) == 0)
            r.status = 200;
        sl_buf_cleanup(&cur);
    }
    if (!err && (r.status < 200 || r.status > 299))
        err = status_error(s3, &req, &r, errbuf, errlen);
    sl_buf_cleanup(&r.err_body);
    free(fk);
    return err;
}

static sl_err s3_head(sl_storage_t *st, const char *key, sl_storage_info *info, char *errbuf,
                      size_t errlen)
{
    s3_store *s3 = (s3_store *)st;
    WITH_FULL_KEY(fk, key);
    s3_req req = {.method = "HEAD", .key = fk, .query = ""};
    s3_resp r;
    sl_err err = s3_request(s3, &req, &r, errbuf, errlen);
    /* HEAD answers carry no error document; the status says it all. */
    if (!err && (r.status < 200 || r.status > 299))
        err = status_error(s3, &req, &r, errbuf, errlen);
    if (!err) {
        info->size = r.content_length;
        info->mtime_ms = r.mtime_ms;
    }
    sl_buf_cleanup(&r.err_body);
    free(fk);
    return err;
}

static sl_err s3_del(sl_storage_t *st, const char *key, char *errbuf, size_t errlen)
{
    s3_store *s3 = (s3_store *)st;
    WITH_FULL_KEY(fk, key);
    s3_req req = {.method = "DELETE", .key = fk, .query = ""};
    s3_resp r;
    sl_err err = s3_request(s3, &req, &r, errbuf, errlen);
    if (!err && (r.status < 200 || r.status > 299)) {
        err = status_error(s3, &req, &r, errbuf, errlen);
        if (err == SL_ERR_NOT_FOUND) /* no such key (not bucket): nothing to delete */
            err = SL_OK;
    }
    sl_buf_cleanup(&r.err_body);
    free(fk);
    return err;
}

/* ---- listing: ListObjectsV2 page after page ---- */

/* Appends "&name=value" (no '&' first) with value %-encoded. */
static sl_err query_param(sl_buf *q, const char *name, const char *value)
{
    sl_err err = sl_buf_appendf(q, "%s%s=", q->len ? "&" : "", name);
    return err ? err : sl__storage_uri_encode(q, value, false);
}

typedef sl_err (*listing_parser)(const char *xml, size_t len, sl__s3_list_page *page, char *errbuf,
                                 size_t errlen);

/* One listing page: GET of the bucket with query (into body), parsed by parse. */
static sl_err get_listing_page(s3_store *s3, const char *query, sl_buf *body, listing_parser parse,
                               sl__s3_list_page *page, char *errbuf, size_t errlen)
{
    memset(page, 0, sizeof *page);
    s3_req req = {.method = "GET", .query = query, .out = body};
    s3_resp r;
    sl_err err = s3_request(s3, &req, &r, errbuf, errlen);
    if (!err && (r.status < 200 || r.status > 299))
        err = status_error(s3, &req, &r, errbuf, errlen);
    sl_buf_cleanup(&r.err_body);
    return err ? err : parse(body->data ? body->data : "", body->len, page, errbuf, errlen);
}

static sl_err s3_list(sl_storage_t *st, const char *prefix, const char *start_after,
                      sl_storage_list_cb cb, void *opaque, char *errbuf, size_t errlen)
{
    s3_store *s3 = (s3_store *)st;
    size_t plen = strlen(s3->prefix);
    char *fprefix = full_key(s3, prefix);
    char *fstart = start_after[0] ? full_key(s3, start_after) : strdup("");
    char *token = NULL;
    char last[SL_STORAGE_MAX_KEY + 1] = "";
    sl_buf q, body;
    sl_buf_init(&q, 16384);
    sl_buf_init(&body, SL__S3_MAX_BODY);
    sl_err err = SL_OK;
    if (!fprefix || !fstart) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID, "list prefix or start-after too long");
        goto out;
    }
    char max_keys[16];
    snprintf(max_keys, sizeof max_keys, "%u", st->opts.list_page_keys);
    for (;;) {
        sl_buf_reset(&q);
        sl_buf_reset(&body);
        /* Parameters in the byte order SigV4's canonical query wants. */
        if (token)
            err = query_param(&q, "continuation-token", token);
        if (!err)
            err = query_param(&q, "list-type", "2");
        if (!err)
            err = query_param(&q, "max-keys", max_keys);
        if (!err)
            err = query_param(&q, "prefix", fprefix);
        if (!err && !token && fstart[0])
            err = query_param(&q, "start-after", fstart);
        if (err) {
            err = sl_errbuf_set(errbuf, errlen, err, "s3 list query is too long");
            goto out;
        }
        sl__s3_list_page page;
        if ((err =
                 get_listing_page(s3, q.data, &body, sl__storage_xml_list, &page, errbuf, errlen)))
            goto out;
        for (size_t i = 0; i < page.n && !err; i++) {
            const sl__s3_object *o = &page.objects[i];
            /* Keys must ascend across pages, so a looping server cannot loop us. */
            if (strcmp(o->key, last) <= 0 || strncmp(o->key, fprefix, strlen(fprefix)) != 0) {
                err = sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                                    "s3 listing sent \"%s\" out of order or outside the prefix",
                                    o->key);
                break;
            }
            memcpy(last, o->key, strlen(o->key) + 1);
            if (strcmp(o->key, fstart) <= 0)
                continue;
            sl_storage_entry e = {.key = o->key + plen, .size = o->size, .mtime_ms = o->mtime_ms};
            err = cb(opaque, &e);
        }
        free(token);
        token = page.truncated ? page.next_token : NULL;
        page.next_token = NULL;
        sl__storage_list_page_cleanup(&page);
        if (err || !token)
            goto out;
    }
out:
    free(token);
    free(fprefix);
    free(fstart);
    sl_buf_cleanup(&q);
    sl_buf_cleanup(&body);
    return err;
}

/* AbortMultipartUpload of fk's upload upload_id; one already gone (404) is not an error. */
static sl_err abort_multipart(s3_store *s3, const char *fk, const char *upload_id, char *errbuf,
                              size_t errlen)
{
    sl_buf q;
    sl_buf_init(&q, 8192);
    sl_err err = sl_buf_append_str(&q, "uploadId=");
    if (!err)
        err = sl__storage_uri_encode(&q, upload_id, false);
    if (err) {
        sl_buf_cleanup(&q);
        return sl_errbuf_set(errbuf, errlen, err, "s3 upload id is too long");
    }
    s3_req req = {.method = "DELETE", .key = fk, .query = q.data};
    s3_resp r;
    err = s3_request(s3, &req, &r, errbuf, errlen);
    if (!err && (r.status < 200 || r.status > 299)) {
        err = status_error(s3, &req, &r, errbuf, errlen);
        if (err == SL_ERR_NOT_FOUND)
            err = SL_OK;
    }
    sl_buf_cleanup(&r.err_body);
    sl_buf_cleanup(&q);
    return err;
}

#define MAX_UPLOAD_PAGES 100000 /* of 1,000 uploads each */

/* Unfinished multipart uploads under prefix (ListMultipartUploads, page after page): a
 * writer killed mid-upload leaves one, invisible to s3_list, its parts billed until it is
 * aborted. Each is an entry of size 0 (the parts are not summed), mtime its Initiated. */
static sl_err s3_list_temporary(sl_storage_t *st, const char *prefix, sl_storage_list_cb cb,
                                void *opaque, char *errbuf, size_t errlen)
{
    s3_store *s3 = (s3_store *)st;
    size_t plen = strlen(s3->prefix);
    char *fprefix = full_key(s3, prefix);
    char *key_marker = NULL, *id_marker = NULL;
    char last_key[SL_STORAGE_MAX_KEY + 1] = "";
    size_t pages = 0;
    sl_buf q, body;
    sl_buf_init(&q, 16384);
    sl_buf_init(&body, SL__S3_MAX_BODY);
    sl_err err = SL_OK;
    if (!fprefix) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID, "list prefix too long");
        goto out;
    }
    for (;;) {
        sl_buf_reset(&q);
        sl_buf_reset(&body);
        /* Parameters in the byte order SigV4's canonical query wants. */
        if (key_marker)
            err = query_param(&q, "key-marker", key_marker);
        if (!err)
            err = query_param(&q, "max-uploads", "1000");
        if (!err)
            err = query_param(&q, "prefix", fprefix);
        if (!err && id_marker)
            err = query_param(&q, "upload-id-marker", id_marker);
        if (!err)
            err = query_param(&q, "uploads", "");
        if (err) {
            err = sl_errbuf_set(errbuf, errlen, err, "s3 upload list query is too long");
            goto out;
        }
        sl__s3_list_page page;
        if ((err = get_listing_page(s3, q.data, &body, sl__storage_xml_uploads, &page, errbuf,
                                    errlen)))
            goto out;
        for (size_t i = 0; i < page.n && !err; i++) {
            const sl__s3_object *o = &page.objects[i];
            /* Keys ascend (a key's uploads come in the order they began, not by id). */
            if (strcmp(o->key, last_key) < 0 || strncmp(o->key, fprefix, strlen(fprefix)) != 0) {
                err = sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                                    "s3 upload listing sent \"%s\" out of order or outside the "
                                    "prefix",
                                    o->key);
                break;
            }
            memcpy(last_key, o->key, strlen(o->key) + 1);
            sl_storage_entry e = {
                .key = o->key + plen, .mtime_ms = o->mtime_ms, .upload_id = o->upload_id};
            err = cb(opaque, &e);
        }
        /* A server that answers the same markers again, or pages without end, would loop
         * us: each page must move them on, and a listing stops at MAX_UPLOAD_PAGES. */
        bool stuck =
            page.truncated && key_marker && !strcmp(page.next_token, key_marker) &&
            !strcmp(page.next_upload_id ? page.next_upload_id : "", id_marker ? id_marker : "");
        free(key_marker);
        free(id_marker);
        key_marker = page.truncated ? page.next_token : NULL;
        id_marker = page.truncated ? page.next_upload_id : NULL;
        if (page.truncated)
            page.next_token = page.next_upload_id = NULL;
        sl__storage_list_page_cleanup(&page);
        if (!err && key_marker && (stuck || ++pages >= MAX_UPLOAD_PAGES))
            err = sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                                "s3 upload listing does not end (page %zu repeats or passes the "
                                "limit of %d pages)",
                                pages, MAX_UPLOAD_PAGES);
        if (err || !key_marker)
            goto out;
    }
out:
    free(key_marker);
    free(id_marker);
    free(fprefix);
    sl_buf_cleanup(&q);
    sl_buf_cleanup(&body);
    return err;
}

static sl_err s3_delete_temporary(sl_storage_t *st, const char *key, const char *upload_id,
                                  char *errbuf, size_t errlen)
{
    s3_store *s3 = (s3_store *)st;
    WITH_FULL_KEY(fk, key);
    sl_err err = abort_multipart(s3, fk, upload_id, errbuf, errlen);
    free(fk);
    return err;
}

/* ---- upload streams: one PUT when small, else a multipart upload ---- */

typedef struct s3_upload {
    sl_storage_upload_t base;
    s3_store *s3;
    char *fk;   /* full key */
    char *part; /* part_size bytes */
    size_t part_len;
    char *upload_id; /* NULL until the first part goes out */
    unsigned n_parts;
    sl_buf parts_xml; /* <Part> elements of CompleteMultipartUpload */
    bool failed;
    bool committed;
} s3_upload;

/* Appends s with the five XML special characters escaped. */
static sl_err xml_escape(sl_buf *b, const char *s)
{
    sl_err err = SL_OK;
    for (; *s && !err; s++) {
        switch (*s) {
        case '&':
            err = sl_buf_append_str(b, "&amp;");
            break;
        case '<':
            err = sl_buf_append_str(b, "&lt;");
            break;
        case '>':
            err = sl_buf_append_str(b, "&gt;");
            break;
        case '"':
            err = sl_buf_append_str(b, "&quot;");
            break;
        case '\'':
            err = sl_buf_append_str(b, "&apos;");
            break;
        default:
            err = sl_buf_append_char(b, *s);
        }
    }
    return err;
}

/* The query "NAME=ID" or "partNumber=N&uploadId=ID" of this upload. */
static sl_err upload_query(const s3_upload *u, unsigned part_no, sl_buf *q)
{
    sl_err err = SL_OK;
    if (part_no)
        err = sl_buf_appendf(q, "partNumber=%u&", part_no);
    if (!err)
        err = sl_buf_append_str(q, "uploadId=");
    return err ? err : sl__storage_uri_encode(q, u->upload_id, false);
}

static void upload_abort(s3_upload *u)
{
    if (!u->upload_id)
        return;
    char eb[256];
    /* Best effort: when the server is gone, `sluice lake vacuum` or the bucket's lifecycle
     * rule cleans up. */
    (void)abort_multipart(u->s3, u->fk, u->upload_id, eb, sizeof eb);
    free(u->upload_id);
    u->upload_id = NULL;
}

/* Sends the buffered bytes as the next part, starting the multipart upload first if
 * needed. On failure the stream is dead and the upload aborted. */
static sl_err upload_part(s3_upload *u, char *errbuf, size_t errlen)
{
    sl_err err = SL_OK;
    sl_buf q;
    sl_buf_init(&q, 8192);
    if (!u->upload_id) {
        sl_buf body;
        sl_buf_init(&body, SL__S3_MAX_BODY);
        s3_req req = {.method = "POST", .key = u->fk, .query = "uploads=", .out = &body};
        s3_resp r;
        err = s3_request(u->s3, &req, &r, errbuf, errlen);
        if (!err && (r.status < 200 || r.status > 299))
            err = status_error(u->s3, &req, &r, errbuf, errlen);
        if (!err)
            err = sl__storage_xml_upload_id(body.data ? body.data : "", body.len, &u->upload_id,
                                            errbuf, errlen);
        sl_buf_cleanup(&r.err_body);
        sl_buf_cleanup(&body);
        if (err)
            goto out;
    }
    if (u->n_parts == SL_STORAGE_MAX_PARTS) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_TOO_LARGE,
                            "upload of \"%s\" needs more than %u parts: raise the part size",
                            u->base.key, SL_STORAGE_MAX_PARTS);
        goto out;
    }
    unsigned no = u->n_parts + 1;
    if ((err = upload_query(u, no, &q))) {
        err = sl_errbuf_set(errbuf, errlen, err, "upload id is too long");
        goto out;
    }
    s3_req req = {
        .method = "PUT", .key = u->fk, .query = q.data, .body = u->part, .body_len = u->part_len};
    s3_resp r;
    err = s3_request(u->s3, &req, &r, errbuf, errlen);
    if (!err && (r.status < 200 || r.status > 299))
        err = status_error(u->s3, &req, &r, errbuf, errlen);
    if (!err && !r.etag[0])
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                            "s3 answered part %u of \"%s\" without an ETag", no, u->base.key);
    if (!err)
        err = sl_buf_appendf(&u->parts_xml, "<Part><PartNumber>%u</PartNumber><ETag>", no);
    if (!err)
        err = xml_escape(&u->parts_xml, r.etag);
    if (!err)
        err = sl_buf_append_str(&u->parts_xml, "</ETag></Part>");
    sl_buf_cleanup(&r.err_body);
    if (!err) {
        u->n_parts = no;
        u->part_len = 0;
    }
out:
    sl_buf_cleanup(&q);
    if (err) {
        u->failed = true;
        upload_abort(u);
    }
    return err;
}

static sl_err upload_write(sl_ostream *os, const void *p, size_t n)
{
    s3_upload *u = (s3_upload *)os;
    size_t cap = u->s3->base.opts.part_size;
    if (u->failed)
        return sl_errbuf_set(os->errbuf, sizeof os->errbuf, SL_ERR_CLOSED,
                             "upload of \"%s\" failed earlier", u->base.key);
    const char *src = p;
    size_t left = n;
    while (left > 0) {
        if (u->part_len == cap) {
            sl_err err = upload_part(u, os->errbuf, sizeof os->errbuf);
            if (err)
                return err;
        }
        size_t take = cap - u->part_len < left ? cap - u->part_len : left;
        memcpy(u->part + u->part_len, src, take);
        u->part_len += take;
        src += take;
        left -= take;
    }
    os->written += n;
    return SL_OK;
}

static sl_err upload_flush(sl_ostream *os)
{
    return SL_OK; /* nothing is durable on S3 before the upload completes */
}

static sl_err s3_upload_commit(sl_storage_upload_t *up, char *errbuf, size_t errlen)
{
    s3_upload *u = (s3_upload *)up;
    if (u->failed || u->committed)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CLOSED, "upload of \"%s\" %s", up->key,
                             u->committed ? "is already committed" : "failed earlier");
    sl_err err;
    if (!u->upload_id) {
        err = s3_put(&u->s3->base, up->key, u->part, u->part_len, false, errbuf, errlen);
        u->failed = err != SL_OK;
        u->committed = err == SL_OK;
        return err;
    }
    if (u->part_len > 0 && (err = upload_part(u, errbuf, errlen)))
        return err;
    sl_buf q, body, resp;
    sl_buf_init(&q, 8192);
    sl_buf_init(&body, 64u * 1024 * 1024);
    sl_buf_init(&resp, SL__S3_MAX_BODY);
    err = upload_query(u, 0, &q);
    if (!err)
        err = sl_buf_append_str(&body, "<CompleteMultipartUpload>");
    if (!err)
        err = sl_buf_append(&body, u->parts_xml.data, u->parts_xml.len);
    if (!err)
        err = sl_buf_append_str(&body, "</CompleteMultipartUpload>");
    if (err) {
        err = sl_errbuf_set(errbuf, errlen, err, "out of memory completing \"%s\"", up->key);
        goto out;
    }
    s3_req req = {.method = "POST",
                  .key = u->fk,
                  .query = q.data,
                  .body = body.data,
                  .body_len = body.len,
                  .out = &resp};
    s3_resp r;
    err = s3_request(u->s3, &req, &r, errbuf, errlen);
    if (!err && r.status == 404 && r.ambiguous) {
        /* An earlier try may have completed the upload and lost its answer: then the
         * upload id is gone and the object is there, with every byte written. */
        sl_storage_info info;
        char eb2[256];
        if (s3_head(&u->s3->base, up->key, &info, eb2, sizeof eb2) == SL_OK &&
            info.size == up->os.written) {
            sl_buf_reset(&resp);
            err = sl_buf_append_str(&resp, "<CompleteMultipartUploadResult/>");
            r.status = 200;
        }
    }
    if (!err && (r.status < 200 || r.status > 299))
        err = status_error(u->s3, &req, &r, errbuf, errlen);
    /* S3 may answer 200 and put an Error document in the body. */
    if (!err)
        err = sl__storage_xml_complete(resp.data ? resp.data : "", resp.len, errbuf, errlen);
    sl_buf_cleanup(&r.err_body);
out:
    sl_buf_cleanup(&q);
    sl_buf_cleanup(&body);
    sl_buf_cleanup(&resp);
    if (err) {
        u->failed = true;
        upload_abort(u);
    } else {
        u->committed = true;
        free(u->upload_id);
        u->upload_id = NULL;
    }
    return err;
}

static void s3_upload_free(sl_storage_upload_t *up)
{
    s3_upload *u = (s3_upload *)up;
    upload_abort(u); /* no-op once committed or aborted */
    sl_buf_cleanup(&u->parts_xml);
    free(u->part);
    free(u->fk);
    free(up->key);
    free(u);
}

static sl_err s3_upload_new(sl_storage_t *st, const char *key, sl_storage_upload_t **up,
                            char *errbuf, size_t errlen)
{
    s3_store *s3 = (s3_store *)st;
    s3_upload *u = calloc(1, sizeof *u);
    if (!u)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "out of memory");
    u->base.st = st;
    u->base.os.write = upload_write;
    u->base.os.flush = upload_flush;
    u->s3 = s3;
    sl_buf_init(&u->parts_xml, (size_t)SL_STORAGE_MAX_PARTS * 512);
    u->base.key = strdup(key);
    u->fk = full_key(s3, key);
    u->part = malloc(st->opts.part_size);
    if (!u->base.key || !u->fk || !u->part) {
        s3_upload_free(&u->base);
        return sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "out of memory or key too long");
    }
    *up = &u->base;
    return SL_OK;
}

static void s3_close(sl_storage_t *st)
{
    s3_store *s3 = (s3_store *)st;
    for (size_t i = 0; i < s3->n_idle; i++)
        curl_easy_cleanup(s3->idle[i]);
    pthread_mutex_destroy(&s3->lock);
    free(s3->bucket);
    free(s3->prefix);
    free(s3->base_url);
    free(s3->host);
    free(s3->region);
    free(s3->akid);
    if (s3->secret)
        memset(s3->secret, 0, strlen(s3->secret));
    free(s3->secret);
    free(s3->token);
    free(s3);
}

static const sl__storage_ops s3_ops = {
    .get = s3_get,
    .put = s3_put,
    .head = s3_head,
    .del = s3_del,
    .list = s3_list,
    .list_temporary = s3_list_temporary,
    .delete_temporary = s3_delete_temporary,
    .upload_new = s3_upload_new,
    .upload_commit = s3_upload_commit,
    .upload_free = s3_upload_free,
    .close = s3_close,
};

/* Splits "http[s]://HOST[:PORT][/]" into scheme and host[:port], default port dropped. */
static sl_err parse_endpoint(const char *ep, char *scheme, size_t slen, char *host, size_t hlen,
                             char *errbuf, size_t errlen)
{
    const char *rest;
    if (strncmp(ep, "http://", 7) == 0) {
        snprintf(scheme, slen, "http");
        rest = ep + 7;
    } else if (strncmp(ep, "https://", 8) == 0) {
        snprintf(scheme, slen, "https");
        rest = ep + 8;
    } else {
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG,
                             "s3 endpoint \"%s\" must start with http:// or https://", ep);
    }
    size_t n = strcspn(rest, "/?#");
    if (n == 0 || n >= hlen || (rest[n] && strcmp(rest + n, "/") != 0))
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG,
                             "s3 endpoint \"%s\" must be scheme://host[:port] with no path", ep);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)rest[i] <= ' ' || rest[i] == '@')
            return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG, "s3 endpoint \"%s\" has a bad host",
                                 ep);
    memcpy(host, rest, n);
    host[n] = '\0';
    const char *def = strcmp(scheme, "http") == 0 ? ":80" : ":443";
    size_t dl = strlen(def);
    if (n > dl && strcmp(host + n - dl, def) == 0 && host[0] != '[')
        host[n - dl] = '\0';
    return SL_OK;
}

sl_err sl__storage_s3_open(const sl__storage_uri *u, const sl_storage_options *opts,
                           sl_storage_t **st, char *errbuf, size_t errlen)
{
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_INTERNAL, "curl_global_init failed: %s",
                             curl_easy_strerror(curl_init_rc));
    char scheme[8], host[512], region_host[600];
    const char *ep = opts->endpoint;
    if (!ep || !*ep) {
        snprintf(region_host, sizeof region_host, "https://s3.%s.amazonaws.com", opts->region);
        ep = region_host;
    }
    sl_err err = parse_endpoint(ep, scheme, sizeof scheme, host, sizeof host, errbuf, errlen);
    if (err)
        return err;
    for (const char *c = opts->region; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-'))
            return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG, "bad s3 region \"%s\"",
                                 opts->region);
    if (strlen(opts->region) > 64 || strlen(opts->access_key_id) > 128)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG,
                             "s3 region or access key id is too long (64 and 128 bytes at most)");
    s3_store *s3 = calloc(1, sizeof *s3);
    if (!s3)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&s3->lock, NULL);
    s3->base.ops = &s3_ops;
    s3->path_style = opts->path_style;
    char full_host[600];
    if (s3->path_style)
        snprintf(full_host, sizeof full_host, "%s", host);
    else
        snprintf(full_host, sizeof full_host, "%s.%s", u->bucket, host);
    char url[700];
    snprintf(url, sizeof url, "%s://%s", scheme, full_host);
    s3->bucket = strdup(u->bucket);
    s3->prefix = strdup(u->path);
    s3->base_url = strdup(url);
    s3->host = strdup(full_host);
    s3->region = strdup(opts->region);
    s3->akid = strdup(opts->access_key_id);
    s3->secret = strdup(opts->secret_access_key);
    s3->token = opts->session_token ? strdup(opts->session_token) : NULL;
    if (!s3->bucket || !s3->prefix || !s3->base_url || !s3->host || !s3->region || !s3->akid ||
        !s3->secret || (opts->session_token && !s3->token)) {
        s3_close(&s3->base);
        return sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "out of memory");
    }
    *st = &s3->base;
    return SL_OK;
}
