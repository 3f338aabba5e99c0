/* The settings table and its parser; see config.h. Sizes accept K/M/G suffixes (powers of
 * 1024) and durations ms/s/m/h/d suffixes, so `--log-retention 7d` reads as one expects. */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef enum setting_type {
    SETTING_STRING,
    SETTING_INT,
    SETTING_SIZE,     /* bytes, with optional K/M/G suffix */
    SETTING_DURATION, /* stored in the unit the field name says, from a suffixed value */
    SETTING_BOOL,     /* a flag without a value; env accepts 1/0/true/false */
    SETTING_LIST,     /* repeatable flag; env holds a comma-separated list. The field is a
                       * NULL-terminated char ** followed by its size_t count. */
    SETTING_KV_LIST,  /* a SETTING_LIST whose entries must be key=value */
} setting_type;

typedef struct setting {
    const char *name; /* flag without the leading dashes */
    const char *env;
    setting_type type;
    const char *def;
    int64_t min, max;
    int64_t unit_ms; /* durations: milliseconds per stored unit (1 for ms, 1000 for s) */
    unsigned commands;
    size_t offset;
    const char *doc;
} setting;

#define F(field) offsetof(sl_config, field)
#define KiB      (INT64_C(1) << 10)
#define MiB      (INT64_C(1) << 20)
#define GiB      (INT64_C(1) << 30)
#define TiB      (INT64_C(1) << 40)
#define DAY_MS   (INT64_C(86400000))

static const setting settings[] = {
    {"listen", "SLUICE_LISTEN", SETTING_STRING, "127.0.0.1:3001", 0, 0, 0, SL_CMD_SERVE, F(listen),
     "HOST:PORT the ingest API listens on (port 0 picks a free port)"},
    {"log", "SLUICE_LOG", SETTING_STRING, "file://./var/log", 0, 0, 0,
     SL_CMD_SERVE | SL_CMD_LOG_READ, F(log_uri),
     "the durable log: file://DIR (embedded) or kafka://HOST:PORT[,HOST:PORT...]/TOPIC "
     "(Apache Kafka; topic analytics-events when omitted)"},
    {"log-level", "SLUICE_LOG_LEVEL", SETTING_STRING, "info", 0, 0, 0,
     SL_CMD_SERVE | SL_CMD_LOG_READ | SL_CMD_PG_MIGRATE, F(log_level),
     "diagnostics on stderr: debug, info, warn, error"},
    {"http-threads", "SLUICE_HTTP_THREADS", SETTING_INT, "2", 1, 256, 0, SL_CMD_SERVE,
     F(http_threads),
     "HTTP worker threads of each kind, poll() and epoll (each runs its own event loop)"},
    {"max-connections", "SLUICE_MAX_CONNECTIONS", SETTING_INT, "4096", 1, 1000000, 0, SL_CMD_SERVE,
     F(max_connections), "open connections at most; more are refused"},
    {"max-connections-per-ip", "SLUICE_MAX_CONNECTIONS_PER_IP", SETTING_INT, "0", 0, 1000000, 0,
     SL_CMD_SERVE, F(max_connections_per_ip), "open connections per client address; 0 = no limit"},
    {"idle-timeout", "SLUICE_IDLE_TIMEOUT", SETTING_DURATION, "15s", 1, 3600, 1000, SL_CMD_SERVE,
     F(idle_timeout_s), "a connection silent this long is closed (slow clients cannot hold one)"},
    {"drain-timeout", "SLUICE_DRAIN_TIMEOUT", SETTING_DURATION, "10s", 0, 600000, 1, SL_CMD_SERVE,
     F(drain_timeout_ms), "on SIGTERM, how long requests in flight may take to finish"},
    {"max-body", "SLUICE_MAX_BODY", SETTING_SIZE, "512K", 1 * KiB, 1 * GiB, 0, SL_CMD_SERVE,
     F(max_body_bytes), "request body as sent; larger gets 413"},
    {"max-inflated", "SLUICE_MAX_INFLATED", SETTING_SIZE, "4M", 1 * KiB, 1 * GiB, 0, SL_CMD_SERVE,
     F(max_inflated_bytes), "request body after gzip/deflate decoding; larger gets 413"},
    {"max-event", "SLUICE_MAX_EVENT", SETTING_SIZE, "32K", 1 * KiB, 16 * MiB, 0, SL_CMD_SERVE,
     F(max_event_bytes), "one normalized event"},
    {"max-batch", "SLUICE_MAX_BATCH", SETTING_INT, "1000", 1, 100000, 0, SL_CMD_SERVE,
     F(max_batch_events), "events in one request"},
    {"max-depth", "SLUICE_MAX_DEPTH", SETTING_INT, "16", 2, 256, 0, SL_CMD_SERVE, F(max_depth),
     "JSON nesting depth of one event (the event object is level 1)"},
    {"max-keys", "SLUICE_MAX_KEYS", SETTING_INT, "256", 16, 100000, 0, SL_CMD_SERVE, F(max_keys),
     "keys in any one JSON object of an event"},
    {"log-partitions", "SLUICE_LOG_PARTITIONS", SETTING_INT, "8", 1, 1024, 0, SL_CMD_SERVE,
     F(log_partitions), "partitions of a new embedded log (an existing log keeps its own)"},
    {"log-retention-bytes", "SLUICE_LOG_RETENTION_BYTES", SETTING_SIZE, "1G", 0, 64 * TiB, 0,
     SL_CMD_SERVE, F(log_retention_bytes),
     "embedded log: oldest events go past this size; 0 = no limit"},
    {"log-retention", "SLUICE_LOG_RETENTION", SETTING_DURATION, "7d", 0, 3650 * DAY_MS, 1,
     SL_CMD_SERVE, F(log_retention_ms), "embedded log: events older than this go; 0 = keep"},
    {"log-max-size", "SLUICE_LOG_MAX_SIZE", SETTING_SIZE, "4G", 16 * MiB, 64 * TiB, 0,
     SL_CMD_SERVE | SL_CMD_LOG_READ, F(log_max_size_bytes),
     "embedded log: hard size of the store file (must exceed twice the retention)"},
    {"log-max-pending", "SLUICE_LOG_MAX_PENDING", SETTING_SIZE, "64M", 64 * KiB, 16 * GiB, 0,
     SL_CMD_SERVE, F(log_max_pending_bytes),
     "events accepted but not yet durable; past it requests get 503 (back-pressure)"},
    {"kafka-opt", "SLUICE_KAFKA_OPT", SETTING_KV_LIST, "", 0, 0, 0, SL_CMD_SERVE | SL_CMD_LOG_READ,
     F(kafka_opts),
     "kafka:// log: a librdkafka property key=value, applied after sluice's own (repeat the "
     "flag; the variable takes key=value[,key=value...]), e.g. message.timeout.ms=5000"},
    {"write-keys", "SLUICE_WRITE_KEYS", SETTING_LIST, "", 0, 0, 0, SL_CMD_SERVE, F(write_keys),
     "keys a client must send (X-Write-Key, Authorization: Bearer, or ?writeKey=) to post "
     "events; none = open to anyone who can reach the port"},
    {"rate-limit", "SLUICE_RATE_LIMIT", SETTING_INT, "0", 0, 100000000, 0, SL_CMD_SERVE,
     F(rate_limit),
     "events per second per write key (all clients together without keys), "
     "with one second of burst; over it requests get 429 with Retry-After; 0 = no limit"},
    {"roles", "SLUICE_ROLES", SETTING_STRING, "all", 0, 0, 0, SL_CMD_SERVE, F(roles),
     "what this process runs, as a comma-separated list: api (the ingest API), pg-sink "
     "(the PostgreSQL hot store, needs --pg), or all (pg-sink only when --pg is given); "
     "health, readiness and metrics are served whatever the roles"},
    /* PostgreSQL hot store */
    {"pg", "SLUICE_PG", SETTING_STRING, "", 0, 0, 0, SL_CMD_SERVE | SL_CMD_PG_MIGRATE, F(pg_uri),
     "PostgreSQL hot store, a libpq URI such as postgres://USER@HOST:PORT/DB; the pg-sink "
     "role needs it (`make up` starts a local PostgreSQL and sets it)"},
    {"pg-batch-rows", "SLUICE_PG_BATCH_ROWS", SETTING_INT, "10000", 1, 1000000, 0, SL_CMD_SERVE,
     F(pg_batch_rows), "pg sink: events per transaction at most"},
    {"pg-batch-bytes", "SLUICE_PG_BATCH_BYTES", SETTING_SIZE, "16M", 2 * MiB, 1 * GiB, 0,
     SL_CMD_SERVE, F(pg_batch_bytes), "pg sink: bytes of event JSON per transaction at most"},
    {"pg-linger", "SLUICE_PG_LINGER", SETTING_DURATION, "100ms", 0, 60000, 1, SL_CMD_SERVE,
     F(pg_linger_ms), "pg sink: how long a batch may wait to fill before it is written"},
    {"pg-writers", "SLUICE_PG_WRITERS", SETTING_INT, "2", 1, 64, 0, SL_CMD_SERVE, F(pg_writers),
     "pg sink: connections writing at once, each for a share of the log's partitions (Kafka: "
     "members of the group)"},
    {"pg-retention", "SLUICE_PG_RETENTION", SETTING_DURATION, "30d", 1, 36500, DAY_MS,
     SL_CMD_SERVE | SL_CMD_PG_MIGRATE, F(pg_retention_days),
     "day partitions of analytics_events (and rollups) older than this are dropped"},
    {"pg-partitions-ahead", "SLUICE_PG_PARTITIONS_AHEAD", SETTING_INT, "3", 0, 365, 0,
     SL_CMD_SERVE | SL_CMD_PG_MIGRATE, F(pg_partitions_ahead),
     "days after today whose partitions are created ahead of time"},
    /* lake (issue 5) */
    {"lake", "SLUICE_LAKE", SETTING_STRING, "file://./var/lake/analytics_events", 0, 0, 0,
     SL_CMD_SERVE | SL_CMD_LAKE, F(lake_uri),
     "the Delta Lake table of the lake-sink role: file://DIR or s3://BUCKET/PREFIX (created "
     "when absent)"},
    {"lake-codec", "SLUICE_LAKE_CODEC", SETTING_STRING, "snappy", 0, 0, 0,
     SL_CMD_SERVE | SL_CMD_LAKE_OPTIMIZE, F(lake_codec),
     "compression of the lake's Parquet files: snappy, zstd or none"},
    {"lake-zstd-level", "SLUICE_LAKE_ZSTD_LEVEL", SETTING_INT, "3", 1, 22, 0,
     SL_CMD_SERVE | SL_CMD_LAKE_OPTIMIZE, F(lake_zstd_level),
     "zstd level of the lake's Parquet files (with --lake-codec zstd)"},
    {"lake-batch-rows", "SLUICE_LAKE_BATCH_ROWS", SETTING_INT, "100000", 1, 10000000, 0,
     SL_CMD_SERVE, F(lake_batch_rows), "the lake sink commits once a batch holds this many events"},
    {"lake-batch-bytes", "SLUICE_LAKE_BATCH_BYTES", SETTING_SIZE, "64M", 64 * KiB, 1 * GiB, 0,
     SL_CMD_SERVE, F(lake_batch_bytes),
     "... or this many bytes of event JSON (bounds the sink's memory)"},
    {"lake-batch-interval", "SLUICE_LAKE_BATCH_INTERVAL", SETTING_DURATION, "5s", 100, 600000, 1,
     SL_CMD_SERVE, F(lake_batch_interval_ms),
     "... or its oldest event has waited this long (how fresh the lake is while events flow)"},
    /* lake on object storage and `sluice lake vacuum` (issue 6) */
    {"s3-endpoint", "SLUICE_S3_ENDPOINT", SETTING_STRING, "", 0, 0, 0, SL_CMD_SERVE | SL_CMD_LAKE,
     F(s3_endpoint),
     "s3:// lake: http[s]://HOST[:PORT] of an S3-compatible server (MinIO, moto, R2); empty = "
     "AWS S3 of --s3-region. Credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY "
     "and AWS_SESSION_TOKEN"},
    {"s3-region", "SLUICE_S3_REGION", SETTING_STRING, "us-east-1", 0, 0, 0,
     SL_CMD_SERVE | SL_CMD_LAKE, F(s3_region), "s3:// lake: the region requests are signed for"},
    {"s3-path-style", "SLUICE_S3_PATH_STYLE", SETTING_BOOL, "false", 0, 0, 0,
     SL_CMD_SERVE | SL_CMD_LAKE, F(s3_path_style),
     "s3:// lake: address ENDPOINT/BUCKET/KEY instead of BUCKET.HOST/KEY (MinIO, moto)"},
    /* Delta checkpoints and log expiry (issue 6) */
    {"lake-checkpoint-interval", "SLUICE_LAKE_CHECKPOINT_INTERVAL", SETTING_INT, "10", 0, 1000000,
     0, SL_CMD_SERVE, F(lake_checkpoint_interval),
     "the lake sink writes a Parquet checkpoint (and _last_checkpoint) after every N-th commit; "
     "0 = never"},
    {"lake-log-retention", "SLUICE_LAKE_LOG_RETENTION", SETTING_DURATION, "30d", 0, 3650 * DAY_MS,
     1, SL_CMD_SERVE, F(lake_log_retention_ms),
     "after a checkpoint, log entries before it older than this are deleted, unless the table "
     "sets delta.logRetentionDuration"},
    {"retain", "SLUICE_RETAIN", SETTING_INT, "168", 0, 87600, 0, SL_CMD_LAKE_VACUUM,
     F(retain_hours),
     "hours of history vacuum keeps readable: files a version of the last HOURS (or the "
     "latest) references are never deleted; under 1 needs --force"},
    {"dry-run", "SLUICE_DRY_RUN", SETTING_BOOL, "false", 0, 0, 0, SL_CMD_LAKE_VACUUM, F(dry_run),
     "vacuum: list what would be deleted, delete nothing"},
    {"force", "SLUICE_FORCE", SETTING_BOOL, "false", 0, 0, 0, SL_CMD_LAKE_VACUUM, F(force),
     "vacuum: allow --retain under 1 hour (a reader or writer of an older version may fail)"},
    /* compaction: `sluice lake optimize` and the sink's (issue 6) */
    {"lake-target-file-size", "SLUICE_LAKE_TARGET_FILE_SIZE", SETTING_SIZE, "128M", 1 * MiB,
     4 * GiB, 0, SL_CMD_SERVE | SL_CMD_LAKE_OPTIMIZE, F(lake_target_file_bytes),
     "compaction rewrites the lake's files under this size into files of about this size"},
    {"lake-auto-optimize-files", "SLUICE_LAKE_AUTO_OPTIMIZE_FILES", SETTING_INT, "64", 0, 100000, 0,
     SL_CMD_SERVE, F(lake_auto_optimize_files),
     "the lake sink compacts a date partition once it holds this many small files; 0 = never"},
    {"partition", "SLUICE_PARTITION", SETTING_STRING, "", 0, 0, 0, SL_CMD_LAKE_OPTIMIZE,
     F(partition), "optimize: only this date partition (YYYY-MM-DD); empty = every partition"},
    {"group", "SLUICE_GROUP", SETTING_STRING, "", 0, 0, 0, SL_CMD_LOG_READ, F(group),
     "consumer group whose offsets are read and committed; empty = none"},
    {"from-beginning", "SLUICE_FROM_BEGINNING", SETTING_BOOL, "false", 0, 0, 0, SL_CMD_LOG_READ,
     F(from_beginning), "with --group: start at the oldest event, not the committed offset"},
    {"max", "SLUICE_MAX", SETTING_INT, "0", 0, INT64_MAX, 0, SL_CMD_LOG_READ, F(max_messages),
     "stop after this many events; 0 = all"},
    {"http-poll-connections", "SLUICE_HTTP_POLL_CONNECTIONS", SETTING_INT, "128", 0, 1000000, 0,
     SL_CMD_SERVE, F(http_poll_connections),
     "this many connections are served by workers that wait with poll(), which costs fewer "
     "system calls per request than epoll but scans all its connections at each wake-up; "
     "the others by epoll workers; 0 = epoll only (docs/internals/http.md)"},
};

#define N_SETTINGS (sizeof settings / sizeof settings[0])

/* list_add() finds a list's count right after its items pointer. */
_Static_assert(offsetof(sl_config, n_kafka_opts) ==
                   offsetof(sl_config, kafka_opts) + sizeof(char **),
               "a list setting's count must follow its items");
_Static_assert(offsetof(sl_config, n_write_keys) ==
                   offsetof(sl_config, write_keys) + sizeof(char **),
               "a list setting's count must follow its items");

static const char *type_hint(setting_type t)
{
    switch (t) {
    case SETTING_STRING:
        return "TEXT";
    case SETTING_INT:
        return "N";
    case SETTING_SIZE:
        return "BYTES";
    case SETTING_DURATION:
        return "DURATION";
    case SETTING_BOOL:
        return "";
    case SETTING_LIST:
        return "TEXT";
    case SETTING_KV_LIST:
        return "KEY=VALUE";
    }
    return "";
}

/* Parses digits with an optional suffix from `suffixes` (each with its multiplier). */
static sl_err parse_scaled(const char *s, const char *const *suffixes, const int64_t *mult,
                           int64_t *out)
{
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || errno || v < 0)
        return SL_ERR_INVALID;
    int64_t m = 1;
    if (*end) {
        size_t i;
        for (i = 0; suffixes[i]; i++) {
            if (strcasecmp(end, suffixes[i]) == 0)
                break;
        }
        if (!suffixes[i])
            return SL_ERR_INVALID;
        m = mult[i];
    }
    if (v > INT64_MAX / m)
        return SL_ERR_INVALID;
    *out = v * m;
    return SL_OK;
}

static void list_clear(const setting *s, sl_config *cfg)
{
    char ***items = (char ***)((char *)cfg + s->offset);
    size_t *count = (size_t *)((char *)cfg + s->offset + sizeof(char **));
    for (size_t i = 0; *items && i < *count; i++)
        free((*items)[i]);
    free(*items);
    *items = NULL;
    *count = 0;
}

/* Appends the comma-separated entries of text (flags add one entry each: commas stay). */
static sl_err list_add(const setting *s, const char *text, sl_config *cfg, const char *origin,
                       char *errbuf, size_t errlen)
{
    char ***items = (char ***)((char *)cfg + s->offset);
    size_t *count = (size_t *)((char *)cfg + s->offset + sizeof(char **));
    bool split = strncmp(origin, "--", 2) != 0;
    const char *p = text;
    while (*p) {
        const char *end = split ? strchr(p, ',') : NULL;
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > 0) {
            if (s->type == SETTING_KV_LIST && (!memchr(p, '=', len) || p[0] == '='))
                return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG, "%s: \"%.*s\" is not key=value",
                                     origin, (int)len, p);
            if (*count >= 1024)
                return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG, "%s: too many entries", origin);
            char **grown = realloc(*items, (*count + 2) * sizeof *grown);
            if (!grown)
                return SL_ERR_NOMEM;
            *items = grown;
            if (!(grown[*count] = strndup(p, len)))
                return SL_ERR_NOMEM;
            grown[++*count] = NULL;
        }
        p += len;
        if (*p == ',')
            p++;
    }
    return SL_OK;
}

static sl_err parse_value(const setting *s, const char *text, sl_config *cfg, const char *origin,
                          char *errbuf, size_t errlen)
{
    void *field = (char *)cfg + s->offset;
    int64_t v = 0;
    sl_err err = SL_OK;
    switch (s->type) {
    case SETTING_STRING: {
        char *copy = strdup(text);
        if (!copy)
            return SL_ERR_NOMEM;
        free(*(char **)field);
        *(char **)field = copy;
        return SL_OK;
    }
    case SETTING_LIST:
    case SETTING_KV_LIST:
        return list_add(s, text, cfg, origin, errbuf, errlen);
    case SETTING_BOOL:
        if (!strcmp(text, "1") || !strcasecmp(text, "true") || !strcasecmp(text, "yes"))
            *(bool *)field = true;
        else if (!strcmp(text, "0") || !strcasecmp(text, "false") || !strcasecmp(text, "no"))
            *(bool *)field = false;
        else
            return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG,
                                 "%s: \"%s\" is not a boolean (true or false)", origin, text);
        return SL_OK;
    case SETTING_INT: {
        static const char *const none[] = {NULL};
        err = parse_scaled(text, none, NULL, &v);
        break;
    }
    case SETTING_SIZE: {
        static const char *const sfx[] = {"b", "k",  "kb",  "kib", "m",  "mb",  "mib",
                                          "g", "gb", "gib", "t",   "tb", "tib", NULL};
        static const int64_t mul[] = {1,   KiB, KiB, KiB, MiB, MiB, MiB,
                                      GiB, GiB, GiB, TiB, TiB, TiB};
        err = parse_scaled(text, sfx, mul, &v);
        break;
    }
    case SETTING_DURATION: {
        static const char *const sfx[] = {"ms", "s", "m", "h", "d", NULL};
        static const int64_t mul[] = {1, 1000, 60000, 3600000, DAY_MS};
        int64_t ms;
        /* A bare number is in the setting's own unit. */
        err = parse_scaled(text, sfx, mul, &ms);
        if (!err) {
            const char *p = text;
            while (isdigit((unsigned char)*p))
                p++;
            v = *p ? ms / s->unit_ms : ms;
            if (*p && ms % s->unit_ms)
                err = SL_ERR_INVALID;
        }
        break;
    }
    }
    if (err)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG, "%s: \"%s\" is not a valid %s", origin,
                             text,
                             s->type == SETTING_INT    ? "whole number"
                             : s->type == SETTING_SIZE ? "size (like 512K, 64M, 1G)"
                                                       : "duration (like 500ms, 15s, 7d)");
    if (v < s->min || v > s->max)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG, "%s: %s is out of range (%lld to %lld)",
                             origin, text, (long long)s->min, (long long)s->max);
    *(int64_t *)field = v;
    return SL_OK;
}

static const setting *find_setting(const char *name, size_t len, unsigned command)
{
    for (size_t i = 0; i < N_SETTINGS; i++) {
        if ((settings[i].commands & command) && strlen(settings[i].name) == len &&
            strncmp(settings[i].name, name, len) == 0)
            return &settings[i];
    }
    return NULL;
}

sl_err sl_config_load(sl_config *cfg, unsigned command, int argc, char **argv, char *errbuf,
                      size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    sl_err err;
    char origin[160];
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const setting *s = &settings[i];
        snprintf(origin, sizeof origin, "default of --%s", s->name);
        if ((err = parse_value(s, s->def, cfg, origin, errbuf, errlen)))
            return err;
        const char *env = getenv(s->env);
        if ((s->commands & command) && env) {
            snprintf(origin, sizeof origin, "%s", s->env);
            if ((err = parse_value(s, env, cfg, origin, errbuf, errlen)))
                return err;
        }
    }
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h"))
            return SL_ERR_NOT_FOUND;
        if (strncmp(arg, "--", 2) != 0)
            return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG, "unexpected argument \"%s\"", arg);
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
        const setting *s = find_setting(name, name_len, command);
        if (!s)
            return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG,
                                 "unknown flag \"--%.*s\" (see --help)", (int)name_len, name);
        const char *value;
        if (eq)
            value = eq + 1;
        else if (s->type == SETTING_BOOL)
            value = "true";
        else if (i + 1 < argc)
            value = argv[++i];
        else
            return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG, "flag \"--%s\" needs a value",
                                 s->name);
        snprintf(origin, sizeof origin, "--%s", s->name);
        if ((err = parse_value(s, value, cfg, origin, errbuf, errlen)))
            return err;
    }
    return SL_OK;
}

void sl_config_cleanup(sl_config *cfg)
{
    for (size_t i = 0; i < N_SETTINGS; i++) {
        if (settings[i].type == SETTING_LIST || settings[i].type == SETTING_KV_LIST)
            list_clear(&settings[i], cfg);
        if (settings[i].type == SETTING_STRING) {
            char **field = (char **)((char *)cfg + settings[i].offset);
            free(*field);
            *field = NULL;
        }
    }
}

void sl_config_print_help(FILE *out, unsigned command)
{
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const setting *s = &settings[i];
        if (!(s->commands & command))
            continue;
        char flag[80];
        snprintf(flag, sizeof flag, "--%s %s", s->name, type_hint(s->type));
        fprintf(out, "  %-32s %s\n  %-32s [%s, default %s]\n", flag, s->doc, "", s->env,
                *s->def ? s->def : "\"\"");
    }
}

void sl_config_print_markdown(FILE *out)
{
    fputs("# Configuration\n\n"
          "Every setting is a flag and an environment variable; a flag beats the variable, "
          "which beats the default. Sizes take K, M, G, T suffixes (powers of 1024); "
          "durations take ms, s, m, h, d.\n\n"
          "This page is generated by `sluice config-doc` from the settings table in "
          "`src/core/config.c`; a test checks that it is current.\n\n"
          "| flag | variable | default | range | commands | meaning |\n"
          "|---|---|---|---|---|---|\n",
          out);
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const setting *s = &settings[i];
        char range[64] = "";
        if (s->type == SETTING_INT || s->type == SETTING_SIZE)
            snprintf(range, sizeof range, "%lld–%lld%s", (long long)s->min, (long long)s->max,
                     s->type == SETTING_SIZE ? " bytes" : "");
        else if (s->type == SETTING_DURATION)
            snprintf(range, sizeof range, "%lld–%lld %s", (long long)s->min, (long long)s->max,
                     s->unit_ms == 1      ? "ms"
                     : s->unit_ms == 1000 ? "s"
                                          : "d");
        else if (s->type == SETTING_LIST || s->type == SETTING_KV_LIST)
            snprintf(range, sizeof range, "repeatable");
        char cmds[64] = "";
        static const struct {
            unsigned bit;
            const char *name;
        } cmd_names[] = {{SL_CMD_SERVE, "serve"},
                         {SL_CMD_LOG_READ, "log read"},
                         {SL_CMD_LAKE, "lake"},
                         {SL_CMD_LAKE_VACUUM, "lake vacuum"},
                         {SL_CMD_LAKE_OPTIMIZE, "lake optimize"},
                         {SL_CMD_PG_MIGRATE, "pg migrate"}};
        for (size_t k = 0; k < sizeof cmd_names / sizeof cmd_names[0]; k++) {
            if (s->commands & cmd_names[k].bit)
                snprintf(cmds + strlen(cmds), sizeof cmds - strlen(cmds), "%s%s", *cmds ? ", " : "",
                         cmd_names[k].name);
        }
        fprintf(out, "| `--%s` | `%s` | `%s` | %s | %s | %s |\n", s->name, s->env,
                *s->def ? s->def : "", range, cmds, s->doc);
    }
}
