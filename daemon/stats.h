/* stats.h -- the figures the worker keeps, for systemd's STATUS=, the
 * Prometheus endpoint (metrics.c) and the benchmark.  Plain counters owned by
 * the worker thread; metrics.c reads a copy taken under its own lock. */
#ifndef MCD_STATS_H
#define MCD_STATS_H

#include <stdbool.h>
#include <stdint.h>

#include "handlers/model.h"

/* TransitionRejected reasons and ResaleRejected's, as the contract names them. */
#define MCD_REJECTION_REASONS                                                                     \
        "RELATIONSHIP_HELD_BY_OTHER_PARTNER", "NO_PENDING_REQUEST", "NO_ACTIVE_RELATIONSHIP",     \
                "ALREADY_WITH_PARTNER", "SUBSCRIPTION_UNKNOWN", "TARGET_NOT_RELATIONSHIP_PARTNER", \
                "SUBSCRIPTION_CLOSED", "CREATE_AZURE_CSP_SUBSCRIPTION_INSTEAD", "PARTNER_MISMATCH", \
                "SWITCH_BLOCKED_UNTIL_TERM_END", "SWITCH_NOT_REQUESTED", "NO_ACCEPTED_RELATIONSHIP", \
                "CLOUD_MISMATCH", "CSP_TO_CSP_RESALE_NOT_SUPPORTED", "EVENT_TOO_OLD", "SUBSCRIPTION_LIMIT", \
                "PARK_LIMIT"
#define MCD_N_REJECTION_REASONS 17

/* Dead-letter codes (avro_codec.h). */
#define MCD_DEAD_LETTER_REASONS \
        "BAD_MAGIC", "UNKNOWN_SCHEMA", "WRONG_TOPIC", "CORRUPT_AVRO", "INVALID_EVENT", "KEY_MISMATCH"
#define MCD_N_DEAD_LETTER_REASONS 6

/* Upper bounds (microseconds) of the batch latency histogram's buckets;
 * the last bucket is +Inf. */
#define MCD_LATENCY_BUCKETS_US 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000
#define MCD_N_LATENCY_BUCKETS 11

struct mcd_stats {
        uint64_t events[2][MCD_EV__COUNT];      /* consumed and applied: [0] relationships, [1] subscriptions */
        uint64_t outcomes[MCD_OUT__COUNT];
        uint64_t rejections[MCD_N_REJECTION_REASONS];
        uint64_t dead_letters[MCD_N_DEAD_LETTER_REASONS];
        uint64_t batches;
        int64_t last_batch_ms;       /* wall clock when the last batch was committed, ms since the epoch; 0: none */
        uint64_t latency_buckets[MCD_N_LATENCY_BUCKETS]; /* cumulative is computed when rendered */
        double latency_sum_s;
        uint64_t timers_fired;
        uint64_t redis_errors;
        uint64_t kafka_errors;
        uint64_t fetch_wakeups;      /* input fetchers woken while the merge waited (intake.c) */
        uint64_t merge_end_queries;  /* partition ends the broker gave before a side went on alone */
        uint64_t merge_ends_ahead;   /* of them, ends found ahead of a side its fetch said caught up */
        uint64_t redis_round_trips;
        uint64_t redis_batch_round_trips;       /* of them, made by batches (load, commit, fencing, due scan) */
        uint64_t state_cache_hits;   /* customers a batch found in the state cache (state_cache.h) */
        uint64_t state_cache_misses; /* and those it loaded from Redis */
        int64_t state_cache_bytes;   /* the cache's size after the last commit */
        uint64_t group_commits;      /* Redis's offsets copied to the consumer group (group_offsets.h) */
        uint64_t group_commit_failures;         /* of them, refused or failed */
        int64_t redis_rtt_us;        /* last PING */
        int64_t lag;                 /* messages behind the input partitions' high watermarks */
        int64_t parked;              /* parked events among the customers of the last batches */
        int64_t pending_timers;      /* customers with a due time in Redis, owned partitions */
        int64_t outbox_frames;       /* frames in the owned partitions' outboxes: committed, not yet trimmed */
        int64_t partitions;          /* partition pairs owned */
        int64_t changelog_stopped;   /* of them, stopped by a failed changelog append */
        bool ready;                  /* Redis answers and every owned partition is ready */
        bool redis_up;
        bool redis_wrong_type;       /* a key of the daemon's of another type holds consumption back (worker.c
                                        hold_for_wrong_type: within a second of the hold's end) */
        bool registry_down;          /* consumption paused: the schema registry cannot be asked */
};

/* Index of a reason in the lists above, or -1. */
int mcd_stats_rejection_index(const char *reason);
int mcd_stats_dead_letter_index(const char *code);
void mcd_stats_observe_latency(struct mcd_stats *s, int64_t us);

/* The counts batches add: events, outcomes, rejections, dead letters and
 * timers fired.  st's counts += sign * (a's - b's), element by element
 * (sign +1 or -1; b NULL counts as zero); st's other figures are left as
 * they are.  For taking back an undone batch's counts, or keeping them. */
void mcd_stats_add_counts(struct mcd_stats *st, const struct mcd_stats *a, const struct mcd_stats *b, int sign);
/* A batch that is undone or not committed is read again: what applying it
 * counted since `before` is taken back, or the metrics would count its
 * events twice.  This function can't fail. */
void mcd_stats_take_back(struct mcd_stats *st, const struct mcd_stats *before);

#endif
