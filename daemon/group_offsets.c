/* group_offsets.c -- Redis's input offsets copied to the consumer group, for
 * lag monitors (group_offsets.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/group_offsets.h"
#include "daemon/log.h"
#include "daemon/runtime.h"

enum { REL = 0, SUB = 1 };

/* Kafka protocol ApiKeys (librdkafka's constants are internal). */
#define API_JOIN_GROUP 11
#define API_HEARTBEAT 12
#define API_SYNC_GROUP 14

/* How long after a Heartbeat or SyncGroup answer nothing is sent: either may
 * say the group is rebalancing (its error code, which an interceptor does
 * not see), and librdkafka's main thread then sends a JoinGroup, which a
 * commit queued meanwhile would follow on the coordinator's connection. */
#define QUIET_MS 200

/* Owned by the worker thread, as every call is; but `joining`. */
struct mcd_group_offsets {
        atomic_bool joining;         /* the member's JoinGroup sent, its SyncGroup not yet answered:
                                      * written by librdkafka's broker threads (interceptors) */
        atomic_llong joined_ms;      /* monotonic ms of the last JoinGroup sent (interceptor) */
        atomic_llong synced_ms;      /* monotonic ms of the last SyncGroup answered (interceptor) */
        atomic_llong quiet_until;    /* monotonic ms before which nothing is sent (interceptor) */
        atomic_llong answered_ms;    /* monotonic ms of the last Heartbeat or SyncGroup answer (interceptor) */
        char *topic[2];              /* relationships, subscriptions */
        int32_t n;                   /* partitions of each */
        int64_t *held[2];            /* per partition: next offset Redis holds, -1 none or not owned */
        int64_t *sent[2];            /* per partition: what was last sent, -1 nothing (or refused) */
        int64_t *seq, *gen;          /* per partition: commit counter and generation of what is held */
        int64_t *sent_seq;           /* per partition: the counter last sent (a commit of timers only moves
                                      * no offset, but its counter must reach the group all the same) */
        char **marks;                /* per partition: its marks, NULL none */
        bool *hurried;               /* per partition: sent at the next flush, the interval or not */
        int n_hurried;               /* how many are */
        int interval_ms;
        int64_t next_send;           /* monotonic ms before which nothing is sent (but with `now`) */
        uint64_t n_sent, n_failed;   /* commits */
        bool failing;                /* the last answer was a refusal (logged at info once) */
};

int mcd_group_offsets_new(const char *rel_topic, const char *sub_topic, int32_t n_partitions, int interval_ms,
                          struct mcd_group_offsets **out) {
        struct mcd_group_offsets *g = calloc(1, sizeof(*g));
        size_t n = n_partitions > 0 ? (size_t)n_partitions : 0;

        if (!g)
                return -ENOMEM;
        atomic_init(&g->joining, false);
        atomic_init(&g->joined_ms, 0);
        atomic_init(&g->synced_ms, 0);
        atomic_init(&g->quiet_until, 0);
        atomic_init(&g->answered_ms, 0);
        g->n = (int32_t)n;
        g->interval_ms = interval_ms;
        g->next_send = mono_ms() + interval_ms;        /* the first flush an interval after the start */
        g->topic[REL] = strdup(rel_topic);
        g->topic[SUB] = strdup(sub_topic);
        for (int t = REL; t <= SUB; t++) {
                g->held[t] = malloc((n + 1) * sizeof(int64_t));
                g->sent[t] = malloc((n + 1) * sizeof(int64_t));
                if (!g->topic[t] || !g->held[t] || !g->sent[t]) {
                        mcd_group_offsets_free(g);
                        return -ENOMEM;
                }
                for (size_t p = 0; p < n; p++)
                        g->held[t][p] = g->sent[t][p] = -1;
        }
        g->seq = calloc(n + 1, sizeof(int64_t));
        g->gen = calloc(n + 1, sizeof(int64_t));
        g->sent_seq = calloc(n + 1, sizeof(int64_t));
        g->marks = calloc(n + 1, sizeof(char *));
        g->hurried = calloc(n + 1, sizeof(bool));
        if (!g->seq || !g->gen || !g->sent_seq || !g->marks || !g->hurried) {
                mcd_group_offsets_free(g);
                return -ENOMEM;
        }
        *out = g;
        return 0;
}

void mcd_group_offsets_free(struct mcd_group_offsets *g) {
        if (!g)
                return;
        for (int t = REL; t <= SUB; t++) {
                free(g->topic[t]);
                free(g->held[t]);
                free(g->sent[t]);
        }
        for (int32_t p = 0; g->marks && p < g->n; p++)
                free(g->marks[p]);
        free(g->marks);
        free(g->seq);
        free(g->gen);
        free(g->sent_seq);
        free(g->hurried);
        free(g);
}

void mcd_group_offsets_note(struct mcd_group_offsets *g, int32_t partition, const struct mcd_group_mark *m) {
        if (!g || partition < 0 || partition >= g->n)
                return;
        g->held[REL][partition] = m->rel >= 0 ? m->rel : -1;
        g->held[SUB][partition] = m->sub >= 0 ? m->sub : -1;
        g->seq[partition] = m->seq;
        g->gen[partition] = m->generation;
        if (!g->marks[partition] || !m->marks || strcmp(g->marks[partition], m->marks) != 0) {
                free(g->marks[partition]);
                g->marks[partition] = m->marks ? strdup(m->marks) : NULL;    /* none, if out of memory */
        }
}

void mcd_group_mark_clear(struct mcd_group_mark *m) {
        if (!m)
                return;
        free(m->marks);
        m->marks = NULL;
}

void mcd_group_offsets_set_interval(struct mcd_group_offsets *g, int interval_ms) {
        if (g)
                g->interval_ms = interval_ms;
}

/* Whether side t of partition p is to be sent: held and, unless `again`,
 * not sent yet or sent with an older counter. */
static bool side_due(const struct mcd_group_offsets *g, int t, int32_t p, bool again) {
        return g->held[t][p] >= 0 && (again || g->held[t][p] != g->sent[t][p] || g->seq[p] != g->sent_seq[p]);
}

/* Whether the partition has something to send. */
static bool partition_due(const struct mcd_group_offsets *g, int32_t p) {
        for (int t = REL; t <= SUB; t++)
                if (side_due(g, t, p, false))
                        return true;
        return false;
}

static void set_hurried(struct mcd_group_offsets *g, int32_t p, bool on) {
        if (g->hurried[p] != on)
                g->n_hurried += on ? 1 : -1;
        g->hurried[p] = on;
}

void mcd_group_offsets_hurry(struct mcd_group_offsets *g, int32_t partition) {
        if (g && partition >= 0 && partition < g->n && partition_due(g, partition))
                set_hurried(g, partition, true);
}

void mcd_group_offsets_forget(struct mcd_group_offsets *g, int32_t partition) {
        if (!g || partition < 0 || partition >= g->n)
                return;
        for (int t = REL; t <= SUB; t++)
                g->held[t][partition] = g->sent[t][partition] = -1;
        set_hurried(g, partition, false);
}

/* The member's requests, from its broker thread: a join in progress, from
 * its JoinGroup sent to its SyncGroup answered.  When the SyncGroup fails,
 * librdkafka sends a JoinGroup again; until then a commit carries the
 * generation the coordinator has, whose next one needs that JoinGroup. */
static rd_kafka_resp_err_t on_request_sent(rd_kafka_t *rk, int sockfd, const char *broker, int32_t broker_id,
                                           int16_t api, int16_t version, int32_t corr_id, size_t size, void *opaque) {
        struct mcd_group_offsets *g = opaque;

        if (api == API_JOIN_GROUP) {
                atomic_store(&g->joined_ms, mono_ms());
                atomic_store(&g->joining, true);
        }
        return RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* An answer that may start a join (QUIET_MS): its JoinGroup goes out from
 * librdkafka's main thread moments later, and a commit sent between would
 * follow it to the coordinator, under the generation that join replaces. */
static rd_kafka_resp_err_t on_response_received(rd_kafka_t *rk, int sockfd, const char *broker, int32_t broker_id,
                                                int16_t api, int16_t version, int32_t corr_id, size_t size,
                                                int64_t rtt, rd_kafka_resp_err_t err, void *opaque) {
        struct mcd_group_offsets *g = opaque;

        if (api == API_HEARTBEAT || api == API_SYNC_GROUP) {
                atomic_store(&g->answered_ms, mono_ms());
                atomic_store(&g->quiet_until, mono_ms() + QUIET_MS);
        }
        if (api == API_SYNC_GROUP) {
                atomic_store(&g->synced_ms, mono_ms());
                atomic_store(&g->joining, false);
        }
        return RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* Whether a commit now could cross a join: the member joining, or an answer
 * that may start one just in. */
static bool held_back(const struct mcd_group_offsets *g) {
        return atomic_load(&g->joining) || mono_ms() < (int64_t)atomic_load(&g->quiet_until);
}

bool mcd_group_offsets_member_current(const struct mcd_group_offsets *g, int64_t session_ms, bool settled,
                                      int64_t *silent_ms) {
        *silent_ms = 0;
        if (!g)
                return true;
        *silent_ms = mono_ms() - (int64_t)atomic_load(&g->answered_ms);
        return *silent_ms < session_ms && !(settled && held_back(g));
}

/* For a commit waited for anyway: the quiet moment after an answer is slept
 * out (a retry instead could fall into the same moment of the heartbeat's
 * period each time).  False while the member is joining. */
static bool wait_quiet(const struct mcd_group_offsets *g) {
        for (int i = 0; i < 5 && !atomic_load(&g->joining); i++) {
                int64_t left = (int64_t)atomic_load(&g->quiet_until) - mono_ms();
                if (left <= 0)
                        return true;
                nanosleep(&(struct timespec){.tv_sec = left / 1000, .tv_nsec = left % 1000 * 1000000}, NULL);
        }
        return !held_back(g);
}

static rd_kafka_resp_err_t on_new(rd_kafka_t *rk, const rd_kafka_conf_t *conf, void *opaque, char *errstr,
                                  size_t errstr_size) {
        rd_kafka_resp_err_t err = rd_kafka_interceptor_add_on_request_sent(rk, "mcd-group-offsets", on_request_sent,
                                                                           opaque);

        if (!err)
                err = rd_kafka_interceptor_add_on_response_received(rk, "mcd-group-offsets", on_response_received,
                                                                    opaque);
        if (err)
                snprintf(errstr, errstr_size, "cannot watch the group member's requests: %s", rd_kafka_err2str(err));
        return err;
}

int mcd_group_offsets_watch(struct mcd_group_offsets *g, rd_kafka_conf_t *conf) {
        return rd_kafka_conf_interceptor_add_on_new(conf, "mcd-group-offsets", on_new, g) ? -EINVAL : 0;
}

/* The metadata an offset carries: the pair's commit counter, generation and
 * marks (left out when they would make it longer than MCD_GROUP_MARK_MAX).
 * 0 or -ENOMEM. */
static int set_metadata(rd_kafka_topic_partition_t *tp, int64_t seq, int64_t gen, const char *marks) {
        char *buf = NULL;
        int n = -1;

        if (marks && strlen(marks) < MCD_GROUP_MARK_MAX - 96)
                n = asprintf(&buf, MCD_GROUP_MARK_PREFIX "seq=%" PRId64 " gen=%" PRId64 " marks=%s", seq, gen, marks);
        else
                n = asprintf(&buf, MCD_GROUP_MARK_PREFIX "seq=%" PRId64 " gen=%" PRId64, seq, gen);
        if (n < 0)
                return -ENOMEM;
        tp->metadata = buf;     /* freed with the list */
        tp->metadata_size = (size_t)n;
        return 0;
}

/* An offset the group did not take is sent again at the next flush, unless
 * the partition was forgotten or noted afresh since. */
static void send_again(struct mcd_group_offsets *g, const rd_kafka_topic_partition_t *tp) {
        for (int t = REL; t <= SUB; t++)
                if (strcmp(tp->topic, g->topic[t]) == 0 && tp->partition >= 0 && tp->partition < g->n &&
                    g->sent[t][tp->partition] == tp->offset)
                        g->sent[t][tp->partition] = -1;
}

/* Adds the partition's held offsets to *l (made on first use), marked
 * sent; those already sent, with the counter already sent, only if `again`.
 * 0 or -ENOMEM (the offsets then stay unsent). */
static int take_partition(struct mcd_group_offsets *g, int32_t p, bool again, rd_kafka_topic_partition_list_t **l) {
        for (int t = REL; t <= SUB; t++) {
                rd_kafka_topic_partition_t *tp;
                if (!side_due(g, t, p, again))
                        continue;
                if (!*l && !(*l = rd_kafka_topic_partition_list_new(2 * g->n)))
                        return -ENOMEM;
                tp = rd_kafka_topic_partition_list_add(*l, g->topic[t], p);
                tp->offset = g->held[t][p];
                if (set_metadata(tp, g->seq[p], g->gen[p], g->marks[p]) < 0)
                        return -ENOMEM;
                g->sent[t][p] = g->held[t][p];
        }
        g->sent_seq[p] = g->seq[p];
        set_hurried(g, p, false);
        return 0;
}

/* A list not sent, or refused: its offsets go at the next flush.  Destroys
 * l; NULL is fine. */
static void put_back(struct mcd_group_offsets *g, rd_kafka_topic_partition_list_t *l) {
        for (int i = 0; l && i < l->cnt; i++)
                send_again(g, &l->elems[i]);
        if (l)
                rd_kafka_topic_partition_list_destroy(l);
}

/* The offsets held and not yet sent, marked sent; NULL when there are none. */
static rd_kafka_topic_partition_list_t *take_due(struct mcd_group_offsets *g) {
        rd_kafka_topic_partition_list_t *l = NULL;

        for (int32_t p = 0; p < g->n; p++)
                if (take_partition(g, p, false, &l) < 0) {
                        put_back(g, l);
                        return NULL;
                }
        return l;
}

/* Monitoring, not correctness: a failure is logged at info when commits
 * start failing, then at debug until they succeed again; one a rebalance
 * causes only at debug.  A commit that crossed the group's move to a new
 * generation is logged at info each time: with the join guard it means the
 * member was left behind (a stall past its session), or that the guard
 * failed, and librdkafka before 2.10 takes the assignment for lost. */
static void refused(struct mcd_group_offsets *g, rd_kafka_resp_err_t err, int n) {
        g->n_failed++;
        if (err == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION) {
                int64_t now = mono_ms();
                log_info("consumer group: a commit of %d offset(s) crossed the group's move to a new generation "
                         "(librdkafka %s then takes the assignment for lost); the member's last JoinGroup went "
                         "%" PRId64 " ms ago, its last SyncGroup was answered %" PRId64 " ms ago",
                         n, rd_kafka_version_str(), now - (int64_t)atomic_load(&g->joined_ms),
                         now - (int64_t)atomic_load(&g->synced_ms));
        } else if (g->failing || err == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS) {
                log_debug("consumer group: a commit of %d offset(s) failed: %s", n, rd_kafka_err2str(err));
        } else {
                g->failing = true;
                log_info("consumer group: committing %d offset(s) failed: %s; lag monitors show older offsets "
                         "until a commit succeeds (the daemon resumes from Redis's, unaffected)", n,
                         rd_kafka_err2str(err));
        }
}

int mcd_group_offsets_flush(struct mcd_group_offsets *g, rd_kafka_t *consumer, int64_t mono_ms, bool now) {
        rd_kafka_topic_partition_list_t *l;
        rd_kafka_resp_err_t err;
        int n;

        if (!g || !consumer || (!now && ((mono_ms < g->next_send && g->n_hurried == 0) || held_back(g))) ||
            atomic_load(&g->joining) || !(l = take_due(g)))
                return 0;
        if (!now && held_back(g)) {     /* checked again last thing: the list's making took time */
                put_back(g, l);
                return 0;
        }
        n = l->cnt;
        g->next_send = mono_ms + g->interval_ms;
        g->n_sent++;
        err = rd_kafka_commit(consumer, l, 1 /* async: the answer comes to the offset_commit_cb */);
        if (err) {
                refused(g, err, n);
                put_back(g, l);
                return -EAGAIN;
        }
        rd_kafka_topic_partition_list_destroy(l);
        return n;
}

int mcd_group_offsets_send_now(struct mcd_group_offsets *g, rd_kafka_t *consumer, int32_t partition) {
        rd_kafka_topic_partition_list_t *l = NULL;
        rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
        int r;

        if (!g || !consumer || partition < 0 || partition >= g->n)
                return 0;
        if (!wait_quiet(g))
                return -EAGAIN;
        /* Sent even when a flush sent the same: its answer, not waited for,
         * may be a refusal still to come. */
        r = take_partition(g, partition, true, &l);
        if (r >= 0 && l) {
                g->n_sent++;
                err = rd_kafka_commit(consumer, l, 0 /* sync: the answer is waited for */);
                for (int i = 0; !err && i < l->cnt; i++)
                        err = l->elems[i].err;
        }
        if (l && err)
                refused(g, err, l->cnt);
        if (r < 0 || err)
                put_back(g, l);
        else if (l)
                rd_kafka_topic_partition_list_destroy(l);
        return r < 0 ? r : err ? -EIO : 0;
}

void mcd_group_offsets_answer(struct mcd_group_offsets *g, rd_kafka_resp_err_t err,
                              const rd_kafka_topic_partition_list_t *offsets) {
        rd_kafka_resp_err_t first = err;
        int n_refused = 0;

        for (int i = 0; offsets && i < offsets->cnt; i++) {
                if (!err && !offsets->elems[i].err)
                        continue;
                if (!first)
                        first = offsets->elems[i].err;
                send_again(g, &offsets->elems[i]);
                n_refused++;
        }
        if (first) {
                refused(g, first, n_refused);
        } else if (g->failing) {
                g->failing = false;
                log_info("consumer group: commits succeed again");
        }
}

/* Parses "multichanneld/1 seq=N gen=G[ marks=M]" into *m (kept at its maximum):
 * metadata of any other form (another tool's commit) says nothing. */
static void parse_metadata(const rd_kafka_topic_partition_t *tp, struct mcd_group_mark *m) {
        char buf[MCD_GROUP_MARK_MAX + 1];
        const char *marks;
        long long seq, gen;

        if (!tp->metadata || tp->metadata_size >= sizeof(buf) || tp->err)
                return;
        memcpy(buf, tp->metadata, tp->metadata_size);
        buf[tp->metadata_size] = '\0';
        if (sscanf(buf, MCD_GROUP_MARK_PREFIX "seq=%lld gen=%lld", &seq, &gen) != 2)
                return;
        m->seq = seq > m->seq ? seq : m->seq;
        m->generation = gen > m->generation ? gen : m->generation;
        if ((marks = strstr(buf, " marks=")) && !m->marks)
                m->marks = strdup(marks + 7);   /* none, if out of memory: a lookup from the start */
}

int mcd_group_offsets_read(const struct mcd_group_offsets *g, rd_kafka_t *consumer, const int32_t *partitions,
                           size_t n, int timeout_ms, struct mcd_group_mark *out) {
        rd_kafka_topic_partition_list_t *l;
        rd_kafka_resp_err_t err;

        for (size_t i = 0; i < n; i++)
                out[i] = (struct mcd_group_mark){.rel = -1, .sub = -1};
        if (n == 0)
                return 0;
        if (!(l = rd_kafka_topic_partition_list_new((int)(2 * n))))
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                for (int t = REL; t <= SUB; t++)
                        rd_kafka_topic_partition_list_add(l, g->topic[t], partitions[i])->opaque = &out[i];
        err = rd_kafka_committed(consumer, l, timeout_ms);
        for (int i = 0; !err && i < l->cnt; i++)        /* one partition unread: the copy is not known */
                err = l->elems[i].err;
        for (int i = 0; !err && i < l->cnt; i++) {
                const rd_kafka_topic_partition_t *tp = &l->elems[i];
                struct mcd_group_mark *m = tp->opaque;
                parse_metadata(tp, m);
                if (tp->offset >= 0)
                        *(strcmp(tp->topic, g->topic[REL]) == 0 ? &m->rel : &m->sub) = tp->offset;
        }
        rd_kafka_topic_partition_list_destroy(l);
        if (err) {
                log_warning("consumer group: cannot read the committed offsets of %zu partition(s): %s", n,
                            rd_kafka_err2str(err));
                return err == RD_KAFKA_RESP_ERR__TIMED_OUT ? -ETIMEDOUT : -EIO;
        }
        return 0;
}

bool mcd_group_offsets_joining(const struct mcd_group_offsets *g) {
        return g && atomic_load(&g->joining);
}

void mcd_group_offsets_counts(const struct mcd_group_offsets *g, uint64_t *sent, uint64_t *failed) {
        *sent = g ? g->n_sent : 0;
        *failed = g ? g->n_failed : 0;
}
