/* sluice-parquet-tool: drives sluice's Parquet writer from outside, for the integration
 * tests and the benchmark.
 *   write [options] OUT   reads JSON lines on stdin (a schema, then one array per row),
 *                         writes OUT, prints what sl_pq_file_info returned as JSON
 *   bench [options] OUT   generates N analytics events in memory (fixed seed), times
 *                         only the writing of OUT, prints rows/s as JSON
 *   nested [options] OUT  writes --rows rows of a fixed nested schema (lists, a map, a
 *                         struct) with the nested writer, prints each row as JSON
 *   dump FILE             reads FILE with sluice's reader, prints every column chunk's
 *                         levels and values as JSON
 * Options: --codec snappy|zstd|none, --rows N, --row-group-bytes N, --page-bytes N,
 * --dictionary-bytes N, --seed N, --no-sync (finish without fdatasync). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/ostream.h"
#include "core/time.h"
#include "parquet/parquet.h"

typedef struct tool_opts {
    sl_pq_writer_options pq;
    uint64_t rows;
    uint64_t seed;
    bool sync;
    const char *out;
} tool_opts;

static int die(const char *what, const char *detail)
{
    fprintf(stderr, "sluice-parquet-tool: %s: %s\n", what, detail);
    return 1;
}

static bool parse_size(const char *s, uint64_t *v)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || end == s || *end)
        return false;
    *v = x;
    return true;
}

static int parse_opts(int argc, char **argv, tool_opts *o)
{
    sl_pq_writer_options_default(&o->pq);
    o->rows = 1000000;
    o->seed = 42;
    o->sync = true;
    o->out = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        uint64_t v = 0;
        if (a[0] != '-') {
            o->out = a;
            continue;
        }
        if (strcmp(a, "--no-sync") == 0) { /* finish without fdatasync, as DuckDB's COPY */
            o->sync = false;
            continue;
        }
        if (i + 1 >= argc)
            return die("missing value for", a);
        const char *val = argv[++i];
        if (strcmp(a, "--codec") == 0) {
            if (strcmp(val, "snappy") == 0)
                o->pq.codec = SL_PQ_SNAPPY;
            else if (strcmp(val, "zstd") == 0)
                o->pq.codec = SL_PQ_ZSTD;
            else if (strcmp(val, "none") == 0)
                o->pq.codec = SL_PQ_UNCOMPRESSED;
            else
                return die("unknown codec", val);
            continue;
        }
        if (!parse_size(val, &v))
            return die("not a number", val);
        if (strcmp(a, "--rows") == 0)
            o->rows = v;
        else if (strcmp(a, "--seed") == 0)
            o->seed = v;
        else if (strcmp(a, "--row-group-bytes") == 0)
            o->pq.row_group_bytes = v;
        else if (strcmp(a, "--page-bytes") == 0)
            o->pq.page_bytes = v;
        else if (strcmp(a, "--dictionary-bytes") == 0)
            o->pq.dictionary_bytes = v;
        else
            return die("unknown option", a);
    }
    if (!o->out)
        return die("usage", "write|bench|nested [options] OUT, or dump FILE");
    return 0;
}

/* ---- write: JSON lines in, parquet out ---- */

static bool parse_column(json_t *j, sl_pq_column *c)
{
    const char *type = json_string_value(json_object_get(j, "type"));
    const char *logical = json_string_value(json_object_get(j, "logical"));
    c->name = json_string_value(json_object_get(j, "name"));
    c->repetition = json_is_true(json_object_get(j, "optional")) ? SL_PQ_OPTIONAL : SL_PQ_REQUIRED;
    static const char *const types[] = {"BOOLEAN", "INT32", "INT64", "DOUBLE", "BYTE_ARRAY"};
    static const char *const logicals[] = {"NONE", "STRING", "TIMESTAMP", "DATE", "JSON"};
    if (!c->name || !type)
        return false;
    c->type = (sl_pq_type)-1;
    for (int k = 0; k < 5; k++)
        if (strcmp(type, types[k]) == 0)
            c->type = (sl_pq_type)k;
    c->logical = SL_PQ_LOGICAL_NONE;
    for (int k = 0; logical && k < 5; k++)
        if (strcmp(logical, logicals[k]) == 0)
            c->logical = (sl_pq_logical)k;
    return (int)c->type >= 0;
}

/* Doubles that JSON cannot carry come as strings: "nan", "inf", "-inf". */
static bool parse_value(const sl_pq_column *c, json_t *j, sl_pq_value *v)
{
    memset(v, 0, sizeof *v);
    if (json_is_null(j)) {
        v->is_null = true;
        return true;
    }
    switch (c->type) {
    case SL_PQ_BOOLEAN:
        v->v.b = json_is_true(j);
        return json_is_boolean(j);
    case SL_PQ_INT32:
        v->v.i32 = (int32_t)json_integer_value(j);
        return json_is_integer(j);
    case SL_PQ_INT64:
        v->v.i64 = (int64_t)json_integer_value(j);
        return json_is_integer(j);
    case SL_PQ_DOUBLE:
        if (json_is_string(j)) {
            const char *s = json_string_value(j);
            v->v.f64 = strcmp(s, "nan") == 0    ? NAN
                       : strcmp(s, "inf") == 0  ? INFINITY
                       : strcmp(s, "-inf") == 0 ? -INFINITY
                                                : 0.0;
            return true;
        }
        v->v.f64 = json_number_value(j);
        return json_is_number(j);
    case SL_PQ_BYTE_ARRAY:
        v->v.bytes.ptr = json_string_value(j);
        v->v.bytes.len = json_string_length(j);
        return json_is_string(j);
    }
    return false;
}

static void print_value(const sl_pq_column *c, const sl_pq_value *v)
{
    switch (c->type) {
    case SL_PQ_BOOLEAN:
        printf("%s", v->v.b ? "true" : "false");
        break;
    case SL_PQ_INT32:
        printf("%" PRId32, v->v.i32);
        break;
    case SL_PQ_INT64:
        printf("%" PRId64, v->v.i64);
        break;
    case SL_PQ_DOUBLE:
        printf("\"%.17g\"", v->v.f64);
        break;
    case SL_PQ_BYTE_ARRAY: {
        json_t *s = json_stringn(v->v.bytes.ptr, v->v.bytes.len);
        char *d = json_dumps(s, JSON_ENCODE_ANY);
        printf("%s", d);
        free(d);
        json_decref(s);
        break;
    }
    }
}

static int cmd_write(tool_opts *o)
{
    char errbuf[512];
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    json_error_t jerr;
    json_t *schema = NULL;
    sl_pq_column *cols = NULL;
    sl_pq_value *vals = NULL;
    sl_pq_writer_t *pw = NULL;
    sl_ostream_fd ofs = {0};
    sl_pq_file_info info;
    size_t nc = 0;
    int rc = 1;
    int fd = open(o->out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return die(o->out, strerror(errno));
    if ((n = getline(&line, &cap, stdin)) <= 0 || !(schema = json_loads(line, 0, &jerr)) ||
        !json_is_array(schema)) {
        die("stdin", "the first line must be the schema (a JSON array)");
        goto out;
    }
    nc = json_array_size(schema);
    cols = calloc(nc ? nc : 1, sizeof *cols);
    vals = calloc(nc ? nc : 1, sizeof *vals);
    for (size_t i = 0; i < nc; i++)
        if (!parse_column(json_array_get(schema, i), &cols[i])) {
            die("schema", "bad column");
            goto out;
        }
    if (sl_ostream_fd_init(&ofs, fd) != SL_OK ||
        sl_pq_writer_new(cols, nc, &o->pq, &ofs.os, &pw, errbuf, sizeof errbuf) != SL_OK) {
        die("writer", errbuf);
        goto out;
    }
    while ((n = getline(&line, &cap, stdin)) > 0) {
        json_t *row = json_loads(line, JSON_ALLOW_NUL, &jerr);
        bool ok = json_is_array(row) && json_array_size(row) == nc;
        for (size_t i = 0; ok && i < nc; i++)
            ok = parse_value(&cols[i], json_array_get(row, i), &vals[i]);
        if (!ok) {
            json_decref(row);
            die("stdin", "a row must be an array of one value per column");
            goto out;
        }
        sl_err err = sl_pq_writer_write_row(pw, vals, errbuf, sizeof errbuf);
        json_decref(row);
        if (err) {
            die("row", errbuf);
            goto out;
        }
    }
    if (sl_pq_writer_finish(pw, &info, errbuf, sizeof errbuf) != SL_OK) {
        die("finish", errbuf);
        goto out;
    }
    printf("{\"rows\": %" PRIu64 ", \"file_bytes\": %" PRIu64 ", \"columns\": [", info.rows,
           info.file_bytes);
    for (size_t i = 0; i < info.n_columns; i++) {
        const sl_pq_column_stats *cs = &info.columns[i];
        printf("%s{\"null_count\": %" PRIu64 ", \"has_min_max\": %s", i ? ", " : "", cs->null_count,
               cs->has_min_max ? "true" : "false");
        if (cs->has_min_max) {
            printf(", \"min\": ");
            print_value(&cols[i], &cs->min);
            printf(", \"max\": ");
            print_value(&cols[i], &cs->max);
        }
        printf("}");
    }
    printf("]}\n");
    rc = 0;
out:
    sl_pq_writer_free(pw);
    sl_ostream_fd_cleanup(&ofs);
    close(fd);
    json_decref(schema);
    free(cols);
    free(vals);
    free(line);
    return rc;
}

/* ---- bench: realistic analytics events ---- */

static uint64_t rng_state;

static uint64_t rnd(void) /* splitmix64 */
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static size_t pick(size_t n) /* skewed toward small indices, like real traffic */
{
    double u = (double)(rnd() >> 11) / 9007199254740992.0;
    return (size_t)(u * u * (double)n) % n;
}

static bool chance(unsigned percent)
{
    return rnd() % 100 < percent;
}

/* An arena of generated strings, freed at exit. */
static char *strs;
static size_t strs_len, strs_cap;

static const char *save(const char *s, size_t n, size_t *len)
{
    if (strs_len + n + 1 > strs_cap) {
        fprintf(stderr, "sluice-parquet-tool: string arena full\n");
        exit(1);
    }
    memcpy(strs + strs_len, s, n);
    strs[strs_len + n] = '\0';
    *len = n;
    strs_len += n + 1;
    return strs + strs_len - n - 1;
}

#define NCOLS 18
static const sl_pq_column EVENT_COLS[NCOLS] = {
    {"event_id", SL_PQ_BYTE_ARRAY, SL_PQ_LOGICAL_STRING, SL_PQ_REQUIRED},
    {"timestamp", SL_PQ_INT64, SL_PQ_LOGICAL_TIMESTAMP_MICROS_UTC, SL_PQ_REQUIRED},
    {"received_at", SL_PQ_INT64, SL_PQ_LOGICAL_TIMESTAMP_MICROS_UTC, SL_PQ_REQUIRED},
    {"channel", SL_PQ_BYTE_ARRAY, SL_PQ_LOGICAL_STRING, SL_PQ_REQUIRED},
    {"platform", SL_PQ_BYTE_ARRAY, SL_PQ_LOGICAL_STRING, SL_PQ_OPTIONAL},
    {"event_type", SL_PQ_BYTE_ARRAY, SL_PQ_LOGICAL_STRING, SL_PQ_REQUIRED},
    {"event_category", SL_PQ_BYTE_ARRAY, SL_PQ_LOGICAL_STRING, SL_PQ_OPTIONAL},
    {"resource_id", SL_PQ_BYTE_ARRAY, SL_PQ_LOGICAL_STRING, SL_PQ_OPTIONAL},
    {"resource_title", SL_PQ_BYTE_ARRAY, SL_PQ_LOGICAL_STRING, SL_PQ_OPTIONAL},
    {"interaction_target", SL_PQ_BYTE_ARRAY, SL_PQ_LOGICAL_STRING, SL_PQ_OPTIONAL},
    {"session_id", SL_PQ_BYTE_ARRAY, SL_PQ_LOGICAL_STRING, SL_PQ_REQUIRED},
    {"user_id", SL_PQ_BYTE_ARRAY, SL_PQ_LOGICAL_STRING, SL_PQ_OPTIONAL},
    {"device_id", SL_PQ_BYTE_ARRAY, SL_PQ_LOGICAL_STRING, SL_PQ_OPTIONAL},
    {"user_agent", SL_PQ_BYTE_ARRAY, SL_PQ_LOGICAL_STRING, SL_PQ_OPTIONAL},
    {"client_version", SL_PQ_BYTE_ARRAY, SL_PQ_LOGICAL_STRING, SL_PQ_OPTIONAL},
    {"interaction_value", SL_PQ_DOUBLE, SL_PQ_LOGICAL_NONE, SL_PQ_OPTIONAL},
    {"interaction_text", SL_PQ_BYTE_ARRAY, SL_PQ_LOGICAL_STRING, SL_PQ_OPTIONAL},
    {"metadata", SL_PQ_BYTE_ARRAY, SL_PQ_LOGICAL_JSON, SL_PQ_OPTIONAL},
};

static void set_str(sl_pq_value *v, const char *s, size_t n)
{
    v->is_null = false;
    v->v.bytes.ptr = s;
    v->v.bytes.len = n;
}

static void set_const(sl_pq_value *v, const char *s)
{
    set_str(v, s, strlen(s));
}

static void uuid_str(char out[37], uint64_t hi, uint64_t lo)
{
    static const char hex[] = "0123456789abcdef";
    int k = 0;
    for (int i = 0; i < 32; i++) {
        uint64_t w = i < 16 ? hi : lo;
        if (i == 8 || i == 12 || i == 16 || i == 20)
            out[k++] = '-';
        out[k++] = hex[(w >> (60 - 4 * (i % 16))) & 15];
    }
    out[k] = '\0';
}

/* One event: the cardinalities follow a busy site: a handful of channels and types,
 * thousands of pages, tens of thousands of users, sessions of ~20 events, time-ordered. */
static void gen_event(sl_pq_value *r, uint64_t i, int64_t t0)
{
    static const char *const channels[] = {"web", "mobile", "chat", "speech", "agent"};
    static const char *const platforms[] = {"web-desktop", "web-mobile", "ios",   "android",
                                            "slack",       "alexa",      "teams", "api"};
    static const char *const types[] = {"page_view", "interaction",   "message",     "utterance",
                                        "click",     "scroll",        "search",      "error",
                                        "tool_call", "session_start", "session_end", "form_submit"};
    static const char *const cats[] = {"user_action", "navigation", "engagement",
                                       "error",       "system",     "conversion"};
    static const char *const targets[] = {"button#signup", "a.nav-home",          "input#search",
                                          "swipe-left",    "intent:order_status", "tool:web_search",
                                          "menu#settings", "video#hero"};
    static const char *const uas[] = {
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
        "Gecko) Version/17.1 Safari/605.1.15",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
        "like Gecko) Mobile/15E148",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.6099.43 Mobile Safari/537.36",
        "okhttp/4.12.0",
        "Slackbot 1.0 (+https://api.slack.com/robots)"};
    static const char *const words[] = {"order", "status",   "refund",  "pricing",  "login",
                                        "help",  "shipping", "account", "cancel",   "upgrade",
                                        "plan",  "delivery", "invoice", "password", "reset"};
    char buf[512];
    int n;
    size_t len;
    uint64_t session = i / 20 + (rnd() % 3);
    uint64_t user = pick(50000);
    memset(r, 0, NCOLS * sizeof *r);
    /* event_id: UUIDv7-like, time-ordered prefix, random tail */
    int64_t ts = t0 + (int64_t)i * 2000 + (int64_t)(rnd() % 1500000);
    uuid_str(buf, ((uint64_t)(ts / 1000) << 16) | 0x7000 | (rnd() & 0xfff),
             (rnd() & 0x3fffffffffffffffu) | 0x8000000000000000u);
    set_str(&r[0], save(buf, 36, &len), 36);
    r[1].v.i64 = ts;
    r[2].v.i64 = ts + 20000 + (int64_t)(rnd() % 400000);
    size_t ch = pick(5);
    set_const(&r[3], channels[ch]);
    if (chance(97))
        set_const(&r[4], platforms[(ch * 2 + rnd() % 2) % 8]);
    else
        r[4].is_null = true;
    set_const(&r[5], types[pick(12)]);
    if (chance(90))
        set_const(&r[6], cats[pick(6)]);
    else
        r[6].is_null = true;
    size_t page = pick(5000);
    if (chance(95)) {
        n = snprintf(buf, sizeof buf, "https://shop.example.com/%s/%zu",
                     page % 3 ? "products" : "help", page);
        set_str(&r[7], save(buf, (size_t)n, &len), (size_t)n);
        n = snprintf(buf, sizeof buf, "%s %zu - Example Shop", page % 3 ? "Product" : "Help", page);
        if (chance(85))
            set_str(&r[8], save(buf, (size_t)n, &len), (size_t)n);
        else
            r[8].is_null = true;
    } else {
        r[7].is_null = r[8].is_null = true;
    }
    if (chance(60))
        set_const(&r[9], targets[pick(8)]);
    else
        r[9].is_null = true;
    n = snprintf(buf, sizeof buf, "sess_%016" PRIx64, session * 0x9e3779b97f4a7c15u);
    set_str(&r[10], save(buf, (size_t)n, &len), (size_t)n);
    if (chance(70)) {
        n = snprintf(buf, sizeof buf, "user_%06" PRIu64, user);
        set_str(&r[11], save(buf, (size_t)n, &len), (size_t)n);
    } else {
        r[11].is_null = true;
    }
    if (chance(80)) {
        n = snprintf(buf, sizeof buf, "dev_%08" PRIx64, (user * 2654435761u) & 0xffffffffu);
        set_str(&r[12], save(buf, (size_t)n, &len), (size_t)n);
    } else {
        r[12].is_null = true;
    }
    if (chance(90))
        set_const(&r[13], uas[pick(6)]);
    else
        r[13].is_null = true;
    if (chance(75)) {
        n = snprintf(buf, sizeof buf, "%d.%d.%d", 2 + (int)pick(3), (int)pick(20), (int)pick(10));
        set_str(&r[14], save(buf, (size_t)n, &len), (size_t)n);
    } else {
        r[14].is_null = true;
    }
    if (chance(40))
        r[15].v.f64 = (double)(rnd() % 100000) / 100.0;
    else
        r[15].is_null = true;
    if (chance(25)) {
        n = snprintf(buf, sizeof buf, "%s %s %s", words[rnd() % 15], words[rnd() % 15],
                     words[rnd() % 15]);
        set_str(&r[16], save(buf, (size_t)n, &len), (size_t)n);
    } else {
        r[16].is_null = true;
    }
    if (chance(65)) {
        n = snprintf(
            buf, sizeof buf, "{\"screen\":\"%dx%d\",\"lang\":\"%s\",\"ab\":\"%c\",\"ref\":%u}",
            1280 + (int)pick(4) * 320, 720 + (int)pick(3) * 180, rnd() % 4 ? "en-US" : "de-DE",
            (char)('A' + rnd() % 3), (unsigned)(rnd() % 1000));
        set_str(&r[17], save(buf, (size_t)n, &len), (size_t)n);
    } else {
        r[17].is_null = true;
    }
}

static int cmd_bench(tool_opts *o)
{
    char errbuf[512];
    sl_pq_value *rows = NULL;
    sl_pq_writer_t *pw = NULL;
    sl_ostream_fd ofs = {0};
    sl_pq_file_info info;
    int rc = 1;
    int fd = -1;
    rng_state = o->seed;
    strs_cap = (size_t)o->rows * 480 + 4096;
    strs = malloc(strs_cap);
    rows = malloc((size_t)o->rows * NCOLS * sizeof *rows);
    if (!strs || !rows) {
        die("bench", "out of memory for the rows");
        goto out;
    }
    for (uint64_t i = 0; i < o->rows; i++)
        gen_event(&rows[i * NCOLS], i, INT64_C(1732406400000000)); /* 2024-11-24 */
    if ((fd = open(o->out, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0) {
        die(o->out, strerror(errno));
        goto out;
    }
    struct timespec cpu0, cpu1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu0);
    int64_t t_start = sl_time_mono_ns();
    if (sl_ostream_fd_init(&ofs, fd) != SL_OK) {
        die("bench", "out of memory");
        goto out;
    }
    ofs.sync = o->sync;
    if (sl_pq_writer_new(EVENT_COLS, NCOLS, &o->pq, &ofs.os, &pw, errbuf, sizeof errbuf)) {
        die("writer", errbuf);
        goto out;
    }
    for (uint64_t i = 0; i < o->rows; i++)
        if (sl_pq_writer_write_row(pw, &rows[i * NCOLS], errbuf, sizeof errbuf) != SL_OK) {
            die("row", errbuf);
            goto out;
        }
    if (sl_pq_writer_finish(pw, &info, errbuf, sizeof errbuf) != SL_OK) {
        die("finish", errbuf);
        goto out;
    }
    double secs = (double)(sl_time_mono_ns() - t_start) / 1e9;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu1);
    double cpu = (double)(cpu1.tv_sec - cpu0.tv_sec) + (double)(cpu1.tv_nsec - cpu0.tv_nsec) / 1e9;
    printf("{\"rows\": %" PRIu64 ", \"seconds\": %.4f, \"cpu_seconds\": %.4f, "
           "\"rows_per_s\": %.0f, \"bytes\": %" PRIu64 "}\n",
           info.rows, secs, cpu, (double)info.rows / secs, info.file_bytes);
    rc = 0;
out:
    sl_pq_writer_free(pw);
    sl_ostream_fd_cleanup(&ofs);
    if (fd >= 0)
        close(fd);
    free(rows);
    free(strs);
    return rc;
}

/* ---- nested: a fixed nested schema, for readers to check the nested writer ---- */

/* id INT64; tags LIST<STRING?>?; attrs MAP<STRING, STRING?>?; point STRUCT{x DOUBLE,
 * label STRING?}?; nums LIST<INT32> (required). Row i's shape follows i (nulls, empty
 * lists and maps, null elements), and it is printed as JSON as readers should see it. */
static const sl_pq_node TAG_ELEM = {
    "element", SL_PQ_NODE_LEAF, SL_PQ_OPTIONAL, SL_PQ_BYTE_ARRAY, SL_PQ_LOGICAL_STRING, NULL, 0};
static const sl_pq_node ATTR_KV[2] = {
    {"key", SL_PQ_NODE_LEAF, SL_PQ_REQUIRED, SL_PQ_BYTE_ARRAY, SL_PQ_LOGICAL_STRING, NULL, 0},
    {"value", SL_PQ_NODE_LEAF, SL_PQ_OPTIONAL, SL_PQ_BYTE_ARRAY, SL_PQ_LOGICAL_STRING, NULL, 0}};
static const sl_pq_node POINT_FIELDS[2] = {
    {"x", SL_PQ_NODE_LEAF, SL_PQ_REQUIRED, SL_PQ_DOUBLE, SL_PQ_LOGICAL_NONE, NULL, 0},
    {"label", SL_PQ_NODE_LEAF, SL_PQ_OPTIONAL, SL_PQ_BYTE_ARRAY, SL_PQ_LOGICAL_STRING, NULL, 0}};
static const sl_pq_node NUM_ELEM = {
    "element", SL_PQ_NODE_LEAF, SL_PQ_REQUIRED, SL_PQ_INT32, SL_PQ_LOGICAL_NONE, NULL, 0};
static const sl_pq_node NESTED_FIELDS[5] = {
    {"id", SL_PQ_NODE_LEAF, SL_PQ_REQUIRED, SL_PQ_INT64, SL_PQ_LOGICAL_NONE, NULL, 0},
    {"tags", SL_PQ_NODE_LIST, SL_PQ_OPTIONAL, 0, 0, &TAG_ELEM, 1},
    {"attrs", SL_PQ_NODE_MAP, SL_PQ_OPTIONAL, 0, 0, ATTR_KV, 2},
    {"point", SL_PQ_NODE_STRUCT, SL_PQ_OPTIONAL, 0, 0, POINT_FIELDS, 2},
    {"nums", SL_PQ_NODE_LIST, SL_PQ_REQUIRED, 0, 0, &NUM_ELEM, 1}};
#define NESTED_LEAVES 7
#define NESTED_MAX    8

typedef struct leaf_buf {
    uint8_t reps[NESTED_MAX], defs[NESTED_MAX];
    sl_pq_value vals[NESTED_MAX];
    char strs[NESTED_MAX][32];
    size_t n;
} leaf_buf;

static void slot(leaf_buf *lb, int rep, int def, const sl_pq_value *v)
{
    lb->reps[lb->n] = (uint8_t)rep;
    lb->defs[lb->n] = (uint8_t)def;
    lb->vals[lb->n] = v ? *v : (sl_pq_value){.is_null = true};
    lb->n++;
}

__attribute__((format(printf, 2, 3))) static sl_pq_value str_val(leaf_buf *lb, const char *fmt, ...)
{
    char *s = lb->strs[lb->n];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s, sizeof lb->strs[0], fmt, ap);
    va_end(ap);
    return (sl_pq_value){.v.bytes = {s, strlen(s)}};
}

static void nested_row(uint64_t i, leaf_buf *lb)
{
    memset(lb, 0, NESTED_LEAVES * sizeof *lb);
    sl_pq_value v = {.v.i64 = (int64_t)i};
    slot(&lb[0], 0, 0, &v);
    printf("{\"id\": %" PRIu64 ", \"tags\": ", i);
    if (i % 7 == 0) {
        slot(&lb[1], 0, 0, NULL);
        printf("null");
    } else if (i % 5 == 0) {
        slot(&lb[1], 0, 1, NULL);
        printf("[]");
    } else {
        printf("[");
        for (uint64_t k = 0; k < i % 4 + 1; k++) {
            bool null = k == 1 && i % 3 == 0;
            sl_pq_value s = str_val(&lb[1], "t%" PRIu64 "_%" PRIu64, i, k);
            slot(&lb[1], k ? 1 : 0, null ? 2 : 3, null ? NULL : &s);
            if (null)
                printf("%snull", k ? ", " : "");
            else
                printf("%s\"%s\"", k ? ", " : "", s.v.bytes.ptr);
        }
        printf("]");
    }
    printf(", \"attrs\": ");
    if (i % 6 == 0) {
        slot(&lb[2], 0, 0, NULL);
        slot(&lb[3], 0, 0, NULL);
        printf("null");
    } else if (i % 11 == 0) {
        slot(&lb[2], 0, 1, NULL);
        slot(&lb[3], 0, 1, NULL);
        printf("{}");
    } else {
        printf("{");
        for (uint64_t k = 0; k < i % 3 + 1; k++) {
            sl_pq_value key = str_val(&lb[2], "k%" PRIu64, k);
            slot(&lb[2], k ? 1 : 0, 2, &key);
            sl_pq_value val = str_val(&lb[3], "v%" PRIu64 "_%" PRIu64, i, k);
            slot(&lb[3], k ? 1 : 0, k == 2 ? 2 : 3, k == 2 ? NULL : &val);
            printf("%s\"%s\": ", k ? ", " : "", key.v.bytes.ptr);
            if (k == 2)
                printf("null");
            else
                printf("\"%s\"", val.v.bytes.ptr);
        }
        printf("}");
    }
    printf(", \"point\": ");
    if (i % 9 == 0) {
        slot(&lb[4], 0, 0, NULL);
        slot(&lb[5], 0, 0, NULL);
        printf("null");
    } else {
        sl_pq_value x = {.v.f64 = (double)i * 0.5};
        slot(&lb[4], 0, 1, &x);
        printf("{\"x\": %.17g, \"label\": ", x.v.f64);
        if (i % 2) {
            slot(&lb[5], 0, 1, NULL);
            printf("null}");
        } else {
            sl_pq_value l = str_val(&lb[5], "p%" PRIu64, i);
            slot(&lb[5], 0, 2, &l);
            printf("\"%s\"}", l.v.bytes.ptr);
        }
    }
    printf(", \"nums\": [");
    if (i % 3 == 0)
        slot(&lb[6], 0, 0, NULL);
    for (uint64_t k = 0; k < i % 3; k++) {
        sl_pq_value n = {.v.i32 = (int32_t)(i * 10 + k)};
        slot(&lb[6], k ? 1 : 0, 1, &n);
        printf("%s%" PRId32, k ? ", " : "", n.v.i32);
    }
    printf("]}\n");
}

static int cmd_nested(tool_opts *o)
{
    char errbuf[512];
    sl_pq_writer_t *pw = NULL;
    sl_ostream_fd ofs = {0};
    leaf_buf lb[NESTED_LEAVES];
    sl_pq_leaf_run runs[NESTED_LEAVES];
    int rc = 1;
    int fd = open(o->out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return die(o->out, strerror(errno));
    if (sl_ostream_fd_init(&ofs, fd) != SL_OK ||
        sl_pq_writer_new_nested(NESTED_FIELDS, 5, &o->pq, &ofs.os, &pw, errbuf, sizeof errbuf)) {
        die("writer", errbuf);
        goto out;
    }
    for (uint64_t i = 0; i < o->rows; i++) {
        nested_row(i, lb);
        for (size_t k = 0; k < NESTED_LEAVES; k++)
            runs[k] = (sl_pq_leaf_run){lb[k].n, lb[k].reps, lb[k].defs, lb[k].vals};
        if (sl_pq_writer_write_levels(pw, runs, errbuf, sizeof errbuf)) {
            die("row", errbuf);
            goto out;
        }
    }
    if (sl_pq_writer_finish(pw, NULL, errbuf, sizeof errbuf)) {
        die("finish", errbuf);
        goto out;
    }
    rc = 0;
out:
    sl_pq_writer_free(pw);
    sl_ostream_fd_cleanup(&ofs);
    close(fd);
    return rc;
}

/* ---- dump: what sluice's reader makes of a file ---- */

static void dump_value(const sl_pq_leaf_info *li, const sl_pq_value *v)
{
    if (v->is_null) {
        printf("null");
        return;
    }
    switch (li->type) {
    case SL_PQ_BOOLEAN:
        printf("%s", v->v.b ? "true" : "false");
        return;
    case SL_PQ_INT32:
        printf("%" PRId32, v->v.i32);
        return;
    case SL_PQ_INT64:
        printf("\"%" PRId64 "\"", v->v.i64);
        return;
    case SL_PQ_DOUBLE:
        if (isnan(v->v.f64))
            printf("\"nan\"");
        else if (isinf(v->v.f64))
            printf("\"%sinf\"", v->v.f64 < 0 ? "-" : "");
        else
            printf("\"%.17g\"", v->v.f64);
        return;
    case SL_PQ_BYTE_ARRAY:
        if (li->logical == SL_PQ_LOGICAL_STRING || li->logical == SL_PQ_LOGICAL_JSON) {
            json_t *s = json_stringn(v->v.bytes.ptr, v->v.bytes.len);
            char *d = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
            printf("%s", d ? d : "\"<not utf-8>\"");
            free(d);
            json_decref(s);
            return;
        }
        printf("\"");
        for (size_t k = 0; k < v->v.bytes.len; k++)
            printf("%02X", (unsigned char)v->v.bytes.ptr[k]);
        printf("\"");
        return;
    }
}

static void dump_levels(const uint8_t *l, size_t n)
{
    printf("[");
    for (size_t k = 0; l && k < n; k++)
        printf("%s%u", k ? "," : "", l[k]);
    printf("]");
}

/* Prints {"rows", "leaves": [{path, max_rep, max_def, unsupported}], "row_groups": [[{reps,
 * defs, values} per leaf]]}; a leaf refused is {"error": message}. Exit 0 when every leaf
 * read, 3 when some were refused, 2 when the file could not be opened. */
static int cmd_dump(const char *path)
{
    char errbuf[512];
    sl_pq_reader_t *pr = NULL;
    int rc = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return die(path, strerror(errno));
    off_t size = lseek(fd, 0, SEEK_END);
    char *file = size > 0 ? malloc((size_t)size) : NULL;
    if (!file || pread(fd, file, (size_t)size, 0) != size) {
        close(fd);
        free(file);
        return die(path, "could not read the file");
    }
    close(fd);
    if (sl_pq_reader_open(file, (size_t)size, NULL, &pr, errbuf, sizeof errbuf)) {
        free(file);
        fprintf(stderr, "sluice-parquet-tool: %s\n", errbuf);
        return 2;
    }
    printf("{\"rows\": %" PRIu64 ", \"leaves\": [", sl_pq_reader_rows(pr));
    for (size_t i = 0; i < sl_pq_reader_leaves(pr); i++) {
        const sl_pq_leaf_info *li = sl_pq_reader_leaf(pr, i);
        json_t *p = json_string(li->path);
        char *d = p ? json_dumps(p, JSON_ENCODE_ANY) : NULL;
        printf("%s{\"path\": %s, \"max_rep\": %d, \"max_def\": %d}", i ? ", " : "", d ? d : "\"?\"",
               li->max_rep, li->max_def);
        free(d);
        json_decref(p);
    }
    printf("], \"row_groups\": [");
    for (size_t g = 0; g < sl_pq_reader_row_groups(pr); g++) {
        printf("%s[", g ? ", " : "");
        for (size_t i = 0; i < sl_pq_reader_leaves(pr); i++) {
            sl_pq_column_data cd;
            printf("%s", i ? ", " : "");
            if (sl_pq_reader_read_column(pr, g, i, &cd, errbuf, sizeof errbuf)) {
                json_t *e = json_string(errbuf);
                char *d = e ? json_dumps(e, JSON_ENCODE_ANY) : NULL;
                printf("{\"error\": %s}", d ? d : "\"?\"");
                free(d);
                json_decref(e);
                rc = 3;
                continue;
            }
            printf("{\"reps\": ");
            dump_levels(cd.reps, cd.n_slots);
            printf(", \"defs\": ");
            dump_levels(cd.defs, cd.n_slots);
            printf(", \"values\": [");
            for (size_t k = 0; k < cd.n_slots; k++) {
                printf("%s", k ? "," : "");
                dump_value(sl_pq_reader_leaf(pr, i), &cd.values[k]);
            }
            printf("]}");
        }
        printf("]");
        sl_pq_reader_reset(pr);
    }
    printf("]}\n");
    sl_pq_reader_free(pr);
    free(file);
    return rc;
}

int main(int argc, char **argv)
{
    tool_opts o;
    if (argc < 2)
        return die("usage", "write|bench|nested [options] OUT, or dump FILE");
    if (parse_opts(argc - 2, argv + 2, &o))
        return 2;
    if (strcmp(argv[1], "dump") == 0)
        return argc == 3 ? cmd_dump(argv[2]) : die("usage", "dump FILE");
    if (strcmp(argv[1], "nested") == 0)
        return cmd_nested(&o);
    if (strcmp(argv[1], "write") == 0)
        return cmd_write(&o);
    if (strcmp(argv[1], "bench") == 0)
        return cmd_bench(&o);
    return die("unknown command", argv[1]);
}
