/* Prometheus text exposition of sl_metrics plus process and log gauges. */
#include "http/metrics.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static const unsigned status_codes[SL_METRICS_STATUS_CODES] = {200, 204, 400, 401, 404, 405, 408,
                                                               413, 415, 429, 431, 500, 501, 503};

static const char *const route_names[SL_ROUTE__COUNT] = {"/analytics", "/health", "/ready",
                                                         "/metrics", "other"};

static const double latency_bounds[SL_METRICS_LATENCY_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5};

void sl_metrics_init(sl_metrics *m)
{
    memset(m, 0, sizeof *m);
}

void sl_metrics_count_request(sl_metrics *m, sl_route route, unsigned status)
{
    size_t i;
    for (i = 0; i < SL_METRICS_STATUS_CODES; i++) {
        if (status_codes[i] == status)
            break;
    }
    atomic_fetch_add_explicit(&m->requests[route][i], 1, memory_order_relaxed);
}

void sl_metrics_count_rejection(sl_metrics *m, sl_event_reason reason, uint64_t n)
{
    atomic_fetch_add_explicit(&m->events_rejected[reason], n, memory_order_relaxed);
}

void sl_metrics_observe_append(sl_metrics *m, int64_t latency_ns)
{
    double s = (double)latency_ns / 1e9;
    size_t i;
    for (i = 0; i < SL_METRICS_LATENCY_BUCKETS; i++) {
        if (s <= latency_bounds[i])
            break;
    }
    atomic_fetch_add_explicit(&m->append_latency[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->append_latency_sum_ns, (uint64_t)latency_ns,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&m->append_latency_count, 1, memory_order_relaxed);
}

static uint64_t load(const atomic_uint_fast64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

/* Resident set size from /proc/self/statm, in bytes; 0 if unreadable. */
static uint64_t resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, resident = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%llu %llu", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

sl_err sl_metrics_render(const sl_metrics *m, const sl_metrics_gauges *g, sl_buf *out)
{
    sl_err err = SL_OK;
#define EMIT(...)                                                                                  \
    do {                                                                                           \
        if ((err = sl_buf_appendf(out, __VA_ARGS__)))                                              \
            return err;                                                                            \
    } while (0)

    EMIT("# HELP sluice_http_requests_total HTTP requests answered, by route and status.\n"
         "# TYPE sluice_http_requests_total counter\n");
    for (int r = 0; r < SL_ROUTE__COUNT; r++) {
        for (int s = 0; s <= SL_METRICS_STATUS_CODES; s++) {
            uint64_t v = load(&m->requests[r][s]);
            if (!v)
                continue;
            if (s < SL_METRICS_STATUS_CODES)
                EMIT("sluice_http_requests_total{route=\"%s\",code=\"%u\"} %llu\n", route_names[r],
                     status_codes[s], (unsigned long long)v);
            else
                EMIT("sluice_http_requests_total{route=\"%s\",code=\"other\"} %llu\n",
                     route_names[r], (unsigned long long)v);
        }
    }
    EMIT("# HELP sluice_events_accepted_total Events made durable in the log.\n"
         "# TYPE sluice_events_accepted_total counter\n"
         "sluice_events_accepted_total %llu\n",
         (unsigned long long)load(&m->events_accepted));
    EMIT("# HELP sluice_events_rejected_total Events or requests refused, by reason.\n"
         "# TYPE sluice_events_rejected_total counter\n");
    for (int r = 0; r < SL_REASON__COUNT; r++)
        EMIT("sluice_events_rejected_total{reason=\"%s\"} %llu\n",
             sl_event_reason_name((sl_event_reason)r),
             (unsigned long long)load(&m->events_rejected[r]));
    EMIT("# HELP sluice_requests_refused_busy_total Requests answered 503 because the log's "
         "queue was full.\n"
         "# TYPE sluice_requests_refused_busy_total counter\n"
         "sluice_requests_refused_busy_total %llu\n",
         (unsigned long long)load(&m->requests_refused_busy));

    EMIT("# HELP sluice_log_append_seconds Time from handing a request's events to the log "
         "until they were durable.\n"
         "# TYPE sluice_log_append_seconds histogram\n");
    uint64_t cumulative = 0;
    for (int i = 0; i <= SL_METRICS_LATENCY_BUCKETS; i++) {
        cumulative += load(&m->append_latency[i]);
        if (i < SL_METRICS_LATENCY_BUCKETS)
            EMIT("sluice_log_append_seconds_bucket{le=\"%g\"} %llu\n", latency_bounds[i],
                 (unsigned long long)cumulative);
        else
            EMIT("sluice_log_append_seconds_bucket{le=\"+Inf\"} %llu\n",
                 (unsigned long long)cumulative);
    }
    EMIT("sluice_log_append_seconds_sum %.9f\n"
         "sluice_log_append_seconds_count %llu\n",
         (double)load(&m->append_latency_sum_ns) / 1e9,
         (unsigned long long)load(&m->append_latency_count));

    const sl_log_stats *ls = g->log;
    EMIT("# HELP sluice_log_records Events retained in the log (its depth).\n"
         "# TYPE sluice_log_records gauge\n"
         "sluice_log_records %llu\n"
         "# HELP sluice_log_bytes Bytes of events retained in the log.\n"
         "# TYPE sluice_log_bytes gauge\n"
         "sluice_log_bytes %llu\n"
         "# HELP sluice_log_pending_bytes Bytes accepted but not yet durable.\n"
         "# TYPE sluice_log_pending_bytes gauge\n"
         "sluice_log_pending_bytes %llu\n"
         "# HELP sluice_log_appended_total Events made durable since start.\n"
         "# TYPE sluice_log_appended_total counter\n"
         "sluice_log_appended_total %llu\n"
         "# HELP sluice_log_commits_total Durable commits (fsync groups) since start.\n"
         "# TYPE sluice_log_commits_total counter\n"
         "sluice_log_commits_total %llu\n"
         "# HELP sluice_log_healthy 1 while the log commits, 0 after a failed commit.\n"
         "# TYPE sluice_log_healthy gauge\n"
         "sluice_log_healthy %d\n",
         (unsigned long long)ls->records, (unsigned long long)ls->bytes,
         (unsigned long long)ls->pending_bytes, (unsigned long long)ls->appended_total,
         (unsigned long long)ls->commits_total, ls->healthy ? 1 : 0);

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    EMIT("# HELP sluice_http_connections Open HTTP connections.\n"
         "# TYPE sluice_http_connections gauge\n"
         "sluice_http_connections %u\n"
         "# HELP sluice_http_poll_connections Of the open HTTP connections, those served by "
         "poll() workers (--http-poll-connections); epoll workers serve the rest.\n"
         "# TYPE sluice_http_poll_connections gauge\n"
         "sluice_http_poll_connections %u\n"
         "# HELP sluice_http_requests_in_flight Requests received and not yet answered.\n"
         "# TYPE sluice_http_requests_in_flight gauge\n"
         "sluice_http_requests_in_flight %u\n"
         "# HELP process_cpu_seconds_total User and system CPU time.\n"
         "# TYPE process_cpu_seconds_total counter\n"
         "process_cpu_seconds_total %.6f\n"
         "# HELP process_resident_memory_bytes Resident memory.\n"
         "# TYPE process_resident_memory_bytes gauge\n"
         "process_resident_memory_bytes %llu\n"
         "# HELP process_max_resident_memory_bytes Peak resident memory.\n"
         "# TYPE process_max_resident_memory_bytes gauge\n"
         "process_max_resident_memory_bytes %llu\n",
         g->connections, g->poll_connections, g->requests_in_flight, cpu,
         (unsigned long long)resident_bytes(), (unsigned long long)ru.ru_maxrss * 1024ULL);
#undef EMIT
    return err;
}
