/* Test-only consumer for test_kafka.py: joins a consumer group on a sluice log through the
 * public log interface and prints what happens, one line each, flushed at once:
 *   assign P,P,...   revoke P,P,...   msg P OFFSET KEY   commit P:NEXT,...
 *   refused DETAIL   (a commit the group refused while rebalancing)
 * It commits after every non-empty poll and runs until SIGTERM/SIGINT (unlike `sluice log
 * read`, which leaves when caught up, so a group can be watched through a rebalance).
 * Usage: sluice-test-consumer LOG_URI GROUP [librdkafka key=value ...] */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "log/log.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void print_parts(void *opaque, const unsigned *parts, size_t n)
{
    printf("%s ", (const char *)opaque);
    for (size_t i = 0; i < n; i++)
        printf("%s%u", i ? "," : "", parts[i]);
    printf("\n");
    fflush(stdout);
}

static void on_assign(void *opaque, const unsigned *parts, size_t n)
{
    (void)opaque;
    print_parts("assign", parts, n);
}

static void on_revoke(void *opaque, const unsigned *parts, size_t n)
{
    (void)opaque;
    print_parts("revoke", parts, n);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fputs("usage: sluice-test-consumer LOG_URI GROUP [key=value ...]\n", stderr);
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    char errbuf[512];
    sl_log_options lo;
    sl_log_options_default(&lo);
    lo.kafka_opts = (const char *const *)argv + 3;
    lo.n_kafka_opts = (size_t)(argc - 3);
    sl_log_t *log = NULL;
    sl_log_consumer_t *c = NULL;
    int rc = 1;
    if (sl_log_open(argv[1], &lo, &log, errbuf, sizeof errbuf)) {
        fprintf(stderr, "sluice-test-consumer: %s\n", errbuf);
        goto out;
    }
    sl_log_consumer_options co = {.group = argv[2], .on_assign = on_assign, .on_revoke = on_revoke};
    if (sl_log_consumer_open(log, &co, &c, errbuf, sizeof errbuf)) {
        fprintf(stderr, "sluice-test-consumer: %s\n", errbuf);
        goto out;
    }
    sl_log_message msgs[64];
    sl_log_position pos[64];
    while (!stop) {
        size_t n = 0;
        if (sl_log_consumer_poll(c, msgs, 64, &n, 200)) {
            fprintf(stderr, "sluice-test-consumer: %s\n", sl_log_consumer_errmsg(c));
            goto out;
        }
        size_t np = 0;
        for (size_t i = 0; i < n; i++) {
            printf("msg %u %llu %.*s\n", msgs[i].partition, (unsigned long long)msgs[i].offset,
                   (int)msgs[i].key_len, msgs[i].key ? msgs[i].key : "");
            size_t j;
            for (j = 0; j < np && pos[j].partition != msgs[i].partition; j++)
                ;
            pos[j] = (sl_log_position){msgs[i].partition, msgs[i].offset + 1};
            if (j == np)
                np++;
        }
        if (np) {
            sl_err err = sl_log_consumer_commit(c, pos, np);
            if (err == SL_ERR_BUSY) { /* the group is rebalancing: not stored, go on */
                printf("refused %s\n", sl_log_consumer_errmsg(c));
                fflush(stdout);
                continue;
            }
            if (err) {
                fprintf(stderr, "sluice-test-consumer: %s\n", sl_log_consumer_errmsg(c));
                goto out;
            }
            printf("commit");
            for (size_t j = 0; j < np; j++)
                printf("%s%u:%llu", j ? "," : " ", pos[j].partition,
                       (unsigned long long)pos[j].offset);
            printf("\n");
        }
        fflush(stdout);
    }
    rc = 0;
out:
    sl_log_consumer_close(c);
    sl_log_close(log);
    return rc;
}
