/* tasks.h -- ownership of the pairs (Kafka Streams' TaskManager): the
 * group's rebalance events turned into pairs added and removed, a pair
 * claimed in Redis (fencing the previous owner) and made ready, a pair
 * fenced when another instance has claimed it, restarted when Redis lost
 * what it was committing to. */
#ifndef MCD_TASKS_H
#define MCD_TASKS_H

#include <stdbool.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "daemon/intake.h"
#include "daemon/pair.h"
#include "daemon/publish.h"
#include "daemon/restore.h"
#include "daemon/runtime.h"

struct tasks {
        struct mcd_env *env;
        struct pairs *pairs;
        struct intake *in;
        struct publisher *pub;
        struct restorer *rs;
        bool group_synced;           /* an assignment (maybe empty) came from the group: see consumer_destroy */
        uint64_t store_conns;        /* mcd_store_connections when last checked (rollback_watch) */
        bool first_read[2];          /* read_first_offsets tried for the claim round in progress */
        uint64_t claim_rounds;       /* rounds that had a pair to claim */
        int64_t claims_held_since;   /* monotonic ms claims began to wait for the group (member_current), 0 not */
        uint64_t fault_stop_before_claim;    /* fault injection: SIGSTOP before that round (0 never) */
};

/* Wires the pair set's hooks (pair.h) to this task manager. */
void tasks_init(struct tasks *tm);

/* The group consumer's callbacks; their opaque is the task manager. */
void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts, void *opaque);
void offset_commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *offsets,
                      void *opaque);

/* INIT -> READY: claim the partition (fencing any previous owner), restore
 * it, seek to the stored offsets.  pair_init_failed handles its failure. */
int pair_init(struct tasks *tm, struct pair *p);
void pair_init_failed(struct tasks *tm, struct pair *p, int r);
/* Tries to make every pair not ready yet ready (pair_init). */
void tasks_claim(struct tasks *tm);

/* After a commit refused as stale: fences p, and returns true, if Redis says
 * another instance has claimed it since. */
bool fence_if_taken(struct tasks *tm, struct pair *p);
/* Back to INIT: buffered messages and unsent frames dropped, re-read from
 * Redis's offsets. */
void pair_restart(struct tasks *tm, struct pair *p);
/* The pair's offsets, commit counter, generation and origin marks noted for
 * the consumer group's copy (group_offsets.h): at its start and after each
 * commit that moved its offsets. */
void group_note(struct tasks *tm, const struct pair *p);
/* Gives a pair up (revoked, lost, teardown). */
void pair_remove(struct tasks *tm, int32_t partition);
/* After Redis was connected to again: pairs whose commit counter went back
 * restart (and re-process, pair_init). */
void rollback_watch(struct tasks *tm);
/* Leaves the group: waits out a join in progress (session.timeout.ms at
 * most), closes the group consumer (env->consumer) and destroys it, unless
 * librdkafka would abort doing so.  env->consumer is NULL after. */
void tasks_leave(struct tasks *tm);

#endif
