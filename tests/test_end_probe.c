/* test_end_probe.c -- the broker's end of input partitions, asked off the
 * main thread (end_probe.c), against librdkafka's mock cluster in this
 * process.
 *
 * Covers: ends of an empty and of a written partition, each answer stamped
 * after the time it was wanted after; no second question while an answer
 * asked after `since` is in; a new end once more is written and a later
 * answer wanted; with the leader of one partition down, a question of
 * several partitions still answers the others (librdkafka's all-or-nothing
 * call asked again one partition at a time) and the partition without a
 * leader gets no answer; a partition out of range is ignored; NULL
 * everywhere. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "daemon/config.h"
#include "daemon/end_probe.h"
#include "daemon/runtime.h"
#include "tests/tap.h"

#define SUB 1

static void sleep_ms(long ms) {
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};

        nanosleep(&ts, NULL);
}

/* Waits up to 10 s for an answer for partition `part` asked after `after`;
 * 0 with *end, or -ETIMEDOUT. */
static int answer_after(struct mcd_end_probe *e, int32_t part, int64_t after, int64_t *end, int64_t *at) {
        for (int i = 0; i < 1000; i++, sleep_ms(10))
                if (mcd_end_probe_answer(e, SUB, part, end, at) == 0 && *at > after)
                        return 0;
        return -ETIMEDOUT;
}

/* n messages to partition `part` of topic "sub", delivered.  0 or -EIO. */
static int produce(const char *bootstraps, int32_t part, int n) {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        char err[256];
        rd_kafka_t *p;
        int r = 0;

        rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, err, sizeof(err));
        if (!(p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err))))
                return -EIO;
        for (int i = 0; i < n && r == 0; i++)
                r = rd_kafka_producev(p, RD_KAFKA_V_TOPIC("sub"), RD_KAFKA_V_PARTITION(part),
                                      RD_KAFKA_V_VALUE("x", 1), RD_KAFKA_V_END) ? -EIO : 0;
        if (rd_kafka_flush(p, 10000))
                r = -EIO;
        rd_kafka_destroy(p);
        return r;
}

static int config_for(struct mcd_config *cfg, const char *bootstraps) {
        char why[256];

        if (mcd_config_defaults(cfg) < 0)
                return -ENOMEM;
        if (mcd_config_set(cfg, "kafka.bootstrap.servers", bootstraps, 1, why, sizeof(why)) < 0 ||
            mcd_config_set(cfg, "topic.relationships", "rel", 2, why, sizeof(why)) < 0 ||
            mcd_config_set(cfg, "topic.subscriptions", "sub", 3, why, sizeof(why)) < 0 ||
            mcd_config_set(cfg, "kafka.log_level", "3", 4, why, sizeof(why)) < 0)
                return -EINVAL;
        return 0;
}

int main(void) {
        rd_kafka_conf_t *mconf = rd_kafka_conf_new();
        struct mcd_end_probe *e = NULL;
        int64_t end = -1, at = 0, at0, at1, since;
        rd_kafka_mock_cluster_t *mc;
        struct mcd_config cfg;
        const char *bs;
        rd_kafka_t *mrk;
        char err[256];

        rd_kafka_conf_set(mconf, "log_level", "3", err, sizeof(err));
        mrk = rd_kafka_new(RD_KAFKA_PRODUCER, mconf, err, sizeof(err));
        mc = mrk ? rd_kafka_mock_cluster_new(mrk, 2) : NULL;
        ok(mc && rd_kafka_mock_topic_create(mc, "rel", 4, 1) == 0 && rd_kafka_mock_topic_create(mc, "sub", 4, 1) == 0 &&
                   rd_kafka_mock_partition_set_leader(mc, "sub", 0, 1) == 0 &&
                   rd_kafka_mock_partition_set_leader(mc, "sub", 1, 1) == 0 &&
                   rd_kafka_mock_partition_set_leader(mc, "sub", 3, 2) == 0,
           "mock cluster of 2 brokers, topics rel and sub, sub [3] led by broker 2");
        if (!mc)
                return 1;
        bs = rd_kafka_mock_cluster_bootstraps(mc);
        ok(config_for(&cfg, bs) == 0, "configuration at %s", bs);
        ok(mcd_end_probe_new(&cfg, &e) == 0 && e, "probe made");
        if (!e)
                return 1;
        ok(produce(bs, 1, 3) == 0, "3 messages in sub [1]");

        since = mono_ms();
        ok(mcd_end_probe_answer(e, SUB, 0, &end, &at) == -ENOENT, "no answer before a question");
        mcd_end_probe_want(e, SUB, 0, since);
        mcd_end_probe_want(e, SUB, 1, since);
        ok(answer_after(e, 0, since, &end, &at) == 0 && end == 0, "sub [0]: end 0, asked after it was wanted");
        ok(answer_after(e, 1, since, &end, &at1) == 0 && end == 3, "sub [1]: end 3");

        mcd_end_probe_want(e, SUB, 1, since);
        sleep_ms(300);
        ok(mcd_end_probe_answer(e, SUB, 1, &end, &at) == 0 && at == at1,
           "wanted again after the same time: the answer in is kept, no second question");

        ok(produce(bs, 1, 2) == 0, "2 more messages in sub [1]");
        mcd_end_probe_want(e, SUB, 1, at1);
        ok(answer_after(e, 1, at1, &end, &at) == 0 && end == 5, "wanted after the last answer: a new one, end 5");

        /* The leader of sub [3] down: librdkafka's call fails as a whole. */
        rd_kafka_mock_broker_set_down(mc, 2);
        at0 = at;
        mcd_end_probe_answer(e, SUB, 0, &end, &at0);
        since = mono_ms();
        mcd_end_probe_want(e, SUB, 3, since);
        mcd_end_probe_want(e, SUB, 0, since);
        ok(answer_after(e, 0, since, &end, &at) == 0 && end == 0,
           "sub [3]'s leader down: sub [0], asked with it, still answered");
        ok(mcd_end_probe_answer(e, SUB, 3, &end, &at) == -ENOENT, "sub [3]: no answer");
        rd_kafka_mock_broker_set_up(mc, 2);
        ok(answer_after(e, 3, since, &end, &at) == 0 && end == 0, "its leader up again: sub [3] answered (retried)");

        mcd_end_probe_want(e, SUB, 70000, 0);
        ok(mcd_end_probe_answer(e, SUB, 70000, &end, &at) == -ENOENT, "a partition out of range is ignored");

        mcd_end_probe_free(e);
        mcd_end_probe_free(NULL);
        mcd_end_probe_want(NULL, SUB, 0, 0);
        ok(mcd_end_probe_answer(NULL, SUB, 0, &end, &at) == -ENOENT, "NULL: no answer; free and want accept it");
        mcd_config_clear(&cfg);
        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(mrk);
        return tap_done();
}
