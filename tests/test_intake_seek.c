/* test_intake_seek.c -- a pair's seek on the group consumer (intake.c
 * side_op), against librdkafka's mock cluster in this process.
 *
 * A partition the group assigns starts fetching at the group's committed
 * offset once the coordinator has answered for it; until then librdkafka
 * refuses a seek of it, in the partition's .err, not in the call's result.
 * The daemon seeks each pair to Redis's offsets, which after Redis came back
 * older are behind the group's copy: a refused seek taken as done started
 * the fetch at the group's offset, skipping the events between (CI,
 * daemon_rollback.sh "gone": Redis's states lacked them, every outcome
 * already published).
 *
 * Covers: the group holds offset 60 of 100; a member joins and is assigned
 * the partition, the coordinator's OffsetFetch answer held back 1.5 s; a
 * seek to 10 at once is refused (-EAGAIN); tried again until taken, the
 * first message fetched is offset 10, not 60. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "daemon/config.h"
#include "daemon/intake.h"
#include "daemon/runtime.h"
#include "tests/tap.h"

#define API_OFFSET_FETCH 9      /* Kafka protocol ApiKey (librdkafka's constants are internal) */
#define N_MESSAGES 100
#define GROUP_AT 60             /* the group's committed offset */
#define SEEK_TO 10              /* Redis's, behind it */

static int assigned;

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                         void *opaque) {
        (void)opaque;
        if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
                rd_kafka_error_destroy(rd_kafka_incremental_assign(rk, parts));   /* NULL-safe */
                assigned += parts->cnt;
        } else {
                rd_kafka_error_destroy(rd_kafka_incremental_unassign(rk, parts));
        }
}

/* A handle of `type` on the cluster, in group "g-seek" for a consumer.
 * NULL on an error. */
static rd_kafka_t *handle_new(rd_kafka_type_t type, const char *bootstraps) {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        char err[256];
        bool bad = rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, err, sizeof(err)) ||
                   rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err));

        if (type == RD_KAFKA_CONSUMER) {
                bad = bad || rd_kafka_conf_set(conf, "group.id", "g-seek", err, sizeof(err)) ||
                      rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err)) ||
                      rd_kafka_conf_set(conf, "partition.assignment.strategy", "cooperative-sticky", err,
                                        sizeof(err)) ||
                      rd_kafka_conf_set(conf, "session.timeout.ms", "6000", err, sizeof(err));
                rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
        }
        if (bad) {
                rd_kafka_conf_destroy(conf);
                return NULL;
        }
        return rd_kafka_new(type, conf, err, sizeof(err));
}

/* N_MESSAGES messages on rel [0]; 0 when all were delivered. */
static int produce_all(const char *bootstraps) {
        rd_kafka_t *p = handle_new(RD_KAFKA_PRODUCER, bootstraps);
        int bad = !p;

        for (int i = 0; !bad && i < N_MESSAGES; i++)
                bad = rd_kafka_producev(p, RD_KAFKA_V_TOPIC("rel"), RD_KAFKA_V_PARTITION(0),
                                        RD_KAFKA_V_VALUE("x", 1), RD_KAFKA_V_END) != 0;
        if (p && rd_kafka_flush(p, 10000) != 0)
                bad = 1;
        rd_kafka_destroy(p);
        return bad;
}

/* The group's committed offset of rel [0] set to `offset`; 0 on success. */
static int commit_group(const char *bootstraps, int64_t offset) {
        rd_kafka_t *c = handle_new(RD_KAFKA_CONSUMER, bootstraps);
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        int bad;

        rd_kafka_topic_partition_list_add(l, "rel", 0)->offset = offset;
        bad = !c || rd_kafka_commit(c, l, 0) != 0;
        rd_kafka_topic_partition_list_destroy(l);
        if (c)
                rd_kafka_consumer_close(c);
        rd_kafka_destroy(c);
        return bad;
}

/* One poll of the consumer, what it returns dropped (its callbacks served). */
static void poll_once(rd_kafka_t *c, int ms) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, ms);

        if (m)
                rd_kafka_message_destroy(m);
}

/* The offset of the first message of rel [0] the consumer delivers, or -1. */
static int64_t first_fetched(rd_kafka_t *c) {
        for (int i = 0; i < 100; i++) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
                int64_t off = m && !m->err ? m->offset : -1;
                if (m)
                        rd_kafka_message_destroy(m);
                if (off >= 0)
                        return off;
        }
        return -1;
}

int main(void) {
        struct mcd_config cfg = {.topic_relationships = "rel", .topic_subscriptions = "sub"};
        struct mcd_env env = {.cfg = &cfg};
        struct intake in = {.env = &env};
        struct pair p = {.partition = 0};
        rd_kafka_conf_t *mconf = rd_kafka_conf_new();
        rd_kafka_mock_cluster_t *mc;
        const char *boot;
        rd_kafka_t *mrk;
        char err[256];
        int r, tries = 0;

        rd_kafka_conf_set(mconf, "log_level", "3", err, sizeof(err));
        mrk = rd_kafka_new(RD_KAFKA_PRODUCER, mconf, err, sizeof(err));
        mc = mrk ? rd_kafka_mock_cluster_new(mrk, 1) : NULL;
        ok(mc && rd_kafka_mock_topic_create(mc, "rel", 1, 1) == 0, "mock cluster with topic rel");
        if (!mc)
                return 1;
        boot = rd_kafka_mock_cluster_bootstraps(mc);
        ok(produce_all(boot) == 0, "%d messages on rel [0]", N_MESSAGES);
        ok(commit_group(boot, GROUP_AT) == 0, "the group's committed offset is %d", GROUP_AT);

        /* The coordinator's next OffsetFetch answer, the assignment's, 1.5 s late. */
        rd_kafka_mock_broker_push_request_error_rtts(mc, 1, API_OFFSET_FETCH, 1, RD_KAFKA_RESP_ERR_NO_ERROR, 1500);
        env.consumer = handle_new(RD_KAFKA_CONSUMER, boot);
        rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(sub, "rel", RD_KAFKA_PARTITION_UA);
        ok(env.consumer && rd_kafka_subscribe(env.consumer, sub) == 0, "a member subscribes");
        rd_kafka_topic_partition_list_destroy(sub);
        for (int i = 0; env.consumer && !assigned && i < 300; i++)
                poll_once(env.consumer, 100);
        ok(assigned == 1, "the member was assigned rel [0]");

        r = side_op(&in, &p, REL, SIDE_SEEK, SEEK_TO);
        ok(r == -EAGAIN, "a seek before the group answered for the partition is refused (%d)", r);
        while (r != 0 && tries++ < 100) {
                poll_once(env.consumer, 50);
                r = side_op(&in, &p, REL, SIDE_SEEK, SEEK_TO);
        }
        ok(r == 0 && tries > 1, "tried again, the seek is taken (after %d tries)", tries);
        int64_t first = first_fetched(env.consumer);
        ok(first == SEEK_TO, "the first message fetched is offset %lld (%d wanted, the group's %d)",
           (long long)first, SEEK_TO, GROUP_AT);

        if (env.consumer)
                rd_kafka_consumer_close(env.consumer);
        rd_kafka_destroy(env.consumer);
        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(mrk);
        return tap_done();
}
