/* sluice-kafka-mock: librdkafka's own mock Kafka cluster as a program, for tests and demos.
 * Starts N brokers on 127.0.0.1 ephemeral ports, creates the topic, prints one line
 * `bootstrap=127.0.0.1:PORT,...` on stdout and then answers commands read from stdin, one
 * per line (`ok` or `error: ...` each), until SIGTERM or SIGINT. Commands:
 *   down BROKER_ID | up BROKER_ID | rtt BROKER_ID MS
 *   errors API CODE COUNT   (API: Produce, Fetch, Metadata, ... or its number; CODE: a
 *                            Kafka error name such as NOT_ENOUGH_REPLICAS or its number)
 *   clear API               (drops errors still queued for API) */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define MAX_ERRORS 10000

/* Kafka's brokers set TCP_NODELAY on every client connection; librdkafka's mock does not.
 * Without it a small answer waits, under Nagle's rule, for the client's delayed ACK (about
 * 40 ms) whenever an earlier answer is still unacknowledged: on a topic of one partition
 * with linger.ms=0, 12 % of produce requests waited 25-50 ms, and sluice's rate fell to a
 * quarter (docs/benchmarks.md, 2026-12-08). The mock accepts its clients with accept();
 * this definition in the program is the one librdkafka's call binds to, so every client
 * socket gets TCP_NODELAY as it would from a real broker. */
int accept(int fd, __SOCKADDR_ARG addr, socklen_t *__restrict len)
{
    int client = accept4(fd, addr, len, 0);
    if (client >= 0) {
        int one = 1;
        (void)setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return client;
}

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static bool parse_long(const char *s, long min, long max, long *out)
{
    if (!s)
        return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static const struct {
    const char *name;
    int16_t key;
} apis[] = {
    {"Produce", 0},         {"Fetch", 1},       {"ListOffsets", 2},      {"Metadata", 3},
    {"OffsetCommit", 8},    {"OffsetFetch", 9}, {"FindCoordinator", 10}, {"JoinGroup", 11},
    {"Heartbeat", 12},      {"LeaveGroup", 13}, {"SyncGroup", 14},       {"ApiVersions", 18},
    {"InitProducerId", 22},
};

static bool parse_api(const char *s, int16_t *out)
{
    long v;
    for (size_t i = 0; s && i < sizeof apis / sizeof apis[0]; i++) {
        if (strcasecmp(s, apis[i].name) == 0) {
            *out = apis[i].key;
            return true;
        }
    }
    if (!parse_long(s, 0, 1000, &v))
        return false;
    *out = (int16_t)v;
    return true;
}

static bool parse_code(const char *s, rd_kafka_resp_err_t *out)
{
    long v;
    if (parse_long(s, -200, 1000, &v)) {
        *out = (rd_kafka_resp_err_t)v;
        return true;
    }
    const struct rd_kafka_err_desc *descs;
    size_t n;
    rd_kafka_get_err_descs(&descs, &n);
    for (size_t i = 0; s && i < n; i++) {
        if (descs[i].name && strcasecmp(descs[i].name, s) == 0) {
            *out = descs[i].code;
            return true;
        }
    }
    return false;
}

/* Runs one command line; returns the answer. */
static const char *run(rd_kafka_mock_cluster_t *mc, char *line)
{
    char *save = NULL;
    char *cmd = strtok_r(line, " \t\r\n", &save);
    char *a1 = strtok_r(NULL, " \t\r\n", &save);
    char *a2 = strtok_r(NULL, " \t\r\n", &save);
    char *a3 = strtok_r(NULL, " \t\r\n", &save);
    long id, v;
    int16_t api;
    rd_kafka_resp_err_t code;
    if (!cmd)
        return "error: empty command";
    if (!strcmp(cmd, "down") || !strcmp(cmd, "up")) {
        if (!parse_long(a1, 0, INT_MAX, &id))
            return "error: usage: down|up BROKER_ID";
        rd_kafka_resp_err_t e = !strcmp(cmd, "down")
                                    ? rd_kafka_mock_broker_set_down(mc, (int32_t)id)
                                    : rd_kafka_mock_broker_set_up(mc, (int32_t)id);
        return e ? "error: no such broker" : "ok";
    }
    if (!strcmp(cmd, "rtt")) {
        if (!parse_long(a1, 0, INT_MAX, &id) || !parse_long(a2, 0, 3600000, &v))
            return "error: usage: rtt BROKER_ID MS";
        return rd_kafka_mock_broker_set_rtt(mc, (int32_t)id, (int)v) ? "error: no such broker"
                                                                     : "ok";
    }
    if (!strcmp(cmd, "errors")) {
        if (!parse_api(a1, &api) || !parse_code(a2, &code) || !parse_long(a3, 1, MAX_ERRORS, &v))
            return "error: usage: errors API CODE COUNT";
        rd_kafka_resp_err_t *codes = malloc((size_t)v * sizeof *codes);
        if (!codes)
            return "error: out of memory";
        for (long i = 0; i < v; i++)
            codes[i] = code;
        rd_kafka_mock_push_request_errors_array(mc, api, (size_t)v, codes);
        free(codes);
        return "ok";
    }
    if (!strcmp(cmd, "clear")) {
        if (!parse_api(a1, &api))
            return "error: usage: clear API";
        rd_kafka_mock_clear_request_errors(mc, api);
        return "ok";
    }
    return "error: unknown command (down, up, rtt, errors, clear)";
}

static void usage(void)
{
    fputs("usage: sluice-kafka-mock [--brokers N] [--partitions P] [--topic NAME]\n", stderr);
}

int main(int argc, char **argv)
{
    long brokers = 1, partitions = 8;
    const char *topic = "analytics-events";
    for (int i = 1; i < argc; i++) {
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--brokers") && parse_long(val, 1, 64, &brokers))
            i++;
        else if (!strcmp(argv[i], "--partitions") && parse_long(val, 1, 10000, &partitions))
            i++;
        else if (!strcmp(argv[i], "--topic") && val && *val)
            topic = argv[++i];
        else {
            usage();
            return 2;
        }
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    char es[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "client.id", "sluice-kafka-mock", es, sizeof es);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, es, sizeof es);
    if (!rk) {
        fprintf(stderr, "sluice-kafka-mock: could not create a kafka handle: %s\n", es);
        return 1;
    }
    int rc = 1;
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, (int)brokers);
    if (!mc) {
        fprintf(stderr, "sluice-kafka-mock: could not start the mock cluster\n");
        goto out;
    }
    rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mc, topic, (int)partitions, (int)brokers);
    if (e) {
        fprintf(stderr, "sluice-kafka-mock: could not create topic \"%s\": %s\n", topic,
                rd_kafka_err2str(e));
        goto out;
    }
    printf("bootstrap=%s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);

    char line[512];
    bool input = true;
    while (!stop) {
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
        if (!input || poll(&pfd, 1, 200) <= 0) {
            if (!input)
                usleep(200000);
            continue;
        }
        if (!fgets(line, sizeof line, stdin)) {
            input = false; /* stdin closed: keep serving until a signal */
            continue;
        }
        printf("%s\n", run(mc, line));
        fflush(stdout);
    }
    rc = 0;
out:
    if (mc)
        rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return rc;
}
