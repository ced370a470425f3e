/* intake.h -- input: the two input handles, the pairs' queues filled from
 * them, the merge of a pair in timestamp order, merge_wait and backpressure
 * (Kafka Streams' RecordQueue and PartitionGroup).
 *
 * intake reads and writes the pairs' queues and positions (pair.h); it owns
 * no pair's phase: a pair it cannot buffer for is restarted through the set's
 * hooks. */
#ifndef MCD_INTAKE_H
#define MCD_INTAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "daemon/pair.h"
#include "daemon/runtime.h"

struct intake {
        struct mcd_env *env;
        struct pairs *pairs;
        int64_t checked_at[2];       /* mono ms: wake_stalled last looked at handle t's pairs */
        int64_t woken_at[2];         /* mono ms: a fetcher of handle t last woken */
        size_t wake_next[2];         /* the pair wake_stalled looks at first, round robin */
};

/* The topic of side t, and its handle (the group consumer for REL, the
 * assign()-only reader for SUB). */
const char *topic_of(const struct intake *in, int t);
rd_kafka_t *input_handle(const struct intake *in, int t);

enum side_op { SIDE_SEEK, SIDE_ASSIGN, SIDE_UNASSIGN };

/* One side of a pair on its handle: sought to `offset`, added to the
 * handle's assignment there, or removed from it.  Logs, and returns -EAGAIN,
 * when librdkafka refuses. */
int side_op(struct intake *in, const struct pair *p, int t, enum side_op op, int64_t offset);
/* The subscriptions side of p on its handle: assigned (or sought) at
 * p->expect[SUB]; unassigned. */
int sub_start(struct intake *in, struct pair *p);
void sub_stop(struct intake *in, struct pair *p);
/* Pauses or resumes p's relationships side on the group handle. */
void set_paused(struct intake *in, struct pair *p, bool paused);
/* Pauses or resumes side t of p for backpressure (p->side_paused). */
void set_side_paused(struct intake *in, struct pair *p, int t, bool paused);

/* Buffers one message (or end of partition) of side t, taking it over. */
void take_message(struct intake *in, rd_kafka_message_t *m, int t);
/* Drains the handles, waiting up to wait_ms while fewer than `enough`
 * messages can be merged. */
void poll_inputs(struct intake *in, int wait_ms, size_t enough);
/* Pauses the sides holding their share of the buffer, resumes the others. */
void apply_backpressure(struct intake *in);
/* Messages buffered in ready pairs. */
size_t buffered(const struct intake *in);
/* About how many buffered messages the merge could take now. */
size_t mergeable(const struct intake *in);
/* Takes the next message of a pair in timestamp order (a relationship first
 * on a tie), its side in *topic, or NULL when the order is not known yet. */
struct inmsg *merge_next(struct intake *in, struct pair *p, int *topic, int64_t mono_now);
/* Both sides at their ends, nothing buffered, nothing arrived for
 * merge_wait: the wall clock may fire the pair's timers. */
bool pair_idle(const struct intake *in, const struct pair *p);

#endif
