/* The Kafka path's ceiling without HTTP: one librdkafka producer with sluice's settings
 * (src/log/kafka_producer_settings.h: idempotent, acks=all, lz4, linger, murmur2_random) keeps K
 * ~560-byte messages in flight, as K keep-alive clients do, and produces the next one from each
 * delivery report (sluice answers from the on_acknowledgement interceptor instead, which must
 * not produce). It prints the acknowledgements per second and the producer's CPU per
 * acknowledgement, so bench/kafka.sh's figures can be set against what the mock cluster and an
 * ideal producer reach on the same machine (docs/benchmarks.md, "Kafka backend"). Usage:
 * sluice-kafka-ceiling BOOTSTRAP [seconds=8] [in-flight=64] [key=value ...] (key=value: librdkafka
 * settings applied after the defaults, e.g. linger.ms=0). */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "log/kafka_producer_settings.h"

#define N_KEYS    512
#define VALUE_LEN 560

static rd_kafka_topic_t *rkt;
static unsigned long acks, failures;
static int stopping;
static char value[VALUE_LEN];
static char keys[N_KEYS][32];

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static int produce(unsigned long i)
{
    const char *key = keys[i % N_KEYS];
    return rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, value, VALUE_LEN, key,
                            strlen(key), (void *)(uintptr_t)i);
}

/* Runs on the main thread inside rd_kafka_poll: one message in, the next one out. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    (void)rk;
    (void)opaque;
    if (rkm->err)
        failures++;
    else
        acks++;
    if (!stopping && produce((uintptr_t)rkm->_private + 7) == -1)
        failures++;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s BOOTSTRAP [seconds] [in-flight] [key=value ...]\n", argv[0]);
        return 2;
    }
    double seconds = argc > 2 ? strtod(argv[2], NULL) : 8;
    unsigned long in_flight = argc > 3 ? strtoul(argv[3], NULL, 10) : 64;
    char es[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *settings[] = {"bootstrap.servers", argv[1], SL__LOG_KAFKA_PRODUCER_SETTINGS, NULL};
    for (int i = 0; settings[i]; i += 2) {
        if (rd_kafka_conf_set(conf, settings[i], settings[i + 1], es, sizeof es)) {
            fprintf(stderr, "%s\n", es);
            return 1;
        }
    }
    for (int i = 4; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) {
            fprintf(stderr, "\"%s\" is not key=value\n", argv[i]);
            return 2;
        }
        *eq = '\0';
        if (rd_kafka_conf_set(conf, argv[i], eq + 1, es, sizeof es)) {
            fprintf(stderr, "%s\n", es);
            return 1;
        }
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, es, sizeof es);
    if (!rk) {
        fprintf(stderr, "%s\n", es);
        return 1;
    }
    rkt = rd_kafka_topic_new(rk, "analytics-events", NULL);
    /* A JSON-like value of realistic entropy for lz4, and sluice's key shape. */
    for (int i = 0; i < VALUE_LEN; i++)
        value[i] = "abcdefghijklmnopqrstuvwxyz0123456789{}\":,"[(i * 7 + i / 13) % 41];
    for (int i = 0; i < N_KEYS; i++)
        snprintf(keys[i], sizeof keys[i], "sess-%08x-%04x", (unsigned)i * 7919u, (unsigned)i);
    for (unsigned long i = 0; i < in_flight; i++) {
        if (produce(i) == -1) {
            fprintf(stderr, "produce: %s\n", rd_kafka_err2str(rd_kafka_last_error()));
            return 1;
        }
    }
    double t0 = mono_s();
    while (mono_s() - t0 < 1) /* warm-up: connection, producer id, first batches */
        rd_kafka_poll(rk, 100);
    unsigned long acks0 = acks;
    double c0 = cpu_s();
    t0 = mono_s();
    while (mono_s() - t0 < seconds)
        rd_kafka_poll(rk, 100);
    double elapsed = mono_s() - t0;
    unsigned long n = acks - acks0;
    printf("acks/s %.0f producer_cpu_us_per_ack %.1f failures %lu\n", (double)n / elapsed,
           n ? (cpu_s() - c0) * 1e6 / (double)n : 0.0, failures);
    stopping = 1;
    rd_kafka_flush(rk, 5000);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return failures ? 1 : 0;
}
