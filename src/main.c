/* sluice's command line: picks the command, loads its settings, and calls into the
 * modules. Kept thin: everything that does work lives in src/<module>/. */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/config.h"
#include "core/diag.h"
#include "http/http.h"
#include "lake/lake.h"
#include "log/log.h"
#include "pg/pg.h"

static void usage(FILE *out)
{
    fputs("usage: sluice COMMAND [FLAGS]\n\n"
          "commands:\n"
          "  serve          run the ingest API on the durable log\n"
          "  log read       print events stored in the log as JSON lines\n"
          "  pg migrate     create or update the PostgreSQL schema and its partitions\n"
          "  lake history   list the versions of the Delta Lake table\n"
          "  lake optimize  compact the table's small files into larger ones\n"
          "  lake vacuum    delete the table's files no version within --retain hours uses\n"
          "  config-doc     print docs/configuration.md\n"
          "  help           this text; `sluice COMMAND --help` lists a command's flags\n",
          out);
}

static int config_or_help(sl_config *cfg, unsigned command, const char *name, int argc, char **argv)
{
    char errbuf[512];
    sl_err err = sl_config_load(cfg, command, argc, argv, errbuf, sizeof errbuf);
    if (err == SL_ERR_NOT_FOUND) {
        printf("usage: sluice %s [FLAGS]\n\nflags (each also read from its variable):\n", name);
        sl_config_print_help(stdout, command);
        sl_config_cleanup(cfg);
        return 0;
    }
    if (err) {
        fprintf(stderr, "sluice %s: %s\n", name, errbuf);
        sl_config_cleanup(cfg);
        return 2;
    }
    sl_diag_level level;
    if (sl_diag_parse_level(cfg->log_level, &level)) {
        fprintf(stderr, "sluice %s: --log-level: \"%s\" is not debug, info, warn or error\n", name,
                cfg->log_level);
        sl_config_cleanup(cfg);
        return 2;
    }
    sl_diag_set_level(level);
    return -1;
}

static void log_options_from(const sl_config *cfg, bool producer, sl_log_options *lo)
{
    sl_log_options_default(lo);
    lo->producer = producer;
    lo->partitions = (unsigned)cfg->log_partitions;
    lo->retention_bytes = (uint64_t)cfg->log_retention_bytes;
    lo->retention_ms = (uint64_t)cfg->log_retention_ms;
    lo->max_size_bytes = (uint64_t)cfg->log_max_size_bytes;
    lo->max_pending_bytes = (size_t)cfg->log_max_pending_bytes;
    lo->kafka_opts = (const char *const *)cfg->kafka_opts;
    lo->n_kafka_opts = cfg->n_kafka_opts;
}

/* What `--roles` can name: each role is a part of sluice this process runs. */
enum { ROLE_API = 1u << 0, ROLE_PG_SINK = 1u << 1, ROLE_LAKE_SINK = 1u << 2 };
static const struct role_name {
    const char *name;
    unsigned bit;
} role_names[] = {
    {"api", ROLE_API},
    {"pg-sink", ROLE_PG_SINK},
    {"lake-sink", ROLE_LAKE_SINK},
};

/* Parses --roles: a comma-separated list of role names, or "all". 0 on a bad list. */
static unsigned parse_roles(const char *list)
{
    unsigned roles = 0;
    for (const char *p = list;; p++) {
        size_t len = strcspn(p, ",");
        unsigned bit = 0;
        for (size_t i = 0; i < sizeof role_names / sizeof role_names[0]; i++) {
            if (len == 3 && !strncmp(p, "all", 3))
                bit |= role_names[i].bit;
            else if (strlen(role_names[i].name) == len && !strncmp(p, role_names[i].name, len))
                bit = role_names[i].bit;
        }
        if (!bit)
            return 0; /* an unknown or empty name */
        roles |= bit;
        p += len;
        if (!*p)
            return roles;
    }
}

/* Whether the --roles list names role itself (not only through "all"). */
static bool names_role(const char *list, const char *role)
{
    size_t n = strlen(role);
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        if (len == n && !strncmp(p, role, n))
            return true;
        p += len + (p[len] == ',');
    }
    return false;
}

/* The lake's object-store options (s3:// lakes) from the settings; strings point into cfg. */
static void lake_storage_from(const sl_config *cfg, sl_storage_options *so)
{
    sl_storage_options_default(so);
    so->endpoint = *cfg->s3_endpoint ? cfg->s3_endpoint : NULL;
    so->region = cfg->s3_region;
    so->path_style = cfg->s3_path_style;
}

/* --lake-codec as a codec; false when it names none. */
static bool lake_codec_from(const char *name, sl_pq_codec *codec)
{
    if (!strcmp(name, "snappy"))
        *codec = SL_PQ_SNAPPY;
    else if (!strcmp(name, "zstd"))
        *codec = SL_PQ_ZSTD;
    else if (!strcmp(name, "none"))
        *codec = SL_PQ_UNCOMPRESSED;
    else
        return false;
    return true;
}

/* The lake sink's options from the settings (so receives the store's, which opts points
 * to); false on a bad codec. */
static bool lake_options_from(const sl_config *cfg, sl_lake_sink_options *opts,
                              sl_storage_options *so)
{
    sl_lake_sink_options_default(opts);
    lake_storage_from(cfg, so);
    opts->storage = so;
    opts->table_uri = cfg->lake_uri;
    opts->zstd_level = (int)cfg->lake_zstd_level;
    opts->batch_rows = (uint64_t)cfg->lake_batch_rows;
    opts->batch_bytes = (uint64_t)cfg->lake_batch_bytes;
    opts->batch_ms = cfg->lake_batch_interval_ms;
    opts->checkpoint_interval = cfg->lake_checkpoint_interval; /* checkpoints (issue 6) */
    opts->log_retention_ms = cfg->lake_log_retention_ms;
    opts->target_file_bytes = (uint64_t)cfg->lake_target_file_bytes;
    opts->auto_optimize_files = (size_t)cfg->lake_auto_optimize_files;
    return lake_codec_from(cfg->lake_codec, &opts->codec);
}

/* Many keep-alive clients need many descriptors; take what the hard limit allows. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* ---- PostgreSQL hot store ---- */

static void pg_schema_from(const sl_config *cfg, sl_pg_schema_options *so)
{
    so->retention_days = (unsigned)cfg->pg_retention_days;
    so->partitions_ahead = (unsigned)cfg->pg_partitions_ahead;
}

static void pg_sink_options_from(const sl_config *cfg, sl_pg_sink_options *po)
{
    sl_pg_sink_options_default(po);
    po->conninfo = cfg->pg_uri;
    po->batch_rows = (size_t)cfg->pg_batch_rows;
    po->batch_bytes = (size_t)cfg->pg_batch_bytes;
    po->linger_ms = (unsigned)cfg->pg_linger_ms;
    po->writers = (unsigned)cfg->pg_writers;
    pg_schema_from(cfg, &po->schema);
}

static int cmd_serve(int argc, char **argv)
{
    sl_config cfg;
    int rc = config_or_help(&cfg, SL_CMD_SERVE, "serve", argc, argv);
    if (rc >= 0)
        return rc;
    rc = 1;
    char errbuf[512];
    sl_log_t *log = NULL;
    sl_http_server_t *srv = NULL;
    sl_lake_sink_t *lake = NULL;
    sl_component components[sizeof role_names / sizeof role_names[0]];
    size_t n_components = 0;
    unsigned roles = parse_roles(cfg.roles);
    if (!roles) {
        fprintf(stderr, "sluice serve: --roles: \"%s\" is not a comma-separated list of",
                cfg.roles);
        for (size_t i = 0; i < sizeof role_names / sizeof role_names[0]; i++)
            fprintf(stderr, " %s", role_names[i].name);
        fprintf(stderr, " (or all)\n");
        sl_config_cleanup(&cfg);
        return 2;
    }
    sl_pg_sink_t *pg_sink = NULL;
    if ((roles & ROLE_PG_SINK) && !*cfg.pg_uri) {
        if (names_role(cfg.roles, "pg-sink")) {
            fprintf(stderr, "sluice serve: the pg-sink role needs --pg (or SLUICE_PG)\n");
            sl_config_cleanup(&cfg);
            return 2;
        }
        roles &= ~(unsigned)ROLE_PG_SINK; /* "all" without a PostgreSQL: no hot store */
    }
    sl_lake_sink_options lake_opts;
    sl_storage_options lake_so;
    if ((roles & ROLE_LAKE_SINK) && !lake_options_from(&cfg, &lake_opts, &lake_so)) {
        fprintf(stderr, "sluice serve: --lake-codec: \"%s\" is not snappy, zstd or none\n",
                cfg.lake_codec);
        sl_config_cleanup(&cfg);
        return 2;
    }

    /* Signals are taken by sigwait() in this thread only: block them before any thread
     * starts so every thread inherits the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();

    sl_log_options lo;
    log_options_from(&cfg, roles & ROLE_API, &lo);
    if (sl_log_open(cfg.log_uri, &lo, &log, errbuf, sizeof errbuf)) {
        sl_diag(SL_DIAG_ERROR, "could not open the log", "uri=\"%s\" detail=\"%s\"", cfg.log_uri,
                errbuf);
        goto out;
    }
    if (roles & ROLE_PG_SINK) {
        sl_pg_sink_options po;
        pg_sink_options_from(&cfg, &po);
        if (sl_pg_sink_start(&po, log, &pg_sink, errbuf, sizeof errbuf)) {
            sl_diag(SL_DIAG_ERROR, "could not start the pg sink", "detail=\"%s\"", errbuf);
            goto out;
        }
        sl_pg_sink_component(pg_sink, &components[n_components++]);
    }
    /* Sinks start here, each adding its component, so /ready and /metrics include them. */
    if (roles & ROLE_LAKE_SINK) {
        if (sl_lake_sink_start(&lake_opts, log, &lake, errbuf, sizeof errbuf)) {
            sl_diag(SL_DIAG_ERROR, "could not start the lake sink", "lake=\"%s\" detail=\"%s\"",
                    cfg.lake_uri, errbuf);
            goto out;
        }
        sl_lake_sink_component(lake, &components[n_components++]);
    }
    sl_http_options ho = {
        .listen = cfg.listen,
        .threads = (unsigned)cfg.http_threads,
        .max_connections = (unsigned)cfg.max_connections,
        .max_connections_per_ip = (unsigned)cfg.max_connections_per_ip,
        .idle_timeout_s = (unsigned)cfg.idle_timeout_s,
        .max_body_bytes = (size_t)cfg.max_body_bytes,
        .max_inflated_bytes = (size_t)cfg.max_inflated_bytes,
        .limits =
            {
                .max_event_bytes = (size_t)cfg.max_event_bytes,
                .max_depth = (unsigned)cfg.max_depth,
                .max_keys = (size_t)cfg.max_keys,
                .max_batch = (size_t)cfg.max_batch_events,
            },
        .write_keys = cfg.write_keys,
        .n_write_keys = cfg.n_write_keys,
        .rate_limit = (uint64_t)cfg.rate_limit,
        .ingest = roles & ROLE_API,
        .components = components,
        .n_components = n_components,
        .poll_connections = (unsigned)cfg.http_poll_connections,
    };
    if (sl_http_server_start(&ho, log, &srv, errbuf, sizeof errbuf)) {
        sl_diag(SL_DIAG_ERROR, "could not start the HTTP server", "detail=\"%s\"", errbuf);
        goto out;
    }
    char base[300];
    const char *colon = strrchr(cfg.listen, ':');
    snprintf(base, sizeof base, "http://%.*s:%u", (int)(colon - cfg.listen), cfg.listen,
             sl_http_server_port(srv));
    sl_diag(SL_DIAG_INFO, "listening", "url=%s log=\"%s\" partitions=%u roles=%s", base,
            cfg.log_uri, sl_log_partition_count(log), cfg.roles);
    printf("sluice is serving (roles: %s)\n", cfg.roles);
    if (roles & ROLE_API)
        printf("  ingest   POST %s/analytics\n", base);
    printf("  health   GET  %s/health\n"
           "  ready    GET  %s/ready\n"
           "  metrics  GET  %s/metrics\n"
           "  log      %s  (see it with: sluice log read --log %s)\n",
           base, base, base, cfg.log_uri, cfg.log_uri);
    if (pg_sink) {
        char where[300];
        sl_pg_describe(cfg.pg_uri, where, sizeof where);
        printf("  pg       %s, table analytics_events (the hot store)\n", where);
    }
    if (roles & ROLE_LAKE_SINK) {
        /* The hint must reach the same store: an s3:// lake names its endpoint too. */
        bool s3 = !strncmp(cfg.lake_uri, "s3://", 5);
        bool own_endpoint = s3 && cfg.s3_endpoint && cfg.s3_endpoint[0];
        printf("  lake     %s  (see it with: sluice lake history --lake %s%s%s%s%s%s)\n",
               cfg.lake_uri, cfg.lake_uri, own_endpoint ? " --s3-endpoint " : "",
               own_endpoint ? cfg.s3_endpoint : "", s3 ? " --s3-region " : "",
               s3 ? cfg.s3_region : "", s3 && cfg.s3_path_style ? " --s3-path-style" : "");
    }
    fflush(stdout);

    int sig = 0;
    sigwait(&sigs, &sig);
    sl_diag(SL_DIAG_INFO, "shutting down", "signal=%s", sig == SIGINT ? "SIGINT" : "SIGTERM");
    unsigned left = sl_http_server_drain(srv, cfg.drain_timeout_ms);
    if (left)
        sl_diag(SL_DIAG_WARN, "requests still in flight at the drain deadline", "requests=%u",
                left);
    rc = 0;
out:
    sl_http_server_free(srv);
    /* Sinks stop here: after the last request is answered, before the log closes. */
    sl_lake_sink_stop(lake);
    sl_pg_sink_stop(pg_sink);
    sl_log_close(log);
    if (rc == 0)
        sl_diag(SL_DIAG_INFO, "stopped", NULL);
    sl_config_cleanup(&cfg);
    return rc;
}

static int cmd_log_read(int argc, char **argv)
{
    sl_config cfg;
    int rc = config_or_help(&cfg, SL_CMD_LOG_READ, "log read", argc, argv);
    if (rc >= 0)
        return rc;
    rc = 1;
    char errbuf[512];
    sl_log_t *log = NULL;
    sl_log_options lo;
    log_options_from(&cfg, false, &lo);
    if (sl_log_open(cfg.log_uri, &lo, &log, errbuf, sizeof errbuf)) {
        fprintf(stderr, "sluice log read: %s\n", errbuf);
        goto out;
    }
    sl_log_print_options po = {
        .group = *cfg.group ? cfg.group : NULL,
        .from_beginning = cfg.from_beginning,
        .max = (uint64_t)cfg.max_messages,
    };
    if (sl_log_print(log, &po, stdout, errbuf, sizeof errbuf)) {
        fprintf(stderr, "sluice log read: %s\n", errbuf);
        goto out;
    }
    rc = fflush(stdout) == 0 ? 0 : 1;
out:
    sl_log_close(log);
    sl_config_cleanup(&cfg);
    return rc;
}

static int cmd_lake_history(int argc, char **argv)
{
    sl_config cfg;
    int rc = config_or_help(&cfg, SL_CMD_LAKE, "lake history", argc, argv);
    if (rc >= 0)
        return rc;
    char errbuf[512];
    sl_storage_options so;
    lake_storage_from(&cfg, &so);
    rc = 0;
    if (sl_lake_history_print(cfg.lake_uri, &so, stdout, errbuf, sizeof errbuf)) {
        fprintf(stderr, "sluice lake history: %s\n", errbuf);
        rc = 1;
    } else if (fflush(stdout) != 0) {
        rc = 1;
    }
    sl_config_cleanup(&cfg);
    return rc;
}

static int cmd_lake_optimize(int argc, char **argv)
{
    sl_config cfg;
    int rc = config_or_help(&cfg, SL_CMD_LAKE | SL_CMD_LAKE_OPTIMIZE, "lake optimize", argc, argv);
    if (rc >= 0)
        return rc;
    char errbuf[512];
    sl_storage_options so;
    lake_storage_from(&cfg, &so);
    sl_lake_optimize_options oo;
    sl_lake_optimize_options_default(&oo);
    oo.target_file_bytes = (uint64_t)cfg.lake_target_file_bytes;
    oo.partition = cfg.partition;
    oo.zstd_level = (int)cfg.lake_zstd_level;
    oo.progress = isatty(STDERR_FILENO) ? stderr : NULL;
    sl_storage_t *st = NULL;
    sl_delta_snapshot_t *snap = NULL;
    sl_lake_optimize_result res;
    rc = 1;
    if (!lake_codec_from(cfg.lake_codec, &oo.codec)) {
        fprintf(stderr, "sluice lake optimize: --lake-codec: \"%s\" is not snappy, zstd or none\n",
                cfg.lake_codec);
        rc = 2;
    } else if (sl_lake_store_open(cfg.lake_uri, &so, &st, errbuf, sizeof errbuf) ||
               sl_delta_snapshot_load(st, -1, &snap, errbuf, sizeof errbuf) ||
               sl_lake_optimize(st, snap, &oo, &res, errbuf, sizeof errbuf)) {
        fprintf(stderr, "sluice lake optimize: %s\n", errbuf);
    } else if (res.version < 0) {
        printf("nothing to compact: no partition has %zu files under %" PRId64 " bytes\n",
               oo.min_files, cfg.lake_target_file_bytes);
        rc = 0;
    } else {
        printf("version %" PRId64 ": %zu partitions, %" PRIu64 " files (%" PRIu64
               " bytes) rewritten into %" PRIu64 " (%" PRIu64 " bytes), %" PRIu64 " rows\n",
               res.version, res.partitions, res.files_removed, res.bytes_removed, res.files_added,
               res.bytes_added, res.rows);
        rc = fflush(stdout) == 0 ? 0 : 1;
    }
    sl_delta_snapshot_free(snap);
    sl_storage_close(st);
    sl_config_cleanup(&cfg);
    return rc;
}

static int cmd_lake_vacuum(int argc, char **argv)
{
    sl_config cfg;
    int rc = config_or_help(&cfg, SL_CMD_LAKE | SL_CMD_LAKE_VACUUM, "lake vacuum", argc, argv);
    if (rc >= 0)
        return rc;
    char errbuf[512];
    sl_storage_options so;
    lake_storage_from(&cfg, &so);
    sl_lake_vacuum_options vo = {
        .retain_hours = cfg.retain_hours,
        .dry_run = cfg.dry_run,
        .force = cfg.force,
        .progress = isatty(STDERR_FILENO) ? stderr : NULL,
    };
    sl_err err = sl_lake_vacuum(cfg.lake_uri, &so, &vo, stdout, errbuf, sizeof errbuf);
    rc = 0;
    if (err) {
        fprintf(stderr, "sluice lake vacuum: %s\n", errbuf);
        rc = err == SL_ERR_CONFIG ? 2 : 1;
    } else if (fflush(stdout) != 0) {
        rc = 1;
    }
    sl_config_cleanup(&cfg);
    return rc;
}

static int cmd_pg_migrate(int argc, char **argv)
{
    sl_config cfg;
    int rc = config_or_help(&cfg, SL_CMD_PG_MIGRATE, "pg migrate", argc, argv);
    if (rc >= 0)
        return rc;
    char errbuf[512];
    sl_pg_schema_options so;
    pg_schema_from(&cfg, &so);
    rc = 0;
    if (!*cfg.pg_uri) {
        fprintf(stderr, "sluice pg migrate: --pg (or SLUICE_PG) is required\n");
        rc = 2;
    } else if (sl_pg_migrate(cfg.pg_uri, &so, errbuf, sizeof errbuf)) {
        fprintf(stderr, "sluice pg migrate: %s\n", errbuf);
        rc = 1;
    }
    sl_config_cleanup(&cfg);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "serve"))
        return cmd_serve(argc - 2, argv + 2);
    if (!strcmp(argv[1], "log") && argc >= 3 && !strcmp(argv[2], "read"))
        return cmd_log_read(argc - 3, argv + 3);
    if (!strcmp(argv[1], "pg") && argc >= 3 && !strcmp(argv[2], "migrate"))
        return cmd_pg_migrate(argc - 3, argv + 3);
    if (!strcmp(argv[1], "lake") && argc >= 3 && !strcmp(argv[2], "history"))
        return cmd_lake_history(argc - 3, argv + 3);
    if (!strcmp(argv[1], "lake") && argc >= 3 && !strcmp(argv[2], "optimize"))
        return cmd_lake_optimize(argc - 3, argv + 3);
    if (!strcmp(argv[1], "lake") && argc >= 3 && !strcmp(argv[2], "vacuum"))
        return cmd_lake_vacuum(argc - 3, argv + 3);
    if (!strcmp(argv[1], "config-doc")) {
        sl_config_print_markdown(stdout);
        return 0;
    }
    fprintf(stderr, "sluice: unknown command \"%s\"\n\n", argv[1]);
    usage(stderr);
    return 2;
}
