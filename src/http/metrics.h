/* Server metrics as lock-free counters, rendered in the Prometheus text format for
 * GET /metrics. Counters are updated from any HTTP or log thread. */
#ifndef SL_HTTP_METRICS_H
#define SL_HTTP_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "core/buf.h"
#include "event/event.h"
#include "log/log.h"

typedef enum sl_route {
    SL_ROUTE_ANALYTICS,
    SL_ROUTE_HEALTH,
    SL_ROUTE_READY,
    SL_ROUTE_METRICS,
    SL_ROUTE_OTHER,
    SL_ROUTE__COUNT
} sl_route;

/* HTTP status codes the server answers with; anything else is counted as "other". */
#define SL_METRICS_STATUS_CODES 14

/* Upper bounds of the append latency histogram, in seconds. */
#define SL_METRICS_LATENCY_BUCKETS 14

typedef struct sl_metrics {
    atomic_uint_fast64_t requests[SL_ROUTE__COUNT][SL_METRICS_STATUS_CODES + 1];
    atomic_uint_fast64_t events_accepted;
    atomic_uint_fast64_t events_rejected[SL_REASON__COUNT];
    atomic_uint_fast64_t requests_refused_busy; /* 503 from back-pressure */
    atomic_uint_fast64_t append_latency[SL_METRICS_LATENCY_BUCKETS + 1]; /* last: +Inf */
    atomic_uint_fast64_t append_latency_sum_ns;
    atomic_uint_fast64_t append_latency_count;
} sl_metrics;

void sl_metrics_init(sl_metrics *m);
void sl_metrics_count_request(sl_metrics *m, sl_route route, unsigned status);
void sl_metrics_count_rejection(sl_metrics *m, sl_event_reason reason, uint64_t n);
void sl_metrics_observe_append(sl_metrics *m, int64_t latency_ns);

/* Gauges that are read at scrape time. */
typedef struct sl_metrics_gauges {
    const sl_log_stats *log;
    unsigned connections;
    unsigned poll_connections; /* of connections, those served by poll() workers */
    unsigned requests_in_flight;
} sl_metrics_gauges;

/* Appends the whole exposition to out. */
SL_MUST_CHECK sl_err sl_metrics_render(const sl_metrics *m, const sl_metrics_gauges *g,
                                       sl_buf *out);

#endif
