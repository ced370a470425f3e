/* kafka.h -- librdkafka clients built from the configuration file, and the
 * embedded Kafka-protocol cluster (librdkafka's mock cluster) for a first
 * run and for the tests.  The daemon's code path is the same for both: only
 * bootstrap.servers differs. */
#ifndef MCD_KAFKA_H
#define MCD_KAFKA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "daemon/config.h"

enum mcd_kafka_role {
        MCD_KAFKA_GROUP_CONSUMER,    /* the daemon's consumer: cooperative-sticky group member */
        MCD_KAFKA_READER,            /* assign()-only consumer: the subscriptions side, reconciliation, rebuild */
        MCD_KAFKA_TOOL_READER,       /* the same, prefetching as much as librdkafka likes: tail */
        MCD_KAFKA_PRODUCER,          /* idempotent producer */
        MCD_KAFKA_BULK_PRODUCER,     /* the same, batching for throughput (publish) */
        MCD_KAFKA_END_PROBE,         /* asks partitions' ends only, read_uncommitted (end_probe.c) */
};

/* A client of the given role with every kafka.* property of cfg applied over
 * the role's defaults.  NULL with err[] set when librdkafka refuses. */
rd_kafka_t *mcd_kafka_new(const struct mcd_config *cfg, enum mcd_kafka_role role, rd_kafka_conf_t *extra,
                          char *err, size_t errlen);

struct mcd_embedded;

/* Starts a mock cluster of `brokers` brokers with the five topics of cfg
 * created with `partitions` partitions each, and points cfg's
 * kafka.bootstrap.servers at it.  `debug`, unless NULL: librdkafka's debug
 * contexts for the cluster's host handle ("mock,cgrp": its group
 * coordinator's states), logged at debug.  0 or negative errno. */
int mcd_embedded_start(struct mcd_config *cfg, int brokers, int partitions, const char *debug,
                       struct mcd_embedded **out);
const char *mcd_embedded_bootstraps(const struct mcd_embedded *e);
/* Takes every broker of the cluster down (connections refused) or up again,
 * to rehearse a Kafka outage. */
void mcd_embedded_set_up(struct mcd_embedded *e, bool up);
/* Fault injection: every broker answers its next SyncGroup request `ms`
 * late, so that a consumer stays between joining its group and receiving
 * its assignment for that long.  0 or negative errno. */
int mcd_embedded_delay_sync_group(struct mcd_embedded *e, int ms);
/* The requests a delayed broker answers late (their Kafka API keys). */
enum mcd_mock_api { MCD_MOCK_PRODUCE = 0, MCD_MOCK_FETCH = 1 };

/* Fault injection: partition `partition` of `topic` (one of cfg's five) is
 * moved to a broker of its own, the cluster's last, which answers its next
 * `api` request `ms` late.  A Fetch: a consumer of that partition gets
 * nothing of it for that long while the other partitions flow.  A Produce:
 * the messages are appended at once, their acknowledgement held back (a
 * producer whose message.timeout.ms is shorter sees them fail, possibly
 * persisted).  Needs two brokers at least.  0, -EINVAL (too few brokers,
 * no such partition), -ENOENT (no such topic) or -EIO. */
int mcd_embedded_delay(struct mcd_embedded *e, const struct mcd_config *cfg, const char *topic, int32_t partition,
                       enum mcd_mock_api api, int ms);
/* Fault injection, after mcd_embedded_delay: the delayed partition's broker
 * answers its next request of that kind `ms` late, once more.  0 or
 * -EIO. */
int mcd_embedded_hold(struct mcd_embedded *e, int ms);
void mcd_embedded_stop(struct mcd_embedded *e);

/* Waits up to timeout_ms for everything queued to be delivered or to fail;
 * returns 0, or -ETIMEDOUT when messages are still queued.  Delivery errors
 * are reported to the producer's delivery report callback, not here. */
int mcd_kafka_flush(rd_kafka_t *rk, int timeout_ms);

/* Partition count of a topic (metadata round trip); -ENOENT when the broker
 * does not know the topic, -EAGAIN for another error of the topic's
 * metadata (no leader yet, say), -EIO when the broker did not answer. */
int mcd_kafka_partition_count(rd_kafka_t *rk, const char *topic, int timeout_ms);

/* The first and next offsets (low and high watermarks) of n partitions of a
 * topic (parts[i], or 0..n-1 when parts is NULL) into lo[i] and hi[i]
 * (either may be NULL: not asked): one ListOffsets request per watermark
 * and leader, however many partitions, where
 * rd_kafka_query_watermark_offsets asks one partition per request pair.
 * A partition not answered gets -1.  0, -ENOMEM, -ETIMEDOUT (every
 * partition -1), or -EIO when the broker refused a partition (the others'
 * answers are kept). */
int mcd_kafka_watermarks(rd_kafka_t *rk, const char *topic, const int32_t *parts, int n, int64_t *lo, int64_t *hi,
                         int timeout_ms);

/* Wakes the thread of the broker that leads a partition by sending it a
 * ListOffsets request for the partition's end, without waiting for the
 * answer: librdkafka drops an answer its caller gave up on (the response
 * callback of rd_kafka_offsets_for_times returns on ERR__DESTROY).
 * librdkafka 2.0 stops fetching a partition while its handle's queue is
 * over queued.max.messages.kbytes and decides again only when that thread
 * next wakes, up to a second after the queue was drained (its loop's fixed
 * timeout; fetch.queue.backoff.ms came in 2.3); a woken thread decides
 * again for every partition it fetches.  0 when the request was sent (or
 * is waiting for its leader to be known), -ENOMEM, or -EIO when librdkafka
 * refused it. */
int mcd_kafka_wake_fetcher(rd_kafka_t *rk, const char *topic, int32_t partition);

/* A group consumer's session.timeout.ms as configured: a member silent that
 * long has lost its partitions to the group.  0 when it cannot be read. */
int64_t mcd_kafka_session_timeout_ms(rd_kafka_t *rk);

#endif
