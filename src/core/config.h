/* Settings: one table drives command-line parsing, environment variables, validation,
 * `--help` and docs/configuration.md (librdkafka's property table). Every setting has a
 * flag `--name` and an environment variable `SLUICE_NAME`; a flag beats the environment,
 * which beats the default. */
#ifndef SL_CORE_CONFIG_H
#define SL_CORE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/err.h"

/* Commands a setting applies to (bit mask). */
enum {
    SL_CMD_SERVE = 1u << 0,
    SL_CMD_LOG_READ = 1u << 1,
    SL_CMD_PG_MIGRATE = 1u << 2,
    SL_CMD_LAKE = 1u << 4,          /* sluice lake ... (issue 5); bits 2-3 left to other commands */
    SL_CMD_LAKE_VACUUM = 1u << 6,   /* sluice lake vacuum only (issue 6) */
    SL_CMD_LAKE_OPTIMIZE = 1u << 8, /* sluice lake optimize only (issue 6) */
};

typedef struct sl_config {
    /* serve */
    char *listen;
    char *log_uri;
    char *log_level;
    int64_t http_threads;
    int64_t max_connections;
    int64_t max_connections_per_ip;
    int64_t idle_timeout_s;
    int64_t drain_timeout_ms;
    int64_t max_body_bytes;
    int64_t max_inflated_bytes;
    int64_t max_event_bytes;
    int64_t max_batch_events;
    int64_t max_depth;
    int64_t max_keys;
    int64_t log_partitions;
    int64_t log_retention_bytes;
    int64_t log_retention_ms;
    int64_t log_max_size_bytes;
    int64_t log_max_pending_bytes;
    char **kafka_opts;   /* SETTING_LIST: "key=value" strings, NULL-terminated */
    size_t n_kafka_opts; /* entries of kafka_opts (the list setting's count follows it) */
    char **write_keys;   /* SETTING_LIST, NULL-terminated */
    size_t n_write_keys; /* entries of write_keys (the list setting's count follows it) */
    int64_t rate_limit;
    char *roles;
    /* PostgreSQL hot store (serve, pg migrate) */
    char *pg_uri;
    int64_t pg_batch_rows;
    int64_t pg_batch_bytes;
    int64_t pg_linger_ms;
    int64_t pg_writers;
    int64_t pg_retention_days;
    int64_t pg_partitions_ahead;
    /* lake (issue 5): the lake-sink role and `sluice lake` */
    char *lake_uri;
    char *lake_codec;
    int64_t lake_zstd_level;
    int64_t lake_batch_rows;
    int64_t lake_batch_bytes;
    int64_t lake_batch_interval_ms;
    /* lake on object storage, `sluice lake vacuum` (issue 6) */
    char *s3_endpoint;
    char *s3_region;
    bool s3_path_style;
    int64_t lake_checkpoint_interval; /* Delta checkpoints (issue 6) */
    int64_t lake_log_retention_ms;
    int64_t retain_hours;
    bool dry_run;
    bool force;
    /* compaction: `sluice lake optimize` and the sink's (issue 6) */
    int64_t lake_target_file_bytes;
    int64_t lake_auto_optimize_files;
    char *partition;
    /* log read */
    char *group;
    bool from_beginning;
    int64_t max_messages;
    /* ingest speed (branch ingestspeed) */
    int64_t http_poll_connections;
} sl_config;

/* Fills cfg for `command` from the defaults, then the environment, then argv (the words
 * after the command). Strings in cfg are heap copies freed by sl_config_cleanup.
 * SL_ERR_CONFIG with a message naming the flag or variable on any bad value or unknown
 * flag; SL_ERR_NOT_FOUND when argv asks for --help (the caller prints help). */
SL_MUST_CHECK sl_err sl_config_load(sl_config *cfg, unsigned command, int argc, char **argv,
                                    char *errbuf, size_t errlen);
void sl_config_cleanup(sl_config *cfg);

/* Writes the flags of `command` with their variables, defaults and docs. */
void sl_config_print_help(FILE *out, unsigned command);
/* Writes docs/configuration.md for every setting. */
void sl_config_print_markdown(FILE *out);

#endif
