/* Append throughput of the embedded log (file://DIR), the two shapes the ingest API makes:
 *   single: T threads (default 64), each appends one ~500-byte record and waits for its
 *           durability callback before the next, as concurrent HTTP requests do;
 *   el:     the same 64 single-record appends in flight, issued by 4 threads (an
 *           event-loop server: one wake per thread per commit, not one per request);
 *   batch:  units of 100 records of ~500 bytes, many units in flight, as batch POSTs do.
 * Build (after `cmake --build build --target sl_log`):
 *   gcc -O2 -std=c17 -D_GNU_SOURCE -Isrc bench/log_append.c build/libsl_log.a \
 *       build/libsl_core.a -llmdb -lz -lrdkafka -lpthread -lm -o build/bench_log_append
 * Run: build/bench_log_append [seconds] [threads] [single|el|batch|both]; each run uses a
 * fresh dir under /tmp; BENCH_PARTITIONS=N overrides the default 8 partitions. */
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log/log.h"

static sl_log_t *lg;
static atomic_bool stop;
static atomic_ulong done_records;
static atomic_ulong failed;
static char value[500];
static unsigned partitions = 8;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- single-record appenders, one outstanding append each ---- */

typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool done;
    sl_err err;
} waiter;

static void on_single(void *opaque, sl_err err, const char *detail)
{
    (void)detail;
    waiter *w = opaque;
    pthread_mutex_lock(&w->mu);
    w->done = true;
    w->err = err;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

static void *single_main(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    waiter w = {.done = false};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cond, NULL);
    char key[32];
    unsigned long i = 0;
    while (!atomic_load(&stop)) {
        int klen = snprintf(key, sizeof key, "session-%u-%lu", id, i++ % 50);
        sl_log_record rec = {key, (size_t)klen, value, sizeof value};
        w.done = false;
        sl_err err = sl_log_append(lg, &rec, 1, on_single, &w);
        if (err == SL_ERR_BUSY) {
            usleep(100);
            continue;
        }
        if (err) {
            atomic_fetch_add(&failed, 1);
            break;
        }
        pthread_mutex_lock(&w.mu);
        while (!w.done)
            pthread_cond_wait(&w.cond, &w.mu);
        pthread_mutex_unlock(&w.mu);
        if (w.err)
            atomic_fetch_add(&failed, 1);
        else
            atomic_fetch_add(&done_records, 1);
    }
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cond);
    return NULL;
}

/* ---- event-loop style: few threads, each with many single-record appends in flight ----
 * What an HTTP server with a small thread pool does: a completion marks its request done,
 * and the thread re-issues every finished one on its next turn (one wake per turn, not one
 * per request). Still one sl_log_append (one unit, one callback) per record. */

#define SLOTS_MAX 256
typedef struct el_thread {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    unsigned id;
    unsigned slots;
    unsigned free_slots; /* @locks mu */
    bool waiting;        /* @locks mu */
} el_thread;

static void on_el(void *opaque, sl_err err, const char *detail)
{
    (void)detail;
    el_thread *t = opaque;
    if (err)
        atomic_fetch_add(&failed, 1);
    else
        atomic_fetch_add(&done_records, 1);
    pthread_mutex_lock(&t->mu);
    t->free_slots++;
    if (t->waiting)
        pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->mu);
}

static void *el_main(void *arg)
{
    el_thread *t = arg;
    char key[32];
    unsigned long i = 0;
    while (!atomic_load(&stop)) {
        pthread_mutex_lock(&t->mu);
        t->waiting = true;
        while (t->free_slots == 0)
            pthread_cond_wait(&t->cond, &t->mu);
        t->waiting = false;
        unsigned n = t->free_slots;
        t->free_slots = 0;
        pthread_mutex_unlock(&t->mu);
        for (unsigned k = 0; k < n; k++) {
            int klen = snprintf(key, sizeof key, "session-%u-%lu", t->id, i++ % 50);
            sl_log_record rec = {key, (size_t)klen, value, sizeof value};
            sl_err err;
            while ((err = sl_log_append(lg, &rec, 1, on_el, t)) == SL_ERR_BUSY)
                usleep(100);
            if (err) {
                atomic_fetch_add(&failed, 1);
                return NULL;
            }
        }
    }
    /* Wait for what is still in flight: t lives on this thread's caller's stack. */
    pthread_mutex_lock(&t->mu);
    t->waiting = true;
    while (t->free_slots < t->slots)
        pthread_cond_wait(&t->cond, &t->mu);
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

static unsigned el_threads = 4;
static unsigned el_inflight = 64;

static void *el_pool_main(void *arg)
{
    (void)arg;
    el_thread ts[16];
    pthread_t th[16];
    unsigned nt = el_threads;
    for (unsigned i = 0; i < nt; i++) {
        ts[i] = (el_thread){.id = i};
        ts[i].slots = ts[i].free_slots = el_inflight / nt + (i < el_inflight % nt);
        pthread_mutex_init(&ts[i].mu, NULL);
        pthread_cond_init(&ts[i].cond, NULL);
        pthread_create(&th[i], NULL, el_main, &ts[i]);
    }
    for (unsigned i = 0; i < nt; i++) {
        pthread_join(th[i], NULL);
        pthread_mutex_destroy(&ts[i].mu);
        pthread_cond_destroy(&ts[i].cond);
    }
    return NULL;
}

/* ---- batch appenders: units of 100, bounded in flight by the log's own BUSY ---- */

#define UNIT 100

static void on_batch(void *opaque, sl_err err, const char *detail)
{
    (void)opaque;
    (void)detail;
    if (err)
        atomic_fetch_add(&failed, 1);
    else
        atomic_fetch_add(&done_records, UNIT);
}

static void *batch_main(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    sl_log_record recs[UNIT];
    char keys[UNIT][32];
    unsigned long u = 0;
    while (!atomic_load(&stop)) {
        for (int i = 0; i < UNIT; i++) {
            int klen = snprintf(keys[i], sizeof keys[i], "session-%u-%lu-%d", id, u % 97, i);
            recs[i] = (sl_log_record){keys[i], (size_t)klen, value, sizeof value};
        }
        sl_err err = sl_log_append(lg, recs, UNIT, on_batch, NULL);
        if (err == SL_ERR_BUSY) {
            usleep(200); /* back-pressure: what a 503 + retry would do */
            continue;
        }
        if (err) {
            atomic_fetch_add(&failed, 1);
            break;
        }
        u++;
    }
    return NULL;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* The process's peak RSS so far (VmHWM: the log's mapped LMDB pages count) and its
 * anonymous part now: run one mode per process to read a mode's own peak. */
static void print_peak_rss(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6) || !strncmp(line, "RssAnon:", 8))
            printf("  %s", line);
    if (f)
        fclose(f);
}

static double run(const char *name, void *(*fn)(void *), unsigned threads, double secs)
{
    char dir[] = "/tmp/sluice-bench-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(1);
    }
    char uri[64];
    snprintf(uri, sizeof uri, "file://%s", dir);
    sl_log_options o;
    sl_log_options_default(&o);
    o.producer = true;
    o.partitions = partitions;
    char eb[256];
    if (sl_log_open(uri, &o, &lg, eb, sizeof eb)) {
        fprintf(stderr, "open: %s\n", eb);
        exit(1);
    }
    atomic_store(&stop, false);
    atomic_store(&done_records, 0);
    atomic_store(&failed, 0);
    pthread_t *th = calloc(threads, sizeof *th);
    double t0 = now_s();
    for (unsigned i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, fn, (void *)(uintptr_t)i);
    usleep((useconds_t)(secs * 1e6));
    atomic_store(&stop, true);
    for (unsigned i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    double elapsed = now_s() - t0;
    sl_log_stats st;
    sl_log_get_stats(lg, &st);
    sl_log_close(lg);
    unsigned long n = atomic_load(&done_records);
    double rate = (double)n / elapsed;
    printf("%-8s threads=%-3u records=%lu in %.2fs: %.0f records/s, %.1f MB/s of values, "
           "%lu commits (%.1f records/commit), failed=%lu\n",
           name, threads, n, elapsed, rate, rate * sizeof value / 1e6,
           (unsigned long)st.commits_total,
           st.commits_total ? (double)st.appended_total / (double)st.commits_total : 0.0,
           (unsigned long)atomic_load(&failed));
    print_peak_rss();
    free(th);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rate;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? strtod(argv[1], NULL) : 3.0;
    unsigned threads = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 64;
    if (secs <= 0 || threads == 0) {
        fprintf(stderr, "usage: %s [seconds] [threads] [single|el|batch|both]\n", argv[0]);
        return 2;
    }
    for (size_t i = 0; i < sizeof value; i++)
        value[i] = (char)('a' + i % 26);
    const char *mode = argc > 3 ? argv[3] : "both";
    if (getenv("BENCH_PARTITIONS"))
        partitions = (unsigned)strtoul(getenv("BENCH_PARTITIONS"), NULL, 10);
    if (strcmp(mode, "single") == 0 || strcmp(mode, "both") == 0) {
        double single = run("single", single_main, threads, secs);
        printf("target single >= 40000/s: %s\n", single >= 40000 ? "met" : "MISSED");
    }
    if (strcmp(mode, "both") == 0 || strcmp(mode, "el") == 0) {
        el_inflight = threads > SLOTS_MAX ? SLOTS_MAX : threads;
        double el = run("single-el", el_pool_main, 1, secs);
        printf("  (%u single-record appends in flight from %u threads)\n", el_inflight, el_threads);
        printf("target single >= 40000/s: %s\n", el >= 40000 ? "met" : "MISSED");
    }
    if (strcmp(mode, "batch") == 0 || strcmp(mode, "both") == 0) {
        double batch = run("batch100", batch_main, 4, secs);
        printf("target batch >= 500000/s: %s\n", batch >= 500000 ? "met" : "MISSED");
    }
    return 0;
}
