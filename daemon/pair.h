/* pair.h -- one co-partitioned pair of input partitions (Kafka Streams'
 * StreamTask): the relationships partition N and the subscriptions
 * partition N, processed together by the instance that owns N.
 *
 * DESIGN: a pair's phase is a state machine, INIT (to be claimed) ->
 * RECONCILE (claimed, not ready) -> READY (its messages are merged and
 * processed), or FENCED (another instance owns it now; never claimed back).
 * pair_set_phase() is the only place the phase changes, and logs each change.
 * The set of pairs (struct pairs) counts, in `epoch`, every change that makes
 * a batch collected before it refer to what is gone.  What is done to a pair
 * from outside its phase (fencing it, restarting it) is the task manager's
 * (tasks.h); the parts below it ask for it through the set's hooks. */
#ifndef MCD_PAIR_H
#define MCD_PAIR_H

#include <stdbool.h>
#include <stdint.h>

#include "daemon/msgq.h"
#include "daemon/state_cache.h"
#include "daemon/store.h"
#include "handlers/model.h"

enum { REL = 0, SUB = 1 };   /* the sides of a pair: relationships, subscriptions */

enum pair_phase { PAIR_INIT, PAIR_RECONCILE, PAIR_READY, PAIR_FENCED, PAIR_PHASE__COUNT };

struct pair {
        int32_t partition;
        enum pair_phase phase;       /* changed by pair_set_phase() only */
        int64_t generation;          /* our claim's, 0 none yet */
        bool claim_unsure;           /* the last claim's answer was lost: Redis may hold a later generation
                                      * that is ours (tasks.c claim) */
        struct msgq q[2];
        int64_t expect[2];           /* next offset expected from Kafka, -1 any */
        int64_t first[2];            /* the side's first offset, read for the claim round in progress
                                      * (tasks.c read_first_offsets), -1 not read */
        struct mcd_offsets committed;/* next offsets, as stored in Redis */
        struct mcd_offsets next;     /* after the last message taken into the batch */
        mcd_time_t stream_time;      /* latest occurred_at applied: the rules' clock for input */
        int64_t last_arrival;        /* monotonic ms of the last message buffered */
        int64_t heard_at[2];         /* monotonic ms of the side's last message or end (intake.c) */
        bool at_end[2];              /* the side reached its partition's end (PARTITION_EOF) */
        int64_t end_pos[2];          /* where that end was: the fetch position, past transaction markers */
        bool heard[2];               /* a message or the end came since the pair became ready: the
                                      * handle's high watermark is not an earlier ownership's */
        int64_t broker_end[2];       /* the side's end as the broker last gave it (intake.c confirm_ends), -1 none */
        int64_t end_asked_at[2];     /* monotonic ms that question was sent, 0 never */
        int64_t end_logged_at[2];    /* monotonic ms the side was last logged behind that end, 0 never */
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
        uint64_t clog_from;          /* the first batch under the current claim: only its batches'
                                      * elements of P clog_owed:<p> are this owner's to trim */
        size_t clog_untrimmed;       /* those elements whose records are all delivered, at the list's head */
        size_t clog_trimming;        /* of them, how many the commit in flight trims */
        char **clog_forget;          /* keys of P clog_lost:<p> the claim appended again: removed by the
                                      * claim's first commit (pair_forget_lost) */
        size_t n_clog_forget;
        bool clog_failed;            /* a changelog append failed: no more commits (changelog_failed) */
        int64_t seq;                 /* its commit counter (P off:<p> seq) as this owner left it */
        int64_t seq_floor;           /* the highest counter known committed: the group's at the claim */
        bool group_read;             /* the group's copy read for the next claim (tasks.c read_group_marks) */
        bool origin_unsent;          /* send_origin failed: tried again once the member's join has ended */
        int64_t group_generation;    /* the generation it names, 0 none */
        char *origin_marks;          /* where the partition's outputs begin on the output topics: the
                                      * group's copy's marks, or ours at a start from nothing; NULL none */
        bool rolled_back;            /* Redis was found older than our commits: rollback_redo at init */
        bool redo;                   /* rebuilt, re-processed up to redo_until: see redo_check */
        struct mcd_offsets redo_until;
        mcd_time_t redo_due;         /* the lookup's time (ms), raised once (redo_cover): settled once
                                      * nothing is due by it */
        mcd_time_t redo_seen;        /* the latest clock among the pair's outcomes the lookup found (ms):
                                      * the rules' that made each, or its producer's */
        bool redo_covered;           /* redo_due raised to what re-processing and the lookup showed */
        int64_t redo_held_since;     /* mono ms something due first kept the record, 0 not yet, -1 named */
        char *redo_marks;            /* where the lookup starts; the pair's marks while redo */
};

/* The pair takes keys (mcd_store_ids_free's kind), for its next commit to
 * remove from P clog_lost:<p>, in place of any it held.  This function
 * can't fail. */
void pair_forget_lost(struct pair *p, char **keys, size_t n);

/* What the task manager does to a pair, asked for by the parts below it. */
struct pair_hooks {
        void (*fence)(void *ctx, struct pair *p);   /* another instance owns it (pair_fence) */
        void (*restart)(void *ctx, struct pair *p); /* back to INIT (pair_restart) */
        void *ctx;
};

/* The pairs this instance owns or is claiming. */
struct pairs {
        struct pair **v;
        size_t n;
        uint64_t epoch;              /* bumped when a pair is added or removed, or changes phase but between
                                      * INIT and RECONCILE */
        struct pair_hooks hooks;
        struct mcd_state_cache *cache; /* the READY pairs' customers' committed states (state_cache.h), or NULL */
};

const char *pair_phase_name(enum pair_phase phase);

/* The pair of a partition, or NULL. */
struct pair *pair_find(struct pairs *ps, int32_t partition);
/* The pair of a partition, added in INIT if new; NULL when out of memory. */
struct pair *pair_add(struct pairs *ps, int32_t partition);
/* Frees the pair of a partition (its queues, its re-processing record in
 * memory, its customers in the state cache) and takes it out of the set;
 * nothing if there is none.  What it holds on the Kafka handles is the
 * caller's (pair_remove). */
void pairs_drop(struct pairs *ps, int32_t partition);
/* Where p is in ps->v (0 when it is not). */
size_t pair_index(const struct pairs *ps, const struct pair *p);
/* Changes p's phase, logging "pair %d: %s -> %s" (debug); the epoch moves
 * unless the pair goes between INIT and RECONCILE (nothing refers to it
 * then).  The partition is opened in the state cache on entering READY and
 * closed on leaving it.  The only place a phase changes. */
void pair_set_phase(struct pairs *ps, struct pair *p, enum pair_phase phase);
/* Every pair ready (and at least one)? */
bool all_ready(const struct pairs *ps);

/* Asks the task manager to fence p, or to restart it (struct pair_hooks). */
void pairs_fence(struct pairs *ps, struct pair *p);
void pairs_restart(struct pairs *ps, struct pair *p);

/* Forgets p's re-processing record in memory (restore.h). */
void redo_forget(struct pair *p);
/* The marks p's commits and changelog records carry: the re-processing
 * record's while p re-processes, else `marks`. */
const char *pair_marks(const struct pair *p, const char *marks);

#endif
