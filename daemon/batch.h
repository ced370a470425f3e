/* batch.h -- one batch through its life (Kafka Streams' process, then
 * prepareCommit / commit / postCommit): collected from the merge and the
 * customers due, loaded, applied (apply.h), committed to Redis in one
 * fenced transaction (the next batch loaded in front of it and applied while
 * Redis runs it), its frames handed to the
 * publisher; or undone, its messages back in their queues. */
#ifndef MCD_BATCH_H
#define MCD_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/apply.h"
#include "daemon/intake.h"
#include "daemon/pair.h"
#include "daemon/publish.h"
#include "daemon/runtime.h"
#include "daemon/tasks.h"

struct batcher {
        struct mcd_env *env;
        struct pairs *pairs;
        struct intake *in;
        struct publisher *pub;
        struct tasks *tm;
        struct applier *ap;
        size_t next_pair;            /* where the next batch starts taking messages */
        int64_t next_due_scan;       /* wall-clock ms of the next look for due customers */
        size_t due_rotate;           /* where the next due scan starts among the pairs */
        bool due_rescan;             /* the next due scan comes at once: the last left some due */
        uint64_t due_committed;      /* due customers committed, ever */
        uint64_t due_seen;           /* due_committed when the last due scan ran */
        uint64_t fault_stop_before_commit, fault_stop_before_publish;
        uint64_t fault_push_enomem;  /* batch whose pairs with 2+ frames fail to queue the second (tests) */
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
        struct batch *ahead;         /* the next batch, collected, loaded and applied with the last commit */
        struct mcd_stats ahead_before; /* the counts before ahead was applied */
        size_t ahead_customers;      /* batch_customers() when ahead was collected: its bound */
        struct batch *spent;         /* the last batch, committed: freed while Redis runs the next commit */
        struct {
                struct item *items;  /* zeroed, for a next batch (items_new), or NULL */
                size_t cap;          /* its room */
        } spare[2];                  /* the items arrays of batches destroyed (batch_recycle) */
};

/* Customers a batch may hold: batch.max_bytes of state, estimated from the
 * last batches' mean state per customer, within batch.max_events and never
 * below 16. */
size_t batch_customers(const struct batcher *bt);
/* One batch: load and apply (unless that was done during the last commit),
 * commit with the next batch's load in front, publish.  0 (also when there
 * was nothing to do), -EAGAIN when undone, or the commit's error. */
int process_batch(struct batcher *bt);
/* Redis answers again: settles the counts of a commit whose answer was
 * lost. */
void resolve_unsure(struct batcher *bt);
/* Frees the batches held: the one collected ahead (read again by the next
 * owner) and the last one committed. */
void batcher_free(struct batcher *bt);

#endif
