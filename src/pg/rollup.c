/* The per-minute rollups of a batch, computed in C from the rows PostgreSQL stored and
 * upserted by one statement: counts by channel, platform, event type and category;
 * counts by channel and resource; HyperLogLog sketches of sessions and users per channel
 * (registers from PostgreSQL's own hashtextextended, reimplemented here, so a sketch made
 * here merges with one made in SQL). Also the binary array parameters the sink sends.
 * docs/internals/pg.md describes the tables.
 *
 * Invariants:
 *  1. A group's key holds the texts of the row's columns exactly as COPY handed them to
 *     PostgreSQL; the statement casts them as the columns do (timestamptz, varchar(n)) and
 *     groups again, so what PostgreSQL made of a text decides the rollup row, never C.
 *     C interprets only what it reads exactly as PostgreSQL does: a timestamp in RFC 3339
 *     with at most microseconds and no leap second is keyed by its minute, sent as a
 *     binary timestamptz (the session's time zone is UTC, so it is what date_trunc gives),
 *     a session or user id is hashed as varchar(100) stores it (trailing spaces past the
 *     limit cut), and an interaction value that is a plain decimal (at most 12 integer and
 *     6 fraction digits) is summed per group in millionths and sent as one text with the
 *     values' largest scale, which is what numeric's sum of the values gives; any other
 *     value goes as its text for PostgreSQL to read and sum.
 *  2. Memory is bounded: at MAX_GROUPS groups in a table (MAX_SKETCHES in the distinct
 *     one) the caller flushes (the upserts add and merge, so several flushes in one
 *     transaction equal one). */
#include <stdlib.h>
#include <string.h>

#include "core/grow.h"
#include "core/hash.h"
#include "core/time.h"
#include "pg/pg_int.h"

#define MAX_GROUPS   16384 /* minute and resource groups of a flush */
#define MAX_SKETCHES 1024  /* (minute, channel) sketch pairs, 2 KiB each, of a flush */
#define HLL_REGS     1024

#define OID_INT4 SL__PG_OID_INT4
#define OID_INT8 SL__PG_OID_INT8
#define OID_TEXT SL__PG_OID_TEXT
#define OID_TSTZ SL__PG_OID_TIMESTAMPTZ
typedef sl__pg_array array;

typedef struct group {
    uint64_t hash;
    size_t key_off, key_len; /* in the table's keys */
    int64_t events;
    size_t regs;          /* distinct table: index of its session and user registers in r->regs */
    bool sessions, users; /* distinct table: which registers hold something */
    /* minute table: the sum of its plain decimal values (value_sum) in millionths, how many,
     * and their largest count of fraction digits */
    int64_t value_units, values;
    int value_scale;
} group;

typedef struct table {
    sl_buf keys;
    group *groups;
    size_t n, cap;
    uint32_t *slots; /* open addressing, group index + 1; 2 * MAX_GROUPS of them */
} table;

struct sl__pg_rollup {
    table minute, resources, distinct;
    uint8_t *regs; /* HLL_REGS sessions then HLL_REGS users per distinct group */
    size_t regs_cap;
    array value_group, value_text; /* interaction values C does not sum, their minute group */
    sl_buf key;                    /* scratch: the key being looked up */
};

/* ---- PostgreSQL's hash_bytes_extended with seed 0 (Bob Jenkins' lookup3 mix) ---- */

static inline uint32_t rot(uint32_t x, int k)
{
    return (x << k) | (x >> (32 - k));
}

#define MIX(a, b, c)                                                                               \
    do {                                                                                           \
        a -= c, a ^= rot(c, 4), c += b;                                                            \
        b -= a, b ^= rot(a, 6), a += c;                                                            \
        c -= b, c ^= rot(b, 8), b += a;                                                            \
        a -= c, a ^= rot(c, 16), c += b;                                                           \
        b -= a, b ^= rot(a, 19), a += c;                                                           \
        c -= b, c ^= rot(b, 4), b += a;                                                            \
    } while (0)

#define FINAL(a, b, c)                                                                             \
    do {                                                                                           \
        c ^= b, c -= rot(b, 14);                                                                   \
        a ^= c, a -= rot(c, 11);                                                                   \
        b ^= a, b -= rot(a, 25);                                                                   \
        c ^= b, c -= rot(b, 16);                                                                   \
        a ^= c, a -= rot(c, 4);                                                                    \
        b ^= a, b -= rot(a, 14);                                                                   \
        c ^= b, c -= rot(b, 24);                                                                   \
    } while (0)

static inline uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint64_t sl__pg_hash_text(const char *s, size_t len)
{
    const unsigned char *k = (const unsigned char *)s;
    uint32_t a, b, c;
    a = b = c = 0x9e3779b9u + (uint32_t)len + 3923095u;
    for (; len >= 12; k += 12, len -= 12) {
        a += le32(k);
        b += le32(k + 4);
        c += le32(k + 8);
        MIX(a, b, c);
    }
    /* The last 0-11 bytes: a and b take whole little-endian words, c from its second
     * byte up (its low byte stands for the length in lookup3). */
    unsigned char tail[12] = {0};
    memcpy(tail, k, len);
    a += le32(tail);
    b += le32(tail + 4);
    c += le32(tail + 8) << 8;
    FINAL(a, b, c);
    return (uint64_t)b << 32 | c;
}

/* ---- keys ---- */

/* The byte length of a varchar(limit) value as stored: PostgreSQL cuts a value that is
 * over its limit only by trailing spaces to the limit (and refuses any other). */
static size_t stored_len(const char *s, size_t len, size_t limit)
{
    size_t chars = 0, i = 0;
    for (; i < len && chars < limit; i++)
        chars += ((unsigned char)s[i] & 0xc0) != 0x80;
    while (i < len && ((unsigned char)s[i] & 0xc0) == 0x80)
        i++; /* the rest of the limit-th character */
    for (size_t j = i; j < len; j++) {
        if (s[j] != ' ')
            return len;
    }
    return i;
}

bool sl__pg_time_exact(const char *s, size_t len, int64_t *us)
{
    if (len < 20 || (s[17] == '6' && s[18] == '0') || sl_time_parse_rfc3339(s, len, us))
        return false;
    if (s[19] == '.') {
        size_t digits = 0;
        while (20 + digits < len && s[20 + digits] >= '0' && s[20 + digits] <= '9')
            digits++;
        if (digits > 6)
            return false;
    }
    return true;
}

/* The minute of a timestamp text that PostgreSQL reads to the same instant (invariant
 * 1). */
static bool minute_of(const char *s, size_t len, int64_t *minute_us)
{
    int64_t us;
    if (!sl__pg_time_exact(s, len, &us))
        return false;
    int64_t m = INT64_C(60000000);
    *minute_us = us / m * m - (us % m < 0 ? m : 0);
    return true;
}

/* Key fields: a tag byte, then for text a 4-byte length and the bytes, for a minute its
 * 8 bytes. */
enum { KEY_NULL, KEY_TEXT, KEY_MINUTE };

static sl_err key_text(sl_buf *key, const char *text, sl__pg_text t)
{
    if (t.len == SL__PG_NULL)
        return sl_buf_append_char(key, KEY_NULL);
    uint32_t n = (uint32_t)t.len;
    sl_err err = sl_buf_append_char(key, KEY_TEXT);
    if (!err)
        err = sl_buf_append(key, &n, sizeof n);
    return err ? err : sl_buf_append(key, text + t.off, t.len);
}

static sl_err key_time(sl_buf *key, const char *text, sl__pg_text t)
{
    int64_t minute;
    if (t.len == SL__PG_NULL || !minute_of(text + t.off, t.len, &minute))
        return key_text(key, text, t);
    sl_err err = sl_buf_append_char(key, KEY_MINUTE);
    return err ? err : sl_buf_append(key, &minute, sizeof minute);
}

/* Reads the text key field at *at: its text, NULL for null. */
static const char *key_field(const char *key, size_t *at, size_t *len)
{
    if (key[(*at)++] == KEY_NULL)
        return NULL;
    uint32_t n;
    memcpy(&n, key + *at, sizeof n);
    *at += sizeof n;
    const char *s = key + *at;
    *at += n;
    *len = n;
    return s;
}

/* Reads the time key field at *at into two array elements: a minute C read as a
 * timestamptz (the text null), anything else as its text (the minute null). */
static sl_err bucket_field(const char *key, size_t *at, array *minute, array *text)
{
    if (key[*at] != KEY_MINUTE) {
        size_t len = 0;
        const char *s = key_field(key, at, &len);
        sl_err err = sl__pg_array_text(minute, NULL, 0);
        return err ? err : sl__pg_array_text(text, s, len);
    }
    int64_t us;
    memcpy(&us, key + *at + 1, sizeof us);
    *at += 1 + sizeof us;
    sl_err err = sl__pg_array_int(minute, us - SL__PG_EPOCH_US);
    return err ? err : sl__pg_array_text(text, NULL, 0);
}

/* The group of the key in r->key, added if new; NULL when out of memory. */
static group *find_group(table *t, const sl_buf *key)
{
    uint64_t h = sl_hash_bytes(key->data, key->len);
    size_t mask = 2 * MAX_GROUPS - 1;
    size_t at = h & mask;
    for (;; at = (at + 1) & mask) {
        uint32_t slot = t->slots[at];
        if (slot == 0)
            break;
        group *g = &t->groups[slot - 1];
        if (g->hash == h && g->key_len == key->len &&
            memcmp(t->keys.data + g->key_off, key->data, key->len) == 0)
            return g;
    }
    group *grown = sl_grow(t->groups, t->n, &t->cap, 64, sizeof *grown);
    if (!grown)
        return NULL;
    t->groups = grown;
    size_t off = t->keys.len;
    if (sl_buf_append(&t->keys, key->data, key->len))
        return NULL;
    t->slots[at] = (uint32_t)++t->n;
    group *g = &t->groups[t->n - 1];
    *g = (group){.hash = h, .key_off = off, .key_len = key->len};
    return g;
}

static void table_reset(table *t)
{
    sl_buf_reset(&t->keys);
    t->n = 0;
    memset(t->slots, 0, 2 * MAX_GROUPS * sizeof *t->slots);
}

/* ---- binary array parameters ---- */

static sl_err put_be32(sl_buf *b, uint32_t v)
{
    unsigned char p[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    return sl_buf_append(b, p, sizeof p);
}

sl_err sl__pg_binary_text(sl_buf *b, const char *s, size_t len)
{
    if (!s)
        return put_be32(b, UINT32_MAX); /* length -1 */
    sl_err err = put_be32(b, (uint32_t)len);
    return err ? err : sl_buf_append(b, s, len);
}

sl_err sl__pg_binary_int8(sl_buf *b, int64_t v)
{
    sl_err err = put_be32(b, 8);
    if (!err)
        err = put_be32(b, (uint32_t)((uint64_t)v >> 32));
    return err ? err : put_be32(b, (uint32_t)v);
}

sl_err sl__pg_array_text(array *a, const char *s, size_t len)
{
    a->n++;
    if (!s)
        a->nulls = true;
    return sl__pg_binary_text(&a->body, s, len);
}

sl_err sl__pg_array_int(array *a, int64_t v)
{
    a->n++;
    if (a->oid != OID_INT4)
        return sl__pg_binary_int8(&a->body, v);
    sl_err err = put_be32(&a->body, 4);
    return err ? err : put_be32(&a->body, (uint32_t)v);
}

void sl__pg_array_init(array *a, uint32_t oid)
{
    *a = (array){.oid = oid};
    sl_buf_init(&a->body, SL__PG_PARAM_MAX);
}

void sl__pg_array_cleanup(array *a)
{
    sl_buf_cleanup(&a->body);
}

/* Dimensions, null flag, element type, then the length and lower bound 1 of the one
 * dimension (none when empty), then the elements. */
sl_err sl__pg_array_finish(const array *a, sl_buf *out)
{
    sl_buf_reset(out);
    sl_err err = put_be32(out, a->n ? 1 : 0);
    if (!err)
        err = put_be32(out, a->nulls ? 1 : 0);
    if (!err)
        err = put_be32(out, a->oid);
    if (!err && a->n && !(err = put_be32(out, (uint32_t)a->n)))
        err = put_be32(out, 1);
    return err ? err : sl_buf_append(out, a->body.data ? a->body.data : "", a->body.len);
}

void sl__pg_array_reset(array *a)
{
    sl_buf_reset(&a->body);
    a->n = 0;
    a->nulls = false;
}

/* ---- the accumulator ---- */

static void table_init(table *t)
{
    sl_buf_init(&t->keys, SL__PG_PARAM_MAX);
    t->slots = calloc(2 * MAX_GROUPS, sizeof *t->slots);
}

static void table_cleanup(table *t)
{
    sl_buf_cleanup(&t->keys);
    free(t->groups);
    free(t->slots);
}

sl_err sl__pg_rollup_new(sl__pg_rollup **out)
{
    sl__pg_rollup *r = calloc(1, sizeof *r);
    if (!r)
        return SL_ERR_NOMEM;
    table_init(&r->minute);
    table_init(&r->resources);
    table_init(&r->distinct);
    sl__pg_array_init(&r->value_group, OID_INT4);
    sl__pg_array_init(&r->value_text, OID_TEXT);
    sl_buf_init(&r->key, SL__PG_PARAM_MAX);
    if (!r->minute.slots || !r->resources.slots || !r->distinct.slots) {
        sl__pg_rollup_free(r);
        return SL_ERR_NOMEM;
    }
    *out = r;
    return SL_OK;
}

void sl__pg_rollup_free(sl__pg_rollup *r)
{
    if (!r)
        return;
    table_cleanup(&r->minute);
    table_cleanup(&r->resources);
    table_cleanup(&r->distinct);
    sl__pg_array_cleanup(&r->value_group);
    sl__pg_array_cleanup(&r->value_text);
    sl_buf_cleanup(&r->key);
    free(r->regs);
    free(r);
}

void sl__pg_rollup_reset(sl__pg_rollup *r)
{
    table_reset(&r->minute);
    table_reset(&r->resources);
    table_reset(&r->distinct);
    sl__pg_array_reset(&r->value_group);
    sl__pg_array_reset(&r->value_text);
}

bool sl__pg_rollup_full(const sl__pg_rollup *r)
{
    return r->minute.n >= MAX_GROUPS || r->resources.n >= MAX_GROUPS ||
           r->distinct.n >= MAX_SKETCHES;
}

/* Folds a session or user id (varchar(100)) into HyperLogLog registers as the SQL
 * sluice_hll_fold does: the low 10 bits of the hash pick the register, 1 + the leading
 * zeros of the next 54 bits (55 when all are zero) is the candidate value. */
static void hll_add(uint8_t *regs, const char *s, size_t len)
{
    uint64_t h = sl__pg_hash_text(s, stored_len(s, len, 100));
    uint64_t w = (h >> 10) & ((UINT64_C(1) << 54) - 1);
    uint8_t rank = w ? (uint8_t)(__builtin_clzll(w) - 9) : 55;
    uint8_t *reg = &regs[h & (HLL_REGS - 1)];
    if (rank > *reg)
        *reg = rank;
}

enum { VALUE_SCALE = 6 }; /* fraction digits C sums exactly */

/* A plain decimal text ("-12.3": at most 12 integer and VALUE_SCALE fraction digits, no
 * exponent, nothing around it) as millionths and its fraction digits; false for anything
 * else, which PostgreSQL's numeric reads instead. */
static bool value_units(const char *s, size_t len, int64_t *units, int *scale)
{
    if (len == 0)
        return false;
    size_t i = s[0] == '-', int_digits = 0, frac_digits = 0;
    int64_t v = 0;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        if (++int_digits > 12)
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (int_digits == 0)
        return false;
    if (i < len && s[i] == '.') {
        for (i++; i < len && s[i] >= '0' && s[i] <= '9' && frac_digits < VALUE_SCALE;
             i++, frac_digits++)
            v = v * 10 + (s[i] - '0');
        if (frac_digits == 0)
            return false;
    }
    if (i != len)
        return false;
    for (size_t d = frac_digits; d < VALUE_SCALE; d++)
        v *= 10;
    *units = s[0] == '-' ? -v : v;
    *scale = (int)frac_digits;
    return true;
}

/* A group's sum of millionths as a decimal text with its values' largest number of
 * fraction digits, so numeric's sum of it has the scale the values' sum would; into
 * out[32], returns the length. */
static size_t value_format(const group *g, char out[32])
{
    uint64_t v = g->value_units < 0 ? -(uint64_t)g->value_units : (uint64_t)g->value_units;
    char digits[24];
    size_t n = 0, len = 0;
    for (; v || n <= VALUE_SCALE; v /= 10)
        digits[n++] = (char)('0' + v % 10); /* least significant first, at least 7 */
    if (g->value_units < 0)
        out[len++] = '-';
    while (n > VALUE_SCALE)
        out[len++] = digits[--n];
    if (g->value_scale)
        out[len++] = '.';
    for (int d = 0; d < g->value_scale; d++)
        out[len++] = digits[--n];
    return len;
}

sl_err sl__pg_rollup_add(sl__pg_rollup *r, const char *text, const sl__pg_keys *k)
{
    sl_buf *key = &r->key;
    sl_err err;
    group *g;

    sl_buf_reset(key);
    if ((err = key_time(key, text, k->timestamp)) || (err = key_text(key, text, k->channel)) ||
        (err = key_text(key, text, k->platform)) || (err = key_text(key, text, k->event_type)) ||
        (err = key_text(key, text, k->event_category)))
        return err;
    if (!(g = find_group(&r->minute, key)))
        return SL_ERR_NOMEM;
    g->events++;
    if (k->interaction_value.len != SL__PG_NULL) {
        const char *v = text + k->interaction_value.off;
        int64_t units, sum;
        int scale;
        if (value_units(v, k->interaction_value.len, &units, &scale) &&
            !__builtin_add_overflow(g->value_units, units, &sum)) {
            g->value_units = sum;
            g->values++;
            if (scale > g->value_scale)
                g->value_scale = scale;
        } else if ((err = sl__pg_array_int(&r->value_group, (int64_t)(g - r->minute.groups) + 1)) ||
                   (err = sl__pg_array_text(&r->value_text, v, k->interaction_value.len))) {
            return err;
        }
    }

    sl_buf_reset(key);
    if ((err = key_time(key, text, k->timestamp)) || (err = key_text(key, text, k->channel)) ||
        (err = key_text(key, text, k->resource_id)))
        return err;
    if (!(g = find_group(&r->resources, key)))
        return SL_ERR_NOMEM;
    g->events++;

    sl_buf_reset(key);
    if ((err = key_time(key, text, k->timestamp)) || (err = key_text(key, text, k->channel)))
        return err;
    size_t before = r->distinct.n;
    if (!(g = find_group(&r->distinct, key)))
        return SL_ERR_NOMEM;
    if (r->distinct.n > before) {
        size_t need = r->distinct.n * 2 * HLL_REGS;
        if (need > r->regs_cap) {
            size_t cap = r->regs_cap ? 2 * r->regs_cap : 64 * 2 * HLL_REGS;
            uint8_t *grown = realloc(r->regs, cap);
            if (!grown)
                return SL_ERR_NOMEM;
            r->regs = grown;
            r->regs_cap = cap;
        }
        g->regs = before * 2 * HLL_REGS;
        memset(r->regs + g->regs, 0, 2 * HLL_REGS);
    }
    if (k->session_id.len != SL__PG_NULL) {
        hll_add(r->regs + g->regs, text + k->session_id.off, k->session_id.len);
        g->sessions = true;
    }
    if (k->user_id.len != SL__PG_NULL) {
        hll_add(r->regs + g->regs + HLL_REGS, text + k->user_id.off, k->user_id.len);
        g->users = true;
    }
    return SL_OK;
}

/* Each rollup's groups, cast as the columns are and grouped again (invariant 1), added to
 * or merged into the stored rows. Sorted, so concurrent sinks lock rows in one order. A
 * bucket is the minute C read (m) or else the timestamp's text (b), which PostgreSQL
 * reads and truncates itself. */
static const char flush_sql[] =
    "WITH v AS ("
    " SELECT g, sum(x) AS s, sum(n) AS n FROM ("
    " SELECT g, x::numeric, 1 FROM unnest($8::int4[], $9::text[]) AS u(g, x) UNION ALL"
    " SELECT g, x::numeric, n FROM unnest($20::int4[], $21::text[], $22::int8[])"
    " AS u(g, x, n)) AS u(g, x, n) GROUP BY g),"
    "r1 AS ("
    " INSERT INTO sluice_rollup_minute AS r (bucket, channel, platform, event_type,"
    " event_category, events, value_sum, value_count)"
    " SELECT coalesce(u.m, date_trunc('minute', u.b::timestamptz)), u.c::varchar(50),"
    " u.p::varchar(100), u.t::varchar(100), u.k::varchar(100), sum(u.n), sum(v.s),"
    " coalesce(sum(v.n), 0)"
    " FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[],"
    " $6::text[], $7::int8[]) WITH ORDINALITY AS u(m, b, c, p, t, k, n, g)"
    " LEFT JOIN v ON v.g = u.g"
    " GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5"
    " ON CONFLICT (bucket, channel, platform, event_type, event_category)"
    " DO UPDATE SET events = r.events + excluded.events,"
    " value_sum = CASE WHEN r.value_sum IS NULL THEN excluded.value_sum"
    " WHEN excluded.value_sum IS NULL THEN r.value_sum"
    " ELSE r.value_sum + excluded.value_sum END,"
    " value_count = r.value_count + excluded.value_count),"
    "r2 AS ("
    " INSERT INTO sluice_rollup_resources AS r (bucket, channel, resource_id, events)"
    " SELECT coalesce(m, date_trunc('minute', b::timestamptz)), c::varchar(50),"
    " x::varchar(500), sum(n)"
    " FROM unnest($10::timestamptz[], $11::text[], $12::text[], $13::text[], $14::int8[])"
    " AS u(m, b, c, x, n)"
    " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 ON CONFLICT (bucket, channel, resource_id)"
    " DO UPDATE SET events = r.events + excluded.events)"
    "INSERT INTO sluice_rollup_distinct AS r (bucket, channel, what, regs)"
    " SELECT coalesce(m, date_trunc('minute', b::timestamptz)), c::varchar(50), w,"
    " sluice_hll_merge(x::smallint[])"
    " FROM unnest($15::timestamptz[], $16::text[], $17::text[], $18::text[], $19::text[])"
    " AS u(m, b, c, w, x)"
    " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 ON CONFLICT (bucket, channel, what)"
    " DO UPDATE SET regs = sluice_hll_union(r.regs, excluded.regs)";

enum { N_PARAMS = 22 };

/* Appends each group's bucket to arrays[0..1], its text fields to arrays[2..2+fields) and
 * its count to arrays[2+fields]. */
static sl_err table_arrays(const table *t, array *arrays, size_t fields)
{
    for (size_t i = 0; i < t->n; i++) {
        const group *g = &t->groups[i];
        const char *key = t->keys.data + g->key_off;
        size_t at = 0;
        sl_err err = bucket_field(key, &at, &arrays[0], &arrays[1]);
        for (size_t f = 0; f < fields && !err; f++) {
            size_t len = 0;
            const char *s = key_field(key, &at, &len);
            err = sl__pg_array_text(&arrays[2 + f], s, len);
        }
        if (!err)
            err = sl__pg_array_int(&arrays[2 + fields], g->events);
        if (err)
            return err;
    }
    return SL_OK;
}

/* Appends one sketch row: the group's bucket (arrays[0..1]) and channel, what, and the
 * registers as an array literal. */
static sl_err sketch_row(const table *t, const group *g, const char *what, const uint8_t *regs,
                         array *arrays, sl_buf *scratch)
{
    const char *key = t->keys.data + g->key_off;
    size_t at = 0, len = 0;
    sl_err err = bucket_field(key, &at, &arrays[0], &arrays[1]);
    const char *channel = key_field(key, &at, &len);
    if (err || (err = sl__pg_array_text(&arrays[2], channel, len)))
        return err;
    /* "{r1,r2,...}"; a register holds at most 55, two digits */
    char literal[HLL_REGS * 3 + 2], *p = literal;
    for (size_t i = 0; i < HLL_REGS; i++) {
        *p++ = i ? ',' : '{';
        if (regs[i] >= 10)
            *p++ = (char)('0' + regs[i] / 10);
        *p++ = (char)('0' + regs[i] % 10);
    }
    *p++ = '}';
    sl_buf_reset(scratch);
    if ((err = sl_buf_append(scratch, literal, (size_t)(p - literal))) ||
        (err = sl__pg_array_text(&arrays[3], what, strlen(what))))
        return err;
    return sl__pg_array_text(&arrays[4], scratch->data, scratch->len);
}

sl_err sl__pg_rollup_flush(sl__pg_rollup *r, PGconn *conn, char *errbuf, size_t errlen)
{
    if (r->minute.n == 0)
        return SL_OK;
    /* minute (7), its values C did not sum (2, kept in r), resources (5), distinct (5),
     * the minute groups' sums of the values C summed (3) */
    static const uint32_t oids[N_PARAMS] = {
        OID_TSTZ, OID_TEXT, OID_TEXT, OID_TEXT, OID_TEXT, OID_TEXT, OID_INT8, 0,
        0,        OID_TSTZ, OID_TEXT, OID_TEXT, OID_TEXT, OID_INT8, OID_TSTZ, OID_TEXT,
        OID_TEXT, OID_TEXT, OID_TEXT, OID_INT4, OID_TEXT, OID_INT8};
    array arrays[N_PARAMS];
    sl_buf params[N_PARAMS], scratch;
    for (int i = 0; i < N_PARAMS; i++) {
        sl__pg_array_init(&arrays[i], oids[i]);
        sl_buf_init(&params[i], SL__PG_PARAM_MAX);
    }
    sl_buf_init(&scratch, SL__PG_PARAM_MAX);
    sl_err err;
    if ((err = table_arrays(&r->minute, &arrays[0], 4)) ||
        (err = table_arrays(&r->resources, &arrays[9], 2)))
        goto out;
    for (size_t i = 0; i < r->minute.n && !err; i++) {
        const group *g = &r->minute.groups[i];
        char sum[32];
        if (g->values && !(err = sl__pg_array_int(&arrays[19], (int64_t)i + 1)) &&
            !(err = sl__pg_array_text(&arrays[20], sum, value_format(g, sum))))
            err = sl__pg_array_int(&arrays[21], g->values);
    }
    for (size_t i = 0; i < r->distinct.n && !err; i++) {
        const group *g = &r->distinct.groups[i];
        if (g->sessions)
            err =
                sketch_row(&r->distinct, g, "session_id", r->regs + g->regs, &arrays[14], &scratch);
        if (!err && g->users)
            err = sketch_row(&r->distinct, g, "user_id", r->regs + g->regs + HLL_REGS, &arrays[14],
                             &scratch);
    }
    const char *values[N_PARAMS];
    int lengths[N_PARAMS], formats[N_PARAMS];
    for (int i = 0; i < N_PARAMS && !err; i++) {
        const array *a = i == 7 ? &r->value_group : i == 8 ? &r->value_text : &arrays[i];
        if ((err = sl__pg_array_finish(a, &params[i])))
            break;
        values[i] = params[i].data;
        lengths[i] = (int)params[i].len;
        formats[i] = 1;
    }
    if (err)
        goto out;
    PGresult *res = PQexecParams(conn, flush_sql, N_PARAMS, NULL, values, lengths, formats, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        const char *msg = PQresultErrorMessage(res);
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not update the rollups: %s",
                            *msg ? msg : PQerrorMessage(conn));
    }
    PQclear(res);
    if (!err)
        sl__pg_rollup_reset(r);
out:
    for (int i = 0; i < N_PARAMS; i++) {
        sl__pg_array_cleanup(&arrays[i]);
        sl_buf_cleanup(&params[i]);
    }
    sl_buf_cleanup(&scratch);
    if (err == SL_ERR_NOMEM || err == SL_ERR_TOO_LARGE)
        sl_errbuf_set(errbuf, errlen, err, "could not build the rollup update");
    return err;
}
