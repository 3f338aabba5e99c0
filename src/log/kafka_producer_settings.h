/* The producer settings that set the Kafka path's guarantees and speed, in one list for
 * the log's producer (kafka.c) and for its ceiling bench (bench/kafka_ceiling.c), so that
 * the bench measures the producer sluice runs. Pairs of librdkafka key and value, to
 * splice into a NULL-terminated settings array. */
#ifndef SL_LOG_KAFKA_PRODUCER_SETTINGS_H
#define SL_LOG_KAFKA_PRODUCER_SETTINGS_H

/* linger.ms: every HTTP answer waits for its ack, so the linger bounds a keep-alive
 * client's rate: 64 messages kept in flight by an ideal producer (bench/kafka_ceiling.c)
 * reach 34-37k acks/s at 1 ms, 37-39k at 0.5, 47-55k at 0.2 and 263-281k at 0. 0.2 ms
 * rather than 0 because load still fills batches and each produce request costs the
 * broker thread and the broker CPU (bench/kafka.sh at 64 connections: 1 ms 30-37k
 * requests/s, 0.2 ms 36-44k, 0 ms 29-48k; docs/benchmarks.md). */
#define SL__LOG_KAFKA_PRODUCER_SETTINGS                                                            \
    "enable.idempotence", "true", "acks", "all", "compression.codec", "lz4", "linger.ms", "0.2",   \
        "partitioner", "murmur2_random"

#endif
