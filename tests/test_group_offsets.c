/* test_group_offsets.c -- the copy of Redis's offsets in the consumer group
 * (group_offsets.c), against librdkafka's mock cluster in this process.
 *
 * Covers: a partition the group holds nothing for reads as nothing; what
 * send_now sends reads back (offsets, commit counter, generation, marks);
 * send_now sends even when an asynchronous flush just sent the same
 * offsets and the group refused them, its answer not yet served (a hole
 * by which a pair could produce before the group knew where its outputs
 * begin); no flush within the interval of the start, send_now aside; the
 * flush's refusal is proved
 * by the answer counted once served, and the refused offsets go again at the
 * next flush; a commit of timers only is sent for its counter; a claim's
 * generation, hurried, goes at the next flush within the interval; a
 * partition the group cannot answer for (one the topic does
 * not have) makes the read fail, not read as nothing.  Then the join guard,
 * with a member that subscribes: from its JoinGroup sent to its SyncGroup
 * answered (the mock cluster's initial rebalance delay, 3 s, between them)
 * no flush sends anything; once it is assigned, flushes send, but none
 * within 200 ms of a Heartbeat answer (which may start a join). */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "daemon/group_offsets.h"
#include "daemon/runtime.h"
#include "tests/tap.h"

#define API_OFFSET_COMMIT 8     /* Kafka protocol ApiKeys (librdkafka's constants are internal) */
#define API_JOIN_GROUP 11
#define API_HEARTBEAT 12
#define API_SYNC_GROUP 14
#define QUIET_MS 200            /* group_offsets.c's */

/* The joining member's state, for its callbacks. */
struct joiner {
        struct mcd_group_offsets *g;
        atomic_int joins;            /* JoinGroup requests sent (broker thread) */
        atomic_int sync_answers;     /* SyncGroup responses received (broker thread) */
        int64_t t0;                  /* mono_ms when the joiner was made: heartbeat times count from it */
        atomic_llong heartbeat_pre;  /* the last Heartbeat answer's time before the guard saw it (broker thread) */
        atomic_llong heartbeat;      /* the last Heartbeat answer, 0 none: its time before the guard saw it
                                      * << 32 | its time after (broker thread) */
        int assigned;                /* assignment callbacks served */
};

/* What the joining member's flushes did. */
struct flushes {
        int joining, joining_sent;   /* from its JoinGroup sent to its SyncGroup answered */
        int quiet, quiet_sent;       /* once assigned, within QUIET_MS of a Heartbeat answer */
        int later_sent;              /* once assigned, otherwise */
};

static void commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *offsets,
                      void *opaque) {
        (void)rk;
        mcd_group_offsets_answer(opaque, err, offsets);
}

static rd_kafka_resp_err_t on_new_pre(rd_kafka_t *rk, const rd_kafka_conf_t *conf, void *opaque, char *errstr,
                                      size_t errstr_size);

/* A consumer's configuration for group `group` at `bootstraps`, watched by
 * g, and by joiner j's first interceptor before g when j is not NULL; then
 * each "key", "value" pair up to a NULL key.  NULL on an error. */
static rd_kafka_conf_t *conf_new(const char *bootstraps, const char *group, struct mcd_group_offsets *g,
                                 struct joiner *j, ...) {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        const char *key, *value;
        char err[256];
        va_list ap;
        int bad;

        bad = rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, err, sizeof(err)) ||
              rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err)) ||
              rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err)) ||
              (j && rd_kafka_conf_interceptor_add_on_new(conf, "test-pre", on_new_pre, j)) ||
              mcd_group_offsets_watch(g, conf) < 0;
        va_start(ap, j);
        while (!bad && (key = va_arg(ap, const char *))) {
                value = va_arg(ap, const char *);
                bad = rd_kafka_conf_set(conf, key, value, err, sizeof(err)) != RD_KAFKA_CONF_OK;
        }
        va_end(ap);
        if (bad) {
                rd_kafka_conf_destroy(conf);
                return NULL;
        }
        return conf;
}

static rd_kafka_t *consumer_new(const char *bootstraps, struct mcd_group_offsets *g) {
        rd_kafka_conf_t *conf = conf_new(bootstraps, "test-group-offsets", g, NULL, "enable.auto.commit", "false", NULL);
        char err[256];

        if (!conf)
                return NULL;
        rd_kafka_conf_set_offset_commit_cb(conf, commit_cb);
        rd_kafka_conf_set_opaque(conf, g);
        return rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
}

/* Reads partition p's copy into *m: the read's return value. */
static int read_one(struct mcd_group_offsets *g, rd_kafka_t *c, int32_t p, struct mcd_group_mark *m) {
        mcd_group_mark_clear(m);
        return mcd_group_offsets_read(g, c, &p, 1, 10000, m);
}

/* Serves the consumer's callbacks until `failed` commits were counted as
 * refused, 5 s at most; the count then. */
static uint64_t wait_refused(struct mcd_group_offsets *g, rd_kafka_t *c, uint64_t failed) {
        uint64_t sent = 0, got = 0;

        for (int i = 0; i < 50; i++) {
                rd_kafka_poll(c, 100);
                mcd_group_offsets_counts(g, &sent, &got);
                if (got >= failed)
                        break;
        }
        return got;
}

static rd_kafka_resp_err_t on_response(rd_kafka_t *rk, int sockfd, const char *broker, int32_t broker_id,
                                       int16_t api, int16_t version, int32_t corr_id, size_t size, int64_t rtt,
                                       rd_kafka_resp_err_t err, void *opaque) {
        struct joiner *j = opaque;

        if (api == API_SYNC_GROUP)
                atomic_fetch_add(&j->sync_answers, 1);
        if (api == API_HEARTBEAT)      /* after group_offsets.c's interceptor, registered before */
                atomic_store(&j->heartbeat, atomic_load(&j->heartbeat_pre) << 32 | (mono_ms() - j->t0));
        return RD_KAFKA_RESP_ERR_NO_ERROR;
}

static rd_kafka_resp_err_t on_response_pre(rd_kafka_t *rk, int sockfd, const char *broker, int32_t broker_id,
                                           int16_t api, int16_t version, int32_t corr_id, size_t size, int64_t rtt,
                                           rd_kafka_resp_err_t err, void *opaque) {
        struct joiner *j = opaque;

        if (api == API_HEARTBEAT)      /* before group_offsets.c's interceptor, registered after */
                atomic_store(&j->heartbeat_pre, mono_ms() - j->t0);
        return RD_KAFKA_RESP_ERR_NO_ERROR;
}

static rd_kafka_resp_err_t on_new_pre(rd_kafka_t *rk, const rd_kafka_conf_t *conf, void *opaque, char *errstr,
                                      size_t errstr_size) {
        return rd_kafka_interceptor_add_on_response_received(rk, "test-pre", on_response_pre, opaque);
}

static rd_kafka_resp_err_t on_request(rd_kafka_t *rk, int sockfd, const char *broker, int32_t broker_id,
                                      int16_t api, int16_t version, int32_t corr_id, size_t size, void *opaque) {
        struct joiner *j = opaque;

        if (api == API_JOIN_GROUP)
                atomic_fetch_add(&j->joins, 1);
        return RD_KAFKA_RESP_ERR_NO_ERROR;
}

static rd_kafka_resp_err_t on_new(rd_kafka_t *rk, const rd_kafka_conf_t *conf, void *opaque, char *errstr,
                                  size_t errstr_size) {
        rd_kafka_resp_err_t err = rd_kafka_interceptor_add_on_request_sent(rk, "test-join", on_request, opaque);

        return err ? err : rd_kafka_interceptor_add_on_response_received(rk, "test-sync", on_response, opaque);
}

/* As tasks.c's, counted. */
static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                         void *opaque) {
        struct joiner *j = opaque;

        if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
                rd_kafka_error_destroy(rd_kafka_incremental_assign(rk, parts));
                j->assigned++;
        } else {
                rd_kafka_error_destroy(rd_kafka_incremental_unassign(rk, parts));
        }
}

/* One flush of offsets noted afresh, once the member is assigned: counted
 * in f as sent within QUIET_MS of a Heartbeat answer or otherwise.  Within:
 * the guard had seen the answer before the flush began (the time after its
 * interceptor, hb_end), and the flush ended (`after`) less than QUIET_MS
 * after the answer reached the guard (the time before its interceptor,
 * hb_start), so it could not have waited the moment out.  A broker thread
 * preempted between the two makes the answer count from hb_start, not
 * later; hb_end in the very millisecond `before` was read may be after the
 * flush's check (seen under load in distcheck: both at the same ms). */
static void flush_assigned(struct joiner *j, rd_kafka_t *c, struct mcd_group_mark *mark, struct flushes *f) {
        int64_t before, after, hb, hb_start, hb_end;
        int sent;

        mark->rel++;
        mark->sub++;
        mcd_group_offsets_note(j->g, 0, mark);
        before = mono_ms() - j->t0;
        sent = mcd_group_offsets_flush(j->g, c, before + j->t0, false) > 0;     /* its interval 0 */
        after = mono_ms() - j->t0;
        hb = atomic_load(&j->heartbeat);
        hb_start = hb >> 32;
        hb_end = hb & 0xffffffff;
        if (hb > 0 && hb_end < before && after - hb_start < QUIET_MS - 10) {
                f->quiet++;
                f->quiet_sent += sent;
        } else {
                f->later_sent += sent;
        }
}

/* A member of group "test-join" subscribed to rel: from its first JoinGroup
 * sent until its first SyncGroup is answered, new offsets noted and flushed
 * every 10 ms, then on until it is assigned (20 s at most), then for 2 s
 * (heartbeats every 300 ms).  -1 on a failure. */
static int join(rd_kafka_mock_cluster_t *mc, struct joiner *j, struct flushes *f) {
        rd_kafka_conf_t *conf = conf_new(rd_kafka_mock_cluster_bootstraps(mc), "test-join", j->g, j,
                                         "partition.assignment.strategy", "cooperative-sticky",
                                         "session.timeout.ms", "6000", "heartbeat.interval.ms", "300", NULL);
        rd_kafka_topic_partition_list_t *topics;
        struct mcd_group_mark mark = {.rel = 1, .sub = 1, .seq = 1, .generation = 1};
        rd_kafka_t *c = NULL;
        char err[256];
        int64_t end = 0;

        if (!conf)
                return -1;
        if (rd_kafka_conf_interceptor_add_on_new(conf, "test-sync", on_new, j)) {
                rd_kafka_conf_destroy(conf);
                return -1;
        }
        rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
        rd_kafka_conf_set_opaque(conf, j);
        if (!(c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err))))
                return -1;
        rd_kafka_poll_set_consumer(c);
        topics = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(topics, "rel", RD_KAFKA_PARTITION_UA);
        rd_kafka_subscribe(c, topics);
        rd_kafka_topic_partition_list_destroy(topics);
        for (int i = 0; i < 2000 && (!end || mono_ms() < end); i++) {
                rd_kafka_message_t *msg = rd_kafka_consumer_poll(c, 10);
                if (msg)
                        rd_kafka_message_destroy(msg);
                if (j->assigned) {
                        end = end ? end : mono_ms() + 2000;
                        flush_assigned(j, c, &mark, f);
                        continue;
                }
                mark.rel++;
                mark.sub++;
                mcd_group_offsets_note(j->g, 0, &mark);
                if (atomic_load(&j->joins) > 0 && atomic_load(&j->sync_answers) == 0) {
                        f->joining_sent += mcd_group_offsets_flush(j->g, c, 0, true) > 0;
                        f->joining++;
                }
        }
        rd_kafka_consumer_close(c);
        if (j->assigned)        /* else librdkafka 2.0 aborts in the destroy (its issue 4312) */
                rd_kafka_destroy(c);
        return 0;
}

int main(void) {
        struct mcd_group_offsets *g = NULL;
        struct mcd_group_mark m = {0};
        const struct mcd_group_mark first = {.rel = 5, .sub = 7, .seq = 3, .generation = 2, .marks = "o=0:10"};
        const struct mcd_group_mark second = {.rel = 6, .sub = 8, .seq = 4, .generation = 3, .marks = "o=0:12"};
        const struct mcd_group_mark timers_only = {.rel = 6, .sub = 8, .seq = 5, .generation = 3, .marks = "o=0:13"};
        const struct mcd_group_mark claimed = {.rel = 6, .sub = 8, .seq = 5, .generation = 4, .marks = "o=0:13"};
        const struct mcd_group_mark claimed_again = {.rel = 6, .sub = 8, .seq = 5, .generation = 5, .marks = "o=0:13"};
        rd_kafka_conf_t *mconf = rd_kafka_conf_new();
        rd_kafka_mock_cluster_t *mc;
        rd_kafka_t *mrk, *c;
        char err[256];
        int r, i;

        rd_kafka_conf_set(mconf, "log_level", "3", err, sizeof(err));  /* no warning of its missing brokers */
        mrk = rd_kafka_new(RD_KAFKA_PRODUCER, mconf, err, sizeof(err));
        mc = mrk ? rd_kafka_mock_cluster_new(mrk, 1) : NULL;
        ok(mc && rd_kafka_mock_topic_create(mc, "rel", 1, 1) == 0 && rd_kafka_mock_topic_create(mc, "sub", 1, 1) == 0,
           "mock cluster with topics rel and sub");
        ok(mcd_group_offsets_new("rel", "sub", 4, 60000, &g) == 0, "group offsets for 4 partitions");
        c = mc && g ? consumer_new(rd_kafka_mock_cluster_bootstraps(mc), g) : NULL;
        ok(c != NULL, "consumer of the group");
        if (!c)
                return 1;

        r = read_one(g, c, 0, &m);
        ok(r == 0 && m.rel == -1 && m.sub == -1 && m.seq == 0 && m.generation == 0 && !m.marks,
           "nothing committed: reads as nothing (r %d, %lld/%lld)", r, (long long)m.rel, (long long)m.sub);

        mcd_group_offsets_note(g, 0, &first);
        ok(mcd_group_offsets_send_now(g, c, 0) == 0, "send_now: the group took the offsets");
        r = read_one(g, c, 0, &m);
        ok(r == 0 && m.rel == 5 && m.sub == 7 && m.seq == 3 && m.generation == 2 && m.marks &&
               strcmp(m.marks, "o=0:10") == 0,
           "read back: offsets 5/7, seq 3, generation 2, marks %s", m.marks ? m.marks : "(none)");

        /* An asynchronous flush of the next offsets, refused by the group;
         * send_now before its answer is served must still send them. */
        mcd_group_offsets_note(g, 0, &second);
        ok(mcd_group_offsets_flush(g, c, mono_ms(), false) == 0,
           "no flush within the interval of the start, send_now aside (nothing sent)");
        rd_kafka_mock_push_request_errors(mc, API_OFFSET_COMMIT, 1, RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS);
        ok(mcd_group_offsets_flush(g, c, 0, true) == 2, "flush sent both sides asynchronously");
        ok(mcd_group_offsets_send_now(g, c, 0) == 0, "send_now right after: the group took the offsets");
        r = read_one(g, c, 0, &m);
        ok(r == 0 && m.rel == 6 && m.sub == 8 && m.seq == 4 && m.generation == 3 && m.marks &&
               strcmp(m.marks, "o=0:12") == 0,
           "read back: offsets %lld/%lld, generation %lld, marks %s (6/8, 3, o=0:12 wanted)", (long long)m.rel,
           (long long)m.sub, (long long)m.generation, m.marks ? m.marks : "(none)");
        ok(wait_refused(g, c, 1) == 1, "the flush was refused by the group (its answer counted)");
        ok(mcd_group_offsets_flush(g, c, 0, true) == 2, "the refused offsets go again at the next flush");
        ok(mcd_group_offsets_flush(g, c, 0, true) == 0, "nothing new since: nothing sent");
        mcd_group_offsets_note(g, 0, &timers_only);
        ok(mcd_group_offsets_flush(g, c, 0, true) == 2,
           "a commit that moved no offset (timers only): both sides sent again, for its counter");
        for (i = 0; i < 50 && (read_one(g, c, 0, &m) < 0 || m.seq != 5); i++)
                rd_kafka_poll(c, 100);         /* the asynchronous commit answered */
        ok(m.rel == 6 && m.sub == 8 && m.seq == 5, "read back: offsets %lld/%lld, seq %lld (6/8, 5 wanted)",
           (long long)m.rel, (long long)m.sub, (long long)m.seq);

        /* A claim's generation (the pair restarted: forgotten, then noted
         * at its claim): hurried, sent by the next flush within the
         * interval (60 s here; a heartbeat's quiet moment waited out). */
        mcd_group_offsets_forget(g, 0);
        mcd_group_offsets_note(g, 0, &claimed);
        ok(mcd_group_offsets_flush(g, c, mono_ms(), true) == 2, "a claim's generation sent: an interval begins");
        mcd_group_offsets_forget(g, 0);
        mcd_group_offsets_note(g, 0, &claimed_again);
        ok(mcd_group_offsets_flush(g, c, mono_ms(), false) == 0, "the next claim's waits for the interval");
        mcd_group_offsets_hurry(g, 0);
        for (i = 0; i < 20 && (r = mcd_group_offsets_flush(g, c, mono_ms(), false)) == 0; i++)
                rd_kafka_poll(c, 50);
        ok(r == 2, "hurried: the next flush sent it within the interval (%d, after %d tries)", r, i);
        for (i = 0; i < 50 && (read_one(g, c, 0, &m) < 0 || m.generation != 5); i++)
                rd_kafka_poll(c, 100);
        ok(m.generation == 5, "read back: generation %lld (5 wanted)", (long long)m.generation);

        /* A partition the group cannot answer for fails the read. */
        r = read_one(g, c, 3, &m);
        ok(r == -EIO, "a partition the topics lack: the read fails (%d)", r);

        mcd_group_mark_clear(&m);
        rd_kafka_destroy(c);
        mcd_group_offsets_free(g);

        /* The join guard. */
        struct joiner j = {.joins = 0, .sync_answers = 0, .t0 = mono_ms(), .heartbeat_pre = 0, .heartbeat = 0};
        struct flushes f = {0};
        ok(mcd_group_offsets_new("rel", "sub", 1, 0, &j.g) == 0, "group offsets for a joining member");
        r = j.g ? join(mc, &j, &f) : -1;
        ok(r == 0 && j.assigned == 1, "the member was assigned");
        ok(f.joining > 100 && f.joining_sent == 0,
           "no flush sent anything from its JoinGroup to its SyncGroup's answer (%d of %d did)", f.joining_sent,
           f.joining);
        ok(f.quiet > 0 && f.quiet_sent == 0,
           "no flush sent anything within %d ms of a Heartbeat answer (%d of %d did)", QUIET_MS, f.quiet_sent,
           f.quiet);
        ok(f.later_sent > 0, "flushes after the assignment, and away from heartbeats, sent (%d)", f.later_sent);
        mcd_group_offsets_free(j.g);
        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(mrk);
        printf("1..%d\n", tap_n);
        return tap_failed ? 1 : 0;
}
