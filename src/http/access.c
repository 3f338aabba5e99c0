/* Write keys and rate limits for POST /analytics. With write keys configured, a request
 * must name one (X-Write-Key header, Authorization: Bearer, or ?writeKey= for
 * navigator.sendBeacon, which cannot set headers). Each key has a token bucket of `rate`
 * events per second with one second of burst; without keys, all clients share one bucket. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/time.h"
#include "http/http_int.h"

struct sl__http_bucket {
    pthread_mutex_t mu;
    double tokens;
    int64_t refilled_ns;
};

sl_err sl__http_access_init(sl__http_access *a, char *const *keys, size_t n_keys,
                            uint64_t events_per_s)
{
    memset(a, 0, sizeof *a);
    a->keys = keys;
    a->n_keys = n_keys;
    a->rate = (double)events_per_s;
    if (!events_per_s)
        return SL_OK;
    size_t n_buckets = n_keys ? n_keys : 1;
    a->buckets = calloc(n_buckets, sizeof *a->buckets);
    if (!a->buckets)
        return SL_ERR_NOMEM;
    a->n_buckets = n_buckets;
    for (size_t i = 0; i < n_buckets; i++) {
        pthread_mutex_init(&a->buckets[i].mu, NULL);
        a->buckets[i].tokens = a->rate;
        a->buckets[i].refilled_ns = sl_time_mono_ns();
    }
    return SL_OK;
}

void sl__http_access_cleanup(sl__http_access *a)
{
    for (size_t i = 0; i < a->n_buckets; i++)
        pthread_mutex_destroy(&a->buckets[i].mu);
    free(a->buckets);
    a->buckets = NULL;
    a->n_buckets = 0;
}

/* Compares in time that does not depend on where the strings differ. */
static bool same_secret(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = (unsigned char)(la != lb);
    for (size_t i = 0; i < la; i++)
        diff |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
    return diff == 0;
}

static const char *presented_key(struct MHD_Connection *conn)
{
    const char *k = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Write-Key");
    if (k)
        return k;
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (auth && strncasecmp(auth, "Bearer ", 7) == 0)
        return auth + 7;
    return MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "writeKey");
}

unsigned sl__http_access_check_key(const sl__http_access *a, struct MHD_Connection *conn,
                                   size_t *bucket, char *msg, size_t msglen)
{
    *bucket = 0;
    if (!a->n_keys)
        return 0;
    const char *k = presented_key(conn);
    if (!k || !*k) {
        snprintf(msg, msglen,
                 "a write key is required: send it in X-Write-Key, "
                 "Authorization: Bearer, or ?writeKey=");
        return 401;
    }
    for (size_t i = 0; i < a->n_keys; i++) {
        if (same_secret(k, a->keys[i])) {
            *bucket = i;
            return 0;
        }
    }
    snprintf(msg, msglen, "unknown write key");
    return 401;
}

unsigned sl__http_access_take(sl__http_access *a, size_t bucket, size_t n)
{
    if (!a->n_buckets)
        return 0;
    struct sl__http_bucket *b = &a->buckets[bucket];
    unsigned wait_s = 0;
    pthread_mutex_lock(&b->mu);
    int64_t now = sl_time_mono_ns();
    b->tokens += a->rate * (double)(now - b->refilled_ns) / 1e9;
    if (b->tokens > a->rate)
        b->tokens = a->rate;
    b->refilled_ns = now;
    if (b->tokens >= (double)n) {
        b->tokens -= (double)n;
    } else {
        /* Whole seconds until the bucket could hold n; a request larger than one second's
         * worth can never pass and is told so by a wait beyond the burst. */
        double missing = (double)n - b->tokens;
        wait_s = (unsigned)(missing / a->rate) + 1;
    }
    pthread_mutex_unlock(&b->mu);
    return wait_s;
}
