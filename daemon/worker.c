/* worker.c -- `multichanneld run`: consume, apply, commit, publish.
 *
 * One thread, one loop:
 *   1. poll both input topics into per-partition queues;
 *   2. merge each co-partitioned pair in message-timestamp order (a
 *      relationship first on a tie), waiting up to merge_wait for an empty
 *      side (CONTRACT.md "Order across the two topics");
 *   3. load the batch's customers from Redis in one round trip, apply the
 *      rules (timers due first), encode outcomes and dead letters as outbox
 *      frames;
 *   4. commit states, due times, next offsets and the frames in one atomic
 *      Redis script, fenced by each partition's owner generation;
 *   5. produce the frames (idempotent producer), trim them from the outbox
 *      once delivered, and append the customers' states to the changelog.
 * A crash anywhere leaves Redis at the last commit: on restart the partition
 * seeks to the stored offsets and the outbox is reconciled against the tail
 * of the output topics (frame ids are deterministic) before anything new.
 *
 * Co-partitioning: the group subscribes to the relationships topic (the
 * cooperative-sticky assignor balances it); the subscriptions partition with
 * the same number follows its owner through a second, assign()-only handle,
 * as Kafka Streams co-partitions a join. */
#include <errno.h>
#include <signal.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <systemd/sd-daemon.h>

#include "daemon/avro_codec.h"
#include "daemon/group_offsets.h"
#include "daemon/kafka.h"
#include "daemon/log.h"
#include "daemon/metrics.h"
#include "daemon/outbox.h"
#include "daemon/parallel.h"
#include "daemon/startup.h"
#include "daemon/state_codec.h"
#include "daemon/store.h"
#include "daemon/strmap.h"
#include "daemon/worker.h"
#include "handlers/rules.h"

enum { REL = 0, SUB = 1 };
enum { OUT_OUTCOMES = 0, OUT_DLQ = 1 };

#define CHANGELOG_OFFSETS_KEY "__offsets__:"
/* A customer's changelog record is binary (state_codec.h); earlier versions
 * wrote {"partition":N,"state":{...}}, whose N rebuilds read off the front
 * (record_partition). */
#define CHANGELOG_STATE_FRONT "{\"partition\":"

/* A buffered input message: a copy of what the daemon uses of it.  Holding
 * the rd_kafka_message_t instead would pin the whole fetch response it came
 * in, and a few messages held per partition would pin megabytes. */
struct inmsg {
        int64_t offset;
        int64_t timestamp;           /* Kafka timestamp, ms */
        int64_t arrived;             /* monotonic ms when buffered */
        int32_t partition;
        size_t key_len, len;
        const char *key;             /* into data; NULL when the message has none */
        const char *payload;         /* into data; NULL when the message has none */
        char data[];
};

struct msgq {
        struct inmsg **v;
        size_t head, tail, cap;
};

enum pair_phase { PAIR_INIT, PAIR_RECONCILE, PAIR_READY, PAIR_FENCED };

struct pair {
        int32_t partition;
        enum pair_phase phase;
        int64_t generation;
        struct msgq q[2];
        int64_t expect[2];           /* next offset expected from Kafka, -1 any */
        struct mcd_offsets committed;/* next offsets, as stored in Redis */
        struct mcd_offsets next;     /* after the last message taken into the batch */
        mcd_time_t stream_time;      /* latest occurred_at applied: the rules' clock for input */
        int64_t last_arrival;        /* monotonic ms of the last message buffered */
        bool at_end[2];              /* the side reached its partition's end (PARTITION_EOF) */
        int64_t end_pos[2];          /* where that end was: the fetch position, past transaction markers */
        bool heard[2];               /* a message or the end came since the pair became ready: the
                                      * handle's high watermark is not an earlier ownership's */
        int64_t wait_logged;         /* monotonic ms a long wait for one side was last logged, 0 none */
        int64_t wait_since;          /* monotonic ms that wait began */
        int wait_for;                /* the side waited for */
        bool side_paused[2];         /* paused for backpressure */
        size_t untrimmed;            /* delivered frames still at the outbox head */
        uint64_t incarnation;        /* distinct each time the pair becomes ready */
        bool sub_assigned;           /* the subscriptions side is in sub_reader's assignment */
        /* A restart dropped frames of this batch unsent: the changelog
         * records of the partition from it on wait.  If Redis still holds
         * the outbox, the frames are reconciled and the records go out; if
         * Redis lost it, the rebuild drops them.  UINT64_MAX: none held. */
        uint64_t clog_hold;
        bool clog_failed;            /* a changelog append failed: no more commits (changelog_failed) */
        int64_t seq;                 /* its commit counter (P off:<p> seq) as this owner left it */
        int64_t seq_floor;           /* the highest counter known committed: the group's at the claim */
        bool group_read;             /* the group's copy read for the next claim (read_group_marks) */
        int64_t group_generation;    /* the generation it names, 0 none */
        char *origin_marks;          /* where the partition's outputs begin on the output topics: the
                                      * group's copy's marks, or ours at a start from nothing; NULL none */
        bool rolled_back;            /* Redis was found older than our commits: rollback_redo at init */
        bool redo;                   /* rebuilt, re-processed up to redo_until: see redo_check */
        struct mcd_offsets redo_until;
        char *redo_marks;            /* where the lookup starts; the pair's marks while redo */
};

/* A frame owed to Kafka: committed to the outbox, not yet known delivered. */
struct pending {
        void *buf;                   /* encoded frame (outbox form) */
        size_t len;
        int32_t partition;           /* input partition whose outbox holds it */
        uint64_t batch;              /* the batch that committed it */
        int status;                  /* 0 in flight or not sent, 1 delivered, <0 failed */
        bool sent;
};

/* A changelog record waiting for its batch's frames to be delivered: the
 * changelog must never be ahead of what the output topics hold, or a Redis
 * rebuilt from it would skip outputs that were never published. */
struct clog {
        uint64_t batch;
        int32_t partition;           /* the input partition the record belongs to */
        char *key;
        char *value;
        size_t value_len;
};

struct batch;

struct worker {
        struct mcd_config *cfg;
        struct mcd_worker_signals *sig;
        rd_kafka_t *consumer;        /* group member, relationships topic */
        rd_kafka_t *sub_reader;      /* assign()-only, subscriptions topic */
        rd_kafka_t *producer;
        struct mcd_group_offsets *group_offsets; /* Redis's offsets copied to the group, for lag monitors */
        struct mcd_avro *avro;
        struct mcd_store *store;
        struct mcd_par *par;         /* batch.threads: decode, parse and write the customers' state */
        struct mcd_avro **decoders;  /* one per batch thread; [0] is avro */
        struct mcd_avro_dir *schemas; /* schemas.dir's writer schemas, known to every codec */
        struct mcd_rules_config rules;

        struct pair **pairs;
        size_t n_pairs;
        size_t next_pair;            /* where the next batch starts taking messages */
        int n_input_partitions;

        int n_out_parts[2];          /* outcomes, dlq */
        int64_t *known_end[2];       /* lower bounds for frames produced from now on */
        struct mcd_strmap published; /* ids found on the output topics by reconciliation */

        struct pending **pending;    /* in commit order */
        size_t n_pending, cap_pending;
        struct clog *clog;           /* changelog records waiting for delivery, in batch order */
        size_t n_clog, cap_clog;
        char **changelog_keys;       /* customers to append to the changelog once delivered */

        bool redis_ok;
        int64_t redis_retry_at;
        int redis_backoff;
        int64_t next_due_scan;
        int64_t next_status;
        int64_t status_mono, status_events;
        struct mcd_stats st;
        struct mcd_metrics *metrics;
        uint64_t store_conns;        /* mcd_store_connections when last checked (rollback_watch) */
        uint64_t fault_stop_before_commit, fault_stop_before_publish, fault_stop_before_changelog;
        int64_t last_batch_us;
        double state_per_customer;   /* bytes of a customer's state, averaged over the last batches */
        /* A batch whose commit was sent but not answered (Redis lost): its
         * counts are taken back until Redis, answering again, tells by one
         * of its pairs' stored offsets whether the commit was applied. */
        struct {
                bool set;
                int32_t partition;
                struct mcd_offsets next;
                struct mcd_stats counted;
        } unsure;
        uint64_t pairs_epoch;        /* bumped whenever a pair is added, removed or changes phase */
        bool publish_stuck;          /* a batch found the last one's outputs undelivered */
        struct batch *ahead;         /* the next batch, collected and loaded with the last commit */
        struct batch *spent;         /* the last batch, committed: freed while Redis runs the next commit */
        uint64_t verified_batch;     /* the last batch committed, its generations checked by the script */
        int64_t verified_at;         /* monotonic ms when that commit was sent */
        uint64_t watchdog_usec;      /* systemd's WatchdogSec, 0 when off */
        int64_t next_watchdog;       /* monotonic us of the next keep-alive */
        bool group_synced;           /* an assignment (maybe empty) came from the group: see consumer_destroy */
};

/* The commit script checks every generation atomically.  Frames produced
 * within this time of sending that commit need no second check: it would
 * ask Redis the same question a moment later.  A stall past it (SIGSTOP, a
 * swapped-out process, a Kafka outage holding the frames back) asks again.
 * The price: a new owner that claims the partition within this time of the
 * commit races the produce, where the check would narrow that to one round
 * trip; only a broker's own fencing closes it. */
#define FENCE_LEASE_MS 100

/* How often, at most, the offsets Redis holds are copied to the consumer
 * group for lag monitors: not after every batch, which would cost the group
 * coordinator a write per batch (group_offsets.h). */
#define GROUP_OFFSETS_INTERVAL_MS 1000

/* ------------------------------------------------------------ utilities -- */

static int64_t mono_us(void);

/* Tells systemd's watchdog the daemon is alive, at half its period: from
 * the main loop, and from the long loops that make progress without it (a
 * rebuild reading the whole changelog). */
static void watchdog_kick(struct worker *w) {
        if (w->watchdog_usec && mono_us() >= w->next_watchdog) {
                sd_notify(0, "WATCHDOG=1");
                w->next_watchdog = mono_us() + (int64_t)w->watchdog_usec / 2;
        }
}

/* Fault injection for the tests of fencing and of Redis losses
 * (tests/daemon_zombie.sh, tests/daemon_redis_loss.sh): with
 * MCD_FAULT_STOP_BEFORE_COMMIT=N (or ..._PUBLISH=N, ..._CHANGELOG=N) in the
 * environment, the process stops itself (SIGSTOP) just before the Nth batch's
 * commit (or publish, or the changelog append that follows the delivery of
 * its outputs), as a stalled zombie would.  Unset in production: no effect. */
static uint64_t fault_env(const char *name) {
        const char *v = getenv(name);
        return v ? strtoull(v, NULL, 10) : 0;
}

static void fault_point(uint64_t at, uint64_t batch, const char *what) {
        if (at == 0 || batch != at)
                return;
        log_warning("fault injection: stopping before the %s of batch %" PRIu64, what, batch);
        raise(SIGSTOP);
        log_warning("fault injection: continued");
}

static int64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static bool redis_unreachable(int r) {
        return r == -ECONNREFUSED || r == -EIO || r == -ETIMEDOUT || r == -ECONNRESET || r == -EPIPE ||
               r == -ENOTCONN || r == -EHOSTUNREACH;
}

static const char *topic_of(const struct worker *w, int t) {
        return t == REL ? w->cfg->topic_relationships : w->cfg->topic_subscriptions;
}

/* ----------------------------------------------------------------- queues -- */

static size_t q_len(const struct msgq *q) {
        return q->tail - q->head;
}

static struct inmsg *inmsg_copy(const rd_kafka_message_t *m, int64_t arrived) {
        struct inmsg *c = malloc(sizeof(*c) + m->key_len + m->len);

        if (!c)
                return NULL;
        c->offset = m->offset;
        c->timestamp = rd_kafka_message_timestamp(m, NULL);
        c->arrived = arrived;
        c->partition = m->partition;
        c->key_len = m->key ? m->key_len : 0;
        c->len = m->payload ? m->len : 0;
        c->key = m->key ? memcpy(c->data, m->key, c->key_len) : NULL;
        c->payload = m->payload ? memcpy(c->data + c->key_len, m->payload, c->len) : NULL;
        return c;
}

static int q_push(struct msgq *q, struct inmsg *m) {
        if (q->head > 0 && q->tail == q->cap) {
                memmove(q->v, q->v + q->head, q_len(q) * sizeof(*q->v));
                q->tail -= q->head;
                q->head = 0;
        }
        if (q->tail == q->cap) {
                size_t cap = q->cap ? q->cap * 2 : 256;
                struct inmsg **v = realloc(q->v, cap * sizeof(*v));
                if (!v)
                        return -ENOMEM;
                q->v = v;
                q->cap = cap;
        }
        q->v[q->tail++] = m;
        return 0;
}

static void q_clear(struct msgq *q) {
        for (size_t i = q->head; i < q->tail; i++)
                free(q->v[i]);
        q->head = q->tail = 0;
}

static void q_free(struct msgq *q) {
        q_clear(q);
        free(q->v);
}

/* ------------------------------------------------------------------ pairs -- */

static struct pair *pair_find(struct worker *w, int32_t partition) {
        for (size_t i = 0; i < w->n_pairs; i++)
                if (w->pairs[i]->partition == partition)
                        return w->pairs[i];
        return NULL;
}

static struct pair *pair_add(struct worker *w, int32_t partition) {
        struct pair *p = pair_find(w, partition), **v;

        if (p)
                return p;
        v = realloc(w->pairs, (w->n_pairs + 1) * sizeof(*v));
        if (!v)
                return NULL;
        w->pairs = v;
        p = calloc(1, sizeof(*p));
        if (!p)
                return NULL;
        p->partition = partition;
        p->phase = PAIR_INIT;
        p->expect[REL] = p->expect[SUB] = -1;
        p->stream_time = INT64_MIN;
        p->clog_hold = UINT64_MAX;
        w->pairs[w->n_pairs++] = p;
        w->pairs_epoch++;
        return p;
}

static void sub_stop(struct worker *w, struct pair *p);

static void redo_forget(struct pair *p);

static void pair_remove(struct worker *w, int32_t partition) {
        for (size_t i = 0; i < w->n_pairs; i++)
                if (w->pairs[i]->partition == partition) {
                        mcd_group_offsets_forget(w->group_offsets, partition);
                        sub_stop(w, w->pairs[i]);
                        redo_forget(w->pairs[i]);
                        free(w->pairs[i]->origin_marks);
                        q_free(&w->pairs[i]->q[REL]);
                        q_free(&w->pairs[i]->q[SUB]);
                        free(w->pairs[i]);
                        w->pairs[i] = w->pairs[--w->n_pairs];
                        w->pairs_epoch++;
                        return;
                }
}

static void set_side_paused(struct worker *w, struct pair *p, int t, bool paused);

enum side_op { SIDE_SEEK, SIDE_ASSIGN, SIDE_UNASSIGN };

/* One side of a pair on its handle: sought to `offset`, added to the
 * handle's assignment there, or removed from it.  Logs, and returns -EAGAIN,
 * when librdkafka refuses. */
static int side_op(struct worker *w, const struct pair *p, int t, enum side_op op, int64_t offset) {
        static const char *const what[] = {"seek", "assign", "unassign"};
        rd_kafka_t *rk = t == REL ? w->consumer : w->sub_reader;
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_error_t *e;

        rd_kafka_topic_partition_list_add(l, topic_of(w, t), p->partition)->offset = offset;
        if (op == SIDE_SEEK)
                e = rd_kafka_seek_partitions(rk, l, 5000);
        else if (op == SIDE_ASSIGN)
                e = rd_kafka_incremental_assign(rk, l);
        else
                e = rd_kafka_incremental_unassign(rk, l);
        rd_kafka_topic_partition_list_destroy(l);
        if (!e)
                return 0;
        log_warning("partition %" PRId32 ": cannot %s %s: %s", p->partition, what[op], topic_of(w, t),
                    rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        return -EAGAIN;
}

/* The subscriptions side of a pair, on its assign()-only handle, one
 * partition at a time: added when the pair first becomes ready, at its
 * expected offset, and sought there when it becomes ready again; removed
 * with the pair or when it is fenced.  Re-assigning the whole handle
 * instead would restart every other side's fetch, and a pause racing a
 * fresh assignment can stop a partition for good (librdkafka issue 5591). */
static int sub_start(struct worker *w, struct pair *p) {
        int r = side_op(w, p, SUB, p->sub_assigned ? SIDE_SEEK : SIDE_ASSIGN, p->expect[SUB]);

        if (r == 0)
                p->sub_assigned = true;
        return r;
}

static void sub_stop(struct worker *w, struct pair *p) {
        if (!p->sub_assigned || !w->sub_reader)
                return;
        set_side_paused(w, p, SUB, false);      /* a pause could outlive the assignment */
        if (side_op(w, p, SUB, SIDE_UNASSIGN, RD_KAFKA_OFFSET_INVALID) == 0)
                p->sub_assigned = false;
}

static void set_paused(struct worker *w, struct pair *p, bool paused) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, w->cfg->topic_relationships, p->partition);
        if (paused)
                rd_kafka_pause_partitions(w->consumer, l);
        else
                rd_kafka_resume_partitions(w->consumer, l);
        rd_kafka_topic_partition_list_destroy(l);
}

/* Another instance owns the partition now: nothing more is read for it
 * until the rebalance takes it away; it is never claimed back. */
static void pair_fence(struct worker *w, struct pair *p) {
        q_clear(&p->q[REL]);
        q_clear(&p->q[SUB]);
        p->phase = PAIR_FENCED;
        w->pairs_epoch++;
        mcd_group_offsets_forget(w->group_offsets, p->partition);
        set_paused(w, p, true);
        sub_stop(w, p);
}

/* After a commit refused as stale: if Redis says another instance has
 * claimed the partition since, the pair is fenced (the rebalance takes it
 * away; it is never claimed back) and true returned. */
static bool fence_if_taken(struct worker *w, struct pair *p) {
        int64_t gen = 0;

        if (mcd_store_generation(w->store, p->partition, &gen) < 0 || gen == p->generation)
                return false;
        if (gen < p->generation) {      /* a claim of ours forgotten: Redis came back older */
                log_error("partition %" PRId32 ": Redis holds generation %" PRId64 ", older than ours (%" PRId64
                          "): it came back older than our commits",
                          p->partition, gen, p->generation);
                p->rolled_back = true;
                return false;
        }
        log_warning("partition %" PRId32 " is owned by another instance (generation %" PRId64 " > %" PRId64 "); fenced",
                    p->partition, gen, p->generation);
        pair_fence(w, p);
        return true;
}

/* Back to INIT: buffered messages dropped, re-read from Redis's offsets.
 * Frames of the partition not yet handed to the producer are dropped too:
 * the outbox in Redis still holds them (and INIT reconciles it), or Redis
 * lost them with the state that made them, which re-processing re-derives;
 * sending them as well would publish them twice.  The changelog records of
 * their batches are held until it is known which (clog_hold). */
static void pair_restart(struct worker *w, struct pair *p) {
        uint64_t first_dropped = UINT64_MAX;
        size_t kept = 0;

        for (size_t i = 0; i < w->n_pending; i++) {
                struct pending *pf = w->pending[i];
                if (!pf->sent && pf->partition == p->partition) {
                        if (pf->batch < first_dropped)
                                first_dropped = pf->batch;
                        free(pf->buf);
                        free(pf);
                        continue;
                }
                w->pending[kept++] = pf;
        }
        w->n_pending = kept;
        if (first_dropped < p->clog_hold)
                p->clog_hold = first_dropped;
        q_clear(&p->q[REL]);
        q_clear(&p->q[SUB]);
        p->phase = PAIR_INIT;
        w->pairs_epoch++;
        mcd_group_offsets_forget(w->group_offsets, p->partition);
        set_paused(w, p, true);
}

static int publish_pending(struct worker *w, int timeout_ms);

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                         void *opaque) {
        struct worker *w = opaque;
        rd_kafka_error_t *e = NULL;

        switch (err) {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
                w->group_synced = true;
                log_debug("rebalance: %d partition(s) assigned", parts->cnt);
                e = rd_kafka_incremental_assign(rk, parts);
                for (int i = 0; i < parts->cnt; i++) {
                        struct pair *p = pair_add(w, parts->elems[i].partition);
                        log_notice("partition %" PRId32 " assigned", parts->elems[i].partition);
                        if (!p)
                                log_error("out of memory tracking partition %" PRId32, parts->elems[i].partition);
                }
                /* Not paused here: librdkafka 2.0 serves an assignment
                 * asynchronously, and a pause racing its fetch start can
                 * leave the partition stopped for good while it reads as
                 * not paused, so that no resume revives it (librdkafka
                 * issue 5591; seen twice in the benchmark, one partition
                 * never fetched).  Until its pair is ready, what arrives is
                 * dropped (take_message) and read again after the seek. */
                break;
        case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
                /* What was committed goes out before the partitions are
                 * handed over (the batch in flight is always committed or
                 * aborted by now: callbacks run between batches). */
                if (!rd_kafka_assignment_lost(rk) && publish_pending(w, 10000) < 0)
                        log_warning("handing partitions over with %zu frames unpublished; the next owner publishes them",
                                    w->n_pending);
                /* So do the offsets Redis holds, to the group, for lag
                 * monitors (unless this is a close during a join): sent
                 * before the unassign, they carry this generation; never
                 * waited for (librdkafka holds the rejoin until the answer,
                 * one round trip). */
                if (!rd_kafka_assignment_lost(rk))
                        mcd_group_offsets_flush(w->group_offsets, rk, mono_ms(), true);
                for (int i = 0; i < parts->cnt; i++) {
                        log_notice("partition %" PRId32 " revoked%s", parts->elems[i].partition,
                                   rd_kafka_assignment_lost(rk) ? " (assignment lost)" : "");
                        pair_remove(w, parts->elems[i].partition);
                }
                e = rd_kafka_incremental_unassign(rk, parts);
                break;
        default:
                log_error("rebalance failed: %s", rd_kafka_err2str(err));
                for (size_t i = w->n_pairs; i > 0; i--)
                        pair_remove(w, w->pairs[i - 1]->partition);
                e = rd_kafka_incremental_unassign(rk, parts);
        }
        if (e) {
                log_error("rebalance: %s", rd_kafka_error_string(e));
                rd_kafka_error_destroy(e);
        }
}

/* The group's answer to a copy of Redis's offsets (group_offsets.h). */
static void offset_commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *offsets,
                             void *opaque) {
        struct worker *w = opaque;

        mcd_group_offsets_answer(w->group_offsets, err, offsets);
}

/* --------------------------------------------------------------- markers -- */

/* Marks: for each output topic, per partition, an offset at or below which no
 * frame of ours that is still in an outbox can be.  Text form
 * "o=1,5,0;d=0,0" (outcomes; dead letters). */
static char *marks_format(const struct worker *w) {
        size_t cap = 16 + 24 * (size_t)(w->n_out_parts[0] + w->n_out_parts[1]), n = 0;
        char *s = malloc(cap);

        if (!s)
                return NULL;
        for (int t = 0; t < 2; t++) {
                n += (size_t)snprintf(s + n, cap - n, "%s%c=", t ? ";" : "", t ? 'd' : 'o');
                for (int q = 0; q < w->n_out_parts[t]; q++)
                        n += (size_t)snprintf(s + n, cap - n, "%s%" PRId64, q ? "," : "", w->known_end[t][q]);
        }
        return s;
}

/* Parses marks into from[t][q]; missing values stay 0 (read from the start). */
static void marks_parse(const struct worker *w, const char *s, int64_t *from[2]) {
        for (int t = 0; t < 2; t++)
                memset(from[t], 0, (size_t)w->n_out_parts[t] * sizeof(int64_t));
        while (s && *s) {
                int t = *s == 'd' ? OUT_DLQ : OUT_OUTCOMES;
                const char *p = strchr(s, '=');
                if (!p)
                        return;
                p++;
                for (int q = 0; *p && *p != ';'; q++) {
                        char *end;
                        long long v = strtoll(p, &end, 10);
                        if (end == p)
                                return;
                        if (q < w->n_out_parts[t])
                                from[t][q] = v;
                        p = *end == ',' ? end + 1 : end;
                }
                s = *p == ';' ? p + 1 : p;
        }
}

/* --------------------------------------------------------- reconciliation -- */

static const char *header_str(rd_kafka_headers_t *h, const char *name, char *buf, size_t len) {
        const void *v;
        size_t n;
        if (!h || rd_kafka_header_get_last(h, name, &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR || n >= len)
                return NULL;
        memcpy(buf, v, n);
        buf[n] = '\0';
        return buf;
}

/* Adds to w->published the ids of every message of the output topics from
 * the given offsets to their current ends. */
static int collect_published(struct worker *w, int64_t *from[2]) {
        const char *topics[2] = {w->cfg->topic_outcomes, w->cfg->topic_dlq};
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
        int64_t *end[2] = {calloc((size_t)w->n_out_parts[0], 8), calloc((size_t)w->n_out_parts[1], 8)};
        char err[512];
        rd_kafka_t *rk = NULL;
        int remaining = 0, r = 0;
        int64_t deadline = mono_ms() + 60000;

        if (!end[0] || !end[1]) {
                r = -ENOMEM;
                goto out;
        }
        for (int t = 0; t < 2; t++)
                for (int q = 0; q < w->n_out_parts[t]; q++) {
                        int64_t lo, hi;
                        if (rd_kafka_query_watermark_offsets(w->producer, topics[t], q, &lo, &hi, 10000)) {
                                r = -EIO;
                                goto out;
                        }
                        end[t][q] = hi;
                        if (from[t][q] < lo)
                                from[t][q] = lo;
                        if (from[t][q] < hi) {
                                rd_kafka_topic_partition_list_add(l, topics[t], q)->offset = from[t][q];
                                remaining++;
                        }
                }
        if (remaining == 0)
                goto out;
        rk = mcd_kafka_new(w->cfg, MCD_KAFKA_READER, NULL, err, sizeof(err));
        if (!rk || rd_kafka_assign(rk, l)) {
                log_error("reconciliation: cannot read the output topics: %s", rk ? "assign failed" : err);
                r = -EIO;
                goto out;
        }
        while (remaining > 0 && mono_ms() < deadline && !w->sig->stop) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
                rd_kafka_headers_t *h = NULL;
                char id[1024];
                int t;

                watchdog_kick(w);
                if (!m)
                        continue;
                t = strcmp(rd_kafka_topic_name(m->rkt), topics[0]) == 0 ? 0 : 1;
                if (!m->err && rd_kafka_message_headers(m, &h) == 0 && header_str(h, MCD_ID_HEADER, id, sizeof(id)))
                        r = mcd_strmap_put(&w->published, id, (void *)1);
                if ((!m->err || m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) &&
                    m->offset + (m->err ? 0 : 1) >= end[t][m->partition] && end[t][m->partition] >= 0) {
                        end[t][m->partition] = -1;      /* done with this partition */
                        remaining--;
                }
                rd_kafka_message_destroy(m);
                if (r < 0)
                        break;
        }
        if (remaining > 0 && r == 0) {
                log_error("reconciliation: could not read the output topics to their end");
                r = -ETIMEDOUT;
        }
out:
        if (rk) {
                rd_kafka_consumer_close(rk);
                rd_kafka_destroy(rk);
        }
        rd_kafka_topic_partition_list_destroy(l);
        free(end[0]);
        free(end[1]);
        return r;
}

/* collect_published from stored marks (from the topics' start where they
 * say nothing). */
static int collect_published_after(struct worker *w, const char *marks) {
        int64_t *from[2] = {calloc((size_t)w->n_out_parts[0] + 1, 8), calloc((size_t)w->n_out_parts[1] + 1, 8)};
        int r = -ENOMEM;

        if (from[0] && from[1]) {
                marks_parse(w, marks, from);
                r = collect_published(w, from);
        }
        free(from[0]);
        free(from[1]);
        return r;
}

/* --------------------------------------------------------------- producing -- */

static void changelog_failed(struct worker *w, int32_t partition, rd_kafka_resp_err_t err);

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
        struct worker *w = opaque;
        struct pending *pf = m->_private;
        int t;

        if (strcmp(rd_kafka_topic_name(m->rkt), w->cfg->topic_changelog) == 0) {
                if (m->err)     /* its opaque is the input partition, not a frame */
                        changelog_failed(w, (int32_t)(intptr_t)m->_private, m->err);
                return;
        }
        if (m->err) {
                w->st.kafka_errors++;
                log_warning("delivery to %s failed: %s", rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
        } else {
                const char *topic = rd_kafka_topic_name(m->rkt);
                t = strcmp(topic, w->cfg->topic_outcomes) == 0 ? OUT_OUTCOMES
                    : strcmp(topic, w->cfg->topic_dlq) == 0 ? OUT_DLQ
                                                             : -1;
                if (t >= 0 && m->partition < w->n_out_parts[t] && m->offset + 1 > w->known_end[t][m->partition])
                        w->known_end[t][m->partition] = m->offset + 1;
        }
        if (pf)
                pf->status = m->err ? -EIO : 1;
}

/* Produces one outbox frame; its delivery report sets pf->status. */
static int produce_frame(struct worker *w, struct pending *pf) {
        struct mcd_frame f;
        char names[MCD_FRAME_MAX_HEADERS][64], id[1024];
        const char *topic;
        rd_kafka_headers_t *h;
        rd_kafka_resp_err_t err;

        if (mcd_frame_decode(pf->buf, pf->len, &f, names) < 0 || f.id_len >= sizeof(id)) {
                log_error("outbox frame of partition %" PRId32 " is corrupt; skipped", pf->partition);
                pf->status = 1;
                return 0;
        }
        memcpy(id, f.id, f.id_len);
        id[f.id_len] = '\0';
        if (mcd_strmap_get(&w->published, id)) {
                pf->status = 1;      /* already on the topic: found by reconciliation */
                return 0;
        }
        h = rd_kafka_headers_new(f.n_headers + 1);
        for (size_t i = 0; i < f.n_headers; i++)
                rd_kafka_header_add(h, f.headers[i].name, -1, f.headers[i].value, (ssize_t)f.headers[i].len);
        rd_kafka_header_add(h, MCD_ID_HEADER, -1, id, (ssize_t)f.id_len);
        topic = f.kind == MCD_FRAME_OUTCOME ? w->cfg->topic_outcomes : w->cfg->topic_dlq;
        err = rd_kafka_producev(w->producer, RD_KAFKA_V_TOPIC(topic),
                                RD_KAFKA_V_KEY(f.key, f.key_len), RD_KAFKA_V_VALUE((void *)f.value, f.value_len),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
                                RD_KAFKA_V_OPAQUE(pf), RD_KAFKA_V_END);
        if (err) {
                rd_kafka_headers_destroy(h);
                w->st.kafka_errors++;
                log_warning("cannot produce to Kafka: %s", rd_kafka_err2str(err));
                return -EAGAIN;
        }
        pf->status = 0;
        pf->sent = true;
        return 0;
}

/* A partition's offsets record in the changelog (heap string). */
static char *offsets_record(const struct mcd_offsets *o, const char *marks) {
        char *val = NULL;

        if (asprintf(&val, "{\"rel\":%" PRId64 ",\"sub\":%" PRId64 ",\"marks\":\"%s\"}", o->rel, o->sub,
                     marks ? marks : "") < 0)
                return NULL;
        return val;
}

/* A changelog append of the partition failed: the changelog would fall
 * behind Redis, and a rebuild from it would be stale, so the partition stops
 * committing until it is claimed again (log, STATUS, /healthz). */
static void changelog_failed(struct worker *w, int32_t partition, rd_kafka_resp_err_t err) {
        struct pair *p = pair_find(w, partition);

        w->st.kafka_errors++;
        if (!p || p->clog_failed)
                return;
        p->clog_failed = true;
        log_error("partition %" PRId32 ": cannot append to the changelog %s: %s; the partition stops committing "
                  "until it is claimed again (a restart or a rebalance)",
                  partition, w->cfg->topic_changelog, rd_kafka_err2str(err));
}

/* Appends one record; its delivery report names the partition
 * (dr_msg_cb). */
static void changelog_produce(struct worker *w, int32_t partition, const char *key, const char *value,
                              size_t len) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
                w->producer, RD_KAFKA_V_TOPIC(w->cfg->topic_changelog), RD_KAFKA_V_KEY(key, strlen(key)),
                RD_KAFKA_V_VALUE((void *)value, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_OPAQUE((void *)(intptr_t)partition), RD_KAFKA_V_END);
        if (err)
                changelog_failed(w, partition, err);
}

static int pending_push(struct worker *w, void *buf, size_t len, int32_t partition, uint64_t batch) {
        struct pending *pf;

        if (w->n_pending == w->cap_pending) {
                size_t cap = w->cap_pending ? w->cap_pending * 2 : 256;
                struct pending **v = realloc(w->pending, cap * sizeof(*v));
                if (!v)
                        return -ENOMEM;
                w->pending = v;
                w->cap_pending = cap;
        }
        pf = calloc(1, sizeof(*pf));
        if (!pf)
                return -ENOMEM;
        pf->buf = buf;
        pf->len = len;
        pf->partition = partition;
        pf->batch = batch;
        w->pending[w->n_pending++] = pf;
        return 0;
}

static void pending_clear(struct worker *w) {
        for (size_t i = 0; i < w->n_pending; i++) {
                free(w->pending[i]->buf);
                free(w->pending[i]);
        }
        w->n_pending = 0;
}

/* Produces every pending frame not yet delivered and waits for them.
 * Returns 0 when all are delivered (the outbox heads can be trimmed), or
 * -EAGAIN to try again later. */
/* Fencing, checked again before publishing: frames of a partition that
 * another instance has claimed since they were committed are dropped (the new
 * owner reconciles that outbox itself).  Returns -EAGAIN when Redis cannot
 * tell. */
static int drop_fenced(struct worker *w) {
        int32_t *parts = calloc(w->n_pairs + 1, sizeof(*parts));
        int64_t *gens = calloc(w->n_pairs + 1, sizeof(*gens));
        size_t n = 0, kept = 0;
        bool fresh;
        int r = 0;

        if (!parts || !gens) {
                r = -ENOMEM;
                goto out;
        }
        /* The owned partitions with unsent frames, checked in one round trip,
         * unless the commit of those frames checked them just now. */
        fresh = mono_ms() - w->verified_at < FENCE_LEASE_MS;
        for (size_t i = 0; i < w->n_pairs; i++) {
                bool unsent = false;
                for (size_t j = 0; j < w->n_pending && !unsent; j++)
                        unsent = !w->pending[j]->sent && w->pending[j]->partition == w->pairs[i]->partition &&
                                 !(fresh && w->pending[j]->batch == w->verified_batch);
                if (unsent && w->pairs[i]->phase == PAIR_READY)
                        parts[n++] = w->pairs[i]->partition;
        }
        r = mcd_store_generations(w->store, parts, n, gens);
        if (r < 0) {
                r = redis_unreachable(r) ? -EAGAIN : r;
                goto out;
        }
        for (size_t i = 0; i < n; i++) {
                struct pair *p = pair_find(w, parts[i]);
                if (!p || gens[i] == p->generation)
                        continue;
                if (gens[i] > p->generation) {
                        log_warning("partition %" PRId32 " was claimed by another instance; "
                                    "its unpublished frames are left to the new owner",
                                    p->partition);
                        pair_fence(w, p);
                } else {
                        /* The generation is gone: Redis lost its data.  The
                         * partition is claimed again and rebuilt from the
                         * changelog; what these frames said is re-derived. */
                        log_warning("partition %" PRId32 ": Redis lost its state; rebuilding it", p->partition);
                        pair_restart(w, p);
                }
        }
        for (size_t i = 0; i < w->n_pending; i++) {
                struct pending *pf = w->pending[i];
                struct pair *p = pair_find(w, pf->partition);

                if (!pf->sent && (!p || p->phase == PAIR_FENCED || p->phase == PAIR_INIT)) {
                        free(pf->buf);
                        free(pf);
                        continue;
                }
                w->pending[kept++] = pf;
        }
        w->n_pending = kept;
out:
        free(parts);
        free(gens);
        return r;
}

static int clog_push(struct worker *w, uint64_t batch, int32_t partition, const char *key, char *value,
                     size_t len) {
        if (w->n_clog == w->cap_clog) {
                size_t cap = w->cap_clog ? w->cap_clog * 2 : 256;
                struct clog *v = realloc(w->clog, cap * sizeof(*v));
                if (!v)
                        return -ENOMEM;
                w->clog = v;
                w->cap_clog = cap;
        }
        w->clog[w->n_clog].key = strdup(key);
        if (!w->clog[w->n_clog].key)
                return -ENOMEM;
        w->clog[w->n_clog].batch = batch;
        w->clog[w->n_clog].partition = partition;
        w->clog[w->n_clog].value_len = len;
        w->clog[w->n_clog++].value = value;
        return 0;
}

static bool clog_held(struct worker *w, const struct clog *c) {
        const struct pair *p = pair_find(w, c->partition);
        return p && c->batch >= p->clog_hold;
}

/* Appends the changelog records of every batch older than `upto`, but
 * those held (a partition's records are independent of the others'). */
static void clog_release(struct worker *w, uint64_t upto) {
        size_t kept = 0;
        bool holds = false;

        for (size_t i = 0; i < w->n_pairs && !holds; i++)
                holds = w->pairs[i]->clog_hold != UINT64_MAX;
        for (size_t i = 0; i < w->n_clog; i++) {
                struct clog *c = &w->clog[i];
                if (c->batch >= upto || (holds && clog_held(w, c))) {
                        w->clog[kept++] = *c;
                        continue;
                }
                if (c->batch == w->fault_stop_before_changelog) {
                        mcd_kafka_flush(w->producer, 5000);     /* the earlier batches' records are in */
                        fault_point(w->fault_stop_before_changelog, c->batch, "changelog append");
                        w->fault_stop_before_changelog = 0;
                }
                changelog_produce(w, c->partition, c->key, c->value, c->value_len);
                free(c->key);
                free(c->value);
        }
        w->n_clog = kept;
}

/* Forgets a partition's records of batch `from` on: frames of that batch
 * were dropped unpublished and Redis lost them, and the changelog must not
 * say more than the output topics do.  What they recorded is derived again. */
static void clog_drop(struct worker *w, int32_t partition, uint64_t from) {
        size_t kept = 0;

        for (size_t i = 0; i < w->n_clog; i++) {
                if (w->clog[i].partition == partition && w->clog[i].batch >= from) {
                        free(w->clog[i].key);
                        free(w->clog[i].value);
                        continue;
                }
                w->clog[kept++] = w->clog[i];
        }
        w->n_clog = kept;
}

static void clog_clear(struct worker *w) {
        for (size_t i = 0; i < w->n_clog; i++) {
                free(w->clog[i].key);
                free(w->clog[i].value);
        }
        free(w->clog);
        w->clog = NULL;
        w->n_clog = w->cap_clog = 0;
}

/* Produces every pending frame not yet delivered; with timeout_ms > 0 waits
 * for all of them, else only serves the delivery reports that are in.  The
 * delivered head of the queue is counted for trimming (by the next commit)
 * and releases the changelog records of the batches it completes.  Returns 0
 * when nothing is pending any more, else -EAGAIN. */
static int publish_pending(struct worker *w, int timeout_ms) {
        int64_t deadline = mono_ms() + timeout_ms;
        size_t k = 0;
        bool all;

        if (drop_fenced(w) < 0)
                return -EAGAIN;
        for (size_t i = 0; i < w->n_pending; i++) {
                struct pending *pf = w->pending[i];
                if ((pf->status < 0 || !pf->sent) && pf->status != 1 && produce_frame(w, pf) < 0)
                        break;
        }
        do {
                if (timeout_ms > 0)
                        rd_kafka_flush(w->producer, 100);
                else
                        rd_kafka_poll(w->producer, 0);
                all = true;
                for (size_t i = 0; i < w->n_pending && all; i++)
                        all = w->pending[i]->status == 1;
        } while (!all && timeout_ms > 0 && mono_ms() < deadline && !w->sig->stop);
        while (k < w->n_pending && w->pending[k]->status == 1) {
                struct pair *p = pair_find(w, w->pending[k]->partition);
                if (p)
                        p->untrimmed++;
                free(w->pending[k]->buf);
                free(w->pending[k]);
                k++;
        }
        if (k > 0) {
                memmove(w->pending, w->pending + k, (w->n_pending - k) * sizeof(*w->pending));
                w->n_pending -= k;
        }
        clog_release(w, w->n_pending ? w->pending[0]->batch : UINT64_MAX);
        if (w->n_pending == 0)
                w->publish_stuck = false;
        return w->n_pending == 0 ? 0 : -EAGAIN;
}

/* ------------------------------------------------------------- reconcile -- */

/* On taking a partition over: the frames its outbox still holds were
 * committed by the previous owner and maybe produced.  Those already on the
 * output topics (from the stored marks on) are skipped, the rest produced. */
static int pair_reconcile(struct worker *w, struct pair *p) {
        void **frames = NULL;
        size_t *lens = NULL, n = 0;
        char *marks = NULL;
        int r;

        r = mcd_store_read_outbox(w->store, p->partition, &frames, &lens, &n);
        if (r < 0)
                return r;
        if (n == 0)
                goto out;
        /* Frames still in flight reach the topics before they are read. */
        rd_kafka_flush(w->producer, 30000);
        log_notice("partition %" PRId32 ": reconciling %zu outbox frames with the output topics", p->partition, n);
        r = mcd_store_get_marks(w->store, p->partition, &marks);
        if (r >= 0)
                r = collect_published_after(w, marks);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                r = pending_push(w, frames[i], lens[i], p->partition, 0);
                if (r >= 0)
                        frames[i] = NULL;
        }
        if (r >= 0)
                r = publish_pending(w, 30000);
out:
        mcd_store_frames_free(frames, lens, n);
        free(marks);
        return r;
}

/* ------------------------------------------------------------- rebuild -- */

/* The latest changelog record of each key that belongs to one partition. */
struct changelog_scan {
        int32_t partition;
        char offsets_key[64];
        struct mcd_strmap latest;    /* key -> struct scanned */
};

/* A record's value as scanned: its bytes, NUL-terminated too (an offsets
 * record, and a customer record of earlier versions, are JSON text). */
struct scanned {
        size_t len;
        char data[];
};

static void scan_free(struct changelog_scan *sc) {
        for (size_t i = 0; i < sc->latest.size; i++)
                if (sc->latest.keys[i])
                        free(sc->latest.values[i]);
        mcd_strmap_clear(&sc->latest);
}

/* The partition of a customer record in the daemon's own form,
 * {"partition":N,"state":...}, read off its front: every partition's rebuild
 * reads the whole changelog, and parsing each state there would cost a JSON
 * parse per record and partition.  -1 for any other form (parsed instead). */
static json_int_t record_partition(const char *v, size_t len) {
        static const char front[] = CHANGELOG_STATE_FRONT;
        size_t i = sizeof(front) - 1;
        json_int_t part = 0;

        if (len <= i || memcmp(v, front, i) != 0 || v[i] < '0' || v[i] > '9')
                return -1;
        for (; i < len && v[i] >= '0' && v[i] <= '9' && part < INT32_MAX; i++)
                part = part * 10 + (v[i] - '0');
        return i < len && v[i] == ',' ? part : -1;
}

/* The input partition a record belongs to: the offsets record's own (when
 * it is JSON), a customer record's (binary, or the JSON of earlier versions),
 * or -1. */
static json_int_t scanned_partition(const struct changelog_scan *sc, const char *key, const rd_kafka_message_t *m) {
        bool offsets = strcmp(key, sc->offsets_key) == 0;
        json_int_t part = -1;
        const char *state;
        size_t state_len;
        json_t *rec;

        if (!offsets && (part = mcd_state_record_partition(m->payload, m->len, &state, &state_len)) >= 0)
                return part;
        if (!offsets && (part = record_partition(m->payload, m->len)) >= 0)
                return part;
        rec = json_loadb(m->payload, m->len, 0, NULL);
        if (rec && offsets)
                part = sc->partition;
        else if (!rec || json_unpack(rec, "{s:I}", "partition", &part) < 0)
                part = -1;
        json_decref(rec);
        return part;
}

static int scan_take(struct changelog_scan *sc, const rd_kafka_message_t *m) {
        struct scanned *val;
        char key[1024];
        void *old;
        int r;

        if (!m->key || m->key_len >= sizeof(key) || !m->payload)
                return 0;
        memcpy(key, m->key, m->key_len);
        key[m->key_len] = '\0';
        if (scanned_partition(sc, key, m) != sc->partition)
                return 0;
        val = malloc(sizeof(*val) + m->len + 1);
        if (!val)
                return -ENOMEM;
        val->len = m->len;
        memcpy(val->data, m->payload, m->len);
        val->data[m->len] = '\0';
        old = mcd_strmap_get(&sc->latest, key);
        r = mcd_strmap_put(&sc->latest, key, val);
        if (r < 0) {
                free(val);
                return r;
        }
        free(old);
        return 0;
}

/* Reads the whole changelog topic, keeping what belongs to sc->partition. */
static int scan_changelog(struct worker *w, struct changelog_scan *sc) {
        const char *topic = w->cfg->topic_changelog;
        int n = mcd_kafka_partition_count(w->producer, topic, 10000), remaining = 0, r = 0;
        rd_kafka_topic_partition_list_t *l;
        int64_t *end, deadline = mono_ms() + 120000;
        rd_kafka_t *rk;
        char err[512];

        if (n == -ENOENT)
                return 0;       /* no changelog yet: nothing was ever committed */
        if (n < 0)
                return n;
        end = calloc((size_t)n, sizeof(*end));
        l = rd_kafka_topic_partition_list_new(n);
        if (!end || !l) {
                free(end);
                if (l)
                        rd_kafka_topic_partition_list_destroy(l);
                return -ENOMEM;
        }
        for (int q = 0; q < n; q++) {
                int64_t lo;
                if (rd_kafka_query_watermark_offsets(w->producer, topic, q, &lo, &end[q], 10000)) {
                        r = -EIO;
                        goto out;
                }
                if (end[q] > lo) {
                        rd_kafka_topic_partition_list_add(l, topic, q)->offset = RD_KAFKA_OFFSET_BEGINNING;
                        remaining++;
                }
        }
        if (remaining == 0)
                goto out;
        rk = mcd_kafka_new(w->cfg, MCD_KAFKA_READER, NULL, err, sizeof(err));
        if (!rk) {
                r = -EINVAL;
                goto out;
        }
        rd_kafka_assign(rk, l);
        while (remaining > 0 && r >= 0 && mono_ms() < deadline && !w->sig->stop) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
                watchdog_kick(w);
                if (!m)
                        continue;
                if (!m->err)
                        r = scan_take(sc, m);
                if ((!m->err && m->offset + 1 >= end[m->partition]) ||
                    (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF && m->offset >= end[m->partition])) {
                        if (end[m->partition] >= 0)
                                remaining--;
                        end[m->partition] = INT64_MAX;
                }
                rd_kafka_message_destroy(m);
        }
        if (remaining > 0 && r >= 0)
                r = -ETIMEDOUT;
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
out:
        free(end);
        rd_kafka_topic_partition_list_destroy(l);
        return r;
}

/* Re-processing a rebuilt partition.  The events after the restored
 * offsets are applied again, and the outputs they had before Redis was lost
 * may already be on the output topics after the restored marks: the
 * rebuild looks those up (collect_published) and publishing skips them.  That
 * lookup lives in memory, so Redis keeps where it started (P redo:<p>) and
 * how far re-processing goes: the input partitions' ends at the rebuild,
 * below which lies everything processed before the loss.  A start that finds
 * the record looks the outputs up again (redo_check), even past those ends:
 * its outbox may hold frames re-made from those events, unsent.  Meanwhile
 * the partition's commits and changelog records carry the record's marks,
 * not later ones, so that a second loss looks up as far back as the first.
 * The record goes once every side is re-processed and every frame committed
 * for the partition is delivered (redo_settle). */
static void redo_forget(struct pair *p) {
        p->redo = false;
        free(p->redo_marks);
        p->redo_marks = NULL;
}

static const char *pair_marks(const struct pair *p, const char *marks) {
        return p->redo ? p->redo_marks : marks;
}

/* A side is re-processed when its committed offset reached the recorded
 * end, or when it reached the partition's end with everything read
 * committed (the recorded end may count transaction markers, never read). */
static bool redo_side_done(const struct pair *p, int t) {
        int64_t until = t == REL ? p->redo_until.rel : p->redo_until.sub;
        int64_t committed = t == REL ? p->committed.rel : p->committed.sub;
        int64_t next = t == REL ? p->next.rel : p->next.sub;

        return until <= 0 || committed >= until || (p->at_end[t] && q_len(&p->q[t]) == 0 && committed == next);
}

/* Before the restored offsets are written.  A side with nothing after the
 * restored offset (or its first) is done already: 0. */
static int redo_mark(struct worker *w, struct pair *p, const char *marks, const struct mcd_offsets *restored) {
        int64_t lo, hi, until[2], from[2] = {restored->rel, restored->sub};
        int r;

        for (int t = REL; t <= SUB; t++) {
                rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
                        t == REL ? w->consumer : w->sub_reader, topic_of(w, t), p->partition, &lo, &hi, 5000);
                if (err) {
                        log_warning("partition %" PRId32 ": cannot read where %s ends: %s", p->partition,
                                    topic_of(w, t), rd_kafka_err2str(err));
                        return -EAGAIN;
                }
                until[t] = hi > (from[t] > lo ? from[t] : lo) ? hi : 0;
        }
        redo_forget(p);
        p->redo_until = (struct mcd_offsets){.rel = until[REL], .sub = until[SUB]};
        if (until[REL] == 0 && until[SUB] == 0)
                return 0;
        if (!(p->redo_marks = strdup(marks ? marks : "")))
                return -ENOMEM;
        r = mcd_store_set_redo(w->store, p->partition, p->redo_marks, p->redo_until);
        p->redo = r >= 0;
        return r;
}

static int redo_check(struct worker *w, struct pair *p) {
        char *marks = NULL;
        bool found, unreadable = false;
        int r = mcd_store_get_redo(w->store, p->partition, &found, &marks, &p->redo_until);

        if (r == -EBADMSG) {
                log_warning("partition %" PRId32 ": its re-processing record is unreadable; the outputs are "
                            "looked up from the start of the output topics, and the record dropped", p->partition);
                unreadable = found = true;
                r = 0;
        }
        if (r < 0 || !found)
                return r;
        if (!unreadable)
                log_notice("partition %" PRId32 ": re-processing after a rebuild not known done (offsets %" PRId64
                           "/%" PRId64 " of %" PRId64 "/%" PRId64 "); looking up what it already published",
                           p->partition, p->committed.rel, p->committed.sub, p->redo_until.rel, p->redo_until.sub);
        r = collect_published_after(w, marks);
        if (r >= 0 && unreadable)
                r = mcd_store_clear_redo(w->store, p->partition);
        else if (r >= 0) {
                p->redo = true;
                p->redo_marks = marks;
                marks = NULL;
        }
        free(marks);
        return r;
}

/* Redis's commit counter of the pair set forward to seq, never back. */
static int raise_seq(struct worker *w, struct pair *p, int64_t seq) {
        int r = mcd_store_raise_seq(w->store, p->partition, seq);

        if (r >= 0 && seq > p->seq)
                p->seq = seq;
        return r;
}

/* Redis came back older than this owner's commits (a rollback: a promoted
 * replica, an old snapshot): what was committed since is on the output
 * topics, no longer in Redis.  The partition is re-processed from Redis's
 * offsets as after a rebuild, under a re-processing record from Redis's
 * marks (or an older record's) to the input's ends, so that whichever
 * instance owns it next looks up what is already published; and looked up
 * now. */
static int rollback_redo(struct worker *w, struct pair *p, int64_t known_seq) {
        struct mcd_offsets until;
        char *marks = NULL;
        bool found = false;
        int r = mcd_store_get_redo(w->store, p->partition, &found, &marks, &until);

        if (r == -EBADMSG || (r >= 0 && !found)) {
                free(marks);
                marks = NULL;
                r = mcd_store_get_marks(w->store, p->partition, &marks);
        }
        log_notice("partition %" PRId32 ": re-processing from offsets %" PRId64 "/%" PRId64
                   " after Redis came back older; looking up what was already published",
                   p->partition, p->committed.rel, p->committed.sub);
        if (r >= 0)     /* what is in flight lands before the topics are read */
                r = mcd_kafka_flush(w->producer, 30000);
        if (r >= 0)
                r = redo_mark(w, p, marks, &p->committed);
        if (r >= 0)
                r = collect_published_after(w, marks);
        if (r >= 0)             /* the counter goes on from ours, never back */
                r = raise_seq(w, p, known_seq);
        if (r >= 0)
                p->rolled_back = false;
        free(marks);
        return r;
}

static void redo_settle(struct worker *w) {
        for (size_t i = 0; i < w->n_pairs; i++) {
                struct pair *p = w->pairs[i];
                bool owed = false;
                if (!p->redo || p->phase != PAIR_READY || !redo_side_done(p, REL) || !redo_side_done(p, SUB))
                        continue;
                for (size_t j = 0; j < w->n_pending && !owed; j++)
                        owed = w->pending[j]->partition == p->partition && w->pending[j]->status != 1;
                if (owed || mcd_store_clear_redo(w->store, p->partition) < 0)
                        continue;
                redo_forget(p);
                log_info("partition %" PRId32 ": re-processing after the rebuild done", p->partition);
        }
}

/* A customer's state from its changelog record, binary or the JSON of
 * earlier versions.  0, -ENOMEM, or -EINVAL with why set. */
static int record_state(const struct scanned *v, struct mcd_customer *c, char *why, size_t whylen) {
        const char *state;
        size_t len;
        json_t *rec, *js;
        char *text;
        int r;

        if (mcd_state_record_partition(v->data, v->len, &state, &len) >= 0)
                return mcd_state_decode(state, len, c, why, whylen);
        rec = json_loads(v->data, 0, NULL);
        js = json_object_get(rec, "state");
        text = js ? json_dumps(js, JSON_COMPACT) : NULL;
        r = text ? mcd_state_decode(text, strlen(text), c, why, whylen) : -EINVAL;
        if (!text)
                snprintf(why, whylen, "neither a binary record nor JSON with a state");
        free(text);
        json_decref(rec);
        return r;
}

/* Writes the scanned customers of a partition back to Redis, in chunks,
 * the offsets and marks last. */
/* A partition the changelog holds no offsets for is re-processed from its
 * beginning.  Its first batches may be on the output topics all the same
 * (Redis lost after their delivery, before their changelog records): when
 * the group's copy names where its outputs begin (send_origin), they are
 * looked up from there, under a re-processing record as after any rebuild. */
static int restore_origin(struct worker *w, struct pair *p, int64_t *from[2]) {
        const struct mcd_offsets none = {.rel = -1, .sub = -1};

        if (!p->origin_marks)
                return 0;
        log_notice("partition %" PRId32 ": the changelog holds nothing of it, the consumer group says where its "
                   "outputs begin: looking them up from there", p->partition);
        marks_parse(w, p->origin_marks, from);
        return redo_mark(w, p, p->origin_marks, &none);
}

static int restore_partition(struct worker *w, struct pair *p, struct changelog_scan *sc, int64_t *from[2]) {
        struct mcd_customer *cs = calloc(256, sizeof(*cs));
        struct mcd_store_customer sc_items[256];
        struct mcd_store_partition sp = {.partition = p->partition, .generation = p->generation};
        struct mcd_store_batch b = {.customers = sc_items, .partitions = &sp, .n_partitions = 1};
        const struct scanned *offsets_rec = mcd_strmap_get(&sc->latest, sc->offsets_key);
        const char *offsets_json = offsets_rec ? offsets_rec->data : NULL;
        char *marks = NULL;
        size_t n = 0, restored = 0;
        int r = 0;

        if (!cs)
                return -ENOMEM;
        for (size_t i = 0; i <= sc->latest.size && r >= 0; i++) {
                bool last = i == sc->latest.size;
                if (!last && sc->latest.keys[i] && strcmp(sc->latest.keys[i], sc->offsets_key) != 0) {
                        char why[256] = "";
                        if (record_state(sc->latest.values[i], &cs[n], why, sizeof(why)) == 0) {
                                sc_items[n] = (struct mcd_store_customer){.customer = &cs[n],
                                                                          .partition = p->partition};
                                n++;
                        } else {
                                log_error("changelog record of customer %s is unreadable (%s); skipped",
                                          sc->latest.keys[i], why);
                        }
                }
                if (n == 256 || last) {
                        /* The offsets go last, always: they mark the
                         * partition restored (-1/-1, from the beginning,
                         * when the changelog holds none). */
                        if (last && offsets_json) {
                                json_t *rec = json_loads(offsets_json, 0, NULL);
                                json_int_t rel = -1, sub = -1;
                                const char *m = NULL;
                                if (rec && json_unpack(rec, "{s:I, s:I, s?s}", "rel", &rel, "sub", &sub, "marks", &m) == 0) {
                                        sp.offsets = (struct mcd_offsets){.rel = rel, .sub = sub};
                                        marks = m && *m ? strdup(m) : NULL;
                                        sp.marks = marks;
                                        marks_parse(w, marks, from);
                                        r = redo_mark(w, p, marks, &sp.offsets);
                                } else {
                                        log_error("partition %" PRId32 ": the changelog's offsets record is unreadable",
                                                  p->partition);
                                        r = -EBADMSG;
                                }
                                json_decref(rec);
                        } else if (last) {
                                sp.offsets = (struct mcd_offsets){.rel = -1, .sub = -1};
                                r = restore_origin(w, p, from);
                        }
                        sp.set_offsets = last;
                        if (r < 0)
                                break;
                        b.n_customers = n;
                        r = mcd_store_commit(w->store, &b);
                        restored += n;
                        for (size_t j = 0; j < n; j++)
                                mcd_customer_clear(&cs[j]);
                        n = 0;
                }
        }
        for (size_t j = 0; j < n; j++)
                mcd_customer_clear(&cs[j]);
        free(cs);
        free(marks);
        if (r >= 0 && (restored > 0 || offsets_json))
                log_notice("partition %" PRId32 ": restored %zu customers and offsets %" PRId64 "/%" PRId64
                           " from the changelog",
                           p->partition, restored, sp.offsets.rel, sp.offsets.sub);
        return r;
}

/* A partition without offsets in Redis: Redis is new, or lost its data.
 * What the changelog holds for the partition is written back, its offsets
 * last (a restore cut short by a crash is done again), and the outputs
 * already on the topics after the recorded marks are remembered, so that
 * re-processing does not publish them again. */
static int rebuild_partition(struct worker *w, struct pair *p) {
        struct changelog_scan sc = {.partition = p->partition};
        int64_t *from[2] = {calloc((size_t)w->n_out_parts[0] + 1, 8), calloc((size_t)w->n_out_parts[1] + 1, 8)};
        int r = 0;

        snprintf(sc.offsets_key, sizeof(sc.offsets_key), CHANGELOG_OFFSETS_KEY "%" PRId32, p->partition);
        if (!from[0] || !from[1])
                r = -ENOMEM;
        /* The restore commits through the script, which refuses a Redis
         * without its meta key: an emptied Redis found by its generations
         * (drop_fenced) has none yet. */
        if (r >= 0)
                r = mcd_store_init_meta(w->store, NULL);
        clog_drop(w, p->partition, p->clog_hold);
        /* Our own changelog appends first: what is delivered releases its
         * batches' records, and they reach the topic before it is read. */
        if (r >= 0 && (w->n_pending > 0 || w->n_clog > 0))
                publish_pending(w, 30000);
        if (r >= 0)
                r = mcd_kafka_flush(w->producer, 30000);
        if (r >= 0)
                r = scan_changelog(w, &sc);
        if (r >= 0)
                r = restore_partition(w, p, &sc, from);
        if (r >= 0 && (mcd_strmap_get(&sc.latest, sc.offsets_key) || p->origin_marks))
                r = collect_published(w, from);
        scan_free(&sc);
        free(from[0]);
        free(from[1]);
        if (r < 0)
                log_error("partition %" PRId32 ": cannot rebuild from the changelog: %s", p->partition, strerror(-r));
        return r;
}

/* Where a side starts reading: its stored offset, or the partition's first
 * offset when nothing was stored, asked of the broker.  Always a concrete
 * offset: librdkafka resolves a logical one (BEGINNING) by a ListOffsets
 * query of its own, whose reply the seek and resume around a pair's start
 * make outdated (its debug log shows the query restarted), and the pair's
 * first offset is then known before anything is fetched. */
static int start_offset(struct worker *w, const struct pair *p, int t, int64_t stored, int64_t *out) {
        int64_t lo, hi;
        rd_kafka_resp_err_t err;

        if (stored >= 0) {
                *out = stored;
                return 0;
        }
        err = rd_kafka_query_watermark_offsets(t == REL ? w->consumer : w->sub_reader, topic_of(w, t), p->partition,
                                               &lo, &hi, 5000);
        if (err) {
                log_warning("partition %" PRId32 ": cannot read where %s begins: %s", p->partition, topic_of(w, t),
                            rd_kafka_err2str(err));
                return -EAGAIN;
        }
        *out = lo;
        return 0;
}

/* The pair's offsets, counter and generation copied to the group. */
static void group_note(struct worker *w, const struct pair *p) {
        const struct mcd_group_mark m = {.rel = p->committed.rel, .sub = p->committed.sub, .seq = p->seq,
                                         .generation = p->generation, .marks = p->origin_marks};

        mcd_group_offsets_note(w->group_offsets, p->partition, &m);
}

/* A pair starting with nothing in Redis and nothing in the group's copy
 * (a new partition): the marks of the output topics now, before it produces
 * anything, go to the group with its first offsets, and are waited for.
 * They are where its outputs begin: should Redis be lost before its first
 * batch reaches the changelog, the rebuild looks its outputs up from there
 * (rebuild_partition), with no changelog scan of its own.  -EAGAIN: try
 * again (the member is joining the group, or the group refused). */
static int send_origin(struct worker *w, struct pair *p) {
        const struct mcd_group_mark m = {.rel = p->expect[REL], .sub = p->expect[SUB], .seq = p->seq,
                                         .generation = p->generation, .marks = p->origin_marks};

        if (!w->consumer || p->committed.rel >= 0 || p->committed.sub >= 0)
                return 0;
        if (!p->origin_marks && !(p->origin_marks = marks_format(w)))
                return -ENOMEM;
        mcd_group_offsets_note(w->group_offsets, p->partition, &m);
        return mcd_group_offsets_send_now(w->group_offsets, w->consumer, p->partition) < 0 ? -EAGAIN : 0;
}

/* The group's copy of the pairs about to be claimed, read in one request:
 * their last owners' commit counters and generations (group_offsets.h).
 * A pair whose copy could not be read waits for the next round. */
static void read_group_marks(struct worker *w) {
        int32_t *parts = calloc(w->n_pairs + 1, sizeof(*parts));
        struct mcd_group_mark *m = calloc(w->n_pairs + 1, sizeof(*m));
        size_t n = 0;

        for (size_t i = 0; parts && m && i < w->n_pairs; i++)
                if (w->pairs[i]->phase == PAIR_INIT && !w->pairs[i]->group_read)
                        parts[n++] = w->pairs[i]->partition;
        if (n > 0 && (!w->consumer ||
                      mcd_group_offsets_read(w->group_offsets, w->consumer, parts, n, 10000, m) >= 0))
                for (size_t i = 0; i < n; i++) {
                        struct pair *p = pair_find(w, parts[i]);
                        p->group_read = true;
                        p->group_generation = m[i].generation;
                        p->seq_floor = m[i].seq > p->seq_floor ? m[i].seq : p->seq_floor;
                        if (m[i].marks) {
                                free(p->origin_marks);
                                p->origin_marks = m[i].marks;
                                m[i].marks = NULL;
                        }
                }
        for (size_t i = 0; m && i < n; i++)
                mcd_group_mark_clear(&m[i]);
        free(parts);
        free(m);
}

/* Claims the partition in Redis, fencing any previous owner, under a
 * generation above any handed out before: ours, and the one the group's
 * copy names (Redis's may have come back older, and reusing one would let a
 * fenced owner commit again).  A pair this instance claimed before whose
 * copy names a later generation was claimed by another instance since: it
 * is fenced (-ESTALE), whatever an older Redis says.  -EAGAIN until the
 * copy is read. */
static int claim(struct worker *w, struct pair *p) {
        int64_t floor = p->generation > p->group_generation ? p->generation : p->group_generation;

        if (!p->group_read)
                return -EAGAIN;
        p->group_read = false;
        if (p->generation > 0 && p->group_generation > p->generation) {
                log_warning("partition %" PRId32 " was claimed by another instance (the consumer group's offsets "
                            "name generation %" PRId64 " > %" PRId64 "); fenced",
                            p->partition, p->group_generation, p->generation);
                pair_fence(w, p);
                return -ESTALE;
        }
        return mcd_store_claim(w->store, p->partition, floor, &p->generation);
}

/* INIT -> READY: claim the partition (fencing any previous owner), seek to
 * the stored offsets, reconcile the outbox. */
static int pair_init(struct worker *w, struct pair *p) {
        int64_t known_seq;
        bool stored;
        int r;

        if (p->phase == PAIR_INIT) {
                r = claim(w, p);
                if (r < 0)
                        return r;
                p->phase = PAIR_RECONCILE;
        }
        /* What this owner committed, if it owned the pair before, or the
         * last owner did by the group's copy. */
        known_seq = p->seq > p->seq_floor ? p->seq : p->seq_floor;
        /* No offsets: Redis is new or lost the partition, or a rebuild was
         * cut short (the restore writes them last).  A failed rebuild is
         * tried again (pair_init_failed). */
        redo_forget(p);
        r = mcd_store_offsets_stored(w->store, p->partition, &stored);
        if (r >= 0 && !stored)
                r = rebuild_partition(w, p);
        if (r < 0)
                return r;
        r = mcd_store_get_offsets(w->store, p->partition, &p->committed, &p->seq);
        if (r >= 0 && !stored && p->seq < known_seq)    /* rebuilt: the counter goes on from the last owner's */
                r = raise_seq(w, p, known_seq);
        if (r >= 0 && stored && p->seq < known_seq) {
                log_error("partition %" PRId32 ": Redis's commit counter is %" PRId64 ", ours %" PRId64
                          ": Redis came back older than our commits",
                          p->partition, p->seq, known_seq);
                p->rolled_back = true;
        }
        p->rolled_back = p->rolled_back && stored;     /* a rebuild re-processes under its own record */
        if (r >= 0 && stored)
                r = p->rolled_back ? rollback_redo(w, p, known_seq) : redo_check(w, p);
        if (r < 0)
                return r;
        p->next = p->committed;
        p->untrimmed = 0;
        r = pair_reconcile(w, p);
        if (r < 0)
                return r;
        if ((r = start_offset(w, p, REL, p->committed.rel, &p->expect[REL])) < 0 ||
            (r = start_offset(w, p, SUB, p->committed.sub, &p->expect[SUB])) < 0)
                return r;
        if ((r = send_origin(w, p)) < 0)
                return r;
        r = side_op(w, p, REL, SIDE_SEEK, p->expect[REL]);
        if (r < 0)
                return r;
        q_clear(&p->q[REL]);
        q_clear(&p->q[SUB]);
        p->at_end[REL] = p->at_end[SUB] = p->heard[REL] = p->heard[SUB] = false;
        p->wait_logged = 0;
        /* The rules' clock goes back with the offsets, as after a restart:
         * left at what was applied before (a batch lost with Redis, say),
         * it would fire timers early when those events are applied again. */
        p->stream_time = INT64_MIN;
        set_side_paused(w, p, REL, false);
        set_side_paused(w, p, SUB, false);
        r = sub_start(w, p);
        if (r < 0)
                return r;
        p->phase = PAIR_READY;
        p->incarnation = ++w->pairs_epoch;
        p->clog_hold = UINT64_MAX;      /* rebuilt, or its outbox reconciled */
        set_paused(w, p, false);
        group_note(w, p);
        log_notice("partition %" PRId32 " ready at offsets %" PRId64 "/%" PRId64 " (generation %" PRId64 ")",
                   p->partition, p->committed.rel, p->committed.sub, p->generation);
        return 0;
}

/* A pair that could not become ready.  Failures on Kafka's side are tried
 * again under the same claim.  A Redis that stopped answering, or lost its
 * data meanwhile, may have lost the claim as well: the pair is claimed
 * again, and its offsets checked again for a rebuild; unless the claim was
 * lost to another instance, which fences it. */
static void pair_init_failed(struct worker *w, struct pair *p, int r) {
        if (p->phase == PAIR_FENCED)
                return;
        if (redis_unreachable(r)) {
                w->redis_ok = false;
                p->phase = PAIR_INIT;
        } else if (r == -ESTALE || r == -ENODATA) {
                if (r == -ESTALE && fence_if_taken(w, p))
                        return;
                log_warning("partition %" PRId32 ": Redis lost its claim; claiming it again", p->partition);
                p->phase = PAIR_INIT;
        } else {
                log_warning("partition %" PRId32 ": not ready yet: %s", p->partition, strerror(-r));
        }
}

/* --------------------------------------------------------------- polling -- */

static void take_message(struct worker *w, rd_kafka_message_t *m, int t) {
        struct inmsg *c;
        struct pair *p;

        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF && (p = pair_find(w, m->partition)) &&
            p->phase == PAIR_READY && (p->expect[t] < 0 || m->offset >= p->expect[t])) {
                p->at_end[t] = p->heard[t] = true;
                p->end_pos[t] = m->offset;
        }
        if (m->err) {
                if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                        w->st.kafka_errors++;
                        log_warning("Kafka: %s", rd_kafka_message_errstr(m));
                }
                rd_kafka_message_destroy(m);
                return;
        }
        p = pair_find(w, m->partition);
        if (!p || p->phase != PAIR_READY || (p->expect[t] >= 0 && m->offset < p->expect[t])) {
                rd_kafka_message_destroy(m);    /* not ours, or before the stored offset */
                return;
        }
        p->expect[t] = m->offset + 1;
        p->last_arrival = mono_ms();
        p->at_end[t] = false;
        p->heard[t] = true;
        mcd_log_full(LOG_DEBUG,
                     &(struct mcd_log_fields){.topic = topic_of(w, t), .partition = m->partition, .offset = m->offset},
                     "buffered message with timestamp %" PRId64, rd_kafka_message_timestamp(m, NULL));
        c = inmsg_copy(m, mono_ms());
        rd_kafka_message_destroy(m);
        if (!c || q_push(&p->q[t], c) < 0) {
                log_error("out of memory buffering a message; partition %" PRId32 " restarts", p->partition);
                free(c);
                pair_restart(w, p);
        }
}

/* Backpressure, per side and global.  A side holding side_limit() messages
 * is paused on its handle, and resumed once the merge has taken half of them:
 * one topic cannot run far ahead of the other.  Across all pairs, once
 * buffer.max_events are buffered the handles are no longer drained, so what
 * is fetched waits in librdkafka's queues, themselves bounded by
 * queued.max.messages.kbytes; they are drained again when the merge runs out
 * of work, since what it waits for may be queued there.  Pausing would be
 * the wrong tool for the global bound: it throws away what librdkafka has
 * prefetched for the partition, to be fetched again. */
static size_t buffer_budget(const struct worker *w) {
        return (size_t)(w->cfg->buffer_max > w->cfg->batch_max ? w->cfg->buffer_max : w->cfg->batch_max);
}

/* A side's share of the budget (at least 256 messages, at most two
 * batches): however the merge drains the handles, no side holds more. */
static size_t side_limit(const struct worker *w) {
        size_t share = buffer_budget(w) / (2 * (w->n_pairs ? w->n_pairs : 1)), most = (size_t)w->cfg->batch_max * 2 + 100;

        if (share < 256)
                share = 256;
        return share < most ? share : most;
}

/* How many events the next batch takes: batch.max_events, fewer when the
 * customers' state (which grows with their history) would make the batch
 * hold more than batch.max_bytes of it.  Estimated from the mean state of
 * the last batches' customers, as if each event were another customer's, so
 * the estimate errs on the small side; never fewer than 16 events. */
/* Customers a batch may hold: batch.max_bytes of state, estimated from the
 * last batches' mean state per customer, within batch.max_events and never
 * below 16. */
static size_t batch_customers(const struct worker *w) {
        size_t n = (size_t)w->cfg->batch_max, least = n < 16 ? n : 16;

        if (w->state_per_customer > 0 && (double)w->cfg->batch_max_bytes / w->state_per_customer < (double)n)
                n = (size_t)((double)w->cfg->batch_max_bytes / w->state_per_customer);
        return n > least ? n : least;
}

static size_t buffered(const struct worker *w) {
        size_t n = 0;
        for (size_t i = 0; i < w->n_pairs; i++)
                if (w->pairs[i]->phase == PAIR_READY)
                        n += q_len(&w->pairs[i]->q[REL]) + q_len(&w->pairs[i]->q[SUB]);
        return n;
}

static void set_side_paused(struct worker *w, struct pair *p, int t, bool paused) {
        rd_kafka_topic_partition_list_t *l;

        if (p->side_paused[t] == paused)
                return;
        l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, topic_of(w, t), p->partition);
        if (t == REL && paused)
                rd_kafka_pause_partitions(w->consumer, l);
        else if (t == REL)
                rd_kafka_resume_partitions(w->consumer, l);
        else if (paused)
                rd_kafka_pause_partitions(w->sub_reader, l);
        else
                rd_kafka_resume_partitions(w->sub_reader, l);
        rd_kafka_topic_partition_list_destroy(l);
        p->side_paused[t] = paused;
}

static void apply_backpressure(struct worker *w) {
        size_t limit = side_limit(w);

        for (size_t i = 0; i < w->n_pairs; i++) {
                struct pair *p = w->pairs[i];
                if (p->phase != PAIR_READY)
                        continue;
                for (int t = REL; t <= SUB; t++) {
                        if (q_len(&p->q[t]) >= limit)
                                set_side_paused(w, p, t, true);
                        else if (q_len(&p->q[t]) < limit / 2)
                                set_side_paused(w, p, t, false);
                }
        }
}

/* Drains up to `chunk` messages from one handle; returns how many. */
static size_t drain(struct worker *w, rd_kafka_t *rk, int t, size_t chunk) {
        rd_kafka_message_t *m;
        size_t n = 0;
        while (n < chunk && (m = rd_kafka_consumer_poll(rk, 0))) {
                take_message(w, m, t);
                n++;
        }
        return n;
}

static size_t mergeable(const struct worker *w);

/* Does some pair wait for the topic behind handle t: its t side empty, the
 * other side holding messages? */
static bool merge_waits_for(const struct worker *w, int t) {
        for (size_t i = 0; i < w->n_pairs; i++) {
                const struct pair *p = w->pairs[i];
                if (p->phase == PAIR_READY && q_len(&p->q[t]) == 0 && q_len(&p->q[!t]) > 0)
                        return true;
        }
        return false;
}

/* Drains what librdkafka has fetched and waits for more only while fewer
 * than `enough` messages can be merged, for at most wait_ms.  Past the
 * buffer budget a handle is drained only while the merge cannot fill a batch
 * and some pair waits for that handle's topic: what is buffered is of no use
 * without it.  So the budget never keeps a side waited for from being
 * fetched for good: either the merge fills batches from other pairs, making
 * room, or it cannot, and that side's handle is drained; the side, empty,
 * is never paused (apply_backpressure). */
static void poll_inputs(struct worker *w, int wait_ms, size_t enough) {
        int64_t deadline = mono_ms() + wait_ms;
        size_t budget = buffer_budget(w);
        rd_kafka_message_t *first;

        /* The group handle is served at least once, however full the
         * buffers: rebalances arrive through it. */
        if ((first = rd_kafka_consumer_poll(w->consumer, 0)))
                take_message(w, first, REL);
        for (;;) {
                bool room = buffered(w) < budget;
                bool starved = !room && mergeable(w) < enough;
                size_t got = 0;

                if (room || (starved && merge_waits_for(w, REL)))
                        got += drain(w, w->consumer, REL, 1024);
                if (room || (starved && merge_waits_for(w, SUB)))
                        got += drain(w, w->sub_reader, SUB, 1024);
                apply_backpressure(w);
                if (got > 0 && !w->sig->stop)
                        continue;
                if (mergeable(w) >= enough || mono_ms() >= deadline || w->sig->stop)
                        return;
                if (!room && !merge_waits_for(w, REL) && !merge_waits_for(w, SUB))
                        return;         /* full: what can be merged goes first */
                rd_kafka_message_t *m = rd_kafka_consumer_poll(w->consumer, 2);
                if (m)
                        take_message(w, m, REL);
        }
}

/* ----------------------------------------------------------------- merge -- */

struct item {
        struct inmsg *m;
        struct pair *pair;
        uint64_t incarnation;        /* the pair's when collected */
        int topic;
        bool good;
        struct mcd_event ev;
        struct mcd_avro_error err;
};

/* Where side t has read up to: where PARTITION_EOF found its end while it
 * is there (past transaction markers), else the next offset expected. */
static int64_t side_position(const struct pair *p, int t) {
        return p->at_end[t] && p->end_pos[t] > p->expect[t] ? p->end_pos[t] : p->expect[t];
}

/* The high watermark of side t's partition in the broker's last fetch
 * answer, or -1 when none came since the pair became ready (the handle's may
 * be left from an earlier ownership). */
static int64_t side_end(const struct worker *w, const struct pair *p, int t) {
        int64_t lo, hi;

        if (!p->heard[t] || rd_kafka_get_watermark_offsets(t == REL ? w->consumer : w->sub_reader, topic_of(w, t),
                                                           p->partition, &lo, &hi) != RD_KAFKA_RESP_ERR_NO_ERROR)
                return -1;
        return hi >= 0 ? hi : -1;
}

/* Has side t read all its partition holds, as far as the broker's last
 * fetch answer tells (Kafka Streams' test, KIP-695)?  An open transaction
 * keeps the high watermark ahead of what read_committed delivers: the side
 * has not caught up until it is decided. */
static bool side_caught_up(const struct worker *w, const struct pair *p, int t) {
        int64_t end = side_end(w, p, t);

        return end >= 0 && side_position(p, t) >= end;
}

/* How long a buffered message waits for the other, empty side of its pair:
 * merge_wait once that side has caught up (as Kafka Streams applies
 * max.task.idle.ms); for as long as it takes (INT64_MAX) while its end is
 * unknown or ahead of it (start-up, lag, its leader unavailable): order
 * comes before progress. */
static int64_t merge_patience(const struct worker *w, const struct pair *p, int empty_side) {
        return side_caught_up(w, p, empty_side) ? w->cfg->merge_wait : INT64_MAX;
}

#define LONG_WAIT_MS 10000           /* a side waiting this long for the other is logged, */
#define LONG_WAIT_LOG_MS 30000       /* at most once per this per pair */

/* Logs that side t of a pair has waited `waited` ms for the other, empty
 * side, and why, once past LONG_WAIT_MS and then every LONG_WAIT_LOG_MS at
 * most: the operator sees why the partition is not progressing. */
static void merge_wait_log(struct worker *w, struct pair *p, int t, int64_t waited, int64_t mono_now) {
        int64_t end;

        if (waited < LONG_WAIT_MS || (p->wait_logged && mono_now - p->wait_logged < LONG_WAIT_LOG_MS))
                return;
        end = side_end(w, p, !t);
        p->wait_logged = mono_now;
        p->wait_since = mono_now - waited;
        p->wait_for = !t;
        if (end < 0)
                log_warning("partition %" PRId32 ": %zu messages of %s have waited %" PRId64 " s for %s, "
                            "which has not answered a fetch yet; the merge waits for it",
                            p->partition, q_len(&p->q[t]), topic_of(w, t), waited / 1000, topic_of(w, !t));
        else
                log_warning("partition %" PRId32 ": %zu messages of %s have waited %" PRId64 " s for %s, "
                            "read up to offset %" PRId64 " of %" PRId64 "; the merge waits for it",
                            p->partition, q_len(&p->q[t]), topic_of(w, t), waited / 1000, topic_of(w, !t),
                            side_position(p, !t), end);
}

/* Takes the next message of a pair in timestamp order (a relationship first
 * on a tie), or NULL when the order is not known yet. */
static struct inmsg *merge_next(struct worker *w, struct pair *p, int *topic, int64_t mono_now) {
        struct msgq *r = &p->q[REL], *s = &p->q[SUB];
        int t;

        if (q_len(r) && q_len(s)) {
                t = r->v[r->head]->timestamp <= s->v[s->head]->timestamp ? REL : SUB;
        } else if (q_len(r) || q_len(s)) {
                int64_t waited;
                t = q_len(r) ? REL : SUB;
                waited = mono_now - p->q[t].v[p->q[t].head]->arrived;
                if (waited < merge_patience(w, p, !t)) {
                        merge_wait_log(w, p, t, waited, mono_now);
                        return NULL;
                }
        } else {
                return NULL;
        }
        if (p->wait_logged) {
                log_notice("partition %" PRId32 ": merging again after waiting %" PRId64 " s for %s", p->partition,
                           (mono_now - p->wait_since) / 1000, topic_of(w, p->wait_for));
                p->wait_logged = 0;
        }
        *topic = t;
        return p->q[t].v[p->q[t].head++];
}

/* How many of a queue's messages have a timestamp at or before t (their
 * timestamps are taken as ascending, as a partition's mostly are). */
static size_t count_until(const struct msgq *q, int64_t t) {
        size_t lo = q->head, hi = q->tail;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (q->v[mid]->timestamp <= t)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo - q->head;
}

/* About how many buffered messages the merge could take now: while both
 * sides of a pair hold messages, those up to the earlier of the two sides'
 * last timestamps; a lone side, all of it once its patience is over. */
static size_t mergeable(const struct worker *w) {
        int64_t mono_now = mono_ms();
        size_t n = 0;

        for (size_t i = 0; i < w->n_pairs; i++) {
                const struct pair *p = w->pairs[i];
                const struct msgq *r = &p->q[REL], *s = &p->q[SUB];
                int t = q_len(r) ? REL : SUB;

                if (p->phase != PAIR_READY)
                        continue;
                if (q_len(r) && q_len(s)) {
                        int64_t upto = r->v[r->tail - 1]->timestamp;
                        if (s->v[s->tail - 1]->timestamp < upto)
                                upto = s->v[s->tail - 1]->timestamp;
                        n += count_until(r, upto) + count_until(s, upto);
                } else if (q_len(&p->q[t]) &&
                           mono_now - p->q[t].v[p->q[t].head]->arrived >= merge_patience(w, p, !t)) {
                        n += q_len(&p->q[t]);
                }
        }
        return n;
}

/* --------------------------------------------------------------- batches -- */

struct batch {
        uint64_t epoch;              /* w->pairs_epoch when collected: the pairs it refers to */
        size_t n_pairs;              /* w->n_pairs then: the size of the arrays per pair */
        struct mcd_offsets *next;    /* per pair, the offsets after this batch's messages */
        size_t n_due;                /* the first n_due customers were due by the wall clock */
        mcd_time_t *stream_time;     /* per pair, before the batch was applied */
        struct item *items;
        size_t n_items;
        char **ids;                  /* customers to load */
        int32_t *id_partition;
        size_t n_ids, cap_ids;
        struct mcd_strmap index;     /* id -> index + 1 */
        struct mcd_customer *customers;
        bool *had_due;               /* customer had a due time when loaded */
        char **state;                /* customers' encoded state, made once for Redis and the changelog */
        size_t *state_len;
        struct mcd_outcomes out;
        /* frames per pair, in order */
        void ***frames;
        size_t **frame_lens;
        size_t *n_frames;
};

static int batch_add_id(struct batch *b, const char *id, int32_t partition) {
        int r;
        if (mcd_strmap_get(&b->index, id))
                return 0;
        if (b->n_ids == b->cap_ids) {
                size_t cap = b->cap_ids ? b->cap_ids * 2 : 128;
                char **v = realloc(b->ids, cap * sizeof(*v));
                int32_t *pv;
                if (!v)
                        return -ENOMEM;
                b->ids = v;
                pv = realloc(b->id_partition, cap * sizeof(*pv));
                if (!pv)
                        return -ENOMEM;
                b->id_partition = pv;
                b->cap_ids = cap;
        }
        b->ids[b->n_ids] = strdup(id);
        if (!b->ids[b->n_ids])
                return -ENOMEM;
        b->id_partition[b->n_ids] = partition;
        r = mcd_strmap_put(&b->index, id, (void *)(uintptr_t)(b->n_ids + 1));
        if (r < 0) {
                free(b->ids[b->n_ids]);
                return r;
        }
        b->n_ids++;
        return 0;
}

static void batch_free(struct batch *b) {
        size_t n_pairs = b->n_pairs;

        for (size_t i = 0; i < b->n_items; i++) {
                if (b->items[i].good)
                        mcd_event_clear(&b->items[i].ev);
                free(b->items[i].m);
        }
        free(b->next);
        free(b->stream_time);
        free(b->items);
        if (b->customers)
                for (size_t i = 0; i < b->n_ids; i++)
                        mcd_customer_clear(&b->customers[i]);
        free(b->customers);
        if (b->state)
                for (size_t i = 0; i < b->n_ids; i++)
                        free(b->state[i]);
        free(b->state);
        free(b->state_len);
        free(b->had_due);
        for (size_t i = 0; i < b->n_ids; i++)
                free(b->ids[i]);
        free(b->ids);
        free(b->id_partition);
        mcd_strmap_clear(&b->index);
        mcd_outcomes_clear(&b->out);
        if (b->frames)
                for (size_t i = 0; i < n_pairs; i++) {
                        for (size_t j = 0; j < b->n_frames[i]; j++)
                                free(b->frames[i][j]);
                        free(b->frames[i]);
                        free(b->frame_lens[i]);
                }
        free(b->frames);
        free(b->frame_lens);
        free(b->n_frames);
}

static size_t pair_index(const struct worker *w, const struct pair *p) {
        for (size_t i = 0; i < w->n_pairs; i++)
                if (w->pairs[i] == p)
                        return i;
        return 0;
}

static int add_frame(struct batch *b, size_t pi, const struct mcd_frame *f) {
        void *buf, **v;
        size_t len, *lv;
        int r = mcd_frame_encode(f, &buf, &len);

        if (r < 0)
                return r;
        v = realloc(b->frames[pi], (b->n_frames[pi] + 1) * sizeof(*v));
        lv = v ? realloc(b->frame_lens[pi], (b->n_frames[pi] + 1) * sizeof(*lv)) : NULL;
        if (v)
                b->frames[pi] = v;
        if (!v || !lv) {
                free(buf);
                return -ENOMEM;
        }
        b->frame_lens[pi] = lv;
        v[b->n_frames[pi]] = buf;
        lv[b->n_frames[pi]++] = len;
        return 0;
}

static int outcome_frames(struct worker *w, struct batch *b, size_t pi, size_t from) {
        for (size_t i = from; i < b->out.n; i++) {
                const struct mcd_outcome *o = &b->out.v[i];
                struct mcd_frame f = {.kind = MCD_FRAME_OUTCOME};
                void *val;
                size_t len;
                int r = mcd_avro_encode_outcome(w->avro, o, &val, &len);
                if (r < 0)
                        return r;
                f.id = o->event_id;
                f.id_len = strlen(o->event_id);
                f.key = o->customer_id;
                f.key_len = strlen(o->customer_id);
                f.value = val;
                f.value_len = len;
                r = add_frame(b, pi, &f);
                free(val);
                if (r < 0)
                        return r;
                w->st.outcomes[o->type]++;
                if (o->type == MCD_OUT_TRANSITION_REJECTED || o->type == MCD_OUT_RESALE_REJECTED) {
                        int k = mcd_stats_rejection_index(o->reason);
                        if (k >= 0)
                                w->st.rejections[k]++;
                }
        }
        return 0;
}

static int dead_letter_frame(struct worker *w, struct batch *b, size_t pi, const struct item *it) {
        char id[512], part[16], off[24];
        const char *topic = topic_of(w, it->topic);
        struct mcd_frame f = {.kind = MCD_FRAME_DEAD_LETTER};

        snprintf(id, sizeof(id), "dlq:%s:%" PRId32 ":%" PRId64, topic, it->m->partition, it->m->offset);
        snprintf(part, sizeof(part), "%" PRId32, it->m->partition);
        snprintf(off, sizeof(off), "%" PRId64, it->m->offset);
        f.id = id;
        f.id_len = strlen(id);
        f.key = it->m->key;
        f.key_len = it->m->key_len;
        f.value = it->m->payload;
        f.value_len = it->m->len;
        f.headers[0] = (struct mcd_frame_header){"error", it->err.code, strlen(it->err.code)};
        f.headers[1] = (struct mcd_frame_header){"error_message", it->err.message, strlen(it->err.message)};
        f.headers[2] = (struct mcd_frame_header){"source_topic", topic, strlen(topic)};
        f.headers[3] = (struct mcd_frame_header){"source_partition", part, strlen(part)};
        f.headers[4] = (struct mcd_frame_header){"source_offset", off, strlen(off)};
        f.n_headers = 5;
        {
                int k = mcd_stats_dead_letter_index(it->err.code);
                if (k >= 0)
                        w->st.dead_letters[k]++;
        }
        mcd_log_full(LOG_WARNING,
                     &(struct mcd_log_fields){.topic = topic, .partition = it->m->partition,
                                              .offset = it->m->offset, .error_code = it->err.code},
                     "dead letter: %s", it->err.message);
        return add_frame(b, pi, &f);
}

/* Decodes a message; a bad one becomes a dead letter. */
static void decode_item(struct mcd_avro *avro, struct item *it) {
        enum mcd_avro_kind kind = it->topic == REL ? MCD_AVRO_RELATIONSHIP_EVENT : MCD_AVRO_SUBSCRIPTION_EVENT;

        it->good = mcd_avro_decode_event(avro, kind, it->m->payload, it->m->len, &it->ev, &it->err) == 0;
        if (it->good && (it->m->key_len != strlen(it->ev.customer_id) ||
                         memcmp(it->m->key, it->ev.customer_id, it->m->key_len) != 0)) {
                it->err.code = MCD_DLQ_KEY_MISMATCH;
                snprintf(it->err.message, sizeof(it->err.message),
                         "The message key differs from the event's customer_id \"%s\"; producers must key "
                         "each event by its customer_id.",
                         it->ev.customer_id);
                mcd_event_clear(&it->ev);
                it->good = false;
        }
}

struct decode_job {
        struct worker *w;
        struct batch *b;
};

/* Decodes one item of a batch with the codec of the thread it runs on. */
static void decode_one(void *ctx, size_t i, unsigned thread) {
        struct decode_job *j = ctx;

        decode_item(j->w->decoders[thread], &j->b->items[i]);
}

/* Takes up to max messages from the pairs, in merge order per pair. */
/* Does m bring one customer too many into the batch (batch_customers)?
 * Its key is added to the batch's set otherwise.  Keyless messages (dead
 * letters) load no state and are not counted. */
static bool customer_limit(struct mcd_seen *keys, const struct inmsg *m, size_t max_customers) {
        uint64_t h;

        if (!m->key)
                return false;
        h = mcd_id_hash_n(m->key, m->key_len);
        if (mcd_seen_has(keys, h))
                return false;
        if (mcd_seen_count(keys) >= max_customers)
                return true;
        return mcd_seen_add(keys, h, 0) < 0;    /* out of memory: this batch ends here */
}

/* Takes up to max events, of at most batch_customers() customers: a
 * customer's events share its one load and write, however many. */
static int batch_collect(struct worker *w, struct batch *b, size_t max) {
        struct mcd_seen keys = {0};
        size_t max_customers = batch_customers(w);
        int64_t mono_now = mono_ms();
        bool full = false;

        b->epoch = w->pairs_epoch;
        b->n_pairs = w->n_pairs;
        b->items = calloc(max ? max : 1, sizeof(*b->items));
        b->next = calloc(w->n_pairs + 1, sizeof(*b->next));
        b->stream_time = calloc(w->n_pairs + 1, sizeof(*b->stream_time));
        if (!b->items || !b->next || !b->stream_time)
                return -ENOMEM;
        /* Round robin over the pairs, so that no partition starves. */
        w->next_pair = w->n_pairs ? (w->next_pair + 1) % w->n_pairs : 0;
        for (size_t k = 0; k < w->n_pairs && b->n_items < max && !full; k++) {
                struct pair *p = w->pairs[(w->next_pair + k) % w->n_pairs];
                struct inmsg *m;
                int t;
                if (p->phase != PAIR_READY || p->clog_failed)
                        continue;
                while (b->n_items < max && (m = merge_next(w, p, &t, mono_now))) {
                        struct item *it;
                        if ((full = customer_limit(&keys, m, max_customers))) {
                                p->q[t].head--;         /* left for the next batch */
                                break;
                        }
                        it = &b->items[b->n_items++];
                        it->m = m;
                        it->pair = p;
                        it->incarnation = p->incarnation;
                        it->topic = t;
                        if (t == REL)
                                p->next.rel = m->offset + 1;
                        else
                                p->next.sub = m->offset + 1;
                }
        }
        mcd_seen_clear(&keys);
        for (size_t i = 0; i < w->n_pairs; i++)
                b->next[i] = w->pairs[i]->next;
        return 0;
}

/* Gives a batch's messages back to their pairs, as if never collected (the
 * batch was collected ahead and cannot be used).  The messages of pairs no
 * longer ready are dropped: those pairs read again from Redis's offsets. */
static void batch_rewind(struct worker *w, struct batch *b);

/* Undoes an applied batch that cannot be committed: the pairs' stream time
 * goes back, the messages back to their queues (the customers, loaded
 * copies, are dropped with the batch). */
static void batch_unapply(struct worker *w, struct batch *b) {
        /* Inside process_batch no rebalance runs: the pairs are where they
         * were when the batch was applied, though some may have changed
         * phase. */
        for (size_t i = 0; i < b->n_pairs && b->n_pairs == w->n_pairs; i++)
                w->pairs[i]->stream_time = b->stream_time[i];
        batch_rewind(w, b);
}

static void batch_rewind(struct worker *w, struct batch *b) {
        for (size_t i = b->n_items; i-- > 0;) {
                struct item *it = &b->items[i];
                struct pair *p = pair_find(w, it->m->partition);
                struct msgq *q;

                if (!p || p->phase != PAIR_READY || p->incarnation != it->incarnation)
                        continue;       /* re-read from the stored offsets */
                q = &p->q[it->topic];
                if (q->head == 0) {
                        if (q->tail == q->cap) {
                                size_t cap = q->cap ? q->cap * 2 : 256;
                                struct inmsg **v = realloc(q->v, cap * sizeof(*v));
                                if (!v) {
                                        log_error("out of memory; partition %" PRId32 " restarts", p->partition);
                                        pair_restart(w, p);
                                        continue;
                                }
                                q->v = v;
                                q->cap = cap;
                        }
                        memmove(q->v + 1, q->v, q->tail * sizeof(*q->v));
                        q->head++;
                        q->tail++;
                }
                q->v[--q->head] = it->m;
                if (it->topic == REL)
                        p->next.rel = it->m->offset;
                else
                        p->next.sub = it->m->offset;
                it->m = NULL;
        }
}

/* A pair is idle when both sides reached their partition's end, nothing is
 * buffered and nothing arrived for merge_wait: only then may the wall clock fire its timers, so that input
 * replayed from history fires them in stream time, exactly as replay does. */
static bool pair_idle(const struct worker *w, const struct pair *p) {
        return p->phase == PAIR_READY && !p->clog_failed && p->at_end[REL] && p->at_end[SUB] && q_len(&p->q[REL]) == 0 &&
               q_len(&p->q[SUB]) == 0 && mono_ms() - p->last_arrival >= w->cfg->merge_wait;
}

/* The customers due by the wall clock in the idle pairs, asked for in one
 * round trip at most once a second, up to 1000.  (Bounding it by
 * the batch size starved customers behind those whose due entry stays.) */
static int batch_due(struct worker *w, struct batch *b, int64_t now) {
        int32_t *parts, *id_parts = NULL;
        char **ids = NULL;
        size_t n_parts = 0, n = 0;
        int r;

        if (now < w->next_due_scan)
                return 0;
        w->next_due_scan = now + 1000;
        parts = calloc(w->n_pairs + 1, sizeof(*parts));
        if (!parts)
                return -ENOMEM;
        for (size_t i = 0; i < w->n_pairs; i++)
                if (pair_idle(w, w->pairs[i]))
                        parts[n_parts++] = w->pairs[i]->partition;
        r = mcd_store_due(w->store, parts, n_parts, now, 1000, &ids, &id_parts, &n);
        /* Idle, nothing due: is the state still there?  A Redis restarted
         * empty has no due index either, and would otherwise be found only
         * by the next commit, whenever input comes. */
        if (r >= 0 && n == 0 && n_parts > 0) {
                bool exists = true;
                r = mcd_store_meta_exists(w->store, &exists);
                if (r >= 0 && !exists)
                        r = -ENODATA;
        }
        for (size_t j = 0; r >= 0 && j < n; j++)
                r = batch_add_id(b, ids[j], id_parts[j]);
        mcd_store_ids_free(ids, n);
        free(id_parts);
        free(parts);
        return r;
}

static struct mcd_customer *batch_customer(struct batch *b, const char *id, size_t *index) {
        uintptr_t v = (uintptr_t)mcd_strmap_get(&b->index, id);
        if (!v)
                return NULL;
        *index = v - 1;
        return &b->customers[v - 1];
}

/* Applies timers and events to the loaded customers, producing frames. */
static int batch_apply(struct worker *w, struct batch *b, int64_t now, size_t n_due) {
        int r;

        for (size_t i = 0; i < b->n_pairs; i++)
                b->stream_time[i] = w->pairs[i]->stream_time;

        /* Timers and park deadlines first: they were due before now. */
        for (size_t i = 0; i < n_due; i++) {
                struct pair *p = pair_find(w, b->id_partition[i]);
                size_t pi = pair_index(w, p), from = b->out.n;
                while ((r = mcd_fire_next_due(&b->customers[i], now, &w->rules, &b->out)) > 0)
                        w->st.timers_fired++;
                if (r < 0 || (r = outcome_frames(w, b, pi, from)) < 0)
                        return r;
        }
        for (size_t i = 0; i < b->n_items; i++) {
                struct item *it = &b->items[i];
                size_t pi = pair_index(w, it->pair), from = b->out.n, ci;
                struct mcd_customer *c;

                if (!it->good) {
                        if ((r = dead_letter_frame(w, b, pi, it)) < 0)
                                return r;
                        continue;
                }
                c = batch_customer(b, it->ev.customer_id, &ci);
                if (!c)
                        return -EINVAL;
                /* The rules' clock for input is stream time, as in replay:
                 * what fell due before this event fires first. */
                if (it->ev.occurred_at > it->pair->stream_time)
                        it->pair->stream_time = it->ev.occurred_at;
                while ((r = mcd_fire_next_due(c, it->pair->stream_time, &w->rules, &b->out)) > 0)
                        w->st.timers_fired++;
                if (r < 0)
                        return r;
                r = mcd_apply_event(c, &it->ev, it->pair->stream_time, &w->rules, &b->out);
                if (r < 0 || (r = outcome_frames(w, b, pi, from)) < 0)
                        return r;
                w->st.events[it->topic][it->ev.type]++;
        }
        return 0;
}

static void batch_destroy(struct batch *b);

/* Frees the last batch: nothing refers to it once committed (its frames
 * went to the pending list, its changelog records were copied). */
static void free_spent(void *ctx) {
        struct worker *w = ctx;

        batch_destroy(w->spent);
        w->spent = NULL;
}

/* Commits a batch; with `ahead`, loads that batch's customers in the same
 * round trip (*load_r its result), freeing the last batch while Redis runs
 * them. */
static int batch_commit(struct worker *w, struct batch *b, char *marks, struct batch *ahead, int *load_r) {
        struct mcd_store_customer *sc = calloc(b->n_ids + 1, sizeof(*sc));
        struct mcd_store_partition *sp = calloc(w->n_pairs + 1, sizeof(*sp));
        struct mcd_store_batch sb = {
                .customers = sc, .partitions = sp, .while_running = free_spent, .while_running_ctx = w};
        int r;

        if (!sc || !sp) {
                free(sc);
                free(sp);
                return -ENOMEM;
        }
        for (size_t i = 0; i < b->n_ids; i++) {
                sc[i].customer = &b->customers[i];
                sc[i].partition = b->id_partition[i];
                sc[i].state = b->state[i];
                sc[i].state_len = b->state_len[i];
                sc[i].no_due_before = !b->had_due[i];
        }
        sb.n_customers = b->n_ids;
        for (size_t i = 0; i < w->n_pairs; i++) {
                struct pair *p = w->pairs[i];
                if (p->phase != PAIR_READY)
                        continue;
                sp[sb.n_partitions++] = (struct mcd_store_partition){
                        .partition = p->partition,
                        .generation = p->generation,
                        .seq = p->seq,
                        .set_offsets = b->next[i].rel != p->committed.rel || b->next[i].sub != p->committed.sub,
                        .offsets = b->next[i],
                        .frames = (const void *const *)b->frames[i],
                        .frame_lens = b->frame_lens[i],
                        .n_frames = b->n_frames[i],
                        .trim = p->untrimmed,
                        .marks = pair_marks(p, marks),
                };
        }
        fault_point(w->fault_stop_before_commit, w->st.batches + 1, "commit");
        if (ahead)
                r = mcd_store_commit_and_load(w->store, &sb, (const char *const *)ahead->ids, ahead->n_ids,
                                              ahead->customers, load_r);
        else
                r = mcd_store_commit(w->store, &sb);
        free(sc);
        free(sp);
        return r;
}

/* After a commit: the frames become pending, trims are done, offsets are
 * the committed ones, the customers go to the changelog once delivered. */
static int batch_committed(struct worker *w, struct batch *b) {
        int r;

        for (size_t i = 0; i < w->n_pairs; i++) {
                struct pair *p = w->pairs[i];
                if (p->phase != PAIR_READY)
                        continue;
                bool moved = b->next[i].rel != p->committed.rel || b->next[i].sub != p->committed.sub;
                p->committed = b->next[i];
                p->seq++;
                if (moved)
                        group_note(w, p);
                p->untrimmed = 0;
                for (size_t j = 0; j < b->n_frames[i]; j++) {
                        r = pending_push(w, b->frames[i][j], b->frame_lens[i][j], p->partition, w->st.batches + 1);
                        if (r < 0)
                                return r;
                        b->frames[i][j] = NULL;
                }
        }
        return 0;
}

/* Queues the batch's changelog records: each customer's state (the JSON
 * written to Redis, wrapped with its partition) and the offsets and marks of
 * the pairs the batch touched.  They go out once the batch's frames are
 * delivered (publish_pending). */
static int changelog_queue(struct worker *w, struct batch *b, const char *marks, uint64_t seq) {
        int64_t parked = 0;
        int r = 0;

        for (size_t i = 0; r >= 0 && i < b->n_ids; i++) {
                char *val = NULL;
                size_t len = 0;
                if (mcd_state_record(b->id_partition[i], b->state[i], b->state_len[i], &val, &len) < 0)
                        return -ENOMEM;
                r = clog_push(w, seq, b->id_partition[i], b->ids[i], val, len);
                if (r < 0)
                        free(val);
                parked += (int64_t)b->customers[i].n_parked;
        }
        w->st.parked = parked;
        for (size_t i = 0; r >= 0 && i < w->n_pairs; i++) {
                struct pair *p = w->pairs[i];
                char key[64], *val = NULL;
                bool touched = b->n_frames[i] > 0;
                for (size_t j = 0; j < b->n_items && !touched; j++)
                        touched = b->items[j].pair == p;
                for (size_t j = 0; j < b->n_ids && !touched; j++)
                        touched = b->id_partition[j] == p->partition;
                if (p->phase != PAIR_READY || !touched)
                        continue;
                snprintf(key, sizeof(key), CHANGELOG_OFFSETS_KEY "%" PRId32, p->partition);
                if (!(val = offsets_record(&p->committed, pair_marks(p, marks))))
                        return -ENOMEM;
                r = clog_push(w, seq, p->partition, key, val, strlen(val));
                if (r < 0)
                        free(val);
        }
        return r;
}

/* A failed commit: nothing of the batch was written.  Every ready pair goes
 * back to INIT and re-reads from Redis's offsets. */
static void batch_abort(struct worker *w, int r) {
        if (r == -ESTALE)
                log_warning("a partition was taken over by another instance; dropping the batch");
        else if (r == MCD_STORE_ROLLBACK)
                log_error("Redis came back older than this instance's last commits (a rollback): the batch is "
                          "dropped and the partitions re-processed from Redis's offsets, what was already "
                          "published looked up");
        else if (r == -ENODATA)
                log_error("Redis lost the daemon's state (its data was emptied); rebuilding from the changelog");
        else
                log_error("batch not committed: %s; retrying from the stored offsets", strerror(-r));
        if (redis_unreachable(r)) {
                w->redis_ok = false;
                w->st.redis_errors++;
        }
        if (r == -ENODATA) {
                bool created;
                if (mcd_store_init_meta(w->store, &created) < 0)
                        w->redis_ok = false;
        }
        for (size_t i = 0; i < w->n_pairs; i++) {
                struct pair *p = w->pairs[i];
                if (p->phase != PAIR_READY)
                        continue;
                if (r == -ESTALE && fence_if_taken(w, p))
                        continue;
                p->rolled_back = p->rolled_back || r == MCD_STORE_ROLLBACK;
                pair_restart(w, p);
        }
}

/* Collects a batch from what is buffered (and the customers due by the
 * wall clock), decodes it and lists its customers; they are not loaded. */
static int batch_prepare(struct worker *w, struct batch *b, int64_t now) {
        int r;

        mcd_outcomes_init(&b->out);
        r = batch_collect(w, b, (size_t)w->cfg->batch_max);
        if (r >= 0)
                r = batch_due(w, b, now);
        b->n_due = b->n_ids;
        if (r >= 0)
                mcd_par_for(w->par, b->n_items, decode_one, &(struct decode_job){.w = w, .b = b});
        for (size_t i = 0; r >= 0 && i < b->n_items; i++)
                if (b->items[i].good)
                        r = batch_add_id(b, b->items[i].ev.customer_id, b->items[i].pair->partition);
        if (r < 0)
                return r;
        b->frames = calloc(b->n_pairs + 1, sizeof(*b->frames));
        b->frame_lens = calloc(b->n_pairs + 1, sizeof(*b->frame_lens));
        b->n_frames = calloc(b->n_pairs + 1, sizeof(*b->n_frames));
        b->customers = calloc(b->n_ids + 1, sizeof(*b->customers));
        b->had_due = calloc(b->n_ids + 1, sizeof(*b->had_due));
        b->state = calloc(b->n_ids + 1, sizeof(*b->state));
        b->state_len = calloc(b->n_ids + 1, sizeof(*b->state_len));
        if (!b->frames || !b->frame_lens || !b->n_frames || !b->customers || !b->had_due || !b->state ||
            !b->state_len)
                return -ENOMEM;
        return 0;
}

static bool batch_empty(const struct batch *b) {
        return b->n_items == 0 && b->n_ids == 0;
}

/* Once loaded: which customers had something due, for the due index. */
static void batch_loaded(struct batch *b) {
        for (size_t i = 0; i < b->n_ids; i++) {
                mcd_time_t due;
                b->had_due[i] = mcd_next_due(&b->customers[i], &due, NULL);
        }
}

static void batch_destroy(struct batch *b) {
        if (b) {
                batch_free(b);
                free(b);
        }
}

/* Drops a batch that was collected but will not be committed, its messages
 * back in their queues (see batch_rewind).  NULL is nothing to drop. */
static void batch_give_back(struct worker *w, struct batch *b) {
        if (b) {
                batch_rewind(w, b);
                batch_destroy(b);
        }
}

/* The batch collected ahead, if it can still be used: a pair added,
 * removed or restarted since makes it refer to what is gone, so its
 * messages go back to their queues. */
static struct batch *take_ahead(struct worker *w) {
        struct batch *b = w->ahead;

        w->ahead = NULL;
        if (b && b->epoch != w->pairs_epoch) {
                batch_give_back(w, b);
                b = NULL;
        }
        return b;
}

/* Collects the next batch while this one is being committed, so that its
 * customers are loaded in the commit's round trip.  Only from what is
 * buffered already (polling could run a rebalance in the middle of this
 * batch), and only when that makes at least half a batch: a trickle is
 * better collected after a poll.  NULL when there is no such batch. */
static struct batch *prepare_ahead(struct worker *w, int64_t now) {
        struct batch *b;

        size_t ready = mergeable(w);

        log_debug("next batch: %zu messages can be merged, %zu buffered", ready, buffered(w));
        if (ready < batch_customers(w) / 2 + 1 || !(b = calloc(1, sizeof(*b))))
                return NULL;
        if (batch_prepare(w, b, now) < 0 || batch_empty(b)) {
                batch_give_back(w, b);
                return NULL;
        }
        return b;
}

static void write_state(void *ctx, size_t i, unsigned thread) {
        struct batch *b = ctx;

        (void)thread;
        (void)mcd_state_encode(&b->customers[i], &b->state[i], &b->state_len[i]);    /* NULL on failure */
}

/* The customers' new state, encoded on the batch threads. */
static int batch_write_states(struct worker *w, struct batch *b) {
        mcd_par_for(w->par, b->n_ids, write_state, b);
        for (size_t i = 0; i < b->n_ids; i++)
                if (!b->state[i])
                        return -ENOMEM;
        return 0;
}

/* Counts the round trips made since *since as the batches'. */
static void count_round_trips(struct worker *w, uint64_t *since) {
        w->st.redis_round_trips = mcd_store_round_trips(w->store);
        w->st.redis_batch_round_trips += w->st.redis_round_trips - *since;
        *since = w->st.redis_round_trips;
}

/* After a batch: the mean size of its customers' state joins the average. */
static void note_state_size(struct worker *w, const struct batch *b) {
        size_t bytes = 0;
        double v;

        if (b->n_ids == 0)
                return;
        for (size_t i = 0; i < b->n_ids; i++)
                bytes += b->state_len[i];
        v = (double)bytes / (double)b->n_ids;
        w->state_per_customer = w->state_per_customer > 0 ? 0.7 * w->state_per_customer + 0.3 * v : v;
}

/* For the debug log: how long ago its oldest message was stamped by Kafka
 * (wall clock) and buffered here (monotonic), in ms. */
static void batch_ages(const struct batch *b, int64_t now, int64_t *stamped, int64_t *buffered) {
        int64_t ts = now, arrived = mono_ms(), mono = arrived;

        for (size_t i = 0; i < b->n_items; i++) {
                if (b->items[i].m->timestamp < ts)
                        ts = b->items[i].m->timestamp;
                if (b->items[i].m->arrived < arrived)
                        arrived = b->items[i].m->arrived;
        }
        *stamped = now - ts;
        *buffered = mono - arrived;
}

/* A batch that is undone or not committed is read again: what applying it
 * counted is taken back, or the metrics would count its events twice. */
static void stats_take_back(struct mcd_stats *st, const struct mcd_stats *before) {
        struct mcd_stats now = *st;

        mcd_stats_add_counts(st, &now, before, -1);
}

/* A commit whose reply was lost: remembered with one of the batch's pairs
 * (whose offsets the commit moves) to be settled by resolve_unsure().  A
 * batch of due customers only moves no offsets; its counts stay taken back. */
static void note_unsure(struct worker *w, const struct batch *b, const struct mcd_stats *before) {
        for (size_t i = 0; i < b->n_items; i++) {
                for (size_t k = 0; k < b->n_pairs && k < w->n_pairs; k++) {
                        if (w->pairs[k] != b->items[i].pair)
                                continue;
                        w->unsure.set = true;
                        w->unsure.partition = w->pairs[k]->partition;
                        w->unsure.next = b->next[k];
                        memset(&w->unsure.counted, 0, sizeof(w->unsure.counted));
                        mcd_stats_add_counts(&w->unsure.counted, &w->st, before, 1);
                        return;
                }
        }
}

/* Redis answers again: if the unsure commit moved its pair's stored offsets,
 * it was applied, and its counts come back. */
static void resolve_unsure(struct worker *w) {
        struct mcd_offsets o;
        int r;

        if (!w->unsure.set)
                return;
        r = mcd_store_get_offsets(w->store, w->unsure.partition, &o, NULL);
        if (redis_unreachable(r)) {
                w->redis_ok = false;
                return;
        }
        if (r >= 0 && o.rel >= w->unsure.next.rel && o.sub >= w->unsure.next.sub) {
                mcd_stats_add_counts(&w->st, &w->unsure.counted, NULL, 1);
                log_info("the batch committed as Redis went away was applied; its counts are kept");
        }
        w->unsure.set = false;
}

/* One batch: load (unless it was loaded with the last commit), apply the
 * rules, commit with the next batch's load, publish. */
static int process_batch(struct worker *w) {
        struct batch *b = take_ahead(w), *ahead = NULL;
        struct mcd_stats before = w->st;
        bool commit_sent = false;
        int64_t now = now_ms(), t0 = mono_us(), t_publish = 0, t_commit = 0, age_stamped = 0, age_buffered = 0;
        uint64_t rt0 = mcd_store_round_trips(w->store);
        char *marks = NULL;
        int r = 0, load_r = 0;
        bool undelivered;

        if (!b) {
                b = calloc(1, sizeof(*b));
                if (!b)
                        return -ENOMEM;
                r = batch_prepare(w, b, now);
                if (r >= 0 && batch_empty(b))
                        goto out;
                if (r >= 0 && b->n_ids > 0) {
                        r = mcd_store_load(w->store, (const char *const *)b->ids, b->n_ids, b->customers);
                        if (r < 0) {
                                free(b->customers);
                                b->customers = NULL;
                        }
                }
        }
        if (r >= 0)
                batch_loaded(b);
        if (mcd_log_get_level() >= LOG_DEBUG)
                batch_ages(b, now, &age_stamped, &age_buffered);
        if (r >= 0)
                r = batch_apply(w, b, now, b->n_due);
        if (r >= 0)
                r = batch_write_states(w, b);
        if (r >= 0)
                note_state_size(w, b);
        marks = marks_format(w);
        if (r >= 0 && !marks)
                r = -ENOMEM;
        if (r >= 0)
                ahead = prepare_ahead(w, now);
        /* The last batch's frames were produced when it was committed, and
         * were delivered while this one was applied; they must all be
         * delivered before this commit, or a stalled instance could have
         * frames in flight when a new owner reconciles the outbox. */
        t_publish = mono_us();
        undelivered = r >= 0 && (w->n_pending > 0 || w->n_clog > 0) && publish_pending(w, 10000) < 0;
        t_publish = mono_us() - t_publish;
        if (undelivered) {
                log_warning("the last batch's outputs are not delivered yet; this batch is undone until they are");
                w->publish_stuck = true;
        }
        /* The wait also checked the fencing of what it published: a pair
         * found taken over or lost meanwhile must not have its customers
         * written by this batch.  Either way the batch (and the next one,
         * collected ahead; it goes back first, being behind in the queues)
         * is undone and collected again. */
        if (r >= 0 && (undelivered || w->pairs_epoch != b->epoch)) {
                batch_give_back(w, ahead);
                batch_unapply(w, b);
                stats_take_back(&w->st, &before);
                r = -EAGAIN;
                goto out;
        }
        /* The lease of the fencing check starts when the commit is sent. */
        w->verified_at = mono_ms();
        if (r >= 0) {
                commit_sent = true;
                t_commit = mono_us();
                r = batch_commit(w, b, marks, ahead, &load_r);
                t_commit = mono_us() - t_commit;
        }
        if (r < 0) {
                batch_give_back(w, ahead);
                if (commit_sent && redis_unreachable(r))
                        note_unsure(w, b, &before);
                stats_take_back(&w->st, &before);
                batch_abort(w, r);
                goto out;
        }
        if (ahead && load_r < 0) {
                /* committed, but the next batch's customers did not load */
                if (load_r != -ECANCELED)
                        log_warning("loading the next batch failed: %s; it is collected again", strerror(-load_r));
                if (redis_unreachable(load_r))
                        w->redis_ok = false;
                free(ahead->customers);
                ahead->customers = NULL;
                batch_give_back(w, ahead);
                ahead = NULL;
        }
        w->ahead = ahead;
        w->verified_batch = w->st.batches + 1;
        r = batch_committed(w, b);
        if (r >= 0)
                r = changelog_queue(w, b, marks, w->st.batches + 1);
        fault_point(w->fault_stop_before_publish, w->st.batches + 1, "publish");
        /* Produced now; delivery is waited for before the next commit. */
        if (r >= 0)
                publish_pending(w, 0);
        w->st.batches++;
        w->last_batch_us = mono_us() - t0;
        mcd_stats_observe_latency(&w->st, w->last_batch_us);
        count_round_trips(w, &rt0);
        if (w->metrics)
                mcd_metrics_update(w->metrics, &w->st);
        log_debug("batch %" PRIu64 ": %zu events, %zu due customers, %zu customers, %" PRId64
                  " us, of which %" PRId64 " us waiting for the last batch's delivery, %" PRId64
                  " us committing (and loading the next batch); next batch %s; "
                  "oldest message stamped %" PRId64 " ms ago, buffered %" PRId64 " ms ago; "
                  "%.0f bytes of state per customer, batches of %zu customers",
                  w->st.batches, b->n_items, b->n_due, b->n_ids, w->last_batch_us, t_publish, t_commit,
                  w->ahead ? "loaded" : "not collected", age_stamped, age_buffered, w->state_per_customer,
                  batch_customers(w));
out:
        count_round_trips(w, &rt0);
        free(marks);
        free_spent(w);
        if (r >= 0 && commit_sent)
                w->spent = b;
        else
                batch_destroy(b);
        return r;
}

/* -------------------------------------------------------------- main loop -- */

/* After Redis was connected to again (a restart, a failover), each ready
 * pair's commit counter is checked against what this owner committed: one
 * behind means Redis came back older, and the pair starts again: pair_init
 * finds the counter behind its own and re-processes (rollback_redo).  An idle daemon finds it so,
 * before a restart could forget what it committed. */
static void rollback_watch(struct worker *w) {
        uint64_t conns = mcd_store_connections(w->store);

        if (conns == w->store_conns)
                return;
        w->store_conns = conns;
        for (size_t i = 0; i < w->n_pairs; i++) {
                struct pair *p = w->pairs[i];
                struct mcd_offsets o;
                int64_t seq = 0;
                if (p->phase != PAIR_READY || p->seq == 0 ||
                    mcd_store_get_offsets(w->store, p->partition, &o, &seq) < 0 || seq >= p->seq)
                        continue;
                pair_restart(w, p);     /* pair_init finds the counter behind ours */
        }
}

static bool redis_check(struct worker *w) {
        int64_t mono = mono_ms();
        bool created;
        int r;

        if (w->redis_ok)
                return true;
        if (mono < w->redis_retry_at)
                return false;
        r = mcd_store_ping(w->store, &w->st.redis_rtt_us);
        if (r >= 0)
                r = mcd_store_init_meta(w->store, &created);
        if (r < 0) {
                w->redis_backoff = mcd_backoff_next(w->redis_backoff);
                w->redis_retry_at = mono + w->redis_backoff;
                log_warning("Redis at %s unreachable (%s); consumption paused, retrying in %d ms",
                            mcd_store_where(w->store), strerror(-r), w->redis_backoff);
                return false;
        }
        log_notice("Redis at %s answers%s", mcd_store_where(w->store), created ? " (state initialised)" : "");
        w->redis_ok = true;
        w->redis_backoff = 0;
        return true;
}

/* Frees the codecs of n batch threads but the first (the worker's own). */
static void decoders_free(struct mcd_avro **decoders, unsigned n) {
        for (unsigned i = 1; decoders && i < n; i++)
                mcd_avro_free(decoders[i]);
        free(decoders);
}

/* Frees a pool and the codecs of its helpers. */
static void batch_threads_stop(struct mcd_par *par, struct mcd_avro **decoders) {
        unsigned n = mcd_par_threads(par);

        mcd_par_free(par);
        decoders_free(decoders, n);
}

/* Starts `threads` batch threads with a codec each (a codec is not shared
 * between threads); on success they replace w's, which the caller stops. */
static int batch_threads_start(struct worker *w, int threads) {
        struct mcd_avro **decoders = calloc((size_t)threads, sizeof(*decoders));
        struct mcd_par *par = NULL;
        int r = decoders ? 0 : -ENOMEM;

        if (r == 0)
                decoders[0] = w->avro;
        for (int i = 1; r == 0 && i < threads; i++)
                if ((r = mcd_avro_new(&decoders[i])) == 0)
                        r = mcd_avro_use_dir(decoders[i], w->schemas);
        if (r == 0)
                r = mcd_par_new((unsigned)threads, &par);
        if (r < 0) {
                decoders_free(decoders, (unsigned)threads);
                return r;
        }
        w->par = par;
        w->decoders = decoders;
        mcd_store_set_parallel(w->store, par);
        return 0;
}

/* Reads schemas.dir `dir` and gives its writer schemas to every codec (the
 * batch threads' too), replacing the folder's previous ones.  A bad folder
 * changes nothing: a negative errno, logged. */
static int schemas_load(struct worker *w, const char *dir) {
        unsigned n = w->decoders ? mcd_par_threads(w->par) : 1;
        struct mcd_avro_dir *d = NULL;
        char why[768];
        int r;

        r = mcd_avro_dir_read(dir, true, &d, why, sizeof(why));
        if (r < 0) {
                log_error("%s%s", w->schemas ? "reload: the writer schemas in use are kept: " : "", why);
                return r;
        }
        for (unsigned i = 0; r == 0 && i < n; i++)
                r = mcd_avro_use_dir(w->decoders ? w->decoders[i] : w->avro, d);
        if (r < 0) {
                log_error("schemas.dir %s: %s; the writer schemas in use are kept", dir, strerror(-r));
                for (unsigned i = 0; i < n; i++)
                        mcd_avro_use_dir(w->decoders ? w->decoders[i] : w->avro, w->schemas);
                mcd_avro_dir_free(d);
                return r;
        }
        if (mcd_avro_dir_missing(d) && strcmp(dir, MCD_SCHEMADIR) != 0)
                log_warning("schemas.dir %s does not exist: only the built-in schemas are known", dir);
        log_notice("schemas.dir %s: %zu writer schema file(s)", dir, mcd_avro_dir_count(d));
        mcd_avro_dir_free(w->schemas);
        w->schemas = d;
        return 0;
}

/* Kicks the watchdog while start-up waits for Kafka (startup.h). */
static void watchdog_alive(void *ctx) {
        watchdog_kick(ctx);
}

/* The store's notes (where the master is, a Sentinel not answering, a
 * write refused by a replica), logged as they come. */
static void store_note(void *ctx, int priority, const char *text) {
        (void)ctx;
        mcd_log(priority, "%s", text);
}

static int worker_setup(struct worker *w) {
        rd_kafka_conf_t *conf;
        char err[512];
        rd_kafka_topic_partition_list_t *topics;
        struct mcd_store_options so = {
                .host = w->cfg->redis_host, .port = w->cfg->redis_port, .db = w->cfg->redis_db,
                .password = w->cfg->redis_password, .prefix = w->cfg->redis_key_prefix,
                .timeout_ms = w->cfg->redis_timeout_ms, .sentinels = w->cfg->redis_sentinels,
                .master_name = w->cfg->redis_master_name, .note = store_note,
        };
        const char *out_topics[2] = {w->cfg->topic_outcomes, w->cfg->topic_dlq};
        struct mcd_startup_wait wait = {
                .stop = &w->sig->stop, .alive = watchdog_alive, .ctx = w,
                .bootstrap = mcd_config_kafka(w->cfg, "bootstrap.servers"),
        };
        int md_ms = mcd_startup_timeout_ms(w->watchdog_usec);
        int r, n, n_sub;

        mcd_config_rules(w->cfg, &w->rules);
        w->fault_stop_before_commit = fault_env("MCD_FAULT_STOP_BEFORE_COMMIT");
        w->fault_stop_before_publish = fault_env("MCD_FAULT_STOP_BEFORE_PUBLISH");
        w->fault_stop_before_changelog = fault_env("MCD_FAULT_STOP_BEFORE_CHANGELOG");
        if ((r = mcd_avro_new(&w->avro)) < 0 || (r = mcd_store_new(&so, &w->store)) < 0)
                return r;
        if ((r = schemas_load(w, w->cfg->schemas_dir)) < 0)
                return r;
        if ((r = batch_threads_start(w, w->cfg->batch_threads)) < 0) {
                log_error("cannot start %d batch threads: %s", w->cfg->batch_threads, strerror(-r));
                return r;
        }

        conf = rd_kafka_conf_new();
        rd_kafka_conf_set_opaque(conf, w);
        rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
        w->producer = mcd_kafka_new(w->cfg, MCD_KAFKA_PRODUCER, conf, err, sizeof(err));
        if (!w->producer) {
                log_error("cannot create the Kafka producer: %s", err);
                return -EINVAL;
        }
        /* Kafka unreachable, a leader not elected yet, a topic not created
         * yet: waited for (startup.h).  Not being co-partitioned is a
         * configuration error, which exits. */
        for (int t = 0; t < 2; t++) {
                if ((r = mcd_startup_partitions(w->producer, out_topics[t], md_ms, &wait, &n)) < 0)
                        return r;
                w->n_out_parts[t] = n;
                w->known_end[t] = calloc((size_t)n + 1, sizeof(int64_t));
                if (!w->known_end[t])
                        return -ENOMEM;
                for (int q = 0; q < n; q++) {
                        int64_t lo, hi;
                        watchdog_kick(w);
                        if (rd_kafka_query_watermark_offsets(w->producer, out_topics[t], q, &lo, &hi, md_ms) == 0)
                                w->known_end[t][q] = hi;
                }
        }
        if ((r = mcd_startup_partitions(w->producer, w->cfg->topic_relationships, md_ms, &wait,
                                        &w->n_input_partitions)) < 0 ||
            (r = mcd_startup_partitions(w->producer, w->cfg->topic_subscriptions, md_ms, &wait, &n_sub)) < 0)
                return r;
        if (w->n_input_partitions != n_sub) {
                log_error("input topics are not co-partitioned: %s has %d partitions, %s has %d",
                          w->cfg->topic_relationships, w->n_input_partitions, w->cfg->topic_subscriptions, n_sub);
                return -EINVAL;
        }
        r = mcd_group_offsets_new(w->cfg->topic_relationships, w->cfg->topic_subscriptions, w->n_input_partitions,
                                  GROUP_OFFSETS_INTERVAL_MS, &w->group_offsets);
        if (r < 0)
                return r;

        conf = rd_kafka_conf_new();
        rd_kafka_conf_set_opaque(conf, w);
        rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
        rd_kafka_conf_set_offset_commit_cb(conf, offset_commit_cb);
        if ((r = mcd_group_offsets_watch(w->group_offsets, conf)) < 0) {
                rd_kafka_conf_destroy(conf);
                return r;
        }
        w->consumer = mcd_kafka_new(w->cfg, MCD_KAFKA_GROUP_CONSUMER, conf, err, sizeof(err));
        if (!w->consumer) {
                log_error("cannot create the Kafka consumer: %s", err);
                return -EINVAL;
        }
        w->sub_reader = mcd_kafka_new(w->cfg, MCD_KAFKA_READER, NULL, err, sizeof(err));
        if (!w->sub_reader) {
                log_error("cannot create the Kafka consumer: %s", err);
                return -EINVAL;
        }
        rd_kafka_poll_set_consumer(w->consumer);
        topics = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(topics, w->cfg->topic_relationships, RD_KAFKA_PARTITION_UA);
        r = rd_kafka_subscribe(w->consumer, topics) ? -EINVAL : 0;
        rd_kafka_topic_partition_list_destroy(topics);
        if (r < 0)
                log_error("cannot subscribe to %s", w->cfg->topic_relationships);
        return r;
}

/* The group consumer, closed: it has left the group.
 *
 * librdkafka before 2.3.0 asserts in rd_kafka_destroy() when its
 * cooperative-sticky assignor has no state yet: a consumer that joined the
 * group but was stopped before its first assignment arrived (librdkafka
 * issue 4312).  The daemon would abort instead of exiting 0 when stopped
 * during a rebalance, which a joining instance may wait out for seconds.
 * Such a handle is not destroyed; it stays reachable from kept_consumer, and
 * the process exit, which follows, releases it. */
static rd_kafka_t *kept_consumer;
static struct mcd_group_offsets *kept_group_offsets;   /* its interceptors' opaque */

static void consumer_destroy(struct worker *w) {
        if (!w->group_synced && rd_kafka_version() < 0x020300ff) {
                log_info("the consumer left the group before its first assignment; not destroyed "
                         "(librdkafka %s would abort: its issue 4312)", rd_kafka_version_str());
                kept_consumer = w->consumer;
                kept_group_offsets = w->group_offsets;
                w->group_offsets = NULL;
        } else {
                rd_kafka_destroy(w->consumer);
        }
        w->consumer = NULL;
}

static void worker_teardown(struct worker *w) {
        batch_destroy(w->ahead);
        w->ahead = NULL;
        free_spent(w);
        if (w->consumer) {
                rd_kafka_consumer_close(w->consumer);   /* leaves the group cleanly */
                consumer_destroy(w);
        }
        /* Pairs the close did not revoke leave sub_reader's assignment
         * while it still exists. */
        for (size_t i = w->n_pairs; i > 0; i--)
                pair_remove(w, w->pairs[i - 1]->partition);
        free(w->pairs);
        mcd_group_offsets_free(w->group_offsets);      /* after the consumer: its close answers commits, and
                                                         * its broker threads call the interceptors */
        w->group_offsets = NULL;
        if (w->sub_reader) {
                rd_kafka_assign(w->sub_reader, NULL);
                rd_kafka_consumer_close(w->sub_reader);
                rd_kafka_destroy(w->sub_reader);
        }
        if (w->producer) {
                rd_kafka_flush(w->producer, 5000);
                rd_kafka_destroy(w->producer);
        }
        pending_clear(w);
        free(w->pending);
        clog_clear(w);
        free(w->known_end[0]);
        free(w->known_end[1]);
        mcd_strmap_clear(&w->published);
        mcd_store_free(w->store);
        batch_threads_stop(w->par, w->decoders);
        mcd_avro_free(w->avro);
        mcd_avro_dir_free(w->schemas);
}

static bool all_ready(const struct worker *w) {
        if (w->n_pairs == 0)
                return false;
        for (size_t i = 0; i < w->n_pairs; i++)
                if (w->pairs[i]->phase != PAIR_READY)
                        return false;
        return true;
}

/* Refreshes the figures that cost a look outside: consumer lag (cached
 * watermarks, no round trip), Redis round-trip time and pending timers. */
static void refresh_figures(struct worker *w) {
        int64_t lag = 0, timers = 0;

        for (size_t i = 0; i < w->n_pairs; i++) {
                struct pair *p = w->pairs[i];
                int64_t next[2] = {p->committed.rel, p->committed.sub};
                if (p->phase != PAIR_READY)
                        continue;
                for (int t = REL; t <= SUB; t++) {
                        int64_t lo, hi;
                        if (rd_kafka_get_watermark_offsets(t == REL ? w->consumer : w->sub_reader, topic_of(w, t),
                                                           p->partition, &lo, &hi) == 0 && hi > 0)
                                lag += hi - (next[t] >= 0 ? next[t] : lo);
                }
        }
        if (w->redis_ok) {
                int32_t *parts = calloc(w->n_pairs + 1, sizeof(*parts));
                size_t n = 0;
                int64_t outbox = 0;
                for (size_t i = 0; parts && i < w->n_pairs; i++)
                        if (w->pairs[i]->phase == PAIR_READY)
                                parts[n++] = w->pairs[i]->partition;
                if (parts && mcd_store_counts(w->store, parts, n, &timers, &outbox) < 0)
                        timers = 0;
                free(parts);
        }
        w->st.lag = lag;
        w->st.pending_timers = timers;
        w->st.partitions = (int64_t)w->n_pairs;
        w->st.changelog_stopped = 0;
        for (size_t i = 0; i < w->n_pairs; i++)
                w->st.changelog_stopped += w->pairs[i]->clog_failed;
        if (w->redis_ok && mcd_store_ping(w->store, &w->st.redis_rtt_us) < 0)
                w->st.redis_errors++;
        w->st.redis_up = w->redis_ok;
        w->st.redis_round_trips = mcd_store_round_trips(w->store);
        mcd_group_offsets_counts(w->group_offsets, &w->st.group_commits, &w->st.group_commit_failures);
        /* Batches allocate and free in bursts; give what is free back to
         * the system, so that RSS follows what the daemon holds. */
        malloc_trim(0);
}

static void report_status(struct worker *w, bool *ready_sent) {
        int64_t mono = mono_ms(), rate, events = 0;

        w->st.ready = w->redis_ok && all_ready(w) && w->st.changelog_stopped == 0;
        if (!*ready_sent && w->st.ready) {
                sd_notify(0, "READY=1");
                *ready_sent = true;
                log_notice("ready: %zu partition(s) owned", w->n_pairs);
        }
        if (mono < w->next_status)
                return;
        refresh_figures(w);
        for (int t = REL; t <= SUB; t++)
                for (int e = 0; e < MCD_EV__COUNT; e++)
                        events += (int64_t)w->st.events[t][e];
        rate = w->status_mono ? (events - w->status_events) * 1000 / (mono - w->status_mono + 1) : 0;
        w->status_events = events;
        w->status_mono = mono;
        w->next_status = mono + w->cfg->status_interval;
        {
                uint64_t dead = 0;
                for (int k = 0; k < MCD_N_DEAD_LETTER_REASONS; k++)
                        dead += w->st.dead_letters[k];
                sd_notifyf(0,
                           "STATUS=%" PRId64 " events/s, lag %" PRId64 ", %" PRId64 " parked, %" PRIu64
                           " dead letters, %zu partitions%s%s",
                           rate, w->st.lag, w->st.parked, dead, w->n_pairs, w->redis_ok ? "" : ", Redis unreachable",
                           w->st.changelog_stopped ? ", changelog append failed: partitions stopped" : "");
        }
        if (w->metrics)
                mcd_metrics_update(w->metrics, &w->st);
}

/* SIGHUP: re-reads the configuration file and schemas.dir.  A bad file is
 * refused (each bad line logged) and the running configuration kept; a bad
 * schema folder is logged (the file named) and the writer schemas in use
 * kept.  The keys that shape the rules, batching and logging apply at once;
 * the others (Kafka, topics, Redis, metrics address) at the next start,
 * which is logged. */
static bool str_differs(const char *a, const char *b) {
        return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

/* Do two configurations differ in a key that only a restart applies? */
static bool restart_keys_differ(const struct mcd_config *a, const struct mcd_config *b) {
        bool d = str_differs(a->topic_relationships, b->topic_relationships) ||
                 str_differs(a->topic_subscriptions, b->topic_subscriptions) ||
                 str_differs(a->topic_outcomes, b->topic_outcomes) || str_differs(a->topic_dlq, b->topic_dlq) ||
                 str_differs(a->topic_changelog, b->topic_changelog) || str_differs(a->redis_host, b->redis_host) ||
                 a->redis_port != b->redis_port || a->redis_db != b->redis_db ||
                 str_differs(a->redis_password, b->redis_password) ||
                 str_differs(a->redis_key_prefix, b->redis_key_prefix) ||
                 str_differs(a->redis_sentinels, b->redis_sentinels) ||
                 str_differs(a->redis_master_name, b->redis_master_name) ||
                 a->redis_timeout_ms != b->redis_timeout_ms || str_differs(a->metrics_listen, b->metrics_listen) ||
                 a->n_kafka != b->n_kafka;

        for (size_t i = 0; !d && i < a->n_kafka; i++)
                d = str_differs(a->kafka[i].key, b->kafka[i].key) || str_differs(a->kafka[i].value, b->kafka[i].value);
        return d;
}

static void reload(struct worker *w) {
        static const char *const restart_keys[] = {"topic", "redis", "kafka", "metrics"};
        struct mcd_config fresh;
        char *errors = NULL;
        size_t errlen = 0;
        unsigned n_errors = 0;
        FILE *ef;
        int r;

        sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%" PRId64, mono_us());
        if (!w->cfg->path) {
                log_notice("reload: running on the defaults, no configuration file to re-read");
                schemas_load(w, w->cfg->schemas_dir);
                sd_notify(0, "READY=1");
                return;
        }
        ef = open_memstream(&errors, &errlen);
        r = mcd_config_defaults(&fresh);
        if (r >= 0 && ef)
                r = mcd_config_load(w->cfg->path, &fresh, ef, &n_errors);
        if (ef)
                fclose(ef);
        if (r < 0 || !ef) {
                char *line = errors, *nl;
                for (; line && *line; line = nl ? nl + 1 : line + strlen(line)) {
                        nl = strchr(line, '\n');
                        if (nl)
                                *nl = '\0';
                        log_error("reload: %s", line);
                        if (!nl)
                                break;
                }
                log_error("reload refused: %s has %u error(s); the running configuration is kept", w->cfg->path,
                          n_errors);
        } else {
                bool differs = restart_keys_differ(&fresh, w->cfg);
                w->cfg->log_level = fresh.log_level;
                w->cfg->park_grace = fresh.park_grace;
                w->cfg->dedup_window = fresh.dedup_window;
                w->cfg->limit_seen_ids = fresh.limit_seen_ids;
                w->cfg->limit_subscriptions = fresh.limit_subscriptions;
                w->cfg->limit_parked = fresh.limit_parked;
                w->cfg->merge_wait = fresh.merge_wait;
                w->cfg->batch_max = fresh.batch_max;
                w->cfg->batch_max_bytes = fresh.batch_max_bytes;
                if (fresh.batch_threads != w->cfg->batch_threads) {
                        struct mcd_par *par = w->par;
                        struct mcd_avro **decoders = w->decoders;
                        r = batch_threads_start(w, fresh.batch_threads);
                        if (r < 0) {
                                log_error("reload: cannot start %d batch threads: %s; keeping %d",
                                          fresh.batch_threads, strerror(-r), w->cfg->batch_threads);
                        } else {
                                batch_threads_stop(par, decoders);
                                log_notice("reload: batch.threads %d -> %d", w->cfg->batch_threads,
                                           fresh.batch_threads);
                                w->cfg->batch_threads = fresh.batch_threads;
                        }
                }
                w->cfg->buffer_max = fresh.buffer_max;
                w->cfg->batch_wait = fresh.batch_wait;
                w->cfg->status_interval = fresh.status_interval;
                if (schemas_load(w, fresh.schemas_dir) == 0) {
                        char *old = w->cfg->schemas_dir;
                        w->cfg->schemas_dir = fresh.schemas_dir;
                        fresh.schemas_dir = old;
                }
                mcd_config_rules(w->cfg, &w->rules);
                mcd_log_set_level(fresh.log_level);
                if (differs)
                        log_warning("reload: changes to %s.*, %s.*, %s.* or %s.* keys take effect at the next start",
                                    restart_keys[0], restart_keys[1], restart_keys[2], restart_keys[3]);
                log_notice("reloaded %s", w->cfg->path);
        }
        mcd_config_clear(&fresh);
        free(errors);
        sd_notify(0, "READY=1");
}

int mcd_worker_run(struct mcd_config *cfg, struct mcd_worker_signals *sig) {
        struct worker w = {.cfg = cfg, .sig = sig};
        bool ready_sent = false;
        int r;

        if (sd_watchdog_enabled(0, &w.watchdog_usec) <= 0)
                w.watchdog_usec = 0;
        r = worker_setup(&w);
        if (r == -ECANCELED && sig->stop) {
                /* SIGTERM while start-up waited for Kafka: a clean stop */
                sd_notify(0, "STOPPING=1");
                log_notice("stopping: stopped while waiting for Kafka at start-up");
                r = 0;
                goto out;
        }
        if (r < 0)
                goto out;
        if (cfg->metrics_listen && *cfg->metrics_listen) {
                r = mcd_metrics_start(cfg->metrics_listen, &w.metrics);
                if (r < 0) {
                        log_error("metrics: cannot listen on %s: %s", cfg->metrics_listen, strerror(-r));
                        goto out;
                }
                log_notice("metrics on http://%s/metrics", cfg->metrics_listen);
        }
        log_notice("consuming %s and %s as group %s", cfg->topic_relationships, cfg->topic_subscriptions,
                   mcd_config_kafka(cfg, "group.id"));
        while (!sig->stop) {
                watchdog_kick(&w);      /* the loop is alive */
                if (sig->reload) {
                        sig->reload = 0;
                        reload(&w);
                }
                report_status(&w, &ready_sent);
                if (!redis_check(&w)) {
                        rd_kafka_message_t *m = rd_kafka_consumer_poll(w.consumer, 100);
                        if (m)
                                take_message(&w, m, REL);
                        continue;
                }
                resolve_unsure(&w);
                rollback_watch(&w);
                /* Delivery reports are served; after a batch found the last
                 * one's outputs undelivered (Kafka unreachable), nothing new
                 * is processed until the outbox is out. */
                if ((w.n_pending > 0 || w.n_clog > 0) && publish_pending(&w, w.publish_stuck ? 1000 : 0) < 0 &&
                    w.publish_stuck)
                        continue;
                redo_settle(&w);
                read_group_marks(&w);
                for (size_t i = 0; i < w.n_pairs; i++) {
                        struct pair *p = w.pairs[i];
                        watchdog_kick(&w);      /* each may wait seconds for a partition's leader */
                        if (p->phase == PAIR_INIT && !p->group_read)
                                continue;       /* the group's copy is read first (claim) */
                        if ((p->phase == PAIR_INIT || p->phase == PAIR_RECONCILE) && (r = pair_init(&w, p)) < 0)
                                pair_init_failed(&w, p, r);
                }
                poll_inputs(&w, w.ahead ? 0 : (int)cfg->batch_wait, batch_customers(&w));
                r = process_batch(&w);
                mcd_group_offsets_flush(w.group_offsets, w.consumer, mono_ms(), false);
                apply_backpressure(&w);
                if (r < 0 && r != -ENOMEM)
                        continue;
                if (r == -ENOMEM) {
                        log_error("out of memory processing a batch");
                        continue;
                }
        }
        /* The batch in flight is done (one thread); what it committed but
         * has not published yet goes out before the group is left. */
        sd_notify(0, "STOPPING=1");
        batch_destroy(w.ahead);         /* collected, not committed: read again by the next owner */
        w.ahead = NULL;
        if ((w.n_pending > 0 || w.n_clog > 0) && publish_pending(&w, 10000) < 0)
                log_warning("stopping with %zu frames unpublished; the next owner publishes them", w.n_pending);
        r = 0;
        log_notice("stopping: leaving the consumer group");
out:
        if (w.metrics)
                mcd_metrics_stop(w.metrics);
        worker_teardown(&w);
        return r;
}
