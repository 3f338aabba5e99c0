/* Open connections per client address (--max-connections-per-ip). The counts live here,
 * not in libmicrohttpd, because connections are spread over two daemons (listener.c) and
 * each daemon would only count its own. An address's entry is freed when its count drops
 * to zero, so memory follows the connections open now. */
#include <netinet/in.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_int.h"

struct sl__http_ip_count {
    sa_family_t family;
    unsigned char addr[16]; /* IPv4 in the first 4 bytes */
    unsigned n;
};

static int compare_counts(const void *a, const void *b)
{
    const struct sl__http_ip_count *x = a, *y = b;
    if (x->family != y->family)
        return x->family < y->family ? -1 : 1;
    return memcmp(x->addr, y->addr, sizeof x->addr);
}

/* false for an address family without an address to count (it is not limited). */
static bool key_of(const struct sockaddr *addr, struct sl__http_ip_count *key)
{
    memset(key, 0, sizeof *key);
    key->family = addr->sa_family;
    if (addr->sa_family == AF_INET) {
        memcpy(key->addr, &((const struct sockaddr_in *)addr)->sin_addr, 4);
        return true;
    }
    if (addr->sa_family == AF_INET6) {
        memcpy(key->addr, &((const struct sockaddr_in6 *)addr)->sin6_addr, 16);
        return true;
    }
    return false;
}

void sl__http_ip_limit_init(sl__http_ip_limit *l, unsigned limit)
{
    pthread_mutex_init(&l->mu, NULL);
    l->counts = NULL;
    l->limit = limit;
}

void sl__http_ip_limit_cleanup(sl__http_ip_limit *l)
{
    tdestroy(l->counts, free);
    l->counts = NULL;
    pthread_mutex_destroy(&l->mu);
}

bool sl__http_ip_limit_take(sl__http_ip_limit *l, const struct sockaddr *addr)
{
    struct sl__http_ip_count key;
    if (!l->limit || !key_of(addr, &key))
        return true;
    bool taken = false;
    pthread_mutex_lock(&l->mu);
    struct sl__http_ip_count **found = tfind(&key, &l->counts, compare_counts);
    if (found) {
        taken = (*found)->n < l->limit;
        (*found)->n += taken;
    } else {
        struct sl__http_ip_count *entry = malloc(sizeof *entry);
        if (entry) {
            *entry = key;
            entry->n = 1;
            taken = tsearch(entry, &l->counts, compare_counts) != NULL;
            if (!taken)
                free(entry);
        }
    }
    pthread_mutex_unlock(&l->mu);
    return taken;
}

void sl__http_ip_limit_release(sl__http_ip_limit *l, const struct sockaddr *addr)
{
    struct sl__http_ip_count key;
    if (!l->limit || !key_of(addr, &key))
        return;
    pthread_mutex_lock(&l->mu);
    struct sl__http_ip_count **found = tfind(&key, &l->counts, compare_counts);
    if (found && --(*found)->n == 0) {
        struct sl__http_ip_count *entry = *found;
        tdelete(&key, &l->counts, compare_counts);
        free(entry);
    }
    pthread_mutex_unlock(&l->mu);
}
