/* A part of a running sluice process that reports its health and metrics through the
 * HTTP server (a sink, say): GET /ready asks every component, GET /metrics appends each
 * one's Prometheus text. The component keeps its own state; this is only the view. */
#ifndef SL_CORE_COMPONENT_H
#define SL_CORE_COMPONENT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"

typedef struct sl_component {
    const char *name; /* role name, e.g. "pg-sink"; prefixes its /ready reason */
    /* Whether the component does its work now; if not, a short lowercase reason goes into
     * why. @thread any HTTP thread, concurrently with the component's own threads. */
    bool (*is_ready)(void *opaque, char *why, size_t whylen);
    /* Appends HELP/TYPE lines and samples (names sluice_<component>_...).
     * @thread any HTTP thread. */
    sl_err (*write_metrics)(void *opaque, sl_buf *out);
    void *opaque;
} sl_component;

#endif
